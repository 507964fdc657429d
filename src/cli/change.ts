/**
 * The commands that change slots: `clear` (force-clear), `retire` and
 * `retention`. Each says what it will change before it asks (or before
 * `--yes`), names who and why in the audit trail, and changes nothing
 * unless the audit trail can be written.
 *
 * @module
 */
import { SLOT_KIND_NAMES, SLOT_STATUSES, type SlotKindName, type SlotStatus } from '../vocabulary'
import type { StateView } from '../state-view'
import {
  adminOptions,
  confirm,
  isoOfNs,
  json,
  openDir,
  openView,
  plural,
  printable,
  slotKinds,
  symbolIds,
  UsageError,
  whole,
  windowRange,
  windowsText,
  type Opts,
} from './args'
import { out } from './output'

type Tally = Record<SlotStatus, number>

const emptyTally = (): Tally => Object.fromEntries(SLOT_STATUSES.map((s) => [s, 0])) as Tally

/** How many slots of `kinds` × `symbols` × `range` an action would change, by their status now. */
function tally(view: StateView, symbols: readonly number[], kinds: readonly SlotKindName[], range: { from: number; to: number }, changes: (s: SlotStatus) => boolean): Tally {
  const t = emptyTally()
  for (const s of symbols) {
    const cells = view.grid(s, range, kinds)
    for (const k of kinds) {
      for (const c of cells[k]) {
        const st: SlotStatus = c === 'Stale' ? 'Pending' : c
        if (changes(st)) t[st]++
      }
    }
  }
  return t
}

const total = (t: Tally) => Object.values(t).reduce((a, b) => a + b, 0)
const byStatus = (t: Tally) => SLOT_STATUSES.filter((s) => t[s] > 0).map((s) => `${t[s]} ${s}`).join(', ') || 'none'

export async function adminCommand(action: 'clear' | 'retire', dir: string, o: Opts): Promise<void> {
  if (o.symbol === undefined) throw new UsageError('--symbol is required (a symbol, a comma-separated list, or all)')
  if (o.slot === undefined) throw new UsageError(`--slot is required (${SLOT_KIND_NAMES.join(', ')}, or all)`)
  const who = adminOptions(o) // checked before anything is opened or changed
  const view = openView(dir)
  const s = view.summary()
  const syms = symbolIds(s.symbols, view.stateDir, String(o.symbol))
  const kinds = slotKinds(String(o.slot))
  const range = windowRange(s.windowCount, view.stateDir, { window: o.window as string | undefined, from: o.from as string | undefined, to: o.to as string | undefined }, true)
  const changes = action === 'clear' ? (st: SlotStatus) => st === 'Pending' || st === 'Filled' : (st: SlotStatus) => st !== 'Retired'
  const would = tally(view, syms, kinds, range, changes)
  const n = total(would)
  const verb = action === 'clear' ? 'force-clear' : 'retire'
  const symbolsText = syms.length === s.symbols.length && syms.length > 1 ? 'every symbol' : syms.map((x) => printable(s.symbols[x]!)).join(', ')
  const what = `${verb} ${plural(n, 'slot')} (${byStatus(would)}) of ${symbolsText}, ${kinds.length === SLOT_KIND_NAMES.length ? 'every slot kind' : kinds.join(', ')}, ${windowsText(range)}`
  const summary = { action, dryRun: Boolean(o.dryRun), symbols: syms.map((x) => s.symbols[x]), slots: kinds, from: range.from, to: range.to, wouldChange: would, changed: 0 }
  if (o.dryRun || n === 0) {
    if (o.json) return out(json(summary))
    return out(n === 0 ? `nothing to ${action}: no slot in that range ${action === 'clear' ? 'is Pending or Filled' : 'is not Retired already'}` : `would ${what} (dry run: nothing changed)`)
  }
  await confirm(`${what}?`, o)
  const { controller: c } = openDir(dir, 'sync', who.actor)
  try {
    let changed = 0
    for (const sym of syms) {
      for (const k of kinds) changed += action === 'clear' ? c.forceClearRange(sym, range, k, who) : c.retireRange(sym, range, k, who)
    }
    summary.changed = changed
    if (o.json) return out(json(summary))
    out(`${action === 'clear' ? 'force-cleared' : 'retired'} ${plural(changed, 'slot')}${action === 'retire' && changed ? ' (their artifacts are now garbage: see `window-space gc`)' : ''}`)
  } finally {
    c.close()
  }
}

/**
 * The window retention counts back from: `--before-window W`, the first
 * window that starts after `--at TIME`, or after now. `where` names the
 * directory or space, `startedBy` counts the windows started by a time in ms.
 */
export function retentionAnchor(o: Opts, windowCount: number, where: string, startedBy: (ms: number) => number): { window: number; what: string } {
  if (o.beforeWindow !== undefined) {
    if (o.at !== undefined) throw new UsageError('give either --before-window or --at, not both')
    const w = whole(String(o.beforeWindow), '--before-window')
    if (w > windowCount) throw new UsageError(`--before-window ${w} is past the schedule: ${where} has ${windowCount} windows`)
    return { window: w, what: `window ${w}` }
  }
  const atMs = o.at === undefined ? Date.now() : Date.parse(String(o.at))
  if (Number.isNaN(atMs)) throw new UsageError(`--at must be a time like 2026-11-30T14:30:00Z, got ${JSON.stringify(o.at)}`)
  return { window: startedBy(atMs), what: `${o.at !== undefined ? '--at' : 'now'} (${new Date(atMs).toISOString()})` }
}

export async function retention(dir: string, o: Opts): Promise<void> {
  if (o.keep === undefined) throw new UsageError('--keep N is required')
  const keep = whole(String(o.keep), '--keep')
  const who = adminOptions(o)
  const view = openView(dir)
  const s = view.summary()
  if (o.force !== undefined) throw new UsageError('--force applies to a database (postgres://): a directory\'s retention retires slots one by one, live claims included')
  const anchor = retentionAnchor(o, s.windowCount, view.stateDir, (ms) => view.windowsStartedBy(BigInt(ms) * 1_000_000n))
  const to = Math.max(0, anchor.window - keep)
  const syms = s.symbols.map((_, i) => i)
  const summary = { keep, windowCount: s.windowCount, anchorWindow: anchor.window, retireBefore: to, dryRun: Boolean(o.dryRun), wouldRetire: 0, retired: 0 }
  if (to === 0 || syms.length === 0) {
    if (o.json) return out(json(summary))
    return out(`nothing to retire: keeping the ${keep} windows before ${anchor.what} leaves no older window (${plural(syms.length, 'symbol')})`)
  }
  const range = { from: 0, to }
  summary.wouldRetire = total(tally(view, syms, SLOT_KIND_NAMES, range, (st) => st !== 'Retired'))
  const what = `retire ${plural(summary.wouldRetire, 'slot')}: windows 0..${to - 1} (from ${isoOfNs(s.firstStartNs)}; the ${keep} windows before ${anchor.what} are kept) of ${plural(syms.length, 'symbol')}, every slot kind`
  if (o.dryRun || summary.wouldRetire === 0) {
    if (o.json) return out(json(summary))
    return out(summary.wouldRetire === 0 ? `nothing to retire: windows 0..${to - 1} are Retired already` : `would ${what} (dry run: nothing changed)`)
  }
  await confirm(`${what}?`, o)
  const { controller: c } = openDir(dir, 'sync', who.actor)
  try {
    c.appendAudit('retention', { phase: 'intent', keep, anchorWindow: anchor.window, retireBefore: to }, who)
    for (const sym of syms) for (const k of SLOT_KIND_NAMES) summary.retired += c.retireRange(sym, range, k, who)
    c.appendAudit('retention', { phase: 'done', keep, anchorWindow: anchor.window, retireBefore: to, retired: summary.retired }, who)
    if (o.json) return out(json(summary))
    out(`retired ${plural(summary.retired, 'slot')} in windows 0..${to - 1}; run \`window-space gc ${dir} --delete\` to remove their artifacts`)
  } finally {
    c.close()
  }
}
