/** Shared test set-up: a throw-away HOME with an SSH key generated now, never committed. */
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export const root = path.resolve(__dirname, "..");

const tempDirs: string[] = [];
// Under jest each test file has its own copy of this module: its temporary directories go when the
// file's tests end. Scripts that import it (the benchmarks) remove their own.
if (typeof afterAll === "function") {
    afterAll(() => {
        for (const d of tempDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
    });
}

/** A temporary directory, removed after the test file. */
export function tempDir(prefix: string): string {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    tempDirs.push(d);
    return d;
}

export function tempHome(prefix = "cc-sandbox-home-"): string {
    const home = tempDir(prefix);
    fs.mkdirSync(path.join(home, ".ssh"), { mode: 0o700 });
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "test@cc-sandbox", "-f", path.join(home, ".ssh", "id_ed25519")]);
    return home;
}

export function hostFor(home: string) {
    return { home, readFile: (f: string) => fs.readFileSync(f, "utf8") };
}

/** Polls check every everyMs until it holds or ms have passed; the last answer is the result. */
export async function waitFor(check: () => Promise<boolean> | boolean, ms: number, everyMs = 200): Promise<boolean> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
        if (await check()) return true;
        await new Promise((r) => setTimeout(r, everyMs));
    }
    return check();
}

/**
 * What GET() returns, standing in for it before it exists: a suite's harness, made in a beforeAll,
 * used by name in its tests. Methods are bound to the real object.
 */
export function late<T extends object>(get: () => T): T {
    return new Proxy({} as T, {
        get(_, key) {
            const target = get() as Record<string | symbol, unknown>;
            const value = target[key];
            return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
    });
}

/**
 * git ARGS in CWD as a developer would run it (an identity of its own; file:// submodules allowed);
 * its output, trimmed. Throws with git's message when it fails.
 */
export function git(cwd: string, ...args: string[]): string {
    const r = spawnSync("git", ["-c", "user.name=dev", "-c", "user.email=dev@example.org", "-c", "protocol.file.allow=always", ...args], { cwd, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`git ${args.join(" ")} in ${cwd}: ${r.stderr}`);
    return r.stdout.trim();
}
