/** What a driver gives the component: argument lists for the runner (src/drivers/runner.js). */
import { Mount, Project, SandboxConfig } from "../config/types";

export interface VmPlan {
    readonly name: string;
    /** `multipass`: `state` prints multipass JSON; `virsh`: `state` prints domstate, `address` domifaddr. */
    readonly format: "multipass" | "virsh";
    readonly state: readonly string[];
    /** A regular expression on the state query's stderr that means "no such VM"; any other failure is an error, never "absent". */
    readonly absent: string;
    readonly address: readonly string[];
    readonly start: readonly string[];
    /** Run before launch when the VM does not exist yet. */
    readonly prepare: readonly (readonly string[])[];
    /** Run after prepare: fetches and verifies the base image and prints its path, `{image}` in launch. */
    readonly image?: readonly string[];
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
    /** How guestExec says it could not reach the guest (as opposed to the command's own exit status). */
    readonly unreachable: { readonly codes: readonly number[]; readonly stderr?: string };
    /** Lists every VM's name, one a line: confirms that a VM the state query calls missing is absent. */
    readonly list?: readonly string[];
    /** Brings back a VM deleted but not purged (Multipass). */
    readonly recover?: readonly string[];
    /** Cancels a shutdown the hypervisor has scheduled (Multipass's "Delayed Shutdown"). */
    readonly cancelShutdown?: readonly string[];
    readonly timeoutSeconds: number;
    /** Where the guest's console output is kept (on the hypervisor's host), named when a VM does not answer. */
    readonly consoleLog?: string;
    /**
     * Prints what tells this VM apart from another made under the same name (libvirt's domain
     * UUID): when `info` has made the VM again, what was pushed into the old one is pushed again.
     */
    readonly instance?: readonly string[];
    /** Whose VM it is: query prints the domain's description, which holds mark for this stack's VM. */
    readonly owner?: { readonly query: readonly string[]; readonly mark: string };
    /**
     * What makes a new VM, beside first boot's files: the launch arguments that shape it and the
     * base image it starts from (not how long to wait, nor how an image is fetched).
     */
    readonly replaceOn: readonly unknown[];
}

/** A folder the hypervisor shares into a running VM on its own (Multipass), checked against what the VM reports. */
export interface MountPlan {
    /** The guest path, as the VM's state lists its mounts. */
    readonly guest: string;
    /** The host folder. */
    readonly source: string;
    readonly mount: readonly string[];
    readonly umount: readonly string[];
    /** Run in the guest before umount: what the guest mounted inside the share goes first. */
    readonly release: readonly string[];
    /** Run in the guest after mount: the share's repositories protected at once, not at the next look. */
    readonly protect: readonly string[];
}

export interface HostIdentity {
    readonly uid: number;
    readonly gid: number;
}

/** How the developer (and the program's own guest commands) reach the VM over SSH. */
export interface SshTarget {
    readonly identityFile: string;
    /** ssh `-o` options, `Key=Value`, in order. */
    readonly options: readonly string[];
    /** A host to go through first: a remote libvirt host's sshd. */
    readonly jump?: {
        readonly user?: string;
        readonly host: string;
        readonly port?: number;
        /** Offered to the host, after which ssh's own defaults (the user's keys, an agent) follow. */
        readonly identityFiles: readonly string[];
        /** ssh `-o` options for this hop, `Key=Value`. */
        readonly options: readonly string[];
    };
}

export interface Driver {
    vmPlan(config: SandboxConfig, metaData: string): VmPlan;
    sshTarget(config: SandboxConfig): SshTarget;
    /** The base image's file on this machine, when it is one (image.json beside it says what it holds). */
    localImage(config: SandboxConfig): string | undefined;
    /** Mounts that are their own resources (Multipass); undefined where the VM definition carries them (libvirt). */
    mountPlan?(config: SandboxConfig, mount: Mount, host: HostIdentity): MountPlan;
    /** A project's shared folder, added to the running VM before its worker is added and taken away after it goes. */
    projectShare?(config: SandboxConfig, project: Project, host: HostIdentity): ShareSteps;
}

/**
 * Host-side commands that add a project's share to the VM and take it away. libvirt's (no `held`)
 * each do nothing when already done. Multipass's mount the folder itself, at a guest path of root's
 * alone (`held`): the runner reads the VM's mounts to tell done from not, runs `prepare` in the
 * guest before attaching and `cleanup` there after detaching; the guest then binds it in place.
 */
export interface ShareSteps {
    readonly attach: readonly string[];
    readonly detach: readonly string[];
    /** Where the hypervisor mounts the folder (`source`) in the guest, as its mounts list it; `hash` is what the guest knows the folder by (folderHash). */
    readonly held?: { readonly guest: string; readonly source: string; readonly hash: string };
    /** Run in the guest before attach: the place the folder goes made safe. */
    readonly prepare?: readonly string[];
    /** Run in the guest after detach (where the VM runs): what the hypervisor left there removed. */
    readonly cleanup?: readonly string[];
}

/**
 * The runner's steps (src/drivers/runner.js `runStep`), each with the CC_PLAN it reads. One
 * resource's create and delete steps read the same plan: mount/umount, guest/guest-undo.
 */
export interface MountStepPlan extends VmPlan {
    readonly mount: MountPlan;
}

export interface InfoStepPlan extends VmPlan {
    /** The shares the hypervisor adds (Multipass): mounted again when the VM lost one. */
    readonly mounts: readonly MountPlan[];
    /**
     * Projects' folders the hypervisor mounts itself (Multipass), by project name; `rebind` (in the
     * guest) binds each in place again after a restart and prints `unstaged NAME` for each the VM
     * lost, which is then attached again and bound.
     */
    readonly projectShares?: { readonly rebind: readonly string[]; readonly shares: Readonly<Record<string, ShareSteps>> };
}

export interface GuestStepPlan extends VmPlan {
    /** Run in the guest (through guestExec) with the step's stdin. */
    readonly command: readonly string[];
    /** What `guest-undo` runs when the resource goes. */
    readonly undo?: readonly string[];
    /**
     * A project's code: when the command prints a line `import`, the repository here is packed
     * (src/drivers/handover.js) and streamed into `command` in the guest; before the undo, what
     * `save` writes (the worker's work, a bundle) is fetched into the repository as `branch`.
     */
    readonly handover?: { readonly repository: string; readonly command: readonly string[]; readonly save: readonly string[]; readonly branch: string };
    /** A project's shared folder: attached before `command` runs, detached after the undo. */
    readonly share?: ShareSteps;
}

export interface StepPlans {
    readonly create: VmPlan;
    readonly keep: VmPlan;
    readonly delete: VmPlan;
    readonly info: InfoStepPlan;
    readonly mount: MountStepPlan;
    readonly umount: MountStepPlan;
    readonly guest: GuestStepPlan;
    readonly "guest-undo": GuestStepPlan;
}

export type RunnerStep = keyof StepPlans;

/** What the VM's state query tells: a state, an address when it has one, the shares it reports. */
export interface VmStatus {
    readonly state: string;
    readonly ip: string;
    /** Guest path -> host folder (Multipass); undefined where the hypervisor reports none. */
    readonly mounts?: Readonly<Record<string, string>>;
    readonly cpus?: number;
    readonly release?: string;
}
