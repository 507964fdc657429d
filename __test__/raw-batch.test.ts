// The numbers-only batch calls, raw.claimNextUnfilled and raw.fillBatch:
// they do what the object forms (claimNextUnfilled, fillMany) and the single
// raw calls do, slot for slot, counter for counter; they refuse bad numbers
// with a RangeError and change nothing; and processes racing for the same
// windows with them each win a window at most once, every window once; and
// a batch over shared memory that another thread rewrites acts only on the
// slots its numbers named when the call read them.
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Worker } from 'node:worker_threads'
import { afterEach, describe, expect, it } from 'vitest'

import {
  InvalidArgumentError,
  Refusal,
  SlotKind,
  UnknownSymbolError,
  VersionConflictError,
  WindowOutOfRangeError,
  WindowSpace,
  WindowSpaceConfig,
  WindowSpaceController,
} from '../src/index'
import { caught } from './helpers'

const WINDOWS = 400
const kind = SlotKind.Trade('optionTrade').code
const dirs: string[] = []
const open: WindowSpaceController[] = []
afterEach(() => {
  for (const c of open.splice(0)) c.close()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/**
 * A directory whose optionTrade slots of symbol S, windows 0..40, are in every
 * state a batch claim meets: Filled, Retired, Cleared, held by a live claim,
 * held by an expired claim, Empty (in a chunk that exists and in one that does
 * not). The same calls in the same order, so two such directories agree.
 */
async function world(): Promise<{ c: WindowSpaceController; s: number; ids: number[] }> {
  const d = mkdtempSync(join(tmpdir(), 'ws-raw-batch-'))
  dirs.push(d)
  const c = WindowSpaceController.bootstrap(new WindowSpaceConfig(d, WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: WINDOWS }))).controller
  open.push(c)
  const s = c.resolveSymbol('S')
  const ids = Array.from({ length: WINDOWS }, (_, w) =>
    c.payloadStores().trades.append({ symbol: s, windowIdx: w, slotKind: 'optionTrade', payloadType: 'Binary', uri: `artifacts/${w}`, checksum: BigInt(w), size: 1 }),
  )
  for (const w of [1, 2, 9]) {
    const g = c.markPending(s, w, 'optionTrade', { leaseMs: 600_000 })
    c.setRef(s, w, 'optionTrade', { payloadType: 'Binary', payloadId: ids[w]!, version: g.version, checksum: BigInt(w) })
  }
  c.retire(s, 3, 'optionTrade')
  c.clearSlot(s, 4, 'optionTrade', c.markPending(s, 4, 'optionTrade'))
  c.markPending(s, 5, 'optionTrade', { leaseMs: 600_000 })
  c.markPending(s, 6, 'optionTrade', { leaseMs: 1 })
  c.markPending(s, 7, 'optionTrade', { leaseMs: 1 })
  // The short claims expire (the clock's tick is a few ms).
  await new Promise((r) => setTimeout(r, 30))
  return { c, s, ids }
}

/** Status and version of windows 0..n, metrics and event counts: what a batch can change. */
function state(c: WindowSpaceController, s: number, n = 200): unknown {
  const slots = []
  for (let w = 0; w < n; w++) {
    const x = c.getSlot(s, w, 'optionTrade')
    slots.push([x.status, x.version])
  }
  return { slots, metrics: c.slotMetrics(), events: [c.eventCounts('trade'), c.eventCounts('enrichment')] }
}

describe('raw.claimNextUnfilled', () => {
  it('claims what claimNextUnfilled and single claims claim, with the same counts and events', async () => {
    const [a, b, one] = [await world(), await world(), await world()]
    // Across a chunk boundary (a trade chunk holds 146 rows) into a chunk never allocated.
    const out = new Float64Array(3 * 160)
    const got = a.c.raw.claimNextUnfilled(a.s, 0, kind, 160, 60_000, out)
    const raw = Array.from({ length: got }, (_, i) => [out[3 * i]!, out[3 * i + 1]!])
    const objects = b.c.claimNextUnfilled(b.s, 0, 'optionTrade', 160, { leaseMs: 60_000 }).map((x) => [x.windowIdx, x.version])
    const singles: number[][] = []
    for (let w = 0; singles.length < 160; w++) {
      const v = one.c.raw.claim(one.s, w, kind, 60_000)
      if (v > 0) singles.push([w, v])
    }
    expect(got).toBe(160)
    expect(raw).toEqual(objects)
    expect(raw).toEqual(singles)
    // Skipped: Filled 1, 2, 9, Retired 3, the live claim 5; taken: Cleared 4, expired 6 and 7 (takeovers).
    expect(raw.slice(0, 6)).toEqual([[0, 1], [4, 3], [6, 2], [7, 2], [8, 1], [10, 1]])
    expect(state(a.c, a.s)).toEqual(state(b.c, b.s))
    // The single claims were also tried on the windows a batch skips, and
    // counted as refusals there: compare the slots, the counts and the claims.
    const { slots, metrics } = state(one.c, one.s) as { slots: unknown; metrics: unknown }
    expect(state(a.c, a.s)).toMatchObject({ slots, metrics })
    expect(a.c.eventCounts('trade')).toMatchObject({ claims: one.c.eventCounts('trade').claims, takeovers: 2, busy: 0, conflicts: 0 })
    // The deadline written into each slot is the one reported.
    for (let i = 0; i < got; i++) expect(a.c.getSlot(a.s, out[3 * i]!, 'optionTrade').leaseExpiresAt).toBe(out[3 * i + 2])
    // The metrics are an exact count of the slots.
    expect(a.c.slotMetrics()).toEqual(a.c.recountSlots())
  })

  it('claims fewer than asked at the end of the schedule, none from the window count (its end) or for a count of 0; a start past the window count throws as raw.claim does', async () => {
    const { c, s } = await world()
    const out = new Float64Array(3 * 10)
    expect(c.raw.claimNextUnfilled(s, WINDOWS - 3, kind, 10, -1, out)).toBe(3)
    expect(Array.from(out.subarray(0, 9)).filter((_, i) => i % 3 === 0)).toEqual([WINDOWS - 3, WINDOWS - 2, WINDOWS - 1])
    expect(c.raw.claimNextUnfilled(s, WINDOWS - 3, kind, 10, -1, out)).toBe(0)
    const before = state(c, s)
    expect(c.raw.claimNextUnfilled(s, WINDOWS, kind, 10, -1, out)).toBe(0)
    expect(c.raw.claimNextUnfilled(s, WINDOWS, kind, 0, -1, out)).toBe(0)
    for (const [start, count] of [[WINDOWS + 1, 10], [WINDOWS + 1, 0], [WINDOWS + 5, 1], [2 ** 32 - 1, 1]] as const) {
      const e = caught(() => c.raw.claimNextUnfilled(s, start, kind, count, -1, out))
      expect(e, `start ${start} count ${count}`).toBeInstanceOf(WindowOutOfRangeError)
      expect((e as { code?: string }).code).toBe('ERR_WINDOW_OUT_OF_RANGE')
    }
    expect(caught(() => c.raw.claim(s, WINDOWS, kind, -1))).toBeInstanceOf(WindowOutOfRangeError)
    expect(state(c, s)).toEqual(before)
    expect(c.raw.claimNextUnfilled(s, 0, kind, 0, -1, new Float64Array(0))).toBe(0)
    expect(state(c, s)).toEqual(before)
    // The default lease for a negative leaseMs.
    expect(out[2]! - Date.now()).toBeGreaterThan(20_000)
  })

  it('refuses bad numbers, a short or missing output array and an unknown symbol, changing nothing', async () => {
    const { c, s } = await world()
    const out = new Float64Array(30)
    const before = state(c, s)
    const good = [s, 0, kind, 10, 1000]
    const bad = [[NaN, 0.5, -1, 2 ** 32], [NaN, 1.5, -1, 2 ** 32], [NaN, 9, 255, -1], [NaN, 2.5, -1, 2 ** 32], [NaN, 0.5, 2 ** 53 + 2]]
    good.forEach((_, i) => {
      for (const b of bad[i]!) {
        const args = good.slice()
        args[i] = b
        const e = caught(() => c.raw.claimNextUnfilled(args[0]!, args[1]!, args[2]!, args[3]!, args[4]!, out))
        expect(e, `argument ${i} = ${b}`).toBeInstanceOf(RangeError)
        expect((e as { code?: string }).code).toBe('ERR_OUT_OF_RANGE')
      }
    })
    expect(caught(() => c.raw.claimNextUnfilled(s, 0, kind, 11, 1000, out))).toBeInstanceOf(InvalidArgumentError)
    expect(caught(() => c.raw.claimNextUnfilled(s, 0, kind, 10, 1000, new Float32Array(30) as unknown as Float64Array))).toBeInstanceOf(TypeError)
    expect(caught(() => (c.raw.claimNextUnfilled as (...a: unknown[]) => number)(s, 0, kind, 10, 1000))).toBeInstanceOf(TypeError)
    expect(caught(() => c.raw.claimNextUnfilled(99, 0, kind, 10, 1000, out))).toBeInstanceOf(UnknownSymbolError)
    expect(state(c, s)).toEqual(before)
  })
})

describe('raw.fillBatch', () => {
  /** Claims windows 10..10+n in `w` and packs a fill of each, the item at `stale` with a wrong version. */
  function pack(w: { c: WindowSpaceController; s: number; ids: number[] }, n: number, stale: number): Float64Array {
    const buf = new Float64Array(9 * n)
    for (let i = 0; i < n; i++) {
      const win = 20 + i
      const v = w.c.raw.claim(w.s, win, kind, 60_000)
      buf.set([w.s, win, kind, i === stale ? v + 7 : v, 1, w.ids[win]!, 0, win], 8 * i)
    }
    return buf
  }

  it('fills what fillMany and single fills fill; a refused item is reported with the slot it saw and does not stop the batch', async () => {
    const [a, b, one] = [await world(), await world(), await world()]
    const n = 12
    const bufA = pack(a, n, 5)
    const bufB = pack(b, n, 5)
    const bufOne = pack(one, n, 5)
    expect(a.c.raw.fillBatch(bufA, n)).toBe(n)
    const results = Array.from(bufA.subarray(8 * n))
    expect(results.filter((r) => r === Refusal.Conflict)).toHaveLength(1)
    expect(results[5]).toBe(Refusal.Conflict)
    expect(results.filter((_, i) => i !== 5).every((r) => r === 2)).toBe(true)
    // The refused item's numbers are now the slot as seen: Pending (1), version 1.
    expect(Array.from(bufA.subarray(40, 42))).toEqual([1, 1])
    const many = b.c.fillMany(
      Array.from({ length: n }, (_, i) => ({ symbol: b.s, windowIdx: bufB[8 * i + 1]!, slotKind: 'optionTrade' as const, meta: { payloadType: 1, payloadId: bufB[8 * i + 5]!, version: bufB[8 * i + 3]!, checksum: BigInt(bufB[8 * i + 7]!) } })),
    )
    expect(many.map((r) => (r.ok ? r.version : Refusal.Conflict))).toEqual(results)
    const refused = many[5]!
    expect(!refused.ok && refused.error).toBeInstanceOf(VersionConflictError)
    const singles = Array.from({ length: n }, (_, i) => one.c.raw.fill(one.s, bufOne[8 * i + 1]!, kind, bufOne[8 * i + 3]!, 1, bufOne[8 * i + 5]!, 0, bufOne[8 * i + 7]!))
    expect(singles).toEqual(results)
    expect(state(a.c, a.s)).toEqual(state(b.c, b.s))
    expect(state(a.c, a.s)).toEqual(state(one.c, one.s))
    expect(a.c.slotMetrics()).toEqual(a.c.recountSlots())
  })

  it('refuses a bad number in any item before filling any; an unknown symbol stops the batch after the items before it', async () => {
    const w = await world()
    const n = 3
    const buf = pack(w, n, -1)
    const before = state(w.c, w.s)
    const bads: Array<[number, number]> = [[0, 2 ** 32], [1, 0.5], [2, 9], [3, -1], [4, 256], [5, 2 ** 53], [6, NaN], [7, Infinity]]
    for (const [field, v] of bads) {
      const copy = buf.slice()
      copy[8 + field] = v
      const e = caught(() => w.c.raw.fillBatch(copy, n))
      expect(e, `field ${field} = ${v}`).toBeInstanceOf(RangeError)
      expect(String((e as Error).message)).toContain('item 1')
      expect(state(w.c, w.s)).toEqual(before)
    }
    expect(caught(() => w.c.raw.fillBatch(buf.subarray(0, 9 * n - 1), n))).toBeInstanceOf(InvalidArgumentError)
    expect(state(w.c, w.s)).toEqual(before)
    const unknown = buf.slice()
    unknown[8] = 99
    expect(caught(() => w.c.raw.fillBatch(unknown, n))).toBeInstanceOf(UnknownSymbolError)
    expect(unknown[8 * n]).toBe(2)
    expect(w.c.getSlot(w.s, 20, 'optionTrade').status).toBe('Filled')
    expect(w.c.getSlot(w.s, 21, 'optionTrade').status).toBe('Pending')
    expect(w.c.slotMetrics()).toEqual(w.c.recountSlots())
  })
})

describe('raw.fillBatch over a SharedArrayBuffer another thread writes', () => {
  it('acts only on the slots its items named when it read them, never on one a later value names', async () => {
    const d = mkdtempSync(join(tmpdir(), 'ws-raw-batch-sab-'))
    dirs.push(d)
    const c = WindowSpaceController.bootstrap(new WindowSpaceConfig(d, WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: WINDOWS }))).controller
    open.push(c)
    // Symbol 0 is what a negative symbol number would turn into, were it used unchecked.
    const b = c.resolveSymbol('B')
    const a = c.resolveSymbol('A')
    expect([b, a]).toEqual([0, 1])
    const id = c.payloadStores().trades.append({ symbol: a, windowIdx: 0, slotKind: 'optionTrade', payloadType: 'Binary', uri: 'artifacts/a', checksum: 1n, size: 1 })
    // Many items in front of the last one, so that the batch runs long after
    // it read the last item's numbers: each names window 0 of A, never
    // claimed, and is refused.
    const n = 20_000
    const padding = new Float64Array(8 * (n - 1))
    for (let i = 0; i < n - 1; i++) padding.set([a, 0, kind, 999, 1, id, 0, 0], 8 * i)
    const buf = new Float64Array(new SharedArrayBuffer(8 * 9 * n))
    const last = 8 * (n - 1)
    // The other thread flips the last item's symbol between A and -1 (not a
    // symbol id: the batch must throw a RangeError if it reads -1).
    const worker = new Worker(
      `const { parentPort, workerData: { sab, i, a } } = require('node:worker_threads')
       const f = new Float64Array(sab)
       parentPort.postMessage('flipping')
       for (;;) { f[i] = a; f[i] = -1 }`,
      { eval: true, workerData: { sab: buf.buffer, i: last, a } },
    )
    let [refused, filled] = [0, 0]
    try {
      await once(worker, 'message')
      for (let w = 1; w < WINDOWS && !(w > 40 && refused >= 3 && filled >= 3); w++) {
        const va = c.raw.claim(a, w, kind, 600_000)
        const vb = c.raw.claim(b, w, kind, 600_000)
        buf.set(padding)
        buf.set([a, w, kind, va, 1, id, 0, 0], last)
        let threw: unknown
        try {
          expect(c.raw.fillBatch(buf, n)).toBe(n)
        } catch (e) {
          threw = e
        }
        // No item ever named symbol B.
        expect(c.getSlot(b, w, 'optionTrade'), `window ${w}`).toMatchObject({ status: 'Pending', version: vb })
        if (threw === undefined) {
          filled++
          expect(c.getSlot(a, w, 'optionTrade')).toMatchObject({ status: 'Filled', version: va + 1 })
          expect(buf[8 * n + n - 1]).toBe(va + 1)
          expect(buf[8 * n]).toBe(Refusal.Conflict)
        } else {
          refused++
          expect(threw).toBeInstanceOf(RangeError)
          expect(String((threw as Error).message)).toContain(`item ${n - 1}: symbolId`)
          expect(c.getSlot(a, w, 'optionTrade')).toMatchObject({ status: 'Pending', version: va })
        }
      }
    } finally {
      await worker.terminate()
    }
    // The other thread's writes were seen both ways while batches ran.
    expect(refused).toBeGreaterThan(0)
    expect(filled).toBeGreaterThan(0)
    expect(c.slotMetrics()).toEqual(c.recountSlots())
  })
})

describe('processes racing with the batch calls', () => {
  it('every window is claimed and filled exactly once, by one winner', async () => {
    const d = mkdtempSync(join(tmpdir(), 'ws-raw-batch-race-'))
    dirs.push(d)
    const windows = 300
    const c = WindowSpaceController.bootstrap(new WindowSpaceConfig(d, WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: windows }))).controller
    open.push(c)
    const engines = 3
    const script = join(__dirname, 'fixtures', 'batch-racer.mjs')
    const run = promisify(execFile)
    const runs = Array.from({ length: engines }, (_, engine) => run(process.execPath, [script, JSON.stringify({ stateDir: d, engine, windows, batch: 7 })]))
    while (Array.from({ length: engines }, (_, e) => existsSync(join(d, `ready-${e}`))).some((r) => !r)) await new Promise((r) => setTimeout(r, 5))
    writeFileSync(join(d, 'go'), '')
    const results = (await Promise.all(runs)).map((r) => JSON.parse(r.stdout) as { claims: number[][]; fills: number[][] })
    const claimed = results.flatMap((r) => r.claims.map(([w]) => w!))
    expect(claimed.slice().sort((x, y) => x - y)).toEqual(Array.from({ length: windows }, (_, w) => w))
    for (const r of results) expect(r.fills.every(([, v]) => v === 2)).toBe(true)
    const s = c.resolveSymbol('RACE')
    for (let w = 0; w < windows; w++) expect(c.getSlot(s, w, 'optionTrade')).toMatchObject({ status: 'Filled', version: 2 })
    expect(c.slotMetrics()).toEqual(c.recountSlots())
    expect(c.eventCounts('trade')).toMatchObject({ claims: windows, fills: windows })
  })
})
