// The `window-space` command: every command runs as the real built
// dist/cli.js under `node`, on a real state directory this file makes with
// the library, and is checked by its output, its exit status and — for the
// commands that change things — by reading the directory back with the library.
import { spawn, spawnSync } from 'node:child_process'
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { SLOT_KIND_NAMES, WindowSpace, WindowSpaceConfig, WindowSpaceController, checksum64, type WindowSpaceController as Controller } from '../src/index'

const root = join(__dirname, '..')
const cli = join(root, 'dist', 'cli.js')
let work: string
let fixture: string
let seq = 0

interface Run {
  status: number | null
  stdout: string
  stderr: string
}

/** Runs the built command with stdin not a terminal (a pipe). */
function ws(...args: string[]): Run {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input: '' })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

const schedule = WindowSpace.uniform({ origin: Date.UTC(2026, 10, 24, 14, 30), windowDuration: 60_000, windowCount: 20 })

function fill(c: Controller, symbol: string, w: number, slot: 'optionTrade' | 'optionQuote' | 'greeks', rel = `${symbol}/${slot}/${w}.txt`, body = `${symbol} ${slot} ${w}`): { uri: string; payloadId: number } {
  const claim = c.markPending(symbol, w, slot)
  const a = c.writeArtifact(rel, body)
  const store = slot === 'greeks' ? 'greeks' : slot === 'optionQuote' ? 'quotes' : 'trades'
  const payloadId = c.payloadStores()[store].append({ symbol, windowIdx: w, slotKind: slot, payloadType: 'Text', uri: a.uri, checksum: a.checksum, size: a.size })
  c.setRef(symbol, w, slot, { payloadType: 'Text', payloadId, version: claim.version, checksum: a.checksum })
  return { uri: a.uri, payloadId }
}

/**
 * The fixture: SPY optionTrade 0..9 Filled, SPY greeks 0..4 Filled, AAPL
 * optionQuote 0..2 Filled; SPY optionTrade 10 Cleared by its failing engine
 * after it recorded an artifact (an orphan record); a stray artifact with no
 * record; SPY optionTrade 12 Pending with an expired lease (a dead engine);
 * AAPL underlyingTrade 15..19 Retired.
 */
function makeFixture(dir: string): void {
  const { controller: c } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, schedule))
  c.resolveSymbol('SPY')
  c.resolveSymbol('AAPL')
  for (let w = 0; w < 10; w++) fill(c, 'SPY', w, 'optionTrade')
  for (let w = 0; w < 5; w++) fill(c, 'SPY', w, 'greeks')
  for (let w = 0; w < 3; w++) fill(c, 'AAPL', w, 'optionQuote')
  const failed = c.markPending('SPY', 10, 'optionTrade')
  const a = c.writeArtifact('SPY/optionTrade/10.txt', 'half done')
  c.payloadStores().trades.append({ symbol: 'SPY', windowIdx: 10, slotKind: 'optionTrade', payloadType: 'Text', uri: a.uri, checksum: a.checksum, size: a.size })
  c.clearSlot('SPY', 10, 'optionTrade', failed)
  c.writeArtifact('SPY/stray.txt', 'an engine died before appending this')
  c.markPending('SPY', 12, 'optionTrade', { leaseMs: 0 })
  c.retireRange('AAPL', { from: 15, to: 20 }, 'underlyingTrade')
  c.close()
}

/** A private copy of the fixture for a test that changes it. */
function copy(): string {
  const d = join(work, `state-${seq++}`)
  cpSync(fixture, d, { recursive: true })
  return d
}

function open(dir: string) {
  return WindowSpaceController.openExisting(dir).controller
}

beforeAll(() => {
  if (!existsSync(cli) || statSync(cli).mtimeMs < statSync(join(root, 'src', 'cli.ts')).mtimeMs) {
    throw new Error('dist/cli.js is missing or older than src/cli.ts: run `npm run build:ts` first')
  }
  work = mkdtempSync(join(tmpdir(), 'ws-cli-'))
  fixture = join(work, 'fixture')
  makeFixture(fixture)
})
afterAll(() => rmSync(work, { recursive: true, force: true }))

const COMMANDS = ['inspect', 'grid', 'verify', 'clear', 'retire', 'gc', 'repair', 'retention', 'audit', 'metrics', 'serve-metrics', 'export']

describe('help', () => {
  it('lists every command', () => {
    const r = ws('--help')
    expect(r.status).toBe(0)
    for (const c of COMMANDS) expect(r.stdout).toContain(`  ${c} `)
  })
  it.each(COMMANDS)('%s --help', (c) => {
    const r = ws(c, '--help')
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(new RegExp(`^Usage: window-space ${c} \\[options\\] <dir>`))
    expect(r.stderr).toBe('')
  })
})

describe('inspect', () => {
  it('prints schedule, symbols, counts and stale claims', () => {
    const r = ws('inspect', fixture)
    expect(r.status).toBe(0)
    expect(r.stderr).toBe('') // no progress output when stderr is not a terminal
    expect(r.stdout).toContain('schedule        uniform, 20 windows of 60000 ms, 2026-11-24T14:30:00.000Z .. 2026-11-24T14:50:00.000Z')
    expect(r.stdout).toContain('symbols         2: SPY, AAPL')
    expect(r.stdout).toMatch(/stale claims {4}1 /)
    expect(r.stdout).toMatch(/\ntrade {6}optionTrade +28 +1 +10 +1 +0\n/) // 40 slots: 10 Filled, 1 Cleared, 1 Pending
  })
  it('--json agrees with the library', () => {
    const r = ws('inspect', fixture, '--json', '--by-symbol')
    expect(r.status).toBe(0)
    const info = JSON.parse(r.stdout)
    const c = open(fixture)
    try {
      for (const m of c.slotMetrics()) expect(info.slots.find((s: { slot: string }) => s.slot === m.slot)).toEqual({ ledger: m.ledger, slot: m.slot, ...m.counts })
      expect(info.events.trade).toEqual(c.eventCounts('trade'))
    } finally {
      c.close()
    }
    expect(info.symbols).toEqual(['SPY', 'AAPL'])
    expect(info.staleClaims).toBe(1)
    expect(info.schedule).toMatchObject({ kind: 'uniform', windowCount: 20, windowDurationMs: 60000 })
    expect(info.stores.find((s: { store: string }) => s.store === 'trades').records).toBe(11)
    expect(info.bySymbol.SPY.optionTrade).toEqual({ Empty: 8, Pending: 1, Filled: 10, Cleared: 1, Retired: 0 })
    expect(info.bySymbol.AAPL.underlyingTrade).toEqual({ Empty: 15, Pending: 0, Filled: 0, Cleared: 0, Retired: 5 })
  })
})

describe('grid', () => {
  it('draws one character per slot, without colour when stdout is not a terminal', () => {
    const r = ws('grid', fixture, '--symbol', 'SPY', '--from', '0', '--to', '20')
    expect(r.status).toBe(0)
    expect(r.stdout).not.toContain('\x1b[')
    expect(r.stdout).toContain('\noptionTrade          FFFFFFFFFFC.S.......\n')
    expect(r.stdout).toContain('\ngreeks               FFFFF...............\n')
    const aapl = ws('grid', fixture, '--symbol', 'AAPL', '--from', '10', '--to', '20', '--slot', 'underlyingTrade,optionQuote')
    expect(aapl.stdout).toContain('\noptionQuote          ..........\n')
    expect(aapl.stdout).toContain('\nunderlyingTrade      .....RRRRR\n')
    expect(aapl.stdout).not.toContain('greeks')
  })
  it('--json, and --color forces colour', () => {
    const j = JSON.parse(ws('grid', fixture, '--symbol', 'AAPL', '--to', '4', '--json').stdout)
    expect(j).toMatchObject({ symbol: 'AAPL', from: 0, to: 4 })
    expect(j.slots.optionQuote).toBe('FFF.')
    expect(ws('grid', fixture, '--symbol', 'SPY', '--to', '3', '--color').stdout).toContain('\x1b[32mF\x1b[0m')
  })
})

describe('export', () => {
  it('prints every row with a non-Empty slot as one JSON line', () => {
    const r = ws('export', fixture)
    expect(r.status).toBe(0)
    expect(r.stderr).toBe('')
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l))
    // trade: SPY 0..10 and 12, AAPL 0..2 and 15..19; enrichment: SPY 0..4.
    expect(rows).toHaveLength(12 + 3 + 5 + 5)
    const spy3 = rows.find((x) => x.ledger === 'trade' && x.symbol === 'SPY' && x.windowIdx === 3)
    expect(spy3.start).toBe('2026-11-24T14:33:00.000Z')
    expect(spy3.slots.optionTrade).toMatchObject({ status: 'Filled', payloadType: 3, payloadId: 3, uri: 'artifacts/SPY/optionTrade/3.txt' })
    expect(spy3.slots.rfRate).toEqual({ status: 'Empty', version: 0 })
    const c = open(fixture)
    try {
      expect(spy3.slots.optionTrade.checksum).toBe(`0x${c.getSlot('SPY', 3, 'optionTrade').checksum.toString(16).padStart(16, '0')}`)
    } finally {
      c.close()
    }
    expect(rows.find((x) => x.symbol === 'SPY' && x.windowIdx === 12).slots.optionTrade.status).toBe('Pending')
  })
  it('filters by symbol, ledger and range; --all-rows includes empty rows', () => {
    const r = ws('export', fixture, '--symbol', 'AAPL', '--ledger', 'trade', '--from', '0', '--to', '10', '--all-rows')
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l))
    expect(rows.map((x) => x.windowIdx)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    expect(rows.every((x) => x.symbol === 'AAPL' && x.ledger === 'trade')).toBe(true)
  })
})

describe('metrics and serve-metrics', () => {
  it('metrics prints the Prometheus text format once', () => {
    const r = ws('metrics', fixture)
    expect(r.status).toBe(0)
    expect(r.stdout).toContain('# TYPE window_space_slots gauge')
    expect(r.stdout).toContain('window_space_slots{ledger="trade",slot="optionTrade",status="Filled"} 10\n')
    expect(r.stdout).toContain('window_space_payload_appends_total{store="trades"} 11\n')
    expect(r.stdout).toContain('window_space_transitions_total{ledger="trade",transition="claim"} 15\n')
    // The command reads the directory without opening a controller: no bootstrap, so no bootstrap gauges.
    expect(r.stdout).not.toContain('window_space_bootstrap_')
  })
  it('serve-metrics serves GET /metrics on 127.0.0.1 until SIGTERM', async () => {
    const child = spawn(process.execPath, [cli, 'serve-metrics', fixture, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let err = ''
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (b: Buffer) => {
        err += b.toString()
        const m = /on (http:\/\/127\.0\.0\.1:\d+\/metrics)\n/.exec(err)
        if (m) resolve(m[1]!)
      })
      child.on('exit', () => reject(new Error(`exited early: ${err}`)))
    })
    const res = await fetch(url)
    expect(res.status).toBe(200)
    expect(await res.text()).toContain('window_space_slots{ledger="enrichment",slot="greeks",status="Filled"} 5\n')
    expect((await fetch(url.replace('/metrics', '/other'))).status).toBe(404)
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
  })
})

describe('verify', () => {
  it('passes on a healthy directory, with and without --artifacts', () => {
    const r = ws('verify', fixture, '--artifacts')
    expect(r.stdout).toContain('OK: no problems found')
    expect(r.stdout).toContain('warning: 1 Pending slots have an expired lease')
    expect(r.status).toBe(0)
    expect(r.stderr).toBe('')
    const j = JSON.parse(ws('verify', fixture, '--json').stdout)
    expect(j).toMatchObject({ ok: true, problems: [], counts: { filledSlots: 18, records: 19 } })
  })

  it('runs beside an engine that has the directory open', () => {
    const dir = copy()
    const c = open(dir)
    try {
      fill(c, 'AAPL', 7, 'optionQuote')
      const r = ws('verify', dir, '--artifacts')
      expect(r.stdout).toContain('checked: slot metrics (shared counters) equal an exact count of the slots')
      expect(r.stdout).toContain('OK: no problems found')
      expect(r.status).toBe(0)
    } finally {
      c.close()
    }
  })

  const damaged = (f: (dir: string, c: Controller) => void, closeFirst = false) => {
    const dir = copy()
    const c = open(dir)
    try {
      if (closeFirst) c.close()
      f(dir, c)
    } finally {
      c.close()
    }
    return dir
  }
  const problems = (r: Run) => (JSON.parse(r.stdout) as { problems: Array<{ kind: string; message: string }> }).problems

  it('fails on a slot Filled with a payload id whose record was written for another slot', () => {
    const dir = damaged((_d, c) => {
      const claim = c.markPending('SPY', 15, 'optionTrade')
      c.setRef('SPY', 15, 'optionTrade', { payloadType: 'Text', payloadId: 2, version: claim.version, checksum: c.getSlot('SPY', 2, 'optionTrade').checksum })
    })
    const r = ws('verify', dir)
    expect(r.status).toBe(1)
    expect(r.stdout).toContain('PROBLEM [payload-for-another-slot] SPY window 15 optionTrade is Filled with trades record 2, which was written for SPY window 2 optionTrade')
    expect(r.stdout).toContain('1 problem found')
  })

  it('fails on a slot whose checksum differs from its record', () => {
    const dir = damaged((_d, c) => {
      const claim = c.markPending('AAPL', 5, 'optionQuote')
      const id = c.payloadStores().quotes.append({ symbol: 'AAPL', windowIdx: 5, slotKind: 'optionQuote', payloadType: 'Text', uri: 'artifacts/AAPL/x', checksum: 1n, size: 1 })
      c.setRef('AAPL', 5, 'optionQuote', { payloadType: 'Text', payloadId: id, version: claim.version, checksum: 2n })
    })
    const r = ws('verify', dir, '--json')
    expect(r.status).toBe(1)
    expect(problems(r).map((p) => p.kind)).toEqual(['checksum-mismatch'])
  })

  it('fails with --artifacts on a deleted artifact and on a changed one', () => {
    const dir = copy()
    unlinkSync(join(dir, 'artifacts/SPY/optionTrade/4.txt'))
    writeFileSync(join(dir, 'artifacts/SPY/greeks/1.txt'), 'SPY greeks X') // same size, other bytes
    expect(ws('verify', dir).status).toBe(0) // without --artifacts files are not read
    const r = ws('verify', dir, '--artifacts', '--json')
    expect(r.status).toBe(1)
    const p = problems(r)
    expect(p.map((x) => x.kind).sort()).toEqual(['artifact-changed', 'artifact-missing'])
    expect(p.find((x) => x.kind === 'artifact-missing')!.message).toContain('SPY window 4 optionTrade: artifact artifacts/SPY/optionTrade/4.txt of trades record 4 is missing')
    expect(p.find((x) => x.kind === 'artifact-changed')!.message).toContain('SPY window 1 greeks')
  })

  it('fails when a mapping-table record in the middle is damaged (bootstrap refuses the directory)', () => {
    const dir = copy()
    const p = join(dir, 'trades.map')
    const b = readFileSync(p)
    b.writeUInt8(b.readUInt8(64 + 16 + 50) ^ 0xff, 64 + 16 + 50) // inside the body of record 0 (the URI)
    writeFileSync(p, b)
    const r = ws('verify', dir)
    expect(r.status).toBe(1)
    expect(r.stdout).toMatch(/PROBLEM \[open-failed\] the directory cannot be opened: corrupt state file \S*trades\.map at offset 64: record checksum mismatch/)
  })

  it('fails when a Filled slot refers to a record lost in a torn tail', () => {
    const dir = copy()
    const p = join(dir, 'quotes.map')
    truncateSync(p, statSync(p).size - 5) // cut AAPL optionQuote 2's record short
    const r = ws('verify', dir, '--json')
    expect(r.status).toBe(1)
    const out = JSON.parse(r.stdout)
    expect(out.problems.map((x: { kind: string }) => x.kind)).toEqual(['payload-missing', 'dangling-references'])
    expect(out.problems[0].message).toBe('AAPL window 2 optionQuote is Filled with payload id 2, which quotes does not hold (2 records)')
    expect(out.problems[1]).toMatchObject({ store: 'quotes', records: 2, highestReferencedId: 2, danglingSlots: 1 })
    expect(out.warnings.map((x: { kind: string }) => x.kind)).toContain('torn-tail')
  })

  it('fails on damage inside a slot that the read path cannot see (reserved bits, fill tag)', () => {
    const dir = copy()
    const p = join(dir, 'trade-ledger.dat')
    const b = readFileSync(p)
    // SPY's first trade chunk is the first one allocated: header page, chunk header, row 3, column 1 (optionTrade).
    const at = 4096 + 64 + 3 * 7 * 32 + 1 * 32
    b.writeUInt8(1, at + 6) // reserved head bits
    b.writeUInt8(b.readUInt8(at + 7 * 32 + 24) ^ 1, at + 7 * 32 + 24) // window 4's fill tag
    writeFileSync(p, b)
    const r = ws('verify', dir, '--json')
    expect(r.status).toBe(1)
    expect(problems(r).map((x) => x.message)).toEqual([
      `trade-ledger.dat at offset ${at}, SPY window 3 optionTrade: reserved head bits 48..64 hold 0x1, not 0`,
      `trade-ledger.dat at offset ${at + 7 * 32}, SPY window 4 optionTrade: a Filled slot at version 2 has fill tag 0, not 1 (its checksum is not the fill's)`,
    ])
  })

  it('fails on a damaged audit.log line, and on an audit line naming a slot this directory does not have', () => {
    const dir = copy()
    const c = open(dir)
    c.retire('SPY', 5, 'greeks', { actor: 'test', reason: 'verify the audit check' })
    c.close()
    expect(ws('verify', dir).status).toBe(0)
    const p = join(dir, 'audit.log')
    const good = readFileSync(p, 'utf8')
    const problemsWith = (tail: string) => {
      writeFileSync(p, good + tail)
      const r = ws('verify', dir, '--json')
      expect(r.status).toBe(1)
      return (JSON.parse(r.stdout) as { problems: { kind: string; message: string }[] }).problems
    }
    const invalid = problemsWith('{"v":1,"atNs":"1","actor":"x","reason":"","action":"retire","symbol":"NOPE","symbolId":77,"slot":"greeks","window":3}\n')
    expect(invalid.map((x) => x.kind)).toEqual(['audit-entry-invalid'])
    expect(invalid[0]!.message).toContain('"NOPE"')
    const damaged = problemsWith('this is not json\n')
    expect(damaged.map((x) => x.kind)).toEqual(['audit-log-damaged'])
    expect(damaged[0]!.message).toContain('audit.log')
  })

  it('fails on a damaged ledger header', () => {
    const dir = copy()
    const p = join(dir, 'enrichment-ledger.dat')
    const b = readFileSync(p)
    b[0] = 0
    writeFileSync(p, b)
    const r = ws('verify', dir)
    expect(r.status).toBe(1)
    expect(r.stdout).toContain('enrichment-ledger.dat')
    expect(r.stdout).toContain('[open-failed]')
  })
})

describe('clear and retire', () => {
  it('--dry-run changes nothing and says what would change', () => {
    const dir = copy()
    const r = ws('clear', dir, '--symbol', 'SPY', '--slot', 'optionTrade', '--from', '0', '--to', '20', '--dry-run')
    expect(r.status).toBe(0)
    expect(r.stdout).toBe('would force-clear 11 slots (1 Pending, 10 Filled) of SPY, optionTrade, windows 0..19 (dry run: nothing changed)\n')
    const c = open(dir)
    expect(c.getSlot('SPY', 0, 'optionTrade').status).toBe('Filled')
    c.close()
  })
  it('refuses without --yes when stdin is not a terminal', () => {
    const dir = copy()
    const r = ws('retire', dir, '--symbol', 'SPY', '--slot', 'greeks', '--window', '1')
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/^window-space retire: retire 1 slot .*: refused without --yes \(stdin is not a terminal, so nobody can confirm\)\n$/)
    const c = open(dir)
    expect(c.getSlot('SPY', 1, 'greeks').status).toBe('Filled')
    c.close()
  })
  it('force-clears a single slot and a range with --yes', () => {
    const dir = copy()
    const one = ws('clear', dir, '--symbol', 'SPY', '--slot', 'optionTrade', '--window', '3', '--yes')
    expect(one.status).toBe(0)
    expect(one.stdout).toBe('force-cleared 1 slot\n')
    const range = ws('clear', dir, '--symbol', 'SPY,AAPL', '--slot', 'all', '--from', '0', '--to', '2', '-y', '--json')
    expect(range.status).toBe(0)
    expect(JSON.parse(range.stdout)).toMatchObject({ action: 'clear', changed: 6, wouldChange: { Filled: 6 } }) // SPY optionTrade+greeks, AAPL optionQuote, windows 0 and 1
    const c = open(dir)
    try {
      expect(c.getSlot('SPY', 3, 'optionTrade').status).toBe('Cleared')
      expect(c.getSlot('SPY', 2, 'optionTrade').status).toBe('Filled')
      expect(c.getSlot('SPY', 1, 'greeks').status).toBe('Cleared')
      expect(c.getSlot('AAPL', 0, 'optionQuote').status).toBe('Cleared')
    } finally {
      c.close()
    }
  })
  it('retires a range', () => {
    const dir = copy()
    const r = ws('retire', dir, '--symbol', 'all', '--slot', 'greeks', '--from', '3', '--to', '6', '--yes')
    expect(r.status).toBe(0)
    expect(r.stdout).toContain('retired 6 slots')
    const c = open(dir)
    try {
      for (const s of ['SPY', 'AAPL']) for (let w = 3; w < 6; w++) expect(c.getSlot(s, w, 'greeks').status).toBe('Retired')
      expect(c.getSlot('SPY', 2, 'greeks').status).toBe('Filled')
    } finally {
      c.close()
    }
  })
})

describe('retention', () => {
  it('retires every slot of every symbol before the last N windows', () => {
    const dir = copy()
    const dry = ws('retention', dir, '--keep', '5', '--dry-run', '--json')
    expect(dry.status).toBe(0)
    // 15 windows × 2 symbols × every slot kind, none Retired there yet.
    expect(JSON.parse(dry.stdout)).toMatchObject({ keep: 5, windowCount: 20, retireBefore: 15, wouldRetire: 15 * 2 * SLOT_KIND_NAMES.length, retired: 0 })
    expect(ws('retention', dir, '--keep', '5').status).toBe(2) // no --yes, stdin not a terminal
    const r = ws('retention', dir, '--keep', '5', '--yes')
    expect(r.status).toBe(0)
    expect(r.stdout).toContain('retired 270 slots in windows 0..14')
    const c = open(dir)
    try {
      for (const m of c.recountSlots()) expect(m.counts.Retired).toBe(m.slot === 'underlyingTrade' ? 30 + 5 : 30)
      expect(c.getSlot('SPY', 14, 'rfRate').status).toBe('Retired')
      expect(c.getSlot('SPY', 15, 'rfRate').status).toBe('Empty')
    } finally {
      c.close()
    }
    expect(ws('retention', dir, '--keep', '5', '--yes').stdout).toBe('nothing to retire: windows 0..14 are Retired already\n')
  })
})

describe('gc', () => {
  /** A copy of the fixture whose stale claim (SPY optionTrade 12) an operator cleared: no slot is Pending. */
  const quiet = () => {
    const dir = copy()
    expect(ws('clear', dir, '--symbol', 'SPY', '--slot', 'optionTrade', '--window', '12', '--yes').status).toBe(0)
    return dir
  }

  it('reports unreferenced records and files; keeps untied files while a slot is Pending, and young ones', () => {
    const r = ws('gc', fixture, '--json', '--min-age', '0')
    expect(r.status).toBe(0)
    const j = JSON.parse(r.stdout)
    expect(j.records.map((x: { store: string; payloadId: number; symbol: string; slotStatus: string }) => [x.store, x.payloadId, x.symbol, x.slotStatus])).toEqual([['trades', 10, 'SPY', 'Cleared']])
    expect(ws('gc', fixture, '--min-age', '0').stdout).toContain('  trades#10  SPY window 10 optionTrade (slot now Cleared)  artifacts/SPY/optionTrade/10.txt')
    // SPY optionTrade 12 is Pending: its engine may be about to record a file at a path it chose.
    expect(j.files).toEqual([])
    expect(j.keptFiles.map((f: { uri: string; why: string }) => [f.uri, f.why])).toEqual([
      ['artifacts/SPY/optionTrade/10.txt', '1 slots are Pending (an engine may be about to record it)'],
      ['artifacts/SPY/stray.txt', '1 slots are Pending (an engine may be about to record it)'],
    ])
    const dir = quiet()
    const young = JSON.parse(ws('gc', dir, '--json').stdout)
    expect(young.files).toEqual([]) // written just now: younger than the default --min-age of 1h
    expect(young.keptFiles.map((f: { why: string }) => f.why)).toEqual(['younger than --min-age', 'younger than --min-age'])
    const all = JSON.parse(ws('gc', dir, '--json', '--min-age', '0').stdout)
    expect(all.files.map((f: { uri: string; class: string }) => [f.uri, f.class])).toEqual([
      ['artifacts/SPY/optionTrade/10.txt', 'untied'],
      ['artifacts/SPY/stray.txt', 'untied'],
    ])
    expect(existsSync(join(dir, 'gc.log'))).toBe(false) // reporting writes nothing
  })

  it('--delete removes them, logs the collection append-only, and verify stays clean', () => {
    const dir = quiet()
    // Retire SPY greeks 0..4: their artifacts become garbage too.
    expect(ws('retire', dir, '--symbol', 'SPY', '--slot', 'greeks', '--from', '0', '--to', '5', '--yes').status).toBe(0)
    const mapsBefore = ['trades.map', 'greeks.map'].map((f) => readFileSync(join(dir, f)))
    const r = ws('gc', dir, '--delete', '--min-age', '0')
    expect(r.status).toBe(0)
    expect(r.stderr).toBe('')
    expect(r.stdout).toMatch(/removed 7 files \(\d+ B\); marked 6 records collected in gc\.log/)
    expect(existsSync(join(dir, 'artifacts/SPY/stray.txt'))).toBe(false)
    expect(existsSync(join(dir, 'artifacts/SPY/optionTrade/10.txt'))).toBe(false)
    expect(readdirSync(join(dir, 'artifacts/SPY/greeks'))).toEqual([])
    expect(existsSync(join(dir, 'artifacts/SPY/optionTrade/9.txt'))).toBe(true)
    expect(readdirSync(join(dir, 'gc-trash'))).toEqual([])
    // The mapping tables are untouched; gc.log says what was collected.
    expect(['trades.map', 'greeks.map'].map((f) => readFileSync(join(dir, f)))).toEqual(mapsBefore)
    const log = readFileSync(join(dir, 'gc.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    expect(log.filter((e) => e.op === 'collect')).toHaveLength(7)
    expect(log.filter((e) => e.op === 'done')).toHaveLength(7)
    expect(log.find((e) => e.op === 'collect' && e.uri === 'artifacts/SPY/optionTrade/10.txt').records).toEqual([{ store: 'trades', payloadId: 10 }])
    // The audit trail says the same as the output: intent before, outcome after.
    const gcLines = (JSON.parse(`[${readFileSync(join(dir, 'audit.log'), 'utf8').trim().split('\n').join(',')}]`) as Array<{ action: string; details?: Record<string, unknown> }>).filter((e) => e.action === 'gc')
    expect(gcLines.map((e) => e.details!.phase)).toEqual(['intent', 'done'])
    expect(gcLines[1]!.details).toMatchObject({ removedFiles: 7, recordsMarked: 6 })
    // verify does not report collected artifacts as missing; gc finds nothing more.
    const v = ws('verify', dir, '--artifacts', '--json')
    expect(JSON.parse(v.stdout).warnings).toEqual([])
    expect(v.status).toBe(0)
    expect(JSON.parse(ws('gc', dir, '--json', '--min-age', '0').stdout)).toMatchObject({ records: [], files: [] })
    // inspect summarises gc.log.
    expect(ws('inspect', dir).stdout).toContain('gc.log          6 records collected, 7 artifact files removed')
  })

  it('never removes a file a live slot still uses, even when an older record of it is garbage', () => {
    const dir = quiet()
    const c = open(dir)
    try {
      c.forceClear('SPY', 5, 'optionTrade')
      fill(c, 'SPY', 5, 'optionTrade', 'SPY/optionTrade/5.txt', 'SPY optionTrade 5, second try') // same path, new record
    } finally {
      c.close()
    }
    const r = JSON.parse(ws('gc', dir, '--delete', '--min-age', '0', '--json').stdout)
    expect(r.records.map((x: { payloadId: number }) => x.payloadId)).toContain(5) // the first record of window 5
    expect(r.removed).not.toContain('artifacts/SPY/optionTrade/5.txt')
    expect(readFileSync(join(dir, 'artifacts/SPY/optionTrade/5.txt'), 'utf8')).toBe('SPY optionTrade 5, second try')
    const log = readFileSync(join(dir, 'gc.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    expect(log.find((e) => e.op === 'record' && e.payloadId === 5)).toMatchObject({ store: 'trades', uri: 'artifacts/SPY/optionTrade/5.txt', why: 'artifact shared with a live record' })
    expect(ws('verify', dir, '--artifacts').status).toBe(0)
  })

  it('finishes or undoes a collection a killed gc left behind', () => {
    const dir = copy()
    const intent = (id: string, uri: string) => ({ v: 1, op: 'collect', id, at: '2026-11-25T00:00:00.000Z', uri, checksum: '0x0', size: 0, records: [], trash: `gc-trash/${id}` })
    mkdirSync(join(dir, 'gc-trash'))
    // Killed after the move: the file sits in gc-trash. Its checksum in the intent is wrong on purpose
    // for the second one, as if the file had changed: that one must be moved back.
    const stray = readFileSync(join(dir, 'artifacts/SPY/stray.txt'))
    const a = { ...intent('dead-1', 'artifacts/SPY/stray.txt'), checksum: `0x${checksum64(stray).toString(16).padStart(16, '0')}`, size: stray.length }
    renameSync(join(dir, 'artifacts/SPY/stray.txt'), join(dir, 'gc-trash/dead-1'))
    const b = intent('dead-2', 'artifacts/SPY/optionTrade/10.txt')
    renameSync(join(dir, 'artifacts/SPY/optionTrade/10.txt'), join(dir, 'gc-trash/dead-2'))
    // Killed before the move; and a torn last line.
    const c = intent('dead-3', 'artifacts/AAPL/optionQuote/0.txt')
    writeFileSync(join(dir, 'gc.log'), `${[a, b, c].map((e) => JSON.stringify(e)).join('\n')}\n{"v":1,"op":"do`)
    const before = ws('gc', dir)
    expect(before.stdout).toContain('3 collections a previous gc left unfinished: run with --delete to finish them')
    expect(ws('verify', dir).stdout).toContain('warning: gc.log: the last line is torn')

    const r = JSON.parse(ws('gc', dir, '--delete', '--json').stdout) // default --min-age: nothing new is collected
    // The stray file is untied and younger than the default --min-age (and a slot of this directory is
    // Pending): judged as a collection judges it, it goes back.
    expect(r.finished).toEqual([
      { uri: 'artifacts/SPY/stray.txt', result: 'younger than --min-age' },
      { uri: 'artifacts/SPY/optionTrade/10.txt', result: 'the file changed after the scan' },
      { uri: 'artifacts/AAPL/optionQuote/0.txt', result: 'interrupted before the move' },
    ])
    expect(existsSync(join(dir, 'gc-trash/dead-1'))).toBe(false)
    expect(readFileSync(join(dir, 'artifacts/SPY/stray.txt')).equals(stray)).toBe(true)
    expect(existsSync(join(dir, 'artifacts/SPY/optionTrade/10.txt'))).toBe(true)
    expect(existsSync(join(dir, 'artifacts/AAPL/optionQuote/0.txt'))).toBe(true)
    const log = readFileSync(join(dir, 'gc.log'), 'utf8')
    // The torn line was marked and ended, not rewritten; the next line is the first that finished run wrote.
    const lines = log.split('\n')
    expect(lines[3]).toBe('{"v":1,"op":"do#torn')
    expect(JSON.parse(lines[4]!)).toMatchObject({ op: 'abort', id: 'dead-1' })
    expect(ws('gc', dir).stdout).not.toContain('left unfinished')
    const v = ws('verify', dir, '--artifacts')
    expect(v.status).toBe(0)
    const garbageLine = readFileSync(join(dir, 'gc.log'), 'utf8').split('\n').length
    appendFileSync(join(dir, 'gc.log'), 'garbage\n{"v":1,"op":"done","id":"x","at":"y"}\n')
    const bad = ws('verify', dir)
    expect(bad.status).toBe(1)
    expect(bad.stdout).toContain(`PROBLEM [gc-log-damaged] gc.log: line ${garbageLine} is not a gc.log entry`)
  })
})

describe('audit', () => {
  it('clear, retention and gc --delete say who and why in the audit trail, intent before outcome', () => {
    const dir = copy()
    expect(ws('audit', dir).stdout).toMatch(/^\S+Z {2}retireRange {5}AAPL underlyingTrade windows 15\.\.19 +5 changed {2}— \S+@\S+ pid \d+\n$/) // the fixture's library call
    expect(ws('audit', fixture, '--last', '0').stdout).toBe(`no audit entries in ${fixture}\n`)
    expect(ws('clear', dir, '--symbol', 'SPY', '--slot', 'greeks', '--from', '0', '--to', '2', '--yes', '--reason', 'greeks model fixed', '--actor', 'ops-alice').status).toBe(0)
    expect(ws('clear', dir, '--symbol', 'SPY', '--slot', 'optionTrade', '--window', '12', '--yes').status).toBe(0) // the dead engine's claim
    expect(ws('retention', dir, '--keep', '18', '--yes').status).toBe(0)
    expect(ws('gc', dir, '--delete', '--min-age', '0').status).toBe(0)
    const r = ws('audit', dir, '--json')
    expect(r.status).toBe(0)
    const entries = r.stdout.trim().split('\n').map((l) => JSON.parse(l))
    const outcomes = entries.filter((e) => e.phase !== 'intent')
    const clear = entries.findIndex((e) => e.action === 'forceClearRange' && e.phase !== 'intent')
    expect(entries[clear - 1]).toMatchObject({ action: 'forceClearRange', phase: 'intent', actor: 'ops-alice', symbol: 'SPY', slot: 'greeks', from: 0, to: 2 })
    expect(entries[clear]).toMatchObject({ action: 'forceClearRange', actor: 'ops-alice', reason: 'greeks model fixed', symbol: 'SPY', slot: 'greeks', from: 0, to: 2 })
    expect(entries[clear].changed).toHaveLength(2)
    const retention = entries.filter((e) => e.action === 'retention')
    expect(retention.map((e) => e.details.phase)).toEqual(['intent', 'done'])
    expect(retention[1].details).toMatchObject({ keep: 18, retireBefore: 2, retired: 2 * 2 * SLOT_KIND_NAMES.length }) // windows 0..1 × 2 symbols × every slot kind
    expect(retention[1].reason).toBe(`window-space retention ${dir} --keep 18 --yes`)
    expect(outcomes.filter((e) => e.action === 'retireRange')).toHaveLength(1 + 2 * SLOT_KIND_NAMES.length) // the fixture's, then 2 symbols × every slot kind
    const gc = entries[entries.length - 1]
    // SPY greeks 0,1, optionTrade 0,1 and 10, the stray file, AAPL optionQuote 0,1; their 7 records.
    expect(gc).toMatchObject({ action: 'gc', details: { phase: 'done', removedFiles: 8, recordsMarked: 7, log: 'gc.log' } })
    const text = ws('audit', dir, '--last', '1')
    expect(text.stdout).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z {2}gc {14}/)
    expect(text.stdout).toContain('"removedFiles":8')
    // --last N counts the entries shown: an intent and its outcome are one.
    const all = ws('audit', dir).stdout.trim().split('\n')
    expect(all.length).toBeLessThan(entries.length)
    for (const n of [1, 3, 5]) expect(ws('audit', dir, '--last', String(n)).stdout.trim().split('\n')).toEqual(all.slice(-n))
    expect(ws('audit', dir, '--json', '--last', '3').stdout.trim().split('\n').map((l) => JSON.parse(l))).toEqual(entries.slice(-3))
  })

})

// On a terminal: `script` runs the command on a pseudo-terminal and passes our input to it.
const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0
function onTty(input: string, ...args: string[]): Run {
  const cmd = [process.execPath, cli, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ')
  const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm-256color' }
  delete env.NO_COLOR
  delete env.NODE_DISABLE_COLORS
  delete env.FORCE_COLOR
  delete env.CI // Node reports 2 colours under CI=true (as CI runs us): a user's terminal is meant here
  const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', input, env })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe.skipIf(!hasScript)('on a terminal', () => {
  it('verify, gc and export draw a progress bar on stderr', () => {
    for (const args of [['verify', fixture], ['gc', fixture], ['export', fixture]]) {
      const r = onTty('', ...args)
      expect(r.status).toBe(0)
      expect(r.stdout).toMatch(/\r(verify|gc: slots|export) \[#*\.*\] +\d+% \d+\/\d+/)
    }
  })
  it('clear asks for confirmation and does nothing unless the answer is yes', () => {
    const dir = copy()
    const no = onTty('n\n', 'clear', dir, '--symbol', 'SPY', '--slot', 'greeks', '--window', '4')
    expect(no.stdout).toContain('force-clear 1 slot (1 Filled) of SPY, greeks, window 4? [y/N]')
    expect(no.stdout).toContain('window-space clear: not confirmed; nothing was changed')
    expect(no.status).toBe(2)
    const yes = onTty('y\n', 'clear', dir, '--symbol', 'SPY', '--slot', 'greeks', '--window', '4')
    expect(yes.stdout).toContain('force-cleared 1 slot')
    expect(yes.status).toBe(0)
    const c = open(dir)
    expect(c.getSlot('SPY', 4, 'greeks').status).toBe('Cleared')
    c.close()
  })
  it('grid is coloured on a terminal that supports it, and not with --no-color', () => {
    expect(onTty('', 'grid', fixture, '--symbol', 'SPY', '--to', '3').stdout).toContain('\x1b[32mF\x1b[0m')
    expect(onTty('', 'grid', fixture, '--symbol', 'SPY', '--to', '3', '--no-color').stdout).not.toContain('\x1b[32m')
  })
})

describe('a state directory whose path holds a newline', () => {
  it('is printed escaped by inspect and verify, as in error messages', () => {
    const d = join(work, `line\nbreak-${seq++}`)
    cpSync(fixture, d, { recursive: true })
    for (const cmd of ['inspect', 'verify']) {
      const r = ws(cmd, d)
      expect(r.status, r.stderr).toBe(0)
      expect(r.stdout).toContain('line\\nbreak')
      expect(r.stdout).not.toContain('line\nbreak')
    }
  })
})

describe('gc --delete with a gc-trash that is a symbolic link', () => {
  it('refuses before it announces or moves anything', () => {
    const dir = copy()
    const outside = join(work, `outside-${seq++}`)
    mkdirSync(outside)
    symlinkSync(outside, join(dir, 'gc-trash'))
    const auditBefore = existsSync(join(dir, 'audit.log')) ? readFileSync(join(dir, 'audit.log')) : Buffer.alloc(0)
    const r = ws('gc', dir, '--delete', '--min-age', '0')
    expect(r.status).toBe(1)
    expect(r.stderr).toContain('gc-trash')
    expect(r.stderr).toContain('ERR_CORRUPT_STATE')
    expect(existsSync(join(dir, 'gc.log'))).toBe(false)
    expect(existsSync(join(dir, 'audit.log')) ? readFileSync(join(dir, 'audit.log')) : Buffer.alloc(0)).toEqual(auditBefore)
    expect(readdirSync(outside)).toEqual([])
  })
})

describe('bad input: one line on stderr, exit status 2', () => {
  const oneLine = (r: Run) => {
    expect(r.status).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).not.toMatch(/\n\s+at /)
    return r.stderr
  }
  it.each([
    ['a missing directory', ['inspect', '/nonexistent/ws-dir'], 'window-space inspect: no such directory: /nonexistent/ws-dir'],
    ['a directory that is not a state directory', ['verify', '<empty>'], 'is not a window-space state directory (it has no schedule.json) (ERR_NOT_A_STATE_DIR)'],
    ['an unknown symbol', ['grid', '<fixture>', '--symbol', 'MSFT'], 'window-space grid: unknown symbol "MSFT" in <fixture> (known: SPY, AAPL)'],
    ['a reversed range', ['grid', '<fixture>', '--symbol', 'SPY', '--from', '5', '--to', '3'], 'window-space grid: bad range --from 5 --to 3: --to is exclusive and must be greater than --from'],
    ['a range past the schedule', ['export', '<fixture>', '--to', '21'], 'window-space export: bad range --from 0 --to 21: <fixture> has 20 windows, so --to is at most 20'],
    ['a window past the schedule', ['clear', '<fixture>', '--symbol', 'SPY', '--slot', 'greeks', '--window', '20', '--yes'], 'window-space clear: --window 20 is out of range: <fixture> has windows 0..19'],
    ['a window that is not a number', ['retire', '<fixture>', '--symbol', 'SPY', '--slot', 'greeks', '--window', 'x1'], 'window-space retire: --window must be a whole number, got "x1"'],
    ['an unknown slot kind', ['clear', '<fixture>', '--symbol', 'SPY', '--slot', 'bogus', '--window', '1'], 'window-space clear: unknown slot kind "bogus"'],
    ['an unknown ledger', ['export', '<fixture>', '--ledger', 'x'], 'window-space export: unknown ledger "x" (trade or enrichment)'],
    ['a bad duration', ['gc', '<fixture>', '--min-age', 'soon'], 'window-space gc: --min-age must be a duration'],
    ['a missing required option', ['grid', '<fixture>'], "error: required option '--symbol <symbol>' not specified"],
    ['an unknown command', ['frobnicate'], "error: unknown command 'frobnicate'"],
    ['audit of a directory that is not a state directory', ['audit', '<empty>'], 'is not a window-space state directory (it has no schedule.json)'],
    ['an empty --slot', ['grid', '<fixture>', '--symbol', 'SPY', '--slot', ''], 'window-space grid: --slot names no slot kind'],
    ['an empty --actor', ['clear', '<fixture>', '--symbol', 'SPY', '--slot', 'greeks', '--window', '1', '--yes', '--actor', ''], 'the audit actor must not be empty'],
  ])('%s', (_what, args, message) => {
    const empty = join(work, 'empty')
    mkdirSync(empty, { recursive: true })
    const argv = args.map((a) => a.replace('<fixture>', fixture).replace('<empty>', empty))
    const r = ws(...argv)
    expect(r.status).toBe(2)
    expect(r.stderr).toContain(message.replace('<fixture>', fixture))
    if (!message.startsWith('error:')) oneLine(r) // commander adds a usage hint line to its own errors
  })
})
