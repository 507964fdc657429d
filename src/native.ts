/**
 * Loads the generated napi-rs binding (`binding.js` at the package root) and
 * re-exports its types under the names the facade uses. Only the facade
 * modules import this; users never see the binding.
 *
 * @module
 */
import type * as Binding from '../binding'

/** The platform this process runs on, in the napi-rs package naming (`linux-x64-gnu`). */
function platformSeen(): string {
  if (process.platform !== 'linux') return `${process.platform}-${process.arch}`
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header
  return `linux-${process.arch}-${header?.glibcVersionRuntime ? 'gnu' : 'musl'}`
}

/** The platforms with a prebuilt addon: package.json's napi targets, in the same naming. */
function platformsBuilt(): string[] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const targets = (require('../package.json') as { napi: { targets: string[] } }).napi.targets
  const arch: Record<string, string> = { x86_64: 'x64', aarch64: 'arm64' }
  return targets.map((t) => {
    const [cpu = '', , os, abi] = t.split('-')
    return `${os}-${arch[cpu] ?? cpu}${abi ? `-${abi}` : ''}`
  })
}

/** Whether `name` can be resolved from here (the platform package is installed). */
function packageInstalled(name: string): boolean {
  try {
    require.resolve(`${name}/package.json`)
    return true
  } catch {
    return false
  }
}

/**
 * Why the installed addon did not load, as one line: the first error in the
 * loader's chain that is not a missing module (for example the dynamic
 * loader's `version 'GLIBC_2.xx' not found`).
 */
function loadFailure(err: unknown): string {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND' && !/^Cannot find (module|native binding)/.test(e.message)) {
      return e.message.split('\n')[0]!.slice(0, 300)
    }
  }
  return 'see the error\'s cause'
}

/**
 * The generated loader tries the addon beside it, then the platform package
 * (`window-space-<platform>`). When neither loads, its error speaks of an npm
 * bug; this one says, in one line, which platform was seen and what to do.
 */
function loadBinding(): typeof Binding {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('../binding.js') as typeof Binding
  } catch (err) {
    const seen = platformSeen()
    const built = platformsBuilt()
    const how = 'build from source: in a clone of the repository run `npm ci && npm run build` (needs Rust stable), then `npm install /path/to/clone`'
    let message: string
    if (!built.includes(seen)) {
      message = `window-space: no prebuilt native addon for ${seen} (prebuilt: ${built.join(', ')}; the core needs Linux); ${how}`
    } else if (packageInstalled(`window-space-${seen}`)) {
      message = `window-space: the native addon in window-space-${seen} is installed but did not load: ${loadFailure(err)}; ${how}`
    } else {
      message = `window-space: the native addon for ${seen} did not load (is the package window-space-${seen} installed? npm skips it with --omit=optional); reinstall, or ${how}`
    }
    throw new Error(message, { cause: err })
  }
}

export const native = loadBinding()
export type NativeController = Binding.NativeController
export type NativeStorageReport = Binding.NativeStorageReport
export type NativeOpenOptions = Binding.NativeOpenOptions

/**
 * The hand-written hot-path functions of the addon (crates/window-space-node/src/fast.rs).
 * They take the controller's `handle` first; refused transitions return
 * negative codes, and `fastLastRefusal(out)` then writes the slot the refusal
 * saw (8 numbers). A claim's optional `out` array (at least 8 numbers)
 * receives its lease deadline, or the slot a refusal saw.
 */
export interface FastPath {
  fastClaim: (this: void, handle: number, symbol: number, window: number, kind: number, leaseMs: number, out?: Float64Array) => number
  fastRenew: (this: void, handle: number, symbol: number, window: number, kind: number, version: number, leaseMs: number) => number
  fastFill: (
    this: void,
    handle: number,
    symbol: number,
    window: number,
    kind: number,
    version: number,
    payloadType: number,
    payloadId: number,
    checksumHi: number,
    checksumLo: number,
  ) => number
  fastClear: (this: void, handle: number, symbol: number, window: number, kind: number, version: number) => number
  fastLastRefusal: (this: void, out: Float64Array) => number
  fastReadSlot: (this: void, handle: number, symbol: number, window: number, kind: number, out: Float64Array) => number
  fastReadRow: (this: void, handle: number, ledger: number, symbol: number, window: number, out: Float64Array) => number
  fastNextUnfilled: (this: void, handle: number, symbol: number, start: number, kind: number) => number
  /** Claims up to `count`; writes (window, version, lease deadline) triples into `out`; returns how many. */
  fastClaimNextUnfilled: (this: void, handle: number, symbol: number, start: number, kind: number, count: number, leaseMs: number, out: Float64Array) => number
  /** Fills `count` items of 8 numbers; results at `buf[8 * count + i]` (see `RawCalls.fillBatch`). */
  fastFillBatch: (this: void, handle: number, buf: Float64Array, count: number) => number
}

/** The benchmark's floor functions, in builds with the `bench` feature only. */
export interface BenchFloor {
  fastEmpty?: (this: void) => number
  fastCasInternal?: (this: void, index: number, expected: number, desired: number) => number
}

/**
 * The hot-path functions, copied into an object of their own. The addon's
 * exports object has too many properties for V8 to keep it in fast mode (it
 * becomes a dictionary, a hash lookup on every `native.fastX` access); a
 * literal with these few properties keeps a fixed shape, so each call site
 * reads its function at a known offset.
 */
function fastPath(): FastPath & BenchFloor {
  const n = native as unknown as FastPath & BenchFloor
  return {
    fastClaim: n.fastClaim,
    fastRenew: n.fastRenew,
    fastFill: n.fastFill,
    fastClear: n.fastClear,
    fastLastRefusal: n.fastLastRefusal,
    fastReadSlot: n.fastReadSlot,
    fastReadRow: n.fastReadRow,
    fastNextUnfilled: n.fastNextUnfilled,
    fastClaimNextUnfilled: n.fastClaimNextUnfilled,
    fastFillBatch: n.fastFillBatch,
    fastEmpty: n.fastEmpty,
    fastCasInternal: n.fastCasInternal,
  }
}

export const fast = fastPath()
