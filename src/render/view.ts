/** The data guest templates see. Built from the validated config only. */
import { defaultPortMode, SandboxConfig } from "../config/types";
import { claudePackages, guestPackages } from "./packages";

export interface GuestView {
    readonly stack: string;
    readonly vmName: string;
    readonly users: { readonly agent: string; readonly admin: string };
    readonly allowlist: {
        readonly domains: readonly { pattern: string; name: string; wildcard: boolean; ports: readonly number[]; portsCsv: string }[];
        readonly cidrs: readonly { cidr: string; ports: readonly number[]; portsCsv: string }[];
    };
    readonly firewall: { readonly enabled: boolean; readonly githubMeta: boolean; readonly logDenied: boolean };
    readonly claude: { readonly install: boolean; readonly version: string };
    /** Installed by boot.d/05-packages.sh when the image lacks them. */
    readonly packages: readonly string[];
    /** The same, only while Claude Code is not installed at the pinned version. */
    readonly claudePackages: readonly string[];
    readonly git: { readonly name: string; readonly email: string };
    readonly mounts: readonly { guest: string; readOnly: boolean }[];
    readonly secureOps: { readonly scripts: readonly { path: string; args?: string }[] };
    readonly ssh: { readonly authorizedKeys: readonly string[] };
}

export function guestView(c: SandboxConfig): GuestView {
    return {
        stack: c.stack,
        vmName: c.vm.name,
        users: { agent: c.users.agent, admin: c.users.admin },
        allowlist: {
            domains: c.allowlist.domains.map((d) => ({
                pattern: d.wildcard ? `*.${d.name}` : d.name,
                name: d.name,
                wildcard: d.wildcard,
                ports: d.ports,
                // The guest's port list: a port whose mode is not its default says so (22,443/raw).
                portsCsv: d.ports.map((p) => (d.modes[p] === defaultPortMode(p) ? `${p}` : `${p}/${d.modes[p]}`)).join(","),
            })),
            cidrs: c.allowlist.cidrs.map((x) => ({ cidr: x.cidr, ports: x.ports, portsCsv: x.ports.join(",") })),
        },
        firewall: { ...c.firewall },
        claude: { ...c.claude },
        packages: guestPackages(c),
        claudePackages: claudePackages(c),
        git: { ...c.git },
        mounts: c.mounts.map((m) => ({ guest: m.guest, readOnly: m.readOnly })),
        secureOps: { scripts: c.secureOps.scripts.map((x) => ({ ...x })) },
        ssh: { authorizedKeys: [...c.sshAuthorizedKeys] },
    };
}
