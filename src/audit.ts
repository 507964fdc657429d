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

/**
 * Every line of a state directory's audit trail, oldest first (an empty list
 * when there is none yet). A damaged line is a `CorruptStateError` naming the
 * file and the byte offset of the line.
 */
export function readAuditLog(stateDir: string): AuditEntry[] {
  if (typeof stateDir !== 'string' || stateDir.length === 0) throw new TypeError('stateDir must be a non-empty string')
  try {
    return JSON.parse(native.readAuditLog(path.join(path.resolve(stateDir), 'audit.log'))) as AuditEntry[]
  } catch (e) {
    throw translateNativeError(e)
  }
}
