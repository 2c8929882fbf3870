/**
 * SandboxConfig + guest templates -> the guest file tree and the cloud-init documents that carry it.
 * Pure and deterministic: the same config and templates always give byte-identical output.
 */
import { createHash } from "crypto";
import { gzipSync } from "zlib";
import Handlebars from "handlebars";
import { stringify } from "yaml";
import { agentUid } from "../config/defaults";
import { SandboxConfig } from "../config/types";
import { bakedCheck, bakedFiles, bakedId } from "./baked";
import { TemplateSet } from "./templates";
import { guestView } from "./view";

export { claudePackages, guestPackages } from "./packages";

export interface GuestFile {
    readonly path: string;
    readonly content: string;
    readonly mode: string;
    readonly owner: string;
}

export interface RenderedGuest {
    readonly files: readonly GuestFile[];
    /** The `#cloud-config` document. */
    readonly userData: string;
    readonly metaData: string;
    /** The allowlist file's content: what an in-place allowlist update pushes. */
    readonly allowlist: string;
    /** The credential bridge's script list: pushed in place like the allowlist. */
    readonly secureOps: string;
    /** Each project's own bridge's script list (the same file's format), for the projects that have a bridge. */
    readonly projectSecureOps: Readonly<Record<string, string>>;
    /**
     * Hash of everything first boot installs except the allowlist and the bridge's script list. A
     * change here needs a new VM; a change to those two alone is applied in place.
     */
    readonly firstBootHash: string;
}

export const allowlistPath = "/etc/cc-sandbox/allowlist";
export const secureOpsPath = "/etc/cc-sandbox/secure-ops.conf";
export const bootRunner = "/usr/local/lib/cc-sandbox/boot";
export const agentShell = "/usr/local/lib/cc-sandbox/agent-shell";

const hbs = Handlebars.create();
hbs.registerHelper("json", (v: unknown) => JSON.stringify(v));
hbs.registerHelper("shq", (v: unknown) => `'${String(v).replace(/'/g, `'\\''`)}'`);
hbs.registerHelper("joinMounts", (mounts: { guest: string }[]) => mounts.map((m) => m.guest).join(" "));
hbs.registerHelper("join", (words: readonly string[]) => words.join(" "));

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

/** The agent's Claude Code settings, and root's copy a project's new worker starts from. */
export const agentClaudeSettings = "/home/agent/.claude/settings.json";
export const workerClaudeSettings = "/usr/local/lib/cc-sandbox/claude-settings.json";

export function renderFiles(config: SandboxConfig, templates: TemplateSet): GuestFile[] {
    const view = guestView(config);
    const files = templates.files.map((t) => ({
        path: t.guestPath,
        content: t.isTemplate ? hbs.compile(t.source, { noEscape: true, strict: true })(view) : t.source,
        mode: t.mode,
        owner: t.owner,
    }));
    // Never copied from the agent's home: the agent can write there (hooks in its settings would
    // then run as every worker).
    const agentSettings = files.find((f) => f.path === agentClaudeSettings);
    if (agentSettings) files.push({ path: workerClaudeSettings, content: agentSettings.content, mode: "0644", owner: "root:root" });
    return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** A project has a bridge of its own when it lists scripts or secrets. */
export const hasBridge = (p: { secureOps: { scripts: readonly unknown[] }; secretNames: readonly string[] }) => p.secureOps.scripts.length > 0 || p.secretNames.length > 0;

/** Each project's bridge's script list, from the stack's bridge's template with the project's scripts. */
function renderProjectSecureOps(config: SandboxConfig, templates: TemplateSet): Record<string, string> {
    const t = templates.files.find((f) => f.guestPath === secureOpsPath);
    if (t === undefined) throw new Error(`the guest templates have no ${secureOpsPath}`);
    const render = hbs.compile(t.source, { noEscape: true, strict: true });
    return Object.fromEntries(
        config.projects.filter(hasBridge).map((p) => [p.name, render({ secureOps: { scripts: p.secureOps.scripts.map((x) => ({ ...x })) } })]),
    );
}

/**
 * /etc/fstab lines for drivers that share folders through virtio (libvirt). Appended by write_files
 * and mounted by first boot's 12-mounts.sh, not by cloud-init's mounts module: that one has systemd
 * reload every unit to mount them (3-7 s on an emulated VM). Later boots mount them from fstab.
 */
function guestFstab(config: SandboxConfig): string[] {
    if (config.hypervisor !== "libvirt") return [];
    return config.mounts.map((m) => {
        const ro = m.readOnly ? ",ro" : "";
        return config.libvirt.filesystem === "virtiofs"
            ? `${m.tag} ${m.guest} virtiofs defaults,nofail${ro} 0 0`
            : `${m.tag} ${m.guest} 9p trans=virtio,version=9p2000.L,msize=262144,nofail${ro} 0 0`;
    });
}

/**
 * A write_files entry's content: gzipped and base64-encoded (cloud-init's `gz+b64`) where that is
 * shorter. cloud-init parses the cloud-config (YAML, in Python) three times in its network stage on
 * first boot, and reads it again as each later stage starts: with the guest's scripts as text (300
 * KB) each parse took about 3 s on an emulated VM. Packed, the document is less than half the size,
 * and its long base64 scalars parse faster than as many lines of text.
 */
function fileContent(content: string, packed: boolean): { content: string; encoding?: string } {
    if (!packed) return { content };
    const gz = gzipSync(Buffer.from(content, "utf8"), { level: 9 }).toString("base64");
    return gz.length < content.length ? { content: gz, encoding: "gz+b64" } : { content };
}

/** What the stack's base image already holds: the id of its baked guest files (image.json's `guestFiles`). */
export interface BaseImage {
    readonly bakedFiles?: string;
}

/**
 * IMAGE: what the base image holds. When it carries this very set of guest files (src/render/baked.ts),
 * the cloud-config leaves them out and first boot checks them before its steps.
 */
export function renderGuest(config: SandboxConfig, templates: TemplateSet, image: BaseImage = {}): RenderedGuest {
    const files = renderFiles(config, templates);
    const id = image.bakedFiles === undefined ? undefined : bakedId(templates);
    const baked = new Set(id !== undefined && id === image.bakedFiles ? bakedFiles(templates).map((f) => f.path) : []);
    const content = (p: string) => {
        const f = files.find((x) => x.path === p);
        if (f === undefined) throw new Error(`the guest templates have no ${p}`);
        return f.content;
    };
    const allowlist = content(allowlistPath);
    const secureOps = content(secureOpsPath);
    // Files changed in place on a running guest; first boot writes them, the hash leaves them out.
    const inPlace = (f: GuestFile) => f.path === allowlistPath || f.path === secureOpsPath;
    const { agent, admin } = config.users;
    const keys = [...config.sshAuthorizedKeys];
    const fstab = guestFstab(config);

    const cloudConfig = (withInPlaceFiles: boolean, packed: boolean) => ({
        hostname: config.vm.name,
        // The filtering resolver answers no name of the VM's own: /etc/hosts does (sudo looks it up).
        manage_etc_hosts: "localhost",
        locale: "C.UTF-8",
        // The admin user is the image's default user (Multipass reaches the VM through it).
        system_info: { default_user: { name: admin } },
        users: [
            "default",
            {
                name: agent,
                uid: agentUid,
                gecos: "Claude Code agent",
                // Every login of the agent starts with no_new_privs set (10-users.sh keeps it so);
                // its SSH keys are in a root-owned file sshd reads instead of ~/.ssh.
                shell: agentShell,
                lock_passwd: true,
            },
        ],
        ssh_authorized_keys: keys,
        ssh_pwauth: false,
        disable_root: true,
        write_files: [
            ...files
                .filter((f) => !baked.has(f.path))
                .map((f) => ({
                    path: f.path,
                    ...fileContent(withInPlaceFiles || !inPlace(f) ? f.content : "", packed),
                    owner: f.owner,
                    permissions: f.mode,
                    // Files owned by the agent wait until cloud-init has created the user.
                    ...(f.owner.startsWith("root:") ? {} : { defer: true }),
                })),
            ...(fstab.length > 0 ? [{ path: "/etc/fstab", content: fstab.map((l) => `${l}\n`).join(""), append: true }] : []),
        ],
        // Multipass shares folders with sshfs from the multipass-sshfs snap, which it installs in the
        // guest on the first mount: after first boot, when the egress firewall has closed the snap
        // store. cloud-init's snap module runs before runcmd, while the network is still open. Every
        // Multipass VM has it, with stack shares or not: a project's folder may come later, in place.
        ...(config.hypervisor === "multipass" ? { snap: { commands: ["snap install multipass-sshfs"] } } : {}),
        runcmd: baked.size > 0 ? [["bash", "-c", bakedCheck(bootRunner), "cc-sandbox-baked", id]] : [[bootRunner]],
    });

    const render = (doc: object) => "#cloud-config\n" + stringify(doc, { lineWidth: 0, aliasDuplicateObjects: false });
    const userData = render(cloudConfig(true, true));
    // Over the files as they are, not as packed: another zlib on the host must not replace the VM.
    const firstBootHash = sha256(render(cloudConfig(false, false)));
    const metaData = stringify({ "instance-id": `${config.vm.name}-${firstBootHash.slice(0, 12)}`, "local-hostname": config.vm.name });
    return { files, userData, metaData, allowlist, secureOps, projectSecureOps: renderProjectSecureOps(config, templates), firstBootHash };
}
