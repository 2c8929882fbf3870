/**
 * scripts/build-image.sh trusts Ubuntu's archive key, pinned by fingerprint, and nothing a mirror
 * hands it: attacked with mirrors made here, on the file system (no network). The allowed path, a
 * build from Ubuntu's real archive, is the image every end-to-end run builds. Needs root.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { root, tempDir } from "../helpers";

const script = path.join(root, "scripts/build-image.sh");
const pinned = "F6ECB3762474EDA9D21B7022871920D1991BC93C";
const keyringDeb = "pool/main/u/ubuntu-keyring/ubuntu-keyring_2023.11.28.1_all.deb";

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
    const r = spawnSync(cmd, args, { encoding: "utf8", env });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
}

/** A mirror whose keyring package holds a key of our own, made to look like Ubuntu's, and an InRelease signed by it. */
function fakeMirror(dir: string): string {
    const home = path.join(dir, "gnupg");
    fs.mkdirSync(home, { mode: 0o700 });
    const env = { ...process.env, GNUPGHOME: home };
    sh("gpg", ["--batch", "--passphrase", "", "--quick-gen-key", "Ubuntu Archive Automatic Signing Key (2018) <ftpmaster@ubuntu.com>", "ed25519", "sign", "never"], env);
    const mirror = path.join(dir, "mirror");
    const pkg = path.join(dir, "pkg");
    fs.mkdirSync(path.join(pkg, "DEBIAN"), { recursive: true });
    fs.mkdirSync(path.join(pkg, "usr/share/keyrings"), { recursive: true });
    fs.writeFileSync(path.join(pkg, "DEBIAN/control"), "Package: ubuntu-keyring\nVersion: 2023.11.28.1\nArchitecture: all\nMaintainer: nobody <nobody@test.example>\nDescription: not Ubuntu's\n");
    fs.writeFileSync(path.join(pkg, "usr/share/keyrings/ubuntu-archive-keyring.gpg"), spawnSync("gpg", ["--batch", "--export"], { env }).stdout);
    fs.mkdirSync(path.dirname(path.join(mirror, keyringDeb)), { recursive: true });
    sh("dpkg-deb", ["--root-owner-group", "-b", pkg, path.join(mirror, keyringDeb)]);
    fs.mkdirSync(path.join(mirror, "dists/noble"), { recursive: true });
    fs.writeFileSync(path.join(dir, "Release"), "Origin: Ubuntu\nSuite: noble\nCodename: noble\n");
    sh("gpg", ["--batch", "--yes", "--clearsign", "-o", path.join(mirror, "dists/noble/InRelease"), path.join(dir, "Release")], env);
    return mirror;
}

test("a mirror that ships a keyring of its own is refused before anything is fetched or built", () => {
    const dir = tempDir("cc-image-trust-");
    const mirror = fakeMirror(dir);
    const cache = path.join(dir, "cache");
    const r = spawnSync("bash", [script, "--mirror", `file://${mirror}`, "--cache", cache], { encoding: "utf8" });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`the keyring package holds no key ${pinned}`);
    expect(r.stderr).not.toMatch(/mmdebstrap noble/);
    // nothing left behind: no image, no half-made build folder
    expect(fs.readdirSync(cache).filter((f) => f !== ".lock")).toEqual([]);
});

test.each([
    ["a mirror with a blank", "http://archive.ubuntu.com/ubuntu extra"],
    ["a mirror with a quote", "http://archive.ubuntu.com/ubuntu'; touch /tmp/x; '"],
    ["a mirror of another scheme", "ftp://archive.ubuntu.com/ubuntu"],
])("%s is refused, naming it", (_what, mirror) => {
    const dir = tempDir("cc-image-trust-");
    const r = spawnSync("bash", [script, "--mirror", mirror, "--cache", path.join(dir, "cache")], { encoding: "utf8" });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`--mirror '${mirror}' is not an http(s) or file URL`);
});
