// Runs the engine example of README.md, as written there, against a fresh
// state directory, and checks what it did.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as ts from 'typescript'
import { afterEach, describe, expect, it } from 'vitest'

import * as windowSpace from '../src/index'

const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8')
const example = /## An engine[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1]

describe('README engine example', () => {
  let dir: string
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('runs as written and fills the first eight windows', () => {
    expect(example).toBeDefined()
    dir = mkdtempSync(join(tmpdir(), 'ws-readme-'))
    const body = example!.replace(/^import[\s\S]*?from 'window-space'\n/m, '')
    const js = ts.transpileModule(body, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText
    const logs: unknown[] = []
    // The point of this test is to run the README's code as written.
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    const run = new Function('stateDir', 'ws', 'console', `const { ${Object.keys(windowSpace).join(', ')} } = ws;\n${js}`) as (
      stateDir: string,
      ws: typeof windowSpace,
      console: { log: (...a: unknown[]) => void },
    ) => void
    run(dir, windowSpace, { log: (...a: unknown[]) => logs.push(...a) })
    expect(logs).toEqual(['Filled'])

    const { controller } = windowSpace.WindowSpaceController.bootstrap(
      new windowSpace.WindowSpaceConfig(dir, windowSpace.WindowSpace.uniform({ origin: Date.UTC(2026, 10, 24, 14, 30), windowDuration: 60_000, windowCount: 390 })),
    )
    try {
      expect(controller.nextUnfilledWindow('SPY', 0, 'optionTrade')).toBe(8)
      expect(controller.payloadStores().trades.length).toBe(8)
      const rec = controller.payloadStores().trades.get(3)!
      expect(rec.uri).toBe('artifacts/SPY/optionTrade/3/v1/option-trades.json')
      expect(controller.getTradeRow('SPY', 3).optionTrade).toMatchObject({ status: 'Filled', payloadId: 3, checksum: rec.checksum })
    } finally {
      controller.close()
    }
  })
})
