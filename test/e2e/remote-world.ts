/**
 * The world of the remote-host end-to-end test: the same engine and image as the local one, but the
 * libvirt host is a second machine (test/libvirt-host.sh: libvirtd and an sshd in network and mount
 * namespaces of their own), and the Pulumi CLI and ssh run on a workstation namespace that reaches
 * it only over SSH. HOME there is /root, bound to this world's throw-away home.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { parse, stringify } from "yaml";
import { root } from "../helpers";
import { sh, World } from "./world";

export const remoteHost = "198.18.9.2";
export const remoteUri = `qemu+ssh://root@${remoteHost}/system`;
export const remoteDir = "/var/lib/libvirt/cc-vms";
/** The host's isolated network (test/libvirt-host.sh). */
export const remoteSubnet = "198.18.10";
/**
 * The remote VM's name: not the local e2e's cc-ci, which runs beside it in CI. Two libvirt daemons
 * on one machine without systemd name a domain's cgroup by its id and name alone
 * (machine/qemu-1-cc-ci.libvirt-qemu), so two VMs of one name would share one.
 */
export const remoteVm = "cc-remote";
const hostScript = path.join(root, "test/libvirt-host.sh");

export class RemoteWorld extends World {
    readonly hostState = path.join(this.dir, "host");

    protected enter(): string[] {
        return [hostScript, "ws", this.hostState];
    }

    protected cliHome(): string {
        return "/root";
    }

    /** The host and the workstation, and the ci stack pointed at the host with the image uploaded from here. */
    async start(): Promise<void> {
        fs.mkdirSync(this.hostState);
        fs.symlinkSync(this.home, path.join(this.hostState, "home"));
        this.copyProject();
        const doc = parse(fs.readFileSync(this.stackFile, "utf8"));
        // The image named without its image.json: every guest file goes in the cloud-config, as
        // with Ubuntu's own cloud image (written over the image's own copies); the local test
        // boots it baked.
        const stock = path.join(this.dir, "stock-image");
        fs.mkdirSync(stock);
        fs.symlinkSync(path.join(this.imageDir, "disk.qcow2"), path.join(stock, "disk.qcow2"));
        doc.config["cc-sandbox:libvirt"] = {
            ...doc.config["cc-sandbox:libvirt"],
            uri: remoteUri,
            image: `file://${path.join(stock, "disk.qcow2")}`,
            storageDir: remoteDir,
            network: "ccsbx-remote",
        };
        doc.config["cc-sandbox:vm"] = { ...doc.config["cc-sandbox:vm"], name: remoteVm };
        // Shares are of the host's folders; this host has none to give.
        doc.config["cc-sandbox:mounts"] = [];
        fs.writeFileSync(this.stackFile, stringify(doc));
        sh(hostScript, ["up", this.hostState]);
    }

    /** virsh on the workstation, over the URI. */
    virsh(...args: string[]): { code: number | null; stdout: string } {
        const r = spawnSync(hostScript, ["ws", this.hostState, "virsh", "-q", "-c", remoteUri, ...args], { encoding: "utf8" });
        return { code: r.status, stdout: r.stdout };
    }

    /** Every volume of every pool on the host, as "pool: name". */
    volumes(): string[] {
        return this.virsh("pool-list", "--all", "--name")
            .stdout.split("\n")
            .map((p) => p.trim())
            .filter(Boolean)
            .flatMap((pool) =>
                this.virsh("vol-list", "--pool", pool)
                    .stdout.split("\n")
                    .map((l) => l.trim().split(/\s+/)[0])
                    .filter(Boolean)
                    .map((v) => `${pool}: ${v}`),
            );
    }

    /** What the host and this HOME still hold of the VM. */
    leftovers(): string[] {
        const found = this.volumes().map((v) => `volume ${v}`);
        if (this.virsh("dominfo", remoteVm).code === 0) found.push(`domain ${remoteVm}`);
        const knownHosts = path.join(this.home, ".ssh", `known_hosts.cc-sandbox.${remoteVm}`);
        if (fs.existsSync(knownHosts)) found.push(`file ${knownHosts}`);
        return found;
    }

    stop(): void {
        spawnSync(hostScript, ["down", this.hostState], { stdio: "inherit" });
        fs.rmSync(this.home, { recursive: true, force: true });
        if (process.env.CC_E2E_KEEP !== "1") fs.rmSync(this.dir, { recursive: true, force: true });
    }
}
