/** libvirt: argument lists for `virt-install` and `virsh`, for any libvirt URI. */
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { isLocalLibvirt } from "../../config/host";
import { projectMountTag } from "../../config/projects";
import { Project, SandboxConfig } from "../../config/types";
import { sshArgv } from "../ssh";
import { Driver, ShareSteps, SshTarget, VmPlan } from "../types";
import { ubuntuCloudImageKeys } from "./cloud-image-keys";

const fetchImageScript = fs.readFileSync(path.join(__dirname, "fetch-image.sh"), "utf8");
const hostStorageScript = fs.readFileSync(path.join(__dirname, "host-storage.sh"), "utf8");
const shareScript = fs.readFileSync(path.join(__dirname, "share.sh"), "utf8");

const isUrl = (image: string) => /^https?:\/\//.test(image);
const isFileUrl = (image: string) => image.startsWith("file://");

/** A remote host's storage, through virsh over the URI (host-storage.sh). */
const hostStorage = (c: SandboxConfig, action: string, ...args: string[]) =>
    ["bash", "-c", hostStorageScript, "host-storage", action, c.libvirt.uri, c.libvirt.storageDir, ...args];

/**
 * The base image as virt-install names it: a path on the libvirt host as given (a `file://` one
 * of this machine's, on this machine), or `{image}`, which the runner fills with the path the
 * image step prints: the verified download, or on a remote host the volume it was uploaded to.
 */
export function backingImage(c: SandboxConfig): string {
    const image = c.libvirt.image;
    if (isUrl(image) || (isFileUrl(image) && jumpHost(c.libvirt.uri))) return "{image}";
    return isFileUrl(image) ? image.slice("file://".length) : image;
}

/** Where downloaded base images are kept on this machine, each as <sha256>.img: beside the VMs, or for a remote host in HOME's cache. */
export function imageStore(c: SandboxConfig, home: string): string {
    return jumpHost(c.libvirt.uri) ? path.posix.join(home, ".cache", "cc-sandbox", "images") : path.posix.join(c.libvirt.storageDir, "images");
}

/**
 * The image step: a URL is downloaded and verified against its release's signed SHA256SUMS
 * (fetch-image.sh), and on a remote host uploaded into its pool, as a `file://` image is
 * (host-storage.sh); it prints the path virt-install backs the disk with. None for a path already
 * on the libvirt host.
 */
export function imageStep(c: SandboxConfig, home: string): string[] | undefined {
    const image = c.libvirt.image;
    const remote = !!jumpHost(c.libvirt.uri);
    if (isUrl(image)) {
        const keys = ubuntuCloudImageKeys;
        const fetch = [image, imageStore(c, home), keys.keyringBase64, keys.fingerprints.join(","), ...(c.libvirt.imageSha256 ? [c.libvirt.imageSha256] : [])];
        return remote ? hostStorage(c, "image", "fetch", fetchImageScript, ...fetch) : ["bash", "-c", fetchImageScript, "fetch-image", ...fetch];
    }
    return remote && isFileUrl(image) ? hostStorage(c, "image", "file", image.slice("file://".length)) : undefined;
}

/** libvirt's SSH transports: their guests are reached through the host they name. */
const sshTransport = /^[a-z0-9]+\+(?:ssh|libssh2|libssh):\/\//;

/** `qemu+ssh://user@host:port/system?keyfile=K` -> {user, host, port, keyfile}. */
export function jumpHost(uri: string): { user?: string; host: string; port?: number; keyfile?: string } | undefined {
    if (!sshTransport.test(uri)) return undefined;
    const m = /^[^:]+:\/\/(?:([^@/?]+)@)?([^:/?]+)(?::(\d+))?[^?]*(?:\?(.*))?$/.exec(uri);
    if (!m) return undefined;
    const keyfile = new URLSearchParams(m[4] ?? "").get("keyfile") ?? undefined;
    return { ...(m[1] ? { user: m[1] } : {}), host: m[2], ...(m[3] ? { port: Number(m[3]) } : {}), ...(keyfile ? { keyfile } : {}) };
}

/** Host keys of the libvirt hosts guests are reached through: kept when VMs come and go. */
export function hostsKnownHostsFile(home: string): string {
    return path.posix.join(home, ".ssh", "known_hosts.cc-sandbox-hosts");
}

export function knownHostsFile(c: SandboxConfig, home: string): string {
    return path.posix.join(home, ".ssh", `known_hosts.cc-sandbox.${c.vm.name}`);
}

/**
 * The VM's SSH target: the stack's key only, and a known_hosts file of the VM's own (renewed with
 * the VM). Through a remote host: the stack's key first and the user's own after it, as virsh's ssh
 * would offer them, and the host's key checked against the user's known_hosts and a file of ours
 * that a new VM does not empty.
 */
export function sshTarget(c: SandboxConfig, home: string): SshTarget {
    const j = jumpHost(c.libvirt.uri);
    const quoted = (f: string) => `"${f}"`;
    return {
        identityFile: c.sshPrivateKeyPath,
        options: ["IdentitiesOnly=yes", "StrictHostKeyChecking=accept-new", `UserKnownHostsFile=${quoted(knownHostsFile(c, home))}`],
        ...(j
            ? {
                  jump: {
                      ...(j.user ? { user: j.user } : {}),
                      host: j.host,
                      ...(j.port ? { port: j.port } : {}),
                      identityFiles: [c.sshPrivateKeyPath, ...(j.keyfile ? [j.keyfile] : [])],
                      options: ["StrictHostKeyChecking=accept-new", `UserKnownHostsFile=${quoted(hostsKnownHostsFile(home))} ${quoted(path.posix.join(home, ".ssh", "known_hosts"))}`],
                  },
              }
            : {}),
    };
}

/**
 * The NoCloud seed as a disk of the VM's own. virt-install's `--cloud-init` treats its seed as
 * install media: the first guest reboot shuts the VM off and later boots have no seed, so cloud-init
 * takes the VM for a new instance. A seed that is one of the VM's disks stays (on a remote host, a
 * volume uploaded into the pool), and `undefine --remove-all-storage` removes it.
 */
export function seedPath(c: SandboxConfig): string {
    return path.posix.join(c.libvirt.storageDir, `${c.vm.name}-seed.iso`);
}

/**
 * The guest's serial console, kept by libvirt's virtlogd on the libvirt host (size-capped and
 * rotated by it): what a VM that never answers printed while it booted.
 */
export function consoleLog(c: SandboxConfig): string {
    return `/var/log/libvirt/qemu/${c.vm.name}-console.log`;
}

/**
 * The stack's mark in its domain's description: whose VM it is (a hash of the stack's SSH key), so
 * that a stack on a shared host never adopts nor deletes another developer's VM of the same name.
 */
export function ownerMark(c: SandboxConfig): string {
    return `cc-sandbox-owner:${createHash("sha256").update(c.sshAuthorizedKeys[0] ?? c.vm.name).digest("hex").slice(0, 16)}`;
}

/**
 * virt-install's arguments. `shapeOnly` leaves out what changes nothing in the guest (the console's
 * log, the owner mark), so it is not among what replaces a VM (replaceOn).
 */
export function virtInstallArgs(c: SandboxConfig, opts: { shapeOnly?: boolean } = {}): string[] {
    const lv = c.libvirt;
    const disk = path.posix.join(lv.storageDir, `${c.vm.name}.qcow2`);
    const seed = seedPath(c);
    const shares = c.mounts.flatMap((m) =>
        lv.filesystem === "virtiofs"
            ? ["--filesystem", `source=${m.host},target=${m.tag},driver.type=virtiofs${m.readOnly ? ",readonly=on" : ""}`]
            : ["--filesystem", `source=${m.host},target=${m.tag},accessmode=mapped${m.readOnly ? ",readonly=on" : ""}`],
    );
    return [
        "virt-install",
        "--connect", lv.uri,
        "--name", c.vm.name,
        "--memory", String(c.vm.memoryMiB),
        "--vcpus", String(c.vm.cpus),
        "--import",
        "--disk", `path=${disk},size=${c.vm.diskGiB},backing_store=${backingImage(c)},backing_format=qcow2,format=qcow2,bus=virtio`,
        // A virtio disk, not a cdrom: the bus a cdrom gets depends on the machine type (IDE on pc,
        // SATA on q35) and Linux did not find an IDE cdrom behind UEFI firmware under emulation;
        // cloud-init finds the seed by its label on any block device.
        "--disk", `path=${seed},device=disk,bus=virtio,format=raw,readonly=on`,
        "--osinfo", lv.osVariant,
        "--network", `network=${lv.network},model=virtio`,
        "--virt-type", lv.virtType,
        "--machine", lv.machine,
        "--graphics", "none",
        "--console", `pty,target_type=serial${opts.shapeOnly ? "" : `,log.file=${consoleLog(c)},log.append=on`}`,
        "--noautoconsole",
        ...(opts.shapeOnly ? [] : ["--metadata", `description=${ownerMark(c)}`]),
        ...(lv.boot ? ["--boot", `kernel=${lv.boot.kernel},initrd=${lv.boot.initrd},kernel_args="${lv.boot.args}"`] : []),
        ...(lv.firmware === "uefi" ? ["--boot", "uefi"] : []),
        // Shared memory whenever shares are virtiofs, even with none at first: a project's share is
        // added to the running VM, and virtiofs needs it.
        ...(lv.filesystem === "virtiofs" ? ["--memorybacking", "source.type=memfd,access.mode=shared"] : []),
        ...shares,
    ];
}

/** The target with OPTIONS on every hop (the program's own calls: no prompts, bounded waits). */
const withOptions = (t: SshTarget, ...options: string[]): SshTarget => ({
    ...t,
    options: [...t.options, ...options],
    ...(t.jump ? { jump: { ...t.jump, options: [...t.jump.options, ...options] } } : {}),
});

/** A project's folder as a virtiofs device of the domain, live and in its definition (share.sh). */
export function projectShare(c: SandboxConfig, p: Project): ShareSteps {
    if (p.mount === undefined) throw new Error(`project ${p.name} shares no folder`);
    const script = (action: string) => ["bash", "-c", shareScript, "share.sh", action, c.libvirt.uri, c.vm.name, projectMountTag(p.name), p.mount!];
    return { attach: script("attach"), detach: script("detach") };
}

/** The base image's file on this machine: a `file://` one, or a path when the libvirt host is this machine. */
export function localImage(c: SandboxConfig): string | undefined {
    const image = c.libvirt.image;
    if (isFileUrl(image)) return image.slice("file://".length);
    return !isUrl(image) && isLocalLibvirt(c.libvirt.uri) ? image : undefined;
}

export function libvirtDriver(home: string): Driver {
    return {
        sshTarget: (c) => sshTarget(c, home),
        localImage,
        projectShare,
        vmPlan(c: SandboxConfig, metaData: string): VmPlan {
            const virsh = ["virsh", "--connect", c.libvirt.uri];
            const seed = seedPath(c);
            const remote = !!jumpHost(c.libvirt.uri);
            return {
                name: c.vm.name,
                format: "virsh",
                state: [...virsh, "domstate", c.vm.name],
                // "failed to get domain 'NAME'" / "Domain not found"; "failed to connect to the
                // hypervisor" is an error, not an absent VM. virsh prints the first for any failed
                // lookup, so the list below must also leave the VM out.
                absent: "failed to get domain|[Dd]omain not found",
                list: [...virsh, "list", "--all", "--name"],
                address: [...virsh, "domifaddr", c.vm.name, "--source", "lease"],
                instance: [...virsh, "domuuid", c.vm.name],
                start: [...virsh, "start", c.vm.name],
                prepare: [
                    // The VMs' directory: on this host, made; on a remote one, a storage pool there.
                    remote ? hostStorage(c, "pool") : ["mkdir", "-p", c.libvirt.storageDir],
                    // A new VM has new host keys: the ones of a VM removed behind Pulumi's back must
                    // not make every SSH call fail as a changed host key.
                    ["rm", "-f", knownHostsFile(c, home)],
                ],
                image: imageStep(c, home),
                // genisoimage, as cloud-localds uses: an ISO labelled cidata holding user-data and meta-data.
                seed: remote
                    ? hostStorage(c, "seed", c.vm.name, "{userDataFile}", "{metaDataFile}")
                    : ["genisoimage", "-quiet", "-output", seed, "-volid", "cidata", "-joliet", "-rock", "{userDataFile}", "{metaDataFile}"],
                launch: virtInstallArgs(c),
                launchStdin: false,
                metaData,
                delete: [
                    [...virsh, "destroy", c.vm.name],
                    // --nvram: a UEFI VM's variable store, which libvirt keeps otherwise.
                    [...virsh, "undefine", c.vm.name, "--remove-all-storage", "--nvram"],
                    // Gone with the storage above, unless a create failed before the VM was defined;
                    // on a remote host also the base image no disk is backed by any more.
                    remote ? hostStorage(c, "remove", c.vm.name) : ["rm", "-f", seed],
                    ["rm", "-f", knownHostsFile(c, home)],
                    // virtlogd keeps up to three rotated copies beside it.
                    ...(remote ? [] : [["rm", "-f", ...["", ".0", ".1", ".2"].map((n) => consoleLog(c) + n)]]),
                ],
                consoleLog: consoleLog(c),
                owner: { query: [...virsh, "desc", c.vm.name], mark: ownerMark(c) },
                // A session whose peer went silent ends within a minute and is tried again, instead of
                // holding the whole wait for cloud-init.
                guestExec: [...sshArgv(withOptions(sshTarget(c, home), "BatchMode=yes", "ConnectTimeout=10", "ServerAliveInterval=15", "ServerAliveCountMax=4"), c.users.admin, "{ip}"), "--"],
                unreachable: { codes: [255] },
                timeoutSeconds: c.vm.timeoutSeconds,
                // The domain as virt-install defines it (its shares among it), and the image a URL names.
                replaceOn: [...virtInstallArgs(c, { shapeOnly: true }), c.libvirt.image, c.libvirt.imageSha256 ?? null],
            };
        },
    };
}
