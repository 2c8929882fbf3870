/**
 * SSH hardening: the drop-in checked by sshd itself (-t, and -T for what it resolves), and a real
 * sshd attacked over loopback in a network namespace of its own.
 */
import { boot, inGuest } from "./guest";

// cloud-init's own drop-in sorts after ours; on a stack with ssh_pwauth it would say yes.
const lateDropIn = `printf 'PasswordAuthentication yes\\nPermitRootLogin yes\\nKbdInteractiveAuthentication yes\\n' > /etc/ssh/sshd_config.d/50-cloud-init.conf`;

test("sshd -t accepts the configuration, and what sshd resolves is keys only whatever sorts later", () => {
    const r = inGuest(`
        ${lateDropIn}
        mkdir -p /run/sshd
        sshd -t
        sshd -T -C user=agent,host=client,addr=127.0.0.1
    `);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const lines = r.stdout.split("\n");
    for (const want of [
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        "permitrootlogin no",
        "pubkeyauthentication yes",
        "authenticationmethods publickey",
        "permitemptypasswords no",
        "x11forwarding no",
        "allowagentforwarding no",
        "allowtcpforwarding local",
        "permituserenvironment no",
        "maxauthtries 3",
        "allowusers agent",
        "allowusers ubuntu",
    ]) {
        expect(lines).toContain(want);
    }
    expect(lines.filter((l) => l.startsWith("allowusers "))).toHaveLength(2);
});

test("40-ssh.sh stops the boot when sshd rejects the configuration (the check can fail)", () => {
    const r = inGuest(`
        echo 'PasswordAuthentcation no' >> /etc/ssh/sshd_config.d/10-cc-sandbox.conf
        ${boot("40-ssh.sh")}
    `);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/sshd rejects its configuration/);
});

test("40-ssh.sh passes on the rendered configuration", () => {
    const r = inGuest(`${lateDropIn}; ${boot("40-ssh.sh")}`);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/keys only/);
});

describe("attacks on a running sshd", () => {
    let out = "";
    const result = (name: string) => new RegExp(`^${name}=(\\d+) (.*)$`, "m").exec(out);

    beforeAll(() => {
        const r = inGuest(`
            ${lateDropIn}
            echo 'agent:agent-password' | chpasswd
            echo 'ubuntu:admin-password' | chpasswd
            echo 'root:root-password' | chpasswd
            useradd --create-home --shell /bin/bash mallory
            ssh-keygen -q -t ed25519 -N '' -f /tmp/key
            for home in /home/agent /home/ubuntu /root /home/mallory; do
                mkdir -p "$home/.ssh"; cp /tmp/key.pub "$home/.ssh/authorized_keys"
                owner=$(stat -c %U "$home"); chown -R "$owner:" "$home/.ssh"; chmod 700 "$home/.ssh"
            done
            ${boot("10-users.sh")} 2>/dev/null
            mkdir -p /run/sshd
            unshare --net bash -euo pipefail -c '
                ip link set lo up
                /usr/sbin/sshd -p 2222 -o PidFile=/run/sshd-test.pid -E /tmp/sshd.log
                try() {
                    local name=$1; shift
                    local rc=0 msg
                    msg=$(timeout 20 ssh -p 2222 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \\
                        -o ConnectTimeout=5 -o NumberOfPasswordPrompts=1 -o LogLevel=ERROR "$@" true 2>&1 </dev/null) || rc=$?
                    echo "$name=$rc $(tr "\\n" " " <<<"$msg")"
                }
                # Passwords are set and right; only the methods sshd offers matter.
                try agent-password -o BatchMode=yes -o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive agent@127.0.0.1
                try admin-password -o BatchMode=yes -o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive ubuntu@127.0.0.1
                try agent-key -o BatchMode=yes -i /tmp/key agent@127.0.0.1
                try admin-key -o BatchMode=yes -i /tmp/key ubuntu@127.0.0.1
                try root-key -o BatchMode=yes -i /tmp/key root@127.0.0.1
                try other-user-key -o BatchMode=yes -i /tmp/key mallory@127.0.0.1
                try agent-none -o BatchMode=yes -o PubkeyAuthentication=no -o PreferredAuthentications=none agent@127.0.0.1
                kill "$(cat /run/sshd-test.pid)"
            '
        `);
        out = r.stdout;
        if (r.status !== 0) throw new Error(`ssh attack run failed: ${r.stderr}\n${r.stdout}`);
    });

    test("control: the agent and the admin log in with their key", () => {
        // The whole line, so a failure shows what ssh said.
        expect(result("agent-key")?.[0]).toMatch(/^agent-key=0 *$/);
        expect(result("admin-key")?.[0]).toMatch(/^admin-key=0 *$/);
    });

    test("attack: password login is not offered, even for the admin whose password is set", () => {
        for (const who of ["agent-password", "admin-password"]) {
            expect(result(who)?.[1]).not.toBe("0");
            expect(result(who)?.[2]).toMatch(/Permission denied \(publickey\)/);
        }
    });

    test("attack: root login with an authorized key is refused", () => {
        expect(result("root-key")?.[1]).not.toBe("0");
        expect(result("root-key")?.[2]).toMatch(/Permission denied/);
    });

    test("attack: a user outside AllowUsers with an authorized key is refused", () => {
        expect(result("other-user-key")?.[1]).not.toBe("0");
        expect(result("other-user-key")?.[2]).toMatch(/Permission denied/);
    });

    test("attack: no authentication at all (method none) is refused", () => {
        expect(result("agent-none")?.[1]).not.toBe("0");
    });
});
