// The async calls and their group commit (core durability.rs): in the 'sync'
// mode, async calls waiting at the same time share rounds of fdatasync/msync;
// they assign ids and versions in call order, reject with the same typed
// errors as the plain calls, and what they acknowledged survives a restart.
// In the 'buffered' mode they owe nothing.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import {
  ClosedError,
  SlotBusyError,
  UnknownPayloadError,
  VersionConflictError,
  WindowSpace,
  WindowSpaceConfig,
  WindowSpaceController,
  type Durability,
} from '../src/index'

const WINDOWS = 400
const SCHEDULE = WindowSpace.uniform({ origin: 1_700_000_000_000, windowDuration: 60_000, windowCount: WINDOWS })

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ws-group-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

function open(durability: Durability): WindowSpaceController {
  const { controller } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, SCHEDULE, { durability }))
  controller.resolveSymbol('SPY')
  return controller
}

type Progress = { issued: number; durable: number; rounds: number }

/** One engine pass over `n` windows with async calls only, all in flight at once. */
async function fillAsync(c: WindowSpaceController, n: number): Promise<number[]> {
  const spy = c.resolveSymbol('SPY')
  const claims = await c.claimNextUnfilledAsync(spy, 0, 'optionTrade', n)
  expect(claims.map((x) => x.windowIdx)).toEqual([...Array(n).keys()])
  const trades = c.payloadStores().trades
  const ids = await Promise.all(
    claims.map((cl) =>
      trades.appendAsync({ symbol: spy, windowIdx: cl.windowIdx, slotKind: 'optionTrade', payloadType: 'Json', uri: `a/${cl.windowIdx}`, checksum: BigInt(cl.windowIdx) * 7n, size: 1 }),
    ),
  )
  await Promise.all(
    claims.map((cl, i) => c.setRefAsync(spy, cl.windowIdx, 'optionTrade', { payloadType: 'Json', payloadId: ids[i]!, version: cl.version, checksum: BigInt(cl.windowIdx) * 7n })),
  )
  return ids
}

describe.each(['sync', 'buffered'] as const)('async calls in the %s mode', (durability) => {
  it('assign dense ids in call order, fill every slot, and survive a restart', async () => {
    const c = open(durability)
    const ids = await fillAsync(c, 100)
    expect(ids).toEqual([...Array(100).keys()])
    c.close()
    const again = open(durability)
    for (let w = 0; w < 100; w++) {
      const slot = again.getTradeRow('SPY', w).optionTrade
      expect(slot.status).toBe('Filled')
      expect(slot.payloadId).toBe(w)
      expect(slot.checksum).toBe(BigInt(w) * 7n)
    }
    expect(again.payloadStores().trades.length).toBe(100)
    again.close()
  })

  it('reject with the typed error of the plain call, and change nothing', async () => {
    const c = open(durability)
    const claim = await c.markPendingAsync('SPY', 3, 'greeks')
    await expect(c.markPendingAsync('SPY', 3, 'greeks')).rejects.toBeInstanceOf(SlotBusyError)
    await expect(c.setRefAsync('SPY', 3, 'greeks', { payloadType: 'Json', payloadId: 0, version: claim.version, checksum: 1n })).rejects.toBeInstanceOf(UnknownPayloadError)
    await expect(c.clearSlotAsync('SPY', 3, 'greeks', { version: claim.version + 1 })).rejects.toBeInstanceOf(VersionConflictError)
    await expect(c.markPendingAsync('SPY', 3, 'greeks', { leaseMs: Number.NaN })).rejects.toBeInstanceOf(RangeError)
    expect(c.getSlot('SPY', 3, 'greeks')).toMatchObject({ status: 'Pending', version: claim.version })
    expect(await c.clearSlotAsync('SPY', 3, 'greeks', claim)).toBe(claim.version + 1)
    const filled = await c.fillManyAsync([])
    expect(filled).toEqual([])
    c.close()
    await expect(c.markPendingAsync('SPY', 4, 'greeks')).rejects.toBeInstanceOf(ClosedError)
    await expect(c.payloadStores().greeks.appendAsync({ symbol: 0, windowIdx: 0, slotKind: 'greeks', payloadType: 'Json', uri: 'x', checksum: 0n, size: 0 })).rejects.toBeInstanceOf(ClosedError)
  })
})

describe('group commit', () => {
  it('in the sync mode, a batch that fails part way still makes what it changed durable before it rejects', async () => {
    const c = open('sync')
    const claims = c.claimNextUnfilled('SPY', 0, 'greeks', 2)
    const id = c.payloadStores().greeks.append({ symbol: 'SPY', windowIdx: 0, slotKind: 'greeks', payloadType: 'Json', uri: 'g', checksum: 1n, size: 1 })
    const before = c.groupCommitProgress()
    // The second item names a payload id its table does not hold: the batch stops there with an
    // error, after the first item was filled.
    const items = [
      { symbol: 'SPY', windowIdx: claims[0]!.windowIdx, slotKind: 'greeks' as const, meta: { payloadType: 'Json' as const, payloadId: id, version: claims[0]!.version, checksum: 1n } },
      { symbol: 'SPY', windowIdx: claims[1]!.windowIdx, slotKind: 'greeks' as const, meta: { payloadType: 'Json' as const, payloadId: id + 99, version: claims[1]!.version, checksum: 1n } },
    ]
    await expect(c.fillManyAsync(items)).rejects.toBeInstanceOf(UnknownPayloadError)
    expect(c.getSlot('SPY', claims[0]!.windowIdx, 'greeks').status).toBe('Filled')
    const after = c.groupCommitProgress()
    expect(after.issued).toBe(before.issued + 1)
    expect(after.durable).toBe(after.issued)
    c.close()
  })

  it('in the sync mode, makes every awaited call durable', async () => {
    const c = open('sync')
    await fillAsync(c, 200)
    const p = c.groupCommitProgress()
    // 1 batch claim + 200 appends + 200 fills, each owing a sync.
    expect(p.issued).toBe(401)
    expect(p.durable).toBe(p.issued)
    expect(p.rounds).toBeGreaterThan(0)
    expect(p.rounds).toBeLessThanOrEqual(p.issued)
    c.close()
  })

  it('in the sync mode, covers every call issued before a commit starts with that one round', () => {
    // How many calls share a round otherwise depends on how fast the disk
    // syncs against how fast calls come; this makes the interleaving certain.
    const fifo = join(dir, 'pool-gate')
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0)
    const stateDir = join(dir, 'state')
    const r = spawnSync(process.execPath, [join(__dirname, 'fixtures', 'group-commit-held-pool.mjs'), JSON.stringify({ stateDir, fifo, n: 200 })], {
      encoding: 'utf8',
      env: { ...process.env, UV_THREADPOOL_SIZE: '1' },
    })
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const out = JSON.parse(r.stdout) as { before: Progress; issued: Progress; after: Progress; ids: number[] }
    expect(out.ids).toEqual([...Array(200).keys()])
    expect(out.issued.issued - out.before.issued).toBe(200)
    expect(out.issued.durable).toBe(out.before.durable) // nothing could commit while the pool was held
    expect(out.after.durable).toBe(out.after.issued)
    expect(out.after.rounds - out.before.rounds).toBe(1)
  })

  it('in the buffered mode, owes nothing', async () => {
    const c = open('buffered')
    await fillAsync(c, 20)
    expect(c.groupCommitProgress()).toEqual({ issued: 0, durable: 0, rounds: 0 })
    c.close()
  })

  it('leaves plain calls synchronous and durable on their own, between async ones', async () => {
    const c = open('sync')
    const pending = c.markPendingAsync('SPY', 0, 'rfRate')
    const plain = c.markPending('SPY', 1, 'rfRate') // not deferred: synced before it returned
    await pending
    const p = c.groupCommitProgress()
    expect(p.issued).toBe(1)
    expect(p.durable).toBe(1)
    expect(c.getSlot('SPY', 1, 'rfRate').version).toBe(plain.version)
    c.close()
  })
})
