/**
 * Owns the contenders of the slot workload and their setup: window-space (the
 * public TS API by symbol string, by pre-resolved id, and `controller.raw`),
 * the in-memory SharedArrayBuffer + Atomics baseline, better-sqlite3 and
 * lmdb-js. Every contender offers the same operations over the same slot
 * layout — (symbol, window, slot kind) with slot kinds 1..6 of the trade
 * ledger, taken in order from a fresh universe so that every claim meets an
 * Empty slot — plus row reads, the next-unfilled scan and batch calls.
 *
 * A `Batch` holds the slots of one timed sample: `sym`, `win`, `kind` (and
 * `sid`, `sname` for window-space), and `ver`, the versions claims returned.
 * `bad` counts refusals that should not happen; the run reports them.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import Database from 'better-sqlite3'
import { open as lmdbOpen } from 'lmdb'

export const KIND_NAMES = ['rfRate', 'optionTrade', 'optionQuote', 'underlyingTrade', 'underlyingQuote', 'optionAggressor', 'underlyingAggressor']
const STATUS_NAMES = ['Empty', 'Pending', 'Filled', 'Cleared', 'Retired']
const LEASE_MS = 30_000
const CHECKSUM = 0x1234_5678

/** Slots of one sample. */
export function newBatch(n) {
  return { n, sym: new Uint32Array(n), win: new Uint32Array(n), kind: new Uint32Array(n), sid: new Uint32Array(n), sname: new Array(n), ver: new Float64Array(n), bad: 0 }
}

/** Hands out fresh slots in (symbol, window, kind 1..6) order. */
export class Universe {
  constructor(windows) {
    this.W = windows
    this.next = 0
  }
  /** Fills `b` with the next `b.n` slots. */
  take(b) {
    for (let i = 0; i < b.n; i++) {
      const k = this.next++
      const row = Math.floor(k / 6)
      b.kind[i] = 1 + (k % 6)
      b.win[i] = row % this.W
      b.sym[i] = Math.floor(row / this.W)
    }
  }
}

function slotObject(status, version, payloadType, payloadId, checksum, lease) {
  return { status: STATUS_NAMES[status], version, payloadType, payloadId, checksum, leaseExpiresAt: status === 1 ? lease : null }
}

// ---------------------------------------------------------------------------
// window-space

/** Opens a fresh window-space state directory prepared for the slot workload. */
export function openWindowSpace(ws, dir, windows, options = {}) {
  const { WindowSpace, WindowSpaceConfig, WindowSpaceController, SlotKind } = ws
  const cfg = new WindowSpaceConfig(dir, WindowSpace.uniform({ origin: Date.UTC(2026, 0, 5, 14, 30), windowDuration: 60_000, windowCount: windows }), options)
  const { controller: c } = WindowSpaceController.bootstrap(cfg)
  const KINDS = SlotKind.all()
  const stores = c.payloadStores()
  const STORE = ['rfRate', 'trades', 'quotes', 'trades', 'quotes', 'aggressor', 'aggressor']
  const ids = []
  const names = []
  const symbol = (i) => {
    while (ids.length <= i) {
      names.push(`B${ids.length}`)
      ids.push(c.resolveSymbol(names[names.length - 1]))
    }
    return ids[i]
  }
  symbol(0)
  // One payload record per slot kind: every fill refers to an existing record, as the core requires.
  const pid = KIND_NAMES.map((_, k) =>
    stores[STORE[k]].append({ symbol: ids[0], windowIdx: 0, slotKind: KINDS[k], payloadType: 'Parquet', uri: `seed/${KIND_NAMES[k]}.parquet`, checksum: BigInt(CHECKSUM), size: 1 }),
  )
  // Rows per chunk from the trade ledger's header (design.md §3.1, offset 28): a fresh
  // chunk is allocated by the first write into it, outside the timed loops here.
  const rowsPerChunk = readFileSync(join(dir, 'trade-ledger.dat')).readUInt32LE(28)
  const warmed = new Set()
  const warm = (sid, win) => {
    const chunk = Math.floor(win / rowsPerChunk)
    const key = sid * 1e6 + chunk
    if (warmed.has(key)) return
    warmed.add(key)
    const w0 = chunk * rowsPerChunk
    const v = c.raw.claim(sid, w0, 0)
    if (v >= 0) c.raw.fill(sid, w0, 0, v, 1, pid[0], 0, CHECKSUM)
  }
  return { c, KINDS, pid, symbol, names, ids, warm, rowsPerChunk }
}

/** The slot operations of window-space through its three API forms. */
export function windowSpaceSlots(W, universe) {
  const { c, KINDS, pid, symbol, names, warm } = W
  const prepare = (b) => {
    universe.take(b)
    for (let i = 0; i < b.n; i++) {
      const sid = symbol(b.sym[i])
      b.sid[i] = sid
      b.sname[i] = names[b.sym[i]]
      warm(sid, b.win[i])
    }
  }
  const claimRaw = (b) => {
    for (let i = 0; i < b.n; i++) {
      const v = c.raw.claim(b.sid[i], b.win[i], b.kind[i])
      if (v < 0) b.bad++
      b.ver[i] = v
    }
  }
  const meta = (k, v) => ({ payloadType: 'Parquet', payloadId: pid[k], version: v, checksum: 0x12345678n })
  const byKey = (key) => ({
    claim(b) {
      const s = b[key]
      for (let i = 0; i < b.n; i++) b.ver[i] = c.markPending(s[i], b.win[i], KINDS[b.kind[i]]).version
    },
    fill(b) {
      const s = b[key]
      for (let i = 0; i < b.n; i++) c.setRef(s[i], b.win[i], KINDS[b.kind[i]], meta(b.kind[i], b.ver[i]))
    },
    cycle(b) {
      const s = b[key]
      for (let i = 0; i < b.n; i++) {
        const kind = KINDS[b.kind[i]]
        const claim = c.markPending(s[i], b.win[i], kind)
        c.setRef(s[i], b.win[i], kind, meta(b.kind[i], claim.version))
      }
    },
    clear(b) {
      const s = b[key]
      for (let i = 0; i < b.n; i++) c.clearSlot(s[i], b.win[i], KINDS[b.kind[i]], { version: b.ver[i] })
    },
  })
  const raw = {
    claim: claimRaw,
    fill(b) {
      for (let i = 0; i < b.n; i++) if (c.raw.fill(b.sid[i], b.win[i], b.kind[i], b.ver[i], 1, pid[b.kind[i]], 0, CHECKSUM) < 0) b.bad++
    },
    cycle(b) {
      for (let i = 0; i < b.n; i++) {
        const s = b.sid[i]
        const w = b.win[i]
        const k = b.kind[i]
        const v = c.raw.claim(s, w, k)
        if (c.raw.fill(s, w, k, v, 1, pid[k], 0, CHECKSUM) < 0) b.bad++
      }
    },
    clear(b) {
      for (let i = 0; i < b.n; i++) if (c.raw.clear(b.sid[i], b.win[i], b.kind[i], b.ver[i]) < 0) b.bad++
    },
  }
  return {
    prepare,
    claimForSetup: claimRaw,
    variants: [
      { contender: 'window-space (string)', mode: 'buffered', ...byKey('sname') },
      { contender: 'window-space (id)', mode: 'buffered', ...byKey('sid') },
      { contender: 'window-space raw', mode: 'buffered', ...raw },
    ],
  }
}

// ---------------------------------------------------------------------------
// in-memory SharedArrayBuffer + Atomics

/**
 * The JS upper bound: one Int32 state word per slot (version << 3 | status),
 * changed with `Atomics.compareExchange`; lease, payload id and checksum in
 * plain typed arrays beside it. No persistence, one process.
 */
export class SabLedger {
  constructor(capacity, windows) {
    this.capacity = capacity
    this.W = windows
    this.state = new Int32Array(new SharedArrayBuffer(capacity * 4))
    this.lease = new Float64Array(new SharedArrayBuffer(capacity * 8))
    this.pid = new Float64Array(new SharedArrayBuffer(capacity * 8))
    this.sum = new Float64Array(new SharedArrayBuffer(capacity * 8))
  }
  index(sym, win, kind) {
    return (sym * this.W + win) * 7 + kind
  }
  reset() {
    this.state.fill(0)
  }
  claim(i) {
    const st = this.state
    const now = Date.now()
    let w = Atomics.load(st, i)
    for (;;) {
      const s = w & 7
      if (!(s === 0 || s === 3 || (s === 1 && this.lease[i] <= now))) return -1
      const nw = ((((w >>> 3) + 1) << 3) | 1) | 0
      const prev = Atomics.compareExchange(st, i, w, nw)
      if (prev === w) {
        this.lease[i] = now + LEASE_MS
        return nw >>> 3
      }
      w = prev
    }
  }
  fill(i, v, pid, sum) {
    this.pid[i] = pid
    this.sum[i] = sum
    const from = ((v << 3) | 1) | 0
    return Atomics.compareExchange(this.state, i, from, (((v + 1) << 3) | 2) | 0) === from ? v + 1 : -4
  }
  clear(i, v) {
    const from = ((v << 3) | 1) | 0
    return Atomics.compareExchange(this.state, i, from, (((v + 1) << 3) | 3) | 0) === from ? v + 1 : -4
  }
  row(sym, win) {
    const o = this.index(sym, win, 0)
    const r = { symbolId: sym, windowIdx: win }
    for (let k = 0; k < 7; k++) {
      const w = Atomics.load(this.state, o + k)
      r[KIND_NAMES[k]] = slotObject(w & 7, w >>> 3, 1, this.pid[o + k], this.sum[o + k], this.lease[o + k])
    }
    return r
  }
  nextUnfilled(sym, start, kind) {
    for (let w = start; w < this.W; w++) {
      const s = Atomics.load(this.state, this.index(sym, w, kind)) & 7
      if (s !== 2 && s !== 4) return w
    }
    return -1
  }
  recount() {
    const counts = new Float64Array(7 * 5)
    const st = this.state
    for (let i = 0; i < st.length; i++) counts[(i % 7) * 5 + (st[i] & 7)]++
    return counts
  }
}

/** The slot operations of the SharedArrayBuffer baseline. */
export function sabSlots(sab, universe) {
  const prepare = (b) => {
    universe.take(b)
    if (sab.index(b.sym[b.n - 1], b.win[b.n - 1], 6) >= sab.capacity) {
      universe.next = 0 // wrap around: start over on a zeroed array
      sab.reset()
      universe.take(b)
    }
    if (!b.idx) b.idx = new Uint32Array(b.n)
    for (let i = 0; i < b.n; i++) b.idx[i] = sab.index(b.sym[i], b.win[i], b.kind[i])
  }
  const claim = (b) => {
    for (let i = 0; i < b.n; i++) {
      const v = sab.claim(b.idx[i])
      if (v < 0) b.bad++
      b.ver[i] = v
    }
  }
  return {
    prepare,
    claimForSetup: claim,
    variants: [
      {
        contender: 'SAB+Atomics (in-memory)',
        mode: 'none',
        claim,
        fill(b) {
          for (let i = 0; i < b.n; i++) if (sab.fill(b.idx[i], b.ver[i], 7, CHECKSUM) < 0) b.bad++
        },
        cycle(b) {
          for (let i = 0; i < b.n; i++) {
            const j = b.idx[i]
            if (sab.fill(j, sab.claim(j), 7, CHECKSUM) < 0) b.bad++
          }
        },
        clear(b) {
          for (let i = 0; i < b.n; i++) if (sab.clear(b.idx[i], b.ver[i]) < 0) b.bad++
        },
      },
    ],
  }
}

// ---------------------------------------------------------------------------
// better-sqlite3

/**
 * A slots table keyed (sym, win, kind), a partial index of the slots that are
 * neither Filled nor Retired (for the next-unfilled scan and batch claims), and
 * a payloads table. WAL, synchronous=NORMAL unless `synchronous` says otherwise.
 */
export function openSqlite(file, synchronous = 'NORMAL') {
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.pragma(`synchronous = ${synchronous}`)
  db.exec(`
    CREATE TABLE IF NOT EXISTS slots (
      sym INTEGER NOT NULL, win INTEGER NOT NULL, kind INTEGER NOT NULL,
      status INTEGER NOT NULL DEFAULT 0, version INTEGER NOT NULL DEFAULT 0,
      ptype INTEGER, pid INTEGER, checksum INTEGER, lease INTEGER,
      PRIMARY KEY (sym, win, kind)) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS unfilled ON slots (sym, kind, win) WHERE status <> 2 AND status <> 4;
    CREATE TABLE IF NOT EXISTS payloads (
      id INTEGER PRIMARY KEY, sym INTEGER, win INTEGER, kind INTEGER, ptype INTEGER,
      uri TEXT, checksum INTEGER, size INTEGER, created INTEGER);
  `)
  const s = {
    db,
    insert: db.prepare('INSERT OR IGNORE INTO slots (sym, win, kind) VALUES (?, ?, ?)'),
    // claim = a conditional UPDATE; RETURNING gives the new version (no row = not claimable).
    claim: db.prepare('UPDATE slots SET status = 1, version = version + 1, lease = ? WHERE sym = ? AND win = ? AND kind = ? AND (status = 0 OR status = 3 OR (status = 1 AND lease <= ?)) RETURNING version').pluck(),
    fill: db.prepare('UPDATE slots SET status = 2, version = version + 1, ptype = ?, pid = ?, checksum = ? WHERE sym = ? AND win = ? AND kind = ? AND status = 1 AND version = ?'),
    clear: db.prepare('UPDATE slots SET status = 3, version = version + 1 WHERE sym = ? AND win = ? AND kind = ? AND status = 1 AND version = ?'),
    row: db.prepare('SELECT kind, status, version, ptype, pid, checksum, lease FROM slots WHERE sym = ? AND win = ?').raw(),
    next: db.prepare('SELECT win FROM slots INDEXED BY unfilled WHERE sym = ? AND kind = ? AND win >= ? AND status <> 2 AND status <> 4 ORDER BY win LIMIT 1').pluck(),
    claimRange: db
      .prepare('UPDATE slots INDEXED BY unfilled SET status = 1, version = version + 1, lease = ? WHERE sym = ? AND kind = ? AND win >= ? AND win < ? AND status <> 2 AND status <> 4 AND (status <> 1 OR lease <= ?) RETURNING win, version')
      .raw(),
    append: db.prepare('INSERT INTO payloads (sym, win, kind, ptype, uri, checksum, size, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
  }
  s.insertMany = db.transaction((b) => {
    for (let i = 0; i < b.n; i++) s.insert.run(b.sym[i], b.win[i], b.kind[i])
  })
  return s
}

/** The slot operations of better-sqlite3, per-op autocommit and in 1000-op transactions. */
export function sqliteSlots(q, universe) {
  const { db } = q
  const prepare = (b) => {
    universe.take(b)
    q.insertMany(b)
  }
  const claimLoop = (b) => {
    const now = Date.now()
    for (let i = 0; i < b.n; i++) {
      const v = q.claim.get(now + LEASE_MS, b.sym[i], b.win[i], b.kind[i], now)
      if (v === undefined) b.bad++
      b.ver[i] = v ?? -1
    }
  }
  const fillLoop = (b) => {
    for (let i = 0; i < b.n; i++) if (q.fill.run(1, 7, CHECKSUM, b.sym[i], b.win[i], b.kind[i], b.ver[i]).changes !== 1) b.bad++
  }
  const cycleLoop = (b) => {
    for (let i = 0; i < b.n; i++) {
      const now = Date.now()
      const v = q.claim.get(now + LEASE_MS, b.sym[i], b.win[i], b.kind[i], now)
      if (v === undefined || q.fill.run(1, 7, CHECKSUM, b.sym[i], b.win[i], b.kind[i], v).changes !== 1) b.bad++
    }
  }
  const clearLoop = (b) => {
    for (let i = 0; i < b.n; i++) if (q.clear.run(b.sym[i], b.win[i], b.kind[i], b.ver[i]).changes !== 1) b.bad++
  }
  const tx = (f) => db.transaction(f)
  const claimTx = tx(claimLoop)
  return {
    prepare,
    claimForSetup: claimTx,
    variants: [
      { contender: 'better-sqlite3 (per-op)', mode: 'WAL NORMAL, autocommit', slow: true, claim: claimLoop, fill: fillLoop, cycle: cycleLoop, clear: clearLoop },
      { contender: 'better-sqlite3 (1000-op txn)', mode: 'WAL NORMAL, 1 txn/sample', claim: claimTx, fill: tx(fillLoop), cycle: tx(cycleLoop), clear: tx(clearLoop) },
    ],
    fillTx: tx(fillLoop),
    row(sym, win) {
      const r = { symbolId: sym, windowIdx: win }
      for (const [k, status, version, ptype, pid, sum, lease] of q.row.all(sym, win)) r[KIND_NAMES[k]] = slotObject(status, version, ptype, pid, sum, lease)
      return r
    },
    nextUnfilled(sym, start, kind) {
      return q.next.get(sym, kind, start) ?? -1
    },
    claimRange(sym, kind, from, to) {
      const now = Date.now()
      return q.claimRange.all(now + LEASE_MS, sym, kind, from, to, now)
    },
  }
}

// ---------------------------------------------------------------------------
// lmdb-js

/**
 * An lmdb-js database with entry versions, keyed [sym, kind, win], values
 * { s: status, l: lease, t: payload type, p: payload id, c: checksum }.
 * noSync: writes reach the OS page cache (survive a process crash), like
 * window-space's buffered mode; no fsync.
 */
export function openLmdb(path) {
  const env = lmdbOpen({ path, useVersions: true, noSync: true, compression: false })
  return { env, slots: env.openDB({ name: 'slots', useVersions: true }), payloads: env.openDB({ name: 'payloads' }) }
}

/** The slot operations of lmdb-js: per-op sync transactions, 1000-op transactionSync, and batched async writes with ifVersion. */
export function lmdbSlots(L, universe) {
  const db = L.slots
  const prepare = (b) => {
    universe.take(b)
    db.transactionSync(() => {
      for (let i = 0; i < b.n; i++) db.putSync([b.sym[i], b.kind[i], b.win[i]], { s: 0 }, 0)
    })
  }
  // A conditional write inside a sync transaction: read the entry, check, write the next version.
  const claimOne = (s, w, k, now) => {
    const key = [s, k, w]
    const e = db.getEntry(key)
    const st = e?.value.s
    if (!(st === 0 || st === 3 || (st === 1 && e.value.l <= now))) return -1
    db.putSync(key, { s: 1, l: now + LEASE_MS }, e.version + 1)
    return e.version + 1
  }
  const fillOne = (s, w, k, v) => {
    const key = [s, k, w]
    const e = db.getEntry(key)
    if (!e || e.version !== v || e.value.s !== 1) return -4
    db.putSync(key, { s: 2, t: 1, p: 7, c: CHECKSUM }, v + 1)
    return v + 1
  }
  const clearOne = (s, w, k, v) => {
    const key = [s, k, w]
    const e = db.getEntry(key)
    if (!e || e.version !== v || e.value.s !== 1) return -4
    db.putSync(key, { s: 3 }, v + 1)
    return v + 1
  }
  const loops = (wrapOp) => ({
    claim(b) {
      const now = Date.now()
      for (let i = 0; i < b.n; i++) {
        const v = wrapOp(() => claimOne(b.sym[i], b.win[i], b.kind[i], now))
        if (v < 0) b.bad++
        b.ver[i] = v
      }
    },
    fill(b) {
      for (let i = 0; i < b.n; i++) if (wrapOp(() => fillOne(b.sym[i], b.win[i], b.kind[i], b.ver[i])) < 0) b.bad++
    },
    cycle(b) {
      for (let i = 0; i < b.n; i++) {
        const now = Date.now()
        const v = wrapOp(() => claimOne(b.sym[i], b.win[i], b.kind[i], now))
        if (v < 0 || wrapOp(() => fillOne(b.sym[i], b.win[i], b.kind[i], v)) < 0) b.bad++
      }
    },
    clear(b) {
      for (let i = 0; i < b.n; i++) if (wrapOp(() => clearOne(b.sym[i], b.win[i], b.kind[i], b.ver[i])) < 0) b.bad++
    },
  })
  const perOp = loops((f) => db.transactionSync(f))
  const inTx = loops((f) => f())
  const batched = {}
  for (const op of ['claim', 'fill', 'cycle', 'clear']) batched[op] = (b) => db.transactionSync(() => inTx[op](b))
  // Batched async writes: conditional puts (ifVersion, checked atomically at commit),
  // all issued in one event turn so lmdb-js commits them in one transaction.
  const settle = async (b, promises) => {
    for (const ok of await Promise.all(promises)) if (!ok) b.bad++
  }
  const asyncOps = {
    async claim(b) {
      const now = Date.now()
      const ps = new Array(b.n)
      for (let i = 0; i < b.n; i++) {
        const key = [b.sym[i], b.kind[i], b.win[i]]
        const v = db.getEntry(key).version
        b.ver[i] = v + 1
        ps[i] = db.put(key, { s: 1, l: now + LEASE_MS }, v + 1, v)
      }
      await settle(b, ps)
    },
    async fill(b) {
      const ps = new Array(b.n)
      for (let i = 0; i < b.n; i++) ps[i] = db.put([b.sym[i], b.kind[i], b.win[i]], { s: 2, t: 1, p: 7, c: CHECKSUM }, b.ver[i] + 1, b.ver[i])
      await settle(b, ps)
    },
    async cycle(b) {
      const now = Date.now()
      const ps = new Array(2 * b.n)
      for (let i = 0; i < b.n; i++) {
        const key = [b.sym[i], b.kind[i], b.win[i]]
        const v = db.getEntry(key).version
        ps[2 * i] = db.put(key, { s: 1, l: now + LEASE_MS }, v + 1, v)
        ps[2 * i + 1] = db.put(key, { s: 2, t: 1, p: 7, c: CHECKSUM }, v + 2, v + 1)
      }
      await settle(b, ps)
    },
    async clear(b) {
      const ps = new Array(b.n)
      for (let i = 0; i < b.n; i++) ps[i] = db.put([b.sym[i], b.kind[i], b.win[i]], { s: 3 }, b.ver[i] + 1, b.ver[i])
      await settle(b, ps)
    },
  }
  return {
    prepare,
    claimForSetup: batched.claim,
    fillTx: batched.fill,
    variants: [
      { contender: 'lmdb-js (per-op txn)', mode: 'noSync, transactionSync/op', slow: true, ...perOp },
      { contender: 'lmdb-js (1000-op txn)', mode: 'noSync, transactionSync/sample', ...batched },
      { contender: 'lmdb-js (async batch)', mode: 'noSync, ifVersion puts, 1 commit/sample', async: true, ...asyncOps },
    ],
    row(sym, win) {
      const r = { symbolId: sym, windowIdx: win }
      for (let k = 0; k < 7; k++) {
        const e = db.getEntry([sym, k, win])
        const v = e?.value
        r[KIND_NAMES[k]] = v ? slotObject(v.s, e.version, v.t ?? 0, v.p ?? 0, v.c ?? 0, v.l ?? 0) : slotObject(0, 0, 0, 0, 0, 0)
      }
      return r
    },
    nextUnfilled(sym, start, kind) {
      for (const { key, value } of db.getRange({ start: [sym, kind, start], end: [sym, kind + 1] })) {
        if (value.s !== 2 && value.s !== 4) return key[2]
      }
      return -1
    },
    claimRange(sym, kind, from, to) {
      const now = Date.now()
      let n = 0
      db.transactionSync(() => {
        for (let w = from; w < to; w++) if (claimOne(sym, w, kind, now) >= 0) n++
      })
      return n
    },
  }
}
