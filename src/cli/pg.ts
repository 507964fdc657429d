/**
 * The commands that work on a window space in a PostgreSQL database, named
 * by a connection string (`postgres://…` or `postgresql://…`) in place of a
 * state directory and `--space NAME` (default `default`), opened only if
 * the database holds it, with its stored schedule (`existingOnly`: a
 * mistyped name never makes a new space). `inspect`, `grid`, `verify`,
 * `metrics`, `serve-metrics`, `export`, `audit`, `clear` and `retire` run over the `Ledger`
 * contract, `retention` over the PostgreSQL backend's partition drop; every other command works on a state directory only and
 * refuses a connection string ({@link refuseConnectionString}).
 *
 * @module
 */
import { Registry } from 'prom-client'

import type { AdminOptions } from '../args'
import { WindowSpaceController } from '../controller'
import { registerMetrics } from '../metrics'
import type { PostgresLedger } from '../postgres'
import { WindowSpace } from '../time'
import { SLOT_KIND_INFO } from '../vocabulary'
import type { GridCell } from '../state-view'
import { LEDGER_NAMES, SLOT_KIND_NAMES, SLOT_KINDS_OF_LEDGER, SLOT_STATUSES, STORE_OF_SLOT_KIND, type LedgerName, type SlotKindName, type SlotState, type SlotStatus } from '../types'
import { adminOptions, confirm, hex, json, ledgerArg, plural, printable, slotKinds, UsageError, whole, windowRange, windowsText, type Opts } from './args'
import { retentionAnchor } from './change'
import { gridSymbol, portArg, printGrid, serveRegistry } from './look'
import { LineWriter, out } from './output'
import { printVerifyText } from './verify'

/** The commands that take a connection string. */
export const PG_COMMANDS = ['inspect', 'grid', 'verify', 'metrics', 'serve-metrics', 'export', 'audit', 'clear', 'retire', 'retention'] as const

/** True when a command's first argument names a database rather than a directory. */
export function isConnectionString(arg: string): boolean {
  return /^postgres(ql)?:\/\//.test(arg)
}

/** The one-line refusal of a directory-only command given a connection string. */
export function refuseConnectionString(command: string): never {
  throw new UsageError(`${command} works on a state directory only; with a postgres:// connection string use ${PG_COMMANDS.join(', ')}`)
}

/** Refuses `--space` with a directory: it names a window space in a database. */
export function refuseDatabaseOptions(o: Opts): void {
  if (o.space !== undefined) throw new UsageError('--space names a window space in a database: give a postgres:// connection string in place of the directory')
}

/** A schedule to connect with: unused, since the space is opened with its stored one (`existingOnly`). */
const ANY_SCHEDULE = WindowSpace.uniform({ origin: 0, windowDuration: 60_000, windowCount: 1 })

async function connect(url: string, o: Opts, actor?: string): Promise<PostgresLedger> {
  const space = typeof o.space === 'string' ? o.space : 'default'
  return (await WindowSpaceController.connect(url, { windowSpace: ANY_SCHEDULE, space, connections: 1, existingOnly: true, ...(actor === undefined ? {} : { actor }) }))
}

async function withLedger<T>(url: string, o: Opts, f: (l: PostgresLedger) => Promise<T>, actor?: string): Promise<T> {
  const l = await connect(url, o, actor)
  try {
    return await f(l)
  } finally {
    await l.close()
  }
}

/** Symbols named by `--symbol` (a name, a comma-separated list, or `all`), as [name, id]. */
async function symbolsArg(l: PostgresLedger, spec: string | undefined, space: string): Promise<Array<[string, number]>> {
  const known = await l.symbols()
  if (spec === undefined || spec === 'all') return known.map((s) => [s.name, s.id])
  const out: Array<[string, number]> = []
  for (const s of spec.split(',').map((x) => x.trim()).filter((x) => x !== '')) {
    const found = known.find((k) => k.name === s)
    if (!found) throw new UsageError(`unknown symbol ${JSON.stringify(s)} in space ${space} (${known.length === 0 ? 'it has no symbols yet' : `known: ${known.slice(0, 10).map((k) => k.name).join(', ')}`})`)
    out.push([found.name, found.id])
  }
  if (out.length === 0) throw new UsageError('--symbol names no symbol')
  return out
}

const spaceOf = (o: Opts) => (typeof o.space === 'string' ? o.space : 'default')

export async function pgInspect(url: string, o: Opts): Promise<void> {
  if (o.bySymbol) throw new UsageError('--by-symbol works on a state directory only')
  await withLedger(url, o, async (l) => {
    const symbols = (await l.symbols()).map((s) => s.name)
    const slots = (await l.slotMetrics()).map((m) => ({ ledger: m.ledger, slot: m.slot, ...m.counts }))
    const info = { space: spaceOf(o), schedule: { kind: l.windowSpace.kind, windowCount: l.windowCount }, symbols, slots }
    if (o.json) return out(json(info))
    const lines = [
      `space           ${printable(info.space)} (PostgreSQL)`,
      `schedule        ${info.schedule.kind}, ${info.schedule.windowCount} windows`,
      `symbols         ${symbols.length}${symbols.length ? `: ${symbols.slice(0, 20).map(printable).join(', ')}${symbols.length > 20 ? ', …' : ''}` : ''}`,
      '',
      `${'ledger'.padEnd(11)}${'slot'.padEnd(20)}${SLOT_STATUSES.map((x) => x.padStart(10)).join('')}`,
    ]
    for (const m of slots) lines.push(`${m.ledger.padEnd(11)}${m.slot.padEnd(20)}${SLOT_STATUSES.map((x) => String(m[x]).padStart(10)).join('')}`)
    out(lines.join('\n'))
  })
}

export async function pgGrid(url: string, o: Opts): Promise<void> {
  const spec = gridSymbol(o)
  await withLedger(url, o, async (l) => {
    const [[symbol, symbolId]] = (await symbolsArg(l, spec, spaceOf(o))) as [[string, number]]
    const { from, to } = windowRange(l.windowCount, `space ${spaceOf(o)}`, { from: o.from as string | undefined, to: o.to as string | undefined }, false)
    const kinds = slotKinds(o.slot as string | undefined)
    const cells = Object.fromEntries(kinds.map((k) => [k, new Array<GridCell>(to - from).fill('Empty')])) as Record<SlotKindName, GridCell[]>
    // A lease is judged by this host's clock; the database's may differ by the hosts' skew.
    const now = Date.now()
    const chunk = 4096
    for (const ledger of LEDGER_NAMES) {
      const mine = kinds.filter((k) => (SLOT_KINDS_OF_LEDGER[ledger] as readonly string[]).includes(k))
      if (mine.length === 0) continue
      for (let a = from; a < to; a += chunk) {
        for (const row of await l.rows(symbolId, { from: a, to: Math.min(to, a + chunk) }, ledger)) {
          const r = row as unknown as Record<string, SlotState> & { windowIdx: number }
          for (const k of mine) {
            const st = r[k]!
            cells[k][r.windowIdx - from] = st.status === 'Pending' && st.leaseExpiresAt !== null && st.leaseExpiresAt <= now ? 'Stale' : st.status
          }
        }
      }
    }
    printGrid(symbol, from, to, kinds, cells, o)
  })
}

export async function pgVerify(url: string, o: Opts): Promise<void> {
  if (o.artifacts) throw new UsageError('--artifacts works on a state directory only (the database holds no artifact files)')
  await withLedger(url, o, async (l) => {
    const r = await l.verify()
    if (o.json) out(json({ space: spaceOf(o), ...r }))
    else printVerifyText(`verified space ${printable(spaceOf(o))}: ${r.counts.slots} slots written, ${r.counts.filledSlots} Filled, ${r.counts.records} records, ${r.counts.changes} changes`, r)
    if (!r.ok) process.exitCode = 1
  })
}

export async function pgServeMetrics(url: string, o: Opts): Promise<void> {
  const port = portArg(o)
  await withLedger(url, o, async (l) => {
    const registry = new Registry()
    registerMetrics(registry, l)
    await serveRegistry(registry, port, `space ${spaceOf(o)} of ${redacted(url)}`)
  })
}

/** A connection string without its password. */
function redacted(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return 'the database'
  }
}

export async function pgMetrics(url: string, o: Opts): Promise<void> {
  await withLedger(url, o, async (l) => {
    const registry = new Registry()
    registerMetrics(registry, l)
    out(await registry.metrics())
  })
}

function slotJson(state: SlotState, uri: string | undefined): Record<string, unknown> {
  if (state.status === 'Filled') return { status: state.status, version: state.version, payloadType: state.payloadType, payloadId: state.payloadId, checksum: hex(state.checksum), uri }
  if (state.status === 'Pending') return { status: state.status, version: state.version, leaseExpiresAt: new Date(state.leaseExpiresAt!).toISOString() }
  return { status: state.status, version: state.version }
}

export async function pgExport(url: string, o: Opts): Promise<void> {
  await withLedger(url, o, async (l) => {
    const syms = await symbolsArg(l, o.symbol as string | undefined, spaceOf(o))
    const ledgers: LedgerName[] = o.ledger === undefined ? [...LEDGER_NAMES] : [ledgerArg(String(o.ledger))]
    const { from, to } = windowRange(l.windowCount, `space ${spaceOf(o)}`, { from: o.from as string | undefined, to: o.to as string | undefined }, false)
    const w = new LineWriter()
    const chunk = 4096
    for (const ledger of ledgers) {
      for (const [symbol, symbolId] of syms) {
        for (let a = from; a < to; a += chunk) {
          for (const row of await l.rows(symbolId, { from: a, to: Math.min(to, a + chunk) }, ledger)) {
            const r = row as unknown as Record<string, unknown> & { windowIdx: number }
            const kinds = SLOT_KIND_NAMES.filter((k) => k in r)
            if (o.allRows !== true && kinds.every((k) => (r[k] as SlotState).status === 'Empty')) continue
            const slots: Record<string, unknown> = {}
            for (const k of kinds) {
              const st = r[k] as SlotState
              const uri = st.status === 'Filled' ? (await l.getPayload(STORE_OF_SLOT_KIND[k], st.payloadId))?.uri : undefined
              slots[k] = slotJson(st, uri)
            }
            w.line(JSON.stringify({ ledger, symbol, symbolId, windowIdx: r.windowIdx, slots }))
          }
        }
      }
    }
    w.flush()
  })
}

export async function pgAudit(url: string, o: Opts): Promise<void> {
  await withLedger(url, o, async (l) => {
    let entries = await l.audit()
    if (o.last !== undefined) {
      const n = Number(o.last)
      if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`--last must be a whole number, got ${JSON.stringify(o.last)}`)
      entries = n === 0 ? [] : entries.slice(-n)
    }
    if (o.json) {
      const w = new LineWriter()
      for (const e of entries) w.line(JSON.stringify(e))
      return w.flush()
    }
    out(
      entries
        .map((e) => `${e.action === 'retention' ? `retention before window ${e.windowIdx}` : `${e.action} ${e.symbolId ?? '-'}/${e.windowIdx ?? '-'}/${e.slotKind ?? '-'}`} by ${printable(e.actor)}: ${printable(e.reason)}`)
        .join('\n'),
    )
  })
}

export async function pgAdmin(action: 'clear' | 'retire', url: string, o: Opts): Promise<void> {
  if (o.symbol === undefined) throw new UsageError('--symbol is required (a symbol, a comma-separated list, or all)')
  if (o.slot === undefined) throw new UsageError(`--slot is required (${SLOT_KIND_NAMES.join(', ')}, or all)`)
  const who = adminOptions(o)
  await withLedger(
    url,
    o,
    async (l) => {
      const syms = await symbolsArg(l, String(o.symbol), spaceOf(o))
      const kinds: SlotKindName[] = slotKinds(String(o.slot))
      const range = windowRange(l.windowCount, `space ${spaceOf(o)}`, { window: o.window as string | undefined, from: o.from as string | undefined, to: o.to as string | undefined }, true)
      const changes = action === 'clear' ? (st: SlotStatus) => st === 'Pending' || st === 'Filled' : (st: SlotStatus) => st !== 'Retired'
      const would = Object.fromEntries(SLOT_STATUSES.map((s) => [s, 0])) as Record<SlotStatus, number>
      for (const [, id] of syms) {
        for (const ledger of LEDGER_NAMES) {
          const ks = kinds.filter((k) => SLOT_KIND_INFO[k].ledger === ledger)
          if (ks.length === 0) continue
          for (const row of await l.rows(id, range, ledger)) {
            for (const k of ks) {
              const st = ((row as unknown as Record<string, SlotState>)[k]!).status
              if (changes(st)) would[st]++
            }
          }
        }
      }
      const n = Object.values(would).reduce((a, b) => a + b, 0)
      const verb = action === 'clear' ? 'force-clear' : 'retire'
      const byStatus = SLOT_STATUSES.filter((s) => would[s] > 0).map((s) => `${would[s]} ${s}`).join(', ') || 'none'
      const what = `${verb} ${plural(n, 'slot')} (${byStatus}) of ${syms.map(([s]) => printable(s)).join(', ')}, ${kinds.length === SLOT_KIND_NAMES.length ? 'every slot kind' : kinds.join(', ')}, ${windowsText(range)}`
      const summary = { action, dryRun: Boolean(o.dryRun), symbols: syms.map(([s]) => s), slots: kinds, from: range.from, to: range.to, wouldChange: would, changed: 0 }
      if (o.dryRun || n === 0) {
        if (o.json) return out(json(summary))
        return out(n === 0 ? `nothing to ${action}: no slot in that range ${action === 'clear' ? 'is Pending or Filled' : 'is not Retired already'}` : `would ${what} (dry run: nothing changed)`)
      }
      await confirm(`${what}?`, o)
      const options: AdminOptions = who
      for (const [, id] of syms) {
        for (const k of kinds) summary.changed += action === 'clear' ? await l.forceClearRange(id, range, k, options) : await l.retireRange(id, range, k, options)
      }
      if (o.json) return out(json(summary))
      out(`${action === 'clear' ? 'force-cleared' : 'retired'} ${plural(summary.changed, 'slot')}`)
    },
    who.actor,
  )
}

/**
 * Retention on a database: the windows before the last `--keep` windows
 * before the anchor (now, `--at`, or `--before-window`) become Retired,
 * rounded down to a partition boundary, and their partitions are dropped
 * whole. Refused while a slot there is Pending under a running lease,
 * unless `--force`.
 */
export async function pgRetention(url: string, o: Opts): Promise<void> {
  if (o.keep === undefined) throw new UsageError('--keep N is required')
  const keep = whole(String(o.keep), '--keep')
  const who = adminOptions(o)
  await withLedger(
    url,
    o,
    async (l) => {
      const anchor = retentionAnchor(o, l.windowCount, `space ${spaceOf(o)}`, (ms) => l.windowsStartedBy(ms))
      const asked = Math.max(0, anchor.window - keep)
      const plan = await l.dropWindowsBefore(asked, { ...who, dryRun: true })
      // `retiredBefore`: the line the run sets (or would set); `previous`: the line before it.
      const summary = {
        space: spaceOf(o),
        keep,
        anchorWindow: anchor.window,
        partitionWindows: l.partitionWindows,
        previous: plan.previous,
        retiredBefore: plan.retiredBefore,
        partitions: plan.dropped,
        liveClaims: plan.liveClaims,
        dryRun: Boolean(o.dryRun),
        changed: false,
      }
      if (plan.retiredBefore <= plan.previous) {
        if (o.json) return out(json(summary))
        return out(
          `nothing to retire: keeping the ${keep} windows before ${anchor.what} leaves the retention line at window ${plan.previous} (partitions of ${l.partitionWindows} windows are retired whole)`,
        )
      }
      const kept = keep === 0 ? `no window before ${anchor.what} is kept` : `the ${keep} windows before ${anchor.what} are kept`
      const what = `retire windows ${plan.previous}..${plan.retiredBefore - 1} of space ${printable(spaceOf(o))} and drop ${plural(plan.dropped.length, 'partition')} (${kept}; partitions of ${l.partitionWindows} windows go whole)`
      const live = `${plural(plan.liveClaims, 'slot')} before window ${plan.retiredBefore} ${plan.liveClaims === 1 ? 'is' : 'are'} Pending under a running lease`
      if (o.dryRun) {
        if (o.json) return out(json(summary))
        return out(`would ${what}${plan.liveClaims > 0 ? `; ${live}: ${o.force ? '--force retires them too' : 'without --force the run is refused'}` : ''} (dry run: nothing changed)`)
      }
      if (plan.liveClaims > 0 && !o.force) throw new UsageError(`${live} (an engine is working there): wait for it, or give --force to retire them anyway`)
      await confirm(`${what}?`, o)
      const done = await l.dropWindowsBefore(asked, { ...who, force: o.force === true })
      summary.previous = done.previous
      summary.retiredBefore = done.retiredBefore
      summary.partitions = done.dropped
      summary.liveClaims = done.liveClaims
      summary.changed = !done.unchanged
      const stopped = done.stopped === null ? null : `stopped at window ${done.retiredBefore} before window ${plan.retiredBefore}: ${done.stopped.message}`
      // A run that stopped part way did what its committed steps did: said, then exit 1.
      if (stopped !== null) process.exitCode = 1
      if (o.json) return out(json({ ...summary, stopped }))
      out(
        done.unchanged
          ? `nothing to retire: the retention line is at window ${done.retiredBefore} already`
          : `retired windows ${done.previous}..${done.retiredBefore - 1} and dropped ${plural(done.dropped.length, 'partition')}; payload records are kept${stopped === null ? '' : `\n${stopped}; run it again to go on`}`,
      )
    },
    who.actor,
  )
}
