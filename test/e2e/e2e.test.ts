/**
 * The real thing, end to end: the Pulumi CLI built from its Go modules runs the program on the ci
 * stack; the command provider runs the libvirt driver's virt-install and virsh; an Ubuntu 24.04
 * guest built from Ubuntu's archive (scripts/build-image.sh) boots Ubuntu's kernel under QEMU's
 * software emulation, inside a network namespace with no route out; cloud-init installs the layers;
 * the guest's own cc-sandbox-verify passes. Then what only 24.04 can show (the AppArmor profile
 * bubblewrap needs, systemd-resolved shut out, netplan), a project's worker confined in the VM, an
 * in-place allowlist change and project added (a name only its worker reaches, its code a clone of a
 * host repository whose work comes back as a branch), a no-op update, a reboot (cloud-init kept out of it),
 * and destroy; the VM is first made by a `pulumi up` that is killed while creating and run again,
 * and destroyed after it has been deleted behind Pulumi's back and made again.
 *
 * The steps build on each other and run in order; each one's duration is printed and written to
 * $CC_E2E_RESULTS (default .cache/e2e/steps.json). Needs root, libvirt, QEMU, mmdebstrap and Go.
 */
import { createHash, randomBytes } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { shellQuote } from "../../src/shell";
import { git, root, waitFor } from "../helpers";
import { steps } from "./steps";
import { consoleLog, host6, hosts, internet, rebindHosts, Run, subnet, vmName, World } from "./world";

jest.setTimeout(60 * 60_000);

const world = new World();
const token = `e2e-${randomBytes(12).toString("hex")}`;
/** The web project's own secret, for its own bridge. */
const webToken = `e2e-web-${randomBytes(12).toString("hex")}`;
const digestScript = "/usr/local/lib/cc-e2e/token-digest";
let outputs: Record<string, unknown> = {};
let sshCommand = "";

const { step, timed, ok, save } = steps("e2e", () => world.diagnose());

async function up(what: string, extra: string[] = []): Promise<Run> {
    return ok(await world.pulumi(["up", "--yes", "--skip-preview", "-s", "ci", ...extra]), what);
}

async function readOutputs(): Promise<void> {
    const r = ok(await world.pulumi(["stack", "output", "--json", "--show-secrets", "-s", "ci"]), "stack output");
    outputs = JSON.parse(r.stdout);
    sshCommand = String(outputs.sshCommand);
}

/** A command in the guest over the stack's own sshCommand (as the agent), or as the admin. */
function inGuest(command: string, opts: { admin?: boolean; input?: string; timeoutMs?: number } = {}): Promise<Run> {
    return world.inGuest(sshCommand, opts.admin ? String(outputs.adminUser) : "agent", command, opts);
}

/** What the first line of a test server's banner says, as the agent sees it ("" when unreachable). */
async function banner(target: string, port = 443): Promise<string> {
    // 443 speaks TLS (and HTTP to curl): the answer names the address, the Host and the server name.
    const r = port === 443
        ? await inGuest(`curl -sSk --max-time 6 https://${target}/ 2>&1 || true`)
        : await inGuest(`timeout 6 bash -c 'exec 3<>/dev/tcp/${target}/${port} && head -n1 <&3' 2>&1 || true`);
    return r.stdout.split("\n")[0].trim();
}

/** "Resources:" summary of a pulumi run, e.g. "~ 1 updated, 4 unchanged". */
const summary = (r: Run) => r.stdout.slice(r.stdout.lastIndexOf("Resources:"));

const verifyTargets = [
    "--allowed", "allowed.test.example:443",
    "--blocked", "blocked.test.example",
    "--blocked-ip", hosts["blocked.test.example"],
    "--blocked-ip6", host6,
    "--resolver", `${subnet}.1`,
].join(" ");

beforeAll(async () => {
    await timed("prepare engine and image", async () => {
        const t = world.prepareTools();
        process.stdout.write(`e2e: engine ${t.engine} s, image ${t.image} s\n`);
    });
    await timed("start libvirt in the namespace", () => world.start());
    ok(await world.pulumi(["stack", "init", "ci", "--secrets-provider", "passphrase"]), "stack init");
    // The credential bridge, configured the way the README says: a secret and a script that uses it.
    ok(await world.pulumi(["config", "set", "--secret", "--path", "cc-sandbox:secrets.E2E_TOKEN", token, "-s", "ci"]), "config set --secret");
    ok(await world.pulumi(["config", "set", "--path", "cc-sandbox:secureOps.scripts[0].path", digestScript, "-s", "ci"]), "config set --path");
    // A project, with a setup hook its worker runs once.
    ok(await world.pulumi(["config", "set", "--path", "cc-sandbox:projects[0].name", "web", "-s", "ci"]), "config set project");
    ok(await world.pulumi(["config", "set", "--path", "cc-sandbox:projects[0].setup", 'echo "set up as $(id -un)" > ~/setup.out', "-s", "ci"]), "config set project setup");
    // Its own bridge: the same script, its own secret under the same name.
    ok(await world.pulumi(["config", "set", "--path", "cc-sandbox:projects[0].secureOps.scripts[0].path", digestScript, "-s", "ci"]), "config set project script");
    ok(await world.pulumi(["config", "set", "--secret", "--path", "cc-sandbox:projects[0].secrets.E2E_TOKEN", webToken, "-s", "ci"]), "config set project secret");
});


/** A command as a project's worker, through the admin's sudo (what the project's `enter` output runs). */
function asWorker(project: string, command: string): Promise<Run> {
    return inGuest(`sudo cc-sandbox-project enter ${project} -- sh -c ${shellQuote(command)}`, { admin: true });
}

afterAll(() => {
    save(process.env.CC_E2E_RESULTS ?? path.join(root, ".cache", "e2e", "steps.json"));
    process.stdout.write(`e2e: log in ${world.log}\n`);
    world.stop();
});

step("1. pulumi up creates the VM and waits for cloud-init, even when the first run is killed while creating", async () => {
    // The first boot costs minutes under emulation: the fault of a `pulumi up` killed mid-create is
    // shown on it rather than on a boot of its own.
    const child = world.pulumiDetached(["up", "--yes", "--skip-preview", "-s", "ci"]);
    await timed("pulumi up killed during create", async () => {
        expect(await waitFor(() => world.virsh("dominfo", vmName).code === 0, 300_000, 500)).toBe(true);
        // Into the create, past the domain's definition.
        await new Promise((res) => setTimeout(res, 5000));
        process.kill(-child.pid!, "SIGKILL");
    });
    // A killed CLI leaves its lock on the local state: `pulumi cancel` releases it (README).
    const cancel = await world.pulumi(["cancel", "--yes", "-s", "ci"]);
    process.stdout.write(`e2e: pulumi cancel after the kill: exit ${cancel.code}\n`);
    const r = await timed("pulumi up (create, boot, cloud-init), adopting the killed run's VM", () => up("pulumi up after a killed one"));
    expect(r.stdout + r.stderr).toMatch(/already exists .*adopting it/);
    // The killed run's create is still recorded as pending; refresh drops it (README).
    ok(await world.pulumi(["refresh", "--yes", "--skip-preview", "--clear-pending-creates", "-s", "ci"]), "pulumi refresh --clear-pending-creates");
    const again = await timed("pulumi up after converging (no change)", () => up("pulumi up after converging", ["--expect-no-changes"]));
    expect(again.stdout + again.stderr).not.toMatch(/pending operations/);
    // The stack, the component, the VM, the allowlist, the bridge's script list, one secret, one
    // project, its bridge and its secret.
    expect(summary(again)).toMatch(/\b9 unchanged/);
    await readOutputs();
    expect(outputs).toMatchObject({ name: vmName, hypervisor: "libvirt", sshUser: "agent", state: "running" });
    expect(String(outputs.ip)).toMatch(new RegExp(`^${subnet.replace(/\./g, "\\.")}\\.1\\d\\d$`));
    expect(sshCommand).toContain(`agent@${outputs.ip}`);
    // The guest's console is kept on the libvirt host (what a VM that never answers printed), root's
    // only, and the stack's secret is not in it.
    const consoleText = fs.readFileSync(consoleLog, "utf8");
    expect(consoleText).toMatch(/Linux version \d/);
    expect(consoleText).not.toContain(token);
    expect(consoleText).not.toContain(webToken);
    expect(fs.statSync(consoleLog).mode & 0o077).toBe(0);
    // cloud-init's work is done, and kept out of later boots.
    expect((await inGuest("cloud-init status; test -e /etc/cloud/cloud-init.disabled && echo marked")).stdout).toBe("status: disabled\nmarked\n");
    // The image is baked (scripts/build-image.sh): its guest files stayed out of the cloud-config,
    // which carried the stack's own files and the check of the image's, a few kilobytes.
    const seed = (await inGuest("sudo sh -c 'wc -c </var/lib/cloud/instance/user-data.txt; grep -c cc-sandbox-baked /var/lib/cloud/instance/user-data.txt'", { admin: true })).stdout.split("\n");
    expect(Number(seed[0])).toBeLessThan(20_000);
    expect(Number(seed[1])).toBeGreaterThan(0);
});

step("2. the stack's sshCommand logs in, and ~/code is the host's folder both ways", async () => {
    fs.writeFileSync(path.join(world.code, "from-host.txt"), "written on the host\n");
    const r = await timed("ssh and the shared folder", async () =>
        ok(await inGuest("cat ~/code/from-host.txt && echo written in the guest > ~/code/from-guest.txt && id -un"), "ssh"));
    expect(r.stdout).toBe("written on the host\nagent\n");
    expect(fs.readFileSync(path.join(world.code, "from-guest.txt"), "utf8")).toBe("written in the guest\n");
});

step("2a. a shared repository: the agent commits, but plants no git configuration or hook the host would run", async () => {
    const repo = path.join(world.code, "repo");
    const r = await inGuest(`cd ~/code/repo
        try() { local name=$1; shift; if bash -c "$*" >/dev/null 2>&1; then echo "$name=written"; else echo "$name=refused"; fi; }
        try config 'git config core.fsmonitor "echo PLANTED >&2; false"'
        try hook 'printf "#!/bin/sh\\necho PLANTED\\n" > .git/hooks/post-checkout'
        try commondir 'echo /tmp > .git/commondir'
        try rename 'mv .git .git-moved'
        try file 'echo from the agent > agent.txt'
        try commit 'git add agent.txt && git commit -q -m "from the agent"'`);
    expect(r.stdout).toMatch(/^config=refused$/m);
    expect(r.stdout).toMatch(/^hook=refused$/m);
    expect(r.stdout).toMatch(/^commondir=refused$/m);
    expect(r.stdout).toMatch(/^rename=refused$/m);
    expect(r.stdout).toMatch(/^file=written$/m);
    expect(r.stdout).toMatch(/^commit=written$/m);
    // On the host: the agent's commit is there, and git runs nothing the agent planted.
    const log = await world.shell(`git -C ${repo} -c safe.directory='*' log --format=%s`);
    expect(log.stdout).toBe("from the agent\nfirst\n");
    const status = await world.shell(`git -C ${repo} -c safe.directory='*' status --short; git -C ${repo} -c safe.directory='*' checkout -q -b host-side`);
    expect(status.stdout + status.stderr).not.toContain("PLANTED");
    expect(fs.existsSync(path.join(repo, ".git", "hooks", "post-checkout"))).toBe(false);
});

step("3. cc-sandbox-verify passes in the guest; allowlisted names answer, others do not", async () => {
    const asRoot = await timed("cc-sandbox-verify", () => inGuest(`sudo cc-sandbox-verify ${verifyTargets}`, { admin: true }));
    expect(asRoot.stdout.split("\n").filter((l) => l.startsWith("FAIL"))).toEqual([]);
    for (const check of ["firewall-state", "firewall-blocks-address", "firewall-allows", "firewall-names", "dns-blocks-name", "dns-foreign-resolver", "ipv6-blocked", "agent-podman", "proc", "nnp-wrapper", "nnp-login", "bwrap", "ssh", "ssh-keys", "shares", "bridge-loopback", "bridge-dispatcher", "bridge-refuses", "bridge-secrets", "projects"]) {
        expect(asRoot.stdout).toMatch(new RegExp(`^ok  ${check}\\b`, "m"));
    }
    expect(asRoot.code).toBe(0);
    // Nothing skipped for want of Ubuntu's parts: only Claude Code, which the stack does not install.
    expect(asRoot.stdout.split("\n").filter((l) => l.startsWith("skip")).map((l) => l.split(":")[0])).toEqual(["skip claude"]);
    const asAgent = await inGuest(`cc-sandbox-verify ${verifyTargets}`);
    expect(asAgent.stdout.split("\n").filter((l) => l.startsWith("FAIL"))).toEqual([]);
    expect(asAgent.code).toBe(0);

    expect(await banner("allowed.test.example")).toBe(`ok ${hosts["allowed.test.example"]} 443 host=allowed.test.example sni=allowed.test.example`);
    expect(await banner("a.wild.test.example")).toBe(`ok ${hosts["a.wild.test.example"]} 443 host=a.wild.test.example sni=a.wild.test.example`);
    expect(await banner("git.test.example", 22)).toBe(`ok ${hosts["git.test.example"]} 22`);
    // The co-tenant: another site's name sent to the allowlisted address (as on a CDN, the server
    // there answers any name) is refused by the name-checking proxy; the allowlisted name on the
    // same path works.
    const onAllowedAddress = async (name: string) =>
        (await inGuest(`curl -sSk --max-time 6 --connect-to ${name}:443:${hosts["allowed.test.example"]}:443 https://${name}/ 2>&1 || true`)).stdout;
    expect(await onAllowedAddress("allowed.test.example")).toBe(`ok ${hosts["allowed.test.example"]} 443 host=allowed.test.example sni=allowed.test.example\n`);
    expect(await onAllowedAddress("cotenant.test.example")).not.toMatch(/^ok /m);
    expect((await inGuest("sudo grep -c 'why=name-not-allowed name=cotenant.test.example port=443' /var/log/cc-sandbox/proxy.log", { admin: true })).stdout.trim()).not.toBe("0");
    // Attacks: a name off the allowlist, its address directly, an allowlisted host on another port.
    expect(await banner("blocked.test.example")).not.toMatch(/^ok /);
    expect(await banner(hosts["blocked.test.example"])).not.toMatch(/^ok /);
    expect(await banner("allowed.test.example", 8080)).not.toMatch(/^ok /);
    // Rebinding: names under the allowlisted wildcard that resolve to the hypervisor's address on
    // the VM's network and to a private address (both run the banner server) reach nothing.
    for (const [name, ip] of Object.entries(rebindHosts)) {
        expect((await inGuest(`getent ahostsv4 ${name} | head -n1`)).stdout).toMatch(new RegExp(`^${ip.replace(/\./g, "\\.")}\\s`));
        expect(await banner(name)).not.toMatch(/^ok /);
    }
});

step("3a. SSH: every agent session has no_new_privs; a planted key and loopback logins open nothing", async () => {
    // The developer's own session, through the stack's sshCommand.
    expect((await inGuest("grep NoNewPrivs /proc/self/status")).stdout).toMatch(/^NoNewPrivs:\s+1$/m);
    // The agent authorizes a key of its own and tries it from the host side and over loopback.
    const planted = await inGuest(
        "rm -f /tmp/planted /tmp/planted.pub && ssh-keygen -q -t ed25519 -N '' -f /tmp/planted && mkdir -p ~/.ssh && cat /tmp/planted.pub >> ~/.ssh/authorized_keys && cat /tmp/planted",
    );
    ok(planted, "plant a key");
    const key = path.join(world.dir, "planted");
    fs.writeFileSync(key, planted.stdout, { mode: 0o600 });
    // sshCommand with the planted key in place of the stack's (IdentitiesOnly: only it is offered).
    const words = sshCommand.split(" ");
    const destination = words.pop()!;
    words[words.indexOf("-i") + 1] = key;
    const fromHost = await world.shell([...words, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", destination, "--", "echo", "in"].join(" "));
    expect(fromHost.stdout).not.toContain("in");
    expect(fromHost.stderr).toMatch(/Permission denied/);
    const loopback = await inGuest("ssh -i /tmp/planted -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 agent@127.0.0.1 true; echo rc=$?");
    expect(loopback.stdout).toMatch(/rc=255/);
    // The agent sees no other user's processes.
    expect((await inGuest("ps -eo user= | sort -u | tr '\\n' ' '")).stdout.trim()).toBe("agent");
    // Nor through systemd, which reads /proc as root: a root service's command line is not shown
    // to the agent (a D-Bus policy), while the unit's status is, and root sees the command line.
    // (A description of its own: a transient unit's default one is its command line.)
    ok(await inGuest("sudo systemd-run --quiet --unit=cc-e2e-probe --description='e2e probe' sleep 3011", { admin: true }), "start a root probe");
    const shown = await inGuest(
        "systemctl status cc-e2e-probe.service --no-pager -l 2>&1; busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager GetUnitProcesses s cc-e2e-probe.service 2>&1; true",
    );
    expect(shown.stdout).toContain("cc-e2e-probe.service");
    expect(shown.stdout).not.toContain("sleep 3011");
    expect(shown.stdout).toMatch(/Access denied|Rejected send message/);
    expect((await inGuest("sudo systemctl status cc-e2e-probe.service --no-pager -l", { admin: true })).stdout).toContain("sleep 3011");
    ok(await inGuest("sudo systemctl stop cc-e2e-probe.service", { admin: true }), "stop the probe");
});

step("3b. the agent runs the listed script that uses a secret it cannot read", async () => {
    const script = '#!/bin/sh\nset -eu\nprintf "digest %s\\n" "$(sha256sum <"$CC_SECRETS_DIR/E2E_TOKEN" | cut -c1-16)"\n';
    ok(await inGuest(`sudo install -D -m 0755 -o root -g root /dev/stdin ${digestScript}`, { admin: true, input: script }), "install the script");
    const digest = createHash("sha256").update(token).digest("hex").slice(0, 16);
    const r = await timed("secure_run", () => inGuest(`secure_run ${digestScript}`));
    expect(r.stdout).toBe(`digest ${digest}\n`);
    expect(r.code).toBe(0);
    // Attacks: the secret file itself, and another command through the bridge.
    const direct = await inGuest("cat /var/lib/cc-sandbox/secure-ops/secrets/E2E_TOKEN; echo rc=$?");
    expect(direct.stdout).toMatch(/rc=1/);
    expect(direct.stdout + direct.stderr).not.toContain(token);
    const other = await inGuest("secure_run /bin/cat /var/lib/cc-sandbox/secure-ops/secrets/E2E_TOKEN; echo rc=$?");
    expect(other.stdout + other.stderr).not.toContain(token);
    expect(other.stdout).not.toMatch(/rc=0/);
    // Nowhere else: not in the stack's outputs (read with --show-secrets), cloud-init's files or
    // logs, or the stack's state.
    expect(JSON.stringify(outputs)).not.toContain(token);
    expect(JSON.stringify(outputs)).not.toContain(webToken);
    // (The tokens go on stdin: on grep's command line, sudo would log them.)
    const leaks = await inGuest("sudo grep -rlF -f /dev/stdin /var/lib/cloud /var/log /etc /home; echo rc=$?", { admin: true, input: `${token}\n${webToken}\n` });
    expect(leaks.stdout.trim()).toBe("rc=1");
    const stateFiles = fs.readdirSync(world.state, { recursive: true }).map(String).filter((f) => fs.statSync(path.join(world.state, f)).isFile());
    for (const f of stateFiles) {
        const text = fs.readFileSync(path.join(world.state, f), "utf8");
        expect(text).not.toContain(token);
        expect(text).not.toContain(webToken);
    }
});

/** What the digest script prints for a secret's value. */
const digestOf = (value: string) => `digest ${createHash("sha256").update(value).digest("hex").slice(0, 16)}\n`;

step("3f. a project's worker runs its own bridge's script with its own secret, under systemd; not the agent's bridge, nor the agent its", async () => {
    const r = await asWorker("web", `secure_run ${digestScript}`);
    expect(r.stdout).toBe(digestOf(webToken));
    expect((await inGuest(`secure_run ${digestScript}`)).stdout).toBe(digestOf(token));
    expect((await inGuest("systemctl is-active cc-sandbox-secure-ops@web.service; systemctl is-enabled cc-sandbox-secure-ops@web.service")).stdout).toBe("active\nenabled\n");
    // Attacks: the agent on web's bridge by web's home, web on the secrets directly.
    const agent = await inGuest(`HOME=/home/cc-web secure_run ${digestScript}; echo rc=$?`);
    expect(agent.stdout + agent.stderr).not.toContain("digest");
    expect(agent.stdout).toMatch(/rc=2/);
    const direct = await asWorker("web", "cat /var/lib/cc-sandbox/project-secrets/web/secrets/E2E_TOKEN /var/lib/cc-sandbox/secure-ops/secrets/E2E_TOKEN; echo rc=$?");
    expect(direct.stdout + direct.stderr).not.toContain("e2e-");
    expect(direct.stdout).toMatch(/rc=1/);
    expect((await inGuest("sudo cc-sandbox-secure-ops --project web check", { admin: true })).code).toBe(0);
});

step("3e. a project's worker: set up once, confined from the agent and the admin (loopback too), entered from the host", async () => {
    const who = await asWorker("web", "cat ~/setup.out; id -nG; grep NoNewPrivs /proc/self/status");
    expect(who.stdout).toMatch(/^set up as cc-web\ncc-web\nNoNewPrivs:\s+1\n$/);
    expect((await asWorker("web", "ls /home/agent; echo rc=$?")).stdout).toMatch(/rc=2/);
    expect((await asWorker("web", "ls /home/ubuntu; echo rc=$?")).stdout).toMatch(/rc=2/);
    expect((await asWorker("web", "sudo -n true; echo rc=$?")).stdout).toMatch(/rc=1/);
    expect((await inGuest("ls /home/cc-web; echo rc=$?")).stdout).toMatch(/rc=2/);
    expect((await inGuest("sudo cc-sandbox-project status", { admin: true })).stdout).toBe("ok      web (cc-web)\n");
    // The project's enter output, run from the host as it is printed, with a command after it.
    const projects = outputs.projects as Record<string, { user: string; enter: string }>;
    expect(projects.web.user).toBe("cc-web");
    const entered = ok(await world.shell(`${projects.web.enter} -- id -un`), "the project's enter command");
    expect(entered.stdout).toBe("cc-web\n");
    // Its /tmp, /var/tmp and /dev/shm are its own (pam_namespace in Ubuntu's PAM stacks): the
    // agent finds none of its files there, nor the instances.
    ok(await asWorker("web", "umask 022; echo web-tmp > /tmp/web-private; echo web-vartmp > /var/tmp/web-private; echo web-shm > /dev/shm/web-private"), "web's temporary files");
    expect((await asWorker("web", "cat /tmp/web-private /var/tmp/web-private")).stdout).toBe("web-tmp\nweb-vartmp\n");
    const agentSees = await inGuest("for f in /tmp/web-private /var/tmp/web-private /dev/shm/web-private; do test -e $f && echo seen $f; done; ls /var/lib/cc-sandbox/tmp-inst 2>&1; true");
    expect(agentSees.stdout).toMatch(/^ls: cannot (open directory|access) '\/var\/lib\/cc-sandbox\/tmp-inst': Permission denied\n$/);
    // A process of web's, kept running: the next step's in-place changes must leave it alone.
    ok(await asWorker("web", "nohup sleep 3000 >/dev/null 2>&1 &"), "start web's process");
    // The agent does not see it (hidepid).
    expect((await inGuest("pgrep -u cc-web; echo rc=$?")).stdout).toBe("rc=1\n");
    // Loopback between them: the agent's service on 127.0.0.1 answers the agent, not web's worker.
    ok(await inGuest("setsid -f socat TCP4-LISTEN:3300,bind=127.0.0.1,fork,reuseaddr SYSTEM:'echo served-by-agent' </dev/null >/dev/null 2>&1; " +
        "for i in $(seq 100); do ss -Hltn | grep -q '127.0.0.1:3300 ' && exit 0; sleep 0.2; done; exit 1"), "the agent's loopback service");
    const probe = "timeout 6 bash -c 'exec 3<>/dev/tcp/127.0.0.1/3300 && head -1 <&3' 2>&1";
    expect((await inGuest(probe)).stdout).toBe("served-by-agent\n");
    expect((await asWorker("web", probe)).stdout).toMatch(/Connection refused/);
});

/**
 * As the agent, through claude-noprivs (a probe on PATH stands in for claude): bubblewrap bare, and
 * Claude Code's own sandbox as `srt` (@anthropic-ai/sandbox-runtime) runs it. One `KEY=VALUE` a line.
 */
const sandboxProbe = `d=$(mktemp -d)
cat > "$d/claude" <<'PROBE'
#!/bin/bash
grep -q '^NoNewPrivs:[[:space:]]*1' /proc/self/status && echo nnp=1
if out=$(bwrap --ro-bind / / --unshare-all --die-with-parent true 2>&1); then echo bwrap=ok; else echo "bwrap=failed: $out"; fi
cd /tmp && out=$(srt -c 'echo "in-$(id -un)"' 2>&1)
if [[ $out == *in-agent* ]]; then echo srt=ok; else echo "srt=failed: $(tr '\\n' ' ' <<<"$out" | cut -c1-300)"; fi
PROBE
chmod 0755 "$d/claude"
PATH="$d:$PATH" claude-noprivs
rm -rf "$d"`;

step("3c. Ubuntu 24.04: bubblewrap and Claude Code's sandbox work for the agent because of the AppArmor profile, and not without it", async () => {
    expect((await inGuest("cat /proc/sys/kernel/apparmor_restrict_unprivileged_userns /etc/os-release")).stdout).toMatch(/^1\n[^]*VERSION_ID="24\.04"/);
    const loaded = await inGuest(sandboxProbe);
    // (with its stderr and exit: a probe that prints nothing says why)
    expect(`${loaded.stdout}--- stderr (exit ${loaded.code}, ${loaded.seconds} s) ---\n${loaded.stderr.slice(-600)}`).toMatch(/^nnp=1$/m);
    expect(loaded.stdout).toMatch(/^bwrap=ok$/m);
    expect(loaded.stdout).toMatch(/^srt=ok$/m);

    // The profile unloaded: the kernel's restriction applies to bwrap again, and the sandbox fails.
    ok(await inGuest("sudo apparmor_parser -R /etc/apparmor.d/cc-sandbox-bwrap", { admin: true }), "unload the profile");
    const unloaded = await inGuest(sandboxProbe);
    expect(unloaded.stdout).toMatch(/^bwrap=failed: .*(setting up uid map|Permission denied|Operation not permitted)/m);
    expect(unloaded.stdout).toMatch(/^srt=failed/m);
    const check = await inGuest("sudo cc-sandbox-verify --only apparmor,bwrap", { admin: true });
    expect(check.stdout).toMatch(/^FAIL apparmor: no bwrap profile loaded/m);
    expect(check.stdout).toMatch(/^FAIL bwrap:/m);
    expect(check.code).not.toBe(0);

    // Loaded again by its boot step, as every boot does.
    ok(await inGuest("sudo bash /usr/local/lib/cc-sandbox/boot.d/30-apparmor.sh", { admin: true }), "30-apparmor.sh");
    const again = await inGuest(sandboxProbe);
    expect(again.stdout).toMatch(/^bwrap=ok$/m);
    expect(again.stdout).toMatch(/^srt=ok$/m);
});

step("3d. Ubuntu 24.04: systemd-resolved resolves nothing for the agent, by its stub or by asking it directly", async () => {
    // The path every program takes: the filtering resolver.
    expect((await inGuest("getent ahostsv4 allowed.test.example | head -n1")).stdout).toMatch(/^198\.19\.0\.10\s/);
    expect((await inGuest("getent ahostsv4 blocked.test.example; echo rc=$?")).stdout).toBe("rc=2\n");
    // resolved runs (networkd hands it the DHCP servers), but its stubs do not listen; asked over
    // D-Bus/varlink it can send nothing past the firewall to those servers, and what it gets from
    // the filtering resolver (it reads /etc/resolv.conf) is what the allowlist allows.
    expect((await inGuest("systemctl is-active systemd-resolved")).stdout).toBe("active\n");
    for (const stub of ["127.0.0.53", "127.0.0.54"]) {
        const r = await inGuest(`timeout 5 bash -c 'exec 3<>/dev/tcp/${stub}/53' 2>/dev/null && echo open || echo closed`);
        expect(r.stdout).toBe("closed\n");
    }
    const asked = await inGuest("timeout 20 resolvectl query --cache=no blocked.test.example 2>&1; echo rc=$?");
    expect(asked.stdout).not.toContain(hosts["blocked.test.example"]);
    expect(asked.stdout).toMatch(/^rc=[1-9]\d*$/m);
    const allowed = await inGuest("timeout 20 resolvectl query --cache=no allowed.test.example 2>&1; echo rc=$?");
    if (/^rc=0$/m.test(allowed.stdout)) expect(allowed.stdout).toContain(`allowed.test.example: ${hosts["allowed.test.example"]}`);
});

step("4. an allowlist change is applied in the running guest, with no replacement", async () => {
    const stack = fs.readFileSync(world.stackFile, "utf8");
    expect(stack).toContain("      - allowed.test.example\n");
    fs.writeFileSync(world.stackFile, stack.replace("      - allowed.test.example\n", "      - new.test.example\n"));
    // And a second project.
    ok(await world.pulumi(["config", "set", "--path", "cc-sandbox:projects[1].name", "docs", "-s", "ci"]), "config set second project");
    // whose worker alone keeps the name the stack no longer allows
    ok(await world.pulumi(["config", "set", "--path", "cc-sandbox:projects[1].allowlist.domains[0]", "allowed.test.example", "-s", "ci"]), "config set the project's allowlist");
    // and whose code is a clone of a repository here, with a change not committed yet
    const docsRepo = path.join(world.dir, "docs-repo");
    fs.mkdirSync(docsRepo);
    git(docsRepo, "init", "-q", "-b", "main");
    fs.writeFileSync(path.join(docsRepo, "README"), "docs\n");
    git(docsRepo, "add", "README");
    git(docsRepo, "commit", "-qm", "first");
    fs.appendFileSync(path.join(docsRepo, "README"), "not committed yet\n");
    ok(await world.pulumi(["config", "set", "--path", "cc-sandbox:projects[1].clone", docsRepo, "-s", "ci"]), "config set the project's clone");
    // and which runs containers (Podman is in the image; the firewall has long closed the archive)
    ok(await world.pulumi(["config", "set", "--path", "--type", "bool", "cc-sandbox:projects[1].containers", "true", "-s", "ci"]), "config set the project's containers");
    // The first project's allowlist edited: web gets plain HTTP on the stack's new name, which the stack gives only on 443.
    ok(await world.pulumi(["config", "set", "--path", "cc-sandbox:projects[0].allowlist.domains[0].name", "new.test.example", "-s", "ci"]), "config set web's allowlist");
    ok(await world.pulumi(["config", "set", "--path", "cc-sandbox:projects[0].allowlist.domains[0].ports[0]", "80/http", "-s", "ci"]), "config set web's allowlist port");
    const bootId = (await inGuest("cat /proc/sys/kernel/random/boot_id")).stdout;
    const webProcess = (await inGuest("sudo pgrep -u cc-web -x sleep", { admin: true })).stdout.trim();
    expect(webProcess).toMatch(/^\d+$/);
    // An open SSH session of web's (the way its enter output goes in), across the up.
    let sessionEnded = false;
    const session = inGuest("sudo cc-sandbox-project enter web -- sh -c 'echo open; exec sleep 901'", { admin: true }).then((s) => {
        sessionEnded = true;
        return s;
    });
    expect(await waitFor(async () => (await inGuest("sudo pgrep -u cc-web -fx 'sleep 901'", { admin: true })).code === 0, 30_000, 500)).toBe(true);

    const r = await timed("pulumi up (allowlist and a project)", () => up("pulumi up (allowlist)"));
    // The allowlist is pushed and the project added; the VM records its new seed and is left alone
    // (no create, no adopt), and so is the other project.
    expect(summary(r)).toMatch(/~ 2 updated/);
    expect(summary(r)).toMatch(/\+ 1 created/);
    expect(summary(r)).not.toMatch(/replaced|deleted/);
    expect((await asWorker("docs", "id -un")).stdout).toBe("cc-docs\n");
    expect((await inGuest(`sudo kill -0 ${webProcess}; echo rc=$?`, { admin: true })).stdout).toBe("rc=0\n");
    // web's session is still open: it ends when its command is ended, not before.
    expect(sessionEnded).toBe(false);
    ok(await inGuest("sudo pkill -u cc-web -fx 'sleep 901'", { admin: true }), "end web's session");
    const ended = await session;
    expect(ended.stdout).toBe("open\n");
    // ended by that signal (sleep's SIGTERM), not by ssh losing the connection (255)
    expect(ended.code).toBeGreaterThan(128);
    expect(ended.code).not.toBe(255);
    // web's edited allowlist, in place: plain HTTP on the new name for web alone.
    const http = async (project?: string) => {
        const cmd = "curl -sS --max-time 6 http://new.test.example/ 2>&1 || true";
        return (project ? await asWorker(project, cmd) : await inGuest(cmd)).stdout.split("\n")[0];
    };
    expect(await http("web")).toBe(`ok ${hosts["new.test.example"]} 80 host=new.test.example`);
    expect(await http("docs")).not.toMatch(/^ok /);
    expect(await http()).not.toMatch(/^ok /);
    // The clone: the host's commit and its uncommitted change, uncommitted.
    expect((await asWorker("docs", "cd code && git log --format=%s && git status --porcelain && tail -1 README")).stdout).toBe("first\n M README\nnot committed yet\n");
    expect(r.stdout + r.stderr).not.toMatch(/adopting it|creating cc-ci/);
    expect((await inGuest("cat /proc/sys/kernel/random/boot_id")).stdout).toBe(bootId);
    expect(await banner("new.test.example")).toBe(`ok ${hosts["new.test.example"]} 443 host=new.test.example sni=new.test.example`);
    expect(await banner("allowed.test.example")).not.toMatch(/^ok /);
    expect(await banner(hosts["allowed.test.example"])).not.toMatch(/^ok /);
    // Per-project egress: the docs worker reaches its own name, by name; the web worker does not.
    const asWorkerCurl = async (project: string) => (await asWorker(project, "curl -sSk --max-time 6 https://allowed.test.example/ 2>&1 || true")).stdout.split("\n")[0];
    expect(await asWorkerCurl("docs")).toBe(`ok ${hosts["allowed.test.example"]} 443 host=allowed.test.example sni=allowed.test.example`);
    expect(await asWorkerCurl("web")).not.toMatch(/^ok /);
    // The guest names the policy in force as the stack's output does.
    const before = String(outputs.policy);
    await readOutputs();
    expect(String(outputs.policy)).toMatch(/^[0-9a-f]{16}$/);
    expect(outputs.policy).not.toBe(before);
    expect((await inGuest("sudo cc-sandbox-firewall status", { admin: true })).stdout).toContain(`ON (policy ${outputs.policy}; `);
});

step("4a. the clone project's work comes back to the host repository as a branch; the host's working tree is untouched", async () => {
    const docsRepo = path.join(world.dir, "docs-repo");
    const status = git(docsRepo, "status", "--porcelain");
    ok(await asWorker("docs", "cd code && echo 'by the agent' > agent.txt && git add agent.txt && git -c user.name=agent -c user.email=agent@sandbox commit -qm 'agent work'"), "the worker commits");
    const r = await timed("npm run project -- sync", async () => ok(await world.projectCli(["sync", "--stack", "ci", "--project", "docs"]), "sync"));
    expect(r.stdout).toMatch(/^cc-sandbox\/docs in .*docs-repo: new at [0-9a-f]{12}\n/);
    // The worker's commit, and what it left uncommitted (the host's change to README, which went in
    // with the code) as one more commit on top.
    expect(git(docsRepo, "log", "--format=%s", "cc-sandbox/docs")).toBe("Uncommitted changes in the sandbox (cc-docs)\nagent work\nfirst");
    expect(git(docsRepo, "show", "cc-sandbox/docs:agent.txt")).toBe("by the agent");
    expect(git(docsRepo, "show", "cc-sandbox/docs:README")).toBe("docs\nnot committed yet");
    expect(git(docsRepo, "show", "cc-sandbox/docs~1:README")).toBe("docs");
    expect(git(docsRepo, "rev-parse", "--abbrev-ref", "HEAD")).toBe("main");
    expect(git(docsRepo, "status", "--porcelain")).toBe(status);
});

step("4b. a project's containers: rootless Podman as its worker (its uid alone), under its egress by name; the other project's worker cannot run it", async () => {
    // An image of the guest's own programs (no registry is reachable), which the workers can read.
    const image = "/usr/local/share/ccsbx-test/rootfs.tar";
    ok(await inGuest(`sudo sh -c 'install -d -m 0755 ${path.dirname(image)} && bash -s >${image} && chmod 0644 ${image}'`, {
        admin: true,
        input: fs.readFileSync(path.join(root, "test/container-rootfs.sh"), "utf8"),
    }), "the image's root filesystem");
    await timed("podman import (docs)", async () => ok(await asWorker("docs", `podman import ${image} localhost/ccsbx-test`), "podman import as docs"));
    // (Podman's own log lines, `time="…" level=warning …`, left out.)
    const run = (args: string) => asWorker("docs", `{ podman run --rm ${args} 2>&1; echo rc=$?; } | grep -v '^time="'`);
    // Root in the container is docs's uid mapped alone; an image's other users' files are its too.
    const docsUid = (await inGuest("id -u cc-docs")).stdout.trim();
    const ids = await timed("podman run (docs)", () =>
        run("localhost/ccsbx-test /bin/bash -c 'id -u; cat /proc/self/uid_map /home/app/owned; while read -r k v; do [[ $k != NoNewPrivs: ]] || echo nnp=$v; done </proc/self/status'"));
    // with the no_new_privs of the worker's login
    expect(ids.stdout).toMatch(new RegExp(`^0\\n\\s*0\\s+${docsUid}\\s+1\\napp\\nnnp=1\\nrc=0\\n$`));
    // Its own name, through slirp4netns and on the host's network.
    const curl = (args: string, url: string) => run(`${args} localhost/ccsbx-test curl -sSk --max-time 6 ${url}`);
    const allowed = `ok ${hosts["allowed.test.example"]} 443 host=allowed.test.example sni=allowed.test.example\nrc=0\n`;
    expect((await curl("", "https://allowed.test.example/")).stdout).toBe(allowed);
    expect((await curl("--network host", "https://allowed.test.example/")).stdout).toBe(allowed);
    // Attacks: the co-tenant (another name on docs's allowed address), and web's own name.
    expect((await curl("", `--connect-to cotenant.test.example:443:${hosts["allowed.test.example"]}:443 https://cotenant.test.example/`)).stdout).not.toMatch(/^ok /m);
    expect((await curl("--network host", "http://new.test.example/")).stdout).not.toMatch(/^ok /m);
    // web's project has no containers: its worker cannot run podman, nor can the agent (dash says
    // so with 127, bash with 126).
    // (The whole result on a mismatch: a CI run once got empty output here, and no more was known.)
    const denied = async (r: Promise<Run>) => {
        const { code, stdout, stderr } = await r;
        return { code, stdout, stderr: code === 0 ? "" : stderr };
    };
    const podmanDenied = { code: 0, stdout: expect.stringMatching(/Permission denied\nrc=12[67]\n$/), stderr: "" };
    expect(await denied(asWorker("web", "podman --version 2>&1; echo rc=$?"))).toEqual(podmanDenied);
    expect(await denied(inGuest("podman --version 2>&1; echo rc=$?"))).toEqual(podmanDenied);
    expect((await inGuest("sudo cc-sandbox-project status", { admin: true })).stdout).toBe("ok      docs (cc-docs)\nok      web (cc-web)\n");
});

/** The host folder the "share" project shares (4c), writable by every uid as the guest shows it. */
const shareFolder = () => path.join(world.dir, "share-folder");
/** Which of the domain's definitions (live, persistent) hold the share project's virtiofs device. */
const shareDevice = () =>
    [world.virsh("dumpxml", vmName).stdout, world.virsh("dumpxml", "--inactive", vmName).stdout].map((xml) => (xml.includes("<target dir='p-share'/>") ? "attached" : "none")).join(" ");

step("4c. a project's shared folder (mount) is added to the running VM in place: its worker's alone, both ways, its repository's git configuration pinned", async () => {
    const folder = shareFolder();
    fs.mkdirSync(folder, { mode: 0o777 });
    fs.chmodSync(folder, 0o777);
    fs.writeFileSync(path.join(folder, "from-host.txt"), "written on the host\n");
    git(folder, "init", "-q", "-b", "main", "repo");
    git(path.join(folder, "repo"), "-c", "user.name=dev", "-c", "user.email=dev@example.org", "commit", "-q", "--allow-empty", "-m", "first");
    await world.shell(`chmod -R a+rwX ${shellQuote(folder)}`);
    ok(await world.pulumi(["config", "set", "--path", "cc-sandbox:projects[2].name", "share", "-s", "ci"]), "config set the share project");
    ok(await world.pulumi(["config", "set", "--path", "cc-sandbox:projects[2].mount", folder, "-s", "ci"]), "config set its mount");
    const bootId = (await inGuest("cat /proc/sys/kernel/random/boot_id")).stdout;
    const r = await timed("pulumi up (a mount project)", () => up("pulumi up (mount project)"));
    expect(summary(r)).toMatch(/\+ 1 created/);
    expect(summary(r)).not.toMatch(/replaced|deleted/);
    expect((await inGuest("cat /proc/sys/kernel/random/boot_id")).stdout).toBe(bootId);
    // In the running domain and in its definition (for the next start).
    expect(shareDevice()).toBe("attached attached");
    // Both ways, through the worker's ~/code.
    const both = await asWorker("share", "cat ~/code/from-host.txt && echo written by the worker > ~/code/from-worker.txt && readlink ~/code");
    expect(both.stdout).toBe("written on the host\n/srv/cc-projects/share/code\n");
    expect(fs.readFileSync(path.join(folder, "from-worker.txt"), "utf8")).toBe("written by the worker\n");
    // Its repository: the worker commits, but plants nothing the host's git would run.
    const repo = await asWorker("share", `cd ~/code/repo
        try() { if sh -c "$2" >/dev/null 2>&1; then echo "$1=written"; else echo "$1=refused"; fi; }
        try config 'git config core.fsmonitor "echo PLANTED >&2; false"'
        try hook 'printf "#!/bin/sh\\necho PLANTED\\n" > .git/hooks/post-checkout'
        try commit 'git -c user.name=w -c user.email=w@e commit -q --allow-empty -m "from the worker"'`);
    expect(repo.stdout).toBe("config=refused\nhook=refused\ncommit=written\n");
    expect(git(path.join(folder, "repo"), "log", "--format=%s")).toBe("from the worker\nfirst");
    const hostStatus = await world.shell(`git -C ${shellQuote(path.join(folder, "repo"))} -c safe.directory='*' status --short`);
    expect(hostStatus.stdout + hostStatus.stderr).not.toContain("PLANTED");
    // Nobody else's: the agent, and the other projects' workers.
    const denied = "cat /srv/cc-projects/share/code/from-host.txt 2>&1; ls /srv/cc-projects/share 2>&1; echo rc=$?";
    for (const who of [() => inGuest(denied), () => asWorker("docs", denied), () => asWorker("web", denied)]) {
        expect((await who()).stdout).toMatch(/Permission denied\n.*Permission denied\nrc=2\n$/s);
    }
    expect((await inGuest("sudo cc-sandbox-project status", { admin: true })).stdout).toBe("ok      docs (cc-docs)\nok      share (cc-share)\nok      web (cc-web)\n");
});

step("5. a second pulumi up with nothing changed changes nothing", async () => {
    const r = await timed("pulumi up (no change)", () => up("pulumi up (no change)", ["--expect-no-changes"]));
    expect(summary(r)).toMatch(/\d+ unchanged/);
    expect(summary(r)).not.toMatch(/updated|replaced|created|deleted/);
});

step("6. after a reboot the firewall is up before the network and SSH, the shares' first pass before anyone logs in", async () => {
    const before = (await inGuest("cat /proc/sys/kernel/random/boot_id")).stdout;
    await inGuest("sudo systemctl reboot", { admin: true, timeoutMs: 30_000 });
    const back = await timed("reboot until SSH answers", () => world.newBoot(sshCommand, before));
    expect(back.stdout).not.toBe(before);
    // Where the reboot's time went, for the log (the poll above only sees when SSH answers).
    const analyze = await inGuest("systemd-analyze; systemd-analyze blame --no-pager | head -n 8", { admin: true });
    console.log(`e2e: reboot: ${analyze.stdout.trim().split("\n").join(" | ")}`);
    // cloud-init stayed out of this boot (its stages are oneshot units that stay active once run).
    const ci = await inGuest("systemctl is-active cloud-init-local.service cloud-config.service cloud-final.service; cloud-init status", { admin: true });
    expect(ci.stdout).toBe("inactive\ninactive\ninactive\nstatus: disabled\n");
    const units = "cc-sandbox-firewall.service systemd-networkd.service ssh.socket cc-sandbox-shares.service ssh.service systemd-user-sessions.service";
    const r = ok(await inGuest(`systemctl show -p Id -p ActiveEnterTimestampMonotonic -p InactiveExitTimestampMonotonic ${units}`, { admin: true }), "systemctl show");
    const at = Object.fromEntries(
        r.stdout.trim().split("\n\n").map((block) => {
            const kv = Object.fromEntries(block.split("\n").map((l) => l.split("=", 2) as [string, string]));
            return [kv.Id, { up: Number(kv.ActiveEnterTimestampMonotonic), starting: Number(kv.InactiveExitTimestampMonotonic) }];
        }),
    );
    const firewall = at["cc-sandbox-firewall.service"];
    expect(firewall.up).toBeGreaterThan(0);
    expect(firewall.up).toBeLessThanOrEqual(at["systemd-networkd.service"].starting);
    expect(firewall.up).toBeLessThanOrEqual(at["ssh.socket"].starting);
    // The shares' first pass (the unit is up once it ran) came before sshd (socket-activated: the
    // test's own login started it) and user sessions; cron (not in this image) is ordered after it.
    const shares = at["cc-sandbox-shares.service"];
    expect(shares.up).toBeGreaterThan(0);
    for (const unit of ["ssh.service", "systemd-user-sessions.service"]) {
        expect([unit, at[unit].starting > 0]).toEqual([unit, true]);
        expect([unit, shares.up <= at[unit].starting]).toEqual([unit, true]);
    }
    expect(ok(await inGuest("systemctl show -p Before --value cc-sandbox-shares.service", { admin: true }), "systemctl show").stdout.split(/\s+/)).toContain("cron.service");
    // Ubuntu's network stack came up behind it: netplan's config from cloud-init, rendered for
    // systemd-networkd, with the VM's address and its DHCP routes to the test's hosts.
    const net = ok(await inGuest("ls /etc/netplan; networkctl list --no-legend; ip -4 route", { admin: true }), "networkctl");
    expect(net.stdout).toMatch(/^50-cloud-init\.yaml$/m);
    expect(net.stdout).toMatch(/\bether\s+routable\s+configured\b/);
    expect(net.stdout).toContain(`${internet}.0/24 via ${subnet}.1`);
    // The layers later boots set up again: /proc's hidepid (fstab), the agent's login, its keys.
    const v = await inGuest(`sudo cc-sandbox-verify --only firewall,dns,proc,nnp,ssh ${verifyTargets.replace("allowed.test.example", "new.test.example")}`, { admin: true });
    expect(v.stdout.split("\n").filter((l) => l.startsWith("FAIL"))).toEqual([]);
    for (const check of ["proc", "nnp-login", "ssh-keys"]) expect(v.stdout).toMatch(new RegExp(`^ok  ${check}\\b`, "m"));
    expect(v.code).toBe(0);
    // The project's bridge is back too (its unit is enabled).
    expect((await asWorker("web", `secure_run ${digestScript}`)).stdout).toBe(digestOf(webToken));
    // Its /var/tmp outlived the reboot, still its own (the instances' parents are made at boot).
    expect((await asWorker("web", "cat /var/tmp/web-private")).stdout).toBe("web-vartmp\n");
    expect((await inGuest("sudo cc-sandbox-project status", { admin: true })).stdout).toMatch(/^ok {6}web \(cc-web\)$/m);
});

step("6a. the shared folder is back after the reboot; removing its project in place detaches it and leaves the host's files", async () => {
    expect((await asWorker("share", "cat ~/code/from-worker.txt")).stdout).toBe("written by the worker\n");
    expect((await inGuest("sudo cc-sandbox-project status share", { admin: true })).stdout).toBe("ok      share (cc-share)\n");
    const bootId = (await inGuest("cat /proc/sys/kernel/random/boot_id")).stdout;
    ok(await world.pulumi(["config", "rm", "--path", "cc-sandbox:projects[2]", "-s", "ci"]), "config rm the share project");
    const r = await timed("pulumi up (the mount project removed)", () => up("pulumi up (mount project removed)"));
    expect(summary(r)).toMatch(/- 1 deleted/);
    expect(summary(r)).not.toMatch(/replaced|created/);
    expect((await inGuest("cat /proc/sys/kernel/random/boot_id")).stdout).toBe(bootId);
    expect(shareDevice()).toBe("none none");
    const left = await inGuest("ls -d /srv/cc-projects/share 2>&1; grep -c p-share /etc/fstab; getent passwd cc-share | wc -l", { admin: true });
    expect(left.stdout).toMatch(/No such file or directory\n0\n0\n$/);
    expect(fs.readdirSync(shareFolder()).sort()).toEqual(["from-host.txt", "from-worker.txt", "repo"]);
});

step("7. a VM deleted behind Pulumi's back is created again; then pulumi destroy leaves no domain, disk, seed, UEFI variable store, known_hosts or state", async () => {
    const before = world.virsh("domuuid", vmName).stdout.trim();
    expect(before).not.toBe("");
    expect(world.virsh("destroy", vmName).code).toBe(0);
    // --nvram: the ci stack boots by UEFI, and libvirt refuses to undefine such a VM without a word on its variable store.
    expect(world.virsh("undefine", vmName, "--remove-all-storage", "--nvram").code).toBe(0);
    await timed("pulumi up (VM deleted outside Pulumi)", () => up("pulumi up (recreate)"));
    // A new domain, with new host keys: the stack's ssh command still works (known_hosts renewed).
    const after = world.virsh("domuuid", vmName).stdout.trim();
    expect(after).not.toBe("");
    expect(after).not.toBe(before);
    expect(world.virsh("domstate", vmName).stdout.trim()).toBe("running");
    await readOutputs();
    expect((await inGuest("cat ~/code/from-host.txt")).stdout).toBe("written on the host\n");
    // What the guest resources put into the old VM is in the new one too (not taken out again by
    // the replaced resources' undo): the projects' workers and the bridge's secret.
    expect((await inGuest("sudo cc-sandbox-project list | tail -n +2 | cut -d' ' -f1 | tr '\\n' ' '", { admin: true })).stdout).toBe("docs web ");
    expect((await inGuest("sudo test -s /var/lib/cc-sandbox/secure-ops/secrets/E2E_TOKEN; echo rc=$?", { admin: true })).stdout).toBe("rc=0\n");
    // The project's bridge and its secret (the script itself was installed by hand in the old VM).
    expect((await inGuest("sudo test -s /var/lib/cc-sandbox/project-secrets/web/secrets/E2E_TOKEN; echo rc=$?; systemctl is-active cc-sandbox-secure-ops@web.service", { admin: true })).stdout).toBe("rc=0\nactive\n");
    await timed("pulumi destroy", async () => ok(await world.pulumi(["destroy", "--yes", "--skip-preview", "-s", "ci"]), "pulumi destroy"));
    expect(world.leftovers()).toEqual([]);
    expect(await world.stateResources()).toEqual([]);
});
