/**
 * The controller: the public face of one open state directory. Bootstrap,
 * symbols, the claim → append → fill → clear engine loop, batch calls, admin
 * transitions, rows, metrics, payload stores and the artifact helper.
 *
 * The controller is a thin shape over the native core: it checks argument
 * types (TypeError/RangeError), turns symbol strings into ids through a local
 * cache (so the hot path sends only numbers across napi), turns refusal codes
 * into typed errors, and builds row objects from numbers the core writes into
 * a reused Float64Array.
 *
 * @module
 */
import * as os from 'node:os'
import * as path from 'node:path'

import {
  AbortError,
  ClosedError,
  InvalidSymbolError,
  SlotBusyError,
  SlotFilledError,
  SlotRetiredError,
  SlotWriteError,
  UnknownSymbolError,
  VersionConflictError,
  WaitTimeoutError,
  errorFromNative,
  translateNativeError,
} from './errors'
import { fast, native, type NativeController, type NativeStorageReport } from './native'
import { scheduleFromJson, scheduleToJson, timeToNs, type TimeInput, type WindowSpace } from './time'
import { ChangeFeed, ChangeIterator, JournalCursor, abortErrorOf, type WatchOptions } from './watch'
import {
  PAYLOAD_STORE_NAMES,
  PayloadType,
  SLOT_KIND_NAMES,
  SLOT_STATUSES,
  STORE_OF_SLOT_KIND,
  toSlotKind,
  type ArtifactInfo,
  type Claim,
  type EnrichmentRow,
  type LedgerEventCounts,
  type LedgerName,
  type PayloadInput,
  type PayloadMeta,
  type PayloadRecord,
  type PayloadStoreName,
  type PayloadTypeName,
  type SlotKind,
  type SlotKindInput,
  type SlotMetric,
  type SlotState,
  type SlotStatus,
  type SlotTransition,
  type StorageReport,
  type TradeRow,
  type WindowMeta,
} from './types'

/** When a call's effects reach the disk. */
export type Durability = 'buffered' | 'sync'

/** Options of {@link WindowSpaceConfig}. */
export interface WindowSpaceOptions {
  /**
   * `'buffered'` (default): every call that returned survives `kill -9` at any
   * instant. `'sync'`: also survives power loss (fdatasync/msync before return).
   */
  readonly durability?: Durability
  /** Lease of a claim when `markPending` is given none (default 30 000 ms). */
  readonly defaultLeaseMs?: number
  /**
   * Who this controller's audit lines (admin calls, lease takeovers) name when
   * a call names nobody. Default: `user@host pid N` of this process.
   */
  readonly actor?: string
  /**
   * Entries of the change journal (`waitFor`, `watch`) if this bootstrap
   * creates it: a power of two from 64 to 2^24, default 65 536. An existing
   * journal keeps its size.
   */
  readonly journalCapacity?: number
}

/** Who does an admin action and why, for the audit trail (`audit.log`). */
export interface AdminOptions {
  /** Default: the controller's `actor`. */
  readonly actor?: string
  readonly reason?: string
}

/** Options of {@link WindowSpaceController.waitFor}. */
export interface WaitForOptions {
  /** Rejects with `AbortError` when aborted. */
  readonly signal?: AbortSignal
  /** Rejects with `WaitTimeoutError` after this many ms (no limit when omitted). */
  readonly timeoutMs?: number
}

/** The default actor of audit lines: `user@host pid N`. */
export function defaultActor(): string {
  let user = 'unknown'
  try {
    user = os.userInfo().username
  } catch {
    // no passwd entry: keep 'unknown'
  }
  return `${user}@${os.hostname()} pid ${process.pid}`
}

function checkActorText(v: unknown, what: string): string | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'string') throw new TypeError(`${what} must be a string, got ${v === null ? 'null' : typeof v}`)
  if (v.length > 256) throw new RangeError(`${what} must be at most 256 characters, got ${v.length}`)
  return v
}

function adminContext(o: AdminOptions | undefined): { actor?: string; reason?: string } | undefined {
  if (o === undefined) return undefined
  if (typeof o !== 'object' || o === null) throw new TypeError('admin options must be { actor?, reason? }')
  return { actor: checkActorText(o.actor, 'actor'), reason: checkActorText(o.reason, 'reason') }
}

/** Where the state lives, its schedule, and options. */
export class WindowSpaceConfig {
  /** Absolute path of the state directory. */
  readonly stateDir: string
  readonly windowSpace: WindowSpace
  readonly options: Readonly<WindowSpaceOptions>

  /**
   * @param stateDir - the state directory (created if missing)
   * @param windowSpace - the schedule; persisted on first bootstrap
   * @param options - durability and default lease
   */
  constructor(stateDir: string, windowSpace: WindowSpace, options: WindowSpaceOptions = {}) {
    if (typeof stateDir !== 'string' || stateDir.length === 0) throw new TypeError('stateDir must be a non-empty string')
    if (stateDir.includes('\0')) throw new RangeError('stateDir must not contain NUL characters')
    scheduleToJson(windowSpace) // validates types and ranges now
    if (options.durability !== undefined && options.durability !== 'buffered' && options.durability !== 'sync') {
      throw new RangeError(`durability must be "buffered" or "sync", got ${JSON.stringify(options.durability)}`)
    }
    if (options.defaultLeaseMs !== undefined) checkWhole(options.defaultLeaseMs, 'defaultLeaseMs', Number.MAX_SAFE_INTEGER)
    checkActorText(options.actor, 'actor')
    if (options.journalCapacity !== undefined) {
      const c = checkWhole(options.journalCapacity, 'journalCapacity', 2 ** 24)
      if (c < 64 || (c & (c - 1)) !== 0) throw new RangeError(`journalCapacity must be a power of two from 64 to 2^24, got ${c}`)
    }
    this.stateDir = path.resolve(stateDir)
    this.windowSpace = windowSpace
    this.options = Object.freeze({ ...options })
  }

  /** @internal */
  toNative() {
    return {
      stateDir: this.stateDir,
      scheduleJson: scheduleToJson(this.windowSpace),
      durability: this.options.durability,
      defaultLeaseMs: this.options.defaultLeaseMs,
      journalCapacity: this.options.journalCapacity,
      actor: this.options.actor ?? defaultActor(),
    }
  }
}

/** Options of `markPending` and the batch claim. */
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

const U32_MAX = 0xffffffff
const SLOT_STRIDE = 8
const REFUSED_BUSY = -1
const REFUSED_FILLED = -2
const REFUSED_RETIRED = -3

function checkWhole(v: unknown, what: string, max: number): number {
  if (typeof v !== 'number') throw new TypeError(`${what} must be a number, got ${v === null ? 'null' : typeof v}`)
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${what} must be a whole number from 0 to ${max}, got ${v}`)
  return v
}

/**
 * Symbols cross into Rust as UTF-8: a lone surrogate would be replaced by
 * U+FFFD there, so two different strings would share one id. Refuse them.
 */
function checkWellFormed(symbol: string): void {
  if (!(symbol as string & { isWellFormed(): boolean }).isWellFormed()) {
    throw new InvalidSymbolError(`invalid symbol ${JSON.stringify(symbol)}: must be well-formed Unicode (no lone surrogates)`, { symbol, why: 'lone surrogate' })
  }
}

function payloadTypeCode(t: PayloadTypeName | number): number {
  if (typeof t === 'string') {
    const code = (PayloadType as Record<string, number>)[t]
    if (code === undefined) throw new RangeError(`unknown payloadType ${JSON.stringify(t)}; use one of ${Object.keys(PayloadType).join(', ')} or a code 0..255`)
    return code
  }
  return checkWhole(t, 'payloadType', 255)
}

function checkChecksum(c: unknown): bigint {
  if (typeof c !== 'bigint') throw new TypeError(`checksum must be a bigint, got ${c === null ? 'null' : typeof c}`)
  if (c < 0n || c > 0xffffffffffffffffn) throw new RangeError(`checksum must be an unsigned 64-bit bigint, got ${c}`)
  return c
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

/**
 * Runs `write` with its syncs deferred to a group commit (core `durability.rs`)
 * and resolves with its result once the write is durable. In the `'buffered'`
 * mode nothing is owed and it resolves at once. The write itself happens
 * before this returns its promise, so ids and versions are assigned in call
 * order; only the wait for the disk is off the main thread, shared by every
 * async call that is waiting at the same time.
 */
async function durably<T>(n: NativeController, write: () => T): Promise<T> {
  n.beginDeferred()
  let outcome: { ok: true; value: T } | { ok: false; error: unknown }
  try {
    outcome = { ok: true, value: write() }
  } catch (error) {
    // A batch may have changed slots before it failed: those are made
    // durable too, as the plain call would have, before the failure is reported.
    outcome = { ok: false, error }
  }
  const ticket = endDeferral(n)
  let failed: Error | null = null
  if (ticket > 0) {
    try {
      const info = (await n.commitAsync(ticket)) as { code: string; message: string } | null
      if (info) failed = errorFromNative(info.code, info.message)
    } catch (e) {
      failed = translateNativeError(e) as Error
    }
  }
  if (!outcome.ok) throw outcome.error // the write's own error is the one to report
  if (failed) throw failed
  return outcome.value
}

/** Ends a deferral; 0 when the controller closed meanwhile (nothing left to commit through it). */
function endDeferral(n: NativeController): number {
  try {
    return n.endDeferred()
  } catch {
    return 0
  }
}

// Builds a 64-bit checksum from its two 32-bit halves with one BigInt allocation.
const checksumWords = new Uint32Array(2)
const checksumView = new BigUint64Array(checksumWords.buffer)
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

function checksumOf(hi: number, lo: number): bigint {
  checksumWords[LITTLE_ENDIAN ? 0 : 1] = lo
  checksumWords[LITTLE_ENDIAN ? 1 : 0] = hi
  return checksumView[0]!
}

function slotStateAt(buf: Float64Array, i: number): SlotState {
  const o = i * SLOT_STRIDE
  const status = SLOT_STATUSES[buf[o]!]!
  const filled = status === 'Filled'
  return {
    status,
    version: buf[o + 1]!,
    payloadType: buf[o + 2]!,
    payloadId: buf[o + 3]!,
    checksum: filled ? checksumOf(buf[o + 4]!, buf[o + 5]!) : 0n,
    leaseExpiresAt: status === 'Pending' ? buf[o + 6]! : null,
  }
}

/** One open state directory. Create it with {@link WindowSpaceController.bootstrap}. */
export class WindowSpaceController {
  #native: NativeController | null
  /** Handle of the controller for the addon's fast path; -1 once closed. */
  #h: number
  readonly #defaultLeaseMs: number
  readonly #stateDir: string
  readonly #symbolIds = new Map<string, number>()
  readonly #slotBuf = new Float64Array(SLOT_STRIDE * 7)
  readonly #pairBuf = { buf: new Float64Array(2 * 64) }
  #stores: PayloadStores | undefined
  readonly #feed = new ChangeFeed(() => this.#n)

  private constructor(n: NativeController, stateDir: string) {
    this.#native = n
    this.#h = n.handle
    this.#defaultLeaseMs = n.defaultLeaseMs()
    this.#stateDir = stateDir
    this.raw = new RawCalls(this, () => this.#handle())
  }

  /** The numbers-only forms of the hot path (see {@link RawCalls}). */
  readonly raw: RawCalls

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
    const actor = checkActorText(options.actor, 'actor') ?? defaultActor()
    const abs = path.resolve(stateDir)
    const n = call(() => native.NativeController.openExisting(abs, options.durability, actor))
    return { controller: new WindowSpaceController(n, abs), storageReport: storageReportOf(n.storageReport()) }
  }

  /**
   * Like {@link bootstrap}, but replays off the main thread (libuv pool).
   * @param options.signal - aborts the bootstrap if it has not started yet
   */
  static async bootstrapAsync(config: WindowSpaceConfig, options: { signal?: AbortSignal } = {}): Promise<BootstrapResult> {
    if (!(config instanceof WindowSpaceConfig)) throw new TypeError('bootstrapAsync expects a WindowSpaceConfig')
    if (options.signal?.aborted) throw new AbortError('bootstrap was aborted before it started')
    let r: unknown
    try {
      r = await native.openAsync(config.toNative(), options.signal)
    } catch (e) {
      if (options.signal?.aborted) throw new AbortError('bootstrap was aborted')
      throw translateNativeError(e)
    }
    if (typeof (r as { code?: unknown }).code === 'string') {
      const info = r as { code: string; message: string }
      throw errorFromNative(info.code, info.message)
    }
    const n = r as NativeController
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

  #refusal(code: number, symbolId: number, windowIdx: number, kind: SlotKind, expectedVersion: number | null): SlotWriteError {
    const slot = this.#readSlot(symbolId, windowIdx, kind)
    const where = `slot ${kind.name} of symbol ${symbolId}, window ${windowIdx}`
    const details = { symbolId, windowIdx, slotKind: kind.name, status: slot.status, version: slot.version, expectedVersion }
    let e: SlotWriteError
    if (code === REFUSED_BUSY) {
      e = new SlotBusyError(`${where} is held by a live claim until ${new Date(slot.leaseExpiresAt ?? 0).toISOString()}`, details)
    } else if (code === REFUSED_FILLED) {
      e = new SlotFilledError(`${where} is already Filled (version ${slot.version})`, details)
    } else if (code === REFUSED_RETIRED) {
      e = new SlotRetiredError(`${where} is Retired`, details)
    } else {
      e = new VersionConflictError(`version conflict on ${where}: the claim was at version ${expectedVersion}, the slot is now ${slot.status} at version ${slot.version}`, details)
    }
    e.slot = slot
    return e
  }

  /**
   * Claims a slot: `Empty | Cleared → Pending`, or takes over a claim whose
   * lease expired. Exactly one caller wins among every thread, worker and
   * process. Throws `SlotBusyError`, `SlotFilledError` or `SlotRetiredError`
   * (all `VersionConflictError`s) when the slot is not claimable.
   */
  markPending(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options: ClaimOptions = {}): Claim {
    const claim = this.tryMarkPending(symbol, windowIdx, slotKind, options, true)
    return claim as Claim
  }

  /** Like {@link markPending}, but returns `null` instead of throwing when the slot is not claimable. */
  tryMarkPending(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options: ClaimOptions = {}, _throw = false): Claim | null {
    const symbolId = this.symbolId(symbol)
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    const kind = toSlotKind(slotKind)
    const leaseMs = options.leaseMs === undefined ? -1 : checkWhole(options.leaseMs, 'leaseMs', Number.MAX_SAFE_INTEGER)
    const h = this.#handle()
    const before = Date.now()
    let v: number
    try {
      v = fast.fastClaim(h, symbolId, windowIdx, kind.code, leaseMs)
    } catch (e) {
      throw translateNativeError(e)
    }
    if (v < 0) {
      if (_throw) throw this.#refusal(v, symbolId, windowIdx, kind, null)
      return null
    }
    return { symbolId, windowIdx, slotKind: kind, version: v, leaseExpiresAt: before + (leaseMs < 0 ? this.#defaultLeaseMs : leaseMs) }
  }

  /** Extends a live claim's lease; returns the claim with its new deadline. */
  renewClaim(claim: Claim, options: ClaimOptions = {}): Claim {
    if (typeof claim !== 'object' || claim === null) throw new TypeError('claim must be the Claim returned by markPending')
    checkWhole(claim.symbolId, 'claim.symbolId', U32_MAX)
    checkWhole(claim.windowIdx, 'claim.windowIdx', U32_MAX)
    checkWhole(claim.version, 'claim.version', U32_MAX)
    const kind = toSlotKind(claim.slotKind)
    const leaseMs = options.leaseMs === undefined ? -1 : checkWhole(options.leaseMs, 'leaseMs', Number.MAX_SAFE_INTEGER)
    const h = this.#handle()
    const d = call(() => fast.fastRenew(h, claim.symbolId, claim.windowIdx, kind.code, claim.version, leaseMs))
    if (d < 0) throw this.#refusal(d, claim.symbolId, claim.windowIdx, kind, claim.version)
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
    if (r < 0) throw this.#refusal(r, symbolId, windowIdx, kind, version)
    return r
  }

  /** Fills the `rfRate` slot (see {@link setRef}). */
  setRfRateRef(symbol: string | number, windowIdx: number, meta: PayloadMeta): number {
    return this.setRef(symbol, windowIdx, 'rfRate', meta)
  }
  /** Fills the `optionTrade` slot (see {@link setRef}). */
  setOptionTradeRef(symbol: string | number, windowIdx: number, meta: PayloadMeta): number {
    return this.setRef(symbol, windowIdx, 'optionTrade', meta)
  }
  /** Fills the `optionQuote` slot (see {@link setRef}). */
  setOptionQuoteRef(symbol: string | number, windowIdx: number, meta: PayloadMeta): number {
    return this.setRef(symbol, windowIdx, 'optionQuote', meta)
  }
  /** Fills the `underlyingTrade` slot (see {@link setRef}). */
  setUnderlyingTradeRef(symbol: string | number, windowIdx: number, meta: PayloadMeta): number {
    return this.setRef(symbol, windowIdx, 'underlyingTrade', meta)
  }
  /** Fills the `underlyingQuote` slot (see {@link setRef}). */
  setUnderlyingQuoteRef(symbol: string | number, windowIdx: number, meta: PayloadMeta): number {
    return this.setRef(symbol, windowIdx, 'underlyingQuote', meta)
  }
  /** Fills the `optionAggressor` slot (see {@link setRef}). */
  setOptionAggressorRef(symbol: string | number, windowIdx: number, meta: PayloadMeta): number {
    return this.setRef(symbol, windowIdx, 'optionAggressor', meta)
  }
  /** Fills the `underlyingAggressor` slot (see {@link setRef}). */
  setUnderlyingAggressorRef(symbol: string | number, windowIdx: number, meta: PayloadMeta): number {
    return this.setRef(symbol, windowIdx, 'underlyingAggressor', meta)
  }
  /** Fills the `greeks` slot (see {@link setRef}). */
  setGreeksRef(symbol: string | number, windowIdx: number, meta: PayloadMeta): number {
    return this.setRef(symbol, windowIdx, 'greeks', meta)
  }
  /** Fills the `aggregation` slot (see {@link setRef}). */
  setAggregationRef(symbol: string | number, windowIdx: number, meta: PayloadMeta): number {
    return this.setRef(symbol, windowIdx, 'aggregation', meta)
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
    if (r < 0) throw this.#refusal(r, symbolId, windowIdx, kind, version)
    return r
  }

  // ---- batch calls ----------------------------------------------------------

  /**
   * Claims up to `count` windows `>= startIdx` of one symbol and slot kind in
   * one native call, skipping windows that are Filled, Retired or held by a
   * live claim. Returns the claims in window order (possibly fewer than `count`).
   */
  claimNextUnfilled(symbol: string | number, startIdx: number, slotKind: SlotKindInput, count: number, options: ClaimOptions = {}): Claim[] {
    const symbolId = this.symbolId(symbol)
    checkWhole(startIdx, 'startIdx', U32_MAX)
    const kind = toSlotKind(slotKind)
    return this.#claimBatch(symbolId, kind, count, options, (n, leaseMs, buf) => n.claimNextUnfilled(symbolId, startIdx, kind.code, count, leaseMs, buf))
  }

  /** Runs a native batch claim that writes (window, version) pairs into a reused buffer; builds the claims. */
  #claimBatch(
    symbolId: number,
    kind: SlotKind,
    count: number,
    options: ClaimOptions,
    claim: (n: NativeController, leaseMs: number, buf: Float64Array) => number,
  ): Claim[] {
    checkWhole(count, 'count', 1_000_000)
    const leaseMs = options.leaseMs === undefined ? -1 : checkWhole(options.leaseMs, 'leaseMs', Number.MAX_SAFE_INTEGER)
    if (this.#pairBuf.buf.length < 2 * count) this.#pairBuf.buf = new Float64Array(2 * count)
    const buf = this.#pairBuf.buf
    const n = this.#n
    const before = Date.now()
    const got = call(() => claim(n, leaseMs, buf))
    const leaseExpiresAt = before + (leaseMs < 0 ? this.#defaultLeaseMs : leaseMs)
    const out: Claim[] = new Array(got)
    for (let i = 0; i < got; i++) out[i] = { symbolId, windowIdx: buf[2 * i]!, slotKind: kind, version: buf[2 * i + 1]!, leaseExpiresAt }
    return out
  }

  /**
   * Fills many slots in one native call. Each item succeeds or is refused on
   * its own (a refused item does not stop the batch); argument errors throw.
   */
  fillMany(items: readonly FillRequest[]): FillResult[] {
    if (!Array.isArray(items)) throw new TypeError('fillMany expects an array')
    const packed = new Float64Array(items.length * 8)
    const kinds: SlotKind[] = new Array(items.length)
    items.forEach((it, i) => {
      const sum = checkChecksum(it.meta?.checksum)
      const kind = toSlotKind(it.slotKind, `items[${i}].slotKind`)
      kinds[i] = kind
      packed.set(
        [
          this.symbolId(it.symbol),
          checkWhole(it.windowIdx, `items[${i}].windowIdx`, U32_MAX),
          kind.code,
          checkWhole(it.meta.version, `items[${i}].meta.version`, U32_MAX),
          payloadTypeCode(it.meta.payloadType),
          checkWhole(it.meta.payloadId, `items[${i}].meta.payloadId`, Number.MAX_SAFE_INTEGER),
          Number(sum >> 32n),
          Number(sum & 0xffffffffn),
        ],
        i * 8,
      )
    })
    const out = new Float64Array(items.length)
    call(() => this.#n.fillBatch(packed, out))
    return Array.from(out, (r, i): FillResult =>
      r >= 0 ? { ok: true, version: r } : { ok: false, error: this.#refusal(r, packed[i * 8]!, packed[i * 8 + 1]!, kinds[i]!, packed[i * 8 + 3]!) },
    )
  }

  // ---- admin ----------------------------------------------------------------

  /** Admin: any status but Retired → Cleared (an Empty slot stays Empty). */
  forceClear(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options?: AdminOptions): SlotTransition {
    const symbolId = this.symbolId(symbol)
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    const kind = toSlotKind(slotKind)
    const ctx = adminContext(options)
    const t = call(() => this.#n.forceClear(symbolId, windowIdx, kind.code, ctx))
    return { from: SLOT_STATUSES[t.from]!, to: SLOT_STATUSES[t.to]!, version: t.version }
  }

  /** Admin: any status → Retired (terminal; never claimed again). */
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
    const { from, to } = this.#range(range)
    const kind = toSlotKind(slotKind)
    const ctx = adminContext(options)
    return call(() => this.#n.forceClearRange(symbolId, from, to, kind.code, ctx))
  }

  /** Admin: retires windows `from` (inclusive) to `to` (exclusive). Returns how many changed. */
  retireRange(symbol: string | number, range: { from: number; to: number }, slotKind: SlotKindInput, options?: AdminOptions): number {
    const symbolId = this.symbolId(symbol)
    const { from, to } = this.#range(range)
    const kind = toSlotKind(slotKind)
    const ctx = adminContext(options)
    return call(() => this.#n.retireRange(symbolId, from, to, kind.code, ctx))
  }

  #range(range: { from: number; to: number }): { from: number; to: number } {
    if (typeof range !== 'object' || range === null) throw new TypeError('range must be { from, to }')
    const from = checkWhole(range.from, 'range.from', U32_MAX)
    const to = checkWhole(range.to, 'range.to', U32_MAX)
    if (to < from) throw new RangeError(`range.to (${to}) is before range.from (${from})`)
    return { from, to }
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
    if (!Array.isArray(requirements)) throw new TypeError('requirements must be an array of slot kinds')
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
  claimNextReady(
    symbol: string | number,
    startIdx: number,
    requirements: readonly SlotKindInput[],
    forSlot: SlotKindInput,
    count: number,
    options: ClaimOptions = {},
  ): Claim[] {
    const symbolId = this.symbolId(symbol)
    checkWhole(startIdx, 'startIdx', U32_MAX)
    const mask = this.#mask(requirements)
    const kind = toSlotKind(forSlot, 'forSlot')
    return this.#claimBatch(symbolId, kind, count, options, (n, leaseMs, buf) => n.claimNextReady(symbolId, startIdx, mask, kind.code, count, leaseMs, buf))
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
      if (!Array.isArray(slotKinds) || slotKinds.length === 0) throw new TypeError('slotKinds must be a non-empty array of slot kinds')
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
      let head: number
      try {
        head = this.#feed.head()
      } catch (e) {
        reject(translateNativeError(e))
        return
      }
      if (check()) return
      try {
        unsubscribe = this.#feed.subscribe(() => void check(), head)
      } catch (e) {
        reject(translateNativeError(e))
        return
      }
      if (options.timeoutMs !== undefined) {
        timer = setTimeout(
          () => settle(() => reject(new WaitTimeoutError(`waitFor: ${kinds.map((k) => k.name).join(', ')} of ${this.#where(symbolId, windowIdx, null)} not all Filled after ${options.timeoutMs} ms`, { symbolId, windowIdx }))),
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
   * Every slot change made by any process on the host, as it happens, in
   * journal order: `for await (const change of controller.watch({ slotKinds: ['optionQuote'] }))`.
   * Starts at `fromSeq` (default: now). A watcher that falls behind the
   * bounded journal, or meets an entry whose writer died, gets a
   * `JournalGapError` (details.resumeSeq says where to resume after a
   * rescan) — never a silently missed change. Breaking out of the loop stops
   * watching.
   */
  watch(options: WatchOptions = {}): ChangeIterator {
    if (typeof options !== 'object' || options === null) throw new TypeError('watch options must be an object')
    const symbols = options.symbols === undefined ? null : new Set(options.symbols.map((s) => this.symbolId(s)))
    const kinds = options.slotKinds === undefined ? null : new Set(options.slotKinds.map((k, i) => toSlotKind(k, `slotKinds[${i}]`).code))
    const head = this.journalHead()
    const fromSeq = options.fromSeq === undefined ? head : checkWhole(options.fromSeq, 'fromSeq', Number.MAX_SAFE_INTEGER)
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new TypeError('signal must be an AbortSignal')
    return new ChangeIterator(
      {
        feed: this.#feed,
        native: () => this.#n,
        closed: () => this.closed,
        symbolName: (id) => this.symbolName(id),
      },
      new JournalCursor(fromSeq, symbols, kinds),
      head,
      options.signal,
    )
  }

  // ---- reads ----------------------------------------------------------------

  #readSlot(symbolId: number, windowIdx: number, kind: SlotKind): SlotState {
    const buf = this.#slotBuf
    const h = this.#handle()
    try {
      fast.fastReadSlot(h, symbolId, windowIdx, kind.code, buf)
    } catch (e) {
      throw translateNativeError(e)
    }
    return slotStateAt(buf, 0)
  }

  /** A consistent copy of one slot. */
  getSlot(symbol: string | number, windowIdx: number, slotKind: SlotKindInput): SlotState {
    const symbolId = this.symbolId(symbol)
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    return this.#readSlot(symbolId, windowIdx, toSlotKind(slotKind))
  }

  /** The trade-ledger row of (symbol, window). */
  getTradeRow(symbol: string | number, windowIdx: number): TradeRow {
    const symbolId = this.symbolId(symbol)
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    const b = this.#slotBuf
    const h = this.#handle()
    try {
      fast.fastReadRow(h, 0, symbolId, windowIdx, b)
    } catch (e) {
      throw translateNativeError(e)
    }
    return {
      symbolId,
      windowIdx,
      rfRate: slotStateAt(b, 0),
      optionTrade: slotStateAt(b, 1),
      optionQuote: slotStateAt(b, 2),
      underlyingTrade: slotStateAt(b, 3),
      underlyingQuote: slotStateAt(b, 4),
      optionAggressor: slotStateAt(b, 5),
      underlyingAggressor: slotStateAt(b, 6),
    }
  }

  /** The enrichment-ledger row of (symbol, window). */
  getEnrichmentRow(symbol: string | number, windowIdx: number): EnrichmentRow {
    const symbolId = this.symbolId(symbol)
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    const b = this.#slotBuf
    const h = this.#handle()
    try {
      fast.fastReadRow(h, 1, symbolId, windowIdx, b)
    } catch (e) {
      throw translateNativeError(e)
    }
    return { symbolId, windowIdx, greeks: slotStateAt(b, 0), aggregation: slotStateAt(b, 1) }
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
    const out = new Float64Array(SLOT_KIND_NAMES.length * 5)
    call(() => f(out))
    return SLOT_KIND_NAMES.map((slot, i) => {
      const counts = {} as Record<SlotStatus, number>
      SLOT_STATUSES.forEach((s, j) => (counts[s] = out[i * 5 + j]!))
      return { ledger: i < 7 ? 'trade' : 'enrichment', slot, counts }
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
    if (ledger !== 'trade' && ledger !== 'enrichment') throw new RangeError(`ledger must be "trade" or "enrichment", got ${JSON.stringify(ledger)}`)
    const out = new Float64Array(8)
    call(() => this.#n.events(ledger === 'trade' ? 0 : 1, out))
    return { claims: out[0]!, takeovers: out[1]!, fills: out[2]!, conflicts: out[3]!, clears: out[4]!, forceClears: out[5]!, retires: out[6]!, busy: out[7]! }
  }

  // ---- payload stores and artifacts -----------------------------------------

  /** The six append-only mapping tables. */
  payloadStores(): PayloadStores {
    if (!this.#stores) {
      const make = (name: PayloadStoreName) => new PayloadStore(this, name, () => this.#n)
      this.#stores = Object.freeze({
        trades: make('trades'),
        quotes: make('quotes'),
        aggressor: make('aggressor'),
        rfRate: make('rfRate'),
        greeks: make('greeks'),
        aggregations: make('aggregations'),
      })
    }
    return this.#stores
  }

  /**
   * Writes an artifact atomically under `<stateDir>/artifacts/<relPath>` (temp
   * file, fsync, rename, directory fsync), computes its 64-bit checksum and
   * returns its URI relative to the state directory. Paths that would leave
   * the state directory throw `PathEscapesStateDirError`.
   */
  writeArtifact(relPath: string, data: Uint8Array | string): ArtifactInfo {
    if (typeof relPath !== 'string') throw new TypeError(`relPath must be a string, got ${typeof relPath}`)
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
    if (!(bytes instanceof Uint8Array)) throw new TypeError('data must be a Uint8Array, a Buffer or a string')
    const a = call(() => this.#n.writeArtifact(relPath, bytes))
    return { uri: a.uri, path: path.join(this.#stateDir, a.uri), checksum: BigInt(a.checksum), size: a.size }
  }

  /** The absolute path of an artifact URI (refuses URIs that would leave the state directory). */
  resolveArtifact(uri: string): string {
    if (typeof uri !== 'string') throw new TypeError(`uri must be a string, got ${typeof uri}`)
    return call(() => this.#n.resolveArtifact(uri))
  }
}

/** One append-only mapping table. Payload ids are dense and never reused. */
export class PayloadStore implements Iterable<PayloadRecord> {
  readonly name: PayloadStoreName
  readonly #code: number
  readonly #controller: WindowSpaceController
  readonly #native: () => NativeController

  /** @internal */
  constructor(controller: WindowSpaceController, name: PayloadStoreName, n: () => NativeController) {
    this.name = name
    this.#code = PAYLOAD_STORE_NAMES.indexOf(name)
    this.#controller = controller
    this.#native = n
  }

  /** Appends a payload record; returns its id (unique across every process). */
  append(payload: PayloadInput): number {
    if (typeof payload !== 'object' || payload === null) throw new TypeError('payload must be an object')
    const kind = toSlotKind(payload.slotKind, 'payload.slotKind')
    if (STORE_OF_SLOT_KIND[kind.name] !== this.name) {
      throw new RangeError(`slot kind ${kind.name} records into the ${STORE_OF_SLOT_KIND[kind.name]} store, not ${this.name}`)
    }
    if (typeof payload.uri !== 'string') throw new TypeError('payload.uri must be a string')
    const rec = {
      symbolId: this.#controller.symbolId(payload.symbol),
      windowIdx: checkWhole(payload.windowIdx, 'payload.windowIdx', U32_MAX),
      slotKind: kind.code,
      payloadType: payloadTypeCode(payload.payloadType),
      checksum: checkChecksum(payload.checksum),
      size: checkWhole(payload.size, 'payload.size', Number.MAX_SAFE_INTEGER),
      uri: payload.uri,
    }
    return call(() => this.#native().appendPayload(this.#code, rec))
  }

  /**
   * {@link append}, resolving once the record is durable: in the `'sync'`
   * mode, appends waiting at the same time share one `fdatasync` (group
   * commit). The id is assigned when this is called.
   */
  appendAsync(payload: PayloadInput): Promise<number> {
    let n: NativeController
    try {
      n = this.#native()
    } catch (e) {
      return Promise.reject(e)
    }
    return durably(n, () => this.append(payload))
  }

  /** The record of `payloadId`, or `null` if it does not exist. */
  get(payloadId: number): PayloadRecord | null {
    checkWhole(payloadId, 'payloadId', Number.MAX_SAFE_INTEGER)
    const r = call(() => this.#native().getPayload(this.#code, payloadId))
    if (!r) return null
    return {
      payloadId: r.payloadId,
      symbolId: r.symbolId,
      windowIdx: r.windowIdx,
      slotKind: SLOT_KIND_NAMES[r.slotKind]!,
      payloadType: r.payloadType,
      uri: r.uri,
      checksum: BigInt(r.checksum),
      size: r.size,
      createdAt: BigInt(r.createdAtNs),
    }
  }

  /** Number of records (including those other processes appended). */
  get length(): number {
    return call(() => this.#native().payloadCount(this.#code))
  }

  /** Records from id `from` on, in id order. */
  *entries(from = 0): IterableIterator<PayloadRecord> {
    checkWhole(from, 'from', Number.MAX_SAFE_INTEGER)
    const end = this.length
    for (let id = from; id < end; id++) {
      const r = this.get(id)
      if (r) yield r
    }
  }

  [Symbol.iterator](): Iterator<PayloadRecord> {
    return this.entries(0)
  }
}

/** The six mapping tables of a state directory. */
export interface PayloadStores {
  readonly trades: PayloadStore
  readonly quotes: PayloadStore
  readonly aggressor: PayloadStore
  readonly rfRate: PayloadStore
  readonly greeks: PayloadStore
  readonly aggregations: PayloadStore
}

/**
 * The hot path in its cheapest form: numbers in, a number out, no objects.
 * Symbols are ids (from `resolveSymbol`), slot kinds are `SlotKind.code`, and a
 * refused transition is returned as a negative {@link Refusal} code instead of
 * thrown. Other failures (unknown symbol, window out of range, closed) still
 * throw typed errors. Arguments are not type-checked beyond what the native
 * side needs to stay safe: pass whole numbers.
 */
export class RawCalls {
  readonly #controller: WindowSpaceController
  readonly #handle: () => number

  /** @internal */
  constructor(controller: WindowSpaceController, handle: () => number) {
    this.#controller = controller
    this.#handle = handle
  }

  /** Claims; returns the claim version, or a negative {@link Refusal} code. `leaseMs` < 0 means the default lease. */
  claim(symbolId: number, windowIdx: number, kindCode: number, leaseMs = -1): number {
    try {
      return fast.fastClaim(this.#handle(), symbolId, windowIdx, kindCode, leaseMs)
    } catch (e) {
      throw translateNativeError(e)
    }
  }

  /**
   * Fills at the claim's version; returns the new version, or a negative
   * {@link Refusal} code. The checksum is given as its high and low 32 bits.
   */
  fill(symbolId: number, windowIdx: number, kindCode: number, version: number, payloadType: number, payloadId: number, checksumHi: number, checksumLo: number): number {
    try {
      return fast.fastFill(this.#handle(), symbolId, windowIdx, kindCode, version, payloadType, payloadId, checksumHi, checksumLo)
    } catch (e) {
      throw translateNativeError(e)
    }
  }

  /** The claim holder clears; returns the new version, or a negative {@link Refusal} code. */
  clear(symbolId: number, windowIdx: number, kindCode: number, version: number): number {
    try {
      return fast.fastClear(this.#handle(), symbolId, windowIdx, kindCode, version)
    } catch (e) {
      throw translateNativeError(e)
    }
  }

  /** First window >= `startIdx` that is neither Filled nor Retired, or -1. */
  nextUnfilledWindow(symbolId: number, startIdx: number, kindCode: number): number {
    try {
      return fast.fastNextUnfilled(this.#handle(), symbolId, startIdx, kindCode)
    } catch (e) {
      throw translateNativeError(e)
    }
  }

  /** The controller these calls act on. */
  get controller(): WindowSpaceController {
    return this.#controller
  }
}
