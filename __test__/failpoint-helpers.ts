// Driving a child process to a named crash point of the core (its
// `failpoint!` lines, listed by `failpoints()` of the addon): the child gets
// WINDOW_SPACE_FAILPOINTS="<point>=stop" (or `kill`, or an action of the
// `fail` crate) and the addon arms it when it loads. A child told to stop
// sends itself SIGSTOP there; `stoppedAt` resolves once /proc says so, and
// the test then looks at the others, continues it (SIGCONT) or kills it
// (SIGKILL). Only the debug addon (`npm run build:debug`, feature
// `failpoints`) has the points.
import { readFileSync } from 'node:fs'
import type { ChildProcess } from 'node:child_process'

import { native } from '../src/native'

/** The environment variable the addon reads when it loads. */
export const FAILPOINTS_ENV = 'WINDOW_SPACE_FAILPOINTS'

/** Fails the suite at once when the addon lacks one of `points` (a build without the `failpoints` feature has none). */
export function requireFailpoints(...points: string[]): void {
  const have = new Set(native.failpoints())
  const missing = points.filter((p) => !have.has(p))
  if (missing.length) {
    throw new Error(`the addon has no crash point ${missing.join(', ')}: these tests need the addon \`npm run build:debug\` builds (feature failpoints)`)
  }
}

/** This process's environment for a child: `spec` as WINDOW_SPACE_FAILPOINTS, or none. */
export function failpointEnv(spec?: string): NodeJS.ProcessEnv {
  const env = { ...process.env }
  if (spec) env[FAILPOINTS_ENV] = spec
  else delete env[FAILPOINTS_ENV]
  return env
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** The state letter of a process (`R`, `S`, `T` for stopped, `Z`, ...), or null once it is gone. */
export function processState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? null
  } catch {
    return null
  }
}

/**
 * Resolves once `child` has stopped itself (at the point its environment
 * armed); rejects if it exits first. `describe` says what it was doing, for
 * the error.
 */
export async function stoppedAt(child: ChildProcess, describe: () => string): Promise<void> {
  let exited = false
  child.once('exit', () => (exited = true))
  // Backstop only: a child reaches its point within a second of starting.
  for (let i = 0; i < 6000; i++) {
    if (processState(child.pid!) === 'T') return
    if (exited || child.exitCode !== null || child.signalCode !== null) throw new Error(`the child exited before it stopped:\n${describe()}`)
    await sleep(10)
  }
  throw new Error(`the child never stopped:\n${describe()}`)
}
