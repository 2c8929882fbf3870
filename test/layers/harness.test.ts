/**
 * The layers through the namespace harness: the CI stack's guest with its firewall up against the
 * harness's test internet, the users made as cloud-init makes them and hardened by the boot steps,
 * then cc-sandbox-verify from inside and the status line following the live firewall.
 */
import { Harness, waitFor } from "../harness/lib";
import { layerChecks } from "./guest";

const records = `
allowed.test.example   A     198.51.100.10
allowed.test.example   AAAA  fd00:ccf1::10
blocked.test.example   A     198.51.100.66
`;
// Targets that answer if reached: a server listens on every record's address, and the upstream
// DNS server (the resolver the VM was given) answers anyone who asks it directly.
const targets = "--allowed allowed.test.example:443 --blocked blocked.test.example --blocked-ip 198.51.100.66 --blocked-ip6 fd00:ccf1::10";

let h: Harness;
const json = '{"model":{"display_name":"Opus 4.6"},"context_window":{"used_percentage":45}}';

// The harness runs the guest's own boot steps (users hardened as cloud-init's runcmd leaves them).
beforeAll(async () => {
    h = await Harness.start({ stack: "ci", records });
}, 180_000);

afterAll(async () => {
    await h?.stop();
});

const lines = (out: string, prefix: string) => out.split("\n").filter((l) => l.startsWith(prefix)).map((l) => l.split(/[\s:]+/)[1]);

test("cc-sandbox-verify as root: every check ok, the resolver the VM was given included", async () => {
    const r = await h.root(`cc-sandbox-verify --only ${layerChecks} ${targets} --resolver ${h.dnsAddress}`, { timeoutMs: 120_000 });
    expect(lines(r.stdout, "FAIL")).toEqual([]);
    expect(lines(r.stdout, "ok ")).toEqual(
        expect.arrayContaining([
            "firewall-state",
            "firewall-blocks-address",
            "firewall-allows",
            "dns-local-resolver",
            "dns-blocks-name",
            "dns-foreign-resolver",
            "ipv6-blocked",
            "agent-sudo",
            "nnp-wrapper",
            "nnp-sudo",
            "bwrap",
            "ssh",
            "statusline",
            "projects",
        ]),
    );
    expect(r.code).toBe(0);
}, 120_000);

test("cc-sandbox-verify as the agent: the same, less the root-only checks", async () => {
    const r = await h.exec(`cc-sandbox-verify --only ${layerChecks} ${targets} --resolver ${h.dnsAddress}`, { timeoutMs: 120_000 });
    expect(lines(r.stdout, "FAIL")).toEqual([]);
    expect(lines(r.stdout, "skip")).toEqual(["ssh", "claude", "projects"]);
    expect(r.code).toBe(0);
}, 120_000);

test("the status line, as the agent: FW:ON with the firewall up, NNP under the wrapper's flag", async () => {
    const plain = await h.exec(`cc-sandbox-statusline <<<'${json}'`);
    // The verify runs before this one were refused a few connections on purpose: FW:ON may count them.
    expect(plain.stdout).toMatch(/^\[Opus 4\.6\] 45% \| FW:ON( \d+ denied)? \| NNP:OFF\n$/);
    const nnp = await h.exec(`setpriv --no-new-privs cc-sandbox-statusline <<<'${json}'`);
    expect(nnp.stdout).toMatch(/^\[Opus 4\.6\] 45% \| FW:ON( \d+ denied)? \| NNP\n$/);
});

test("attack: the agent cannot stop the firewall, and its status line still says ON", async () => {
    const down = await h.exec("cc-sandbox-firewall down; iptables -F OUTPUT; iptables-legacy -F OUTPUT; sudo -n cc-sandbox-firewall down");
    expect(down.code).not.toBe(0);
    const line = await h.exec(`cc-sandbox-statusline <<<'${json}'`);
    expect(line.stdout).toMatch(/FW:ON/);
});

test("attack: rules flushed (by root) -> FW:OFF within seconds, and verify fails", async () => {
    const flush = await h.root("iptables-legacy -P OUTPUT ACCEPT && iptables-legacy -F OUTPUT");
    expect(flush.code).toBe(0);
    let line = "";
    const off = await waitFor(async () => {
        line = (await h.exec(`cc-sandbox-statusline <<<'${json}'`)).stdout;
        return line.includes("FW:OFF");
    }, 15_000, 500);
    expect(line).toBe("[Opus 4.6] 45% | FW:OFF | NNP:OFF\n");
    expect(off).toBe(true);
    const v = await h.root(`cc-sandbox-verify --only firewall ${targets}`, { timeoutMs: 60_000 });
    expect(lines(v.stdout, "FAIL")).toContain("firewall-state");
    expect(v.code).toBe(1);
}, 60_000);
