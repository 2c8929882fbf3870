#!/usr/bin/env zx
// Runs a command in a rendered guest inside network and mount namespaces, as the agent user, with
// the firewall up. See test/README.md for the --records format.
//   npm run harness -- (--stack NAME | --config FILE) --records FILE [--user agent|root] [--no-up]
//                      [--internet CMD | --set-records FILE]... -- COMMAND...
// --internet runs CMD as root in the internet namespace, --set-records swaps the DNS records; both
// run in the order given, before COMMAND (as the jest API's harness.internet and setRecords do).
import { $, fs, minimist } from 'zx'
import { createRequire } from 'node:module'
import path from 'node:path'
import { root } from './lib/project.mjs'

const usage = 'usage: npm run harness -- (--stack NAME | --config FILE) --records FILE [--user agent] [--no-up] [--internet CMD | --set-records FILE]... -- COMMAND...'

async function main() {
  // Everything after the first `--` is the command, left exactly as given.
  const args = process.argv.slice(2)
  const split = args.indexOf('--')
  const command = split < 0 ? [] : args.slice(split + 1)
  const before = split < 0 ? args : args.slice(0, split)
  // The steps before COMMAND, in the order given.
  const steps = []
  before.forEach((a, i) => {
    if (a === '--internet' || a === '--set-records') steps.push([a, before[i + 1]])
  })
  const flags = minimist(before, {
    string: ['stack', 'config', 'records', 'user', 'internet', 'set-records'],
    boolean: ['up'],
    default: { up: true, user: 'agent' },
  })
  const { stack, config, records, user, up } = flags
  if (!stack === !config || typeof records !== 'string' || command.length === 0) {
    console.error(usage)
    process.exitCode = 1
    return
  }
  if ((await $`id -u`.quiet()).stdout.trim() !== '0') throw new Error('the harness needs root (network namespaces, mounts)')

  const require = createRequire(import.meta.url)
  require('ts-node').register({ transpileOnly: true, project: path.join(root, 'tsconfig.json') })
  const { Harness } = require(path.join(root, 'test/harness/lib.ts'))

  const harness = await Harness.start({
    stack,
    config: config && path.resolve(config),
    records: await fs.readFile(records, 'utf8'),
    bringUp: up,
  })
  try {
    for (const [step, value] of steps) {
      if (typeof value !== 'string') throw new Error(`${step} needs a value`)
      if (step === '--set-records') {
        harness.setRecords(await fs.readFile(value, 'utf8'))
        continue
      }
      const r = await harness.internet(value)
      process.stdout.write(r.stdout)
      process.stderr.write(r.stderr)
      if (r.code !== 0) throw new Error(`--internet '${value}' exited with ${r.code}`)
    }
    const quoted = command.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')
    const result = await harness.exec(quoted, { user, timeoutMs: 3600_000 })
    process.stdout.write(result.stdout)
    process.stderr.write(result.stderr)
    process.exitCode = result.code
  } finally {
    await harness.stop()
  }
}

try {
  await main()
} catch (err) {
  console.error(`error: ${err && err.message ? err.message : err}`)
  process.exitCode = 1
}
