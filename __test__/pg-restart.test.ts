// The PostgreSQL server restarted (immediate mode: its backends are killed,
// as in a crash) under an open ledger: calls fail with ConnectionError or
// succeed on a new connection, what was acknowledged before is there after,
// and a Filled slot is not filled again.
import { afterAll, describe, expect, it } from 'vitest'

import { startPgServer, type PgServer } from '../scripts/pg-server.mjs'
import { ConnectionError, SlotFilledError, WindowSpaceController } from '../src/index'
import { schedule } from './support/backends'

let server: PgServer | undefined
afterAll(() => server?.stop())

describe('a PostgreSQL server restart under an open ledger', () => {
  it('gives ConnectionError or a fresh connection, loses nothing acknowledged, fills nothing twice', async () => {
    server = await startPgServer({ port: 5433 })
    const l = await WindowSpaceController.connect(server.url, { windowSpace: schedule(8), space: 'restart', connections: 2 })
    try {
      await l.resolveSymbol('RST')
      const c = await l.claim('RST', 0, 'optionTrade')
      const payloadId = await l.appendPayload('trades', { symbol: 'RST', windowIdx: 0, slotKind: 'optionTrade', payloadType: 'Json', uri: 'a', checksum: 3n, size: 1 })
      expect(await l.fill('RST', 0, 'optionTrade', { payloadType: 'Json', payloadId, version: c.version, checksum: 3n })).toBe(2)
      const pending = await l.claim('RST', 1, 'optionTrade', { leaseMs: 600_000 })

      server.restart()

      // Every call either fails with ConnectionError or works on a new connection.
      const failures: unknown[] = []
      let slot
      for (let i = 0; i < 20 && slot === undefined; i++) {
        try {
          slot = await l.getSlot('RST', 0, 'optionTrade')
        } catch (e) {
          failures.push(e)
        }
      }
      for (const f of failures) expect(f).toBeInstanceOf(ConnectionError)
      expect(slot).toMatchObject({ status: 'Filled', version: 2, payloadId, checksum: 3n })
      expect(await l.getSlot('RST', 1, 'optionTrade')).toMatchObject({ status: 'Pending', version: pending.version })
      let again: unknown
      try {
        await l.claim('RST', 0, 'optionTrade')
      } catch (e) {
        again = e
      }
      expect(again).toBeInstanceOf(SlotFilledError)
    } finally {
      await l.close()
    }
  })
})
