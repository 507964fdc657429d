/**
 * The plain data shapes the controller hands out — slot kinds as objects,
 * slot states, rows, claims, payload records, reports — built on the
 * vocabulary the core defines (`./vocabulary`, generated). Nothing here
 * touches the native binding.
 *
 * @module
 */
import {
  LEDGER_NAMES,
  SLOT_KIND_INFO,
  SLOT_KIND_NAMES,
  type EnrichmentSlotKind,
  type LedgerEventName,
  type LedgerName,
  type PayloadStoreName,
  type PayloadTypeName,
  type SlotKindName,
  type SlotStatus,
  type TradeSlotKind,
} from './vocabulary'

export {
  EnrichmentSlotKind,
  LEDGER_EVENT_NAMES,
  LEDGER_FILES,
  LEDGER_NAMES,
  PAYLOAD_STORE_FILES,
  PAYLOAD_STORE_NAMES,
  PayloadType,
  Refusal,
  SLOT_KIND_INFO,
  SLOT_KIND_NAMES,
  SLOT_KINDS_OF_LEDGER,
  SLOT_STATUSES,
  TradeSlotKind,
  type LedgerEventName,
  type LedgerName,
  type PayloadStoreName,
  type PayloadTypeName,
  type SlotKindName,
  type SlotStatus,
} from './vocabulary'

/** A slot kind: which artifact of a (symbol, window) row a slot stands for. */
export interface SlotKind {
  readonly ledger: LedgerName
  readonly name: SlotKindName
  /** Native code (the index in {@link SLOT_KIND_NAMES}). */
  readonly code: number
}

const KINDS: readonly SlotKind[] = SLOT_KIND_NAMES.map((name) => Object.freeze({ ledger: SLOT_KIND_INFO[name].ledger, name, code: SLOT_KIND_INFO[name].code }))
const KIND_BY_NAME = new Map<string, SlotKind>(KINDS.map((k) => [k.name, k]))

function slotKind(name: string, ledger?: LedgerName): SlotKind {
  const k = KIND_BY_NAME.get(name)
  if (!k || (ledger && k.ledger !== ledger)) {
    const names = KINDS.filter((x) => !ledger || x.ledger === ledger).map((x) => x.name)
    throw new RangeError(`unknown ${ledger ? `${ledger} ` : ''}slot kind ${JSON.stringify(name)}; expected one of ${names.join(', ')}`)
  }
  return k
}

/** Constructors mirroring the Rust `SlotKind::Trade(..)` / `SlotKind::Enrichment(..)`. */
export const SlotKind = {
  /** A trade-ledger slot kind. */
  Trade(kind: TradeSlotKind): SlotKind {
    return slotKind(kind, 'trade')
  },
  /** An enrichment-ledger slot kind. */
  Enrichment(kind: EnrichmentSlotKind): SlotKind {
    return slotKind(kind, 'enrichment')
  },
  /** Every slot kind, in code order. */
  all(): readonly SlotKind[] {
    return KINDS
  },
}

/** Anything a method accepts as a slot kind. */
export type SlotKindInput = SlotKind | SlotKindName

/** Resolves a slot kind argument (object or name) to its canonical object. */
export function toSlotKind(input: SlotKindInput, argName = 'slotKind'): SlotKind {
  if (typeof input === 'object' && input !== null && KINDS[input.code] === input) return input
  if (typeof input === 'string') return KIND_BY_NAME.get(input) ?? slotKind(input)
  if (typeof input === 'object' && input !== null && typeof (input).name === 'string') return slotKind((input).name)
  throw new TypeError(`${argName} must be a SlotKind or a slot kind name, got ${typeof input}`)
}

/** The ledger names, in code order (0 trade, 1 enrichment). */
export const LEDGERS: readonly LedgerName[] = LEDGER_NAMES

/** A consistent copy of one slot. */
export interface SlotState {
  readonly status: SlotStatus
  /** 32-bit generation counter; increases on every transition of the slot. */
  readonly version: number
  /** Artifact format code (when Filled). */
  readonly payloadType: number
  /** Payload id in the kind's mapping table (when Filled). */
  readonly payloadId: number
  /** 64-bit checksum of the artifact (when Filled). */
  readonly checksum: bigint
  /** Lease deadline in ms since the epoch (when Pending), else null. */
  readonly leaseExpiresAt: number | null
}

/** Where a row is. */
interface RowPlace {
  readonly symbolId: number
  readonly windowIdx: number
}

/** A row of the trade ledger: one {@link SlotState} per trade slot kind. */
export type TradeRow = RowPlace & { readonly [K in TradeSlotKind]: SlotState }

/** A row of the enrichment ledger: one {@link SlotState} per enrichment slot kind. */
export type EnrichmentRow = RowPlace & { readonly [K in EnrichmentSlotKind]: SlotState }

/** What a successful claim returns; present it to the setter or to `clearSlot`. */
export interface Claim {
  readonly symbolId: number
  readonly windowIdx: number
  readonly slotKind: SlotKind
  /** Slot version after the claim. */
  readonly version: number
  /** The lease deadline written into the slot (ms since epoch): the claim holds until then. */
  readonly leaseExpiresAt: number
}

/** What a fill writes into the slot. */
export interface PayloadMeta {
  /** Artifact format (name or 0..255 code). */
  readonly payloadType: PayloadTypeName | number
  /** Id returned by the payload store's `append`. */
  readonly payloadId: number
  /** The claim's version. */
  readonly version: number
  /** 64-bit checksum of the artifact. */
  readonly checksum: bigint
}

/** Input of a payload store's `append`. */
export interface PayloadInput {
  readonly symbol: string | number
  readonly windowIdx: number
  /** The slot kind the artifact was produced for (must belong to this store). */
  readonly slotKind: SlotKindInput
  readonly payloadType: PayloadTypeName | number
  /** Where the artifact lives, e.g. the `uri` returned by `writeArtifact`. */
  readonly uri: string
  readonly checksum: bigint
  /** Artifact size in bytes. */
  readonly size: number
}

/** A payload record, as stored in a mapping table. */
export interface PayloadRecord {
  readonly payloadId: number
  readonly symbolId: number
  readonly windowIdx: number
  readonly slotKind: SlotKindName
  readonly payloadType: number
  readonly uri: string
  readonly checksum: bigint
  readonly size: number
  /** When the record was appended (ns since epoch). */
  readonly createdAt: bigint
}

/** Start, duration and schema version of one window. */
export interface WindowMeta {
  readonly windowIdx: number
  /** Start, ns since epoch. */
  readonly start: bigint
  /** Duration in ns. */
  readonly duration: bigint
  /** Start, ms since epoch (may round). */
  readonly startMs: number
  /** Duration in ms (may round). */
  readonly durationMs: number
  readonly schemaVersion: number
}

/** A slot transition made by an admin call. */
export interface SlotTransition {
  readonly from: SlotStatus
  readonly to: SlotStatus
  /** Version after the transition (unchanged when `from === to`). */
  readonly version: number
}

/** Count of slots of one kind by status. */
export interface SlotMetric {
  readonly ledger: LedgerName
  readonly slot: SlotKindName
  readonly counts: Readonly<Record<SlotStatus, number>>
}

/** Transition counters of one ledger, since the ledger was created. */
export type LedgerEventCounts = { readonly [E in LedgerEventName]: number }

/** An artifact written by `writeArtifact`. */
export interface ArtifactInfo {
  /** Path relative to the state directory (`artifacts/...`). */
  readonly uri: string
  /** Absolute path of the file. */
  readonly path: string
  readonly checksum: bigint
  readonly size: number
}

/** What bootstrap did and found. */
export interface StorageReport {
  /** True when this bootstrap created the state directory's files. */
  readonly created: boolean
  /** How the given schedule related to the persisted one. */
  readonly schedule: 'created' | 'same' | 'rolledForward' | 'behind'
  readonly windowCount: number
  readonly symbols: number
  /** True when no other controller had the directory open (repairs were allowed). */
  readonly exclusive: boolean
  readonly files: ReadonlyArray<{ readonly name: string; readonly bytes: number }>
  readonly ledgers: ReadonlyArray<{
    readonly ledger: LedgerName
    readonly chunks: number
    readonly rowsAllocated: number
    readonly bytes: number
    readonly staleClaims: number
  }>
  /** Entries replayed per mapping table, and torn tails found / repaired. */
  readonly stores: ReadonlyArray<{
    readonly store: PayloadStoreName
    readonly file: string
    readonly records: number
    readonly bytes: number
    readonly tornTailBytes: number
    readonly tornTailRepaired: boolean
  }>
  /** Pending slots whose lease had expired (claimable by anyone). */
  readonly staleClaims: number
  /** Non-Empty slots counted by the bootstrap scan (the metric totals). */
  readonly nonemptySlots: number
  /** Time bootstrap took, in milliseconds. */
  readonly elapsedMs: number
}

/** The mapping table each slot kind records into. */
export const STORE_OF_SLOT_KIND: Readonly<Record<SlotKindName, PayloadStoreName>> = Object.fromEntries(
  SLOT_KIND_NAMES.map((k) => [k, SLOT_KIND_INFO[k].store]),
) as Record<SlotKindName, PayloadStoreName>
