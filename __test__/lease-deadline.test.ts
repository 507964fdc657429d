// A claim's leaseExpiresAt is exactly the deadline the core wrote into the
// slot, for single claims and the batch claims, so a holder that trusts it
// is never taken over while it believes it still holds the claim: every
// takeover happens at a core time (the taker's own deadline in the slot
// minus its lease) no earlier than the holder's leaseExpiresAt.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { WindowSpace, WindowSpaceConfig, WindowSpaceController, type Claim } from '../src/index'

const SHORT = 2 // ms: holders' leases, so that takeovers come quickly
const TAKER = 60_000 // ms: the taker's lease
const dir = mkdtempSync(join(tmpdir(), 'ws-lease-deadline-'))
let c: WindowSpaceController
beforeAll(() => {
  c = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: 5000 }))).controller
  for (const s of ['ONE', 'RENEW', 'BATCH', 'READY']) c.resolveSymbol(s)
})
afterAll(() => {
  c.close()
  rmSync(dir, { recursive: true, force: true })
})

/** The deadline the core wrote into the claim's slot. */
const deadlineInSlot = (claim: Claim) => c.getSlot(claim.symbolId, claim.windowIdx, claim.slotKind).leaseExpiresAt

/** Takes over `held` as soon as its lease has expired (spinning until the claim succeeds). */
function takeOver(held: Claim): Claim {
  for (;;) {
    const t = c.tryMarkPending(held.symbolId, held.windowIdx, held.slotKind, { leaseMs: TAKER })
    if (t !== null) return t
  }
}

/** The core's clock when `taker` was granted: its deadline in the slot minus its lease. */
const grantedAt = (taker: Claim) => deadlineInSlot(taker)! - TAKER

describe('claim.leaseExpiresAt', () => {
  it('markPending: is the deadline in the slot, and no takeover comes before it (400 claims)', () => {
    for (let w = 0; w < 400; w++) {
      const held = c.markPending('ONE', w, 'optionTrade', { leaseMs: SHORT })
      expect(held.leaseExpiresAt).toBe(deadlineInSlot(held))
      const taker = takeOver(held)
      expect(taker.version).toBe(held.version + 1)
      expect(taker.leaseExpiresAt).toBe(deadlineInSlot(taker))
      expect(grantedAt(taker)).toBeGreaterThanOrEqual(held.leaseExpiresAt)
    }
  })

  it('renewClaim: the renewed claim carries the new deadline in the slot', () => {
    const held = c.markPending('RENEW', 0, 'optionTrade', { leaseMs: 50_000 })
    for (let i = 0; i < 50; i++) {
      const renewed = c.renewClaim(held, { leaseMs: 40_000 + i })
      expect(renewed.leaseExpiresAt).toBe(deadlineInSlot(renewed))
    }
  })

  it('claimNextUnfilled: every claim of a batch carries its own slot deadline, also when it takes over', () => {
    c.retireRange('BATCH', { from: 200, to: 5000 }, 'optionQuote') // only windows 0..199 can be claimed
    let held = c.claimNextUnfilled('BATCH', 0, 'optionQuote', 200, { leaseMs: SHORT })
    expect(held.length).toBe(200)
    for (const h of held) expect(h.leaseExpiresAt).toBe(deadlineInSlot(h))
    for (let round = 0; round < 3; round++) {
      let taken: Claim[] = []
      while (taken.length === 0) taken = c.claimNextUnfilled('BATCH', 0, 'optionQuote', 200, { leaseMs: round < 2 ? SHORT : TAKER })
      const byWindow = new Map(held.map((h) => [h.windowIdx, h]))
      for (const t of taken) {
        expect(t.leaseExpiresAt).toBe(deadlineInSlot(t))
        const before = byWindow.get(t.windowIdx)!
        expect(t.version).toBe(before.version + 1)
        // The core's clock at this takeover: the taker's deadline minus its lease.
        expect(t.leaseExpiresAt - (round < 2 ? SHORT : TAKER)).toBeGreaterThanOrEqual(before.leaseExpiresAt)
      }
      held = held.map((h) => taken.find((t) => t.windowIdx === h.windowIdx) ?? h)
    }
  })

  it('claimNextReady: every claim of a batch carries its own slot deadline, also when it takes over', () => {
    for (let w = 0; w < 150; w++) {
      const q = c.markPending('READY', w, 'optionQuote')
      const id = c.payloadStores().quotes.append({ symbol: 'READY', windowIdx: w, slotKind: 'optionQuote', payloadType: 'Binary', uri: `artifacts/q/${w}`, checksum: 1n, size: 1 })
      c.setRef('READY', w, 'optionQuote', { payloadType: 'Binary', payloadId: id, version: q.version, checksum: 1n })
    }
    const held = c.claimNextReady('READY', 0, ['optionQuote'], 'greeks', 150, { leaseMs: SHORT })
    expect(held.length).toBe(150)
    for (const h of held) expect(h.leaseExpiresAt).toBe(deadlineInSlot(h))
    let taken: Claim[] = []
    while (taken.length < held.length) taken = taken.concat(c.claimNextReady('READY', 0, ['optionQuote'], 'greeks', 150, { leaseMs: TAKER }))
    for (const t of taken) {
      const before = held.find((h) => h.windowIdx === t.windowIdx)!
      expect(t.leaseExpiresAt).toBe(deadlineInSlot(t))
      expect(grantedAt(t)).toBeGreaterThanOrEqual(before.leaseExpiresAt)
    }
  })
})
