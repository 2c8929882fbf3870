/**
 * How a VM is reached over SSH, as its driver says, printed two ways from the same target: the
 * `sshCommand` argument list and the `sshConfig` block (OpenSSH, VS Code Remote). A remote libvirt
 * host is gone through with a ProxyCommand in both: its own ssh applies the user's configuration
 * for that host (as virsh's does), with the stack's key offered first and the host's key checked
 * against a known_hosts file that outlives the VMs (ssh -J would check neither of ours).
 */
import { shellQuote } from "../shell";
import { SshTarget } from "./types";

type Jump = NonNullable<SshTarget["jump"]>;

/** The first hop, as the ProxyCommand ssh runs through the shell: every word quoted, `%` escaped. */
function proxyCommand(j: Jump): string {
    const words = ["ssh", ...j.identityFiles.flatMap((f) => ["-i", f]), ...j.options.flatMap((o) => ["-o", o]),
        ...(j.port ? ["-p", String(j.port)] : []), "-W", "%h:%p", `${j.user ? `${j.user}@` : ""}${j.host}`];
    return words.map((w) => (w === "%h:%p" ? w : shellQuote(w).replace(/%/g, "%%"))).join(" ");
}

/** `ssh -i FILE -o K=V ... [-o ProxyCommand=...] USER@HOST`. */
export function sshArgv(t: SshTarget, user: string, host: string): string[] {
    return ["ssh", "-i", t.identityFile, ...t.options.flatMap((o) => ["-o", o]), ...(t.jump ? ["-o", `ProxyCommand=${proxyCommand(t.jump)}`] : []), `${user}@${host}`];
}

/** The same target as an ssh_config `Host` block named ALIAS. */
export function sshConfigBlock(alias: string, t: SshTarget, user: string, host: string): string {
    return [
        `Host ${alias}`,
        `  HostName ${host}`,
        `  User ${user}`,
        `  IdentityFile "${t.identityFile}"`,
        ...t.options.map((o) => `  ${o.replace("=", " ")}`),
        ...(t.jump ? [`  ProxyCommand ${proxyCommand(t.jump)}`] : []),
    ].join("\n") + "\n";
}
