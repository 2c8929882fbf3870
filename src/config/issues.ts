/**
 * Config errors: every problem names its key path as `pulumi config set --path` spells it, and the
 * value (never a secret's).
 */
export const namespace = "cc-sandbox";

export interface ConfigIssue {
    /** Key path, e.g. `cc-sandbox:allowlist.domains[2]`. */
    readonly path: string;
    readonly value: unknown;
    readonly message: string;
    /** The value is a secret's: the message names the key, never the value. */
    readonly secret?: boolean;
}

export class ConfigError extends Error {
    constructor(readonly issues: readonly ConfigIssue[], readonly source = "stack config") {
        super(
            `invalid ${source}:\n` +
                issues.map((i) => `  ${i.path}: ${i.message} (got ${i.secret ? "a secret value, not shown" : showValue(i.value)})`).join("\n"),
        );
        this.name = "ConfigError";
    }
}

export function showValue(value: unknown): string {
    if (value === undefined) return "nothing";
    const s = JSON.stringify(value) ?? String(value);
    return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

/** `["allowlist","domains",2]` -> `cc-sandbox:allowlist.domains[2]` */
export function keyPath(segments: readonly (string | number)[]): string {
    let out = namespace;
    segments.forEach((s, i) => {
        if (typeof s === "number") out += `[${s}]`;
        else out += i === 0 ? `:${s}` : `.${s}`;
    });
    return out;
}

/** The same problem reported twice (by two schema branches, say) is shown once. */
export function dedupe(issues: readonly ConfigIssue[]): ConfigIssue[] {
    const seen = new Set<string>();
    return issues.filter((i) => {
        const k = `${i.path}\0${i.message}`;
        if (seen.has(k)) return false;
        seen.add(k);
        return true;
    });
}
