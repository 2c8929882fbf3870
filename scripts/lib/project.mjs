// Lets zx scripts use the program's TypeScript modules (config loading, rendering) directly.
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const require = createRequire(import.meta.url)
let registered = false

/** Loads one of the project's TypeScript modules by its path from the root (src/..., test/...). */
export function requireProject(file) {
  if (!registered) {
    // sucrase strips types without type-checking: fast enough for every CLI start (npm test type-checks)
    require('sucrase/register/ts')
    registered = true
  }
  return require(path.join(root, file))
}

export const requireSrc = (module) => requireProject(path.join('src', module))

// Prints a config error's lines (each names the key path and value) and sets a failing exit code.
export function reportError(err) {
  if (err && err.name === 'ConfigError') {
    console.error(err.message)
  } else {
    console.error(`error: ${err && err.message ? err.message : err}`)
  }
  process.exitCode = 1
}
