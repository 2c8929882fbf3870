/** Multipass: argument lists for the `multipass` CLI. */
import { Mount, SandboxConfig } from "../../config/types";
import { Driver, HostIdentity, MountPlan, VmPlan } from "../types";

/** The agent user's uid and gid in the guest (created by cloud-init with this uid). */
export const agentUid = 1001;

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
    return ["multipass", "exec", c.vm.name, "--"];
}

export const multipass: Driver = {
    vmPlan(c: SandboxConfig, metaData: string): VmPlan {
        return {
            name: c.vm.name,
            format: "multipass",
            state: ["multipass", "info", c.vm.name, "--format", "json"],
            address: ["multipass", "info", c.vm.name, "--format", "json"],
            start: ["multipass", "start", c.vm.name],
            prepare: [],
            launch: launchArgs(c),
            launchStdin: true,
            metaData,
            delete: [["multipass", "delete", "--purge", c.vm.name]],
            guestExec: sshExecArgs(c),
            timeoutSeconds: c.vm.timeoutSeconds,
        };
    },
    mountPlan(c: SandboxConfig, m: Mount, host: HostIdentity): MountPlan {
        const target = `${c.vm.name}:${m.guest}`;
        return {
            create: [
                [
                    "multipass", "mount", "--type", "classic",
                    "--uid-map", `${host.uid}:${agentUid}`,
                    "--gid-map", `${host.gid}:${agentUid}`,
                    m.host, target,
                ],
            ],
            delete: [["multipass", "umount", target]],
        };
    },
};
