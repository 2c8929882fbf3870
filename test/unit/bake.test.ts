/**
 * npm run bake's arguments: a bad one is refused, named, before anything is built or written.
 * (The build itself is scripts/build-image.sh, which the end-to-end test runs and boots.)
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { root } from "../helpers";

const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "cc-bake-")), "images");
afterAll(() => fs.rmSync(path.dirname(out), { recursive: true, force: true }));

function bake(...args: string[]) {
    const r = spawnSync(path.join(root, "node_modules/.bin/zx"), ["scripts/bake.mjs", "--out", out, ...args], { cwd: root, encoding: "utf8" });
    return { code: r.status, stderr: r.stderr };
}

test.each([
    [["--claude", "latest"], /--claude 'latest' is not a version/],
    [["--claude", "2.1.331;id"], /is not a version/],
    [["--mirror", "ftp://mirror.example.org/ubuntu"], /--mirror 'ftp:\/\/mirror.example.org\/ubuntu' is not an http\(s\) or file URL/],
    [["--mirror", "http://mirror.example.org/ubuntu $(id)"], /is not an http\(s\) or file URL/],
])("%j is refused before anything is built", (args, message) => {
    const r = bake(...args);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(fs.existsSync(out)).toBe(false);
});
