// A journaled transition of an engine process, at each of its five steps
// (the core's crash points journal::cell-taken, journal::numbered,
// journal::reserved, journal::changed, journal::committed), beside a
// controller in this process that stays open.
//
// Killed there (SIGKILL): what the engine had acknowledged stays; the slot is
// as before the transition or after it, never between; the counters are
// repaired; verify finds no problem; a controller opened after agrees; a
// watcher gets the change or a gap; and the transition done again finishes.
// Stopped there for longer than the claim's lease: the others take the
// slot over (before its compare-and-swap) or see it filled (after), their
// own fills and waits go on, and the engine, continued, is refused (its claim
// is stale) or finishes, without confusing any watcher.
// What a watcher sees at each step is in journal-stalled-writer.test.ts.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'

import { JournalGapError, verifyStateDir, WindowSpace, WindowSpaceConfig, WindowSpaceController, type SlotChange } from '../src/index'
import { failpointEnv, requireFailpoints, sleep } from './failpoint-helpers'
import { writer, type Step, type Writer } from './journal-helpers'

const POINTS = ['journal::cell-taken', 'journal::numbered', 'journal::reserved', 'journal::changed', 'journal::committed'] as const
type Point = (typeof POINTS)[number]
/** Points after the slot's compare-and-swap: the slot has changed there. */
const CHANGED: readonly Point[] = ['journal::changed', 'journal::committed']
const SCHEDULE = WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: 64 })
const LEASE_MS = 300

let dir: string
const opened: WindowSpaceController[] = []
const writers: Writer[] = []
beforeAll(() => requireFailpoints(...POINTS))
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ws-engine-points-'))
})
afterEach(() => {
  for (const w of writers.splice(0)) w.child.kill('SIGKILL')
  for (const c of opened.splice(0)) c.close()
  rmSync(dir, { recursive: true, force: true })
})

function open(): WindowSpaceController {
  const { controller } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, SCHEDULE))
  opened.push(controller)
  controller.resolveSymbol('ENG')
  return controller
}

/** An engine process that claims window 40 (acknowledged), then fills `window` at `version`, stopping at `point` in the fill. */
function engine(point: Point, window: number, version: number): Writer {
  const step = point.slice('journal::'.length) as Step
  // The claim passes the point once; the fill is the second time: stop there.
  const w = writer(
    dir,
    [
      { op: 'claim', symbol: 'ENG', window: 40, kind: 'greeks' },
      { op: 'fill', symbol: 'ENG', window, kind: 'greeks', version },
    ],
    step,
    2,
  )
  writers.push(w)
  return w
}

/** The shared counters become an exact count (a dead engine's drift repaired within a few calls). */
function countsRepaired(c: WindowSpaceController, when: string): void {
  const exact = c.recountSlots()
  for (let i = 0; i < 200 && !isDeepStrictEqual(c.slotMetrics(), exact); i++);
  expect(c.slotMetrics(), when).toEqual(exact)
}

/** Every invariant from the survivor `c`, from a controller opened after it, and from verify. */
function invariants(c: WindowSpaceController, when: string): void {
  countsRepaired(c, when)
  const v = verifyStateDir(dir)
  expect(v.problems, when).toEqual([])
  const { controller: after } = WindowSpaceController.openExisting(dir)
  try {
    countsRepaired(after, `${when}, in a controller opened after`)
    expect(after.getSlot('ENG', 40, 'greeks')).toEqual(c.getSlot('ENG', 40, 'greeks'))
  } finally {
    after.close()
  }
}

/** The changes of window `w` a watcher from `seq` reads until the change `until` (a gap counts as `'gap'`). */
async function changesOf(c: WindowSpaceController, seq: number, w: number, until: (ch: SlotChange) => boolean): Promise<(SlotChange | 'gap')[]> {
  const out: (SlotChange | 'gap')[] = []
  let from = seq
  for (;;) {
    const it = c.watch({ fromSeq: from, symbols: ['ENG'], slotKinds: ['greeks'] })
    try {
      for (;;) {
        const r = await it.next()
        const ch = r.value as SlotChange
        if (ch.windowIdx === w) out.push(ch)
        if (until(ch)) return out
      }
    } catch (e) {
      if (!(e instanceof JournalGapError)) throw e
      out.push('gap')
      from = Number(e.details.resumeSeq)
    } finally {
      await it.return()
    }
  }
}

describe('an engine killed at each step of a journaled fill', () => {
  it.each(POINTS)('killed at %s: nothing acknowledged is lost, the slot is before or after, and the fill done again finishes', async (point) => {
    const c = open()
    const claim = c.markPending('ENG', 1, 'greeks', { leaseMs: 600_000 })
    const seq = c.journalHead()
    const w = engine(point, 1, claim.version)
    await w.stopped
    w.child.kill('SIGKILL')
    const exit = await w.exit
    expect(exit.signal).toBe('SIGKILL')
    // Its claim of window 40 was acknowledged and stays.
    expect(exit.results).toEqual([{ op: 'claim', version: 1 }])
    expect(c.getSlot('ENG', 40, 'greeks')).toMatchObject({ status: 'Pending', version: 1 })
    const changed = CHANGED.includes(point)
    const slot = c.getSlot('ENG', 1, 'greeks')
    expect(slot).toMatchObject(changed ? { status: 'Filled', version: claim.version + 1 } : { status: 'Pending', version: claim.version })
    invariants(c, `killed at ${point}`)
    // The fill done again by the claim's holder finishes.
    if (!changed) {
      const id = c.payloadStores().greeks.append({ symbol: 'ENG', windowIdx: 1, slotKind: 'greeks', payloadType: 'Json', uri: 'w/1/again', checksum: 9n, size: 1 })
      c.setRef('ENG', 1, 'greeks', { payloadType: 'Json', payloadId: id, version: claim.version, checksum: 9n })
    }
    expect(c.getSlot('ENG', 1, 'greeks')).toMatchObject({ status: 'Filled', version: claim.version + 1 })
    // A watcher from before gets the slot's change, or a gap where the engine died with a number.
    c.retire('ENG', 50, 'greeks')
    const seen = await changesOf(c, seq, 1, (ch) => ch.windowIdx === 50)
    const expected: Record<Point, string[]> = {
      'journal::cell-taken': [`Filled v${claim.version + 1}`],
      'journal::numbered': ['gap', `Filled v${claim.version + 1}`],
      'journal::reserved': ['gap', `Filled v${claim.version + 1}`],
      'journal::changed': ['gap'],
      'journal::committed': [`Filled v${claim.version + 1}`],
    }
    expect(seen.map((ch) => (ch === 'gap' ? ch : `${ch.to} v${ch.version}`))).toEqual(expected[point])
    invariants(c, `after the fill at ${point} was finished`)
  })
})

describe('an engine stopped at each step of a journaled fill for longer than its lease', () => {
  it.each(POINTS)('stopped at %s: the others go on, and the engine continued is refused or finishes', async (point) => {
    const c = open()
    const claim = c.markPending('ENG', 2, 'greeks', { leaseMs: LEASE_MS })
    const seq = c.journalHead()
    const w = engine(point, 2, claim.version)
    await w.stopped
    await sleep(3 * LEASE_MS)
    // The others are not held up: another slot is claimed, filled and waited for.
    const other = c.markPending('ENG', 3, 'greeks')
    const waited = c.waitFor('ENG', 3, ['greeks'], { timeoutMs: 60_000 })
    const id = c.payloadStores().greeks.append({ symbol: 'ENG', windowIdx: 3, slotKind: 'greeks', payloadType: 'Json', uri: 'w/3', checksum: 3n, size: 1 })
    c.setRef('ENG', 3, 'greeks', { payloadType: 'Json', payloadId: id, version: other.version, checksum: 3n })
    expect((await waited)[0]).toMatchObject({ status: 'Filled', version: other.version + 1 })
    const changed = CHANGED.includes(point)
    let taken: number | null = null
    if (changed) {
      // Its compare-and-swap is done: the slot is Filled, not claimable.
      expect(c.getSlot('ENG', 2, 'greeks')).toMatchObject({ status: 'Filled', version: claim.version + 1 })
      expect(c.tryMarkPending('ENG', 2, 'greeks')).toBeNull()
    } else {
      // Its lease ran out before its compare-and-swap: the slot is taken over.
      taken = c.markPending('ENG', 2, 'greeks', { leaseMs: 600_000 }).version
      expect(taken).toBe(claim.version + 1)
    }
    w.child.kill('SIGCONT')
    const exit = await w.exit
    expect(exit.code).toBe(0)
    expect(exit.results[1]).toEqual(changed ? { op: 'fill', version: claim.version + 1, payloadId: 0 } : { op: 'fill', error: 'ERR_VERSION_CONFLICT' })
    expect(c.getSlot('ENG', 2, 'greeks')).toMatchObject(changed ? { status: 'Filled', version: claim.version + 1 } : { status: 'Pending', version: taken })
    // A watcher from before sees the slot's one change, no gap.
    const seen = await changesOf(c, seq, 2, (ch) => ch.windowIdx === 2)
    expect(seen.map((ch) => (ch === 'gap' ? ch : `${ch.to} v${ch.version}`))).toEqual([changed ? `Filled v${claim.version + 1}` : `Pending v${taken}`])
    invariants(c, `stopped at ${point}`)
  })
})

describe('WINDOW_SPACE_FAILPOINTS', () => {
  it('naming no crash point of the core ends the process that loads the addon, with the reason', () => {
    const facade = join(__dirname, '..', 'dist', 'index.js')
    const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(facade)})`], { env: failpointEnv('journal::numberd=stop'), encoding: 'utf8' })
    expect(r.signal).toBe('SIGABRT')
    expect(r.stderr).toContain('WINDOW_SPACE_FAILPOINTS: "journal::numberd" is not a crash point or I/O site of window-space')
    const ok = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(facade)})`], { env: failpointEnv('journal::numbered=stop'), encoding: 'utf8' })
    expect([ok.status, ok.stderr]).toEqual([0, ''])
  })
})
