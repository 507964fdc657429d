// `npm run release:build`: the build that is published. Compiles the native
// addon for each target in package.json's napi list, in release mode with
// symbols and debug info stripped and without the test-only features (`bench`,
// `failpoints`), generates `binding.js`/`binding.d.ts`, compiles the
// TypeScript facade to `dist/`, copies each addon into its platform package
// under `npm/` (`napi artifacts`), and writes beside each addon its build
// manifest (size, SHA-256 and the toolchain that built it; described below),
// which it also prints.
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
import { createHash } from 'node:crypto'
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { newestGlibc, targets as known } from './targets.mjs'
import { zigEnv } from './zig-tools.mjs'

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
const napi = join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
const run = (cmd, args, cwd = root) => execFileSync(cmd, args, { cwd, stdio: 'inherit' })

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const host = /^host: (\S+)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))?.[1]
const targets = hostOnly ? pkg.napi.targets.filter((t) => t === host) : pkg.napi.targets
for (const t of targets) {
  if (!known[t]) {
    console.error(`release-build: ${t} is not in scripts/targets.mjs`)
    process.exit(2)
  }
}
const abiDirs = Object.fromEntries(Object.entries(known).map(([t, k]) => [t, k.abi]))

if (staged) {
  mkdirSync(out, { recursive: true })
  for (const f of ['package.json', 'README.md', 'LICENSE', 'index.d.ts']) copyFileSync(join(root, f), join(out, f))
  mkdirSync(join(out, 'scripts'), { recursive: true })
  for (const f of ['prepack.mjs', 'prepare.mjs', 'check-publish.mjs', 'targets.mjs']) copyFileSync(join(root, 'scripts', f), join(out, 'scripts', f))
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
// code, stripped), each through zig for its `zigTarget` (scripts/targets.mjs).
// Every tool is checked before anything is built, and the addons and
// manifests of the targets being built are removed first: a build that stops
// part way leaves no earlier addon to be taken for this one.
const version = (cmd, args) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n')[0]
  } catch {
    return undefined
  }
}
try {
  const installed = execFileSync('rustup', ['target', 'list', '--installed'], { encoding: 'utf8' }).split('\n')
  const absent = targets.filter((t) => !installed.includes(t))
  if (absent.length) {
    console.error(`release-build: rustup has no standard library for ${absent.join(', ')}: rustup target add ${absent.join(' ')}${staged ? '' : ' (or build the host\'s package alone: --out DIR --host-only)'}`)
    process.exit(1)
  }
} catch {
  // No rustup: cargo says what is missing.
}
const zig = zigEnv(root)
for (const t of targets) {
  rmSync(join(out, 'npm', abiDirs[t], `${pkg.napi.binaryName}.${abiDirs[t]}.node`), { force: true })
  rmSync(join(out, 'npm', abiDirs[t], 'build-manifest.json'), { force: true })
  rmSync(join(out, `${pkg.napi.binaryName}.${abiDirs[t]}.node`), { force: true })
}
for (const target of [...targets].sort((a, b) => (a === host ? 1 : 0) - (b === host ? 1 : 0))) {
  // The host's build goes last: its binding.js and binding.d.ts are the ones kept.
  execFileSync(
    process.execPath,
    [napi, 'build', '--platform', '--target', known[target].zigTarget, '--cross-compile', '--profile', 'dist', '--manifest-path', 'crates/window-space-node/Cargo.toml', '--package', 'window-space-node', '--output-dir', out, '--js', 'binding.js', '--dts', 'binding.d.ts'],
    { cwd: root, stdio: 'inherit', env: zig.env },
  )
}
writeFileSync(join(out, '.addon-profile'), 'release')

// The facade.
// Compiled from a copy of src/ beside the binding.d.ts this build generated
// (src/native.ts imports '../binding'), so the facade is checked against its
// own addon's types, in a clone that never built the repository's. The copy
// is under target/, where TypeScript finds the repository's node_modules.
const facade = join(root, 'target', 'facade-build')
rmSync(facade, { recursive: true, force: true })
mkdirSync(facade, { recursive: true })
cpSync(join(root, 'src'), join(facade, 'src'), { recursive: true })
for (const f of ['tsconfig.json', 'tsconfig.build.json', 'package.json']) copyFileSync(join(root, f), join(facade, f))
copyFileSync(join(out, 'binding.d.ts'), join(facade, 'binding.d.ts'))
run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(facade, 'tsconfig.build.json')])
rmSync(join(out, 'dist'), { recursive: true, force: true })
cpSync(join(facade, 'dist'), join(out, 'dist'), { recursive: true })
rmSync(facade, { recursive: true, force: true })
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

// The build manifest, `npm/<platform>/build-manifest.json`, shipped in each
// platform package: what the addon is and what made it.
//   package, version     the platform package it belongs to
//   target               the Rust target triple
//   file, bytes, sha256  the addon's name, size and SHA-256 (hex)
//   profile              Cargo profile (`dist`: release code, symbols and debug info stripped)
//   rustc                `rustc -vV`'s release, commit hash and LLVM version
//   linker               zig's and cargo-zigbuild's versions
//   zigTarget            the target zig linked for (`.2.17`: against glibc 2.17's symbol versions)
//   glibc                the highest glibc symbol version the addon needs (null for musl)
//   napiCli, napiCrate   versions of @napi-rs/cli and of the napi crate (Cargo.lock)
//   node                 the Node that ran the build
//   source               the git commit built, with `-dirty` if the tree had changes, or null outside git
// scripts/check-publish.mjs refuses a package whose manifest does not match its addon.
const rustcInfo = execFileSync('rustc', ['-vV'], { encoding: 'utf8' })
const field = (name) => new RegExp(`^${name}: (.*)$`, 'm').exec(rustcInfo)?.[1]
const napiVersion = JSON.parse(readFileSync(join(root, 'node_modules', '@napi-rs', 'cli', 'package.json'), 'utf8')).version
const napiCrate = /\[\[package\]\]\nname = "napi"\nversion = "([^"]+)"/.exec(readFileSync(join(root, 'Cargo.lock'), 'utf8'))?.[1] ?? null
const commit = version('git', ['-C', root, 'rev-parse', 'HEAD'])
const dirty = commit !== undefined && execFileSync('git', ['-C', root, 'status', '--porcelain'], { encoding: 'utf8' }).trim() !== ''
console.log(`\nrelease build of ${pkg.name}@${pkg.version} in ${out}`)
for (const t of targets) {
  const dir = join(out, 'npm', abiDirs[t])
  const file = `${pkg.napi.binaryName}.${abiDirs[t]}.node`
  if (!existsSync(join(dir, file))) {
    console.log(`  npm/${abiDirs[t]}/${file}: MISSING`)
    process.exitCode = 1
    continue
  }
  const addon = readFileSync(join(dir, file))
  const manifest = {
    package: `${pkg.napi.packageName}-${abiDirs[t]}`,
    version: pkg.version,
    target: t,
    file,
    bytes: addon.length,
    sha256: createHash('sha256').update(addon).digest('hex'),
    profile: 'dist',
    rustc: `${field('release')} (${field('commit-hash')?.slice(0, 9)}, LLVM ${field('LLVM version')})`,
    linker: `zig ${zig.zig} (${zig.zigbuild})`,
    zigTarget: known[t].zigTarget,
    glibc: newestGlibc(addon),
    napiCli: napiVersion,
    napiCrate,
    node: process.version,
    source: commit === undefined ? null : `${commit}${dirty ? '-dirty' : ''}`,
  }
  writeFileSync(join(dir, 'build-manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`)
  console.log(`  npm/${abiDirs[t]}/${file}: ${(addon.length / 1024).toFixed(0)} KiB, sha256 ${manifest.sha256.slice(0, 16)}…, rustc ${manifest.rustc}, ${manifest.linker}${manifest.glibc ? `, needs glibc ${manifest.glibc}` : ''}`)
}
console.log(`  @napi-rs/cli ${napiVersion}, napi crate ${napiCrate}, ${process.version}, source ${commit === undefined ? 'not a git checkout' : `${commit.slice(0, 12)}${dirty ? '-dirty' : ''}`}`)
// With the manifests in place (napi pre-publish checks every file a platform
// package lists), the staged package gets its optionalDependencies.
if (staged) run(process.execPath, [napi, 'pre-publish', '--cwd', out, '-t', 'npm', '--skip-optional-publish', '--no-gh-release'])
if (!existsSync(join(out, 'dist', 'index.mjs'))) process.exitCode = 1
