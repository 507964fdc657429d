/**
 * Loads the generated napi-rs binding (`binding.js` at the package root) and
 * re-exports its types under the names the facade uses. Only the facade
 * modules import this; users never see the binding.
 *
 * @module
 */
import type * as Binding from '../binding'

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const native = require('../binding.js') as typeof Binding
export type NativeController = Binding.NativeController
export type NativeStorageReport = Binding.NativeStorageReport
export type NativeOpenOptions = Binding.NativeOpenOptions

/**
 * The hand-written hot-path functions of the addon (crates/window-space-node/src/fast.rs).
 * They take the controller's `handle` first; refused transitions return
 * negative codes. The optional `out` array (at least 8 numbers) receives the
 * lease deadline of a claim or renewal, or the slot a refusal saw.
 */
export interface FastPath {
  fastClaim(handle: number, symbol: number, window: number, kind: number, leaseMs: number, out?: Float64Array): number
  fastRenew(handle: number, symbol: number, window: number, kind: number, version: number, leaseMs: number, out?: Float64Array): number
  fastFill(
    handle: number,
    symbol: number,
    window: number,
    kind: number,
    version: number,
    payloadType: number,
    payloadId: number,
    checksumHi: number,
    checksumLo: number,
    out?: Float64Array,
  ): number
  fastClear(handle: number, symbol: number, window: number, kind: number, version: number, out?: Float64Array): number
  fastReadSlot(handle: number, symbol: number, window: number, kind: number, out: Float64Array): number
  fastReadRow(handle: number, ledger: number, symbol: number, window: number, out: Float64Array): number
  fastNextUnfilled(handle: number, symbol: number, start: number, kind: number): number
}

/** The benchmark's floor functions, in builds with the `bench` feature only. */
export interface BenchFloor {
  fastEmpty?(): number
  fastCasInternal?(index: number, expected: number, desired: number): number
}

export const fast = native as unknown as FastPath & BenchFloor
