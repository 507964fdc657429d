//! The controller: bootstrap of a state directory, and every operation engines
//! and operators call (symbols, claims, fills, clears, admin transitions,
//! reads, payload stores, artifacts, metrics).
//!
//! A controller is `Send + Sync`; share it in an `Arc`. Any number of
//! controllers, in one process or many, may have the same state directory
//! open; they coordinate only through the shared mappings and file locks
//! (see `lock.rs` and docs/design.md).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::RwLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::artifact::{self, ArtifactInfo};
use crate::audit::{self, AuditContext, AuditLog};
use crate::durability::{DeferScope, GroupCommit};
use crate::error::{Error, Result, SlotWriteError};
use crate::fsutil::write_atomic;
use crate::journal::{self, Journal, Reservation, JOURNAL_FILE};
use crate::ledger::{Ledger, LedgerEvent, LedgerScan};
use crate::lock::DirLock;
use crate::mapping::require_lock_free_u128;
use crate::payload::{PayloadRecord, PayloadStore, RecoveryMode, StoreKind};
use crate::schedule::{Schedule, ScheduleRelation, WindowMeta, WindowSpace};
use crate::slot::{ClaimGrant, LedgerKind, SlotKind, SlotSnapshot, SlotStatus, Transition};
use crate::symbols::SymbolMap;

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

/// `user pid N` from the environment, for audit lines of callers that name nobody.
fn default_actor() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    format!("{user} pid {}", std::process::id())
}

/// Whether a slot can be claimed at `now`: Empty, Cleared, or Pending with an expired lease.
fn claimable(cell: Option<crate::slot::SlotCell<'_>>, status: SlotStatus, now: u64) -> bool {
    match status {
        SlotStatus::Empty | SlotStatus::Cleared => true,
        SlotStatus::Pending => cell.is_some_and(|c| c.read().lease_deadline_ms <= now),
        _ => false,
    }
}

/// Names of every state file (besides the lock file).
pub fn state_file_names() -> Vec<&'static str> {
    let mut v = vec![LedgerKind::Trade.file_name(), LedgerKind::Enrichment.file_name(), SymbolMap::FILE_NAME];
    v.extend(StoreKind::ALL.iter().map(|s| s.file_name()));
    v.push(SCHEDULE_FILE);
    v
}

/// Removes temp files (`.<name>.tmp-<pid>-<n>`) that an atomic write left
/// behind when its process died; only called when no other controller is open.
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(".tmp-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn file_len(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

impl Controller {
    /// Opens (or creates) the state directory. A failed bootstrap changes
    /// nothing on disk, except creating an empty directory and its lock file.
    pub fn bootstrap(config: Config) -> Result<(Controller, StorageReport)> {
        let started = Instant::now();
        require_lock_free_u128()?;
        let given = Schedule::new(config.window_space.clone())?;
        let dir = config.state_dir.clone();
        match std::fs::metadata(&dir) {
            Ok(m) if !m.is_dir() => return Err(Error::invalid(format!("state directory {} is not a directory", dir.display()))),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&dir).map_err(|e| Error::io("mkdir", &dir, e))?;
            }
            Err(e) => return Err(Error::io("stat", &dir, e)),
        }
        let dir_lock = DirLock::open(&dir)?;
        let gate = dir_lock.enter()?;
        let alone = gate.alone;
        let sync = config.durability == Durability::Sync;

        let schedule_path = dir.join(SCHEDULE_FILE);
        let created = !schedule_path.exists();
        let (schedule, relation) = if created {
            Self::create_files(&dir, &given)?;
            (given, "created")
        } else {
            for name in state_file_names() {
                if !dir.join(name).exists() {
                    return Err(Error::corrupt(
                        dir.join(name),
                        None,
                        "state file is missing (the directory holds a schedule, so it is not new)",
                    ));
                }
            }
            let text = std::fs::read_to_string(&schedule_path).map_err(|e| Error::io("read", &schedule_path, e))?;
            let persisted = Schedule::from_json(&schedule_path, &text)?;
            match persisted.relation_to(&given)? {
                ScheduleRelation::Same => (given, "same"),
                ScheduleRelation::RollsForward => (given, "rolledForward"),
                ScheduleRelation::Behind => (persisted, "behind"),
            }
        };

        // Open and validate everything before changing anything.
        let symbols = SymbolMap::load(&dir)?;
        let trade = Ledger::open(&dir.join(LedgerKind::Trade.file_name()), LedgerKind::Trade, sync)?;
        let enrichment = Ledger::open(&dir.join(LedgerKind::Enrichment.file_name()), LedgerKind::Enrichment, sync)?;
        let mut stores = Vec::new();
        let mut store_reports = Vec::new();
        for kind in StoreKind::ALL {
            let (store, replay) = PayloadStore::open(&dir.join(kind.file_name()), kind, sync)?;
            store_reports.push(StoreReport {
                store: kind,
                records: replay.records,
                bytes: replay.bytes,
                torn_tail_bytes: replay.torn_tail_bytes,
                torn_tail_repaired: false,
            });
            stores.push(store);
        }
        let journal_path = dir.join(JOURNAL_FILE);
        let existing_journal = if journal_path.exists() {
            Some(Journal::open(&journal_path)?)
        } else if !alone && !created {
            // Controllers still open would go on writing to the journal they
            // have mapped, and waiters on a new one would never hear of them.
            return Err(Error::corrupt(
                &journal_path,
                None,
                "the change journal is missing while other controllers have the directory open; the next bootstrap after they close recreates it",
            ));
        } else {
            None
        };
        let now = now_ms();
        let symbol_count = symbols.len();
        let scans: Vec<LedgerScan> =
            [&trade, &enrichment].iter().map(|l| l.scan(now, symbol_count, schedule.window_count())).collect::<Result<_>>()?;

        // Every check passed: now repairs and roll-forward.
        let recovery = if alone { RecoveryMode::TruncateTornTail } else { RecoveryMode::ReportTornTail };
        if recovery == RecoveryMode::TruncateTornTail {
            for (store, report) in stores.iter().zip(store_reports.iter_mut()) {
                if report.torn_tail_bytes > 0 {
                    store.repair_torn_tail()?;
                    report.torn_tail_repaired = true;
                }
            }
            trade.store_counts(&scans[0]);
            enrichment.store_counts(&scans[1]);
            trade.set_symbol_count(u64::from(symbol_count));
            remove_stale_temp_files(&dir);
        } else {
            trade.publish_symbol_count(u64::from(symbol_count));
        }
        if relation == "rolledForward" {
            write_atomic(&schedule_path, schedule.to_json().as_bytes())?;
        }
        trade.publish_window_count(u64::from(schedule.window_count()));
        // The journal is derived (notification only): a directory made before
        // it existed, or whose journal an operator removed, gets a new one.
        let journal = match existing_journal {
            Some(j) => {
                if alone {
                    j.reset_sleepers();
                }
                j
            }
            None => {
                Journal::create(&journal_path, config.journal_capacity, now_ns())?;
                Journal::open(&journal_path)?
            }
        };
        gate.admit()?;

        let mut files = Vec::new();
        for name in state_file_names().into_iter().chain([JOURNAL_FILE]) {
            files.push(FileReport { name: name.to_string(), bytes: file_len(&dir.join(name)).unwrap_or(0) });
        }
        let ledgers = [(&trade, &scans[0]), (&enrichment, &scans[1])]
            .iter()
            .map(|(l, s)| LedgerReport {
                ledger: l.geometry().kind,
                chunks: s.chunks,
                rows_allocated: s.chunks * u64::from(l.geometry().rows_per_chunk),
                bytes: l.file_len().unwrap_or(0),
                stale_claims: s.stale_claims,
            })
            .collect::<Vec<_>>();
        let report = StorageReport {
            created,
            schedule: relation,
            window_count: schedule.window_count(),
            symbols: symbol_count,
            exclusive: alone,
            files,
            stale_claims: scans.iter().map(|s| s.stale_claims).sum(),
            nonempty_slots: scans.iter().flat_map(|s| s.counts.iter()).map(|c| c[1..].iter().sum::<u64>()).sum(),
            ledgers,
            stores: store_reports,
            elapsed_ns: started.elapsed().as_nanos() as u64,
        };
        let audit = AuditLog::new(&dir, config.actor.clone().unwrap_or_else(default_actor), sync);
        let controller = Controller {
            state_dir: dir,
            window_count: AtomicU32::new(schedule.window_count()),
            schedule: RwLock::new(schedule),
            symbols,
            trade,
            enrichment,
            stores,
            dir_lock,
            default_lease_ms: config.default_lease_ms,
            sync,
            group: GroupCommit::default(),
            journal,
            audit,
        };
        Ok((controller, report))
    }

    /// Opens an existing state directory with the schedule persisted in it
    /// (for tools that do not know the schedule). Creates nothing but the
    /// derived change journal of a directory that has none. `actor` names who
    /// this controller's audit lines are from by default.
    pub fn open_existing(
        state_dir: impl Into<PathBuf>,
        durability: Durability,
        actor: Option<String>,
    ) -> Result<(Controller, StorageReport)> {
        let dir = state_dir.into();
        let path = dir.join(SCHEDULE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotAStateDir { path: dir }),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let schedule = Schedule::from_json(&path, &text)?;
        let mut config = Config::new(dir, schedule.space().clone());
        config.durability = durability;
        config.actor = actor;
        Self::bootstrap(config)
    }

    /// Creates the files of a new state directory; `schedule.json` last, as the
    /// commit mark. Leftovers of an earlier bootstrap that died before writing
    /// `schedule.json` are replaced only if they hold no data.
    fn create_files(dir: &Path, schedule: &Schedule) -> Result<()> {
        for name in state_file_names() {
            let p = dir.join(name);
            let Some(len) = file_len(&p) else { continue };
            let empty = match name {
                n if n == SymbolMap::FILE_NAME => SymbolMap::load(dir).map(|m| m.is_empty()).unwrap_or(len == 0),
                n if n.ends_with(".dat") => {
                    // A ledger holds data only once a chunk was allocated after its
                    // 4096-byte header page; a shorter file is a header cut short.
                    let kind = if n == LedgerKind::Trade.file_name() { LedgerKind::Trade } else { LedgerKind::Enrichment };
                    len <= crate::mapping::PAGE || Ledger::open(&p, kind, false).map(|l| l.chunk_count() == 0).unwrap_or(false)
                }
                _ => len <= crate::payload::HEADER_BYTES,
            };
            if !empty {
                return Err(Error::corrupt(
                    &p,
                    None,
                    format!("{SCHEDULE_FILE} is missing but this file holds data; refusing to start a new state directory over it"),
                ));
            }
        }
        for name in state_file_names() {
            let p = dir.join(name);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| Error::io("remove", &p, e))?;
            }
        }
        let created = now_ns();
        for kind in LedgerKind::ALL {
            Ledger::create(&dir.join(kind.file_name()), kind, created)?;
        }
        for kind in StoreKind::ALL {
            PayloadStore::create(&dir.join(kind.file_name()), kind, created)?;
        }
        SymbolMap::create(dir)?;
        write_atomic(&dir.join(SCHEDULE_FILE), schedule.to_json().as_bytes())
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    pub fn default_lease_ms(&self) -> u64 {
        self.default_lease_ms
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
            self.trade.publish_symbol_count(u64::from(id) + 1);
        }
        Ok(id)
    }

    /// Id of a known symbol.
    pub fn symbol_id(&self, symbol: &str) -> Result<u32> {
        crate::symbols::validate_symbol(symbol)?;
        self.symbols.lookup(symbol)?.ok_or_else(|| Error::UnknownSymbol { symbol: symbol.to_string() })
    }

    /// Id of a symbol if known, without creating it.
    pub fn lookup_symbol(&self, symbol: &str) -> Result<Option<u32>> {
        crate::symbols::validate_symbol(symbol)?;
        self.symbols.lookup(symbol)
    }

    pub fn symbol_name(&self, id: u32) -> Result<String> {
        self.symbols.name(id)?.ok_or_else(|| Error::UnknownSymbol { symbol: format!("id {id}") })
    }

    pub fn symbols(&self) -> Result<Vec<String>> {
        self.symbols.reload()?;
        Ok(self.symbols.all())
    }

    // ---- slots --------------------------------------------------------------------

    fn ledger(&self, kind: SlotKind) -> &Ledger {
        match kind.ledger() {
            LedgerKind::Trade => &self.trade,
            LedgerKind::Enrichment => &self.enrichment,
        }
    }

    pub fn ledger_of(&self, kind: LedgerKind) -> &Ledger {
        match kind {
            LedgerKind::Trade => &self.trade,
            LedgerKind::Enrichment => &self.enrichment,
        }
    }

    fn check(&self, symbol: u32, window_idx: u32) -> Result<()> {
        self.symbols.check_id(symbol)?;
        self.check_window(window_idx)
    }

    /// Bookkeeping after a transition: counters, the journal entry whose
    /// number `journaled` took before the compare-and-swap, the sync mode's msync.
    #[allow(clippy::too_many_arguments)]
    fn after(
        &self,
        journaled: Reservation<'_>,
        kind: SlotKind,
        symbol: u32,
        window_idx: u32,
        t: Transition,
        event: LedgerEvent,
        payload_id: u64,
    ) -> Result<()> {
        let ledger = self.ledger(kind);
        ledger.count_transition(kind.column(), t);
        ledger.count_event(event, 1);
        journaled.commit(symbol, window_idx, kind, t.from, t.to, t.version, payload_id);
        ledger.flush_slot(symbol, window_idx, kind.column())
    }

    fn refused(&self, kind: SlotKind, e: SlotWriteError) -> Error {
        let event = match e {
            SlotWriteError::SlotBusy { .. } => LedgerEvent::Busy,
            _ => LedgerEvent::Conflicts,
        };
        self.ledger(kind).count_event(event, 1);
        Error::SlotWrite(e)
    }

    /// Claims a slot: `Empty | Cleared → Pending`, or takes over an expired claim.
    pub fn claim(&self, symbol: u32, window_idx: u32, kind: SlotKind, lease_ms: Option<u64>) -> Result<ClaimGrant> {
        self.check(symbol, window_idx)?;
        let lease = lease_ms.unwrap_or(self.default_lease_ms);
        let cell = self.ledger(kind).slot_for_write(symbol, window_idx, kind.column())?;
        let journaled = self.journal.reserve();
        let g = cell.claim(now_ms(), lease).map_err(|e| self.refused(kind, e))?;
        let t = Transition { from: g.previous, to: SlotStatus::Pending, version: g.version };
        if g.previous == SlotStatus::Pending {
            self.ledger(kind).count_event(LedgerEvent::Takeovers, 1);
        }
        self.after(journaled, kind, symbol, window_idx, t, LedgerEvent::Claims, 0)?;
        if g.previous == SlotStatus::Pending {
            // The claim is ours whatever happens to the audit line: a failed
            // write of it is not the engine's failure.
            let previous = SlotSnapshot {
                status: SlotStatus::Pending,
                version: g.version.wrapping_sub(1),
                lease_deadline_ms: g.previous_deadline_ms,
                ..SlotSnapshot::EMPTY
            };
            let _ = self.audit_single(&AuditContext::default(), "takeover", symbol, window_idx, kind, t, &previous);
        }
        Ok(g)
    }

    /// Extends a live claim's lease; returns the new deadline (ms since epoch).
    pub fn renew(&self, symbol: u32, window_idx: u32, kind: SlotKind, claim_version: u32, lease_ms: Option<u64>) -> Result<u64> {
        self.check(symbol, window_idx)?;
        let lease = lease_ms.unwrap_or(self.default_lease_ms);
        let Some(cell) = self.ledger(kind).slot(symbol, window_idx, kind.column())? else {
            return Err(
                self.refused(kind, SlotWriteError::VersionConflict { expected_version: claim_version, current: SlotSnapshot::EMPTY })
            );
        };
        let d = cell.renew(claim_version, now_ms(), lease).map_err(|e| self.refused(kind, e))?;
        self.ledger(kind).flush_slot(symbol, window_idx, kind.column())?;
        Ok(d)
    }

    /// Fills a slot the caller claimed at `claim_version`. The payload id must
    /// exist in the kind's mapping table.
    #[allow(clippy::too_many_arguments)]
    pub fn fill(
        &self,
        symbol: u32,
        window_idx: u32,
        kind: SlotKind,
        claim_version: u32,
        payload_type: u8,
        payload_id: u64,
        checksum: u64,
    ) -> Result<Transition> {
        self.check(symbol, window_idx)?;
        self.store(kind.store()).check_exists(payload_id)?;
        if self.sync && crate::durability::deferring() {
            self.store(kind.store()).ensure_durable(payload_id)?;
        }
        let Some(cell) = self.ledger(kind).slot(symbol, window_idx, kind.column())? else {
            return Err(
                self.refused(kind, SlotWriteError::VersionConflict { expected_version: claim_version, current: SlotSnapshot::EMPTY })
            );
        };
        let journaled = self.journal.reserve();
        let t = cell.fill(claim_version, payload_type, payload_id, checksum).map_err(|e| self.refused(kind, e))?;
        self.after(journaled, kind, symbol, window_idx, t, LedgerEvent::Fills, payload_id)?;
        Ok(t)
    }

    /// The claim holder gives the slot back: `Pending → Cleared`.
    pub fn clear(&self, symbol: u32, window_idx: u32, kind: SlotKind, claim_version: u32) -> Result<Transition> {
        self.check(symbol, window_idx)?;
        let Some(cell) = self.ledger(kind).slot(symbol, window_idx, kind.column())? else {
            return Err(
                self.refused(kind, SlotWriteError::VersionConflict { expected_version: claim_version, current: SlotSnapshot::EMPTY })
            );
        };
        let journaled = self.journal.reserve();
        let t = cell.clear(claim_version).map_err(|e| self.refused(kind, e))?;
        self.after(journaled, kind, symbol, window_idx, t, LedgerEvent::Clears, 0)?;
        Ok(t)
    }

    /// The slot before a transition `t`: `before` if the transition started
    /// from it, else what `t` itself says (another writer moved in between).
    fn previous_of(before: SlotSnapshot, t: Transition) -> SlotSnapshot {
        if before.status == t.from && before.version.wrapping_add(1) == t.version {
            before
        } else {
            SlotSnapshot { status: t.from, version: t.version.wrapping_sub(1), ..SlotSnapshot::EMPTY }
        }
    }

    fn force_clear_one(&self, symbol: u32, window_idx: u32, kind: SlotKind) -> Result<(Transition, SlotSnapshot)> {
        self.check(symbol, window_idx)?;
        let Some(cell) = self.ledger(kind).slot(symbol, window_idx, kind.column())? else {
            return Ok((Transition { from: SlotStatus::Empty, to: SlotStatus::Empty, version: 0 }, SlotSnapshot::EMPTY));
        };
        let before = cell.read();
        if before.status == SlotStatus::Empty {
            return Ok((Transition { from: SlotStatus::Empty, to: SlotStatus::Empty, version: before.version }, before));
        }
        if before.status == SlotStatus::Retired {
            // An admin call on a terminal slot: not an engine's conflict, not counted as one.
            return Err(Error::SlotWrite(SlotWriteError::SlotRetired { current: before }));
        }
        let journaled = self.journal.reserve();
        let t = cell.force_clear().map_err(|e| self.refused(kind, e))?;
        if t.from != t.to {
            self.after(journaled, kind, symbol, window_idx, t, LedgerEvent::ForceClears, 0)?;
        }
        Ok((t, Self::previous_of(before, t)))
    }

    fn retire_one(&self, symbol: u32, window_idx: u32, kind: SlotKind) -> Result<(Transition, SlotSnapshot)> {
        self.check(symbol, window_idx)?;
        let cell = self.ledger(kind).slot_for_write(symbol, window_idx, kind.column())?;
        let before = cell.read();
        if before.status == SlotStatus::Retired {
            // Already terminal: no transition, and no journal number to spend on one.
            return Ok((Transition { from: SlotStatus::Retired, to: SlotStatus::Retired, version: before.version }, before));
        }
        let journaled = self.journal.reserve();
        let t = cell.retire().map_err(|e| self.refused(kind, e))?;
        if t.from != t.to {
            self.after(journaled, kind, symbol, window_idx, t, LedgerEvent::Retires, 0)?;
        }
        Ok((t, Self::previous_of(before, t)))
    }

    fn audit_slot(
        &self,
        ctx: &AuditContext,
        action: &str,
        symbol: u32,
        kind: SlotKind,
        mut fields: serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        fields.insert("symbol".into(), self.symbols.name(symbol).ok().flatten().unwrap_or_default().into());
        fields.insert("symbolId".into(), symbol.into());
        fields.insert("slot".into(), kind.name().into());
        self.audit.append(ctx, action, fields)
    }

    #[allow(clippy::too_many_arguments)]
    fn audit_single(
        &self,
        ctx: &AuditContext,
        action: &str,
        symbol: u32,
        window_idx: u32,
        kind: SlotKind,
        t: Transition,
        previous: &SlotSnapshot,
    ) -> Result<()> {
        let mut f = serde_json::Map::new();
        f.insert("window".into(), window_idx.into());
        f.insert("previous".into(), audit::previous_json(previous));
        f.insert("status".into(), t.to.name().into());
        f.insert("version".into(), t.version.into());
        self.audit_slot(ctx, action, symbol, kind, f)
    }

    /// Admin: any status but Retired → Cleared. An Empty slot stays Empty (it is
    /// claimable already); the returned transition then has `from == to`.
    pub fn force_clear(&self, symbol: u32, window_idx: u32, kind: SlotKind) -> Result<Transition> {
        self.force_clear_as(symbol, window_idx, kind, &AuditContext::default())
    }

    /// [`force_clear`](Self::force_clear), recorded in the audit trail under `ctx`
    /// when the slot changed. If the audit line cannot be written the slot has
    /// changed all the same and the error says so.
    pub fn force_clear_as(&self, symbol: u32, window_idx: u32, kind: SlotKind, ctx: &AuditContext) -> Result<Transition> {
        let (t, previous) = self.force_clear_one(symbol, window_idx, kind)?;
        if t.from != t.to {
            self.audit_single(ctx, "forceClear", symbol, window_idx, kind, t, &previous)?;
        }
        Ok(t)
    }

    /// Admin: any status → Retired (terminal).
    pub fn retire(&self, symbol: u32, window_idx: u32, kind: SlotKind) -> Result<Transition> {
        self.retire_as(symbol, window_idx, kind, &AuditContext::default())
    }

    /// [`retire`](Self::retire), recorded in the audit trail under `ctx` when the slot changed.
    pub fn retire_as(&self, symbol: u32, window_idx: u32, kind: SlotKind, ctx: &AuditContext) -> Result<Transition> {
        let (t, previous) = self.retire_one(symbol, window_idx, kind)?;
        if t.from != t.to {
            self.audit_single(ctx, "retire", symbol, window_idx, kind, t, &previous)?;
        }
        Ok(t)
    }

    fn check_range(&self, symbol: u32, from: u32, to: u32) -> Result<()> {
        if from > to {
            return Err(Error::invalid(format!("window range {from}..{to} is reversed")));
        }
        self.symbols.check_id(symbol)?;
        if to > from {
            self.check_window(to - 1)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn range_as(
        &self,
        symbol: u32,
        from: u32,
        to: u32,
        kind: SlotKind,
        ctx: &AuditContext,
        action: &str,
        one: impl Fn(u32) -> Result<Option<(Transition, SlotSnapshot)>>,
    ) -> Result<u64> {
        self.check_range(symbol, from, to)?;
        let mut changed = Vec::new();
        let mut failure = None;
        for w in from..to {
            match one(w) {
                Ok(Some((t, p))) if t.from != t.to => changed.push(serde_json::json!([w, p.status.name(), p.version, p.payload_id])),
                Ok(_) => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let n = changed.len() as u64;
        if n > 0 {
            let mut f = serde_json::Map::new();
            f.insert("from".into(), from.into());
            f.insert("to".into(), to.into());
            f.insert("changed".into(), serde_json::Value::Array(changed));
            self.audit_slot(ctx, action, symbol, kind, f)?;
        }
        failure.map_or(Ok(n), Err)
    }

    /// Admin: force-clears windows `from..to` (exclusive); returns how many slots changed.
    /// Retired slots in the range are skipped.
    pub fn force_clear_range(&self, symbol: u32, from: u32, to: u32, kind: SlotKind) -> Result<u64> {
        self.force_clear_range_as(symbol, from, to, kind, &AuditContext::default())
    }

    /// [`force_clear_range`](Self::force_clear_range), recorded in the audit trail
    /// (one line for the range, listing each slot that changed).
    pub fn force_clear_range_as(&self, symbol: u32, from: u32, to: u32, kind: SlotKind, ctx: &AuditContext) -> Result<u64> {
        self.range_as(symbol, from, to, kind, ctx, "forceClearRange", |w| match self.force_clear_one(symbol, w, kind) {
            Ok(r) => Ok(Some(r)),
            Err(Error::SlotWrite(SlotWriteError::SlotRetired { .. })) => Ok(None),
            Err(e) => Err(e),
        })
    }

    /// Admin: retires windows `from..to` (exclusive); returns how many slots changed.
    pub fn retire_range(&self, symbol: u32, from: u32, to: u32, kind: SlotKind) -> Result<u64> {
        self.retire_range_as(symbol, from, to, kind, &AuditContext::default())
    }

    /// [`retire_range`](Self::retire_range), recorded in the audit trail.
    pub fn retire_range_as(&self, symbol: u32, from: u32, to: u32, kind: SlotKind, ctx: &AuditContext) -> Result<u64> {
        self.range_as(symbol, from, to, kind, ctx, "retireRange", |w| self.retire_one(symbol, w, kind).map(Some))
    }

    /// Appends a tool's own action (gc deletions, retention, ...) to the audit trail.
    pub fn audit_action(&self, ctx: &AuditContext, action: &str, details: serde_json::Value) -> Result<()> {
        let mut f = serde_json::Map::new();
        f.insert("details".into(), details);
        self.audit.append(ctx, action, f)
    }

    /// The audit trail's file and default actor.
    pub fn audit_log(&self) -> &AuditLog {
        &self.audit
    }

    /// A consistent copy of one slot.
    pub fn read_slot(&self, symbol: u32, window_idx: u32, kind: SlotKind) -> Result<SlotSnapshot> {
        self.check(symbol, window_idx)?;
        self.ledger(kind).read(symbol, window_idx, kind.column())
    }

    /// Every slot of a row of `ledger`, in column order.
    pub fn read_row(&self, ledger: LedgerKind, symbol: u32, window_idx: u32) -> Result<Vec<SlotSnapshot>> {
        self.check(symbol, window_idx)?;
        self.ledger_of(ledger).read_row(symbol, window_idx)
    }

    /// First window `>= start` whose slot is neither Filled nor Retired.
    pub fn next_unfilled_window(&self, symbol: u32, start: u32, kind: SlotKind) -> Result<Option<u32>> {
        self.symbols.check_id(symbol)?;
        let end = self.window_count();
        if start >= end {
            return Ok(None);
        }
        self.ledger(kind).find_window(symbol, start, end, kind.column(), |_, s| !matches!(s, SlotStatus::Filled | SlotStatus::Retired))
    }

    /// Claims up to `n` windows `>= start` of one symbol and slot kind, in window
    /// order, skipping windows that are Filled, Retired or held by a live claim.
    /// Returns (window, grant) pairs.
    pub fn claim_next_unfilled(
        &self,
        symbol: u32,
        start: u32,
        kind: SlotKind,
        n: u32,
        lease_ms: Option<u64>,
    ) -> Result<Vec<(u32, ClaimGrant)>> {
        self.symbols.check_id(symbol)?;
        let end = self.window_count();
        let mut out = Vec::with_capacity(n.min(4096) as usize);
        let mut w = start;
        let now = now_ms();
        while (out.len() as u32) < n && w < end {
            let found = self.ledger(kind).find_window(symbol, w, end, kind.column(), |cell, s| claimable(cell, s, now))?;
            let Some(win) = found else { break };
            match self.claim(symbol, win, kind, lease_ms) {
                Ok(g) => out.push((win, g)),
                Err(Error::SlotWrite(_)) => {}
                Err(e) => return Err(e),
            }
            w = win + 1;
        }
        Ok(out)
    }

    // ---- readiness ------------------------------------------------------------------

    /// The slot kinds of a requirement mask (bit `code` set for each kind that
    /// must be Filled).
    fn required_kinds(requirements: u32) -> Result<Vec<SlotKind>> {
        if requirements >> SlotKind::ALL.len() != 0 {
            return Err(Error::invalid(format!(
                "requirement mask {requirements:#x} names slot kind codes past {}",
                SlotKind::ALL.len() - 1
            )));
        }
        Ok(SlotKind::ALL.iter().copied().filter(|k| requirements & (1 << k.code()) != 0).collect())
    }

    fn requirements_met(&self, symbol: u32, window_idx: u32, required: &[SlotKind]) -> Result<bool> {
        for &k in required {
            if self.ledger(k).read(symbol, window_idx, k.column())?.status != SlotStatus::Filled {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// True when every slot kind of `requirements` (a mask of kind codes) is
    /// Filled in (symbol, window), across both ledgers.
    pub fn is_ready(&self, symbol: u32, window_idx: u32, requirements: u32) -> Result<bool> {
        self.check(symbol, window_idx)?;
        let required = Self::required_kinds(requirements)?;
        self.requirements_met(symbol, window_idx, &required)
    }

    /// First window `>= start` whose `requirements` are all Filled and whose
    /// `for_kind` slot can be claimed now (Empty, Cleared, or Pending with an
    /// expired lease; not Filled, not Retired, not held by a live claim).
    pub fn next_ready_window(&self, symbol: u32, start: u32, requirements: u32, for_kind: SlotKind) -> Result<Option<u32>> {
        self.symbols.check_id(symbol)?;
        let required = Self::required_kinds(requirements)?;
        let end = self.window_count();
        let now = now_ms();
        let mut w = start;
        while w < end {
            let Some(candidate) =
                self.ledger(for_kind).find_window(symbol, w, end, for_kind.column(), |cell, s| claimable(cell, s, now))?
            else {
                return Ok(None);
            };
            if self.requirements_met(symbol, candidate, &required)? {
                return Ok(Some(candidate));
            }
            w = candidate + 1;
        }
        Ok(None)
    }

    /// Claims up to `n` ready windows `>= start` (see [`next_ready_window`](Self::next_ready_window))
    /// in window order; returns (window, grant) pairs.
    pub fn claim_next_ready(
        &self,
        symbol: u32,
        start: u32,
        requirements: u32,
        for_kind: SlotKind,
        n: u32,
        lease_ms: Option<u64>,
    ) -> Result<Vec<(u32, ClaimGrant)>> {
        let mut out = Vec::with_capacity(n.min(4096) as usize);
        let mut w = start;
        while (out.len() as u32) < n {
            let Some(win) = self.next_ready_window(symbol, w, requirements, for_kind)? else { break };
            match self.claim(symbol, win, for_kind, lease_ms) {
                Ok(g) => out.push((win, g)),
                Err(Error::SlotWrite(_)) => {}
                Err(e) => return Err(e),
            }
            w = win + 1;
        }
        Ok(out)
    }

    // ---- payload stores -----------------------------------------------------------

    pub fn store(&self, kind: StoreKind) -> &PayloadStore {
        &self.stores[kind as usize]
    }

    /// Appends a payload record; returns its id.
    pub fn append_payload(&self, kind: StoreKind, record: PayloadRecord) -> Result<u64> {
        self.store(kind).append(record)
    }

    // ---- artifacts ----------------------------------------------------------------

    pub fn write_artifact(&self, rel: &str, data: &[u8]) -> Result<ArtifactInfo> {
        artifact::write_artifact(&self.state_dir, rel, data)
    }

    pub fn resolve_artifact(&self, uri: &str) -> Result<PathBuf> {
        artifact::resolve_uri(&self.state_dir, uri)
    }

    // ---- metrics ------------------------------------------------------------------

    /// Slot counts per kind and status, from the shared counters (O(1)).
    pub fn slot_metrics(&self) -> Vec<SlotMetric> {
        let symbols = self.trade.shared_symbol_count().max(u64::from(self.symbols.len()));
        let windows = u64::from(self.window_count()).max(self.trade.shared_window_count());
        let total = symbols * windows;
        SlotKind::ALL
            .iter()
            .map(|&kind| {
                let l = self.ledger(kind);
                let mut counts = [0u64; 5];
                for s in &SlotStatus::ALL[1..] {
                    counts[*s as usize] = l.status_count(kind.column(), *s);
                }
                counts[0] = total.saturating_sub(counts[1..].iter().sum());
                SlotMetric { kind, counts }
            })
            .collect()
    }

    /// Exact counts by scanning the ledgers (for verification).
    pub fn recount(&self) -> Result<Vec<SlotMetric>> {
        self.symbols.reload()?;
        let symbols = self.symbols.len();
        let windows = self.window_count();
        let now = now_ms();
        let mut out = Vec::new();
        for ledger in LedgerKind::ALL {
            let scan = self.ledger_of(ledger).scan(now, symbols, windows)?;
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

    /// Makes every change durable now (msync + fdatasync), whatever the mode.
    pub fn flush(&self) -> Result<()> {
        self.trade.flush_all()?;
        self.enrichment.flush_all()?;
        for s in &self.stores {
            s.sync()?;
        }
        Ok(())
    }

    pub fn is_sync(&self) -> bool {
        self.sync
    }

    // ---- change journal (journal.rs) -------------------------------------------------

    /// The change journal every process of this directory writes.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    // ---- group commit (durability.rs) ------------------------------------------------

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
