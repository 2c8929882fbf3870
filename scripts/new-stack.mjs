#!/usr/bin/env zx
// Scaffolds stacks/Pulumi.NAME.yaml from your git identity and SSH key, with the default presets.
//   npm run new-stack -- NAME [--hypervisor multipass|libvirt] [--key ~/.ssh/id_ed25519.pub] [--init]
import { $, argv, fs, path } from 'zx'
import { stringify } from 'yaml'
import { requireSrc, reportError, root } from './lib/project.mjs'

async function gitConfig(key) {
  const r = await $`git config --get ${key}`.nothrow().quiet()
  return r.exitCode === 0 ? r.stdout.trim() : undefined
}

async function main() {
  const name = String(argv._[0] ?? '')
  if (!/^[A-Za-z0-9_.-]{1,100}$/.test(name)) {
    console.error('usage: npm run new-stack -- NAME [--hypervisor multipass|libvirt] [--key PUBKEY] [--init]')
    process.exitCode = 1
    return
  }
  const { loadConfig } = requireSrc('config/load')
  const { hostContext, stackFile } = requireSrc('config/stack')
  const file = stackFile(name)
  if (fs.existsSync(file)) throw new Error(`${path.relative(root, file)} already exists; edit it or pick another name`)

  const config = {
    hypervisor: argv.hypervisor ?? 'multipass',
    ssh: { publicKeyPath: argv.key ?? '~/.ssh/id_ed25519.pub' },
    git: Object.fromEntries(Object.entries({ name: await gitConfig('user.name'), email: await gitConfig('user.email') }).filter(([, v]) => v)),
    allowlist: { presets: ['anthropic', 'github', 'npm'], domains: [] },
    firewall: { enabled: true, githubMeta: false, logDenied: true },
  }
  // Refuse to write anything the program would reject (e.g. no key at that path yet).
  loadConfig(name, config, hostContext())
  const doc = { config: Object.fromEntries(Object.entries(config).map(([k, v]) => [`cc-sandbox:${k}`, v])) }
  fs.writeFileSync(file, `# ${name}'s sandbox. Every key: README.md, "Configuration".\n` + stringify(doc))
  console.log(`wrote ${path.relative(root, file)}`)
  if (argv.init) {
    await $({ stdio: 'inherit', cwd: root })`pulumi stack init ${name} --secrets-provider passphrase`
  } else {
    console.log(`next: pulumi stack init ${name} --secrets-provider passphrase && pulumi up -s ${name}`)
  }
}

main().catch(reportError)
