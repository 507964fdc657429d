// The `window-space` command given a postgres:// connection string: the
// built dist/cli.js runs under `node` against the run's PostgreSQL server,
// on a window space this file fills with the library, and is checked by its
// output, its exit status and — for clear and retire — by reading the slots
// and the audit trail back with the library. Directory-only commands refuse.
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { SLOT_STATUSES, WindowSpaceController, type Ledger } from '../src/index'
import { pgClient, pgUrl, schedule, uniqueSpace } from './support/backends'

const cli = join(__dirname, '..', 'dist', 'cli.js')
const WINDOWS = 20

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

let url: string
let space: string
let work: string
let l: Ledger
const uris = new Map<string, string>()

/** The options naming the test's window space. */
const at = () => ['--space', space]

async function fill(symbol: string, w: number, slot: 'optionTrade' | 'greeks') {
  const claim = await l.claim(symbol, w, slot)
  const uri = `artifacts/${symbol}/${slot}/${w}`
  const payloadId = await l.appendPayload(slot === 'greeks' ? 'greeks' : 'trades', { symbol, windowIdx: w, slotKind: slot, payloadType: 'Json', uri, checksum: 0xabcn, size: 3 })
  await l.fill(symbol, w, slot, { version: claim.version, payloadType: 'Json', payloadId, checksum: 0xabcn })
  uris.set(`${symbol}/${w}/${slot}`, uri)
}

beforeAll(async () => {
  url = pgUrl()
  space = uniqueSpace('cli')
  work = mkdtempSync(join(tmpdir(), 'ws-cli-pg-'))
  l = await WindowSpaceController.connect(url, { windowSpace: schedule(WINDOWS), space })
  await l.resolveSymbol('AAPL')
  await l.resolveSymbol('MSFT')
  await fill('AAPL', 0, 'optionTrade')
  await fill('AAPL', 1, 'optionTrade')
  await fill('MSFT', 2, 'greeks')
  await l.claim('AAPL', 3, 'optionTrade')
  await l.resolveSymbol('IBM')
})

afterAll(async () => {
  await l.close()
  rmSync(work, { recursive: true, force: true })
})

describe('looking at a window space by connection string', () => {
  it('inspect --json counts what the test did, as slotMetrics() does', async () => {
    const r = ws('inspect', url, ...at(), '--json')
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const doc = JSON.parse(r.stdout) as { space: string; schedule: { windowCount: number }; symbols: string[]; slots: Array<Record<string, string | number>> }
    expect(doc.space).toBe(space)
    expect(doc.schedule.windowCount).toBe(WINDOWS)
    expect([...doc.symbols].sort()).toEqual(['AAPL', 'IBM', 'MSFT'])
    const ot = doc.slots.find((s) => s.slot === 'optionTrade')!
    expect(ot).toMatchObject({ ledger: 'trade', Filled: 2, Pending: 1, Cleared: 0, Retired: 0, Empty: 3 * WINDOWS - 3 })
    expect(doc.slots.find((s) => s.slot === 'greeks')).toMatchObject({ ledger: 'enrichment', Filled: 1 })
    const expected = (await l.slotMetrics()).map((m) => ({ ledger: m.ledger, slot: m.slot, ...m.counts }))
    expect(doc.slots).toEqual(expected)
  })

  it('inspect prints the counts as text', () => {
    const r = ws('inspect', url, ...at())
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    expect(r.stdout).toContain(`space           ${space} (PostgreSQL)`)
    expect(r.stdout).toContain(`uniform, ${WINDOWS} windows`)
    const line = r.stdout.split('\n').find((x) => /^trade\s+optionTrade\s/.test(x))!
    expect(line.trim().split(/\s+/).slice(2).map(Number)).toEqual(SLOT_STATUSES.map((s) => ({ Empty: 3 * WINDOWS - 3, Pending: 1, Filled: 2 })[s as string] ?? 0))
  })

  it('metrics prints the slot gauges in the Prometheus text format', () => {
    const r = ws('metrics', url, ...at())
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    expect(r.stdout).toContain('# TYPE window_space_slots gauge')
    expect(r.stdout).toContain('window_space_slots{ledger="trade",slot="optionTrade",status="Filled"} 2')
    expect(r.stdout).toContain('window_space_slots{ledger="trade",slot="optionTrade",status="Pending"} 1')
    expect(r.stdout).toContain('window_space_slots{ledger="enrichment",slot="greeks",status="Filled"} 1')
  })

  it('export prints one JSON line per row with a non-Empty slot, matching the ledger', async () => {
    const r = ws('export', url, ...at())
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const lines = r.stdout.trim().split('\n').map((x) => JSON.parse(x) as { ledger: string; symbol: string; symbolId: number; windowIdx: number; slots: Record<string, { status: string; version: number; payloadId?: number; uri?: string; checksum?: string }> })
    expect(lines.map((x) => `${x.ledger}/${x.symbol}/${x.windowIdx}`).sort()).toEqual(['enrichment/MSFT/2', 'trade/AAPL/0', 'trade/AAPL/1', 'trade/AAPL/3'])
    for (const line of lines) {
      expect(line.symbolId).toBe(await l.symbolId(line.symbol))
      const [row] = await l.rows(line.symbol, { from: line.windowIdx, to: line.windowIdx + 1 }, line.ledger as 'trade')
      for (const [kind, slot] of Object.entries(line.slots)) {
        const want = (row as unknown as Record<string, { status: string; version: number; payloadId: number }>)[kind]!
        expect(slot.status).toBe(want.status)
        expect(slot.version).toBe(want.version)
        if (want.status === 'Filled') {
          expect(slot.payloadId).toBe(want.payloadId)
          expect(slot.uri).toBe(uris.get(`${line.symbol}/${line.windowIdx}/${kind}`))
          expect(slot.checksum).toBe('0x0000000000000abc')
        }
      }
    }
    const one = ws('export', url, ...at(), '--symbol', 'AAPL', '--ledger', 'trade', '--from', '1', '--to', '3', '--all-rows')
    expect(one.status).toBe(0)
    expect(one.stdout.trim().split('\n').map((x) => (JSON.parse(x) as { windowIdx: number }).windowIdx)).toEqual([1, 2])
  })

  it('an unknown symbol and a space the database does not hold are bad input; the space is not created', async () => {
    const r = ws('export', url, ...at(), '--symbol', 'NOPE')
    expect(r.status).toBe(2)
    expect(r.stderr).toContain('unknown symbol "NOPE"')
    const missing = `${space}-mistyped`
    const s = ws('inspect', url, '--space', missing)
    expect(s.status).not.toBe(0)
    expect(s.stderr).toContain(`no window space named "${missing}"`)
    const again = await WindowSpaceController.connect(url, { windowSpace: schedule(WINDOWS), space: missing, existingOnly: true }).then(
      (x) => x.close().then(() => 'opened'),
      (e: unknown) => (e as Error).message,
    )
    expect(again).toContain(`no window space named "${missing}"`)
    const b = ws('inspect', url, ...at(), '--by-symbol')
    expect(b.status).toBe(2)
    expect(b.stderr).toContain('--by-symbol works on a state directory only')
    const d = ws('inspect', work, '--space', space)
    expect(d.status).toBe(2)
    expect(d.stderr).toContain('--space names a window space in a database')
  })
})

describe('changing a window space by connection string', () => {
  it('clear force-clears a slot, audited with --actor and --reason', async () => {
    const aapl = await l.symbolId('AAPL')
    const before = await l.getSlot('AAPL', 1, 'optionTrade')
    expect(before.status).toBe('Filled')

    const refused = ws('clear', url, ...at(), '--symbol', 'AAPL', '--slot', 'optionTrade', '--window', '1')
    expect(refused.status).toBe(2)
    expect(refused.stderr).toContain('refused without --yes')
    expect((await l.getSlot('AAPL', 1, 'optionTrade')).status).toBe('Filled')

    const dry = ws('clear', url, ...at(), '--symbol', 'AAPL', '--slot', 'optionTrade', '--window', '1', '--dry-run')
    expect(dry.status).toBe(0)
    expect(dry.stdout).toContain('would force-clear 1 slot (1 Filled)')
    expect((await l.getSlot('AAPL', 1, 'optionTrade')).status).toBe('Filled')

    const r = ws('clear', url, ...at(), '--symbol', 'AAPL', '--slot', 'optionTrade', '--window', '1', '--yes', '--actor', 'ops-alice', '--reason', 'bad upstream file')
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    expect(r.stdout.trim()).toBe('force-cleared 1 slot')
    const after = await l.getSlot('AAPL', 1, 'optionTrade')
    expect(after.status).toBe('Cleared')
    expect(after.version).toBeGreaterThan(before.version)
    const audit = await l.audit()
    expect(audit.filter((e) => e.actor === 'ops-alice')).toEqual([expect.objectContaining({ reason: 'bad upstream file', symbolId: aapl, windowIdx: 1, slotKind: 'optionTrade' })])

    const shown = ws('audit', url, ...at(), '--json')
    expect(shown.status).toBe(0)
    const entries = shown.stdout.trim().split('\n').map((x) => JSON.parse(x) as { actor: string; reason: string; windowIdx: number })
    expect(entries.filter((e) => e.actor === 'ops-alice')).toEqual([expect.objectContaining({ reason: 'bad upstream file', windowIdx: 1 })])
  })

  it('retire retires a window range and reports how many changed', async () => {
    const r = ws('retire', url, ...at(), '--symbol', 'AAPL', '--slot', 'optionTrade', '--from', '3', '--to', '6', '--yes', '--actor', 'ops-bob', '--reason', 'delisted', '--json')
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const doc = JSON.parse(r.stdout) as { changed: number; wouldChange: Record<string, number> }
    expect(doc.changed).toBe(3)
    expect(doc.wouldChange).toMatchObject({ Pending: 1, Empty: 2 })
    for (const w of [3, 4, 5]) expect((await l.getSlot('AAPL', w, 'optionTrade')).status).toBe('Retired')
    expect((await l.getSlot('AAPL', 6, 'optionTrade')).status).toBe('Empty')
    expect((await l.audit()).filter((e) => e.actor === 'ops-bob').map((e) => e.windowIdx).sort()).toEqual([3, 4, 5])

    const inspect = JSON.parse(ws('inspect', url, ...at(), '--json').stdout) as { slots: Array<Record<string, string | number>> }
    expect(inspect.slots.find((s) => s.slot === 'optionTrade')).toMatchObject({ Filled: 1, Pending: 0, Cleared: 1, Retired: 3 })
  })
})

describe('verify with a connection string', () => {
  it('passes on a space the library wrote, and names each fault planted by hand, exiting 1', async () => {
    const space2 = uniqueSpace('verify')
    const v = await WindowSpaceController.connect(url, { windowSpace: schedule(WINDOWS), space: space2 })
    try {
      await v.resolveSymbol('VRFY')
      for (const w of [0, 1, 2, 3]) {
        const c = await v.claim('VRFY', w, 'optionTrade')
        const payloadId = await v.appendPayload('trades', { symbol: 'VRFY', windowIdx: w, slotKind: 'optionTrade', payloadType: 'Json', uri: `u/${w}`, checksum: 1n, size: 1 })
        await v.fill('VRFY', w, 'optionTrade', { version: c.version, payloadType: 'Json', payloadId, checksum: 1n })
      }
      await v.claim('VRFY', 4, 'optionTrade', { leaseMs: 1 })
      const clean = ws('verify', url, '--space', space2)
      expect(clean.stderr).toBe('')
      expect(clean.status).toBe(0)
      expect(clean.stdout).toContain('OK: no problems found')
      expect(clean.stdout).toContain('warning: 1 Pending slots have an expired lease')

      // Faults only a hand-written statement can make.
      const raw = await pgClient()
      try {
        const id = (await raw.query<{ id: number }>('SELECT id FROM ws_spaces WHERE name = $1', [space2])).rows[0]!.id
        await raw.query('DELETE FROM ws_payloads WHERE space = $1 AND uri = $2', [id, 'u/1'])
        await raw.query('UPDATE ws_slots SET lease_until = 5 WHERE space = $1 AND window_idx = 2', [id])
        await raw.query('UPDATE ws_slots SET status = 3, version = version + 1, payload_type = 0, payload_id = 0, checksum = 0 WHERE space = $1 AND window_idx = 3', [id])
      } finally {
        await raw.end()
      }
      const r = ws('verify', url, '--space', space2, '--json')
      expect(r.status).toBe(1)
      const j = JSON.parse(r.stdout) as { ok: boolean; problems: Array<{ kind: string; message: string }> }
      expect(j.ok).toBe(false)
      expect(j.problems.map((p) => [p.kind, /window (\d+)/.exec(p.message)![1]])).toEqual([
        ['slot-fields', '2'],
        ['missing-record', '1'],
        ['change-feed', '3'],
      ])
      const text = ws('verify', url, '--space', space2)
      expect(text.status).toBe(1)
      expect(text.stdout).toContain('3 problems found')
      expect(ws('verify', url, '--space', space2, '--artifacts').status).toBe(2)
    } finally {
      await v.close()
    }
  })
})

describe('grid with a connection string', () => {
  it("shows one symbol's windows as the ledger reads them, a Pending slot whose lease ran out as stale", async () => {
    await l.claim('AAPL', 5, 'greeks', { leaseMs: 1 })
    const r = ws('grid', url, ...at(), '--symbol', 'AAPL', '--slot', 'optionTrade,greeks', '--to', '6', '--json')
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const g = JSON.parse(r.stdout) as { symbol: string; from: number; to: number; legend: Record<string, string>; slots: Record<string, string> }
    expect(g).toMatchObject({ symbol: 'AAPL', from: 0, to: 6 })
    const expected: Record<string, string> = {}
    for (const kind of ['optionTrade', 'greeks'] as const) {
      let line = ''
      for (let w = 0; w < 6; w++) {
        const st = await l.getSlot('AAPL', w, kind)
        line += g.legend[st.status === 'Pending' && st.leaseExpiresAt! <= Date.now() ? 'Stale' : st.status]
      }
      expected[kind] = line
    }
    expect(g.slots).toEqual(expected)
    expect(g.slots.greeks!.at(-1)).toBe(g.legend.Stale)
    expect(g.slots.optionTrade![0]).toBe(g.legend.Filled)
    const text = ws('grid', url, ...at(), '--symbol', 'AAPL', '--to', '6', '--no-color')
    expect(text.status).toBe(0)
    expect(text.stdout.split('\n')[0]).toContain('AAPL, windows 0..5')
    expect(ws('grid', url, ...at(), '--symbol', 'AAPL,MSFT').status).toBe(2)
  })
})

describe('serve-metrics with a connection string', () => {
  it("serves the space's slot gauges on 127.0.0.1 until SIGTERM, naming the database without its password", async () => {
    const withPassword = url.replace('postgresql://postgres@', 'postgresql://postgres:s3cret@')
    const child = spawn(process.execPath, [cli, 'serve-metrics', withPassword, ...at(), '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let err = ''
    const metricsUrl = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (b: Buffer) => {
        err += b.toString()
        const m = /on (http:\/\/127\.0\.0\.1:\d+\/metrics)\n/.exec(err)
        if (m) resolve(m[1]!)
      })
      child.on('exit', () => reject(new Error(`exited early: ${err}`)))
    })
    expect(err).toContain(`serving metrics of space ${space} of postgresql://postgres:***@`)
    expect(err).not.toContain('s3cret')
    const res = await fetch(metricsUrl)
    expect(res.status).toBe(200)
    const text = await res.text()
    expect(text).toContain('window_space_slots{ledger="enrichment",slot="greeks",status="Filled"} 1\n')
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
  })
})

describe('directory-only commands refuse a connection string', () => {
  const cases: Array<[string, string[]]> = [
    ['gc', []],
    ['repair', []],
    ['migrate', []],
  ]
  it.each(cases)('%s', async (command, extra) => {
    const before = await l.slotMetrics()
    const r = ws(command, url, ...extra)
    expect(r.status).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toContain(`${command} works on a state directory only; with a postgres:// connection string use inspect, grid, verify, metrics, serve-metrics, export, audit, clear, retire, retention`)
    expect(await l.slotMetrics()).toEqual(before)
  })
})
