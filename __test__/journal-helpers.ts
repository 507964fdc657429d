// Helpers of the change-journal suites: writer processes that stop
// themselves at a named step of a transition (the addon's test hooks,
// WINDOW_SPACE_TEST_JOURNAL), and a look at a process's state in /proc.
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import { native } from '../src/native'

export const WRITER = join(__dirname, 'fixtures', 'journal-writer.mjs')
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** The steps of journaling one transition, in order (core `journal::hooks::Step`). */
export const STEPS = ['cell-taken', 'numbered', 'reserved', 'changed', 'committed'] as const
export type Step = (typeof STEPS)[number]

/** Fails the suite at once when the addon was built without the test stops. */
export function requireTestHooks(): void {
  if (!native.journalTestHooks()) {
    throw new Error('these tests stop writers at named steps: they need the addon `npm run build:debug` builds (feature test-hooks)')
  }
}

/** The state letter of a process (`R`, `S`, `T` for stopped, `Z`, ...), or null once it is gone. */
export function processState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? null
  } catch {
    return null
  }
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

/** Starts a writer process running `ops`; with `stopAt` it stops itself at that step of its first transition. */
export function writer(stateDir: string, ops: WriterOp[], stopAt?: Step): Writer {
  const env = { ...process.env }
  if (stopAt) env.WINDOW_SPACE_TEST_JOURNAL = `stop@${stopAt}`
  else delete env.WINDOW_SPACE_TEST_JOURNAL
  const child = spawn(process.execPath, [WRITER, JSON.stringify({ stateDir, ops })], { stdio: ['ignore', 'pipe', 'pipe'], env })
  let out = ''
  let stderr = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (stderr += d))
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; results: Record<string, unknown>[]; stderr: string }>((resolve) =>
    child.once('exit', (code, signal) =>
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
  let exited = false
  void exit.then(() => (exited = true))
  const stopped = (async () => {
    // Backstop only: a writer reaches its step within milliseconds of starting.
    for (let i = 0; i < 6000; i++) {
      if (processState(child.pid!) === 'T') return
      if (exited) throw new Error(`the writer exited before stopping at ${stopAt}:\n${out}\n${stderr}`)
      await sleep(10)
    }
    throw new Error(`the writer never stopped at ${stopAt}`)
  })()
  return { child, stopped, exit }
}

/** A promise and whether it has settled yet. */
export function watched<T>(p: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let settled = false
  const promise = p.finally(() => (settled = true))
  promise.catch(() => undefined)
  return { promise, settled: () => settled }
}
