// `window-space gc` beside engines doing the README's loop: it never puts an
// old file back over an engine's new artifact, never deletes the artifact of
// a fill in flight, never lets a zombie's write reach the winner's file, puts
// its intent in the audit trail before it touches a file (so a killed gc's
// deletions are accounted for), and survives files vanishing under it, a
// second gc at the same time (which refuses, or runs after) and names that
// are not UTF-8. Every command is
// the built dist/cli.js run as a child process.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { checksum64, WindowSpaceController } from '../src/index'
import { cli, jsonLines, makeState, removeScratch, scratch, startEngine, startFleet, until, ws, wsAsync, wsStart } from './operators-helpers'

let work: string
let seq = 0
const fresh = (symbols = ['SPY'], windows = 64) => makeState(join(work, `d${seq++}`), symbols, windows)
const hoursAgo = (h: number) => new Date(Date.now() - h * 3_600_000)

beforeAll(() => {
  if (!existsSync(cli)) throw new Error('dist/cli.js is missing: run `npm run build:debug` first')
  work = scratch('gc-live')
})
afterAll(() => removeScratch(work))

interface Fill {
  op: string
  w: number
  v: number
  id: number
  uri: string
  checksum: string
}

/** Every Filled slot of `symbol`/`slot` whose artifact file does not hold what its record says. */
function damagedFills(dir: string, symbol: string, slot: 'optionTrade', windows: number): string[] {
  const { controller: c } = WindowSpaceController.openExisting(dir)
  const bad: string[] = []
  try {
    for (let w = 0; w < windows; w++) {
      const s = c.getSlot(symbol, w, slot)
      if (s.status !== 'Filled') continue
      const rec = c.payloadStores().trades.get(s.payloadId)!
      const p = join(dir, rec.uri)
      if (!existsSync(p)) bad.push(`${w}: ${rec.uri} missing`)
      else if (checksum64(readFileSync(p)) !== s.checksum) bad.push(`${w}: ${rec.uri} holds other bytes`)
    }
  } finally {
    c.close()
  }
  return bad
}

/** The audit trail as JSON objects. */
const audit = (dir: string) => jsonLines<{ action: string; actor: string; phase?: string; details?: Record<string, unknown> }>(join(dir, 'audit.log'))

describe('gc beside an engine that redoes a slot at the same path', () => {
  it('never moves the old file back over the engine’s new artifact', async () => {
    const dir = fresh(['SPY'], 8)
    // Window 3 was filled at a path the engine chose; an operator force-cleared it.
    const c = WindowSpaceController.openExisting(dir).controller
    const claim = c.markPending('SPY', 3, 'optionTrade')
    const a = c.writeArtifact('SPY/optionTrade/3.json', 'first attempt')
    const id = c.payloadStores().trades.append({ symbol: 'SPY', windowIdx: 3, slotKind: 'optionTrade', payloadType: 'Json', uri: a.uri, checksum: a.checksum, size: a.size })
    c.setRef('SPY', 3, 'optionTrade', { payloadType: 'Json', payloadId: id, version: claim.version, checksum: a.checksum })
    c.close()
    expect(ws('clear', dir, '--symbol', 'SPY', '--slot', 'optionTrade', '--window', '3', '--yes').status).toBe(0)
    // The old file is large (gc takes a while over it) and older than the default --min-age.
    truncateSync(a.path, 256 << 20)
    utimesSync(a.path, hoursAgo(2), hoursAgo(2))
    // The engine redoes window 3 at the same path just after gc announced it collects the old file.
    const engine = startEngine({ stateDir: dir, symbol: 'SPY', from: 3, to: 4, untied: true, startWhenCollecting: true, startDelayMs: 15, bytes: 64 })
    const gc = await wsAsync('gc', dir, '--delete')
    const stats = await engine.done
    expect(stats.fills).toBe(1)
    expect(gc.stderr).toBe('')
    expect(gc.status).toBe(0)
    expect(damagedFills(dir, 'SPY', 'optionTrade', 8)).toEqual([])
    const v = ws('verify', dir, '--artifacts')
    expect(v.stdout).toContain('OK: no problems found')
    expect(v.status).toBe(0)
    expect(readdirSync(join(dir, 'gc-trash'))).toEqual([])
  })
})

describe('a zombie engine (its lease ran out) beside the winner', () => {
  it('can never overwrite the winner’s artifact; gc collects what the zombie left', async () => {
    const dir = fresh(['SPY'], 8)
    const go = join(work, `go-${seq++}`)
    const log = join(work, `fills-${seq++}.jsonl`)
    // The zombie claims window 5 with a short lease and stalls before writing.
    const zombie = startEngine({ stateDir: dir, symbol: 'SPY', from: 5, to: 6, leaseMs: 50, holdBeforeWrite: go, log, bytes: 64 })
    // A second zombie writes its artifact, then stalls before recording it: its file is left behind.
    const left = join(work, `left-${seq++}`)
    const leaver = startEngine({ stateDir: dir, symbol: 'SPY', from: 6, to: 7, leaseMs: 50, holdAfterWrite: left, log, bytes: 64 })
    await until(() => existsSync(`${go}.claimed`) && existsSync(`${left}.written`), 'the zombies’ claims')
    await new Promise((r) => setTimeout(r, 80)) // their leases run out
    // The winner takes both slots over and fills them.
    const winner = await startEngine({ stateDir: dir, symbol: 'SPY', from: 5, to: 7, log, bytes: 64 }).done
    expect(winner.fills).toBe(2)
    const wins = jsonLines<Fill>(log).filter((e) => e.op === 'fill')
    const winnerFiles = new Map(wins.map((f) => [f.uri, readFileSync(join(dir, f.uri))]))
    // The zombies wake up and finish their loop: every write or fill of theirs is refused.
    writeFileSync(go, '')
    writeFileSync(left, '')
    const [z, l] = await Promise.all([zombie.done, leaver.done])
    expect([z.fills, l.fills]).toEqual([0, 0])
    expect(z.conflicts + l.conflicts).toBe(2)
    for (const [uri, bytes] of winnerFiles) expect(readFileSync(join(dir, uri)), uri).toEqual(bytes)
    expect(damagedFills(dir, 'SPY', 'optionTrade', 8)).toEqual([])
    expect(ws('verify', dir, '--artifacts').status).toBe(0)
    // The leftover is tied to a claim that is over: gc collects it whatever its age; the winner's files stay.
    const r = ws('gc', dir, '--delete', '--json')
    expect(r.status).toBe(0)
    const report = JSON.parse(r.stdout) as { removed: string[] }
    expect(report.removed).toHaveLength(1)
    expect(report.removed[0]).toMatch(/^artifacts\/SPY\/optionTrade\/6\/v1\//)
    for (const [uri, bytes] of winnerFiles) expect(readFileSync(join(dir, uri)), uri).toEqual(bytes)
    expect(ws('verify', dir, '--artifacts').status).toBe(0)
  })
})

describe('gc beside a fill in flight', () => {
  it.each([
    ['a claim-bound artifact', false],
    ['an artifact at a path the engine chose', true],
  ])('never deletes %s between writeArtifact and append, whatever --min-age', async (_what, untied) => {
    const dir = fresh(['SPY', 'QQQ'], 32)
    const stop = join(work, `stop-${seq++}`)
    // Other engines work beside it, and leave garbage for gc to collect.
    const fleet = startFleet(2, { stateDir: dir, symbol: 'QQQ', from: 0, to: 32, leaseMs: 20, slowEvery: 5, forceClearEvery: 3, clearEvery: 6 }, stop)
    const hold = join(work, `hold-${seq++}`)
    const engine = startEngine({ stateDir: dir, symbol: 'SPY', from: 7, to: 8, holdAfterWrite: hold, untied, bytes: 64 })
    await until(() => existsSync(`${hold}.written`), 'the artifact of the fill in flight')
    for (let i = 0; i < 2; i++) {
      const r = await wsAsync('gc', dir, '--delete', '--min-age', '0')
      expect(r.stderr).toBe('')
      expect(r.status).toBe(0)
    }
    writeFileSync(hold, '')
    expect((await engine.done).fills).toBe(1)
    await fleet.stop()
    expect(damagedFills(dir, 'SPY', 'optionTrade', 32)).toEqual([])
    expect(damagedFills(dir, 'QQQ', 'optionTrade', 32)).toEqual([])
    const v = ws('verify', dir, '--artifacts')
    expect(v.stdout).toContain('OK: no problems found')
    expect(v.status).toBe(0)
  })
})

describe('a gc killed while it collects', () => {
  /** A directory with `n` files no record names (engines that died before recording them), an hour old. */
  const withOrphans = (n: number) => {
    const dir = fresh(['SPY'], 8)
    for (let i = 0; i < n; i++) {
      const p = join(dir, 'artifacts', 'SPY', 'orphans', `${i}.json`)
      mkdirSync(join(p, '..'), { recursive: true })
      writeFileSync(p, `orphan ${i}`)
      utimesSync(p, hoursAgo(2), hoursAgo(2))
    }
    return dir
  }
  const orphansLeft = (dir: string) => (existsSync(join(dir, 'artifacts/SPY/orphans')) ? readdirSync(join(dir, 'artifacts/SPY/orphans')).length : 0)

  it('has put its intent in the audit trail before it touched a file; the next gc finishes and says so', async () => {
    const dir = withOrphans(300)
    const gc = wsStart(['gc', dir, '--delete', '--actor', 'ops-first'])
    await until(() => existsSync(join(dir, 'gc.log')) && readFileSync(join(dir, 'gc.log'), 'utf8').includes('"op":"collect"'), 'the first collection')
    gc.child.kill('SIGKILL')
    await gc.done
    const removed = 300 - orphansLeft(dir)
    const collects = jsonLines<{ op: string; uri: string }>(join(dir, 'gc.log')).filter((e) => e.op === 'collect')
    expect(collects.length).toBeGreaterThanOrEqual(removed)
    const first = audit(dir).filter((e) => e.action === 'gc')
    expect(first.map((e) => [e.actor, e.details?.phase])).toEqual([['ops-first', 'intent']])
    expect(first[0]!.details).toMatchObject({ files: 300 })
    const log = jsonLines<{ op: string; id?: string }>(join(dir, 'gc.log'))
    const ended = new Set(log.filter((e) => e.op !== 'collect').map((e) => e.id))
    const unfinished = log.filter((e) => e.op === 'collect' && !ended.has(e.id)).length
    // The next run, by someone else, finishes what the killed one left and says so.
    const next = ws('gc', dir, '--delete', '--actor', 'ops-second', '--json')
    expect(next.status).toBe(0)
    expect(orphansLeft(dir)).toBe(0)
    expect((JSON.parse(next.stdout) as { finished: unknown[] }).finished).toHaveLength(unfinished)
    const all = audit(dir).filter((e) => e.action === 'gc')
    expect(all.map((e) => [e.actor, e.details?.phase])).toEqual([
      ['ops-first', 'intent'],
      ...(unfinished > 0 ? [['ops-second', 'finish']] : []),
      ['ops-second', 'intent'],
      ['ops-second', 'done'],
    ])
    expect(readdirSync(join(dir, 'gc-trash'))).toEqual([])
    expect(ws('verify', dir).status).toBe(0)
  })

  it('killed at any point beside engines, never loses a live artifact; every removal is logged before it happens', async () => {
    const dir = fresh(['SPY', 'QQQ'], 24)
    const stop = join(work, `stop-${seq++}`)
    const fleet = startFleet(3, { stateDir: dir, symbol: 'SPY', from: 0, to: 24, leaseMs: 15, slowEvery: 4, forceClearEvery: 2, clearEvery: 5 }, stop)
    const untied = startFleet(1, { stateDir: dir, symbol: 'QQQ', from: 0, to: 24, forceClearEvery: 2, untied: true }, `${stop}-untied`)
    for (let round = 0; round < 12; round++) {
      const gc = wsStart(['gc', dir, '--delete', '--min-age', '0'])
      await new Promise((r) => setTimeout(r, 20 + ((round * 37) % 150)))
      gc.child.kill('SIGKILL')
      await gc.done
    }
    await fleet.stop()
    await untied.stop()
    const last = ws('gc', dir, '--delete', '--min-age', '0')
    expect(last.stderr).toBe('')
    expect(last.status).toBe(0)
    expect(readdirSync(join(dir, 'gc-trash'))).toEqual([])
    expect(damagedFills(dir, 'SPY', 'optionTrade', 24)).toEqual([])
    expect(damagedFills(dir, 'QQQ', 'optionTrade', 24)).toEqual([])
    const v = ws('verify', dir, '--artifacts')
    expect(v.stdout).toContain('OK: no problems found')
    expect(v.status).toBe(0)
    // Every collection that started has an ending, and the audit trail has an intent for every run that collected.
    const log = jsonLines<{ op: string; id?: string }>(join(dir, 'gc.log'))
    const ended = new Set(log.filter((e) => e.op === 'done' || e.op === 'abort').map((e) => e.id))
    expect(log.filter((e) => e.op === 'collect' && !ended.has(e.id))).toEqual([])
    const runs = new Set(log.filter((e) => e.op === 'collect').map((e) => e.id!.split('-')[0]))
    const intents = audit(dir).filter((e) => e.action === 'gc' && e.details?.phase === 'intent')
    expect(intents.length).toBeGreaterThanOrEqual(runs.size)
  })
})

describe('gc survives what it meets in a live directory', () => {
  it('files vanishing under it: engines writing and renaming temp files while gc runs', async () => {
    const dir = fresh(['SPY', 'QQQ'], 48)
    const stop = join(work, `stop-${seq++}`)
    const fleet = startFleet(3, { stateDir: dir, symbol: 'SPY', from: 0, to: 48, leaseMs: 10, forceClearEvery: 1, untied: true, bytes: 4096 }, stop)
    const runs = []
    for (let i = 0; i < 3; i++) runs.push(...(await Promise.all([wsAsync('gc', dir, '--json', '--min-age', '0'), wsAsync('gc', dir, '--json', '--min-age', '0')])))
    await fleet.stop()
    for (const r of runs) {
      expect(r.stderr).toBe('')
      expect(r.status).toBe(0)
    }
  })

  it('a second gc --delete at the same time', async () => {
    const dir = fresh(['SPY'], 8)
    for (let i = 0; i < 600; i++) {
      const p = join(dir, 'artifacts', 'SPY', 'dead', `${i}.json`)
      mkdirSync(join(p, '..'), { recursive: true })
      writeFileSync(p, `dead ${i}`)
    }
    // The second starts while the first is removing files: it refuses (the first holds gc.log locked), or,
    // had the first finished already, runs alone. Never do both collect at once.
    const first = wsAsync('gc', dir, '--delete', '--min-age', '0')
    await until(() => existsSync(join(dir, 'gc.log')), 'the first collection')
    const [a, b] = await Promise.all([first, wsAsync('gc', dir, '--delete', '--min-age', '0')])
    expect([a.status, a.stderr]).toEqual([0, ''])
    if (b.status !== 0) expect([b.status, b.stderr.includes('another `gc --delete` is running')]).toEqual([1, true])
    else expect(b.stderr).toBe('')
    expect(readdirSync(join(dir, 'artifacts/SPY/dead'))).toEqual([])
    expect(readdirSync(join(dir, 'gc-trash'))).toEqual([])
    expect(ws('gc', dir, '--json', '--min-age', '0').stdout).toContain('"unfinishedBefore":0')
    expect(ws('verify', dir).status).toBe(0)
  })

  it('file names that are not UTF-8, and temp files whose writer is gone', () => {
    const dir = fresh(['SPY'], 8)
    const name = Buffer.concat([Buffer.from(join(dir, 'artifacts', 'SPY', 'bad-')), Buffer.from([0xff, 0xfe]), Buffer.from('.json')])
    mkdirSync(join(dir, 'artifacts', 'SPY'), { recursive: true })
    writeFileSync(name, 'an engine wrote this name')
    // An atomic write whose process died before the rename.
    const pid = Number(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }))
    writeFileSync(join(dir, 'artifacts', 'SPY', `.x.json.tmp-${pid}-1`), 'half written')
    const dry = ws('gc', dir, '--min-age', '0')
    expect(dry.stderr).toBe('')
    expect(dry.status).toBe(0)
    expect(dry.stdout).toContain('artifacts/SPY/bad-\uFFFD\uFFFD.json')
    const r = ws('gc', dir, '--delete', '--min-age', '0', '--json')
    expect(r.status).toBe(0)
    expect(readdirSync(join(dir, 'artifacts', 'SPY'))).toEqual([])
    expect((JSON.parse(r.stdout) as { removed: string[] }).removed).toHaveLength(2)
    expect(ws('verify', dir, '--artifacts').status).toBe(0)
  })
})

describe('a damaged or forged gc.log cannot steer gc outside the artifacts', () => {
  it('collections naming paths outside artifacts/ and gc-trash/ are damaged lines, never acted on', () => {
    const dir = fresh(['SPY'], 8)
    const victim = join(dir, '..', `victim-${seq++}`)
    writeFileSync(victim, 'a file beside the state directory')
    mkdirSync(join(dir, 'gc-trash'), { recursive: true })
    writeFileSync(join(dir, 'gc-trash', 'planted'), 'planted')
    const sum = (p: string) => `0x${checksum64(readFileSync(p)).toString(16).padStart(16, '0')}`
    const forged = (id: string, uri: string, trash: string, checksum = '0x0000000000000001') => JSON.stringify({ v: 1, op: 'collect', id, at: '2026-01-01T00:00:00.000Z', uri, checksum, size: 1, records: [], trash })
    const state = ['trades.map', 'symbols.log', 'trade-ledger.dat', 'schedule.json']
    const c = WindowSpaceController.openExisting(dir).controller
    c.appendAudit('setup', {}, { actor: 'test' })
    c.close()
    const lines = [
      forged('f1', 'artifacts/SPY/a.json', `../${victim.split('/').pop()}`, sum(victim)), // delete a file beside the directory
      forged('f2', 'artifacts/SPY/b.json', 'trades.map'), // "move back" a mapping table into artifacts/
      forged('f3', 'artifacts/SPY/c.json', 'audit.log', sum(join(dir, 'audit.log'))), // delete the audit trail
      forged('f4', '/etc/passwd', 'gc-trash/planted'), // "move back" to a path outside artifacts/
      forged('f5', 'artifacts/../symbols.log', 'gc-trash/planted'),
      forged('f6', 'artifacts/SPY/d.json', 'gc-trash/../schedule.json', sum(join(dir, 'schedule.json'))),
      forged('f7', 'trade-ledger.dat', 'gc-trash/nothing-here'), // "done": would mark a state file removed
      forged('f8', 'artifacts/SPY/e.json', '/etc/hostname'),
    ]
    writeFileSync(join(dir, 'gc.log'), `${lines.join('\n')}\n`)
    const before = new Map([...state, 'audit.log'].map((f) => [f, readFileSync(join(dir, f))]))
    const r = ws('gc', dir, '--delete', '--min-age', '0', '--json')
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    expect(existsSync(victim)).toBe(true)
    for (const f of state) expect(readFileSync(join(dir, f)).equals(before.get(f)!), f).toBe(true)
    expect(readFileSync(join(dir, 'audit.log')).subarray(0, before.get('audit.log')!.length).equals(before.get('audit.log')!)).toBe(true)
    expect(existsSync(join(dir, 'etc'))).toBe(false)
    expect(readFileSync('/etc/hostname').length).toBeGreaterThan(0)
    const v = JSON.parse(ws('verify', dir, '--json').stdout) as { problems: Array<{ kind: string; lines?: number[] }> }
    expect(v.problems.find((p) => p.kind === 'gc-log-damaged')!.lines).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
  })

  it('a gc.log that is a symbolic link is never written through', () => {
    const dir = fresh(['SPY'], 8)
    const outside = join(dir, '..', `outside-log-${seq++}`)
    symlinkSync(outside, join(dir, 'gc.log'))
    mkdirSync(join(dir, 'artifacts', 'SPY'), { recursive: true })
    writeFileSync(join(dir, 'artifacts', 'SPY', 'orphan.json'), 'no record names this')
    const r = ws('gc', dir, '--delete', '--min-age', '0')
    expect(r.status).toBe(1)
    expect(r.stderr).toContain('gc.log')
    expect(existsSync(outside)).toBe(false)
    expect(existsSync(join(dir, 'artifacts', 'SPY', 'orphan.json'))).toBe(true)
  })
})

describe('hostile file names and huge directories', () => {
  it('names with newlines, escapes and odd bytes are listed escaped and collected', () => {
    const dir = fresh(['SPY'], 8)
    const names = ['line\nbreak.json', '\x1b[31mred.json', ' -rf', '...', 'x'.repeat(255), 'gc.log', '%2F..%2F', 'tab\there', '\u2028sep']
    mkdirSync(join(dir, 'artifacts', 'SPY', 'v1'), { recursive: true })
    for (const n of names) writeFileSync(join(dir, 'artifacts', 'SPY', 'v1', n), n)
    const dry = ws('gc', dir, '--min-age', '0')
    expect(dry.status).toBe(0)
    // eslint-disable-next-line no-control-regex -- control characters are what this looks for
    expect(dry.stdout).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f\u2028]/)
    expect(dry.stdout).toContain(`unreferenced artifact files: ${names.length} `)
    expect(dry.stdout).toContain('artifacts/SPY/v1/line\\nbreak.json')
    const r = ws('gc', dir, '--delete', '--min-age', '0')
    expect(r.status).toBe(0)
    expect(readdirSync(join(dir, 'artifacts', 'SPY', 'v1'))).toEqual([])
    for (const e of jsonLines<{ op: string }>(join(dir, 'gc.log'))) expect(['collect', 'done']).toContain(e.op)
    expect(ws('verify', dir, '--artifacts').status).toBe(0)
  })

  it('a directory of 20,000 files: gc lists a bounded text, verify --artifacts reads on', () => {
    const dir = fresh(['SPY'], 8)
    const d = join(dir, 'artifacts', 'SPY', 'many')
    mkdirSync(d, { recursive: true })
    for (let i = 0; i < 20_000; i++) writeFileSync(join(d, `${i}.json`), '')
    const r = ws('gc', dir, '--min-age', '0')
    expect(r.status).toBe(0)
    expect(r.stdout).toContain('unreferenced artifact files: 20000 (0 B)')
    expect(r.stdout).toContain('… and 19980 more (--json lists all)')
    expect(r.stdout.split('\n').length).toBeLessThan(60)
    expect(ws('verify', dir, '--artifacts').status).toBe(0)
  })
})
