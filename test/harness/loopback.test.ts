/**
 * Loopback between the sandbox's users, attacked: the agent and each project's worker (added and
 * removed with cc-sandbox-project, as the program does) each run a service on loopback; none of
 * them reaches another's, over IPv4 or IPv6, directly or through the name-checking proxy (an
 * allowlisted name that answers a loopback address), while each reaches its own, and root, the
 * admin and the system's services (the resolver, the proxy) stay reachable as before.
 * Needs root (see test/README.md).
 */
import { projectUid } from "../../src/config/projects";
import { tempDir } from "../helpers";
import { Harness, RunResult, writeCiStack } from "./lib";

const records = `
allowed.test.example     A   198.51.100.10
loop.wild.test.example   A   127.0.0.2
`;
let h: Harness;

/** A line-banner TCP server as USER on ADDRESS:PORT ("served-by-USER"), each hit counted in /run/hits-PORT. */
async function serve(user: string, address: string, port: number): Promise<void> {
    const listen = address.includes(":") ? `TCP6-LISTEN:${port},bind=[${address}]` : `TCP4-LISTEN:${port},bind=${address}`;
    // A worker's, as the tools start one: with its own /tmp (worker-tmp), which status checks.
    const setpriv = `setpriv --reuid=${user} --regid=${user} --init-groups --`;
    const run = user === "root" ? "" : user.startsWith("cc-") ? `/usr/local/lib/cc-sandbox/worker-tmp ${user} ${setpriv}` : setpriv;
    const r = await h.root(
        `install -m 0666 /dev/null /run/hits-${port} && ` +
            `setsid -f ${run} socat ${listen},fork,reuseaddr SYSTEM:'echo hit >>/run/hits-${port}; echo served-by-$(id -un)' </dev/null >/dev/null 2>&1 && ` +
            `for i in $(seq 50); do ss -Hltn | grep -q ':${port} ' && exit 0; sleep 0.1; done; exit 1`,
    );
    if (r.code !== 0) throw new Error(`server for ${user} on ${address}:${port} did not start: ${r.stderr}`);
}

/** What USER reads from ADDRESS:PORT: the server's line, or bash's error (within 4 s). */
function reach(user: string, address: string, port: number): Promise<RunResult> {
    return h.exec(`timeout 4 bash -c 'exec 3<>/dev/tcp/${address}/${port} && head -1 <&3' 2>&1`, { user });
}

const web = projectUid("web");
const api = projectUid("api");
const docs = projectUid("docs");

/** The ci stack with the three projects this test adds: each worker's egress is in the plan. */
function writeStack(dir: string): string {
    return writeCiStack(dir, "loopback", { projects: [{ name: "web" }, { name: "api" }, { name: "docs" }] });
}

beforeAll(async () => {
    h = await Harness.start({ config: writeStack(tempDir("ccfw-loopback-")), records });
    const add = await h.root(`cc-sandbox-project add web ${web} && cc-sandbox-project add api ${api}`);
    if (add.code !== 0) throw new Error(`adding the projects failed: ${add.stderr}`);
    await serve("agent", "127.0.0.1", 3000);
    await serve("agent", "::1", 3001);
    await serve("cc-web", "127.0.0.1", 3100);
    // On every address: reached through the guest's own address, the connection still goes over loopback.
    await serve("cc-web", "0.0.0.0", 3101);
    await serve("ubuntu", "127.0.0.1", 3200);
    await serve("root", "0.0.0.0", 443);
}, 180000);

afterAll(async () => {
    await h?.stop();
});

test("allowed: each user reaches its own loopback service, and root and the admin reach everyone's", async () => {
    expect((await reach("agent", "127.0.0.1", 3000)).stdout).toBe("served-by-agent\n");
    expect((await reach("agent", "::1", 3001)).stdout).toBe("served-by-agent\n");
    expect((await reach("cc-web", "127.0.0.1", 3100)).stdout).toBe("served-by-cc-web\n");
    expect((await reach("cc-web", h.guestAddress, 3101)).stdout).toBe("served-by-cc-web\n");
    expect((await reach("root", "127.0.0.1", 3000)).stdout).toBe("served-by-agent\n");
    expect((await reach("root", "127.0.0.1", 3100)).stdout).toBe("served-by-cc-web\n");
    expect((await reach("ubuntu", "127.0.0.1", 3100)).stdout).toBe("served-by-cc-web\n");
    // The admin is not confined: its services answer the agent and the workers.
    expect((await reach("agent", "127.0.0.1", 3200)).stdout).toBe("served-by-ubuntu\n");
    expect((await reach("cc-web", "127.0.0.1", 3200)).stdout).toBe("served-by-ubuntu\n");
});

test("attack: a worker reaches neither the agent's loopback services (IPv4, IPv6) nor another worker's, and is refused at once", async () => {
    const hits = "cat /run/hits-3000 /run/hits-3001 /run/hits-3100 /run/hits-3101 | wc -l";
    const before = (await h.root(hits)).stdout;
    for (const [user, address, port] of [
        ["cc-web", "127.0.0.1", 3000],
        ["cc-web", "::1", 3001],
        ["cc-api", "127.0.0.1", 3100],
        ["cc-api", "127.0.0.1", 3000],
        ["cc-api", h.guestAddress, 3101],
    ] as const) {
        const r = await reach(user, address, port);
        // A reset, not a wait on a dropped connection (that ends in the probe's own timeout).
        expect(`${user} -> ${address}:${port}: ${r.stdout}`).toMatch(/Connection refused/);
    }
    // No server saw a connection: the handshake never completed.
    expect((await h.root(hits)).stdout).toBe(before);
});

test("attack: a full listen queue (SYN cookies) does not let a worker complete a handshake with the agent's service and write to it", async () => {
    const r = await h.root(
        "install -m 0666 /dev/null /run/got-3005 && " +
            "setsid -f setpriv --reuid=agent --regid=agent --init-groups -- socat TCP4-LISTEN:3005,bind=127.0.0.1,backlog=5,fork,reuseaddr SYSTEM:'cat >>/run/got-3005' </dev/null >/dev/null 2>&1; " +
            "for i in $(seq 50); do ss -Hltn | grep -q ':3005 ' && exit 0; sleep 0.1; done; exit 1",
    );
    expect(r.code).toBe(0);
    // Hundreds of half-open connections fill the queue; then one more connects and writes at once.
    const flood = `/usr/bin/python3 - <<'PY'
import socket
held = []
for _ in range(700):
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(("127.0.0.1", 3005))
    except BlockingIOError:
        pass
    held.append(c)
c = socket.socket()
c.settimeout(4)
try:
    c.connect(("127.0.0.1", 3005))
    c.sendall(b"FLUSHALL from cc-web\\n")
    print("connected")
except OSError as e:
    print("refused", e)
PY`;
    // The queue must really have been full (cookies sent) while the worker tried: on a loaded
    // machine one flood may not fill it, so it floods again, at most three times, and every try
    // must fail to connect and to write.
    const cookies = async () => (await h.root("nstat -az TcpExtSyncookiesSent TcpExtListenOverflows TcpExtListenDrops | awk 'NR > 1 { print $1 \"=\" $2 }'")).stdout.trim();
    let counters = "";
    for (let attempt = 1; attempt <= 3; attempt++) {
        const w = await h.exec(flood, { user: "cc-web", timeoutMs: 60_000 });
        expect(w.stdout).toMatch(/^refused /m);
        expect(w.stdout).not.toMatch(/^connected$/m);
        await new Promise((res) => setTimeout(res, 1000));
        expect((await h.root("cat /run/got-3005")).stdout).toBe("");
        counters = await cookies();
        if (!/TcpExtSyncookiesSent=0\b/.test(counters)) break;
        process.stdout.write(`loopback: flood ${attempt} sent no SYN cookie (${counters.replace(/\n/g, " ")}); again\n`);
    }
    expect(counters).toMatch(/TcpExtSyncookiesSent=[1-9]/);
});

test("attack: a worker reusing a connection slot another client just had reset is still refused", async () => {
    // The agent's server resets its first client; the admin connects from port 40000 and is reset;
    // web's worker then connects from the same port at once (conntrack takes its SYN into the old,
    // unstamped entry rather than a new one).
    const server = `/usr/bin/python3 - <<'PY' >/dev/null 2>&1 &
import socket, struct
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 3006))
s.listen(16)
first = True
while True:
    c, _ = s.accept()
    if first:
        first = False
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        continue
    c.sendall(b"served-by-agent\\n")
    c.close()
PY
for i in $(seq 50); do ss -Hltn | grep -q ':3006 ' && exit 0; sleep 0.1; done; exit 1`;
    expect((await h.exec(server)).code).toBe(0);
    const client = (port: number) => `/usr/bin/python3 - <<'PY'
import socket
c = socket.socket()
c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
c.bind(("127.0.0.1", ${port}))
c.settimeout(4)
try:
    c.connect(("127.0.0.1", 3006))
    print("read", c.recv(100))
except OSError as e:
    print("refused", e)
PY`;
    const admin = await h.exec(client(40000), { user: "ubuntu" });
    expect(admin.stdout).toMatch(/^(refused|read b'')/);
    const web = await h.exec(client(40000), { user: "cc-web" });
    expect(web.stdout).not.toMatch(/served-by/);
    // Allowed: the agent itself (from another port: the refused slot stays refused until conntrack
    // forgets it).
    expect((await h.exec(client(40001))).stdout).toMatch(/served-by-agent/);
});

test("attack: the agent reaches no worker's loopback service", async () => {
    expect((await reach("agent", "127.0.0.1", 3100)).stdout).toMatch(/Connection refused/);
});

test("attack: an allowlisted name that answers a loopback address does not make the proxy a relay to it", async () => {
    const hits = async () => (await h.root("wc -l </run/hits-443")).stdout.trim();
    const before = await hits();
    // The name is allowlisted (*.wild.test.example); the proxy resolves it to 127.0.0.2, where root's
    // service listens: the proxy may not open that connection, for the agent or a worker.
    const r = await h.tls("loop.wild.test.example", { insecure: true });
    expect(r.stdout).not.toMatch(/served-by/);
    const w = await h.tls("loop.wild.test.example", { insecure: true, user: "cc-web" });
    expect(w.stdout).not.toMatch(/served-by/);
    expect(await hits()).toBe(before);
    // Nor as its own user, directly.
    expect((await reach("haproxy", "127.0.0.1", 3000)).stdout).toMatch(/Connection refused/);
    // Allowed: the proxy still carries an allowlisted name to its public address, for both.
    expect((await h.tls("allowed.test.example")).stdout).toMatch(/^ok 198\.51\.100\.10 443 sni=allowed\.test\.example/);
    expect((await h.tls("allowed.test.example", { user: "cc-web" })).stdout).toMatch(/^ok 198\.51\.100\.10 443 sni=allowed\.test\.example/);
    // And the resolver answers everyone.
    expect((await h.exec("getent ahostsv4 allowed.test.example | head -n 1", { user: "cc-api" })).stdout).toMatch(/^198\.51\.100\.10 /);
});

test("the rules follow the workers: a new worker is confined before it runs anything, a removed one's rules go, and the firewall stays ON", async () => {
    // docs's setup hook runs as the worker right after add: it already cannot reach the agent's service.
    const hook = Buffer.from("timeout 4 bash -c 'exec 3<>/dev/tcp/127.0.0.1/3000 && head -1 <&3' >~/probe 2>&1; true").toString("base64");
    const add = await h.root(`printf 'setup %s\\n' ${hook} | cc-sandbox-project add docs ${docs} - && cat /home/cc-docs/probe`);
    expect(add.code).toBe(0);
    expect(add.stdout).toMatch(/Connection refused/);
    expect((await reach("cc-docs", "127.0.0.1", 3000)).stdout).toMatch(/Connection refused/);

    // (its loopback rules: the egress rules the plan holds for it are the plan's business)
    const loRules = `grep -- '-A ccfw-lo' | grep -c -- '--uid-owner ${api} '`;
    expect((await h.root(`iptables-legacy-save -t filter | ${loRules}`)).stdout.trim()).toBe("2");
    const removed = await h.root(`cc-sandbox-project remove api && iptables-legacy-save -t filter | ${loRules}; ip6tables-legacy-save -t filter | ${loRules}`);
    expect(removed.stdout).toBe("0\n0\n");
    // status (and so cc-sandbox-verify's projects check) says when a worker's rules are missing:
    // here the registry and the rules are put out of step by hand.
    expect((await h.root("cc-sandbox-project status web")).stdout).toMatch(/^ok {6}web \(cc-web\)$/m);
    const outOfStep = await h.root(
        "mv /etc/cc-sandbox/projects.d/web /run/web.project && cc-sandbox-firewall users 2>/dev/null; mv /run/web.project /etc/cc-sandbox/projects.d/web; " +
            "cc-sandbox-project status web; echo rc=$?; cc-sandbox-firewall users 2>/dev/null; cc-sandbox-project status web >/dev/null; echo rc=$?",
    );
    expect(outOfStep.stdout).toContain(`FAIL    web: the firewall's loopback rules do not confine uid ${web} (cc-sandbox-firewall users)\nrc=3\nrc=0\n`);
    // The live rules are what the firewall recorded: status says ON, and so does the watcher.
    expect((await h.root("cc-sandbox-firewall status")).stdout).toMatch(/^ON \(policy /);
    expect((await h.exec("sleep 3; cc-sandbox-firewall status")).stdout).toMatch(/^ON \(as the watcher saw it/);
});
