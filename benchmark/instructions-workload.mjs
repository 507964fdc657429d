// The fixed workload of the instruction-count gate through the addon's
// Node-API entry points (benchmark/instructions.mjs runs it under callgrind;
// docs/performance.md says what it measures): the raw transitions
// (fastClaim, fastRenew, fastFill, fastClear), a claim+fill cycle,
// fastReadSlot, fastNextUnfilled, the batch calls fastClaimNextUnfilled
// and fastFillBatch (behind controller.raw's claimNextUnfilled and
// fillBatch and the facade's claimNextUnfilled and fillMany), and
// NativeController.open of a small existing directory.
//
// Usage: node benchmark/instructions-workload.mjs <addon.node> <scratch dir>
// Prints its sections as one JSON array on stdout, in the order they ran:
// [{ op, ops, calls: { function: count } }].
//
// Callgrind collects only inside the addon's callbacks of those calls (the
// gate's --toggle-collect list), so what JavaScript costs around them (the
// interpreter, the JIT, the garbage collector between calls) is not counted,
// and a count is what a call costs from Node-API's entry into the addon to its
// return: argument reads, the controller lookup, the core's work, the result.
// After the set-up and warm-up, and after each section, the workload calls
// fastLastRefusal, where callgrind dumps its counters and starts from zero
// (--dump-before); with no refusal pending that call does nothing. Every
// set-up runs before the first dump, so a section calls only what it
// measures. Each section starts after a full garbage collection
// (--expose-gc), so no collection falls inside a measured call.
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'

const [addonPath, scratch] = process.argv.slice(2)
if (!addonPath || !scratch || typeof globalThis.gc !== 'function') {
  console.error('usage: node --expose-gc benchmark/instructions-workload.mjs <addon.node> <scratch dir>')
  process.exit(2)
}

const addon = { exports: {} }
process.dlopen(addon, addonPath)
const n = addon.exports

// The same sizes as the core's workload (crates/window-space-instructions).
const K = 1000
const FILLED_IN_FRONT = 900
const SCANS = 100
const BATCH = 100
const BATCHES = 10
const BOOTSTRAPS = 5
const WINDOWS = 2048
const LEASE_MS = 600_000
// Slot kind and store codes (src/vocabulary.ts).
const RF_RATE = 0
const OPTION_TRADE = 1
const OPTION_QUOTE = 2
const UNDERLYING_QUOTE = 4
const TRADES = 0
const QUOTES = 1

const scheduleJson = JSON.stringify({ kind: 'uniform', originNs: 1_700_000_000_000_000_000, windowNs: 60_000_000_000, windowCount: WINDOWS })
const fresh = (name) => {
  const dir = join(scratch, name)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  return dir
}
const expect = (what, ok) => {
  if (!ok) throw new Error(`the workload went wrong: ${what}`)
}
const payload = (c, symbol, kind, store, name) =>
  c.appendPayload(store, { symbolId: symbol, windowIdx: 0, slotKind: kind, payloadType: 1, checksum: 0x5eedn, size: 4096, uri: `artifacts/instructions/${name}.bin` })

const mainDir = fresh('node')
const smallDir = fresh('node-small')
const c = n.NativeController.open({ stateDir: mainDir, scheduleJson })
const h = c.handle
const [a, b, w] = ['SYM-A', 'SYM-B', 'SYM-W'].map((s) => c.resolveSymbol(s))
// Every chunk the sections write, allocated now (a claim of a kind no section uses every 32 windows).
for (const s of [a, b, w]) for (let win = 0; win < WINDOWS; win += 32) expect('chunk allocation', n.fastClaim(h, s, win, RF_RATE, LEASE_MS) >= 1)
const trade = payload(c, a, OPTION_TRADE, TRADES, 'trade')
const quote = payload(c, a, UNDERLYING_QUOTE, QUOTES, 'quote')

// The small existing directory: 4 symbols, 200 filled slots and 200 payload records, 20 live claims.
{
  const s = n.NativeController.open({ stateDir: smallDir, scheduleJson })
  for (let i = 0; i < 4; i++) {
    const sym = s.resolveSymbol(`SMALL-${i}`)
    for (let win = 0; win < 50; win++) {
      const p = payload(s, sym, OPTION_TRADE, TRADES, `small-${i}-${win}`)
      const v = n.fastClaim(s.handle, sym, win, OPTION_TRADE, LEASE_MS)
      expect('small directory fill', n.fastFill(s.handle, sym, win, OPTION_TRADE, v, 1, p, 0, 0x5eed) === v + 1)
    }
    for (let win = 50; win < 55; win++) expect('small directory claim', n.fastClaim(s.handle, sym, win, OPTION_QUOTE, LEASE_MS) >= 1)
  }
  s.close()
}

// Set-up of the later sections: claims to clear, 900 filled windows in front of the scan.
const toClear = new Int32Array(K)
for (let win = 0; win < K; win++) toClear[win] = n.fastClaim(h, a, win, OPTION_QUOTE, LEASE_MS)
expect('claims to clear', toClear.every((v) => v === 1))
for (let win = 0; win < FILLED_IN_FRONT; win++) {
  const v = n.fastClaim(h, b, win, OPTION_TRADE, LEASE_MS)
  expect('a window in front of the scan', n.fastFill(h, b, win, OPTION_TRADE, v, 1, trade, 0, 0x5eed) === v + 1)
}

// Warm-up: every measured call on slots of its own.
const slot = new Float64Array(8)
for (let win = 0; win < 8; win++) {
  const v = n.fastClaim(h, w, win, OPTION_TRADE, LEASE_MS)
  n.fastRenew(h, w, win, OPTION_TRADE, v, LEASE_MS)
  expect('warm-up fill', n.fastFill(h, w, win, OPTION_TRADE, v, 1, trade, 0, 0x5eed) === v + 1)
  n.fastReadSlot(h, w, win, OPTION_TRADE, slot)
  const q = n.fastClaim(h, w, win, OPTION_QUOTE, LEASE_MS)
  expect('warm-up clear', n.fastClear(h, w, win, OPTION_QUOTE, q) === q + 1)
}
n.fastNextUnfilled(h, w, 0, OPTION_TRADE)
const batchOut = new Float64Array(3 * BATCH)
expect('warm-up batch claim', n.fastClaimNextUnfilled(h, w, 100, OPTION_TRADE, BATCH, LEASE_MS, batchOut) === BATCH)
// fillBatch's one array: 8 numbers an item, then one result an item.
const items = new Float64Array(9 * BATCH)
const results = (buf) => buf.subarray(8 * BATCH)
const packFills = (sym, kind, claims, payloadId) => {
  for (let i = 0; i < BATCH; i++) {
    items.set([sym, claims[3 * i], kind, claims[3 * i + 1], 1, payloadId, 0, 0x5eed], 8 * i)
  }
}
packFills(w, OPTION_TRADE, batchOut, trade)
expect('warm-up batch fill', n.fastFillBatch(h, items, BATCH) === BATCH && results(items).every((v) => v === 2))
n.NativeController.open({ stateDir: smallDir, scheduleJson }).close()

const refusal = new Float64Array(8)
const sectionEnd = () => expect('no refusal pending', n.fastLastRefusal(refusal) === 0)
const sections = []
const section = (op, ops, calls, body) => {
  globalThis.gc()
  body()
  sectionEnd()
  sections.push({ op, ops, calls })
}
sectionEnd()

const versions = new Int32Array(K)
section('napi claim (fastClaim)', K, { fast_claim: K }, () => {
  for (let win = 0; win < K; win++) versions[win] = n.fastClaim(h, a, win, OPTION_TRADE, LEASE_MS)
})
expect('claims of Empty slots', versions.every((v) => v === 1))
const deadlines = new Float64Array(K)
section('napi renew (fastRenew)', K, { fast_renew: K }, () => {
  for (let win = 0; win < K; win++) deadlines[win] = n.fastRenew(h, a, win, OPTION_TRADE, versions[win], LEASE_MS)
})
expect('renewed leases', deadlines.every((d) => d > 0))
const filled = new Int32Array(K)
section('napi fill (fastFill)', K, { fast_fill: K }, () => {
  for (let win = 0; win < K; win++) filled[win] = n.fastFill(h, a, win, OPTION_TRADE, versions[win], 1, trade, 0, 0x5eed)
})
expect('fills of claims', filled.every((v, i) => v === versions[i] + 1))
const cleared = new Int32Array(K)
section('napi clear (fastClear)', K, { fast_clear: K }, () => {
  for (let win = 0; win < K; win++) cleared[win] = n.fastClear(h, a, win, OPTION_QUOTE, toClear[win])
})
expect('clears of claims', cleared.every((v, i) => v === toClear[i] + 1))
const cycled = new Int32Array(K)
section('napi claim+fill cycle (fastClaim, fastFill)', K, { fast_claim: K, fast_fill: K }, () => {
  for (let win = 0; win < K; win++) {
    const v = n.fastClaim(h, a, win, UNDERLYING_QUOTE, LEASE_MS)
    cycled[win] = n.fastFill(h, a, win, UNDERLYING_QUOTE, v, 1, quote, 0, 0x5eed) - v
  }
})
expect('cycles', cycled.every((d) => d === 1))
let reads = 0
section('napi readSlot (fastReadSlot)', K, { fast_read_slot: K }, () => {
  for (let win = 0; win < K; win++) reads += n.fastReadSlot(h, a, win, OPTION_TRADE, slot)
})
expect('reads', reads === K)
let found = 0
section('napi nextUnfilledWindow (900 filled)', SCANS, { fast_next_unfilled: SCANS }, () => {
  for (let i = 0; i < SCANS; i++) found += n.fastNextUnfilled(h, b, 0, OPTION_TRADE)
})
expect('the first unfilled window', found === SCANS * FILLED_IN_FRONT)
const batches = Array.from({ length: BATCHES }, () => new Float64Array(3 * BATCH))
let claimed = 0
section('napi claimNextUnfilled, per slot (batches of 100)', BATCH * BATCHES, { fast_claim_next_unfilled: BATCHES }, () => {
  for (let i = 0; i < BATCHES; i++) claimed += n.fastClaimNextUnfilled(h, b, FILLED_IN_FRONT + i * BATCH, OPTION_TRADE, BATCH, LEASE_MS, batches[i])
})
expect('full batches', claimed === BATCH * BATCHES)
const fillItems = batches.map((claims) => {
  packFills(b, OPTION_TRADE, claims, trade)
  return items.slice()
})
let batchFilled = 0
section('napi fillBatch, per slot (batches of 100)', BATCH * BATCHES, { fast_fill_batch: BATCHES }, () => {
  for (let i = 0; i < BATCHES; i++) batchFilled += n.fastFillBatch(h, fillItems[i], BATCH)
})
expect('batch fills', batchFilled === BATCH * BATCHES && fillItems.every((buf) => results(buf).every((v) => v === 2)))
let symbols = 0
section('napi open (bootstrap of a small directory)', BOOTSTRAPS, { open_c_callback: BOOTSTRAPS }, () => {
  for (let i = 0; i < BOOTSTRAPS; i++) {
    const opened = n.NativeController.open({ stateDir: smallDir, scheduleJson })
    symbols += opened.storageReport().symbols
    opened.close()
  }
})
expect('an existing directory', symbols === 4 * BOOTSTRAPS)
c.close()
console.log(JSON.stringify(sections))
