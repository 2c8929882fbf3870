/**
 * boot.d/05-packages.sh: installs only the packages the image lacks, and reaches for the archive
 * only then. apt-get is a stub that records its calls; dpkg-query is the system's own (this
 * machine has every package the CI stack names).
 */
import { boot, inGuest } from "./guest";

/** Runs the step with CC_PACKAGES set to `packages` and a stub apt-get; prints rc and apt-get's calls. */
function packagesStep(packages: string, opts: { aptFails?: boolean } = {}) {
    return inGuest(`
        sed -i "s/^CC_PACKAGES=.*/CC_PACKAGES='${packages}'/" /etc/cc-sandbox/sandbox.env
        mkdir -p /tmp/stubs
        cat > /tmp/stubs/apt-get <<'STUB'
#!/bin/bash
echo "$*" >> /tmp/apt.calls
${opts.aptFails ? "echo 'E: Failed to fetch' >&2; exit 100" : "exit 0"}
STUB
        printf '#!/bin/bash\\n' > /tmp/stubs/sleep
        chmod 0755 /tmp/stubs/apt-get /tmp/stubs/sleep
        rc=0; PATH=/tmp/stubs:$PATH ${boot("05-packages.sh")} || rc=$?
        echo "rc=$rc"
        cat /tmp/apt.calls 2>/dev/null || true
    `);
}

describe("boot.d/05-packages.sh", () => {
    test("an image with every package installed fetches nothing: apt-get is never run", () => {
        const r = inGuest(`. /etc/cc-sandbox/sandbox.env; echo "$CC_PACKAGES"`);
        expect(r.stdout.trim().split(" ")).toEqual(expect.arrayContaining(["iptables", "ipset", "dnsmasq-base", "bubblewrap"]));
        const step = packagesStep(r.stdout.trim());
        expect(step.stdout.trim()).toBe("rc=0");
        expect(step.stderr).toMatch(/all 11 packages already installed/);
    });

    test("a missing package is installed, and only it", () => {
        const r = packagesStep("iptables cc-sandbox-absent-pkg bubblewrap");
        expect(r.stdout).toBe("rc=0\nupdate -q\ninstall -y -q --no-install-recommends cc-sandbox-absent-pkg\n");
    });

    test("an archive out of reach fails the step after three attempts, naming what is missing", () => {
        const r = packagesStep("iptables cc-sandbox-absent-pkg", { aptFails: true });
        expect(r.stdout).toBe("rc=1\n" + "update -q\n".repeat(3));
        expect(r.stderr).toMatch(/could not install cc-sandbox-absent-pkg/);
    });

    test("Node and npm for installing Claude Code are wanted only while the image lacks Claude Code at the pinned version", () => {
        const step = (claude: string) =>
            inGuest(`
                sed -i -e "s/^CC_PACKAGES=.*/CC_PACKAGES='iptables'/" -e "s/^CC_CLAUDE_INSTALL=.*/CC_CLAUDE_INSTALL=1/" \\
                  -e "s/^CC_CLAUDE_VERSION=.*/CC_CLAUDE_VERSION='2.1.331'/" -e "s/^CC_CLAUDE_PACKAGES=.*/CC_CLAUDE_PACKAGES='cc-absent-nodejs cc-absent-npm'/" /etc/cc-sandbox/sandbox.env
                mkdir -p /tmp/stubs
                printf '#!/bin/bash\\necho "$*" >> /tmp/apt.calls\\n' > /tmp/stubs/apt-get
                ${claude ? `printf '#!/bin/bash\\necho "${claude} (Claude Code)"\\n' > /tmp/stubs/claude` : "printf '#!/bin/bash\\nexit 127\\n' > /tmp/stubs/claude"}
                chmod 0755 /tmp/stubs/*
                rc=0; PATH=/tmp/stubs:$PATH ${boot("05-packages.sh")} || rc=$?
                echo "rc=$rc"; cat /tmp/apt.calls 2>/dev/null || true`);
        const baked = step("2.1.331");
        expect(baked.stdout).toBe("rc=0\n");
        expect(baked.stderr).toMatch(/Claude Code 2\.1\.331 is in the image/);
        for (const other of ["2.1.330", ""]) {
            expect(step(other).stdout).toBe("rc=0\nupdate -q\ninstall -y -q --no-install-recommends cc-absent-nodejs cc-absent-npm\n");
        }
    });

    test.each(["-oAPT::Update::Pre-Invoke::=id", "a;id", "Pkg"])("a word that is not a package name (%s) is refused before apt-get runs", (bad) => {
        const r = packagesStep(`iptables ${bad}`);
        expect(r.stdout).toBe("rc=1\n");
        expect(r.stderr).toMatch(/is not a package name/);
    });
});
