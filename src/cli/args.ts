/**
 * The command line's arguments and exit statuses: parsing numbers, durations,
 * symbols, slot kinds and window ranges; opening a state directory for a
 * command (read-only for the commands that only look); who and why for the
 * audit trail; asking for confirmation; formatting helpers shared by the
 * commands.
 *
 * Exit status: 0 success; 1 the command ran and found something wrong
 * (verify), or the state or the output could not be read or written; 2 bad
 * input (missing directory, unknown symbol or slot, bad range, a change
 * refused without `--yes`).
 *
 * @module
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as readline from 'node:readline'

import { WindowSpaceController, type BootstrapResult } from '../controller'
import { WindowSpaceError } from '../errors'
import { StateView } from '../state-view'
import { LEDGER_NAMES, SLOT_KIND_INFO, SLOT_KIND_NAMES, type LedgerName, type SlotKindName } from '../vocabulary'
import { err, OutputError, ReaderGone } from './output'

/** Bad input: exit status 2. */
export class UsageError extends Error {}

/** Codes of library errors that mean the operator's input was wrong (exit 2). */
const INPUT_CODES = new Set(['ERR_NOT_A_STATE_DIR', 'ERR_UNKNOWN_SYMBOL', 'ERR_WINDOW_OUT_OF_RANGE', 'ERR_INVALID_ARGUMENT', 'ERR_INVALID_SYMBOL', 'ERR_PATH_ESCAPES_STATE_DIR'])

export function exitStatusOf(e: unknown): number {
  if (e instanceof ReaderGone) return 0
  if (e instanceof OutputError) return 1
  if (e instanceof UsageError || e instanceof TypeError || e instanceof RangeError) return 2
  if (e instanceof WindowSpaceError && INPUT_CODES.has(e.code)) return 2
  return 1
}

export function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim()
}

/**
 * Text from a file or an operator, made safe for a terminal: control
 * characters (newlines, escape sequences) are shown as `\n`, `\x1b`, … so
 * they can neither forge lines nor drive the terminal.
 */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => (c === '\n' ? '\\n' : c === '\t' ? '\\t' : c === '\r' ? '\\r' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`))
}

/** Reports an error on stderr (one line) and returns the exit status. */
export function fail(command: string, e: unknown): number {
  if (e instanceof ReaderGone) return 0
  const msg = e instanceof WindowSpaceError ? `${e.message} (${e.code})` : e instanceof Error ? e.message : String(e)
  err(`window-space ${command}: ${printable(oneLine(msg))}`)
  return exitStatusOf(e)
}

export function json(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `0x${x.toString(16).padStart(16, '0')}` : x))
}

export function hex(c: bigint): string {
  return `0x${c.toString(16).padStart(16, '0')}`
}

export function bytes(n: number): string {
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

export function isoOfNs(ns: bigint): string {
  try {
    return new Date(Number(ns / 1_000_000n)).toISOString()
  } catch {
    return `${ns} ns`
  }
}

/** A whole number from 0 to 2^32-1. */
export function whole(v: string, what: string): number {
  if (!/^\d+$/.test(v) || Number(v) > 0xffffffff) throw new UsageError(`${what} must be a whole number, got ${JSON.stringify(v)}`)
  return Number(v)
}

/** `90`, `90s`, `15m`, `2h`, `7d` → milliseconds. */
export function duration(v: string, what: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(v)
  if (!m) throw new UsageError(`${what} must be a duration like 90s, 15m, 2h or 7d, got ${JSON.stringify(v)}`)
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd']
  return Number(m[1]) * unit
}

/** The absolute path of a state directory argument; a missing one is bad input. */
export function stateDirArg(dir: string): string {
  const abs = path.resolve(dir)
  let st: fs.Stats
  try {
    st = fs.statSync(abs)
  } catch {
    throw new UsageError(`no such directory: ${abs}`)
  }
  if (!st.isDirectory()) throw new UsageError(`not a directory: ${abs}`)
  return abs
}

/** Opens a state directory for a command that changes it. */
export function openDir(dir: string, durability: 'buffered' | 'sync' = 'buffered', actor?: string): BootstrapResult {
  return WindowSpaceController.openExisting(stateDirArg(dir), { durability, ...(actor === undefined ? {} : { actor }) })
}

/** Opens a state directory read-only, for a command that only looks. */
export function openView(dir: string): StateView {
  return StateView.open(stateDirArg(dir))
}

/** Symbol ids named by `--symbol` (a name, a comma-separated list, or `all`). */
export function symbolIds(known: readonly string[], dir: string, spec: string | undefined): number[] {
  if (spec === undefined || spec === 'all') return known.map((_, i) => i)
  const ids: number[] = []
  for (const s of spec.split(',').map((x) => x.trim()).filter((x) => x !== '')) {
    const id = known.indexOf(s)
    if (id < 0) {
      const list = known.length === 0 ? 'it has no symbols yet' : `known: ${known.slice(0, 10).join(', ')}${known.length > 10 ? `, … (${known.length})` : ''}`
      throw new UsageError(`unknown symbol ${JSON.stringify(s)} in ${dir} (${list})`)
    }
    ids.push(id)
  }
  if (ids.length === 0) throw new UsageError('--symbol names no symbol')
  return ids
}

/** Slot kinds named by `--slot` (a name, a comma-separated list, or `all`), optionally of one ledger. */
export function slotKinds(spec: string | undefined, ledger?: string): SlotKindName[] {
  let kinds: SlotKindName[]
  if (spec === undefined || spec === 'all') kinds = [...SLOT_KIND_NAMES]
  else {
    kinds = []
    for (const s of spec.split(',').map((x) => x.trim()).filter((x) => x !== '')) {
      if (!(SLOT_KIND_NAMES as readonly string[]).includes(s)) throw new UsageError(`unknown slot kind ${JSON.stringify(s)} (one of: ${SLOT_KIND_NAMES.join(', ')}, all)`)
      kinds.push(s as SlotKindName)
    }
    if (kinds.length === 0) throw new UsageError(`--slot names no slot kind (one or more of: ${SLOT_KIND_NAMES.join(', ')}, or all)`)
  }
  if (ledger !== undefined) kinds = kinds.filter((k) => SLOT_KIND_INFO[k].ledger === ledgerArg(ledger))
  return kinds
}

/** A ledger name argument. */
export function ledgerArg(ledger: string): LedgerName {
  if (!(LEDGER_NAMES as readonly string[]).includes(ledger)) throw new UsageError(`unknown ledger ${JSON.stringify(ledger)} (${LEDGER_NAMES.join(' or ')})`)
  return ledger as LedgerName
}

/** A window range `[from, to)` from `--window` or `--from`/`--to`, checked against the schedule. */
export function windowRange(count: number, dir: string, o: { window?: string; from?: string; to?: string }, required: boolean): { from: number; to: number } {
  if (o.window !== undefined) {
    if (o.from !== undefined || o.to !== undefined) throw new UsageError('give either --window or --from/--to, not both')
    const w = whole(o.window, '--window')
    if (w >= count) throw new UsageError(`--window ${w} is out of range: ${dir} has windows 0..${count - 1}`)
    return { from: w, to: w + 1 }
  }
  if (required && (o.from === undefined || o.to === undefined)) throw new UsageError('give --window W, or --from W and --to W')
  const from = o.from === undefined ? 0 : whole(o.from, '--from')
  const to = o.to === undefined ? count : whole(o.to, '--to')
  if (to <= from) throw new UsageError(`bad range --from ${from} --to ${to}: --to is exclusive and must be greater than --from`)
  if (to > count) throw new UsageError(`bad range --from ${from} --to ${to}: ${dir} has ${count} windows, so --to is at most ${count}`)
  return { from, to }
}

/** A window range as people read it: `window 7`, `windows 0..9`. */
export function windowsText(r: { from: number; to: number }): string {
  return r.to - r.from === 1 ? `window ${r.from}` : `windows ${r.from}..${r.to - 1}`
}

/** "1 slot", "2 slots". */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`
}

/** Longest actor or reason of an audit line, in characters (the core refuses longer ones). */
const MAX_AUDIT_TEXT = 256

/** Options every command that changes things takes. */
export type Opts = Record<string, string | boolean | undefined>

/**
 * Who and why, for the audit trail of the commands that change things. The
 * default reason is the command line, shortened (with an ellipsis in the
 * middle) to what the audit trail accepts; a `--reason` or `--actor` over
 * the limit is bad input, refused before anything changes.
 */
export function adminOptions(o: Opts): { actor?: string; reason: string } {
  for (const k of ['reason', 'actor'] as const) {
    const v = o[k]
    if (typeof v === 'string' && [...v].length > MAX_AUDIT_TEXT) throw new UsageError(`--${k} must be at most ${MAX_AUDIT_TEXT} characters, got ${[...v].length}`)
  }
  let reason = typeof o.reason === 'string' ? o.reason : `window-space ${process.argv.slice(2).join(' ')}`
  const chars = [...reason]
  if (chars.length > MAX_AUDIT_TEXT) reason = `${chars.slice(0, 120).join('')}…${chars.slice(-(MAX_AUDIT_TEXT - 121)).join('')}`
  return typeof o.actor === 'string' ? { actor: o.actor, reason } : { reason }
}

/** Asks on the terminal, unless `--yes`; refuses without a terminal. */
export async function confirm(question: string, o: { yes?: boolean }): Promise<void> {
  if (o.yes) return
  if (!process.stdin.isTTY) throw new UsageError(`${question.replace(/\?$/, '')}: refused without --yes (stdin is not a terminal, so nobody can confirm)`)
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr })
  const answer = await new Promise<string>((resolve) => rl.question(`${question} [y/N] `, resolve))
  rl.close()
  if (!/^y(es)?$/i.test(answer.trim())) throw new UsageError('not confirmed; nothing was changed')
}
