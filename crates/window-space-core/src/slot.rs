//! Slot kinds, statuses and the slot state machine.
//!
//! A slot is 32 bytes in the mapped ledger: two 128-bit words, each read and
//! written only through 128-bit atomics (`lock cmpxchg16b` on x86-64,
//! `ldxp/stxp` or `casp` on aarch64), so a reader never sees half a word.
//!
//! ```text
//! offset  size  word   contents
//!      0    16  head   low  u64: version (bits 0..32) | status (32..40) | payload type (40..48) | 0 (48..64)
//!                      high u64: Pending → lease deadline (ms since Unix epoch)
//!                                Filled  → payload id
//!                                other   → 0
//!     16    16  tail   low  u64: artifact checksum (64-bit xxh3) written by the fill
//!                      high u64: fill tag: the claim version whose fill wrote the checksum
//! ```
//!
//! Every transition is one compare-and-swap on `head`, so exactly one of any
//! number of racing writers (threads, workers, processes sharing the mapping)
//! wins, and every transition increments the 32-bit version. A fill needs
//! three fields more than fit in `head`; it first writes the checksum into
//! `tail` (a CAS that refuses to overwrite a tag newer than its own claim, so a
//! stale writer can never clobber a newer fill), then commits with the CAS on
//! `head`. A reader accepts a Filled slot's checksum only when the tail's tag
//! is the version the fill committed from (head version − 1), and retries
//! otherwise; so readers see a slot either before or after a transition.

use std::fmt;
use std::sync::atomic::Ordering;

use portable_atomic::AtomicU128;

use crate::error::SlotWriteError;

/// Byte size of one slot in the mapped ledger.
pub const SLOT_BYTES: usize = 32;

/// The status of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum SlotStatus {
    /// Never claimed.
    Empty = 0,
    /// Claimed by an engine; carries a lease deadline.
    Pending = 1,
    /// Done: refers to a payload record.
    Filled = 2,
    /// Released (by the claim holder on failure, or by an operator); claimable again.
    Cleared = 3,
    /// Terminal: never claimed again.
    Retired = 4,
}

impl SlotStatus {
    /// All statuses, in code order.
    pub const ALL: [SlotStatus; 5] = [Self::Empty, Self::Pending, Self::Filled, Self::Cleared, Self::Retired];

    /// Decodes a status byte; `None` for a byte no version of the format writes.
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(v as usize).copied()
    }

    /// Name as used in metrics and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Pending => "Pending",
            Self::Filled => "Filled",
            Self::Cleared => "Cleared",
            Self::Retired => "Retired",
        }
    }
}

impl fmt::Display for SlotStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which of the two ledgers a slot lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LedgerKind {
    Trade,
    Enrichment,
}

impl LedgerKind {
    pub const ALL: [LedgerKind; 2] = [Self::Trade, Self::Enrichment];

    /// Name as used in metrics, reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Trade => "trade",
            Self::Enrichment => "enrichment",
        }
    }

    /// File name of the ledger in the state directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Trade => "trade-ledger.dat",
            Self::Enrichment => "enrichment-ledger.dat",
        }
    }

    /// The slot kinds of this ledger, in row order (schema version 1).
    pub fn slot_kinds(self) -> &'static [SlotKind] {
        match self {
            Self::Trade => &SlotKind::ALL[..7],
            Self::Enrichment => &SlotKind::ALL[7..],
        }
    }
}

/// A slot kind: which artifact of a (symbol, window) row a slot stands for.
///
/// The discriminant is the kind's global code (used across the napi boundary);
/// [`SlotKind::column`] is its position inside its ledger's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SlotKind {
    RfRate = 0,
    OptionTrade = 1,
    OptionQuote = 2,
    UnderlyingTrade = 3,
    UnderlyingQuote = 4,
    OptionAggressor = 5,
    UnderlyingAggressor = 6,
    Greeks = 7,
    Aggregation = 8,
}

impl SlotKind {
    /// Every slot kind, trade kinds first, in global-code order.
    pub const ALL: [SlotKind; 9] = [
        Self::RfRate,
        Self::OptionTrade,
        Self::OptionQuote,
        Self::UnderlyingTrade,
        Self::UnderlyingQuote,
        Self::OptionAggressor,
        Self::UnderlyingAggressor,
        Self::Greeks,
        Self::Aggregation,
    ];

    /// Decodes a global slot-kind code.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.get(code as usize).copied()
    }

    /// Global code of the kind.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The ledger the kind's slots live in.
    pub fn ledger(self) -> LedgerKind {
        if (self as u8) < 7 {
            LedgerKind::Trade
        } else {
            LedgerKind::Enrichment
        }
    }

    /// Position of the slot inside its ledger's row.
    pub fn column(self) -> usize {
        match self.ledger() {
            LedgerKind::Trade => self as usize,
            LedgerKind::Enrichment => self as usize - 7,
        }
    }

    /// camelCase name, as the TypeScript API spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::RfRate => "rfRate",
            Self::OptionTrade => "optionTrade",
            Self::OptionQuote => "optionQuote",
            Self::UnderlyingTrade => "underlyingTrade",
            Self::UnderlyingQuote => "underlyingQuote",
            Self::OptionAggressor => "optionAggressor",
            Self::UnderlyingAggressor => "underlyingAggressor",
            Self::Greeks => "greeks",
            Self::Aggregation => "aggregation",
        }
    }

    /// The payload store (mapping table) that records artifacts of this kind.
    pub fn store(self) -> crate::payload::StoreKind {
        use crate::payload::StoreKind;
        match self {
            Self::RfRate => StoreKind::RfRate,
            Self::OptionTrade | Self::UnderlyingTrade => StoreKind::Trades,
            Self::OptionQuote | Self::UnderlyingQuote => StoreKind::Quotes,
            Self::OptionAggressor | Self::UnderlyingAggressor => StoreKind::Aggressor,
            Self::Greeks => StoreKind::Greeks,
            Self::Aggregation => StoreKind::Aggregations,
        }
    }
}

/// A consistent copy of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotSnapshot {
    pub status: SlotStatus,
    pub version: u32,
    /// Artifact format code (meaningful when Filled).
    pub payload_type: u8,
    /// Payload id in the kind's mapping table (meaningful when Filled).
    pub payload_id: u64,
    /// 64-bit checksum of the artifact (meaningful when Filled).
    pub checksum: u64,
    /// Lease deadline in ms since the Unix epoch (meaningful when Pending).
    pub lease_deadline_ms: u64,
}

impl SlotSnapshot {
    /// The snapshot of a slot that was never written (also what unallocated rows read as).
    pub const EMPTY: SlotSnapshot =
        SlotSnapshot { status: SlotStatus::Empty, version: 0, payload_type: 0, payload_id: 0, checksum: 0, lease_deadline_ms: 0 };
}

/// What a successful claim returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimGrant {
    /// Version of the slot after the claim; the fill must present it.
    pub version: u32,
    /// Lease deadline written into the slot (ms since epoch).
    pub lease_deadline_ms: u64,
    /// Status the slot had before (Pending means a stale claim was taken over).
    pub previous: SlotStatus,
    /// The expired lease deadline of a claim taken over (ms since epoch); 0 otherwise.
    pub previous_deadline_ms: u64,
}

/// A transition that happened, for the metric counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: SlotStatus,
    pub to: SlotStatus,
    pub version: u32,
}

// ---- head word encoding --------------------------------------------------------

#[inline]
fn pack_low(version: u32, status: SlotStatus, payload_type: u8) -> u64 {
    u64::from(version) | (u64::from(status as u8) << 32) | (u64::from(payload_type) << 40)
}

#[inline]
fn head(low: u64, high: u64) -> u128 {
    u128::from(low) | (u128::from(high) << 64)
}

/// Decoded `head` word.
#[derive(Debug, Clone, Copy)]
struct Head {
    version: u32,
    status_byte: u8,
    payload_type: u8,
    high: u64,
}

#[inline]
fn decode_head(w: u128) -> Head {
    let low = w as u64;
    Head { version: low as u32, status_byte: (low >> 32) as u8, payload_type: (low >> 40) as u8, high: (w >> 64) as u64 }
}

/// Serial-number comparison of 32-bit versions: true when `a` is after `b`.
#[inline]
fn version_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// One slot in the mapping: a pair of 128-bit atomic words.
///
/// Obtained from the ledger (see `mapping.rs` for the safety argument); all
/// access to a slot goes through these atomics, never through plain loads.
#[derive(Clone, Copy)]
pub struct SlotCell<'a> {
    pub(crate) head: &'a AtomicU128,
    pub(crate) tail: &'a AtomicU128,
}

impl<'a> SlotCell<'a> {
    /// Builds a cell from two atomics (the ledger does this over the mapping;
    /// tests use plain atomics).
    pub fn new(head: &'a AtomicU128, tail: &'a AtomicU128) -> Self {
        Self { head, tail }
    }

    fn snapshot_of(&self, h: Head, tail: u128) -> SlotSnapshot {
        let status = SlotStatus::from_u8(h.status_byte).unwrap_or(SlotStatus::Empty);
        let mut s = SlotSnapshot { status, version: h.version, payload_type: 0, payload_id: 0, checksum: 0, lease_deadline_ms: 0 };
        match status {
            SlotStatus::Pending => s.lease_deadline_ms = h.high,
            SlotStatus::Filled => {
                s.payload_type = h.payload_type;
                s.payload_id = h.high;
                s.checksum = tail as u64;
            }
            _ => {}
        }
        s
    }

    /// Raw status byte of the head (for verification of unknown values).
    pub fn raw_status(&self) -> u8 {
        decode_head(self.head.load(Ordering::Acquire)).status_byte
    }

    /// A consistent snapshot: before or after any concurrent transition.
    pub fn read(&self) -> SlotSnapshot {
        let mut w = self.head.load(Ordering::Acquire);
        // A Filled head whose tail tag is not its fill's claim version means a
        // newer claim/fill cycle ran between our two loads; re-read. A stable
        // mismatch cannot arise from any interleaving of transitions (stale
        // writers never write an older tag over a newer one), so the loop is
        // bounded; after many tries we report what we saw.
        for _ in 0..64 {
            let h = decode_head(w);
            let t = self.tail.load(Ordering::Acquire);
            if h.status_byte != SlotStatus::Filled as u8 || (t >> 64) as u32 == h.version.wrapping_sub(1) {
                return self.snapshot_of(h, t);
            }
            let again = self.head.load(Ordering::Acquire);
            if again == w {
                return self.snapshot_of(h, t);
            }
            w = again;
        }
        self.snapshot_of(decode_head(w), self.tail.load(Ordering::Acquire))
    }

    /// Status only (one atomic load).
    pub fn status(&self) -> Option<SlotStatus> {
        SlotStatus::from_u8(decode_head(self.head.load(Ordering::Acquire)).status_byte)
    }

    #[inline]
    fn cas(&self, current: u128, new: u128) -> Result<(), u128> {
        self.head.compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire).map(|_| ())
    }

    /// `Empty | Cleared → Pending`, or `Pending → Pending` when the lease has expired.
    pub fn claim(&self, now_ms: u64, lease_ms: u64) -> Result<ClaimGrant, SlotWriteError> {
        let deadline = now_ms.saturating_add(lease_ms);
        let mut w = self.head.load(Ordering::Acquire);
        loop {
            let h = decode_head(w);
            let status = SlotStatus::from_u8(h.status_byte).unwrap_or(SlotStatus::Empty);
            match status {
                SlotStatus::Empty | SlotStatus::Cleared => {}
                SlotStatus::Pending if h.high <= now_ms => {}
                SlotStatus::Pending => return Err(SlotWriteError::SlotBusy { current: self.read() }),
                SlotStatus::Filled => return Err(SlotWriteError::SlotFilled { current: self.read() }),
                SlotStatus::Retired => return Err(SlotWriteError::SlotRetired { current: self.read() }),
            }
            let version = h.version.wrapping_add(1);
            match self.cas(w, head(pack_low(version, SlotStatus::Pending, 0), deadline)) {
                Ok(()) => {
                    let previous_deadline_ms = if status == SlotStatus::Pending { h.high } else { 0 };
                    return Ok(ClaimGrant { version, lease_deadline_ms: deadline, previous: status, previous_deadline_ms });
                }
                Err(now) => w = now,
            }
        }
    }

    /// Extends a live claim: `Pending(v) → Pending(v)` with a new deadline.
    /// The version does not change (renewal is not a status transition).
    pub fn renew(&self, claim_version: u32, now_ms: u64, lease_ms: u64) -> Result<u64, SlotWriteError> {
        let deadline = now_ms.saturating_add(lease_ms);
        let mut w = self.head.load(Ordering::Acquire);
        loop {
            let h = decode_head(w);
            if h.status_byte != SlotStatus::Pending as u8 || h.version != claim_version {
                return Err(SlotWriteError::VersionConflict { expected_version: claim_version, current: self.read() });
            }
            match self.cas(w, head(pack_low(claim_version, SlotStatus::Pending, 0), deadline)) {
                Ok(()) => return Ok(deadline),
                Err(now) => w = now,
            }
        }
    }

    /// `Pending(claim_version) → Filled(claim_version + 1)`.
    pub fn fill(&self, claim_version: u32, payload_type: u8, payload_id: u64, checksum: u64) -> Result<Transition, SlotWriteError> {
        let conflict = |cell: &Self| SlotWriteError::VersionConflict { expected_version: claim_version, current: cell.read() };
        let mut w = self.head.load(Ordering::Acquire);
        let h = decode_head(w);
        if h.status_byte != SlotStatus::Pending as u8 || h.version != claim_version {
            return Err(conflict(self));
        }
        // Phase 1: the checksum, tagged with our claim version. Never overwrite a
        // newer tag: that belongs to a claim that superseded ours.
        let mut t = self.tail.load(Ordering::Acquire);
        let new_tail = u128::from(checksum) | (u128::from(claim_version) << 64);
        loop {
            let tag = (t >> 64) as u32;
            if tag != claim_version && version_after(tag, claim_version) {
                return Err(conflict(self));
            }
            match self.tail.compare_exchange(t, new_tail, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => t = now,
            }
        }
        // Phase 2: commit. Retry only if the head changed without leaving our claim
        // (a concurrent renewal of the same claim changes the deadline).
        let filled = head(pack_low(claim_version.wrapping_add(1), SlotStatus::Filled, payload_type), payload_id);
        loop {
            match self.cas(w, filled) {
                Ok(()) => {
                    return Ok(Transition { from: SlotStatus::Pending, to: SlotStatus::Filled, version: claim_version.wrapping_add(1) })
                }
                Err(now) => {
                    let h = decode_head(now);
                    if h.status_byte != SlotStatus::Pending as u8 || h.version != claim_version {
                        return Err(conflict(self));
                    }
                    w = now;
                }
            }
        }
    }

    /// `Pending(claim_version) → Cleared`, by the claim holder.
    pub fn clear(&self, claim_version: u32) -> Result<Transition, SlotWriteError> {
        let mut w = self.head.load(Ordering::Acquire);
        loop {
            let h = decode_head(w);
            if h.status_byte != SlotStatus::Pending as u8 || h.version != claim_version {
                return Err(SlotWriteError::VersionConflict { expected_version: claim_version, current: self.read() });
            }
            let version = claim_version.wrapping_add(1);
            match self.cas(w, head(pack_low(version, SlotStatus::Cleared, 0), 0)) {
                Ok(()) => return Ok(Transition { from: SlotStatus::Pending, to: SlotStatus::Cleared, version }),
                Err(now) => w = now,
            }
        }
    }

    /// Admin: any status but Retired → Cleared. Force-clearing a Cleared slot
    /// is a no-op that reports `from == to` with the version unchanged.
    pub fn force_clear(&self) -> Result<Transition, SlotWriteError> {
        self.admin_set(SlotStatus::Cleared)
    }

    /// Admin: any status → Retired (terminal). Retiring a Retired slot is a no-op
    /// that reports `from == to`.
    pub fn retire(&self) -> Result<Transition, SlotWriteError> {
        self.admin_set(SlotStatus::Retired)
    }

    fn admin_set(&self, to: SlotStatus) -> Result<Transition, SlotWriteError> {
        let mut w = self.head.load(Ordering::Acquire);
        loop {
            let h = decode_head(w);
            let from = SlotStatus::from_u8(h.status_byte).unwrap_or(SlotStatus::Empty);
            if from == to {
                // Already there: no transition, the version stays.
                return Ok(Transition { from, to, version: h.version });
            }
            if from == SlotStatus::Retired {
                return Err(SlotWriteError::SlotRetired { current: self.read() });
            }
            let version = h.version.wrapping_add(1);
            match self.cas(w, head(pack_low(version, to, 0), 0)) {
                Ok(()) => return Ok(Transition { from, to, version }),
                Err(now) => w = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell_pair() -> (AtomicU128, AtomicU128) {
        (AtomicU128::new(0), AtomicU128::new(0))
    }

    #[test]
    fn claim_fill_round_trip_bumps_version_each_transition() {
        let (h, t) = cell_pair();
        let c = SlotCell::new(&h, &t);
        let g = c.claim(1000, 50).unwrap();
        assert_eq!(g.version, 1);
        assert_eq!(g.lease_deadline_ms, 1050);
        let tr = c.fill(1, 3, 42, 0xdead_beef_0000_0001).unwrap();
        assert_eq!(tr.version, 2);
        let s = c.read();
        assert_eq!(s.status, SlotStatus::Filled);
        assert_eq!((s.version, s.payload_type, s.payload_id, s.checksum), (2, 3, 42, 0xdead_beef_0000_0001));
    }

    #[test]
    fn expired_lease_is_taken_over_and_stale_fill_conflicts() {
        let (h, t) = cell_pair();
        let c = SlotCell::new(&h, &t);
        let first = c.claim(1000, 10).unwrap();
        assert!(matches!(c.claim(1005, 10), Err(SlotWriteError::SlotBusy { .. })));
        let second = c.claim(1010, 10).unwrap();
        assert_eq!(second.previous, SlotStatus::Pending);
        assert_eq!(second.version, first.version + 1);
        let err = c.fill(first.version, 1, 7, 7).unwrap_err();
        assert_eq!(err.code(), "ERR_VERSION_CONFLICT");
        assert_eq!(err.current().version, second.version);
        c.fill(second.version, 1, 8, 8).unwrap();
        assert_eq!(c.read().payload_id, 8);
    }

    #[test]
    fn stale_tail_write_never_overwrites_a_newer_fill() {
        let (h, t) = cell_pair();
        let c = SlotCell::new(&h, &t);
        let a = c.claim(0, 1).unwrap();
        let b = c.claim(5, 100).unwrap(); // takeover
        c.fill(b.version, 1, 2, 222).unwrap();
        // The stale holder of `a` now tries to fill: refused, and the tail keeps 222.
        assert!(c.fill(a.version, 1, 1, 111).is_err());
        assert_eq!(c.read().checksum, 222);
    }

    #[test]
    fn retired_is_terminal() {
        let (h, t) = cell_pair();
        let c = SlotCell::new(&h, &t);
        c.retire().unwrap();
        assert_eq!(c.claim(0, 10).unwrap_err().code(), "ERR_SLOT_RETIRED");
        assert_eq!(c.force_clear().unwrap_err().code(), "ERR_SLOT_RETIRED");
        let again = c.retire().unwrap();
        assert_eq!((again.from, again.to, again.version), (SlotStatus::Retired, SlotStatus::Retired, 1));
    }

    #[test]
    fn renew_keeps_version_and_moves_deadline() {
        let (h, t) = cell_pair();
        let c = SlotCell::new(&h, &t);
        let g = c.claim(100, 10).unwrap();
        assert_eq!(c.renew(g.version, 105, 100).unwrap(), 205);
        assert!(matches!(c.claim(150, 10), Err(SlotWriteError::SlotBusy { .. })));
        assert_eq!(c.read().version, g.version);
        assert_eq!(c.renew(g.version + 1, 105, 1).unwrap_err().code(), "ERR_VERSION_CONFLICT");
    }
}
