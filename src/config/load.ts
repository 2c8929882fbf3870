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
import { ConfigError, dedupe } from "./issues";
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

/** Validates raw config (namespace prefix already removed) and returns the typed config. Throws ConfigError listing every problem. */
export function loadConfig(stack: string, input: Raw, host: HostContext): SandboxConfig {
    const issues = stackNameIssues(stack);
    const raw = validateSchema(input, issues);
    if (raw === undefined) throw new ConfigError(dedupe(issues));
    issues.push(...crossFieldIssues(raw, host));
    const { domains, cidrs } = resolveAllowlist(raw.allowlist, issues);
    const { keys, privateKeyPath } = readSshKeys(raw, host, issues);
    const projects = projectsOf(raw, issues, host, { domains, cidrs });
    issues.push(...crossOwnerIssues(domains, projects));
    if (issues.length > 0) throw new ConfigError(dedupe(issues));
    return fillDefaults(stack, raw, { mounts: mountsOf(raw, host), domains, cidrs, sshKeys: keys, sshPrivateKeyPath: privateKeyPath, projects });
}
