// The watch guarantee under SIGKILL: while engine processes claim,
// append and fill and are killed at random moments, a watcher in another
// process sees every change an engine saw succeed — or is told of a gap.
// Never a silently missed change.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

import { WindowSpace, WindowSpaceConfig, WindowSpaceController } from '../src/index'

const ENGINE = join(__dirname, 'fixtures', 'crash-engine.mjs')
const RECORDER = join(__dirname, 'fixtures', 'watch-recorder.mjs')
const WINDOWS = 20_000
const ENGINES = 3
const KILLS = Number(process.env.WS_WATCH_CRASH_KILLS ?? 12)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const dir = mkdtempSync(join(tmpdir(), 'ws-watch-crash-'))
const acksPath = `${dir}.acks`
const seenPath = `${dir}.seen`
afterAll(() => {
  rmSync(dir, { recursive: true, force: true })
  rmSync(acksPath, { force: true })
  rmSync(seenPath, { force: true })
})

function start(script: string, args: object): { child: ChildProcess; ready: Promise<void> } {
  const child = spawn(process.execPath, [script, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr.on('data', (d) => (err += d))
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => String(d).includes('ready') && resolve())
    child.once('exit', (code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`${script} exited (${code}):\n${err}`))))
  })
  return { child, ready }
}

const exited = (c: ChildProcess) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)))

function lines(path: string): string[] {
  if (!existsSync(path)) return []
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.length > 0)
}

describe('watch() under SIGKILL', () => {
  it(`sees every acknowledged claim and fill of engines killed ${KILLS} times, or reports a gap`, async () => {
    const schedule = WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: WINDOWS })
    const { controller: c } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, schedule))
    c.resolveSymbol('CRASH')
    const recorder = start(RECORDER, { stateDir: dir, log: seenPath })
    await recorder.ready
    let seed = 1
    const spawnEngine = (e: number) => start(ENGINE, { stateDir: dir, engine: e, windows: WINDOWS, durability: 'buffered', leaseMs: 150, log: acksPath, seed: seed++ })
    const engines = Array.from({ length: ENGINES }, (_, e) => spawnEngine(e))
    for (let k = 0; k < KILLS; k++) {
      await sleep(40 + Math.floor(Math.random() * 160))
      const e = k % ENGINES
      engines[e]!.child.kill('SIGKILL')
      await exited(engines[e]!.child)
      engines[e] = spawnEngine(e)
    }
    await sleep(100)
    for (const e of engines) e.child.kill('SIGKILL')
    await Promise.all(engines.map((e) => exited(e.child)))

    // A last change, after every engine is dead: once the recorder has seen
    // it, it has read (or reported as a gap) every entry before it.
    const marker = c.retire('CRASH', WINDOWS - 1, 'optionTrade')
    const seenMarker = () => lines(seenPath).some((l) => l.startsWith('c ') && l.endsWith(` ${WINDOWS - 1} Retired ${marker.version}`))
    for (let i = 0; i < 3000 && !seenMarker(); i++) await sleep(20)
    expect(seenMarker(), 'the recorder never saw the final change').toBe(true)
    recorder.child.kill('SIGKILL')
    await exited(recorder.child)
    c.close()

    const seen = new Set<string>()
    const gaps: string[] = []
    for (const l of lines(seenPath)) {
      const [t, ...f] = l.split(' ')
      if (t === 'c') seen.add(`${f[1]} ${f[2]} ${f[3]}`) // window, status, version
      else gaps.push(`${f[0]}..${f[1]}`) // fromSeq..resumeSeq
    }
    expect(seen.has(`${WINDOWS - 1} Retired ${marker.version}`)).toBe(true)
    const acks = lines(acksPath)
      .filter((l) => l.endsWith('}'))
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as { op: string; w: number; v: number }]
        } catch {
          return []
        }
      })
    const expected = [
      ...acks.filter((a) => a.op === 'claim').map((a) => `${a.w} Pending ${a.v}`),
      ...acks.filter((a) => a.op === 'fill').map((a) => `${a.w} Filled ${a.v + 1}`),
      ...acks.filter((a) => a.op === 'clear').map((a) => `${a.w} Cleared ${a.v + 1}`),
    ]
    expect(acks.filter((a) => a.op === 'fill').length).toBeGreaterThan(50) // the engines really worked
    const missed = expected.filter((x) => !seen.has(x))
    // Without a reported gap, nothing may be missing; with one, what is
    // missing must be few enough to fit in the gaps (each gap stands for at
    // least one change the recorder could not vouch for).
    if (gaps.length === 0) expect(missed).toEqual([])
    else expect(missed.length).toBeLessThanOrEqual(gaps.reduce((n, g) => n + Number(g.split('..')[1]) - Number(g.split('..')[0]), 0))
  }, 180_000)
})
