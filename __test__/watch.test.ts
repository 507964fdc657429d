// Engines that wait on engines: readiness evaluated in the core,
// waitFor and watch woken through the change journal's shared futex word —
// within one process, and across processes — journal overflow reported as a
// gap, conflict details, and the audit trail of operator actions.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync, appendFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import {
  AbortError,
  ClosedError,
  CorruptStateError,
  JournalGapError,
  SlotRetiredError,
  VersionConflictError,
  WaitTimeoutError,
  WindowSpace,
  WindowSpaceConfig,
  WindowSpaceController,
  readAuditLog,
  type SlotChange,
  type SlotKindName,
  type WindowSpaceOptions,
} from '../src/index'

const WINDOWS = 64
const SCHEDULE = WindowSpace.uniform({ origin: 1_700_000_000_000, windowDuration: 60_000, windowCount: WINDOWS })
const FIXTURE = join(__dirname, 'fixtures', 'watcher-process.mjs')

let dir: string
const opened: WindowSpaceController[] = []
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ws-watch-'))
})
afterEach(() => {
  for (const c of opened.splice(0)) c.close()
  rmSync(dir, { recursive: true, force: true })
})

function open(options: WindowSpaceOptions = {}): WindowSpaceController {
  const { controller } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, SCHEDULE, options))
  opened.push(controller)
  controller.resolveSymbol('SPY')
  return controller
}

/** Claims, appends and fills one slot; returns the payload id. */
function fill(c: WindowSpaceController, symbol: string, w: number, kind: SlotKindName): number {
  const claim = c.markPending(symbol, w, kind)
  const store = kind === 'greeks' ? c.payloadStores().greeks : kind === 'aggregation' ? c.payloadStores().aggregations : c.payloadStores().quotes
  const payloadId = store.append({ symbol, windowIdx: w, slotKind: kind, payloadType: 'Json', uri: `${symbol}/${w}/${kind}`, checksum: BigInt(w + 1), size: 1 })
  c.setRef(symbol, w, kind, { payloadType: 'Json', payloadId, version: claim.version, checksum: BigInt(w + 1) })
  return payloadId
}

/** The change a `next()` result carries; undefined once the iterator is done. */
function changeOf(r: IteratorResult<SlotChange>): SlotChange | undefined {
  return r.done ? undefined : r.value
}

const INPUTS: SlotKindName[] = ['optionQuote', 'underlyingQuote']

describe('readiness', () => {
  it('isReady needs every required slot Filled, across both ledgers', () => {
    const c = open()
    expect(c.isReady('SPY', 3, INPUTS)).toBe(false)
    fill(c, 'SPY', 3, 'optionQuote')
    expect(c.isReady('SPY', 3, INPUTS)).toBe(false)
    fill(c, 'SPY', 3, 'underlyingQuote')
    expect(c.isReady('SPY', 3, INPUTS)).toBe(true)
    expect(c.isReady('SPY', 3, [...INPUTS, 'greeks'])).toBe(false)
    fill(c, 'SPY', 3, 'greeks')
    expect(c.isReady('SPY', 3, ['greeks', 'optionQuote'])).toBe(true)
    expect(c.isReady('SPY', 3, [])).toBe(true)
    expect(() => c.isReady('SPY', 3, ['nope' as SlotKindName])).toThrow(RangeError)
    expect(() => c.isReady('SPY', 3, 'greeks' as unknown as SlotKindName[])).toThrow(TypeError)
  })

  it('nextReadyWindow skips windows whose inputs are missing and whose slot is Filled, held or Retired', () => {
    const c = open()
    for (const w of [2, 5, 9, 12, 20]) for (const k of INPUTS) fill(c, 'SPY', w, k)
    fill(c, 'SPY', 2, 'greeks') // done already
    c.markPending('SPY', 5, 'greeks', { leaseMs: 60_000 }) // held by a live claim
    c.retire('SPY', 9, 'greeks') // never
    expect(c.nextReadyWindow('SPY', 0, INPUTS, 'greeks')).toBe(12)
    expect(c.nextReadyWindow('SPY', 13, INPUTS, 'greeks')).toBe(20)
    expect(c.nextReadyWindow('SPY', 21, INPUTS, 'greeks')).toBeNull()
    // An expired claim is claimable again.
    c.markPending('SPY', 12, 'greeks', { leaseMs: 0 })
    expect(c.nextReadyWindow('SPY', 0, INPUTS, 'greeks')).toBe(12)
  })

  it('claimNextReady claims exactly the ready windows, in order', () => {
    const c = open()
    const ready = [1, 4, 7, 30, 63]
    for (const w of ready) for (const k of INPUTS) fill(c, 'SPY', w, k)
    fill(c, 'SPY', 10, 'optionQuote') // half ready: not claimed
    const claims = c.claimNextReady('SPY', 0, INPUTS, 'greeks', 100)
    expect(claims.map((x) => x.windowIdx)).toEqual(ready)
    expect(claims.every((x) => x.slotKind.name === 'greeks' && x.version === 1)).toBe(true)
    expect(c.claimNextReady('SPY', 0, INPUTS, 'greeks', 100)).toEqual([])
    expect(c.getSlot('SPY', 10, 'greeks').status).toBe('Empty')
  })

  it('works for a symbol another controller added after this one opened', () => {
    const a = open()
    const b = open()
    b.resolveSymbol('LATE')
    for (const k of INPUTS) fill(b, 'LATE', 40, k)
    expect(a.nextReadyWindow('LATE', 0, INPUTS, 'greeks')).toBe(40)
    expect(a.claimNextReady('LATE', 0, INPUTS, 'greeks', 5).map((x) => x.windowIdx)).toEqual([40])
  })
})

describe('waitFor in one process', () => {
  it('resolves with the slots once another controller fills the last input', async () => {
    const waiter = open()
    const engine = open()
    const p = waiter.waitFor('SPY', 7, INPUTS, { timeoutMs: 30_000 })
    const q = fill(engine, 'SPY', 7, 'optionQuote')
    await new Promise((r) => setTimeout(r, 20))
    const u = fill(engine, 'SPY', 7, 'underlyingQuote')
    const slots = await p
    expect(slots.map((s) => s.status)).toEqual(['Filled', 'Filled'])
    expect(slots.map((s) => s.payloadId)).toEqual([q, u])
  })

  it('resolves at once when the slots are Filled already', async () => {
    const c = open()
    for (const k of INPUTS) fill(c, 'SPY', 1, k)
    expect((await c.waitFor('SPY', 1, INPUTS)).length).toBe(2)
  })

  it('rejects with SlotRetiredError when a slot is retired while waiting, carrying the slot', async () => {
    const c = open()
    const p = c.waitFor('SPY', 2, INPUTS)
    c.retire('SPY', 2, 'underlyingQuote')
    const e = await p.catch((x: unknown) => x)
    expect(e).toBeInstanceOf(SlotRetiredError)
    expect((e as SlotRetiredError).slot?.status).toBe('Retired')
  })

  it('rejects with WaitTimeoutError, AbortError, ClosedError', async () => {
    const c = open()
    await expect(c.waitFor('SPY', 3, INPUTS, { timeoutMs: 30 })).rejects.toBeInstanceOf(WaitTimeoutError)
    const ac = new AbortController()
    const p = c.waitFor('SPY', 3, INPUTS, { signal: ac.signal })
    ac.abort()
    await expect(p).rejects.toBeInstanceOf(AbortError)
    await expect(c.waitFor('SPY', 3, INPUTS, { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(AbortError)
    const d = open()
    const closing = d.waitFor('SPY', 3, INPUTS)
    d.close()
    await expect(closing).rejects.toBeInstanceOf(ClosedError)
    await expect(c.waitFor('SPY', 3, [])).rejects.toBeInstanceOf(TypeError)
    await expect(c.waitFor('SPY', 3, INPUTS, { timeoutMs: -1 })).rejects.toBeInstanceOf(RangeError)
  })
})

describe('watch in one process', () => {
  it('yields every change of another controller in order, filtered, and resumes from a sequence number', async () => {
    const c = open()
    const other = open()
    const it = c.watch({ slotKinds: ['optionQuote'] })
    fill(other, 'SPY', 4, 'optionQuote')
    fill(other, 'SPY', 4, 'underlyingQuote') // filtered out
    other.forceClear('SPY', 4, 'optionQuote')
    const got: SlotChange[] = []
    for await (const ch of it) {
      got.push(ch)
      if (got.length === 3) break
    }
    expect(got.map((g) => [g.symbol, g.windowIdx, g.slotKind, g.from, g.to, g.version])).toEqual([
      ['SPY', 4, 'optionQuote', 'Empty', 'Pending', 1],
      ['SPY', 4, 'optionQuote', 'Pending', 'Filled', 2],
      ['SPY', 4, 'optionQuote', 'Filled', 'Cleared', 3],
    ])
    expect(got[1]!.payloadId).toBe(0)
    expect(got[0]!.payloadId).toBeNull()
    expect(got[0]!.seq).toBeLessThan(got[1]!.seq)
    // Resume right after the first change: the same two follow.
    const again: SlotChange[] = []
    for await (const ch of c.watch({ slotKinds: ['optionQuote'], fromSeq: got[0]!.seq + 1 })) {
      again.push(ch)
      if (again.length === 2) break
    }
    expect(again.map((g) => g.seq)).toEqual([got[1]!.seq, got[2]!.seq])
  })

  it('a watcher the bounded journal overtook gets JournalGapError telling where to resume', async () => {
    const c = open({ journalCapacity: 64 })
    const it = c.watch()
    for (let w = 0; w < 40; w++) fill(c, 'SPY', w, 'optionQuote') // 80 changes > 64
    const e = await it.next().catch((x: unknown) => x)
    expect(e).toBeInstanceOf(JournalGapError)
    const resume = (e as JournalGapError).details.resumeSeq as number
    expect(resume).toBe(80 - 64)
    // After a rescan, watching from resumeSeq works.
    const next = await c.watch({ fromSeq: resume }).next()
    expect(changeOf(next)?.seq).toBe(resume)
  })

  it('return() ends a watch at once, also while a next() is waiting, and lets the process exit', async () => {
    const c = open()
    const it = c.watch()
    const waiting = it.next()
    await expect(it.return()).resolves.toEqual({ done: true, value: undefined })
    await expect(waiting).resolves.toEqual({ done: true, value: undefined })
    // The usual "next change or a timeout" pattern in a process of its own: it must exit by itself.
    const script = `
      const ws = require(${JSON.stringify(join(__dirname, '..', 'dist', 'index.js'))})
      const { controller: c } = ws.WindowSpaceController.openExisting(${JSON.stringify(dir)})
      const it = c.watch()
      Promise.race([it.next(), new Promise((r) => setTimeout(r, 20, 'timeout'))]).then(async (r) => {
        await it.return()
        console.log(r)
      })`
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 })
    expect(r.stdout.trim()).toBe('timeout')
    expect(r.status).toBe(0)
  })

  it('a consumer that stops pulling and falls a whole journal behind gets JournalGapError, not a growing buffer', async () => {
    const c = open({ journalCapacity: 64 })
    const it = c.watch()
    fill(c, 'SPY', 0, 'optionQuote')
    expect(changeOf(await it.next())?.to).toBe('Pending')
    for (let w = 1; w < 60; w++) {
      fill(c, 'SPY', w, 'optionQuote') // 118 more changes, with the event loop running in between
      await new Promise((r) => setImmediate(r))
    }
    // What it had read already (the Filled of window 0, in its one batch) comes first.
    expect((await it.next()).value).toMatchObject({ seq: 1, to: 'Filled' })
    await expect(it.next()).rejects.toBeInstanceOf(JournalGapError)
    await expect(it.next()).resolves.toEqual({ done: true, value: undefined })
  })

  it('a sequence number the journal never handed out (saved from a recreated journal) is a gap', async () => {
    const c = open()
    fill(c, 'SPY', 0, 'optionQuote')
    const e = await c.watch({ fromSeq: c.journalHead() + 100 }).next().catch((x: unknown) => x)
    expect(e).toBeInstanceOf(JournalGapError)
    expect((e as JournalGapError).details.resumeSeq).toBe(c.journalHead())
  })

  it('a missing journal is recreated only when no other controller has the directory open', () => {
    const a = open()
    rmSync(join(dir, 'changes.journal'))
    const e = (() => {
      try {
        WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, SCHEDULE))
      } catch (x) {
        return x
      }
    })()
    expect(e).toBeInstanceOf(CorruptStateError)
    expect((e as CorruptStateError).file).toContain('changes.journal')
    a.close()
    const b = open()
    expect(b.journalHead()).toBe(0)
  })

  it('ends with AbortError on its signal and ClosedError when the controller closes', async () => {
    const c = open()
    const ac = new AbortController()
    const it = c.watch({ signal: ac.signal })
    const p = it.next()
    ac.abort()
    await expect(p).rejects.toBeInstanceOf(AbortError)
    const d = open()
    const it2 = d.watch()
    const p2 = it2.next()
    d.close()
    await expect(p2).rejects.toBeInstanceOf(ClosedError)
  })
})

describe('conflict details', () => {
  it('a VersionConflictError carries the slot as the winner left it', () => {
    const a = open()
    const b = open()
    const stale = a.markPending('SPY', 9, 'greeks', { leaseMs: 0 })
    const win = b.markPending('SPY', 9, 'greeks')
    const id = b.payloadStores().greeks.append({ symbol: 'SPY', windowIdx: 9, slotKind: 'greeks', payloadType: 'Parquet', uri: 'g/9', checksum: 99n, size: 5 })
    b.setGreeksRef('SPY', 9, { payloadType: 'Parquet', payloadId: id, version: win.version, checksum: 99n })
    let e: unknown
    try {
      a.setGreeksRef('SPY', 9, { payloadType: 'Parquet', payloadId: id, version: stale.version, checksum: 99n })
    } catch (x) {
      e = x
    }
    expect(e).toBeInstanceOf(VersionConflictError)
    expect((e as VersionConflictError).slot).toMatchObject({ status: 'Filled', version: win.version + 1, payloadId: id, checksum: 99n })
  })
})

describe('audit trail', () => {
  it('records admin calls with actor, reason and the previous slot; takeovers; tools’ own actions', () => {
    const c = open({ actor: 'engine-7' })
    const id = fill(c, 'SPY', 1, 'optionQuote')
    c.forceClear('SPY', 1, 'optionQuote', { actor: 'alice', reason: 'bad quotes feed' })
    c.forceClear('SPY', 1, 'optionQuote') // a no-op: not recorded
    c.retireRange('SPY', { from: 10, to: 13 }, 'greeks', { reason: 'retention' })
    c.markPending('SPY', 20, 'greeks', { leaseMs: 0 })
    c.markPending('SPY', 20, 'greeks') // takes the expired claim over
    c.appendAudit('gcDelete', { uri: 'artifacts/x', payloadId: 3n }, { actor: 'gc' })
    const all = readAuditLog(dir)
    // An admin call writes its intent before it changes anything, its outcome after.
    expect(all.map((l) => `${l.action}${l.phase === 'intent' ? ' (intent)' : ''}`)).toEqual([
      'forceClear (intent)',
      'forceClear',
      'retireRange (intent)',
      'retireRange',
      'takeover',
      'gcDelete',
    ])
    expect(all[0]).toMatchObject({ actor: 'alice', reason: 'bad quotes feed', symbol: 'SPY', slot: 'optionQuote', window: 1, phase: 'intent' })
    expect(all[2]).toMatchObject({ reason: 'retention', from: 10, to: 13, slot: 'greeks', phase: 'intent' })
    const log = all.filter((l) => l.phase !== 'intent')
    const [fc, rr, to, gc] = log
    expect(fc).toMatchObject({ actor: 'alice', reason: 'bad quotes feed', symbol: 'SPY', slot: 'optionQuote', window: 1, status: 'Cleared', version: 3 })
    expect(fc!.previous).toMatchObject({ status: 'Filled', version: 2, payloadId: id, checksum: '2' })
    expect(rr).toMatchObject({ actor: 'engine-7', reason: 'retention', from: 10, to: 13, slot: 'greeks' })
    expect(rr!.changed).toEqual([
      [10, 'Empty', 0, 0],
      [11, 'Empty', 0, 0],
      [12, 'Empty', 0, 0],
    ])
    expect(to).toMatchObject({ actor: 'engine-7', window: 20, slot: 'greeks', status: 'Pending', version: 2 })
    expect(to!.previous).toMatchObject({ status: 'Pending', version: 1 })
    expect(to!.previous!.leaseExpiresAt).toBeGreaterThan(1_700_000_000_000) // the expired deadline itself
    expect(gc).toMatchObject({ actor: 'gc', details: { uri: 'artifacts/x', payloadId: '3' } })
    expect(BigInt(fc!.atNs)).toBeGreaterThan(0n)
    expect(() => c.appendAudit('bad action!', {})).toThrow()
    // An admin range over Retired slots is no engine conflict.
    const conflicts = c.eventCounts('enrichment').conflicts
    expect(c.forceClearRange('SPY', { from: 10, to: 13 }, 'greeks')).toBe(0)
    expect(c.eventCounts('enrichment').conflicts).toBe(conflicts)
    expect(() => c.forceClear('SPY', 1, 'optionQuote', { actor: 5 as unknown as string })).toThrow(TypeError)
  })

  it('the default actor names the user, host and process; a damaged line is CorruptStateError with its offset', () => {
    const c = open()
    expect(c.auditActor).toMatch(new RegExp(`pid ${process.pid}$`))
    c.retire('SPY', 0, 'rfRate')
    const good = readAuditLog(dir)
    expect(good[0]!.actor).toBe(c.auditActor)
    const path = join(dir, 'audit.log')
    appendFileSync(path, '{"v":1,"atNs":"5"}\n')
    const e = (() => {
      try {
        readAuditLog(dir)
      } catch (x) {
        return x
      }
    })()
    expect(e).toBeInstanceOf(CorruptStateError)
    expect((e as CorruptStateError).offset).toBeGreaterThan(0)
    writeFileSync(path, '')
    expect(readAuditLog(dir)).toEqual([])
  })
})

// ---- across processes --------------------------------------------------------

function child(args: object): { proc: ChildProcess; ready: Promise<void>; result: Promise<Record<string, unknown>> } {
  const proc = spawn(process.execPath, [FIXTURE, JSON.stringify({ stateDir: dir, ...args })], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  let onReady: () => void
  const ready = new Promise<void>((r) => (onReady = r))
  proc.stderr.on('data', (d) => (err += d))
  proc.stdout.on('data', (d) => {
    out += d
    if (out.includes('"ready"')) onReady()
  })
  const result = new Promise<Record<string, unknown>>((resolve, reject) => {
    proc.once('close', (code) => {
      const line = out.split('\n').filter((l) => l.startsWith('{')).pop()
      if (code !== 0 || !line) reject(new Error(`watcher process exited ${code}:\n${out}\n${err}`))
      else resolve(JSON.parse(line) as Record<string, unknown>)
    })
  })
  return { proc, ready, result }
}

describe('across processes', () => {
  it('a waiter in another process is woken by fills made here', async () => {
    const c = open()
    const w = child({ mode: 'waitFor', symbol: 'SPY', window: 11, kinds: INPUTS })
    await w.ready
    const ids = INPUTS.map((k) => fill(c, 'SPY', 11, k))
    const r = (await w.result) as { slots?: { status: string; payloadId: number }[]; error?: string }
    expect(r.error).toBeUndefined()
    expect(r.slots!.map((s) => [s.status, s.payloadId])).toEqual(ids.map((id) => ['Filled', id]))
  })

  it('a watcher in another process sees every change made here, in order, also of a symbol added after it started', async () => {
    const c = open()
    const w = child({ mode: 'watch', count: 32, slotKinds: ['optionQuote'] })
    await w.ready
    for (let i = 0; i < 10; i++) fill(c, 'SPY', i, 'optionQuote') // 20 changes
    c.forceClearRange('SPY', { from: 0, to: 10 }, 'optionQuote') // 10 more
    c.resolveSymbol('NEWSYM') // unknown to the watcher's controller until now
    fill(c, 'NEWSYM', 63, 'optionQuote') // 2 more
    const r = (await w.result) as { seen: SlotChange[] }
    expect(r.seen.length).toBe(32)
    expect(r.seen.slice(30).map((s) => [s.symbol, s.windowIdx, s.to])).toEqual([
      ['NEWSYM', 63, 'Pending'],
      ['NEWSYM', 63, 'Filled'],
    ])
    expect(r.seen.slice(0, 20).map((s) => [s.windowIdx, s.to])).toEqual([...Array(10).keys()].flatMap((i) => [[i, 'Pending'], [i, 'Filled']]))
    expect(r.seen.slice(20, 30).map((s) => [s.windowIdx, s.from, s.to])).toEqual([...Array(10).keys()].map((i) => [i, 'Filled', 'Cleared']))
    const seqs = r.seen.map((s) => s.seq)
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs)
  })

  it('an enrichment engine in another process claims exactly the windows whose inputs are filled here, without polling', async () => {
    const c = open()
    const N = 24
    const e = child({ mode: 'enrich', symbol: 'SPY', windows: N })
    await e.ready
    // Fill inputs in a scrambled order, one input at a time, yielding between.
    const order = [...Array(N).keys()].sort((a, b) => ((a * 7) % N) - ((b * 7) % N))
    for (const w of order) {
      fill(c, 'SPY', w, 'optionQuote')
      await new Promise((r) => setImmediate(r))
      fill(c, 'SPY', w, 'underlyingQuote')
      await new Promise((r) => setImmediate(r))
    }
    const r = (await e.result) as { claimedWhenReady: { w: number; ready: boolean }[] }
    expect(r.claimedWhenReady.every((x) => x.ready)).toBe(true)
    expect(r.claimedWhenReady.map((x) => x.w).sort((a, b) => a - b)).toEqual([...Array(N).keys()])
    for (let w = 0; w < N; w++) expect(c.getSlot('SPY', w, 'greeks').status).toBe('Filled')
  })
})

describe('worker threads', () => {
  const WORKER = join(__dirname, 'fixtures', 'watch-worker.mjs')
  const start = (close: boolean) => {
    const w = new Worker(WORKER, { workerData: { stateDir: dir, close } })
    let onResult: (m: unknown) => void
    const result = new Promise<unknown>((r) => (onResult = r))
    const armed = new Promise<void>((r) => w.on('message', (m) => (m === 'armed' ? r() : onResult(m))))
    const exited = new Promise<number>((r) => w.once('exit', r))
    return { w, armed, exited, result }
  }

  it('a worker woken by a fill in the main thread, then terminated while its watcher thread runs, leaves the process whole', async () => {
    const c = open()
    const a = start(false)
    await a.armed
    fill(c, 'SPY', 1, 'greeks')
    // The worker's waitFor resolves and its watch() sees the change; its
    // iterator stays open, so its watcher thread keeps running (and the worker alive).
    expect(await a.result).toEqual({ waitFor: 'filled', watch: 1 })
    // Terminate it with its watcher thread running; and a second worker mid-wait.
    const b = start(false)
    await b.armed
    await a.w.terminate()
    await b.w.terminate()
    expect(await a.exited).toBe(1)
    expect(await b.exited).toBe(1)
    // The ledger and this thread's own waiting still work.
    const p = c.waitFor('SPY', 2, ['greeks'], { timeoutMs: 30_000 })
    fill(c, 'SPY', 2, 'greeks')
    expect((await p)[0]!.status).toBe('Filled')
  })

  it('a worker that closes its controller while waiting settles both waits with ClosedError and exits by itself', async () => {
    open()
    const a = start(true)
    await a.armed
    expect(await a.result).toEqual({ waitFor: 'ERR_CLOSED', watch: 'ERR_CLOSED' })
    expect(await a.exited).toBe(0)
  })
})
