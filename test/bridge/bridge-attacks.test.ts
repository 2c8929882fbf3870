/**
 * The secure-ops bridge attacked, for real (see namespace.ts): every way around it fails and is
 * logged, each beside the allowed path (bridge.test.ts). Needs root, sshd, ssh, bwrap.
 */
import { bridgeSuite, refused, secret, secrets, ssh } from "./bridge-suite";

const { bridge, digest, attempt, expectNoLeak } = bridgeSuite();

describe("attacks", () => {
    test("1. reading the secret, its directory or the bridge's keys directly", () => {
        for (const cmd of [`cat ${secret}`, `ls ${secrets}`, `cat /var/lib/cc-sandbox/secure-ops/ssh/host_ed25519_key`,
            `find /var/lib/cc-sandbox -type f -readable`, `grep -r . /var/lib/cc-sandbox`]) {
            const r = attempt(cmd);
            expectNoLeak(r.out);
            expect(r.stdout).not.toMatch(/deploy-token|host_ed25519_key$/m);
        }
        expect(attempt(`cat ${secret}`).stderr).toContain("Permission denied");
        // The secret is really there: root reads it.
        expect(bridge.run("root", `cat ${secret}`).stdout).toBe(bridge.token);
    });

    test("2. a user namespace (bwrap, unshare -r) gives no access to the secrets owner's files", () => {
        // Both sandboxes really start, and inside the second the agent is uid 0: still no access.
        const r = attempt(`bwrap --bind / / --dev /dev --proc /proc sh -c 'echo "bwrap uid=$(id -u)"; cat ${secret}'
            unshare -r sh -c 'echo "userns uid=$(id -u)"; cat ${secret}; ls ${secrets}'`);
        expect(r.stdout).toMatch(/^bwrap uid=[1-9]\d*\nuserns uid=0\n$/);
        expect(r.stderr.match(/Permission denied/g)).toHaveLength(3);
        expectNoLeak(r.out);
    });

    test("3. /proc of the secrets owner's processes: environ, root, cwd, fd, mem, even knowing the pid", () => {
        // Root finds the running script's pid and hands it to the agent: the attack has its target.
        const started = bridge.run("root", `
            runuser -u agent -- env -i HOME=/home/agent PATH=/usr/bin:/bin /usr/local/bin/secure_run hold-secret.sh > /tmp/hold.out 2>&1 &
            for i in $(seq 50); do pid=$(pgrep -u ccsecrets -x sleep) && break; sleep 0.1; done
            echo "$pid" > /tmp/target-pid; chmod 0644 /tmp/target-pid
            tr '\\0' '\\n' < /proc/$pid/environ | grep -c DEPLOY_TOKEN=${bridge.token}`);
        // The target is real: root finds the secret in that process's environment.
        expect(started.stdout.trim()).toBe("1");
        const r = attempt(`
            p=$(cat /tmp/target-pid)
            echo "pids: $(pgrep -u ccsecrets | tr '\\n' ' ')"
            cat /proc/$p/environ; cat /proc/$p/root${secret}; cat /proc/$p/cwd/secrets/deploy-token
            cat /proc/$p/fd/3; ls -l /proc/$p/fd/; head -c 64 /proc/$p/mem; cat /proc/$p/task/$p/environ
            grep -a DEPLOY_TOKEN /proc/[0-9]*/environ 2>/dev/null; true`);
        expectNoLeak(r.out);
        // Other users' processes do not exist for the agent (hidepid=invisible).
        expect(r.stdout).toMatch(/^pids: *$/m);
        expect(r.stderr).toMatch(/No such file or directory/);
        expect(r.stderr).not.toMatch(/Permission denied/);
    });

    test("3b. a secret passed on a command line: the agent sees no other user's process or its arguments", () => {
        const r = attempt(`
            secure_run token-arg.sh > /tmp/arg.out &
            for i in $(seq 50); do grep -q holding /tmp/arg.out 2>/dev/null && break; sleep 0.1; done
            cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; echo
            ps -eo user,args; echo "seen: $(ps -eo user= | sort -u | tr '\\n' ' ')"
            wait; true`);
        expectNoLeak(r.out);
        expect(r.stdout).toMatch(/^seen: agent *$/m);
        // The agent's own processes stay visible to it, and the script did run.
        expect(r.stdout).toContain("ps -eo user,args");
        expect(bridge.run("root", "cat /tmp/arg.out").stdout).toBe("holding\n");
        // The attack had a target: root sees the token on that command line.
        const root = bridge.run("root", `
            runuser -u agent -- env -i HOME=/home/agent PATH=/usr/bin:/bin /usr/local/bin/secure_run token-arg.sh > /dev/null &
            for i in $(seq 50); do pgrep -u ccsecrets -f -- --token= >/dev/null && break; sleep 0.1; done
            ps -eo args | grep -c -- "--token=${bridge.token}"; wait`);
        expect(Number(root.stdout.trim())).toBeGreaterThanOrEqual(1);
    });

    test("4. ssh ... cat /secret with the agent's own key, and scp/sftp", () => {
        const r = attempt(`${ssh("")} ccsecrets@127.0.0.1 cat ${secret}`);
        expect(r.status).toBe(refused);
        expectNoLeak(r.out);
        expect(r.stderr).toContain("is not an allowed script");
        expect(r.logged.some((l) => / outcome=refused .*request=cat\\ \/var\/lib/.test(l))).toBe(true);

        const copy = attempt(`scp -F /dev/null -i ~/.ssh/cc-sandbox-secure-ops -o BatchMode=yes -o UserKnownHostsFile=/etc/cc-sandbox/secure-ops.known_hosts -P 799 ccsecrets@127.0.0.1:${secret} /tmp/stolen; cat /tmp/stolen;
            ${ssh("-s")} ccsecrets@127.0.0.1 sftp </dev/null`);
        expect(copy.status).not.toBe(0);
        expectNoLeak(copy.out);
    });

    test("5. shell metacharacters, quotes and control characters in a request are refused and never run", () => {
        const payloads = [
            "echo-args.sh a;cat${IFS}" + secret,
            "echo-args.sh $(cat " + secret + ")",
            "echo-args.sh `cat " + secret + "`",
            "echo-args.sh a|cat " + secret,
            "echo-args.sh a&&cat " + secret,
            "echo-args.sh 'a' \"b\"",
            "echo-args.sh a>/tmp/owned",
            "echo-args.sh a\ncat " + secret,
            "echo-args.sh a\tb",
            "echo-args.sh a$(touch${IFS}/tmp/pwned)",
        ];
        for (const p of payloads) {
            const quoted = `'${p.replace(/'/g, `'\\''`)}'`;
            const r = attempt(`${ssh("")} ccsecrets@127.0.0.1 ${quoted}`);
            expect(r.status).toBe(refused);
            expect(r.stdout).toBe("");
            expectNoLeak(r.out);
            const refusals = r.logged.filter((l) => / outcome=refused /.test(l));
            expect(refusals).toHaveLength(1);
            expect(refusals[0]).toMatch(/ outcome=refused status=126 reason=characters/);
        }
        expect(bridge.run("root", "ls /tmp/pwned /tmp/owned 2>&1").stdout).toContain("No such file");
        // secure_run itself refuses whitespace inside an argument before sending anything.
        expect(attempt(`secure_run echo-args.sh 'a b'`).status).toBe(2);
    });

    test("6. '..' in a script path or an argument", () => {
        for (const req of ["/opt/ops/../../bin/cat /etc/passwd", "echo-args.sh ../secrets/deploy-token", "echo-args.sh a..b"]) {
            const r = attempt(`secure_run ${req}`);
            expect(r.status).toBe(refused);
            expect(r.stderr).toContain("'..' is not allowed");
            expect(r.logged[0]).toMatch(/ outcome=refused /);
        }
    });

    test("7. arguments outside a script's pattern, and arguments to a script that takes none", () => {
        const qa = attempt("secure_run deploy.sh qa");
        expect(qa.status).toBe(refused);
        expect(qa.stderr).toContain("does not match ^(staging|production)$");
        const env = attempt(`secure_run env cat ${secret}`);
        expect(env.status).toBe(refused);
        expect(env.stderr).toContain("/usr/bin/env takes no arguments");
        expectNoLeak(env.out);
    });

    test("8. a script the agent wrote itself", () => {
        const r = attempt(`printf '#!/bin/sh\\ncat ${secret}\\n' > /tmp/steal.sh; chmod +x /tmp/steal.sh
            cp /tmp/steal.sh ~/token-digest.sh; secure_run /tmp/steal.sh; echo "status=$?"; secure_run ~/token-digest.sh; echo "status=$?"`);
        expect(r.stdout).toBe("status=126\nstatus=126\n");
        expect(r.stderr).toContain("/tmp/steal.sh is not an allowed script");
        expectNoLeak(r.out);
        expect(r.logged.filter((l) => / outcome=refused /.test(l))).toHaveLength(2);
    });

    test("9. symlinks: an allowed path that is a link, or that the agent swaps for one", () => {
        const link = attempt("secure_run /opt/ops/link.sh");
        expect(link.status).toBe(refused);
        expect(link.stderr).toContain("/opt/ops/link.sh is a symlink");

        const swap = attempt(`printf '#!/bin/sh\\ncat ${secret}\\n' > /tmp/steal.sh; chmod +x /tmp/steal.sh
            ln -sf /tmp/steal.sh /opt/ops/token-digest.sh; echo "root-owned dir: $?"
            rm -f /opt/agent-ops/run.sh && ln -s /tmp/steal.sh /opt/agent-ops/run.sh && echo swapped
            secure_run /opt/agent-ops/run.sh`);
        expect(swap.stdout).toContain("root-owned dir: 1");
        expect(swap.stdout).toContain("swapped");
        expect(swap.status).toBe(refused);
        expect(swap.stderr).toContain("cannot be trusted: /opt/agent-ops is not owned by root");
        expectNoLeak(swap.out);
        expect(attempt("secure_run token-digest.sh").stdout.trim()).toBe(`sha256=${digest()}`);
    });

    test("10. editing an allowed script", () => {
        const edit = attempt(`echo 'cat ${secret}' >> /opt/ops/token-digest.sh`);
        expect(edit.status).not.toBe(0);
        expect(edit.stderr).toContain("Permission denied");
        // A script left writable by others is refused once the agent has edited it (and before).
        const loose = attempt(`printf '#!/bin/sh\\ncat ${secret}\\n' > /opt/ops/loose.sh && echo edited; secure_run loose.sh`);
        expect(loose.stdout).toBe("edited\n");
        expect(loose.status).toBe(refused);
        expect(loose.stderr).toContain("/opt/ops/loose.sh is writable by group or others");
        expectNoLeak(loose.out);
    });

    test("10b. the trust checks hold with bash's stat builtin, with coreutils' stat instead, and fail closed with neither", () => {
        const checks = `secure_run link.sh; echo "link=$?"; secure_run /opt/agent-ops/run.sh; echo "swapped=$?"
            secure_run loose.sh; echo "loose=$?"; secure_run token-digest.sh; echo "digest=$?"`;
        const expectChecks = (r: ReturnType<typeof attempt>) => {
            expect(r.stdout).toContain("link=126\nswapped=126\nloose=126\n");
            expect(r.stdout).toContain(`sha256=${digest()}\ndigest=0\n`);
            expect(r.stderr).toContain("/opt/ops/link.sh is a symlink");
            expect(r.stderr).toContain("/opt/agent-ops is not owned by root");
            expect(r.stderr).toContain("/opt/ops/loose.sh is writable by group or others");
        };
        // A coreutils stat that always fails: requests that still pass and refuse the same way went
        // through the builtin.
        const fakeStat = "printf '#!/bin/sh\\nexit 1\\n' >/run/fake-stat; chmod 755 /run/fake-stat";
        const mount = (what: string) => expect(bridge.run("root", what).status).toBe(0);
        const unmount = () => bridge.run("root", "umount /usr/bin/stat 2>/dev/null; umount /usr/lib/bash 2>/dev/null; true");
        try {
            mount(`${fakeStat}; mount --bind /run/fake-stat /usr/bin/stat`);
            expectChecks(attempt(checks));
            unmount();
            mount("mount -t tmpfs -o mode=755 none /usr/lib/bash");
            expectChecks(attempt(checks));
            mount(`${fakeStat}; mount --bind /run/fake-stat /usr/bin/stat`);
            const neither = attempt("secure_run token-digest.sh");
            expect(neither.status).toBe(refused);
            expect(neither.stderr).toContain("cannot be trusted: cannot stat");
            expectNoLeak(neither.out);
        } finally {
            unmount();
        }
        expect(attempt("secure_run token-digest.sh").stdout.trim()).toBe(`sha256=${digest()}`);
    });

    test("11. port forwarding: -W, -L, -R, -D and through the multiplexing master", () => {
        // Positive control: a direct connection to the bridge port shows its SSH banner.
        const banner = "exec 3<>/dev/tcp/127.0.0.1/799; timeout 2 head -c 7 <&3";
        expect(attempt(banner).stdout).toBe("SSH-2.0");
        const r = attempt(`
            ${ssh("-W 127.0.0.1:799")} ccsecrets@127.0.0.1 </dev/null; echo "W=$?"
            ${ssh("-o ExitOnForwardFailure=yes -N -R 127.0.0.1:7000:127.0.0.1:799")} ccsecrets@127.0.0.1; echo "R=$?"
            ${ssh("-N -L 127.0.0.1:7001:127.0.0.1:799 -D 127.0.0.1:7002")} ccsecrets@127.0.0.1 & sleep 1.5
            (exec 3<>/dev/tcp/127.0.0.1/7001; timeout 2 head -c 7 <&3; echo " L-done")
            (exec 3<>/dev/tcp/127.0.0.1/7002; printf '\\x05\\x01\\x00' >&3; timeout 2 head -c 2 <&3 | od -An -tx1
             printf '\\x05\\x01\\x00\\x01\\x7f\\x00\\x00\\x01\\x08\\xae' >&3; timeout 2 cat <&3 | tr -dc 'A-Z0-9.-'; echo " D-done")
            kill %1
            secure_run true
            ssh -F /dev/null -o ControlPath=~/.ssh/secure-ops-mux/%C -p 799 -O forward -L 127.0.0.1:7003:127.0.0.1:799 ccsecrets@127.0.0.1
            (exec 3<>/dev/tcp/127.0.0.1/7003; timeout 2 head -c 7 <&3; echo " M-done")
            true`);
        expect(r.stdout).toContain("W=255");
        expect(r.stdout).toContain("R=255");
        expect(r.stdout).toContain(" L-done");
        expect(r.stdout).toContain(" D-done");
        expect(r.stdout).toContain(" M-done");
        expect(r.stdout).not.toContain("SSH-2.0");
        expect(r.stderr).toContain("administratively prohibited");
        expect(r.stderr).toContain("remote port forwarding failed");
    });

    test("12. a PTY request, from a client that has a terminal", () => {
        // With -tt the refusal is fatal to the client; without a command (an interactive login) the
        // session goes on without a terminal and lands in the dispatcher, which only lists.
        const r = attempt(`script -qec "${ssh("-tt")} ccsecrets@127.0.0.1 tty" /dev/null; echo "tt=$?"
            script -qec "${ssh("")} ccsecrets@127.0.0.1" /dev/null; echo "login=$?"
            secure_run tty; echo "tty=$?"`);
        expect(r.stdout.match(/PTY allocation request failed/g)).toHaveLength(2);
        expect(r.stdout).toContain("tt=255");
        expect(r.stdout).toMatch(/Allowed scripts[^]*login=0/);
        expect(r.stdout).toMatch(/not a tty\r?\ntty=1/);
        expect(r.stdout).not.toContain("/dev/pts");
        expect(r.logged.some((l) => / outcome=finished status=1 .*script=\/usr\/bin\/tty /.test(l))).toBe(true);
    });

    test("13. logging in as another user, or with another key", () => {
        const r = attempt(`for u in root agent; do ${ssh("")} $u@127.0.0.1 true; echo "$u=$?"; done
            ssh-keygen -q -t ed25519 -N '' -f /tmp/other; ${ssh("").replace("~/.ssh/cc-sandbox-secure-ops", "/tmp/other")} ccsecrets@127.0.0.1 true; echo "other=$?"`);
        expect(r.stdout).toBe("root=255\nagent=255\nother=255\n");
        expect(r.stderr).toContain("Permission denied (publickey)");
    });

    test("14. the agent cannot forge or rewrite the log, nor change the allowlist or the authorized key", () => {
        const r = attempt(`echo forged >> /var/log/cc-sandbox/secure-ops.log; echo "log=$?"
            echo /bin/cat >> /etc/cc-sandbox/secure-ops.conf; echo "conf=$?"
            echo x > /var/lib/cc-sandbox/secure-ops/ssh/authorized_keys; echo "keys=$?"`);
        expect(r.stdout).toBe("log=1\nconf=1\nkeys=1\n");
        // A newline in a request cannot start a log line of its own.
        const inj = attempt(`${ssh("")} ccsecrets@127.0.0.1 $'true\\n2026-01-01T00:00:00.000Z outcome=allowed script=/bin/cat'`);
        expect(inj.status).toBe(refused);
        expect(inj.logged).toHaveLength(1);
        expect(inj.logged[0]).toMatch(/ outcome=refused .*request=\$'true\\n2026/);
        expect(bridge.log().every((l) => /^\d{4}-\d\d-\d\dT[\d:.]+Z id=\d+ from=\S+ outcome=(allowed|finished|refused|listed) /.test(l))).toBe(true);
    });

    test("14b. claude-backup carries nothing of the secrets owner's, through links planted in ~/.claude", () => {
        const r = attempt(`mkdir -p ~/.claude && echo settings > ~/.claude/settings.json
            ln -s ${secret} ~/.claude/token; ln -s ${secrets} ~/.claude/secrets
            ln ${secret} ~/.claude/hardlink 2>/dev/null; echo "hardlink=$?"
            archive=$(claude-backup) && echo "backup=ok"
            mkdir /tmp/unpacked && tar -C /tmp/unpacked -xzf "$archive" && ls -A /tmp/unpacked/.claude
            cat /tmp/unpacked/.claude/token; echo "through-link=$?"; grep -rlF -e '${bridge.token.slice(0, 12)}' /tmp/unpacked; echo "grep=$?"`);
        expect(r.stdout).toContain("hardlink=1\nbackup=ok\n");
        // The links are archived as links, and following one is the agent reading the secret itself.
        expect(r.stdout).toContain("secrets\nsettings.json\ntoken\n");
        expect(r.stdout).toContain("through-link=1\n");
        expect(r.stderr).toMatch(/token: Permission denied/);
        expect(r.stdout).toContain("grep=1\n");
        expectNoLeak(r.out);
    });

    test("15. the log never holds the secret, and records every attempt above", () => {
        const log = bridge.log();
        expect(log.join("\n")).not.toContain(bridge.token);
        const refusals = log.filter((l) => / outcome=refused status=126 /.test(l));
        expect(refusals.length).toBeGreaterThanOrEqual(24);
        for (const request of ["cat\\ /var/lib/cc-sandbox/secure-ops/secrets/deploy-token", "/tmp/steal.sh", "/opt/ops/link.sh",
            "/opt/agent-ops/run.sh", "loose.sh", "deploy.sh\\ qa", "echo-args.sh\\ ../secrets/deploy-token",
            "$'echo-args.sh a\\ncat /var/lib"]) {
            expect(refusals.some((l) => l.includes(`request=${request}`))).toBe(true);
        }
    });
});
