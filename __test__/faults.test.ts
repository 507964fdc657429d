// Fault injection: a full disk (a file-size limit set with `ulimit -f`, which
// turns writes past it into EFBIG) during payload appends, ledger growth and
// symbol appends; a read-only state directory; and a second process
// holding the directory open while the first grows it; and a write to
// audit.log or gc.log cut short, injected in the command line through
// WINDOW_SPACE_FAILPOINTS (the debug addon's I/O sites). Each fault gives a
// typed error and loses nothing that was acknowledged.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'

import { WindowSpace, WindowSpaceConfig, WindowSpaceController, readAuditLog, scanAuditLog } from '../src/index'
import { failpointEnv, requireFailpoints } from './failpoint-helpers'

const ENGINE = join(__dirname, 'fixtures', 'fault-engine.mjs')
const WINDOWS = 20_000
const config = (dir: string) => new WindowSpaceConfig(dir, WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: WINDOWS }))

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) {
    execFileSync('chmod', ['-R', 'u+w', d])
    rmSync(d, { recursive: true, force: true })
  }
})

/** A fresh state directory with the symbol FULL, made with no limit in force. */
function stateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ws-fault-'))
  dirs.push(dir)
  const { controller } = WindowSpaceController.bootstrap(config(dir))
  controller.resolveSymbol('FULL')
  controller.close()
  return dir
}

/**
 * What fault-engine.mjs prints when a scenario ends: the error that stopped it
 * and what it had done until then. Which of the other fields are set depends
 * on the scenario.
 */
interface ScenarioResult {
  ok?: boolean
  error: { name: string; code: string; message: string }
  ids: number[]
  claimed: { w: number; v: number }[]
  symbols: Record<string, number>
  ranges: number
}

/** What fault-engine.mjs prints, line by line, in its hold-and-read scenario. */
interface HoldReport {
  ready?: boolean
  seen?: unknown
  metrics?: unknown
  recount?: unknown
}

/** Runs a scenario in a child process with a file-size limit of `kib` KiB. */
function underLimit(dir: string, scenario: string, kib: number): ScenarioResult {
  const args = JSON.stringify({ stateDir: dir, windows: WINDOWS, scenario })
  const out = execFileSync('bash', ['-c', `ulimit -f ${kib}; exec "$0" "$1" "$2"`, process.execPath, ENGINE, args], { encoding: 'utf8' })
  return JSON.parse(out.trim().split('\n').pop()!) as ScenarioResult
}

function files(dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const f of readdirSync(dir)) if (f !== 'window-space.lock' && statSync(join(dir, f)).isFile()) out[f] = readFileSync(join(dir, f)).toString('base64')
  return out
}

describe('a full disk', () => {
  it('during payload appends: DiskFullError, every acknowledged record kept, no partial record left', () => {
    const dir = stateDir()
    const r = underLimit(dir, 'append-until-full', 512)
    expect(r.error.code).toBe('ERR_DISK_FULL')
    expect(r.error.name).toBe('DiskFullError')
    expect(r.ids.length).toBeGreaterThan(100)
    expect(r.ids).toEqual(r.ids.map((_: number, i: number) => i))
    const { controller, storageReport } = WindowSpaceController.bootstrap(config(dir))
    try {
      const trades = storageReport.stores.find((s) => s.store === 'trades')!
      expect(trades.records).toBe(r.ids.length)
      expect(trades.tornTailBytes).toBe(0) // the failed write left nothing behind
      const last = controller.payloadStores().trades.get(r.ids.length - 1)!
      expect(last.uri.startsWith(`u/${r.ids.length - 1}/`)).toBe(true)
      // The next append, without the limit, gets the next dense id.
      expect(controller.payloadStores().trades.append({ symbol: 'FULL', windowIdx: 0, slotKind: 'optionTrade', payloadType: 'Binary', uri: 'after', checksum: 1n, size: 1 })).toBe(r.ids.length)
    } finally {
      controller.close()
    }
  })

  it('during ledger growth: DiskFullError, earlier claims intact, metrics exact', () => {
    const dir = stateDir()
    const r = underLimit(dir, 'grow-until-full', 1024)
    expect(r.error.code).toBe('ERR_DISK_FULL')
    expect(r.claimed.length).toBeGreaterThan(3)
    const { controller } = WindowSpaceController.bootstrap(config(dir))
    try {
      for (const { w, v } of r.claimed) expect(controller.getSlot('FULL', w, 'optionTrade')).toMatchObject({ status: 'Pending', version: v })
      const failedAt = r.claimed.at(-1)!.w + 146
      expect(controller.getSlot('FULL', failedAt, 'optionTrade').status).toBe('Empty')
      expect(controller.slotMetrics()).toEqual(controller.recountSlots())
      expect(controller.slotMetrics().find((m) => m.slot === 'optionTrade')!.counts.Pending).toBe(r.claimed.length)
      // Without the limit, growth continues where it stopped.
      expect(controller.markPending('FULL', failedAt, 'optionTrade').version).toBe(1)
    } finally {
      controller.close()
    }
  })

  it('during symbol appends: DiskFullError, every acknowledged symbol kept with its id, no partial record left', () => {
    const dir = stateDir()
    const r = underLimit(dir, 'symbols-until-full', 24)
    expect(r.error.code).toBe('ERR_DISK_FULL')
    const acked = Object.entries(r.symbols)
    expect(acked.length).toBeGreaterThan(10)
    // The header, FULL's record (24 bytes) and one of 72 bytes for each 54-byte name: the failed add left nothing behind.
    expect(statSync(join(dir, 'symbols.log')).size).toBe(64 + 24 + 72 * acked.length)
    const { controller } = WindowSpaceController.bootstrap(config(dir))
    try {
      const symbols = controller.symbols()
      expect(symbols.length).toBe(acked.length + 1) // FULL plus every acknowledged one
      for (const [name, id] of acked) expect(symbols[id]).toBe(name)
    } finally {
      controller.close()
    }
  })
})

describe('a full disk during an audit-trail write', () => {
  it('gives DiskFullError, changes no slot whose intent line was not written, and the cut line is a torn append', () => {
    const dir = stateDir()
    const { controller: pre } = WindowSpaceController.bootstrap(config(dir))
    for (let w = 0; w < 2000; w += 500) pre.markPending('FULL', w, 'greeks') // allocate the rows (no audit lines)
    pre.close()
    const r = underLimit(dir, 'audit-until-full', 4)
    expect(r.error.code).toBe('ERR_DISK_FULL')
    expect(r.ranges).toBeGreaterThan(0)
    expect(statSync(join(dir, 'audit.log')).size).toBe(4096) // the last line was cut at the limit
    // With no limit, the next admin call ends the fragment with the torn mark, and its lines do not join it.
    const { controller: c } = WindowSpaceController.bootstrap(config(dir))
    c.retire('FULL', 1999, 'greeks', { reason: 'after the full disk' })
    const { entries, damaged, torn } = scanAuditLog(dir)
    expect(damaged).toEqual([])
    expect(torn).toHaveLength(1)
    expect(torn[0]!.offset).toBe(readFileSync(join(dir, 'audit.log'), 'utf8').slice(0, 4096).lastIndexOf('\n') + 1)
    expect(readFileSync(join(dir, 'audit.log'), 'utf8').split('\n')[torn[0]!.line - 1]).toMatch(/#torn$/)
    expect(readAuditLog(dir)).toEqual(entries)
    // Every range that returned has its intent and its outcome.
    const lines = entries.map((e) => `${e.reason}${e.phase === 'intent' ? ' (intent)' : ''}`)
    const done = [...Array(r.ranges).keys()].flatMap((i) => [`range ${i * 50} (intent)`, `range ${i * 50}`])
    // The range that met the full disk: its intent was cut (then nothing of it
    // changed), or its outcome was (then it changed, and its intent says so).
    const failed = r.ranges * 50
    const announced = lines.includes(`range ${failed} (intent)`)
    expect(lines).toEqual([...done, ...(announced ? [`range ${failed} (intent)`] : []), 'after the full disk (intent)', 'after the full disk'])
    expect(torn[0]!.line).toBe(done.length + (announced ? 2 : 1))
    const retired = [...Array(50).keys()].filter((i) => c.getSlot('FULL', failed + i, 'greeks').status === 'Retired').length
    expect(retired).toBe(announced ? 50 : 0)
    c.close()
  })
})

describe('a write cut short in audit.log or gc.log, injected in the command line', () => {
  const CLI = join(__dirname, '..', 'dist', 'cli.js')
  const run = (args: string[], spec?: string) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', input: '', env: failpointEnv(spec) })
  interface Finding {
    kind: string
    message: string
    line?: number
  }
  const verifyJson = (dir: string) => {
    const v = run(['verify', dir, '--json'])
    return { status: v.status, report: JSON.parse(v.stdout) as { ok: boolean; problems: Finding[]; warnings: Finding[] } }
  }

  /** A state directory whose window 3 of FULL was filled, then force-cleared: its artifact is garbage. */
  function withGarbage(): string {
    const dir = stateDir()
    const { controller: c } = WindowSpaceController.bootstrap(config(dir))
    for (let w = 0; w < 4; w++) {
      const claim = c.markPending('FULL', w, 'optionTrade')
      const a = c.writeArtifact(claim, 'a.json', `window ${w}`)
      const id = c.payloadStores().trades.append({ symbol: 'FULL', windowIdx: w, slotKind: 'optionTrade', payloadType: 'Json', uri: a.uri, checksum: a.checksum, size: a.size })
      c.setRef('FULL', w, 'optionTrade', { payloadType: 'Json', payloadId: id, version: claim.version, checksum: a.checksum })
    }
    c.forceClear('FULL', 3, 'optionTrade', { actor: 'test', reason: 'garbage' })
    c.close()
    return dir
  }

  it('audit.log: the command fails with ERR_DISK_FULL, run again it succeeds, and verify passes with a warning naming the torn line', () => {
    requireFailpoints('admin::intent-written')
    const dir = withGarbage()
    const args = ['clear', dir, '--symbol', 'FULL', '--slot', 'optionTrade', '--from', '0', '--to', '2', '--yes']
    const failed = run(args, 'audit.append=1*return(short)')
    expect(failed.status, failed.stdout + failed.stderr).toBe(1)
    expect(failed.stderr).toContain('ERR_DISK_FULL')
    const again = run(args)
    expect(again.status, again.stdout + again.stderr).toBe(0)
    const text = readFileSync(join(dir, 'audit.log'), 'utf8').split('\n')
    // Lines 1 and 2: the force-clear of window 3; line 3: the clear's intent, cut short.
    expect(text[2]).toMatch(/^\{"action":"forceClearRange",.*#torn$/)
    const { status, report } = verifyJson(dir)
    expect(report.problems).toEqual([])
    expect(report.ok).toBe(true)
    expect(status).toBe(0)
    const torn = report.warnings.filter((w) => w.kind === 'audit-log-torn')
    expect(torn.map((w) => w.line)).toEqual([3])
    expect(torn[0]!.message).toContain('audit.log line 3')
    expect(torn[0]!.message).toContain('cut short')
    const audit = run(['audit', dir])
    expect(audit.status).toBe(0)
    expect(audit.stderr).toContain('audit.log line 3 (offset')
    expect(audit.stderr).toContain('append cut short')
    expect(audit.stderr).not.toContain('damaged')
  })

  it('gc.log: gc --delete fails with ERR_DISK_FULL, run again it collects, and verify passes with a warning naming the torn line', () => {
    requireFailpoints('gc::log-written')
    const dir = withGarbage()
    const args = ['gc', dir, '--delete', '--min-age', '0']
    const failed = run(args, 'gclog.append=1*return(short)')
    expect(failed.status, failed.stdout + failed.stderr).toBe(1)
    expect(failed.stderr).toContain('ERR_DISK_FULL')
    const again = run(args)
    expect(again.status, again.stdout + again.stderr).toBe(0)
    expect(readFileSync(join(dir, 'gc.log'), 'utf8').split('\n')[0]).toMatch(/#torn$/)
    const { status, report } = verifyJson(dir)
    expect(report.problems).toEqual([])
    expect(report.ok).toBe(true)
    expect(status).toBe(0)
    const torn = report.warnings.filter((w) => w.kind === 'gc-log-torn')
    expect(torn.map((w) => w.line)).toEqual([1])
    expect(torn[0]!.message).toContain('gc.log line 1')
    expect(torn[0]!.message).toContain('cut short')
  })
})

describe('a read-only state directory', () => {
  it('gives a typed error and changes nothing', () => {
    const dir = stateDir()
    const before = files(dir)
    chmodSync(dir, 0o555)
    for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o444)
    const args = JSON.stringify({ stateDir: dir, windows: WINDOWS, scenario: 'bootstrap' })
    // As root, permissions do not stop writes: run the engine as an unprivileged user then.
    const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {}
    chmodSync(join(dir, '..'), statSync(join(dir, '..')).mode | 0o005)
    const out = execFileSync(process.execPath, [ENGINE, args], { encoding: 'utf8', ...asUser })
    const r = JSON.parse(out.trim()) as ScenarioResult
    expect(r.ok).toBe(false)
    expect(['ERR_PERMISSION_DENIED', 'ERR_READ_ONLY']).toContain(r.error.code)
    expect(r.error.message).toContain(dir)
    expect(files(dir)).toEqual(before)
  })
})

describe('a second process holding the directory', () => {
  it('sees the ledger the first one grew, and the same metrics', async () => {
    const dir = stateDir()
    const child = spawn(process.execPath, [ENGINE, JSON.stringify({ stateDir: dir, windows: WINDOWS, scenario: 'hold-and-read' })], { stdio: ['pipe', 'pipe', 'inherit'] })
    const lines: string[] = []
    const next = () =>
      new Promise<HoldReport>((resolve) => {
        const tryLine = () => (lines.length > 0 ? resolve(JSON.parse(lines.shift()!) as HoldReport) : child.stdout.once('data', tryLine))
        tryLine()
      })
    let buf = ''
    child.stdout.on('data', (d) => {
      buf += d
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, i))
        buf = buf.slice(i + 1)
      }
    })
    expect((await next()).ready).toBe(true)
    const sizeBefore = statSync(join(dir, 'trade-ledger.dat')).size
    const { controller } = WindowSpaceController.bootstrap(config(dir))
    const versions: number[] = []
    try {
      expect(controller.resolveSymbol('GROW')).toBe(1)
      for (let w = 0; w < 5000; w++) versions.push(controller.markPending('GROW', w, 'optionTrade', { leaseMs: 600_000 }).version)
      expect(statSync(join(dir, 'trade-ledger.dat')).size).toBeGreaterThan(sizeBefore)
      child.stdin.write(JSON.stringify({ symbol: 'GROW', upTo: 5000 }) + '\n')
      const seen = await next()
      expect(seen.seen).toEqual(versions.map((v) => ['Pending', v]))
      expect(seen.metrics).toEqual(controller.slotMetrics())
      expect(seen.metrics).toEqual(seen.recount)
    } finally {
      controller.close()
      child.kill()
    }
  })
})
