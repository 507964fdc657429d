/**
 * Symbols at scale: the cost of adding a symbol and of looking up an unknown
 * one, at 10 symbols and after N symbols were added one by one through
 * `resolveSymbol`, and the memory a process holds for them. Prints tables
 * (console.table) and makes no assertion on time.
 *
 *   node benchmark/symbols.mjs                  1,000,000 symbols, buffered mode
 *   node benchmark/symbols.mjs --symbols 100000 --sync
 *
 * Rows: `add` is the mean cost of one new symbol (1,000 added one by one);
 * `miss (binding)` is a lookup of an unknown symbol through the addon's
 * `lookupSymbol` (what `symbolId` calls; -1 for unknown), on a second
 * controller of the directory, so each miss also asks the log's length;
 * `miss (symbolId)` is the same through the facade, which throws
 * `UnknownSymbolError`. Memory: RSS (the Rust side's names and hash table
 * are in it) and V8 heap of this process, whose facade also caches every id it
 * resolved, and of a second controller's open (`openExisting`) that reads the
 * whole log.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const require = createRequire(import.meta.url)
const ws = require('../dist/index.js')
const { native } = require('../dist/native.js')

const argv = process.argv.slice(2)
const arg = (name, dflt) => {
  const i = argv.indexOf(name)
  return i < 0 ? dflt : argv[i + 1]
}
const N = Number(arg('--symbols', 1_000_000))
const durability = argv.includes('--sync') ? 'sync' : 'buffered'
const dir = mkdtempSync(join(tmpdir(), 'ws-bench-symbols-'))
const MiB = (b) => `${(b / 1048576).toFixed(1)} MiB`
const fmt = (ns) => (ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : ns >= 1e3 ? `${(ns / 1e3).toFixed(2)} µs` : `${ns.toFixed(0)} ns`)
const now = () => process.hrtime.bigint()

const schedule = ws.WindowSpace.uniform({ origin: 0, windowDuration: 60_000, windowCount: 1000 })
const { controller: c } = ws.WindowSpaceController.bootstrap(new ws.WindowSpaceConfig(dir, schedule, { durability }))
const other = native.NativeController.openExisting(dir, durability, null)
let next = 0
const name = (i) => `SYM${String(i).padStart(7, '0')}`

function addNs(count) {
  const t = now()
  for (let i = 0; i < count; i++) {
    if (c.resolveSymbol(name(next)) !== next) throw new Error(`symbol ${next} got another id`)
    next++
  }
  return Number(now() - t) / count
}

function missBindingNs(count) {
  const t = now()
  for (let i = 0; i < count; i++) if (other.lookupSymbol(`MISS-${i}`) !== -1) throw new Error('an unknown symbol was found')
  return Number(now() - t) / count
}

function missFacadeNs(count) {
  const t = now()
  for (let i = 0; i < count; i++) {
    try {
      c.symbolId(`MISS-${i}`)
      throw new Error('an unknown symbol was found')
    } catch (e) {
      if (!(e instanceof ws.UnknownSymbolError)) throw e
    }
  }
  return Number(now() - t) / count
}

const rows = []
function measureAt(label) {
  missBindingNs(20_000) // warm up
  rows.push({ at: label, symbols: next, add: fmt(addNs(1000)), 'miss (binding)': fmt(missBindingNs(200_000)), 'miss (symbolId)': fmt(missFacadeNs(50_000)) })
}

addNs(10)
measureAt('10 symbols')
const before = process.memoryUsage()
const t = now()
addNs(N - next)
const totalS = Number(now() - t) / 1e9
const after = process.memoryUsage()
measureAt(`${N.toLocaleString('en')} symbols`)
console.log(`window-space ${durability}: symbols added one by one through resolveSymbol`)
console.table(rows)
console.log(`${(N - 1010).toLocaleString('en')} symbols added one by one in ${totalS.toFixed(2)} s (${fmt((totalS * 1e9) / (N - 1010))} each); symbols.log ${MiB(statSync(join(dir, 'symbols.log')).size)}`)

globalThis.gc?.()
const settled = process.memoryUsage()
const t2 = now()
const third = native.NativeController.openExisting(dir, durability, null)
const openMs = Number(now() - t2) / 1e6
const opened = process.memoryUsage()
console.table([
  { what: 'this process, during the adds (RSS / heap growth)', rss: MiB(after.rss - before.rss), heap: MiB(after.heapUsed - before.heapUsed) },
  { what: 'this process after the adds (absolute)', rss: MiB(settled.rss), heap: MiB(settled.heapUsed) },
  { what: `another controller opening the log (${openMs.toFixed(0)} ms)`, rss: MiB(opened.rss - settled.rss), heap: MiB(opened.heapUsed - settled.heapUsed) },
])
third.close()
other.close()
c.close()
rmSync(dir, { recursive: true, force: true })
