/**
 * First boot's check of a baked image's guest files (src/render/baked.ts), run by bash as the
 * user-data runs it, in a guest namespace whose /etc and /usr/local hold the rendered guest files
 * and the image's manifest as scripts/build-image.sh writes it (scripts/guest-files.mjs). The
 * runner is replaced by an echo: what is checked is whether first boot's steps would start.
 */
import * as fs from "fs";
import * as path from "path";
import { bakedCheck, bakedManifestPath } from "../../src/render/baked";
import { root } from "../helpers";
import { inGuest, run, tempDir } from "./guest";

const image = tempDir("cc-baked-");
const written = run(process.execPath, [path.join(root, "scripts/guest-files.mjs"), "--out", image]);
const id = written.stdout.trim();
const manifest = fs.readFileSync(path.join(image, bakedManifestPath), "utf8");

/** The check after SETUP (shell, as root in the guest), with the image's manifest in place. */
function check(setup: string, want = id): { status: number | null; stdout: string; stderr: string } {
    return inGuest(
        `cat >${bakedManifestPath}
${setup}
cat >/run/baked-check <<'CHECK'
${bakedCheck("echo runner-started")}
CHECK
set +e
bash -c "$(</run/baked-check)" cc-sandbox-baked ${want}`,
        manifest,
    );
}

test("the image's manifest is the one written into it, naming every baked file", () => {
    expect(written.status).toBe(0);
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(manifest).toContain(" 440 root:root /etc/sudoers.d/cc-sandbox\n");
    expect(manifest).toContain(" 755 root:root /usr/local/sbin/cc-sandbox-firewall\n");
    // Each file written with its mode.
    expect((fs.statSync(path.join(image, "etc/sudoers.d/cc-sandbox")).mode & 0o777).toString(8)).toBe("440");
});

test("files as the manifest says: the runner starts", () => {
    const r = check("");
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("runner-started\n");
    expect(r.status).toBe(0);
});

test.each([
    ["a file's content changed", "echo 'echo planted' >>/usr/local/sbin/cc-sandbox-firewall", /cc-sandbox-firewall: FAILED[\s\S]*a guest file differs from the image's manifest/],
    ["a file gone", "rm /usr/local/lib/cc-sandbox/firewall/rules.sh", /rules\.sh[\s\S]*a guest file differs/],
    ["a file's mode", "chmod 0644 /etc/sudoers.d/cc-sandbox", /a guest file's mode or owner differs/],
    ["a file's owner", "chown nobody /usr/local/lib/cc-sandbox/boot", /a guest file's mode or owner differs/],
    ["a file dropped from the manifest", `sed -i '\\| /usr/local/sbin/cc-sandbox-firewall$|d' ${bakedManifestPath}`, /guest files are not this stack's/],
    ["no manifest", `rm ${bakedManifestPath}`, /the image has no \/usr\/local\/lib\/cc-sandbox\/baked-files/],
])("%s: first boot stops before its steps, saying why", (_what, setup, message) => {
    const r = check(setup);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/bake the image again \(npm run bake\) or use a stock image/);
    expect(r.stdout).not.toContain("runner-started");
    expect(r.status).toBe(1);
});

test("another stack's set of files (another version's templates): stops", () => {
    const r = check("", "0".repeat(64));
    expect(r.stderr).toMatch(/are not this stack's \(\S+ is [0-9a-f]{64}, not 0{64}\)/);
    expect(r.stdout).not.toContain("runner-started");
    expect(r.status).toBe(1);
});
