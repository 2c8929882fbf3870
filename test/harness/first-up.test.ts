/**
 * The firewall's first `up` in a guest that is already running, as on cloud-init's first boot: the
 * SSH session the host opened before it (the program waits for cloud-init through one) keeps
 * working, even when the guest speaks first, while port 22 still opens no way out.
 * Needs root (see test/README.md).
 */
import { guestNode, Harness, waitFor } from "./lib";

const records = `
allowed.test.example   A   198.51.100.10
blocked.test.example   A   198.51.100.66
`;
let h: Harness;

beforeAll(async () => {
    h = await Harness.start({ stack: "ci", records, bringUp: false });
}, 120000);

afterAll(async () => {
    await h?.stop();
});

test("a session open before the first up keeps flowing when the guest writes first", async () => {
    // A stand-in for sshd on port 22 that writes a line every 200 ms, as `cloud-init status --wait`
    // prints its dots: after `up` the first packet conntrack sees of this session is the guest's.
    const server =
        'require("net").createServer((s) => { s.on("error", () => {}); let n = 0; ' +
        'const t = setInterval(() => s.write("tick " + n++ + "\\n"), 200); s.on("close", () => clearInterval(t)); }).listen(22)';
    await h.root(`setsid -f ${guestNode} -e '${server}' </dev/null >/dev/null 2>&1`);
    expect(await waitFor(async () => (await h.root("ss -ltn | grep -c ':22 '")).stdout.trim() === "1", 5000)).toBe(true);

    const session = h.internet(`timeout 6 bash -c 'exec 3<>/dev/tcp/${h.guestAddress}/22; cat <&3'`);
    // The session is open and flowing before the firewall comes up.
    expect(await waitFor(async () => (await h.root("ss -Htn state established sport :22 | wc -l")).stdout.trim() === "1", 5000)).toBe(true);
    const up = await h.root("cc-sandbox-firewall up");
    expect(up.code).toBe(0);
    const ticks = (await session).stdout.split("\n").filter((l) => l.startsWith("tick"));
    // About 30 in 6 s; a session the firewall cut stops at the 7 or so it had before `up`.
    expect(ticks.length).toBeGreaterThan(20);
});

test("attack: the agent cannot send from port 22 (binding it needs root)", async () => {
    const r = await h.exec("socat -u - TCP:198.51.100.66:443,sourceport=22,connect-timeout=3 </dev/null; echo rc=$?");
    expect(r.stdout + r.stderr).toMatch(/Permission denied/);
    expect(r.stdout).not.toMatch(/rc=0/);
});

test("attack: even root cannot open a new connection out from port 22", async () => {
    const r = await h.root("timeout 5 socat -u TCP:198.51.100.66:443,sourceport=22,connect-timeout=3 - ; echo rc=$?");
    expect(r.stdout).not.toMatch(/^ok /m);
    expect(r.stdout).not.toMatch(/rc=0/);
});

test("allowed: a new connection from the host to port 22 after up still answers", async () => {
    const r = await h.internet(`timeout 3 bash -c 'exec 3<>/dev/tcp/${h.guestAddress}/22 && head -1 <&3'`);
    expect(r.stdout).toMatch(/^tick 0$/m);
});

test("a DHCP client rewriting /etc/resolv.conf (no systemd-resolved) is undone within seconds", async () => {
    await h.startWatcher();
    // As ifupdown's dhclient does at every lease: the VM's server, written over ours.
    await h.root(`printf 'nameserver ${h.dnsAddress}\\n' >/etc/resolv.conf`);
    const pointedBack = async () => (await h.root("head -n 1 /etc/resolv.conf")).stdout.startsWith("# cc-sandbox-firewall:");
    expect(await waitFor(pointedBack, 10_000)).toBe(true);
    // The reload points the file back before its resolver has started: the name answers within seconds.
    const allowed = async () => (await h.exec("getent ahostsv4 allowed.test.example | head -n 1")).stdout;
    expect(await waitFor(async () => /^198\.51\.100\.10 /.test(await allowed()), 5000)).toBe(true);
    // Attack: the name off the allowlist still resolves nowhere, and the rewritten server is no way out.
    expect((await h.exec("getent ahostsv4 blocked.test.example; echo rc=$?")).stdout).toMatch(/rc=2/);
    expect((await h.exec(`dig +time=2 +tries=1 @${h.dnsAddress} blocked.test.example; echo rc=$?`)).stdout).not.toMatch(/status: NOERROR/);
});

test("a proxy that cannot start fails `up` closed (LOCKDOWN), and the next `up` brings it", async () => {
    await h.root("cc-sandbox-firewall down");
    // Root's stand-in on the proxy's TLS port: HAProxy cannot bind it and exits at start.
    const holder = 'require("net").createServer((s) => s.destroy()).listen(913, "127.0.0.1")';
    await h.root(`setsid -f ${guestNode} -e '${holder}' </dev/null >/dev/null 2>&1`);
    const held = async () => (await h.root("ss -Hltn 'sport = :913' | wc -l")).stdout.trim() === "1";
    expect(await waitFor(held, 5000)).toBe(true);
    const up = await h.root("cc-sandbox-firewall up");
    expect(up.stderr).toMatch(/the proxy exited at start/);
    expect(up.stderr).toMatch(/LOCKDOWN is in place/);
    expect(up.code).not.toBe(0);
    // Closed: the allowlisted site is not reached, by name or by its address.
    const blocked = await h.exec("curl -sS --max-time 5 --connect-to allowed.test.example:443:198.51.100.10:443 https://allowed.test.example/; echo rc=$?");
    expect(blocked.stdout).not.toMatch(/^ok /m);
    expect(blocked.stdout).toMatch(/rc=[1-9]/);
    await h.root(`pkill -f 'listen\\(913'`);
    expect(await waitFor(async () => !(await held()), 5000)).toBe(true);
    const again = await h.root("cc-sandbox-firewall up");
    expect(again.stderr).toMatch(/up: /);
    expect(again.code).toBe(0);
    expect((await h.exec("curl -sS --max-time 5 https://allowed.test.example/")).stdout).toBe(
        "ok 198.51.100.10 443 host=allowed.test.example sni=allowed.test.example\n",
    );
}, 60_000);
