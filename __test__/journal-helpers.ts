// Helpers of the change-journal suites: writer processes that stop
// themselves at a named step of a transition (the core's crash points
// `journal::<step>`, armed through WINDOW_SPACE_FAILPOINTS).
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'

import { failpointEnv, requireFailpoints, stoppedAt } from './failpoint-helpers'

export { processState, sleep } from './failpoint-helpers'

export const WRITER = join(__dirname, 'fixtures', 'journal-writer.mjs')

/** The steps of journaling one transition, in order: the core's crash points `journal::<step>`. */
export const STEPS = ['cell-taken', 'numbered', 'reserved', 'changed', 'committed'] as const
export type Step = (typeof STEPS)[number]

/** Fails the suite at once when the addon lacks the journal's crash points. */
export function requireJournalPoints(): void {
  requireFailpoints(...STEPS.map((s) => `journal::${s}`))
}

export interface WriterOp {
  op: 'claim' | 'fill' | 'clear' | 'forceClear' | 'retire'
  symbol: string
  window: number
  kind: string
  version?: number
}

export interface Writer {
  child: ChildProcess
  /** Resolves once the process has stopped itself at its step. */
  stopped: Promise<void>
  /** Resolves when it exits: its exit code or signal and what it printed. */
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; results: Record<string, unknown>[]; stderr: string }>
}

/** Starts a writer process running `ops`; with `stopAt` it stops itself at that step of its first transition (its `nth` one). */
export function writer(stateDir: string, ops: WriterOp[], stopAt?: Step, nth = 1): Writer {
  const env = failpointEnv(stopAt ? `journal::${stopAt}=stop(${nth})` : undefined)
  const child = spawn(process.execPath, [WRITER, JSON.stringify({ stateDir, ops })], { stdio: ['ignore', 'pipe', 'pipe'], env })
  let out = ''
  let stderr = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (stderr += d))
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; results: Record<string, unknown>[]; stderr: string }>((resolve) =>
    child.once('close', (code, signal) =>
      resolve({
        code,
        signal,
        results: out
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Record<string, unknown>),
        stderr,
      }),
    ),
  )
  const stopped = stoppedAt(child, () => `a writer to stop at journal::${stopAt}:\n${out}\n${stderr}`)
  stopped.catch(() => undefined)
  return { child, stopped, exit }
}

/** A promise and whether it has settled yet. */
export function watched<T>(p: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let settled = false
  const promise = p.finally(() => (settled = true))
  promise.catch(() => undefined)
  return { promise, settled: () => settled }
}
