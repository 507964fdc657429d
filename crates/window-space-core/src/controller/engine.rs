//! The engine loop: claim a slot, record the artifact in its payload store,
//! fill the slot with the record's id, or give the slot back; plus reads,
//! batch claims and the artifact helper.
//!
//! Every transition takes its change-journal number after reading the
//! slot's head and before the compare-and-swap that writes it (the `reserve`
//! argument of the `SlotCell` transitions), then updates the shared counters,
//! commits the journal entry and, in the sync mode, syncs the slot's page.

use std::path::PathBuf;

use super::{now_ms, now_ns, Controller};
use crate::artifact::{self, ArtifactInfo};
use crate::audit::AuditContext;
use crate::error::{Error, Result};
use crate::journal::Reservation;
use crate::ledger::{ChunkColumn, CounterDeltas};
use crate::lock::InFlight;
use crate::payload::{PayloadInput, PayloadRecord, PayloadStore};
use crate::slot::{ClaimGrant, FillPayload, SlotAddr, SlotCell, SlotSnapshot, SlotWriteError, Transition};
use crate::vocab::{LedgerEvent, LedgerKind, SlotStatus, StoreKind};

/// Whether a slot can be claimed at `now`: Empty, Cleared, or Pending with an expired lease.
pub(super) fn claimable(cell: Option<SlotCell<'_>>, status: SlotStatus, now: u64) -> bool {
    match status {
        SlotStatus::Empty | SlotStatus::Cleared => true,
        SlotStatus::Pending => cell.is_some_and(|c| c.read().lease_deadline_ms <= now),
        _ => false,
    }
}

/// The event a refused transition counts: a busy slot, or a conflict.
fn refusal_event(refusal: &SlotWriteError) -> LedgerEvent {
    match refusal {
        SlotWriteError::SlotBusy { .. } => LedgerEvent::Busy,
        _ => LedgerEvent::Conflicts,
    }
}

/// One item of [`Controller::fill_batch`]: what [`Controller::fill`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillItem {
    pub at: SlotAddr,
    pub claim_version: u32,
    pub payload: FillPayload,
}

/// A batch of transitions under way (see [`Controller::claim_next_unfilled_with`]):
/// its summed counter changes by ledger, added when it ends — returned, failed
/// or unwound by a panic — and then its presence mark taken down.
struct Batch<'a> {
    controller: &'a Controller,
    deltas: [CounterDeltas; 2],
    _in_flight: InFlight<'a>,
}

impl Batch<'_> {
    fn deltas(&mut self, ledger: LedgerKind) -> &mut CounterDeltas {
        &mut self.deltas[ledger as usize]
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if self.deltas.iter().all(CounterDeltas::is_empty) {
            return;
        }
        failpoint!("controller::before-count");
        for kind in LedgerKind::ALL {
            self.controller.ledger_of(kind).count_deltas(&mut self.deltas[kind as usize]);
        }
        // Fields drop after this: the presence mark comes down once the counts are in.
    }
}

impl Controller {
    /// Bookkeeping after a transition: counters, the journal entry whose
    /// number `journaled` took before the compare-and-swap, the sync mode's msync.
    pub(super) fn after(&self, journaled: Reservation<'_>, at: SlotAddr, t: Transition, event: LedgerEvent, payload_id: u64) -> Result<()> {
        let ledger = self.ledger(at.kind);
        failpoint!("controller::before-count");
        ledger.count_transition(at.kind.column(), t);
        ledger.count_event(event, 1);
        journaled.commit(at, t, payload_id);
        ledger.flush_slot(at.symbol, at.window, at.kind.column())
    }

    /// A refused transition as an error, counted as a conflict or a busy slot.
    pub(super) fn refused(&self, at: SlotAddr, refusal: SlotWriteError) -> Error {
        let event = match refusal {
            SlotWriteError::SlotBusy { .. } => LedgerEvent::Busy,
            _ => LedgerEvent::Conflicts,
        };
        self.ledger(at.kind).count_event(event, 1);
        Error::SlotWrite { at, refusal }
    }

    /// The slot of a transition that needs a claim: one whose chunk was never
    /// allocated is Empty, so the claim the caller presents cannot be current.
    fn claimed_cell(&self, at: SlotAddr, claim_version: u32) -> Result<SlotCell<'_>> {
        match self.ledger(at.kind).slot(at.symbol, at.window, at.kind.column())? {
            Some(cell) => Ok(cell),
            None => {
                Err(self.refused(at, SlotWriteError::VersionConflict { expected_version: claim_version, current: SlotSnapshot::EMPTY }))
            }
        }
    }

    /// Claims a slot: `Empty | Cleared → Pending`, or takes over an expired claim.
    pub fn claim(&self, at: SlotAddr, lease_ms: Option<u64>) -> Result<ClaimGrant> {
        self.check(at)?;
        let lease = lease_ms.unwrap_or(self.default_lease_ms);
        let cell = self.ledger(at.kind).slot_for_write(at.symbol, at.window, at.kind.column())?;
        let in_flight = self.presence.in_flight();
        let (g, journaled) = cell.claim(now_ms(), lease, || self.journal.reserve()).map_err(|e| self.refused(at, e))?;
        let t = Transition { from: g.previous, to: SlotStatus::Pending, version: g.version };
        let takeover = g.previous == SlotStatus::Pending;
        if takeover {
            self.ledger(at.kind).count_event(LedgerEvent::Takeovers, 1);
        }
        self.after(journaled, at, t, LedgerEvent::Claims, 0)?;
        drop(in_flight);
        if takeover {
            // `audit_takeover`'s body, written out here: calling it costs the
            // single claim about 4 % more instructions (the gate's count).
            failpoint!("controller::takeover-claimed");
            // The claim is ours whatever happens to the audit line: a failed
            // write of it is not the engine's failure.
            let previous = SlotSnapshot {
                status: SlotStatus::Pending,
                version: g.version.wrapping_sub(1),
                lease_deadline_ms: g.previous_deadline_ms,
                ..SlotSnapshot::EMPTY
            };
            let _ = self.audit_single(&AuditContext::default(), "takeover", at, t, &previous);
        }
        Ok(g)
    }

    /// The audit line of a takeover claim, once it is counted and journaled.
    #[cold]
    #[inline(never)]
    fn audit_takeover(&self, at: SlotAddr, g: &ClaimGrant) {
        failpoint!("controller::takeover-claimed");
        // The claim is ours whatever happens to the audit line: a failed
        // write of it is not the engine's failure.
        let t = Transition { from: SlotStatus::Pending, to: SlotStatus::Pending, version: g.version };
        let previous = SlotSnapshot {
            status: SlotStatus::Pending,
            version: g.version.wrapping_sub(1),
            lease_deadline_ms: g.previous_deadline_ms,
            ..SlotSnapshot::EMPTY
        };
        let _ = self.audit_single(&AuditContext::default(), "takeover", at, t, &previous);
    }

    /// Extends a live claim's lease; returns the new deadline (ms since epoch).
    pub fn renew(&self, at: SlotAddr, claim_version: u32, lease_ms: Option<u64>) -> Result<u64> {
        self.check(at)?;
        let lease = lease_ms.unwrap_or(self.default_lease_ms);
        let cell = self.claimed_cell(at, claim_version)?;
        let d = cell.renew(claim_version, now_ms(), lease).map_err(|e| self.refused(at, e))?;
        self.ledger(at.kind).flush_slot(at.symbol, at.window, at.kind.column())?;
        Ok(d)
    }

    /// Fills a slot the caller claimed at `claim_version`. The payload id must
    /// exist in the kind's mapping table.
    pub fn fill(&self, at: SlotAddr, claim_version: u32, payload: FillPayload) -> Result<Transition> {
        self.check(at)?;
        let store = self.store(at.kind.store());
        store.check_exists(payload.payload_id)?;
        if self.sync && crate::durability::deferring() {
            store.ensure_durable(payload.payload_id)?;
        }
        let cell = self.claimed_cell(at, claim_version)?;
        let _in_flight = self.presence.in_flight();
        let (t, journaled) = cell.fill(claim_version, payload, || self.journal.reserve()).map_err(|e| self.refused(at, e))?;
        self.after(journaled, at, t, LedgerEvent::Fills, payload.payload_id)?;
        Ok(t)
    }

    /// The claim holder gives the slot back: `Pending → Cleared`.
    pub fn clear(&self, at: SlotAddr, claim_version: u32) -> Result<Transition> {
        self.check(at)?;
        let cell = self.claimed_cell(at, claim_version)?;
        let _in_flight = self.presence.in_flight();
        let (t, journaled) = cell.clear(claim_version, || self.journal.reserve()).map_err(|e| self.refused(at, e))?;
        self.after(journaled, at, t, LedgerEvent::Clears, 0)?;
        Ok(t)
    }

    /// A consistent copy of one slot.
    pub fn read_slot(&self, at: SlotAddr) -> Result<SlotSnapshot> {
        self.check(at)?;
        self.ledger(at.kind).read(at.symbol, at.window, at.kind.column())
    }

    /// Every slot of a row of `ledger`, in column order.
    pub fn read_row(&self, ledger: LedgerKind, symbol: u32, window_idx: u32) -> Result<Vec<SlotSnapshot>> {
        self.symbols.check_id(symbol)?;
        self.check_window(window_idx)?;
        self.ledger_of(ledger).read_row(symbol, window_idx)
    }

    /// First window `>= start` whose `kind` slot is neither Filled nor Retired.
    pub fn next_unfilled_window(&self, symbol: u32, start: u32, kind: crate::vocab::SlotKind) -> Result<Option<u32>> {
        self.symbols.check_id(symbol)?;
        let end = self.window_count();
        if start >= end {
            return Ok(None);
        }
        self.ledger(kind).find_window(symbol, start, end, kind.column(), |_, s| !matches!(s, SlotStatus::Filled | SlotStatus::Retired))
    }

    /// A batch's start window that a single claim refuses: the window count
    /// itself is the schedule's end, where a loop that goes on from its last
    /// window + 1 arrives, and claims nothing; anything else is the refusal.
    #[cold]
    #[inline(never)]
    fn batch_start_refused(&self, start: SlotAddr, refusal: Error) -> Result<u32> {
        match refusal {
            Error::WindowOutOfRange { .. } if start.window == self.window_count() => {
                self.symbols.check_id(start.symbol)?;
                Ok(0)
            }
            e => Err(e),
        }
    }

    /// Claims up to `n` windows `>= start` of one symbol and slot kind, in window
    /// order, skipping windows that are Filled, Retired or held by a live claim.
    /// Returns (window, grant) pairs. The symbol and the start window are
    /// checked as a single claim checks them, except that a start equal to
    /// the window count is the schedule's end and claims nothing; a start
    /// past it is `Error::WindowOutOfRange`, whatever `n`. See
    /// [`claim_next_unfilled_with`](Self::claim_next_unfilled_with).
    pub fn claim_next_unfilled(&self, start: SlotAddr, n: u32, lease_ms: Option<u64>) -> Result<Vec<(u32, ClaimGrant)>> {
        let mut out = Vec::with_capacity(n.min(4096) as usize);
        self.claim_next_unfilled_with(start, n, lease_ms, |w, g| out.push((w, *g)))?;
        Ok(out)
    }

    /// [`claim_next_unfilled`](Self::claim_next_unfilled) that hands each claim
    /// to `claimed` (window, grant) as it is made; returns how many it made.
    ///
    /// Each slot goes through the same steps as [`claim`](Self::claim): its
    /// journal number taken after its head word was read and before its
    /// compare-and-swap, its journal entry written after it, its page synced
    /// in the sync mode. What does not depend on the slot is done once for
    /// the batch: the symbol check, the clock, the lease, one chunk lookup per
    /// chunk while the scan goes on from the last window instead of starting
    /// again, one mark of transitions under way in the presence record, and
    /// one update of the shared counters with the batch's summed changes.
    /// The status counts are exact after a crash in the middle as they are
    /// after a single transition's: the presence mark stays up from before
    /// the first compare-and-swap until the counters are updated, so a process
    /// killed in between is repaired by a recount ([`Controller::slot_metrics`])
    /// and no repair runs while a live batch is under way. The event counters
    /// are not recounted: a batch killed before its end loses the events of
    /// the slots it handled, up to `n` (docs/design.md, "Metrics").
    pub fn claim_next_unfilled_with(
        &self,
        start: SlotAddr,
        n: u32,
        lease_ms: Option<u64>,
        mut claimed: impl FnMut(u32, &ClaimGrant),
    ) -> Result<u32> {
        if let Err(e) = self.check(start) {
            return self.batch_start_refused(start, e);
        }
        let end = self.window_count();
        if n == 0 {
            return Ok(0);
        }
        let lease = lease_ms.unwrap_or(self.default_lease_ms);
        let now = now_ms();
        let ledger = self.ledger(start.kind);
        let column = start.kind.column();
        let mut takeovers = Vec::new();
        let mut got = 0u32;
        {
            let mut batch = self.batch();
            let mut w = start.window;
            while got < n && w < end {
                // A chunk never allocated is all Empty: its first window is claimed.
                let chunk = match ledger.chunk_column(start.symbol, w, column)? {
                    Some(c) => c,
                    None => ledger.chunk_column_for_write(start.symbol, w, column)?,
                };
                let chunk_end = chunk.end().min(end);
                while got < n && w < chunk_end {
                    let Some(cell) = chunk.cell(w) else { break };
                    let window = w;
                    w += 1;
                    if !claimable(Some(cell), cell.status().unwrap_or(SlotStatus::Empty), now) {
                        continue;
                    }
                    let d = batch.deltas(start.kind.ledger());
                    let (g, journaled) = match cell.claim(now, lease, || self.journal.reserve()) {
                        Ok(done) => done,
                        Err(refusal) => {
                            d.event(refusal_event(&refusal), 1);
                            continue;
                        }
                    };
                    let t = Transition { from: g.previous, to: SlotStatus::Pending, version: g.version };
                    if g.previous == SlotStatus::Pending {
                        d.event(LedgerEvent::Takeovers, 1);
                        takeovers.push((window, g));
                    }
                    d.transition(column, t);
                    d.event(LedgerEvent::Claims, 1);
                    journaled.commit(SlotAddr { window, ..start }, t, 0);
                    chunk.flush(window)?;
                    got += 1;
                    claimed(window, &g);
                    failpoint!("controller::batch-slot-done");
                }
                w = w.max(chunk_end);
            }
        }
        for (window, g) in takeovers {
            self.audit_takeover(SlotAddr { window, ..start }, &g);
        }
        Ok(got)
    }

    /// Fills a batch of slots, each as [`fill`](Self::fill) would, in order:
    /// `item(i)` gives item `i` (an error stops the batch there and is
    /// returned), `done(i, outcome)` receives its transition or its refusal;
    /// a refused item does not stop the batch. Errors other than refusals
    /// (an unknown symbol, window or payload id) stop the batch and are
    /// returned; the fills before stay done.
    ///
    /// Each fill takes its journal number and writes its entry as a single
    /// fill does; done once for the batch are the mark of transitions under
    /// way and the update of the shared counters (see
    /// [`claim_next_unfilled_with`](Self::claim_next_unfilled_with)), and the
    /// chunk lookup of consecutive items in one chunk.
    pub fn fill_batch(
        &self,
        n: usize,
        mut item: impl FnMut(usize) -> Result<FillItem>,
        mut done: impl FnMut(usize, std::result::Result<Transition, SlotWriteError>),
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let mut batch = self.batch();
        let mut chunk: Option<(LedgerKind, ChunkColumn<'_>)> = None;
        // The symbol last checked, and the windows known to exist.
        let (mut known_symbol, windows) = (None, self.window_count.load(std::sync::atomic::Ordering::Acquire));
        for i in 0..n {
            let FillItem { at, claim_version, payload } = item(i)?;
            if known_symbol != Some(at.symbol) {
                self.symbols.check_id(at.symbol)?;
                known_symbol = Some(at.symbol);
            }
            if at.window >= windows {
                self.check_window(at.window)?;
            }
            let store = self.store(at.kind.store());
            store.check_exists(payload.payload_id)?;
            if self.sync && crate::durability::deferring() {
                store.ensure_durable(payload.payload_id)?;
            }
            let (lk, column) = (at.kind.ledger(), at.kind.column());
            let cached = chunk.filter(|(k, c)| *k == lk && c.column() == column && c.holds(at.symbol, at.window));
            let here = match cached {
                Some((_, c)) => Some(c),
                None => self.ledger_of(lk).chunk_column(at.symbol, at.window, column)?,
            };
            let d = batch.deltas(lk);
            // A slot whose chunk was never allocated is Empty: the claim cannot be current.
            let Some(cell) = here.and_then(|c| c.cell(at.window)) else {
                let refusal = SlotWriteError::VersionConflict { expected_version: claim_version, current: SlotSnapshot::EMPTY };
                d.event(refusal_event(&refusal), 1);
                done(i, Err(refusal));
                continue;
            };
            let c = here.unwrap_or_else(|| unreachable!("a cell comes from a chunk"));
            chunk = Some((lk, c));
            match cell.fill(claim_version, payload, || self.journal.reserve()) {
                Ok((t, journaled)) => {
                    d.transition(column, t);
                    d.event(LedgerEvent::Fills, 1);
                    journaled.commit(at, t, payload.payload_id);
                    c.flush(at.window)?;
                    done(i, Ok(t));
                    failpoint!("controller::batch-slot-done");
                }
                Err(refusal) => {
                    d.event(refusal_event(&refusal), 1);
                    done(i, Err(refusal));
                }
            }
        }
        Ok(())
    }

    /// Starts a batch of transitions: marks them under way in the presence
    /// record until the batch ends, when its summed counter changes are added.
    fn batch(&self) -> Batch<'_> {
        let in_flight = self.presence.in_flight();
        Batch { controller: self, deltas: [CounterDeltas::default(), CounterDeltas::default()], _in_flight: in_flight }
    }

    // ---- payload stores -----------------------------------------------------------

    pub fn store(&self, kind: StoreKind) -> &PayloadStore {
        &self.stores[kind as usize]
    }

    /// Appends a payload record to `store`; returns its id. The record's slot
    /// kind must record into `store`, and its symbol and window must exist.
    /// A record naming a claim's artifact (`artifact.rs`: the path carries
    /// symbol, slot kind, window and claim version) must be for that slot,
    /// while that claim is the slot's live one: gc collects a claim's
    /// artifacts once the slot moved past it, so no later fill may name one.
    pub fn append_payload(&self, store: StoreKind, input: PayloadInput) -> Result<u64> {
        if input.slot_kind.store() != store {
            return Err(Error::invalid(format!(
                "slot kind {} records into {}, not {}",
                input.slot_kind,
                input.slot_kind.store().file_name(),
                store.file_name()
            )));
        }
        self.symbols.check_id(input.symbol_id)?;
        self.check_window(input.window_idx)?;
        if let Some(claim) = artifact::parse_claim_uri(&input.uri) {
            let at = SlotAddr::new(input.symbol_id, input.window_idx, input.slot_kind);
            let own = self.symbol_name(input.symbol_id)?;
            if (claim.symbol.as_str(), claim.window, claim.kind) != (own.as_str(), input.window_idx, input.slot_kind) {
                return Err(Error::invalid(format!(
                    "the artifact {:?} belongs to a claim of {} window {} {}, not to {at}: a record names the artifacts of its own slot's claim",
                    input.uri, claim.symbol, claim.window, claim.kind
                )));
            }
            let current = self.ledger(at.kind).read(at.symbol, at.window, at.kind.column())?;
            if current.status != SlotStatus::Pending || current.version != claim.version {
                return Err(self.refused(at, SlotWriteError::VersionConflict { expected_version: claim.version, current }));
            }
        }
        let record = PayloadRecord {
            payload_id: 0,
            symbol_id: input.symbol_id,
            window_idx: input.window_idx,
            slot_kind: input.slot_kind.code() as u8,
            payload_type: input.payload_type,
            checksum: input.checksum,
            size: input.size,
            created_at_ns: now_ns(),
            uri: input.uri,
        };
        let id = self.store(store).append(record)?;
        failpoint!("payload::append-unlocked");
        Ok(id)
    }

    // ---- artifacts ----------------------------------------------------------------

    /// Writes an artifact at `artifacts/<rel>`, a path the caller chooses
    /// (an untied artifact: see `artifact.rs` for why claim-bound ones are safer).
    /// Paths of the two shapes gc judges by the path alone are refused
    /// ([`artifact::check_untied_path`]).
    pub fn write_artifact(&self, rel: &str, data: &[u8]) -> Result<ArtifactInfo> {
        artifact::check_untied_path(rel)?;
        artifact::write_artifact(&self.state_dir, rel, data)
    }

    /// Writes the artifact `name` of the claim of `at` at `claim_version`, at
    /// the path that carries the claim (`artifact.rs`, claim-bound artifacts),
    /// so that no other attempt at the slot can ever write over it. Refused
    /// with a version conflict when the slot is no longer Pending at that
    /// version: someone else has the slot, skip it.
    pub fn write_claim_artifact(&self, at: SlotAddr, claim_version: u32, name: &str, data: &[u8]) -> Result<ArtifactInfo> {
        self.check(at)?;
        let current = self.ledger(at.kind).read(at.symbol, at.window, at.kind.column())?;
        if current.status != SlotStatus::Pending || current.version != claim_version {
            return Err(self.refused(at, SlotWriteError::VersionConflict { expected_version: claim_version, current }));
        }
        let symbol = self.symbol_name(at.symbol)?;
        let rel = artifact::claim_rel_path(&symbol, at.kind, at.window, claim_version, name)?;
        artifact::write_artifact(&self.state_dir, &rel, data)
    }

    pub fn resolve_artifact(&self, uri: &str) -> Result<PathBuf> {
        artifact::resolve_uri(&self.state_dir, uri)
    }
}
