// A statement the server rolls back for a deadlock is run again: an engine's
// batch fill caught in a lock cycle with another session (which waits far
// longer before it checks for deadlocks, so the engine's statement is the
// one rolled back) still fills every slot once, and the change feed holds
// each fill once.
import { afterAll, describe, expect, it } from 'vitest'

import { WindowSpaceController, type Ledger, type LedgerChange } from '../src/index'
import { pgClient, pgUrl, schedule, uniqueSpace } from './support/backends'

const opened: { close(): Promise<unknown> | void }[] = []
afterAll(async () => {
  for (const o of opened.reverse()) await o.close()
})

describe('statements rolled back by the server', () => {
  it('a batch fill chosen as a deadlock victim is run again and fills each slot once', async () => {
    const space = uniqueSpace('retry')
    const l: Ledger = await WindowSpaceController.connect(pgUrl(), { windowSpace: schedule(16), space })
    opened.push(l)
    const raw = await pgClient()
    const probe = await pgClient()
    opened.push({ close: () => raw.end() }, { close: () => probe.end() })
    const sym = await l.resolveSymbol('DEAD')
    const payloadId = await l.appendPayload('trades', { symbol: 'DEAD', windowIdx: 0, slotKind: 'optionTrade', payloadType: 'Json', uri: 'mem://dead', checksum: 9n, size: 1 })
    const claims = [await l.claim('DEAD', 0, 'optionTrade'), await l.claim('DEAD', 1, 'optionTrade')]
    const start = await l.head()
    const lockSql = 'SELECT 1 FROM ws_slots t JOIN ws_spaces s ON s.id = t.space WHERE s.name = $1 AND t.window_idx = $2 FOR UPDATE OF t'
    const deadlocks = async () => Number((await probe.query<{ n: string }>('SELECT deadlocks AS n FROM pg_stat_database WHERE datname = current_database()')).rows[0]!.n)
    const before = await deadlocks()

    await raw.query('BEGIN')
    await raw.query("SET LOCAL deadlock_timeout = '60s'")
    const rawPid = (await raw.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
    await raw.query(lockSql, [space, 1])
    // The engine's fill takes window 0, then waits for window 1.
    const filling = l.fillMany(claims.map((c, i) => ({ symbol: sym, windowIdx: i, slotKind: 'optionTrade', meta: { payloadType: 'Json', payloadId, version: c.version, checksum: 9n } })))
    for (;;) {
      const r = await probe.query('SELECT 1 FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))', [rawPid])
      if (r.rowCount) break
      await new Promise((r) => setTimeout(r, 20))
    }
    // The cycle: this session now waits for window 0. The engine's session
    // checks for deadlocks first and is rolled back, which frees window 0.
    await raw.query(lockSql, [space, 0])
    await raw.query('COMMIT')
    const results = await filling
    expect(results.map((r) => (r.ok ? r.version : r.error.code))).toEqual([2, 2])
    await probe.query('SELECT pg_stat_force_next_flush()')
    for (;;) {
      if ((await deadlocks()) > before) break
      await new Promise((r) => setTimeout(r, 50))
    }

    const w = l.watch({ after: start })
    const got: LedgerChange[] = []
    while (got.length < 2) got.push((await w.next()).value as LedgerChange)
    w.close()
    expect(got.map((g) => [g.windowIdx, g.to, g.version])).toEqual([
      [0, 'Filled', 2],
      [1, 'Filled', 2],
    ])
    // Nothing more: the rolled-back attempt left no change behind.
    const fills = await probe.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM ws_changes c JOIN ws_spaces s ON s.id = c.space WHERE s.name = $1 AND c.status = 2',
      [space],
    )
    expect(fills.rows[0]!.n).toBe(2)
  }, 60_000)
})
