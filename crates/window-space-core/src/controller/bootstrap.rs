//! Opening a state directory: creating it on first use, validating every
//! file before changing anything, the repairs only a controller that is alone
//! may make (torn tails, shared counters, stale temp files), roll-forward of
//! the schedule, and the storage report.
//!
//! Validation ends with the cross-file checks: every ledger chunk belongs to
//! a symbol `symbols.log` holds, and every Filled slot refers to a
//! payload id its mapping table holds (whole records, after the torn tail;
//! not a lost id). A directory that fails them lost records or symbols
//! (power loss in the buffered mode, or files restored from backups of
//! different times): opening it would hand out ids that slots or rows already
//! use, so the bootstrap refuses ([`Damage`]) and changes nothing. Only an
//! operator's repair (`ops/repair.rs`) accepts such a loss.

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
use crate::ledger::{DanglingRef, Ledger, LedgerScan};
use crate::lock::{DirLock, Presence};
use crate::mapping::require_lock_free_u128;
use crate::payload::{PayloadStore, RecoveryMode};
use crate::schedule::{Schedule, ScheduleRelation};
use crate::symbols::SymbolMap;
use crate::vocab::{LedgerKind, StoreKind};

/// Damage that only an operator's repair accepts (`ops/repair.rs`): what
/// every bootstrap looks for after its other checks, before it changes anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Damage {
    /// Ledger chunks of symbol ids `symbols.log` does not hold.
    pub unknown_symbols: Option<UnknownSymbols>,
    /// Mapping tables that Filled slots refer past (or to lost ids of), in store order.
    pub stores: Vec<StoreDamage>,
    /// Every Filled slot whose payload id its table does not hold, or holds as lost.
    pub dangling: Vec<DanglingRef>,
}

/// Chunks of symbols the symbol map does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownSymbols {
    /// Symbols the map holds.
    pub symbols: u32,
    /// The highest symbol id a chunk belongs to.
    pub highest_symbol: u32,
    /// Chunks (both ledgers) of symbol ids the map does not hold.
    pub chunks: u64,
}

/// What Filled slots refer to that one mapping table does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreDamage {
    pub store: StoreKind,
    /// Whole records of the table (lost ids included): its next id.
    pub records: u64,
    /// The highest payload id a Filled slot of the table's slot kinds refers to.
    pub highest_referenced: u64,
    /// Filled slots whose payload id the table does not hold, or holds as lost.
    pub dangling_slots: u64,
}

impl Damage {
    pub fn is_empty(&self) -> bool {
        self.unknown_symbols.is_none() && self.dangling.is_empty()
    }

    /// The error a bootstrap refuses with: the missing symbols first (a
    /// repair adds them first), else the first mapping table affected.
    pub fn error(&self, dir: &Path) -> Option<Error> {
        if let Some(u) = self.unknown_symbols {
            return Some(Error::UnknownSymbolChunks {
                file: dir.join(SymbolMap::FILE_NAME),
                symbols: u.symbols,
                highest_symbol: u.highest_symbol,
                chunks: u.chunks,
            });
        }
        self.stores.first().map(|s| Error::DanglingPayloads {
            file: dir.join(s.store.file_name()),
            records: s.records,
            highest_referenced: s.highest_referenced,
            dangling_slots: s.dangling_slots,
            stores: self.stores.len() as u32,
        })
    }
}

/// What an operator's repair may look at and change while a bootstrap holds
/// the gate and no other controller has the directory open: after every
/// check, before the bootstrap changes anything.
pub(crate) struct Alone<'a> {
    pub dir: &'a Path,
    pub damage: &'a Damage,
    pub symbols: &'a SymbolMap,
    pub stores: &'a [PayloadStore],
    pub sync: bool,
}

/// Called by [`Controller::bootstrap_accepting`] with the gate held; returns
/// false to stop there (the bootstrap then changes nothing and opens nothing).
pub(crate) type AcceptDamage<'f> = &'f mut dyn FnMut(&Alone<'_>) -> Result<bool>;

/// Names of every state file (besides the lock file).
pub fn state_file_names() -> Vec<&'static str> {
    let mut v = vec![LedgerKind::Trade.file_name(), LedgerKind::Enrichment.file_name(), SymbolMap::FILE_NAME];
    v.extend(StoreKind::ALL.iter().map(|s| s.file_name()));
    v.push(SCHEDULE_FILE);
    v
}

/// Refuses an existing state directory (it holds a schedule) that lacks one
/// of its state files, naming the file.
pub(crate) fn check_state_files_present(dir: &Path) -> Result<()> {
    check_directory_format(dir)?;
    for name in state_file_names() {
        if !dir.join(name).exists() {
            return Err(Error::corrupt(dir.join(name), None, "state file is missing (the directory holds a schedule, so it is not new)"));
        }
    }
    Ok(())
}

/// Refuses a state directory of an older format version
/// ([`Error::OlderFormat`], naming `window-space migrate`) before anything
/// looks for the files of this one: the format version of the ledgers'
/// headers is the directory's (`ledger.rs`). A ledger that is missing, too
/// short or not a ledger is left to the checks that follow.
pub(crate) fn check_directory_format(dir: &Path) -> Result<()> {
    for kind in LedgerKind::ALL {
        let path = dir.join(kind.file_name());
        if let Ok(Some(version)) = crate::ledger::file_format_version(&path) {
            if version == crate::ledger::MIGRATABLE_VERSION {
                return Err(Error::OlderFormat {
                    file: path,
                    version,
                    supported: crate::ledger::FORMAT_VERSION,
                    state_dir: dir.to_path_buf(),
                });
            }
        }
    }
    Ok(())
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
    /// A directory with [`Damage`] is refused (`ERR_CORRUPT_STATE`, with
    /// the details of the first thing lost).
    pub fn bootstrap(config: Config) -> Result<(Controller, StorageReport)> {
        match Self::bootstrap_accepting(config, None)? {
            Some((c, report, _)) => Ok((c, report)),
            None => Err(Error::Internal { what: "a bootstrap that accepts no damage stopped".into() }),
        }
    }

    /// [`bootstrap`](Self::bootstrap), or with `accept` the open of an
    /// operator's repair: it refuses (`ERR_STATE_DIR_IN_USE`) unless no other
    /// controller has the directory open, finds the [`Damage`] without
    /// refusing it, and calls `accept` with the gate held before it changes
    /// anything; `Ok(None)` when `accept` stopped it. The damage found is
    /// returned with the controller.
    pub(crate) fn bootstrap_accepting(
        config: Config,
        mut accept: Option<AcceptDamage<'_>>,
    ) -> Result<Option<(Controller, StorageReport, Damage)>> {
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
        if accept.is_some() && !alone {
            return Err(Error::StateDirInUse {
                path: dir.clone(),
                what: "other controllers (engines, tools) have it open; a repair needs it to itself: stop them and run it again".into(),
            });
        }

        let schedule_path = dir.join(SCHEDULE_FILE);
        let created = !schedule_path.exists();
        if created && accept.is_some() {
            // A repair never makes a state directory.
            return Err(Error::NotAStateDir { path: dir.clone() });
        }
        let (schedule, relation) = if created {
            Self::create_files(&dir)?;
            (given, "created")
        } else {
            check_state_files_present(&dir)?;
            let text = std::fs::read_to_string(&schedule_path).map_err(|e| Error::io("read", &schedule_path, e))?;
            let persisted = Schedule::from_json(&schedule_path, &text)?;
            match persisted.relation_to(&given)? {
                ScheduleRelation::Same => (given, "same"),
                ScheduleRelation::RollsForward => (given, "rolledForward"),
                ScheduleRelation::Behind => (persisted, "behind"),
            }
        };

        // Open and validate everything before changing anything.
        let symbols = SymbolMap::load(&dir, sync)?;
        let mut trade = Ledger::open(&dir.join(LedgerKind::Trade.file_name()), LedgerKind::Trade, sync)?;
        let mut enrichment = Ledger::open(&dir.join(LedgerKind::Enrichment.file_name()), LedgerKind::Enrichment, sync)?;
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
        let mut symbol_count = symbols.len();
        let (scans, damage) = Self::find_damage([&trade, &enrichment], &symbols, &stores, (now, schedule.window_count()), alone)?;
        if let Some(accept) = accept.as_mut() {
            if !accept(&Alone { dir: &dir, damage: &damage, symbols: &symbols, stores: &stores, sync })? {
                return Ok(None);
            }
            symbol_count = symbols.len();
        } else if let Some(e) = damage.error(&dir) {
            return Err(e);
        }

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
        // Ledgers of format version 2 (one counter shard) become version 3
        // before any process counts in the other shards; with other
        // controllers open, a version-2 ledger is an older library's, which
        // would read shard 0 alone.
        for ledger in [&mut trade, &mut enrichment] {
            if alone {
                ledger.upgrade_format_in_place()?;
            } else if ledger.geometry().format_version == crate::ledger::ONE_SHARD_VERSION {
                return Err(Error::corrupt(
                    ledger.path(),
                    Some(8),
                    "the ledger is of format version 2 and controllers of an older window-space have it open; \
                     close them, and the next bootstrap upgrades it in place to version 3",
                ));
            }
        }
        // From here on this process counts in its own shards.
        let shard = crate::ledger::controller_counter_shard();
        trade.count_in_shard(shard);
        enrichment.count_in_shard(shard);

        // Now repairs and roll-forward.
        let recovery = if alone { RecoveryMode::TruncateTornTail } else { RecoveryMode::ReportTornTail };
        if recovery == RecoveryMode::TruncateTornTail {
            for (store, report) in stores.iter().zip(store_reports.iter_mut()) {
                if report.torn_tail_bytes > 0 {
                    store.repair_torn_tail()?;
                    report.torn_tail_repaired = true;
                }
            }
            symbols.cut_torn_tail()?;
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
        if created {
            Self::commit_new_directory(&dir, &schedule)?;
        }
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
        Ok(Some((controller, report, damage)))
    }

    /// Scans both ledgers (counts, stale claims, no slot outside the
    /// schedule's windows) and finds the [`Damage`]: chunks of symbols the map
    /// does not hold, and Filled slots whose payload id their table does not
    /// hold as a record. With other controllers open, a slot that refers past
    /// what was replayed is judged again after the table is read up to date
    /// (its record may have been appended since) and the slot read again.
    fn find_damage(
        ledgers: [&Ledger; 2],
        symbols: &SymbolMap,
        stores: &[PayloadStore],
        (now, window_count): (u64, u32),
        alone: bool,
    ) -> Result<(Vec<LedgerScan>, Damage)> {
        let symbol_count = symbols.len();
        let mut damage = Damage::default();
        let mut unknown = UnknownSymbols { symbols: symbol_count, highest_symbol: 0, chunks: 0 };
        for l in ledgers {
            let (n, highest) = l.chunks_of_unknown_symbols(symbol_count)?;
            unknown.chunks += n;
            unknown.highest_symbol = unknown.highest_symbol.max(highest.unwrap_or(0));
        }
        if unknown.chunks > 0 {
            damage.unknown_symbols = Some(unknown);
        }
        // Slots of those chunks are judged as damage of the symbol map, not as slots outside it.
        let symbols_seen = if unknown.chunks > 0 { unknown.highest_symbol.saturating_add(1) } else { symbol_count };
        let indexed: Vec<(u64, Vec<u64>)> = stores.iter().map(PayloadStore::indexed).collect();
        let missing = |store: StoreKind, id: u64| {
            let (records, lost) = &indexed[store as usize];
            id >= *records || lost.binary_search(&id).is_ok()
        };
        let mut scans = Vec::new();
        for l in ledgers {
            let scan = l.scan_references(now, symbols_seen, window_count, &missing)?;
            if let Some(o) = &scan.outside {
                return Err(l.outside_error(o, symbols_seen, window_count));
            }
            damage.dangling.extend_from_slice(&scan.dangling);
            scans.push(scan);
        }
        if !alone && !damage.dangling.is_empty() {
            let mut confirmed = Vec::new();
            for d in &damage.dangling {
                let store = &stores[d.kind.store() as usize];
                match store.check_exists(d.payload_id) {
                    Ok(()) => continue,
                    Err(Error::UnknownPayload { .. } | Error::PayloadLost { .. }) => {}
                    Err(e) => return Err(e),
                }
                let now = ledgers[d.kind.ledger() as usize].read(d.symbol, d.window, d.kind.column())?;
                if now.status == crate::vocab::SlotStatus::Filled && now.payload_id == d.payload_id {
                    confirmed.push(*d);
                }
            }
            damage.dangling = confirmed;
        }
        for store in StoreKind::ALL {
            let of_store: Vec<&DanglingRef> = damage.dangling.iter().filter(|d| d.kind.store() == store).collect();
            if of_store.is_empty() {
                continue;
            }
            let referenced = scans.iter().filter_map(|s| s.highest_ref[store as usize]).max().unwrap_or(0);
            damage.stores.push(StoreDamage {
                store,
                records: stores[store as usize].indexed().0,
                highest_referenced: of_store.iter().map(|d| d.payload_id).max().unwrap_or(0).max(referenced),
                dangling_slots: of_store.len() as u64,
            });
        }
        Ok((scans, damage))
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

    /// Creates the files of a new state directory, all but `schedule.json`
    /// (see [`commit_new_directory`](Self::commit_new_directory)). Leftovers of
    /// an earlier bootstrap that died or failed before writing `schedule.json`
    /// are replaced only if they hold no data.
    fn create_files(dir: &Path) -> Result<()> {
        for name in state_file_names() {
            let p = dir.join(name);
            let Some(len) = file_len(&p) else { continue };
            let empty = match name {
                n if n == SymbolMap::FILE_NAME => {
                    SymbolMap::load(dir, false).map(|m| m.is_empty()).unwrap_or(len <= crate::symbols::HEADER_BYTES)
                }
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
        SymbolMap::create(dir, created)?;
        failpoint!("bootstrap::files-created");
        Ok(())
    }

    /// Writes `schedule.json` into a new state directory: its commit mark,
    /// written once everything else of the bootstrap succeeded. Until it
    /// exists the directory is new to every bootstrap (and `create_files`
    /// makes the empty files again), so a bootstrap that fails before it,
    /// on a full disk say, leaves no schedule behind to refuse another one.
    /// If writing it fails part way, it is removed again.
    fn commit_new_directory(dir: &Path, schedule: &Schedule) -> Result<()> {
        let path = dir.join(SCHEDULE_FILE);
        write_atomic(&path, schedule.to_json().as_bytes(), AtomicSites::SCHEDULE).inspect_err(|_| {
            let _ = std::fs::remove_file(&path);
        })
    }
}
