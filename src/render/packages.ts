/** The distribution packages the guest layers need; boot.d/05-packages.sh installs those an image lacks. */
import { SandboxConfig } from "../config/types";

export function guestPackages(config: SandboxConfig): string[] {
    return [
        ...(config.firewall.enabled ? ["iptables", "ipset", "dnsmasq-base"] : []),
        "bubblewrap",
        "socat",
        // bash's loadable builtins: the credential bridge checks a script's owner and mode on every
        // request with the stat builtin instead of starting coreutils' stat.
        "bash-builtins",
        ...(config.claude.install ? ["nodejs", "npm"] : []),
    ];
}
