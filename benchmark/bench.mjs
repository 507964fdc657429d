/**
 * The benchmark suite: window-space against the peers a Node user
 * would pick instead, side by side in one process run, same workload.
 *
 * Owns the run: which sections run in which order, the result tables printed
 * with console.table, the tracked performance targets with MET / MISSED, and
 * benchmark/results/latest.json. The contenders live in lib/slots.mjs, the
 * measuring in lib/harness.mjs, the native floor in lib/floor.mjs, the large
 * directories in lib/fixture.mjs, the sizes in lib/options.mjs.
 *
 *   npm run bench                 default run (under 3 minutes on 2 cores)
 *   npm run bench:smoke           tiny sizes, for CI (no assertions on time)
 *   node benchmark/bench.mjs --help
 */
import { closeSync, fdatasyncSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'

import { loadCppFloor, loadWindowSpace, root } from './lib/floor.mjs'
import { defaultCacheDir, diskUsage, fixture, fixtureConfig, probeBootstrap, scatteredCycles } from './lib/fixture.mjs'
import { find, fmtNs, fmtRate, fmtRatio, measure, results } from './lib/harness.mjs'
import { HELP, parseOptions } from './lib/options.mjs'
import { KIND_NAMES, SabLedger, Universe, lmdbSlots, newBatch, openLmdb, openSqlite, openWindowSpace, sabSlots, sqliteSlots, windowSpaceSlots } from './lib/slots.mjs'
import { processesSection, processesTable } from './lib/processes.mjs'
import { evaluateTargets } from './lib/targets.mjs'
import { watchSection } from './lib/watch.mjs'

const opts = parseOptions()
if (opts.help) {
  process.stdout.write(HELP)
  process.exit(0)
}
const runs = (section) => !opts.only || opts.only.has(section)
const WINDOWS = 14_600
const t0 = performance.now()
const { ws, fast } = loadWindowSpace()
const work = mkdtempSync(join(tmpdir(), 'ws-bench-'))
const cacheDir = opts.cacheDir || defaultCacheDir()
const notes = []
const memory = {}
const scaling = []
let cpp = { addon: null, error: 'not run' }
let watch = null
let processes = null
let sink = 0 // results fed here so no call is optimized away

const base = { samples: opts.samples, warmup: opts.warmup }
const innerOf = (v) => (v.slow ? opts.innerSlow : opts.inner)

function say(line) {
  process.stderr.write(`${line}\n`)
}

function reportBad(op, contender, bad) {
  if (bad > 0) notes.push(`${op} / ${contender}: ${bad} operations were refused (the workload is wrong for this contender)`)
}

try {
  say(`window-space benchmark${opts.smoke ? ' (smoke sizes)' : ''}: node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`)

  // ---- the native-call floor ----------------------------------------------
  if (runs('floor')) {
    say('\n== native-call floor')
    cpp = loadCppFloor()
    if (cpp.error) {
      notes.push(`C++ floor addon not available: ${cpp.error}`)
      say(`  (C++ floor addon not available: ${cpp.error}; continuing without it)`)
    }
    const n = opts.innerFloor
    const floorTask = (op, contender, f) =>
      measure({
        ...base,
        op,
        contender,
        ops: n,
        fn() {
          let s = 0
          for (let i = 0; i < n; i++) s += f(i)
          sink += s
        },
      })
    await floorTask('empty native call', 'napi-rs (window-space)', () => fast.fastEmpty())
    if (cpp.addon) {
      await floorTask('empty native call', 'node-addon-api (C++)', () => cpp.addon.empty())
      await floorTask('empty native call', 'plain Node-API (C++)', () => cpp.addon.rawEmpty())
    }
    await floorTask('call + one CAS', 'napi-rs (window-space)', (i) => fast.fastCasInternal(i & 1023, 0, 0))
    if (cpp.addon) {
      await floorTask('call + one CAS', 'node-addon-api (C++)', (i) => cpp.addon.casInternal(i & 1023, 0, 0))
      await floorTask('call + one CAS', 'plain Node-API (C++)', (i) => cpp.addon.rawCasInternal(i & 1023, 0, 0))
    }
  }

  // ---- contenders of the slot workload -------------------------------------
  const needSlots = runs('slots') || runs('reads') || runs('batch')
  let W, wsFam, sabFam, sqFam, lmFam, sab, sq, lm
  if (needSlots) {
    W = openWindowSpace(ws, join(work, 'ws'), WINDOWS)
    wsFam = windowSpaceSlots(W, new Universe(WINDOWS))
    sab = new SabLedger(opts.smoke ? 1 << 20 : 1 << 23, WINDOWS)
    sabFam = sabSlots(sab, new Universe(WINDOWS))
    sq = openSqlite(join(work, 'slots.sqlite'))
    sqFam = sqliteSlots(sq, new Universe(WINDOWS))
    lm = openLmdb(join(work, 'lmdb'))
    lmFam = lmdbSlots(lm, new Universe(WINDOWS))
  }

  if (runs('slots')) {
    for (const op of ['claim', 'fill', 'claim+fill cycle', 'clear']) {
      say(`\n== ${op}`)
      const key = op === 'claim+fill cycle' ? 'cycle' : op
      for (const fam of [wsFam, sabFam, sqFam, lmFam]) {
        for (const v of fam.variants) {
          const b = newBatch(innerOf(v))
          let bad = 0
          const before = () => {
            bad += b.bad
            fam.prepare(b)
            if (key === 'fill' || key === 'clear') fam.claimForSetup(b)
            b.bad = 0
          }
          const fn = v.async ? () => v[key](b) : () => void v[key](b)
          await measure({ ...base, op, contender: v.contender, mode: v.mode, ops: b.n, fn, before, async: v.async === true })
          reportBad(op, v.contender, bad + b.bad)
        }
      }
    }
  }

  // ---- payload appends -----------------------------------------------------
  if (runs('append')) {
    const A = openWindowSpace(ws, join(work, 'ws-append'), WINDOWS)
    const S = openWindowSpace(ws, join(work, 'ws-append-sync'), WINDOWS, { durability: 'sync' })
    const trades = A.c.payloadStores().trades
    const tradesSync = S.c.payloadStores().trades
    const K1 = A.KINDS[1]
    let w = 0
    const rec = (symbol) => ({ symbol, windowIdx: w++ % WINDOWS, slotKind: K1, payloadType: 'Parquet', uri: `SPY/${w % WINDOWS}/option-trades.parquet`, checksum: 0x12345678n, size: 4096 })
    const line = () => JSON.stringify({ id: w, symbolId: 0, windowIdx: w++ % WINDOWS, slotKind: 1, payloadType: 3, uri: `SPY/${w % WINDOWS}/option-trades.parquet`, checksum: '305419896', size: 4096, createdAt: Date.now() }) + '\n'
    const jsonl = (name) => openSync(join(work, name), 'a')
    const fdBuf = jsonl('buffered.jsonl')
    const fdGroup = jsonl('group.jsonl')
    const fdSync = jsonl('sync.jsonl')
    const sqFull = openSqlite(join(work, 'append-full.sqlite'), 'FULL')
    const sqN = sq ?? openSqlite(join(work, 'append.sqlite'))
    const sqIns = (q) => () => q.append.run(0, w % WINDOWS, 1, 3, `SPY/${w++ % WINDOWS}/option-trades.parquet`, 0x12345678, 4096, Date.now()).lastInsertRowid
    const sqOne = sqIns(sqN)
    const sqOneFull = sqIns(sqFull)
    const L = lm ?? openLmdb(join(work, 'lmdb-append'))
    let lmId = 0
    const lmOne = () => L.payloads.putSync(lmId++, { sym: 0, win: w % WINDOWS, kind: 1, ptype: 3, uri: `SPY/${w++ % WINDOWS}/option-trades.parquet`, checksum: 0x12345678, size: 4096, created: Date.now() })
    const loop = (n, f) => () => {
      let s = 0
      for (let i = 0; i < n; i++) s += f()
      sink += s
    }
    const n = opts.inner
    const nSlow = opts.innerSlow
    const fs = { samples: opts.fsyncSamples, warmup: 1 }
    const sid = A.ids[0]
    const sidSync = S.ids[0]

    say('\n== payload append (buffered: no fsync)')
    let op = 'append (buffered)'
    await measure({ ...base, op, contender: 'window-space (string)', mode: 'buffered', ops: n, fn: loop(n, () => trades.append(rec('B0'))) })
    await measure({ ...base, op, contender: 'window-space (id)', mode: 'buffered', ops: n, fn: loop(n, () => trades.append(rec(sid))) })
    await measure({ ...base, op, contender: 'JSON lines writeSync', mode: 'write(2) per record', ops: n, fn: loop(n, () => writeSync(fdBuf, line())) })
    await measure({ ...base, op, contender: 'better-sqlite3 (per-op)', mode: 'WAL NORMAL, autocommit', ops: nSlow, fn: loop(nSlow, sqOne) })
    await measure({ ...base, op, contender: 'better-sqlite3 (1000-op txn)', mode: 'WAL NORMAL, 1 txn/sample', ops: n, fn: sqN.db.transaction(loop(n, sqOne)) })
    await measure({ ...base, op, contender: 'lmdb-js (1000-op txn)', mode: 'noSync, transactionSync/sample', ops: n, fn: () => L.env.transactionSync(loop(n, lmOne)) })

    say('\n== payload append (group commit: one fsync per sample of appends)')
    op = 'append (fsync per 1000)'
    await measure({
      ...base,
      op,
      contender: 'window-space (id)',
      mode: 'buffered + flush()/sample',
      ops: n,
      fn() {
        loop(n, () => trades.append(rec(sid)))()
        A.c.flush()
      },
    })
    if (typeof tradesSync.appendAsync === 'function') {
      // The library's own group commit: in the 'sync' mode, appends awaited together share fdatasyncs.
      const rounds = () => S.c.groupCommitProgress?.().rounds ?? NaN
      const r0 = rounds()
      let calls = 0
      await measure({
        ...base,
        op,
        contender: 'window-space (id) appendAsync',
        mode: "durability: 'sync', group commit",
        ops: n,
        async: true,
        async fn() {
          calls++
          const ps = new Array(n)
          for (let i = 0; i < n; i++) ps[i] = tradesSync.appendAsync(rec(sidSync))
          sink += (await Promise.all(ps)).length
        },
      })
      const fsyncs = rounds() - r0
      if (Number.isFinite(fsyncs)) notes.push(`appendAsync group commit: ${fsyncs} commit rounds for ${calls} samples of ${n} appends (${(fsyncs / calls).toFixed(2)} per ${n})`)
    }
    await measure({
      ...base,
      op,
      contender: 'JSON lines writeSync',
      mode: 'fdatasync/sample',
      ops: n,
      fn() {
        loop(n, () => writeSync(fdGroup, line()))()
        fdatasyncSync(fdGroup)
      },
    })
    await measure({ ...base, op, contender: 'better-sqlite3 (1000-op txn)', mode: 'WAL FULL, 1 txn/sample', ops: n, fn: sqFull.db.transaction(loop(n, sqOneFull)) })

    say('\n== payload append (one fsync per call)')
    op = 'append (fsync per call)'
    const nf = opts.fsyncInner
    await measure({ ...fs, op, contender: 'window-space (id)', mode: "durability: 'sync'", ops: nf, fn: loop(nf, () => tradesSync.append(rec(sidSync))) })
    await measure({
      ...fs,
      op,
      contender: 'JSON lines writeSync',
      mode: 'fdatasync per line',
      ops: nf,
      fn: loop(nf, () => {
        writeSync(fdSync, line())
        fdatasyncSync(fdSync)
        return 0
      }),
    })
    await measure({ ...fs, op, contender: 'better-sqlite3 (per-op)', mode: 'WAL FULL, autocommit', ops: nf, fn: loop(nf, sqOneFull) })
    for (const fd of [fdBuf, fdGroup, fdSync]) closeSync(fd)
    sqFull.db.close()
    A.c.close()
    S.c.close()
  }

  // ---- reads ---------------------------------------------------------------
  if (runs('reads')) {
    const ROWS = Math.min(1000, opts.inner)
    const RS = 1_000_000 // symbol number of the read fixtures in the peers
    const c = W.c
    const rowsSid = c.resolveSymbol('ROWS')
    const nufSid = c.resolveSymbol('NUF')
    const readSab = new SabLedger(WINDOWS * 7 * 2, WINDOWS)
    // Rows 0..ROWS-1 with all seven slots Filled; windows 0..nufFilled-1 of kind 1 Filled.
    for (let w = 0; w < ROWS; w++) {
      for (let k = 0; k < 7; k++) {
        const v = c.raw.claim(rowsSid, w, k)
        c.raw.fill(rowsSid, w, k, v, 1, W.pid[k], 0, 1)
        const i = readSab.index(0, w, k)
        readSab.fill(i, readSab.claim(i), 7, 1)
      }
    }
    for (let w = 0; w < opts.nufFilled; w++) {
      const v = c.raw.claim(nufSid, w, 1)
      c.raw.fill(nufSid, w, 1, v, 1, W.pid[1], 0, 1)
      const i = readSab.index(1, w, 1)
      readSab.fill(i, readSab.claim(i), 7, 1)
    }
    // The peers get the same rows through their own fast setup paths.
    const rowsBatch = newBatch(ROWS * 7)
    const nufBatch = newBatch(opts.nufWindows)
    for (let w = 0, j = 0; w < ROWS; w++) for (let k = 0; k < 7; k++, j++) ((rowsBatch.sym[j] = RS), (rowsBatch.win[j] = w), (rowsBatch.kind[j] = k))
    for (let w = 0; w < opts.nufWindows; w++) ((nufBatch.sym[w] = RS + 1), (nufBatch.win[w] = w), (nufBatch.kind[w] = 1))
    const nufFill = { ...nufBatch, n: opts.nufFilled }
    sq.insertMany(rowsBatch)
    sq.insertMany(nufBatch)
    sqFam.claimForSetup(rowsBatch)
    sqFam.fillTx(rowsBatch)
    sqFam.claimForSetup(nufFill)
    sqFam.fillTx(nufFill)
    lm.slots.transactionSync(() => {
      for (const b of [rowsBatch, nufBatch]) for (let i = 0; i < b.n; i++) lm.slots.putSync([b.sym[i], b.kind[i], b.win[i]], { s: 0 }, 0)
    })
    lmFam.claimForSetup(rowsBatch)
    lmFam.fillTx(rowsBatch)
    lmFam.claimForSetup(nufFill)
    lmFam.fillTx(nufFill)

    say('\n== row read (getTradeRow: seven slots as one object)')
    const rowTask = (contender, ops, f) =>
      measure({
        ...base,
        op: 'row read',
        contender,
        ops,
        fn() {
          let s = 0
          for (let i = 0; i < ops; i++) s += f(i % ROWS).optionTrade.version
          sink += s
        },
      })
    const n = opts.inner
    await rowTask('window-space (string)', n, (w) => c.getTradeRow('ROWS', w))
    await rowTask('window-space (id)', n, (w) => c.getTradeRow(rowsSid, w))
    await rowTask('SAB+Atomics (in-memory)', n, (w) => readSab.row(0, w))
    await rowTask('better-sqlite3', n, (w) => sqFam.row(RS, w))
    await rowTask('lmdb-js', n, (w) => lmFam.row(RS, w))

    say(`\n== nextUnfilledWindow over ${opts.nufWindows} windows, ${opts.nufFilled} filled`)
    const op = `nextUnfilledWindow (${opts.nufFilled} filled)`
    const nufTask = (contender, ops, f, mode) => {
      let bad = 0
      return measure({
        ...base,
        op,
        contender,
        mode,
        ops,
        fn() {
          for (let i = 0; i < ops; i++) if (f() !== opts.nufFilled) bad++
        },
      }).then(() => reportBad(op, contender, bad))
    }
    await nufTask('window-space (string)', n, () => c.nextUnfilledWindow('NUF', 0, 'optionTrade'))
    await nufTask('window-space (id)', n, () => c.nextUnfilledWindow(nufSid, 0, W.KINDS[1]))
    await nufTask('window-space raw', n, () => c.raw.nextUnfilledWindow(nufSid, 0, 1))
    await nufTask('SAB+Atomics (in-memory)', n, () => readSab.nextUnfilled(1, 0, 1))
    await nufTask('better-sqlite3', opts.innerSlow, () => sqFam.nextUnfilled(RS + 1, 0, 1), 'partial index')
    await nufTask('lmdb-js', opts.innerSlow, () => lmFam.nextUnfilled(RS + 1, 0, 1), 'getRange scan')
  }

  // ---- batch calls ---------------------------------------------------------
  if (runs('batch')) {
    const B = opts.batch
    const c = W.c
    say(`\n== batch claim of ${B} slots (per slot)`)
    // Fresh blocks of B windows of one (symbol, kind): symbol 'BC<n>', kinds 1..6.
    const blocksPerSym = Math.floor(WINDOWS / B)
    let block = 0
    const nextBlock = () => {
      const k = block++
      const kind = 1 + (k % 6)
      const start = (Math.floor(k / 6) % blocksPerSym) * B
      const symIdx = Math.floor(k / (6 * blocksPerSym))
      return { kind, start, symIdx }
    }
    const bcIds = []
    const bcSid = (i) => {
      while (bcIds.length <= i) bcIds.push(c.resolveSymbol(`BC${bcIds.length}`))
      return bcIds[i]
    }
    let cur
    const op = `batch claim (${B})`
    const wsBefore = () => {
      cur = nextBlock()
      cur.sid = bcSid(cur.symIdx)
      cur.name = `BC${cur.symIdx}`
      for (let w = cur.start; w < cur.start + B; w++) W.warm(cur.sid, w)
    }
    let bad = 0
    await measure({
      ...base,
      op,
      contender: 'window-space (string)',
      ops: B,
      before: wsBefore,
      fn() {
        if (c.claimNextUnfilled(cur.name, cur.start, W.KINDS[cur.kind], B).length !== B) bad++
      },
    })
    await measure({
      ...base,
      op,
      contender: 'window-space (id)',
      ops: B,
      before: wsBefore,
      fn() {
        if (c.claimNextUnfilled(cur.sid, cur.start, W.KINDS[cur.kind], B).length !== B) bad++
      },
    })
    const claimOut = new Float64Array(3 * B)
    await measure({
      ...base,
      op,
      contender: 'window-space raw',
      mode: 'raw.claimNextUnfilled',
      ops: B,
      before: wsBefore,
      fn() {
        if (c.raw.claimNextUnfilled(cur.sid, cur.start, cur.kind, B, -1, claimOut) !== B) bad++
      },
    })
    reportBad(op, 'window-space', bad)
    // The peers: B fresh slots of one (symbol, kind) each sample.
    const peerBlock = (fam, symBase) => {
      const b = newBatch(B)
      return {
        b,
        before() {
          const k = nextBlock()
          for (let i = 0; i < B; i++) ((b.sym[i] = symBase + k.symIdx), (b.win[i] = k.start + i), (b.kind[i] = k.kind))
          fam.insert?.(b)
          b.start = k.start
        },
      }
    }
    {
      const b = newBatch(B)
      await measure({
        ...base,
        op,
        contender: 'SAB+Atomics (in-memory)',
        ops: B,
        before() {
          sabFam.prepare(b)
        },
        fn() {
          for (let i = 0; i < B; i++) if (sab.claim(b.idx[i]) < 0) b.bad++
        },
      })
    }
    {
      const p = peerBlock({ insert: (b) => sq.insertMany(b) }, 2_000_000)
      await measure({ ...base, op, contender: 'better-sqlite3', mode: 'one UPDATE … RETURNING', ops: B, before: p.before, fn: () => void (sink += sqFam.claimRange(p.b.sym[0], p.b.kind[0], p.b.start, p.b.start + B).length) })
    }
    {
      const p = peerBlock(
        {
          insert: (b) =>
            lm.slots.transactionSync(() => {
              for (let i = 0; i < b.n; i++) lm.slots.putSync([b.sym[i], b.kind[i], b.win[i]], { s: 0 }, 0)
            }),
        },
        2_000_000,
      )
      await measure({ ...base, op, contender: 'lmdb-js', mode: 'one transactionSync', ops: B, before: p.before, fn: () => void (sink += lmFam.claimRange(p.b.sym[0], p.b.kind[0], p.b.start, p.b.start + B)) })
    }

    say(`\n== batch fill of ${B} slots (per slot)`)
    const fop = `batch fill (${B})`
    {
      const b = newBatch(B)
      let items
      let fbad = 0
      await measure({
        ...base,
        op: fop,
        contender: 'window-space (id)',
        mode: 'fillMany',
        ops: B,
        before() {
          wsFam.prepare(b)
          wsFam.claimForSetup(b)
          items = new Array(B)
          for (let i = 0; i < B; i++) items[i] = { symbol: b.sid[i], windowIdx: b.win[i], slotKind: W.KINDS[b.kind[i]], meta: { payloadType: 'Parquet', payloadId: W.pid[b.kind[i]], version: b.ver[i], checksum: 0x12345678n } }
        },
        fn() {
          for (const r of c.fillMany(items)) if (!r.ok) fbad++
        },
      })
      reportBad(fop, 'window-space (id)', fbad)
    }
    {
      const b = newBatch(B)
      const buf = new Float64Array(9 * B)
      let rbad = 0
      await measure({
        ...base,
        op: fop,
        contender: 'window-space raw',
        mode: 'raw.fillBatch',
        ops: B,
        before() {
          wsFam.prepare(b)
          wsFam.claimForSetup(b)
          for (let i = 0; i < B; i++) {
            const o = 8 * i
            buf[o] = b.sid[i]
            buf[o + 1] = b.win[i]
            buf[o + 2] = b.kind[i]
            buf[o + 3] = b.ver[i]
            buf[o + 4] = 1
            buf[o + 5] = W.pid[b.kind[i]]
            buf[o + 6] = 0
            buf[o + 7] = 0x12345678
          }
        },
        fn() {
          c.raw.fillBatch(buf, B)
          for (let i = 0; i < B; i++) if (buf[8 * B + i] < 0) rbad++
        },
      })
      reportBad(fop, 'window-space raw', rbad)
    }
    for (const [fam, contender, mode, fill] of [
      [sabFam, 'SAB+Atomics (in-memory)', '', sabFam.variants[0].fill],
      [sqFam, 'better-sqlite3', 'one txn', sqFam.fillTx],
      [lmFam, 'lmdb-js', 'one transactionSync', lmFam.fillTx],
    ]) {
      const b = newBatch(B)
      await measure({
        ...base,
        op: fop,
        contender,
        mode,
        ops: B,
        before() {
          fam.prepare(b)
          fam.claimForSetup(b)
        },
        fn: () => void fill(b),
      })
    }
  }

  // ---- disk use of the peers (from the slot workload above) ------------------
  if (needSlots) {
    const rows = sq.db.prepare('SELECT count(*) FROM slots').pluck().get()
    const sqBytes = ['slots.sqlite', 'slots.sqlite-wal'].reduce((n, f) => {
      try {
        return n + statSync(join(work, f)).size
      } catch {
        return n
      }
    }, 0)
    lm.env.flushed && (await lm.env.flushed)
    const lmEntries = lm.slots.getCount()
    const lmStat = statSync(join(work, 'lmdb'))
    const lmBytes = lmStat.isDirectory() ? statSync(join(work, 'lmdb', 'data.mdb')).blocks * 512 : lmStat.blocks * 512
    memory.peers = {
      sqliteBytesPerSlot: sqBytes / rows,
      sqliteSlots: rows,
      lmdbBytesPerSlot: lmBytes / lmEntries,
      lmdbSlots: lmEntries,
    }
  }

  // ---- the large directory: bootstrap, memory, disk, metrics ----------------
  if (runs('large')) {
    say(`\n== large directory: ${opts.largeSlots.toLocaleString('en')} slots, ${opts.largeRecords.toLocaleString('en')} payload records`)
    const fx = fixture(ws, cacheDir, opts.largeSlots, opts.largeRecords)
    if (fx.builtMs != null) say(`  (fixture built in ${(fx.builtMs / 1000).toFixed(1)} s, cached at ${fx.dir})`)
    else say(`  (cached fixture ${fx.dir})`)
    const cfg = fixtureConfig(ws, fx.dir, fx.shape)
    const label = `bootstrap (${fmtCount(fx.shape.slots)} slots, ${fmtCount(opts.largeRecords)} records)`
    await measure({
      samples: opts.bootstrapSamples,
      warmup: 1,
      op: label,
      contender: 'window-space',
      mode: 'warm page cache',
      ops: 1,
      fn() {
        ws.WindowSpaceController.bootstrap(cfg).controller.close()
      },
    })
    const probe = probeBootstrap(fx.dir, fx.shape)
    const disk = diskUsage(fx.dir)
    memory.large = {
      dir: fx.dir,
      bootstrapLabel: label,
      slots: fx.shape.slots,
      records: probe.records,
      bytesPerSlotOnDisk: disk.ledger.bytes / fx.shape.slots,
      allocatedBytesPerSlotOnDisk: disk.ledger.allocated / fx.shape.slots,
      mapBytesPerRecord: disk.maps.bytes / Math.max(1, probe.records),
      rssAfterBootstrapBytes: probe.after.rss,
      rssGrowthBytes: probe.after.rss - probe.before.rss,
      heapGrowthBytes: probe.after.heapUsed + probe.after.external - (probe.before.heapUsed + probe.before.external),
      heapBytesPerRecord: (probe.after.heapUsed + probe.after.external - (probe.before.heapUsed + probe.before.external)) / Math.max(1, probe.records),
      rssBytesPerRecord: (probe.after.rss - probe.before.rss) / Math.max(1, probe.records),
      anonBytesPerRecord: probe.after.rssAnon == null ? null : (probe.after.rssAnon - probe.before.rssAnon) / Math.max(1, probe.records),
      fileRssGrowthBytes: probe.after.rssFile == null ? null : probe.after.rssFile - probe.before.rssFile,
      coldProcessBootstrapMs: probe.elapsedMs,
    }

    say('\n== metrics scan')
    const { controller: c } = ws.WindowSpaceController.bootstrap(cfg)
    await measure({ ...base, op: 'slotMetrics()', contender: 'window-space', mode: 'shared counters', ops: opts.inner, fn: loop2(opts.inner, () => c.slotMetrics().length) })
    await measure({ samples: opts.bootstrapSamples, warmup: 1, op: `recountSlots() (${fmtCount(fx.shape.slots)})`, contender: 'window-space', mode: 'scan of both ledgers', ops: 1, fn: () => void (sink += c.recountSlots().length) })
    c.close()
    const big = new SabLedger(fx.shape.slots, fx.shape.windows)
    await measure({ samples: opts.bootstrapSamples, warmup: 1, op: `recountSlots() (${fmtCount(fx.shape.slots)})`, contender: 'SAB+Atomics (in-memory)', mode: 'one pass over the state words', ops: 1, fn: () => void (sink += big.recount()[0]) })
  }

  // ---- waiting on other engines ---------------------------------------
  if (runs('watch')) {
    say('\n== watch: wake-up latency of a waiter in another process, idle CPU, writer cost')
    const wdir = mkdtempSync(join(work, 'watch-'))
    watch = await watchSection(ws, wdir, { samples: opts.watchSamples, idleMs: opts.watchIdleMs, cycles: opts.watchCycles }, measure, base)
    say(`  waitFor woke after ${watch.waitForWakeUs.p50.toFixed(0)} µs (p50), watch() after ${watch.watchWakeUs.p50.toFixed(0)} µs; idle waiter ${watch.idleWaiterCpuUsPerSec.toFixed(0)} µs CPU/s`)
  }

  // ---- scaling ---------------------------------------------------------------
  if (runs('scaling')) {
    say('\n== scaling: claim+fill throughput and bootstrap time by ledger size')
    for (const n of opts.scaling) {
      const records = Math.round(n / 10)
      const fx = fixture(ws, cacheDir, n, records)
      const cfg = fixtureConfig(ws, fx.dir, fx.shape)
      ws.WindowSpaceController.bootstrap(cfg).controller.close() // warm the page cache
      const times = []
      for (let i = 0; i < Math.max(1, opts.bootstrapSamples); i++) {
        const t = performance.now()
        ws.WindowSpaceController.bootstrap(cfg).controller.close()
        times.push(performance.now() - t)
      }
      times.sort((a, b) => a - b)
      const cyc = scatteredCycles(ws, fx.dir, fx.shape, opts.scalingOps)
      if (cyc.bad) notes.push(`scaling ${n}: ${cyc.bad} claim+fill cycles were refused`)
      const row = { slots: fx.shape.slots, records, bootstrapMs: times[Math.floor(times.length / 2)], cycleNs: cyc.nsPerCycle, cyclesPerSec: 1e9 / cyc.nsPerCycle, cycles: cyc.cycles, fixtureBuiltMs: fx.builtMs }
      scaling.push(row)
      say(`  ${fmtCount(row.slots).padStart(6)} slots: bootstrap ${row.bootstrapMs.toFixed(1)} ms, claim+fill ${fmtNs(row.cycleNs)} (${fmtRate(row.cyclesPerSec)}/s)${fx.builtMs != null ? `, fixture built in ${(fx.builtMs / 1000).toFixed(1)} s` : ''}`)
    }
  }

  // ---- several engines on one directory ----------------------------------------
  if (runs('processes')) {
    say(`\n== processes: raw claim+fill by ${opts.procCounts.join(', ')} engines at once on one state directory (${opts.procModes.map((m) => (m === 'disjoint' ? 'disjoint symbols' : 'racing for the same slots')).join('; ')})`)
    try {
      const counts = [...new Set(opts.procCounts)].sort((a, b) => a - b)
      processes = await processesSection(ws, work, { cycles: opts.procCycles, rounds: Math.max(1, opts.procRounds), counts, modes: opts.procModes, threads: opts.procThreads !== 0 }, say)
    } catch (e) {
      // The engines' work did not check out (or an engine failed): the section fails, the run goes on and exits non-zero.
      process.exitCode = 1
      processes = { error: e.message }
      notes.push(`processes section FAILED: ${e.message}`)
      say(`  FAILED: ${e.stack ?? e}`)
    }
  }

  // ---- output ------------------------------------------------------------------
  W?.c.close()
  sq?.db.close()
  await lm?.env.close()

  const withRatios = results.map((r) => {
    const refId = find(r.op, 'window-space (id)') ?? find(r.op, 'window-space') ?? find(r.op, 'napi-rs (window-space)')
    const refRaw = find(r.op, 'window-space raw')
    return { ...r, vsWsId: refId ? r.nsPerOp / refId.nsPerOp : null, vsWsRaw: refRaw ? r.nsPerOp / refRaw.nsPerOp : null }
  })
  if (withRatios.length) console.log('\nOperations (ns/op: median sample ÷ operations per sample; "÷ ws" = this row\'s time ÷ window-space\'s, >1 means window-space is faster)')
  if (withRatios.length) console.table(
    withRatios.map((r) => ({
      operation: r.op,
      contender: r.contender,
      mode: r.mode,
      'ns/op': fmtNs(r.nsPerOp),
      'ops/s': fmtRate(r.opsPerSec),
      '÷ ws (id)': fmtRatio(r.vsWsId),
      '÷ ws raw': fmtRatio(r.vsWsRaw),
    })),
  )
  if (memory.large || memory.peers) {
    console.log('\nMemory and disk')
    const m = memory.large
    const p = memory.peers
    console.table([
      ...(m
        ? [
            { figure: 'trade ledger bytes per slot on disk', value: m.bytesPerSlotOnDisk.toFixed(2), note: `${fmtCount(m.slots)} slots; allocated ${m.allocatedBytesPerSlotOnDisk.toFixed(2)}` },
            { figure: 'mapping-table bytes per payload record', value: m.mapBytesPerRecord.toFixed(1), note: `${fmtCount(m.records)} records` },
            { figure: 'RSS after bootstrap of the large directory', value: fmtBytes(m.rssAfterBootstrapBytes), note: `fresh process; growth ${fmtBytes(m.rssGrowthBytes)}` },
            { figure: 'V8 heap+external bytes per replayed record', value: m.heapBytesPerRecord.toFixed(3), note: `growth ${fmtBytes(m.heapGrowthBytes)} after GC` },
            { figure: 'RSS growth bytes per replayed record', value: m.rssBytesPerRecord.toFixed(1), note: `includes ${m.fileRssGrowthBytes == null ? 'the' : fmtBytes(m.fileRssGrowthBytes) + ' of'} mapped file pages touched by the scan` },
            ...(m.anonBytesPerRecord == null ? [] : [{ figure: 'anonymous (V8 + native heap) RSS growth per record', value: m.anonBytesPerRecord.toFixed(2), note: 'RssAnon from /proc/self/status' }]),
          ]
        : []),
      ...(p
        ? [
            { figure: 'better-sqlite3 bytes per slot on disk', value: p.sqliteBytesPerSlot.toFixed(1), note: `${fmtCount(p.sqliteSlots)} rows incl. partial index` },
            { figure: 'lmdb-js bytes per slot on disk', value: p.lmdbBytesPerSlot.toFixed(1), note: `${fmtCount(p.lmdbSlots)} entries` },
          ]
        : []),
    ])
  }
  if (scaling.length) {
    console.log('\nScaling (claim+fill through controller.raw on distinct slots scattered over the whole ledger)')
    console.table(scaling.map((s) => ({ slots: fmtCount(s.slots), records: fmtCount(s.records), 'bootstrap ms': s.bootstrapMs.toFixed(1), 'claim+fill ns': s.cycleNs.toFixed(0), 'claim+fill /s': fmtRate(s.cyclesPerSec) })))
  }
  if (watch) {
    console.log('\nWaiting on other engines (a waiter in another process, woken through the change journal\'s futex; µs from just before the fill to the waiter\'s promise settling)')
    const row = (what, p) => ({ figure: what, p50: p.p50.toFixed(0), p90: p.p90.toFixed(0), p99: p.p99.toFixed(0), max: p.max.toFixed(0), samples: p.n })
    console.table([row('waitFor wake-up (µs)', watch.waitForWakeUs), row('watch() wake-up (µs)', watch.watchWakeUs)])
    console.table([
      { figure: 'CPU of an idle waiter', value: `${watch.idleWaiterCpuUsPerSec.toFixed(0)} µs per second`, note: `over ${watch.idleMs} ms with a waitFor armed` },
      { figure: 'claim+fill, nobody waiting', value: fmtNs(watch.writerNoWaiter.nsPerOp), note: 'raw, this process' },
      { figure: 'claim+fill, a waiter asleep elsewhere', value: fmtNs(watch.writerWithWaiter.nsPerOp), note: 'writers pay a futex wake only while someone sleeps' },
    ])
  }
  if (processes?.rows) {
    console.log(`\nSeveral engines on one state directory (raw claim+fill; aggregate over all engines, median of ${processes.rounds} round${processes.rounds === 1 ? '' : 's'} timed from a common start to the last finish; "÷ one" = throughput ÷ one engine's; work checked after each configuration)`)
    console.table(processesTable(processes))
  }
  const targets = evaluateTargets({ find, memory, scaling, processes, opts })
  console.log(`\nPerformance targets (ratios from this run${opts.smoke ? '; smoke sizes: these say nothing about speed' : ''})`)
  console.table(targets.map((t) => ({ target: t.target, measured: t.measured, required: t.required, result: t.result })))
  if (notes.length) console.log(`\nNotes:\n${notes.map((n) => `- ${n}`).join('\n')}`)

  const out = resolve(root, opts.out)
  mkdirSync(dirname(out), { recursive: true })
  const json = {
    meta: {
      date: new Date().toISOString(),
      node: process.version,
      cpu: cpus()[0]?.model ?? null,
      cores: cpus().length,
      smoke: opts.smoke,
      options: { ...opts, only: opts.only ? [...opts.only] : null },
      cppFloorAddon: cpp.addon ? 'built' : cpp.error,
      elapsedSeconds: (performance.now() - t0) / 1000,
    },
    results: withRatios,
    memory,
    scaling,
    watch,
    processes,
    targets,
    notes,
  }
  writeFileSync(out, JSON.stringify(json, null, 2) + '\n')
  console.log(`\nwrote ${opts.out} in ${((performance.now() - t0) / 1000).toFixed(1)} s total (sink ${sink > 0 ? '+' : '-'})`)
} finally {
  rmSync(work, { recursive: true, force: true })
}

function loop2(n, f) {
  return () => {
    let s = 0
    for (let i = 0; i < n; i++) s += f()
    sink += s
  }
}

function fmtCount(n) {
  if (n >= 1e6) return `${+(n / 1e6).toFixed(2)}M`
  if (n >= 1e3) return `${+(n / 1e3).toFixed(1)}k`
  return String(n)
}

function fmtBytes(b) {
  if (Math.abs(b) >= 1 << 30) return `${(b / 2 ** 30).toFixed(2)} GiB`
  if (Math.abs(b) >= 1 << 20) return `${(b / 2 ** 20).toFixed(1)} MiB`
  if (Math.abs(b) >= 1 << 10) return `${(b / 2 ** 10).toFixed(1)} KiB`
  return `${b} B`
}

void KIND_NAMES
