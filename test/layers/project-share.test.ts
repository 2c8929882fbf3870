/**
 * A project's shared folder (`mount`), in one guest namespace: cc-sandbox-project mounts the share
 * the host attached (here a stand-in `mount` gives the tag a tmpfs, as virtiofs would give the host's
 * folder) under root's /srv/cc-projects/NAME, which only the worker's group may enter; its
 * repositories' git configuration is pinned like the stack's shares'; the agent and another worker
 * get nothing of it; remove unmounts it and leaves no line in /etc/fstab. The end-to-end test does
 * the same with a real virtiofs device added to the running VM.
 */
import { projectSpec, projectUid } from "../../src/config/projects";
import { asAgent, boot, inGuest, tryResult } from "./guest";

const tool = "/usr/local/sbin/cc-sandbox-project";
const web = projectUid("web");
const api = projectUid("api");
const webSpec = projectSpec({ name: "web", mount: "/host/web" });
const asWeb = "setpriv --reuid=cc-web --regid=cc-web --init-groups --reset-env --";
const asApi = "setpriv --reuid=cc-api --regid=cc-api --init-groups --reset-env --";

// The host attaching the device: what `mount POINT` (by its /etc/fstab line) finds under the tag,
// the host's folder (a tmpfs of its own, kept across mounts as the host's folder is).
const standInMount = `#!/bin/bash
if [[ $# == 1 && $1 == /srv/cc-projects/*/code ]]; then
  tag=$(awk -v p="$1" '$2 == p { print $1 }' /etc/fstab)
  opts=$(awk -v p="$1" '$2 == p { print $4 }' /etc/fstab)
  [[ -n $tag && -e /run/attached-$tag ]] || { echo "mount: $tag: no such device" >&2; exit 32; }
  host=/run/host-$tag
  mountpoint -q $host || { mkdir -p $host && /usr/bin/mount -t tmpfs -o mode=0777 "$tag" $host; }
  /usr/bin/mount --bind $host "$1" && exec /usr/bin/mount -o "remount,bind,\${opts%,nofail}" "$1"
fi
exec /usr/bin/mount "$@"
`;
// Added again right after a removal, its repository already there: its setup hook tries it.
const readdSpec = projectSpec({
    name: "web",
    mount: "/host/web",
    setup: "cd ~/code/repo && if git config core.fsmonitor planted 2>/dev/null; then echo written; else echo refused; fi > ~/hook.out",
});

let out = "";
const result = (name: string) => tryResult(out, name);

beforeAll(() => {
    const r = inGuest(`
        try() { local name=$1 rc=0 msg; msg=$(timeout 60 bash -c "$2" 2>&1 </dev/null) || rc=$?; echo "$name=$rc $(tr "\\n" " " <<<"$msg")"; }
        cat > /usr/local/bin/mount <<'STANDIN'
${standInMount}STANDIN
        chmod 0755 /usr/local/bin/mount
        hash -r
        ${boot("10-users.sh")} 2>/dev/null
        touch /run/attached-p-web
        try add '${tool} add web ${web} - <<< "${webSpec}"'
        ${tool} add api ${api}
        try again '${tool} add web ${web} - <<< "${webSpec}" 2>&1 | tail -1'
        try layout 'stat -c "%a %u %g %n" /srv/cc-projects /srv/cc-projects/web; readlink /home/cc-web/code; findmnt -n -o SOURCE,FSTYPE,OPTIONS /srv/cc-projects/web/code | tr , " "; grep -c "^p-web /srv/cc-projects/web/code virtiofs nosuid,nodev,nofail 0 0$" /etc/fstab'
        # The host's repository in the folder (root is the host here), pinned as the watcher does.
        git init -q /srv/cc-projects/web/code/repo && git -C /srv/cc-projects/web/code/repo -c user.name=h -c user.email=h@e commit -q --allow-empty -m host
        chmod -R a+rwX /srv/cc-projects/web/code/repo
        chown -R 1000:1000 /srv/cc-projects/web/code/repo
        QUIET=1 /usr/local/sbin/cc-sandbox-shares protect
        # allowed: the worker works in its folder through ~/code
        try web-writes '${tool} enter web -- sh -c "echo mine > ~/code/notes && cat ~/code/notes"'
        try web-commits '${tool} enter web -- sh -c "cd ~/code/repo && git -c user.name=w -c user.email=w@e commit -q --allow-empty -m work && git log --oneline | wc -l"'
        # what the host would run on the developer's next git status
        try web-fsmonitor '${tool} enter web -- sh -c "cd ~/code/repo && git config core.fsmonitor \\"echo PLANTED\\""'
        try web-hook '${tool} enter web -- sh -c "echo \\"#!/bin/sh\\" > ~/code/repo/.git/hooks/pre-commit"'
        try web-userns-umount '${asWeb} unshare -rm sh -c "umount /srv/cc-projects/web/code/repo/.git/config || umount -l /srv/cc-projects/web/code/repo/.git/config; echo x > /srv/cc-projects/web/code/repo/.git/config"'
        # the others
        try agent-lists '${asAgent} ls /srv/cc-projects/web/code'
        try agent-reads '${asAgent} cat /srv/cc-projects/web/code/notes'
        try api-lists '${asApi} ls /srv/cc-projects/web/code'
        try api-link '${asApi} cat /home/cc-web/code/notes'
        try status-ok '${tool} status'
        try verify-ok 'cc-sandbox-verify --only shares,projects'
        chmod 0755 /srv/cc-projects/web
        try status-loose '${tool} status web'
        try mended '${tool} add web ${web} - <<< "${webSpec}" >/dev/null 2>&1; ${tool} status web'
        umount -R /srv/cc-projects/web/code
        try status-unmounted '${tool} status web'
        # A worker process started meanwhile, in a mount namespace of its own (as its sessions have),
        # waiting: the mount made later reaches it (systemd's mounts are shared), the pins do not.
        mount --make-rshared /srv
        setsid ${asWeb} unshare -rm --propagation unchanged sh -c 'for i in $(seq 1 900); do if echo "[core] fsmonitor = echo PLANTED" >> /srv/cc-projects/web/code/repo/.git/config; then echo wrote > /home/cc-web/attack.out; exit; fi; sleep 0.1; done' </dev/null >/dev/null 2>&1 &
        # Until it runs as cc-web (on a loaded machine its start can take longer than any fixed pause).
        for i in $(seq 1 200); do pgrep -u cc-web -x sh >/dev/null && break; sleep 0.05; done
        try remounted '${tool} add web ${web} - <<< "${webSpec}" 2>/tmp/remount.err >/dev/null; ${tool} status web; grep -o "processes of cc-web ended" /tmp/remount.err'
        sleep 1
        try waiting-worker 'cat /home/cc-web/attack.out 2>/dev/null || echo none; pgrep -u cc-web -c || true'
        # what add refuses: another project's tag, both ways at once, a tag that is no tag
        try refuse-other-tag '${tool} add api ${api} - <<< "mount p-web"'
        try refuse-both '${tool} add api ${api} - <<< "$(printf "clone yes\\nmount p-api\\n")"'
        try refuse-bad-tag '${tool} add api ${api} - <<< "mount ../etc"'
        try remove '${tool} remove web'
        try after 'ls -d /srv/cc-projects/web /home/cc-web 2>&1; grep -c p-web /etc/fstab; findmnt -n /srv/cc-projects/web/code | wc -l'
        try host-kept 'ls /run/host-p-web'
        # At once again (the removal held the path back from the watcher for 2 minutes): pinned before setup.
        try readd '${tool} add web ${web} - <<< "${readdSpec}" 2>/dev/null && cat /home/cc-web/hook.out'
        ${tool} remove web >/dev/null 2>&1
        # A new project whose device never comes: add fails and leaves no worker, no fstab line.
        rm /run/attached-p-web
        try never '${tool} add web ${web} - <<< "${webSpec}"'
        try never-left 'getent passwd cc-web | wc -l; grep -c p-web /etc/fstab; ls /srv/cc-projects'
    `);
    out = r.stdout;
    if (r.status !== 0) throw new Error(`the shares run failed (${r.status}): ${r.stderr}\n${r.stdout}`);
}, 240_000);

test("the worker's folder: under root's /srv/cc-projects, entered by the worker's group alone, mounted nosuid,nodev, in fstab for the next boot", () => {
    expect(result("add").rc).toBe(0);
    expect(result("again").rc).toBe(0);
    const layout = result("layout");
    expect(layout.rc).toBe(0);
    expect(layout.out).toContain("755 0 0 /srv/cc-projects ");
    expect(layout.out).toContain(`750 0 ${web} /srv/cc-projects/web `);
    expect(layout.out).toContain("/srv/cc-projects/web/code p-web");
    expect(layout.out).toMatch(/ nosuid .*nodev /);
    expect(layout.out.trim().endsWith(" 1")).toBe(true);
});

test("the worker works in it, and cannot plant git configuration or hooks the host would run", () => {
    expect(result("web-writes")).toEqual({ rc: 0, out: "mine " });
    expect(result("web-commits")).toEqual({ rc: 0, out: "2 " });
    for (const name of ["web-fsmonitor", "web-hook", "web-userns-umount"]) {
        expect({ name, ...result(name) }).toEqual({ name, rc: expect.not.stringMatching(/^0$/), out: expect.stringMatching(/Read-only file system|Device or resource busy|Permission denied|Operation not permitted|Invalid argument|not mounted/) });
    }
});

test("the agent and another project's worker reach nothing of it", () => {
    for (const name of ["agent-lists", "agent-reads", "api-lists", "api-link"]) {
        expect({ name, ...result(name) }).toEqual({ name, rc: expect.any(Number), out: expect.stringContaining("Permission denied") });
        expect(result(name).rc).not.toBe(0);
    }
});

test("status and verify: ok as add leaves it; a folder others may enter, or a share not mounted, fails until add mends it", () => {
    expect(result("status-ok")).toEqual({ rc: 0, out: expect.stringMatching(/^ok +api .*ok +web/) });
    expect(result("verify-ok").rc).toBe(0);
    expect(result("status-loose")).toEqual({ rc: 3, out: expect.stringContaining(`/srv/cc-projects/web is not root's, 0750, group cc-web`) });
    expect(result("mended")).toEqual({ rc: 0, out: expect.stringMatching(/^ok +web/) });
    expect(result("status-unmounted")).toEqual({ rc: 3, out: expect.stringContaining("its shared folder (p-web) is not mounted nosuid,nodev at /srv/cc-projects/web/code") });
    expect(result("remounted")).toEqual({ rc: 0, out: expect.stringMatching(/^ok +web .*processes of cc-web ended $/) });
    // the worker's process that waited in a namespace of its own ended before the folder opened
    expect(result("waiting-worker").out).toBe("none 0 ");
});

test("add refuses another project's tag, a tag that is none, and a folder both shared and cloned", () => {
    expect(result("refuse-other-tag")).toEqual({ rc: 1, out: expect.stringContaining("project api's share is p-api, not p-web") });
    expect(result("refuse-both")).toEqual({ rc: 1, out: expect.stringContaining("shared (mount) or cloned (clone), not both") });
    expect(result("refuse-bad-tag")).toEqual({ rc: 1, out: expect.stringContaining("mount takes a project's tag (p-NAME), and staged with its folder's hash or nothing, once") });
});

test("remove unmounts the folder and leaves no trace of it; a share that never comes takes the new worker back out", () => {
    expect(result("remove").rc).toBe(0);
    expect(result("after").out).toMatch(/No such file or directory.*No such file or directory.* 0 0 $/);
    expect(result("host-kept").out).toBe("notes repo ");
    // Added again at once: its repository pinned before its setup hook ran.
    expect(result("readd")).toEqual({ rc: 0, out: "refused " });
    expect(result("never").rc).toBe(1);
    expect(result("never").out).toContain("p-web did not mount at /srv/cc-projects/web/code");
    expect(result("never-left").out).toBe("0 0 ");
});
