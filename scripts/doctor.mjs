#!/usr/bin/env zx
// Checks this host for what `pulumi up` needs and prints how to fix each miss.
//   npm run doctor [-- --stack NAME | --config FILE]
import { createHash } from 'node:crypto'
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
  if (typeof argv.stack === 'string' || typeof argv.config === 'string') {
    const { loadStackConfig, stackFile, stackNameOf, isDirectory } = requireSrc('config/stack')
    const { missingHostFolders } = requireSrc('config/load')
    const file = typeof argv.config === 'string' ? argv.config : stackFile(argv.stack)
    const name = typeof argv.config === 'string' ? stackNameOf(file) : argv.stack
    try {
      config = loadStackConfig(file, name)
      hypervisor = config.hypervisor
      diskGiB = config.vm.diskGiB
      keyPath = config.sshPrivateKeyPath + '.pub'
      check(true, `stack ${name}: config is valid`)
      const missing = missingHostFolders(config, isDirectory)
      config.mounts.forEach((m, i) => {
        const miss = missing.find((x) => x.path.endsWith(`mounts[${i}].host`))
        check(!miss, `shared folder ${m.host} exists`, `mkdir -p ${m.host} (or change cc-sandbox:mounts[${i}].host)`)
      })
    } catch (err) {
      check(false, `stack ${name}: config is invalid`, err.message)
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
  // A clone project's code goes in and comes back with git; its work is taken in under GNU
  // timeout's bound (in its own process group, TERM then KILL).
  if (config && config.projects.some((p) => p.clone !== undefined)) {
    for (const tool of ['git', 'timeout']) {
      const found = await which(tool, { nothrow: true })
      check(!!found, `${tool} ${found ? 'found' : 'not found'} (clone projects)`,
        'install git and GNU coreutils (macOS: brew install git coreutils, with coreutils\' gnubin directory on PATH)')
    }
  }
  check(fs.existsSync(keyPath), `SSH public key ${keyPath}`, `ssh-keygen -t ed25519 -f ${keyPath.replace(/\.pub$/, '')}`)
  if (config && config.hypervisor === 'libvirt' && (await which('virsh', { nothrow: true }))) {
    await checkLibvirtHost(config)
  } else {
    const stat = await fs.statfs(os.homedir())
    const freeGiB = Math.floor((stat.bavail * stat.bsize) / 2 ** 30)
    check(freeGiB >= diskGiB + 5, `${freeGiB} GiB free in ${os.homedir()}`, `free at least ${diskGiB + 5} GiB, or lower cc-sandbox:vm.disk`)
  }

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

// libvirt: the host the stack names, before anything is created there: it answers, has the memory
// and disk the VM takes, has the network, and a usable place for the VM's disks (a directory on
// this host; on a remote host, the storage pool at storageDir, which pulumi up defines if missing).
async function checkLibvirtHost(c) {
  const uri = c.libvirt.uri
  // Over ssh, virsh must not wait on a password or host-key prompt (no_tty: ssh runs in BatchMode).
  const asked = /^[a-z0-9]+\+(ssh|libssh2|libssh):/.test(uri) && !/[?&]no_tty=/.test(uri) ? `${uri}${uri.includes('?') ? '&' : '?'}no_tty=1` : uri
  // virsh's labels (Active:, State:, Available:) in English whatever the user's locale.
  const virsh = (...args) => $({ env: { ...process.env, LC_ALL: 'C' } })`timeout 30 virsh --connect ${asked} ${args}`.nothrow().quiet()
  const said = (r) => (r.stderr || r.stdout).trim().split('\n').map((l) => l.trim()).filter(Boolean).join('; ')
  const version = await virsh('version')
  if (!check(version.exitCode === 0, `libvirt at ${uri} answers`,
    `${said(version)}: check the URI (cc-sandbox:libvirt.uri); for qemu+ssh, that ssh to the host works and its user may use libvirt`)) return

  const kib = (text, key) => Number(new RegExp(`^${key}\\s*:\\s*(\\d+) KiB`, 'm').exec(text)?.[1] ?? NaN)
  const mem = (await virsh('nodememstats')).stdout
  const freeMiB = Math.floor((kib(mem, 'free') + kib(mem, 'buffers') + kib(mem, 'cached')) / 1024)
  if (Number.isNaN(freeMiB)) {
    check(true, `the host reports no free memory (virsh nodememstats): not checked (the VM takes ${c.vm.memoryMiB} MiB)`)
  } else {
    check(freeMiB >= c.vm.memoryMiB, `${freeMiB} MiB of memory free on the host (the VM takes ${c.vm.memoryMiB})`, `free memory on the host, or lower cc-sandbox:vm.memory`)
  }

  const net = await virsh('net-info', c.libvirt.network)
  const active = /^Active:\s+yes\s*$/m.test(net.stdout)
  check(net.exitCode === 0 && active, `network ${c.libvirt.network} ${net.exitCode !== 0 ? 'does not exist' : active ? 'exists and is active' : 'exists but is not active'}`,
    net.exitCode !== 0 ? `define it on the host, or set cc-sandbox:libvirt.network (virsh --connect ${uri} net-list --all)` : `virsh --connect ${uri} net-start ${c.libvirt.network} && virsh --connect ${uri} net-autostart ${c.libvirt.network}`)

  const dir = c.libvirt.storageDir
  const needGiB = c.vm.diskGiB + 1
  if (/^qemu:\/\/\/|^qemu\+unix:/.test(uri)) {
    // On this host: the directory, or the nearest folder above it that exists (it is created there).
    let at = dir
    while (!fs.existsSync(at)) at = path.dirname(at)
    let writable = true
    try {
      fs.accessSync(at, fs.constants.W_OK)
    } catch {
      writable = false
    }
    check(writable && fs.statSync(at).isDirectory(), `storage directory ${dir} is usable${at === dir ? '' : ` (made in ${at})`}`,
      `make it writable for the user running pulumi (sudo install -d -o $USER ${dir}), or set cc-sandbox:libvirt.storageDir`)
    const stat = await fs.statfs(at)
    const freeGiB = Math.floor((stat.bavail * stat.bsize) / 2 ** 30)
    check(freeGiB >= needGiB, `${freeGiB} GiB free for disks in ${at}`, `free at least ${needGiB} GiB there, or lower cc-sandbox:vm.disk`)
    return
  }
  // A remote host: a storage pool whose directory is storageDir.
  const pools = (await virsh('pool-list', '--all', '--name')).stdout.split('\n').map((p) => p.trim()).filter(Boolean)
  // The pool's <target><path> (XML-escaped), compared as a path: /srv/vms/ is /srv/vms.
  const unxml = (t) => t.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&')
  let pool
  for (const name of pools) {
    const xml = (await virsh('pool-dumpxml', name)).stdout
    const at = /<target>[\s\S]*?<path>([^<]*)<\/path>/.exec(xml)?.[1]
    if (at !== undefined && path.posix.normalize(unxml(at)).replace(/(.)\/$/, '$1') === path.posix.normalize(dir).replace(/(.)\/$/, '$1')) pool = name
  }
  if (!pool) {
    // The driver defines it (src/drivers/libvirt/host-storage.sh), under this name.
    const name = `cc-sandbox-${createHash('sha256').update(dir.replace(/\/$/, '')).digest('hex').slice(0, 8)}`
    check(true, `no storage pool on the host is at ${dir} yet: pulumi up defines ${name} there (its room is checked once it exists)`)
    return
  }
  check(true, `storage pool ${pool} on the host is at ${dir}`)
  const info = (await virsh('pool-info', pool)).stdout
  const running = /^State:\s+running\s*$/m.test(info)
  if (!running) {
    check(true, `storage pool ${pool} is not running: pulumi up starts it (its room is checked once it runs)`)
    return
  }
  const avail = /^Available:\s+([\d.]+) (B|KiB|MiB|GiB|TiB|PiB)\s*$/m.exec(info)
  const availGiB = avail ? Number(avail[1]) * { B: 2 ** -30, KiB: 2 ** -20, MiB: 2 ** -10, GiB: 1, TiB: 2 ** 10, PiB: 2 ** 20 }[avail[2]] : NaN
  check(availGiB >= needGiB, `storage pool ${pool} is running with ${Number.isNaN(availGiB) ? 'unknown' : Math.floor(availGiB)} GiB free (the VM takes ${c.vm.diskGiB})`,
    `free at least ${needGiB} GiB in ${dir} on the host, or lower cc-sandbox:vm.disk`)
}

main().catch((err) => {
  console.error(`error: ${err.message}`)
  process.exitCode = 1
})
