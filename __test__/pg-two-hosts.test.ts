/**
 * Faults across hosts on the PostgreSQL backend, with real processes, a
 * real server and real TCP: two hosts are network namespaces (hostA,
 * hostB, `support/netns.ts`) joined to the root namespace by veth pairs,
 * and a throwaway server of this file's own listens on the root side of
 * both. Engines (`fixtures/pg-host-engine.mjs`) run inside the hosts.
 *
 * - A host cut off from the database while it holds claims loses them once
 *   their leases expire on the database clock; the other host takes them
 *   over and fills them, and the cut-off host's fills (sent during the cut,
 *   and again after the link is back) are refused with VersionConflictError.
 * - An engine killed while its fills are in flight inside their statements'
 *   transactions loses nothing it had acknowledged; the fills it never saw
 *   acknowledged leave its claims to be taken over after the lease.
 * - A connection lost under a fill in flight surfaces as a typed error:
 *   ConnectionError, with SQLSTATE 57P01 when the server ends the session
 *   and none when the TCP connection is reset; nothing of the call
 *   was written, and the same fill tried again lands once.
 *
 * Every slot ends Filled exactly once (one Filled change in the feed).
 * Skipped, with the reason printed, where network namespaces cannot be made.
 *
 * @module
 */
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { Readable, Writable } from 'node:stream'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { startPgServer, type PgServer } from '../scripts/pg-server.mjs'
import { WindowSpace, WindowSpaceController, type Ledger } from '../src/index'
import { pgClient } from './support/backends'
import { makeHost, netnsProbe, removeHosts, type Host } from './support/netns'

const FIXTURE = join(__dirname, 'fixtures', 'pg-host-engine.mjs')
const WINDOWS = 16
const LEASE_MS = 3_000

const probe = netnsProbe()
if (probe) console.warn(`pg-two-hosts.test.ts skipped: ${probe}`)

type Reply = Record<string, unknown>
interface Engine {
  readonly host: Host
  readonly child: ChildProcessByStdio<Writable, Readable, null>
  /** Sends a command without waiting for its answer. */
  send(cmd: object): void
  /** The next line the engine wrote (also after it died, until its output is drained). */
  next(): Promise<Reply>
  ask(cmd: object): Promise<Reply>
}
interface FillOutcome {
  window: number
  outcome: number | string
  attempts: string[]
}

let server: PgServer | undefined
let raw: pg.Client | undefined
let observer: Ledger | undefined
const hosts: Host[] = []
const engines: Engine[] = []
const lockers: pg.Client[] = []
let spaces = 0

beforeAll(async () => {
  if (probe) return
  try {
    hosts.push(makeHost('hostA', 0), makeHost('hostB', 1))
    // client_connection_check_interval: a backend waiting for a lock notices
    // that its client died and ends, rolling its statement back.
    server = await startPgServer({ listen: hosts.map((h) => h.rootAddr), trust: hosts.map((h) => h.subnet), settings: ['client_connection_check_interval=100'] })
    raw = await pgClient(server.url)
  } catch (e) {
    await cleanup()
    throw e
  }
})

async function cleanup(): Promise<void> {
  for (const e of engines.splice(0)) e.child.kill('SIGKILL')
  try {
    for (const c of lockers.splice(0)) await c.end()
    await observer?.close()
    await raw?.end()
  } finally {
    observer = undefined
    raw = undefined
    try {
      server?.stop()
    } finally {
      server = undefined
      removeHosts()
    }
  }
}
afterAll(cleanup)

/** Starts an engine inside `host`, connected over TCP to the server's address on that host's link. */
async function engine(host: Host, space: string): Promise<Engine> {
  const url = `postgresql://postgres@${host.rootAddr}:${new URL(server!.url).port}/postgres`
  const [cmd, ...args] = host.argv([process.execPath, FIXTURE, JSON.stringify({ url, space, windowCount: WINDOWS, host: host.name })])
  const child = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'inherit'] })
  // A write to an engine this test killed fails; its answers tell.
  child.stdin.on('error', () => undefined)
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const next = async () => {
    const r = await lines.next()
    if (r.done) throw new Error(`engine on ${host.name} (${child.pid}) exited`)
    return JSON.parse(r.value) as Reply
  }
  const e: Engine = {
    host,
    child,
    send: (c) => child.stdin.write(JSON.stringify(c) + '\n'),
    next,
    ask: async (c) => {
      e.send(c)
      return next()
    },
  }
  engines.push(e)
  expect(await next()).toHaveProperty('ready')
  return e
}

/**
 * A new window space, read by a new observer ledger; the engines of earlier
 * tests are gone, and so are their connections.
 */
async function newSpace(prefix: string): Promise<string> {
  for (const e of engines.splice(0)) e.child.kill('SIGKILL')
  // Links are up again even after a test that failed while one was cut.
  for (const h of hosts) h.restore()
  for (const h of hosts) await until(`no connections from ${h.name}`, async () => (await backendsOf(h)).all === 0)
  const space = `${prefix}-${process.pid}-${Date.now()}-${++spaces}`
  await observer?.close()
  observer = await WindowSpaceController.connect(server!.url, { windowSpace: WindowSpace.uniform({ origin: 0, windowDuration: 60_000, windowCount: WINDOWS }), space })
  await observer.resolveSymbol('MULTI')
  return space
}

const slot = (w: number) => observer!.getSlot('MULTI', w, 'optionTrade')

/** Whose payload the slot holds: the host named in its record's uri. */
async function publisher(w: number): Promise<string | undefined> {
  const s = await slot(w)
  return (await observer!.getPayload('trades', s.payloadId))?.uri.split('/')[0]
}

/** Filled changes per window of `space`, from the change feed. */
async function fillsPerWindow(space: string): Promise<Map<number, number>> {
  const r = await raw!.query<{ w: number; n: string }>(
    'SELECT c.window_idx AS w, count(*) AS n FROM ws_changes c JOIN ws_spaces s ON s.id = c.space WHERE s.name = $1 AND c.status = 2 GROUP BY c.window_idx',
    [space],
  )
  return new Map(r.rows.map((row) => [row.w, Number(row.n)]))
}

/**
 * Locks `windows`' slot rows of `space` in a transaction on a client of its
 * own (a transaction reads pg_stat_activity once, so the raw client stays
 * out of it) until `release()`.
 */
async function lockRows(space: string, windows: number[]): Promise<{ release(): Promise<void> }> {
  const c = await pgClient(server!.url)
  try {
    await c.query('BEGIN')
    const r = await c.query('SELECT 1 FROM ws_slots t JOIN ws_spaces s ON s.id = t.space WHERE s.name = $1 AND t.window_idx = ANY($2::int[]) FOR UPDATE OF t', [space, windows])
    expect(r.rowCount).toBe(windows.length)
  } catch (e) {
    await c.end()
    throw e
  }
  lockers.push(c)
  return {
    release: async () => {
      await c.query('ROLLBACK')
      await c.end()
      lockers.splice(lockers.indexOf(c), 1)
    },
  }
}

/** Server backends of connections from `host`: how many, and how many wait for a lock. */
async function backendsOf(host: Host): Promise<{ all: number; waiting: number }> {
  const r = await raw!.query<{ total: string; waiting: string }>(
    "SELECT count(*) AS total, count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting FROM pg_stat_activity WHERE client_addr = $1::inet",
    [host.addr],
  )
  return { all: Number(r.rows[0]!.total), waiting: Number(r.rows[0]!.waiting) }
}

async function until(what: string, cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; !(await cond()); i++) {
    if (i > 300) throw new Error(`gave up waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/**
 * Claims `windows` from `e` until every one is won, checking meanwhile that
 * each one not yet won is still its old holder's (Pending at `heldAt`).
 */
async function takeOver(e: Engine, windows: number[], heldAt: number): Promise<[number, number][]> {
  const won: [number, number][] = []
  let left = windows
  while (left.length) {
    const got = (await e.ask({ cmd: 'claimEach', windows: left, leaseMs: 600_000 })).won as [number, number, number][]
    for (const [w, v] of got) won.push([w, v])
    left = left.filter((w) => !got.some(([g]) => g === w))
    for (const w of left) expect(await slot(w)).toMatchObject({ status: 'Pending', version: heldAt })
    if (left.length) await new Promise((r) => setTimeout(r, 200))
  }
  return won.sort((a, b) => a[0] - b[0])
}

describe.skipIf(probe !== null)('engines on two hosts (network namespaces) sharing one PostgreSQL server', () => {
  it("a host cut off while it holds claims loses them on the database clock; the other host's takeover is the only fill", async () => {
    const space = await newSpace('cut')
    const [hostA, hostB] = hosts as [Host, Host]
    const a = await engine(hostA, space)
    const b = await engine(hostB, space)
    const windows = [0, 1, 2, 3, 4, 5]
    const claimed = (await a.ask({ cmd: 'claimEach', windows, leaseMs: LEASE_MS })).won as [number, number, number][]
    expect(claimed.map(([w, v]) => [w, v])).toEqual(windows.map((w) => [w, 1]))
    // While hostA holds them, hostB gets none.
    expect((await b.ask({ cmd: 'claimEach', windows, leaseMs: LEASE_MS })).won).toEqual([])

    hostA.cut()
    // hostA publishes while cut off: its fills wait in its TCP stack.
    a.send({ cmd: 'fill', claims: claimed.map(([w, v]) => [w, v]), retries: 3 })
    // hostB takes every slot over once hostA's leases expire on the database clock, one version up, and fills it.
    const taken = await takeOver(b, windows, 1)
    expect(taken).toEqual(windows.map((w) => [w, 2]))
    const filled = (await b.ask({ cmd: 'fill', claims: taken })).results as FillOutcome[]
    expect(filled.map((f) => [f.window, f.outcome])).toEqual(windows.map((w) => [w, 3]))

    hostA.restore()
    // hostA's fills of the cut arrive now, with versions two behind: refused.
    // (A connection lost on the way is tried again by the engine, with the same version.)
    const late = (await a.next()).results as FillOutcome[]
    expect(late.map((f) => [f.window, f.outcome])).toEqual(windows.map((w) => [w, 'ERR_VERSION_CONFLICT']))
    // And once more over the restored link, and its claims find the slots filled.
    const again = (await a.ask({ cmd: 'fill', claims: claimed.map(([w, v]) => [w, v]), retries: 3 })).results as FillOutcome[]
    expect(again.map((f) => [f.window, f.outcome])).toEqual(windows.map((w) => [w, 'ERR_VERSION_CONFLICT']))
    expect((await a.ask({ cmd: 'claimEach', windows, leaseMs: LEASE_MS })).won).toEqual([])

    for (const w of windows) {
      expect(await slot(w)).toMatchObject({ status: 'Filled', version: 3 })
      expect(await publisher(w)).toBe('hostB')
    }
    expect([...(await fillsPerWindow(space)).entries()].sort((x, y) => x[0] - y[0])).toEqual(windows.map((w) => [w, 1]))
  })

  it('an engine killed with fills in flight inside their transactions: what it acknowledged stays, the rest is taken over after the lease, nothing is filled twice', async () => {
    const space = await newSpace('kill')
    const [hostA, hostB] = hosts as [Host, Host]
    const b = await engine(hostB, space)
    const windows = [0, 1, 2, 3, 4, 5, 6, 7]
    const claimed = ((await b.ask({ cmd: 'claimEach', windows, leaseMs: LEASE_MS })).won as [number, number, number][]).map(([w, v]): [number, number] => [w, v])
    expect(claimed).toEqual(windows.map((w) => [w, 1]))
    const inFlight = [5, 6, 7]
    // Filled and acknowledged before the kill.
    const acked = (await b.ask({ cmd: 'fill', claims: claimed.filter(([w]) => !inFlight.includes(w)) })).results as FillOutcome[]
    expect(acked.map((f) => f.outcome)).toEqual([2, 2, 2, 2, 2])

    // The others' fills reach the server and wait, inside their statements'
    // transactions, for row locks held here; the engine dies meanwhile.
    const locks = await lockRows(space, inFlight)
    b.send({ cmd: 'fillEach', claims: claimed.filter(([w]) => inFlight.includes(w)) })
    await until('a fill of hostB waiting for a lock', async () => (await backendsOf(hostB)).waiting > 0)
    b.child.kill('SIGKILL')
    const after: Reply[] = []
    try {
      for (;;) after.push(await b.next())
    } catch {
      // It exited, and everything it wrote has been read.
    }
    // It acknowledged none of them.
    expect(after).toEqual([])
    // Its server backends end (rolling their statements back) before the locks go.
    await until("hostB's backends to end", async () => (await backendsOf(hostB)).all === 0)
    await locks.release()
    for (const w of inFlight) expect(await slot(w)).toMatchObject({ status: 'Pending', version: 1 })

    // hostA takes the unacknowledged ones over after the lease, one version up; the acknowledged ones are Filled and not claimable.
    const a = await engine(hostA, space)
    expect((await a.ask({ cmd: 'claimEach', windows: windows.filter((w) => !inFlight.includes(w)), leaseMs: 600_000 })).won).toEqual([])
    const taken = await takeOver(a, inFlight, 1)
    expect(taken).toEqual(inFlight.map((w) => [w, 2]))
    const filled = (await a.ask({ cmd: 'fill', claims: taken })).results as FillOutcome[]
    expect(filled.map((f) => f.outcome)).toEqual([3, 3, 3])

    for (const w of windows) {
      const mine = inFlight.includes(w)
      expect(await slot(w)).toMatchObject({ status: 'Filled', version: mine ? 3 : 2 })
      expect(await publisher(w)).toBe(mine ? 'hostA' : 'hostB')
    }
    expect([...(await fillsPerWindow(space)).entries()].sort((x, y) => x[0] - y[0])).toEqual(windows.map((w) => [w, 1]))
  })

  it('a connection the server ends under a fill in flight surfaces as ConnectionError (admin shutdown); the same fill tried again lands once', async () => {
    const space = await newSpace('ended')
    const [hostA] = hosts as [Host, Host]
    const a = await engine(hostA, space)
    const claimed = ((await a.ask({ cmd: 'claimEach', windows: [0], leaseMs: 600_000 })).won as [number, number, number][]).map(([w, v]): [number, number] => [w, v])
    expect(claimed).toEqual([[0, 1]])
    const locks = await lockRows(space, [0])
    a.send({ cmd: 'fillEach', claims: claimed })
    await until('the fill of hostA waiting for a lock', async () => (await backendsOf(hostA)).waiting > 0)
    // The server ends every session of hostA: the session's last words are
    // an error (57P01, admin shutdown), then the connection closes.
    await raw!.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE client_addr = $1::inet', [hostA.addr])
    expect(await a.next()).toEqual({ failed: [0, 'ERR_CONNECTION', 'ConnectionError', '57P01'] })
    expect(await a.next()).toEqual({ done: true })
    await locks.release()
    // Nothing was written by the dropped call.
    expect(await slot(0)).toMatchObject({ status: 'Pending', version: 1 })
    // The engine reconnects and tries again with its claim's version: it lands once; a second try is refused.
    const retried = (await a.ask({ cmd: 'fill', claims: claimed, retries: 3 })).results as FillOutcome[]
    expect(retried.map((f) => [f.window, f.outcome])).toEqual([[0, 2]])
    const twice = (await a.ask({ cmd: 'fill', claims: claimed })).results as FillOutcome[]
    expect(twice.map((f) => f.outcome)).toEqual(['ERR_VERSION_CONFLICT'])
    expect(await slot(0)).toMatchObject({ status: 'Filled', version: 2 })
    expect(await publisher(0)).toBe('hostA')
    expect([...(await fillsPerWindow(space)).entries()]).toEqual([[0, 1]])
  })

  it('a connection reset under a fill in flight surfaces as ConnectionError; the same fill tried again lands once', async () => {
    const space = await newSpace('drop')
    const [hostA] = hosts as [Host, Host]
    const a = await engine(hostA, space)
    const claimed = ((await a.ask({ cmd: 'claimEach', windows: [0], leaseMs: 600_000 })).won as [number, number, number][]).map(([w, v]): [number, number] => [w, v])
    expect(claimed).toEqual([[0, 1]])
    const locks = await lockRows(space, [0])
    a.send({ cmd: 'fillEach', claims: claimed })
    await until('the fill of hostA waiting for a lock', async () => (await backendsOf(hostA)).waiting > 0)
    // The root side resets every TCP connection of hostA (`ss -K`): hostA
    // gets a reset with no last words; the server's backend, waiting for the
    // lock, finds its client gone and rolls its statement back.
    const ss = spawnSync('ss', ['-K', '-t', 'dst', hostA.addr], { encoding: 'utf8' })
    expect(ss.error).toBeUndefined()
    expect(await a.next()).toEqual({ failed: [0, 'ERR_CONNECTION', 'ConnectionError', null] })
    await until("hostA's backends to end", async () => (await backendsOf(hostA)).all === 0)
    expect(await a.next()).toEqual({ done: true })
    await locks.release()
    // Nothing was written by the dropped call.
    expect(await slot(0)).toMatchObject({ status: 'Pending', version: 1 })
    // The engine reconnects and tries again with its claim's version: it lands once; a second try is refused.
    const retried = (await a.ask({ cmd: 'fill', claims: claimed, retries: 3 })).results as FillOutcome[]
    expect(retried.map((f) => [f.window, f.outcome])).toEqual([[0, 2]])
    const twice = (await a.ask({ cmd: 'fill', claims: claimed })).results as FillOutcome[]
    expect(twice.map((f) => f.outcome)).toEqual(['ERR_VERSION_CONFLICT'])
    expect(await slot(0)).toMatchObject({ status: 'Filled', version: 2 })
    expect(await publisher(0)).toBe('hostA')
    expect([...(await fillsPerWindow(space)).entries()]).toEqual([[0, 1]])
  })
})
