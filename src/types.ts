/**
 * The vocabulary of window-space: slot kinds, statuses, payload types, and the
 * plain data shapes (slot states, rows, claims, payload records, reports) the
 * controller hands out. Nothing here touches the native binding.
 *
 * @module
 */

/** Slot kinds of the trade ledger. */
export const TradeSlotKind = {
  RfRate: 'rfRate',
  OptionTrade: 'optionTrade',
  OptionQuote: 'optionQuote',
  UnderlyingTrade: 'underlyingTrade',
  UnderlyingQuote: 'underlyingQuote',
  OptionAggressor: 'optionAggressor',
  UnderlyingAggressor: 'underlyingAggressor',
} as const
/** Name of a trade slot kind. */
export type TradeSlotKind = (typeof TradeSlotKind)[keyof typeof TradeSlotKind]

/** Slot kinds of the enrichment ledger. */
export const EnrichmentSlotKind = {
  Greeks: 'greeks',
  Aggregation: 'aggregation',
} as const
/** Name of an enrichment slot kind. */
export type EnrichmentSlotKind = (typeof EnrichmentSlotKind)[keyof typeof EnrichmentSlotKind]

/** Name of any slot kind. */
export type SlotKindName = TradeSlotKind | EnrichmentSlotKind

/** The two ledgers. */
export type LedgerName = 'trade' | 'enrichment'

/** Every slot kind name, in native code order (the code is the index). */
export const SLOT_KIND_NAMES: readonly SlotKindName[] = [
  'rfRate',
  'optionTrade',
  'optionQuote',
  'underlyingTrade',
  'underlyingQuote',
  'optionAggressor',
  'underlyingAggressor',
  'greeks',
  'aggregation',
]

/** A slot kind: which artifact of a (symbol, window) row a slot stands for. */
export interface SlotKind {
  readonly ledger: LedgerName
  readonly name: SlotKindName
  /** Native code (0..8). */
  readonly code: number
}

const KINDS: readonly SlotKind[] = SLOT_KIND_NAMES.map((name, code) =>
  Object.freeze({ ledger: code < 7 ? 'trade' : 'enrichment', name, code } as SlotKind),
)

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
  /** Every slot kind. */
  all(): readonly SlotKind[] {
    return KINDS
  },
}

/** Anything a method accepts as a slot kind. */
export type SlotKindInput = SlotKind | SlotKindName

const KIND_BY_NAME = new Map<string, SlotKind>(KINDS.map((k) => [k.name, k]))

function slotKind(name: string, ledger?: LedgerName): SlotKind {
  const k = KIND_BY_NAME.get(name)
  if (!k || (ledger && k.ledger !== ledger)) {
    throw new RangeError(`unknown ${ledger ?? ''}${ledger ? ' ' : ''}slot kind ${JSON.stringify(name)}; expected one of ${SLOT_KIND_NAMES.filter((n, i) => !ledger || KINDS[i]!.ledger === ledger).join(', ')}`)
  }
  return k
}

/** Resolves a slot kind argument (object or name) to its canonical object. */
export function toSlotKind(input: SlotKindInput, argName = 'slotKind'): SlotKind {
  if (typeof input === 'object' && input !== null && KINDS[input.code] === input) return input
  if (typeof input === 'string') return KIND_BY_NAME.get(input) ?? slotKind(input)
  if (typeof input === 'object' && input !== null && typeof (input as SlotKind).name === 'string') return slotKind((input as SlotKind).name)
  throw new TypeError(`${argName} must be a SlotKind or a slot kind name, got ${typeof input}`)
}

/**
 * Negative codes the numbers-only calls (`controller.raw`) return when a
 * transition is refused; the other calls throw the matching error instead.
 */
export const Refusal = {
  /** A live claim is held by someone else (`SlotBusyError`). */
  Busy: -1,
  /** The slot is already Filled (`SlotFilledError`). */
  Filled: -2,
  /** The slot is Retired (`SlotRetiredError`). */
  Retired: -3,
  /** The claim's version is no longer current (`VersionConflictError`). */
  Conflict: -4,
} as const

/** Status of a slot. */
export type SlotStatus = 'Empty' | 'Pending' | 'Filled' | 'Cleared' | 'Retired'
/** Statuses in native code order. */
export const SLOT_STATUSES: readonly SlotStatus[] = ['Empty', 'Pending', 'Filled', 'Cleared', 'Retired']

/** Artifact formats with a name; any 0..255 code is accepted. */
export const PayloadType = {
  Unknown: 0,
  Parquet: 1,
  Json: 2,
  Text: 3,
  Binary: 4,
  Csv: 5,
  Arrow: 6,
} as const
/** Name of a known payload type. */
export type PayloadTypeName = keyof typeof PayloadType

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

/** A row of the trade ledger. */
export interface TradeRow {
  readonly symbolId: number
  readonly windowIdx: number
  readonly rfRate: SlotState
  readonly optionTrade: SlotState
  readonly optionQuote: SlotState
  readonly underlyingTrade: SlotState
  readonly underlyingQuote: SlotState
  readonly optionAggressor: SlotState
  readonly underlyingAggressor: SlotState
}

/** A row of the enrichment ledger. */
export interface EnrichmentRow {
  readonly symbolId: number
  readonly windowIdx: number
  readonly greeks: SlotState
  readonly aggregation: SlotState
}

/** What a successful claim returns; present it to the setter or to `clearSlot`. */
export interface Claim {
  readonly symbolId: number
  readonly windowIdx: number
  readonly slotKind: SlotKind
  /** Slot version after the claim. */
  readonly version: number
  /** The claim holds at least until this time (ms since epoch). */
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
export interface LedgerEventCounts {
  readonly claims: number
  readonly takeovers: number
  readonly fills: number
  readonly conflicts: number
  readonly clears: number
  readonly forceClears: number
  readonly retires: number
  readonly busy: number
}

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

/** The six mapping tables. */
export type PayloadStoreName = 'trades' | 'quotes' | 'aggressor' | 'rfRate' | 'greeks' | 'aggregations'
/** Store names in native code order. */
export const PAYLOAD_STORE_NAMES: readonly PayloadStoreName[] = ['trades', 'quotes', 'aggressor', 'rfRate', 'greeks', 'aggregations']

/** The mapping table each slot kind records into. */
export const STORE_OF_SLOT_KIND: Readonly<Record<SlotKindName, PayloadStoreName>> = {
  rfRate: 'rfRate',
  optionTrade: 'trades',
  underlyingTrade: 'trades',
  optionQuote: 'quotes',
  underlyingQuote: 'quotes',
  optionAggressor: 'aggressor',
  underlyingAggressor: 'aggressor',
  greeks: 'greeks',
  aggregation: 'aggregations',
}
