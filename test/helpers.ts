/** Shared test set-up: a throw-away HOME with an SSH key generated now, never committed. */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export const root = path.resolve(__dirname, "..");

export function tempHome(prefix = "cc-sandbox-home-"): string {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    fs.mkdirSync(path.join(home, ".ssh"), { mode: 0o700 });
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "test@cc-sandbox", "-f", path.join(home, ".ssh", "id_ed25519")]);
    return home;
}

export function hostFor(home: string) {
    return { home, readFile: (f: string) => fs.readFileSync(f, "utf8") };
}
