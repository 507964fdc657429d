/**
 * Owns the native-call floor: loads window-space's facade and its addon's
 * floor functions (`fastEmpty`, `fastCasInternal` in
 * crates/window-space-node/src/fast.rs), and builds and loads the C++ fixture
 * addon of benchmark/floor-addon (node-addon-api and plain Node-API). A failed
 * C++ build is reported, never thrown: the run goes on without those rows.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

export const root = new URL('../..', import.meta.url).pathname
const require = createRequire(import.meta.url)

/** The public facade (dist/index.js) and the addon's hand-written functions. */
export function loadWindowSpace() {
  const ws = require(join(root, 'dist/index.js'))
  const { fast } = require(join(root, 'dist/native.js'))
  return { ws, fast }
}

/**
 * Builds (if missing or older than its sources) and loads the C++ floor addon.
 * @returns {{ addon: object | null, error: string | null }}
 */
export function loadCppFloor() {
  const dir = join(root, 'benchmark/floor-addon')
  const built = join(dir, 'build/Release/floor.node')
  try {
    const newest = Math.max(statSync(join(dir, 'floor.cc')).mtimeMs, statSync(join(dir, 'binding.gyp')).mtimeMs)
    if (!existsSync(built) || statSync(built).mtimeMs < newest) {
      const gyp = join(root, 'node_modules/node-gyp/bin/node-gyp.js')
      if (!existsSync(gyp)) return { addon: null, error: 'node-gyp is not installed (npm ci installs it as a devDependency)' }
      // --nodedir: build against the headers installed with node (/usr/include/node); nothing is downloaded.
      const nodedir = process.env.WS_BENCH_NODEDIR ?? process.env.npm_config_nodedir ?? '/usr'
      const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`], { cwd: dir, encoding: 'utf8' })
      if (r.status !== 0) {
        const lines = `${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.trim().split('\n')
        const generic = /gyp ERR! (node -v|node-gyp -v|not ok|cwd|command|System)/
        const tail = (lines.filter((l) => /ERR!|error/i.test(l) && !generic.test(l)).slice(0, 3).join(' | ') || lines.slice(-3).join(' | ')).trim()
        return { addon: null, error: `node-gyp rebuild failed (exit ${r.status}): ${tail}` }
      }
    }
    return { addon: require(built), error: null }
  } catch (e) {
    return { addon: null, error: `C++ floor addon unavailable: ${e.message}` }
  }
}
