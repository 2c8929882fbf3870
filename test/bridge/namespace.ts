/**
 * A real secure-ops bridge on this machine, inside private mount, network and PID namespaces
 * (bridge-namespace.sh): the guest files this layer owns are rendered from templates/guest, installed
 * over their guest paths in overlays, set up by the real first-boot step, and served by a real sshd
 * on 127.0.0.1:799 in a loopback-only network. Users exist only in the namespace's overlay of /etc.
 * Used by test/bridge and scripts/bench-bridge.mjs.
 */
import { spawn, spawnSync } from "child_process";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { loadConfig, rawConfigFromStackFile } from "../../src/config/load";
import { renderFiles } from "../../src/render";
import { loadTemplates } from "../../src/render/templates";

/** The guest files of the secure-ops layer, cc-sandbox-verify that checks it, and claude-backup that attacks it (the namespace installs nothing else). */
export const bridgeFiles = [
    "/etc/cc-sandbox/secure-ops.conf",
    "/etc/cc-sandbox/secure-ops-sshd_config",
    "/etc/cc-sandbox/secure-ops-sshd_common",
    "/etc/logrotate.d/cc-sandbox-secure-ops",
    "/etc/systemd/system/cc-sandbox-secure-ops.service",
    "/usr/local/bin/secure_run",
    "/usr/local/bin/srun",
    "/usr/local/bin/cc-sandbox-verify",
    "/usr/local/lib/cc-sandbox/verify/network.sh",
    "/usr/local/lib/cc-sandbox/verify/bridge.sh",
    "/usr/local/bin/claude-backup",
    "/usr/local/lib/cc-sandbox/boot.d/15-proc.sh",
    "/usr/local/lib/cc-sandbox/boot.d/60-secure-ops.sh",
    "/usr/local/lib/cc-sandbox/secure-ops-common.sh",
    "/usr/local/lib/cc-sandbox/workers.sh",
    "/usr/local/lib/cc-sandbox/secure-ops-dispatch",
    "/usr/local/sbin/cc-sandbox-secure-ops",
];

export interface AllowedScript {
    readonly path: string;
    readonly args?: string;
}

export interface RunResult {
    readonly status: number | null;
    readonly stdout: string;
    readonly stderr: string;
}

export interface Bridge {
    /** The deploy-token secret, generated for this run. */
    readonly token: string;
    /** Runs a bash script as root or as the agent (clean environment, HOME=/home/agent) in the namespaces. */
    run(user: "root" | "agent", script: string, input?: string): RunResult;
    /** The operations log's lines. */
    log(): string[];
    stop(): void;
}

/**
 * Renders the bridge's guest files, and sandbox.env, as the program renders them for the ci stack
 * whose secureOps.scripts are `scripts` (HOME holds the SSH key loading the config reads).
 */
export function renderBridgeFiles(scripts: readonly AllowedScript[], home: string): { path: string; mode: string; content: string }[] {
    const stack = path.join(__dirname, "../../stacks/Pulumi.ci.yaml");
    const raw = rawConfigFromStackFile(fs.readFileSync(stack, "utf8"), stack);
    const config = loadConfig(
        "bridge",
        { ...raw, secureOps: { scripts: scripts.map((s) => (s.args === undefined ? { path: s.path } : { path: s.path, args: s.args })) } },
        { home, readFile: (f: string) => fs.readFileSync(f, "utf8") },
    );
    const wanted = [...bridgeFiles, "/etc/cc-sandbox/sandbox.env"];
    const files = renderFiles(config, loadTemplates()).filter((f) => wanted.includes(f.path));
    const missing = wanted.filter((p) => !files.some((f) => f.path === p));
    if (missing.length > 0) throw new Error(`templates/guest lacks ${missing.join(", ")}`);
    return files.map((f) => ({ path: f.path, mode: f.mode, content: f.content }));
}

function childPid(pid: number): number {
    const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
    const child = Number(children.split(/\s+/)[0]);
    if (!Number.isInteger(child) || child <= 0) throw new Error(`unshare (${pid}) has no child`);
    return child;
}

export async function startBridge(scripts: readonly AllowedScript[], timeoutMs = 90000): Promise<Bridge> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cc-bridge-"));
    const stage = path.join(dir, "stage");
    const work = path.join(dir, "work");
    fs.mkdirSync(path.join(stage, "files"), { recursive: true, mode: 0o700 });
    fs.mkdirSync(work, { mode: 0o700 });
    const home = path.join(dir, "home");
    fs.mkdirSync(path.join(home, ".ssh"), { recursive: true, mode: 0o700 });
    spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "bridge", "-f", path.join(home, ".ssh", "id_ed25519")]);
    const files = renderBridgeFiles(scripts, home);
    for (const f of files) {
        const target = path.join(stage, "files", f.path);
        fs.mkdirSync(path.dirname(target), { recursive: true });
        fs.writeFileSync(target, f.content);
    }
    fs.writeFileSync(path.join(stage, "manifest"), files.map((f) => `${f.mode} ${f.path}\n`).join(""));
    const conf = files.find((f) => f.path === "/etc/cc-sandbox/secure-ops.conf")!.content;
    fs.writeFileSync(path.join(stage, "secure-ops.conf"), conf);
    const token = randomBytes(24).toString("base64url");
    fs.writeFileSync(path.join(stage, "deploy-token"), token, { mode: 0o600 });

    const holder = spawn(
        "unshare",
        ["--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private",
            path.join(__dirname, "bridge-namespace.sh"), stage, work],
        { stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    holder.stdout.on("data", (d) => (output += d));
    holder.stderr.on("data", (d) => (output += d));
    const cleanup = () => {
        if (holder.exitCode === null) holder.kill("SIGKILL");
        fs.rmSync(dir, { recursive: true, force: true });
    };
    try {
        await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`bridge not ready after ${timeoutMs} ms:\n${output}`)), timeoutMs);
            holder.stdout.on("data", () => {
                if (/^READY$/m.test(output)) {
                    clearTimeout(timer);
                    resolve();
                }
            });
            holder.on("exit", (code) => {
                clearTimeout(timer);
                reject(new Error(`bridge set-up exited with ${code}:\n${output}`));
            });
        });
    } catch (err) {
        cleanup();
        throw err;
    }
    const init = childPid(holder.pid!);
    const enter = ["-t", String(init), "-m", "-n", "-p", "--"];
    const agentEnv = ["env", "-i", "HOME=/home/agent", "USER=agent", "LOGNAME=agent", "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"];

    const run = (user: "root" | "agent", script: string, input?: string): RunResult => {
        const argv = user === "root"
            ? [...enter, "bash", "-c", script]
            : [...enter, "runuser", "-u", "agent", "--", ...agentEnv, "bash", "-c", script];
        const r = spawnSync("nsenter", argv, { encoding: "utf8", input, timeout: 60000 });
        return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
    };
    return {
        token,
        run,
        log: () => run("root", "cat /var/log/cc-sandbox/secure-ops.log").stdout.split("\n").filter((l) => l !== ""),
        stop: cleanup,
    };
}
