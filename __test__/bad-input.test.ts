// Bad input on every public method: wrong types (TypeError), unacceptable
// values (RangeError), invalid and unknown symbols, out-of-range windows,
// escaping artifact paths, calls after close, and bootstrap on damaged state
// files (CorruptStateError naming the file, nothing on disk changed).
import { createHash } from 'node:crypto'
import { copyFileSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'

import {
  ClosedError,
  CorruptStateError,
  InvalidSymbolError,
  PathEscapesStateDirError,
  SlotKind,
  UnknownSymbolError,
  WindowOutOfRangeError,
  WindowSpace,
  WindowSpaceConfig,
  WindowSpaceController,
  checksum64,
  type Claim,
  type PayloadInput,
  type PayloadMeta,
} from '../src/index'

const WINDOWS = 10
const SCHEDULE = WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: WINDOWS })

let dir: string
let c: WindowSpaceController
let claim: Claim
const extra: WindowSpaceController[] = []
/** Other temp directories a test made (removed after it). */
const scratch: string[] = []

// Creating a state directory fsyncs every file; with hundreds of cases that
// dominates the run time. So one closed template directory (schedule + symbol
// SPY) is made once and copied into a fresh temp directory for every test.
let template: string

beforeAll(() => {
  template = mkdtempSync(join(tmpdir(), 'ws-bad-template-'))
  const t = WindowSpaceController.bootstrap(new WindowSpaceConfig(template, SCHEDULE)).controller
  t.resolveSymbol('SPY')
  t.close()
})

afterAll(() => {
  rmSync(template, { recursive: true, force: true })
})

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ws-bad-'))
  cpSync(template, dir, { recursive: true })
  c = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, SCHEDULE)).controller
  expect(c.symbolId('SPY')).toBe(0)
  claim = c.markPending('SPY', 0, 'optionTrade', { leaseMs: 60_000 })
})

afterEach(() => {
  c.close()
  for (const x of extra.splice(0)) x.close()
  rmSync(dir, { recursive: true, force: true })
  for (const d of scratch.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** Lets tests pass values the types forbid. */
const any = (v: unknown) => v as never

const META: PayloadMeta = { payloadType: 'Json', payloadId: 0, version: 1, checksum: 1n }
const PAYLOAD: PayloadInput = { symbol: 'SPY', windowIdx: 0, slotKind: 'optionTrade', payloadType: 'Json', uri: 'u', checksum: 1n, size: 1 }
const store = () => c.payloadStores().trades

type Case = [string, () => unknown]
/** A case list entry: label, call, and the group (method and argument) it belongs to. */
type GroupedCase = [string, () => unknown, string?]

/**
 * Groups cases by method and argument: one test per group, each value checked
 * with its own label. (Every test copies a state directory: hundreds of them
 * would make the file slow for no gain.)
 */
function grouped(cases: GroupedCase[]): Array<[string, Case[]]> {
  const groups = new Map<string, Case[]>()
  for (const [label, f, group] of cases) {
    const key = group ?? label
    if (!groups.has(key)) groups.set(key, [])
    groups.get(key)!.push([label, f])
  }
  return [...groups]
}

/** Wrong numeric values for a whole-number argument, built into a call. */
function numericValues(build: (v: number) => () => unknown): Case[] {
  return [
    ['NaN', build(NaN)],
    ['-1', build(-1)],
    ['1.5', build(1.5)],
    ['Infinity', build(Infinity)],
    ['2**53', build(2 ** 53)],
  ]
}

/** Values of the wrong type for a numeric argument. */
function nonNumbers(build: (v: unknown) => () => unknown): Case[] {
  return [
    ['"1"', build('1')],
    ['null', build(null)],
    ['undefined', build(undefined)],
    ['1n', build(1n)],
    ['{}', build({})],
  ]
}

function rangeCases(): GroupedCase[] {
  const named = (prefix: string, cases: Case[]): GroupedCase[] => cases.map(([n, f]) => [`${prefix} ${n}`, f, prefix])
  return [
    ...named('markPending windowIdx', numericValues((v) => () => c.markPending('SPY', v, 'optionTrade'))),
    ['markPending windowIdx 2**32', () => c.markPending('SPY', 2 ** 32, 'optionTrade'), 'markPending windowIdx'],
    ...named('markPending symbol id', numericValues((v) => () => c.markPending(v, 1, 'optionTrade'))),
    ['markPending symbol id 2**32', () => c.markPending(2 ** 32, 1, 'optionTrade'), 'markPending symbol id'],
    ...named('markPending leaseMs', numericValues((v) => () => c.markPending('SPY', 1, 'optionTrade', { leaseMs: v }))),
    ...named('tryMarkPending windowIdx', numericValues((v) => () => c.tryMarkPending('SPY', v, 'optionTrade'))),
    ...named('getSlot windowIdx', numericValues((v) => () => c.getSlot('SPY', v, 'optionTrade'))),
    ...named('getTradeRow windowIdx', numericValues((v) => () => c.getTradeRow('SPY', v))),
    ...named('getEnrichmentRow windowIdx', numericValues((v) => () => c.getEnrichmentRow('SPY', v))),
    ...named('getTradeRow symbol id', numericValues((v) => () => c.getTradeRow(v, 0))),
    ...named('windowMeta', numericValues((v) => () => c.windowMeta(v))),
    ...named('symbolName', numericValues((v) => () => c.symbolName(v))),
    ...named('symbolId', numericValues((v) => () => c.symbolId(v))),
    ...named('setRef windowIdx', numericValues((v) => () => c.setRef('SPY', v, 'optionTrade', META))),
    ...named('setRef version', numericValues((v) => () => c.setRef('SPY', 0, 'optionTrade', { ...META, version: v }))),
    ['setRef version 2**32', () => c.setRef('SPY', 0, 'optionTrade', { ...META, version: 2 ** 32 }), 'setRef version'],
    ...named('setRef payloadId', numericValues((v) => () => c.setOptionTradeRef('SPY', 0, { ...META, payloadId: v }))),
    ...named('setRef payloadType', numericValues((v) => () => c.setOptionTradeRef('SPY', 0, { ...META, payloadType: v }))),
    ['setRef payloadType 256', () => c.setOptionTradeRef('SPY', 0, { ...META, payloadType: 256 })],
    ['setRef payloadType unknown name', () => c.setOptionTradeRef('SPY', 0, { ...META, payloadType: any('Excel') })],
    ['setRef checksum 2n**64n', () => c.setOptionTradeRef('SPY', 0, { ...META, checksum: 2n ** 64n })],
    ['setRef checksum 10n**30n', () => c.setOptionTradeRef('SPY', 0, { ...META, checksum: 10n ** 30n })],
    ['setRef checksum -1n', () => c.setOptionTradeRef('SPY', 0, { ...META, checksum: -1n })],
    ...named('clearSlot version', numericValues((v) => () => c.clearSlot('SPY', 0, 'optionTrade', { version: v }))),
    ...named('clearSlot windowIdx', numericValues((v) => () => c.clearSlot('SPY', v, 'optionTrade', claim))),
    ...named('renewClaim leaseMs', numericValues((v) => () => c.renewClaim(claim, { leaseMs: v }))),
    ...named('claimNextUnfilled startIdx', numericValues((v) => () => c.claimNextUnfilled('SPY', v, 'optionTrade', 1))),
    ...named('claimNextUnfilled count', numericValues((v) => () => c.claimNextUnfilled('SPY', 0, 'optionTrade', v))),
    ['claimNextUnfilled count 1_000_001', () => c.claimNextUnfilled('SPY', 0, 'optionTrade', 1_000_001)],
    ...named('claimNextUnfilled leaseMs', numericValues((v) => () => c.claimNextUnfilled('SPY', 0, 'optionTrade', 1, { leaseMs: v }))),
    ...named('nextUnfilledWindow startIdx', numericValues((v) => () => c.nextUnfilledWindow('SPY', v, 'optionTrade'))),
    ...named('fillMany windowIdx', numericValues((v) => () => c.fillMany([{ symbol: 'SPY', windowIdx: v, slotKind: 'optionTrade', meta: META }]))),
    ...named('fillMany version', numericValues((v) => () => c.fillMany([{ symbol: 'SPY', windowIdx: 0, slotKind: 'optionTrade', meta: { ...META, version: v } }]))),
    ['fillMany checksum 2n**64n', () => c.fillMany([{ symbol: 'SPY', windowIdx: 0, slotKind: 'optionTrade', meta: { ...META, checksum: 2n ** 64n } }])],
    ...named('forceClear windowIdx', numericValues((v) => () => c.forceClear('SPY', v, 'optionTrade'))),
    ...named('retire windowIdx', numericValues((v) => () => c.retire('SPY', v, 'optionTrade'))),
    ...named('forceClearRange from', numericValues((v) => () => c.forceClearRange('SPY', { from: v, to: 5 }, 'optionTrade'))),
    ...named('retireRange to', numericValues((v) => () => c.retireRange('SPY', { from: 0, to: v }, 'optionTrade'))),
    ['retireRange reversed', () => c.retireRange('SPY', { from: 5, to: 2 }, 'optionTrade')],
    ['forceClearRange reversed', () => c.forceClearRange('SPY', { from: 5, to: 2 }, 'optionTrade')],
    ...named('append windowIdx', numericValues((v) => () => store().append({ ...PAYLOAD, windowIdx: v }))),
    ...named('append size', numericValues((v) => () => store().append({ ...PAYLOAD, size: v }))),
    ['append checksum 2n**64n', () => store().append({ ...PAYLOAD, checksum: 2n ** 64n })],
    ['append checksum -1n', () => store().append({ ...PAYLOAD, checksum: -1n })],
    ['append payloadType 256', () => store().append({ ...PAYLOAD, payloadType: 256 })],
    ['append slot kind of another store', () => store().append({ ...PAYLOAD, slotKind: 'greeks' })],
    ...named('store.get', numericValues((v) => () => store().get(v))),
    ...named('store.entries from', numericValues((v) => () => [...store().entries(v)])),
    ['unknown slot kind name', () => c.markPending('SPY', 1, any('optionTrades'))],
    ['SlotKind.Trade of an enrichment kind', () => SlotKind.Trade(any('greeks'))],
    ['SlotKind.Enrichment of a trade kind', () => SlotKind.Enrichment(any('rfRate'))],
    ['slot kind object with an unknown name', () => c.getSlot('SPY', 0, any({ name: 'nope', ledger: 'trade', code: 1 }))],
    ['eventCounts of an unknown ledger', () => c.eventCounts(any('quotes'))],
    ['config durability', () => new WindowSpaceConfig(dir, SCHEDULE, { durability: any('fast') })],
    ...named('config defaultLeaseMs', numericValues((v) => () => new WindowSpaceConfig(dir, SCHEDULE, { defaultLeaseMs: v }))),
    ['config stateDir with NUL', () => new WindowSpaceConfig(`${dir}/a\0b`, SCHEDULE)],
  ]
}

function typeCases(): GroupedCase[] {
  const named = (prefix: string, cases: Case[]): GroupedCase[] => cases.map(([n, f]) => [`${prefix} ${n}`, f, prefix])
  return [
    ...named('markPending windowIdx', nonNumbers((v) => () => c.markPending('SPY', any(v), 'optionTrade'))),
    ...named('markPending leaseMs', nonNumbers((v) => () => c.markPending('SPY', 1, 'optionTrade', { leaseMs: any(v) })).filter(([n]) => n !== 'undefined')),
    ['markPending symbol null', () => c.markPending(any(null), 0, 'optionTrade')],
    ['markPending symbol undefined', () => c.markPending(any(undefined), 0, 'optionTrade')],
    ['markPending symbol bigint', () => c.markPending(any(0n), 0, 'optionTrade')],
    ['markPending symbol object', () => c.markPending(any({ id: 0 }), 0, 'optionTrade')],
    ['markPending slot kind number', () => c.markPending('SPY', 0, any(1))],
    ['markPending slot kind null', () => c.markPending('SPY', 0, any(null))],
    ['markPending slot kind undefined', () => c.markPending('SPY', 0, any(undefined))],
    ['resolveSymbol number', () => c.resolveSymbol(any(5))],
    ['resolveSymbol null', () => c.resolveSymbol(any(null))],
    ['resolveSymbol undefined', () => c.resolveSymbol(any(undefined))],
    ['resolveSymbol String object', () => c.resolveSymbol(any(new String('SPY')))],
    ['symbolId null', () => c.symbolId(any(null))],
    ...named('symbolName', nonNumbers((v) => () => c.symbolName(any(v)))),
    ...named('windowMeta', nonNumbers((v) => () => c.windowMeta(any(v)))),
    ...named('getTradeRow windowIdx', nonNumbers((v) => () => c.getTradeRow('SPY', any(v)))),
    ...named('getEnrichmentRow windowIdx', nonNumbers((v) => () => c.getEnrichmentRow('SPY', any(v)))),
    ['windowIdxForTimestamp string', () => c.windowIdxForTimestamp(any('1970-01-01'))],
    ['windowIdxForTimestamp null', () => c.windowIdxForTimestamp(any(null))],
    ['setRef meta null', () => c.setRef('SPY', 0, 'optionTrade', any(null))],
    ['setRef meta undefined', () => c.setRef('SPY', 0, 'optionTrade', any(undefined))],
    ['setRef checksum number', () => c.setRef('SPY', 0, 'optionTrade', { ...META, checksum: any(1) })],
    ['setRef checksum string', () => c.setRef('SPY', 0, 'optionTrade', { ...META, checksum: any('1') })],
    ['setRef checksum missing', () => c.setRef('SPY', 0, 'optionTrade', any({ payloadType: 'Json', payloadId: 0, version: 1 }))],
    ...named('setRef version', nonNumbers((v) => () => c.setOptionTradeRef('SPY', 0, { ...META, version: any(v) }))),
    ...named('setRef payloadId', nonNumbers((v) => () => c.setOptionTradeRef('SPY', 0, { ...META, payloadId: any(v) }))),
    ['clearSlot claim null', () => c.clearSlot('SPY', 0, 'optionTrade', any(null))],
    ['clearSlot claim number', () => c.clearSlot('SPY', 0, 'optionTrade', any(1))],
    ['clearSlot claim version string', () => c.clearSlot('SPY', 0, 'optionTrade', any({ version: '1' }))],
    ['renewClaim null', () => c.renewClaim(any(null))],
    ['renewClaim leaseMs string', () => c.renewClaim(claim, { leaseMs: any('5') })],
    ...named('claimNextUnfilled count', nonNumbers((v) => () => c.claimNextUnfilled('SPY', 0, 'optionTrade', any(v)))),
    ['fillMany not an array', () => c.fillMany(any({ length: 1 }))],
    ['fillMany null', () => c.fillMany(any(null))],
    ['fillMany item checksum number', () => c.fillMany([{ symbol: 'SPY', windowIdx: 0, slotKind: 'optionTrade', meta: { ...META, checksum: any(1) } }])],
    ['fillMany item slot kind number', () => c.fillMany([{ symbol: 'SPY', windowIdx: 0, slotKind: any(1), meta: META }])],
    ['forceClearRange range null', () => c.forceClearRange('SPY', any(null), 'optionTrade')],
    ['retireRange range string', () => c.retireRange('SPY', any('0-5'), 'optionTrade')],
    ['retireRange from string', () => c.retireRange('SPY', { from: any('0'), to: 5 }, 'optionTrade')],
    ['append null', () => store().append(any(null))],
    ['append uri number', () => store().append({ ...PAYLOAD, uri: any(5) })],
    ['append uri missing', () => store().append(any({ ...PAYLOAD, uri: undefined }))],
    ['append checksum number', () => store().append({ ...PAYLOAD, checksum: any(1) })],
    ['append slot kind number', () => store().append({ ...PAYLOAD, slotKind: any(1) })],
    ...named('append size', nonNumbers((v) => () => store().append({ ...PAYLOAD, size: any(v) }))),
    ['append symbol null', () => store().append({ ...PAYLOAD, symbol: any(null) })],
    ...named('store.get', nonNumbers((v) => () => store().get(any(v)))),
    ['writeArtifact path number', () => c.writeArtifact(any(5), 'x')],
    ['writeArtifact path null', () => c.writeArtifact(any(null), 'x')],
    ['writeArtifact data number', () => c.writeArtifact('a', any(5))],
    ['writeArtifact data null', () => c.writeArtifact('a', any(null))],
    ['writeArtifact data array', () => c.writeArtifact('a', any([1, 2, 3]))],
    ['resolveArtifact number', () => c.resolveArtifact(any(5))],
    ['checksum64 number', () => checksum64(any(5))],
    ['checksum64 null', () => checksum64(any(null))],
    ['checksum64 array', () => checksum64(any([1, 2]))],
    ['config stateDir empty', () => new WindowSpaceConfig('', SCHEDULE)],
    ['config stateDir number', () => new WindowSpaceConfig(any(5), SCHEDULE)],
    ['config windowSpace null', () => new WindowSpaceConfig(dir, any(null))],
    ['config defaultLeaseMs string', () => new WindowSpaceConfig(dir, SCHEDULE, { defaultLeaseMs: any('5') })],
    ['bootstrap a plain object', () => WindowSpaceController.bootstrap(any({ stateDir: dir, windowSpace: SCHEDULE }))],
    ['bootstrap undefined', () => WindowSpaceController.bootstrap(any(undefined))],
    ['openExisting empty path', () => WindowSpaceController.openExisting('')],
  ]
}

describe('wrong values → RangeError', () => {
  it.each(grouped(rangeCases()))('%s', (_name, cases) => {
    const before = c.recountSlots()
    for (const [label, f] of cases) expect(f, label).toThrow(RangeError)
    // Nothing changed.
    expect(c.recountSlots()).toEqual(before)
    expect(c.getSlot('SPY', 0, 'optionTrade')).toMatchObject({ status: 'Pending', version: 1 })
    expect(store().length).toBe(0)
  })
})

describe('wrong types → TypeError', () => {
  it.each(grouped(typeCases()))('%s', (_name, cases) => {
    for (const [label, f] of cases) expect(f, label).toThrow(TypeError)
    expect(c.getSlot('SPY', 0, 'optionTrade')).toMatchObject({ status: 'Pending', version: 1 })
    expect(store().length).toBe(0)
  })
})

describe('renewClaim validates the claim it is given', () => {
  // (Failed before commit 4a5807a, which fixed it; kept as a regression test.)
  // Regression (this test found the bug; fixed in 4a5807a): renewClaim passes claim.symbolId / windowIdx / version to the native
  // binding unchecked. The binding's u32 conversion wraps or truncates them:
  //   - version 1.5 renews the version-1 claim and returns { version: 1.5 };
  //   - windowIdx 2**32 (or symbolId 2**32) wraps to 0 and silently renews the claim
  //     on window 0 (symbol 0), returning a Claim that names window 4294967296;
  //   - version -1 / NaN give VersionConflictError, windowIdx -1 gives
  //     WindowOutOfRangeError for "window index 4294967295".
  // Every other method checks these with checkWhole (RangeError).
  it.each([
    ['version 1.5', { version: 1.5 }],
    ['version -1', { version: -1 }],
    ['version NaN', { version: NaN }],
    ['version 2**32 + 1', { version: 2 ** 32 + 1 }],
    ['windowIdx 2**32', { windowIdx: 2 ** 32 }],
    ['windowIdx -1', { windowIdx: -1 }],
    ['symbolId 2**32', { symbolId: 2 ** 32 }],
    ['symbolId 0.5', { symbolId: 0.5 }],
  ])('%s → RangeError', (_name, patch) => {
    const before = c.getSlot('SPY', 0, 'optionTrade')
    expect(() => c.renewClaim({ ...claim, ...patch })).toThrow(RangeError)
    expect(c.getSlot('SPY', 0, 'optionTrade')).toEqual(before)
  })

  it('a claim with string fields is a TypeError', () => {
    expect(() => c.renewClaim(any({ ...claim, version: '1' }))).toThrow(TypeError)
    expect(() => c.renewClaim(any({ ...claim, symbolId: 'SPY' }))).toThrow(TypeError)
    expect(() => c.renewClaim(any({ ...claim, slotKind: 5 }))).toThrow(TypeError)
  })
})

describe('symbols', () => {
  it.each([
    ['empty', ''],
    ['65 ASCII bytes', 'A'.repeat(65)],
    ['33 two-byte characters (66 bytes)', 'é'.repeat(33)],
    ['leading space', ' SPY'],
    ['trailing space', 'SPY '],
    ['leading tab', '\tSPY'],
    ['newline', 'SP\nY'],
    ['NUL', 'SP\0Y'],
    ['DEL', 'SP\x7fY'],
    ['escape', '\x1b[31mSPY'],
    ['C1 control', 'SP\u0085Y'],
  ])('resolveSymbol(%s) → InvalidSymbolError, nothing persisted', (_name, sym) => {
    const mapBefore = readFileSync(join(dir, 'symbols.log'))
    const e = (() => {
      try {
        c.resolveSymbol(sym)
      } catch (err) {
        return err
      }
      return undefined
    })()
    expect(e).toBeInstanceOf(InvalidSymbolError)
    expect((e as InvalidSymbolError).code).toBe('ERR_INVALID_SYMBOL')
    expect(c.symbols()).toEqual(['SPY'])
    expect(readFileSync(join(dir, 'symbols.log')).equals(mapBefore)).toBe(true)
    // Hot-path calls given the same string refuse it the same way.
    expect(() => c.markPending(sym, 1, 'optionTrade')).toThrow(InvalidSymbolError)
    expect(() => c.symbolId(sym)).toThrow(InvalidSymbolError)
  })

  it('64 bytes (ASCII or multi-byte) are accepted', () => {
    expect(c.resolveSymbol('A'.repeat(64))).toBe(1)
    expect(c.resolveSymbol('é'.repeat(32))).toBe(2)
    expect(c.symbolName(2)).toBe('é'.repeat(32))
    expect(c.resolveSymbol('BRK.B')).toBe(3)
    expect(c.resolveSymbol('ES 2024-03 C4500')).toBe(4) // inner spaces are fine
  })

  it('a string that is not valid Unicode (lone surrogate) is refused, not silently aliased', () => {
    // (Failed before commit 4a5807a, which fixed it; kept as a regression test.)
    // Regression (this test found the bug; fixed in 4a5807a): 'X\uD800' and 'X\uDC00' are accepted and both stored as 'X\uFFFD' (the
    // binding's UTF-16 → UTF-8 conversion replaces lone surrogates), so two different
    // symbol strings get the same id and symbolName(id) returns a third string.
    let first: number | undefined
    let err: unknown
    try {
      first = c.resolveSymbol('X\uD800')
    } catch (e) {
      err = e
    }
    if (err === undefined) {
      // If accepted, it must at least round-trip and not collide with another string.
      expect(c.symbolName(first!)).toBe('X\uD800')
      expect(c.resolveSymbol('X\uDC00')).not.toBe(first)
    } else {
      expect(err).toBeInstanceOf(InvalidSymbolError)
    }
  })

  it.each([
    ['markPending', () => c.markPending('QQQ', 0, 'optionTrade')],
    ['markPending by id', () => c.markPending(7, 0, 'optionTrade')],
    ['tryMarkPending', () => c.tryMarkPending('QQQ', 0, 'optionTrade')],
    ['symbolId', () => c.symbolId('QQQ')],
    ['symbolName', () => c.symbolName(1)],
    ['getTradeRow', () => c.getTradeRow('QQQ', 0)],
    ['getEnrichmentRow by id', () => c.getEnrichmentRow(1, 0)],
    ['getSlot by id', () => c.getSlot(42, 0, 'greeks')],
    ['setRef', () => c.setRef('QQQ', 0, 'optionTrade', META)],
    ['setGreeksRef by id', () => c.setGreeksRef(3, 0, META)],
    ['clearSlot', () => c.clearSlot('QQQ', 0, 'optionTrade', claim)],
    ['claimNextUnfilled by id', () => c.claimNextUnfilled(9, 0, 'optionTrade', 2)],
    ['nextUnfilledWindow', () => c.nextUnfilledWindow('QQQ', 0, 'optionTrade')],
    ['nextUnfilledWindow by id', () => c.nextUnfilledWindow(9, 0, 'optionTrade')],
    ['forceClear by id', () => c.forceClear(9, 0, 'optionTrade')],
    ['retire', () => c.retire('QQQ', 0, 'optionTrade')],
    ['forceClearRange by id', () => c.forceClearRange(9, { from: 0, to: 3 }, 'optionTrade')],
    ['retireRange', () => c.retireRange('QQQ', { from: 0, to: 3 }, 'optionTrade')],
    ['fillMany', () => c.fillMany([{ symbol: 'QQQ', windowIdx: 0, slotKind: 'optionTrade', meta: META }])],
    ['append', () => store().append({ ...PAYLOAD, symbol: 'QQQ' })],
    ['append by id', () => store().append({ ...PAYLOAD, symbol: 5 })],
  ])('%s of an unknown symbol → UnknownSymbolError, nothing created', (_name, f) => {
    expect(f).toThrow(UnknownSymbolError)
    expect(c.symbols()).toEqual(['SPY'])
    expect(store().length).toBe(0)
    expect(c.slotMetrics()).toEqual(c.recountSlots())
  })

  it('an unknown symbol error carries its code', () => {
    try {
      c.markPending('QQQ', 0, 'optionTrade')
      expect.unreachable()
    } catch (e) {
      expect((e as UnknownSymbolError).code).toBe('ERR_UNKNOWN_SYMBOL')
      expect((e as UnknownSymbolError).name).toBe('UnknownSymbolError')
    }
  })
})

describe('windows out of range → WindowOutOfRangeError', () => {
  it.each([
    ['markPending', () => c.markPending('SPY', WINDOWS, 'optionTrade')],
    ['markPending 2**32-1', () => c.markPending('SPY', 2 ** 32 - 1, 'optionTrade')],
    ['tryMarkPending', () => c.tryMarkPending('SPY', WINDOWS, 'greeks')],
    ['getTradeRow', () => c.getTradeRow('SPY', WINDOWS)],
    ['getEnrichmentRow', () => c.getEnrichmentRow('SPY', WINDOWS + 5)],
    ['getSlot', () => c.getSlot('SPY', WINDOWS, 'rfRate')],
    ['windowMeta', () => c.windowMeta(WINDOWS)],
    ['setRef', () => c.setRef('SPY', WINDOWS, 'optionTrade', META)],
    ['clearSlot', () => c.clearSlot('SPY', WINDOWS, 'optionTrade', claim)],
    ['forceClear', () => c.forceClear('SPY', WINDOWS, 'optionTrade')],
    ['retire', () => c.retire('SPY', WINDOWS, 'optionTrade')],
    ['forceClearRange past the end', () => c.forceClearRange('SPY', { from: 0, to: WINDOWS + 1 }, 'optionTrade')],
    ['retireRange past the end', () => c.retireRange('SPY', { from: 5, to: WINDOWS + 1 }, 'optionTrade')],
    ['fillMany', () => c.fillMany([{ symbol: 'SPY', windowIdx: WINDOWS, slotKind: 'optionTrade', meta: META }])],
    ['append', () => store().append({ ...PAYLOAD, windowIdx: WINDOWS })],
  ])('%s', (_name, f) => {
    let e: unknown
    try {
      f()
    } catch (err) {
      e = err
    }
    expect(e).toBeInstanceOf(WindowOutOfRangeError)
    expect((e as WindowOutOfRangeError).code).toBe('ERR_WINDOW_OUT_OF_RANGE')
    expect(store().length).toBe(0)
    expect(c.slotMetrics()).toEqual(c.recountSlots())
  })

  it('the last window and a range ending at windowCount are fine', () => {
    expect(c.markPending('SPY', WINDOWS - 1, 'optionTrade').version).toBe(1)
    expect(c.retireRange('SPY', { from: WINDOWS - 2, to: WINDOWS }, 'greeks')).toBe(2)
  })
})

describe('artifact paths', () => {
  it.each(['../x', '../../etc/passwd', '/abs', '/tmp/x', 'a/../../x', 'a/b/../../../x', '..', './..', 'a/../../../../../../x'])('%s → PathEscapesStateDirError, nothing written', (p) => {
    const before = readdirSync(dir).sort()
    let e: unknown
    try {
      c.writeArtifact(p, 'payload')
    } catch (err) {
      e = err
    }
    expect(e).toBeInstanceOf(PathEscapesStateDirError)
    expect((e as PathEscapesStateDirError).code).toBe('ERR_PATH_ESCAPES_STATE_DIR')
    expect(readdirSync(dir).sort()).toEqual(before)
    expect(existsSync(join(dir, '..', 'x'))).toBe(false)
    expect(() => c.resolveArtifact(p)).toThrow(PathEscapesStateDirError)
  })

  it('a path that stays inside is written under artifacts/', () => {
    const a = c.writeArtifact('a/b/c.txt', 'hi')
    expect(a.uri).toBe('artifacts/a/b/c.txt')
    expect(readFileSync(join(dir, 'artifacts', 'a', 'b', 'c.txt'), 'utf8')).toBe('hi')
  })
})

describe('close', () => {
  const calls: Case[] = [
    ['resolveSymbol (new)', () => c.resolveSymbol('NEW')],
    ['symbolId (unseen)', () => c.symbolId('NEVER')],
    ['symbolName', () => c.symbolName(0)],
    ['symbols', () => c.symbols()],
    ['markPending', () => c.markPending('SPY', 1, 'optionTrade')],
    ['tryMarkPending', () => c.tryMarkPending('SPY', 1, 'optionTrade')],
    ['renewClaim', () => c.renewClaim(claim)],
    ['setRef', () => c.setRef('SPY', 0, 'optionTrade', META)],
    ['setOptionTradeRef', () => c.setOptionTradeRef('SPY', 0, META)],
    ['clearSlot', () => c.clearSlot('SPY', 0, 'optionTrade', claim)],
    ['getSlot', () => c.getSlot('SPY', 0, 'optionTrade')],
    ['getTradeRow', () => c.getTradeRow('SPY', 0)],
    ['getEnrichmentRow', () => c.getEnrichmentRow('SPY', 0)],
    ['nextUnfilledWindow', () => c.nextUnfilledWindow('SPY', 0, 'optionTrade')],
    ['claimNextUnfilled', () => c.claimNextUnfilled('SPY', 0, 'optionTrade', 1)],
    ['fillMany', () => c.fillMany([{ symbol: 'SPY', windowIdx: 0, slotKind: 'optionTrade', meta: META }])],
    ['forceClear', () => c.forceClear('SPY', 0, 'optionTrade')],
    ['retire', () => c.retire('SPY', 0, 'optionTrade')],
    ['forceClearRange', () => c.forceClearRange('SPY', { from: 0, to: 2 }, 'optionTrade')],
    ['retireRange', () => c.retireRange('SPY', { from: 0, to: 2 }, 'optionTrade')],
    ['windowCount', () => c.windowCount],
    ['windowSpace', () => c.windowSpace],
    ['windowIdxForTimestamp', () => c.windowIdxForTimestamp(0)],
    ['windowMeta', () => c.windowMeta(0)],
    ['slotMetrics', () => c.slotMetrics()],
    ['recountSlots', () => c.recountSlots()],
    ['eventCounts', () => c.eventCounts('trade')],
    ['flush', () => c.flush()],
    ['writeArtifact', () => c.writeArtifact('x', 'y')],
    ['resolveArtifact', () => c.resolveArtifact('artifacts/x')],
    ['store.append', () => c.payloadStores().trades.append(PAYLOAD)],
    ['store.get', () => c.payloadStores().quotes.get(0)],
    ['store.length', () => c.payloadStores().greeks.length],
    ['store iteration', () => [...c.payloadStores().aggregations]],
  ]

  it.each(calls)('%s after close() → ClosedError', (_name, f) => {
    c.close()
    expect(c.closed).toBe(true)
    let e: unknown
    try {
      f()
    } catch (err) {
      e = err
    }
    expect(e).toBeInstanceOf(ClosedError)
    expect((e as ClosedError).code).toBe('ERR_CLOSED')
  })

  it('a store obtained before close() refuses after close()', () => {
    const s = c.payloadStores().rfRate
    c.close()
    expect(() => s.append({ ...PAYLOAD, slotKind: 'rfRate' })).toThrow(ClosedError)
    expect(() => s.length).toThrow(ClosedError)
  })

  it('resolveSymbol / symbolId of a symbol this controller already resolved also refuse after close()', () => {
    // (Failed before commit 4a5807a, which fixed it; kept as a regression test.)
    // Regression (this test found the bug; fixed in 4a5807a): the facade's symbol cache answers before the closed check, so
    // resolveSymbol('SPY') and symbolId('SPY') return 0 on a closed controller
    // instead of throwing ClosedError (every other method throws).
    c.close()
    expect(() => c.resolveSymbol('SPY')).toThrow(ClosedError)
    expect(() => c.symbolId('SPY')).toThrow(ClosedError)
  })

  it('close() twice is fine, and the directory opens again', () => {
    c.close()
    expect(() => c.close()).not.toThrow()
    expect(c.closed).toBe(true)
    const again = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, SCHEDULE))
    extra.push(again.controller)
    expect(again.storageReport.schedule).toBe('same')
    expect(again.controller.getSlot('SPY', 0, 'optionTrade')).toMatchObject({ status: 'Pending', version: 1 })
  })

  it('Symbol.dispose closes the controller', () => {
    const other = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, SCHEDULE)).controller
    expect(other.closed).toBe(false)
    other[Symbol.dispose]()
    expect(other.closed).toBe(true)
    expect(() => other.getSlot('SPY', 0, 'optionTrade')).toThrow(ClosedError)
    expect(() => other[Symbol.dispose]()).not.toThrow()
  })

  it('a `using` declaration closes the controller at the end of its block', () => {
    let ref: WindowSpaceController | undefined
    {
      using scoped = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, SCHEDULE)).controller
      ref = scoped
      expect(scoped.closed).toBe(false)
      expect(scoped.symbolId('SPY')).toBe(0)
    }
    expect(ref.closed).toBe(true)
    expect(() => ref.getTradeRow('SPY', 0)).toThrow(ClosedError)
  })
})

describe('bootstrap on damaged state files', () => {
  function snapshot(at: string): Record<string, string> {
    return Object.fromEntries(
      readdirSync(at)
        .sort()
        .map((f) => [f, createHash('sha256').update(readFileSync(join(at, f))).digest('hex')]),
    )
  }

  /** A directory with a symbol, a filled slot and one record in every store. */
  function populated(): string {
    c.resolveSymbol('QQQ')
    const id = store().append({ ...PAYLOAD, uri: 'artifacts/spy.json' })
    c.setOptionTradeRef('SPY', 0, { ...META, payloadId: id, version: claim.version })
    c.payloadStores().quotes.append({ ...PAYLOAD, slotKind: 'optionQuote' })
    c.payloadStores().aggressor.append({ ...PAYLOAD, slotKind: 'optionAggressor' })
    c.payloadStores().rfRate.append({ ...PAYLOAD, slotKind: 'rfRate' })
    c.payloadStores().greeks.append({ ...PAYLOAD, slotKind: 'greeks' })
    c.payloadStores().aggregations.append({ ...PAYLOAD, slotKind: 'aggregation' })
    const cl = c.markPending('QQQ', 3, 'greeks')
    c.setGreeksRef('QQQ', 3, { ...META, version: cl.version })
    c.close()
    return dir
  }

  const damages: Array<[string, string, (file: string) => void]> = [
    ['garbage trade-ledger.dat', 'trade-ledger.dat', (f) => writeFileSync(f, Buffer.alloc(8192, 0xab))],
    ['trade-ledger.dat overwritten with same-size garbage', 'trade-ledger.dat', (f) => writeFileSync(f, Buffer.alloc(readFileSync(f).length, 0x5a))],
    ['truncated enrichment-ledger.dat header', 'enrichment-ledger.dat', (f) => truncateSync(f, 10)],
    ['empty enrichment-ledger.dat', 'enrichment-ledger.dat', (f) => truncateSync(f, 0)],
    ['symbols.log that is not a symbol log (wrong magic)', 'symbols.log', (f) => {
      const b = readFileSync(f)
      b.write('NOTASYMB', 0)
      writeFileSync(f, b)
    }],
    ['truncated symbols.log header', 'symbols.log', (f) => truncateSync(f, 30)],
    // Records: SPY (id 0) at offset 64, QQQ (id 1) at 88, 24 bytes each; the name at +8.
    ['symbols.log with its two names swapped in place', 'symbols.log', (f) => {
      const b = readFileSync(f)
      expect(b.toString('latin1', 72, 75)).toBe('SPY')
      expect(b.toString('latin1', 96, 99)).toBe('QQQ')
      b.write('QQQ', 72, 'latin1')
      b.write('SPY', 96, 'latin1')
      writeFileSync(f, b)
    }],
    ['symbols.log with one bit flipped in a symbol (SPY → SPX)', 'symbols.log', (f) => {
      const b = readFileSync(f)
      expect(b[74]).toBe(0x59)
      b.writeUInt8(0x58, 74)
      writeFileSync(f, b)
    }],
    ['truncated trades.map header', 'trades.map', (f) => truncateSync(f, 7)],
    ['truncated greeks.map header', 'greeks.map', (f) => truncateSync(f, 20)],
    ['wrong magic in quotes.map', 'quotes.map', (f) => {
      const b = readFileSync(f)
      b.write('NOTAMAP!', 0)
      writeFileSync(f, b)
    }],
    ['invalid JSON in schedule.json', 'schedule.json', (f) => writeFileSync(f, 'not json')],
  ]

  it.each(damages)('%s → CorruptStateError naming %s; the directory is unchanged and opens again once repaired', (_name, file, damage) => {
    populated()
    const path = join(dir, file)
    const backupDir = mkdtempSync(join(tmpdir(), 'ws-bad-backup-'))
    scratch.push(backupDir)
    const backup = join(backupDir, file)
    copyFileSync(path, backup)
    damage(path)
    const before = snapshot(dir)

    let e: unknown
    try {
      extra.push(WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, SCHEDULE)).controller)
    } catch (err) {
      e = err
    }
    expect(e).toBeInstanceOf(CorruptStateError)
    const corrupt = e as CorruptStateError
    expect(corrupt.code).toBe('ERR_CORRUPT_STATE')
    expect(corrupt.file).toBeDefined()
    expect(basename(corrupt.file!)).toBe(file)
    expect(corrupt.details.what).toBeTypeOf('string')
    expect(corrupt.message).toContain(file)
    expect(snapshot(dir)).toEqual(before)

    // The async bootstrap refuses the same way.
    return WindowSpaceController.bootstrapAsync(new WindowSpaceConfig(dir, SCHEDULE)).then(
      (r) => {
        extra.push(r.controller)
        throw new Error('bootstrapAsync opened a damaged directory')
      },
      (err: unknown) => {
        expect(err).toBeInstanceOf(CorruptStateError)
        expect(basename((err as CorruptStateError).file!)).toBe(file)
        expect(snapshot(dir)).toEqual(before)
        // Put the file back: everything is still there.
        copyFileSync(backup, path)
        const { controller } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, SCHEDULE))
        extra.push(controller)
        expect(controller.symbols()).toEqual(['SPY', 'QQQ'])
        expect(controller.getSlot('SPY', 0, 'optionTrade')).toMatchObject({ status: 'Filled', version: 2, payloadId: 0 })
        expect(controller.getSlot('QQQ', 3, 'greeks')).toMatchObject({ status: 'Filled', version: 2 })
        expect(controller.payloadStores().trades.get(0)!.uri).toBe('artifacts/spy.json')
        for (const s of ['trades', 'quotes', 'aggressor', 'rfRate', 'greeks', 'aggregations'] as const) expect(controller.payloadStores()[s].length).toBe(1)
      },
    )
  })

  it('ledger and map damage reports the byte offset', () => {
    populated()
    truncateSync(join(dir, 'trades.map'), 7)
    try {
      extra.push(WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, SCHEDULE)).controller)
      expect.unreachable()
    } catch (e) {
      expect(e).toBeInstanceOf(CorruptStateError)
      expect((e as CorruptStateError).offset).toBe(7)
    }
  })

  it('a symbol record damaged with a good one after it, or a whole last record damaged, is reported at its offset; a last record left unfinished leaves chunks without their symbol', () => {
    populated()
    const f = join(dir, 'symbols.log')
    const b = readFileSync(f)
    b.writeUInt8(b[74]! ^ 1, 74) // SPY's name, record 0 at 64; QQQ's record follows
    writeFileSync(f, b)
    const refusal = (): CorruptStateError => {
      try {
        extra.push(WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, SCHEDULE)).controller)
      } catch (e) {
        expect(e).toBeInstanceOf(CorruptStateError)
        return e as CorruptStateError
      }
      throw new Error('the bootstrap opened a damaged directory')
    }
    const first = refusal()
    expect(first.offset).toBe(64)
    expect(first.message).toContain('record checksum mismatch')
    // A flipped bit in the whole last record (QQQ's, at 88) is damage too:
    // cutting it would give QQQ's id to the next symbol.
    b.writeUInt8(b[74]! ^ 1, 74)
    b.writeUInt8(b[98]! ^ 1, 98)
    writeFileSync(f, b)
    const second = refusal()
    expect(second.offset).toBe(88)
    // A last record ending in zeros (a write that did not finish) is a torn
    // tail; QQQ's chunk then has no symbol.
    b.writeUInt8(b[98]! ^ 1, 98)
    b.fill(0, b.length - 8)
    writeFileSync(f, b)
    const third = refusal()
    expect(basename(third.file!)).toBe('symbols.log')
    expect(third.details).toMatchObject({ symbols: 1, highestSymbolId: 1 })
  })
})
