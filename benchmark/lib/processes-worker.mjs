/**
 * One engine of the processes section (lib/processes.mjs): a child process
 * (child_process.fork, messages over its IPC channel) or a worker thread
 * (messages over its parentPort). It opens the shared state directory with a
 * controller of its own and runs raw claim+fill cycles when the parent says.
 *
 * Messages from the parent, each answered once:
 *   { type: 'init', dir, pids, marker }      → { type: 'ready' }
 *       pids[kind]: the payload id this engine fills slots of that kind with;
 *       marker: the low 32 bits of the checksum it fills with (names the engine)
 *   { type: 'prepare', round, symbols, n }    → { type: 'prepared', round }
 *       builds the round's slot list (slotAt in lib/processes.mjs) outside the timing
 *   { type: 'go', round, startAt }            → { type: 'done', round, startedAt, endedAt, wins, busy, filled, otherClaim, failedFills, won, cpuNs, waitNs }
 *       waits until process.hrtime.bigint() (CLOCK_MONOTONIC, one clock for
 *       every process and thread of the host) reaches startAt, then for each
 *       slot: claim; if refused (another engine has it), note the code and move
 *       on; else fill with this engine's payload id. `won[k]` is 1 for the slots
 *       it filled; cpuNs and waitNs: the time its thread spent on a CPU and
 *       waiting in a run queue for one meanwhile (Linux schedstat, else null).
 *   { type: 'quit' }                          → closes the controller and exits
 */
import { readFileSync } from 'node:fs'
import { parentPort } from 'node:worker_threads'
import { setTimeout as sleep } from 'node:timers/promises'

import { loadWindowSpace } from './floor.mjs'
import { slotAt } from './processes.mjs'

const send = parentPort ? (m) => parentPort.postMessage(m) : (m) => process.send(m)
const { ws } = loadWindowSpace()
let c = null
let pids = null
let marker = 0
let plan = null

/**
 * Sleeps until shortly before `t`, then spins up to it, so that engines that
 * have a core start within microseconds of each other (a timer may fire late
 * on a busy machine; the spin covers its last milliseconds).
 */
async function until(t) {
  const ms = Number(t - process.hrtime.bigint()) / 1e6 - 5
  if (ms > 0) await sleep(ms)
  while (process.hrtime.bigint() < t) {
    // spin: the last five milliseconds
  }
}

/**
 * This thread's time on a CPU and time waiting for one (ns), from Linux's
 * /proc/thread-self/schedstat; null where the file is missing. The kernel
 * brings a running thread's CPU time up to date at scheduler ticks, so a
 * difference of two readings is good to a tick (a few ms): fine for rounds of
 * a tenth of a second and more, not for smoke sizes.
 */
function schedstat() {
  try {
    const [onCpu, waiting] = readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')
    return { onCpu: Number(onCpu), waiting: Number(waiting) }
  } catch {
    return null
  }
}

function run(round) {
  const { sym, win, kind, n, won } = plan
  const raw = c.raw
  let wins = 0
  let busy = 0
  let filled = 0
  let otherClaim = 0
  let failedFills = 0
  const sched0 = schedstat()
  const startedAt = process.hrtime.bigint()
  for (let k = 0; k < n; k++) {
    const s = sym[k]
    const w = win[k]
    const kd = kind[k]
    const v = raw.claim(s, w, kd)
    if (v < 0) {
      if (v === -1) busy++
      else if (v === -2) filled++
      else otherClaim++
      continue
    }
    if (raw.fill(s, w, kd, v, 1, pids[kd], 0, marker) < 0) failedFills++
    else {
      won[k] = 1
      wins++
    }
  }
  const endedAt = process.hrtime.bigint()
  const sched1 = schedstat()
  const cpuNs = sched0 && sched1 ? sched1.onCpu - sched0.onCpu : null
  const waitNs = sched0 && sched1 ? sched1.waiting - sched0.waiting : null
  return { type: 'done', round, startedAt, endedAt, wins, busy, filled, otherClaim, failedFills, won, cpuNs, waitNs }
}

async function onMessage(m) {
  if (m.type === 'init') {
    c = ws.WindowSpaceController.openExisting(m.dir).controller
    pids = m.pids
    marker = m.marker
    send({ type: 'ready' })
  } else if (m.type === 'prepare') {
    const n = m.n
    plan = { n, sym: new Uint32Array(n), win: new Uint32Array(n), kind: new Uint32Array(n), won: new Uint8Array(n) }
    for (let k = 0; k < n; k++) {
      const s = slotAt(m.symbols, k)
      plan.sym[k] = s.sym
      plan.win[k] = s.win
      plan.kind[k] = s.kind
    }
    schedstat() // the first read of the file is slower than the later ones: not at the start of the run
    send({ type: 'prepared', round: m.round })
  } else if (m.type === 'go') {
    await until(m.startAt)
    send(run(m.round))
  } else if (m.type === 'quit') {
    c?.close()
    c = null
    if (parentPort) parentPort.close()
    else process.disconnect()
  }
}

const port = parentPort ?? process
port.on('message', (m) => {
  onMessage(m).catch((e) => {
    send({ type: 'error', message: e?.stack ?? String(e) })
  })
})
