/**
 * Per-project egress, attacked: each project's worker reaches the stack's allowlist and its own
 * entries, nothing of another project's, and a worker with `network: none` only what Claude Code
 * itself needs. The harness's internet is a CDN (several names on one address, servers that answer
 * any server name), so a name is what decides, not an address. Every attack is paired with the
 * allowed work that goes through the same path. Needs root (see test/README.md).
 */
import * as fs from "fs";
import { loadConfig } from "../../src/config/load";
import { projectUid } from "../../src/config/projects";
import { renderEgressPlan } from "../../src/render/egress";
import { tempDir } from "../helpers";
import { Harness, makeTestHome, waitFor, writeCiStack } from "./lib";

const records = `
shared.test.example       A  198.51.100.10
webonly.test.example      A  198.51.100.10
apionly.test.example      A  198.51.100.10
a.webwild.test.example    A  198.51.100.30
webraw.test.example       A  198.51.100.40
api.anthropic.com         A  198.51.100.50
stackraw.test.example     A  198.51.100.60
cidrhost.test.example     A  198.51.100.70
webnet.test.example       A  198.51.100.80
`;

const web = projectUid("web");
const api = projectUid("api");
const quiet = projectUid("quiet");

type Projects = Record<string, unknown>[];
const projects: Projects = [
    {
        name: "web",
        allowlist: {
            domains: [{ name: "webonly.test.example", ports: [443, 80] }, "*.webwild.test.example", { name: "webraw.test.example", ports: ["8080/raw"] }],
            cidrs: [{ cidr: "198.51.100.80/32", ports: [22] }],
        },
    },
    { name: "api", allowlist: { domains: [{ name: "apionly.test.example", ports: [443, 80] }] } },
    { name: "quiet", network: "none" },
];
// shared.test.example is also a TLS name on 913, the proxy's own port (an attack below).
const stackAllowlist = {
    presets: [],
    domains: [{ name: "shared.test.example", ports: [443, "913/tls"] }, { name: "stackraw.test.example", ports: ["8080/raw"] }],
    cidrs: [{ cidr: "198.51.100.70/32", ports: [22] }],
};

let h: Harness;
let home: string;

/** The allowlist file (egress plan) the program renders for the stack's allowlist and PROJECTS. */
function planFor(list: Projects): string {
    const c = loadConfig("harness", { allowlist: stackAllowlist, projects: list } as never, { home, readFile: (f: string) => fs.readFileSync(f, "utf8") });
    return renderEgressPlan(c.allowlist, c.projects);
}

function writeStack(dir: string): string {
    return writeCiStack(dir, "projectegress", { allowlist: stackAllowlist, projects });
}

/** The banner USER gets over TLS from NAME (at ADDRESS, if given), "" when refused. */
const tls = async (user: string, name: string, connect?: string) => (await h.tls(name, { user, ...(connect ? { connect } : {}) })).stdout;
const ok = (address: string, name: string) => `ok ${address} 443 sni=${name}\n`;
/** A raw TCP connection as USER to ADDRESS:PORT: the banner, or bash's error. */
const raw = async (user: string, address: string, port: number) =>
    (await h.exec(`timeout 4 bash -c 'exec 3<>/dev/tcp/${address}/${port} && head -1 <&3' 2>&1`, { user })).stdout;
/** An HTTP request as USER to ADDRESS:80 with HOST: the answer's first line. */
const http = async (user: string, address: string, host: string) =>
    (await h.exec(`exec 3<>/dev/tcp/${address}/80 && printf 'GET / HTTP/1.1\\r\\nHost: ${host}\\r\\nConnection: close\\r\\n\\r\\n' >&3 && timeout 3 cat <&3`, { user })).stdout;
const workerAddress = (uid: number) => `127.77.${uid >> 8}.${uid & 255}`;

beforeAll(async () => {
    const dir = tempDir("ccfw-projegress-");
    home = makeTestHome(dir);
    h = await Harness.start({ config: writeStack(dir), records, home });
    const add = await h.root(`cc-sandbox-project add web ${web} && cc-sandbox-project add api ${api} && cc-sandbox-project add quiet ${quiet}`);
    if (add.code !== 0) throw new Error(`adding the projects failed: ${add.stderr}`);
    // What a client does before it connects: the names' addresses enter the firewall's sets.
    expect((await h.exec("getent ahostsv4 shared.test.example stackraw.test.example webonly.test.example apionly.test.example a.webwild.test.example webraw.test.example api.anthropic.com >/dev/null")).code).toBe(0);
}, 180000);

afterAll(async () => {
    await h?.stop();
});

test("the plan the guest runs holds each worker and its own entries", async () => {
    const installed = (await h.root("cat /etc/cc-sandbox/allowlist")).stdout;
    expect(installed).toBe(planFor(projects));
    expect(installed).toContain(`user ${quiet} none\n`);
    expect(installed).toContain(`proxy tls exact webonly.test.example:443 ${web}\n`);
});

test("allowed: each worker reaches the stack's names and its own, by name, on its ports", async () => {
    for (const user of ["cc-web", "cc-api", "agent"]) {
        expect(await tls(user, "shared.test.example")).toBe(ok("198.51.100.10", "shared.test.example"));
        expect(await raw(user, "198.51.100.60", 8080)).toBe("ok 198.51.100.60 8080\n");
        expect(await raw(user, "198.51.100.70", 22)).toBe("ok 198.51.100.70 22\n");
    }
    expect(await tls("cc-web", "webonly.test.example")).toBe(ok("198.51.100.10", "webonly.test.example"));
    expect(await tls("cc-web", "a.webwild.test.example")).toBe(ok("198.51.100.30", "a.webwild.test.example"));
    expect(await raw("cc-web", "198.51.100.40", 8080)).toBe("ok 198.51.100.40 8080\n");
    expect(await raw("cc-web", "198.51.100.80", 22)).toBe("ok 198.51.100.80 22\n");
    expect(await tls("cc-api", "apionly.test.example")).toBe(ok("198.51.100.10", "apionly.test.example"));
    expect(await tls("cc-quiet", "api.anthropic.com")).toBe(ok("198.51.100.50", "api.anthropic.com"));
    expect(await http("cc-web", "198.51.100.10", "webonly.test.example")).toContain("ok 198.51.100.10 80 host=webonly.test.example");
    expect(await http("cc-api", "198.51.100.10", "apionly.test.example")).toContain("ok 198.51.100.10 80 host=apionly.test.example");
});

test("attack: a worker asks for another project's name, on the shared address or its own, and is refused", async () => {
    expect(await tls("cc-api", "webonly.test.example", "198.51.100.10")).toBe("");
    expect(await tls("cc-api", "webonly.test.example")).toBe("");
    expect(await tls("cc-web", "apionly.test.example", "198.51.100.10")).toBe("");
    expect(await tls("cc-api", "a.webwild.test.example")).toBe("");
    expect(await raw("cc-api", "198.51.100.40", 8080)).not.toContain("ok ");
    expect(await raw("cc-api", "198.51.100.80", 22)).not.toContain("ok ");
    // over HTTP, the Host decides in the same way
    expect(await http("cc-api", "198.51.100.10", "webonly.test.example")).not.toContain("ok ");
    expect(await http("cc-web", "198.51.100.10", "apionly.test.example")).not.toContain("ok ");
    // and the log says which worker asked
    expect((await h.root("cat /var/log/cc-sandbox/proxy.log")).stdout).toMatch(/why=name-not-allowed name=webonly\.test\.example port=443 dst=198\.51\.100\.10 /);
});

test("attack: the agent reaches no project's own names, and none of Claude Code's names it does not allowlist", async () => {
    expect(await tls("agent", "webonly.test.example", "198.51.100.10")).toBe("");
    expect(await tls("agent", "apionly.test.example")).toBe("");
    expect(await tls("agent", "a.webwild.test.example")).toBe("");
    expect(await raw("agent", "198.51.100.40", 8080)).not.toContain("ok ");
    expect(await raw("agent", "198.51.100.80", 22)).not.toContain("ok ");
    expect(await tls("agent", "api.anthropic.com")).toBe("");
    expect(await http("agent", "198.51.100.10", "webonly.test.example")).not.toContain("ok ");
});

test("attack: a worker with network none reaches nothing of the stack's, by name, by address or raw", async () => {
    expect(await tls("cc-quiet", "shared.test.example")).toBe("");
    expect(await tls("cc-quiet", "shared.test.example", "198.51.100.10")).toBe("");
    expect(await tls("cc-quiet", "webonly.test.example")).toBe("");
    expect(await raw("cc-quiet", "198.51.100.10", 443)).not.toContain("ok ");
    expect(await raw("cc-quiet", "198.51.100.40", 8080)).not.toContain("ok ");
    expect(await raw("cc-quiet", "198.51.100.60", 8080)).not.toContain("ok ");
    expect(await raw("cc-quiet", "198.51.100.70", 22)).not.toContain("ok ");
    expect(await raw("cc-quiet", "198.51.100.80", 22)).not.toContain("ok ");
    expect(await http("cc-quiet", "198.51.100.10", "shared.test.example")).not.toContain("ok ");
    // what it may reach, it reaches by name only: another name sent to Claude Code's address is refused
    expect(await tls("cc-quiet", "shared.test.example", "198.51.100.50")).toBe("");
});

test("attack: sending from another worker's proxy address (to the proxy or out) is refused; the real one works", async () => {
    const asApi = workerAddress(api);
    for (const [user, target] of [
        ["cc-web", "127.0.0.1:913"],
        ["cc-quiet", "127.0.0.1:913"],
        ["agent", "127.0.0.1:913"],
        ["cc-web", "198.51.100.10:443"],
    ] as const) {
        const r = await h.exec(`timeout 4 socat -u OPEN:/dev/null TCP4:${target},bind=${asApi} 2>&1; echo rc=$?`, { user });
        expect([user, target, r.stdout]).toEqual([user, target, expect.stringMatching(/refused|rc=1/)]);
        expect(r.stdout).not.toMatch(/rc=0/);
    }
    expect(await tls("cc-api", "apionly.test.example")).toBe(ok("198.51.100.10", "apionly.test.example"));
});

test("attack: a connection to the proxy itself, not redirected there, is refused before it is judged (no worker's address, so no worker's limits)", async () => {
    // shared.test.example is a TLS name on 913 in the stack's allowlist: straight to the proxy's own
    // port, the network-none worker would be taken for a stack user.
    await h.tls("127.0.0.1", { user: "cc-quiet", port: 913, sni: "shared.test.example", insecure: true });
    await h.tls("127.0.0.1", { user: "agent", port: 913, sni: "shared.test.example", insecure: true });
    expect((await h.root("cat /var/log/cc-sandbox/proxy.log")).stdout).not.toMatch(/port=913 dst=127\.0\.0\.1 /);
    // the same name on 443, redirected, is judged as ever
    expect(await tls("agent", "shared.test.example")).toBe(ok("198.51.100.10", "shared.test.example"));
    expect(await tls("cc-quiet", "shared.test.example")).toBe("");
});

test("attack: a connection slot another user's connection just lost to a reset is not taken over", async () => {
    // cc-web holds a raw connection to its own address from a port of its choosing; the server
    // resets it; the agent connects from that same port to the same place at once. conntrack takes
    // that SYN into the entry it still holds for cc-web (closed by the other side's reset).
    const from = h.guestAddress;
    const victim = h.exec(`sleep 5 | socat - TCP4:198.51.100.40:8080,bind=${from}:40003 2>&1`, { user: "cc-web" });
    expect(await waitFor(async () => /40003/.test((await h.internet("ss -Htn state established '( sport = :8080 )'")).stdout), 5000)).toBe(true);
    await h.internet("ss -K '( sport = :8080 and dport = :40003 )'");
    expect((await victim).stdout).toBe("ok 198.51.100.40 8080\n");
    const taken = await h.exec(`timeout 4 socat -T3 - TCP4:198.51.100.40:8080,bind=${from}:40003,reuseaddr </dev/null 2>&1; echo rc=$?`);
    expect(taken.stdout).not.toContain("ok 198.51.100.40");
    expect(taken.stdout).toMatch(/refused/);
    // cc-web's own next connection, from another port, works
    expect(await raw("cc-web", "198.51.100.40", 8080)).toBe("ok 198.51.100.40 8080\n");
});

test("apply: a name taken from one project cuts that worker's open connection to it at once, and the other project's stays", async () => {
    const before = planFor(projects);
    const narrowed = planFor([{ name: "web", allowlist: { domains: ["*.webwild.test.example", { name: "webraw.test.example", ports: ["8080/raw"] }] } }, projects[1], projects[2]]);
    await h.root("rm -f /tmp/pe-go /tmp/pe-web-ready /tmp/pe-api-ready");
    const webConn = h.tls("webonly.test.example", { user: "cc-web", hold: "/tmp/pe-go", ready: "/tmp/pe-web-ready" });
    const apiConn = h.tls("apionly.test.example", { user: "cc-api", hold: "/tmp/pe-go", ready: "/tmp/pe-api-ready" });
    expect(await waitFor(async () => (await h.exec("test -e /tmp/pe-web-ready && test -e /tmp/pe-api-ready")).code === 0, 10000)).toBe(true);
    try {
        expect((await h.root("cc-sandbox-firewall apply -", { input: narrowed })).code).toBe(0);
        await h.root("touch /tmp/pe-go");
        expect((await webConn).stdout).toBe(`${ok("198.51.100.10", "webonly.test.example")}echo:\n`);
        expect((await apiConn).stdout).toBe(`${ok("198.51.100.10", "apionly.test.example")}echo:still-here\n`);
        expect(await tls("cc-web", "webonly.test.example")).toBe("");
        expect(await tls("cc-web", "a.webwild.test.example")).toBe(ok("198.51.100.30", "a.webwild.test.example"));
    } finally {
        await h.root("rm -f /tmp/pe-go /tmp/pe-web-ready /tmp/pe-api-ready");
        await h.root("cc-sandbox-firewall apply -", { input: before });
    }
    expect(await tls("cc-web", "webonly.test.example")).toBe(ok("198.51.100.10", "webonly.test.example"));
}, 40000);

test("apply: raw connections are judged per worker: a project's dropped entry and a switch to none cut that worker's alone", async () => {
    const before = planFor(projects);
    const after = planFor([{ name: "web", allowlist: { domains: [{ name: "webonly.test.example", ports: [443, 80] }] } }, { name: "api", network: "none" }, projects[2]]);
    // each holder reads the banner, waits, then sends a line: "rc=0" (echoed: open) or "rc=1" (cut)
    const hold = (user: string, address: string, tag: string) =>
        h.exec(
            `exec 3<>/dev/tcp/${address}/8080 && head -1 <&3 >/dev/null && touch /tmp/pe-${tag}-ready && while [ ! -e /tmp/pe-raw-go ]; do sleep 0.1; done; ` +
                "printf 'x\\n' >&3 2>/dev/null; read -r -t 2 _ <&3; echo rc=$?",
            { user },
        );
    await h.root("rm -f /tmp/pe-*");
    const holders = {
        webOwn: hold("cc-web", "198.51.100.40", "web-own"),
        webStack: hold("cc-web", "198.51.100.60", "web-stack"),
        apiStack: hold("cc-api", "198.51.100.60", "api-stack"),
        agentStack: hold("agent", "198.51.100.60", "agent-stack"),
    };
    const tags = ["web-own", "web-stack", "api-stack", "agent-stack"];
    expect(await waitFor(async () => (await h.exec(tags.map((t) => `test -e /tmp/pe-${t}-ready`).join(" && "))).code === 0, 10000)).toBe(true);
    try {
        expect((await h.root("cc-sandbox-firewall apply -", { input: after })).code).toBe(0);
        await h.root("touch /tmp/pe-raw-go");
        expect({
            webOwn: (await holders.webOwn).stdout,
            webStack: (await holders.webStack).stdout,
            apiStack: (await holders.apiStack).stdout,
            agentStack: (await holders.agentStack).stdout,
        }).toEqual({ webOwn: "rc=1\n", webStack: "rc=0\n", apiStack: "rc=1\n", agentStack: "rc=0\n" });
        // and new connections follow: api (now none) reaches Claude Code's names only
        expect(await tls("cc-api", "shared.test.example")).toBe("");
        expect(await tls("cc-api", "api.anthropic.com")).toBe(ok("198.51.100.50", "api.anthropic.com"));
    } finally {
        await h.root("rm -f /tmp/pe-*");
        await h.root("cc-sandbox-firewall apply -", { input: before });
    }
}, 40000);

test("status (and so cc-sandbox-verify) fails for a worker the allowlist in force has no egress rules for", async () => {
    expect((await h.root("cc-sandbox-project status | sort")).stdout).toBe("ok      api (cc-api)\nok      quiet (cc-quiet)\nok      web (cc-web)\n");
    const stray = projectUid("stray");
    const r = await h.root(`cc-sandbox-project add stray ${stray} && cc-sandbox-project status stray; echo rc=$?`);
    expect(r.stdout).toContain(`FAIL    stray: the allowlist in force has no egress rules for uid ${stray} (pulumi up pushes the one that does)\nrc=3\n`);
    // and such a worker (a project removed from the plan and not yet from the guest) reaches nothing
    expect(await tls("cc-stray", "shared.test.example")).toBe("");
    expect(await raw("cc-stray", "198.51.100.60", 8080)).not.toContain("ok ");
    await h.root("cc-sandbox-project remove stray");
    expect((await h.root("cc-sandbox-project status >/dev/null; echo rc=$?")).stdout).toBe("rc=0\n");
});
