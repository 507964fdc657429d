/**
 * The PostgreSQL backend: {@link PostgresLedger}, the {@link Ledger}
 * contract on a shared database, for engines on many hosts. Open one with
 * `WindowSpaceController.connect('postgres://…', config)`.
 *
 * Every rule runs in the Rust core (`crates/window-space-core/src/postgres`)
 * on tokio-postgres; this module checks arguments, turns symbol names into
 * ids, and shapes results. Watching reads the database's change feed after a
 * position, woken by `LISTEN` and polling as the backstop.
 *
 * @module
 */
import { setMaxListeners } from 'node:events'

import { adminContext, checkChecksum, checkRange, checkWhole, isList, payloadTypeCode, U32_MAX, type AdminOptions } from './args'
import type { WindowSpaceConfig } from './config'
import type { ClaimOptions, FillRequest, FillResult, WaitForOptions } from './controller'
import { ClosedError, SlotRetiredError, translateNativeError, UnknownPayloadError, WaitTimeoutError, type SlotWriteError } from './errors'
import { buildRows, checkLedgerName, type Ledger, type LedgerAuditEntry, type LedgerChange, type LedgerWatch, type LedgerWatchOptions } from './ledger'
import { native } from './native'
import { scheduleFromJson, scheduleToJson, timeToNs, type TimeInput, type WindowSpace } from './time'
import {
  PAYLOAD_STORE_NAMES,
  SLOT_KIND_NAMES,
  SLOT_STATUSES,
  STORE_OF_SLOT_KIND,
  toSlotKind,
  type Claim,
  type EnrichmentRow,
  type LedgerName,
  type PayloadInput,
  type PayloadMeta,
  type PayloadRecord,
  type PayloadStoreName,
  type SlotKind,
  type SlotKindInput,
  type SlotKindName,
  type SlotMetric,
  type SlotState,
  type SlotTransition,
  type TradeRow,
} from './types'
import { abortErrorOf } from './watch'
import type * as Binding from '../binding'

/** Options of `WindowSpaceController.connect`. */
export interface PostgresOptions {
  /** The schedule; persisted on first connect, checked (or rolled forward) later. */
  readonly windowSpace: WindowSpace
  /** The window space's name in the database (one database holds many). Default `'default'`. */
  readonly space?: string
  /** Connections to open; statements are pipelined on each. Default 4. */
  readonly connections?: number
  /** Lease of a claim that names none, in ms. Default 30 000. */
  readonly defaultLeaseMs?: number
  /** Who admin calls name in the audit trail when a call names nobody. */
  readonly actor?: string
  /** Longest wait between two reads of the change feed when no notification comes, in ms. Default 500. */
  readonly pollMs?: number
  /**
   * Open the space only if the database holds it, with its stored schedule
   * (`windowSpace` is then not compared, and nothing is created or rolled
   * forward): for operators' tools. Default false.
   */
  readonly existingOnly?: boolean
  /**
   * Windows in each partition of the space's slots, the unit retention
   * drops whole ({@link PostgresLedger.dropWindowsBefore}). Fixed when the
   * space is made: for a space that exists, a different value is refused.
   * Default: the stored value, or 4096 for a new space.
   */
  readonly partitionWindows?: number
}

/** What {@link PostgresLedger.dropWindowsBefore} did, or would do. */
export interface PostgresRetention {
  /** The retention line before the run: every window before it was Retired. */
  readonly previous: number
  /** The retention line after the run (or that the run would set). */
  readonly retiredBefore: number
  /** The windows `[from, to)` of each partition dropped (or that would be). */
  readonly dropped: ReadonlyArray<{ readonly from: number; readonly to: number }>
  /** Pending slots before the new line whose lease was still running. */
  readonly liveClaims: number
  /** True when nothing changed: a dry run, or a line that was already there. */
  readonly unchanged: boolean
  /**
   * Why the run stopped before the line it was asked for, after some of
   * its steps committed (they stay: `retiredBefore` is where they ended),
   * as the typed error a failed call would reject with; null when it got
   * there. A run whose first step fails rejects instead, having changed nothing.
   */
  readonly stopped: Error | null
}

type NativePgLedger = Binding.NativePgLedger
type NativePgSlot = Binding.NativePgSlot

/** A slot before the retention line: Retired, with no row (so version 0). */
const RETIRED: SlotState = Object.freeze({ status: 'Retired', version: 0, payloadType: 0, payloadId: 0, checksum: 0n, leaseExpiresAt: null })

/** A native call's rejection as the typed error. */
async function call<T>(p: () => Promise<T>): Promise<T> {
  try {
    return await p()
  } catch (e) {
    throw translateNativeError(e)
  }
}

function slotOf(s: NativePgSlot): SlotState {
  const status = SLOT_STATUSES[s.status] ?? 'Empty'
  return {
    status,
    version: s.version,
    payloadType: status === 'Filled' ? s.payloadType : 0,
    payloadId: status === 'Filled' ? s.payloadId : 0,
    checksum: status === 'Filled' ? s.checksum : 0n,
    leaseExpiresAt: status === 'Pending' ? s.leaseExpiresAt : null,
  }
}

function storeCode(store: PayloadStoreName): number {
  const i = PAYLOAD_STORE_NAMES.indexOf(store)
  if (i < 0) throw new RangeError(`unknown payload store ${JSON.stringify(store)}; expected one of ${PAYLOAD_STORE_NAMES.join(', ')}`)
  return i
}

function leaseOf(options: ClaimOptions | undefined): number | undefined {
  return options?.leaseMs === undefined ? undefined : checkWhole(options.leaseMs, 'leaseMs', Number.MAX_SAFE_INTEGER)
}

/** What {@link PostgresLedger.verify} found. */
export interface PostgresVerifyReport {
  readonly ok: boolean
  readonly counts: { readonly slots: number; readonly filledSlots: number; readonly records: number; readonly changes: number }
  /** What was checked, one line each. */
  readonly checked: readonly string[]
  readonly warnings: readonly { readonly message: string }[]
  /** `kind`: `slot-fields`, `missing-record` or `change-feed`. */
  readonly problems: readonly { readonly kind: string; readonly message: string }[]
}

/** The PostgreSQL backend of the {@link Ledger} contract. */
export class PostgresLedger implements Ledger {
  readonly backend = 'postgres' as const
  readonly #n: NativePgLedger
  readonly #actor: string
  readonly #pollMs: number
  #windowCount: number
  #closed = false
  readonly #closing = new AbortController()

  /** @internal Use `WindowSpaceController.connect`. */
  constructor(n: NativePgLedger, options: { actor: string; pollMs: number }) {
    this.#n = n
    this.#actor = options.actor
    this.#pollMs = options.pollMs
    this.#windowCount = n.info().windowCount
    // Every wait in flight listens for close: as many as there are waiters.
    setMaxListeners(0, this.#closing.signal)
  }

  /** @internal */
  static async open(url: string, config: PostgresOptions | WindowSpaceConfig): Promise<PostgresLedger> {
    if (typeof url !== 'string' || !/^postgres(ql)?:\/\//.test(url)) throw new TypeError('url must be a postgres:// or postgresql:// connection string')
    const o = config as PostgresOptions & { options?: { defaultLeaseMs?: number; actor?: string } }
    if (typeof o !== 'object' || o === null || o.windowSpace === undefined) throw new TypeError('config must be { windowSpace, space?, ... } or a WindowSpaceConfig')
    const defaultLeaseMs = o.defaultLeaseMs ?? o.options?.defaultLeaseMs
    if (defaultLeaseMs !== undefined) checkWhole(defaultLeaseMs, 'defaultLeaseMs', Number.MAX_SAFE_INTEGER)
    const space = o.space ?? 'default'
    if (typeof space !== 'string' || space.length === 0 || space.length > 128) throw new RangeError('space must be a string of 1 to 128 characters')
    const connections = o.connections === undefined ? 4 : checkWhole(o.connections, 'connections', 64)
    const pollMs = o.pollMs === undefined ? 500 : checkWhole(o.pollMs, 'pollMs', 60_000)
    if (o.existingOnly !== undefined && typeof o.existingOnly !== 'boolean') throw new TypeError('existingOnly must be a boolean')
    const partitionWindows = o.partitionWindows
    if (partitionWindows !== undefined) {
      if (typeof partitionWindows !== 'number') throw new TypeError(`partitionWindows must be a number, got ${typeof partitionWindows}`)
      if (!Number.isInteger(partitionWindows) || partitionWindows < 1 || partitionWindows > 2 ** 31 - 1) {
        throw new RangeError(`partitionWindows must be a whole number from 1 to 2147483647, got ${partitionWindows}`)
      }
    }
    const n = await call(() =>
      native.pgConnect({
        url,
        scheduleJson: scheduleToJson(o.windowSpace),
        space,
        connections: Math.max(1, connections),
        defaultLeaseMs,
        existingOnly: o.existingOnly === true,
        partitionWindows,
      }),
    )
    return new PostgresLedger(n, { actor: o.actor ?? o.options?.actor ?? native.defaultActor(), pollMs })
  }

  get windowCount(): number {
    return this.#windowCount
  }

  /** How connecting related the given schedule to the stored one: `created`, `same`, `rolledForward`, `behind`. */
  get scheduleRelation(): string {
    return this.#n.info().schedule
  }

  #check(): void {
    if (this.#closed) throw new ClosedError('the ledger is closed')
  }

  async resolveSymbol(symbol: string): Promise<number> {
    this.#check()
    if (typeof symbol !== 'string') throw new TypeError(`symbol must be a string, got ${typeof symbol}`)
    return call(() => this.#n.resolveSymbol(symbol))
  }

  async symbolId(symbol: string | number): Promise<number> {
    this.#check()
    if (typeof symbol === 'number') {
      checkWhole(symbol, 'symbol id', U32_MAX)
      await call(() => this.#n.symbolName(symbol))
      return symbol
    }
    if (typeof symbol !== 'string') throw new TypeError(`symbol must be a string or a symbol id, got ${typeof symbol}`)
    return call(() => this.#n.symbolId(symbol))
  }

  /** The space's symbols, by id. */
  async symbols(): Promise<Array<{ id: number; name: string }>> {
    this.#check()
    const got = await call(() => this.#n.symbols())
    return got.map((x) => {
      const i = x.indexOf(':')
      return { id: Number(x.slice(0, i)), name: x.slice(i + 1) }
    })
  }

  /** Windows in each partition of the space's slots: the unit retention drops. */
  get partitionWindows(): number {
    return this.#n.info().partitionWindows
  }

  /** How many windows of the schedule in force have started by `at` (the index of the first that starts after it). */
  windowsStartedBy(at: TimeInput): number {
    this.#check()
    try {
      return this.#n.windowsStartedBy(timeToNs(at))
    } catch (e) {
      throw translateNativeError(e)
    }
  }

  /** The retention line: every window before it is Retired, its rows dropped. */
  async retiredBefore(): Promise<number> {
    this.#check()
    return call(() => this.#n.retiredBefore())
  }

  /**
   * Retention: every window before `windowIdx`, rounded down to a partition
   * boundary (so at least the windows from `windowIdx` on are kept), becomes
   * Retired, and the partitions that held only such windows are dropped
   * whole, giving their space back; one transaction, so a run killed part
   * way changes nothing. Refused with `SlotBusyError` (naming the first
   * one) while a slot there is Pending under a running lease, unless
   * `force`. `dryRun` says what it would do. Recorded in the audit trail.
   * Payload records are kept.
   */
  async dropWindowsBefore(windowIdx: number, options: AdminOptions & { force?: boolean; dryRun?: boolean } = {}): Promise<PostgresRetention> {
    this.#check()
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    if (options.force !== undefined && typeof options.force !== 'boolean') throw new TypeError('force must be a boolean')
    if (options.dryRun !== undefined && typeof options.dryRun !== 'boolean') throw new TypeError('dryRun must be a boolean')
    const { actor, reason } = this.#admin(options)
    const r = await call(() => this.#n.dropWindowsBefore(windowIdx, options.force === true, options.dryRun === true, actor, reason))
    const dropped: Array<{ from: number; to: number }> = []
    for (let i = 0; i + 1 < r.dropped.length; i += 2) dropped.push({ from: r.dropped[i]!, to: r.dropped[i + 1]! })
    const stopped =
      r.stoppedCode === undefined || r.stoppedCode === null
        ? null
        : (translateNativeError(Object.assign(new Error(r.stoppedMessage ?? ''), { code: r.stoppedCode, details: JSON.parse(r.stoppedDetails ?? '{}') as unknown })) as Error)
    return { previous: r.previous, retiredBefore: r.retiredBefore, dropped, liveClaims: r.liveClaims, unchanged: r.unchanged, stopped }
  }

  /** The schedule in force (the stored one when connecting gave an older one). */
  get windowSpace(): WindowSpace {
    return scheduleFromJson(this.#n.info().scheduleJson)
  }

  /** A symbol's id without a check of a numeric id (the core checks it with the call). */
  async #id(symbol: string | number): Promise<number> {
    this.#check()
    if (typeof symbol === 'number') return checkWhole(symbol, 'symbol id', U32_MAX)
    if (typeof symbol !== 'string') throw new TypeError(`symbol must be a string or a symbol id, got ${typeof symbol}`)
    return call(() => this.#n.symbolId(symbol))
  }

  async claim(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options?: ClaimOptions): Promise<Claim> {
    const symbolId = await this.#id(symbol)
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    const kind = toSlotKind(slotKind)
    const c = await call(() => this.#n.claim(symbolId, windowIdx, kind.code, leaseOf(options)))
    return { symbolId, windowIdx, slotKind: kind, version: c.version, leaseExpiresAt: c.leaseExpiresAt }
  }

  async tryClaim(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options?: ClaimOptions): Promise<Claim | null> {
    try {
      return await this.claim(symbol, windowIdx, slotKind, options)
    } catch (e) {
      const code = (e as { code?: string }).code
      if (code === 'ERR_SLOT_BUSY' || code === 'ERR_SLOT_FILLED' || code === 'ERR_SLOT_RETIRED') return null
      throw e
    }
  }

  async renew(claim: Claim, options?: ClaimOptions): Promise<Claim> {
    this.#check()
    if (typeof claim !== 'object' || claim === null) throw new TypeError('claim must be the Claim returned by claim')
    const symbolId = checkWhole(claim.symbolId, 'claim.symbolId', U32_MAX)
    const windowIdx = checkWhole(claim.windowIdx, 'claim.windowIdx', U32_MAX)
    const kind = toSlotKind(claim.slotKind)
    const version = checkWhole(claim.version, 'claim.version', U32_MAX)
    const d = await call(() => this.#n.renew(symbolId, windowIdx, kind.code, version, leaseOf(options)))
    return { ...claim, leaseExpiresAt: d }
  }

  #fillItem(symbolId: number, windowIdx: number, kind: SlotKind, meta: PayloadMeta, what = 'meta'): Binding.NativePgFill {
    if (typeof meta !== 'object' || meta === null) throw new TypeError(`${what} must be a PayloadMeta object`)
    return {
      symbolId,
      windowIdx: checkWhole(windowIdx, 'windowIdx', U32_MAX),
      kind: kind.code,
      version: checkWhole(meta.version, `${what}.version`, U32_MAX),
      payloadType: payloadTypeCode(meta.payloadType),
      payloadId: checkWhole(meta.payloadId, `${what}.payloadId`, Number.MAX_SAFE_INTEGER),
      checksum: checkChecksum(meta.checksum),
    }
  }

  async fill(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, meta: PayloadMeta): Promise<number> {
    const symbolId = await this.#id(symbol)
    const item = this.#fillItem(symbolId, windowIdx, toSlotKind(slotKind), meta)
    return call(() => this.#n.fill(item))
  }

  async clear(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, claim: Pick<Claim, 'version'>): Promise<number> {
    const symbolId = await this.#id(symbol)
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    const kind = toSlotKind(slotKind)
    if (typeof claim !== 'object' || claim === null) throw new TypeError('claim must be the Claim returned by claim')
    const version = checkWhole(claim.version, 'claim.version', U32_MAX)
    return call(() => this.#n.clear(symbolId, windowIdx, kind.code, version))
  }

  async claimNextUnfilled(symbol: string | number, startIdx: number, slotKind: SlotKindInput, count: number, options?: ClaimOptions): Promise<Claim[]> {
    const symbolId = await this.#id(symbol)
    checkWhole(startIdx, 'startIdx', U32_MAX)
    const kind = toSlotKind(slotKind)
    checkWhole(count, 'count', 1_000_000)
    const got = await call(() => this.#n.claimNextUnfilled(symbolId, startIdx, kind.code, count, leaseOf(options)))
    return got.map((c) => ({ symbolId, windowIdx: c.windowIdx, slotKind: kind, version: c.version, leaseExpiresAt: c.leaseExpiresAt }))
  }

  async fillMany(items: readonly FillRequest[]): Promise<FillResult[]> {
    this.#check()
    if (!isList(items)) throw new TypeError('fillMany expects an array')
    const natives: Binding.NativePgFill[] = []
    for (let i = 0; i < items.length; i++) {
      const it: FillRequest | undefined = items[i]
      if (typeof it !== 'object' || it === null) throw new TypeError(`items[${i}] must be a FillRequest object, got ${it === null ? 'null' : typeof it}`)
      const kind = toSlotKind(it.slotKind, `items[${i}].slotKind`)
      natives.push(this.#fillItem(await this.#id(it.symbol), it.windowIdx, kind, it.meta, `items[${i}].meta`))
    }
    const out = await call(() => this.#n.fillMany(natives))
    return out.map((r): FillResult => {
      if (r.version !== undefined && r.version !== null) return { ok: true, version: r.version }
      const err = translateNativeError(Object.assign(new Error(r.message ?? ''), { code: r.code, details: JSON.parse(r.detailsJson ?? '{}') as unknown }))
      return { ok: false, error: err as SlotWriteError }
    })
  }

  async getSlot(symbol: string | number, windowIdx: number, slotKind: SlotKindInput): Promise<SlotState> {
    const symbolId = await this.#id(symbol)
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    const kind = toSlotKind(slotKind)
    return slotOf(await call(() => this.#n.getSlot(symbolId, windowIdx, kind.code)))
  }

  rows(symbol: string | number, range: { from: number; to: number }, ledger: 'trade'): Promise<TradeRow[]>
  rows(symbol: string | number, range: { from: number; to: number }, ledger: 'enrichment'): Promise<EnrichmentRow[]>
  rows(symbol: string | number, range: { from: number; to: number }, ledger: LedgerName): Promise<(TradeRow | EnrichmentRow)[]>
  async rows(symbol: string | number, range: { from: number; to: number }, ledger: LedgerName): Promise<(TradeRow | EnrichmentRow)[]> {
    const symbolId = await this.#id(symbol)
    const { from, to } = checkRange(range)
    const l = checkLedgerName(ledger)
    const kinds = SLOT_KIND_NAMES.map((k) => toSlotKind(k)).filter((k) => k.ledger === l)
    const got = await call(() => this.#n.rows(symbolId, from, to, kinds.map((k) => k.code)))
    const at = new Map<string, SlotState>()
    for (const r of got.slots) at.set(`${r.windowIdx}:${SLOT_KIND_NAMES[r.kind]}`, slotOf(r.slot))
    // Before the retention line every slot is Retired and has no row.
    return buildRows(symbolId, from, to, l, (w, k) => at.get(`${w}:${k}`) ?? (w < got.retiredBefore ? RETIRED : undefined))
  }

  async nextUnfilledWindow(symbol: string | number, startIdx: number, slotKind: SlotKindInput): Promise<number | null> {
    const symbolId = await this.#id(symbol)
    checkWhole(startIdx, 'startIdx', U32_MAX)
    const kind = toSlotKind(slotKind)
    return (await call(() => this.#n.nextUnfilledWindow(symbolId, startIdx, kind.code))) ?? null
  }

  async isReady(symbol: string | number, windowIdx: number, requirements: readonly SlotKindInput[]): Promise<boolean> {
    if (!isList(requirements)) throw new TypeError('requirements must be an array of slot kinds')
    const kinds = requirements.map((r, i) => toSlotKind(r, `requirements[${i}]`))
    const slots = await Promise.all(kinds.map((k) => this.getSlot(symbol, windowIdx, k)))
    return slots.every((s) => s.status === 'Filled')
  }

  async appendPayload(store: PayloadStoreName, payload: PayloadInput): Promise<number> {
    const code = storeCode(store)
    if (typeof payload !== 'object' || payload === null) throw new TypeError('payload must be a PayloadInput object')
    const symbolId = await this.#id(payload.symbol)
    const kind = toSlotKind(payload.slotKind)
    if (STORE_OF_SLOT_KIND[kind.name] !== store) throw new RangeError(`slot kind ${kind.name} records into ${STORE_OF_SLOT_KIND[kind.name]}, not ${store}`)
    if (typeof payload.uri !== 'string') throw new TypeError('uri must be a string')
    const r = await call(() =>
      this.#n.appendPayload(code, symbolId, checkWhole(payload.windowIdx, 'windowIdx', U32_MAX), kind.code, payloadTypeCode(payload.payloadType), payload.uri, checkChecksum(payload.checksum), checkWhole(payload.size, 'size', Number.MAX_SAFE_INTEGER)),
    )
    return r.payloadId
  }

  async getPayload(store: PayloadStoreName, payloadId: number): Promise<PayloadRecord | null> {
    this.#check()
    const code = storeCode(store)
    checkWhole(payloadId, 'payloadId', Number.MAX_SAFE_INTEGER)
    try {
      const r = await call(() => this.#n.getPayload(code, payloadId))
      return { payloadId: r.payloadId, symbolId: r.symbolId, windowIdx: r.windowIdx, slotKind: SLOT_KIND_NAMES[r.kind]!, payloadType: r.payloadType, uri: r.uri, checksum: r.checksum, size: r.size, createdAt: r.createdAtNs }
    } catch (e) {
      if (e instanceof UnknownPayloadError) return null
      throw e
    }
  }

  #admin(options: AdminOptions | undefined): { actor: string; reason: string | undefined } {
    const ctx = adminContext(options)
    return { actor: ctx?.actor ?? this.#actor, reason: ctx?.reason }
  }

  async forceClear(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options?: AdminOptions): Promise<SlotTransition> {
    const symbolId = await this.#id(symbol)
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    const kind = toSlotKind(slotKind)
    const { actor, reason } = this.#admin(options)
    const t = await call(() => this.#n.forceClear(symbolId, windowIdx, kind.code, actor, reason))
    return { from: SLOT_STATUSES[t.from]!, to: SLOT_STATUSES[t.to]!, version: t.version }
  }

  async retire(symbol: string | number, windowIdx: number, slotKind: SlotKindInput, options?: AdminOptions): Promise<SlotTransition> {
    const symbolId = await this.#id(symbol)
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    const kind = toSlotKind(slotKind)
    const { actor, reason } = this.#admin(options)
    const t = await call(() => this.#n.retire(symbolId, windowIdx, kind.code, actor, reason))
    return { from: SLOT_STATUSES[t.from]!, to: SLOT_STATUSES[t.to]!, version: t.version }
  }

  async forceClearRange(symbol: string | number, range: { from: number; to: number }, slotKind: SlotKindInput, options?: AdminOptions): Promise<number> {
    const symbolId = await this.#id(symbol)
    const { from, to } = checkRange(range)
    const kind = toSlotKind(slotKind)
    const { actor, reason } = this.#admin(options)
    return call(() => this.#n.forceClearRange(symbolId, from, to, kind.code, actor, reason))
  }

  async retireRange(symbol: string | number, range: { from: number; to: number }, slotKind: SlotKindInput, options?: AdminOptions): Promise<number> {
    const symbolId = await this.#id(symbol)
    const { from, to } = checkRange(range)
    const kind = toSlotKind(slotKind)
    const { actor, reason } = this.#admin(options)
    return call(() => this.#n.retireRange(symbolId, from, to, kind.code, actor, reason))
  }

  /**
   * The operators' check of this window space: each slot's columns fit its
   * status, every Filled slot's payload record exists, and each slot's
   * newest change has its version and status. Reads only.
   */
  async verify(): Promise<PostgresVerifyReport> {
    this.#check()
    const r = await call(() => this.#n.verify())
    return {
      ok: r.ok,
      counts: { slots: r.slots, filledSlots: r.filledSlots, records: r.records, changes: r.changes },
      checked: r.checked,
      warnings: r.warnings.map((message) => ({ message })),
      problems: r.problems,
    }
  }

  async slotMetrics(): Promise<SlotMetric[]> {
    this.#check()
    const m = await call(() => this.#n.slotMetrics())
    return m.map((x) => {
      const kind = toSlotKind(SLOT_KIND_NAMES[x.kind]!)
      const counts = Object.fromEntries(SLOT_STATUSES.map((s, i) => [s, x.counts[i] ?? 0])) as SlotMetric['counts']
      return { ledger: kind.ledger, slot: kind.name, counts }
    })
  }

  async waitFor(symbol: string | number, windowIdx: number, slotKinds: readonly SlotKindInput[], options: WaitForOptions = {}): Promise<SlotState[]> {
    const symbolId = await this.#id(symbol)
    checkWhole(windowIdx, 'windowIdx', U32_MAX)
    if (!isList(slotKinds) || slotKinds.length === 0) throw new TypeError('slotKinds must be a non-empty array of slot kinds')
    const kinds = slotKinds.map((k, i) => toSlotKind(k, `slotKinds[${i}]`))
    if (options.timeoutMs !== undefined) checkWhole(options.timeoutMs, 'timeoutMs', 2 ** 31 - 1)
    const signal = options.signal
    if (signal?.aborted) throw abortErrorOf(signal, 'waitFor')
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs
    let seen = await call(() => this.#n.waitChange(-1, 0))
    for (;;) {
      if (this.#closed) throw new ClosedError('the ledger was closed while waiting')
      const slots = await Promise.all(kinds.map((k) => this.getSlot(symbolId, windowIdx, k)))
      const retired = slots.findIndex((s) => s.status === 'Retired')
      if (retired >= 0) {
        const k = kinds[retired]!
        throw new SlotRetiredError(`slot ${k.name} of symbol ${symbolId}, window ${windowIdx} is Retired: it will never be Filled`, { symbolId, windowIdx, slotKind: k.name, status: 'Retired', version: slots[retired]!.version, expectedVersion: null })
      }
      if (slots.every((s) => s.status === 'Filled')) return slots
      if (signal?.aborted) throw abortErrorOf(signal, 'waitFor')
      const left = deadline - Date.now()
      if (left <= 0) throw new WaitTimeoutError(`waitFor gave up after ${options.timeoutMs} ms: not every slot of ${kinds.map((k) => k.name).join(', ')} of symbol ${symbolId}, window ${windowIdx} was Filled`)
      seen = await this.#waitChange(seen, Math.min(left, this.#pollMs), signal)
    }
  }

  /** Waits for a notification after count `seen`, at most `ms`, ending early on any of `signals` or close. */
  async #waitChange(seen: number, ms: number, ...signals: (AbortSignal | undefined)[]): Promise<number> {
    const stop = new AbortController()
    const onAbort = () => {
      stop.abort()
      // The native wait would otherwise hold the event loop open until `ms` ran out.
      this.#n.wakeWaiters()
    }
    const all = [...signals, this.#closing.signal].filter((s): s is AbortSignal => s !== undefined)
    for (const s of all) s.addEventListener('abort', onAbort)
    try {
      if (all.some((s) => s.aborted)) return seen
      return await Promise.race([
        call(() => this.#n.waitChange(seen, ms)),
        new Promise<number>((resolve) => stop.signal.addEventListener('abort', () => resolve(seen))),
      ])
    } finally {
      for (const s of all) s.removeEventListener('abort', onAbort)
    }
  }

  async head(): Promise<string> {
    this.#check()
    return call(() => this.#n.changesHead())
  }

  watch(options: LedgerWatchOptions = {}): LedgerWatch {
    this.#check()
    const kinds = options.slotKinds === undefined ? undefined : new Set(options.slotKinds.map((k) => toSlotKind(k).name))
    const signal = options.signal
    let position: string | undefined = options.after
    let symbols: Set<number> | undefined
    let buffer: LedgerChange[] = []
    let seen = -1
    let done = false
    // Aborted by close(): a pending next() stops waiting and ends.
    const closed = new AbortController()
    const ready = (async () => {
      if (options.symbols !== undefined) symbols = new Set(await Promise.all(options.symbols.map((s) => this.#id(s))))
      if (position === undefined) position = await this.head()
      seen = await call(() => this.#n.waitChange(-1, 0))
    })()
    const self: LedgerWatch = {
      next: async (): Promise<IteratorResult<LedgerChange>> => {
        await ready
        for (;;) {
          if (done || this.#closed) return { done: true, value: undefined }
          if (signal?.aborted) throw abortErrorOf(signal, 'watch')
          const c = buffer.shift()
          if (c) return { done: false, value: c }
          const got = await call(() => this.#n.changes(position!, 512))
          for (const x of got) {
            position = x.position
            const slotKind = SLOT_KIND_NAMES[x.kind]!
            if (symbols && !symbols.has(x.symbolId)) continue
            if (kinds && !kinds.has(slotKind)) continue
            const to = SLOT_STATUSES[x.slot.status]!
            buffer.push({ position: x.position, symbolId: x.symbolId, windowIdx: x.windowIdx, slotKind, to, version: x.slot.version, payloadId: to === 'Filled' ? x.slot.payloadId : null })
          }
          if (buffer.length === 0 && got.length === 0) seen = await this.#waitChange(seen, this.#pollMs, signal, closed.signal)
        }
      },
      return: (): Promise<IteratorResult<LedgerChange>> => {
        self.close()
        return Promise.resolve({ done: true, value: undefined })
      },
      close: () => {
        done = true
        buffer = []
        closed.abort()
      },
      [Symbol.asyncIterator]() {
        return self
      },
    }
    return self
  }

  /**
   * The audit trail: admin transitions from the change feed, and retention
   * runs (`action: 'retention'`, `windowIdx` the new retention line), in
   * the order they were made.
   */
  async audit(): Promise<LedgerAuditEntry[]> {
    this.#check()
    const timed: Array<{ atMs: number; entry: LedgerAuditEntry }> = []
    let position = ''
    for (;;) {
      const got = await call(() => this.#n.changes(position, 4096))
      if (got.length === 0) break
      for (const x of got) {
        position = x.position
        if (x.action === undefined || x.action === null) continue
        timed.push({ atMs: x.atMs, entry: { action: x.action, actor: x.actor ?? '', reason: x.reason ?? '', symbolId: x.symbolId, windowIdx: x.windowIdx, slotKind: SLOT_KIND_NAMES[x.kind]! } })
      }
    }
    for (const r of await call(() => this.#n.retentions())) {
      timed.push({ atMs: r.atMs, entry: { action: 'retention', actor: r.actor, reason: r.reason, symbolId: null, windowIdx: r.retiredBefore, slotKind: null } })
    }
    // A stable sort: changes keep their feed order among themselves.
    return timed.sort((a, b) => a.atMs - b.atMs).map((t) => t.entry)
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true
      this.#closing.abort()
      this.#n.close()
    }
    return Promise.resolve()
  }
}

export type { SlotKindName }
