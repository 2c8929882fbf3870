/**
 * What the firewall suites share: the test internet's records, the stack's allowlist, a harness
 * started for the file (its own, so the files run apart), and the probes the agent attacks with.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { late } from "../helpers";
import { Harness, RunResult, writeCiStack } from "./lib";

export const records = `
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

export const allowlistDomains = [
    "allowed.test.example",
    { name: "git.test.example", ports: [22, 443] },
    "*.wild.test.example",
    "rotate.test.example",
    "late.test.example",
    "removed.test.example",
    "alias.test.example",
];

/** A stack file of our own: the ci stack with this suite's allowlist and firewall settings. */
function writeStack(dir: string): string {
    return writeCiStack(dir, "fwtest", { allowlist: { presets: [], domains: allowlistDomains, cidrs: [{ cidr: "203.0.113.0/28", ports: [8080] }] }, firewall: { enabled: true, githubMeta: true, logDenied: true } });
}

/** A harness of this file's own (h), started before its tests and stopped after them, and how the agent probes the network from its guest. */
export function firewallSuite() {
    const s = { h: undefined as unknown as Harness, work: "" };
    beforeAll(async () => {
        s.work = fs.mkdtempSync(path.join(os.tmpdir(), "ccfw-test-"));
        s.h = await Harness.start({ config: writeStack(s.work), records });
    }, 120000);
    afterAll(async () => {
        await s.h?.stop();
        fs.rmSync(s.work, { recursive: true, force: true });
    });
    return {
        h: late(() => s.h),
        /** Connects over TCP as the agent; resolves with the banner line (empty when refused). */
        tcp: (host: string, port: number, user = "agent"): Promise<RunResult> => s.h.exec(`timeout 5 bash -c 'exec 3<>/dev/tcp/${host}/${port} && head -1 <&3'`, { user }),
        /** A TLS connection on 443 as the agent (test/harness/tls-client.js): the banner, "" when refused. */
        tls: (host: string, opts: Parameters<Harness["tls"]>[1] = {}) => s.h.tls(host, opts),
        udp: (host: string, port: number): Promise<RunResult> => s.h.exec(`exec 3<>/dev/udp/${host}/${port} && echo probe >&3 && timeout 2 head -1 <&3`),
        async dig(name: string, opts: { server?: string; type?: string; tcp?: boolean; user?: string } = {}) {
            const r = await s.h.exec(`dig +time=2 +tries=1 ${opts.tcp ? "+tcp" : ""} @${opts.server ?? "127.0.0.1"} ${name} ${opts.type ?? "A"}`, { user: opts.user });
            const status = /status: ([A-Z]+)/.exec(r.stdout)?.[1] ?? "NO-ANSWER";
            const answers = [...r.stdout.matchAll(/^\S+\s+\d+\s+IN\s+(A|AAAA|TXT|CNAME)\s+(\S+)/gm)].map((m) => m[2]);
            return { status, answers, out: r.stdout };
        },
        state: async () => (await s.h.exec("cat /run/cc-sandbox/firewall.state")).stdout.split(" ")[0],
    };
}
