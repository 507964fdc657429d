/**
 * Owns the PostgreSQL backend's throughput targets (docs/postgres.md,
 * "Throughput") and their evaluation from the rows of a benchmark/pg.mjs
 * run: window-space claim+fill pairs per second in each mode, WAL bytes per
 * pair and the share of fills that were HOT updates. Each target is MET, or
 * MISSED with its gap; one whose row is absent is "not measured", never met.
 */

export const WINDOW_SPACE = 'window-space'

/** pairs/s required of window-space, by mode and synchronous_commit. */
export const RATE_TARGETS = [
  { mode: 'unbatched', sync: 'off', min: 8_000 },
  { mode: 'batched', sync: 'off', min: 25_000 },
  { mode: 'unbatched', sync: 'on', min: 2_500 },
  { mode: 'batched', sync: 'on', min: 18_000 },
]
export const MAX_WAL_BYTES_PER_PAIR = 500
export const MIN_HOT_FILLS_PCT = 95

const int = (v) => Math.round(v).toLocaleString('en')

/** The window-space row of one mode, or undefined. */
export function wsRow(rows, mode, sync) {
  return rows.find((r) => r.contender === WINDOW_SPACE && r.mode === mode && r.synchronous_commit === sync)
}

/**
 * One entry per target: `{ target, required, measured, result }` (the
 * pairs/s targets also name their `mode` and `sync`), where result is
 * `MET`, `MISSED (gap)` or `NOT MEASURED`.
 */
export function evaluatePgTargets(rows) {
  const out = []
  for (const t of RATE_TARGETS) {
    const r = wsRow(rows, t.mode, t.sync)
    const target = `pairs/s, ${t.mode}, synchronous_commit ${t.sync}`
    const required = `≥ ${int(t.min)}`
    if (!r) {
      out.push({ target, mode: t.mode, sync: t.sync, required, measured: 'not measured', result: 'NOT MEASURED' })
      continue
    }
    const v = r.perSec
    out.push({ target, mode: t.mode, sync: t.sync, required, measured: int(v), result: v >= t.min ? 'MET' : `MISSED (${int(t.min - v)} pairs/s short, ${((100 * v) / t.min).toFixed(0)} % of target)` })
  }
  const present = RATE_TARGETS.map((t) => wsRow(rows, t.mode, t.sync)).filter(Boolean)
  const each = (field, fmt) => present.map((r) => `${r.mode}/${r.synchronous_commit} ${fmt(r[field])}`).join('; ')

  const wal = present.filter((r) => r.walBytesPerUnit != null)
  if (!wal.length) out.push({ target: 'WAL bytes per pair (worst mode)', required: `≤ ${MAX_WAL_BYTES_PER_PAIR}`, measured: 'not measured', result: 'NOT MEASURED' })
  else {
    const worst = Math.max(...wal.map((r) => r.walBytesPerUnit))
    out.push({
      target: 'WAL bytes per pair (worst mode)',
      required: `≤ ${MAX_WAL_BYTES_PER_PAIR}`,
      measured: `${int(worst)} (${each('walBytesPerUnit', int)})`,
      result: worst <= MAX_WAL_BYTES_PER_PAIR ? 'MET' : `MISSED (${int(worst - MAX_WAL_BYTES_PER_PAIR)} bytes/pair over)`,
    })
  }

  const hot = present.filter((r) => r.hotPct != null)
  if (!hot.length) out.push({ target: 'HOT fills % (worst mode)', required: `≥ ${MIN_HOT_FILLS_PCT} %`, measured: 'not measured', result: 'NOT MEASURED' })
  else {
    const worst = Math.min(...hot.map((r) => r.hotPct))
    out.push({
      target: 'HOT fills % (worst mode)',
      required: `≥ ${MIN_HOT_FILLS_PCT} %`,
      measured: `${worst.toFixed(0)} % (${each('hotPct', (v) => `${v.toFixed(0)} %`)})`,
      result: worst >= MIN_HOT_FILLS_PCT ? 'MET' : `MISSED (${(MIN_HOT_FILLS_PCT - worst).toFixed(0)} points short)`,
    })
  }
  return out
}
