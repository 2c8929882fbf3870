/**
 * Egress by name: the guest's name-checking proxy, attacked for real. The harness's internet is a
 * CDN here: several sites share one address, and its servers answer TLS for any server name (with
 * a certificate from a CA the guest trusts) and HTTP for any Host. Every attack is paired with the
 * allowed work that goes through the same path. Needs root (see test/README.md).
 */
import { createHash } from "crypto";
import { tempDir } from "../helpers";
import { entriesOf, guestNode, guestTools, Harness, planOf, waitFor, writeCiStack } from "./lib";

const records = `
allowed.test.example      A  198.51.100.10
cotenant.test.example     A  198.51.100.10
web.test.example          A  198.51.100.20
webmate.test.example      A  198.51.100.20
a.wild.test.example       A  198.51.100.30
git.test.example          A  198.51.100.40
gitmate.test.example      A  198.51.100.40
outer.test.example        A  198.51.100.50
partner.test.example      A  198.51.100.10
slow.test.example         A  198.51.100.20
rawsite.test.example      A  198.51.100.60
`;

let h: Harness;

function writeStack(dir: string): string {
    return writeCiStack(dir, "proxytest", { allowlist: {
        presets: [],
        domains: [
            "allowed.test.example",
            "partner.test.example",
            { name: "web.test.example", ports: [80] },
            { name: "slow.test.example", ports: [80] },
            "*.wild.test.example",
            { name: "git.test.example", ports: [22, 443] },
            { name: "rawsite.test.example", ports: ["443/raw"] },
        ],
    } });
}

const tls = (host: string, opts: Parameters<Harness["tls"]>[1] = {}) => h.tls(host, opts);
/** A hand-made ClientHello (test/harness/hello.js) as the agent: "reply N first=0x16" or "closed". */
const hello = async (address: string, args: string) =>
    (await h.exec(`${guestNode} ${guestTools}/hello.js ${address} 443 ${args}`)).stdout.trim();
/** Raw HTTP/1.1 bytes to ADDRESS:80 as the agent; everything the other end sent back. */
const http = async (address: string, request: string) =>
    (await h.exec(`exec 3<>/dev/tcp/${address}/80 && printf '${request.replace(/\r\n/g, "\\r\\n")}' >&3 && timeout 3 cat <&3`)).stdout;
/** Each raw HTTP request to ADDRESS:80 is answered with a refusal (STATUS), never by the server. */
async function refusedHttp(address: string, requests: string[], status: RegExp): Promise<void> {
    for (const req of requests) {
        const out = await http(address, req);
        expect([req, out]).toEqual([req, expect.stringMatching(status)]);
        expect(out).not.toContain(`ok ${address}`);
    }
}
const proxyLog = async () => (await h.root("cat /var/log/cc-sandbox/proxy.log")).stdout;
const state = async () => (await h.exec("cat /run/cc-sandbox/firewall.state")).stdout.split(" ")[0];

beforeAll(async () => {
    h = await Harness.start({ config: writeStack(tempDir("ccfw-proxy-")), records });
    // What a client does before it connects: the allowlisted names' addresses enter the firewall's sets.
    expect((await h.exec("getent ahostsv4 allowed.test.example web.test.example a.wild.test.example git.test.example rawsite.test.example >/dev/null")).code).toBe(0);
}, 120000);

afterAll(async () => {
    await h?.stop();
});

describe("TLS: the server name decides", () => {
    test("allowed: an allowlisted name, certificate checked (curl and a bare TLS client)", async () => {
        expect((await h.exec("curl -sS --max-time 5 https://allowed.test.example/")).stdout).toBe(
            "ok 198.51.100.10 443 host=allowed.test.example sni=allowed.test.example\n",
        );
        expect((await tls("allowed.test.example")).stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\n");
        expect((await tls("a.wild.test.example")).stdout).toBe("ok 198.51.100.30 443 sni=a.wild.test.example\n");
    });

    test("attack: another site's name on the allowlisted address (the co-tenant) is refused", async () => {
        expect((await tls("cotenant.test.example", { connect: "198.51.100.10" })).stdout).toBe("");
        const curl = await h.exec("curl -sS --max-time 5 --connect-to cotenant.test.example:443:198.51.100.10:443 https://cotenant.test.example/");
        expect(curl.stdout).toBe("");
        expect(curl.code).not.toBe(0);
        expect(await proxyLog()).toMatch(/verdict=- why=name-not-allowed name=cotenant\.test\.example port=443 dst=198\.51\.100\.10 /);
    });

    test("attack: any other user but root is checked too (the secrets owner)", async () => {
        expect((await tls("cotenant.test.example", { connect: "198.51.100.10", user: "ccsecrets" })).stdout).toBe("");
        expect((await tls("allowed.test.example", { user: "ccsecrets" })).stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\n");
    });

    test("attack: no server name, or an address as the name, is refused", async () => {
        expect((await tls("198.51.100.10", { sni: null, insecure: true })).stdout).toBe("");
        expect(await hello("198.51.100.10", "")).toBe("closed");
        expect(await hello("198.51.100.10", "--sni 198.51.100.10")).toBe("closed");
        expect(await proxyLog()).toMatch(/why=no-name name=- port=443 dst=198\.51\.100\.10 /);
    });

    test("allowed, pinned: an allowed name sent to another allowlisted address goes to its own address", async () => {
        // The proxy connects where the filtering resolver says the name is, not where the client aimed.
        expect((await h.exec("getent ahostsv4 git.test.example >/dev/null")).code).toBe(0);
        expect((await tls("allowed.test.example", { connect: "198.51.100.40" })).stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\n");
        expect(await proxyLog()).toMatch(/verdict=allow why=- name=allowed\.test\.example port=443 dst=198\.51\.100\.40 via=198\.51\.100\.10 /);
    });

    test("attack: a name allowed on another port only, or a wildcard's bare domain, is refused on 443", async () => {
        expect((await h.exec("getent ahostsv4 web.test.example >/dev/null")).code).toBe(0);
        expect((await tls("web.test.example", { connect: "198.51.100.10" })).stdout).toBe("");
        expect((await tls("web.test.example")).stdout).toBe("");
        expect((await tls("wild.test.example", { connect: "198.51.100.30" })).stdout).toBe("");
    });

    test("attack: garbage, or a ClientHello split across TLS records (the name in the second), is refused", async () => {
        expect(await hello("198.51.100.10", "--sni allowed.test.example")).toMatch(/^reply \d+ first=0x1[56]$/);
        expect(await hello("198.51.100.10", "--garbage")).toBe("closed");
        expect(await hello("198.51.100.10", "--sni allowed.test.example --records 2")).toBe("closed");
        expect(await hello("198.51.100.10", "--sni cotenant.test.example --records 3")).toBe("closed");
    });

    test("allowed: one ClientHello record across several TCP segments still gets through", async () => {
        expect(await hello("198.51.100.10", "--sni allowed.test.example --segments 3")).toMatch(/^reply \d+ first=0x1[56]$/);
        expect(await hello("198.51.100.10", "--sni cotenant.test.example --segments 3")).toBe("closed");
    });

    test("attack: an encrypted ClientHello is judged by its outer name", async () => {
        expect(await hello("198.51.100.50", "--sni outer.test.example --ech")).toBe("closed");
        expect(await hello("198.51.100.10", "--sni outer.test.example --ech")).toBe("closed");
        // What stays open (README): an allowlisted outer name with a hidden inner one reaches the server.
        expect(await hello("198.51.100.10", "--sni allowed.test.example --ech")).toMatch(/^reply \d+ first=0x1[56]$/);
    });

    test("raw ports stay address-based: another site on an allowlisted name's raw port is reachable", async () => {
        expect((await h.exec("getent ahostsv4 git.test.example >/dev/null")).code).toBe(0);
        const r = await h.exec("timeout 5 bash -c 'exec 3<>/dev/tcp/198.51.100.40/22 && head -1 <&3'");
        expect(r.stdout).toBe("ok 198.51.100.40 22\n");
        // while 443 on the same address is checked by name
        expect((await tls("gitmate.test.example", { connect: "198.51.100.40" })).stdout).toBe("");
        expect((await tls("git.test.example")).stdout).toBe("ok 198.51.100.40 443 sni=git.test.example\n");
    });
});

describe("HTTP: every request's Host decides", () => {
    test("allowed: an allowlisted Host on port 80", async () => {
        expect((await h.exec("curl -sS --max-time 5 http://web.test.example/")).stdout).toBe("ok 198.51.100.20 80 host=web.test.example\n");
    });

    test("attack: another site's Host on the allowlisted address is refused", async () => {
        const r = await h.exec("curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -H 'Host: webmate.test.example' http://198.51.100.20/");
        expect(r.stdout).toBe("403");
    });

    test("attack: a second request on a kept-alive connection cannot switch to another Host", async () => {
        const out = await http("web.test.example", "GET / HTTP/1.1\r\nHost: web.test.example\r\n\r\nGET / HTTP/1.1\r\nHost: webmate.test.example\r\n\r\n");
        expect(out).toContain("host=web.test.example");
        expect(out).toMatch(/HTTP\/1\.1 403/);
        expect(out).not.toContain("host=webmate");
        // nor to a name the resolver answers for but that is allowed on 443 only
        const other = await http("web.test.example", "GET / HTTP/1.1\r\nHost: web.test.example\r\n\r\nGET / HTTP/1.1\r\nHost: allowed.test.example\r\n\r\n");
        expect(other).toContain("host=web.test.example");
        expect(other).toMatch(/HTTP\/1\.1 403/);
        expect(other).not.toContain("host=allowed");
    });

    test("attack: an absolute-form target, CONNECT, two Host headers or none are refused", async () => {
        await refusedHttp("198.51.100.20", [
            "GET http://webmate.test.example/ HTTP/1.1\r\nHost: web.test.example\r\n\r\n",
            "CONNECT webmate.test.example:443 HTTP/1.1\r\nHost: web.test.example\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: web.test.example\r\nHost: webmate.test.example\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
        ], /^HTTP\/1\.[01] 40[03]/);
    });

    test("attack: a Host with more after the name, or an upgrade to another protocol, is refused", async () => {
        await refusedHttp("198.51.100.20", [
            "GET / HTTP/1.1\r\nHost: web.test.example:@webmate.test.example\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: web.test.example/x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: web.test.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
        ], /^HTTP\/1\.[01] 403/);
        // a name with its port, and a WebSocket upgrade, still pass
        expect(await http("198.51.100.20", "GET / HTTP/1.1\r\nHost: web.test.example:80\r\nConnection: close\r\n\r\n")).toContain("ok 198.51.100.20 80 host=web.test.example:80");
        expect(await http("198.51.100.20", "GET / HTTP/1.1\r\nHost: web.test.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")).not.toMatch(/^HTTP\/1\.[01] 403/);
    });

    test("attack: TLS to port 80 is not passed through", async () => {
        const r = await h.exec("timeout 5 bash -c 'exec 3<>/dev/tcp/198.51.100.20/80 && printf \"\\x16\\x03\\x01\\x00\\x05hello\" >&3 && head -c 200 <&3'");
        expect(r.stdout).not.toContain("ok 198.51.100.20");
    });
});

describe("apply on open connections", () => {
    const allowlist = async () => (await h.root("cat /etc/cc-sandbox/allowlist")).stdout;
    // The plan of the installed allowlist's entries less one name's.
    const without = (plan: string, name: string) => planOf(entriesOf(plan).split("\n").filter((l) => !l.startsWith(`${name} `)).join("\n"));

    test("a removed name's HTTP request still waiting for its answer is cut; the name kept on the same connection before it was fine", async () => {
        const before = await allowlist();
        const conn = h.exec(
            "exec 3<>/dev/tcp/198.51.100.20/80 && printf 'GET / HTTP/1.1\\r\\nHost: web.test.example\\r\\n\\r\\nGET /delay/4 HTTP/1.1\\r\\nHost: slow.test.example\\r\\n\\r\\n' >&3 && timeout 8 cat <&3",
        );
        await new Promise((r) => setTimeout(r, 1000));
        try {
            expect((await h.root("cc-sandbox-firewall apply -", { input: without(before, "slow.test.example") })).code).toBe(0);
            const out = (await conn).stdout;
            expect(out).toContain("host=web.test.example");
            expect(out).not.toContain("late ");
            // and the address stays open for the name still allowlisted there, without a new lookup
            expect(await http("198.51.100.20", "GET / HTTP/1.1\r\nHost: web.test.example\r\nConnection: close\r\n\r\n")).toContain("ok 198.51.100.20 80 host=web.test.example");
        } finally {
            await h.root("cc-sandbox-firewall apply -", { input: before });
        }
    }, 30000);

    test("a name removed from a shared address leaves it open for the name still allowlisted there", async () => {
        const before = await allowlist();
        await h.root("cc-sandbox-firewall apply -", { input: before });
        const kept = tls("allowed.test.example", { hold: "/tmp/shared-go", ready: "/tmp/shared-ready" });
        expect(await waitFor(async () => (await h.exec("test -e /tmp/shared-ready")).code === 0, 10000)).toBe(true);
        // both names resolve to 198.51.100.10; partner's answer is the last one the resolver logged
        expect((await h.exec("getent ahostsv4 partner.test.example >/dev/null")).code).toBe(0);
        try {
            expect((await h.root("cc-sandbox-firewall apply -", { input: without(before, "partner.test.example") })).code).toBe(0);
            expect((await h.root("ipset save | grep -c ' 198.51.100.10$'")).stdout.trim()).not.toBe("0");
            expect((await tls("allowed.test.example", { connect: "198.51.100.10" })).stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\n");
            expect((await tls("partner.test.example", { connect: "198.51.100.10" })).stdout).toBe("");
            await h.root("touch /tmp/shared-go");
            expect((await kept).stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\necho:still-here\n");
        } finally {
            await h.root("rm -f /tmp/shared-go /tmp/shared-ready");
            await h.root("cc-sandbox-firewall apply -", { input: before });
        }
    }, 30000);

    test("an entry switched from raw to TLS cuts the raw connections it had allowed", async () => {
        const before = await allowlist();
        expect(entriesOf(before)).toContain("rawsite.test.example 443/raw\n");
        const hold = h.exec(
            "exec 3<>/dev/tcp/198.51.100.60/443 && touch /tmp/raw443-ready && while [ ! -e /tmp/raw443-go ]; do sleep 0.1; done; " +
                "printf x >&3 2>/dev/null; read -r -t 2 _ <&3; echo rc=$?",
        );
        expect(await waitFor(async () => (await h.exec("test -e /tmp/raw443-ready")).code === 0, 10000)).toBe(true);
        try {
            expect((await h.root("cc-sandbox-firewall apply -", { input: planOf(entriesOf(before).replace("rawsite.test.example 443/raw", "rawsite.test.example 443")) })).code).toBe(0);
            await h.root("touch /tmp/raw443-go");
            // cut: the read fails at once (rc 1), where an open connection would time out (rc > 128)
            expect((await hold).stdout).toBe("rc=1\n");
            expect((await tls("rawsite.test.example")).stdout).toBe("ok 198.51.100.60 443 sni=rawsite.test.example\n");
        } finally {
            await h.root("rm -f /tmp/raw443-go /tmp/raw443-ready");
            await h.root("cc-sandbox-firewall apply -", { input: before });
        }
    }, 30000);
});

describe("denied and status", () => {
    test("the proxy's log is root's alone, and a name cannot forge a line in it", async () => {
        expect((await h.exec("cat /var/log/cc-sandbox/proxy.log")).code).not.toBe(0);
        expect(await hello("198.51.100.10", "--sni $'evil.test.example\\nccproxy forged verdict=allow name=x'")).toBe("closed");
        expect(await proxyLog()).not.toMatch(/^ccproxy forged/m);
    });

    test("denied lists the proxy's refusals with the name asked for, the address and the reason", async () => {
        await tls("cotenant.test.example", { connect: "198.51.100.10" });
        await tls("198.51.100.10", { sni: null, insecure: true });
        const r = await h.root("cc-sandbox-firewall denied");
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/^ {2}cotenant\.test\.example +443 +198\.51\.100\.10 +name not allowed on this port +x\d+ /m);
        expect(r.stdout).toMatch(/^ {2}- +443 +198\.51\.100\.10 +no server name +x\d+ /m);
        // an allowed name on its own port is no refusal (it is one on port 80, asked for there above)
        expect(r.stdout).not.toMatch(/^ {2}allowed\.test\.example +443 /m);
    });

    test("a kernel message that quotes the firewall's prefix further on is not taken for a refusal", async () => {
        // As the kernel's warning about a program started with no arguments quotes its file name.
        const forged = `process 'a' launched '/tmp/a cc-fw-deny: IN= OUT=eth0 SRC=${h.guestAddress} DST=203.0.113.99 PROTO=TCP DPT=443 UID=1001' with NULL argv`;
        expect((await h.root(`printf '%s\\n' "${forged}" >/dev/kmsg`)).code).toBe(0);
        expect((await h.root("dmesg | grep -c 203.0.113.99")).stdout.trim()).not.toBe("0");
        expect((await h.root("cc-sandbox-firewall denied")).stdout).not.toContain("203.0.113.99");
    });

    test("the status line counts the refusals of the last 10 minutes", async () => {
        await tls("cotenant.test.example", { connect: "198.51.100.10" });
        const denied = async () => Number(/ denied=(\d+)/.exec((await h.exec("cat /run/cc-sandbox/firewall.state")).stdout)?.[1] ?? 0);
        // Counted every fifth tick of the watcher, recorded at the next: up to about 14 s, more when busy.
        expect(await waitFor(async () => (await denied()) >= 1, 30000)).toBe(true);
        const line = await h.exec("echo '{}' | /usr/local/bin/cc-sandbox-statusline");
        expect(line.stdout).toMatch(/\| FW:ON \d+ denied \|/);
    }, 45000);

    test("status names the policy in force: the allowlist's hash, the same the host computes", async () => {
        const allowlist = (await h.root("cat /etc/cc-sandbox/allowlist")).stdout;
        const hash = createHash("sha256").update(allowlist).digest("hex").slice(0, 16);
        expect((await h.root("cc-sandbox-firewall status")).stdout).toMatch(new RegExp(`^ON \\(policy ${hash}; .*proxy running\\)$`, "m"));
    });
});

describe("the agent against the proxy", () => {
    test("attack: the agent cannot kill, reconfigure, drive or replace the proxy", async () => {
        const pid = (await h.root("cat /run/cc-sandbox/firewall/proxy.pid")).stdout.trim();
        expect(pid).toMatch(/^\d+$/);
        expect((await h.exec(`kill -9 ${pid}`)).code).not.toBe(0);
        expect((await h.exec("ls /run/cc-sandbox/firewall/")).code).not.toBe(0);
        expect((await h.exec("echo 'cotenant.test.example:443' >>/run/cc-sandbox/firewall/proxy/tls.exact")).code).not.toBe(0);
        expect((await h.exec("echo 'show sess' | socat - UNIX-CONNECT:/run/cc-sandbox/firewall/proxy.sock")).code).not.toBe(0);
        // its ports are below 1024: not even a user namespace of the agent's own can take them
        expect((await h.exec("timeout 2 unshare -r socat TCP-LISTEN:913,bind=127.0.0.1,reuseaddr - 2>&1; echo rc=$?")).stdout).toMatch(/Permission denied[\s\S]*rc=1/);
        expect((await h.root(`kill -0 ${pid}`)).code).toBe(0);
        expect((await tls("allowed.test.example")).stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\n");
    });

    test("fail-closed: with the proxy down, the address is unreachable on 443 and its port cannot be taken; the watcher restarts it", async () => {
        expect(await state()).toBe("ON");
        // The watcher paused, so that the proxy stays down while the agent tries.
        await h.root("pkill -STOP -f 'sbin/cc-sandbox-firewall watc[h]' && kill $(cat /run/cc-sandbox/firewall/proxy.pid)");
        try {
            expect(await waitFor(async () => (await h.root("ss -Hltn 'sport = :913'")).stdout.trim() === "", 5000)).toBe(true);
            const direct = await h.exec("timeout 5 bash -c 'exec 3<>/dev/tcp/198.51.100.10/443 && echo connected'");
            expect(direct.stdout).toBe("");
            expect(direct.stderr).toMatch(/Connection refused/);
            expect((await tls("allowed.test.example")).stdout).toBe("");
            const bind = await h.exec("timeout 2 socat TCP-LISTEN:913,bind=127.0.0.1,reuseaddr - 2>&1; echo rc=$?");
            expect(bind.stdout).toMatch(/Permission denied/);
        } finally {
            await h.root("pkill -CONT -f 'sbin/cc-sandbox-firewall watc[h]'");
        }
        expect(await waitFor(async () => (await tls("allowed.test.example")).stdout !== "", 10000)).toBe(true);
        expect((await tls("allowed.test.example")).stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\n");
        expect(await waitFor(async () => (await state()) === "ON", 6000)).toBe(true);
        expect((await h.root("cc-sandbox-firewall status")).stdout).toMatch(/proxy running/);
    });

    test("attack: hundreds of connections that never say hello do not stop allowed work", async () => {
        const holder = h.exec(
            `${guestNode} -e 'const net=require("net");const s=[];let n=0;for(let i=0;i<300;i++){const c=net.connect(443,"198.51.100.10",()=>{if(++n===300)console.log("open "+n)});c.on("error",()=>{});s.push(c)}setTimeout(()=>process.exit(0),8000)'`,
        );
        // All 300 open (to the proxy, which REDIRECT leaves them thinking is 198.51.100.10) before allowed work is tried.
        const open = async () => Number((await h.root("ss -Htn state established dst 198.51.100.10:443 | wc -l")).stdout.trim());
        expect(await waitFor(async () => (await open()) >= 300, 5000)).toBe(true);
        expect((await tls("allowed.test.example")).stdout).toBe("ok 198.51.100.10 443 sni=allowed.test.example\n");
        // ... while all 300 were still held: it waited for none of them to be closed by the proxy's
        // 5 s limit on a hello (a measure of how long it took would say the same less surely).
        expect(await open()).toBeGreaterThanOrEqual(300);
        expect((await holder).stdout).toContain("open 300");
    }, 30000);
});

describe("the proxy's log", () => {
    test("is kept to two files of about 2 MB whatever users send, both root's alone, and logging goes on", async () => {
        await h.root("head -c 2100000 /dev/zero | tr '\\0' x >>/var/log/cc-sandbox/proxy.log && echo >>/var/log/cc-sandbox/proxy.log");
        const size = async () => Number((await h.root("stat -c %s /var/log/cc-sandbox/proxy.log")).stdout.trim());
        expect(await waitFor(async () => (await size()) < 100000, 8000)).toBe(true);
        const modes = await h.root("stat -c '%a %U %s' /var/log/cc-sandbox/proxy.log.1 /var/log/cc-sandbox/proxy.log");
        expect(modes.stdout).toMatch(/^600 root \d{7}\n600 root \d+\n$/);
        await tls("cotenant.test.example", { connect: "198.51.100.10" });
        expect(await waitFor(async () => /name=cotenant\.test\.example /.test((await h.root("cat /var/log/cc-sandbox/proxy.log")).stdout), 3000)).toBe(true);
    }, 20000);
});
