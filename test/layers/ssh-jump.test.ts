/**
 * Reaching a remote libvirt host's guest through the host: the ssh command the program prints
 * (src/drivers/ssh.ts) gives the jump host the stack's key and known_hosts file too, so it works
 * where the user's own SSH configuration knows neither. Two sshds of our own (a jump host and a
 * "guest") on loopback, in a network namespace of their own inside the throw-away guest.
 */
import { sshArgv, sshConfigBlock } from "../../src/drivers/ssh";
import { shellQuote } from "../../src/shell";
import { inGuest } from "./guest";

const known = "/tmp/jump-test/known_hosts.cc-sandbox.cc-test";
const target = {
    identityFile: "/tmp/jump-test/key",
    options: ["IdentitiesOnly=yes", "StrictHostKeyChecking=accept-new", `UserKnownHostsFile=${known}`, "BatchMode=yes", "ConnectTimeout=5"],
    jump: { user: "root", host: "127.0.0.1", port: 2201 },
};
const printed = sshArgv(target, "root", "127.0.0.2").map(shellQuote).join(" ");
// What `ssh -J` does: the first hop gets the user's own configuration, not the stack's key and file.
const config = sshConfigBlock("cc-test", target, "root", "127.0.0.2");
const withJ = ["ssh", "-i", target.identityFile, ...target.options.flatMap((o) => ["-o", o]), "-J", "root@127.0.0.1:2201", "root@127.0.0.2"].map(shellQuote).join(" ");

let out = "";

beforeAll(() => {
    const r = inGuest(`
        set -euo pipefail
        d=/tmp/jump-test
        mkdir -p "$d" /run/sshd
        ssh-keygen -q -t ed25519 -N '' -f "$d/key"
        ssh-keygen -q -t ed25519 -N '' -f "$d/jump_host_key"
        ssh-keygen -q -t ed25519 -N '' -f "$d/guest_host_key"
        cp "$d/key.pub" "$d/authorized_keys"
        cat >"$d/config" <<'CONFIG'
${config}CONFIG
        # No known_hosts of the user's own: only the stack's file can vouch for a host.
        rm -rf /root/.ssh /etc/ssh/ssh_known_hosts
        for who in jump guest; do
          printf '%s\\n' "HostKey $d/\${who}_host_key" "PidFile $d/$who.pid" "AuthorizedKeysFile $d/authorized_keys" \\
            "PermitRootLogin prohibit-password" "PasswordAuthentication no" "KbdInteractiveAuthentication no" "UsePAM no" \\
            "StrictModes no" "AllowTcpForwarding yes" >"$d/$who.conf"
        done
        unshare --net bash -euo pipefail -c '
          d=/tmp/jump-test
          ip link set lo up
          ip addr add 127.0.0.2/32 dev lo 2>/dev/null || true
          /usr/sbin/sshd -f "$d/jump.conf" -o ListenAddress=127.0.0.1:2201 -E "$d/jump.log"
          /usr/sbin/sshd -f "$d/guest.conf" -o ListenAddress=127.0.0.2:22 -E "$d/guest.log"
          rc=0; msg=$(timeout 60 ${withJ.replace(/'/g, "'\\''")} echo via-J 2>&1 </dev/null) || rc=$?
          echo "with-J=$rc $(tr "\\r\\n" "  " <<<"$msg")"
          rc=0; msg=$(timeout 60 ${printed.replace(/'/g, "'\\''")} echo through-the-host 2>&1 </dev/null) || rc=$?
          echo "printed=$rc $(tr "\\r\\n" "  " <<<"$msg")"
          echo "known=$(wc -l <"$d/known_hosts.cc-sandbox.cc-test")"
          rc=0; msg=$(timeout 60 ssh -F "$d/config" cc-test echo by-the-config-block 2>&1 </dev/null) || rc=$?
          echo "config=$rc $(tr "\\r\\n" "  " <<<"$msg")"
          kill "$(cat "$d/jump.pid")" "$(cat "$d/guest.pid")"
        '
    `);
    out = r.stdout;
    if (r.status !== 0) throw new Error(`the jump test run failed: ${r.stderr}\n${r.stdout}`);
});

const result = (name: string) => new RegExp(`^${name}=(\\d+) (.*)$`, "m").exec(out);

test("the printed ssh command reaches the guest through the host with the stack's key, trusting both hosts on first use", () => {
    const r = result("printed");
    expect(r?.[1]).toBe("0");
    expect(r?.[2]).toMatch(/(^| )through-the-host *$/);
    // One line for the host (at its port), one for the guest: both in the stack's own file.
    expect(out).toMatch(/^known=2$/m);
});

test("control: ssh -J gives the first hop the user's own configuration, and fails there", () => {
    const r = result("with-J");
    expect(r?.[1]).not.toBe("0");
    expect(r?.[2]).toMatch(/Host key verification failed|Permission denied/);
    expect(r?.[2]).not.toContain("via-J");
});

test("the ssh_config block names the same two hops, and OpenSSH takes it as it is", () => {
    const r = result("config");
    expect(r?.[1]).toBe("0");
    expect(r?.[2]).toMatch(/(^| )by-the-config-block *$/);
    const block = config;
    expect(block).toContain("Host cc-test-host\n  HostName 127.0.0.1\n  User root\n  Port 2201\n");
    expect(block).toContain("Host cc-test\n  HostName 127.0.0.2\n  User root\n");
    expect(block).toMatch(/ProxyJump cc-test-host\n$/);
});
