#!/usr/bin/env zx
// Time to a ready sandbox against a bare boot of the same image, in one run: both VMs boot under
// the same libvirt, in the end-to-end test's namespace (test/e2e/world.ts), one after the other.
//   bare   the libvirt driver's own create step (virt-install, then `cloud-init status --wait`
//          over SSH) with a cloud-config that only names the admin user and its key
//   ready  `pulumi up` of the ci stack from nothing until it returns: the engine, the program, the
//          VM, and every guest layer installed by cloud-init
//   zx scripts/bench-boot.mjs [--out bench/results/boot.json]
// Needs root, libvirt, QEMU, and the engine and image the e2e test builds. A figure, not a test.
import { argv } from 'zx'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { requireProject, root } from './lib/project.mjs'

const targetRatio = 2
const out = path.resolve(root, argv.out ?? 'bench/results/boot.json')
const { World, ns } = requireProject('test/e2e/world.ts')
const { loadStackConfig, stackFile } = requireProject('src/config/stack.ts')
const { libvirtDriver } = requireProject('src/drivers/libvirt/index.ts')
const runner = path.join(root, 'src/drivers/runner.js')

/** Runs one lifecycle step of the driver's runner in the namespace, as the command provider would. */
function runnerStep(step, plan, input) {
  const started = Date.now()
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '-e', `require(${JSON.stringify(runner)}).runStep(${JSON.stringify(step)})`], {
    env: { ...process.env, CC_PLAN: JSON.stringify(plan) },
    input,
    encoding: 'utf8',
  })
  if (r.status !== 0) throw new Error(`${step} failed: ${r.stderr}`)
  return (Date.now() - started) / 1000
}

async function main() {
  if (os.userInfo().uid !== 0) throw new Error('the benchmark needs root (libvirt in a network namespace)')
  const world = new World()
  try {
    world.prepareTools()
    await world.start()

    const config = loadStackConfig(stackFile('ci'), 'ci', { home: world.home, readFile: (f) => fs.readFileSync(f, 'utf8') })
    const bare = { ...config, vm: { ...config.vm, name: 'cc-bare' }, mounts: [] }
    const plan = libvirtDriver(world.home).vmPlan(bare, 'instance-id: cc-bare-1\nlocal-hostname: cc-bare\n')
    const userData = [
      '#cloud-config',
      'system_info: {default_user: {name: ' + config.users.admin + '}}',
      'ssh_authorized_keys:',
      ...config.sshAuthorizedKeys.map((k) => `  - ${k}`),
      '',
    ].join('\n')
    console.error('bare boot...')
    const bareSeconds = runnerStep('create', plan, userData)
    runnerStep('delete', plan)

    console.error('ready sandbox (pulumi up of the ci stack)...')
    const init = await world.pulumi(['stack', 'init', 'ci', '--secrets-provider', 'passphrase'])
    if (init.code !== 0) throw new Error(`stack init failed: ${init.stderr}`)
    const up = await world.pulumi(['up', '--yes', '--skip-preview', '-s', 'ci'])
    if (up.code !== 0) throw new Error(`pulumi up failed: ${up.stdout.slice(-2000)}`)
    const destroy = await world.pulumi(['destroy', '--yes', '--skip-preview', '-s', 'ci'])
    if (destroy.code !== 0) throw new Error(`pulumi destroy failed: ${destroy.stdout.slice(-2000)}`)

    const result = {
      measuredAt: new Date().toISOString(),
      host: { cpus: os.cpus().length, load: os.loadavg(), kvm: fs.existsSync('/dev/kvm') && config.libvirt.virtType === 'kvm' },
      // The image by its build hash (the name of its cache folder), not where this machine keeps it.
      image: path.basename(fs.readlinkSync('/var/lib/cc-sandbox/ci-image')),
      bareBootSeconds: bareSeconds,
      readySeconds: up.seconds,
      destroySeconds: destroy.seconds,
      readyVsBare: { ratio: up.seconds / bareSeconds, target: targetRatio },
    }
    fs.mkdirSync(path.dirname(out), { recursive: true })
    fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n')
    console.log(`bare boot to cloud-init done   ${bareSeconds.toFixed(1)} s`)
    console.log(`pulumi up to a ready sandbox   ${up.seconds.toFixed(1)} s`)
    console.log(`ratio                          ${result.readyVsBare.ratio.toFixed(2)}x (target <= ${targetRatio}x)`)
    console.log(`pulumi destroy                 ${destroy.seconds.toFixed(1)} s`)
    console.log(`written to ${path.relative(root, out)}`)
  } finally {
    world.stop()
  }
}

main().catch((err) => {
  console.error(`error: ${err.message}`)
  process.exitCode = 1
})
