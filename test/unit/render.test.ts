import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { loadConfig } from "../../src/config/load";
import { loadStackConfig, stackFile } from "../../src/config/stack";
import { SandboxConfig } from "../../src/config/types";
import { allowlistPath, renderGuest } from "../../src/render";
import { loadTemplates } from "../../src/render/templates";
import { bakedCheck, bakedFiles, bakedId } from "../../src/render/baked";
import { readBaseImage } from "../../src/render/base-image";
import { libvirtDriver } from "../../src/drivers/libvirt";
import { multipass } from "../../src/drivers/multipass";
import { gunzipSync } from "zlib";
import { hostFor, root, tempDir, tempHome } from "../helpers";

const home = tempHome();
const host = hostFor(home);
const templates = loadTemplates();
const stack = (name: string) => loadStackConfig(stackFile(name), name, host);

/** A write_files entry's content as cloud-init writes it. */
function unpacked(f: { content: string; encoding?: string }): string {
    if (f.encoding === undefined) return f.content;
    if (f.encoding !== "gz+b64") throw new Error(`unexpected encoding ${f.encoding}`);
    return gunzipSync(Buffer.from(f.content, "base64")).toString("utf8");
}

function withAllowlist(c: SandboxConfig, domains: string[]): SandboxConfig {
    return loadConfig(c.stack, { allowlist: { presets: [], domains } }, host);
}

describe("rendering", () => {
    test("the agent's uid is one constant: cloud-init's user, and the guest files that name it", () => {
        const { agentUid } = require("../../src/config/defaults") as typeof import("../../src/config/defaults");
        const r = renderGuest(stack("alice"), templates);
        expect(parse(r.userData).users[1]).toMatchObject({ name: "agent", uid: agentUid });
        expect(r.files.map((f) => f.path)).toContain(`/etc/systemd/system/user@${agentUid}.service.d/cc-sandbox-nnp.conf`);
        expect(r.files.find((f) => f.path.endsWith("boot.d/10-users.sh"))?.content).toContain(`readonly agent_uid=${agentUid} `);
    });

    test("is deterministic: the same config gives byte-identical output", () => {
        const a = renderGuest(stack("alice"), loadTemplates());
        const b = renderGuest(stack("alice"), loadTemplates());
        expect(a.userData).toBe(b.userData);
        expect(a.metaData).toBe(b.metaData);
        expect(a.firstBootHash).toBe(b.firstBootHash);
    });

    test("names what the boot steps need from the archive in sandbox.env, Node only where Claude Code is installed", () => {
        // Not cloud-init's packages module: it refreshes the archive's lists even when every
        // package is installed, which fails on an image that must work with no archive in reach.
        const packages = (c: SandboxConfig, key = "CC_PACKAGES") => {
            const r = renderGuest(c, templates);
            expect(parse(r.userData).packages).toBeUndefined();
            const env = r.files.find((f) => f.path === "/etc/cc-sandbox/sandbox.env")!.content;
            return new RegExp(`^${key}='([a-z0-9 .+-]*)'$`, "m").exec(env)![1].split(" ").filter(Boolean);
        };
        const base = ["iptables", "ipset", "dnsmasq-base", "haproxy", "nftables", "bubblewrap", "socat", "bash-builtins", "podman", "slirp4netns", "acl"];
        expect(packages(stack("alice"))).toEqual(base);
        expect(packages(stack("alice"), "CC_CLAUDE_PACKAGES")).toEqual(["nodejs", "npm"]);
        expect(packages(stack("ci"))).toEqual(base);
        expect(packages(stack("ci"), "CC_CLAUDE_PACKAGES")).toEqual([]);
        const open = loadConfig("alice", { firewall: { enabled: false }, claude: { install: false } }, host);
        expect(packages(open)).toEqual(["bubblewrap", "socat", "bash-builtins", "podman", "slirp4netns", "acl"]);
        // Podman whether or not a project has containers yet: a project given them later is added in
        // place, with the same first boot.
        const withProjects = (containers: boolean) => loadConfig("alice", { projects: [{ name: "web", containers }] }, host);
        expect(packages(withProjects(true))).toEqual(base);
        expect(renderGuest(withProjects(true), templates).firstBootHash).toBe(renderGuest(withProjects(false), templates).firstBootHash);
        // A baked image (scripts/build-image.sh) holds every one of them: first boot installs nothing.
        const image = /^readonly PACKAGES=\(\n([\s\S]*?)\n\)$/m.exec(fs.readFileSync(path.join(root, "scripts/build-image.sh"), "utf8"))![1].split(/\s+/).filter(Boolean);
        expect(base.filter((p) => !image.includes(p))).toEqual([]);
    });

    test("alice and bob get different user-data and allowlists", () => {
        const a = renderGuest(stack("alice"), templates);
        const b = renderGuest(stack("bob"), templates);
        expect(a.userData).not.toBe(b.userData);
        expect(a.allowlist).toContain("registry.npmjs.org 443");
        expect(b.allowlist).toContain("registry.corp.example.com 443,8443");
        expect(b.allowlist).toContain("198.51.100.0/24 443");
        expect(a.allowlist).not.toContain("pypi.org");
    });

    test("the user-data is a #cloud-config that carries every guest file", () => {
        const r = renderGuest(stack("alice"), templates);
        expect(r.userData.startsWith("#cloud-config\n")).toBe(true);
        const doc = parse(r.userData);
        const paths = doc.write_files.map((f: { path: string }) => f.path);
        expect(paths).toEqual(r.files.map((f) => f.path));
        // Each file as cloud-init writes it: packed (gz+b64) where that is shorter, else as it is.
        expect(doc.write_files.map(unpacked)).toEqual(r.files.map((f) => f.content));
        const packed = doc.write_files.filter((f: { encoding?: string }) => f.encoding === "gz+b64");
        expect(packed.length).toBeGreaterThan(r.files.length / 2);
        expect(doc.write_files.find((f: { path: string }) => f.path === "/usr/local/sbin/cc-sandbox-firewall").encoding).toBe("gz+b64");
        expect(r.userData.length).toBeLessThan(r.files.reduce((n, f) => n + f.content.length, 0) * 0.6);
        expect(paths).toContain(allowlistPath);
        expect(doc.users[0]).toBe("default");
        expect(doc.users[1]).toMatchObject({ name: "agent", lock_passwd: true });
        expect(doc.users[1].sudo).toBeUndefined();
        expect(doc.ssh_pwauth).toBe(false);
        expect(doc.runcmd).toEqual([["/usr/local/lib/cc-sandbox/boot"]]);
        const agentFile = doc.write_files.find((f: { path: string }) => f.path === "/home/agent/.gitconfig");
        expect(agentFile).toMatchObject({ owner: "agent:agent", defer: true });
        expect(unpacked(agentFile)).toContain("name = Alice Example");
    });

    test("libvirt stacks add their shares to fstab for first boot's mount step; Multipass mounts from the host", () => {
        const fstab = (c: SandboxConfig) => {
            const doc = parse(renderGuest(c, templates).userData);
            // Not cloud-init's mounts module (a reload of every unit to mount them).
            expect(doc.mounts).toBeUndefined();
            return doc.write_files.filter((f: { path: string }) => f.path === "/etc/fstab");
        };
        expect(fstab(stack("bob"))).toEqual([
            { path: "/etc/fstab", append: true, content: "m0-code /home/agent/code virtiofs defaults,nofail 0 0\nm1-datasets /home/agent/datasets virtiofs defaults,nofail,ro 0 0\n" },
        ]);
        const ci = stack("ci");
        expect(fstab({ ...ci, libvirt: { ...ci.libvirt, filesystem: "9p" } })[0].content).toBe("m0-code /home/agent/code 9p trans=virtio,version=9p2000.L,msize=262144,nofail 0 0\n");
        expect(fstab(stack("alice"))).toEqual([]);
        expect(fstab({ ...ci, mounts: [] })).toEqual([]);
        expect(templates.files.map((t) => t.guestPath)).toContain("/usr/local/lib/cc-sandbox/boot.d/12-mounts.sh");
    });

    test("an allowlist-only change keeps the first-boot hash; any other change moves it", () => {
        const base = stack("alice");
        const a = renderGuest(withAllowlist(base, ["one.example.org"]), templates);
        const b = renderGuest(withAllowlist(base, ["two.example.org", "*.three.example.org"]), templates);
        expect(a.allowlist).not.toBe(b.allowlist);
        expect(a.firstBootHash).toBe(b.firstBootHash);
        const renamed = loadConfig(base.stack, { allowlist: { presets: [], domains: ["one.example.org"] }, git: { name: "Someone Else" } }, host);
        expect(renderGuest(renamed, templates).firstBootHash).not.toBe(a.firstBootHash);
    });

    test("the bridge's script list is rendered for the guest and, like the allowlist, kept out of the first-boot hash", () => {
        const withScripts = (scripts: object[]) => loadConfig("alice", { secureOps: { scripts } }, host);
        const a = renderGuest(withScripts([{ path: "/opt/deploy/release.sh", args: "v[0-9]+(\\.[0-9]+)*" }, { path: "/opt/deploy/status.sh" }]), templates);
        const b = renderGuest(withScripts([]), templates);
        expect(a.secureOps.split("\n").filter((l) => l && !l.startsWith("#"))).toEqual(["/opt/deploy/release.sh v[0-9]+(\\.[0-9]+)*", "/opt/deploy/status.sh"]);
        expect(b.secureOps.split("\n").filter((l) => l && !l.startsWith("#"))).toEqual([]);
        expect(a.firstBootHash).toBe(b.firstBootHash);
        expect(unpacked(parse(a.userData).write_files.find((f: { path: string }) => f.path === "/etc/cc-sandbox/secure-ops.conf"))).toBe(a.secureOps);
    });

    test("the allowlist file lists exactly the configured entries, and its plan lets exactly them through (property check)", () => {
        let seed = 7;
        const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
        const label = () => Array.from({ length: 1 + rand(10) }, () => "abcdefghijklmnopqrstuvwxyz0123456789"[rand(36)]).join("");
        for (let round = 0; round < 50; round++) {
            const domains = Array.from({ length: rand(20) }, () => `${rand(3) === 0 ? "*." : ""}${"x" + label()}.${label()}.example`);
            const r = renderGuest(withAllowlist(stack("alice"), domains), templates);
            const entries = [...r.allowlist.matchAll(/^# {3}(.*)$/gm)].map((m) => m[1]);
            expect(new Set(entries)).toEqual(new Set([...new Set(domains)].map((d) => `${d} 443`)));
            const keys = r.allowlist.split("\n").filter((l) => l.startsWith("proxy "));
            expect(new Set(keys)).toEqual(new Set(domains.map((d) => (d.startsWith("*.") ? `proxy tls suffix ${d.slice(1)}:443` : `proxy tls exact ${d}:443`))));
        }
    });

    test("guest scripts keep their executable bit, data files do not", () => {
        const r = renderGuest(stack("alice"), templates);
        expect(r.files.find((f) => f.path === "/usr/local/lib/cc-sandbox/boot")?.mode).toBe("0755");
        expect(r.files.find((f) => f.path === "/etc/cc-sandbox/sandbox.env")?.mode).toBe("0644");
    });

    test("npm run render --out writes user-data, meta-data and the file tree", () => {
        const out = tempDir("cc-render-");
        execFileSync(process.execPath, [path.join(root, "node_modules/zx/build/cli.js"), "scripts/render.mjs", "--stack", "bob", "--out", out], {
            cwd: root,
            env: { ...process.env, HOME: home },
        });
        const r = renderGuest(stack("bob"), templates);
        expect(fs.readFileSync(path.join(out, "user-data"), "utf8")).toBe(r.userData);
        expect(fs.readFileSync(path.join(out, "meta-data"), "utf8")).toBe(r.metaData);
        for (const f of r.files) {
            const p = path.join(out, "files", f.path);
            expect(fs.readFileSync(p, "utf8")).toBe(f.content);
            expect((fs.statSync(p).mode & 0o777).toString(8).padStart(4, "0")).toBe(f.mode);
        }
    });
});

describe("a baked image (npm run bake)", () => {
    const id = bakedId(templates);
    const baked = new Set(bakedFiles(templates).map((f) => f.path));

    test("holds the files every stack shares: no template, nothing of the agent's, not resolved's drop-in", () => {
        const all = renderGuest(stack("alice"), templates).files;
        expect(baked.size).toBeGreaterThan(40);
        expect(baked).toContain("/usr/local/sbin/cc-sandbox-firewall");
        expect(baked).toContain("/etc/sudoers.d/cc-sandbox");
        for (const p of [allowlistPath, "/etc/cc-sandbox/sandbox.env", "/etc/cc-sandbox/secure-ops.conf", "/home/agent/.gitconfig", "/home/agent/.claude/settings.json", "/etc/systemd/resolved.conf.d/cc-sandbox.conf"]) {
            expect(all.map((f) => f.path)).toContain(p);
            expect(baked).not.toContain(p);
        }
        // The same bytes, mode and owner as every stack's rendering of them.
        for (const f of bakedFiles(templates)) {
            const r = all.find((x) => x.path === f.path)!;
            expect([r.content, parseInt(r.mode, 8), r.owner]).toEqual([f.content, parseInt(f.mode, 8), f.owner]);
        }
        expect(bakedFiles(templates).find((f) => f.path === "/etc/sudoers.d/cc-sandbox")!.mode).toBe("440");
    });

    test("a stack on it carries only its own files and the check of the image's, then the runner", () => {
        const full = renderGuest(stack("alice"), templates);
        const r = renderGuest(stack("alice"), templates, { bakedFiles: id });
        const doc = parse(r.userData);
        const paths: string[] = doc.write_files.map((f: { path: string }) => f.path);
        expect(paths).toEqual(full.files.map((f) => f.path).filter((p) => !baked.has(p)));
        expect(paths).toContain(allowlistPath);
        expect(r.userData.length).toBeLessThan(20_000);
        expect(full.userData.length).toBeGreaterThan(100_000);
        expect(doc.runcmd).toEqual([["bash", "-c", bakedCheck("/usr/local/lib/cc-sandbox/boot"), "cc-sandbox-baked", id]]);
        // All the files are still what the program knows the guest by (in-place pushes, --out).
        expect(r.files).toEqual(full.files);
        // Another first boot: another instance.
        expect(r.firstBootHash).not.toBe(full.firstBootHash);
        const dir = tempDir("cc-schema-");
        fs.writeFileSync(path.join(dir, "user-data"), r.userData);
        expect(execFileSync("cloud-init", ["schema", "--config-file", path.join(dir, "user-data")], { encoding: "utf8" })).toMatch(/Valid (cloud-config|schema)/i);
    });

    test("an image with another version's files, or none named, gets every file as a stock image does", () => {
        const full = renderGuest(stack("alice"), templates).userData;
        expect(renderGuest(stack("alice"), templates, { bakedFiles: "0".repeat(64) }).userData).toBe(full);
        expect(renderGuest(stack("alice"), templates, {}).userData).toBe(full);
        // Any change to a baked file names another set.
        const changed = { files: templates.files.map((t) => (t.guestPath === "/usr/local/sbin/cc-sandbox-firewall" ? { ...t, source: t.source + "\n" } : t)) };
        expect(bakedId(changed)).not.toBe(id);
        const chmodded = { files: templates.files.map((t) => (t.guestPath === "/etc/sudoers.d/cc-sandbox" ? { ...t, mode: "0644" } : t)) };
        expect(bakedId(chmodded)).not.toBe(id);
        expect(renderGuest(stack("alice"), changed, { bakedFiles: id }).userData).toBe(renderGuest(stack("alice"), changed).userData);
    });

    test("image.json beside a local image names the set; anything else is a stock image", () => {
        const dir = tempDir("cc-image-");
        const image = path.join(dir, "disk.qcow2");
        const read = (f: string) => fs.readFileSync(f, "utf8");
        expect(readBaseImage(image, read)).toEqual({});
        expect(readBaseImage(undefined, read)).toEqual({});
        fs.writeFileSync(path.join(dir, "image.json"), "{not json");
        expect(readBaseImage(image, read)).toEqual({});
        for (const guestFiles of [null, 7, "abc", id.toUpperCase(), `${id}\n`, undefined]) {
            fs.writeFileSync(path.join(dir, "image.json"), JSON.stringify({ release: "ubuntu 24.04", guestFiles }));
            expect(readBaseImage(image, read)).toEqual({});
        }
        fs.writeFileSync(path.join(dir, "image.json"), JSON.stringify({ release: "ubuntu 24.04", guestFiles: id }));
        expect(readBaseImage(image, read)).toEqual({ bakedFiles: id });
    });

    test("the local image is a file:// one, or a path when libvirt runs on this machine", () => {
        const lv = (libvirt: object) => libvirtDriver(home).localImage(loadConfig("bob", { hypervisor: "libvirt", libvirt }, host));
        expect(lv({ image: "/srv/images/disk.qcow2" })).toBe("/srv/images/disk.qcow2");
        expect(lv({ image: "file:///srv/images/disk.qcow2", uri: "qemu+ssh://root@host.example/system" })).toBe("/srv/images/disk.qcow2");
        expect(lv({ image: "/srv/images/disk.qcow2", uri: "qemu+ssh://root@host.example/system" })).toBeUndefined();
        expect(lv({ image: "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img" })).toBeUndefined();
        const mp = (image: string) => multipass.localImage(loadConfig("bob", { vm: { image } }, host));
        expect(mp(`file://${home}/cc-sandbox/images/x/disk.qcow2`)).toBe(`${home}/cc-sandbox/images/x/disk.qcow2`);
        expect(mp("24.04")).toBeUndefined();
    });
});

describe("cloud-init schema", () => {
    test.each(["alice", "bob", "ci"])("the %s user-data passes `cloud-init schema`", (name) => {
        const dir = tempDir("cc-schema-");
        const file = path.join(dir, "user-data");
        fs.writeFileSync(file, renderGuest(stack(name), templates).userData);
        const out = execFileSync("cloud-init", ["schema", "--config-file", file], { encoding: "utf8" });
        expect(out).toMatch(/Valid (cloud-config|schema)/i);
    });

    test("`cloud-init schema` catches a wrong type (so the check above can fail)", () => {
        const dir = tempDir("cc-schema-");
        const file = path.join(dir, "user-data");
        fs.writeFileSync(file, "#cloud-config\nssh_pwauth: [1, 2]\nruncmd: 7\n");
        expect(() => execFileSync("cloud-init", ["schema", "--config-file", file], { stdio: "pipe" })).toThrow();
    });
});
