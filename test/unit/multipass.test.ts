/**
 * The lifecycle runner against a Multipass that behaves as Multipass does (test/unit/fakes/multipass.js,
 * each behaviour citing the Multipass source it follows): create, adopt, stopped and suspended VMs
 * started, a VM deleted but not purged recovered, a daemon that does not answer reported without
 * any change, destroy from every state, mounts that need sshfs, that Multipass drops, or that exist
 * already, exec's working-directory mapping and its own failures.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { loadConfig } from "../../src/config/load";
import { folderHash, projectSpec } from "../../src/config/projects";
import { multipass, projectShare } from "../../src/drivers/multipass";
import { renderGuest } from "../../src/render";
import { loadTemplates } from "../../src/render/templates";
import { git, hostFor, root, tempHome } from "../helpers";
import { multipassWorld, Vm, World } from "./fakes/multipass-world";

const home = tempHome();
fs.mkdirSync(path.join(home, "code"));
const host = hostFor(home);
const c = loadConfig("t", { vm: { name: "cc-fake", timeout: 60 } }, host);
const userData = renderGuest(c, loadTemplates()).userData;
const plan = multipass.vmPlan(c, "instance-id: x\n");
const mount = multipass.mountPlan!(c, c.mounts[0], { uid: 1000, gid: 1000 });

const { dirs, setWorld, world, vm, calls, running, step } = multipassWorld(plan);

const up = (input = userData) => step("info", { input, plan: { ...plan, mounts: [mount] }, env: { CC_DRY_RUN: "0" } });

describe("create", () => {
    test("launches with the user-data on stdin and waits for an address (N/A first) and cloud-init", () => {
        const r = step("create", { input: userData });
        expect(r.stderr).toContain("creating cc-fake");
        expect(r.code).toBe(0);
        expect(JSON.parse(r.stdout)).toEqual({ name: "cc-fake", ip: "10.1.2.3" });
        // Where the time went, seconds since the step started (the boot benchmark reads this line).
        expect(r.stderr).toMatch(/^cc-sandbox: timing cc-fake: image \d+\.\d s, launch \d+\.\d s, address \d+\.\d s, cloud-init \d+\.\d s$/m);
        expect(vm().userData).toBe(userData);
        expect(calls()).toContain("exec cc-fake --no-map-working-directory -- sh -s cwd=" + process.cwd());
        // Then, and only then, cloud-init is kept out of later boots.
        const at = (l: string) => calls().findIndex((c) => c.includes(l));
        expect(at("sudo -n touch /etc/cloud/cloud-init.disabled")).toBeGreaterThan(at("-- sh -s"));
        expect(vm().cloudInitDisabled).toBe(true);
    });

    test("a guest that will not take cloud-init's marker is still created, and says so", () => {
        setWorld({ instances: {}, cloudInitMarker: "refused" });
        const r = step("create", { input: userData });
        expect(r.code).toBe(0);
        expect(r.stderr).toContain("could not mark cloud-init done in cc-fake (exit 1: sudo: a password is required); it runs again at each boot");
        expect(vm().cloudInitDisabled).toBeUndefined();
    });

    test("launches a baked image given as file://, and fails naming it when it is not there", () => {
        const disk = path.join(home, "cc-sandbox", "images", "0123", "disk.qcow2");
        const baked = multipass.vmPlan(loadConfig("t", { vm: { name: "cc-fake", timeout: 60, image: `file://${disk}` } }, host), "instance-id: x\n");
        const missing = step("create", { input: userData, plan: baked });
        expect(missing.code).toBe(1);
        expect(missing.stderr).toContain(`Custom image \`${disk}\` does not exist.`);
        // Nothing was made; what delete would take is taken (here: nothing to purge).
        expect(missing.stderr).toContain("removing what the failed create of cc-fake left");
        expect(calls().filter((l) => l.startsWith("delete"))).toEqual(["delete --purge cc-fake"]);
        fs.mkdirSync(path.dirname(disk), { recursive: true });
        fs.writeFileSync(disk, "qcow2");
        const r = step("create", { input: userData, plan: baked });
        expect(r.code).toBe(0);
        expect(vm().image).toBe(`file://${disk}`);
    });

    test("adopts an instance left by an earlier launch and starts it if stopped", () => {
        setWorld({ instances: { "cc-fake": running({ state: "Stopped", ip: null }) } });
        const r = step("create", { input: userData });
        expect(r.code).toBe(0);
        expect(r.stderr).toContain("adopting");
        expect(calls().filter((l) => l.startsWith("launch"))).toEqual([]);
        expect(calls()).toContain("start cc-fake");
        expect(vm().state).toBe("Running");
    });

    test("a launch the client timed out (exit 5) while the instance goes on is adopted, not a failure", () => {
        setWorld({ instances: {}, launchTimesOut: true });
        const r = step("create", { input: userData });
        expect(r.code).toBe(0);
        expect(JSON.parse(r.stdout).ip).toBe("10.1.2.3");
    });

    test("a cloud-init failure fails create with the guest's log tail, not a bare exit code", () => {
        setWorld({ instances: {}, cloudInit: 1 });
        const r = step("create", { input: userData });
        expect(r.code).toBe(1);
        expect(r.stderr).toContain("cloud-init failed in cc-fake (exit 1)");
        expect(r.stderr).toContain("module apt failed (guest log tail)");
        // A failed first boot is not marked: the marker would make the next wait see "disabled".
        expect(calls().filter((l) => l.includes("cloud-init.disabled"))).toEqual([]);
    });

    test("cloud-init's 2 (done, recoverable errors) is done; exec's own 2 ('exec failed:') is waited out", () => {
        setWorld({ instances: {}, cloudInit: 2 });
        const degraded = step("create", { input: userData });
        expect(degraded.code).toBe(0);
        expect(degraded.stderr).toContain("recoverable errors");

        setWorld({ instances: { "cc-fake": running({ exec: "unreachable" }) } });
        const unreachable = step("create", { input: userData, plan: { ...plan, timeoutSeconds: 1 } });
        expect(unreachable.code).toBe(1);
        expect(unreachable.stderr).toContain("cannot reach cc-fake to wait for cloud-init: exec failed: ssh connection failed");
        expect(calls().filter((l) => l.includes("-- sh -s")).length).toBeGreaterThan(1);
    });

    test("exec's own failure with exit 255 (newer clients) is waited out too, not taken for cloud-init's verdict", () => {
        setWorld({ instances: { "cc-fake": running({ exec: "unreachable255" }) } });
        const r = step("create", { input: userData, plan: { ...plan, timeoutSeconds: 1 } });
        expect(r.code).toBe(1);
        expect(r.stderr).toContain("cannot reach cc-fake to wait for cloud-init: exec failed: [ssh client] channel creation failed");
        expect(r.stderr).not.toContain("cloud-init failed");
        // A plan that keeps the guest's console says where to look.
        const named = step("create", { input: userData, plan: { ...plan, timeoutSeconds: 1, consoleLog: "/var/log/libvirt/qemu/cc-fake-console.log" } });
        expect(named.stderr).toContain("(what its console printed: /var/log/libvirt/qemu/cc-fake-console.log on the libvirt host)");
    });

    test("an exec that hangs is cut at the deadline instead of hanging the run", () => {
        setWorld({ instances: { "cc-fake": running({ exec: "hang" }) } });
        const started = Date.now();
        const r = step("create", { input: userData, plan: { ...plan, timeoutSeconds: 2 } });
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/did not finish within/);
        expect(Date.now() - started).toBeLessThan(20_000);
    });
});

describe("every state Multipass reports", () => {
    test("deleted but not purged: up recovers and starts it (launch would refuse the name)", () => {
        setWorld({ instances: { "cc-fake": running({ state: "Stopped", deleted: true, ip: null }) } });
        const r = up();
        expect(r.code).toBe(0);
        expect(r.stderr).toContain("deleted but not purged; recovering it");
        expect(JSON.parse(r.stdout)).toEqual({ state: "running", ip: "10.1.2.3" });
        expect(calls()).toEqual(expect.arrayContaining(["recover cc-fake", "start cc-fake"]));
        expect(calls().some((l) => l.startsWith("launch"))).toBe(false);
    });

    test("suspended, suspending, starting and restarting reach running; a delayed shutdown is cancelled", () => {
        for (const state of ["Suspended", "Suspending", "Starting", "Restarting", "Delayed Shutdown"]) {
            setWorld({ instances: { "cc-fake": running({ state }) } });
            const r = up();
            expect([state, r.code, r.stderr]).toEqual([state, 0, expect.any(String)]);
            expect(JSON.parse(r.stdout)).toEqual({ state: "running", ip: "10.1.2.3" });
        }
        expect(calls()).toContain("stop --cancel cc-fake");
    });

    test("a daemon that misses one call while the VM starts is asked again, not taken for an error or an absent VM", () => {
        setWorld({ instances: { "cc-fake": running({ state: "Stopped", ip: null }) }, failInfoCalls: [2] } as World);
        const r = up();
        expect(r.stderr).toContain("asking again");
        expect(r.code).toBe(0);
        expect(JSON.parse(r.stdout)).toEqual({ state: "running", ip: "10.1.2.3" });
        expect(calls().some((l) => l.startsWith("launch"))).toBe(false);
    });

    test("Unknown fails at once with what to do, not after the whole timeout", () => {
        setWorld({ instances: { "cc-fake": running({ state: "Unknown" }) } });
        const started = Date.now();
        const r = up();
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/in state Unknown.*Restart multipassd/);
        expect(Date.now() - started).toBeLessThan(5000);
    });

    test("a running VM without an address yet (ipv4 N/A) is waited on, then its address used", () => {
        setWorld({ instances: { "cc-fake": running({ ip: null, nextIp: "10.9.8.7", looksToAddress: 3 }) } });
        const r = up();
        expect(r.code).toBe(0);
        expect(JSON.parse(r.stdout)).toEqual({ state: "running", ip: "10.9.8.7" });
    });

    test("the daemon not answering (exit 2, like 'does not exist'): up, destroy and create fail and change nothing", () => {
        setWorld({ daemon: "down", instances: { "cc-fake": running() } });
        for (const r of [up(), step("delete"), step("create", { input: userData }), step("info", { env: { CC_DRY_RUN: "1" } })]) {
            expect(r.code).toBe(1);
            expect(r.stderr).toContain("cannot tell the state of cc-fake");
            expect(r.stderr).toContain("cannot connect to the multipass socket");
            expect(r.stderr).not.toContain("already gone");
        }
        expect(calls().every((l) => l.startsWith("info "))).toBe(true);
        expect(vm().state).toBe("Running");
    });
});

describe("destroy from every state", () => {
    test.each([["Running"], ["Stopped"], ["Suspended"], ["Unknown"], ["Delayed Shutdown"], ["deleted"]])("%s: purged", (state) => {
        setWorld({ instances: { "cc-fake": state === "deleted" ? running({ state: "Stopped", deleted: true }) : running({ state }) } });
        const r = step("delete");
        expect(r.code).toBe(0);
        expect(world().instances).toEqual({});
        expect(calls()).toContain("delete --purge cc-fake");
    });

    test("absent: already gone, nothing run", () => {
        setWorld({ instances: {} });
        const r = step("delete");
        expect(r.code).toBe(0);
        expect(r.stderr).toContain("already gone");
        expect(calls().filter((l) => !l.startsWith("info"))).toEqual([]);
    });
});

describe("mounts", () => {
    const mountPlan = { ...plan, mount };

    test("the first-boot user-data installs sshfs while the guest can still reach the snap store: the default mount works", () => {
        expect(userData).toMatch(/snap install multipass-sshfs/);
        // Also with no stack share: a project's folder may be mounted later, in place.
        expect(renderGuest(loadConfig("t", { vm: { name: "cc-fake" }, mounts: [] }, host), loadTemplates()).userData).toMatch(/snap install multipass-sshfs/);
        expect(step("create", { input: userData }).code).toBe(0);
        const r = step("mount", { plan: mountPlan });
        expect(r.code).toBe(0);
        expect(vm().mounts).toEqual({ [c.mounts[0].guest]: expect.objectContaining({ source: c.mounts[0].host }) });
        // the guest protects the share's repositories at once, not at its next look
        expect(vm().protected).toEqual([c.mounts[0].guest]);
    });

    test("control: without it, the mount fails once the firewall has closed the snap store", () => {
        expect(step("create", { input: "#cloud-config\n" }).code).toBe(0);
        const r = step("mount", { plan: mountPlan });
        expect(r.code).toBe(1);
        expect(r.stderr).toContain("Error enabling mount support in 'cc-fake'");
    });

    test("a mount that is already there from the same folder is adopted; from another folder, replaced", () => {
        setWorld({ instances: { "cc-fake": running({ mounts: { [mount.guest]: { source: mount.source } } }) } });
        const same = step("mount", { plan: mountPlan });
        expect(same.code).toBe(0);
        expect(same.stderr).toContain("already mounted");
        fs.mkdirSync(path.join(home, "other"), { recursive: true });
        setWorld({ instances: { "cc-fake": running({ mounts: { [mount.guest]: { source: path.join(home, "other") } } }) } });
        const other = step("mount", { plan: mountPlan });
        expect(other.code).toBe(0);
        expect(vm().mounts![mount.guest].source).toBe(mount.source);
        expect(calls()).toContain(`umount cc-fake:${mount.guest}`);
    });

    test("a mount Multipass dropped at start (its folder was gone then) is mounted again on the next up", () => {
        const gone = path.join(home, "gone");
        setWorld({ instances: { "cc-fake": running({ state: "Stopped", mounts: { [mount.guest]: { source: gone } } }) } });
        const dropped = up();
        expect(dropped.stderr).toContain(`Removing mount "${mount.guest}"`);
        expect(dropped.stderr).toContain("mounting it again");
        expect(dropped.code).toBe(0);
        expect(vm().mounts![mount.guest].source).toBe(mount.source);
    });

    test("umount: nothing to do in a VM that is gone or deleted, or where it is not mounted", () => {
        const worlds: Record<string, Vm>[] = [{}, { "cc-fake": running({ deleted: true, state: "Stopped" }) }, { "cc-fake": running() }];
        for (const instances of worlds) {
            setWorld({ instances });
            const r = step("umount", { plan: mountPlan });
            expect(r.code).toBe(0);
            expect(r.stderr).toContain("nothing to unmount");
        }
        setWorld({ instances: { "cc-fake": running({ mounts: { [mount.guest]: { source: mount.source } } }) } });
        expect(step("umount", { plan: mountPlan }).code).toBe(0);
        expect(vm().mounts).toEqual({});
        // the guest let go of its binds inside the share first
        expect(vm().released).toEqual([mount.guest]);
        expect(calls().findIndex((l) => l.includes("cc-sandbox-shares release"))).toBeLessThan(calls().findIndex((l) => l.startsWith("umount")));
    });
});

describe("guest commands", () => {
    test("run from inside the mounted folder, they are not prefixed with a cd into the guest (--no-map-working-directory)", () => {
        setWorld({ instances: { "cc-fake": running({ mounts: { [mount.guest]: { source: mount.source } } }) } });
        const guestPlan = { ...plan, command: ["sudo", "/usr/local/sbin/cc-sandbox-firewall", "apply", "-"] };
        const r = step("guest", { input: "example.org 443\n", plan: guestPlan, cwd: mount.source });
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        expect(vm().applied).toBe("example.org 443\n");
        // control: the same call without the flag breaks on the mapped directory
        const mapped = step("guest", { input: "x\n", plan: { ...guestPlan, guestExec: ["multipass", "exec", "cc-fake", "--"] }, cwd: mount.source });
        expect(mapped.code).toBe(1);
        expect(mapped.stderr).toContain("cd: /home/agent/code");
    });

    test("a clone project's repository is packed and streamed in when the guest asks for it, once", () => {
        const repo = path.join(home, "code", "web");
        fs.mkdirSync(repo, { recursive: true });
        git(repo, "init", "-q", "-b", "main");
        git(repo, "commit", "-q", "--allow-empty", "-m", "base");
        const head = git(repo, "rev-parse", "HEAD");
        const tool = "/usr/local/sbin/cc-sandbox-project";
        const projectPlan = { ...plan, command: ["sudo", tool, "add", "web", "24102", "-"], handover: { repository: repo, command: ["sudo", tool, "import", "web"] } };
        setWorld({ instances: { "cc-fake": running() } });
        const r = step("guest", { input: "clone yes\n", plan: projectPlan });
        expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: expect.stringMatching(/^cc-sandbox: handing .*code\/web over \(\d+ bytes\)\n$/) });
        expect(vm().imported).toEqual(["web"]);
        const tar = path.join(dirs().dir, "import-web.tar");
        expect(spawnSync("tar", ["-xOf", tar, "manifest"], { encoding: "utf8" }).stdout).toBe(`repo 0 Lg== ${head} bWFpbg== -\n`);
        // The next add asks for nothing: no second import.
        expect(step("guest", { input: "clone yes\n", plan: projectPlan }).code).toBe(0);
        expect(calls().filter((l) => l.includes(" import web"))).toHaveLength(1);
        // An import that fails fails the step, naming the command.
        setWorld({ instances: { "cc-fake": running({ importFails: true }) } });
        const failed = step("guest", { input: "clone yes\n", plan: projectPlan });
        expect(failed.code).toBe(1);
        expect(failed.stderr).toContain(`sudo ${tool} import web failed in cc-fake (exit 1)`);
        // Not a repository: the step says so before anything is sent.
        fs.rmSync(path.join(repo, ".git"), { recursive: true });
        setWorld({ instances: { "cc-fake": running() } });
        const bare = step("guest", { input: "clone yes\n", plan: projectPlan });
        expect(bare.code).toBe(1);
        expect(bare.stderr).toContain("is not in a git work tree");
        expect(vm().imported).toBeUndefined();
    });

    test("a clone project's work is saved into its repository as a branch before its worker goes; a failed save does not stop the removal", () => {
        const repo = path.join(home, "code", "saved");
        fs.mkdirSync(repo, { recursive: true });
        git(repo, "init", "-q", "-b", "main");
        git(repo, "commit", "-q", "--allow-empty", "-m", "base");
        const worker = path.join(home, "worker");
        git(home, "clone", "-q", repo, worker);
        git(worker, "commit", "-q", "--allow-empty", "-m", "agent work");
        git(worker, "update-ref", "refs/cc-sandbox/sync", "HEAD");
        const bundle = path.join(home, "work.bundle");
        git(worker, "bundle", "create", "-q", bundle, "refs/cc-sandbox/sync", "--not", "origin/main");
        const tool = "/usr/local/sbin/cc-sandbox-project";
        const undoPlan = { ...plan, undo: ["sudo", tool, "remove", "web"], handover: { repository: repo, command: ["sudo", tool, "import", "web"], save: ["sudo", tool, "export", "web"], branch: "cc-sandbox/web" } };
        setWorld({ instances: { "cc-fake": running({ exportBundle: bundle }) } });
        const r = step("guest-undo", { plan: undoPlan });
        expect(r.code).toBe(0);
        expect(r.stderr).toMatch(/work is saved in .* as branch cc-sandbox\/web \([0-9a-f]{12}\)/);
        expect(git(repo, "log", "--format=%s", "cc-sandbox/web")).toBe("agent work\nbase");
        expect(vm().removed).toEqual(["web"]);
        // The branch has moved on elsewhere (rewritten in the guest): saved beside it, not over it.
        git(worker, "commit", "-q", "--amend", "--allow-empty", "-m", "agent work, rewritten");
        git(worker, "update-ref", "refs/cc-sandbox/sync", "HEAD");
        git(worker, "bundle", "create", "-q", bundle, "refs/cc-sandbox/sync", "--not", "origin/main");
        const again = step("guest-undo", { plan: undoPlan });
        expect(again.code).toBe(0);
        expect(again.stderr).toMatch(/as branch cc-sandbox\/web-\d{14} /);
        expect(git(repo, "log", "-1", "--format=%s", "cc-sandbox/web")).toBe("agent work");
        // Nothing new, or an export that fails: said, and the worker removed all the same.
        for (const [exportExit, said] of [[4, /nothing new/], [1, /warning: the project's work could not be saved .*exit 1.*removing it anyway/]] as const) {
            setWorld({ instances: { "cc-fake": running({ exportExit }) } });
            const u = step("guest-undo", { plan: undoPlan });
            expect(u.code).toBe(0);
            expect(u.stderr).toMatch(said);
            expect(vm()).toMatchObject({ exported: 1, removed: ["web"] });
        }
        // A project with no clone: no export.
        setWorld({ instances: { "cc-fake": running() } });
        expect(step("guest-undo", { plan: { ...undoPlan, handover: undefined } }).code).toBe(0);
        expect(vm().exported).toBeUndefined();
    });

    test("a project's shared folder: attached before its worker is added, detached only once the worker is removed", () => {
        const log = path.join(home, "share.log");
        const said = () => (fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n").join(" ") : "");
        const share = (attachExit = 0, fresh = "") => ({ attach: ["sh", "-c", `echo attach >> ${log}; ${fresh ? "echo attached; " : ""}exit ${attachExit}`], detach: ["sh", "-c", `echo detach >> ${log}`] });
        const tool = "/usr/local/sbin/cc-sandbox-project";
        const add = { ...plan, command: ["sudo", tool, "add", "docs", "24102", "-"] };
        const remove = { ...plan, undo: ["sudo", tool, "remove", "docs"] };
        const reset = (vmState: object = {}) => {
            fs.rmSync(log, { force: true });
            setWorld({ instances: { "cc-fake": running(vmState) } });
        };
        reset();
        expect(step("guest", { input: "mount p-docs\n", plan: { ...add, share: share() } }).code).toBe(0);
        expect(said()).toBe("attach");
        expect(calls().filter((l) => l.includes(" add docs")).length).toBeGreaterThan(0);
        // A device that cannot be attached: the worker is not added.
        reset();
        const added = () => calls().filter((l) => l.includes(" add docs")).length;
        const before = added();
        const failed = step("guest", { input: "mount p-docs\n", plan: { ...add, share: share(3) } });
        expect(failed.code).not.toBe(0);
        expect(added()).toBe(before);
        // An add that fails: a device this run attached is taken away again; one that was there stays.
        reset();
        const broken = { ...add, command: ["sudo", "false"] };
        expect(step("guest", { input: "", plan: { ...broken, share: share(0, "fresh") } }).code).not.toBe(0);
        expect(said()).toBe("attach detach");
        reset();
        expect(step("guest", { input: "", plan: { ...broken, share: share() } }).code).not.toBe(0);
        expect(said()).toBe("attach");
        // Removed, then detached; a removal that fails leaves the device where the guest still uses it.
        reset();
        expect(step("guest-undo", { plan: { ...remove, share: share() } }).code).toBe(0);
        expect(vm().removed).toEqual(["docs"]);
        expect(said()).toBe("detach");
        reset();
        expect(step("guest-undo", { plan: { ...remove, undo: ["sudo", "false"], share: share() } }).code).not.toBe(0);
        expect(said()).toBe("");
        // A stopped VM: nothing to undo in it, but its definition loses the device; a VM that is gone, nothing.
        reset({ state: "Stopped", ip: null });
        expect(step("guest-undo", { plan: { ...remove, share: share() } }).code).toBe(0);
        expect(said()).toBe("detach");
        fs.rmSync(log, { force: true });
        setWorld({ instances: {} });
        expect(step("guest-undo", { plan: { ...remove, share: share() } }).code).toBe(0);
        expect(said()).toBe("");
    });

    test("a project's folder with Multipass: its own mount at a folder of root's (made first), bound by the worker's add, gone after the worker, mounted again when lost", () => {
        const folder = path.join(home, "work/docs");
        fs.mkdirSync(folder, { recursive: true });
        const pc = loadConfig("t", { vm: { name: "cc-fake", timeout: 60 }, projects: [{ name: "docs", mount: "~/work/docs" }] }, host);
        const p = pc.projects[0];
        const share = projectShare(pc, p, { uid: 1000, gid: 1001 });
        const stage = "/srv/cc-projects/.host/docs";
        const tool = "/usr/local/sbin/cc-sandbox-project";
        const add = { ...plan, command: ["sudo", tool, "add", "docs", String(p.uid), "-"], share };
        const remove = { ...plan, undo: ["sudo", tool, "remove", "docs"], share };
        const spec = projectSpec(p, true);
        // Where a call is among those since `from` (-1: not made).
        let from = 0;
        const at = (what: string) => calls().slice(from).findIndex((l) => l.includes(what));
        const since = () => (from = calls().length);
        setWorld({ instances: { "cc-fake": running() } });
        expect(step("guest", { input: spec, plan: add }).code).toBe(0);
        // The developer's files are the worker's in the guest, and what the worker writes the developer's.
        expect(vm().mounts![stage]).toEqual({ source: folder, uid: `1000:${p.uid}`, gid: `1001:${p.uid}` });
        expect(vm().stageMadeByMultipass).toBeUndefined();
        expect(at("project stage")).toBeGreaterThanOrEqual(0);
        expect(at("project stage")).toBeLessThan(at("mount --type classic"));
        expect(at("mount --type classic")).toBeLessThan(at(" add docs"));
        expect(vm().bound).toEqual(["docs"]);
        // Again: already there, not mounted twice (Multipass would refuse "already mounted").
        expect(step("guest", { input: spec, plan: add }).code).toBe(0);
        expect(calls().filter((l) => l.startsWith("mount ")).length).toBe(1);
        // Another folder at its place: refused, never taken for this one, and no worker added.
        since();
        setWorld({ instances: { "cc-fake": running({ stageRoot: true, mounts: { [stage]: { source: "/elsewhere" } } }) } });
        const other = step("guest", { input: spec, plan: add });
        expect(other.code).not.toBe(0);
        expect(other.stderr).toContain(`has /elsewhere mounted at ${stage}, not ${folder}: remove the project`);
        expect(vm().mounts![stage].source).toBe("/elsewhere");
        expect(at(" add docs")).toBe(-1);
        // An add that fails: the mount this run made goes again, and its empty folder with it.
        setWorld({ instances: { "cc-fake": running() } });
        expect(step("guest", { input: spec, plan: { ...add, command: ["sudo", "false"] } }).code).not.toBe(0);
        expect(vm().mounts![stage]).toBeUndefined();
        expect(vm().unstaged).toEqual(["docs"]);
        // Lost at a restart (Multipass dropped it): the next pulumi up mounts it again and the guest binds it.
        setWorld({ instances: { "cc-fake": running({ stageRoot: true, staged: { docs: folderHash(folder) } }) } });
        const info = { ...plan, mounts: [], projectShares: { rebind: ["sudo", tool, "rebind"], shares: { docs: share } } };
        const r = step("info", { input: userData, plan: info, env: { CC_DRY_RUN: "0" } });
        expect(r.code).toBe(0);
        expect(r.stderr).toContain("project docs's folder is not mounted in cc-fake; mounting it again");
        expect(vm().mounts![stage].source).toBe(folder);
        expect(vm().bound).toEqual(["docs"]);
        expect(calls().filter((l) => l.includes("project rebind")).length).toBe(2);
        // In Multipass's record, but its sshfs ended in the guest: unmounted from the record, mounted again, bound.
        setWorld({ instances: { "cc-fake": running({ stageRoot: true, staged: { docs: folderHash(folder) }, mounts: { [stage]: { source: folder } }, sshfsEnded: ["docs"] }) } });
        since();
        expect(step("info", { input: userData, plan: info, env: { CC_DRY_RUN: "0" } }).code).toBe(0);
        expect(at(`umount cc-fake:${stage}`)).toBeGreaterThanOrEqual(0);
        expect(at(`umount cc-fake:${stage}`)).toBeLessThan(at("mount --type classic"));
        expect(vm()).toMatchObject({ sshfsEnded: [], bound: ["docs"] });
        // Lost, and the project now names another folder: not mounted for the old worker (this run replaces the project).
        setWorld({ instances: { "cc-fake": running({ stageRoot: true, staged: { docs: folderHash("/some/other/folder") } }) } });
        since();
        expect(step("info", { input: userData, plan: info, env: { CC_DRY_RUN: "0" } }).code).toBe(0);
        expect(at("mount --type classic")).toBe(-1);
        expect(vm().mounts![stage]).toBeUndefined();
        setWorld({ instances: { "cc-fake": running({ stageRoot: true, staged: { docs: folderHash(folder) }, mounts: { [stage]: { source: folder } }, bound: ["docs"] }) } });
        // Nothing lost: one look, nothing mounted.
        const before = calls().length;
        expect(step("info", { input: userData, plan: info, env: { CC_DRY_RUN: "0" } }).code).toBe(0);
        expect(calls().slice(before).filter((l) => l.startsWith("mount ") || l.includes("project stage"))).toEqual([]);
        // Removed: the worker first, then the mount, then its empty folder.
        since();
        expect(step("guest-undo", { plan: remove }).code).toBe(0);
        expect(vm().mounts![stage]).toBeUndefined();
        expect(at(" remove docs")).toBeLessThan(at(`umount cc-fake:${stage}`));
        expect(at(`umount cc-fake:${stage}`)).toBeLessThan(at("project unstage docs"));
        // Dropped by Multipass already: its empty folder goes all the same.
        setWorld({ instances: { "cc-fake": running({ stageRoot: true }) } });
        since();
        expect(step("guest-undo", { plan: remove }).code).toBe(0);
        expect(at("umount")).toBe(-1);
        expect(vm().unstaged).toEqual(["docs"]);
        // A stopped VM: Multipass's own record of the mount goes; nothing runs in it.
        setWorld({ instances: { "cc-fake": running({ state: "Stopped", ip: null, mounts: { [stage]: { source: folder } } }) } });
        since();
        expect(step("guest-undo", { plan: remove }).code).toBe(0);
        expect(vm().mounts![stage]).toBeUndefined();
        expect(at("exec")).toBe(-1);
        // Lost, and its folder gone from the host: said, and the run goes on (it may be the one that removes the project).
        fs.renameSync(folder, `${folder}.gone`);
        try {
            setWorld({ instances: { "cc-fake": running({ stageRoot: true, staged: { docs: folderHash(folder) } }) } });
            const gone = step("info", { input: userData, plan: info, env: { CC_DRY_RUN: "0" } });
            expect(gone.code).toBe(0);
            expect(gone.stderr).toMatch(/does not exist.*\(project docs's folder stays closed\)/);
            expect(gone.stderr).toContain("warning: the folders of projects docs are still not in place in cc-fake");
        } finally {
            fs.renameSync(`${folder}.gone`, folder);
        }
    });

    test("keep (the VM's update) touches nothing and repeats the previous output", () => {
        setWorld({ instances: { "cc-fake": running() } });
        const previous = JSON.stringify({ name: "cc-fake", ip: "10.1.2.3" });
        const r = step("keep", { input: "#cloud-config\nchanged: allowlist\n", env: { PULUMI_COMMAND_STDOUT: previous } });
        expect(r.code).toBe(0);
        expect(r.stdout).toBe(`${previous}\n`);
        expect(calls()).toEqual([]);
    });

    test("guest-undo runs the undo command in a running VM, and skips a VM that is gone", () => {
        const undoPlan = { ...plan, undo: ["sudo", "/usr/local/sbin/cc-sandbox-firewall", "apply", "-"] };
        setWorld({ instances: {} });
        const gone = step("guest-undo", { plan: undoPlan });
        expect(gone.code).toBe(0);
        expect(gone.stderr).toContain("nothing to undo");
        setWorld({ instances: { "cc-fake": running() } });
        expect(step("guest-undo", { plan: undoPlan }).code).toBe(0);
        const failing = step("guest-undo", { plan: { ...plan, undo: ["sudo", "false"] } });
        expect(failing.code).toBe(1);
        expect(failing.stderr).toContain("sudo false failed in cc-fake");
    });

    test("a missing CLI is named with a hint", () => {
        const r = step("create", { env: { PATH: "/nonexistent" } });
        expect(r.code).toBe(1);
        expect(r.stderr).toContain("multipass is not installed or not on PATH");
    });
});

describe("npm run doctor for a Multipass stack", () => {
    function doctor(w: World, opts: { code?: boolean } = {}) {
        setWorld(w);
        const h = tempHome();
        if (opts.code ?? true) fs.mkdirSync(path.join(h, "code"));
        const r = spawnSync(path.join(root, "node_modules/.bin/zx"), ["scripts/doctor.mjs", "--stack", "alice"], {
            cwd: root,
            encoding: "utf8",
            env: { ...process.env, HOME: h, PATH: `${dirs().bin}:${process.env.PATH}`, FAKE_MP: dirs().dir },
        });
        fs.rmSync(h, { recursive: true, force: true });
        return r.stdout + r.stderr;
    }

    test("reports the client, the daemon answering, its driver and the shared folder", () => {
        const out = doctor({ instances: {} });
        expect(out).toMatch(/^ok {3}multipass 1\.16\.1$/m);
        expect(out).toMatch(/^ok {3}multipassd 1\.16\.1 answers$/m);
        expect(out).toMatch(/^ok {3}multipass driver qemu$/m);
        expect(out).toMatch(/^ok {3}shared folder .*\/code exists$/m);
    });

    test("a daemon that does not answer, and a shared folder that is missing, each with the fix", () => {
        const out = doctor({ daemon: "down", instances: {} }, { code: false });
        expect(out).toMatch(/^MISS multipassd does not answer\n {5}fix: start the daemon/m);
        expect(out).toMatch(/^MISS shared folder .*\/code exists\n {5}fix: mkdir -p /m);
        expect(out).not.toMatch(/driver/);
    });
});

describe("libvirt: a failed lookup means absent only when the list leaves the VM out", () => {
    // virsh prints "failed to get domain" for any failed lookup (an RPC drop, an ACL denial).
    const fakeVirsh = `#!/bin/bash
case "$*" in
  *domstate*) echo "error: failed to get domain 'cc-lv'" >&2; exit 1 ;;
  *list*) cat "$FAKE_MP/listed" 2>/dev/null; exit "$(cat "$FAKE_MP/list-rc" 2>/dev/null || echo 0)" ;;
  *) exit 0 ;;
esac
`;
    const lvPlan = { name: "cc-lv", format: "virsh", state: ["virsh", "domstate", "cc-lv"], address: ["virsh", "domifaddr", "cc-lv"], absent: "failed to get domain", list: ["virsh", "list", "--all", "--name"], delete: [["virsh", "undefine", "cc-lv"]], timeoutSeconds: 5 };
    beforeEach(() => fs.writeFileSync(path.join(dirs().bin, "virsh"), fakeVirsh, { mode: 0o755 }));

    test("listed (or the list fails): an error, and destroy does not call it gone", () => {
        fs.writeFileSync(path.join(dirs().dir, "listed"), "other\ncc-lv\n");
        const listed = step("delete", { plan: lvPlan });
        expect(listed.code).toBe(1);
        expect(listed.stderr).toContain("cannot tell the state of cc-lv");
        fs.writeFileSync(path.join(dirs().dir, "listed"), "");
        fs.writeFileSync(path.join(dirs().dir, "list-rc"), "1");
        expect(step("delete", { plan: lvPlan }).code).toBe(1);
    });

    test("not listed: absent, and destroy says it is already gone", () => {
        fs.writeFileSync(path.join(dirs().dir, "listed"), "other\n");
        const r = step("delete", { plan: lvPlan });
        expect(r.code).toBe(0);
        expect(r.stderr).toContain("already gone");
    });
});


describe("libvirt on a shared host: a VM of this name that is another stack's is neither adopted nor deleted", () => {
    // A running domain whose description is in $FAKE_MP/desc; every undefine is recorded.
    const fakeVirsh = `#!/bin/bash
echo "$*" >>"$FAKE_MP/virsh-calls"
case "$*" in
  *domstate*) echo running ;;
  *domifaddr*) printf ' vnet0  52:54:00:00:00:01  ipv4  192.0.2.9/24\\n' ;;
  *domuuid*) cat "$FAKE_MP/uuid" ;;
  "desc "*) cat "$FAKE_MP/desc" ;;
  *) exit 0 ;;
esac
`;
    const mark = "cc-sandbox-owner:0123456789abcdef";
    const lvPlan = {
        name: "cc-lv", format: "virsh", state: ["virsh", "domstate", "cc-lv"], address: ["virsh", "domifaddr", "cc-lv"], absent: "failed to get domain",
        delete: [["virsh", "undefine", "cc-lv"]], owner: { query: ["virsh", "desc", "cc-lv"], mark }, guestExec: ["true", "{ip}"], unreachable: { codes: [255] },
        launch: ["false"], prepare: [], metaData: "", timeoutSeconds: 5,
    };
    const undefines = () => (fs.existsSync(path.join(dirs().dir, "virsh-calls")) ? fs.readFileSync(path.join(dirs().dir, "virsh-calls"), "utf8") : "").split("\n").filter((l) => l.startsWith("undefine"));
    beforeEach(() => fs.writeFileSync(path.join(dirs().bin, "virsh"), fakeVirsh, { mode: 0o755 }));

    test("attack: another stack's mark: create refuses to adopt, delete refuses to delete", () => {
        fs.writeFileSync(path.join(dirs().dir, "desc"), "cc-sandbox-owner:fedcba9876543210\n");
        const adopt = step("create", { plan: lvPlan });
        expect(adopt.code).toBe(1);
        expect(adopt.stderr).toContain('cc-lv on the libvirt host is another stack\'s VM (its description: "cc-sandbox-owner:fedcba9876543210")');
        const del = step("delete", { plan: lvPlan });
        expect(del.code).toBe(1);
        expect(undefines()).toEqual([]);
    });

    test("info names the domain's instance (its UUID): a VM made again under the name has another", () => {
        const withInstance = { ...lvPlan, instance: ["virsh", "domuuid", "cc-lv"], list: ["virsh", "list"] };
        for (const uuid of ["0b2a4c7e-0000-4000-8000-000000000001", "0b2a4c7e-0000-4000-8000-000000000002"]) {
            fs.writeFileSync(path.join(dirs().dir, "uuid"), `${uuid}\n`);
            const r = step("info", { plan: withInstance, env: { CC_DRY_RUN: "1" } });
            expect(r.code).toBe(0);
            expect(JSON.parse(r.stdout)).toEqual({ state: "running", ip: "192.0.2.9", instance: uuid });
        }
        // A driver without the query reports none (Multipass).
        expect(JSON.parse(step("info", { plan: lvPlan, env: { CC_DRY_RUN: "1" } }).stdout)).toEqual({ state: "running", ip: "192.0.2.9" });
    });

    test("allowed: its own mark, or none (made before marks): adopted, and deleted", () => {
        for (const desc of [`${mark}\n`, "No description for domain: cc-lv\n"]) {
            fs.writeFileSync(path.join(dirs().dir, "desc"), desc);
            const adopt = step("create", { plan: lvPlan });
            expect(adopt.stderr).toContain("already exists (running); adopting it");
            expect(adopt.code).toBe(0);
        }
        expect(step("delete", { plan: lvPlan }).code).toBe(1); // the fake still says running after undefine
        expect(undefines()).toEqual(["undefine cc-lv"]);
    });
});
