/**
 * Where raw config comes from: a stack file, or Pulumi's config map. Loading does not validate: it
 * only takes the `cc-sandbox:` keys, prefix removed, as they are (validate.ts judges them).
 */
import { parse as parseYaml } from "yaml";
import { ConfigError, namespace } from "./issues";

/** Raw, unvalidated config: the `cc-sandbox:` namespace with the prefix taken off. */
export type Raw = Record<string, unknown>;

/** The `cc-sandbox:` keys of a stack file's `config:` block, prefix removed. */
export function rawConfigFromStackFile(text: string, file: string): Raw {
    let doc: unknown;
    try {
        doc = parseYaml(text);
    } catch (err) {
        throw new ConfigError([{ path: file, value: undefined, message: `is not valid YAML: ${(err as Error).message}` }], file);
    }
    const config = (doc as { config?: unknown } | null)?.config ?? {};
    if (typeof config !== "object" || config === null || Array.isArray(config)) {
        throw new ConfigError([{ path: `${file}: config`, value: config, message: "must be a mapping" }], file);
    }
    return stripNamespace(config as Raw);
}

/** Pulumi's `allConfig()` map (values JSON-encoded when structured) -> raw config. */
export function rawConfigFromPulumi(all: Record<string, string>): Raw {
    const decoded: Raw = {};
    for (const [k, v] of Object.entries(all)) {
        let value: unknown = v;
        if (/^[[{]/.test(v)) {
            try {
                value = JSON.parse(v);
            } catch {
                value = v;
            }
        }
        decoded[k] = value;
    }
    return stripNamespace(decoded);
}

function stripNamespace(config: Raw): Raw {
    const out: Raw = {};
    for (const [k, v] of Object.entries(config)) {
        if (k.startsWith(`${namespace}:`)) out[k.slice(namespace.length + 1)] = v;
    }
    return out;
}
