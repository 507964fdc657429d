// registerMetrics: scrapes a prom-client Registry, parses the text format and
// checks every value against the ledger after real transitions (claims,
// takeovers, fills, conflicts, clears, force-clears, retires, appends), made
// by this controller and by a second one on the same directory.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry, register as globalRegistry } from 'prom-client'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import {
  InvalidArgumentError,
  METRIC_NAMES,
  PAYLOAD_STORE_NAMES,
  SLOT_STATUSES,
  SlotBusyError,
  VersionConflictError,
  WindowSpace,
  WindowSpaceConfig,
  WindowSpaceController,
  registerMetrics,
  type BootstrapResult,
} from '../src/index'
import { caught } from './helpers'

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** Parses the Prometheus text exposition format (what `registry.metrics()` returns). */
function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = []
  const types = new Map<string, string>()
  for (const line of text.split('\n')) {
    if (line === '') continue
    const type = /^# TYPE (\S+) (\S+)$/.exec(line)
    if (type) {
      types.set(type[1]!, type[2]!)
      continue
    }
    if (line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) throw new Error(`not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!
    samples.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return { samples, types }
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`)
  return found[0]?.value
}

let dir: string
let opened: BootstrapResult[]
const schedule = WindowSpace.uniform({ origin: 0, windowDuration: 60_000, windowCount: 20 })

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ws-metrics-'))
  opened = []
})
afterEach(() => {
  for (const o of opened) o.controller.close()
  rmSync(dir, { recursive: true, force: true })
})

function open(): BootstrapResult {
  const r = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, schedule))
  opened.push(r)
  return r
}

/** Claim → artifact → append → fill, as an engine does. */
function fill(c: WindowSpaceController, symbol: string, w: number, slot: 'optionTrade' | 'greeks' | 'optionQuote') {
  const claim = c.markPending(symbol, w, slot)
  const a = c.writeArtifact(`${symbol}/${w}/${slot}.txt`, `${symbol} ${w} ${slot}`)
  const store = slot === 'greeks' ? c.payloadStores().greeks : slot === 'optionQuote' ? c.payloadStores().quotes : c.payloadStores().trades
  const payloadId = store.append({ symbol, windowIdx: w, slotKind: slot, payloadType: 'Text', uri: a.uri, checksum: a.checksum, size: a.size })
  c.setRef(symbol, w, slot, { payloadType: 'Text', payloadId, version: claim.version, checksum: a.checksum })
}

describe('registerMetrics', () => {
  it('reports slot counts, transitions, conflicts, takeovers and appends that match the ledger', async () => {
    const boot = open()
    const c = boot.controller
    c.resolveSymbol('SPY')
    c.resolveSymbol('AAPL')
    const registry = new Registry()
    const handle = registerMetrics(registry, boot)
    expect(handle.names).toEqual(Object.values(METRIC_NAMES))

    for (let w = 0; w < 5; w++) fill(c, 'SPY', w, 'optionTrade')
    fill(c, 'AAPL', 3, 'greeks')
    fill(c, 'AAPL', 4, 'optionQuote')
    // A claim that expires at once, taken over; the first holder's fill is then a conflict.
    const stale = c.markPending('SPY', 7, 'optionTrade', { leaseMs: 0 })
    const fresh = c.markPending('SPY', 7, 'optionTrade', { leaseMs: 60_000 })
    expect(fresh.version).toBe(stale.version + 1)
    expect(caught(() => c.setRef('SPY', 7, 'optionTrade', { payloadType: 'Text', payloadId: 0, version: stale.version, checksum: 1n }))).toBeInstanceOf(VersionConflictError)
    expect(caught(() => c.markPending('SPY', 7, 'optionTrade'))).toBeInstanceOf(SlotBusyError)
    const failed = c.markPending('SPY', 8, 'optionTrade')
    c.clearSlot('SPY', 8, 'optionTrade', failed)
    c.forceClear('SPY', 0, 'optionTrade')
    c.retireRange('AAPL', { from: 10, to: 15 }, 'greeks')

    // A second controller on the same directory: its transitions reach the same shared counters.
    const other = WindowSpaceController.openExisting(dir)
    opened.push(other)
    fill(other.controller, 'AAPL', 9, 'optionTrade')

    const { samples, types } = parse(await registry.metrics())
    expect(types.get('window_space_slots')).toBe('gauge')
    expect(types.get('window_space_transitions_total')).toBe('counter')
    expect(types.get('window_space_payload_appends_total')).toBe('counter')

    // Slots: every (ledger, slot, status) equals an exact recount of the ledger.
    const recount = c.recountSlots()
    expect(samples.filter((s) => s.name === 'window_space_slots')).toHaveLength(recount.length * SLOT_STATUSES.length)
    for (const m of recount) {
      for (const status of SLOT_STATUSES) {
        expect(value(samples, 'window_space_slots', { ledger: m.ledger, slot: m.slot, status }), `${m.slot} ${status}`).toBe(m.counts[status])
      }
    }
    // Spot checks against what this test did, so a recount bug cannot hide a metrics bug.
    expect(value(samples, 'window_space_slots', { ledger: 'trade', slot: 'optionTrade', status: 'Filled' })).toBe(5) // SPY 1..4, AAPL 9
    expect(value(samples, 'window_space_slots', { ledger: 'trade', slot: 'optionTrade', status: 'Cleared' })).toBe(2) // SPY 0 (forced), SPY 8
    expect(value(samples, 'window_space_slots', { ledger: 'trade', slot: 'optionTrade', status: 'Pending' })).toBe(1) // SPY 7
    expect(value(samples, 'window_space_slots', { ledger: 'enrichment', slot: 'greeks', status: 'Retired' })).toBe(5)
    expect(value(samples, 'window_space_slots', { ledger: 'trade', slot: 'optionTrade', status: 'Empty' })).toBe(2 * 20 - 8)

    // Transitions and refusals equal the ledgers' event counters, and what the test did.
    for (const ledger of ['trade', 'enrichment'] as const) {
      const ev = c.eventCounts(ledger)
      const t = (transition: string) => value(samples, 'window_space_transitions_total', { ledger, transition })
      expect(t('claim')).toBe(ev.claims)
      expect(t('takeover')).toBe(ev.takeovers)
      expect(t('fill')).toBe(ev.fills)
      expect(t('clear')).toBe(ev.clears)
      expect(t('force_clear')).toBe(ev.forceClears)
      expect(t('retire')).toBe(ev.retires)
      expect(value(samples, 'window_space_version_conflicts_total', { ledger })).toBe(ev.conflicts)
      expect(value(samples, 'window_space_lease_takeovers_total', { ledger })).toBe(ev.takeovers)
      expect(value(samples, 'window_space_busy_refusals_total', { ledger })).toBe(ev.busy)
    }
    expect(value(samples, 'window_space_transitions_total', { ledger: 'trade', transition: 'fill' })).toBe(7) // 5 SPY + AAPL quote + AAPL 9
    expect(value(samples, 'window_space_transitions_total', { ledger: 'trade', transition: 'takeover' })).toBe(1)
    expect(value(samples, 'window_space_version_conflicts_total', { ledger: 'trade' })).toBe(1)
    expect(value(samples, 'window_space_busy_refusals_total', { ledger: 'trade' })).toBe(1)
    expect(value(samples, 'window_space_transitions_total', { ledger: 'enrichment', transition: 'retire' })).toBe(5)

    // Appends per store = records in the mapping table (including the other controller's).
    for (const store of PAYLOAD_STORE_NAMES) expect(value(samples, 'window_space_payload_appends_total', { store })).toBe(c.payloadStores()[store].length)
    expect(value(samples, 'window_space_payload_appends_total', { store: 'trades' })).toBe(6)

    expect(value(samples, 'window_space_bootstrap_duration_seconds')).toBeCloseTo(boot.storageReport.elapsedMs / 1000, 9)
    expect(value(samples, 'window_space_bootstrap_stale_claims')).toBe(0)

    // The next scrape sees new transitions (values are read at scrape time, not cached).
    fill(c, 'AAPL', 10, 'optionTrade')
    const again = parse(await registry.metrics()).samples
    expect(value(again, 'window_space_slots', { ledger: 'trade', slot: 'optionTrade', status: 'Filled' })).toBe(6)
    expect(value(again, 'window_space_payload_appends_total', { store: 'trades' })).toBe(7)
  })

  it('never touches the global registry and refuses a registry that already has the names', async () => {
    const { controller } = open()
    const registry = new Registry()
    const h = registerMetrics(registry, controller)
    expect(h.names).not.toContain('window_space_bootstrap_duration_seconds') // no storage report given
    expect(globalRegistry.getSingleMetric('window_space_slots')).toBeUndefined()
    const e = caught(() => registerMetrics(registry, controller))
    expect(e).toBeInstanceOf(InvalidArgumentError)
    expect((e as InvalidArgumentError).code).toBe('ERR_INVALID_ARGUMENT')
    expect(caught(() => registerMetrics(undefined as unknown as Registry, controller))).toBeInstanceOf(TypeError)
    // Unregister removes exactly these metrics; the registry can take them again.
    h.unregister()
    h.unregister()
    expect(await registry.metrics()).not.toContain('window_space_')
    registerMetrics(registry, controller)
    expect(await registry.metrics()).toContain('window_space_slots{')
  })

  it('after close() a scrape does not throw, reports no samples and the metrics leave the registry', async () => {
    const boot = open()
    const registry = new Registry()
    registry.registerMetric(new (await import('prom-client')).Gauge({ name: 'other_metric', help: 'x', registers: [] }))
    registerMetrics(registry, boot)
    boot.controller.resolveSymbol('SPY')
    fill(boot.controller, 'SPY', 0, 'optionTrade')
    expect(value(parse(await registry.metrics()).samples, 'window_space_slots', { slot: 'optionTrade', status: 'Filled' })).toBe(1)
    boot.controller.close()
    const first = parse(await registry.metrics()).samples
    expect(first.filter((s) => s.name.startsWith('window_space_') && !s.name.startsWith('window_space_bootstrap'))).toEqual([])
    const second = await registry.metrics()
    expect(second).not.toContain('window_space_')
    expect(second).toContain('other_metric')
  })
})
