/**
 * The two backends of the `Ledger` contract, each opened fresh for a test:
 * the mmap backend over a new state directory, the PostgreSQL backend as a
 * new window space on the run's throwaway server (`WS_PG_URL`, started by
 * `pg-global-setup.ts`).
 *
 * @module
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import pg from 'pg'

import { WindowSpace, WindowSpaceConfig, WindowSpaceController, type Ledger } from '../../src/index'

export interface Backend {
  readonly name: 'mmap' | 'postgres'
  /** A new, empty ledger with `windowCount` one-minute windows. */
  open(windowCount: number, options?: { defaultLeaseMs?: number; actor?: string }): Promise<Ledger>
  /** Closes every ledger opened, removes their files. */
  cleanup(): Promise<void>
}

let spaces = 0

/** The URL of the run's PostgreSQL server. */
export function pgUrl(): string {
  const url = process.env.WS_PG_URL
  if (!url) throw new Error('WS_PG_URL is not set: the vitest global setup starts a server and sets it')
  return url
}

/**
 * A connected plain `pg` client as the superuser, on the run's server or on
 * the server at `url` (its socket directory as host): another session of
 * the database, for tests that hold transactions or locks of their own.
 */
export async function pgClient(url: string = pgUrl()): Promise<pg.Client> {
  const u = new URL(url)
  const c = new pg.Client({ host: decodeURIComponent(u.hostname), port: Number(u.port), user: 'postgres', database: 'postgres' })
  await c.connect()
  return c
}

/** A window-space name no other test uses. */
export function uniqueSpace(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now()}-${++spaces}`
}

export function schedule(windowCount: number) {
  return WindowSpace.uniform({ origin: Date.UTC(2026, 0, 5, 14, 30), windowDuration: 60_000, windowCount })
}

function mmap(): Backend {
  const dirs: string[] = []
  const open: Ledger[] = []
  return {
    name: 'mmap',
    open(windowCount, options = {}) {
      const dir = mkdtempSync(join(tmpdir(), 'ws-conf-'))
      dirs.push(dir)
      const { controller } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, schedule(windowCount), options))
      const l = controller.asLedger()
      open.push(l)
      return Promise.resolve(l)
    },
    async cleanup() {
      for (const l of open.splice(0)) await l.close()
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
    },
  }
}

function postgres(): Backend {
  const open: Ledger[] = []
  return {
    name: 'postgres',
    async open(windowCount, options = {}) {
      const l = await WindowSpaceController.connect(pgUrl(), { windowSpace: schedule(windowCount), space: uniqueSpace('conf'), pollMs: 100, ...options })
      open.push(l)
      return l
    },
    async cleanup() {
      for (const l of open.splice(0)) await l.close()
    },
  }
}

export const BACKENDS: readonly Backend[] = [mmap(), postgres()]
