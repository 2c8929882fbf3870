/**
 * `npm run project`: from the stack's outputs to `sudo cc-sandbox-project ...` as the admin, over
 * the stack's own SSH command. A stand-in `pulumi` prints the outputs and a stand-in `ssh` prints
 * the words it was given, one a line.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { root, tempDir } from "../helpers";

const bin = tempDir("cc-project-cli-");
const outputs = {
    adminSshCommand: "ssh -i '/home/dev/.ssh/id ed25519' -o IdentitiesOnly=yes ubuntu@10.0.0.5",
    projects: { web: { user: "cc-web", uid: 24102, enter: "..." } },
};
fs.writeFileSync(path.join(bin, "pulumi"), `#!/bin/sh\n[ "$*" = "stack output --json --stack dev" ] || { echo "no stack: $*" >&2; exit 1; }\ncat <<'JSON'\n${JSON.stringify(outputs)}\nJSON\n`, { mode: 0o755 });
fs.writeFileSync(path.join(bin, "ssh"), `#!/bin/sh\nfor w; do printf '%s\\n' "$w"; done\n`, { mode: 0o755 });

function project(...args: string[]) {
    const zx = path.join(root, "node_modules", "zx", "build", "cli.js");
    const r = spawnSync(process.execPath, [zx, "scripts/project.mjs", ...args], {
        cwd: root,
        encoding: "utf8",
        env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
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
