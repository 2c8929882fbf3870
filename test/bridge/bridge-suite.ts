/**
 * What the bridge suites share: the scripts the stack lists, where the secret lives, a bridge
 * started for each file (its own, so the files run apart), and how the agent tries it.
 */
import { createHash } from "crypto";
import { late } from "../helpers";
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
    `-o UserKnownHostsFile=/etc/cc-sandbox/secure-ops.known_hosts -o ConnectTimeout=5 -p 799 ${opts}`;

/**
 * A bridge of this file's own, started before its tests and stopped after them; digest() is the
 * SHA-256 of its token; attempt runs a script as the agent and returns its result and the log
 * lines it added.
 */
export function bridgeSuite() {
    const s = { bridge: undefined as unknown as Bridge, digest: "" };
    beforeAll(async () => {
        s.bridge = await startBridge(scripts);
        s.digest = createHash("sha256").update(s.bridge.token).digest("hex");
    }, 120000);
    afterAll(() => s.bridge?.stop());
    return {
        bridge: late(() => s.bridge),
        digest: () => s.digest,
        attempt(script: string) {
            const before = s.bridge.log().length;
            const r = s.bridge.run("agent", script);
            return { ...r, out: r.stdout + r.stderr, logged: s.bridge.log().slice(before) };
        },
        expectNoLeak(out: string) {
            expect(out).not.toContain(s.bridge.token);
        },
    };
}
