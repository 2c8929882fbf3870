/**
 * The guest files a base image can carry (`npm run bake`): those that are the same for every stack
 * (no template), root's, outside home folders. A stack whose image holds exactly these leaves them
 * out of its cloud-config. cloud-init reads that document, YAML in Python, four or five times on a
 * first boot (about a second each for the 150 KB of a whole guest on an emulated VM) and writes
 * every file in it; with the files baked it is a few kilobytes.
 *
 * Which files an image holds is its manifest (one line per file: sha256, mode, owner, path), and
 * the manifest's own sha256 names the set: the image records it (image.json's `guestFiles`), the
 * program compares it with its own templates', and first boot checks the image's files against it
 * before any step runs.
 */
import { createHash } from "crypto";
import { TemplateSet } from "./templates";

export const bakedManifestPath = "/usr/local/lib/cc-sandbox/baked-files";

/**
 * Never baked: systemd-resolved reads this at its start, and would then keep its stub off from the
 * image's first boot on, before the firewall's resolver serves names (Multipass installs its sshfs
 * snap before that).
 */
const notBaked = new Set(["/etc/systemd/resolved.conf.d/cc-sandbox.conf"]);

export interface BakedFile {
    readonly path: string;
    readonly content: string;
    /** Octal, as stat's %a prints it (`755`). */
    readonly mode: string;
    readonly owner: string;
}

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

/** The files an image can carry, by path. */
export function bakedFiles(templates: TemplateSet): BakedFile[] {
    return templates.files
        .filter((t) => !t.isTemplate && t.owner === "root:root" && !t.guestPath.startsWith("/home/") && !notBaked.has(t.guestPath))
        .map((t) => {
            // The manifest's fields are split on blanks.
            if (/\s/.test(t.guestPath)) throw new Error(`guest file ${JSON.stringify(t.guestPath)}: a path with a blank cannot be baked`);
            return { path: t.guestPath, content: t.source, mode: parseInt(t.mode, 8).toString(8), owner: t.owner };
        })
        .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The manifest's text: `SHA256 MODE OWNER PATH` a line. */
export function bakedManifest(files: readonly BakedFile[]): string {
    return files.map((f) => `${sha256(f.content)} ${f.mode} ${f.owner} ${f.path}\n`).join("");
}

/** The sha256 of the manifest: which set of files an image holds. */
export const bakedId = (templates: TemplateSet): string => sha256(bakedManifest(bakedFiles(templates)));

/**
 * First boot's command on a baked image: the image's manifest must be the one this stack was
 * rendered with, and every file in it as the manifest says (content, mode, owner); then the boot
 * runner. A mismatch stops first boot before any step, saying why. Run as `bash -c SCRIPT NAME ID`.
 */
export function bakedCheck(runner: string): string {
    return [
        "set -euo pipefail",
        `m=${bakedManifestPath}`,
        `fail() { printf 'cc-sandbox: %s: bake the image again (npm run bake) or use a stock image\\n' "$*" >&2; exit 1; }`,
        `[[ -f $m ]] || fail "the image has no $m"`,
        `read -r sum _ < <(sha256sum "$m")`,
        `[[ $sum == "$1" ]] || fail "the image's guest files are not this stack's ($m is $sum, not $1)"`,
        "sums='' stats='' paths=()",
        `while read -r s mode owner p; do sums+="$s  $p"$'\\n'; stats+="$mode $owner $p"$'\\n'; paths+=("$p"); done <"$m"`,
        `printf '%s' "$sums" | sha256sum --quiet --strict -c - >&2 || fail "a guest file differs from the image's manifest"`,
        `[[ "$(stat -c '%a %U:%G %n' -- "\${paths[@]}")"$'\\n' == "$stats" ]] || fail "a guest file's mode or owner differs from the image's manifest"`,
        `exec ${runner}`,
    ].join("\n");
}
