// The numbers-only calls refuse every number that is not a whole number in
// its range (NaN, fractions, negatives, infinities, values past 2^32 or
// 2^53) with a RangeError, code ERR_OUT_OF_RANGE, and change nothing: they
// never round, wrap or truncate a number onto another slot, symbol, window,
// version or payload. The same for every item of fillMany.
import { execFileSync } from 'node:child_process'
import { Worker } from 'node:worker_threads'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { SlotKind, WindowSpace, WindowSpaceConfig, WindowSpaceController } from '../src/index'
import { fast, native } from '../src/native'
import { caught } from './helpers'

const WINDOWS = 16
const U32_BAD = [NaN, 7.9, 0.5, 2 ** 32 + 7, 2 ** 32, -1, -0.5, Infinity, -Infinity, 2 ** 53 + 2]
const KIND_BAD = [...U32_BAD, 9, 255]
const BYTE_BAD = [NaN, 7.9, 256, 2 ** 32 + 7, -1, Infinity]
const ID_BAD = [NaN, 7.9, 2 ** 53, 2 ** 64, -1, -0.5, Infinity]
const LEASE_BAD = [NaN, 7.9, 2 ** 53 + 2, Infinity] // a negative lease means the default lease

const dir = mkdtempSync(join(tmpdir(), 'ws-raw-'))
let c: WindowSpaceController
let sym: number
let filledVersion: number
let pending: { window: number; version: number }
let payloadId: number
const kind = SlotKind.Trade('optionTrade').code

beforeAll(() => {
  c = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: WINDOWS }))).controller
  // Symbols 0..7 exist, so that a number cut down to 7 or 0 would name a real one.
  for (let i = 0; i < 8; i++) c.resolveSymbol(`S${i}`)
  sym = c.resolveSymbol('S1')
  payloadId = c.payloadStores().trades.append({ symbol: sym, windowIdx: 3, slotKind: 'optionTrade', payloadType: 'Binary', uri: 'artifacts/p', checksum: 5n, size: 1 })
  for (let i = 0; i < 7; i++) c.payloadStores().trades.append({ symbol: sym, windowIdx: 3, slotKind: 'optionTrade', payloadType: 'Binary', uri: `artifacts/p${i}`, checksum: 5n, size: 1 })
  const claim = c.markPending(sym, 3, 'optionTrade', { leaseMs: 600_000 })
  pending = { window: 3, version: claim.version }
  const f = c.markPending(sym, 4, 'optionTrade', { leaseMs: 600_000 })
  filledVersion = c.setRef(sym, 4, 'optionTrade', { payloadType: 'Binary', payloadId, version: f.version, checksum: 5n })
})
afterAll(() => {
  c.close()
  rmSync(dir, { recursive: true, force: true })
})

/** Everything the raw calls could change: every slot of every symbol, metrics, events, stores. */
function state(): string {
  const slots = []
  for (let s = 0; s < 8; s++) for (let w = 0; w < WINDOWS; w++) slots.push(c.getTradeRow(s, w))
  return JSON.stringify({ slots, metrics: c.slotMetrics(), events: [c.eventCounts('trade'), c.eventCounts('enrichment')], trades: c.payloadStores().trades.length }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))
}

/** `call` throws a RangeError (from the addon: with code ERR_OUT_OF_RANGE) and changes nothing. */
function expectRefused(call: () => unknown, what: string, native = true) {
  const before = state()
  const e = caught(call)
  expect(e, what).toBeInstanceOf(RangeError)
  if (native) expect((e as { code?: string }).code, what).toBe('ERR_OUT_OF_RANGE')
  expect(state(), `${what} changed something`).toBe(before)
}

/** Calls `f` with argument `i` of `good` replaced by each of `bad`. */
function eachBadArgument(name: string, good: number[], bads: number[][], f: (...args: number[]) => unknown) {
  good.forEach((_, i) => {
    for (const b of bads[i]!) {
      const args = good.slice()
      args[i] = b
      expectRefused(() => f(...args), `${name}(${args.join(', ')}) [argument ${i}]`)
    }
  })
}

describe('raw calls refuse numbers that are not whole and in range', () => {
  it('raw.claim: symbolId, windowIdx, kindCode, leaseMs', () => {
    eachBadArgument('claim', [0, 5, kind, 1000], [U32_BAD, U32_BAD, KIND_BAD, LEASE_BAD], (s, w, k, l) => c.raw.claim(s, w, k, l))
    expect(c.raw.claim(0, 5, kind, -1)).toBeGreaterThan(0) // the good call does claim
  })

  it('raw.fill: every argument', () => {
    const good = [sym, pending.window, kind, pending.version, 1, payloadId, 0, 5]
    eachBadArgument('fill', good, [U32_BAD, U32_BAD, KIND_BAD, U32_BAD, BYTE_BAD, ID_BAD, U32_BAD, U32_BAD], (...a) => c.raw.fill(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!, a[7]!))
    // A version past 2^32 is not the claim's version modulo 2^32.
    expectRefused(() => c.raw.fill(sym, pending.window, kind, pending.version + 2 ** 32, 1, payloadId, 0, 5), 'fill with version + 2^32')
  })

  it('raw.clear: every argument', () => {
    eachBadArgument('clear', [sym, pending.window, kind, pending.version], [U32_BAD, U32_BAD, KIND_BAD, U32_BAD], (s, w, k, v) => c.raw.clear(s, w, k, v))
  })

  it('raw.nextUnfilledWindow: every argument', () => {
    eachBadArgument('nextUnfilledWindow', [sym, 0, kind], [U32_BAD, U32_BAD, KIND_BAD], (s, w, k) => c.raw.nextUnfilledWindow(s, w, k))
    expect(c.raw.nextUnfilledWindow(sym, 4, kind)).toBe(5)
  })

  it('the good calls still work after all the refusals', () => {
    expect(c.raw.fill(sym, pending.window, kind, pending.version, 1, payloadId, 0, 5)).toBe(pending.version + 1)
    expect(c.getSlot(sym, 4, 'optionTrade').version).toBe(filledVersion)
  })
})

describe('fillMany refuses items whose numbers are not whole and in range', () => {
  it('symbol, windowIdx, meta.version, meta.payloadId, meta.payloadType of any item', () => {
    const claim = c.markPending(sym, 8, 'optionTrade', { leaseMs: 600_000 })
    const good = { symbol: sym, windowIdx: 8, slotKind: 'optionTrade' as const, meta: { payloadType: 1 as number, payloadId, version: claim.version, checksum: 5n } }
    const variants: Array<[string, number[], (v: number) => typeof good]> = [
      ['symbol', U32_BAD, (v) => ({ ...good, symbol: v })],
      ['windowIdx', U32_BAD, (v) => ({ ...good, windowIdx: v })],
      ['meta.version', U32_BAD, (v) => ({ ...good, meta: { ...good.meta, version: v } })],
      ['meta.payloadId', ID_BAD, (v) => ({ ...good, meta: { ...good.meta, payloadId: v } })],
      ['meta.payloadType', BYTE_BAD, (v) => ({ ...good, meta: { ...good.meta, payloadType: v } })],
    ]
    for (const [what, bads, make] of variants) {
      for (const b of bads) {
        // The bad item second: the good first item must not be filled either. (The
        // facade checks items before the native call: a plain RangeError.)
        expectRefused(() => c.fillMany([good, make(b)]), `fillMany item 1 with ${what} = ${b}`, false)
      }
    }
    expect(c.fillMany([good])).toEqual([{ ok: true, version: claim.version + 1 }])
  })
})

describe('the hot-path functions', () => {
  // The addon's exports object has too many properties for V8's fast mode;
  // the facade reaches the hot-path functions through an object of their own
  // that must stay in fast mode (a dictionary lookup on every call otherwise).
  it('are reached through an object V8 keeps in fast mode', () => {
    const native = join(__dirname, '..', 'dist', 'native.js')
    const script = [
      `const { fast, native } = require(${JSON.stringify(native)})`,
      `const same = Object.keys(native).filter((k) => k.startsWith('fast')).every((k) => fast[k] === native[k])`,
      `process.stdout.write(JSON.stringify({ fastMode: %HasFastProperties(fast), same }))`,
    ].join(';')
    const out = execFileSync(process.execPath, ['--allow-natives-syntax', '-e', script], { encoding: 'utf8' })
    expect(JSON.parse(out)).toEqual({ fastMode: true, same: true })
  })
})

describe('controller handles', () => {
  /** A state directory with symbol `s`, closed; `k` is a slot kind's code. */
  function closedDirectory(): { d: string; s: number; k: number } {
    const d = mkdtempSync(join(tmpdir(), 'ws-raw-handle-'))
    const setup = WindowSpaceController.bootstrap(new WindowSpaceConfig(d, WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: 4 }))).controller
    const s = setup.resolveSymbol('S')
    setup.close()
    return { d, s, k: SlotKind.Trade('optionTrade').code }
  }

  it('a handle of one thread reaches nothing in another thread, also where that thread has controllers open', async () => {
    const { d, s, k } = closedDirectory()
    try {
      const mine = native.NativeController.openExisting(d)
      try {
        const script = [
          `const { parentPort, workerData } = require('node:worker_threads')`,
          `const { native, fast } = require(workerData.native)`,
          // Open controllers the way that would reach the main thread's handle number if
          // handles were numbered per thread: fill the entries below its index, then
          // open and close at its index until a generation matches (or 64 tries).
          `const open = []`,
          `for (let n = 0; n < 64; n++) {`,
          `  const c = native.NativeController.openExisting(workerData.dir)`,
          `  if (c.handle === workerData.handle || open.length < workerData.handle % 2 ** 20) open.push(c); else c.close()`,
          `  if (c.handle === workerData.handle) break`,
          `}`,
          `if (open.length === 0) open.push(native.NativeController.openExisting(workerData.dir))`,
          `let code = null`,
          `try { fast.fastClaim(workerData.handle, workerData.s, 1, workerData.k, -1) } catch (e) { code = e.code }`,
          `const out = new Float64Array(8); fast.fastReadSlot(open[0].handle, workerData.s, 1, workerData.k, out)`,
          `for (const c of open) c.close()`,
          `parentPort.postMessage({ code, status: out[0] })`,
        ].join('\n')
        const workerData = { native: join(__dirname, '..', 'dist', 'native.js'), dir: d, handle: mine.handle, s, k }
        const answer = await new Promise((resolve, reject) => {
          const w = new Worker(script, { eval: true, workerData })
          w.once('message', resolve)
          w.once('error', reject)
        })
        expect(answer).toEqual({ code: 'ERR_CLOSED', status: 0 })
      } finally {
        mine.close()
      }
    } finally {
      rmSync(d, { recursive: true, force: true })
    }
  })

  it('a handle kept past close() reaches no controller, also not the next one opened in its place', () => {
    const { d, s, k } = closedDirectory()
    try {
      const first = native.NativeController.openExisting(d)
      const stale = first.handle
      first.close()
      const second = native.NativeController.openExisting(d)
      try {
        expect(second.handle).not.toBe(stale)
        for (const call of [() => fast.fastClaim(stale, s, 1, k, -1), () => fast.fastClear(stale, s, 1, k, 1), () => fast.fastNextUnfilled(stale, s, 0, k)]) {
          expect((caught(call) as { code?: string }).code).toBe('ERR_CLOSED')
        }
        const out = new Float64Array(8)
        fast.fastReadSlot(second.handle, s, 1, k, out)
        expect(out[0], 'the slot is still Empty').toBe(0)
        expect(fast.fastClaim(second.handle, s, 1, k, -1)).toBe(1)
      } finally {
        second.close()
      }
    } finally {
      rmSync(d, { recursive: true, force: true })
    }
  })
})
