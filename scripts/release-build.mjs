// `npm run release:build`: the build that is published. Compiles the native
// addon in release mode with symbols and debug info stripped and without the test-only
// features (`bench`, `failpoints`), generates `binding.js`/`binding.d.ts` from
// it, compiles the TypeScript facade to `dist/`, copies the addon into its
// platform package under `npm/` (`napi artifacts`), and prints each binary's
// size with the toolchain that built it.
//
//   node scripts/release-build.mjs              # in the repository: root + npm/
//   node scripts/release-build.mjs --out DIR    # into DIR, a copy of the package root
//
// With `--out`, DIR receives what `npm pack` reads (package.json, README.md,
// LICENSE, index.d.ts, the pack-time scripts and npm/), and nothing at the
// repository root changes, so a debug addon built for the tests stays in place.
// DIR's package.json then gets the platform packages as optionalDependencies,
// at the package's version, as `napi pre-publish` writes them before a publish
// (here with --skip-optional-publish: nothing is published). Cargo's target
// folder is the repository's either way, so a second run reuses the build.
import { execFileSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

const root = resolve(new URL('..', import.meta.url).pathname)
const outArg = process.argv.indexOf('--out')
const out = outArg === -1 ? root : resolve(process.argv[outArg + 1] ?? '')
if (outArg !== -1 && !process.argv[outArg + 1]) {
  console.error('release-build: --out needs a folder')
  process.exit(2)
}
const staged = out !== root
const napi = join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
const run = (cmd, args, cwd = root) => execFileSync(cmd, args, { cwd, stdio: 'inherit' })

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))

if (staged) {
  mkdirSync(out, { recursive: true })
  for (const f of ['package.json', 'README.md', 'LICENSE', 'index.d.ts']) copyFileSync(join(root, f), join(out, f))
  mkdirSync(join(out, 'scripts'), { recursive: true })
  for (const f of ['prepack.mjs', 'prepare.mjs', 'check-publish.mjs']) copyFileSync(join(root, 'scripts', f), join(out, 'scripts', f))
  rmSync(join(out, 'npm'), { recursive: true, force: true })
  cpSync(join(root, 'npm'), join(out, 'npm'), { recursive: true, filter: (src) => !src.endsWith('.node') })
  rmSync(join(out, 'dist'), { recursive: true, force: true })
}

// The addon, with Cargo.toml's `dist` profile: release code, stripped.
run(process.execPath, [
  napi,
  'build',
  '--platform',
  '--profile',
  'dist',
  '--manifest-path',
  'crates/window-space-node/Cargo.toml',
  '--package',
  'window-space-node',
  '--output-dir',
  out,
  '--js',
  'binding.js',
  '--dts',
  'binding.d.ts',
])
writeFileSync(join(out, '.addon-profile'), 'release')

// The facade.
run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json', '--outDir', join(out, 'dist')])
run(process.execPath, [join(root, 'scripts', 'write-esm-entry.mjs'), join(out, 'dist')])

// Each built addon into its platform package.
run(process.execPath, [napi, 'artifacts', '--cwd', out, '--output-dir', '.', '--npm-dir', 'npm'])
if (staged) run(process.execPath, [napi, 'pre-publish', '--cwd', out, '-t', 'npm', '--skip-optional-publish'])

const rustc = execFileSync('rustc', ['--version'], { encoding: 'utf8' }).trim()
const napiVersion = JSON.parse(readFileSync(join(root, 'node_modules', '@napi-rs', 'cli', 'package.json'), 'utf8')).version
console.log(`\nrelease build of ${pkg.name}@${pkg.version} (${rustc}, @napi-rs/cli ${napiVersion}) in ${out}`)
for (const dir of readdirSync(join(out, 'npm'))) {
  const node = readdirSync(join(out, 'npm', dir)).find((f) => f.endsWith('.node'))
  const size = node ? `${(statSync(join(out, 'npm', dir, node)).size / 1024).toFixed(0)} KiB` : 'MISSING'
  console.log(`  npm/${dir}/${node ?? ''}: ${size}`)
  if (!node) process.exitCode = 1
}
if (!existsSync(join(out, 'dist', 'index.mjs'))) process.exitCode = 1
