/**
 * The firewall against answers and channels an allowlist never meant to open: allowlisted names
 * that resolve to private, link-local (cloud metadata) or the VM's own addresses (DNS rebinding), a
 * removed name resolved while `apply` switches, SSH from loopback or from outside the VM's network,
 * and the DHCP client's port used to send anywhere. Each attack is paired with the allowed work
 * that must keep working. Needs root (see test/README.md).
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Harness, planOf, RunResult, waitFor, writeCiStack } from "./lib";

/** Addresses that exist only inside the harness's internet namespace. */
const privateTargets = {
    "metadata.wild.test.example": "169.254.169.254",
    "ten.wild.test.example": "10.255.0.10",
    "rfc1918b.wild.test.example": "172.31.0.10",
    "rfc1918c.wild.test.example": "192.168.255.10",
    "cgnat.wild.test.example": "100.127.255.250",
    "zero.wild.test.example": "0.0.0.10",
    "ietf.wild.test.example": "192.0.0.10",
    "reserved.wild.test.example": "240.0.0.10",
} as const;
/** A network the test adds to the guest's own link after start: the VM's own subnet. */
const linkNet = { guest: "198.18.200.2", peer: "198.18.200.1", prefix: 24 };

const records = [
    "allowed.test.example        A  198.51.100.10",
    "public.wild.test.example    A  198.51.100.30",
    "explicit.test.example       A  10.255.1.10",
    "peer.wild.test.example      A  198.18.200.1",
    "removed.test.example        A  198.51.100.50",
    "kept.test.example           A  198.51.100.51",
    "outsider.test.example       A  198.51.100.66",
    ...Object.entries(privateTargets).map(([n, a]) => `${n}  A  ${a}`),
].join("\n");

const allowlist = (withRemoved: boolean) =>
    planOf(["allowed.test.example 443", "*.wild.test.example 443", "explicit.test.example 443", "kept.test.example 443",
        ...(withRemoved ? ["removed.test.example 443"] : []), "10.255.1.0/24 443", ""].join("\n"));

let h: Harness;
let work: string;

function writeStack(dir: string): string {
    return writeCiStack(dir, "rebind", { allowlist: {
        presets: [],
        domains: ["allowed.test.example", "*.wild.test.example", "explicit.test.example", "kept.test.example", "removed.test.example"],
        cidrs: [{ cidr: "10.255.1.0/24", ports: [443] }],
    } });
}

/** A TLS connection on 443 (test/harness/tls-client.js): the banner, "" when refused. */
const tls = (host: string, opts: Parameters<Harness["tls"]>[1] = {}) => h.tls(host, opts);

async function tcp(host: string, port: number, user = "agent"): Promise<RunResult> {
    return h.exec(`timeout 4 bash -c 'exec 3<>/dev/tcp/${host}/${port} && head -1 <&3'`, { user });
}

beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "ccfw-rebind-"));
    h = await Harness.start({ config: writeStack(work), records });
    // The VM's own network grows a subnet that is neither private nor special: only the fact that
    // it is the VM's own keeps a DNS answer from opening it.
    const veth = async (ns: "guest" | "internet") => {
        const cmd = "ip -o link show type veth | awk -F': ' '{ sub(/@.*/, \"\", $2); print $2 }'";
        return (ns === "guest" ? await h.root(cmd) : await h.internet(cmd)).stdout.trim();
    };
    const g = await veth("guest");
    const i = await veth("internet");
    expect((await h.root(`ip addr add ${linkNet.guest}/${linkNet.prefix} dev ${g}`)).code).toBe(0);
    expect((await h.internet(`ip addr add ${linkNet.peer}/${linkNet.prefix} dev ${i}`)).code).toBe(0);
}, 120000);

afterAll(async () => {
    await h?.stop();
    fs.rmSync(work, { recursive: true, force: true });
});

describe("rebinding: an allowlisted name's answer never opens a private or own address", () => {
    test("allowed: a public address under the same wildcard is reachable", async () => {
        expect((await tls("public.wild.test.example")).stdout).toBe("ok 198.51.100.30 443 sni=public.wild.test.example\n");
    });

    test.each(Object.entries(privateTargets))("attack: %s (%s) resolves but cannot be reached", async (name, address) => {
        const r = await tls(name);
        expect(r.stdout).toBe("");
        // the address did go into the allow set: only the rule in front of it stops the connection
        const sets = await h.root("ipset save | grep '^add ccfw-d-'");
        expect(sets.stdout).toContain(` ${address}\n`);
        const root = await tls(name, { user: "root" });
        expect(root.stdout).toBe("");
    });

    test("attack: a name that resolves to the VM's own network (a peer on its link) cannot be reached", async () => {
        // the watcher takes the new link network into its set within a tick or two
        expect(await waitFor(async () => (await h.root(`ipset test ccfw-link ${linkNet.peer} 2>&1`)).code === 0, 8000)).toBe(true);
        expect((await tls("peer.wild.test.example")).stdout).toBe("");
        const sets = await h.root("ipset save | grep '^add ccfw-d-'");
        expect(sets.stdout).toContain(` ${linkNet.peer}\n`);
    });

    test("allowed: a private network listed as a CIDR entry is reachable, through its name too", async () => {
        expect((await tls("10.255.1.10")).stdout).toBe("ok 10.255.1.10 443 sni=-\n");
        expect((await tls("explicit.test.example")).stdout).toBe("ok 10.255.1.10 443 sni=explicit.test.example\n");
        // and only that network, on its port
        expect((await tcp("10.255.1.10", 8080)).stdout).toBe("");
        expect((await tls("10.255.0.10")).stdout).toBe("");
    });
});

describe("apply: a name removed while the agent keeps resolving it", () => {
    test("after apply returns, no address of the removed name is reachable (5 switches under lookups)", async () => {
        for (let round = 0; round < 5; round++) {
            expect((await h.root("cc-sandbox-firewall apply -", { input: allowlist(true) })).code).toBe(0);
            expect((await tls("removed.test.example")).stdout).toBe("ok 198.51.100.50 443 sni=removed.test.example\n");
            expect((await tls("kept.test.example")).stdout).toBe("ok 198.51.100.51 443 sni=kept.test.example\n");
            await h.exec("rm -f /tmp/stop-lookups");
            const lookups = h.exec("n=0; while [ ! -e /tmp/stop-lookups ] && [ $n -lt 3000 ]; do getent ahostsv4 removed.test.example >/dev/null; n=$((n+1)); done; echo $n");
            await new Promise((r) => setTimeout(r, 300));
            const applied = await h.root("cc-sandbox-firewall apply -", { input: allowlist(false) });
            expect(applied.code).toBe(0);
            const after = await tls("198.51.100.50");
            await h.exec("touch /tmp/stop-lookups");
            expect(Number((await lookups).stdout.trim())).toBeGreaterThan(0);
            expect(after.stdout).toBe("");
            expect((await h.root("ipset save | grep -c ' 198.51.100.50$' || true")).stdout.trim()).toBe("0");
            // a name that stayed is untouched, its address still reachable without a new lookup
            expect((await tls("kept.test.example", { connect: "198.51.100.51" })).stdout).toBe("ok 198.51.100.51 443 sni=kept.test.example\n");
        }
    }, 120000);
});

describe("SSH in (the guest's own sshd)", () => {
    test("allowed: from the hypervisor's side of the VM's network (its gateway)", async () => {
        const r = await h.internet(`timeout 3 bash -c 'exec 3<>/dev/tcp/${h.guestAddress}/22 && head -1 <&3'`);
        expect(r.stdout).toMatch(/^SSH-2\.0-OpenSSH/);
    });

    test("attack: from an address beyond the VM's network, SSH is dropped", async () => {
        // a source the guest routes through its gateway: the internet at large
        await h.internet("ip addr add 198.51.100.200/32 dev lo 2>/dev/null || true");
        const r = await h.internet(`timeout 3 socat -T2 - TCP:${h.guestAddress}:22,bind=198.51.100.200 </dev/null`);
        expect(r.stdout).toBe("");
    });

    test("attack: the agent cannot reach SSH over loopback or the VM's own address", async () => {
        for (const target of ["127.0.0.1", "127.0.1.1", h.guestAddress]) {
            const r = await tcp(target, 22);
            expect(r.stdout).toBe("");
            expect(r.stderr).toMatch(/Connection refused/);
        }
    });

    test("allowed: other loopback services (the credential bridge's sshd) still answer the agent", async () => {
        expect((await tcp("127.0.0.1", 799)).stdout).toMatch(/^SSH-2\.0-OpenSSH/);
    });
});

describe("the DHCP client's port", () => {
    beforeAll(async () => {
        await h.internet(`rm -f ${work}/dhcp.log; setsid -f socat -u UDP-RECVFROM:67,fork OPEN:${work}/dhcp.log,creat,append </dev/null >/dev/null 2>&1`);
        await waitFor(async () => (await h.internet("ss -Hlun sport :67 | wc -l")).stdout.trim() !== "0", 5000);
    });
    const sendFrom68 = (to: string, word: string) =>
        h.root(`echo ${word} | timeout 2 socat -u - UDP-SENDTO:${to}:67,sourceport=68,reuseaddr`);

    test("allowed: root's DHCP client reaches a server on the VM's own network", async () => {
        await sendFrom68(h.gatewayAddress, "onlink");
        expect(await waitFor(async () => fs.existsSync(`${work}/dhcp.log`) && fs.readFileSync(`${work}/dhcp.log`, "utf8").includes("onlink"), 3000)).toBe(true);
    });

    test("attack: from port 68, root reaches no address beyond the VM's network", async () => {
        await sendFrom68("198.51.100.66", "beyond");
        await new Promise((r) => setTimeout(r, 1000));
        expect(fs.existsSync(`${work}/dhcp.log`) ? fs.readFileSync(`${work}/dhcp.log`, "utf8") : "").not.toContain("beyond");
    });
});

describe("the status means the whole policy", () => {
    const state = async () => (await h.exec("cat /run/cc-sandbox/firewall.state")).stdout.split(" ")[0];

    test("OFF when root makes the resolver forward every name; ON again after up", async () => {
        expect(await waitFor(async () => (await state()) === "ON", 6000)).toBe(true);
        await h.root(`c=/run/cc-sandbox/firewall/dnsmasq.conf; sed -i 's|^address=/#/$|server=/#/${h.dnsAddress}|' $c; kill "$(cat /run/cc-sandbox/firewall/dnsmasq.pid)"; dnsmasq --conf-file=$c`);
        expect(await waitFor(async () => (await state()) === "OFF", 8000)).toBe(true);
        expect((await h.root("cc-sandbox-firewall up")).code).toBe(0);
        expect(await waitFor(async () => (await state()) === "ON", 6000)).toBe(true);
    });

    test("the VM's own networks are followed even while the state is OFF (SSH in never freezes out)", async () => {
        await h.root("ipset del ccfw-never 10.0.0.0/8");
        expect(await waitFor(async () => (await state()) === "OFF", 8000)).toBe(true);
        const g = (await h.root("ip -o link show type veth | awk -F': ' '{ sub(/@.*/, \"\", $2); print $2 }'")).stdout.trim();
        await h.root(`ip addr add 198.18.201.2/24 dev ${g}`);
        expect(await waitFor(async () => (await h.root("ipset test ccfw-link 198.18.201.1 2>&1")).code === 0, 8000)).toBe(true);
        expect((await h.root("cc-sandbox-firewall up")).code).toBe(0);
        expect(await waitFor(async () => (await state()) === "ON", 6000)).toBe(true);
    });

    test("OFF when root opens a private range in the set no answer may pass", async () => {
        await h.root("ipset del ccfw-never 10.0.0.0/8");
        expect(await waitFor(async () => (await state()) === "OFF", 8000)).toBe(true);
        expect((await h.root("cc-sandbox-firewall up")).code).toBe(0);
        expect(await waitFor(async () => (await state()) === "ON", 6000)).toBe(true);
        expect((await tls("ten.wild.test.example")).stdout).toBe("");
    });
});
