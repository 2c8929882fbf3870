/**
 * Every guest script, whoever wrote it, passes shellcheck and fails fast (set -euo pipefail); so do
 * the host's own scripts (the drivers', the build and test scripts).
 */
import * as fs from "fs";
import * as path from "path";
import { root } from "../helpers";
import { guestDir, run } from "./guest";

function walk(dir: string): string[] {
    return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
        const p = path.join(dir, e.name);
        return e.isDirectory() ? walk(p) : e.isFile() ? [p] : [];
    });
}

const shebang = /^#!\s*\/(usr\/)?bin\/(env\s+)?(ba)?sh\b/;
const scripts = walk(guestDir)
    .filter((f) => !f.endsWith(".hbs"))
    .filter((f) => f.endsWith(".sh") || shebang.test(fs.readFileSync(f, "utf8").split("\n", 1)[0]))
    .sort();
const rel = (f: string) => path.relative(guestDir, f);

test("the guest tree has the scripts this suite is meant to cover", () => {
    const names = scripts.map(rel);
    for (const mine of [
        "usr/local/bin/cc-sandbox-statusline",
        "usr/local/bin/cc-sandbox-verify",
        "usr/local/bin/claude-noprivs",
        "usr/local/bin/claude-backup",
        "usr/local/bin/claude-restore",
        "usr/local/lib/cc-sandbox/boot",
        "usr/local/lib/cc-sandbox/boot.d/10-users.sh",
        "usr/local/lib/cc-sandbox/boot.d/30-apparmor.sh",
        "usr/local/lib/cc-sandbox/boot.d/40-ssh.sh",
        "usr/local/lib/cc-sandbox/boot.d/50-claude-code.sh",
    ]) {
        expect(names).toContain(mine);
    }
});

test("every executable in the guest tree is a shell script this suite checks", () => {
    const executables = walk(guestDir).filter((f) => (fs.statSync(f).mode & 0o111) !== 0 && !f.endsWith(".hbs"));
    expect(executables.filter((f) => !scripts.includes(f)).map(rel)).toEqual([]);
});

test.each(scripts.map(rel))("shellcheck %s", (file) => {
    const r = run("shellcheck", ["--external-sources", "--severity=style", path.join(guestDir, file)], { cwd: guestDir });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
});

test.each(scripts.filter((f) => (fs.statSync(f).mode & 0o111) !== 0).map(rel))("%s fails fast", (file) => {
    const head = fs.readFileSync(path.join(guestDir, file), "utf8").split("\n").slice(0, 40).join("\n");
    if (/^#!\/bin\/bash/.test(head)) expect(head).toMatch(/^set -euo pipefail$/m);
    else expect(head).toMatch(/^set -eu\b/m);
});

test("shellcheck does reject a bad script (the check can fail)", () => {
    const r = run("shellcheck", ["-"], { input: "#!/bin/bash\nrm -rf $dir/*\n" });
    expect(r.status).not.toBe(0);
    expect(r.stdout).toMatch(/SC2115|SC2086/);
});

const hostScripts = ["src/drivers/libvirt", "scripts", "test"]
    .flatMap((d) => walk(path.join(root, d)))
    .filter((f) => f.endsWith(".sh") && !f.includes("/node_modules/"))
    .map((f) => path.relative(root, f))
    .sort();

test("the host's scripts this suite is meant to cover are found", () => {
    expect(hostScripts).toEqual(expect.arrayContaining(["src/drivers/libvirt/fetch-image.sh", "src/drivers/libvirt/host-storage.sh", "scripts/libvirt-netns.sh", "test/libvirt-host.sh"]));
});

test.each(hostScripts)("shellcheck %s (host side)", (file) => {
    const r = run("shellcheck", ["--external-sources", "--severity=style", file], { cwd: root });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
    // Before any command: the first line that is neither a comment nor blank (a sourced library excepted).
    const text = fs.readFileSync(path.join(root, file), "utf8");
    if (!/^# shellcheck shell=/m.test(text)) expect(text.split("\n").find((l) => l.trim() !== "" && !l.startsWith("#"))).toBe("set -euo pipefail");
});
