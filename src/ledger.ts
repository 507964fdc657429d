/**
 * The Promise-returning contract that engine code is written against,
 * {@link Ledger}, and its implementation over a memory-mapped state
 * directory ({@link MmapLedger}, from `controller.asLedger()`). The
 * PostgreSQL implementation is `PostgresLedger` (`./postgres`), opened
 * with `WindowSpaceController.connect(url, config)`. An engine written
 * against `Ledger` runs unchanged on either.
 *
 * @module
 */
/* eslint-disable @typescript-eslint/require-await -- the mmap backend's calls are synchronous: its methods are async so that a throw becomes a rejection, as on the PostgreSQL backend */
import type { AdminOptions } from './args'
import { checkRange, checkWhole, isList } from './args'
import { readAuditLog } from './audit'
import type { ClaimOptions, FillRequest, FillResult, WaitForOptions, WindowSpaceController } from './controller'
import { toSlotKind, type Claim, type EnrichmentRow, type LedgerName, type PayloadInput, type PayloadRecord, type PayloadStoreName, type SlotKindInput, type SlotKindName, type SlotMetric, type SlotState, type SlotStatus, type SlotTransition, type TradeRow } from './types'
import type { WatchOptions as JournalWatchOptions } from './watch'

/** One slot transition, as {@link Ledger.watch} yields it. */
export interface LedgerChange {
  /** Where this change is: pass it as `after` to resume past it. Opaque; of one backend only. */
  readonly position: string
  readonly symbolId: number
  readonly windowIdx: number
  readonly slotKind: SlotKindName
  /** The status after the change. */
  readonly to: SlotStatus
  /** The slot's version after the change. */
  readonly version: number
  /** The payload id when `to` is Filled, else null. */
  readonly payloadId: number | null
}

/** Options of {@link Ledger.watch}. */
export interface LedgerWatchOptions {
  /** Only changes of these symbols (names or ids). */
  readonly symbols?: readonly (string | number)[]
  /** Only changes of these slot kinds. */
  readonly slotKinds?: readonly SlotKindName[]
  /** Resume after this position (a change's `position`, or `head()`); default: from now on. */
  readonly after?: string
  /** Ends the iteration with an `AbortError`. */
  readonly signal?: AbortSignal
}

/** A watch: an async iterator of changes that can be ended. */
export interface LedgerWatch extends AsyncIterableIterator<LedgerChange> {
  /** Ends the iteration (a pending `next()` resolves done). */
  close(): void
}

/** One operator action of the audit trail. */
export interface LedgerAuditEntry {
  /** `forceClear`, `retire`, `forceClearRange`, `retireRange`, ... */
  readonly action: string
  readonly actor: string
  readonly reason: string
  readonly symbolId: number | null
  /** The window (single-slot actions), else null. */
  readonly windowIdx: number | null
  readonly slotKind: SlotKindName | null
}

/**
 * The ledger's contract as Promises: every engine and operator operation.
 * Implemented by the mmap backend (`controller.asLedger()`, one host) and by
 * the PostgreSQL backend (`WindowSpaceController.connect`, many hosts).
 * Errors are the same classes on both (match on `code`).
 */
export interface Ledger {
  /** `'mmap'` or `'postgres'`. */
  readonly backend: 'mmap' | 'postgres'
  /** Windows of the schedule (when this ledger was opened or last checked). */
  readonly windowCount: number
  /** A symbol's id, adding the symbol if it is new. */
  resolveSymbol(symbol: string): Promise<number>
  /** A symbol's id (`UnknownSymbolError` when missing). */
  symbolId(symbol: string | number): Promise<number>
  /** Claims a slot (`SlotBusyError`, `SlotFilledError`, `SlotRetiredError` when not claimable). */
  claim(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options?: ClaimOptions): Promise<Claim>
  /** Like {@link claim}, but `null` when the slot is not claimable. */
  tryClaim(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options?: ClaimOptions): Promise<Claim | null>
  /** Extends a claim's lease (`VersionConflictError` if it was lost). */
  renew(claim: Claim, options?: ClaimOptions): Promise<Claim>
  /** `Pending → Filled` at the claim's version; returns the new version (`VersionConflictError` if the claim was lost). */
  fill(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, meta: import('./types').PayloadMeta): Promise<number>
  /** The claim holder's failure path: `Pending → Cleared`; returns the new version. */
  clear(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, claim: Pick<Claim, 'version'>): Promise<number>
  /** Claims up to `count` claimable windows `>= startIdx`, in window order. */
  claimNextUnfilled(symbol: string | number, startIdx: number, slotKind: SlotKindInput, count: number, options?: ClaimOptions): Promise<Claim[]>
  /** Fills many slots at once; each item succeeds or is refused on its own. */
  fillMany(items: readonly FillRequest[]): Promise<FillResult[]>
  /** One slot. */
  getSlot(symbol: string | number, windowIdx: number, slotKind: SlotKindInput): Promise<SlotState>
  /** Rows of windows `from` (inclusive) to `to` (exclusive) of one ledger. */
  rows(symbol: string | number, range: { from: number; to: number }, ledger: 'trade'): Promise<TradeRow[]>
  rows(symbol: string | number, range: { from: number; to: number }, ledger: 'enrichment'): Promise<EnrichmentRow[]>
  rows(symbol: string | number, range: { from: number; to: number }, ledger: LedgerName): Promise<(TradeRow | EnrichmentRow)[]>
  /** First window `>= startIdx` whose slot is neither Filled nor Retired, or null. */
  nextUnfilledWindow(symbol: string | number, startIdx: number, slotKind: SlotKindInput): Promise<number | null>
  /** True when every slot kind of `requirements` is Filled in (symbol, window). */
  isReady(symbol: string | number, windowIdx: number, requirements: readonly SlotKindInput[]): Promise<boolean>
  /** Appends a payload record to a store; returns its id. */
  appendPayload(store: PayloadStoreName, payload: PayloadInput): Promise<number>
  /** A payload record, or null when the store has no such id. */
  getPayload(store: PayloadStoreName, payloadId: number): Promise<PayloadRecord | null>
  /** Admin: any status but Retired → Cleared. */
  forceClear(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options?: AdminOptions): Promise<SlotTransition>
  /** Admin: any status → Retired. */
  retire(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options?: AdminOptions): Promise<SlotTransition>
  /** Admin: force-clears windows `from` to `to` (exclusive), Retired skipped; returns how many changed. */
  forceClearRange(symbol: string | number, range: { from: number; to: number }, slotKind: SlotKindInput, options?: AdminOptions): Promise<number>
  /** Admin: retires windows `from` to `to` (exclusive); returns how many changed. */
  retireRange(symbol: string | number, range: { from: number; to: number }, slotKind: SlotKindInput, options?: AdminOptions): Promise<number>
  /** Counts of slots per kind and status. */
  slotMetrics(): Promise<SlotMetric[]>
  /** Resolves once every slot of `slotKinds` is Filled in (symbol, window); rejects on Retired, timeout, abort. */
  waitFor(symbol: string | number, windowIdx: number, slotKinds: readonly SlotKindInput[], options?: WaitForOptions): Promise<SlotState[]>
  /** The position after the newest change: `watch({ after })` from it sees only later changes. */
  head(): Promise<string>
  /** Every slot change after a position, in order (one slot's changes in version order). */
  watch(options?: LedgerWatchOptions): LedgerWatch
  /** Operator actions of the audit trail, oldest first. */
  audit(): Promise<LedgerAuditEntry[]>
  /** Closes the ledger (idempotent). */
  close(): Promise<void>
}

/** Builds typed rows from (window, kind, slot) triples; windows without a slot of a kind read Empty. */
export function buildRows(symbolId: number, from: number, to: number, ledger: LedgerName, slots: (w: number, kind: SlotKindName) => SlotState | undefined): (TradeRow | EnrichmentRow)[] {
  const kinds = (ledger === 'trade'
    ? ['rfRate', 'optionTrade', 'optionQuote', 'underlyingTrade', 'underlyingQuote', 'optionAggressor', 'underlyingAggressor']
    : ['greeks', 'aggregation']) as SlotKindName[]
  const out: (TradeRow | EnrichmentRow)[] = []
  for (let w = from; w < to; w++) {
    const row: Record<string, unknown> = { symbolId, windowIdx: w }
    for (const k of kinds) row[k] = slots(w, k) ?? EMPTY
    out.push(row as unknown as TradeRow | EnrichmentRow)
  }
  return out
}

/** The slot of a window that was never written. */
export const EMPTY: SlotState = Object.freeze({ status: 'Empty', version: 0, payloadType: 0, payloadId: 0, checksum: 0n, leaseExpiresAt: null })

/** Checks `rows`' ledger argument. */
export function checkLedgerName(ledger: unknown): LedgerName {
  if (ledger !== 'trade' && ledger !== 'enrichment') throw new RangeError(`ledger must be "trade" or "enrichment", got ${JSON.stringify(ledger)}`)
  return ledger
}

/** The mmap backend as a {@link Ledger}: each method runs the controller's synchronous call and resolves at once. */
export class MmapLedger implements Ledger {
  readonly backend = 'mmap' as const
  readonly #c: WindowSpaceController

  /** @internal Use `controller.asLedger()`. */
  constructor(controller: WindowSpaceController) {
    this.#c = controller
  }

  /** The controller behind this ledger (its synchronous methods). */
  get controller(): WindowSpaceController {
    return this.#c
  }

  get windowCount(): number {
    return this.#c.windowCount
  }

  async resolveSymbol(symbol: string): Promise<number> {
    return this.#c.resolveSymbol(symbol)
  }

  async symbolId(symbol: string | number): Promise<number> {
    return this.#c.symbolId(symbol)
  }

  async claim(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options?: ClaimOptions): Promise<Claim> {
    return this.#c.markPending(symbol, windowIdx, slotKind, options)
  }

  async tryClaim(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options?: ClaimOptions): Promise<Claim | null> {
    return this.#c.tryMarkPending(symbol, windowIdx, slotKind, options)
  }

  async renew(claim: Claim, options?: ClaimOptions): Promise<Claim> {
    return this.#c.renewClaim(claim, options)
  }

  async fill(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, meta: import('./types').PayloadMeta): Promise<number> {
    return this.#c.setRef(symbol, windowIdx, slotKind, meta)
  }

  async clear(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, claim: Pick<Claim, 'version'>): Promise<number> {
    return this.#c.clearSlot(symbol, windowIdx, slotKind, claim)
  }

  async claimNextUnfilled(symbol: string | number, startIdx: number, slotKind: SlotKindInput, count: number, options?: ClaimOptions): Promise<Claim[]> {
    return this.#c.claimNextUnfilled(symbol, startIdx, slotKind, count, options)
  }

  async fillMany(items: readonly FillRequest[]): Promise<FillResult[]> {
    return this.#c.fillMany(items)
  }

  async getSlot(symbol: string | number, windowIdx: number, slotKind: SlotKindInput): Promise<SlotState> {
    return this.#c.getSlot(symbol, windowIdx, slotKind)
  }

  rows(symbol: string | number, range: { from: number; to: number }, ledger: 'trade'): Promise<TradeRow[]>
  rows(symbol: string | number, range: { from: number; to: number }, ledger: 'enrichment'): Promise<EnrichmentRow[]>
  rows(symbol: string | number, range: { from: number; to: number }, ledger: LedgerName): Promise<(TradeRow | EnrichmentRow)[]>
  async rows(symbol: string | number, range: { from: number; to: number }, ledger: LedgerName): Promise<(TradeRow | EnrichmentRow)[]> {
    const { from, to } = checkRange(range)
    const l = checkLedgerName(ledger)
    const out: (TradeRow | EnrichmentRow)[] = []
    for (let w = from; w < to; w++) out.push(l === 'trade' ? this.#c.getTradeRow(symbol, w) : this.#c.getEnrichmentRow(symbol, w))
    return out
  }

  async nextUnfilledWindow(symbol: string | number, startIdx: number, slotKind: SlotKindInput): Promise<number | null> {
    return this.#c.nextUnfilledWindow(symbol, startIdx, slotKind)
  }

  async isReady(symbol: string | number, windowIdx: number, requirements: readonly SlotKindInput[]): Promise<boolean> {
    return this.#c.isReady(symbol, windowIdx, requirements)
  }

  async appendPayload(store: PayloadStoreName, payload: PayloadInput): Promise<number> {
    return this.#store(store).append(payload)
  }

  async getPayload(store: PayloadStoreName, payloadId: number): Promise<PayloadRecord | null> {
    return this.#store(store).get(payloadId)
  }

  #store(store: PayloadStoreName) {
    const s = (this.#c.payloadStores() as Record<string, ReturnType<WindowSpaceController['payloadStores']>[PayloadStoreName] | undefined>)[store]
    if (!s) throw new RangeError(`unknown payload store ${JSON.stringify(store)}`)
    return s
  }

  async forceClear(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options?: AdminOptions): Promise<SlotTransition> {
    return this.#c.forceClear(symbol, windowIdx, slotKind, options)
  }

  async retire(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options?: AdminOptions): Promise<SlotTransition> {
    return this.#c.retire(symbol, windowIdx, slotKind, options)
  }

  async forceClearRange(symbol: string | number, range: { from: number; to: number }, slotKind: SlotKindInput, options?: AdminOptions): Promise<number> {
    return this.#c.forceClearRange(symbol, range, slotKind, options)
  }

  async retireRange(symbol: string | number, range: { from: number; to: number }, slotKind: SlotKindInput, options?: AdminOptions): Promise<number> {
    return this.#c.retireRange(symbol, range, slotKind, options)
  }

  async slotMetrics(): Promise<SlotMetric[]> {
    return this.#c.slotMetrics()
  }

  waitFor(symbol: string | number, windowIdx: number, slotKinds: readonly SlotKindInput[], options?: WaitForOptions): Promise<SlotState[]> {
    return this.#c.waitFor(symbol, windowIdx, slotKinds, options)
  }

  async head(): Promise<string> {
    return `${this.#c.journalEpoch()}:${this.#c.journalWatchStart()}`
  }

  watch(options: LedgerWatchOptions = {}): LedgerWatch {
    const o: { -readonly [K in keyof JournalWatchOptions]: JournalWatchOptions[K] } = { symbols: options.symbols, slotKinds: options.slotKinds, signal: options.signal }
    if (options.after !== undefined) {
      const m = /^([^:]+):(\d+)$/.exec(options.after)
      if (!m) throw new RangeError(`after must be a position this ledger gave, got ${JSON.stringify(options.after)}`)
      o.from = { epoch: m[1]!, seq: Number(m[2]) }
    }
    const it = this.#c.watch(o)
    const self: LedgerWatch = {
      async next(): Promise<IteratorResult<LedgerChange>> {
        const r = await it.next()
        if (r.done) return { done: true, value: undefined }
        const c = r.value
        return { done: false, value: { position: `${c.epoch}:${c.seq + 1}`, symbolId: c.symbolId, windowIdx: c.windowIdx, slotKind: c.slotKind, to: c.to, version: c.version, payloadId: c.payloadId } }
      },
      async return(): Promise<IteratorResult<LedgerChange>> {
        self.close()
        return { done: true, value: undefined }
      },
      close() {
        void it.return?.()
      },
      [Symbol.asyncIterator]() {
        return self
      },
    }
    return self
  }

  async audit(): Promise<LedgerAuditEntry[]> {
    return readAuditLog(this.#c.stateDir)
      .filter((e) => e.phase === undefined)
      .map((e) => ({
        action: e.action,
        actor: e.actor,
        reason: e.reason,
        symbolId: e.symbolId ?? null,
        windowIdx: e.window ?? null,
        slotKind: (e.slot as SlotKindName | undefined) ?? null,
      }))
  }

  async close(): Promise<void> {
    this.#c.close()
  }
}

/** Checks the arguments every slot call takes; returns the slot kind's object. */
export function checkSlotArgs(windowIdx: number, slotKind: SlotKindInput) {
  checkWhole(windowIdx, 'windowIdx', 0xffffffff)
  return toSlotKind(slotKind)
}

export { isList }
