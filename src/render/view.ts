/** The data guest templates see. Built from the validated config only. */
import { SandboxConfig } from "../config/types";
import { renderEgressPlan } from "./egress";
import { claudePackages, guestPackages } from "./packages";

export interface GuestView {
    readonly stack: string;
    readonly vmName: string;
    readonly users: { readonly agent: string; readonly admin: string };
    /** The allowlist as the guest's firewall loads it: the egress plan (src/render/egress.ts). */
    readonly egressPlan: string;
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
        egressPlan: renderEgressPlan(c.allowlist, c.projects),
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
