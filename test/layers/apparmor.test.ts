/**
 * The bwrap AppArmor profile and the boot step that loads it.
 * What Debian 12's apparmor_parser (3.0.8) can check: the profile's syntax with its two AppArmor 4
 * constructs replaced (`abi <abi/4.0>` -> `abi <abi/3.0>`, the `userns,` rule dropped). What it
 * cannot: the `userns` rule itself and loading into a kernel (this one has no AppArmor), which only
 * Ubuntu 24.04's parser and kernel can — cc-sandbox-verify checks that in the VM.
 */
import * as fs from "fs";
import * as path from "path";
import { boot, guestDir, inGuest, run, tempDir } from "./guest";

const profileDir = path.join(guestDir, "etc", "apparmor.d");
const profilePath = path.join(profileDir, "cc-sandbox-bwrap");
const profile = fs.readFileSync(profilePath, "utf8");
const parserMajor = Number(/version (\d+)/.exec(run("apparmor_parser", ["--version"]).stdout)?.[1] ?? "0");

function parse(text: string): { status: number | null; out: string } {
    const dir = tempDir("cc-aa-");
    const file = path.join(dir, "profile");
    fs.writeFileSync(file, text);
    const r = run("apparmor_parser", ["--skip-kernel-load", "--skip-cache", file]);
    return { status: r.status, out: r.stdout + r.stderr };
}

const forOldParser = (text: string) => text.replace("abi <abi/4.0>,", "abi <abi/3.0>,").replace(/^\s*userns,\n/m, "");

describe("profile", () => {
    test("is written for AppArmor 4: abi 4.0, userns, unconfined, a local/ include", () => {
        expect(profile).toMatch(/^abi <abi\/4\.0>,$/m);
        expect(profile).toMatch(/^profile cc-sandbox-bwrap \/usr\/bin\/bwrap flags=\(unconfined\) \{$/m);
        expect(profile).toMatch(/^\s+userns,$/m);
        expect(profile).toMatch(/^\s+include if exists <local\/cc-sandbox-bwrap>$/m);
    });

    test("is the only profile in the guest tree attached to /usr/bin/bwrap", () => {
        const attached = fs
            .readdirSync(profileDir)
            .filter((f) => /^\s*(profile\s+\S+\s+)?\/usr\/bin\/bwrap[\s{]/m.test(fs.readFileSync(path.join(profileDir, f), "utf8")));
        expect(attached).toEqual(["cc-sandbox-bwrap"]);
    });

    test("parses with this machine's apparmor_parser", () => {
        // Parser 4+ takes the profile as it is; 3.x only without the two AppArmor 4 constructs.
        const text = parserMajor >= 4 ? profile : forOldParser(profile);
        if (parserMajor < 4) expect(text).not.toBe(profile);
        const r = parse(text);
        expect(r.out).not.toMatch(/error/i);
        expect(r.status).toBe(0);
    });

    test("a broken profile is rejected (the check can fail)", () => {
        const r = parse(forOldParser(profile).replace("flags=(unconfined) {", "flags=(unconfined) {\n  capability no_such_capability,"));
        expect(r.status).not.toBe(0);
        expect(r.out).toMatch(/no_such_capability|error/i);
    });
});

/**
 * 30-apparmor.sh against a stand-in kernel: securityfs and the userns sysctl on tmpfs, and an
 * apparmor_parser stub (first on root's PATH) that records its arguments and "loads" the profile.
 */
function apparmorBoot(opts: { restricted: boolean; parserFails?: boolean; otherProfile?: boolean; runsBwrap?: boolean; noApparmor?: boolean }): {
    status: number | null;
    calls: string;
    profiles: string;
    disabled: boolean;
    log: string;
} {
    const r = inGuest(`
        ${opts.noApparmor ? "" : "mount -t tmpfs fake-securityfs /sys/kernel/security && mkdir /sys/kernel/security/apparmor && : > /sys/kernel/security/apparmor/profiles"}
        mount -t tmpfs fake-sysctl /proc/sys/kernel
        echo ${opts.restricted ? 1 : 0} > /proc/sys/kernel/apparmor_restrict_unprivileged_userns
        cat > /usr/local/sbin/apparmor_parser <<'STUB'
#!/bin/bash
echo "$*" >> /tmp/parser.calls
[[ ! -e /tmp/parser.fails ]] || exit 1
case $1 in
  -r) echo "cc-sandbox-bwrap (unconfined)" >> /sys/kernel/security/apparmor/profiles ;;
  -R) sed -i '/^cc-sandbox-bwrap /d' /sys/kernel/security/apparmor/profiles ;;
esac
STUB
        chmod 0755 /usr/local/sbin/apparmor_parser
        ${opts.parserFails ? ": > /tmp/parser.fails" : ""}
        ${
            opts.otherProfile
                ? "printf 'abi <abi/4.0>,\\ninclude <tunables/global>\\nprofile bwrap /usr/bin/bwrap flags=(attach_disconnected) {\\n  allow userns,\\n}\\n' > /etc/apparmor.d/bwrap-userns-restrict"
                : ""
        }
        ${
            opts.runsBwrap
                ? "printf 'abi <abi/4.0>,\\ninclude <tunables/global>\\nprofile some-app /usr/bin/some-app {\\n  /usr/bin/bwrap rix,\\n  /usr/bin/bwrap {\\n}\\n}\\n' > /etc/apparmor.d/some-app"
                : ""
        }
        rc=0; PATH=/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin ${boot("30-apparmor.sh")} 2>/tmp/boot.log || rc=$?
        echo "rc=$rc"
        echo "calls=$(cat /tmp/parser.calls 2>/dev/null | tr '\\n' ';')"
        echo "profiles=$(cat /sys/kernel/security/apparmor/profiles 2>/dev/null | tr '\\n' ';')"
        echo "disabled=$([[ -L /etc/apparmor.d/disable/cc-sandbox-bwrap ]] && echo yes || echo no)"
        echo "log=$(tr '\\n' ' ' < /tmp/boot.log)"
    `);
    expect(r.stderr).toBe("");
    const field = (k: string) => new RegExp(`^${k}=(.*)$`, "m").exec(r.stdout)?.[1] ?? "";
    return {
        status: Number(field("rc")),
        calls: field("calls"),
        profiles: field("profiles"),
        disabled: field("disabled") === "yes",
        log: field("log"),
    };
}

describe("boot.d/30-apparmor.sh", () => {
    test("loads the profile with apparmor_parser -r and checks the kernel lists it", () => {
        const r = apparmorBoot({ restricted: true });
        expect(r.status).toBe(0);
        expect(r.calls).toBe("-r -W /etc/apparmor.d/cc-sandbox-bwrap;");
        expect(r.profiles).toContain("cc-sandbox-bwrap (unconfined)");
        expect(r.disabled).toBe(false);
    });

    test("steps aside when another profile is attached to /usr/bin/bwrap: never two attachments", () => {
        const r = apparmorBoot({ restricted: true, otherProfile: true });
        expect(r.status).toBe(0);
        expect(r.calls).not.toContain("-r");
        expect(r.profiles).not.toContain("cc-sandbox-bwrap");
        expect(r.disabled).toBe(true);
        expect(r.log).toMatch(/bwrap-userns-restrict already confines \/usr\/bin\/bwrap/);
    });

    test("is not put off by a profile that only runs bwrap (a rule or a child profile naming it)", () => {
        const r = apparmorBoot({ restricted: true, runsBwrap: true });
        expect(r.status).toBe(0);
        expect(r.calls).toBe("-r -W /etc/apparmor.d/cc-sandbox-bwrap;");
        expect(r.disabled).toBe(false);
    });

    test("fails the boot when the profile cannot load and user namespaces are restricted", () => {
        const r = apparmorBoot({ restricted: true, parserFails: true });
        expect(r.status).toBe(1);
        expect(r.log).toMatch(/cannot work/);
    });

    test("only warns when the profile cannot load and nothing restricts user namespaces", () => {
        const r = apparmorBoot({ restricted: false, parserFails: true });
        expect(r.status).toBe(0);
        expect(r.log).toMatch(/warning: could not load/);
    });

    test("logs and continues where the kernel has no AppArmor", () => {
        const r = apparmorBoot({ restricted: false, noApparmor: true });
        expect(r.status).toBe(0);
        expect(r.calls).toBe("");
        expect(r.log).toMatch(/AppArmor is not enabled in this kernel/);
    });
});
