#!/usr/bin/env zx
// Bakes a cc-sandbox base image: Ubuntu 24.04 from Ubuntu's archive (verified against its pinned
// key) with every package the guest layers need, so that `pulumi up` on it downloads nothing.
// Nothing secret or per-developer is in it: users, keys, the allowlist and secrets come from the
// stack's cloud-init as with a stock image. The builder is scripts/build-image.sh, the same one
// that makes the end-to-end test's image.
//   sudo npm run bake -- [--out DIR] [--mirror URL] [--claude VERSION | --no-claude]
//   --out     where images are kept (default ~/cc-sandbox/images: Multipass on Linux reads only
//             non-hidden folders under your home); each build is DIR/<hash>/
//   --mirror  an Ubuntu archive mirror (default http://archive.ubuntu.com/ubuntu)
//   --claude  the Claude Code version to bake in (default: the one a stack installs unless it
//             pins another); a stack pinning another installs that one at first boot
import { argv } from 'zx'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { requireSrc, root } from './lib/project.mjs'

const usage = 'usage: sudo npm run bake -- [--out DIR] [--mirror URL] [--claude VERSION | --no-claude]'

function main() {
  const { out, mirror } = argv
  const claude = argv.claude === undefined ? requireSrc('config/load').defaultClaudeVersion : argv.claude
  if ((out !== undefined && typeof out !== 'string') || (mirror !== undefined && typeof mirror !== 'string') || (claude !== false && typeof claude !== 'string')) {
    console.error(usage)
    process.exitCode = 1
    return
  }
  // Under sudo, the invoking user's home, where Multipass can read the image.
  const home = process.env.SUDO_USER ? os.userInfo({ username: process.env.SUDO_USER }).homedir : os.homedir()
  const dir = path.resolve(out ?? path.join(home, 'cc-sandbox', 'images'))
  const args = ['--cache', dir, ...(mirror ? ['--mirror', mirror] : []), ...(claude ? ['--claude', claude] : [])]
  const r = spawnSync(path.join(root, 'scripts/build-image.sh'), args, { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' })
  if (r.status !== 0) {
    console.error(`error: scripts/build-image.sh failed (exit ${r.status})`)
    process.exitCode = 1
    return
  }
  const image = r.stdout.trim()
  fs.chmodSync(image, 0o755)
  for (const f of ['disk.qcow2', 'vmlinuz', 'initrd.img', 'cmdline']) fs.chmodSync(path.join(image, f), 0o644)
  const info = JSON.parse(fs.readFileSync(path.join(image, 'image.json'), 'utf8'))
  const disk = path.join(image, 'disk.qcow2')
  console.log(`baked ${info.release}, kernel ${info.kernel}${info.claude ? `, Claude Code ${info.claude}` : ''}: ${image}
  disk.qcow2 sha256 ${info.sha256['disk.qcow2']}

A stack names it so (stacks/Pulumi.<stack>.yaml):

  # Multipass
  cc-sandbox:vm:
    image: file://${disk}

  # libvirt on this host, booted by UEFI firmware (OVMF installed)
  cc-sandbox:libvirt:
    image: ${disk}
    firmware: uefi

  # libvirt on this host, its kernel booted directly (no firmware needed)
  cc-sandbox:libvirt:
    image: ${disk}
    kernel: ${path.join(image, 'vmlinuz')}
    initrd: ${path.join(image, 'initrd.img')}
    kernelArgs: ${fs.readFileSync(path.join(image, 'cmdline'), 'utf8').trim()}`)
}

main()
