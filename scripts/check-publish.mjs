// `npm run release:check` (and `prepublishOnly`): checks, without publishing
// or writing anything, that the platform packages under npm/ are ready to
// publish beside the main package: one folder per napi target in package.json
// and no other, each at the main package's version, each holding its addon
// built for that machine (ELF header) with the debug info stripped, and
// finally `napi pre-publish --dry-run`, the napi-rs CLI's own validation.
// An argument names another package root to check (a staged release build).
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = process.argv[2] ? resolve(process.argv[2]) : fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const { binaryName, packageName, targets } = pkg.napi
// The targets this package can list: folder name under npm/ and ELF machine number.
const known = {
  'x86_64-unknown-linux-gnu': { abi: 'linux-x64-gnu', machine: 62 },
  'aarch64-unknown-linux-gnu': { abi: 'linux-arm64-gnu', machine: 183 },
}
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
    problems.push(`${t}: not a target this check knows (add it to scripts/check-publish.mjs once it is built and tested)`)
    continue
  }
  const dir = join(root, 'npm', k.abi)
  const sub = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  if (sub.name !== `${packageName}-${k.abi}`) problems.push(`npm/${k.abi}: package name ${sub.name}, expected ${packageName}-${k.abi}`)
  if (sub.version !== pkg.version) problems.push(`npm/${k.abi}: version ${sub.version}, main package ${pkg.version}`)
  const file = `${binaryName}.${k.abi}.node`
  if (!existsSync(join(dir, file))) {
    problems.push(`npm/${k.abi}/${file} is missing (npm run release:build)`)
    continue
  }
  const elf = readFileSync(join(dir, file))
  if (elf.readUInt32BE(0) !== 0x7f454c46) problems.push(`npm/${k.abi}/${file} is not an ELF file`)
  else if (elf.readUInt16LE(18) !== k.machine) problems.push(`npm/${k.abi}/${file} is built for ELF machine ${elf.readUInt16LE(18)}, not ${k.machine}`)
  else if (sectionNames(elf).some((n) => n.startsWith('.debug_'))) problems.push(`npm/${k.abi}/${file} carries debug info (a build without --strip)`)
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
