#!/usr/bin/env zx
// Renders a stack's cloud-init user-data without Pulumi.
//   npm run render -- --stack NAME         print the user-data
//   npm run render -- --config FILE        render from any stack file
//   npm run render -- ... --out DIR        write DIR/user-data, DIR/meta-data, DIR/files/<guest path>
import { argv } from 'zx'
import fs from 'node:fs'
import os from 'node:os'
import { requireSrc, reportError } from './lib/project.mjs'

const usage = 'usage: npm run render -- (--stack NAME | --config FILE) [--out DIR]'

function main() {
  const { stack, config, out } = argv
  if (!stack === !config || typeof (stack ?? config) !== 'string' || (out !== undefined && typeof out !== 'string')) {
    console.error(usage)
    process.exitCode = 1
    return
  }
  const { loadStackConfig, stackFile } = requireSrc('config/stack')
  const { renderGuest } = requireSrc('render')
  const { loadTemplates } = requireSrc('render/templates')
  const { writeRendered } = requireSrc('cli/render')
  const { readBaseImage } = requireSrc('render/base-image')
  const { libvirtDriver } = requireSrc('drivers/libvirt')
  const { multipass } = requireSrc('drivers/multipass')
  const file = config ?? stackFile(stack)
  const c = loadStackConfig(file, stack)
  // As the program renders it: a baked base image's guest files stay out of the user-data.
  const driver = c.hypervisor === 'multipass' ? multipass : libvirtDriver(os.homedir())
  const rendered = renderGuest(c, loadTemplates(), readBaseImage(driver.localImage(c), (f) => fs.readFileSync(f, 'utf8')))
  if (out) writeRendered(rendered, out)
  else process.stdout.write(rendered.userData)
}

try {
  main()
} catch (err) {
  reportError(err)
}
