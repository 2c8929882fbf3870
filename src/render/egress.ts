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
}

export interface EgressPlan {
    readonly sets: readonly EgressSet[];
    readonly cidrs: readonly { readonly set: string; readonly cidr: string }[];
    readonly names: readonly EgressName[];
    readonly proxy: readonly ProxyKey[];
    /** Plain names, wildcards and CIDRs, as the firewall reports them. */
    readonly counts: { readonly names: number; readonly wildcards: number; readonly cidrs: number };
}

type Ports = readonly { port: number; mode: PortMode }[];

const portsText = (ports: Ports) => ports.map((p) => `${p.port}/${p.mode}`).join(",");

function setName(kind: "d" | "n", ports: Ports): string {
    const name = `ccfw-${kind}-` + ports.map((p) => `${p.port}${p.mode === defaultPortMode(p.port) ? "" : p.mode[0]}`).join(".");
    if (name.length <= 31) return name;
    return `ccfw-${kind}-h${createHash("sha256").update(portsText(ports)).digest("hex").slice(0, 12)}`;
}

const domainPorts = (d: AllowedDomain): Ports => [...d.ports].sort((a, b) => a - b).map((port) => ({ port, mode: d.modes[port] ?? defaultPortMode(port) }));

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The plan of an allowlist whose entries `loadConfig` has validated and merged. */
export function planEgress(allowlist: { readonly domains: readonly AllowedDomain[]; readonly cidrs: readonly AllowedCidr[] }): EgressPlan {
    const sets = new Map<string, Ports>();
    const setOf = (kind: "d" | "n", ports: Ports) => {
        const name = setName(kind, ports);
        const known = sets.get(name);
        if (known !== undefined && portsText(known) !== portsText(ports)) throw new Error(`two port lists share the set name ${name}`);
        sets.set(name, ports);
        return name;
    };

    const plain = new Map<string, string>();
    const wild = new Map<string, string>();
    const proxy: ProxyKey[] = [];
    for (const d of allowlist.domains) {
        const ports = domainPorts(d);
        (d.wildcard ? wild : plain).set(d.name, setOf("d", ports));
        for (const { port, mode } of ports) {
            if (mode === "raw") continue;
            proxy.push(d.wildcard ? { mode, match: "suffix", key: `.${d.name}:${port}` } : { mode, match: "exact", key: `${d.name}:${port}` });
        }
    }

    const names: EgressName[] = [];
    for (const name of [...new Set([...plain.keys(), ...wild.keys()])].sort(byText)) {
        const list: string[] = [];
        const add = (s: string | undefined) => {
            if (s !== undefined && !list.includes(s)) list.push(s);
        };
        add(plain.get(name));
        add(wild.get(name));
        let covered = wild.has(name);
        // Wildcards on parents of two labels or more (a wildcard on a top-level domain is refused).
        for (let parent = name.slice(name.indexOf(".") + 1); parent.includes("."); parent = parent.slice(parent.indexOf(".") + 1)) {
            if (wild.has(parent)) {
                covered = true;
                add(wild.get(parent));
            }
        }
        names.push({ name, scope: !plain.has(name) ? "below" : covered ? "tree" : "only", sets: list });
    }

    const cidrs = allowlist.cidrs.map((c) => ({
        // A network is reached by address: its ports are raw, whatever they would carry by name.
        set: setOf("n", [...c.ports].sort((a, b) => a - b).map((port) => ({ port, mode: "raw" as const }))),
        cidr: c.cidr,
    }));

    return {
        sets: [...sets.entries()].map(([name, ports]) => ({ name, ports })).sort((a, b) => byText(a.name, b.name)),
        cidrs: [...cidrs].sort((a, b) => byText(a.cidr, b.cidr)),
        names,
        proxy: proxy.sort((a, b) => byText(`${a.mode} ${a.match} ${a.key}`, `${b.mode} ${b.match} ${b.key}`)),
        counts: { names: plain.size, wildcards: wild.size, cidrs: allowlist.cidrs.length },
    };
}

/**
 * The plan as the guest reads it (/etc/cc-sandbox/allowlist): one directive a line, `#` comments.
 *   plan 1                              the format's version, first
 *   counts NAMES WILDCARDS CIDRS
 *   set SET PORT/MODE,...               every set before its use
 *   cidr SET CIDR
 *   name NAME only|tree|below SET,...
 *   proxy tls|http exact|suffix KEY
 */
export function formatEgressPlan(plan: EgressPlan, entries: readonly string[] = []): string {
    const lines = [
        "# What this guest may connect to: the stack's allowlist, planned by cc-sandbox on the host.",
        "# cc-sandbox-firewall checks every line and loads it as it is; `apply FILE` switches to a new one.",
        ...entries.map((e) => `#   ${e}`),
        `plan ${egressPlanVersion}`,
        `counts ${plan.counts.names} ${plan.counts.wildcards} ${plan.counts.cidrs}`,
        ...plan.sets.map((s) => `set ${s.name} ${portsText(s.ports)}`),
        ...plan.cidrs.map((c) => `cidr ${c.set} ${c.cidr}`),
        ...plan.names.map((n) => `name ${n.name} ${n.scope} ${n.sets.join(",")}`),
        ...plan.proxy.map((p) => `proxy ${p.mode} ${p.match} ${p.key}`),
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
export function renderEgressPlan(allowlist: { readonly domains: readonly AllowedDomain[]; readonly cidrs: readonly AllowedCidr[] }): string {
    return formatEgressPlan(planEgress(allowlist), allowlistEntries(allowlist));
}
