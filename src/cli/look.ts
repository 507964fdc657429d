/**
 * The commands that only look, all read-only (nothing is created, locked or
 * written; they work on a live directory and on a read-only copy):
 * `inspect`, `grid`, `export`, `metrics` and `serve-metrics`.
 *
 * @module
 */
import * as http from 'node:http'

import { Registry } from 'prom-client'

import { registerMetrics } from '../metrics'
import type { GridCell, StateSummary } from '../state-view'
import { LEDGER_EVENT_NAMES, LEDGER_NAMES, SLOT_STATUSES, type LedgerName, type SlotKindName } from '../vocabulary'
import { bytes, hex, isoOfNs, json, ledgerArg, oneLine, openView, printable, slotKinds, symbolIds, UsageError, whole, windowRange, type Opts } from './args'
import { LineWriter, out } from './output'
import { Progress } from './progress'

function scheduleInfo(s: StateSummary) {
  const sch = s.schedule
  return {
    kind: sch.kind,
    windowCount: s.windowCount,
    firstStart: isoOfNs(s.firstStartNs),
    lastEnd: isoOfNs(s.lastEndNs),
    ...(sch.kind === 'uniform' ? { windowDurationMs: Number(BigInt(sch.windowDuration) / 1_000_000n) } : { sessions: sch.sessions.length }),
  }
}

export function inspect(dir: string, o: Opts): void {
  const view = openView(dir)
  const s = view.summary()
  const info = {
    stateDir: s.stateDir,
    schedule: scheduleInfo(s),
    symbols: s.symbols,
    files: s.files,
    totalBytes: s.files.reduce((a, f) => a + f.bytes, 0),
    ledgers: s.ledgers.map((l) => ({ ledger: l.ledger, chunks: l.chunks, rowsAllocated: l.rowsAllocated, bytes: l.bytes, staleClaims: l.staleClaims })),
    stores: s.stores,
    slots: s.slots.map((m) => ({ ledger: m.ledger, slot: m.slot, ...m.counts })),
    events: Object.fromEntries(s.ledgers.map((l) => [l.ledger, l.events])),
    staleClaims: s.staleClaims,
    otherControllersOpen: s.otherControllersOpen,
    gc: s.gc,
    ...(o.bySymbol ? { bySymbol: view.countsBySymbol() } : {}),
  }
  if (o.json) return out(json(info))
  const sch = info.schedule
  const lines: string[] = []
  lines.push(`state directory ${printable(info.stateDir)}${info.otherControllersOpen ? '  (other controllers have it open)' : ''}`)
  lines.push(`schedule        ${sch.kind}, ${sch.windowCount} windows${'windowDurationMs' in sch ? ` of ${sch.windowDurationMs} ms` : ` in ${sch.sessions} sessions`}, ${sch.firstStart} .. ${sch.lastEnd}`)
  lines.push(`symbols         ${s.symbols.length}${s.symbols.length ? `: ${s.symbols.slice(0, 20).map(printable).join(', ')}${s.symbols.length > 20 ? ', …' : ''}` : ''}`)
  lines.push(`size            ${bytes(info.totalBytes)} in ${s.files.length} state files (artifacts not counted)`)
  lines.push(`stale claims    ${s.staleClaims}${s.staleClaims ? '  (Pending slots whose lease expired: their engines died; claimable again)' : ''}`)
  lines.push('')
  lines.push('ledger       chunks   rows allocated         bytes')
  for (const l of s.ledgers) lines.push(`${l.ledger.padEnd(10)} ${String(l.chunks).padStart(8)} ${String(l.rowsAllocated).padStart(16)} ${String(l.bytes).padStart(13)}`)
  lines.push('')
  lines.push('store             records        bytes  torn tail')
  for (const st of s.stores) lines.push(`${st.file.padEnd(16)} ${String(st.records).padStart(8)} ${String(st.bytes).padStart(12)}  ${st.tornTailBytes ? `${st.tornTailBytes} B (cut by the next bootstrap with no other controller open)` : '-'}`)
  lines.push('')
  lines.push(`${'ledger'.padEnd(11)}${'slot'.padEnd(20)}${SLOT_STATUSES.map((x) => x.padStart(10)).join('')}`)
  for (const m of s.slots) lines.push(`${m.ledger.padEnd(11)}${m.slot.padEnd(20)}${SLOT_STATUSES.map((x) => String(m.counts[x]).padStart(10)).join('')}`)
  lines.push('')
  lines.push(`events         ${LEDGER_EVENT_NAMES.map((x) => x.padStart(12)).join('')}`)
  for (const l of s.ledgers) lines.push(`${l.ledger.padEnd(15)}${LEDGER_EVENT_NAMES.map((x) => String(l.events[x]).padStart(12)).join('')}`)
  if (s.gc.log) lines.push('', `gc.log          ${s.gc.collectedRecords} records collected, ${s.gc.removedFiles} artifact files removed${s.gc.unfinished ? `, ${s.gc.unfinished} unfinished (run gc --delete)` : ''}`)
  if (info.bySymbol) {
    lines.push('', `${'symbol'.padEnd(12)}${'slot'.padEnd(20)}${SLOT_STATUSES.map((x) => x.padStart(10)).join('')}`)
    for (const [sym, kinds] of Object.entries(info.bySymbol)) {
      for (const [k, counts] of Object.entries(kinds)) lines.push(`${printable(sym).padEnd(12)}${k.padEnd(20)}${SLOT_STATUSES.map((x) => String(counts[x]).padStart(10)).join('')}`)
    }
  }
  out(lines.join('\n'))
}

const GRID_CHARS: Record<string, string> = { Empty: '.', Pending: 'P', Stale: 'S', Filled: 'F', Cleared: 'C', Retired: 'R' }
const GRID_COLOURS: Record<string, string> = { Empty: '\x1b[2m', Pending: '\x1b[33m', Stale: '\x1b[1;31m', Filled: '\x1b[32m', Cleared: '\x1b[36m', Retired: '\x1b[90m' }

export function grid(dir: string, o: Opts): void {
  const symbolSpec = gridSymbol(o)
  const view = openView(dir)
  const s = view.summary()
  const [sym] = symbolIds(s.symbols, view.stateDir, symbolSpec)
  const { from, to } = windowRange(s.windowCount, view.stateDir, { from: o.from as string | undefined, to: o.to as string | undefined }, false)
  const kinds = slotKinds(o.slot as string | undefined)
  printGrid(s.symbols[sym!]!, from, to, kinds, view.grid(sym!, { from, to }, kinds), o)
}

/** `--symbol`: required, one symbol. */
export function gridSymbol(o: Opts): string {
  if (o.symbol === undefined) throw new UsageError('--symbol is required')
  if (String(o.symbol).includes(',') || o.symbol === 'all') throw new UsageError('grid shows one symbol: give a single --symbol')
  return String(o.symbol)
}

/** Prints the grid of one symbol's windows `from..to`: one line of cells per slot kind, 100 windows a block, or one JSON document. */
export function printGrid(symbol: string, from: number, to: number, kinds: readonly SlotKindName[], cells: Record<SlotKindName, GridCell[]>, o: Opts): void {
  if (o.json) return out(json({ symbol, from, to, legend: GRID_CHARS, slots: Object.fromEntries(kinds.map((k) => [k, cells[k].map((x) => GRID_CHARS[x]).join('')])) }))
  const colour = o.color === true || (o.color !== false && process.stdout.isTTY === true && process.stdout.hasColors?.() === true && !process.env.NO_COLOR)
  const paint = (st: string) => (colour ? `${GRID_COLOURS[st]}${GRID_CHARS[st]}\x1b[0m` : GRID_CHARS[st]!)
  const width = 100
  const rows: string[] = [`${printable(symbol)}, windows ${from}..${to - 1}   ${Object.keys(GRID_CHARS).map((k) => `${paint(k)} ${k}`).join('  ')}`]
  for (let start = from; start < to; start += width) {
    const end = Math.min(to, start + width)
    let ruler = ''
    for (let w = start; w < end; w++) ruler += w % 10 === 0 ? '|' : ' '
    rows.push('', `${String(start).padEnd(20)} ${ruler}`)
    for (const k of kinds) rows.push(`${k.padEnd(20)} ${cells[k].slice(start - from, end - from).map(paint).join('')}`)
  }
  out(rows.join('\n'))
}

export function exportRows(dir: string, o: Opts): void {
  const view = openView(dir)
  const s = view.summary()
  const syms = symbolIds(s.symbols, view.stateDir, o.symbol as string | undefined)
  const ledgers: LedgerName[] = o.ledger === undefined ? [...LEDGER_NAMES] : [ledgerArg(String(o.ledger))]
  const { from, to } = windowRange(s.windowCount, view.stateDir, { from: o.from as string | undefined, to: o.to as string | undefined }, false)
  const total = ledgers.length * syms.length * (to - from)
  const progress = new Progress()
  const w = new LineWriter()
  let done = 0
  try {
    for (const row of view.exportRows({ ledgers, symbols: syms, from, to, allRows: o.allRows === true })) {
      const slots: Record<string, unknown> = {}
      for (const { slot: k, state, uri } of row.slots) {
        slots[k] =
          state.status === 'Filled'
            ? { status: state.status, version: state.version, payloadType: state.payloadType, payloadId: state.payloadId, checksum: hex(state.checksum), uri }
            : state.status === 'Pending'
              ? { status: state.status, version: state.version, leaseExpiresAt: new Date(state.leaseExpiresAt!).toISOString() }
              : { status: state.status, version: state.version }
      }
      w.line(JSON.stringify({ ledger: row.ledger, symbol: s.symbols[row.symbolId], symbolId: row.symbolId, windowIdx: row.windowIdx, start: isoOfNs(row.start), slots }))
      progress.tick('export', ++done, Math.max(total, done))
    }
    w.flush()
  } finally {
    progress.end()
  }
}

export async function metricsCommand(dir: string): Promise<void> {
  const view = openView(dir)
  const registry = new Registry()
  registerMetrics(registry, view)
  out(await registry.metrics())
}

export async function serveMetrics(dir: string, o: Opts): Promise<void> {
  const port = portArg(o)
  const view = openView(dir)
  const registry = new Registry()
  registerMetrics(registry, view)
  await serveRegistry(registry, port, view.stateDir)
}

/** `--port P`, 0..65535. */
export function portArg(o: Opts): number {
  if (o.port === undefined) throw new UsageError('--port P is required (0 picks a free port)')
  const port = whole(String(o.port), '--port')
  if (port > 65535) throw new UsageError(`--port must be 0..65535, got ${port}`)
  return port
}

/**
 * Serves `registry` on 127.0.0.1:`port` (GET /metrics) until SIGINT or
 * SIGTERM; scrapes in flight finish first. `what` names the source in the
 * line printed when it listens.
 */
export async function serveRegistry(registry: Registry, port: number, what: string): Promise<void> {
  let inFlight = 0
  let stopping = false
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/metrics' && req.url !== '/')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n')
      return
    }
    inFlight++
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType, ...(stopping ? { connection: 'close' } : {}) }).end(text),
      (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${oneLine(String(e))}\n`),
    ).finally(() => {
      inFlight--
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new UsageError(`cannot listen on 127.0.0.1:${port}: ${e.code ?? e.message}`)))
    server.listen(port, '127.0.0.1', () => resolve())
  })
  const addr = server.address() as { port: number }
  process.stderr.write(`serving metrics of ${what} on http://127.0.0.1:${addr.port}/metrics\n`)
  await new Promise<void>((resolve) => {
    const stop = () => {
      // Scrapes in flight finish; idle keep-alive connections do not hold the exit.
      stopping = true
      server.close(() => resolve())
      server.closeIdleConnections()
      const drain = setInterval(() => {
        if (inFlight === 0) {
          clearInterval(drain)
          server.closeAllConnections()
        }
      }, 10)
    }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
}
