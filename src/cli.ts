#!/usr/bin/env node
/**
 * The `window-space` command for operators (the package `bin`): inspect,
 * grid, verify, clear, retire, gc, retention, audit, metrics, serve-metrics,
 * export. Commands that change things name who and why in the audit trail.
 *
 * This module owns the command line, its output formats and exit statuses,
 * and the garbage-collection log (`gc.log`, format in docs/design.md §10).
 * Everything goes through the public API of the library; a tool opens a
 * state directory with `WindowSpaceController.openExisting`, like any engine,
 * so it may run while engines are running.
 *
 * Exit status: 0 success; 1 the command ran and found something wrong (verify)
 * or the state could not be read or changed; 2 bad input (missing directory,
 * unknown symbol or slot, bad range, a change refused without `--yes`).
 * Errors are one line on stderr, never a stack trace.
 *
 * @module
 */
import * as fs from 'node:fs'
import * as http from 'node:http'
import * as path from 'node:path'
import * as readline from 'node:readline'

import { Command, CommanderError, Option } from 'commander'
import { Registry } from 'prom-client'

import { checksum64 } from './checksum'
import { scanAuditLog, type AuditEntry } from './audit'
import { WindowSpaceController, type BootstrapResult } from './controller'
import { WindowSpaceError, translateNativeError } from './errors'
import { registerMetrics } from './metrics'
import { native } from './native'
import {
  PAYLOAD_STORE_NAMES,
  SLOT_KIND_NAMES,
  SLOT_STATUSES,
  STORE_OF_SLOT_KIND,
  type LedgerName,
  type PayloadRecord,
  type PayloadStoreName,
  type SlotKindName,
  type SlotState,
  type SlotStatus,
} from './types'

// ---- errors and exit statuses ------------------------------------------------

/** Bad input: exit status 2. */
class UsageError extends Error {}

/** Codes of library errors that mean the operator's input was wrong (exit 2). */
const INPUT_CODES = new Set(['ERR_NOT_A_STATE_DIR', 'ERR_UNKNOWN_SYMBOL', 'ERR_WINDOW_OUT_OF_RANGE', 'ERR_INVALID_ARGUMENT', 'ERR_INVALID_SYMBOL', 'ERR_PATH_ESCAPES_STATE_DIR'])

function exitStatusOf(e: unknown): number {
  if (e instanceof UsageError || e instanceof TypeError || e instanceof RangeError) return 2
  if (e instanceof WindowSpaceError && INPUT_CODES.has(e.code)) return 2
  return 1
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim()
}

function fail(command: string, e: unknown): number {
  if ((e as NodeJS.ErrnoException | null)?.code === 'EPIPE') return 0 // stdout was closed by its reader (`| head`)
  const msg = e instanceof WindowSpaceError ? `${e.message} (${e.code})` : e instanceof Error ? e.message : String(e)
  process.stderr.write(`window-space ${command}: ${oneLine(msg)}\n`)
  return exitStatusOf(e)
}

// ---- small helpers -----------------------------------------------------------

const TRADE_SLOTS = SLOT_KIND_NAMES.slice(0, 7)
const ENRICHMENT_SLOTS = SLOT_KIND_NAMES.slice(7)
const LEDGERS: readonly LedgerName[] = ['trade', 'enrichment']
const slotsOf = (l: LedgerName): readonly SlotKindName[] => (l === 'trade' ? TRADE_SLOTS : ENRICHMENT_SLOTS)
const ledgerOf = (s: SlotKindName): LedgerName => (TRADE_SLOTS.includes(s) ? 'trade' : 'enrichment')

function out(s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`)
}

function json(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `0x${x.toString(16).padStart(16, '0')}` : x))
}

function hex(c: bigint): string {
  return `0x${c.toString(16).padStart(16, '0')}`
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(1)} ${units[i]}`
}

function isoOfNs(ns: bigint): string {
  try {
    return new Date(Number(ns / 1_000_000n)).toISOString()
  } catch {
    return `${ns} ns`
  }
}

function whole(v: string, what: string): number {
  if (!/^\d+$/.test(v) || Number(v) > 0xffffffff) throw new UsageError(`${what} must be a whole number, got ${JSON.stringify(v)}`)
  return Number(v)
}

/** `90`, `90s`, `15m`, `2h`, `7d` → milliseconds. */
function duration(v: string, what: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(v)
  if (!m) throw new UsageError(`${what} must be a duration like 90s, 15m, 2h or 7d, got ${JSON.stringify(v)}`)
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd']
  return Number(m[1]) * unit
}

/** Opens a state directory for a command; a missing directory is bad input. */
function openDir(dir: string, durability: 'buffered' | 'sync' = 'buffered', actor?: string): BootstrapResult {
  const abs = path.resolve(dir)
  let st: fs.Stats
  try {
    st = fs.statSync(abs)
  } catch {
    throw new UsageError(`no such directory: ${abs}`)
  }
  if (!st.isDirectory()) throw new UsageError(`not a directory: ${abs}`)
  return WindowSpaceController.openExisting(abs, { durability, ...(actor === undefined ? {} : { actor }) })
}

/** Symbol ids named by `--symbol` (a name, a comma-separated list, or `all`). */
function symbolIds(c: WindowSpaceController, spec: string | undefined): number[] {
  const known = c.symbols()
  if (spec === undefined || spec === 'all') return known.map((_, i) => i)
  const ids: number[] = []
  for (const s of spec.split(',').map((x) => x.trim()).filter((x) => x !== '')) {
    const id = known.indexOf(s)
    if (id < 0) {
      const list = known.length === 0 ? 'it has no symbols yet' : `known: ${known.slice(0, 10).join(', ')}${known.length > 10 ? `, … (${known.length})` : ''}`
      throw new UsageError(`unknown symbol ${JSON.stringify(s)} in ${c.stateDir} (${list})`)
    }
    ids.push(id)
  }
  if (ids.length === 0) throw new UsageError('--symbol names no symbol')
  return ids
}

/** Slot kinds named by `--slot` (a name, a comma-separated list, or `all`). */
function slotKinds(spec: string | undefined, ledger?: string): SlotKindName[] {
  let kinds: SlotKindName[]
  if (spec === undefined || spec === 'all') kinds = [...SLOT_KIND_NAMES]
  else {
    kinds = []
    for (const s of spec.split(',').map((x) => x.trim()).filter((x) => x !== '')) {
      if (!(SLOT_KIND_NAMES as readonly string[]).includes(s)) throw new UsageError(`unknown slot kind ${JSON.stringify(s)} (one of: ${SLOT_KIND_NAMES.join(', ')}, all)`)
      kinds.push(s as SlotKindName)
    }
  }
  if (ledger !== undefined) {
    if (ledger !== 'trade' && ledger !== 'enrichment') throw new UsageError(`unknown ledger ${JSON.stringify(ledger)} (trade or enrichment)`)
    kinds = kinds.filter((k) => ledgerOf(k) === ledger)
  }
  return kinds
}

/** A window range `[from, to)` from `--window` or `--from`/`--to`, checked against the schedule. */
function windowRange(c: WindowSpaceController, o: { window?: string; from?: string; to?: string }, required: boolean): { from: number; to: number } {
  const count = c.windowCount
  if (o.window !== undefined) {
    if (o.from !== undefined || o.to !== undefined) throw new UsageError('give either --window or --from/--to, not both')
    const w = whole(o.window, '--window')
    if (w >= count) throw new UsageError(`--window ${w} is out of range: ${c.stateDir} has windows 0..${count - 1}`)
    return { from: w, to: w + 1 }
  }
  if (required && (o.from === undefined || o.to === undefined)) throw new UsageError('give --window W, or --from W and --to W')
  const from = o.from === undefined ? 0 : whole(o.from, '--from')
  const to = o.to === undefined ? count : whole(o.to, '--to')
  if (to <= from) throw new UsageError(`bad range --from ${from} --to ${to}: --to is exclusive and must be greater than --from`)
  if (to > count) throw new UsageError(`bad range --from ${from} --to ${to}: ${c.stateDir} has ${count} windows, so --to is at most ${count}`)
  return { from, to }
}

/** Who and why, for the audit trail (`audit.log`) of the commands that change things. */
function adminOptions(o: Opts): { actor?: string; reason: string } {
  const reason = typeof o.reason === 'string' ? o.reason : `window-space ${process.argv.slice(2).join(' ')}`
  return typeof o.actor === 'string' ? { actor: o.actor, reason } : { reason }
}

// ---- progress on a TTY -------------------------------------------------------

/** A one-line progress bar on stderr, drawn only when stderr is a terminal. */
class Progress {
  #done = 0
  #last = 0
  readonly #on: boolean
  constructor(
    readonly label: string,
    readonly total: number,
  ) {
    this.#on = process.stderr.isTTY === true && total > 0
  }
  tick(n = 1): void {
    this.#done += n
    if (!this.#on) return
    const now = Date.now()
    if (now - this.#last < 100 && this.#done < this.total) return
    this.#last = now
    const frac = Math.min(1, this.#done / this.total)
    const width = 30
    const full = Math.round(frac * width)
    process.stderr.write(`\r${this.label} [${'#'.repeat(full)}${'.'.repeat(width - full)}] ${(frac * 100).toFixed(0).padStart(3)}% ${this.#done}/${this.total}`)
  }
  end(): void {
    if (this.#on) process.stderr.write('\r\x1b[2K')
  }
}

// ---- scans -------------------------------------------------------------------

type Row = ReadonlyArray<readonly [SlotKindName, SlotState]>

function readRow(c: WindowSpaceController, ledger: LedgerName, symbolId: number, w: number): Row {
  const row = (ledger === 'trade' ? c.getTradeRow(symbolId, w) : c.getEnrichmentRow(symbolId, w)) as unknown as Record<string, SlotState>
  return slotsOf(ledger).map((k) => [k, row[k]!] as const)
}

/** Visits every row of the ledgers for the symbols and windows given. */
function forEachRow(
  c: WindowSpaceController,
  opts: { ledgers?: readonly LedgerName[]; symbols?: number[]; from?: number; to?: number; label?: string },
  visit: (ledger: LedgerName, symbolId: number, w: number, row: Row) => void,
): void {
  const ledgers = opts.ledgers ?? LEDGERS
  const symbols = opts.symbols ?? c.symbols().map((_, i) => i)
  const from = opts.from ?? 0
  const to = opts.to ?? c.windowCount
  const progress = new Progress(opts.label ?? 'scanning', ledgers.length * symbols.length * (to - from))
  try {
    for (const ledger of ledgers) {
      for (const s of symbols) {
        for (let w = from; w < to; w++) {
          visit(ledger, s, w, readRow(c, ledger, s, w))
          progress.tick()
        }
      }
    }
  } finally {
    progress.end()
  }
}

const storeKey = (store: PayloadStoreName, id: number) => `${store}#${id}`

/** Every record of every mapping table; unreadable records become problems. */
function loadRecords(c: WindowSpaceController, problems?: Problem[]): Map<PayloadStoreName, Array<PayloadRecord | null>> {
  const stores = c.payloadStores()
  const all = new Map<PayloadStoreName, Array<PayloadRecord | null>>()
  const total = PAYLOAD_STORE_NAMES.reduce((a, s) => a + stores[s].length, 0)
  const progress = new Progress('reading records', total)
  try {
    for (const name of PAYLOAD_STORE_NAMES) {
      const store = stores[name]
      const n = store.length
      const recs: Array<PayloadRecord | null> = new Array(n).fill(null)
      for (let id = 0; id < n; id++) {
        try {
          recs[id] = store.get(id)
        } catch (e) {
          problems?.push({ kind: 'record-unreadable', message: `${name} record ${id}: ${oneLine(e instanceof Error ? e.message : String(e))}`, store: name, payloadId: id })
        }
        progress.tick()
      }
      all.set(name, recs)
    }
  } finally {
    progress.end()
  }
  return all
}

// ---- gc.log ------------------------------------------------------------------

const GC_LOG = 'gc.log'
const GC_TRASH = 'gc-trash'
/** Appended (with the newline) to an unterminated last line by the next writer, so the torn line stays recognisable. */
const TORN_MARK = '#torn'

/** One line of gc.log (see docs/design.md §10). */
type GcEntry =
  | { v: 1; op: 'collect'; id: string; at: string; uri: string; checksum: string; size: number; records: Array<{ store: PayloadStoreName; payloadId: number }>; trash: string }
  | { v: 1; op: 'done'; id: string; at: string }
  | { v: 1; op: 'abort'; id: string; at: string; why: string }
  | { v: 1; op: 'record'; at: string; store: PayloadStoreName; payloadId: number; uri: string; why: string }

interface GcState {
  /** `store#id` of records gc collected. */
  records: Set<string>
  /** URIs whose files gc removed. */
  uris: Set<string>
  /** Collections started and not finished (a gc that died). */
  unfinished: Array<Extract<GcEntry, { op: 'collect' }>>
  /** Lines that do not parse, other than a torn last line. */
  damaged: number[]
  tornTail: boolean
  exists: boolean
}

function readGcLog(stateDir: string): GcState {
  const st: GcState = { records: new Set(), uris: new Set(), unfinished: [], damaged: [], tornTail: false, exists: false }
  let text: string
  try {
    text = fs.readFileSync(path.join(stateDir, GC_LOG), 'utf8')
    st.exists = true
  } catch {
    return st
  }
  const lines = text.split('\n')
  const last = lines.pop() ?? '' // text after the last newline: empty, or a line torn by a crash
  const intents = new Map<string, Extract<GcEntry, { op: 'collect' }>>()
  const parse = (line: string, no: number, final: boolean) => {
    if (line.endsWith(TORN_MARK)) return // a line a crash cut short, marked by a later writer
    let e: GcEntry
    try {
      e = JSON.parse(line) as GcEntry
      if (e.v !== 1 || typeof e.op !== 'string') throw new Error('not a gc.log entry')
    } catch {
      if (final) st.tornTail = true
      else st.damaged.push(no)
      return
    }
    if (e.op === 'collect') intents.set(e.id, e)
    else if (e.op === 'done') {
      const i = intents.get(e.id)
      if (i) {
        st.uris.add(i.uri)
        for (const r of i.records) st.records.add(storeKey(r.store, r.payloadId))
        intents.delete(e.id)
      }
    } else if (e.op === 'abort') intents.delete(e.id)
    else if (e.op === 'record') st.records.add(storeKey(e.store, e.payloadId))
  }
  lines.forEach((l, i) => l !== '' && parse(l, i + 1, false))
  if (last !== '') parse(last, lines.length + 1, true)
  st.unfinished = [...intents.values()]
  return st
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r')
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

/** Appends entries to gc.log durably (fsync); first marks and terminates a torn last line. */
function appendGcLog(stateDir: string, entries: GcEntry[]): void {
  const p = path.join(stateDir, GC_LOG)
  const existed = fs.existsSync(p)
  const fd = fs.openSync(p, 'a+')
  try {
    const size = fs.fstatSync(fd).size
    let prefix = ''
    if (size > 0) {
      const b = Buffer.alloc(1)
      fs.readSync(fd, b, 0, 1, size - 1)
      if (b[0] !== 0x0a) prefix = `${TORN_MARK}\n`
    }
    fs.writeSync(fd, prefix + entries.map((e) => JSON.stringify(e)).join('\n') + '\n')
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  if (!existed) fsyncDir(stateDir)
}

// ---- verify ------------------------------------------------------------------

interface Problem {
  kind: string
  message: string
  [k: string]: unknown
}

interface VerifyResult {
  ok: boolean
  stateDir: string
  checked: string[]
  counts: { rows: number; filledSlots: number; records: number; artifacts: number; slotsChecked: number; auditEntries?: number }
  problems: Problem[]
  warnings: Problem[]
}

/** Problems of audit.log: a line that does not parse, or names a symbol, slot kind or window this directory does not have. */
function checkAuditLog(abs: string, c: WindowSpaceController, res: VerifyResult): void {
  let entries: AuditEntry[]
  try {
    const scan = scanAuditLog(abs)
    entries = scan.entries
    for (const d of scan.damaged) res.problems.push({ kind: 'audit-log-damaged', message: `audit.log line ${d.line} (offset ${d.offset}) ${d.what}`, line: d.line, offset: d.offset })
  } catch (e) {
    res.problems.push({ kind: 'audit-log-damaged', message: oneLine(e instanceof Error ? e.message : String(e)) })
    return
  }
  const symbols = c.symbols()
  entries.forEach((e, i) => {
    if (e.slot === undefined && e.symbol === undefined) return // a tool's own action
    const bad: string[] = []
    if (e.symbolId === undefined || symbols[e.symbolId] !== e.symbol) bad.push(`symbol ${JSON.stringify(e.symbol)} (id ${e.symbolId}) is not in symbol-map.json`)
    if (!SLOT_KIND_NAMES.includes(e.slot as SlotKindName)) bad.push(`slot kind ${JSON.stringify(e.slot)} does not exist`)
    const windows = [e.window, e.from, e.to === undefined ? undefined : e.to - 1, ...(e.changed ?? []).map((x) => x[0])].filter((w): w is number => w !== undefined && w >= 0)
    if (e.window === undefined && (e.from === undefined || e.to === undefined)) bad.push('it names no window')
    for (const w of windows) if (!Number.isInteger(w) || w >= c.windowCount) bad.push(`window ${w} is outside the schedule (${c.windowCount} windows)`)
    if (bad.length) res.problems.push({ kind: 'audit-entry-invalid', message: `audit.log line ${i + 1} (${e.action}): ${bad.join('; ')}`, line: i + 1 })
  })
  res.counts.auditEntries = entries.length
}

function verify(dir: string, withArtifacts: boolean): VerifyResult {
  const abs = path.resolve(dir)
  const res: VerifyResult = { ok: false, stateDir: abs, checked: [], counts: { rows: 0, filledSlots: 0, records: 0, artifacts: 0, slotsChecked: 0 }, problems: [], warnings: [] }
  let boot: BootstrapResult
  try {
    boot = openDir(dir)
  } catch (e) {
    if (exitStatusOf(e) === 2) throw e
    // Bootstrap validates headers, chunk headers, every record's framing and
    // checksum, and that no slot lies outside symbols × windows: its refusal is the finding.
    res.problems.push({ kind: 'open-failed', message: `bootstrap refused the directory: ${oneLine(e instanceof Error ? e.message : String(e))}`, code: (e as { code?: string }).code })
    try {
      checkSlotBytes(abs, res) // may say more about a ledger the bootstrap refused
    } catch {
      // the same damage: already reported
    }
    return res
  }
  const c = boot.controller
  try {
    res.checked.push('file headers, chunk headers, mapping-table records and torn tails (bootstrap)', 'no slot outside symbols × windows (bootstrap scan)')
    for (const s of boot.storageReport.stores) {
      if (s.tornTailBytes > 0) {
        res.warnings.push({ kind: 'torn-tail', message: `${s.file}: a torn tail of ${s.tornTailBytes} bytes after the last good record was ${s.tornTailRepaired ? 'cut off' : 'found (not cut: other controllers are open)'}`, store: s.store })
      }
    }
    try {
      checkSlotBytes(abs, res)
      res.checked.push('raw bytes of every slot of every allocated chunk: reserved bits, fill tags, fields each status may carry (pread, core ops.rs)')
    } catch (e) {
      res.problems.push({ kind: 'slot-check-failed', message: `the raw slot check could not read the ledgers: ${oneLine((e as Error).message)}` })
    }
    if (boot.storageReport.staleClaims > 0) {
      res.warnings.push({ kind: 'stale-claims', message: `${boot.storageReport.staleClaims} Pending slots have an expired lease (claims of dead engines; claimable again)`, count: boot.storageReport.staleClaims })
    }

    // Every record reads back with a good checksum.
    const records = loadRecords(c, res.problems)
    res.checked.push('every payload record reads back with its checksum')
    for (const r of records.values()) res.counts.records += r.length
    const gc = readGcLog(abs)
    if (gc.damaged.length > 0) res.problems.push({ kind: 'gc-log-damaged', message: `${GC_LOG}: ${gc.damaged.length === 1 ? 'line' : 'lines'} ${gc.damaged.join(', ')} ${gc.damaged.length === 1 ? 'is not a gc.log entry' : 'are not gc.log entries'}`, lines: gc.damaged })
    if (gc.tornTail) res.warnings.push({ kind: 'gc-log-torn-tail', message: `${GC_LOG}: the last line is torn (a gc died while writing it); ignored` })
    if (gc.unfinished.length > 0) res.warnings.push({ kind: 'gc-unfinished', message: `${GC_LOG}: ${gc.unfinished.length} collections were started and not finished; run \`window-space gc ${dir} --delete\` to finish them` })

    // The audit trail parses, and every slot it names is a slot of this directory.
    checkAuditLog(abs, c, res)
    res.checked.push('every audit.log line parses and names a known symbol, slot kind and window')

    // Every Filled slot resolves to a record of its slot, in its kind's store, with the same checksum.
    const tally = new Map<string, Record<SlotStatus, number>>()
    for (const k of SLOT_KIND_NAMES) tally.set(k, { Empty: 0, Pending: 0, Filled: 0, Cleared: 0, Retired: 0 })
    const referenced = new Map<string, { symbolId: number; windowIdx: number; slot: SlotKindName }>()
    const symbols = c.symbols()
    const where = (s: number, w: number, k: string) => `${symbols[s] ?? `#${s}`} window ${w} ${k}`
    forEachRow(c, { label: 'verify' }, (_ledger, s, w, row) => {
      res.counts.rows++
      for (const [kind, slot] of row) {
        tally.get(kind)![slot.status]++
        if (slot.status !== 'Filled') continue
        res.counts.filledSlots++
        const store = STORE_OF_SLOT_KIND[kind]
        const known = records.get(store)!
        // A record appended (and filled) after the records were read: read it now.
        let rec: PayloadRecord | null | undefined = known[slot.payloadId]
        if (slot.payloadId >= known.length) {
          try {
            rec = c.payloadStores()[store].get(slot.payloadId) ?? undefined
          } catch (e) {
            res.problems.push({ kind: 'record-unreadable', message: `${store} record ${slot.payloadId}: ${oneLine((e as Error).message)}`, store, payloadId: slot.payloadId })
            continue
          }
        }
        const at = { symbol: symbols[s], symbolId: s, windowIdx: w, slot: kind, store, payloadId: slot.payloadId }
        if (rec === undefined) {
          res.problems.push({ kind: 'payload-missing', message: `${where(s, w, kind)} is Filled with payload id ${slot.payloadId}, which ${store} does not hold (${records.get(store)!.length} records)`, ...at })
          continue
        }
        if (rec === null) continue // already reported as unreadable
        referenced.set(storeKey(store, slot.payloadId), { symbolId: s, windowIdx: w, slot: kind })
        if (rec.symbolId !== s || rec.windowIdx !== w || rec.slotKind !== kind) {
          res.problems.push({ kind: 'payload-for-another-slot', message: `${where(s, w, kind)} is Filled with ${store} record ${slot.payloadId}, which was written for ${where(rec.symbolId, rec.windowIdx, rec.slotKind)}`, ...at })
        }
        if (rec.checksum !== slot.checksum) {
          res.problems.push({ kind: 'checksum-mismatch', message: `${where(s, w, kind)}: slot checksum ${hex(slot.checksum)} differs from ${store} record ${slot.payloadId}'s ${hex(rec.checksum)}`, ...at })
        }
        if (rec.payloadType !== slot.payloadType) {
          res.problems.push({ kind: 'payload-type-mismatch', message: `${where(s, w, kind)}: slot payload type ${slot.payloadType} differs from ${store} record ${slot.payloadId}'s ${rec.payloadType}`, ...at })
        }
      }
    })
    res.checked.push('every Filled slot resolves to a record of its own slot in its store, with the same checksum and payload type')

    // The shared counters equal an exact recount, and the recount equals this scan.
    // With other controllers open, transitions may land between the reads: try
    // a few times, and report what still differs as a warning, not a problem.
    const alone = boot.storageReport.exclusive
    let drift: Problem[] = []
    for (let attempt = 0; attempt < (alone ? 1 : 3); attempt++) {
      drift = []
      const shared = c.slotMetrics()
      const recount = c.recountSlots()
      const shared2 = c.slotMetrics()
      for (const m of recount) {
        for (const st of SLOT_STATUSES) {
          const mine = tally.get(m.slot)![st]
          const sh = shared.find((x) => x.slot === m.slot)!.counts[st]
          const sh2 = shared2.find((x) => x.slot === m.slot)!.counts[st]
          if (sh !== m.counts[st] || sh2 !== m.counts[st] || (alone && mine !== m.counts[st])) {
            drift.push({ kind: 'metrics-drift', message: `${m.slot} ${st}: shared counter ${sh}, recount ${m.counts[st]}${alone ? `, row scan ${mine}` : ''}`, slot: m.slot, status: st })
          }
        }
      }
      if (drift.length === 0) break
    }
    if (alone) res.problems.push(...drift)
    else {
      for (const d of drift) res.warnings.push({ ...d, message: `${d.message} (other controllers are open: transitions in flight may explain it; run verify with the engines stopped for an exact check)` })
    }
    res.checked.push(alone ? 'slot metrics (shared counters) equal an exact recount and this scan' : 'slot metrics (shared counters) equal an exact recount (other controllers open: differences are warnings)')

    if (withArtifacts) {
      const progress = new Progress('artifacts', res.counts.records)
      try {
        for (const [store, recs] of records) {
          recs.forEach((rec, id) => {
            progress.tick()
            if (!rec) return
            const key = storeKey(store, id)
            const live = referenced.get(key)
            if (!live && gc.records.has(key)) return // collected by gc: its file may be gone
            let file: string
            try {
              file = c.resolveArtifact(rec.uri)
            } catch (e) {
              ;(live ? res.problems : res.warnings).push({ kind: 'artifact-path', message: `${store} record ${id}: artifact URI ${JSON.stringify(rec.uri)} is not under the state directory (${oneLine((e as Error).message)})`, store, payloadId: id })
              return
            }
            let data: Buffer
            try {
              data = fs.readFileSync(file)
            } catch {
              if (live) {
                const hint = gc.uris.has(rec.uri) ? ` (${GC_LOG} says gc removed it, but a live slot refers to it)` : ''
                res.problems.push({ kind: 'artifact-missing', message: `${where(live.symbolId, live.windowIdx, live.slot)}: artifact ${rec.uri} of ${store} record ${id} is missing${hint}`, store, payloadId: id, uri: rec.uri })
              } else {
                res.warnings.push({ kind: 'unreferenced-artifact-missing', message: `${store} record ${id} (referenced by no slot): artifact ${rec.uri} is missing and ${GC_LOG} does not say gc removed it`, store, payloadId: id, uri: rec.uri })
              }
              return
            }
            res.counts.artifacts++
            // Unreferenced records whose path was rewritten by a later record are expected to differ.
            if (live && checksum64(data) !== rec.checksum) {
              res.problems.push({ kind: 'artifact-changed', message: `${where(live.symbolId, live.windowIdx, live.slot)}: artifact ${rec.uri} has checksum ${hex(checksum64(data))}, ${store} record ${id} says ${hex(rec.checksum)}`, store, payloadId: id, uri: rec.uri })
            } else if (live && data.length !== rec.size) {
              res.problems.push({ kind: 'artifact-changed', message: `${where(live.symbolId, live.windowIdx, live.slot)}: artifact ${rec.uri} is ${data.length} bytes, ${store} record ${id} says ${rec.size}`, store, payloadId: id, uri: rec.uri })
            }
          })
        }
      } finally {
        progress.end()
      }
      res.checked.push('artifact files of Filled slots exist and match their records (size, checksum)')
    }
  } finally {
    c.close()
  }
  res.ok = res.problems.length === 0
  return res
}

/** Adds what the core's raw check of the ledger files (crates/window-space-core/src/ops.rs) finds. */
function checkSlotBytes(stateDir: string, res: VerifyResult): void {
  let checks: ReturnType<typeof native.checkLedgerSlots>
  try {
    checks = native.checkLedgerSlots(stateDir)
  } catch (e) {
    throw translateNativeError(e)
  }
  let symbols: string[] = []
  try {
    symbols = (JSON.parse(fs.readFileSync(path.join(stateDir, 'symbol-map.json'), 'utf8')) as { symbols: string[] }).symbols
  } catch {
    // names are a convenience; ids are in the message anyway
  }
  for (const ch of checks) {
    res.counts.slotsChecked += ch.slots
    for (const h of ch.headerIssues) res.problems.push({ kind: 'ledger-header-damaged', message: `${ch.file}: ${h}`, ledger: ch.ledger })
    if (ch.inFlight > 0) res.warnings.push({ kind: 'slots-in-flight', message: `${ch.file}: ${ch.inFlight} slots changed while being checked (engines at work) and were not judged` })
    for (const i of ch.issues) {
      const who = `${symbols[i.symbolId] ?? `symbol #${i.symbolId}`} window ${i.windowIdx}${i.slotKind ? ` ${i.slotKind}` : ' (chunk header)'}`
      res.problems.push({ kind: 'slot-damaged', message: `${ch.file} at offset ${i.offset}, ${who}: ${i.what}`, ledger: i.ledger, symbolId: i.symbolId, windowIdx: i.windowIdx, slot: i.slotKind ?? null, offset: i.offset })
    }
  }
}

// ---- gc ----------------------------------------------------------------------

interface GcCandidateRecord {
  store: PayloadStoreName
  payloadId: number
  uri: string
  symbol: string
  symbolId: number
  windowIdx: number
  slot: SlotKindName
  /** Status of the slot the record was written for. */
  slotStatus: SlotStatus
}

interface GcPlan {
  records: GcCandidateRecord[]
  files: Array<{ uri: string; size: number; records: Array<{ store: PayloadStoreName; payloadId: number }> }>
  young: Array<{ uri: string; size: number }>
  bytes: number
  unfinished: number
}

/** Live = referenced by a Filled slot, or written for a slot that is Pending now (an engine may be about to fill it). */
function liveRecordCheck(c: WindowSpaceController, records: Map<PayloadStoreName, Array<PayloadRecord | null>>) {
  const live = new Set<string>()
  forEachRow(c, { label: 'gc: slots' }, (_l, _s, _w, row) => {
    for (const [kind, slot] of row) if (slot.status === 'Filled') live.add(storeKey(STORE_OF_SLOT_KIND[kind], slot.payloadId))
  })
  for (const [store, recs] of records) {
    recs.forEach((r, id) => {
      if (r && c.getSlot(r.symbolId, r.windowIdx, r.slotKind).status === 'Pending') live.add(storeKey(store, id))
    })
  }
  return live
}

function listArtifactFiles(stateDir: string): string[] {
  const root = path.join(stateDir, 'artifacts')
  const outFiles: string[] = []
  const walk = (dir: string, rel: string) => {
    let entries: fs.Dirent[]
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true })
    } catch {
      return
    }
    for (const e of entries) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`
      if (e.isDirectory()) walk(path.join(dir, e.name), r)
      else if (e.isFile()) outFiles.push(`artifacts/${r}`)
    }
  }
  walk(root, '')
  return outFiles.sort()
}

function planGc(c: WindowSpaceController, minAgeMs: number, startedAt: number): { plan: GcPlan; records: Map<PayloadStoreName, Array<PayloadRecord | null>>; live: Set<string> } {
  const gc = readGcLog(c.stateDir)
  const records = loadRecords(c)
  const live = liveRecordCheck(c, records)
  const symbols = c.symbols()
  const liveUris = new Set<string>()
  const byUri = new Map<string, Array<{ store: PayloadStoreName; payloadId: number }>>()
  const plan: GcPlan = { records: [], files: [], young: [], bytes: 0, unfinished: gc.unfinished.length }
  for (const [store, recs] of records) {
    recs.forEach((r, id) => {
      if (!r) return
      const key = storeKey(store, id)
      if (live.has(key)) {
        liveUris.add(r.uri)
        return
      }
      if (gc.records.has(key)) return
      plan.records.push({ store, payloadId: id, uri: r.uri, symbol: symbols[r.symbolId] ?? `#${r.symbolId}`, symbolId: r.symbolId, windowIdx: r.windowIdx, slot: r.slotKind, slotStatus: c.getSlot(r.symbolId, r.windowIdx, r.slotKind).status })
      const list = byUri.get(r.uri) ?? []
      list.push({ store, payloadId: id })
      byUri.set(r.uri, list)
    })
  }
  for (const uri of listArtifactFiles(c.stateDir)) {
    if (liveUris.has(uri)) continue
    const st = fs.statSync(path.join(c.stateDir, uri))
    if (st.mtimeMs > startedAt - minAgeMs) {
      plan.young.push({ uri, size: st.size })
      continue
    }
    plan.files.push({ uri, size: st.size, records: byUri.get(uri) ?? [] })
    plan.bytes += st.size
  }
  return { plan, records, live }
}

/** Records by artifact URI, kept up to date with records appended since the plan. */
class UriIndex {
  readonly #byUri = new Map<string, Array<{ store: PayloadStoreName; id: number; rec: PayloadRecord }>>()
  readonly #seen = new Map<PayloadStoreName, number>()
  constructor(
    readonly c: WindowSpaceController,
    known: Map<PayloadStoreName, Array<PayloadRecord | null>>,
  ) {
    for (const [store, recs] of known) {
      recs.forEach((rec, id) => rec && this.#add(store, id, rec))
      this.#seen.set(store, recs.length)
    }
  }
  #add(store: PayloadStoreName, id: number, rec: PayloadRecord): void {
    const list = this.#byUri.get(rec.uri) ?? []
    list.push({ store, id, rec })
    this.#byUri.set(rec.uri, list)
  }
  /**
   * Whether `uri` is live now: a record naming it (including records
   * appended since the plan) is referenced by its Filled slot, or was
   * written for a slot that is Pending now.
   */
  liveNow(uri: string): boolean {
    const stores = this.c.payloadStores()
    for (const name of PAYLOAD_STORE_NAMES) {
      const n = stores[name].length
      for (let id = this.#seen.get(name) ?? 0; id < n; id++) {
        const rec = stores[name].get(id)
        if (rec) this.#add(name, id, rec)
      }
      this.#seen.set(name, n)
    }
    for (const { id, rec } of this.#byUri.get(uri) ?? []) {
      const slot = this.c.getSlot(rec.symbolId, rec.windowIdx, rec.slotKind)
      if (slot.status === 'Pending' || (slot.status === 'Filled' && slot.payloadId === id)) return true
    }
    return false
  }
}

let gcSeq = 0
const now = () => new Date().toISOString()

/**
 * Removes one artifact file restart-safely: log the intent, move the file
 * into gc-trash (atomic rename), check again that nothing made it live, then
 * unlink it and log `done` — or move it back and log `abort`.
 */
function collectFile(c: WindowSpaceController, file: GcPlan['files'][number], known: UriIndex, startedAt: number): 'done' | string {
  const dir = c.stateDir
  const src = path.join(dir, file.uri)
  let data: Buffer
  try {
    data = fs.readFileSync(src)
  } catch {
    return 'the file disappeared'
  }
  const id = `${process.pid}-${Date.now()}-${gcSeq++}`
  const trashRel = `${GC_TRASH}/${id}`
  const intent: Extract<GcEntry, { op: 'collect' }> = { v: 1, op: 'collect', id, at: now(), uri: file.uri, checksum: hex(checksum64(data)), size: data.length, records: file.records, trash: trashRel }
  fs.mkdirSync(path.join(dir, GC_TRASH), { recursive: true })
  appendGcLog(dir, [intent])
  try {
    fs.renameSync(src, path.join(dir, trashRel))
  } catch (e) {
    appendGcLog(dir, [{ v: 1, op: 'abort', id, at: now(), why: `move failed: ${(e as Error).message}` }])
    return 'the move into gc-trash failed'
  }
  fsyncDir(path.dirname(src))
  fsyncDir(path.join(dir, GC_TRASH))
  return finishCollect(c, intent, known, startedAt)
}

/** Second half of a collection (also used to finish one a dead gc left). */
function finishCollect(c: WindowSpaceController, intent: Extract<GcEntry, { op: 'collect' }>, known: UriIndex, startedAt: number): 'done' | string {
  const dir = c.stateDir
  const trash = path.join(dir, intent.trash)
  const src = path.join(dir, intent.uri)
  let st: fs.Stats | undefined
  try {
    st = fs.statSync(trash)
  } catch {
    st = undefined
  }
  if (!st) {
    // Died before the move (the file is still in place) or after the unlink.
    const why = fs.existsSync(src) ? 'interrupted before the move' : ''
    appendGcLog(dir, [why ? { v: 1, op: 'abort', id: intent.id, at: now(), why } : { v: 1, op: 'done', id: intent.id, at: now() }])
    return why || 'done'
  }
  const occupied = fs.existsSync(src) // an engine wrote the path again: the trashed bytes are the old ones
  const changed = st.mtimeMs > startedAt || hex(checksum64(fs.readFileSync(trash))) !== intent.checksum
  if (!occupied && (changed || known.liveNow(intent.uri))) {
    try {
      fs.renameSync(trash, src)
      fsyncDir(path.dirname(src))
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e // another gc finished it first
    }
    appendGcLog(dir, [{ v: 1, op: 'abort', id: intent.id, at: now(), why: changed ? 'the file changed after the scan' : 'a slot refers to it again' }])
    return changed ? 'the file changed after the scan' : 'a slot refers to it again'
  }
  try {
    fs.unlinkSync(trash)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e // another gc finished it first
  }
  fsyncDir(path.join(dir, GC_TRASH))
  appendGcLog(dir, [{ v: 1, op: 'done', id: intent.id, at: now() }])
  return 'done'
}

// ---- confirmation ------------------------------------------------------------

async function confirm(question: string, o: { yes?: boolean }): Promise<void> {
  if (o.yes) return
  if (!process.stdin.isTTY) throw new UsageError(`${question.replace(/\?$/, '')}: refused without --yes (stdin is not a terminal, so nobody can confirm)`)
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr })
  const answer = await new Promise<string>((resolve) => rl.question(`${question} [y/N] `, resolve))
  rl.close()
  if (!/^y(es)?$/i.test(answer.trim())) throw new UsageError('not confirmed; nothing was changed')
}

// ---- commands ----------------------------------------------------------------

type Opts = Record<string, string | boolean | undefined>

function inspect(dir: string, o: Opts): void {
  const boot = openDir(dir)
  const c = boot.controller
  try {
    const r = boot.storageReport
    const space = c.windowSpace
    const wc = c.windowCount
    const first = c.windowMeta(0)
    const last = c.windowMeta(wc - 1)
    const symbols = c.symbols()
    const slots = c.slotMetrics()
    const gc = readGcLog(c.stateDir)
    const info = {
      stateDir: c.stateDir,
      schedule: {
        kind: space.kind,
        windowCount: wc,
        firstStart: isoOfNs(first.start),
        lastEnd: isoOfNs(last.start + last.duration),
        ...(space.kind === 'uniform' ? { windowDurationMs: Number(BigInt(space.windowDuration as bigint) / 1_000_000n) } : { sessions: space.sessions.length }),
      },
      symbols,
      files: r.files,
      totalBytes: r.files.reduce((a, f) => a + f.bytes, 0),
      ledgers: r.ledgers,
      stores: r.stores.map((s) => ({ store: s.store, file: s.file, records: c.payloadStores()[s.store].length, bytes: s.bytes, tornTailBytes: s.tornTailBytes })),
      slots: slots.map((m) => ({ ledger: m.ledger, slot: m.slot, ...m.counts })),
      events: { trade: c.eventCounts('trade'), enrichment: c.eventCounts('enrichment') },
      staleClaims: r.staleClaims,
      otherControllersOpen: !r.exclusive,
      gc: { log: gc.exists, collectedRecords: gc.records.size, removedFiles: gc.uris.size, unfinished: gc.unfinished.length },
      ...(o.bySymbol ? { bySymbol: bySymbol(c) } : {}),
    }
    if (o.json) return out(json(info))
    const lines: string[] = []
    lines.push(`state directory ${info.stateDir}${info.otherControllersOpen ? '  (other controllers have it open)' : ''}`)
    const s = info.schedule
    lines.push(`schedule        ${s.kind}, ${wc} windows${'windowDurationMs' in s ? ` of ${s.windowDurationMs} ms` : ` in ${s.sessions} sessions`}, ${s.firstStart} .. ${s.lastEnd}`)
    lines.push(`symbols         ${symbols.length}${symbols.length ? `: ${symbols.slice(0, 20).join(', ')}${symbols.length > 20 ? ', …' : ''}` : ''}`)
    lines.push(`size            ${bytes(info.totalBytes)} in ${r.files.length} state files (artifacts not counted)`)
    lines.push(`stale claims    ${info.staleClaims}${info.staleClaims ? '  (Pending slots whose lease expired: their engines died; claimable again)' : ''}`)
    lines.push('')
    lines.push('ledger       chunks   rows allocated         bytes')
    for (const l of r.ledgers) lines.push(`${l.ledger.padEnd(10)} ${String(l.chunks).padStart(8)} ${String(l.rowsAllocated).padStart(16)} ${String(l.bytes).padStart(13)}`)
    lines.push('')
    lines.push('store             records        bytes  torn tail')
    for (const st of info.stores) lines.push(`${st.file.padEnd(16)} ${String(st.records).padStart(8)} ${String(st.bytes).padStart(12)}  ${st.tornTailBytes ? `${st.tornTailBytes} B cut` : '-'}`)
    lines.push('')
    lines.push(`${'ledger'.padEnd(11)}${'slot'.padEnd(20)}${SLOT_STATUSES.map((x) => x.padStart(10)).join('')}`)
    for (const m of slots) lines.push(`${m.ledger.padEnd(11)}${m.slot.padEnd(20)}${SLOT_STATUSES.map((x) => String(m.counts[x]).padStart(10)).join('')}`)
    lines.push('')
    lines.push(`events         ${['claims', 'takeovers', 'fills', 'conflicts', 'clears', 'forceClears', 'retires', 'busy'].map((x) => x.padStart(12)).join('')}`)
    for (const l of LEDGERS) {
      const ev = info.events[l] as unknown as Record<string, number>
      lines.push(`${l.padEnd(15)}${['claims', 'takeovers', 'fills', 'conflicts', 'clears', 'forceClears', 'retires', 'busy'].map((x) => String(ev[x]).padStart(12)).join('')}`)
    }
    if (gc.exists) lines.push('', `gc.log          ${gc.records.size} records collected, ${gc.uris.size} artifact files removed${gc.unfinished.length ? `, ${gc.unfinished.length} unfinished (run gc --delete)` : ''}`)
    if (info.bySymbol) {
      lines.push('', `${'symbol'.padEnd(12)}${'slot'.padEnd(20)}${SLOT_STATUSES.map((x) => x.padStart(10)).join('')}`)
      for (const [sym, kinds] of Object.entries(info.bySymbol)) {
        for (const [k, counts] of Object.entries(kinds)) lines.push(`${sym.padEnd(12)}${k.padEnd(20)}${SLOT_STATUSES.map((x) => String(counts[x]).padStart(10)).join('')}`)
      }
    }
    out(lines.join('\n'))
  } finally {
    c.close()
  }
}

function bySymbol(c: WindowSpaceController): Record<string, Record<string, Record<SlotStatus, number>>> {
  const symbols = c.symbols()
  const res: Record<string, Record<string, Record<SlotStatus, number>>> = {}
  for (const s of symbols) {
    res[s] = {}
    for (const k of SLOT_KIND_NAMES) res[s][k] = { Empty: 0, Pending: 0, Filled: 0, Cleared: 0, Retired: 0 }
  }
  forEachRow(c, { label: 'inspect' }, (_l, s, _w, row) => {
    for (const [k, slot] of row) res[symbols[s]!]![k]![slot.status]++
  })
  return res
}

const GRID_CHARS: Record<string, string> = { Empty: '.', Pending: 'P', Stale: 'S', Filled: 'F', Cleared: 'C', Retired: 'R' }
const GRID_COLOURS: Record<string, string> = { Empty: '\x1b[2m', Pending: '\x1b[33m', Stale: '\x1b[1;31m', Filled: '\x1b[32m', Cleared: '\x1b[36m', Retired: '\x1b[90m' }

function grid(dir: string, o: Opts): void {
  const boot = openDir(dir)
  const c = boot.controller
  try {
    if (o.symbol === undefined) throw new UsageError('--symbol is required')
    const [sym] = symbolIds(c, String(o.symbol))
    if (String(o.symbol).includes(',') || o.symbol === 'all') throw new UsageError('grid shows one symbol: give a single --symbol')
    const { from, to } = windowRange(c, { from: o.from as string | undefined, to: o.to as string | undefined, window: undefined }, false)
    const kinds = slotKinds(o.slot as string | undefined)
    const nowMs = Date.now()
    const lines = new Map<SlotKindName, string[]>(kinds.map((k) => [k, []]))
    for (let w = from; w < to; w++) {
      for (const ledger of LEDGERS) {
        if (!kinds.some((k) => ledgerOf(k) === ledger)) continue
        for (const [k, slot] of readRow(c, ledger, sym!, w)) {
          const st = slot.status === 'Pending' && slot.leaseExpiresAt !== null && slot.leaseExpiresAt <= nowMs ? 'Stale' : slot.status
          lines.get(k)?.push(st)
        }
      }
    }
    const symbol = c.symbolName(sym!)
    if (o.json) {
      return out(json({ symbol, from, to, legend: GRID_CHARS, slots: Object.fromEntries([...lines].map(([k, sts]) => [k, sts.map((x) => GRID_CHARS[x]).join('')])) }))
    }
    const colour = o.color === true || (o.color !== false && process.stdout.isTTY === true && process.stdout.hasColors?.() === true && !process.env.NO_COLOR)
    const paint = (st: string) => (colour ? `${GRID_COLOURS[st]}${GRID_CHARS[st]}\x1b[0m` : GRID_CHARS[st]!)
    const width = 100
    const rows: string[] = [`${symbol}, windows ${from}..${to - 1}   ${Object.entries(GRID_CHARS).map(([k, ch]) => `${paint(k) === ch ? ch : paint(k)} ${k}`).join('  ')}`]
    for (let start = from; start < to; start += width) {
      const end = Math.min(to, start + width)
      let ruler = ''
      for (let w = start; w < end; w++) ruler += w % 10 === 0 ? '|' : ' '
      rows.push('', `${String(start).padEnd(20)} ${ruler}`)
      for (const [k, sts] of lines) rows.push(`${k.padEnd(20)} ${sts.slice(start - from, end - from).map(paint).join('')}`)
    }
    out(rows.join('\n'))
  } finally {
    c.close()
  }
}

async function adminCommand(action: 'clear' | 'retire', dir: string, o: Opts): Promise<void> {
  const boot = openDir(dir, 'sync', o.actor as string | undefined)
  const c = boot.controller
  try {
    if (o.symbol === undefined) throw new UsageError('--symbol is required (a symbol, a comma-separated list, or all)')
    if (o.slot === undefined) throw new UsageError(`--slot is required (${SLOT_KIND_NAMES.join(', ')}, or all)`)
    const syms = symbolIds(c, String(o.symbol))
    const kinds = slotKinds(String(o.slot))
    const range = windowRange(c, { window: o.window as string | undefined, from: o.from as string | undefined, to: o.to as string | undefined }, true)
    const names = c.symbols()
    // What would change: clear moves Pending and Filled to Cleared; retire moves everything but Retired.
    const would: Record<SlotStatus, number> = { Empty: 0, Pending: 0, Filled: 0, Cleared: 0, Retired: 0 }
    const ledgers = LEDGERS.filter((l) => kinds.some((k) => ledgerOf(k) === l))
    forEachRow(c, { ledgers, symbols: syms, from: range.from, to: range.to, label: action }, (_l, _s, _w, row) => {
      for (const [k, slot] of row) {
        if (!kinds.includes(k)) continue
        const changes = action === 'clear' ? slot.status === 'Pending' || slot.status === 'Filled' : slot.status !== 'Retired'
        if (changes) would[slot.status]++
      }
    })
    const total = Object.values(would).reduce((a, b) => a + b, 0)
    const what = `${action === 'clear' ? 'force-clear' : 'retire'} ${total} slots (${SLOT_STATUSES.filter((s) => would[s] > 0).map((s) => `${would[s]} ${s}`).join(', ') || 'none'}) of ${syms.length === names.length && syms.length > 1 ? 'every symbol' : syms.map((s) => names[s]).join(', ')}, ${kinds.length === SLOT_KIND_NAMES.length ? 'every slot kind' : kinds.join(', ')}, windows ${range.from}..${range.to - 1}`
    const summary = { action, dryRun: Boolean(o.dryRun), symbols: syms.map((s) => names[s]), slots: kinds, from: range.from, to: range.to, wouldChange: would, changed: 0 }
    if (o.dryRun || total === 0) {
      if (o.json) return out(json(summary))
      return out(total === 0 ? `nothing to ${action}: no slot in that range ${action === 'clear' ? 'is Pending or Filled' : 'is not Retired already'}` : `would ${what} (dry run: nothing changed)`)
    }
    await confirm(`${what}?`, o as { yes?: boolean })
    let changed = 0
    for (const s of syms) {
      for (const k of kinds) {
        changed += action === 'clear' ? c.forceClearRange(s, range, k, adminOptions(o)) : c.retireRange(s, range, k, adminOptions(o))
      }
    }
    summary.changed = changed
    if (o.json) return out(json(summary))
    out(`${action === 'clear' ? 'force-cleared' : 'retired'} ${changed} slots${action === 'retire' && changed ? ' (their artifacts are now garbage: see `window-space gc`)' : ''}`)
  } finally {
    c.close()
  }
}

async function retention(dir: string, o: Opts): Promise<void> {
  if (o.keep === undefined) throw new UsageError('--keep N is required')
  const keep = whole(String(o.keep), '--keep')
  const boot = openDir(dir, 'sync', o.actor as string | undefined)
  const c = boot.controller
  try {
    const count = c.windowCount
    const to = Math.max(0, count - keep)
    const syms = c.symbols().map((_, i) => i)
    const summary = { keep, windowCount: count, retireBefore: to, dryRun: Boolean(o.dryRun), wouldRetire: 0, retired: 0 }
    if (to === 0 || syms.length === 0) {
      if (o.json) return out(json(summary))
      return out(`nothing to retire: the schedule has ${count} windows and ${syms.length} symbols, --keep ${keep}`)
    }
    forEachRow(c, { from: 0, to, label: 'retention' }, (_l, _s, _w, row) => {
      for (const [, slot] of row) if (slot.status !== 'Retired') summary.wouldRetire++
    })
    if (o.dryRun || summary.wouldRetire === 0) {
      if (o.json) return out(json(summary))
      return out(summary.wouldRetire === 0 ? `nothing to retire: windows 0..${to - 1} are Retired already` : `would retire ${summary.wouldRetire} slots: windows 0..${to - 1} of ${syms.length} symbols, every slot kind (dry run: nothing changed)`)
    }
    await confirm(`retire ${summary.wouldRetire} slots: windows 0..${to - 1} of ${syms.length} symbols, every slot kind (keeping the last ${keep} windows)?`, o as { yes?: boolean })
    for (const s of syms) for (const k of SLOT_KIND_NAMES) summary.retired += c.retireRange(s, { from: 0, to }, k, adminOptions(o))
    c.appendAudit('retention', { keep, windowCount: count, retireBefore: to, retired: summary.retired }, adminOptions(o))
    if (o.json) return out(json(summary))
    out(`retired ${summary.retired} slots in windows 0..${to - 1}; run \`window-space gc ${dir} --delete\` to remove their artifacts`)
  } finally {
    c.close()
  }
}

function gcCommand(dir: string, o: Opts): void {
  const minAge = duration(String(o.minAge ?? '1h'), '--min-age')
  const startedAt = Date.now()
  const boot = openDir(dir, 'buffered', o.actor as string | undefined)
  const c = boot.controller
  try {
    const gcBefore = readGcLog(c.stateDir)
    const finished: Array<{ uri: string; result: string }> = []
    if (o.delete && gcBefore.unfinished.length > 0) {
      // Finish what a gc that died left behind, before planning anew.
      const known = new UriIndex(c, loadRecords(c))
      for (const intent of gcBefore.unfinished) finished.push({ uri: intent.uri, result: finishCollect(c, intent, known, startedAt) })
    }
    const { plan, records } = planGc(c, minAge, startedAt)
    const result = { stateDir: c.stateDir, deleted: Boolean(o.delete), minAgeMs: minAge, records: plan.records, files: plan.files, youngFilesKept: plan.young, reclaimableBytes: plan.bytes, unfinishedBefore: gcBefore.unfinished.length, finished, removed: [] as string[], kept: [] as Array<{ uri: string; why: string }>, recordsMarked: 0 }
    if (o.delete) {
      const progress = new Progress('gc', plan.files.length)
      const index = new UriIndex(c, records)
      try {
        for (const f of plan.files) {
          const r = collectFile(c, f, index, startedAt)
          if (r === 'done') result.removed.push(f.uri)
          else result.kept.push({ uri: f.uri, why: r })
          progress.tick()
        }
      } finally {
        progress.end()
      }
      // Records whose file is gone or still used by a live record: mark them collected (the table itself is never rewritten).
      const handled = new Set(plan.files.flatMap((f) => f.records.map((r) => storeKey(r.store, r.payloadId))))
      const marks: GcEntry[] = []
      for (const r of plan.records) {
        if (handled.has(storeKey(r.store, r.payloadId))) continue
        const file = path.join(c.stateDir, r.uri)
        const why = fs.existsSync(file) ? (plan.young.some((y) => y.uri === r.uri) ? '' : 'artifact shared with a live record') : 'artifact already gone'
        if (why === '' || recordLiveNow(c, r)) continue
        marks.push({ v: 1, op: 'record', at: now(), store: r.store, payloadId: r.payloadId, uri: r.uri, why })
      }
      if (marks.length > 0) appendGcLog(c.stateDir, marks)
      result.recordsMarked = marks.length
      if (result.removed.length > 0 || marks.length > 0 || finished.length > 0) {
        const removedBytes = plan.files.filter((f) => result.removed.includes(f.uri)).reduce((a, f) => a + f.size, 0)
        c.appendAudit('gc', { removedFiles: result.removed.length, removedBytes, recordsMarked: marks.length, kept: result.kept.length, finishedFromEarlierRun: finished.length, log: GC_LOG }, adminOptions(o))
      }
    }
    if (o.json) return out(json(result))
    const lines: string[] = []
    if (finished.length) lines.push(`finished ${finished.length} collections a previous gc left unfinished`)
    if (!o.delete && gcBefore.unfinished.length) lines.push(`${gcBefore.unfinished.length} collections a previous gc left unfinished: run with --delete to finish them`)
    lines.push(`unreferenced payload records: ${plan.records.length}`)
    for (const r of plan.records.slice(0, 20)) lines.push(`  ${r.store}#${r.payloadId}  ${r.symbol} window ${r.windowIdx} ${r.slot} (slot ${r.slotStatus === 'Filled' ? 'Filled with another record' : `now ${r.slotStatus}`})  ${r.uri}`)
    if (plan.records.length > 20) lines.push(`  … and ${plan.records.length - 20} more (--json lists all)`)
    lines.push(`unreferenced artifact files: ${plan.files.length} (${bytes(plan.bytes)})`)
    for (const f of plan.files.slice(0, 20)) lines.push(`  ${f.uri}  ${bytes(f.size)}${f.records.length ? '' : '  (no record: an engine died before appending)'}`)
    if (plan.files.length > 20) lines.push(`  … and ${plan.files.length - 20} more (--json lists all)`)
    if (plan.young.length) lines.push(`kept ${plan.young.length} unreferenced files younger than --min-age ${String(o.minAge ?? '1h')} (an engine may be about to record them)`)
    if (o.delete) {
      lines.push(`removed ${result.removed.length} files${result.kept.length ? `, kept ${result.kept.length} (${[...new Set(result.kept.map((k) => k.why))].join('; ')})` : ''}; marked ${result.recordsMarked + plan.files.reduce((a, f) => a + (result.removed.includes(f.uri) ? f.records.length : 0), 0)} records collected in ${GC_LOG}`)
    } else if (plan.files.length || plan.records.length) {
      lines.push(`run again with --delete to remove the files and record the collection in ${GC_LOG}`)
    }
    out(lines.join('\n'))
  } finally {
    c.close()
  }
}

function recordLiveNow(c: WindowSpaceController, r: GcCandidateRecord): boolean {
  const slot = c.getSlot(r.symbolId, r.windowIdx, r.slot)
  return slot.status === 'Pending' || (slot.status === 'Filled' && slot.payloadId === r.payloadId)
}

async function metricsCommand(dir: string): Promise<void> {
  const boot = openDir(dir)
  try {
    const registry = new Registry()
    registerMetrics(registry, boot)
    out(await registry.metrics())
  } finally {
    boot.controller.close()
  }
}

async function serveMetrics(dir: string, o: Opts): Promise<void> {
  if (o.port === undefined) throw new UsageError('--port P is required (0 picks a free port)')
  const port = whole(String(o.port), '--port')
  if (port > 65535) throw new UsageError(`--port must be 0..65535, got ${port}`)
  const boot = openDir(dir)
  const registry = new Registry()
  registerMetrics(registry, boot)
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/metrics' && req.url !== '/')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n')
      return
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${oneLine(String(e))}\n`),
    )
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new UsageError(`cannot listen on 127.0.0.1:${port}: ${e.code ?? e.message}`)))
    server.listen(port, '127.0.0.1', () => resolve())
  }).catch((e: unknown) => {
    boot.controller.close()
    throw e
  })
  const addr = server.address() as { port: number }
  process.stderr.write(`serving metrics of ${boot.controller.stateDir} on http://127.0.0.1:${addr.port}/metrics\n`)
  await new Promise<void>((resolve) => {
    const stop = () => {
      server.close(() => resolve())
      server.closeAllConnections() // a scraper's idle keep-alive connection must not hold the exit
    }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
  boot.controller.close()
}

function exportCommand(dir: string, o: Opts): void {
  const boot = openDir(dir)
  const c = boot.controller
  try {
    const syms = symbolIds(c, o.symbol as string | undefined)
    if (o.ledger !== undefined && o.ledger !== 'trade' && o.ledger !== 'enrichment') throw new UsageError(`unknown ledger ${JSON.stringify(o.ledger)} (trade or enrichment)`)
    const ledgers: LedgerName[] = o.ledger === undefined ? [...LEDGERS] : [o.ledger as LedgerName]
    const { from, to } = windowRange(c, { from: o.from as string | undefined, to: o.to as string | undefined }, false)
    const names = c.symbols()
    const stores = c.payloadStores()
    const uriOf = (store: PayloadStoreName, id: number): string | null => {
      try {
        return stores[store].get(id)?.uri ?? null
      } catch {
        return null
      }
    }
    let buf: string[] = []
    const flush = () => {
      if (buf.length) fs.writeSync(1, buf.join(''))
      buf = []
    }
    forEachRow(c, { ledgers, symbols: syms, from, to, label: 'export' }, (ledger, s, w, row) => {
      if (!o.allRows && row.every(([, slot]) => slot.status === 'Empty')) return
      const slots: Record<string, unknown> = {}
      for (const [k, slot] of row) {
        slots[k] =
          slot.status === 'Filled'
            ? { status: slot.status, version: slot.version, payloadType: slot.payloadType, payloadId: slot.payloadId, checksum: hex(slot.checksum), uri: uriOf(STORE_OF_SLOT_KIND[k], slot.payloadId) }
            : slot.status === 'Pending'
              ? { status: slot.status, version: slot.version, leaseExpiresAt: new Date(slot.leaseExpiresAt!).toISOString() }
              : { status: slot.status, version: slot.version }
      }
      const meta = c.windowMeta(w)
      buf.push(`${JSON.stringify({ ledger, symbol: names[s], symbolId: s, windowIdx: w, start: isoOfNs(meta.start), slots })}\n`)
      if (buf.length >= 1000) flush()
    })
    flush()
  } finally {
    c.close()
  }
}

function auditCommand(dir: string, o: Opts): void {
  const abs = path.resolve(dir)
  if (!fs.existsSync(abs) || !fs.statSync(abs).isDirectory()) throw new UsageError(`no such directory: ${abs}`)
  if (!fs.existsSync(path.join(abs, 'schedule.json'))) throw new UsageError(`${abs} is not a window-space state directory (it has no schedule.json)`)
  const scan = scanAuditLog(abs)
  for (const d of scan.damaged) process.stderr.write(`warning: audit.log line ${d.line} (offset ${d.offset}) ${d.what}; skipped (window-space verify reports it)\n`)
  let entries = scan.entries
  if (o.last !== undefined) {
    const n = whole(String(o.last), '--last')
    entries = n === 0 ? [] : entries.slice(-n)
  }
  if (o.json) {
    if (entries.length) fs.writeSync(1, entries.map((e) => `${JSON.stringify(e)}\n`).join(''))
    return
  }
  if (entries.length === 0) return out(`no audit entries in ${abs}`)
  const lines = entries.map((e) => {
    const where = [e.symbol, e.slot, e.window !== undefined ? `window ${e.window}` : e.from !== undefined ? `windows ${e.from}..${(e.to ?? e.from) - 1}` : undefined].filter((x) => x !== undefined).join(' ')
    const what = e.changed ? `${e.changed.length} changed` : e.previous ? `was ${e.previous.status}` : e.details ? JSON.stringify(e.details) : ''
    return `${isoOfNs(BigInt(e.atNs))}  ${e.action.padEnd(15)} ${where.padEnd(34)} ${what}  — ${e.actor}${e.reason ? `: ${e.reason}` : ''}`
  })
  out(lines.join('\n'))
}

// ---- the program -------------------------------------------------------------

function program(): Command {
  const p = new Command('window-space')
  p.description('Operate a window-space state directory: inspect, verify, clear, retire, collect garbage, export, metrics.')
    .version((require('../package.json') as { version: string }).version)
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', '\nExit status: 0 ok, 1 problems found or the state could not be read or changed, 2 bad input.\nWindow ranges are --from (inclusive) to --to (exclusive), like the library.')
    .exitOverride()
    .configureOutput({ outputError: (s, write) => write(s) })

  // Commander calls an action with (dir, options, command); ours take (dir, options).
  const run =
    (f: (dir: string, o: Opts) => unknown) =>
    async (...args: unknown[]): Promise<void> => {
      await f(args[0] as string, args[1] as Opts)
    }

  p.command('inspect')
    .argument('<dir>', 'state directory')
    .description('schedule, sizes, symbols, per-ledger and per-slot status counts, event counters, stale claims')
    .option('--by-symbol', 'also count statuses per symbol (scans the ledgers)')
    .option('--json', 'print one JSON document')
    .action(run(inspect))

  p.command('grid')
    .argument('<dir>', 'state directory')
    .description('a status grid of a window range: one character per slot (. Empty, P Pending, S stale Pending, F Filled, C Cleared, R Retired)')
    .requiredOption('--symbol <symbol>', 'the symbol')
    .option('--from <window>', 'first window (default 0)')
    .option('--to <window>', 'end window, exclusive (default: the window count)')
    .option('--slot <kinds>', 'slot kinds, comma-separated, or all (default all)')
    .option('--color', 'force colour')
    .option('--no-color', 'no colour (default: colour only on a terminal that supports it, and NO_COLOR unset)')
    .option('--json', 'print one JSON document')
    .action(run(grid))

  p.command('verify')
    .argument('<dir>', 'state directory')
    .description('check every invariant of the state directory; exit 1 with a list of what is wrong')
    .option('--artifacts', 'also check that artifact files of Filled slots exist and match their checksums')
    .option('--json', 'print one JSON document')
    .action(
      run((dir: string, o: Opts) => {
        const r = verify(dir, Boolean(o.artifacts))
        if (o.json) out(json(r))
        else {
          const lines = [`verified ${r.stateDir}: ${r.counts.rows} rows, ${r.counts.filledSlots} Filled slots, ${r.counts.records} records${o.artifacts ? `, ${r.counts.artifacts} artifact files` : ''}`]
          for (const ch of r.checked) lines.push(`  checked: ${ch}`)
          for (const w of r.warnings) lines.push(`warning: ${w.message}`)
          for (const pr of r.problems) lines.push(`PROBLEM [${pr.kind}] ${pr.message}`)
          lines.push(r.ok ? 'OK: no problems found' : `${r.problems.length} problem${r.problems.length === 1 ? '' : 's'} found`)
          out(lines.join('\n'))
        }
        if (!r.ok) process.exitCode = 1
      }),
    )

  for (const action of ['clear', 'retire'] as const) {
    p.command(action)
      .argument('<dir>', 'state directory')
      .description(action === 'clear' ? 'force-clear slots (Pending or Filled → Cleared: engines will redo them)' : 'retire slots (→ Retired, terminal: never claimed again)')
      .option('--symbol <symbols>', 'a symbol, a comma-separated list, or all')
      .option('--slot <kinds>', `slot kinds, comma-separated, or all (${SLOT_KIND_NAMES.join(', ')})`)
      .option('--window <window>', 'one window')
      .option('--from <window>', 'first window of a range')
      .option('--to <window>', 'end of the range, exclusive')
      .option('--dry-run', 'say what would change, change nothing')
      .option('-y, --yes', 'do not ask for confirmation (required when stdin is not a terminal)')
      .option('--reason <text>', 'why, for the audit trail (default: this command line)')
      .option('--actor <name>', 'who, for the audit trail (default: user@host pid N)')
      .option('--json', 'print one JSON document')
      .action(run((dir, o) => adminCommand(action, dir, o)))
  }

  p.command('gc')
    .argument('<dir>', 'state directory')
    .description('find payload records and artifact files no live slot references; with --delete remove the files (restart-safe) and record the collection in gc.log')
    .option('--delete', 'remove unreferenced artifact files and mark their records collected in gc.log')
    .addOption(new Option('--min-age <duration>', 'leave files younger than this (an engine may be about to record them), e.g. 90s, 15m, 2h').default('1h'))
    .option('--reason <text>', 'why, for the audit trail (default: this command line)')
    .option('--actor <name>', 'who, for the audit trail (default: user@host pid N)')
    .option('--json', 'print one JSON document')
    .action(run(gcCommand))

  p.command('retention')
    .argument('<dir>', 'state directory')
    .description('retire every slot of every symbol in windows older than the last N windows of the schedule')
    .option('--keep <n>', 'how many windows at the end of the schedule to keep')
    .option('--dry-run', 'say what would change, change nothing')
    .option('-y, --yes', 'do not ask for confirmation (required when stdin is not a terminal)')
    .option('--reason <text>', 'why, for the audit trail (default: this command line)')
    .option('--actor <name>', 'who, for the audit trail (default: user@host pid N)')
    .option('--json', 'print one JSON document')
    .action(run(retention))

  p.command('audit')
    .argument('<dir>', 'state directory')
    .description('print the audit trail (audit.log): force-clears, retires, takeovers, gc and retention runs, with who and why')
    .option('--last <n>', 'only the last N entries')
    .option('--json', 'print the entries as JSON lines')
    .action(run(auditCommand))

  p.command('metrics')
    .argument('<dir>', 'state directory')
    .description('print the Prometheus metrics of the directory once (text format)')
    .action(run((dir) => metricsCommand(dir)))

  p.command('serve-metrics')
    .argument('<dir>', 'state directory')
    .description('serve the Prometheus metrics over HTTP on 127.0.0.1 (GET /metrics) until interrupted')
    .option('--port <port>', 'TCP port on 127.0.0.1 (0 picks a free one)')
    .action(run(serveMetrics))

  p.command('export')
    .argument('<dir>', 'state directory')
    .description('print rows as JSON lines (rows with at least one non-Empty slot, unless --all-rows)')
    .option('--symbol <symbols>', 'a symbol, a comma-separated list, or all (default all)')
    .option('--ledger <ledger>', 'trade or enrichment (default both)')
    .option('--from <window>', 'first window (default 0)')
    .option('--to <window>', 'end window, exclusive (default: the window count)')
    .option('--all-rows', 'also print rows whose slots are all Empty')
    .action(run(exportCommand))

  for (const c of p.commands) c.exitOverride().configureOutput({ outputError: (s, write) => write(s) }).showHelpAfterError(`(run window-space ${c.name()} --help for usage)`)
  return p
}

async function main(argv: string[]): Promise<number> {
  const p = program()
  const name = argv.find((a, i) => i >= 2 && !a.startsWith('-')) ?? 'window-space'
  try {
    await p.parseAsync(argv)
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0
      return 2
    }
    return fail(name, e)
  }
  return typeof process.exitCode === 'number' ? process.exitCode : 0
}

// A reader that stops early (`export … | head`) is not an error of ours.
const isEpipe = (e: unknown) => (e as NodeJS.ErrnoException | null)?.code === 'EPIPE'
process.stdout.on('error', (e) => {
  if (isEpipe(e)) process.exit(0)
})

main(process.argv).then(
  (code) => {
    process.exitCode = code
  },
  (e: unknown) => {
    process.stderr.write(`window-space: ${oneLine(String(e))}\n`)
    process.exitCode = 1
  },
)
