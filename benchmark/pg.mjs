/**
 * The PostgreSQL backend's throughput beside two PostgreSQL job queues,
 * pg-boss and graphile-worker, on one throwaway server this script starts
 * (scripts/pg-server.mjs). Every contender gets 4 client connections and 16
 * units of work in flight, unbatched and batched (100), with
 * synchronous_commit off and on; each contender and mode runs in a fresh
 * database of its own, dropped afterwards.
 *
 * The unit of work: for window-space a claim+fill pair; for a job queue one
 * job inserted and then fetched and completed ("a job"). Measured per
 * contender and mode: units per second, WAL bytes per unit
 * (pg_current_wal_lsn before and after, after setup, so schema creation is
 * not counted), the share of row updates that were HOT (window-space: the
 * fills, i.e. updates of ws_slots' partitions; a queue: all updates of its tables), and
 * the p99 latency of an unbatched claim (window-space) or job fetch (a
 * queue).
 *
 *   npm run bench:pg                  default sizes; writes benchmark/results/pg.json
 *   node benchmark/pg.mjs --smoke     tiny sizes (proves it runs); writes benchmark/results/pg-smoke.json
 *   node benchmark/pg.mjs --out FILE  results elsewhere
 *   node benchmark/pg.mjs --only pg-boss,graphile-worker   only those contenders
 *
 * `node benchmark/pg-table.mjs [FILE]` prints the Markdown tables for the
 * docs from the results file.
 */
import { EventEmitter } from 'node:events'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { cpus, release, totalmem } from 'node:os'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

import pg from 'pg'

import { startPgServer } from '../scripts/pg-server.mjs'
import { WINDOW_SPACE, evaluatePgTargets } from './lib/pg-targets.mjs'

// graphile-worker reads this once, when it loads: without it every completed
// job is logged at info level (its own performance test sets it too).
process.env.NO_LOG_SUCCESS = '1'
const { Logger, makeWorkerUtils, run: runGraphileWorker } = await import('graphile-worker')
const { default: PgBoss } = await import('pg-boss')

const require = createRequire(import.meta.url)
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

const argv = process.argv.slice(2)
const smoke = argv.includes('--smoke')
const outArg = argv.indexOf('--out')
const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1].split(',') : null
const CONTENDER_NAMES = [WINDOW_SPACE, 'pg-boss', 'graphile-worker']
if (only?.some((n) => !CONTENDER_NAMES.includes(n))) throw new Error(`--only takes names from: ${CONTENDER_NAMES.join(', ')}`)
const out = resolve(root, outArg >= 0 ? argv[outArg + 1] : smoke ? 'benchmark/results/pg-smoke.json' : 'benchmark/results/pg.json')

const CONNECTIONS = 4
const IN_FLIGHT = 16
const BATCH = 100
/** Units per run, by contender kind and mode; a queue run also stops taking new work after QUEUE_SECONDS. */
const SIZES = {
  windowSpace: { unbatched: smoke ? 400 : 20_000, batched: smoke ? 2_000 : 200_000 },
  queue: { unbatched: smoke ? 400 : 30_000, batched: smoke ? 2_000 : 200_000 },
}
const QUEUE_SECONDS = smoke ? 5 : 20

const SERVER_SETTINGS = ['shared_buffers=256MB', 'max_wal_size=4GB']
const server = await startPgServer({ port: 5439, settings: SERVER_SETTINGS })
const u = new URL(server.url)
const socketDir = decodeURIComponent(u.hostname)
const pgConfig = (database, extra = {}) => ({ host: socketDir, port: Number(u.port), user: 'postgres', database, ...extra })
const admin = new pg.Client(pgConfig('postgres'))
await admin.connect()

async function setting(name, value) {
  await admin.query(`ALTER SYSTEM SET ${name} = '${value}'`)
  await admin.query('SELECT pg_reload_conf()')
}

async function walLsn() {
  return BigInt((await admin.query("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS b")).rows[0].b)
}

async function createDatabase(name) {
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  await admin.query(`CREATE DATABASE ${name}`)
}

/** Waits until no session but ours is connected to `db` (a backend flushes its table statistics as it exits). */
async function backendsGone(db) {
  const until = performance.now() + 10_000
  while ((await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [db])).rows[0].n > 0) {
    if (performance.now() > until) throw new Error(`sessions still connected to ${db}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** Row updates and HOT updates so far in `db`, over the tables whose names match the LIKE pattern `tables`, or all user tables. */
async function updateStats(db, tables) {
  const c = new pg.Client(pgConfig(db))
  await c.connect()
  try {
    const r = await c.query(
      'SELECT coalesce(sum(n_tup_upd), 0)::bigint AS upd, coalesce(sum(n_tup_hot_upd), 0)::bigint AS hot FROM pg_stat_user_tables WHERE $1::text IS NULL OR relname LIKE $1',
      [tables ?? null],
    )
    return { upd: Number(r.rows[0].upd), hot: Number(r.rows[0].hot) }
  } finally {
    await c.end()
  }
}

/**
 * Has a pool open all 4 of its connections before the run, as window-space's
 * connect does, so that no run counts connection setup: 4 statements at once
 * through `query`, each holding its connection a moment.
 */
async function openAll(query) {
  await Promise.all(Array.from({ length: CONNECTIONS }, () => query('SELECT pg_sleep(0.05)')))
}

const p99 = (xs) => {
  if (!xs.length) return null
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))]
}

// ---------------------------------------------------------------------------
// window-space: claim+fill pairs.

const kind = 'optionTrade'

const windowSpace = {
  name: WINDOW_SPACE,
  unit: 'pair',
  // The partitions of ws_slots (the partitioned table itself keeps no row statistics).
  hotTables: 'ws\\_slots\\_%',
  size: SIZES.windowSpace,
  /** Fills name one payload record appended here (a fill checks that its payload id exists). */
  async setup(db) {
    const ws = require('../dist/index.js')
    const url = server.url.replace(/\/postgres$/, `/${db}`)
    const ledger = await ws.WindowSpaceController.connect(url, {
      windowSpace: ws.WindowSpace.uniform({ origin: 0, windowDuration: 60_000, windowCount: 1_000_000 }),
      space: 'bench',
      connections: CONNECTIONS,
    })
    await ledger.resolveSymbol('BENCH')
    const payloadId = await ledger.appendPayload('trades', { symbol: 'BENCH', windowIdx: 0, slotKind: kind, payloadType: 'Json', uri: 'x', checksum: 1n, size: 1 })
    return { ledger, payloadId }
  },
  /** Each of the 16 lanes claims the next window, then fills it. */
  async unbatched({ ledger, payloadId }, total) {
    let next = 0
    const latencies = []
    const lane = async () => {
      for (;;) {
        const w = next++
        if (w >= total) return
        const t = performance.now()
        const c = await ledger.claim('BENCH', w, kind)
        latencies.push(performance.now() - t)
        await ledger.fill('BENCH', w, kind, { payloadType: 'Json', payloadId, version: c.version, checksum: 1n })
      }
    }
    const t0 = performance.now()
    await Promise.all(Array.from({ length: IN_FLIGHT }, lane))
    return { units: total, secs: (performance.now() - t0) / 1000, p99Ms: p99(latencies) }
  },
  /** Each lane claims the next 100 windows in one call (claimNextUnfilled), then fills them in one call (fillMany). */
  async batched({ ledger, payloadId }, total) {
    let next = 0
    const lane = async () => {
      for (;;) {
        const start = next
        next += BATCH
        if (start >= total) return
        const claims = await ledger.claimNextUnfilled('BENCH', start, kind, BATCH)
        const results = await ledger.fillMany(claims.map((c) => ({ symbol: c.symbolId, windowIdx: c.windowIdx, slotKind: kind, meta: { payloadType: 'Json', payloadId, version: c.version, checksum: 1n } })))
        if (results.some((r) => !r.ok)) throw new Error('a batched fill was refused')
      }
    }
    const t0 = performance.now()
    await Promise.all(Array.from({ length: IN_FLIGHT }, lane))
    return { units: total, secs: (performance.now() - t0) / 1000, p99Ms: null }
  },
  async close({ ledger }) {
    await ledger.close()
  },
}

// ---------------------------------------------------------------------------
// pg-boss: its own pool of 4 connections; each call below is one statement.
// Its highest-throughput documented path: insert() of many jobs in one
// statement, fetch() with batchSize, complete() of an array of ids. These
// fetch() and complete() calls are what its work() runs, called here in a
// loop: work() waits out its polling interval (at least 0.5 s) after every
// fetch, full or empty, so one work() takes at most one batch per interval.

const QUEUE = 'bench'

const pgBoss = {
  name: 'pg-boss',
  unit: 'job',
  hotTables: null,
  size: SIZES.queue,
  /**
   * supervise and schedule off: maintenance (every 2 minutes by default)
   * and cron are not on the job path; `migrate` installs the schema here,
   * before measuring.
   */
  async setup(db) {
    const errors = []
    const boss = new PgBoss({ ...pgConfig(db), max: CONNECTIONS, supervise: false, schedule: false })
    boss.on('error', (e) => errors.push(e))
    await boss.start()
    await boss.createQueue(QUEUE)
    await openAll((sql) => boss.getDb().executeSql(sql))
    return { boss, errors }
  },
  /**
   * Each lane: send() one job, fetch() one job (batchSize 1), complete() it.
   * A fetch can come back empty while the jobs ready are row-locked by other
   * lanes' fetches (SKIP LOCKED); the lane then fetches again.
   */
  async unbatched(ctx, total, deadline) {
    const { boss } = ctx
    let issued = 0
    let done = 0
    let emptyFetches = 0
    const latencies = []
    const lane = async () => {
      for (;;) {
        if (issued >= total || performance.now() > deadline) return
        issued++
        await boss.send(QUEUE, { n: issued })
        let job
        for (;;) {
          const t = performance.now()
          const jobs = await boss.fetch(QUEUE)
          if (jobs.length) {
            latencies.push(performance.now() - t)
            job = jobs[0]
            break
          }
          emptyFetches++
        }
        const r = await boss.complete(QUEUE, job.id)
        if (r.affected !== 1) throw new Error(`pg-boss completed ${r.affected} of 1 job`)
        done++
      }
    }
    const t0 = performance.now()
    await Promise.all(Array.from({ length: IN_FLIGHT }, lane))
    return { units: done, secs: (performance.now() - t0) / 1000, p99Ms: p99(latencies), emptyFetches }
  },
  /**
   * Each lane: insert() 100 jobs in one call, fetch() up to 100 in one call
   * (batchSize), complete() the fetched ids in one call; fetches again until
   * it has taken 100.
   */
  async batched(ctx, total, deadline) {
    const { boss } = ctx
    let issued = 0
    let done = 0
    let emptyFetches = 0
    const lane = async () => {
      for (;;) {
        if (issued >= total || performance.now() > deadline) return
        const n0 = issued
        issued += BATCH
        await boss.insert(Array.from({ length: BATCH }, (_, i) => ({ name: QUEUE, data: { n: n0 + i } })))
        for (let got = 0; got < BATCH; ) {
          const jobs = await boss.fetch(QUEUE, { batchSize: BATCH - got })
          if (!jobs.length) {
            emptyFetches++
            continue
          }
          const r = await boss.complete(QUEUE, jobs.map((j) => j.id))
          if (r.affected !== jobs.length) throw new Error(`pg-boss completed ${r.affected} of ${jobs.length} jobs`)
          got += jobs.length
        }
        done += BATCH
      }
    }
    const t0 = performance.now()
    await Promise.all(Array.from({ length: IN_FLIGHT }, lane))
    return { units: done, secs: (performance.now() - t0) / 1000, p99Ms: null, emptyFetches }
  },
  async close({ boss, errors }) {
    await boss.stop({ graceful: false, wait: true })
    if (errors.length) throw new Error(`pg-boss reported errors: ${errors.map((e) => e.message).join('; ')}`)
  },
}

// ---------------------------------------------------------------------------
// graphile-worker: jobs are run by its runner (run() with a task list), the
// consumer its API offers; its get-job and complete queries are internal.
// Producers add jobs with workerUtils on the same pool. The pool has 5
// connections: the runner holds one for LISTEN, so 4 carry the queries
// (window-space, when it watches, opens its LISTEN connection besides its 4).

// Its warnings and errors are printed, except the one that a pool smaller
// than the concurrency may be slow: 4 query connections is this benchmark's
// rule for every contender, and concurrency 4 instead of 16 measured no faster.
const graphileLogger = new Logger(() => (level, message) => {
  if ((level === 'error' || level === 'warning') && !/maxPoolSize \(\d+\) smaller than concurrency/.test(message)) console.error(`graphile-worker ${level}: ${message}`)
})

const graphileWorker = {
  name: 'graphile-worker',
  unit: 'job',
  hotTables: null,
  size: SIZES.queue,
  /**
   * Unbatched: the library's defaults, one get-job query and one complete
   * query per job. Batched: its highest-throughput path, the batching its
   * performance documentation describes and its own performance test turns
   * on: `localQueue` (the runner fetches and locks 100 jobs in one query and
   * hands them to its workers) and `completeJobBatchDelay: 0` (completions
   * issued in the same tick go to the database as one query; with no-op
   * tasks that is a whole local queue of 100).
   */
  async setup(db, mode) {
    const pool = new pg.Pool(pgConfig(db, { max: CONNECTIONS + 1 }))
    const errors = []
    // The handlers graphile-worker asks of a pool it is given: an idle client's error, and each client's own.
    pool.on('error', (e) => errors.push(e))
    pool.on('connect', (client) => client.on('error', (e) => errors.push(e)))
    const utils = await makeWorkerUtils({ pgPool: pool, logger: graphileLogger })
    await utils.migrate()
    const events = new EventEmitter()
    const preset = mode === 'batched' ? { worker: { localQueue: { size: BATCH }, completeJobBatchDelay: 0 } } : {}
    await openAll((sql) => pool.query(sql))
    const runner = await runGraphileWorker({ pgPool: pool, concurrency: IN_FLIGHT, noHandleSignals: true, logger: graphileLogger, events, preset, taskList: { [QUEUE]: async () => {} } }, undefined, [])
    return { pool, utils, runner, events, errors }
  },
  /**
   * Waiting for a job: resolved by the runner's `job:complete` event, which
   * it emits once it has issued the job's completion (the query may still be
   * in flight); the run ends when the jobs table is empty.
   */
  tracker(events, errors) {
    const waiting = new Map()
    const completed = new Set()
    events.on('job:complete', ({ job, error }) => {
      if (error) errors.push(error)
      const id = String(job.id)
      const resolveWait = waiting.get(id)
      if (resolveWait) {
        waiting.delete(id)
        resolveWait()
      } else completed.add(id)
    })
    return (id) =>
      completed.delete(String(id)) ? Promise.resolve() : new Promise((r) => waiting.set(String(id), r))
  },
  async drained(pool) {
    while ((await pool.query('SELECT EXISTS (SELECT 1 FROM graphile_worker._private_jobs) AS any')).rows[0].any) await new Promise((r) => setTimeout(r, 2))
  },
  /**
   * Each lane: addJob() one job, then waits until a worker of the runner
   * (concurrency 16) has run and completed it. Fetch latency: from a
   * worker's `worker:getJob:start` to its `job:start`, for fetches that found
   * a job.
   */
  async unbatched(ctx, total, deadline) {
    const { utils, events, errors, pool } = ctx
    const completion = this.tracker(events, errors)
    const fetchStart = new Map()
    const latencies = []
    events.on('worker:getJob:start', ({ worker }) => fetchStart.set(worker, performance.now()))
    events.on('worker:getJob:empty', ({ worker }) => fetchStart.delete(worker))
    events.on('job:start', ({ worker }) => {
      const t = fetchStart.get(worker)
      if (t !== undefined) latencies.push(performance.now() - t)
      fetchStart.delete(worker)
    })
    let issued = 0
    let done = 0
    const lane = async () => {
      for (;;) {
        if (issued >= total || performance.now() > deadline) return
        issued++
        const job = await utils.addJob(QUEUE, { n: issued })
        await completion(job.id)
        done++
      }
    }
    const t0 = performance.now()
    await Promise.all(Array.from({ length: IN_FLIGHT }, lane))
    await this.drained(pool)
    return { units: done, secs: (performance.now() - t0) / 1000, p99Ms: p99(latencies) }
  },
  /** Each lane: addJobs() 100 jobs in one call, then waits until all 100 are completed. */
  async batched(ctx, total, deadline) {
    const { utils, events, errors, pool } = ctx
    const completion = this.tracker(events, errors)
    let issued = 0
    let done = 0
    const lane = async () => {
      for (;;) {
        if (issued >= total || performance.now() > deadline) return
        const n0 = issued
        issued += BATCH
        const jobs = await utils.addJobs(Array.from({ length: BATCH }, (_, i) => ({ identifier: QUEUE, payload: { n: n0 + i } })))
        await Promise.all(jobs.map((j) => completion(j.id)))
        done += BATCH
      }
    }
    const t0 = performance.now()
    await Promise.all(Array.from({ length: IN_FLIGHT }, lane))
    await this.drained(pool)
    return { units: done, secs: (performance.now() - t0) / 1000, p99Ms: null }
  },
  async close({ runner, utils, pool, errors }) {
    await runner.stop()
    await utils.release()
    await pool.end()
    if (errors.length) throw new Error(`graphile-worker reported errors: ${errors.map((e) => e.message ?? String(e)).join('; ')}`)
  },
}

// ---------------------------------------------------------------------------

const contenders = [windowSpace, pgBoss, graphileWorker].filter((c) => !only || only.includes(c.name))
const MODES = ['unbatched', 'batched']
const SYNCS = ['off', 'on']

async function measure(contender, mode, sync) {
  const db = `bench_${contender.name.replace(/\W/g, '_')}_${mode}_${sync}`
  await createDatabase(db)
  const ctx = await contender.setup(db, mode)
  // A checkpoint now, not one falling due in the middle of a run.
  await admin.query('CHECKPOINT')
  const s0 = await updateStats(db, contender.hotTables)
  const wal0 = await walLsn()
  const deadline = performance.now() + QUEUE_SECONDS * 1000
  const r = await contender[mode](ctx, contender.size[mode], contender === windowSpace ? Infinity : deadline)
  const wal1 = await walLsn()
  await contender.close(ctx)
  await backendsGone(db)
  const s1 = await updateStats(db, contender.hotTables)
  await admin.query(`DROP DATABASE ${db}`)
  const upd = s1.upd - s0.upd
  return {
    contender: contender.name,
    unit: contender.unit,
    mode,
    synchronous_commit: sync,
    units: r.units,
    seconds: Number(r.secs.toFixed(3)),
    perSec: Math.round(r.units / r.secs),
    walBytesPerUnit: Math.round(Number(wal1 - wal0) / r.units),
    rowUpdates: upd,
    hotPct: upd ? Number(((100 * (s1.hot - s0.hot)) / upd).toFixed(1)) : null,
    p99Ms: r.p99Ms == null ? null : Number(r.p99Ms.toFixed(2)),
    ...(r.emptyFetches === undefined ? {} : { emptyFetches: r.emptyFetches }),
  }
}

const version = (name) => JSON.parse(readFileSync(name === 'window-space' ? resolve(root, 'package.json') : require.resolve(`${name}/package.json`), 'utf8')).version
const profileFile = resolve(root, '.addon-profile')

const t0 = performance.now()
const rows = []
let meta
try {
  const serverVersion = (await admin.query('SELECT version() AS v')).rows[0].v
  const settingNames = ['shared_buffers', 'max_wal_size', 'checkpoint_timeout', 'wal_level', 'fsync', 'full_page_writes', 'wal_compression', 'autovacuum', 'max_connections']
  const settings = Object.fromEntries((await admin.query('SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1)', [settingNames])).rows.map((s) => [s.name, s.unit ? `${s.setting} ${s.unit}` : s.setting]))
  meta = {
    date: new Date().toISOString(),
    node: process.version,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
    kernel: release(),
    smoke,
    addonProfile: existsSync(profileFile) ? readFileSync(profileFile, 'utf8').trim() : 'unknown',
    server: serverVersion,
    serverSettings: settings,
    connections: CONNECTIONS,
    inFlight: IN_FLIGHT,
    batch: BATCH,
    sizes: SIZES,
    queueSeconds: QUEUE_SECONDS,
    versions: { 'window-space': version('window-space'), 'pg-boss': version('pg-boss'), 'graphile-worker': version('graphile-worker'), pg: version('pg') },
  }
  for (const sync of SYNCS) {
    await setting('synchronous_commit', sync)
    for (const mode of MODES) {
      for (const c of contenders) {
        const row = await measure(c, mode, sync)
        rows.push(row)
        console.error(`${row.contender} ${mode} synchronous_commit=${sync}: ${row.perSec.toLocaleString('en')} ${row.unit}s/s (${row.units} in ${row.seconds} s)`)
      }
    }
  }
} finally {
  await admin.end()
  server.stop()
}

const targets = evaluatePgTargets(rows)
meta.elapsedSeconds = Number(((performance.now() - t0) / 1000).toFixed(1))
mkdirSync(dirname(out), { recursive: true })
writeFileSync(out, JSON.stringify({ meta, rows, targets }, null, 2) + '\n')

const fmt = (v) => (v == null ? '' : v)
console.table(
  rows.map((r) => ({
    contender: r.contender,
    mode: r.mode,
    synchronous_commit: r.synchronous_commit,
    'per s': `${r.perSec.toLocaleString('en')} ${r.unit}s`,
    'WAL bytes/unit': r.walBytesPerUnit,
    'HOT %': fmt(r.hotPct),
    'p99 claim/fetch ms': fmt(r.p99Ms),
  })),
)
const ratio = (a, b) => (a && b ? `${(a.perSec / b.perSec).toFixed(2)}x` : '')
const find = (name, mode, sync) => rows.find((r) => r.contender === name && r.mode === mode && r.synchronous_commit === sync)
console.table(
  SYNCS.flatMap((sync) =>
    MODES.map((mode) => {
      const w = find(WINDOW_SPACE, mode, sync)
      const b = find(pgBoss.name, mode, sync)
      const g = find(graphileWorker.name, mode, sync)
      return {
        mode,
        synchronous_commit: sync,
        'window-space pairs/s': w?.perSec.toLocaleString('en'),
        'pg-boss jobs/s': b?.perSec.toLocaleString('en'),
        'graphile-worker jobs/s': g?.perSec.toLocaleString('en'),
        'ws ÷ pg-boss': ratio(w, b),
        'ws ÷ graphile-worker': ratio(w, g),
      }
    }),
  ),
)
console.table(targets.map((t) => ({ target: t.target, measured: t.measured, required: t.required, result: t.result })))
console.log(`wrote ${out} (${meta.elapsedSeconds} s)`)
