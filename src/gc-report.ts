/**
 * What a garbage collection found and did ({@link GcReport}): the shape the
 * core's `ops/gc.rs` reports, which documents the rules.
 *
 * @module
 */
import type { PayloadStoreName, SlotKindName, SlotStatus } from './vocabulary'

/** A payload record, as gc names it. */
export interface GcRecordRef {
  readonly store: PayloadStoreName
  readonly payloadId: number
}

/** What a garbage collection found and did. */
export interface GcReport {
  readonly stateDir: string
  readonly deleted: boolean
  readonly minAgeMs: number
  /** Records no live slot uses, and not collected yet. */
  readonly records: ReadonlyArray<{
    readonly store: PayloadStoreName
    readonly payloadId: number
    readonly uri: string
    readonly symbolId: number
    /** The symbol's name (empty when the symbol map does not hold its id). */
    readonly symbol: string
    readonly windowIdx: number
    readonly slot: SlotKindName
    /** Status of the slot the record was written for. */
    readonly slotStatus: SlotStatus
  }>
  /** Artifact files that are garbage: `claim` (their claim is over), `untied` (no slot is Pending), `temp` (their writer is gone). */
  readonly files: ReadonlyArray<{ readonly uri: string; readonly size: number; readonly class: 'claim' | 'untied' | 'temp'; readonly records: readonly GcRecordRef[] }>
  /** Files no live record names that were kept, and why. */
  readonly keptFiles: ReadonlyArray<{ readonly uri: string; readonly size: number; readonly why: string }>
  readonly reclaimableBytes: number
  /** Slots Pending when the plan was made. */
  readonly pendingClaims: number
  /** Symbolic links in the artifact tree (never followed, never removed). */
  readonly symlinks: readonly string[]
  /** `artifacts` itself is a symbolic link or not a directory: nothing under it was looked at. */
  readonly artifactsRefused: boolean
  /** Collections a killed gc left unfinished, when this run started. */
  readonly unfinishedBefore: number
  /** What became of those (with `delete`). */
  readonly finished: ReadonlyArray<{ readonly uri: string; readonly result: string }>
  /** Files this run removed. */
  readonly removed: readonly string[]
  readonly removedBytes: number
  /** Garbage files this run did not remove, and why. */
  readonly kept: ReadonlyArray<{ readonly uri: string; readonly result: string }>
  /** Records marked collected in gc.log by this run (those of removed files included). */
  readonly recordsMarked: number
}
