/**
 * Driver argument lists and CLI parsing, and the lifecycle runner run for real against a fake
 * `multipass` on PATH that keeps its instance's state in files.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { loadConfig } from "../../src/config/load";
import { jumpHost, libvirtDriver, localImagePath, virtInstallArgs } from "../../src/drivers/libvirt";
import { launchArgs, multipass } from "../../src/drivers/multipass";
import { hostFor, root, tempHome } from "../helpers";

const runner = require("../../src/drivers/runner.js");
const home = tempHome();
const host = hostFor(home);

describe("parsing CLI output", () => {
    test("multipass info: string-typed numbers, and an empty ipv4 while starting", () => {
        const starting = JSON.stringify({ errors: [], info: { vm1: { state: "Starting", ipv4: [], cpu_count: "", memory: {} } } });
        expect(runner.parseMultipassInfo(starting, "vm1")).toMatchObject({ state: "starting", ip: "" });
        const running = JSON.stringify({
            errors: [],
            info: { vm1: { state: "Running", ipv4: ["10.20.30.40", "172.17.0.1"], cpu_count: "4", release: "Ubuntu 24.04.1 LTS" } },
        });
        expect(runner.parseMultipassInfo(running, "vm1")).toEqual({ state: "running", ip: "10.20.30.40", cpus: 4, release: "Ubuntu 24.04.1 LTS" });
        expect(runner.parseMultipassInfo(running, "other")).toEqual({ state: "absent", ip: "" });
    });

    test("virsh domifaddr and domstate", () => {
        const table = [
            " Name       MAC address          Protocol     Address",
            "-------------------------------------------------------------------------------",
            " vnet0      52:54:00:aa:bb:cc    ipv6         fe80::1/64",
            " vnet0      52:54:00:aa:bb:cc    ipv4         192.168.150.23/24",
            "",
        ].join("\n");
        expect(runner.parseDomifaddr(table)).toBe("192.168.150.23");
        expect(runner.parseDomifaddr(table.split("\n").slice(0, 2).join("\n"))).toBe("");
        expect(runner.parseVirshState("running\n\n")).toBe("running");
        expect(runner.parseVirshState("shut off\n")).toBe("stopped");
    });
});

describe("argument lists", () => {
    test("multipass launch: pinned image, size, generous timeout, cloud-init from stdin", () => {
        const c = loadConfig("alice", { vm: { cpus: 2, memory: "4G", disk: "20G" } }, host);
        expect(launchArgs(c)).toEqual([
            "multipass", "launch", "24.04", "--name", "cc-alice", "--cpus", "2", "--memory", "4096M",
            "--disk", "20G", "--timeout", "1800", "--cloud-init", "-",
        ]);
        expect(multipass.vmPlan(c, "").launchStdin).toBe(true);
    });

    test("libvirt: copy-on-write disk over the base image, seed files, 9p or virtiofs shares", () => {
        const c = loadConfig(
            "bob",
            { hypervisor: "libvirt", libvirt: { filesystem: "9p", virtType: "qemu", machine: "pc", image: "/img/base.qcow2" } },
            host,
        );
        const args = virtInstallArgs(c);
        expect(args).toEqual(expect.arrayContaining(["--import", "--virt-type", "qemu", "--machine", "pc"]));
        expect(args[args.indexOf("--disk") + 1]).toBe(
            "path=/var/lib/libvirt/images/cc-bob.qcow2,size=50,backing_store=/img/base.qcow2,backing_format=qcow2,format=qcow2,bus=virtio",
        );
        // The seed is a disk of the VM's own (it survives reboots), made by the plan's seed step.
        expect(args).not.toContain("--cloud-init");
        expect(args).toEqual(expect.arrayContaining(["--disk", "path=/var/lib/libvirt/images/cc-bob-seed.iso,device=cdrom,readonly=on"]));
        const plan = libvirtDriver(home).vmPlan(c, "");
        expect(plan.seed).toEqual(expect.arrayContaining(["genisoimage", "-output", "/var/lib/libvirt/images/cc-bob-seed.iso", "-volid", "cidata", "{userDataFile}", "{metaDataFile}"]));
        expect(plan.delete).toContainEqual(["rm", "-f", "/var/lib/libvirt/images/cc-bob-seed.iso"]);
        expect(args).toContain(`source=${home}/code,target=m0-code,accessmode=mapped`);
        expect(args).not.toContain("--memorybacking");
        const vf = virtInstallArgs(loadConfig("bob", { hypervisor: "libvirt" }, host));
        expect(vf).toEqual(expect.arrayContaining(["--memorybacking", "source.type=memfd,access.mode=shared"]));
    });

    test("libvirt: a URL image is fetched to the storage dir; a remote URI's guests are reached through its host", () => {
        const c = loadConfig("bob", { hypervisor: "libvirt", libvirt: { uri: "qemu+ssh://ops@kvm1.example.org/system" } }, host);
        expect(localImagePath(c)).toBe("/var/lib/libvirt/images/ubuntu-24.04-server-cloudimg-amd64.img");
        expect(jumpHost(c.libvirt.uri)).toBe("ops@kvm1.example.org");
        const plan = libvirtDriver(home).vmPlan(c, "");
        expect(plan.guestExec).toEqual(expect.arrayContaining(["-J", "ops@kvm1.example.org", "ubuntu@{ip}"]));
        // virt-install uploads a --cloud-init seed to the remote host itself.
        expect(plan.seed).toBeUndefined();
        expect(plan.launch[plan.launch.indexOf("--cloud-init") + 1]).toBe("user-data={userDataFile},meta-data={metaDataFile}");
        expect(plan.prepare).toEqual([
            ["rm", "-f", `${home}/.ssh/known_hosts.cc-sandbox.cc-bob`],
            expect.arrayContaining(["fetch-image", "/var/lib/libvirt/images/ubuntu-24.04-server-cloudimg-amd64.img"]),
        ]);
        expect(jumpHost("qemu:///system")).toBeUndefined();
        const local = libvirtDriver(home).vmPlan(loadConfig("bob", { hypervisor: "libvirt" }, host), "");
        expect(local.prepare[0]).toEqual(["mkdir", "-p", "/var/lib/libvirt/images"]);
    });
});

/** A fake `multipass`: state in $FAKE_MP, every call appended to $FAKE_MP/calls. */
const fakeMultipass = `#!/bin/bash
set -u
d=$FAKE_MP
echo "$*" >> "$d/calls"
case "$1" in
  info)
    [ -f "$d/state" ] || { echo "info failed: instance \\"$2\\" does not exist" >&2; exit 2; }
    n=$(cat "$d/info-count" 2>/dev/null || echo 0); echo $((n + 1)) > "$d/info-count"
    ip='"10.1.2.3"'; [ "$(cat "$d/state")" = Running ] && [ "$n" -ge 1 ] || ip=''
    printf '{"errors":[],"info":{"%s":{"state":"%s","ipv4":[%s],"cpu_count":"2"}}}\\n' "$2" "$(cat "$d/state")" "$ip" ;;
  launch)
    cat > "$d/user-data"
    echo Running > "$d/state"; echo 0 > "$d/info-count"
    exit "$(cat "$d/launch-rc" 2>/dev/null || echo 0)" ;;
  start) echo Running > "$d/state"; echo 0 > "$d/info-count" ;;
  delete) rm -f "$d/state" ;;
  mount|umount) [ -f "$d/state" ] || exit 2 ;;
  exec)
    shift 3
    case "$*" in
      "cloud-init status --wait --long") echo "status: done"; exit "$(cat "$d/cloud-init-rc" 2>/dev/null || echo 0)" ;;
      sudo\\ tail*) echo "Traceback: module apt failed (guest log tail)" ;;
      "sudo /usr/local/sbin/cc-sandbox-firewall apply -") cat > "$d/applied" ;;
      *) echo "unexpected exec: $*" >&2; exit 99 ;;
    esac ;;
  *) echo "unexpected: $*" >&2; exit 98 ;;
esac
`;

describe("lifecycle runner against a fake multipass", () => {
    const c = loadConfig("t", { vm: { name: "cc-fake", timeout: 60 } }, host);
    const plan = multipass.vmPlan(c, "instance-id: x\n");
    const source = fs.readFileSync(path.join(root, "src/drivers/runner.js"), "utf8");
    let dir: string;
    let bin: string;

    beforeEach(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "cc-fake-mp-"));
        bin = path.join(dir, "bin");
        fs.mkdirSync(bin);
        fs.writeFileSync(path.join(bin, "multipass"), fakeMultipass, { mode: 0o755 });
    });

    function step(name: string, opts: { input?: string; plan?: object; env?: Record<string, string> } = {}) {
        const r = spawnSync(process.execPath, ["-e", `${source}\nrunStep(${JSON.stringify(name)});`], {
            input: opts.input ?? "",
            encoding: "utf8",
            env: {
                ...process.env,
                PATH: `${bin}:${process.env.PATH}`,
                FAKE_MP: dir,
                CC_POLL_MS: "50",
                CC_PLAN: JSON.stringify(opts.plan ?? plan),
                ...opts.env,
            },
        });
        return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    }
    const calls = () => fs.readFileSync(path.join(dir, "calls"), "utf8").trim().split("\n");
    const state = () => (fs.existsSync(path.join(dir, "state")) ? fs.readFileSync(path.join(dir, "state"), "utf8").trim() : "absent");

    test("create launches with the user-data on stdin and waits for an address and cloud-init", () => {
        const r = step("create", { input: "#cloud-config\nhostname: x\n" });
        expect(r.stderr).toContain("creating cc-fake");
        expect(r.code).toBe(0);
        expect(JSON.parse(r.stdout)).toEqual({ name: "cc-fake", ip: "10.1.2.3" });
        expect(fs.readFileSync(path.join(dir, "user-data"), "utf8")).toBe("#cloud-config\nhostname: x\n");
        expect(calls()).toContain("exec cc-fake -- cloud-init status --wait --long");
    });

    test("create adopts an instance left by an earlier launch and starts it if stopped", () => {
        fs.writeFileSync(path.join(dir, "state"), "Stopped\n");
        const r = step("create", { input: "#cloud-config\n" });
        expect(r.code).toBe(0);
        expect(r.stderr).toContain("adopting");
        expect(calls().filter((l) => l.startsWith("launch"))).toEqual([]);
        expect(calls()).toContain("start cc-fake");
        expect(state()).toBe("Running");
    });

    test("a launch that times out but leaves the instance is adopted, not a failure", () => {
        fs.writeFileSync(path.join(dir, "launch-rc"), "2");
        const r = step("create", { input: "#cloud-config\n" });
        expect(r.code).toBe(0);
        expect(JSON.parse(r.stdout).ip).toBe("10.1.2.3");
    });

    test("a cloud-init failure fails create with the guest's log tail, not a bare exit code", () => {
        fs.writeFileSync(path.join(dir, "cloud-init-rc"), "1");
        const r = step("create", { input: "#cloud-config\n" });
        expect(r.code).toBe(1);
        expect(r.stderr).toContain("cloud-init failed in cc-fake (exit 1)");
        expect(r.stderr).toContain("module apt failed (guest log tail)");
    });

    test("delete purges, and succeeds when the VM is already gone", () => {
        fs.writeFileSync(path.join(dir, "state"), "Running\n");
        expect(step("delete").code).toBe(0);
        expect(state()).toBe("absent");
        const again = step("delete");
        expect(again.code).toBe(0);
        expect(again.stderr).toContain("already gone");
    });

    test("info in preview only reads; on up it starts a stopped VM", () => {
        fs.writeFileSync(path.join(dir, "state"), "Stopped\n");
        const preview = step("info", { env: { CC_DRY_RUN: "1" } });
        expect(JSON.parse(preview.stdout)).toEqual({ state: "stopped", ip: "" });
        expect(state()).toBe("Stopped");
        const up = step("info", { env: { CC_DRY_RUN: "0" } });
        expect(JSON.parse(up.stdout)).toEqual({ state: "running", ip: "10.1.2.3" });
        expect(state()).toBe("Running");
    });

    test("info on up re-creates a VM deleted behind Pulumi's back, mounts included", () => {
        const mountPlan = multipass.mountPlan!(c, c.mounts[0], { uid: 1000, gid: 1000 });
        const r = step("info", {
            input: "#cloud-config\nrecreated: true\n",
            plan: { ...plan, mounts: mountPlan.create },
            env: { CC_DRY_RUN: "0" },
        });
        expect(r.stderr).toContain("missing; creating it again");
        expect(r.code).toBe(0);
        expect(fs.readFileSync(path.join(dir, "user-data"), "utf8")).toContain("recreated: true");
        expect(calls().some((l) => l.startsWith("mount --type classic --uid-map 1000:1001"))).toBe(true);
    });

    test("guest pushes its stdin to the command in the guest", () => {
        fs.writeFileSync(path.join(dir, "state"), "Running\n");
        fs.writeFileSync(path.join(dir, "info-count"), "1");
        const r = step("guest", {
            input: "example.org 443\n",
            plan: { ...plan, command: ["sudo", "/usr/local/sbin/cc-sandbox-firewall", "apply", "-"] },
        });
        expect(r.code).toBe(0);
        expect(fs.readFileSync(path.join(dir, "applied"), "utf8")).toBe("example.org 443\n");
    });

    test("keep (the VM's update) touches nothing and repeats the previous output", () => {
        fs.writeFileSync(path.join(dir, "state"), "Running\n");
        const previous = JSON.stringify({ name: "cc-fake", ip: "10.1.2.3" });
        const r = step("keep", { input: "#cloud-config\nchanged: allowlist\n", env: { PULUMI_COMMAND_STDOUT: previous } });
        expect(r.code).toBe(0);
        expect(r.stdout).toBe(`${previous}\n`);
        expect(fs.existsSync(path.join(dir, "calls"))).toBe(false);
    });

    test("guest-undo runs the undo command in a running VM, and skips a VM that is gone", () => {
        const undoPlan = { ...plan, undo: ["sudo", "/usr/local/sbin/cc-sandbox-firewall", "apply", "-"] };
        const gone = step("guest-undo", { plan: undoPlan });
        expect(gone.code).toBe(0);
        expect(gone.stderr).toContain("nothing to undo");
        fs.writeFileSync(path.join(dir, "state"), "Running\n");
        fs.writeFileSync(path.join(dir, "info-count"), "1");
        const running = step("guest-undo", { plan: undoPlan });
        expect(running.code).toBe(0);
        expect(calls()).toContain("exec cc-fake -- sudo /usr/local/sbin/cc-sandbox-firewall apply -");
        const failing = step("guest-undo", { plan: { ...plan, undo: ["sudo", "false"] } });
        expect(failing.code).toBe(1);
        expect(failing.stderr).toContain("sudo false failed in cc-fake");
    });

    test("a missing CLI is named with a hint", () => {
        const r = spawnSync(process.execPath, ["-e", `${source}\nrunStep("create");`], {
            input: "",
            encoding: "utf8",
            env: { PATH: "/nonexistent", CC_PLAN: JSON.stringify(plan) },
        });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("multipass is not installed or not on PATH");
    });
});
