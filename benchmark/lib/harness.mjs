/**
 * Owns measurement: runs one task through tinybench (a warm-up, then a fixed
 * number of timed samples, each doing `ops` operations so that a sample is long
 * enough to time), and records ns/op (the median sample ÷ ops; the mean is
 * kept too) and ops/s in one list of results that the tables, the targets and
 * latest.json are built from.
 *
 * Preparation that must not be timed (fresh slots, claims a fill needs) runs
 * in tinybench's `beforeEach` hook, outside the timed function.
 */
import { Bench } from 'tinybench'

/** Every measured task of the run, in order. */
export const results = []

/**
 * Measures one task.
 * @param {object} t
 * @param {string} t.op - operation (row of the comparison)
 * @param {string} t.contender - who does it (window-space variant or peer)
 * @param {string} [t.mode] - durability / transaction mode of the contender
 * @param {number} t.ops - operations done by one call of `fn`
 * @param {() => unknown} t.fn - the timed work (sync or async)
 * @param {() => unknown} [t.before] - untimed preparation before each call
 * @param {boolean} [t.async] - `fn` returns a promise
 * @param {number} t.samples - timed calls
 * @param {number} t.warmup - warm-up calls
 * @param {string} [t.note] - a remark shown in the JSON
 */
export async function measure(t) {
  const bench = new Bench({ time: 0, iterations: t.samples, warmupTime: 0, warmupIterations: t.warmup, throws: true })
  // `async` is always given: otherwise tinybench calls `fn` once, unprepared, to find out.
  bench.add(`${t.op} / ${t.contender}`, t.fn, { async: t.async === true, ...(t.before ? { beforeEach: t.before } : {}) })
  await bench.run()
  const r = bench.tasks[0].result
  if (r.state !== 'completed') throw new Error(`${t.op} / ${t.contender}: ${r.state} ${r.error?.stack ?? ''}`)
  // The median sample: robust against samples slowed by other processes on a shared 2-core machine.
  const nsPerOp = (r.latency.p50 * 1e6) / t.ops
  const row = {
    op: t.op,
    contender: t.contender,
    mode: t.mode ?? '',
    nsPerOp,
    opsPerSec: 1e9 / nsPerOp,
    meanNsPerOp: (r.latency.mean * 1e6) / t.ops,
    rmePct: r.latency.rme,
    samples: r.latency.samplesCount,
    opsPerSample: t.ops,
    ...(t.note ? { note: t.note } : {}),
  }
  results.push(row)
  process.stderr.write(`  ${row.op.padEnd(28)} ${row.contender.padEnd(34)} ${fmtNs(row.nsPerOp).padStart(10)}/op\n`)
  return row
}

/** The result of `op` by `contender`, or undefined. */
export function find(op, contender) {
  return results.find((r) => r.op === op && r.contender === contender)
}

/** A duration in ns, in the unit that reads best. */
export function fmtNs(ns) {
  if (ns == null || !Number.isFinite(ns)) return '—'
  if (ns < 1e3) return `${ns.toFixed(ns < 100 ? 1 : 0)} ns`
  if (ns < 1e6) return `${(ns / 1e3).toFixed(ns < 1e4 ? 2 : 1)} µs`
  if (ns < 1e9) return `${(ns / 1e6).toFixed(ns < 1e7 ? 2 : 1)} ms`
  return `${(ns / 1e9).toFixed(2)} s`
}

/** An ops/s figure, short. */
export function fmtRate(perSec) {
  if (!Number.isFinite(perSec)) return '—'
  if (perSec >= 1e6) return `${(perSec / 1e6).toFixed(2)}M`
  if (perSec >= 1e3) return `${(perSec / 1e3).toFixed(1)}k`
  return perSec.toFixed(1)
}

/** A ratio, short. */
export function fmtRatio(x) {
  if (x == null || !Number.isFinite(x)) return ''
  return x >= 100 ? `${x.toFixed(0)}x` : x >= 10 ? `${x.toFixed(1)}x` : `${x.toFixed(2)}x`
}
