/**
 * The slot as a sequential object, for the linearizability checker
 * (`./linearizability`): its state, the model of every operation on it
 * (docs/design.md, "The slot state machine"), and the histories that the
 * linearizability test's engines record (`fixtures/lin-worker.mjs`), read
 * back as operations on single slots.
 *
 * ## History files
 *
 * One file of JSON lines per engine (process or worker thread). Before a
 * call the engine writes its *invoke* line, after the call its *response*
 * line, each with one `write(2)` so that a killed engine leaves every line
 * it finished:
 *
 * ```text
 * {"i":n,"t":"<hrtime ns>","ms":<Date.now()>,"op":"claim","s":"A","w":0,"k":"optionTrade","lease":10}
 * {"r":n,"t":"<hrtime ns>","ms":<Date.now()>,"out":{"kind":"claimed","version":3,"leaseExpiresAt":...}}
 * ```
 *
 * `t` is `process.hrtime.bigint()` (CLOCK_MONOTONIC, shared by every
 * process of the host) taken before the invoke line is written and after the
 * call returned; `ms` is the wall clock at the same instants. Invoke fields:
 * `op` (`claim`, `claimNext`, `renew`, `fill`, `fillMany`, `clear`,
 * `forceClear`, `retire`, `read`, `row`), the slot (`s` symbol, `w` window,
 * `k` slot kind; a `row` names the slot kinds it reports in `kinds`, a
 * `claimNext` the first window `from` and the schedule's `windows`), `lease`
 * (ms), `v` (the claim version a renew, fill or clear presents), a fill's
 * `pt`, `pid`, `cs` (payload type, payload id, checksum as a decimal
 * string), and a `fillMany`'s `items` (each with `s`, `w`, `k`, `v`, `pt`,
 * `pid`, `cs`). `out` is a {@link SlotOutput}, or for a `row`
 * `{"kind":"row","slots":{kind: slot}}`, for a `claimNext`
 * `{"kind":"claims","claims":[{w,version,leaseExpiresAt}]}`, for a
 * `fillMany` `{"kind":"fills","results":[SlotOutput]}`.
 * An invoke line without its response line is an operation whose engine
 * died in it (or before it wrote the line): it may have taken effect at any
 * instant before the death was seen, or never.
 *
 * ## The model
 *
 * The state is what a read shows (status, version, payload type, payload
 * id, checksum, lease deadline) plus what a fill needs beyond it. A fill
 * writes its checksum, tagged with its claim's version, before it commits;
 * of two fills of one claim only the one whose checksum is there first can
 * commit, the other is refused while the slot is still Pending. So a fill is
 * two steps: a hidden *reserve* (the checksum written; `reserved`), which
 * may happen at any instant of the fill's call or not at all, and the
 * commit or refusal the caller sees.
 *
 * Leases depend on time: the core compares the deadline with its coarse
 * real-time clock, read once per call at an instant nobody records. That
 * instant lies within the call, so the clock read lies within [wall clock at
 * invoke − {@link CLOCK_LAG_MS}, wall clock at response] (the wall clock is
 * assumed not to be stepped during a run). A claim is refused as
 * busy only if the deadline lies after some instant of that window, taken
 * over only if it lies at or before the clock read (known exactly from the
 * grant: `leaseExpiresAt − leaseMs`). Where an operation's answer is not
 * known (its engine died), the deadline it wrote is only known to lie in an
 * interval; the state keeps the interval, and later answers narrow it.
 *
 * @module
 */
import { readFileSync } from 'node:fs'

import type { SlotStatus } from '../../src/index'
import type { Model, Operation } from './linearizability'

/** A slot as a read (or a refusal) reports it. */
export interface SlotView {
  readonly status: SlotStatus
  readonly version: number
  readonly payloadType: number
  readonly payloadId: number
  /** Decimal string of the 64-bit checksum; "0" unless Filled. */
  readonly checksum: string
  readonly leaseExpiresAt: number | null
}

/** An operation on one slot, with what the caller knew of the clock. */
export type SlotInput =
  | { readonly op: 'claim'; readonly leaseMs: number; readonly fromMs: number; readonly toMs: number }
  | { readonly op: 'renew'; readonly version: number; readonly leaseMs: number; readonly fromMs: number; readonly toMs: number }
  | { readonly op: 'fill'; readonly version: number; readonly payloadType: number; readonly payloadId: number; readonly checksum: string }
  | { readonly op: 'reserve'; readonly version: number; readonly checksum: string }
  | { readonly op: 'clear'; readonly version: number }
  | { readonly op: 'forceClear' }
  | { readonly op: 'retire' }
  | { readonly op: 'read' }

/** What an operation answered. */
export type SlotOutput =
  | { readonly kind: 'claimed'; readonly version: number; readonly leaseExpiresAt: number }
  | { readonly kind: 'renewed'; readonly leaseExpiresAt: number }
  /** A fill's or a clear's new version. */
  | { readonly kind: 'version'; readonly version: number }
  /** What a force-clear or a retire did. */
  | { readonly kind: 'transition'; readonly from: SlotStatus; readonly to: SlotStatus; readonly version: number }
  | { readonly kind: 'slot'; readonly slot: SlotView }
  | { readonly kind: 'refused'; readonly code: string; readonly slot: SlotView | null }

/** The model's state of one slot. */
export interface SlotState {
  readonly status: SlotStatus
  readonly version: number
  readonly payloadType: number
  readonly payloadId: number
  readonly checksum: string
  /** Pending: the lease deadline lies in [lo, hi] (ms since the epoch). */
  readonly deadline: readonly [number, number] | null
  /** Pending: the checksum the first fill of this claim wrote; only a fill with it can commit. */
  readonly reserved: string | null
}

/** One operation of a history, on the slot `slot` (`symbol/window/kind`). */
export type SlotOperation = Operation<SlotInput, SlotOutput> & { readonly slot: string }

/**
 * How far behind the wall clock (`Date.now()`) the coarse real-time clock
 * the core reads for leases may be, in ms. The coarse clock is the time of a
 * recent kernel tick; on the kernels measured it lags by one to two ticks
 * (4 to 8 ms at 250 Hz), so this allows two ticks at 100 Hz and a margin.
 */
export const CLOCK_LAG_MS = 25

const EMPTY: SlotState = { status: 'Empty', version: 0, payloadType: 0, payloadId: 0, checksum: '0', deadline: null, reserved: null }

const plain = (status: SlotStatus, version: number): SlotState => ({ ...EMPTY, status, version })
const pending = (version: number, lo: number, hi: number): SlotState => ({ ...EMPTY, status: 'Pending', version, deadline: [lo, hi] })

function deadlineText(d: readonly [number, number] | null): string {
  if (!d) return '?'
  return d[0] === d[1] ? `${d[0]}` : `${d[0]}..${d[1]}`
}

function describeView(v: SlotView | null): string {
  if (!v) return 'no slot'
  if (v.status === 'Pending') return `Pending v${v.version} lease until ${v.leaseExpiresAt}`
  if (v.status === 'Filled') return `Filled v${v.version} type ${v.payloadType} payload ${v.payloadId} checksum ${v.checksum}`
  return `${v.status} v${v.version}`
}

/**
 * The state `s` once a read reported `v`: the same slot with its deadline
 * pinned to the one reported, or why `v` is not what `s` shows.
 */
function seen(s: SlotState, v: SlotView | null): SlotState | string {
  if (!v) return `no slot was reported; the slot is ${describeState(s)}`
  const filled = s.status === 'Filled'
  const want = { status: s.status, version: s.version, payloadType: filled ? s.payloadType : 0, payloadId: filled ? s.payloadId : 0, checksum: filled ? s.checksum : '0' }
  const got = { status: v.status, version: v.version, payloadType: v.payloadType, payloadId: v.payloadId, checksum: v.checksum }
  if (JSON.stringify(want) !== JSON.stringify(got)) return `the slot is ${describeState(s)}, not ${describeView(v)}`
  if (s.status !== 'Pending') return v.leaseExpiresAt === null ? s : `a ${s.status} slot has no lease, yet ${v.leaseExpiresAt} was reported`
  const d = v.leaseExpiresAt
  const [lo, hi] = s.deadline!
  if (d === null || d < lo || d > hi) return `the lease runs until ${deadlineText(s.deadline)}, not ${d}`
  return { ...s, deadline: [d, d] }
}

/** The state after the refusal `out`, which must be `code` and report the slot as it is; or why it is not that. */
function refusedAs(out: SlotOutput, code: string, s: SlotState): SlotState[] | string {
  if (out.kind !== 'refused') return `the slot is ${describeState(s)}: expected ${code}, got ${describeOutput(out)}`
  if (out.code !== code) return `the slot is ${describeState(s)}: expected ${code}, got ${out.code}`
  const r = seen(s, out.slot)
  return typeof r === 'string' ? r : [r]
}

function describeOutput(out: SlotOutput | undefined): string {
  if (out === undefined) return 'no answer'
  switch (out.kind) {
    case 'claimed':
      return `v${out.version}, lease until ${out.leaseExpiresAt}`
    case 'renewed':
      return `lease until ${out.leaseExpiresAt}`
    case 'version':
      return `v${out.version}`
    case 'transition':
      return `${out.from} → ${out.to} v${out.version}`
    case 'slot':
      return describeView(out.slot)
    case 'refused':
      return `${out.code} (${describeView(out.slot)})`
  }
}

function claim(s: SlotState, i: Extract<SlotInput, { op: 'claim' }>, out: SlotOutput | undefined, lag: number): SlotState[] | string {
  const from = i.fromMs - lag
  const to = i.toMs
  const claimable = s.status === 'Empty' || s.status === 'Cleared'
  if (out === undefined) {
    if (claimable) return [pending(s.version + 1, from + i.leaseMs, to + i.leaseMs)]
    if (s.status === 'Pending' && s.deadline![0] <= to) return [pending(s.version + 1, Math.max(from, s.deadline![0]) + i.leaseMs, to + i.leaseMs)]
    return `a claim of a ${describeState(s)} slot changes nothing`
  }
  if (out.kind === 'claimed') {
    const now = out.leaseExpiresAt - i.leaseMs
    if (now < from || now > to) return `the grant implies the core read its clock at ${now}, outside the call's [${from}, ${to}]`
    if (out.version !== s.version + 1) return `the slot is ${describeState(s)}: a claim gives v${s.version + 1}, not v${out.version}`
    if (claimable) return [pending(out.version, out.leaseExpiresAt, out.leaseExpiresAt)]
    if (s.status === 'Pending') {
      if (s.deadline![0] > now) return `the lease runs until ${deadlineText(s.deadline)}, after the core's clock read ${now}: no takeover yet`
      return [pending(out.version, out.leaseExpiresAt, out.leaseExpiresAt)]
    }
    return `the slot is ${s.status}: a claim is refused`
  }
  switch (s.status) {
    case 'Empty':
    case 'Cleared':
      return `the slot is ${describeState(s)}: a claim succeeds, yet it answered ${describeOutput(out)}`
    case 'Pending': {
      if (out.kind === 'refused' && out.code === 'ERR_SLOT_BUSY' && out.slot?.leaseExpiresAt != null && out.slot.leaseExpiresAt <= from) {
        return `lease until ${out.slot.leaseExpiresAt} had expired at every instant of the call [${from}, ${to}]: busy is wrong`
      }
      return refusedAs(out, 'ERR_SLOT_BUSY', s)
    }
    case 'Filled':
      return refusedAs(out, 'ERR_SLOT_FILLED', s)
    case 'Retired':
      return refusedAs(out, 'ERR_SLOT_RETIRED', s)
  }
}

function holds(s: SlotState, version: number): boolean {
  return s.status === 'Pending' && s.version === version
}

function renew(s: SlotState, i: Extract<SlotInput, { op: 'renew' }>, out: SlotOutput | undefined, lag: number): SlotState[] | string {
  const from = i.fromMs - lag
  if (!holds(s, i.version)) {
    if (out === undefined) return `a renewal of v${i.version} changes nothing in a ${describeState(s)} slot`
    return refusedAs(out, 'ERR_VERSION_CONFLICT', s)
  }
  if (out === undefined) return [{ ...s, deadline: [from + i.leaseMs, i.toMs + i.leaseMs] }]
  if (out.kind !== 'renewed') return `the claim v${i.version} is current: a renewal succeeds, yet it answered ${describeOutput(out)}`
  const now = out.leaseExpiresAt - i.leaseMs
  if (now < from || now > i.toMs) return `the renewal implies the core read its clock at ${now}, outside the call's [${from}, ${i.toMs}]`
  return [{ ...s, deadline: [out.leaseExpiresAt, out.leaseExpiresAt] }]
}

function fill(s: SlotState, i: Extract<SlotInput, { op: 'fill' }>, out: SlotOutput | undefined): SlotState[] | string {
  const filled: SlotState = { ...EMPTY, status: 'Filled', version: i.version + 1, payloadType: i.payloadType, payloadId: i.payloadId, checksum: i.checksum }
  const conflict = (why: string): SlotState[] | string => {
    if (out === undefined) return `${why}: the fill changes nothing`
    const r = refusedAs(out, 'ERR_VERSION_CONFLICT', s)
    return typeof r === 'string' ? `${why}; ${r}` : r
  }
  if (!holds(s, i.version)) return conflict(`the slot is ${describeState(s)}, not Pending v${i.version}`)
  if (s.reserved !== null && s.reserved !== i.checksum) return conflict(`another fill of claim v${i.version} wrote checksum ${s.reserved} first`)
  if (out === undefined) return [filled]
  if (out.kind !== 'version' || out.version !== i.version + 1) return `the slot is ${describeState(s)}: the fill commits v${i.version + 1}, yet it answered ${describeOutput(out)}`
  return [filled]
}

function reserve(s: SlotState, i: Extract<SlotInput, { op: 'reserve' }>): SlotState[] | string {
  if (!holds(s, i.version) || s.reserved !== null) return `writing checksum ${i.checksum} changes nothing in a ${describeState(s)} slot`
  return [{ ...s, reserved: i.checksum }]
}

function clear(s: SlotState, i: Extract<SlotInput, { op: 'clear' }>, out: SlotOutput | undefined): SlotState[] | string {
  if (!holds(s, i.version)) {
    if (out === undefined) return `a clear of v${i.version} changes nothing in a ${describeState(s)} slot`
    return refusedAs(out, 'ERR_VERSION_CONFLICT', s)
  }
  if (out !== undefined && (out.kind !== 'version' || out.version !== i.version + 1)) {
    return `the claim v${i.version} is current: the clear gives v${i.version + 1}, yet it answered ${describeOutput(out)}`
  }
  return [plain('Cleared', i.version + 1)]
}

function admin(s: SlotState, to: 'Cleared' | 'Retired', out: SlotOutput | undefined): SlotState[] | string {
  const name = to === 'Cleared' ? 'force-clear' : 'retire'
  const unchanged = s.status === to || (to === 'Cleared' && s.status === 'Empty')
  if (to === 'Cleared' && s.status === 'Retired') {
    if (out === undefined) return 'a force-clear of a Retired slot changes nothing'
    return refusedAs(out, 'ERR_SLOT_RETIRED', s)
  }
  const want = unchanged ? { from: s.status, to: s.status, version: s.version } : { from: s.status, to, version: s.version + 1 }
  if (out === undefined) return unchanged ? `a ${name} of a ${s.status} slot changes nothing` : [plain(to, s.version + 1)]
  if (out.kind !== 'transition' || out.from !== want.from || out.to !== want.to || out.version !== want.version) {
    return `the slot is ${describeState(s)}: a ${name} answers ${want.from} → ${want.to} v${want.version}, not ${describeOutput(out)}`
  }
  return unchanged ? [s] : [plain(to, s.version + 1)]
}

/** The slot model, with `lag` the most the core's clock may be behind the wall clock (ms). */
export function makeSlotModel(lag = CLOCK_LAG_MS): Model<SlotState, SlotInput, SlotOutput> {
  return {
    init: [EMPTY],
    step(s, i, out) {
      switch (i.op) {
        case 'claim':
          return claim(s, i, out, lag)
        case 'renew':
          return renew(s, i, out, lag)
        case 'fill':
          return fill(s, i, out)
        case 'reserve':
          return reserve(s, i)
        case 'clear':
          return clear(s, i, out)
        case 'forceClear':
          return admin(s, 'Cleared', out)
        case 'retire':
          return admin(s, 'Retired', out)
        case 'read': {
          if (out === undefined) return 'a read changes nothing'
          if (out.kind !== 'slot') return `a read answers the slot, not ${describeOutput(out)}`
          const r = seen(s, out.slot)
          return typeof r === 'string' ? r : [r]
        }
      }
    },
    key: (s) => `${s.status}:${s.version}:${s.payloadType}:${s.payloadId}:${s.checksum}:${s.deadline?.join('-') ?? ''}:${s.reserved ?? ''}`,
    describeState,
    describeOperation(i, out) {
      const answer = ` → ${describeOutput(out)}`
      switch (i.op) {
        case 'claim':
          return `claim (lease ${i.leaseMs} ms, wall clock ${i.fromMs}..${i.toMs})${answer}`
        case 'renew':
          return `renew v${i.version} (lease ${i.leaseMs} ms, wall clock ${i.fromMs}..${i.toMs})${answer}`
        case 'fill':
          return `fill v${i.version} with payload ${i.payloadId} checksum ${i.checksum}${answer}`
        case 'reserve':
          return `(the fill of v${i.version} writes checksum ${i.checksum})`
        case 'clear':
          return `clear v${i.version}${answer}`
        case 'forceClear':
          return `force-clear${answer}`
        case 'retire':
          return `retire${answer}`
        case 'read':
          return `read${answer}`
      }
    },
  }
}

/** A state, for people. */
function describeState(s: SlotState): string {
  switch (s.status) {
    case 'Pending':
      return `Pending v${s.version} lease until ${deadlineText(s.deadline)}${s.reserved === null ? '' : `, checksum ${s.reserved} written by a fill`}`
    case 'Filled':
      return `Filled v${s.version} type ${s.payloadType} payload ${s.payloadId} checksum ${s.checksum}`
    default:
      return `${s.status} v${s.version}`
  }
}

// ---- histories ------------------------------------------------------------------

/** One fill of a `fillMany` invoke line. */
export interface FillItem {
  readonly s: string
  readonly w: number
  readonly k: string
  readonly v: number
  readonly pt: number
  readonly pid: number
  readonly cs: string
}

/** An invoke line of a history file. */
export interface InvokeLine {
  readonly i: number
  readonly t: string
  readonly ms: number
  readonly op: 'claim' | 'claimNext' | 'renew' | 'fill' | 'fillMany' | 'clear' | 'forceClear' | 'retire' | 'read' | 'row'
  readonly s: string
  readonly w: number
  readonly k?: string
  /** `claimNext`: the first window it may claim, and the windows of the schedule. */
  readonly from?: number
  readonly windows?: readonly number[]
  /** `fillMany`: its fills. */
  readonly items?: readonly FillItem[]
  readonly kinds?: readonly string[]
  readonly lease?: number
  readonly v?: number
  readonly pt?: number
  readonly pid?: number
  readonly cs?: string
}

/** A response line of a history file. */
export interface ResponseLine {
  readonly r: number
  readonly t: string
  readonly ms: number
  readonly out:
    | SlotOutput
    | { readonly kind: 'row'; readonly slots: Readonly<Record<string, SlotView>> }
    /** `claimNext`: the claims it made, by window. */
    | { readonly kind: 'claims'; readonly claims: ReadonlyArray<{ readonly w: number; readonly version: number; readonly leaseExpiresAt: number }> }
    /** `fillMany`: each fill's answer, in the order of the items. */
    | { readonly kind: 'fills'; readonly results: readonly SlotOutput[] }
}

/** When an engine's death was seen: the last instant its open operations can have taken effect. */
export interface Death {
  readonly t: bigint
  readonly ms: number
}

/** The complete lines of a history file (a killed engine may leave a last line cut short). */
export function readLines(file: string): Array<InvokeLine | ResponseLine> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    return []
  }
  // The piece after the last newline is empty, or a line cut short.
  return text
    .split('\n')
    .slice(0, -1)
    .map((l) => JSON.parse(l) as InvokeLine | ResponseLine)
}

/** The answer of a call on one slot (a refusal of a batch call is one too). */
function one(out: ResponseLine['out'] | undefined): SlotOutput | undefined {
  if (out === undefined) return undefined
  if (out.kind === 'row' || out.kind === 'claims' || out.kind === 'fills') throw new Error(`a call on one slot answered ${JSON.stringify(out)}`)
  return out
}

/**
 * The operations of one engine's history lines, per slot. `death`: when the
 * engine was seen dead (killed), or null if it ended normally, in which case
 * an operation without a response is an error of the test.
 */
export function operationsOf(client: string, lines: readonly (InvokeLine | ResponseLine)[], death: Death | null): SlotOperation[] {
  const responses = new Map<number, ResponseLine>()
  for (const l of lines) if ('r' in l) responses.set(l.r, l)
  const ops: SlotOperation[] = []
  for (const l of lines) {
    if (!('i' in l)) continue
    const res = responses.get(l.i)
    if (!res && !death) throw new Error(`${client}: operation ${l.i} (${l.op}) has no response, yet ${client} was not killed`)
    const call = BigInt(l.t)
    const ret = res ? BigInt(res.t) : death!.t
    const toMs = res ? res.ms : death!.ms
    const optional = !res
    const add = (k: string, input: SlotInput, output: SlotOutput | undefined, w = l.w, s = l.s) => ops.push({ slot: `${s}/${w}/${k}`, client, input, output, call, ret, optional })
    const addFill = (f: FillItem, output: SlotOutput | undefined) => {
      add(f.k, { op: 'fill', version: f.v, payloadType: f.pt, payloadId: f.pid, checksum: f.cs }, output, f.w, f.s)
      // The hidden first step: its checksum written, at any instant of the call, or never.
      ops.push({ slot: `${f.s}/${f.w}/${f.k}`, client, input: { op: 'reserve', version: f.v, checksum: f.cs }, output: undefined, call, ret, optional: true })
    }
    const out = res?.out
    switch (l.op) {
      case 'claim':
        add(l.k!, { op: 'claim', leaseMs: l.lease!, fromMs: l.ms, toMs }, one(out))
        break
      case 'renew':
        add(l.k!, { op: 'renew', version: l.v!, leaseMs: l.lease!, fromMs: l.ms, toMs }, one(out))
        break
      case 'claimNext':
        // A claim of each window it returned; a window it did not return was
        // not claimed by it. With no answer, each window may have been claimed.
        for (const w of l.windows!.filter((x) => x >= l.from!)) {
          const input: SlotInput = { op: 'claim', leaseMs: l.lease!, fromMs: l.ms, toMs }
          if (out === undefined) {
            add(l.k!, input, undefined, w)
            continue
          }
          const got = out.kind === 'claims' ? out.claims.find((c) => c.w === w) : undefined
          if (got) add(l.k!, input, { kind: 'claimed', version: got.version, leaseExpiresAt: got.leaseExpiresAt }, w)
        }
        break
      case 'fill':
        addFill({ s: l.s, w: l.w, k: l.k!, v: l.v!, pt: l.pt!, pid: l.pid!, cs: l.cs! }, one(out))
        break
      case 'fillMany':
        l.items!.forEach((f, j) => addFill(f, out?.kind === 'fills' ? out.results[j] : one(out)))
        break
      case 'clear':
        add(l.k!, { op: 'clear', version: l.v! }, one(out))
        break
      case 'forceClear':
      case 'retire':
        add(l.k!, { op: l.op }, one(out))
        break
      case 'read':
        add(l.k!, { op: 'read' }, one(out))
        break
      case 'row':
        // A row is read slot by slot: one read of each slot within the call.
        for (const k of l.kinds!) {
          add(k, { op: 'read' }, out?.kind === 'row' ? { kind: 'slot', slot: out.slots[k]! } : one(out))
        }
        break
    }
  }
  return ops
}

/** Operations grouped by slot (linearizability is local: each slot is checked alone). */
export function bySlot(ops: readonly SlotOperation[]): Map<string, SlotOperation[]> {
  const m = new Map<string, SlotOperation[]>()
  for (const op of ops) {
    let list = m.get(op.slot)
    if (!list) m.set(op.slot, (list = []))
    list.push(op)
  }
  return m
}
