/**
 * A stack on a remote libvirt host, for real up to the guest's boot: a libvirtd and an sshd in
 * namespaces of their own (test/libvirt-host.sh), reached from a workstation namespace only over
 * qemu+ssh://. The runner runs the libvirt driver's own plan there: the storage pool is made on the
 * host, the base image (a file of the workstation's) is uploaded once, the seed is a volume of the
 * VM's own that a restart keeps, and delete leaves no domain and no volume. The guest image is an
 * empty disk: nothing boots, so the runner's create ends waiting for an address, after everything
 * this test looks at is made.
 */
import { randomBytes } from "crypto";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { loadConfig } from "../../src/config/load";
import { libvirtDriver } from "../../src/drivers/libvirt";
import { root, tempDir } from "../helpers";

jest.setTimeout(5 * 60_000);

const st = tempDir("cc-remote-");
const hostScript = path.join(root, "test/libvirt-host.sh");
const storageScript = path.join(root, "src/drivers/libvirt/host-storage.sh");
const runnerFile = path.join(root, "src/drivers/runner.js");
const uri = "qemu+ssh://root@198.18.9.2/system";
const dir = "/var/lib/libvirt/cc-vms";
const image = path.join(st, "base.qcow2");
const userData = `#cloud-config\n# remote ${randomBytes(8).toString("hex")}\n`;

interface Run {
    code: number | null;
    stdout: string;
    stderr: string;
}

function sh(argv: string[], opts: { input?: string; env?: Record<string, string> } = {}): Run {
    const r = spawnSync(argv[0], argv.slice(1), { encoding: "utf8", input: opts.input ?? "", env: { ...process.env, ...opts.env }, maxBuffer: 64 << 20 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
/** On the workstation: its own network namespace, HOME (/root) with the key the host trusts, no libvirt. */
const ws = (argv: string[], opts: { input?: string; env?: Record<string, string> } = {}) => sh([hostScript, "ws", st, ...argv], opts);
const virsh = (...args: string[]) => ws(["virsh", "-q", "-c", uri, ...args]);
const must = (r: Run, what: string) => {
    if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r.stdout;
};

// The stack as a developer would write it for that host; HOME on the workstation side is /root.
function plan(name: string) {
    const c = loadConfig(
        "rt",
        {
            hypervisor: "libvirt",
            vm: { name, cpus: 1, memory: "1G", disk: "5G" },
            libvirt: { uri, image: `file://${image}`, storageDir: dir, network: "ccsbx-remote", virtType: "qemu", machine: "pc", osVariant: "linux2022", filesystem: "9p" },
            mounts: [],
        },
        { home: "/root", readFile: (f: string) => fs.readFileSync(f.replace(/^\/root\//, `${st}/home/`), "utf8"), platform: "linux" },
    );
    // Long enough for virt-install over SSH; the empty disk never gets an address.
    return { ...libvirtDriver("/root").vmPlan(c, `instance-id: ${name}-${randomBytes(4).toString("hex")}\n`), timeoutSeconds: 25 };
}

function step(name: "create" | "delete", p: object, input = userData): Run {
    return ws([process.execPath, "-e", `require(${JSON.stringify(runnerFile)}).runStep(${JSON.stringify(name)});`], { input, env: { CC_PLAN: JSON.stringify(p), CC_POLL_MS: "500" } });
}

const vols = () => must(virsh("vol-list", "--pool", pool()), "vol-list").split("\n").map((l) => l.trim().split(/\s+/)[0]).filter(Boolean).sort();
const stalePart = `cc-sandbox-base-${"0".repeat(64)}.qcow2.part-1-1`;
const livePart = `cc-sandbox-base-${"1".repeat(64)}.qcow2.part-2-2`;
let poolName = "";
const pool = () => (poolName ||= must(ws(["bash", storageScript, "pool", uri, dir]), "pool").trim());
const disks = (name: string) => must(virsh("domblklist", name), "domblklist").split("\n").map((l) => l.trim().split(/\s+/)[1]).filter(Boolean);

beforeAll(() => {
    must(sh([hostScript, "up", st]), "libvirt-host.sh up");
    must(sh(["qemu-img", "create", "-q", "-f", "qcow2", image, "1G"]), "qemu-img create");
});

afterAll(() => {
    sh([hostScript, "down", st]);
});

describe("a remote libvirt host's storage, through the driver's plan", () => {
    let base = "";
    const baseName = () => path.basename(base);

    test("create: the pool is made on the host, the image uploaded, the seed a volume of the VM's own; nothing on the workstation", () => {
        // A create that fails when its VM is to be defined leaves only the pool: its seed and the
        // image no disk uses go again.
        const r0 = step("create", { ...plan("cc-rt"), launch: ["false"] }, "#cloud-config\n# stale\n");
        expect(r0.code).toBe(1);
        expect(r0.stderr).toMatch(/defining storage pool cc-sandbox-[0-9a-f]{8} at \/var\/lib\/libvirt\/cc-vms on the host/);
        expect(r0.stderr).toMatch(/uploading .*base\.qcow2 to pool cc-sandbox-[0-9a-f]{8}/);
        expect(r0.stderr).toContain("creating cc-rt failed");
        expect(vols()).toEqual([]);
        // What an upload cut short leaves (untouched for two hours), one another stack is writing
        // now, and a seed by the VM's name that is not this create's.
        for (const p of [stalePart, livePart]) must(virsh("vol-create-as", pool(), p, "1M", "--format", "raw"), "vol-create-as");
        must(sh([hostScript, "host", st, "touch", "-d", "2 hours ago", `${dir}/${stalePart}`]), "touch");
        must(virsh("vol-create-as", pool(), "cc-rt-seed.iso", "1M", "--format", "raw"), "vol-create-as");

        const r = step("create", plan("cc-rt"));
        // The disk never boots: the create ends waiting for its address, everything else made.
        expect(r.stderr).toMatch(/cc-rt is running with no IPv4 address after 25s/);
        const sum = must(sh(["sha256sum", image]), "sha256sum").slice(0, 64);
        base = `${dir}/cc-sandbox-base-${sum}.qcow2`;
        expect(must(virsh("domstate", "cc-rt"), "domstate").trim()).toBe("running");
        expect(disks("cc-rt")).toEqual([`${dir}/cc-rt.qcow2`, `${dir}/cc-rt-seed.iso`]);
        // The disk is backed by the uploaded volume, on the host.
        expect(must(virsh("vol-dumpxml", "--pool", pool(), "cc-rt.qcow2"), "vol-dumpxml")).toContain(`<path>${base}</path>`);
        // The seed holds this create's user-data, not another's.
        must(virsh("vol-download", "--pool", pool(), "cc-rt-seed.iso", "/root/seed.iso"), "vol-download");
        const iso = fs.readFileSync(path.join(st, "home", "seed.iso"), "latin1");
        // (Booleans: a failure would print the whole image.)
        expect(iso.includes("cidata")).toBe(true);
        expect(iso.includes(userData.trim())).toBe(true);
        expect(iso.includes("# stale")).toBe(false);
        expect(vols()).toEqual([baseName(), "cc-rt-seed.iso", "cc-rt.qcow2", stalePart, livePart].sort());
        // Nothing of it on the workstation: no directory, no local libvirt asked (its socket hidden).
        expect(fs.existsSync(dir)).toBe(false);
    });

    test("a restart keeps the seed attached (virt-install's --cloud-init would drop it)", () => {
        must(virsh("destroy", "cc-rt"), "destroy");
        must(virsh("start", "cc-rt"), "start");
        expect(disks("cc-rt")).toContain(`${dir}/cc-rt-seed.iso`);
    });

    test("a second VM uses the uploaded image as it is; delete keeps it while a disk is backed by it", () => {
        const r = step("create", plan("cc-rt2"));
        expect(r.stderr).toContain(`base image ${baseName()} is already in pool`);
        expect(r.stderr).not.toContain("uploading");
        const d = step("delete", plan("cc-rt"));
        expect(d.code).toBe(0);
        expect(virsh("dominfo", "cc-rt").code).not.toBe(0);
        // The first VM's volumes and the stale part are gone; the image stays for cc-rt2, the part
        // another upload is writing stays too.
        expect(vols()).toEqual([baseName(), "cc-rt2-seed.iso", "cc-rt2.qcow2", livePart].sort());
    });

    test("delete of the last VM leaves no volume in the pool; the pool stays, empty", () => {
        // That upload is long gone by now.
        must(sh([hostScript, "host", st, "touch", "-d", "2 hours ago", `${dir}/${livePart}`]), "touch");
        expect(step("delete", plan("cc-rt2")).code).toBe(0);
        expect(virsh("dominfo", "cc-rt2").code).not.toBe(0);
        expect(vols()).toEqual([]);
        expect(must(virsh("pool-list", "--all", "--name"), "pool-list").trim()).toMatch(/^cc-sandbox-[0-9a-f]{8}$/);
    });

    test("attack: volumes named for the VM that are another domain's disk (a renamed VM) are neither replaced nor removed", () => {
        must(virsh("vol-create-as", pool(), "cc-rt3.qcow2", "16M", "--format", "qcow2"), "vol-create-as");
        fs.writeFileSync(path.join(st, "home", "other.xml"),
            `<domain type='qemu'><name>cc-other</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os>` +
            `<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${dir}/cc-rt3.qcow2'/><target dev='vda' bus='virtio'/></disk></devices></domain>`);
        must(virsh("define", "/root/other.xml"), "define");
        try {
            const r = step("create", plan("cc-rt3"));
            expect(r.code).toBe(1);
            expect(r.stderr).toContain(`${dir}/cc-rt3.qcow2 is a disk of another domain on the host`);
            expect(vols()).toContain("cc-rt3.qcow2");
            // Destroy of that stack leaves it too.
            expect(step("delete", plan("cc-rt3")).code).toBe(0);
            expect(vols()).toContain("cc-rt3.qcow2");
        } finally {
            virsh("undefine", "cc-other");
            virsh("vol-delete", "--pool", pool(), "cc-rt3.qcow2");
        }
        expect(vols()).toEqual([]);
    });

    test("an administrator's own pool at the directory is used, under its name; none is defined beside it", () => {
        must(virsh("pool-define-as", "admins", "dir", "--target", "/var/lib/libvirt/admins"), "pool-define-as");
        must(virsh("pool-build", "admins"), "pool-build");
        expect(must(ws(["bash", storageScript, "pool", uri, "/var/lib/libvirt/admins/"]), "pool").trim()).toBe("admins");
        expect(must(virsh("pool-info", "admins"), "pool-info")).toMatch(/State:\s+running/);
        expect(must(virsh("pool-list", "--all", "--name"), "pool-list").split("\n").filter((l) => l.trim().startsWith("cc-sandbox-")).length).toBe(1);
    });
});
