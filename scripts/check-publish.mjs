// `npm run release:check` (and `prepublishOnly`): checks, without publishing
// or writing anything, that the platform packages under npm/ are ready to
// publish beside the main package: one folder per napi target in package.json
// and no other, each at the main package's version, each holding its addon
// built for that machine (ELF header) with the debug info stripped, with a
// build manifest that names this target and this addon's size and SHA-256,
// and finally `napi pre-publish --dry-run`, the napi-rs CLI's own validation.
// An argument names another package root to check (a staged release build).
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { targets as known } from './targets.mjs'

const root = process.argv[2] ? resolve(process.argv[2]) : fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const { binaryName, packageName, targets } = pkg.napi
// The section names of a 64-bit little-endian ELF file, from its section header table.
const sectionNames = (elf) => {
  const shoff = Number(elf.readBigUInt64LE(0x28))
  const [size, count, strIndex] = [elf.readUInt16LE(0x3a), elf.readUInt16LE(0x3c), elf.readUInt16LE(0x3e)]
  const strOffset = Number(elf.readBigUInt64LE(shoff + strIndex * size + 0x18))
  return Array.from({ length: count }, (_, i) => {
    const name = strOffset + elf.readUInt32LE(shoff + i * size)
    return elf.toString('latin1', name, elf.indexOf(0, name))
  })
}
const problems = []
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
  const file = `${binaryName}.${k.abi}.node`
  if (!existsSync(join(dir, file))) {
    problems.push(`npm/${k.abi}/${file} is missing (npm run release:build)`)
    continue
  }
  const elf = readFileSync(join(dir, file))
  if (elf.readUInt32BE(0) !== 0x7f454c46) problems.push(`npm/${k.abi}/${file} is not an ELF file`)
  else if (elf.readUInt16LE(18) !== k.machine) problems.push(`npm/${k.abi}/${file} is built for ELF machine ${elf.readUInt16LE(18)}, not ${k.machine}`)
  else if (sectionNames(elf).some((n) => n.startsWith('.debug_'))) problems.push(`npm/${k.abi}/${file} carries debug info (a build without --strip)`)
  let manifest
  try {
    manifest = JSON.parse(readFileSync(join(dir, 'build-manifest.json'), 'utf8'))
  } catch (e) {
    problems.push(`npm/${k.abi}/build-manifest.json: ${e.code === 'ENOENT' ? 'missing (npm run release:build)' : e.message}`)
    continue
  }
  const sha256 = createHash('sha256').update(elf).digest('hex')
  const expected = { package: sub.name, version: pkg.version, target: t, file, bytes: elf.length, sha256 }
  for (const [key, value] of Object.entries(expected)) {
    if (manifest[key] !== value) problems.push(`npm/${k.abi}/build-manifest.json: ${key} is ${JSON.stringify(manifest[key])}, the addon's is ${JSON.stringify(value)}`)
  }
  for (const key of ['rustc', 'linker', 'napiCli', 'node']) if (typeof manifest[key] !== 'string' || !manifest[key]) problems.push(`npm/${k.abi}/build-manifest.json: no ${key}`)
}
const listed = new Set(targets.map((t) => known[t]?.abi))
for (const d of readdirSync(join(root, 'npm'))) if (!listed.has(d)) problems.push(`npm/${d} is not in package.json's napi targets`)

if (problems.length) {
  console.error(`window-space: not ready to publish:\n  ${problems.join('\n  ')}`)
  process.exit(1)
}
const napi = join(dirname(createRequire(import.meta.url).resolve('@napi-rs/cli/package.json')), 'dist', 'cli.js')
execFileSync(process.execPath, [napi, 'pre-publish', '--cwd', root, '-t', 'npm', '--dry-run'], { stdio: 'inherit' })
console.log(`window-space ${pkg.version}: ${targets.length} platform package(s) ready: ${targets.map((t) => known[t].abi).join(', ')}`)
