// The instruction-count gate: counts, under callgrind, the instructions each
// hot-path operation executes in a fixed workload, through the core API
// (crates/window-space-instructions) and through the addon's Node-API entry
// points (benchmark/instructions-workload.mjs), and compares them with the
// committed baseline, benchmark/instructions-baseline.json.
//
//   node benchmark/instructions.mjs            check against the baseline (npm run instructions)
//   node benchmark/instructions.mjs --update   rewrite the baseline (npm run instructions:update)
//   --no-build   measure what target/ holds (skip the release build)
//   --keep       keep the callgrind output files (the path is printed)
//
// It builds both programs with the release profile, as the published addon
// is built (no features), then runs them under valgrind at the same time.
// Check mode prints op, baseline, now and ratio for every operation and fails
// if any count is more than THRESHOLD above its baseline, or if an operation
// has no baseline. docs/performance.md ("The instruction-count gate") says
// what is measured, why the threshold is what it is, and when to update.
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, release, tmpdir, type } from 'node:os'
import { join } from 'node:path'

// A count may grow by 3 % before the gate fails. Run to run, the counts of
// one build do not move for the single transitions and move by up to 0.3 %
// for a batch claim and a bootstrap; code added elsewhere in the addon (the
// `bench` feature's two functions) moved them by 0.2 % at most. So 3 % is
// ten times the noise. It is still small enough to catch the smallest
// addition to the hot path that costs real time (one more allocation and
// free, hash lookup or formatted message: 50 instructions and up), which is
// 8 % or more of a core transition (about 600 instructions) and 3 % or more
// of the dearest transition through Node-API (a fill, about 1,700).
const THRESHOLD = 0.03

const root = new URL('..', import.meta.url).pathname
const baselinePath = join(root, 'benchmark/instructions-baseline.json')
const args = process.argv.slice(2)
const known = ['--update', '--no-build', '--keep']
const unknown = args.filter((a) => !known.includes(a))
if (unknown.length > 0) {
  console.error(`unknown option ${unknown.join(' ')}; options: ${known.join(' ')}`)
  process.exit(2)
}
const update = args.includes('--update')

const run = (cmd, argv) => execFileSync(cmd, argv, { cwd: root, encoding: 'utf8' }).trim()
const tryRun = (cmd, argv) => {
  try {
    return run(cmd, argv)
  } catch {
    return undefined
  }
}

const valgrindVersion = tryRun('valgrind', ['--version'])
if (!valgrindVersion) {
  console.error('valgrind is not installed (Debian: apt-get install valgrind); the gate counts instructions with its callgrind tool')
  process.exit(1)
}
const host = run('rustc', ['-vV'])
  .split('\n')
  .find((l) => l.startsWith('host: '))
  .slice('host: '.length)
const release_ = join(root, 'target', host, 'release')
const coreBin = join(release_, 'window-space-instructions')
const addon = join(release_, 'libwindow_space_node.so')

if (!args.includes('--no-build')) {
  // --target as napi build passes it, so this shares target/<host>/release with `npm run build`.
  console.log(`== building the core workload and the addon (release, target ${host})`)
  execFileSync('cargo', ['build', '--release', '--locked', '--target', host, '-p', 'window-space-node', '-p', 'window-space-instructions'], {
    cwd: root,
    stdio: 'inherit',
  })
}
for (const f of [coreBin, addon]) {
  if (!existsSync(f)) {
    console.error(`${f} is missing: build it (run without --no-build)`)
    process.exit(1)
  }
}

/** Demangled names of the functions defined in `file` (Rust's hash suffix removed by nm). */
const symbolsOf = (file) => new Set(run('nm', ['--defined-only', '--demangle', file]).split('\n').map((l) => l.split(' ').slice(2).join(' ')))

/**
 * The functions of one program that callgrind collects, and its marker.
 * Each is passed by its exact name: callgrind keeps one of several
 * --toggle-collect patterns that share a prefix up to a wildcard.
 */
function targets(file, measuredPattern, marker) {
  const names = symbolsOf(file)
  const measured = [...names].filter((n) => measuredPattern.test(n)).sort()
  if (!names.has(marker)) throw new Error(`${file} has no function ${marker}: the workload cannot mark its sections`)
  return { measured, marker }
}

const core = targets(coreBin, /^window_space_instructions::measured::\w+$/, 'window_space_instructions::section_end')
const napiFns = ['fast_claim', 'fast_renew', 'fast_fill', 'fast_clear', 'fast_read_slot', 'fast_next_unfilled', 'fast_claim_next_unfilled', 'fast_fill_batch']
const napiMethods = ['open']
const napi = targets(
  addon,
  new RegExp(`^window_space_node::(fast::(${napiFns.join('|')})|controller::__napi_impl_helper_NativeController_\\d+::(${napiMethods.join('|')})_c_callback)$`),
  'window_space_node::fast::fast_last_refusal',
)
for (const [what, t, want] of [
  ['core workload', core, 9],
  ['addon', napi, napiFns.length + napiMethods.length],
]) {
  if (t.measured.length !== want) {
    throw new Error(`the ${what} defines ${t.measured.length} of the ${want} measured functions (${t.measured.join(', ')}): one was renamed or inlined away`)
  }
}

const scratch = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'ws-instructions-'))

/** Runs `argv` under callgrind, collecting only inside `t.measured`, with a dump before each `t.marker`. */
function callgrind(name, t, argv) {
  const out = join(scratch, `${name}.callgrind`)
  const vg = [
    '-q',
    '--tool=callgrind',
    '--collect-atstart=no',
    ...t.measured.map((f) => `--toggle-collect=${f}`),
    `--dump-before=${t.marker}`,
    `--callgrind-out-file=${out}`,
    ...argv,
  ]
  return new Promise((resolve, reject) => {
    const child = spawn('valgrind', vg, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`${name} workload under valgrind exited with ${code}:\n${stderr}`))
        return
      }
      try {
        resolve(sections(name, out, JSON.parse(stdout), t))
      } catch (e) {
        reject(new Error(`${name} workload: ${e.message}\nits stderr:\n${stderr}`))
      }
    })
  })
}

/**
 * One callgrind dump: its part number, what triggered it, the instructions it
 * collected, and the calls into each function (from the call arcs: a
 * `cfn=` line naming the callee, then `calls=<count> ...`).
 */
function readDump(file) {
  const text = readFileSync(file, 'utf8')
  const names = new Map()
  const calls = new Map()
  let part
  let trigger = ''
  let total
  let callee
  for (const line of text.split('\n')) {
    const named = /^c?fn=\((\d+)\)(?: (.*))?$/.exec(line)
    if (named) {
      if (named[2] !== undefined) names.set(named[1], named[2])
      if (line.startsWith('cfn=')) callee = named[1]
      continue
    }
    if (line.startsWith('calls=') && callee !== undefined) {
      calls.set(callee, (calls.get(callee) ?? 0) + Number(line.slice(6).split(' ')[0]))
      callee = undefined
    } else if (line.startsWith('part: ')) part = Number(line.slice(6))
    else if (line.startsWith('desc: Trigger: ')) trigger = line.slice(15)
    else if (line.startsWith('summary: ')) total = Number(line.slice(9))
  }
  if (part === undefined || total === undefined) throw new Error(`${file} is not a callgrind dump`)
  const byName = new Map()
  for (const [id, count] of calls) {
    const name = names.get(id)
    if (name !== undefined) byName.set(name, (byName.get(name) ?? 0) + count)
  }
  return { part, trigger, total, calls: byName }
}

/**
 * The count per operation of each section the workload reported: dump 1 is
 * the set-up and warm-up, dump i + 1 is section i, and the last dump (at
 * exit) must be empty. Each section's calls into the measured functions must
 * be the ones the workload says it made.
 */
function sections(name, out, manifest, t) {
  const dir = join(out, '..')
  const base = out.split('/').pop()
  const dumps = readdirSync(dir)
    .filter((f) => f === base || f.startsWith(`${base}.`))
    .map((f) => readDump(join(dir, f)))
    .sort((a, b) => a.part - b.part)
  if (dumps.length !== manifest.length + 2) {
    throw new Error(`${dumps.length} callgrind dumps for ${manifest.length} sections: expected the warm-up, one per section and the exit`)
  }
  const last = dumps.at(-1)
  if (last.total !== 0) throw new Error(`${last.total} instructions were collected after the last section`)
  return manifest.map((s, i) => {
    const d = dumps[i + 1]
    for (const fn of t.measured) {
      const made = d.calls.get(fn) ?? 0
      const said = s.calls[fn.split('::').pop()] ?? 0
      if (made !== said) throw new Error(`section "${s.op}" made ${made} calls of ${fn}; the workload says ${said}`)
    }
    return { op: s.op, count: Math.round((d.total / s.ops) * 10) / 10 }
  })
}

const started = Date.now()
let results
try {
  const [c, n] = await Promise.all([
    callgrind('core', core, [coreBin, join(scratch, 'core-work')]),
    callgrind('napi', napi, [process.execPath, '--expose-gc', join(root, 'benchmark/instructions-workload.mjs'), addon, join(scratch, 'napi-work')]),
  ])
  results = [...c, ...n]
} finally {
  if (args.includes('--keep')) console.log(`callgrind output kept in ${scratch}`)
  else rmSync(scratch, { recursive: true, force: true })
}

const cpuModel = () => {
  try {
    return /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model
  } catch {
    return cpus()[0]?.model
  }
}
const environment = {
  machine: `${cpuModel()}, ${cpus().length} CPUs, ${type()} ${release()}`,
  rustc: run('rustc', ['--version']),
  node: process.version,
  valgrind: valgrindVersion,
}

const baseline = existsSync(baselinePath) ? JSON.parse(readFileSync(baselinePath, 'utf8')) : undefined
const fmt = (v) => (v === undefined ? '—' : v.toLocaleString('en-US', { maximumFractionDigits: 1 }))
const rows = results.map(({ op, count }) => {
  const was = baseline?.counts?.[op]
  const ratio = was === undefined ? undefined : count / was
  let verdict = ''
  if (ratio === undefined) verdict = 'NO BASELINE'
  else if (ratio > 1 + THRESHOLD) verdict = 'REGRESSED'
  else if (ratio < 1 - THRESHOLD) verdict = 'improved'
  return { op, was, count, ratio, verdict }
})
const gone = Object.keys(baseline?.counts ?? {}).filter((op) => !results.some((r) => r.op === op))

const table = [['op', 'baseline', 'now', 'ratio', ''], ...rows.map((r) => [r.op, fmt(r.was), fmt(r.count), r.ratio === undefined ? '—' : `${r.ratio.toFixed(3)}x`, r.verdict])]
const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)))
console.log(`\n== instructions per operation (callgrind, ${((Date.now() - started) / 1000).toFixed(0)} s)`)
for (const row of table) console.log(row.map((cell, i) => (i === 0 || i === 4 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ').trimEnd())
for (const op of gone) console.log(`${op}: in the baseline, not measured any more`)
if (baseline) {
  for (const [k, v] of Object.entries(environment)) {
    if (baseline[k] !== v) console.log(`note: the baseline was taken with ${k} ${baseline[k]}; now ${v}`)
  }
}

if (update) {
  const doc = {
    what: 'Instructions per operation of benchmark/instructions.mjs (callgrind Ir), the baseline its check compares with',
    taken: new Date().toISOString().slice(0, 10),
    ...environment,
    counts: Object.fromEntries(results.map((r) => [r.op, r.count])),
  }
  writeFileSync(baselinePath, `${JSON.stringify(doc, null, 2)}\n`)
  console.log(`\nwrote ${baselinePath.slice(root.length)}`)
  process.exit(0)
}

const regressed = rows.filter((r) => r.verdict === 'REGRESSED')
const missing = rows.filter((r) => r.verdict === 'NO BASELINE')
const improved = rows.filter((r) => r.verdict === 'improved')
if (improved.length > 0) {
  console.log(`\n${improved.length} operation(s) cost more than ${THRESHOLD * 100} % less than the baseline: update it (npm run instructions:update) so the gate holds the gain`)
}
if (regressed.length > 0 || missing.length > 0 || gone.length > 0) {
  console.log(
    `\ninstruction-count gate FAILED: ${regressed.length} operation(s) over the baseline by more than ${THRESHOLD * 100} %` +
      (missing.length + gone.length > 0 ? `, ${missing.length + gone.length} operation(s) not in both the baseline and this run` : '') +
      '. If the extra work is intended, update the baseline (npm run instructions:update) in the same change and say why.',
  )
  process.exit(1)
}
console.log(`\ninstruction-count gate passed: no operation over its baseline by more than ${THRESHOLD * 100} %`)
