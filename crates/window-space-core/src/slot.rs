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
//! stale writer can never clobber a newer fill, and refuses a tail that already
//! carries its own claim's tag with another checksum, so of two fills of one
//! claim only the one whose checksum is there can commit), then commits with
//! the CAS on `head`. A reader accepts a Filled slot's checksum only when the tail's tag
//! is the version the fill committed from (head version − 1), and retries
//! otherwise; so readers see a slot either before or after a transition.
//!
//! A refused claim (busy, filled, retired) and an admin call that changes
//! nothing report the slot as the head word they decided on shows it, never
//! a later read, so the answer and the slot it carries always agree; a
//! version conflict reports a read after it, which still shows the conflict
//! (a claim version that is no longer current never is again).

use std::fmt;
use std::sync::atomic::{AtomicI32, Ordering};

use portable_atomic::AtomicU128;

pub use crate::vocab::{LedgerKind, SlotKind, SlotStatus};

/// Byte size of one slot in the mapped ledger.
pub const SLOT_BYTES: usize = 32;

/// Where a slot is: (symbol id, window index, slot kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotAddr {
    pub symbol: u32,
    pub window: u32,
    pub kind: SlotKind,
}

impl SlotAddr {
    pub fn new(symbol: u32, window: u32, kind: SlotKind) -> Self {
        Self { symbol, window, kind }
    }
}

impl fmt::Display for SlotAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slot {} of symbol {}, window {}", self.kind, self.symbol, self.window)
    }
}

/// Why the state machine refused a transition. The slot as it was seen
/// comes along, so the caller can tell what happened (e.g. whether the winner
/// wrote the same artifact).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlotWriteError {
    /// The caller's claim version is no longer current: someone else claimed,
    /// filled, cleared or took over the slot.
    VersionConflict { expected_version: u32, current: SlotSnapshot },
    /// A live claim (lease not expired) is held by someone else.
    SlotBusy { current: SlotSnapshot },
    /// The slot is already Filled; claim it again only after a clear.
    SlotFilled { current: SlotSnapshot },
    /// The slot is Retired (terminal).
    SlotRetired { current: SlotSnapshot },
}

impl SlotWriteError {
    /// The refusal as the numbers-only calls report it.
    pub fn refusal(&self) -> crate::vocab::Refusal {
        use crate::vocab::Refusal;
        match self {
            Self::VersionConflict { .. } => Refusal::Conflict,
            Self::SlotBusy { .. } => Refusal::Busy,
            Self::SlotFilled { .. } => Refusal::Filled,
            Self::SlotRetired { .. } => Refusal::Retired,
        }
    }

    /// Stable code of the variant.
    pub fn code(&self) -> crate::vocab::ErrorCode {
        self.refusal().error_code()
    }

    /// The claim version the caller presented (version conflicts only).
    pub fn expected_version(&self) -> Option<u32> {
        match self {
            Self::VersionConflict { expected_version, .. } => Some(*expected_version),
            _ => None,
        }
    }

    /// The slot as it was seen when the transition was refused: for a busy,
    /// filled or retired slot, the very word the refusal was decided on; for
    /// a version conflict, a read after it (a claim version that is no longer
    /// current never is again, so that read shows the conflict too).
    pub fn current(&self) -> &SlotSnapshot {
        match self {
            Self::VersionConflict { current, .. }
            | Self::SlotBusy { current }
            | Self::SlotFilled { current }
            | Self::SlotRetired { current } => current,
        }
    }
}

impl fmt::Display for SlotWriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VersionConflict { expected_version, current } => write!(
                f,
                "version conflict: the claim was at version {expected_version}, the slot is now {} at version {}",
                current.status, current.version
            ),
            Self::SlotBusy { current } => {
                write!(f, "held by a live claim (version {}, lease until {} ms since epoch)", current.version, current.lease_deadline_ms)
            }
            Self::SlotFilled { current } => {
                write!(f, "already Filled (version {}, payload id {})", current.version, current.payload_id)
            }
            Self::SlotRetired { current } => write!(f, "Retired (version {})", current.version),
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

/// What a fill writes into the slot besides its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillPayload {
    /// Artifact format code.
    pub payload_type: u8,
    /// Payload id in the kind's mapping table.
    pub payload_id: u64,
    /// 64-bit checksum of the artifact.
    pub checksum: u64,
}

/// A transition that happened, for the metric counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: SlotStatus,
    pub to: SlotStatus,
    pub version: u32,
}

/// What an admin transition ([`SlotCell::force_clear`], [`SlotCell::retire`]) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminChange<R> {
    /// The slot changed: the transition, the slot just before it, and what `reserve` returned.
    Changed(Transition, SlotSnapshot, R),
    /// The slot already had the status asked for (or was Empty, for a
    /// force-clear): nothing changed. The slot as it was when that was decided.
    Unchanged(SlotSnapshot),
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

/// The fields of a slot's 32 bytes as the ledger file holds them, for tools
/// that read the file with `pread` instead of through the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawSlot {
    pub version: u32,
    pub status_byte: u8,
    pub payload_type: u8,
    /// Head bits 48..64, always 0.
    pub reserved_head: u16,
    /// Lease deadline (Pending) or payload id (Filled), else 0.
    pub high: u64,
    pub checksum: u64,
    /// The claim version whose fill wrote `checksum`.
    pub fill_tag: u32,
    /// Tail bits 96..128, always 0.
    pub reserved_tail: u32,
}

impl RawSlot {
    /// Decodes 32 little-endian bytes (the table at the top of this module).
    pub fn from_bytes(b: &[u8; SLOT_BYTES]) -> Self {
        let word = |o: usize| u64::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3], b[o + 4], b[o + 5], b[o + 6], b[o + 7]]);
        let (low, high, checksum, tag) = (word(0), word(8), word(16), word(24));
        Self {
            version: low as u32,
            status_byte: (low >> 32) as u8,
            payload_type: (low >> 40) as u8,
            reserved_head: (low >> 48) as u16,
            high,
            checksum,
            fill_tag: tag as u32,
            reserved_tail: (tag >> 32) as u32,
        }
    }

    /// The slot these bytes hold, or `None` when its two words do not belong
    /// together (a Filled head whose tail is not its fill's: bytes read in the
    /// middle of a transition; read them again) or its status byte is unknown.
    pub fn snapshot(&self) -> Option<SlotSnapshot> {
        let status = SlotStatus::from_u8(self.status_byte)?;
        if status == SlotStatus::Filled && self.fill_tag != self.version.wrapping_sub(1) {
            return None;
        }
        self.snapshot_as_is()
    }

    /// The slot these bytes hold as they are, even when the two words do not
    /// belong together (damage that read as the same bytes again and again);
    /// `None` only for an unknown status byte.
    pub fn snapshot_as_is(&self) -> Option<SlotSnapshot> {
        SlotStatus::from_u8(self.status_byte)?;
        let h = Head { version: self.version, status_byte: self.status_byte, payload_type: self.payload_type, high: self.high };
        let tail = u128::from(self.checksum) | (u128::from(self.fill_tag) << 64);
        Some(snapshot_of(h, tail))
    }
}

/// The snapshot a head word and a tail word stand for.
fn snapshot_of(h: Head, tail: u128) -> SlotSnapshot {
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

/// Serial-number comparison of 32-bit versions, for tools: true when `a` is after `b`.
pub fn version_is_after(a: u32, b: u32) -> bool {
    version_after(a, b)
}

/// One slot in the mapping: a pair of 128-bit atomic words.
///
/// Obtained from the ledger (see `mapping.rs` for the safety argument); all
/// access to a slot goes through these atomics, never through plain loads.
#[derive(Clone, Copy)]
pub struct SlotCell<'a> {
    pub(crate) head: &'a AtomicU128,
    pub(crate) tail: &'a AtomicU128,
    /// The done count of the slot's chunk and column (`ledger.rs`), kept by
    /// the transitions into and out of Filled and Retired.
    done: Option<&'a AtomicI32>,
}

impl<'a> SlotCell<'a> {
    /// Builds a cell from two atomics (the ledger does this over the mapping;
    /// tests use plain atomics).
    pub fn new(head: &'a AtomicU128, tail: &'a AtomicU128) -> Self {
        Self { head, tail, done: None }
    }

    /// The cell, with the done count its transitions keep: raised after a
    /// compare-and-swap that makes the slot Filled or Retired, lowered before
    /// one that takes it out of Filled (and raised again if that one fails),
    /// so the count never exceeds the slots it counts.
    #[inline]
    pub fn with_done(self, done: Option<&'a AtomicI32>) -> Self {
        Self { done, ..self }
    }

    #[inline]
    fn done_add(&self, n: i32) {
        if let Some(d) = self.done {
            d.fetch_add(n, Ordering::AcqRel);
        }
    }

    fn snapshot_of(&self, h: Head, tail: u128) -> SlotSnapshot {
        snapshot_of(h, tail)
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

    /// The slot as the head word `w`, loaded once, shows it; `None` when that
    /// can no longer be told and the caller must load the head again.
    ///
    /// Only a Filled head needs the tail (its checksum). The tail belongs to
    /// the fill that made `w` while its tag is that fill's claim version (the
    /// head's version − 1): a tail tagged with a claim version never changes
    /// its checksum (another fill of that claim is refused without writing),
    /// and tags never go back (a fill never writes under a newer tag). The
    /// fill wrote the tail before its compare-and-swap published `w`, which
    /// this thread loaded with acquire ordering, so the tail it loads now is
    /// that one or a newer one; a newer tag means a newer claim and fill came
    /// since `w` was loaded.
    fn snapshot_at(&self, w: u128) -> Option<SlotSnapshot> {
        let h = decode_head(w);
        if h.status_byte != SlotStatus::Filled as u8 {
            return Some(self.snapshot_of(h, 0));
        }
        let t = self.tail.load(Ordering::Acquire);
        ((t >> 64) as u32 == h.version.wrapping_sub(1)).then(|| self.snapshot_of(h, t))
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
    ///
    /// `reserve` runs after the head was read and before the compare-and-swap
    /// that writes the transition, once per attempt; what it returns comes
    /// back with the grant (a failed attempt drops it). The controller takes
    /// the change journal's number there, so that numbers of one slot's
    /// transitions follow its versions (see `journal.rs`).
    pub fn claim<R>(&self, now_ms: u64, lease_ms: u64, mut reserve: impl FnMut() -> R) -> Result<(ClaimGrant, R), SlotWriteError> {
        let deadline = now_ms.saturating_add(lease_ms);
        let mut w = self.head.load(Ordering::Acquire);
        loop {
            // Tests change the slot here, after its head word was loaded (tests/refusal_snapshots.rs).
            failpoint!("slot::claim-read");
            let h = decode_head(w);
            let status = SlotStatus::from_u8(h.status_byte).unwrap_or(SlotStatus::Empty);
            let refusal: Option<fn(SlotSnapshot) -> SlotWriteError> = match status {
                SlotStatus::Empty | SlotStatus::Cleared => None,
                SlotStatus::Pending if h.high <= now_ms => None,
                SlotStatus::Pending => Some(|current| SlotWriteError::SlotBusy { current }),
                SlotStatus::Filled => Some(|current| SlotWriteError::SlotFilled { current }),
                SlotStatus::Retired => Some(|current| SlotWriteError::SlotRetired { current }),
            };
            if let Some(refuse) = refusal {
                // The refusal carries the slot as the word it was decided on
                // shows it, never a later read: by then the slot may be in a
                // state that would have been refused otherwise, or not at all.
                match self.snapshot_at(w) {
                    Some(current) => return Err(refuse(current)),
                    None => {
                        w = self.head.load(Ordering::Acquire);
                        continue;
                    }
                }
            }
            let version = h.version.wrapping_add(1);
            let r = reserve();
            match self.cas(w, head(pack_low(version, SlotStatus::Pending, 0), deadline)) {
                Ok(()) => {
                    let previous_deadline_ms = if status == SlotStatus::Pending { h.high } else { 0 };
                    return Ok((ClaimGrant { version, lease_deadline_ms: deadline, previous: status, previous_deadline_ms }, r));
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

    /// `Pending(claim_version) → Filled(claim_version + 1)`; `reserve` as in [`claim`](Self::claim).
    pub fn fill<R>(
        &self,
        claim_version: u32,
        payload: FillPayload,
        mut reserve: impl FnMut() -> R,
    ) -> Result<(Transition, R), SlotWriteError> {
        let conflict = |cell: &Self| SlotWriteError::VersionConflict { expected_version: claim_version, current: cell.read() };
        let filled = head(pack_low(claim_version.wrapping_add(1), SlotStatus::Filled, payload.payload_type), payload.payload_id);
        let mut w = self.head.load(Ordering::Acquire);
        loop {
            let h = decode_head(w);
            if h.status_byte != SlotStatus::Pending as u8 || h.version != claim_version {
                return Err(conflict(self));
            }
            let r = reserve();
            // Phase 1: the checksum, tagged with our claim version. Never overwrite a
            // newer tag: that belongs to a claim that superseded ours. Never
            // overwrite our own tag either: another fill of this same claim
            // wrote it and may commit its payload id next, so replacing its
            // checksum could pair that id with ours. The first checksum written
            // for a claim is the only one its fill can commit with.
            let mut t = self.tail.load(Ordering::Acquire);
            let new_tail = u128::from(payload.checksum) | (u128::from(claim_version) << 64);
            loop {
                let tag = (t >> 64) as u32;
                if tag == claim_version {
                    if t as u64 != payload.checksum {
                        return Err(conflict(self));
                    }
                    break; // already ours: a retry after a renewal moved the deadline
                }
                if version_after(tag, claim_version) {
                    return Err(conflict(self));
                }
                match self.tail.compare_exchange(t, new_tail, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => break,
                    Err(now) => t = now,
                }
            }
            // Phase 2: commit. Try again only if the head changed without leaving
            // our claim (a concurrent renewal of the same claim moves the deadline).
            match self.cas(w, filled) {
                Ok(()) => {
                    failpoint!("slot::filled-uncounted");
                    self.done_add(1);
                    return Ok((
                        Transition { from: SlotStatus::Pending, to: SlotStatus::Filled, version: claim_version.wrapping_add(1) },
                        r,
                    ));
                }
                Err(now) => w = now,
            }
        }
    }

    /// `Pending(claim_version) → Cleared`, by the claim holder; `reserve` as in [`claim`](Self::claim).
    pub fn clear<R>(&self, claim_version: u32, mut reserve: impl FnMut() -> R) -> Result<(Transition, R), SlotWriteError> {
        let mut w = self.head.load(Ordering::Acquire);
        loop {
            let h = decode_head(w);
            if h.status_byte != SlotStatus::Pending as u8 || h.version != claim_version {
                return Err(SlotWriteError::VersionConflict { expected_version: claim_version, current: self.read() });
            }
            let version = claim_version.wrapping_add(1);
            let r = reserve();
            match self.cas(w, head(pack_low(version, SlotStatus::Cleared, 0), 0)) {
                Ok(()) => return Ok((Transition { from: SlotStatus::Pending, to: SlotStatus::Cleared, version }, r)),
                Err(now) => w = now,
            }
        }
    }

    /// Admin: any status but Retired → Cleared; `reserve` as in [`claim`](Self::claim).
    /// An Empty or Cleared slot is left as it is ([`AdminChange::Unchanged`],
    /// nothing reserved).
    pub fn force_clear<R>(&self, reserve: impl FnMut() -> R) -> Result<AdminChange<R>, SlotWriteError> {
        self.admin_set(SlotStatus::Cleared, reserve)
    }

    /// Admin: any status → Retired (terminal); `reserve` as in [`claim`](Self::claim).
    /// A Retired slot is left as it is ([`AdminChange::Unchanged`]).
    pub fn retire<R>(&self, reserve: impl FnMut() -> R) -> Result<AdminChange<R>, SlotWriteError> {
        self.admin_set(SlotStatus::Retired, reserve)
    }

    fn admin_set<R>(&self, to: SlotStatus, mut reserve: impl FnMut() -> R) -> Result<AdminChange<R>, SlotWriteError> {
        let mut w = self.head.load(Ordering::Acquire);
        loop {
            // Tests change the slot here, after its head word was loaded (tests/refusal_snapshots.rs).
            failpoint!("slot::admin-read");
            let h = decode_head(w);
            let from = SlotStatus::from_u8(h.status_byte).unwrap_or(SlotStatus::Empty);
            // Empty, Cleared and Retired slots need no tail: the head word
            // alone is the slot the answer reports, as the decision saw it.
            if from == to || (to == SlotStatus::Cleared && from == SlotStatus::Empty) {
                // Already there (an Empty slot is claimable already): no transition.
                return Ok(AdminChange::Unchanged(self.snapshot_of(h, 0)));
            }
            if from == SlotStatus::Retired {
                return Err(SlotWriteError::SlotRetired { current: self.snapshot_of(h, 0) });
            }
            // What the transition replaces, read from the very head word the
            // compare-and-swap below checks: the tail's checksum belongs to
            // this head when its tag is the fill's claim version.
            let t = self.tail.load(Ordering::Acquire);
            let mut before = self.snapshot_of(h, t);
            if from == SlotStatus::Filled && (t >> 64) as u32 != h.version.wrapping_sub(1) {
                // A newer cycle wrote the tail after this head was read: the
                // compare-and-swap will fail and the loop reads both again.
                before.checksum = 0;
            }
            let version = h.version.wrapping_add(1);
            let r = reserve();
            // The done count: lowered before a slot leaves Filled for Cleared,
            // raised after one becomes Retired from a status not done.
            let leaves_done = from == SlotStatus::Filled && to == SlotStatus::Cleared;
            let becomes_done = to == SlotStatus::Retired && from != SlotStatus::Filled;
            if leaves_done {
                self.done_add(-1);
                failpoint!("slot::done-lowered");
            }
            match self.cas(w, head(pack_low(version, to, 0), 0)) {
                Ok(()) => {
                    if becomes_done {
                        self.done_add(1);
                    }
                    return Ok(AdminChange::Changed(Transition { from, to, version }, before, r));
                }
                Err(now) => {
                    if leaves_done {
                        self.done_add(1);
                    }
                    w = now
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(payload_type: u8, payload_id: u64, checksum: u64) -> FillPayload {
        FillPayload { payload_type, payload_id, checksum }
    }

    fn cell_pair() -> (AtomicU128, AtomicU128) {
        (AtomicU128::new(0), AtomicU128::new(0))
    }

    #[test]
    fn claim_fill_round_trip_bumps_version_each_transition() {
        let (h, t) = cell_pair();
        let c = SlotCell::new(&h, &t);
        let g = c.claim(1000, 50, || ()).unwrap().0;
        assert_eq!(g.version, 1);
        assert_eq!(g.lease_deadline_ms, 1050);
        let tr = c.fill(1, fp(3, 42, 0xdead_beef_0000_0001), || ()).unwrap().0;
        assert_eq!(tr.version, 2);
        let s = c.read();
        assert_eq!(s.status, SlotStatus::Filled);
        assert_eq!((s.version, s.payload_type, s.payload_id, s.checksum), (2, 3, 42, 0xdead_beef_0000_0001));
    }

    #[test]
    fn expired_lease_is_taken_over_and_stale_fill_conflicts() {
        let (h, t) = cell_pair();
        let c = SlotCell::new(&h, &t);
        let first = c.claim(1000, 10, || ()).unwrap().0;
        assert!(matches!(c.claim(1005, 10, || ()), Err(SlotWriteError::SlotBusy { .. })));
        let second = c.claim(1010, 10, || ()).unwrap().0;
        assert_eq!(second.previous, SlotStatus::Pending);
        assert_eq!(second.version, first.version + 1);
        let err = c.fill(first.version, fp(1, 7, 7), || ()).unwrap_err();
        assert_eq!(err.code().as_str(), "ERR_VERSION_CONFLICT");
        assert_eq!(err.current().version, second.version);
        c.fill(second.version, fp(1, 8, 8), || ()).unwrap();
        assert_eq!(c.read().payload_id, 8);
    }

    #[test]
    fn stale_tail_write_never_overwrites_a_newer_fill() {
        let (h, t) = cell_pair();
        let c = SlotCell::new(&h, &t);
        let a = c.claim(0, 1, || ()).unwrap().0;
        let b = c.claim(5, 100, || ()).unwrap().0; // takeover
        c.fill(b.version, fp(1, 2, 222), || ()).unwrap();
        // The stale holder of `a` now tries to fill: refused, and the tail keeps 222.
        assert!(c.fill(a.version, fp(1, 1, 111), || ()).is_err());
        assert_eq!(c.read().checksum, 222);
    }

    #[test]
    fn retired_is_terminal() {
        let (h, t) = cell_pair();
        let c = SlotCell::new(&h, &t);
        let AdminChange::Changed(t, before, ()) = c.retire(|| ()).unwrap() else { panic!("an Empty slot is retired") };
        assert_eq!((t.from, t.to, t.version, before), (SlotStatus::Empty, SlotStatus::Retired, 1, SlotSnapshot::EMPTY));
        assert_eq!(c.claim(0, 10, || ()).unwrap_err().code().as_str(), "ERR_SLOT_RETIRED");
        assert_eq!(c.force_clear(|| ()).unwrap_err().code().as_str(), "ERR_SLOT_RETIRED");
        assert_eq!(c.retire(|| ()).unwrap(), AdminChange::Unchanged(c.read()), "retiring a Retired slot changes nothing");
        assert_eq!(c.read().version, 1);
    }

    #[test]
    fn renew_keeps_version_and_moves_deadline() {
        let (h, t) = cell_pair();
        let c = SlotCell::new(&h, &t);
        let g = c.claim(100, 10, || ()).unwrap().0;
        assert_eq!(c.renew(g.version, 105, 100).unwrap(), 205);
        assert!(matches!(c.claim(150, 10, || ()), Err(SlotWriteError::SlotBusy { .. })));
        assert_eq!(c.read().version, g.version);
        assert_eq!(c.renew(g.version + 1, 105, 1).unwrap_err().code().as_str(), "ERR_VERSION_CONFLICT");
    }

    #[test]
    fn a_force_clear_reports_the_filled_slot_it_replaced() {
        let (h, t) = cell_pair();
        let c = SlotCell::new(&h, &t);
        let g = c.claim(0, 100, || ()).unwrap().0;
        c.fill(g.version, fp(4, 77, 0xfeed), || ()).unwrap();
        let AdminChange::Changed(tr, before, ()) = c.force_clear(|| ()).unwrap() else { panic!("a Filled slot is cleared") };
        assert_eq!((tr.from, tr.to, tr.version), (SlotStatus::Filled, SlotStatus::Cleared, 3));
        assert_eq!(
            (before.status, before.version, before.payload_type, before.payload_id, before.checksum),
            (SlotStatus::Filled, 2, 4, 77, 0xfeed)
        );
        assert_eq!(c.force_clear(|| ()).unwrap(), AdminChange::Unchanged(c.read()), "a Cleared slot stays as it is");
    }

    #[test]
    fn a_refused_transition_reserves_nothing_and_each_attempt_reserves_once() {
        let (h, t) = cell_pair();
        let c = SlotCell::new(&h, &t);
        let mut reserved = 0;
        c.claim(0, 100, || reserved += 1).unwrap();
        assert!(c.claim(1, 100, || reserved += 1).is_err());
        assert!(c.clear(99, || reserved += 1).is_err());
        assert_eq!(reserved, 1);
    }
}
