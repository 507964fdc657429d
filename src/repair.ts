/**
 * Accepting a loss a bootstrap refuses: {@link repairStateDir} (the library
 * side of `window-space repair`). The core decides and does everything
 * (crates/window-space-core/src/ops/repair.rs, which documents the steps and
 * why each is restart-safe); this module checks the arguments and shapes the
 * report.
 *
 * @module
 */
import * as path from 'node:path'

import { translateNativeError } from './errors'
import { native } from './native'
import type { PayloadStoreName, SlotKindName } from './vocabulary'

/** What {@link repairStateDir} found and did. */
export interface RepairReport {
  readonly stateDir: string
  readonly dryRun: boolean
  /** Nothing to repair: every chunk's symbol is in the map and every Filled slot's payload id is a record of its table. */
  readonly clean: boolean
  /** Whether this run changed the directory. */
  readonly changed: boolean
  /** Ledger chunks of symbol ids `symbols.log` did not hold, and the placeholder symbols (`lost-symbol-<id>`) added (or, in a dry run, to be added). */
  readonly symbols: {
    readonly symbols: number
    readonly highestSymbolId: number
    readonly chunks: number
    readonly placeholders: ReadonlyArray<{ readonly id: number; readonly name: string }>
  } | null
  /** Mapping tables that Filled slots refer past (or to lost ids of). */
  readonly stores: ReadonlyArray<{
    readonly store: PayloadStoreName
    readonly file: string
    /** Whole records the table held (lost ids included): its next id. */
    readonly records: number
    readonly highestReferencedId: number
    readonly danglingSlots: number
    /** Ids marked lost (or, in a dry run, to be marked): `[first, last]`; `null` when the table already reaches past every referenced id. */
    readonly markLost: readonly [number, number] | null
  }>
  /** Every Filled slot whose payload id its table did not hold as a record: cleared by the repair, so engines redo it. */
  readonly slots: ReadonlyArray<{
    readonly symbol: string
    readonly symbolId: number
    readonly windowIdx: number
    readonly slot: SlotKindName
    readonly store: PayloadStoreName
    readonly payloadId: number
  }>
  /** How many of `slots` this run cleared. */
  readonly cleared: number
  /**
   * With nothing left to repair: a repair an earlier run left without its
   * outcome line in the audit trail (killed after it cleared every slot),
   * which this run finished by writing that line
   * (`"phase":"done","finishesEarlierRun":true`); a dry run only reports it.
   * `null` otherwise.
   */
  readonly finishesEarlierRun: {
    /** 1-based line number of its intent line in `audit.log`. */
    readonly intentLine: number
    /** `atNs` of its intent line. */
    readonly intentAtNs: string
    /** Who ran it. */
    readonly actor: string
    /** The slots its intent line names, `[symbol id, window, slot kind, payload id]` each (their count, when the intent line gives only that). */
    readonly slots: ReadonlyArray<readonly [number, number, SlotKindName, number]> | number
    /** Those of `slots` whose payload id is marked lost now: that run marked it and cleared the slot. */
    readonly cleared: ReadonlyArray<readonly [number, number, SlotKindName, number]>
    /** Those of `slots` whose payload id is a record again (a table restored after that run was killed): it did not change them. */
    readonly notChanged: ReadonlyArray<readonly [number, number, SlotKindName, number]>
  } | null
}

/** Options of {@link repairStateDir}. */
export interface RepairOptions {
  /** Say what would be done; change nothing. */
  dryRun?: boolean
  /** Who, for the audit trail (default `user@host pid N`). */
  actor?: string
  /** Why, for the audit trail. */
  reason?: string
}

/**
 * Accepts the loss a bootstrap refuses with `CorruptStateError` when files
 * lost what others refer to: Filled slots whose payload ids their mapping
 * table no longer holds, and ledger chunks of symbols `symbols.log` no
 * longer holds (power loss in the `'buffered'` mode, or files restored from
 * backups of different times). Needs the directory to itself
 * (`StateDirInUseError` while any controller has it open). Writes an intent
 * line to the audit trail (naming every slot it will clear) before it changes
 * anything and an outcome line after; names lost symbols with placeholders, marks lost payload ids (read
 * as `PayloadLostError`, never handed out again) and force-clears the slots
 * that referred to them, so engines redo them. Safe to run again after it
 * was killed at any point; with nothing left to repair, it writes the outcome
 * line a run killed after clearing every slot did not write
 * (`finishesEarlierRun`). With `dryRun` it only reports.
 */
export function repairStateDir(dir: string, options: RepairOptions = {}): RepairReport {
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('dir must be a non-empty string')
  for (const k of ['actor', 'reason'] as const) {
    if (options[k] !== undefined && typeof options[k] !== 'string') throw new TypeError(`options.${k} must be a string`)
  }
  try {
    return native.repairStateDir(path.resolve(dir), options.dryRun === true, options.actor, options.reason) as RepairReport
  } catch (e) {
    throw translateNativeError(e)
  }
}
