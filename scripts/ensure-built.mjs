// Builds the native addon (release) and the TypeScript facade if either is
// missing or older than its sources, so `npm run demo` works on a fresh clone
// after `npm ci` with nothing else run first.
//
// `--release` builds the benchmark's addon: release code with the `bench`
// feature (its floor functions), rebuilding one that is up to date but was
// built otherwise (`npm test` builds a debug one). The build scripts record
// the profile in `.addon-profile` (not committed); an addon without that
// record counts as debug.
import { execSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const wantRelease = process.argv.includes('--release')
const newest = (dir) => {
  let t = 0
  for (const e of readdirSync(join(root, dir), { withFileTypes: true, recursive: true })) {
    if (e.isFile()) t = Math.max(t, statSync(join(e.parentPath ?? e.path, e.name)).mtimeMs)
  }
  return t
}
const profile = () => {
  try {
    return readFileSync(join(root, '.addon-profile'), 'utf8').trim()
  } catch {
    return 'debug'
  }
}
const addon = readdirSync(root).find((f) => f.endsWith('.node'))
const addonStale =
  !addon || !existsSync(join(root, 'binding.js')) || statSync(join(root, addon)).mtimeMs < newest('crates') || (wantRelease && profile() !== 'release-bench')
const distStale = !existsSync(join(root, 'dist/index.js')) || statSync(join(root, 'dist/index.js')).mtimeMs < newest('src')
if (addonStale) {
  execSync(wantRelease ? 'npm run build:bench' : 'npm run build:debug', { cwd: root, stdio: 'inherit' })
} else if (distStale) {
  execSync('npm run build:ts', { cwd: root, stdio: 'inherit' })
}
