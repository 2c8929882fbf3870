/**
 * Raw stack config -> one typed, defaulted SandboxConfig, in steps each with a file of its own:
 * sources.ts (where raw config comes from; no judging), validate.ts (the schema, then the rules
 * across keys), allowlist.ts (presets expanded, entries merged), host.ts (`~`, the SSH key file),
 * projects.ts (each project's worker user), defaults.ts (every default, filled). Every error names
 * its key path and value (issues.ts).
 */
import { resolveAllowlist } from "./allowlist";
import { fillDefaults } from "./defaults";
import { HostContext, mountsOf, readSshKeys } from "./host";
import { ConfigError, ConfigIssue, dedupe } from "./issues";
import { crossOwnerIssues, projectsOf } from "./projects";
import { Raw } from "./sources";
import { SandboxConfig } from "./types";
import { crossFieldIssues, stackNameIssues, validateSchema } from "./validate";

export { defaultClaudeVersion, defaultVmName } from "./defaults";
export type { HostContext } from "./host";
export { ConfigError, keyPath, namespace, showValue } from "./issues";
export type { ConfigIssue } from "./issues";
export { rawConfigFromPulumi, rawConfigFromStackFile } from "./sources";
export { missingHostFolders } from "./validate";

/**
 * The secrets' values in raw config (the stack's and each project's), however malformed the rest: an
 * issue whose value holds one (a whole project, a list of them) is shown without its value.
 */
function secretValues(input: Raw): string[] {
    // Any scalar: `pulumi config set --path` stores 1234 as a number.
    const valuesOf = (x: unknown) =>
        x !== null && typeof x === "object" && !Array.isArray(x)
            ? Object.values(x).flatMap((v) => (["string", "number", "boolean", "bigint"].includes(typeof v) && String(v) !== "" ? [String(v)] : []))
            : [];
    const projects = Array.isArray(input.projects) ? input.projects : [];
    return [...valuesOf(input.secrets), ...projects.flatMap((p) => (p !== null && typeof p === "object" ? valuesOf((p as { secrets?: unknown }).secrets) : []))];
}

function hideSecrets(issues: readonly ConfigIssue[], input: Raw): ConfigIssue[] {
    const values = secretValues(input);
    return dedupe(issues).map((i) => {
        if (i.secret || i.value === undefined) return i;
        const shown = JSON.stringify(i.value) ?? String(i.value);
        return values.some((v) => shown.includes(v) || shown.includes(JSON.stringify(v).slice(1, -1))) ? { ...i, secret: true } : i;
    });
}

/** Validates raw config (namespace prefix already removed) and returns the typed config. Throws ConfigError listing every problem. */
export function loadConfig(stack: string, input: Raw, host: HostContext): SandboxConfig {
    const issues = stackNameIssues(stack);
    const raw = validateSchema(input, issues);
    if (raw === undefined) throw new ConfigError(hideSecrets(issues, input));
    issues.push(...crossFieldIssues(raw, host));
    const { domains, cidrs } = resolveAllowlist(raw.allowlist, issues);
    const { keys, privateKeyPath } = readSshKeys(raw, host, issues);
    const projects = projectsOf(raw, issues, host, { domains, cidrs });
    issues.push(...crossOwnerIssues(domains, projects));
    if (issues.length > 0) throw new ConfigError(hideSecrets(issues, input));
    return fillDefaults(stack, raw, { mounts: mountsOf(raw, host), domains, cidrs, sshKeys: keys, sshPrivateKeyPath: privateKeyPath, projects });
}
