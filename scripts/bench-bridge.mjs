#!/usr/bin/env zx
// Times `secure_run true` through a real secure-ops bridge (the namespace the bridge tests use):
// multiplexed over the agent's persistent connection, and with a fresh connection per call.
//   zx scripts/bench-bridge.mjs [--runs 50] [--out bench/results/bridge.json]
// Needs root, sshd and ssh. Writes medians in milliseconds, with this machine's baselines beside them.
import { argv } from 'zx'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { requireProject, root } from './lib/project.mjs'

const targetMs = 10

/** Bash that runs CMD once and prints its duration in microseconds and a space. */
const timeOnce = (cmd) => `s=\${EPOCHREALTIME/./}; ${cmd} >/dev/null || exit 1; e=\${EPOCHREALTIME/./}; printf '%d ' $((e - s))`
/** Bash that runs CMD RUNS times: one duration per line. */
const timed = (cmd, runs) => `for i in $(seq ${runs}); do ${timeOnce(cmd)}; echo; done`

function stats(micros) {
  const ms = micros.map((u) => u / 1000).sort((a, b) => a - b)
  const at = (q) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]
  const round = (x) => Math.round(x * 100) / 100
  return { runs: ms.length, medianMs: round(at(0.5)), p90Ms: round(at(0.9)), minMs: round(ms[0]), maxMs: round(ms[ms.length - 1]) }
}

function measure(bridge, user, cmd, runs) {
  const r = bridge.run(user, timed(cmd, runs))
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stderr.trim()}`)
  return stats(r.stdout.trim().split('\n').map(Number))
}

/** Times A and B alternately, RUNS of each: their stats, and the median of the differences A - B. */
function measurePairs(bridge, a, b, runs) {
  const r = bridge.run('agent', `for i in $(seq ${runs}); do ${timeOnce(a)}; ${timeOnce(b)}; echo; done`)
  if (r.status !== 0) throw new Error(`${a} / ${b} failed (${r.status}): ${r.stderr.trim()}`)
  const pairs = r.stdout.trim().split('\n').map((l) => l.trim().split(' ').map(Number))
  const diffs = stats(pairs.map(([x, y]) => x - y))
  return { a: stats(pairs.map((p) => p[0])), b: stats(pairs.map((p) => p[1])), medianDiffMs: diffs.medianMs }
}

/**
 * The floor of any multiplexed SSH call on this machine, set up beside the bridge: a second sshd on
 * 127.0.0.1:2223 with the bridge's own config, for a user whose login shell is /bin/true, so a session
 * runs nothing. It is reached through a copy of secure_run that differs only in port, user, host key
 * and control socket. What secure_run costs above it is the dispatcher.
 */
function startFloor(bridge) {
  const r = bridge.run('root', `set -euo pipefail
    d=/var/lib/cc-sandbox/bench-floor
    useradd --system --user-group --home-dir "$d" --create-home --shell /bin/true ccfloor
    usermod -p '*' ccfloor
    runuser -u ccfloor -- ssh-keygen -q -t ed25519 -N '' -C floor -f "$d/host_key"
    printf 'restrict %s\n' "$(cat /home/agent/.ssh/cc-sandbox-secure-ops.pub)" >"$d/authorized_keys"
    chown ccfloor:ccfloor "$d/authorized_keys" && chmod 600 "$d/authorized_keys"
    read -r kt kb _ <"$d/host_key.pub"; printf '[127.0.0.1]:2223 %s %s\n' "$kt" "$kb" >"$d/known_hosts"
    sed -e 's/^ListenAddress .*/ListenAddress 127.0.0.1:2223/' -e "s|^HostKey .*|HostKey $d/host_key|" \
      -e 's/^AllowUsers .*/AllowUsers ccfloor/' -e "s|^AuthorizedKeysFile .*|AuthorizedKeysFile $d/authorized_keys|" \
      -e '/^Include /d' /etc/cc-sandbox/secure-ops-sshd_config >"$d/sshd_config"
    sed -e '/^ForceCommand /d' /etc/cc-sandbox/secure-ops-sshd_common >>"$d/sshd_config"
    ! grep -q '^ForceCommand\|^Include' "$d/sshd_config"
    grep -q '^ListenAddress 127.0.0.1:2223$' "$d/sshd_config"
    sed -e 's/^port=799 owner=ccsecrets /port=2223 owner=ccfloor /' -e "s|/etc/cc-sandbox/secure-ops.known_hosts|$d/known_hosts|" \
      -e 's|secure-ops-mux|floor-mux|' /usr/local/bin/secure_run >/usr/local/bin/floor_run
    chmod 755 /usr/local/bin/floor_run
    grep -q '^port=2223 owner=ccfloor ' /usr/local/bin/floor_run
    runuser -u ccfloor -- /usr/sbin/sshd -f "$d/sshd_config" -E "$d/sshd.log"
    for i in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/2223) 2>/dev/null && exit 0; sleep 0.1; done
    echo "the floor sshd did not start: $(cat "$d/sshd.log")" >&2; exit 1`)
  if (r.status !== 0) throw new Error(`floor sshd: ${r.stderr.trim()}`)
}

/** CPU milliseconds used in the namespace (every process, reaped children included) per multiplexed call. */
function cpuPerCall(bridge, runs) {
  const total = `awk '{ sub(/^.*\\) /, ""); t += $12 + $13 + $14 + $15 } END { print t }' /proc/[0-9]*/stat`
  const r = bridge.run('root', `t0=$(${total})
    runuser -u agent -- env -i HOME=/home/agent PATH=/usr/local/bin:/usr/bin:/bin sh -c 'for i in $(seq ${runs}); do secure_run true || exit 1; done'
    t1=$(${total}); echo "$t0 $t1 $(getconf CLK_TCK)"`)
  const [t0, t1, hz] = r.stdout.trim().split(/\s+/).map(Number)
  if (r.status !== 0 || !(hz > 0)) throw new Error(`CPU measurement failed: ${r.stderr.trim()}`)
  return Math.round(((t1 - t0) * 1000 / hz / runs) * 100) / 100
}

async function main() {
  const runs = Number(argv.runs ?? 50)
  const out = path.resolve(root, argv.out ?? 'bench/results/bridge.json')
  if (!Number.isInteger(runs) || runs < 5) throw new Error('--runs must be an integer >= 5')

  const { startBridge } = requireProject('test/bridge/namespace.ts')
  const bridge = await startBridge([{ path: '/usr/bin/true' }])
  try {
    const load = os.loadavg()
    bridge.run('agent', 'secure_run true') // starts the persistent master connection
    const multiplexed = measure(bridge, 'agent', 'secure_run true', runs)
    const fresh = measure(bridge, 'agent', 'SECURE_RUN_MUX=0 secure_run true', Math.max(5, Math.floor(runs / 2)))
    // Where the multiplexed time goes, and this machine's floor for starting any process.
    const dispatcherOnly = measure(bridge, 'root',
      'SSH_ORIGINAL_COMMAND=true SSH_CLIENT="127.0.0.1 1 799" setpriv --reuid ccsecrets --regid ccsecrets --clear-groups /usr/local/lib/cc-sandbox/secure-ops-dispatch', runs)
    const muxClientOnly = measure(bridge, 'agent',
      'ssh -F /dev/null -o ControlPath=~/.ssh/secure-ops-mux/%C -p 799 -l ccsecrets -O check 127.0.0.1 2>/dev/null', runs)
    const processStart = measure(bridge, 'agent', '/bin/true', runs)
    startFloor(bridge)
    bridge.run('agent', 'floor_run')
    // Alternated call by call with secure_run, so that a drift in the machine's speed shifts both.
    const paired = measurePairs(bridge, 'secure_run true', 'floor_run', runs)
    const cpu = cpuPerCall(bridge, runs)
    const result = {
      benchmark: 'secure_run true through the secure-ops bridge (sshd on 127.0.0.1:799, forced-command dispatcher)',
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, kernel: os.release(), loadAverage1m: Math.round(load[0] * 100) / 100 },
      targetMs,
      multiplexed,
      freshConnection: fresh,
      breakdown: {
        note: 'dispatcher alone is run through setpriv; mux client alone is `ssh -O check`; process start is /bin/true; ' +
          'the floor is the same multiplexed call to an sshd whose session runs nothing (login shell /bin/true); ' +
          'the floor and secure_run are alternated call by call; dispatcherAboveFloorMs is the median of the pairs\' differences',
        multiplexedFloor: paired.b,
        multiplexedBesideFloor: paired.a,
        dispatcherAboveFloorMs: paired.medianDiffMs,
        dispatcherOnly,
        muxClientOnly,
        processStart,
      },
      // CPU time (user + system, client and server together) per multiplexed call: unlike the
      // wall-clock medians, it hardly depends on what else the machine is doing.
      cpuMsPerMultiplexedCall: cpu,
      meetsTarget: multiplexed.medianMs <= targetMs,
    }
    fs.mkdirSync(path.dirname(out), { recursive: true })
    fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n')
    console.log(`secure_run true: ${multiplexed.medianMs} ms multiplexed, ${fresh.medianMs} ms fresh connection ` +
      `(median; target ${targetMs} ms multiplexed; the same call to a session that runs nothing ${paired.b.medianMs} ms; ` +
      `${cpu} ms CPU per multiplexed call; /bin/true alone ${processStart.medianMs} ms; ` +
      `load ${result.machine.loadAverage1m}) -> ${path.relative(root, out)}`)
  } finally {
    bridge.stop()
  }
}

try {
  await main()
} catch (err) {
  console.error(`bench-bridge: ${err.message}`)
  process.exitCode = 1
}
