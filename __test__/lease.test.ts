// Leases across processes: a claim whose holder keeps renewing it is never
// taken over, one whose holder stopped renewing is taken over once its lease
// expires, and the holder's late fill of a taken-over slot is refused.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

import { SlotBusyError, VersionConflictError, WindowSpace, WindowSpaceConfig, WindowSpaceController } from '../src/index'

const LEASE_MS = 1500
const dir = mkdtempSync(join(tmpdir(), 'ws-lease-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('leases across processes', () => {
  it('a renewed claim is not taken over; an abandoned one is, and its holder then conflicts', async () => {
    const { controller: c } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: 10 })))
    c.resolveSymbol('LEASE')
    const child = spawn(process.execPath, [join(__dirname, 'fixtures', 'lease-holder.mjs'), JSON.stringify({ stateDir: dir, windows: 10, leaseMs: LEASE_MS })], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    try {
      const held = await new Promise<{ renewed: number; abandoned: number }>((resolve) => child.stdout.once('data', (d) => resolve(JSON.parse(String(d)) as { renewed: number; abandoned: number })))
      // Three lease lengths later the renewed claim is still live, the abandoned one expired.
      await sleep(3 * LEASE_MS)
      expect(() => c.markPending('LEASE', 0, 'optionTrade')).toThrow(SlotBusyError)
      const renewedSlot = c.getSlot('LEASE', 0, 'optionTrade')
      expect(renewedSlot.version).toBe(held.renewed) // renewal does not change the version
      expect(renewedSlot.leaseExpiresAt!).toBeGreaterThan(Date.now())
      const takeover = c.markPending('LEASE', 1, 'optionTrade')
      expect(takeover.version).toBe(held.abandoned + 1)
      expect(c.eventCounts('trade').takeovers).toBe(1)
      // The old holder's fill of the taken-over slot is refused with the slot as it is now.
      const id = c.payloadStores().trades.append({ symbol: 'LEASE', windowIdx: 1, slotKind: 'optionTrade', payloadType: 'Json', uri: 'late', checksum: 1n, size: 1 })
      let err: unknown
      try {
        c.setOptionTradeRef('LEASE', 1, { payloadType: 'Json', payloadId: id, version: held.abandoned, checksum: 1n })
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(VersionConflictError)
      expect((err as VersionConflictError).slot).toMatchObject({ status: 'Pending', version: takeover.version })
    } finally {
      child.kill('SIGKILL')
      c.close()
    }
  })
})
