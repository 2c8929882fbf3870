// @ts-check
/*
 * A project's code between the host and its worker, as git bundles: never a share of the host's
 * folder, so nothing in the guest can write to the host's repository.
 *
 * To the guest (`packRepository`): a tar stream that `cc-sandbox-project import` reads, with a
 * bundle per repository (the superproject, then its submodules, recursively) and a manifest line for
 * each: `repo I PATH HEAD BRANCH WIP` (PATH and BRANCH base64, `-` for none). A bundle holds the
 * repository's branches and tags, its HEAD commit and, when the working tree differs from HEAD, a
 * commit of the tree as it is (untracked files too, ignored ones not) that the guest checks out
 * uncommitted. The host's repository is only read: the snapshot's objects go to a scratch object
 * store that borrows the host's as an alternate, and its index is a copy.
 *
 * From the guest (`receiveBundle`): the bundle `cc-sandbox-project export` writes is indexed, with
 * git's strict fsck and bounded in time and memory, in a scratch repository; the host repository
 * then fetches from there only the sync commit and what it needs, as a branch: only fast-forward,
 * never a branch checked out, with no hook, no submodule and no automatic gc.
 */
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { spawnSync } = require("child_process");

/** The commit that carries a working tree's uncommitted changes: fixed, so a snapshot is reproducible. */
const snapshotIdentity = { GIT_AUTHOR_NAME: "cc-sandbox", GIT_AUTHOR_EMAIL: "cc-sandbox@localhost", GIT_COMMITTER_NAME: "cc-sandbox", GIT_COMMITTER_EMAIL: "cc-sandbox@localhost", GIT_AUTHOR_DATE: "1970-01-01T00:00:00Z", GIT_COMMITTER_DATE: "1970-01-01T00:00:00Z" };

/** Git's environment, with nothing of the caller's repository settings (GIT_DIR and the like). */
function gitEnv(/** @type {Record<string, string>} */ extra = {}) {
    /** @type {Record<string, string>} */
    const env = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("GIT_")) env[k] = v;
    // Reading the host's repository must not write to it (git status and the like refresh the index).
    return { ...env, LC_ALL: "C", GIT_OPTIONAL_LOCKS: "0", GIT_TERMINAL_PROMPT: "0", ...extra };
}

/**
 * @param {string} cwd @param {string[]} args @param {Record<string, string>} [extra]
 * @returns {{ code: number, stdout: string, stderr: string }}
 */
function git(cwd, args, extra) {
    const r = spawnSync("git", args, { cwd, env: gitEnv(extra), encoding: "utf8", maxBuffer: 64 * 1024 * 1024, timeout: 600_000, killSignal: "SIGKILL" });
    if (r.error && /** @type {NodeJS.ErrnoException} */ (r.error).code === "ENOENT") throw new Error("git is not installed or not on PATH");
    return { code: r.status === null ? -1 : r.status, stdout: r.stdout || "", stderr: r.stderr || "" };
}

/** @param {string} cwd @param {string[]} args @param {Record<string, string>} [extra] */
function mustGit(cwd, args, extra) {
    const r = git(cwd, args, extra);
    if (r.code !== 0) throw new Error(`git ${args.join(" ")} in ${cwd} failed (exit ${r.code}): ${r.stderr.trim()}`);
    return r.stdout.trim();
}

const b64 = (/** @type {string} */ s) => (s === "" ? "-" : Buffer.from(s, "utf8").toString("base64"));

/**
 * One repository's bundle: its branches and tags, HEAD as refs/cc-sandbox/head and the working
 * tree's changes as refs/cc-sandbox/uncommitted.
 * @param {string} repo the work tree's top @param {string} bundle where to write it @param {string} scratch an empty directory
 * @returns {{ head: string, branch: string, wip: string }}
 */
function snapshot(repo, bundle, scratch) {
    const head = git(repo, ["rev-parse", "-q", "--verify", "HEAD^{commit}"]);
    if (head.code !== 0) throw new Error(`${repo} has no commit yet: commit something before handing it to a project`);
    const headId = head.stdout.trim();
    const branchRef = git(repo, ["symbolic-ref", "-q", "--short", "HEAD"]);
    const branch = branchRef.code === 0 ? branchRef.stdout.trim() : "";
    const objects = path.resolve(repo, mustGit(repo, ["rev-parse", "--git-path", "objects"]));
    const index = path.resolve(repo, mustGit(repo, ["rev-parse", "--git-path", "index"]));
    const store = path.join(scratch, "store.git");
    mustGit(scratch, ["init", "-q", "--bare", store]);
    fs.writeFileSync(path.join(store, "objects", "info", "alternates"), `${objects}\n`);
    // The snapshot's new objects into the scratch store, its index a copy: the host's untouched.
    const scratchIndex = path.join(scratch, "index");
    if (fs.existsSync(index)) fs.copyFileSync(index, scratchIndex);
    const env = { GIT_INDEX_FILE: scratchIndex, GIT_OBJECT_DIRECTORY: path.join(store, "objects"), GIT_ALTERNATE_OBJECT_DIRECTORIES: objects };
    mustGit(repo, ["add", "-A"], env);
    const tree = mustGit(repo, ["write-tree"], env);
    const wip = tree === mustGit(repo, ["rev-parse", `${headId}^{tree}`]) ? "" : mustGit(repo, ["commit-tree", tree, "-p", headId, "-m", "Uncommitted changes on the host"], { ...env, ...snapshotIdentity });
    const refs = mustGit(repo, ["for-each-ref", "--format=%(objectname) %(refname)", "refs/heads", "refs/tags"])
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split(" "));
    const updates = [...refs.map(([id, ref]) => `create ${ref} ${id}`), `create refs/cc-sandbox/head ${headId}`, ...(wip ? [`create refs/cc-sandbox/uncommitted ${wip}`] : [])];
    const r = spawnSync("git", ["update-ref", "--stdin"], { cwd: store, env: gitEnv({ GIT_DIR: store }), input: updates.join("\n") + "\n", encoding: "utf8" });
    if (r.status !== 0) throw new Error(`recording ${repo}'s refs failed: ${r.stderr}`);
    mustGit(store, ["bundle", "create", "-q", bundle, "--all"], { GIT_DIR: store });
    return { head: headId, branch, wip };
}

/**
 * The tar stream for `cc-sandbox-project import`, written to a file in a new scratch directory.
 * @param {string} folder a folder in the host repository's work tree
 * @returns {{ file: string, dispose: () => void }}
 */
function packRepository(folder) {
    if (!fs.existsSync(folder)) throw new Error(`${folder} does not exist`);
    const top = git(folder, ["rev-parse", "--show-toplevel"]);
    if (top.code !== 0 || !top.stdout.trim()) throw new Error(`${folder} is not in a git work tree: a project's clone is a repository`);
    const root = top.stdout.trim();
    // The repository's top, as the config's check and its .cc-sandbox.yaml assume.
    if (fs.realpathSync(root) !== fs.realpathSync(folder)) throw new Error(`${folder} is inside the repository ${root}: name its top folder as the project's clone`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cc-sandbox-pack-"));
    const dispose = () => fs.rmSync(dir, { recursive: true, force: true });
    try {
        const out = path.join(dir, "out");
        fs.mkdirSync(out);
        // Submodules that are checked out, parents before their children.
        const subs = mustGit(root, ["submodule", "foreach", "--quiet", "--recursive", 'printf "%s\\0" "$displaypath"'])
            .split("\0")
            .filter(Boolean);
        const lines = ["." , ...subs].map((rel, i) => {
            const scratch = path.join(dir, `scratch-${i}`);
            fs.mkdirSync(scratch);
            const s = snapshot(rel === "." ? root : path.join(root, rel), path.join(out, `${i}.bundle`), scratch);
            return `repo ${i} ${b64(rel)} ${s.head} ${b64(s.branch)} ${s.wip || "-"}`;
        });
        fs.writeFileSync(path.join(out, "manifest"), lines.join("\n") + "\n");
        const file = path.join(dir, "handover.tar");
        const tar = spawnSync("tar", ["-c", "-f", file, "-C", out, "manifest", ...lines.map((_, i) => `${i}.bundle`)], { encoding: "utf8" });
        if (tar.status !== 0) throw new Error(`tar failed: ${tar.stderr || tar.error}`);
        return { file, dispose };
    } catch (e) {
        dispose();
        throw e;
    }
}

/** `refs/heads/BRANCH`, or an error when BRANCH is no name git takes for a branch. @param {string} repo @param {string} branch */
function checkBranch(repo, branch) {
    const ref = `refs/heads/${branch}`;
    if (branch === "" || branch.startsWith("-") || git(repo, ["check-ref-format", ref]).code !== 0) throw new Error(`${JSON.stringify(branch)} is no valid branch name`);
    return ref;
}

/** How long git may work on what came from the guest, and in how much memory (a pack of small deltas can expand to a great deal). */
const receiveLimits = { seconds: 300, memoryKiB: 3 * 1024 * 1024, headerBytes: 1024 * 1024 };
/** Git's settings for work on what came from the guest: one thread, small mapping windows, no hook, no submodule. */
const receiveConfig = ["-c", "pack.threads=1", "-c", "core.packedGitWindowSize=32m", "-c", "core.packedGitLimit=256m", "-c", "core.deltaBaseCacheLimit=64m", "-c", "core.hooksPath=/dev/null", "-c", "fetch.recurseSubmodules=false"];

/**
 * git ARGS in CWD, bounded: killed with all it started past receiveLimits.seconds, and its address
 * space capped.
 * @param {string} cwd @param {string[]} args @param {Record<string, string>} [extra] @param {string} [stdinFile]
 */
function boundedGit(cwd, args, extra, stdinFile) {
    // TERM first: git then removes its temporary packs and lock files (a KILL would leave them in
    // the repository); KILL 10 s later if it has not gone.
    const script = `ulimit -v ${receiveLimits.memoryKiB}; exec timeout -k 10 ${receiveLimits.seconds} git "$@"${stdinFile ? ' < "$STDIN_FILE"' : ""}`;
    const r = spawnSync("bash", ["-c", script, "git", ...args], { cwd, env: gitEnv({ ...extra, ...(stdinFile ? { STDIN_FILE: stdinFile } : {}) }), encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    const code = r.status === null ? -1 : r.status;
    return { code, stdout: r.stdout || "", stderr: (r.stderr || "") + (code === 124 || code === 137 ? `\n(stopped after ${receiveLimits.seconds} s)` : "") };
}

/**
 * Strips what a terminal would act on (escape sequences, other control characters) from text the
 * guest wrote, and the invisible characters that reorder or hide what is shown (bidirectional
 * overrides and isolates, zero-width ones): a commit subject cannot pass for another line.
 */
function printable(/** @type {string} */ text) {
    // eslint-disable-next-line no-control-regex
    return text.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)?|[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g, "");
}

/**
 * The bundle's pack, checked in a scratch repository that borrows `repo`'s objects (for the bases
 * it leaves out): indexed with git's strict fsck, bounded in time and memory. Nothing reaches
 * `repo` from here: it fetches from the scratch repository only what the sync commit needs.
 * @param {string} repo @param {string} bundle @param {string} scratch an empty directory
 * @returns {string} the sync commit
 */
function checkBundle(repo, bundle, scratch) {
    // The header (v2 or v3: signature, prerequisites, refs, an empty line), then the pack.
    const fd = fs.openSync(bundle, "r");
    let header = "";
    let packAt = -1;
    try {
        const chunk = Buffer.alloc(64 * 1024);
        let read = 0;
        while (packAt < 0 && read < receiveLimits.headerBytes) {
            const n = fs.readSync(fd, chunk, 0, chunk.length, read);
            if (n === 0) break;
            header += chunk.subarray(0, n).toString("latin1");
            read += n;
            packAt = header.indexOf("\n\n");
        }
        if (!/^# v[23] git bundle\n/.test(header) || packAt < 0) throw new Error("what came from the guest is not a git bundle");
        header = header.slice(0, packAt);
        const pack = path.join(scratch, "in.pack");
        const out = fs.openSync(pack, "w");
        try {
            for (let at = packAt + 2; ; ) {
                const n = fs.readSync(fd, chunk, 0, chunk.length, at);
                if (n === 0) break;
                fs.writeSync(out, chunk, 0, n);
                at += n;
            }
        } finally {
            fs.closeSync(out);
        }
    } finally {
        fs.closeSync(fd);
    }
    const sync = /^([0-9a-f]{40}|[0-9a-f]{64}) refs\/cc-sandbox\/sync$/m.exec(header);
    if (!sync) throw new Error("the bundle from the guest has no refs/cc-sandbox/sync");
    const store = path.join(scratch, "store.git");
    mustGit(scratch, ["init", "-q", "--bare", store]);
    const objects = path.resolve(repo, mustGit(repo, ["rev-parse", "--git-path", "objects"]));
    fs.writeFileSync(path.join(store, "objects", "info", "alternates"), `${objects}\n`);
    const indexed = boundedGit(store, [...receiveConfig, "index-pack", "--stdin", "--fix-thin", "--strict", "--fsck-objects"], { GIT_DIR: store }, path.join(scratch, "in.pack"));
    if (indexed.code !== 0) throw new Error(`the bundle from the guest holds objects git's fsck refuses, or more than git may work on here: ${printable(indexed.stderr.trim())}`);
    fs.rmSync(path.join(scratch, "in.pack"));
    const type = git(store, ["cat-file", "-t", sync[1]], { GIT_DIR: store });
    if (type.code !== 0 || type.stdout.trim() !== "commit") throw new Error(`refs/cc-sandbox/sync from the guest names no commit (${type.stdout.trim() || "nothing"})`);
    mustGit(store, ["update-ref", "refs/sync", sync[1]], { GIT_DIR: store });
    return sync[1];
}

/** The branches checked out in REPO's work trees. @param {string} repo */
function checkedOut(repo) {
    return new Set(
        mustGit(repo, ["worktree", "list", "--porcelain"])
            .split("\n")
            .filter((l) => l.startsWith("branch "))
            .map((l) => l.slice("branch ".length)),
    );
}

/**
 * Takes the bundle of `cc-sandbox-project export` into `repo` as the first of BRANCHES it can be:
 * created, or moved forward; never a branch checked out, never a rewrite. Only the sync commit and
 * what it needs reach the repository (fetched from the scratch repository the bundle was checked
 * in), with no hook run and no automatic gc.
 * @param {string} repo @param {string} bundle @param {string | string[]} branches
 * @returns {{ branch: string, before: string, after: string }}
 */
function receiveBundle(repo, bundle, branches) {
    const names = typeof branches === "string" ? [branches] : branches;
    const refs = names.map((b) => checkBranch(repo, b));
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "cc-sandbox-receive-"));
    try {
        const sync = checkBundle(repo, bundle, scratch);
        const store = path.join(scratch, "store.git");
        const busy = checkedOut(repo);
        const refused = [];
        for (const [i, ref] of refs.entries()) {
            const branch = names[i];
            if (busy.has(ref)) {
                refused.push(`${branch} is checked out`);
                continue;
            }
            const before = git(repo, ["rev-parse", "-q", "--verify", `${ref}^{commit}`]).stdout.trim();
            if (before === sync) return { branch, before, after: sync };
            // The guest's history may be made to be slow to walk: bounded like the rest.
            if (before && boundedGit(store, ["merge-base", "--is-ancestor", before, sync], { GIT_DIR: store }).code !== 0) {
                refused.push(`${branch} is at ${before.slice(0, 12)}, which the sandbox's work does not build on (non-fast-forward)`);
                continue;
            }
            const checks = [...receiveConfig, "-c", "transfer.fsckObjects=true", "-c", "fetch.fsckObjects=true", "-c", "protocol.file.allow=always"];
            const r = boundedGit(repo, [...checks, "fetch", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules", "--no-auto-gc", "--quiet", store, `refs/sync:${ref}`]);
            if (r.code !== 0) throw new Error(`the sandbox's work could not be taken in as ${branch}: ${printable(r.stderr.trim())}`);
            return { branch, before, after: mustGit(repo, ["rev-parse", ref]) };
        }
        throw new Error(`the sandbox's work could not be taken in: ${refused.join("; ")}`);
    } finally {
        fs.rmSync(scratch, { recursive: true, force: true });
    }
}

module.exports = { packRepository, receiveBundle, checkBranch, printable };
