/**
 * cc-sandbox-verify on a guest namespace with no way out: a network namespace of its own (loopback
 * only) stands in for a firewall that drops everything, and a local listener for the allowlisted
 * host. Green when every layer holds; one FAIL line and a non-zero exit for each layer broken.
 * The firewall itself is proven by the harness tests; here the point is that verify notices.
 */
import { asAgent, boot, inGuest, layerChecks } from "./guest";

const setup = `
    ${boot("10-users.sh")} 2>/dev/null
    ${boot("40-ssh.sh")} 2>/dev/null
    mkdir -p /run/cc-sandbox
    echo "ON $EPOCHSECONDS" > /run/cc-sandbox/firewall.state
    echo 'nameserver 127.0.0.1' > /etc/resolv.conf
`;

/** Runs verify as root (or as the agent) after \`breakIt\`, in a fresh network namespace. */
function verify(breakIt = "", opts: { asAgent?: boolean; args?: string } = {}) {
    const r = inGuest(`
        ${setup}
        ${breakIt}
        unshare --net bash -euo pipefail -c '
            ip link set lo up
            # An address of its own, as a guest has (getaddrinfo answers only where one exists), and no route.
            ip addr add 10.99.0.2/32 dev lo
            socat TCP-LISTEN:8443,bind=127.0.0.1,fork,reuseaddr SYSTEM:true & allowed=$!
            socat TCP-LISTEN:443,bind=127.0.0.1,fork,reuseaddr SYSTEM:true & other=$!
            socat TCP6-LISTEN:443,bind=[::1],fork,reuseaddr SYSTEM:true & other6=$!
            socat UDP4-RECVFROM:53,bind=127.0.0.53,fork SYSTEM:cat & resolver=$!
            for port in 8443 443; do
                for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
            done
            rc=0; ${opts.asAgent ? asAgent : ""} cc-sandbox-verify --only ${layerChecks} --allowed 127.0.0.1:8443 ${opts.args ?? ""} || rc=$?
            kill "$allowed" "$other" "$other6" "$resolver"
            echo "exit=$rc"
        '
    `);
    expect(r.stderr).toBe("");
    const lines = r.stdout.trim().split("\n");
    const exit = Number(/^exit=(\d+)$/m.exec(r.stdout)?.[1]);
    return { lines: lines.filter((l) => !l.startsWith("exit=")), exit, text: r.stdout };
}

// The CI stack does not install Claude Code: that check is skipped everywhere here.
const names = (lines: string[], prefix: string) => lines.filter((l) => l.startsWith(prefix)).map((l) => l.split(/[\s:]+/)[1]);

test("every layer holding: one ok line per check, exit 0", () => {
    const r = verify();
    expect(names(r.lines, "FAIL")).toEqual([]);
    expect(r.exit).toBe(0);
    expect(names(r.lines, "ok ")).toEqual([
        "firewall-state",
        "firewall-blocks-address",
        "firewall-allows",
        "dns-local-resolver",
        "dns-blocks-name",
        "dns-foreign-resolver",
        "ipv6-blocked",
        "agent-groups",
        "agent-sudo",
        "agent-podman",
        "agent-su",
        "admin-home",
        "nnp-wrapper",
        "nnp-sudo",
        "nnp-login",
        "bwrap-socat",
        "bwrap",
        "ssh",
        "ssh-keys",
        "shares",
        "apparmor",
        "statusline",
        "projects",
    ]);
    // Every line is one of the three forms.
    for (const l of r.lines) expect(l).toMatch(/^(ok  [a-z0-9-]+(: .*)?|FAIL [a-z0-9-]+: .+|skip [a-z0-9-]+: .+)$/);
});

test.each([
    ["firewall-state", "the watcher stopped (state 30 s old)", 'echo "ON $((EPOCHSECONDS - 30))" > /run/cc-sandbox/firewall.state', ""],
    ["firewall-state", "the rules were flushed (state OFF)", 'echo "OFF $EPOCHSECONDS" > /run/cc-sandbox/firewall.state', ""],
    ["firewall-blocks-address", "a non-allowlisted address answers", "", "--blocked-ip 127.0.0.1 --allowed 127.0.0.1:8443"],
    ["firewall-allows", "the allowlisted host is unreachable", "", "--allowed 127.0.0.1:9"],
    ["dns-local-resolver", "resolv.conf points outside the guest", "echo 'nameserver 8.8.8.8' > /etc/resolv.conf", ""],
    ["dns-blocks-name", "a non-allowlisted name resolves", "", "--blocked localhost"],
    ["dns-foreign-resolver", "a resolver outside the guest answers", "", "--resolver 127.0.0.53"],
    ["ipv6-blocked", "an IPv6 address answers", "", "--blocked-ip6 ::1"],
    ["agent-sudo", "a later sudoers file grants the agent sudo", "echo 'agent ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/zz-mistake && chmod 0440 /etc/sudoers.d/zz-mistake", ""],
    ["agent-groups", "the agent is back in group sudo", "usermod -aG sudo agent", ""],
    ["agent-podman", "podman is everyone's again", "dpkg-statoverride --remove /usr/bin/podman && chmod 0755 /usr/bin/podman", ""],
    ["admin-home", "the admin's home is world-readable", "chmod 0755 /home/ubuntu", ""],
    ["nnp-wrapper", "the wrapper lost setpriv", `printf '#!/bin/bash\\nexec claude "$@"\\n' > /usr/local/bin/claude-noprivs`, ""],
    ["ssh", "the SSH hardening is gone", "rm /etc/ssh/sshd_config.d/10-cc-sandbox.conf", ""],
    ["ssh-keys", "the agent's keys file is the agent's to write", "chown agent /etc/ssh/cc-sandbox-authorized_keys/agent", ""],
    ["ssh-keys", "the agent's keys file is group-writable", "chmod 0664 /etc/ssh/cc-sandbox-authorized_keys/agent", ""],
    ["ssh-keys", "sshd reads the agent's keys from its home again", "sed -i '/^Match User agent/,$d' /etc/ssh/sshd_config.d/10-cc-sandbox.conf", ""],
    ["nnp-login", "the agent's login shell is a plain bash", "usermod -s /bin/bash agent", ""],
    ["shares", "a shared repository's git configuration is open to the agent", "mkdir -p /home/agent/code && mount -t tmpfs share /home/agent/code && git init -q /home/agent/code/repo", ""],
    ["statusline", "the status line is missing", "rm /usr/local/bin/cc-sandbox-statusline", ""],
    ["agent-su", "su is no longer restricted to group sudo", "sed -i '/pam_wheel/d' /etc/pam.d/su", ""],
    // --force: another suite's namespace may be running a process under the same uid just then,
    // which userdel would take for the admin's own.
    ["admin-user", "the admin user is gone", "userdel --force --remove ubuntu 2>/dev/null", ""],
    ["projects", "a project's worker has its home opened", "cc-sandbox-project add web 24102 2>/dev/null && chmod 0755 /home/cc-web", ""],
])("FAIL %s when %s", (check, _why, breakIt, args) => {
    const r = verify(breakIt, { args });
    expect(names(r.lines, "FAIL")).toContain(check);
    expect(r.exit).toBe(1);
    // The other checks still ran: the last one always prints a line.
    expect(r.lines[r.lines.length - 1]).toMatch(/ projects: /);
});

test("as the agent: the root-only checks are skipped, the rest still run", () => {
    const r = verify("", { asAgent: true });
    expect(names(r.lines, "skip")).toEqual(["ssh", "claude", "projects"]);
    expect(names(r.lines, "FAIL")).toEqual([]);
    expect(names(r.lines, "ok ")).toEqual(expect.arrayContaining(["nnp-wrapper", "nnp-sudo", "nnp-login", "bwrap", "agent-sudo", "firewall-allows"]));
    expect(r.exit).toBe(0);
});

test("--only runs just the named checks", () => {
    const r = verify("", { args: "--only users,nnp" });
    expect(names(r.lines, "ok ")).toEqual(["agent-groups", "agent-sudo", "agent-podman", "agent-su", "admin-home", "nnp-wrapper", "nnp-sudo", "nnp-login"]);
});
