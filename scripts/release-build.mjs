// `npm run release:build`: the build that is published. Compiles the native
// addon for each target in package.json's napi list, in release mode with
// symbols and debug info stripped and without the test-only features (`bench`,
// `failpoints`), generates `binding.js`/`binding.d.ts`, compiles the
// TypeScript facade to `dist/`, copies each addon into its platform package
// under `npm/` (`napi artifacts`), and prints each binary's size with the
// toolchain that built it.
//
//   node scripts/release-build.mjs                          # in the repository: root + npm/
//   node scripts/release-build.mjs --out DIR                # into DIR, a copy of the package root
//   node scripts/release-build.mjs --out DIR --host-only    # the same, for the host's platform alone
//
// With `--out`, DIR receives what `npm pack` reads (package.json, README.md,
// LICENSE, index.d.ts, the pack-time scripts and npm/), and nothing at the
// repository root changes, so a debug addon built for the tests stays in place.
// DIR's package.json then gets the platform packages as optionalDependencies,
// at the package's version, as `napi pre-publish` writes them before a publish
// (here with --skip-optional-publish: nothing is published). Cargo's target
// folder is the repository's either way, so a second run reuses the build.
import { execFileSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const root = resolve(new URL('..', import.meta.url).pathname)
const outArg = process.argv.indexOf('--out')
const out = outArg === -1 ? root : resolve(process.argv[outArg + 1] ?? '')
if (outArg !== -1 && !process.argv[outArg + 1]) {
  console.error('release-build: --out needs a folder')
  process.exit(2)
}
const staged = out !== root
const hostOnly = process.argv.includes('--host-only')
if (hostOnly && !staged) {
  console.error('release-build: --host-only needs --out (the repository keeps every platform package)')
  process.exit(2)
}
// Folder under npm/ of each target this script builds.
const abiDirs = { 'x86_64-unknown-linux-gnu': 'linux-x64-gnu', 'aarch64-unknown-linux-gnu': 'linux-arm64-gnu' }
const napi = join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
const run = (cmd, args, cwd = root) => execFileSync(cmd, args, { cwd, stdio: 'inherit' })

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const host = /^host: (\S+)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))?.[1]
const targets = hostOnly ? pkg.napi.targets.filter((t) => t === host) : pkg.napi.targets

if (staged) {
  mkdirSync(out, { recursive: true })
  for (const f of ['package.json', 'README.md', 'LICENSE', 'index.d.ts']) copyFileSync(join(root, f), join(out, f))
  mkdirSync(join(out, 'scripts'), { recursive: true })
  for (const f of ['prepack.mjs', 'prepare.mjs', 'check-publish.mjs']) copyFileSync(join(root, 'scripts', f), join(out, 'scripts', f))
  rmSync(join(out, 'npm'), { recursive: true, force: true })
  cpSync(join(root, 'npm'), join(out, 'npm'), { recursive: true, filter: (src) => !src.endsWith('.node') })
  rmSync(join(out, 'dist'), { recursive: true, force: true })
  if (hostOnly) {
    // The staged package lists the host's platform package alone.
    const staged = JSON.parse(readFileSync(join(out, 'package.json'), 'utf8'))
    staged.napi.targets = targets
    writeFileSync(join(out, 'package.json'), `${JSON.stringify(staged, null, 2)}\n`)
    for (const t of pkg.napi.targets) if (!targets.includes(t)) rmSync(join(out, 'npm', abiDirs[t]), { recursive: true, force: true })
  }
}

// The addons, one per napi target, with Cargo.toml's `dist` profile (release
// code, stripped). Other targets than the host's are cross-compiled with
// Debian's cross gcc as the linker (`gcc-aarch64-linux-gnu`, with
// `rustup target add aarch64-unknown-linux-gnu`).
const crossLinkers = { 'aarch64-unknown-linux-gnu': 'aarch64-linux-gnu-gcc' }
for (const target of [...targets].sort((a, b) => (a === host ? 1 : 0) - (b === host ? 1 : 0))) {
  const env = { ...process.env }
  if (target !== host) {
    const linker = crossLinkers[target]
    const variable = `CARGO_TARGET_${target.toUpperCase().replace(/-/g, '_')}_LINKER`
    if (!linker) throw new Error(`release-build: no cross linker known for ${target}`)
    env[variable] ??= linker
    try {
      execFileSync(env[variable], ['--version'], { stdio: 'ignore' })
    } catch {
      console.error(`release-build: ${target} needs the linker ${env[variable]} (Debian: apt-get install gcc-aarch64-linux-gnu) and \`rustup target add ${target}\`; --host-only builds the host's package alone`)
      process.exit(1)
    }
  }
  // The host's build goes last: its binding.js and binding.d.ts are the ones kept.
  execFileSync(
    process.execPath,
    [napi, 'build', '--platform', '--target', target, '--profile', 'dist', '--manifest-path', 'crates/window-space-node/Cargo.toml', '--package', 'window-space-node', '--output-dir', out, '--js', 'binding.js', '--dts', 'binding.d.ts'],
    { cwd: root, stdio: 'inherit', env },
  )
}
writeFileSync(join(out, '.addon-profile'), 'release')

// The facade.
run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json', '--outDir', join(out, 'dist')])
run(process.execPath, [join(root, 'scripts', 'write-esm-entry.mjs'), join(out, 'dist')])

// Each built addon into its platform package.
// `napi artifacts` takes every matching .node under the folder it is given, so
// it is given a folder holding this build's addons alone.
const artifacts = mkdtempSync(join(tmpdir(), 'ws-artifacts-'))
for (const t of targets) copyFileSync(join(out, `${pkg.napi.binaryName}.${abiDirs[t]}.node`), join(artifacts, `${pkg.napi.binaryName}.${abiDirs[t]}.node`))
run(process.execPath, [napi, 'artifacts', '--cwd', out, '--output-dir', artifacts, '--npm-dir', 'npm'])
rmSync(artifacts, { recursive: true, force: true })
// Another platform's addon lives in its package alone; the host's stays beside binding.js.
for (const t of targets) if (t !== host) rmSync(join(out, `${pkg.napi.binaryName}.${abiDirs[t]}.node`), { force: true })
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
