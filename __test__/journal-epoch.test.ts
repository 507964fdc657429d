// Resume positions of the change journal carry the journal's epoch, a random
// 64-bit number of the journal file: a position from another journal (one
// since recreated, or one from before a reboot, whose unsynced entries may be
// gone) is a JournalGapError, never a silent skip of the changes the new
// journal numbered the same.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { JournalGapError, WindowSpace, WindowSpaceConfig, WindowSpaceController, type JournalPosition, type SlotChange } from '../src/index'

const SCHEDULE = WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: 64 })

let dir: string
const opened: WindowSpaceController[] = []
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ws-epoch-'))
})
afterEach(() => {
  for (const c of opened.splice(0)) c.close()
  rmSync(dir, { recursive: true, force: true })
})

function open(): WindowSpaceController {
  const { controller } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, SCHEDULE))
  opened.push(controller)
  controller.resolveSymbol('EPOCH')
  return controller
}

const retire = (c: WindowSpaceController, n: number, from = 0) => {
  for (let w = from; w < from + n; w++) c.retire('EPOCH', w, 'greeks')
}

async function take(it: AsyncIterator<SlotChange>, n: number): Promise<SlotChange[]> {
  const got: SlotChange[] = []
  while (got.length < n) got.push((await it.next()).value as SlotChange)
  return got
}

describe('journal epochs', () => {
  it('every change carries its journal’s epoch; a saved position resumes in the same journal, also through JSON', async () => {
    const c = open()
    const epoch = c.journalEpoch()
    expect(epoch).toMatch(/^[0-9a-f]{16}$/)
    expect(c.journalEpoch()).toBe(epoch)
    retire(c, 4)
    const got = await take(c.watch({ from: { epoch, seq: 0 } }), 4)
    expect(got.map((g) => [g.epoch, g.seq, g.windowIdx])).toEqual([0, 1, 2, 3].map((i) => [epoch, i, i]))
    const saved = JSON.parse(JSON.stringify({ epoch: got[1]!.epoch, seq: got[1]!.seq + 1 })) as JournalPosition
    expect((await take(c.watch({ from: saved }), 2)).map((g) => g.windowIdx)).toEqual([2, 3])
    // A number alone is a position in the journal this controller has open.
    expect((await take(c.watch({ fromSeq: 3 }), 1))[0]!.windowIdx).toBe(3)
  })

  it('a position from a journal since recreated is a gap, although the new journal has numbered more changes', async () => {
    const a = open()
    retire(a, 3)
    const saved: JournalPosition = { epoch: a.journalEpoch(), seq: a.journalHead() }
    a.close()
    rmSync(join(dir, 'changes.journal'))
    const b = open()
    expect(b.journalEpoch()).not.toBe(saved.epoch)
    retire(b, 10, 10) // numbers 0..9 of the new journal: past the saved 3
    const e = await b
      .watch({ from: saved })
      .next()
      .catch((x: unknown) => x)
    expect(e).toBeInstanceOf(JournalGapError)
    expect((e as JournalGapError).details).toMatchObject({ reason: 'otherJournal', fromSeq: 3, fromEpoch: saved.epoch, epoch: b.journalEpoch(), resumeSeq: 10 })
    // Rescan, then watch from where the error says.
    const { epoch, resumeSeq } = (e as JournalGapError).details as { epoch: string; resumeSeq: number }
    b.retire('EPOCH', 30, 'greeks')
    expect((await b.watch({ from: { epoch, seq: resumeSeq } }).next()).value).toMatchObject({ seq: 10, windowIdx: 30 })
  })

  it('a position past the head of this journal is a gap', async () => {
    const c = open()
    retire(c, 2)
    const e = await c
      .watch({ from: { epoch: c.journalEpoch(), seq: 5 } })
      .next()
      .catch((x: unknown) => x)
    expect(e).toBeInstanceOf(JournalGapError)
    expect((e as JournalGapError).details).toMatchObject({ reason: 'ahead', fromSeq: 5, resumeSeq: 2 })
  })

  it('refuses malformed positions', () => {
    const c = open()
    const epoch = c.journalEpoch()
    expect(() => c.watch({ from: { epoch: 'xyz', seq: 0 } })).toThrow(TypeError)
    expect(() => c.watch({ from: { epoch: epoch.toUpperCase() + '0', seq: 0 } })).toThrow(TypeError)
    expect(() => c.watch({ from: { epoch, seq: -1 } })).toThrow(RangeError)
    expect(() => c.watch({ from: { epoch, seq: 0 }, fromSeq: 0 })).toThrow(TypeError)
    expect(() => c.watch({ from: null as unknown as JournalPosition })).toThrow(TypeError)
  })
})
