// The TypeScript vocabulary (src/vocabulary.ts, generated) equals the one the
// Rust core defines, as the addon reports it: slot kinds, ledgers, stores,
// statuses, events, payload types, refusal codes, audit actions and every
// error code. And the facade follows it without hand edits: rows, typed
// setters, payload stores, metrics and refusal codes come from these tables.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import { native } from '../src/native'
import * as v from '../src/vocabulary'
import { Refusal, SlotKind, WindowSpace, WindowSpaceConfig, WindowSpaceController, type PayloadMeta } from '../src/index'

const core = native.vocabulary()

describe('the vocabulary', () => {
  it('has the core slot kinds, with their ledger, column and store, in code order', () => {
    expect(v.SLOT_KIND_NAMES).toEqual(core.slotKinds.map((k) => k.name))
    for (const k of core.slotKinds) expect(v.SLOT_KIND_INFO[k.name as v.SlotKindName]).toEqual({ code: k.code, ledger: k.ledger, column: k.column, store: k.store })
    expect(SlotKind.all().map((k) => [k.name, k.code, k.ledger])).toEqual(core.slotKinds.map((k) => [k.name, k.code, k.ledger]))
  })

  it('has the core ledgers, their files and their rows', () => {
    expect(v.LEDGER_NAMES).toEqual(core.ledgers.map((l) => l.name))
    for (const l of core.ledgers) {
      expect(v.LEDGER_FILES[l.name as v.LedgerName]).toBe(l.file)
      expect(v.SLOT_KINDS_OF_LEDGER[l.name as v.LedgerName]).toEqual(l.slotKinds)
    }
    expect(Object.values(v.TradeSlotKind)).toEqual(core.ledgers[0]!.slotKinds)
    expect(Object.values(v.EnrichmentSlotKind)).toEqual(core.ledgers[1]!.slotKinds)
  })

  it('has the core stores, statuses, events, payload types, refusals and audit actions', () => {
    expect(v.PAYLOAD_STORE_NAMES).toEqual(core.stores.map((s) => s.name))
    for (const s of core.stores) expect(v.PAYLOAD_STORE_FILES[s.name as v.PayloadStoreName]).toBe(s.file)
    expect(v.SLOT_STATUSES).toEqual(core.statuses)
    expect(v.LEDGER_EVENT_NAMES).toEqual(core.events)
    expect(Object.entries(v.PayloadType)).toEqual(core.payloadTypes.map((p) => [p.name, p.code]))
    expect(Object.entries(Refusal)).toEqual(core.refusals.map((r) => [r.name, r.code]))
    expect(v.CORE_AUDIT_ACTIONS).toEqual(core.auditActions)
  })

  it('has every error code of the core, with its class and parent', () => {
    expect(Object.entries(v.ERROR_CODES).map(([code, c]) => [code, c.class, c.parent])).toEqual(core.errorCodes.map((e) => [e.code, e.class, e.parent]))
  })
})

describe('the facade follows the vocabulary', () => {
  it('rows, typed setters, payload stores, metrics and event counters are built from it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ws-vocab-'))
    try {
      const { controller: c } = WindowSpaceController.bootstrap(new WindowSpaceConfig(dir, WindowSpace.uniform({ origin: 0, windowDuration: 1000, windowCount: 4 })))
      c.resolveSymbol('SPY')
      for (const l of v.LEDGER_NAMES) {
        const row = l === 'trade' ? c.getTradeRow('SPY', 0) : c.getEnrichmentRow('SPY', 0)
        expect(Object.keys(row).sort()).toEqual(['symbolId', 'windowIdx', ...v.SLOT_KINDS_OF_LEDGER[l]].sort())
      }
      expect(Object.keys(c.payloadStores())).toEqual([...v.PAYLOAD_STORE_NAMES])
      expect(c.slotMetrics().map((m) => m.slot)).toEqual([...v.SLOT_KIND_NAMES])
      expect(Object.keys(c.eventCounts('trade'))).toEqual([...v.LEDGER_EVENT_NAMES])
      for (const name of v.SLOT_KIND_NAMES) {
        const setter = `set${name[0]!.toUpperCase()}${name.slice(1)}Ref`
        const claim = c.markPending('SPY', 1, name)
        const store = c.payloadStores()[v.SLOT_KIND_INFO[name].store]
        const payloadId = store.append({ symbol: 'SPY', windowIdx: 1, slotKind: name, payloadType: 'Json', uri: `artifacts/${name}`, checksum: 7n, size: 1 })
        const meta: PayloadMeta = { payloadType: 'Json', payloadId, version: claim.version, checksum: 7n }
        const fill = (c as unknown as Record<string, (s: string, w: number, m: PayloadMeta) => number>)[setter]!
        expect(fill.call(c, 'SPY', 1, meta)).toBe(claim.version + 1)
        expect(c.getSlot('SPY', 1, name).status).toBe('Filled')
      }
      c.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
