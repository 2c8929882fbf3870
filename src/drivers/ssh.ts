/**
 * How a VM is reached over SSH, as its driver says, printed two ways from the same target: the
 * `sshCommand` argument list and the `sshConfig` block (OpenSSH, VS Code Remote). A jump host is
 * reached with the target's own identity and options too (ssh's -J would give the first hop the
 * user's own configuration instead: another key, another known_hosts).
 */
import { shellQuote } from "../shell";
import { SshTarget } from "./types";

type Jump = NonNullable<SshTarget["jump"]>;

const jumpSpec = (j: Jump) => `${j.user ? `${j.user}@` : ""}${j.host}`;

/** The first hop, as the ProxyCommand ssh runs through the shell: every word quoted, `%` escaped. */
function proxyCommand(t: SshTarget, j: Jump): string {
    const words = ["ssh", "-i", t.identityFile, ...t.options.flatMap((o) => ["-o", o]), ...(j.port ? ["-p", String(j.port)] : []), "-W", "%h:%p", jumpSpec(j)];
    return words.map((w) => (w === "%h:%p" ? w : shellQuote(w).replace(/%/g, "%%"))).join(" ");
}

/** `ssh -i FILE -o K=V ... [-o ProxyCommand=...] USER@HOST`. */
export function sshArgv(t: SshTarget, user: string, host: string): string[] {
    return ["ssh", "-i", t.identityFile, ...t.options.flatMap((o) => ["-o", o]), ...(t.jump ? ["-o", `ProxyCommand=${proxyCommand(t, t.jump)}`] : []), `${user}@${host}`];
}

/** The same target as ssh_config `Host` blocks: ALIAS, and ALIAS-host for the jump host it goes through. */
export function sshConfigBlock(alias: string, t: SshTarget, user: string, host: string): string {
    const own = [`  IdentityFile "${t.identityFile}"`, ...t.options.map((o) => `  ${o.replace("=", " ")}`)];
    const j = t.jump;
    return [
        ...(j ? [`Host ${alias}-host`, `  HostName ${j.host}`, ...(j.user ? [`  User ${j.user}`] : []), ...(j.port ? [`  Port ${j.port}`] : []), ...own, ""] : []),
        `Host ${alias}`,
        `  HostName ${host}`,
        `  User ${user}`,
        ...own,
        ...(j ? [`  ProxyJump ${alias}-host`] : []),
    ].join("\n") + "\n";
}
