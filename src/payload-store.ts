/**
 * One payload store (mapping table) as the controller hands it out:
 * append, read back, iterate.
 *
 * @module
 */
import { checkChecksum, checkWhole, payloadTypeCode, U32_MAX } from './args'
import { durably } from './durably'
import { PayloadLostError, translateNativeError } from './errors'
import type { NativeController } from './native'
import { toSlotKind, type PayloadInput, type PayloadRecord } from './types'
import { PAYLOAD_STORE_NAMES, SLOT_KIND_INFO, SLOT_KIND_NAMES, type PayloadStoreName } from './vocabulary'

function call<T>(f: () => T): T {
  try {
    return f()
  } catch (e) {
    throw translateNativeError(e)
  }
}

/** What a store needs of its controller. */
export interface StoreOwner {
  symbolId(symbol: string | number): number
}

/** One append-only mapping table. Payload ids are dense and never reused. */
export class PayloadStore implements Iterable<PayloadRecord> {
  readonly name: PayloadStoreName
  readonly #code: number
  readonly #owner: StoreOwner
  readonly #native: () => NativeController

  /** @internal */
  constructor(owner: StoreOwner, name: PayloadStoreName, n: () => NativeController) {
    this.name = name
    this.#code = PAYLOAD_STORE_NAMES.indexOf(name)
    this.#owner = owner
    this.#native = n
  }

  /**
   * Appends a payload record; returns its id (unique across every process).
   * The slot kind must record into this store.
   */
  append(payload: PayloadInput): number {
    if (typeof payload !== 'object' || payload === null) throw new TypeError('payload must be an object')
    const kind = toSlotKind(payload.slotKind, 'payload.slotKind')
    const home = SLOT_KIND_INFO[kind.name].store
    if (home !== this.name) throw new RangeError(`slot kind ${kind.name} records into the ${home} store, not ${this.name}`)
    if (typeof payload.uri !== 'string') throw new TypeError('payload.uri must be a string')
    const rec = {
      symbolId: this.#owner.symbolId(payload.symbol),
      windowIdx: checkWhole(payload.windowIdx, 'payload.windowIdx', U32_MAX),
      slotKind: kind.code,
      payloadType: payloadTypeCode(payload.payloadType),
      checksum: checkChecksum(payload.checksum),
      size: checkWhole(payload.size, 'payload.size', Number.MAX_SAFE_INTEGER),
      uri: payload.uri,
    }
    return call(() => this.#native().appendPayload(this.#code, rec))
  }

  /**
   * {@link append}, resolving once the record is durable: in the `'sync'`
   * mode, appends waiting at the same time share one `fdatasync` (group
   * commit). The id is assigned when this is called.
   */
  appendAsync(payload: PayloadInput): Promise<number> {
    let n: NativeController
    try {
      n = this.#native()
    } catch (e) {
      return Promise.reject(e)
    }
    return durably(n, () => this.append(payload))
  }

  /**
   * The record of `payloadId`, or `null` if it does not exist. An id whose
   * record was lost and that `window-space repair` marked lost throws
   * `PayloadLostError`: the id exists (it is never handed out again) but
   * names no artifact.
   */
  get(payloadId: number): PayloadRecord | null {
    checkWhole(payloadId, 'payloadId', Number.MAX_SAFE_INTEGER)
    const r = call(() => this.#native().getPayload(this.#code, payloadId))
    if (!r) return null
    return {
      payloadId: r.payloadId,
      symbolId: r.symbolId,
      windowIdx: r.windowIdx,
      slotKind: SLOT_KIND_NAMES[r.slotKind]!,
      payloadType: r.payloadType,
      uri: r.uri,
      checksum: BigInt(r.checksum),
      size: r.size,
      createdAt: BigInt(r.createdAtNs),
    }
  }

  /** Number of records (including those other processes appended, and ids marked lost): the next id. */
  get length(): number {
    return call(() => this.#native().payloadCount(this.#code))
  }

  /** Records from id `from` on, in id order (ids marked lost are skipped). */
  *entries(from = 0): IterableIterator<PayloadRecord> {
    checkWhole(from, 'from', Number.MAX_SAFE_INTEGER)
    const end = this.length
    for (let id = from; id < end; id++) {
      let r: PayloadRecord | null
      try {
        r = this.get(id)
      } catch (e) {
        if (e instanceof PayloadLostError) continue
        throw e
      }
      if (r) yield r
    }
  }

  [Symbol.iterator](): Iterator<PayloadRecord> {
    return this.entries(0)
  }
}

/** The payload stores of a state directory, by name. */
export type PayloadStores = { readonly [S in PayloadStoreName]: PayloadStore }
