/**
 * The allowlist's entries, presets expanded and entries for one name folded into one. What the guest
 * loads is planned from this once, on the host (src/render/egress.ts).
 */
import { defaults } from "./defaults";
import { ConfigIssue, keyPath } from "./issues";
import { presets } from "./presets";
import type { RawConfig } from "./schema";
import { AllowedCidr, AllowedDomain, defaultPortMode, PortMode } from "./types";

/** One entry's port list is at most 16 long (the schema); entries for one name together are too. */
const maxPorts = 16;

interface DomainEntry {
    readonly name: string;
    readonly ports?: readonly (number | string)[];
}

/**
 * Folds entries for the same name into one (ports united). A port is given one mode: two modes for
 * one port, in one entry or across entries for the same name, is an issue at the later entry.
 */
function mergeDomains(entries: readonly { e: DomainEntry; source: string; at: string }[], issues: ConfigIssue[]): AllowedDomain[] {
    const byName = new Map<string, AllowedDomain>();
    for (const { e, source, at } of entries) {
        const wildcard = e.name.startsWith("*.");
        const name = wildcard ? e.name.slice(2) : e.name;
        const key = `${wildcard ? "*." : ""}${name}`;
        const prev = byName.get(key);
        const modes: Record<number, PortMode> = { ...(prev?.modes ?? {}) };
        const mine: Record<number, PortMode> = {};
        for (const token of e.ports ?? defaults.ports) {
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
        if (Object.keys(modes).length > maxPorts) {
            issues.push({ path: `${at}.ports`, value: e.ports ?? defaults.ports, message: `gives ${key} more than ${maxPorts} ports with its other entries (${Object.keys(modes).length})` });
        }
        byName.set(key, {
            name,
            wildcard,
            ports: Object.keys(modes).map(Number).sort((a, b) => a - b),
            modes,
            source: prev ? prev.source : source,
        });
    }
    return [...byName.values()].sort((a, b) => (a.name === b.name ? Number(a.wildcard) - Number(b.wildcard) : a.name < b.name ? -1 : 1));
}

function mergeCidrs(entries: readonly { cidr: string; ports?: readonly number[] }[], at: readonly (string | number)[], issues: ConfigIssue[]): AllowedCidr[] {
    const byCidr = new Map<string, AllowedCidr>();
    for (const [i, e] of entries.entries()) {
        const prev = byCidr.get(e.cidr);
        const ports = [...new Set([...(prev?.ports ?? []), ...(e.ports ?? defaults.ports)])].sort((a, b) => a - b);
        if (ports.length > maxPorts) {
            issues.push({ path: keyPath([...at, "cidrs", i]), value: e.cidr, message: `gives ${e.cidr} more than ${maxPorts} ports with its other entries (${ports.length})` });
        }
        byCidr.set(e.cidr, { cidr: e.cidr, ports, source: "cidrs" });
    }
    return [...byCidr.values()].sort((a, b) => (a.cidr < b.cidr ? -1 : a.cidr > b.cidr ? 1 : 0));
}

type RawAllowlist = NonNullable<RawConfig["allowlist"]>;

/**
 * An allowlist's presets and entries, merged; a conflict is an issue naming its entry. AT is where
 * it sits in the config (`allowlist`, `projects[2].allowlist`), PRESETS the presets it has unless
 * it names its own.
 */
export function resolveAllowlist(
    al: RawAllowlist | undefined,
    issues: ConfigIssue[],
    at: readonly (string | number)[] = ["allowlist"],
    presetsDefault: readonly string[] = defaults.presets,
): { domains: AllowedDomain[]; cidrs: AllowedCidr[] } {
    const list = al ?? {};
    const domainEntries = [
        ...(list.presets ?? presetsDefault).flatMap((p) =>
            presets[p].map((e) => ({ e: { name: e.name, ports: e.ports }, source: p, at: keyPath([...at, "presets"]) })),
        ),
        ...(list.domains ?? []).map((d, i) => ({ e: typeof d === "string" ? { name: d } : d, source: "domains", at: keyPath([...at, "domains", i]) })),
    ];
    return {
        domains: mergeDomains(domainEntries, issues),
        cidrs: mergeCidrs((list.cidrs ?? []).map((c) => (typeof c === "string" ? { cidr: c } : c)), at, issues),
    };
}

type Resolved = { readonly domains: readonly AllowedDomain[]; readonly cidrs: readonly AllowedCidr[] };

/** Two resolved allowlists as one (the stack's and a project's), folded as one list's entries are. */
export function unionAllowlists(a: Resolved, b: Resolved, issues: ConfigIssue[], at: readonly (string | number)[]): { domains: AllowedDomain[]; cidrs: AllowedCidr[] } {
    const entry = (d: AllowedDomain) => ({
        e: { name: d.wildcard ? `*.${d.name}` : d.name, ports: d.ports.map((p) => `${p}/${d.modes[p]}`) },
        source: d.source,
        at: keyPath([...at, "domains"]),
    });
    return {
        domains: mergeDomains([...a.domains, ...b.domains].map(entry), issues),
        cidrs: mergeCidrs([...a.cidrs, ...b.cidrs], at, issues),
    };
}
