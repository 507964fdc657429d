// A portable slice of the API suite: what an engine author and an operator do
// with window-space, checked with nothing but the installed package and
// Node's own test runner, so that it runs on every platform's Node (under
// emulation too): `node --test api-slice.mjs` in a project that has
// `window-space` installed, on Node 20, 22 or 24. `node api-slice.mjs` runs
// the same tests in that one process (exit status 1 if one fails): the form
// for user-mode emulation without binfmt_misc, where the subprocess that
// `node --test` starts for the file could not be executed.
//
// It owns these checks, each on outcomes (statuses, versions, payload ids,
// counts, error classes and codes):
// - a controller's life on a fresh state directory, and reopening it after
//   close with every slot, record, symbol and counter kept;
// - the engine loop (claim, artifact, record, fill) and every read of it;
// - refusals: claims of Pending, Filled and Retired slots, fills, renewals
//   and clears at a version that is not the claim's;
// - bad input: a typed error naming what is wrong, nothing changed;
// - the numbers-only calls (`controller.raw`) and the batch calls
//   (`claimNextUnfilled`, `fillMany`) agreeing with the single calls;
// - payload records through every store; readiness and windows on a small
//   schedule; the shared counters, as the API and the CLI report them;
// - other processes: `waitFor` and `watch` see another process's fills;
//   four processes race for the same slots and each slot has one winner; a
//   claim holder killed with SIGKILL keeps its slot until its lease ends,
//   then another process takes it over and the dead claim's version no
//   longer fills;
// - the installed CLI's `verify` over every state directory the slice made.
//
// Other processes are started with the command prefix in WS_SLICE_NODE (a
// JSON array, e.g. `["qemu-aarch64-static","-L","/usr/aarch64-linux-gnu",
// "/path/to/node"]`), by default this Node; their code is
// api-slice-child.mjs, beside this file.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

import {
  AbortError,
  ClosedError,
  InvalidSymbolError,
  NoWindowForTimestampError,
  PathEscapesStateDirError,
  PayloadType,
  Refusal,
  STORE_OF_SLOT_KIND,
  ScheduleMismatchError,
  SlotBusyError,
  SlotFilledError,
  SlotKind,
  SlotRetiredError,
  TradeSlotKind,
  UnknownPayloadError,
  UnknownSymbolError,
  VersionConflictError,
  WaitTimeoutError,
  WindowOutOfRangeError,
  WindowSpaceController,
  WindowSpaceError,
  checksum64,
  checksumFile,
  readAuditLog,
} from 'window-space'

import { openLedger, produce } from './api-slice-child.mjs'

const CHILD = fileURLToPath(new URL('./api-slice-child.mjs', import.meta.url))
const ORIGIN = Date.UTC(2026, 0, 5, 14, 30)
const MINUTE = 60_000
const WINDOWS = 32
const SCHEDULE = { origin: ORIGIN, windowDuration: MINUTE, windowCount: WINDOWS }
/** A lease no claim of this file outlives unless it is meant to. */
const LONG = 600_000
/** Upper bound of a test that starts processes: a hang fails instead of hanging (emulation is slow). */
const PROCESS_TEST = { timeout: 600_000 }
const optionTrade = SlotKind.Trade(TradeSlotKind.OptionTrade)

/** The command that runs Node for other processes. */
const NODE = (() => {
  const given = process.env.WS_SLICE_NODE
  if (!given) return [process.execPath]
  const cmd = JSON.parse(given)
  if (!Array.isArray(cmd) || cmd.length === 0 || !cmd.every((a) => typeof a === 'string')) {
    throw new Error(`WS_SLICE_NODE must be a JSON array of strings (a command and its arguments), got ${given}`)
  }
  return cmd
})()

/** The installed CLI (the package's `bin`). */
const CLI = (() => {
  const manifest = createRequire(import.meta.url).resolve('window-space/package.json')
  return join(dirname(manifest), JSON.parse(readFileSync(manifest, 'utf8')).bin['window-space'])
})()

/** The environment of other processes: this one's, without the test runner's marker. */
function childEnv() {
  const env = { ...process.env }
  delete env.NODE_TEST_CONTEXT
  return env
}

const root = mkdtempSync(join(tmpdir(), 'ws-api-slice-'))
const mainDir = join(root, 'main')
const live = new Set()

/**
 * Starts api-slice-child.mjs in `role`. `next()` resolves with its next
 * JSON line, `send(line)` writes a command, `exited` resolves with its exit
 * code and signal once its output is read.
 */
function spawnChild(role, args) {
  const [cmd, ...pre] = NODE
  const proc = spawn(cmd, [...pre, CHILD, role, JSON.stringify(args)], { stdio: ['pipe', 'pipe', 'inherit'], env: childEnv() })
  live.add(proc)
  const queue = []
  const waiting = []
  let end = null
  // A child that died is reported by `exited` and `next()`, not by a write to its closed stdin.
  proc.stdin.on('error', () => {})
  createInterface({ input: proc.stdout }).on('line', (line) => {
    let message
    try {
      message = JSON.parse(line)
    } catch {
      process.stderr.write(`${role}: ${line}\n`)
      return
    }
    if (waiting.length > 0) waiting.shift().resolve(message)
    else queue.push(message)
  })
  const exited = new Promise((resolve) => {
    const finish = (code, signal, error) => {
      if (end) return
      live.delete(proc)
      end = `${role} ended (code ${code}, signal ${signal}${error ? `, ${error.message}` : ''}) before its next message`
      for (const w of waiting.splice(0)) w.reject(new Error(end))
      resolve({ code, signal })
    }
    proc.on('close', (code, signal) => finish(code, signal))
    proc.on('error', (error) => finish(null, null, error))
  })
  return {
    proc,
    exited,
    next: () => {
      if (queue.length > 0) return Promise.resolve(queue.shift())
      if (end) return Promise.reject(new Error(end))
      return new Promise((resolve, reject) => waiting.push({ resolve, reject }))
    },
    send: (line) => proc.stdin.write(`${line}\n`),
  }
}

/** Runs the installed CLI with `args` through the same Node command. */
function runCli(args) {
  const [cmd, ...pre] = NODE
  return spawnSync(cmd, [...pre, CLI, ...args], { encoding: 'utf8', env: childEnv(), maxBuffer: 64 << 20 })
}

/** `window-space verify DIR --artifacts --json`: exit 0, ok, no problems; returns its counts. */
function verifyWithCli(dir) {
  const r = runCli(['verify', dir, '--artifacts', '--json'])
  assert.equal(r.status, 0, `verify ${dir} exited with ${r.status}: ${r.error?.message ?? ''}${r.stdout}${r.stderr}`)
  const report = JSON.parse(r.stdout)
  assert.equal(report.ok, true)
  assert.deepEqual(report.problems, [])
  return report.counts
}

/** What `f` threw; fails if it returned. */
function caught(f) {
  try {
    f()
  } catch (e) {
    return e
  }
  assert.fail('expected the call to throw, but it returned')
}

/** What `p` rejected with; fails if it resolved. */
async function rejected(p) {
  try {
    await p
  } catch (e) {
    return e
  }
  assert.fail('expected the promise to reject, but it resolved')
}

/** `e` is an instance of `type`, with `code` when given. */
function assertError(e, type, code) {
  assert.ok(e instanceof type, `expected ${type.name}, got ${e?.constructor?.name}: ${e?.message}`)
  if (code !== undefined) assert.equal(e.code, code, e.message)
}

/** JSON with bigints as strings, for comparing whole states. */
const json = (v) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x))

/** Everything a call could change, for the given symbols (every symbol when omitted). */
function snapshot(c, symbols = c.symbols()) {
  const rows = []
  for (const s of symbols) {
    for (let w = 0; w < c.windowCount; w++) rows.push(c.getTradeRow(s, w), c.getEnrichmentRow(s, w))
  }
  const stores = Object.entries(c.payloadStores()).map(([name, store]) => [name, [...store]])
  return json({ symbols: c.symbols(), rows, stores, metrics: c.slotMetrics(), trade: c.eventCounts('trade'), enrichment: c.eventCounts('enrichment') })
}

/** Claims (symbol, window, kind), records an artifact and fills it; returns the claim, the record and the fill's version. */
function fillSlot(c, symbol, windowIdx, kind, tag = 'slice') {
  const claim = c.markPending(symbol, windowIdx, kind, { leaseMs: LONG })
  const made = produce(c, claim, tag)
  const version = c.setRef(symbol, windowIdx, kind, { payloadType: 'Json', payloadId: made.payloadId, version: claim.version, checksum: made.checksum })
  return { claim, ...made, version }
}

/** The high and low 32 bits of a 64-bit checksum, as the raw calls take it. */
const split = (sum) => [Number(sum >> 32n), Number(sum & 0xffffffffn)]

const range = (n) => Array.from({ length: n }, (_, i) => i)

describe('window-space, as installed', () => {
  let c

  before(() => {
    c = openLedger(mainDir, SCHEDULE).controller
  })

  after(() => {
    for (const proc of live) proc.kill('SIGKILL')
    if (c && !c.closed) c.close()
    rmSync(root, { recursive: true, force: true })
  })

  it('bootstraps a fresh state directory and reopens it; close is idempotent and final', () => {
    const dir = join(root, 'fresh')
    const first = openLedger(dir, SCHEDULE)
    assert.equal(first.storageReport.created, true)
    assert.equal(first.storageReport.schedule, 'created')
    assert.equal(first.storageReport.windowCount, WINDOWS)
    assert.equal(first.storageReport.symbols, 0)
    assert.equal(first.storageReport.exclusive, true)
    const fc = first.controller
    assert.equal(fc.windowCount, WINDOWS)
    assert.equal(fc.closed, false)
    assert.equal(fc.resolveSymbol('SPY'), 0)
    assert.equal(fc.resolveSymbol('QQQ'), 1)
    assert.equal(fc.resolveSymbol('SPY'), 0)
    fc.close()
    assert.equal(fc.closed, true)
    fc.close()
    assertError(caught(() => fc.getSlot('SPY', 0, optionTrade)), ClosedError, 'ERR_CLOSED')
    assertError(caught(() => fc.markPending('SPY', 0, optionTrade)), ClosedError, 'ERR_CLOSED')
    assertError(caught(() => fc.raw.claim(0, 0, optionTrade.code)), ClosedError, 'ERR_CLOSED')

    const again = openLedger(dir, SCHEDULE)
    assert.equal(again.storageReport.created, false)
    assert.equal(again.storageReport.schedule, 'same')
    assert.equal(again.storageReport.symbols, 2)
    assert.deepEqual(again.controller.symbols(), ['SPY', 'QQQ'])
    assert.equal(again.controller.symbolId('QQQ'), 1)
    assert.equal(again.controller.getSlot('QQQ', 0, optionTrade).status, 'Empty')
    again.controller.close()
  })

  it('claim, write the artifact, record it, fill: every read shows the same slot', () => {
    const sym = c.resolveSymbol('SPY')
    assert.deepEqual(c.getSlot(sym, 0, optionTrade), { status: 'Empty', version: 0, payloadType: 0, payloadId: 0, checksum: 0n, leaseExpiresAt: null })
    const claim = c.markPending(sym, 0, optionTrade, { leaseMs: LONG })
    assert.equal(claim.symbolId, sym)
    assert.equal(claim.windowIdx, 0)
    assert.equal(claim.slotKind.name, 'optionTrade')
    assert.equal(claim.version, 1)
    const pending = c.getSlot('SPY', 0, 'optionTrade')
    assert.equal(pending.status, 'Pending')
    assert.equal(pending.version, 1)
    assert.equal(pending.leaseExpiresAt, claim.leaseExpiresAt)

    const data = JSON.stringify({ trades: [[101.5, 3]] })
    const artifact = c.writeArtifact(claim, 'option-trades.json', data)
    assert.equal(artifact.uri, 'artifacts/SPY/optionTrade/0/v1/option-trades.json')
    assert.equal(artifact.checksum, checksum64(data))
    assert.equal(artifact.size, Buffer.byteLength(data))
    assert.equal(c.resolveArtifact(artifact.uri), artifact.path)
    assert.equal(readFileSync(artifact.path, 'utf8'), data)

    const trades = c.payloadStores().trades
    const n = trades.length
    const payloadId = trades.append({ symbol: sym, windowIdx: 0, slotKind: optionTrade, payloadType: 'Json', uri: artifact.uri, checksum: artifact.checksum, size: artifact.size })
    assert.equal(payloadId, n)
    assert.equal(trades.length, n + 1)
    const version = c.setOptionTradeRef(sym, 0, { payloadType: 'Json', payloadId, version: claim.version, checksum: artifact.checksum })
    assert.equal(version, 2)

    const filled = { status: 'Filled', version: 2, payloadType: PayloadType.Json, payloadId, checksum: artifact.checksum, leaseExpiresAt: null }
    assert.deepEqual(c.getSlot(sym, 0, optionTrade), filled)
    const row = c.getTradeRow('SPY', 0)
    assert.equal(row.symbolId, sym)
    assert.equal(row.windowIdx, 0)
    assert.deepEqual(row.optionTrade, filled)
    for (const kind of Object.values(TradeSlotKind).filter((k) => k !== 'optionTrade')) assert.equal(row[kind].status, 'Empty', kind)
    const record = trades.get(payloadId)
    assert.equal(typeof record.createdAt, 'bigint')
    assert.deepEqual({ ...record, createdAt: 0n }, { payloadId, symbolId: sym, windowIdx: 0, slotKind: 'optionTrade', payloadType: PayloadType.Json, uri: artifact.uri, checksum: artifact.checksum, size: artifact.size, createdAt: 0n })

    // The generic setter on another slot kind of the same row.
    const u = c.markPending(sym, 0, 'underlyingTrade', { leaseMs: LONG })
    const made = produce(c, u, 'generic')
    assert.equal(c.setRef(sym, 0, 'underlyingTrade', { payloadType: 'Json', payloadId: made.payloadId, version: u.version, checksum: made.checksum }), u.version + 1)
    assert.equal(c.getTradeRow(sym, 0).underlyingTrade.payloadId, made.payloadId)
  })

  it('refuses claims of a Pending, a Filled and a Retired slot with the typed error carrying the slot as it is', () => {
    const sym = c.resolveSymbol('CLAIMS')
    const held = c.markPending(sym, 1, optionTrade, { leaseMs: LONG })
    const busy = caught(() => c.markPending(sym, 1, optionTrade))
    assertError(busy, SlotBusyError, 'ERR_SLOT_BUSY')
    assert.ok(busy instanceof VersionConflictError)
    assert.ok(busy instanceof WindowSpaceError)
    assert.deepEqual(busy.slot, c.getSlot(sym, 1, optionTrade))
    assert.equal(busy.slot.version, held.version)
    assert.equal(c.tryMarkPending(sym, 1, optionTrade), null)

    const done = fillSlot(c, sym, 2, optionTrade)
    const filled = caught(() => c.markPending(sym, 2, optionTrade))
    assertError(filled, SlotFilledError, 'ERR_SLOT_FILLED')
    assert.equal(filled.slot.status, 'Filled')
    assert.equal(filled.slot.version, done.version)
    assert.equal(filled.slot.payloadId, done.payloadId)

    assert.deepEqual(c.retire(sym, 3, optionTrade, { actor: 'api-slice', reason: 'a retired slot for the slice' }), { from: 'Empty', to: 'Retired', version: 1 })
    const retired = caught(() => c.markPending(sym, 3, optionTrade))
    assertError(retired, SlotRetiredError, 'ERR_SLOT_RETIRED')
    assert.equal(retired.slot.status, 'Retired')

    // Nothing the refusals saw changed.
    assert.equal(c.getSlot(sym, 1, optionTrade).version, held.version)
    assert.equal(c.getSlot(sym, 1, optionTrade).status, 'Pending')
    assert.equal(c.getSlot(sym, 2, optionTrade).version, done.version)
    assert.equal(c.getSlot(sym, 3, optionTrade).version, 1)
    const audit = readAuditLog(mainDir).filter((e) => e.phase !== 'intent').at(-1)
    assert.equal(audit.action, 'retire')
    assert.equal(audit.actor, 'api-slice')
    assert.equal(audit.symbol, 'CLAIMS')
    assert.equal(audit.window, 3)
  })

  it('refuses fills, renewals and clears at a version that is not the claim\'s, and a payload id its store does not hold', () => {
    const sym = c.resolveSymbol('FENCE')
    const claim = c.markPending(sym, 0, optionTrade, { leaseMs: LONG })
    const { payloadId, checksum } = produce(c, claim, 'fence')
    const meta = { payloadType: 'Json', payloadId, version: claim.version, checksum }
    const before = c.getSlot(sym, 0, optionTrade)
    for (const version of [claim.version + 1, claim.version - 1]) {
      const e = caught(() => c.setRef(sym, 0, optionTrade, { ...meta, version }))
      assertError(e, VersionConflictError, 'ERR_VERSION_CONFLICT')
      assert.deepEqual(e.slot, before)
    }
    assertError(caught(() => c.setRef(sym, 0, optionTrade, { ...meta, payloadId: c.payloadStores().trades.length + 10 })), UnknownPayloadError, 'ERR_UNKNOWN_PAYLOAD')
    assert.deepEqual(c.getSlot(sym, 0, optionTrade), before)

    // Renewing keeps the version and moves the deadline.
    const renewed = c.renewClaim(claim, { leaseMs: 2 * LONG })
    assert.equal(renewed.version, claim.version)
    assert.ok(renewed.leaseExpiresAt > claim.leaseExpiresAt, `renewed deadline ${renewed.leaseExpiresAt} after ${claim.leaseExpiresAt}`)
    assert.equal(c.getSlot(sym, 0, optionTrade).leaseExpiresAt, renewed.leaseExpiresAt)

    assert.equal(c.setRef(sym, 0, optionTrade, meta), claim.version + 1)
    const filled = c.getSlot(sym, 0, optionTrade)
    for (const [what, call] of [
      ['a second fill', () => c.setRef(sym, 0, optionTrade, meta)],
      ['a renewal', () => c.renewClaim(claim)],
      ['a clear', () => c.clearSlot(sym, 0, optionTrade, claim)],
    ]) {
      const e = caught(call)
      assertError(e, VersionConflictError, 'ERR_VERSION_CONFLICT')
      assert.equal(e.slot.status, 'Filled', what)
      assert.deepEqual(c.getSlot(sym, 0, optionTrade), filled, what)
    }

    // The holder's clear gives the slot back; its claim is spent, a new one is not.
    const giveBack = c.markPending(sym, 1, optionTrade, { leaseMs: LONG })
    const cleared = c.clearSlot(sym, 1, optionTrade, giveBack)
    assert.equal(cleared, giveBack.version + 1)
    assert.equal(c.getSlot(sym, 1, optionTrade).status, 'Cleared')
    assertError(caught(() => c.clearSlot(sym, 1, optionTrade, giveBack)), VersionConflictError, 'ERR_VERSION_CONFLICT')
    assertError(caught(() => c.renewClaim(giveBack)), VersionConflictError, 'ERR_VERSION_CONFLICT')
    const retry = fillSlot(c, sym, 1, optionTrade)
    assert.equal(retry.claim.version, cleared + 1)
    assert.equal(retry.version, cleared + 2)
    assert.equal(c.getSlot(sym, 1, optionTrade).status, 'Filled')
  })

  it('bad input throws a typed error naming what is wrong, and changes nothing', () => {
    const sym = c.resolveSymbol('BAD')
    const claim = c.markPending(sym, 1, optionTrade, { leaseMs: LONG })
    const { payloadId, checksum } = produce(c, claim, 'bad')
    const meta = { payloadType: 'Json', payloadId, version: claim.version, checksum }
    const [hi, lo] = split(checksum)
    const record = { symbol: sym, windowIdx: 1, slotKind: optionTrade, payloadType: 'Json', uri: 'artifacts/none', checksum: 1n, size: 1 }
    const cases = [
      ['a fractional window', () => c.markPending(sym, 1.5, optionTrade), RangeError, /windowIdx/],
      ['a negative window', () => c.getSlot(sym, -1, optionTrade), RangeError, /windowIdx/],
      ['NaN as the window', () => c.setRef(sym, NaN, optionTrade, meta), RangeError, /windowIdx/],
      ['a window past 2^32', () => c.markPending(sym, 2 ** 32 + 1, optionTrade), RangeError, /windowIdx/],
      ['a window past the schedule', () => c.setRef(sym, WINDOWS, optionTrade, meta), WindowOutOfRangeError, 'ERR_WINDOW_OUT_OF_RANGE'],
      ['an unknown symbol', () => c.markPending('NOPE', 1, optionTrade), UnknownSymbolError, 'ERR_UNKNOWN_SYMBOL'],
      ['an unknown symbol id', () => c.setRef(9999, 1, optionTrade, meta), UnknownSymbolError, 'ERR_UNKNOWN_SYMBOL'],
      ['an invisible character in a symbol', () => c.resolveSymbol('BAD\u200B'), InvalidSymbolError, 'ERR_INVALID_SYMBOL'],
      ['an empty symbol', () => c.resolveSymbol(''), InvalidSymbolError, 'ERR_INVALID_SYMBOL'],
      ['white space around a symbol', () => c.resolveSymbol(' BAD'), InvalidSymbolError, 'ERR_INVALID_SYMBOL'],
      ['an unknown slot kind', () => c.setRef(sym, 1, 'optionTrades', meta), RangeError, /slot kind "optionTrades"/],
      ['a negative lease', () => c.markPending(sym, 2, optionTrade, { leaseMs: -5 }), RangeError, /leaseMs/],
      ['a negative payload id', () => c.setRef(sym, 1, optionTrade, { ...meta, payloadId: -1 }), RangeError, /payloadId/],
      ['a fractional version', () => c.setRef(sym, 1, optionTrade, { ...meta, version: claim.version + 0.5 }), RangeError, /version/],
      ['a payload type past 255', () => c.setRef(sym, 1, optionTrade, { ...meta, payloadType: 256 }), RangeError, /payloadType/],
      ['a checksum past 64 bits', () => c.setRef(sym, 1, optionTrade, { ...meta, checksum: 1n << 64n }), RangeError, /checksum/],
      ['a checksum that is not a bigint', () => c.setRef(sym, 1, optionTrade, { ...meta, checksum: 5 }), TypeError, /checksum/],
      ['a payload id its store does not hold', () => c.setRef(sym, 1, optionTrade, { ...meta, payloadId: 1_000_000 }), UnknownPayloadError, 'ERR_UNKNOWN_PAYLOAD'],
      ['a record for another store\'s slot kind', () => c.payloadStores().quotes.append(record), RangeError, /store/],
      ['a record for a window past the schedule', () => c.payloadStores().trades.append({ ...record, windowIdx: WINDOWS }), WindowOutOfRangeError, 'ERR_WINDOW_OUT_OF_RANGE'],
      ['a fractional count', () => c.claimNextUnfilled(sym, 0, optionTrade, 1.5), RangeError, /count/],
      // The good first item must not be filled either.
      ['a batch whose second item has a fractional window', () => c.fillMany([{ symbol: sym, windowIdx: 1, slotKind: optionTrade, meta }, { symbol: sym, windowIdx: 0.5, slotKind: optionTrade, meta }]), RangeError, /windowIdx/],
      ['raw: a fractional window', () => c.raw.claim(sym, 1.5, optionTrade.code, -1), RangeError, 'ERR_OUT_OF_RANGE'],
      ['raw: an unknown slot kind code', () => c.raw.claim(sym, 2, 9, -1), RangeError, 'ERR_OUT_OF_RANGE'],
      ['raw: a version past 2^32', () => c.raw.fill(sym, 1, optionTrade.code, claim.version + 2 ** 32, PayloadType.Json, payloadId, hi, lo), RangeError, 'ERR_OUT_OF_RANGE'],
      ['raw: a negative payload id', () => c.raw.fill(sym, 1, optionTrade.code, claim.version, PayloadType.Json, -1, hi, lo), RangeError, 'ERR_OUT_OF_RANGE'],
      ['raw: a window past the schedule', () => c.raw.claim(sym, WINDOWS, optionTrade.code, -1), WindowOutOfRangeError, 'ERR_WINDOW_OUT_OF_RANGE'],
      ['raw: an unknown symbol id', () => c.raw.fill(9999, 1, optionTrade.code, claim.version, PayloadType.Json, payloadId, hi, lo), UnknownSymbolError, 'ERR_UNKNOWN_SYMBOL'],
      ['a timestamp before the first window', () => c.windowIdxForTimestamp(ORIGIN - 1), NoWindowForTimestampError, 'ERR_NO_WINDOW_FOR_TIMESTAMP'],
      ['an artifact path leaving the state directory', () => c.writeArtifact('../../outside.json', 'x'), PathEscapesStateDirError, 'ERR_PATH_ESCAPES_STATE_DIR'],
    ]
    for (const [what, call, type, expected] of cases) {
      const before = snapshot(c, ['BAD'])
      const e = caught(call)
      assert.ok(e instanceof type, `${what}: expected ${type.name}, got ${e?.constructor?.name}: ${e?.message}`)
      if (typeof expected === 'string') assert.equal(e.code, expected, `${what}: ${e.message}`)
      else assert.match(e.message, expected, what)
      assert.equal(snapshot(c, ['BAD']), before, `${what} changed something`)
    }
    // The controller works on: the claim still fills.
    assert.equal(c.setRef(sym, 1, optionTrade, meta), claim.version + 1)
  })

  it('the numbers-only calls (controller.raw) agree with the object calls and refuse with Refusal codes', () => {
    const a = c.resolveSymbol('RAWA')
    const b = c.resolveSymbol('RAWB')
    const k = optionTrade.code
    const rawRecord = (w, v) => {
      const art = c.writeArtifact(`raw/RAWB-${w}-v${v}.json`, JSON.stringify({ window: w, version: v }))
      return { id: c.payloadStores().trades.append({ symbol: b, windowIdx: w, slotKind: optionTrade, payloadType: 'Json', uri: art.uri, checksum: art.checksum, size: art.size }), checksum: art.checksum }
    }

    // Window 0: claim and fill.
    const ca = c.markPending(a, 0, optionTrade, { leaseMs: LONG })
    const vb = c.raw.claim(b, 0, k, LONG)
    assert.equal(vb, ca.version)
    const pa = produce(c, ca, 'object')
    const pb = rawRecord(0, vb)
    assert.equal(c.setRef(a, 0, optionTrade, { payloadType: 'Json', payloadId: pa.payloadId, version: ca.version, checksum: pa.checksum }), c.raw.fill(b, 0, k, vb, PayloadType.Json, pb.id, ...split(pb.checksum)))
    const sa = c.getSlot(a, 0, optionTrade)
    const sb = c.getSlot(b, 0, optionTrade)
    assert.deepEqual({ ...sb, payloadId: 0, checksum: 0n }, { ...sa, payloadId: 0, checksum: 0n })
    assert.equal(sb.payloadId, pb.id)
    assert.equal(sb.checksum, pb.checksum)
    assert.equal(c.raw.claim(b, 0, k, LONG), Refusal.Filled)
    assertError(caught(() => c.markPending(a, 0, optionTrade)), SlotFilledError, 'ERR_SLOT_FILLED')

    // Window 1: a live claim refuses another; a stale fill conflicts; the holder clears.
    const ca1 = c.markPending(a, 1, optionTrade, { leaseMs: LONG })
    const vb1 = c.raw.claim(b, 1, k, LONG)
    assert.equal(vb1, ca1.version)
    assert.equal(c.raw.claim(b, 1, k, LONG), Refusal.Busy)
    assertError(caught(() => c.markPending(a, 1, optionTrade)), SlotBusyError, 'ERR_SLOT_BUSY')
    assert.equal(c.raw.fill(b, 1, k, vb1 + 1, PayloadType.Json, pb.id, ...split(pb.checksum)), Refusal.Conflict)
    assertError(caught(() => c.setRef(a, 1, optionTrade, { payloadType: 'Json', payloadId: pa.payloadId, version: ca1.version + 1, checksum: pa.checksum })), VersionConflictError, 'ERR_VERSION_CONFLICT')
    assert.equal(c.raw.clear(b, 1, k, vb1), c.clearSlot(a, 1, optionTrade, ca1))
    assert.equal(c.raw.clear(b, 1, k, vb1), Refusal.Conflict)

    // Window 2: retired.
    c.retire(a, 2, optionTrade)
    c.retire(b, 2, optionTrade)
    assert.equal(c.raw.claim(b, 2, k, LONG), Refusal.Retired)
    assertError(caught(() => c.markPending(a, 2, optionTrade)), SlotRetiredError, 'ERR_SLOT_RETIRED')

    for (let w = 0; w < 4; w++) {
      const x = c.getSlot(a, w, optionTrade)
      const y = c.getSlot(b, w, optionTrade)
      assert.deepEqual([y.status, y.version, y.payloadType, y.leaseExpiresAt], [x.status, x.version, x.payloadType, x.leaseExpiresAt], `window ${w}`)
    }
    assert.deepEqual(range(4).map((w) => c.getSlot(b, w, optionTrade).status), ['Filled', 'Cleared', 'Retired', 'Empty'])
    assert.equal(c.raw.nextUnfilledWindow(b, 0, k), 1)
    assert.equal(c.nextUnfilledWindow(a, 0, optionTrade), 1)
    assert.equal(c.raw.nextUnfilledWindow(b, 2, k), 3)
    assert.equal(c.nextUnfilledWindow(a, 2, optionTrade), 3)
    assert.equal(c.raw.nextUnfilledWindow(b, WINDOWS, k), -1)
    assert.equal(c.nextUnfilledWindow(a, WINDOWS, optionTrade), null)
  })

  it('batch claim and batch fill skip what single calls refuse; a stale item is refused alone', () => {
    const sym = c.resolveSymbol('BATCH')
    fillSlot(c, sym, 1, optionTrade)
    const held = c.markPending(sym, 2, optionTrade, { leaseMs: LONG })
    c.retire(sym, 3, optionTrade)
    assert.deepEqual(c.claimNextUnfilled(sym, 0, optionTrade, 0), [])

    const claims = c.claimNextUnfilled(sym, 0, optionTrade, 4, { leaseMs: LONG })
    assert.deepEqual(claims.map((cl) => cl.windowIdx), [0, 4, 5, 6])
    for (const cl of claims) {
      assert.equal(cl.version, 1)
      assert.equal(cl.symbolId, sym)
      assert.equal(cl.slotKind.name, 'optionTrade')
      assert.equal(c.getSlot(sym, cl.windowIdx, optionTrade).leaseExpiresAt, cl.leaseExpiresAt)
    }
    const items = claims.map((cl) => {
      const { payloadId, checksum } = produce(c, cl, 'batch')
      return { symbol: sym, windowIdx: cl.windowIdx, slotKind: optionTrade, meta: { payloadType: 'Json', payloadId, version: cl.version, checksum } }
    })
    const stale = { symbol: sym, windowIdx: 2, slotKind: optionTrade, meta: { ...items[0].meta, version: held.version + 1 } }
    const results = c.fillMany([items[0], items[1], stale, items[2], items[3]])
    assert.equal(results.length, 5)
    assert.equal(results[2].ok, false)
    assertError(results[2].error, VersionConflictError, 'ERR_VERSION_CONFLICT')
    assert.equal(results[2].error.slot.status, 'Pending')
    assert.equal(results[2].error.slot.version, held.version)
    for (const [i, r] of [results[0], results[1], results[3], results[4]].entries()) {
      assert.deepEqual(r, { ok: true, version: 2 })
      const slot = c.getSlot(sym, items[i].windowIdx, optionTrade)
      assert.equal(slot.status, 'Filled')
      assert.equal(slot.payloadId, items[i].meta.payloadId)
    }
    assert.equal(c.getSlot(sym, 2, optionTrade).version, held.version)
    assert.equal(c.nextUnfilledWindow(sym, 0, optionTrade), 2)
    assert.equal(c.raw.nextUnfilledWindow(sym, 0, optionTrade.code), 2)
    assert.deepEqual(c.claimNextUnfilled(sym, 0, optionTrade, 2, { leaseMs: LONG }).map((cl) => cl.windowIdx), [7, 8])
  })

  it('payload records round-trip through every store', async () => {
    const sym = c.resolveSymbol('PAY')
    const stores = c.payloadStores()
    const kinds = { trades: 'underlyingTrade', quotes: 'optionQuote', aggressor: 'optionAggressor', rfRate: 'rfRate', greeks: 'greeks', aggregations: 'aggregation' }
    assert.deepEqual(Object.keys(stores).sort(), Object.keys(kinds).sort())
    for (const [name, kind] of Object.entries(kinds)) {
      assert.equal(STORE_OF_SLOT_KIND[kind], name)
      const store = stores[name]
      const data = new TextEncoder().encode(`${name}: ${'x'.repeat(37)}`)
      const artifact = c.writeArtifact(`payloads/${name}.bin`, data)
      assert.equal(artifact.checksum, checksum64(data))
      assert.deepEqual(checksumFile(artifact.path), { checksum: artifact.checksum, size: data.length })
      const n = store.length
      const id = store.append({ symbol: 'PAY', windowIdx: 7, slotKind: kind, payloadType: 'Binary', uri: artifact.uri, checksum: artifact.checksum, size: artifact.size })
      assert.equal(id, n, name)
      assert.equal(store.length, n + 1, name)
      const got = store.get(id)
      assert.ok(got.createdAt > 0n, name)
      assert.deepEqual({ ...got, createdAt: 0n }, { payloadId: id, symbolId: sym, windowIdx: 7, slotKind: kind, payloadType: PayloadType.Binary, uri: artifact.uri, checksum: artifact.checksum, size: data.length, createdAt: 0n }, name)
      assert.deepEqual([...store.entries(id)], [got], name)
      assert.equal(store.get(id + 1), null, name)
    }
    const trades = stores.trades
    const n = trades.length
    const artifact = c.writeArtifact('payloads/async.bin', 'async')
    const id = await trades.appendAsync({ symbol: sym, windowIdx: 8, slotKind: 'optionTrade', payloadType: 7, uri: artifact.uri, checksum: artifact.checksum, size: artifact.size })
    assert.equal(id, n)
    assert.equal(trades.get(id).payloadType, 7)
    assert.equal(trades.get(id).slotKind, 'optionTrade')
  })

  it('readiness and windows on a small schedule', () => {
    const sym = c.resolveSymbol('READY')
    const needs = ['optionQuote', 'underlyingQuote']
    for (const w of [0, 1, 2, 3]) fillSlot(c, sym, w, 'optionQuote')
    for (const w of [0, 2, 3]) fillSlot(c, sym, w, 'underlyingQuote')
    c.retire(sym, 3, 'greeks')
    assert.deepEqual(range(5).map((w) => c.isReady(sym, w, needs)), [true, false, true, true, false])
    assert.equal(c.isReady(sym, 1, ['optionQuote']), true)
    assert.equal(c.nextReadyWindow(sym, 0, needs, 'greeks'), 0)
    assert.equal(c.nextReadyWindow(sym, 1, needs, 'greeks'), 2)
    assert.equal(c.nextReadyWindow(sym, 3, needs, 'greeks'), null)
    const claims = c.claimNextReady(sym, 0, needs, 'greeks', 5, { leaseMs: LONG })
    assert.deepEqual(claims.map((cl) => [cl.windowIdx, cl.version, cl.slotKind.name]), [[0, 1, 'greeks'], [2, 1, 'greeks']])
    assert.equal(c.nextReadyWindow(sym, 0, needs, 'greeks'), null)
    const made = produce(c, claims[0], 'greeks')
    assert.equal(c.setGreeksRef(sym, 0, { payloadType: 'Json', payloadId: made.payloadId, version: 1, checksum: made.checksum }), 2)
    const row = c.getEnrichmentRow('READY', 0)
    assert.equal(row.greeks.status, 'Filled')
    assert.equal(row.greeks.payloadId, made.payloadId)
    assert.equal(row.aggregation.status, 'Empty')
    assert.equal(c.getEnrichmentRow(sym, 2).greeks.status, 'Pending')
    assert.equal(c.nextUnfilledWindow(sym, 0, 'underlyingQuote'), 1)
    assert.equal(c.raw.nextUnfilledWindow(sym, 0, SlotKind.Trade('underlyingQuote').code), 1)

    const meta = c.windowMeta(2)
    assert.equal(meta.windowIdx, 2)
    assert.equal(meta.startMs, ORIGIN + 2 * MINUTE)
    assert.equal(meta.durationMs, MINUTE)
    assert.equal(meta.start, BigInt(ORIGIN + 2 * MINUTE) * 1_000_000n)
    assert.equal(meta.duration, BigInt(MINUTE) * 1_000_000n)
    assert.equal(c.windowIdxForTimestamp(ORIGIN + 3 * MINUTE - 1), 2)
    assert.equal(c.windowIdxForTimestamp(ORIGIN + 3 * MINUTE), 3)
    assert.equal(c.windowIdxForTimestamp(BigInt(ORIGIN + 5 * MINUTE) * 1_000_000n + 1n), 5)
    assertError(caught(() => c.windowIdxForTimestamp(ORIGIN + WINDOWS * MINUTE)), NoWindowForTimestampError, 'ERR_NO_WINDOW_FOR_TIMESTAMP')
  })

  it('the shared counters count what was done, as the API and the CLI report them', () => {
    const dir = join(root, 'metrics')
    const m = openLedger(dir, SCHEDULE).controller
    const sym = m.resolveSymbol('M')
    fillSlot(m, sym, 0, optionTrade)
    const kept = fillSlot(m, sym, 1, optionTrade)
    m.clearSlot(sym, 2, optionTrade, m.markPending(sym, 2, optionTrade, { leaseMs: LONG }))
    m.markPending(sym, 3, optionTrade, { leaseMs: LONG })
    assertError(caught(() => m.markPending(sym, 3, optionTrade)), SlotBusyError, 'ERR_SLOT_BUSY')
    assertError(caught(() => m.setRef(sym, 1, optionTrade, { payloadType: 'Json', payloadId: kept.payloadId, version: kept.claim.version, checksum: kept.checksum })), VersionConflictError, 'ERR_VERSION_CONFLICT')
    const expiring = m.markPending(sym, 4, optionTrade, { leaseMs: 0 })
    assert.equal(m.markPending(sym, 4, optionTrade, { leaseMs: LONG }).version, expiring.version + 1)
    assert.deepEqual(m.retire(sym, 5, optionTrade), { from: 'Empty', to: 'Retired', version: 1 })
    assert.deepEqual(m.forceClear(sym, 0, optionTrade, { reason: 'redo window 0' }), { from: 'Filled', to: 'Cleared', version: 3 })
    fillSlot(m, sym, 0, 'greeks')

    assert.deepEqual(m.eventCounts('trade'), { claims: 6, takeovers: 1, fills: 2, conflicts: 1, clears: 1, forceClears: 1, retires: 1, busy: 1 })
    assert.deepEqual(m.eventCounts('enrichment'), { claims: 1, takeovers: 0, fills: 1, conflicts: 0, clears: 0, forceClears: 0, retires: 0, busy: 0 })
    const counts = Object.fromEntries(m.slotMetrics().map((x) => [x.slot, x.counts]))
    assert.deepEqual(counts.optionTrade, { Empty: WINDOWS - 6, Pending: 2, Filled: 1, Cleared: 2, Retired: 1 })
    assert.deepEqual(counts.greeks, { Empty: WINDOWS - 1, Pending: 0, Filled: 1, Cleared: 0, Retired: 0 })
    assert.deepEqual(counts.rfRate, { Empty: WINDOWS, Pending: 0, Filled: 0, Cleared: 0, Retired: 0 })
    assert.deepEqual(m.recountSlots(), m.slotMetrics())
    assert.equal(m.payloadStores().trades.length, 2)
    assert.equal(m.payloadStores().greeks.length, 1)
    const audit = readAuditLog(dir).filter((e) => e.phase !== 'intent').map((e) => [e.action, e.window])
    assert.deepEqual(audit, [['takeover', 4], ['retire', 5], ['forceClear', 0]])
    m.close()

    const r = runCli(['metrics', dir])
    assert.equal(r.status, 0, `metrics ${dir} exited with ${r.status}: ${r.error?.message ?? ''}${r.stderr}`)
    const sample = (line) => {
      const found = r.stdout.split('\n').find((l) => l.startsWith(`${line} `))
      assert.ok(found, `metrics output has no ${line}`)
      return Number(found.slice(line.length + 1))
    }
    assert.equal(sample('window_space_transitions_total{ledger="trade",transition="claim"}'), 6)
    assert.equal(sample('window_space_transitions_total{ledger="trade",transition="fill"}'), 2)
    assert.equal(sample('window_space_transitions_total{ledger="trade",transition="force_clear"}'), 1)
    assert.equal(sample('window_space_lease_takeovers_total{ledger="trade"}'), 1)
    assert.equal(sample('window_space_busy_refusals_total{ledger="trade"}'), 1)
    assert.equal(sample('window_space_version_conflicts_total{ledger="trade"}'), 1)
    assert.equal(sample('window_space_slots{ledger="trade",slot="optionTrade",status="Cleared"}'), 2)
    assert.equal(sample('window_space_slots{ledger="enrichment",slot="greeks",status="Filled"}'), 1)
    assert.equal(sample('window_space_payload_appends_total{store="trades"}'), 2)
    const counted = verifyWithCli(dir)
    assert.equal(counted.filledSlots, 2)
    assert.equal(counted.records, 3)
  })

  it('waitFor and watch see the fills another process makes', PROCESS_TEST, async () => {
    const sym = c.resolveSymbol('WATCH')
    const kinds = ['optionQuote', 'underlyingQuote']
    assertError(await rejected(c.waitFor(sym, 4, kinds, { timeoutMs: 20 })), WaitTimeoutError, 'ERR_WAIT_TIMEOUT')
    const abort = new AbortController()
    const aborted = c.waitFor(sym, 4, kinds, { signal: abort.signal })
    abort.abort()
    assertError(await rejected(aborted), AbortError, 'ERR_ABORTED')

    const from = { epoch: c.journalEpoch(), seq: c.journalHead() }
    // Stopped when the test ends, whatever its outcome: nothing of it outlives the test.
    const stop = new AbortController()
    const changes = c.watch({ from, symbols: ['WATCH'], slotKinds: kinds, signal: stop.signal })
    const seen = (async () => {
      const out = []
      for await (const change of changes) {
        out.push(change)
        if (out.length === 4) break
      }
      return out
    })()
    const ready = c.waitFor('WATCH', 3, kinds, { signal: stop.signal })
    seen.catch(() => {})
    ready.catch(() => {})

    let filled, slots, got
    try {
      const child = spawnChild('fill', { dir: mainDir, schedule: SCHEDULE, symbol: 'WATCH', window: 3, kinds })
      filled = (await child.next()).filled
      assert.deepEqual(await child.exited, { code: 0, signal: null })
      slots = await ready
      got = await seen
    } finally {
      stop.abort()
    }
    assert.deepEqual(filled.map((f) => [f.kind, f.version]), [['optionQuote', 2], ['underlyingQuote', 2]])
    assert.deepEqual(slots.map((s) => [s.status, s.version, s.payloadId]), filled.map((f) => ['Filled', f.version, f.payloadId]))
    assert.equal(got.length, 4)
    for (const f of filled) {
      const mine = got.filter((ch) => ch.slotKind === f.kind)
      assert.deepEqual(mine.map((ch) => [ch.symbol, ch.symbolId, ch.windowIdx, ch.from, ch.to, ch.version, ch.payloadId]), [
        ['WATCH', sym, 3, 'Empty', 'Pending', 1, null],
        ['WATCH', sym, 3, 'Pending', 'Filled', 2, f.payloadId],
      ])
    }
    for (const [i, ch] of got.entries()) {
      assert.equal(ch.epoch, from.epoch)
      assert.ok(ch.seq >= (i === 0 ? from.seq : got[i - 1].seq + 1), `change ${i} at seq ${ch.seq}, after ${i === 0 ? `the start ${from.seq}` : got[i - 1].seq}`)
    }
    assert.equal(c.isReady(sym, 3, kinds), true)
  })

  it('processes racing for the same slots: each slot has exactly one winner', PROCESS_TEST, async (t) => {
    const windows = 24
    const schedule = { ...SCHEDULE, windowCount: windows }
    const dir = join(root, 'race')
    const rc = openLedger(dir, schedule).controller
    rc.resolveSymbol('RACE')
    const modes = ['object', 'raw', 'batch', 'object']
    const children = modes.map((mode, id) => spawnChild('race', { dir, schedule, symbol: 'RACE', windows, id, mode, leaseMs: LONG }))
    for (const child of children) assert.deepEqual(await child.next(), { ready: true })
    for (const child of children) child.send('go')
    const results = []
    for (const child of children) results.push(await child.next())
    for (const child of children) assert.deepEqual(await child.exited, { code: 0, signal: null })
    t.diagnostic(`windows won: ${results.map((r, id) => `${modes[id]} ${r.won.length}`).join(', ')}`)

    const winner = new Map()
    for (const [id, r] of results.entries()) {
      for (const w of r.won) {
        assert.ok(!winner.has(w), `window ${w} won by child ${winner.get(w)} and child ${id}`)
        winner.set(w, id)
      }
      // A child that tried every window won it or was refused it.
      if (modes[id] !== 'batch') assert.equal(r.won.length + r.refused.ERR_SLOT_BUSY + r.refused.ERR_SLOT_FILLED, windows, `child ${id}`)
    }
    assert.deepEqual([...winner.keys()].sort((x, y) => x - y), range(windows))

    const trades = rc.payloadStores().trades
    for (let w = 0; w < windows; w++) {
      const slot = rc.getSlot('RACE', w, optionTrade)
      assert.equal(slot.status, 'Filled', `window ${w}`)
      assert.equal(slot.version, 2, `window ${w}`)
      const record = trades.get(slot.payloadId)
      assert.equal(record.windowIdx, w)
      assert.equal(record.checksum, slot.checksum)
      assert.ok(record.uri.includes(`by-c${winner.get(w)}`), `window ${w}: record ${record.uri} is not its winner's (child ${winner.get(w)})`)
    }
    assert.equal(trades.length, windows)
    const events = rc.eventCounts('trade')
    assert.deepEqual([events.claims, events.fills, events.takeovers, events.clears], [windows, windows, 0, 0])
    const reported = results.reduce((n, r) => n + r.refused.ERR_SLOT_BUSY + r.refused.ERR_SLOT_FILLED, 0)
    assert.ok(events.busy + events.conflicts >= reported, `counters ${events.busy} busy + ${events.conflicts} conflicts, children saw ${reported} refusals`)
    assert.deepEqual(rc.recountSlots(), rc.slotMetrics())
    rc.close()
    const counted = verifyWithCli(dir)
    assert.equal(counted.filledSlots, windows)
    assert.equal(counted.records, windows)
  })

  it('a claim holder killed with SIGKILL keeps its slot until its lease ends; then another process takes it over and the dead claim no longer fills', PROCESS_TEST, async () => {
    const sym = c.resolveSymbol('HOLD')
    const takeovers = c.eventCounts('trade').takeovers
    const holder = spawnChild('hold', { dir: mainDir, schedule: SCHEDULE, symbol: 'HOLD', window: 0 })
    const held = await holder.next()
    const slot = c.getSlot(sym, 0, optionTrade)
    assert.deepEqual([slot.status, slot.version, slot.leaseExpiresAt], ['Pending', held.claim.version, held.claim.leaseExpiresAt])
    const busy = caught(() => c.markPending(sym, 0, optionTrade, { leaseMs: LONG }))
    assertError(busy, SlotBusyError, 'ERR_SLOT_BUSY')
    assert.equal(busy.slot.version, held.claim.version)

    // The holder shortens its lease, then dies holding the claim.
    holder.send('renew 500')
    const { renewed } = await holder.next()
    assert.equal(renewed.version, held.claim.version)
    holder.proc.kill('SIGKILL')
    assert.deepEqual(await holder.exited, { code: null, signal: 'SIGKILL' })
    const orphan = c.getSlot(sym, 0, optionTrade)
    assert.deepEqual([orphan.status, orphan.version, orphan.leaseExpiresAt], ['Pending', held.claim.version, renewed.leaseExpiresAt])

    // Until the deadline the slot stays the dead holder's; then it is taken over.
    let taken = null
    for (let tries = 0; taken === null; tries++) {
      assert.ok(tries < 1000, 'the expired claim was never taken over')
      taken = c.tryMarkPending(sym, 0, optionTrade, { leaseMs: LONG })
      if (taken === null) {
        assert.equal(c.getSlot(sym, 0, optionTrade).version, held.claim.version)
        await sleep(Math.max(5, renewed.leaseExpiresAt - Date.now() + 5))
      }
    }
    assert.equal(taken.version, held.claim.version + 1)
    assert.equal(c.eventCounts('trade').takeovers, takeovers + 1)
    const audit = readAuditLog(mainDir).at(-1)
    assert.deepEqual([audit.action, audit.symbol, audit.slot, audit.window, audit.version], ['takeover', 'HOLD', 'optionTrade', 0, taken.version])
    assert.deepEqual([audit.previous.status, audit.previous.version], ['Pending', held.claim.version])

    // Fencing: nothing of the dead claim's version goes through.
    const dead = { symbolId: sym, windowIdx: 0, slotKind: optionTrade, version: held.claim.version, leaseExpiresAt: renewed.leaseExpiresAt }
    const record = c.payloadStores().trades.get(held.payloadId)
    assert.equal(record.uri, held.uri)
    const late = caught(() => c.setRef(sym, 0, optionTrade, { payloadType: 'Json', payloadId: held.payloadId, version: dead.version, checksum: record.checksum }))
    assertError(late, VersionConflictError, 'ERR_VERSION_CONFLICT')
    assert.deepEqual([late.slot.status, late.slot.version], ['Pending', taken.version])
    assert.equal(c.raw.fill(sym, 0, optionTrade.code, dead.version, PayloadType.Json, held.payloadId, ...split(record.checksum)), Refusal.Conflict)
    assertError(caught(() => c.renewClaim(dead)), VersionConflictError, 'ERR_VERSION_CONFLICT')
    assertError(caught(() => c.clearSlot(sym, 0, optionTrade, dead)), VersionConflictError, 'ERR_VERSION_CONFLICT')
    assertError(caught(() => c.writeArtifact(dead, 'late.json', 'late')), VersionConflictError, 'ERR_VERSION_CONFLICT')
    assertError(caught(() => c.payloadStores().trades.append({ symbol: sym, windowIdx: 0, slotKind: optionTrade, payloadType: 'Json', uri: held.uri, checksum: record.checksum, size: record.size })), VersionConflictError, 'ERR_VERSION_CONFLICT')

    // The new holder finishes the slot.
    const made = produce(c, taken, 'taker')
    assert.equal(c.setRef(sym, 0, optionTrade, { payloadType: 'Json', payloadId: made.payloadId, version: taken.version, checksum: made.checksum }), taken.version + 1)
    const done = c.getSlot(sym, 0, optionTrade)
    assert.deepEqual([done.status, done.version, done.payloadId], ['Filled', taken.version + 1, made.payloadId])
  })

  it('reopening after close keeps every slot, record, symbol and counter, and a claim made before close still fills', () => {
    const sym = c.symbolId('SPY')
    const claim = c.markPending(sym, WINDOWS - 1, 'greeks', { leaseMs: LONG })
    const made = produce(c, claim, 'across-restart')
    const symbols = c.symbols()
    const before = snapshot(c)
    c.close()
    assert.equal(c.closed, true)
    assertError(caught(() => c.getSlot(sym, 0, optionTrade)), ClosedError, 'ERR_CLOSED')

    const reopened = openLedger(mainDir, SCHEDULE)
    c = reopened.controller
    assert.equal(reopened.storageReport.created, false)
    assert.equal(reopened.storageReport.schedule, 'same')
    assert.equal(reopened.storageReport.windowCount, WINDOWS)
    assert.equal(reopened.storageReport.symbols, symbols.length)
    assert.equal(snapshot(c), before)
    assert.equal(c.setRef(sym, WINDOWS - 1, 'greeks', { payloadType: 'Json', payloadId: made.payloadId, version: claim.version, checksum: made.checksum }), claim.version + 1)

    // A tool opens it without knowing the schedule, beside the engine.
    const tool = WindowSpaceController.openExisting(mainDir)
    assert.equal(tool.storageReport.exclusive, false)
    assert.equal(tool.controller.windowCount, WINDOWS)
    assert.deepEqual(tool.controller.symbols(), symbols)
    assert.deepEqual(tool.controller.getSlot('SPY', WINDOWS - 1, 'greeks'), c.getSlot('SPY', WINDOWS - 1, 'greeks'))
    assert.equal(tool.controller.getSlot('SPY', WINDOWS - 1, 'greeks').status, 'Filled')
    tool.controller.close()

    // Another schedule is refused and changes nothing.
    const otherSchedule = caught(() => openLedger(mainDir, { ...SCHEDULE, windowDuration: MINUTE / 2 }))
    assertError(otherSchedule, ScheduleMismatchError, 'ERR_SCHEDULE_MISMATCH')
    const filled = c.recountSlots().reduce((n, m) => n + m.counts.Filled, 0)
    const records = Object.values(c.payloadStores()).reduce((n, s) => n + s.length, 0)
    c.close()
    const counted = verifyWithCli(mainDir)
    assert.equal(counted.filledSlots, filled)
    assert.equal(counted.records, records)
  })
})
