/**
 * Reads the guest template tree once. This is the only I/O of rendering; `renderGuest` itself is a
 * pure function of the config and this set.
 */
import * as fs from "fs";
import * as path from "path";
import { parse as parseYaml } from "yaml";

export interface TemplateFile {
    /** Absolute guest path, without the `.hbs` suffix. */
    readonly guestPath: string;
    readonly source: string;
    readonly isTemplate: boolean;
    readonly mode: string;
    readonly owner: string;
}

export interface TemplateSet {
    readonly files: readonly TemplateFile[];
}

export const templatesDir = path.resolve(__dirname, "../../templates");

interface ModeOverride {
    mode?: string;
    owner?: string;
}

function walk(dir: string): string[] {
    return fs
        .readdirSync(dir, { withFileTypes: true })
        .sort((a, b) => (a.name < b.name ? -1 : 1))
        .flatMap((e) => {
            const p = path.join(dir, e.name);
            return e.isDirectory() ? walk(p) : e.isFile() ? [p] : [];
        });
}

export function loadTemplates(dir: string = templatesDir): TemplateSet {
    const root = path.join(dir, "guest");
    const overrides = (parseYaml(fs.readFileSync(path.join(dir, "guest-modes.yaml"), "utf8")) ?? {}) as Record<
        string,
        ModeOverride
    >;
    const files = walk(root).map((file) => {
        const rel = "/" + path.relative(root, file).split(path.sep).join("/");
        const isTemplate = rel.endsWith(".hbs");
        const guestPath = isTemplate ? rel.slice(0, -4) : rel;
        const executable = (fs.statSync(file).mode & 0o111) !== 0;
        const o = overrides[guestPath] ?? {};
        const owner = o.owner ?? (guestPath.startsWith("/home/agent/") ? "agent:agent" : "root:root");
        return {
            guestPath,
            source: fs.readFileSync(file, "utf8"),
            isTemplate,
            mode: o.mode ?? (executable ? "0755" : "0644"),
            owner,
        };
    });
    return { files };
}
