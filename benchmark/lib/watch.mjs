/**
 * The watch section of the benchmark: how fast a waiting engine in
 * another process learns of a fill, what a sleeping waiter costs, and what a
 * sleeping waiter costs the writers.
 *
 * - wake latency: this process fills a slot that `waitFor` (or a `watch()`
 *   iterator) in lib/watch-child.mjs is asleep on; the latency is the child's
 *   CLOCK_MONOTONIC when its promise resolved minus ours just before the fill.
 * - idle CPU: CPU time the child uses in a quiet period with a waiter armed
 *   (no polling means close to zero).
 * - writer cost: claim+fill cycles through `raw` with and without a waiter
 *   asleep in the child (writers pay a futex wake only while someone sleeps).
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { join } from 'node:path'

const CHILD = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'watch-child.mjs')
/** The operation name of the writer-cost rows in the results. */
export const WATCH_OP = 'claim+fill beside a waiter'
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function percentiles(xs) {
  const s = [...xs].sort((a, b) => a - b)
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))]
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s[s.length - 1], n: s.length }
}

/** Starts the child; returns { send, next(prefix), close }. */
function startChild(stateDir, symbol) {
  const child = spawn(process.execPath, [CHILD, stateDir, symbol], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = []
  let waiting = null
  createInterface({ input: child.stdout }).on('line', (l) => {
    lines.push(l)
    waiting?.()
  })
  const next = async (prefix) => {
    for (;;) {
      const i = lines.findIndex((l) => l.startsWith(prefix))
      if (i >= 0) return lines.splice(i, 1)[0]
      await new Promise((r) => (waiting = r))
    }
  }
  return { send: (s) => child.stdin.write(`${s}\n`), next, close: () => { child.stdin.write('quit\n'); child.stdin.end() }, exited: new Promise((r) => child.once('exit', r)) }
}

/**
 * Runs the section on a fresh directory `dir`; returns the figures for latest.json.
 * @param {object} ws - the library
 * @param {string} dir - an empty directory
 * @param {{ samples: number, idleMs: number, cycles: number }} o
 * @param {(t: object) => Promise<object>} measure - the harness's measure
 * @param {object} base - samples/warmup for measure
 */
export async function watchSection(ws, dir, o, measure, base) {
  const windows = o.samples * 2 + o.cycles * 3 + 16
  const cfg = new ws.WindowSpaceConfig(dir, ws.WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: windows }))
  const { controller: c } = ws.WindowSpaceController.bootstrap(cfg)
  const sym = c.resolveSymbol('WATCH')
  const greeks = c.payloadStores().greeks
  const id = greeks.append({ symbol: sym, windowIdx: 0, slotKind: 'greeks', payloadType: 'Json', uri: 'bench', checksum: 1n, size: 1 })
  const fill = (w) => {
    const v = c.raw.claim(sym, w, 7)
    return c.raw.fill(sym, w, 7, v, 1, id, 0, 1)
  }
  const child = startChild(dir, 'WATCH')
  const out = {}
  try {
    // waitFor wake latency, one fill at a time, the waiter asleep before each.
    const lat = []
    let w = 1
    for (let i = 0; i < o.samples; i++, w++) {
      child.send(`wait ${w}`)
      await child.next(`armed ${w}`)
      await sleep(2) // let the child's watcher thread go to sleep on the futex
      const t0 = process.hrtime.bigint()
      fill(w)
      const woke = (await child.next(`woke ${w} `)).split(' ')
      lat.push(Number(BigInt(woke[2]) - t0) / 1e3)
    }
    out.waitForWakeUs = percentiles(lat)
    // watch() latency.
    child.send(`watch ${o.samples}`)
    await child.next('armed')
    const wlat = []
    for (let i = 0; i < o.samples; i++, w++) {
      await sleep(2)
      const t0 = process.hrtime.bigint()
      fill(w)
      const saw = (await child.next(`saw ${w} `)).split(' ')
      wlat.push(Number(BigInt(saw[2]) - t0) / 1e3)
    }
    out.watchWakeUs = percentiles(wlat)
    // CPU of an idle waiter.
    child.send(`idle ${o.idleMs}`)
    const cpu = Number((await child.next('cpu ')).split(' ')[1])
    out.idleWaiterCpuUsPerSec = (cpu / o.idleMs) * 1000
    out.idleMs = o.idleMs
    // Writer cost with and without a sleeping waiter in another process.
    let cw = w
    const cycles = (n) => () => {
      for (let i = 0; i < n; i++) fill(cw++)
    }
    const n = Math.max(1, Math.floor(o.cycles / (base.samples + base.warmup)))
    const before = cw
    out.writerNoWaiter = await measure({ ...base, op: WATCH_OP, contender: 'window-space raw, nobody waiting', mode: 'buffered', ops: n, fn: cycles(n) })
    child.send(`wait ${windows - 1}`) // a waiter that sleeps through all of it
    await child.next(`armed ${windows - 1}`)
    await sleep(5)
    out.writerWithWaiter = await measure({ ...base, op: WATCH_OP, contender: 'window-space raw, a waiter asleep in another process', mode: 'buffered', ops: n, fn: cycles(n) })
    out.writerCycles = cw - before
  } finally {
    child.close()
    await child.exited
    c.close()
  }
  return out
}
