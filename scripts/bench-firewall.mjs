#!/usr/bin/env zx
// Benchmarks the guest firewall in the namespace harness, side by side in one run with the
// resolve-once approach (one `dig` and one `ipset add` per name, as container firewalls do):
//   - `cc-sandbox-firewall up` with 50 and 500 allowlisted names
//   - resolve-once for the same names against the same DNS server
//   - `apply` of a changed allowlist (10% of names swapped) with the sets populated
//   - `up` and `apply` at 50 names with one project's worker and with ten (their egress: five names
//     of their own each, and their loopback rules)
// Writes bench/results/firewall.json and prints a table. Needs root.
//   npm run bench -- [--sizes 50,500] [--repeat 5] [--out bench/results/firewall.json]
import { $, fs, minimist } from 'zx'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { stringify } from 'yaml'
import { root } from './lib/project.mjs'

const flags = minimist(process.argv.slice(2), {
  string: ['sizes', 'out'],
  default: { sizes: '50,500', repeat: 5, out: path.join(root, 'bench/results/firewall.json') },
})

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

const names = (n, from = 0) => Array.from({ length: n }, (_, i) => `n${i + from}.bench.example`)
const address = (i) => `198.18.${i >> 8}.${(i & 255) || 1}`

function stackFile(dir, domains) {
  const doc = {
    config: {
      'cc-sandbox:hypervisor': 'multipass',
      'cc-sandbox:vm': { name: 'cc-bench' },
      'cc-sandbox:git': { name: 'Bench', email: 'bench@example.org' },
      'cc-sandbox:allowlist': { presets: [], domains },
      'cc-sandbox:firewall': { enabled: true, githubMeta: false, logDenied: true },
      'cc-sandbox:claude': { install: false },
    },
  }
  const file = path.join(dir, 'Pulumi.bench.yaml')
  fs.writeFileSync(file, stringify(doc))
  return file
}

// Runs a bash snippet as root in the guest and returns the seconds it took, timed inside the guest.
async function timed(h, snippet) {
  const r = await h.root(`s=$EPOCHREALTIME; { ${snippet}; } >/dev/null 2>&1; rc=$?; e=$EPOCHREALTIME; echo "$rc $s $e"`, { timeoutMs: 600_000 })
  const [rc, s, e] = r.stdout.trim().split(' ')
  if (rc !== '0') throw new Error(`benchmark step failed (${rc}): ${snippet}\n${r.stderr}`)
  return Number(e) - Number(s)
}

// withNames(lib, n, fn): a harness whose allowlist holds n names (its firewall not up), with
// /root/names, /root/first (that allowlist) and /root/changed (10% of names swapped), given to fn
// with the names' lists and the test home.
async function withNames({ Harness, makeTestHome, planOf }, n, fn) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccfw-bench-'))
  const all = names(Math.ceil(n * 1.1))
  const records = all.map((name, i) => `${name} A ${address(i)}`).join('\n')
  const first = all.slice(0, n)
  const changed = [...all.slice(Math.floor(n * 0.1), n), ...all.slice(n)] // 10% out, 10% in
  const home = makeTestHome(dir)
  const h = await Harness.start({ config: stackFile(dir, first), records, bringUp: false, home, assignAddresses: false })
  try {
    await h.root(`printf '%s\\n' ${first.join(' ')} >/root/names; cp /etc/cc-sandbox/allowlist /root/first`)
    await h.root('cat >/root/changed', { input: planOf(changed.map((name) => `${name} 443\n`).join('')) })
    return await fn(h, { all, first, changed, home })
  } finally {
    await h.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

async function benchSize(lib, n, repeat) {
  return withNames(lib, n, async (h) => {
    // up and the resolve-once approach (network open, same DNS server, same names), alternating.
    const resolveOnce = 'ipset destroy bench-once 2>/dev/null; ipset create bench-once hash:net; while read -r name; do for ip in $(dig +short A "$name"); do ipset add -exist bench-once "$ip"; done; done </root/names'
    const up = []
    const once = []
    let onceCount = ''
    for (let i = 0; i < repeat; i++) {
      for (const side of i % 2 ? ['once', 'up'] : ['up', 'once']) {
        await h.root('cc-sandbox-firewall down')
        if (side === 'up') up.push(await timed(h, 'cc-sandbox-firewall up'))
        else {
          once.push(await timed(h, resolveOnce))
          onceCount = (await h.root('ipset list bench-once | grep -c "^198\\.18\\."; ipset destroy bench-once')).stdout.split('\n')[0]
        }
      }
    }
    await h.root('cc-sandbox-firewall up')
    // Every name through the filtering resolver in one dig process: each answer enters the set.
    const lookups = await timed(h, 'dig +short +tries=1 -f <(sed "s/$/ A/" /root/names)')
    const inSet = (await h.root('ipset list ccfw-d-443 | grep -c "^198\\.18\\."')).stdout.trim()
    const apply = []
    for (let i = 0; i < repeat; i++) {
      apply.push(await timed(h, `cc-sandbox-firewall apply /root/${i % 2 ? 'first' : 'changed'}`))
    }
    return { names: n, upSeconds: median(up), upRuns: up, resolveOnceSeconds: median(once), resolveOnceRuns: once, resolveOnceAddresses: Number(onceCount),
      lookupsThroughResolverSeconds: lookups, addressesInSetAfterLookups: Number(inSet), applySeconds: median(apply), applyRuns: apply }
  })
}

// `up` and `apply` with one project's worker and with ten, alternated, at 50 names: each worker adds
// its loopback rules (README, Projects). The workers are made with cc-sandbox-project; the firewall
// learns them from the projects' registry, so the one-project side moves nine registry files aside.
async function benchProjects(lib, { projectUid, loadConfig, renderEgressPlan }, repeat) {
  const n = 50
  return withNames(lib, n, async (h, { all, first, changed, home }) => {
    const projects = Array.from({ length: 10 }, (_, i) => `p${i + 1}`)
    const add = await h.root(projects.map((p) => `cc-sandbox-project add ${p} ${projectUid(p)} >/dev/null 2>&1`).join(' && '))
    if (add.code !== 0) throw new Error(`adding the projects failed: ${add.stderr}`)
    // Each side's allowlists: the stack's names, and each of its k projects' five names of its own.
    const own = all.slice(0, 5).map((name) => name.replace(/^n/, 'own'))
    const plan = (domains, k) => {
      const c = loadConfig('bench', {
        allowlist: { presets: [], domains },
        projects: projects.slice(0, k).map((name) => ({ name, allowlist: { domains: own } })),
      }, { home, readFile: (f) => fs.readFileSync(f, 'utf8') })
      return renderEgressPlan(c.allowlist, c.projects)
    }
    for (const k of [1, 10]) {
      await h.root(`cat >/root/first-${k}`, { input: plan(first, k) })
      await h.root(`cat >/root/changed-${k}`, { input: plan(changed, k) })
    }
    await h.root('mkdir -p /root/aside')
    const runs = { 1: { up: [], apply: [], stamps: 0, workers: 0 }, 10: { up: [], apply: [], stamps: 0, workers: 0 } }
    let installed = 'first'
    for (let i = 0; i < repeat; i++) {
      for (const k of i % 2 ? [10, 1] : [1, 10]) {
        await h.root(k === 1 ? 'mv /etc/cc-sandbox/projects.d/p{2..10} /root/aside/' : 'mv /root/aside/p* /etc/cc-sandbox/projects.d/')
        await h.root('cc-sandbox-firewall down')
        await h.root(`cp /root/${installed}-${k} /etc/cc-sandbox/allowlist`)
        runs[k].up.push(await timed(h, 'cc-sandbox-firewall up'))
        installed = installed === 'first' ? 'changed' : 'first'
        runs[k].apply.push(await timed(h, `cc-sandbox-firewall apply /root/${installed}-${k}`))
        runs[k].stamps = Number((await h.root("iptables-legacy-save -t filter | grep -c -- '-j CONNMARK --set-xmark'")).stdout.trim())
        runs[k].workers = Number((await h.root("iptables-legacy-save -t nat | grep -c -- '-A ccfw-snat '")).stdout.trim())
      }
    }
    const side = (k) => ({
      workers: k,
      ownNamesEach: own.length,
      usersStampedOnLoopback: runs[k].stamps,
      workersWithEgressRules: runs[k].workers,
      upSeconds: median(runs[k].up),
      upRuns: runs[k].up,
      applySeconds: median(runs[k].apply),
      applyRuns: runs[k].apply,
    })
    return { names: n, one: side(1), ten: side(10) }
  })
}

async function main() {
  if ((await $`id -u`.quiet()).stdout.trim() !== '0') throw new Error('the benchmark needs root (network namespaces)')
  const require = createRequire(import.meta.url)
  require('ts-node').register({ transpileOnly: true, project: path.join(root, 'tsconfig.json') })
  const lib = require(path.join(root, 'test/harness/lib.ts'))
  const sizes = String(flags.sizes).split(',').map(Number)
  const results = []
  for (const n of sizes) {
    console.error(`benchmarking ${n} names...`)
    results.push(await benchSize(lib, n, Number(flags.repeat)))
  }
  console.error('benchmarking 1 and 10 projects...')
  const projects = await benchProjects(lib, {
    projectUid: require(path.join(root, 'src/config/projects.ts')).projectUid,
    loadConfig: require(path.join(root, 'src/config/load.ts')).loadConfig,
    renderEgressPlan: require(path.join(root, 'src/render/egress.ts')).renderEgressPlan,
  }, Number(flags.repeat))
  const small = results[0]
  const large = results[results.length - 1]
  const summary = {
    upVsResolveOnceAt: { names: small.names, ratio: small.upSeconds / small.resolveOnceSeconds, target: 0.05 },
    upGrowth: { from: small.names, to: large.names, ratio: large.upSeconds / small.upSeconds },
    applyMaxSeconds: { value: Math.max(...results.map((r) => r.applySeconds)), target: 1 },
    upTenProjectsVsOne: { ratio: projects.ten.upSeconds / projects.one.upSeconds, target: 2 },
    applyTenProjectsVsOne: { ratio: projects.ten.applySeconds / projects.one.applySeconds, target: 2 },
  }
  const report = { measuredAt: new Date().toISOString(), host: { cpus: os.cpus().length, load: os.loadavg() }, results, projects, summary }
  fs.mkdirSync(path.dirname(flags.out), { recursive: true })
  fs.writeFileSync(flags.out, JSON.stringify(report, null, 2) + '\n')

  const f = (s) => `${(s * 1000).toFixed(0)} ms`
  console.log('names | up (median) | resolve-once | up / resolve-once | apply (median) | all names looked up via resolver')
  for (const r of results) {
    console.log(`${r.names} | ${f(r.upSeconds)} | ${f(r.resolveOnceSeconds)} | ${(r.upSeconds / r.resolveOnceSeconds).toFixed(3)} | ${f(r.applySeconds)} | ${f(r.lookupsThroughResolverSeconds)} (${r.addressesInSetAfterLookups} in set)`)
  }
  console.log(`projects at ${projects.names} names: up ${f(projects.one.upSeconds)} with 1, ${f(projects.ten.upSeconds)} with 10 (${summary.upTenProjectsVsOne.ratio.toFixed(2)}x); ` +
    `apply ${f(projects.one.applySeconds)} with 1, ${f(projects.ten.applySeconds)} with 10 (${summary.applyTenProjectsVsOne.ratio.toFixed(2)}x; target <= 2x)`)
  console.log(`up at ${large.names} names / up at ${small.names} names: ${summary.upGrowth.ratio.toFixed(2)}; written to ${path.relative(root, flags.out)}`)
}

try {
  await main()
} catch (err) {
  console.error(`error: ${err && err.message ? err.message : err}`)
  process.exitCode = 1
}
