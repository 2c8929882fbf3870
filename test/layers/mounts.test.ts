/**
 * 12-mounts.sh: first boot mounts the shared folders the cloud-config appended to /etc/fstab (a
 * tmpfs line stands in for libvirt's virtiofs tag), in a guest namespace whose CC_MOUNTS is the ci
 * stack's (/home/agent/code).
 */
import { boot, inGuest } from "./guest";

const share = "/home/agent/code";

function step(fstab: string, before = "") {
    return inGuest(`${fstab ? `printf '%s\\n' '${fstab}' >>/etc/fstab` : ":"}
${before}
set +e
${boot("12-mounts.sh")}; rc=$?
mountpoint -q ${share} && echo mounted-after
echo rc=$rc`);
}

test("a shared folder in fstab is mounted, and a second run leaves it", () => {
    const r = step(`cc-test-tag ${share} tmpfs defaults,nofail,size=1m 0 0`);
    expect(r.stderr).toContain(`12-mounts: mounted cc-test-tag (tmpfs) on ${share}`);
    expect(r.stdout).toBe("mounted-after\nrc=0\n");
    const again = step(`cc-test-tag ${share} tmpfs defaults,nofail,size=1m 0 0`, `mkdir -p ${share}; mount ${share}`);
    expect(again.stderr).toContain(`12-mounts: ${share} is mounted`);
    expect(again.stdout).toBe("mounted-after\nrc=0\n");
});

test("no fstab line for it (Multipass shares from the host): nothing is mounted", () => {
    const r = step("# cc-test-tag /home/agent/code tmpfs defaults 0 0");
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("rc=0\n");
});

test("a shared folder that does not mount stops first boot, naming it", () => {
    const r = step(`m0-code ${share} cc-no-such-fs defaults,nofail 0 0`);
    expect(r.stderr).toContain(`12-mounts: error: the shared folder m0-code (cc-no-such-fs) did not mount on ${share}`);
    expect(r.stdout).toBe("rc=1\n");
});

test("after 10-users.sh: the host's folder keeps its owner (mounted first, 10-users would give it to the agent)", () => {
    const line = `printf '%s\\n' 'cc-test-tag ${share} tmpfs defaults,nofail,size=1m,mode=0755,uid=0 0 0' >>/etc/fstab`;
    const owner = `stat -c '%U' ${share}`;
    const inOrder = inGuest(`${line}; ${boot("10-users.sh")} 2>/dev/null; ${boot("12-mounts.sh")} 2>/dev/null; ${owner}`);
    expect(inOrder.stdout).toBe("root\n");
    const reversed = inGuest(`${line}; ${boot("12-mounts.sh")} 2>/dev/null; ${boot("10-users.sh")} 2>/dev/null; ${owner}`);
    expect(reversed.stdout).toBe("agent\n");
    // The runner takes the steps in the order of their names.
    const order = inGuest("ls /usr/local/lib/cc-sandbox/boot.d | grep -nE '^(10-users|12-mounts)'");
    expect(order.stdout).toMatch(/^\d+:10-users\.sh\n\d+:12-mounts\.sh\n$/);
});
