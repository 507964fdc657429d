// Builds the native addon (release) and the TypeScript facade if either is
// missing or older than its sources, so `npm run demo` works on a fresh clone
// after `npm ci` with nothing else run first.
import { execSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const newest = (dir) => {
  let t = 0
  for (const e of readdirSync(join(root, dir), { withFileTypes: true, recursive: true })) {
    if (e.isFile()) t = Math.max(t, statSync(join(e.parentPath ?? e.path, e.name)).mtimeMs)
  }
  return t
}
const addon = readdirSync(root).find((f) => f.endsWith('.node'))
const addonStale = !addon || !existsSync(join(root, 'binding.js')) || statSync(join(root, addon)).mtimeMs < newest('crates')
const distStale = !existsSync(join(root, 'dist/index.js')) || statSync(join(root, 'dist/index.js')).mtimeMs < newest('src')
if (addonStale) {
  execSync('npm run build', { cwd: root, stdio: 'inherit' })
} else if (distStale) {
  execSync('npm run build:ts', { cwd: root, stdio: 'inherit' })
}
