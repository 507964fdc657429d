// Payload URIs are paths relative to the state directory and cannot leave
// it; symbols cannot hold characters that make them look like another
// symbol. Both are refused with a typed error, and nothing is written.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { InvalidArgumentError, InvalidSymbolError, PathEscapesStateDirError, VersionConflictError, WindowSpace, WindowSpaceConfig, WindowSpaceController } from '../src/index'
import { caught } from './helpers'

const dir = mkdtempSync(join(tmpdir(), 'ws-uris-'))
let c: WindowSpaceController
beforeAll(() => {
  c = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: 10 }))).controller
  c.resolveSymbol('SPY')
})
afterAll(() => {
  c.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('payload URIs', () => {
  it.each(['../../etc/passwd', '/etc/passwd', 'artifacts/../../x', 'artifacts/a\0b', 'a//b', './a', 'a/..', '', 'a\nb'])('%j → PathEscapesStateDirError, nothing appended', (uri) => {
    const before = readFileSync(join(dir, 'trades.map'))
    const e = caught(() => c.payloadStores().trades.append({ symbol: 'SPY', windowIdx: 0, slotKind: 'optionTrade', payloadType: 'Binary', uri, checksum: 1n, size: 1 }))
    expect(e).toBeInstanceOf(PathEscapesStateDirError)
    expect((e as PathEscapesStateDirError).code).toBe('ERR_PATH_ESCAPES_STATE_DIR')
    expect(readFileSync(join(dir, 'trades.map'))).toEqual(before)
  })

  it('a URI like those writeArtifact returns is accepted', () => {
    const a = c.writeArtifact('SPY/0/trades.bin', Buffer.from('x'))
    expect(c.payloadStores().trades.append({ symbol: 'SPY', windowIdx: 0, slotKind: 'optionTrade', payloadType: 'Binary', uri: a.uri, checksum: a.checksum, size: a.size })).toBe(0)
  })
})

describe('records naming a claim\'s artifact', () => {
  const record = (windowIdx: number, uri: string) => ({ symbol: 'SPY', windowIdx, slotKind: 'optionTrade' as const, payloadType: 'Json' as const, uri, checksum: 1n, size: 1 })

  it('a record for another slot than the claim\'s → InvalidArgumentError, nothing appended', () => {
    const claim = c.markPending('SPY', 5, 'optionTrade')
    const a = c.writeArtifact(claim, 'd.json', 'w5 output')
    c.markPending('SPY', 6, 'optionTrade')
    const before = readFileSync(join(dir, 'trades.map'))
    const e = caught(() => c.payloadStores().trades.append(record(6, a.uri)))
    expect(e).toBeInstanceOf(InvalidArgumentError)
    expect((e as InvalidArgumentError).message).toContain('belongs to a claim of SPY window 5 optionTrade')
    expect(readFileSync(join(dir, 'trades.map'))).toEqual(before)
  })

  it('a record of a claim that is over (the slot claimed again since) → VersionConflictError, nothing appended', () => {
    const first = c.markPending('SPY', 7, 'optionTrade', { leaseMs: 0 })
    const a = c.writeArtifact(first, 'd.json', 'first attempt')
    const second = c.markPending('SPY', 7, 'optionTrade')
    expect(second.version).toBe(first.version + 1)
    const before = readFileSync(join(dir, 'trades.map'))
    const e = caught(() => c.payloadStores().trades.append(record(7, a.uri)))
    expect(e).toBeInstanceOf(VersionConflictError)
    expect(readFileSync(join(dir, 'trades.map'))).toEqual(before)
    // The live claim's own artifact records as usual.
    const b = c.writeArtifact(second, 'd.json', 'second attempt')
    expect(c.payloadStores().trades.append(record(7, b.uri))).toBeTypeOf('number')
  })
})

describe('paths an engine chooses for writeArtifact', () => {
  it.each([
    ['a claim\'s path', 'SPY/optionTrade/5/v7/out.json', "shape of a claim's artifact"],
    ['a claim\'s path, written unusually', './SPY//greeks/0/v1/g.parquet', "shape of a claim's artifact"],
    ['an atomic write\'s temp file', 'SPY/.w5.json.tmp-4000000-1', 'temp file'],
  ])('%s (%j) → InvalidArgumentError, nothing written: gc judges such a path by its shape alone', (_what, rel, message) => {
    const e = caught(() => c.writeArtifact(rel, 'data'))
    expect(e).toBeInstanceOf(InvalidArgumentError)
    expect((e as InvalidArgumentError).message).toContain(message)
    expect(existsSync(join(dir, 'artifacts', rel))).toBe(false)
  })
})

describe('symbols that would look like another symbol', () => {
  it.each(['SPY\u200B', '\u200BSPY', 'S\u200DPY', 'SPY\u2060', 'SPY\uFEFF', 'SP\u00ADY', 'SPY\u202E', 'SPY\u2066', 'S\u00A0PY', 'SPY\uFE0F', 'SPY\u0007'])('%j → InvalidSymbolError, no symbol added', (s) => {
    expect(caught(() => c.resolveSymbol(s))).toBeInstanceOf(InvalidSymbolError)
    expect(c.symbols()).toEqual(['SPY'])
  })
})
