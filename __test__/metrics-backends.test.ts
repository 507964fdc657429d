// registerMetrics on a Ledger of either backend: a registry scraped after
// claims, fills and admin changes has slot gauges equal to the ledger's own
// slotMetrics(), under the same metric names and labels on both backends.
import { Registry } from 'prom-client'
import { afterAll, describe, expect, it } from 'vitest'

import { METRIC_NAMES, SLOT_STATUSES, registerMetrics, type Ledger } from '../src/index'
import { BACKENDS } from './support/backends'

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

function parse(text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) throw new Error(`not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!
    samples.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return samples
}

/** The slot gauges of a scrape, keyed `ledger/slot/status`. */
function slotGauges(samples: Sample[]): Map<string, number> {
  const out = new Map<string, number>()
  for (const s of samples) if (s.name === METRIC_NAMES.slots) out.set(`${s.labels.ledger}/${s.labels.slot}/${s.labels.status}`, s.value)
  return out
}

async function expected(l: Ledger): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  for (const m of await l.slotMetrics()) for (const st of SLOT_STATUSES) out.set(`${m.ledger}/${m.slot}/${st}`, m.counts[st])
  return out
}

async function fill(l: Ledger, symbol: string, w: number, slot: 'optionTrade' | 'greeks') {
  const claim = await l.claim(symbol, w, slot)
  const store = slot === 'greeks' ? 'greeks' : 'trades'
  const id = await l.appendPayload(store, { symbol, windowIdx: w, slotKind: slot, payloadType: 'Json', uri: `artifacts/${symbol}/${w}-${slot}`, checksum: 7n, size: 1 })
  await l.fill(symbol, w, slot, { version: claim.version, payloadType: 'Json', payloadId: id, checksum: 7n })
}

const namesByBackend = new Map<string, string[]>()

afterAll(async () => {
  for (const b of BACKENDS) await b.cleanup()
})

describe.each(BACKENDS)('registerMetrics on the $name backend', (backend) => {
  it('scrapes slot gauges equal to slotMetrics() after claims, fills and admin changes', async () => {
    const l = await backend.open(10)
    await l.resolveSymbol('AAPL')
    await l.resolveSymbol('MSFT')
    const registry = new Registry()
    const reg = registerMetrics(registry, l)
    expect(reg.names).toContain(METRIC_NAMES.slots)

    await fill(l, 'AAPL', 0, 'optionTrade')
    await fill(l, 'AAPL', 1, 'optionTrade')
    await fill(l, 'MSFT', 2, 'greeks')
    await l.claim('AAPL', 3, 'optionTrade')
    await l.claim('MSFT', 4, 'optionTrade')
    await l.forceClear('AAPL', 1, 'optionTrade', { actor: 'test', reason: 'redo' })
    await l.retire('MSFT', 5, 'greeks', { actor: 'test', reason: 'gone' })

    const gauges = slotGauges(parse(await registry.metrics()))
    expect(gauges).toEqual(await expected(l))
    expect(gauges.get('trade/optionTrade/Filled')).toBe(1)
    expect(gauges.get('trade/optionTrade/Pending')).toBe(2)
    expect(gauges.get('trade/optionTrade/Cleared')).toBe(1)
    expect(gauges.get('enrichment/greeks/Filled')).toBe(1)
    expect(gauges.get('enrichment/greeks/Retired')).toBe(1)
    expect(gauges.get('trade/optionTrade/Empty')).toBe(2 * 10 - 4)

    // Read at scrape time: a later fill shows in the next scrape.
    await fill(l, 'MSFT', 6, 'optionTrade')
    const again = slotGauges(parse(await registry.metrics()))
    expect(again.get('trade/optionTrade/Filled')).toBe(2)
    expect(again).toEqual(await expected(l))

    namesByBackend.set(backend.name, [...new Set(parse(await registry.metrics()).map((s) => s.name))].sort())
    reg.unregister()
    expect(registry.getSingleMetric(METRIC_NAMES.slots)).toBeUndefined()
  })

  it('removes its metrics once the ledger is closed', async () => {
    const l = await backend.open(4)
    const registry = new Registry()
    registerMetrics(registry, l)
    await l.close()
    const text = await registry.metrics()
    expect(text).not.toContain(`${METRIC_NAMES.slots}{`)
    expect(await registry.metrics()).not.toContain(METRIC_NAMES.slots)
  })
})

describe('metric names across backends', () => {
  it('the PostgreSQL slot gauge has the name and labels of the mmap one', () => {
    const mmap = namesByBackend.get('mmap')
    const pg = namesByBackend.get('postgres')
    expect(mmap).toContain(METRIC_NAMES.slots)
    expect(pg).toEqual([METRIC_NAMES.slots])
    for (const n of pg!) expect(mmap).toContain(n)
  })
})
