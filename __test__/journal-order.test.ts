// One slot's changes reach a watcher in version order. Engines — separate
// processes, or worker threads of one process — race on six slots with
// claims (half with leases that expire at once, so claims are taken over),
// fills, clears and admin force-clears, while this process watches every
// change of their symbol. Every change of a slot must come one version after
// the one before it, from the status the one before left: a watcher that
// keeps a view of the slots ends where the slots are. The writers yield the
// CPU between taking their journal number and their compare-and-swap (the
// crash point `journal::reserved` armed with the `fail` crate's `yield`), so
// racing writers interleave there as often as possible.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'

import { WindowSpace, WindowSpaceConfig, WindowSpaceController, type SlotChange } from '../src/index'
import { failpointEnv, requireFailpoints } from './failpoint-helpers'

const ENGINE = join(__dirname, 'fixtures', 'order-engine.mjs')
const SCHEDULE = WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: 64 })
const WINDOWS = [0, 1, 2]
const KINDS = ['greeks', 'optionQuote']
const OPS = Number(process.env.WS_ORDER_OPS ?? 4000)
const MARK = 63

let dir: string
beforeAll(() => requireFailpoints('journal::reserved'))
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ws-order-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

function engine(seed: number, threads: number): Promise<{ code: number | null; out: string }> {
  const args = { stateDir: dir, seed, ops: OPS, windows: WINDOWS, kinds: KINDS, threads }
  const env = failpointEnv('journal::reserved=yield')
  const child = spawn(process.execPath, [ENGINE, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'], env })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (out += d))
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, out })))
}

describe('one slot’s changes reach a watcher in version order', () => {
  it.each([
    ['four processes', 4, 0],
    ['four worker threads of one process', 1, 4],
  ] as const)('with %s racing on six slots', async (_shape, processes, threads) => {
    const { controller: c } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, SCHEDULE, { journalCapacity: 1 << 20 }))
    try {
      c.resolveSymbol('ORDER')
      const seen: SlotChange[] = []
      const it = c.watch({ symbols: ['ORDER'] })
      const reading = (async () => {
        for await (const ch of it) {
          if (ch.windowIdx === MARK) break
          seen.push(ch)
        }
      })()
      const runs = await Promise.all(Array.from({ length: processes }, (_, p) => engine(p + 1, threads)))
      for (const r of runs) expect(r, r.out).toMatchObject({ code: 0 })
      c.retire('ORDER', MARK, 'greeks') // after every engine's last change
      await reading

      const last = new Map<string, { version: number; to: string }>()
      const wrong: string[] = []
      for (const ch of seen) {
        const key = `${ch.windowIdx} ${ch.slotKind}`
        const before = last.get(key) ?? { version: 0, to: 'Empty' }
        if (ch.version !== before.version + 1 || ch.from !== before.to) {
          wrong.push(`seq ${ch.seq}: ${key} ${ch.from}→${ch.to} v${ch.version} after ${before.to} v${before.version}`)
        }
        last.set(key, { version: ch.version, to: ch.to })
      }
      expect(wrong.slice(0, 10), `${wrong.length} of ${seen.length} changes out of order`).toEqual([])
      for (const w of WINDOWS) {
        for (const k of KINDS) {
          const slot = c.getSlot('ORDER', w, k as 'greeks')
          expect(last.get(`${w} ${k}`) ?? { version: 0, to: 'Empty' }).toEqual({ version: slot.version, to: slot.status })
        }
      }
      expect(seen.length).toBeGreaterThan(OPS)
    } finally {
      c.close()
    }
  }, 300_000)
})
