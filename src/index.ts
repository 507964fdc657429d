/**
 * window-space: the restart-safe, memory-mapped ledger in which data-pipeline
 * engines claim (symbol, window, slot) work items, publish the artifacts they
 * produced, and let operators see and repair what happened.
 *
 * Start at {@link WindowSpaceController.bootstrap}.
 *
 * @module
 */
export {
  WindowSpaceConfig,
  WindowSpaceController,
  PayloadStore,
  RawCalls,
  type BootstrapResult,
  type ClaimOptions,
  type Durability,
  type FillRequest,
  type FillResult,
  type PayloadStores,
  type WindowSpaceOptions,
  type AdminOptions,
  type WaitForOptions,
  defaultActor,
} from './controller'
export { MmapLedger, type Ledger, type LedgerAuditEntry, type LedgerChange, type LedgerWatch, type LedgerWatchOptions } from './ledger'
export { PostgresLedger, type PostgresOptions, type PostgresRetention, type PostgresVerifyReport } from './postgres'
export { type ChangeIterator, type JournalGapDetails, type JournalGapReason, type JournalPosition, type SlotChange, type WatchOptions } from './watch'
export { readAuditLog, scanAuditLog, type AuditEntry, type AuditPrevious, type AuditScan, type DamagedAuditLine, type TornAuditLine } from './audit'
export * from './errors'
export * from './types'
export { type TypedSetters } from './controller'
export { WindowSpace, timeToNs, durationToNs, type DurationInput, type SessionSpec, type SessionWindowSpace, type TimeInput, type UniformWindowSpace } from './time'
export { checksum64, checksumFile } from './checksum'
export { StateView, planGarbage, verifyStateDir, type ExportedRow, type GridCell, type ProgressCallback, type StateSummary, type VerifyFinding, type VerifyReport } from './state-view'
export type { GcRecordRef, GcReport } from './gc-report'
export { migrateStateDir, type MigrateOptions, type MigrateReport } from './migrate'
export { repairStateDir, type RepairOptions, type RepairReport } from './repair'
export { registerMetrics, METRIC_NAMES, type RegisteredMetrics } from './metrics'
