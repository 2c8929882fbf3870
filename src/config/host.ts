/** What loading resolves on the host running the program: `~`, the shared folders, the SSH key. */
import * as path from "path";
import { defaults } from "./defaults";
import { ConfigIssue, keyPath } from "./issues";
import { formats, isSshPublicKey } from "./schema";
import type { RawConfig } from "./schema";
import { Mount } from "./types";

/** What loading needs from the host; tests pass their own. */
export interface HostContext {
    readonly home: string;
    /** Returns the file's text, or throws with a message saying why it cannot. */
    readonly readFile: (file: string) => string;
    /** `process.platform` of the host running the program; Linux when not given. */
    readonly platform?: string;
    /** The uid the program runs as (Multipass maps it to a project's worker); unknown when not given. */
    readonly uid?: number;
}

/** Path A is B or lies under it (both absolute and normalized). */
export const pathInside = (a: string, b: string): boolean => a === b || a.startsWith(b.endsWith("/") ? b : `${b}/`);
/** One of the two paths is the other or lies under it. */
export const pathsOverlap = (a: string, b: string): boolean => pathInside(a, b) || pathInside(b, a);

/** A libvirt URI of this machine's own libvirt (not one reached over a network). */
export const isLocalLibvirt = (uri: string): boolean => /^qemu:\/\/\/|^qemu\+unix:/.test(uri);

/** A host folder as given (absolute or ~/), ~ expanded, normalized, without a trailing slash. */
export const hostFolder = (p: string, home: string): string => expandHome(p, home).replace(/(.)\/+$/, "$1");

export function expandHome(p: string, home: string): string {
    if (p === "~") return home;
    if (p.startsWith("~/")) return path.join(home, p.slice(2));
    return path.normalize(p);
}

/** The shares as given, or the default one. */
export function rawMounts(raw: RawConfig): readonly { host: string; guest: string; readOnly?: boolean }[] {
    return raw.mounts ?? defaults.mounts;
}

export function mountsOf(raw: RawConfig, host: HostContext): Mount[] {
    return rawMounts(raw).map((m, i) => ({
        host: hostFolder(m.host, host.home),
        guest: m.guest.replace(/\/+$/, ""),
        readOnly: m.readOnly ?? false,
        tag: `m${i}-${path.posix.basename(m.guest).replace(/[^a-z0-9]/gi, "").toLowerCase()}`.slice(0, 31),
    }));
}

/**
 * The multipass snap's confinement (home interface) lets the daemon read only what is under the
 * user's home and not hidden (Multipass's docs/explanation/mount.md): shared folders and images.
 */
export function snapCannotRead(p: string, host: HostContext): boolean {
    const rel = path.posix.relative(host.home, p);
    return (host.platform ?? "linux") === "linux" && (rel.startsWith("..") || path.posix.isAbsolute(rel) || rel.split("/").some((x) => x.startsWith(".")));
}

/** The authorized keys (inline, or read from the public key file) and the private key's path. */
export function readSshKeys(raw: RawConfig, host: HostContext, issues: ConfigIssue[]): { keys: string[]; privateKeyPath: string } {
    const ssh = raw.ssh ?? {};
    const pubPath = expandHome(ssh.publicKeyPath ?? defaults.sshPublicKeyPath, host.home);
    const privateKeyPath = ssh.privateKeyPath ? expandHome(ssh.privateKeyPath, host.home) : pubPath.replace(/\.pub$/, "");
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
