/**
 * Raw stack config -> one typed, defaulted SandboxConfig, in three steps: validate the raw values
 * against the schema (every error at once), fill defaults, resolve what lives on the host (`~`, the
 * SSH key file). Each error names the key path as `pulumi config set --path` spells it, and the value.
 */
import Ajv, { ErrorObject } from "ajv";
import * as path from "path";
import { parse as parseYaml } from "yaml";
import { configSchema, formats, isSshPublicKey } from "./schema";
import { presets } from "./presets";
import { AllowedCidr, AllowedDomain, defaultPortMode, Mount, PortMode, SandboxConfig } from "./types";

export const namespace = "cc-sandbox";

export interface ConfigIssue {
    /** Key path, e.g. `cc-sandbox:allowlist.domains[2]`. */
    readonly path: string;
    readonly value: unknown;
    readonly message: string;
    /** The value is a secret's: the message names the key, never the value. */
    readonly secret?: boolean;
}

export class ConfigError extends Error {
    constructor(readonly issues: readonly ConfigIssue[], readonly source = "stack config") {
        super(
            `invalid ${source}:\n` +
                issues.map((i) => `  ${i.path}: ${i.message} (got ${i.secret ? "a secret value, not shown" : showValue(i.value)})`).join("\n"),
        );
        this.name = "ConfigError";
    }
}

/** What loading needs from the host; tests pass their own. */
export interface HostContext {
    readonly home: string;
    /** Returns the file's text, or throws with a message saying why it cannot. */
    readonly readFile: (file: string) => string;
    /** `process.platform` of the host running the program; Linux when not given. */
    readonly platform?: string;
}

type Raw = Record<string, unknown>;

const ajv = new Ajv({ allErrors: true, strict: true, useDefaults: false, coerceTypes: true });
for (const [name, f] of Object.entries(formats)) ajv.addFormat(name, { type: "string", validate: f.test });
const validateRaw = ajv.compile(configSchema);

export function showValue(value: unknown): string {
    if (value === undefined) return "nothing";
    const s = JSON.stringify(value) ?? String(value);
    return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

/** `["allowlist","domains",2]` -> `cc-sandbox:allowlist.domains[2]` */
/** The Claude Code version a stack installs unless it pins another (and the one `npm run bake` bakes). */
export const defaultClaudeVersion = "2.1.331";

export function keyPath(segments: readonly (string | number)[]): string {
    let out = namespace;
    segments.forEach((s, i) => {
        if (typeof s === "number") out += `[${s}]`;
        else out += i === 0 ? `:${s}` : `.${s}`;
    });
    return out;
}

function segmentsOf(instancePath: string): (string | number)[] {
    if (instancePath === "") return [];
    return instancePath
        .slice(1)
        .split("/")
        .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
        .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function valueAt(raw: unknown, segments: readonly (string | number)[]): unknown {
    let v: unknown = raw;
    for (const s of segments) {
        if (v === null || typeof v !== "object") return undefined;
        v = (v as Record<string | number, unknown>)[s];
    }
    return v;
}

function issueOf(raw: Raw, e: ErrorObject): ConfigIssue | undefined {
    const segments = segmentsOf(e.instancePath);
    if (e.keyword === "propertyNames") return undefined; // the name's own error says which
    if (e.propertyName !== undefined) {
        // A key that breaks a rule for names (secrets): the name is shown, the value under it is not.
        const f = formats[(e.params as { format?: string }).format ?? ""];
        return { path: keyPath([...segments, e.propertyName]), value: e.propertyName, message: `must be ${f ? f.phrase : "a valid name"}` };
    }
    const issue = plainIssueOf(raw, e, segments);
    return issue && segments[0] === "secrets" ? { ...issue, secret: true } : issue;
}

function plainIssueOf(raw: Raw, e: ErrorObject, segments: (string | number)[]): ConfigIssue | undefined {
    switch (e.keyword) {
        case "if":
            return undefined; // the failing branch reports the real problem
        case "additionalProperties": {
            const key = (e.params as { additionalProperty: string }).additionalProperty;
            const at = [...segments, key];
            return { path: keyPath(at), value: valueAt(raw, at), message: "is not a known key" };
        }
        case "required": {
            const key = (e.params as { missingProperty: string }).missingProperty;
            return { path: keyPath([...segments, key]), value: undefined, message: "is required" };
        }
        case "format": {
            const f = formats[(e.params as { format: string }).format];
            return { path: keyPath(segments), value: valueAt(raw, segments), message: `must be ${f.phrase}` };
        }
        case "enum": {
            const allowed = (e.params as { allowedValues: unknown[] }).allowedValues;
            return {
                path: keyPath(segments),
                value: valueAt(raw, segments),
                message: `must be one of ${allowed.join(", ")}`,
            };
        }
        default:
            return { path: keyPath(segments), value: valueAt(raw, segments), message: e.message ?? "is invalid" };
    }
}

const sizeUnits: Record<string, number> = { K: 1 / 1024, M: 1, G: 1024, T: 1024 * 1024 };
function sizeMiB(size: string): number {
    const m = /^(\d+)([KMGT])/.exec(size)!;
    return Number(m[1]) * sizeUnits[m[2]];
}

function expandHome(p: string, home: string): string {
    if (p === "~") return home;
    if (p.startsWith("~/")) return path.join(home, p.slice(2));
    return path.normalize(p);
}

export function defaultVmName(stack: string): string {
    const s = stack.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "");
    return `cc-${s || "sandbox"}`.slice(0, 40).replace(/-+$/, "");
}

interface DomainEntry { name: string; ports?: (number | string)[] }
interface CidrEntry { cidr: string; ports?: number[] }

/**
 * Folds entries for the same name into one (ports united). A port is given one mode: two modes for
 * one port, in one entry or across entries for the same name, is an issue at the later entry.
 */
function mergeDomains(entries: { e: DomainEntry; source: string; at: string }[], issues: ConfigIssue[]): AllowedDomain[] {
    const byName = new Map<string, AllowedDomain>();
    for (const { e, source, at } of entries) {
        const wildcard = e.name.startsWith("*.");
        const name = wildcard ? e.name.slice(2) : e.name;
        const key = `${wildcard ? "*." : ""}${name}`;
        const prev = byName.get(key);
        const modes: Record<number, PortMode> = { ...(prev?.modes ?? {}) };
        const mine: Record<number, PortMode> = {};
        for (const token of e.ports ?? [443]) {
            const [p, m] = String(token).split("/");
            const port = Number(p);
            const mode = (m as PortMode | undefined) ?? defaultPortMode(port);
            if (!(port >= 1 && port <= 65535)) {
                issues.push({ path: `${at}.ports`, value: token, message: "must be a TCP port (1-65535), optionally followed by /raw, /tls or /http" });
                continue;
            }
            const before = mine[port] ?? modes[port];
            if (before !== undefined && before !== mode) {
                issues.push({ path: `${at}.ports`, value: token, message: `gives port ${port} two modes (${before} and ${mode}) for ${key}` });
                continue;
            }
            mine[port] = mode;
            modes[port] = mode;
        }
        byName.set(key, {
            name,
            wildcard,
            ports: Object.keys(modes).map(Number).sort((a, b) => a - b),
            modes,
            source: prev ? prev.source : source,
        });
    }
    return [...byName.values()].sort((a, b) =>
        a.name === b.name ? Number(a.wildcard) - Number(b.wildcard) : a.name < b.name ? -1 : 1,
    );
}

function mergeCidrs(entries: CidrEntry[]): AllowedCidr[] {
    const byCidr = new Map<string, AllowedCidr>();
    for (const e of entries) {
        const prev = byCidr.get(e.cidr);
        const ports = [...new Set([...(prev?.ports ?? []), ...(e.ports ?? [443])])].sort((a, b) => a - b);
        byCidr.set(e.cidr, { cidr: e.cidr, ports, source: "cidrs" });
    }
    return [...byCidr.values()].sort((a, b) => (a.cidr < b.cidr ? -1 : a.cidr > b.cidr ? 1 : 0));
}

function readSshKeys(raw: Raw, host: HostContext, issues: ConfigIssue[]): { keys: string[]; privateKeyPath: string } {
    const ssh = (raw.ssh ?? {}) as { publicKey?: string; publicKeyPath?: string; privateKeyPath?: string };
    const pubPath = expandHome(ssh.publicKeyPath ?? "~/.ssh/id_ed25519.pub", host.home);
    const privateKeyPath = ssh.privateKeyPath
        ? expandHome(ssh.privateKeyPath, host.home)
        : pubPath.replace(/\.pub$/, "");
    if (ssh.publicKey !== undefined) return { keys: [ssh.publicKey], privateKeyPath };
    const at = keyPath(["ssh", "publicKeyPath"]);
    let text: string;
    try {
        text = host.readFile(pubPath);
    } catch (err) {
        issues.push({
            path: at,
            value: ssh.publicKeyPath ?? pubPath,
            message: `cannot be read (${(err as Error).message}); set cc-sandbox:ssh.publicKey or publicKeyPath, or create a key with ssh-keygen -t ed25519`,
        });
        return { keys: [], privateKeyPath };
    }
    const keys = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
    const bad = keys.filter((k) => !isSshPublicKey(k));
    if (keys.length === 0 || bad.length > 0) {
        issues.push({ path: at, value: bad[0] ?? pubPath, message: `must hold ${formats["ssh-public-key"].phrase}` });
    }
    return { keys, privateKeyPath };
}

/**
 * Validates raw config (namespace prefix already removed) and returns the typed config.
 * Throws ConfigError listing every problem.
 */
export function loadConfig(stack: string, input: Raw, host: HostContext): SandboxConfig {
    // Validation may coerce ("4" -> 4, as `pulumi config set --path` stores strings): work on a copy.
    const raw = structuredClone(input);
    const issues: ConfigIssue[] = [];
    if (!/^[A-Za-z0-9_.-]{1,100}$/.test(stack)) {
        issues.push({ path: "stack name", value: stack, message: "must be letters, digits, '_', '.' and '-'" });
    }
    if (!validateRaw(raw)) {
        for (const e of validateRaw.errors ?? []) {
            const issue = issueOf(raw, e);
            if (issue) issues.push(issue);
        }
        throw new ConfigError(dedupe(issues));
    }
    const r = raw as Raw;
    const vm = (r.vm ?? {}) as Record<string, unknown>;
    const lv = (r.libvirt ?? {}) as Record<string, unknown>;
    const al = (r.allowlist ?? {}) as { presets?: string[]; domains?: (string | DomainEntry)[]; cidrs?: (string | CidrEntry)[] };
    const fw = (r.firewall ?? {}) as Record<string, boolean | undefined>;
    const cl = (r.claude ?? {}) as { install?: boolean; version?: string };
    const git = (r.git ?? {}) as { name?: string; email?: string };
    const so = (r.secureOps ?? {}) as { scripts?: { path: string; args?: string }[] };
    const scriptSeen = new Map<string, number>();
    (so.scripts ?? []).forEach((x, i) => {
        const j = scriptSeen.get(x.path);
        if (j !== undefined) issues.push({ path: keyPath(["secureOps", "scripts", i, "path"]), value: x.path, message: `is already listed as secureOps.scripts[${j}]` });
        scriptSeen.set(x.path, i);
    });

    if (lv.imageSha256 !== undefined && !/^https?:\/\//.test((lv.image as string | undefined) ?? "https://")) {
        issues.push({ path: keyPath(["libvirt", "imageSha256"]), value: lv.imageSha256 as string, message: "pins a downloaded image: libvirt.image is a local path" });
    }

    if (lv.firmware === "uefi" && lv.kernel !== undefined) {
        issues.push({ path: keyPath(["libvirt", "firmware"]), value: "uefi", message: "boots the image's own loader: drop libvirt.kernel, initrd and kernelArgs, or the firmware" });
    }

    const memoryMiB = sizeMiB((vm.memory as string) ?? "8G");
    const diskMiB = sizeMiB((vm.disk as string) ?? "50G");
    if (memoryMiB < 1024) issues.push({ path: keyPath(["vm", "memory"]), value: vm.memory, message: "must be at least 1G" });
    if (diskMiB < 5 * 1024) issues.push({ path: keyPath(["vm", "disk"]), value: vm.disk, message: "must be at least 5G" });

    const users = { agent: "agent", admin: "ubuntu" };
    const rawMounts = (r.mounts as { host: string; guest: string; readOnly?: boolean }[] | undefined) ?? [
        { host: "~/code", guest: `/home/${users.agent}/code` },
    ];
    const mounts: Mount[] = rawMounts.map((m, i) => ({
        host: expandHome(m.host, host.home).replace(/(.)\/+$/, "$1"),
        guest: m.guest.replace(/\/+$/, ""),
        readOnly: m.readOnly ?? false,
        tag: `m${i}-${path.posix.basename(m.guest).replace(/[^a-z0-9]/gi, "").toLowerCase()}`.slice(0, 31),
    }));
    // The multipass snap's confinement (home interface) lets the daemon read only what is under the
    // user's home and not hidden (Multipass's docs/explanation/mount.md): shared folders and images.
    const snapCannotRead = (p: string) => {
        const rel = path.posix.relative(host.home, p);
        return (host.platform ?? "linux") === "linux" && (rel.startsWith("..") || path.posix.isAbsolute(rel) || rel.split("/").some((x) => x.startsWith(".")));
    };
    if ((r.hypervisor ?? "multipass") === "multipass") {
        const image = vm.image as string | undefined;
        if (image?.startsWith("file://") && snapCannotRead(image.slice("file://".length))) {
            issues.push({
                path: keyPath(["vm", "image"]),
                value: image,
                message: `must be a file under your home (${host.home}) with no hidden part: Multipass on Linux reads nothing else`,
            });
        }
        rawMounts.forEach((m, i) => {
            if (snapCannotRead(mounts[i].host)) {
                issues.push({
                    path: keyPath(["mounts", i, "host"]),
                    value: m.host,
                    message: `must be a folder under your home (${host.home}) with no hidden part: Multipass on Linux shares nothing else`,
                });
            }
            if (m.readOnly) {
                issues.push({
                    path: keyPath(["mounts", i, "readOnly"]),
                    value: true,
                    message: "is not supported by Multipass mounts; use hypervisor libvirt or drop readOnly",
                });
            }
        });
    }
    const seen = new Map<string, number>();
    mounts.forEach((m, i) => {
        const j = seen.get(m.guest);
        if (j !== undefined) {
            issues.push({ path: keyPath(["mounts", i, "guest"]), value: m.guest, message: `is already mounted by mounts[${j}]` });
        }
        seen.set(m.guest, i);
    });

    const presetList = al.presets ?? ["anthropic", "github", "npm"];
    const domainEntries = [
        ...presetList.flatMap((p) =>
            presets[p].map((e) => ({ e: { name: e.name, ports: e.ports ? [...e.ports] : undefined }, source: p, at: keyPath(["allowlist", "presets"]) })),
        ),
        ...(al.domains ?? []).map((d, i) => ({ e: typeof d === "string" ? { name: d } : d, source: "domains", at: keyPath(["allowlist", "domains", i]) })),
    ];
    const domains = mergeDomains(domainEntries, issues);
    const cidrEntries = (al.cidrs ?? []).map((c) => (typeof c === "string" ? { cidr: c } : c));

    const { keys, privateKeyPath } = readSshKeys(r, host, issues);
    if (issues.length > 0) throw new ConfigError(dedupe(issues));

    return {
        stack,
        hypervisor: (r.hypervisor as "multipass" | "libvirt") ?? "multipass",
        vm: {
            name: (vm.name as string) ?? defaultVmName(stack),
            cpus: (vm.cpus as number) ?? 4,
            memoryMiB,
            diskGiB: Math.ceil(diskMiB / 1024),
            image: (vm.image as string) ?? "24.04",
            timeoutSeconds: (vm.timeout as number) ?? 1800,
        },
        libvirt: {
            uri: (lv.uri as string) ?? "qemu:///system",
            image:
                (lv.image as string) ??
                "https://cloud-images.ubuntu.com/releases/24.04/release/ubuntu-24.04-server-cloudimg-amd64.img",
            ...(lv.imageSha256 ? { imageSha256: lv.imageSha256 as string } : {}),
            network: (lv.network as string) ?? "default",
            osVariant: (lv.osVariant as string) ?? "ubuntu24.04",
            filesystem: (lv.filesystem as "virtiofs" | "9p") ?? "virtiofs",
            storageDir: (lv.storageDir as string) ?? "/var/lib/libvirt/images",
            machine: (lv.machine as string) ?? "q35",
            virtType: (lv.virtType as "kvm" | "qemu") ?? "kvm",
            firmware: (lv.firmware as "bios" | "uefi") ?? "bios",
            ...(lv.kernel
                ? { boot: { kernel: lv.kernel as string, initrd: lv.initrd as string, args: lv.kernelArgs as string } }
                : {}),
        },
        mounts,
        sshAuthorizedKeys: keys,
        sshPrivateKeyPath: privateKeyPath,
        git: { name: git.name ?? "", email: git.email ?? "" },
        users,
        allowlist: {
            presets: presetList,
            domains,
            cidrs: mergeCidrs(cidrEntries),
        },
        firewall: {
            enabled: fw.enabled ?? true,
            githubMeta: fw.githubMeta ?? false,
            logDenied: fw.logDenied ?? true,
        },
        claude: { install: cl.install ?? true, version: cl.version ?? defaultClaudeVersion },
        secureOps: { scripts: (so.scripts ?? []).map((x) => (x.args === undefined ? { path: x.path } : { path: x.path, args: x.args })) },
        secretNames: Object.keys((r.secrets ?? {}) as Raw).sort(),
    };
}

function dedupe(issues: ConfigIssue[]): ConfigIssue[] {
    const seen = new Set<string>();
    return issues.filter((i) => {
        const k = `${i.path}\0${i.message}`;
        if (seen.has(k)) return false;
        seen.add(k);
        return true;
    });
}

/** The `cc-sandbox:` keys of a stack file's `config:` block, prefix removed. */
export function rawConfigFromStackFile(text: string, file: string): Raw {
    let doc: unknown;
    try {
        doc = parseYaml(text);
    } catch (err) {
        throw new ConfigError([{ path: file, value: undefined, message: `is not valid YAML: ${(err as Error).message}` }], file);
    }
    const config = (doc as { config?: unknown } | null)?.config ?? {};
    if (typeof config !== "object" || config === null || Array.isArray(config)) {
        throw new ConfigError([{ path: `${file}: config`, value: config, message: "must be a mapping" }], file);
    }
    return stripNamespace(config as Raw);
}

/** Pulumi's `allConfig()` map (values JSON-encoded when structured) -> raw config. */
export function rawConfigFromPulumi(all: Record<string, string>): Raw {
    const decoded: Raw = {};
    for (const [k, v] of Object.entries(all)) {
        let value: unknown = v;
        if (/^[[{]/.test(v)) {
            try {
                value = JSON.parse(v);
            } catch {
                value = v;
            }
        }
        decoded[k] = value;
    }
    return stripNamespace(decoded);
}

function stripNamespace(config: Raw): Raw {
    const out: Raw = {};
    for (const [k, v] of Object.entries(config)) {
        if (k.startsWith(`${namespace}:`)) out[k.slice(namespace.length + 1)] = v;
    }
    return out;
}

/**
 * Host folders the config shares that do not exist on this host: known before anything is created
 * (Multipass refuses the mount only after the VM is up). A remote libvirt host's folders are its own.
 */
export function missingHostFolders(c: SandboxConfig, isDirectory: (p: string) => boolean): ConfigIssue[] {
    if (c.hypervisor === "libvirt" && !/^qemu:\/\/\/|^qemu\+unix:/.test(c.libvirt.uri)) return [];
    return c.mounts.flatMap((m, i) =>
        isDirectory(m.host) ? [] : [{ path: keyPath(["mounts", i, "host"]), value: m.host, message: "is not a folder on this host: create it first" }],
    );
}
