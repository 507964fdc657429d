// `window-space migrate` through the public API and the built command, on a
// copy of the version-1 state directory kept in the repository
// (fixtures/v1-state, written by the library of that format; what it holds
// is fixtures/v1-state.expected.json): the library refuses it naming the
// command, the command converts it, and every symbol, slot, record and
// artifact is there afterwards; a migration killed (SIGKILL) while it puts
// the converted files in place leaves a directory every bootstrap refuses,
// and the next run finishes it.
import { cpSync, existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'

import { OlderFormatError, WindowSpace, WindowSpaceConfig, WindowSpaceController, migrateStateDir } from '../src/index'
import { failpointEnv, requireFailpoints } from './failpoint-helpers'
import { removeScratch, scratch, ws, wsStart } from './operators-helpers'

const fixture = join(__dirname, 'fixtures', 'v1-state')
const expected = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'v1-state.expected.json'), 'utf8')) as {
  symbols: string[]
  slots: Array<{ symbol: string; window: number; kind: string; status: string; payloadId?: number; claimVersion?: number; checksum?: string }>
  records: Record<string, Array<{ id: number; symbol: string; window: number; uri: string; checksum: string; size: number }>>
}
const schedule = WindowSpace.uniform({ origin: Date.UTC(2026, 10, 24, 14, 30), windowDuration: 60_000, windowCount: 390 })

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) removeScratch(d)
})

function copyOfFixture(): string {
  const root = scratch('migrate')
  dirs.push(root)
  const dir = join(root, 'state')
  cpSync(fixture, dir, { recursive: true })
  return dir
}

function open(dir: string): WindowSpaceController {
  return WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, schedule)).controller
}

/** Every slot and record the fixture lists is in `dir`, and every artifact reads back with its checksum. */
function expectHoldsTheFixture(dir: string): void {
  const c = open(dir)
  try {
    expect(c.symbols()).toEqual(expected.symbols)
    for (const s of expected.slots) {
      const slot = c.getSlot(s.symbol, s.window, s.kind as 'optionTrade')
      expect(slot.status, `${s.symbol} ${s.window} ${s.kind}`).toBe(s.status)
      if (s.status === 'Filled') {
        expect(slot.payloadId).toBe(s.payloadId)
        expect(slot.version).toBe(s.claimVersion! + 1)
        expect(String(slot.checksum)).toBe(s.checksum)
      }
    }
    const stores = c.payloadStores() as unknown as Record<string, { length: number; get(id: number): { uri: string; checksum: bigint; size: number; windowIdx: number } | null }>
    for (const [name, records] of Object.entries(expected.records)) {
      expect(stores[name]!.length, name).toBe(records.length)
      for (const r of records) {
        const got = stores[name]!.get(r.id)!
        expect(got.uri).toBe(r.uri)
        expect(String(got.checksum)).toBe(r.checksum)
        expect(got.size).toBe(r.size)
        expect(got.windowIdx).toBe(r.window)
        expect(readFileSync(join(dir, r.uri)).length).toBe(r.size)
      }
    }
  } finally {
    c.close()
  }
  const v = ws('verify', dir, '--artifacts', '--json')
  expect(v.status, v.stdout + v.stderr).toBe(0)
}

describe('a state directory of format version 1', () => {
  it('is refused by the library and by the tools, naming the command that converts it', () => {
    const dir = copyOfFixture()
    let err: unknown
    try {
      open(dir)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(OlderFormatError)
    const e = err as OlderFormatError
    expect(e.code).toBe('ERR_OLDER_FORMAT')
    expect(e.details.command).toBe(`window-space migrate ${dir}`)
    expect(e.message).toContain(`window-space migrate ${dir}`)
    const inspect = ws('inspect', dir)
    expect(inspect.status).toBe(1)
    expect(inspect.stderr).toContain(`window-space migrate ${dir}`)
    expect(existsSync(join(dir, 'changes.journal'))).toBe(false)
  })

  it('is converted by `window-space migrate`, keeping every symbol, slot, record and artifact', () => {
    const dir = copyOfFixture()
    const dry = ws('migrate', dir, '--dry-run', '--json')
    expect(dry.status, dry.stderr).toBe(0)
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, changed: false, fromVersion: 1, toVersion: 3 })
    expect(() => open(dir)).toThrow(OlderFormatError)
    const r = ws('migrate', dir, '--actor', 'ops', '--reason', 'upgrade')
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toContain('from format version 1 to 3')
    expect(r.stdout).toContain('migrated-from-format-1/')
    expectHoldsTheFixture(dir)
    const audit = readFileSync(join(dir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(audit.filter((l) => l.action === 'migrate')).toMatchObject([{ actor: 'ops', reason: 'upgrade', details: { fromVersion: 1, toVersion: 3 } }])
    expect(migrateStateDir(dir)).toMatchObject({ alreadyCurrent: true, changed: false })
  })

  it('killed while it switches the files in place, is refused until the next run finishes it', async () => {
    requireFailpoints('migrate::file-switched')
    const dir = copyOfFixture()
    const killed = await wsStart(['migrate', dir], { env: failpointEnv('migrate::file-switched=kill') }).done
    expect(killed.signal, killed.stderr).toBe('SIGKILL')
    // The enrichment ledger is converted, the trade ledger not yet.
    expect(() => open(dir)).toThrow(OlderFormatError)
    const again = ws('migrate', dir, '--json')
    expect(again.status, again.stderr).toBe(0)
    expect(JSON.parse(again.stdout)).toMatchObject({ finishesEarlierRun: true, changed: true })
    expectHoldsTheFixture(dir)
  })
})
