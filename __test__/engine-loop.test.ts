// The seed's engine loop through the public API, for every slot kind:
// resolveSymbol → markPending → writeArtifact → payload store append → typed
// setter (and the generic setRef) → rows and records; the failure path
// (clearSlot), refusals (busy, stale version, unknown payload) and leases
// (takeover of an expired claim, renewal).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { caught } from './helpers'

import {
  EnrichmentSlotKind,
  PayloadType,
  SLOT_KIND_NAMES,
  SlotBusyError,
  SlotFilledError,
  SlotKind,
  SlotWriteError,
  TradeSlotKind,
  UnknownPayloadError,
  VersionConflictError,
  WindowSpace,
  WindowSpaceConfig,
  WindowSpaceController,
  checksum64,
  type Claim,
  type PayloadMeta,
  type PayloadStoreName,
  type SlotKindName,
  type SlotState,
} from '../src/index'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

type Setter = `set${Capitalize<SlotKindName>}Ref`

interface KindRow {
  kind: SlotKindName
  ledger: 'trade' | 'enrichment'
  store: PayloadStoreName
  setter: Setter
  slotKind: SlotKind
}

const KINDS: KindRow[] = [
  { kind: 'rfRate', ledger: 'trade', store: 'rfRate', setter: 'setRfRateRef', slotKind: SlotKind.Trade(TradeSlotKind.RfRate) },
  { kind: 'optionTrade', ledger: 'trade', store: 'trades', setter: 'setOptionTradeRef', slotKind: SlotKind.Trade(TradeSlotKind.OptionTrade) },
  { kind: 'optionQuote', ledger: 'trade', store: 'quotes', setter: 'setOptionQuoteRef', slotKind: SlotKind.Trade(TradeSlotKind.OptionQuote) },
  { kind: 'underlyingTrade', ledger: 'trade', store: 'trades', setter: 'setUnderlyingTradeRef', slotKind: SlotKind.Trade(TradeSlotKind.UnderlyingTrade) },
  { kind: 'underlyingQuote', ledger: 'trade', store: 'quotes', setter: 'setUnderlyingQuoteRef', slotKind: SlotKind.Trade(TradeSlotKind.UnderlyingQuote) },
  { kind: 'optionAggressor', ledger: 'trade', store: 'aggressor', setter: 'setOptionAggressorRef', slotKind: SlotKind.Trade(TradeSlotKind.OptionAggressor) },
  { kind: 'underlyingAggressor', ledger: 'trade', store: 'aggressor', setter: 'setUnderlyingAggressorRef', slotKind: SlotKind.Trade(TradeSlotKind.UnderlyingAggressor) },
  { kind: 'greeks', ledger: 'enrichment', store: 'greeks', setter: 'setGreeksRef', slotKind: SlotKind.Enrichment(EnrichmentSlotKind.Greeks) },
  { kind: 'aggregation', ledger: 'enrichment', store: 'aggregations', setter: 'setAggregationRef', slotKind: SlotKind.Enrichment(EnrichmentSlotKind.Aggregation) },
]

const TRADE_KINDS = KINDS.filter((r) => r.ledger === 'trade').map((r) => r.kind)
const ENRICHMENT_KINDS = KINDS.filter((r) => r.ledger === 'enrichment').map((r) => r.kind)
const EMPTY: SlotState = { status: 'Empty', version: 0, payloadType: 0, payloadId: 0, checksum: 0n, leaseExpiresAt: null }

let dir: string
let c: WindowSpaceController

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ws-engine-'))
  c = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, WindowSpace.uniform({ origin: 0, windowDuration: 60_000, windowCount: 16 }))).controller
})

afterEach(() => {
  c.close()
  rmSync(dir, { recursive: true, force: true })
})

/** The slot of `kind` in the row that holds it. */
function slotOf(symbol: string | number, windowIdx: number, kind: SlotKindName): SlotState {
  if (ENRICHMENT_KINDS.includes(kind)) return c.getEnrichmentRow(symbol, windowIdx)[kind as EnrichmentSlotKind]
  return c.getTradeRow(symbol, windowIdx)[kind as TradeSlotKind]
}

/** Appends a record for (symbol, window, kind) to the kind's store; returns its id. */
function append(row: KindRow, symbol: string, windowIdx: number, uri = `u/${row.kind}/${windowIdx}`, checksum = 7n): number {
  return c.payloadStores()[row.store].append({ symbol, windowIdx, slotKind: row.kind, payloadType: 'Json', uri, checksum, size: 3 })
}


it('covers every slot kind of the vocabulary, in code order', () => {
  expect(KINDS.map((r) => r.kind)).toEqual([...SLOT_KIND_NAMES])
  expect(KINDS.map((r) => r.slotKind.code)).toEqual(SLOT_KIND_NAMES.map((_, i) => i))
})

describe.each(KINDS)('engine loop: $kind ($ledger ledger, $store store)', (row) => {
  it('claim → artifact → append → typed setter → Filled row, record and file', () => {
    const symbolId = c.resolveSymbol('SPY')
    expect(symbolId).toBe(0)
    expect(c.resolveSymbol('SPY')).toBe(0)
    expect(c.symbolId('SPY')).toBe(0)

    const claim = c.markPending('SPY', 5, row.kind)
    expect(claim).toMatchObject({ symbolId: 0, windowIdx: 5, version: 1 })
    expect(claim.slotKind).toEqual({ ledger: row.ledger, name: row.kind, code: row.slotKind.code })
    expect(slotOf('SPY', 5, row.kind)).toMatchObject({ status: 'Pending', version: 1, payloadId: 0, checksum: 0n })
    expect(slotOf('SPY', 5, row.kind).leaseExpiresAt).toBeTypeOf('number')

    const bytes = Buffer.from(JSON.stringify({ kind: row.kind, symbol: 'SPY', window: 5, rows: [1, 2, 3] }))
    const art = c.writeArtifact(`SPY/${row.kind}/w5.json`, bytes)
    expect(art.uri).toBe(`artifacts/SPY/${row.kind}/w5.json`)
    expect(art.path).toBe(join(dir, art.uri))
    expect(c.resolveArtifact(art.uri)).toBe(art.path)
    expect(existsSync(art.path)).toBe(true)
    const onDisk = readFileSync(art.path)
    expect(onDisk.equals(bytes)).toBe(true)
    expect(art.size).toBe(bytes.length)
    expect(art.checksum).toBe(checksum64(bytes))
    expect(art.checksum).toBe(checksum64(onDisk))
    expect(art.checksum).toBe(checksum64(bytes.toString('utf8')))

    const store = c.payloadStores()[row.store]
    expect(store.name).toBe(row.store)
    expect(store.length).toBe(0)
    const payloadId = store.append({ symbol: 'SPY', windowIdx: 5, slotKind: row.kind, payloadType: 'Json', uri: art.uri, checksum: art.checksum, size: art.size })
    expect(payloadId).toBe(0)
    expect(store.length).toBe(1)

    const meta: PayloadMeta = { payloadType: 'Json', payloadId, version: claim.version, checksum: art.checksum }
    const v = c[row.setter]('SPY', 5, meta)
    expect(v).toBe(2)

    const expected: SlotState = { status: 'Filled', version: 2, payloadType: PayloadType.Json, payloadId, checksum: art.checksum, leaseExpiresAt: null }
    expect(slotOf('SPY', 5, row.kind)).toEqual(expected)
    expect(c.getSlot('SPY', 5, row.kind)).toEqual(expected)
    expect(c.getSlot(0, 5, row.slotKind)).toEqual(expected)

    // Every other slot of both rows is untouched.
    const trade = c.getTradeRow('SPY', 5)
    const enrichment = c.getEnrichmentRow('SPY', 5)
    expect(trade.symbolId).toBe(0)
    expect(trade.windowIdx).toBe(5)
    expect(enrichment.symbolId).toBe(0)
    expect(enrichment.windowIdx).toBe(5)
    for (const k of TRADE_KINDS) if (k !== row.kind) expect(trade[k as keyof typeof trade]).toEqual(EMPTY)
    for (const k of ENRICHMENT_KINDS) if (k !== row.kind) expect(enrichment[k as keyof typeof enrichment]).toEqual(EMPTY)
    // ...and the same slot of the neighbouring windows too.
    expect(slotOf('SPY', 4, row.kind)).toEqual(EMPTY)
    expect(slotOf('SPY', 6, row.kind)).toEqual(EMPTY)

    const rec = store.get(payloadId)
    expect(rec).not.toBeNull()
    expect(rec).toMatchObject({ payloadId, symbolId: 0, windowIdx: 5, slotKind: row.kind, payloadType: PayloadType.Json, uri: art.uri, checksum: art.checksum, size: bytes.length })
    expect(typeof rec!.createdAt).toBe('bigint')
    expect(rec!.createdAt > 0n).toBe(true)
    expect(store.get(1)).toBeNull()
    expect([...store].map((r) => r.payloadId)).toEqual([0])
    // The record's uri leads back to the artifact bytes.
    expect(readFileSync(c.resolveArtifact(rec!.uri)).equals(bytes)).toBe(true)

    // A filled slot is not claimable again.
    const e = caught(() => c.markPending('SPY', 5, row.kind))
    expect(e).toBeInstanceOf(SlotFilledError)
    expect((e as SlotFilledError).code).toBe('ERR_SLOT_FILLED')
    expect((e as SlotFilledError).slot).toEqual(expected)
    // And the fill is not repeatable with the same claim.
    expect(() => c[row.setter]('SPY', 5, meta)).toThrow(VersionConflictError)
    expect(slotOf('SPY', 5, row.kind)).toEqual(expected)
  })

  it('the generic setRef fills the same slot (SlotKind object, numeric payload type, full 64-bit checksum)', () => {
    c.resolveSymbol('AAPL')
    const sym = c.resolveSymbol('MSFT')
    expect(sym).toBe(1)
    // Two records first, so the fill refers to a non-zero id.
    const first = append(row, 'MSFT', 9)
    const checksum = 0xfedc_ba98_7654_3210n
    const second = append(row, 'MSFT', 9, 'artifacts/msft.parquet', checksum)
    expect([first, second]).toEqual([0, 1])

    const claim = c.markPending(sym, 9, row.slotKind)
    expect(claim.version).toBe(1)
    const v = c.setRef(sym, 9, row.slotKind, { payloadType: 200, payloadId: second, version: claim.version, checksum })
    expect(v).toBe(2)
    expect(slotOf('MSFT', 9, row.kind)).toEqual({ status: 'Filled', version: 2, payloadType: 200, payloadId: 1, checksum, leaseExpiresAt: null })
    // The other symbol's row is untouched.
    expect(slotOf('AAPL', 9, row.kind)).toEqual(EMPTY)
    expect(c.payloadStores()[row.store].get(second)).toMatchObject({ symbolId: 1, windowIdx: 9, uri: 'artifacts/msft.parquet', checksum })
  })

  it('failure path: clearSlot makes the slot Cleared and claimable again, the version rising each time', () => {
    c.resolveSymbol('SPY')
    const c1 = c.markPending('SPY', 2, row.kind)
    expect(c1.version).toBe(1)
    expect(c.clearSlot('SPY', 2, row.kind, c1)).toBe(2)
    expect(slotOf('SPY', 2, row.kind)).toEqual({ status: 'Cleared', version: 2, payloadType: 0, payloadId: 0, checksum: 0n, leaseExpiresAt: null })

    const c2 = c.markPending('SPY', 2, row.kind)
    expect(c2.version).toBe(3)
    expect(slotOf('SPY', 2, row.kind)).toMatchObject({ status: 'Pending', version: 3 })
    expect(c.clearSlot('SPY', 2, row.kind, c2)).toBe(4)
    expect(slotOf('SPY', 2, row.kind)).toMatchObject({ status: 'Cleared', version: 4 })

    // The old claims cannot clear or fill any more.
    const id = append(row, 'SPY', 2)
    expect(() => c.clearSlot('SPY', 2, row.kind, c1)).toThrow(VersionConflictError)
    expect(() => c[row.setter]('SPY', 2, { payloadType: 'Text', payloadId: id, version: c2.version, checksum: 1n })).toThrow(VersionConflictError)

    const c3 = c.markPending('SPY', 2, row.kind)
    expect(c3.version).toBe(5)
    expect(c[row.setter]('SPY', 2, { payloadType: 'Text', payloadId: id, version: c3.version, checksum: 1n })).toBe(6)
    expect(slotOf('SPY', 2, row.kind)).toMatchObject({ status: 'Filled', version: 6, payloadType: PayloadType.Text, payloadId: id, checksum: 1n })
    // A Filled slot cannot be cleared by its (spent) claim.
    expect(() => c.clearSlot('SPY', 2, row.kind, c3)).toThrow(VersionConflictError)
    expect(c.eventCounts(row.ledger)).toMatchObject({ claims: 3, fills: 1, clears: 2 })
  })

  it('a second markPending on a live claim is SlotBusyError with the Pending slot', () => {
    c.resolveSymbol('SPY')
    const claim = c.markPending('SPY', 0, row.kind, { leaseMs: 60_000 })
    const e = caught(() => c.markPending('SPY', 0, row.kind))
    expect(e).toBeInstanceOf(SlotBusyError)
    expect(e).toBeInstanceOf(VersionConflictError)
    expect(e).toBeInstanceOf(SlotWriteError)
    const busy = e as SlotBusyError
    expect(busy.code).toBe('ERR_SLOT_BUSY')
    expect(busy.slot).toBeDefined()
    expect(busy.slot!.status).toBe('Pending')
    expect(busy.slot!.version).toBe(claim.version)
    expect(busy.details).toMatchObject({ symbolId: 0, windowIdx: 0, slotKind: row.kind, status: 'Pending', version: 1 })
    expect(c.tryMarkPending('SPY', 0, row.kind)).toBeNull()
    // The refused claims changed nothing.
    expect(slotOf('SPY', 0, row.kind)).toMatchObject({ status: 'Pending', version: 1 })
    expect(c.eventCounts(row.ledger)).toMatchObject({ claims: 1, busy: 2 })
  })

  it('a fill at a stale version is VersionConflictError (not a busy/filled/retired refusal)', () => {
    c.resolveSymbol('SPY')
    const old = c.markPending('SPY', 1, row.kind)
    c.clearSlot('SPY', 1, row.kind, old)
    const current = c.markPending('SPY', 1, row.kind)
    expect(current.version).toBe(3)
    const id = append(row, 'SPY', 1)
    const e = caught(() => c[row.setter]('SPY', 1, { payloadType: 'Json', payloadId: id, version: old.version, checksum: 5n }))
    expect(e).toBeInstanceOf(VersionConflictError)
    expect((e as VersionConflictError).code).toBe('ERR_VERSION_CONFLICT')
    expect(e instanceof SlotBusyError || e instanceof SlotFilledError).toBe(false)
    expect((e as VersionConflictError).slot).toMatchObject({ status: 'Pending', version: 3 })
    expect((e as VersionConflictError).details).toMatchObject({ expectedVersion: 1, version: 3, status: 'Pending' })
    // A version ahead of the slot conflicts too.
    expect(() => c[row.setter]('SPY', 1, { payloadType: 'Json', payloadId: id, version: current.version + 1, checksum: 5n })).toThrow(VersionConflictError)
    expect(slotOf('SPY', 1, row.kind)).toMatchObject({ status: 'Pending', version: 3 })
    // The holder of the current claim still fills.
    expect(c[row.setter]('SPY', 1, { payloadType: 'Json', payloadId: id, version: current.version, checksum: 5n })).toBe(4)
  })

  it('a fill with a payload id its store does not hold is UnknownPayloadError and changes nothing', () => {
    c.resolveSymbol('SPY')
    const claim = c.markPending('SPY', 3, row.kind)
    const e = caught(() => c[row.setter]('SPY', 3, { payloadType: 'Json', payloadId: 0, version: claim.version, checksum: 1n }))
    expect(e).toBeInstanceOf(UnknownPayloadError)
    expect((e as UnknownPayloadError).code).toBe('ERR_UNKNOWN_PAYLOAD')
    expect(e instanceof VersionConflictError).toBe(false)
    const id = append(row, 'SPY', 3)
    expect(id).toBe(0)
    expect(() => c.setRef('SPY', 3, row.kind, { payloadType: 'Json', payloadId: id + 1, version: claim.version, checksum: 1n })).toThrow(UnknownPayloadError)
    expect(slotOf('SPY', 3, row.kind)).toMatchObject({ status: 'Pending', version: 1, payloadId: 0 })
    // The claim is still good.
    expect(c.setRef('SPY', 3, row.kind, { payloadType: 'Json', payloadId: id, version: claim.version, checksum: 1n })).toBe(2)
  })

  it('lease takeover: an expired claim is claimed again at version+1 and the old holder conflicts', async () => {
    c.resolveSymbol('SPY')
    const old = c.markPending('SPY', 7, row.kind, { leaseMs: 1 })
    expect(old.version).toBe(1)
    await sleep(25)
    const taken = c.markPending('SPY', 7, row.kind, { leaseMs: 60_000 })
    expect(taken.version).toBe(2)
    expect(c.eventCounts(row.ledger)).toMatchObject({ claims: 2, takeovers: 1 })
    const id = append(row, 'SPY', 7)
    const e = caught(() => c[row.setter]('SPY', 7, { payloadType: 'Json', payloadId: id, version: old.version, checksum: 9n }))
    expect(e).toBeInstanceOf(VersionConflictError)
    expect((e as VersionConflictError).slot).toMatchObject({ status: 'Pending', version: 2 })
    expect(() => c.clearSlot('SPY', 7, row.kind, old)).toThrow(VersionConflictError)
    expect(() => c.renewClaim(old)).toThrow(VersionConflictError)
    // The new holder fills.
    expect(c[row.setter]('SPY', 7, { payloadType: 'Json', payloadId: id, version: taken.version, checksum: 9n })).toBe(3)
    expect(slotOf('SPY', 7, row.kind)).toMatchObject({ status: 'Filled', version: 3, payloadId: id, checksum: 9n })
  })

  it('renewClaim extends a claim: a renewed claim is not taken over and keeps its version', async () => {
    c.resolveSymbol('SPY')
    const claim = c.markPending('SPY', 8, row.kind, { leaseMs: 1 })
    const renewed = c.renewClaim(claim, { leaseMs: 60_000 })
    expect(renewed.version).toBe(claim.version)
    expect(renewed.windowIdx).toBe(8)
    expect(renewed.leaseExpiresAt).toBeGreaterThanOrEqual(claim.leaseExpiresAt + 59_000)
    expect(slotOf('SPY', 8, row.kind)).toMatchObject({ status: 'Pending', version: claim.version, leaseExpiresAt: renewed.leaseExpiresAt })
    await sleep(25)
    const e = caught(() => c.markPending('SPY', 8, row.kind))
    expect(e).toBeInstanceOf(SlotBusyError)
    expect((e as SlotBusyError).slot!.version).toBe(1)
    expect(c.eventCounts(row.ledger).takeovers).toBe(0)
    const id = append(row, 'SPY', 8)
    expect(c[row.setter]('SPY', 8, { payloadType: 'Json', payloadId: id, version: renewed.version, checksum: 2n })).toBe(2)
  })
})

describe('engine loop across kinds', () => {
  it('filling every slot kind of one (symbol, window) gives full rows with per-kind payload ids', () => {
    c.resolveSymbol('SPY')
    const claims = new Map<SlotKindName, Claim>()
    for (const row of KINDS) claims.set(row.kind, c.markPending('SPY', 11, row.kind))
    const ids = new Map<SlotKindName, number>()
    for (const row of KINDS) ids.set(row.kind, append(row, 'SPY', 11, `u/${row.kind}`, BigInt(row.slotKind.code + 100)))
    // Kinds that share a store got consecutive ids of that store.
    expect(ids.get('optionTrade')).toBe(0)
    expect(ids.get('underlyingTrade')).toBe(1)
    expect(ids.get('optionQuote')).toBe(0)
    expect(ids.get('underlyingQuote')).toBe(1)
    expect(ids.get('optionAggressor')).toBe(0)
    expect(ids.get('underlyingAggressor')).toBe(1)
    expect(ids.get('rfRate')).toBe(0)
    expect(ids.get('greeks')).toBe(0)
    expect(ids.get('aggregation')).toBe(0)
    for (const row of KINDS) {
      expect(c[row.setter]('SPY', 11, { payloadType: 'Parquet', payloadId: ids.get(row.kind)!, version: claims.get(row.kind)!.version, checksum: BigInt(row.slotKind.code + 100) })).toBe(2)
    }
    const trade = c.getTradeRow('SPY', 11)
    for (const k of TRADE_KINDS) {
      const code = KINDS.find((r) => r.kind === k)!.slotKind.code
      expect(trade[k as keyof typeof trade]).toEqual({ status: 'Filled', version: 2, payloadType: PayloadType.Parquet, payloadId: ids.get(k), checksum: BigInt(code + 100), leaseExpiresAt: null })
    }
    const enr = c.getEnrichmentRow('SPY', 11)
    expect(enr.greeks).toEqual({ status: 'Filled', version: 2, payloadType: 1, payloadId: 0, checksum: 107n, leaseExpiresAt: null })
    expect(enr.aggregation).toEqual({ status: 'Filled', version: 2, payloadType: 1, payloadId: 0, checksum: 108n, leaseExpiresAt: null })
    // Each store resolves its own id 1/0 to the record written for that kind.
    expect(c.payloadStores().trades.get(1)!.slotKind).toBe('underlyingTrade')
    expect(c.payloadStores().quotes.get(0)!.slotKind).toBe('optionQuote')
    expect(c.payloadStores().aggressor.get(1)!.uri).toBe('u/underlyingAggressor')
    expect(c.eventCounts('trade')).toMatchObject({ claims: 7, fills: 7 })
    expect(c.eventCounts('enrichment')).toMatchObject({ claims: 2, fills: 2 })
  })

  it('a payload appended to another store does not make a fill valid', () => {
    c.resolveSymbol('SPY')
    const claim = c.markPending('SPY', 0, 'optionTrade')
    // quotes store has id 0, trades store has none.
    c.payloadStores().quotes.append({ symbol: 'SPY', windowIdx: 0, slotKind: 'optionQuote', payloadType: 'Json', uri: 'q', checksum: 1n, size: 1 })
    expect(() => c.setOptionTradeRef('SPY', 0, { payloadType: 'Json', payloadId: 0, version: claim.version, checksum: 1n })).toThrow(UnknownPayloadError)
    expect(c.getSlot('SPY', 0, 'optionTrade')).toMatchObject({ status: 'Pending', version: 1 })
  })

  it('an append for a slot kind of another store is refused', () => {
    c.resolveSymbol('SPY')
    expect(() => c.payloadStores().trades.append({ symbol: 'SPY', windowIdx: 0, slotKind: 'optionQuote', payloadType: 'Json', uri: 'q', checksum: 1n, size: 1 })).toThrow(RangeError)
    expect(() => c.payloadStores().greeks.append({ symbol: 'SPY', windowIdx: 0, slotKind: 'aggregation', payloadType: 'Json', uri: 'q', checksum: 1n, size: 1 })).toThrow(RangeError)
    expect(c.payloadStores().trades.length).toBe(0)
    expect(c.payloadStores().greeks.length).toBe(0)
  })

  it('writeArtifact replaces an artifact atomically: same uri, new bytes and checksum', () => {
    const a = c.writeArtifact('SPY/w1.bin', new Uint8Array([1, 2, 3]))
    const b = c.writeArtifact('SPY/w1.bin', new Uint8Array([4, 5, 6, 7]))
    expect(b.uri).toBe(a.uri)
    expect(b.size).toBe(4)
    expect(a.checksum).not.toBe(b.checksum)
    expect(b.checksum).toBe(checksum64(new Uint8Array([4, 5, 6, 7])))
    expect([...readFileSync(b.path)]).toEqual([4, 5, 6, 7])
  })
})
