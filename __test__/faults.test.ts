// Fault injection: a full disk (a file-size limit set with `ulimit -f`, which
// turns writes past it into EFBIG) during payload appends, ledger growth and
// symbol-map rewrites; a read-only state directory; and a second process
// holding the directory open while the first grows it. Each fault gives a
// typed error and loses nothing that was acknowledged.
import { execFileSync, spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'

import { CorruptStateError, WindowSpace, WindowSpaceConfig, WindowSpaceController, readAuditLog, scanAuditLog } from '../src/index'

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

/** Runs a scenario in a child process with a file-size limit of `kib` KiB. */
function underLimit(dir: string, scenario: string, kib: number): Record<string, any> {
  const args = JSON.stringify({ stateDir: dir, windows: WINDOWS, scenario })
  const out = execFileSync('bash', ['-c', `ulimit -f ${kib}; exec "$0" "$1" "$2"`, process.execPath, ENGINE, args], { encoding: 'utf8' })
  return JSON.parse(out.trim().split('\n').pop()!)
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
      const failedAt = r.claimed.at(-1).w + 146
      expect(controller.getSlot('FULL', failedAt, 'optionTrade').status).toBe('Empty')
      expect(controller.slotMetrics()).toEqual(controller.recountSlots())
      expect(controller.slotMetrics().find((m) => m.slot === 'optionTrade')!.counts.Pending).toBe(r.claimed.length)
      // Without the limit, growth continues where it stopped.
      expect(controller.markPending('FULL', failedAt, 'optionTrade').version).toBe(1)
    } finally {
      controller.close()
    }
  })

  it('during symbol-map rewrites: DiskFullError, every acknowledged symbol kept with its id, no temp file left', () => {
    const dir = stateDir()
    const r = underLimit(dir, 'symbols-until-full', 24)
    expect(r.error.code).toBe('ERR_DISK_FULL')
    const acked = Object.entries(r.symbols as Record<string, number>)
    expect(acked.length).toBeGreaterThan(10)
    const { controller } = WindowSpaceController.bootstrap(config(dir))
    try {
      const symbols = controller.symbols()
      expect(symbols.length).toBe(acked.length + 1) // FULL plus every acknowledged one
      for (const [name, id] of acked) expect(symbols[id]).toBe(name)
      expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([])
    } finally {
      controller.close()
    }
  })
})

describe('a full disk during an audit-trail write', () => {
  it('gives DiskFullError, changes no slot whose intent line was not written, and the cut line stays one damaged line', () => {
    const dir = stateDir()
    const { controller: pre } = WindowSpaceController.bootstrap(config(dir))
    for (let w = 0; w < 2000; w += 500) pre.markPending('FULL', w, 'greeks') // allocate the rows (no audit lines)
    pre.close()
    const r = underLimit(dir, 'audit-until-full', 4)
    expect(r.error.code).toBe('ERR_DISK_FULL')
    expect(r.ranges).toBeGreaterThan(0)
    expect(statSync(join(dir, 'audit.log')).size).toBe(4096) // the last line was cut at the limit
    // With no limit, the next admin call's lines do not join the fragment.
    const { controller: c } = WindowSpaceController.bootstrap(config(dir))
    c.retire('FULL', 1999, 'greeks', { reason: 'after the full disk' })
    expect(() => readAuditLog(dir)).toThrow(CorruptStateError)
    const { entries, damaged } = scanAuditLog(dir)
    expect(damaged).toHaveLength(1)
    // Every range that returned has its intent and its outcome.
    const lines = entries.map((e) => `${e.reason}${e.phase === 'intent' ? ' (intent)' : ''}`)
    const done = [...Array(r.ranges).keys()].flatMap((i) => [`range ${i * 50} (intent)`, `range ${i * 50}`])
    // The range that met the full disk: its intent was cut (then nothing of it
    // changed), or its outcome was (then it changed, and its intent says so).
    const failed = r.ranges * 50
    const announced = lines.includes(`range ${failed} (intent)`)
    expect(lines).toEqual([...done, ...(announced ? [`range ${failed} (intent)`] : []), 'after the full disk (intent)', 'after the full disk'])
    expect(damaged[0]!.line).toBe(done.length + (announced ? 2 : 1))
    const retired = [...Array(50).keys()].filter((i) => c.getSlot('FULL', failed + i, 'greeks').status === 'Retired').length
    expect(retired).toBe(announced ? 50 : 0)
    c.close()
  })
})
