/**
 * vitest global setup: one throwaway PostgreSQL server for the whole run
 * (`scripts/pg-server.mjs`), its URL handed to the test files as
 * `WS_PG_URL`. A `WS_PG_URL` already set names a server to use instead.
 *
 * @module
 */
import { startPgServer, type PgServer } from '../../scripts/pg-server.mjs'

let server: PgServer | undefined

export async function setup(): Promise<void> {
  if (process.env.WS_PG_URL) return
  server = await startPgServer()
  process.env.WS_PG_URL = server.url
}

export function teardown(): void {
  server?.stop()
}
