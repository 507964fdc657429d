/**
 * `window-space gc`: prints what the core's garbage collection found and did
 * (crates/window-space-core/src/ops/gc.rs, which owns the rules and gc.log).
 *
 * @module
 */
import { adminOptions, bytes, duration, json, openDir, plural, printable, stateDirArg, type Opts } from './args'
import { planGarbage } from '../state-view'
import { out } from './output'
import { Progress } from './progress'

export function gcCommand(dir: string, o: Opts): void {
  const minAgeMs = duration(String(o.minAge ?? '1h'), '--min-age')
  const who = adminOptions(o) // refused before anything is opened or changed
  const progress = new Progress()
  let r
  if (!o.delete) {
    // The report alone reads through the read-only view: it changes nothing.
    try {
      r = planGarbage(stateDirArg(dir), { minAgeMs, onProgress: progress.tick })
    } finally {
      progress.end()
    }
  } else {
    const { controller: c } = openDir(dir, 'buffered', who.actor)
    try {
      r = c.collectGarbage({ delete: true, minAgeMs, actor: who.actor, reason: who.reason, onProgress: progress.tick })
    } finally {
      progress.end()
      c.close()
    }
  }
  if (o.json) return out(json(r))
  const lines: string[] = []
  if (r.finished.length) lines.push(`finished ${plural(r.finished.length, 'collection')} a previous gc left unfinished`)
  if (!o.delete && r.unfinishedBefore) lines.push(`${r.unfinishedBefore} collections a previous gc left unfinished: run with --delete to finish them`)
  lines.push(`unreferenced payload records: ${r.records.length}`)
  for (const x of r.records.slice(0, 20)) {
    lines.push(`  ${x.store}#${x.payloadId}  ${x.symbol ? printable(x.symbol) : `symbol #${x.symbolId}`} window ${x.windowIdx} ${x.slot} (slot ${x.slotStatus === 'Filled' ? 'Filled with another record' : `now ${x.slotStatus}`})  ${printable(x.uri)}`)
  }
  if (r.records.length > 20) lines.push(`  … and ${r.records.length - 20} more (--json lists all)`)
  lines.push(`unreferenced artifact files: ${r.files.length} (${bytes(r.reclaimableBytes)})`)
  for (const f of r.files.slice(0, 20)) lines.push(`  ${printable(f.uri)}  ${bytes(f.size)}  (${f.class === 'claim' ? 'its claim is over' : f.class === 'temp' ? 'a temp file whose writer is gone' : f.records.length ? 'untied' : 'untied, no record: an engine died before appending'})`)
  if (r.files.length > 20) lines.push(`  … and ${r.files.length - 20} more (--json lists all)`)
  if (r.keptFiles.length) {
    const why = [...new Set(r.keptFiles.map((k) => k.why.replace(/\d+/g, 'N')))].join('; ')
    lines.push(`kept ${plural(r.keptFiles.length, 'file')} no live record names: ${why}`)
  }
  for (const l of r.symlinks) lines.push(`ignored symbolic link ${printable(l)} (never followed)`)
  if (r.artifactsRefused) lines.push('artifacts is a symbolic link or not a directory: no artifact file was looked at')
  if (o.delete) {
    const kept = r.kept.length ? `, kept ${r.kept.length} (${[...new Set(r.kept.map((k) => k.result))].join('; ')})` : ''
    lines.push(`removed ${plural(r.removed.length, 'file')} (${bytes(r.removedBytes)})${kept}; marked ${plural(r.recordsMarked, 'record')} collected in gc.log`)
  } else if (r.files.length || r.records.length) {
    lines.push('run again with --delete to remove the files and record the collection in gc.log')
  }
  out(lines.join('\n'))
}
