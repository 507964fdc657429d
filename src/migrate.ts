/**
 * Converting a state directory of an older format version:
 * {@link migrateStateDir} (the library side of `window-space migrate`). The
 * core decides and does everything (crates/window-space-core/src/ops/migrate.rs,
 * which documents the steps and why each is restart-safe); this module
 * checks the arguments and shapes the report.
 *
 * @module
 */
import * as path from 'node:path'

import { translateNativeError } from './errors'
import { native } from './native'

/** What {@link migrateStateDir} found and did. */
export interface MigrateReport {
  readonly stateDir: string
  readonly dryRun: boolean
  /** The directory's format version when the run started. */
  readonly fromVersion: number
  /** This library's format version. */
  readonly toVersion: number
  /** The directory was of this library's format already: nothing to do. */
  readonly alreadyCurrent: boolean
  /** An earlier run was killed after it had verified the converted files; this run finished putting them in place. */
  readonly finishesEarlierRun: boolean
  /** (Dry run) an earlier run's verified files cannot be put in place (old files changed since, or put back from the backup): the migration would start over. */
  readonly startsOver: boolean
  /** Each file converted (or, in a dry run, to be converted): its name, the old file it is made from and that file's size in bytes, and what the conversion does. */
  readonly files: ReadonlyArray<{ readonly file: string; readonly from: string; readonly bytes: number; readonly how: string }>
  /** Where the old format's files are kept, relative to the state directory (remove it once the directory is checked). */
  readonly backupDir: string | null
  /** Whether this run changed the directory. */
  readonly changed: boolean
}

/** Options of {@link migrateStateDir}. */
export interface MigrateOptions {
  /** Say what would be converted; change nothing. */
  dryRun?: boolean
  /** Who, for the audit trail (default `user@host pid N`). */
  actor?: string
  /** Why, for the audit trail. */
  reason?: string
}

/**
 * Converts a state directory of an older format version (which a bootstrap
 * refuses with `OlderFormatError`) into this library's. Offline: refused
 * (`StateDirInUseError`) while any controller has the directory open, and
 * every bootstrap waits until it is done. The converted files are built and
 * verified beside the old ones before any is switched; the old files are
 * kept in `migrated-from-format-1/`. Safe to run again after it was killed at
 * any point: it starts again, or finishes the switch it had begun. A
 * directory already of this format is left as it is (`alreadyCurrent`).
 */
export function migrateStateDir(dir: string, options: MigrateOptions = {}): MigrateReport {
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('dir must be a non-empty string')
  for (const k of ['actor', 'reason'] as const) {
    if (options[k] !== undefined && typeof options[k] !== 'string') throw new TypeError(`options.${k} must be a string`)
  }
  try {
    return native.migrateStateDir(path.resolve(dir), options.dryRun === true, options.actor, options.reason) as MigrateReport
  } catch (e) {
    throw translateNativeError(e)
  }
}
