/**
 * Owns the benchmark's parameters: workload sizes from the command line and
 * the environment, the default run (under 3 minutes on 2 cores), `--smoke`
 * (tiny sizes for CI) and `--huge` (adds 10^8 slots to the scaling table).
 *
 * Every size can be given as `--name=value` or as `WS_BENCH_NAME=value`
 * (upper case, dashes as underscores); the command line wins.
 */
const DEFAULTS = {
  samples: 200, // timed samples per task
  warmup: 30, // warm-up samples per task
  inner: 1000, // operations per sample for cheap operations (each ns/op is a sample's time / inner)
  innerFloor: 10000, // calls per sample of the native-call floor (tens of ns each)
  innerSlow: 200, // operations per sample for per-op transactions of the peers
  fsyncSamples: 15, // samples for the fsync-per-call tasks
  fsyncInner: 20, // operations per sample for the fsync-per-call tasks
  bootstrapSamples: 5, // timed bootstraps of the large directory
  largeSlots: 10_000_000, // slots of the large directory's trade ledger
  largeRecords: 1_000_000, // payload records of the large directory
  scaling: '1e5,1e6,1e7', // ledger sizes of the scaling table
  scalingOps: 200_000, // claim+fill cycles measured at each scaling size
  nufWindows: 1000, // nextUnfilledWindow: windows of the symbol
  nufFilled: 900, // nextUnfilledWindow: filled windows in front
  batch: 1000, // batch claim / batch fill size
  watchSamples: 200, // wake-ups timed for waitFor and for watch()
  watchIdleMs: 1000, // quiet period over which an idle waiter's CPU is measured
  watchCycles: 200_000, // claim+fill cycles with and without a sleeping waiter
  procCycles: 250_000, // processes section: claim+fill cycles per engine per round (disjoint), slots per round (racing)
  procRounds: 3, // processes section: rounds per configuration (the median round is reported)
  procCounts: '1,2,4', // processes section: engine counts
  procModes: 'disjoint,racing', // processes section: workloads (disjoint symbols, racing for the same slots)
  procThreads: 1, // processes section: 1 adds the worker-thread rows, 0 leaves them out
  out: 'benchmark/results/latest.json',
  cacheDir: '', // fixture cache (default: <os tmpdir>/window-space-bench)
  only: '', // comma-separated section names to run (floor,slots,append,reads,batch,large,watch,scaling,processes)
}

const SMOKE = {
  samples: 3,
  warmup: 1,
  inner: 50,
  innerFloor: 50,
  innerSlow: 10,
  fsyncSamples: 2,
  fsyncInner: 2,
  bootstrapSamples: 1,
  largeSlots: 20_000,
  largeRecords: 2_000,
  scaling: '1e3,1e4',
  scalingOps: 1_000,
  nufWindows: 100,
  nufFilled: 90,
  batch: 100,
  watchSamples: 5,
  watchIdleMs: 100,
  watchCycles: 500,
  procCycles: 2_000,
  procRounds: 1,
  out: 'benchmark/results/smoke.json',
}

const NUMERIC = new Set(Object.keys(DEFAULTS).filter((k) => typeof DEFAULTS[k] === 'number'))

function envName(key) {
  return 'WS_BENCH_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase()
}

function parseNumber(key, raw) {
  const v = Number(raw)
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`--${key} must be a non-negative number, got ${raw}`)
  return Math.round(v)
}

/** Parses argv and the environment into the options of one run. */
export function parseOptions(argv = process.argv.slice(2), env = process.env) {
  const flags = new Set()
  const given = {}
  for (const arg of argv) {
    const m = /^--([a-zA-Z-]+)(?:=(.*))?$/.exec(arg)
    if (!m) throw new RangeError(`unknown argument ${arg} (use --name=value)`)
    const key = m[1].replace(/-([a-z])/g, (_, c) => c.toUpperCase())
    if (m[2] === undefined) flags.add(key)
    else given[key] = m[2]
  }
  if (flags.has('help')) return { help: true }
  const smoke = flags.has('smoke') || env.WS_BENCH_SMOKE === '1'
  const huge = flags.has('huge') || env.WS_BENCH_HUGE === '1'
  const o = { ...DEFAULTS, ...(smoke ? SMOKE : {}) }
  for (const key of Object.keys(DEFAULTS)) {
    const raw = given[key] ?? env[envName(key)]
    if (raw === undefined) continue
    o[key] = NUMERIC.has(key) ? parseNumber(key, raw) : raw
    delete given[key]
  }
  const unknown = Object.keys(given)
  if (unknown.length) throw new RangeError(`unknown option(s): ${unknown.join(', ')}`)
  const scaling = String(o.scaling).split(',').filter(Boolean).map((s) => parseNumber('scaling', s))
  if (huge) scaling.push(1e8)
  const procCounts = String(o.procCounts).split(',').filter(Boolean).map((s) => parseNumber('procCounts', s))
  if (procCounts.some((n) => n < 1)) throw new RangeError(`--proc-counts must list engine counts of at least 1, got ${o.procCounts}`)
  const procModes = String(o.procModes).split(',').filter(Boolean)
  const badMode = procModes.find((m) => m !== 'disjoint' && m !== 'racing')
  if (badMode !== undefined) throw new RangeError(`--proc-modes takes disjoint and/or racing, got ${badMode}`)
  // A run of some sections is not the reference run: it goes beside it.
  if (o.only && o.out === DEFAULTS.out) o.out = 'benchmark/results/partial.json'
  return {
    ...o,
    smoke,
    huge,
    scaling,
    procCounts,
    procModes,
    only: o.only ? new Set(String(o.only).split(',')) : null,
  }
}

export const HELP = `npm run bench [-- options]     node benchmark/bench.mjs [options]

  --smoke            tiny sizes (CI); results go to benchmark/results/smoke.json
  --huge             add 10^8 slots to the scaling table (needs ~5 GB in the tmp dir and minutes)
  --only=a,b         run only these sections: floor, slots, append, reads, batch, large, watch, scaling, processes;
                     results go to benchmark/results/partial.json (latest.json keeps the whole run)
${Object.entries(DEFAULTS)
  .filter(([k]) => k !== 'only')
  .map(([k, v]) => `  --${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}=${v === '' ? '…' : v}`.padEnd(36) + `env ${envName(k)}`)
  .join('\n')}
`
