/**
 * The distribution packages the guest layers need; boot.d/05-packages.sh installs those an image
 * lacks, before the firewall closes.
 */
import { SandboxConfig } from "../config/types";

export function guestPackages(config: SandboxConfig): string[] {
    return [
        // haproxy: the name-checking proxy in front of TLS and HTTP ports (cc-sandbox-firewall).
        // nftables: LOCKDOWN's table when iptables' legacy tables load nothing.
        ...(config.firewall.enabled ? ["iptables", "ipset", "dnsmasq-base", "haproxy", "nftables"] : []),
        "bubblewrap",
        "socat",
        // bash's loadable builtins: the credential bridge checks a script's owner and mode on every
        // request with the stat builtin instead of starting coreutils' stat.
        "bash-builtins",
        // Rootless Podman for the projects with containers: installed whether or not a project asks
        // for them yet, since a project added later (in place) finds the archive closed by the
        // firewall. Root's alone until a project's worker is let run it (setfacl: acl).
        "podman",
        "slirp4netns",
        "acl",
    ];
}

/**
 * What installing Claude Code needs (npm and the Node it runs on), wanted only while the image does
 * not already have Claude Code at the pinned version (a baked image does).
 */
export function claudePackages(config: SandboxConfig): string[] {
    return config.claude.install ? ["nodejs", "npm"] : [];
}
