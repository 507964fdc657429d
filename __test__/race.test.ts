// Several engines — separate processes, and separately worker threads — race
// for the same 10,000 slots of one state directory and append to the same
// mapping table. Afterwards: exactly one successful fill per slot, every loser
// saw a typed refusal, payload ids are unique and dense, metrics equal an
// exact recount, concurrently added symbols got one id each, and ledger growth
// by one engine was used by the others.
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { afterEach, describe, expect, it } from 'vitest'

import { WindowSpace, WindowSpaceConfig, WindowSpaceController } from '../src/index'

const ENGINE = join(__dirname, 'fixtures', 'race-engine.mjs')
const WINDOWS = 10_000
const ENGINES = 4

interface RaceResult {
  engine: number
  wins: number[]
  refusals: Record<string, number>
  appended: number[]
  symbolIds: Record<string, number>
}

function runProcess(args: object): Promise<RaceResult> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [ENGINE, JSON.stringify(args)], { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`engine failed: ${err.message}\n${stderr}`))
      else resolve(JSON.parse(stdout) as RaceResult)
    })
  })
}

function runWorker(args: object): Promise<RaceResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(ENGINE, { workerData: args })
    w.once('message', resolve)
    w.once('error', reject)
    w.once('exit', (code) => code !== 0 && reject(new Error(`worker exited with ${code}`)))
  })
}

async function race(run: (args: object) => Promise<RaceResult>) {
  const stateDir = mkdtempSync(join(tmpdir(), 'ws-race-'))
  dirs.push(stateDir)
  const running = Array.from({ length: ENGINES }, (_, engine) => run({ stateDir, engine, windows: WINDOWS, start: (engine * WINDOWS) / ENGINES }))
  // Let them go together once all have bootstrapped (see the barrier in race-engine.mjs).
  const ready = () => Array.from({ length: ENGINES }, (_, e) => existsSync(join(stateDir, `ready-${e}`))).every(Boolean)
  while (!ready()) await new Promise((r) => setTimeout(r, 5))
  writeFileSync(join(stateDir, 'go'), '')
  const results = await Promise.all(running)
  const { controller, storageReport } = WindowSpaceController.bootstrap(
    new WindowSpaceConfig(stateDir, WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: WINDOWS })),
  )
  return { results, controller, storageReport }
}

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

describe.each([
  ['processes', runProcess],
  ['worker threads', runWorker],
] as const)('%s racing for the same slots', (_label, run) => {
  it('gives every slot exactly one winner, dense unique payload ids and exact metrics', async () => {
    const { results, controller, storageReport } = await race(run)
    try {
      // Exactly one successful fill per slot.
      const winners = new Map<number, number>()
      for (const r of results) {
        for (const w of r.wins) {
          expect(winners.has(w), `window ${w} won twice`).toBe(false)
          winners.set(w, r.engine)
        }
      }
      expect(winners.size).toBe(WINDOWS)
      // Every loser saw a typed refusal (busy while claimed, filled once done).
      for (const r of results) {
        const refused = Object.values(r.refusals).reduce((a, b) => a + b, 0)
        expect(r.wins.length + refused).toBe(WINDOWS)
        for (const code of Object.keys(r.refusals)) expect(['ERR_SLOT_BUSY', 'ERR_SLOT_FILLED']).toContain(code)
      }
      // More than one engine won something: they really raced.
      expect(results.filter((r) => r.wins.length > 0).length).toBeGreaterThan(1)
      // Payload ids: unique across engines and dense 0..n-1.
      const ids = results.flatMap((r) => r.appended).sort((a, b) => a - b)
      expect(ids).toEqual(Array.from({ length: WINDOWS }, (_, i) => i))
      const trades = controller.payloadStores().trades
      expect(trades.length).toBe(WINDOWS)
      // Each filled slot points to the record its winner appended for it.
      for (let w = 0; w < WINDOWS; w += 97) {
        const slot = controller.getSlot('RACE', w, 'optionTrade')
        expect(slot.status).toBe('Filled')
        const rec = trades.get(slot.payloadId)!
        expect(rec.windowIdx).toBe(w)
        expect(rec.uri).toBe(`race/${winners.get(w)}/${w}`)
        expect(slot.checksum).toBe(BigInt(w))
      }
      // Metrics: shared counters equal an exact recount, and both equal what happened.
      const metrics = controller.slotMetrics()
      expect(metrics).toEqual(controller.recountSlots())
      expect(metrics.find((m) => m.slot === 'optionTrade')!.counts.Filled).toBe(WINDOWS)
      // Symbols added concurrently: one id each, the same in every engine.
      for (const r of results) {
        for (const s of ['RACE', 'SHARED-A', 'SHARED-B']) expect(r.symbolIds[s]).toBe(results[0]!.symbolIds[s])
      }
      const all = controller.symbols()
      expect(new Set(all).size).toBe(all.length)
      expect(all.length).toBe(3 + ENGINES)
      for (const r of results) expect(all[r.symbolIds[`OWN-${r.engine}`]!]).toBe(`OWN-${r.engine}`)
      // Growth: the trade ledger grew to hold every window's chunk, allocated
      // by whichever engine got there first and used by all.
      const trade = storageReport.ledgers.find((l) => l.ledger === 'trade')!
      expect(trade.chunks).toBe(Math.ceil(WINDOWS / 146))
      const allocators = new Set(results.filter((r) => r.wins.length > 0).map((r) => r.engine))
      expect(allocators.size).toBeGreaterThan(1)
    } finally {
      controller.close()
    }
  })
})
