/**
 * The first-boot runner's one systemd reload: skipped only when systemd has loaded every unit first
 * boot wrote as it is on disk. In a guest namespace, with unit files and drop-ins in
 * /etc/systemd/system (an overlay) and a stand-in systemctl that answers `show` as told and logs
 * which units it was asked about.
 */
import { inGuest } from "./guest";

const runner = "/usr/local/lib/cc-sandbox/boot";

/** Whether the runner would skip the reload (`skip` or `reload`), and the units it asked about. */
function decide(answer: string, extra = ""): { decision: string; asked: string[] } {
    const r = inGuest(`
bin=/usr/local/lib/cc-sandbox-fake-bin; mkdir -p "$bin"
cat > "$bin/systemctl" <<'FAKE'
#!/bin/bash
shift 5 # show -p NeedDaemonReload -p LoadState
[[ $1 == -- ]] && shift
printf '%s\\n' "$@" > /run/asked
case $ANSWER in
  fail) exit 1 ;;
  stale) for u; do echo "NeedDaemonReload=$([[ $u == cc-sandbox-firewall.service ]] && echo yes || echo no)"; echo LoadState=loaded; echo; done ;;
  missing) for u; do echo NeedDaemonReload=no; echo "LoadState=$([[ $u == user@1001.service ]] && echo not-found || echo loaded)"; echo; done ;;
  *) for u; do echo NeedDaemonReload=no; echo LoadState=loaded; echo; done ;;
esac
FAKE
chmod +x "$bin/systemctl"
# systemd's generators last ran (its last load of units) before first boot wrote its files.
mkdir -p /run/systemd/generator /etc/systemd/system/extra.socket.d /etc/systemd/system/old@.service.d
touch -d '1 hour ago' /run/systemd/generator
touch -d '2 hours ago' /etc/systemd/system/old@.service.d/x.conf
touch /etc/systemd/system/extra.timer /etc/systemd/system/extra.socket.d/x.conf
ln -sf /dev/null /etc/systemd/system/masked.service
${extra}
eval "$(sed -n '/^units_loaded() {/,/^}/p' ${runner})"
export ANSWER=${answer} PATH="$bin:$PATH"
if units_loaded; then echo decision=skip; else echo decision=reload; fi
shopt -q nullglob && echo nullglob-left-on
[[ ! -f /run/asked ]] || sed 's/^/asked=/' /run/asked
`);
    if (r.status !== 0) throw new Error(`exit ${r.status}: ${r.stderr}\n${r.stdout}`);
    expect(r.stdout).not.toContain("nullglob-left-on");
    return {
        decision: /^decision=(\w+)$/m.exec(r.stdout)?.[1] ?? "",
        asked: [...r.stdout.matchAll(/^asked=(.*)$/gm)].map((m) => m[1]).sort(),
    };
}

test("no reload when every unit first boot wrote (services, other kinds, drop-ins) is loaded as on disk, and no template's drop-in is newer than systemd's last load", () => {
    const d = decide("loaded");
    expect(d.decision).toBe("skip");
    // Every unit it wrote, of every kind, and the units its drop-ins are for; not a template, not a masked one.
    expect(d.asked).toEqual(expect.arrayContaining(["cc-sandbox-firewall.service", "cc-sandbox-secure-ops.service", "cc-sandbox-shares.service", "extra.socket", "extra.timer", "user@1001.service"]));
    expect(d.asked).not.toContain("cc-sandbox-secure-ops@.service");
    expect(d.asked).not.toContain("masked.service");
});

test("a reload when one unit is stale or not found, when systemctl fails, or for a template's drop-in written since systemd's last load", () => {
    expect(decide("stale").decision).toBe("reload");
    expect(decide("missing").decision).toBe("reload");
    expect(decide("fail").decision).toBe("reload");
    expect(decide("loaded", "mkdir -p /etc/systemd/system/getty@.service.d; touch /etc/systemd/system/getty@.service.d/new.conf").decision).toBe("reload");
});

/**
 * The runner over stand-in steps (boot.d replaced in the namespace's overlay): 20-b.sh is marked
 * alongside and takes 2 s; the others record whether it had ended when they began.
 */
function runSteps(b: string, c = "exit 0"): { status: number | null; log: string; stderr: string } {
    const r = inGuest(`
d=/usr/local/lib/cc-sandbox/boot.d; rm -rf "$d"; mkdir -p "$d"
printf '%s\\n' '#!/bin/bash' 'echo a-ran' >"$d/10-a.sh"
printf '%s\\n' '#!/bin/bash' '# Beside the others:' '# boot: alongside' 'sleep 2' ${JSON.stringify(b)} 'touch /run/b-ended' >"$d/20-b.sh"
printf '%s\\n' '#!/bin/bash' '[[ -e /run/b-ended ]] && echo c-after-b || echo c-beside-b' ${JSON.stringify(c)} >"$d/30-c.sh"
printf '%s\\n' '#!/bin/bash' '[[ -e /run/b-ended ]] && echo d-after-b || echo d-beside-b' >"$d/40-d.sh"
rc=0; /usr/local/lib/cc-sandbox/boot 2>/run/stderr || rc=$?
echo "rc=$rc"; cat /var/log/cc-sandbox-boot.log; echo ---; cat /run/stderr
`);
    const [out, stderr] = r.stdout.split("\n---\n");
    return { status: Number(/^rc=(\d+)$/m.exec(out)?.[1]), log: out, stderr };
}

describe("a step marked alongside", () => {
    test("runs beside the steps after it, and is waited for before the runner is done", () => {
        const r = runSteps("echo b-ran");
        expect(r.status).toBe(0);
        expect(r.log).toMatch(/start 20-b\.sh \(beside the next steps\)/);
        expect(r.log).toContain("c-beside-b");
        expect(r.log).toContain("d-beside-b");
        expect(r.log).toContain("b-ran");
        // Its own end, with its own duration, and only then the runner's.
        expect(r.log).toMatch(/done 20-b\.sh in 2\.\ds[\s\S]*all steps done/);
        expect(r.log).toMatch(/done 40-d\.sh in [\d.]+s[\s\S]*done 20-b\.sh/);
    });

    test("its failure fails the boot once the others are done, with the log's tail", () => {
        const r = runSteps("echo b-broke; exit 3");
        expect(r.status).toBe(1);
        expect(r.log).toContain("d-beside-b");
        expect(r.log).toMatch(/FAILED 20-b\.sh after 2\.\ds/);
        expect(r.log).not.toContain("all steps done");
        expect(r.stderr).toContain("b-broke");
    });

    test("a step after it that fails stops the boot, once it has ended too", () => {
        const r = runSteps("echo b-ran", "exit 4");
        expect(r.status).toBe(1);
        expect(r.log).toMatch(/FAILED 30-c\.sh/);
        expect(r.log).not.toContain("40-d.sh");
        expect(r.log).toMatch(/done 20-b\.sh in 2\.\ds/);
        expect(r.log).not.toContain("all steps done");
    });
});
