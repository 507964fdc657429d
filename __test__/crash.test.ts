// Crash suite: engine processes loop claim → append → fill (and clear,
// force-clear, retire, symbol adds, schedule roll-forward) while this test
// SIGKILLs them at random moments, over many rounds, in both durability modes.
// Each engine logs what it saw succeed. After every round we bootstrap and
// check the crash guarantees against the logs: nothing acknowledged is lost,
// no Filled slot refers to a missing record, payload ids are never reused,
// torn tails are cut and reported, no slot is half-written, dead engines'
// claims become claimable, and the rebuilt metrics equal an exact count.
import { spawn, type ChildProcess } from 'node:child_process'
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

import { VersionConflictError, WindowSpace, WindowSpaceConfig, WindowSpaceController, type WindowSpaceController as Controller } from '../src/index'

const ENGINE = join(__dirname, 'fixtures', 'crash-engine.mjs')
const WINDOWS = 20_000
const LEASE_MS = 150
const ENGINES = 3
// WS_CRASH_ROUNDS raises the round count for soak runs (npm run soak).
const ROUNDS = Number(process.env.WS_CRASH_ROUNDS ?? 12)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** One line of an engine's log: the call it acknowledges (`op`) and that call's fields, which depend on `op`. */
type Ack = { e: number; op: string; w?: number; v?: number; id?: number; store?: string; uri?: string; checksum?: string; name?: string; [k: string]: unknown }

const dir = mkdtempSync(join(tmpdir(), 'ws-crash-'))
const logPath = join(dir, '..', `${dir.split('/').pop()}.acks`)
afterAll(() => {
  rmSync(dir, { recursive: true, force: true })
  rmSync(logPath, { force: true })
})

function spawnEngine(engine: number, round: number, durability: 'buffered' | 'sync'): { child: ChildProcess; ready: Promise<void> } {
  const args = { stateDir: dir, engine, windows: WINDOWS, durability, leaseMs: LEASE_MS, log: logPath, seed: round * 1000 + engine + 1 }
  const child = spawn(process.execPath, [ENGINE, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr.on('data', (d) => (err += d))
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => String(d).includes('ready') && resolve())
    child.once('exit', (code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`engine ${engine} exited (${code}) before it was killed:\n${err}`))))
  })
  return { child, ready }
}

function readAcks(): Ack[] {
  let text = ''
  try {
    text = readFileSync(logPath, 'utf8')
  } catch {
    return []
  }
  // A kill can cut the last line of an engine's log short: ignore a partial line.
  return text
    .split('\n')
    .filter((l) => l.endsWith('}'))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Ack]
      } catch {
        return []
      }
    })
}

const knownRecords = new Map<string, string>() // `${store}:${id}` → uri, from earlier rounds

function verify(c: Controller, report: ReturnType<typeof WindowSpaceController.bootstrap>['storageReport'], acks: Ack[]) {
  const stores = c.payloadStores()
  // 3. Payload ids are never reused or renumbered: every acknowledged append
  // still resolves to the record it wrote, and so does every record seen before.
  for (const a of acks.filter((x) => x.op === 'append')) {
    const rec = (stores as unknown as Record<string, { get(id: number): { uri: string; checksum: bigint } | null }>)[a.store as string]!.get(a.id as number)
    expect(rec, `acknowledged ${a.store} record ${a.id} is missing`).not.toBeNull()
    expect(rec!.uri).toBe(a.uri)
    expect(rec!.checksum).toBe(BigInt(a.checksum as string))
    knownRecords.set(`${a.store}:${a.id}`, a.uri as string)
  }
  for (const name of ['trades', 'quotes'] as const) {
    const s = stores[name]
    const len = s.length
    for (const [key, uri] of knownRecords) {
      const [store, id] = key.split(':')
      if (store === name) {
        expect(Number(id)).toBeLessThan(len)
        expect(s.get(Number(id))!.uri).toBe(uri)
      }
    }
  }
  // 1. No acknowledged fill is lost: on the shared symbol nothing but a fill
  // ends a claim's life, so every acknowledged fill is still there.
  for (const a of acks.filter((x) => x.op === 'fill')) {
    const slot = c.getSlot('CRASH', a.w as number, 'optionTrade')
    expect(slot.status, `fill of window ${a.w} lost`).toBe('Filled')
    expect(slot.payloadId).toBe(a.id)
    expect(slot.version).toBe((a.v as number) + 1)
  }
  // Acknowledged retires are terminal.
  for (const a of acks.filter((x) => x.op === 'retire')) {
    expect(c.getSlot(c.symbolName(symbolIdOf(acks, a.e)), a.w as number, 'optionQuote').status).toBe('Retired')
  }
  // 2 and 5. Every slot reads whole; a Filled slot refers to an existing record
  // written for it, with the same checksum.
  const symbols = c.symbols()
  const checked: Array<[string, 'optionTrade' | 'optionQuote', 'trades' | 'quotes']> = [
    ['CRASH', 'optionTrade', 'trades'],
    ...symbols.filter((s) => s.startsWith('ADMIN-')).map((s): [string, 'optionQuote', 'quotes'] => [s, 'optionQuote', 'quotes']),
  ]
  for (const [name, kind, store] of checked) {
    if (!symbols.includes(name)) continue
    for (let w = 0; w < WINDOWS; w++) {
      const slot = c.getSlot(name, w, kind)
      if (slot.status !== 'Filled') continue
      const rec = stores[store].get(slot.payloadId)
      expect(rec, `${name}/${w} points to missing ${store} record ${slot.payloadId}`).not.toBeNull()
      expect(rec!.windowIdx).toBe(w)
      expect(c.symbolName(rec!.symbolId)).toBe(name)
      expect(rec!.checksum).toBe(slot.checksum)
    }
  }
  // Symbols keep their ids.
  for (const a of acks.filter((x) => x.op === 'symbol')) expect(symbols[a.id as number]).toBe(a.name)
  // 6. Claims of dead engines: once their lease expired, bootstrap counts them
  // as stale, and they are claimable.
  const pending = c.recountSlots().reduce((n, m) => n + m.counts.Pending, 0)
  expect(report.staleClaims).toBe(pending)
  // 7. Metrics rebuilt at bootstrap equal an exact count.
  expect(c.slotMetrics()).toEqual(c.recountSlots())
  // Roll-forwards that were acknowledged are persisted.
  const rolled = acks.filter((x) => x.op === 'schedule').map((x) => x.windows as number)
  if (rolled.length > 0) expect(report.windowCount).toBeGreaterThanOrEqual(Math.max(...rolled))
}

function symbolIdOf(acks: Ack[], engine: number): number {
  return acks.find((a) => a.op === 'symbol' && a.e === engine && String(a.name).startsWith('ADMIN-'))!.id as number
}

describe('SIGKILL at random moments', () => {
  it(`keeps every crash guarantee over ${ROUNDS} rounds in both durability modes`, async () => {
    let tornTailsSeen = 0
    let takeovers = 0
    for (let round = 0; round < ROUNDS; round++) {
      const durability = round % 2 === 0 ? 'buffered' : 'sync'
      const engines = Array.from({ length: ENGINES }, (_, e) => spawnEngine(e, round, durability))
      // Some rounds kill during bootstrap (right after spawn), most mid-work.
      if (round % 4 !== 3) await Promise.all(engines.map((e) => e.ready))
      await sleep(round % 4 === 3 ? Math.floor(Math.random() * 40) : 50 + Math.floor(Math.random() * 250))
      for (const { child } of engines) {
        child.kill('SIGKILL')
        if (Math.random() < 0.5) await sleep(Math.floor(Math.random() * 15))
      }
      await Promise.all(engines.map((e) => new Promise((r) => (e.child.exitCode !== null || e.child.signalCode !== null ? r(null) : e.child.once('exit', r)))))
      await Promise.all(engines.map((e) => e.ready.catch(() => undefined)))

      // Every few rounds, leave what a writer killed in the middle of an append
      // leaves: the start of a record (framing, checksum, part of the body).
      const tear = round % 3 === 2
      if (tear) {
        const partial = Buffer.alloc(40)
        partial.write('WSR1', 0, 'latin1')
        partial.writeUInt32LE(48 + 30, 4)
        appendFileSync(join(dir, 'trades.map'), partial)
      }

      await sleep(LEASE_MS + 50) // let the dead engines' leases expire
      const acks = readAcks()
      const { controller, storageReport } = WindowSpaceController.bootstrap(
        new WindowSpaceConfig(dir, WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: WINDOWS })),
      )
      try {
        expect(storageReport.exclusive).toBe(true)
        const torn = storageReport.stores.find((s) => s.store === 'trades')!
        if (tear) {
          expect(torn.tornTailBytes).toBeGreaterThan(0)
          expect(torn.tornTailRepaired).toBe(true)
          tornTailsSeen++
        }
        for (const s of storageReport.stores) if (s.tornTailBytes > 0) expect(s.tornTailRepaired).toBe(true)
        verify(controller, storageReport, acks)

        // A stale claim of a dead engine is taken over, and its holder's fill is refused.
        let stale: number | undefined
        for (let w = 0; w < WINDOWS && stale === undefined; w++) {
          if (controller.getSlot('CRASH', w, 'optionTrade').status === 'Pending') stale = w
        }
        if (stale !== undefined) {
          const slot = controller.getSlot('CRASH', stale, 'optionTrade')
          const taken = controller.markPending('CRASH', stale, 'optionTrade', { leaseMs: 1 })
          expect(taken.version).toBe(slot.version + 1)
          const id = controller.payloadStores().trades.length - 1
          expect(() =>
            controller.setOptionTradeRef('CRASH', stale, { payloadType: 'Binary', payloadId: id, version: slot.version, checksum: 1n }),
          ).toThrow(VersionConflictError)
          controller.clearSlot('CRASH', stale, 'optionTrade', taken)
          takeovers++
        }
      } finally {
        controller.close()
      }
    }
    expect(tornTailsSeen).toBeGreaterThan(0)
    expect(takeovers).toBeGreaterThan(0)
    // The engines really worked: many fills were acknowledged across the rounds.
    expect(readAcks().filter((a) => a.op === 'fill').length).toBeGreaterThan(50)
  }, 180_000 + ROUNDS * 5_000)
})
