/** Multipass: argument lists for the `multipass` CLI. */
import { agentUid } from "../../config/defaults";
import { folderHash, projectStage } from "../../config/projects";
import { Mount, Project, SandboxConfig } from "../../config/types";
import { Driver, HostIdentity, MountPlan, ShareSteps, VmPlan } from "../types";

export function launchArgs(c: SandboxConfig): string[] {
    return [
        "multipass", "launch", c.vm.image,
        "--name", c.vm.name,
        "--cpus", String(c.vm.cpus),
        "--memory", `${c.vm.memoryMiB}M`,
        "--disk", `${c.vm.diskGiB}G`,
        "--timeout", String(c.vm.timeoutSeconds),
        // From stdin: the snap's confinement cannot read files under /tmp.
        "--cloud-init", "-",
    ];
}

export function sshExecArgs(c: SandboxConfig): string[] {
    // Without -n, exec maps the caller's working directory: run from inside a mounted host folder,
    // every guest command would start with an unquoted `cd <guest path>` (src/client/cli/cmd/exec.cpp).
    return ["multipass", "exec", c.vm.name, "--no-map-working-directory", "--"];
}

const projectTool = "/usr/local/sbin/cc-sandbox-project";

/**
 * A project's folder: a classic mount of Multipass's own, made into the running VM at a folder of
 * root's alone (cc-sandbox-project stage makes it first: Multipass makes what is missing its default
 * user's), its files the worker's in the guest and the developer's on the host (uid and gid maps);
 * the guest binds it at the project's place once it is pinned (add, rebind).
 */
export function projectShare(c: SandboxConfig, p: Project, host: HostIdentity): ShareSteps {
    if (p.mount === undefined) throw new Error(`project ${p.name} shares no folder`);
    const target = `${c.vm.name}:${projectStage(p.name)}`;
    return {
        attach: ["multipass", "mount", "--type", "classic", "--uid-map", `${host.uid}:${p.uid}`, "--gid-map", `${host.gid}:${p.uid}`, p.mount, target],
        detach: ["multipass", "umount", target],
        held: { guest: projectStage(p.name), source: p.mount, hash: folderHash(p.mount) },
        prepare: ["sudo", projectTool, "stage"],
        cleanup: ["sudo", projectTool, "unstage", p.name],
    };
}

export const multipass: Driver = {
    projectShare,
    // Multipass's guests are on this host's own network: the stack's key only.
    sshTarget: (c) => ({ identityFile: c.sshPrivateKeyPath, options: ["IdentitiesOnly=yes"] }),
    // A `file://` image (npm run bake's); a release name is Multipass's own download.
    localImage: (c) => (c.vm.image.startsWith("file://") ? c.vm.image.slice("file://".length) : undefined),
    vmPlan(c: SandboxConfig, metaData: string): VmPlan {
        return {
            name: c.vm.name,
            format: "multipass",
            state: ["multipass", "info", c.vm.name, "--format", "json"],
            // `instance "NAME" does not exist` (daemon.cpp); a daemon that does not answer says
            // "cannot connect to the multipass socket", with the same exit code 2.
            absent: "does not exist",
            address: ["multipass", "info", c.vm.name, "--format", "json"],
            start: ["multipass", "start", c.vm.name],
            prepare: [],
            launch: launchArgs(c),
            launchStdin: true,
            metaData,
            delete: [["multipass", "delete", "--purge", c.vm.name]],
            guestExec: sshExecArgs(c),
            // exec's own failures are "exec failed: ..." (exec.cpp), with exit 2, or 255 where the
            // client has ShellExecFail; a command's own exit status (cloud-init's 2 for "done,
            // degraded" among them) passes through without that line.
            unreachable: { codes: [2, 255], stderr: "^exec failed:" },
            recover: ["multipass", "recover", c.vm.name],
            cancelShutdown: ["multipass", "stop", "--cancel", c.vm.name],
            timeoutSeconds: c.vm.timeoutSeconds,
            // The launch but its wait. Shares are resources of their own: changing one mounts anew.
            replaceOn: launchArgs(c).filter((a, i, all) => a !== "--timeout" && all[i - 1] !== "--timeout"),
        };
    },
    mountPlan(c: SandboxConfig, m: Mount, host: HostIdentity): MountPlan {
        const target = `${c.vm.name}:${m.guest}`;
        return {
            guest: m.guest,
            source: m.host,
            mount: [
                "multipass", "mount", "--type", "classic",
                "--uid-map", `${host.uid}:${agentUid}`,
                "--gid-map", `${host.gid}:${agentUid}`,
                m.host, target,
            ],
            umount: ["multipass", "umount", target],
            // The guest pins shared repositories' git configuration with binds inside the share
            // (cc-sandbox-shares); the share cannot be unmounted over them.
            release: ["sudo", "/usr/local/sbin/cc-sandbox-shares", "release", m.guest],
            protect: ["sudo", "/usr/local/sbin/cc-sandbox-shares", "protect", m.guest],
        };
    },
};
