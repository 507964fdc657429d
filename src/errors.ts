/**
 * Typed errors of window-space: one base class, {@link WindowSpaceError}, with
 * a stable string `code` on every instance, and a subclass per failure callers
 * branch on. Match on `code` (or use `instanceof`); never parse messages.
 *
 * `instanceof` works across two copies of this package in one process: every
 * class checks a `Symbol.for` brand instead of the prototype chain.
 *
 * The codes, and which class carries each, are the core's vocabulary
 * (`ERROR_CODES` in `./vocabulary`); a test keeps this module and that table
 * equal. This module also owns the conversion of errors thrown by the native
 * binding (an `Error` with `code` and a `details` object) into these classes.
 *
 * @module
 */

import type { SlotState } from './types'
import { SLOT_STATUSES, type WindowSpaceErrorCode } from './vocabulary'

export type { WindowSpaceErrorCode } from './vocabulary'

const brand = (name: string) => Symbol.for(`window-space.error.${name}`)

function hasBrand(value: unknown, b: symbol): boolean {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[b] === true
}

/** Fields every error may carry, depending on what failed. */
export interface WindowSpaceErrorDetails {
  /** State file concerned (CorruptStateError, IoError). */
  file?: string
  /** Byte offset in `file`, when known. */
  offset?: number | null
  /** What exactly is wrong, for people. */
  what?: string
  [key: string]: unknown
}

const BASE_BRAND = brand('WindowSpaceError')

/**
 * Base class of every error window-space throws. Match on {@link code}.
 */
export class WindowSpaceError extends Error {
  /** Stable machine-readable code, e.g. `ERR_SLOT_BUSY`. */
  readonly code: WindowSpaceErrorCode
  /** Structured details (file, offset, symbol, window, ...). */
  readonly details: WindowSpaceErrorDetails

  constructor(code: WindowSpaceErrorCode, message: string, details: WindowSpaceErrorDetails = {}) {
    super(message)
    this.code = code
    this.details = details
    Object.defineProperty(this, 'name', { value: new.target.name, enumerable: false, configurable: true, writable: true })
    Object.defineProperty(this, BASE_BRAND, { value: true })
    for (const b of (new.target as unknown as { brands?: symbol[] }).brands ?? []) {
      Object.defineProperty(this, b, { value: true })
    }
  }


  static override [Symbol.hasInstance](value: unknown): boolean {
    const own = (this as unknown as { ownBrand?: symbol }).ownBrand ?? BASE_BRAND
    return hasBrand(value, own)
  }
}

type Ctor<C extends string> = new (message: string, details?: WindowSpaceErrorDetails) => WindowSpaceError & { readonly code: C }

/** Builds a branded subclass with a literal `code` and `name`. */
function define<C extends WindowSpaceErrorCode, N extends string>(
  name: N,
  code: C,
  parent: typeof WindowSpaceError = WindowSpaceError,
): Ctor<C> & { readonly ownBrand: symbol } {
  const own = brand(name)
  const parentBrands = (parent as unknown as { brands?: symbol[] }).brands ?? []
  const cls = class extends (parent as unknown as new (c: WindowSpaceErrorCode, m: string, d?: WindowSpaceErrorDetails) => WindowSpaceError) {
    static readonly ownBrand = own
    static readonly brands = [...parentBrands, own]
    constructor(message: string, details: WindowSpaceErrorDetails = {}) {
      super(code, message, details)
    }
  }
  Object.defineProperty(cls, 'name', { value: name })
  return cls as unknown as Ctor<C> & { readonly ownBrand: symbol }
}

/** An operating-system call on a state file failed. */
export class IoError extends define('IoError', 'ERR_IO') {}
/** The disk (or the file-size limit) is full; nothing was half-written. */
export class DiskFullError extends define('DiskFullError', 'ERR_DISK_FULL') {}
/** The state directory is on a read-only file system. */
export class ReadOnlyError extends define('ReadOnlyError', 'ERR_READ_ONLY') {}
/** The process may not write (or read) a state file. */
export class PermissionDeniedError extends define('PermissionDeniedError', 'ERR_PERMISSION_DENIED') {}
/**
 * A state file is damaged, truncated or of another format; `details.file`
 * and `details.offset` say where. When files lost what others refer to, the
 * details also say what: a mapping table that Filled slots refer past has
 * `records`, `highestReferencedId`, `danglingSlots` and `storesAffected`; a
 * symbol map missing symbols whose ledger chunks exist has `symbols`,
 * `highestSymbolId` and `chunks`. Only `window-space repair` accepts such a loss.
 */
export class CorruptStateError extends define('CorruptStateError', 'ERR_CORRUPT_STATE') {
  /** The damaged file. */
  get file(): string | undefined {
    return this.details.file
  }
  /** Byte offset of the damage, when known. */
  get offset(): number | null | undefined {
    return this.details.offset
  }
}
/**
 * A state file was written by a newer version of window-space (`details.file`,
 * `details.version`, `details.supported`): upgrade the library to open it.
 */
export class NewerFormatError extends define('NewerFormatError', 'ERR_NEWER_FORMAT') {}
/**
 * The state directory was made by an older version of window-space
 * (`details.file`, `details.version`, `details.supported`): convert it with
 * the command in `details.command` (`window-space migrate DIR`, offline).
 */
export class OlderFormatError extends define('OlderFormatError', 'ERR_OLDER_FORMAT') {}
/** The schedule given to bootstrap differs from the persisted one (other than rolling forward). */
export class ScheduleMismatchError extends define('ScheduleMismatchError', 'ERR_SCHEDULE_MISMATCH') {}
/** The schedule given is invalid on its own. */
export class InvalidScheduleError extends define('InvalidScheduleError', 'ERR_INVALID_SCHEDULE') {}
/** A symbol string is empty, too long (over 64 bytes), has control characters or outer white space. */
export class InvalidSymbolError extends define('InvalidSymbolError', 'ERR_INVALID_SYMBOL') {}
/** The symbol (by name or id) is not in the symbol map; call `resolveSymbol` first. */
export class UnknownSymbolError extends define('UnknownSymbolError', 'ERR_UNKNOWN_SYMBOL') {}
/** A window index outside the schedule. */
export class WindowOutOfRangeError extends define('WindowOutOfRangeError', 'ERR_WINDOW_OUT_OF_RANGE') {}
/** A timestamp that falls in no window (before the first, after the last, or between sessions). */
export class NoWindowForTimestampError extends define('NoWindowForTimestampError', 'ERR_NO_WINDOW_FOR_TIMESTAMP') {}
/** A payload id that its mapping table does not hold. */
export class UnknownPayloadError extends define('UnknownPayloadError', 'ERR_UNKNOWN_PAYLOAD') {}
/**
 * A payload id whose record was lost and that `window-space repair` marked
 * lost (`details.store`, `details.payloadId`): the id exists and is never
 * handed out again, but names no artifact. Reading it, or filling a slot
 * with it, gives this error.
 */
export class PayloadLostError extends define('PayloadLostError', 'ERR_PAYLOAD_LOST') {}
/** An operation that needs the state directory to itself (`repair`) found other controllers with it open (`details.path`). */
export class StateDirInUseError extends define('StateDirInUseError', 'ERR_STATE_DIR_IN_USE') {}
/** An argument of the right type but an unacceptable value (checked in the native core). */
export class InvalidArgumentError extends define('InvalidArgumentError', 'ERR_INVALID_ARGUMENT') {}
/** An artifact path that would leave the state directory. */
export class PathEscapesStateDirError extends define('PathEscapesStateDirError', 'ERR_PATH_ESCAPES_STATE_DIR') {}
/** The controller was closed. */
export class ClosedError extends define('ClosedError', 'ERR_CLOSED') {}
/** The platform lacks something the format needs (e.g. lock-free 128-bit compare-and-swap). */
export class UnsupportedError extends define('UnsupportedError', 'ERR_UNSUPPORTED') {}
/** An operation was aborted through its `AbortSignal`. */
export class AbortError extends define('AbortError', 'ERR_ABORTED') {}
/** The directory holds no window-space state (no `schedule.json`); see `WindowSpaceController.openExisting`. */
export class NotAStateDirError extends define('NotAStateDirError', 'ERR_NOT_A_STATE_DIR') {}
/** A failure inside the native core that has no code of its own, such as a caught panic (a bug: please report it). */
export class InternalError extends define('InternalError', 'ERR_INTERNAL') {}
/**
 * A watcher cannot prove it saw every change since its position:
 * `details.reason` says why — the bounded change journal overtook it
 * (`'overtaken'`), a writer process died before finishing its entry
 * (`'abandoned'`), the position is of another journal (`'otherJournal'`) or
 * past its head (`'ahead'`). Rescan what you watch (rows, `nextReadyWindow`),
 * then watch again from `{ epoch: details.epoch, seq: details.resumeSeq }`.
 */
export class JournalGapError extends define('JournalGapError', 'ERR_JOURNAL_GAP') {}
/** `waitFor` ran out of time before every slot was Filled. */
export class WaitTimeoutError extends define('WaitTimeoutError', 'ERR_WAIT_TIMEOUT') {}
/**
 * The PostgreSQL backend could not reach the database, lost its
 * connection, or the server ended the session (`details.what`;
 * `details.sqlstate` when the server said why). Whether a statement in flight took effect is
 * unknown: read the slot before acting again (a claim's `version` fences a
 * retried fill).
 */
export class ConnectionError extends define('ConnectionError', 'ERR_CONNECTION') {}
/** The database refused a statement of the PostgreSQL backend (`details.sqlstate`, `details.what`). */
export class DatabaseError extends define('DatabaseError', 'ERR_DATABASE') {}

/** The slot as it was seen when a transition was refused. */
export interface SlotSnapshotDetails extends WindowSpaceErrorDetails {
  status?: string
  version?: number
  expectedVersion?: number | null
}

const SLOT_WRITE_BRAND = brand('SlotWriteError')

/**
 * A slot transition was refused. The family: {@link VersionConflictError}
 * and its subclasses {@link SlotBusyError}, {@link SlotFilledError},
 * {@link SlotRetiredError}. Engines usually just skip the slot.
 */
export class SlotWriteError extends WindowSpaceError {
  static readonly ownBrand = SLOT_WRITE_BRAND
  static readonly brands: symbol[] = [SLOT_WRITE_BRAND]
  /** The slot as it was when the refusal was seen. */
  slot?: SlotState
  constructor(code: WindowSpaceErrorCode, message: string, details: WindowSpaceErrorDetails = {}) {
    super(code, message, details)
  }
}

/**
 * The writer's claim is no longer current: someone else claimed, filled,
 * cleared or took over the slot. `slot` is the slot as it is now.
 */
export class VersionConflictError extends SlotWriteError {
  static override readonly ownBrand: symbol = brand('VersionConflictError')
  static override readonly brands: symbol[] = [SLOT_WRITE_BRAND, VersionConflictError.ownBrand]
  declare readonly code: 'ERR_VERSION_CONFLICT' | 'ERR_SLOT_BUSY' | 'ERR_SLOT_FILLED' | 'ERR_SLOT_RETIRED'
  constructor(message: string, details: WindowSpaceErrorDetails = {}) {
    super('ERR_VERSION_CONFLICT', message, details)
  }
}

/** Builds a subclass of {@link VersionConflictError} with its own code. */
function refusal<C extends 'ERR_SLOT_BUSY' | 'ERR_SLOT_FILLED' | 'ERR_SLOT_RETIRED'>(name: string, code: C) {
  const own = brand(name)
  const cls = class extends VersionConflictError {
    static override readonly ownBrand = own
    static override readonly brands = [...VersionConflictError.brands, own]
    declare readonly code: C
    constructor(message: string, details: WindowSpaceErrorDetails = {}) {
      super(message, details)
      ;(this as { code: string }).code = code
    }
  }
  Object.defineProperty(cls, 'name', { value: name })
  return cls
}

/** The slot is held by someone else's live claim. */
export class SlotBusyError extends refusal('SlotBusyError', 'ERR_SLOT_BUSY') {}
/** The slot is already Filled. */
export class SlotFilledError extends refusal('SlotFilledError', 'ERR_SLOT_FILLED') {}
/** The slot is Retired (terminal). */
export class SlotRetiredError extends refusal('SlotRetiredError', 'ERR_SLOT_RETIRED') {}

/** Every error class by its code. */
export const errorClasses: Readonly<Record<WindowSpaceErrorCode, new (message: string, details?: WindowSpaceErrorDetails) => WindowSpaceError>> = {
  ERR_IO: IoError,
  ERR_DISK_FULL: DiskFullError,
  ERR_READ_ONLY: ReadOnlyError,
  ERR_PERMISSION_DENIED: PermissionDeniedError,
  ERR_CORRUPT_STATE: CorruptStateError,
  ERR_NEWER_FORMAT: NewerFormatError,
  ERR_OLDER_FORMAT: OlderFormatError,
  ERR_SCHEDULE_MISMATCH: ScheduleMismatchError,
  ERR_INVALID_SCHEDULE: InvalidScheduleError,
  ERR_INVALID_SYMBOL: InvalidSymbolError,
  ERR_UNKNOWN_SYMBOL: UnknownSymbolError,
  ERR_WINDOW_OUT_OF_RANGE: WindowOutOfRangeError,
  ERR_NO_WINDOW_FOR_TIMESTAMP: NoWindowForTimestampError,
  ERR_VERSION_CONFLICT: VersionConflictError,
  ERR_SLOT_BUSY: SlotBusyError,
  ERR_SLOT_FILLED: SlotFilledError,
  ERR_SLOT_RETIRED: SlotRetiredError,
  ERR_UNKNOWN_PAYLOAD: UnknownPayloadError,
  ERR_INVALID_ARGUMENT: InvalidArgumentError,
  ERR_PATH_ESCAPES_STATE_DIR: PathEscapesStateDirError,
  ERR_CLOSED: ClosedError,
  ERR_UNSUPPORTED: UnsupportedError,
  ERR_ABORTED: AbortError,
  ERR_INTERNAL: InternalError,
  ERR_NOT_A_STATE_DIR: NotAStateDirError,
  ERR_JOURNAL_GAP: JournalGapError,
  ERR_WAIT_TIMEOUT: WaitTimeoutError,
  ERR_PAYLOAD_LOST: PayloadLostError,
  ERR_STATE_DIR_IN_USE: StateDirInUseError,
  ERR_CONNECTION: ConnectionError,
  ERR_DATABASE: DatabaseError,
}

/** The slot a refused transition saw, from the fields of its details. */
function slotOfDetails(d: WindowSpaceErrorDetails): SlotState | undefined {
  const status = SLOT_STATUSES.find((x) => x === d.status)
  if (status === undefined || typeof d.version !== 'number') return undefined
  const filled = status === 'Filled'
  return {
    status,
    version: d.version,
    payloadType: filled && typeof d.payloadType === 'number' ? d.payloadType : 0,
    payloadId: filled && typeof d.payloadId === 'number' ? d.payloadId : 0,
    checksum: filled && typeof d.checksum === 'string' ? BigInt(d.checksum) : 0n,
    leaseExpiresAt: status === 'Pending' && typeof d.leaseExpiresAt === 'number' ? d.leaseExpiresAt : null,
  }
}

/**
 * Builds the typed error for a `code`, message and details. A code this
 * module has no class for (there should be none: a test checks) gets the
 * base class, so the code still reaches the caller.
 */
export function errorFromNative(code: string, message: string, details: WindowSpaceErrorDetails = {}): Error {
  const cls = (errorClasses as Record<string, (new (m: string, d?: WindowSpaceErrorDetails) => WindowSpaceError) | undefined>)[code]
  if (cls) {
    const e = new cls(message, details)
    if (e instanceof SlotWriteError) e.slot = slotOfDetails(details)
    return e
  }
  // napi argument-conversion statuses: the caller passed the wrong type.
  if (code === 'InvalidArg' || code === 'NumberExpected' || code === 'StringExpected' || code === 'ObjectExpected' || code === 'BigintExpected') {
    return new TypeError(message)
  }
  if (code === 'Cancelled') return new AbortError(message)
  return new InternalError(`${code}: ${message}`)
}

/** Converts anything the native binding threw into a typed error. */
export function translateNativeError(err: unknown): unknown {
  if (err instanceof WindowSpaceError || err instanceof TypeError || err instanceof RangeError) return err
  if (err instanceof Error && typeof (err as { code?: unknown }).code === 'string') {
    const raw = (err as { details?: unknown }).details
    const details = typeof raw === 'object' && raw !== null ? (raw as WindowSpaceErrorDetails) : {}
    const e = errorFromNative((err as unknown as { code: string }).code, err.message, details)
    if (err.stack) e.stack = `${e.name}: ${e.message}\n${err.stack.split('\n').slice(1).join('\n')}`
    return e
  }
  return err
}
