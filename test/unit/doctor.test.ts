/**
 * `npm run doctor` for a libvirt stack: the host it names is checked before anything is created
 * there. virsh is a test double that answers as virsh does (virsh-host.c nodememstats "%-7s: %20llu
 * KiB", net-info and pool-info "%-15s %s", vshPrettyCapacity "%.2lf GiB"), from files a test writes.
 */
import { spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { root, tempDir, tempHome } from "../helpers";

const fakeVirsh = `#!/bin/bash
# virsh --connect URI COMMAND ARGS...
w=$FAKE_VIRSH
echo "$2 LC_ALL=\${LC_ALL:-}" >>"$w/uris"
shift 2
echo "$*" >>"$w/calls"
case $1 in
  version)
    [[ ! -e $w/down ]] || { echo "error: failed to connect to the hypervisor" >&2; echo "error: Cannot recv data: Connection reset by peer" >&2; exit 1; }
    printf 'Compiled against library: libvirt 9.0.0\\nUsing library: libvirt 9.0.0\\nUsing API: QEMU 9.0.0\\nRunning hypervisor: QEMU 7.2.0\\n' ;;
  nodememstats)
    [[ -e $w/free-kib ]] || { echo "error: this function is not supported by the connection driver: virNodeGetMemoryStats" >&2; exit 1; }
    printf '%-7s: %20s KiB\\n' total 24555284 free "$(cat "$w/free-kib")" buffers 1024 cached 2048 ;;
  net-info)
    [[ -e $w/net-$2 ]] || { echo "error: failed to get network '$2'" >&2; echo "error: Network not found: no network with matching name '$2'" >&2; exit 1; }
    printf '%-15s %s\\n' Name: "$2" Active: "$(cat "$w/net-$2")" Persistent: yes Autostart: yes Bridge: virbr0 ;;
  pool-list) cat "$w/pools" 2>/dev/null ;;
  pool-dumpxml) printf "<pool type='dir'>\\n  <name>%s</name>\\n  <source>\\n  </source>\\n  <target>\\n    <path>%s</path>\\n  </target>\\n</pool>\\n" "$2" "$(cat "$w/pool-$2")" ;;
  pool-info) printf '%-15s %s\\n' Name: "$2" State: running Capacity: "200.00 GiB" Allocation: "20.00 GiB" Available: "$(cat "$w/avail-$2")" ;;
  *) echo "error: unknown command '$1'" >&2; exit 1 ;;
esac
`;

const bin = tempDir("cc-doctor-bin-");
fs.writeFileSync(path.join(bin, "virsh"), fakeVirsh, { mode: 0o755 });

function doctor(libvirt: Record<string, unknown>, world: Record<string, string>, vm = { memory: "4G", disk: "20G" }) {
    const w = tempDir("cc-doctor-world-");
    for (const [f, v] of Object.entries(world)) fs.writeFileSync(path.join(w, f), v);
    const home = tempHome();
    fs.mkdirSync(path.join(home, "code"));
    const stack = path.join(tempDir("cc-doctor-stack-"), "Pulumi.lv.yaml");
    fs.writeFileSync(stack, stringify({ config: { "cc-sandbox:hypervisor": "libvirt", "cc-sandbox:vm": vm, "cc-sandbox:libvirt": libvirt } }));
    const r = spawnSync(path.join(root, "node_modules/.bin/zx"), ["scripts/doctor.mjs", "--config", stack], {
        cwd: root,
        encoding: "utf8",
        env: { ...process.env, HOME: home, PATH: `${bin}:${process.env.PATH}`, FAKE_VIRSH: w },
    });
    const read = (f: string) => (fs.existsSync(path.join(w, f)) ? fs.readFileSync(path.join(w, f), "utf8") : "");
    return { out: r.stdout + r.stderr, calls: read("calls"), uris: read("uris") };
}

const gib = (n: number) => String(n * 1024 * 1024);

describe("a local libvirt host", () => {
    const storage = () => path.join(tempDir("cc-doctor-storage-"), "vms");

    test("answers, has the memory, the network is active, the storage directory is usable", () => {
        const dir = storage();
        const { out } = doctor({ storageDir: dir, network: "default" }, { "free-kib": gib(8), "net-default": "yes" });
        expect(out).toMatch(/^ok {3}libvirt at qemu:\/\/\/system answers$/m);
        expect(out).toMatch(/^ok {3}8195 MiB of memory free on the host \(the VM takes 4096\)$/m);
        expect(out).toMatch(/^ok {3}network default exists and is active$/m);
        expect(out).toMatch(new RegExp(`^ok {3}storage directory ${dir} is usable \\(made in ${path.dirname(dir)}\\)$`, "m"));
        expect(out).toMatch(/^ok {3}\d+ GiB free for disks in /m);
    });

    test("each miss names its fix: too little memory, an inactive network, a missing one", () => {
        const low = doctor({ storageDir: storage() }, { "free-kib": gib(2), "net-default": "no" });
        expect(low.out).toMatch(/^MISS 2051 MiB of memory free on the host \(the VM takes 4096\)\n {5}fix: free memory on the host, or lower cc-sandbox:vm.memory$/m);
        expect(low.out).toMatch(/^MISS network default exists but is not active\n {5}fix: virsh --connect qemu:\/\/\/system net-start default/m);
        const none = doctor({ storageDir: storage(), network: "isolated" }, { "free-kib": gib(8) });
        expect(none.out).toMatch(/^MISS network isolated does not exist\n {5}fix: define it on the host, or set cc-sandbox:libvirt.network/m);
    });

    test("a host that does not answer is named with what virsh said, and nothing more is asked of it", () => {
        const { out, calls } = doctor({ storageDir: storage() }, { down: "" });
        // Both of virsh's lines: the first is always the same, the cause is in the second.
        expect(out).toMatch(/^MISS libvirt at qemu:\/\/\/system answers\n {5}fix: error: failed to connect to the hypervisor; error: Cannot recv data: Connection reset by peer: check the URI/m);
        expect(calls).toBe("version\n");
    });
});

describe("a remote libvirt host", () => {
    const uri = "qemu+ssh://ops@kvm1.example.org/system";

    test("its disks go to a storage pool at storageDir, running with room for the VM's disk", () => {
        const { out, uris } = doctor({ uri, storageDir: "/srv/vms" }, { "free-kib": gib(8), "net-default": "yes", pools: "default\ncc\n", "pool-default": "/var/lib/libvirt/images", "pool-cc": "/srv/vms/", "avail-cc": "150.25 GiB" });
        // Over ssh, virsh never waits on a prompt, and its labels are read in English.
        expect(new Set(uris.trim().split("\n"))).toEqual(new Set([`${uri}?no_tty=1 LC_ALL=C`]));
        expect(out).toMatch(/^ok {3}storage pool cc on the host is at \/srv\/vms$/m);
        expect(out).toMatch(/^ok {3}storage pool cc is running with 150 GiB free \(the VM takes 20\)$/m);
        expect(out).not.toMatch(/GiB free for disks in/);
    });

    test("no pool there yet (pulumi up defines it, under the name doctor says), or one too small with its fix", () => {
        const none = doctor({ uri, storageDir: "/srv/vms" }, { "free-kib": gib(8), "net-default": "yes", pools: "default\n", "pool-default": "/var/lib/libvirt/images" });
        const name = `cc-sandbox-${createHash("sha256").update("/srv/vms").digest("hex").slice(0, 8)}`;
        expect(none.out).toContain(`ok   no storage pool on the host is at /srv/vms yet: pulumi up defines ${name} there`);
        // The driver's own script names it so (test/remote/host-storage.test.ts runs it on a host).
        expect(fs.readFileSync(path.join(root, "src/drivers/libvirt/host-storage.sh"), "utf8")).toContain("pool=cc-sandbox-$(printf '%s' \"${dir%/}\" | sha256sum | cut -c1-8)");
        const small = doctor({ uri, storageDir: "/srv/vms" }, { "free-kib": gib(8), "net-default": "yes", pools: "cc\n", "pool-cc": "/srv/vms", "avail-cc": "512.00 MiB" });
        expect(small.out).toMatch(/^MISS storage pool cc is running with 0 GiB free \(the VM takes 20\)\n {5}fix: free at least 21 GiB in \/srv\/vms on the host/m);
    });

    test("an empty pool (virsh prints 0.00 B) has no room; a host that reports no memory is not held to it", () => {
        const { out } = doctor({ uri, storageDir: "/srv/vms" }, { "net-default": "yes", pools: "cc\n", "pool-cc": "/srv/vms", "avail-cc": "0.00 B" });
        expect(out).toMatch(/^MISS storage pool cc is running with 0 GiB free \(the VM takes 20\)$/m);
        expect(out).toMatch(/^ok {3}the host reports no free memory \(virsh nodememstats\): not checked/m);
    });
});
