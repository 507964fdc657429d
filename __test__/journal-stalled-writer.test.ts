// A writer of the change journal that is stopped (SIGSTOP, a debugger, a
// frozen cgroup) is never taken for a dead one, and one that is killed is
// told apart from it. A writer process stops itself at a named step of a
// fill (the core's crash points journal::cell-taken, journal::numbered,
// journal::reserved, journal::changed and journal::committed, armed through
// WINDOW_SPACE_FAILPOINTS); the test then watches from this process
// while it stays stopped for seconds, and continues it (SIGCONT) or kills it
// (SIGKILL). Readers judge an unfinished entry by whether the process that
// took its number is alive — no timer.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'

import { JournalGapError, WindowSpace, WindowSpaceConfig, WindowSpaceController, type SlotChange } from '../src/index'
import { STEPS, requireJournalPoints, sleep, watched, writer, type Writer } from './journal-helpers'

const SCHEDULE = WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: 64 })
/** How long a writer stays stopped: far longer than a transition takes. */
const STOPPED_MS = 2500

let dir: string
const opened: WindowSpaceController[] = []
const writers: Writer[] = []
beforeAll(requireJournalPoints)
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ws-stalled-'))
})
afterEach(() => {
  for (const w of writers.splice(0)) w.child.kill('SIGKILL')
  for (const c of opened.splice(0)) c.close()
  rmSync(dir, { recursive: true, force: true })
})

function open(): WindowSpaceController {
  const { controller } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, SCHEDULE))
  opened.push(controller)
  controller.resolveSymbol('STALL')
  return controller
}

function fillIn(stopAt: (typeof STEPS)[number], window: number, version: number): Writer {
  const w = writer(dir, [{ op: 'fill', symbol: 'STALL', window, kind: 'greeks', version }], stopAt)
  writers.push(w)
  return w
}

describe('a writer stopped between two steps of a fill', () => {
  it.each(STEPS.filter((s) => s !== 'committed'))(
    'stopped at %s for seconds: watch() and waitFor wait for it, and see its change when it continues',
    async (step) => {
      const c = open()
      const claim = c.markPending('STALL', 1, 'greeks', { leaseMs: 600_000 })
      const it = c.watch({ symbols: ['STALL'] })
      const first = watched(it.next())
      const waited = watched(c.waitFor('STALL', 1, ['greeks'], { timeoutMs: 120_000 }))
      const w = fillIn(step, 1, claim.version)
      await w.stopped
      await sleep(STOPPED_MS)
      // Neither a gap nor anything else while the writer is stopped.
      expect(first.settled()).toBe(false)
      expect(waited.settled()).toBe(false)
      w.child.kill('SIGCONT')
      expect(await w.exit).toMatchObject({ code: 0, results: [{ op: 'fill', version: claim.version + 1 }] })
      const change = (await first.promise).value as SlotChange
      expect(change).toMatchObject({ symbol: 'STALL', windowIdx: 1, slotKind: 'greeks', from: 'Pending', to: 'Filled', version: claim.version + 1 })
      expect((await waited.promise)[0]).toMatchObject({ status: 'Filled', version: claim.version + 1 })
      await it.return()
    },
  )

  it('stopped after its entry is committed: readers see the change while it is still stopped', async () => {
    const c = open()
    const claim = c.markPending('STALL', 1, 'greeks', { leaseMs: 600_000 })
    const it = c.watch({ symbols: ['STALL'] })
    const waited = c.waitFor('STALL', 1, ['greeks'], { timeoutMs: 120_000 })
    const w = fillIn('committed', 1, claim.version)
    await w.stopped
    expect((await it.next()).value).toMatchObject({ windowIdx: 1, to: 'Filled', version: claim.version + 1 })
    expect((await waited)[0]!.status).toBe('Filled')
    // Its writer cell is still held: other writers and readers go on.
    c.retire('STALL', 2, 'greeks')
    expect((await it.next()).value).toMatchObject({ windowIdx: 2, to: 'Retired' })
    w.child.kill('SIGCONT')
    expect((await w.exit).code).toBe(0)
    await it.return()
  })
})

describe('a watch started from now while a writer is stopped inside a fill', () => {
  it.each(STEPS.filter((s) => s !== 'committed'))(
    'stopped at %s: the watch waits for it and delivers its change when it continues',
    async (step) => {
      const c = open()
      const claim = c.markPending('STALL', 4, 'greeks', { leaseMs: 600_000 })
      const w = fillIn(step, 4, claim.version)
      await w.stopped
      // Started after the writer took its number (or its cell): from now.
      const it = c.watch({ symbols: ['STALL'] })
      const first = watched(it.next())
      await sleep(200)
      expect(first.settled()).toBe(false)
      w.child.kill('SIGCONT')
      expect(await w.exit).toMatchObject({ code: 0, results: [{ op: 'fill', version: claim.version + 1 }] })
      expect((await first.promise).value).toMatchObject({ symbol: 'STALL', windowIdx: 4, to: 'Filled', version: claim.version + 1 })
      // And what follows, in order.
      c.retire('STALL', 5, 'greeks')
      expect((await it.next()).value).toMatchObject({ windowIdx: 5, to: 'Retired' })
      await it.return()
    },
  )
})

describe('where a watch from now starts beside a stopped writer', () => {
  it('a writer stopped after its entry is committed holds nothing back: the watch starts at the head', async () => {
    const c = open()
    const claim = c.markPending('STALL', 6, 'greeks', { leaseMs: 600_000 })
    const w = fillIn('committed', 6, claim.version)
    await w.stopped
    c.retire('STALL', 7, 'greeks')
    expect(c.journalWatchStart()).toBe(c.journalHead())
    w.child.kill('SIGCONT')
    expect((await w.exit).code).toBe(0)
  })

  it('a writer stopped holding a number the ring has lapped: the watch starts at the oldest entry still held, with no gap', async () => {
    const { controller: c } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, SCHEDULE, { journalCapacity: 64 }))
    opened.push(c)
    c.resolveSymbol('STALL')
    const claim = c.markPending('STALL', 8, 'greeks', { leaseMs: 600_000 })
    const w = fillIn('reserved', 8, claim.version)
    await w.stopped
    // More than a lap of changes by this process.
    for (let i = 0; i < 80; i++) {
      const k = c.markPending('STALL', 9 + (i % 40), 'greeks', { leaseMs: 600_000 })
      c.clearSlot('STALL', 9 + (i % 40), 'greeks', k)
    }
    const head = c.journalHead()
    expect(c.journalWatchStart()).toBe(head - 64)
    const it = c.watch({ symbols: ['STALL'] })
    const first = await it.next()
    expect(first.value).toMatchObject({ seq: head - 64 })
    await it.return()
    w.child.kill('SIGKILL')
    await w.exit
  })
})

describe('a writer killed between two steps of a fill', () => {
  /** Kills the writer at `step`, then retires window 3 as a marker; returns what a watcher from before the fill got first. */
  async function killedAt(step: (typeof STEPS)[number]) {
    const c = open()
    const claim = c.markPending('STALL', 2, 'greeks', { leaseMs: 600_000 })
    const head = c.journalHead()
    const it = c.watch({ symbols: ['STALL'] })
    const waited = step === 'changed' ? c.waitFor('STALL', 2, ['greeks'], { timeoutMs: 120_000 }) : null
    const w = fillIn(step, 2, claim.version)
    await w.stopped
    w.child.kill('SIGKILL')
    expect((await w.exit).signal).toBe('SIGKILL')
    const marker = c.retire('STALL', 3, 'greeks')
    const first = await it.next().catch((e: unknown) => e)
    return { c, claim, head, it, waited, first, marker }
  }

  it('at cell-taken (no number yet): nothing to report, the next change follows at once', async () => {
    const { c, claim, head, first } = await killedAt('cell-taken')
    expect((first as IteratorResult<SlotChange>).value).toMatchObject({ seq: head, windowIdx: 3, to: 'Retired' })
    expect(c.getSlot('STALL', 2, 'greeks')).toMatchObject({ status: 'Pending', version: claim.version })
  })

  it.each(['numbered', 'reserved'] as const)('at %s (a number, no change): a gap at exactly that entry', async (step) => {
    const { c, claim, head, first } = await killedAt(step)
    expect(first).toBeInstanceOf(JournalGapError)
    expect((first as JournalGapError).details).toMatchObject({ fromSeq: head, resumeSeq: head + 1, reason: 'abandoned' })
    expect(c.getSlot('STALL', 2, 'greeks')).toMatchObject({ status: 'Pending', version: claim.version })
    // Watching on after the gap gives the marker.
    const after = await c.watch({ fromSeq: head + 1, symbols: ['STALL'] }).next()
    expect(after.value).toMatchObject({ seq: head + 1, windowIdx: 3, to: 'Retired' })
  })

  it('at changed (the slot changed, no entry): a gap, and a waitFor on that slot resolves', async () => {
    const { c, claim, head, first, waited } = await killedAt('changed')
    expect(first).toBeInstanceOf(JournalGapError)
    expect((first as JournalGapError).details).toMatchObject({ fromSeq: head, resumeSeq: head + 1, reason: 'abandoned' })
    expect(c.getSlot('STALL', 2, 'greeks')).toMatchObject({ status: 'Filled', version: claim.version + 1 })
    expect((await waited!)[0]).toMatchObject({ status: 'Filled', version: claim.version + 1 })
  })

  it('at committed: the change is seen, no gap', async () => {
    const { claim, head, it, first } = await killedAt('committed')
    expect((first as IteratorResult<SlotChange>).value).toMatchObject({ seq: head, windowIdx: 2, to: 'Filled', version: claim.version + 1 })
    expect((await it.next()).value).toMatchObject({ seq: head + 1, windowIdx: 3, to: 'Retired' })
  })
})

describe('a killed writer and a stopped one at once', () => {
  it('the dead writer’s entry is a gap while the other stays stopped, and the stopped one’s change follows when it continues', async () => {
    const c = open()
    const a = c.markPending('STALL', 4, 'greeks', { leaseMs: 600_000 })
    const b = c.markPending('STALL', 5, 'greeks', { leaseMs: 600_000 })
    const head = c.journalHead()
    const it = c.watch({ symbols: ['STALL'] })
    const dead = fillIn('numbered', 4, a.version)
    await dead.stopped
    dead.child.kill('SIGKILL')
    await dead.exit
    // Stopped while taking its number, and again with one (two writers).
    const taking = fillIn('cell-taken', 5, b.version)
    await taking.stopped
    const e = await it.next().catch((x: unknown) => x)
    expect(e).toBeInstanceOf(JournalGapError)
    expect((e as JournalGapError).details).toMatchObject({ fromSeq: head, resumeSeq: head + 1, reason: 'abandoned' })
    const on = c.watch({ fromSeq: head + 1, symbols: ['STALL'] })
    const next = watched(on.next())
    await sleep(STOPPED_MS)
    expect(next.settled()).toBe(false)
    taking.child.kill('SIGCONT')
    expect((await taking.exit).code).toBe(0)
    expect((await next.promise).value).toMatchObject({ seq: head + 1, windowIdx: 5, to: 'Filled', version: b.version + 1 })
    await on.return()
  })
})
