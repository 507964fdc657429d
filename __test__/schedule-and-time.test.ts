// Window schedules and time units: uniform and session schedules, the three
// time types (bigint ns, number ms, Date) giving the same window, window
// metadata, persistence of the schedule (mismatch, roll forward, behind), and
// invalid schedule and time inputs.
import { createHash } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { caught } from './helpers'

import {
  InvalidScheduleError,
  NoWindowForTimestampError,
  ScheduleMismatchError,
  WindowOutOfRangeError,
  WindowSpace,
  WindowSpaceConfig,
  WindowSpaceController,
  durationToNs,
  timeToNs,
  type BootstrapResult,
  type SessionSpec,
} from '../src/index'

const MIN = 60_000
const HOUR = 60 * MIN
const DAY = 24 * HOUR
const NS = 1_000_000n
/** 2024-01-02 00:00 UTC in ms. */
const D0 = Date.UTC(2024, 0, 2)

let dir: string
const open: WindowSpaceController[] = []

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ws-sched-'))
})

afterEach(() => {
  for (const c of open.splice(0)) c.close()
  rmSync(dir, { recursive: true, force: true })
})

function boot(ws: WindowSpace, at = dir): BootstrapResult {
  const r = WindowSpaceController.bootstrap(new WindowSpaceConfig(at, ws))
  open.push(r.controller)
  return r
}

function snapshot(at: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(at)
      .sort()
      .map((f) => [f, createHash('sha256').update(readFileSync(join(at, f))).digest('hex')]),
  )
}


/** Two trading days, 09:30–16:00 UTC, hourly windows (the last of each day 30 min). */
const TRADING: SessionSpec[] = [
  { start: D0 + 9.5 * HOUR, end: D0 + 16 * HOUR, windowDuration: HOUR },
  { start: D0 + DAY + 9.5 * HOUR, end: D0 + DAY + 16 * HOUR, windowDuration: HOUR },
]

describe('uniform schedule', () => {
  const origin = D0 + 14.5 * HOUR
  const uniform = WindowSpace.uniform({ origin, windowDuration: MIN, windowCount: 390 })

  it('bigint ns, number ms and Date give the same window index', () => {
    const { controller: c, storageReport } = boot(uniform)
    expect(storageReport.created).toBe(true)
    expect(storageReport.schedule).toBe('created')
    expect(storageReport.windowCount).toBe(390)
    expect(c.windowCount).toBe(390)

    const ms = origin + 5 * MIN + 1234
    expect(c.windowIdxForTimestamp(ms)).toBe(5)
    expect(c.windowIdxForTimestamp(BigInt(ms) * NS + 999_999n)).toBe(5)
    expect(c.windowIdxForTimestamp(new Date(ms))).toBe(5)
    // Boundaries: the first ns of a window belongs to it, the last ns of the previous one not.
    expect(c.windowIdxForTimestamp(BigInt(origin + 6 * MIN) * NS)).toBe(6)
    expect(c.windowIdxForTimestamp(BigInt(origin + 6 * MIN) * NS - 1n)).toBe(5)
    expect(c.windowIdxForTimestamp(origin)).toBe(0)
    expect(c.windowIdxForTimestamp(new Date(origin))).toBe(0)
    expect(c.windowIdxForTimestamp(BigInt(origin + 390 * MIN) * NS - 1n)).toBe(389)
    expect(c.windowIdxForTimestamp(origin + 390 * MIN - 1)).toBe(389)
  })

  it('timestamps before the first or at/after the end are NoWindowForTimestampError', () => {
    const { controller: c } = boot(uniform)
    for (const ts of [origin - 1, BigInt(origin) * NS - 1n, new Date(origin + 390 * MIN), origin + 390 * MIN, 0, -5]) {
      const e = caught(() => c.windowIdxForTimestamp(ts))
      expect(e).toBeInstanceOf(NoWindowForTimestampError)
      expect((e as NoWindowForTimestampError).code).toBe('ERR_NO_WINDOW_FOR_TIMESTAMP')
    }
  })

  it('windowMeta gives start, duration and schema version', () => {
    const { controller: c } = boot(uniform)
    const m = c.windowMeta(5)
    expect(m.windowIdx).toBe(5)
    expect(m.start).toBe(BigInt(origin + 5 * MIN) * NS)
    expect(m.duration).toBe(60_000_000_000n)
    expect(m.startMs).toBe(origin + 5 * MIN)
    expect(m.durationMs).toBe(MIN)
    expect(m.schemaVersion).toBeGreaterThanOrEqual(1)
    expect(c.windowMeta(389).start).toBe(BigInt(origin + 389 * MIN) * NS)
    expect(c.windowMeta(0).start).toBe(BigInt(origin) * NS)
    expect(() => c.windowMeta(390)).toThrow(WindowOutOfRangeError)
    // The window a meta's start maps back to is that window.
    for (const w of [0, 1, 77, 389]) expect(c.windowIdxForTimestamp(c.windowMeta(w).start)).toBe(w)
  })

  it('sub-millisecond windows with bigint ns values', () => {
    const { controller: c } = boot(WindowSpace.uniform({ origin: 1_000n, windowDuration: 250n, windowCount: 8 }))
    expect(c.windowIdxForTimestamp(1_000n)).toBe(0)
    expect(c.windowIdxForTimestamp(1_249n)).toBe(0)
    expect(c.windowIdxForTimestamp(1_250n)).toBe(1)
    expect(c.windowIdxForTimestamp(2_999n)).toBe(7)
    expect(() => c.windowIdxForTimestamp(3_000n)).toThrow(NoWindowForTimestampError)
    expect(c.windowMeta(3)).toMatchObject({ start: 1_750n, duration: 250n })
    expect(c.windowSpace).toEqual({ kind: 'uniform', origin: 1_000n, windowDuration: 250n, windowCount: 8 })
  })

  it('the persisted schedule is returned with bigint ns values', () => {
    const { controller: c } = boot(uniform)
    expect(c.windowSpace).toEqual({ kind: 'uniform', origin: BigInt(origin) * NS, windowDuration: BigInt(MIN) * NS, windowCount: 390 })
  })
})

describe('session schedule', () => {
  it('indices run on across sessions; the last window of a session may be shorter', () => {
    const { controller: c, storageReport } = boot(WindowSpace.sessions(TRADING))
    expect(storageReport.windowCount).toBe(14)
    expect(c.windowCount).toBe(14)
    // Day 1: 09:30..16:00 is 6.5 h → 7 windows, the 7th 30 min.
    for (let w = 0; w < 6; w++) expect(c.windowMeta(w)).toMatchObject({ windowIdx: w, start: BigInt(D0 + 9.5 * HOUR + w * HOUR) * NS, duration: BigInt(HOUR) * NS })
    expect(c.windowMeta(6)).toMatchObject({ windowIdx: 6, start: BigInt(D0 + 15.5 * HOUR) * NS, duration: BigInt(30 * MIN) * NS, durationMs: 30 * MIN })
    // Day 2 starts at index 7.
    expect(c.windowMeta(7)).toMatchObject({ start: BigInt(D0 + DAY + 9.5 * HOUR) * NS, duration: BigInt(HOUR) * NS })
    expect(c.windowMeta(13)).toMatchObject({ start: BigInt(D0 + DAY + 15.5 * HOUR) * NS, duration: BigInt(30 * MIN) * NS })
    expect(() => c.windowMeta(14)).toThrow(WindowOutOfRangeError)
  })

  it('bigint, number and Date agree inside sessions', () => {
    const { controller: c } = boot(WindowSpace.sessions(TRADING))
    const cases: Array<[number, number]> = [
      [D0 + 9.5 * HOUR, 0],
      [D0 + 10.5 * HOUR - 1, 0],
      [D0 + 15.75 * HOUR, 6],
      [D0 + 16 * HOUR - 1, 6],
      [D0 + DAY + 9.5 * HOUR, 7],
      [D0 + DAY + 12 * HOUR + 17, 9],
      [D0 + DAY + 16 * HOUR - 1, 13],
    ]
    for (const [ms, w] of cases) {
      expect(c.windowIdxForTimestamp(ms)).toBe(w)
      expect(c.windowIdxForTimestamp(BigInt(ms) * NS)).toBe(w)
      expect(c.windowIdxForTimestamp(new Date(ms))).toBe(w)
    }
  })

  it('a timestamp between sessions (or outside all) is NoWindowForTimestampError for every time type', () => {
    const { controller: c } = boot(WindowSpace.sessions(TRADING))
    for (const ms of [D0 + 16 * HOUR, D0 + 20 * HOUR, D0 + DAY + 9.5 * HOUR - 1, D0 + 9.5 * HOUR - 1, D0 + DAY + 16 * HOUR]) {
      for (const ts of [ms, BigInt(ms) * NS, new Date(ms)]) {
        const e = caught(() => c.windowIdxForTimestamp(ts))
        expect(e).toBeInstanceOf(NoWindowForTimestampError)
        expect((e as NoWindowForTimestampError).code).toBe('ERR_NO_WINDOW_FOR_TIMESTAMP')
      }
    }
  })

  it('sessions may have different window durations; bigint session bounds work', () => {
    const { controller: c } = boot(
      WindowSpace.sessions([
        { start: 0n, end: 10_000n, windowDuration: 3_000n }, // 4 windows: 3000,3000,3000,1000
        { start: 20_000n, end: 21_000n, windowDuration: 500n }, // 2 windows
      ]),
    )
    expect(c.windowCount).toBe(6)
    expect(c.windowMeta(3)).toMatchObject({ start: 9_000n, duration: 1_000n })
    expect(c.windowMeta(4)).toMatchObject({ start: 20_000n, duration: 500n })
    expect(c.windowIdxForTimestamp(9_999n)).toBe(3)
    expect(c.windowIdxForTimestamp(20_700n)).toBe(5)
    expect(() => c.windowIdxForTimestamp(15_000n)).toThrow(NoWindowForTimestampError)
    expect(c.windowSpace).toEqual({
      kind: 'sessions',
      sessions: [
        { start: 0n, end: 10_000n, windowDuration: 3_000n },
        { start: 20_000n, end: 21_000n, windowDuration: 500n },
      ],
    })
  })

  it('invalid session schedules are InvalidScheduleError and create nothing', () => {
    const bad: SessionSpec[][] = [
      [],
      [{ start: 1000, end: 0, windowDuration: 100 }],
      [{ start: 1000, end: 1000, windowDuration: 100 }],
      [
        { start: 0, end: 1000, windowDuration: 100 },
        { start: 500, end: 2000, windowDuration: 100 },
      ],
      [
        { start: 5000, end: 6000, windowDuration: 100 },
        { start: 0, end: 1000, windowDuration: 100 },
      ],
    ]
    for (const sessions of bad) {
      const e = caught(() => boot(WindowSpace.sessions(sessions)))
      expect(e).toBeInstanceOf(InvalidScheduleError)
      expect((e as InvalidScheduleError).code).toBe('ERR_INVALID_SCHEDULE')
    }
    expect(readdirSync(dir)).toEqual([])
  })
})

describe('the persisted schedule', () => {
  const base = WindowSpace.uniform({ origin: D0, windowDuration: MIN, windowCount: 10 })

  it('bootstrap with the same schedule reports "same"', () => {
    boot(base).controller.close()
    const { storageReport, controller } = boot(base)
    expect(storageReport.created).toBe(false)
    expect(storageReport.schedule).toBe('same')
    expect(controller.windowCount).toBe(10)
  })

  it('a different schedule is ScheduleMismatchError and leaves every file unchanged', () => {
    const { controller } = boot(base)
    controller.resolveSymbol('SPY')
    const cl = controller.markPending('SPY', 3, 'optionTrade')
    const id = controller.payloadStores().trades.append({ symbol: 'SPY', windowIdx: 3, slotKind: 'optionTrade', payloadType: 'Json', uri: 'u', checksum: 1n, size: 1 })
    controller.setOptionTradeRef('SPY', 3, { payloadType: 'Json', payloadId: id, version: cl.version, checksum: 1n })
    controller.close()
    const before = snapshot(dir)

    const others: WindowSpace[] = [
      WindowSpace.uniform({ origin: D0 + 1, windowDuration: MIN, windowCount: 10 }),
      WindowSpace.uniform({ origin: D0, windowDuration: 2 * MIN, windowCount: 10 }),
      WindowSpace.uniform({ origin: BigInt(D0) * NS + 1n, windowDuration: MIN, windowCount: 10 }),
      WindowSpace.sessions([{ start: D0, end: D0 + 10 * MIN, windowDuration: MIN }]),
    ]
    for (const ws of others) {
      const e = caught(() => boot(ws))
      expect(e).toBeInstanceOf(ScheduleMismatchError)
      expect((e as ScheduleMismatchError).code).toBe('ERR_SCHEDULE_MISMATCH')
      expect(snapshot(dir)).toEqual(before)
    }
    // The directory still opens with its own schedule and holds the fill.
    const { controller: again, storageReport } = boot(base)
    expect(storageReport.schedule).toBe('same')
    expect(again.getSlot('SPY', 3, 'optionTrade')).toMatchObject({ status: 'Filled', version: 2, payloadId: id })
  })

  it('a session schedule may only grow by appending sessions', () => {
    boot(WindowSpace.sessions(TRADING)).controller.close()
    const before = snapshot(dir)
    const changed = [{ ...TRADING[0]!, end: D0 + 15 * HOUR }, TRADING[1]!]
    expect(() => boot(WindowSpace.sessions(changed))).toThrow(ScheduleMismatchError)
    const reordered = [TRADING[1]!, TRADING[0]!]
    // (an unsorted schedule is already invalid on its own)
    expect(() => boot(WindowSpace.sessions(reordered))).toThrow(InvalidScheduleError)
    expect(snapshot(dir)).toEqual(before)
  })

  it('more windows roll forward; a controller open on the old schedule accepts the new windows', () => {
    const { controller: old } = boot(base)
    old.resolveSymbol('SPY')
    expect(() => old.markPending('SPY', 15, 'greeks')).toThrow(WindowOutOfRangeError)

    const { controller: fresh, storageReport } = boot(WindowSpace.uniform({ origin: D0, windowDuration: MIN, windowCount: 20 }))
    expect(storageReport.created).toBe(false)
    expect(storageReport.schedule).toBe('rolledForward')
    expect(storageReport.windowCount).toBe(20)
    expect(fresh.windowCount).toBe(20)
    expect(fresh.windowMeta(19).start).toBe(BigInt(D0 + 19 * MIN) * NS)

    // The old controller adopts the roll-forward on use.
    const claim = old.markPending('SPY', 15, 'greeks')
    expect(claim.windowIdx).toBe(15)
    expect(claim.version).toBe(1)
    expect(old.windowMeta(15).start).toBe(BigInt(D0 + 15 * MIN) * NS)
    expect(old.windowIdxForTimestamp(D0 + 17 * MIN)).toBe(17)
    expect(old.windowCount).toBe(20)
    // Both see the same slot.
    expect(fresh.getSlot('SPY', 15, 'greeks')).toMatchObject({ status: 'Pending', version: 1 })
    expect(() => old.markPending('SPY', 20, 'greeks')).toThrow(WindowOutOfRangeError)
  })

  it('nextUnfilledWindow (and windowCount) on a controller open on the old schedule see rolled-forward windows', () => {
    // (Failed before commit 4a5807a, which fixed it; kept as a regression test.)
    // Regression (this test found the bug; fixed in 4a5807a): after another controller rolls the schedule forward (10 → 20 windows), a
    // controller that was already open keeps windowCount 10, and nextUnfilledWindow /
    // claimNextUnfilled stop at window 10 (null / []) although windows 10..19 exist and are
    // Empty. Only a call that names a window >= 10 (markPending, windowMeta, ...) makes it
    // adopt the new schedule. An engine that loops on claimNextUnfilled never sees the new windows.
    const { controller: old } = boot(base)
    old.resolveSymbol('SPY')
    expect(old.retireRange('SPY', { from: 0, to: 10 }, 'rfRate')).toBe(10)
    boot(WindowSpace.uniform({ origin: D0, windowDuration: MIN, windowCount: 20 }))
    expect(old.nextUnfilledWindow('SPY', 0, 'rfRate')).toBe(10)
    expect(old.windowCount).toBe(20)
  })

  it('claimNextUnfilled on a controller open on the old schedule claims rolled-forward windows', () => {
    // (Failed before commit 4a5807a, which fixed it; kept as a regression test.)
    // Regression (this test found the bug; fixed in 4a5807a): same root cause as above — claimNextUnfilled returns [] instead of [10, 11].
    const { controller: old } = boot(base)
    old.resolveSymbol('SPY')
    expect(old.retireRange('SPY', { from: 0, to: 10 }, 'rfRate')).toBe(10)
    boot(WindowSpace.uniform({ origin: D0, windowDuration: MIN, windowCount: 20 }))
    expect(old.claimNextUnfilled('SPY', 0, 'rfRate', 2).map((x) => x.windowIdx)).toEqual([10, 11])
  })

  it('sessions appended at the end roll forward', () => {
    const { controller: old } = boot(WindowSpace.sessions(TRADING))
    old.resolveSymbol('SPY')
    const day3 = { start: D0 + 2 * DAY + 9.5 * HOUR, end: D0 + 2 * DAY + 16 * HOUR, windowDuration: HOUR }
    const { controller: fresh, storageReport } = boot(WindowSpace.sessions([...TRADING, day3]))
    expect(storageReport.schedule).toBe('rolledForward')
    expect(storageReport.windowCount).toBe(21)
    expect(fresh.windowIdxForTimestamp(D0 + 2 * DAY + 9.5 * HOUR)).toBe(14)
    // The old controller resolves a timestamp of the new session and claims its window.
    expect(old.windowIdxForTimestamp(new Date(D0 + 2 * DAY + 15.9 * HOUR))).toBe(20)
    expect(old.markPending('SPY', 20, 'aggregation').version).toBe(1)
    expect(old.windowMeta(20)).toMatchObject({ duration: BigInt(30 * MIN) * NS })
  })

  it('an older (shorter) schedule on an existing directory is "behind" and keeps the longer one', () => {
    boot(WindowSpace.uniform({ origin: D0, windowDuration: MIN, windowCount: 20 })).controller.close()
    const before = snapshot(dir)
    const { controller, storageReport } = boot(base)
    expect(storageReport.schedule).toBe('behind')
    expect(storageReport.created).toBe(false)
    expect(storageReport.windowCount).toBe(20)
    expect(controller.windowCount).toBe(20)
    expect(controller.windowSpace).toMatchObject({ kind: 'uniform', windowCount: 20 })
    controller.resolveSymbol('SPY')
    expect(controller.markPending('SPY', 19, 'optionQuote').version).toBe(1)
    controller.close()
    // The persisted schedule was not shrunk.
    expect(snapshot(dir)['schedule.json']).toBe(before['schedule.json'])
  })

  it('a session schedule missing the last sessions is "behind"', () => {
    boot(WindowSpace.sessions(TRADING)).controller.close()
    const { controller, storageReport } = boot(WindowSpace.sessions([TRADING[0]!]))
    expect(storageReport.schedule).toBe('behind')
    expect(controller.windowCount).toBe(14)
    expect(controller.windowIdxForTimestamp(D0 + DAY + 10 * HOUR)).toBe(7)
  })
})

describe('invalid time and schedule inputs', () => {
  const cfg = (ws: unknown) => () => new WindowSpaceConfig(dir, ws as WindowSpace)
  const uni = (o: Record<string, unknown>) => cfg({ kind: 'uniform', origin: 0, windowDuration: 1000, windowCount: 10, ...o })
  const ses = (o: Record<string, unknown>) => cfg({ kind: 'sessions', sessions: [{ start: 0, end: 1000, windowDuration: 100, ...o }] })

  it.each([
    ['origin NaN', uni({ origin: NaN })],
    ['origin Infinity', uni({ origin: Infinity })],
    ['origin -Infinity', uni({ origin: -Infinity })],
    ['origin fractional ms', uni({ origin: 0.5 })],
    ['origin beyond safe integer ms', uni({ origin: 2 ** 60 })],
    ['origin bigint beyond i64', uni({ origin: 2n ** 63n })],
    ['origin invalid Date', uni({ origin: new Date(NaN) })],
    ['windowDuration negative', uni({ windowDuration: -1000 })],
    ['windowDuration zero', uni({ windowDuration: 0 })],
    ['windowDuration negative bigint', uni({ windowDuration: -5n })],
    ['windowDuration fractional ms', uni({ windowDuration: 1.5 })],
    ['windowDuration NaN', uni({ windowDuration: NaN })],
    ['windowDuration Infinity', uni({ windowDuration: Infinity })],
    ['windowCount 0', uni({ windowCount: 0 })],
    ['windowCount -1', uni({ windowCount: -1 })],
    ['windowCount 1.5', uni({ windowCount: 1.5 })],
    ['windowCount NaN', uni({ windowCount: NaN })],
    ['windowCount 2**32', uni({ windowCount: 2 ** 32 })],
    ['session start NaN', ses({ start: NaN })],
    ['session end Infinity', ses({ end: Infinity })],
    ['session windowDuration negative', ses({ windowDuration: -100 })],
    ['session windowDuration fractional', ses({ windowDuration: 0.25 })],
  ])('%s → RangeError', (_name, f) => {
    expect(f).toThrow(RangeError)
  })

  it.each([
    ['windowSpace null', cfg(null)],
    ['windowSpace a string', cfg('uniform')],
    ['unknown kind', cfg({ kind: 'weekly' })],
    ['origin a string', uni({ origin: '0' })],
    ['origin null', uni({ origin: null })],
    ['origin undefined', uni({ origin: undefined })],
    ['windowDuration a string', uni({ windowDuration: '1000' })],
    ['windowDuration a Date', uni({ windowDuration: new Date(1000) })],
    ['windowCount a string', uni({ windowCount: '10' })],
    ['windowCount a bigint', uni({ windowCount: 10n })],
    ['sessions not an array', cfg({ kind: 'sessions', sessions: {} })],
    ['a session null', cfg({ kind: 'sessions', sessions: [null] })],
    ['session start a string', ses({ start: 'today' })],
  ])('%s → TypeError', (_name, f) => {
    expect(f).toThrow(TypeError)
  })

  it('windowIdxForTimestamp refuses NaN, Infinity, fractional ms, out-of-range bigints and invalid Dates with RangeError', () => {
    const { controller: c } = boot(WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: 10 }))
    for (const ts of [NaN, Infinity, -Infinity, 1.5, 0.1, Number.MAX_SAFE_INTEGER + 2, 2n ** 63n, -(2n ** 63n) - 1n, new Date(NaN)]) {
      expect(() => c.windowIdxForTimestamp(ts)).toThrow(RangeError)
    }
    // The i64 extremes themselves are valid timestamps (in no window).
    expect(() => c.windowIdxForTimestamp(2n ** 63n - 1n)).toThrow(NoWindowForTimestampError)
    expect(() => c.windowIdxForTimestamp(-(2n ** 63n))).toThrow(NoWindowForTimestampError)
  })

  it('windowIdxForTimestamp refuses strings, null, undefined and objects with TypeError', () => {
    const { controller: c } = boot(WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: 10 }))
    for (const ts of ['1000', null, undefined, {}, [1000], true]) {
      expect(() => c.windowIdxForTimestamp(ts as never)).toThrow(TypeError)
    }
  })

  it('windowMeta refuses bad indices', () => {
    const { controller: c } = boot(WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: 10 }))
    for (const w of [-1, 1.5, NaN, Infinity, 2 ** 32]) expect(() => c.windowMeta(w)).toThrow(RangeError)
    for (const w of ['1', null, undefined, 1n]) expect(() => c.windowMeta(w as never)).toThrow(TypeError)
    expect(() => c.windowMeta(2 ** 32 - 1)).toThrow(WindowOutOfRangeError)
    expect(() => c.windowMeta(10)).toThrow(WindowOutOfRangeError)
  })

  it('timeToNs and durationToNs convert exactly', () => {
    expect(timeToNs(1)).toBe(1_000_000n)
    expect(timeToNs(-1)).toBe(-1_000_000n)
    expect(timeToNs(5n)).toBe(5n)
    expect(timeToNs(new Date(7))).toBe(7_000_000n)
    expect(timeToNs(9_223_372_036_854)).toBe(9_223_372_036_854n * NS) // the largest ms that fits i64 ns
    expect(() => timeToNs(9_223_372_036_855)).toThrow(RangeError)
    expect(() => timeToNs(Number.MAX_SAFE_INTEGER)).toThrow(RangeError)
    expect(durationToNs(1500)).toBe(1_500_000_000n)
    expect(durationToNs(3n)).toBe(3n)
    expect(() => timeToNs(0.5)).toThrow(RangeError)
    expect(() => timeToNs('1' as never)).toThrow(TypeError)
    expect(() => durationToNs(0)).toThrow(RangeError)
    expect(() => durationToNs(0n)).toThrow(RangeError)
    expect(() => durationToNs(new Date(1) as never)).toThrow(TypeError)
  })
})
