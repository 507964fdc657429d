// Adding symbols from several processes, with one adder stopped (SIGSTOP)
// or killed (SIGKILL) at each crash point of an add: the core's
// symbols::record-part-written (half of the record written at the end of
// symbols.log), symbols::appended (the record whole; the adder's own map not
// updated) and controller::symbol-added (the locks released; the shared
// symbol count not raised), beside a controller in this process that stays open.
//
// Killed there: the other processes add and look up on, a half-written
// record is never taken for a symbol and its id goes to the next symbol
// added, a restart reads every completed symbol with its id, and no id is
// given twice. Stopped while it holds the gate: lookups go on, and three
// processes adding the same name wait for it, then all four get one id.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'

import { UnknownSymbolError, WindowSpace, WindowSpaceConfig, WindowSpaceController } from '../src/index'
import { failpointEnv, processState, requireFailpoints, sleep, stoppedAt } from './failpoint-helpers'

const POINTS = ['symbols::record-part-written', 'symbols::appended', 'controller::symbol-added'] as const
/** Points where the record is whole in the log. */
const WHOLE: readonly string[] = ['symbols::appended', 'controller::symbol-added']
const SCHEDULE = WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: 64 })
const ADDER = join(__dirname, 'fixtures', 'symbol-adder.mjs')

interface Line {
  ready?: boolean
  symbol?: string
  id?: number
  error?: string
  done?: boolean
}
interface Adder {
  child: ChildProcess
  stopped: Promise<void>
  /** Resolves once it printed { ready: true } (started with `go`). */
  ready: Promise<void>
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; lines: Line[]; stderr: string }>
}

let dir: string
const opened: WindowSpaceController[] = []
const adders: Adder[] = []
beforeAll(() => requireFailpoints(...POINTS))
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ws-symbol-points-'))
})
afterEach(() => {
  for (const a of adders.splice(0)) a.child.kill('SIGKILL')
  for (const c of opened.splice(0)) c.close()
  rmSync(dir, { recursive: true, force: true })
})

function open(): WindowSpaceController {
  const { controller } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, SCHEDULE))
  opened.push(controller)
  return controller
}

function closeAll(): void {
  for (const c of opened.splice(0)) c.close()
}

/**
 * A process resolving `names` in order; with `spec` (WINDOW_SPACE_FAILPOINTS)
 * it stops where that says; with `go` it opens the directory, then waits for
 * that file before it adds.
 */
function adder(names: string[], spec?: string, go?: string): Adder {
  const child = spawn(process.execPath, [ADDER, JSON.stringify({ stateDir: dir, names, go })], { stdio: ['ignore', 'pipe', 'pipe'], env: failpointEnv(spec) })
  let out = ''
  let stderr = ''
  let onReady = () => {}
  const ready = new Promise<void>((resolve) => (onReady = resolve))
  child.stdout.on('data', (d) => {
    out += d
    if (out.includes('{"ready":true}')) onReady()
  })
  child.stderr.on('data', (d) => (stderr += d))
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; lines: Line[]; stderr: string }>((resolve) =>
    child.once('close', (code, signal) =>
      resolve({
        code,
        signal,
        lines: out
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Line),
        stderr,
      }),
    ),
  )
  const stopped = spec ? stoppedAt(child, () => `an adder to stop at ${spec}:\n${out}\n${stderr}`) : Promise.resolve()
  stopped.catch(() => undefined)
  const a = { child, stopped, ready, exit }
  adders.push(a)
  return a
}

/** The ids an adder that ran to its end printed, by name. */
async function finished(a: Adder): Promise<Record<string, number>> {
  const { code, lines, stderr } = await a.exit
  expect([code, lines.at(-1)], stderr).toEqual([0, { done: true }])
  return Object.fromEntries(lines.filter((l) => l.symbol !== undefined).map((l) => [l.symbol!, l.id!]))
}

/** Resolves once the process sleeps in a file lock (`flock`, per /proc/<pid>/wchan). */
async function inFlock(a: Adder): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    expect(a.child.exitCode, 'the racer ended before it waited for the gate').toBeNull()
    const wchan = readFileSync(`/proc/${a.child.pid}/wchan`, 'utf8')
    if (processState(a.child.pid!) === 'S' && wchan.includes('lock')) return
    await sleep(10)
  }
  throw new Error('the racer never waited in a file lock')
}

function idOf(c: WindowSpaceController, name: string): number | undefined {
  try {
    return c.symbolId(name)
  } catch (e) {
    expect(e).toBeInstanceOf(UnknownSymbolError)
    return undefined
  }
}

describe.each(POINTS)('an adder killed at %s', (point) => {
  it('leaves the others adding and looking up; a restart reads every completed symbol with its id; no id is given twice', async () => {
    const c = open()
    expect(c.resolveSymbol('BASE')).toBe(0)
    const a = adder(['A1', 'A2'], `${point}=stop(2)`)
    await a.stopped
    a.child.kill('SIGKILL')
    const { signal, lines } = await a.exit
    expect(signal).toBe('SIGKILL')
    expect(lines).toEqual([{ symbol: 'A1', id: 1 }])
    const whole = WHOLE.includes(point)

    // This process reads on: the whole record is a symbol, half of one is none.
    expect(idOf(c, 'A1')).toBe(1)
    expect(idOf(c, 'A2')).toBe(whole ? 2 : undefined)
    expect(c.symbols()).toEqual(whole ? ['BASE', 'A1', 'A2'] : ['BASE', 'A1'])

    // Another process adds on and finds what exists; this one sees its symbols.
    const b = await finished(adder(['B1', 'A2', 'A1']))
    expect(b).toEqual(whole ? { B1: 3, A2: 2, A1: 1 } : { B1: 2, A2: 3, A1: 1 })
    expect(idOf(c, 'B1')).toBe(b.B1)
    expect(idOf(c, 'A2')).toBe(b.A2)
    expect(c.resolveSymbol('C1')).toBe(4)

    // A restart (alone) reads every completed symbol with its id.
    closeAll()
    const again = open()
    const expected = whole ? ['BASE', 'A1', 'A2', 'B1', 'C1'] : ['BASE', 'A1', 'B1', 'A2', 'C1']
    expect(again.symbols()).toEqual(expected)
    expect(new Set(again.symbols()).size).toBe(expected.length)
    for (const [i, name] of expected.entries()) expect(again.symbolId(name)).toBe(i)
    expect(again.resolveSymbol('D1')).toBe(5)
  })
})

describe('an adder stopped with half its record written (the gate held)', () => {
  it('holds up only adds: lookups go on, and four processes adding the same name get one id', async () => {
    const c = open()
    expect(c.resolveSymbol('BASE')).toBe(0)
    // Three processes open the directory first, to add the same name once told.
    const go = join(dir, 'go')
    const racers = [adder(['RACE'], undefined, go), adder(['RACE'], undefined, go), adder(['RACE'], undefined, go)]
    await Promise.all(racers.map((r) => r.ready))
    const a = adder(['RACE'], 'symbols::record-part-written=stop')
    await a.stopped
    // Lookups, misses and known symbols go on.
    expect(idOf(c, 'BASE')).toBe(0)
    expect(idOf(c, 'RACE')).toBeUndefined()
    expect(c.symbols()).toEqual(['BASE'])
    // The others miss the name (half a record is none) and wait for the gate the stopped adder holds.
    writeFileSync(go, '')
    for (const r of racers) await inFlock(r)
    a.child.kill('SIGCONT')
    const ids = await Promise.all([a, ...racers].map(finished))
    expect(ids).toEqual([{ RACE: 1 }, { RACE: 1 }, { RACE: 1 }, { RACE: 1 }])
    expect(idOf(c, 'RACE')).toBe(1)
    expect(c.symbols()).toEqual(['BASE', 'RACE'])
  })
})

describe('four processes adding the same names at once', () => {
  it('agree on every id, and the ids are dense', async () => {
    const c = open()
    const names = Array.from({ length: 300 }, (_, i) => `S${i}`)
    const rotated = (k: number) => [...names.slice(k), ...names.slice(0, k)]
    const all = await Promise.all([0, 75, 150, 225].map((k) => finished(adder(rotated(k)))))
    for (const ids of all.slice(1)) expect(ids).toEqual(all[0])
    expect(Object.values(all[0]!).sort((x, y) => x - y)).toEqual(names.map((_, i) => i))
    for (const n of names) expect(c.symbolId(n)).toBe(all[0]![n])
  })
})
