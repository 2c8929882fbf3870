/**
 * Each project's own credential bridge, attacked: in one guest namespace with network and PID
 * namespaces of its own (loopback only, /proc mounted hidepid=invisible as boot step 15 does), the
 * stack's bridge (the agent's) runs beside the bridges of two projects, web and api, each made by
 * `cc-sandbox-secure-ops --project NAME apply` before its worker is added, as the program orders
 * them. Then web's worker goes after api's secrets, api's bridge, the stack's bridge and its own
 * bridge's files, and the agent after web's bridge, each beside the allowed work that must still
 * succeed; web's bridge is purged while one of its scripts runs.
 */
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { projectSpec, projectUid } from "../../src/config/projects";
import { asAgent, boot, inGuest, tryResult } from "./guest";

const ops = "/usr/local/sbin/cc-sandbox-secure-ops";
const tool = "/usr/local/sbin/cc-sandbox-project";
// Values made for this run, so nothing here is a real secret and no run finds another's.
const webSecret = `web-${randomBytes(12).toString("hex")}`;
const apiSecret = `api-${randomBytes(12).toString("hex")}`;
const stackSecret = `stack-${randomBytes(12).toString("hex")}`;
const asWeb = "setpriv --reuid=cc-web --regid=cc-web --init-groups --reset-env -- env HOME=/home/cc-web PATH=/usr/local/bin:/usr/bin:/bin";
const webProject = projectSpec({ name: "web", setup: "secure_run whoami.sh > ~/setup-bridge.out 2>&1" });
const apiSecrets = "/var/lib/cc-sandbox/project-secrets/api";
const webPort = "$(cut -d' ' -f1 /etc/cc-sandbox/secure-ops.d/web/client)";
const apiPort = "$(cut -d' ' -f1 /etc/cc-sandbox/secure-ops.d/api/client)";
/** ssh to a bridge by hand, with KEY, trusting any host key: only the bridge's own checks stand. */
const sshTo = (port: string, user: string, key: string) =>
    `ssh -F /dev/null -T -p ${port} -l ${user} -i ${key} -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR 127.0.0.1`;

const attempts: Record<string, string> = {
    // allowed work: each client through its own bridge, as its own secrets owner, with its own secret
    "web-own-script": `${asWeb} secure_run whoami.sh`,
    "web-own-arg": `${asWeb} secure_run peek.sh TOKEN`,
    "api-own-script": `setpriv --reuid=cc-api --regid=cc-api --init-groups --reset-env -- env HOME=/home/cc-api PATH=/usr/local/bin:/usr/bin:/bin secure_run whoami.sh`,
    "agent-stack-script": `${asAgent} env HOME=/home/agent PATH=/usr/local/bin:/usr/bin:/bin secure_run whoami.sh`,
    // a script of the stack's bridge binding a port below 1024: its sshd's capability is not the script's
    "stack-script-binds-port": `${asAgent} env HOME=/home/agent PATH=/usr/local/bin:/usr/bin:/bin secure_run bind.sh`,
    "web-setup-used-bridge": "cat /home/cc-web/setup-bridge.out",
    "web-check": `${ops} --project web check`,
    "web-status": `${ops} --project web status`,
    // another project's secrets, bridge files and worker key, directly
    "web-read-api-secret": `${asWeb} cat ${apiSecrets}/secrets/TOKEN`,
    "web-list-api-secrets": `${asWeb} ls ${apiSecrets}`,
    "web-read-api-host-key": `${asWeb} cat /etc/cc-sandbox/secure-ops.d/api/host_ed25519_key`,
    "web-read-api-worker-key": `${asWeb} cat /home/cc-api/.ssh/cc-sandbox-secure-ops`,
    "web-read-stack-secret": `${asWeb} cat /var/lib/cc-sandbox/secure-ops/secrets/TOKEN`,
    // through its own bridge: a script of its own that reads any path runs as ccs-web, not as api's owner
    "web-script-reads-api-secret": `${asWeb} secure_run peek.sh ${apiSecrets}/secrets/TOKEN`,
    "web-script-reads-stack-secret": `${asWeb} secure_run peek.sh /var/lib/cc-sandbox/secure-ops/secrets/TOKEN`,
    "web-runs-api-script": `${asWeb} secure_run api-only.sh`,
    // other bridges with its own key
    "web-key-on-api-bridge": `${asWeb} ${sshTo(apiPort, "ccs-api", "/home/cc-web/.ssh/cc-sandbox-secure-ops")} whoami.sh`,
    "web-key-on-stack-bridge": `${asWeb} ${sshTo("799", "ccsecrets", "/home/cc-web/.ssh/cc-sandbox-secure-ops")} whoami.sh`,
    "web-home-forged": `${asWeb} env HOME=/home/cc-api secure_run whoami.sh`,
    // the agent on web's bridge, with its own key or web's name
    "agent-key-on-web-bridge": `${asAgent} ${sshTo(webPort, "ccs-web", "/home/agent/.ssh/cc-sandbox-secure-ops")} whoami.sh`,
    "agent-home-forged": `${asAgent} env HOME=/home/cc-web PATH=/usr/local/bin:/usr/bin:/bin secure_run whoami.sh`,
    // its own bridge's files, and the tool
    "web-edit-client": `${asWeb} sh -c 'echo "799 ccsecrets" > /etc/cc-sandbox/secure-ops.d/web/client'`,
    "web-edit-scripts": `${asWeb} sh -c 'echo /bin/cat >> /etc/cc-sandbox/secure-ops.d/web/scripts.conf'`,
    "web-runs-tool": `${asWeb} ${ops} --project api status`,
    // a secret in a running script's environment, with its pid known
    "web-proc-of-api-script": `${asWeb} sh -c 'p=$(cat /tmp/api-hold-pid); cat /proc/$p/environ; grep -a TOKEN= /proc/[0-9]*/environ; pgrep -u ccs-api; true'`,
};

// What reaches the guest on stdin (/var is an overlay over this machine's: its lower layer shows this).
const inputs = fs.mkdtempSync("/var/tmp/cc-project-bridge-");
afterAll(() => fs.rmSync(inputs, { recursive: true, force: true }));

let out = "";
const result = (name: string) => tryResult(out, name);
const value = (name: string) => {
    const m = new RegExp(`^${name}=(.*)$`, "m").exec(out);
    if (!m) throw new Error(`no ${name} in:\n${out}`);
    return m[1];
};

beforeAll(() => {
    for (const [name, content] of Object.entries({ stack: stackSecret, web: webSecret, api: apiSecret, "web-spec": webProject })) {
        fs.writeFileSync(path.join(inputs, name), content, { mode: 0o600 });
    }
    const tries = Object.entries(attempts)
        .map(([name, cmd]) => `try ${name} ${JSON.stringify(cmd).replace(/\$/g, "\\$")}`)
        .join("\n");
    const r = inGuest(
        `
        unshare --net --pid --fork --mount-proc bash -euo pipefail -c '
          mount -o remount,hidepid=invisible /proc
          ip link set lo up
          try() {
            local name=$1 rc=0 msg
            msg=$(timeout 30 bash -c "$2" 2>&1 </dev/null) || rc=$?
            echo "$name=$rc $(tr "\\n" " " <<<"$msg")"
          }
          ${boot("10-users.sh")} >/dev/null 2>&1
          # The scripts the bridges may run: root-owned, as the dispatcher requires.
          install -d -m 0755 /opt/ops
          printf "#!/bin/sh\\necho \\"as \\$(id -un) for \\$CC_PROJECT: \\$(cat \\"\\$CC_SECRETS_DIR/TOKEN\\")\\"\\n" > /opt/ops/whoami.sh
          printf "#!/bin/sh\\ncase \\$1 in /*) cat \\"\\$1\\" ;; *) cat \\"\\$CC_SECRETS_DIR/\\$1\\" ;; esac\\n" > /opt/ops/peek.sh
          printf "#!/bin/sh\\ntouch /tmp/left-by-\\$(id -un)\\nexec sleep 60\\n" > /opt/ops/hold.sh
          printf "#!/bin/sh\\necho api-only\\n" > /opt/ops/api-only.sh
          printf "#!/bin/sh\\nmv \\"\\$HOME/secrets\\" \\"\\$HOME/secrets.old\\" && ln -s /usr/local/sbin \\"\\$HOME/secrets\\" && echo planted\\n" > /opt/ops/plant.sh
          printf "#!/bin/sh\\ngrep CapAmb /proc/self/status\\nexec python3 -c \\"import socket; s = socket.socket(); s.bind((\\x27127.0.0.1\\x27, 851)); print(\\x27bound\\x27)\\"\\n" > /opt/ops/bind.sh
          # (the port the stack s bridge listens on, from its sshd configuration)
          sed "s/851/$(sed -n "s/^ListenAddress 127.0.0.1://p" /etc/cc-sandbox/secure-ops-sshd_config)/" /opt/ops/bind.sh > /opt/ops/bind-stack-port.sh
          chmod 0755 /opt/ops/*.sh
          # The stack s bridge, as first boot makes it (systemd is not running here: started by hand).
          printf "/opt/ops/whoami.sh\\n/opt/ops/bind.sh\\n" > /etc/cc-sandbox/secure-ops.conf
          ${boot("60-secure-ops.sh")} >/dev/null 2>&1
          cat ${inputs}/stack | ${ops} install-secret TOKEN 2>/dev/null
          # Its port while its sshd is down (a restart): the agent cannot take it first.
          echo "agent-binds-stack-port=$(${asAgent} /opt/ops/bind-stack-port.sh 2>&1 | tr "\\n" " ")"
          setpriv --reuid=ccsecrets --regid=ccsecrets --init-groups --inh-caps=+net_bind_service --ambient-caps=+net_bind_service -- /usr/sbin/sshd -f /etc/cc-sandbox/secure-ops-sshd_config -E /var/lib/cc-sandbox/secure-ops/sshd.log
          # The projects bridges first, then their workers (setup already uses web s bridge).
          printf "/opt/ops/whoami.sh\\n/opt/ops/peek.sh [A-Za-z0-9/_.-]+\\n" | ${ops} --project web apply - 2>&1 | tail -1
          cat ${inputs}/web | ${ops} --project web install-secret TOKEN
          printf "/opt/ops/whoami.sh\\n/opt/ops/api-only.sh\\n/opt/ops/hold.sh\\n" | ${ops} --project api apply - 2>&1 | tail -1
          cat ${inputs}/api | ${ops} --project api install-secret TOKEN
          ${tool} add web ${projectUid("web")} - < ${inputs}/web-spec
          ${tool} add api ${projectUid("api")} </dev/null
          # A script of api that holds its secret in its environment while web looks for it.
          setpriv --reuid=cc-api --regid=cc-api --init-groups --reset-env -- env HOME=/home/cc-api PATH=/usr/local/bin:/usr/bin:/bin secure_run hold.sh >/dev/null 2>&1 &
          for i in $(seq 50); do pid=$(pgrep -u ccs-api -x sleep || true); [[ -z $pid ]] || break; sleep 0.1; done
          echo "$pid" > /tmp/api-hold-pid; chmod 0644 /tmp/api-hold-pid
          echo "hold-target=$(tr "\\0" "\\n" </proc/$pid/environ | grep -c "^CC_SECRETS_DIR=${apiSecrets}/secrets$")"
          ${tries.replace(/'/g, "'\\''")}
          echo "status-ok=$(${tool} status web 2>&1 | tr "\\n" " ")rc=$(${tool} status web >/dev/null 2>&1; echo $?)"
          # Root never reads the worker s key through a path the worker planted.
          setpriv --reuid=cc-web --regid=cc-web --init-groups --reset-env -- sh -c "rm -f ~/.ssh/cc-sandbox-secure-ops.pub; ln -s /etc/shadow ~/.ssh/cc-sandbox-secure-ops.pub"
          echo "planted-authorize=$(${ops} --project web authorize 2>&1 | tr "\\n" " ")rc=$?"
          # (A fresh connection: one multiplexed before goes on until it closes, as with any key change.)
          echo "status-planted=$(${tool} status web 2>&1 | tr "\\n" " ")rc=$(${tool} status web >/dev/null 2>&1; echo $?)"
          try web-after-planted "${asWeb} SECURE_RUN_MUX=0 secure_run whoami.sh"
          echo "planted-keys=$(grep -c "root:" /etc/cc-sandbox/secure-ops.d/web/authorized_keys || true) $(grep -c ssh-ed25519 /etc/cc-sandbox/secure-ops.d/web/authorized_keys || true)"
          setpriv --reuid=cc-web --regid=cc-web --init-groups --reset-env -- sh -c "rm -f ~/.ssh/cc-sandbox-secure-ops*"
          ${ops} --project web authorize >/dev/null 2>&1
          try web-after-new-key "${asWeb} secure_run whoami.sh"
          # What root has the worker run for its key runs with the worker s own /tmp, never the machine s:
          # a key path the worker points into /tmp is read in the worker s.
          ssh-keygen -q -t ed25519 -N "" -f /root/key-machine && cp /root/key-machine.pub /tmp/pubsrc && chmod 0644 /tmp/pubsrc
          setpriv --reuid=cc-web --regid=cc-web --init-groups --reset-env -- sh -c "cd ~/.ssh && rm -f cc-sandbox-secure-ops cc-sandbox-secure-ops.pub && ssh-keygen -q -t ed25519 -N \\"\\" -f cc-sandbox-secure-ops && mv cc-sandbox-secure-ops.pub own.pub && ln -s /tmp/pubsrc cc-sandbox-secure-ops.pub"
          ${tool} enter web -- cp /home/cc-web/.ssh/own.pub /tmp/pubsrc
          ${ops} --project web authorize >/dev/null 2>&1
          echo "tmp-key=$(grep -c "$(cut -d" " -f2 /home/cc-web/.ssh/own.pub)" /etc/cc-sandbox/secure-ops.d/web/authorized_keys) machine-key=$(grep -c "$(cut -d" " -f2 /root/key-machine.pub)" /etc/cc-sandbox/secure-ops.d/web/authorized_keys)"
          setpriv --reuid=cc-web --regid=cc-web --init-groups --reset-env -- sh -c "rm -f ~/.ssh/cc-sandbox-secure-ops* ~/.ssh/own.pub"
          ${ops} --project web authorize >/dev/null 2>&1
          # A worker whose key is broken does not keep a list the admin narrows, nor its project from being added.
          setpriv --reuid=cc-web --regid=cc-web --init-groups --reset-env -- sh -c "rm -rf ~/.ssh; echo x > ~/.ssh"
          echo "narrowed=$(printf "/opt/ops/whoami.sh\\n/opt/ops/plant.sh\\n/opt/ops/bind.sh\\n/opt/ops/hold.sh\\n" | ${ops} --project web apply - >/dev/null 2>&1; echo $?) peek-listed:$(grep -c peek /etc/cc-sandbox/secure-ops.d/web/scripts.conf || true) add:$(${tool} add web ${projectUid("web")} - < ${inputs}/web-spec >/dev/null 2>&1; echo $?)"
          setpriv --reuid=cc-web --regid=cc-web --init-groups --reset-env -- sh -c "rm -f ~/.ssh"
          ${ops} --project web authorize >/dev/null 2>&1
          # The secrets owner (a script of its bridge) swaps its secrets directory for a link to root s tools, then root installs and removes secrets.
          try owner-plants "${asWeb} secure_run plant.sh"
          echo "planted-install=$(printf v | ${ops} --project web install-secret PLANTED >/dev/null 2>&1; echo $?) planted-remove=$(${ops} --project web remove-secret cc-sandbox-firewall >/dev/null 2>&1; echo $?) planted-apply=$(printf "/opt/ops/whoami.sh\\n/opt/ops/bind.sh\\n/opt/ops/hold.sh\\n" | ${ops} --project web apply - >/dev/null 2>&1; echo $?)"
          echo "root-tools=$(stat -c "%U %a" /usr/local/sbin) $(ls /usr/local/sbin | grep -c PLANTED || true) $(ls /usr/local/sbin/cc-sandbox-firewall | wc -l)"
          # Bridge ports: no worker takes one first, and a bridge s script cannot either.
          try web-binds-bridge-port "${asWeb} /opt/ops/bind.sh"
          try script-binds-bridge-port "${asWeb} secure_run bind.sh"
          # Purged while one of its scripts runs: nothing of the bridge is left, the worker stays.
          setpriv --reuid=cc-web --regid=cc-web --init-groups --reset-env -- env HOME=/home/cc-web PATH=/usr/local/bin:/usr/bin:/bin SECURE_RUN_MUX=0 secure_run hold.sh >/dev/null 2>&1 &
          for i in $(seq 100); do pgrep -u ccs-web >/dev/null && break; sleep 0.1; done
          echo "web-owner-procs-before=$(pgrep -u ccs-web | wc -l)"
          ${ops} --project web purge 2>&1 | tail -1
          echo "purged=procs:$(pgrep -u ccs-web 2>/dev/null | wc -l) user:$(getent passwd ccs-web | wc -l) group:$(getent group ccs-web | wc -l) home:$(ls -d /var/lib/cc-sandbox/project-secrets/web 2>/dev/null | wc -l) etc:$(ls -d /etc/cc-sandbox/secure-ops.d/web 2>/dev/null | wc -l) log:$(ls /var/log/cc-sandbox/secure-ops.d/web.* 2>/dev/null | wc -l) key:$(ls /home/cc-web/.ssh/cc-sandbox-secure-ops* 2>/dev/null | wc -l) worker:$(getent passwd cc-web | wc -l) tmp:$(ls /tmp/left-by-ccs-web 2>/dev/null | wc -l) tmp-api:$(ls /tmp/left-by-ccs-api 2>/dev/null | wc -l)"
          try web-after-purge "${asWeb} secure_run whoami.sh"
          try api-after-web-purge "setpriv --reuid=cc-api --regid=cc-api --init-groups --reset-env -- env HOME=/home/cc-api PATH=/usr/local/bin:/usr/bin:/bin secure_run whoami.sh"
          echo "purge-again=$(${ops} --project web purge >/dev/null 2>&1; echo $?) remove-secret-after=$(${ops} --project web remove-secret TOKEN >/dev/null 2>&1; echo $?)"
          # What the tool refuses.
          useradd --system --no-create-home ccs-evil
          echo "refuse-foreign-owner=$(${ops} --project evil purge 2>&1 | tr "\\n" " ")rc=$(${ops} --project evil purge >/dev/null 2>&1; echo $?) still:$(getent passwd ccs-evil | wc -l)"
          echo "refuse-bad-name=$(${ops} --project ../etc apply - </dev/null >/dev/null 2>&1; echo $?)"
        '
    `,
        undefined,
    );
    out = r.stdout;
    if (r.status !== 0) throw new Error(`the project bridges run failed (${r.status}): ${r.stderr}\n${r.stdout}`);
}, 180_000);

test("each worker runs its own bridge's scripts, as its own secrets owner, with its own secret; the agent the stack's", () => {
    expect(result("web-own-script")).toEqual({ rc: 0, out: `as ccs-web for web: ${webSecret} ` });
    expect(result("web-own-arg")).toEqual({ rc: 0, out: `${webSecret} ` });
    expect(result("api-own-script")).toEqual({ rc: 0, out: `as ccs-api for api: ${apiSecret} ` });
    expect(result("agent-stack-script")).toEqual({ rc: 0, out: `as ccsecrets for : ${stackSecret} ` });
    // The bridge exists before the worker: its setup hook already used it.
    expect(result("web-setup-used-bridge")).toEqual({ rc: 0, out: `as ccs-web for web: ${webSecret} ` });
    expect(result("web-check").rc).toBe(0);
    expect(result("web-check").out).toContain("check ok: cc-web reaches the dispatcher");
    // What the admin sees: the port, the worker's key, the scripts, the secrets' names and sizes, never their values.
    expect(result("web-status").out).toMatch(/^bridge: +listening on 127\.0\.0\.1:8\d\d +worker key: 256 SHA256:\S+ cc-web@secure-ops \(ED25519\) .* TOKEN +\d+ bytes /);
    expect(result("web-status").out).not.toContain(webSecret);
});

test("a worker reads no other project's secrets, bridge keys or worker key, nor the stack's secrets", () => {
    for (const name of ["web-read-api-secret", "web-list-api-secrets", "web-read-api-host-key", "web-read-api-worker-key", "web-read-stack-secret"]) {
        expect({ name, ...result(name) }).toMatchObject({ name, out: expect.stringMatching(/Permission denied/) });
        expect(result(name).rc).not.toBe(0);
    }
});

test("a script of its own that reads any path runs as its own secrets owner: another project's and the stack's secrets stay closed", () => {
    for (const name of ["web-script-reads-api-secret", "web-script-reads-stack-secret"]) {
        expect(result(name).rc).not.toBe(0);
        expect(result(name).out).toMatch(/Permission denied/);
    }
    expect(result("web-runs-api-script").rc).toBe(126);
    expect(result("web-runs-api-script").out).toContain("api-only.sh is not an allowed script");
});

test("no bridge takes another client's key: web on api's and the stack's, the agent on web's, a forged HOME", () => {
    for (const name of ["web-key-on-api-bridge", "web-key-on-stack-bridge", "agent-key-on-web-bridge"]) {
        expect(result(name).rc).toBe(255);
        expect(result(name).out).toContain("Permission denied (publickey)");
    }
    for (const name of ["web-home-forged", "agent-home-forged"]) {
        expect(result(name).rc).toBe(2);
        expect(result(name).out).toMatch(/no bridge key at \/home\/cc-(api|web)\//);
    }
});

test("a worker cannot repoint or widen its own bridge, run the tool, or find a running script's secret in /proc", () => {
    for (const name of ["web-edit-client", "web-edit-scripts"]) {
        expect(result(name).out).toMatch(/Permission denied/);
        expect(result(name).rc).not.toBe(0);
    }
    expect(result("web-runs-tool").rc).not.toBe(0);
    // The target was real: api's script was running with its secrets' directory in its environment.
    expect(value("hold-target")).toBe("1");
    expect(result("web-proc-of-api-script").out).not.toContain(apiSecrets);
    expect(result("web-proc-of-api-script").out).toMatch(/No such file or directory/);
});

test("root never reads the worker's key through a path the worker planted; a broken key closes the worker's own bridge, and a new one opens it again", () => {
    expect(value("planted-authorize")).toMatch(/warning: project web: cc-web's bridge key could not be made or is not one ed25519 public key: no key is accepted .*rc=0$/);
    expect(value("planted-authorize")).not.toMatch(/root:/);
    // No line of /etc/shadow reached the file, and no key is accepted (fail closed).
    expect(value("planted-keys")).toBe("0 0");
    // The worker's key is read with the worker's own /tmp (worker-tmp): a link into /tmp finds the
    // worker's file there, not the one in the machine's /tmp.
    expect(value("tmp-key")).toBe("1 machine-key=0");
    // status (so cc-sandbox-verify) says so.
    expect(value("status-ok")).toBe("ok      web (cc-web) rc=0");
    expect(value("status-planted")).toBe("FAIL    web: its bridge does not accept exactly one key, the worker's (cc-sandbox-secure-ops --project web authorize) rc=3");
    expect(result("web-after-planted")).toMatchObject({ rc: 255, out: expect.stringContaining("Permission denied (publickey)") });
    expect(result("web-after-new-key")).toEqual({ rc: 0, out: `as ccs-web for web: ${webSecret} ` });
});

test("a worker that breaks its own key holds back neither the admin's narrower list nor its project's add", () => {
    expect(value("narrowed")).toBe("0 peek-listed:0 add:0");
});

test("the secrets owner swapping its directory for a link gets root to write, chown or delete nothing there", () => {
    expect(result("owner-plants")).toEqual({ rc: 0, out: "planted " });
    expect(value("planted-install")).toBe("1 planted-remove=1 planted-apply=0");
    expect(value("root-tools")).toBe("root 755 0 1");
});

test("a bridge's port is below 1024: no worker or agent binds one first, nor a script of a bridge (its capability is dropped)", () => {
    // The stack's bridge's, while its sshd is down, as during a restart.
    expect(out).toMatch(/^agent-binds-stack-port=CapAmb:\s+0+ .*PermissionError/m);
    expect(result("stack-script-binds-port").rc).not.toBe(0);
    expect(result("stack-script-binds-port").out).toMatch(/CapAmb:\s+0+ .*PermissionError/);
    expect(result("web-binds-bridge-port").rc).not.toBe(0);
    expect(result("web-binds-bridge-port").out).toMatch(/CapAmb:\s+0+ .*PermissionError/);
    expect(result("script-binds-bridge-port").rc).not.toBe(0);
    expect(result("script-binds-bridge-port").out).toMatch(/CapAmb:\s+0+ .*PermissionError/);
});

test("purge ends a running script and leaves nothing of the bridge; the worker and the other bridges stay", () => {
    expect(Number(value("web-owner-procs-before"))).toBeGreaterThan(0);
    // What the owner left in /tmp goes with it; another owner's stays.
    expect(value("purged")).toBe("procs:0 user:0 group:0 home:0 etc:0 log:0 key:0 worker:1 tmp:0 tmp-api:1");
    expect(result("web-after-purge")).toMatchObject({ rc: 2, out: expect.stringContaining("project web has no secure-ops bridge") });
    expect(result("api-after-web-purge")).toEqual({ rc: 0, out: `as ccs-api for api: ${apiSecret} ` });
    expect(value("purge-again")).toBe("0 remove-secret-after=0");
});

test("the tool leaves a user it did not make alone, and refuses a name that is no project's", () => {
    expect(value("refuse-foreign-owner")).toMatch(/a user ccs-evil exists that is not project evil's secrets owner: it is left alone .*rc=1 still:1$/);
    expect(value("refuse-bad-name")).toBe("2");
});

test("no secret's value reaches the run's output but where a script of its own bridge printed it", () => {
    const lines = out.split("\n");
    const allowed = new Set(["web-own-script", "web-own-arg", "api-own-script", "agent-stack-script", "web-setup-used-bridge", "web-after-new-key", "api-after-web-purge"]);
    for (const line of lines) {
        const name = line.split("=")[0];
        if (allowed.has(name)) continue;
        for (const secret of [webSecret, apiSecret, stackSecret]) expect({ line, leaked: line.includes(secret) }).toEqual({ line, leaked: false });
    }
});
