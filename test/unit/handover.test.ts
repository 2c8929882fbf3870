/**
 * What `npm run project -- sync` does with what comes from the guest, attacked: the bundle is the
 * worker's to make, so it may carry other refs, rewritten history, malformed objects or nothing
 * git can read. Only refs/cc-sandbox/sync is taken, as the branch asked for, forward only, never
 * into the branch checked out, with the host's own hooks not run; allowed work beside each.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { git, tempDir } from "../helpers";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { printable, receiveBundle } = require("../../src/drivers/handover.js");


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

/** The pack files of a repository, by name. */
const packsOf = (repo: string) => fs.readdirSync(path.join(repo, ".git", "objects", "pack")).sort();

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
    expect(r).toEqual({ branch: "cc-sandbox/web", before: "", after: first });
    expect(git(host, "rev-parse", "main")).toBe(base);
    expect(git(host, "for-each-ref", "--format=%(refname)")).toBe("refs/heads/cc-sandbox/web\nrefs/heads/main");
    const second = commit("two");
    expect(receiveBundle(host, bundle("second", second), "cc-sandbox/web")).toEqual({ branch: "cc-sandbox/web", before: first, after: second });
    expect(fs.existsSync(path.join(dir, "host-hook-ran"))).toBe(false);
});

test("rewritten history is refused and the branch stays where it was", () => {
    const before = git(host, "rev-parse", "cc-sandbox/web");
    git(guest, "checkout", "-q", "--detach", base);
    const rewritten = commit("rewritten", "other.txt");
    const packs = packsOf(host);
    expect(() => receiveBundle(host, bundle("rewritten", rewritten), "cc-sandbox/web")).toThrow(/cc-sandbox\/web is at [0-9a-f]{12}, which the sandbox's work does not build on \(non-fast-forward\)/);
    expect(git(host, "rev-parse", "cc-sandbox/web")).toBe(before);
    // Refused before anything was fetched: no object of it is in the host repository.
    expect(packsOf(host)).toEqual(packs);
    expect(spawnSync("git", ["cat-file", "-e", rewritten], { cwd: host }).status).not.toBe(0);
    // Under another name it is a new branch, to review beside the first (the next name given).
    expect(receiveBundle(host, bundle("rewritten", rewritten), ["cc-sandbox/web", "cc-sandbox/web-2"])).toMatchObject({ branch: "cc-sandbox/web-2", after: rewritten });
});

test("the branch checked out, a bad branch name, no bundle, no sync ref: refused, the host unchanged", () => {
    const refs = git(host, "for-each-ref", "--format=%(refname) %(objectname)");
    const good = bundle("good", git(guest, "rev-parse", "HEAD"));
    expect(() => receiveBundle(host, good, "main")).toThrow(/main is checked out/);
    // in another work tree too
    git(host, "worktree", "add", "-q", "-b", "elsewhere", path.join(dir, "wt"));
    expect(() => receiveBundle(host, good, "elsewhere")).toThrow(/elsewhere is checked out/);
    git(host, "worktree", "remove", path.join(dir, "wt"));
    git(host, "branch", "-q", "-D", "elsewhere");
    for (const name of ["../x", "-x", "a..b", "x.lock", "with space", ""]) {
        expect(() => receiveBundle(host, good, name)).toThrow(/is no valid branch name/);
    }
    const garbage = path.join(dir, "garbage.bundle");
    fs.writeFileSync(garbage, "# v2 git bundle\nnot a ref\n");
    expect(() => receiveBundle(host, garbage, "cc-sandbox/x")).toThrow(/is not a git bundle/);
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
    expect(() => receiveBundle(host, bundle("malformed", bad), "cc-sandbox/malformed")).toThrow(/objects git.s fsck refuses.*missingEmail/s);
    expect(spawnSync("git", ["cat-file", "-e", bad], { cwd: host }).status).not.toBe(0);
});

test("a sync ref that is no commit, and objects nothing reaches: none of it enters the host repository", () => {
    const packs = packsOf(host);
    // An annotated tag as the sync ref.
    git(guest, "tag", "-a", "-m", "not a commit", "t1");
    const tag = git(guest, "rev-parse", "t1");
    const tagged = bundle("tagged", tag);
    expect(() => receiveBundle(host, tagged, "cc-sandbox/tagged")).toThrow(/refs\/cc-sandbox\/sync from the guest names no commit \(tag\)/);
    expect(packsOf(host)).toEqual(packs);
    // A commit plus a blob no commit holds: the commit arrives, the blob does not.
    const loose = spawnSync("git", ["hash-object", "-w", "--stdin"], { cwd: guest, input: "unreachable payload 5e1f\n", encoding: "utf8" }).stdout.trim();
    const work = commit("three");
    git(guest, "update-ref", "refs/cc-sandbox/sync", work);
    const file = path.join(dir, "extra.bundle");
    // the bundle's pack made by hand: the sync commit's objects and the loose blob
    const objects = spawnSync("git", ["rev-list", "--objects", work, "--not", base], { cwd: guest, encoding: "utf8" }).stdout.split("\n").map((l) => l.split(" ")[0]).filter(Boolean);
    const pack = spawnSync("git", ["pack-objects", "--stdout"], { cwd: guest, input: [...objects, loose].join("\n") + "\n" });
    fs.writeFileSync(file, Buffer.concat([Buffer.from(`# v2 git bundle\n-${base} base\n${work} refs/cc-sandbox/sync\n\n`), pack.stdout]));
    expect(receiveBundle(host, file, "cc-sandbox/extra").after).toBe(work);
    expect(spawnSync("git", ["cat-file", "-e", work], { cwd: host }).status).toBe(0);
    expect(spawnSync("git", ["cat-file", "-e", loose], { cwd: host }).status).not.toBe(0);
});

test("what the guest writes reaches the terminal without its control sequences", () => {
    // a commit subject with a clipboard write (OSC 52), a line erase and a bell
    expect(printable("abc123 \x1b]52;c;ZWNobyBwd25lZA==\x07fix\x1b[2K\r tests\x07\n")).toBe("abc123 fix tests\n");
    expect(printable("tab\tand newline\n")).toBe("tab\tand newline\n");
    // a subject that a right-to-left override and an isolate would show reordered
    expect(printable("fix \u202egnp.exe\u202c and \u2066tests\u2069\u200b\n")).toBe("fix gnp.exe and tests\n");
    expect(printable("naïve café, 日本語\n")).toBe("naïve café, 日本語\n");
});

/** A bundle whose pack holds a 1 MiB blob and a delta on it that declares TARGET bytes (a delta bomb), and a commit as the sync ref. */
function deltaBomb(target: number): Buffer {
    const zlib = require("zlib");
    const crypto = require("crypto");
    const hdr = (type: number, size: number) => {
        const out = [];
        let b = (type << 4) | (size & 15);
        size = Math.floor(size / 16);
        while (size > 0) {
            out.push(b | 0x80);
            b = size & 0x7f;
            size = Math.floor(size / 128);
        }
        out.push(b);
        return Buffer.from(out);
    };
    const varint = (n: number) => {
        const out = [];
        for (;;) {
            const b = n % 128;
            n = Math.floor(n / 128);
            if (n > 0) out.push(b | 0x80);
            else {
                out.push(b);
                return Buffer.from(out);
            }
        }
    };
    const oid = (type: string, data: Buffer) => crypto.createHash("sha1").update(Buffer.concat([Buffer.from(`${type} ${data.length}\0`), data])).digest();
    const base = crypto.randomBytes(1 << 20);
    const tree = Buffer.alloc(0);
    const commitData = Buffer.from(`tree ${oid("tree", tree).toString("hex")}\nauthor a <a@a> 0 +0000\ncommitter a <a@a> 0 +0000\n\nx\n`);
    const parts = [hdr(3, base.length), zlib.deflateSync(base), hdr(2, 0), zlib.deflateSync(tree), hdr(1, commitData.length), zlib.deflateSync(commitData)];
    const ops = [varint(base.length), varint(target)];
    for (let left = target; left > 0; left -= 1 << 20) ops.push(Buffer.from([0x80 | 0x10 | 0x20 | 0x40, 0x00, 0x00, 0x10]));
    const delta = Buffer.concat(ops);
    parts.push(hdr(7, delta.length), oid("blob", base), zlib.deflateSync(delta));
    const head = Buffer.alloc(12);
    head.write("PACK");
    head.writeUInt32BE(2, 4);
    head.writeUInt32BE(4, 8);
    const body = Buffer.concat([head, ...parts]);
    const pack = Buffer.concat([body, crypto.createHash("sha1").update(body).digest()]);
    return Buffer.concat([Buffer.from(`# v2 git bundle\n${oid("commit", commitData).toString("hex")} refs/cc-sandbox/sync\n\n`), pack]);
}

test("a delta bomb (a few KiB that expand to 4 GiB) is refused within git's memory cap, and none of it enters the host", () => {
    const file = path.join(dir, "bomb.bundle");
    fs.writeFileSync(file, deltaBomb(4 * 1024 ** 3));
    expect(fs.statSync(file).size).toBeLessThan(2 * 1024 ** 2);
    const packs = packsOf(host);
    expect(() => receiveBundle(host, file, "cc-sandbox/bomb")).toThrow(/more than git may work on here: .*(out of memory|malloc)/is);
    expect(packsOf(host)).toEqual(packs);
    expect(spawnSync("git", ["rev-parse", "-q", "--verify", "cc-sandbox/bomb"], { cwd: host }).status).not.toBe(0);
}, 60_000);
