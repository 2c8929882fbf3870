/**
 * The Pulumi program under Pulumi's own mocks: the resource graph, the outputs, and which changes
 * replace the VM (pulumi-command replaces a Command when its `triggers` change).
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { folderHash } from "../../src/config/projects";
import { root, tempHome } from "../helpers";
import { specialSecretSig, specialSigKey } from "@pulumi/pulumi/runtime/rpc";

interface Registered {
    type: string;
    name: string;
    inputs: Record<string, any>;
}

interface Run {
    resources: Registered[];
    calls: { token: string; inputs: Record<string, any> }[];
    outputs: Record<string, unknown>;
}

const home = tempHome();
// The folders the stacks share exist, as they must on a developer's host.
for (const d of ["code", "datasets", "src"]) fs.mkdirSync(path.join(home, d));
const ip = "10.11.12.13";
/** What the mocked info step reports as the VM's instance (libvirt's domain UUID). */
let instance = "0b2a4c7e-0000-4000-8000-000000000001";

function stackConfig(stack: string): Record<string, unknown> {
    return parse(fs.readFileSync(path.join(root, "stacks", `Pulumi.${stack}.yaml`), "utf8")).config;
}

/** Runs the program once in a fresh module registry with the given config. */
async function runProgram(stack: string, config: Record<string, unknown>): Promise<Run> {
    const run: Run = { resources: [], calls: [], outputs: {} };
    process.env.HOME = home;
    let pulumi: typeof import("@pulumi/pulumi") | undefined;
    let program: Record<string, unknown> | undefined;
    let failure: unknown;
    await new Promise<void>((resolve) => {
        jest.isolateModules(() => {
            pulumi = require("@pulumi/pulumi");
            resolve();
        });
    });
    const p = pulumi!;
    const flat: Record<string, string> = {};
    for (const [k, v] of Object.entries(config)) flat[k] = typeof v === "string" ? v : JSON.stringify(v);
    p.runtime.setAllConfig(flat);
    await p.runtime.setMocks(
        {
            newResource(args) {
                run.resources.push({ type: args.type, name: args.name, inputs: args.inputs });
                const state = { ...args.inputs, stdout: JSON.stringify({ name: args.name, ip }), stderr: "" };
                return { id: `${args.name}-id`, state };
            },
            call(args) {
                run.calls.push({ token: args.token, inputs: args.inputs });
                return { stdout: JSON.stringify({ state: "running", ip, instance }), stderr: "" };
            },
        },
        "cc-sandbox",
        stack,
        false,
    );
    jest.isolateModules(() => {
        jest.doMock("@pulumi/pulumi", () => p);
        try {
            program = require("../../src/index");
        } catch (err) {
            failure = err;
        }
    });
    if (failure) {
        // What the program managed to declare before it failed, for the caller to check.
        await new Promise((r) => setTimeout(r, 50));
        throw Object.assign(failure as Error, { run });
    }
    for (const [k, v] of Object.entries(program!)) {
        run.outputs[k] = p.Output.isInstance(v) ? await new Promise((r) => (v as any).apply(r)) : v;
    }
    // let pending registrations settle
    await new Promise((r) => setTimeout(r, 50));
    return run;
}

const byName = (run: Run, suffix: string) => run.resources.find((r) => r.name.endsWith(suffix))!;

function withAllowlist(stack: string, domains: string[]) {
    const c = stackConfig(stack);
    return { ...c, "cc-sandbox:allowlist": { presets: ["anthropic"], domains } };
}

describe("multipass stack (alice)", () => {
    let run: Run;
    beforeAll(async () => {
        run = await runProgram("alice", stackConfig("alice"));
    });

    test("declares the component, the VM, one mount and the allowlist push", () => {
        expect(run.resources.map((r) => `${r.type} ${r.name}`).sort()).toEqual(
            [
                "cc-sandbox:index:Sandbox cc-alice",
                "command:local:Command cc-alice-allowlist",
                "command:local:Command cc-alice-mount-m0-code",
                "command:local:Command cc-alice-secure-ops",
                "command:local:Command cc-alice-vm",
            ].sort(),
        );
    });

    test("the VM is launched from the rendered user-data on stdin with Multipass's arguments", () => {
        const vm = byName(run, "-vm");
        expect(vm.inputs.stdin).toMatch(/^#cloud-config\n/);
        const plan = JSON.parse(vm.inputs.environment.CC_PLAN);
        expect(plan.launch).toEqual(expect.arrayContaining(["multipass", "launch", "24.04", "--name", "cc-alice", "--cloud-init", "-"]));
        expect(plan.delete).toEqual([["multipass", "delete", "--purge", "cc-alice"]]);
        expect(vm.inputs.interpreter).toEqual(["node", "-e"]);
        expect(vm.inputs.create).toContain('runStep("create")');
        expect(vm.inputs.delete).toContain('runStep("delete")');
        expect(vm.inputs.update).toContain('runStep("keep")');
    });

    test("every command reaches the runner by its path, never carrying its text: editing the runner changes no input", () => {
        const runnerFile = path.join(root, "src/drivers/runner.js");
        const runnerText = fs.readFileSync(runnerFile, "utf8");
        const commands = run.resources.filter((r) => r.type === "command:local:Command");
        expect(commands.length).toBeGreaterThan(2);
        for (const r of commands) {
            expect(r.inputs.environment.CC_RUNNER).toBe(runnerFile);
            for (const key of ["create", "update", "delete"]) {
                if (r.inputs[key] === undefined) continue;
                expect(r.inputs[key].length).toBeLessThan(300);
                expect(JSON.stringify(r.inputs)).not.toContain(runnerText.slice(0, 200));
            }
        }
        expect(run.calls.map((c) => c.inputs.environment.CC_RUNNER)).toEqual([runnerFile]);
    });

    test("the runner is found at its stored path, or in the project's folder when that path is gone", () => {
        const { step } = require("../../src/sandbox") as typeof import("../../src/sandbox");
        // A plan whose VM the hypervisor says does not exist: delete has nothing to do.
        const plan = { name: "cc-gone", format: "virsh", state: ["sh", "-c", "echo 'error: failed to get domain' >&2; exit 1"], absent: "failed to get domain", delete: [] };
        for (const stored of [path.join(root, "src/drivers/runner.js"), "/nonexistent/runner.js"]) {
            const r = spawnSync(process.execPath, ["-e", step("delete")], { cwd: root, env: { ...process.env, CC_PLAN: JSON.stringify(plan), CC_RUNNER: stored }, encoding: "utf8" });
            expect([r.status, r.stderr]).toEqual([0, "cc-sandbox: cc-gone is already gone\n"]);
        }
    });

    test("the mount maps the host user to the agent and unmounts on delete", () => {
        const mount = byName(run, "-mount-m0-code").inputs;
        const plan = JSON.parse(mount.environment.CC_PLAN);
        expect(mount.create).toContain('runStep("mount")');
        expect(mount.delete).toContain('runStep("umount")');
        expect(plan.mount.mount).toEqual(expect.arrayContaining(["multipass", "mount", "--uid-map", `${process.getuid!()}:1001`, `${home}/code`, "cc-alice:/home/agent/code"]));
        expect(plan.mount).toMatchObject({ guest: "/home/agent/code", source: `${home}/code`, umount: ["multipass", "umount", "cc-alice:/home/agent/code"] });
    });

    test("a mount project: Multipass mounts its folder at root's stage (the worker's files are the developer's), every run looks after it", async () => {
        const folder = path.join(home, "work-web");
        fs.mkdirSync(folder, { recursive: true });
        // As a developer runs it (this suite may run as root, whose files Multipass would map to the worker).
        const me = jest.spyOn(require("os") as typeof os, "userInfo").mockReturnValue({ ...os.userInfo(), uid: 1000, gid: 1001 });
        let shared: Run;
        try {
            shared = await runProgram("alice", { ...stackConfig("alice"), "cc-sandbox:projects": [{ name: "web", mount: "~/work-web" }, { name: "api" }] });
        } finally {
            me.mockRestore();
        }
        const r = byName(shared, "-project-web");
        expect(r.inputs.stdin).toBe(`mount p-web staged ${folderHash(folder)}\n`);
        const uid = shared.outputs.projects as Record<string, { uid: number }>;
        const share = JSON.parse(r.inputs.environment.CC_PLAN).share;
        const stage = "cc-alice:/srv/cc-projects/.host/web";
        expect(share).toEqual({
            attach: ["multipass", "mount", "--type", "classic", "--uid-map", `1000:${uid.web.uid}`, "--gid-map", `1001:${uid.web.uid}`, folder, stage],
            detach: ["multipass", "umount", stage],
            held: { guest: "/srv/cc-projects/.host/web", source: folder, hash: folderHash(folder) },
            prepare: ["sudo", "/usr/local/sbin/cc-sandbox-project", "stage"],
            cleanup: ["sudo", "/usr/local/sbin/cc-sandbox-project", "unstage", "web"],
        });
        const info = JSON.parse(shared.calls[0].inputs.environment.CC_PLAN);
        expect(info.projectShares).toEqual({ rebind: ["sudo", "/usr/local/sbin/cc-sandbox-project", "rebind"], shares: { web: share } });
        // No mount project, nothing to look after.
        expect(JSON.parse(run.calls[0].inputs.environment.CC_PLAN).projectShares).toBeUndefined();
    });

    test("the allowlist is pushed with cc-sandbox-firewall apply", () => {
        const a = byName(run, "-allowlist");
        expect(a.inputs.stdin).toContain("registry.npmjs.org 443");
        expect(JSON.parse(a.inputs.environment.CC_PLAN).command).toEqual(["sudo", "/usr/local/sbin/cc-sandbox-firewall", "apply", "-"]);
    });

    test("IP and state are re-read on every run", () => {
        expect(run.calls.map((c) => c.token)).toContain("command:local:run");
        expect(run.calls[0].inputs.command).toContain('runStep("info")');
    });

    test("exports the outputs a developer needs", () => {
        expect(run.outputs).toMatchObject({
            name: "cc-alice",
            hypervisor: "multipass",
            ip,
            sshUser: "agent",
            codeMount: `${home}/code -> /home/agent/code`,
        });
        expect(run.outputs.sshCommand).toBe(`ssh -i ${home}/.ssh/id_ed25519 -o IdentitiesOnly=yes agent@${ip}`);
        expect(run.outputs.sshConfig).toContain(`Host cc-alice\n  HostName ${ip}\n  User agent\n`);
    });
});

describe("libvirt stack (bob)", () => {
    let run: Run;
    beforeAll(async () => {
        run = await runProgram("bob", stackConfig("bob"));
    });

    test("has no separate mount resources: the domain carries its shares", () => {
        expect(run.resources.filter((r) => r.name.includes("-mount-"))).toEqual([]);
        const plan = JSON.parse(byName(run, "-vm").inputs.environment.CC_PLAN);
        expect(plan.launch).toEqual(
            expect.arrayContaining([
                "virt-install",
                "--import",
                "--filesystem",
                `source=${home}/datasets,target=m1-datasets,driver.type=virtiofs,readonly=on`,
            ]),
        );
        expect(plan.delete[1]).toEqual(["virsh", "--connect", "qemu:///system", "undefine", "cc-bob", "--remove-all-storage", "--nvram"]);
    });

    test("a mount project: its folder is attached before its worker is added and detached after it goes, by the host's path alone", async () => {
        const folder = path.join(home, "work-web");
        fs.mkdirSync(folder, { recursive: true });
        const withMount = (mount: string) => runProgram("bob", { ...stackConfig("bob"), "cc-sandbox:projects": [{ name: "web", mount }, { name: "api" }] });
        const shared = await withMount("~/work-web");
        const r = byName(shared, "-project-web");
        // The guest learns the tag, never the host's path.
        expect(r.inputs.stdin).toBe("mount p-web\n");
        const share = JSON.parse(r.inputs.environment.CC_PLAN).share;
        expect(share.attach.slice(0, 2)).toEqual(["bash", "-c"]);
        expect(share.attach.slice(3)).toEqual(["share.sh", "attach", "qemu:///system", "cc-bob", "p-web", folder]);
        expect(share.detach.slice(3)).toEqual(["share.sh", "detach", "qemu:///system", "cc-bob", "p-web", folder]);
        expect(JSON.parse(byName(shared, "-project-api").inputs.environment.CC_PLAN).share).toBeUndefined();
        expect((shared.outputs.projects as Record<string, { mount?: string }>).web.mount).toBe(folder);
        // Another folder is another project (removed, then added); a project without one keeps the triggers it had.
        fs.mkdirSync(path.join(home, "work-web2"), { recursive: true });
        expect(byName(await withMount("~/work-web2"), "-project-web").inputs.triggers).not.toEqual(r.inputs.triggers);
        expect(byName(shared, "-project-api").inputs.triggers).toHaveLength(1);
        // The VM is the same one: shared memory is part of every virtiofs domain, shares or not.
        expect(byName(shared, "-vm").inputs.triggers).toEqual(byName(run, "-vm").inputs.triggers);
    });

    test("its ssh command pins a per-VM known_hosts file", () => {
        expect(run.outputs.sshCommand).toContain(`UserKnownHostsFile="${home}/.ssh/known_hosts.cc-sandbox.cc-bob"`);
        expect(run.outputs.hypervisor).toBe("libvirt");
    });
});

describe("a baked image (npm run bake)", () => {
    const { bakedId } = require("../../src/render/baked") as typeof import("../../src/render/baked");
    const { loadTemplates } = require("../../src/render/templates") as typeof import("../../src/render/templates");
    const dir = path.join(home, "cc-sandbox", "images", "baked");
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "disk.qcow2"), "");
    const onImage = () => ({ ...stackConfig("alice"), "cc-sandbox:vm": { ...(stackConfig("alice")["cc-sandbox:vm"] as object), image: `file://${dir}/disk.qcow2` } });
    const launched = async (guestFiles: string) => {
        fs.writeFileSync(path.join(dir, "image.json"), JSON.stringify({ release: "ubuntu 24.04 (noble)", guestFiles }));
        const warn = jest.spyOn(console, "warn").mockImplementation(() => undefined);
        try {
            const run = await runProgram("alice", onImage());
            return { userData: byName(run, "-vm").inputs.stdin as string, warnings: warn.mock.calls.map((c) => String(c[0])) };
        } finally {
            warn.mockRestore();
        }
    };

    test("holding this version's guest files: the user-data carries only the stack's own and the image's check", async () => {
        const r = await launched(bakedId(loadTemplates()));
        expect(r.userData.length).toBeLessThan(20_000);
        expect(r.userData).toContain("cc-sandbox-baked");
        expect(r.warnings.filter((w) => /base image/.test(w))).toEqual([]);
    });

    test("holding another version's: every file in the user-data, and a warning that says to bake again", async () => {
        const r = await launched("0".repeat(64));
        expect(r.userData.length).toBeGreaterThan(100_000);
        expect(r.userData).not.toContain("cc-sandbox-baked");
        expect(r.warnings).toEqual([expect.stringMatching(/the base image's guest files are another version's \(000000000000, these are [0-9a-f]{12}\).*bake the image again \(npm run bake\)/)]);
    });
});

describe("what replaces the VM", () => {
    const vmOf = async (config: Record<string, unknown>) => byName(await runProgram("alice", config), "-vm").inputs;
    const allowlistOf = async (config: Record<string, unknown>) => byName(await runProgram("alice", config), "-allowlist").inputs;

    test("an allowlist-only change does not: same triggers, only the pushed allowlist differs", async () => {
        const a = withAllowlist("alice", ["one.example.org"]);
        const b = withAllowlist("alice", ["two.example.org"]);
        const [vmA, vmB] = [await vmOf(a), await vmOf(b)];
        expect(vmA.triggers).toEqual(vmB.triggers);
        const [alA, alB] = [await allowlistOf(a), await allowlistOf(b)];
        expect(alA.stdin).toContain("one.example.org");
        expect(alB.stdin).toContain("two.example.org");
        expect(alA.triggers).toEqual(alB.triggers);
    });

    test("a change to what cloud-init installs does", async () => {
        const base = stackConfig("alice");
        const other = { ...base, "cc-sandbox:git": { name: "Someone Else", email: "else@example.org" } };
        expect((await vmOf(base)).triggers).not.toEqual((await vmOf(other)).triggers);
    });

    test("a change of size does", async () => {
        const base = stackConfig("alice");
        const bigger = { ...base, "cc-sandbox:vm": { ...(base["cc-sandbox:vm"] as object), cpus: 8 } };
        expect((await vmOf(base)).triggers).not.toEqual((await vmOf(bigger)).triggers);
    });

    test("a longer wait does not, on either hypervisor", async () => {
        for (const stack of ["alice", "bob"]) {
            const base = stackConfig(stack);
            const patient = { ...base, "cc-sandbox:vm": { ...(base["cc-sandbox:vm"] as object), timeout: 3600 } };
            const vm = async (config: Record<string, unknown>) => byName(await runProgram(stack, config), "-vm").inputs;
            const [a, b] = [await vm(base), await vm(patient)];
            expect(JSON.parse(a.environment.CC_PLAN).timeoutSeconds).not.toBe(JSON.parse(b.environment.CC_PLAN).timeoutSeconds);
            expect(a.triggers).toEqual(b.triggers);
        }
    });

    test("a libvirt domain's shares, network or pinned image do: the domain carries them", async () => {
        const base = stackConfig("bob");
        const vm = async (config: Record<string, unknown>) => byName(await runProgram("bob", config), "-vm").inputs.triggers;
        const libvirt = base["cc-sandbox:libvirt"] as object;
        const before = await vm(base);
        expect(await vm({ ...base, "cc-sandbox:mounts": [{ host: "~/src", guest: "/home/agent/code" }] })).not.toEqual(before);
        expect(await vm({ ...base, "cc-sandbox:libvirt": { ...libvirt, network: "other" } })).not.toEqual(before);
        const url = { ...libvirt, image: "https://cloud-images.ubuntu.com/releases/24.04/release/ubuntu-24.04-server-cloudimg-amd64.img" };
        expect(await vm({ ...base, "cc-sandbox:libvirt": url })).not.toEqual(await vm({ ...base, "cc-sandbox:libvirt": { ...url, imageSha256: "a".repeat(64) } }));
    });

    test("a mount change does not replace a Multipass VM", async () => {
        const base = stackConfig("alice");
        const moved = { ...base, "cc-sandbox:mounts": [{ host: "~/src", guest: "/home/agent/code" }] };
        expect((await vmOf(base)).triggers).toEqual((await vmOf(moved)).triggers);
    });
});

describe("credential bridge", () => {
    const secret = "s3cr3t-token-value";
    const withBridge = (scripts: unknown[]) => ({
        ...stackConfig("alice"),
        "cc-sandbox:secureOps": { scripts },
        "cc-sandbox:secrets": { DEPLOY_TOKEN: secret },
    });
    let run: Run;
    beforeAll(async () => {
        run = await runProgram("alice", withBridge([{ path: "/opt/deploy/release.sh", args: "v[0-9]+" }]));
    });

    test("pushes the script list with cc-sandbox-secure-ops apply", () => {
        const ops = byName(run, "-secure-ops");
        expect(ops.inputs.stdin).toMatch(/^\/opt\/deploy\/release\.sh v\[0-9\]\+$/m);
        expect(JSON.parse(ops.inputs.environment.CC_PLAN).command).toEqual(["sudo", "/usr/local/sbin/cc-sandbox-secure-ops", "apply", "-"]);
    });

    test("installs each secret from stdin, removes it on delete, and nowhere else holds its value", () => {
        const s = byName(run, "-secret-DEPLOY_TOKEN");
        const plan = JSON.parse(s.inputs.environment.CC_PLAN);
        expect(plan.command).toEqual(["sudo", "/usr/local/sbin/cc-sandbox-secure-ops", "install-secret", "DEPLOY_TOKEN"]);
        expect(plan.undo).toEqual(["sudo", "/usr/local/sbin/cc-sandbox-secure-ops", "remove-secret", "DEPLOY_TOKEN"]);
        expect(s.inputs.delete).toContain('runStep("guest-undo")');
        // Pulumi's secret signature: the value is encrypted in state and kept out of logs.
        expect(s.inputs.stdin).toEqual({ [specialSigKey]: specialSecretSig, value: secret });
        const elsewhere = run.resources.filter((r) => r !== s).map((r) => JSON.stringify(r.inputs));
        expect(elsewhere.join("\n")).not.toContain(secret);
        expect(JSON.stringify(run.outputs)).not.toContain(secret);
        expect(JSON.stringify(run.calls)).not.toContain(secret);
    });

    test("a change to the script list is applied in place: the VM's triggers stay", async () => {
        const other = await runProgram("alice", withBridge([{ path: "/opt/deploy/other.sh" }]));
        expect(byName(other, "-vm").inputs.triggers).toEqual(byName(run, "-vm").inputs.triggers);
        expect(byName(other, "-secure-ops").inputs.stdin).toMatch(/^\/opt\/deploy\/other\.sh$/m);
    });
});

describe("projects", () => {
    const withProjects = (names: string[]) => ({ ...stackConfig("alice"), "cc-sandbox:projects": names.map((name) => ({ name })) });
    let run: Run;
    beforeAll(async () => {
        run = await runProgram("alice", withProjects(["web", "api"]));
    });

    test("each project's worker is added by a resource of its own, and removed when it goes", () => {
        for (const name of ["web", "api"]) {
            const r = byName(run, `-project-${name}`);
            const plan = JSON.parse(r.inputs.environment.CC_PLAN);
            expect(plan.command).toEqual(["sudo", "/usr/local/sbin/cc-sandbox-project", "add", name, expect.stringMatching(/^2\d{4}$/), "-"]);
            expect(plan.undo).toEqual(["sudo", "/usr/local/sbin/cc-sandbox-project", "remove", name]);
            expect(r.inputs.delete).toContain('runStep("guest-undo")');
        }
    });

    test("a project's hooks reach the guest base64-encoded on stdin, nowhere else", async () => {
        const hooked = await runProgram("alice", { ...stackConfig("alice"), "cc-sandbox:projects": [{ name: "web", setup: "npm ci --prefix ~/app", cleanup: "rm -rf ~/app/cache" }] });
        const r = byName(hooked, "-project-web");
        const b64 = (s: string) => Buffer.from(s).toString("base64");
        expect(r.inputs.stdin).toBe(`setup ${b64("npm ci --prefix ~/app")}\ncleanup ${b64("rm -rf ~/app/cache")}\n`);
        expect(JSON.stringify(r.inputs.environment)).not.toContain("npm ci");
        expect(byName(run, "-project-web").inputs.stdin).toBe("");
    });

    test("a clone project: its repository's path stays on this machine, in the plan that streams it in once the worker asks", async () => {
        const repo = path.join(home, "code", "web");
        fs.mkdirSync(path.join(repo, ".git"), { recursive: true });
        const cloned = await runProgram("alice", { ...stackConfig("alice"), "cc-sandbox:projects": [{ name: "web", clone: "~/code/web" }] });
        const r = byName(cloned, "-project-web");
        expect(r.inputs.stdin).toBe("clone yes\n");
        const tool = "/usr/local/sbin/cc-sandbox-project";
        expect(JSON.parse(r.inputs.environment.CC_PLAN).handover).toEqual({ repository: repo, command: ["sudo", tool, "import", "web"], save: ["sudo", tool, "export", "web"], branch: "cc-sandbox/web" });
        expect((cloned.outputs.projects as Record<string, { clone?: string }>).web.clone).toBe(repo);
        expect(JSON.parse(byName(run, "-project-web").inputs.environment.CC_PLAN).handover).toBeUndefined();
        // A repository that is not there: nothing is declared.
        fs.rmSync(repo, { recursive: true });
        await expect(runProgram("alice", { ...stackConfig("alice"), "cc-sandbox:projects": [{ name: "web", clone: "~/code/web" }] })).rejects.toThrow(/cc-sandbox:projects\[0\]\.clone: is not a folder on this host/);
    });

    test("each project's way in is an output: the admin's login, then a shell as the worker", () => {
        expect(run.outputs.adminSshCommand).toBe(`ssh -i ${home}/.ssh/id_ed25519 -o IdentitiesOnly=yes ubuntu@${ip}`);
        expect(run.outputs.projects).toEqual({
            web: { user: "cc-web", uid: expect.any(Number), enter: `ssh -i ${home}/.ssh/id_ed25519 -o IdentitiesOnly=yes -t ubuntu@${ip} -- sudo /usr/local/sbin/cc-sandbox-project enter web` },
            api: { user: "cc-api", uid: expect.any(Number), enter: expect.stringMatching(/ -t ubuntu@\S+ -- sudo \/usr\/local\/sbin\/cc-sandbox-project enter api$/) },
        });
    });

    test("a VM made again behind Pulumi's back (another instance) gets every push again, as an update, never an undo", async () => {
        const before = instance;
        instance = "0b2a4c7e-0000-4000-8000-000000000002";
        let again: Run;
        try {
            again = await runProgram("alice", withProjects(["web", "api"]));
        } finally {
            instance = before;
        }
        for (const suffix of ["-allowlist", "-secure-ops", "-project-web", "-project-api"]) {
            const [a, b] = [byName(run, suffix).inputs, byName(again, suffix).inputs];
            expect(a.environment.CC_INSTANCE).toBe(before);
            expect(b.environment.CC_INSTANCE).toBe("0b2a4c7e-0000-4000-8000-000000000002");
            // Only the environment differs: the create runs again in place (no trigger, no replace).
            expect({ ...b, environment: { ...b.environment, CC_INSTANCE: before } }).toEqual(a);
        }
    });

    test("a project with secureOps or secrets gets a bridge of its own, its secrets on stdin as secrets, and the others none", async () => {
        const secret = "pr0ject-s3cret-value";
        const bridged = await runProgram("alice", {
            ...stackConfig("alice"),
            "cc-sandbox:projects": [{ name: "web", secureOps: { scripts: [{ path: "/opt/web/deploy.sh", args: "[a-z]+" }] }, secrets: { NPM_TOKEN: secret } }, { name: "api" }],
        });
        const tool = ["sudo", "/usr/local/sbin/cc-sandbox-secure-ops", "--project", "web"];
        const bridge = byName(bridged, "-bridge-web");
        expect(JSON.parse(bridge.inputs.environment.CC_PLAN).command).toEqual([...tool, "apply", "-"]);
        expect(JSON.parse(bridge.inputs.environment.CC_PLAN).undo).toEqual([...tool, "purge"]);
        expect(bridge.inputs.stdin).toMatch(/^\/opt\/web\/deploy\.sh \[a-z\]\+$/m);
        // The stack's own bridge list is not the project's.
        expect(byName(bridged, "-secure-ops").inputs.stdin).not.toContain("/opt/web/deploy.sh");
        const s = byName(bridged, "-bridge-web.NPM_TOKEN");
        expect(JSON.parse(s.inputs.environment.CC_PLAN).command).toEqual([...tool, "install-secret", "NPM_TOKEN"]);
        expect(JSON.parse(s.inputs.environment.CC_PLAN).undo).toEqual([...tool, "remove-secret", "NPM_TOKEN"]);
        expect(s.inputs.stdin).toEqual({ [specialSigKey]: specialSecretSig, value: secret });
        const elsewhere = bridged.resources.filter((r) => r !== s).map((r) => JSON.stringify(r.inputs));
        expect(elsewhere.join("\n")).not.toContain(secret);
        expect(JSON.stringify(bridged.outputs)).not.toContain(secret);
        expect(bridged.resources.filter((r) => /-bridge-api\b/.test(r.name))).toEqual([]);
        expect(run.resources.filter((r) => /-bridge-/.test(r.name))).toEqual([]);
        // A project named like another's bridge is no clash.
        const alike = await runProgram("alice", { ...stackConfig("alice"), "cc-sandbox:projects": [{ name: "web", secrets: { x: "1" } }, { name: "web-secret-x" }, { name: "bridge-web" }] });
        expect(new Set(alike.resources.map((r) => r.name)).size).toBe(alike.resources.length);
    });

    test("a stack without projects has no project resources", async () => {
        const none = await runProgram("alice", stackConfig("alice"));
        expect(none.resources.filter((r) => /-project-/.test(r.name))).toEqual([]);
    });

    test("adding or removing a project leaves the VM and the other project as they were", async () => {
        const more = await runProgram("alice", withProjects(["web", "api", "docs"]));
        const fewer = await runProgram("alice", withProjects(["api"]));
        for (const other of [more, fewer]) {
            expect(byName(other, "-vm").inputs.triggers).toEqual(byName(run, "-vm").inputs.triggers);
            expect(byName(other, "-project-api").inputs).toEqual(byName(run, "-project-api").inputs);
            // Each worker's egress is in the allowlist's plan, which is pushed in place.
            expect(byName(other, "-allowlist").inputs.stdin).not.toEqual(byName(run, "-allowlist").inputs.stdin);
        }
        expect(byName(more, "-allowlist").inputs.stdin).toMatch(/^user 2\d{4} allowlist$/m);
        expect(byName(more, "-allowlist").inputs.stdin.match(/^user /gm)).toHaveLength(3);
        expect(fewer.resources.filter((r) => /-project-(web|docs)$/.test(r.name))).toEqual([]);
    });
});

describe("invalid config", () => {
    /** The program's failure, with what it declared before failing. */
    async function failureOf(config: Record<string, unknown>): Promise<Error & { run: Run }> {
        try {
            await runProgram("alice", config);
        } catch (err) {
            return err as Error & { run: Run };
        }
        throw new Error("the program did not fail");
    }

    test("declares nothing and names the bad key and value", async () => {
        const bad = { ...stackConfig("alice"), "cc-sandbox:vm": { cpus: 0 }, "cc-sandbox:allowlist": { domains: ["bad name"] } };
        const err = await failureOf(bad);
        expect(err.message).toMatch(/cc-sandbox:vm\.cpus: must be >= 1 \(got 0\)[\s\S]*cc-sandbox:allowlist\.domains\[0\]: .*\(got "bad name"\)/);
        expect(err.run.resources).toEqual([]);
        expect(err.run.calls).toEqual([]);
    });

    test("a shared folder that does not exist on this host is named before anything is created", async () => {
        const missing = { ...stackConfig("alice"), "cc-sandbox:mounts": [{ host: "~/not-there", guest: "/home/agent/code" }] };
        const err = await failureOf(missing);
        expect(err.message).toMatch(/cc-sandbox:mounts\[0\]\.host: is not a folder on this host: create it first \(got ".*\/not-there"\)/);
        expect(err.run.resources).toEqual([]);
    });
});
