/**
 * What `npm run project -- sync` does with what comes from the guest, attacked: the bundle is the
 * worker's to make, so it may carry other refs, rewritten history, malformed objects or nothing
 * git can read. Only refs/cc-sandbox/sync is taken, as the branch asked for, forward only, never
 * into the branch checked out, with the host's own hooks not run; allowed work beside each.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { tempDir } from "../helpers";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { receiveBundle } = require("../../src/drivers/handover.js");

function git(cwd: string, ...args: string[]): string {
    const r = spawnSync("git", ["-c", "user.name=dev", "-c", "user.email=dev@example.org", ...args], { cwd, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`git ${args.join(" ")}: ${r.stderr}`);
    return r.stdout.trim();
}

const dir = tempDir("cc-handover-");
const host = path.join(dir, "host");
const guest = path.join(dir, "guest");
let base = "";

/** A bundle from the guest's repository with refs/cc-sandbox/sync at `sync`, and `extra` refs too. */
function bundle(name: string, sync: string, extra: string[] = []): string {
    git(guest, "update-ref", "refs/cc-sandbox/sync", sync);
    const file = path.join(dir, `${name}.bundle`);
    git(guest, "bundle", "create", "-q", file, "refs/cc-sandbox/sync", ...extra, "--not", base);
    return file;
}

function commit(message: string, file = "work.txt"): string {
    fs.appendFileSync(path.join(guest, file), `${message}\n`);
    git(guest, "add", file);
    git(guest, "commit", "-qm", message);
    return git(guest, "rev-parse", "HEAD");
}

beforeAll(() => {
    fs.mkdirSync(host);
    git(host, "init", "-q", "-b", "main");
    fs.writeFileSync(path.join(host, "a.txt"), "a\n");
    git(host, "add", ".");
    git(host, "commit", "-qm", "base");
    base = git(host, "rev-parse", "HEAD");
    git(dir, "clone", "-q", host, guest);
    // The host's own hook, which must not run on what the guest sends.
    fs.writeFileSync(path.join(host, ".git", "hooks", "reference-transaction"), `#!/bin/sh\ntouch ${path.join(dir, "host-hook-ran")}\n`, { mode: 0o755 });
});

test("the worker's commits arrive as the branch asked for, then move forward; nothing else in the bundle is taken", () => {
    const first = commit("one");
    // The bundle also moves main (the worker's own ref): the host's main stays.
    git(guest, "update-ref", "refs/heads/main", first);
    const r = receiveBundle(host, bundle("first", first, ["refs/heads/main"]), "cc-sandbox/web");
    expect(r).toEqual({ before: "", after: first });
    expect(git(host, "rev-parse", "main")).toBe(base);
    expect(git(host, "for-each-ref", "--format=%(refname)")).toBe("refs/heads/cc-sandbox/web\nrefs/heads/main");
    const second = commit("two");
    expect(receiveBundle(host, bundle("second", second), "cc-sandbox/web")).toEqual({ before: first, after: second });
    expect(fs.existsSync(path.join(dir, "host-hook-ran"))).toBe(false);
});

test("rewritten history is refused and the branch stays where it was", () => {
    const before = git(host, "rev-parse", "cc-sandbox/web");
    git(guest, "checkout", "-q", "--detach", base);
    const rewritten = commit("rewritten", "other.txt");
    expect(() => receiveBundle(host, bundle("rewritten", rewritten), "cc-sandbox/web")).toThrow(/could not be taken in as cc-sandbox\/web:.*non-fast-forward/s);
    expect(git(host, "rev-parse", "cc-sandbox/web")).toBe(before);
    // Under another name it is a new branch, to review beside the first.
    expect(receiveBundle(host, bundle("rewritten", rewritten), "cc-sandbox/web-2").after).toBe(rewritten);
});

test("the branch checked out, a bad branch name, no bundle, no sync ref: refused, the host unchanged", () => {
    const refs = git(host, "for-each-ref", "--format=%(refname) %(objectname)");
    const good = bundle("good", git(guest, "rev-parse", "HEAD"));
    expect(() => receiveBundle(host, good, "main")).toThrow(/refusing to fetch into branch 'refs\/heads\/main' checked out/);
    for (const name of ["../x", "-x", "a..b", "x.lock", "with space", ""]) {
        expect(() => receiveBundle(host, good, name)).toThrow(/is no valid branch name/);
    }
    const garbage = path.join(dir, "garbage.bundle");
    fs.writeFileSync(garbage, "# v2 git bundle\nnot a ref\n");
    expect(() => receiveBundle(host, garbage, "cc-sandbox/x")).toThrow(/is not a git bundle|has no refs\/cc-sandbox\/sync/);
    git(guest, "update-ref", "refs/heads/only", git(guest, "rev-parse", "HEAD"));
    const noSync = path.join(dir, "nosync.bundle");
    git(guest, "bundle", "create", "-q", noSync, "refs/heads/only", "--not", base);
    expect(() => receiveBundle(host, noSync, "cc-sandbox/x")).toThrow(/has no refs\/cc-sandbox\/sync/);
    expect(git(host, "for-each-ref", "--format=%(refname) %(objectname)")).toBe(refs);
});

test("a malformed object is refused by fsck", () => {
    const tree = git(guest, "rev-parse", "HEAD^{tree}");
    const parent = git(guest, "rev-parse", "HEAD");
    // An author line git's fsck rejects (no email), written as is.
    const raw = `tree ${tree}\nparent ${parent}\nauthor evil 1700000000 +0000\ncommitter evil <e@x> 1700000000 +0000\n\nmalformed\n`;
    const r = spawnSync("git", ["hash-object", "-t", "commit", "--literally", "-w", "--stdin"], { cwd: guest, input: raw, encoding: "utf8" });
    const bad = r.stdout.trim();
    expect(bad).toMatch(/^[0-9a-f]{40}$/);
    expect(() => receiveBundle(host, bundle("malformed", bad), "cc-sandbox/malformed")).toThrow(/objects git.s fsck refuses: .*missingEmail/s);
    expect(spawnSync("git", ["cat-file", "-e", bad], { cwd: host }).status).not.toBe(0);
});
