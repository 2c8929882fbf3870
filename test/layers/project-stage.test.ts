/**
 * A project's shared folder that the host's hypervisor mounts itself (Multipass's classic mount), in
 * one guest namespace: `stage` makes root's STAGES (/srv/cc-projects/.host) before the host mounts
 * the folder under it (here a tmpfs stands in for Multipass's sshfs mount), and add binds it at the
 * worker's place, nosuid and nodev, once its repositories are pinned. Nobody but root reaches the
 * folder where the hypervisor put it; after a restart (the bind gone, the folder mounted anew)
 * `rebind` binds it again, and names a project whose folder the hypervisor has not mounted, whose
 * worker's folder then stays closed.
 */
import { folderHash, projectSpec, projectUid } from "../../src/config/projects";
import { asAgent, boot, inGuest, tryResult } from "./guest";

const tool = "/usr/local/sbin/cc-sandbox-project";
const web = projectUid("web");
const api = projectUid("api");
const spec = projectSpec({ name: "web", mount: "/host/web" }, true);
const asWeb = "setpriv --reuid=cc-web --regid=cc-web --init-groups --reset-env --";
const asApi = "setpriv --reuid=cc-api --regid=cc-api --init-groups --reset-env --";
const stage = "/srv/cc-projects/.host/web";
const point = "/srv/cc-projects/web/code";

let out = "";
const result = (name: string) => tryResult(out, name);

beforeAll(() => {
    const r = inGuest(`
        try() { local name=$1 rc=0 msg; msg=$(timeout 60 bash -c "$2" 2>&1 </dev/null) || rc=$?; echo "$name=$rc $(tr "\\n" " " <<<"$msg")"; }
        # the host's hypervisor: the folder mounted where stage made room for it (a fresh file system each time)
        host_mounts() { mkdir -p ${stage} && mount -t tmpfs -o mode=0777 host-web ${stage} && git init -q ${stage}/repo && git -C ${stage}/repo -c user.name=h -c user.email=h@e commit -q --allow-empty -m host && chmod -R a+rwX ${stage}/repo && cp /usr/bin/id ${stage}/id && chmod 4755 ${stage}/id; }
        ${boot("10-users.sh")} 2>/dev/null
        ${tool} add api ${api}
        # A folder the hypervisor has not mounted: add fails and leaves no worker.
        try never '${tool} add web ${web} - <<< "${spec}"'
        try never-left 'getent passwd cc-web | wc -l; ls -A /srv/cc-projects'
        try stage '${tool} stage && stat -c "%a %u %n" /srv/cc-projects /srv/cc-projects/.host'
        host_mounts
        # where the hypervisor put it: root's alone
        try agent-stage '${asAgent} ls ${stage}'
        try api-stage '${asApi} cat ${stage}/repo/.git/config'
        try add '${tool} add web ${web} - <<< "${spec}"'
        try layout 'stat -c "%a %u %g %n" /srv/cc-projects/web; readlink /home/cc-web/code; findmnt -n -o OPTIONS --mountpoint ${point} | tr , " "; grep -c ${point} /etc/fstab || true'
        try same-fs '[[ $(findmnt -n -o MAJ:MIN --mountpoint ${point} | tail -n 1) == $(findmnt -n -o MAJ:MIN --mountpoint ${stage}) ]] && echo same'
        try again '${tool} add web ${web} - <<< "${spec}" 2>&1 | tail -1'
        # allowed: the worker works in its folder through ~/code
        try web-writes '${tool} enter web -- sh -c "echo mine > ~/code/notes && cat ~/code/notes" && cat ${stage}/notes'
        try web-commits '${tool} enter web -- sh -c "cd ~/code/repo && git -c user.name=w -c user.email=w@e commit -q --allow-empty -m work && git log --oneline | wc -l"'
        # what the host would run on the developer's next git status; a set-uid file in the folder
        try web-fsmonitor '${tool} enter web -- sh -c "cd ~/code/repo && git config core.fsmonitor \\"echo PLANTED\\""'
        try web-setuid '${asWeb} ${point}/id -u'
        try agent-point '${asAgent} ls ${point}'
        try api-point '${asApi} cat /home/cc-web/code/notes'
        try api-point-direct '${asApi} ls ${point}'
        try status-ok '${tool} status web'
        # root's locks: no other user can open one (and hold it with flock, stopping every bind)
        try agent-lock '${asAgent} flock -n /run/cc-sandbox-locks/shares.lock true'
        try web-lock '${asWeb} flock -n /run/cc-sandbox-locks/fstab.lock true'
        try rebind-idle '${tool} rebind'
        # A restart: the bind gone, the folder mounted anew by the hypervisor.
        umount -R ${point}
        umount ${stage}
        # A worker process started meanwhile, in a mount namespace of its own (as its sessions have),
        # waiting: the bind made later reaches it (systemd's mounts are shared), the pins made after
        # the bind do not.
        mount --make-rshared /srv
        setsid ${asWeb} unshare -rm --propagation unchanged sh -c 'for i in $(seq 1 900); do if echo "[core] fsmonitor = echo PLANTED" >> ${point}/repo/.git/config; then echo wrote > /home/cc-web/attack.out; exit; fi; sleep 0.1; done' </dev/null >/dev/null 2>/dev/null &
        # Until it runs as cc-web (on a loaded machine its start can take longer than any fixed pause).
        for i in $(seq 1 200); do pgrep -u cc-web -x sh >/dev/null && break; sleep 0.05; done
        host_mounts
        try status-stale '${tool} status web'
        try rebind '${tool} rebind && ${tool} status web && ls ${point}'
        sleep 1
        try waiting-worker 'cat /home/cc-web/attack.out 2>/dev/null || echo none; pgrep -u cc-web -c || true'
        try rebind-pinned '${tool} enter web -- sh -c "cd ~/code/repo && git config core.fsmonitor \\"echo PLANTED\\""'
        # Mounted anew again, and the worker enters before any pulumi up: bound first.
        umount -R ${point}
        umount ${stage}
        host_mounts
        touch ${stage}/fresh
        try enter-rebinds '${tool} enter web -- sh -c "ls ~/code/fresh"'
        # Lost: the hypervisor did not mount it again.
        umount -R ${point}
        umount ${stage}
        try lost '${tool} rebind'
        try lost-closed 'stat -c "%a" /srv/cc-projects/web; mountpoint -q ${point} && echo bound || echo unbound'
        try lost-status '${tool} status web'
        try lost-enter '${tool} enter web -- true'
        host_mounts
        try found '${tool} rebind && ${tool} status web'
        # removed: the bind and its folders gone; the hypervisor's mount is the host's to take away
        try remove '${tool} remove web'
        try after 'ls -d /srv/cc-projects/web /home/cc-web 2>&1; findmnt -n --mountpoint ${point} | wc -l'
        try unstage-mounted '${tool} unstage web'
        umount ${stage}
        try unstage '${tool} unstage web && ls -A /srv/cc-projects/.host | wc -l'
        # STAGES that is not root's own folder: refused
        rmdir /srv/cc-projects/.host && ln -s /tmp /srv/cc-projects/.host
        try stage-link '${tool} stage'
    `);
    out = r.stdout;
    if (r.status !== 0) throw new Error(`the staged shares run failed (${r.status}): ${r.stderr}\n${r.stdout}`);
}, 240_000);

test("add binds the folder only where the hypervisor mounted it, under root's 0700 stage: otherwise no worker", () => {
    expect(result("never")).toEqual({ rc: 1, out: expect.stringContaining(`the host's folder is not mounted at ${stage}`) });
    expect(result("never-left").out).toBe("0 .host ");
    expect(result("stage")).toEqual({ rc: 0, out: "755 0 /srv/cc-projects 700 0 /srv/cc-projects/.host " });
    expect(result("add").rc).toBe(0);
    expect(result("again").rc).toBe(0);
    const layout = result("layout");
    expect(layout.out).toContain(`750 0 ${web} /srv/cc-projects/web `);
    expect(layout.out).toContain(point);
    expect(layout.out).toMatch(/ nosuid .*nodev /);
    // the hypervisor mounts it at each start: no line in /etc/fstab
    expect(layout.out.trim().endsWith(" 0")).toBe(true);
    expect(result("same-fs").out).toBe("same ");
});

test("the worker works in it; it cannot plant git configuration, nor gain by a set-uid file in it", () => {
    // in the host's folder (where the hypervisor mounted it)
    expect(result("web-writes")).toEqual({ rc: 0, out: "mine mine " });
    expect(result("web-commits")).toEqual({ rc: 0, out: "2 " });
    expect(result("web-fsmonitor").rc).not.toBe(0);
    expect(result("web-fsmonitor").out).toMatch(/Read-only file system|Device or resource busy|Permission denied/);
    expect(result("web-setuid")).toEqual({ rc: 0, out: `${web} ` });
});

test("the agent and another project's worker reach nothing of it, where it is bound or where the hypervisor put it", () => {
    for (const name of ["agent-stage", "api-stage", "agent-point", "api-point", "api-point-direct"]) {
        expect({ name, ...result(name) }).toEqual({ name, rc: expect.any(Number), out: expect.stringContaining("Permission denied") });
        expect(result(name).rc).not.toBe(0);
    }
});

test("after a restart: the folder mounted anew is bound again and pinned (rebind, or the worker's enter); one not mounted leaves the worker's folder closed", () => {
    expect(result("status-ok")).toEqual({ rc: 0, out: expect.stringMatching(/^ok +web/) });
    expect(result("rebind-idle")).toEqual({ rc: 0, out: " " });
    for (const name of ["agent-lock", "web-lock"]) expect({ name, ...result(name) }).toEqual({ name, rc: 66, out: expect.stringContaining("Permission denied") });
    expect(result("status-stale")).toEqual({ rc: 3, out: expect.stringContaining(`its shared folder is not bound nosuid,nodev at ${point} from ${stage}`) });
    // the worker's process that waited in a namespace of its own ended before the folder opened
    expect(result("waiting-worker").out).toBe("none 0 ");
    expect(result("rebind")).toEqual({ rc: 0, out: expect.stringMatching(/^cc-sandbox-project: project web: its folder is mounted anew or opened: \d+ processes of cc-web ended .*ok +web .*id repo $/) });
    expect(result("rebind-pinned").rc).not.toBe(0);
    expect(result("enter-rebinds")).toEqual({ rc: 0, out: "/home/cc-web/code/fresh " });
    expect(result("lost")).toEqual({ rc: 0, out: `unstaged web ${folderHash("/host/web")} ` });
    expect(result("lost-closed").out).toBe("700 unbound ");
    expect(result("lost-status").rc).toBe(3);
    expect(result("lost-enter")).toEqual({ rc: 1, out: expect.stringContaining("project web's shared folder is not in place: pulumi up mounts it again") });
    expect(result("found")).toEqual({ rc: 0, out: expect.stringMatching(/^ok +web/) });
});

test("remove takes the bind and its folders away; the stage's folder goes once the host unmounted it; a stage that is a link is refused", () => {
    expect(result("remove").rc).toBe(0);
    expect(result("after").out).toMatch(/No such file or directory.*No such file or directory.* 0 $/);
    expect(result("unstage-mounted")).toEqual({ rc: 1, out: expect.stringContaining(`${stage} is still mounted: the host unmounts it first`) });
    expect(result("unstage")).toEqual({ rc: 0, out: "0 " });
    expect(result("stage-link")).toEqual({ rc: 1, out: expect.stringContaining("/srv/cc-projects/.host is a symbolic link") });
});
