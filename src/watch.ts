/**
 * Waiting on other engines' work without polling: the change feed of one
 * controller, built on the change journal every process writes
 * (crates/window-space-core/src/journal.rs) and the addon's watcher thread
 * (crates/window-space-node/src/watch.rs), which sleeps on the journal's
 * shared futex word and calls back here when something may have changed.
 *
 * This module owns the JS side of that: the set of listeners, the
 * acknowledgement that lets the watcher thread sleep again, the journal
 * cursor of each `watch()` iterator, and how the core's verdicts reach the
 * caller: a position the ring overtook, one of another journal, or an entry
 * whose writer died before finishing it is a {@link JournalGapError}, never a
 * silently missed change. Whether a writer is dead is the core's judgement
 * (the process that took the entry's number no longer exists), never a timer.
 *
 * @module
 */
import { AbortError, ClosedError, JournalGapError } from './errors'
import type { NativeController } from './native'
import { SLOT_KIND_NAMES, SLOT_STATUSES, type SlotKindName, type SlotStatus } from './types'

/**
 * A position in the change journal: the journal's epoch and a sequence
 * number in it. Save one to resume a watch later (`watch({ from })`); it is
 * plain JSON.
 */
export interface JournalPosition {
  /**
   * The journal's epoch, 16 lowercase hex digits: a random 64-bit number drawn
   * when the journal file was made. A string rather than a bigint so that a
   * saved position survives `JSON.stringify`; compare epochs with `===`.
   */
  readonly epoch: string
  /** A sequence number of that journal. */
  readonly seq: number
}

/** One change of one slot, made by any process on the host. */
export interface SlotChange {
  /** The epoch of the journal `seq` belongs to; resume after this change with `from: { epoch, seq: seq + 1 }`. */
  readonly epoch: string
  /** Position in the change journal. */
  readonly seq: number
  readonly symbolId: number
  readonly symbol: string
  readonly windowIdx: number
  readonly slotKind: SlotKindName
  readonly from: SlotStatus
  readonly to: SlotStatus
  /** The slot's version after the change. */
  readonly version: number
  /** The payload id when `to` is Filled, else null. */
  readonly payloadId: number | null
}

/** What {@link WindowSpaceController.watch} yields, and from where. */
export interface WatchOptions {
  /** Only changes of these symbols (names or ids); all when omitted. */
  readonly symbols?: readonly (string | number)[]
  /** Only changes of these slot kinds; all when omitted. */
  readonly slotKinds?: readonly SlotKindName[]
  /**
   * The first position to yield, as saved from a change
   * (`{ epoch: change.epoch, seq: change.seq + 1 }`) or from
   * `controller.journalEpoch()` and `journalWatchStart()`. A position of another
   * journal (one made anew since, or from before the host restarted) is a
   * `JournalGapError` with `details.reason === 'otherJournal'`.
   */
  readonly from?: JournalPosition
  /**
   * The first sequence number to yield, in the journal this controller has
   * open (use `from` for positions saved across restarts). Default, when
   * neither is given: `controller.journalWatchStart()`, i.e. every change
   * made from now on. When a writer in flight holds an earlier number (it
   * may not have made its change yet), the watch starts there: it also
   * yields the changes committed since that number, and waits for that
   * writer, in journal order.
   */
  readonly fromSeq?: number
  /** Ends the iteration with an `AbortError`. */
  readonly signal?: AbortSignal
}

/** Why a watcher cannot vouch for every change since its position (`JournalGapError.details.reason`). */
export type JournalGapReason =
  /** The bounded journal overtook the position. */
  | 'overtaken'
  /** The process that took entry `fromSeq`'s number died before writing it: whether that slot changed is unknown. */
  | 'abandoned'
  /** The position is in another journal (`details.fromEpoch`): one made anew since, or from before the host restarted. */
  | 'otherJournal'
  /** The position is past the journal's head: a number it never handed out. */
  | 'ahead'
  /** A journal entry that cannot be decoded. */
  | 'damaged'

/** The details of a {@link JournalGapError}: rescan, then watch from `{ epoch, seq: resumeSeq }`. */
export interface JournalGapDetails {
  readonly reason: JournalGapReason
  /** The epoch of the position that could not be continued. */
  readonly fromEpoch: string
  /** Its sequence number. */
  readonly fromSeq: number
  /** The epoch of the journal open now. */
  readonly epoch: string
  /** Where to watch from after a rescan, in that journal. */
  readonly resumeSeq: number
  readonly [key: string]: unknown
}

/** Changes read per native call. */
const BATCH = 256
const GAP_REASONS: Record<number, JournalGapReason> = { [-1]: 'overtaken', [-2]: 'otherJournal', [-3]: 'ahead', [-4]: 'damaged' }
const IN_FLIGHT = 1
const ABANDONED = 2

/** A journal epoch as the native calls take it. */
export function checkEpoch(epoch: unknown, what: string): string {
  if (typeof epoch !== 'string' || !/^[0-9a-f]{16}$/.test(epoch)) {
    throw new TypeError(`${what} must be a journal epoch (16 lowercase hex digits), got ${typeof epoch === 'string' ? JSON.stringify(epoch) : typeof epoch}`)
  }
  return epoch
}

/**
 * The listeners of one controller. The watcher thread runs while anyone
 * listens, and keeps the process alive meanwhile (like a pending timer).
 */
export class ChangeFeed {
  readonly #native: () => NativeController
  readonly #listeners = new Set<() => void>()
  #running = false

  constructor(native: () => NativeController) {
    this.#native = native
  }

  /**
   * Calls `listener` whenever something may have changed: once soon after
   * the watcher thread starts, then whenever an entry is committed or judged
   * abandoned. Returns the unsubscribe function.
   */
  subscribe(listener: () => void): () => void {
    if (!this.#running) {
      this.#native().startWatcher(() => this.#notify())
      this.#running = true
    }
    this.#listeners.add(listener)
    return () => {
      if (!this.#listeners.delete(listener)) return
      if (this.#listeners.size === 0 && this.#running) this.stop()
    }
  }

  #notify(): void {
    for (const l of [...this.#listeners]) {
      try {
        l()
      } catch {
        // a listener's failure is its own (it settles its promise); keep the others going
      }
    }
    if (this.#running) {
      try {
        this.#native().watcherAck()
      } catch {
        // closed meanwhile
      }
    }
  }

  /** Stops the watcher thread; listeners stay registered but are not called. */
  stop(): void {
    this.#running = false
    try {
      this.#native().stopWatcher()
    } catch {
      // closed already: the thread is gone with it
    }
  }

  /** Wakes every listener once, so each notices a closed controller or an abort. */
  closeAll(): void {
    const ls = [...this.#listeners]
    this.#listeners.clear()
    this.#running = false
    for (const l of ls) {
      try {
        l()
      } catch {
        // ignore
      }
    }
  }
}

/**
 * Reads the journal from a position, filtering, and turns the core's gap
 * verdicts into {@link JournalGapError}. The controller supplies the native
 * handle and the symbol names.
 */
export class JournalCursor {
  readonly #epoch: string
  #next: number
  readonly #symbols: Set<number> | null
  readonly #kinds: Set<number> | null
  /** BATCH changes of 8 numbers, then why the read stopped, then the sequence number to read from next. */
  readonly #buf = new Float64Array(BATCH * 8 + 2)

  constructor(from: JournalPosition, symbols: Set<number> | null, kinds: Set<number> | null) {
    this.#epoch = from.epoch
    this.#next = from.seq
    this.#symbols = symbols
    this.#kinds = kinds
  }

  get next(): number {
    return this.#next
  }

  /**
   * Reads what is there: the changes that pass the filter, and a gap to
   * report after them, if the read met one (the cursor is then past it).
   * Reads nothing past an entry whose writer is still at work.
   */
  read(n: NativeController, symbolName: (id: number) => string): { changes: SlotChange[]; gap: JournalGapError | null } {
    const out: SlotChange[] = []
    const buf = this.#buf
    for (;;) {
      const from = this.#next
      const r = n.readJournal(this.#epoch, from, buf)
      const next = buf[buf.length - 1]!
      if (r < 0) return { changes: out, gap: this.#gap(n, GAP_REASONS[r] ?? 'damaged', from, next) }
      const end = buf[buf.length - 2]!
      for (let i = 0; i < r; i++) {
        const o = i * 8
        const symbolId = buf[o + 1]!
        const kind = buf[o + 3]!
        if ((this.#symbols && !this.#symbols.has(symbolId)) || (this.#kinds && !this.#kinds.has(kind))) continue
        const to = SLOT_STATUSES[buf[o + 5]!]!
        out.push({
          epoch: this.#epoch,
          seq: buf[o]!,
          symbolId,
          symbol: symbolName(symbolId),
          windowIdx: buf[o + 2]!,
          slotKind: SLOT_KIND_NAMES[kind]!,
          from: SLOT_STATUSES[buf[o + 4]!]!,
          to,
          version: buf[o + 6]!,
          payloadId: to === 'Filled' ? buf[o + 7]! : null,
        })
      }
      this.#next = next
      if (end === ABANDONED) return { changes: out, gap: this.#gap(n, 'abandoned', next, next + 1) }
      // One batch a call, so what a watcher holds stays bounded; read on only
      // while entries went by and none passed the filter (or all were no-change entries).
      if (out.length > 0 || end === IN_FLIGHT || next === from) return { changes: out, gap: null }
    }
  }

  /** The gap at `fromSeq`; the cursor moves to where reading can go on. */
  #gap(n: NativeController, reason: JournalGapReason, fromSeq: number, resumeSeq: number): JournalGapError {
    const epoch = n.journalEpoch()
    const details: JournalGapDetails = { reason, fromEpoch: this.#epoch, fromSeq, epoch, resumeSeq }
    const then = `rescan, then watch from { epoch: '${epoch}', seq: ${resumeSeq} }`
    const why: Record<JournalGapReason, string> = {
      overtaken: `the change journal overtook this watcher at sequence ${fromSeq} (it keeps the last ${n.journalCapacity()} changes)`,
      abandoned: `change ${fromSeq} of the journal was never finished: the process that took its number died before writing it, so whether its slot changed is unknown`,
      otherJournal: `position ${fromSeq} is in change journal ${this.#epoch}, but the journal open now is ${epoch} (made anew since, or from before the host restarted)`,
      ahead: `sequence ${fromSeq} is past the head of the change journal: it never handed that number out`,
      damaged: `an entry of the change journal after sequence ${fromSeq} cannot be decoded`,
    }
    if (reason !== 'otherJournal') this.#next = resumeSeq
    return new JournalGapError(`${why[reason]}; ${then}`, details)
  }
}

/** What a {@link ChangeIterator} needs of its controller. */
export interface ChangeSource {
  readonly feed: ChangeFeed
  native(): NativeController
  closed(): boolean
  symbolName(id: number): string
}

/**
 * The async iterator `watch()` returns. Changes are read from the journal
 * only when the consumer asks for the next one, a batch at a time, so a slow
 * consumer holds at most one batch and, if it falls a whole journal behind,
 * gets {@link JournalGapError}. The watcher thread's callbacks only wake a
 * waiting `next()`. `return()` ends it at once, also while a `next()` waits.
 */
export class ChangeIterator implements AsyncIterableIterator<SlotChange> {
  readonly #src: ChangeSource
  readonly #cursor: JournalCursor
  readonly #signal: AbortSignal | undefined
  #batch: SlotChange[] = []
  #at = 0
  #failure: unknown = null
  #done = false
  #wake: (() => void) | null = null
  #unsubscribe: () => void = () => {}
  /** next() calls run one after another. */
  #chain: Promise<unknown> = Promise.resolve()
  readonly #onAbort = () => {
    this.#failure ??= abortErrorOf(this.#signal!, 'watch')
    this.#poke()
  }

  constructor(src: ChangeSource, cursor: JournalCursor, signal: AbortSignal | undefined) {
    this.#src = src
    this.#cursor = cursor
    this.#signal = signal
    if (signal?.aborted) {
      this.#failure = abortErrorOf(signal, 'watch')
      return
    }
    this.#unsubscribe = src.feed.subscribe(() => this.#poke())
    signal?.addEventListener('abort', this.#onAbort, { once: true })
  }

  #poke(): void {
    const w = this.#wake
    this.#wake = null
    w?.()
  }

  #finish(): void {
    if (this.#done) return
    this.#done = true
    this.#unsubscribe()
    this.#signal?.removeEventListener('abort', this.#onAbort)
    this.#batch = []
    this.#poke()
  }

  next(): Promise<IteratorResult<SlotChange>> {
    const p = this.#chain.then(() => this.#next())
    this.#chain = p.catch(() => undefined)
    return p
  }

  async #next(): Promise<IteratorResult<SlotChange>> {
    for (;;) {
      if (this.#done) return { done: true, value: undefined }
      if (this.#at < this.#batch.length) return { done: false, value: this.#batch[this.#at++]! }
      if (this.#failure !== null) {
        const f: unknown = this.#failure
        this.#finish()
        throw f
      }
      if (this.#src.closed()) {
        this.#failure = new ClosedError('the controller was closed while watching')
        continue
      }
      this.#batch = []
      this.#at = 0
      try {
        const { changes, gap } = this.#cursor.read(this.#src.native(), (id) => this.#src.symbolName(id))
        this.#batch = changes
        // The changes before a gap come first, then the gap.
        if (gap) this.#failure = gap
        if (changes.length > 0 || gap) continue
      } catch (e) {
        this.#failure = e
        continue
      }
      // Nothing to read now (or only up to an entry whose writer is at work):
      // the watcher thread wakes this when something is committed or abandoned.
      await new Promise<void>((r) => (this.#wake = r))
    }
  }

  /** Stops watching; a `next()` that is waiting resolves as done. */
  return(): Promise<IteratorResult<SlotChange>> {
    this.#finish()
    return Promise.resolve({ done: true, value: undefined })
  }

  /** Stops watching and rejects with `err`. */
  throw(err?: unknown): Promise<IteratorResult<SlotChange>> {
    this.#finish()
    return Promise.reject(err)
  }

  [Symbol.asyncIterator](): this {
    return this
  }
}

/** Rejects or throws an `AbortError` for an aborted signal. */
export function abortErrorOf(signal: AbortSignal, what: string): AbortError {
  const reason = signal.reason instanceof Error ? `: ${signal.reason.message}` : ''
  return new AbortError(`${what} was aborted${reason}`)
}
