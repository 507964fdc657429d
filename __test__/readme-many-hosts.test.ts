// Runs the "Many hosts" example of README.md, as written there, with a
// fresh state directory and a new window space on the test run's
// PostgreSQL server: the same engine publishes eight windows on each.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as ts from 'typescript'
import { afterEach, describe, expect, it } from 'vitest'

import * as windowSpace from '../src/index'
import { pgUrl, uniqueSpace } from './support/backends'

const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8')
const example = /## Many hosts[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1]

describe('README many-hosts example', () => {
  let dir: string
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('runs as written on both backends and publishes eight windows on each', async () => {
    expect(example).toBeDefined()
    dir = mkdtempSync(join(tmpdir(), 'ws-readme-hosts-'))
    const body = example!.replace(/^import[\s\S]*?from 'window-space'\n/m, '')
    const js = ts.transpileModule(`(async () => {\n${body}\n})()`, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText
    const logs: unknown[] = []
    // A database URL whose space name no other test uses: the example names 'options-desk'.
    const url = pgUrl()
    const space = uniqueSpace('options-desk')
    const ws = { ...windowSpace, WindowSpaceController: Object.assign(Object.create(windowSpace.WindowSpaceController) as typeof windowSpace.WindowSpaceController, {
      connect: (u: string, c: windowSpace.PostgresOptions) => windowSpace.WindowSpaceController.connect(u, { ...c, space }),
    }) }
    // The point of this test is to run the README's code as written.
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    const run = new Function('stateDir', 'databaseUrl', 'ws', 'console', `const { ${Object.keys(windowSpace).join(', ')} } = ws;\nreturn ${js}`) as (
      stateDir: string,
      databaseUrl: string,
      w: typeof windowSpace,
      console: { log: (...a: unknown[]) => void },
    ) => Promise<void>
    await run(dir, url, ws, { log: (...a: unknown[]) => logs.push(...a) })
    expect(logs).toEqual([8, 8])
    const shared = await windowSpace.WindowSpaceController.connect(url, { windowSpace: windowSpace.WindowSpace.uniform({ origin: Date.UTC(2026, 10, 24, 14, 30), windowDuration: 60_000, windowCount: 390 }), space })
    try {
      expect(await shared.nextUnfilledWindow('SPY', 0, 'optionTrade')).toBe(8)
      expect((await shared.getSlot('SPY', 7, 'optionTrade')).status).toBe('Filled')
    } finally {
      await shared.close()
    }
  })
})
