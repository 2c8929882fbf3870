/** Pulumi.yaml declares every config key the schema knows, with the same words and equivalent defaults. */
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { loadConfig } from "../../src/config/load";
import { configSchema } from "../../src/config/schema";
import { hostFor, root, tempHome } from "../helpers";

const project = parse(fs.readFileSync(path.join(root, "Pulumi.yaml"), "utf8"));
const declared: Record<string, { description: string; default: unknown; type?: string }> = project.config;
const host = hostFor(tempHome());

test("the project is cc-sandbox, TypeScript on Node, stacks under stacks/, local file state", () => {
    expect(project.name).toBe("cc-sandbox");
    expect(project.runtime).toEqual({ name: "nodejs", options: { typescript: true } });
    expect(project.stackConfigDir).toBe("stacks");
    expect(project.backend.url).toMatch(/^file:\/\//);
});

test("every schema key is declared with its description, and nothing else is", () => {
    const keys = Object.keys(configSchema.properties);
    expect(Object.keys(declared).sort()).toEqual(keys.map((k) => `cc-sandbox:${k}`).sort());
    for (const k of keys) {
        expect(declared[`cc-sandbox:${k}`].description).toBe((configSchema.properties as Record<string, { description: string }>)[k].description);
    }
});

test("each declared default means the same as leaving the key out", () => {
    const withDefaults = Object.fromEntries(Object.entries(declared).map(([k, v]) => [k.replace(/^cc-sandbox:/, ""), v.default]));
    expect(loadConfig("dev", withDefaults, host)).toEqual(loadConfig("dev", {}, host));
});
