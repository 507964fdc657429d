/**
 * Prints, as Markdown, the performance tables of docs/performance.md and the
 * README's summary — the main comparison and the tracked targets — from a
 * results file written by bench.mjs (default benchmark/results/latest.json),
 * so the documents show exactly the numbers of a run.
 *
 *   node benchmark/readme-table.mjs [results.json]
 */
import { readFileSync } from 'node:fs'

import { fmtNs } from './lib/harness.mjs'
import { WATCH_OP } from './lib/watch.mjs'

const file = process.argv[2] ?? new URL('./results/latest.json', import.meta.url).pathname
const run = JSON.parse(readFileSync(file, 'utf8'))
const get = (op, who) => run.results.find((r) => r.op === op && r.contender === who)

// Columns of the main table: header, then the contender names that go in it.
const columns = [
  ['ws raw', ['window-space raw']],
  ['ws (id)', ['window-space (id)', 'window-space']],
  ['ws (string)', ['window-space (string)']],
  ['ws appendAsync', ['window-space (id) appendAsync']],
  ['SAB+Atomics', ['SAB+Atomics (in-memory)']],
  ['sqlite 1000/txn', ['better-sqlite3 (1000-op txn)']],
  ['sqlite per-op¹', ['better-sqlite3 (per-op)', 'better-sqlite3']],
  ['lmdb 1000/txn', ['lmdb-js (1000-op txn)']],
  ['lmdb per-op¹', ['lmdb-js (per-op txn)', 'lmdb-js']],
  ['lmdb async', ['lmdb-js (async batch)']],
  ['JSON lines', ['JSON lines writeSync']],
]
const cell = (op, names) => names.map((n) => get(op, n)).find(Boolean)
const ops = [...new Set(run.results.map((r) => r.op))].filter((op) => columns.some(([, names]) => cell(op, names)))
const used = columns.filter(([, names]) => ops.some((op) => cell(op, names)))
const lines = []
lines.push(`| operation | ${used.map(([h]) => h).join(' | ')} |`)
lines.push(`| --- | ${used.map(() => '---:').join(' | ')} |`)
for (const op of ops) lines.push(`| ${op} | ${used.map(([, names]) => (cell(op, names) ? fmtNs(cell(op, names).nsPerOp) : '')).join(' | ')} |`)
lines.push('', '¹ For row read, nextUnfilledWindow and the batch rows: one query, or one statement / transaction per batch.')
const floor = run.results.filter((r) => r.op !== WATCH_OP && !columns.some(([, names]) => names.includes(r.contender)))
if (floor.length) {
  lines.push('', '| native-call floor | contender | time per call |', '| --- | --- | ---: |')
  for (const r of floor) lines.push(`| ${r.op} | ${r.contender} | ${fmtNs(r.nsPerOp)} |`)
}
if (run.scaling?.length) {
  lines.push('', '| ledger slots | payload records | bootstrap | claim+fill (scattered, raw) |', '| ---: | ---: | ---: | ---: |')
  for (const s of run.scaling) lines.push(`| ${s.slots.toLocaleString('en')} | ${s.records.toLocaleString('en')} | ${s.bootstrapMs.toFixed(1)} ms | ${fmtNs(s.cycleNs)} |`)
}
if (run.memory?.large) {
  const m = run.memory.large
  lines.push('', `Large directory (${m.slots.toLocaleString('en')} slots, ${m.records.toLocaleString('en')} records): ${m.bytesPerSlotOnDisk.toFixed(2)} bytes per slot on disk, RSS ${(m.rssAfterBootstrapBytes / 2 ** 20).toFixed(0)} MiB after bootstrap in a fresh process, ${m.heapBytesPerRecord.toFixed(2)} bytes of V8 heap per replayed record.`)
}
if (run.watch) {
  const w = run.watch
  const p = (x) => `${x.p50.toFixed(0)} µs / ${x.p90.toFixed(0)} µs / ${x.p99.toFixed(0)} µs`
  lines.push('', '| waiting on other engines (another process) | figure |', '| --- | ---: |')
  lines.push(`| \`waitFor\` wake-up after a fill, p50 / p90 / p99 | ${p(w.waitForWakeUs)} |`)
  lines.push(`| \`watch()\` wake-up after a fill, p50 / p90 / p99 | ${p(w.watchWakeUs)} |`)
  lines.push(`| CPU of an idle waiter | ${w.idleWaiterCpuUsPerSec.toFixed(0)} µs per second |`)
  lines.push(`| claim+fill (raw), nobody waiting | ${fmtNs(w.writerNoWaiter.nsPerOp)} |`)
  lines.push(`| claim+fill (raw), a waiter asleep in another process | ${fmtNs(w.writerWithWaiter.nsPerOp)} |`)
}
if (run.processes?.rows?.length) {
  lines.push('', '| engines on one directory (raw claim+fill) | workload | ns per cycle, all engines | CPU ns per cycle | cores used | ÷ one engine |', '| --- | --- | ---: | ---: | ---: | ---: |')
  for (const r of run.processes.rows) {
    const noun = r.transport === 'process' ? ['process', 'processes'] : ['thread', 'threads']
    const who = `${r.engines} ${noun[r.engines > 1 ? 1 : 0]}`
    lines.push(`| ${who} | ${r.mode} | ${fmtNs(r.nsPerCycle)} | ${fmtNs(r.cpuNsPerCycle)} | ${r.coresUsed.toFixed(2)} | ${r.vsOne == null ? '' : `${r.vsOne.toFixed(2)}x`} |`)
  }
}
lines.push('', '| target | measured | required | result |', '| --- | --- | --- | --- |')
for (const t of run.targets) lines.push(`| ${t.target} | ${t.measured} | ${t.required} | ${t.result} |`)
process.stdout.write(lines.join('\n') + '\n')
