/**
 * A clone project's code, both ways, in one guest namespace: the host repository (a submodule, an
 * ignored secret, uncommitted changes) packed as the program packs it, imported by
 * cc-sandbox-project as the worker, worked on, exported, and fetched back into the host repository
 * as a branch. The worker's own git settings and hooks, which git runs, run as the worker: never as
 * root. A stream that is no repository takes the half-made worker back out.
 */
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { projectSpec, projectUid } from "../../src/config/projects";
import { git } from "../helpers";
import { boot, inGuest } from "./guest";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { packRepository, receiveBundle } = require("../../src/drivers/handover.js");

const tool = "/usr/local/sbin/cc-sandbox-project";
const web = projectUid("web");
const bad = projectUid("bad");
const plain = projectUid("plain");


// The guest namespace has a /tmp of its own; /var is an overlay over the host's, so the packed
// stream is read from /var/tmp there (and the bundle comes back on stdout).
const dir = fs.mkdtempSync("/var/tmp/cc-clone-");
const repo = path.join(dir, "repo");
const lib = path.join(dir, "lib");
const bundleOut = path.join(dir, "sync.bundle");
let indexBefore: Buffer;
let gitBefore: Record<string, string>;
const contents = (top: string): Record<string, string> =>
    Object.fromEntries(
        (fs.readdirSync(top, { recursive: true }) as string[])
            .map((f) => path.join(top, f))
            .filter((f) => fs.statSync(f).isFile())
            .map((f) => [f, createHash("sha256").update(fs.readFileSync(f)).digest("hex")]),
    );
let packed: { file: string; dispose: () => void };
let out = "";

beforeAll(() => {
    fs.chmodSync(dir, 0o755);
    fs.mkdirSync(lib);
    git(lib, "init", "-q", "-b", "main");
    fs.writeFileSync(path.join(lib, "lib.txt"), "library\n");
    git(lib, "add", ".");
    git(lib, "commit", "-qm", "lib");
    fs.mkdirSync(repo);
    git(repo, "init", "-q", "-b", "main");
    fs.writeFileSync(path.join(repo, "a.txt"), "one\n");
    fs.writeFileSync(path.join(repo, "gone.txt"), "to be deleted\n");
    fs.writeFileSync(path.join(repo, ".gitignore"), ".env\n");
    git(repo, "add", ".");
    git(repo, "commit", "-qm", "first");
    git(repo, "submodule", "add", "-q", lib, "lib");
    git(repo, "commit", "-qm", "with lib");
    git(repo, "tag", "v1");
    // Uncommitted on the host: a change, a deletion, a new file; and an ignored secret.
    fs.writeFileSync(path.join(repo, "a.txt"), "one\ntwo (uncommitted)\n");
    fs.rmSync(path.join(repo, "gone.txt"));
    fs.writeFileSync(path.join(repo, "new.txt"), "new (untracked)\n");
    fs.writeFileSync(path.join(repo, ".env"), "TOKEN=host-only-7d1e\n");
    indexBefore = fs.readFileSync(path.join(repo, ".git", "index"));
    gitBefore = contents(path.join(repo, ".git"));
    packed = packRepository(repo);
    const pack = path.join(dir, "handover.tar");
    fs.copyFileSync(packed.file, pack);

    const spec = projectSpec({ clone: repo, setup: "ls ~/code > ~/setup.out" });
    const feed = spec.trim().split("\n").map((l) => `echo ${l}; `).join("");
    const asWeb = `${tool} enter web --`;
    const r = inGuest(`unshare --pid --fork --mount-proc bash -euo pipefail -s <<'SCRIPT'
try() { local name=$1 rc=0 msg; shift; msg=$("$@" 2>&1) || rc=$?; echo "$name=$rc $(tr "\\n" " " <<<"$msg")"; }
${boot("10-users.sh")} 2>/dev/null
rm -f /var/lib/cc-sandbox/tmp-inst/tmp/cc-web/fsmonitor-uid /var/lib/cc-sandbox/tmp-inst/tmp/cc-web/hook-uid
echo "add=$({ ${feed} } | ${tool} add web ${web} - 2>/dev/null | tr "\\n" " ")"
echo "setup-before=$(ls /home/cc-web/setup.out 2>/dev/null | wc -l)"
${tool} import web < ${pack}
echo "setup-after=$(cat /home/cc-web/setup.out | tr "\\n" " ")"
echo "status=$(${asWeb} git -C code status --porcelain | tr "\\n" ",")"
echo "branch=$(${asWeb} git -C code rev-parse --abbrev-ref HEAD) $(${asWeb} git -C code log --format=%s | tr "\\n" ",")"
echo "tags=$(${asWeb} git -C code tag)"
echo "lib=$(${asWeb} cat code/lib/lib.txt)"
echo "secret=$(ls -a /home/cc-web/code | grep -c '^.env$' || true) $(grep -rl host-only-7d1e /home/cc-web 2>/dev/null | wc -l)"
echo "owners=$(find /home/cc-web/code ! -user cc-web | wc -l)"
echo "leftovers=$(ls -a /home/cc-web | grep -c cc-sandbox-import || true)"
# As it came in, the host's uncommitted changes and all: nothing to take back.
try export-fresh sh -c '${tool} export web > /dev/null'
# The worker works: a commit, an uncommitted change; and git settings and a hook of its own that
# git runs (as whoever runs git there).
${asWeb} sh -c 'cd code && echo three >> a.txt && git -c user.name=agent -c user.email=agent@sandbox commit -qam "agent work" && echo pending > wip.txt'
${asWeb} sh -c 'printf "#!/bin/sh\\nid -u > /tmp/fsmonitor-uid\\nsetsid sleep 600 >/dev/null &\\n" > ~/fsm; printf "#!/bin/sh\\necho \\$(id -u) \\$(grep NoNewPrivs /proc/self/status | cut -f2) \\$(cut -d\\" \\" -f6 /proc/self/stat) > /tmp/hook-uid\\n" > code/.git/hooks/reference-transaction; chmod +x ~/fsm code/.git/hooks/reference-transaction; git -C code config core.fsmonitor ~/fsm'
echo "again=$({ ${feed} } | ${tool} add web ${web} - 2>/dev/null | tr "\\n" " ")"
try import-again ${tool} import web < ${pack}
echo "kept=$(${asWeb} git -C code log -1 --format=%s)"
# Through a pipe, as ssh carries it: a process the worker's git leaves behind holding its
# stderr keeps no one waiting.
try export timeout 60 sh -c '${tool} export web | cat > /tmp/sync.bundle'
pkill -u cc-web -x sleep || true
echo "bundle=$(base64 -w0 /tmp/sync.bundle)"
# (in the worker's own /tmp: the export runs with it, as everything the tool runs as the worker does)
echo "ran-as=$(cat /var/lib/cc-sandbox/tmp-inst/tmp/cc-web/fsmonitor-uid 2>/dev/null) $(cat /var/lib/cc-sandbox/tmp-inst/tmp/cc-web/hook-uid 2>/dev/null)"
echo "caller-session=$(cut -d" " -f6 /proc/$$/stat)"
# Back where it came in: nothing to take back.
${asWeb} sh -c 'cd code && git config --unset core.fsmonitor && git reset -q --hard origin/main && git clean -fq'
try export-nothing sh -c '${tool} export web > /dev/null'
# Not a repository: the half-made worker is taken back out.
{ echo "clone yes"; } | ${tool} add bad ${bad} - >/dev/null 2>&1
try import-garbage sh -c 'head -c 4096 /dev/urandom | ${tool} import bad'
echo "bad-after=$(getent passwd cc-bad | wc -l) $(ls -d /home/cc-bad 2>/dev/null | wc -l)"
${tool} add plain ${plain} >/dev/null 2>&1
try import-plain sh -c '${tool} import plain < ${pack}'
try export-plain ${tool} export plain
try worker-import ${tool} enter web -- ${tool} import web
${tool} remove web >/dev/null 2>&1
SCRIPT`);
    out = r.stdout;
    if (r.status !== 0) throw new Error(`the clone run failed (${r.status}): ${r.stderr}\n${r.stdout}`);
    fs.writeFileSync(bundleOut, Buffer.from(line("bundle"), "base64"));
}, 180_000);

afterAll(() => {
    packed?.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
});

const line = (name: string) => {
    const m = new RegExp(`^${name}=(.*)$`, "m").exec(out);
    if (!m) throw new Error(`no ${name} in:\n${out}`);
    return m[1];
};
const tried = (name: string) => {
    const m = /^(\d+) (.*)$/.exec(line(name));
    return { rc: Number(m![1]), out: m![2] };
};

test("the host repository is only read to pack it: its index, refs and objects are as they were", () => {
    expect(fs.readFileSync(path.join(repo, ".git", "index")).equals(indexBefore)).toBe(true);
    // Every file under .git, by name and content (git may refresh the time of an object it reuses).
    expect(contents(path.join(repo, ".git"))).toEqual(gitBefore);
});

test("the worker gets the host's branch, tags, submodule and uncommitted changes, uncommitted; not its ignored files", () => {
    expect(line("add")).toBe("import ");
    // setup waits for the code, then sees it
    expect(line("setup-before")).toBe("0");
    expect(line("setup-after")).toBe("a.txt lib new.txt ");
    expect(line("status").split(",").filter(Boolean).sort()).toEqual([" D gone.txt", " M a.txt", "?? new.txt"]);
    expect(line("branch")).toBe("main with lib,first,");
    expect(line("tags")).toBe("v1");
    expect(line("lib")).toBe("library");
    expect(line("secret")).toBe("0 0");
    expect(line("owners")).toBe("0");
    expect(line("leftovers")).toBe("0");
});

test("the code comes in once: a later add asks for nothing and import keeps the worker's work", () => {
    expect(line("again")).toBe("");
    expect(tried("import-again")).toMatchObject({ rc: 0, out: expect.stringContaining("has its code already") });
    expect(line("kept")).toBe("agent work");
});

test("git runs the worker's settings and hooks as the worker, never as root; what they leave running holds up no export", () => {
    expect(tried("export").rc).toBe(0);
    // uid, no_new_privs, and a session other than its caller's (no terminal of root's to type into)
    const [fsmonitor, hook, nnp, session] = line("ran-as").split(" ");
    expect([fsmonitor, hook, nnp]).toEqual([`${web}`, `${web}`, "1"]);
    expect(session).toMatch(/^\d+$/);
    expect(session).not.toBe(line("caller-session"));
});

test("sync: the worker's commits and uncommitted changes come back as a branch; the host's working tree and branch are untouched", () => {
    const headBefore = git(repo, "rev-parse", "HEAD");
    const status = git(repo, "status", "--porcelain");
    const { before, after } = receiveBundle(repo, bundleOut, "cc-sandbox/web");
    expect(before).toBe("");
    expect(git(repo, "log", "--format=%s", "-3", after).split("\n")).toEqual(["Uncommitted changes in the sandbox (cc-web)", "agent work", "with lib"]);
    // The host's own uncommitted changes travel with the code and come back in the branch.
    expect(git(repo, "diff", "--name-status", headBefore, after).split("\n").sort()).toEqual(["A\tnew.txt", "A\twip.txt", "D\tgone.txt", "M\ta.txt"]);
    expect(git(repo, "show", `${after}:a.txt`)).toBe("one\ntwo (uncommitted)\nthree");
    expect(git(repo, "rev-parse", "HEAD")).toBe(headBefore);
    expect(git(repo, "status", "--porcelain")).toBe(status);
    // Again: already there.
    expect(receiveBundle(repo, bundleOut, "cc-sandbox/web")).toEqual({ branch: "cc-sandbox/web", before: after, after });
});

test("nothing new is exit 4; a stream that is no repository takes the worker back out; a project with no clone takes none", () => {
    expect(tried("export-fresh")).toMatchObject({ rc: 4, out: expect.stringContaining("nothing new") });
    expect(tried("export-nothing")).toMatchObject({ rc: 4, out: expect.stringContaining("nothing new") });
    expect(tried("import-garbage").rc).toBe(1);
    expect(line("bad-after")).toBe("0 0");
    expect(tried("import-plain")).toMatchObject({ rc: 1, out: expect.stringContaining("project plain takes no clone") });
    expect(tried("export-plain")).toMatchObject({ rc: 1, out: expect.stringContaining("project plain has no clone to export") });
    expect(tried("worker-import")).toMatchObject({ rc: 1, out: expect.stringContaining("must be run as root") });
});
