#!/usr/bin/env zx
// Checks this host for what `pulumi up` needs and prints how to fix each miss.
//   npm run doctor [-- --stack NAME]
import { $, argv, fs, os, path, which } from 'zx'
import { requireSrc, root } from './lib/project.mjs'

const results = []
const check = (ok, what, fix) => results.push({ ok, what, fix })

async function version(cmd, args) {
  const r = await $`${cmd} ${args}`.nothrow().quiet()
  return r.exitCode === 0 ? (r.stdout || r.stderr).trim().split('\n')[0] : undefined
}

async function main() {
  let hypervisor = 'multipass'
  let diskGiB = 50
  let keyPath = path.join(os.homedir(), '.ssh', 'id_ed25519.pub')
  if (typeof argv.stack === 'string') {
    const { loadStackConfig, stackFile } = requireSrc('config/stack')
    try {
      const c = loadStackConfig(stackFile(argv.stack), argv.stack)
      hypervisor = c.hypervisor
      diskGiB = c.vm.diskGiB
      keyPath = c.sshPrivateKeyPath + '.pub'
      check(true, `stack ${argv.stack}: config is valid`)
    } catch (err) {
      check(false, `stack ${argv.stack}: config is invalid`, err.message)
    }
  }
  const major = Number(process.versions.node.split('.')[0])
  check(major >= 20, `node ${process.versions.node}`, 'install Node.js 20 or newer')
  check(fs.existsSync(path.join(root, 'node_modules', '@pulumi', 'pulumi')), 'npm packages installed', 'run: npm ci')
  const pulumi = (await which('pulumi', { nothrow: true })) && (await version('pulumi', ['version']))
  check(!!pulumi, `pulumi ${pulumi ?? 'not found'}`, 'install the Pulumi CLI: https://www.pulumi.com/docs/install/')
  check(process.env.PULUMI_CONFIG_PASSPHRASE !== undefined || process.env.PULUMI_CONFIG_PASSPHRASE_FILE !== undefined,
    'PULUMI_CONFIG_PASSPHRASE is set', 'export PULUMI_CONFIG_PASSPHRASE=... (the passphrase that protects this stack\'s secrets)')
  if (hypervisor === 'multipass') {
    const mp = await version('multipass', ['version'])
    check(!!mp, `multipass ${mp ?? 'not found'}`, 'install Multipass: sudo snap install multipass (Linux) or brew install --cask multipass (macOS)')
  } else {
    for (const tool of ['virsh', 'virt-install', 'qemu-img', 'genisoimage']) {
      const found = await which(tool, { nothrow: true })
      check(!!found, `${tool} ${found ? 'found' : 'not found'}`, 'sudo apt-get install libvirt-clients virtinst qemu-utils genisoimage (and libvirt-daemon-system on the VM host)')
    }
  }
  check(fs.existsSync(keyPath), `SSH public key ${keyPath}`, `ssh-keygen -t ed25519 -f ${keyPath.replace(/\.pub$/, '')}`)
  const stat = await fs.statfs(os.homedir())
  const freeGiB = Math.floor((stat.bavail * stat.bsize) / 2 ** 30)
  check(freeGiB >= diskGiB + 5, `${freeGiB} GiB free in ${os.homedir()}`, `free at least ${diskGiB + 5} GiB, or lower cc-sandbox:vm.disk`)

  for (const r of results) console.log(`${r.ok ? 'ok  ' : 'MISS'} ${r.what}${r.ok ? '' : `\n     fix: ${r.fix}`}`)
  process.exitCode = results.every((r) => r.ok) ? 0 : 1
}

main().catch((err) => {
  console.error(`error: ${err.message}`)
  process.exitCode = 1
})
