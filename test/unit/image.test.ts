/**
 * fetch-image.sh, the libvirt driver's base image download: a release served on loopback with a
 * SHA256SUMS signed by a key generated now, and attacks on each thing it checks (the signature,
 * the signer, the checksum, a cut-off download, a new release under the same URL).
 */
import { spawn, spawnSync } from "child_process";
import { createHash, randomBytes } from "crypto";
import * as fs from "fs";
import * as http from "http";
import { AddressInfo } from "net";
import * as os from "os";
import * as path from "path";
import { ubuntuCloudImageKeys } from "../../src/drivers/libvirt/cloud-image-keys";
import { root, tempDir } from "../helpers";

const script = path.join(root, "src/drivers/libvirt/fetch-image.sh");
const name = "ubuntu-24.04-server-cloudimg-amd64.img";
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cc-image-test-"));
const gnupg = path.join(dir, "gnupg");
const release = path.join(dir, "release");
const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

let server: http.Server;
let base = "";
/** Paths requested since the last reset; `cut` makes the server stop an image download half-way. */
let requests: string[] = [];
let cut = false;

function gpg(args: string[], input?: string): string {
    const r = spawnSync("gpg", ["--batch", "--quiet", "--homedir", gnupg, ...args], { encoding: "latin1", input });
    if (r.status !== 0) throw new Error(`gpg ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
}

function newKey(uid: string): string {
    gpg(["--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never"]);
    return gpg(["--with-colons", "--list-keys", uid]).split("\n").find((l) => l.startsWith("fpr"))!.split(":")[9];
}

let signer = "";
let other = "";
/** Both test keys in one keyring: only the fingerprints passed are trusted. */
let keyring = "";

/** Publishes a release: the image, SHA256SUMS listing it, and SHA256SUMS.gpg by `by`. */
function publish(image: Buffer, opts: { by?: string; sums?: string } = {}): string {
    fs.rmSync(release, { recursive: true, force: true });
    fs.mkdirSync(release);
    fs.writeFileSync(path.join(release, name), image);
    const sums = opts.sums ?? `${sha("other file")} *other.img\n${sha(image)} *${name}\n`;
    fs.writeFileSync(path.join(release, "SHA256SUMS"), sums);
    gpg(["--local-user", opts.by ?? signer, "--output", path.join(release, "SHA256SUMS.gpg"), "--detach-sign", path.join(release, "SHA256SUMS")]);
    return sha(image);
}

interface Fetch {
    code: number | null;
    stdout: string;
    stderr: string;
}

/** Runs the script as the runner does (bash -c SOURCE fetch-image ARGS...), without blocking the server. */
function fetchImage(store: string, pin?: string, url = `${base}/${name}`): Promise<Fetch> {
    return new Promise((resolve) => {
        const args = ["-c", fs.readFileSync(script, "utf8"), "fetch-image", url, store, keyring, signer, ...(pin ? [pin] : [])];
        const child = spawn("bash", args, { stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d) => (stdout += d));
        child.stderr.on("data", (d) => (stderr += d));
        child.on("close", (code) => resolve({ code, stdout, stderr }));
    });
}

/** What the store holds, dot files and temporary downloads included. */
const contents = (store: string) => (fs.existsSync(store) ? fs.readdirSync(store).sort() : []);

beforeAll(async () => {
    fs.mkdirSync(gnupg, { mode: 0o700 });
    signer = newKey("cc-sandbox test release <release@example.org>");
    other = newKey("someone else <other@example.org>");
    keyring = Buffer.from(gpg(["--export", signer, other]), "latin1").toString("base64");
    server = http.createServer((req, res) => {
        requests.push(req.url ?? "");
        const file = path.join(release, path.basename(req.url ?? ""));
        if (!fs.existsSync(file)) {
            res.writeHead(404).end();
            return;
        }
        const body = fs.readFileSync(file);
        res.writeHead(200, { "content-length": body.length });
        if (cut && file.endsWith(".img")) {
            res.write(body.subarray(0, body.length >> 1));
            res.destroy();
            return;
        }
        res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/releases/24.04/release`;
});

afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
    requests = [];
    cut = false;
});

let storeCount = 0;
const newStore = () => path.join(dir, `store-${++storeCount}`);

test("the keyring carried for Ubuntu's cloud images holds exactly the keys whose fingerprints are pinned", () => {
    const file = path.join(dir, "ubuntu-cloud.gpg");
    fs.writeFileSync(file, Buffer.from(ubuntuCloudImageKeys.keyringBase64, "base64"));
    const listed = gpg(["--with-colons", "--show-keys", file])
        .split("\n")
        .filter((l) => l.startsWith("pub") || l.startsWith("fpr"));
    // The primary keys' fingerprints (the line after each pub line).
    const primaries = listed.flatMap((l, i) => (l.startsWith("pub") ? [listed[i + 1].split(":")[9]] : []));
    expect(primaries.sort()).toEqual([...ubuntuCloudImageKeys.fingerprints].sort());
});

test("a good release is downloaded once, kept as <sha256>.img, and reused with no network after", async () => {
    const image = randomBytes(1 << 20);
    const sum = publish(image);
    const store = newStore();
    const r = await fetchImage(store);
    expect(r.stderr).toContain(`sha256 ${sum}`);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${store}/${sum}.img\n`);
    expect(sha(fs.readFileSync(`${store}/${sum}.img`))).toBe(sum);
    expect(contents(store)).toEqual([".by-url", ".lock", `${sum}.img`]);

    // A new point release under the same URL is not taken by itself: the next create uses the
    // recorded image and asks nothing of the server.
    publish(randomBytes(1 << 20));
    requests = [];
    const again = await fetchImage(store);
    expect(again.stdout).toBe(`${store}/${sum}.img\n`);
    expect(requests).toEqual([]);
});

test("pinning the new release's checksum moves to it; the old image stays for the VMs it backs", async () => {
    const first = publish(randomBytes(1 << 20));
    const store = newStore();
    expect((await fetchImage(store)).code).toBe(0);
    const second = publish(randomBytes(1 << 20));
    const r = await fetchImage(store, second);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${store}/${second}.img\n`);
    expect(contents(store)).toEqual([".by-url", ".lock", `${first}.img`, `${second}.img`].sort());
    // Pinned and present: used without the network, even with the server gone from the URL.
    requests = [];
    expect((await fetchImage(store, first)).stdout).toBe(`${store}/${first}.img\n`);
    expect(requests).toEqual([]);
    // And the unpinned URL now follows the last deliberate choice.
    expect((await fetchImage(store)).stdout).toBe(`${store}/${first}.img\n`);
});

test("a kept image altered on disk is refused at its next use, pinned or not, and never replaced", async () => {
    const image = randomBytes(1 << 20);
    const sum = publish(image);
    const store = newStore();
    expect((await fetchImage(store)).code).toBe(0);
    fs.appendFileSync(`${store}/${sum}.img`, "x");
    for (const pin of [undefined, sum]) {
        const r = await fetchImage(store, pin);
        expect(r.code).toBe(1);
        expect(r.stdout).toBe("");
        expect(r.stderr).toContain(`${store}/${sum}.img no longer has the checksum it is kept by`);
    }
    // The same with the record gone: the release names that checksum, the kept file does not match.
    fs.rmSync(`${store}/.by-url`, { recursive: true });
    const fresh = await fetchImage(store);
    expect([fresh.code, fresh.stdout]).toEqual([1, ""]);
    expect(fs.readFileSync(`${store}/${sum}.img`).length).toBe(image.length + 1);
});

test("a pin the release does not list fails, naming both checksums, and downloads nothing", async () => {
    const sum = publish(randomBytes(4096));
    const store = newStore();
    const pin = "b".repeat(64);
    const r = await fetchImage(store, pin);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`the release lists ${sum} for ${name}, and the stack pins ${pin}`);
    expect(requests.some((u) => u.endsWith(name))).toBe(false);
    expect(contents(store)).toEqual([".by-url", ".lock"]);
});

describe("attacks: nothing is kept, nothing temporary is left", () => {
    test("SHA256SUMS changed after it was signed (a checksum swapped for the attacker's image)", async () => {
        const evil = randomBytes(4096);
        publish(randomBytes(4096));
        fs.writeFileSync(path.join(release, name), evil);
        fs.writeFileSync(path.join(release, "SHA256SUMS"), `${sha(evil)} *${name}\n`);
        const store = newStore();
        const r = await fetchImage(store);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/has no valid signature by a pinned key/);
        expect(contents(store)).toEqual([".by-url", ".lock"]);
    });

    test("SHA256SUMS validly signed, by a key that is not pinned", async () => {
        publish(randomBytes(4096), { by: other });
        const store = newStore();
        const r = await fetchImage(store);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(`is signed by '${other}', not by a pinned key (${signer})`);
        expect(contents(store)).toEqual([".by-url", ".lock"]);
    });

    test("the image served is not the one the signed SHA256SUMS lists", async () => {
        const sum = publish(randomBytes(4096));
        fs.writeFileSync(path.join(release, name), randomBytes(4096));
        const store = newStore();
        const r = await fetchImage(store);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(new RegExp(`has sha256 [0-9a-f]{64}, but the signed SHA256SUMS lists ${sum}: not used`));
        expect(contents(store)).toEqual([".by-url", ".lock"]);
    });

    test("a download cut off half-way", async () => {
        publish(randomBytes(1 << 20));
        cut = true;
        const store = newStore();
        const r = await fetchImage(store);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/could not download/);
        expect(contents(store)).toEqual([".by-url", ".lock"]);
    });

    test("a release that does not list the image", async () => {
        publish(randomBytes(4096), { sums: `${sha("x")} *other.img\n` });
        const r = await fetchImage(newStore());
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(`SHA256SUMS does not list ${name}`);
    });

    test.each([
        ["a pin that is not a checksum", ["B".repeat(64)], /is not a sha256 checksum/],
        ["a URL that is not http(s)", [undefined, "file:///etc/passwd"], /is not an http\(s\) URL of a file/],
    ])("%s is refused before anything is fetched", async (_what, args, message) => {
        publish(randomBytes(4096));
        const [pin, url] = args as [string | undefined, string | undefined];
        const r = await fetchImage(newStore(), pin, url);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(message);
        expect(requests).toEqual([]);
    });
});

test("attack: an image with a backing file of its own is not uploaded to a remote host, and the host is not asked", () => {
    // Uploaded, it would back the VM's disk with whatever that path holds on the host (another VM's disk).
    const dir = tempDir("cc-backed-");
    const base = path.join(dir, "base.qcow2");
    const backed = path.join(dir, "backed.qcow2");
    expect(spawnSync("qemu-img", ["create", "-q", "-f", "qcow2", base, "64M"]).status).toBe(0);
    expect(spawnSync("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, backed]).status).toBe(0);
    const storage = path.join(root, "src/drivers/libvirt/host-storage.sh");
    // A host on loopback where nothing listens: reaching it would fail differently.
    const run = (file: string) => spawnSync("bash", [storage, "image", "qemu+ssh://root@127.0.0.1:1/system", "/srv/vms", "file", file], { encoding: "utf8", timeout: 30_000 });
    const r = run(backed);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${backed} has a backing file of its own`);
    // The standalone base gets past the check, to the host.
    expect(run(base).stderr).not.toContain("backing file");
    expect(run(path.join(dir, "missing.qcow2")).stderr).toContain("is not a readable file on this workstation");
});
