/**
 * `window-space migrate`: prints what the core's migration found and did
 * (crates/window-space-core/src/ops/migrate.rs owns every rule: what is
 * converted, the order of the steps, the backup, the audit line).
 *
 * @module
 */
import { migrateStateDir } from '../migrate'
import { adminOptions, json, plural, printable, stateDirArg, type Opts } from './args'
import { out } from './output'

export function migrateCommand(dir: string, o: Opts): void {
  const who = adminOptions(o) // refused before anything is opened or changed
  const r = migrateStateDir(stateDirArg(dir), { dryRun: Boolean(o.dryRun), ...who })
  if (o.json) return out(json(r))
  if (r.alreadyCurrent) return out(`nothing to migrate: ${printable(r.stateDir)} is of format version ${r.toVersion} already`)
  const lines = [
    r.startsOver
      ? `an earlier migration of ${printable(r.stateDir)} was killed after it had verified its files, but old files changed since (or were put back from the backup): a migration would start over, converting ${plural(r.files.length, 'file')}:`
      : r.finishesEarlierRun
      ? `an earlier migration of ${printable(r.stateDir)} was killed after it had verified the converted files; ${r.dryRun ? 'a migration would finish putting them in place' : 'finished putting them in place'}:`
      : `${r.dryRun ? 'a migration would convert' : 'migrated'} ${printable(r.stateDir)} from format version ${r.fromVersion} to ${r.toVersion}, ${plural(r.files.length, 'file')}:`,
  ]
  for (const f of r.files) lines.push(`  ${f.file}${f.from === f.file ? '' : ` from ${f.from}`} (${plural(f.bytes, 'byte')}): ${f.how}`)
  if (r.dryRun) lines.push('(dry run: nothing changed)')
  else lines.push(`the old files are kept in ${r.backupDir}/ inside the state directory: remove it once \`window-space verify\` passes`)
  out(lines.join('\n'))
}
