/** A running throwaway PostgreSQL server (`pg-server.mjs`). */
export interface PgServer {
  /** `postgresql://postgres@<socket dir>:<port>/postgres` */
  readonly url: string
  readonly dir: string
  readonly bin: string
  readonly user: string | undefined
  /** Restarts the server in immediate mode (same data, same socket). */
  restart(): void
  /** Stops the server and deletes its directory. */
  stop(): void
}

/** Starts a server in a new temporary directory. */
export function startPgServer(options?: { port?: number; settings?: string[] }): Promise<PgServer>
