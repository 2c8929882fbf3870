#!/usr/bin/env zx
// A stack's projects, from the host: each runs as a worker user of its own in the VM.
//   npm run project -- list --stack NAME
//   npm run project -- status --stack NAME [--project P]
//   npm run project -- enter --stack NAME --project P [-- COMMAND...]
// It logs in as the admin (the stack's adminSshCommand output) and runs cc-sandbox-project with
// sudo. Projects are added and removed in the stack's config (cc-sandbox:projects) with pulumi up.
import { $, argv } from 'zx'
import { reportError, requireSrc, root } from './lib/project.mjs'

const usage = 'usage: npm run project -- (list|status|enter) --stack NAME [--project P] [-- COMMAND...]'
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
  if (!['list', 'status', 'enter'].includes(action) || typeof stack !== 'string' || extra.length > 0) return fail(usage)
  if (project !== undefined && (typeof project !== 'string' || !projectName.test(project))) {
    return fail(`--project: must be ${projectName.phrase} (got ${JSON.stringify(project)})`)
  }
  if (action === 'enter' && project === undefined) return fail(`enter needs --project P\n${usage}`)
  if (action === 'list' && (project !== undefined || rest.length > 0)) return fail(`list takes no --project and no command\n${usage}`)
  if (action === 'status' && rest.length > 0) return fail(`status takes no command\n${usage}`)

  const out = await $({ cwd: root })`pulumi stack output --json --stack ${stack}`.quiet()
  const outputs = JSON.parse(out.stdout)
  const { adminSshCommand } = outputs
  if (!adminSshCommand) throw new Error(`stack ${stack} has no adminSshCommand output yet: run pulumi up -s ${stack}`)
  if (project !== undefined && !(outputs.projects && project in outputs.projects)) {
    throw new Error(`stack ${stack} has no project ${project} (its projects: ${Object.keys(outputs.projects ?? {}).join(', ') || 'none'})`)
  }
  const remote = ['sudo', '/usr/local/sbin/cc-sandbox-project', action, ...(project ? [project] : []), ...(rest.length ? ['--', ...rest] : [])]
  // adminSshCommand is already quoted for a shell; -t for a terminal, then the remote command as
  // one argument, every word quoted: the admin's shell on the other side parses it, and a `;` or
  // `$(...)` in the user's command must reach the worker's command, not run as the admin.
  const r = await $({ stdio: 'inherit', nothrow: true })`sh -c ${adminSshCommand + ' -t -- "$1"'} ssh ${remote.map(shellQuote).join(' ')}`
  process.exitCode = r.exitCode ?? 1
}

main().catch(reportError)
