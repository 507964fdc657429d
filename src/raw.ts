/**
 * The hot path in its cheapest form ({@link RawCalls}): numbers in, a number
 * out, no objects.
 *
 * @module
 */
import { translateNativeError } from './errors'
import { fast } from './native'

/** What the raw calls need of their controller. */
export interface RawOwner {
  /** The controller's handle for the addon's fast path (throws once closed). */
  handle(): number
}

/**
 * The hot path in its cheapest form: numbers in, a number out, no objects.
 * Symbols are ids (from `resolveSymbol`), slot kinds are `SlotKind.code`, and a
 * refused transition is returned as a negative {@link Refusal} code instead of
 * thrown. Other failures (unknown symbol, window out of range, closed) still
 * throw typed errors, and a number that is not a whole number in its range
 * (NaN, a fraction, a negative, too large) throws a `RangeError`: it never acts
 * on another slot.
 */
export class RawCalls<C = unknown> {
  readonly #controller: C
  readonly #owner: RawOwner

  /** @internal */
  constructor(controller: C, owner: RawOwner) {
    this.#controller = controller
    this.#owner = owner
  }

  /** Claims; returns the claim version, or a negative {@link Refusal} code. `leaseMs` < 0 means the default lease. */
  claim(symbolId: number, windowIdx: number, kindCode: number, leaseMs = -1): number {
    try {
      return fast.fastClaim(this.#owner.handle(), symbolId, windowIdx, kindCode, leaseMs)
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
      return fast.fastFill(this.#owner.handle(), symbolId, windowIdx, kindCode, version, payloadType, payloadId, checksumHi, checksumLo)
    } catch (e) {
      throw translateNativeError(e)
    }
  }

  /** The claim holder clears; returns the new version, or a negative {@link Refusal} code. */
  clear(symbolId: number, windowIdx: number, kindCode: number, version: number): number {
    try {
      return fast.fastClear(this.#owner.handle(), symbolId, windowIdx, kindCode, version)
    } catch (e) {
      throw translateNativeError(e)
    }
  }

  /** First window >= `startIdx` that is neither Filled nor Retired, or -1. */
  nextUnfilledWindow(symbolId: number, startIdx: number, kindCode: number): number {
    try {
      return fast.fastNextUnfilled(this.#owner.handle(), symbolId, startIdx, kindCode)
    } catch (e) {
      throw translateNativeError(e)
    }
  }

  /** The controller these calls act on. */
  get controller(): C {
    return this.#controller
  }
}
