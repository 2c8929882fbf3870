/**
 * The lifecycle runner's wait for cloud-init (src/drivers/runner.js, cloudInitWait): the shell script
 * it runs in the guest, run here by a POSIX shell in a guest namespace against stand-ins for
 * cloud-init and systemctl that log each call. It hands over to cloud-init's own `status --wait`
 * (which then returns at once) when cloud-init's result appears, at once where cloud-init does not
 * run, and when one of cloud-init's units failed; otherwise it keeps waiting, without running
 * cloud-init, and asks systemd only every 5 s.
 */
import { inGuest, Run } from "./guest";
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { cloudInitWait } = require("../../src/drivers/runner.js") as { cloudInitWait: string };

/** Runs the wait (stdin: the script) for at most SECONDS after SETUP; prints rc=N and the calls. */
function wait(setup: string, seconds: number, env = ""): Run {
    return inGuest(
        `
        cat >/run/wait.sh
        mkdir -p /run/fakebin /run/cloud-init /etc/cloud
        rm -f /etc/cloud/cloud-init.disabled /run/cloud-init/* /run/calls
        printf '%s\\n' '#!/bin/sh' 'echo "cloud-init $*" >>/run/calls' 'echo "status: \${CI_STATUS:-done}"' 'exit \${CI_CODE:-0}' >/run/fakebin/cloud-init
        printf '%s\\n' '#!/bin/sh' 'echo "systemctl $*" >>/run/calls' '[ -e /run/unit-failed ]' >/run/fakebin/systemctl
        chmod +x /run/fakebin/*
        ${setup}
        rc=0
        env PATH=/run/fakebin:$PATH ${env} timeout ${seconds} sh -s </run/wait.sh || rc=$?
        echo "rc=$rc"
        echo "--- calls"
        cat /run/calls 2>/dev/null || true
        `,
        cloudInitWait,
    );
}

const calls = (r: Run) => r.stdout.split("--- calls\n")[1].split("\n").filter(Boolean);

describe("the runner's wait for cloud-init", () => {
    test("ends when cloud-init's result appears, with cloud-init's output and exit code", () => {
        const r = wait("(sleep 1.5; echo '{}' >/run/cloud-init/result.json) &", 10, "CI_STATUS=done CI_CODE=2");
        expect(r.stdout).toContain("status: done\nrc=2\n");
        // cloud-init itself once, for its verdict (its own wait returns at once); systemd not yet.
        expect(calls(r)).toEqual(["cloud-init status --wait --long"]);
    });

    test("a result there already: cloud-init's verdict at once", () => {
        const r = wait("echo '{}' >/run/cloud-init/result.json", 3, "CI_STATUS=error CI_CODE=1");
        expect(r.stdout).toContain("status: error\nrc=1\n");
    });

    test.each([
        ["the marker the runner leaves after a first boot", "touch /etc/cloud/cloud-init.disabled"],
        ["cloud-init's generator", "touch /run/cloud-init/disabled"],
    ])("cloud-init disabled by %s: cloud-init's verdict at once", (_why, setup) => {
        const r = wait(setup, 3, "CI_STATUS=disabled");
        expect(r.stdout).toContain("status: disabled\nrc=0\n");
    });

    test("a cloud-init unit that failed (no result ever comes): handed to cloud-init's own wait within 5 s", () => {
        const r = wait("touch /run/unit-failed", 10, "CI_STATUS=error CI_CODE=1");
        expect(r.stdout).toContain("status: error\nrc=1\n");
        // Its own wait judges the failure (and waits on while cloud-final still runs).
        expect(calls(r)).toEqual([expect.stringMatching(/^systemctl is-failed --quiet .*cloud-init-local\.service .*cloud-final\.service$/), "cloud-init status --wait --long"]);
    });

    test("while cloud-init runs: still waiting, no cloud-init process, systemd asked every 5 s", () => {
        const r = wait("", 7);
        expect(r.stdout).toContain("rc=124\n");
        const made = calls(r);
        expect(made.filter((c) => c.startsWith("cloud-init"))).toEqual([]);
        expect(made.filter((c) => c.startsWith("systemctl")).length).toBe(1);
    });
});
