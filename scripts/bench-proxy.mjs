#!/usr/bin/env zx
// What the name-checking proxy costs, side by side in one run in the namespace harness: the agent's
// connections go through the proxy; root's, to the same server over the same path, do not (the
// firewall redirects every user but root and the proxy's own). The two sides alternate, medians
// are reported:
//   - connection set-up: TCP connect + TLS handshake (certificate checked) to a test server
//   - a 200 MB download over HTTPS with curl, at the machine's own speed and over links shaped to
//     1, 2, 4, 6 and 8 Gbit/s (where the proxy's extra hop starts to tell)
//   - the proxy's memory (resident, all threads) with 500 TLS connections open through it
// Targets (issue: egress by name): set-up overhead <= 1 ms, download >= 0.9x direct, memory
// <= 30 MB at 500 connections. Writes bench/results/proxy.json. Needs root.
//   npm run bench -- --only proxy     (zx scripts/bench-proxy.mjs [--rounds 10] [--downloads 9] [--rates 1gbit,...] [--out FILE])
import { $, fs, minimist } from 'zx'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { stringify } from 'yaml'
import { root } from './lib/project.mjs'

const flags = minimist(process.argv.slice(2), {
  string: ['out', 'rates'],
  default: { rounds: 10, downloads: 9, rates: '1gbit,2gbit,4gbit,6gbit,8gbit', out: path.join(root, 'bench/results/proxy.json') },
})
const target = { setupOverheadMs: 1, downloadRatio: 0.9, memoryMiB: 30 }
const name = 'bulk.test.example'
const address = '198.51.100.80'
const downloadBytes = 200 * 1024 * 1024

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const round = (x, d = 3) => Math.round(x * 10 ** d) / 10 ** d

function stackFile(dir) {
  const doc = {
    config: {
      'cc-sandbox:hypervisor': 'multipass',
      'cc-sandbox:vm': { name: 'cc-bench' },
      'cc-sandbox:git': { name: 'Bench', email: 'bench@example.org' },
      'cc-sandbox:allowlist': { presets: [], domains: [name] },
      'cc-sandbox:firewall': { enabled: true, githubMeta: false, logDenied: true },
      'cc-sandbox:claude': { install: false },
    },
  }
  const file = path.join(dir, 'Pulumi.bench.yaml')
  fs.writeFileSync(file, stringify(doc))
  return file
}

async function main() {
  if ((await $`id -u`.quiet()).stdout.trim() !== '0') throw new Error('the benchmark needs root (network namespaces)')
  const require = createRequire(import.meta.url)
  require('ts-node').register({ transpileOnly: true, project: path.join(root, 'tsconfig.json') })
  const { Harness, makeTestHome, guestNode, guestTools } = require(path.join(root, 'test/harness/lib.ts'))
  const client = `${guestTools}/tls-bench-client.cjs`
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ccfw-bench-proxy-'))
  const h = await Harness.start({ config: stackFile(dir), records: `${name} A ${address}\n`, home: makeTestHome(dir) })
  const as = (user, cmd) => h.exec(cmd, { user, timeoutMs: 600_000 })
  const ok = (r, what) => {
    if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stderr}`)
    return r.stdout
  }
  try {
    ok(await as('agent', `getent ahostsv4 ${name}`), 'lookup')
    const sides = { proxy: 'agent', direct: 'root' }
    const setup = { proxy: [], direct: [] }
    for (let i = 0; i < Number(flags.rounds); i++) {
      for (const [side, user] of i % 2 ? Object.entries(sides).reverse() : Object.entries(sides)) {
        const out = ok(await as(user, `${guestNode} ${client} handshakes ${address} ${name} 20`), `${side} handshakes`)
        setup[side].push(...out.trim().split(' ').map(Number))
      }
    }
    const cpuTicks = async () => Number((await h.root("awk '{ print $14 + $15 }' /proc/$(cat /run/cc-sandbox/firewall/proxy.pid)/stat")).stdout.trim())
    const ticksPerSecond = Number((await h.root('getconf CLK_TCK')).stdout.trim())
    // Downloads, alternating sides: at the speed of this machine (the two cores that the client,
    // the server and the proxy share are the limit), then over links shaped (tbf on the internet
    // side of the veth) to the rates given: real links, up to where the proxy's extra hop tells.
    const downloads = async () => {
      const rate = { proxy: [], direct: [] }
      const cpu = []
      for (let i = 0; i < Number(flags.downloads); i++) {
        for (const [side, user] of i % 2 ? Object.entries(sides).reverse() : Object.entries(sides)) {
          const before = side === 'proxy' ? await cpuTicks() : 0
          const out = ok(await as(user, `curl -sS --connect-to ${name}:443:${address}:443 -o /dev/null -w '%{time_total} %{size_download}' https://${name}/bytes/${downloadBytes}`), `${side} download`)
          const [seconds, size] = out.trim().split(' ').map(Number)
          if (size !== downloadBytes) throw new Error(`${side} download got ${size} bytes`)
          rate[side].push(size / seconds / 1e6)
          if (side === 'proxy') cpu.push(((await cpuTicks()) - before) / ticksPerSecond)
        }
      }
      return { proxy: median(rate.proxy), direct: median(rate.direct), runs: rate.proxy.length, cpu: median(cpu) }
    }
    const fast = await downloads()
    const veth = ok(await h.internet("ip -o link show type veth | awk -F'[ @:]+' '{ print $2; exit }'"), 'the veth').trim()
    const shaped = []
    for (const rate of String(flags.rates).split(',').filter(Boolean)) {
      if (!/^[0-9]+[gm]bit$/.test(rate)) throw new Error(`--rates: '${rate}' is not a rate like 1gbit or 500mbit`)
      // The burst grows with the rate (a token bucket must hold more than one timer tick's worth).
      ok(await h.internet(`tc qdisc replace dev ${veth} root tbf rate ${rate} burst 4m latency 20ms`), `shaping the link to ${rate}`)
      shaped.push({ rate, ...(await downloads()) })
    }
    if (shaped.length > 0) ok(await h.internet(`tc qdisc del dev ${veth} root`), 'unshaping the link')
    const rss = async () => {
      const r = await h.root('grep VmRSS /proc/$(cat /run/cc-sandbox/firewall/proxy.pid)/status')
      return Number(/(\d+) kB/.exec(r.stdout)[1]) / 1024
    }
    const idleMiB = await rss()
    const holder = as('agent', `${guestNode} ${client} hold ${address} ${name} 500 20`)
    let heldMiB = 0
    for (let t = 0; t < 60 && heldMiB === 0; t++) {
      await new Promise((r) => setTimeout(r, 500))
      const open = Number((await h.root("ss -Htn state established '( sport = :913 )' | wc -l")).stdout.trim())
      if (open >= 500) heldMiB = await rss()
    }
    ok(await holder, 'holding 500 connections')

    const setupMs = { proxy: median(setup.proxy), direct: median(setup.direct) }
    const report = {
      measuredAt: new Date().toISOString(),
      host: { cpus: os.cpus().length, load: os.loadavg().map((x) => round(x, 2)) },
      setup: { samples: setup.proxy.length, medianMs: { proxy: round(setupMs.proxy), direct: round(setupMs.direct) }, overheadMs: round(setupMs.proxy - setupMs.direct), target: target.setupOverheadMs },
      // The proxy's own CPU time per download: the client, the server and the proxy share this
      // machine's cores, so what the proxy spends is taken from the other two.
      download: { bytes: downloadBytes, runs: fast.runs, medianMBps: { proxy: round(fast.proxy, 1), direct: round(fast.direct, 1) }, ratio: round(fast.proxy / fast.direct, 2), target: target.downloadRatio, proxyCpuSeconds: round(fast.cpu, 2) },
      downloadOverShapedLinks: shaped.map((d) => ({ rate: d.rate, bytes: downloadBytes, runs: d.runs, medianMBps: { proxy: round(d.proxy, 1), direct: round(d.direct, 1) }, ratio: round(d.proxy / d.direct, 2), target: target.downloadRatio })),
      memory: { idleMiB: round(idleMiB, 1), with500ConnectionsMiB: round(heldMiB, 1), target: target.memoryMiB },
    }
    fs.mkdirSync(path.dirname(flags.out), { recursive: true })
    fs.writeFileSync(flags.out, JSON.stringify(report, null, 2) + '\n')
    console.log(`connection set-up (TCP + TLS), median of ${setup.proxy.length}: proxy ${setupMs.proxy.toFixed(2)} ms, direct ${setupMs.direct.toFixed(2)} ms, overhead ${(setupMs.proxy - setupMs.direct).toFixed(2)} ms (target <= ${target.setupOverheadMs} ms)`)
    for (const [what, d] of [['at this machine\'s speed', fast], ...shaped.map((d) => [`over a link shaped to ${d.rate}`, d])]) {
      console.log(`200 MB download ${what}, median of ${d.runs}: proxy ${d.proxy.toFixed(0)} MB/s, direct ${d.direct.toFixed(0)} MB/s, ratio ${(d.proxy / d.direct).toFixed(2)} (target >= ${target.downloadRatio})`)
    }
    console.log(`the proxy's CPU per download at this machine's speed: ${fast.cpu.toFixed(2)} s`)
    console.log(`proxy memory: ${idleMiB.toFixed(1)} MiB idle, ${heldMiB.toFixed(1)} MiB with 500 connections (target <= ${target.memoryMiB} MiB)`)
    console.log(`written to ${path.relative(root, flags.out)}`)
  } finally {
    await h.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

try {
  await main()
} catch (err) {
  console.error(`error: ${err && err.message ? err.message : err}`)
  process.exitCode = 1
}
