// What the benchmarks that boot the ci stack's VM share: the end-to-end test's world (libvirt in a
// closed network namespace, test/e2e/world.ts) with the ci stack initialised, and commands in the
// guest through the driver's own SSH prefix.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import { requireProject } from './project.mjs'

const { World, ns } = requireProject('test/e2e/world.ts')
const { loadStackConfig, stackFile } = requireProject('src/config/stack.ts')
const { libvirtDriver } = requireProject('src/drivers/libvirt/index.ts')

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/**
 * A command in the guest at IP as the admin (PLAN's guestExec); its stdout. With `check`, a
 * non-zero exit throws; `input` goes to its stdin.
 */
export function inGuest(plan, ip, command, { input = '', check = false } = {}) {
  const argv = [...plan.guestExec.map((a) => a.replace('{ip}', ip)), command]
  const r = spawnSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', input })
  if (check && r.status !== 0) throw new Error(`in the guest: ${command}: exit ${r.status}: ${r.stderr}`)
  return r.stdout
}

/**
 * Runs FN({ world, config, readyPlan, ns }) in a started world whose ci stack is initialised
 * (config: the ci stack's, readyPlan: the libvirt driver's plan for its VM); the world is stopped
 * after, whatever happened. Needs root.
 */
export { ns }

export async function withCiStack(fn) {
  if (os.userInfo().uid !== 0) throw new Error('the benchmark needs root (libvirt in a network namespace)')
  const world = new World()
  try {
    world.prepareTools()
    await world.start()
    const config = loadStackConfig(stackFile('ci'), 'ci', { home: world.home, readFile: (f) => fs.readFileSync(f, 'utf8') })
    const readyPlan = libvirtDriver(world.home).vmPlan(config, '')
    const init = await world.pulumi(['stack', 'init', 'ci', '--secrets-provider', 'passphrase'])
    if (init.code !== 0) throw new Error(`stack init failed: ${init.stderr}`)
    return await fn({ world, config, readyPlan, ns })
  } finally {
    world.stop()
  }
}
