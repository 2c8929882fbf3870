#!/usr/bin/env zx
// Time to a ready sandbox against a bare boot of the same image, side by side in one run, and where
// the ready boot's time goes. Both VMs boot under the same libvirt, in the end-to-end test's
// namespace (test/e2e/world.ts), alternated --runs times (medians reported):
//   bare   the libvirt driver's own create step (virt-install, then `cloud-init status --wait`
//          over SSH) with a cloud-config that only names the admin user and its key
//   ready  `pulumi up` of the ci stack from nothing until it returns: the engine, the program, the
//          VM, and every guest layer installed by cloud-init
// After the last ready boot: an allowlist-only `pulumi up` (the change pushed into the running
// guest), then destroy. The breakdown of the last ready boot: the runner's phases (image, launch,
// address, cloud-init; the rest of `pulumi up` is the engine and the program), systemd-analyze,
// cloud-init's stages and its slowest modules, every boot.d step, the slowest units; and the same
// of the last bare boot, with the difference per cloud-init stage.
//   zx scripts/bench-boot.mjs [--runs 2] [--out bench/results/boot.json]
// Needs root, libvirt, QEMU, and the engine and image the e2e test builds. A figure, not a test.
import { argv } from 'zx'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { inGuest, median, ns, withCiStack } from './lib/ci-vm.mjs'
import { requireProject, root } from './lib/project.mjs'

const target = { readyVsBare: 1.3, allowlistUpSeconds: 10 }
const runs = Number(argv.runs ?? 2)
const out = path.resolve(root, argv.out ?? 'bench/results/boot.json')
const { libvirtDriver } = requireProject('src/drivers/libvirt/index.ts')
const runner = path.join(root, 'src/drivers/runner.js')

const round = (x) => Math.round(x * 10) / 10

/** Runs one lifecycle step of the driver's runner in the namespace, as the command provider would. */
function runnerStep(step, plan, input) {
  const started = Date.now()
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '-e', `require(${JSON.stringify(runner)}).runStep(${JSON.stringify(step)})`], {
    env: { ...process.env, CC_PLAN: JSON.stringify(plan) },
    input,
    encoding: 'utf8',
  })
  if (r.status !== 0) throw new Error(`${step} failed: ${r.stderr}`)
  return { seconds: (Date.now() - started) / 1000, stdout: r.stdout, stderr: r.stderr }
}

/** The runner's `timing NAME: image 0.1 s, launch 2.0 s, ...` line -> {image: 0.1, launch: 2.0, ...}. */
function phases(text) {
  const m = /timing [\w-]+: (.*)/.exec(text)
  if (!m) return {}
  return Object.fromEntries(m[1].split(', ').map((p) => { const [k, v] = p.split(' '); return [k, Number(v)] }))
}

/** systemd-analyze's "Startup finished in 1.2s (firmware) + ... = 3min 1.2s" -> seconds by part. */
function systemdParts(text) {
  const secs = (t) => t.trim().split(' ').reduce((n, p) => n + (p.endsWith('min') ? parseFloat(p) * 60 : p.endsWith('ms') ? parseFloat(p) / 1000 : parseFloat(p)), 0)
  const parts = {}
  for (const m of text.matchAll(/((?:\d+min )?[\d.]+m?s) \((\w+)\)/g)) parts[m[2]] = round(secs(m[1]))
  return parts
}

function breakdown(plan, ip) {
  const blame = inGuest(plan, ip, 'cloud-init analyze blame')
  const modules = [...blame.matchAll(/^\s*([\d.]+)s \(([^)]+)\)/gm)].map((m) => ({ module: m[2], seconds: round(Number(m[1])) })).slice(0, 10)
  const show = inGuest(plan, ip, 'cloud-init analyze show')
  const stages = Object.fromEntries([...show.matchAll(/Finished stage: \(([\w-]+)\) ([\d.]+) seconds/g)].map((m) => [m[1], round(Number(m[2]))]))
  const log = inGuest(plan, ip, 'sudo cat /var/log/cc-sandbox-boot.log')
  const steps = Object.fromEntries([...log.matchAll(/done (\d\d-[\w-]+\.sh) in ([\d.]+)s/g)].map((m) => [m[1], Number(m[2])]))
  // The runner's own lines besides its steps' start and end (whether it had systemd reload, say).
  const runnerLines = [...log.matchAll(/cc-sandbox-boot: (.*)$/gm)].map((m) => m[1]).filter((l) => !/^(start|done) \d\d-|^all steps done$/.test(l))
  const units = [...inGuest(plan, ip, 'systemd-analyze blame --no-pager | head -n 12').matchAll(/^\s*((?:\d+min )?[\d.]+m?s) (\S+)/gm)]
    .map((m) => ({ unit: m[2], seconds: round(systemdParts(`${m[1]} (x)`).x) }))
  return { systemd: systemdParts(inGuest(plan, ip, 'systemd-analyze')), cloudInitStages: stages, slowestCloudInitModules: modules, bootSteps: steps, bootRunner: runnerLines, slowestUnits: units }
}

async function main() {
  await withCiStack(async ({ world, config, readyPlan }) => {
    const bare = { ...config, vm: { ...config.vm, name: 'cc-bare' }, mounts: [] }
    const barePlan = libvirtDriver(world.home).vmPlan(bare, 'instance-id: cc-bare-1\nlocal-hostname: cc-bare\n')
    const userData = ['#cloud-config', `system_info: {default_user: {name: ${config.users.admin}}}`, 'ssh_authorized_keys:',
      ...config.sshAuthorizedKeys.map((k) => `  - ${k}`), ''].join('\n')

    const results = []
    let last = {}
    let lastBare = {}
    for (let i = 1; i <= runs; i++) {
      console.error(`run ${i}/${runs}: bare boot...`)
      const b = runnerStep('create', barePlan, userData)
      const bareIp = JSON.parse(b.stdout).ip
      const bareSystemd = systemdParts(inGuest(barePlan, bareIp, 'systemd-analyze'))
      // The same breakdown of the last bare boot: what the ready one adds is the difference.
      if (i === runs) lastBare = breakdown(barePlan, bareIp)
      runnerStep('delete', barePlan)

      console.error(`run ${i}/${runs}: ready sandbox (pulumi up of the ci stack)...`)
      const up = await world.pulumi(['up', '--yes', '--skip-preview', '-s', 'ci'])
      if (up.code !== 0) throw new Error(`pulumi up failed: ${up.stdout.slice(-2000)}`)
      const p = phases(up.stdout + up.stderr)
      results.push({ bareSeconds: round(b.seconds), readySeconds: round(up.seconds), bare: { phases: phases(b.stderr), systemd: bareSystemd }, ready: { phases: p } })
      if (i === runs) {
        const outputs = JSON.parse((await world.pulumi(['stack', 'output', '--json', '-s', 'ci'])).stdout)
        last = { engineAndProgramSeconds: round(up.seconds - (p['cloud-init'] ?? 0)), ...breakdown(readyPlan, outputs.ip) }
        const stack = fs.readFileSync(world.stackFile, 'utf8')
        fs.writeFileSync(world.stackFile, stack.replace('      - allowed.test.example\n', '      - allowed.test.example\n      - new.test.example\n'))
        const change = await world.pulumi(['up', '--yes', '--skip-preview', '-s', 'ci'])
        if (change.code !== 0) throw new Error(`pulumi up (allowlist) failed: ${change.stdout.slice(-2000)}`)
        last.allowlistUpSeconds = round(change.seconds)
      }
      const destroy = await world.pulumi(['destroy', '--yes', '--skip-preview', '-s', 'ci'])
      if (destroy.code !== 0) throw new Error(`pulumi destroy failed: ${destroy.stdout.slice(-2000)}`)
    }

    const bareMedian = median(results.map((r) => r.bareSeconds))
    const readyMedian = median(results.map((r) => r.readySeconds))
    const result = {
      measuredAt: new Date().toISOString(),
      host: { cpus: os.cpus().length, load: os.loadavg().map(round), kvm: fs.existsSync('/dev/kvm') && config.libvirt.virtType === 'kvm' },
      // The image by its build hash (the name of its cache folder), not where this machine keeps it.
      image: path.basename(fs.readlinkSync('/var/lib/cc-sandbox/ci-image')),
      boot: config.libvirt.firmware === 'uefi' ? 'uefi firmware' : 'direct kernel',
      runs: results,
      medians: { bareBootSeconds: round(bareMedian), readySeconds: round(readyMedian) },
      readyVsBare: { ratio: round((readyMedian / bareMedian) * 100) / 100, target: target.readyVsBare },
      allowlistUp: { seconds: last.allowlistUpSeconds, target: target.allowlistUpSeconds },
      lastReady: last,
      lastBare: { systemd: lastBare.systemd, cloudInitStages: lastBare.cloudInitStages, slowestCloudInitModules: lastBare.slowestCloudInitModules, slowestUnits: lastBare.slowestUnits },
      // Per cloud-init stage: what the ready boot spent beyond the bare one.
      readyMinusBareByStage: Object.fromEntries(Object.entries(last.cloudInitStages ?? {}).map(([k, v]) => [k, round(v - (lastBare.cloudInitStages?.[k] ?? 0))])),
    }
    fs.mkdirSync(path.dirname(out), { recursive: true })
    fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n')
    console.log(`bare boot to cloud-init done (median of ${runs})   ${bareMedian.toFixed(1)} s`)
    console.log(`pulumi up to a ready sandbox (median of ${runs})   ${readyMedian.toFixed(1)} s`)
    console.log(`ratio                                      ${result.readyVsBare.ratio.toFixed(2)}x (target <= ${target.readyVsBare}x)`)
    console.log(`allowlist-only pulumi up                   ${last.allowlistUpSeconds} s (target <= ${target.allowlistUpSeconds} s)`)
    console.log(`boot steps                                 ${Object.entries(last.bootSteps).map(([k, v]) => `${k} ${v}s`).join(', ')}`)
    console.log(`written to ${path.relative(root, out)}`)
  })
}

main().catch((err) => {
  console.error(`error: ${err.message}`)
  process.exitCode = 1
})
