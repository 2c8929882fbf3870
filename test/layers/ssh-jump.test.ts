/**
 * Reaching a remote libvirt host's guest through the host: the ssh command and config block the
 * program prints (src/drivers/ssh.ts, from the libvirt driver's target) go through the host with a
 * ProxyCommand that offers the stack's key and checks the host's key against a file that outlives
 * the VMs. Two sshds of our own (a jump host and a "guest") on loopback, in a network namespace of
 * their own inside the throw-away guest; the user has no SSH configuration or known_hosts of its own.
 */
import * as fs from "fs";
import * as path from "path";
import { loadConfig } from "../../src/config/load";
import { libvirtDriver } from "../../src/drivers/libvirt";
import { sshArgv, sshConfigBlock } from "../../src/drivers/ssh";
import { shellQuote } from "../../src/shell";
import { tempHome } from "../helpers";
import { inGuest } from "./guest";

const d = "/tmp/jump-test";
// The driver's own target for a stack on qemu+ssh://root@127.0.0.1:2201, with the stack's key in
// $d and the user's home at $d/home.
const config = loadConfig(
    "jt",
    { hypervisor: "libvirt", vm: { name: "cc-jt" }, libvirt: { uri: "qemu+ssh://root@127.0.0.1:2201/system" }, ssh: { publicKeyPath: `${d}/key.pub` } },
    // (Only read to validate the config: the key the sshds trust is made in the guest, at $d/key.)
    { home: `${d}/home`, readFile: () => fs.readFileSync(path.join(tempHome(), ".ssh", "id_ed25519.pub"), "utf8"), platform: "linux" },
);
const driver = libvirtDriver(`${d}/home`);
const target = { ...driver.sshTarget(config), options: [...driver.sshTarget(config).options, "BatchMode=yes", "ConnectTimeout=5"] };
const jump = { ...target.jump!, options: [...target.jump!.options, "BatchMode=yes", "ConnectTimeout=5"] };
const printed = sshArgv({ ...target, jump }, "root", "127.0.0.2").map(shellQuote).join(" ");
const block = sshConfigBlock("cc-jt", { ...target, jump }, "root", "127.0.0.2");
// What `ssh -J` does: the first hop gets the user's own configuration, not the stack's key and file.
const withJ = ["ssh", "-i", target.identityFile, ...target.options.flatMap((o) => ["-o", o]), "-J", "root@127.0.0.1:2201", "root@127.0.0.2"].map(shellQuote).join(" ");
const q = (s: string) => s.replace(/'/g, "'\\''");

let out = "";

beforeAll(() => {
    const r = inGuest(`
        set -euo pipefail
        d=${d}
        mkdir -p "$d/home/.ssh" /run/sshd
        ssh-keygen -q -t ed25519 -N '' -f "$d/key"
        for who in jump guest other; do ssh-keygen -q -t ed25519 -N '' -f "$d/\${who}_host_key"; done
        cp "$d/key.pub" "$d/authorized_keys"
        # No SSH configuration or known_hosts of the user's own: only our files can vouch for a host.
        rm -rf /root/.ssh /etc/ssh/ssh_known_hosts
        cat >"$d/config" <<'CONFIG'
${block}CONFIG
        for who in jump guest; do
          printf '%s\\n' "PidFile $d/$who.pid" "AuthorizedKeysFile $d/authorized_keys" "PermitRootLogin prohibit-password" \\
            "PasswordAuthentication no" "KbdInteractiveAuthentication no" "UsePAM no" "StrictModes no" "AllowTcpForwarding yes" >"$d/$who.conf"
        done
        unshare --net bash -euo pipefail -c '
          d=${d}
          ip link set lo up
          jump() { /usr/sbin/sshd -f "$d/jump.conf" -o "HostKey=$d/$1_host_key" -o ListenAddress=127.0.0.1:2201 -E "$d/jump.log"; }
          jump jump
          /usr/sbin/sshd -f "$d/guest.conf" -o "HostKey=$d/guest_host_key" -o ListenAddress=127.0.0.2:22 -E "$d/guest.log"
          try() {
            local name=$1; shift
            local rc=0 msg
            # In a session of its own: no terminal to ask on, as under CI or an IDE, wherever jest runs.
            msg=$(setsid -w timeout 60 "$@" 2>&1 </dev/null) || rc=$?
            echo "$name=$rc $(tr "\\r\\n" "  " <<<"$msg")"
          }
          try with-J ${q(withJ)} echo via-J
          try printed ${q(printed)} echo through-the-host
          echo "vm-known=$(wc -l <"$d/home/.ssh/known_hosts.cc-sandbox.cc-jt") hosts-known=$(wc -l <"$d/home/.ssh/known_hosts.cc-sandbox-hosts")"
          try config ssh -F "$d/config" cc-jt echo by-the-config-block
          # A new VM empties its own file; the host stays known.
          rm -f "$d/home/.ssh/known_hosts.cc-sandbox.cc-jt"
          try again ${q(printed)} echo again
          # Someone else answering as the host: another host key, where the host was known.
          kill "$(cat "$d/jump.pid")"
          for i in $(seq 100); do [ -n "$(ss -Hltn "sport = :2201")" ] || break; sleep 0.05; done
          jump other
          try impostor ${q(printed)} echo through-an-impostor
          kill "$(cat "$d/jump.pid")" "$(cat "$d/guest.pid")"
        '
    `);
    out = r.stdout;
    if (r.status !== 0) throw new Error(`the jump test run failed: ${r.stderr}\n${r.stdout}`);
});

const result = (name: string) => new RegExp(`^${name}=(\\d+) (.*)$`, "m").exec(out);

test("the printed ssh command reaches the guest through the host with the stack's key, trusting each on first use", () => {
    const r = result("printed");
    expect(r?.[1]).toBe("0");
    expect(r?.[2]).toMatch(/(^| )through-the-host *$/);
    // The guest's key in the VM's own file, the host's in the file that outlives VMs.
    expect(out).toMatch(/^vm-known=1 hosts-known=1$/m);
});

test("the ssh_config block takes the same way, with OpenSSH as it is", () => {
    const r = result("config");
    expect(r?.[1]).toBe("0");
    expect(r?.[2]).toMatch(/(^| )by-the-config-block *$/);
    expect(block).toMatch(/^ {2}ProxyCommand ssh -i .* -W %h:%p root@127\.0\.0\.1$/m);
});

test("a new VM is trusted on first use again; the host is not: another key there is refused", () => {
    expect(result("again")?.slice(1, 2)).toEqual(["0"]);
    const r = result("impostor");
    expect(r?.[1]).not.toBe("0");
    expect(r?.[2]).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    expect(r?.[2]).not.toContain("through-an-impostor");
});

test("control: ssh -J gives the first hop the user's own configuration, and fails there", () => {
    const r = result("with-J");
    expect(r?.[1]).not.toBe("0");
    expect(r?.[2]).toMatch(/Host key verification failed|Permission denied/);
    expect(r?.[2]).not.toContain("via-J");
});
