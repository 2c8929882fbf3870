/*
 * The VM lifecycle steps the Pulumi command resources run: `node -e` with this file followed by
 * `runStep("NAME")`, and the driver's plan (argument lists, never shell strings) as JSON in CC_PLAN. Plain
 * CommonJS with Node built-ins only, because the command provider runs it outside the program.
 * The program also requires it for the parsers, so there is one parser per CLI output.
 */
"use strict";
const { spawnSync } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");

/** `multipass info NAME --format json` -> {state, ip}. Numbers there are strings; ipv4 is empty while starting. */
function parseMultipassInfo(stdout, name) {
    const doc = JSON.parse(stdout);
    const info = doc && doc.info && doc.info[name];
    if (!info) return { state: "absent", ip: "" };
    const ips = Array.isArray(info.ipv4) ? info.ipv4.filter((a) => typeof a === "string" && a) : [];
    return {
        state: String(info.state || "unknown").toLowerCase(),
        ip: ips[0] || "",
        cpus: Number(info.cpu_count) || undefined,
        release: info.release || info.image_release || undefined,
    };
}

/** `virsh domstate NAME` -> state. */
function parseVirshState(stdout) {
    const s = stdout.trim().toLowerCase();
    if (s === "running" || s === "idle") return "running";
    if (s === "shut off" || s === "shutoff" || s === "crashed") return "stopped";
    return s || "unknown";
}

/** `virsh domifaddr NAME [--source lease]` table -> first IPv4 address. */
function parseDomifaddr(stdout) {
    for (const line of stdout.split("\n")) {
        const m = /\bipv4\s+(\d{1,3}(?:\.\d{1,3}){3})\/\d+/.exec(line);
        if (m) return m[1];
    }
    return "";
}

function log(msg) {
    process.stderr.write(`cc-sandbox: ${msg}\n`);
}

function fill(argv, vars) {
    return argv.map((a) => a.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? vars[k] : m)));
}

function run(argv, opts = {}) {
    const r = spawnSync(argv[0], argv.slice(1), {
        input: opts.input,
        encoding: "utf8",
        stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
        timeout: opts.timeoutMs,
        maxBuffer: 64 * 1024 * 1024,
    });
    if (r.error && r.error.code === "ENOENT") throw new Error(`${argv[0]} is not installed or not on PATH (npm run doctor)`);
    return { code: r.status === null ? -1 : r.status, stdout: r.stdout || "", stderr: r.stderr || "" };
}

function must(argv, opts) {
    const r = run(argv, opts);
    if (r.code !== 0) throw new Error(`${argv.slice(0, 3).join(" ")} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
    return r;
}

const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const pollMs = Number(process.env.CC_POLL_MS) || 1000;

function status(plan) {
    const r = run(plan.state);
    if (r.code !== 0) return { state: "absent", ip: "" };
    if (plan.format === "multipass") return parseMultipassInfo(r.stdout, plan.name);
    const state = parseVirshState(r.stdout);
    const ip = state === "running" ? parseDomifaddr(run(plan.address).stdout) : "";
    return { state, ip };
}

function waitForAddress(plan, deadline) {
    for (;;) {
        const s = status(plan);
        if (s.state === "running" && s.ip) return s;
        if (Date.now() > deadline) throw new Error(`${plan.name} has no IPv4 address after ${plan.timeoutSeconds}s (state ${s.state})`);
        sleep(pollMs);
    }
}

function guest(plan, ip, command, opts) {
    return run([...fill(plan.guestExec, { ip }), ...command], opts);
}

/** Waits for cloud-init; on failure throws with the tail of its output log and the boot log. */
function waitForCloudInit(plan, ip, deadline) {
    for (;;) {
        const left = deadline - Date.now();
        const r = guest(plan, ip, ["cloud-init", "status", "--wait", "--long"], { timeoutMs: Math.max(left, 1000) });
        if (r.code === 0) return;
        // 255: ssh could not connect yet (sshd still starting); anything else is cloud-init's verdict.
        if (r.code === 255 || r.code === -1) {
            if (Date.now() > deadline) throw new Error(`cannot reach ${plan.name} over SSH: ${r.stderr.trim()}`);
            sleep(pollMs);
            continue;
        }
        const tail = guest(plan, ip, ["sudo", "tail", "-n", "40", "/var/log/cloud-init-output.log", "/var/log/cc-sandbox-boot.log"]);
        throw new Error(
            `cloud-init failed in ${plan.name} (exit ${r.code}):\n${r.stdout.trim()}\n--- guest logs ---\n${tail.stdout.trim() || tail.stderr.trim()}`,
        );
    }
}

function ensureRunning(plan, deadline) {
    const s = status(plan);
    if (s.state === "stopped" || s.state === "suspended" || s.state === "shut off") {
        log(`${plan.name} is ${s.state}; starting it`);
        must(plan.start);
    }
    return waitForAddress(plan, deadline);
}

function withSeed(userData, metaData, fn) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cc-sandbox-seed-"));
    try {
        const userDataFile = path.join(dir, "user-data");
        const metaDataFile = path.join(dir, "meta-data");
        fs.writeFileSync(userDataFile, userData, { mode: 0o600 });
        fs.writeFileSync(metaDataFile, metaData, { mode: 0o600 });
        return fn({ userDataFile, metaDataFile });
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

function create(plan, userData) {
    const deadline = Date.now() + plan.timeoutSeconds * 1000;
    const s = status(plan);
    if (s.state === "absent") {
        for (const step of plan.prepare || []) must(step);
        log(`creating ${plan.name}`);
        withSeed(userData, plan.metaData, (files) => {
            if (plan.seed) must(fill(plan.seed, files));
            const r = run(fill(plan.launch, files), { input: plan.launchStdin ? userData : undefined, timeoutMs: plan.timeoutSeconds * 1000 });
            // A launch that timed out may have left a VM that is still booting: adopt it below.
            if (r.code !== 0 && status(plan).state === "absent") {
                throw new Error(`creating ${plan.name} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
            }
        });
    } else {
        log(`${plan.name} already exists (${s.state}); adopting it`);
    }
    const up = ensureRunning(plan, deadline);
    waitForCloudInit(plan, up.ip, deadline);
    return { name: plan.name, ip: up.ip };
}

function destroy(plan) {
    if (status(plan).state === "absent") {
        log(`${plan.name} is already gone`);
        return;
    }
    for (const step of plan.delete) {
        const r = run(step);
        if (r.code !== 0) log(`${step.slice(0, 3).join(" ")}: ${r.stderr.trim()} (continuing)`);
    }
    if (status(plan).state !== "absent") throw new Error(`${plan.name} still exists after delete`);
}

/** Entry point of the command resources: `<this file>\nrunStep("create")`. */
function runStep(step) {
    try {
        main(step);
    } catch (err) {
        log(err.message);
        process.exitCode = 1;
    }
}

function main(step) {
    const plan = JSON.parse(process.env.CC_PLAN || "{}");
    const stdin = () => fs.readFileSync(0, "utf8");
    switch (step) {
        case "create":
            process.stdout.write(JSON.stringify(create(plan, stdin())) + "\n");
            break;
        case "keep": {
            // An update that leaves the VM as it is: the same output as before (the command provider
            // passes it in PULUMI_COMMAND_STDOUT), so nothing that depends on the VM runs again.
            const previous = process.env.PULUMI_COMMAND_STDOUT || "";
            process.stdout.write(previous ? `${previous}\n` : JSON.stringify(create(plan, stdin())) + "\n");
            break;
        }
        case "delete":
            destroy(plan);
            break;
        case "info": {
            // Runs on every program run. On `pulumi up` (not preview) it also reconciles: a stopped
            // VM is started, one deleted behind Pulumi's back is created again from the same seed.
            let s = status(plan);
            if (process.env.CC_DRY_RUN !== "1") {
                if (s.state === "absent") {
                    log(`${plan.name} is missing; creating it again`);
                    create(plan, stdin());
                    for (const argv of plan.mounts || []) must(argv);
                }
                s = ensureRunning(plan, Date.now() + plan.timeoutSeconds * 1000);
            }
            process.stdout.write(JSON.stringify({ state: s.state, ip: s.ip }) + "\n");
            break;
        }
        case "guest": {
            // Runs plan.command in the guest with this step's stdin (used to push an allowlist).
            const s = waitForAddress(plan, Date.now() + plan.timeoutSeconds * 1000);
            const r = guest(plan, s.ip, plan.command, { input: stdin() });
            process.stdout.write(r.stdout);
            process.stderr.write(r.stderr);
            if (r.code !== 0) throw new Error(`${plan.command.join(" ")} failed in ${plan.name} (exit ${r.code})`);
            break;
        }
        case "guest-undo": {
            // Undoes a "guest" step; nothing to undo in a VM that is gone or stopped.
            const s = status(plan);
            if (s.state !== "running" || !s.ip) {
                log(`${plan.name} is ${s.state}; nothing to undo in it`);
                break;
            }
            const r = guest(plan, s.ip, plan.undo);
            process.stderr.write(r.stderr);
            if (r.code !== 0) throw new Error(`${plan.undo.join(" ")} failed in ${plan.name} (exit ${r.code})`);
            break;
        }
        case "run":
            for (const argv of plan.steps) must(argv);
            break;
        case "undo":
            for (const argv of plan.undo) {
                const r = run(argv);
                if (r.code !== 0) log(`${argv.slice(0, 3).join(" ")}: ${r.stderr.trim()} (continuing)`);
            }
            break;
        default:
            throw new Error(`unknown step ${step}`);
    }
}

module.exports = { parseMultipassInfo, parseVirshState, parseDomifaddr, runStep };
