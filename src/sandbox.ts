/**
 * The Sandbox component: one VM, its mounts, and the allowlist pushed into it, wired to
 * @pulumi/command through the lifecycle runner. Decisions live in the drivers and the renderer;
 * this file only connects them.
 */
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as path from "path";
import { projectSpec } from "./config/projects";
import { SandboxConfig } from "./config/types";
import { hasBridge, RenderedGuest } from "./render";
import { Driver, GuestStepPlan, HostIdentity, RunnerStep, ShareSteps, StepPlans, VmPlan } from "./drivers/types";
import { sshArgv, sshConfigBlock } from "./drivers/ssh";
import { shellQuote } from "./shell";

export interface SandboxArgs {
    readonly config: SandboxConfig;
    readonly rendered: RenderedGuest;
    readonly driver: Driver;
    readonly host: HostIdentity & { readonly home: string };
    /** Values of the secrets `config.secretNames` lists (a secret output: encrypted in state). */
    readonly secrets?: pulumi.Input<Record<string, string>>;
    /** Values of each project's secrets (`projects[].secretNames`), by project name. */
    readonly projectSecrets?: pulumi.Input<Record<string, Record<string, string>>>;
}

/**
 * The lifecycle runner goes to every command by its path (CC_RUNNER), not by its text: editing it
 * changes no resource's inputs, so nothing runs again for it. A resource whose stored path is gone
 * (the checkout moved) finds it in the project's folder, where the command provider runs.
 */
export const runnerPath = path.join(__dirname, "drivers", "runner.js");
export const step = (name: RunnerStep) =>
    `const fs = require("fs"), stored = process.env.CC_RUNNER || "";\n` +
    `require(fs.existsSync(stored) ? stored : require("path").resolve("src/drivers/runner.js")).runStep(${JSON.stringify(name)});\n`;
const node = ["node", "-e"];
/** A resource's CC_PLAN and where its runner is. */
const runnerEnv = (plan: unknown) => ({ CC_PLAN: JSON.stringify(plan), CC_RUNNER: runnerPath });
const secureOpsTool = "/usr/local/sbin/cc-sandbox-secure-ops";
const projectTool = "/usr/local/sbin/cc-sandbox-project";

/** What forces a new VM: anything first boot installs, and what the driver says shapes the VM. The allowlist is not here. */
export function replaceTriggers(plan: VmPlan, firstBootHash: string): unknown[] {
    return [firstBootHash, ...plan.replaceOn];
}

export class Sandbox extends pulumi.ComponentResource {
    public readonly vm: command.local.Command;
    public readonly ip: pulumi.Output<string>;
    public readonly state: pulumi.Output<string>;
    public readonly sshCommand: pulumi.Output<string>;
    public readonly sshConfig: pulumi.Output<string>;
    /** The admin's login (the stack's key, the same way in): what runs the guest's root tools. */
    public readonly adminSshCommand: pulumi.Output<string>;
    /** Each project's way in: a login shell as its worker, through the admin's sudo. */
    public readonly projectCommands: pulumi.Output<Record<string, string>>;
    public readonly allowlist: command.local.Command;
    public readonly mounts: command.local.Command[];
    public readonly secureOps: command.local.Command;
    public readonly secrets: command.local.Command[];
    public readonly projects: command.local.Command[];
    /** The projects' own bridges (for the projects with secureOps or secrets), and their secrets. */
    public readonly projectBridges: command.local.Command[];
    public readonly projectSecrets: command.local.Command[];

    constructor(name: string, args: SandboxArgs, opts?: pulumi.ComponentResourceOptions) {
        super("cc-sandbox:index:Sandbox", name, {}, opts);
        const { config: c, rendered, driver, host } = args;
        const plan: StepPlans["create"] & StepPlans["delete"] & StepPlans["keep"] = driver.vmPlan(c, rendered.metaData);
        const mountPlans = driver.mountPlan ? c.mounts.map((m) => driver.mountPlan!(c, m, host)) : [];

        this.vm = new command.local.Command(
            `${name}-vm`,
            {
                interpreter: node,
                create: step("create"),
                // Only an in-place file (allowlist, bridge scripts) can change the user-data without
                // changing the triggers; their own resources push them, the VM is left alone.
                update: step("keep"),
                delete: step("delete"),
                stdin: rendered.userData,
                environment: runnerEnv(plan),
                triggers: replaceTriggers(plan, rendered.firstBootHash),
            },
            // A VM name can exist only once: the old VM goes before the new one is made.
            { parent: this, deleteBeforeReplace: true },
        );

        this.mounts = mountPlans.map((mp, i) => {
            const mountStep: StepPlans["mount"] & StepPlans["umount"] = { ...plan, mount: mp };
            return new command.local.Command(
                `${name}-mount-${c.mounts[i].tag}`,
                {
                    interpreter: node,
                    create: step("mount"),
                    delete: step("umount"),
                    environment: runnerEnv(mountStep),
                    triggers: [this.vm.stdout],
                },
                { parent: this, dependsOn: [this.vm], deleteBeforeReplace: true },
            );
        });
        // Projects' folders: libvirt attaches a device, Multipass mounts the folder itself (where the
        // guest binds it from, and where every run checks it is still there after a restart).
        const shares: Record<string, ShareSteps> = {};
        for (const p of c.projects) {
            if (p.mount === undefined) continue;
            if (!driver.projectShare) throw new Error(`projects ${p.name}: this hypervisor cannot add a shared folder to a running VM`);
            shares[p.name] = driver.projectShare(c, p, host);
        }
        const held = Object.fromEntries(Object.entries(shares).filter(([, s]) => s.held !== undefined));
        const infoStep: StepPlans["info"] = {
            ...plan,
            mounts: mountPlans,
            ...(Object.keys(held).length > 0 ? { projectShares: { rebind: ["sudo", projectTool, "rebind"], shares: held } } : {}),
        };
        const info = command.local.runOutput(
            {
                interpreter: node,
                command: step("info"),
                stdin: rendered.userData,
                environment: {
                    ...runnerEnv(infoStep),
                    CC_DRY_RUN: pulumi.runtime.isDryRun() ? "1" : "0",
                    // Only to order this after the VM exists.
                    CC_VM: this.vm.stdout,
                },
            },
            { parent: this },
        );
        const parsed = info.stdout.apply((s) => JSON.parse(s) as { state: string; ip: string; instance?: string });
        this.ip = parsed.apply((p) => p.ip);
        this.state = parsed.apply((p) => p.state);
        // A VM made again behind Pulumi's back (info makes it) is another instance: the resources
        // below see a new value and run their create again (an update, never their undo).
        const instance = parsed.apply((p) => p.instance ?? "");

        // What changes in place on the running guest: each runs again with its new stdin, and on a
        // new VM (triggers).
        const inGuest = (
            suffix: string,
            stdin: pulumi.Input<string>,
            argv: string[],
            undo?: string[],
            after: pulumi.Resource[] = [],
            extra: { handover?: GuestStepPlan["handover"]; share?: GuestStepPlan["share"]; replaceOn?: unknown[] } = {},
        ) => {
            const { handover, share } = extra;
            const guestStep: StepPlans["guest"] & StepPlans["guest-undo"] = {
                ...plan,
                command: ["sudo", ...argv],
                undo: undo ? ["sudo", ...undo] : undefined,
                ...(handover ? { handover } : {}),
                ...(share ? { share } : {}),
            };
            return new command.local.Command(
                `${name}-${suffix}`,
                {
                    interpreter: node,
                    create: step("guest"),
                    ...(undo ? { delete: step("guest-undo") } : {}),
                    stdin,
                    environment: { ...runnerEnv(guestStep), CC_INSTANCE: instance },
                    triggers: [this.vm.stdout, ...(extra.replaceOn ?? [])],
                },
                // Replaced (a new VM), the old one's undo runs before the new one's create, never
                // after it in the same guest.
                { parent: this, dependsOn: [this.vm, ...this.mounts, ...after], deleteBeforeReplace: !!undo },
            );
        };
        this.allowlist = inGuest("allowlist", rendered.allowlist, ["/usr/local/sbin/cc-sandbox-firewall", "apply", "-"]);
        this.secureOps = inGuest("secure-ops", rendered.secureOps, [secureOpsTool, "apply", "-"]);
        // A secret's value travels only on stdin, as a secret: never in argv, the seed or a log.
        const values = pulumi.secret(pulumi.output(args.secrets ?? {}));
        this.secrets = c.secretNames.map((secret) =>
            inGuest(
                `secret-${secret}`,
                values.apply((v) => v[secret] ?? ""),
                [secureOpsTool, "install-secret", secret],
                [secureOpsTool, "remove-secret", secret],
            ),
        );

        // Each project's worker comes and goes with its own resource: in place, the others untouched.
        // Its egress is in the allowlist's plan, applied first: the setup hook already runs under it.
        // So is its own bridge, with its secrets, where it has one: setup may use it, and cleanup (the
        // worker goes first) still can. A project with a clone gets its repository streamed in from
        // this machine once its worker exists.
        const projectValues = pulumi.secret(pulumi.output(args.projectSecrets ?? {}));
        this.projectBridges = [];
        this.projectSecrets = [];
        this.projects = c.projects.map((p) => {
            const tool = [secureOpsTool, "--project", p.name];
            // Named apart from the projects' own resources (a project may be called web-secure-ops);
            // project names hold no ".", so bridge-P.SECRET is one project's secret alone.
            const bridge = hasBridge(p) ? inGuest(`bridge-${p.name}`, rendered.projectSecureOps[p.name], [...tool, "apply", "-"], [...tool, "purge"], [this.allowlist]) : undefined;
            const secrets = bridge
                ? p.secretNames.map((secret) =>
                      inGuest(`bridge-${p.name}.${secret}`, projectValues.apply((v) => v[p.name]?.[secret] ?? ""), [...tool, "install-secret", secret], [...tool, "remove-secret", secret], [bridge]),
                  )
                : [];
            if (bridge) this.projectBridges.push(bridge);
            this.projectSecrets.push(...secrets);
            return inGuest(
                `project-${p.name}`,
                projectSpec(p, shares[p.name]?.held !== undefined),
                [projectTool, "add", p.name, String(p.uid), "-"],
                [projectTool, "remove", p.name],
                [this.allowlist, ...(bridge ? [bridge] : []), ...secrets],
                {
                    handover:
                        p.clone !== undefined
                            ? { repository: p.clone, command: ["sudo", projectTool, "import", p.name], save: ["sudo", projectTool, "export", p.name], branch: `cc-sandbox/${p.name}` }
                            : undefined,
                    // A shared folder is added to the VM before the worker, and taken away
                    // after it. Another folder is another project: the old one removed first.
                    share: shares[p.name],
                    replaceOn: p.mount !== undefined ? [`mount ${p.mount}`] : [],
                },
            );
        });

        const ssh = driver.sshTarget(c);
        this.sshCommand = this.ip.apply((ip) => sshArgv(ssh, c.users.agent, ip).map(shellQuote).join(" "));
        this.sshConfig = this.ip.apply((ip) => sshConfigBlock(c.vm.name, ssh, c.users.agent, ip));
        this.adminSshCommand = this.ip.apply((ip) => sshArgv(ssh, c.users.admin, ip).map(shellQuote).join(" "));
        this.projectCommands = this.ip.apply((ip) =>
            Object.fromEntries(
                c.projects.map((p) => {
                    const argv = sshArgv(ssh, c.users.admin, ip);
                    return [p.name, [...argv.slice(0, -1), "-t", argv[argv.length - 1], "--", "sudo", projectTool, "enter", p.name].map(shellQuote).join(" ")];
                }),
            ),
        );
        this.registerOutputs({ ip: this.ip, state: this.state, sshCommand: this.sshCommand, sshConfig: this.sshConfig, adminSshCommand: this.adminSshCommand, projects: this.projectCommands });
    }
}
