/**
 * The ci stack on a remote libvirt host, end to end: the Pulumi CLI on a workstation that reaches
 * the host only over SSH (qemu+ssh://) makes the sandbox there from nothing (the pool, the image
 * uploaded from the workstation, the seed a volume of the VM's own), reaches it through the host with
 * the stack's sshCommand and its sshConfig block, applies an allowlist change in place, and destroy
 * leaves no domain and no volume on the host. (A reboot is the local e2e's: the domain is defined by
 * the same code, and cloud-init, the one reader of the seed, stays out of every boot after the first.)
 * Durations are printed and added to $CC_E2E_RESULTS (default .cache/e2e/steps-remote.json).
 */
import * as fs from "fs";
import * as path from "path";
import { root } from "../helpers";
import { remoteDir, remoteSubnet, remoteVm, RemoteWorld } from "./remote-world";
import { steps } from "./steps";
import { Run } from "./world";

jest.setTimeout(60 * 60_000);

const world = new RemoteWorld();
let outputs: Record<string, unknown> = {};
const { step, timed, ok, save } = steps("e2e-remote", () => world.volumes().join("\n"));

const up = async (what: string, extra: string[] = []) => ok(await world.pulumi(["up", "--yes", "--skip-preview", "-s", "ci", ...extra]), what);
const summary = (r: Run) => r.stdout.slice(r.stdout.lastIndexOf("Resources:"));
const inGuest = (command: string, opts: { admin?: boolean; timeoutMs?: number } = {}) =>
    world.inGuest(String(outputs.sshCommand), opts.admin ? String(outputs.adminUser) : "agent", command, opts);

async function readOutputs(): Promise<void> {
    outputs = JSON.parse(ok(await world.pulumi(["stack", "output", "--json", "--show-secrets", "-s", "ci"]), "stack output").stdout);
}

beforeAll(async () => {
    await timed("prepare engine and image", async () => {
        world.prepareTools();
    });
    await timed("start the host and the workstation", () => world.start());
    ok(await world.pulumi(["stack", "init", "ci", "--secrets-provider", "passphrase"]), "stack init");
});

afterAll(() => {
    save(process.env.CC_E2E_RESULTS ? process.env.CC_E2E_RESULTS.replace(/\.json$/, "-remote.json") : path.join(root, ".cache", "e2e", "steps-remote.json"));
    process.stdout.write(`e2e-remote: log in ${world.log}\n`);
    world.stop();
});

step("R1. pulumi up makes the sandbox on the host from nothing: pool, uploaded image, seed volume", async () => {
    const r = await timed("pulumi up on the remote host (create, boot, cloud-init)", () => up("pulumi up"));
    expect(summary(r)).toMatch(/\+ \d+ created/);
    expect(r.stdout + r.stderr).toMatch(/uploading .*disk\.qcow2 to pool cc-sandbox-[0-9a-f]{8}/);
    await readOutputs();
    expect(outputs).toMatchObject({ name: remoteVm, hypervisor: "libvirt", state: "running" });
    expect(String(outputs.ip)).toMatch(new RegExp(`^${remoteSubnet.replace(/\./g, "\\.")}\\.1\\d\\d$`));
    const vols = world.volumes().map((v) => v.replace(/^[^:]+: /, "")).sort();
    expect(vols).toEqual([`${remoteVm}-seed.iso`, `${remoteVm}.qcow2`, expect.stringMatching(/^cc-sandbox-base-[0-9a-f]{64}\.qcow2$/)]);
    expect(world.virsh("domblklist", remoteVm).stdout).toContain(`${remoteDir}/${remoteVm}-seed.iso`);
    // Nothing of it on the workstation's side of the filesystem.
    expect(fs.existsSync(remoteDir)).toBe(false);
    // Named without its image.json: every guest file came in the cloud-config, as with a stock image.
    const seed = (await inGuest("sudo sh -c 'wc -c </var/lib/cloud/instance/user-data.txt; grep -c cc-sandbox-baked /var/lib/cloud/instance/user-data.txt || true'", { admin: true })).stdout.split("\n");
    expect(Number(seed[0])).toBeGreaterThan(100_000);
    expect(seed[1]).toBe("0");
});

step("R2. the sshCommand and the sshConfig block both log in, through the host", async () => {
    expect(String(outputs.sshCommand)).toMatch(/ProxyCommand=ssh .* -W %h:%p root@198\.18\.9\.2/);
    expect((await inGuest("id -un")).stdout).toBe("agent\n");
    const config = path.join(world.home, ".ssh", "config.cc-sandbox");
    fs.writeFileSync(config, String(outputs.sshConfig));
    const r = await world.shell(`ssh -F /root/.ssh/config.cc-sandbox -o BatchMode=yes ${remoteVm} -- id -un`);
    expect(r.stderr).not.toMatch(/Permission denied|Host key verification failed/);
    expect(r.stdout).toBe("agent\n");
});

step("R3. an allowlist change applies in place: no replacement, the same boot", async () => {
    const stack = fs.readFileSync(world.stackFile, "utf8");
    expect(stack).toContain("- allowed.test.example\n");
    fs.writeFileSync(world.stackFile, stack.replace("- allowed.test.example\n", "- new.test.example\n"));
    const bootId = (await inGuest("cat /proc/sys/kernel/random/boot_id")).stdout;
    const r = await timed("pulumi up on the remote host (allowlist only)", () => up("pulumi up (allowlist)"));
    expect(summary(r)).toMatch(/~ 2 updated/);
    expect(summary(r)).not.toMatch(/replaced|created|deleted/);
    expect((await inGuest("cat /proc/sys/kernel/random/boot_id")).stdout).toBe(bootId);
    const before = String(outputs.policy);
    await readOutputs();
    expect(outputs.policy).not.toBe(before);
    // (with its stderr and exit: a status that prints nothing says why)
    const status = await inGuest("sudo cc-sandbox-firewall status", { admin: true });
    expect(`${status.stdout}--- stderr (exit ${status.code}) ---\n${status.stderr.slice(-600)}`).toContain(`ON (policy ${outputs.policy}; `);
});

step("R4. pulumi destroy leaves no domain and no volume on the host, and no known_hosts or state here", async () => {
    await timed("pulumi destroy on the remote host", async () => ok(await world.pulumi(["destroy", "--yes", "--skip-preview", "-s", "ci"]), "pulumi destroy"));
    expect(world.leftovers()).toEqual([]);
    expect(await world.stateResources()).toEqual([]);
});
