/**
 * The egress plan: the validated allowlist turned, once, into what the guest's firewall loads. The
 * guest (`cc-sandbox-firewall`) checks the plan's shape and applies it as it is; it never splits,
 * joins or expands entries itself. Pure: the same allowlist always gives byte-identical text.
 *
 * What it plans:
 * - **sets**: one ipset per distinct port list (kind `d`: filled by DNS answers, `n`: CIDRs); its
 *   name says its ports, and each port's mode where it is not the port's default (443r: 443 raw).
 * - **names**: for every name, the resolver's scope and the sets its answers go into. dnsmasq puts
 *   an answer into the sets of the *longest* matching domain only, so a name lists its own sets and
 *   those of every wildcard on a parent. Scope `only`: the name is forwarded, its subdomains get
 *   NXDOMAIN; `tree`: the name and its subdomains are forwarded (a wildcard on it or on a parent
 *   covers them); `below`: only subdomains are forwarded (a wildcard alone).
 * - **proxy**: what the name-checking proxy lets through: NAME:PORT (exact) or .NAME:PORT (any
 *   name ending so) for each TLS or HTTP port.
 */
import { createHash } from "crypto";
import { AllowedCidr, AllowedDomain, defaultPortMode, PortMode } from "../config/types";

export const egressPlanVersion = 1;

export interface EgressSet {
    /** `ccfw-d-…` or `ccfw-n-…`, 31 characters at most (ipset's limit). */
    readonly name: string;
    readonly ports: readonly { readonly port: number; readonly mode: PortMode }[];
}

export type ResolverScope = "only" | "tree" | "below";

export interface EgressName {
    readonly name: string;
    readonly scope: ResolverScope;
    readonly sets: readonly string[];
}

export interface ProxyKey {
    readonly mode: "tls" | "http";
    readonly match: "exact" | "suffix";
    /** `NAME:PORT`, or `.NAME:PORT` for a suffix. */
    readonly key: string;
    /** A project worker's uid: the key lets that worker alone through. */
    readonly owner?: number;
}

export interface EgressPlan {
    readonly sets: readonly EgressSet[];
    readonly cidrs: readonly { readonly set: string; readonly cidr: string }[];
    readonly names: readonly EgressName[];
    readonly proxy: readonly ProxyKey[];
    /** The project workers the plan has rules for. */
    readonly users: readonly { readonly uid: number; readonly network: "allowlist" | "none" }[];
    /** Plain names, wildcards and CIDRs, as the firewall reports them. */
    readonly counts: { readonly names: number; readonly wildcards: number; readonly cidrs: number };
}

type Ports = readonly { port: number; mode: PortMode }[];

const portsText = (ports: Ports) => ports.map((p) => `${p.port}/${p.mode}`).join(",");

function setName(kind: "d" | "n", ports: Ports, owner?: number): string {
    const prefix = `ccfw-${owner === undefined ? "" : `${owner}-`}${kind}-`;
    const name = prefix + ports.map((p) => `${p.port}${p.mode === defaultPortMode(p.port) ? "" : p.mode[0]}`).join(".");
    if (name.length <= 31) return name;
    return `${prefix}h${createHash("sha256").update(portsText(ports)).digest("hex").slice(0, 12)}`;
}

const domainPorts = (d: AllowedDomain): Ports => [...d.ports].sort((a, b) => a - b).map((port) => ({ port, mode: d.modes[port] ?? defaultPortMode(port) }));

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

type Allowlist = { readonly domains: readonly AllowedDomain[]; readonly cidrs: readonly AllowedCidr[] };

/** A project's worker, as the plan sees it: its uid, its mode and its own entries. */
export interface EgressUser {
    readonly uid: number;
    readonly network: "allowlist" | "none";
    readonly allowlist: Allowlist;
}

/**
 * The plan of an allowlist whose entries `loadConfig` has validated and merged, and of each
 * project worker's own entries (USERS): a worker's sets, CIDRs and proxy keys carry its uid, and a
 * name lists every set its answers go into, whoever's.
 */
export function planEgress(allowlist: Allowlist, users: readonly EgressUser[] = []): EgressPlan {
    const sets = new Map<string, Ports>();
    const setOf = (kind: "d" | "n", ports: Ports, owner?: number) => {
        const name = setName(kind, ports, owner);
        const known = sets.get(name);
        if (known !== undefined && portsText(known) !== portsText(ports)) throw new Error(`two port lists share the set name ${name}`);
        sets.set(name, ports);
        return name;
    };

    // Each owner's plain names and wildcards (undefined: the stack's), with their set.
    const owners: { owner?: number; plain: Map<string, string>; wild: Map<string, string> }[] = [];
    const proxy: ProxyKey[] = [];
    const cidrs: { set: string; cidr: string }[] = [];
    for (const [owner, list] of [[undefined, allowlist] as const, ...users.map((u) => [u.uid, u.allowlist] as const)]) {
        const plain = new Map<string, string>();
        const wild = new Map<string, string>();
        for (const d of list.domains) {
            const ports = domainPorts(d);
            (d.wildcard ? wild : plain).set(d.name, setOf("d", ports, owner));
            for (const { port, mode } of ports) {
                if (mode === "raw") continue;
                const key = d.wildcard ? `.${d.name}:${port}` : `${d.name}:${port}`;
                proxy.push({ mode, match: d.wildcard ? "suffix" : "exact", key, ...(owner === undefined ? {} : { owner }) });
            }
        }
        owners.push({ owner, plain, wild });
        for (const c of list.cidrs) {
            // A network is reached by address: its ports are raw, whatever they would carry by name.
            cidrs.push({ set: setOf("n", [...c.ports].sort((a, b) => a - b).map((port) => ({ port, mode: "raw" as const })), owner), cidr: c.cidr });
        }
    }

    const names: EgressName[] = [];
    const all = new Set(owners.flatMap((o) => [...o.plain.keys(), ...o.wild.keys()]));
    for (const name of [...all].sort(byText)) {
        const list: string[] = [];
        const add = (s: string | undefined) => {
            if (s !== undefined && !list.includes(s)) list.push(s);
        };
        let plainSomewhere = false;
        let covered = false;
        for (const { plain, wild } of owners) {
            plainSomewhere ||= plain.has(name);
            add(plain.get(name));
            add(wild.get(name));
            covered ||= wild.has(name);
            // Wildcards on parents of two labels or more (a wildcard on a top-level domain is refused).
            for (let parent = name.slice(name.indexOf(".") + 1); parent.includes("."); parent = parent.slice(parent.indexOf(".") + 1)) {
                if (wild.has(parent)) {
                    covered = true;
                    add(wild.get(parent));
                }
            }
        }
        names.push({ name, scope: !plainSomewhere ? "below" : covered ? "tree" : "only", sets: list });
    }

    const keyText = (p: ProxyKey) => `${p.owner ?? 0} ${p.mode} ${p.match} ${p.key}`;
    const cidrText = (c: { set: string; cidr: string }) => `${c.cidr} ${c.set}`;
    return {
        sets: [...sets.entries()].map(([name, ports]) => ({ name, ports })).sort((a, b) => byText(a.name, b.name)),
        cidrs: [...cidrs].sort((a, b) => byText(cidrText(a), cidrText(b))),
        names,
        proxy: proxy.sort((a, b) => byText(keyText(a), keyText(b))),
        users: users.map((u) => ({ uid: u.uid, network: u.network })).sort((a, b) => a.uid - b.uid),
        counts: {
            names: new Set(owners.flatMap((o) => [...o.plain.keys()])).size,
            wildcards: new Set(owners.flatMap((o) => [...o.wild.keys()])).size,
            cidrs: new Set(cidrs.map((c) => c.cidr)).size,
        },
    };
}

/**
 * The plan as the guest reads it (/etc/cc-sandbox/allowlist): one directive a line, `#` comments.
 *   plan 1                              the format's version, first
 *   counts NAMES WILDCARDS CIDRS
 *   user UID allowlist|none             a project's worker, before its sets
 *   set SET PORT/MODE,...               every set before its use; ccfw-UID-…: that worker's
 *   cidr SET CIDR
 *   name NAME only|tree|below SET,...
 *   proxy tls|http exact|suffix KEY [UID]   with UID: for that worker alone
 */
export function formatEgressPlan(plan: EgressPlan, entries: readonly string[] = []): string {
    const lines = [
        "# What this guest may connect to: the stack's allowlist, planned by cc-sandbox on the host.",
        "# cc-sandbox-firewall checks every line and loads it as it is; `apply FILE` switches to a new one.",
        ...entries.map((e) => `#   ${e}`),
        `plan ${egressPlanVersion}`,
        `counts ${plan.counts.names} ${plan.counts.wildcards} ${plan.counts.cidrs}`,
        ...plan.users.map((u) => `user ${u.uid} ${u.network}`),
        ...plan.sets.map((s) => `set ${s.name} ${portsText(s.ports)}`),
        ...plan.cidrs.map((c) => `cidr ${c.set} ${c.cidr}`),
        ...plan.names.map((n) => `name ${n.name} ${n.scope} ${n.sets.join(",")}`),
        ...plan.proxy.map((p) => `proxy ${p.mode} ${p.match} ${p.key}${p.owner === undefined ? "" : ` ${p.owner}`}`),
    ];
    return lines.join("\n") + "\n";
}

/** The allowlist's entries as a reader writes them (`*.example.org 443,22/raw`, `192.0.2.0/24 22`). */
export function allowlistEntries(allowlist: { readonly domains: readonly AllowedDomain[]; readonly cidrs: readonly AllowedCidr[] }): string[] {
    return [
        ...allowlist.domains.map(
            (d) => `${d.wildcard ? "*." : ""}${d.name} ${domainPorts(d).map((p) => (p.mode === defaultPortMode(p.port) ? `${p.port}` : `${p.port}/${p.mode}`)).join(",")}`,
        ),
        ...allowlist.cidrs.map((c) => `${c.cidr} ${c.ports.join(",")}`),
    ];
}

/** The allowlist file the guest loads: its entries (as comments, for reading) and its plan. */
export function renderEgressPlan(allowlist: Allowlist, projects: readonly (EgressUser & { readonly name: string })[] = []): string {
    const entries = [
        ...allowlistEntries(allowlist),
        ...projects.flatMap((p) => [`project ${p.name} (uid ${p.uid}): ${p.network === "none" ? "network none:" : "and"}`, ...allowlistEntries(p.allowlist).map((e) => `  ${e}`)]),
    ];
    return formatEgressPlan(planEgress(allowlist, projects), entries);
}
