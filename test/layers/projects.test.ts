/**
 * Projects' workers, attacked: in one guest namespace (with a PID namespace and a /proc of its own,
 * mounted hidepid=invisible as boot step 15 does), cc-sandbox-project adds two projects, web and
 * api; then web's worker goes after api's files and processes, the agent's and the admin's, and
 * root, each beside the allowed work that must still succeed. api is removed while it runs
 * processes that fork as they are killed.
 */
import { projectSpec, projectUid } from "../../src/config/projects";
import { asAgent, boot, inGuest, tryResult } from "./guest";

const tool = "/usr/local/sbin/cc-sandbox-project";
const web = projectUid("web");
const api = projectUid("api");
const hooked = projectSpec({
    name: "hooked",
    user: "cc-hooked",
    uid: projectUid("hooked"),
    // The word the host reads on add's stdout to send a clone's code (`import`): a hook cannot say it.
    setup: `echo "$CC_PROJECT $CC_PROJECT_USER $CC_PROJECT_HOME $CC_PROJECT_LEVEL $(id -un) $(pwd) $(grep NoNewPrivs /proc/self/status | tr -d '\t')" > ~/setup.out; env > ~/setup.env; echo import; echo import >&2`,
    // What it prints is shown on the host: a terminal's escape sequences are taken out.
    cleanup: `printf 'esc:\\033]0;title\\007\\033[31mred\\n'; echo "cleaning $CC_PROJECT $CC_PROJECT_LEVEL $(id -un) $(cat ~/setup.out | wc -l)"`,
});
// Its hooks' log made a pipe its own process keeps open: reading its end would never finish.
const jammed = projectSpec({
    name: "jammed",
    user: "cc-jammed",
    uid: projectUid("jammed"),
    setup: "rm ~/.cc-sandbox-hooks.log; mkfifo ~/.cc-sandbox-hooks.log; setsid sleep 600 <>~/.cc-sandbox-hooks.log >/dev/null 2>&1 &",
    cleanup: "echo bye",
});
const slow = projectSpec({ name: "slow", user: "cc-slow", uid: projectUid("slow"), setup: "sleep 4 # marker-7f3a" });
const failing = projectSpec({ name: "broken", user: "cc-broken", uid: projectUid("broken"), setup: "echo half-made > ~/x; sleep 300 & exit 7" });
const asWeb = "setpriv --reuid=cc-web --regid=cc-web --init-groups --reset-env --";

const attempts: Record<string, string> = {
    // allowed work: its own home, through the way in the tool gives (a PAM login, no_new_privs)
    "web-own-home": `${tool} enter web -- sh -c 'echo mine > ~/notes && cat ~/notes'`,
    "web-nnp-at-login": `${tool} enter web -- grep NoNewPrivs /proc/self/status`,
    // from a terminal, on a terminal of its own: what it leaves running cannot reach the caller's
    "web-own-terminal": `script -qec "tty; ${tool} enter web -- tty" /dev/null | grep -o "/dev/pts/[0-9]*"`,
    // (until the child has become sleep: right after the fork it is still sh)
    "web-own-process": `${asWeb} sh -c 'sleep 30 >/dev/null & for i in $(seq 50); do pgrep -u cc-web -x sleep >/dev/null && { echo seen; break; }; sleep 0.1; done; kill $!'`,
    "web-groups": "id -nG cc-web",
    "api-reads-own": `${tool} enter api -- cat /home/cc-api/token.txt`,
    // Claude Code set up as the agent's (root's copy of its settings: no permission prompts)
    "web-claude-settings": `${asWeb} sh -c 'cmp ~/.claude/settings.json /usr/local/lib/cc-sandbox/claude-settings.json && grep -c bypassPermissions ~/.claude/settings.json && stat -c %U ~/.claude/settings.json'`,
    // another project's files
    "web-list-api-home": `${asWeb} ls /home/cc-api`,
    "web-read-api-file": `${asWeb} cat /home/cc-api/token.txt`,
    "web-write-api-home": `${asWeb} touch /home/cc-api/planted`,
    "web-read-api-tmp": `${asWeb} cat /tmp/api-private`,
    // another project's processes
    "web-see-api-process": `${asWeb} sh -c 'pgrep -u cc-api && echo visible; ls /proc | grep -qx "$(cat /tmp/api-pid)" && echo visible; true'`,
    "web-read-api-environ": `${asWeb} sh -c 'cat /proc/$(cat /tmp/api-pid)/environ'`,
    "web-kill-api": `${asWeb} sh -c 'kill -9 $(cat /tmp/api-pid)'`,
    // the agent's and the admin's
    "web-list-agent-home": `${asWeb} ls /home/agent`,
    "web-list-admin-home": `${asWeb} ls /home/ubuntu`,
    "agent-list-web-home": `${asAgent} ls /home/cc-web`,
    // root, and the other worker
    // (with cloud-init's sudoers granting cc-web NOPASSWD sudo, and cc-api given a password web knows)
    "web-sudo": `${asWeb} sudo -n true`,
    "web-su-api": `${asWeb} su cc-api -c true <<<api-password`,
    "helper-sudo": `setpriv --reuid=helper --regid=helper --init-groups --reset-env -- sudo -n true`,
    "helper-su-api": `setpriv --reuid=helper --regid=helper --init-groups --reset-env -- su cc-api -c "echo in" <<<api-password`,
    "web-runs-tool": `${asWeb} ${tool} remove api`,
    "web-edit-registry": `${asWeb} sh -c 'echo uid=0 > /etc/cc-sandbox/projects.d/web'`,
};

let out = "";
const result = (name: string) => tryResult(out, name);

beforeAll(() => {
    const tries = Object.entries(attempts)
        .map(([name, cmd]) => `try ${name} ${JSON.stringify(cmd).replace(/\$/g, "\\$")}`)
        .join("\n");
    const r = inGuest(`
        unshare --pid --fork --mount-proc bash -euo pipefail -c '
          mount -o remount,hidepid=invisible /proc
          try() {
            local name=$1 rc=0 msg
            msg=$(timeout 30 bash -c "$2" 2>&1 </dev/null) || rc=$?
            echo "$name=$rc $(tr "\\n" " " <<<"$msg")"
          }
          ${boot("10-users.sh")} 2>/dev/null
          ${tool} add web ${web}
          ${tool} add api ${api}
          echo "again=$(${tool} add web ${web} 2>&1 | tail -1)"
          ${tool} enter api -- sh -c "umask 022; echo api-token > ~/token.txt; umask 077; echo private > /tmp/api-private"
          # A process of api that web tries to find, read and kill.
          ${tool} enter api -- sh -c "exec sleep 300" &
          for i in $(seq 50); do pid=$(pgrep -u cc-api -x sleep || true); [[ -z $pid ]] || break; sleep 0.1; done
          echo "$pid" > /tmp/api-pid
          # The mistakes the by-name deny and pam_wheel must hold against, undone after the tries.
          useradd --create-home --groups sudo helper
          printf "%s ALL=(ALL) NOPASSWD:ALL\\n" cc-web helper >> /etc/sudoers.d/90-cloud-init-users
          echo "cc-api:api-password" | chpasswd
          ${tries.replace(/'/g, "'\\''")}
          sed -i "/^cc-web /d; /^helper /d" /etc/sudoers.d/90-cloud-init-users
          usermod -p "!" cc-api
          echo "status-before=$(${tool} status >/dev/null 2>&1; echo $?)"
          echo "verify-before=$(cc-sandbox-verify --only projects 2>&1 | tr "\n" " ")"
          chmod 0755 /home/cc-api
          echo "verify-loose=$(cc-sandbox-verify --only projects 2>&1 | tr "\n" " ")"
          echo "status-loose=$(${tool} status 2>&1 | grep FAIL | tr "\\n" " ")rc=$(${tool} status >/dev/null 2>&1; echo $?)"
          chmod 0700 /home/cc-api
          # api keeps processes alive that fork as they are killed, in sessions of their own.
          for i in 1 2 3; do
            setsid setpriv --reuid=cc-api --regid=cc-api --init-groups -- bash -c "while :; do sleep 60 & sleep 0.01; done" </dev/null >/dev/null 2>&1 &
          done
          sleep 1
          echo "api-procs-before=$(pgrep -u ${api} | wc -l)"
          ${tool} remove api
          echo "api-procs-after=$(pgrep -u ${api} | wc -l) user=$(getent passwd cc-api | wc -l) home=$(ls -d /home/cc-api 2>/dev/null | wc -l) tmp=$(ls -d /var/lib/cc-sandbox/tmp-inst/tmp/cc-api /var/lib/cc-sandbox/tmp-inst/var-tmp/cc-api 2>/dev/null | wc -l) sudoers=$(grep -c cc-api /etc/sudoers.d/cc-sandbox-projects || true)"
          echo "removed-again=$(${tool} remove api >/dev/null 2>&1; echo $?)"
          echo "list=$(${tool} list | tail -n +2 | tr -s " " | tr "\\n" ";")"
          # What add refuses.
          useradd --no-create-home cc-evil
          refuse() { local name=$1 rc=0 msg; shift; msg=$("$@" 2>&1) || rc=$?; echo "$name=$rc $(tr "\\n" " " <<<"$msg")"; }
          refuse refuse-foreign-user ${tool} add evil 20001
          refuse refuse-renumber ${tool} add web 20002
          useradd --no-create-home --uid 20003 squatter
          refuse refuse-taken-uid ${tool} add other 20003
          refuse refuse-low-uid ${tool} add other 1001
          refuse refuse-bad-name ${tool} add ../etc 20004
          refuse refuse-remove-foreign ${tool} remove evil
          refuse agent-runs-tool ${asAgent} ${tool} list
        '
    `);
    out = r.stdout;
    if (r.status !== 0) throw new Error(`the projects run failed (${r.status}): ${r.stderr}\n${r.stdout}`);
}, 180_000);

test("a worker works in its own home, logs in with no_new_privs, and has no group but its own", () => {
    expect(result("web-own-home")).toEqual({ rc: 0, out: "mine " });
    expect(result("web-nnp-at-login").out).toMatch(/NoNewPrivs:\s+1/);
    const [callers, workers] = result("web-own-terminal").out.trim().split(" ");
    expect(callers).toMatch(/^\/dev\/pts\/\d+$/);
    expect(workers).toMatch(/^\/dev\/pts\/\d+$/);
    expect(workers).not.toBe(callers);
    expect(result("web-own-process")).toEqual({ rc: 0, out: "seen " });
    expect(result("web-groups").out.trim()).toBe("cc-web");
    expect(result("api-reads-own")).toEqual({ rc: 0, out: "api-token " });
    expect(result("web-claude-settings")).toEqual({ rc: 0, out: "1 cc-web " });
    expect(out).toMatch(/^again=.*project web: cc-web \(uid \d+\)/m);
});

test("a worker can neither list, read nor write another project's home or private files", () => {
    for (const name of ["web-list-api-home", "web-read-api-file", "web-write-api-home"]) {
        expect({ name, ...result(name) }).toMatchObject({ name, out: expect.stringMatching(/Permission denied/) });
        expect(result(name).rc).not.toBe(0);
    }
    // api's /tmp is its own (project-tmp.test.ts attacks it): the file is not where web looks.
    expect(result("web-read-api-tmp")).toMatchObject({ out: expect.stringMatching(/No such file or directory/) });
    expect(result("web-read-api-tmp").rc).not.toBe(0);
    expect(result("web-read-api-file").out).not.toContain("api-token");
});

test("a worker cannot see, read or signal another project's processes", () => {
    expect(result("web-see-api-process").out.trim()).toBe("");
    expect(result("web-read-api-environ").rc).not.toBe(0);
    expect(result("web-kill-api").rc).not.toBe(0);
});

test("the agent, the admin and the workers keep out of each other's homes", () => {
    for (const name of ["web-list-agent-home", "web-list-admin-home", "agent-list-web-home"]) {
        expect({ name, rc: result(name).rc }).not.toEqual({ name, rc: 0 });
        expect(result(name).out).toMatch(/Permission denied/);
    }
});

test("a worker gets no root, no other worker, and cannot run or rewrite the tool", () => {
    // sudo denied by name though cloud-init's sudoers grants it; su closed though web knows the password.
    expect(result("web-sudo").rc).not.toBe(0);
    // (sudo -n: a rule that denies without NOPASSWD asks for a password before it says no)
    expect(result("web-sudo").out).toMatch(/not allowed|a password is required/);
    expect(result("web-su-api").rc).not.toBe(0);
    expect(result("web-su-api").out).toMatch(/Permission denied/);
    // (the grant is read: the same line for another user works; a member of sudo, with the same
    // password, gets in: the password was right)
    expect(result("helper-sudo").rc).toBe(0);
    expect(result("helper-su-api")).toEqual({ rc: 0, out: "Password: in " });
    expect(result("web-runs-tool")).toMatchObject({ out: expect.stringMatching(/must be run as root/) });
    expect(result("web-runs-tool").rc).not.toBe(0);
    expect(result("web-edit-registry").rc).not.toBe(0);
    expect(result("agent-runs-tool").rc).not.toBe(0);
});

test("status checks each worker's confinement and fails when one is loosened", () => {
    expect(out).toMatch(/^status-before=0$/m);
    expect(out).toMatch(/^status-loose=FAIL {4}api: \/home\/cc-api is not 0700 and cc-api's rc=3$/m);
    // cc-sandbox-verify reports the same.
    expect(out).toMatch(/^verify-before=ok {2}projects: 2 worker\(s\), each confined $/m);
    expect(out).toMatch(/^verify-loose=FAIL projects: FAIL {4}api: \/home\/cc-api is not 0700 and cc-api's $/m);
});

test("remove ends every process of the worker, forking ones too, and leaves nothing of it behind", () => {
    expect(Number(/^api-procs-before=(\d+)$/m.exec(out)?.[1])).toBeGreaterThan(3);
    expect(out).toMatch(/^api-procs-after=0 user=0 home=0 tmp=0 sudoers=0$/m);
    expect(out).toMatch(/^removed-again=0$/m);
    expect(out).toMatch(new RegExp(`^list=web cc-web ${web} 0;$`, "m"));
});

test("add refuses a user it did not make, a changed uid, a taken uid, one out of range and a bad name", () => {
    expect(result("refuse-foreign-user")).toMatchObject({ out: expect.stringContaining("a user cc-evil exists that is not project evil's worker") });
    expect(result("refuse-renumber")).toMatchObject({ out: expect.stringContaining(`cc-web has uid ${web}, not 20002`) });
    expect(result("refuse-taken-uid")).toMatchObject({ out: expect.stringContaining("uid 20003 of project other is taken by user squatter") });
    expect(result("refuse-low-uid")).toMatchObject({ out: expect.stringContaining("uid '1001' of project other must be 20000-29999") });
    expect(result("refuse-bad-name")).toMatchObject({ out: expect.stringContaining("project name '../etc' must be") });
    expect(result("refuse-remove-foreign")).toMatchObject({ out: expect.stringContaining("a user cc-evil exists that is not project evil's worker") });
    for (const name of ["refuse-foreign-user", "refuse-renumber", "refuse-taken-uid", "refuse-low-uid", "refuse-bad-name", "refuse-remove-foreign"]) {
        expect({ name, rc: result(name).rc }).toEqual({ name, rc: 1 });
    }
});

describe("hooks", () => {
    let hooks = "";
    const feed = (spec: string) => `{ ${spec.trim().split("\n").map((l) => `echo ${l}; `).join("")}}`;
    beforeAll(() => {
        // A quoted here-document: nothing in it is expanded before the inner bash runs it.
        const r = inGuest(`unshare --pid --fork --mount-proc bash -euo pipefail -s <<'SCRIPT'
mount -o remount,hidepid=invisible /proc
refuse() { local name=$1 rc=0 msg; shift; msg=$("$@" 2>&1) || rc=$?; echo "$name=$rc $(tr "\n" " " <<<"$msg")"; }
echo "add-stdout=$(${feed(hooked)} | ${tool} add hooked ${projectUid("hooked")} - 2>/dev/null | tr "\n" " ")"
echo "setup-out=$(cat /home/cc-hooked/setup.out)"
echo "setup-env=$(grep -c -i 'token\|secret' /home/cc-hooked/setup.env || true)"
echo "setup-again=$(${feed(hooked)} | ${tool} add hooked ${projectUid("hooked")} - 2>&1 | grep -c 'running its setup' || true)"
echo "cleanup=$(${tool} remove hooked 2>&1 | grep '^cleanup(hooked)' | tr "\n" " ")"
rc=0; ${feed(jammed)} | timeout 30 ${tool} add jammed ${projectUid("jammed")} - >/dev/null 2>&1 || rc=$?
rrc=0; timeout 30 ${tool} remove jammed >/dev/null 2>&1 || rrc=$?
echo "jammed=$rc $rrc $(getent passwd cc-jammed | wc -l) $(pgrep -u ${projectUid("jammed")} | wc -l)"
refuse refuse-failed-setup sh -c '${feed(failing)} | ${tool} add broken ${projectUid("broken")} -'
echo "broken-after=$(getent passwd cc-broken | wc -l) $(ls -d /home/cc-broken 2>/dev/null | wc -l) $(pgrep -u ${projectUid("broken")} | wc -l)"
refuse refuse-bad-hook sh -c 'echo "evil \$(id)" | ${tool} add other 20005 -'
refuse refuse-not-base64 sh -c 'echo "setup not*base64" | ${tool} add other 20005 -'
refuse refuse-twice sh -c '{ echo "setup aGk="; echo "setup aGk="; } | ${tool} add other 20005 -'
refuse refuse-octal ${tool} add other 047040
echo "other-after=$(getent passwd cc-other | wc -l) $(getent passwd 47040 | wc -l)"
# A worker whose setup never finished (the caller went away, say) runs it at the next add.
${feed(hooked)} | ${tool} add again ${projectUid("again")} -
sed -i 's/^ready=.*/ready=/' /etc/cc-sandbox/projects.d/again
echo "setup-unfinished=$(${feed(hooked)} | ${tool} add again ${projectUid("again")} - 2>&1 | grep -c 'running its setup' || true)"
echo "setup-finished=$(${feed(hooked)} | ${tool} add again ${projectUid("again")} - 2>&1 | grep -c 'running its setup' || true)"
# The hook is on no command line (systemctl status would show it to any user): while it runs, no
# process's argv holds its text.
${feed(slow)} | ${tool} add slow ${projectUid("slow")} - 2>/dev/null &
sleep 2
echo "hook-argv=$(grep -l 'marker-7f3[a]' /proc/[0-9]*/cmdline 2>/dev/null | wc -l)"
wait
SCRIPT`);
        hooks = r.stdout;
        if (r.status !== 0) throw new Error(`the hooks run failed (${r.status}): ${r.stderr}\n${r.stdout}`);
    }, 180_000);
    const hook = (name: string) => {
        const m = new RegExp(`^${name}=(\\d+) (.*)$`, "m").exec(hooks);
        if (!m) throw new Error(`no result for ${name} in:\n${hooks}`);
        return { rc: Number(m[1]), out: m[2] };
    };

    test("hooks: setup runs once as the worker, in its home, under no_new_privs, with no secret in its environment; cleanup runs at remove", () => {
        expect(hooks).toMatch(/^setup-out=hooked cc-hooked \/home\/cc-hooked purge cc-hooked \/home\/cc-hooked NoNewPrivs:1$/m);
        expect(hooks).toMatch(/^setup-env=0$/m);
        expect(hooks).toMatch(/^add-stdout=$/m);
        expect(hooks).toMatch(/^setup-again=0$/m);
        // Until it has once succeeded, setup runs again at the next add; then no more.
        expect(hooks).toMatch(/^setup-unfinished=1$/m);
        expect(hooks).toMatch(/^setup-finished=0$/m);
        expect(hooks).toMatch(/^hook-argv=0$/m);
        expect(hooks).toMatch(/^cleanup=cleanup\(hooked\): esc:\]0;title\[31mred cleanup\(hooked\): cleaning hooked purge cc-hooked 1 $/m);
    });

    test("attack: a worker whose hooks' log is a pipe it holds open cannot keep add or remove from finishing", () => {
        // Without a bound, the read of the log's end waits for ever (timeout's 124), and the worker,
        // its project and the VM stay.
        expect(hooks).toMatch(/^jammed=0 0 0 0$/m);
    });

    test("a failed setup takes the worker back out, processes and all; hooks are only base64 setup and cleanup lines", () => {
        expect(hook("refuse-failed-setup")).toMatchObject({ rc: 1, out: expect.stringContaining("its setup hook failed: the worker is taken back out") });
        expect(hooks).toMatch(/^broken-after=0 0 0$/m);
        expect(hook("refuse-bad-hook")).toMatchObject({ rc: 1, out: expect.stringContaining("'evil' is no project hook (setup or cleanup)") });
        expect(hook("refuse-not-base64")).toMatchObject({ rc: 1, out: expect.stringContaining("hook 'setup' is not base64") });
        expect(hook("refuse-twice")).toMatchObject({ rc: 1, out: expect.stringContaining("hook 'setup' is given twice") });
        // A leading zero would be octal to bash (047040 is 20000): refused, nothing made.
        expect(hook("refuse-octal")).toMatchObject({ rc: 1, out: expect.stringContaining("uid '047040' of project other must be 20000-29999") });
        expect(hooks).toMatch(/^other-after=0 0$/m);
        expect(hooks).not.toMatch(/uid=0\(root\)/);
    });
});
