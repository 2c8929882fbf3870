// @ts-check
/*
 * What the lifecycle runner (runner.js) asks of the hypervisor's CLI and the guest: the parsers of
 * each CLI's output (one per output; the program's tests use them too), bounded process runs, the
 * VM's state, and commands in the guest. Plain CommonJS with Node built-ins only, like runner.js,
 * which requires it from beside itself.
 */
"use strict";
const fs = require("fs");
const { spawnSync } = require("child_process");

/**
 * @typedef {import("./types").VmPlan} VmPlan
 * @typedef {import("./types").MountPlan} MountPlan
 * @typedef {import("./types").StepPlans} StepPlans
 * @typedef {import("./types").RunnerStep} RunnerStep
 * @typedef {import("./types").VmStatus} VmStatus
 * @typedef {{ code: number, stdout: string, stderr: string }} RunResult
 * @typedef {{ input?: string, inputFile?: string, timeoutMs?: number }} RunOptions
 */

/**
 * `multipass info NAME --format json` -> {state, ip, mounts}. Numbers the daemon reads from the guest
 * are strings; `ipv4` is empty while the instance is not running and ["N/A"] while it runs without an
 * address; `mounts` is keyed by guest path (json_formatter.cpp, runtime_instance_info_helper.cpp).
 */
/** @param {string} stdout @param {string} name @returns {VmStatus} */
function parseMultipassInfo(stdout, name) {
    const doc = JSON.parse(stdout);
    const info = doc && doc.info && doc.info[name];
    if (!info) return { state: "absent", ip: "" };
    const ips = Array.isArray(info.ipv4) ? info.ipv4.filter((/** @type {unknown} */ a) => typeof a === "string" && /^\d{1,3}(\.\d{1,3}){3}$/.test(a)) : [];
    /** @type {Record<string, string>} */
    const mounts = {};
    for (const [guest, m] of Object.entries(info.mounts || {})) mounts[guest] = (m && /** @type {{ source_path?: string }} */ (m).source_path) || "";
    return {
        state: String(info.state || "unknown").toLowerCase(),
        ip: ips[0] || "",
        mounts,
        cpus: Number(info.cpu_count) || undefined,
        release: info.release || info.image_release || undefined,
    };
}

/** `virsh domstate NAME` -> state. */
/** @param {string} stdout @returns {string} */
function parseVirshState(stdout) {
    const s = stdout.trim().toLowerCase();
    if (s === "running" || s === "idle") return "running";
    if (s === "shut off" || s === "shutoff" || s === "crashed") return "stopped";
    return s || "unknown";
}

/** `virsh domifaddr NAME [--source lease]` table -> first IPv4 address. */
/** @param {string} stdout @returns {string} */
function parseDomifaddr(stdout) {
    for (const line of stdout.split("\n")) {
        const m = /\bipv4\s+(\d{1,3}(?:\.\d{1,3}){3})\/\d+/.exec(line);
        if (m) return m[1];
    }
    return "";
}

/** @param {string} msg */
function log(msg) {
    process.stderr.write(`cc-sandbox: ${msg}\n`);
}

/** `{name}` in each argument replaced by vars.name. @param {readonly string[]} argv @param {Record<string, string>} vars */
function fill(argv, vars) {
    return argv.map((a) => a.replace(/\{(\w+)\}/g, (m, /** @type {string} */ k) => (k in vars ? vars[k] : m)));
}

// No CLI call may hang the run: `multipass exec` can (an open Multipass issue), and so can a
// daemon that stopped answering. A call that times out counts as a failure (code -1).
const defaultTimeoutMs = 10 * 60_000;
const queryTimeoutMs = 60_000;

/**
 * A command as errors name it: its first words, or for `bash -c SCRIPT NAME ARGS…` (the drivers'
 * scripts) the script's name and first argument, never the script's text.
 * @param {readonly string[]} argv
 */
function named(argv) {
    return argv[0] === "bash" && argv[1] === "-c" && argv.length > 3 ? argv.slice(3, 5).join(" ") : argv.slice(0, 3).join(" ");
}

/** @param {readonly string[]} argv @param {RunOptions} [opts] @returns {RunResult} */
function run(argv, opts = {}) {
    // A file as stdin (a project's repository, which may be large) goes as a descriptor, unbuffered.
    const fd = opts.inputFile === undefined ? undefined : fs.openSync(opts.inputFile, "r");
    const r = (() => {
        try {
            return spawnSync(argv[0], argv.slice(1), {
                // The CLIs' states and labels in English whatever the user's locale (virsh translates them).
                env: { ...process.env, LC_ALL: "C" },
                input: opts.input,
                encoding: "utf8",
                stdio: [fd ?? (opts.input === undefined ? "ignore" : "pipe"), "pipe", "pipe"],
                timeout: opts.timeoutMs || defaultTimeoutMs,
                killSignal: "SIGKILL",
                maxBuffer: 64 * 1024 * 1024,
            });
        } finally {
            if (fd !== undefined) fs.closeSync(fd);
        }
    })();
    const code = r.error && /** @type {NodeJS.ErrnoException} */ (r.error).code;
    if (code === "ENOENT") throw new Error(`${argv[0]} is not installed or not on PATH (npm run doctor)`);
    const timedOut = code === "ETIMEDOUT";
    return {
        code: r.status === null ? -1 : r.status,
        stdout: r.stdout || "",
        stderr: (r.stderr || "") + (timedOut ? `\n${named(argv)} did not finish within ${Math.round((opts.timeoutMs || defaultTimeoutMs) / 1000)} s` : ""),
    };
}

/** The most of argv's stderr that capture keeps: the guest writes it, and this machine prints it. */
const captureStderrBytes = 256 * 1024;

/**
 * Runs argv with its stdout (bytes) into FILE, at most LIMIT of them, and its stderr returned, at
 * most captureStderrBytes: past either argv's pipe is broken, and the status is a broken pipe's
 * (141) whatever argv's own. Past timeoutMs argv is stopped (TERM, then KILL 5 s later), and the
 * status is 124 (137 after the KILL): run's own limit would end only the shell, and leave argv (an
 * ssh the other end keeps open) writing on. `why` says which limit ended it, if one did.
 * @param {readonly string[]} argv @param {string} file @param {number} limit @param {number} timeoutMs
 * @returns {RunResult & { why: string }}
 */
function capture(argv, file, limit, timeoutMs) {
    const seconds = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
    // stdout to fd 3, into the file through head; stderr through a head of its own. One byte past
    // each limit is read, to tell "cut off" from "just fitted".
    const script = 'set -o pipefail; out=$1 limit=$2 secs=$3 errs=$4; shift 4; { timeout -k 5 "$secs" "$@" 2>&1 1>&3 | head -c "$errs" >&2; } 3>&1 | head -c "$limit" > "$out"';
    const started = Date.now();
    const r = spawnSync("bash", ["-c", script, "capture", file, String(limit + 1), seconds, String(captureStderrBytes + 1), ...argv], {
        env: { ...process.env, LC_ALL: "C" },
        stdio: ["ignore", "ignore", "pipe"],
        timeout: timeoutMs + 15_000,
        killSignal: "SIGKILL",
        maxBuffer: captureStderrBytes + 1024,
    });
    let code = r.status === null ? -1 : r.status;
    const stderr = r.stderr || Buffer.alloc(0);
    const size = fs.existsSync(file) ? fs.statSync(file).size : 0;
    // Stopped by timeout (124, or 137 when TERM was not enough) only if the time had run out: the
    // guest's own 124 is its own.
    const outOfTime = r.status === null || ((code === 124 || code === 137) && Date.now() - started >= timeoutMs);
    let why = outOfTime ? `out of time (${seconds} s)` : "";
    if (size > limit) {
        fs.truncateSync(file, limit);
        why = `over ${limit} bytes`;
    } else if (stderr.length > captureStderrBytes) {
        why = `over ${captureStderrBytes} bytes of messages`;
    }
    if (size > limit || stderr.length > captureStderrBytes) code = 141;
    return { code, stdout: "", stderr: stderr.subarray(0, captureStderrBytes).toString("utf8"), why };
}

/** @param {readonly string[]} argv @param {RunOptions} [opts] @returns {RunResult} */
function must(argv, opts) {
    const r = run(argv, opts);
    if (r.code !== 0) throw new Error(`${named(argv)} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
    if (r.stderr.trim()) log(r.stderr.trim());
    return r;
}

const sleep = (/** @type {number} */ ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const pollMs = Number(process.env.CC_POLL_MS) || 1000;

/** With plan.list: the hypervisor lists its VMs and this one is not among them. */
/** @param {VmPlan} plan */
function confirmedAbsent(plan) {
    if (!plan.list) return true;
    const r = run(plan.list, { timeoutMs: queryTimeoutMs });
    return r.code === 0 && !r.stdout.split("\n").map((l) => l.trim()).includes(plan.name);
}

/**
 * The VM's state. Only the hypervisor saying the VM does not exist (plan.absent on stderr) means
 * "absent": a daemon that does not answer, or any other failure, is an error, so that destroy never
 * reports a running VM as gone and up never launches a second one.
 */
/** @param {VmPlan} plan @returns {VmStatus} */
function status(plan) {
    const r = run(plan.state, { timeoutMs: queryTimeoutMs });
    if (r.code !== 0) {
        if (plan.absent && new RegExp(plan.absent).test(r.stderr) && confirmedAbsent(plan)) return { state: "absent", ip: "" };
        const hint = plan.format === "multipass" ? " (is multipassd running? npm run doctor)" : " (is libvirtd reachable? npm run doctor)";
        throw new Error(`cannot tell the state of ${plan.name}: ${plan.state.slice(0, 2).join(" ")} failed (exit ${r.code}): ${r.stderr.trim()}${hint}`);
    }
    if (plan.format === "multipass") return parseMultipassInfo(r.stdout, plan.name);
    const state = parseVirshState(r.stdout);
    const ip = state === "running" ? parseDomifaddr(run(plan.address, { timeoutMs: queryTimeoutMs }).stdout) : "";
    return { state, ip };
}

/** @param {VmPlan} plan @param {string} ip @param {readonly string[]} command @param {RunOptions} [opts] */
function guest(plan, ip, command, opts) {
    return run([...fill(plan.guestExec, { ip }), ...command], opts);
}

/** The guest command never ran: guestExec could not reach the guest (ssh's 255, multipass's "exec failed:"). */
/** @param {VmPlan} plan @param {RunResult} r */
function unreachable(plan, r) {
    if (r.code === -1) return true;
    const u = plan.unreachable || { codes: [255] };
    return u.codes.includes(r.code) && (!u.stderr || new RegExp(u.stderr, "m").test(r.stderr));
}

module.exports = { parseMultipassInfo, parseVirshState, parseDomifaddr, log, fill, named, run, must, capture, sleep, pollMs, queryTimeoutMs, status, guest, unreachable };
