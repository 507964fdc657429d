//! The controller of one state directory: what it holds, and the calls that
//! are neither engine transitions nor operators' actions — schedule, symbols,
//! metrics, durability and group commit.
//!
//! The calls live in one file per concern:
//! * `bootstrap.rs` — opening or creating a state directory;
//! * `engine.rs` — the engine loop: claim, renew, fill, clear, reads, batch
//!   claims, payload records and artifacts;
//! * `admin.rs` — operators' transitions (force-clear, retire, ranges) and
//!   the audit trail;
//! * `readiness.rs` — requirements across slot kinds (engines that wait on engines).
//!
//! A controller is `Send + Sync`; share it in an `Arc`. Any number of
//! controllers, in one process or many, may have the same state directory
//! open; they coordinate only through the shared mappings and file locks
//! (see `lock.rs` and docs/design.md).

mod admin;
mod bootstrap;
mod engine;
mod readiness;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::audit::AuditLog;
use crate::durability::{DeferScope, GroupCommit};
use crate::error::{Error, Result};
use crate::journal::{self, Journal};
use crate::ledger::Ledger;
use crate::lock::{DeadRecord, DirLock, Presence};
use crate::payload::PayloadStore;
use crate::schedule::{Schedule, ScheduleRelation, WindowMeta, WindowSpace};
use crate::slot::SlotAddr;
use crate::symbols::SymbolMap;
use crate::vocab::{LedgerEvent, LedgerKind, SlotKind, StoreKind};

/// Attempts at reading the slot counts while no transition completes
/// ([`Ledger::counter_snapshot`]) before a reader gives up: a metrics
/// scrape then reads each count at its own instant, a decision that must
/// not err toward "nothing Pending" assumes something is. A scrape does not
/// ask whether a transition is under way: one that is may show its slots in
/// neither status (docs/design.md, Metrics).
const COUNTER_SNAPSHOT_TRIES: usize = 16;

pub(crate) use bootstrap::{check_state_files_present, Alone};
pub use bootstrap::{state_file_names, Damage, StoreDamage, UnknownSymbols};
pub use engine::FillItem;

/// Name of the persisted schedule.
pub const SCHEDULE_FILE: &str = "schedule.json";

/// When a call's effects reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Survives the death of the process (`kill -9`) at any instant: writes go
    /// to the shared page cache before a call returns. The default.
    #[default]
    Buffered,
    /// Also survives power loss: fdatasync/msync before a call returns.
    Sync,
}

/// Bootstrap options.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    pub window_space: WindowSpace,
    pub durability: Durability,
    /// Lease of a claim when the caller gives none.
    pub default_lease_ms: u64,
    /// Entries of the change journal when this bootstrap creates it (a power
    /// of two, 64 ..= 2^24); an existing journal keeps its capacity.
    pub journal_capacity: u64,
    /// Who this controller's audit lines name when a call names nobody.
    pub actor: Option<String>,
}

impl Config {
    pub fn new(state_dir: impl Into<PathBuf>, window_space: WindowSpace) -> Self {
        Self {
            state_dir: state_dir.into(),
            window_space,
            durability: Durability::Buffered,
            default_lease_ms: 30_000,
            journal_capacity: journal::DEFAULT_CAPACITY,
            actor: None,
        }
    }
}

/// One file of the state directory in the storage report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    pub name: String,
    pub bytes: u64,
}

/// One mapping table in the storage report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreReport {
    pub store: StoreKind,
    pub records: u64,
    pub bytes: u64,
    pub torn_tail_bytes: u64,
    pub torn_tail_repaired: bool,
}

/// One ledger in the storage report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerReport {
    pub ledger: LedgerKind,
    pub chunks: u64,
    pub rows_allocated: u64,
    pub bytes: u64,
    pub stale_claims: u64,
}

/// What bootstrap did and found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageReport {
    /// True when the state directory was created by this bootstrap.
    pub created: bool,
    /// "created", "same", "rolledForward" or "behind".
    pub schedule: &'static str,
    pub window_count: u32,
    pub symbols: u32,
    /// True when no other controller had the directory open (repairs allowed).
    pub exclusive: bool,
    pub files: Vec<FileReport>,
    pub ledgers: Vec<LedgerReport>,
    pub stores: Vec<StoreReport>,
    /// Pending slots whose lease had expired (claimable by anyone).
    pub stale_claims: u64,
    /// Non-Empty slots counted by the bootstrap scan.
    pub nonempty_slots: u64,
    pub elapsed_ns: u64,
}

/// Counts of one slot kind by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotMetric {
    pub kind: SlotKind,
    /// Indexed by `SlotStatus as usize`.
    pub counts: [u64; 5],
}

/// The controller of one state directory.
pub struct Controller {
    state_dir: PathBuf,
    schedule: RwLock<Schedule>,
    /// Window count of `schedule`, for lock-free range checks.
    window_count: AtomicU32,
    symbols: SymbolMap,
    trade: Ledger,
    enrichment: Ledger,
    stores: Vec<PayloadStore>,
    dir_lock: DirLock,
    default_lease_ms: u64,
    sync: bool,
    group: GroupCommit,
    journal: Journal,
    audit: AuditLog,
    /// This controller's presence record (`lock.rs`).
    presence: Presence,
    /// Repairs of the shared counters that found no quiet instant in a row,
    /// and how many calls to skip before the next try.
    repair_backoff: Mutex<(u32, u32)>,
}

/// Milliseconds since the Unix epoch, from the coarse real-time clock (a few
/// ns to read, resolution of one kernel tick, typically 1-4 ms): leases are
/// compared against it, so a lease may run up to one tick longer than asked.
pub fn now_ms() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    (t.tv_sec.max(0) as u64) * 1000 + (t.tv_nsec.max(0) as u64) / 1_000_000
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

impl Controller {
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    pub fn default_lease_ms(&self) -> u64 {
        self.default_lease_ms
    }

    pub fn is_sync(&self) -> bool {
        self.sync
    }

    // ---- schedule -----------------------------------------------------------------

    /// Windows of the schedule, adopting a roll-forward another controller
    /// persisted (it publishes the new count in the trade ledger's header).
    pub fn window_count(&self) -> u32 {
        let local = self.window_count.load(Ordering::Acquire);
        if self.trade.shared_window_count() > u64::from(local) && self.reload_schedule().unwrap_or(false) {
            return self.window_count.load(Ordering::Acquire);
        }
        local
    }

    pub fn window_space(&self) -> WindowSpace {
        self.schedule.read().unwrap_or_else(|p| p.into_inner()).space().clone()
    }

    /// Checks a window index, adopting a roll-forward another process persisted.
    pub fn check_window(&self, window_idx: u32) -> Result<()> {
        if window_idx < self.window_count.load(Ordering::Acquire) {
            return Ok(());
        }
        let err = match self.schedule.read().unwrap_or_else(|p| p.into_inner()).check(window_idx) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if u64::from(window_idx) < self.trade.shared_window_count() && self.reload_schedule()? {
            return self.schedule.read().unwrap_or_else(|p| p.into_inner()).check(window_idx);
        }
        Err(err)
    }

    /// Re-reads `schedule.json`; true if it rolled forward.
    fn reload_schedule(&self) -> Result<bool> {
        let path = self.state_dir.join(SCHEDULE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
        let fresh = Schedule::from_json(&path, &text)?;
        let mut cur = self.schedule.write().unwrap_or_else(|p| p.into_inner());
        if cur.relation_to(&fresh)? == ScheduleRelation::RollsForward {
            self.window_count.store(fresh.window_count(), Ordering::Release);
            *cur = fresh;
            return Ok(true);
        }
        Ok(false)
    }

    pub fn window_idx_for_timestamp(&self, ts_ns: i128) -> Result<u32> {
        let r = self.schedule.read().unwrap_or_else(|p| p.into_inner()).window_idx_for_timestamp(ts_ns);
        if r.is_err() && self.reload_schedule()? {
            return self.schedule.read().unwrap_or_else(|p| p.into_inner()).window_idx_for_timestamp(ts_ns);
        }
        r
    }

    pub fn window_meta(&self, window_idx: u32) -> Result<WindowMeta> {
        self.check_window(window_idx)?;
        self.schedule.read().unwrap_or_else(|p| p.into_inner()).window_meta(window_idx)
    }

    // ---- symbols ------------------------------------------------------------------

    /// Id of `symbol`, created if missing.
    pub fn resolve_symbol(&self, symbol: &str) -> Result<u32> {
        let (id, added) = self.symbols.resolve(symbol, || self.dir_lock.gate())?;
        if added {
            failpoint!("controller::symbol-added");
            self.trade.publish_symbol_count(u64::from(id) + 1);
        }
        Ok(id)
    }

    /// Id of a known symbol.
    pub fn symbol_id(&self, symbol: &str) -> Result<u32> {
        self.symbols.lookup_checked(symbol)?.ok_or_else(|| Error::UnknownSymbol { symbol: symbol.to_string() })
    }

    /// Id of a symbol if known, without creating it.
    pub fn lookup_symbol(&self, symbol: &str) -> Result<Option<u32>> {
        self.symbols.lookup_checked(symbol)
    }

    pub fn symbol_name(&self, id: u32) -> Result<String> {
        self.symbols.name(id)?.ok_or_else(|| Error::UnknownSymbol { symbol: format!("id {id}") })
    }

    pub fn symbols(&self) -> Result<Vec<String>> {
        self.symbols.reload()?;
        Ok(self.symbols.all())
    }

    // ---- ledgers ------------------------------------------------------------------

    fn ledger(&self, kind: SlotKind) -> &Ledger {
        self.ledger_of(kind.ledger())
    }

    pub fn ledger_of(&self, kind: LedgerKind) -> &Ledger {
        match kind {
            LedgerKind::Trade => &self.trade,
            LedgerKind::Enrichment => &self.enrichment,
        }
    }

    /// Checks that a slot's symbol and window exist.
    fn check(&self, at: SlotAddr) -> Result<()> {
        self.symbols.check_id(at.symbol)?;
        self.check_window(at.window)
    }

    // ---- metrics ------------------------------------------------------------------

    /// Slot counts per kind and status, from the shared counters (O(1) in
    /// the ledger's size, plus a look at the presence records).
    ///
    /// A controller that died between a transition and its counter update
    /// leaves the shared counters off by one. Such a death is seen here: its
    /// presence record is still there but no longer locked. The counters are
    /// then recounted (see [`repair_counters`](Self::repair_counters)). Until
    /// that succeeds, and always, each count reads within 0 ..= the number
    /// of slots (a count that went below zero reads as 0).
    pub fn slot_metrics(&self) -> Vec<SlotMetric> {
        self.repair_counters_of_dead_controllers();
        let symbols = self.trade.shared_symbol_count().max(u64::from(self.symbols.len()));
        let windows = u64::from(self.window_count()).max(self.trade.shared_window_count());
        let total = symbols * windows;
        let counts = |l: &Ledger| l.counter_snapshot(COUNTER_SNAPSHOT_TRIES, || false).map_or_else(|| l.status_counts_raw(), |(c, _)| c);
        let by_ledger = [counts(&self.trade), counts(&self.enrichment)];
        SlotKind::ALL
            .iter()
            .map(|&kind| {
                let stored = &by_ledger[kind.ledger() as usize][kind.column()];
                let mut counts = [0u64; 5];
                for (i, raw) in stored.iter().enumerate() {
                    // Counts are moved with wrapping arithmetic: a value past
                    // i64::MAX is a count below zero.
                    counts[i + 1] = if *raw > i64::MAX as u64 { 0 } else { (*raw).min(total) };
                }
                counts[0] = total.saturating_sub(counts[1..].iter().sum());
                SlotMetric { kind, counts }
            })
            .collect()
    }

    /// Whether some slot may be Pending now, for a decision that must never
    /// err toward "none" (gc removing an untied file): a Pending count is
    /// not zero (one below zero included), or the counts cannot be trusted
    /// at this instant — a controller died and its drift is not repaired
    /// yet, a live one is between a transition and its counter update, or
    /// no instant's counts could be read ([`Ledger::counter_snapshot`]).
    pub(crate) fn may_have_pending(&self) -> bool {
        self.repair_counters_of_dead_controllers();
        let dead = self.presence.dead();
        if !dead.is_empty() {
            return true;
        }
        [&self.trade, &self.enrichment].iter().any(|l| {
            match l.counter_snapshot(COUNTER_SNAPSHOT_TRIES, || self.presence.live_in_flight(&dead) != Some(0)) {
                None => true,
                Some((counts, under_way)) => under_way || counts.iter().any(|c| c[0] != 0),
            }
        })
    }

    /// Recounts the shared counters if a controller died (see
    /// [`slot_metrics`](Self::slot_metrics)), then removes its record. A
    /// repair that found no quiet instant is tried again on a later call:
    /// after `n` such failures in a row, `2^n` calls later (at most 64).
    fn repair_counters_of_dead_controllers(&self) {
        let Ok(mut backoff) = self.repair_backoff.try_lock() else { return };
        let (failures, skip) = &mut *backoff;
        if *skip > 0 {
            *skip -= 1;
            return;
        }
        let dead = self.presence.dead();
        if dead.is_empty() {
            return;
        }
        if self.repair_counters(&dead).unwrap_or(false) {
            dead.into_iter().for_each(DeadRecord::remove);
            *failures = 0;
        } else {
            *failures = (*failures + 1).min(6);
            *skip = 1 << *failures;
        }
    }

    /// Makes the shared status counts exact while other controllers go on
    /// working; true if it did.
    ///
    /// Reads the counts, scans both ledgers, then checks that no transition
    /// happened meanwhile: no live controller has one under way (the
    /// `in_flight` words of the presence records; a transition counts as
    /// under way from before its compare-and-swap until after its counter
    /// update) and no transition completed (the counts and the transition
    /// events are unchanged). Then the scan is a true count of the ledger at
    /// the instant the counts were read, and the difference is added to the
    /// counters. Otherwise nothing changes and the caller tries again later.
    /// `dead` are the records of dead controllers (their words are left
    /// stuck by the death and are not read).
    pub(crate) fn repair_counters(&self, dead: &[DeadRecord]) -> Result<bool> {
        let ledgers = [&self.trade, &self.enrichment];
        // The events before the counts, and after them below: see `Ledger::counter_snapshot`.
        let before: Vec<_> = ledgers
            .iter()
            .map(|l| {
                let events = l.transition_events_raw();
                (l.status_counts_raw(), events)
            })
            .collect();
        let now = now_ms();
        let scans = ledgers.iter().map(|l| l.scan_counting_outside(now, u32::MAX, u32::MAX)).collect::<Result<Vec<_>>>()?;
        failpoint!("controller::repair-scanned");
        if self.presence.live_in_flight(dead) != Some(0) {
            return Ok(false);
        }
        let after: Vec<_> = ledgers.iter().map(|l| (l.status_counts_raw(), l.transition_events_raw())).collect();
        if before != after {
            return Ok(false);
        }
        for ((ledger, (counts, _)), scan) in ledgers.iter().zip(&before).zip(&scans) {
            ledger.correct_counts(counts, scan);
        }
        Ok(true)
    }

    /// Exact counts by scanning the ledgers (for verification).
    ///
    /// Other processes may add symbols or roll the schedule forward while the
    /// scan runs, and use them at once: a non-Empty slot outside the symbols ×
    /// windows read before the scan is damage only if the directory does not
    /// hold its symbol or window when they are read again after it.
    pub fn recount(&self) -> Result<Vec<SlotMetric>> {
        self.symbols.reload()?;
        let (mut symbols, mut windows) = (self.symbols.len(), self.window_count());
        let now = now_ms();
        let scans =
            LedgerKind::ALL.iter().map(|l| self.ledger_of(*l).scan_counting_outside(now, symbols, windows)).collect::<Result<Vec<_>>>()?;
        if scans.iter().any(|s| s.outside.is_some()) {
            self.symbols.reload()?;
            (symbols, windows) = (self.symbols.len(), self.window_count());
            for (ledger, scan) in LedgerKind::ALL.iter().zip(&scans) {
                if let Some(o) = &scan.outside {
                    if u64::from(o.max_symbol) >= u64::from(symbols) || o.max_window >= u64::from(windows) {
                        return Err(self.ledger_of(*ledger).outside_error(o, symbols, windows));
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (ledger, scan) in LedgerKind::ALL.iter().zip(scans) {
            for (column, kind) in ledger.slot_kinds().iter().enumerate() {
                let mut counts = scan.counts[column];
                counts[0] = u64::from(symbols) * u64::from(windows) - counts[1..].iter().sum::<u64>();
                out.push(SlotMetric { kind: *kind, counts });
            }
        }
        Ok(out)
    }

    /// Event counters of a ledger (claims, fills, conflicts, ...).
    pub fn events(&self, ledger: LedgerKind) -> Vec<(LedgerEvent, u64)> {
        let l = self.ledger_of(ledger);
        LedgerEvent::ALL.iter().map(|e| (*e, l.event_count(*e))).collect()
    }

    // ---- durability and group commit (durability.rs) ---------------------------------

    /// Makes every change durable now (msync + fdatasync), whatever the mode.
    pub fn flush(&self) -> Result<()> {
        self.trade.flush_all()?;
        self.enrichment.flush_all()?;
        for s in &self.stores {
            s.sync()?;
        }
        Ok(())
    }

    /// The change journal every process of this directory writes.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Runs a write whose syncs are deferred to a group commit; returns its
    /// result and the ticket to pass to [`commit_through`](Self::commit_through)
    /// (0 in the buffered mode, where nothing is owed). In the sync mode the
    /// write is in the shared page cache when this returns, durable only once
    /// its ticket is committed.
    pub fn deferred<T>(&self, write: impl FnOnce(&Self) -> Result<T>) -> Result<(T, u64)> {
        if !self.sync {
            return Ok((write(self)?, 0));
        }
        let scope = DeferScope::enter();
        let result = write(self);
        drop(scope);
        // Even a failed batch may have changed slots before it failed: those
        // are owed too, so a ticket is drawn whatever the result, and on
        // failure paid now, as the plain calls would have.
        let ticket = self.group.issue();
        match result {
            Ok(r) => Ok((r, ticket)),
            Err(e) => {
                let _ = self.commit_through(ticket);
                Err(e)
            }
        }
    }

    /// The unscoped form of [`deferred`](Self::deferred) for a binding whose
    /// write is several calls on one thread: every call on this thread between
    /// `begin_deferred` and [`end_deferred`](Self::end_deferred) defers its
    /// syncs. The caller must call `end_deferred` on the same thread, also
    /// when the write failed.
    pub fn begin_deferred(&self) {
        if self.sync {
            crate::durability::set_deferring(true);
        }
    }

    /// Ends a deferral begun by [`begin_deferred`](Self::begin_deferred); returns the ticket.
    pub fn end_deferred(&self) -> u64 {
        if !self.sync {
            return 0;
        }
        crate::durability::set_deferring(false);
        self.group.issue()
    }

    /// Makes every deferred write up to `ticket` durable: mapping tables
    /// first, then ledger pages, once for all tickets issued so far.
    pub fn commit_through(&self, ticket: u64) -> Result<()> {
        if ticket == 0 {
            return Ok(());
        }
        self.group.commit_through(ticket, || {
            for s in &self.stores {
                s.commit_deferred()?;
            }
            self.trade.commit_deferred()?;
            self.enrichment.commit_deferred()
        })
    }

    /// (tickets issued, tickets durable, commit rounds) of this controller's group commit.
    pub fn group_commit_progress(&self) -> (u64, u64, u64) {
        self.group.progress()
    }
}
