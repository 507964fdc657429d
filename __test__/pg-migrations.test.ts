// Schema migrations of the PostgreSQL backend: a database left at an
// earlier schema version is brought to the current one when a ledger
// connects (two at once: each migration applied once), and the change
// feed written before the upgrade reads on, in order, into what is
// written after it; slots written before are moved into the partition
// of their windows. The migrations' SQL is read from the core's source,
// so the database is built exactly as an earlier library version built it.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import type pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'

import { WindowSpaceController, type Ledger, type LedgerChange } from '../src/index'
import { pgClient, pgUrl, schedule, uniqueSpace } from './support/backends'

/** `MIGRATIONS` of `schema.rs`, in order. */
function migrations(): string[] {
  const source = readFileSync(join(__dirname, '..', 'crates', 'window-space-core', 'src', 'postgres', 'schema.rs'), 'utf8')
  const list = source.slice(source.indexOf('pub const MIGRATIONS'))
  return [...list.matchAll(/r#"([\s\S]*?)"#/g)].map((m) => m[1]!)
}

/** The run's server URL with `search_path` set to `schema`. */
function urlIn(schema: string): string {
  const url = pgUrl()
  return `${url}${url.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`
}

const opened: { close(): Promise<unknown> | void }[] = []
afterAll(async () => {
  for (const o of opened.reverse()) await o.close()
})

async function take(l: Ledger, n: number): Promise<LedgerChange[]> {
  const w = l.watch({ after: '0.0' })
  const out: LedgerChange[] = []
  while (out.length < n) {
    const r = await w.next()
    if (r.done) throw new Error('the watch ended')
    out.push(r.value)
  }
  w.close()
  return out
}

describe('schema migrations of the PostgreSQL backend', () => {
  it('bring a version-1 database to the current version once, with two ledgers connecting together, and the feed reads on in order', async () => {
    const all = migrations()
    expect(all.length).toBeGreaterThan(1)
    const schema = `mig_${process.pid}_${Date.now()}`
    const raw: pg.Client = await pgClient()
    opened.push({ close: () => raw.end() })
    // The schedule's stored form, as a current ledger writes it.
    const probeSpace = uniqueSpace('mig-probe')
    opened.push(await WindowSpaceController.connect(pgUrl(), { windowSpace: schedule(16), space: probeSpace }))
    const stored = (await raw.query<{ schedule: string }>('SELECT schedule FROM ws_spaces WHERE name = $1', [probeSpace])).rows[0]!.schedule

    // The database as the version-1 library left it: one space, one symbol, one claim recorded by its triggers.
    await raw.query(`CREATE SCHEMA ${schema}`)
    await raw.query(`SET search_path = ${schema}`)
    await raw.query('CREATE TABLE ws_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())')
    await raw.query(all[0]!)
    await raw.query('INSERT INTO ws_migrations (version) VALUES (1)')
    const space = (await raw.query<{ id: number }>("INSERT INTO ws_spaces (name, schedule, window_count) VALUES ('mig', $1, 16) RETURNING id", [stored])).rows[0]!.id
    const symbol = (await raw.query<{ id: number }>("INSERT INTO ws_symbols (space, name) VALUES ($1, 'OLD') RETURNING id", [space])).rows[0]!.id
    await raw.query('INSERT INTO ws_slots (space, symbol, kind, window_idx, status, version, lease_until) VALUES ($1, $2, 1, 0, 1, 1, ws_now_ms() + 60000)', [space, symbol])
    await raw.query('RESET search_path')

    const [a, b] = await Promise.all(
      [0, 1].map(() => WindowSpaceController.connect(urlIn(schema), { windowSpace: schedule(16), space: 'mig', existingOnly: true })),
    )
    opened.push(a!, b!)
    const versions = await raw.query<{ version: number }>(`SELECT version FROM ${schema}.ws_migrations ORDER BY version`)
    expect(versions.rows.map((r) => r.version)).toEqual(all.map((_, i) => i + 1))
    const triggers = await raw.query(`SELECT 1 FROM pg_trigger WHERE tgrelid = '${schema}.ws_slots'::regclass AND NOT tgisinternal`)
    expect(triggers.rowCount).toBe(0)
    // The slots written before are in the partition of their windows.
    const parts = await raw.query<{ relname: string }>(`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = '${schema}.ws_slots'::regclass`)
    expect(parts.rows.map((r) => r.relname)).toEqual([`ws_slots_${space}_0`])
    expect((await raw.query(`SELECT 1 FROM ${schema}.ws_slots_${space}_0 WHERE window_idx = 0 AND status = 1`)).rowCount).toBe(1)

    // Written after the upgrade, by the statements: the same feed, in order.
    const c = await a!.claim('OLD', 1, 'optionTrade')
    await b!.clear('OLD', 1, 'optionTrade', c)
    await b!.forceClear('OLD', 0, 'optionTrade', { actor: 'operator', reason: 'after the upgrade' })
    const got = await take(b!, 4)
    expect(got.map((g) => [g.windowIdx, g.to, g.version])).toEqual([
      [0, 'Pending', 1],
      [1, 'Pending', 1],
      [1, 'Cleared', 2],
      [0, 'Cleared', 2],
    ])
    const audit = await a!.audit()
    expect(audit.map((e) => [e.windowIdx, e.action, e.actor, e.reason])).toEqual([[0, 'forceClear', 'operator', 'after the upgrade']])
  })
})
