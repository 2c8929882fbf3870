/**
 * Shared repositories (cc-sandbox-shares): the agent cannot plant git configuration or hooks that
 * the host would run on the developer's next `git status`, by any route git reads them from, while
 * its ordinary git work (status, commit, log) still works. The shared folder is a directory of the
 * guest namespace here; the host's git is root running git in it.
 */
import { asAgent, inGuest } from "./guest";

/** A repository in the shared folder, owned by the agent (as a share shows it), with a submodule-style .git file. */
const setup = `
    share=/home/agent/code
    # A mounted share, with shared propagation as systemd gives every mount in the VM.
    mkdir -p $share && mount -t tmpfs share $share && mount --make-shared $share && chown agent: $share
    ${asAgent} bash -c 'set -e; cd ${"$"}HOME/code
        git init -q repo && git -C repo -c user.name=a -c user.email=a@b commit -q --allow-empty -m first
        mkdir -p repo/.git/modules && git init -q --separate-git-dir=${"$"}HOME/code/repo/.git/modules/sub repo/sub'
`;

/** Attacks as the agent, each printing NAME=rc; then root's git in the repository (the host's). */
const attacks = `
    cd /home/agent/code/repo
    try() { local name=$1; shift; local rc=0; ${asAgent} env HOME=/home/agent bash -c "$*" >/dev/null 2>&1 || rc=$?; echo "$name=$rc"; }
    try config 'git config core.fsmonitor "echo PLANTED-FSMONITOR >&2; false"'
    try hookspath 'git config core.hooksPath /home/agent/hooks'
    try hook 'printf "#!/bin/sh\\necho PLANTED-HOOK\\n" > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit'
    try commondir 'mkdir -p /home/agent/evil && cp -r .git/objects .git/refs /home/agent/evil/ && git config -f /home/agent/evil/config core.fsmonitor "echo PLANTED-COMMONDIR >&2; false" && echo /home/agent/evil > .git/commondir'
    try worktree-config 'echo "[core] fsmonitor = echo PLANTED-WT" > .git/config.worktree'
    try rename-git 'mv .git .git-moved'
    try rename-repo 'cd .. && mv repo repo-moved'
    try sub-config 'git -C sub config core.fsmonitor "echo PLANTED-SUB >&2; false"'
    try sub-hook 'echo "#!/bin/sh" > .git/modules/sub/hooks/post-checkout'
    try rename-hooks 'mv .git/hooks .git/hooks-moved'
    try remove-config 'rm -f .git/config'
    try gitfile 'echo "gitdir: /home/agent/evil" > sub/.git'
    try userns-umount 'unshare -rm sh -c "umount .git/config || umount -l .git/config; echo x > .git/config"'
    try commit 'git -c user.name=a -c user.email=a@b commit -q --allow-empty -m second'
    try status 'git status --short'
    try branch 'git branch feature && git checkout -q feature && git checkout -q -'
    try sub-commit 'git -C sub -c user.name=a -c user.email=a@b commit -q --allow-empty -m in-sub'
    try worktree 'git worktree add -q /home/agent/code/wt feature'
    echo "log=$(${asAgent} git log --oneline | wc -l)"
    echo "host-status=$(git -c safe.directory='*' status --short 2>&1 | tr '\\n' ' ')"
    echo "host-commit=$(git -c safe.directory='*' -c user.name=d -c user.email=d@e commit --allow-empty -m host 2>&1 | tr '\\n' ' ')"
    echo "host-sub=$(git -c safe.directory='*' -C sub status --short 2>&1 | tr '\\n' ' ')"
`;

const rc = (out: string, name: string) => new RegExp(`^${name}=(\\d+)$`, "m").exec(out)?.[1];

describe("protected", () => {
    let out = "";
    beforeAll(() => {
        const r = inGuest(`${setup}\n cc-sandbox-shares protect\n cc-sandbox-shares status\n ${attacks}`);
        out = r.stdout + r.stderr;
        if (r.status !== 0) throw new Error(`run failed (${r.status}):\n${out}`);
    });

    test("status lists the repository and its submodule as protected", () => {
        expect(out).toMatch(/^protected \/home\/agent\/code\/repo\/\.git$/m);
        expect(out).toMatch(/^protected \/home\/agent\/code\/repo\/sub\/\.git$/m);
    });

    test.each(["config", "hookspath", "hook", "commondir", "worktree-config", "rename-git", "rename-repo", "rename-hooks", "remove-config", "gitfile", "sub-config", "sub-hook", "userns-umount"])(
        "attack: %s is refused",
        (name) => {
            expect(rc(out, name)).toBeDefined();
            expect(rc(out, name)).not.toBe("0");
        },
    );

    test("the host's git runs nothing the agent planted", () => {
        expect(out).not.toMatch(/PLANTED/);
        expect(out).toMatch(/^host-commit=\[[\w-]+ [0-9a-f]+\] host/m);
    });

    test("allowed: the agent's own git work goes on (status, commit, branches, a submodule, a worktree, log)", () => {
        for (const name of ["status", "commit", "branch", "sub-commit", "worktree"]) expect([name, rc(out, name)]).toEqual([name, "0"]);
        expect(out).toMatch(/^log=2$/m);
    });
});

test("control: without the protection the same attacks plant code the host's git runs", () => {
    // The planting attacks only (renaming .git away would leave the host nothing to run).
    const planting = attacks.split("\n").filter((l) => !/try (rename|remove|gitfile|userns|commondir)/.test(l)).join("\n");
    const r = inGuest(`${setup}\n ${planting}`);
    const out = r.stdout + r.stderr;
    expect(rc(out, "config")).toBe("0");
    expect(rc(out, "hook")).toBe("0");
    expect(out).toMatch(/PLANTED-FSMONITOR/);
});

test("control: a commondir planted in an unprotected repository moves git's configuration and hooks", () => {
    const only = attacks.split("\n").filter((l) => !/try /.test(l) || /try commondir/.test(l)).join("\n");
    const r = inGuest(`${setup}\n ${only}`);
    expect(rc(r.stdout, "commondir")).toBe("0");
    expect(r.stdout + r.stderr).toMatch(/PLANTED-COMMONDIR/);
});

test("a repository that appears later is protected on the next pass, and status says OPEN until then", () => {
    const r = inGuest(`${setup}
        cc-sandbox-shares protect 2>/dev/null
        ${asAgent} git -C /home/agent/code init -q later
        st() { local rc=0; cc-sandbox-shares status || rc=$?; echo "status-rc=$rc"; }
        st
        cc-sandbox-shares protect 2>/dev/null
        st
        umount /home/agent/code/repo/.git/hooks
        st`);
    const runs = r.stdout.split(/status-rc=\d+\n/);
    expect(r.stdout).toMatch(/^OPEN {6}\/home\/agent\/code\/later\/\.git \(writable: \.git config config\.worktree commondir hooks \(its folder can be renamed\)\)$/m);
    expect(r.stdout.match(/status-rc=(\d+)/g)).toEqual(["status-rc=3", "status-rc=0", "status-rc=3"]);
    expect(runs[1]).toMatch(/^protected \/home\/agent\/code\/later\/\.git$/m);
    expect(runs[2]).toMatch(/^OPEN {6}\/home\/agent\/code\/repo\/\.git \(writable: hooks\)$/m);
});

test("release undoes the binds under a share so that the share itself can be unmounted (Multipass's umount)", () => {
    const r = inGuest(`
        mkdir -p /home/agent/code && mount -t tmpfs share /home/agent/code && chown agent: /home/agent/code
        ${asAgent} git -C /home/agent/code init -q repo
        cc-sandbox-shares protect 2>/dev/null
        umount /home/agent/code 2>/dev/null && echo "busy-share=unmounted" || echo "busy-share=refused"
        cc-sandbox-shares release /home/agent/code
        cc-sandbox-shares protect 2>/dev/null
        umount /home/agent/code && echo "released-share=unmounted"
        mount -t tmpfs share /home/agent/code && chown agent: /home/agent/code
        ${asAgent} git -C /home/agent/code init -q again
        cc-sandbox-shares protect 2>/dev/null
        rc=0; cc-sandbox-shares status >/dev/null || rc=$?; echo "held-status=$rc"
        cc-sandbox-shares protect /home/agent/code 2>/dev/null
        rc=0; cc-sandbox-shares status >/dev/null || rc=$?; echo "remounted-status=$rc"`);
    expect(r.stdout).toMatch(/^busy-share=refused$/m);
    expect(r.stderr).toMatch(/released \d+ binds under \/home\/agent\/code/);
    // the watcher's pass between release and umount leaves the released share alone
    expect(r.stdout).toMatch(/^released-share=unmounted$/m);
    // mounted again: held back (and reported OPEN) until protect names it, then protected
    expect(r.stdout).toMatch(/^held-status=3$/m);
    expect(r.stdout).toMatch(/^remounted-status=0$/m);
});

test("root never follows a link the agent planted in a repository, and status says OPEN", () => {
    const r = inGuest(`
        mkdir -p /home/agent/code && mount -t tmpfs share /home/agent/code && mount --make-shared /home/agent/code && chown agent: /home/agent/code
        ${asAgent} bash -c 'set -e; cd /home/agent/code; git init -q trap; cd trap/.git
            rm -rf hooks && ln -s /etc hooks
            ln -s /etc/cc-shares-planted config.worktree
            ln -s /etc/cc-shares-planted-2 commondir
            cd /home/agent/code && mkdir -p linked && ln -s /etc linked/.git'
        before=$(grep -c ' /etc ' /proc/self/mountinfo || true)
        rc=0; cc-sandbox-shares protect || rc=$?; echo "protect-rc=$rc"
        for f in /etc/cc-shares-planted /etc/cc-shares-planted-2; do [ ! -e "$f" ] || echo "planted: $f"; done
        echo "etc-mounts-added: $(( $(grep -c ' /etc ' /proc/self/mountinfo || true) - before ))"
        touch /etc/still-writable && echo etc=writable
        rc=0; cc-sandbox-shares status || rc=$?; echo "status-rc=$rc"`);
    expect(r.stdout).toMatch(/^protect-rc=1$/m);
    expect(r.stdout).not.toMatch(/^planted: \/etc/m);
    expect(r.stdout).toMatch(/^etc-mounts-added: 0$/m);
    expect(r.stdout).toMatch(/^etc=writable$/m);
    expect(r.stderr).toMatch(/refused: \/home\/agent\/code\/trap\/\.git\/(config\.worktree|commondir|hooks) is a symbolic link|not protected: .*linked\/\.git is a symbolic link/);
    expect(r.stdout).toMatch(/^OPEN {6}\/home\/agent\/code\/linked\/\.git \(writable: \(a symbolic link\)/m);
    expect(r.stdout).toMatch(/^status-rc=3$/m);
});


test("no path a shell would split or act on is made a mount point (Multipass hands the share's mount points to a shell, a command a line); pinned files never run", () => {
    const r = inGuest(`
        mkdir -p /home/agent/code && mount -t tmpfs share /home/agent/code && mount --make-shared /home/agent/code && chown agent: /home/agent/code
        ${asAgent} bash -c 'set -e; cd /home/agent/code; mkdir "x\\\$(touch PWNED)"; git init -q "x\\\$(touch PWNED)/repo"; git init -q "a b"; git init -q "$(printf "caf\\303\\251")"
            git init -q my-repo; mkdir -p "my-repo/.git/modules/y\\\$(touch PWNED)"; cp my-repo/.git/HEAD my-repo/.git/config "my-repo/.git/modules/y\\\$(touch PWNED)/"
            git init -q ok-repo; printf "#!/bin/sh\\necho RAN\\n" > ok-repo/.git/config.worktree; chmod +x ok-repo/.git/config.worktree'
        rc=0; cc-sandbox-shares protect || rc=$?; echo "protect-rc=$rc"
        [ ! -e /home/agent/code/PWNED ] && [ ! -e /PWNED ] && echo "no-command-ran: yes"
        echo "points-named-so: $(grep -c -F -e PWNED -e 'a\\040b' -e 'caf\\303' /proc/self/mountinfo || true)"
        rc=0; cc-sandbox-shares status || rc=$?; echo "status-rc=$rc"
        # what Multipass's recovery would do with a mount point's path: run it
        out=$(/home/agent/code/ok-repo/.git/config.worktree 2>&1) && echo "ran: $out" || echo "pinned-file-runs=refused"`);
    expect(r.stdout).toMatch(/^protect-rc=1$/m);
    // (named by the first folder down that a shell would act on)
    for (const bad of ["x$(touch PWNED) ", "a b ", "café ", "my-repo/.git/modules/y$(touch PWNED)/"]) {
        expect({ bad, err: r.stderr }).toEqual({ bad, err: expect.stringContaining(`not protected: /home/agent/code/${bad}`) });
    }
    expect(r.stdout).toMatch(/^points-named-so: 0$/m);
    expect(r.stdout).toMatch(/^OPEN {6}\/home\/agent\/code\/x\$\(touch PWNED\)\/repo\/\.git /m);
    expect(r.stdout).toMatch(/^OPEN {6}\/home\/agent\/code\/a b\/\.git /m);
    expect(r.stdout).toMatch(/^protected \/home\/agent\/code\/ok-repo\/\.git$/m);
    expect(r.stdout).toMatch(/^status-rc=3$/m);
    expect(r.stdout).toMatch(/^pinned-file-runs=refused$/m);
});
