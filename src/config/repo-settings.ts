/**
 * A project's repository may say what it needs less of: `.cc-sandbox.yaml` at the top of the
 * repository a project clones or the folder it shares, read on this machine when the program runs
 * (a shared folder's file is the worker's to write: it can only narrow the worker's own project). It may only narrow
 * what the stack gives the project; anything else in it is refused, naming the file, key and value.
 *
 *     network: none                  # only what Claude Code itself needs
 *     allowlist:
 *       drop: [registry.npmjs.org]   # entries of the project's allowlist (the stack's and its own) it does without
 *     handover: clone                # never shared (mount): the worker gets a clone
 *     containers: false              # no containers, even where the stack gives the project them
 *
 * Precedence: the stack config over the repository's file over the defaults. What the stack sets
 * for the project is the most it gets; the file can take from it, never add to it.
 */
import * as fs from "fs";
import * as path from "path";
import { parse as parseYaml } from "yaml";
import { ConfigIssue, showValue } from "./issues";
import { AllowedCidr, AllowedDomain } from "./types";

export const repoSettingsFile = ".cc-sandbox.yaml";

export interface RepoSettings {
    readonly file: string;
    readonly network?: "none";
    /** `containers: false`: the project gets no containers whatever the stack says. */
    readonly noContainers?: true;
    /** `handover: clone`: the project's code is never shared, only cloned. */
    readonly cloneOnly?: true;
    /** Allowlist entries as written: `name`, `*.name` or a CIDR. */
    readonly drop: readonly string[];
}

const widening = "may only narrow what the stack config gives the project";
const maxBytes = 64 * 1024;

/** The repository's settings, or undefined when it has none; each problem an issue naming the file and key. */
export function readRepoSettings(repository: string, issues: ConfigIssue[]): RepoSettings | undefined {
    const file = path.join(repository, repoSettingsFile);
    let text: string;
    // A file of the repository's own, read whole: not a link to one elsewhere (whose content an
    // error would show), not a device or a pipe (which would hold the program up), not large. Opened
    // once, without following a link and without waiting, and checked and read through that one
    // descriptor: whoever writes the folder (a mount project's worker) cannot swap the file between
    // the look and the read.
    let fd: number;
    try {
        fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "ENOENT" || code === "ENOTDIR") return undefined;
        if (code === "ELOOP") issues.push({ path: file, value: "a symbolic link", message: "must be a regular file of the repository" });
        else issues.push({ path: file, value: code ?? String(e), message: "cannot be read" });
        return undefined;
    }
    try {
        const st = fs.fstatSync(fd);
        if (!st.isFile()) {
            issues.push({ path: file, value: "not a regular file", message: "must be a regular file of the repository" });
            return undefined;
        }
        if (st.size > maxBytes) {
            issues.push({ path: file, value: `${st.size} bytes`, message: `must be at most ${maxBytes} bytes` });
            return undefined;
        }
        const buf = Buffer.alloc(maxBytes + 1);
        const n = fs.readSync(fd, buf, 0, buf.length, 0);
        if (n > maxBytes) {
            issues.push({ path: file, value: `over ${maxBytes} bytes`, message: `must be at most ${maxBytes} bytes` });
            return undefined;
        }
        text = buf.subarray(0, n).toString("utf8");
    } catch (e) {
        issues.push({ path: file, value: (e as NodeJS.ErrnoException).code ?? String(e), message: "cannot be read" });
        return undefined;
    } finally {
        fs.closeSync(fd);
    }
    const at = (key: string) => `${file}: ${key}`;
    let doc: unknown;
    try {
        doc = parseYaml(text);
    } catch (e) {
        issues.push({ path: file, value: (e as Error).message.split("\n")[0], message: "is not YAML" });
        return undefined;
    }
    if (doc === null || doc === undefined) return { file, drop: [] };
    if (typeof doc !== "object" || Array.isArray(doc)) {
        issues.push({ path: file, value: Array.isArray(doc) ? "a list" : `a ${typeof doc}`, message: "must be a mapping (network, allowlist, handover, containers)" });
        return undefined;
    }
    const d = doc as Record<string, unknown>;
    const before = issues.length;
    for (const key of Object.keys(d)) {
        if (!["network", "allowlist", "handover", "containers"].includes(key)) {
            issues.push({ path: at(key), value: d[key], message: `${widening}: only network: none, allowlist.drop, handover: clone and containers: false are taken from a repository` });
        }
    }
    if (d.network !== undefined && d.network !== "none") {
        issues.push({ path: at("network"), value: d.network, message: `${widening}: a repository may set none, nothing else` });
    }
    if (d.handover !== undefined && d.handover !== "clone") {
        issues.push({ path: at("handover"), value: d.handover, message: `${widening}: a repository may require clone, nothing else` });
    }
    if (d.containers !== undefined && d.containers !== false) {
        issues.push({ path: at("containers"), value: d.containers, message: `${widening}: a repository may set false, nothing else` });
    }
    const drop: string[] = [];
    if (d.allowlist !== undefined) {
        const al = d.allowlist;
        if (typeof al !== "object" || al === null || Array.isArray(al)) {
            issues.push({ path: at("allowlist"), value: al, message: "must be a mapping with drop, a list of the entries to do without" });
        } else {
            for (const key of Object.keys(al)) {
                if (key !== "drop") issues.push({ path: at(`allowlist.${key}`), value: (al as Record<string, unknown>)[key], message: `${widening}: a repository may drop entries, not add them` });
            }
            const list = (al as Record<string, unknown>).drop;
            if (list !== undefined && (!Array.isArray(list) || list.some((x) => typeof x !== "string" || x === ""))) {
                issues.push({ path: at("allowlist.drop"), value: list, message: "must be a list of allowlist entries as written (name, *.name or a CIDR)" });
            } else if (list !== undefined) {
                drop.push(...(list as string[]));
            }
        }
    }
    if (issues.length > before) return undefined;
    return { file, ...(d.network === "none" ? { network: "none" as const } : {}), ...(d.containers === false ? { noContainers: true as const } : {}), ...(d.handover === "clone" ? { cloneOnly: true as const } : {}), drop };
}

/** How an entry is written: `name`, `*.name`, or its CIDR. */
export const entryName = (e: AllowedDomain | AllowedCidr): string => ("cidr" in e ? e.cidr : e.wildcard ? `*.${e.name}` : e.name);

/**
 * The allowlist less the entries dropped; a dropped entry the allowlist does not hold is an issue
 * (a misspelt name would otherwise leave the access it meant to take away).
 */
export function dropEntries(
    allowlist: { readonly domains: readonly AllowedDomain[]; readonly cidrs: readonly AllowedCidr[] },
    settings: RepoSettings,
    issues: ConfigIssue[],
): { domains: AllowedDomain[]; cidrs: AllowedCidr[] } {
    const held = new Set([...allowlist.domains, ...allowlist.cidrs].map(entryName));
    settings.drop.forEach((x, i) => {
        if (!held.has(x)) issues.push({ path: `${settings.file}: allowlist.drop[${i}]`, value: x, message: `is not in the project's allowlist (it holds ${showValue([...held].sort())})` });
    });
    const dropped = new Set(settings.drop);
    return { domains: allowlist.domains.filter((d) => !dropped.has(entryName(d))), cidrs: allowlist.cidrs.filter((c) => !dropped.has(entryName(c))) };
}
