/**
 * How a VM is reached over SSH, as its driver says, printed two ways from the same target: the
 * `sshCommand` argument list and the `sshConfig` block (OpenSSH, VS Code Remote).
 */
import { SshTarget } from "./types";

/** `ssh -i FILE -o K=V ... [-J JUMP] USER@HOST`. */
export function sshArgv(t: SshTarget, user: string, host: string): string[] {
    return ["ssh", "-i", t.identityFile, ...t.options.flatMap((o) => ["-o", o]), ...(t.jump ? ["-J", t.jump] : []), `${user}@${host}`];
}

/** The same target as an ssh_config `Host` block named ALIAS. */
export function sshConfigBlock(alias: string, t: SshTarget, user: string, host: string): string {
    return [
        `Host ${alias}`,
        `  HostName ${host}`,
        `  User ${user}`,
        `  IdentityFile "${t.identityFile}"`,
        ...t.options.map((o) => `  ${o.replace("=", " ")}`),
        ...(t.jump ? [`  ProxyJump ${t.jump}`] : []),
    ].join("\n") + "\n";
}
