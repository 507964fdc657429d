// Batch calls (claimNextUnfilled, fillMany), nextUnfilledWindow, the admin
// transitions (forceClear, retire, and their ranges), and the counters:
// slotMetrics against recountSlots and against counts kept by the test
// itself, and eventCounts against the events the test caused.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { caught } from './helpers'

import {
  SLOT_KIND_INFO,
  SLOT_KIND_NAMES,
  SLOT_STATUSES,
  SlotBusyError,
  SlotFilledError,
  SlotRetiredError,
  UnknownPayloadError,
  VersionConflictError,
  WindowOutOfRangeError,
  WindowSpace,
  WindowSpaceConfig,
  WindowSpaceController,
  type Claim,
  type LedgerEventCounts,
  type SlotKindName,
  type SlotMetric,
  type SlotStatus,
} from '../src/index'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const WINDOWS = 12

let dir: string
let c: WindowSpaceController

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ws-batch-'))
  c = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: WINDOWS }))).controller
  c.resolveSymbol('SPY')
})

afterEach(() => {
  c.close()
  rmSync(dir, { recursive: true, force: true })
})

const STORE = { optionTrade: 'trades', optionQuote: 'quotes', greeks: 'greeks', rfRate: 'rfRate', aggregation: 'aggregations', underlyingTrade: 'trades' } as const
type K = keyof typeof STORE

function payload(kind: K, symbol = 'SPY', windowIdx = 0): number {
  return c.payloadStores()[STORE[kind]].append({ symbol, windowIdx, slotKind: kind, payloadType: 'Json', uri: `${symbol}/${kind}/${windowIdx}`, checksum: 11n, size: 1 })
}

function fill(kind: K, windowIdx: number, symbol = 'SPY'): number {
  const claim = c.markPending(symbol, windowIdx, kind)
  return c.setRef(symbol, windowIdx, kind, { payloadType: 'Json', payloadId: payload(kind, symbol, windowIdx), version: claim.version, checksum: 11n })
}

function statuses(kind: SlotKindName, symbol = 'SPY'): string[] {
  return Array.from({ length: WINDOWS }, (_, w) => c.getSlot(symbol, w, kind).status)
}


describe('claimNextUnfilled', () => {
  it('skips Filled, Retired and live Pending windows; takes Empty, Cleared and expired claims, in window order', async () => {
    fill('optionTrade', 1) // Filled v2
    c.retire('SPY', 2, 'optionTrade') // Retired v1
    c.markPending('SPY', 3, 'optionTrade', { leaseMs: 60_000 }) // live Pending v1
    const cl = c.markPending('SPY', 5, 'optionTrade')
    c.clearSlot('SPY', 5, 'optionTrade', cl) // Cleared v2
    c.markPending('SPY', 6, 'optionTrade', { leaseMs: 1 }) // expires
    await sleep(25)

    const claims = c.claimNextUnfilled('SPY', 0, 'optionTrade', 4, { leaseMs: 60_000 })
    expect(claims.map((x) => [x.windowIdx, x.version])).toEqual([
      [0, 1],
      [4, 1],
      [5, 3],
      [6, 2],
    ])
    for (const x of claims) {
      expect(x.symbolId).toBe(0)
      expect(x.slotKind.name).toBe('optionTrade')
      expect(c.getSlot('SPY', x.windowIdx, 'optionTrade')).toMatchObject({ status: 'Pending', version: x.version })
    }
    expect(c.eventCounts('trade').takeovers).toBe(1)

    // The rest, then nothing.
    const rest = c.claimNextUnfilled('SPY', 0, 'optionTrade', 100)
    expect(rest.map((x) => x.windowIdx)).toEqual([7, 8, 9, 10, 11])
    expect(rest.every((x) => x.version === 1)).toBe(true)
    expect(c.claimNextUnfilled('SPY', 0, 'optionTrade', 100)).toEqual([])
    // Untouched windows kept their state.
    expect(statuses('optionTrade')).toEqual(['Pending', 'Filled', 'Retired', 'Pending', 'Pending', 'Pending', 'Pending', 'Pending', 'Pending', 'Pending', 'Pending', 'Pending'])
    expect(c.getSlot('SPY', 3, 'optionTrade').version).toBe(1)
  })

  it('honours startIdx and count, and only touches the given symbol and kind; a start at the window count claims nothing, one past it throws as a single claim does', () => {
    c.resolveSymbol('QQQ')
    const a = c.claimNextUnfilled('SPY', 8, 'greeks', 2)
    expect(a.map((x) => x.windowIdx)).toEqual([8, 9])
    const b = c.claimNextUnfilled('SPY', 8, 'greeks', 10)
    expect(b.map((x) => x.windowIdx)).toEqual([10, 11])
    expect(c.claimNextUnfilled('SPY', 0, 'greeks', 0)).toEqual([])
    expect(c.claimNextUnfilled('SPY', WINDOWS, 'greeks', 3)).toEqual([])
    for (const count of [3, 0]) {
      const e = caught(() => c.claimNextUnfilled('SPY', WINDOWS + 1, 'greeks', count))
      expect(e, `count ${count}`).toBeInstanceOf(WindowOutOfRangeError)
      expect((e as { code?: string }).code).toBe('ERR_WINDOW_OUT_OF_RANGE')
    }
    expect(caught(() => c.markPending('SPY', WINDOWS, 'greeks'))).toBeInstanceOf(WindowOutOfRangeError)
    expect(statuses('greeks')).toEqual(['Empty', 'Empty', 'Empty', 'Empty', 'Empty', 'Empty', 'Empty', 'Empty', 'Pending', 'Pending', 'Pending', 'Pending'])
    expect(statuses('aggregation').every((s) => s === 'Empty')).toBe(true)
    expect(statuses('greeks', 'QQQ').every((s) => s === 'Empty')).toBe(true)
    expect(c.eventCounts('enrichment').claims).toBe(4)
    expect(c.eventCounts('trade').claims).toBe(0)
  })

  it('claims can be filled with the returned versions; a claimed window is not claimed twice', () => {
    const claims = c.claimNextUnfilled('SPY', 0, 'rfRate', 3)
    expect(claims.map((x) => x.windowIdx)).toEqual([0, 1, 2])
    expect(() => c.markPending('SPY', 1, 'rfRate')).toThrow(SlotBusyError)
    for (const x of claims) {
      const id = payload('rfRate', 'SPY', x.windowIdx)
      expect(c.setRfRateRef('SPY', x.windowIdx, { payloadType: 'Json', payloadId: id, version: x.version, checksum: 11n })).toBe(x.version + 1)
    }
    expect(c.claimNextUnfilled('SPY', 0, 'rfRate', 2).map((x) => x.windowIdx)).toEqual([3, 4])
  })
})

describe('fillMany', () => {
  it('fills some items and refuses others, each on its own', () => {
    c.resolveSymbol('QQQ')
    const claims = c.claimNextUnfilled('SPY', 0, 'optionQuote', 4)
    const qqq = c.markPending('QQQ', 0, 'greeks')
    c.retire('SPY', 6, 'optionQuote')
    const ids = [0, 1, 2, 3].map((w) => payload('optionQuote', 'SPY', w))
    const gid = payload('greeks', 'QQQ', 0)
    const meta = (claim: Pick<Claim, 'version'>, payloadId: number, checksum = 21n) => ({ payloadType: 'Csv' as const, payloadId, version: claim.version, checksum })

    const results = c.fillMany([
      { symbol: 'SPY', windowIdx: 0, slotKind: 'optionQuote', meta: meta(claims[0]!, ids[0]!) }, // ok
      { symbol: 'SPY', windowIdx: 1, slotKind: 'optionQuote', meta: meta({ version: claims[1]!.version + 1 }, ids[1]!) }, // stale
      { symbol: 0, windowIdx: 2, slotKind: 'optionQuote', meta: meta(claims[2]!, ids[2]!, 0xffff_ffff_ffff_ffffn) }, // ok, by id
      { symbol: 'SPY', windowIdx: 5, slotKind: 'optionQuote', meta: meta({ version: 0 }, ids[3]!) }, // never claimed
      { symbol: 'SPY', windowIdx: 6, slotKind: 'optionQuote', meta: meta({ version: 1 }, ids[3]!) }, // retired
      { symbol: 'SPY', windowIdx: 0, slotKind: 'optionQuote', meta: meta(claims[0]!, ids[0]!) }, // already filled above
      { symbol: 'QQQ', windowIdx: 0, slotKind: 'greeks', meta: meta(qqq, gid) }, // ok, other ledger
    ])
    expect(results.map((r) => (r.ok ? r.version : r.error.code))).toEqual([2, 'ERR_VERSION_CONFLICT', 2, 'ERR_VERSION_CONFLICT', 'ERR_VERSION_CONFLICT', 'ERR_VERSION_CONFLICT', 2])
    for (const r of results) if (!r.ok) expect(r.error).toBeInstanceOf(VersionConflictError)
    const refused = results.filter((r): r is Extract<typeof r, { ok: false }> => !r.ok)
    expect(refused.map((r) => r.error.slot?.status)).toEqual(['Pending', 'Empty', 'Retired', 'Filled'])

    expect(c.getSlot('SPY', 0, 'optionQuote')).toMatchObject({ status: 'Filled', version: 2, payloadType: 5, payloadId: ids[0], checksum: 21n })
    expect(c.getSlot('SPY', 1, 'optionQuote')).toMatchObject({ status: 'Pending', version: 1 })
    expect(c.getSlot('SPY', 2, 'optionQuote')).toMatchObject({ status: 'Filled', version: 2, payloadId: ids[2], checksum: 0xffff_ffff_ffff_ffffn })
    expect(c.getSlot('SPY', 3, 'optionQuote')).toMatchObject({ status: 'Pending', version: 1 })
    expect(c.getSlot('SPY', 5, 'optionQuote')).toMatchObject({ status: 'Empty', version: 0 })
    expect(c.getSlot('SPY', 6, 'optionQuote')).toMatchObject({ status: 'Retired', version: 1 })
    expect(c.getEnrichmentRow('QQQ', 0).greeks).toMatchObject({ status: 'Filled', version: 2, payloadId: gid })
    expect(c.eventCounts('trade')).toMatchObject({ fills: 2, conflicts: 4 })
    expect(c.eventCounts('enrichment')).toMatchObject({ fills: 1, conflicts: 0 })
  })

  it('an empty batch returns an empty array', () => {
    expect(c.fillMany([])).toEqual([])
  })

  it('an unknown payload id stops the batch with UnknownPayloadError; earlier fills stay done', () => {
    const claims = c.claimNextUnfilled('SPY', 0, 'greeks', 3)
    const id = payload('greeks')
    const item = (w: number, payloadId: number) => ({ symbol: 'SPY', windowIdx: w, slotKind: 'greeks' as const, meta: { payloadType: 'Json' as const, payloadId, version: claims[w]!.version, checksum: 1n } })
    expect(() => c.fillMany([item(0, id), item(1, 99), item(2, id)])).toThrow(UnknownPayloadError)
    expect(statuses('greeks').slice(0, 3)).toEqual(['Filled', 'Pending', 'Pending'])
  })
})

describe('nextUnfilledWindow', () => {
  it('skips Filled and Retired windows, stops at Empty, Pending and Cleared ones, null past the end', () => {
    fill('aggregation', 0)
    fill('aggregation', 1)
    c.retire('SPY', 2, 'aggregation')
    const p = c.markPending('SPY', 3, 'aggregation')
    expect(c.nextUnfilledWindow('SPY', 0, 'aggregation')).toBe(3)
    expect(c.nextUnfilledWindow('SPY', 4, 'aggregation')).toBe(4)
    c.clearSlot('SPY', 3, 'aggregation', p)
    expect(c.nextUnfilledWindow('SPY', 0, 'aggregation')).toBe(3)

    for (let w = 3; w < 8; w++) fill('aggregation', w)
    c.retireRange('SPY', { from: 8, to: WINDOWS }, 'aggregation')
    expect(c.nextUnfilledWindow('SPY', 0, 'aggregation')).toBeNull()
    expect(c.nextUnfilledWindow('SPY', 5, 'aggregation')).toBeNull()
    expect(c.nextUnfilledWindow('SPY', WINDOWS, 'aggregation')).toBeNull()
    expect(c.nextUnfilledWindow('SPY', 1_000_000, 'aggregation')).toBeNull()
    // Another kind and another symbol are independent.
    expect(c.nextUnfilledWindow('SPY', 0, 'greeks')).toBe(0)
    c.resolveSymbol('QQQ')
    expect(c.nextUnfilledWindow('QQQ', 7, 'aggregation')).toBe(7)
    // A force-cleared window becomes unfilled again.
    c.forceClear('SPY', 6, 'aggregation')
    expect(c.nextUnfilledWindow('SPY', 0, 'aggregation')).toBe(6)
  })
})

describe('admin: forceClear and retire', () => {
  it('forceClear takes a Filled slot to Cleared (version+1), and it is claimable again', () => {
    const v = fill('optionTrade', 4)
    expect(c.forceClear('SPY', 4, 'optionTrade')).toEqual({ from: 'Filled', to: 'Cleared', version: v + 1 })
    expect(c.getSlot('SPY', 4, 'optionTrade')).toMatchObject({ status: 'Cleared', version: v + 1 })
    expect(c.markPending('SPY', 4, 'optionTrade').version).toBe(v + 2)
  })

  it('forceClear of a Pending slot makes its holder conflict', () => {
    const claim = c.markPending('SPY', 0, 'underlyingTrade')
    expect(c.forceClear('SPY', 0, 'underlyingTrade')).toEqual({ from: 'Pending', to: 'Cleared', version: 2 })
    const id = payload('underlyingTrade')
    expect(() => c.setUnderlyingTradeRef('SPY', 0, { payloadType: 'Json', payloadId: id, version: claim.version, checksum: 1n })).toThrow(VersionConflictError)
    expect(c.getSlot('SPY', 0, 'underlyingTrade')).toMatchObject({ status: 'Cleared', version: 2 })
  })

  it('forceClear of an Empty slot leaves it Empty at version 0', () => {
    expect(c.forceClear('SPY', 9, 'optionTrade')).toEqual({ from: 'Empty', to: 'Empty', version: 0 })
    expect(c.getSlot('SPY', 9, 'optionTrade')).toMatchObject({ status: 'Empty', version: 0 })
  })

  it('forceClear of a Cleared slot reports no change and keeps the version', () => {
    // (Failed before commit 4a5807a, which fixed it; kept as a regression test.)
    // Regression (this test found the bug; fixed in 4a5807a): SlotTransition.version is documented as "unchanged when from === to",
    // and forceClearRange does not count Cleared slots as changed, but forceClear of a
    // Cleared slot bumps its version (Cleared v2 → reports {from:'Cleared',to:'Cleared',version:3})
    // and counts a forceClears event.
    const claim = c.markPending('SPY', 3, 'optionTrade')
    expect(c.clearSlot('SPY', 3, 'optionTrade', claim)).toBe(2)
    const t = c.forceClear('SPY', 3, 'optionTrade')
    expect(t.from).toBe('Cleared')
    expect(t.to).toBe('Cleared')
    expect(t.version).toBe(2)
    expect(c.getSlot('SPY', 3, 'optionTrade').version).toBe(2)
  })

  it('retire is terminal: claim → SlotRetiredError, forceClear → SlotRetiredError, retire again is a no-op', () => {
    expect(c.retire('SPY', 5, 'greeks')).toEqual({ from: 'Empty', to: 'Retired', version: 1 })
    const e = caught(() => c.markPending('SPY', 5, 'greeks'))
    expect(e).toBeInstanceOf(SlotRetiredError)
    expect(e).toBeInstanceOf(VersionConflictError)
    expect((e as SlotRetiredError).code).toBe('ERR_SLOT_RETIRED')
    expect((e as SlotRetiredError).slot).toMatchObject({ status: 'Retired', version: 1 })
    expect(c.tryMarkPending('SPY', 5, 'greeks')).toBeNull()

    const f = caught(() => c.forceClear('SPY', 5, 'greeks'))
    expect(f).toBeInstanceOf(SlotRetiredError)
    expect((f as SlotRetiredError).code).toBe('ERR_SLOT_RETIRED')

    expect(c.retire('SPY', 5, 'greeks')).toEqual({ from: 'Retired', to: 'Retired', version: 1 })
    expect(c.getSlot('SPY', 5, 'greeks')).toMatchObject({ status: 'Retired', version: 1 })
    expect(c.claimNextUnfilled('SPY', 5, 'greeks', 1).map((x) => x.windowIdx)).toEqual([6])
  })

  it('retiring a Filled or Pending slot: the data is kept out of reach, the holder conflicts', () => {
    const v = fill('optionQuote', 0)
    expect(c.retire('SPY', 0, 'optionQuote')).toEqual({ from: 'Filled', to: 'Retired', version: v + 1 })
    const claim = c.markPending('SPY', 1, 'optionQuote')
    expect(c.retire('SPY', 1, 'optionQuote')).toEqual({ from: 'Pending', to: 'Retired', version: 2 })
    const id = payload('optionQuote', 'SPY', 1)
    const e = caught(() => c.setOptionQuoteRef('SPY', 1, { payloadType: 'Json', payloadId: id, version: claim.version, checksum: 1n }))
    expect(e).toBeInstanceOf(VersionConflictError)
    expect((e as VersionConflictError).slot!.status).toBe('Retired')
    expect(() => c.clearSlot('SPY', 1, 'optionQuote', claim)).toThrow(VersionConflictError)
  })

  it('forceClearRange and retireRange return how many slots changed', () => {
    const K = 'optionTrade'
    fill(K, 0)
    fill(K, 1)
    c.markPending('SPY', 2, K)
    const cl = c.markPending('SPY', 3, K)
    c.clearSlot('SPY', 3, K, cl)
    c.retire('SPY', 4, K)
    // windows 5.. are Empty
    expect(c.forceClearRange('SPY', { from: 0, to: WINDOWS }, K)).toBe(3) // 2 Filled + 1 Pending
    expect(statuses(K)).toEqual(['Cleared', 'Cleared', 'Cleared', 'Cleared', 'Retired', 'Empty', 'Empty', 'Empty', 'Empty', 'Empty', 'Empty', 'Empty'])
    expect(c.getSlot('SPY', 4, K).version).toBe(1) // the Retired slot was skipped
    expect(c.forceClearRange('SPY', { from: 2, to: 2 }, K)).toBe(0)

    expect(c.retireRange('SPY', { from: 0, to: 6 }, K)).toBe(5) // 4 Cleared + 1 Empty; window 4 already Retired
    expect(c.retireRange('SPY', { from: 0, to: 6 }, K)).toBe(0)
    expect(c.retireRange('SPY', { from: 6, to: WINDOWS }, K)).toBe(6)
    expect(statuses(K).every((s) => s === 'Retired')).toBe(true)
    expect(c.forceClearRange('SPY', { from: 0, to: WINDOWS }, K)).toBe(0)
    expect(c.claimNextUnfilled('SPY', 0, K, WINDOWS)).toEqual([])
    expect(c.nextUnfilledWindow('SPY', 0, K)).toBeNull()
    // The other kinds of the same rows are untouched.
    expect(statuses('optionQuote').every((s) => s === 'Empty')).toBe(true)
  })
})

describe('metrics and event counts', () => {
  const zeroCounts = (): Record<SlotStatus, number> => ({ Empty: 0, Pending: 0, Filled: 0, Cleared: 0, Retired: 0 })

  function byKind(m: SlotMetric[]): Record<string, Record<SlotStatus, number>> {
    return Object.fromEntries(m.map((x) => [x.slot, { ...x.counts }]))
  }

  it('slotMetrics() equals recountSlots() and the counts the test keeps after a mixed workload', async () => {
    c.resolveSymbol('QQQ')
    c.resolveSymbol('IWM')
    const symbols = 3
    // The model: status of every (symbol, window, kind) the test touched.
    const model = new Map<string, SlotStatus>()
    const set = (s: string, w: number, k: SlotKindName, st: SlotStatus) => model.set(`${s}|${w}|${k}`, st)

    for (let w = 0; w < 5; w++) {
      fill('optionTrade', w)
      set('SPY', w, 'optionTrade', 'Filled')
    }
    for (const x of c.claimNextUnfilled('QQQ', 0, 'greeks', 6)) set('QQQ', x.windowIdx, 'greeks', 'Pending')
    for (let w = 0; w < 3; w++) {
      const cl = c.markPending('IWM', w, 'rfRate')
      c.clearSlot('IWM', w, 'rfRate', cl)
      set('IWM', w, 'rfRate', 'Cleared')
    }
    expect(c.retireRange('SPY', { from: 3, to: 9 }, 'optionTrade')).toBe(6)
    for (let w = 3; w < 9; w++) set('SPY', w, 'optionTrade', 'Retired')
    c.forceClear('QQQ', 0, 'greeks')
    set('QQQ', 0, 'greeks', 'Cleared')
    fill('aggregation', 11, 'IWM')
    set('IWM', 11, 'aggregation', 'Filled')
    c.markPending('SPY', 0, 'underlyingTrade', { leaseMs: 1 })
    await sleep(20)
    c.markPending('SPY', 0, 'underlyingTrade') // takeover: still Pending
    set('SPY', 0, 'underlyingTrade', 'Pending')
    c.retire('IWM', 1, 'rfRate')
    set('IWM', 1, 'rfRate', 'Retired')
    // Refusals change no counts.
    expect(() => c.markPending('SPY', 0, 'optionTrade')).toThrow(SlotFilledError)
    expect(() => c.markPending('QQQ', 1, 'greeks')).toThrow(SlotBusyError)

    const expected: Record<string, Record<SlotStatus, number>> = {}
    for (const k of SLOT_KIND_NAMES) {
      expected[k] = zeroCounts()
      expected[k].Empty = symbols * WINDOWS
    }
    for (const [key, st] of model) {
      const k = key.split('|')[2]!
      expected[k]![st]++
      expected[k]!.Empty--
    }

    const metrics = c.slotMetrics()
    expect(metrics.map((m) => m.slot)).toEqual([...SLOT_KIND_NAMES])
    expect(metrics.map((m) => m.ledger)).toEqual(SLOT_KIND_NAMES.map((k) => SLOT_KIND_INFO[k].ledger))
    for (const m of metrics) expect(Object.keys(m.counts)).toEqual([...SLOT_STATUSES])
    expect(byKind(metrics)).toEqual(expected)
    expect(c.recountSlots()).toEqual(metrics)
    // Spot checks of the model itself.
    expect(expected.optionTrade).toEqual({ Empty: 36 - 9, Pending: 0, Filled: 3, Cleared: 0, Retired: 6 })
    expect(expected.greeks).toEqual({ Empty: 36 - 6, Pending: 5, Filled: 0, Cleared: 1, Retired: 0 })
    expect(expected.rfRate).toEqual({ Empty: 36 - 3, Pending: 0, Filled: 0, Cleared: 2, Retired: 1 })
  })

  it('a new symbol adds Empty slots to every kind', () => {
    const before = c.slotMetrics()
    c.resolveSymbol('NEW')
    const after = c.slotMetrics()
    for (let i = 0; i < before.length; i++) expect(after[i]!.counts.Empty).toBe(before[i]!.counts.Empty + WINDOWS)
    expect(c.recountSlots()).toEqual(after)
  })

  it("eventCounts('trade') counts the claims, fills, conflicts and other events the test caused", async () => {
    const zero: LedgerEventCounts = { claims: 0, takeovers: 0, fills: 0, conflicts: 0, clears: 0, forceClears: 0, retires: 0, busy: 0 }
    expect(c.eventCounts('trade')).toEqual(zero)
    expect(c.eventCounts('enrichment')).toEqual(zero)

    const a = c.markPending('SPY', 0, 'optionTrade') // claim 1
    const b = c.markPending('SPY', 1, 'optionTrade') // claim 2
    c.markPending('SPY', 2, 'rfRate', { leaseMs: 1 }) // claim 3
    await sleep(20)
    c.markPending('SPY', 2, 'rfRate') // claim 4, takeover 1
    expect(() => c.markPending('SPY', 0, 'optionTrade')).toThrow(SlotBusyError) // busy 1
    const id = payload('optionTrade')
    c.setOptionTradeRef('SPY', 0, { payloadType: 'Json', payloadId: id, version: a.version, checksum: 1n }) // fill 1
    expect(() => c.setOptionTradeRef('SPY', 1, { payloadType: 'Json', payloadId: id, version: b.version + 5, checksum: 1n })).toThrow(VersionConflictError) // conflict 1
    expect(() => c.markPending('SPY', 0, 'optionTrade')).toThrow(SlotFilledError) // conflict 2
    c.clearSlot('SPY', 1, 'optionTrade', b) // clear 1
    c.forceClear('SPY', 0, 'optionTrade') // forceClear 1
    c.retire('SPY', 3, 'optionTrade') // retire 1
    expect(() => c.markPending('SPY', 3, 'optionTrade')).toThrow(SlotRetiredError) // conflict 3
    const claims = c.claimNextUnfilled('SPY', 4, 'optionQuote', 2) // claims 5, 6
    const qid = payload('optionQuote')
    c.fillMany([{ symbol: 'SPY', windowIdx: claims[0]!.windowIdx, slotKind: 'optionQuote', meta: { payloadType: 'Json', payloadId: qid, version: claims[0]!.version, checksum: 1n } }]) // fill 2

    expect(c.eventCounts('trade')).toEqual({ claims: 6, takeovers: 1, fills: 2, conflicts: 3, clears: 1, forceClears: 1, retires: 1, busy: 1 })
    expect(c.eventCounts('enrichment')).toEqual(zero)
  })
})
