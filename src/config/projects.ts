/**
 * Projects: each a worker user in the guest, `cc-NAME`, whose uid is derived from its name alone,
 * in a range no other guest user takes (useradd gives regular users 1000-59999 from the bottom;
 * cloud-init's two are 1000 and 1001). Two names that land on one uid are an issue naming the later.
 */
import { createHash } from "crypto";
import * as path from "path";
import { resolveAllowlist, unionAllowlists } from "./allowlist";
import { defaults } from "./defaults";
import { expandHome, HostContext, hostFolder, isLocalLibvirt, mountsOf, pathsOverlap, snapCannotRead } from "./host";
import { ConfigIssue, keyPath } from "./issues";
import type { RawConfig } from "./schema";
import { dropEntries, entryName, readRepoSettings } from "./repo-settings";
import { AllowedCidr, AllowedDomain, Project } from "./types";

export const projectUidBase = 20000;
/** What a project with `network: none` may reach: what Claude Code itself needs. */
export const claudeCodePresets = ["anthropic"] as const;
export const projectUidSlots = 10000;

/** The worker's uid (and its group's gid): 20000-29999, from the SHA-256 of the name. */
export function projectUid(name: string): number {
    return projectUidBase + (createHash("sha256").update(name).digest().readUInt32BE(0) % projectUidSlots);
}

export function projectsOf(
    raw: RawConfig,
    issues: ConfigIssue[],
    host: HostContext,
    stack: { readonly domains: readonly AllowedDomain[]; readonly cidrs: readonly AllowedCidr[] } = { domains: [], cidrs: [] },
): Project[] {
    const byName = new Map<string, number>();
    const byUid = new Map<number, number>();
    const out: Project[] = [];
    (raw.projects ?? []).forEach((p, i) => {
        const at = keyPath(["projects", i, "name"]);
        const uid = projectUid(p.name);
        const sameName = byName.get(p.name);
        const sameUid = byUid.get(uid);
        if (sameName !== undefined) {
            issues.push({ path: at, value: p.name, message: `is already the name of projects[${sameName}]` });
        } else if (sameUid !== undefined) {
            issues.push({ path: at, value: p.name, message: `gives its worker the uid ${uid}, as projects[${sameUid}] (${out[sameUid].name}) does: choose another name` });
        }
        byName.set(p.name, i);
        byUid.set(uid, i);
        const own = p.allowlist;
        if (p.network === "none" && own !== undefined && ((own.presets ?? []).length > 0 || (own.domains ?? []).length > 0 || (own.cidrs ?? []).length > 0)) {
            issues.push({ path: keyPath(["projects", i, "allowlist"]), value: own, message: "must be empty when network is none (its worker reaches only what Claude Code itself needs)" });
        }
        const folder = (x: string | undefined) => (x !== undefined ? hostFolder(x, host.home) : undefined);
        const clone = folder(p.clone);
        const mount = folder(p.mount);
        if (clone !== undefined && mount !== undefined) {
            issues.push({ path: keyPath(["projects", i, "mount"]), value: p.mount, message: "cannot be given with clone: a project's code comes one way, shared (mount) or cloned (clone)" });
        } else if (mount !== undefined) {
            mountIssues(raw, i, p.mount!, mount, host).forEach((x) => issues.push(x));
        }
        // The repository's own settings narrow what the stack config gives (src/config/repo-settings.ts).
        const narrowed = clone !== undefined || mount !== undefined ? readRepoSettings((clone ?? mount)!, issues) : undefined;
        if (mount !== undefined && clone === undefined && narrowed?.cloneOnly === true) {
            // Never made a clone of it here: the worker can write the folder's file, and packing a
            // clone runs this machine's git in what the worker shaped. The stack config decides.
            issues.push({
                path: `${narrowed.file}: handover`,
                value: "clone",
                message: `asks never to be shared, and projects[${i}] shares it (mount): give the project clone in the stack config, or take the line out`,
            });
        }
        // The stack config's network over the repository's over the default.
        let network = p.network ?? narrowed?.network ?? "allowlist";
        const alAt = ["projects", i, "allowlist"];
        const claudeCode = resolveAllowlist({ presets: [...claudeCodePresets] }, issues, alAt);
        let allowlist = p.network === "none" ? claudeCode : resolveAllowlist(own, issues, alAt, []);
        if (p.network === undefined && narrowed?.network === "none") {
            // The repository's none takes from what the stack gives, never adds: Claude Code's own
            // names as far as the stack's and the project's entries hold them.
            const claude = new Set(claudeCode.domains.map(entryName));
            allowlist = { domains: unionAllowlists(stack, allowlist, issues, alAt).domains.filter((d) => claude.has(entryName(d))), cidrs: [] };
        }
        if (narrowed !== undefined && narrowed.drop.length > 0) {
            // Entries dropped from what the worker would get, the stack's included: its list is then
            // a list of its own, and the stack's is not applied to it (the plan's `none`).
            allowlist = dropEntries(network === "none" ? allowlist : unionAllowlists(stack, allowlist, issues, alAt), narrowed, issues);
            network = "none";
        }
        out.push({
            name: p.name,
            user: `cc-${p.name}`,
            uid,
            ...(p.setup !== undefined ? { setup: p.setup } : {}),
            ...(p.cleanup !== undefined ? { cleanup: p.cleanup } : {}),
            network,
            ...(clone !== undefined ? { clone } : mount !== undefined ? { mount } : {}),
            ...(narrowed !== undefined ? { narrowedBy: narrowed.file } : {}),
            // The stack's true over the repository's false over the default, false.
            containers: p.containers === true && narrowed?.noContainers !== true,
            allowlist,
            secureOps: { scripts: (p.secureOps?.scripts ?? []).map((x) => (x.args === undefined ? { path: x.path } : { path: x.path, args: x.args })) },
            secretNames: Object.keys(p.secrets ?? {}).sort(),
        });
    });
    return out;
}

/** The virtiofs tag of a project's share: what the guest mounts it by. */
export const projectMountTag = (name: string): string => `p-${name}`;

/** Where a hypervisor that mounts a folder itself (Multipass) puts a project's: root's alone, bound in place by the guest. */
export const projectStage = (name: string): string => `/srv/cc-projects/.host/${name}`;

/** What the guest knows a staged project's folder by (never its path): whether a folder mounted again is the one it had. */
export const folderHash = (folder: string): string => createHash("sha256").update(folder).digest("hex").slice(0, 16);

/**
 * A project's shared folder is added to the running VM (libvirt's virtiofs, which alone of libvirt's
 * can be added live; Multipass's classic mount), and shares no file with the stack's shares or
 * another project's folder: what one user may write, another must not reach through a second share.
 */
function mountIssues(raw: RawConfig, i: number, given: string, mount: string, host: HostContext): ConfigIssue[] {
    const at = keyPath(["projects", i, "mount"]);
    const out: ConfigIssue[] = [];
    const hypervisor = raw.hypervisor ?? defaults.hypervisor;
    if (hypervisor === "multipass") {
        if (snapCannotRead(mount, host)) {
            out.push({ path: at, value: given, message: `must be a folder under your home (${host.home}) with no hidden part: Multipass on Linux shares nothing else` });
        }
        // Multipass maps the uid that runs pulumi up to the worker's: root's files would be the worker's.
        if (host.uid === 0) out.push({ path: at, value: given, message: "is shared with Multipass as the user running pulumi up, here root: run it as the folder's owner" });
    } else if ((raw.libvirt?.filesystem ?? defaults.libvirt.filesystem) !== "virtiofs") {
        out.push({ path: at, value: given, message: "needs libvirt.filesystem virtiofs: a 9p share cannot be added to a running VM" });
    } else if (!isLocalLibvirt(raw.libvirt?.uri ?? defaults.libvirt.uri)) {
        out.push({ path: at, value: given, message: "is available with a libvirt on this machine only: the folder's .cc-sandbox.yaml is read here (a remote host's project: use clone)" });
    }
    if (mount === "/" || mount === host.home) out.push({ path: at, value: given, message: "must be a folder of the project's own, not / or your home" });
    // What this machine runs or keeps secret: the worker would write it.
    const publicKey = expandHome(raw.ssh?.publicKeyPath ?? defaults.sshPublicKeyPath, host.home);
    const own: { label: string; folder: string }[] = [
        ...[".ssh", ".pulumi", ".config", ".gnupg", ".aws", ".kube", ".docker", ".local", "bin", "Library"].map((d) => ({ label: `~/${d}`, folder: path.join(host.home, d) })),
        // The admin's key (root in the VM), wherever the stack keeps it.
        { label: "ssh.publicKeyPath", folder: publicKey },
        { label: "ssh.privateKeyPath", folder: raw.ssh?.privateKeyPath ? expandHome(raw.ssh.privateKeyPath, host.home) : publicKey.replace(/\.pub$/, "") },
        { label: "this program's folder", folder: path.resolve(__dirname, "..", "..") },
        { label: "libvirt.storageDir (the VMs' disks)", folder: raw.libvirt?.storageDir ?? defaults.libvirt.storageDir },
    ];
    for (const o of own) {
        if (pathsOverlap(mount, o.folder)) out.push({ path: at, value: given, message: `overlaps ${o.label} (${o.folder}): the worker would write what this machine runs or keeps` });
    }
    const others: { label: string; folder: string }[] = [
        ...mountsOf(raw, host).map((m, j) => ({ label: `mounts[${j}].host`, folder: m.host })),
        ...(raw.projects ?? []).flatMap((q, j) =>
            j === i
                ? []
                : [q.mount !== undefined ? { label: `projects[${j}].mount`, folder: q.mount } : undefined, q.clone !== undefined ? { label: `projects[${j}].clone`, folder: q.clone } : undefined]
                      .filter((x): x is { label: string; folder: string } => x !== undefined)
                      .map((x) => ({ ...x, folder: hostFolder(x.folder, host.home) })),
        ),
    ];
    for (const o of others) {
        if (pathsOverlap(mount, o.folder)) {
            out.push({ path: at, value: given, message: `overlaps ${o.label} (${o.folder}): a project's shared folder must hold no file another share or project reaches` });
        }
    }
    return out;
}

/**
 * What `cc-sandbox-project add NAME UID -` reads on stdin: each hook base64-encoded on a line of its
 * own (`setup B64`, `cleanup B64`), so no character of a hook ever reaches a shell on the way,
 * `clone yes` when the worker's code comes from the host (the host's path stays on the host),
 * `mount TAG` when it is a host folder shared into the VM under that tag (`mount TAG staged HASH`
 * when the hypervisor mounts it itself, at projectStage; HASH its folderHash), and `containers yes`
 * when the worker may run rootless containers.
 */
export function projectSpec(p: Partial<Project>, staged = false): string {
    const line = (k: string, v: string | undefined) => (v === undefined ? "" : `${k} ${Buffer.from(v, "utf8").toString("base64")}\n`);
    return (
        line("setup", p.setup) +
        line("cleanup", p.cleanup) +
        (p.clone !== undefined ? "clone yes\n" : "") +
        (p.mount !== undefined && p.name !== undefined ? `mount ${projectMountTag(p.name)}${staged ? ` staged ${folderHash(p.mount)}` : ""}\n` : "") +
        (p.containers === true ? "containers yes\n" : "")
    );
}

/**
 * The resolver puts every answer under a name into that name's sets once a wildcard covers it, its
 * subdomains' too: a wildcard of one owner (the stack, a project) over another owner's plain name
 * with raw ports would open those ports on every subdomain to that other owner's users (the
 * stack's: everyone), unless that owner's own wildcard already covers the name. Each such pair is
 * an issue at the project's entry.
 */
export function crossOwnerIssues(stack: readonly AllowedDomain[], projects: readonly Project[]): ConfigIssue[] {
    const owners = [{ label: "the stack", domains: stack, at: undefined as number | undefined }, ...projects.map((p, i) => ({ label: `project ${p.name}`, domains: p.allowlist.domains, at: i }))];
    const under = (name: string, wild: string) => name === wild || name.endsWith(`.${wild}`);
    const issues: ConfigIssue[] = [];
    for (const a of owners) {
        for (const plain of a.domains.filter((d) => !d.wildcard)) {
            const raw = plain.ports.filter((port) => plain.modes[port] === "raw");
            if (raw.length === 0) continue;
            // Its owner's own wildcard over it already makes its subdomains resolve into its sets:
            // another owner's adds nothing (a narrowed project holds copies of the stack's entries).
            if (a.domains.some((d) => d.wildcard && under(plain.name, d.name))) continue;
            for (const b of owners) {
                if (b === a) continue;
                for (const wild of b.domains.filter((d) => d.wildcard && under(plain.name, d.name))) {
                    const at = b.at ?? a.at!;
                    const entry = b.at !== undefined ? `*.${wild.name}` : plain.name;
                    issues.push({
                        path: keyPath(["projects", at, "allowlist", "domains"]),
                        value: entry,
                        message: `*.${wild.name} (${b.label}) covers ${plain.name}, which ${a.label} allows on raw port ${raw.join(", ")}: the resolver would open those ports on every name under ${plain.name} as well; allow the names you need one by one instead`,
                    });
                }
            }
        }
    }
    return issues;
}
