/**
 * Argument checks shared by the facade's classes: wrong types are a
 * `TypeError`, values out of range a `RangeError`, each naming the argument.
 * The native core checks values again; these checks give JavaScript-shaped
 * errors before anything crosses into it.
 *
 * @module
 */
import { InvalidSymbolError } from './errors'
import { PayloadType, type PayloadTypeName } from './vocabulary'

/**
 * An array check that keeps the element type of a typed argument
 * (`Array.isArray` would narrow a readonly array's elements to `any`).
 */
export function isList(v: unknown): v is readonly unknown[] {
  return Array.isArray(v)
}

/** Largest 32-bit unsigned value: window indices, versions, symbol ids. */
export const U32_MAX = 0xffffffff

/** A whole number from 0 to `max`. */
export function checkWhole(v: unknown, what: string, max: number): number {
  if (typeof v !== 'number') throw new TypeError(`${what} must be a number, got ${v === null ? 'null' : typeof v}`)
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${what} must be a whole number from 0 to ${max}, got ${v}`)
  return v
}

/** A 64-bit unsigned checksum. */
export function checkChecksum(c: unknown): bigint {
  if (typeof c !== 'bigint') throw new TypeError(`checksum must be a bigint, got ${c === null ? 'null' : typeof c}`)
  if (c < 0n || c > 0xffffffffffffffffn) throw new RangeError(`checksum must be an unsigned 64-bit bigint, got ${c}`)
  return c
}

/** A payload type name or code, as its code. */
export function payloadTypeCode(t: PayloadTypeName | number): number {
  if (typeof t === 'string') {
    const code = (PayloadType as Record<string, number>)[t]
    if (code === undefined) throw new RangeError(`unknown payloadType ${JSON.stringify(t)}; use one of ${Object.keys(PayloadType).join(', ')} or a code 0..255`)
    return code
  }
  return checkWhole(t, 'payloadType', 255)
}

/**
 * Symbols cross into Rust as UTF-8: a lone surrogate would be replaced by
 * U+FFFD there, so two different strings would share one id. Refuse them.
 */
export function checkWellFormed(symbol: string): void {
  if (!(symbol as string & { isWellFormed(): boolean }).isWellFormed()) {
    throw new InvalidSymbolError(`invalid symbol ${JSON.stringify(symbol)}: must be well-formed Unicode (no lone surrogates)`, { symbol, why: 'lone surrogate' })
  }
}

/** Longest actor or reason of an audit line, in characters. */
export const MAX_AUDIT_TEXT = 256

/** An optional actor or reason string of an audit line. */
export function checkAuditText(v: unknown, what: string): string | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'string') throw new TypeError(`${what} must be a string, got ${v === null ? 'null' : typeof v}`)
  if (v.length > MAX_AUDIT_TEXT) throw new RangeError(`${what} must be at most ${MAX_AUDIT_TEXT} characters, got ${v.length}`)
  return v
}

/** Who does an admin action and why, for the audit trail (`audit.log`). */
export interface AdminOptions {
  /** Default: the controller's `actor`. */
  readonly actor?: string
  readonly reason?: string
}

/** Admin options as the binding takes them. */
export function adminContext(o: AdminOptions | undefined): { actor?: string; reason?: string } | undefined {
  if (o === undefined) return undefined
  if (typeof o !== 'object' || o === null) throw new TypeError('admin options must be { actor?, reason? }')
  return { actor: checkAuditText(o.actor, 'actor'), reason: checkAuditText(o.reason, 'reason') }
}

/** A window range `{ from, to }` (to exclusive). */
export function checkRange(range: { from: number; to: number }): { from: number; to: number } {
  if (typeof range !== 'object' || range === null) throw new TypeError('range must be { from, to }')
  const from = checkWhole(range.from, 'range.from', U32_MAX)
  const to = checkWhole(range.to, 'range.to', U32_MAX)
  if (to < from) throw new RangeError(`range.to (${to}) is before range.from (${from})`)
  return { from, to }
}
