/**
 * Prometheus metrics of an open state directory, on a prom-client `Registry`
 * the caller passes in (never the global one): {@link registerMetrics}.
 *
 * Every value is read in `collect()` at scrape time from the counters the
 * ledgers keep in their shared header page (the same numbers as
 * `slotMetrics()` and `eventCounts()`), plus the length of each payload
 * store. A scrape therefore costs O(1) in the size of the ledger: no scan.
 * The counters are shared by every process that has the directory open, so
 * one scraper sees the whole fleet's transitions.
 *
 * A PostgreSQL ledger (`WindowSpaceController.connect`) has the slot
 * gauge only, under the same name and labels, read with one `slotMetrics()`
 * query at scrape time. The other metrics have no PostgreSQL source: the
 * database keeps no transition, conflict, takeover or busy-refusal counters
 * (refused calls write nothing, and the change feed can be pruned, so it is
 * no count since creation), payload ids come from a sequence with gaps (no
 * record count), and connecting is no bootstrap (no duration, no scan for
 * stale claims). Those are not registered rather than reported as zero.
 *
 * This module owns the metric names and labels; `docs/operations.md` says
 * which alerts to build on them.
 *
 * @module
 */
import type { Registry } from 'prom-client'

import type { BootstrapResult, WindowSpaceController } from './controller'
import { StateView } from './state-view'
import { ClosedError, InvalidArgumentError } from './errors'
import type { Ledger } from './ledger'
import { MmapLedger } from './ledger'
import { LEDGER_NAMES, PAYLOAD_STORE_NAMES, SLOT_STATUSES, type LedgerEventCounts, type LedgerName, type StorageReport } from './types'

/** Names of every metric {@link registerMetrics} may register. */
export const METRIC_NAMES = {
  slots: 'window_space_slots',
  transitions: 'window_space_transitions_total',
  versionConflicts: 'window_space_version_conflicts_total',
  leaseTakeovers: 'window_space_lease_takeovers_total',
  busyRefusals: 'window_space_busy_refusals_total',
  payloadAppends: 'window_space_payload_appends_total',
  bootstrapDuration: 'window_space_bootstrap_duration_seconds',
  bootstrapStaleClaims: 'window_space_bootstrap_stale_claims',
} as const

/** What {@link registerMetrics} returns. */
export interface RegisteredMetrics {
  /** Names of the metrics registered (the bootstrap gauges only when a storage report was given). */
  readonly names: readonly string[]
  /** Removes these metrics from the registry; idempotent. Other metrics of the registry stay. */
  unregister(): void
}

/** The transition label values of `window_space_transitions_total`, by event counter. */
const TRANSITIONS: ReadonlyArray<readonly [keyof LedgerEventCounts, string]> = [
  ['claims', 'claim'],
  ['takeovers', 'takeover'],
  ['fills', 'fill'],
  ['clears', 'clear'],
  ['forceClears', 'force_clear'],
  ['retires', 'retire'],
]
const LEDGERS: readonly LedgerName[] = LEDGER_NAMES

interface PromClient {
  Gauge: typeof import('prom-client').Gauge
  Counter: typeof import('prom-client').Counter
}

/** prom-client is loaded on first use, so importing window-space stays cheap for engines that never export metrics. */
function promClient(): PromClient {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('prom-client') as PromClient
}

function isBootstrapResult(v: unknown): v is BootstrapResult {
  return typeof v === 'object' && v !== null && 'controller' in v && 'storageReport' in v
}

/** What the metrics read, from a controller or a read-only view. */
interface Counters {
  readonly closed: boolean
  slotMetrics(): ReturnType<WindowSpaceController['slotMetrics']>
  eventCounts(ledger: LedgerName): LedgerEventCounts
  records(): Record<string, number>
}

function countersOf(source: WindowSpaceController | StateView): Counters {
  if (source instanceof StateView) {
    return { closed: false, slotMetrics: () => source.slotMetrics(), eventCounts: (l) => source.eventCounts(l), records: () => source.recordCounts() }
  }
  const stores = source.payloadStores()
  return {
    get closed() {
      return source.closed
    },
    slotMetrics: () => source.slotMetrics(),
    eventCounts: (l) => source.eventCounts(l),
    records: () => Object.fromEntries(PAYLOAD_STORE_NAMES.map((s) => [s, stores[s].length])),
  }
}

/**
 * Registers the metrics of one open state directory on `registry`:
 *
 * | metric | type | labels |
 * | --- | --- | --- |
 * | `window_space_slots` | gauge | `ledger`, `slot`, `status` (Empty … Retired) |
 * | `window_space_transitions_total` | counter | `ledger`, `transition` (claim, takeover, fill, clear, force_clear, retire) |
 * | `window_space_version_conflicts_total` | counter | `ledger` |
 * | `window_space_lease_takeovers_total` | counter | `ledger` |
 * | `window_space_busy_refusals_total` | counter | `ledger` (claims refused because a live claim held the slot) |
 * | `window_space_payload_appends_total` | counter | `store` (records in the mapping table) |
 * | `window_space_bootstrap_duration_seconds` | gauge | — (only when `source` is a `BootstrapResult`) |
 * | `window_space_bootstrap_stale_claims` | gauge | — (expired claims bootstrap found; likewise) |
 *
 * Counters count since the ledger was created (they live in the ledger file),
 * not since this process started.
 *
 * After `controller.close()` the next scrape finds the controller closed:
 * the metrics then report no samples (the bootstrap gauges keep their value
 * for that one scrape) and remove themselves from the registry, so later
 * scrapes have no `window_space_` series at all. A scrape never throws
 * because the controller was closed. Call {@link RegisteredMetrics.unregister}
 * to remove them earlier.
 *
 * @param registry - the prom-client `Registry` to register on (required; the global registry is never used by default)
 * A `Ledger` of the mmap backend (`controller.asLedger()`) registers what its
 * controller does. A PostgreSQL `Ledger` registers `window_space_slots` only
 * (see the module doc for why the others have no source there); after its
 * `close()` the next scrape removes it, as for a closed controller.
 *
 * @param source - the controller, the whole `BootstrapResult` (adds the bootstrap gauges), a read-only `StateView`, or a `Ledger`
 * @throws InvalidArgumentError if the registry already holds a metric of one of these names (nothing is registered then)
 */
export function registerMetrics(registry: Registry, source: WindowSpaceController | BootstrapResult | StateView | Ledger): RegisteredMetrics {
  if (typeof registry !== 'object' || registry === null || typeof (registry).registerMetric !== 'function') {
    throw new TypeError('registerMetrics expects a prom-client Registry as its first argument')
  }
  if (source instanceof MmapLedger) return registerMetrics(registry, source.controller)
  if (isLedger(source)) return registerLedgerMetrics(registry, source)
  const target = isBootstrapResult(source) ? source.controller : source
  const report: StorageReport | undefined = isBootstrapResult(source) ? source.storageReport : undefined
  if (typeof target !== 'object' || target === null || typeof (target as WindowSpaceController).slotMetrics !== 'function') {
    throw new TypeError('registerMetrics expects a WindowSpaceController, a BootstrapResult or a StateView as its second argument')
  }
  const controller = countersOf(target)
  const names: string[] = [METRIC_NAMES.slots, METRIC_NAMES.transitions, METRIC_NAMES.versionConflicts, METRIC_NAMES.leaseTakeovers, METRIC_NAMES.busyRefusals, METRIC_NAMES.payloadAppends]
  if (report) names.push(METRIC_NAMES.bootstrapDuration, METRIC_NAMES.bootstrapStaleClaims)
  for (const name of names) {
    if (registry.getSingleMetric(name) !== undefined) {
      throw new InvalidArgumentError(`the registry already holds a metric named ${name}; use one registry per state directory`, { what: name })
    }
  }

  const { Gauge, Counter } = promClient()
  const ours = new Map<string, unknown>()
  let gone = false
  const unregister = () => {
    if (gone) return
    gone = true
    for (const [name, metric] of ours) {
      if (registry.getSingleMetric(name) === metric) registry.removeSingleMetric(name)
    }
  }
  /** True (and the metrics on their way out) once the controller is closed. */
  const closed = (self: { reset(): void }): boolean => {
    if (!controller.closed) return false
    self.reset()
    unregister()
    return true
  }
  const eventsNow = (): Record<LedgerName, LedgerEventCounts> => Object.fromEntries(LEDGERS.map((l) => [l, controller.eventCounts(l)])) as Record<LedgerName, LedgerEventCounts>

  const slots = new Gauge({
    name: METRIC_NAMES.slots,
    help: 'Slots by ledger, slot kind and status (from the counters shared by every process; Empty = symbols x windows - the rest).',
    labelNames: ['ledger', 'slot', 'status'] as const,
    registers: [],
    collect() {
      if (closed(this)) return
      for (const m of controller.slotMetrics()) {
        for (const status of SLOT_STATUSES) this.set({ ledger: m.ledger, slot: m.slot, status }, m.counts[status])
      }
    },
  })
  const transitions = new Counter({
    name: METRIC_NAMES.transitions,
    help: 'Slot transitions since the ledger was created, by ledger and kind of transition.',
    labelNames: ['ledger', 'transition'] as const,
    registers: [],
    collect() {
      if (closed(this)) return
      const ev = eventsNow()
      this.reset()
      for (const ledger of LEDGERS) for (const [key, transition] of TRANSITIONS) this.inc({ ledger, transition }, ev[ledger][key])
    },
  })
  const perLedger = (name: string, help: string, key: keyof LedgerEventCounts) =>
    new Counter({
      name,
      help,
      labelNames: ['ledger'] as const,
      registers: [],
      collect() {
        if (closed(this)) return
        const ev = eventsNow()
        this.reset()
        for (const ledger of LEDGERS) this.inc({ ledger }, ev[ledger][key])
      },
    })
  const conflicts = perLedger(METRIC_NAMES.versionConflicts, 'Fills and clears refused because the claim was no longer current (someone else claimed, took over, cleared or filled the slot).', 'conflicts')
  const takeovers = perLedger(METRIC_NAMES.leaseTakeovers, 'Expired claims taken over by another claimant (each is a claim whose engine died or overran its lease).', 'takeovers')
  const busy = perLedger(METRIC_NAMES.busyRefusals, 'Claims refused because another engine held a live claim on the slot.', 'busy')
  const appends = new Counter({
    name: METRIC_NAMES.payloadAppends,
    help: 'Payload records appended to each mapping table since it was created (its length: ids are dense).',
    labelNames: ['store'] as const,
    registers: [],
    collect() {
      if (closed(this)) return
      this.reset()
      const records = controller.records()
      for (const store of PAYLOAD_STORE_NAMES) this.inc({ store }, records[store])
    },
  })
  const metrics: Array<{ name: string; metric: unknown }> = [
    { name: METRIC_NAMES.slots, metric: slots },
    { name: METRIC_NAMES.transitions, metric: transitions },
    { name: METRIC_NAMES.versionConflicts, metric: conflicts },
    { name: METRIC_NAMES.leaseTakeovers, metric: takeovers },
    { name: METRIC_NAMES.busyRefusals, metric: busy },
    { name: METRIC_NAMES.payloadAppends, metric: appends },
  ]
  if (report) {
    const duration = new Gauge({ name: METRIC_NAMES.bootstrapDuration, help: 'How long the bootstrap of this controller took (open, replay, scan).', registers: [] })
    duration.set(report.elapsedMs / 1000)
    const stale = new Gauge({ name: METRIC_NAMES.bootstrapStaleClaims, help: 'Pending slots with an expired lease that the bootstrap of this controller found (claims of dead engines).', registers: [] })
    stale.set(report.staleClaims)
    metrics.push({ name: METRIC_NAMES.bootstrapDuration, metric: duration }, { name: METRIC_NAMES.bootstrapStaleClaims, metric: stale })
  }
  for (const { name, metric } of metrics) {
    registry.registerMetric(metric as Parameters<Registry['registerMetric']>[0])
    ours.set(name, metric)
  }
  return { names: Object.freeze(names), unregister }
}

function isLedger(v: unknown): v is Ledger {
  return typeof v === 'object' && v !== null && 'backend' in v && (v as Ledger).backend === 'postgres' && typeof (v as Ledger).slotMetrics === 'function'
}

/** The slot gauge of a PostgreSQL ledger, read with one query per scrape. */
function registerLedgerMetrics(registry: Registry, ledger: Ledger): RegisteredMetrics {
  const names = [METRIC_NAMES.slots]
  if (registry.getSingleMetric(METRIC_NAMES.slots) !== undefined) {
    throw new InvalidArgumentError(`the registry already holds a metric named ${METRIC_NAMES.slots}; use one registry per window space`, { what: METRIC_NAMES.slots })
  }
  const { Gauge } = promClient()
  let gone = false
  const slots = new Gauge({
    name: METRIC_NAMES.slots,
    help: 'Slots by ledger, slot kind and status (counted in the database at scrape time; Empty = symbols x windows - the rest).',
    labelNames: ['ledger', 'slot', 'status'] as const,
    registers: [],
    async collect() {
      let metrics
      try {
        metrics = await ledger.slotMetrics()
      } catch (e) {
        if (!(e instanceof ClosedError)) throw e
        this.reset()
        unregister()
        return
      }
      for (const m of metrics) {
        for (const status of SLOT_STATUSES) this.set({ ledger: m.ledger, slot: m.slot, status }, m.counts[status])
      }
    },
  })
  const unregister = () => {
    if (gone) return
    gone = true
    if (registry.getSingleMetric(METRIC_NAMES.slots) === slots) registry.removeSingleMetric(METRIC_NAMES.slots)
  }
  registry.registerMetric(slots)
  return { names: Object.freeze(names), unregister }
}
