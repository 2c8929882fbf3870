/**
 * Projects: each a worker user in the guest, `cc-NAME`, whose uid is derived from its name alone,
 * in a range no other guest user takes (useradd gives regular users 1000-59999 from the bottom;
 * cloud-init's two are 1000 and 1001). Two names that land on one uid are an issue naming the later.
 */
import { createHash } from "crypto";
import { resolveAllowlist } from "./allowlist";
import { ConfigIssue, keyPath } from "./issues";
import type { RawConfig } from "./schema";
import { Project } from "./types";

export const projectUidBase = 20000;
/** What a project with `network: none` may reach: what Claude Code itself needs. */
export const claudeCodePresets = ["anthropic"] as const;
export const projectUidSlots = 10000;

/** The worker's uid (and its group's gid): 20000-29999, from the SHA-256 of the name. */
export function projectUid(name: string): number {
    return projectUidBase + (createHash("sha256").update(name).digest().readUInt32BE(0) % projectUidSlots);
}

export function projectsOf(raw: RawConfig, issues: ConfigIssue[]): Project[] {
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
        const network = p.network ?? "allowlist";
        const own = p.allowlist;
        if (network === "none" && own !== undefined && ((own.presets ?? []).length > 0 || (own.domains ?? []).length > 0 || (own.cidrs ?? []).length > 0)) {
            issues.push({ path: keyPath(["projects", i, "allowlist"]), value: own, message: "must be empty when network is none (its worker reaches only what Claude Code itself needs)" });
        }
        out.push({
            name: p.name,
            user: `cc-${p.name}`,
            uid,
            ...(p.setup !== undefined ? { setup: p.setup } : {}),
            ...(p.cleanup !== undefined ? { cleanup: p.cleanup } : {}),
            network,
            allowlist:
                network === "none"
                    ? resolveAllowlist({ presets: [...claudeCodePresets] }, issues, ["projects", i, "allowlist"])
                    : resolveAllowlist(own, issues, ["projects", i, "allowlist"], []),
        });
    });
    return out;
}

/**
 * What `cc-sandbox-project add NAME UID -` reads on stdin: each hook base64-encoded on a line of its
 * own (`setup B64`, `cleanup B64`), so no character of a hook ever reaches a shell on the way.
 */
export function projectSpec(p: Partial<Project>): string {
    const line = (k: string, v: string | undefined) => (v === undefined ? "" : `${k} ${Buffer.from(v, "utf8").toString("base64")}\n`);
    return line("setup", p.setup) + line("cleanup", p.cleanup);
}
