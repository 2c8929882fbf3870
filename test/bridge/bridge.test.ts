/**
 * The secure-ops bridge, for real (see namespace.ts): an allowed script uses a secret the agent can
 * never read, and cc-sandbox-verify's checks of it; every way around it fails and is logged:
 * bridge-attacks.test.ts. Needs root, sshd, ssh, bwrap.
 */
import { bridgeSuite, refused, scripts, secrets, ssh } from "./bridge-suite";

const { bridge, digest, attempt, expectNoLeak } = bridgeSuite();

describe("the allowed path", () => {
    test("an allowed script reads its secret and prints a digest of it", () => {
        const r = attempt("secure_run token-digest.sh");
        expect(r.status).toBe(0);
        expect(r.stdout.trim()).toBe(`sha256=${digest()}`);
        expectNoLeak(r.out);
        expect(r.logged.some((l) => / outcome=allowed script=\/opt\/ops\/token-digest.sh /.test(l))).toBe(true);
        expect(r.logged.some((l) => / outcome=finished status=0 .*script=\/opt\/ops\/token-digest.sh /.test(l))).toBe(true);
    });

    test("srun passes arguments that match the script's pattern, and the exit status comes back", () => {
        const ok = attempt("srun /opt/ops/deploy.sh production");
        expect(ok.status).toBe(0);
        expect(ok.stdout).toBe(`deploying to production with token sha256=${digest()}\n`);
        const fails = attempt("srun false");
        expect(fails.status).toBe(1);
        expect(fails.logged.some((l) => / outcome=finished status=1 .*script=\/usr\/bin\/false /.test(l))).toBe(true);
    });

    test("no arguments lists what is allowed", () => {
        const r = attempt("secure_run");
        expect(r.status).toBe(0);
        for (const s of scripts) expect(r.stdout).toContain(s.path);
        expect(r.logged.some((l) => / outcome=listed /.test(l))).toBe(true);
    });

    test("scripts run with a clean environment, whatever the client sends", () => {
        const r = attempt(`${ssh("-o SetEnv=LD_PRELOAD=/tmp/evil.so -o SetEnv=BASH_ENV=/tmp/evil")} ccsecrets@127.0.0.1 env`);
        expect(r.status).toBe(0);
        const names = r.stdout.trim().split("\n").map((l) => l.split("=")[0]).sort();
        expect(names).toEqual(["CC_SECRETS_DIR", "HOME", "LANG", "LOGNAME", "PATH", "USER"]);
    });

    test("an allowlist change applies in place, and an invalid one is refused without touching the current one", () => {
        const current = bridge.run("root", "cat /etc/cc-sandbox/secure-ops.conf").stdout;
        const bad = bridge.run("root", "cc-sandbox-secure-ops apply -", "/opt/ops/deploy.sh (unclosed\n");
        expect(bad.status).toBe(1);
        expect(bad.stderr).toContain("not a valid argument pattern");
        expect(bridge.run("root", "cat /etc/cc-sandbox/secure-ops.conf").stdout).toBe(current);

        const narrowed = bridge.run("root", "cc-sandbox-secure-ops apply -", "/usr/bin/true\n");
        expect(narrowed.status).toBe(0);
        expect(attempt("secure_run token-digest.sh").status).toBe(refused);
        expect(bridge.run("root", "cc-sandbox-secure-ops apply -", current).status).toBe(0);
        expect(attempt("secure_run token-digest.sh").stdout.trim()).toBe(`sha256=${digest()}`);
    });

    test("secrets are installed from stdin only, owner-only, and names are checked", () => {
        const ok = bridge.run("root", "cc-sandbox-secure-ops install-secret db-url && stat -c '%U %a' " + `${secrets}/db-url`, "postgres://x\n");
        expect(ok.status).toBe(0);
        expect(ok.stdout).toBe("ccsecrets 400\n");
        expect(bridge.run("root", `stat -c '%U %a' ${secrets}`).stdout).toBe("ccsecrets 700\n");
        for (const bad of ["../evil", ".hidden", "a/b", "x$(id)"]) {
            const r = bridge.run("root", `cc-sandbox-secure-ops install-secret '${bad}'`, "v");
            expect(r.status).toBe(1);
            expect(r.stderr).toContain("secret name must match");
        }
        expect(bridge.run("root", "cc-sandbox-secure-ops install-secret empty", "").status).toBe(1);
        expect(bridge.run("root", `cc-sandbox-secure-ops remove-secret db-url && ls ${secrets}`).stdout).toBe("deploy-token\n");
        // The agent cannot use the admin tool.
        expect(attempt("/usr/local/sbin/cc-sandbox-secure-ops status").stderr).toContain("run as root");
    });

    test("the first-boot step can run again: keys kept, the bridge still answers", () => {
        const keys = () => bridge.run("root", "cat /etc/cc-sandbox/secure-ops.known_hosts /home/agent/.ssh/cc-sandbox-secure-ops.pub").stdout;
        const before = keys();
        const r = bridge.run("root", "/usr/local/lib/cc-sandbox/boot.d/60-secure-ops.sh");
        expect(r.status).toBe(0);
        expect(keys()).toBe(before);
        expect(attempt("SECURE_RUN_MUX=0 secure_run token-digest.sh").stdout.trim()).toBe(`sha256=${digest()}`);
    });

    test("status shows the bridge, each script's trust and the secret names, never their values", () => {
        const r = bridge.run("root", "cc-sandbox-secure-ops status");
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("listening on 127.0.0.1:799");
        expect(r.stdout).toMatch(/^agent key: 256 SHA256:\S+ agent@secure-ops \(ED25519\)$/m);
        expect(r.stdout).toMatch(/\/opt\/ops\/token-digest.sh\s+\(no arguments\)\s+ok/);
        expect(r.stdout).toMatch(/\/opt\/ops\/link.sh .*is a symlink/);
        expect(r.stdout).toMatch(/deploy-token\s+\d+ bytes/);
        expectNoLeak(r.stdout + r.stderr);
    });
});

describe("first boot's self-check (cc-sandbox-secure-ops check)", () => {
    const check = () => bridge.run("root", "cc-sandbox-secure-ops check");

    test("passes: the agent reaches the dispatcher, which refuses what is not allowed, and cannot read the owner's files", () => {
        const r = check();
        expect(r.status).toBe(0);
        for (const ok of ["agent reaches the dispatcher", "the dispatcher refuses what is not allowed", "agent cannot read the secrets owner's files"]) {
            expect(r.stderr).toContain(`check ok: ${ok}`);
        }
    });

    test("fails when the bridge no longer accepts the agent's key", () => {
        const keys = "/var/lib/cc-sandbox/secure-ops/ssh/authorized_keys";
        bridge.run("root", `mv ${keys} ${keys}.held`);
        try {
            const r = check();
            expect(r.stderr).toMatch(/check FAILED: agent cannot reach the dispatcher \(exit 255\)/);
            expect(r.status).toBe(1);
        } finally {
            bridge.run("root", `mv ${keys}.held ${keys}`);
        }
        expect(check().status).toBe(0);
    });

    test("fails when the secrets owner's directory is opened to others", () => {
        const modes = bridge.run("root", `stat -c %a ${secrets} ${secrets}/..`).stdout.trim().split("\n");
        bridge.run("root", `chmod 0755 ${secrets} ${secrets}/..`);
        try {
            const r = check();
            expect(r.stderr).toContain("check FAILED: agent can read the secrets owner's files");
            expect(r.status).toBe(1);
        } finally {
            bridge.run("root", `chmod ${modes[0]} ${secrets} && chmod ${modes[1]} ${secrets}/..`);
        }
    });
});

describe("cc-sandbox-verify", () => {
    const checks = ["bridge-loopback", "bridge-dispatcher", "bridge-refuses", "bridge-secrets"];

    test("its bridge checks pass as the agent and as root", () => {
        for (const user of ["agent", "root"] as const) {
            const r = bridge.run(user, "cc-sandbox-verify --only bridge,proc");
            for (const c of [...checks, "proc"]) expect(r.stdout).toMatch(new RegExp(`^ok  ${c}:`, "m"));
            expect(r.stdout).not.toMatch(/^FAIL/m);
            expect(r.status).toBe(0);
        }
    });

    test("its proc check fails once /proc shows every user's processes again", () => {
        // A /proc of its own in a child mount namespace: the bridge's stays as it is.
        const r = bridge.run("root", "unshare --mount --propagation private sh -c 'mount -t proc proc /proc && cc-sandbox-verify --only proc'");
        expect(r.stdout).toMatch(/^FAIL proc: .*without hidepid/m);
        expect(r.status).not.toBe(0);
    });

    test("they fail when the secrets owner's directory is opened to others", () => {
        const dirs = `${secrets} ${secrets}/..`;
        const modes = bridge.run("root", `stat -c %a ${dirs}`).stdout.trim().split("\n");
        bridge.run("root", `chmod 0755 ${dirs}`);
        try {
            const r = bridge.run("agent", "cc-sandbox-verify --only bridge");
            expect(r.stdout).toMatch(/^FAIL bridge-secrets: agent can list/m);
            expect(r.status).toBe(1);
        } finally {
            bridge.run("root", `chmod ${modes[0]} ${secrets} && chmod ${modes[1]} ${secrets}/..`);
        }
        expect(bridge.run("agent", "cc-sandbox-verify --only bridge").status).toBe(0);
    });

    test("they fail when the secrets owner's login shell is a general shell", () => {
        expect(bridge.run("root", "getent passwd ccsecrets | cut -d: -f7").stdout.trim())
            .toBe("/usr/local/lib/cc-sandbox/secure-ops-dispatch");
        expect(bridge.run("root", "usermod -s /bin/sh ccsecrets").status).toBe(0);
        try {
            const r = bridge.run("agent", "cc-sandbox-verify --only bridge");
            expect(r.stdout).toMatch(/^FAIL bridge-dispatcher: the secrets owner's login shell is \/bin\/sh/m);
            expect(r.status).toBe(1);
        } finally {
            bridge.run("root", "usermod -s /usr/local/lib/cc-sandbox/secure-ops-dispatch ccsecrets");
        }
        expect(bridge.run("agent", "cc-sandbox-verify --only bridge").status).toBe(0);
    });
});
