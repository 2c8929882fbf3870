#!/usr/bin/env zx
// A stack's projects, from the host: each runs as a worker user of its own in the VM.
//   npm run project -- list --stack NAME
//   npm run project -- status --stack NAME [--project P]
//   npm run project -- enter --stack NAME --project P [-- COMMAND...]
//   npm run project -- sync --stack NAME --project P [--branch B]
// It logs in as the admin (the stack's adminSshCommand output) and runs cc-sandbox-project with
// sudo. Projects are added and removed in the stack's config (cc-sandbox:projects) with pulumi up.
// sync takes a clone project's work (its commits and uncommitted changes) into the repository it
// was cloned from, as branch B (cc-sandbox/P): created or moved forward, never the branch checked
// out, never a rewrite; the working tree is not touched.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { $, argv } from 'zx'
import { reportError, requireSrc, root } from './lib/project.mjs'

const usage = 'usage: npm run project -- (list|status|enter|sync) --stack NAME [--project P] [--branch B] [-- COMMAND...]'
// The most a sync takes from the guest: what the agent writes cannot fill the host's disk.
const syncLimit = 2 * 1024 ** 3
// ... and the longest it waits for it (the guest's export is bounded at 4 minutes).
const syncSeconds = 600
// The stack config's own rule for a project's name (src/config/schema.ts), not a copy of it.
const projectName = requireSrc('config/schema').formats['project-name']

// POSIX quoting, as sshCommand's: the admin's login shell may be any sh.
const { shellQuote } = requireSrc('shell')

async function main() {
  // The command after `--` as given: zx's argv would read its own options (sh -c ...) as ours.
  const cut = process.argv.indexOf('--')
  const rest = cut === -1 ? [] : process.argv.slice(cut + 1)
  const [action, ...extra] = argv._.map(String).slice(0, argv._.length - rest.length)
  const { stack, project } = argv
  const fail = (message) => { console.error(message); process.exitCode = 1 }
  if (!['list', 'status', 'enter', 'sync'].includes(action) || typeof stack !== 'string' || extra.length > 0) return fail(usage)
  if (project !== undefined && (typeof project !== 'string' || !projectName.test(project))) {
    return fail(`--project: must be ${projectName.phrase} (got ${JSON.stringify(project)})`)
  }
  if ((action === 'enter' || action === 'sync') && project === undefined) return fail(`${action} needs --project P\n${usage}`)
  if (action === 'sync' && rest.length > 0) return fail(`sync takes no command\n${usage}`)
  if (argv.branch !== undefined && (action !== 'sync' || typeof argv.branch !== 'string')) return fail(`--branch NAME goes with sync only\n${usage}`)
  if (action === 'list' && (project !== undefined || rest.length > 0)) return fail(`list takes no --project and no command\n${usage}`)
  if (action === 'status' && rest.length > 0) return fail(`status takes no command\n${usage}`)

  const out = await $({ cwd: root })`pulumi stack output --json --stack ${stack}`.quiet()
  const outputs = JSON.parse(out.stdout)
  const { adminSshCommand } = outputs
  if (!adminSshCommand) throw new Error(`stack ${stack} has no adminSshCommand output yet: run pulumi up -s ${stack}`)
  if (project !== undefined && !(outputs.projects && project in outputs.projects)) {
    throw new Error(`stack ${stack} has no project ${project} (its projects: ${Object.keys(outputs.projects ?? {}).join(', ') || 'none'})`)
  }
  if (action === 'sync' && outputs.projects[project].mount) {
    throw new Error(`project ${project} shares ${outputs.projects[project].mount} (projects[].mount): its work is already there, nothing to sync`)
  }
  if (action === 'sync') return sync(adminSshCommand, project, outputs.projects[project].clone, argv.branch ?? `cc-sandbox/${project}`)
  const remote = ['sudo', '/usr/local/sbin/cc-sandbox-project', action, ...(project ? [project] : []), ...(rest.length ? ['--', ...rest] : [])]
  // adminSshCommand is already quoted for a shell; -t for a terminal, then the remote command as
  // one argument, every word quoted: the admin's shell on the other side parses it, and a `;` or
  // `$(...)` in the user's command must reach the worker's command, not run as the admin.
  const r = await $({ stdio: 'inherit', nothrow: true })`sh -c ${adminSshCommand + ' -t -- "$1"'} ssh ${remote.map(shellQuote).join(' ')}`
  process.exitCode = r.exitCode ?? 1
}

// The worker's bundle (cc-sandbox-project export), fetched into the repository the project cloned.
async function sync(adminSshCommand, project, repository, branch) {
  if (!repository) throw new Error(`project ${project} has no clone (projects[].clone): its work stays in the guest`)
  const { receiveBundle, checkBranch, printable } = requireSrc('drivers/handover.js')
  const { capture } = requireSrc('drivers/vm-query.js')
  checkBranch(repository, branch)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cc-sandbox-sync-'))
  try {
    const file = path.join(dir, 'sync.bundle')
    const remote = ['sudo', '/usr/local/sbin/cc-sandbox-project', 'export', project].map(shellQuote).join(' ')
    // Bounded as a save at removal is: bytes to disk, messages, time (src/drivers/vm-query.js).
    const r = capture(['sh', '-c', adminSshCommand + ' -T -- "$1"', 'ssh', remote], file, syncLimit, syncSeconds * 1000)
    process.stderr.write(printable(r.stderr))
    const code = r.code
    if (code === 4) {
      console.log(`project ${project}: nothing new since its code came in`)
      return
    }
    if (code !== 0) throw new Error(`the export of project ${project} failed (exit ${code}${r.why ? `, ${r.why}` : ''})`)
    const { before, after } = receiveBundle(repository, file, [branch])
    if (before === after) {
      console.log(`${branch} in ${repository} is already at ${after.slice(0, 12)}`)
      return
    }
    console.log(`${branch} in ${repository}: ${before ? `${before.slice(0, 12)} -> ` : 'new at '}${after.slice(0, 12)}`)
    // What is new: since the branch's last place, or (a new branch) beside the host's HEAD.
    // The guest's commits: bounded in time, and nothing in them (a signature) makes git run a program.
    const log = await $({ cwd: repository, nothrow: true })`timeout -k 5 60 git -c log.showSignature=false log --no-show-signature --no-mailmap --oneline ${`${before || 'HEAD'}..${after}`} -n 20`.quiet()
    // The subjects are the agent's to write: nothing in them reaches the terminal as a control.
    process.stdout.write(printable(log.stdout))
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch(reportError)
