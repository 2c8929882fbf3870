#!/usr/bin/env node
// The guest files an image carries (src/render/baked.ts): prints the id of the set (the sha256 of
// its manifest); with --out ROOT, also writes each file under ROOT (a root filesystem) with its
// mode, and the manifest beside them. scripts/build-image.sh runs it.
//   node scripts/guest-files.mjs [--out ROOT]
import fs from 'node:fs'
import path from 'node:path'
import { requireSrc } from './lib/project.mjs'

const usage = 'usage: node scripts/guest-files.mjs [--out ROOT]'

function main() {
  const args = process.argv.slice(2)
  if (!(args.length === 0 || (args.length === 2 && args[0] === '--out' && args[1] !== ''))) {
    console.error(usage)
    process.exitCode = 1
    return
  }
  const { bakedFiles, bakedId, bakedManifest, bakedManifestPath } = requireSrc('render/baked')
  const { loadTemplates } = requireSrc('render/templates')
  const templates = loadTemplates()
  const files = bakedFiles(templates)
  const manifest = bakedManifest(files)
  if (args.length === 2) {
    const root = path.resolve(args[1])
    const put = (p, content, mode) => {
      const target = path.join(root, p)
      // Folders that are not there yet are made as the guest's are: 0755.
      fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 })
      fs.writeFileSync(target, content, { mode })
      fs.chmodSync(target, mode)
    }
    for (const f of files) put(f.path, f.content, parseInt(f.mode, 8))
    put(bakedManifestPath, manifest, 0o644)
  }
  console.log(bakedId(templates))
}

try {
  main()
} catch (err) {
  console.error(`error: ${err && err.message ? err.message : err}`)
  process.exitCode = 1
}
