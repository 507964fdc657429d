// Restart persistence (close, bootstrap again: same symbols, records, rows,
// metrics), two controllers on one directory in one process (claims, fills,
// symbols, payload ids and metrics agree), and the async bootstrap.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import {
  AbortError,
  PAYLOAD_STORE_NAMES,
  ScheduleMismatchError,
  SlotBusyError,
  SlotFilledError,
  SlotRetiredError,
  VersionConflictError,
  WindowSpace,
  WindowSpaceConfig,
  WindowSpaceController,
  type EnrichmentRow,
  type PayloadRecord,
  type SlotKindName,
  type TradeRow,
  STORE_OF_SLOT_KIND,
} from '../src/index'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const WINDOWS = 8
const SCHEDULE = WindowSpace.uniform({ origin: 1_700_000_000_000, windowDuration: 60_000, windowCount: WINDOWS })
const STORE = STORE_OF_SLOT_KIND

let dir: string
const open: WindowSpaceController[] = []

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ws-persist-'))
})

afterEach(() => {
  for (const c of open.splice(0)) c.close()
  rmSync(dir, { recursive: true, force: true })
})

function boot(ws: WindowSpace = SCHEDULE) {
  const r = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, ws))
  open.push(r.controller)
  return r
}

function fill(c: WindowSpaceController, symbol: string, w: number, kind: SlotKindName, checksum: bigint): number {
  const claim = c.markPending(symbol, w, kind)
  const art = c.writeArtifact(`${symbol}/${kind}/${w}.bin`, `${symbol}:${kind}:${w}:${checksum}`)
  const id = c.payloadStores()[STORE[kind]].append({ symbol, windowIdx: w, slotKind: kind, payloadType: 'Binary', uri: art.uri, checksum: art.checksum, size: art.size })
  c.setRef(symbol, w, kind, { payloadType: 'Binary', payloadId: id, version: claim.version, checksum: art.checksum })
  return id
}

interface Capture {
  symbols: string[]
  ids: Record<string, number>
  trade: TradeRow[]
  enrichment: EnrichmentRow[]
  records: Record<string, PayloadRecord[]>
  metrics: ReturnType<WindowSpaceController['slotMetrics']>
}

function capture(c: WindowSpaceController): Capture {
  const symbols = c.symbols()
  const trade: TradeRow[] = []
  const enrichment: EnrichmentRow[] = []
  for (const s of symbols) {
    for (let w = 0; w < WINDOWS; w++) {
      trade.push(c.getTradeRow(s, w))
      enrichment.push(c.getEnrichmentRow(s, w))
    }
  }
  const records: Record<string, PayloadRecord[]> = {}
  for (const s of PAYLOAD_STORE_NAMES) records[s] = [...c.payloadStores()[s]]
  return { symbols, ids: Object.fromEntries(symbols.map((s) => [s, c.symbolId(s)])), trade, enrichment, records, metrics: c.slotMetrics() }
}

describe('restart persistence', () => {
  it('a mixed workload survives close and bootstrap: symbols, records, rows, metrics', async () => {
    const { controller: c } = boot()
    expect(c.resolveSymbol('SPY')).toBe(0)
    expect(c.resolveSymbol('QQQ')).toBe(1)
    expect(c.resolveSymbol('AAPL')).toBe(2)

    fill(c, 'SPY', 0, 'optionTrade', 1n)
    fill(c, 'SPY', 1, 'optionTrade', 2n)
    fill(c, 'QQQ', 0, 'underlyingTrade', 3n)
    fill(c, 'AAPL', 7, 'greeks', 4n)
    fill(c, 'SPY', 3, 'aggregation', 5n)
    fill(c, 'QQQ', 2, 'rfRate', 6n)
    fill(c, 'SPY', 2, 'optionAggressor', 7n)
    fill(c, 'QQQ', 5, 'underlyingQuote', 8n)
    const cleared = c.markPending('AAPL', 1, 'optionQuote')
    c.clearSlot('AAPL', 1, 'optionQuote', cleared)
    c.retireRange('QQQ', { from: 4, to: 8 }, 'greeks')
    c.forceClear('SPY', 1, 'optionTrade')
    const live = c.markPending('SPY', 4, 'underlyingAggressor', { leaseMs: 120_000 })
    c.markPending('AAPL', 6, 'rfRate', { leaseMs: 1 }) // a claim that will be stale
    // An extra record no slot refers to.
    c.payloadStores().greeks.append({ symbol: 'QQQ', windowIdx: 6, slotKind: 'greeks', payloadType: 'Parquet', uri: 'orphan', checksum: 99n, size: 0 })

    const before = capture(c)
    const events = { trade: c.eventCounts('trade'), enrichment: c.eventCounts('enrichment') }
    expect(before.records.trades!.length).toBe(3)
    expect(before.records.greeks!.length).toBe(2)
    c.close()
    await sleep(20)

    const { controller: r, storageReport } = boot()
    expect(storageReport.created).toBe(false)
    expect(storageReport.schedule).toBe('same')
    expect(storageReport.symbols).toBe(3)
    expect(storageReport.windowCount).toBe(WINDOWS)
    expect(Object.fromEntries(storageReport.stores.map((s) => [s.store, s.records]))).toEqual({ trades: 3, quotes: 1, aggressor: 1, rfRate: 1, greeks: 2, aggregations: 1 })
    expect(storageReport.stores.every((s) => s.tornTailBytes === 0)).toBe(true)
    expect(storageReport.staleClaims).toBe(1)
    // Non-Empty slots: 7 Filled + 1 force-cleared + 1 Cleared + 4 Retired + 2 Pending.
    expect(storageReport.nonemptySlots).toBe(15)
    expect(storageReport.files.map((f) => f.name)).toEqual(expect.arrayContaining(['trade-ledger.dat', 'enrichment-ledger.dat', 'symbols.log', 'trades.map', 'quotes.map', 'aggressor.map', 'rf_rate.map', 'greeks.map', 'aggregations.map']))

    const after = capture(r)
    expect(after.symbols).toEqual(['SPY', 'QQQ', 'AAPL'])
    expect(after.ids).toEqual({ SPY: 0, QQQ: 1, AAPL: 2 })
    expect(after.records).toEqual(before.records)
    expect(after.trade).toEqual(before.trade)
    expect(after.enrichment).toEqual(before.enrichment)
    expect(after.metrics).toEqual(before.metrics)
    expect(r.recountSlots()).toEqual(after.metrics)
    expect(r.eventCounts('trade')).toEqual(events.trade)
    expect(r.eventCounts('enrichment')).toEqual(events.enrichment)

    // Records by id resolve as before.
    const rec = r.payloadStores().trades.get(2)!
    expect(rec).toMatchObject({ payloadId: 2, symbolId: 1, windowIdx: 0, slotKind: 'underlyingTrade', payloadType: 4 })
    expect(r.getSlot('QQQ', 0, 'underlyingTrade')).toMatchObject({ status: 'Filled', payloadId: 2, checksum: rec.checksum })

    // The live claim is still held; the holder can fill it after the restart.
    expect(() => r.markPending('SPY', 4, 'underlyingAggressor')).toThrow(SlotBusyError)
    const id = r.payloadStores().aggressor.append({ symbol: 'SPY', windowIdx: 4, slotKind: 'underlyingAggressor', payloadType: 'Json', uri: 'late', checksum: 1n, size: 1 })
    expect(id).toBe(1) // dense: continues after the restart
    expect(r.setUnderlyingAggressorRef('SPY', 4, { payloadType: 'Json', payloadId: id, version: live.version, checksum: 1n })).toBe(live.version + 1)
    // The stale claim is taken over.
    expect(r.markPending('AAPL', 6, 'rfRate').version).toBe(2)
    // Terminal and filled slots stay so.
    expect(() => r.markPending('QQQ', 5, 'greeks')).toThrow(SlotRetiredError)
    expect(() => r.markPending('SPY', 0, 'optionTrade')).toThrow(SlotFilledError)
    // The force-cleared and cleared slots are claimable with the next version.
    expect(r.markPending('SPY', 1, 'optionTrade').version).toBe(4)
    expect(r.markPending('AAPL', 1, 'optionQuote').version).toBe(3)
    // A new symbol gets the next id.
    expect(r.resolveSymbol('IWM')).toBe(3)
  })

  it('payload ids continue densely across several restarts', () => {
    let c = boot().controller
    c.resolveSymbol('SPY')
    const ids: number[] = []
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 3; i++) ids.push(c.payloadStores().quotes.append({ symbol: 'SPY', windowIdx: i, slotKind: 'optionQuote', payloadType: 'Csv', uri: `r${round}/${i}`, checksum: BigInt(round * 10 + i), size: i }))
      c.close()
      c = boot().controller
    }
    expect(ids).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8])
    const store = c.payloadStores().quotes
    expect(store.length).toBe(9)
    expect([...store].map((r) => r.uri)).toEqual(['r0/0', 'r0/1', 'r0/2', 'r1/0', 'r1/1', 'r1/2', 'r2/0', 'r2/1', 'r2/2'])
    expect([...store.entries(7)].map((r) => r.checksum)).toEqual([21n, 22n])
  })

  it('nothing but the documented files is created', () => {
    const { controller: c } = boot()
    c.resolveSymbol('SPY')
    fill(c, 'SPY', 0, 'greeks', 1n)
    c.close()
    const names = readdirSync(dir).sort()
    expect(names).toEqual(
      expect.arrayContaining(['aggregations.map', 'aggressor.map', 'artifacts', 'enrichment-ledger.dat', 'greeks.map', 'quotes.map', 'rf_rate.map', 'symbols.log', 'trade-ledger.dat', 'trades.map']),
    )
    for (const n of names) expect(['aggregations.map', 'aggressor.map', 'artifacts', 'enrichment-ledger.dat', 'greeks.map', 'quotes.map', 'rf_rate.map', 'symbols.log', 'trade-ledger.dat', 'trades.map', 'schedule.json', 'window-space.lock', 'changes.journal', 'audit.log']).toContain(n)
  })
})

describe('two controllers on one directory, one process', () => {
  it('a claim through A is busy through B; a fill through B is visible through A', () => {
    const { controller: a, storageReport: ra } = boot()
    const { controller: b, storageReport: rb } = boot()
    expect(ra.created).toBe(true)
    expect(rb.created).toBe(false)
    expect(rb.schedule).toBe('same')
    expect(ra.exclusive).toBe(true)
    expect(rb.exclusive).toBe(false)

    a.resolveSymbol('SPY')
    const claim = a.markPending('SPY', 2, 'optionQuote')
    let e: unknown
    try {
      b.markPending('SPY', 2, 'optionQuote')
    } catch (err) {
      e = err
    }
    expect(e).toBeInstanceOf(SlotBusyError)
    expect((e as SlotBusyError).slot).toMatchObject({ status: 'Pending', version: claim.version })
    expect(b.getSlot('SPY', 2, 'optionQuote')).toMatchObject({ status: 'Pending', version: 1 })

    // B appends and fills with A's claim version (the claim travels between engines).
    const id = b.payloadStores().quotes.append({ symbol: 'SPY', windowIdx: 2, slotKind: 'optionQuote', payloadType: 'Json', uri: 'b', checksum: 77n, size: 1 })
    expect(b.setOptionQuoteRef('SPY', 2, { payloadType: 'Json', payloadId: id, version: claim.version, checksum: 77n })).toBe(2)
    expect(a.getTradeRow('SPY', 2).optionQuote).toEqual({ status: 'Filled', version: 2, payloadType: 2, payloadId: id, checksum: 77n, leaseExpiresAt: null })
    expect(a.payloadStores().quotes.get(id)).toMatchObject({ uri: 'b', checksum: 77n })
    // A's own fill with the same claim now conflicts.
    expect(() => a.setOptionQuoteRef('SPY', 2, { payloadType: 'Json', payloadId: id, version: claim.version, checksum: 77n })).toThrow(VersionConflictError)
    // Admin through A is seen by B.
    a.retire('SPY', 3, 'optionQuote')
    expect(() => b.markPending('SPY', 3, 'optionQuote')).toThrow(SlotRetiredError)
  })

  it('a symbol resolved by A is known to B; B resolving it gets the same id', () => {
    const { controller: a } = boot()
    const { controller: b } = boot()
    expect(a.resolveSymbol('SPY')).toBe(0)
    expect(a.resolveSymbol('QQQ')).toBe(1)
    expect(b.symbolId('QQQ')).toBe(1)
    expect(b.symbolName(0)).toBe('SPY')
    expect(b.resolveSymbol('QQQ')).toBe(1)
    expect(b.resolveSymbol('IWM')).toBe(2)
    expect(a.symbolId('IWM')).toBe(2)
    expect(a.symbols()).toEqual(['SPY', 'QQQ', 'IWM'])
    expect(b.symbols()).toEqual(['SPY', 'QQQ', 'IWM'])
    // B can work on A's symbol by id right away.
    expect(b.markPending(1, 0, 'greeks').version).toBe(1)
    expect(a.getEnrichmentRow('QQQ', 0).greeks.status).toBe('Pending')
  })

  it('payload ids appended alternately through A and B are dense and unique', () => {
    const { controller: a } = boot()
    const { controller: b } = boot()
    a.resolveSymbol('SPY')
    const n = 40
    const ids: number[] = []
    for (let i = 0; i < n; i++) {
      const via = i % 2 === 0 ? a : b
      ids.push(via.payloadStores().trades.append({ symbol: 'SPY', windowIdx: i % WINDOWS, slotKind: i % 3 === 0 ? 'underlyingTrade' : 'optionTrade', payloadType: 'Json', uri: `via-${i % 2 === 0 ? 'a' : 'b'}-${i}`, checksum: BigInt(i), size: i }))
    }
    expect(ids).toEqual(Array.from({ length: n }, (_, i) => i))
    expect(a.payloadStores().trades.length).toBe(n)
    expect(b.payloadStores().trades.length).toBe(n)
    for (const i of [0, 1, 17, 38, 39]) {
      const expected = { payloadId: i, uri: `via-${i % 2 === 0 ? 'a' : 'b'}-${i}`, checksum: BigInt(i), size: i }
      expect(a.payloadStores().trades.get(i)).toMatchObject(expected)
      expect(b.payloadStores().trades.get(i)).toMatchObject(expected)
    }
    expect(a.payloadStores().trades.get(n)).toBeNull()
  })

  it("A's slotMetrics equals B's after work through both", async () => {
    const { controller: a } = boot()
    const { controller: b } = boot()
    a.resolveSymbol('SPY')
    b.resolveSymbol('QQQ')
    fill(a, 'SPY', 0, 'optionTrade', 1n)
    fill(b, 'QQQ', 1, 'greeks', 2n)
    a.claimNextUnfilled('QQQ', 0, 'rfRate', 3)
    b.retireRange('SPY', { from: 4, to: 8 }, 'aggregation')
    const cl = b.markPending('SPY', 2, 'optionTrade')
    a.forceClear('SPY', 2, 'optionTrade')
    expect(() => b.clearSlot('SPY', 2, 'optionTrade', cl)).toThrow(VersionConflictError)
    a.markPending('SPY', 7, 'underlyingQuote', { leaseMs: 1 })
    await sleep(20)
    b.markPending('SPY', 7, 'underlyingQuote') // takeover through B
    const ma = a.slotMetrics()
    expect(b.slotMetrics()).toEqual(ma)
    expect(a.recountSlots()).toEqual(ma)
    expect(b.recountSlots()).toEqual(ma)
    const counts = Object.fromEntries(ma.map((m) => [m.slot, m.counts]))
    expect(counts.optionTrade).toEqual({ Empty: 14, Pending: 0, Filled: 1, Cleared: 1, Retired: 0 })
    expect(counts.rfRate).toEqual({ Empty: 13, Pending: 3, Filled: 0, Cleared: 0, Retired: 0 })
    expect(counts.aggregation).toEqual({ Empty: 12, Pending: 0, Filled: 0, Cleared: 0, Retired: 4 })
    expect(counts.greeks).toEqual({ Empty: 15, Pending: 0, Filled: 1, Cleared: 0, Retired: 0 })
    expect(counts.underlyingQuote).toEqual({ Empty: 15, Pending: 1, Filled: 0, Cleared: 0, Retired: 0 })
    expect(a.eventCounts('trade')).toEqual(b.eventCounts('trade'))
    expect(a.eventCounts('trade').takeovers).toBe(1)
  })

  it('closing one controller leaves the other working', () => {
    const { controller: a } = boot()
    const { controller: b } = boot()
    a.resolveSymbol('SPY')
    a.close()
    expect(b.markPending('SPY', 0, 'aggregation').version).toBe(1)
    expect(b.symbolId('SPY')).toBe(0)
  })
})

describe('bootstrapAsync', () => {
  it('resolves a controller and a storage report', async () => {
    const r = await WindowSpaceController.bootstrapAsync(new WindowSpaceConfig(dir, SCHEDULE))
    open.push(r.controller)
    expect(r.controller).toBeInstanceOf(WindowSpaceController)
    expect(r.storageReport.created).toBe(true)
    expect(r.storageReport.schedule).toBe('created')
    expect(r.storageReport.windowCount).toBe(WINDOWS)
    expect(r.controller.stateDir).toBe(dir)
    r.controller.resolveSymbol('SPY')
    fill(r.controller, 'SPY', 3, 'rfRate', 5n)
    r.controller.close()

    const again = await WindowSpaceController.bootstrapAsync(new WindowSpaceConfig(dir, SCHEDULE))
    open.push(again.controller)
    expect(again.storageReport.created).toBe(false)
    expect(again.storageReport.schedule).toBe('same')
    expect(again.storageReport.symbols).toBe(1)
    expect(again.controller.getSlot('SPY', 3, 'rfRate')).toMatchObject({ status: 'Filled', version: 2, payloadId: 0 })
  })

  it('several async bootstraps of one directory at once all resolve and agree', async () => {
    const rs = await Promise.all([0, 1, 2].map(() => WindowSpaceController.bootstrapAsync(new WindowSpaceConfig(dir, SCHEDULE))))
    for (const r of rs) open.push(r.controller)
    expect(rs.filter((r) => r.storageReport.created).length).toBeLessThanOrEqual(1)
    rs[0]!.controller.resolveSymbol('SPY')
    expect(rs[2]!.controller.symbolId('SPY')).toBe(0)
    rs[1]!.controller.markPending('SPY', 0, 'optionTrade')
    expect(() => rs[2]!.controller.markPending('SPY', 0, 'optionTrade')).toThrow(SlotBusyError)
  })

  it('rejects with ScheduleMismatchError for a mismatched schedule', async () => {
    boot().controller.close()
    const p = WindowSpaceController.bootstrapAsync(new WindowSpaceConfig(dir, WindowSpace.uniform({ origin: 1_700_000_000_000, windowDuration: 30_000, windowCount: WINDOWS })))
    await expect(p).rejects.toBeInstanceOf(ScheduleMismatchError)
    await expect(p).rejects.toMatchObject({ code: 'ERR_SCHEDULE_MISMATCH' })
  })

  it('rejects with AbortError for an already-aborted signal, and creates nothing', async () => {
    const ac = new AbortController()
    ac.abort()
    const p = WindowSpaceController.bootstrapAsync(new WindowSpaceConfig(dir, SCHEDULE), { signal: ac.signal })
    await expect(p).rejects.toBeInstanceOf(AbortError)
    await expect(p).rejects.toMatchObject({ code: 'ERR_ABORTED' })
    expect(readdirSync(dir)).toEqual([])
  })

  it('rejects with TypeError when not given a WindowSpaceConfig', async () => {
    await expect(WindowSpaceController.bootstrapAsync({ stateDir: dir } as never)).rejects.toBeInstanceOf(TypeError)
  })
})
