/**
 * The world of the Multipass test double (multipass.js): a fresh one per test (its instances in
 * world.json, every call it got in calls), and the lifecycle runner run against it, required by its
 * path as each resource's command does (src/sandbox.ts step).
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { root } from "../../helpers";

export interface Vm {
    state: string;
    deleted?: boolean;
    ip?: string | null;
    nextIp?: string;
    looksToAddress?: number;
    mounts?: Record<string, { source: string; uid?: string; gid?: string }>;
    /** The projects' stage (cc-sandbox-project stage) made; a mount under it that Multipass had to make itself. */
    stageRoot?: boolean;
    stageMadeByMultipass?: boolean;
    /** Projects whose folder the guest binds from Multipass's mount (staged: name -> its folder's hash), those bound now, and what unstage removed. */
    staged?: Record<string, string>;
    /** Projects whose folder Multipass's record holds but whose sshfs has ended in the guest (until it is mounted again). */
    sshfsEnded?: string[];
    bound?: string[];
    unstaged?: string[];
    sshfs?: boolean;
    snapStore?: boolean;
    cloudInit?: number;
    /** "refused": the guest's sudo will not touch cloud-init's marker file. */
    cloudInitMarker?: string;
    /** Set once create has marked cloud-init done (/etc/cloud/cloud-init.disabled). */
    cloudInitDisabled?: boolean;
    exec?: string;
    applied?: string;
    released?: string[];
    /** Projects whose code came in (cc-sandbox-project import), and whether an import fails. */
    imported?: string[];
    importFails?: boolean;
    /** What cc-sandbox-project export writes (a file's bytes) and its exit status; how often it ran, what remove removed. */
    exportBundle?: string;
    exportExit?: number;
    exported?: number;
    removed?: string[];
    protected?: string[];
    userData?: string;
    image?: string;
}
export interface World {
    daemon?: string;
    instances: Record<string, Vm>;
    cloudInit?: number;
    cloudInitMarker?: string;
    launchTimesOut?: boolean;
    failInfoCalls?: number[];
}

const runnerFile = path.join(root, "src/drivers/runner.js");
const fake = path.join(__dirname, "multipass.js");

/** Registers the per-test set-up; PLAN is what a step runs unless told otherwise. */
export function multipassWorld(plan: object) {
    let dir = "";
    let bin = "";
    beforeEach(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "cc-fake-mp-"));
        bin = path.join(dir, "bin");
        fs.mkdirSync(bin);
        fs.symlinkSync(fake, path.join(bin, "multipass"));
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    const world = (): World => (fs.existsSync(path.join(dir, "world.json")) ? JSON.parse(fs.readFileSync(path.join(dir, "world.json"), "utf8")) : { instances: {} });
    return {
        /** The double's folder (FAKE_MP) and the folder its `multipass` is on PATH from. */
        dirs: () => ({ dir, bin }),
        setWorld: (w: World) => fs.writeFileSync(path.join(dir, "world.json"), JSON.stringify(w)),
        world,
        vm: () => world().instances["cc-fake"],
        calls: () => (fs.existsSync(path.join(dir, "calls")) ? fs.readFileSync(path.join(dir, "calls"), "utf8").trim().split("\n") : []),
        running: (extra: Partial<Vm> = {}): Vm => ({ state: "Running", ip: "10.1.2.3", mounts: {}, sshfs: true, cloudInit: 0, exec: "ok", ...extra }),
        step(name: string, opts: { input?: string; plan?: object; env?: Record<string, string>; cwd?: string } = {}) {
            const r = spawnSync(process.execPath, ["-e", `require(${JSON.stringify(runnerFile)}).runStep(${JSON.stringify(name)});`], {
                input: opts.input ?? "",
                encoding: "utf8",
                cwd: opts.cwd,
                env: {
                    ...process.env,
                    PATH: `${bin}:${process.env.PATH}`,
                    FAKE_MP: dir,
                    CC_POLL_MS: "20",
                    CC_PLAN: JSON.stringify(opts.plan ?? plan),
                    ...opts.env,
                },
            });
            return { code: r.status, stdout: r.stdout, stderr: r.stderr };
        },
    };
}
