/**
 * Owns one measurement in a fresh process: bootstrap a state directory and
 * print, as JSON, the time it took and the process's RSS and V8 heap before
 * and after (after a GC each). Run with --expose-gc by fixture.mjs.
 *
 * Usage: node --expose-gc probe-bootstrap.mjs <stateDir> <windowCount>
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

const require = createRequire(import.meta.url)
const root = new URL('../..', import.meta.url).pathname
const ws = require(join(root, 'dist/index.js'))
const [dir, windows] = process.argv.slice(2)
const gc = globalThis.gc ?? (() => {})
const mem = () => {
  gc()
  gc()
  const m = process.memoryUsage()
  // Linux splits RSS into anonymous memory (V8 and native heaps) and file pages (the mappings).
  const status = (() => {
    try {
      return readFileSync('/proc/self/status', 'utf8')
    } catch {
      return ''
    }
  })()
  const kb = (name) => {
    const hit = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)
    return hit ? Number(hit[1]) * 1024 : null
  }
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, rssAnon: kb('RssAnon'), rssFile: kb('RssFile') }
}
const cfg = new ws.WindowSpaceConfig(dir, ws.WindowSpace.uniform({ origin: Date.UTC(2026, 0, 5, 14, 30), windowDuration: 60_000, windowCount: Number(windows) }))
const before = mem()
const t0 = performance.now()
const { controller, storageReport } = ws.WindowSpaceController.bootstrap(cfg)
const elapsedMs = performance.now() - t0
const after = mem()
const records = storageReport.stores.reduce((n, s) => n + (s.entries ?? s.records ?? 0), 0)
process.stdout.write(JSON.stringify({ elapsedMs, reportMs: storageReport.elapsedMs, before, after, records, stores: storageReport.stores }))
controller.close()
