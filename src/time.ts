/**
 * Time units and the window schedule as the TypeScript API spells it.
 *
 * Units are unambiguous by type: a `bigint` is nanoseconds (since the Unix
 * epoch for instants), a `number` is milliseconds (a whole number: pass a
 * bigint for sub-millisecond precision), a `Date` is an instant. Nothing is
 * rounded silently: values that cannot be represented exactly are refused
 * with a `RangeError`.
 *
 * @module
 */

import { isList } from './args'

/** An instant: `bigint` ns since epoch, `number` ms since epoch, or a `Date`. */
export type TimeInput = bigint | number | Date
/** A duration: `bigint` ns or `number` ms. */
export type DurationInput = bigint | number

/** Evenly spaced windows from `origin`. */
export interface UniformWindowSpace {
  readonly kind: 'uniform'
  readonly origin: TimeInput
  readonly windowDuration: DurationInput
  readonly windowCount: number
}

/** One session (e.g. a trading day's hours) of a session schedule. */
export interface SessionSpec {
  readonly start: TimeInput
  readonly end: TimeInput
  readonly windowDuration: DurationInput
}

/**
 * Windows only inside sessions; indices run on across sessions and a
 * timestamp between sessions falls in no window. A session holds
 * `ceil((end - start) / windowDuration)` windows; the last may be shorter.
 */
export interface SessionWindowSpace {
  readonly kind: 'sessions'
  readonly sessions: readonly SessionSpec[]
}

/** A window schedule. */
export type WindowSpace = UniformWindowSpace | SessionWindowSpace

/** Builders for window schedules. */
export const WindowSpace = {
  /** Evenly spaced windows. */
  uniform(opts: Omit<UniformWindowSpace, 'kind'>): UniformWindowSpace {
    return { kind: 'uniform', ...opts }
  },
  /** Windows inside sessions only. */
  sessions(sessions: readonly SessionSpec[]): SessionWindowSpace {
    return { kind: 'sessions', sessions }
  },
}

const I64_MIN = -(2n ** 63n)
const I64_MAX = 2n ** 63n - 1n

function checkI64(v: bigint, what: string): bigint {
  if (v < I64_MIN || v > I64_MAX) throw new RangeError(`${what} must fit a signed 64-bit count of nanoseconds, got ${v}`)
  return v
}

/** Converts an instant to ns since epoch. */
export function timeToNs(t: TimeInput, what = 'timestamp'): bigint {
  if (typeof t === 'bigint') return checkI64(t, what)
  if (typeof t === 'number') {
    if (!Number.isFinite(t)) throw new RangeError(`${what} must be a finite number of milliseconds, got ${t}`)
    if (!Number.isSafeInteger(t)) {
      throw new RangeError(`${what} must be a whole number of milliseconds (pass a bigint of nanoseconds for more precision), got ${t}`)
    }
    return checkI64(BigInt(t) * 1_000_000n, what)
  }
  if (t instanceof Date) {
    const ms = t.getTime()
    if (!Number.isFinite(ms)) throw new RangeError(`${what} is an invalid Date`)
    return BigInt(ms) * 1_000_000n
  }
  throw new TypeError(`${what} must be a bigint (ns), a number (ms) or a Date, got ${t === null ? 'null' : typeof t}`)
}

/** Converts a duration to ns. */
export function durationToNs(d: DurationInput, what = 'duration'): bigint {
  if (typeof d !== 'bigint' && typeof d !== 'number') {
    throw new TypeError(`${what} must be a bigint (ns) or a number (ms), got ${d === null ? 'null' : typeof d}`)
  }
  const ns = timeToNs(d, what)
  if (ns <= 0n) throw new RangeError(`${what} must be positive, got ${d}`)
  return ns
}

/** The schedule as the native core's JSON (integers exact). */
export function scheduleToJson(ws: WindowSpace): string {
  if (typeof ws !== 'object' || ws === null) throw new TypeError('windowSpace must be an object')
  if (ws.kind === 'uniform') {
    const count = ws.windowCount
    if (typeof count !== 'number') throw new TypeError(`windowCount must be a number, got ${typeof count}`)
    if (!Number.isSafeInteger(count) || count < 1 || count > 0xfffffffe) {
      throw new RangeError(`windowCount must be a whole number from 1 to 4294967294, got ${count}`)
    }
    return `{"kind":"uniform","originNs":${timeToNs(ws.origin, 'origin')},"windowNs":${durationToNs(ws.windowDuration, 'windowDuration')},"windowCount":${count}}`
  }
  if (ws.kind === 'sessions') {
    if (!isList(ws.sessions)) throw new TypeError('sessions must be an array')
    const parts = ws.sessions.map((s, i) => {
      if (typeof s !== 'object' || s === null) throw new TypeError(`sessions[${i}] must be an object`)
      return `{"startNs":${timeToNs(s.start, `sessions[${i}].start`)},"endNs":${timeToNs(s.end, `sessions[${i}].end`)},"windowNs":${durationToNs(s.windowDuration, `sessions[${i}].windowDuration`)}}`
    })
    return `{"kind":"sessions","sessions":[${parts.join(',')}]}`
  }
  throw new TypeError(`windowSpace.kind must be "uniform" or "sessions", got ${JSON.stringify((ws as { kind?: unknown }).kind)}`)
}

/** The persisted schedule as a {@link WindowSpace} with bigint ns values. */
export function scheduleFromJson(json: string): WindowSpace {
  // Parse integers exactly: wrap every number in quotes first.
  const exact = json.replace(/(-?\d+)(?=[,}\]])/g, '"$1"')
  const doc = JSON.parse(exact) as Record<string, unknown>
  if (doc.kind === 'uniform') {
    return {
      kind: 'uniform',
      origin: BigInt(doc.originNs as string),
      windowDuration: BigInt(doc.windowNs as string),
      windowCount: Number(doc.windowCount),
    }
  }
  const sessions = (doc.sessions as Array<Record<string, string>>).map((s) => ({
    start: BigInt(s.startNs!),
    end: BigInt(s.endNs!),
    windowDuration: BigInt(s.windowNs!),
  }))
  return { kind: 'sessions', sessions }
}
