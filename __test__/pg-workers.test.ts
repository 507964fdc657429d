// Worker threads on the PostgreSQL backend: each loads its own instance of
// the addon, connects, claims and exits; claims are exclusive across them,
// and the main thread's ledger keeps working after they are gone. Workers
// terminated with calls in flight leave their process running, and a wait
// in flight does not keep their server sessions open.
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { describe, expect, it } from 'vitest'

import { WindowSpace, WindowSpaceController } from '../src/index'
import { pgClient, pgUrl, uniqueSpace } from './support/backends'

function runWorker(space: string, windows: number[]): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const w = new Worker(join(__dirname, 'fixtures', 'pg-worker.mjs'), { workerData: { url: pgUrl(), space, windows } })
    let won: number[] | undefined
    w.once('message', (m: number[]) => (won = m))
    w.once('error', reject)
    w.once('exit', (code) => (code === 0 && won ? resolve(won) : reject(new Error(`worker exited with ${code}`))))
  })
}

describe('worker threads on the PostgreSQL backend', () => {
  it('claim exclusively, exit, and leave the main thread working', async () => {
    const space = uniqueSpace('workers')
    const main = await WindowSpaceController.connect(pgUrl(), { windowSpace: WindowSpace.uniform({ origin: 0, windowDuration: 60_000, windowCount: 64 }), space })
    try {
      await main.resolveSymbol('WRK')
      const windows = Array.from({ length: 32 }, (_, i) => i)
      for (let round = 0; round < 2; round++) {
        const wins = await Promise.all([runWorker(space, windows), runWorker(space, windows), runWorker(space, windows)])
        if (round === 0) {
          const all = wins.flat().sort((a, b) => a - b)
          expect(all).toEqual(windows)
        } else {
          expect(wins.flat()).toEqual([])
        }
      }
      expect((await main.getSlot('WRK', 5, 'optionTrade')).status).toBe('Pending')
      expect((await main.claim('WRK', 40, 'optionTrade')).version).toBe(1)
    } finally {
      await main.close()
    }
  })

  it('terminated while calls and a wait are in flight, leave the process running and its ledger working', async () => {
    const child = spawn(process.execPath, [join(__dirname, 'fixtures', 'pg-worker-terminate.mjs'), pgUrl(), uniqueSpace('terminate'), '6'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('close', (c, s) => resolve([c, s])))
    expect({ code, signal, out, err }).toEqual({ code: 0, signal: null, out: 'ok\n', err: '' })
  }, 120_000)

  it('terminated in the middle of a wait, end their server sessions', async () => {
    const space = uniqueSpace('terminate-wait')
    const c = await pgClient()
    try {
      const w = new Worker(join(__dirname, 'fixtures', 'pg-worker-wait.mjs'), { workerData: { url: pgUrl(), space } })
      await new Promise((resolve, reject) => {
        w.once('error', reject)
        w.once('message', resolve)
      })
      const id = (await c.query<{ id: number }>('SELECT id FROM ws_spaces WHERE name = $1', [space])).rows[0]!.id
      let pid: number | undefined
      while (pid === undefined) {
        pid = (await c.query<{ pid: number }>('SELECT pid FROM ws_listeners WHERE space = $1', [id])).rows[0]?.pid
        if (pid === undefined) await new Promise((r) => setTimeout(r, 20))
      }
      await w.terminate()
      // The worker's LISTEN session ends once nothing of its ledger is left running.
      for (;;) {
        const alive = await c.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])
        if (!alive.rowCount) break
        await new Promise((r) => setTimeout(r, 50))
      }
    } finally {
      await c.end()
    }
  }, 30_000)
})
