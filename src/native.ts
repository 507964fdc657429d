/**
 * Loads the generated napi-rs binding (`binding.js` at the package root) and
 * re-exports its types under the names the facade uses. Only the facade
 * modules import this; users never see the binding.
 *
 * @module
 */
import type * as Binding from '../binding'

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const native: typeof Binding = require('../binding.js')
export type NativeController = Binding.NativeController
export type NativeStorageReport = Binding.NativeStorageReport
export type NativeOpenOptions = Binding.NativeOpenOptions
