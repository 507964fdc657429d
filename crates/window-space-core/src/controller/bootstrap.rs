//! Opening a state directory: creating it on first use, validating every
//! file before changing anything, the repairs only a controller that is alone
//! may make (torn tails, shared counters, stale temp files), roll-forward of
//! the schedule, and the storage report.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::RwLock;
use std::time::Instant;

use super::{now_ms, now_ns, Config, Controller, Durability, FileReport, LedgerReport, StorageReport, StoreReport, SCHEDULE_FILE};
use crate::audit::{default_actor, AuditLog};
use crate::durability::GroupCommit;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::io::AtomicSites;
use crate::journal::{Journal, JOURNAL_FILE};
use crate::ledger::{Ledger, LedgerScan};
use crate::lock::{DirLock, Presence};
use crate::mapping::require_lock_free_u128;
use crate::payload::{PayloadStore, RecoveryMode};
use crate::schedule::{Schedule, ScheduleRelation};
use crate::symbols::SymbolMap;
use crate::vocab::{LedgerKind, StoreKind};

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
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => crate::fsutil::create_dir_durably(&dir)?,
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
            Journal::open_in_bootstrap(&journal_path, alone)?
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

        // Every check passed. The journal is derived (notification only): a
        // directory made before it existed, or whose journal an operator
        // removed, or one of another format or boot gets a new one — first,
        // so that a full disk fails the bootstrap before anything else changed.
        let journal = match existing_journal {
            Some(j) => {
                if alone {
                    j.reset_shared_state();
                }
                j
            }
            None => {
                Journal::create(&journal_path, config.journal_capacity, now_ns())?;
                Journal::open(&journal_path)?
            }
        };

        // Now repairs and roll-forward.
        let recovery = if alone { RecoveryMode::TruncateTornTail } else { RecoveryMode::ReportTornTail };
        if recovery == RecoveryMode::TruncateTornTail {
            for (store, report) in stores.iter().zip(store_reports.iter_mut()) {
                if report.torn_tail_bytes > 0 {
                    store.repair_torn_tail()?;
                    report.torn_tail_repaired = true;
                }
            }
            failpoint!("bootstrap::tails-cut");
            trade.store_counts(&scans[0]);
            enrichment.store_counts(&scans[1]);
            trade.set_symbol_count(u64::from(symbol_count));
            failpoint!("bootstrap::counts-rebuilt");
            remove_stale_temp_files(&dir);
        } else {
            trade.publish_symbol_count(u64::from(symbol_count));
        }
        if relation == "rolledForward" {
            write_atomic(&schedule_path, schedule.to_json().as_bytes(), AtomicSites::SCHEDULE)?;
            failpoint!("bootstrap::schedule-rolled");
        }
        trade.publish_window_count(u64::from(schedule.window_count()));
        // Our presence record, before any transition; alone, every record left is a dead controller's.
        let presence = Presence::join(&dir, alone)?;
        failpoint!("bootstrap::present");
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
            presence,
            repair_backoff: std::sync::Mutex::new((0, 0)),
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
        failpoint!("bootstrap::files-created");
        write_atomic(&dir.join(SCHEDULE_FILE), schedule.to_json().as_bytes(), AtomicSites::SCHEDULE)
    }
}
