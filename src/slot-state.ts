/**
 * Slots as numbers: the core writes a slot as 8 numbers into a caller's
 * `Float64Array` (`[status, version, payloadType, payloadId, checksumHi,
 * checksumLo, leaseDeadlineMs, 0]`, crates/window-space-node/src/convert.rs);
 * this module reads them back as {@link SlotState}s, and turns a refusal code
 * of the hot path plus the slot it saw into the typed error.
 *
 * @module
 */
import { SlotBusyError, SlotFilledError, SlotRetiredError, VersionConflictError, type SlotWriteError } from './errors'
import type { SlotKind, SlotState } from './types'
import { Refusal, SLOT_STATUSES } from './vocabulary'

/** Numbers per slot. */
export const SLOT_STRIDE = 8

// Builds a 64-bit checksum from its two 32-bit halves with one BigInt allocation.
const checksumWords = new Uint32Array(2)
const checksumView = new BigUint64Array(checksumWords.buffer)
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

function checksumOf(hi: number, lo: number): bigint {
  checksumWords[LITTLE_ENDIAN ? 0 : 1] = lo
  checksumWords[LITTLE_ENDIAN ? 1 : 0] = hi
  return checksumView[0]!
}

/** The slot written at position `i` of `buf`. */
export function slotStateAt(buf: Float64Array, i: number): SlotState {
  const o = i * SLOT_STRIDE
  const status = SLOT_STATUSES[buf[o]!]!
  const filled = status === 'Filled'
  return {
    status,
    version: buf[o + 1]!,
    payloadType: buf[o + 2]!,
    payloadId: buf[o + 3]!,
    checksum: filled ? checksumOf(buf[o + 4]!, buf[o + 5]!) : 0n,
    leaseExpiresAt: status === 'Pending' ? buf[o + 6]! : null,
  }
}

/** A slot's place, for messages and error details. */
export interface SlotPlace {
  readonly symbolId: number
  readonly windowIdx: number
  readonly kind: SlotKind
}

/**
 * The typed error of a refusal `code` (a negative {@link Refusal}) whose
 * slot, as the core saw it, is at the start of `buf`.
 */
export function refusalError(code: number, at: SlotPlace, buf: Float64Array, expectedVersion: number | null): SlotWriteError {
  const slot = slotStateAt(buf, 0)
  const where = `slot ${at.kind.name} of symbol ${at.symbolId}, window ${at.windowIdx}`
  const details = {
    symbolId: at.symbolId,
    windowIdx: at.windowIdx,
    slotKind: at.kind.name,
    expectedVersion,
    status: slot.status,
    version: slot.version,
    payloadType: slot.payloadType,
    payloadId: slot.payloadId,
    checksum: slot.checksum.toString(),
    leaseExpiresAt: slot.leaseExpiresAt,
  }
  let e: SlotWriteError
  if (code === Refusal.Busy) {
    e = new SlotBusyError(`${where} is held by a live claim until ${new Date(slot.leaseExpiresAt ?? 0).toISOString()}`, details)
  } else if (code === Refusal.Filled) {
    e = new SlotFilledError(`${where} is already Filled (version ${slot.version})`, details)
  } else if (code === Refusal.Retired) {
    e = new SlotRetiredError(`${where} is Retired`, details)
  } else {
    e = new VersionConflictError(`version conflict on ${where}: the claim was at version ${expectedVersion}, the slot is now ${slot.status} at version ${slot.version}`, details)
  }
  e.slot = slot
  return e
}
