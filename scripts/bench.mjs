#!/usr/bin/env zx
// Runs the benchmarks one after another (never side by side: each compares figures taken in one
// run on this machine), each writing bench/results/<name>.json and printing its table.
//   npm run bench [-- --only firewall,proxy,statusline,bridge,boot,projects]
// Needs root. `boot` and `projects` also need what the end-to-end test needs (libvirt, QEMU, the built engine
// and image: scripts/build-engine.sh, scripts/build-image.sh).
import { $, argv } from 'zx'
import path from 'node:path'
import { root } from './lib/project.mjs'

const all = ['firewall', 'proxy', 'statusline', 'bridge', 'boot', 'projects']
const only = argv.only ? String(argv.only).split(',') : all
const unknown = only.filter((name) => !all.includes(name))
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.join(', ')}: choose from ${all.join(', ')}`)
  process.exitCode = 1
} else {
  for (const name of only) {
    console.error(`== bench ${name}`)
    try {
      await $({ stdio: 'inherit', cwd: root })`zx ${path.join(root, 'scripts', `bench-${name}.mjs`)}`
    } catch (err) {
      console.error(`bench ${name} failed (exit ${err.exitCode})`)
      process.exitCode = 1
    }
  }
}
