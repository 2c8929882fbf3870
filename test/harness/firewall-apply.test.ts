/**
 * The egress firewall of a running guest, for real: its allowlist changed in place (apply), GitHub's
 * published networks, the watcher and the status, cc-sandbox-verify against it, and the controls
 * that show the attacks failed because of it. The attacks themselves: firewall.test.ts. Needs root.
 */
import { firewallSuite } from "./firewall-suite";
import { planOf, waitFor } from "./lib";

const { h, tcp, tls, udp, dig, state } = firewallSuite();

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
        expect(applied.code).toBe(0);
        // Its only word on stderr is what it applied: no error, no warning.
        expect(applied.stderr).toMatch(/^cc-sandbox-firewall: applied: \d+ names, \d+ wildcards, \d+ CIDRs\n$/);
        // (How long apply takes is the firewall benchmark's to say, not a test's on a shared machine.)

        // The removed name's open connection is cut by the apply (its client sees the close): it
        // ends while the test still holds it open, which nothing but the cut would end.
        const r = await removed;
        expect(r.stdout).toBe("ok 198.51.100.50 443 sni=removed.test.example\necho:\n");
        expect(removedEnded).toBeGreaterThanOrEqual(start);
        expect((await h.exec("test -e /tmp/conn-go; echo $?")).stdout).toBe("1\n");

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

    test("the allowlist in force, applied again, switches nothing; with a live rule changed, the same allowlist switches and restores it", async () => {
        const current = (await h.root("cat /etc/cc-sandbox/allowlist")).stdout;
        const policy = (await h.root("cat /run/cc-sandbox/firewall/policy")).stdout.trim();
        const resolver = async () => (await h.root("cat /run/cc-sandbox/firewall/dnsmasq.pid")).stdout;
        const before = await resolver();
        const same = await h.root("cc-sandbox-firewall apply -", { input: current });
        expect(same.code).toBe(0);
        expect(same.stderr).toBe(`cc-sandbox-firewall: applied: the allowlist is the one in force (policy ${policy}), nothing changed\n`);
        // No switch: a switch starts the resolver again.
        expect(await resolver()).toBe(before);
        expect((await h.root("cc-sandbox-firewall status")).stdout).toMatch(new RegExp(`^ON \\(policy ${policy}; `));
        expect((await tls("allowed.test.example")).stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\n");
        // One byte more is another allowlist: validated and switched (here: refused, a bad line).
        const other = await h.root("cc-sandbox-firewall apply -", { input: `${current}x\n` });
        expect(other.code).toBe(2);
        expect(await resolver()).toBe(before);
        // Other upstream DNS servers (a DHCP client rewrote /etc/resolv.conf; no systemd-resolved
        // here): the same allowlist switches to a resolver that asks them, and points the file back.
        // (A test server's address stands in for the new upstream; nothing is looked up meanwhile.)
        // The watcher follows such a rewrite too (its own test: below): stopped meanwhile, so that
        // what is seen here is this apply's doing, not the watcher's reload a tick before it.
        const resolvConf = async () => (await h.root("head -n 1 /etc/resolv.conf")).stdout;
        await h.stopWatcher();
        try {
            try {
                await h.root("printf 'nameserver 198.51.100.10\\n' >/etc/resolv.conf");
                const moved = await h.root("cc-sandbox-firewall apply -", { input: current });
                expect(moved.stderr).toMatch(/^cc-sandbox-firewall: applied: \d+ names, \d+ wildcards, \d+ CIDRs\n$/);
                expect((await h.root("grep -c '/198.51.100.10$' /run/cc-sandbox/firewall/dnsmasq.conf")).stdout).not.toBe("0\n");
                expect(await resolvConf()).toMatch(/^# cc-sandbox-firewall:/);
            } finally {
                // Whatever failed above: the suite's own upstream again (the watcher, restarted
                // below, reloads to it), for the tests after this one.
                await h.root(`printf 'nameserver ${h.dnsAddress}\\n' >/etc/resolv.conf`);
            }
            expect((await h.root("cc-sandbox-firewall apply -", { input: current })).stderr).toMatch(/applied: \d+ names/);
            // The same servers written over ours again: nothing switches, the file is pointed back.
            const kept = await resolver();
            await h.root(`printf 'nameserver ${h.dnsAddress}\\n' >/etc/resolv.conf`);
            expect((await h.root("cc-sandbox-firewall apply -", { input: current })).stderr).toMatch(/nothing changed/);
            expect(await resolvConf()).toMatch(/^# cc-sandbox-firewall:/);
            expect(await resolver()).toBe(kept);
        } finally {
            await h.startWatcher();
        }
        const settled = await resolver();
        expect((await tls("allowed.test.example")).stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\n");
        // The live state is not the recorded one (root opened OUTPUT): the same allowlist switches.
        await h.root("iptables-legacy -I OUTPUT 1 -j ACCEPT");
        const repaired = await h.root("cc-sandbox-firewall apply -", { input: current });
        expect(repaired.stderr).toMatch(/^cc-sandbox-firewall: applied: \d+ names, \d+ wildcards, \d+ CIDRs\n$/);
        expect(await resolver()).not.toBe(settled);
        expect((await h.root("iptables-legacy -S OUTPUT 1")).stdout).not.toBe("-A OUTPUT -j ACCEPT\n");
        expect((await h.root("cc-sandbox-firewall status")).code).toBe(0);
        expect((await tls("removed.test.example", { connect: "198.51.100.10" })).stdout).toBe("");
    });

    test("fail-closed: a malformed allowlist changes nothing and exits non-zero", async () => {
        const before = await h.root("iptables-legacy-save -t filter | grep -v '^#' | sed 's/\\[[0-9:]*\\]//'; ipset list -n | sort; cat /etc/cc-sandbox/allowlist");
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
        const after = await h.root("iptables-legacy-save -t filter | grep -v '^#' | sed 's/\\[[0-9:]*\\]//'; ipset list -n | sort; cat /etc/cc-sandbox/allowlist");
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
        // A tick that saw it dead recorded OFF; the one after its restart records ON again.
        expect(await waitFor(async () => (await state()) === "ON", 6000)).toBe(true);
    });

    test("OFF within seconds after root flushes the rules, ON again after up", async () => {
        expect(await state()).toBe("ON");
        await h.root("iptables-legacy -F");
        expect(await waitFor(async () => (await state()) === "OFF", 6000)).toBe(true);
        expect((await h.root("cc-sandbox-firewall status")).code).toBe(3);
        expect((await h.root("cc-sandbox-firewall up")).code).toBe(0);
        expect(await waitFor(async () => (await state()) === "ON", 6000)).toBe(true);
    });

    test("OFF after root widens a CIDR entry's set or empties the proxy's redirects (nat); ON again after up", async () => {
        const cidrSet = (await h.root("ipset list -n | grep -E '^ccfw-([0-9]+-)?n-' | head -n 1")).stdout.trim();
        expect(cidrSet).not.toBe("");
        for (const cmd of [`ipset add ${cidrSet} 0.0.0.0/1`, "iptables-legacy -t nat -F"]) {
            expect(await waitFor(async () => (await state()) === "ON", 6000)).toBe(true);
            await h.root(cmd);
            expect([cmd, await waitFor(async () => (await state()) === "OFF", 6000)]).toEqual([cmd, true]);
            expect((await h.root("cc-sandbox-firewall status")).code).toBe(3);
            expect((await h.root("cc-sandbox-firewall up")).code).toBe(0);
        }
        expect(await waitFor(async () => (await state()) === "ON", 6000)).toBe(true);
    });

    test("OFF after root sets an ACCEPT policy (IPv4 or IPv6)", async () => {
        await h.root("iptables-legacy -P OUTPUT ACCEPT");
        expect(await waitFor(async () => (await state()) === "OFF", 6000)).toBe(true);
        await h.root("cc-sandbox-firewall up");
        expect(await waitFor(async () => (await state()) === "ON", 6000)).toBe(true);
        await h.root("ip6tables-legacy -P OUTPUT ACCEPT");
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
        // In LOCKDOWN no allowlist's policy is in force: the fixed one, applied, switches to it.
        expect((await h.root("cc-sandbox-firewall status")).stdout).toMatch(/^ON \(policy unknown; /);
        const applied = await h.root("cc-sandbox-firewall apply -", { input: good });
        expect(applied.stderr).toMatch(/^cc-sandbox-firewall: applied: \d+ names, \d+ wildcards, \d+ CIDRs\n$/);
        expect((await tls("allowed.test.example")).stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\n");
        expect((await h.root("cc-sandbox-firewall up")).code).toBe(0);
        expect((await tls("allowed.test.example")).stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\n");
    });

    test("fail-closed without iptables' legacy tables: up locks down in nftables, even a socket bound to the interface; SSH in still answers; the watcher keeps it; down removes it", async () => {
        // Loaders that fail as on a kernel built without the legacy tables (no rule loads at all,
        // LOCKDOWN's neither).
        const fail = "#!/bin/sh\necho \"iptables-restore v1.8: can't initialize iptables table 'filter': Table does not exist\" >&2\nexit 1\n";
        await h.root("mkdir -p /tmp/nolegacy && cat >/tmp/nolegacy/iptables-legacy-restore && chmod 0755 /tmp/nolegacy/iptables-legacy-restore", { input: fail });
        await h.root("cp /tmp/nolegacy/iptables-legacy-restore /tmp/nolegacy/ip6tables-legacy-restore");
        await h.root("cc-sandbox-firewall down");
        // A server on the VM's own network (the gateway's side of its link), and a client whose
        // socket is bound to the VM's interface: what routing rules cannot stop.
        const listener = h.internet(`timeout 120 socat TCP-LISTEN:4471,bind=${h.gatewayAddress},reuseaddr,fork SYSTEM:'echo reached' </dev/null >/dev/null 2>&1`);
        const bound = async (user = "agent") =>
            (await h.exec(`dev=$(ip -o -4 route show default | awk '{ print $5; exit }'); timeout 5 socat -u TCP:${h.gatewayAddress}:4471,so-bindtodevice=$dev,connect-timeout=4 - 2>&1; echo rc=$?`, { user })).stdout;
        expect(await waitFor(async () => /^reached$/m.test(await bound()), 10000)).toBe(true);
        const table = async () => (await h.root("nft list table inet cc_sandbox_lockdown 2>&1")).stdout;
        const routed = async () => (await h.root("for v in -4 -6; do ip $v rule show priority 76; ip $v rule show priority 77; done")).stdout;
        try {
            const r = await h.root("PATH=/tmp/nolegacy:$PATH cc-sandbox-firewall up");
            expect(r.code).not.toBe(0);
            expect(r.stderr).toMatch(/LOCKDOWN by nftables instead/);
            expect(await table()).toMatch(/hook output priority filter - 10; policy drop;/);
            expect(await routed()).toBe("");
            // The agent: no way out by name, by address, over IPv6, nor bound to the interface.
            expect((await tls("allowed.test.example")).stdout).toBe("");
            expect((await tls("198.51.100.10")).stdout).toBe("");
            expect((await tcp("198.51.100.66", 443)).stdout).toBe("");
            expect((await tcp(h.internetAddress6, 443)).stdout).toBe("");
            expect(await bound()).not.toMatch(/reached/);
            // Nor root (a daemon the agent can drive would be a way out), from any source port but 22's.
            expect((await tcp("198.51.100.66", 443, "root")).stdout).toBe("");
            expect(await bound("root")).not.toMatch(/reached/);
            // Nor a datagram, root's or the agent's, to the VM's own network.
            const datagrams = h.internet(`timeout 6 socat -u UDP-RECV:4472,bind=${h.gatewayAddress} - 2>&1; true`);
            await h.root(`sleep 1; for i in 1 2 3; do echo from-root | socat -u - UDP:${h.gatewayAddress}:4472 2>/dev/null; done; true`);
            await h.exec(`for i in 1 2 3; do echo from-agent | socat -u - UDP:${h.gatewayAddress}:4472 2>/dev/null; done; true`);
            expect((await datagrams).stdout).toBe("");
            // SSH over loopback, to the VM's own address, is refused as LOCKDOWN's own rules do.
            expect((await tcp(h.guestAddress, 22)).stderr).toMatch(/Connection refused/);
            expect((await h.root("cc-sandbox-firewall status")).stdout).toMatch(/^OFF \(LOCKDOWN's rules did not load in iptables' legacy tables; LOCKDOWN by nftables/);
            // SSH in still answers (sshd's sockets are root's), and so does loopback (the agent's own server).
            const ssh = await h.internet(`timeout 3 bash -c 'exec 3<>/dev/tcp/${h.guestAddress}/22 && head -1 <&3'`);
            expect(ssh.stdout).toMatch(/^SSH-2\.0-OpenSSH/);
            const own = await h.exec(
                "socat TCP-LISTEN:4000,bind=127.0.0.1,reuseaddr SYSTEM:'echo mine' </dev/null >/dev/null 2>&1 & " +
                    "for i in $(seq 50); do r=$(timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4000 && head -1 <&3' 2>/dev/null) && break; sleep 0.1; done; kill $! 2>/dev/null; echo \"$r\"",
            );
            expect(own.stdout).toBe("mine\n");
            // Root deletes the table, then opens its output chain: the watcher loads it again each time.
            await h.root("nft delete table inet cc_sandbox_lockdown");
            expect(await waitFor(async () => /policy drop/.test(await table()), 8000)).toBe(true);
            await h.root("nft add rule inet cc_sandbox_lockdown output accept");
            expect(await waitFor(async () => !/^\s*accept$/m.test(await table()), 8000)).toBe(true);
            expect(await bound()).not.toMatch(/reached/);
            // down, on such a kernel: the table goes, and the network is open (nothing was left closed).
            const down = await h.root("PATH=/tmp/nolegacy:$PATH cc-sandbox-firewall down");
            expect([down.code, down.stderr]).toEqual([0, expect.stringMatching(/down: the network is open/)]);
            expect(await table()).toMatch(/No such file or directory/);
            expect(await bound()).toMatch(/^reached$/m);
            const open = h.internet(`timeout 4 socat -u UDP-RECV:4472,bind=${h.gatewayAddress} - 2>&1; true`);
            await h.exec(`sleep 1; echo from-agent | socat -u - UDP:${h.gatewayAddress}:4472`);
            expect((await open).stdout).toBe("from-agent\n");

            // Without nftables too: LOCKDOWN by routing, the last resort, with the leak the README
            // names (a socket bound to the interface reaches the VM's own network).
            await h.root("printf '#!/bin/sh\\necho nft: no kernel support >&2\\nexit 1\\n' >/tmp/nolegacy/nft && chmod 0755 /tmp/nolegacy/nft");
            const routedUp = await h.root("PATH=/tmp/nolegacy:$PATH cc-sandbox-firewall up");
            expect(routedUp.code).not.toBe(0);
            expect(routedUp.stderr).toMatch(/LOCKDOWN by routing instead/);
            expect((await routed()).match(/uidrange 0-4294967294 prohibit/g)).toHaveLength(2);
            expect((await tcp("198.51.100.66", 443)).stderr).toMatch(/Permission denied/);
            expect((await tcp("198.51.100.66", 443, "root")).stderr).toMatch(/Permission denied/);
            expect((await h.root("timeout 5 bash -c 'exec 3<>/dev/udp/198.51.100.66/9999 && echo probe >&3' 2>&1; echo rc=$?")).stdout).toMatch(/Permission denied\n(.*\n)*rc=1\n$/);
            expect(await bound()).toMatch(/^reached$/m);
            expect((await h.root("cc-sandbox-firewall status")).stdout).toMatch(/^OFF \(no rules loaded; LOCKDOWN by routing/);
            const sshRouted = await h.internet(`timeout 3 bash -c 'exec 3<>/dev/tcp/${h.guestAddress}/22 && head -1 <&3'`);
            expect(sshRouted.stdout).toMatch(/^SSH-2\.0-OpenSSH/);
            // Root removes a rule: the watcher puts it back within a tick or two.
            await h.root("ip -4 rule del priority 77");
            expect(await waitFor(async () => /uidrange/.test((await h.root("ip -4 rule show priority 77")).stdout), 8000)).toBe(true);
            expect((await h.root("ip -4 rule show priority 76")).stdout.match(/lookup main/g)).toHaveLength(2);
        } finally {
            await h.root("rm -rf /tmp/nolegacy");
            // Only this harness's listener (its gateway address is its own): another run's is left alone.
            await h.internet(`pkill -f 'TCP-LISTEN:4471,bind=${h.gatewayAddress},' || true`);
            await listener;
        }
        // Rules that load again take their place: no table, no routing rule, and allowed work goes on.
        expect((await h.root("cc-sandbox-firewall up")).code).toBe(0);
        expect(await routed()).toBe("");
        expect(await table()).toMatch(/No such file or directory/);
        expect((await tls("allowed.test.example")).stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\n");
        expect((await h.root("cc-sandbox-firewall status")).stdout).toMatch(/^ON /);
    });

    test("fail-closed without ipset: up locks down with rules that need no set, SSH in still answers", async () => {
        // An ipset that fails every call, as on a kernel without the ip_set module; and a setsid
        // that is slow to start the proxy, so that the switch fails before the proxy it launched
        // is HAProxy yet (LOCKDOWN must end it all the same: no proxy left running unmanaged).
        const stub =
            "mkdir -p /tmp/noipset && printf '#!/bin/sh\\necho ipset: no kernel support >&2; exit 1\\n' >/tmp/noipset/ipset && chmod 0755 /tmp/noipset/ipset" +
            " && printf '#!/bin/sh\\nsleep 0.5\\nexec /usr/bin/setsid \"$@\"\\n' >/tmp/noipset/setsid && chmod 0755 /tmp/noipset/setsid";
        await h.root(stub);
        await h.root("cc-sandbox-firewall down");
        try {
            const r = await h.root("PATH=/tmp/noipset:$PATH cc-sandbox-firewall up");
            expect(r.code).not.toBe(0);
            expect(r.stderr).toMatch(/locking down without them/);
            expect(r.stderr).toMatch(/LOCKDOWN is in place/);
            const rules = (await h.root("iptables-legacy-save -t filter")).stdout;
            expect(rules).toMatch(/^:OUTPUT DROP/m);
            expect(rules).not.toMatch(/match-set/);
            expect((await tls("198.51.100.10")).stdout).toBe("");
            const ssh = await h.internet(`timeout 3 bash -c 'exec 3<>/dev/tcp/${h.guestAddress}/22 && head -1 <&3'`);
            expect(ssh.stdout).toMatch(/^SSH-2\.0-OpenSSH/);
            // Past the slow start: no proxy came up after the lockdown.
            const proxies = await h.root("sleep 1; pgrep -c -x haproxy; ss -Hltn 'sport = :913' | wc -l");
            expect(proxies.stdout.trim().split("\n")).toEqual(["0", "0"]);
        } finally {
            await h.root("rm -rf /tmp/noipset");
        }
        expect((await h.root("cc-sandbox-firewall up")).code).toBe(0);
        expect((await tls("allowed.test.example")).stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\n");
    });
});
