/**
 * Claude Code in the guest: the settings files (every key one Claude Code documents, the sandbox
 * failing closed where the agent cannot change it) and boot.d/50-claude-code.sh with npm and
 * claude replaced by stubs (no registry is reached).
 */
import * as fs from "fs";
import * as path from "path";
import { boot, guestDir, inGuest } from "./guest";

const user = JSON.parse(fs.readFileSync(path.join(guestDir, "home/agent/.claude/settings.json"), "utf8"));
const managed = JSON.parse(fs.readFileSync(path.join(guestDir, "etc/claude-code/managed-settings.json"), "utf8"));

// Keys as Claude Code's settings reference documents them (code.claude.com/docs/en/settings).
const topLevel = ["$schema", "permissions", "sandbox", "env", "statusLine", "skipDangerousModePermissionPrompt"];
const permissionKeys = ["allow", "deny", "ask", "defaultMode", "additionalDirectories", "disableBypassPermissionsMode"];
const sandboxKeys = ["enabled", "autoAllowBashIfSandboxed", "excludedCommands", "allowUnsandboxedCommands", "failIfUnavailable", "network", "filesystem"];
const modes = ["default", "acceptEdits", "plan", "bypassPermissions", "dontAsk"];

describe.each([
    ["~/.claude/settings.json", user],
    ["/etc/claude-code/managed-settings.json", managed],
])("%s", (_name, s) => {
    test("uses only documented keys", () => {
        expect(topLevel).toEqual(expect.arrayContaining(Object.keys(s)));
        expect(permissionKeys).toEqual(expect.arrayContaining(Object.keys(s.permissions)));
        expect(sandboxKeys).toEqual(expect.arrayContaining(Object.keys(s.sandbox)));
    });

    test("turns Claude Code's bwrap sandbox on and makes it fail closed", () => {
        expect(s.sandbox.enabled).toBe(true);
        expect(s.sandbox.allowUnsandboxedCommands).toBe(false);
        expect(s.sandbox.failIfUnavailable).toBe(true);
    });

    test("denies the privilege and sandbox escapes by name", () => {
        for (const rule of ["Bash(sudo:*)", "Bash(su:*)", "Bash(pkexec:*)", "Bash(nsenter:*)", "Bash(iptables:*)", "Bash(cc-sandbox-firewall:*)", "Edit(~/.claude/settings.json)"]) {
            expect(s.permissions.deny).toContain(rule);
        }
        for (const rule of s.permissions.deny) expect(rule).toMatch(/^(Bash\([a-z0-9_.-]+:\*\)|Edit\(~\/[.\w/-]+\))$/);
    });
});

test("the user settings need no prompts and show the sandbox's status line", () => {
    expect(modes).toContain(user.permissions.defaultMode);
    expect(user.permissions.defaultMode).toBe("bypassPermissions");
    expect(user.skipDangerousModePermissionPrompt).toBe(true);
    expect(user.statusLine).toEqual({ type: "command", command: "/usr/local/bin/cc-sandbox-statusline", padding: 0 });
    const script = path.join(guestDir, user.statusLine.command);
    expect(fs.statSync(script).mode & 0o111).not.toBe(0);
    // The version is pinned by the stack: Claude Code must not replace itself.
    expect(user.env.DISABLE_AUTOUPDATER).toBe("1");
});

test("the managed settings (root's, which the agent cannot edit) hold every deny rule of the user's", () => {
    expect(managed.permissions.deny).toEqual(expect.arrayContaining(user.permissions.deny));
    expect(managed.permissions.defaultMode).toBeUndefined();
});

test("the status line is pinned in the managed settings: the agent's own or a project's settings cannot replace it", () => {
    // Managed settings take precedence over user, project, local and --settings values, key by key.
    expect(managed.statusLine).toEqual({ type: "command", command: "/usr/local/bin/cc-sandbox-statusline", padding: 0 });
    expect(managed.statusLine).toEqual(user.statusLine);
});

/**
 * 50-claude-code.sh with CC_CLAUDE_INSTALL=1, a stub npm (records its arguments) and a stub claude;
 * `baked`: claude is there at the pinned version before the step runs, and Node and npm are not.
 */
function installStep(opts: { npmFails?: boolean; hide?: string[]; baked?: boolean } = {}) {
    return inGuest(`
        sed -i -e 's/^CC_CLAUDE_INSTALL=.*/CC_CLAUDE_INSTALL=1/' -e "s/^CC_CLAUDE_VERSION=.*/CC_CLAUDE_VERSION='2.1.331'/" /etc/cc-sandbox/sandbox.env
        mkdir -p /tmp/stubs
        cat > /tmp/stubs/npm <<'STUB'
#!/bin/bash
echo "$*" > /tmp/npm.args
${opts.npmFails ? "echo 'npm error code ECONNREFUSED' >&2; exit 1" : `printf '#!/bin/bash\\necho "2.1.331 (Claude Code)"\\n' > /tmp/stubs/claude; chmod 0755 /tmp/stubs/claude`}
STUB
        printf '#!/bin/bash\\n' > /tmp/stubs/node
        chmod 0755 /tmp/stubs/npm /tmp/stubs/node
        ${opts.baked ? `rm /tmp/stubs/npm /tmp/stubs/node; printf '#!/bin/bash\\necho "2.1.331 (Claude Code)"\\n' > /tmp/stubs/claude; chmod 0755 /tmp/stubs/claude` : ""}
        # The system's programs, less the hidden ones.
        mkdir -p /tmp/path
        for f in /usr/sbin/* /usr/bin/*; do ln -sf "$f" /tmp/path/; done
        # A claude the host may have must not pass for the one the step installs.
        rm -f /tmp/path/claude ${[...(opts.hide ?? []), ...(opts.baked ? ["node", "nodejs", "npm"] : [])].map((t) => `/tmp/path/${t}`).join(" ")}
        rc=0; PATH=/tmp/stubs:/tmp/path ${boot("50-claude-code.sh")} || rc=$?
        echo "rc=$rc"
        echo "npm=$(cat /tmp/npm.args 2>/dev/null || true)"
    `);
}

describe("boot.d/50-claude-code.sh", () => {
    test("does nothing when the stack does not install Claude Code", () => {
        const r = inGuest(boot("50-claude-code.sh"));
        expect(r.status).toBe(0);
        expect(r.stderr).toMatch(/not installed \(claude.install is false\)/);
    });

    test("installs the pinned version globally with npm and checks claude --version", () => {
        const r = installStep();
        expect(r.stdout).toMatch(/^rc=0$/m);
        expect(r.stdout).toMatch(/^npm=install --global .*@anthropic-ai\/claude-code@2\.1\.331$/m);
        expect(r.stderr).toMatch(/installed Claude Code 2\.1\.331/);
    });

    test("fails clearly, naming the allowlist, when npm cannot install", () => {
        const r = installStep({ npmFails: true });
        expect(r.stdout).toMatch(/^rc=1$/m);
        expect(r.stderr).toMatch(/registry\.npmjs\.org/);
    });

    test("an image with Claude Code at the pinned version (npm run bake) needs neither Node nor npm", () => {
        const r = installStep({ baked: true });
        expect(r.stdout).toMatch(/^rc=0$/m);
        expect(r.stdout).toMatch(/^npm=$/m);
        expect(r.stderr).toMatch(/Claude Code 2\.1\.331 already installed/);
    });

    test("without Claude Code, a missing npm fails the step, naming where npm comes from", () => {
        const none = inGuest(`sed -i -e 's/^CC_CLAUDE_INSTALL=.*/CC_CLAUDE_INSTALL=1/' /etc/cc-sandbox/sandbox.env
            mkdir -p /tmp/path; for f in /usr/sbin/* /usr/bin/*; do ln -sf "$f" /tmp/path/; done; rm -f /tmp/path/claude /tmp/path/npm
            rc=0; PATH=/tmp/path ${boot("50-claude-code.sh")} || rc=$?; echo "rc=$rc"`);
        expect(none.stdout).toMatch(/^rc=1$/m);
        expect(none.stderr).toMatch(/missing npm: boot.d\/05-packages.sh installs nodejs and npm/);
    });

    test("fails before installing when the sandbox's bubblewrap or socat is missing", () => {
        const r = installStep({ hide: ["socat"] });
        expect(r.stdout).toMatch(/^rc=1$/m);
        expect(r.stdout).toMatch(/^npm=$/m);
        expect(r.stderr).toMatch(/missing socat/);
    });
});
