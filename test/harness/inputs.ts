/**
 * What a harness is made from, apart from its namespaces: the DNS records file, the test CA the
 * guest trusts, a throw-away HOME, an allowlist plan from entries written one a line, and the
 * stack's rendered guest tree.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { loadConfig } from "../../src/config/load";
import { renderEgressPlan } from "../../src/render/egress";
import { root } from "../helpers";

export interface DnsRecord {
    readonly name: string;
    readonly type: "A" | "AAAA" | "CNAME";
    readonly value: string;
}

const ipv4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const ipv6 = /^[0-9a-f:]+$/i;
const dnsName = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** `NAME TYPE VALUE` lines, `#` comments: A (IPv4), AAAA (IPv6) or CNAME (a name with its own A). */
export function parseRecords(text: string): DnsRecord[] {
    const records: DnsRecord[] = [];
    const errors: string[] = [];
    text.split("\n").forEach((raw, i) => {
        const line = raw.replace(/#.*/, "").trim();
        if (!line) return;
        const [name, type, value, ...rest] = line.split(/\s+/);
        const bad = (why: string) => errors.push(`records line ${i + 1}: ${why}: '${raw}'`);
        if (rest.length || value === undefined) return bad("expected NAME TYPE VALUE");
        if (!dnsName.test(name)) return bad("NAME must be a lowercase DNS name");
        if (type === "A" && ipv4.test(value)) records.push({ name, type, value });
        else if (type === "AAAA" && ipv6.test(value) && value.includes(":")) records.push({ name, type, value: value.toLowerCase() });
        else if (type === "CNAME" && dnsName.test(value)) records.push({ name, type, value });
        else bad("TYPE must be A (IPv4), AAAA (IPv6) or CNAME (name)");
    });
    if (errors.length) throw new Error(errors.join("\n"));
    return records;
}

export function hostsFile(records: readonly DnsRecord[]): string {
    return records.filter((r) => r.type !== "CNAME").map((r) => `${r.value} ${r.name}\n`).join("");
}

/** Runs a command on the host, throwing with its output when it fails. */
export function sh(cmd: string, args: string[], input?: string): string {
    const r = spawnSync(cmd, args, { input, encoding: "utf8" });
    if (r.status !== 0) {
        throw new Error(`${cmd} ${args.join(" ")} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`);
    }
    return r.stdout;
}



/**
 * A certificate authority made for one test run, and a server certificate it signs for every given
 * name, every subdomain of it and every sibling (`*.` its parent): DIR/ca.crt, DIR/server.key,
 * DIR/server.crt. The test servers on port 443 present it for any server name; a guest that trusts
 * DIR/ca.crt checks certificates as it would on the internet.
 */
export function makeTestCa(dir: string, names: readonly string[]): void {
    fs.mkdirSync(dir, { recursive: true });
    const f = (name: string) => path.join(dir, name);
    const sans = new Set<string>();
    for (const n of names) {
        sans.add(n);
        sans.add(`*.${n}`);
        if (n.split(".").length > 2) sans.add(`*.${n.slice(n.indexOf(".") + 1)}`);
    }
    fs.writeFileSync(f("server.ext"), `basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=${[...sans].map((n) => `DNS:${n}`).join(",")}\n`);
    sh("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=cc-sandbox test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", f("ca.key"), "-out", f("ca.crt")]);
    sh("openssl", ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=cc-sandbox test server", "-keyout", f("server.key"), "-out", f("server.csr")]);
    sh("openssl", ["x509", "-req", "-in", f("server.csr"), "-CA", f("ca.crt"), "-CAkey", f("ca.key"), "-CAcreateserial", "-days", "2", "-extfile", f("server.ext"), "-out", f("server.crt")]);
    fs.chmodSync(f("server.key"), 0o644); // read by the test servers only, inside the test's namespaces
}

/** A throw-away HOME holding a fresh .ssh/id_ed25519 key pair, for rendering (the caller removes it). */
export function makeTestHome(parent = os.tmpdir()): string {
    const home = fs.mkdtempSync(path.join(parent, "ccfw-home-"));
    fs.mkdirSync(path.join(home, ".ssh"), { mode: 0o700 });
    sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "harness", "-f", path.join(home, ".ssh", "id_ed25519")]);
    return home;
}

let planHome: string | undefined;

/**
 * The allowlist file the guest loads (an egress plan, src/render/egress.ts) for entries written one
 * a line as a reader writes them: `NAME PORTS` (`*.name` for a wildcard, ports such as `22,443/raw`)
 * or `CIDR PORTS`. Validated by the config loader, as a stack's entries are: a bad entry throws.
 */
export function planOf(entries: string): string {
    const domains: { name: string; ports: (number | string)[] }[] = [];
    const cidrs: { cidr: string; ports: number[] }[] = [];
    for (const line of entries.split("\n").map((l) => l.replace(/#.*/, "").trim()).filter(Boolean)) {
        const [what, ports = "443"] = line.split(/\s+/);
        const list = ports.split(",").map((p) => (/^\d+$/.test(p) ? Number(p) : p));
        if (/^[\d.]+\/\d+$/.test(what)) cidrs.push({ cidr: what, ports: list as number[] });
        else domains.push({ name: what, ports: list });
    }
    if (planHome === undefined) {
        const made = makeTestHome();
        process.once("exit", () => fs.rmSync(made, { recursive: true, force: true }));
        planHome = made;
    }
    const home = planHome;
    const config = loadConfig("harness", { allowlist: { presets: [], domains, cidrs } }, { home, readFile: (f: string) => fs.readFileSync(f, "utf8") });
    return renderEgressPlan(config.allowlist);
}

/** The entries an allowlist file was planned from (its `#   NAME PORTS` comment lines). */
export function entriesOf(plan: string): string {
    return [...plan.matchAll(/^# {3}(\S+ \S+)$/gm)].map((m) => m[1] + "\n").join("");
}

/** Renders a stack's guest tree into DIR with the project's own `render` command. */
export function renderGuestTree(opts: { stack?: string; config?: string; home: string }, dir: string): void {
    const which = opts.config ? ["--config", opts.config] : ["--stack", opts.stack ?? ""];
    const r = spawnSync(path.join(root, "node_modules/.bin/zx"), ["scripts/render.mjs", ...which, "--out", dir], {
        cwd: root,
        env: { ...process.env, HOME: opts.home },
        encoding: "utf8",
    });
    if (r.status !== 0) throw new Error(`render failed: ${r.stderr || r.stdout}`);
}
