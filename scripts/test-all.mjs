// `npm test`: builds the addon and the facade, runs the Rust suites
// (cargo test) and the TypeScript suites (vitest), prints both summaries,
// and exits non-zero if either failed. With --build-only it stops after the
// build (.ci/run builds first, for its type-aware lint and type check gates).
//
// Every step's output is shown as it comes (and kept, for the summary at the
// end), so a slow step is visibly working rather than silent.
//
// The core is compiled once for both the addon and cargo test: `napi build`
// always passes `--target <host triple>` (output in target/<triple>/debug), so
// cargo test gets the same `--target` and the same features, and reuses the
// dependencies and the core library it built; only the test harnesses are new.
import { spawn, spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { stripVTControlCharacters } from 'node:util'

// Cargo features of the debug addon and of cargo test: one list, so that both
// builds compile the core the same way (package.json's `build:debug` uses the
// same list; `bench` adds the benchmark's floor functions to the addon). Write them as `package/feature`
// (e.g. 'window-space-core/failpoints'), which means the same thing to
// `napi build --package window-space-node` and to `cargo test --workspace`.
const FEATURES = ['window-space-node/bench', 'window-space-node/failpoints']
const featureArgs = FEATURES.length ? ['--features', FEATURES.join(',')] : []

const root = new URL('..', import.meta.url).pathname

// Piped output is not a terminal, so the tools would drop their colours;
// keep them when our own output is a terminal (the summary strips them).
const colorEnv = process.stdout.isTTY ? { CARGO_TERM_COLOR: 'always', FORCE_COLOR: '1' } : {}

// Runs one step with its output streamed live and also captured.
const run = (title, cmd, args) =>
  new Promise((resolve) => {
    console.log(`\n=== ${title}: ${cmd} ${args.join(' ')}`)
    const started = Date.now()
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...colorEnv } })
    const chunks = []
    child.stdout.on('data', (d) => {
      process.stdout.write(d)
      chunks.push(d)
    })
    child.stderr.on('data', (d) => {
      process.stderr.write(d)
      chunks.push(d)
    })
    const done = (ok, extra = '') => {
      const secs = ((Date.now() - started) / 1000).toFixed(0)
      console.log(`=== ${title}: ${ok ? 'ok' : 'FAILED'} in ${secs} s${extra}`)
      resolve({ ok, out: stripVTControlCharacters(Buffer.concat(chunks).toString('utf8')) })
    }
    child.on('error', (e) => done(false, ` (${e.message})`))
    child.on('close', (code, signal) => done(code === 0, signal ? ` (killed by ${signal})` : ''))
  })

const rustcInfo = spawnSync('rustc', ['-vV'], { encoding: 'utf8' })
const host = /^host: (\S+)$/m.exec(rustcInfo.stdout ?? '')?.[1]
if (!host) {
  console.error(`cannot read the host triple from \`rustc -vV\`: ${rustcInfo.error?.message ?? rustcInfo.stderr}`)
  process.exit(1)
}

// The addon: the arguments of package.json's `build:debug`, plus FEATURES.
const napi = await run('build (debug addon)', 'npx', [
  'napi',
  'build',
  '--platform',
  '--manifest-path',
  'crates/window-space-node/Cargo.toml',
  '--package',
  'window-space-node',
  '--output-dir',
  '.',
  '--js',
  'binding.js',
  '--dts',
  'binding.d.ts',
  ...featureArgs,
])
if (!napi.ok) process.exit(1)
writeFileSync(join(root, '.addon-profile'), 'debug')
// src/vocabulary.ts must be what the core's vocabulary generates.
const vocabulary = await run('vocabulary', 'node', ['scripts/gen-vocabulary.mjs', '--check'])
if (!vocabulary.ok) process.exit(1)
const facade = await run('build (facade)', 'npm', ['run', '--silent', 'build:ts'])
if (!facade.ok) process.exit(1)
if (process.argv.includes('--build-only')) process.exit(0)
const types = await run('type check (src and tests)', 'npx', ['tsc', '-p', 'tsconfig.json', '--noEmit'])
if (!types.ok) process.exit(1)
// --no-fail-fast: a failing test binary does not hide the results of the ones after it.
const rust = await run('Rust', 'cargo', ['test', '--workspace', '--locked', '--no-fail-fast', '--target', host, ...featureArgs])
const ts = await run('TypeScript', 'npx', ['vitest', 'run'])

const rustLines = rust.out.split('\n').filter((l) => /^test result:/.test(l))
const totals = rustLines.reduce(
  (a, l) => {
    const m = /(\d+) passed; (\d+) failed; (\d+) ignored/.exec(l)
    return m ? [a[0] + +m[1], a[1] + +m[2], a[2] + +m[3]] : a
  },
  [0, 0, 0],
)
const tsLine = ts.out.split('\n').find((l) => /^\s*Tests\s/.test(l))
console.log('\n=== Summary')
console.log(`Rust (cargo test): ${totals[0]} passed, ${totals[1]} failed, ${totals[2]} ignored in ${rustLines.length} test binaries${rust.ok ? '' : ' — FAILED'}`)
console.log(`TypeScript (vitest): ${tsLine ? tsLine.trim() : 'no summary line'}${ts.ok ? '' : ' — FAILED'}`)
const tsCounts = /(\d+) passed/.exec(tsLine ?? '')
const tsFailed = /(\d+) failed/.exec(tsLine ?? '')
const passed = totals[0] + (tsCounts ? +tsCounts[1] : 0)
const failed = totals[1] + (tsFailed ? +tsFailed[1] : 0) + (rust.ok ? 0 : totals[1] === 0 ? 1 : 0) + (ts.ok ? 0 : tsFailed ? 0 : 1)
console.log(`Total: ${passed} passed, ${failed} failed`)
process.exit(rust.ok && ts.ok ? 0 : 1)
