// `npm test`: builds the addon and the facade, runs the Rust suites
// (cargo test) and the TypeScript suites (vitest), prints both summaries,
// and exits non-zero if either failed.
import { spawnSync } from 'node:child_process'

const root = new URL('..', import.meta.url).pathname
const run = (title, cmd, args) => {
  console.log(`\n=== ${title}: ${cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 1 << 28 })
  process.stdout.write(r.stdout)
  process.stderr.write(r.stderr)
  return { ok: r.status === 0, out: `${r.stdout}\n${r.stderr}` }
}

const build = run('build', 'npm', ['run', '--silent', 'build:debug'])
if (!build.ok) process.exit(1)
const types = run('type check (src and tests)', 'npx', ['tsc', '-p', 'tsconfig.json', '--noEmit'])
if (!types.ok) process.exit(1)
// With the core's failpoints compiled in, for the crash-point tests (tests/crash_points.rs).
const rust = run('Rust', 'cargo', ['test', '--workspace', '--locked', '--features', 'window-space-core/failpoints'])
const ts = run('TypeScript', 'npx', ['vitest', 'run'])

const rustLines = rust.out.split('\n').filter((l) => /^test result:/.test(l))
const totals = rustLines.reduce(
  (a, l) => {
    const m = /(\d+) passed; (\d+) failed; (\d+) ignored/.exec(l)
    return m ? [a[0] + +m[1], a[1] + +m[2], a[2] + +m[3]] : a
  },
  [0, 0, 0],
)
const tsLine = ts.out.split('\n').map((l) => l.replace(/\x1b\[[0-9;]*m/g, '')).find((l) => /^\s*Tests\s/.test(l))
console.log('\n=== Summary')
console.log(`Rust (cargo test): ${totals[0]} passed, ${totals[1]} failed, ${totals[2]} ignored in ${rustLines.length} test binaries${rust.ok ? '' : ' — FAILED'}`)
console.log(`TypeScript (vitest): ${tsLine ? tsLine.trim() : 'no summary line'}${ts.ok ? '' : ' — FAILED'}`)
const tsCounts = /(\d+) passed/.exec(tsLine ?? '')
const tsFailed = /(\d+) failed/.exec(tsLine ?? '')
const passed = totals[0] + (tsCounts ? +tsCounts[1] : 0)
const failed = totals[1] + (tsFailed ? +tsFailed[1] : 0) + (rust.ok ? 0 : totals[1] === 0 ? 1 : 0) + (ts.ok ? 0 : tsFailed ? 0 : 1)
console.log(`Total: ${passed} passed, ${failed} failed`)
process.exit(rust.ok && ts.ok ? 0 : 1)
