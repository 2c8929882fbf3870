/**
 * Every default, in one place: the schema's descriptions quote these, `fillDefaults` applies them,
 * and Pulumi.yaml declares the same (test/unit/project.test.ts holds it to them).
 */
import type { RawConfig } from "./schema";
import { AllowedCidr, AllowedDomain, Mount, Project, SandboxConfig } from "./types";

/** The Claude Code version a stack installs unless it pins another (and the one `npm run bake` bakes). */
export const defaultClaudeVersion = "2.1.331";

/**
 * The agent's uid in the guest: cloud-init creates it with this uid, Multipass maps the host user to
 * it, and the guest files name it (user@1001.service.d, 10-users.sh; a render test holds them to it).
 */
export const agentUid = 1001;

export const defaults = {
    hypervisor: "multipass",
    vm: { cpus: 4, memory: "8G", disk: "50G", image: "24.04", timeoutSeconds: 1800 },
    libvirt: {
        uri: "qemu:///system",
        image: "https://cloud-images.ubuntu.com/releases/24.04/release/ubuntu-24.04-server-cloudimg-amd64.img",
        network: "default",
        osVariant: "ubuntu24.04",
        filesystem: "virtiofs",
        storageDir: "/var/lib/libvirt/images",
        machine: "q35",
        virtType: "kvm",
        firmware: "bios",
    },
    /** The agent's and the admin's user names: the admin is the image's default user. */
    users: { agent: "agent", admin: "ubuntu" },
    /** A share of ~/code at the agent's ~/code. */
    mounts: [{ host: "~/code", guest: "/home/agent/code" }],
    sshPublicKeyPath: "~/.ssh/id_ed25519.pub",
    presets: ["anthropic", "github", "npm"],
    /** The ports of an allowlist entry that names none. */
    ports: [443],
    firewall: { enabled: true, githubMeta: false, logDenied: true },
    claude: { install: true, version: defaultClaudeVersion },
    /** At most this many projects in one stack. */
    maxProjects: 32,
} as const;

/** `cc-<stack>`, lowercased, other characters as hyphens, at most 40 characters. */
export function defaultVmName(stack: string): string {
    const s = stack.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "");
    return `cc-${s || "sandbox"}`.slice(0, 40).replace(/-+$/, "");
}

const sizeUnits: Record<string, number> = { K: 1 / 1024, M: 1, G: 1024, T: 1024 * 1024 };
/** A validated size (`8G`, `512M`) in MiB. */
export function sizeMiB(size: string): number {
    const m = /^(\d+)([KMGT])/.exec(size)!;
    return Number(m[1]) * sizeUnits[m[2]];
}

/** What loading resolved beside the raw values: shares, the merged allowlist, the SSH keys read. */
export interface Resolved {
    readonly mounts: readonly Mount[];
    readonly domains: readonly AllowedDomain[];
    readonly cidrs: readonly AllowedCidr[];
    readonly sshKeys: readonly string[];
    readonly sshPrivateKeyPath: string;
    readonly projects: readonly Project[];
}

/** A validated raw config with every default filled: the typed SandboxConfig. */
export function fillDefaults(stack: string, raw: RawConfig, resolved: Resolved): SandboxConfig {
    const vm = raw.vm ?? {};
    const lv = raw.libvirt ?? {};
    const fw = raw.firewall ?? {};
    const cl = raw.claude ?? {};
    const git = raw.git ?? {};
    return {
        stack,
        hypervisor: raw.hypervisor ?? defaults.hypervisor,
        vm: {
            name: vm.name ?? defaultVmName(stack),
            cpus: vm.cpus ?? defaults.vm.cpus,
            memoryMiB: sizeMiB(vm.memory ?? defaults.vm.memory),
            diskGiB: Math.ceil(sizeMiB(vm.disk ?? defaults.vm.disk) / 1024),
            image: vm.image ?? defaults.vm.image,
            timeoutSeconds: vm.timeout ?? defaults.vm.timeoutSeconds,
        },
        libvirt: {
            uri: lv.uri ?? defaults.libvirt.uri,
            image: lv.image ?? defaults.libvirt.image,
            ...(lv.imageSha256 ? { imageSha256: lv.imageSha256 } : {}),
            network: lv.network ?? defaults.libvirt.network,
            osVariant: lv.osVariant ?? defaults.libvirt.osVariant,
            filesystem: lv.filesystem ?? defaults.libvirt.filesystem,
            storageDir: lv.storageDir ?? defaults.libvirt.storageDir,
            machine: lv.machine ?? defaults.libvirt.machine,
            virtType: lv.virtType ?? defaults.libvirt.virtType,
            firmware: lv.firmware ?? defaults.libvirt.firmware,
            // The schema's dependencies give kernel, initrd and kernelArgs together.
            ...(lv.kernel ? { boot: { kernel: lv.kernel, initrd: lv.initrd ?? "", args: lv.kernelArgs ?? "" } } : {}),
        },
        mounts: [...resolved.mounts],
        sshAuthorizedKeys: [...resolved.sshKeys],
        sshPrivateKeyPath: resolved.sshPrivateKeyPath,
        git: { name: git.name ?? "", email: git.email ?? "" },
        users: { ...defaults.users },
        allowlist: { presets: [...(raw.allowlist?.presets ?? defaults.presets)], domains: resolved.domains, cidrs: resolved.cidrs },
        firewall: {
            enabled: fw.enabled ?? defaults.firewall.enabled,
            githubMeta: fw.githubMeta ?? defaults.firewall.githubMeta,
            logDenied: fw.logDenied ?? defaults.firewall.logDenied,
        },
        claude: { install: cl.install ?? defaults.claude.install, version: cl.version ?? defaults.claude.version },
        secureOps: { scripts: (raw.secureOps?.scripts ?? []).map((x) => (x.args === undefined ? { path: x.path } : { path: x.path, args: x.args })) },
        secretNames: Object.keys(raw.secrets ?? {}).sort(),
        projects: [...resolved.projects],
    };
}
