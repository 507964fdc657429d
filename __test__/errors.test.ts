// The error surface of window-space as a table: every class exported from
// src/errors.ts, its stable `code` and `name`, the `instanceof` family
// relations (including across a second copy of the module), the conversion of
// native errors into typed ones, and the literal `code` types.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, expectTypeOf, it, vi } from 'vitest'

import * as errors from '../src/errors'
import {
  AbortError,
  ClosedError,
  CorruptStateError,
  DiskFullError,
  InternalError,
  InvalidArgumentError,
  InvalidScheduleError,
  InvalidSymbolError,
  IoError,
  NoWindowForTimestampError,
  NotAStateDirError,
  JournalGapError,
  NewerFormatError,
  OlderFormatError,
  WaitTimeoutError,
  PathEscapesStateDirError,
  PayloadLostError,
  StateDirInUseError,
  ConnectionError,
  DatabaseError,
  PermissionDeniedError,
  ReadOnlyError,
  ScheduleMismatchError,
  SlotBusyError,
  SlotFilledError,
  SlotRetiredError,
  SlotWriteError,
  UnknownPayloadError,
  UnknownSymbolError,
  UnsupportedError,
  VersionConflictError,
  WindowOutOfRangeError,
  WindowSpaceError,
  errorClasses,
  errorFromNative,
  translateNativeError,
  type WindowSpaceErrorCode,
} from '../src/errors'
import * as facade from '../src/index'
import { ERROR_CODES } from '../src/vocabulary'
import { SlotKind, WindowSpace, WindowSpaceConfig, WindowSpaceController, type FillRequest } from '../src/index'
import { caught } from './helpers'

type AnyCtor = abstract new (...args: never[]) => WindowSpaceError

interface Row {
  name: string
  cls: AnyCtor
  code: WindowSpaceErrorCode
  /** Classes (other than itself and WindowSpaceError) it must be an instance of. */
  ancestors: AnyCtor[]
  make: (message: string, details?: errors.WindowSpaceErrorDetails) => WindowSpaceError
}

const plain = <C extends new (m: string, d?: errors.WindowSpaceErrorDetails) => WindowSpaceError>(name: string, cls: C, code: WindowSpaceErrorCode): Row => ({
  name,
  cls,
  code,
  ancestors: [],
  make: (m, d) => new cls(m, d),
})

const REFUSAL_ANCESTORS: AnyCtor[] = [VersionConflictError, SlotWriteError]

/** Every error class src/errors.ts exports (the test below checks the list is complete). */
const TABLE: Row[] = [
  { name: 'WindowSpaceError', cls: WindowSpaceError, code: 'ERR_INTERNAL', ancestors: [], make: (m, d) => new WindowSpaceError('ERR_INTERNAL', m, d) },
  plain('IoError', IoError, 'ERR_IO'),
  plain('DiskFullError', DiskFullError, 'ERR_DISK_FULL'),
  plain('ReadOnlyError', ReadOnlyError, 'ERR_READ_ONLY'),
  plain('PermissionDeniedError', PermissionDeniedError, 'ERR_PERMISSION_DENIED'),
  plain('CorruptStateError', CorruptStateError, 'ERR_CORRUPT_STATE'),
  plain('NewerFormatError', NewerFormatError, 'ERR_NEWER_FORMAT'),
  plain('OlderFormatError', OlderFormatError, 'ERR_OLDER_FORMAT'),
  plain('ScheduleMismatchError', ScheduleMismatchError, 'ERR_SCHEDULE_MISMATCH'),
  plain('InvalidScheduleError', InvalidScheduleError, 'ERR_INVALID_SCHEDULE'),
  plain('InvalidSymbolError', InvalidSymbolError, 'ERR_INVALID_SYMBOL'),
  plain('UnknownSymbolError', UnknownSymbolError, 'ERR_UNKNOWN_SYMBOL'),
  plain('WindowOutOfRangeError', WindowOutOfRangeError, 'ERR_WINDOW_OUT_OF_RANGE'),
  plain('NoWindowForTimestampError', NoWindowForTimestampError, 'ERR_NO_WINDOW_FOR_TIMESTAMP'),
  plain('UnknownPayloadError', UnknownPayloadError, 'ERR_UNKNOWN_PAYLOAD'),
  plain('InvalidArgumentError', InvalidArgumentError, 'ERR_INVALID_ARGUMENT'),
  plain('PathEscapesStateDirError', PathEscapesStateDirError, 'ERR_PATH_ESCAPES_STATE_DIR'),
  plain('ClosedError', ClosedError, 'ERR_CLOSED'),
  plain('UnsupportedError', UnsupportedError, 'ERR_UNSUPPORTED'),
  plain('AbortError', AbortError, 'ERR_ABORTED'),
  plain('NotAStateDirError', NotAStateDirError, 'ERR_NOT_A_STATE_DIR'),
  plain('InternalError', InternalError, 'ERR_INTERNAL'),
  plain('JournalGapError', JournalGapError, 'ERR_JOURNAL_GAP'),
  plain('WaitTimeoutError', WaitTimeoutError, 'ERR_WAIT_TIMEOUT'),
  plain('PayloadLostError', PayloadLostError, 'ERR_PAYLOAD_LOST'),
  plain('StateDirInUseError', StateDirInUseError, 'ERR_STATE_DIR_IN_USE'),
  plain('ConnectionError', ConnectionError, 'ERR_CONNECTION'),
  plain('DatabaseError', DatabaseError, 'ERR_DATABASE'),
  { name: 'SlotWriteError', cls: SlotWriteError, code: 'ERR_VERSION_CONFLICT', ancestors: [], make: (m, d) => new SlotWriteError('ERR_VERSION_CONFLICT', m, d) },
  { name: 'VersionConflictError', cls: VersionConflictError, code: 'ERR_VERSION_CONFLICT', ancestors: [SlotWriteError], make: (m, d) => new VersionConflictError(m, d) },
  { name: 'SlotBusyError', cls: SlotBusyError, code: 'ERR_SLOT_BUSY', ancestors: REFUSAL_ANCESTORS, make: (m, d) => new SlotBusyError(m, d) },
  { name: 'SlotFilledError', cls: SlotFilledError, code: 'ERR_SLOT_FILLED', ancestors: REFUSAL_ANCESTORS, make: (m, d) => new SlotFilledError(m, d) },
  { name: 'SlotRetiredError', cls: SlotRetiredError, code: 'ERR_SLOT_RETIRED', ancestors: REFUSAL_ANCESTORS, make: (m, d) => new SlotRetiredError(m, d) },
]

/** Codes that have a class of their own in `errorClasses` (the base and SlotWriteError do not). */
const CODED = TABLE.filter((r) => r.name !== 'WindowSpaceError' && r.name !== 'SlotWriteError')

describe('the error table', () => {
  it('lists every error class src/errors.ts exports, and no other', () => {
    const exported = Object.entries(errors)
      .filter(([, v]) => typeof v === 'function' && (v === WindowSpaceError || Object.prototype.isPrototypeOf.call(WindowSpaceError.prototype, (v as { prototype?: object }).prototype ?? {})))
      .map(([k]) => k)
      .sort()
    expect(exported).toEqual(TABLE.map((r) => r.name).sort())
  })

  it('the package index re-exports the very same classes', () => {
    for (const r of TABLE) expect((facade as Record<string, unknown>)[r.name]).toBe(r.cls)
  })

  it('errorClasses maps every code to its class, one class per code', () => {
    expect(Object.keys(errorClasses).sort()).toEqual(CODED.map((r) => r.code).sort())
    for (const r of CODED) expect(errorClasses[r.code]).toBe(r.cls)
  })

  it.each(TABLE)('$name: code, name, message, details, stack', ({ name, code, make }) => {
    const e = make('something failed', { file: 'trades.map', offset: 64, what: 'bad' })
    expect(e.code).toBe(code)
    expect(e.name).toBe(name)
    expect(e.message).toBe('something failed')
    expect(e.details).toEqual({ file: 'trades.map', offset: 64, what: 'bad' })
    expect(String(e)).toBe(`${name}: something failed`)
    expect(typeof e.stack).toBe('string')
    expect(Object.keys(e)).not.toContain('name') // name is not enumerable
    const bare = make('m')
    expect(bare.details).toEqual({})
  })

  it.each(TABLE)('$name: instanceof Error, WindowSpaceError, itself and its ancestors', ({ cls, ancestors, make }) => {
    const e = make('x')
    expect(e).toBeInstanceOf(Error)
    expect(e).toBeInstanceOf(WindowSpaceError)
    expect(e).toBeInstanceOf(cls)
    for (const a of ancestors) expect(e).toBeInstanceOf(a)
  })

  it.each(TABLE)('$name: not instanceof any unrelated class of the table', ({ cls, ancestors, make }) => {
    const e = make('x')
    const related = new Set<AnyCtor>([cls, WindowSpaceError, ...ancestors])
    for (const other of TABLE) {
      if (related.has(other.cls)) continue
      expect(e instanceof other.cls, `${e.name} instanceof ${other.name}`).toBe(false)
    }
  })

  it.each([SlotBusyError, SlotFilledError, SlotRetiredError])('%o is a VersionConflictError and a SlotWriteError', (cls) => {
    const e = new cls('refused', { status: 'Pending', version: 3 })
    expect(e).toBeInstanceOf(VersionConflictError)
    expect(e).toBeInstanceOf(SlotWriteError)
    expect(e).toBeInstanceOf(WindowSpaceError)
    expect(e.slot).toBeUndefined()
    // Refusals are not each other.
    for (const other of [SlotBusyError, SlotFilledError, SlotRetiredError].filter((c) => c !== cls)) expect(e instanceof other).toBe(false)
  })

  it('a VersionConflictError is not a SlotBusyError/SlotFilledError/SlotRetiredError', () => {
    const e = new VersionConflictError('conflict')
    expect(e.code).toBe('ERR_VERSION_CONFLICT')
    expect(e instanceof SlotBusyError).toBe(false)
    expect(e instanceof SlotFilledError).toBe(false)
    expect(e instanceof SlotRetiredError).toBe(false)
  })

  it('values that merely look like errors are not instances', () => {
    const lookalikes: unknown[] = [
      { code: 'ERR_SLOT_BUSY', name: 'SlotBusyError', message: 'x' },
      Object.create(SlotBusyError.prototype),
      new Error('x'),
      Object.assign(new Error('x'), { code: 'ERR_CLOSED' }),
      null,
      undefined,
      'ERR_SLOT_BUSY',
      42,
    ]
    for (const v of lookalikes) {
      expect(v instanceof WindowSpaceError).toBe(false)
      expect(v instanceof SlotBusyError).toBe(false)
      expect(v instanceof VersionConflictError).toBe(false)
      expect(v instanceof ClosedError).toBe(false)
    }
  })

  it('CorruptStateError exposes file and offset from its details', () => {
    const e = new CorruptStateError('bad', { file: '/s/trade-ledger.dat', offset: 4096 })
    expect(e.file).toBe('/s/trade-ledger.dat')
    expect(e.offset).toBe(4096)
    const none = new CorruptStateError('bad', { file: '/s/symbols.log', offset: null })
    expect(none.offset).toBeNull()
    expect(new CorruptStateError('bad').file).toBeUndefined()
  })

  it('SlotWriteError carries the slot snapshot when set', () => {
    const e = new SlotBusyError('busy')
    e.slot = { status: 'Pending', version: 7, payloadType: 0, payloadId: 0, checksum: 0n, leaseExpiresAt: 123 }
    expect(e.slot.status).toBe('Pending')
    expect(e.slot.version).toBe(7)
  })
})

describe('native error conversion', () => {
  it.each(CODED)('errorFromNative($code) builds a $name with the message and details as given', ({ code, cls, name }) => {
    const e = errorFromNative(code, 'native said no', { file: 'x.map', offset: 8, symbol: 'SPY' })
    expect(e).toBeInstanceOf(cls)
    expect((e as WindowSpaceError).code).toBe(code)
    expect(e.name).toBe(name)
    expect(e.message).toBe('native said no')
    expect((e as WindowSpaceError).details).toEqual({ file: 'x.map', offset: 8, symbol: 'SPY' })
  })

  it('without details the error has an empty details object', () => {
    const e = errorFromNative('ERR_UNKNOWN_SYMBOL', 'plain reason')
    expect(e).toBeInstanceOf(UnknownSymbolError)
    expect(e.message).toBe('plain reason')
    expect((e as WindowSpaceError).details).toEqual({})
  })

  it('a refusal gets its slot from the details the core sent', () => {
    const e = errorFromNative('ERR_SLOT_FILLED', 'filled', { status: 'Filled', version: 4, payloadType: 2, payloadId: 17, checksum: '18446744073709551615', leaseExpiresAt: null })
    expect((e as SlotFilledError).slot).toEqual({ status: 'Filled', version: 4, payloadType: 2, payloadId: 17, checksum: 0xffffffffffffffffn, leaseExpiresAt: null })
  })

  it.each(['InvalidArg', 'NumberExpected', 'StringExpected', 'ObjectExpected', 'BigintExpected'])('napi status %s becomes a TypeError', (status) => {
    const e = errorFromNative(status, 'expected a number')
    expect(e).toBeInstanceOf(TypeError)
    expect(e instanceof WindowSpaceError).toBe(false)
    expect(e.message).toBe('expected a number')
  })

  it('napi status Cancelled becomes an AbortError', () => {
    const e = errorFromNative('Cancelled', 'cancelled')
    expect(e).toBeInstanceOf(AbortError)
    expect((e as AbortError).code).toBe('ERR_ABORTED')
  })

  it('an unknown code becomes an InternalError naming the code', () => {
    const e = errorFromNative('GenericFailure', 'boom')
    expect(e).toBeInstanceOf(InternalError)
    expect((e as InternalError).code).toBe('ERR_INTERNAL')
    expect(e.message).toBe('GenericFailure: boom')
  })

  it('translateNativeError passes typed errors, TypeError and RangeError through unchanged', () => {
    for (const e of [new SlotBusyError('b'), new TypeError('t'), new RangeError('r')]) expect(translateNativeError(e)).toBe(e)
    const notAnError = { foo: 1 }
    expect(translateNativeError(notAnError)).toBe(notAnError)
    const noCode = new Error('no code')
    expect(translateNativeError(noCode)).toBe(noCode)
  })

  it('translateNativeError converts an Error with a native code and a details object', () => {
    const raw = Object.assign(new Error('gone'), { code: 'ERR_WINDOW_OUT_OF_RANGE', details: { windowIdx: 9 } })
    const e = translateNativeError(raw)
    expect(e).toBeInstanceOf(WindowOutOfRangeError)
    expect((e as WindowOutOfRangeError).message).toBe('gone')
    expect((e as WindowOutOfRangeError).details).toEqual({ windowIdx: 9 })
    expect((e as Error).stack!.startsWith('WindowOutOfRangeError: gone\n')).toBe(true)
  })

  it('errors of the core arrive with their fields as an object, not inside the message', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ws-errors-'))
    try {
      const { controller } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: 4 })))
      controller.resolveSymbol('SPY')
      let e: unknown
      try {
        controller.windowMeta(4)
      } catch (err) {
        e = err
      }
      expect(e).toBeInstanceOf(WindowOutOfRangeError)
      expect((e as WindowOutOfRangeError).details).toEqual({ windowIdx: 4, windowCount: 4 })
      expect((e as Error).message).toBe('window index 4 is out of range (the schedule has 4 windows)')
      const claim = controller.markPending('SPY', 1, 'greeks')
      let refused: unknown
      try {
        controller.markPending('SPY', 1, 'greeks')
      } catch (err) {
        refused = err
      }
      expect(refused).toBeInstanceOf(SlotBusyError)
      expect((refused as SlotBusyError).slot).toEqual({ status: 'Pending', version: claim.version, payloadType: 0, payloadId: 0, checksum: 0n, leaseExpiresAt: claim.leaseExpiresAt })
      expect((refused as SlotBusyError).details).toMatchObject({ symbolId: 0, windowIdx: 1, slotKind: 'greeks', status: 'Pending', version: claim.version })
      controller.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('refused fills, clears and renewals', () => {
  it('each error shows the slot its own refusal saw, not an earlier refusal of another slot', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ws-errors-'))
    try {
      const { controller: c } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: 8 })))
      const sym = c.resolveSymbol('SPY')
      const trades = c.payloadStores().trades
      const pid = trades.append({ symbol: sym, windowIdx: 0, slotKind: 'optionTrade', payloadType: 'Parquet', uri: 'a/0', checksum: 7n, size: 1 })
      const meta = (version: number) => ({ payloadType: 'Parquet' as const, payloadId: pid, version, checksum: 7n })
      // Window 1: Filled at version 2. Window 2: Pending at version 3 (claimed, cleared, claimed).
      const f = c.markPending(sym, 1, 'optionTrade')
      c.setRef(sym, 1, 'optionTrade', meta(f.version))
      c.clearSlot(sym, 2, 'optionTrade', c.markPending(sym, 2, 'optionTrade'))
      const held = c.markPending(sym, 2, 'optionTrade', { leaseMs: 600_000 })
      const k = SlotKind.Trade('optionTrade').code
      // A raw refusal on window 1 first: the errors below must not show its slot.
      expect(c.raw.fill(sym, 1, k, f.version, 1, pid, 0, 7)).toBeLessThan(0)
      const pending = { status: 'Pending', version: held.version, payloadType: 0, payloadId: 0, checksum: 0n, leaseExpiresAt: held.leaseExpiresAt }
      const fill = caught(() => c.setRef(sym, 2, 'optionTrade', meta(held.version - 1)))
      expect(fill).toBeInstanceOf(VersionConflictError)
      expect((fill as VersionConflictError).slot).toEqual(pending)
      expect((fill as VersionConflictError).details).toMatchObject({ windowIdx: 2, expectedVersion: held.version - 1, status: 'Pending', version: held.version })
      const clear = caught(() => c.clearSlot(sym, 2, 'optionTrade', { version: held.version + 5 }))
      expect((clear as VersionConflictError).slot).toEqual(pending)
      const renew = caught(() => c.renewClaim({ ...held, windowIdx: 1 }))
      expect(renew).toBeInstanceOf(VersionConflictError)
      expect((renew as VersionConflictError).slot).toMatchObject({ status: 'Filled', version: f.version + 1, payloadId: pid, checksum: 7n })
      expect((renew as VersionConflictError).details).toMatchObject({ windowIdx: 1, expectedVersion: held.version })
      c.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('refused items of a batch fill', () => {
  it('show the slot as their refusal saw it, also when a later item of the batch changed it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ws-errors-'))
    try {
      const { controller: c } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: 8 })))
      const sym = c.resolveSymbol('SPY')
      const pid = c.payloadStores().trades.append({ symbol: sym, windowIdx: 0, slotKind: 'optionTrade', payloadType: 'Parquet', uri: 'a/0', checksum: 7n, size: 1 })
      const meta = (version: number) => ({ payloadType: 'Parquet' as const, payloadId: pid, version, checksum: 7n })
      c.clearSlot(sym, 3, 'optionTrade', c.markPending(sym, 3, 'optionTrade'))
      const held = c.markPending(sym, 3, 'optionTrade', { leaseMs: 600_000 })
      const [stale, fresh] = c.fillMany([
        { symbol: sym, windowIdx: 3, slotKind: 'optionTrade', meta: meta(held.version - 2) },
        { symbol: 'SPY', windowIdx: 3, slotKind: 'optionTrade', meta: meta(held.version) },
      ])
      expect(fresh).toEqual({ ok: true, version: held.version + 1 })
      expect(stale!.ok).toBe(false)
      const e = (stale as { error: VersionConflictError }).error
      expect(e).toBeInstanceOf(VersionConflictError)
      // Pending at the claim's version when the first item was refused; Filled only after the second.
      expect(e.slot).toEqual({ status: 'Pending', version: held.version, payloadType: 0, payloadId: 0, checksum: 0n, leaseExpiresAt: held.leaseExpiresAt })
      expect(e.details).toMatchObject({ symbolId: sym, windowIdx: 3, slotKind: 'optionTrade', expectedVersion: held.version - 2, status: 'Pending', version: held.version })
      expect(c.getSlot(sym, 3, 'optionTrade')).toMatchObject({ status: 'Filled', version: held.version + 1 })
      c.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('the vocabulary of error codes', () => {
  it('every code of the core has the class the core names, with the parent it names', () => {
    for (const [code, { class: name, parent }] of Object.entries(ERROR_CODES)) {
      const cls = (errorClasses as Record<string, AnyCtor>)[code]
      expect(cls?.name, code).toBe(name)
      const parentCls = (errors as Record<string, unknown>)[parent] as AnyCtor
      expect(errorFromNative(code, 'x'), code).toBeInstanceOf(parentCls)
    }
    expect(Object.keys(errorClasses).sort()).toEqual(Object.keys(ERROR_CODES).sort())
  })
})

describe('instanceof across two copies of the module', () => {
  let copy: typeof errors
  const dirs: string[] = []
  const open: WindowSpaceController[] = []

  afterEach(() => {
    for (const c of open.splice(0)) c.close()
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  })

  async function loadCopy(): Promise<typeof errors> {
    vi.resetModules()
    return await import('../src/errors')
  }

  it('a second copy has distinct class objects', async () => {
    copy = await loadCopy()
    expect(copy.SlotBusyError).not.toBe(SlotBusyError)
    expect(copy.WindowSpaceError).not.toBe(WindowSpaceError)
  })

  it.each(TABLE)('$name from the second copy is instanceof the first copy classes (and back)', async ({ name, cls, ancestors, make }) => {
    copy = await loadCopy()
    const copyCls = (copy as Record<string, unknown>)[name] as AnyCtor
    expect(copyCls).toBeTypeOf('function')
    const fromOriginal = make('x')
    expect(fromOriginal).toBeInstanceOf(copyCls)
    expect(fromOriginal).toBeInstanceOf(copy.WindowSpaceError)
    for (const a of ancestors) expect(fromOriginal).toBeInstanceOf((copy as Record<string, unknown>)[a.name] as AnyCtor)

    // Build the same error through the copy (errorFromNative covers every coded class).
    const fromCopy = name === 'WindowSpaceError' ? new copy.WindowSpaceError('ERR_INTERNAL', 'x') : name === 'SlotWriteError' ? new copy.SlotWriteError('ERR_VERSION_CONFLICT', 'x') : copy.errorFromNative(make('x').code, 'x')
    expect(fromCopy).toBeInstanceOf(cls)
    expect(fromCopy).toBeInstanceOf(WindowSpaceError)
    for (const a of ancestors) expect(fromCopy).toBeInstanceOf(a)
    expect(fromCopy instanceof Error).toBe(true)
  })

  it('cross-copy checks still tell unrelated classes apart', async () => {
    copy = await loadCopy()
    expect(new copy.UnknownSymbolError('x') instanceof SlotWriteError).toBe(false)
    expect(new copy.UnknownSymbolError('x') instanceof UnknownPayloadError).toBe(false)
    expect(new copy.VersionConflictError('x') instanceof SlotBusyError).toBe(false)
    expect(new copy.SlotFilledError('x') instanceof SlotRetiredError).toBe(false)
    expect(new UnknownPayloadError('x') instanceof copy.UnknownSymbolError).toBe(false)
    expect(new SlotBusyError('x') instanceof copy.SlotRetiredError).toBe(false)
  })

  it('an error thrown by a real controller is instanceof the second copy classes', async () => {
    copy = await loadCopy()
    const dir = mkdtempSync(join(tmpdir(), 'ws-errors-'))
    dirs.push(dir)
    const { controller } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: 4 })))
    open.push(controller)
    controller.resolveSymbol('SPY')
    controller.markPending('SPY', 0, 'optionTrade')
    let thrown: unknown
    try {
      controller.markPending('SPY', 0, 'optionTrade')
    } catch (e) {
      thrown = e
    }
    expect(thrown).toBeInstanceOf(copy.SlotBusyError)
    expect(thrown).toBeInstanceOf(copy.VersionConflictError)
    expect(thrown).toBeInstanceOf(copy.SlotWriteError)
    expect(thrown).toBeInstanceOf(copy.WindowSpaceError)
    expect(thrown instanceof copy.SlotFilledError).toBe(false)
    expect((thrown as SlotBusyError).code).toBe('ERR_SLOT_BUSY')

    let unknown: unknown
    try {
      controller.markPending('NOPE', 0, 'optionTrade')
    } catch (e) {
      unknown = e
    }
    expect(unknown).toBeInstanceOf(copy.UnknownSymbolError)
    expect(unknown instanceof copy.SlotWriteError).toBe(false)
  })
})

describe('types', () => {
  it('each class has a literal code type', () => {
    expectTypeOf(new SlotBusyError('x').code).toEqualTypeOf<'ERR_SLOT_BUSY'>()
    expectTypeOf(new SlotFilledError('x').code).toEqualTypeOf<'ERR_SLOT_FILLED'>()
    expectTypeOf(new SlotRetiredError('x').code).toEqualTypeOf<'ERR_SLOT_RETIRED'>()
    expectTypeOf(new UnknownSymbolError('x').code).toEqualTypeOf<'ERR_UNKNOWN_SYMBOL'>()
    expectTypeOf(new CorruptStateError('x').code).toEqualTypeOf<'ERR_CORRUPT_STATE'>()
    expectTypeOf(new ClosedError('x').code).toEqualTypeOf<'ERR_CLOSED'>()
    expectTypeOf(new VersionConflictError('x').code).toEqualTypeOf<'ERR_VERSION_CONFLICT' | 'ERR_SLOT_BUSY' | 'ERR_SLOT_FILLED' | 'ERR_SLOT_RETIRED'>()
    expectTypeOf(new WindowSpaceError('ERR_IO', 'x').code).toEqualTypeOf<WindowSpaceErrorCode>()
    // Runtime values agree with the types.
    expect(new SlotBusyError('x').code).toBe('ERR_SLOT_BUSY')
    expect(new ClosedError('x').code).toBe('ERR_CLOSED')
  })

  it('the family relations hold in the type system', () => {
    expectTypeOf<SlotBusyError>().toMatchTypeOf<VersionConflictError>()
    expectTypeOf<SlotRetiredError>().toMatchTypeOf<SlotWriteError>()
    expectTypeOf<VersionConflictError>().toMatchTypeOf<WindowSpaceError>()
    expectTypeOf<UnknownSymbolError>().toMatchTypeOf<Error>()
    expectTypeOf(new CorruptStateError('x').file).toEqualTypeOf<string | undefined>()
    expectTypeOf(new CorruptStateError('x').offset).toEqualTypeOf<number | null | undefined>()
    expectTypeOf(new SlotBusyError('x').slot).toEqualTypeOf<facade.SlotState | undefined>()
    expectTypeOf(errorFromNative).returns.toEqualTypeOf<Error>()
    expect(new SlotBusyError('x')).toBeInstanceOf(VersionConflictError)
  })
})

describe('a batch fill with a hole', () => {
  it('is refused as a whole before anything is filled: an empty place or a non-object is not an item', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ws-errors-'))
    try {
      const { controller: c } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: 8 })))
      const sym = c.resolveSymbol('SPY')
      const pid = c.payloadStores().trades.append({ symbol: sym, windowIdx: 0, slotKind: 'optionTrade', payloadType: 'Parquet', uri: 'a/0', checksum: 7n, size: 1 })
      const claim = c.markPending(sym, 1, 'optionTrade')
      const item = { symbol: sym, windowIdx: 1, slotKind: 'optionTrade' as const, meta: { payloadType: 'Parquet' as const, payloadId: pid, version: claim.version, checksum: 7n } }
      const holed: FillRequest[] = [item]
      holed[2] = item
      for (const [items, at] of [[holed, 1], [[item, null], 1], [[item, 5], 1]] as const) {
        const e = caught(() => c.fillMany(items as unknown as FillRequest[]))
        expect(e).toBeInstanceOf(TypeError)
        expect((e as Error).message).toContain(`items[${at}] must be a FillRequest object`)
        expect(c.getSlot(sym, 1, 'optionTrade')).toMatchObject({ status: 'Pending', version: claim.version })
      }
      c.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
