/**
 * Driver argument lists and CLI parsing. The lifecycle runner against a Multipass that behaves as
 * Multipass does: test/unit/multipass.test.ts.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { loadConfig } from "../../src/config/load";
import { jumpHost, libvirtDriver, projectShare, virtInstallArgs } from "../../src/drivers/libvirt";
import { ubuntuCloudImageKeys } from "../../src/drivers/libvirt/cloud-image-keys";
import { launchArgs, multipass } from "../../src/drivers/multipass";
import { sshArgv, sshConfigBlock } from "../../src/drivers/ssh";
import { hostFor, tempHome } from "../helpers";

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
        expect(runner.parseMultipassInfo(running, "vm1")).toEqual({ state: "running", ip: "10.20.30.40", mounts: {}, cpus: 4, release: "Ubuntu 24.04.1 LTS" });
        expect(runner.parseMultipassInfo(running, "other")).toEqual({ state: "absent", ip: "" });
        // runtime_instance_info_helper.cpp: running without an address is ["N/A"], which is no address.
        const noAddress = JSON.stringify({ errors: [], info: { vm1: { state: "Running", ipv4: ["N/A"], mounts: { "/home/agent/code": { source_path: "/home/me/code" } } } } });
        expect(runner.parseMultipassInfo(noAddress, "vm1")).toMatchObject({ state: "running", ip: "", mounts: { "/home/agent/code": "/home/me/code" } });
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

test("a failed command is named by its first words, a driver script by its name and action, never its text", () => {
    const { named } = require("../../src/drivers/vm-query.js");
    expect(named(["virsh", "--connect", "qemu:///system", "domstate", "cc-x"])).toBe("virsh --connect qemu:///system");
    expect(named(["bash", "-c", "set -euo pipefail\ndie() { exit 1; }\n", "host-storage", "seed", "qemu+ssh://h/system"])).toBe("host-storage seed");
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
        expect(args).toEqual(expect.arrayContaining(["--disk", "path=/var/lib/libvirt/images/cc-bob-seed.iso,device=disk,bus=virtio,format=raw,readonly=on"]));
        const plan = libvirtDriver(home).vmPlan(c, "");
        expect(plan.seed).toEqual(expect.arrayContaining(["genisoimage", "-output", "/var/lib/libvirt/images/cc-bob-seed.iso", "-volid", "cidata", "{userDataFile}", "{metaDataFile}"]));
        expect(plan.delete).toContainEqual(["rm", "-f", "/var/lib/libvirt/images/cc-bob-seed.iso"]);
        expect(args).toContain(`source=${home}/code,target=m0-code,accessmode=mapped`);
        expect(args).not.toContain("--memorybacking");
        const vf = virtInstallArgs(loadConfig("bob", { hypervisor: "libvirt" }, host));
        expect(vf).toEqual(expect.arrayContaining(["--memorybacking", "source.type=memfd,access.mode=shared"]));
    });

    test("libvirt: a project's share is attached to the running domain and its definition once, and detached once the guest lets go", () => {
        // A virsh that keeps a live and a persistent definition as files, and logs each change.
        const dir = fs.mkdtempSync(path.join(home, "fake-virsh-"));
        const log = path.join(dir, "log");
        fs.writeFileSync(
            path.join(dir, "virsh"),
            `#!/bin/bash
d=${dir}; args=("$@"); while [[ \${args[0]} == --* ]]; do [[ \${args[0]} == --connect ]] && args=("\${args[@]:1}"); args=("\${args[@]:1}"); done
cmd=\${args[0]}
case $cmd in
  domstate) cat $d/state ;;
  dumpxml) if [[ " \${args[*]} " == *" --inactive "* ]]; then cat $d/inactive; else [[ $(cat $d/state) == running ]] && cat $d/live || cat $d/inactive; fi ;;
  attach-device|detach-device)
    xml=$(cat); echo "$cmd \${args[*]:1}" >>${log}; echo "$xml" >$d/xml
    t=$(grep -o "<target dir='[^']*'/>" <<<"$xml"); grep -q "<source dir='" <<<"$xml" || exit 9
    for f in \${args[*]:3}; do file=$d/\${f#--}; [[ $f == --config ]] && file=$d/inactive
      if [[ $cmd == attach-device ]]; then echo "$xml" >>$file; else grep -vF "$t" $file >$file.n || true; mv $file.n $file; fi
    done ;;
esac
`,
            { mode: 0o755 },
        );
        const set = (state: string, live: string, inactive: string) => {
            fs.writeFileSync(path.join(dir, "state"), `${state}\n`);
            fs.writeFileSync(path.join(dir, "live"), live);
            fs.writeFileSync(path.join(dir, "inactive"), inactive);
            fs.writeFileSync(log, "");
        };
        const c = loadConfig("bob", { hypervisor: "libvirt", projects: [{ name: "web", mount: "/srv/it's <web>" }] }, host);
        const share = projectShare(c, c.projects[0]);
        const sh = (argv: readonly string[]) => spawnSync(argv[0], argv.slice(1), { env: { ...process.env, PATH: `${dir}:${process.env.PATH}` }, encoding: "utf8" });
        const calls = () => fs.readFileSync(log, "utf8").trim();
        const tag = "<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='/srv/it&apos;s &lt;web&gt;'/><target dir='p-web'/></filesystem>";

        set("running", "", "");
        const first = sh(share.attach);
        expect({ status: first.status, stdout: first.stdout }).toEqual({ status: 0, stdout: "attached\n" });
        expect(calls()).toBe("attach-device cc-bob /dev/stdin --config --live");
        // Again: already there, nothing done.
        fs.writeFileSync(log, "");
        expect(sh(share.attach).status).toBe(0);
        expect(calls()).toBe("");
        // A stopped VM gets it in its definition only; a running one whose definition has it, live only.
        set("shut off", "", "");
        expect(sh(share.attach).status).toBe(0);
        expect(calls()).toBe("attach-device cc-bob /dev/stdin --config");
        set("running", "", `${tag}\n`);
        expect(sh(share.attach).status).toBe(0);
        expect(calls()).toBe("attach-device cc-bob /dev/stdin --live");
        // The tag attached from another folder (a device a failed add left): refused, not taken for this one.
        const stale = tag.replace("it&apos;s &lt;web&gt;", "old");
        set("running", `${stale}\n`, `${stale}\n`);
        const refused = sh(share.attach);
        expect(refused.status).toBe(3);
        expect(refused.stderr).toContain("p-web of cc-bob shares '/srv/old', not '/srv/it's <web>'");
        expect(calls()).toBe("");

        set("running", `${tag}\n`, `${tag}\n`);
        expect(sh(share.detach).status).toBe(0);
        expect(calls()).toBe("detach-device cc-bob /dev/stdin --config --live");
        // The XML carries the path as text, whatever its characters.
        expect(fs.readFileSync(path.join(dir, "xml"), "utf8")).toContain("<source dir='/srv/it&apos;s &lt;web&gt;'/><target dir='p-web'/>");
        // Again, or a VM that holds no such device: nothing to do.
        fs.writeFileSync(log, "");
        expect(sh(share.detach).status).toBe(0);
        expect(calls()).toBe("");
        set("shut off", "", `${tag}\n`);
        expect(sh(share.detach).status).toBe(0);
        expect(calls()).toBe("detach-device cc-bob /dev/stdin --config");
        // Not a project's tag: refused before virsh runs.
        expect(sh([...share.attach.slice(0, 7), "../x", "/srv"]).status).toBe(2);
    });

    test("libvirt: firmware uefi boots the image's own loader through OVMF, and its variable store goes with the VM", () => {
        const bios = virtInstallArgs(loadConfig("bob", { hypervisor: "libvirt" }, host));
        expect(bios).not.toContain("uefi");
        const uefi = loadConfig("bob", { hypervisor: "libvirt", libvirt: { firmware: "uefi" } }, host);
        const args = virtInstallArgs(uefi);
        expect(args[args.indexOf("uefi") - 1]).toBe("--boot");
        expect(libvirtDriver(home).vmPlan(uefi, "").delete).toContainEqual(["virsh", "--connect", "qemu:///system", "undefine", "cc-bob", "--remove-all-storage", "--nvram"]);
    });

    test("libvirt: the guest's console is kept on the libvirt host and goes with a local VM; the domain carries its owner's mark", () => {
        const c = loadConfig("bob", { hypervisor: "libvirt" }, host);
        const plan = libvirtDriver(home).vmPlan(c, "");
        const log = "/var/log/libvirt/qemu/cc-bob-console.log";
        expect(plan.launch[plan.launch.indexOf("--console") + 1]).toBe(`pty,target_type=serial,log.file=${log},log.append=on`);
        expect(plan.consoleLog).toBe(log);
        // Whose VM it is, by the stack's key: in the domain's description, asked before adopting or deleting.
        const mark = plan.owner!.mark;
        expect(mark).toMatch(/^cc-sandbox-owner:[0-9a-f]{16}$/);
        expect(plan.launch).toEqual(expect.arrayContaining(["--metadata", `description=${mark}`]));
        expect(plan.owner!.query).toEqual(["virsh", "--connect", "qemu:///system", "desc", "cc-bob"]);
        expect(plan.replaceOn).not.toContain("--metadata");
        expect(plan.delete).toContainEqual(["rm", "-f", log, `${log}.0`, `${log}.1`, `${log}.2`]);
        // A remote host's log directory is its own.
        const remote = libvirtDriver(home).vmPlan(loadConfig("bob", { hypervisor: "libvirt", libvirt: { uri: "qemu+ssh://kvm1.example.org/system" } }, host), "");
        expect(remote.delete.flat()).not.toContain(log);
    });

    test("libvirt: a URL image is verified and kept by checksum by fetch-image.sh; a remote URI's guests are reached through its host", () => {
        const url = "https://cloud-images.ubuntu.com/releases/24.04/release/ubuntu-24.04-server-cloudimg-amd64.img";
        const c = loadConfig("bob", { hypervisor: "libvirt", libvirt: { uri: "qemu+ssh://ops@kvm1.example.org/system" } }, host);
        expect(jumpHost(c.libvirt.uri)).toEqual({ user: "ops", host: "kvm1.example.org" });
        expect(jumpHost("qemu+ssh://kvm2.example.org:2222/system?keyfile=/x")).toEqual({ host: "kvm2.example.org", port: 2222, keyfile: "/x" });
        const plan = libvirtDriver(home).vmPlan(c, "");
        expect(plan.guestExec).toEqual(expect.arrayContaining([expect.stringMatching(/^ProxyCommand=ssh .* -W %h:%p ops@kvm1\.example\.org$/), "ubuntu@{ip}"]));
        // The seed is a volume of the VM's own in the host's pool (a reboot keeps it), uploaded by
        // host-storage.sh over the URI, and attached by its path there.
        const storage = (...args: string[]) => ["bash", "-c", expect.stringContaining("vol-upload"), "host-storage", ...args];
        const uri = "qemu+ssh://ops@kvm1.example.org/system";
        expect(plan.seed).toEqual(storage("seed", uri, "/var/lib/libvirt/images", "cc-bob", "{userDataFile}", "{metaDataFile}"));
        expect(plan.launch).not.toContain("--cloud-init");
        expect(plan.launch).toEqual(expect.arrayContaining(["--disk", "path=/var/lib/libvirt/images/cc-bob-seed.iso,device=disk,bus=virtio,format=raw,readonly=on"]));
        // The pool is made sure of on the host, never a directory here.
        expect(plan.prepare).toEqual([storage("pool", uri, "/var/lib/libvirt/images"), ["rm", "-f", `${home}/.ssh/known_hosts.cc-sandbox.cc-bob`]]);
        // A URL is downloaded and verified here (kept in HOME's cache), then uploaded.
        expect(plan.image).toEqual(
            storage("image", uri, "/var/lib/libvirt/images", "fetch", expect.stringContaining("SHA256SUMS.gpg"), url, `${home}/.cache/cc-sandbox/images`,
                ubuntuCloudImageKeys.keyringBase64, ubuntuCloudImageKeys.fingerprints.join(",")),
        );
        // Destroy takes the VM's leftover volumes and the base image no disk is backed by any more.
        expect(plan.delete).toContainEqual(storage("remove", uri, "/var/lib/libvirt/images", "cc-bob"));
        expect(plan.delete.flat()).not.toContain("/var/lib/libvirt/images/cc-bob-seed.iso");
        // A file of this machine's (a baked image) is uploaded; a plain path is the host's own.
        const baked = loadConfig("bob", { hypervisor: "libvirt", libvirt: { uri, image: "file:///srv/baked.qcow2" } }, host);
        expect(libvirtDriver(home).vmPlan(baked, "").image).toEqual(storage("image", uri, "/var/lib/libvirt/images", "file", "/srv/baked.qcow2"));
        expect(virtInstallArgs(baked).join(" ")).toContain("backing_store={image},");
        const onHost = loadConfig("bob", { hypervisor: "libvirt", libvirt: { uri, image: "/srv/baked.qcow2" } }, host);
        expect(libvirtDriver(home).vmPlan(onHost, "").image).toBeUndefined();
        expect(virtInstallArgs(onHost).join(" ")).toContain("backing_store=/srv/baked.qcow2,");
        // On this host, the image step prints the verified file's path; the disk is backed by whatever it printed.
        const keys = ubuntuCloudImageKeys;
        const here = libvirtDriver(home).vmPlan(loadConfig("bob", { hypervisor: "libvirt" }, host), "");
        expect(here.image).toEqual(["bash", "-c", expect.stringContaining("SHA256SUMS.gpg"), "fetch-image", url, "/var/lib/libvirt/images/images", keys.keyringBase64, keys.fingerprints.join(",")]);
        expect(here.launch).toContainEqual(expect.stringMatching(/^path=\/var\/lib\/libvirt\/images\/cc-bob.qcow2,size=\d+,backing_store={image},backing_format=qcow2,/));
        const pinned = loadConfig("bob", { hypervisor: "libvirt", libvirt: { imageSha256: "a".repeat(64) } }, host);
        expect(libvirtDriver(home).vmPlan(pinned, "").image?.slice(-1)).toEqual(["a".repeat(64)]);
        // A local image is used as it is: nothing is fetched.
        for (const image of ["/srv/images/baked.qcow2", "file:///srv/images/baked.qcow2"]) {
            const localImage = loadConfig("bob", { hypervisor: "libvirt", libvirt: { image } }, host);
            expect(libvirtDriver(home).vmPlan(localImage, "").image).toBeUndefined();
            expect(virtInstallArgs(localImage).join(" ")).toContain("backing_store=/srv/images/baked.qcow2,");
        }
        expect(jumpHost("qemu:///system")).toBeUndefined();
        const local = libvirtDriver(home).vmPlan(loadConfig("bob", { hypervisor: "libvirt" }, host), "");
        expect(local.prepare[0]).toEqual(["mkdir", "-p", "/var/lib/libvirt/images"]);
    });
});

describe("the SSH target", () => {
    test("the ssh command and the ssh_config block say the same thing, from the driver's one target, through the host", () => {
        const c = loadConfig("bob", { hypervisor: "libvirt", libvirt: { uri: "qemu+ssh://ops@kvm1.example.org:2222/system?keyfile=/home/ops/.ssh/kvm" } }, host);
        const target = libvirtDriver(home).sshTarget(c);
        const vmKnown = `"${home}/.ssh/known_hosts.cc-sandbox.cc-bob"`;
        const opts = ["IdentitiesOnly=yes", "StrictHostKeyChecking=accept-new", `UserKnownHostsFile=${vmKnown}`];
        // The host: the stack's key first, then the URI's keyfile (and ssh's own defaults after,
        // as virsh's ssh offers them); its key checked against a file of ours and the user's own.
        const hostKnown = `UserKnownHostsFile="${home}/.ssh/known_hosts.cc-sandbox-hosts" "${home}/.ssh/known_hosts"`;
        const proxy = `ssh -i ${home}/.ssh/id_ed25519 -i /home/ops/.ssh/kvm -o StrictHostKeyChecking=accept-new -o '${hostKnown}' -p 2222 -W %h:%p ops@kvm1.example.org`;
        expect(sshArgv(target, "agent", "192.0.2.7")).toEqual(["ssh", "-i", `${home}/.ssh/id_ed25519`, ...opts.flatMap((o) => ["-o", o]), "-o", `ProxyCommand=${proxy}`, "agent@192.0.2.7"]);
        expect(sshConfigBlock("cc-bob", target, "agent", "192.0.2.7").split("\n")).toEqual([
            "Host cc-bob", "  HostName 192.0.2.7", "  User agent", `  IdentityFile "${home}/.ssh/id_ed25519"`,
            "  IdentitiesOnly yes", "  StrictHostKeyChecking accept-new", `  UserKnownHostsFile ${vmKnown}`, `  ProxyCommand ${proxy}`, "",
        ]);
        // The program's own guest commands go the same way, as the admin, never asking anything, on both hops.
        const exec = libvirtDriver(home).vmPlan(c, "").guestExec;
        expect(exec.slice(0, 3)).toEqual(["ssh", "-i", `${home}/.ssh/id_ed25519`]);
        expect(exec).toEqual(expect.arrayContaining(["BatchMode=yes", "ubuntu@{ip}"]));
        expect(exec.find((w) => w.startsWith("ProxyCommand="))).toContain("-o BatchMode=yes");
        expect(exec[exec.length - 1]).toBe("--");
        // A new VM empties its own known_hosts file, never the hosts'.
        const plan = libvirtDriver(home).vmPlan(c, "");
        expect([...plan.prepare, ...plan.delete].flat().join(" ")).not.toContain("known_hosts.cc-sandbox-hosts");
    });

    test("what reaches the ProxyCommand's shell is quoted, and ssh's % tokens escaped", () => {
        const target = { identityFile: "/k", options: [], jump: { user: "ops", host: "h.example.org", identityFiles: ["/home/d e v/;x"], options: ['UserKnownHostsFile="/tmp/a b"', "X=50%"] } };
        const proxy = sshArgv(target, "agent", "192.0.2.7").find((w) => w.startsWith("ProxyCommand="))!;
        expect(proxy).toBe(`ProxyCommand=ssh -i '/home/d e v/;x' -o 'UserKnownHostsFile="/tmp/a b"' -o X=50%% -W %h:%p ops@h.example.org`);
    });

    test("a remote URI's SSH host is held to plain characters before it reaches ssh", () => {
        for (const uri of ["qemu+ssh://a;touch${IFS}x@h.example.org/system", "qemu+ssh://ops@h%h.example.org/system", "qemu+ssh://ops@-oProxyCommand=x/system",
            "qemu+ssh://-oX@h.example.org/system", "qemu+ssh://ops@-h.example.org/system", "qemu+ssh://ops@h.example.org:99999/system", "qemu+libssh2://a;b@h.example.org/system"]) {
            expect(() => loadConfig("bob", { hypervisor: "libvirt", libvirt: { uri } }, host)).toThrow(/libvirt\.uri: must name its SSH host as \[user@\]host\[:port\]/);
        }
        expect(() => loadConfig("bob", { hypervisor: "libvirt", libvirt: { uri: "qemu+ssh://ops@h.example.org/system?keyfile=/k%h" } }, host)).toThrow(/libvirt\.uri: names a keyfile that must be/);
        for (const uri of ["qemu+ssh://ops@kvm1.example.org:2222/system?keyfile=/k&no_tty=1", "qemu+ssh://first.last@kvm_host/system", "qemu+libssh2://kvm1/system"]) {
            expect(() => loadConfig("bob", { hypervisor: "libvirt", libvirt: { uri } }, host)).not.toThrow();
        }
        // Parameters that would have libvirt run a program, or skip the host-key check, are named.
        for (const [param, uri] of [["command", "qemu+ssh://ops@kvm1/system?command=/tmp/x"], ["no_verify", "qemu+ssh://kvm1/system?keyfile=/k&no_verify=1"], ["netcat", "qemu+ssh://kvm1/system?netcat=/tmp/nc"]]) {
            expect(() => loadConfig("bob", { hypervisor: "libvirt", libvirt: { uri } }, host)).toThrow(new RegExp(`libvirt\\.uri: has parameters libvirt would act on unchecked \\(${param}\\)`));
        }
        // A remote host over another transport would have its disks made here and its guests out of reach.
        expect(() => loadConfig("bob", { hypervisor: "libvirt", libvirt: { uri: "qemu+tcp://kvm1/system" } }, host)).toThrow(/libvirt\.uri: names a remote host by a transport other than SSH/);
        for (const uri of ["qemu:///system", "qemu:///session", "qemu+unix:///system"]) expect(() => loadConfig("bob", { hypervisor: "libvirt", libvirt: { uri } }, host)).not.toThrow();
        expect(jumpHost("qemu+libssh2://kvm1/system")).toEqual({ host: "kvm1" });
        // A key path reaches ssh_config and ssh's own expansion: a quote, backslash, % or $ is named and refused.
        for (const bad of ['/tmp/x" ProxyCommand "touch /tmp/pwned', "/tmp/k%h", "/tmp/${HOME}/k", "/tmp/k\\x"]) {
            const err = (() => { try { loadConfig("bob", { ssh: { privateKeyPath: bad } }, host); } catch (e) { return e as Error; } return undefined; })();
            expect(err?.message).toContain(`cc-sandbox:ssh.privateKeyPath: must be an absolute path or one starting with ~/, without`);
            expect(err?.message).toContain(JSON.stringify(bad));
        }
    });

    test("Multipass's guests: the stack's key only", () => {
        const c = loadConfig("alice", {}, host);
        expect(sshArgv(multipass.sshTarget(c), "agent", "10.1.2.3")).toEqual(["ssh", "-i", `${home}/.ssh/id_ed25519`, "-o", "IdentitiesOnly=yes", "agent@10.1.2.3"]);
    });
});

describe("what replaces a VM (replaceOn)", () => {
    // A tripwire: every existing VM is deleted and made again when these change (the component's
    // triggers). Edit the expectation only for a change that must make new VMs.
    const pinHost = { home: "/home/dev", readFile: () => fs.readFileSync(`${home}/.ssh/id_ed25519.pub`, "utf8"), platform: "linux" };

    test("Multipass: its launch, but not how long to wait", () => {
        const c = loadConfig("pin", { hypervisor: "multipass", vm: { timeout: 600 } }, pinHost);
        expect(multipass.vmPlan(c, "").replaceOn).toEqual(["multipass", "launch", "24.04", "--name", "cc-pin", "--cpus", "4", "--memory", "8192M", "--disk", "50G", "--cloud-init", "-"]);
    });

    test("libvirt: the domain virt-install defines, and the image a URL names", () => {
        const c = loadConfig("pin", { hypervisor: "libvirt", mounts: [{ host: "/srv/code", guest: "/home/agent/code" }] }, pinHost);
        expect(libvirtDriver("/home/dev").vmPlan(c, "").replaceOn).toEqual([
            "virt-install", "--connect", "qemu:///system", "--name", "cc-pin", "--memory", "8192", "--vcpus", "4", "--import",
            "--disk", "path=/var/lib/libvirt/images/cc-pin.qcow2,size=50,backing_store={image},backing_format=qcow2,format=qcow2,bus=virtio",
            "--disk", "path=/var/lib/libvirt/images/cc-pin-seed.iso,device=disk,bus=virtio,format=raw,readonly=on",
            "--osinfo", "ubuntu24.04", "--network", "network=default,model=virtio", "--virt-type", "kvm", "--machine", "q35",
            "--graphics", "none", "--console", "pty,target_type=serial", "--noautoconsole",
            "--memorybacking", "source.type=memfd,access.mode=shared", "--filesystem", "source=/srv/code,target=m0-code,driver.type=virtiofs",
            "https://cloud-images.ubuntu.com/releases/24.04/release/ubuntu-24.04-server-cloudimg-amd64.img", null,
        ]);
    });
});


describe("capture: what the guest writes to this machine's disk is bounded", () => {
    const { capture } = require("../../src/drivers/vm-query.js");
    const dir = tempHome("cc-capture-");
    const file = `${dir}/out`;

    test("past the limit the output is cut off and the status is a broken pipe's; within it, whole, with the command's status", () => {
        const over = capture(["head", "-c", "100000", "/dev/zero"], file, 1000, 10_000);
        expect(over.code).toBe(141);
        expect(fs.statSync(file).size).toBe(1000);
        const within = capture(["sh", "-c", "printf abc; exit 4"], file, 1000, 10_000);
        expect(within.code).toBe(4);
        expect(fs.readFileSync(file, "utf8")).toBe("abc");
        expect(capture(["printf", "\\000\\377"], file, 1000, 10_000).code).toBe(0);
        expect([...fs.readFileSync(file)]).toEqual([0, 255]);
        expect([over.why, within.why]).toEqual(["over 1000 bytes", ""]);
        // Exactly the limit is not over it.
        const exact = capture(["head", "-c", "1000", "/dev/zero"], file, 1000, 10_000);
        expect({ code: exact.code, why: exact.why, size: fs.statSync(file).size }).toEqual({ code: 0, why: "", size: 1000 });
    });

    test("its messages are bounded too: past 256 KiB of stderr the command's pipe breaks", () => {
        const r = capture(["sh", "-c", "printf out; yes noise >&2"], file, 1000, 30_000);
        expect({ code: r.code, why: r.why }).toEqual({ code: 141, why: "over 262144 bytes of messages" });
        expect(Buffer.byteLength(r.stderr)).toBe(262144);
        expect(fs.readFileSync(file, "utf8")).toBe("out");
        // Bytes that are not UTF-8 become U+FFFD, one character each: still at most 256 Ki of them.
        const binary = capture(["sh", "-c", "head -c 300000 /dev/zero | tr '\\000' '\\377' >&2"], file, 1000, 30_000);
        expect({ code: binary.code, length: binary.stderr.length }).toEqual({ code: 141, length: 262144 });
    });

    test("past the time the command itself is stopped, not only the shell around it (an ssh the guest holds open)", () => {
        const pidFile = `${dir}/pid`;
        const r = capture(["sh", "-c", `echo $$ > ${pidFile}; printf early; exec sleep 60`], file, 1000, 1000);
        expect({ code: r.code, why: r.why }).toEqual({ code: 124, why: "out of time (1 s)" });
        expect(fs.readFileSync(file, "utf8")).toBe("early");
        const pid = Number(fs.readFileSync(pidFile, "utf8"));
        const alive = () => {
            try {
                process.kill(pid, 0);
                return true;
            } catch {
                return false;
            }
        };
        expect(alive()).toBe(false);
    });

    test("a command that ignores TERM is killed 5 s later, still out of time; a command's own 124 is not", () => {
        const stubborn = capture(["sh", "-c", "trap '' TERM; sleep 30"], file, 1000, 1000);
        expect({ code: stubborn.code, why: stubborn.why }).toEqual({ code: 137, why: "out of time (1 s)" });
        const own = capture(["sh", "-c", "exit 124"], file, 1000, 10_000);
        expect({ code: own.code, why: own.why }).toEqual({ code: 124, why: "" });
    }, 30_000);
});
