/** Loading a stack's config from its file (used where Pulumi is not running: render, tests). */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { HostContext, loadConfig, rawConfigFromStackFile } from "./load";
import { SandboxConfig } from "./types";

export const stacksDir = path.resolve(__dirname, "../../stacks");

/** The user's home: $HOME when set (as ssh and the shell read it), else the password database's. */
export function homeDir(): string {
    return process.env.HOME || os.homedir();
}

export function hostContext(): HostContext {
    return { home: homeDir(), readFile: (file) => fs.readFileSync(file, "utf8"), platform: process.platform, uid: os.userInfo().uid };
}

export function stackFile(stack: string): string {
    return path.join(stacksDir, `Pulumi.${stack}.yaml`);
}

/** The stack name a file is for: `Pulumi.alice.yaml` -> `alice`; any other name -> its base name. */
export function stackNameOf(file: string): string {
    const base = path.basename(file);
    const m = /^Pulumi\.(.+)\.ya?ml$/.exec(base);
    return m ? m[1] : base.replace(/\.ya?ml$/, "");
}

export function loadStackConfig(file: string, stack = stackNameOf(file), host = hostContext()): SandboxConfig {
    return loadConfig(stack, rawConfigFromStackFile(fs.readFileSync(file, "utf8"), file), host);
}

export function isDirectory(p: string): boolean {
    try {
        return fs.statSync(p).isDirectory();
    } catch {
        return false;
    }
}
