/**
 * Named allowlist presets. An entry is a DNS name (a `*.` prefix covers subdomains only) with the
 * TCP ports it may be reached on; 443 unless the service needs more.
 */
export interface PresetEntry {
    readonly name: string;
    readonly ports?: readonly number[];
}

export const presets: Readonly<Record<string, readonly PresetEntry[]>> = {
    anthropic: [
        { name: "api.anthropic.com" },
        { name: "console.anthropic.com" },
        { name: "statsig.anthropic.com" },
        { name: "statsig.com" },
        { name: "sentry.io" },
        { name: "claude.ai" },
    ],
    github: [
        // git over SSH as well as HTTPS
        { name: "github.com", ports: [22, 443] },
        { name: "api.github.com" },
        { name: "codeload.github.com" },
        { name: "ghcr.io" },
        { name: "*.githubusercontent.com" },
    ],
    npm: [{ name: "registry.npmjs.org" }],
    pypi: [{ name: "pypi.org" }, { name: "files.pythonhosted.org" }],
    golang: [{ name: "proxy.golang.org" }, { name: "sum.golang.org" }, { name: "storage.googleapis.com" }],
    // apt's default mirrors speak plain HTTP; packages are signed
    ubuntu: [
        { name: "archive.ubuntu.com", ports: [80, 443] },
        { name: "*.archive.ubuntu.com", ports: [80, 443] },
        { name: "security.ubuntu.com", ports: [80, 443] },
    ],
};

export const presetNames = Object.keys(presets).sort();
