// A property-based test of the public TypeScript API against a simple model
// (fast-check): random sequences of claims, fills, clears, admin calls and
// reads on a few symbols, windows and slot kinds, mixed with invalid
// arguments (NaN, negatives, fractions, huge numbers and bigints, wrong types,
// overlong and control-character symbols). Valid calls must do exactly what
// the model says; invalid ones must throw TypeError, RangeError or a typed
// WindowSpaceError and change nothing; nothing may crash the process.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'

import {
  InvalidSymbolError,
  SlotBusyError,
  SlotFilledError,
  SlotRetiredError,
  UnknownSymbolError,
  VersionConflictError,
  WindowOutOfRangeError,
  WindowSpace,
  WindowSpaceConfig,
  WindowSpaceController,
  WindowSpaceError,
  type SlotKindName,
  type SlotStatus,
} from '../src/index'

const WINDOWS = 20
const SYMBOLS = ['SPY', 'AAPL', 'QQQ']
const KINDS: SlotKindName[] = ['optionTrade', 'greeks', 'rfRate']

interface ModelSlot {
  status: SlotStatus
  version: number
  payloadId: number
}
type Model = { slots: Map<string, ModelSlot>; symbols: Set<string>; payloads: number; claims: Map<string, number> }
const key = (s: string, w: number, k: string) => `${s}/${w}/${k}`
const slotOf = (m: Model, s: string, w: number, k: string): ModelSlot => m.slots.get(key(s, w, k)) ?? { status: 'Empty', version: 0, payloadId: 0 }

const junkNumber = fc.oneof(
  fc.constant(Number.NaN),
  fc.constant(-1),
  fc.constant(1.5),
  fc.constant(2 ** 32),
  fc.constant(Number.POSITIVE_INFINITY),
  fc.constant(2 ** 60),
  fc.constant('3'),
  fc.constant(null),
  fc.constant(undefined),
  fc.constant({}),
  fc.constant(10n),
)
const junkSymbol = fc.oneof(
  fc.constant(''),
  fc.constant('x'.repeat(65)),
  fc.constant('A\nB'),
  fc.constant(' SPY'),
  fc.constant('\u0000'),
  fc.string({ minLength: 65, maxLength: 80 }),
)
const sym = fc.constantFrom(...SYMBOLS)
const win = fc.integer({ min: 0, max: WINDOWS - 1 })
const kind = fc.constantFrom(...KINDS)

type Op =
  | { t: 'resolve'; s: string }
  | { t: 'claim'; s: string; w: number; k: SlotKindName }
  | { t: 'fill'; s: string; w: number; k: SlotKindName; stale: boolean }
  | { t: 'clear'; s: string; w: number; k: SlotKindName }
  | { t: 'forceClear'; s: string; w: number; k: SlotKindName }
  | { t: 'retire'; s: string; w: number; k: SlotKindName }
  | { t: 'read'; s: string; w: number; k: SlotKindName }
  | { t: 'next'; s: string; w: number; k: SlotKindName }
  | { t: 'outOfRange'; s: string; k: SlotKindName }
  | { t: 'junkArg'; which: number; v: unknown }
  | { t: 'junkSymbol'; v: string }

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant('resolve' as const), s: sym }),
  fc.record({ t: fc.constant('claim' as const), s: sym, w: win, k: kind }),
  fc.record({ t: fc.constant('fill' as const), s: sym, w: win, k: kind, stale: fc.boolean() }),
  fc.record({ t: fc.constant('clear' as const), s: sym, w: win, k: kind }),
  fc.record({ t: fc.constant('forceClear' as const), s: sym, w: win, k: kind }),
  fc.record({ t: fc.constant('retire' as const), s: sym, w: win, k: kind }),
  fc.record({ t: fc.constant('read' as const), s: sym, w: win, k: kind }),
  fc.record({ t: fc.constant('next' as const), s: sym, w: win, k: kind }),
  fc.record({ t: fc.constant('outOfRange' as const), s: sym, k: kind }),
  fc.record({ t: fc.constant('junkArg' as const), which: fc.integer({ min: 0, max: 6 }), v: junkNumber }),
  fc.record({ t: fc.constant('junkSymbol' as const), v: junkSymbol }),
)

function expectThrows(f: () => unknown, ...classes: Array<abstract new (...a: never[]) => Error>) {
  let thrown: unknown
  try {
    f()
  } catch (e) {
    thrown = e
  }
  expect(thrown, 'expected a throw').toBeDefined()
  expect(classes.some((c) => thrown instanceof c), `unexpected ${String(thrown)}`).toBe(true)
}

function run(ops: Op[]) {
  const dir = mkdtempSync(join(tmpdir(), 'ws-model-'))
  const { controller: c } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: WINDOWS })))
  const m: Model = { slots: new Map(), symbols: new Set(), payloads: 0, claims: new Map() }
  const set = (s: string, w: number, k: string, v: ModelSlot) => m.slots.set(key(s, w, k), v)
  try {
    for (const o of ops) {
      switch (o.t) {
        case 'resolve': {
          const id = c.resolveSymbol(o.s)
          if (!m.symbols.has(o.s)) m.symbols.add(o.s)
          expect(id).toBe([...m.symbols].indexOf(o.s))
          break
        }
        case 'claim': {
          if (!m.symbols.has(o.s)) {
            expectThrows(() => c.markPending(o.s, o.w, o.k, { leaseMs: 600_000 }), UnknownSymbolError)
            break
          }
          const cur = slotOf(m, o.s, o.w, o.k)
          if (cur.status === 'Empty' || cur.status === 'Cleared') {
            const claim = c.markPending(o.s, o.w, o.k, { leaseMs: 600_000 })
            expect(claim.version).toBe(cur.version + 1)
            set(o.s, o.w, o.k, { status: 'Pending', version: cur.version + 1, payloadId: 0 })
            m.claims.set(key(o.s, o.w, o.k), claim.version)
          } else {
            const cls = cur.status === 'Pending' ? SlotBusyError : cur.status === 'Filled' ? SlotFilledError : SlotRetiredError
            expectThrows(() => c.markPending(o.s, o.w, o.k, { leaseMs: 600_000 }), cls)
          }
          break
        }
        case 'fill': {
          if (!m.symbols.has(o.s)) break
          const cur = slotOf(m, o.s, o.w, o.k)
          const claimed = m.claims.get(key(o.s, o.w, o.k)) ?? 1
          const version = o.stale ? claimed + 7 : claimed
          const store = o.k === 'optionTrade' ? 'trades' : o.k === 'greeks' ? 'greeks' : 'rfRate'
          const id = c.payloadStores()[store].append({ symbol: o.s, windowIdx: o.w, slotKind: o.k, payloadType: 'Json', uri: 'u', checksum: 5n, size: 1 })
          if (cur.status === 'Pending' && cur.version === version) {
            expect(c.setRef(o.s, o.w, o.k, { payloadType: 'Json', payloadId: id, version, checksum: 5n })).toBe(version + 1)
            set(o.s, o.w, o.k, { status: 'Filled', version: version + 1, payloadId: id })
          } else {
            expectThrows(() => c.setRef(o.s, o.w, o.k, { payloadType: 'Json', payloadId: id, version, checksum: 5n }), VersionConflictError)
          }
          break
        }
        case 'clear': {
          if (!m.symbols.has(o.s)) break
          const cur = slotOf(m, o.s, o.w, o.k)
          const version = m.claims.get(key(o.s, o.w, o.k)) ?? 1
          if (cur.status === 'Pending' && cur.version === version) {
            expect(c.clearSlot(o.s, o.w, o.k, { version })).toBe(version + 1)
            set(o.s, o.w, o.k, { status: 'Cleared', version: version + 1, payloadId: 0 })
          } else {
            expectThrows(() => c.clearSlot(o.s, o.w, o.k, { version }), VersionConflictError)
          }
          break
        }
        case 'forceClear': {
          if (!m.symbols.has(o.s)) break
          const cur = slotOf(m, o.s, o.w, o.k)
          if (cur.status === 'Retired') expectThrows(() => c.forceClear(o.s, o.w, o.k), SlotRetiredError)
          else if (cur.status === 'Empty') expect(c.forceClear(o.s, o.w, o.k)).toMatchObject({ from: 'Empty', to: 'Empty' })
          else if (cur.status === 'Cleared') expect(c.forceClear(o.s, o.w, o.k)).toEqual({ from: 'Cleared', to: 'Cleared', version: cur.version })
          else {
            expect(c.forceClear(o.s, o.w, o.k)).toEqual({ from: cur.status, to: 'Cleared', version: cur.version + 1 })
            set(o.s, o.w, o.k, { status: 'Cleared', version: cur.version + 1, payloadId: 0 })
          }
          break
        }
        case 'retire': {
          if (!m.symbols.has(o.s)) break
          const cur = slotOf(m, o.s, o.w, o.k)
          const next = cur.status === 'Retired' ? cur.version : cur.version + 1
          expect(c.retire(o.s, o.w, o.k)).toEqual({ from: cur.status, to: 'Retired', version: next })
          set(o.s, o.w, o.k, { status: 'Retired', version: next, payloadId: 0 })
          break
        }
        case 'read': {
          if (!m.symbols.has(o.s)) {
            expectThrows(() => c.getSlot(o.s, o.w, o.k), UnknownSymbolError)
            break
          }
          const cur = slotOf(m, o.s, o.w, o.k)
          const got = c.getSlot(o.s, o.w, o.k)
          expect({ status: got.status, version: got.version }).toEqual({ status: cur.status, version: cur.version })
          if (cur.status === 'Filled') expect(got.payloadId).toBe(cur.payloadId)
          break
        }
        case 'next': {
          if (!m.symbols.has(o.s)) break
          let expected: number | null = null
          for (let w = o.w; w < WINDOWS; w++) {
            const st = slotOf(m, o.s, w, o.k).status
            if (st !== 'Filled' && st !== 'Retired') {
              expected = w
              break
            }
          }
          expect(c.nextUnfilledWindow(o.s, o.w, o.k)).toBe(expected)
          break
        }
        case 'outOfRange':
          if (m.symbols.has(o.s)) expectThrows(() => c.markPending(o.s, WINDOWS, o.k), WindowOutOfRangeError)
          break
        case 'junkArg': {
          const v = o.v as never
          // A whole number up to 2^53-1, or undefined (the default), is a valid lease.
          if (o.which === 3 && (o.v === undefined || (Number.isSafeInteger(o.v) && (o.v as number) >= 0))) break
          const calls = [
            () => c.markPending(v, 0, 'optionTrade'),
            () => c.markPending('SPY', v, 'optionTrade'),
            () => c.markPending('SPY', 0, v),
            () => c.markPending('SPY', 0, 'optionTrade', { leaseMs: v }),
            () => c.setRef('SPY', 0, 'optionTrade', { payloadType: 'Json', payloadId: v, version: 1, checksum: 1n }),
            () => c.setRef('SPY', 0, 'optionTrade', { payloadType: 'Json', payloadId: 0, version: 1, checksum: typeof v === 'bigint' ? 2n ** 64n : v }),
            () => c.windowMeta(v),
          ]
          expectThrows(calls[o.which]!, TypeError, RangeError, WindowSpaceError)
          break
        }
        case 'junkSymbol':
          expectThrows(() => c.resolveSymbol(o.v), InvalidSymbolError)
          break
      }
    }
    // The shared metrics agree with an exact recount and with the model.
    expect(c.slotMetrics()).toEqual(c.recountSlots())
    for (const k of KINDS) {
      const counted = c.slotMetrics().find((x) => x.slot === k)!.counts
      for (const status of ['Pending', 'Filled', 'Cleared', 'Retired'] as const) {
        expect(counted[status]).toBe([...m.slots.entries()].filter(([kk, s]) => kk.endsWith(`/${k}`) && s.status === status).length)
      }
    }
  } finally {
    c.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

describe('the public API against a model', () => {
  it('does what the model says, and refuses bad input without changing anything', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 120 }), (ops) => run([{ t: 'resolve', s: 'SPY' }, ...ops])),
      { numRuns: 150 },
    )
  })
})
