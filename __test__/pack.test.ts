// Packs the package the way it would be published (`npm pack`), installs the
// tarball into a fresh temporary project, and uses it from there: an ES-module
// and a CommonJS engine loop, the installed `window-space` command (inspect and
// verify on the directory the ES-module loop made), and a TypeScript
// consumer compiled with `strict` against the published types.
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const root = join(__dirname, '..')
let project: string
let tarball: string

beforeAll(() => {
  project = mkdtempSync(join(tmpdir(), 'ws-consumer-'))
  const packed = execFileSync('npm', ['pack', '--silent', '--pack-destination', project], { cwd: root, encoding: 'utf8' }).trim().split('\n').pop()!
  tarball = join(project, packed)
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', tarball], { cwd: project, stdio: 'pipe' })
}, 240_000)

afterAll(() => rmSync(project, { recursive: true, force: true }))

const engineLoop = (importLine: string) => `${importLine}
const dir = process.argv[2]
const { controller, storageReport } = WindowSpaceController.bootstrap(
  new WindowSpaceConfig(dir, WindowSpace.uniform({ origin: 0, windowDuration: 60_000, windowCount: 10 })))
const spy = controller.resolveSymbol('SPY')
for (const claim of controller.claimNextUnfilled(spy, 0, 'optionTrade', 3)) {
  const a = controller.writeArtifact('SPY/' + claim.windowIdx + '.txt', 'trades ' + claim.windowIdx)
  const payloadId = controller.payloadStores().trades.append({ symbol: spy, windowIdx: claim.windowIdx, slotKind: 'optionTrade', payloadType: 'Text', uri: a.uri, checksum: a.checksum, size: a.size })
  controller.setOptionTradeRef(spy, claim.windowIdx, { payloadType: 'Text', payloadId, version: claim.version, checksum: a.checksum })
}
let busy = 'none'
try { controller.markPending('SPY', 0, 'optionTrade') } catch (e) { busy = (e instanceof VersionConflictError) + ':' + e.code }
console.log(JSON.stringify({ created: storageReport.created, next: controller.nextUnfilledWindow('SPY', 0, 'optionTrade'), busy }))
controller.close()
`

describe('the packed package installed into a fresh project', () => {
  it('ships the addon, the loader, the facade and the types, and nothing of the sources', () => {
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n')
    for (const f of ['package/package.json', 'package/index.d.ts', 'package/binding.js', 'package/binding.d.ts', 'package/dist/index.js', 'package/dist/index.mjs', 'package/dist/index.d.ts', 'package/dist/cli.js', 'package/dist/metrics.js', 'package/window-space.linux-x64-gnu.node']) {
      expect(files).toContain(f)
    }
    expect(files.some((f) => f.startsWith('package/crates/') || f.startsWith('package/src/') || f.startsWith('package/__test__/'))).toBe(false)
  })

  it.each([
    ['ES module', 'engine.mjs', "import { WindowSpace, WindowSpaceConfig, WindowSpaceController, VersionConflictError } from 'window-space'"],
    ['CommonJS', 'engine.cjs', "const { WindowSpace, WindowSpaceConfig, WindowSpaceController, VersionConflictError } = require('window-space')"],
  ])('runs an engine loop as an %s', (_kind, file, importLine) => {
    writeFileSync(join(project, file), engineLoop(importLine))
    const state = join(project, `state-${file}`)
    const out = JSON.parse(execFileSync(process.execPath, [file, state], { cwd: project, encoding: 'utf8' }))
    expect(out).toEqual({ created: true, next: 3, busy: 'true:ERR_SLOT_FILLED' })
    expect(readdirSync(state).sort()).toEqual(
      ['aggregations.map', 'aggressor.map', 'artifacts', 'changes.journal', 'enrichment-ledger.dat', 'greeks.map', 'quotes.map', 'rf_rate.map', 'schedule.json', 'symbol-map.json', 'trade-ledger.dat', 'trades.map', 'window-space.lock'].sort(),
    )
  })

  it('installs the window-space command, which inspects and verifies the directory the ES-module loop made', () => {
    const bin = join(project, 'node_modules', '.bin', 'window-space')
    const state = join(project, 'state-engine.mjs') // made by the ES-module engine loop above
    // Run the installed bin itself (shebang and executable bit), not `node dist/cli.js`.
    const info = JSON.parse(execFileSync(bin, ['inspect', state, '--json'], { cwd: project, encoding: 'utf8' }))
    expect(info.symbols).toEqual(['SPY'])
    expect(info.schedule).toMatchObject({ kind: 'uniform', windowCount: 10 })
    expect(info.slots.find((s: { slot: string }) => s.slot === 'optionTrade')).toMatchObject({ Filled: 3, Empty: 7 })
    expect(execFileSync(bin, ['verify', state, '--artifacts'], { cwd: project, encoding: 'utf8' })).toContain('OK: no problems found')
    expect(execFileSync(bin, ['--version'], { cwd: project, encoding: 'utf8' }).trim()).toBe(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version)
  })

  it('compiles a strict TypeScript consumer against the published types', () => {
    const dir = join(project, 'ts')
    mkdirSync(dir, { recursive: true })
    writeFileSync(
      join(dir, 'consumer.ts'),
      `import { WindowSpace, WindowSpaceConfig, WindowSpaceController, SlotKind, TradeSlotKind, SlotBusyError, type Claim, type TradeRow, type WindowSpaceErrorCode } from 'window-space'
const config = new WindowSpaceConfig('/tmp/x', WindowSpace.uniform({ origin: 0n, windowDuration: 60_000, windowCount: 10 }))
export function loop(): TradeRow {
  const { controller } = WindowSpaceController.bootstrap(config)
  const claim: Claim = controller.markPending('SPY', 0, SlotKind.Trade(TradeSlotKind.OptionTrade), { leaseMs: 1000 })
  const version: number = controller.setOptionTradeRef('SPY', 0, { payloadType: 'Json', payloadId: 0, version: claim.version, checksum: 1n })
  const code: WindowSpaceErrorCode = new SlotBusyError('x').code
  void version; void code
  return controller.getTradeRow('SPY', 0)
}
`,
    )
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { strict: true, noEmit: true, module: 'commonjs', moduleResolution: 'node', target: 'ES2022', lib: ['ES2022', 'ESNext.Disposable', 'DOM'], types: [], skipLibCheck: false, typeRoots: [join(root, 'node_modules', '@types')] },
        files: ['consumer.ts'],
      }),
    )
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
    let out = ''
    try {
      out = execFileSync(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json'), '--types', 'node'], { cwd: dir, encoding: 'utf8', stdio: 'pipe' })
    } catch (e) {
      out = String((e as { stdout?: string }).stdout ?? e)
    }
    expect(out).toBe('')
  })
})
