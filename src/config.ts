/**
 * Where a state directory lives, its schedule, and the options of a
 * controller: {@link WindowSpaceConfig}.
 *
 * @module
 */
import * as path from 'node:path'

import { checkAuditText, checkWhole } from './args'
import { native } from './native'
import { scheduleToJson, type WindowSpace } from './time'

/** When a call's effects reach the disk. */
export type Durability = 'buffered' | 'sync'

/** Options of {@link WindowSpaceConfig}. */
export interface WindowSpaceOptions {
  /**
   * `'buffered'` (default): every call that returned survives `kill -9` at any
   * instant. `'sync'`: also survives power loss (fdatasync/msync before return).
   */
  readonly durability?: Durability
  /** Lease of a claim when `markPending` is given none (default 30 000 ms). */
  readonly defaultLeaseMs?: number
  /**
   * Who this controller's audit lines (admin calls, lease takeovers) name when
   * a call names nobody. Default: `user@host pid N` of this process.
   */
  readonly actor?: string
  /**
   * Entries of the change journal (`waitFor`, `watch`) if this bootstrap
   * creates it: a power of two from 64 to 2^24, default 65 536. An existing
   * journal keeps its size.
   */
  readonly journalCapacity?: number
}

/** The default actor of audit lines: `user@host pid N` of this process. */
export function defaultActor(): string {
  return native.defaultActor()
}

/** Where the state lives, its schedule, and options. */
export class WindowSpaceConfig {
  /** Absolute path of the state directory. */
  readonly stateDir: string
  readonly windowSpace: WindowSpace
  readonly options: Readonly<WindowSpaceOptions>

  /**
   * @param stateDir - the state directory (created if missing)
   * @param windowSpace - the schedule; persisted on first bootstrap
   * @param options - durability, default lease, actor, journal size
   */
  constructor(stateDir: string, windowSpace: WindowSpace, options: WindowSpaceOptions = {}) {
    if (typeof stateDir !== 'string' || stateDir.length === 0) throw new TypeError('stateDir must be a non-empty string')
    if (stateDir.includes('\0')) throw new RangeError('stateDir must not contain NUL characters')
    scheduleToJson(windowSpace) // validates types and ranges now
    if (options.durability !== undefined && options.durability !== 'buffered' && options.durability !== 'sync') {
      throw new RangeError(`durability must be "buffered" or "sync", got ${JSON.stringify(options.durability)}`)
    }
    if (options.defaultLeaseMs !== undefined) checkWhole(options.defaultLeaseMs, 'defaultLeaseMs', Number.MAX_SAFE_INTEGER)
    checkAuditText(options.actor, 'actor')
    if (options.journalCapacity !== undefined) {
      const c = checkWhole(options.journalCapacity, 'journalCapacity', 2 ** 24)
      if (c < 64 || (c & (c - 1)) !== 0) throw new RangeError(`journalCapacity must be a power of two from 64 to 2^24, got ${c}`)
    }
    this.stateDir = path.resolve(stateDir)
    this.windowSpace = windowSpace
    this.options = Object.freeze({ ...options })
  }

  /** @internal */
  toNative() {
    return {
      stateDir: this.stateDir,
      scheduleJson: scheduleToJson(this.windowSpace),
      durability: this.options.durability,
      defaultLeaseMs: this.options.defaultLeaseMs,
      journalCapacity: this.options.journalCapacity,
      actor: this.options.actor,
    }
  }
}
