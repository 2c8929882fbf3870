#!/usr/bin/env zx
// Opens a shell (or runs a command) in a stack's VM, from the stack's outputs.
//   npm run ssh -- --stack NAME [-- COMMAND...]
import { $, argv } from 'zx'
import { reportError, root } from './lib/project.mjs'

async function main() {
  const stack = argv.stack
  if (typeof stack !== 'string') {
    console.error('usage: npm run ssh -- --stack NAME [-- COMMAND...]')
    process.exitCode = 1
    return
  }
  const out = await $({ cwd: root })`pulumi stack output --json --stack ${stack}`.quiet()
  const { sshCommand } = JSON.parse(out.stdout)
  if (!sshCommand) throw new Error(`stack ${stack} has no sshCommand output yet: run pulumi up -s ${stack}`)
  // sshCommand is already quoted for a shell; the command words are passed as ssh's own arguments.
  const r = await $({ stdio: 'inherit', nothrow: true })`sh -c ${sshCommand + ' "$@"'} ssh ${argv._.map(String)}`
  process.exitCode = r.exitCode ?? 1
}

main().catch(reportError)
