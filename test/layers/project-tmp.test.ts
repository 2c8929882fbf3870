/**
 * A worker's /tmp, /var/tmp and /dev/shm are its own (pam_namespace for its sessions, worker-tmp for
 * what the tools run as it): in one guest namespace (a PID namespace and /proc hidepid=invisible, as
 * boot step 15 mounts it), projects web and api are added, three more side by side; then api, its
 * setup hook, the agent and a user namespace of api's go after what web leaves in those places, and
 * web after the machine's /tmp through its own processes, each beside the work that must still
 * succeed.
 */
import { projectSpec, projectUid } from "../../src/config/projects";
import { asAgent, boot, inGuest, tryResult } from "./guest";

const tool = "/usr/local/sbin/cc-sandbox-project";
const web = projectUid("web");
const api = projectUid("api");
// web's setup hook leaves a file and a process behind; api's reads what it can of web's.
const webSpec = projectSpec({ name: "web", user: "cc-web", uid: web, setup: "umask 022; echo from-web-setup > /tmp/web-setup; setsid sleep 300 </dev/null >/dev/null 2>&1 &" });
const apiSpec = projectSpec({
    name: "api",
    user: "cc-api",
    uid: api,
    setup: "{ ls -a /tmp /var/tmp /dev/shm; cat /tmp/web-private /tmp/web-setup /tmp/root-marker; } > ~/setup-saw 2>&1; true",
});

let out = "";
const result = (name: string) => tryResult(out, name);

beforeAll(() => {
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    // The run as a file (a quoted here-document): each attempt is quoted once, for try.
    const r = inGuest(`cat > /root/tmp-attacks.sh <<'EOS'
mount -o remount,hidepid=invisible /proc
try() {
  local name=$1 rc=0 msg
  msg=$(timeout 30 bash -c "$2" 2>&1 </dev/null) || rc=$?
  echo "$name=$rc $(tr "\n" " " <<<"$msg")"
}
${boot("10-users.sh")} 2>/dev/null
echo root-only > /tmp/root-marker
inst=/var/lib/cc-sandbox/tmp-inst
base64 -d <<<"${b64(webSpec)}" | ${tool} add web ${web} - >/dev/null 2>&1 || echo "add-web-failed=$?"
${tool} enter web -- sh -c 'umask 022; echo web-tmp > /tmp/web-private; echo web-vartmp > /var/tmp/web-private; echo web-shm > /dev/shm/web-private'
pgrep -u cc-web -x sleep | head -1 > /tmp/web-pid
base64 -d <<<"${b64(apiSpec)}" | ${tool} add api ${api} - >/dev/null 2>&1 || echo "add-api-failed=$?"
# Three added side by side (Pulumi does): each PAM file gets the module once.
${["one", "two", "three"].map((p) => `${tool} add ${p} ${projectUid(p)} >/dev/null 2>&1 &`).join("\n")}
wait
echo "side-by-side=$(grep -c pam_namespace /etc/pam.d/common-session /etc/pam.d/runuser /etc/pam.d/runuser-l | tr "\n" " ")status=$(${tool} status >/dev/null 2>&1; echo $?)"
# allowed work: web keeps its files across its sessions, its setup hook's too
try web-own-tmp '${tool} enter web -- sh -c "cat /tmp/web-private /var/tmp/web-private /tmp/web-setup; d=\\$(mktemp -d) && echo ok > \\$d/f && cat \\$d/f"'
try web-own-shm '${tool} enter web -- sh -c "echo shm > /dev/shm/again && cat /dev/shm/again && findmnt -no OPTIONS /dev/shm | tail -1"'
try web-not-machine-tmp '${tool} enter web -- cat /tmp/root-marker'
# its own processes, which it may reach through /proc: its setup hook's, and what the tools run as it
try web-own-hook-root "${tool} enter web -- ls -a /proc/$(cat /tmp/web-pid)/root/tmp /proc/$(cat /tmp/web-pid)/cwd/"
try web-worker-tmp '/usr/local/lib/cc-sandbox/worker-tmp cc-web setpriv --reuid=cc-web --regid=cc-web --clear-groups -- sh -c "ls -a /tmp; pwd; cat /tmp/root-marker"'
# other users keep the machine's /tmp: no instance is made for them
try others-keep-machine-tmp "runuser -u nobody -- cat /tmp/root-marker; runuser -l agent -c 'cat /tmp/root-marker'; ls $inst/tmp"
# the other worker: a session of its own, its setup hook, and through /proc
try api-read-web-tmp '${tool} enter api -- cat /tmp/web-private /var/tmp/web-private /dev/shm/web-private /tmp/web-setup'
try api-list-tmp '${tool} enter api -- ls -a /tmp /var/tmp /dev/shm'
try api-setup-saw 'cat /home/cc-api/setup-saw'
try api-proc-root "${tool} enter api -- ls /proc/$(cat /tmp/web-pid)/root/tmp"
# the machine's own /tmp, as the worker: a user namespace of its own undoing the bind
try api-userns-umount '${tool} enter api -- unshare --user --map-root-user --mount sh -c "umount /tmp || umount -l /tmp; cat /tmp/root-marker"'
# the agent: the machine's /tmp, the instances, and its process inside the old instance
try agent-read-web '${asAgent} cat /tmp/web-private /var/tmp/web-private /dev/shm/web-private /tmp/web-setup'
try agent-list-instances '${asAgent} ls /var/lib/cc-sandbox/tmp-inst'
try agent-own-tmp '${asAgent} sh -c "echo agent > /tmp/agent-file && cat /tmp/agent-file /tmp/root-marker"'
echo "status-before=$(${tool} status >/dev/null 2>&1; echo $?)"
# Each part taken away, one at a time: status fails naming it, and add puts it back.
broken() {
  local what=$1
  shift
  "$@"
  echo "status-$what=$(${tool} status 2>&1 | grep -m1 "FAIL    web" | tr -d "\n") rc=$(${tool} status >/dev/null 2>&1; echo $?)"
  ${tool} add web ${web} >/dev/null 2>&1
  echo "fixed-$what=$(${tool} status >/dev/null 2>&1; echo $?)"
}
broken pam sed -i /pam_namespace/d /etc/pam.d/runuser
broken guards sed -i /pam_succeed_if/d /etc/pam.d/runuser
broken twice sh -c 'echo "session required pam_namespace.so" >> /etc/pam.d/runuser-l'
broken conf sh -c 'echo > /etc/security/namespace.d/cc-sandbox.conf'
broken boot rm /etc/tmpfiles.d/cc-sandbox-projects.conf
broken mode chmod 0711 $inst/var-tmp
# A process of the worker that holds the machine's /tmp (started as the worker without either).
setpriv --reuid=cc-web --regid=cc-web --clear-groups -- sleep 100 </dev/null >/dev/null 2>&1 &
leak=$!
for i in $(seq 60); do [ "$(ps -o user= -p $leak)" = cc-web ] && break; sleep 0.05; done
echo "status-leak=$(${tool} status 2>&1 | grep -m1 "FAIL    web" | tr -d "\n") rc=$(${tool} status >/dev/null 2>&1; echo $?)"
kill $leak
wait $leak 2>/dev/null
echo "status-no-leak=$(${tool} status >/dev/null 2>&1; echo $?)"
# A configuration pam_namespace cannot parse fails a worker's login (closed), and no one else's.
echo "not a valid line" > /etc/security/namespace.d/cc-sandbox.conf
try broken-conf-worker '${tool} enter web -- true'
try broken-conf-others 'runuser -l agent -c true && runuser -l ubuntu -c true && runuser -u nobody -- true && runuser -l root -c true && echo all-in'
${tool} add web ${web} >/dev/null 2>&1
# While a PAM stack lacks it, a session through it is the machine's /tmp: what status guards.
sed -i /pam_namespace/d /etc/pam.d/runuser /etc/pam.d/runuser-l
try api-without-pam '${tool} enter api -- cat /tmp/root-marker'
${tool} add web ${web} >/dev/null 2>&1
${tool} remove web >/dev/null 2>&1
echo "removed=$(ls -d $inst/tmp/cc-web $inst/var-tmp/cc-web 2>/dev/null | wc -l) api-kept=$(ls -d $inst/tmp/cc-api $inst/var-tmp/cc-api 2>/dev/null | wc -l)"
EOS
unshare --pid --fork --mount-proc bash -uo pipefail /root/tmp-attacks.sh`);
    out = r.stdout;
    if (r.status !== 0) throw new Error(`the run failed (${r.status}): ${r.stderr}\n${r.stdout}`);
}, 180_000);

test("a worker keeps its /tmp and /var/tmp across its sessions and its hooks, and has a /dev/shm of its own", () => {
    expect(out).not.toMatch(/^add-(web|api)-failed=/m);
    expect(result("web-own-tmp")).toEqual({ rc: 0, out: "web-tmp web-vartmp from-web-setup ok " });
    expect(result("web-own-shm")).toMatchObject({ rc: 0, out: expect.stringMatching(/^shm \S*\bnosuid,nodev\b\S*\bsize=\d+k\b/) });
    // The machine's /tmp is not the worker's, not even through its own processes.
    expect(result("web-not-machine-tmp").rc).not.toBe(0);
    expect(result("web-own-hook-root")).toMatchObject({ rc: 0, out: expect.stringContaining("web-private") });
    expect(result("web-own-hook-root").out).not.toContain("root-marker");
    expect(result("web-worker-tmp").out).toMatch(/^\. \.\. (tmp\.\w+ )?web-private web-setup \/home\/cc-web cat: \/tmp\/root-marker: No such file or directory $/);
    // Only workers get one: another user, and the agent through a login, keep the machine's.
    expect(result("others-keep-machine-tmp")).toEqual({ rc: 0, out: "root-only root-only cc-api cc-web " });
    // Projects added side by side: the module once in each stack, and all in place.
    expect(out).toMatch(/^side-by-side=\/etc\/pam\.d\/common-session:1 \/etc\/pam\.d\/runuser:1 \/etc\/pam\.d\/runuser-l:0 status=0$/m);
});

test("another worker reads none of it: not in its sessions, its setup hook, through /proc or a user namespace", () => {
    expect(result("api-read-web-tmp").rc).not.toBe(0);
    expect(result("api-read-web-tmp").out).not.toMatch(/web-(tmp|vartmp|shm)|from-web-setup/);
    expect(result("api-list-tmp")).toEqual({ rc: 0, out: "/dev/shm: . ..  /tmp: . ..  /var/tmp: . .. " });
    expect(result("api-setup-saw").out).not.toMatch(/web-(tmp|vartmp|shm)|from-web-setup|root-only/);
    expect(result("api-setup-saw").out).toMatch(/^\/dev\/shm: \. \.\. {2}\/tmp: \. \.\. {2}\/var\/tmp: \. \.\. /);
    expect(result("api-proc-root").rc).not.toBe(0);
    expect(result("api-userns-umount").rc).not.toBe(0);
    expect(result("api-userns-umount").out).not.toContain("root-only");
});

test("the agent reads none of it", () => {
    expect(result("agent-read-web").rc).not.toBe(0);
    expect(result("agent-read-web").out).not.toMatch(/web-(tmp|vartmp|shm)|from-web-setup/);
    expect(result("agent-list-instances").out).toMatch(/Permission denied/);
    // Its own /tmp is the machine's, as before.
    expect(result("agent-own-tmp")).toEqual({ rc: 0, out: "agent root-only " });
});

test("status fails while any part is missing, and add puts it back", () => {
    expect(out).toMatch(/^status-before=0$/m);
    expect(out).toMatch(/^status-pam=FAIL {4}web: \/etc\/pam\.d\/runuser does not run pam_namespace: a worker's sessions through it share \/tmp rc=3$/m);
    expect(out).toMatch(/^status-guards=FAIL {4}web: \/etc\/pam\.d\/runuser runs pam_namespace without its guards \(for workers' uids only\) rc=3$/m);
    expect(out).toMatch(/^status-twice=FAIL {4}web: \/etc\/pam\.d\/runuser-l runs pam_namespace more than once: a worker's sessions through it get another \/tmp rc=3$/m);
    expect(out).toMatch(/^status-conf=FAIL {4}web: \/etc\/security\/namespace\.d\/cc-sandbox\.conf does not give workers a \/tmp, \/var\/tmp and \/dev\/shm of their own rc=3$/m);
    expect(out).toMatch(/^status-boot=FAIL {4}web: \/etc\/tmpfiles\.d\/cc-sandbox-projects\.conf does not make the workers' \/tmp roots at boot rc=3$/m);
    expect(out).toMatch(/^status-mode=FAIL {4}web: \/var\/lib\/cc-sandbox\/tmp-inst\/var-tmp is not root's, mode 0000: workers' \/tmp is not their own rc=3$/m);
    expect(out).toMatch(/^status-leak=FAIL {4}web: process \d+ of cc-web has the machine's \/tmp \(started without pam_namespace or worker-tmp\) rc=3$/m);
    expect(out).toMatch(/^status-no-leak=0$/m);
    for (const what of ["pam", "guards", "twice", "conf", "boot", "mode"]) expect(out).toMatch(new RegExp(`^fixed-${what}=0$`, "m"));
    // The guards: a configuration that breaks pam_namespace locks a worker out, and no one else.
    expect(result("broken-conf-worker").rc).not.toBe(0);
    expect(result("broken-conf-others")).toEqual({ rc: 0, out: "all-in " });
    // What it guards against: without the line, a session through runuser -l is the machine's /tmp.
    expect(result("api-without-pam")).toEqual({ rc: 0, out: "root-only " });
});

test("remove takes the worker's /tmp and /var/tmp with it, and leaves the other worker's", () => {
    expect(out).toMatch(/^removed=0 api-kept=2$/m);
});
