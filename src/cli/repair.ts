/**
 * `window-space repair`: prints what the core's repair found and did
 * (crates/window-space-core/src/ops/repair.rs, which owns every rule: what
 * counts as a loss, the order of the steps, the audit lines).
 *
 * @module
 */
import { repairStateDir, type RepairReport } from '../repair'
import { adminOptions, json, plural, printable, stateDirArg, type Opts } from './args'
import { out } from './output'

/** The lines that say what a repair found and what it does (or would do). */
function describe(r: RepairReport): string[] {
  const lines = [`found in ${printable(r.stateDir)}:`]
  if (r.symbols) {
    lines.push(`  symbols.log holds ${plural(r.symbols.symbols, 'symbol')}, but ${plural(r.symbols.chunks, 'ledger chunk')} belong to symbol ids up to ${r.symbols.highestSymbolId}`)
  }
  for (const s of r.stores) {
    lines.push(`  ${s.file} holds ${plural(s.records, 'record')}, but ${plural(s.danglingSlots, 'Filled slot')} refer to payload ids it does not hold (the highest id referred to is ${s.highestReferencedId})`)
  }
  lines.push(r.dryRun ? 'a repair would:' : 'repaired:')
  if (r.symbols) {
    const names = r.symbols.placeholders.map((p) => `${p.id} ${printable(p.name)}`).join(', ')
    lines.push(`  name the missing symbol ids with placeholder symbols: ${names}`)
  }
  for (const s of r.stores) {
    if (s.markLost) lines.push(`  mark payload ids ${s.markLost[0]}..${s.markLost[1]} of ${s.file} lost (never handed out again: the next append returns ${s.markLost[1] + 1})`)
  }
  if (r.slots.length) {
    const verb = r.dryRun ? 'force-clear' : `force-cleared ${r.cleared} of`
    lines.push(`  ${verb} ${plural(r.slots.length, 'Filled slot')} that refer to lost payload ids (engines redo them):`)
    for (const x of r.slots.slice(0, 20)) lines.push(`    ${printable(x.symbol)} window ${x.windowIdx} ${x.slot} (${x.store}#${x.payloadId})`)
    if (r.slots.length > 20) lines.push(`    … and ${r.slots.length - 20} more (--json lists all)`)
  }
  lines.push(r.dryRun ? '(dry run: nothing changed)' : 'the audit trail has the intent and the outcome (window-space audit)')
  return lines
}

export function repairCommand(dir: string, o: Opts): void {
  const who = adminOptions(o) // refused before anything is opened or changed
  const r = repairStateDir(stateDirArg(dir), { dryRun: Boolean(o.dryRun), ...who })
  if (o.json) return out(json(r))
  if (r.clean) {
    const lines = [`nothing to repair: every ledger chunk's symbol is in symbols.log and every Filled slot's payload id is a record of its mapping table (${printable(r.stateDir)})`]
    const e = r.finishesEarlierRun
    if (e) {
      const slots = typeof e.slots === 'number' ? plural(e.slots, 'slot') : plural(e.slots.length, 'slot')
      const what =
        e.notChanged.length === 0
          ? `it cleared ${e.cleared.length === 1 ? 'it' : `all ${e.cleared.length}`} (their payload ids are marked lost)`
          : e.cleared.length === 0
            ? 'it changed none of them: they refer to records again (restored since)'
            : `it cleared ${plural(e.cleared.length, 'slot')} (their payload ids are marked lost); ${plural(e.notChanged.length, 'slot')} refer to records again (restored since), so it did not change them`
      lines.push(
        `an earlier repair (${printable(e.actor)}, audit.log line ${e.intentLine}) was killed before its outcome line; its intent names ${slots} to clear: ${what}`,
        r.dryRun ? '(dry run: nothing written; a repair without --dry-run writes the outcome line that finishes it)' : 'this run wrote the outcome line that finishes it (window-space audit)',
      )
    }
    return out(lines.join('\n'))
  }
  out(describe(r).join('\n'))
}
