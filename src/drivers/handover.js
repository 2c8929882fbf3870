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
 * From the guest (`receiveBundle`): the bundle `cc-sandbox-project export` writes is fetched into
 * the host repository as a branch, only fast-forward and never into the branch checked out, with
 * the received objects checked by git's fsck and no submodule fetched.
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
    const r = spawnSync("git", args, { cwd, env: gitEnv(extra), encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
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

/**
 * Every object the bundle brings, checked by git's fsck (strict) before any reaches `repo`: its
 * pack indexed in a scratch repository that borrows `repo`'s objects for the bases it leaves out.
 * (`git fetch` from a bundle does not check objects in every git version.)
 * @param {string} repo @param {string} bundle
 */
function checkObjects(repo, bundle) {
    const data = fs.readFileSync(bundle);
    const end = data.indexOf("\n\n");
    if (end < 0) throw new Error("what came from the guest is not a git bundle: no pack after its header");
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "cc-sandbox-check-"));
    try {
        mustGit(scratch, ["init", "-q", "--bare", "."]);
        const objects = path.resolve(repo, mustGit(repo, ["rev-parse", "--git-path", "objects"]));
        fs.writeFileSync(path.join(scratch, "objects", "info", "alternates"), `${objects}\n`);
        const r = spawnSync("git", ["index-pack", "--stdin", "--fix-thin", "--strict", "--fsck-objects"], { cwd: scratch, env: gitEnv({ GIT_DIR: scratch }), input: data.subarray(end + 2), encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
        if (r.status !== 0) throw new Error(`the bundle from the guest holds objects git's fsck refuses: ${(r.stderr || "").trim()}`);
    } finally {
        fs.rmSync(scratch, { recursive: true, force: true });
    }
}

/**
 * Fetches the bundle of `cc-sandbox-project export` into `repo` as `branch`: created, or moved
 * forward; never the branch checked out, never a rewrite.
 * @param {string} repo @param {string} bundle @param {string} branch
 * @returns {{ before: string, after: string }}
 */
function receiveBundle(repo, bundle, branch) {
    const ref = checkBranch(repo, branch);
    const before = git(repo, ["rev-parse", "-q", "--verify", ref]).stdout.trim();
    const listed = git(repo, ["bundle", "list-heads", bundle]);
    if (listed.code !== 0) throw new Error(`what came from the guest is not a git bundle: ${listed.stderr.trim()}`);
    if (!/^[0-9a-f]{40,64} refs\/cc-sandbox\/sync$/m.test(listed.stdout)) throw new Error("the bundle from the guest has no refs/cc-sandbox/sync");
    checkObjects(repo, bundle);
    const checks = ["-c", "transfer.fsckObjects=true", "-c", "fetch.fsckObjects=true", "-c", "fetch.recurseSubmodules=false", "-c", "core.hooksPath=/dev/null"];
    const r = git(repo, [...checks, "fetch", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules", bundle, `refs/cc-sandbox/sync:${ref}`]);
    if (r.code !== 0) throw new Error(`the sandbox's work could not be taken in as ${branch}: ${r.stderr.trim()}`);
    return { before, after: mustGit(repo, ["rev-parse", ref]) };
}

module.exports = { packRepository, receiveBundle, checkBranch, snapshot };
