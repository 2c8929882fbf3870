/**
 * The world the end-to-end test deploys into: the Pulumi engine built from Go modules, the Ubuntu
 * 24.04 image, libvirtd inside a network namespace with no route out (scripts/libvirt-netns.sh),
 * the test's "internet" on that namespace's bridge (libvirt's DNS records and banner servers), a
 * throw-away HOME with a fresh key and a code folder, and a copy of the project whose stack file
 * the test may edit. Everything the VM, the CLI and ssh do happens inside the namespace.
 */
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { shellQuote } from "../../src/shell";
import { root, tempHome, waitFor } from "../helpers";
import { makeTestCa } from "../harness/inputs";

export const ns = "ccsbx-e2e";
export const subnet = "198.18.0";
export const subnet6 = "fd00:ccf2::";
/** An IPv6 test host: the guest gets an address on the network, so blocking IPv6 is not vacuous. */
export const host6 = `${subnet6}12`;
export const network = "ccsbx";
export const bridge = "ccsbx0";
/** The libvirt host's paths the ci stack names (stacks/Pulumi.ci.yaml). */
export const imageLink = "/var/lib/cc-sandbox/ci-image";
export const storageDir = "/var/lib/cc-sandbox/vms";
export const vmName = "cc-ci";
/** The guest's console, as the libvirt driver keeps it. */
export const consoleLog = `/var/log/libvirt/qemu/${vmName}-console.log`;

/**
 * The test's "internet": addresses of the namespace outside the VM's own subnet, which the VM
 * routes through the bridge (DHCP option 121). Every one runs the banner servers
 * (test/harness/servers.js).
 */
export const internet = "198.19.0";
export const hosts = {
    "allowed.test.example": `${internet}.10`,
    "new.test.example": `${internet}.11`,
    "blocked.test.example": `${internet}.12`,
    "a.wild.test.example": `${internet}.13`,
    "git.test.example": `${internet}.14`,
} as const;
/** A private network the VM routes through the bridge too, with a banner server on it. */
export const privateHost = "10.99.0.10";
/**
 * Names under the stack's wildcard entry whose answers must open nothing (rebinding): the
 * hypervisor's own address on the VM's network, and a private address.
 */
export const rebindHosts = {
    "hypervisor.wild.test.example": `${subnet}.1`,
    "private.wild.test.example": privateHost,
} as const;

export interface Run {
    readonly code: number | null;
    readonly stdout: string;
    readonly stderr: string;
    readonly seconds: number;
}

export function sh(cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): string {
    const r = spawnSync(cmd, args, { encoding: "utf8", env: opts.env ?? process.env, input: opts.input, maxBuffer: 64 << 20 });
    if (r.error) throw r.error;
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}):\n${r.stderr}${r.stdout}`);
    return r.stdout;
}

/** Runs a command to its end, without blocking the event loop, killing it after timeoutMs. */
export function runAsync(argv: readonly string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number; log?: string } = {}): Promise<Run> {
    const started = Date.now();
    return new Promise((resolve, reject) => {
        // A group of its own: on timeout everything it started goes too (an ssh under `bash -c`, its
        // ProxyCommand), or their open pipes would hold this run until they end by themselves.
        const child = spawn(argv[0], argv.slice(1), { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ["pipe", "pipe", "pipe"], detached: true });
        let stdout = "";
        let stderr = "";
        const log = opts.log ? fs.createWriteStream(opts.log, { flags: "a" }) : undefined;
        log?.write(`\n$ ${argv.join(" ")}\n`);
        child.stdout.on("data", (d) => {
            stdout += d;
            log?.write(d);
        });
        child.stderr.on("data", (d) => {
            stderr += d;
            log?.write(d);
        });
        const timer = opts.timeoutMs
            ? setTimeout(() => {
                  try {
                      process.kill(-child.pid!, "SIGKILL");
                  } catch {
                      child.kill("SIGKILL");
                  }
              }, opts.timeoutMs)
            : undefined;
        child.on("error", reject);
        child.on("close", (code) => {
            if (timer) clearTimeout(timer);
            log?.end();
            resolve({ code, stdout, stderr, seconds: (Date.now() - started) / 1000 });
        });
        child.stdin.end(opts.input ?? "");
    });
}

export class World {
    readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "cc-e2e-"));
    readonly project = path.join(this.dir, "project");
    readonly state = path.join(this.dir, "state");
    readonly log = path.join(this.dir, "e2e.log");
    readonly home: string;
    readonly code: string;
    engineBin = "";
    /** The image directory scripts/build-image.sh printed (disk.qcow2 in it). */
    imageDir = "";
    private servers?: ChildProcess;
    private previousImageLink?: string;

    constructor() {
        this.home = tempHome("cc-e2e-home-");
        this.code = path.join(this.home, "code");
    }

    /** The stack file the CLI reads, in the project copy. */
    get stackFile(): string {
        return path.join(this.project, "stacks", "Pulumi.ci.yaml");
    }

    /** Builds (or reuses) the engine and the image; each prints its own progress. */
    prepareTools(): { engine: number; image: number } {
        let t = Date.now();
        this.engineBin = sh(path.join(root, "scripts/build-engine.sh"), []).trim();
        const engine = (Date.now() - t) / 1000;
        t = Date.now();
        this.imageDir = sh(path.join(root, "scripts/build-image.sh"), []).trim();
        return { engine, image: (Date.now() - t) / 1000 };
    }

    /** Waits for the guest to answer SSH (as the agent) from a boot other than BEFORE (its boot id); returns that answer. */
    async newBoot(sshCommand: string, before: string): Promise<Run> {
        let r: Run | undefined;
        const back = await waitFor(async () => {
            r = await this.inGuest(sshCommand, "agent", "cat /proc/sys/kernel/random/boot_id", { timeoutMs: 20_000 });
            return r.code === 0 && r.stdout !== before;
        }, 500_000, 5000);
        if (!back || !r) {
            // What a hang looks like from outside: the last login's answer, and the guest's console
            // (a stop job still running, a boot stuck on a unit, an emergency shell).
            const last = r ? `exit ${r.code}: ${r.stderr.trim().split("\n").slice(-3).join(" | ")}` : "no attempt";
            const screen = fs.existsSync(consoleLog) ? fs.readFileSync(consoleLog, "utf8").trimEnd().split("\n").slice(-25).join("\n") : "(no console log)";
            throw new Error(`the guest did not come back within 500 s (last login ${last})\n--- console ---\n${screen}\n--- hypervisor ---\n${this.diagnose()}`);
        }
        return r;
    }

    /** A command in the guest over an sshCommand output (its last word is the destination) as USER. */
    inGuest(sshCommand: string, user: string, command: string, opts: { input?: string; timeoutMs?: number } = {}): Promise<Run> {
        const words = sshCommand.split(" ");
        const destination = words.pop()!;
        return this.shell([...words, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", destination.replace(/^[^@]+@/, `${user}@`), "--", shellQuote(command)].join(" "), opts);
    }

    /** The state directory and a copy of the project, with the ci stack's file the test may edit. */
    protected copyProject(): void {
        fs.mkdirSync(this.state);
        fs.mkdirSync(this.project);
        for (const f of ["Pulumi.yaml", "package.json", "tsconfig.json", "src", "templates", "scripts"]) {
            fs.cpSync(path.join(root, f), path.join(this.project, f), { recursive: true });
        }
        fs.mkdirSync(path.join(this.project, "stacks"));
        fs.copyFileSync(path.join(root, "stacks", "Pulumi.ci.yaml"), this.stackFile);
        fs.symlinkSync(path.join(root, "node_modules"), path.join(this.project, "node_modules"));
    }

    /** The command prefix that puts what follows where the CLI and ssh run: inside the namespace. */
    protected enter(): string[] {
        return ["ip", "netns", "exec", ns];
    }

    /** HOME as the CLI sees it there. */
    protected cliHome(): string {
        return this.home;
    }

    /** libvirt in the namespace, the test internet on its bridge, the HOME and the project copy. */
    async start(): Promise<void> {
        // The ci stack names the image by this link.
        fs.mkdirSync(path.dirname(imageLink), { recursive: true });
        if (isSymlink(imageLink)) this.previousImageLink = fs.readlinkSync(imageLink);
        fs.rmSync(imageLink, { force: true });
        fs.symlinkSync(this.imageDir, imageLink);
        // The agent (uid 1001) writes the shared folder, which virtiofs shows with the host's owners.
        fs.chmodSync(this.home, 0o755);
        fs.mkdirSync(this.code, { mode: 0o777 });
        fs.chmodSync(this.code, 0o777);
        // A repository of the developer's in the shared folder, writable by everyone as the share
        // shows it (so only the guest's protection keeps the agent out of its .git).
        const repo = path.join(this.code, "repo");
        sh("git", ["init", "-q", repo]);
        sh("git", ["-C", repo, "-c", "user.name=dev", "-c", "user.email=dev@example.org", "commit", "-q", "--allow-empty", "-m", "first"]);
        sh("chmod", ["-R", "a+rwX", repo]);
        this.copyProject();

        sh(path.join(root, "scripts/libvirt-netns.sh"), ["up", ns], {
            env: { ...process.env, CCSBX_SUBNET: subnet, CCSBX_SUBNET6: subnet6, CCSBX_ROUTES: `${internet}.0/24 ${privateHost}/32` },
        });
        for (const ip of [...Object.values(hosts), privateHost]) sh("ip", ["-n", ns, "addr", "add", `${ip}/32`, "dev", "lo"]);
        for (const [name, ip] of [...Object.entries(hosts), ...Object.entries(rebindHosts)]) {
            sh("virsh", ["-q", "-c", "qemu:///system", "net-update", network, "add", "dns-host", `<host ip='${ip}'><hostname>${name}</hostname></host>`, "--live"]);
        }
        sh("ip", ["-n", ns, "addr", "add", `${host6}/64`, "dev", bridge, "nodad"]);
        makeTestCa(path.join(this.dir, "tls"), [...Object.keys(hosts), ...Object.keys(rebindHosts)]);
        this.servers = spawn("ip", ["netns", "exec", ns, process.execPath, path.join(root, "test/harness/servers.js"), "--tls", path.join(this.dir, "tls")], {
            stdio: ["ignore", "pipe", "inherit"],
        });
        await new Promise<void>((resolve, reject) => {
            this.servers!.stdout!.once("data", () => resolve());
            this.servers!.once("exit", (c) => reject(new Error(`test servers exited (${c})`)));
        });
    }

    /** The environment of every pulumi call: the built engine, local state, no service. */
    protected pulumiEnv(): NodeJS.ProcessEnv {
        return {
            PATH: `${this.engineBin}:${process.env.PATH}`,
            HOME: this.cliHome(),
            PULUMI_HOME: path.join(path.dirname(this.engineBin), "home"),
            PULUMI_SKIP_UPDATE_CHECK: "1",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
            PULUMI_BACKEND_URL: `file://${this.state}`,
            PULUMI_CONFIG_PASSPHRASE: "cc-sandbox-e2e",
            CI: "true",
        };
    }

    /** The command line of `pulumi ARGS` inside the namespace, with only pulumiEnv's environment. */
    protected pulumiArgv(args: readonly string[]): string[] {
        return [...this.enter(), "env", "-i", ...envArgs(this.pulumiEnv()), "pulumi", ...args, "--non-interactive"];
    }

    /** `pulumi ARGS` in the project copy, inside the namespace. */
    pulumi(args: readonly string[], timeoutMs = 40 * 60_000): Promise<Run> {
        return runAsync(this.pulumiArgv(args), {
            cwd: this.project,
            timeoutMs,
            log: this.log,
        });
    }

    /** `npm run project -- ARGS` in the project copy, inside the namespace, with the CLI's environment. */
    projectCli(args: readonly string[]): Promise<Run> {
        const zx = path.join(root, "node_modules", "zx", "build", "cli.js");
        return runAsync([...this.enter(), "env", "-i", ...envArgs(this.pulumiEnv()), process.execPath, zx, path.join(this.project, "scripts", "project.mjs"), ...args], {
            cwd: this.project,
            timeoutMs: 5 * 60_000,
            log: this.log,
        });
    }

    /** A `pulumi` process left running, for the test that kills one part-way. */
    pulumiDetached(args: readonly string[]): ChildProcess {
        const [cmd, ...rest] = this.pulumiArgv(args);
        const child = spawn(cmd, rest, {
            cwd: this.project,
            stdio: ["ignore", fs.openSync(this.log, "a"), fs.openSync(this.log, "a")],
            detached: true,
        });
        return child;
    }

    /** A shell command line (such as the sshCommand output plus a remote command) inside the namespace. */
    shell(line: string, opts: { input?: string; timeoutMs?: number } = {}): Promise<Run> {
        return runAsync([...this.enter(), "bash", "-c", line], { timeoutMs: opts.timeoutMs ?? 5 * 60_000, input: opts.input, log: this.log });
    }

    virsh(...args: string[]): { code: number | null; stdout: string } {
        const r = spawnSync("virsh", ["-q", "-c", "qemu:///system", ...args], { encoding: "utf8" });
        return { code: r.status, stdout: r.stdout };
    }

    /** What libvirt knows of the VM when a step fails: its state, leases and QEMU's log. */
    diagnose(): string {
        const out = (args: string[]) => `$ virsh ${args.join(" ")}\n${this.virsh(...args).stdout.trim()}`;
        const logTail = (file: string, n: number) => `$ tail -n ${n} ${file}\n${fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\n").slice(-n).join("\n") : "(none)"}`;
        return [
            out(["list", "--all"]),
            out(["domifaddr", vmName, "--source", "lease"]),
            out(["net-dhcp-leases", network]),
            logTail(`/var/log/libvirt/qemu/${vmName}.log`, 15),
            logTail(consoleLog, 60),
        ].join("\n");
    }

    /** Everything libvirt and the state backend still hold of the VM. */
    leftovers(): string[] {
        const found: string[] = [];
        if (this.virsh("dominfo", vmName).code === 0) found.push(`domain ${vmName}`);
        if (fs.existsSync(storageDir)) for (const f of fs.readdirSync(storageDir)) if (f.startsWith(vmName)) found.push(`file ${storageDir}/${f}`);
        for (const pool of this.virsh("pool-list", "--all", "--name").stdout.split("\n").filter(Boolean)) {
            for (const line of this.virsh("vol-list", pool).stdout.split("\n")) {
                if (line.includes(vmName)) found.push(`volume ${pool}: ${line.trim()}`);
            }
        }
        // A UEFI VM's variable store (libvirt's default place for it).
        const nvram = `/var/lib/libvirt/qemu/nvram/${vmName}_VARS.fd`;
        if (fs.existsSync(nvram)) found.push(`file ${nvram}`);
        if (fs.existsSync(consoleLog)) found.push(`file ${consoleLog}`);
        const knownHosts = path.join(this.home, ".ssh", `known_hosts.cc-sandbox.${vmName}`);
        if (fs.existsSync(knownHosts)) found.push(`file ${knownHosts}`);
        return found;
    }

    /** Pulumi resources the stack's state still records (empty after destroy). */
    async stateResources(): Promise<string[]> {
        const r = await this.pulumi(["stack", "export", "-s", "ci"]);
        if (r.code !== 0) throw new Error(`stack export failed: ${r.stderr}`);
        const doc = JSON.parse(r.stdout) as { deployment?: { resources?: { urn: string; type: string }[] } };
        return (doc.deployment?.resources ?? []).map((x) => x.type);
    }

    /** Removes the VM if a test left it, the namespace with its daemons, and every temporary file. */
    stop(): void {
        this.servers?.kill("SIGKILL");
        if (this.virsh("dominfo", vmName).code === 0) {
            this.virsh("destroy", vmName);
            this.virsh("undefine", vmName, "--remove-all-storage", "--nvram");
        }
        spawnSync(path.join(root, "scripts/libvirt-netns.sh"), ["down", ns], { stdio: "inherit", env: { ...process.env, CCSBX_SUBNET: subnet, CCSBX_SUBNET6: subnet6 } });
        fs.rmSync(imageLink, { force: true });
        if (this.previousImageLink) fs.symlinkSync(this.previousImageLink, imageLink);
        // Made by the driver's first create and by prepareTools; kept if anything else is there.
        for (const dir of [storageDir, path.dirname(storageDir)]) {
            try {
                fs.rmdirSync(dir);
            } catch {
                /* not empty, or not made */
            }
        }
        fs.rmSync(this.home, { recursive: true, force: true });
        if (process.env.CC_E2E_KEEP !== "1") {
            fs.rmSync(this.dir, { recursive: true, force: true });
            for (const n of ["", ".0", ".1", ".2"]) fs.rmSync(consoleLog + n, { force: true });
        }
    }
}

export function envArgs(env: NodeJS.ProcessEnv): string[] {
    return Object.entries(env)
        .filter(([, v]) => v !== undefined && v !== "")
        .map(([k, v]) => `${k}=${v}`);
}

function isSymlink(p: string): boolean {
    try {
        return fs.lstatSync(p).isSymbolicLink();
    } catch {
        return false;
    }
}
