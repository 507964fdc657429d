/**
 * The PostgreSQL backend's throughput on a throwaway server this script
 * starts (scripts/pg-server.mjs): claim+fill pairs per second with 4 client
 * connections and 16 pairs in flight, unbatched (one claim, one fill) and
 * batched (claimNextUnfilled + fillMany of 100), with synchronous_commit
 * off and on; WAL bytes per pair, the share of fills that were HOT updates,
 * and the p99 latency of an unbatched claim.
 *
 *   npm run bench:pg            default sizes
 *   node benchmark/pg.mjs --smoke   tiny sizes (proves it runs)
 *
 * Fills name one payload record appended up front (a fill checks that its
 * payload id exists; appends are measured by the mmap benchmark).
 */
import { createRequire } from 'node:module'

import pg from 'pg'

import { startPgServer } from '../scripts/pg-server.mjs'

const require = createRequire(import.meta.url)
const ws = require('../dist/index.js')
const smoke = process.argv.includes('--smoke')
const PAIRS = smoke ? 400 : 20_000
const BATCHED_PAIRS = smoke ? 2_000 : 200_000
const IN_FLIGHT = 16
const BATCH = 100

const server = await startPgServer({ port: 5439, settings: ['shared_buffers=256MB', 'max_wal_size=4GB'] })
const u = new URL(server.url)
const admin = new pg.Client({ host: decodeURIComponent(u.hostname), port: Number(u.port), user: 'postgres', database: 'postgres' })
await admin.connect()

async function setting(name, value) {
  await admin.query(`ALTER SYSTEM SET ${name} = '${value}'`)
  await admin.query('SELECT pg_reload_conf()')
}

async function walLsn() {
  return BigInt((await admin.query("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS b")).rows[0].b)
}

async function fillStats() {
  await admin.query('SELECT pg_stat_force_next_flush()')
  const r = await admin.query("SELECT n_tup_upd::bigint AS upd, n_tup_hot_upd::bigint AS hot FROM pg_stat_user_tables WHERE relname = 'ws_slots'")
  return { upd: Number(r.rows[0]?.upd ?? 0), hot: Number(r.rows[0]?.hot ?? 0) }
}

const kind = 'optionTrade'
let spaceNo = 0

async function open() {
  const ledger = await ws.WindowSpaceController.connect(server.url, {
    windowSpace: ws.WindowSpace.uniform({ origin: 0, windowDuration: 60_000, windowCount: 1_000_000 }),
    space: `bench-${++spaceNo}`,
    connections: 4,
  })
  await ledger.resolveSymbol('BENCH')
  const payloadId = await ledger.appendPayload('trades', { symbol: 'BENCH', windowIdx: 0, slotKind: kind, payloadType: 'Json', uri: 'x', checksum: 1n, size: 1 })
  return { ledger, payloadId }
}

async function unbatched() {
  const { ledger, payloadId } = await open()
  let next = 0
  const latencies = []
  const worker = async () => {
    for (;;) {
      const w = next++
      if (w >= PAIRS) return
      const t = performance.now()
      const c = await ledger.claim('BENCH', w, kind)
      latencies.push(performance.now() - t)
      await ledger.fill('BENCH', w, kind, { payloadType: 'Json', payloadId, version: c.version, checksum: 1n })
    }
  }
  const t0 = performance.now()
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker))
  const secs = (performance.now() - t0) / 1000
  latencies.sort((a, b) => a - b)
  await ledger.close()
  return { pairs: PAIRS, secs, p99ClaimMs: latencies[Math.floor(latencies.length * 0.99)] }
}

async function batched() {
  const { ledger, payloadId } = await open()
  let next = 0
  const worker = async () => {
    for (;;) {
      const start = next
      next += BATCH
      if (start >= BATCHED_PAIRS) return
      const claims = await ledger.claimNextUnfilled('BENCH', start, kind, BATCH)
      const results = await ledger.fillMany(claims.map((c) => ({ symbol: c.symbolId, windowIdx: c.windowIdx, slotKind: kind, meta: { payloadType: 'Json', payloadId, version: c.version, checksum: 1n } })))
      if (results.some((r) => !r.ok)) throw new Error('a batched fill was refused')
    }
  }
  const t0 = performance.now()
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker))
  const secs = (performance.now() - t0) / 1000
  await ledger.close()
  return { pairs: BATCHED_PAIRS, secs }
}

const rows = []
try {
  for (const sync of ['off', 'on']) {
    await setting('synchronous_commit', sync)
    for (const [mode, run] of [['unbatched', unbatched], ['batched', batched]]) {
      const wal0 = await walLsn()
      const s0 = await fillStats()
      const r = await run()
      const wal1 = await walLsn()
      const s1 = await fillStats()
      const upd = s1.upd - s0.upd
      rows.push({
        mode,
        synchronous_commit: sync,
        'pairs/s': Math.round(r.pairs / r.secs),
        'WAL bytes/pair': Math.round(Number(wal1 - wal0) / r.pairs),
        'HOT fills %': upd ? Math.round((100 * (s1.hot - s0.hot)) / upd) : null,
        'p99 claim ms': r.p99ClaimMs === undefined ? '' : r.p99ClaimMs.toFixed(2),
      })
    }
  }
  console.table(rows)
} finally {
  await admin.end()
  server.stop()
}
