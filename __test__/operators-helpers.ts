// Shared by the operator suites (operators-*.test.ts): the built command run
// as a child process, engines (fixtures/ops-engine.mjs) working beside it,
// and small readers of what they leave on disk.
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { WindowSpace, WindowSpaceConfig, WindowSpaceController } from '../src/index'

export const root = join(__dirname, '..')
export const cli = join(root, 'dist', 'cli.js')
const engineScript = join(__dirname, 'fixtures', 'ops-engine.mjs')

export interface Run {
  status: number | null
  signal?: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Runs the built command to its end (stdin a pipe, not a terminal). */
export function ws(...args: string[]): Run {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', input: '', maxBuffer: 1 << 28 })
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr }
}

/** Starts the built command; `done` resolves when it exits. */
export function wsStart(args: string[], options: SpawnOptions = {}): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options })
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (b: Buffer) => (stdout += b.toString()))
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()))
  const done = new Promise<Run>((resolve) => child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr })))
  return { child, done }
}

/** Runs the built command without blocking the test's event loop (engines report meanwhile). */
export function wsAsync(...args: string[]): Promise<Run> {
  return wsStart(args).done
}

/** A fresh scratch directory under the system's temp directory. */
export function scratch(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `ws-${prefix}-`))
}

export function removeScratch(dir: string): void {
  rmSync(dir, { recursive: true, force: true })
}

/** A state directory with `symbols`, windows of 1 s from the epoch unless said otherwise. */
export function makeState(dir: string, symbols: string[], windowCount = 64, origin = 0, windowDuration = 1000): string {
  mkdirSync(dir, { recursive: true })
  const { controller } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, WindowSpace.uniform({ origin, windowDuration, windowCount })))
  for (const s of symbols) controller.resolveSymbol(s)
  controller.close()
  return dir
}

export interface EngineArgs {
  stateDir: string
  symbol: string
  slot?: 'optionTrade' | 'underlyingTrade' | 'optionQuote' | 'greeks'
  from: number
  to: number
  leaseMs?: number
  slowEvery?: number
  gapMs?: number
  clearEvery?: number
  forceClearEvery?: number
  newSymbolEvery?: number
  stopFile?: string
  log?: string
  seed?: number
  untied?: boolean
  readyFile?: string
  bytes?: number
  holdBeforeWrite?: string
  holdAfterWrite?: string
  startWhenCollecting?: boolean
  startDelayMs?: number
  adminLoop?: boolean
  auditLines?: number
}

export interface EngineStats {
  claims: number
  fills: number
  conflicts: number
  clears: number
  forceClears: number
  symbols: number
  claimBound: boolean
}

/** A child process running fixtures/ops-engine.mjs; `done` resolves with its stats (rejects if it failed). */
export function startEngine(args: EngineArgs): { child: ChildProcess; done: Promise<EngineStats> } {
  const child = spawn(process.execPath, [engineScript, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (b: Buffer) => (out += b.toString()))
  child.stderr.on('data', (b: Buffer) => (err += b.toString()))
  const done = new Promise<EngineStats>((resolve, reject) =>
    child.on('close', (code, signal) => (code === 0 ? resolve(JSON.parse(out) as EngineStats) : reject(new Error(`engine exited ${code ?? signal}: ${err}`)))),
  )
  return { child, done }
}

/** Engines that run until their stop file exists. */
export function startFleet(n: number, base: Omit<EngineArgs, 'stopFile' | 'seed'>, stopFile: string): { done: Promise<EngineStats[]>; stop: () => Promise<EngineStats[]> } {
  const engines = Array.from({ length: n }, (_, i) => startEngine({ ...base, stopFile, seed: i + 1 }))
  const done = Promise.all(engines.map((e) => e.done))
  return {
    done,
    stop: () => {
      writeFileSync(stopFile, '')
      return done
    },
  }
}

/** Waits (without blocking the event loop) until `f` holds; fails after `limitMs`. */
export async function until(f: () => boolean, what: string, limitMs = 30_000): Promise<void> {
  const end = Date.now() + limitMs
  while (!f()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 2))
  }
}

/** The JSON lines of a file (none if it does not exist). */
export function jsonLines<T = Record<string, unknown>>(file: string): T[] {
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as T)
}

/** Every regular file under `dir`, relative, with its bytes and modification time. */
export function snapshot(dir: string): Map<string, { bytes: Buffer; mtimeMs: number }> {
  const m = new Map<string, { bytes: Buffer; mtimeMs: number }>()
  const walk = (d: string, rel: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      const r = rel ? `${rel}/${e.name}` : e.name
      if (e.isDirectory()) walk(p, r)
      else if (e.isFile()) m.set(r, { bytes: readFileSync(p), mtimeMs: statSync(p).mtimeMs })
    }
  }
  walk(dir, '')
  return m
}

/** Whether this process may mount file systems (root with the capability, not in a restricted container). */
export function canMount(): boolean {
  const probe = scratch('mount-probe')
  try {
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { encoding: 'utf8' })
    if (r.status !== 0) return false
    spawnSync('umount', [probe])
    return true
  } finally {
    removeScratch(probe)
  }
}

/** Whether `chattr +i` works here (root on a file system with the immutable flag). */
export function canChattr(): boolean {
  const probe = scratch('chattr-probe')
  const f = join(probe, 'f')
  writeFileSync(f, '')
  try {
    if (spawnSync('chattr', ['+i', f]).status !== 0) return false
    spawnSync('chattr', ['-i', f])
    return true
  } finally {
    removeScratch(probe)
  }
}
