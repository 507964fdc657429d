/**
 * `window-space verify`: prints what the core's check found
 * (crates/window-space-core/src/ops/verify.rs) and exits 1 on a problem.
 * Read-only.
 *
 * @module
 */
import { verifyStateDir } from '../state-view'
import { json, printable, stateDirArg, type Opts } from './args'
import { out } from './output'
import { Progress } from './progress'

export function verifyCommand(dir: string, o: Opts): void {
  const progress = new Progress()
  let r
  try {
    r = verifyStateDir(stateDirArg(dir), { artifacts: Boolean(o.artifacts), onProgress: progress.tick })
  } finally {
    progress.end()
  }
  if (o.json) out(json(r))
  else {
    const opened = !r.problems.some((p) => p.kind === 'open-failed')
    const head = opened
      ? `verified ${printable(r.stateDir)}: ${r.counts.rows} rows, ${r.counts.filledSlots} Filled slots, ${r.counts.records} records${o.artifacts ? `, ${r.counts.artifacts} artifact files` : ''}`
      : `could not open ${printable(r.stateDir)} to verify it`
    printVerifyText(head, r)
  }
  if (!r.ok) process.exitCode = 1
}

/** What a check found, as text: its head line, what was checked, warnings, problems, the verdict. */
export function printVerifyText(
  head: string,
  r: { ok: boolean; checked: readonly string[]; warnings: readonly { message: string }[]; problems: readonly { kind: string; message: string }[] },
): void {
  const lines = [head]
  for (const ch of r.checked) lines.push(`  checked: ${ch}`)
  for (const w of r.warnings) lines.push(`warning: ${printable(w.message)}`)
  for (const p of r.problems) lines.push(`PROBLEM [${p.kind}] ${printable(p.message)}`)
  lines.push(r.ok ? 'OK: no problems found' : `${r.problems.length} problem${r.problems.length === 1 ? '' : 's'} found`)
  out(lines.join('\n'))
}
