#!/usr/bin/env zx
// What one more project costs, against what one more VM costs, side by side in one run:
//   project  the guest memory a project's worker takes once its egress is in the allowlist in
//            force (`cc-sandbox-firewall apply`), it is added (`cc-sandbox-project add`, which
//            brings in its loopback rules) and an entered session of it holds an idle shell:
//            MemTotal - MemAvailable in the ready ci sandbox after the page cache is dropped, with
//            --per projects added at once (the difference divided by them), then removed again
//   vm       the resident memory (VmRSS) of the QEMU process of that same sandbox VM, idle: what one
//            more sandbox of the same image and size (a VM per project) takes on the host
// The VM runs in the end-to-end test's namespace (test/e2e/world.ts); the two sides are sampled
// alternately --rounds times and the medians compared.
//   zx scripts/bench-projects.mjs [--rounds 5] [--per 3] [--out bench/results/projects.json]
// Needs root, libvirt, QEMU, and the engine and image the e2e test builds. A figure, not a test.
import { argv } from 'zx'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { inGuest as guest, median, withCiStack } from './lib/ci-vm.mjs'
import { requireProject, root } from './lib/project.mjs'

const target = { projectVsVm: 0.05 }
const rounds = Number(argv.rounds ?? 5)
const per = Number(argv.per ?? 3)
const out = path.resolve(root, argv.out ?? 'bench/results/projects.json')
const { projectUid } = requireProject('src/config/projects.ts')
const { renderEgressPlan } = requireProject('src/render/egress.ts')

const round = (x) => Math.round(x * 10) / 10
const sleep = (s) => new Promise((res) => setTimeout(res, s * 1000))

/** A command in the guest as the admin; fails on a non-zero exit. */
const inGuest = (plan, ip, command, input = '') => guest(plan, ip, command, { input, check: true })

/** An entered session of project NAME (the project's `enter`, kept open from the host) running an idle shell. */
function idleSession(plan, ip, name, ns) {
  const argv = [...plan.guestExec.map((a) => a.replace('{ip}', ip)), `sudo cc-sandbox-project enter ${name} -- bash -c 'sleep 100000; :'`]
  return spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: 'ignore' })
}

/** The guest's used memory in MiB (MemTotal - MemAvailable) once its page cache is dropped. */
function guestUsedMiB(plan, ip) {
  const text = inGuest(plan, ip, "sudo sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches; sleep 2; cat /proc/meminfo'")
  const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)[1])
  return (kb('MemTotal') - kb('MemAvailable')) / 1024
}

/** VmRSS in MiB of the QEMU process that runs the domain NAME. */
function qemuRssMiB(name) {
  const pids = spawnSync('pgrep', ['-f', `guest=${name},`], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean)
  if (pids.length !== 1) throw new Error(`expected one QEMU process for ${name}, found ${pids.length}`)
  const status = fs.readFileSync(`/proc/${pids[0]}/status`, 'utf8')
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)[1]) / 1024
}

async function main() {
  await withCiStack(async ({ world, config, readyPlan, ns }) => {

    console.error('ready sandbox (pulumi up of the ci stack)...')
    const up = await world.pulumi(['up', '--yes', '--skip-preview', '-s', 'ci'])
    if (up.code !== 0) throw new Error(`pulumi up failed: ${up.stdout.slice(-2000)}`)
    const ip = JSON.parse((await world.pulumi(['stack', 'output', '--json', '-s', 'ci'])).stdout).ip
    // Idle for a while after its boot before anything is sampled.
    await sleep(60)

    const names = Array.from({ length: per }, (_, i) => `bench${i + 1}`)
    // The allowlist the stack has, and the same with the benchmark's projects' egress in it.
    const planOf = (projects) => renderEgressPlan(config.allowlist, projects)
    const benchProjects = names.map((name) => ({ name, uid: projectUid(name), network: 'allowlist', allowlist: { domains: [], cidrs: [] } }))
    const samples = []
    for (let i = 1; i <= rounds; i++) {
      const vm = qemuRssMiB(config.vm.name)
      const before = guestUsedMiB(readyPlan, ip)
      inGuest(readyPlan, ip, 'sudo cc-sandbox-firewall apply - >/dev/null 2>&1', planOf([...config.projects, ...benchProjects]))
      const sessions = []
      for (const name of names) {
        inGuest(readyPlan, ip, `sudo cc-sandbox-project add ${name} ${projectUid(name)} </dev/null >/dev/null`)
        sessions.push(idleSession(readyPlan, ip, name, ns))
      }
      // Each session's shell running as its worker (as root: /proc hides other users' processes
      // from the admin, hidepid=invisible), then idle a while.
      const count = () => Number(inGuest(readyPlan, ip, `sudo pgrep -c -u ${names.map((n) => `cc-${n}`).join(',')} || true`).trim())
      for (let t = 0; t < 60 && count() < per; t++) await sleep(1)
      await sleep(10)
      const running = count()
      if (running < per) throw new Error(`only ${running} processes of the ${per} projects' workers are running: their sessions did not start`)
      const after = guestUsedMiB(readyPlan, ip)
      for (const s of sessions) s.kill()
      for (const name of names) inGuest(readyPlan, ip, `sudo cc-sandbox-project remove ${name} >/dev/null 2>&1`)
      inGuest(readyPlan, ip, 'sudo cc-sandbox-firewall apply - >/dev/null 2>&1', planOf(config.projects))
      const project = (after - before) / per
      samples.push({ vmQemuRssMiB: round(vm), guestUsedBeforeMiB: round(before), guestUsedAfterMiB: round(after), workerProcesses: running, perProjectMiB: round(project) })
      console.error(`round ${i}/${rounds}: VM ${vm.toFixed(1)} MiB, project ${project.toFixed(1)} MiB (${running} worker processes)`)
    }

    const vmMedian = median(samples.map((s) => s.vmQemuRssMiB))
    const projectMedian = median(samples.map((s) => s.perProjectMiB))
    const result = {
      measuredAt: new Date().toISOString(),
      host: { cpus: os.cpus().length, load: os.loadavg().map(round), kvm: fs.existsSync('/dev/kvm') && config.libvirt.virtType === 'kvm' },
      image: path.basename(fs.readlinkSync('/var/lib/cc-sandbox/ci-image')),
      vm: { cpus: config.vm.cpus, memoryMiB: config.vm.memoryMiB },
      projectsPerSample: per,
      samples,
      medians: { extraVmQemuRssMiB: round(vmMedian), extraProjectGuestMiB: round(projectMedian) },
      projectVsVm: { ratio: Math.round((projectMedian / vmMedian) * 1000) / 1000, target: target.projectVsVm },
      // A worker's rules: its egress (the plan's user line, its proxy address) and its loopback stamps.
    }
    fs.mkdirSync(path.dirname(out), { recursive: true })
    fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n')
    console.log(`an extra idle VM: QEMU resident memory (median of ${rounds})   ${vmMedian.toFixed(1)} MiB`)
    console.log(`an extra idle project: guest memory (median of ${rounds})     ${projectMedian.toFixed(1)} MiB`)
    console.log(`ratio                                                 ${result.projectVsVm.ratio}x (target <= ${target.projectVsVm}x)`)
    console.log(`written to ${path.relative(root, out)}`)
    const destroy = await world.pulumi(['destroy', '--yes', '--skip-preview', '-s', 'ci'])
    if (destroy.code !== 0) throw new Error(`pulumi destroy failed: ${destroy.stdout.slice(-2000)}`)
  })
}

main().catch((err) => {
  console.error(`error: ${err.message}`)
  process.exitCode = 1
})
