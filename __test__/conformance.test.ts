// The Ledger contract, run unchanged against both backends: the mmap ledger
// (`controller.asLedger()`) and the PostgreSQL ledger
// (`WindowSpaceController.connect`) on a throwaway server. Where the
// backends differ by design (payload ids dense or only increasing), the test
// asserts what both promise.
import { afterAll, describe, expect, it } from 'vitest'

import {
  ClosedError,
  SlotBusyError,
  SlotFilledError,
  SlotRetiredError,
  UnknownPayloadError,
  UnknownSymbolError,
  VersionConflictError,
  WaitTimeoutError,
  WindowOutOfRangeError,
  type Claim,
  type Ledger,
  type LedgerChange,
} from '../src/index'
import { BACKENDS } from './support/backends'

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p
  } catch (e) {
    return e
  }
  throw new Error('expected the promise to reject')
}

/** Appends a payload for (symbol, window) of optionTrade and fills the claim with it. */
async function publish(l: Ledger, symbol: string, claim: Claim, checksum = 7n): Promise<number> {
  const payloadId = await l.appendPayload('trades', { symbol, windowIdx: claim.windowIdx, slotKind: 'optionTrade', payloadType: 'Json', uri: `artifacts/${symbol}/${claim.windowIdx}`, checksum, size: 10 })
  return l.fill(symbol, claim.windowIdx, 'optionTrade', { payloadType: 'Json', payloadId, version: claim.version, checksum })
}

describe.each(BACKENDS)('the Ledger contract on the $name backend', (backend) => {
  afterAll(() => backend.cleanup())

  it('claim, fill and read back; a second claim is refused by status', async () => {
    const l = await backend.open(16)
    expect(l.backend).toBe(backend.name)
    expect(l.windowCount).toBe(16)
    const spy = await l.resolveSymbol('SPY')
    expect(await l.resolveSymbol('SPY')).toBe(spy)
    expect(await l.symbolId('SPY')).toBe(spy)
    const claim = await l.claim('SPY', 3, 'optionTrade', { leaseMs: 60_000 })
    expect(claim).toMatchObject({ symbolId: spy, windowIdx: 3, version: 1 })
    expect(claim.leaseExpiresAt).toBeGreaterThan(Date.now() - 5_000)
    expect(await rejection(l.claim('SPY', 3, 'optionTrade'))).toBeInstanceOf(SlotBusyError)
    expect(await l.tryClaim('SPY', 3, 'optionTrade')).toBeNull()
    const pending = await l.getSlot('SPY', 3, 'optionTrade')
    expect(pending.status).toBe('Pending')
    expect(pending.leaseExpiresAt).toBe(claim.leaseExpiresAt)
    const v = await publish(l, 'SPY', claim, 0xfedcba9876543210n)
    expect(v).toBe(2)
    const filled = await l.getSlot(spy, 3, 'optionTrade')
    expect(filled).toMatchObject({ status: 'Filled', version: 2, checksum: 0xfedcba9876543210n, leaseExpiresAt: null })
    const record = await l.getPayload('trades', filled.payloadId)
    expect(record).toMatchObject({ payloadId: filled.payloadId, symbolId: spy, windowIdx: 3, slotKind: 'optionTrade', uri: 'artifacts/SPY/3', checksum: 0xfedcba9876543210n, size: 10 })
    const again = await rejection(l.claim('SPY', 3, 'optionTrade'))
    expect(again).toBeInstanceOf(SlotFilledError)
    expect((again as SlotFilledError).code).toBe('ERR_SLOT_FILLED')
  })

  it('a fill or clear at a stale version is a VersionConflictError carrying the slot as it is', async () => {
    const l = await backend.open(8)
    await l.resolveSymbol('QQQ')
    const first = await l.claim('QQQ', 0, 'optionTrade')
    expect(await l.clear('QQQ', 0, 'optionTrade', first)).toBe(2)
    expect((await l.getSlot('QQQ', 0, 'optionTrade')).status).toBe('Cleared')
    const second = await l.claim('QQQ', 0, 'optionTrade')
    expect(second.version).toBe(3)
    const stale = await rejection(publish(l, 'QQQ', first))
    expect(stale).toBeInstanceOf(VersionConflictError)
    expect((stale as VersionConflictError).code).toBe('ERR_VERSION_CONFLICT')
    expect((stale as VersionConflictError).slot).toMatchObject({ status: 'Pending', version: 3 })
    expect(await rejection(l.clear('QQQ', 0, 'optionTrade', first))).toBeInstanceOf(VersionConflictError)
    expect(await publish(l, 'QQQ', second)).toBe(4)
  })

  it('an expired lease is taken over with a higher version, and the old holder is fenced off', async () => {
    const l = await backend.open(8)
    await l.resolveSymbol('IWM')
    const old = await l.claim('IWM', 5, 'optionTrade', { leaseMs: 0 })
    const taken = await l.claim('IWM', 5, 'optionTrade', { leaseMs: 60_000 })
    expect(taken.version).toBe(old.version + 1)
    expect(await rejection(l.renew(old))).toBeInstanceOf(VersionConflictError)
    expect(await rejection(publish(l, 'IWM', old))).toBeInstanceOf(VersionConflictError)
    const renewed = await l.renew(taken, { leaseMs: 120_000 })
    expect(renewed.version).toBe(taken.version)
    expect(renewed.leaseExpiresAt).toBeGreaterThan(taken.leaseExpiresAt)
    expect((await l.getSlot('IWM', 5, 'optionTrade')).version).toBe(taken.version)
    expect(await publish(l, 'IWM', renewed)).toBe(taken.version + 1)
  })

  it('batch claims skip Filled, Retired and busy windows; batch fills refuse stale items one by one', async () => {
    const l = await backend.open(12)
    await l.resolveSymbol('DIA')
    await publish(l, 'DIA', await l.claim('DIA', 1, 'optionTrade'))
    await l.retire('DIA', 2, 'optionTrade')
    await l.claim('DIA', 3, 'optionTrade', { leaseMs: 60_000 })
    expect(await l.nextUnfilledWindow('DIA', 1, 'optionTrade')).toBe(3)
    const claims = await l.claimNextUnfilled('DIA', 0, 'optionTrade', 4, { leaseMs: 60_000 })
    expect(claims.map((c) => c.windowIdx)).toEqual([0, 4, 5, 6])
    const ids = await Promise.all(claims.map((c) => l.appendPayload('trades', { symbol: 'DIA', windowIdx: c.windowIdx, slotKind: 'optionTrade', payloadType: 'Json', uri: `u${c.windowIdx}`, checksum: 1n, size: 1 })))
    const results = await l.fillMany(
      claims.map((c, i) => ({ symbol: 'DIA', windowIdx: c.windowIdx, slotKind: 'optionTrade', meta: { payloadType: 'Json', payloadId: ids[i]!, version: i === 2 ? c.version + 7 : c.version, checksum: 1n } })),
    )
    expect(results.map((r) => r.ok)).toEqual([true, true, false, true])
    const refused = results[2]!
    expect(refused.ok === false && refused.error).toBeInstanceOf(VersionConflictError)
    expect(await l.nextUnfilledWindow('DIA', 0, 'optionTrade')).toBe(3)
    expect(await l.claimNextUnfilled('DIA', 12, 'optionTrade', 3)).toEqual([])
    const rows = await l.rows('DIA', { from: 0, to: 3 }, 'trade')
    expect(rows.map((r) => r.optionTrade.status)).toEqual(['Filled', 'Filled', 'Retired'])
    expect(rows.map((r) => r.rfRate.status)).toEqual(['Empty', 'Empty', 'Empty'])
    expect(rows[0]!.windowIdx).toBe(0)
  })

  it('a batch fill naming one slot twice credits the fill to the item whose claim version is current', async () => {
    const l = await backend.open(4)
    await l.resolveSymbol('GLD')
    const stale = await l.claim('GLD', 1, 'optionTrade')
    await l.clear('GLD', 1, 'optionTrade', stale)
    const live = await l.claim('GLD', 1, 'optionTrade')
    const id = await l.appendPayload('trades', { symbol: 'GLD', windowIdx: 1, slotKind: 'optionTrade', payloadType: 'Json', uri: 'gld', checksum: 5n, size: 1 })
    const item = (version: number) => ({ symbol: 'GLD', windowIdx: 1, slotKind: 'optionTrade' as const, meta: { payloadType: 'Json' as const, payloadId: id, version, checksum: 5n } })
    const results = await l.fillMany([item(stale.version), item(live.version)])
    expect(results.map((r) => r.ok)).toEqual([false, true])
    expect(results[0]!.ok === false && results[0]!.error).toBeInstanceOf(VersionConflictError)
    expect(await l.getSlot('GLD', 1, 'optionTrade')).toMatchObject({ status: 'Filled', version: live.version + 1, payloadId: id })
  })

  it('payload ids are unique and increasing; an unknown id reads null and cannot be filled in', async () => {
    const l = await backend.open(4)
    await l.resolveSymbol('TLT')
    const ids: number[] = []
    for (let i = 0; i < 5; i++) ids.push(await l.appendPayload('trades', { symbol: 'TLT', windowIdx: 0, slotKind: 'optionTrade', payloadType: 'Json', uri: `p${i}`, checksum: BigInt(i), size: i }))
    for (let i = 1; i < ids.length; i++) expect(ids[i]!).toBeGreaterThan(ids[i - 1]!)
    expect(await l.getPayload('trades', ids[4]! + 1_000_000)).toBeNull()
    const c = await l.claim('TLT', 0, 'optionTrade')
    const err = await rejection(l.fill('TLT', 0, 'optionTrade', { payloadType: 'Json', payloadId: ids[4]! + 1_000_000, version: c.version, checksum: 1n }))
    expect(err).toBeInstanceOf(UnknownPayloadError)
    expect((await l.getSlot('TLT', 0, 'optionTrade')).status).toBe('Pending')
  })

  it('unknown symbols and windows out of range are typed errors', async () => {
    const l = await backend.open(4)
    await l.resolveSymbol('GLD')
    expect(await rejection(l.claim('NOPE', 0, 'optionTrade'))).toBeInstanceOf(UnknownSymbolError)
    expect(await rejection(l.symbolId('NOPE'))).toBeInstanceOf(UnknownSymbolError)
    expect(await rejection(l.claim(4242, 0, 'optionTrade'))).toBeInstanceOf(UnknownSymbolError)
    expect(await rejection(l.claim('GLD', 4, 'optionTrade'))).toBeInstanceOf(WindowOutOfRangeError)
    expect(await rejection(l.getSlot('GLD', 99, 'greeks'))).toBeInstanceOf(WindowOutOfRangeError)
  })

  it('admin calls: force-clear, retire, ranges; the audit trail names actor and reason', async () => {
    const l = await backend.open(10)
    await l.resolveSymbol('XLE')
    const c = await l.claim('XLE', 0, 'greeks')
    await l.appendPayload('greeks', { symbol: 'XLE', windowIdx: 0, slotKind: 'greeks', payloadType: 'Json', uri: 'g', checksum: 1n, size: 1 })
    expect(await l.forceClear('XLE', 0, 'greeks', { actor: 'ops', reason: 'bad input' })).toEqual({ from: 'Pending', to: 'Cleared', version: c.version + 1 })
    expect(await l.forceClear('XLE', 1, 'greeks')).toEqual({ from: 'Empty', to: 'Empty', version: 0 })
    expect(await l.retire('XLE', 1, 'greeks', { actor: 'ops', reason: 'holiday' })).toEqual({ from: 'Empty', to: 'Retired', version: 1 })
    expect(await l.retire('XLE', 1, 'greeks')).toEqual({ from: 'Retired', to: 'Retired', version: 1 })
    expect(await rejection(l.forceClear('XLE', 1, 'greeks'))).toBeInstanceOf(SlotRetiredError)
    expect(await rejection(l.claim('XLE', 1, 'greeks'))).toBeInstanceOf(SlotRetiredError)
    await l.claim('XLE', 2, 'greeks')
    await l.claim('XLE', 3, 'greeks')
    expect(await l.forceClearRange('XLE', { from: 0, to: 5 }, 'greeks')).toBe(2)
    expect(await l.retireRange('XLE', { from: 4, to: 8 }, 'greeks')).toBe(4)
    expect(await l.retireRange('XLE', { from: 4, to: 8 }, 'greeks')).toBe(0)
    const m = (await l.slotMetrics()).find((x) => x.slot === 'greeks')!
    expect(m.counts).toEqual({ Empty: 2, Pending: 0, Filled: 0, Cleared: 3, Retired: 5 })
    const trail = await l.audit()
    expect(trail.find((e) => e.action === 'forceClear' && e.windowIdx === 0)).toMatchObject({ actor: 'ops', reason: 'bad input', slotKind: 'greeks' })
    expect(trail.find((e) => e.action === 'retire' && e.windowIdx === 1)).toMatchObject({ actor: 'ops', reason: 'holiday' })
  })

  it('isReady and waitFor see fills made by another caller; waitFor rejects on Retired and on timeout', async () => {
    const l = await backend.open(8)
    await l.resolveSymbol('XLF')
    expect(await l.isReady('XLF', 0, ['optionTrade'])).toBe(false)
    const waiting = l.waitFor('XLF', 0, ['optionTrade'])
    const c = await l.claim('XLF', 0, 'optionTrade')
    await publish(l, 'XLF', c)
    const slots = await waiting
    expect(slots[0]).toMatchObject({ status: 'Filled', version: 2 })
    expect(await l.isReady('XLF', 0, ['optionTrade'])).toBe(true)
    // The rejection is taken at once: it may come before retire() returns.
    const retired = rejection(l.waitFor('XLF', 1, ['optionTrade', 'greeks']))
    await l.retire('XLF', 1, 'greeks')
    expect(await retired).toBeInstanceOf(SlotRetiredError)
    expect(await rejection(l.waitFor('XLF', 2, ['optionTrade'], { timeoutMs: 50 }))).toBeInstanceOf(WaitTimeoutError)
  })

  it('after close every call rejects with ClosedError; closing again is harmless', async () => {
    const l = await backend.open(4)
    await l.resolveSymbol('EEM')
    await l.close()
    await l.close()
    expect(await rejection(l.claim('EEM', 0, 'optionTrade'))).toBeInstanceOf(ClosedError)
    expect(await rejection(l.getSlot('EEM', 0, 'optionTrade'))).toBeInstanceOf(ClosedError)
    expect(await rejection(l.slotMetrics())).toBeInstanceOf(ClosedError)
  })

  it('watch yields every change after a position, each slot in version order, and resumes from a change', async () => {
    const l = await backend.open(8)
    await l.resolveSymbol('XLK')
    const start = await l.head()
    const c0 = await l.claim('XLK', 0, 'optionTrade')
    await publish(l, 'XLK', c0)
    const c1 = await l.claim('XLK', 1, 'optionTrade')
    await l.clear('XLK', 1, 'optionTrade', c1)
    const w = l.watch({ after: start, symbols: ['XLK'] })
    const got: LedgerChange[] = []
    for await (const ch of w) {
      got.push(ch)
      if (got.length === 4) break
    }
    expect(got.map((g) => [g.windowIdx, g.to, g.version])).toEqual([
      [0, 'Pending', 1],
      [0, 'Filled', 2],
      [1, 'Pending', 1],
      [1, 'Cleared', 2],
    ])
    expect(got[1]!.payloadId).not.toBeNull()
    const resumed = l.watch({ after: got[1]!.position, symbols: ['XLK'] })
    const next = await resumed.next()
    expect(next.value).toMatchObject({ windowIdx: 1, to: 'Pending', version: 1 })
    const later = resumed.next()
    await l.claim('XLK', 2, 'optionTrade')
    // The clear of window 1 comes first, then the new claim.
    expect((await later).value).toMatchObject({ windowIdx: 1, to: 'Cleared' })
    expect((await resumed.next()).value).toMatchObject({ windowIdx: 2, to: 'Pending', version: 1 })
    resumed.close()
  })
})
