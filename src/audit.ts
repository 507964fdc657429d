/**
 * Reading the audit trail (`audit.log` in the state directory): one JSON line
 * per operator action and lease takeover, written by the core
 * (crates/window-space-core/src/audit.rs, which documents the format). Lines
 * are written by the controller's admin calls and `appendAudit`; this module
 * only reads them back, validated, for tools such as `window-space audit`.
 *
 * @module
 */
import * as path from 'node:path'

import { translateNativeError } from './errors'
import { native } from './native'

/** The slot before a single-slot action. */
export interface AuditPrevious {
  readonly status: string
  readonly version: number
  readonly payloadType: number
  readonly payloadId: number
  /** Decimal string of the 64-bit checksum. */
  readonly checksum: string
  readonly leaseExpiresAt: number | null
}

/** One line of `audit.log`. */
export interface AuditEntry {
  readonly v: 1
  /** ns since the Unix epoch, as a decimal string. */
  readonly atNs: string
  readonly actor: string
  readonly reason: string
  /** `forceClear`, `retire`, `forceClearRange`, `retireRange`, `takeover`, or a tool's own action. */
  readonly action: string
  /**
   * `'intent'` on the line an admin action writes before it changes anything;
   * absent on the outcome line written after. An intent without an outcome:
   * the slots it names may or may not have changed.
   */
  readonly phase?: 'intent'
  readonly symbol?: string
  readonly symbolId?: number
  readonly slot?: string
  readonly window?: number
  readonly previous?: AuditPrevious
  readonly status?: string
  readonly version?: number
  readonly from?: number
  readonly to?: number
  /** Range actions: `[window, previous status, previous version, previous payload id]` per changed slot. */
  readonly changed?: readonly [number, string, number, number][]
  readonly details?: Record<string, unknown>
}

/** A line of `audit.log` that is not an audit entry and no torn append: damage. */
export interface DamagedAuditLine {
  /** 1-based line number. */
  readonly line: number
  /** Byte offset of the line in `audit.log`. */
  readonly offset: number
  readonly what: string
}

/**
 * A line of `audit.log` that is an append cut short (a full disk): it ends in
 * the torn mark `#torn` (or is the unended last line). The call that wrote it
 * failed; the line records nothing and is skipped.
 */
export interface TornAuditLine {
  /** 1-based line number. */
  readonly line: number
  /** Byte offset of the line in `audit.log`. */
  readonly offset: number
}

/** What {@link scanAuditLog} read. */
export interface AuditScan {
  readonly entries: AuditEntry[]
  readonly damaged: DamagedAuditLine[]
  readonly torn: TornAuditLine[]
}

function read(stateDir: string, skipDamaged: boolean): AuditScan {
  if (typeof stateDir !== 'string' || stateDir.length === 0) throw new TypeError('stateDir must be a non-empty string')
  try {
    return JSON.parse(native.readAuditLog(path.join(path.resolve(stateDir), 'audit.log'), skipDamaged)) as AuditScan
  } catch (e) {
    throw translateNativeError(e)
  }
}

/**
 * Every line of a state directory's audit trail, oldest first (an empty list
 * when there is none yet). Torn appends are skipped. A damaged line is a
 * `CorruptStateError` naming the file and the byte offset of the line;
 * {@link scanAuditLog} reads around it.
 */
export function readAuditLog(stateDir: string): AuditEntry[] {
  return read(stateDir, false).entries
}

/** Every good line of the audit trail, and where the damaged lines and the torn appends are (for tools such as `window-space audit`). */
export function scanAuditLog(stateDir: string): AuditScan {
  return read(stateDir, true)
}
