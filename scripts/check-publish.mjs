// `npm run release:check`: checks, without publishing or writing anything,
// that the platform packages under npm/ are ready to publish beside the main
// package: one folder per napi target in package.json and no other, each at
// the main package's version, each holding its addon, and each addon
//   - a 64-bit little-endian ELF file for its target's machine, with section
//     headers, no debug sections and no symbol table (`.symtab`), as the
//     `dist` profile's strip leaves it;
//   - a Node-API addon: `napi_register_module_v1` defined in its dynamic
//     symbol table;
//   - linked against its target's C library: a glibc package's addon needs
//     `libc.so.6`, a musl package's needs musl's `libc.so` and not `libc.so.6`
//     (its DT_NEEDED entries);
//   - without the strings only a test build holds: the failpoint names and
//     their environment variable (`failpoints` feature), the benchmark's floor
//     functions (`bench` feature);
// with a build manifest that names this target, this addon's size and
// SHA-256 and the `dist` profile; then `napi pre-publish --dry-run`, the
// napi-rs CLI's own validation. It prints the commit the addons were built
// from (their manifests' `source`) and warns when that is not HEAD.
//
//   node scripts/check-publish.mjs [DIR] [--publish]
//
// DIR names another package root to check (a staged release build).
// `--publish` (package.json's `prepublishOnly`) also refuses unless the root
// is in a git checkout and every manifest's `source` is its HEAD, built from
// a clean tree (no `-dirty`): what is published is what that commit builds.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { glibcAbove, glibcFloor, newestGlibc, targets as known } from './targets.mjs'

const args = process.argv.slice(2)
const publish = args.includes('--publish')
const unknown = args.filter((a) => a.startsWith('-') && a !== '--publish')
const dirs = args.filter((a) => !a.startsWith('-'))
if (unknown.length || dirs.length > 1) {
  console.error(`check-publish: usage: node scripts/check-publish.mjs [DIR] [--publish] (got ${args.join(' ')})`)
  process.exit(2)
}
const root = dirs[0] ? resolve(dirs[0]) : fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const { binaryName, packageName, targets } = pkg.napi

// Strings that only a build with a test-only feature holds: failpoint names
// and the variable that arms them (`failpoints`), the benchmark's floor
// functions (`bench`). The `dist` build holds none of them.
const testOnly = ['WINDOW_SPACE_FAILPOINTS', 'controller::before-count', 'payload::append-written', 'fastEmpty', 'fastCasInternal']

// What the checks need from a 64-bit little-endian ELF file: its machine,
// its section names, the symbols its dynamic symbol table defines and the
// libraries its dynamic section needs (DT_NEEDED). Throws, saying why, on a
// file that is not one or whose tables lie outside it.
const SHT_DYNAMIC = 6
const SHT_DYNSYM = 11
const DT_NEEDED = 1n
const readElf = (elf) => {
  if (elf.length < 0x40 || elf.readUInt32BE(0) !== 0x7f454c46) throw new Error('is not an ELF file')
  if (elf[4] !== 2 || elf[5] !== 1) throw new Error('is not a 64-bit little-endian ELF file')
  const machine = elf.readUInt16LE(0x12)
  const shoff = elf.readBigUInt64LE(0x28)
  const [size, count, strIndex] = [elf.readUInt16LE(0x3a), elf.readUInt16LE(0x3c), elf.readUInt16LE(0x3e)]
  if (shoff === 0n || count === 0) return { machine, sections: undefined }
  if (size !== 64 || shoff + BigInt(count * size) > BigInt(elf.length) || strIndex >= count) throw new Error('has a section header table that does not fit the file')
  const sections = Array.from({ length: count }, (_, i) => {
    const h = Number(shoff) + i * size
    const s = { name: elf.readUInt32LE(h), type: elf.readUInt32LE(h + 4), offset: elf.readBigUInt64LE(h + 0x18), size: elf.readBigUInt64LE(h + 0x20), link: elf.readUInt32LE(h + 0x28) }
    return { ...s, offset: Number(s.offset), size: Number(s.size), fits: s.offset + s.size <= BigInt(elf.length) }
  })
  const data = (s) => {
    if (!s?.fits) throw new Error('has a section that lies outside the file')
    return elf.subarray(s.offset, s.offset + s.size)
  }
  // The NUL-terminated string at `at` in string table section `table`.
  const string = (table, at) => {
    const bytes = data(table)
    const end = bytes.indexOf(0, at)
    if (at >= bytes.length || end === -1) throw new Error('has a string table entry that runs past its section')
    return bytes.toString('latin1', at, end)
  }
  const names = sections.map((s) => string(sections[strIndex], s.name))
  const defined = new Set()
  const needed = []
  for (const s of sections) {
    if (s.type === SHT_DYNSYM) {
      // Elf64_Sym, 24 bytes: st_name (u32), st_info, st_other, st_shndx (u16, 0: undefined), …
      const bytes = data(s)
      for (let at = 0; at + 24 <= bytes.length; at += 24) {
        if (bytes.readUInt16LE(at + 6) !== 0) defined.add(string(sections[s.link], bytes.readUInt32LE(at)))
      }
    } else if (s.type === SHT_DYNAMIC) {
      // Elf64_Dyn, 16 bytes: d_tag (i64), d_val (u64); DT_NULL ends the table.
      const bytes = data(s)
      for (let at = 0; at + 16 <= bytes.length; at += 16) {
        const tag = bytes.readBigInt64LE(at)
        if (tag === 0n) break
        if (tag === DT_NEEDED) needed.push(string(sections[s.link], Number(bytes.readBigUInt64LE(at + 8))))
      }
    }
  }
  return { machine, sections: names, defined, needed }
}

// The problems of one addon, for a target of scripts/targets.mjs.
const addonProblems = (elf, k) => {
  let info
  try {
    info = readElf(elf)
  } catch (e) {
    return [e.message]
  }
  if (info.machine !== k.machine) return [`is built for ELF machine ${info.machine}, not ${k.machine}`]
  const found = []
  if (!info.sections) found.push('has no section headers (e_shoff 0): not what the linker makes')
  else {
    if (info.sections.some((n) => n.startsWith('.debug_'))) found.push('carries debug info (a build without the dist profile)')
    if (info.sections.includes('.symtab')) found.push('carries a symbol table, .symtab (a build without the dist profile\'s strip)')
    if (!info.defined.has('napi_register_module_v1')) found.push('does not define napi_register_module_v1 in its dynamic symbols: not a Node-API addon')
    const libc = k.libc === 'musl' ? 'libc.so' : 'libc.so.6'
    if (!info.needed.includes(libc)) found.push(`does not need ${libc}, the ${k.libc} C library (it needs ${info.needed.join(', ') || 'no library'})`)
    if (k.libc === 'musl' && info.needed.includes('libc.so.6')) found.push('needs libc.so.6, glibc\'s C library, in a musl package')
  }
  if (k.libc === 'glibc') {
    const newest = newestGlibc(elf)
    if (newest && glibcAbove(newest, glibcFloor)) found.push(`needs GLIBC_${newest}, newer than the glibc ${glibcFloor} the package promises (a build not linked through zig for ${k.zigTarget})`)
  }
  const markers = testOnly.filter((m) => elf.includes(m))
  if (markers.length) found.push(`holds strings only a build with the bench or failpoints feature has (${markers.join(', ')})`)
  return found
}

const problems = []
const sources = new Map()
for (const t of targets) {
  const k = known[t]
  if (!k) {
    problems.push(`${t}: not a target scripts/targets.mjs knows (add it there once it is built and tested)`)
    continue
  }
  const dir = join(root, 'npm', k.abi)
  const sub = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  if (sub.name !== `${packageName}-${k.abi}`) problems.push(`npm/${k.abi}: package name ${sub.name}, expected ${packageName}-${k.abi}`)
  if (sub.version !== pkg.version) problems.push(`npm/${k.abi}: version ${sub.version}, main package ${pkg.version}`)
  if (JSON.stringify(sub.cpu) !== JSON.stringify([k.cpu]) || JSON.stringify(sub.libc) !== JSON.stringify([k.libc])) {
    problems.push(`npm/${k.abi}: cpu ${JSON.stringify(sub.cpu)} libc ${JSON.stringify(sub.libc)}, expected ["${k.cpu}"] ["${k.libc}"]`)
  }
  if (!sub.files?.includes('build-manifest.json')) problems.push(`npm/${k.abi}: package.json's files leave out build-manifest.json`)
  if (!sub.scripts?.prepack) problems.push(`npm/${k.abi}: package.json has no prepack script (the check that the folder holds its addon and manifest)`)
  const file = `${binaryName}.${k.abi}.node`
  if (!existsSync(join(dir, file))) {
    problems.push(`npm/${k.abi}/${file} is missing (npm run release:build)`)
    continue
  }
  const elf = readFileSync(join(dir, file))
  for (const p of addonProblems(elf, k)) problems.push(`npm/${k.abi}/${file} ${p}`)
  let manifest
  try {
    manifest = JSON.parse(readFileSync(join(dir, 'build-manifest.json'), 'utf8'))
  } catch (e) {
    problems.push(`npm/${k.abi}/build-manifest.json: ${e.code === 'ENOENT' ? 'missing (npm run release:build)' : e.message}`)
    continue
  }
  if (manifest === null || typeof manifest !== 'object' || Array.isArray(manifest)) {
    problems.push(`npm/${k.abi}/build-manifest.json: not a JSON object`)
    continue
  }
  const sha256 = createHash('sha256').update(elf).digest('hex')
  const expected = { package: sub.name, version: pkg.version, target: t, file, bytes: elf.length, sha256 }
  for (const [key, value] of Object.entries(expected)) {
    if (manifest[key] !== value) problems.push(`npm/${k.abi}/build-manifest.json: ${key} is ${JSON.stringify(manifest[key])}, the addon's is ${JSON.stringify(value)}`)
  }
  if (manifest.zigTarget !== k.zigTarget) problems.push(`npm/${k.abi}/build-manifest.json: zigTarget is ${JSON.stringify(manifest.zigTarget)}, not ${JSON.stringify(k.zigTarget)}`)
  if (manifest.profile !== 'dist') problems.push(`npm/${k.abi}/build-manifest.json: profile is ${JSON.stringify(manifest.profile)}, not "dist" (the published build: release code, stripped)`)
  for (const key of ['rustc', 'linker', 'napiCli', 'node']) if (typeof manifest[key] !== 'string' || !manifest[key]) problems.push(`npm/${k.abi}/build-manifest.json: no ${key}`)
  sources.set(k.abi, manifest.source ?? null)
}
const listed = new Set(targets.map((t) => known[t]?.abi))
for (const d of readdirSync(join(root, 'npm'))) if (!listed.has(d)) problems.push(`npm/${d} is not in package.json's napi targets`)

// The commit the addons were built from, against the root's git HEAD.
let head
try {
  head = execFileSync('git', ['-C', root, 'rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
} catch {
  head = undefined
}
const builtFrom = [...new Set(sources.values())]
const unlike = [...sources].filter(([, s]) => s !== head)
if (publish && head === undefined) problems.push(`${root} is not in a git checkout: --publish publishes only addons built from the checkout's HEAD`)
else if (publish) {
  // Uncommitted changes would ship in dist/ (built from the tree) beside addons built from HEAD.
  const changes = execFileSync('git', ['-C', root, 'status', '--porcelain'], { encoding: 'utf8' }).split('\n').filter(Boolean)
  if (changes.length) problems.push(`${root} has uncommitted changes (${changes.length} paths, e.g. ${changes[0].slice(3)}): commit, then npm run release:build`)
  for (const [abi, s] of unlike) problems.push(`npm/${abi}/build-manifest.json: source is ${JSON.stringify(s)}, not HEAD ${head} built from a clean tree (commit, then npm run release:build)`)
}

if (problems.length) {
  console.error(`window-space: not ready to publish:\n  ${problems.join('\n  ')}`)
  process.exit(1)
}
const napi = join(dirname(createRequire(import.meta.url).resolve('@napi-rs/cli/package.json')), 'dist', 'cli.js')
execFileSync(process.execPath, [napi, 'pre-publish', '--cwd', root, '-t', 'npm', '--dry-run', '--no-gh-release'], { stdio: 'inherit' })
console.log(`window-space ${pkg.version}: addons built from ${builtFrom.map((s) => s ?? 'no git checkout').join(', ')}`)
if (unlike.length) {
  const which = unlike.length === sources.size ? 'the addons were' : `${unlike.map(([abi]) => `npm/${abi}`).join(', ')} ${unlike.length > 1 ? 'were' : 'was'}`
  const from = [...new Set(unlike.map(([, s]) => s ?? 'no git checkout'))].join(', ')
  const against = head === undefined ? `and ${root} is not in a git checkout` : `not HEAD ${head} from a clean tree`
  console.warn(`window-space: warning: ${which} built from ${from}, ${against}; npm publish refuses them`)
}
console.log(`window-space ${pkg.version}: ${targets.length} platform package(s) ready: ${targets.map((t) => known[t].abi).join(', ')}`)
