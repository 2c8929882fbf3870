#!/usr/bin/env node
/*
 * A test double of the `multipass` CLI (1.15/1.16) that behaves as Multipass does, not as we would
 * like it to: the instance states and their transitions, exit codes, stderr texts and JSON shape are
 * those of canonical/multipass, each cited where it is modelled. No VM runs: the world is a JSON
 * file, $FAKE_MP/world.json, which a test sets up and reads back:
 *
 *   { "daemon": "up" | "down",
 *     "instances": { NAME: { "state": "Running" | "Stopped" | "Suspended" | "Suspending" | "Starting"
 *                              | "Restarting" | "Delayed Shutdown" | "Unknown",
 *                            "deleted": false, "ip": "10.1.2.3" | null (no address yet: "nextIp"
 *                            after "looksToAddress" more info calls),
 *                            "mounts": { GUEST: { "source": HOST, "uid": "1000:1001", "gid": ... } },
 *                            "sshfs": false, "snapStore": true, "cloudInit": 0 | 1 | 2, "cloudInitMarker": "refused",
 *                            "exec": "ok" | "unreachable" | "hang", "userData": "..." } } }
 *
 * Every call is appended to $FAKE_MP/calls (arguments joined by spaces; `cwd=DIR` for exec).
 */
"use strict";
const fs = require("fs");
const path = require("path");

const dir = process.env.FAKE_MP;
const worldFile = path.join(dir, "world.json");
const world = fs.existsSync(worldFile) ? JSON.parse(fs.readFileSync(worldFile, "utf8")) : {};
world.daemon = world.daemon || "up";
world.instances = world.instances || {};
const args = process.argv.slice(2);
fs.appendFileSync(path.join(dir, "calls"), args.join(" ") + (args[0] === "exec" ? ` cwd=${process.cwd()}` : "") + "\n");

const save = () => fs.writeFileSync(worldFile, JSON.stringify(world, null, 2));
function fail(code, text) {
    process.stderr.write(text.endsWith("\n") ? text : text + "\n");
    save();
    process.exit(code);
}
// include/multipass/cli/return_codes.h: Ok = 0, CommandLineError = 1, CommandFail = 2.
const CommandLineError = 1;
const CommandFail = 2;
// include/multipass/cli/command.h, Command::dispatch: an unreachable daemon (gRPC UNAVAILABLE) is
// rewritten to NOT_FOUND "cannot connect to the multipass socket", which return_code_for
// (src/client/common/client_common.cpp) maps to CommandFail (2), not DaemonFail.
function needDaemon(cmd) {
    if (world.daemon !== "up") {
        if (world.daemon === "down" && (world.failInfoCalls || []).length) world.daemon = "up";
        fail(CommandFail, `${cmd} failed: cannot connect to the multipass socket\nPlease ensure multipassd is running and '/var/snap/multipass/common/multipass_socket' is accessible`);
    }
}
// src/daemon/daemon.cpp, require_existing_instances_reaction: {NOT_FOUND, "instance \"{}\" does not exist"},
// wrapped by grpc_status_for in "The following errors occurred:".
const missing = (cmd, name) => fail(CommandFail, `${cmd} failed: The following errors occurred:\ninstance "${name}" does not exist`);

function option(name) {
    const i = args.indexOf(name);
    return i < 0 ? undefined : args[i + 1];
}

const cmd = args[0];
switch (cmd) {
    case "version": {
        // src/client/cli/cmd/version.cpp: always exits 0; the multipassd entry is there only when the
        // daemon answered (JsonFormatter::format(VersionReply)).
        const v = { multipass: "1.16.1", ...(world.daemon === "up" ? { multipassd: "1.16.1" } : {}) };
        process.stdout.write(args.includes("json") ? JSON.stringify(v, null, 4) + "\n" : `multipass   1.16.1\n${v.multipassd ? "multipassd  1.16.1\n" : ""}`);
        break;
    }
    case "get": {
        needDaemon("get");
        if (args[1] === "local.driver") process.stdout.write(`${world.driver || "qemu"}\n`);
        else fail(CommandFail, `get failed: Unrecognized settings key: '${args[1]}'`);
        break;
    }
    case "info": {
        // A daemon that misses a call now and then: world.failInfoCalls lists which (1-based).
        world.infoCalls = (world.infoCalls || 0) + 1;
        if ((world.failInfoCalls || []).includes(world.infoCalls)) world.daemon = "down";
        needDaemon("info");
        const name = args[1];
        const vm = world.instances[name];
        if (!vm) missing("info", name);
        // json_formatter.cpp generate_instance_details, daemon.cpp populate_instance_info and
        // runtime_instance_info_helper.cpp: runtime fields only while running; numbers the daemon
        // reads from the guest are strings; a running instance without an address shows "N/A".
        const running = !vm.deleted && vm.state === "Running";
        const mounts = {};
        for (const [guest, m] of Object.entries(vm.mounts || {})) {
            mounts[guest] = { gid_mappings: [m.gid || "1000:default"], source_path: m.source, uid_mappings: [m.uid || "1000:default"] };
        }
        const info = {
            cpu_count: running ? "2" : "",
            disks: { sda1: running ? { total: "5116440064", used: "2020372480" } : {} },
            image_hash: "f1e2d3",
            image_release: "24.04 LTS",
            ipv4: running ? (vm.ip ? [vm.ip] : ["N/A"]) : [],
            load: running ? [0.1, 0.2, 0.3] : [],
            memory: running ? { total: 2035261440, used: 323129344 } : {},
            mounts,
            release: running ? "Ubuntu 24.04 LTS" : "",
            snapshot_count: "0",
            state: vm.deleted ? "Deleted" : vm.state,
        };
        process.stdout.write(JSON.stringify({ errors: [], info: { [name]: info } }, null, 4) + "\n");
        // Transitions the daemon finishes by itself between two looks.
        if (vm.state === "Suspending") vm.state = "Suspended";
        else if (vm.state === "Starting" || vm.state === "Restarting") vm.state = "Running";
        else if (running && !vm.ip && vm.nextIp && --vm.looksToAddress <= 0) vm.ip = vm.nextIp;
        break;
    }
    case "launch": {
        needDaemon("launch");
        const name = option("--name");
        // daemon.cpp create_vm, require_missing_instances_reaction: a deleted instance still holds its name.
        if (world.instances[name]) fail(CommandFail, `launch failed: instance "${name}" already exists`);
        // default_vm_image_vault.cpp fetch_image: a local image (file://) must exist.
        const image = args[1];
        if (image.startsWith("file://") && !fs.existsSync(new URL(image).pathname)) {
            fail(CommandFail, `launch failed: Custom image \`${new URL(image).pathname}\` does not exist.`);
        }
        const userData = option("--cloud-init") === "-" ? fs.readFileSync(0, "utf8") : "";
        world.instances[name] = {
            state: "Running", deleted: false, ip: null, nextIp: world.nextIp || "10.1.2.3", mounts: {},
            // cloud-init ran `snap install multipass-sshfs` while the guest could still reach the store.
            sshfs: /snap install multipass-sshfs/.test(userData), snapStore: false,
            cloudInit: world.cloudInit ?? 0, cloudInitMarker: world.cloudInitMarker, exec: "ok", userData, image,
        };
        // common_cli.cpp make_timer: the client's --timeout ends the command with exit 5, while the
        // daemon goes on with the instance.
        if (world.launchTimesOut) fail(5, "Timed out waiting for instance launch.");
        break;
    }
    case "start": {
        needDaemon("start");
        const name = args[1];
        const vm = world.instances[name];
        // daemon.cpp Daemon::start and src/client/cli/cmd/start.cpp (deleted_error_fmt).
        if (!vm) fail(CommandFail, `start failed: instance(s) missing\nInstance '${name}' does not exist.`);
        if (vm.deleted) fail(CommandFail, `start failed: instance(s) missing\nInstance '${name}' is deleted. Use 'recover' to recover it or 'purge' to permanently delete it.`);
        if (vm.state === "Unknown") fail(CommandFail, `start failed: The following errors occurred:\nCannot start the instance '${name}' while in unknown state`);
        vm.state = "Running";
        vm.ip = vm.ip || vm.nextIp || "10.1.2.3";
        // daemon.cpp async_wait_for_ssh_and_start_mounts_for: no sshfs -> the command fails (the VM
        // stays up, the mount stays configured); any other failure drops the mount for good, with
        // only a warning, and start succeeds.
        for (const [guest, m] of Object.entries(vm.mounts)) {
            if (!vm.sshfs) fail(CommandFail, `start failed: The following errors occurred:\nError enabling mount support in '${name}'\n\nPlease install the 'multipass-sshfs' snap manually inside the instance.`);
            if (!fs.existsSync(m.source)) {
                process.stderr.write(`Removing mount "${guest}" from '${name}': Mount source path "${m.source}" does not exist.\n`);
                delete vm.mounts[guest];
            }
        }
        break;
    }
    case "stop": {
        needDaemon("stop");
        const name = args[args.length - 1];
        const vm = world.instances[name];
        if (!vm) missing("stop", name);
        if (args.includes("--cancel")) {
            if (vm.state === "Delayed Shutdown") vm.state = "Running";
        } else vm.state = "Stopped";
        break;
    }
    case "recover": {
        // daemon.cpp Daemon::recover: back to operative, stopped, mounts restored from the spec.
        needDaemon("recover");
        const vm = world.instances[args[1]];
        if (!vm) fail(CommandFail, `recover failed: The following errors occurred:\ninstance "${args[1]}" does not exist`);
        if (vm.deleted) {
            vm.deleted = false;
            vm.state = "Stopped";
        }
        break;
    }
    case "delete": {
        // daemon.cpp Daemon::delete_vm: without --purge the instance is shut down and kept, "Deleted".
        needDaemon("delete");
        const name = args[args.length - 1];
        const vm = world.instances[name];
        if (!vm) missing("delete", name);
        if (args.includes("--purge")) delete world.instances[name];
        else Object.assign(vm, { deleted: true, state: "Stopped" });
        break;
    }
    case "mount": {
        // src/client/cli/cmd/mount.cpp Mount::parse_args validates the source on the client (exit 1);
        // daemon.cpp Daemon::mount: missing or deleted instance, "already mounted", sshfs_error_template.
        const [source, target] = args.slice(-2);
        if (!fs.existsSync(source)) fail(CommandLineError, `Source path "${source}" does not exist`);
        needDaemon("mount");
        const [name, guest] = target.split(":");
        const vm = world.instances[name];
        if (!vm || vm.deleted) fail(CommandFail, `mount failed: The following errors occurred:\ninstance '${name}' does not exist`);
        if (vm.mounts[guest]) fail(CommandFail, `mount failed: The following errors occurred:\n"${guest}" is already mounted in '${name}'`);
        if (vm.state === "Running" && !vm.sshfs) {
            // sshfs_mount_handler.cpp install_sshfs_for: `sudo snap install multipass-sshfs` in the guest.
            if (!vm.snapStore) fail(CommandFail, `mount failed: Error enabling mount support in '${name}'\n\nPlease install the 'multipass-sshfs' snap manually inside the instance.`);
            vm.sshfs = true;
        }
        // sshfs_mount.cpp make_sftp_server: what is missing of the target is made the default user's.
        if (guest.startsWith("/srv/cc-projects/.host/") && !vm.stageRoot) vm.stageMadeByMultipass = true;
        vm.mounts[guest] = { source, uid: option("--uid-map"), gid: option("--gid-map") };
        vm.sshfsEnded = (vm.sshfsEnded || []).filter((n) => guest !== `/srv/cc-projects/.host/${n}`);
        break;
    }
    case "umount": {
        needDaemon("umount");
        const [name, guest] = args[1].split(":");
        const vm = world.instances[name];
        if (!vm || vm.deleted) fail(CommandFail, `umount failed: The following errors occurred:\ninstance '${name}' does not exist`);
        if (!vm.mounts[guest]) fail(CommandFail, `umount failed: The following errors occurred:\npath "${guest}" is not mounted in '${name}'`);
        delete vm.mounts[guest];
        break;
    }
    case "exec": {
        needDaemon("exec");
        const name = args[1];
        const sep = args.indexOf("--");
        const flags = args.slice(2, sep);
        const command = args.slice(sep + 1);
        const vm = world.instances[name];
        if (!vm) missing("exec", name);
        // daemon.cpp require_operative_instances_reaction.
        if (vm.deleted) fail(CommandFail, `exec failed: The following errors occurred:\ninstance "${name}" is deleted`);
        // src/client/cli/cmd/exec.cpp: a stopped instance is started first (run_cmd_and_retry).
        if (vm.state === "Stopped" || vm.state === "Suspended") vm.state = "Running";
        // Exec::exec_success: any failure to connect or run is "exec failed: ..." with exit 2.
        if (vm.exec === "unreachable") fail(CommandFail, "exec failed: ssh connection failed: 'Connection refused'");
        // Newer clients (return_codes.h with ShellExecFail = 255) exit 255 with the same line.
        if (vm.exec === "unreachable255") fail(255, "exec failed: [ssh client] channel creation failed");
        if (vm.exec === "hang") {
            Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3_600_000);
        }
        // exec.cpp: unless -n/--no-map-working-directory, a cwd inside a mount's source becomes
        // `cd <target>/<rest>` before the command, joined unquoted-safe only for simple paths.
        if (!flags.includes("-n") && !flags.includes("--no-map-working-directory")) {
            for (const [guest, m] of Object.entries(vm.mounts)) {
                const rel = path.relative(m.source, process.cwd());
                if (!rel.startsWith("..") && !path.isAbsolute(rel)) {
                    fail(1, `bash: line 1: cd: ${path.join(guest, rel)}: No such file or directory`);
                }
            }
        }
        const line = command.join(" ");
        // The runner's wait for cloud-init: a shell script on stdin that ends in `status --long`.
        if (line === "sh -s" && /^exec cloud-init status --wait --long$/m.test(fs.readFileSync(0, "utf8"))) {
            // With the marker file, cloud-init reports "disabled" (exit 0), whatever its last run did.
            if (vm.cloudInitDisabled) {
                process.stdout.write("status: disabled\n");
                process.exit(0);
            }
            process.stdout.write("status: done\n");
            save();
            process.exit(vm.cloudInit || 0);
        } else if (line === "sudo -n touch /etc/cloud/cloud-init.disabled") {
            if (vm.cloudInitMarker === "refused") fail(1, "sudo: a password is required");
            vm.cloudInitDisabled = true;
        } else if (line.startsWith("sudo tail")) {
            process.stdout.write("Traceback: module apt failed (guest log tail)\n");
        } else if (line === "sudo /usr/local/sbin/cc-sandbox-firewall apply -") {
            vm.applied = fs.readFileSync(0, "utf8");
        } else if (line.startsWith("sudo /usr/local/sbin/cc-sandbox-shares release ")) {
            vm.released = (vm.released || []).concat(command[command.length - 1]);
        } else if (line.startsWith("sudo /usr/local/sbin/cc-sandbox-shares protect ")) {
            vm.protected = (vm.protected || []).concat(command[command.length - 1]);
        } else if (line === "sudo /usr/local/sbin/cc-sandbox-project stage") {
            // cc-sandbox-project stage: the projects' stage made root's before Multipass mounts under it.
            vm.stageRoot = true;
        } else if (line.startsWith("sudo /usr/local/sbin/cc-sandbox-project unstage ")) {
            const name = command[command.length - 1];
            if (vm.mounts[`/srv/cc-projects/.host/${name}`]) fail(1, `cc-sandbox-project: error: /srv/cc-projects/.host/${name} is still mounted: the host unmounts it first`);
            vm.unstaged = (vm.unstaged || []).concat(name);
        } else if (line === "sudo /usr/local/sbin/cc-sandbox-project rebind") {
            // cc-sandbox-project rebind: each staged project's folder bound again where Multipass
            // mounted it; `unstaged NAME HASH` (its folder's, as add was told) for each it has not.
            for (const [name, hash] of Object.entries(vm.staged || {})) {
                if (vm.mounts[`/srv/cc-projects/.host/${name}`] && !(vm.sshfsEnded || []).includes(name)) vm.bound = [...new Set([...(vm.bound || []), name])];
                else process.stdout.write(`unstaged ${name} ${hash}\n`);
            }
        } else if (line.startsWith("sudo /usr/local/sbin/cc-sandbox-project add ")) {
            // cc-sandbox-project: a clone project whose code has not come asks for it on stdout; a
            // staged one binds the folder Multipass mounted for it, and fails without it.
            const spec = fs.readFileSync(0, "utf8");
            const name = command[3];
            const staged = /^mount p-[a-z0-9-]+ staged ([0-9a-f]{16})$/m.exec(spec);
            if (staged) {
                if (!vm.mounts[`/srv/cc-projects/.host/${name}`]) fail(1, `cc-sandbox-project: the host's folder is not mounted at /srv/cc-projects/.host/${name}`);
                vm.staged = { ...(vm.staged || {}), [name]: staged[1] };
                vm.bound = [...new Set([...(vm.bound || []), name])];
            }
            if (/^clone yes$/m.test(spec) && !(vm.imported || []).includes(name)) process.stdout.write("import\n");
        } else if (line.startsWith("sudo /usr/local/sbin/cc-sandbox-project import ")) {
            const name = command[command.length - 1];
            if (vm.importFails) fail(1, `cc-sandbox-project: error: project ${name}: its code did not come in`);
            fs.writeFileSync(path.join(dir, `import-${name}.tar`), fs.readFileSync(0));
            vm.imported = (vm.imported || []).concat(name);
        } else if (line.startsWith("sudo /usr/local/sbin/cc-sandbox-project export ")) {
            vm.exported = (vm.exported || 0) + 1;
            save();
            if (vm.exportBundle) process.stdout.write(fs.readFileSync(vm.exportBundle));
            process.exit(vm.exportExit ?? 0);
        } else if (line.startsWith("sudo /usr/local/sbin/cc-sandbox-project remove ")) {
            const name = command[command.length - 1];
            vm.removed = (vm.removed || []).concat(name);
            if (vm.staged) delete vm.staged[name];
            vm.bound = (vm.bound || []).filter((n) => n !== name);
        } else if (line === "sudo false") {
            fail(1, "");
        } else {
            fail(99, `unexpected exec: ${line}`);
        }
        break;
    }
    default:
        fail(CommandLineError, `Unknown command: '${cmd}'`);
}
save();
