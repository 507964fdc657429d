// The main job: a demo engine run over a fresh state directory.
//
// Pass 1 bootstraps a new state directory and runs engines in worker threads:
//   * trades      — claims optionTrade windows in batches, writes artifacts, fills;
//   * quotes-fast / quotes-slow — race for the same optionQuote windows; the slow
//     one holds short leases and dawdles, so the fast one takes its claims over
//     and the slow one's fills get VersionConflictError (it skips them);
//   * underlying  — fails on purpose on every 5th window and clears its claim;
//   * greeks      — the enrichment engine: it needs a window's optionTrade and
//     optionQuote Filled, so it claims only ready windows (claimNextReady) and
//     sleeps on the shared change journal (watch) until the trade engines
//     fill more — no polling — finishing as soon as every window is done.
// Pass 2 bootstraps the same directory again and runs the same engines: they
// redo nothing that was done, and only retry what the failing engine cleared.
//
// Usage: node examples/demo.mjs [stateDir]   (default: ./demo-state, wiped first)
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { rmSync } from 'node:fs'
import { resolve } from 'node:path'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const ws = require('../dist/index.js')
const { WindowSpaceConfig, WindowSpaceController, WindowSpace, VersionConflictError } = ws

const SYMBOLS = ['SPY', 'AAPL', 'QQQ']
const WINDOWS = 240
const ORIGIN = Date.UTC(2026, 10, 24, 14, 30) // ms
const schedule = WindowSpace.uniform({ origin: ORIGIN, windowDuration: 60_000, windowCount: WINDOWS })
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

if (isMainThread) {
  await main()
} else {
  await engine(workerData)
}

async function main() {
  const stateDir = resolve(process.argv[2] ?? 'demo-state')
  rmSync(stateDir, { recursive: true, force: true })
  console.log(`window-space demo: ${SYMBOLS.length} symbols × ${WINDOWS} one-minute windows, state in ${stateDir}\n`)

  for (const pass of [1, 2]) {
    const config = new WindowSpaceConfig(stateDir, schedule)
    const { controller, storageReport } = WindowSpaceController.bootstrap(config)
    console.log(`── pass ${pass}: bootstrap ${storageReport.created ? 'created' : 'opened'} the state directory in ${storageReport.elapsedMs.toFixed(1)} ms`)
    printReport(storageReport)
    for (const s of SYMBOLS) controller.resolveSymbol(s)

    const engines = [
      { name: 'trades', slot: 'optionTrade', store: 'trades' },
      { name: 'quotes-fast', slot: 'optionQuote', store: 'quotes' },
      { name: 'quotes-slow', slot: 'optionQuote', store: 'quotes', leaseMs: 1, dawdleMs: 3 },
      { name: 'underlying', slot: 'underlyingTrade', store: 'trades', failEvery: pass === 1 ? 5 : 0 },
      { name: 'greeks', slot: 'greeks', store: 'greeks', needs: ['optionTrade', 'optionQuote'] },
    ]
    const results = await Promise.all(engines.map((e) => runWorker({ ...e, stateDir, pass })))
    console.log('\n  engine        claimed  filled  busy-or-done  conflicts  cleared(failed)')
    for (const r of results) {
      console.log(`  ${r.name.padEnd(13)} ${String(r.claimed).padStart(7)} ${String(r.filled).padStart(7)} ${String(r.skipped).padStart(13)} ${String(r.conflicts).padStart(10)} ${String(r.cleared).padStart(16)}`)
    }
    const greeks = results.find((r) => r.name === 'greeks')
    console.log(`\n  greeks waited for its inputs on the change journal: woken ${greeks.wakeups} times, never polled`)
    const appended = results.reduce((a, r) => a + r.filled, 0)
    console.log(`\n  slots filled in pass ${pass}: ${appended} (the slow engine also appended ${results.find((r) => r.name === "quotes-slow").conflicts} records it could not publish; gc will find them)`)
    printMetrics(controller)
    printSymbols(controller)
    const recount = JSON.stringify(controller.recountSlots())
    console.log(`  shared metrics equal an exact recount of the ledger: ${JSON.stringify(controller.slotMetrics()) === recount ? 'yes' : 'NO'}\n`)
    controller.close()
  }
  console.log('Pass 2 redid nothing that pass 1 finished: it filled only the windows the failing engine had cleared.')
}

function runWorker(data) {
  return new Promise((resolvePromise, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: data })
    w.once('message', resolvePromise)
    w.once('error', reject)
    w.once('exit', (code) => code !== 0 && reject(new Error(`engine ${data.name} exited with ${code}`)))
  })
}

async function engine({ name, slot, store, stateDir, pass, leaseMs = 30_000, dawdleMs = 0, failEvery = 0, needs }) {
  const { controller } = await WindowSpaceController.bootstrapAsync(new WindowSpaceConfig(stateDir, schedule))
  const stats = { name, claimed: 0, filled: 0, skipped: 0, conflicts: 0, cleared: 0, wakeups: 0 }
  const stores = controller.payloadStores()
  if (needs) {
    await enrichmentEngine(controller, { name, slot, store, pass, needs, stats })
    stats.skipped = WINDOWS * SYMBOLS.length - stats.claimed
    controller.close()
    parentPort.postMessage(stats)
    return
  }
  for (const symbol of SYMBOLS) {
    const symbolId = controller.resolveSymbol(symbol)
    let next = 0
    for (;;) {
      // Batch claim: the next 16 windows of this symbol that are not done and not held.
      const claims = controller.claimNextUnfilled(symbolId, next, slot, 16, { leaseMs })
      if (claims.length === 0) break
      stats.claimed += claims.length
      for (const claim of claims) {
        next = claim.windowIdx + 1
        if (failEvery && claim.windowIdx % failEvery === 0) {
          controller.clearSlot(symbolId, claim.windowIdx, slot, claim) // the engine's failure path
          stats.cleared++
          continue
        }
        if (dawdleMs) await sleep(dawdleMs) // a slow engine: its short lease runs out meanwhile
        const body = JSON.stringify({ symbol, window: claim.windowIdx, slot, engine: name, pass, rows: [claim.windowIdx * 3, claim.windowIdx * 7] })
        try {
          // The artifact goes to a path only this claim uses: an engine that took
          // the slot over meanwhile writes elsewhere, and this write is refused.
          const artifact = controller.writeArtifact(claim, `${name}.json`, body)
          const payloadId = stores[store].append({
            symbol: symbolId,
            windowIdx: claim.windowIdx,
            slotKind: slot,
            payloadType: 'Json',
            uri: artifact.uri,
            checksum: artifact.checksum,
            size: artifact.size,
          })
          controller.setRef(symbolId, claim.windowIdx, slot, { payloadType: 'Json', payloadId, version: claim.version, checksum: artifact.checksum })
          stats.filled++
        } catch (e) {
          if (!(e instanceof VersionConflictError)) throw e
          stats.conflicts++ // someone else took the slot over: skip it
        }
      }
    }
  }
  // Windows this engine found done or held by others.
  stats.skipped = WINDOWS * SYMBOLS.length - stats.claimed
  controller.close()
  parentPort.postMessage(stats)
}

// The enrichment engine: claims only windows whose inputs are Filled, and
// sleeps on the change journal until the trade engines (other threads, or
// other processes) fill more.
async function enrichmentEngine(controller, { name, slot, store, pass, needs, stats }) {
  const changes = controller.watch({ slotKinds: needs })
  for (;;) {
    for (const symbol of SYMBOLS) {
      for (const claim of controller.claimNextReady(symbol, 0, needs, slot, 16)) {
        stats.claimed++
        const inputs = needs.map((k) => controller.getSlot(symbol, claim.windowIdx, k).payloadId)
        const body = JSON.stringify({ symbol, window: claim.windowIdx, slot, engine: name, pass, inputs })
        const artifact = controller.writeArtifact(claim, `${name}.json`, body)
        const payloadId = controller.payloadStores()[store].append({
          symbol, windowIdx: claim.windowIdx, slotKind: slot, payloadType: 'Json', uri: artifact.uri, checksum: artifact.checksum, size: artifact.size,
        })
        controller.setRef(symbol, claim.windowIdx, slot, { payloadType: 'Json', payloadId, version: claim.version, checksum: artifact.checksum })
        stats.filled++
      }
    }
    if (SYMBOLS.every((s) => controller.nextUnfilledWindow(s, 0, slot) === null)) break
    await changes.next() // sleep until an input slot changes somewhere
    stats.wakeups++
  }
  await changes.return()
}

function printReport(r) {
  const stores = r.stores.map((s) => `${s.store}=${s.records}${s.tornTailBytes ? ` (torn tail ${s.tornTailBytes} B${s.tornTailRepaired ? ' cut' : ''})` : ''}`).join(' ')
  console.log(`  schedule ${r.schedule}, ${r.windowCount} windows, ${r.symbols} symbols, stale claims ${r.staleClaims}, non-empty slots ${r.nonemptySlots}`)
  console.log(`  payload records replayed: ${stores}`)
  console.log(`  files: ${r.files.map((f) => `${f.name} ${f.bytes} B`).join(', ')}`)
}

function printMetrics(c) {
  console.log('\n  slot metrics (slots by status)')
  console.log('  ledger      slot                  Empty Pending  Filled Cleared Retired')
  for (const m of c.slotMetrics()) {
    const n = m.counts
    console.log(`  ${m.ledger.padEnd(11)} ${m.slot.padEnd(19)} ${[n.Empty, n.Pending, n.Filled, n.Cleared, n.Retired].map((x) => String(x).padStart(7)).join(' ')}`)
  }
}

function printSymbols(c) {
  console.log('\n  per symbol: Filled windows of optionTrade / optionQuote / underlyingTrade / greeks, and the next unfilled underlyingTrade window')
  for (const s of SYMBOLS) {
    let filled = { optionTrade: 0, optionQuote: 0, underlyingTrade: 0, greeks: 0 }
    for (let w = 0; w < WINDOWS; w++) {
      const t = c.getTradeRow(s, w)
      const e = c.getEnrichmentRow(s, w)
      filled.optionTrade += t.optionTrade.status === 'Filled'
      filled.optionQuote += t.optionQuote.status === 'Filled'
      filled.underlyingTrade += t.underlyingTrade.status === 'Filled'
      filled.greeks += e.greeks.status === 'Filled'
    }
    const next = c.nextUnfilledWindow(s, 0, 'underlyingTrade')
    console.log(`  ${s.padEnd(5)} ${filled.optionTrade} / ${filled.optionQuote} / ${filled.underlyingTrade} / ${filled.greeks}   next unfilled underlyingTrade: ${next ?? 'none'}`)
  }
}
