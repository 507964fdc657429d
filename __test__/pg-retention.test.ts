// Retention on the PostgreSQL backend: slots live in partitions of
// `partitionWindows` windows made as claims reach them; a retention run
// moves the space's retention line to a partition boundary and drops the
// partitions before it, in one transaction. Checked by the catalog (which
// partitions exist), by every read and write of a retired window, by the
// refusal while an engine holds a live claim there, by the audit trail, by
// a run killed in the middle of its transaction (nothing changed) and a run
// stalled there (engines on other partitions go on; a claim on one it waits
// for is refused once it is done), by a run that takes several steps, and by
// verify after partitions were dropped or detached by hand.
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'

import type pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'

import { InvalidArgumentError, SlotBusyError, SlotFilledError, SlotRetiredError, VersionConflictError, WindowSpaceController, type PostgresLedger } from '../src/index'
import { pgClient, pgUrl, schedule, uniqueSpace } from './support/backends'

const cli = join(__dirname, '..', 'dist', 'cli.js')
const opened: { close(): Promise<unknown> | void }[] = []
afterAll(async () => {
  for (const o of opened.reverse()) await o.close()
})

/** A ledger of `space` (40 windows), with partitions of 8 windows unless `partitionWindows` says otherwise (null: none given). */
async function connect(space: string, partitionWindows: number | null = 8): Promise<PostgresLedger> {
  const l = (await WindowSpaceController.connect(pgUrl(), {
    windowSpace: schedule(40),
    space,
    ...(partitionWindows === null ? {} : { partitionWindows }),
  }))
  opened.push(l)
  await l.resolveSymbol('AAA')
  await l.resolveSymbol('BBB')
  return l
}

async function raw(): Promise<pg.Client> {
  const c = await pgClient()
  opened.push({ close: () => c.end() })
  return c
}

/** The partitions of a space's slots, as partition numbers, from the catalog. */
async function partitions(c: pg.Client, space: string): Promise<number[]> {
  const id = (await c.query<{ id: number }>('SELECT id FROM ws_spaces WHERE name = $1', [space])).rows[0]!.id
  const r = await c.query<{ relname: string }>(
    `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'ws_slots'::regclass AND c.relname LIKE $1`,
    [`ws\\_slots\\_${id}\\_%`],
  )
  return r.rows.map((x) => Number(x.relname.split('_').pop())).sort((a, b) => a - b)
}

async function fill(l: PostgresLedger, symbol: string, window: number): Promise<void> {
  const payloadId = await l.appendPayload('trades', { symbol, windowIdx: window, slotKind: 'optionTrade', payloadType: 'Json', uri: `mem://${symbol}/${window}`, checksum: 5n, size: 1 })
  const c = await l.claim(symbol, window, 'optionTrade')
  await l.fill(symbol, window, 'optionTrade', { payloadType: 'Json', payloadId, version: c.version, checksum: 5n })
}

async function filledSpace(prefix: string, windows: number): Promise<{ space: string; l: PostgresLedger }> {
  const space = uniqueSpace(prefix)
  const l = await connect(space)
  for (const s of ['AAA', 'BBB']) for (let w = 0; w < windows; w++) await fill(l, s, w)
  return { space, l }
}

describe('partitions of a window space', () => {
  it('a partition is made when a claim first reaches its windows, and only then', async () => {
    const space = uniqueSpace('parts')
    const l = await connect(space)
    const c = await raw()
    expect(await partitions(c, space)).toEqual([])
    expect(l.partitionWindows).toBe(8)
    await l.claim('AAA', 0, 'optionTrade')
    await l.claim('AAA', 17, 'optionTrade')
    // Reads and refused writes of a window whose partition does not exist make none.
    expect((await l.getSlot('AAA', 9, 'optionTrade')).status).toBe('Empty')
    await expect(l.clear('AAA', 9, 'optionTrade', { version: 1 })).rejects.toBeInstanceOf(VersionConflictError)
    expect(await partitions(c, space)).toEqual([0, 2])
    // Engines of two ledgers claiming a new partition's windows at once: one partition, every claim granted once.
    const other = await connect(space)
    const claims = await Promise.all([...Array(8).keys()].map((i) => (i % 2 === 0 ? l : other).claim('BBB', 24 + i, 'optionTrade')))
    expect(claims.map((x) => x.version)).toEqual(Array(8).fill(1))
    expect(await partitions(c, space)).toEqual([0, 2, 3])
  })

  it('the partition width is fixed when the space is made: another is refused, none given is the stored one', async () => {
    const space = uniqueSpace('width')
    await connect(space, 16)
    await expect(connect(space, 8)).rejects.toThrow(/keeps 16 windows in each partition/)
    await expect(connect(space, 8)).rejects.toBeInstanceOf(InvalidArgumentError)
    expect((await connect(space, null)).partitionWindows).toBe(16)
    await expect(connect(uniqueSpace('width-zero'), 0)).rejects.toBeInstanceOf(RangeError)
  })
})

describe('dropWindowsBefore', () => {
  it('retires the windows before a partition boundary, drops their partitions, and every read and write sees them Retired', async () => {
    const { space, l } = await filledSpace('drop', 20)
    const c = await raw()
    expect(await partitions(c, space)).toEqual([0, 1, 2])
    await l.claim('AAA', 20, 'optionTrade')

    const r = await l.dropWindowsBefore(19, { actor: 'ops-bob', reason: 'keep a day' })
    // Rounded down to the start of the partition that holds window 19.
    expect(r).toEqual({ previous: 0, retiredBefore: 16, dropped: [{ from: 0, to: 8 }, { from: 8, to: 16 }], liveClaims: 0, unchanged: false, stopped: null })
    expect(await partitions(c, space)).toEqual([2])
    expect(await l.retiredBefore()).toBe(16)

    expect(await l.getSlot('AAA', 5, 'optionTrade')).toMatchObject({ status: 'Retired', version: 0 })
    expect((await l.getSlot('AAA', 16, 'optionTrade')).status).toBe('Filled')
    await expect(l.claim('AAA', 5, 'optionTrade')).rejects.toBeInstanceOf(SlotRetiredError)
    await expect(l.clear('AAA', 5, 'optionTrade', { version: 2 })).rejects.toBeInstanceOf(VersionConflictError)
    await expect(l.forceClear('AAA', 5, 'optionTrade')).rejects.toBeInstanceOf(SlotRetiredError)
    expect(await l.retire('AAA', 5, 'optionTrade')).toMatchObject({ from: 'Retired', to: 'Retired' })
    // No partition is made again before the line.
    expect(await partitions(c, space)).toEqual([2])

    const rows = await l.rows('AAA', { from: 14, to: 18 }, 'trade')
    expect(rows.map((x) => (x as unknown as { optionTrade: { status: string } }).optionTrade.status)).toEqual(['Retired', 'Retired', 'Filled', 'Filled'])
    expect(await l.nextUnfilledWindow('BBB', 0, 'optionTrade')).toBe(20)
    const batch = await l.claimNextUnfilled('BBB', 0, 'optionTrade', 2)
    expect(batch.map((x) => x.windowIdx)).toEqual([20, 21])
    // A range retire over the line counts only the windows from it on.
    expect(await l.retireRange('AAA', { from: 0, to: 18 }, 'optionTrade')).toBe(2)

    const m = (await l.slotMetrics()).find((x) => x.slot === 'optionTrade')!.counts
    // 2 symbols × 16 windows before the line, and AAA's 16, 17 retired by the range.
    expect(m.Retired).toBe(2 * 16 + 2)
    expect(m.Filled).toBe(2 + 4)
    expect(m.Pending).toBe(1 + 2)
    expect(m.Empty + m.Retired + m.Filled + m.Pending + m.Cleared).toBe(2 * 40)

    const v = await l.verify()
    expect(v.problems).toEqual([])
    expect(v.checked).toContain('no slot row before the retention line (its partitions are dropped)')

    const audit = (await l.audit()).filter((e) => e.action === 'retention')
    expect(audit).toEqual([{ action: 'retention', actor: 'ops-bob', reason: 'keep a day', symbolId: null, windowIdx: 16, slotKind: null }])

    // Moving the line to where it is, or before it, changes nothing.
    expect(await l.dropWindowsBefore(17)).toMatchObject({ previous: 16, retiredBefore: 16, dropped: [], unchanged: true })
  })

  it('a live claim before the line refuses the run, naming the slot, and changes nothing; force takes it and its fill is refused', async () => {
    const { space, l } = await filledSpace('live', 4)
    const c = await raw()
    const claim = await l.claim('AAA', 6, 'optionTrade', { leaseMs: 600_000 })
    const refusal = await l.dropWindowsBefore(8).catch((e: unknown) => e)
    expect(refusal).toBeInstanceOf(SlotBusyError)
    expect((refusal as SlotBusyError).message).toContain('6')
    expect(await l.retiredBefore()).toBe(0)
    expect(await partitions(c, space)).toEqual([0])
    expect((await l.getSlot('AAA', 6, 'optionTrade')).status).toBe('Pending')

    const dry = await l.dropWindowsBefore(8, { dryRun: true })
    expect(dry).toMatchObject({ previous: 0, retiredBefore: 8, dropped: [{ from: 0, to: 8 }], liveClaims: 1, unchanged: true })
    expect(await partitions(c, space)).toEqual([0])

    const forced = await l.dropWindowsBefore(8, { force: true })
    expect(forced).toMatchObject({ retiredBefore: 8, liveClaims: 1, unchanged: false })
    const payloadId = await l.appendPayload('trades', { symbol: 'AAA', windowIdx: 6, slotKind: 'optionTrade', payloadType: 'Json', uri: 'mem://late', checksum: 1n, size: 1 })
    const late = await l.fill('AAA', 6, 'optionTrade', { version: claim.version, payloadType: 'Json', payloadId, checksum: 1n }).catch((e: unknown) => e)
    expect(late).toBeInstanceOf(VersionConflictError)
    expect((late as VersionConflictError).slot?.status).toBe('Retired')
    const runs = await c.query<{ forced: boolean; partitions_dropped: number }>(
      'SELECT forced, partitions_dropped FROM ws_retentions r JOIN ws_spaces s ON s.id = r.space WHERE s.name = $1',
      [space],
    )
    expect(runs.rows).toEqual([{ forced: true, partitions_dropped: 1 }])
  })

  it('a waiter for a slot whose window is retired by a run wakes and sees it Retired', async () => {
    const space = uniqueSpace('wait')
    // The polling backstop out of reach: the run's notification wakes the waiter.
    const l = (await WindowSpaceController.connect(pgUrl(), { windowSpace: schedule(40), space, partitionWindows: 8, pollMs: 60_000 }))
    opened.push(l)
    await l.resolveSymbol('AAA')
    const waiting = l.waitFor('AAA', 2, ['optionTrade'], { timeoutMs: 50_000 }).then(
      () => null,
      (e: unknown) => e,
    )
    await new Promise((r) => setTimeout(r, 200))
    await l.dropWindowsBefore(8)
    expect(await waiting).toBeInstanceOf(SlotRetiredError)
  })
})

/** Runs the built command; resolves with its exit status and output. */
function runCli(args: string[]): { child: ChildProcess; done: Promise<{ status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const done = new Promise<{ status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('exit', (status, signal) => resolve({ status, signal, stdout, stderr })),
  )
  return { child, done }
}

/**
 * Resolves once a session of application `window-space` waits for a lock;
 * rejects if `run` ends first. `c` must not be inside a transaction, where
 * `pg_stat_activity` would show the same snapshot on every read.
 */
async function waitingForLock(c: pg.Client, run: { done: Promise<{ status: number | null; stdout: string; stderr: string }> }): Promise<void> {
  let ended: string | null = null
  void run.done.then((r) => (ended = `the run ended first (${r.status}): ${r.stdout}${r.stderr}`))
  for (;;) {
    if (ended !== null) throw new Error(ended)
    const r = await c.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = 'window-space' AND wait_event_type = 'Lock'`)
    if (r.rowCount! > 0) return
    await new Promise((res) => setTimeout(res, 20))
  }
}

describe('a retention run stopped inside its transaction', () => {
  it('killed while it holds one partition and waits for the next: nothing changed, every slot is still there', async () => {
    const { space, l } = await filledSpace('kill', 20)
    const c = await raw()
    const before = await l.rows('AAA', { from: 0, to: 20 }, 'trade')
    // A reader holds the second partition: the run locks the first, then waits.
    const id = (await c.query<{ id: number }>('SELECT id FROM ws_spaces WHERE name = $1', [space])).rows[0]!.id
    await c.query('BEGIN')
    await c.query(`LOCK TABLE ws_slots_${id}_1 IN ACCESS SHARE MODE`)
    const run = runCli(['retention', pgUrl(), '--space', space, '--before-window', '16', '--keep', '0', '--yes'])
    await waitingForLock(await raw(), run)
    // While it waits, slots of the partition it will not drop are read and written.
    expect((await l.getSlot('AAA', 17, 'optionTrade')).status).toBe('Filled')
    await l.claim('AAA', 21, 'optionTrade')
    run.child.kill('SIGKILL')
    const ended = await run.done
    expect(ended.signal).toBe('SIGKILL')
    await c.query('COMMIT')
    expect(await l.retiredBefore()).toBe(0)
    expect(await partitions(c, space)).toEqual([0, 1, 2])
    expect(await l.rows('AAA', { from: 0, to: 20 }, 'trade')).toEqual(before)
    expect((await c.query('SELECT 1 FROM ws_retentions r JOIN ws_spaces s ON s.id = r.space WHERE s.name = $1', [space])).rowCount).toBe(0)
  })

  it('stalled the same way and then let go: it finishes, and the audit trail has it once', async () => {
    const { space, l } = await filledSpace('stall', 12)
    const c = await raw()
    const id = (await c.query<{ id: number }>('SELECT id FROM ws_spaces WHERE name = $1', [space])).rows[0]!.id
    await c.query('BEGIN')
    await c.query(`LOCK TABLE ws_slots_${id}_0 IN ACCESS SHARE MODE`)
    const run = runCli(['retention', pgUrl(), '--space', space, '--before-window', '8', '--keep', '0', '--yes', '--actor', 'ops-carol', '--json'])
    await waitingForLock(await raw(), run)
    expect(await l.retiredBefore()).toBe(0)
    await c.query('COMMIT')
    const ended = await run.done
    expect(ended.stderr).toBe('')
    expect(ended.status).toBe(0)
    const doc = JSON.parse(ended.stdout) as { retiredBefore: number; partitions: Array<{ from: number; to: number }>; changed: boolean }
    expect(doc).toMatchObject({ retiredBefore: 8, partitions: [{ from: 0, to: 8 }], changed: true })
    expect(await partitions(c, space)).toEqual([1])
    expect((await l.audit()).filter((e) => e.action === 'retention').map((e) => e.actor)).toEqual(['ops-carol'])
  })
})

describe('engines beside a retention run', () => {
  it('a claim in a partition the run drops, made while the run waits for ws_slots, is never granted and then dropped', async () => {
    const { space, l } = await filledSpace('beside', 12)
    const c = await raw()
    // The engine has claimed in partition 1 many times on each connection:
    // its claim there is prepared with a generic plan, which names the
    // partition alone and so does not wait for ws_slots.
    for (let i = 0; i < 32; i++) await expect(l.claim('BBB', 8 + (i % 4), 'optionTrade')).rejects.toBeInstanceOf(SlotFilledError)
    await l.forceClear('AAA', 9, 'optionTrade')
    // A long reader holds ws_slots itself: the run waits for it before it locks any partition.
    await c.query('BEGIN')
    await c.query('LOCK TABLE ONLY ws_slots IN ACCESS SHARE MODE')
    const run = runCli(['retention', pgUrl(), '--space', space, '--before-window', '16', '--keep', '0', '--yes'])
    await waitingForLock(await raw(), run)
    const claim = await l.claim('AAA', 9, 'optionTrade', { leaseMs: 600_000 }).then(
      (x) => ({ granted: x.version }),
      (e: unknown) => ({ refused: e }),
    )
    await c.query('COMMIT')
    const ended = await run.done
    const slot = await l.getSlot('AAA', 9, 'optionTrade')
    if ('granted' in claim) {
      // Granted: the run finds it under its locks and is refused, dropping nothing.
      expect(ended.status).not.toBe(0)
      expect(ended.stderr).toContain('ERR_SLOT_BUSY')
      expect(slot).toMatchObject({ status: 'Pending', version: claim.granted })
      expect(await partitions(c, space)).toEqual([0, 1])
    } else {
      expect(claim.refused).toBeInstanceOf(SlotRetiredError)
      expect(ended.status).toBe(0)
      expect(slot).toMatchObject({ status: 'Retired', version: 0 })
    }
  })

  it('a step refused by a claim made after the run began ends the run with what the steps before it did, and why', async () => {
    const space = uniqueSpace('stopped')
    const l = await connect(space, 1)
    const id = (await (await raw()).query<{ id: number }>('SELECT id FROM ws_spaces WHERE name = $1', [space])).rows[0]!.id
    for (let w = 0; w < 40; w++) await fill(l, 'AAA', w)
    // Warm claims in partition 20 (window 20): a generic plan naming it alone.
    for (let i = 0; i < 32; i++) await expect(l.claim('AAA', 20, 'optionTrade')).rejects.toBeInstanceOf(SlotFilledError)
    const c = await raw()
    await c.query('BEGIN')
    await c.query(`LOCK TABLE ws_slots_${id}_5 IN ACCESS SHARE MODE`)
    const running = l.dropWindowsBefore(40)
    await waitingForLock(await raw(), { done: running.then(() => ({ status: 0, stdout: '', stderr: '' })) })
    // The first step holds partitions 0..15 and waits for 5; partition 20 is the second step's.
    const claim = await l.claim('BBB', 20, 'optionTrade', { leaseMs: 600_000 })
    await c.query('COMMIT')
    const r = await running
    expect(r).toMatchObject({ previous: 0, retiredBefore: 16, unchanged: false })
    expect(r.dropped).toHaveLength(16)
    expect(r.stopped).toBeInstanceOf(SlotBusyError)
    expect(r.stopped!.message).toContain('window 20')
    expect(await l.retiredBefore()).toBe(16)
    expect(await l.getSlot('BBB', 20, 'optionTrade')).toMatchObject({ status: 'Pending', version: claim.version })
    expect((await l.verify()).problems).toEqual([])
  })

  it('range reads made while a step waits for a partition wait for it and answer, never failing on a deadlock', async () => {
    const { space, l } = await filledSpace('readers', 24)
    const c = await raw()
    const id = (await c.query<{ id: number }>('SELECT id FROM ws_spaces WHERE name = $1', [space])).rows[0]!.id
    // Plans of the range reads kept for many calls: each locks every partition.
    for (let i = 0; i < 8; i++) {
      await l.nextUnfilledWindow('AAA', 16, 'optionTrade')
      await l.rows('AAA', { from: 16, to: 24 }, 'trade')
      await l.slotMetrics()
    }
    await c.query('BEGIN')
    await c.query(`LOCK TABLE ws_slots_${id}_1 IN ACCESS SHARE MODE`)
    const running = l.dropWindowsBefore(16)
    await waitingForLock(await raw(), { done: running.then(() => ({ status: 0, stdout: '', stderr: '' })) })
    const reads = Promise.all([l.nextUnfilledWindow('AAA', 16, 'optionTrade'), l.rows('AAA', { from: 16, to: 24 }, 'trade'), l.slotMetrics(), l.verify()])
    await new Promise((r) => setTimeout(r, 1500))
    await c.query('COMMIT')
    const [next, rows, metrics, v] = await reads
    expect(await running).toMatchObject({ retiredBefore: 16, stopped: null })
    expect(next).toBe(24)
    expect(rows.map((x) => (x as unknown as { optionTrade: { status: string } }).optionTrade.status)).toEqual(Array(8).fill('Filled'))
    expect(metrics.find((m) => m.slot === 'optionTrade')!.counts.Filled).toBeGreaterThanOrEqual(16)
    expect(v.problems).toEqual([])
  })

  it('a run over more partitions than one step takes moves the line in steps, each recorded', async () => {
    const space = uniqueSpace('steps')
    const l = await connect(space, 1)
    for (let w = 0; w < 40; w++) await l.claim('AAA', w, 'optionTrade', { leaseMs: 1 })
    await new Promise((r) => setTimeout(r, 5))
    const c = await raw()
    expect((await partitions(c, space)).length).toBe(40)
    const r = await l.dropWindowsBefore(40, { actor: 'ops-dan' })
    expect(r).toMatchObject({ previous: 0, retiredBefore: 40, liveClaims: 0, unchanged: false })
    expect(r.dropped).toHaveLength(40)
    expect(await partitions(c, space)).toEqual([])
    const steps = (await l.audit()).filter((e) => e.action === 'retention').map((e) => e.windowIdx)
    expect(steps).toEqual([16, 32, 40])
    expect((await l.verify()).problems).toEqual([])
  })
})

describe('verify of a space changed by hand', () => {
  it('reports the slots of a partition dropped by hand, and a partition detached by hand', async () => {
    const { space, l } = await filledSpace('by-hand', 24)
    const c = await raw()
    const id = (await c.query<{ id: number }>('SELECT id FROM ws_spaces WHERE name = $1', [space])).rows[0]!.id
    expect((await l.verify()).problems).toEqual([])
    await c.query(`DROP TABLE ws_slots_${id}_1`)
    await c.query(`ALTER TABLE ws_slots DETACH PARTITION ws_slots_${id}_2`)
    const v = await l.verify()
    const lost = v.problems.filter((p) => p.kind === 'lost-slot')
    expect(lost[0]!.message).toContain('32 slots the change feed wrote have no row')
    expect(lost.length).toBe(1 + 20)
    expect(v.problems.filter((p) => p.kind === 'detached-partition').map((p) => p.message)).toEqual([
      `table ws_slots_${id}_2 is named as a partition of this space's slots but is not attached to ws_slots`,
    ])
    expect(v.ok).toBe(false)
  })
})

describe('window-space retention with a connection string', () => {
  it('dry run, refusal of a live claim, --force, and text output', async () => {
    const { space, l } = await filledSpace('cli-ret', 10)
    const c = await raw()
    await l.claim('BBB', 12, 'optionTrade', { leaseMs: 600_000 })
    const dry = runCli(['retention', pgUrl(), '--space', space, '--before-window', '20', '--keep', '3', '--dry-run'])
    const d = await dry.done
    expect(d.stderr).toBe('')
    expect(d.status).toBe(0)
    // 20 - 3 = 17, rounded down to 16; the claim at 12 is live there.
    expect(d.stdout).toContain('would retire windows 0..15 of space')
    expect(d.stdout).toContain('1 slot before window 16 is Pending under a running lease: without --force the run is refused')
    expect(await partitions(c, space)).toEqual([0, 1])
    const refused = await runCli(['retention', pgUrl(), '--space', space, '--before-window', '20', '--keep', '3', '--yes']).done
    expect(refused.status).toBe(2)
    expect(refused.stderr).toContain('give --force')
    expect(await l.retiredBefore()).toBe(0)
    const forced = await runCli(['retention', pgUrl(), '--space', space, '--before-window', '20', '--keep', '3', '--yes', '--force']).done
    expect(forced.stderr).toBe('')
    expect(forced.status).toBe(0)
    expect(forced.stdout.trim()).toBe('retired windows 0..15 and dropped 2 partitions; payload records are kept')
    expect(await l.retiredBefore()).toBe(16)
    expect(await partitions(c, space)).toEqual([])
    const again = await runCli(['retention', pgUrl(), '--space', space, '--before-window', '20', '--keep', '3', '--yes']).done
    expect(again.status).toBe(0)
    expect(again.stdout).toContain('nothing to retire')
  })
})
