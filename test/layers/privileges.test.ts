/**
 * Attacks on the agent's privileges, each beside the allowed work it must not break. One guest
 * namespace: cloud-init's users, with the mistakes hardening must undo (the agent in sudo, adm and
 * lxd, and granted NOPASSWD sudo in cloud-init's sudoers file, the admin with a password the agent
 * knows), then boot.d/10-users.sh, then every attempt as the agent (uid 1001).
 */
import * as fs from "fs";
import * as path from "path";
import { asAgent, boot, guestDir, inGuest, run, tempDir } from "./guest";

const asAdmin = "setpriv --reuid=ubuntu --regid=ubuntu --init-groups --reset-env --";
const asHelper = "setpriv --reuid=helper --regid=helper --init-groups --reset-env --";

const attempts: Record<string, string> = {
    // sudo
    "agent-sudo": `${asAgent} sudo -n true`,
    "admin-sudo": `${asAdmin} sudo -n true`,
    "agent-sudo-under-wrapper": `${asAgent} env PATH=/tmp/probe-sudo:/usr/local/bin:/usr/bin:/bin claude-noprivs`,
    "admin-sudo-under-wrapper": `${asAdmin} env PATH=/tmp/probe-sudo:/usr/local/bin:/usr/bin:/bin claude-noprivs`,
    // setuid and file capabilities
    "setuid-id": `${asAgent} /usr/local/bin/suid-id -u`,
    "setuid-id-under-wrapper": `${asAgent} setpriv --no-new-privs /usr/local/bin/suid-id -u`,
    "filecap-shadow": `${asAgent} /usr/local/bin/cap-cat /etc/shadow`,
    "filecap-shadow-under-wrapper": `${asAgent} setpriv --no-new-privs /usr/local/bin/cap-cat /etc/shadow`,
    "nnp-inherited": `${asAgent} env PATH=/tmp/probe-nnp:/usr/local/bin:/usr/bin:/bin claude-noprivs`,
    // su to the admin, with the admin's password
    "agent-su-admin": `${asAgent} su ubuntu -c true <<<admin-password`,
    "helper-su-admin": `${asHelper} su ubuntu -c true <<<admin-password`,
    "agent-newgrp-sudo": `${asAgent} sg sudo -c true </dev/null`,
    // the admin's files
    "agent-list-admin-home": `${asAgent} ls /home/ubuntu`,
    "agent-read-admin-keys": `${asAgent} cat /home/ubuntu/.ssh/authorized_keys`,
    "admin-read-own-keys": `${asAdmin} cat /home/ubuntu/.ssh/authorized_keys`,
    "agent-read-shadow": `${asAgent} cat /etc/shadow`,
    // the sandbox's own files
    "agent-write-sudoers": `${asAgent} sh -c 'echo "agent ALL=(ALL) NOPASSWD:ALL" > /etc/sudoers.d/zz-agent'`,
    "agent-replace-wrapper": `${asAgent} sh -c 'echo "exec claude" > /usr/local/bin/claude-noprivs'`,
    "agent-edit-managed-settings": `${asAgent} sh -c 'echo {} > /etc/claude-code/managed-settings.json'`,
    "agent-edit-own-settings": `${asAgent} sh -c 'cat ~/.claude/settings.json > /dev/null && touch ~/.claude/settings.json ~/.claude/new-file'`,
    // work that must keep working
    "agent-bwrap-under-nnp": `${asAgent} setpriv --no-new-privs bwrap --ro-bind / / --unshare-all --die-with-parent true`,
    "agent-groups": `id -nG agent`,
};

let results: Record<string, { rc: number; out: string }> = {};

beforeAll(() => {
    const script = `
        usermod -aG sudo,adm,lxd agent
        echo 'agent ALL=(ALL) NOPASSWD:ALL' >> /etc/sudoers.d/90-cloud-init-users
        echo 'ubuntu:admin-password' | chpasswd
        useradd --create-home --groups sudo helper
        mkdir -p /home/ubuntu/.ssh && echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAdminKeyAdminKeyAdminKeyAdminKeyAdmin admin' > /home/ubuntu/.ssh/authorized_keys
        chown -R ubuntu: /home/ubuntu/.ssh && chmod 0700 /home/ubuntu/.ssh && chmod 0600 /home/ubuntu/.ssh/authorized_keys
        install -m 4755 -o root -g root /usr/bin/id /usr/local/bin/suid-id
        install -m 0755 -o root -g root /usr/bin/cat /usr/local/bin/cap-cat
        setcap cap_dac_read_search+ep /usr/local/bin/cap-cat
        # Stand-ins for Claude Code behind the wrapper: one tries sudo, one reports its grandchild's flag.
        mkdir -p /tmp/probe-sudo /tmp/probe-nnp
        printf '#!/bin/bash\\nexec sudo -n true\\n' > /tmp/probe-sudo/claude
        printf '#!/bin/bash\\nbash -c "grep NoNewPrivs /proc/self/status"\\n' > /tmp/probe-nnp/claude
        chmod 0755 /tmp/probe-sudo /tmp/probe-nnp /tmp/probe-sudo/claude /tmp/probe-nnp/claude
        ${boot("10-users.sh")}
        ${Object.entries(attempts)
            .map(([name, cmd]) => `rc=0; out=$( { ${cmd} ; } 2>&1 ) || rc=$?; printf '%s\\t%s\\t%s\\n' ${name} "$rc" "$(tr '\\n\\t' '  ' <<<"$out")"`)
            .join("\n")}
    `;
    const r = inGuest(script);
    if (r.status !== 0) throw new Error(`attack run failed (${r.status}): ${r.stderr}\n${r.stdout}`);
    results = Object.fromEntries(
        r.stdout
            .trim()
            .split("\n")
            .map((l) => l.split("\t"))
            .map(([name, rc, out]) => [name, { rc: Number(rc), out: out ?? "" }]),
    );
    expect(Object.keys(results).sort()).toEqual(Object.keys(attempts).sort());
});

const denied = (name: string) => expect(results[name].rc).not.toBe(0);
const allowed = (name: string) => expect(results[name]).toEqual(expect.objectContaining({ rc: 0 }));

test("hardening takes the agent out of sudo, adm and lxd", () => {
    allowed("agent-groups");
    expect(results["agent-groups"].out.trim().split(/\s+/)).toEqual(["agent"]);
});

test("attack: sudo as the agent fails though cloud-init's sudoers grants it NOPASSWD; the admin keeps sudo", () => {
    denied("agent-sudo");
    expect(results["agent-sudo"].out).toMatch(/not allowed|may not run sudo|password is required/);
    allowed("admin-sudo");
});

test("attack: sudo under claude-noprivs fails, even for the admin whose sudo works outside it", () => {
    denied("agent-sudo-under-wrapper");
    denied("admin-sudo-under-wrapper");
    expect(results["admin-sudo-under-wrapper"].out).toMatch(/effective uid is not 0|no new privileges/);
});

test("attack: a setuid-root binary gains nothing under no_new_privs (outside it, it does)", () => {
    allowed("setuid-id");
    expect(results["setuid-id"].out.trim()).toBe("0");
    allowed("setuid-id-under-wrapper");
    expect(results["setuid-id-under-wrapper"].out.trim()).toBe("1001");
});

test("attack: a file capability (cap_dac_read_search) gains nothing under no_new_privs (outside it, it does)", () => {
    allowed("filecap-shadow");
    expect(results["filecap-shadow"].out).toMatch(/^root:/);
    denied("filecap-shadow-under-wrapper");
    expect(results["filecap-shadow-under-wrapper"].out).toMatch(/Permission denied/);
});

test("no_new_privs reaches Claude Code's grandchildren", () => {
    allowed("nnp-inherited");
    expect(results["nnp-inherited"].out).toMatch(/NoNewPrivs:\s+1/);
});

test("attack: su to the admin with the admin's right password fails for the agent; a sudo member still can", () => {
    denied("agent-su-admin");
    expect(results["agent-su-admin"].out).toMatch(/Permission denied/);
    allowed("helper-su-admin");
});

test("attack: newgrp/sg into group sudo fails", () => {
    denied("agent-newgrp-sudo");
});

test("attack: the agent cannot list the admin's home nor read its keys; the admin can", () => {
    denied("agent-list-admin-home");
    denied("agent-read-admin-keys");
    expect(results["agent-read-admin-keys"].out).toMatch(/Permission denied/);
    allowed("admin-read-own-keys");
});

test("attack: the agent cannot read /etc/shadow", () => {
    denied("agent-read-shadow");
});

test("attack: the agent cannot add a sudoers file, replace the wrapper or loosen the managed Claude Code settings", () => {
    denied("agent-write-sudoers");
    denied("agent-replace-wrapper");
    denied("agent-edit-managed-settings");
});

test("the agent owns its Claude Code settings directory (cloud-init creates it as root)", () => {
    allowed("agent-edit-own-settings");
});

test("bwrap still works for the agent under no_new_privs", () => {
    allowed("agent-bwrap-under-nnp");
});

test("the D-Bus policy that leaves units' processes to root is one the bus daemon takes", () => {
    // A private bus whose configuration includes the policy as the system bus does (system.d):
    // dbus-daemon refuses a file it cannot parse, and a system bus that refused it would not start.
    const dir = tempDir("cc-dbus-");
    const policy = path.join(guestDir, "etc/dbus-1/system.d/cc-sandbox-processes.conf");
    fs.writeFileSync(
        path.join(dir, "bus.conf"),
        `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path=${dir}/bus</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/></policy>
<include>${policy}</include></busconfig>\n`,
    );
    const r = run("timeout", ["10", "dbus-daemon", `--config-file=${dir}/bus.conf`, "--print-pid", "--fork"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    run("kill", [r.stdout.trim()]);
    // A broken copy is refused: the check can fail.
    fs.writeFileSync(path.join(dir, "broken.conf"), fs.readFileSync(policy, "utf8").replace("</busconfig>", ""));
    fs.writeFileSync(path.join(dir, "bus.conf"), fs.readFileSync(path.join(dir, "bus.conf"), "utf8").replace(policy, path.join(dir, "broken.conf")));
    const bad = run("timeout", ["10", "dbus-daemon", `--config-file=${dir}/bus.conf`, "--print-pid", "--fork"]);
    expect(bad.status).not.toBe(0);
});
