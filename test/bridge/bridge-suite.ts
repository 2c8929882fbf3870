/**
 * What the bridge suites share: the scripts the stack lists, where the secret lives, a bridge
 * started for each file (its own, so the files run apart), and how the agent tries it.
 */
import { createHash } from "crypto";
import { Bridge, startBridge } from "./namespace";

export const secrets = "/var/lib/cc-sandbox/secure-ops/secrets";
export const secret = `${secrets}/deploy-token`;
export const refused = 126;

export const scripts = [
    { path: "/opt/ops/token-digest.sh" },
    { path: "/opt/ops/deploy.sh", args: "staging|production" },
    { path: "/opt/ops/echo-args.sh", args: "[A-Za-z0-9_./:=@%+,-]+" },
    { path: "/opt/ops/hold-secret.sh" },
    { path: "/opt/ops/token-arg.sh" },
    { path: "/opt/ops/loose.sh" },
    { path: "/opt/ops/link.sh" },
    { path: "/opt/agent-ops/run.sh" },
    { path: "/usr/bin/true" },
    { path: "/usr/bin/false" },
    { path: "/usr/bin/env" },
    { path: "/usr/bin/tty" },
];

/** ssh straight to the bridge with the agent's key, bypassing secure_run. */
export const ssh = (opts: string) =>
    `ssh -F /dev/null -i ~/.ssh/cc-sandbox-secure-ops -o IdentitiesOnly=yes -o BatchMode=yes ` +
    `-o UserKnownHostsFile=/etc/cc-sandbox/secure-ops.known_hosts -o ConnectTimeout=5 -p 2222 ${opts}`;

/** A bridge of this file's own, started before its tests and stopped after them; digest: SHA-256 of its token. */
export function bridgeSuite(): { bridge: Bridge; digest: string } {
    const s = { bridge: undefined as unknown as Bridge, digest: "" };
    beforeAll(async () => {
        s.bridge = await startBridge(scripts);
        s.digest = createHash("sha256").update(s.bridge.token).digest("hex");
    }, 120000);
    afterAll(() => s.bridge?.stop());
    return s;
}

/** How the agent tries the bridge BRIDGE() gives. */
export function tries(bridge: () => Bridge) {
    return {
        /** Runs `script` as the agent; returns its result and the log lines it added. */
        attempt(script: string) {
            const before = bridge().log().length;
            const r = bridge().run("agent", script);
            return { ...r, out: r.stdout + r.stderr, logged: bridge().log().slice(before) };
        },
        expectNoLeak(out: string) {
            expect(out).not.toContain(bridge().token);
        },
    };
}
