/**
 * `window-space audit`: prints the audit trail (`audit.log`, format in
 * crates/window-space-core/src/audit.rs). Read-only. Text from the log is
 * made safe for a terminal (control characters escaped), and a line of the
 * wrong shape is shown as well as it can be, never a crash.
 *
 * @module
 */
import * as fs from 'node:fs'
import * as path from 'node:path'

import { scanAuditLog, type AuditEntry } from '../audit'
import { isoOfNs, json, printable, stateDirArg, UsageError, whole, type Opts } from './args'
import { err, LineWriter, out } from './output'

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : v === undefined || v === null ? undefined : JSON.stringify(v))
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined)

/** What an intent and its outcome share: action, actor and slots (`window` W is the range W..W+1). */
function target(e: AuditEntry): string {
  const w = num(e.window)
  return JSON.stringify([e.action, e.actor, e.symbolId, e.slot, w ?? e.from, w === undefined ? e.to : w + 1])
}

function atOf(e: AuditEntry): string {
  try {
    return isoOfNs(BigInt(e.atNs))
  } catch {
    return printable(String(e.atNs))
  }
}

function describe(e: AuditEntry, outcomeFollows: boolean): string {
  const from = num(e.from)
  const to = num(e.to)
  const where = [str(e.symbol), str(e.slot), num(e.window) !== undefined ? `window ${e.window}` : from !== undefined ? (to === from + 1 ? `window ${from}` : `windows ${from}..${(to ?? from) - 1}`) : undefined]
    .filter((x) => x !== undefined)
    .join(' ')
  let what: string
  if (e.phase === 'intent') what = outcomeFollows ? '' : 'intent; no outcome recorded (the slots named may or may not have changed)'
  else if (Array.isArray(e.changed)) what = `${e.changed.length} changed`
  else if (typeof e.previous === 'object' && e.previous !== null) what = `was ${str(e.previous.status) ?? '?'}`
  else if (e.details !== undefined) what = json(e.details)
  else what = ''
  const reason = str(e.reason)
  return `${atOf(e)}  ${printable(str(e.action) ?? '?').padEnd(15)} ${printable(where).padEnd(34)} ${printable(what)}  — ${printable(str(e.actor) ?? '?')}${reason ? `: ${printable(reason)}` : ''}`
}

export function auditCommand(dir: string, o: Opts): void {
  const abs = stateDirArg(dir)
  if (!fs.existsSync(path.join(abs, 'schedule.json'))) throw new UsageError(`${abs} is not a window-space state directory (it has no schedule.json)`)
  const scan = scanAuditLog(abs)
  for (const t of scan.torn) err(`warning: audit.log line ${t.line} (offset ${t.offset}) is an append cut short (the call that wrote it failed, as on a full disk); skipped`)
  for (const d of scan.damaged) err(`warning: audit.log line ${d.line} (offset ${d.offset}) ${printable(d.what)}; damaged, skipped (window-space verify reports it)`)
  const entries = scan.entries
  const last = o.last === undefined ? undefined : whole(String(o.last), '--last')
  if (o.json) {
    // The lines as they are in the file: --last N is the last N lines.
    const w = new LineWriter()
    for (const e of last === undefined ? entries : last === 0 ? [] : entries.slice(-last)) w.line(JSON.stringify(e))
    w.flush()
    return
  }
  // An intent whose outcome follows is shown by its outcome line alone;
  // --last N is the last N entries shown.
  const answered = new Array<boolean>(entries.length).fill(false)
  const outcomes = new Map<string, number>()
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i]!
    const key = target(e)
    if (e.phase !== 'intent') outcomes.set(key, (outcomes.get(key) ?? 0) + 1)
    else if ((outcomes.get(key) ?? 0) > 0) {
      answered[i] = true
      outcomes.set(key, outcomes.get(key)! - 1)
    }
  }
  const shown = entries.filter((_, i) => !answered[i])
  const lines = last === undefined ? shown : last === 0 ? [] : shown.slice(-last)
  if (lines.length === 0) return out(`no audit entries in ${abs}`)
  const w = new LineWriter()
  for (const e of lines) w.line(describe(e, e.phase !== 'intent'))
  w.flush()
}
