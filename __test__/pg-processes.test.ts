// Engines in separate processes sharing one PostgreSQL window space: every
// contested slot has exactly one winner, a killed engine's claims are taken
// over once their leases expire on the database's clock, and an engine that
// lost its claims has its late fills refused with VersionConflictError.
import { spawn, type ChildProcessByStdio } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { Readable, Writable } from 'node:stream'
import { afterAll, describe, expect, it } from 'vitest'

import { WindowSpace, WindowSpaceController } from '../src/index'
import { pgUrl, uniqueSpace } from './support/backends'

interface Engine {
  child: ChildProcessByStdio<Writable, Readable, null>
  ask(cmd: object): Promise<Record<string, unknown>>
}

const engines: Engine[] = []
afterAll(() => {
  for (const e of engines) e.child.kill('SIGKILL')
})

async function engine(space: string, windowCount: number): Promise<Engine> {
  const child = spawn(process.execPath, [join(__dirname, 'fixtures', 'pg-engine.mjs'), JSON.stringify({ url: pgUrl(), space, windowCount })], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const read = async () => {
    const r = await lines.next()
    if (r.done) throw new Error(`engine ${child.pid} exited`)
    return JSON.parse(r.value) as Record<string, unknown>
  }
  await read() // ready
  const e: Engine = {
    child,
    ask: async (cmd) => {
      child.stdin.write(JSON.stringify(cmd) + '\n')
      return read()
    },
  }
  engines.push(e)
  return e
}

describe('engines in several processes on one PostgreSQL server', () => {
  it('every slot claimed by four processes at once has exactly one winner, one by one and in batches', async () => {
    const space = uniqueSpace('race')
    const windows = 200
    const racers = await Promise.all([0, 1, 2, 3].map(() => engine(space, windows)))
    const all = Array.from({ length: 100 }, (_, i) => i)
    const single = await Promise.all(racers.map((r) => r.ask({ cmd: 'claimEach', windows: all, leaseMs: 600_000 })))
    const winners = new Map<number, number>()
    for (const s of single) for (const [w] of s.won as [number, number][]) winners.set(w, (winners.get(w) ?? 0) + 1)
    expect([...winners.keys()].sort((a, b) => a - b)).toEqual(all)
    expect([...winners.values()].every((n) => n === 1)).toBe(true)
    const batches = await Promise.all(racers.map((r) => r.ask({ cmd: 'claimNext', count: 40, leaseMs: 600_000 })))
    const batchWins = batches.flatMap((b) => (b.won as [number, number][]).map(([w]) => w))
    // 100 windows were left: each claimed once, none of the first 100 again.
    expect(batchWins.length).toBe(100)
    expect(new Set(batchWins).size).toBe(100)
    expect(batchWins.every((w) => w >= 100 && w < 200)).toBe(true)
  })

  it("a killed engine's claims expire on the database clock and are taken over; a stale engine's late fills are refused", async () => {
    const space = uniqueSpace('lease')
    const windows = 10
    const killed = await engine(space, windows)
    const stale = await engine(space, windows)
    const k = (await killed.ask({ cmd: 'claimEach', windows: [0, 1, 2], leaseMs: 1_000 })).won as [number, number, number][]
    const s = (await stale.ask({ cmd: 'claimEach', windows: [3, 4], leaseMs: 1_000 })).won as [number, number, number][]
    expect(k.length).toBe(3)
    expect(s.length).toBe(2)
    killed.child.kill('SIGKILL')
    const l = await WindowSpaceController.connect(pgUrl(), { windowSpace: WindowSpace.uniform({ origin: 0, windowDuration: 60_000, windowCount: windows }), space })
    try {
      // Every one of the five is taken over, one version up, once the
      // database's clock passes its deadline; until then the slot stays the
      // old holder's.
      for (const [w, v, deadline] of [...k, ...s]) {
        let c = await l.tryClaim('MULTI', w, 'optionTrade', { leaseMs: 600_000 })
        while (c === null) {
          const slot = await l.getSlot('MULTI', w, 'optionTrade')
          expect(slot).toMatchObject({ status: 'Pending', version: v })
          await new Promise((r) => setTimeout(r, 100))
          c = await l.tryClaim('MULTI', w, 'optionTrade', { leaseMs: 600_000 })
        }
        expect(c.version).toBe(v + 1)
        // The takeover's lease starts on the database clock at or after the old deadline.
        expect(c.leaseExpiresAt - 600_000).toBeGreaterThanOrEqual(deadline)
      }
      // The stale engine comes back and tries to publish: refused, and the slots stay the new holder's.
      const late = (await stale.ask({ cmd: 'fill', claims: s.map(([w, v]) => [w, v]) })).results as unknown[]
      expect(late).toEqual(['ERR_VERSION_CONFLICT', 'ERR_VERSION_CONFLICT'])
      for (const [w, v] of s) expect(await l.getSlot('MULTI', w, 'optionTrade')).toMatchObject({ status: 'Pending', version: v + 1 })
    } finally {
      await l.close()
    }
  })
})
