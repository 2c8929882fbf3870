/**
 * Running guest files for real on this machine without touching it: the CI stack's guest tree is
 * rendered once per test file, and commands run in guest-ns.sh's private mount namespace (overlays
 * over /etc, /home, /usr/local, /var, /root and /run, the users cloud-init creates). Run as root.
 */
import { spawnSync, SpawnSyncReturns } from "child_process";
import * as path from "path";
import { writeRendered } from "../../src/cli/render";
import { loadStackConfig, stackFile } from "../../src/config/stack";
import { renderGuest } from "../../src/render";
import { loadTemplates } from "../../src/render/templates";
import { hostFor, root, tempDir, tempHome } from "../helpers";

export const guestDir = path.join(root, "templates", "guest");
export const guestNs = path.join(__dirname, "guest-ns.sh");

let rendered: string | undefined;
export { tempDir };

/** The CI stack's rendered guest tree: a directory laid out like the guest's /. */
export function renderedFiles(): string {
    if (rendered === undefined) {
        const home = tempHome();
        const config = loadStackConfig(stackFile("ci"), "ci", hostFor(home));
        const out = tempDir("cc-layers-render-");
        writeRendered(renderGuest(config, loadTemplates()), out);
        rendered = path.join(out, "files");
    }
    return rendered;
}

export interface Run {
    readonly status: number | null;
    readonly stdout: string;
    readonly stderr: string;
}

function result(r: SpawnSyncReturns<string>): Run {
    if (r.error) throw r.error;
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs a bash script as root inside a fresh guest namespace. */
export function inGuest(script: string, input?: string): Run {
    return result(
        spawnSync(guestNs, [renderedFiles(), "--", "bash", "-euo", "pipefail", "-c", script], {
            encoding: "utf8",
            input,
            timeout: 120_000,
        }),
    );
}

/**
 * Runs a command on the host (tools such as shellcheck, sshd -t on temporary files). Without input,
 * stdin is /dev/null: Node's stdin is a socket, and Debian's bash reads /etc/bash.bashrc in a
 * non-interactive shell whose stdin is a socket (as under sshd) when SHLVL is below 2.
 */
export function run(cmd: string, args: readonly string[], opts: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Run {
    const stdin = opts.input === undefined ? "ignore" : "pipe";
    return result(spawnSync(cmd, args, { encoding: "utf8", timeout: 120_000, stdio: [stdin, "pipe", "pipe"], ...opts }));
}

/** A shell prefix that runs the rest of its line as the agent, with the agent's groups and environment. */
export const asAgent = "setpriv --reuid=agent --regid=agent --init-groups --reset-env --";
/** A shell command that runs one boot.d step the way the first-boot runner does. */
export const boot = (step: string) => `bash /usr/local/lib/cc-sandbox/boot.d/${step}`;
/** cc-sandbox-verify's checks less the credential bridge's (test/bridge checks those where a bridge runs). */
export const layerChecks = "firewall,dns,ipv6,users,nnp,bwrap,ssh,shares,apparmor,statusline,claude,projects";

/** What a script's `try NAME 'COMMAND'` printed for NAME (`NAME=RC OUTPUT` on a line of its own). */
export function tryResult(out: string, name: string): { rc: number; out: string } {
    const m = new RegExp(`^${name}=(\\d+) (.*)$`, "m").exec(out);
    if (!m) throw new Error(`no result for ${name} in:\n${out}`);
    return { rc: Number(m[1]), out: m[2] };
}
