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

  /**
   * Claims up to `count` windows `>= startIdx` of one symbol and slot kind in
   * one call, in window order, skipping windows that are Filled, Retired or
   * held by a live claim, as `claimNextUnfilled` does. Claim `i` is written
   * to `out[3i]` (window), `out[3i + 1]` (claim version) and `out[3i + 2]`
   * (lease deadline, ms since the epoch); `out` must hold at least
   * `3 * count` numbers. Returns how many it claimed (0 ..= `count`).
   * `leaseMs` < 0 means the default lease. A `startIdx` equal to the window
   * count returns 0; one past it throws `WindowOutOfRangeError`.
   */
  claimNextUnfilled(symbolId: number, startIdx: number, kindCode: number, count: number, leaseMs: number, out: Float64Array): number {
    try {
      return fast.fastClaimNextUnfilled(this.#owner.handle(), symbolId, startIdx, kindCode, count, leaseMs, out)
    } catch (e) {
      throw translateNativeError(e)
    }
  }

  /**
   * Fills `count` slots in one call, each as {@link fill} would. `buf` holds
   * 8 numbers an item, `[symbolId, windowIdx, kindCode, version, payloadType,
   * payloadId, checksumHi, checksumLo]`, followed by one number an item:
   * `buf[8 * count + i]` receives item `i`'s new version, or a negative
   * {@link Refusal} code, in which case the item's 8 numbers are replaced by
   * the slot as the refusal saw it (`[status, version, payloadType,
   * payloadId, checksumHi, checksumLo, leaseDeadlineMs, 0]`). `buf` must hold
   * at least `9 * count` numbers. A refused item does not stop the batch.
   * Every number is checked before any slot changes (a `RangeError` names
   * the item); an unknown symbol, window or payload id throws its typed
   * error, the items before it filled and their results written. Returns `count`.
   */
  fillBatch(buf: Float64Array, count: number): number {
    try {
      return fast.fastFillBatch(this.#owner.handle(), buf, count)
    } catch (e) {
      throw translateNativeError(e)
    }
  }

  /** The controller these calls act on. */
  get controller(): C {
    return this.#controller
  }
}
