/**
 * The typed, validated and defaulted configuration of one sandbox. Only `loadConfig` builds it from
 * raw stack config; everything after that point (rendering, drivers, the component) reads this.
 */

export type Hypervisor = "multipass" | "libvirt";

/**
 * What a name's port carries. `tls` and `http` ports go through the guest's name-checking proxy,
 * which lets a connection through only for an allowlisted server name (TLS) or Host (HTTP); `raw`
 * ports are reached by address. Unless an entry says otherwise: 443 tls, 80 http, others raw.
 */
export type PortMode = "raw" | "tls" | "http";

export const defaultPortMode = (port: number): PortMode => (port === 443 ? "tls" : port === 80 ? "http" : "raw");

/** One allowlisted DNS name. `wildcard` entries (`*.example.com`) cover subdomains, not the apex. */
export interface AllowedDomain {
    readonly name: string;
    readonly wildcard: boolean;
    readonly ports: readonly number[];
    /** The mode of every port in `ports`. */
    readonly modes: Readonly<Record<number, PortMode>>;
    /** Where the entry came from: a preset name, or `domains` for the stack's own entries. */
    readonly source: string;
}

/** One allowlisted IPv4 network. */
export interface AllowedCidr {
    readonly cidr: string;
    readonly ports: readonly number[];
    readonly source: string;
}

export interface Allowlist {
    readonly presets: readonly string[];
    /** Presets expanded, stack entries merged, duplicates folded (ports united), sorted by name. */
    readonly domains: readonly AllowedDomain[];
    readonly cidrs: readonly AllowedCidr[];
}

export interface FirewallOptions {
    readonly enabled: boolean;
    /** Load GitHub's published CIDRs (api.github.com/meta) into the allowlist in the guest. */
    readonly githubMeta: boolean;
    readonly logDenied: boolean;
}

export interface Mount {
    /** Absolute host path, `~` already expanded. */
    readonly host: string;
    /** Absolute guest path. */
    readonly guest: string;
    readonly readOnly: boolean;
    /** A short identifier used as the 9p/virtiofs tag and in resource names. */
    readonly tag: string;
}

export interface VmOptions {
    readonly name: string;
    readonly cpus: number;
    /** Memory in MiB. */
    readonly memoryMiB: number;
    /** Disk size in GiB. */
    readonly diskGiB: number;
    /** Multipass image (e.g. `24.04`). */
    readonly image: string;
    /** Seconds to wait for the VM to launch and cloud-init to finish. */
    readonly timeoutSeconds: number;
}

export interface LibvirtOptions {
    readonly uri: string;
    /** Base cloud image: a local path or an http(s) URL. */
    readonly image: string;
    /** The checksum a URL image must have; without it, the first verified download is kept. */
    readonly imageSha256?: string;
    readonly network: string;
    readonly osVariant: string;
    readonly filesystem: "virtiofs" | "9p";
    /** Storage directory for per-VM disks and seeds on the libvirt host. */
    readonly storageDir: string;
    /** Machine type passed to virt-install (`pc` or `q35`). */
    readonly machine: string;
    /** `kvm`, or `qemu` for software emulation. */
    readonly virtType: "kvm" | "qemu";
    /** `uefi`: the VM boots its image through OVMF (virt-install --boot uefi), as Multipass does. */
    readonly firmware: "bios" | "uefi";
    /** Direct kernel boot, for images without a bootloader. */
    readonly boot?: { readonly kernel: string; readonly initrd: string; readonly args: string };
}

export interface GuestUsers {
    /** The unprivileged user the agent and the developer's sessions run as. */
    readonly agent: string;
    /** The admin user kept for the human and for Multipass (passwordless sudo). */
    readonly admin: string;
}

export interface ClaudeOptions {
    readonly install: boolean;
    /** npm version of @anthropic-ai/claude-code to install, pinned. */
    readonly version: string;
}

/** One script the agent may ask the credential bridge to run. */
export interface SecureOpsScript {
    readonly path: string;
    /** Extended regex each argument must match in full; undefined: the script takes no arguments. */
    readonly args?: string;
}

/**
 * A project: one worker user of its own in the guest (`cc-NAME`), with a uid derived from the name
 * (projectUid), so that adding, removing or reordering projects never renumbers another's files.
 */
export interface Project {
    readonly name: string;
    readonly user: string;
    readonly uid: number;
    /** Shell commands the worker runs once when the project is added, and when it is removed. */
    readonly setup?: string;
    readonly cleanup?: string;
    /**
     * `allowlist`: the stack's allowlist and `allowlist` here; `none`: none of the stack's, only
     * `allowlist` here: what Claude Code itself needs (the `anthropic` preset) for `network: none`,
     * or, when the repository's settings drop entries, the stack's and the project's less those.
     */
    readonly network: "allowlist" | "none";
    readonly allowlist: { readonly domains: readonly AllowedDomain[]; readonly cidrs: readonly AllowedCidr[] };
    /** The repository on the machine running the program that the worker gets a clone of (absolute). */
    readonly clone?: string;
    /**
     * A folder on the libvirt host shared read-write into the worker's ~/code (virtiofs, added to
     * the running VM under projectMountTag). Never given with clone.
     */
    readonly mount?: string;
    /** The repository's settings file that narrowed the project (src/config/repo-settings.ts). */
    readonly narrowedBy?: string;
    /** Rootless Podman for the worker: its containers run as its uid, under its egress. */
    readonly containers: boolean;
    /** Scripts the worker may run with secure_run through the project's own bridge, as ccs-NAME. */
    readonly secureOps: { readonly scripts: readonly SecureOpsScript[] };
    /** Names of the project's secrets (its bridge's); their values never enter this config. */
    readonly secretNames: readonly string[];
}

export interface SandboxConfig {
    readonly stack: string;
    readonly hypervisor: Hypervisor;
    readonly vm: VmOptions;
    readonly libvirt: LibvirtOptions;
    readonly mounts: readonly Mount[];
    /** OpenSSH public keys installed for the agent and admin users. */
    readonly sshAuthorizedKeys: readonly string[];
    /** Private key path matching the public key, used in the `ssh` command outputs. */
    readonly sshPrivateKeyPath: string;
    readonly git: { readonly name: string; readonly email: string };
    readonly users: GuestUsers;
    readonly allowlist: Allowlist;
    readonly firewall: FirewallOptions;
    readonly claude: ClaudeOptions;
    readonly secureOps: { readonly scripts: readonly SecureOpsScript[] };
    /** Names of the secrets placed for the secrets owner; their values never enter this config. */
    readonly secretNames: readonly string[];
    readonly projects: readonly Project[];
}
