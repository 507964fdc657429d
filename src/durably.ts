/**
 * The async calls' group commit, JavaScript side: run a write with its syncs
 * deferred, then wait on the libuv pool until it is durable (core
 * `durability.rs`). In the `'buffered'` mode nothing is owed and the promise
 * resolves at once.
 *
 * @module
 */
import { translateNativeError } from './errors'
import type { NativeController } from './native'

/**
 * Runs `write` with its syncs deferred to a group commit and resolves with
 * its result once the write is durable. The write itself happens before this
 * returns its promise, so ids and versions are assigned in call order; only
 * the wait for the disk is off the main thread, shared by every async call
 * that is waiting at the same time.
 */
export async function durably<T>(n: NativeController, write: () => T): Promise<T> {
  n.beginDeferred()
  let outcome: { ok: true; value: T } | { ok: false; error: unknown }
  try {
    outcome = { ok: true, value: write() }
  } catch (error) {
    // A batch may have changed slots before it failed: those are made
    // durable too, as the plain call would have, before the failure is reported.
    outcome = { ok: false, error }
  }
  const ticket = endDeferral(n)
  let failed: { error: unknown } | null = null
  if (ticket > 0) {
    try {
      await n.commitAsync(ticket)
    } catch (e) {
      failed = { error: translateNativeError(e) }
    }
  }
  if (!outcome.ok) throw outcome.error // the write's own error is the one to report
  if (failed) throw failed.error
  return outcome.value
}

/** Ends a deferral; 0 when the controller closed meanwhile (nothing left to commit through it). */
function endDeferral(n: NativeController): number {
  try {
    return n.endDeferred()
  } catch {
    return 0
  }
}
