/**
 * Containers for projects (`containers: true`), attacked: a project's worker runs rootless Podman,
 * and its containers are no more than the worker itself. Their traffic (through slirp4netns, or on
 * the host's network) leaves as the worker's uid, so the project's egress decides it, by name; root
 * in a container is the worker's uid mapped alone, with no_new_privs; a worker of a project without
 * containers, and the agent, cannot run podman; `remove` ends a worker's containers with it. Every
 * attack is paired with the allowed work that goes through the same path. Needs root and Debian's
 * podman, slirp4netns and acl (see test/README.md).
 */
import * as path from "path";
import { spawnSync } from "child_process";
import { projectUid } from "../../src/config/projects";
import { tempDir } from "../helpers";
import { Harness, makeTestHome, repoRoot, writeCiStack } from "./lib";

const records = `
shared.test.example       A  198.51.100.10
webonly.test.example      A  198.51.100.10
apionly.test.example      A  198.51.100.10
webraw.test.example       A  198.51.100.40
api.anthropic.com         A  198.51.100.50
`;

const web = projectUid("web");
const api = projectUid("api");
const quiet = projectUid("quiet");

const projects = [
    { name: "web", containers: true, allowlist: { domains: [{ name: "webonly.test.example", ports: [443, 80] }, { name: "webraw.test.example", ports: ["8080/raw"] }] } },
    { name: "api", allowlist: { domains: [{ name: "apionly.test.example", ports: [443, 80] }] } },
    { name: "quiet", containers: true, network: "none" },
];
const stackAllowlist = { presets: [], domains: [{ name: "shared.test.example", ports: [443, 80] }] };
const image = "localhost/ccsbx-test";

let h: Harness;

function writeStack(dir: string): string {
    return writeCiStack(dir, "projectcontainers", { allowlist: stackAllowlist, projects });
}

/**
 * podman as USER, with no_new_privs as every login of a worker has it in the VM (its login shell
 * sets it; the harness's users are not logged in): its output and exit code.
 */
const podman = (user: string, args: string) => h.exec(`setpriv --no-new-privs podman ${args} 2>&1; echo "rc=$?"`, { user });
/** A bash command in a throwaway container of USER's, on NETWORK (slirp4netns by default). */
const inContainer = (user: string, command: string, network = "") =>
    podman(user, `run --rm ${network} ${image} /bin/bash -c '${command.replace(/'/g, "'\\''")}'`);
/**
 * An HTTP request for HOST to ADDRESS (a name or an address) port 80: the answer's first line, after
 * "trying" (the container ran: a refusal is not a container that failed to start).
 */
const httpGet = (address: string, host: string) =>
    `echo trying && exec 3<>/dev/tcp/${address}/80 && printf "GET / HTTP/1.1\\r\\nHost: ${host}\\r\\nConnection: close\\r\\n\\r\\n" >&3 && IFS= read -r -t 5 line <&3 && echo "got: $line"`;
/** A raw TCP connection to ADDRESS:PORT: the banner, after "trying". */
const rawGet = (address: string, port: number) => `echo trying && exec 3<>/dev/tcp/${address}/${port} && IFS= read -r -t 5 line <&3 && echo "got: $line"`;
/** A container's attempt that ran and was refused: no answer, or the proxy's own 403. */
const refused = (r: { stdout: string }) => {
    expect(r.stdout).toMatch(/^trying\n/);
    expect(r.stdout).not.toMatch(/got: (?!HTTP\/1\.1 403 )/);
};

beforeAll(async () => {
    const dir = tempDir("ccfw-projcontainers-");
    const home = makeTestHome(dir);
    h = await Harness.start({ config: writeStack(dir), records, home });
    // What the VM has and this machine's namespace lacks: cgroup v2 alone (crun refuses a hybrid
    // hierarchy, this host's), and a /dev/net/tun every user may open (udev's rule in the VM).
    const rootfs = spawnSync("bash", [path.join(repoRoot, "test/container-rootfs.sh")], { maxBuffer: 64 << 20 });
    if (rootfs.status !== 0) throw new Error(`container-rootfs.sh failed: ${rootfs.stderr}`);
    const prep = await h.root(
        `set -e
[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] || mount -t cgroup2 none /sys/fs/cgroup
mkdir -p /run/ccsbx-dev && mount -t tmpfs -o mode=0755 ccsbx-dev /run/ccsbx-dev && mknod -m 0666 /run/ccsbx-dev/tun c 10 200 && mount --bind /run/ccsbx-dev/tun /dev/net/tun
base64 -d >/tmp/ccsbx-rootfs.tar && chmod 0644 /tmp/ccsbx-rootfs.tar
printf 'containers yes\\n' | cc-sandbox-project add web ${web} -
cc-sandbox-project add api ${api}
printf 'containers yes\\n' | cc-sandbox-project add quiet ${quiet} -`,
        { input: rootfs.stdout.toString("base64") },
    );
    if (prep.code !== 0) throw new Error(`preparing the guest failed: ${prep.stderr}${prep.stdout}`);
    for (const user of ["cc-web", "cc-quiet"]) {
        // The guest's storage driver is overlay, which cannot stack its layers on this namespace's
        // /home (itself an overlay): here the workers store theirs with vfs, with the guest's
        // other option for it.
        const vfs = await h.exec(
            "mkdir -p ~/.config/containers && sed -e 's/^driver = .*/driver = \"vfs\"/' -e '/^runroot\\|^graphroot/d' /etc/containers/storage.conf >~/.config/containers/storage.conf",
            { user },
        );
        if (vfs.code !== 0) throw new Error(`storage.conf as ${user}: ${vfs.stderr}`);
        const r = await podman(user, `import /tmp/ccsbx-rootfs.tar ${image}`);
        if (!r.stdout.includes("rc=0")) throw new Error(`podman import as ${user} failed: ${r.stdout}`);
    }
}, 240000);

afterAll(async () => {
    await h?.stop();
});

test("allowed: a container of a project with containers reaches its names and the stack's, through slirp4netns and on the host's network", async () => {
    for (const network of ["", "--network host"]) {
        expect((await inContainer("cc-web", httpGet("webonly.test.example", "webonly.test.example"), network)).stdout).toContain("got: HTTP/1.1 200");
        expect((await inContainer("cc-web", httpGet("shared.test.example", "shared.test.example"), network)).stdout).toContain("got: HTTP/1.1 200");
        expect((await inContainer("cc-web", rawGet("webraw.test.example", 8080), network)).stdout).toContain("got: ok 198.51.100.40 8080");
    }
    // and as the worker: the same answers
    expect((await h.exec(httpGet("webonly.test.example", "webonly.test.example"), { user: "cc-web" })).stdout).toContain("got: HTTP/1.1 200");
}, 120000);

test("attack: a container asks for another project's name on the shared address, or sends another site's Host to its own name's address, and is refused", async () => {
    const before = (await h.root("grep -c 'why=name-not-allowed name=apionly.test.example port=80 dst=198.51.100.10 ' /var/log/cc-sandbox/proxy.log || true")).stdout.trim();
    for (const network of ["", "--network host"]) {
        refused(await inContainer("cc-web", httpGet("apionly.test.example", "apionly.test.example"), network));
        // the co-tenant trick: the allowed name's address, another site's Host
        refused(await inContainer("cc-web", httpGet("webonly.test.example", "apionly.test.example"), network));
    }
    // the proxy judged all four, as web's: refused by name
    const after = (await h.root("grep -c 'why=name-not-allowed name=apionly.test.example port=80 dst=198.51.100.10 ' /var/log/cc-sandbox/proxy.log || true")).stdout.trim();
    expect(Number(after) - Number(before)).toBe(4);
}, 120000);

test("attack: a container of a project with network none reaches none of the stack's names, raw or by name", async () => {
    for (const network of ["", "--network host"]) {
        refused(await inContainer("cc-quiet", httpGet("shared.test.example", "shared.test.example"), network));
        refused(await inContainer("cc-quiet", rawGet("198.51.100.40", 8080), network));
    }
    // what Claude Code needs it still reaches (the preset's port, 443, goes to the proxy, which
    // judges the name), where the stack's name on the same port is refused outright
    const connect = (name: string) => inContainer("cc-quiet", `exec 3<>/dev/tcp/${name}/443 && echo connected`);
    expect((await connect("api.anthropic.com")).stdout).toContain("connected");
    expect((await connect("shared.test.example")).stdout).not.toContain("connected");
}, 120000);

test("an image with files of users other than root (as most have) imports and runs: their owners are squashed onto the worker's uid", async () => {
    const r = await inContainer("cc-web", "cat /home/app/owned; [ -O /home/app/owned ] && echo owned-by-root-here");
    expect(r.stdout).toBe("app\nowned-by-root-here\nrc=0\n");
}, 60000);

test("attack: root in a container is the worker's uid mapped alone: no other uid, no write to root's files, --privileged changes nothing", async () => {
    const ids = await inContainer("cc-web", "id -u; cat /proc/self/uid_map /proc/self/status");
    expect(ids.stdout).toMatch(new RegExp(`^0\\n\\s*0\\s+${web}\\s+1\\n`));
    expect(ids.stdout).toMatch(/NoNewPrivs:\s+1/);
    for (const extra of ["", "--privileged"]) {
        const r = await podman("cc-web", `run --rm ${extra} -v /etc:/host-etc ${image} /bin/bash -c 'echo x >>/host-etc/passwd && echo wrote; cat /host-etc/shadow >/dev/null && echo read-shadow; true'`);
        expect(r.stdout).not.toMatch(/wrote|read-shadow/);
    }
    expect((await h.root("grep -c '^x$' /etc/passwd || true")).stdout.trim()).toBe("0");
    // the worker has no subordinate ids to map more with
    expect((await h.root(`grep -E '^(cc-web|${web}):' /etc/subuid /etc/subgid || echo none`)).stdout.trim()).toBe("none");
}, 120000);

test("attack: a worker of a project without containers, and the agent, cannot run podman; status says who may", async () => {
    for (const user of ["cc-api", "agent"]) {
        const r = await h.exec("podman --version 2>&1; echo rc=$?", { user });
        expect([user, r.stdout]).toEqual([user, expect.stringMatching(/Permission denied[\s\S]*rc=126/)]);
    }
    expect((await h.exec("podman --version", { user: "cc-web" })).stdout).toMatch(/podman version/);
    expect((await h.root("cc-sandbox-project status")).code).toBe(0);
    // Loosened by hand, for a user, a group, execute alone, or the file's mode: status names it,
    // and the next add (of any project) puts it back.
    for (const loosen of [`setfacl -m u:${api}:rx /usr/bin/podman`, `setfacl -m g:cc-api:rx /usr/bin/podman`, `setfacl -m u:${api}:x /usr/bin/podman`, "chmod 0755 /usr/bin/podman"]) {
        await h.root(loosen);
        const loose = await h.root("cc-sandbox-project status api; echo rc=$?");
        expect([loosen, loose.stdout]).toEqual([loosen, expect.stringMatching(/FAIL +api: \/usr\/bin\/podman('s ACL is not the container projects' workers' alone| is not root's and 0750)[\s\S]*rc=3/)]);
        expect((await h.root(`cc-sandbox-project add api ${api}`)).code).toBe(0);
        expect((await h.root("cc-sandbox-project status")).code).toBe(0);
        expect((await h.exec("podman --version 2>&1; echo rc=$?", { user: "cc-api" })).stdout).toMatch(/rc=126/);
    }
}, 60000);

test("attack: subordinate ids given to a worker by hand (by name or by uid) fail status, and add takes them away", async () => {
    for (const who of ["cc-api", String(api)]) {
        await h.root(`echo '${who}:300000:65536' >>/etc/subuid && echo '${who}:300000:65536' >>/etc/subgid`);
        expect((await h.root("cc-sandbox-project status api; echo rc=$?")).stdout).toMatch(/FAIL +api: cc-api has subordinate ids[\s\S]*rc=3/);
        expect((await h.root(`cc-sandbox-project add api ${api}`)).code).toBe(0);
        expect((await h.root(`grep -E '^(cc-api|${api}):' /etc/subuid /etc/subgid || echo none`)).stdout.trim()).toBe("none");
    }
}, 60000);

test("adds side by side (as pulumi up runs them) leave podman's ACL whole: the container workers', no one else's", async () => {
    const rounds = await h.root(
        `for i in $(seq 15); do
           (printf 'containers yes\\n' | cc-sandbox-project add web ${web} - >/dev/null 2>&1 || echo "web failed in round $i") &
           (cc-sandbox-project add api ${api} >/dev/null 2>&1 || echo "api failed in round $i") &
           (printf 'containers yes\\n' | cc-sandbox-project add quiet ${quiet} - >/dev/null 2>&1 || echo "quiet failed in round $i") &
           wait
         done; getfacl -cn /usr/bin/podman`,
    );
    expect(rounds.stdout).not.toContain("failed");
    expect(rounds.stdout).toBe(["user::rwx", ...[web, quiet].sort((a, b) => a - b).map((u) => `user:${u}:r-x`), "group::r-x", "mask::r-x", "other::---", "", ""].join("\n"));
    expect((await h.root("cc-sandbox-project status")).code).toBe(0);
}, 120000);

test("a project that loses containers loses podman at once, and its running containers end", async () => {
    expect((await podman("cc-web", `run -d ${image} /bin/sleep 600`)).stdout).toContain("rc=0");
    expect((await h.root(`pgrep -u ${web} -x sleep`)).code).toBe(0);
    expect((await h.root(`cc-sandbox-project add web ${web}`)).code).toBe(0);
    expect((await h.root(`pgrep -u ${web} -x sleep || echo none`)).stdout.trim()).toBe("none");
    expect((await h.root(`pgrep -u ${web} -x conmon || echo none`)).stdout.trim()).toBe("none");
    expect((await h.exec("podman --version 2>&1; echo rc=$?", { user: "cc-web" })).stdout).toMatch(/Permission denied[\s\S]*rc=126/);
    expect((await h.root("cc-sandbox-project status")).code).toBe(0);
    // and given them back, it runs them again
    expect((await h.root(`printf 'containers yes\\n' | cc-sandbox-project add web ${web} -`)).code).toBe(0);
    expect((await inContainer("cc-web", "id -u")).stdout).toBe("0\nrc=0\n");
}, 120000);

test("remove ends a worker's running containers with it, and leaves no ACL entry behind", async () => {
    const started = await podman("cc-quiet", `run -d ${image} /bin/sleep 600`);
    expect(started.stdout).toContain("rc=0");
    expect((await h.root(`pgrep -u ${quiet} -x sleep`)).code).toBe(0);
    const removed = await h.root("cc-sandbox-project remove quiet");
    expect(removed.code).toBe(0);
    expect((await h.root(`pgrep -u ${quiet} || echo none`)).stdout.trim()).toBe("none");
    expect((await h.root("getfacl -cn /usr/bin/podman")).stdout).not.toContain(`user:${quiet}:`);
    expect((await h.root("ls -d /home/cc-quiet 2>&1 || true")).stdout).toMatch(/No such file/);
}, 120000);
