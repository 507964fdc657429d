// The linearizability checker (support/linearizability.ts) with the slot
// model (support/slot-model.ts), on histories written by hand: it rejects
// the anomalies it is there to find — two claims granted the same version,
// a read of a version before the claim that made it was called, a Filled
// slot with the checksum of another fill, a stale fill accepted after a
// takeover, a refusal whose slot contradicts it, a busy verdict on a lease
// that had expired — and accepts what concurrency allows: overlapping calls
// taking effect in either order, calls of a killed engine that did or did
// not take effect, two fills of one claim where the second is refused while
// the first has written its checksum but not yet committed.
import { describe, expect, it } from 'vitest'

import { check, type Model, type Operation } from './support/linearizability'
import { makeSlotModel, type SlotInput, type SlotOutput, type SlotState, type SlotView } from './support/slot-model'

const model = makeSlotModel(4)
const T0 = 1_700_000_000_000 // wall clock (ms) of every call here
type Op = Operation<SlotInput, SlotOutput>

/** An operation from `call` to `ret` (µs; wall clock T0 throughout). */
function op(client: string, call: number, ret: number | null, input: SlotInput, output: SlotOutput | undefined): Op {
  return { client, input, output, call: BigInt(call * 1000), ret: ret === null ? null : BigInt(ret * 1000), optional: output === undefined }
}
const claim = (client: string, call: number, ret: number | null, output: SlotOutput | undefined, leaseMs = 100) => op(client, call, ret, { op: 'claim', leaseMs, fromMs: T0, toMs: T0 }, output)
/** A fill: the call and its hidden first step (its checksum written at some instant of the call, or never). */
function fill(client: string, call: number, ret: number | null, version: number, payloadId: number, checksum: string, output: SlotOutput | undefined): Op[] {
  const f = op(client, call, ret, { op: 'fill', version, payloadType: 2, payloadId, checksum }, output)
  return [f, { ...f, input: { op: 'reserve', version, checksum }, output: undefined, optional: true }]
}
const read = (client: string, call: number, ret: number, slot: SlotView) => op(client, call, ret, { op: 'read' }, { kind: 'slot', slot })

const granted = (version: number, leaseMs = 100): SlotOutput => ({ kind: 'claimed', version, leaseExpiresAt: T0 + leaseMs })
const pendingView = (version: number, leaseMs = 100): SlotView => ({ status: 'Pending', version, payloadType: 0, payloadId: 0, checksum: '0', leaseExpiresAt: T0 + leaseMs })
const filledView = (version: number, payloadId: number, checksum: string): SlotView => ({ status: 'Filled', version, payloadType: 2, payloadId, checksum, leaseExpiresAt: null })
const plainView = (status: 'Empty' | 'Cleared' | 'Retired', version: number): SlotView => ({ status, version, payloadType: 0, payloadId: 0, checksum: '0', leaseExpiresAt: null })
const refused = (code: string, slot: SlotView): SlotOutput => ({ kind: 'refused', code, slot })

function verdict(history: Op[], m: Model<SlotState, SlotInput, SlotOutput> = model) {
  return check(m, history, { object: 'slot S/0/optionTrade' })
}

describe('the checker rejects', () => {
  it('two claims granted the same version, one after the other or overlapping', () => {
    expect(verdict([claim('a', 0, 10, granted(1)), claim('b', 20, 30, granted(1))]).ok).toBe(false)
    expect(verdict([claim('a', 0, 10, granted(1)), claim('b', 5, 15, granted(1))]).ok).toBe(false)
  })

  it('a read of a version before the claim that made it was called', () => {
    const r = verdict([read('r', 0, 10, pendingView(1)), claim('a', 20, 30, granted(1))])
    expect(r.ok).toBe(false)
    // The explanation names the slot, the prefix and why the read cannot come next.
    if (!r.ok) {
      expect(r.explanation).toContain('slot S/0/optionTrade: not linearizable')
      expect(r.explanation).toContain('r: read → Pending v1')
      expect(r.explanation).toContain('the slot is Empty v0, not Pending v1')
    }
  })

  it('a Filled slot with the checksum of another fill of the same claim', () => {
    const history = [
      claim('a', 0, 10, granted(1)),
      ...fill('a', 20, 40, 1, 7, '111', { kind: 'version', version: 2 }),
      ...fill('b', 25, 45, 1, 8, '222', refused('ERR_VERSION_CONFLICT', filledView(2, 7, '111'))),
      read('r', 50, 60, filledView(2, 7, '222')),
    ]
    const r = verdict(history)
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.explanation).toContain('not Filled v2 type 2 payload 7 checksum 222')
  })

  it('a fill of a claim that was taken over', () => {
    const history = [
      claim('a', 0, 10, granted(1, 0), 0), // a lease of 0 ms: expired at once
      claim('b', 20, 30, granted(2, 100)),
      ...fill('a', 40, 50, 1, 7, '111', { kind: 'version', version: 2 }),
    ]
    expect(verdict(history).ok).toBe(false)
  })

  it('a refusal whose slot contradicts it: busy with a Filled slot', () => {
    const history = [
      claim('a', 0, 10, granted(1)),
      ...fill('a', 20, 30, 1, 7, '111', { kind: 'version', version: 2 }),
      claim('b', 15, 35, refused('ERR_SLOT_BUSY', filledView(2, 7, '111'))),
    ]
    expect(verdict(history).ok).toBe(false)
  })

  it('a force-clear that answers a transition the state machine never makes', () => {
    const history = [
      claim('a', 0, 10, granted(1)),
      op('admin', 20, 30, { op: 'forceClear' }, { kind: 'transition', from: 'Pending', to: 'Pending', version: 1 }),
    ]
    expect(verdict(history).ok).toBe(false)
  })

  it('busy on a lease that had expired before the call began', () => {
    // The lease ran until T0 + 1; the call's wall clock is T0 + 50 and later (the core's clock lags by 4 ms at most here).
    const late = (call: number, ret: number, output: SlotOutput) => op('b', call, ret, { op: 'claim', leaseMs: 100, fromMs: T0 + 50, toMs: T0 + 60 }, output)
    const history = [claim('a', 0, 10, granted(1, 1), 1), late(20, 30, refused('ERR_SLOT_BUSY', pendingView(1, 1)))]
    expect(verdict(history).ok).toBe(false)
    // Within 4 ms of the deadline the core's clock may still read before it: busy is allowed.
    const near = op('b', 20, 30, { op: 'claim', leaseMs: 100, fromMs: T0 + 4, toMs: T0 + 6 }, refused('ERR_SLOT_BUSY', pendingView(1, 1)))
    expect(verdict([claim('a', 0, 10, granted(1, 1), 1), near]).ok).toBe(true)
  })

  it('an effect of a killed engine’s call before that call was made, or after the engine was seen dead', () => {
    const dead = claim('k', 20, 30, undefined) // killed; death seen at 30
    expect(verdict([read('r', 0, 10, pendingView(1)), dead]).ok).toBe(false)
    // It may not take effect after its death was seen: a later read cannot find Empty and then Pending.
    expect(verdict([dead, read('r', 40, 50, plainView('Empty', 0)), read('r', 60, 70, { ...pendingView(1), leaseExpiresAt: T0 + 100 })]).ok).toBe(false)
  })
})

describe('the checker accepts', () => {
  it('overlapping claims won by either caller', () => {
    expect(verdict([claim('a', 0, 20, granted(1)), claim('b', 10, 30, refused('ERR_SLOT_BUSY', pendingView(1)))]).ok).toBe(true)
    expect(verdict([claim('a', 0, 20, refused('ERR_SLOT_BUSY', pendingView(1))), claim('b', 10, 30, granted(1))]).ok).toBe(true)
  })

  it('a read overlapping a fill that sees the slot before or after it', () => {
    const before = [claim('a', 0, 10, granted(1)), ...fill('a', 20, 40, 1, 7, '111', { kind: 'version', version: 2 })]
    expect(verdict([...before, read('r', 25, 35, pendingView(1))]).ok).toBe(true)
    expect(verdict([...before, read('r', 25, 35, filledView(2, 7, '111'))]).ok).toBe(true)
    // Once the fill returned, only after.
    expect(verdict([...before, read('r', 45, 50, pendingView(1))]).ok).toBe(false)
  })

  it('a killed engine’s claim that took effect, or never did', () => {
    const dead = claim('k', 0, 10, undefined)
    expect(verdict([dead, read('r', 20, 30, { ...pendingView(1), leaseExpiresAt: T0 + 100 })]).ok).toBe(true)
    expect(verdict([dead, read('r', 20, 30, plainView('Empty', 0))]).ok).toBe(true)
  })

  it('a second fill of one claim refused while the first has written its checksum but not committed', () => {
    const history = [
      claim('a', 0, 10, granted(1)),
      // a's fill is stopped between its two steps; b's fill of the same claim is refused meanwhile.
      ...fill('a', 20, 100, 1, 7, '111', { kind: 'version', version: 2 }),
      ...fill('b', 30, 40, 1, 8, '222', refused('ERR_VERSION_CONFLICT', pendingView(1))),
      read('r', 50, 60, pendingView(1)),
      read('r', 110, 120, filledView(2, 7, '111')),
    ]
    expect(verdict(history).ok).toBe(true)
    // Without the hidden step (a fill as one atomic step), the refusal of b cannot be explained.
    expect(verdict(history.filter((o) => o.input.op !== 'reserve')).ok).toBe(false)
  })

  it('a takeover once the lease has expired, and the old holder’s fill refused', () => {
    const history = [
      claim('a', 0, 10, granted(1, 0), 0),
      claim('b', 20, 30, granted(2, 100)),
      ...fill('a', 40, 50, 1, 7, '111', refused('ERR_VERSION_CONFLICT', pendingView(2))),
      ...fill('b', 60, 70, 2, 8, '222', { kind: 'version', version: 3 }),
      read('r', 80, 90, filledView(3, 8, '222')),
    ]
    expect(verdict(history).ok).toBe(true)
  })
})
