// The operators' tools at each step of what they do, run through the built
// command line as a child process beside a controller in this process that
// stays open (an engine at work): `retire` (admin::intent-written,
// admin::slot-changed, admin::outcome-written) and `gc --delete`
// (gc::intent-audited, gc::log-written, gc::collect-logged, gc::trashed,
// gc::deleted, gc::restored, gc::records-marked). The child gets
// WINDOW_SPACE_FAILPOINTS, which the addon arms when it loads.
//
// Killed there (SIGKILL): every slot that changed has its intent in the
// audit trail; nothing live is lost (verify --artifacts finds no problem);
// the counters are repaired; a watcher gets every change; a controller
// opened after agrees; and the same command run again finishes the job.
// Stopped there for longer than the engine's leases: the engine claims,
// takes over, fills and waits as usual, verify and another gc run, and the
// tool, continued, finishes correctly.
import { spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, rmSync, utimesSync } from 'node:fs'
import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'

import { checksum64, verifyStateDir, WindowSpaceController, type SlotChange } from '../src/index'
import { failpointEnv, processState, requireFailpoints, sleep, stoppedAt } from './failpoint-helpers'
import { cli, jsonLines, makeState, removeScratch, scratch, ws, wsStart, type Run } from './operators-helpers'

const ADMIN_POINTS = ['admin::intent-written', 'admin::slot-changed', 'admin::outcome-written'] as const
const GC_POINTS = ['gc::intent-audited', 'gc::log-written', 'gc::collect-logged', 'gc::trashed', 'gc::deleted', 'gc::restored', 'gc::records-marked'] as const
const LEASE_MS = 300

let work: string
let seq = 0
const opened: WindowSpaceController[] = []
beforeAll(() => {
  if (!existsSync(cli)) throw new Error('dist/cli.js is missing: run `npm run build:debug` first')
  requireFailpoints(...ADMIN_POINTS, ...GC_POINTS)
  work = scratch('crash-points-ops')
})
afterEach(() => {
  for (const c of opened.splice(0)) c.close()
})
afterAll(() => removeScratch(work))

const hoursAgo = (h: number) => new Date(Date.now() - h * 3_600_000)

/** A state directory of symbol SPY, and a controller on it that stays open (the survivor). */
function world(): { dir: string; c: WindowSpaceController } {
  const dir = makeState(join(work, `d${seq++}`), ['SPY'], 32)
  const { controller: c } = WindowSpaceController.openExisting(dir)
  opened.push(c)
  return { dir, c }
}

/** Claims, writes the claim's artifact, records it and fills the slot; returns the artifact's path. */
function fill(c: WindowSpaceController, w: number, text: string, leaseMs?: number): string {
  const claim = c.markPending('SPY', w, 'optionTrade', leaseMs === undefined ? {} : { leaseMs })
  const a = c.writeArtifact(claim, 'a.json', text)
  publish(c, w, claim, a)
  return a.path
}

/** Records a claim's artifact in the trades table and fills the slot with it (the engine's steps 4 and 5). */
function publish(c: WindowSpaceController, w: number, claim: { version: number }, a: { uri: string; checksum: bigint; size: number }): void {
  const id = c.payloadStores().trades.append({ symbol: 'SPY', windowIdx: w, slotKind: 'optionTrade', payloadType: 'Json', uri: a.uri, checksum: a.checksum, size: a.size })
  c.setRef('SPY', w, 'optionTrade', { payloadType: 'Json', payloadId: id, version: claim.version, checksum: a.checksum })
}

/** Runs the command with `spec` armed: killed there (`kill`), or stopped there (`stop`), returned once stopped. */
function run(args: string[], spec: string): { child: ReturnType<typeof wsStart>['child']; done: Promise<Run>; stopped: Promise<void> } {
  const r = wsStart(args, { env: failpointEnv(spec) })
  let out = ''
  r.child.stdout?.on('data', (b: Buffer) => (out += b.toString()))
  r.child.stderr?.on('data', (b: Buffer) => (out += b.toString()))
  const stopped = spec.includes('=stop') ? stoppedAt(r.child, () => `window-space ${args.join(' ')} with ${spec}:\n${out}`) : Promise.resolve()
  stopped.catch(() => undefined)
  return { ...r, stopped }
}

async function killedAt(args: string[], spec: string): Promise<void> {
  const r = await run(args, spec).done
  expect(r.signal, `${args.join(' ')} with ${spec}: ${r.stderr}`).toBe('SIGKILL')
}

/** The shared counters become an exact count (a dead tool's drift repaired within a few calls). */
function countsRepaired(c: WindowSpaceController, when: string): void {
  const exact = c.recountSlots()
  for (let i = 0; i < 200 && !isDeepStrictEqual(c.slotMetrics(), exact); i++);
  expect(c.slotMetrics(), when).toEqual(exact)
}

/** Every invariant from the survivor, from verify (artifacts read too) and from a controller opened after. */
function invariants(dir: string, c: WindowSpaceController, when: string): void {
  countsRepaired(c, when)
  const v = verifyStateDir(dir, { artifacts: true })
  expect(v.problems, when).toEqual([])
  const { controller: after } = WindowSpaceController.openExisting(dir)
  try {
    countsRepaired(after, `${when}, in a controller opened after`)
  } finally {
    after.close()
  }
}

/** The next `n` changes of SPY's option trades from journal position `seq` (a gap fails the test). */
async function changes(c: WindowSpaceController, seq: number, n: number): Promise<SlotChange[]> {
  const out: SlotChange[] = []
  const it = c.watch({ fromSeq: seq, symbols: ['SPY'], slotKinds: ['optionTrade'] })
  try {
    while (out.length < n) out.push((await it.next()).value as SlotChange)
  } finally {
    await it.return()
  }
  return out
}

interface AuditLine {
  action: string
  actor: string
  phase?: string
  from?: number
  to?: number
  changed?: [number, string, number, number][]
  details?: Record<string, unknown>
}
const audit = (dir: string) => jsonLines<AuditLine>(join(dir, 'audit.log'))

// ---- retire ---------------------------------------------------------------------------------

/** Windows 0..6 of SPY's option trades: 0..3 Filled, 4 and 5 Pending (the engine's), 6.. Empty. */
function adminWorld(): { dir: string; c: WindowSpaceController; seq: number } {
  const { dir, c } = world()
  for (let w = 0; w < 4; w++) fill(c, w, `filled ${w}`)
  c.markPending('SPY', 4, 'optionTrade', { leaseMs: 600_000 })
  c.markPending('SPY', 5, 'optionTrade', { leaseMs: 600_000 })
  return { dir, c, seq: c.journalHead() }
}
const RETIRE = (dir: string) => ['retire', dir, '--symbol', 'SPY', '--slot', 'optionTrade', '--from', '0', '--to', '6', '--yes', '--actor', 'ops']
const retired = (c: WindowSpaceController) => [0, 1, 2, 3, 4, 5].filter((w) => c.getSlot('SPY', w, 'optionTrade').status === 'Retired')

describe('retire killed at each step', () => {
  it.each([
    ['admin::intent-written', 'kill', []],
    ['admin::slot-changed', 'kill(3)', [0, 1, 2]],
    ['admin::outcome-written', 'kill', [0, 1, 2, 3, 4, 5]],
  ] as const)('killed at %s (%s): every change is announced, and retire run again finishes', async (point, action, done: readonly number[]) => {
    const { dir, c, seq } = adminWorld()
    await killedAt(RETIRE(dir), `${point}=${action}`)
    expect(retired(c)).toEqual(done)
    // The intent was written before any slot changed; the outcome only once all had.
    const lines = audit(dir)
    expect(lines.map((l) => [l.action, l.actor, l.phase ?? 'outcome', l.from, l.to])).toEqual([
      ['retireRange', 'ops', 'intent', 0, 6],
      ...(point === 'admin::outcome-written' ? [['retireRange', 'ops', 'outcome', 0, 6]] : []),
    ])
    // A watcher gets every change that was made.
    expect((await changes(c, seq, done.length)).map((ch) => [ch.windowIdx, ch.to])).toEqual(done.map((w) => [w, 'Retired']))
    invariants(dir, c, `retire killed at ${point}`)
    // Run again, it retires what is left and says what it replaced.
    const again = ws(...RETIRE(dir))
    expect([again.status, again.stderr]).toEqual([0, ''])
    expect(retired(c)).toEqual([0, 1, 2, 3, 4, 5])
    const last = audit(dir).slice(-2)
    if (done.length < 6) {
      expect(last.map((l) => l.phase ?? 'outcome')).toEqual(['intent', 'outcome'])
      expect(last[1]!.changed!.map((x) => x[0])).toEqual([0, 1, 2, 3, 4, 5].filter((w) => !done.includes(w)))
    }
    invariants(dir, c, `retire run again after a kill at ${point}`)
  })
})

describe('retire stopped at each step for longer than the engine’s leases', () => {
  it.each(ADMIN_POINTS)('stopped at %s: the engine and verify go on; continued, it finishes', async (point) => {
    const { dir, c, seq } = adminWorld()
    const r = run(RETIRE(dir), `${point}=stop`)
    await r.stopped
    // The engine goes on: a claim whose lease runs out while the tool is stopped is taken over; fills and waits work.
    c.markPending('SPY', 10, 'optionTrade', { leaseMs: LEASE_MS })
    await sleep(3 * LEASE_MS)
    expect(c.markPending('SPY', 10, 'optionTrade').version).toBe(2)
    const waited = c.waitFor('SPY', 11, ['optionTrade'], { timeoutMs: 60_000 })
    fill(c, 11, 'beside a stopped retire')
    expect((await waited)[0]!.status).toBe('Filled')
    const v = ws('verify', dir, '--artifacts')
    expect([v.status, v.stderr]).toEqual([0, ''])
    r.child.kill('SIGCONT')
    const done = await r.done
    expect([done.status, done.stderr]).toEqual([0, ''])
    expect(retired(c)).toEqual([0, 1, 2, 3, 4, 5])
    expect(audit(dir).filter((l) => l.action === 'retireRange').map((l) => l.phase ?? 'outcome')).toEqual(['intent', 'outcome'])
    // Six retires, and the engine's claim, takeover, claim and fill meanwhile.
    const seen = (await changes(c, seq, 10)).filter((ch) => ch.to === 'Retired')
    expect(seen.map((ch) => ch.windowIdx)).toEqual([0, 1, 2, 3, 4, 5])
    invariants(dir, c, `retire stopped at ${point}`)
  })
})

// ---- gc --delete ------------------------------------------------------------------------------

/**
 * Window 0 Filled (its artifact live); windows 1..3 filled, then
 * force-cleared (their claim-bound artifacts garbage); window 4 filled,
 * its artifact lost, then force-cleared (a record without its file).
 */
function gcWorld(): { dir: string; c: WindowSpaceController; live: string; garbage: string[] } {
  const { dir, c } = world()
  const live = fill(c, 0, 'live')
  const garbage = [1, 2, 3].map((w) => fill(c, w, `garbage ${w}`))
  rmSync(fill(c, 4, 'lost'))
  for (const w of [1, 2, 3, 4]) c.forceClear('SPY', w, 'optionTrade')
  return { dir, c, live, garbage }
}
const GC = (dir: string) => ['gc', dir, '--delete', '--actor', 'ops']

/** Collections gc.log announces without an ending. */
function unfinished(dir: string): string[] {
  const log = jsonLines<{ op: string; id?: string; uri?: string }>(join(dir, 'gc.log'))
  const ended = new Set(log.filter((e) => e.op === 'done' || e.op === 'abort').map((e) => e.id))
  return log.filter((e) => e.op === 'collect' && !ended.has(e.id)).map((e) => e.uri!)
}
const trash = (dir: string) => (existsSync(join(dir, 'gc-trash')) ? readdirSync(join(dir, 'gc-trash')) : [])
const gcPhases = (dir: string) => audit(dir).filter((l) => l.action === 'gc').map((l) => String(l.details?.phase))

/** The live artifact is whole, every garbage file is gone, nothing is left in gc-trash or unfinished. */
function collected(dir: string, live: string, garbage: string[], when: string): void {
  expect(checksum64(readFileSync(live)), when).toBe(checksum64('live'))
  expect(garbage.filter((g) => existsSync(g)), when).toEqual([])
  expect(trash(dir), when).toEqual([])
  expect(unfinished(dir), when).toEqual([])
  // Every record of a collected file, and the one whose file was lost, is marked collected: nothing is left to collect.
  const next = JSON.parse(ws('gc', dir, '--json').stdout) as { records: unknown[]; files: unknown[] }
  expect([next.records, next.files], when).toEqual([[], []])
}

describe('gc --delete killed at each step', () => {
  it.each([
    ['gc::intent-audited', 'kill', 0],
    ['gc::log-written', 'kill', 1],
    ['gc::collect-logged', 'kill(2)', 1],
    ['gc::trashed', 'kill(2)', 1],
    ['gc::deleted', 'kill(2)', 1],
    ['gc::records-marked', 'kill', 0],
  ] as const)('killed at %s (%s): its intent is in the audit trail, nothing live is lost, and gc run again finishes', async (point, action, left) => {
    const { dir, c, live, garbage } = gcWorld()
    await killedAt(GC(dir), `${point}=${action}`)
    expect(gcPhases(dir)).toEqual(['intent'])
    expect(unfinished(dir)).toHaveLength(left)
    expect(trash(dir)).toHaveLength(point === 'gc::trashed' ? 1 : 0)
    expect(checksum64(readFileSync(live))).toBe(checksum64('live'))
    invariants(dir, c, `gc killed at ${point}`)
    const again = ws(...GC(dir), '--json')
    expect([again.status, again.stderr]).toEqual([0, ''])
    expect((JSON.parse(again.stdout) as { finished: unknown[] }).finished).toHaveLength(left)
    expect(gcPhases(dir)).toEqual(['intent', ...(left ? ['finish'] : []), 'intent', 'done'])
    collected(dir, live, garbage, `gc run again after a kill at ${point}`)
    invariants(dir, c, `gc run again after a kill at ${point}`)
  })

  it('killed at gc::restored (a file that became live again put back): gc run again ends the collection and keeps the file', async () => {
    const { dir, c } = world()
    const untied = c.writeArtifact('SPY/untied.json', 'untied').path
    utimesSync(untied, hoursAgo(2), hoursAgo(2))
    const r = run(GC(dir), 'gc::trashed=stop;gc::restored=kill')
    await r.stopped
    expect(existsSync(untied)).toBe(false)
    // An engine claims a slot: an untied file may be its output now.
    const claim = c.markPending('SPY', 9, 'optionTrade')
    r.child.kill('SIGCONT')
    expect((await r.done).signal).toBe('SIGKILL')
    expect(readFileSync(untied, 'utf8')).toBe('untied')
    expect(unfinished(dir)).toEqual(['artifacts/SPY/untied.json'])
    invariants(dir, c, 'gc killed at gc::restored')
    const again = ws(...GC(dir), '--json')
    expect([again.status, again.stderr]).toEqual([0, ''])
    expect(unfinished(dir)).toEqual([])
    expect(readFileSync(untied, 'utf8')).toBe('untied')
    // Once no slot is Pending, it is garbage again and goes.
    c.clearSlot('SPY', 9, 'optionTrade', claim)
    expect(ws(...GC(dir)).status).toBe(0)
    expect(existsSync(untied)).toBe(false)
    invariants(dir, c, 'gc run again after a kill at gc::restored')
  })
})

describe('a collection a killed gc left, finished by the next gc --delete', () => {
  it('an untied file an engine wrote again at the same path while gc moved it: put back while a slot is Pending', async () => {
    const { dir, c } = world()
    const rel = 'SPY/untied.json'
    const untied = c.writeArtifact(rel, 'same bytes').path
    utimesSync(untied, hoursAgo(2), hoursAgo(2))
    const r = run(GC(dir), 'gc::collect-logged=stop;gc::trashed=kill')
    await r.stopped
    // An engine claims a slot and writes its output, the same bytes, to that path; then gc moves it and dies.
    const claim = c.markPending('SPY', 9, 'optionTrade')
    const a = c.writeArtifact(rel, 'same bytes')
    r.child.kill('SIGCONT')
    expect((await r.done).signal).toBe('SIGKILL')
    expect(existsSync(untied)).toBe(false)
    expect(unfinished(dir)).toEqual(['artifacts/SPY/untied.json'])
    const again = ws(...GC(dir), '--min-age', '0', '--json')
    expect([again.status, again.stderr]).toEqual([0, ''])
    const report = JSON.parse(again.stdout) as { finished: Array<{ uri: string; result: string }> }
    expect(report.finished).toEqual([{ uri: 'artifacts/SPY/untied.json', result: expect.stringContaining('Pending') as string }])
    expect(unfinished(dir)).toEqual([])
    expect(trash(dir)).toEqual([])
    // The engine records and fills: its artifact is in place.
    publish(c, 9, claim, a)
    expect(readFileSync(untied, 'utf8')).toBe('same bytes')
    invariants(dir, c, 'a finished collection of a file an engine wrote again')
  })
})

describe('gc --delete beside an engine stopped between a claim and its count', () => {
  it('keeps an untied file an engine wrote after its scan, though the shared Pending count reads zero', async () => {
    const { dir, c } = world()
    // Engine A claims window 5 and stops right after the compare-and-swap, before its count moves.
    const facade = join(__dirname, '..', 'dist', 'index.js')
    const script = `const ws = require(${JSON.stringify(facade)}); const { controller } = ws.WindowSpaceController.openExisting(${JSON.stringify(dir)}); controller.markPending('SPY', 5, 'optionTrade', { leaseMs: 60000 })`
    const a = spawn(process.execPath, ['-e', script], { env: failpointEnv('controller::before-count=stop'), stdio: 'ignore' })
    const exited = new Promise((r) => a.once('exit', r))
    try {
      await stoppedAt(a, () => 'engine A to stop at controller::before-count')
      // The operator clears A's claim: the shared Pending count is now one below the truth, and reads 0.
      expect(ws('clear', dir, '--symbol', 'SPY', '--slot', 'optionTrade', '--window', '5', '--yes', '--actor', 'ops').status).toBe(0)
      expect(c.slotMetrics().find((m) => m.slot === 'optionTrade')!.counts.Pending).toBe(0)
      // Engine B claims a slot and writes its output to a path it chose, after gc's scan found no Pending slot.
      const { controller: b } = WindowSpaceController.openExisting(dir)
      opened.push(b)
      let claim: ReturnType<typeof b.markPending> | undefined
      let art: ReturnType<typeof b.writeArtifact> | undefined
      const report = c.collectGarbage({
        delete: true,
        minAgeMs: 0,
        actor: 'ops',
        onProgress: (phase, done, total) => {
          if (phase === 'gc: slots' && done === total && claim === undefined) {
            claim = b.markPending('SPY', 10, 'optionTrade')
            art = b.writeArtifact('SPY/engine-chosen.json', 'engine B output')
          }
        },
      })
      expect(report.pendingClaims).toBe(0)
      expect(report.removed).toEqual([])
      expect(report.kept.map((k) => k.uri)).toEqual([art!.uri])
      // B records and fills: its artifact is there.
      publish(b, 10, claim!, art!)
      expect(readFileSync(art!.path, 'utf8')).toBe('engine B output')
    } finally {
      a.kill('SIGKILL')
      await exited
    }
    invariants(dir, c, 'gc beside an engine stopped before its count')
  })
})

describe('gc --delete beside an engine that rewrites an untied path and fills', () => {
  it('keeps the engine\'s file whether it looks while the slot is Pending or, stopped between its two checks, after the fill', async () => {
    requireFailpoints('gc::half-judged')
    const { dir, c } = world()
    const untied = c.writeArtifact('SPY/x.json', 'old garbage').path
    utimesSync(untied, hoursAgo(2), hoursAgo(2))
    // Stopped after logging the collection (its first look done), and at the second call of the
    // midpoint of a look: the look after the move, if it gets that far.
    const r = run(GC(dir), 'gc::collect-logged=stop;gc::half-judged=stop(2)')
    await r.stopped
    const claim = c.markPending('SPY', 10, 'optionTrade')
    const a = c.writeArtifact('SPY/x.json', 'the engine output')
    r.child.kill('SIGCONT')
    while (processState(r.child.pid!) === 'T') await sleep(1)
    // It keeps the file at once (the slot is Pending) and finishes, or stops between its two checks.
    const first = await stoppedAt(r.child, () => 'gc to stop or finish').then(
      () => 'stopped' as const,
      () => 'done' as const,
    )
    // Recorded and filled while gc looks.
    publish(c, 10, claim, a)
    if (first === 'stopped') r.child.kill('SIGCONT')
    const done = await r.done
    expect([done.status, done.stderr]).toEqual([0, ''])
    expect(readFileSync(untied, 'utf8')).toBe('the engine output')
    expect(trash(dir)).toEqual([])
    invariants(dir, c, 'gc beside an engine that rewrote an untied path')
  })
})

describe('gc --delete and an untied file written again after its plan', () => {
  const DEFAULT_AGE_GC = (dir: string) => ['gc', dir, '--delete', '--actor', 'ops', '--json']

  it('keeps it, young again, when it collects', async () => {
    const { dir, c } = world()
    const path = c.writeArtifact('SPY/daily.json', 'yesterday').path
    utimesSync(path, hoursAgo(2), hoursAgo(2))
    const r = run(DEFAULT_AGE_GC(dir), 'gc::intent-audited=stop')
    await r.stopped
    // An engine writes the path again (before it claims), then claims, records and fills.
    const a = c.writeArtifact('SPY/daily.json', 'today')
    r.child.kill('SIGCONT')
    const done = await r.done
    expect([done.status, done.stderr]).toEqual([0, ''])
    expect((JSON.parse(done.stdout) as { removed: string[]; kept: Array<{ result: string }> }).kept).toEqual([
      { uri: 'artifacts/SPY/daily.json', result: 'younger than --min-age' },
    ])
    const claim = c.markPending('SPY', 5, 'optionTrade')
    publish(c, 5, claim, a)
    expect(readFileSync(path, 'utf8')).toBe('today')
    invariants(dir, c, 'an untied file written again after the plan')
  })

  it('puts it back, young again, when the next gc finishes the collection a killed one left', async () => {
    const { dir, c } = world()
    const path = c.writeArtifact('SPY/daily.json', 'yesterday').path
    utimesSync(path, hoursAgo(2), hoursAgo(2))
    const r = run(DEFAULT_AGE_GC(dir), 'gc::collect-logged=stop;gc::trashed=kill')
    await r.stopped
    // The same bytes, so only the file's age tells it from the one gc judged.
    const a = c.writeArtifact('SPY/daily.json', 'yesterday')
    r.child.kill('SIGCONT')
    expect((await r.done).signal).toBe('SIGKILL')
    expect(existsSync(path)).toBe(false)
    const again = ws(...DEFAULT_AGE_GC(dir))
    expect([again.status, again.stderr]).toEqual([0, ''])
    expect((JSON.parse(again.stdout) as { finished: unknown[] }).finished).toEqual([
      { uri: 'artifacts/SPY/daily.json', result: 'younger than --min-age' },
    ])
    const claim = c.markPending('SPY', 5, 'optionTrade')
    publish(c, 5, claim, a)
    expect(readFileSync(path, 'utf8')).toBe('yesterday')
    expect(trash(dir)).toEqual([])
    invariants(dir, c, 'a finished collection of an untied file written again')
  })
})

describe('gc --delete stopped at each step for longer than the engine’s leases', () => {
  it.each(GC_POINTS.filter((p) => p !== 'gc::restored'))('stopped at %s: the engine and verify go on, a second gc --delete refuses; continued, it finishes', async (point) => {
    const { dir, c, live, garbage } = gcWorld()
    const r = run(GC(dir), `${point}=stop`)
    await r.stopped
    // The engine: a claim taken over after its lease ran out, a fill, a wait.
    c.markPending('SPY', 20, 'optionTrade', { leaseMs: LEASE_MS })
    await sleep(3 * LEASE_MS)
    expect(c.markPending('SPY', 20, 'optionTrade').version).toBe(2)
    const waited = c.waitFor('SPY', 21, ['optionTrade'], { timeoutMs: 60_000 })
    const mine = fill(c, 21, 'beside a stopped gc')
    expect((await waited)[0]!.status).toBe('Filled')
    const v = ws('verify', dir, '--artifacts')
    expect([v.status, v.stderr]).toEqual([0, ''])
    // Another gc --delete meanwhile refuses, changing nothing: the stopped one holds gc.log locked, so
    // no run ever takes a collection in progress for one a dead gc left. The report alone still runs.
    const logBefore = readFileSync(join(dir, 'gc.log'))
    const other = ws(...GC(dir))
    expect(other.status).toBe(1)
    expect(other.stderr).toContain('another `gc --delete` is running')
    expect(other.stderr).toContain('ERR_STATE_DIR_IN_USE')
    expect(readFileSync(join(dir, 'gc.log')).equals(logBefore)).toBe(true)
    expect(ws('gc', dir, '--json').status).toBe(0)
    r.child.kill('SIGCONT')
    const done = await r.done
    expect([done.status, done.stderr]).toEqual([0, ''])
    collected(dir, live, garbage, `gc stopped at ${point}`)
    expect(checksum64(readFileSync(mine))).toBe(checksum64('beside a stopped gc'))
    invariants(dir, c, `gc stopped at ${point}`)
  })

  it('stopped at gc::trashed and at gc::restored while an engine claims a slot: the file it moved is put back', async () => {
    const { dir, c } = world()
    const untied = c.writeArtifact('SPY/untied.json', 'untied').path
    utimesSync(untied, hoursAgo(2), hoursAgo(2))
    const r = run(GC(dir), 'gc::trashed=stop;gc::restored=stop')
    await r.stopped
    c.markPending('SPY', 9, 'optionTrade')
    r.child.kill('SIGCONT')
    // Stopped again, with the file back in place and its collection not ended yet.
    await stoppedAt(r.child, () => 'gc to stop at gc::restored')
    expect(readFileSync(untied, 'utf8')).toBe('untied')
    expect(unfinished(dir)).toEqual(['artifacts/SPY/untied.json'])
    await sleep(3 * LEASE_MS)
    fill(c, 10, 'beside a stopped gc')
    r.child.kill('SIGCONT')
    const done = await r.done
    expect([done.status, done.stderr]).toEqual([0, ''])
    expect(unfinished(dir)).toEqual([])
    expect(readFileSync(untied, 'utf8')).toBe('untied')
    invariants(dir, c, 'gc stopped at gc::restored')
  })
})
