// The PostgreSQL change feed against transactions that commit late: a
// change made in a transaction that took its id early and committed after a
// later one is still delivered, before the later one; and one slot's
// changes arrive in version order even when the second writer's
// transaction started first. The late transactions are held open on a
// second, plain client (`pg`), which writes a slot and its change row the
// way the library's statements do (`crates/window-space-core/src/postgres/sql.rs`).
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'

import { WindowSpaceController, type Ledger, type LedgerChange, type LedgerWatch } from '../src/index'
import { pgClient, pgUrl, schedule, uniqueSpace } from './support/backends'

const opened: { close(): Promise<unknown> | void }[] = []
afterAll(async () => {
  for (const o of opened) await o.close()
})

async function setup(): Promise<{ l: Ledger; raw: pg.Client; spaceId: number; symbolId: number }> {
  const space = uniqueSpace('feed')
  const l = await WindowSpaceController.connect(pgUrl(), { windowSpace: schedule(16), space, pollMs: 50 })
  opened.push(l)
  const symbolId = await l.resolveSymbol('LATE')
  const raw = await pgClient()
  opened.push({ close: () => raw.end() })
  const r = await raw.query<{ id: number }>('SELECT id FROM ws_spaces WHERE name = $1', [space])
  // The partition of the windows the held transactions write, made as the library makes it.
  await raw.query('SELECT ws_slot_partition($1, 0)', [r.rows[0]!.id])
  return { l, raw, spaceId: r.rows[0]!.id, symbolId }
}

async function take(w: LedgerWatch, n: number): Promise<LedgerChange[]> {
  const out: LedgerChange[] = []
  while (out.length < n) {
    const r = await w.next()
    if (r.done) throw new Error('the watch ended')
    out.push(r.value)
  }
  return out
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const CHANGE_COLUMNS = 'space, symbol, kind, window_idx, status, version, payload_type, payload_id, checksum, lease_until'

/** `write` (an INSERT or UPDATE of `ws_slots AS s … RETURNING s.*`) and its change row, in one statement. */
function recorded(write: string): string {
  return `WITH written AS (${write}) INSERT INTO ws_changes (ord, ${CHANGE_COLUMNS}) SELECT change_ord, ${CHANGE_COLUMNS} FROM written`
}

/** A claim of `window` as the library makes it. */
const claimSql = (window: number) =>
  recorded(`INSERT INTO ws_slots AS s (space, symbol, kind, window_idx, status, version, lease_until, change_ord)
    VALUES ($1, $2, 1, ${window}, 1, 1, ws_now_ms() + 60000, pg_current_xact_id()) RETURNING s.*`)

describe('the PostgreSQL change feed and transactions that commit late', () => {
  it('a change committed after a later one is delivered, and first', async () => {
    const { l, raw, spaceId, symbolId } = await setup()
    const w = l.watch({ after: await l.head() })
    // The held transaction claims window 0: it takes the smaller change id and stays open.
    await raw.query('BEGIN')
    await raw.query(claimSql(0), [spaceId, symbolId])
    // The engine claims window 1 and commits.
    await l.claim('LATE', 1, 'optionTrade')
    const first = w.next()
    // Time enough for several polls: a feed that skipped ahead would deliver window 1 now.
    await sleep(300)
    await raw.query('COMMIT')
    expect((await first).value).toMatchObject({ windowIdx: 0, to: 'Pending', version: 1 })
    expect((await w.next()).value).toMatchObject({ windowIdx: 1, to: 'Pending', version: 1 })
    w.close()
  })

  it("one slot's changes arrive in version order when the second writer's transaction began first", async () => {
    const { l, raw, spaceId, symbolId } = await setup()
    const w = l.watch({ after: await l.head() })
    // The held transaction writes first (window 5), so its transaction id is the older one.
    await raw.query('BEGIN')
    await raw.query(claimSql(5), [spaceId, symbolId])
    // The engine claims window 6 in a newer transaction and commits: version 1.
    const c = await l.claim('LATE', 6, 'optionTrade')
    // The old transaction then clears window 6 (version 2) and commits.
    await raw.query(
      recorded(`UPDATE ws_slots AS s SET status = 3, version = s.version + 1, lease_until = 0, change_ord = greatest(pg_current_xact_id(), s.change_ord)
        WHERE s.space = $1 AND s.symbol = $2 AND s.kind = 1 AND s.window_idx = 6 AND s.version = $3 RETURNING s.*`),
      [spaceId, symbolId, c.version],
    )
    await raw.query('COMMIT')
    const got = await take(w, 3)
    expect(got.map((g) => [g.windowIdx, g.to, g.version])).toEqual([
      [5, 'Pending', 1],
      [6, 'Pending', 1],
      [6, 'Cleared', 2],
    ])
    w.close()
  })

  it('transaction ids crossing a power of ten keep the feed in order: nothing skipped, nothing twice', async () => {
    const { l, raw } = await setup()
    const xid = async () => BigInt((await raw.query<{ x: string }>('SELECT pg_current_xact_id()::text AS x')).rows[0]!.x)
    let target = 10n
    const now = await xid()
    while (target <= now + 20n) target *= 10n
    // Burn transaction ids up to a few below the power of ten: each
    // subtransaction that writes takes one.
    await raw.query('CREATE TEMP TABLE burn (x int)')
    await raw.query(`DO $$ BEGIN FOR i IN 1..${target - now - 8n} LOOP BEGIN INSERT INTO burn VALUES (i); EXCEPTION WHEN others THEN NULL; END; END LOOP; END $$`)
    expect(await xid()).toBeLessThan(target)
    const start = await l.head()
    // Claim and clear one slot 6 times: 12 transactions, their ids across the power of ten.
    for (let i = 0; i < 6; i++) await l.clear('LATE', 2, 'optionTrade', await l.claim('LATE', 2, 'optionTrade', { leaseMs: 60_000 }))
    expect(await xid()).toBeGreaterThan(target)
    const w = l.watch({ after: start })
    const got = await take(w, 12)
    expect(got.map((g) => g.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    w.close()
  })
})
