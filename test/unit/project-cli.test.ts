/**
 * `npm run project`: from the stack's outputs to `sudo cc-sandbox-project ...` as the admin, over
 * the stack's own SSH command. A stand-in `pulumi` prints the outputs and a stand-in `ssh` prints
 * the words it was given, one a line.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { git, root, tempDir } from "../helpers";

const bin = tempDir("cc-project-cli-");
// The repository project web was cloned from (stack dev); stack plain's web has none.
const repo = tempDir("cc-project-cli-repo-");
const outputs = {
    adminSshCommand: "ssh -i '/home/dev/.ssh/id ed25519' -o IdentitiesOnly=yes ubuntu@10.0.0.5",
    projects: { web: { user: "cc-web", uid: 24102, enter: "...", clone: repo } },
};
const plain = { ...outputs, projects: { web: { user: "cc-web", uid: 24102, enter: "..." }, docs: { user: "cc-docs", uid: 20001, enter: "...", mount: "/home/dev/docs" } } };
fs.writeFileSync(
    path.join(bin, "pulumi"),
    `#!/bin/sh\ncase "$*" in\n"stack output --json --stack dev") cat <<'JSON'\n${JSON.stringify(outputs)}\nJSON\n;;\n"stack output --json --stack plain") cat <<'JSON'\n${JSON.stringify(plain)}\nJSON\n;;\n*) echo "no stack: $*" >&2; exit 1;;\nesac\n`,
    { mode: 0o755 },
);
// The guest's export (the last word names it): $SYNC_NOISE without end on stderr, then the bundle in
// $SYNC_BUNDLE and $SYNC_EXIT; else the words, one a line.
fs.writeFileSync(
    path.join(bin, "ssh"),
    `#!/bin/sh\nfor last; do :; done\ncase "$last" in *" export "*) printf '%s\\n' "$@" > "$SYNC_WORDS"; [ -z "$SYNC_NOISE" ] || yes "$SYNC_NOISE" >&2; [ -z "$SYNC_BUNDLE" ] || cat "$SYNC_BUNDLE"; exit "\${SYNC_EXIT:-0}";; esac\nfor w; do printf '%s\\n' "$w"; done\n`,
    { mode: 0o755 },
);

function project(...args: string[]) {
    return projectWith({}, ...args);
}

function projectWith(env: NodeJS.ProcessEnv, ...args: string[]) {
    const zx = path.join(root, "node_modules", "zx", "build", "cli.js");
    const r = spawnSync(process.execPath, [zx, "scripts/project.mjs", ...args], {
        cwd: root,
        encoding: "utf8",
        env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, ...env },
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr, words: r.stdout.trim().split("\n") };
}

const login = ["-i", "/home/dev/.ssh/id ed25519", "-o", "IdentitiesOnly=yes", "ubuntu@10.0.0.5", "-t", "--"];
const tool = "sudo /usr/local/sbin/cc-sandbox-project";

test("list, status and enter run the guest's tool as the admin, through the stack's own login", () => {
    expect(project("list", "--stack", "dev").words).toEqual([...login, `${tool} list`]);
    expect(project("status", "--stack", "dev", "--project", "web").words).toEqual([...login, `${tool} status web`]);
    expect(project("enter", "--stack", "dev", "--project", "web").words).toEqual([...login, `${tool} enter web`]);
    expect(project("enter", "--stack", "dev", "--project", "web", "--", "git", "status").words).toEqual([...login, `${tool} enter web -- git status`]);
}, 60_000);

test("the command after -- reaches the worker whole: the admin's shell on the far side runs none of it", () => {
    // ssh hands its command to the admin's login shell; each word arrives quoted, so the worker's
    // sh gets `make; id` and the admin's shell sees one word.
    const words = project("enter", "--stack", "dev", "--project", "web", "--", "sh", "-c", "make; id $(whoami)").words;
    expect(words).toEqual([...login, `${tool} enter web -- sh -c 'make; id $(whoami)'`]);
    const parsed = spawnSync("dash", ["-c", `for w in ${words[words.length - 1]}; do :; done; set -- ${words[words.length - 1]}; printf '%s\\n' "$@"`], { encoding: "utf8" });
    expect(parsed.stdout.split("\n").slice(-3, -1)).toEqual(["-c", "make; id $(whoami)"]);
}, 60_000);

test("a bad action, a missing or malformed project, or one the stack does not have: refused before any login", () => {
    const cases: [string[], RegExp][] = [
        [["remove", "--stack", "dev"], /usage: npm run project/],
        [["enter", "--stack", "dev"], /enter needs --project P/],
        [["enter", "--stack", "dev", "--project", "../x"], /--project: must be a project name:.*\(got "\.\.\/x"\)/],
        [["enter", "--stack", "dev", "--project", "api"], /stack dev has no project api \(its projects: web\)/],
        [["list", "--stack", "dev", "--project", "web"], /list takes no --project/],
        [["list", "--stack", "other"], /no stack: stack output --json --stack other/],
    ];
    for (const [args, message] of cases) {
        const r = project(...args);
        expect({ args, code: r.code }).toEqual({ args, code: 1 });
        expect(r.stderr).toMatch(message);
        expect(r.stdout).not.toContain("ubuntu@");
    }
}, 60_000);


test("sync: the guest's export, over the admin's login with no terminal, becomes a branch of the project's repository", () => {
    git(repo, "init", "-q", "-b", "main");
    git(repo, "commit", "-q", "--allow-empty", "-m", "base");
    const guest = tempDir("cc-project-cli-guest-");
    git(guest, "clone", "-q", repo, ".");
    git(guest, "commit", "-q", "--allow-empty", "-m", "agent work");
    git(guest, "update-ref", "refs/cc-sandbox/sync", "HEAD");
    const bundle = path.join(guest, "sync.bundle");
    git(guest, "bundle", "create", "-q", bundle, "refs/cc-sandbox/sync", "--not", "origin/main");
    const words = path.join(guest, "words");
    const r = projectWith({ SYNC_BUNDLE: bundle, SYNC_WORDS: words }, "sync", "--stack", "dev", "--project", "web");
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    expect(r.stdout).toMatch(/^cc-sandbox\/web in .*: new at [0-9a-f]{12}\n[0-9a-f]+ agent work\n$/);
    expect(git(repo, "log", "--format=%s", "cc-sandbox/web")).toBe("agent work\nbase");
    // No -t: the bundle is bytes, not a terminal's output.
    expect(fs.readFileSync(words, "utf8").split("\n").filter(Boolean)).toEqual([...login.slice(0, -2), "-T", "--", `${tool} export web`]);
    const other = projectWith({ SYNC_BUNDLE: bundle, SYNC_WORDS: words }, "sync", "--stack", "dev", "--project", "web", "--branch", "review/agent");
    expect(other.code).toBe(0);
    expect(git(repo, "rev-parse", "review/agent")).toBe(git(repo, "rev-parse", "cc-sandbox/web"));
    const nothing = projectWith({ SYNC_WORDS: words, SYNC_EXIT: "4" }, "sync", "--stack", "dev", "--project", "web");
    expect(nothing).toMatchObject({ code: 0, stdout: "project web: nothing new since its code came in\n" });
    const failed = projectWith({ SYNC_WORDS: words, SYNC_EXIT: "1" }, "sync", "--stack", "dev", "--project", "web");
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain("the export of project web failed (exit 1)");
    // A guest that writes messages without end: cut off at 256 KiB, and the sync's scratch is gone.
    const scratch = tempDir("cc-project-cli-tmp-");
    const noisy = projectWith({ SYNC_WORDS: words, SYNC_NOISE: "noise", TMPDIR: scratch }, "sync", "--stack", "dev", "--project", "web");
    expect(noisy.code).toBe(1);
    expect(noisy.stderr).toContain("the export of project web failed (exit 141, over 262144 bytes of messages)");
    expect(noisy.stderr.length).toBeLessThan(270_000);
    expect(fs.readdirSync(scratch)).toEqual([]);
}, 60_000);

test("sync: refused for a project with no clone or a shared folder, without --project, with a command; --branch only with sync", () => {
    const cases: [string[], RegExp][] = [
        [["sync", "--stack", "plain", "--project", "web"], /project web has no clone \(projects\[\]\.clone\)/],
        [["sync", "--stack", "plain", "--project", "docs"], /project docs shares \/home\/dev\/docs \(projects\[\]\.mount\): its work is already there, nothing to sync/],
        [["sync", "--stack", "dev"], /sync needs --project P/],
        [["sync", "--stack", "dev", "--project", "web", "--", "ls"], /sync takes no command/],
        [["enter", "--stack", "dev", "--project", "web", "--branch", "x"], /--branch NAME goes with sync only/],
        [["sync", "--stack", "dev", "--project", "web", "--branch=-x"], /"-x" is no valid branch name/],
    ];
    for (const [args, message] of cases) {
        const r = projectWith({ SYNC_BUNDLE: "", SYNC_WORDS: path.join(repo, "logged-in") }, ...args);
        expect({ args, code: r.code }).toEqual({ args, code: 1 });
        expect(r.stderr).toMatch(message);
        expect(fs.existsSync(path.join(repo, "logged-in"))).toBe(false);
    }
}, 60_000);
