// `clear`, `retire`, `retention` and the audit trail beside engines doing the
// README's loop: every change is in the audit trail naming exactly what it
// replaced, or nothing changed; who and why are checked before anything
// changes and cannot forge lines of `window-space audit`; retention counts
// back from now (or a time or window the operator names), never from the end
// of a schedule that rolled forward. Every command is the built dist/cli.js.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { WindowSpace, WindowSpaceConfig, WindowSpaceController } from '../src/index'
import { canChattr, cli, jsonLines, makeState, removeScratch, scratch, startEngine, startFleet, ws, wsAsync } from './operators-helpers'

let work: string
let seq = 0
const fresh = (symbols = ['SPY'], windows = 64) => makeState(join(work, `d${seq++}`), symbols, windows)

beforeAll(() => {
  if (!existsSync(cli)) throw new Error('dist/cli.js is missing: run `npm run build:debug` first')
  work = scratch('admin-live')
})
afterAll(() => removeScratch(work))

interface Logged {
  op: string
  w: number
  v: number
  id?: number
  checksum?: string
}
interface AuditLine {
  action: string
  actor: string
  reason: string
  phase?: string
  window?: number
  from?: number
  to?: number
  changed?: Array<[number, string, number, number]>
  previous?: { status: string; version: number; payloadId: number; checksum: string }
  details?: Record<string, unknown>
}
const auditOf = (dir: string) => jsonLines<AuditLine>(join(dir, 'audit.log'))

/** Slot states of `symbol`/optionTrade in windows `from..to`, as `status@version`. */
function states(dir: string, symbol: string, from: number, to: number): string[] {
  const { controller: c } = WindowSpaceController.openExisting(dir)
  try {
    const out: string[] = []
    for (let w = from; w < to; w++) {
      const s = c.getSlot(symbol, w, 'optionTrade')
      out.push(`${s.status}@${s.version}`)
    }
    return out
  } finally {
    c.close()
  }
}

/** Fills `symbol`/optionTrade in `from..to` with one engine pass. */
async function filled(dir: string, symbol: string, from: number, to: number): Promise<void> {
  expect((await startEngine({ stateDir: dir, symbol, from, to }).done).fills).toBe(to - from)
}

describe('the audit trail names exactly what a force-clear replaced, when it races fills', () => {
  it('every Filled or Pending slot an audit line says was replaced is one an engine really had', async () => {
    const dir = fresh(['SPY'], 8)
    const log = join(work, `acks-${seq++}.jsonl`)
    const stop = join(work, `stop-${seq++}`)
    // Engines, and an operator's loop force-clearing their windows: fills land while slots are cleared.
    const fleet = startFleet(4, { stateDir: dir, symbol: 'SPY', from: 0, to: 8, log, leaseMs: 10, slowEvery: 8, forceClearEvery: 2 }, stop)
    const admin = startEngine({ stateDir: dir, symbol: 'SPY', from: 0, to: 8, adminLoop: true, stopFile: stop })
    // Until the audit trail holds enough changes that raced fills, with operators' commands among them.
    const lines = () => (existsSync(join(dir, 'audit.log')) ? readFileSync(join(dir, 'audit.log'), 'utf8').split('\n').length : 0)
    const cliRuns = await Promise.all([
      ...[0, 1, 2, 3].map(() => wsAsync('clear', dir, '--symbol', 'SPY', '--slot', 'optionTrade', '--from', '0', '--to', '8', '--yes')),
      ...[7, 6].map((w) => wsAsync('retire', dir, '--symbol', 'SPY', '--slot', 'optionTrade', '--window', String(w), '--yes')),
    ])
    while (lines() < 4000) await new Promise((r) => setTimeout(r, 50))
    await fleet.stop()
    await admin.done
    for (const r of cliRuns) expect(r.status, r.stderr).toBe(0)
    const acks = jsonLines<Logged>(log)
    const claims = new Set(acks.filter((e) => e.op === 'claim').map((e) => `${e.w}@${e.v}`))
    const fills = new Map(acks.filter((e) => e.op === 'fill').map((e) => [`${e.w}@${e.v + 1}`, e]))
    const wrong: string[] = []
    let checked = 0
    const judge = (w: number, status: string, version: number, payloadId: number, checksum: string | undefined, line: string) => {
      checked++
      if (status === 'Filled') {
        const f = fills.get(`${w}@${version}`)
        if (!f || f.id !== payloadId || (checksum !== undefined && BigInt(checksum) !== BigInt(f.checksum!))) wrong.push(`${line}: window ${w} Filled v${version} payload ${payloadId}`)
      } else if (status === 'Pending' && !claims.has(`${w}@${version}`)) wrong.push(`${line}: window ${w} Pending v${version} was no engine's claim`)
    }
    for (const [i, e] of auditOf(dir).entries()) {
      if (e.phase === 'intent') continue
      if (e.changed) for (const [w, status, version, payloadId] of e.changed) judge(w, status, version, payloadId, undefined, `line ${i + 1}`)
      if (e.previous && e.window !== undefined) judge(e.window, e.previous.status, e.previous.version, e.previous.payloadId, e.previous.checksum, `line ${i + 1}`)
    }
    expect(checked).toBeGreaterThan(300)
    expect(wrong).toEqual([])
    expect(ws('verify', dir).status).toBe(0)
  })
})

describe('clear, retire, retention and gc --delete change nothing when the audit trail cannot be written', () => {
  /** SPY optionTrade 0..8 Filled; QQQ engines at work beside (long leases: no takeovers, which are audited too). */
  async function setUp() {
    const dir = fresh(['SPY', 'QQQ'], 16)
    await filled(dir, 'SPY', 0, 8)
    const { controller: c } = WindowSpaceController.openExisting(dir)
    c.appendAudit('setup', {}, { actor: 'test' }) // the log exists
    c.close()
    const garbage = join(dir, 'artifacts', 'SPY', 'orphan.json')
    writeFileSync(garbage, 'an engine died before recording this')
    const stop = join(work, `stop-${seq++}`)
    const fleet = startFleet(2, { stateDir: dir, symbol: 'QQQ', from: 0, to: 16, clearEvery: 3 }, stop)
    return { dir, garbage, fleet }
  }
  const refusedAll = async (dir: string, garbage: string, what: string) => {
    const before = states(dir, 'SPY', 0, 16)
    const runs = await Promise.all([
      wsAsync('clear', dir, '--symbol', 'SPY', '--slot', 'optionTrade', '--from', '0', '--to', '8', '--yes'),
      wsAsync('retire', dir, '--symbol', 'SPY', '--slot', 'optionTrade', '--window', '3', '--yes'),
      wsAsync('retention', dir, '--keep', '2', '--before-window', '10', '--yes'),
      wsAsync('gc', dir, '--delete', '--min-age', '0'),
    ])
    for (const r of runs) {
      expect(r.status, `${what}: ${r.stdout}`).toBe(1)
      expect(r.stderr).toMatch(/audit\.log/)
      expect(r.stderr.trim().split('\n')).toHaveLength(1)
    }
    expect(states(dir, 'SPY', 0, 16)).toEqual(before)
    expect(existsSync(garbage)).toBe(true)
  }

  it('audit.log replaced by a directory', async () => {
    const { dir, garbage, fleet } = await setUp()
    rmSync(join(dir, 'audit.log'))
    mkdirSync(join(dir, 'audit.log'))
    try {
      await refusedAll(dir, garbage, 'a directory')
    } finally {
      await fleet.stop()
    }
  })

  it.skipIf(!canChattr())('audit.log made immutable (chattr +i: even root cannot append)', async () => {
    const { dir, garbage, fleet } = await setUp()
    const log = join(dir, 'audit.log')
    const before = readFileSync(log)
    expect(spawnSync('chattr', ['+i', log]).status).toBe(0)
    try {
      await refusedAll(dir, garbage, 'immutable')
      expect(readFileSync(log)).toEqual(before)
    } finally {
      spawnSync('chattr', ['-i', log])
      await fleet.stop()
    }
  })
})

describe('who and why are checked before anything changes', () => {
  it('gc --delete with an overlong --reason removes nothing; on a long directory path the default reason fits', async () => {
    const dir = fresh(['SPY'], 16)
    const garbage = join(dir, 'artifacts', 'SPY', 'orphan.json')
    mkdirSync(join(garbage, '..'), { recursive: true })
    writeFileSync(garbage, 'no record names this')
    const r = ws('gc', dir, '--delete', '--min-age', '0', '--reason', 'x'.repeat(300))
    expect(r.status).toBe(2)
    expect(r.stderr).toContain('--reason must be at most 256 characters')
    expect(existsSync(garbage)).toBe(true)
    expect(existsSync(join(dir, 'gc.log'))).toBe(false)
    expect(existsSync(join(dir, 'audit.log'))).toBe(false)

    // A state directory whose path alone is longer than an audit reason may be.
    let deep = join(work, `long-${seq++}`)
    while (deep.length < 320) deep = join(deep, 'a-rather-long-directory-name')
    makeState(deep, ['SPY'], 16)
    await filled(deep, 'SPY', 0, 8)
    writeFileSync(join(deep, 'artifacts', 'SPY', 'orphan.json'), 'no record names this')
    for (const args of [
      ['clear', deep, '--symbol', 'SPY', '--slot', 'optionTrade', '--window', '1', '--yes'],
      ['retire', deep, '--symbol', 'SPY', '--slot', 'optionTrade', '--window', '2', '--yes'],
      ['retention', deep, '--keep', '2', '--before-window', '4', '--yes'],
      ['gc', deep, '--delete', '--min-age', '0'],
    ]) {
      const x = ws(...args)
      expect(x.stderr).toBe('')
      expect(x.status).toBe(0)
    }
    const lines = auditOf(deep)
    expect(lines.length).toBeGreaterThan(4)
    for (const l of lines) expect([...l.reason].length).toBeLessThanOrEqual(256)
    expect(lines.find((l) => l.action === 'gc')!.reason).toMatch(/^window-space gc .*…/)
    expect(existsSync(join(deep, 'artifacts', 'SPY', 'orphan.json'))).toBe(false)
  })
})

describe('the text of window-space audit cannot be forged', () => {
  it('newlines and escape sequences in --actor and --reason are shown escaped; overlong ones are refused before any change', async () => {
    const dir = fresh(['SPY'], 8)
    await filled(dir, 'SPY', 0, 8)
    const forgedActor = 'ops\n2026-01-01T00:00:00.000Z  forceClear      SPY optionTrade window 1           was Filled  — root'
    const forgedReason = '\x1b[2J\x1b[31mall good\r\nsecond line\u2028third\u009b31m'
    const r = ws('clear', dir, '--symbol', 'SPY', '--slot', 'optionTrade', '--window', '2', '--yes', '--actor', forgedActor, '--reason', forgedReason)
    expect(r.status).toBe(0)
    const text = ws('audit', dir)
    expect(text.status).toBe(0)
    const entries = ws('audit', dir, '--json').stdout.trim().split('\n')
    expect(text.stdout.trim().split('\n')).toHaveLength(entries.length - 1) // an intent whose outcome follows is shown once
    // eslint-disable-next-line no-control-regex -- control characters are what this looks for
    expect(text.stdout).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]/)
    expect(text.stdout).toContain('ops\\n2026-01-01T00:00:00.000Z')
    expect(text.stdout).toContain('\\x1b[2J\\x1b[31mall good\\r\\nsecond line')
    // The JSON lines keep the text as it was given.
    expect(JSON.parse(entries[entries.length - 1]!)).toMatchObject({ actor: forgedActor, reason: forgedReason })

    const log = readFileSync(join(dir, 'audit.log'))
    const overlong = [
      ['--actor', 'a'.repeat(257)],
      ['--reason', 'r'.repeat(300)],
      ['--reason', '€'.repeat(257)],
    ].flatMap((flag) =>
      [
        ['clear', dir, '--symbol', 'SPY', '--slot', 'optionTrade', '--window', '3', '--yes'],
        ['retire', dir, '--symbol', 'SPY', '--slot', 'optionTrade', '--window', '3', '--yes'],
        ['retention', dir, '--keep', '1', '--before-window', '8', '--yes'],
        ['gc', dir, '--delete', '--min-age', '0'],
      ].map((cmd) => [...cmd, ...flag]),
    )
    const refused = await Promise.all(overlong.map((args) => wsAsync(...args)))
    for (const [i, x] of refused.entries()) {
      const [cmd, flag] = [overlong[i]![0], overlong[i]![overlong[i]!.length - 2]]
      expect(x.status, `${cmd} ${flag}`).toBe(2)
      expect(x.stderr).toContain(`${flag} must be at most 256 characters`)
    }
    expect(readFileSync(join(dir, 'audit.log'))).toEqual(log)
    expect(states(dir, 'SPY', 0, 8)).toEqual([...Array(8).keys()].map((w) => (w === 2 ? 'Cleared@3' : 'Filled@2')))
  })
})

describe('retention counts back from now', () => {
  it('after a roll-forward of the schedule it leaves the current windows to the engines, and says what it will retire before --yes', async () => {
    const minute = 60_000
    // Window 100 begins now, so "now" stays in it for the minute the test takes
    // (a window boundary between the dry run and the run would move the plan).
    const origin = Date.now() - 100 * minute
    const dir = join(work, `d${seq++}`)
    makeState(dir, ['SPY', 'QQQ'], 120, origin, minute)
    // The schedule rolls forward: 120 more windows at the end.
    WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, WindowSpace.uniform({ origin, windowDuration: minute, windowCount: 240 }))).controller.close()
    await filled(dir, 'SPY', 80, 100)
    const dry = ws('retention', dir, '--keep', '10', '--dry-run', '--json')
    expect(dry.status).toBe(0)
    const plan = JSON.parse(dry.stdout) as { anchorWindow: number; retireBefore: number; wouldRetire: number }
    expect(plan.anchorWindow).toBeGreaterThanOrEqual(100)
    expect(plan.anchorWindow).toBeLessThanOrEqual(101)
    expect(plan.retireBefore).toBe(plan.anchorWindow - 10)
    // Without --yes it says what it would retire, and refuses.
    const asked = ws('retention', dir, '--keep', '10')
    expect(asked.status).toBe(2)
    expect(asked.stderr).toContain(`windows 0..${plan.retireBefore - 1}`)
    expect(asked.stderr).toContain('refused without --yes')
    // Engines work on the current windows while it runs.
    const stop = join(work, `stop-${seq++}`)
    const fleet = startFleet(2, { stateDir: dir, symbol: 'QQQ', from: 95, to: 110, clearEvery: 4 }, stop)
    const r = ws('retention', dir, '--keep', '10', '--yes')
    await fleet.stop()
    expect(r.status).toBe(0)
    expect(r.stdout).toContain(`in windows 0..${plan.retireBefore - 1}`)
    const spy = states(dir, 'SPY', 80, 120)
    expect(spy.slice(0, plan.retireBefore - 80).every((s) => s.startsWith('Retired'))).toBe(true)
    expect(spy.slice(plan.retireBefore - 80, 20).every((s) => s.startsWith('Filled'))).toBe(true)
    expect(states(dir, 'QQQ', 95, 240).some((s) => s.startsWith('Retired'))).toBe(false)
    // An operator may name the window or the time to count back from.
    expect(JSON.parse(ws('retention', dir, '--keep', '10', '--before-window', '50', '--dry-run', '--json').stdout)).toMatchObject({ anchorWindow: 50, retireBefore: 40 })
    const at = new Date(origin + 60 * minute + 1).toISOString()
    expect(JSON.parse(ws('retention', dir, '--keep', '10', '--at', at, '--dry-run', '--json').stdout)).toMatchObject({ anchorWindow: 61, retireBefore: 51 })
  })
})

describe('audit.log under concurrent writers', () => {
  it('has no blank line and every line parses', async () => {
    const dir = fresh(['SPY', 'QQQ'], 16)
    // Lines longer than a page: each append spans pages, so another writer may look at the file mid-append.
    const writers = Array.from({ length: 4 }, () => startEngine({ stateDir: dir, symbol: 'SPY', from: 0, to: 1, auditLines: 300, bytes: 6000 }))
    const stop = join(work, `stop-${seq++}`)
    const fleet = startFleet(2, { stateDir: dir, symbol: 'QQQ', from: 0, to: 16, leaseMs: 5, slowEvery: 2 }, stop) // takeovers are audited too
    await Promise.all(writers.map((w) => w.done))
    await fleet.stop()
    const text = readFileSync(join(dir, 'audit.log'), 'utf8')
    const lines = text.split('\n')
    expect(lines.pop()).toBe('')
    expect(lines.filter((l) => l === '')).toEqual([])
    for (const l of lines) JSON.parse(l)
    expect(lines.filter((l) => l.includes('"engineNote"'))).toHaveLength(1200)
    expect(ws('verify', dir).status).toBe(0)
  })
})
