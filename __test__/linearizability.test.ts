// Every slot behaves as one atomic object, whatever runs beside it: engines
// (four processes, or four worker threads of one process) do random claims
// with short leases (so claims are taken over), renewals, fills of their own
// claims and of claims they only saw (two fills of one claim race), clears,
// force-clears, retires and reads on eight slots, and record every call with
// its invoke and response instants (fixtures/lin-worker.mjs). The recorded
// history must be linearizable against the slot model (support/slot-model.ts)
// slot by slot, including a read of every slot after all engines stopped.
// Runs: undisturbed; with engines SIGKILLed at random moments and replaced
// (a call cut short may have taken effect or not); with engines SIGSTOPped
// for longer than any lease and continued (one of them holding a claim,
// whose fill must then be refused). A history from the real library with
// one answer altered must be rejected.
//
// WS_LIN_OPS (operations per engine) and WS_LIN_KILLS (kills in the crash
// run) raise the size for soak runs (npm run soak).
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { WindowSpace, WindowSpaceConfig, WindowSpaceController, WindowSpaceError, type SlotKindName } from '../src/index'
import { processState } from './journal-helpers'
import { check } from './support/linearizability'
import { bySlot, makeSlotModel, operationsOf, readLines, type Death, type SlotInput, type SlotOperation, type SlotOutput, type SlotView } from './support/slot-model'

const WORKER = join(__dirname, 'fixtures', 'lin-worker.mjs')
const OPS = Number(process.env.WS_LIN_OPS ?? 500)
const KILLS = Number(process.env.WS_LIN_KILLS ?? 6)
const SYMBOLS = ['LIN-A', 'LIN-B']
const WINDOWS = [0, 1]
const KINDS: SlotKindName[] = ['optionTrade', 'greeks']
/** Leases of 0 and 1 ms expire at once: the next claim of the slot is a takeover. */
const LEASES = [0, 1, 5, 20]
const MAX_LEASE = Math.max(...LEASES)
const RETIRABLE = ['LIN-B/1/greeks']
/** Exactly the windows the engines use: a batch claim scans them all. */
const SCHEDULE = WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: WINDOWS.length })
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ws-lin-'))
  const { controller } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, SCHEDULE))
  for (const s of SYMBOLS) controller.resolveSymbol(s)
  controller.close()
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

interface Engine {
  readonly name: string
  readonly history: string
  readonly child: ChildProcess
  /** What it printed, one JSON value a line. */
  readonly printed: () => Record<string, unknown>[]
  /** Resolves when it has exited: its code or signal, what it wrote to stderr, and when its end was seen. */
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; death: Death }>
}

function engine(name: string, seed: number, extra: Record<string, unknown> = {}): Engine {
  const history = join(dir, `history-${name}`)
  const args = { stateDir: dir, name, seed, ops: OPS, symbols: SYMBOLS, windows: WINDOWS, kinds: KINDS, retirable: RETIRABLE, leases: LEASES, history, ...extra }
  const child = spawn(process.execPath, [WORKER, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let stderr = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (stderr += d))
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; death: Death }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, stderr, death: { t: process.hrtime.bigint(), ms: Date.now() } })),
  )
  const printed = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
  return { name, history, child, printed, exit }
}

/** Lets the engines go together once each has opened the directory (the barrier in lin-worker.mjs). */
async function release(engines: readonly Engine[], readyFiles: readonly string[]) {
  let gone: Engine | undefined
  for (const e of engines) void e.exit.then(() => (gone ??= e))
  while (!readyFiles.every((f) => existsSync(f))) {
    if (gone) throw new Error(`${gone.name} ended before it was ready:\n${(await gone.exit).stderr}`)
    await sleep(2)
  }
  writeFileSync(join(dir, 'go'), '')
}

/** The operations of finished engines; a killed engine's open calls may have taken effect until its death was seen. */
async function operationsOfEngines(engines: readonly Engine[], killed: ReadonlySet<Engine>): Promise<SlotOperation[]> {
  const ops: SlotOperation[] = []
  for (const e of engines) {
    const { code, signal, stderr, death } = await e.exit
    if (killed.has(e)) expect(signal, `${e.name} was killed`).toBe('SIGKILL')
    else expect({ code, signal }, `${e.name} failed:\n${stderr}`).toEqual({ code: 0, signal: null })
    ops.push(...operationsOf(e.name, readLines(e.history), killed.has(e) ? death : null))
  }
  return ops
}

function view(s: { status: SlotView['status']; version: number; payloadType: number; payloadId: number; checksum: bigint; leaseExpiresAt: number | null }): SlotView {
  return { status: s.status, version: s.version, payloadType: s.payloadType, payloadId: s.payloadId, checksum: s.checksum.toString(), leaseExpiresAt: s.leaseExpiresAt }
}

/** Records one call of this test process as an operation of `client` on one slot; `input` gets the wall clock at its call and return. */
function recorded(client: string, slot: string, input: (clock: { fromMs: number; toMs: number }) => SlotInput, call: () => SlotOutput): SlotOperation {
  const t = process.hrtime.bigint()
  const fromMs = Date.now()
  let output: SlotOutput
  try {
    output = call()
  } catch (e) {
    if (!(e instanceof WindowSpaceError)) throw e
    const slotOf = (e as { slot?: Parameters<typeof view>[0] }).slot
    output = { kind: 'refused', code: e.code, slot: slotOf ? view(slotOf) : null }
  }
  const ret = process.hrtime.bigint()
  return { slot, client, input: input({ fromMs, toMs: Date.now() }), output, call: t, ret, optional: false }
}

/** A read of every slot once every engine has stopped: the final state must be one the model allows. */
function finalReads(): SlotOperation[] {
  const { controller: c } = WindowSpaceController.openExisting(dir)
  try {
    return SYMBOLS.flatMap((s) => WINDOWS.flatMap((w) => KINDS.map((k) => recorded('final', `${s}/${w}/${k}`, () => ({ op: 'read' }), () => ({ kind: 'slot', slot: view(c.getSlot(s, w, k)) })))))
  } finally {
    c.close()
  }
}

/** Configurations the checker searched, over every check of this file. */
let searched = 0

/** Checks every slot's history; returns the explanations of those that are not linearizable. */
function failures(ops: readonly SlotOperation[]): string[] {
  const model = makeSlotModel()
  const out: string[] = []
  for (const [slot, list] of bySlot(ops)) {
    const r = check(model, list, { object: `slot ${slot}` })
    searched += r.configurations
    if (!r.ok) out.push(r.explanation)
  }
  return out
}

/** How many calls overlap in time a call of another engine on the same slot. */
function overlapping(ops: readonly SlotOperation[]): number {
  let n = 0
  for (const list of bySlot(ops.filter((op) => op.input.op !== 'reserve')).values()) {
    const sorted = [...list].sort((x, y) => (x.call < y.call ? -1 : x.call > y.call ? 1 : 0))
    for (let i = 0; i < sorted.length; i++) {
      const a = sorted[i]!
      const aEnd = a.ret ?? a.call
      const near = (b: SlotOperation) => b.client !== a.client && b.call <= aEnd && (b.ret ?? b.call) >= a.call
      let hit = false
      for (let j = i + 1; j < sorted.length && sorted[j]!.call <= aEnd && !hit; j++) hit = near(sorted[j]!)
      for (let j = i - 1; j >= 0 && !hit && i - j < 64; j--) hit = near(sorted[j]!)
      if (hit) n++
    }
  }
  return n
}

/** Counts that show the run did what it is for. */
function tally(ops: readonly SlotOperation[]) {
  const claims = new Map<string, Set<number>>()
  for (const op of ops) {
    if (op.output?.kind === 'claimed') {
      const s = claims.get(op.slot) ?? new Set<number>()
      s.add(op.output.version)
      claims.set(op.slot, s)
    }
  }
  // A claim of version v where another claim made v - 1 took a Pending slot over.
  let takeovers = 0
  for (const versions of claims.values()) for (const v of versions) if (versions.has(v - 1)) takeovers++
  const count = (f: (op: SlotOperation) => boolean) => ops.filter(f).length
  return {
    operations: count((op) => op.input.op !== 'reserve'),
    claims: count((op) => op.output?.kind === 'claimed'),
    takeovers,
    fills: count((op) => op.input.op === 'fill' && op.output?.kind === 'version'),
    refusedFills: count((op) => op.input.op === 'fill' && op.output?.kind === 'refused'),
    reads: count((op) => op.output?.kind === 'slot'),
    open: count((op) => op.optional && op.input.op !== 'reserve'),
    overlapping: overlapping(ops),
    searched,
  }
}

function expectLinearizable(ops: readonly SlotOperation[]) {
  searched = 0
  const found = failures(ops)
  expect(found.length, found.join('\n\n')).toBe(0)
  const t = tally(ops)
  expect(t.claims, JSON.stringify(t)).toBeGreaterThan(0)
  expect(t.takeovers, JSON.stringify(t)).toBeGreaterThan(0)
  expect(t.fills, JSON.stringify(t)).toBeGreaterThan(0)
  expect(t.refusedFills, JSON.stringify(t)).toBeGreaterThan(0)
  expect(t.reads, JSON.stringify(t)).toBeGreaterThan(0)
  return t
}

/** Four engines (processes, or worker threads of one process) run to their end undisturbed. */
async function plainRun(threads: boolean): Promise<SlotOperation[]> {
  const engines = threads ? [engine('threads', 1, { threads: 4 })] : [0, 1, 2, 3].map((p) => engine(`p${p}`, p + 1))
  const histories = threads ? [0, 1, 2, 3].map((t) => ({ name: `threads.t${t}`, file: `${engines[0]!.history}.t${t}` })) : engines.map((e) => ({ name: e.name, file: e.history }))
  await release(engines, histories.map((h) => `${h.file}.ready`))
  for (const e of engines) {
    const { code, signal, stderr } = await e.exit
    expect({ code, signal }, `${e.name} failed:\n${stderr}`).toEqual({ code: 0, signal: null })
  }
  const ops = histories.flatMap((h) => operationsOf(h.name, readLines(h.file), null))
  return [...ops, ...finalReads()]
}

describe('each slot is linearizable', () => {
  it.each([
    ['four processes', false],
    ['four worker threads of one process', true],
  ] as const)('with %s racing on eight slots', async (_shape, threads) => {
    console.log(JSON.stringify(expectLinearizable(await plainRun(threads))))
  })

  it('with processes SIGKILLed at random moments and replaced', async () => {
    let seed = 100
    const rand = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32)
    let generation = 0
    const start = (p: number) => engine(`p${p}.${generation++}`, 1000 + generation, { ops: OPS * 4 })
    const running = new Map<number, Engine>([0, 1, 2, 3].map((p) => [p, start(p)]))
    const all = [...running.values()]
    await release(all, all.map((e) => `${e.history}.ready`))
    const killed = new Set<Engine>()
    const ended = new Set<Engine>()
    for (const e of all) void e.exit.then(() => ended.add(e))
    for (let k = 0; k < KILLS; k++) {
      const p = Math.floor(rand() * 4)
      const victim = running.get(p)!
      // Kill it once it is recording, at a random instant of its work.
      while (!ended.has(victim) && statOrZero(victim.history) === 0) await sleep(2)
      await sleep(rand() * 30)
      if (ended.has(victim)) continue
      victim.child.kill('SIGKILL')
      // It may have ended on its own a moment before (its exit not yet seen): then it was not killed.
      if ((await victim.exit).signal === 'SIGKILL') killed.add(victim)
      const next = start(p)
      void next.exit.then(() => ended.add(next))
      running.set(p, next)
      all.push(next)
    }
    expect(killed.size, 'engines killed').toBeGreaterThan(0)
    const ops = await operationsOfEngines(all, killed)
    const t = expectLinearizable([...ops, ...finalReads()])
    console.log(`${killed.size} engines killed; ${JSON.stringify(t)}`)
  }, 300_000)

  it('with processes SIGSTOPped for longer than any lease, one of them holding a claim whose fill must be refused', async () => {
    const holder = engine('p0', 7, { stopAfterClaim: Math.floor(OPS / 4) })
    const others = [1, 2, 3].map((p) => engine(`p${p}`, 7 + p))
    await release([holder, ...others], [holder, ...others].map((e) => `${e.history}.ready`))
    const ours: SlotOperation[] = []
    // The holder stops itself right after a claim; once its lease has expired,
    // this process takes the claim over (or finds that another engine has).
    while (!holder.printed().some((o) => o.held) || processState(holder.child.pid!) !== 'T') {
      expect(processState(holder.child.pid!), 'the holder ended before stopping').not.toBeNull()
      await sleep(2)
    }
    const held = holder.printed().find((o) => o.held)!.held as { s: string; w: number; k: SlotKindName; version: number; leaseExpiresAt: number }
    const slot = `${held.s}/${held.w}/${held.k}`
    const { controller: c } = WindowSpaceController.openExisting(dir)
    try {
      for (;;) {
        await sleep(Math.max(0, held.leaseExpiresAt + 20 - Date.now()))
        const lease = 50
        const op = recorded('test', slot, (clock) => ({ op: 'claim', leaseMs: lease, ...clock }), () => {
          const g = c.markPending(held.s, held.w, held.k, { leaseMs: lease })
          return { kind: 'claimed', version: g.version, leaseExpiresAt: g.leaseExpiresAt }
        })
        ours.push(op)
        // Busy at the held version: the core's clock has not passed the deadline yet.
        if (!(op.output?.kind === 'refused' && op.output.code === 'ERR_SLOT_BUSY' && op.output.slot?.version === held.version)) break
      }
    } finally {
      c.close()
    }
    // Meanwhile: the other engines are stopped, one at a time, for longer than any lease.
    let seed = 5
    const rand = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32)
    const stopping = (async () => {
      for (let k = 0; k < 3; k++) {
        const e = others[Math.floor(rand() * others.length)]!
        await sleep(rand() * 20)
        if (!e.child.kill('SIGSTOP')) continue
        await sleep(MAX_LEASE * 5)
        e.child.kill('SIGCONT')
      }
    })()
    holder.child.kill('SIGCONT')
    await stopping
    const ops = await operationsOfEngines([holder, ...others], new Set())
    const stale = holder.printed().find((o) => o.staleFill)?.staleFill as SlotOutput | undefined
    expect(stale, 'the holder’s fill after it was continued').toMatchObject({ kind: 'refused', code: 'ERR_VERSION_CONFLICT' })
    console.log(JSON.stringify(expectLinearizable([...ops, ...ours, ...finalReads()])))
  }, 300_000)

  it('rejects a history of the real library with one answer altered', async () => {
    const ops = await plainRun(false)
    expect(failures(ops)).toEqual([])
    // A read of a Filled slot that reports the checksum another fill wrote.
    const readIdx = ops.findIndex((op) => op.output?.kind === 'slot' && op.output.slot.status === 'Filled')
    expect(readIdx, 'a read of a Filled slot').toBeGreaterThanOrEqual(0)
    const read = ops[readIdx]!
    const other = ops.find((op) => op.input.op === 'fill' && op.output?.kind === 'version' && op.input.checksum !== (read.output as { slot: SlotView }).slot.checksum)!
    const swapped = [...ops]
    const slotView = (read.output as { slot: SlotView }).slot
    swapped[readIdx] = { ...read, output: { kind: 'slot', slot: { ...slotView, checksum: (other.input as { checksum: string }).checksum } } }
    const found = failures(swapped)
    expect(found.length).toBe(1)
    expect(found[0]).toContain(`slot ${read.slot}: not linearizable`)
    // A claim refused as busy, altered into a grant of the version its holder
    // got (with a deadline its own lease and clock allow).
    const busyIdx = ops.findIndex((op) => op.output?.kind === 'refused' && op.output.code === 'ERR_SLOT_BUSY')
    expect(busyIdx, 'a claim refused as busy').toBeGreaterThanOrEqual(0)
    const busy = ops[busyIdx]!
    const holderSlot = (busy.output as { slot: SlotView }).slot
    const doubled = [...ops]
    const claimInput = busy.input as Extract<SlotInput, { op: 'claim' }>
    doubled[busyIdx] = { ...busy, output: { kind: 'claimed', version: holderSlot.version, leaseExpiresAt: claimInput.fromMs + claimInput.leaseMs } }
    const twice = failures(doubled)
    expect(twice.length).toBe(1)
    expect(twice[0]).toContain(`slot ${busy.slot}: not linearizable`)
    console.log(`${found[0]}\n\n${twice[0]}`)
  }, 300_000)
})

function statOrZero(file: string): number {
  try {
    return statSync(file).size
  } catch {
    return 0
  }
}
