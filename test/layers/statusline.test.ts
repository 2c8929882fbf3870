/**
 * cc-sandbox-statusline: fields from Claude Code's JSON, tolerance of anything else on stdin, FW
 * from the firewall watcher's state file (fresh ON only), NNP from the process's own flag, and no
 * process spawned. The state file lives on a tmpfs /run in a private mount namespace.
 */
import * as fs from "fs";
import * as path from "path";
import { guestDir, run, tempDir } from "./guest";

const statusline = path.join(guestDir, "usr/local/bin/cc-sandbox-statusline");

/** A render as Claude Code sends it (fields as documented for the statusLine command). */
export const claudeJson = JSON.stringify({
    hook_event_name: "Status",
    session_id: "0d9f3c2e-5b7a-4a57-9f1e-2a1d9b9c1f00",
    transcript_path: "/home/agent/.claude/projects/-home-agent-code/0d9f3c2e.jsonl",
    cwd: "/home/agent/code",
    model: { id: "claude-opus-4-6", display_name: "Opus 4.6" },
    workspace: { current_dir: "/home/agent/code", project_dir: "/home/agent/code" },
    version: "2.1.331",
    output_style: { name: "default" },
    cost: { total_cost_usd: 1.2345, total_duration_ms: 654321, total_api_duration_ms: 321000, total_lines_added: 120, total_lines_removed: 14 },
    context_window: {
        total_input_tokens: 89000,
        total_output_tokens: 4100,
        context_window_size: 200000,
        current_usage: { input_tokens: 12, output_tokens: 400, cache_creation_input_tokens: 2000, cache_read_input_tokens: 86000 },
        used_percentage: 44.6,
        remaining_percentage: 55.4,
    },
    rate_limits: { five_hour: { used_percentage: 91, resets_at: 1781290000 }, seven_day: { used_percentage: 36, resets_at: 1781730000 } },
    exceeds_200k_tokens: false,
});

function render(input: string, opts: { nnp?: boolean } = {}): string {
    const r = opts.nnp ? run("setpriv", ["--no-new-privs", statusline], { input }) : run(statusline, [], { input });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    return r.stdout;
}

describe("fields", () => {
    test("a real render: model, context use rounded, FW and NNP", () => {
        expect(render(claudeJson)).toBe("[Opus 4.6] 45% | FW:OFF | NNP:OFF\n");
    });

    test.each([
        [0, "0%"],
        [44.4, "44%"],
        [44.5, "45%"],
        [99.96, "100%"],
        [100, "100%"],
        [7, "7%"],
    ])("used_percentage %p shows %s", (pct, shown) => {
        const j = JSON.parse(claudeJson);
        j.context_window.used_percentage = pct;
        expect(render(JSON.stringify(j))).toBe(`[Opus 4.6] ${shown} | FW:OFF | NNP:OFF\n`);
    });

    test("pretty-printed JSON with the context window first reads the same", () => {
        const j = JSON.parse(claudeJson);
        const reordered = { context_window: j.context_window, rate_limits: j.rate_limits, model: j.model };
        expect(render(JSON.stringify(reordered, null, 2))).toBe("[Opus 4.6] 45% | FW:OFF | NNP:OFF\n");
    });

    test("a rate limit's used_percentage is never taken for the context's", () => {
        const j = JSON.parse(claudeJson);
        delete j.context_window.used_percentage;
        expect(render(JSON.stringify(j))).toBe("[Opus 4.6] --% | FW:OFF | NNP:OFF\n");
    });
});

describe("malformed input still gives one line and exit 0", () => {
    test.each([
        ["empty stdin", ""],
        ["not JSON", "garbage\n"],
        ["truncated JSON", claudeJson.slice(0, 120)],
        ["null fields", '{"model":null,"context_window":{"used_percentage":null}}'],
        ["wrong types", '{"model":{"display_name":42},"context_window":{"used_percentage":"45"}}'],
        ["negative percentage", '{"model":{"display_name":"Opus 4.6"},"context_window":{"used_percentage":-3}}'],
        ["binary", "\u0000\u0001\u0002\u00ff{{{"],
    ])("%s", (_name, input) => {
        const out = render(input);
        expect(out).toMatch(/^\[[^\]\n]*\] (\d{1,3}|--)% \| FW:(ON|OFF) \| NNP(:OFF)?\n$/);
    });

    test("a huge percentage is capped at 100", () => {
        expect(render('{"context_window":{"used_percentage":250}}')).toBe("[?] 100% | FW:OFF | NNP:OFF\n");
    });

    test("terminal escapes in the model name are not passed through", () => {
        expect(render('{"model":{"display_name":"Opus\u001b[2J 4.6"}}')).toBe("[Opus[2J 4.6] --% | FW:OFF | NNP:OFF\n");
        expect(render('{"model":{"display_name":"Opus\\u001b[2J"}}')).toBe("[?] --% | FW:OFF | NNP:OFF\n");
    });
});

describe("FW from /run/cc-sandbox/firewall.state", () => {
    const cases: [string, string, string][] = [
        ["fresh ON", 'echo "ON $EPOCHSECONDS" > $F', "FW:ON"],
        ["ON without a newline", 'printf "ON %s" "$EPOCHSECONDS" > $F', "FW:ON"],
        ["ON 9 s old", 'echo "ON $((EPOCHSECONDS - 9))" > $F', "FW:ON"],
        ["ON 12 s old (watcher stopped)", 'echo "ON $((EPOCHSECONDS - 12))" > $F', "FW:OFF"],
        ["fresh OFF (rules flushed)", 'echo "OFF $EPOCHSECONDS" > $F', "FW:OFF"],
        ["ON from the future", 'echo "ON $((EPOCHSECONDS + 3600))" > $F', "FW:OFF"],
        ["ON without a time", "echo ON > $F", "FW:OFF"],
        ["ON with garbage", "echo 'ON 12x' > $F", "FW:OFF"],
        ["lower-case on", 'echo "on $EPOCHSECONDS" > $F', "FW:OFF"],
        ["empty file", ": > $F", "FW:OFF"],
        ["missing file", ":", "FW:OFF"],
        ["a directory in its place", "mkdir $F", "FW:OFF"],
        ["ON with 3 denied lately", 'echo "ON $EPOCHSECONDS denied=3" > $F', "FW:ON 3 denied"],
        ["ON with none denied", 'echo "ON $EPOCHSECONDS denied=0" > $F', "FW:ON"],
        ["stale ON with denials", 'echo "ON $((EPOCHSECONDS - 12)) denied=3" > $F', "FW:OFF"],
        ["OFF with denials", 'echo "OFF $EPOCHSECONDS denied=3" > $F', "FW:OFF"],
        ["ON with a garbage count", 'echo "ON $EPOCHSECONDS denied=3x" > $F', "FW:ON"],
        ["ON with a huge count", 'echo "ON $EPOCHSECONDS denied=99999999999" > $F', "FW:ON"],
        ["ON with a terminal escape as the count", 'printf "ON %s denied=\\033[31m\\n" "$EPOCHSECONDS" > $F', "FW:ON"],
    ];
    let out = "";
    beforeAll(() => {
        const script = cases
            .map(
                ([name, write], i) => `
                rm -rf "$F"
                ${write}
                echo "case${i}=$(setpriv --reuid=65534 --regid=65534 --clear-groups ${statusline} <<<'{}' 2>&1)" # ${name}`,
            )
            .join("\n");
        const r = run("unshare", ["--mount", "--propagation", "private", "bash", "-euo", "pipefail", "-c", `mount -t tmpfs cc-run /run; mkdir -m 0755 /run/cc-sandbox; umask 022; F=/run/cc-sandbox/firewall.state\n${script}`]);
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        out = r.stdout;
    });
    test.each(cases.map((c, i) => [c[0], c[2], i] as const))("%s: %s, read by an unprivileged user", (_name, want, i) => {
        const line = new RegExp(`^case${i}=(.*)$`, "m").exec(out)?.[1];
        expect(line).toBe(`[?] --% | ${want} | NNP:OFF`);
    });
});

describe("NNP", () => {
    test("shows NNP under setpriv --no-new-privs and NNP:OFF without", () => {
        expect(render(claudeJson, { nnp: true })).toMatch(/\| NNP\n$/);
        expect(render(claudeJson)).toMatch(/\| NNP:OFF\n$/);
    });
});

test("starts no process: no fork, clone or exec after bash itself", () => {
    const trace = path.join(tempDir("cc-strace-"), "trace");
    const r = run("strace", ["-f", "-qq", "-e", "trace=fork,vfork,clone,clone3,execve", "-o", trace, statusline], { input: claudeJson });
    expect(r.stdout).toBe("[Opus 4.6] 45% | FW:OFF | NNP:OFF\n");
    expect(r.status).toBe(0);
    const calls = fs.readFileSync(trace, "utf8").split("\n").filter((l) => /\b(fork|vfork|clone|clone3|execve)\(/.test(l));
    // The one execve is strace starting the script.
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatch(/execve\(".*cc-sandbox-statusline"/);
});

test("a project's worker sees its project's name; the agent and root see none", () => {
    const as = (user: string) => {
        const r = run(statusline, [], { input: claudeJson, env: { ...process.env, USER: user } });
        expect(r.status).toBe(0);
        return r.stdout;
    };
    const plain = as("agent");
    expect(plain).toMatch(/^\[Opus 4\.6\] 45% \| FW:/);
    expect(as("cc-web")).toBe(plain.replace("45% | ", "45% | web | "));
    expect(as("root")).toBe(plain);
    // Only a worker's name shape counts: nothing else reaches the line.
    expect(as("cc-$(id)")).toBe(plain);
});
