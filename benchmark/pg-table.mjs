/**
 * Prints, as Markdown, the PostgreSQL throughput tables of docs/postgres.md
 * ("Throughput") from a results file written by benchmark/pg.mjs (default
 * benchmark/results/pg.json), so the document shows exactly the numbers of
 * a run: window-space beside pg-boss and graphile-worker with the ratios
 * and window-space's targets, each contender's WAL, HOT and p99 figures,
 * and the targets with MET or their gap.
 *
 *   node benchmark/pg-table.mjs [results.json]
 */
import { readFileSync } from 'node:fs'

import { WINDOW_SPACE } from './lib/pg-targets.mjs'

const file = process.argv[2] ?? new URL('./results/pg.json', import.meta.url).pathname
const { meta, rows, targets } = JSON.parse(readFileSync(file, 'utf8'))

const PEERS = ['pg-boss', 'graphile-worker']
const int = (v) => (v == null ? '' : Math.round(v).toLocaleString('en'))
const find = (who, mode, sync) => rows.find((r) => r.contender === who && r.mode === mode && r.synchronous_commit === sync)
const ratio = (a, b) => (a && b ? `${(a.perSec / b.perSec).toFixed(2)}x` : '')
const modes = [...new Map(rows.map((r) => [`${r.mode}/${r.synchronous_commit}`, [r.mode, r.synchronous_commit]])).values()]

const lines = []
const server = meta.server.split(' on ')[0]
lines.push(
  `${meta.smoke ? 'Smoke run (tiny sizes, not for comparison): ' : ''}${server}; ${meta.cores} cores (${meta.cpu}); Node ${meta.node}; window-space addon: ${meta.addonProfile}; ` +
    `pg-boss ${meta.versions['pg-boss']}, graphile-worker ${meta.versions['graphile-worker']}; ${meta.connections} connections, ${meta.inFlight} in flight, batches of ${meta.batch}; ${meta.date.slice(0, 10)}.`,
  '',
)

lines.push(`| mode | synchronous_commit | window-space pairs/s | ${PEERS.map((p) => `${p} jobs/s`).join(' | ')} | ${PEERS.map((p) => `ws ÷ ${p}`).join(' | ')} | ws target | ws result |`)
lines.push(`| --- | --- | ---: | ${PEERS.map(() => '---:').join(' | ')} | ${PEERS.map(() => '---:').join(' | ')} | ---: | --- |`)
for (const [mode, sync] of modes) {
  const w = find(WINDOW_SPACE, mode, sync)
  const t = targets.find((x) => x.mode === mode && x.sync === sync)
  const peers = PEERS.map((p) => find(p, mode, sync))
  lines.push(`| ${mode} | ${sync} | ${int(w?.perSec)} | ${peers.map((p) => int(p?.perSec)).join(' | ')} | ${peers.map((p) => ratio(w, p)).join(' | ')} | ${t?.required ?? ''} | ${t?.result ?? ''} |`)
}

lines.push('', '| contender | mode | synchronous_commit | per second | WAL bytes per pair / job | HOT updates | p99 claim / fetch |', '| --- | --- | --- | ---: | ---: | ---: | ---: |')
for (const r of rows) {
  const hot = r.hotPct == null ? '' : `${r.hotPct.toFixed(0)} %`
  lines.push(`| ${r.contender} | ${r.mode} | ${r.synchronous_commit} | ${int(r.perSec)} ${r.unit}s | ${int(r.walBytesPerUnit)} | ${hot} | ${r.p99Ms == null ? '' : `${r.p99Ms.toFixed(1)} ms`} |`)
}
lines.push(
  '',
  'HOT updates: for window-space the fills (updates of the partitions of `ws_slots`); for a queue all updates of its tables. ' +
    'p99: an unbatched `claim` (window-space) or job fetch (pg-boss `fetch`; graphile-worker from a worker asking for a job to its start).',
)

lines.push('', '| window-space target | measured | required | result |', '| --- | --- | --- | --- |')
for (const t of targets) lines.push(`| ${t.target} | ${t.measured} | ${t.required} | ${t.result} |`)
process.stdout.write(lines.join('\n') + '\n')
