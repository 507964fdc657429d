// Notifications of the PostgreSQL backend: a transition notifies a space
// only while a ledger listens for it (`ws_listeners`), a waiter is woken by
// that notification (its polling backstop set out of reach), the rows of
// sessions that ended are dropped when another session registers, a ledger
// listens on one session however many wait at once and unregisters it when
// closed, a LISTEN session the server ends is opened again, and a closed
// watch stops waiting.
import { spawn } from 'node:child_process'
import { join } from 'node:path'

import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'

import { WindowSpaceController, type Ledger } from '../src/index'
import { pgClient, pgUrl, schedule, uniqueSpace } from './support/backends'

const opened: { close(): Promise<unknown> | void }[] = []
afterAll(async () => {
  for (const o of opened.reverse()) await o.close()
})

async function connect(space: string, pollMs = 60_000): Promise<Ledger> {
  const l = await WindowSpaceController.connect(pgUrl(), { windowSpace: schedule(16), space, pollMs })
  opened.push(l)
  return l
}

async function raw(): Promise<pg.Client> {
  const c = await pgClient()
  opened.push({ close: () => c.end() })
  return c
}

async function spaceId(c: pg.Client, space: string): Promise<number> {
  return (await c.query<{ id: number }>('SELECT id FROM ws_spaces WHERE name = $1', [space])).rows[0]!.id
}

/** The pids `ws_listeners` holds for space `id`. */
async function listeners(c: pg.Client, id: number): Promise<number[]> {
  return (await c.query<{ pid: number }>('SELECT pid FROM ws_listeners WHERE space = $1 ORDER BY pid', [id])).rows.map((r) => r.pid)
}

/** Resolves once `ws_listeners` holds a row of space `id` that `ok` accepts. */
async function registered(c: pg.Client, id: number, ok: (pids: number[]) => boolean = (p) => p.length > 0): Promise<number[]> {
  for (;;) {
    const pids = await listeners(c, id)
    if (ok(pids)) return pids
    await new Promise((r) => setTimeout(r, 20))
  }
}

async function fillWindow(l: Ledger, window: number): Promise<void> {
  const payloadId = await l.appendPayload('trades', { symbol: 'NTFY', windowIdx: window, slotKind: 'optionTrade', payloadType: 'Json', uri: `mem://${window}`, checksum: 7n, size: 1 })
  const c = await l.claim('NTFY', window, 'optionTrade')
  await l.fill('NTFY', window, 'optionTrade', { payloadType: 'Json', payloadId, version: c.version, checksum: 7n })
}

describe('notifications of the PostgreSQL backend', () => {
  it('a waiter is woken by the notification of the fill it waits for, with its polling backstop out of reach', async () => {
    const space = uniqueSpace('notify-wake')
    const engine = await connect(space)
    const watcher = await connect(space)
    await engine.resolveSymbol('NTFY')
    const c = await raw()
    const waiting = watcher.waitFor('NTFY', 3, ['optionTrade'])
    await registered(c, await spaceId(c, space))
    await fillWindow(engine, 3)
    const slots = await waiting
    expect(slots.map((s) => [s.status, s.version])).toEqual([['Filled', 2]])
  }, 30_000)

  it('transitions notify a space only while a ledger listens for it', async () => {
    const space = uniqueSpace('notify-gate')
    const engine = await connect(space)
    await engine.resolveSymbol('NTFY')
    const c = await raw()
    const id = await spaceId(c, space)
    const got: string[] = []
    let marker: () => void = () => {}
    const markerSeen = new Promise<void>((r) => (marker = r))
    c.on('notification', (n) => {
      if (n.payload === `marker-${id}`) marker()
      else if (n.payload === String(id)) got.push(n.payload)
    })
    await c.query('LISTEN ws_changes')
    // Nobody listens through a ledger: a claim and a fill notify no one.
    await fillWindow(engine, 0)
    // A ledger starts waiting: it registers, and the next transitions notify.
    const watcher = await connect(space)
    const waiting = watcher.waitFor('NTFY', 1, ['optionTrade'])
    await registered(c, id)
    await fillWindow(engine, 1)
    await waiting
    // Notifications arrive in commit order: once the marker sent now has
    // arrived, every earlier one has.
    await c.query('SELECT pg_notify($1, $2)', ['ws_changes', `marker-${id}`])
    await markerSeen
    expect(got).toEqual([String(id), String(id)])
  }, 30_000)

  it('the rows of sessions that ended are dropped when a session registers', async () => {
    const space = uniqueSpace('notify-stale')
    const engine = await connect(space)
    await engine.resolveSymbol('NTFY')
    const c = await raw()
    const id = await spaceId(c, space)
    const ended = (await c.query<{ pid: number }>('SELECT max(pid) + 100000 AS pid FROM pg_stat_activity')).rows[0]!.pid
    await c.query('INSERT INTO ws_listeners (space, pid) VALUES ($1, $2)', [id, ended])
    const watcher = await connect(space)
    const waiting = watcher.waitFor('NTFY', 2, ['optionTrade'])
    const live = async () => (await c.query<{ pid: number }>('SELECT pid FROM ws_listeners WHERE space = $1 ORDER BY pid', [id])).rows.map((r) => r.pid)
    while ((await live()).includes(ended)) await new Promise((r) => setTimeout(r, 20))
    const pids = await live()
    expect(pids).toHaveLength(1)
    const sessions = await c.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pids[0]])
    expect(sessions.rowCount).toBe(1)
    await fillWindow(engine, 2)
    await waiting
  }, 30_000)

  it('a ledger listens on one session however many wait at once, without a listener-count warning, and closing it unregisters the session', async () => {
    const space = uniqueSpace('notify-one')
    const engine = await connect(space)
    await engine.resolveSymbol('NTFY')
    const c = await raw()
    const id = await spaceId(c, space)
    const warnings: string[] = []
    const onWarning = (w: Error) => warnings.push(w.name)
    process.on('warning', onWarning)
    try {
      const watcher = await WindowSpaceController.connect(pgUrl(), { windowSpace: schedule(16), space, pollMs: 60_000 })
      const waits = Array.from({ length: 12 }, (_, i) => watcher.waitFor('NTFY', i, ['optionTrade']))
      await registered(c, id)
      await fillWindow(engine, 0)
      expect((await waits[0])!.map((s) => s.status)).toEqual(['Filled'])
      expect(await listeners(c, id)).toHaveLength(1)
      await watcher.close()
      const ends = await Promise.allSettled(waits.slice(1))
      expect(ends.map((e) => (e.status === 'rejected' ? (e.reason as { code?: string }).code : 'resolved'))).toEqual(Array(11).fill('ERR_CLOSED'))
      await registered(c, id, (p) => p.length === 0)
      await new Promise((r) => setImmediate(r))
    } finally {
      process.off('warning', onWarning)
    }
    expect(warnings).toEqual([])
  }, 30_000)

  it('a LISTEN session the server ends is opened again, and the waiter is woken through the new one', async () => {
    const space = uniqueSpace('notify-kill')
    const engine = await connect(space)
    await engine.resolveSymbol('NTFY')
    const c = await raw()
    const id = await spaceId(c, space)
    const watcher = await connect(space)
    const waiting = watcher.waitFor('NTFY', 4, ['optionTrade'])
    const [first] = await registered(c, id)
    await c.query('SELECT pg_terminate_backend($1)', [first])
    await registered(c, id, (p) => p.length > 0 && !p.includes(first!))
    await fillWindow(engine, 4)
    expect((await waiting).map((s) => s.status)).toEqual(['Filled'])
  }, 30_000)

  it('closing a watch ends the next() it is waiting in', async () => {
    const space = uniqueSpace('notify-watch')
    const watcher = await connect(space)
    const c = await raw()
    const w = watcher.watch()
    const pending = w.next()
    await registered(c, await spaceId(c, space))
    w.close()
    expect(await pending).toEqual({ done: true, value: undefined })
  }, 30_000)

  it.each(['watch', 'abort'])('a process whose %s stopped waiting exits without waiting out the polling backstop', async (mode) => {
    const child = spawn(process.execPath, [join(__dirname, 'fixtures', 'pg-stopped-wait-exit.mjs'), pgUrl(), uniqueSpace('exit'), mode], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)))
    expect({ code, out, err }).toEqual({ code: 0, out: 'stopped\n', err: '' })
  }, 30_000)

  it('a ledger closed while its LISTEN session is being opened leaves no session registered', async () => {
    const c = await raw()
    for (let round = 0; round < 5; round++) {
      const space = uniqueSpace('notify-close-early')
      const l = await WindowSpaceController.connect(pgUrl(), { windowSpace: schedule(16), space, pollMs: 60_000 })
      await l.resolveSymbol('NTFY')
      const id = await spaceId(c, space)
      const waiting = l.waitFor('NTFY', 1, ['optionTrade']).catch((e: { code?: string }) => e.code)
      await new Promise((r) => setTimeout(r, round))
      await l.close()
      expect(await waiting).toBe('ERR_CLOSED')
      // Time for a session opened in the background to finish registering.
      await new Promise((r) => setTimeout(r, 300))
      await registered(c, id, (p) => p.length === 0)
    }
  }, 60_000)
})
