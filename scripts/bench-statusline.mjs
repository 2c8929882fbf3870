#!/usr/bin/env zx
// Times the status line as Claude Code runs it: spawned from Node with a real render's JSON on
// stdin, beside a bare `bash -c :` and a jq-per-field status line, interleaved in one loop so all
// three see the same machine. The firewall state file is live (FW:ON) on a tmpfs /run of a private
// mount namespace, so the host's /run is not touched.
//   zx scripts/bench-statusline.mjs [--runs 300] [--out bench/results/statusline.json]
// Needs root (for the mount namespace). Writes medians in milliseconds; a figure, not a test.
import { argv } from 'zx'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { root } from './lib/project.mjs'

const targetRatio = 2
const statusline = path.join(root, 'templates/guest/usr/local/bin/cc-sandbox-statusline')
const stateFile = '/run/cc-sandbox/firewall.state'

// The same information the jq way: one jq per JSON field plus cut/grep/date, as status line
// examples usually do it.
const jqStatusline = `#!/bin/bash
set -euo pipefail
input=$(cat)
model=$(jq -r '.model.display_name // "?"' <<<"$input")
used=$(jq -r '.context_window.used_percentage // empty | round' <<<"$input")
state=$(cut -d' ' -f1 ${stateFile} 2>/dev/null || true)
stamp=$(cut -d' ' -f2 ${stateFile} 2>/dev/null || true)
fw=OFF
if [ "$state" = ON ] && [ $(( $(date +%s) - stamp )) -le 10 ]; then fw=ON; fi
nnp=$(grep NoNewPrivs /proc/self/status | cut -f2)
[ "$nnp" = 1 ] && nnp=NNP || nnp=NNP:OFF
echo "[$model] \${used:---}% | FW:$fw | $nnp"
`

// A render as Claude Code sends it to the statusLine command.
const render = JSON.stringify({
  hook_event_name: 'Status',
  session_id: '0d9f3c2e-5b7a-4a57-9f1e-2a1d9b9c1f00',
  transcript_path: '/home/agent/.claude/projects/-home-agent-code/0d9f3c2e.jsonl',
  cwd: '/home/agent/code',
  model: { id: 'claude-opus-4-6', display_name: 'Opus 4.6' },
  workspace: { current_dir: '/home/agent/code', project_dir: '/home/agent/code' },
  version: '2.1.331',
  output_style: { name: 'default' },
  cost: { total_cost_usd: 1.2345, total_duration_ms: 654321, total_api_duration_ms: 321000, total_lines_added: 120, total_lines_removed: 14 },
  context_window: {
    total_input_tokens: 89000, total_output_tokens: 4100, context_window_size: 200000,
    current_usage: { input_tokens: 12, output_tokens: 400, cache_creation_input_tokens: 2000, cache_read_input_tokens: 86000 },
    used_percentage: 44.6, remaining_percentage: 55.4,
  },
  rate_limits: { five_hour: { used_percentage: 91, resets_at: 1781290000 }, seven_day: { used_percentage: 36, resets_at: 1781730000 } },
  exceeds_200k_tokens: false,
})
const expected = '[Opus 4.6] 45% | FW:ON | NNP:OFF\n'

function stats(ms) {
  const s = [...ms].sort((a, b) => a - b)
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))]
  const round = (x) => Math.round(x * 1000) / 1000
  return { runs: s.length, medianMs: round(at(0.5)), p90Ms: round(at(0.9)), minMs: round(s[0]), maxMs: round(s[s.length - 1]) }
}

function timedSpawn(cmd, args, input) {
  const start = process.hrtime.bigint()
  const r = spawnSync(cmd, args, { input, encoding: 'utf8' })
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stderr}`)
  return { ms, stdout: r.stdout }
}

function writeState() {
  fs.writeFileSync(`${stateFile}.new`, `ON ${Math.floor(Date.now() / 1000)}\n`)
  fs.renameSync(`${stateFile}.new`, stateFile)
}

function bench(runs, out) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cc-bench-statusline-'))
  const jqScript = path.join(work, 'statusline-jq')
  fs.writeFileSync(jqScript, jqStatusline, { mode: 0o755 })
  try {
    writeState()
    for (const [cmd, args] of [[statusline, []], [jqScript, []]]) {
      const got = timedSpawn(cmd, args, render).stdout
      if (got !== expected) throw new Error(`${cmd} printed ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`)
    }
    const times = { bare: [], statusline: [], jq: [] }
    let lastWrite = Date.now()
    for (let i = 0; i < runs; i++) {
      // The firewall watcher rewrites the file every 2 s; keep it as fresh.
      if (Date.now() - lastWrite > 2000) {
        writeState()
        lastWrite = Date.now()
      }
      times.bare.push(timedSpawn('bash', ['-c', ':']).ms)
      times.statusline.push(timedSpawn(statusline, [], render).ms)
      times.jq.push(timedSpawn(jqScript, [], render).ms)
    }
    const bare = stats(times.bare)
    const line = stats(times.statusline)
    const jq = stats(times.jq)
    const ratio = (a, b) => Math.round((a.medianMs / b.medianMs) * 100) / 100
    const result = {
      benchmark: 'cc-sandbox-statusline render, spawned from Node with a Claude Code render on stdin, beside a bare bash start',
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, kernel: os.release(), loadAverage1m: Math.round(os.loadavg()[0] * 100) / 100 },
      output: expected.trim(),
      targetRatio,
      bareBash: bare,
      statusline: line,
      jqPerField: jq,
      statuslineOverBareBash: ratio(line, bare),
      jqPerFieldOverBareBash: ratio(jq, bare),
      meetsTarget: ratio(line, bare) <= targetRatio,
    }
    fs.mkdirSync(path.dirname(out), { recursive: true })
    fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n')
    console.log(`bash -c :         median ${bare.medianMs} ms`)
    console.log(`status line       median ${line.medianMs} ms  (${result.statuslineOverBareBash}x bare bash; target <= ${targetRatio}x)`)
    console.log(`jq per field      median ${jq.medianMs} ms  (${result.jqPerFieldOverBareBash}x bare bash)`)
    console.log(`written to ${path.relative(root, out)}`)
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}

function main() {
  const runs = Number(argv.runs ?? 300)
  const out = path.resolve(root, argv.out ?? 'bench/results/statusline.json')
  if (!Number.isInteger(runs) || runs < 200) throw new Error('--runs must be an integer >= 200')
  if (process.getuid() !== 0) throw new Error('needs root: the state file lives on a tmpfs /run in a private mount namespace')

  if (process.env.CC_BENCH_STATUSLINE_NS !== '1') {
    // Again, inside a private mount namespace with a tmpfs /run of its own.
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', '--', 'bash', '-euo', 'pipefail', '-c',
      'mount -t tmpfs -o mode=0755 cc-bench-run /run && mkdir -m 0755 /run/cc-sandbox && exec "$@"', 'bench',
      process.execPath, ...process.execArgv, process.argv[1], ...process.argv.slice(2)],
    { stdio: 'inherit', env: { ...process.env, CC_BENCH_STATUSLINE_NS: '1' } })
    process.exitCode = r.status ?? 1
    return
  }
  bench(runs, out)
}

try {
  main()
} catch (err) {
  console.error(`error: ${err && err.message ? err.message : err}`)
  process.exitCode = 1
}
