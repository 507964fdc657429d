/**
 * Waiting on other engines' work without polling: the change feed of one
 * controller, built on the change journal every process writes
 * (crates/window-space-core/src/journal.rs) and the addon's watcher thread
 * (crates/window-space-node/src/watch.rs), which sleeps on the journal's
 * shared futex word and calls back here when the journal moved.
 *
 * This module owns the JS side of that: the set of listeners, the
 * acknowledgement that lets the watcher thread sleep again, the journal
 * cursor of each `watch()` iterator, and the gap rules (a cursor the ring
 * overtook, or an entry a dead writer never finished, is a
 * {@link JournalGapError}, never a silently missed change).
 *
 * @module
 */
import { AbortError, ClosedError, JournalGapError } from './errors'
import type { NativeController } from './native'
import { SLOT_KIND_NAMES, SLOT_STATUSES, type SlotKindName, type SlotStatus } from './types'

/** One change of one slot, made by any process on the host. */
export interface SlotChange {
  /** Position in the change journal; resume a watch after it with `fromSeq: seq + 1`. */
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
   * First journal sequence number to yield (see {@link SlotChange.seq});
   * default: the journal's head now, i.e. only changes made from now on.
   */
  readonly fromSeq?: number
  /** Ends the iteration with an `AbortError`. */
  readonly signal?: AbortSignal
}

/** How long an entry may stay numbered but unwritten before it counts as abandoned (its writer died). */
export const ABANDONED_ENTRY_MS = 2000
/** How often a reader stuck at such an entry looks again (only while stuck). */
const STUCK_RECHECK_MS = 25
/** Changes read per native call. */
const BATCH = 256

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

  /** The journal's head now: the sequence number the next change will get. */
  head(): number {
    return this.#native().journalHead()
  }

  /**
   * Calls `listener` whenever the journal moved after `knownHead` (and at
   * least once if it already has). Returns the unsubscribe function.
   */
  subscribe(listener: () => void, knownHead: number): () => void {
    if (!this.#running) {
      this.#native().startWatcher(() => this.#notify(), knownHead)
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
 * Reads the journal from a cursor, filtering, with the gap rules. The
 * controller supplies the native handle and the symbol names.
 */
export class JournalCursor {
  #next: number
  readonly #symbols: Set<number> | null
  readonly #kinds: Set<number> | null
  /** BATCH changes of 8 numbers, then the sequence number to read from next. */
  readonly #buf = new Float64Array(BATCH * 8 + 1)
  #stuckAt = -1
  #stuckSince = 0

  constructor(fromSeq: number, symbols: Set<number> | null, kinds: Set<number> | null) {
    this.#next = fromSeq
    this.#symbols = symbols
    this.#kinds = kinds
  }

  get next(): number {
    return this.#next
  }

  /**
   * Reads what is there. Returns the changes that pass the filter and whether
   * it stopped at an entry still being written (look again soon). Throws
   * {@link JournalGapError} if changes since the cursor cannot all be seen.
   */
  read(n: NativeController, symbolName: (id: number) => string): { changes: SlotChange[]; stuck: boolean } {
    const out: SlotChange[] = []
    const buf = this.#buf
    for (;;) {
      const r = n.readJournal(this.#next, buf)
      if (r < 0) {
        const resumeSeq = -r - 1
        throw new JournalGapError(
          `the change journal overtook this watcher at sequence ${this.#next} (it keeps the last ${n.journalCapacity()} changes); rescan, then watch from ${resumeSeq}`,
          { fromSeq: this.#next, resumeSeq },
        )
      }
      const count = Math.floor(r / 2)
      const pending = r % 2 === 1
      const next = buf[BATCH * 8]!
      for (let i = 0; i < count; i++) {
        const o = i * 8
        const symbolId = buf[o + 1]!
        const kind = buf[o + 3]!
        if ((this.#symbols && !this.#symbols.has(symbolId)) || (this.#kinds && !this.#kinds.has(kind))) continue
        const to = SLOT_STATUSES[buf[o + 5]!]!
        out.push({
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
      const progressed = next > this.#next
      this.#next = next
      if (pending) {
        const now = Date.now()
        if (this.#stuckAt !== this.#next) {
          this.#stuckAt = this.#next
          this.#stuckSince = now
        } else if (now - this.#stuckSince >= ABANDONED_ENTRY_MS) {
          const at = this.#next
          this.#next = at + 1
          this.#stuckAt = -1
          throw new JournalGapError(
            `change ${at} of the journal was never finished (its writer died mid-entry); rescan, then watch from ${at + 1}`,
            { fromSeq: at, resumeSeq: at + 1 },
          )
        }
        return { changes: out, stuck: true }
      }
      this.#stuckAt = -1
      // One batch a call, so what a watcher holds stays bounded; read on only
      // while entries went by and none passed the filter (or all were no-change entries).
      if (out.length > 0 || !progressed) return { changes: out, stuck: false }
    }
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
  #recheck: NodeJS.Timeout | undefined
  #unsubscribe: () => void = () => {}
  /** next() calls run one after another. */
  #chain: Promise<unknown> = Promise.resolve()
  readonly #onAbort = () => {
    this.#failure ??= abortErrorOf(this.#signal!, 'watch')
    this.#poke()
  }

  constructor(src: ChangeSource, cursor: JournalCursor, knownHead: number, signal: AbortSignal | undefined) {
    this.#src = src
    this.#cursor = cursor
    this.#signal = signal
    if (signal?.aborted) {
      this.#failure = abortErrorOf(signal, 'watch')
      return
    }
    this.#unsubscribe = src.feed.subscribe(() => this.#poke(), knownHead)
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
    if (this.#recheck) clearTimeout(this.#recheck)
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
        const { changes, stuck } = this.#cursor.read(this.#src.native(), (id) => this.#src.symbolName(id))
        this.#batch = changes
        if (changes.length > 0) continue
        if (stuck && !this.#recheck) {
          // Only while an entry is numbered but unfinished: its writer may be mid-write or dead.
          this.#recheck = setTimeout(() => {
            this.#recheck = undefined
            this.#poke()
          }, STUCK_RECHECK_MS)
        }
      } catch (e) {
        this.#failure = e
        continue
      }
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

