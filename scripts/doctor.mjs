#!/usr/bin/env zx
// Checks this host for what `pulumi up` needs and prints how to fix each miss.
//   npm run doctor [-- --stack NAME]
import { $, argv, fs, os, path, which } from 'zx'
import { requireSrc, root } from './lib/project.mjs'

const results = []
const check = (ok, what, fix) => {
  results.push({ ok, what, fix })
  return ok
}

async function version(cmd, args) {
  const r = await $`${cmd} ${args}`.nothrow().quiet()
  return r.exitCode === 0 ? (r.stdout || r.stderr).trim().split('\n')[0] : undefined
}

async function main() {
  let hypervisor = 'multipass'
  let diskGiB = 50
  let keyPath = path.join(os.homedir(), '.ssh', 'id_ed25519.pub')
  let config
  if (typeof argv.stack === 'string') {
    const { loadStackConfig, stackFile, isDirectory } = requireSrc('config/stack')
    const { missingHostFolders } = requireSrc('config/load')
    try {
      config = loadStackConfig(stackFile(argv.stack), argv.stack)
      hypervisor = config.hypervisor
      diskGiB = config.vm.diskGiB
      keyPath = config.sshPrivateKeyPath + '.pub'
      check(true, `stack ${argv.stack}: config is valid`)
      const missing = missingHostFolders(config, isDirectory)
      config.mounts.forEach((m, i) => {
        const miss = missing.find((x) => x.path.endsWith(`mounts[${i}].host`))
        check(!miss, `shared folder ${m.host} exists`, `mkdir -p ${m.host} (or change cc-sandbox:mounts[${i}].host)`)
      })
    } catch (err) {
      check(false, `stack ${argv.stack}: config is invalid`, err.message)
    }
  }
  const major = Number(process.versions.node.split('.')[0])
  check(major >= 22, `node ${process.versions.node}`, 'install Node.js 22 or newer (the current LTS)')
  check(fs.existsSync(path.join(root, 'node_modules', '@pulumi', 'pulumi')), 'npm packages installed', 'run: npm ci')
  const pulumi = (await which('pulumi', { nothrow: true })) && (await version('pulumi', ['version']))
  check(!!pulumi, `pulumi ${pulumi ?? 'not found'}`, 'install the Pulumi CLI: https://www.pulumi.com/docs/install/')
  check(process.env.PULUMI_CONFIG_PASSPHRASE !== undefined || process.env.PULUMI_CONFIG_PASSPHRASE_FILE !== undefined,
    'PULUMI_CONFIG_PASSPHRASE is set', 'export PULUMI_CONFIG_PASSPHRASE=... (the passphrase that protects this stack\'s secrets)')
  if (hypervisor === 'multipass') {
    await checkMultipass()
  } else {
    // curl, gpgv and sha256sum download and verify a base image given by URL (fetch-image.sh).
    for (const tool of ['virsh', 'virt-install', 'qemu-img', 'genisoimage', 'curl', 'gpgv', 'sha256sum', 'flock']) {
      const found = await which(tool, { nothrow: true })
      check(!!found, `${tool} ${found ? 'found' : 'not found'}`, 'sudo apt-get install libvirt-clients virtinst qemu-utils genisoimage curl gpgv coreutils util-linux (and libvirt-daemon-system on the VM host)')
    }
  }
  check(fs.existsSync(keyPath), `SSH public key ${keyPath}`, `ssh-keygen -t ed25519 -f ${keyPath.replace(/\.pub$/, '')}`)
  const stat = await fs.statfs(os.homedir())
  const freeGiB = Math.floor((stat.bavail * stat.bsize) / 2 ** 30)
  check(freeGiB >= diskGiB + 5, `${freeGiB} GiB free in ${os.homedir()}`, `free at least ${diskGiB + 5} GiB, or lower cc-sandbox:vm.disk`)

  for (const r of results) console.log(`${r.ok ? 'ok  ' : 'MISS'} ${r.what}${r.ok ? '' : `\n     fix: ${r.fix}`}`)
  process.exitCode = results.every((r) => r.ok) ? 0 : 1
}

// Multipass: the client, whether its daemon answers (`version` always exits 0 and lists
// multipassd only when the daemon answered), and the driver the daemon uses.
async function checkMultipass() {
  const install = 'install Multipass: sudo snap install multipass (Linux) or brew install --cask multipass (macOS)'
  if (!(await which('multipass', { nothrow: true }))) return check(false, 'multipass not found', install)
  const r = await $`multipass version --format json`.nothrow().quiet()
  let v = {}
  try {
    v = JSON.parse(r.stdout)
  } catch {}
  check(!!v.multipass, `multipass ${v.multipass ?? '(no version reported)'}`, install)
  const [major, minor] = String(v.multipass ?? '0.0').split('.').map(Number)
  check(major > 1 || (major === 1 && minor >= 13), `multipass ${v.multipass ?? '?'} is 1.13 or newer (exec --no-map-working-directory)`,
    'update Multipass: sudo snap refresh multipass')
  if (!check(!!v.multipassd, v.multipassd ? `multipassd ${v.multipassd} answers` : 'multipassd does not answer',
    'start the daemon: sudo snap start multipass (Linux), or reopen Multipass (macOS)')) return
  const driver = (await $`multipass get local.driver`.nothrow().quiet()).stdout.trim()
  check(['qemu', 'hyperv', 'virtualbox', 'lxd', 'libvirt'].includes(driver), `multipass driver ${driver || 'unknown'}`,
    'multipass set local.driver=qemu')
}

main().catch((err) => {
  console.error(`error: ${err.message}`)
  process.exitCode = 1
})
