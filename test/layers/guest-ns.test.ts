/**
 * guest-ns.sh itself: the throw-away guest it builds must leave the host's own files alone, even for
 * a moment, because the other suites run beside it on the same machine.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { guestNs, renderedFiles, run } from "./guest";

const hostDirs = ["/", "/usr", "/usr/lib"];
const modes = () => hostDirs.map((d) => `${d} ${fs.statSync(d).mode.toString(8)}`);

test("setting up the guest never locks other users out of the host's / or /usr", async () => {
    const before = modes();
    // An unprivileged process starting over and over, as the other suites' users do: it needs / and
    // /usr/lib readable, so any moment they are 0700 shows as a failed start.
    const probe = spawn("bash", ["-c", `n=0; bad=0; while [ ! -e "$1" ] && [ "$SECONDS" -lt 300 ]; do n=$((n + 1));
        setpriv --reuid=65534 --regid=65534 --clear-groups /bin/true 2>/dev/null || bad=$((bad + 1)); echo -n .; done
        echo " $n $bad"`, "probe", path.join(os.tmpdir(), `cc-guest-ns-probe-stop-${process.pid}`)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    probe.stdout.on("data", (d) => (out += d));
    const done = new Promise<void>((resolve) => probe.on("exit", () => resolve()));
    const dots = () => out.replace(/ .*/s, "").length;
    // The probe must be starting programs before the guest is set up, and keep at it throughout: on
    // a loaded machine it may get little time, so the guest is set up again (five times at least)
    // until the probe has started twenty programs beside it.
    const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 10));
    while (dots() === 0) await tick();
    const started = Date.now();
    try {
        for (let i = 0; (i < 5 || dots() < 20) && Date.now() - started < 60_000; i++) {
            const r = run(guestNs, [renderedFiles(), "--", "test", "-x", "/usr/local/bin/cc-sandbox-verify"]);
            expect(r.status).toBe(0);
            await tick();
        }
    } finally {
        fs.writeFileSync(path.join(os.tmpdir(), `cc-guest-ns-probe-stop-${process.pid}`), "");
        await done;
        fs.rmSync(path.join(os.tmpdir(), `cc-guest-ns-probe-stop-${process.pid}`), { force: true });
    }
    const [starts, failed] = out.replace(/^\.*/, "").trim().split(" ").map(Number);
    expect(starts).toBeGreaterThan(20);
    expect(failed).toBe(0);
    expect(modes()).toEqual(before);
});

test("a rendered file outside the overlays is refused and never reaches the host", () => {
    const files = fs.mkdtempSync(path.join(os.tmpdir(), "cc-guest-ns-outside-"));
    try {
        fs.mkdirSync(path.join(files, "usr/sbin"), { recursive: true });
        fs.writeFileSync(path.join(files, "usr/sbin/cc-guest-ns-stray"), "#!/bin/sh\n");
        const r = run(guestNs, [files, "--", "true"]);
        expect(r.status).toBe(2);
        expect(r.stderr).toContain("files outside the overlays: ./usr/sbin/cc-guest-ns-stray");
        expect(fs.existsSync("/usr/sbin/cc-guest-ns-stray")).toBe(false);
    } finally {
        fs.rmSync(files, { recursive: true, force: true });
    }
});
