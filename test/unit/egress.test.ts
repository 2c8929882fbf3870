/**
 * The egress plan (src/render/egress.ts), and the guest's checker of it (`cc-sandbox-firewall
 * check`) fed the same good and bad allowlist entries as the config schema.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { ConfigError, loadConfig } from "../../src/config/load";
import { Allowlist } from "../../src/config/types";
import { formatEgressPlan, planEgress, renderEgressPlan } from "../../src/render/egress";
import { badCidrs, badDomains, badPorts, goodCidrs, goodDomains, goodPorts } from "../fixtures/allowlist-entries";
import { hostFor, root, tempHome } from "../helpers";

const host = hostFor(tempHome());
const firewall = path.join(root, "templates/guest/usr/local/sbin/cc-sandbox-firewall");

const allowlistOf = (domains: unknown[], cidrs: unknown[] = []): Allowlist => loadConfig("dev", { allowlist: { presets: [], domains, cidrs } }, host).allowlist;

function refusal(domains: unknown[], cidrs: unknown[] = []): ConfigError | undefined {
    try {
        allowlistOf(domains, cidrs);
    } catch (err) {
        if (err instanceof ConfigError) return err;
        throw err;
    }
    return undefined;
}

/** The guest's checker on a plan: its exit code, its stdout (the counts) and its stderr. */
function check(plan: string) {
    const r = spawnSync("bash", [firewall, "check", "-"], { input: plan, encoding: "utf8" });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const planLines = (text: string) => text.split("\n").filter((l) => l && !l.startsWith("#"));

describe("the plan", () => {
    test("a plain name: its own set, forwarded alone (its subdomains refused), a proxy key per TLS/HTTP port", () => {
        const plan = planEgress(allowlistOf([{ name: "git.example.org", ports: [22, 443, 80] }]));
        expect(plan.sets).toEqual([
            {
                name: "ccfw-d-22.80.443",
                ports: [
                    { port: 22, mode: "raw" },
                    { port: 80, mode: "http" },
                    { port: 443, mode: "tls" },
                ],
            },
        ]);
        expect(plan.names).toEqual([{ name: "git.example.org", scope: "only", sets: ["ccfw-d-22.80.443"] }]);
        expect(plan.proxy).toEqual([
            { mode: "http", match: "exact", key: "git.example.org:80" },
            { mode: "tls", match: "exact", key: "git.example.org:443" },
        ]);
    });

    test("a wildcard covers subdomains only; a plain name under it is forwarded with its subtree and takes its sets too", () => {
        const plan = planEgress(allowlistOf(["*.example.org", { name: "api.example.org", ports: [8443] }, { name: "x.api.example.org", ports: ["443/raw"] }]));
        expect(plan.names).toEqual([
            { name: "api.example.org", scope: "tree", sets: ["ccfw-d-8443", "ccfw-d-443"] },
            { name: "example.org", scope: "below", sets: ["ccfw-d-443"] },
            { name: "x.api.example.org", scope: "tree", sets: ["ccfw-d-443r", "ccfw-d-443"] },
        ]);
        expect(plan.proxy).toEqual([{ mode: "tls", match: "suffix", key: ".example.org:443" }]);
        expect(plan.counts).toEqual({ names: 2, wildcards: 1, cidrs: 0 });
    });

    test("a name and its own wildcard: one name line, both sets, both proxy keys", () => {
        const plan = planEgress(allowlistOf(["example.org", { name: "*.example.org", ports: [8443, "80/tls"] }]));
        expect(plan.names).toEqual([{ name: "example.org", scope: "tree", sets: ["ccfw-d-443", "ccfw-d-80t.8443"] }]);
        expect(plan.proxy.map((p) => `${p.mode} ${p.match} ${p.key}`)).toEqual(["tls exact example.org:443", "tls suffix .example.org:80"]);
    });

    test("a network's ports are raw, in a set of its own kind; a long port list gets a hashed set name of 31 characters at most", () => {
        const many = Array.from({ length: 16 }, (_, i) => 10000 + i);
        const plan = planEgress(allowlistOf([{ name: "a.example.org", ports: many }], [{ cidr: "192.0.2.0/24", ports: [443, 22] }]));
        expect(plan.cidrs).toEqual([{ set: "ccfw-n-22.443r", cidr: "192.0.2.0/24" }]);
        const long = plan.sets.find((s) => s.name.startsWith("ccfw-d-"))!;
        expect(long.name).toMatch(/^ccfw-d-h[0-9a-f]{12}$/);
        expect(long.ports).toHaveLength(16);
        expect(plan.proxy).toEqual([]);
    });

    test("the same allowlist, in any order, gives the same bytes", () => {
        const a = renderEgressPlan(allowlistOf(["b.example.org", "*.a.example.org", "a.example.org"], ["198.51.100.0/24", "192.0.2.0/24"]));
        const b = renderEgressPlan(allowlistOf(["a.example.org", "b.example.org", "*.a.example.org"], ["192.0.2.0/24", "198.51.100.0/24"]));
        expect(a).toBe(b);
        expect(planLines(a)[0]).toBe("plan 1");
    });

    test("the guest's checker loads a whole plan and reports its counts", () => {
        const text = renderEgressPlan(
            allowlistOf(["*.example.org", "example.org", { name: "git.example.org", ports: [22, "443/raw", 80] }, "*.api.example.org", "w.api.example.org"], ["192.0.2.0/24"]),
        );
        expect(check(text)).toEqual({ code: 0, stdout: "3 names, 2 wildcards, 1 CIDRs\n", stderr: "" });
    });
});

test("the checker finds the firewall's parts however the script is reached: by a link, or by its bare name", () => {
    const plan = renderEgressPlan(allowlistOf(["example.org"]));
    const link = path.join(tempHome(), "ccfw-link");
    fs.symlinkSync(firewall, link);
    for (const [cmd, cwd] of [[link, undefined], ["cc-sandbox-firewall", path.dirname(firewall)]] as const) {
        const r = spawnSync("bash", [cmd, "check", "-"], { input: plan, encoding: "utf8", cwd });
        expect([r.status, r.stdout, r.stderr]).toEqual([0, "1 names, 0 wildcards, 0 CIDRs\n", ""]);
    }
});

describe("the guest's checker refuses a plan that is not whole", () => {
    const good = renderEgressPlan(allowlistOf(["example.org", "*.example.org"], ["192.0.2.0/24"]));
    const lines = planLines(good);
    test.each([
        ["an allowlist in the old one-entry-a-line form", "example.org 443\n", /first line must be 'plan 1'/],
        ["an empty file", "", /empty/],
        ["no counts", lines.filter((l) => !l.startsWith("counts")).join("\n"), /no counts line/],
        ["a name whose set is not declared", lines.filter((l) => !l.startsWith("set ccfw-d-")).join("\n"), /name sets declared above/],
        ["a set declared twice", [...lines.slice(0, 3), lines[2], ...lines.slice(3)].join("\n"), /declared twice/],
        ["a network in a name set", good.replace(/^cidr ccfw-n-443r/m, "cidr ccfw-d-443"), /no network set/],
        ["a proxy key for a port its name does not open", good.replace("proxy tls exact example.org:443", "proxy tls exact example.org:8443"), /no name line opens 8443\/tls/],
        ["a proxy key for a name not listed", `${good}proxy tls exact other.example.org:443\n`, /no name line opens/],
        ["an unknown directive", `${good}server=/#/192.0.2.53\n`, /no plan line/],
        ["an address handed to the resolver as a name", `${good}name 192.0.2.1 only ccfw-d-443\n`, /not a lowercase DNS name/],
    ])("%s", (_what, text, why) => {
        const r = check(text);
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(why);
        expect(r.stderr).toMatch(/nothing was changed\n$/);
    });
});

describe("the schema and the guest's checker agree on every entry", () => {
    test.each(goodDomains)("%s: the schema takes it and the guest loads its plan", (entry) => {
        const text = renderEgressPlan(allowlistOf([entry]));
        expect(check(text)).toMatchObject({ code: 0, stderr: "" });
    });

    test.each(goodPorts.map((p) => [JSON.stringify(p), p] as const))("ports %s: the schema takes them and the guest loads their plan", (_, ports) => {
        expect(check(renderEgressPlan(allowlistOf([{ name: "example.org", ports }])))).toMatchObject({ code: 0, stderr: "" });
    });

    test.each(goodCidrs)("%s: the schema takes it and the guest loads its plan", (cidr) => {
        expect(check(renderEgressPlan(allowlistOf([], [cidr])))).toMatchObject({ code: 0, stderr: "" });
    });

    // A bad entry cannot be planned: it is put by hand where the plan would carry it.
    const base = ["plan 1", "counts 1 0 1", "set ccfw-d-443 443/tls", "set ccfw-n-443r 443/raw"];

    test.each(badDomains)("%j: the schema refuses it, and so does the guest in a plan", (entry) => {
        expect(refusal([entry])?.issues.map((i) => i.path)).toEqual(["cc-sandbox:allowlist.domains[0]"]);
        const wildcard = entry.startsWith("*.");
        const name = wildcard ? entry.slice(2) : entry;
        const key = wildcard ? `suffix .${name}:443` : `exact ${name}:443`;
        const r = check([...base, `name ${name} ${wildcard ? "below" : "only"} ccfw-d-443`, `proxy tls ${key}`].join("\n"));
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(/:5: /);
    });

    test.each(badPorts.map((p) => [JSON.stringify(p), p] as const))("ports %s: the schema refuses them, and so does the guest in a plan", (_, ports) => {
        expect(refusal([{ name: "example.org", ports }])).toBeDefined();
        const tokens = ports.map((p) => (String(p).includes("/") ? String(p) : `${p}/raw`)).join(",");
        const r = check([...base, `set ccfw-d-x ${tokens}`].join("\n"));
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(/:5: .*comma list of 1 to 16 TCP ports/);
    });

    test.each(badCidrs)("%j: the schema refuses it, and so does the guest in a plan", (cidr) => {
        expect(refusal([], [cidr])?.issues.map((i) => i.path)).toEqual(["cc-sandbox:allowlist.cidrs[0]"]);
        const r = check([...base, `cidr ccfw-n-443r ${cidr}`].join("\n"));
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(/:5: /);
    });

    test("entries for one name or network together carry 16 ports at most, as the guest's sets do", () => {
        const sixteen = Array.from({ length: 16 }, (_, i) => 1000 + i);
        expect(check(renderEgressPlan(allowlistOf([{ name: "x.example.org", ports: sixteen }], [{ cidr: "192.0.2.0/24", ports: sixteen }]))).code).toBe(0);
        const names = refusal([{ name: "x.example.org", ports: sixteen }, { name: "x.example.org", ports: [2000] }]);
        expect(names?.issues.map((i) => i.path)).toEqual(["cc-sandbox:allowlist.domains[1].ports"]);
        expect(names?.message).toMatch(/gives x\.example\.org more than 16 ports with its other entries \(17\)/);
        const nets = refusal([], [{ cidr: "192.0.2.0/24", ports: sixteen }, { cidr: "192.0.2.0/24", ports: [2000] }]);
        expect(nets?.issues.map((i) => i.path)).toEqual(["cc-sandbox:allowlist.cidrs[1]"]);
    });

    test("a good plan with one good line swapped for a bad one is refused at that line", () => {
        const text = formatEgressPlan(planEgress(allowlistOf(["example.org"])));
        expect(check(text).code).toBe(0);
        expect(check(text.replace("name example.org ", "name Example.org ")).stderr).toMatch(/:6: 'Example.org' is not a lowercase DNS name/);
    });
});

describe("projects in the plan", () => {
    const projectsOf = (projects: unknown[], stack: unknown[] = ["*.example.org"]) =>
        loadConfig("dev", { allowlist: { presets: [], domains: stack }, projects }, host);

    test("a worker's entries get sets of its own; a name lists every set its answers go into, the stack's and the workers'", () => {
        const c = projectsOf([
            { name: "web", allowlist: { domains: ["api.example.org", { name: "git.example.net", ports: [22] }], cidrs: ["192.0.2.0/24"] } },
            { name: "quiet", network: "none" },
        ]);
        const [web, quiet] = c.projects.map((p) => p.uid);
        const plan = planEgress(c.allowlist, c.projects);
        expect(plan.users).toEqual([...[{ uid: web, network: "allowlist" }, { uid: quiet, network: "none" }]].sort((a, b) => a.uid - b.uid));
        expect(plan.names.find((n) => n.name === "api.example.org")).toEqual({ name: "api.example.org", scope: "tree", sets: ["ccfw-d-443", `ccfw-${web}-d-443`] });
        expect(plan.names.find((n) => n.name === "git.example.net")).toEqual({ name: "git.example.net", scope: "only", sets: [`ccfw-${web}-d-22`] });
        expect(plan.cidrs).toEqual([{ set: `ccfw-${web}-n-443r`, cidr: "192.0.2.0/24" }]);
        expect(plan.proxy).toContainEqual({ mode: "tls", match: "exact", key: "api.example.org:443", owner: web });
        // network none: what Claude Code needs (the anthropic preset), as the worker's own
        expect(plan.proxy).toContainEqual({ mode: "tls", match: "exact", key: "api.anthropic.com:443", owner: quiet });
        expect(plan.proxy.filter((p) => p.owner === undefined)).toEqual([{ mode: "tls", match: "suffix", key: ".example.org:443" }]);
        const text = formatEgressPlan(plan);
        expect(check(text)).toEqual({ code: 0, stdout: "8 names, 1 wildcards, 1 CIDRs\n", stderr: "" });
    });

    test("a stack without projects plans exactly as before: no user lines, no owners", () => {
        const c = projectsOf([]);
        expect(renderEgressPlan(c.allowlist, c.projects)).toBe(renderEgressPlan(c.allowlist));
        expect(renderEgressPlan(c.allowlist)).not.toMatch(/^user /m);
    });

    test("bad project egress config: each error names the key and the value", () => {
        const bad = (projects: unknown[]) => {
            try {
                projectsOf(projects);
            } catch (err) {
                if (err instanceof ConfigError) return err.message;
                throw err;
            }
            return "";
        };
        expect(bad([{ name: "web", network: "open" }])).toMatch(/cc-sandbox:projects\[0\]\.network.*allowlist, none|cc-sandbox:projects\[0\]\.network/);
        expect(bad([{ name: "web", network: "none", allowlist: { domains: ["example.net"] } }])).toMatch(/cc-sandbox:projects\[0\]\.allowlist: must be empty when network is none/);
        expect(bad([{ name: "web", allowlist: { domains: ["http://example.net"] } }])).toMatch(/cc-sandbox:projects\[0\]\.allowlist\.domains\[0\]/);
        expect(bad([{ name: "web", allowlist: { domains: [{ name: "example.net", ports: ["443/raw", 443] }] } }])).toMatch(/cc-sandbox:projects\[0\]\.allowlist\.domains\[0\]\.ports/);
        expect(bad([{ name: "web", allowlist: { cidrs: ["10.0.0.1/8"] } }])).toMatch(/cc-sandbox:projects\[0\]\.allowlist\.cidrs\[0\]/);
        expect(bad([{ name: "web", allowlist: { presets: ["nope"] } }])).toMatch(/cc-sandbox:projects\[0\]\.allowlist\.presets\[0\]/);
        expect(bad([{ name: "web", allowlist: { domains: ["a.example.net"], extra: 1 } }])).toMatch(/cc-sandbox:projects\[0\]\.allowlist/);
    });

    describe("the guest's checker refuses a worker's lines that do not hold together", () => {
        const c = projectsOf([{ name: "web", allowlist: { domains: ["api.example.org", "git.example.net"] } }]);
        const uid = c.projects[0].uid;
        const good = renderEgressPlan(c.allowlist, c.projects);
        test.each([
            ["a worker's set with no user line", good.replace(`user ${uid} allowlist\n`, ""), /belongs to no user declared above/],
            ["a system user's uid", good.replace(`user ${uid} `, "user 0 "), /not a worker's uid/],
            ["a uid the proxy address cannot hold", good.replace(`user ${uid} `, "user 70000 "), /not a worker's uid/],
            ["a mode that is neither", good.replace(`user ${uid} allowlist`, `user ${uid} open`), /no network mode/],
            ["a user declared twice", good.replace(`user ${uid} allowlist\n`, `user ${uid} allowlist\nuser ${uid} none\n`), /declared twice/],
            ["a proxy key for an undeclared user", `${good}proxy tls exact git.example.net:443 29999\n`, /no user declared above/],
            // the stack's set opens 443 for api.example.org, but a key for the worker needs the worker's set
            ["a worker's key on a name only the stack opens", `${good}proxy tls exact other.example.org:443 ${uid}\n`.replace("name api.example.org tree", "name other.example.org only ccfw-d-443\nname api.example.org tree"), /no name line opens 443\/tls for other\.example\.org in a set of user/],
            ["a user line after the sets", good.replace(`user ${uid} allowlist\n`, "") + `user ${uid} allowlist\n`, /users first|belongs to no user/],
        ])("%s", (_what, text, why) => {
            const r = check(text);
            expect(r.code).toBe(2);
            expect(r.stderr).toMatch(why);
        });
    });
});

describe("one owner's wildcard over another owner's raw ports", () => {
    const bad = (stack: unknown[], projects: unknown[]) => {
        try {
            loadConfig("dev", { allowlist: { presets: [], domains: stack }, projects }, host);
        } catch (err) {
            if (err instanceof ConfigError) return err.message;
            throw err;
        }
        return "";
    };
    test("a project's wildcard over the stack's raw-port name is refused, naming both", () => {
        expect(bad([{ name: "git.example.org", ports: [22] }], [{ name: "web", allowlist: { domains: ["*.example.org"] } }])).toMatch(
            /cc-sandbox:projects\[0\]\.allowlist\.domains: \*\.example\.org \(project web\) covers git\.example\.org, which the stack allows on raw port 22: .* \(got "\*\.example\.org"\)/,
        );
    });
    test("the stack's wildcard over a project's raw-port name, or one project's over another's, is refused at the project's entry", () => {
        expect(bad(["*.example.org"], [{ name: "web", allowlist: { domains: [{ name: "example.org", ports: ["2222/raw"] }] } }])).toMatch(
            /cc-sandbox:projects\[0\]\.allowlist\.domains: \*\.example\.org \(the stack\) covers example\.org, which project web allows on raw port 2222/,
        );
        expect(bad([], [{ name: "web", allowlist: { domains: [{ name: "a.example.org", ports: [22] }] } }, { name: "api", allowlist: { domains: ["*.example.org"] } }])).toMatch(
            /cc-sandbox:projects\[1\]\.allowlist\.domains: \*\.example\.org \(project api\) covers a\.example\.org, which project web allows on raw port 22/,
        );
    });
    test("allowed: a wildcard over another owner's TLS-only name, or over its own raw-port name", () => {
        expect(bad(["git.example.org"], [{ name: "web", allowlist: { domains: ["*.example.org"] } }])).toBe("");
        expect(bad([], [{ name: "web", allowlist: { domains: ["*.example.org", { name: "git.example.org", ports: [22] }] } }])).toBe("");
    });
});

describe("the upstream DNS servers the guest's resolver forwards to, read from a resolv.conf", () => {
    const planSh = path.join(root, "templates/guest/usr/local/lib/cc-sandbox/firewall/plan.sh");
    /** nameservers_in on a file with TEXT (or on no file): its exit code and the servers it kept. */
    function upstreams(text?: string): string {
        const dir = fs.mkdtempSync(path.join(tempHome(), "resolv-"));
        const file = path.join(dir, "resolv.conf");
        if (text !== undefined) fs.writeFileSync(file, text);
        const script = 'resolv_marker="# cc-sandbox-firewall:"; . "$1"; nameservers_in "$2"; echo "$? ${NS[*]}"';
        const r = spawnSync("bash", ["-c", script, "_", planSh, file], { encoding: "utf8" });
        return r.stdout.trim();
    }
    test("IPv4 servers in order; loopback, IPv6, malformed addresses and comments left out", () => {
        const text = [
            "# a comment",
            "search example.org",
            "nameserver 10.0.0.1",
            "nameserver 127.0.0.53",
            "nameserver ::1",
            "nameserver 1.2.3.04",
            "nameserver 300.1.1.1",
            "nameserver 1.2.3",
            "  nameserver 192.0.2.53   # the VM's own",
            "options edns0",
            "nameserver 198.51.100.1",
        ].join("\n"); // the last line without its newline
        expect(upstreams(text)).toBe("0 10.0.0.1 192.0.2.53 198.51.100.1");
    });
    test("its own file (the marker on any line) and a missing file are no source", () => {
        expect(upstreams("# cc-sandbox-firewall: every lookup goes through the filtering resolver\nnameserver 127.0.0.1\n")).toBe("1");
        expect(upstreams("nameserver 192.0.2.53\n#  cc-sandbox-firewall: marker\n")).toBe("1");
        expect(upstreams()).toBe("1");
        expect(upstreams("")).toBe("0");
    });
});
