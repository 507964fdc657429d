// Installs the package as a user gets it from npm: the release build for this
// machine (scripts/release-build.mjs --host-only, staged under
// target/pack-stage so the debug addon the other tests load stays in place;
// `npm run test:platforms` runs every listed platform) is packed with `npm
// pack` as two tarballs, the main package and the linux-x64-gnu platform
// package, and both
// are installed into empty ES-module, CommonJS and strict TypeScript
// (`nodenext` and `bundler` resolution) projects, with no Rust toolchain on
// PATH. Each project runs the README's engine example; the installed
// `window-space` command then inspects and verifies what it did. The
// ES-module project also runs the portable API slice (__test__/platform/,
// plain `node --test` over the installed package). A main package installed
// without its platform package must fail to load with a one-line message
// naming the platform.
//
// The first run compiles the release addon (Cargo profile `dist`: about three
// minutes on two shared cores); later runs reuse cargo's build.
import { execFile, execFileSync, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, delimiter, join } from 'node:path'
import { promisify } from 'node:util'
import * as ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const root = join(__dirname, '..')
const stage = join(root, 'target', 'pack-stage')
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version
const readme = readFileSync(join(root, 'README.md'), 'utf8')
const example = /## An engine[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1] ?? ''
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')

// PATH without the folders that hold cargo or rustc, and a folder of its own
// with this node and npm first (in case they share a folder with a rustc):
// nothing below can build the addon.
const tools = mkdtempSync(join(tmpdir(), 'ws-tools-'))
symlinkSync(process.execPath, join(tools, 'node'))
const npmCli = (process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'npm')).find((f) => existsSync(f))
if (npmCli) symlinkSync(realpathSync(npmCli), join(tools, 'npm'))
// Without NAPI_RS_* variables either: the generated loader would take an
// addon path from them instead of the installed package.
const noRust = {
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('NAPI_RS_'))),
  PATH: [
    tools,
    ...(process.env.PATH ?? '').split(delimiter).filter((d) => d && !existsSync(join(d, 'cargo')) && !existsSync(join(d, 'rustc'))),
  ].join(delimiter),
}

let work: string
let mainTgz: string
let platformTgz: string

const pack = (dir: string) => {
  const name = execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { cwd: dir, encoding: 'utf8', env: noRust }).trim().split('\n').pop()!
  return join(work, name)
}
const listing = (tgz: string) => execFileSync('tar', ['-tzf', tgz], { encoding: 'utf8' }).split('\n').filter(Boolean)
const tarFile = (tgz: string, file: string) => execFileSync('tar', ['-xzOf', tgz, file], { encoding: 'utf8', maxBuffer: 64 << 20 })

// An empty project with both tarballs installed, the package's own
// dependencies from npm's cache where it has them (`npm ci` caches their
// tarballs but not always the registry documents that a tarball install
// resolves them with, so npm may fetch those).
const project = async (name: string, manifest: object, tarballs: string[]) => {
  const dir = join(work, name)
  mkdirSync(dir)
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, ...manifest }))
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...tarballs], { cwd: dir, env: noRust })
  return dir
}

const consumers: Record<string, string> = {}

beforeAll(async () => {
  execFileSync(process.execPath, [join(root, 'scripts', 'release-build.mjs'), '--out', stage, '--host-only'], { cwd: root, stdio: 'pipe' })
  work = mkdtempSync(join(tmpdir(), 'ws-install-'))
  mainTgz = pack(stage)
  platformTgz = pack(join(stage, 'npm', 'linux-x64-gnu'))
  const both = [mainTgz, platformTgz]
  const [esm, cjs, nodenext, bundler] = await Promise.all([
    project('esm', { type: 'module' }, both),
    project('cjs', { type: 'commonjs' }, both),
    project('ts-nodenext', { type: 'module' }, both),
    project('ts-bundler', { type: 'module' }, both),
  ])
  Object.assign(consumers, { esm, cjs, nodenext, bundler })
}, 900_000)

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true })
  rmSync(tools, { recursive: true, force: true })
})

// Runs a consumer's engine script over a fresh state folder, then the
// installed CLI over that folder: what the example did must be what it says.
const runEngine = (dir: string, script: string) => {
  const state = join(dir, 'state')
  const out = execFileSync(process.execPath, [script, state], { cwd: dir, encoding: 'utf8', env: noRust })
  expect(out.trim()).toBe('Filled')
  const bin = join(dir, 'node_modules', '.bin', 'window-space')
  const info = JSON.parse(execFileSync(bin, ['inspect', state, '--json'], { cwd: dir, encoding: 'utf8', env: noRust })) as {
    symbols: string[]
    slots: { slot: string; Filled?: number }[]
  }
  expect(info.symbols).toEqual(['SPY'])
  expect(info.slots.find((s) => s.slot === 'optionTrade')).toMatchObject({ Filled: 8 })
  expect(execFileSync(bin, ['verify', state, '--artifacts'], { cwd: dir, encoding: 'utf8', env: noRust })).toContain('OK: no problems found')
}

// The example reads `stateDir`; the consumer takes it from its command line.
const stateDirLine = 'const stateDir: string = process.argv[2]!\n'
const compile = (dir: string, compilerOptions: object) => {
  writeFileSync(join(dir, 'engine.ts'), stateDirLine + example)
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { strict: true, target: 'ES2022', outDir: 'out', skipLibCheck: false, types: ['node'], typeRoots: [join(root, 'node_modules', '@types')], ...compilerOptions },
      files: ['engine.ts'],
    }),
  )
  let out = ''
  try {
    out = execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: dir, encoding: 'utf8', stdio: 'pipe', env: noRust })
  } catch (e) {
    out = String((e as { stdout?: string }).stdout ?? e)
  }
  expect(out).toBe('')
}

// The `Error: window-space: …` line a consumer in `dir` gets from require('window-space').
const loadError = (dir: string) => {
  let message = ''
  try {
    execFileSync(process.execPath, ['-e', "require('window-space')"], { cwd: dir, encoding: 'utf8', stdio: 'pipe', env: noRust })
  } catch (e) {
    message = String((e as { stderr?: string }).stderr)
  }
  return message.split('\n').find((l) => l.startsWith('Error: window-space:')) ?? ''
}

describe('the packed release, installed into empty projects', () => {
  it('has no Rust toolchain on the PATH the installs and engines run with', () => {
    expect(() => execFileSync('cargo', ['--version'], { env: noRust, stdio: 'pipe' })).toThrow()
  })

  it('packs a main package without an addon, listing its platform package, and a platform package holding the stripped release addon', () => {
    const main = listing(mainTgz)
    for (const f of ['package/package.json', 'package/LICENSE', 'package/README.md', 'package/index.d.ts', 'package/binding.js', 'package/binding.d.ts', 'package/dist/index.js', 'package/dist/index.mjs', 'package/dist/cli.js']) {
      expect(main).toContain(f)
    }
    expect(main.filter((f) => f.endsWith('.node'))).toEqual([])
    expect(main.some((f) => /^package\/(crates|src|__test__|scripts|npm)\//.test(f))).toBe(false)
    const manifest = JSON.parse(tarFile(mainTgz, 'package/package.json')) as { optionalDependencies?: Record<string, string>; license: string }
    // The staged build lists this machine's platform package alone.
    expect(manifest.optionalDependencies).toEqual({ 'window-space-linux-x64-gnu': version })
    expect(tarFile(mainTgz, 'package/LICENSE')).toContain(`${manifest.license} License`)
    expect(tarFile(mainTgz, 'package/binding.d.ts')).not.toMatch(/fastEmpty|fastCasInternal/)
    // Every source map carries the sources it maps, which the package does not ship.
    const maps = main.filter((f) => f.endsWith('.js.map'))
    expect(maps.length).toBeGreaterThan(0)
    for (const m of maps) {
      const map = JSON.parse(tarFile(mainTgz, m)) as { sources: string[]; sourcesContent?: string[] }
      expect(map.sourcesContent?.length).toBe(map.sources.length)
    }

    expect(listing(platformTgz).sort()).toEqual(['package/README.md', 'package/build-manifest.json', 'package/package.json', 'package/window-space.linux-x64-gnu.node'])
    const platform = JSON.parse(tarFile(platformTgz, 'package/package.json')) as { name: string; version: string }
    expect(platform).toMatchObject({ name: 'window-space-linux-x64-gnu', version })
    // The build manifest describes the addon the tarball holds, and what built it.
    const addon = execFileSync('tar', ['-xzOf', platformTgz, 'package/window-space.linux-x64-gnu.node'], { maxBuffer: 64 << 20 })
    const built = JSON.parse(tarFile(platformTgz, 'package/build-manifest.json')) as Record<string, unknown>
    expect(built).toMatchObject({
      package: 'window-space-linux-x64-gnu',
      version,
      target: 'x86_64-unknown-linux-gnu',
      file: 'window-space.linux-x64-gnu.node',
      bytes: addon.length,
      sha256: createHash('sha256').update(addon).digest('hex'),
      profile: 'dist',
      napiCli: (JSON.parse(readFileSync(join(root, 'node_modules', '@napi-rs', 'cli', 'package.json'), 'utf8')) as { version: string }).version,
    })
    expect(built.rustc).toContain(/^release: (\S+)$/m.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))![1])
    const symbols = execFileSync('readelf', ['--dyn-syms', '-W', join(stage, 'npm', 'linux-x64-gnu', 'window-space.linux-x64-gnu.node')], { encoding: 'utf8' })
    expect(symbols).toMatch(/\bnapi_register_module_v1\b/)
    const sections = execFileSync('readelf', ['-S', '-W', join(stage, 'npm', 'linux-x64-gnu', 'window-space.linux-x64-gnu.node')], { encoding: 'utf8' })
    expect(sections).not.toMatch(/\.debug_|\.symtab/)
  })

  it('passes the publish check, which refuses a platform package whose addon is not the stripped release addon of its target, or whose build manifest does not describe it', () => {
    const checkPublish = (dir: string, ...flags: string[]) =>
      spawnSync(process.execPath, [join(root, 'scripts', 'check-publish.mjs'), dir, ...flags], { encoding: 'utf8', stdio: 'pipe' })
    const check = (dir: string, ...flags: string[]) => {
      const r = checkPublish(dir, ...flags)
      return r.status === 0 ? 'ready' : r.stderr
    }
    expect(check(stage)).toBe('ready')
    const copy = join(root, 'target', 'pack-stage-altered')
    const gnu = join(copy, 'npm', 'linux-x64-gnu')
    const manifestPath = join(gnu, 'build-manifest.json')
    const addonPath = join(gnu, 'window-space.linux-x64-gnu.node')
    const fresh = () => {
      rmSync(copy, { recursive: true, force: true })
      cpSync(stage, copy, { recursive: true })
      return JSON.parse(readFileSync(manifestPath, 'utf8')) as Record<string, unknown>
    }
    // Puts `addon` into package folder `dir` as `file`, with a manifest that
    // describes it (size, SHA-256), as the release build would write it.
    const place = (dir: string, file: string, addon: Buffer, fields: Record<string, unknown> = {}) => {
      writeFileSync(join(dir, file), addon)
      const manifest = JSON.parse(readFileSync(join(stage, 'npm', 'linux-x64-gnu', 'build-manifest.json'), 'utf8')) as Record<string, unknown>
      const sha256 = createHash('sha256').update(addon).digest('hex')
      writeFileSync(join(dir, 'build-manifest.json'), JSON.stringify({ ...manifest, file, bytes: addon.length, sha256, ...fields }))
    }
    const objcopy = (args: string[], from: string) => {
      const out = join(copy, 'objcopy.out')
      execFileSync('objcopy', [...args, from, out], { stdio: 'pipe' })
      const bytes = readFileSync(out)
      rmSync(out)
      return bytes
    }
    const release = readFileSync(join(stage, 'npm', 'linux-x64-gnu', 'window-space.linux-x64-gnu.node'))
    // The root's addon is the test build (`npm run build:debug`: debug, bench and failpoints).
    expect(readFileSync(join(root, '.addon-profile'), 'utf8').trim(), 'the tests run over the build:debug addon').toBe('debug')
    const debugAddon = join(root, 'window-space.linux-x64-gnu.node')
    try {
      let manifest = fresh()
      writeFileSync(manifestPath, JSON.stringify({ ...manifest, sha256: '0'.repeat(64) }))
      expect(check(copy)).toContain(`npm/linux-x64-gnu/build-manifest.json: sha256 is "${'0'.repeat(64)}"`)
      writeFileSync(manifestPath, JSON.stringify({ ...manifest, target: 'aarch64-unknown-linux-gnu' }))
      expect(check(copy)).toContain('build-manifest.json: target is "aarch64-unknown-linux-gnu"')
      writeFileSync(manifestPath, JSON.stringify({ ...manifest, profile: 'debug' }))
      expect(check(copy)).toContain('npm/linux-x64-gnu/build-manifest.json: profile is "debug", not "dist"')
      rmSync(manifestPath)
      expect(check(copy)).toContain('npm/linux-x64-gnu/build-manifest.json: missing')

      // The debug build with every symbol and debug section stripped: its
      // test-only strings still give it away.
      fresh()
      place(gnu, 'window-space.linux-x64-gnu.node', objcopy(['--strip-all'], debugAddon))
      let out = check(copy)
      expect(out).toContain('npm/linux-x64-gnu/window-space.linux-x64-gnu.node holds strings only a build with the bench or failpoints feature has (')
      expect(out).toMatch(/WINDOW_SPACE_FAILPOINTS, controller::before-count, .*fastEmpty/)
      expect(out).not.toContain('.symtab')

      // The release addon with a symbol table added.
      place(gnu, 'window-space.linux-x64-gnu.node', objcopy(['--add-symbol', 'probe=.text:0,global,function'], addonPath))
      expect(check(copy)).toContain('npm/linux-x64-gnu/window-space.linux-x64-gnu.node carries a symbol table, .symtab')

      // The release addon with its section header table cut off.
      const headless = Buffer.from(release)
      headless.writeBigUInt64LE(0n, 0x28)
      headless.writeUInt16LE(0, 0x3c)
      headless.writeUInt16LE(0, 0x3e)
      place(gnu, 'window-space.linux-x64-gnu.node', headless)
      expect(check(copy)).toContain('npm/linux-x64-gnu/window-space.linux-x64-gnu.node has no section headers')

      // An ELF file for the right machine that is no Node-API addon: the dynamic loader.
      place(gnu, 'window-space.linux-x64-gnu.node', readFileSync('/lib64/ld-linux-x86-64.so.2'))
      out = check(copy)
      expect(out).toContain('npm/linux-x64-gnu/window-space.linux-x64-gnu.node does not define napi_register_module_v1')
      expect(out).toContain('npm/linux-x64-gnu/window-space.linux-x64-gnu.node does not need libc.so.6, the glibc C library')

      // The glibc addon in the x86-64 musl package.
      fresh()
      const pkgPath = join(copy, 'package.json')
      const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { napi: { targets: string[] } }
      pkg.napi.targets.push('x86_64-unknown-linux-musl')
      writeFileSync(pkgPath, JSON.stringify(pkg))
      const musl = join(copy, 'npm', 'linux-x64-musl')
      mkdirSync(musl)
      cpSync(join(root, 'npm', 'linux-x64-musl', 'package.json'), join(musl, 'package.json'))
      place(musl, 'window-space.linux-x64-musl.node', release, { package: 'window-space-linux-x64-musl', target: 'x86_64-unknown-linux-musl' })
      out = check(copy)
      expect(out).toContain("npm/linux-x64-musl/window-space.linux-x64-musl.node needs libc.so.6, glibc's C library, in a musl package")
      expect(out).toContain('npm/linux-x64-musl/window-space.linux-x64-musl.node does not need libc.so, the musl C library')
      expect(out).not.toContain('npm/linux-x64-gnu')

      // With --publish (npm publish), every addon must come from HEAD, built
      // from a clean tree, and the tree must still be clean; without it, the
      // check names the commit and warns. The copy is made a git checkout of
      // its own (the manifest, untracked, names the commit of the rest).
      rmSync(musl, { recursive: true, force: true })
      cpSync(join(stage, 'package.json'), pkgPath)

      // A glibc addon needing a newer glibc than the package promises.
      fresh()
      place(gnu, 'window-space.linux-x64-gnu.node', Buffer.from(release.toString('latin1').replaceAll('GLIBC_2.17', 'GLIBC_2.99'), 'latin1'))
      expect(check(copy)).toContain('npm/linux-x64-gnu/window-space.linux-x64-gnu.node needs GLIBC_2.99, newer than the glibc 2.17 the package promises')

      manifest = fresh()
      const git = (...a: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...a], { cwd: copy, encoding: 'utf8' }).trim()
      git('init', '-q')
      writeFileSync(join(copy, '.gitignore'), 'build-manifest.json\n')
      git('add', '-A')
      git('commit', '-qm', 'stage')
      const head = git('rev-parse', 'HEAD')
      writeFileSync(manifestPath, JSON.stringify({ ...manifest, source: head }))
      expect(check(copy, '--publish')).toBe('ready')
      expect(checkPublish(copy).stdout).toContain(`addons built from ${head}`)
      writeFileSync(join(copy, 'dist', 'index.js'), `${readFileSync(join(copy, 'dist', 'index.js'), 'utf8')}// changed after the build\n`)
      expect(check(copy, '--publish')).toContain('has uncommitted changes (1 paths, e.g. dist/index.js)')
      git('checkout', '--', 'dist/index.js')
      const other = 'f'.repeat(40)
      for (const source of [other, `${head}-dirty`, null]) {
        writeFileSync(manifestPath, JSON.stringify({ ...manifest, source }))
        expect(check(copy, '--publish')).toContain(`npm/linux-x64-gnu/build-manifest.json: source is ${JSON.stringify(source)}, not HEAD ${head} built from a clean tree`)
        const r = checkPublish(copy)
        expect(r.status).toBe(0)
        expect(r.stderr).toContain(`warning: the addons were built from ${source ?? 'no git checkout'}, not HEAD ${head} from a clean tree`)
      }
    } finally {
      rmSync(copy, { recursive: true, force: true })
    }
  })

  it('refuses to pack a platform package whose addon is missing or is not the one its build manifest describes', () => {
    const dir = join(work, 'platform-alone')
    cpSync(join(stage, 'npm', 'linux-x64-gnu'), dir, { recursive: true })
    const dest = join(work, 'platform-alone-packed')
    mkdirSync(dest)
    const packAlone = () => spawnSync('npm', ['pack', '--pack-destination', dest], { cwd: dir, encoding: 'utf8', env: noRust })
    const addon = join(dir, 'window-space.linux-x64-gnu.node')
    const bytes = readFileSync(addon)
    writeFileSync(addon, Buffer.concat([bytes, Buffer.from([0])]))
    let r = packAlone()
    expect(r.status).not.toBe(0)
    expect(r.stderr).toContain('window-space-linux-x64-gnu: refusing to pack: build-manifest.json does not describe window-space.linux-x64-gnu.node')
    rmSync(addon)
    r = packAlone()
    expect(r.status).not.toBe(0)
    expect(r.stderr).toContain('window-space-linux-x64-gnu: refusing to pack: window-space.linux-x64-gnu.node is missing')
    writeFileSync(addon, bytes)
    rmSync(join(dir, 'build-manifest.json'))
    r = packAlone()
    expect(r.status).not.toBe(0)
    expect(r.stderr).toContain('window-space-linux-x64-gnu: refusing to pack: build-manifest.json is missing')
    expect(readdirSync(dest)).toEqual([])
    // The folder as the release build left it packs.
    writeFileSync(addon, bytes)
    cpSync(join(stage, 'npm', 'linux-x64-gnu', 'build-manifest.json'), join(dir, 'build-manifest.json'))
    r = packAlone()
    expect(r.status, r.stderr).toBe(0)
    expect(readdirSync(dest)).toEqual([basename(platformTgz)])
  })

  it('loads the addon from the platform package, not from the main package', () => {
    for (const dir of Object.values(consumers)) {
      expect(readdirSync(join(dir, 'node_modules', 'window-space')).filter((f) => f.endsWith('.node'))).toEqual([])
      expect(statSync(join(dir, 'node_modules', 'window-space-linux-x64-gnu', 'window-space.linux-x64-gnu.node')).isFile()).toBe(true)
    }
  })

  it('runs the README engine example in an ES-module project', () => {
    writeFileSync(join(consumers.esm!, 'engine.mjs'), 'const stateDir = process.argv[2]\n' + example)
    runEngine(consumers.esm!, 'engine.mjs')
  })

  it('passes the portable API slice with node --test in the ES-module project', () => {
    const dir = consumers.esm!
    cpSync(join(root, '__test__', 'platform'), join(dir, '__test__', 'platform'), { recursive: true })
    const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', join('__test__', 'platform', 'api-slice.mjs')], { cwd: dir, encoding: 'utf8', env: noRust, maxBuffer: 64 << 20 })
    const output = `${r.stdout}${r.stderr}`
    const summary = (name: string) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(r.stdout)?.[1])
    expect(r.status, output).toBe(0)
    expect(summary('fail'), output).toBe(0)
    expect(summary('pass'), output).toBeGreaterThan(0)
    expect(summary('pass'), output).toBe(summary('tests'))
  }, 300_000)

  it('runs the README engine example in a CommonJS project', () => {
    const js = ts.transpileModule(example, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText
    expect(js).toContain("require(\"window-space\")")
    writeFileSync(join(consumers.cjs!, 'engine.cjs'), 'const stateDir = process.argv[2]\n' + js)
    runEngine(consumers.cjs!, 'engine.cjs')
  })

  it('compiles the README engine example under strict TypeScript with nodenext resolution, and runs it', () => {
    compile(consumers.nodenext!, { module: 'nodenext', moduleResolution: 'nodenext' })
    runEngine(consumers.nodenext!, join('out', 'engine.js'))
  })

  it('compiles the README engine example under strict TypeScript with bundler resolution, and runs it', () => {
    compile(consumers.bundler!, { module: 'esnext', moduleResolution: 'bundler' })
    runEngine(consumers.bundler!, join('out', 'engine.js'))
  })

  it('without its platform package, fails to load with one line naming the platform and how to build from source', async () => {
    const dir = await project('main-only', {}, [mainTgz])
    expect(existsSync(join(dir, 'node_modules', 'window-space-linux-x64-gnu'))).toBe(false)
    const line = loadError(dir)
    expect(line).toContain('linux-x64-gnu')
    expect(line).toContain('window-space-linux-x64-gnu')
    expect(line).toContain('npm ci && npm run build')
  }, 120_000)

  it('with its platform package installed but the addon unloadable, says in one line why the dynamic loader refused it', async () => {
    const dir = await project('damaged-addon', {}, [mainTgz, platformTgz])
    const addon = join(dir, 'node_modules', 'window-space-linux-x64-gnu', 'window-space.linux-x64-gnu.node')
    writeFileSync(addon, 'not an ELF file\n')
    const line = loadError(dir)
    expect(line).toContain('the native addon in window-space-linux-x64-gnu is installed but did not load')
    expect(line).toContain(`${addon}: `)
    expect(line).not.toContain('Cannot find native binding')
  }, 120_000)
})
