/**
 * Looking at a state directory without changing it: {@link StateView} (a
 * read-only view: every file opened read-only and read with `pread`, no
 * lock taken, nothing created or written, so it works beside running
 * engines and on a read-only copy) and {@link verifyStateDir} (every
 * invariant, checked). The core computes every answer
 * (crates/window-space-core/src/ops); this module only shapes them.
 *
 * @module
 */
import * as path from 'node:path'

import { checkWhole } from './args'
import { translateNativeError } from './errors'
import type { GcReport } from './gc-report'
import { scheduleFromJson, type WindowSpace } from './time'
import { native } from './native'
import { slotStateAt } from './slot-state'
import type { SlotMetric, SlotState } from './types'
import {
  LEDGER_EVENT_NAMES,
  LEDGER_NAMES,
  PAYLOAD_STORE_NAMES,
  SLOT_KIND_INFO,
  SLOT_KIND_NAMES,
  SLOT_KINDS_OF_LEDGER,
  SLOT_STATUSES,
  type LedgerEventName,
  type LedgerName,
  type PayloadStoreName,
  type SlotKindName,
  type SlotStatus,
} from './vocabulary'
import type { NativeStateView } from '../binding'

function call<T>(f: () => T): T {
  try {
    return f()
  } catch (e) {
    throw translateNativeError(e)
  }
}

/** Progress of a long operation: (phase, done, total). */
export type ProgressCallback = (phase: string, done: number, total: number) => void

/** One finding of {@link verifyStateDir}. */
export interface VerifyFinding {
  /** Stable name of the kind of finding, e.g. `payload-missing`. */
  readonly kind: string
  readonly message: string
  /** Where: symbol, window, slot, store, payload id, file, offset, ... as applicable. */
  readonly [field: string]: unknown
}

/** What {@link verifyStateDir} found. */
export interface VerifyReport {
  /** No problems (warnings allowed). */
  readonly ok: boolean
  readonly stateDir: string
  /** What was checked, for people. */
  readonly checked: readonly string[]
  readonly counts: {
    readonly rows: number
    readonly filledSlots: number
    readonly records: number
    readonly artifacts: number
    readonly slotsChecked: number
    readonly auditEntries: number
  }
  readonly problems: readonly VerifyFinding[]
  readonly warnings: readonly VerifyFinding[]
}

/**
 * Checks every invariant of the state directory `dir`, read-only, beside
 * running engines or on a copy: file headers and records, the raw bytes of
 * every slot, every Filled slot against its record, the shared counters
 * against an exact count, the audit trail, gc.log and, with `artifacts`,
 * every artifact file a Filled slot refers to. A slot that changes while it
 * is checked is read again, so a healthy busy directory verifies clean.
 */
export function verifyStateDir(dir: string, options: { artifacts?: boolean; onProgress?: ProgressCallback } = {}): VerifyReport {
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('dir must be a non-empty string')
  return call(() => native.verifyStateDir(path.resolve(dir), options.artifacts === true, options.onProgress)) as VerifyReport
}

/**
 * What a garbage collection of `dir` would remove (see {@link GcReport}),
 * read-only: nothing is created, locked or written, so it works beside
 * running engines and on a read-only copy. Untied files and temp files
 * younger than `minAgeMs` (default one hour) are kept. Removing is
 * {@link WindowSpaceController.collectGarbage} with `delete: true`.
 */
export function planGarbage(dir: string, options: { minAgeMs?: number; onProgress?: ProgressCallback } = {}): GcReport {
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('dir must be a non-empty string')
  const minAgeMs = options.minAgeMs === undefined ? 3_600_000 : checkWhole(options.minAgeMs, 'minAgeMs', Number.MAX_SAFE_INTEGER)
  return call(() => native.planGarbage(path.resolve(dir), minAgeMs, options.onProgress)) as GcReport
}

/** The summary of a state directory (see {@link StateView.summary}). */
export interface StateSummary {
  readonly stateDir: string
  /** The persisted schedule (bigint ns values). */
  readonly schedule: WindowSpace
  readonly windowCount: number
  /** Start of window 0 and end of the last window, ns since the epoch. */
  readonly firstStartNs: bigint
  readonly lastEndNs: bigint
  readonly symbols: readonly string[]
  readonly files: ReadonlyArray<{ readonly name: string; readonly bytes: number }>
  readonly ledgers: ReadonlyArray<{
    readonly ledger: LedgerName
    readonly chunks: number
    readonly rowsAllocated: number
    readonly bytes: number
    readonly staleClaims: number
    readonly events: Readonly<Record<LedgerEventName, number>>
  }>
  readonly stores: ReadonlyArray<{ readonly store: PayloadStoreName; readonly file: string; readonly records: number; readonly bytes: number; readonly tornTailBytes: number }>
  /** From the counters every process shares. */
  readonly slots: readonly SlotMetric[]
  readonly staleClaims: number
  /** Some controller (an engine) has the directory open. */
  readonly otherControllersOpen: boolean
  readonly gc: { readonly log: boolean; readonly collectedRecords: number; readonly removedFiles: number; readonly unfinished: number; readonly damagedLines: number }
}

/** A cell of a status grid: a status, or `'Stale'` for a Pending slot whose lease expired. */
export type GridCell = SlotStatus | 'Stale'

/** One row of {@link StateView.exportRows}. */
export interface ExportedRow {
  readonly ledger: LedgerName
  readonly symbolId: number
  readonly windowIdx: number
  /** Start of the window, ns since the epoch. */
  readonly start: bigint
  /** Each slot of the row, with the URI of its record when Filled. */
  readonly slots: ReadonlyArray<{ readonly slot: SlotKindName; readonly state: SlotState; readonly uri: string | null }>
}

function countsOf(row: readonly number[]): Record<SlotStatus, number> {
  const c = {} as Record<SlotStatus, number>
  SLOT_STATUSES.forEach((s, i) => (c[s] = row[i]!))
  return c
}

/**
 * A read-only view of a state directory. Opening it validates every file as
 * a bootstrap does, but repairs nothing (a torn tail is reported, not cut),
 * takes no lock and writes nothing.
 */
export class StateView {
  readonly #view: NativeStateView
  /** Absolute path of the state directory. */
  readonly stateDir: string

  private constructor(view: NativeStateView, dir: string) {
    this.#view = view
    this.stateDir = dir
  }

  /** Opens `dir` read-only; `NotAStateDirError` if it holds no state, `CorruptStateError` on damage. */
  static open(dir: string): StateView {
    if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('dir must be a non-empty string')
    const abs = path.resolve(dir)
    return new StateView(call(() => native.NativeStateView.open(abs)), abs)
  }

  /** A view never closes anything; for symmetry with the controller in tools. */
  get closed(): boolean {
    return false
  }

  /** Schedule, files, counters, stale claims and the state of gc. */
  summary(): StateSummary {
    type Raw = Omit<StateSummary, 'schedule' | 'firstStartNs' | 'lastEndNs' | 'slots' | 'ledgers'> & {
      scheduleJson: string
      firstStartNs: string
      lastEndNs: string
      slots: Array<{ ledger: LedgerName; slot: SlotKindName; counts: number[] }>
      ledgers: Array<Omit<StateSummary['ledgers'][number], 'events'> & { events: Array<[LedgerEventName, number]> }>
    }
    const { scheduleJson, ...raw } = call(() => this.#view.summary()) as Raw
    return {
      ...raw,
      schedule: scheduleFromJson(scheduleJson),
      firstStartNs: BigInt(raw.firstStartNs),
      lastEndNs: BigInt(raw.lastEndNs),
      slots: raw.slots.map((k) => ({ ledger: k.ledger, slot: k.slot, counts: countsOf(k.counts) })),
      ledgers: raw.ledgers.map((l) => ({ ...l, events: Object.fromEntries(l.events) as Record<LedgerEventName, number> })),
    }
  }

  /** Slot counts from the counters every process shares (as `controller.slotMetrics()`). */
  slotMetrics(): SlotMetric[] {
    const c = call(() => this.#view.counters())
    return SLOT_KIND_NAMES.map((slot, i) => ({ ledger: SLOT_KIND_INFO[slot].ledger, slot, counts: countsOf(c.slots[i]!) }))
  }

  /** Transition counters of a ledger (as `controller.eventCounts()`). */
  eventCounts(ledger: LedgerName): Record<LedgerEventName, number> {
    const i = LEDGER_NAMES.indexOf(ledger)
    if (i < 0) throw new RangeError(`ledger must be one of ${LEDGER_NAMES.join(', ')}, got ${JSON.stringify(ledger)}`)
    const c = call(() => this.#view.counters())
    return Object.fromEntries(LEDGER_EVENT_NAMES.map((e, j) => [e, c.events[i]![j]!])) as Record<LedgerEventName, number>
  }

  /** How many windows have started by `ns` (the first window that starts after it, or the window count). */
  windowsStartedBy(ns: bigint): number {
    return call(() => this.#view.windowsStartedBy(ns))
  }

  /** Records per payload store, now. */
  recordCounts(): Record<PayloadStoreName, number> {
    const c = call(() => this.#view.counters())
    return Object.fromEntries(PAYLOAD_STORE_NAMES.map((s, i) => [s, c.records[i]!])) as Record<PayloadStoreName, number>
  }

  /** Exact counts per symbol, slot kind and status, from a scan of every slot. */
  countsBySymbol(): Record<string, Record<SlotKindName, Record<SlotStatus, number>>> {
    const symbols = this.summary().symbols
    const raw = call(() => this.#view.countsBySymbol())
    const out: Record<string, Record<SlotKindName, Record<SlotStatus, number>>> = {}
    raw.forEach((kinds, s) => {
      const per = {} as Record<SlotKindName, Record<SlotStatus, number>>
      SLOT_KIND_NAMES.forEach((k, i) => (per[k] = countsOf(kinds[i]!)))
      if (symbols[s] !== undefined) out[symbols[s]] = per
    })
    return out
  }

  /** The status of every slot of `kinds` of one symbol (by id), windows `from..to`. */
  grid(symbolId: number, range: { from: number; to: number }, kinds: readonly SlotKindName[]): Record<SlotKindName, GridCell[]> {
    const codes = kinds.map((k) => SLOT_KIND_INFO[k].code)
    const raw = call(() => this.#view.grid(symbolId, range.from, range.to, codes))
    const out = {} as Record<SlotKindName, GridCell[]>
    kinds.forEach((k, i) => (out[k] = raw[i]!.map((c) => (c === 5 ? 'Stale' : SLOT_STATUSES[c]!))))
    return out
  }

  /**
   * Rows of `ledgers` × `symbols` (ids) × windows `from..to`, in that order:
   * rows with a non-Empty slot, or every row with `allRows`. Read in batches.
   */
  *exportRows(spec: { ledgers: readonly LedgerName[]; symbols: readonly number[]; from: number; to: number; allRows?: boolean }, batch = 1000): IterableIterator<ExportedRow> {
    const ledgers = spec.ledgers.map((l) => LEDGER_NAMES.indexOf(l))
    let cursor: number[] = []
    for (;;) {
      const b = call(() => this.#view.exportRows(ledgers, [...spec.symbols], spec.from, spec.to, spec.allRows === true, cursor, batch))
      for (const r of b.rows) {
        const ledger = LEDGER_NAMES[r.ledger]!
        const buf = Float64Array.from(r.slots)
        yield {
          ledger,
          symbolId: r.symbolId,
          windowIdx: r.windowIdx,
          start: BigInt(r.startNs),
          slots: SLOT_KINDS_OF_LEDGER[ledger].map((slot, i) => ({ slot, state: slotStateAt(buf, i), uri: r.uris[i] ?? null })),
        }
      }
      if (!b.next) return
      cursor = b.next
    }
  }
}
