/**
 * The processes section of the benchmark: aggregate claim+fill throughput of
 * 1, 2 and 4 engines working on one shared state directory at once, each with
 * a controller of its own, as separate OS processes (child_process.fork of
 * lib/processes-worker.mjs) and, as a second row set, as worker threads of
 * this process.
 *
 * Two workloads, each through `controller.raw`:
 * - disjoint: every engine claims and fills slots of symbols no other engine
 *   touches; all they share is the directory's files (ledger header, change
 *   journal, payload stores) and the machine;
 * - racing: every engine walks the same slots in the same order; each slot
 *   goes to the engine whose claim lands first, the others are refused
 *   (Busy while it is Pending, Filled after) and move on.
 *
 * Setup (directory, symbols, payload records, every chunk allocated, engines
 * started, slot lists built) is outside the timing. The engines start together
 * at a time the parent picks on CLOCK_MONOTONIC (a barrier every process reads
 * the same clock for); a round's time runs from that start to the last
 * engine's finish. Each configuration runs `rounds` rounds on fresh symbols
 * and reports its median round.
 *
 * After the rounds, outside the timing, the parent checks the engines' work
 * and fails the section if any of it is wrong: every slot of every round
 * Filled exactly once (version 2: one claim, one fill) with the payload id and
 * checksum of the one engine that reported winning it; the status counters
 * (`slotMetrics()`) equal a recount of the ledgers (`recountSlots()`) and the
 * expected number of Filled slots; and the claim, fill, busy and conflict
 * event counters moved by exactly what the engines reported.
 */
import { fork } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'

const WORKER = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'processes-worker.mjs')
/** Windows per symbol of the section's directories (as the rest of the benchmark). */
export const WINDOWS = 14_600
const KINDS_USED = 6 // trade-ledger slot kinds 1..6 (kind 0 is used to allocate chunks)
const SLOTS_PER_SYMBOL = WINDOWS * KINDS_USED
const STORE = ['rfRate', 'trades', 'quotes', 'trades', 'quotes', 'aggressor', 'aggressor']
const MODES = ['disjoint', 'racing']

/** The k-th slot of a slot list over `symbols`: (symbol, window, kind 1..6), kinds of one row next to each other. */
export function slotAt(symbols, k) {
  const row = Math.floor(k / KINDS_USED)
  return { sym: symbols[Math.floor(row / WINDOWS)], win: row % WINDOWS, kind: 1 + (k % KINDS_USED) }
}

/** Rows per chunk, from a ledger file's header (offset 28, docs/design.md section 3.1). */
function rowsPerChunkOf(file) {
  const fd = openSync(file, 'r')
  try {
    const b = Buffer.alloc(4)
    readSync(fd, b, 0, 4, 28)
    return b.readUInt32LE(0)
  } finally {
    closeSync(fd)
  }
}

/** The checksum's low 32 bits an engine fills with: names the engine in the slot. */
const markerOf = (engine) => 0x5eed_0000 + engine

/** Starts one engine; returns { send, next(type), exited, kill }. */
function startEngine(transport) {
  const queue = []
  let waiting = null
  let failure = null
  const push = (m) => {
    if (m?.type === 'error') failure = new Error(`engine failed: ${m.message}`)
    else queue.push(m)
    waiting?.()
  }
  let send, exited, kill
  if (transport === 'process') {
    const child = fork(WORKER, [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    child.on('message', push)
    exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })))
    exited.then(({ code, signal }) => {
      if (code !== 0) failure ??= new Error(`engine process exited with ${signal ?? code}`)
      waiting?.()
    })
    send = (m) => child.send(m)
    kill = () => child.kill('SIGKILL')
  } else {
    const w = new Worker(WORKER)
    w.on('message', push)
    w.on('error', (e) => {
      failure ??= e
      waiting?.()
    })
    exited = new Promise((r) => w.once('exit', (code) => r({ code, signal: null })))
    send = (m) => w.postMessage(m)
    kill = () => w.terminate()
  }
  const next = async (type) => {
    for (;;) {
      if (failure) throw failure
      const i = queue.findIndex((m) => m.type === type)
      if (i >= 0) return queue.splice(i, 1)[0]
      await new Promise((r) => (waiting = r))
    }
  }
  return { send, next, exited, kill }
}

/**
 * One configuration: `engines` engines of `transport` on a fresh directory
 * under `work`, `o.rounds` rounds of `mode`. Returns its row for latest.json.
 */
async function runConfig(ws, work, transport, mode, engines, o) {
  const dir = mkdtempSync(join(work, `procs-${transport}-${mode}-${engines}-`))
  const cfg = new ws.WindowSpaceConfig(dir, ws.WindowSpace.uniform({ origin: Date.UTC(2026, 0, 5, 14, 30), windowDuration: 60_000, windowCount: WINDOWS }))
  const { controller: c } = ws.WindowSpaceController.bootstrap(cfg)
  const KINDS = ws.SlotKind.all()
  const n = o.cycles
  const symsPerList = Math.ceil(n / SLOTS_PER_SYMBOL)
  const listsPerRound = mode === 'disjoint' ? engines : 1
  let e = []
  try {
    // Symbols: one list per engine per round (disjoint) or one per round (racing).
    const lists = [] // lists[round][list] = symbol ids
    for (let r = 0; r < o.rounds; r++) {
      const per = []
      for (let l = 0; l < listsPerRound; l++) {
        const ids = []
        for (let s = 0; s < symsPerList; s++) ids.push(c.resolveSymbol(`P${r}L${l}S${s}`))
        per.push(ids)
      }
      lists.push(per)
    }
    // Payload records: one per engine and slot kind, so a Filled slot names the engine that filled it.
    const stores = c.payloadStores()
    const rec = (k, uri) => stores[STORE[k]].append({ symbol: lists[0][0][0], windowIdx: 0, slotKind: KINDS[k], payloadType: 'Parquet', uri, checksum: 1n, size: 1 })
    const pids = []
    for (let p = 0; p < engines; p++) pids.push(KINDS.slice(0, 7).map((_, k) => (k === 0 ? 0 : rec(k, `engine${p}/${STORE[k]}-${k}.parquet`))))
    // Allocate every chunk the rounds will touch (the first write into a chunk allocates it and
    // grows the file): a claim+fill of kind 0 in each chunk's first row, before any engine maps the file.
    const rfPid = rec(0, 'seed/rf.parquet')
    const rowsPerChunk = rowsPerChunkOf(join(dir, 'trade-ledger.dat'))
    for (const per of lists)
      for (const ids of per)
        for (const sid of ids)
          for (let w = 0; w < WINDOWS; w += rowsPerChunk) {
            const v = c.raw.claim(sid, w, 0)
            if (v < 0 || c.raw.fill(sid, w, 0, v, 1, rfPid, 0, 1) < 0) throw new Error(`processes: could not allocate the chunk of window ${w} of symbol ${sid}`)
          }
    const events0 = c.eventCounts('trade')

    // Engines: start, open the directory, wait until every one is ready.
    e = Array.from({ length: engines }, () => startEngine(transport))
    e.forEach((x, p) => x.send({ type: 'init', dir, pids: pids[p], marker: markerOf(p) }))
    await Promise.all(e.map((x) => x.next('ready')))

    const rounds = []
    for (let r = 0; r < o.rounds; r++) {
      e.forEach((x, p) => x.send({ type: 'prepare', round: r, symbols: lists[r][mode === 'disjoint' ? p : 0], n }))
      await Promise.all(e.map((x) => x.next('prepared')))
      const startAt = process.hrtime.bigint() + 30_000_000n // 30 ms ahead: every engine has the message by then
      e.forEach((x) => x.send({ type: 'go', round: r, startAt }))
      const done = await Promise.all(e.map((x) => x.next('done')))
      const endedAt = done.reduce((m, d) => (d.endedAt > m ? d.endedAt : m), startAt)
      const lateUs = done.reduce((m, d) => Math.max(m, Number(d.startedAt - startAt) / 1e3), 0)
      const total = (f) => (done.every((d) => d[f] != null) ? done.reduce((s, d) => s + d[f], 0) : null)
      rounds.push({ elapsedNs: Number(endedAt - startAt), lateUs, done, cpuNs: total('cpuNs'), waitNs: total('waitNs') })
    }
    e.forEach((x) => x.send({ type: 'quit' }))
    await Promise.all(e.map((x) => x.exited))
    e = []

    // ---- the check of the engines' work (not timed) ----
    const problems = verify(c, { mode, engines, n, lists, rounds, pids, events0, KINDS })
    if (problems.length) {
      const shown = problems.slice(0, 12).join('\n  ')
      throw new Error(`processes section (${transport}, ${mode}, ${engines}): the engines' work does not check out (${problems.length} problems):\n  ${shown}`)
    }

    const cyclesPerRound = mode === 'disjoint' ? engines * n : n
    const sorted = [...rounds].sort((a, b) => a.elapsedNs - b.elapsedNs)
    const med = sorted[Math.floor((sorted.length - 1) / 2)]
    const sum = (f) => rounds.reduce((s, r) => s + r.done.reduce((t, d) => t + f(d), 0), 0)
    return {
      transport,
      mode,
      engines,
      cyclesPerRound,
      claimAttemptsPerRound: engines * n,
      rounds: rounds.length,
      elapsedMs: med.elapsedNs / 1e6,
      cyclesPerSec: cyclesPerRound / (med.elapsedNs / 1e9),
      nsPerCycle: med.elapsedNs / cyclesPerRound,
      // The engines' time on a CPU per cycle (the work a cycle costs, however many cores there are) and their
      // time waiting for a CPU (other processes on the machine, or more engines than cores), in the median round.
      cpuNsPerCycle: med.cpuNs == null ? null : med.cpuNs / cyclesPerRound,
      runQueueWaitMs: med.waitNs == null ? null : med.waitNs / 1e6,
      // How many cores the engines had on average (their time on a CPU ÷ the round's time): with 2 engines on
      // 2 cores, 2 when they ran side by side throughout, 1 when other load left them one core between them.
      coresUsed: med.cpuNs == null ? null : med.cpuNs / med.elapsedNs,
      roundsMs: rounds.map((r) => r.elapsedNs / 1e6),
      maxStartLateUs: Math.max(...rounds.map((r) => r.lateUs)),
      // Per engine over all rounds: slots won (claimed and filled), claims refused as Busy / Filled.
      wins: Array.from({ length: engines }, (_, p) => rounds.reduce((s, r) => s + r.done[p].wins, 0)),
      refusedBusy: sum((d) => d.busy),
      refusedFilled: sum((d) => d.filled),
      verified: true,
    }
  } finally {
    for (const x of e) x.kill()
    c.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The check of one configuration's work; returns the problems found (none when all is well). */
function verify(c, { mode, engines, n, lists, rounds, pids, events0, KINDS }) {
  const problems = []
  const bad = (s) => problems.length < 1000 && problems.push(s)
  let wins = 0
  let busy = 0
  let filled = 0
  for (let r = 0; r < rounds.length; r++) {
    const { done } = rounds[r]
    for (let p = 0; p < engines; p++) {
      const d = done[p]
      if (d.otherClaim) bad(`round ${r}, engine ${p}: ${d.otherClaim} claims refused with a code other than Busy or Filled`)
      if (d.failedFills) bad(`round ${r}, engine ${p}: ${d.failedFills} fills of its own claims were refused`)
      if (d.wins + d.busy + d.filled + d.otherClaim + d.failedFills !== n) bad(`round ${r}, engine ${p}: outcomes add up to ${d.wins + d.busy + d.filled + d.otherClaim + d.failedFills}, not ${n}`)
      wins += d.wins
      busy += d.busy
      filled += d.filled
    }
    // The winner of each slot of each list, from the engines' own reports.
    for (let l = 0; l < lists[r].length; l++) {
      const ids = lists[r][l]
      const contenders = mode === 'disjoint' ? [l] : [...Array(engines).keys()]
      const winner = new Int8Array(n).fill(-1)
      for (const p of contenders) {
        const won = done[p].won
        for (let k = 0; k < n; k++) {
          if (!won[k]) continue
          if (winner[k] >= 0) bad(`round ${r}: slot ${k} (${JSON.stringify(slotAt(ids, k))}) reported won by engines ${winner[k]} and ${p}`)
          else winner[k] = p
        }
      }
      // Every slot Filled exactly once, with its winner's payload id and checksum.
      let lastRow = -1
      let row = null
      for (let k = 0; k < n; k++) {
        const s = slotAt(ids, k)
        const rowKey = Math.floor(k / KINDS_USED)
        if (rowKey !== lastRow) {
          row = c.getTradeRow(s.sym, s.win)
          lastRow = rowKey
        }
        const st = row[KINDS[s.kind].name]
        const p = winner[k]
        const where = `round ${r}, symbol ${s.sym}, window ${s.win}, ${KINDS[s.kind].name}`
        if (p < 0) bad(`${where}: no engine reports winning it (status ${st.status}, version ${st.version})`)
        else if (st.status !== 'Filled' || st.version !== 2 || st.payloadId !== pids[p][s.kind] || st.checksum !== BigInt(markerOf(p)))
          bad(`${where}: ${st.status} v${st.version} payload ${st.payloadId} checksum ${st.checksum.toString(16)}, expected Filled v2 by engine ${p} (payload ${pids[p][s.kind]}, checksum ${markerOf(p).toString(16)})`)
      }
    }
  }
  const expected = rounds.length * (mode === 'disjoint' ? engines * n : n)
  if (wins !== expected) bad(`the engines report ${wins} slots won in all, expected ${expected}`)
  // The shared counters against a recount of the ledgers and against the expected work.
  const metrics = c.slotMetrics()
  const recount = c.recountSlots()
  for (let i = 0; i < metrics.length; i++) {
    const m = metrics[i]
    const rc = recount[i]
    for (const status of Object.keys(rc.counts)) {
      if (m.counts[status] !== rc.counts[status]) bad(`slotMetrics() ${m.ledger}/${m.slot} ${status} = ${m.counts[status]}, a recount of the ledger finds ${rc.counts[status]}`)
    }
  }
  const filledByKinds = metrics.filter((m) => m.ledger === 'trade' && m.slot !== KINDS[0].name).reduce((s, m) => s + m.counts.Filled, 0)
  if (filledByKinds !== expected) bad(`slotMetrics() counts ${filledByKinds} Filled slots of the kinds the engines fill, expected ${expected}`)
  const pending = metrics.reduce((s, m) => s + m.counts.Pending, 0)
  if (pending !== 0) bad(`slotMetrics() counts ${pending} Pending slots after every engine finished`)
  const ev = c.eventCounts('trade')
  const delta = (name) => ev[name] - events0[name]
  const want = { claims: wins, fills: wins, busy, conflicts: filled, takeovers: 0, clears: 0 }
  for (const [name, v] of Object.entries(want)) if (delta(name) !== v) bad(`event counter ${name} moved by ${delta(name)}, the engines report ${v}`)
  return problems
}

/**
 * Runs the section: every transport × mode × engine count on its own fresh
 * directory under `work`. A configuration whose work does not check out
 * throws (the section fails; the caller reports it).
 * @param {object} ws - the library
 * @param {string} work - a directory for the state directories
 * @param {{ cycles: number, rounds: number, counts: number[], modes?: string[], threads: boolean }} o
 * @param {(line: string) => void} say - progress lines
 */
export async function processesSection(ws, work, o, say) {
  const rows = []
  for (const transport of o.threads ? ['process', 'thread'] : ['process']) {
    for (const mode of o.modes ?? MODES) {
      for (const engines of o.counts) {
        const row = await runConfig(ws, work, transport, mode, engines, o)
        const one = rows.find((x) => x.transport === transport && x.mode === mode && x.engines === 1)
        row.vsOne = one ? row.cyclesPerSec / one.cyclesPerSec : null
        rows.push(row)
        const ratio = row.vsOne == null ? '' : `, ${row.vsOne.toFixed(2)}x one`
        const wins = mode === 'racing' && engines > 1 ? `, wins ${row.wins.join('/')}` : ''
        const cpu = row.cpuNsPerCycle == null ? '' : `, ${row.cpuNsPerCycle.toFixed(0)} CPU ns/cycle, ${row.coresUsed.toFixed(2)} cores used, ${row.runQueueWaitMs.toFixed(1)} ms waiting for a CPU`
        say(`  ${transport === 'process' ? 'processes' : 'threads  '} ${mode.padEnd(8)} ${String(engines).padStart(2)}: ${row.nsPerCycle.toFixed(0).padStart(5)} ns/cycle aggregate, ${(row.cyclesPerSec / 1e6).toFixed(2)}M cycles/s${ratio}${cpu}${wins}`)
      }
    }
  }
  return { cycles: o.cycles, rounds: o.rounds, counts: o.counts, windows: WINDOWS, rows }
}

/** The section's rows for console.table. */
export function processesTable(p) {
  return p.rows.map((r) => ({
    engines: `${r.engines} ${r.transport === 'process' ? (r.engines === 1 ? 'process' : 'processes') : r.engines === 1 ? 'thread' : 'threads'}`,
    workload: r.mode,
    'cycles/round': r.cyclesPerRound,
    'ms (median round)': r.elapsedMs.toFixed(1),
    'cycles/s': r.cyclesPerSec >= 1e6 ? `${(r.cyclesPerSec / 1e6).toFixed(2)}M` : `${(r.cyclesPerSec / 1e3).toFixed(0)}k`,
    'ns/cycle (aggregate)': r.nsPerCycle.toFixed(0),
    'CPU ns/cycle': r.cpuNsPerCycle == null ? '—' : r.cpuNsPerCycle.toFixed(0),
    'cores used': r.coresUsed == null ? '—' : r.coresUsed.toFixed(2),
    'ms waiting for a CPU': r.runQueueWaitMs == null ? '—' : r.runQueueWaitMs.toFixed(1),
    '÷ one': r.vsOne == null ? '' : `${r.vsOne.toFixed(2)}x`,
    'wins per engine': r.mode === 'racing' ? r.wins.join(' / ') : '',
  }))
}

/**
 * `engines` processes on disjoint symbols against one: `vsOne` (aggregate
 * throughput ÷ one process's; null if not measured), the cores they had
 * (`coresUsed`) and their CPU time per cycle ÷ one process's (`cpuVsOne`;
 * above 1 when they slow each other down, whatever the machine's other load).
 */
export function disjointScaling(p, engines) {
  const row = (n) => p?.rows?.find((r) => r.transport === 'process' && r.mode === 'disjoint' && r.engines === n)
  const r = row(engines)
  const one = row(1)
  return {
    vsOne: r?.vsOne ?? null,
    coresUsed: r?.coresUsed ?? null,
    cpuVsOne: r?.cpuNsPerCycle != null && one?.cpuNsPerCycle ? r.cpuNsPerCycle / one.cpuNsPerCycle : null,
  }
}
