// @ts-check
/*
 * The VM lifecycle steps the Pulumi command resources run. Each resource's command is a `node -e`
 * that requires this file by its path (CC_RUNNER; src/sandbox.ts `step`) and calls
 * `runStep("NAME")`, with the driver's plan (argument lists, never shell strings) as JSON in
 * CC_PLAN: each step's plan is a type in src/drivers/types.ts (StepPlans), checked here through
 * JSDoc by `npm run build` (tsconfig.runner.json). Plain CommonJS with Node built-ins only, because
 * the command provider runs it outside the program; what it asks of the CLIs is in vm-query.js.
 */
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");

/**
 * @typedef {import("./types").VmPlan} VmPlan
 * @typedef {import("./types").MountPlan} MountPlan
 * @typedef {import("./types").StepPlans} StepPlans
 * @typedef {import("./types").RunnerStep} RunnerStep
 * @typedef {import("./types").VmStatus} VmStatus
 * @typedef {import("./types").ShareSteps} ShareSteps
 */
const { packRepository, printable, receiveBundle } = require("./handover.js");
const { parseMultipassInfo, parseVirshState, parseDomifaddr, log, fill, named, run, must, capture, sleep, pollMs, queryTimeoutMs, status, guest, unreachable } = require("./vm-query.js");

/** The most a project's saved work may weigh, as it comes from the guest: it cannot fill this disk. */
const saveLimit = 2 * 1024 ** 3;

/** @param {VmPlan} plan */
const consoleHint = (plan) => (plan.consoleLog ? ` (what its console printed: ${plan.consoleLog} on the libvirt host)` : "");

/**
 * Waits in the guest (a POSIX shell script on stdin) until cloud-init is done, then prints its
 * `status --long` and exits with its code. cloud-init's own `status --wait` runs two systemctl
 * processes every quarter second for the whole boot it waits on: on an emulated guest, a good part
 * of a CPU taken from that boot. This looks for the file cloud-init writes when done (result.json)
 * twice a second, and asks systemd every 5 s whether a cloud-init unit failed (then no result
 * comes). It ends in cloud-init's own `status --wait --long`, which returns at once when the
 * result is there or cloud-init does not run here (the marker, a generator that disabled it), and
 * otherwise keeps cloud-init's own judgement of a failed unit (it waits on while cloud-final runs).
 */
const cloudInitWait = `i=0
while [ ! -e /run/cloud-init/result.json ]; do
  [ ! -e /etc/cloud/cloud-init.disabled ] && [ ! -e /run/cloud-init/disabled ] || break
  if [ $((i % 10)) -eq 9 ] && systemctl is-failed --quiet cloud-init-main.service cloud-init-local.service \
    cloud-init.service cloud-init-network.service cloud-config.service cloud-final.service 2>/dev/null; then
    break
  fi
  i=$((i + 1))
  sleep 0.5
done
exec cloud-init status --wait --long
`;

/** Waits for cloud-init; on failure throws with the tail of its output log and the boot log. */
/** @param {VmPlan} plan @param {string} ip @param {number} deadline */
function waitForCloudInit(plan, ip, deadline) {
    for (;;) {
        const left = deadline - Date.now();
        const r = guest(plan, ip, ["sh", "-s"], { input: cloudInitWait, timeoutMs: Math.max(left, 1000) });
        if (r.code === 0) return;
        if (unreachable(plan, r)) {
            if (Date.now() > deadline) throw new Error(`cannot reach ${plan.name} to wait for cloud-init: ${r.stderr.trim()}${consoleHint(plan)}`);
            sleep(pollMs);
            continue;
        }
        // cloud-init 23.4 and later: 2 is "done, with recoverable errors" (deprecated keys and the like);
        // a failed boot step is 1.
        if (r.code === 2) {
            log(`cloud-init finished in ${plan.name} with recoverable errors:\n${r.stdout.trim()}`);
            return;
        }
        const tail = guest(plan, ip, ["sudo", "tail", "-n", "40", "/var/log/cloud-init-output.log", "/var/log/cc-sandbox-boot.log"]);
        throw new Error(
            `cloud-init failed in ${plan.name} (exit ${r.code}):\n${r.stdout.trim()}\n--- guest logs ---\n${tail.stdout.trim() || tail.stderr.trim()}`,
        );
    }
}

/**
 * cloud-init's work is the first boot's: once the host has seen that boot succeed, the marker file
 * cloud-init's generator reads keeps it out of every later boot, which then runs only systemd and the
 * sandbox's own units (the firewall first). A reboot no longer waits on cloud-init's four Python
 * stages before SSH, and no later boot re-reads a seed. Never before success: the marker makes
 * `cloud-init status` say "disabled", which would hide a failed first boot from the next wait.
 * A guest that refuses keeps running cloud-init at boot, as before: logged, not fatal.
 */
/** @param {VmPlan} plan @param {string} ip */
function cloudInitOnce(plan, ip) {
    const r = guest(plan, ip, ["sudo", "-n", "touch", "/etc/cloud/cloud-init.disabled"], { timeoutMs: queryTimeoutMs });
    if (r.code !== 0) log(`could not mark cloud-init done in ${plan.name} (exit ${r.code}: ${r.stderr.trim()}); it runs again at each boot`);
}

/**
 * Brings the VM to running with an address, from whatever state the hypervisor reports, within the
 * deadline: started when stopped or suspended, recovered when deleted but not purged, its scheduled
 * shutdown cancelled, waited on while it changes state by itself; a state nothing can be done about
 * is an error naming it, at once.
 */
/** @param {VmPlan} plan @param {number} deadline @returns {VmStatus} */
function ensureRunning(plan, deadline) {
    let acted = "";
    for (;;) {
        let s;
        try {
            s = status(plan);
        } catch (err) {
            // A query that failed once (a slow daemon) is asked again until the deadline.
            if (Date.now() > deadline) throw err;
            log(`${/** @type {Error} */ (err).message}; asking again`);
            sleep(Math.max(pollMs, 2000));
            continue;
        }
        const left = () => Math.max(deadline - Date.now(), 1000);
        switch (s.state) {
            case "running":
                if (s.ip) return s;
                break;
            case "stopped":
            case "suspended":
                log(`${plan.name} is ${s.state}; starting it`);
                must(plan.start, { timeoutMs: left() });
                break;
            case "deleted":
                if (!plan.recover) throw new Error(`${plan.name} is deleted`);
                if (acted === "recover") throw new Error(`${plan.name} is still deleted after \`${plan.recover.join(" ")}\``);
                log(`${plan.name} was deleted but not purged; recovering it`);
                must(plan.recover, { timeoutMs: queryTimeoutMs });
                acted = "recover";
                continue;
            case "delayed shutdown":
                log(`${plan.name} is about to shut down; cancelling it`);
                if (plan.cancelShutdown) must(plan.cancelShutdown, { timeoutMs: queryTimeoutMs });
                break;
            case "starting":
            case "restarting":
            case "suspending":
                break;
            case "absent":
                throw new Error(`${plan.name} does not exist`);
            case "unknown":
                throw new Error(
                    `${plan.name} is in state Unknown: the hypervisor cannot tell what the VM is doing. ` +
                        (plan.format === "multipass" ? "Restart multipassd, or `multipass stop --force " + plan.name + "`, then run pulumi up again" : "Check `virsh domstate`"),
                );
            default:
                // virsh's paused, in shutdown, pmsuspended: they may pass; the deadline says when not.
                break;
        }
        if (Date.now() > deadline) {
            throw new Error(`${plan.name} is ${s.state}${s.state === "running" ? " with no IPv4 address" : ""} after ${plan.timeoutSeconds}s${consoleHint(plan)}`);
        }
        sleep(pollMs);
    }
}

/**
 * What a guest command that failed said: the command, the VM, its exit status and stderr.
 * @param {VmPlan} plan @param {readonly string[]} command @param {{ code: number, stderr: string }} r
 */
const failedIn = (plan, command, r) => `${command.join(" ")} failed in ${plan.name} (exit ${r.code}): ${printable(r.stderr).trim()}`;

/** Unmounts a share of the running VM, after the guest let go of what it mounted inside it. */
/** @param {VmPlan} plan @param {VmStatus} s @param {MountPlan} m */
function unmountShare(plan, s, m) {
    if (s.state === "running" && s.ip && m.release) {
        const r = guest(plan, s.ip, m.release, { timeoutMs: queryTimeoutMs });
        if (r.code !== 0) log(`${failedIn(plan, m.release, r)} (continuing)`);
    }
    must(m.umount, { timeoutMs: queryTimeoutMs });
}

/** Mounts a share into the running VM, and has the guest protect its repositories at once. */
/** @param {VmPlan} plan @param {VmStatus} s @param {MountPlan} m */
function mountShare(plan, s, m) {
    must(m.mount, { timeoutMs: 5 * 60_000 });
    if (s.state === "running" && s.ip && m.protect) {
        const r = guest(plan, s.ip, m.protect, { timeoutMs: queryTimeoutMs });
        if (r.code !== 0) throw new Error(failedIn(plan, m.protect, r));
    }
}

/** Mounts a plan.mounts entry lists but the VM no longer has (Multipass drops one it cannot restore at start). */
/** @param {StepPlans["info"]} plan @param {VmStatus} s */
function restoreMounts(plan, s) {
    if (!s.mounts) return;
    for (const m of plan.mounts || []) {
        const mounted = s.mounts[m.guest];
        if (mounted === m.source) continue;
        if (mounted !== undefined) unmountShare(plan, s, m);
        log(`${m.source} is not mounted at ${m.guest} in ${plan.name}; mounting it again`);
        mountShare(plan, s, m);
    }
}

/**
 * Adds a project's shared folder to the running VM, before its worker is added; true when this
 * call added it (not when it was there already). A folder the hypervisor mounts itself (`held`) is
 * told done from the VM's mounts; one of another folder at its place is refused, never taken.
 * @param {VmPlan} plan @param {VmStatus} s @param {ShareSteps} share
 */
function attachShare(plan, s, share) {
    if (!share.held) return /^attached$/m.test(must(share.attach, { timeoutMs: queryTimeoutMs }).stdout);
    const { guest: at, source } = share.held;
    const mounted = s.mounts ? s.mounts[at] : undefined;
    if (mounted === source) return false;
    if (mounted !== undefined) {
        throw new Error(`${plan.name} has ${mounted} mounted at ${at}, not ${source}: remove the project (pulumi up without it), then add it again`);
    }
    if (share.prepare) {
        const r = guest(plan, s.ip, share.prepare, { timeoutMs: queryTimeoutMs });
        if (r.code !== 0) throw new Error(failedIn(plan, share.prepare, r));
    }
    must(share.attach, { timeoutMs: 5 * 60_000 });
    return true;
}

/**
 * Takes a project's shared folder away from the VM (after its worker is gone); nothing when it is
 * not there. `must`: a failure throws, else it is logged.
 * @param {VmPlan} plan @param {VmStatus} s @param {ShareSteps} share @param {boolean} must_
 */
function detachShare(plan, s, share, must_) {
    if (!share.held || (s.mounts && s.mounts[share.held.guest] !== undefined)) {
        const d = run(share.detach, { timeoutMs: 2 * queryTimeoutMs });
        if (d.code !== 0) {
            const text = `${named(share.detach)} failed (exit ${d.code}): ${d.stderr.trim()}`;
            if (must_) throw new Error(text);
            log(`${text} (the share stays)`);
            return;
        }
    }
    // (also when the hypervisor had already dropped it: what it left in the guest goes)
    if (share.cleanup && s.state === "running" && s.ip) {
        const r = guest(plan, s.ip, share.cleanup, { timeoutMs: queryTimeoutMs });
        if (r.code !== 0) log(`${failedIn(plan, share.cleanup, r)} (continuing)`);
    }
}

/**
 * Projects' folders the hypervisor mounts itself, bound in place again after a restart: the guest
 * binds what is mounted and names what is not (with the hash of the folder its worker has), which
 * is mounted again and bound, when it is the same folder (another is another project: this run
 * removes the old one and adds the new). A folder that cannot be put back is said, not a reason to
 * stop the run (its worker's folder stays closed, and the run may be the one that removes it).
 * @param {StepPlans["info"]} plan @param {VmStatus} s
 */
function restoreProjectShares(plan, s) {
    const ps = plan.projectShares;
    if (!ps || s.state !== "running" || !s.ip) return;
    const rebind = () => {
        const r = guest(plan, s.ip, ps.rebind, { timeoutMs: 5 * 60_000 });
        if (r.code !== 0) log(`${failedIn(plan, ps.rebind, r)} (cc-sandbox-project status in the guest says which project)`);
        return [...r.stdout.matchAll(/^unstaged ([a-z][a-z0-9-]*) ([0-9a-f]{16})$/gm)].map((m) => ({ name: m[1], hash: m[2] }));
    };
    const lost = rebind()
        .filter(({ name, hash }) => ps.shares[name]?.held?.hash === hash)
        .map(({ name }) => name);
    if (lost.length === 0) return;
    for (const name of lost) {
        const share = ps.shares[name];
        log(`project ${name}'s folder is not mounted in ${plan.name}; mounting it again`);
        try {
            // Still in the hypervisor's record (its sshfs ended): taken out of it first.
            const held = /** @type {NonNullable<ShareSteps["held"]>} */ (share.held);
            let now = s;
            if (s.mounts && s.mounts[held.guest] === held.source) {
                must(share.detach, { timeoutMs: 2 * queryTimeoutMs });
                now = { ...s, mounts: Object.fromEntries(Object.entries(s.mounts).filter(([at]) => at !== held.guest)) };
            }
            attachShare(plan, now, share);
        } catch (err) {
            log(`${/** @type {Error} */ (err).message} (project ${name}'s folder stays closed)`);
        }
    }
    const still = rebind()
        .map(({ name }) => name)
        .filter((name) => lost.includes(name));
    if (still.length > 0) log(`warning: the folders of projects ${still.join(", ")} are still not in place in ${plan.name}: their workers' folders stay closed`);
}

/**
 * @template T
 * @param {string} userData @param {string} metaData
 * @param {(files: { userDataFile: string, metaDataFile: string }) => T} fn
 * @returns {T}
 */
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

/** @param {VmPlan} plan @param {string} userData */
function create(plan, userData) {
    const started = Date.now();
    const deadline = started + plan.timeoutSeconds * 1000;
    // Seconds since started at the end of each phase, logged as one line (the boot benchmark reads it).
    /** @type {string[]} */
    const phases = [];
    const phase = (/** @type {string} */ name) => phases.push(`${name} ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const s = status(plan);
    if (s.state === "absent") {
        for (const step of plan.prepare || []) must(step);
        /** @type {Record<string, string>} */
        const image = plan.image ? { image: must(plan.image, { timeoutMs: plan.timeoutSeconds * 1000 }).stdout.trim() } : {};
        phase("image");
        log(`creating ${plan.name}`);
        withSeed(userData, plan.metaData, (files) => {
            try {
                if (plan.seed) must(fill(plan.seed, { ...files }));
                const r = run(fill(plan.launch, { ...files, ...image }), { input: plan.launchStdin ? userData : undefined, timeoutMs: plan.timeoutSeconds * 1000 });
                // A launch that timed out may have left a VM that is still booting: adopt it below.
                if (r.code !== 0 && status(plan).state === "absent") {
                    throw new Error(`creating ${plan.name} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
                }
            } catch (err) {
                removeLeftovers(plan);
                throw err;
            }
        });
        phase("launch");
    } else {
        checkOwner(plan);
        log(`${plan.name} already exists (${s.state === "deleted" ? "deleted, not purged" : s.state}); adopting it`);
    }
    const up = ensureRunning(plan, deadline);
    phase("address");
    waitForCloudInit(plan, up.ip, deadline);
    cloudInitOnce(plan, up.ip);
    phase("cloud-init");
    log(`timing ${plan.name}: ${phases.join(", ")}`);
    return { name: plan.name, ip: up.ip };
}

/**
 * After a create that made no VM: delete's steps, whose failures (nothing to destroy) are expected,
 * take what the create had made for it (its seed; on a remote host the image no disk uses), so a
 * failed create leaves nothing behind that destroy would not reach.
 */
/** @param {VmPlan} plan */
function removeLeftovers(plan) {
    // Only when the hypervisor still says there is no such VM: delete's steps would take one that is there.
    let absent = false;
    try {
        absent = status(plan).state === "absent";
    } catch {
        /* cannot tell: leave everything */
    }
    if (!absent) return;
    log(`removing what the failed create of ${plan.name} left`);
    for (const step of plan.delete) run(step, { timeoutMs: 5 * 60_000 });
}

/**
 * A VM of this name that carries another stack's mark is not this stack's to adopt or delete (a
 * shared host, two developers with one VM name). One with no mark at all was made before marks.
 * @param {VmPlan} plan
 */
function checkOwner(plan) {
    if (!plan.owner) return;
    const said = must(plan.owner.query, { timeoutMs: queryTimeoutMs }).stdout.trim();
    if (said.includes(plan.owner.mark)) return;
    if (!said.includes("cc-sandbox-owner:")) {
        log(`${plan.name} carries no owner mark (made before marks were kept): taking it as this stack's`);
        return;
    }
    throw new Error(`${plan.name} on the libvirt host is another stack's VM (its description: "${said}"): choose another cc-sandbox:vm.name`);
}

/** @param {VmPlan} plan */
function destroy(plan) {
    if (status(plan).state === "absent") {
        log(`${plan.name} is already gone`);
        return;
    }
    checkOwner(plan);
    for (const step of plan.delete) {
        const r = run(step, { timeoutMs: 5 * 60_000 });
        if (r.code !== 0) log(`${named(step)}: ${r.stderr.trim()} (continuing)`);
    }
    if (status(plan).state !== "absent") throw new Error(`${plan.name} still exists after delete`);
}

/** Entry point of the command resources: `<this file>\nrunStep("create")`. */
/** @param {RunnerStep} step */
function runStep(step) {
    try {
        main(step);
    } catch (err) {
        log(/** @type {Error} */ (err).message);
        process.exitCode = 1;
    }
}

/**
 * A clone project's work, before its worker goes: the worker's commits and uncommitted changes
 * fetched into the repository it came from as handover.branch (or, when that branch has moved on
 * elsewhere, a new branch beside it). Whatever fails here is said and the removal goes on: a
 * worker that could keep its project (and the VM) from going by breaking its repository would hold
 * teardown hostage.
 * @param {VmPlan} plan @param {string} ip @param {NonNullable<StepPlans["guest"]["handover"]>} handover
 */
function saveWork(plan, ip, handover) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cc-sandbox-save-"));
    try {
        const file = path.join(dir, "work.bundle");
        const r = capture([...fill(plan.guestExec, { ip }), ...handover.save], file, saveLimit, 5 * 60_000);
        if (r.code === 4) return log(`${handover.repository}: nothing new in the project since its code came in`);
        if (r.code !== 0) return log(`warning: the project's work could not be saved to ${handover.repository} (${handover.save.join(" ")}: exit ${r.code}${r.why ? `, ${r.why}` : ""}): ${printable(r.stderr.trim())}; removing it anyway`);
        try {
            const { branch, after } = receiveBundle(handover.repository, file, [handover.branch, `${handover.branch}-${new Date().toISOString().replace(/\D/g, "").slice(0, 14)}`]);
            log(`the project's work is saved in ${handover.repository} as branch ${branch} (${after.slice(0, 12)})`);
        } catch (e) {
            log(`warning: the project's work could not be saved to ${handover.repository} (${/** @type {Error} */ (e).message}); removing it anyway`);
        }
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/**
 * The plan this step reads: a resource's CC_PLAN, made by the component as StepPlans[step].
 * @template {RunnerStep} S
 * @param {S} step
 * @returns {StepPlans[S]}
 */
function planFor(step) {
    if (!process.env.CC_PLAN) throw new Error(`step ${step}: no CC_PLAN in the environment`);
    return JSON.parse(process.env.CC_PLAN);
}

/** @param {RunnerStep} step */
function main(step) {
    const stdin = () => fs.readFileSync(0, "utf8");
    switch (step) {
        case "create":
            process.stdout.write(JSON.stringify(create(planFor(step), stdin())) + "\n");
            break;
        case "keep": {
            // An update that leaves the VM as it is: the same output as before (the command provider
            // passes it in PULUMI_COMMAND_STDOUT), so nothing that depends on the VM runs again.
            const previous = process.env.PULUMI_COMMAND_STDOUT || "";
            process.stdout.write(previous ? `${previous}\n` : JSON.stringify(create(planFor(step), stdin())) + "\n");
            break;
        }
        case "delete":
            destroy(planFor(step));
            break;
        case "info": {
            // Runs on every program run. On `pulumi up` (not preview) it also reconciles: a stopped
            // VM is started, one deleted behind Pulumi's back is created again from the same seed.
            const plan = planFor(step);
            let s = status(plan);
            if (process.env.CC_DRY_RUN !== "1") {
                if (s.state === "absent") {
                    log(`${plan.name} is missing; creating it again`);
                    create(plan, stdin());
                }
                s = ensureRunning(plan, Date.now() + plan.timeoutSeconds * 1000);
                restoreMounts(plan, s);
                restoreProjectShares(plan, s);
            }
            // Which VM this is: a VM made again under the same name has another (empty when unknown).
            /** @type {{ state: string, ip: string, instance?: string }} */
            const out = { state: s.state, ip: s.ip };
            if (plan.instance) {
                const r = s.state === "absent" ? undefined : run(plan.instance, { timeoutMs: queryTimeoutMs });
                out.instance = r && r.code === 0 ? r.stdout.trim() : "";
            }
            process.stdout.write(JSON.stringify(out) + "\n");
            break;
        }
        case "guest": {
            // Runs plan.command in the guest with this step's stdin (used to push an allowlist).
            const plan = planFor(step);
            const s = ensureRunning(plan, Date.now() + plan.timeoutSeconds * 1000);
            // A project's shared folder is in the VM before its worker is added (who mounts it).
            const attached = plan.share ? attachShare(plan, s, plan.share) : false;
            const r = guest(plan, s.ip, plan.command, { input: stdin(), timeoutMs: 5 * 60_000 });
            process.stdout.write(r.stdout);
            // What the guest printed (a project's hooks print there) reaches the user's terminal.
            process.stderr.write(printable(r.stderr));
            if (r.code !== 0) {
                // A worker that could not be added has let go of its share (add takes it back out):
                // the device this run attached goes too, not left for another folder's add to meet.
                if (attached && plan.share) detachShare(plan, status(plan), plan.share, false);
                throw new Error(`${plan.command.join(" ")} failed in ${plan.name} (exit ${r.code})`);
            }
            // A project whose code is still to come: the repository, packed here, streamed in.
            if (plan.handover && /^import$/m.test(r.stdout)) {
                const { command, repository } = plan.handover;
                const pack = packRepository(repository);
                try {
                    log(`handing ${repository} over (${fs.statSync(pack.file).size} bytes)`);
                    const h = guest(plan, s.ip, command, { inputFile: pack.file, timeoutMs: 5 * 60_000 });
                    process.stderr.write(printable(h.stderr));
                    if (h.code !== 0) throw new Error(`${command.join(" ")} failed in ${plan.name} (exit ${h.code})`);
                } finally {
                    pack.dispose();
                }
            }
            break;
        }
        case "guest-undo": {
            // Undoes a "guest" step; nothing to undo in a VM that is gone or stopped.
            const plan = planFor(step);
            const undo = plan.undo;
            if (!undo) throw new Error(`step ${step}: the plan names nothing to undo`);
            const s = status(plan);
            if (s.state !== "running" || !s.ip) {
                log(`${plan.name} is ${s.state}; nothing to undo in it`);
                // A stopped VM's definition still holds the share: taken out of it (share.sh does nothing for a VM that is gone).
                if (plan.share && s.state !== "absent") detachShare(plan, s, plan.share, true);
                break;
            }
            if (plan.handover) saveWork(plan, s.ip, plan.handover);
            const r = guest(plan, s.ip, undo, { timeoutMs: 5 * 60_000 });
            process.stderr.write(printable(r.stderr));
            if (r.code !== 0) throw new Error(`${undo.join(" ")} failed in ${plan.name} (exit ${r.code})`);
            // The worker is gone and the guest has unmounted its share: now the device goes.
            if (plan.share) detachShare(plan, s, plan.share, true);
            break;
        }
        case "mount": {
            // A share the hypervisor adds to the running VM (plan.mount): mounted once; one already
            // there from the same folder is adopted, one from another folder replaced.
            const plan = planFor(step);
            const m = plan.mount;
            const s = ensureRunning(plan, Date.now() + plan.timeoutSeconds * 1000);
            if (s.mounts && s.mounts[m.guest] === m.source) {
                log(`${m.source} is already mounted at ${m.guest}`);
                break;
            }
            if (s.mounts && s.mounts[m.guest] !== undefined) unmountShare(plan, s, m);
            mountShare(plan, s, m);
            break;
        }
        case "umount": {
            const plan = planFor(step);
            const m = plan.mount;
            const s = status(plan);
            if (s.state === "absent" || s.state === "deleted" || !s.mounts || s.mounts[m.guest] === undefined) {
                log(`${m.guest} is not mounted in ${plan.name} (${s.state}); nothing to unmount`);
                break;
            }
            unmountShare(plan, s, m);
            break;
        }
        default:
            throw new Error(`unknown step ${step}`);
    }
}

module.exports = { parseMultipassInfo, parseVirshState, parseDomifaddr, runStep, cloudInitWait };
