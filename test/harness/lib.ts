/**
 * The namespace harness: a rendered guest in a private mount namespace inside a "guest" network
 * namespace, joined by a veth pair to an "internet" namespace that holds a test DNS server (records
 * from a file) and test TCP/UDP servers on every record's address. Nothing is written to the host's
 * /etc, /usr, /var or /home: the guest sees overlays of them whose upper layers live in a tmpfs of
 * its own mount namespace. Traffic goes only between the two namespaces.
 *
 * Used by `npm run harness` (scripts/harness.mjs) and by the jest suites in test/harness, which
 * start one harness per file and run many commands in it. Needs root.
 */
import { spawn, spawnSync, ChildProcess } from "child_process";
import * as fs from "fs";
import { isIP } from "net";
import * as os from "os";
import * as path from "path";
import { parse, stringify } from "yaml";
import { waitFor } from "../helpers";
import { DnsRecord, entriesOf, hostsFile, makeTestCa, makeTestHome, parseRecords, planOf, renderGuestTree, sh } from "./inputs";
export { waitFor, DnsRecord, entriesOf, makeTestCa, makeTestHome, parseRecords, planOf, renderGuestTree };

export const repoRoot = path.resolve(__dirname, "../..");

/** A stack file of a suite's own in DIR: the ci stack with SETTINGS (cc-sandbox:KEY for each key). */
export function writeCiStack(dir: string, name: string, settings: Record<string, unknown>): string {
    const doc = parse(fs.readFileSync(path.join(repoRoot, "stacks/Pulumi.ci.yaml"), "utf8"));
    for (const [key, value] of Object.entries(settings)) doc.config[`cc-sandbox:${key}`] = value;
    const file = path.join(dir, `Pulumi.${name}.yaml`);
    fs.writeFileSync(file, stringify(doc));
    return file;
}
/**
 * The Node.js running the tests, as the guest namespace sees it: the guest gets a /tmp of its own,
 * which hides a Node installed under the host's /tmp (CI's .tools/node in a clone there).
 */
export const guestNode = "/run/ccfw-node";
/**
 * The tests' own clients, as the guest sees them (copied in at set-up, for the same reason):
 * tls-client.js, hello.js (test/harness) and tls-bench-client.cjs (scripts/lib).
 */
export const guestTools = "/run/ccfw-tools";
const toolFiles = [path.join(__dirname, "tls-client.js"), path.join(__dirname, "hello.js"), path.join(repoRoot, "scripts/lib/tls-bench-client.cjs")];

export interface HarnessOptions {
    /** A stack under stacks/ (rendered with `npm run render -- --stack NAME`). */
    readonly stack?: string;
    /** Any stack file (rendered with `npm run render -- --config FILE`). */
    readonly config?: string;
    /** A guest tree rendered already (DIR/files/<guest path>): skips rendering. */
    readonly rendered?: string;
    /** The records the internet's DNS server serves, in the --records format (test/README.md). */
    readonly records: string;
    /** HOME for rendering (its .ssh/id_ed25519.pub is the VM's key); a throw-away one by default. */
    readonly home?: string;
    /** Run `cc-sandbox-firewall up` and start the watcher (default true). */
    readonly bringUp?: boolean;
    /** Give the internet namespace every record's address, so the test servers answer on it
     *  (default true; a benchmark that only resolves names can skip it). */
    readonly assignAddresses?: boolean;
}

export interface RunResult {
    readonly code: number;
    readonly stdout: string;
    readonly stderr: string;
}

export interface RunOptions {
    /** `agent` (default) or `root`, or any user that exists in the guest. */
    readonly user?: string;
    readonly input?: string;
    readonly timeoutMs?: number;
}

function run(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
        const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60000);
        child.stdout.on("data", (d) => (stdout += d));
        child.stderr.on("data", (d) => (stderr += d));
        child.on("error", reject);
        child.on("close", (code, signal) => {
            clearTimeout(timer);
            resolve({ code: code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1), stdout, stderr });
        });
        child.stdin.on("error", () => {});
        child.stdin.end(opts.input ?? "");
    });
}

let counter = 0;
// Harnesses still running: torn down if the process exits without stopping them.
const live = new Set<Harness>();
process.once("exit", () => live.forEach((h) => h.stopSync()));
for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
        live.forEach((h) => h.stopSync());
        process.exit(128 + os.constants.signals[signal]);
    });
}
const pathEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const guestTopDirs = ["etc", "usr", "var", "home", "opt", "srv"];

export class Harness {
    /** The DNS server in the internet namespace: the guest's upstream resolver. */
    readonly dnsAddress = "192.0.2.53";
    readonly guestAddress: string;
    readonly gatewayAddress: string;
    readonly guestAddress6 = "fd00:ccf0::2";
    readonly internetAddress6 = "fd00:ccf0::1";
    readonly guestNs: string;
    readonly internetNs: string;
    private holder?: ChildProcess;
    private servers?: ChildProcess;
    private records: DnsRecord[] = [];
    private stopped = false;
    private assignAddresses = true;

    private constructor(readonly dir: string, readonly id: string) {
        this.guestNs = `ccfw-${id}-g`;
        this.internetNs = `ccfw-${id}-i`;
        // A /30 of 100.64.0.0/10 per harness, so kernel log lines (shared by all namespaces) can be
        // told apart by source address.
        const k = (process.pid * 8 + counter) & 0xfffff;
        const base = `100.${64 + ((k >> 14) & 63)}.${(k >> 6) & 255}`;
        this.gatewayAddress = `${base}.${(k & 63) * 4 + 1}`;
        this.guestAddress = `${base}.${(k & 63) * 4 + 2}`;
    }

    static async start(opts: HarnessOptions): Promise<Harness> {
        const id = `${process.pid}-${counter++}`;
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ccfw-"));
        fs.chmodSync(dir, 0o755); // the test DNS server reads its hosts file as user dnsmasq
        const h = new Harness(dir, id);
        live.add(h);
        try {
            await h.setUp(opts);
        } catch (err) {
            await h.stop();
            throw err;
        }
        return h;
    }

    private get vethGuest(): string {
        return `cf${this.id.replace("-", "x")}g`.slice(0, 15);
    }

    private get vethInternet(): string {
        return `cf${this.id.replace("-", "x")}i`.slice(0, 15);
    }

    private async setUp(opts: HarnessOptions): Promise<void> {
        this.records = parseRecords(opts.records);
        let tree = opts.rendered;
        if (!tree) {
            tree = path.join(this.dir, "render");
            const home = opts.home ?? makeTestHome(this.dir);
            renderGuestTree({ stack: opts.stack, config: opts.config, home }, tree);
        }
        const files = path.join(tree, "files");
        for (const top of fs.readdirSync(files)) {
            if (!guestTopDirs.includes(top)) throw new Error(`rendered tree has /${top}, which the harness does not overlay`);
        }

        // The kernel log is shared; let the guest namespace's LOG rules reach it (`denied` reads it).
        fs.writeFileSync("/proc/sys/net/netfilter/nf_log_all_netns", "1");

        const [g, i] = [this.guestNs, this.internetNs];
        sh("ip", ["netns", "add", g]);
        sh("ip", ["netns", "add", i]);
        sh("ip", ["link", "add", this.vethGuest, "netns", g, "type", "veth", "peer", "name", this.vethInternet, "netns", i]);
        const ipn = (ns: string, ...args: string[]) => sh("ip", ["-n", ns, ...args]);
        ipn(g, "link", "set", "lo", "up");
        ipn(i, "link", "set", "lo", "up");
        ipn(g, "addr", "add", `${this.guestAddress}/30`, "dev", this.vethGuest);
        ipn(i, "addr", "add", `${this.gatewayAddress}/30`, "dev", this.vethInternet);
        ipn(g, "addr", "add", `${this.guestAddress6}/64`, "dev", this.vethGuest, "nodad");
        ipn(i, "addr", "add", `${this.internetAddress6}/64`, "dev", this.vethInternet, "nodad");
        ipn(g, "link", "set", this.vethGuest, "up");
        ipn(i, "link", "set", this.vethInternet, "up");
        ipn(g, "route", "add", "default", "via", this.gatewayAddress);
        ipn(g, "-6", "route", "add", "default", "via", this.internetAddress6);
        ipn(i, "addr", "add", `${this.dnsAddress}/32`, "dev", "lo");
        this.assignAddresses = opts.assignAddresses ?? true;
        this.addRecordAddresses();
        // Ubuntu (systemd) lets every group use ICMP echo sockets; ping needs no privilege there.
        sh("ip", ["netns", "exec", g, "sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647"]);

        fs.writeFileSync(path.join(this.dir, "hosts"), hostsFile(this.records));
        const cnames = this.records.filter((r) => r.type === "CNAME").map((r) => `--cname=${r.name},${r.value}`);
        sh("ip", ["netns", "exec", i, "dnsmasq", "--no-resolv", "--no-hosts", `--addn-hosts=${this.dir}/hosts`,
            `--listen-address=${this.dnsAddress}`, "--bind-interfaces", "--log-queries", `--log-facility=${this.dir}/upstream.log`,
            `--pid-file=${this.dir}/upstream.pid`, "--local-ttl=0", ...cnames]);

        makeTestCa(path.join(this.dir, "tls"), this.records.map((r) => r.name));
        this.servers = spawn("ip", ["netns", "exec", i, process.execPath, path.join(__dirname, "servers.js"), "--tls", path.join(this.dir, "tls")], {
            stdio: ["ignore", "pipe", "inherit"],
        });
        await new Promise<void>((resolve, reject) => {
            this.servers!.stdout!.once("data", () => resolve());
            this.servers!.once("exit", (c) => reject(new Error(`test servers exited (${c})`)));
        });

        // The guest: private mount and PID namespaces inside the guest netns, with a /proc of its
        // own, held open by their first process (PID 1 there, as init is in the VM).
        // bash as that PID 1 reaps the daemons' exited children, as init does.
        this.holder = spawn("ip", ["netns", "exec", g, "unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private",
            "bash", "-c", "while :; do sleep 3600 & wait; done"], { stdio: "ignore" });
        if (!(await waitFor(() => this.holderReady(), 2050, 20))) throw new Error("the guest namespace holder did not start");

        const mnt = path.join(this.dir, "mnt");
        fs.mkdirSync(mnt);
        const bringUp = opts.bringUp ?? true;
        // What cloud-init does before the first-boot steps (users, then write_files), then the
        // guest's own boot runner, as cloud-init's runcmd runs it (without the firewall's step when
        // the caller brings the firewall up itself).
        const setup = `
set -euo pipefail
mount -t tmpfs -o mode=0755 ccfw-guest ${mnt}
. ${path.join(repoRoot, "test/guest-root.sh")}
guest_overlays ${mnt} ${guestTopDirs.map((d) => `/${d}`).join(" ")}
mount -t tmpfs -o mode=0755 ccfw-run /run
mkdir -p /run/lock /run/sshd
touch ${guestNode} && mount --bind ${process.execPath} ${guestNode}
install -d -m 0755 ${guestTools} && install -m 0644 ${toolFiles.join(" ")} ${guestTools}/
guest_users
guest_files ${files} ${guestTopDirs.map((d) => `/${d}`).join(" ")}
rm -f /etc/resolv.conf
printf 'nameserver %s\n' ${this.dnsAddress} >/etc/resolv.conf
# The test servers' CA, trusted as a public one is: curl and openssl check certificates against it.
install -D -m 0644 ${this.dir}/tls/ca.crt /usr/local/share/ca-certificates/cc-sandbox-test-ca.crt
update-ca-certificates >/dev/null 2>&1
ssh-keygen -A >/dev/null
# A /tmp of its own, once the rendered files (under the host's /tmp) are in.
mount -t tmpfs -o mode=1777 ccfw-tmp /tmp
${bringUp ? "/usr/local/lib/cc-sandbox/boot" : "for step in /usr/local/lib/cc-sandbox/boot.d/[0-9][0-9]-*.sh; do [ \"${step##*/}\" = 20-firewall.sh ] || bash \"$step\"; done"} >/run/ccfw-harness-boot.log 2>&1 ||
  { cat /run/ccfw-harness-boot.log >&2; exit 1; }
`;
        const r = await this.root(setup);
        if (r.code !== 0) throw new Error(`guest setup failed: ${r.stderr}`);

        if (bringUp) {
            // The daemons systemd starts in the VM: the firewall's watcher, sshd, the bridge's sshd.
            await this.startWatcher();
            const daemons = await this.root(
                "/usr/sbin/sshd -E /run/ccfw-harness-sshd.log </dev/null >/dev/null 2>&1 && " +
                    "install -m 0600 -o ccsecrets -g ccsecrets /dev/null /var/log/cc-sandbox/secure-ops-sshd.log && " +
                    "setpriv --reuid=ccsecrets --regid=ccsecrets --init-groups --inh-caps=+net_bind_service --ambient-caps=+net_bind_service -- setsid -f /usr/sbin/sshd -D -E /var/log/cc-sandbox/secure-ops-sshd.log -f /etc/cc-sandbox/secure-ops-sshd_config </dev/null >/dev/null 2>&1 && " +
                    "for i in $(seq 50); do cc-sandbox-secure-ops check >/dev/null 2>&1 && exit 0; sleep 0.1; done; cc-sandbox-secure-ops check",
            );
            if (daemons.code !== 0) throw new Error(`starting sshd failed: ${daemons.stderr}${daemons.stdout}`);
        }
    }

    /** The guest's PID 1: the holder's child inside the new PID namespace. */
    private get initPid(): number | undefined {
        const pid = this.holder?.pid;
        if (!pid) return undefined;
        try {
            const child = Number(fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/)[0]);
            return Number.isInteger(child) && child > 0 ? child : undefined;
        } catch {
            return undefined;
        }
    }

    private holderReady(): boolean {
        const pid = this.initPid;
        if (!pid) return false;
        try {
            return fs.readlinkSync(`/proc/${pid}/ns/pid`) !== fs.readlinkSync("/proc/self/ns/pid") && fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "bash";
        } catch {
            return false;
        }
    }

    private addRecordAddresses(): void {
        if (!this.assignAddresses) return;
        const have = sh("ip", ["-n", this.internetNs, "-o", "addr", "show", "dev", "lo"]);
        const added = new Set<string>();
        for (const r of this.records) {
            if (r.type === "CNAME") continue;
            const prefix = r.type === "A" ? "32" : "128";
            // Several names on one address (a CDN's): the address is added once.
            if (have.includes(` ${r.value}/${prefix} `) || added.has(r.value)) continue;
            added.add(r.value);
            sh("ip", ["-n", this.internetNs, "addr", "add", `${r.value}/${prefix}`, "dev", "lo", ...(r.type === "AAAA" ? ["nodad"] : [])]);
        }
    }

    /** Starts the state watcher the way its systemd unit does (`cc-sandbox-firewall watch`). */
    async startWatcher(): Promise<void> {
        const r = await this.root("setsid -f cc-sandbox-firewall watch </dev/null >>/run/ccfw-harness-watch.log 2>&1");
        if (r.code !== 0) throw new Error(`starting the watcher failed: ${r.stderr}`);
    }

    /**
     * Stops the watcher and waits out a reload it had started, for a test that must be the only one
     * to act on a change the watcher also follows (/etc/resolv.conf rewritten); startWatcher brings
     * it back.
     */
    async stopWatcher(): Promise<void> {
        const r = await this.root(
            "pkill -f 'sbin/cc-sandbox-firewall watc[h]'; " +
                "for i in $(seq 200); do pgrep -f 'sbin/cc-sandbox-firewall (watc[h]|appl[y])' >/dev/null || exit 0; sleep 0.05; done; exit 1",
        );
        if (r.code !== 0) throw new Error("the watcher, or a reload it started, did not end within 10 s");
    }

    /** Runs a bash command in the guest as `user` (default `agent`), with a login-like environment. */
    exec(command: string, opts: RunOptions = {}): Promise<RunResult> {
        const user = opts.user ?? "agent";
        const pid = String(this.initPid);
        const enter = ["-t", pid, "-m", "-n", "-p", "--"];
        if (user === "root") {
            return run("nsenter", [...enter, "env", "-i", "HOME=/root", "USER=root", "LOGNAME=root", `PATH=${pathEnv}`, "LANG=C.UTF-8",
                "bash", "-c", `cd / && ${command}`], opts);
        }
        return run("nsenter", [...enter, "setpriv", `--reuid=${user}`, `--regid=${user}`, "--init-groups", "--",
            "env", "-i", `HOME=/home/${user}`, `USER=${user}`, `LOGNAME=${user}`, `PATH=${pathEnv}`, "SHELL=/bin/bash", "LANG=C.UTF-8",
            "bash", "-c", `cd ~ 2>/dev/null || cd /; ${command}`], opts);
    }

    /**
     * A TLS connection from the guest as `user` (default agent) with test/harness/tls-client.js:
     * stdout is the server's banner line ("ok 198.51.100.10 443 sni=NAME\n"), "" when refused.
     */
    async tls(host: string, opts: RunOptions & { port?: number; sni?: string | null; connect?: string; insecure?: boolean; hold?: string; ready?: string } = {}): Promise<RunResult> {
        const args = [host, String(opts.port ?? 443)];
        if (opts.sni === null) args.push("--no-sni");
        else if (opts.sni !== undefined) args.push("--sni", opts.sni);
        if (opts.connect) args.push("--connect", opts.connect);
        // An address has no certificate of its own here: reaching it is what counts.
        if (opts.insecure ?? (isIP(host) !== 0 && !opts.sni)) args.push("--insecure");
        if (opts.hold) args.push("--hold", opts.hold, "--timeout", "60000");
        if (opts.ready) args.push("--ready", opts.ready);
        return this.exec(`${guestNode} ${guestTools}/tls-client.js ${args.map((a) => `'${a}'`).join(" ")}`, opts);
    }

    root(command: string, opts: Omit<RunOptions, "user"> = {}): Promise<RunResult> {
        return this.exec(command, { ...opts, user: "root" });
    }

    /** Runs a bash command as root in the internet namespace (e.g. connecting in to the guest). */
    internet(command: string, opts: Omit<RunOptions, "user"> = {}): Promise<RunResult> {
        return run("ip", ["netns", "exec", this.internetNs, "bash", "-c", command], opts);
    }

    /** Replaces the DNS records (A/AAAA changes take effect at once; CNAMEs are fixed at start). */
    setRecords(text: string): void {
        this.records = parseRecords(text);
        this.addRecordAddresses();
        fs.writeFileSync(path.join(this.dir, "hosts"), hostsFile(this.records));
        const pid = Number(fs.readFileSync(path.join(this.dir, "upstream.pid"), "utf8").trim());
        process.kill(pid, "SIGHUP");
    }

    /** Every name the internet's DNS server was asked, in order. */
    upstreamQueries(): string[] {
        const log = fs.existsSync(path.join(this.dir, "upstream.log")) ? fs.readFileSync(path.join(this.dir, "upstream.log"), "utf8") : "";
        return [...log.matchAll(/query\[[A-Z0-9]+\] (\S+) from/g)].map((m) => m[1]);
    }

    /** Kills every process in both namespaces, deletes them (and with them veths and sets). */
    async stop(): Promise<void> {
        this.stopSync();
    }

    /** The same, synchronously: safe in a process 'exit' handler. */
    stopSync(): void {
        if (this.stopped) return;
        this.stopped = true;
        live.delete(this);
        for (const ns of [this.guestNs, this.internetNs]) {
            const pids = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).stdout?.split(/\s+/).filter(Boolean) ?? [];
            for (const p of pids) {
                try {
                    process.kill(Number(p), "SIGKILL");
                } catch {
                    /* already gone */
                }
            }
        }
        this.holder?.kill("SIGKILL");
        this.servers?.kill("SIGKILL");
        spawnSync("sleep", ["0.1"]);
        for (const ns of [this.guestNs, this.internetNs]) spawnSync("ip", ["netns", "del", ns]);
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}
