// Lost records and lost symbols, through the public API and the built
// `window-space` command: a `trades.map` cut to half its length (power loss
// in the 'buffered' mode, or a restore of files backed up at different
// times) and a `symbols.log` restored from an older backup.
//
// A bootstrap refuses with CorruptStateError naming the file and what was
// lost, changing no byte; `verify` reports it; `repair --dry-run` reports
// and changes nothing; `repair` is refused while an engine process has the
// directory open; `repair` clears the dangling slots, marks the lost ids
// (read as PayloadLostError, never handed out again), names lost symbols,
// and writes intent (naming every slot it clears) and outcome to the audit
// trail; a repair SIGKILLed part way and run again ends where an
// uninterrupted one does; one killed after clearing every slot gets its
// outcome line from the run after it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { cpSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

import {
  CorruptStateError,
  InvalidSymbolError,
  PayloadLostError,
  StateDirInUseError,
  WindowSpace,
  WindowSpaceConfig,
  WindowSpaceController,
  repairStateDir,
  type RepairReport,
  type WindowSpaceController as Controller,
} from '../src/index'
import { failpointEnv, requireFailpoints } from './failpoint-helpers'
import { cli, removeScratch, scratch, snapshot, ws, type Run } from './operators-helpers'

const FILLED = 170
const schedule = WindowSpace.uniform({ origin: 0, windowDuration: 60_000, windowCount: 200 })
const work = scratch('repair')
let seq = 0

afterAll(() => removeScratch(work))

function fill(c: Controller, symbol: string, w: number, slot: 'optionTrade' | 'optionQuote'): number {
  const claim = c.markPending(symbol, w, slot)
  const a = c.writeArtifact(claim, `${w}.txt`, `${symbol} ${slot} ${w}`)
  const payloadId = c.payloadStores()[slot === 'optionTrade' ? 'trades' : 'quotes'].append({ symbol, windowIdx: w, slotKind: slot, payloadType: 'Text', uri: a.uri, checksum: a.checksum, size: a.size })
  c.setRef(symbol, w, slot, { payloadType: 'Text', payloadId, version: claim.version, checksum: a.checksum })
  return payloadId
}

/** SPY optionTrade Filled in windows 0..170 (ids 0..169); AAPL and QQQ optionQuote Filled in windows 0..4. */
function populated(): string {
  const dir = join(work, `d${seq++}`)
  const { controller: c } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, schedule))
  for (const s of ['SPY', 'AAPL', 'QQQ']) c.resolveSymbol(s)
  for (let w = 0; w < FILLED; w++) expect(fill(c, 'SPY', w, 'optionTrade')).toBe(w)
  for (const s of ['AAPL', 'QQQ']) for (let w = 0; w < 4; w++) fill(c, s, w, 'optionQuote')
  c.close()
  return dir
}

/** Cuts trades.map to half its length; returns how many whole records are left. */
function cutTradesInHalf(dir: string): number {
  const p = join(dir, 'trades.map')
  truncateSync(p, Math.floor(statSync(p).size / 2))
  const r = JSON.parse(ws('inspect', dir, '--json').stdout) as { stores: Array<{ store: string; records: number }> }
  return r.stores.find((s) => s.store === 'trades')!.records
}

/** Every file but the lock file and the presence records (not state: an open controller has its own). */
function stateFiles(dir: string): Map<string, Buffer> {
  const m = new Map<string, Buffer>()
  for (const [name, f] of snapshot(dir)) if (name !== 'window-space.lock' && !name.startsWith('presence/')) m.set(name, f.bytes)
  return m
}

function expectUnchanged(before: Map<string, Buffer>, dir: string): void {
  const after = stateFiles(dir)
  expect([...after.keys()].sort()).toEqual([...before.keys()].sort())
  for (const [name, bytes] of before) expect(after.get(name)!.equals(bytes), `${name} changed`).toBe(true)
}

function refusal(dir: string): CorruptStateError {
  try {
    WindowSpaceController.openExisting(dir).controller.close()
  } catch (e) {
    expect(e).toBeInstanceOf(CorruptStateError)
    return e as CorruptStateError
  }
  throw new Error(`${dir} opened`)
}

/** What a repair must leave: symbols, the trades table's length and lost ids, every SPY optionTrade slot, the metrics. */
function logical(dir: string): unknown {
  const { controller: c } = WindowSpaceController.openExisting(dir)
  try {
    const trades = c.payloadStores().trades
    const lost: number[] = []
    for (let id = 0; id < trades.length; id++) {
      try {
        trades.get(id)
      } catch (e) {
        if (!(e instanceof PayloadLostError)) throw e
        lost.push(id)
      }
    }
    const slots = Array.from({ length: 200 }, (_, w) => {
      const s = c.getTradeRow('SPY', w).optionTrade
      return [s.status, s.version, s.payloadId]
    })
    return { symbols: c.symbols(), length: trades.length, lost, slots, metrics: c.slotMetrics() }
  } finally {
    c.close()
  }
}

describe('a mapping table that lost records', () => {
  it('is refused by a bootstrap, which names the table and changes no byte; verify reports it', () => {
    const dir = populated()
    const records = cutTradesInHalf(dir)
    expect(records).toBeGreaterThan(0)
    expect(records).toBeLessThan(FILLED)
    const before = stateFiles(dir)
    const e = refusal(dir)
    expect(e.code).toBe('ERR_CORRUPT_STATE')
    expect(e.file).toBe(join(dir, 'trades.map'))
    expect(e.details).toMatchObject({ records, highestReferencedId: FILLED - 1, danglingSlots: FILLED - records, storesAffected: 1 })
    expect(e.message).toContain('window-space repair')
    expectUnchanged(before, dir)

    const v = ws('verify', dir, '--json')
    expect(v.status).toBe(1)
    const report = JSON.parse(v.stdout) as { problems: Array<Record<string, unknown>> }
    expect(report.problems.filter((p) => p.kind === 'dangling-references')).toEqual([
      expect.objectContaining({ store: 'trades', records, highestReferencedId: FILLED - 1, danglingSlots: FILLED - records }),
    ])
    expect(report.problems.filter((p) => p.kind === 'payload-missing')).toHaveLength(FILLED - records)
    expectUnchanged(before, dir)
  })

  it('repair --dry-run says what it would do and changes nothing', () => {
    const dir = populated()
    const records = cutTradesInHalf(dir)
    const before = stateFiles(dir)
    const r = ws('repair', dir, '--dry-run')
    expect(r.status).toBe(0)
    expect(r.stdout).toContain(`trades.map holds ${records} records, but ${FILLED - records} Filled slots refer to payload ids it does not hold (the highest id referred to is ${FILLED - 1})`)
    expect(r.stdout).toContain(`mark payload ids ${records}..${FILLED - 1} of trades.map lost`)
    expect(r.stdout).toContain('(dry run: nothing changed)')
    const j = JSON.parse(ws('repair', dir, '--dry-run', '--json').stdout) as { changed: boolean; slots: unknown[]; stores: Array<{ markLost: number[] }> }
    expect(j.changed).toBe(false)
    expect(j.slots).toHaveLength(FILLED - records)
    expect(j.stores[0]!.markLost).toEqual([records, FILLED - 1])
    expectUnchanged(before, dir)
  })

  it('repair is refused while an engine process has the directory open, and works once it is gone', async () => {
    const dir = populated()
    const engine: ChildProcess = spawn(
      process.execPath,
      ['-e', `const ws = require(${JSON.stringify(join(__dirname, '..', 'dist', 'index.js'))}); globalThis.held = ws.WindowSpaceController.openExisting(process.argv[1]); console.log('open'); setInterval(() => {}, 1000)`, dir],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    const closed = new Promise((resolve) => engine.on('close', resolve))
    let records: number
    try {
      await new Promise<void>((resolve) => engine.stdout!.on('data', (b: Buffer) => b.toString().includes('open') && resolve()))
      // The table is restored from an older backup under the running engine.
      records = cutTradesInHalf(dir)
      const before = stateFiles(dir)
      const r = ws('repair', dir)
      expect(r.status).toBe(1)
      expect(r.stderr).toContain('ERR_STATE_DIR_IN_USE')
      expect(() => repairStateDir(dir)).toThrow(StateDirInUseError)
      expectUnchanged(before, dir)
    } finally {
      engine.kill('SIGKILL')
      await closed
    }
    const done = repairStateDir(dir, { actor: 'ops-test' })
    expect(done.cleared).toBe(FILLED - records)
  })

  it('repair clears the dangling slots, marks the lost ids and never hands an id out twice', () => {
    const dir = populated()
    const records = cutTradesInHalf(dir)
    const r = ws('repair', dir, '--actor', 'ops-alice', '--reason', 'restored trades.map from an older backup', '--json')
    expect(r.status).toBe(0)
    const report = JSON.parse(r.stdout) as { changed: boolean; cleared: number }
    expect(report).toMatchObject({ changed: true, cleared: FILLED - records })

    const { controller: c } = WindowSpaceController.openExisting(dir)
    try {
      for (let w = 0; w < FILLED; w++) {
        const s = c.getTradeRow('SPY', w).optionTrade
        if (w < records) expect([s.status, s.payloadId]).toEqual(['Filled', w])
        else expect([s.status, s.version]).toEqual(['Cleared', 3])
      }
      const trades = c.payloadStores().trades
      expect(trades.length).toBe(FILLED)
      for (const id of [records, FILLED - 1]) {
        let e: unknown
        try {
          trades.get(id)
        } catch (x) {
          e = x
        }
        expect(e).toBeInstanceOf(PayloadLostError)
        expect((e as PayloadLostError).details).toMatchObject({ store: 'trades.map', payloadId: id })
      }
      expect([...trades].map((x) => x.payloadId)).toEqual(Array.from({ length: records }, (_, i) => i))
      // The next append's id is past every id a slot referred to; a fill naming a lost id is refused.
      expect(fill(c, 'SPY', FILLED, 'optionTrade')).toBe(FILLED)
      const claim = c.markPending('SPY', FILLED + 1, 'optionTrade')
      expect(() => c.setRef('SPY', FILLED + 1, 'optionTrade', { payloadType: 'Text', payloadId: records, version: claim.version, checksum: 1n })).toThrow(PayloadLostError)
      // Engines redo the cleared windows.
      expect(fill(c, 'SPY', records, 'optionTrade')).toBe(FILLED + 1)
    } finally {
      c.close()
    }
    const audit = ws('audit', dir, '--json').stdout.trim().split('\n').map((l) => JSON.parse(l) as { action: string; actor: string; details: { phase: string } })
    const lines = audit.filter((l) => l.action === 'repair')
    expect(lines.map((l) => [l.details.phase, l.actor])).toEqual([
      ['intent', 'ops-alice'],
      ['done', 'ops-alice'],
    ])
    // The intent names every slot it clears and the payload id it referred to.
    const dangling = Array.from({ length: FILLED - records }, (_, i) => [0, records + i, 'optionTrade', records + i])
    expect((lines[0]!.details as unknown as { slots: unknown[] }).slots).toEqual(dangling)
    expect(ws('verify', dir).status).toBe(0)
    const again = ws('repair', dir)
    expect(again.status).toBe(0)
    expect(again.stdout).toContain('nothing to repair')
  })

  it('a repair SIGKILLed part way and run again ends where an uninterrupted one does', async () => {
    const template = populated()
    cutTradesInHalf(template)
    const reference = join(work, `d${seq++}`)
    cpSync(template, reference, { recursive: true })
    expect(ws('repair', reference).status).toBe(0)
    const want = logical(reference)
    let killedPartWay = 0
    // The command starts in about 150 ms and repairs in about 20 ms here:
    // kills spread over its start, its work and after it.
    for (let delayMs = 0; delayMs <= 300; delayMs += 15) {
      const dir = join(work, `d${seq++}`)
      cpSync(template, dir, { recursive: true })
      const child = spawn(process.execPath, [cli, 'repair', dir], { stdio: 'ignore' })
      const ended = new Promise<string>((resolve) => child.on('close', (code, signal) => resolve(signal ?? String(code))))
      await new Promise((resolve) => setTimeout(resolve, delayMs))
      child.kill('SIGKILL')
      const how = await ended
      if (how === 'SIGKILL') killedPartWay++
      // Whatever it was doing: the directory opens only once nothing is left to repair.
      const left = JSON.parse(ws('repair', dir, '--dry-run', '--json').stdout) as { clean: boolean }
      if (!left.clean) expect(refusal(dir).code).toBe('ERR_CORRUPT_STATE')
      const r: Run = ws('repair', dir)
      expect(r.status, r.stderr).toBe(0)
      expect(logical(dir)).toEqual(want)
    }
    expect(killedPartWay).toBeGreaterThan(0)
  }, 120_000)
})

describe('a repair killed after clearing every slot, before its outcome line', () => {
  it('names the slots in its intent, and the run after it writes the outcome line that finishes it', () => {
    requireFailpoints('repair::cleared')
    const dir = populated()
    const records = cutTradesInHalf(dir)
    const killed = spawnSync(process.execPath, [cli, 'repair', dir, '--actor', 'ops-alice'], { encoding: 'utf8', env: failpointEnv('repair::cleared=kill') })
    expect(killed.signal, killed.stderr).toBe('SIGKILL')
    interface Line {
      action: string
      atNs: string
      details: { phase: string; slots: unknown; finishesEarlierRun?: boolean; intentLine?: number; intentAtNs?: string; cleared?: unknown; notChanged?: unknown }
    }
    const repairLines = () => ws('audit', dir, '--json').stdout.trim().split('\n').map((l) => JSON.parse(l) as Line).filter((l) => l.action === 'repair')
    const dangling = Array.from({ length: FILLED - records }, (_, i) => [0, records + i, 'optionTrade', records + i])
    const [intent] = repairLines()
    expect(repairLines()).toHaveLength(1)
    expect(intent!.details).toMatchObject({ phase: 'intent', slots: dangling })
    // The directory opens: nothing is left to repair.
    const { controller: c } = WindowSpaceController.openExisting(dir)
    expect(c.getTradeRow('SPY', records).optionTrade.status).toBe('Cleared')
    c.close()
    const intentLine = ws('audit', dir, '--json').stdout.trim().split('\n').findIndex((l) => (JSON.parse(l) as Line).details?.phase === 'intent') + 1

    const before = stateFiles(dir)
    const dry = ws('repair', dir, '--dry-run')
    expect(dry.status, dry.stderr).toBe(0)
    expect(dry.stdout).toContain('nothing to repair')
    expect(dry.stdout).toContain(`an earlier repair (ops-alice, audit.log line ${intentLine}) was killed before its outcome line; its intent names ${FILLED - records} slots to clear`)
    expect(dry.stdout).toContain('dry run: nothing written')
    expectUnchanged(before, dir)

    const again = ws('repair', dir, '--actor', 'ops-bob')
    expect(again.status, again.stderr).toBe(0)
    expect(again.stdout).toContain('this run wrote the outcome line that finishes it')
    const lines = repairLines()
    expect(lines.map((l) => l.details.phase)).toEqual(['intent', 'done'])
    expect(lines[1]!.details).toEqual({ phase: 'done', finishesEarlierRun: true, intentLine, intentAtNs: intent!.atNs, slots: dangling, cleared: dangling, notChanged: [] })

    // Finished: the next run has nothing to finish, and says so in its report.
    const third = JSON.parse(ws('repair', dir, '--json').stdout) as RepairReport
    expect(third).toMatchObject({ clean: true, changed: false, finishesEarlierRun: null })
    expect(repairLines()).toHaveLength(2)
  })
})

describe('a repair killed after its intent line, then the table restored from a backup', () => {
  it('the run after it finds nothing to repair and writes an outcome line saying the killed run changed nothing', () => {
    requireFailpoints('repair::intent-written')
    const dir = populated()
    const backup = readFileSync(join(dir, 'trades.map'))
    const records = cutTradesInHalf(dir)
    const killed = spawnSync(process.execPath, [cli, 'repair', dir, '--actor', 'ops-alice'], { encoding: 'utf8', env: failpointEnv('repair::intent-written=kill') })
    expect(killed.signal, killed.stderr).toBe('SIGKILL')
    // The operator restores trades.map from a good backup: every Filled slot's record is back.
    writeFileSync(join(dir, 'trades.map'), backup)
    const again = ws('repair', dir, '--actor', 'ops-bob')
    expect(again.status, again.stderr).toBe(0)
    expect(again.stdout).toContain(`its intent names ${FILLED - records} slots to clear: it changed none of them: they refer to records again (restored since)`)
    const done = ws('audit', dir, '--json').stdout.trim().split('\n').map((l) => JSON.parse(l) as { action: string; details?: Record<string, unknown> }).filter((l) => l.action === 'repair').at(-1)!
    const dangling = Array.from({ length: FILLED - records }, (_, i) => [0, records + i, 'optionTrade', records + i])
    expect(done.details).toMatchObject({ phase: 'done', finishesEarlierRun: true, cleared: [], notChanged: dangling })
    // Nothing was changed: every slot is still Filled with its record.
    const { controller: c } = WindowSpaceController.openExisting(dir)
    try {
      for (let w = records; w < FILLED; w++) expect(c.getTradeRow('SPY', w).optionTrade.status).toBe('Filled')
    } finally {
      c.close()
    }
  })
})

describe('a symbol map that lost symbols', () => {
  it('is refused, then repair names the lost ids with placeholders and no id is given twice', () => {
    const dir = populated()
    const mapFile = join(dir, 'symbols.log')
    // An older backup of the log: its header and first record (SPY, id 0, 24 bytes at offset 64).
    expect(readFileSync(mapFile).toString('latin1', 72, 75)).toBe('SPY')
    truncateSync(mapFile, 64 + 24)
    const before = stateFiles(dir)
    const e = refusal(dir)
    expect(e.file).toBe(mapFile)
    expect(e.details).toMatchObject({ symbols: 1, highestSymbolId: 2, chunks: 2 })
    expectUnchanged(before, dir)
    const v = JSON.parse(ws('verify', dir, '--json').stdout) as { problems: Array<Record<string, unknown>> }
    expect(v.problems.filter((p) => p.kind === 'symbols-missing')).toEqual([expect.objectContaining({ symbols: 1, highestSymbolId: 2, chunks: 2 })])
    const dry = ws('repair', dir, '--dry-run')
    expect(dry.stdout).toContain('name the missing symbol ids with placeholder symbols: 1 lost-symbol-1, 2 lost-symbol-2')
    expectUnchanged(before, dir)

    expect(ws('repair', dir).status).toBe(0)
    const grid = ws('grid', dir, '--symbol', 'lost-symbol-2', '--to', '8', '--slot', 'optionQuote', '--no-color')
    expect(grid.status).toBe(0)
    expect(grid.stdout).toContain('FFFF....')
    const { controller: c } = WindowSpaceController.openExisting(dir)
    try {
      expect(c.symbols()).toEqual(['SPY', 'lost-symbol-1', 'lost-symbol-2'])
      expect(c.resolveSymbol('AAPL')).toBe(3)
      expect(() => c.resolveSymbol('lost-symbol-9')).toThrow(InvalidSymbolError)
    } finally {
      c.close()
    }
    expect(spawnSync(process.execPath, [cli, 'verify', dir]).status).toBe(0)
  })
})
