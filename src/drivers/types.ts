/** What a driver gives the component: argument lists for the runner (src/drivers/runner.js). */
import { Mount, SandboxConfig } from "../config/types";

export interface VmPlan {
    readonly name: string;
    /** `multipass`: `state` prints multipass JSON; `virsh`: `state` prints domstate, `address` domifaddr. */
    readonly format: "multipass" | "virsh";
    readonly state: readonly string[];
    readonly address: readonly string[];
    readonly start: readonly string[];
    /** Run before launch when the VM does not exist yet (e.g. fetch the base image). */
    readonly prepare: readonly (readonly string[])[];
    /** Makes the seed before launch (`{userDataFile}`, `{metaDataFile}` as in launch). */
    readonly seed?: readonly string[];
    /** `{userDataFile}` and `{metaDataFile}` are replaced by temp files holding the seed. */
    readonly launch: readonly string[];
    /** Pipe the user-data to launch's stdin (Multipass's `--cloud-init -`). */
    readonly launchStdin: boolean;
    readonly metaData: string;
    readonly delete: readonly (readonly string[])[];
    /** Prefix that runs a command in the guest as the admin user; `{ip}` is the VM's address. */
    readonly guestExec: readonly string[];
    readonly timeoutSeconds: number;
}

export interface MountPlan {
    readonly create: readonly (readonly string[])[];
    readonly delete: readonly (readonly string[])[];
}

export interface HostIdentity {
    readonly uid: number;
    readonly gid: number;
}

export interface Driver {
    vmPlan(config: SandboxConfig, metaData: string): VmPlan;
    /** Mounts that are their own resources (Multipass); undefined where the VM definition carries them (libvirt). */
    mountPlan?(config: SandboxConfig, mount: Mount, host: HostIdentity): MountPlan;
}
