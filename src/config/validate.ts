import * as fs from "fs";
import * as path from "path";
/**
 * Judging raw config: the schema first (every error at once, Ajv's wording turned into "KEY: must
 * be ..."), then the rules that span several keys or need the host. Nothing here fills a default.
 */
import Ajv, { ErrorObject } from "ajv";
import { defaults, sizeMiB } from "./defaults";
import { HostContext, isLocalLibvirt, mountsOf, pathInside, pathsOverlap, rawMounts, snapCannotRead } from "./host";
import { ConfigIssue, keyPath } from "./issues";
import { configSchema, formats, RawConfig } from "./schema";
import { Raw } from "./sources";
import { SandboxConfig } from "./types";

const ajv = new Ajv({ allErrors: true, strict: true, useDefaults: false, coerceTypes: true });
for (const [name, f] of Object.entries(formats)) ajv.addFormat(name, { type: "string", validate: f.test });
const validateRaw = ajv.compile<RawConfig>(configSchema);

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
    const secret = segments[0] === "secrets" || (segments[0] === "projects" && segments[2] === "secrets");
    return issue && secret ? { ...issue, secret: true } : issue;
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
            return { path: keyPath(segments), value: valueAt(raw, segments), message: `must be one of ${allowed.join(", ")}` };
        }
        default:
            return { path: keyPath(segments), value: valueAt(raw, segments), message: e.message ?? "is invalid" };
    }
}

/** A stack's name goes into file and VM names: letters, digits, '_', '.' and '-'. */
export function stackNameIssues(stack: string): ConfigIssue[] {
    return /^[A-Za-z0-9_.-]{1,100}$/.test(stack) ? [] : [{ path: "stack name", value: stack, message: "must be letters, digits, '_', '.' and '-'" }];
}

/**
 * The raw config held to the schema, as a typed copy (values given as strings, as `pulumi config
 * set --path` stores them, coerced), or undefined with every problem added to ISSUES.
 */
export function validateSchema(input: Raw, issues: ConfigIssue[]): RawConfig | undefined {
    const raw = structuredClone(input);
    if (validateRaw(raw)) return raw;
    for (const e of validateRaw.errors ?? []) {
        const issue = issueOf(raw, e);
        if (issue) issues.push(issue);
    }
    return undefined;
}

/** The rules no schema can say: keys that exclude each other, sizes, what the host can share. */
export function crossFieldIssues(raw: RawConfig, host: HostContext): ConfigIssue[] {
    const issues: ConfigIssue[] = [];
    const vm = raw.vm ?? {};
    const lv = raw.libvirt ?? {};
    // A script listed twice in one bridge's list: the stack's, or a project's.
    const scriptsOnce = (scripts: readonly { path: string }[], at: (string | number)[]) => {
        const seen = new Map<string, number>();
        scripts.forEach((x, i) => {
            const j = seen.get(x.path);
            if (j !== undefined) issues.push({ path: keyPath([...at, i, "path"]), value: x.path, message: `is already listed as ${keyPath([...at, j]).replace(/^[^:]*:/, "")}` });
            seen.set(x.path, i);
        });
    };
    scriptsOnce(raw.secureOps?.scripts ?? [], ["secureOps", "scripts"]);
    (raw.projects ?? []).forEach((p, i) => scriptsOnce(p.secureOps?.scripts ?? [], ["projects", i, "secureOps", "scripts"]));
    if (lv.imageSha256 !== undefined && !/^https?:\/\//.test(lv.image ?? defaults.libvirt.image)) {
        issues.push({ path: keyPath(["libvirt", "imageSha256"]), value: lv.imageSha256, message: "pins a downloaded image: libvirt.image is a local path" });
    }
    // A remote host's sshd is the guests' jump host: its user, name, port and key file go into a
    // ProxyCommand and ssh's own parsing, so they are held to plain characters.
    if (lv.uri !== undefined && /^[a-z0-9]+\+(?:ssh|libssh2|libssh):/.test(lv.uri)) {
        const m = /^[a-z0-9+]+:\/\/(?:[A-Za-z0-9_][A-Za-z0-9._-]*@)?[A-Za-z0-9_][A-Za-z0-9._-]*(?::([0-9]{1,5}))?(?:\/[^?]*)?(?:\?(.*))?$/.exec(lv.uri);
        const params = new URLSearchParams(m?.[2] ?? "");
        const keyfile = params.get("keyfile");
        // libvirt also takes parameters that run a program of the stack file's choosing (command,
        // netcat) or skip the host-key check (no_verify): only these are let through.
        const foreign = [...params.keys()].filter((k) => !["keyfile", "no_tty", "sshauth", "mode", "socket"].includes(k));
        if (!m || Number(m[1] ?? 22) < 1 || Number(m[1] ?? 22) > 65535) {
            issues.push({ path: keyPath(["libvirt", "uri"]), value: lv.uri, message: "must name its SSH host as [user@]host[:port], of letters, digits, '.', '_' and '-' (not starting with '-'; a port 1-65535; no IPv6 address)" });
        } else if (keyfile !== null && !formats["key-path"].test(keyfile)) {
            issues.push({ path: keyPath(["libvirt", "uri"]), value: lv.uri, message: `names a keyfile that must be ${formats["key-path"].phrase}` });
        } else if (foreign.length > 0) {
            issues.push({ path: keyPath(["libvirt", "uri"]), value: lv.uri, message: `has parameters libvirt would act on unchecked (${foreign.join(", ")}): only keyfile, no_tty, sshauth, mode and socket are taken` });
        }
    } else if (lv.uri !== undefined && /^[a-z0-9+]+:\/\/[^/]/.test(lv.uri)) {
        // A host reached otherwise (tls, tcp, plain): its guests would be unreachable, and the disks,
        // seed and image would be made on this machine.
        issues.push({ path: keyPath(["libvirt", "uri"]), value: lv.uri, message: "names a remote host by a transport other than SSH: use qemu+ssh:// (or +libssh2, +libssh), through which the VM is reached" });
    }
    // Compared as written with the pools' paths on the host: one spelling per directory.
    const dir = lv.storageDir;
    if (dir !== undefined && (path.posix.normalize(dir) !== dir || (dir.length > 1 && dir.endsWith("/")))) {
        issues.push({ path: keyPath(["libvirt", "storageDir"]), value: dir, message: `must be written plainly, as ${path.posix.normalize(dir).replace(/(.)\/$/, "$1")} (no '.', '..', '//' or trailing '/')` });
    }
    if (lv.firmware === "uefi" && lv.kernel !== undefined) {
        issues.push({ path: keyPath(["libvirt", "firmware"]), value: "uefi", message: "boots the image's own loader: drop libvirt.kernel, initrd and kernelArgs, or the firmware" });
    }
    if (sizeMiB(vm.memory ?? defaults.vm.memory) < 1024) issues.push({ path: keyPath(["vm", "memory"]), value: vm.memory, message: "must be at least 1G" });
    if (sizeMiB(vm.disk ?? defaults.vm.disk) < 5 * 1024) issues.push({ path: keyPath(["vm", "disk"]), value: vm.disk, message: "must be at least 5G" });

    const given = rawMounts(raw);
    const mounts = mountsOf(raw, host);
    if ((raw.hypervisor ?? defaults.hypervisor) === "multipass") {
        const image = vm.image;
        if (image?.startsWith("file://") && snapCannotRead(image.slice("file://".length), host)) {
            issues.push({
                path: keyPath(["vm", "image"]),
                value: image,
                message: `must be a file under your home (${host.home}) with no hidden part: Multipass on Linux reads nothing else`,
            });
        }
        given.forEach((m, i) => {
            if (snapCannotRead(mounts[i].host, host)) {
                issues.push({
                    path: keyPath(["mounts", i, "host"]),
                    value: m.host,
                    message: `must be a folder under your home (${host.home}) with no hidden part: Multipass on Linux shares nothing else`,
                });
            }
            if (m.readOnly) {
                issues.push({ path: keyPath(["mounts", i, "readOnly"]), value: true, message: "is not supported by Multipass mounts; use hypervisor libvirt or drop readOnly" });
            }
        });
    }
    // A share mounted over the guest's own system, or where the projects' shared folders live
    // (/srv/cc-projects, which root walks and writes in), would hand the agent what root trusts.
    const system = ["/etc", "/usr", "/var", "/boot", "/proc", "/sys", "/dev", "/run", "/root", "/bin", "/sbin", "/lib", "/lib64", "/snap", "/srv/cc-projects"];
    mounts.forEach((m, i) => {
        const guest = m.guest === "" ? "/" : m.guest;
        if (["/", "/home", "/srv", "/tmp"].includes(guest) || system.some((d) => pathInside(guest, d))) {
            issues.push({ path: keyPath(["mounts", i, "guest"]), value: given[i].guest, message: "must be a folder of its own (such as /home/agent/code), not one of the guest's system folders or /srv/cc-projects" });
        }
    });
    const seen = new Map<string, number>();
    mounts.forEach((m, i) => {
        const j = seen.get(m.guest);
        if (j !== undefined) issues.push({ path: keyPath(["mounts", i, "guest"]), value: m.guest, message: `is already mounted by mounts[${j}]` });
        seen.set(m.guest, i);
    });
    return issues;
}

/**
 * Host folders the config shares that do not exist on this host: known before anything is created
 * (Multipass refuses the mount only after the VM is up). A remote libvirt host's folders are its own.
 */
export function missingHostFolders(
    c: SandboxConfig,
    isDirectory: (p: string) => boolean,
    exists: (p: string) => boolean = fs.existsSync,
    realpath: (p: string) => string = (p) => fs.realpathSync(p),
): ConfigIssue[] {
    // A project's repository is read here, by the program, whichever host runs the VM; from its top
    // (where its .cc-sandbox.yaml is).
    const clones = c.projects.flatMap((p, i) =>
        p.clone === undefined
            ? []
            : !isDirectory(p.clone)
              ? [{ path: keyPath(["projects", i, "clone"]), value: p.clone, message: "is not a folder on this host: a project's clone is a repository here" }]
              : !exists(path.join(p.clone, ".git"))
                ? [{ path: keyPath(["projects", i, "clone"]), value: p.clone, message: "is not the top of a git repository (it has no .git): name the repository's top folder" }]
                : [],
    );
    if (c.hypervisor === "libvirt" && !isLocalLibvirt(c.libvirt.uri)) return clones;
    // A project's shared folder is named by its own path: not through a link, which whoever can
    // write where it lies could point elsewhere (a link in another share, to ~/.ssh).
    const projectMounts = c.projects.flatMap((p, i) =>
        p.mount === undefined
            ? []
            : !isDirectory(p.mount)
              ? [{ path: keyPath(["projects", i, "mount"]), value: p.mount, message: "is not a folder on this host: create it first" }]
              : realpath(p.mount) !== p.mount
                ? [{ path: keyPath(["projects", i, "mount"]), value: p.mount, message: `goes through a symbolic link (it is ${realpath(p.mount)}): name the folder itself` }]
                : [],
    );
    // Folders compared as they are, links resolved: a project's folder shares no file with a stack
    // share, a clone or another project's folder reached through a link.
    const real = (p: string) => {
        try {
            return realpath(p);
        } catch {
            return p;
        }
    };
    const folders = [
        ...c.mounts.map((m, j) => ({ label: `mounts[${j}].host`, written: m.host, project: -1 })),
        ...c.projects.flatMap((p, j) => [
            ...(p.clone !== undefined ? [{ label: `projects[${j}].clone`, written: p.clone, project: j }] : []),
            ...(p.mount !== undefined ? [{ label: `projects[${j}].mount`, written: p.mount, project: j }] : []),
        ]),
    ].map((f) => ({ ...f, folder: real(f.written) }));
    const overlaps = c.projects.flatMap((p, i) => {
        if (p.mount === undefined || !isDirectory(p.mount)) return [];
        const mine = real(p.mount);
        return folders
            // (what overlaps as written is already an issue of loading's)
            .filter((o) => o.project !== i && pathsOverlap(mine, o.folder) && !pathsOverlap(p.mount!, o.written))
            .map((o) => ({
                path: keyPath(["projects", i, "mount"]),
                value: p.mount,
                message: `is ${mine}, which overlaps ${o.label} (${o.folder}): a project's shared folder must hold no file another share or project reaches`,
            }));
    });
    return [
        ...c.mounts.flatMap((m, i) =>
            isDirectory(m.host) ? [] : [{ path: keyPath(["mounts", i, "host"]), value: m.host, message: "is not a folder on this host: create it first" }],
        ),
        ...clones,
        ...projectMounts,
        ...overlaps,
    ];
}
