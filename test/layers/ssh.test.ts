/**
 * SSH hardening: the drop-in checked by sshd itself (-t, and -T for what it resolves), and a real
 * sshd attacked over loopback in a network namespace of its own.
 */
import { asAgent, boot, inGuest } from "./guest";

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

test("40-ssh.sh stops the boot when what sshd resolves is not keys only: a drop-in sorting first wins", () => {
    const early = (text: string) => `printf '${text}\\n' > /etc/ssh/sshd_config.d/00-early.conf; ${boot("40-ssh.sh")}`;
    const password = inGuest(early("PasswordAuthentication yes"));
    expect(password.status).not.toBe(0);
    expect(password.stderr).toMatch(/sshd resolves a different value for: passwordauthentication no/);
    const rootProhibit = inGuest(early("PermitRootLogin prohibit-password"));
    expect(rootProhibit.status).not.toBe(0);
    expect(rootProhibit.stderr).toMatch(/sshd resolves a different value for: permitrootlogin no$/m);
});

test("40-ssh.sh passes on the rendered configuration", () => {
    const r = inGuest(`${lateDropIn}; ${boot("40-ssh.sh")}`);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/keys only/);
});

test("40-ssh.sh reloads a running sshd only when a file it reads was written after it started", () => {
    // A stand-in sshd: its pid file, and what a reload (SIGHUP) does to it.
    const daemon = `bash -c 'trap "echo reloaded >/run/hup; exit 0" HUP; while :; do sleep 0.05; done' & pid=$!; sleep 0.1; echo $pid >/run/sshd.pid; sleep 0.05`;
    const after = `set +e; ${boot("40-ssh.sh")}; echo rc=$?; sleep 0.4; cat /run/hup 2>/dev/null || echo not-reloaded; kill $pid 2>/dev/null; true`;
    // Started after every file (a baked image's drop-in, cloud-init's written before it started).
    const fresh = inGuest(`rm -f /run/hup; ${lateDropIn}; sleep 0.05; ${daemon}; ${after}`);
    expect(fresh.stderr).toMatch(/40-ssh: sshd started after its configuration was written: nothing to reload/);
    expect(fresh.stdout).toBe("rc=0\nnot-reloaded\n");
    // A drop-in written after it started (cloud-init's, or ours on a stock image): reloaded.
    const changed = inGuest(`rm -f /run/hup; ${daemon}; ${lateDropIn}; ${after}`);
    expect(changed.stderr).not.toMatch(/nothing to reload/);
    expect(changed.stdout).toBe("rc=0\nreloaded\n");
    // New host keys after it started: reloaded too.
    const keys = inGuest(`rm -f /run/hup; ${lateDropIn}; sleep 0.05; ${daemon}; touch /etc/ssh/ssh_host_ed25519_key; ${after}`);
    expect(keys.stdout).toBe("rc=0\nreloaded\n");
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
            for home in /home/ubuntu /root /home/mallory; do
                mkdir -p "$home/.ssh"; cp /tmp/key.pub "$home/.ssh/authorized_keys"
                owner=$(stat -c %U "$home"); chown -R "$owner:" "$home/.ssh"; chmod 700 "$home/.ssh"
            done
            # The stack's key for the agent, where the rendered guest puts it.
            cp /tmp/key.pub /etc/ssh/cc-sandbox-authorized_keys/agent
            ${boot("10-users.sh")} 2>/dev/null
            # The agent plants a key of its own, and start-up files that try to shed no_new_privs.
            ssh-keygen -q -t ed25519 -N '' -f /tmp/planted
            ${asAgent} bash -c 'mkdir -p ~/.ssh && cat /tmp/planted.pub >> ~/.ssh/authorized_keys && chmod 700 ~/.ssh && chmod 600 ~/.ssh/authorized_keys
                printf "%s\\n" "alias claude=/bin/true" "unset BASH_ENV" "exec env -i /bin/bash --norc --noprofile -i" >> ~/.profile'
            mkdir -p /run/sshd
            unshare --net bash -euo pipefail -c '
                ip link set lo up
                # An address that is not loopback: how the developer reaches the VM.
                ip addr add 198.51.100.7/32 dev lo
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
                try agent-key -o BatchMode=yes -i /tmp/key agent@198.51.100.7
                try agent-loopback -o BatchMode=yes -i /tmp/key agent@127.0.0.1
                try agent-planted -o BatchMode=yes -i /tmp/planted agent@198.51.100.7
                nnp() { grep NoNewPrivs /proc/self/status | tr -s "\\t " " "; }
                echo "command-nnp=$(timeout 20 ssh -p 2222 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes -i /tmp/key agent@198.51.100.7 "grep NoNewPrivs /proc/self/status" | tr -s "\\t " " ")"
                echo "login-nnp=$(echo "grep NoNewPrivs /proc/self/status; echo shell=\$0" | timeout 20 ssh -T -p 2222 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes -i /tmp/key agent@198.51.100.7 | tr -s "\\t\\n " "  ")"
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

    test("attack: a key the agent adds to its own ~/.ssh/authorized_keys opens nothing", () => {
        expect(result("agent-planted")?.[1]).not.toBe("0");
        expect(result("agent-planted")?.[2]).toMatch(/Permission denied/);
    });

    test("attack: the agent cannot log in over loopback, even with the stack's key", () => {
        expect(result("agent-loopback")?.[1]).not.toBe("0");
        expect(result("agent-loopback")?.[2]).toMatch(/Permission denied/);
    });

    test("attack: every session of the agent has no_new_privs, whatever its start-up files say", () => {
        // A command, and a login shell reading commands from stdin after ~/.profile tried to exec
        // a fresh shell without the flag.
        expect(out).toMatch(/^command-nnp=NoNewPrivs: 1$/m);
        expect(out).toMatch(/^login-nnp=.*NoNewPrivs: 1 /m);
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
