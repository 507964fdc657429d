/**
 * Owns the large state directories: builds a directory whose trade ledger has
 * N slots allocated (every chunk written) and N/10 payload records, caches it
 * under the tmp dir keyed by its sizes, and measures on it: bootstrap time,
 * RSS and heap growth after bootstrap (in a fresh child process), bytes per
 * slot on disk, the metrics scan, and claim+fill throughput at that size.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const WINDOWS_MAX = 14_600 // windows per symbol: 100 chunks of 146 trade rows
const ORIGIN = Date.UTC(2026, 0, 5, 14, 30)
const FORMAT = 'v3' // the state directory's format version; bump when the fixture's shape changes too

/** Shape of a fixture with `slots` trade slots. */
export function fixtureShape(slots, records) {
  const rows = Math.ceil(slots / 7)
  const windows = Math.min(rows, WINDOWS_MAX)
  const symbols = Math.ceil(rows / windows)
  return { slots: symbols * windows * 7, records, windows, symbols }
}

export function fixtureConfig(ws, dir, shape) {
  return new ws.WindowSpaceConfig(dir, ws.WindowSpace.uniform({ origin: ORIGIN, windowDuration: 60_000, windowCount: shape.windows }))
}

/** The cached fixture directory for `slots` and `records`, built if missing. Returns its path, shape and build time. */
export function fixture(ws, cacheDir, slots, records) {
  const shape = fixtureShape(slots, records)
  const dir = join(cacheDir, `fixture-${FORMAT}-s${shape.slots}-r${records}`)
  const ready = `${dir}.ready`
  if (existsSync(ready) && existsSync(dir)) return { dir, shape, builtMs: null }
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(cacheDir, { recursive: true })
  const t0 = performance.now()
  const { controller: c } = ws.WindowSpaceController.bootstrap(fixtureConfig(ws, dir, shape))
  const rowsPerChunk = readFileSync(join(dir, 'trade-ledger.dat')).readUInt32LE(28)
  const kinds = ws.SlotKind.all()
  const stores = c.payloadStores()
  const ids = []
  for (let s = 0; s < shape.symbols; s++) ids.push(c.resolveSymbol(`S${s}`))
  const rf = stores.rfRate.append({ symbol: ids[0], windowIdx: 0, slotKind: kinds[0], payloadType: 'Parquet', uri: 'seed/rf.parquet', checksum: 1n, size: 1 })
  // Allocate every chunk of every symbol: one raw claim+fill of the rfRate slot of its first row.
  for (const sid of ids) {
    for (let w = 0; w < shape.windows; w += rowsPerChunk) {
      const v = c.raw.claim(sid, w, 0)
      c.raw.fill(sid, w, 0, v, 1, rf, 0, 1)
    }
  }
  // Payload records, spread over the three big stores, as engines would append them.
  const targets = [
    [stores.trades, kinds[1], 'option-trades'],
    [stores.quotes, kinds[2], 'option-quotes'],
    [stores.aggressor, kinds[5], 'option-aggressor'],
  ]
  for (let i = 0; i < records; i++) {
    const [store, kind, what] = targets[i % 3]
    const sym = i % shape.symbols
    const win = Math.floor(i / shape.symbols) % shape.windows
    store.append({ symbol: ids[sym], windowIdx: win, slotKind: kind, payloadType: 'Parquet', uri: `S${sym}/${win}/${what}.parquet`, checksum: BigInt(i), size: 4096 + (i % 1000) })
  }
  c.close()
  writeFileSync(ready, JSON.stringify(shape))
  return { dir, shape, builtMs: performance.now() - t0 }
}

/** Bytes on disk of a directory's ledgers and mapping tables. */
export function diskUsage(dir) {
  const size = (f) => {
    try {
      const st = statSync(join(dir, f))
      return { bytes: st.size, allocated: st.blocks * 512 }
    } catch {
      return { bytes: 0, allocated: 0 }
    }
  }
  const ledger = size('trade-ledger.dat')
  const maps = ['trades.map', 'quotes.map', 'aggressor.map', 'rf_rate.map', 'greeks.map', 'aggregations.map'].map(size).reduce((a, b) => ({ bytes: a.bytes + b.bytes, allocated: a.allocated + b.allocated }))
  return { ledger, enrichment: size('enrichment-ledger.dat'), maps }
}

/**
 * Bootstraps `dir` once in a fresh child process and reports memory: RSS and
 * V8 heap (used + external) before and after, with a GC on each side.
 */
export function probeBootstrap(dir, shape) {
  const probe = new URL('./probe-bootstrap.mjs', import.meta.url).pathname
  const r = spawnSync(process.execPath, ['--expose-gc', probe, dir, String(shape.windows)], { encoding: 'utf8', env: process.env })
  if (r.status !== 0) throw new Error(`bootstrap probe failed: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

/** Default cache directory of the fixtures. */
export function defaultCacheDir() {
  return join(tmpdir(), 'window-space-bench')
}

/**
 * Claim+fill throughput on a fixture: `ops` cycles through `controller.raw`
 * on distinct slots (kinds 1..6) visited in a scrambled order spread over the
 * whole ledger, then the touched slots are force-cleared so the cached fixture
 * stays claimable for the next run. Returns ns per cycle.
 */
export function scatteredCycles(ws, dir, shape, ops) {
  const { controller: c } = ws.WindowSpaceController.bootstrap(fixtureConfig(ws, dir, shape))
  const ids = c.symbols().map((_, i) => i)
  const M = shape.symbols * shape.windows * 6
  const n = Math.min(ops, M)
  let a = 1_000_003 // a prime step: k -> (a*k + 7) mod M visits distinct slots while gcd(a, M) = 1
  const gcd = (x, y) => (y === 0 ? x : gcd(y, x % y))
  while (gcd(a, M) !== 1) a += 2
  const pid = c.payloadStores().trades.length > 0 ? 0 : -1
  const qid = c.payloadStores().quotes.length > 0 ? 0 : -1
  const aid = c.payloadStores().aggressor.length > 0 ? 0 : -1
  const pidOf = [0, pid, qid, pid, qid, aid, aid]
  const sym = new Uint32Array(n)
  const win = new Uint32Array(n)
  const kind = new Uint32Array(n)
  for (let k = 0; k < n; k++) {
    const j = (a * k + 7) % M
    kind[k] = 1 + (j % 6)
    const row = Math.floor(j / 6)
    win[k] = row % shape.windows
    sym[k] = ids[Math.floor(row / shape.windows)]
  }
  let bad = 0
  const t0 = process.hrtime.bigint()
  for (let k = 0; k < n; k++) {
    const v = c.raw.claim(sym[k], win[k], kind[k])
    if (c.raw.fill(sym[k], win[k], kind[k], v, 1, pidOf[kind[k]], 0, 1) < 0) bad++
  }
  const ns = Number(process.hrtime.bigint() - t0) / n
  for (const s of ids) for (let k = 1; k < 7; k++) c.forceClearRange(s, { from: 0, to: shape.windows }, ws.SlotKind.all()[k])
  c.close()
  return { nsPerCycle: ns, cycles: n, bad }
}
