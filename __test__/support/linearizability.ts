/**
 * A linearizability checker for recorded concurrent histories: Wing and
 * Gong's search with Lowe's cache of (set of operations linearized, model
 * state), as Porcupine implements it.
 *
 * A history is a list of operations, each with the instant it was invoked
 * and the instant it returned, on clocks that all callers share
 * (`process.hrtime.bigint()` is CLOCK_MONOTONIC on Linux, the same in every
 * process of the host). The history is linearizable when the operations can
 * be put in one order that respects real time (an operation that returned
 * before another was invoked comes first) and in which the sequential model
 * gives every operation the answer it really got.
 *
 * The search walks a list of call and return events in time order. At each
 * point the candidates are the operations whose call comes before the first
 * return still in the list; it applies a candidate to the model, removes it
 * from the list and goes on, and backs out when it meets the return of an
 * operation it has not placed. A configuration (which operations are placed,
 * which states the model can be in) met before is not searched again.
 *
 * Operations that may not have happened: an operation whose caller died
 * before it returned took effect at some instant after its call and before
 * the death was seen, or never. Such an operation is *optional*: its `ret`
 * is the last instant it could have taken effect (or null: any time), and
 * when the search reaches that instant without having placed it, it is left
 * out. The model is nondeterministic where the answer does not pin the
 * effect (an operation with no answer): it returns every state the
 * operation can lead to, and the search follows the set of them.
 *
 * When a history is not linearizable, `check` explains the failure from the
 * longest prefix it could linearize: the last operations of that prefix,
 * the states the model could be in after it, and why none of the operations
 * that could come next fits.
 *
 * @module
 */

/** A sequential model of one object. */
export interface Model<S, I, O> {
  /** The states the object can start in. */
  readonly init: readonly S[]
  /**
   * The states `state` moves to when `input` is applied and answers `output`
   * (`undefined`: no answer was seen). A string instead says why that answer
   * is impossible in that state.
   */
  step(state: S, input: I, output: O | undefined): S[] | string
  /** A string that identifies a state: equal states, equal keys. */
  key(state: S): string
  /** A state, for people. */
  describeState(state: S): string
  /** An operation and its answer, for people. */
  describeOperation(input: I, output: O | undefined): string
}

/** One recorded operation. */
export interface Operation<I, O> {
  /** Who called it (process, thread), for messages. */
  readonly client: string
  readonly input: I
  /** The answer; `undefined` when none was seen. */
  readonly output: O | undefined
  /** When it was invoked (ns on the shared monotonic clock). */
  readonly call: bigint
  /**
   * When it returned; for an optional operation, the last instant it can
   * have taken effect; `null`: no such instant (only for optional ones).
   */
  readonly ret: bigint | null
  /** True when it may have had no effect at all (its caller died before it returned). */
  readonly optional: boolean
}

/** What `check` found. */
export type CheckResult =
  | { readonly ok: true; readonly operations: number; readonly configurations: number }
  | { readonly ok: false; readonly operations: number; readonly configurations: number; readonly longestPrefix: number; readonly explanation: string }

/** Options of `check`. */
export interface CheckOptions {
  /** Names the object in the explanation (e.g. the slot). */
  readonly object?: string
  /** How many operations of the longest prefix the explanation shows (default 10). */
  readonly context?: number
  /** Gives up (throws) after searching this many configurations (default 5,000,000). */
  readonly maxConfigurations?: number
}

const INFINITE = (1n << 63n) - 1n

/** A 96-bit Zobrist hash of a set of operations, kept as the set changes. */
class SetHash {
  readonly #words: Uint32Array
  #a = 0
  #b = 0
  #c = 0

  constructor(n: number) {
    this.#words = new Uint32Array(3 * n)
    // A fixed seed: the same history gives the same search.
    let x = 0x9e3779b9
    for (let i = 0; i < this.#words.length; i++) {
      x ^= x << 13
      x ^= x >>> 17
      x ^= x << 5
      this.#words[i] = x >>> 0
    }
  }

  /** Adds or removes operation `i` (the same call does both). */
  toggle(i: number): void {
    this.#a ^= this.#words[3 * i]!
    this.#b ^= this.#words[3 * i + 1]!
    this.#c ^= this.#words[3 * i + 2]!
  }

  /** The hash as a string (a false match between two sets is possible with chance about 2^-96; it could only make the search give up a branch, never accept a wrong history). */
  get value(): string {
    return `${(this.#a >>> 0).toString(36)}.${(this.#b >>> 0).toString(36)}.${(this.#c >>> 0).toString(36)}`
  }
}

interface Frame<S> {
  /** The operation placed (or left out) by this step. */
  readonly op: number
  /** True when the operation was left out: it never took effect. */
  readonly dropped: boolean
  /** The states before the step. */
  readonly states: readonly S[]
  readonly statesKey: string
}

/**
 * Checks that `history` is linearizable with respect to `model`. Every
 * operation that is not optional must have a `ret`.
 */
export function check<S, I, O>(model: Model<S, I, O>, history: readonly Operation<I, O>[], options: CheckOptions = {}): CheckResult {
  const n = history.length
  for (const op of history) {
    if (!op.optional && op.ret === null) throw new Error(`${op.client}: ${model.describeOperation(op.input, op.output)} has no return and is not optional`)
    if (op.ret !== null && op.ret < op.call) throw new Error(`${op.client}: ${model.describeOperation(op.input, op.output)} returns before it is called`)
  }
  const maxConfigurations = options.maxConfigurations ?? 5_000_000

  // Events: 2i is the call of operation i, 2i + 1 its return. In time order; at
  // one instant calls come first (the two operations overlap).
  const time = (e: number) => (e % 2 === 0 ? history[e >> 1]!.call : (history[e >> 1]!.ret ?? INFINITE))
  const events = Array.from({ length: 2 * n }, (_, e) => e).sort((x, y) => {
    const tx = time(x)
    const ty = time(y)
    if (tx !== ty) return tx < ty ? -1 : 1
    return (x % 2) - (y % 2) || x - y
  })
  // A doubly linked list over the events; HEAD = 2n is its sentinel, END = -1.
  const HEAD = 2 * n
  const next = new Int32Array(2 * n + 1)
  const prev = new Int32Array(2 * n + 1)
  let last = HEAD
  for (const e of events) {
    next[last] = e
    prev[e] = last
    last = e
  }
  next[last] = -1
  const unlink = (e: number) => {
    next[prev[e]!] = next[e]!
    if (next[e]! >= 0) prev[next[e]!] = prev[e]!
  }
  const relink = (e: number) => {
    next[prev[e]!] = e
    if (next[e]! >= 0) prev[next[e]!] = e
  }
  // Removing operation i removes its call and its return; putting it back, in reverse order.
  const lift = (i: number) => {
    unlink(2 * i)
    unlink(2 * i + 1)
  }
  const unlift = (i: number) => {
    relink(2 * i + 1)
    relink(2 * i)
  }

  const dedupe = (states: S[]): { states: S[]; key: string } => {
    const byKey = new Map<string, S>()
    for (const s of states) byKey.set(model.key(s), s)
    const keys = [...byKey.keys()].sort()
    return { states: keys.map((k) => byKey.get(k)!), key: keys.join('\n') }
  }
  const apply = (states: readonly S[], op: Operation<I, O>): S[] => {
    const out: S[] = []
    for (const s of states) {
      const r = model.step(s, op.input, op.output)
      if (typeof r !== 'string') out.push(...r)
    }
    return out
  }

  const placed = new SetHash(n)
  const seen = new Set<string>()
  const stack: Frame<S>[] = []
  const start = dedupe([...model.init])
  let states: readonly S[] = start.states
  let statesKey = start.key
  let required = history.filter((op) => !op.optional).length
  // The longest prefix placed so far: copied from the stack only when the
  // search is about to back out of it, not at every step that lengthens it.
  let best: { frames: Frame<S>[]; states: readonly S[] } = { frames: [], states }
  let bestOnStack = false
  const keepBest = () => {
    if (bestOnStack) best = { frames: stack.slice(), states }
    bestOnStack = false
  }
  let configurations = 0

  const push = (i: number, dropped: boolean, nextStates: readonly S[], nextKey: string): boolean => {
    placed.toggle(i)
    const k = `${placed.value}|${nextKey}`
    if (seen.has(k)) {
      placed.toggle(i)
      return false
    }
    seen.add(k)
    if (++configurations > maxConfigurations) {
      throw new Error(`${options.object ?? 'history'}: gave up after ${maxConfigurations} configurations (${n} operations)`)
    }
    stack.push({ op: i, dropped, states, statesKey })
    states = nextStates
    statesKey = nextKey
    lift(i)
    if (!history[i]!.optional) required--
    if (stack.length > best.frames.length) bestOnStack = true
    return true
  }
  /** Undoes the last step; returns its frame, or null when there is none. */
  const pop = (): Frame<S> | null => {
    keepBest()
    const f = stack.pop()
    if (!f) return null
    placed.toggle(f.op)
    unlift(f.op)
    states = f.states
    statesKey = f.statesKey
    if (!history[f.op]!.optional) required++
    return f
  }

  let e = next[HEAD]!
  for (;;) {
    if (required === 0) return { ok: true, operations: n, configurations }
    if (e >= 0 && e % 2 === 0) {
      // A call: try to place the operation here.
      const i = e >> 1
      const after = apply(states, history[i]!)
      if (after.length > 0) {
        const d = dedupe(after)
        if (push(i, false, d.states, d.key)) {
          e = next[HEAD]!
          continue
        }
      }
      e = next[e]!
      continue
    }
    // The first return still in the list (e < 0 cannot happen while a
    // required operation is left: its return is in the list).
    const i = e >> 1
    if (e >= 0 && history[i]!.optional && push(i, true, states, statesKey)) {
      e = next[HEAD]!
      continue
    }
    // Dead end: back out of the last placement and try the next candidate.
    // Leaving an operation out was the last choice of its configuration, so
    // backing out of one backs out further.
    let f = pop()
    while (f && f.dropped) f = pop()
    if (!f) {
      return {
        ok: false,
        operations: n,
        configurations,
        longestPrefix: best.frames.length,
        explanation: explain(model, history, best, options, time),
      }
    }
    e = next[2 * f.op]!
  }
}

/** Nanoseconds as milliseconds since `origin`, for people. */
function at(t: bigint | null, origin: bigint): string {
  if (t === null) return '∞'
  return `${(Number(t - origin) / 1e6).toFixed(3)}`
}

function explain<S, I, O>(
  model: Model<S, I, O>,
  history: readonly Operation<I, O>[],
  best: { frames: Frame<S>[]; states: readonly S[] },
  options: CheckOptions,
  time: (e: number) => bigint,
): string {
  const origin = history.reduce((m, op) => (op.call < m ? op.call : m), history[0]?.call ?? 0n)
  const line = (i: number, left = false) => {
    const op = history[i]!
    const open = op.optional && !left ? ' (may not have happened)' : ''
    return `[${at(op.call, origin)} .. ${at(op.ret, origin)} ms] ${op.client}: ${model.describeOperation(op.input, op.output)}${open}`
  }
  const out: string[] = []
  const placed = new Set(best.frames.map((f) => f.op))
  out.push(
    `${options.object ?? 'history'}: not linearizable. ${history.length} operations; the longest linearizable prefix places ${best.frames.length} of them.`,
  )
  const context = options.context ?? 10
  const shown = best.frames.slice(-context)
  out.push(`The last ${shown.length} of that prefix, in the order the model took them:`)
  for (let k = 0; k < shown.length; k++) {
    const f = shown[k]!
    const after = k + 1 < shown.length ? shown[k + 1]!.states : best.states
    out.push(`  ${f.dropped ? 'left out (never took effect): ' : ''}${line(f.op, f.dropped)}`)
    if (!f.dropped) out.push(`      then: ${after.map((s) => model.describeState(s)).join(' | ')}`)
  }
  if (best.frames.length === 0) out.push(`  (none) start: ${best.states.map((s) => model.describeState(s)).join(' | ')}`)
  // What could come next: every operation not placed whose call is before the
  // first return not placed; the operation of that return had to be among them.
  const pending = history.map((_, i) => i).filter((i) => !placed.has(i))
  const firstReturn = pending.filter((i) => !history[i]!.optional).reduce((m, i) => (m < 0 || time(2 * i + 1) < time(2 * m + 1) ? i : m), -1)
  const limit = firstReturn >= 0 ? time(2 * firstReturn + 1) : null
  const candidates = pending.filter((i) => limit === null || history[i]!.call <= limit).sort((x, y) => (history[x]!.call < history[y]!.call ? -1 : 1))
  if (firstReturn >= 0) out.push(`This operation returned before anything else could be placed, so it had to come next or earlier:`, `  ${line(firstReturn)}`)
  out.push(`None of the ${candidates.length} operations that could come next fits (state: ${best.states.map((s) => model.describeState(s)).join(' | ')}):`)
  for (const i of candidates.slice(0, 12)) {
    const op = history[i]!
    const reasons = new Set<string>()
    for (const s of best.states) {
      const r = model.step(s, op.input, op.output)
      reasons.add(typeof r === 'string' ? r : 'fits here, but nothing fits after it')
    }
    out.push(`  ${line(i)}`, `      ${[...reasons].join('; ')}`)
  }
  if (candidates.length > 12) out.push(`  ... and ${candidates.length - 12} more`)
  return out.join('\n')
}
