/**
 * The controller: the public face of one open state directory. Bootstrap,
 * symbols, the claim → append → fill → clear engine loop, batch calls, admin
 * transitions, readiness and waiting, rows, metrics, payload stores and the
 * artifact helper.
 *
 * The controller is a thin shape over the native core: it checks argument
 * types (TypeError/RangeError), turns symbol strings into ids through a local
 * cache (so the hot path sends only numbers across napi), turns refusal codes
 * into typed errors from the slot the core saw, and builds row objects from
 * numbers the core writes into a reused Float64Array. Every rule is the
 * core's. Argument checks are in `args.ts`, slot decoding in `slot-state.ts`,
 * the payload stores in `payload-store.ts`, the numbers-only calls in
 * `raw.ts`, the change feed in `watch.ts`.
 *
 * Past 600 lines because the public class is one class: each method is a
 * short conversion around one native call.
 *
 * @module
 */
import * as path from 'node:path'

import { adminContext, checkAuditText, isList, checkChecksum, checkRange, checkWellFormed, checkWhole, payloadTypeCode, U32_MAX, type AdminOptions } from './args'
import { WindowSpaceConfig, type WindowSpaceOptions } from './config'
import { durably } from './durably'
import { AbortError, ClosedError, InternalError, SlotRetiredError, UnknownSymbolError, WaitTimeoutError, translateNativeError, type SlotWriteError } from './errors'
import { fast, native, type NativeController, type NativeStorageReport } from './native'
import { PayloadStore, type PayloadStores } from './payload-store'
import { RawCalls } from './raw'
import { refusalError, SLOT_STRIDE, slotStateAt, type SlotPlace } from './slot-state'
import { scheduleFromJson, timeToNs, type TimeInput, type WindowSpace } from './time'
import {
  toSlotKind,
  type ArtifactInfo,
  type Claim,
  type EnrichmentRow,
  type LedgerEventCounts,
  type PayloadMeta,
  type SlotKind,
  type SlotKindInput,
  type SlotMetric,
  type SlotState,
  type SlotTransition,
  type StorageReport,
  type TradeRow,
  type WindowMeta,
} from './types'
import {
  LEDGER_EVENT_NAMES,
  LEDGER_NAMES,
  PAYLOAD_STORE_NAMES,
  SLOT_KIND_INFO,
  SLOT_KIND_NAMES,
  SLOT_KINDS_OF_LEDGER,
  SLOT_STATUSES,
  type LedgerName,
  type PayloadStoreName,
  type SlotKindName,
  type SlotStatus,
} from './vocabulary'
import type { GcReport } from './gc-report'
import { MmapLedger, type Ledger } from './ledger'
import { PostgresLedger, type PostgresOptions } from './postgres'
import type { ProgressCallback } from './state-view'
import { ChangeFeed, ChangeIterator, JournalCursor, abortErrorOf, checkEpoch, type JournalPosition, type WatchOptions } from './watch'

export type { AdminOptions } from './args'
export type { Ledger }
export { WindowSpaceConfig, defaultActor, type Durability, type WindowSpaceOptions } from './config'
export { PayloadStore, type PayloadStores } from './payload-store'
export { RawCalls } from './raw'

/** Options of {@link WindowSpaceController.waitFor}. */
export interface WaitForOptions {
  /** Rejects with `AbortError` when aborted. */
  readonly signal?: AbortSignal
  /** Rejects with `WaitTimeoutError` after this many ms (no limit when omitted). */
  readonly timeoutMs?: number
}

/** Options of `markPending` and the batch claims. */
export interface ClaimOptions {
  /** Lease in ms; after it expires anyone may take the claim over. */
  readonly leaseMs?: number
}

/** One item of {@link WindowSpaceController.fillMany}. */
export interface FillRequest {
  readonly symbol: string | number
  readonly windowIdx: number
  readonly slotKind: SlotKindInput
  readonly meta: PayloadMeta
}

/** Result of one item of {@link WindowSpaceController.fillMany}. */
export type FillResult = { readonly ok: true; readonly version: number } | { readonly ok: false; readonly error: SlotWriteError }

/** What bootstrap returns. */
export interface BootstrapResult {
  readonly controller: WindowSpaceController
  readonly storageReport: StorageReport
}

/** One typed setter per slot kind: `setOptionTradeRef(symbol, windowIdx, meta)` fills that kind (see `setRef`). */
export type TypedSetters = {
  readonly [K in SlotKindName as `set${Capitalize<K>}Ref`]: (symbol: string | number, windowIdx: number, meta: PayloadMeta) => number
}

function call<T>(f: () => T): T {
  try {
    return f()
  } catch (e) {
    throw translateNativeError(e)
  }
}

function storageReportOf(r: NativeStorageReport): StorageReport {
  return {
    created: r.created,
    schedule: r.schedule as StorageReport['schedule'],
    windowCount: r.windowCount,
    symbols: r.symbols,
    exclusive: r.exclusive,
    files: r.files.map((f) => ({ name: f.name, bytes: f.bytes })),
    ledgers: r.ledgers.map((l) => ({ ...l, ledger: l.ledger as LedgerName })),
    stores: r.stores.map((s) => ({ ...s, store: s.store as PayloadStoreName })),
    staleClaims: r.staleClaims,
    nonemptySlots: r.nonemptySlots,
    elapsedMs: r.elapsedNs / 1e6,
  }
}

const MAX_ROW_SLOTS = Math.max(...LEDGER_NAMES.map((l) => SLOT_KINDS_OF_LEDGER[l].length))

// Declaration merging gives the class its per-kind setters, which are
// installed on the prototype from the vocabulary below the class (the
// interface adds members through `extends`, so it is not empty).
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging, @typescript-eslint/no-empty-object-type
export interface WindowSpaceController extends TypedSetters {}

/** One open state directory. Create it with {@link WindowSpaceController.bootstrap}. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class WindowSpaceController {
  #native: NativeController | null
  /** Handle of the controller for the addon's fast path; -1 once closed. */
  #h: number
  readonly #stateDir: string
  readonly #symbolIds = new Map<string, number>()
  /** Rows and single slots are read into it; refusals and claim deadlines are written to it. */
  readonly #slotBuf = new Float64Array(SLOT_STRIDE * MAX_ROW_SLOTS)
  #claimBuf = new Float64Array(3 * 64)
  #stores: PayloadStores | undefined
  readonly #feed = new ChangeFeed(() => this.#n)

  private constructor(n: NativeController, stateDir: string) {
    this.#native = n
    this.#h = n.handle
    this.#stateDir = stateDir
    this.raw = new RawCalls(this, { handle: () => this.#handle() })
  }

  /** The numbers-only forms of the hot path (see {@link RawCalls}). */
  readonly raw: RawCalls<WindowSpaceController>

  #handle(): number {
    if (this.#h < 0) throw new ClosedError('the controller is closed')
    return this.#h
  }

  /**
   * Opens (or creates) the state directory synchronously: loads the schedule
   * and symbol map, maps the ledgers, replays the mapping tables, rebuilds
   * metrics. A failed bootstrap changes nothing on disk.
   */
  static bootstrap(config: WindowSpaceConfig): BootstrapResult {
    if (!(config instanceof WindowSpaceConfig)) throw new TypeError('bootstrap expects a WindowSpaceConfig')
    const n = call(() => native.NativeController.open(config.toNative()))
    const controller = new WindowSpaceController(n, config.stateDir)
    return { controller, storageReport: storageReportOf(n.storageReport()) }
  }

  /**
   * Opens an existing state directory with the schedule persisted in it, for
   * tools that do not know the schedule. Creates nothing; a directory without
   * `schedule.json` gives `NotAStateDirError`.
   */
  static openExisting(stateDir: string, options: Pick<WindowSpaceOptions, 'durability' | 'actor'> = {}): BootstrapResult {
    if (typeof stateDir !== 'string' || stateDir.length === 0) throw new TypeError('stateDir must be a non-empty string')
    const actor = checkAuditText(options.actor, 'actor')
    const abs = path.resolve(stateDir)
    const n = call(() => native.NativeController.openExisting(abs, options.durability, actor))
    return { controller: new WindowSpaceController(n, abs), storageReport: storageReportOf(n.storageReport()) }
  }

  /**
   * Opens a window space in a PostgreSQL database, for engines on many
   * hosts: the same contract as {@link asLedger}, as Promises. Creates the
   * schema (versioned migrations) and the space on first use; `config`'s
   * schedule is persisted then and checked like a state directory's later
   * (the same, or one that rolls it forward). Leases run on the database's
   * clock.
   *
   * @param url - `postgres://user@host:port/db` (a unix socket directory as a percent-encoded host)
   * @param config - the schedule and options, or a {@link WindowSpaceConfig} (its state directory is not used)
   */
  static connect(url: string, config: PostgresOptions | WindowSpaceConfig): Promise<PostgresLedger> {
    return PostgresLedger.open(url, config)
  }

  /**
   * This controller as the Promise-returning {@link Ledger} contract that the
   * PostgreSQL backend also implements: engine code written against it runs
   * on either. Each method resolves at once; the controller keeps its
   * synchronous methods.
   */
  asLedger(): MmapLedger {
    return new MmapLedger(this)
  }

  /**
   * Like {@link bootstrap}, but replays off the main thread (libuv pool).
   * @param options.signal - aborts the bootstrap if it has not started yet
   */
  static async bootstrapAsync(config: WindowSpaceConfig, options: { signal?: AbortSignal } = {}): Promise<BootstrapResult> {
    if (!(config instanceof WindowSpaceConfig)) throw new TypeError('bootstrapAsync expects a WindowSpaceConfig')
    if (options.signal?.aborted) throw new AbortError('bootstrap was aborted before it started')
    let n: NativeController
    try {
      n = (await native.openAsync(config.toNative(), options.signal)) as NativeController
    } catch (e) {
      if (options.signal?.aborted) throw new AbortError('bootstrap was aborted')
      throw translateNativeError(e)
    }
    const controller = new WindowSpaceController(n, config.stateDir)
    return { controller, storageReport: storageReportOf(n.storageReport()) }
  }

  get #n(): NativeController {
    const n = this.#native
    if (n === null) throw new ClosedError('the controller is closed')
    return n
  }

  /** Absolute path of the state directory. */
  get stateDir(): string {
    return this.#stateDir
  }

  /** True after {@link close}. */
  get closed(): boolean {
    return this.#native === null
  }

  /** Closes the controller; idempotent. In `'sync'` mode everything is flushed first. */
  close(): void {
    const n = this.#native
    if (n === null) return
    this.#feed.stop()
    this.#native = null
    this.#h = -1
    this.#feed.closeAll() // waiters and watchers see the controller closed
    call(() => n.close())
  }

  /** Same as {@link close}, for `using` declarations. */
  [Symbol.dispose](): void {
    this.close()
  }

  /** Makes every change durable now (msync + fdatasync), whatever the durability mode. */
  flush(): void {
    call(() => this.#n.flush())
  }

  // ---- async calls (group commit) --------------------------------------------
  //
  // Each does its write at once, like the plain call, and resolves when the
  // write is durable. In the 'sync' mode every async call waiting at the same
  // time shares one round of fdatasync/msync (group commit) on the libuv pool,
  // instead of one per call on the main thread. In the 'buffered' mode they
  // resolve at once. A refusal rejects with the same error the plain call throws.

  /** {@link markPending}, resolving once the claim is durable. */
  markPendingAsync(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options: ClaimOptions = {}): Promise<Claim> {
    return this.#durably(() => this.markPending(symbol, windowIdx, slotKind, options))
  }

  /** {@link setRef}, resolving once the fill is durable. */
  setRefAsync(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, meta: PayloadMeta): Promise<number> {
    return this.#durably(() => this.setRef(symbol, windowIdx, slotKind, meta))
  }

  /** {@link clearSlot}, resolving once the clear is durable. */
  clearSlotAsync(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, claim: Pick<Claim, 'version'>): Promise<number> {
    return this.#durably(() => this.clearSlot(symbol, windowIdx, slotKind, claim))
  }

  /** {@link claimNextUnfilled}, resolving once every claim is durable. */
  claimNextUnfilledAsync(symbol: string | number, startIdx: number, slotKind: SlotKindInput, count: number, options: ClaimOptions = {}): Promise<Claim[]> {
    return this.#durably(() => this.claimNextUnfilled(symbol, startIdx, slotKind, count, options))
  }

  /** {@link fillMany}, resolving once every fill of the batch is durable. */
  fillManyAsync(items: readonly FillRequest[]): Promise<FillResult[]> {
    return this.#durably(() => this.fillMany(items))
  }

  /**
   * Group-commit progress of this controller: async calls that owed a sync
   * (`issued`), how many of them are durable, and in how many rounds of syncs
   * (`rounds` much smaller than `issued` is the point). All 0 in the buffered mode.
   */
  groupCommitProgress(): { issued: number; durable: number; rounds: number } {
    const [issued, durable, rounds] = call(() => this.#n.groupCommitProgress())
    return { issued: issued!, durable: durable!, rounds: rounds! }
  }

  #durably<T>(write: () => T): Promise<T> {
    let n: NativeController
    try {
      n = this.#n
    } catch (e) {
      return Promise.reject(e)
    }
    return durably(n, write)
  }

  // ---- schedule -------------------------------------------------------------

  /** Number of windows of the schedule (it may roll forward while open). */
  get windowCount(): number {
    return call(() => this.#n.windowCount())
  }

  /** The persisted schedule, with bigint ns values. */
  get windowSpace(): WindowSpace {
    return scheduleFromJson(call(() => this.#n.scheduleJson()))
  }

  /** The window a timestamp falls in; throws `NoWindowForTimestampError` if none. */
  windowIdxForTimestamp(ts: TimeInput): number {
    const ns = timeToNs(ts)
    return call(() => this.#n.windowIdxForTimestampNs(ns))
  }

  /** Start, duration and schema version of a window. */
  windowMeta(windowIdx: number): WindowMeta {
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    const m = call(() => this.#n.windowMeta(windowIdx))
    const start = BigInt(m.startNs)
    const duration = BigInt(m.durationNs)
    return { windowIdx: m.windowIdx, start, duration, startMs: Number(start / 1_000_000n), durationMs: Number(duration) / 1e6, schemaVersion: m.schemaVersion }
  }

  // ---- symbols --------------------------------------------------------------

  /** The id of `symbol`, created (and persisted) if missing. Ids never change. */
  resolveSymbol(symbol: string): number {
    if (typeof symbol !== 'string') throw new TypeError(`symbol must be a string, got ${symbol === null ? 'null' : typeof symbol}`)
    this.#handle() // closed controllers answer nothing, not even from the cache
    checkWellFormed(symbol)
    const cached = this.#symbolIds.get(symbol)
    if (cached !== undefined) return cached
    const id = call(() => this.#n.resolveSymbol(symbol))
    this.#symbolIds.set(symbol, id)
    return id
  }

  /** The id of a known symbol (string or id); throws `UnknownSymbolError` otherwise. Never creates. */
  symbolId(symbol: string | number): number {
    if (typeof symbol === 'number') return checkWhole(symbol, 'symbol id', U32_MAX)
    if (typeof symbol !== 'string') throw new TypeError(`symbol must be a string or a numeric id, got ${symbol === null ? 'null' : typeof symbol}`)
    this.#handle()
    const cached = this.#symbolIds.get(symbol)
    if (cached !== undefined) return cached
    checkWellFormed(symbol)
    const id = call(() => this.#n.lookupSymbol(symbol))
    if (id < 0) throw new UnknownSymbolError(`unknown symbol ${symbol} (call resolveSymbol first)`, { symbol })
    this.#symbolIds.set(symbol, id)
    return id
  }

  /** The symbol string of an id. */
  symbolName(id: number): string {
    checkWhole(id, 'symbol id', U32_MAX)
    return call(() => this.#n.symbolName(id))
  }

  /** Every symbol, indexed by id. */
  symbols(): string[] {
    return call(() => this.#n.symbols())
  }

  // ---- the engine loop ------------------------------------------------------

  /**
   * Claims a slot: `Empty | Cleared → Pending`, or takes over a claim whose
   * lease expired. Exactly one caller wins among every thread, worker and
   * process. Throws `SlotBusyError`, `SlotFilledError` or `SlotRetiredError`
   * (all `VersionConflictError`s) when the slot is not claimable.
   */
  markPending(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options: ClaimOptions = {}): Claim {
    const r = this.#claim(symbol, windowIdx, slotKind, options)
    if (typeof r === 'number') throw refusalError(r, this.#last!, this.#slotBuf, null)
    return r
  }

  /** Like {@link markPending}, but returns `null` instead of throwing when the slot is not claimable. */
  tryMarkPending(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options: ClaimOptions = {}): Claim | null {
    const r = this.#claim(symbol, windowIdx, slotKind, options)
    return typeof r === 'number' ? null : r
  }

  /**
   * The error of a transition the core just refused with `code`, built from
   * the slot as the refusal saw it (kept by the addon for this thread).
   */
  #refused(code: number, at: SlotPlace, expectedVersion: number): SlotWriteError | InternalError {
    if (fast.fastLastRefusal(this.#slotBuf) !== 1) return new InternalError(`the addon kept no slot for the refusal of ${at.kind.name} of symbol ${at.symbolId}, window ${at.windowIdx}`)
    return refusalError(code, at, this.#slotBuf, expectedVersion)
  }

  /** Where the last refused claim was, for its error. */
  #last: { symbolId: number; windowIdx: number; kind: SlotKind } | undefined

  /** A claim, or the refusal code (the slot it saw is in `#slotBuf`). */
  #claim(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options: ClaimOptions): Claim | number {
    const symbolId = this.symbolId(symbol)
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    const kind = toSlotKind(slotKind)
    const leaseMs = options.leaseMs === undefined ? -1 : checkWhole(options.leaseMs, 'leaseMs', Number.MAX_SAFE_INTEGER)
    const h = this.#handle()
    const buf = this.#slotBuf
    let v: number
    try {
      v = fast.fastClaim(h, symbolId, windowIdx, kind.code, leaseMs, buf)
    } catch (e) {
      throw translateNativeError(e)
    }
    if (v < 0) {
      this.#last = { symbolId, windowIdx, kind }
      return v
    }
    return { symbolId, windowIdx, slotKind: kind, version: v, leaseExpiresAt: buf[0]! }
  }

  /** Extends a live claim's lease; returns the claim with its new deadline. */
  renewClaim(claim: Claim, options: ClaimOptions = {}): Claim {
    if (typeof claim !== 'object' || claim === null) throw new TypeError('claim must be the Claim returned by markPending')
    const at = { symbolId: checkWhole(claim.symbolId, 'claim.symbolId', U32_MAX), windowIdx: checkWhole(claim.windowIdx, 'claim.windowIdx', U32_MAX), kind: toSlotKind(claim.slotKind) }
    const version = checkWhole(claim.version, 'claim.version', U32_MAX)
    const leaseMs = options.leaseMs === undefined ? -1 : checkWhole(options.leaseMs, 'leaseMs', Number.MAX_SAFE_INTEGER)
    const h = this.#handle()
    const d = call(() => fast.fastRenew(h, at.symbolId, at.windowIdx, at.kind.code, version, leaseMs))
    if (d < 0) throw this.#refused(d, at, version)
    return { ...claim, leaseExpiresAt: d }
  }

  /**
   * Fills a slot: `Pending → Filled`, only at the version the claim returned.
   * The payload id must exist in the slot kind's mapping table. Throws
   * `VersionConflictError` if someone else claimed, filled, cleared or took
   * over the slot meanwhile — skip the slot then. Returns the new version.
   */
  setRef(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, meta: PayloadMeta): number {
    const symbolId = this.symbolId(symbol)
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    const kind = toSlotKind(slotKind)
    if (typeof meta !== 'object' || meta === null) throw new TypeError('meta must be a PayloadMeta object')
    const pt = payloadTypeCode(meta.payloadType)
    const payloadId = checkWhole(meta.payloadId, 'payloadId', Number.MAX_SAFE_INTEGER)
    const version = checkWhole(meta.version, 'version', U32_MAX)
    const sum = checkChecksum(meta.checksum)
    const h = this.#handle()
    let r: number
    try {
      r = fast.fastFill(h, symbolId, windowIdx, kind.code, version, pt, payloadId, Number(sum >> 32n), Number(sum & 0xffffffffn))
    } catch (e) {
      throw translateNativeError(e)
    }
    if (r < 0) throw this.#refused(r, { symbolId, windowIdx, kind }, version)
    return r
  }

  /**
   * The engine's failure path: the claim holder gives the slot back
   * (`Pending → Cleared`) so a retry can claim it. Returns the new version.
   */
  clearSlot(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, claim: Pick<Claim, 'version'>): number {
    const symbolId = this.symbolId(symbol)
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    const kind = toSlotKind(slotKind)
    if (typeof claim !== 'object' || claim === null) throw new TypeError('claim must be the Claim returned by markPending')
    const version = checkWhole(claim.version, 'claim.version', U32_MAX)
    const h = this.#handle()
    const r = call(() => fast.fastClear(h, symbolId, windowIdx, kind.code, version))
    if (r < 0) throw this.#refused(r, { symbolId, windowIdx, kind }, version)
    return r
  }

  // ---- batch calls ----------------------------------------------------------

  /**
   * Claims up to `count` windows `>= startIdx` of one symbol and slot kind in
   * one native call, skipping windows that are Filled, Retired or held by a
   * live claim. Returns the claims in window order (possibly fewer than `count`).
   * A `startIdx` equal to the window count is the schedule's end and returns
   * none; one past it throws `WindowOutOfRangeError`, as a single claim does.
   */
  claimNextUnfilled(symbol: string | number, startIdx: number, slotKind: SlotKindInput, count: number, options: ClaimOptions = {}): Claim[] {
    const symbolId = this.symbolId(symbol)
    checkWhole(startIdx, 'startIdx', U32_MAX)
    const kind = toSlotKind(slotKind)
    const h = this.#handle()
    return this.#claimBatch(symbolId, kind, count, options, (leaseMs, buf) => fast.fastClaimNextUnfilled(h, symbolId, startIdx, kind.code, count, leaseMs, buf))
  }

  /** Runs a native batch claim that writes (window, version, deadline) triples into a reused buffer; builds the claims. */
  #claimBatch(symbolId: number, kind: SlotKind, count: number, options: ClaimOptions, claim: (leaseMs: number, buf: Float64Array) => number): Claim[] {
    checkWhole(count, 'count', 1_000_000)
    const leaseMs = options.leaseMs === undefined ? -1 : checkWhole(options.leaseMs, 'leaseMs', Number.MAX_SAFE_INTEGER)
    if (this.#claimBuf.length < 3 * count) this.#claimBuf = new Float64Array(3 * count)
    const buf = this.#claimBuf
    const got = call(() => claim(leaseMs, buf))
    const out: Claim[] = new Array<Claim>(got)
    for (let i = 0; i < got; i++) out[i] = { symbolId, windowIdx: buf[3 * i]!, slotKind: kind, version: buf[3 * i + 1]!, leaseExpiresAt: buf[3 * i + 2]! }
    return out
  }

  /**
   * Fills many slots in one native call. Each item succeeds or is refused on
   * its own (a refused item does not stop the batch); argument errors throw.
   */
  fillMany(items: readonly FillRequest[]): FillResult[] {
    if (!isList(items)) throw new TypeError('fillMany expects an array')
    const n = items.length
    // Items (8 numbers each), then one result an item (see `RawCalls.fillBatch`).
    const packed = new Float64Array(n * 9)
    // Where each item is, kept apart from `packed`: a refused item's numbers are overwritten.
    const places: SlotPlace[] = new Array<SlotPlace>(n)
    const versions: number[] = new Array<number>(n)
    for (let i = 0; i < n; i++) {
      const it: FillRequest | undefined = items[i]
      if (typeof it !== 'object' || it === null) throw new TypeError(`items[${i}] must be a FillRequest object, got ${it === null ? 'null' : typeof it}`)
      const sum = checkChecksum(it.meta?.checksum)
      const kind = toSlotKind(it.slotKind, `items[${i}].slotKind`)
      const place = { symbolId: this.symbolId(it.symbol), windowIdx: checkWhole(it.windowIdx, `items[${i}].windowIdx`, U32_MAX), kind }
      const version = checkWhole(it.meta.version, `items[${i}].meta.version`, U32_MAX)
      places[i] = place
      versions[i] = version
      const o = i * 8
      packed[o] = place.symbolId
      packed[o + 1] = place.windowIdx
      packed[o + 2] = kind.code
      packed[o + 3] = version
      packed[o + 4] = payloadTypeCode(it.meta.payloadType)
      packed[o + 5] = checkWhole(it.meta.payloadId, `items[${i}].meta.payloadId`, Number.MAX_SAFE_INTEGER)
      packed[o + 6] = Number(sum >> 32n)
      packed[o + 7] = Number(sum & 0xffffffffn)
    }
    const h = this.#handle()
    call(() => fast.fastFillBatch(h, packed, n))
    return Array.from(packed.subarray(n * 8), (r, i): FillResult => {
      if (r >= 0) return { ok: true, version: r }
      // A refused item's numbers now hold the slot as its refusal saw it.
      return { ok: false, error: refusalError(r, places[i]!, packed.subarray(i * 8, i * 8 + 8), versions[i]!) }
    })
  }

  // ---- admin ----------------------------------------------------------------

  /** Admin: any status but Retired → Cleared (an Empty slot stays Empty). Recorded in the audit trail. */
  forceClear(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options?: AdminOptions): SlotTransition {
    const symbolId = this.symbolId(symbol)
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    const kind = toSlotKind(slotKind)
    const ctx = adminContext(options)
    const t = call(() => this.#n.forceClear(symbolId, windowIdx, kind.code, ctx))
    return { from: SLOT_STATUSES[t.from]!, to: SLOT_STATUSES[t.to]!, version: t.version }
  }

  /** Admin: any status → Retired (terminal; never claimed again). Recorded in the audit trail. */
  retire(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options?: AdminOptions): SlotTransition {
    const symbolId = this.symbolId(symbol)
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    const kind = toSlotKind(slotKind)
    const ctx = adminContext(options)
    const t = call(() => this.#n.retire(symbolId, windowIdx, kind.code, ctx))
    return { from: SLOT_STATUSES[t.from]!, to: SLOT_STATUSES[t.to]!, version: t.version }
  }

  /** Admin: force-clears windows `from` (inclusive) to `to` (exclusive); Retired slots are skipped. Returns how many changed. */
  forceClearRange(symbol: string | number, range: { from: number; to: number }, slotKind: SlotKindInput, options?: AdminOptions): number {
    const symbolId = this.symbolId(symbol)
    const { from, to } = checkRange(range)
    const kind = toSlotKind(slotKind)
    const ctx = adminContext(options)
    return call(() => this.#n.forceClearRange(symbolId, from, to, kind.code, ctx))
  }

  /** Admin: retires windows `from` (inclusive) to `to` (exclusive). Returns how many changed. */
  retireRange(symbol: string | number, range: { from: number; to: number }, slotKind: SlotKindInput, options?: AdminOptions): number {
    const symbolId = this.symbolId(symbol)
    const { from, to } = checkRange(range)
    const kind = toSlotKind(slotKind)
    const ctx = adminContext(options)
    return call(() => this.#n.retireRange(symbolId, from, to, kind.code, ctx))
  }

  // ---- audit trail ----------------------------------------------------------

  /** Who this controller's audit lines name when a call names nobody. */
  get auditActor(): string {
    return call(() => this.#n.auditActor())
  }

  /**
   * Appends a tool's own action to the audit trail (`audit.log`), e.g. a gc
   * deletion or a retention run. `action`: 1-64 letters, digits, `-`, `_`;
   * `details`: any JSON-serializable object.
   */
  appendAudit(action: string, details: Record<string, unknown> = {}, options?: AdminOptions): void {
    if (typeof action !== 'string') throw new TypeError('action must be a string')
    if (typeof details !== 'object' || details === null || Array.isArray(details)) throw new TypeError('details must be a plain object')
    const ctx = adminContext(options)
    const json = JSON.stringify(details, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))
    call(() => this.#n.auditAction(action, json, ctx))
  }

  // ---- readiness ------------------------------------------------------------

  #mask(requirements: readonly SlotKindInput[]): number {
    if (!isList(requirements)) throw new TypeError('requirements must be an array of slot kinds')
    let mask = 0
    requirements.forEach((r, i) => {
      mask |= 1 << toSlotKind(r, `requirements[${i}]`).code
    })
    return mask
  }

  /**
   * True when every slot kind of `requirements` (of either ledger) is Filled
   * in (symbol, window). Evaluated in the core from the rows.
   */
  isReady(symbol: string | number, windowIdx: number, requirements: readonly SlotKindInput[]): boolean {
    const symbolId = this.symbolId(symbol)
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    const mask = this.#mask(requirements)
    return call(() => this.#n.isReady(symbolId, windowIdx, mask))
  }

  /**
   * First window `>= startIdx` whose `requirements` are all Filled and whose
   * `forSlot` can be claimed now (not Filled, not Retired, not held by a live
   * claim), or `null`. One native call, however many windows it passes.
   */
  nextReadyWindow(symbol: string | number, startIdx: number, requirements: readonly SlotKindInput[], forSlot: SlotKindInput): number | null {
    const symbolId = this.symbolId(symbol)
    checkWhole(startIdx, 'startIdx', U32_MAX)
    const mask = this.#mask(requirements)
    const kind = toSlotKind(forSlot, 'forSlot')
    const w = call(() => this.#n.nextReadyWindow(symbolId, startIdx, mask, kind.code))
    return w < 0 ? null : w
  }

  /**
   * Claims up to `count` ready windows `>= startIdx` (see
   * {@link nextReadyWindow}) of `forSlot` in one native call, in window order.
   */
  claimNextReady(symbol: string | number, startIdx: number, requirements: readonly SlotKindInput[], forSlot: SlotKindInput, count: number, options: ClaimOptions = {}): Claim[] {
    const symbolId = this.symbolId(symbol)
    checkWhole(startIdx, 'startIdx', U32_MAX)
    const mask = this.#mask(requirements)
    const kind = toSlotKind(forSlot, 'forSlot')
    const n = this.#n
    return this.#claimBatch(symbolId, kind, count, options, (leaseMs, buf) => n.claimNextReady(symbolId, startIdx, mask, kind.code, count, leaseMs, buf))
  }

  // ---- waiting on other engines ----------------------------------------------

  /**
   * Resolves, with the slots as they are then, once every slot kind of
   * `slotKinds` is Filled in (symbol, window) — by any process on the host.
   * Rejects with `SlotRetiredError` if one is (or becomes) Retired, with
   * `WaitTimeoutError` after `timeoutMs`, with `AbortError` on `signal`, and
   * with `ClosedError` if the controller closes. No polling: the addon's
   * watcher thread sleeps on the change journal's shared futex word.
   */
  waitFor(symbol: string | number, windowIdx: number, slotKinds: readonly SlotKindInput[], options: WaitForOptions = {}): Promise<SlotState[]> {
    let symbolId: number
    let kinds: SlotKind[]
    try {
      symbolId = this.symbolId(symbol)
      checkWhole(windowIdx, 'windowIdx', U32_MAX)
      if (!isList(slotKinds) || slotKinds.length === 0) throw new TypeError('slotKinds must be a non-empty array of slot kinds')
      kinds = slotKinds.map((k, i) => toSlotKind(k, `slotKinds[${i}]`))
      if (options.timeoutMs !== undefined) checkWhole(options.timeoutMs, 'timeoutMs', 2 ** 31 - 1)
      if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new TypeError('signal must be an AbortSignal')
      if (options.signal?.aborted) throw abortErrorOf(options.signal, 'waitFor')
    } catch (e) {
      return Promise.reject(e)
    }
    return new Promise<SlotState[]>((resolve, reject) => {
      let unsubscribe = () => {}
      let timer: NodeJS.Timeout | undefined
      const onAbort = () => settle(() => reject(abortErrorOf(options.signal!, 'waitFor')))
      const settle = (f: () => void) => {
        unsubscribe()
        unsubscribe = () => {}
        if (timer) clearTimeout(timer)
        options.signal?.removeEventListener('abort', onAbort)
        f()
      }
      /** True once settled. */
      const check = (): boolean => {
        if (this.closed) {
          settle(() => reject(new ClosedError('the controller was closed while waiting')))
          return true
        }
        let slots: SlotState[]
        try {
          slots = kinds.map((k) => this.#readSlot(symbolId, windowIdx, k))
        } catch (e) {
          settle(() => reject(e))
          return true
        }
        const retired = slots.findIndex((x) => x.status === 'Retired')
        if (retired >= 0) {
          const e = new SlotRetiredError(`waitFor: ${this.#where(symbolId, windowIdx, kinds[retired]!)} is Retired and will never be Filled`, {
            symbolId,
            windowIdx,
            slotKind: kinds[retired]!.name,
          })
          e.slot = slots[retired]
          settle(() => reject(e))
          return true
        }
        if (slots.every((x) => x.status === 'Filled')) {
          settle(() => resolve(slots))
          return true
        }
        return false
      }
      if (check()) return
      try {
        unsubscribe = this.#feed.subscribe(() => void check())
      } catch (e) {
        reject(translateNativeError(e))
        return
      }
      if (options.timeoutMs !== undefined) {
        timer = setTimeout(
          () =>
            settle(() =>
              reject(new WaitTimeoutError(`waitFor: ${kinds.map((k) => k.name).join(', ')} of ${this.#where(symbolId, windowIdx, null)} not all Filled after ${options.timeoutMs} ms`, { symbolId, windowIdx })),
            ),
          options.timeoutMs,
        )
      }
      options.signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  #where(symbolId: number, windowIdx: number, kind: SlotKind | null): string {
    let name = String(symbolId)
    try {
      name = this.symbolName(symbolId)
    } catch {
      // keep the id
    }
    return `${name} window ${windowIdx}${kind ? ` ${kind.name}` : ''}`
  }

  /** The change journal's head: the sequence number the next change, by any process, will get. */
  journalHead(): number {
    return call(() => this.#n.journalHead())
  }

  /**
   * Where a watch of changes from now starts: {@link journalHead}, or, when
   * a live writer holds an earlier number whose entry is not committed (its
   * change may be yet to come), that number (never one the ring has
   * lapped). A watch from here sees every change made from now on, and also
   * those committed since that number.
   */
  journalWatchStart(): number {
    return call(() => this.#n.journalWatchStart())
  }

  /**
   * The change journal's epoch: 16 lowercase hex digits, drawn at random when
   * the journal file was made. With {@link journalHead} it makes a position
   * to resume a watch from (`watch({ from: { epoch, seq } })`); positions of
   * another epoch are gaps.
   */
  journalEpoch(): string {
    return call(() => this.#n.journalEpoch())
  }

  /**
   * Every slot change made by any process on the host, as it happens, in
   * journal order — so each slot's changes in version order:
   * `for await (const change of controller.watch({ slotKinds: ['optionQuote'] }))`.
   * Starts at `from` (a saved position: `{ epoch: change.epoch, seq: change.seq + 1 }`),
   * or `fromSeq` in this journal, or now. A watcher that falls behind the
   * bounded journal, meets an entry whose writer died before writing it, or
   * starts from a position of another journal gets a `JournalGapError`
   * (`details.reason`; `details.epoch` and `details.resumeSeq` say where to
   * resume after a rescan) — never a silently missed change. A writer that is
   * merely slow or stopped is waited for. Breaking out of the loop stops
   * watching.
   */
  watch(options: WatchOptions = {}): ChangeIterator {
    if (typeof options !== 'object' || options === null) throw new TypeError('watch options must be an object')
    const symbols = options.symbols === undefined ? null : new Set(options.symbols.map((s) => this.symbolId(s)))
    const kinds = options.slotKinds === undefined ? null : new Set(options.slotKinds.map((k, i) => toSlotKind(k, `slotKinds[${i}]`).code))
    if (options.from !== undefined && options.fromSeq !== undefined) throw new TypeError('watch takes from or fromSeq, not both')
    let from: JournalPosition
    if (options.from !== undefined) {
      if (typeof options.from !== 'object' || options.from === null) throw new TypeError('from must be a journal position { epoch, seq }')
      from = { epoch: checkEpoch(options.from.epoch, 'from.epoch'), seq: checkWhole(options.from.seq, 'from.seq', Number.MAX_SAFE_INTEGER) }
    } else {
      const epoch = this.journalEpoch()
      // From now: the head, or the oldest number a writer in flight holds (its change is yet to come).
      from = { epoch, seq: options.fromSeq === undefined ? this.journalWatchStart() : checkWhole(options.fromSeq, 'fromSeq', Number.MAX_SAFE_INTEGER) }
    }
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new TypeError('signal must be an AbortSignal')
    return new ChangeIterator(
      {
        feed: this.#feed,
        native: () => this.#n,
        closed: () => this.closed,
        symbolName: (id) => this.symbolName(id),
      },
      new JournalCursor(from, symbols, kinds),
      options.signal,
    )
  }

  // ---- reads ----------------------------------------------------------------

  /** Reads one slot into the start of `#slotBuf`. */
  #readSlotInto(symbolId: number, windowIdx: number, kind: SlotKind): void {
    const h = this.#handle()
    try {
      fast.fastReadSlot(h, symbolId, windowIdx, kind.code, this.#slotBuf)
    } catch (e) {
      throw translateNativeError(e)
    }
  }

  #readSlot(symbolId: number, windowIdx: number, kind: SlotKind): SlotState {
    this.#readSlotInto(symbolId, windowIdx, kind)
    return slotStateAt(this.#slotBuf, 0)
  }

  /** A consistent copy of one slot. */
  getSlot(symbol: string | number, windowIdx: number, slotKind: SlotKindInput): SlotState {
    const symbolId = this.symbolId(symbol)
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    return this.#readSlot(symbolId, windowIdx, toSlotKind(slotKind))
  }

  #readRow(ledger: LedgerName, symbol: string | number, windowIdx: number): Record<string, unknown> {
    const symbolId = this.symbolId(symbol)
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    const b = this.#slotBuf
    const h = this.#handle()
    try {
      fast.fastReadRow(h, LEDGER_NAMES.indexOf(ledger), symbolId, windowIdx, b)
    } catch (e) {
      throw translateNativeError(e)
    }
    const row: Record<string, unknown> = { symbolId, windowIdx }
    SLOT_KINDS_OF_LEDGER[ledger].forEach((k, i) => (row[k] = slotStateAt(b, i)))
    return row
  }

  /** The trade-ledger row of (symbol, window). */
  getTradeRow(symbol: string | number, windowIdx: number): TradeRow {
    return this.#readRow('trade', symbol, windowIdx) as unknown as TradeRow
  }

  /** The enrichment-ledger row of (symbol, window). */
  getEnrichmentRow(symbol: string | number, windowIdx: number): EnrichmentRow {
    return this.#readRow('enrichment', symbol, windowIdx) as unknown as EnrichmentRow
  }

  /** First window `>= startIdx` whose slot is not Filled (Retired windows are skipped); `null` if none. */
  nextUnfilledWindow(symbol: string | number, startIdx: number, slotKind: SlotKindInput): number | null {
    const symbolId = this.symbolId(symbol)
    checkWhole(startIdx, 'startIdx', U32_MAX)
    const kind = toSlotKind(slotKind)
    const h = this.#handle()
    const w = call(() => fast.fastNextUnfilled(h, symbolId, startIdx, kind.code))
    return w < 0 ? null : w
  }

  // ---- metrics --------------------------------------------------------------

  #metrics(f: (out: Float64Array) => void): SlotMetric[] {
    const width = SLOT_STATUSES.length
    const out = new Float64Array(SLOT_KIND_NAMES.length * width)
    call(() => f(out))
    return SLOT_KIND_NAMES.map((slot, i) => {
      const counts = {} as Record<SlotStatus, number>
      SLOT_STATUSES.forEach((s, j) => (counts[s] = out[i * width + j]!))
      return { ledger: SLOT_KIND_INFO[slot].ledger, slot, counts }
    })
  }

  /**
   * Slot counts per ledger, slot kind and status, from counters shared by
   * every process (O(1)). `Empty` is every (symbol, window) not otherwise counted.
   */
  slotMetrics(): SlotMetric[] {
    const n = this.#n
    return this.#metrics((out) => n.slotMetrics(out))
  }

  /** Like {@link slotMetrics}, but by scanning the ledgers: exact, O(slots). */
  recountSlots(): SlotMetric[] {
    const n = this.#n
    return this.#metrics((out) => n.recount(out))
  }

  /** Transition counters (claims, takeovers, fills, conflicts, ...) of a ledger. */
  eventCounts(ledger: LedgerName): LedgerEventCounts {
    const code = LEDGER_NAMES.indexOf(ledger)
    if (code < 0) throw new RangeError(`ledger must be one of ${LEDGER_NAMES.join(', ')}, got ${JSON.stringify(ledger)}`)
    const out = new Float64Array(LEDGER_EVENT_NAMES.length)
    call(() => this.#n.events(code, out))
    return Object.fromEntries(LEDGER_EVENT_NAMES.map((e, i) => [e, out[i]!])) as LedgerEventCounts
  }

  // ---- payload stores and artifacts -----------------------------------------

  /** The append-only mapping tables, by store name. */
  payloadStores(): PayloadStores {
    this.#stores ??= Object.freeze(Object.fromEntries(PAYLOAD_STORE_NAMES.map((name) => [name, new PayloadStore(this, name, () => this.#n)])) as PayloadStores)
    return this.#stores
  }

  /**
   * Writes an artifact atomically (temp file, fsync, rename, directory
   * fsync), computes its 64-bit checksum and returns its URI relative to the
   * state directory.
   *
   * `writeArtifact(claim, name, data)` writes the claim's artifact `name` to
   * a path that carries the claim
   * (`artifacts/<symbol>/<slot kind>/<window>/v<version>/<name>`): no other
   * attempt at the slot can ever write over it, and gc keeps it while the
   * claim is in flight. It throws `VersionConflictError` if the slot is no
   * longer Pending at the claim's version (someone else has it: skip it).
   *
   * `writeArtifact(relPath, data)` writes `artifacts/<relPath>`, a path the
   * caller chooses: two attempts at one slot may then write the same file,
   * and gc collects such a file only when no slot at all is Pending. Paths
   * that would leave the state directory throw `PathEscapesStateDirError`;
   * paths of a claim's shape (`SYMBOL/slotKind/window/vN/name`) or of an
   * atomic write's temp file (`.NAME.tmp-PID-N`), which gc judges by the
   * path alone, throw `InvalidArgumentError`.
   */
  writeArtifact(claim: Claim, name: string, data: Uint8Array | string): ArtifactInfo
  writeArtifact(relPath: string, data: Uint8Array | string): ArtifactInfo
  writeArtifact(target: Claim | string, nameOrData: string | Uint8Array, maybeData?: Uint8Array | string): ArtifactInfo {
    const bytesOf = (data: unknown): Uint8Array => {
      const b = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
      if (!(b instanceof Uint8Array)) throw new TypeError('data must be a Uint8Array, a Buffer or a string')
      return b
    }
    let a: { uri: string; checksum: bigint | number; size: number }
    if (typeof target === 'string') {
      const bytes = bytesOf(nameOrData)
      a = call(() => this.#n.writeArtifact(target, bytes))
    } else if (typeof target === 'object' && target !== null) {
      if (typeof nameOrData !== 'string') throw new TypeError(`name must be a string, got ${typeof nameOrData}`)
      const symbolId = checkWhole(target.symbolId, 'claim.symbolId', U32_MAX)
      const windowIdx = checkWhole(target.windowIdx, 'claim.windowIdx', U32_MAX)
      const version = checkWhole(target.version, 'claim.version', U32_MAX)
      const kind = toSlotKind(target.slotKind, 'claim.slotKind')
      const bytes = bytesOf(maybeData)
      a = call(() => this.#n.writeClaimArtifact(symbolId, windowIdx, kind.code, version, nameOrData, bytes))
    } else {
      throw new TypeError(`writeArtifact expects a Claim or a relative path, got ${target === null ? 'null' : typeof target}`)
    }
    return { uri: a.uri, path: path.join(this.#stateDir, a.uri), checksum: BigInt(a.checksum), size: a.size }
  }

  /**
   * Garbage collection (see {@link GcReport}): payload records and artifact
   * files no live slot uses. Without `delete` it only reports; with it, it
   * removes the files restart-safely (gc.log, gc-trash/) and records the run
   * in the audit trail (intent before acting, outcome after). A file that is
   * or may become live is never removed or replaced.
   */
  collectGarbage(options: { delete?: boolean; minAgeMs?: number; actor?: string; reason?: string; onProgress?: ProgressCallback } = {}): GcReport {
    const minAgeMs = options.minAgeMs === undefined ? 3_600_000 : checkWhole(options.minAgeMs, 'minAgeMs', Number.MAX_SAFE_INTEGER)
    const actor = checkAuditText(options.actor, 'actor')
    const reason = checkAuditText(options.reason, 'reason')
    return call(() => this.#n.gc(options.delete === true, minAgeMs, actor, reason, options.onProgress)) as GcReport
  }

  /** The absolute path of an artifact URI (refuses URIs that would leave the state directory). */
  resolveArtifact(uri: string): string {
    if (typeof uri !== 'string') throw new TypeError(`uri must be a string, got ${typeof uri}`)
    return call(() => this.#n.resolveArtifact(uri))
  }
}

// One typed setter per slot kind of the vocabulary: setRfRateRef, setOptionTradeRef, ...
for (const name of SLOT_KIND_NAMES) {
  const method = `set${name[0]!.toUpperCase()}${name.slice(1)}Ref`
  Object.defineProperty(WindowSpaceController.prototype, method, {
    value: function (this: WindowSpaceController, symbol: string | number, windowIdx: number, meta: PayloadMeta): number {
      return this.setRef(symbol, windowIdx, name, meta)
    },
    writable: true,
    configurable: true,
    enumerable: false,
  })
}
