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

/**
 * Starts a server in a new temporary directory. `listen`: TCP addresses to
 * listen on as well as the socket; `trust`: client networks (CIDR) allowed
 * in over TCP without a password.
 */
export function startPgServer(options?: { port?: number; settings?: string[]; listen?: string[]; trust?: string[] }): Promise<PgServer>
