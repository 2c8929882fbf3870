/**
 * The JSON Schema of a stack's `cc-sandbox:` config and the formats it uses. Every string that
 * reaches a shell, a config file or a CLI argument is held to a format here, so nothing later has
 * to guess whether a value is safe.
 */
import type { FromSchema } from "json-schema-to-ts";
import { defaults } from "./defaults";
import { presetNames } from "./presets";

const label = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
// At least two labels, a TLD that starts with a letter (so an IP address is never a DNS name).
const dnsName = new RegExp(`^(?=.{1,253}$)(?:${label}\\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$`);

export const sshKeyTypes = [
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/** A single-line OpenSSH public key whose base64 blob names the same type as its first field. */
export function isSshPublicKey(value: string): boolean {
    const m = /^(\S+) ([A-Za-z0-9+/]+={0,2})(?: [\x20-\x7e]*)?$/.exec(value);
    if (!m) return false;
    const type = m[1];
    const base = type.replace(/-cert-v01@openssh\.com$/, "");
    if (!sshKeyTypes.includes(base)) return false;
    const blob = Buffer.from(m[2], "base64");
    if (blob.length < 4) return false;
    const len = blob.readUInt32BE(0);
    return blob.length >= 4 + len && blob.subarray(4, 4 + len).toString("latin1") === type;
}

export function isIpv4Cidr(value: string): boolean {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
    if (!m) return false;
    const octets = m.slice(1, 5).map(Number);
    const prefix = Number(m[5]);
    if (octets.some((o, i) => o > 255 || String(o) !== m[i + 1])) return false;
    if (prefix < 8 || prefix > 32) return false;
    const addr = ((octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]) >>> 0;
    const hostMask = prefix === 32 ? 0 : (0xffffffff >>> prefix) >>> 0;
    return (addr & hostMask) === 0;
}

function compiles(pattern: string): boolean {
    try {
        new RegExp(pattern);
        return true;
    } catch {
        return false;
    }
}

/** Formats and the phrase an error uses for each ("must be <phrase>"). */
export const formats: Record<string, { test: (v: string) => boolean; phrase: string }> = {
    "dns-name": {
        test: (v) => dnsName.test(v),
        phrase: "a lowercase DNS name such as example.org",
    },
    "domain-pattern": {
        test: (v) => dnsName.test(v.startsWith("*.") ? v.slice(2) : v),
        phrase: "a lowercase DNS name such as example.org, or a wildcard such as *.example.org",
    },
    "script-path": {
        // The guest's bridge takes the same characters (secure-ops-common.sh) and refuses .. and //.
        test: (v) => /^(\/[A-Za-z0-9_.+@,=:%-]+)+$/.test(v) && !v.includes("..") && !v.split("/").includes("."),
        phrase: "an absolute path of letters, digits and _.+@,=:%-, with no .. and no . segment",
    },
    "arg-pattern": {
        // No blank: the guest splits its list's lines on blanks (an argument has none either).
        test: (v) => /^[\x21-\x7e]{1,200}$/.test(v) && compiles(v),
        phrase: "an extended regular expression without blanks (printable ASCII, at most 200 characters)",
    },
    "secret-name": {
        test: (v) => /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(v),
        phrase: "a name of letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit)",
    },
    "ipv4-cidr": {
        test: isIpv4Cidr,
        phrase: "an IPv4 network such as 192.0.2.0/24 (prefix 8 to 32, host bits zero)",
    },
    "ssh-public-key": {
        test: isSshPublicKey,
        phrase: `a single-line OpenSSH public key (${sshKeyTypes.join(", ")}, or their certificates)`,
    },
    size: {
        test: (v) => /^[1-9][0-9]{0,6}[KMGT](?:i?B)?$/.test(v),
        phrase: "a size such as 8G, 512M or 1T",
    },
    "vm-name": {
        test: (v) => /^[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?$/.test(v),
        phrase: "a VM name: lowercase letters, digits and hyphens, starting with a letter, at most 40 characters",
    },
    "guest-path": {
        test: (v) => /^\/[A-Za-z0-9._/-]*$/.test(v) && !v.split("/").includes("..") && v !== "/",
        phrase: "an absolute guest path made of letters, digits, '.', '_', '-' and '/', without '..'",
    },
    "key-path": {
        // ssh reads it as IdentityFile: `%` tokens and `${VAR}` are expanded there, and a quote or
        // backslash would end the value in an ssh_config block.
        test: (v) => /^(?:~|~\/[^\0\n\r"\\%$]*|\/[^\0\n\r"\\%$]*)$/.test(v),
        phrase: "an absolute path or one starting with ~/, without \", \\, % or $",
    },
    "host-path": {
        test: (v) => /^(?:~|~\/[^\0\n\r]*|\/[^\0\n\r]*)$/.test(v),
        phrase: "an absolute host path or one starting with ~/",
    },
    "image-source": {
        // A path goes into virt-install's --disk option, whose fields are split on commas.
        test: (v) => /^(?:https?:\/\/[^\s'"\\]+|(?:file:\/\/)?\/[^,'"\0\n\r]+)$/.test(v),
        phrase: "an absolute path, file:// and an absolute path, or an http(s) URL (a path without commas or quotes)",
    },
    sha256: {
        test: (v) => /^[0-9a-f]{64}$/.test(v),
        phrase: "a sha256 checksum (64 lowercase hex digits)",
    },
    "multipass-image": {
        test: (v) => /^(?:[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}|file:\/\/\/[^\0\n\r\s'"\\]+)$/.test(v),
        phrase: "a Multipass image name such as 24.04, or file:///path of a local image (npm run bake)",
    },
    "libvirt-uri": {
        test: (v) => /^[a-z][a-z0-9+]*:\/\/[^\s'"\\]*$/.test(v),
        phrase: "a libvirt URI such as qemu:///system or qemu+ssh://user@host/system",
    },
    "simple-name": {
        test: (v) => /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(v),
        phrase: "a name of letters, digits, '.', '_' and '-'",
    },
    "kernel-args": {
        test: (v) => /^[A-Za-z0-9=_.,:/ -]{1,512}$/.test(v),
        phrase: "kernel arguments made of letters, digits, spaces and = _ . , : / -",
    },
    "one-line": {
        test: (v) => /^[^\x00-\x1f\x7f]{1,200}$/.test(v),
        phrase: "one line of text without control characters (at most 200 characters)",
    },
    email: {
        test: (v) => /^[^\s@<>"'\\]+@[^\s@<>"'\\]+\.[^\s@<>"'\\]+$/.test(v),
        phrase: "an email address",
    },
    hook: {
        // Carried to the guest base64-encoded and run by bash as the project's worker.
        test: (v) => /^[^\x00-\x1f\x7f]{1,2000}$/.test(v),
        phrase: "one line of shell without control characters (at most 2000 characters)",
    },
    "project-name": {
        // The worker user is cc-NAME: a user name useradd takes, and a word in a file name.
        test: (v) => /^[a-z](?:[a-z0-9-]{0,18}[a-z0-9])?$/.test(v),
        phrase: "a project name: lowercase letters, digits and hyphens, starting with a letter, at most 20 characters",
    },
    semver: {
        test: (v) => /^\d{1,4}\.\d{1,4}\.\d{1,6}$/.test(v),
        phrase: "an exact version such as 2.1.0",
    },
};

const str = <F extends string>(format: F, description: string) => ({ type: "string", format, description }) as const;
const ports = {
    type: "array",
    description: `TCP ports the entry may be reached on (default [${defaults.ports.join(", ")}])`,
    items: { type: "integer", minimum: 1, maximum: 65535 },
    minItems: 1,
    maxItems: 16,
    uniqueItems: true,
} as const;
const domainPorts = {
    ...ports,
    description: `TCP ports the entry may be reached on (default [${defaults.ports.join(", ")}]); 443 carries TLS and 80 HTTP, which the guest's proxy checks by name, any other port is raw (by address); PORT/raw, PORT/tls or PORT/http says otherwise`,
    items: {
        if: { type: "integer" },
        then: { type: "integer", minimum: 1, maximum: 65535 },
        else: { type: "string", pattern: "^[1-9][0-9]{0,4}/(raw|tls|http)$" },
    },
} as const;
const bool = (description: string) => ({ type: "boolean", description }) as const;

/** The schema of the raw config: the `cc-sandbox:` namespace with the prefix taken off. */
/** Scripts secure_run may run as a bridge's secrets owner: the stack's (the agent's), or a project's (its worker's). */
function secureOpsSchema<D extends string>(description: D) {
    return {
        type: "object",
        additionalProperties: false,
        description,
        properties: {
            scripts: {
                type: "array",
                maxItems: 200,
                items: {
                    type: "object",
                    additionalProperties: false,
                    required: ["path"],
                    properties: {
                        path: str("script-path", "Absolute path of the script in the guest"),
                        args: str("arg-pattern", "Extended regex each argument must match in full (default: no arguments)"),
                    },
                },
            },
        },
    } as const;
}

/** Secret files for a bridge's secrets owner, by name; values are never shown in an error. */
function secretsSchema<D extends string>(description: D) {
    return {
        type: "object",
        description,
        maxProperties: 100,
        propertyNames: { format: "secret-name" },
        additionalProperties: { type: "string", minLength: 1, maxLength: 1048576 },
    } as const;
}

/** An allowlist: the stack's, or a project's extra entries (whose presets default to none). */
function allowlistSchema<D extends string>(description: D, presetsDefault: readonly string[]) {
    return {
        type: "object",
        additionalProperties: false,
        description,
        properties: {
            presets: {
                type: "array",
                description: `Named sets of domains: ${presetNames.join(", ")} (default ${presetsDefault.join(", ") || "none"})`,
                items: { type: "string", enum: presetNames },
                uniqueItems: true,
            },
            domains: {
                type: "array",
                maxItems: 5000,
                description: "Extra DNS names: example.org, *.example.org, or {name, ports}",
                items: {
                    if: { type: "string" },
                    then: { type: "string", format: "domain-pattern" },
                    else: {
                        type: "object",
                        additionalProperties: false,
                        required: ["name"],
                        properties: { name: str("domain-pattern", "DNS name or wildcard"), ports: domainPorts },
                    },
                },
            },
            cidrs: {
                type: "array",
                maxItems: 5000,
                description: "IPv4 networks: 192.0.2.0/24 or {cidr, ports}",
                items: {
                    if: { type: "string" },
                    then: { type: "string", format: "ipv4-cidr" },
                    else: {
                        type: "object",
                        additionalProperties: false,
                        required: ["cidr"],
                        properties: { cidr: str("ipv4-cidr", "IPv4 network"), ports },
                    },
                },
            },
        },
    } as const;
}

export const configSchema = {
    type: "object",
    additionalProperties: false,
    properties: {
        hypervisor: {
            type: "string",
            enum: ["multipass", "libvirt"],
            description: `Which hypervisor creates the VM (default ${defaults.hypervisor})`,
        },
        vm: {
            type: "object",
            additionalProperties: false,
            description: "The VM's name and size",
            properties: {
                name: str("vm-name", "VM name (default cc-<stack>)"),
                cpus: { type: "integer", minimum: 1, maximum: 64, description: `vCPUs (default ${defaults.vm.cpus})` },
                memory: str("size", `Memory (default ${defaults.vm.memory})`),
                disk: str("size", `Disk size (default ${defaults.vm.disk})`),
                image: str("multipass-image", `Multipass image: a release (default ${defaults.vm.image}) or file:///path of a local one`),
                timeout: {
                    type: "integer",
                    minimum: 60,
                    maximum: 14400,
                    description: `Seconds to wait for launch and cloud-init (default ${defaults.vm.timeoutSeconds})`,
                },
            },
        },
        libvirt: {
            type: "object",
            additionalProperties: false,
            description: "libvirt driver options",
            properties: {
                uri: str("libvirt-uri", `Connection URI (default ${defaults.libvirt.uri})`),
                image: str("image-source", "Ubuntu 24.04 cloud image: a path on the libvirt host, file:///path of one on this machine (uploaded to a remote host), or an http(s) URL"),
                imageSha256: str("sha256", "The checksum a URL image must have (pins the release)"),
                network: str("simple-name", `libvirt network (default ${defaults.libvirt.network})`),
                osVariant: str("simple-name", `osinfo name (default ${defaults.libvirt.osVariant})`),
                filesystem: { type: "string", enum: ["virtiofs", "9p"], description: `Host folder sharing (default ${defaults.libvirt.filesystem})` },
                storageDir: str("guest-path", `Directory for disks and seeds on the libvirt host (default ${defaults.libvirt.storageDir})`),
                machine: { type: "string", enum: ["pc", "q35"], description: `Machine type (default ${defaults.libvirt.machine})` },
                virtType: { type: "string", enum: ["kvm", "qemu"], description: `kvm, or qemu for software emulation (default ${defaults.libvirt.virtType})` },
                firmware: { type: "string", enum: ["bios", "uefi"], description: `How the VM boots its image: bios or uefi (OVMF) (default ${defaults.libvirt.firmware})` },
                kernel: str("guest-path", "Boot this kernel directly (images without a bootloader)"),
                initrd: str("guest-path", "initrd for the direct kernel boot"),
                kernelArgs: str("kernel-args", "Kernel command line for the direct kernel boot"),
            },
            dependencies: { kernel: ["initrd", "kernelArgs"], initrd: ["kernel"], kernelArgs: ["kernel"] },
        },
        mounts: {
            type: "array",
            description: `Host folders mounted read-write in the guest (default ${defaults.mounts[0].host} at ${defaults.mounts[0].guest})`,
            maxItems: 8,
            items: {
                type: "object",
                additionalProperties: false,
                required: ["host", "guest"],
                properties: {
                    host: str("host-path", "Host folder"),
                    guest: str("guest-path", "Guest folder"),
                    readOnly: bool("Mount read-only (default false)"),
                },
            },
        },
        ssh: {
            type: "object",
            additionalProperties: false,
            description: "The SSH key that logs in to the VM",
            properties: {
                publicKey: str("ssh-public-key", "Public key, inline"),
                publicKeyPath: str("key-path", `Public key file (default ${defaults.sshPublicKeyPath})`),
                privateKeyPath: str("key-path", "Private key for the ssh outputs (default: the public key path without .pub)"),
            },
        },
        git: {
            type: "object",
            additionalProperties: false,
            description: "git identity in the guest",
            properties: {
                name: str("one-line", "user.name"),
                email: str("email", "user.email"),
            },
        },
        allowlist: allowlistSchema("Where the guest may connect", defaults.presets),
        firewall: {
            type: "object",
            additionalProperties: false,
            description: "Egress firewall options",
            properties: {
                enabled: bool(`Default-deny egress firewall (default ${defaults.firewall.enabled})`),
                githubMeta: bool(`Allow GitHub's published CIDRs from api.github.com/meta (default ${defaults.firewall.githubMeta})`),
                logDenied: bool(`Log denied connections, rate limited (default ${defaults.firewall.logDenied})`),
            },
        },
        secureOps: secureOpsSchema("Scripts the agent may run with secure_run as the secrets owner"),
        secrets: secretsSchema("Secret files for the secrets owner, by name (pulumi config set --secret --path 'cc-sandbox:secrets.NAME')"),
        projects: {
            type: "array",
            maxItems: defaults.maxProjects,
            description: "Projects side by side in the sandbox: each gets a worker user of its own (cc-NAME) that cannot read, change or watch the agent's, the admin's or another project's files and processes (default none)",
            items: {
                type: "object",
                additionalProperties: false,
                required: ["name"],
                properties: {
                    name: str("project-name", "The project's name; its worker user is cc-NAME"),
                    setup: str("hook", "A shell command the worker runs once, in its home, when the project is added (a failure takes the project back out)"),
                    cleanup: str("hook", "A shell command the worker runs when the project is removed (pulumi up without it, or pulumi destroy), at most 60 s"),
                    network: {
                        type: "string",
                        enum: ["allowlist", "none"],
                        description: "allowlist (default): the stack's allowlist and the project's own; none: only what Claude Code itself needs (the anthropic preset)",
                    },
                    allowlist: allowlistSchema("Where this project's worker may connect besides the stack's allowlist (network: allowlist only)", []),
                    secureOps: secureOpsSchema("Scripts this project's worker may run with secure_run as the project's own secrets owner (ccs-NAME)"),
                    secrets: secretsSchema("Secret files for this project's secrets owner, by name (pulumi config set --secret --path 'cc-sandbox:projects[N].secrets.NAME')"),
                    containers: bool("Rootless Podman for this project's worker: its containers run as the worker's own uid, with no_new_privs, under this project's egress (default false)"),
                    clone: str("host-path", "A git repository on this machine, cloned once into the worker's ~/code with its submodules and uncommitted changes (npm run project -- sync brings the work back as a branch)"),
                    mount: str("host-path", "A folder on this machine shared read-write into the worker's ~/code, added to the running VM (libvirt with virtiofs); not with clone"),
                },
            },
        },
        claude: {
            type: "object",
            additionalProperties: false,
            description: "Claude Code in the guest",
            properties: {
                install: bool(`Install Claude Code (default ${defaults.claude.install})`),
                version: str("semver", `Pinned @anthropic-ai/claude-code version (default ${defaults.claude.version})`),
            },
        },
    },
} as const;

/** The raw config as the schema lets it through: what validate.ts hands on, typed from the schema itself. */
export type RawConfig = FromSchema<typeof configSchema, { parseIfThenElseKeywords: true }>;
