/**
 * The cc-sandbox Pulumi program: stack config -> validated config -> rendered guest -> one VM.
 * Nothing is declared unless the whole config is valid.
 */
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import { ConfigError, loadConfig, missingHostFolders, rawConfigFromPulumi } from "./config/load";
import { homeDir, hostContext, isDirectory } from "./config/stack";
import { SandboxConfig } from "./config/types";
import { libvirtDriver } from "./drivers/libvirt";
import { multipass } from "./drivers/multipass";
import { Driver } from "./drivers/types";
import { renderGuest } from "./render";
import { bakedId } from "./render/baked";
import { readBaseImage } from "./render/base-image";
import { loadTemplates } from "./render/templates";
import { Sandbox } from "./sandbox";

function load(): SandboxConfig {
    try {
        const c = loadConfig(pulumi.getStack(), rawConfigFromPulumi(pulumi.runtime.allConfig()), hostContext());
        const missing = missingHostFolders(c, isDirectory);
        if (missing.length > 0) throw new ConfigError(missing);
        return c;
    } catch (err) {
        // A RunError is shown without a stack trace: the message already names every bad key.
        if (err instanceof ConfigError) throw new pulumi.RunError(err.message);
        throw err;
    }
}

const config = load();
const home = homeDir();
const driver: Driver = config.hypervisor === "multipass" ? multipass : libvirtDriver(home);
const { uid, gid } = os.userInfo();
const templates = loadTemplates();
const image = readBaseImage(driver.localImage(config), (f) => fs.readFileSync(f, "utf8"));
if (image.bakedFiles !== undefined && image.bakedFiles !== bakedId(templates)) {
    pulumi.log.warn(
        `the base image's guest files are another version's (${image.bakedFiles.slice(0, 12)}, these are ${bakedId(templates).slice(0, 12)}): ` +
            "they go in the cloud-config instead, and first boot is slower; bake the image again (npm run bake)",
    );
}
const rendered = renderGuest(config, templates, image);
const sandbox = new Sandbox(config.vm.name, {
    config,
    rendered,
    driver,
    host: { uid, gid, home },
    secrets: config.secretNames.length > 0 ? new pulumi.Config("cc-sandbox").requireSecretObject<Record<string, string>>("secrets") : undefined,
    projectSecrets: config.projects.some((p) => p.secretNames.length > 0)
        ? new pulumi.Config("cc-sandbox")
              .requireSecretObject<{ name: string; secrets?: Record<string, string> }[]>("projects")
              .apply((projects) => Object.fromEntries(projects.map((p) => [p.name, p.secrets ?? {}])))
        : undefined,
});

export const name = config.vm.name;
export const hypervisor = config.hypervisor;
export const ip = sandbox.ip;
export const state = sandbox.state;
export const sshUser = config.users.agent;
export const adminUser = config.users.admin;
export const sshCommand = sandbox.sshCommand;
export const sshConfig = sandbox.sshConfig;
export const adminSshCommand = sandbox.adminSshCommand;
/** Each project's worker (`cc-NAME`), the command that opens a shell as it, and the repository it cloned or the folder it shares. */
export const projects = sandbox.projectCommands.apply((enter) =>
    Object.fromEntries(config.projects.map((p) => [p.name, { user: p.user, uid: p.uid, enter: enter[p.name], ...(p.clone !== undefined ? { clone: p.clone } : {}), ...(p.mount !== undefined ? { mount: p.mount } : {}) }])),
);
export const codeMount = config.mounts.length > 0 ? `${config.mounts[0].host} -> ${config.mounts[0].guest}` : "";
export const mounts = config.mounts.map((m) => ({ host: m.host, guest: m.guest, readOnly: m.readOnly }));
export const allowlist = config.allowlist.domains.map((d) => (d.wildcard ? `*.${d.name}` : d.name));
/** The egress policy pushed into the guest, as `sudo cc-sandbox-firewall status` names the one in force. */
export const policy = createHash("sha256").update(rendered.allowlist).digest("hex").slice(0, 16);
