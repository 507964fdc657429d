//! Disk faults at every I/O site of the core (`io.rs`; built with the
//! `failpoints` feature).
//!
//! One workload reaches every site: it creates a state directory (under a
//! parent that does not exist yet), adds symbols, claims, appends, fills,
//! clears, grows both ledgers, retires and force-clears (audit lines), runs
//! a deferred append and fill with its group commit, flushes, writes an
//! artifact, collects it as garbage, reopens, cuts a torn tail at bootstrap
//! and rolls the schedule forward, then tears a record a Filled slot refers
//! to and repairs the directory; beside it, it migrates a copy of the
//! version-1 directory kept in the repository. A first run of it in each durability mode
//! finds which steps call which sites, and how often. Then, for every site,
//! every fault kind that applies to its call (ENOSPC, EIO, a short write or
//! extension) and every mode where the site is reached, the workload is run
//! again in a new directory with the fault armed once, at the first and at
//! the last call of the site by a step that reaches it (the first and the
//! last such step; every one with `WS_DISK_FAULTS_ALL=1`), and the test
//! checks:
//!
//! * the step fails with a typed error — `ERR_DISK_FULL` for ENOSPC and a
//!   short write, `ERR_IO` for EIO — never a panic or a SIGBUS (the gc's
//!   best-effort directory syncs are the exception: gc goes on);
//! * a bootstrap that fails to make a new directory leaves no
//!   `schedule.json` (the commit mark), so the directory is still new to a
//!   bootstrap with another schedule;
//! * nothing acknowledged before is lost or altered (symbols, records with
//!   every byte of them, slot states, artifacts, audit lines), and no Filled
//!   slot refers to a record that does not exist or whose checksum differs;
//! * a slot changed by the failing call only where the failure came after
//!   the change (the msync of its page, or a later call of a site in the
//!   step, as the audit trail's outcome line), and then the change is in
//!   place;
//! * the step, retried in the same process with the fault cleared,
//!   succeeds (a change already in place is refused as such), and the rest
//!   of the workload runs;
//! * a fresh bootstrap opens, with counts equal to a recount and everything
//!   acknowledged in place;
//! * in the sync mode, the image of only what the syncs made durable (the
//!   core's sync observer, `support::crash_image`) opens and holds every
//!   acknowledged call: faults and retries lose nothing to a power loss.
//!
//! Every site must be reached with a fault injected at least once, so a new
//! site without a workload step fails here (and [`expect`] does not compile
//! until the new site is classified).
//!
//! Failpoints and the sites' counters are per process: the test takes
//! `FailScenario`, which runs one scenario at a time.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

mod support;

use fail::FailScenario;
use serde_json::Value;
use support::crash_image::Recording;
use window_space_core::audit::{AuditContext, AuditLog};
use window_space_core::io::{self, Fault, Site};
use window_space_core::ops::gc::{gc, GcOptions};
use window_space_core::ops::gc_log;
use window_space_core::ops::migrate::{migrate, MigrateOptions};
use window_space_core::ops::reader::StateReader;
use window_space_core::ops::repair::{repair, RepairOptions};
use window_space_core::ops::verify::{verify, VerifyOptions};
use window_space_core::{
    Config, Controller, Durability, Error, ErrorCode, FillPayload, PayloadInput, PayloadRecord, SlotAddr, SlotKind, SlotSnapshot,
    SlotStatus, StoreKind, WindowSpace,
};

const WINDOWS: u32 = 2000;
/// A window whose trade chunk lies past the first growth (8 chunks of 146 rows).
const FAR_WINDOW: u32 = 8 * 146;
const JUNK: &str = "x/junk.bin";

type Slot = (&'static str, u32, SlotKind);

/// One call of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Bootstrap,
    Resolve(&'static str),
    Claim(Slot),
    Append(Slot),
    Fill(Slot),
    Clear(Slot),
    Retire(Slot),
    ForceClear(Slot),
    /// Appends and fills inside a deferral scope, then commits.
    DeferredFill(Slot),
    Flush,
    WriteArtifact(&'static str),
    /// Appends a record naming an artifact, for a slot never filled.
    AppendUnfilled(Slot, &'static str),
    Gc,
    Reopen,
    /// Cuts the last trades record short, then bootstraps (which cuts the torn tail off).
    TearAndReopen,
    RollForward(u32),
    /// Tears the last trades record, which this Filled slot refers to (a
    /// bootstrap then refuses the directory), and runs `window-space repair`:
    /// the slot is Cleared, its id marked lost. The loss is the operator's
    /// to accept; everything else stays.
    LoseAndRepair(Slot),
    /// Migrates a copy of the version-1 directory kept in the repository
    /// (beside the workload's), then opens it.
    Migrate,
}

fn workload() -> Vec<Step> {
    use SlotKind::{Greeks, OptionTrade};
    use Step::*;
    vec![
        Bootstrap,
        Resolve("A"),
        Claim(("A", 0, OptionTrade)),
        Append(("A", 0, OptionTrade)),
        Fill(("A", 0, OptionTrade)),
        Claim(("A", 1, Greeks)),
        Append(("A", 1, Greeks)),
        Fill(("A", 1, Greeks)),
        Claim(("A", 2, OptionTrade)),
        Clear(("A", 2, OptionTrade)),
        Claim(("A", FAR_WINDOW, OptionTrade)),
        Clear(("A", FAR_WINDOW, OptionTrade)),
        Retire(("A", 3, Greeks)),
        ForceClear(("A", 0, OptionTrade)),
        Claim(("A", 4, OptionTrade)),
        DeferredFill(("A", 4, OptionTrade)),
        Flush,
        WriteArtifact(JUNK),
        AppendUnfilled(("A", 5, OptionTrade), JUNK),
        Gc,
        Migrate,
        Reopen,
        Resolve("B"),
        Claim(("B", 0, OptionTrade)),
        Append(("B", 0, OptionTrade)),
        Fill(("B", 0, OptionTrade)),
        AppendUnfilled(("A", 6, OptionTrade), "artifacts/r/torn"),
        TearAndReopen,
        RollForward(500),
        Claim(("A", WINDOWS + 100, OptionTrade)),
        Append(("A", WINDOWS + 100, OptionTrade)),
        Fill(("A", WINDOWS + 100, OptionTrade)),
        ForceClear(("A", WINDOWS + 100, OptionTrade)),
        Claim(("A", 7, OptionTrade)),
        Append(("A", 7, OptionTrade)),
        Fill(("A", 7, OptionTrade)),
        LoseAndRepair(("A", 7, OptionTrade)),
        Claim(("A", 8, OptionTrade)),
        Append(("A", 8, OptionTrade)),
        Fill(("A", 8, OptionTrade)),
    ]
}

/// What a site's failure may leave behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The call fails and changes no slot.
    Fails,
    /// The call fails after its slot changed (the sync of that change failed):
    /// the change is in place, not known to be durable.
    FailsAfterTheChange,
    /// Reached only when `primary` failed first (undoing what it left): both
    /// are armed, and the call fails with the primary's error.
    Undo { primary: Site },
    /// Best effort: the call goes on.
    Tolerated,
}

/// How each site fails. No wildcard: a new site does not compile until it is classified here.
fn expect(site: Site) -> Expect {
    use Site::*;
    match site {
        PayloadAppendUndo => Expect::Undo { primary: PayloadAppendWrite },
        PayloadLostUndo => Expect::Undo { primary: PayloadLostWrite },
        SymbolsCut => Expect::Undo { primary: SymbolsAppendWrite },
        LedgerGrowRestore => Expect::Undo { primary: LedgerGrowExtend },
        LedgerSlotMsync | LedgerCommitMsync => Expect::FailsAfterTheChange,
        GcMoveDir | GcRemoveDir => Expect::Tolerated,
        PayloadCreateWrite
        | PayloadCreateSync
        | PayloadAppendWrite
        | PayloadAppendSync
        | PayloadCutTruncate
        | PayloadCutSync
        | PayloadCommitSync
        | LedgerCreateWrite
        | LedgerCreateSync
        | LedgerGrowExtend
        | LedgerGrowChunk
        | LedgerGrowSync
        | LedgerGrowHeader
        | LedgerFlushMsync
        | JournalCreateExtend
        | JournalCreateWrite
        | JournalCreateSync
        | JournalCreateDir
        | SymbolsCreateWrite
        | SymbolsCreateSync
        | SymbolsAppendWrite
        | SymbolsAppendSync
        | ScheduleWrite
        | ScheduleSync
        | ScheduleDir
        | StateDirMkdir
        | PresenceWrite
        | AuditOpenDir
        | AuditAppend
        | AuditSync
        | GcLogAppend
        | GcLogSync
        | GcLogDir
        | ArtifactWrite
        | ArtifactSync
        | ArtifactDir
        | ArtifactMkdir
        | PayloadLostHeader
        | PayloadLostHeaderSync
        | PayloadLostWrite
        | PayloadLostSync
        | MigrateWrite
        | MigrateSync
        | MigrateDir => Expect::Fails,
    }
}

/// The site whose step reaches `site` in a fault-free run.
fn reached_through(site: Site) -> Site {
    match expect(site) {
        Expect::Undo { primary } => primary,
        _ => site,
    }
}

fn expected_code(fault: Fault) -> ErrorCode {
    match fault {
        Fault::NoSpace | Fault::Short => ErrorCode::DiskFull,
        Fault::Io => ErrorCode::Io,
    }
}

// ---- the world the workload runs in -------------------------------------------------

/// A state directory, its controller, and what the workload was told.
struct World {
    _root: tempfile::TempDir,
    dir: PathBuf,
    mode: Durability,
    windows: u32,
    c: Option<Controller>,
    symbols: BTreeMap<&'static str, u32>,
    /// Records by (store code, payload id).
    records: BTreeMap<(u32, u64), PayloadRecord>,
    /// Slot states the workload was told of (or, after a failure after the
    /// change, found in place).
    slots: HashMap<SlotAddr, SlotSnapshot>,
    /// Slots whose state in `slots` a failed call left (not acknowledged).
    unacked: HashSet<SlotAddr>,
    claims: HashMap<SlotAddr, u32>,
    appended: HashMap<SlotAddr, u64>,
    artifacts: BTreeMap<String, Vec<u8>>,
    /// Good audit lines read after the last successful step.
    audit: Vec<Value>,
    torn: bool,
    /// The record `LoseAndRepair` tore (and the repair marked lost).
    lost: Option<u64>,
    next_checksum: u64,
    /// In the sync mode, what every sync made durable (see [`check_durable_image`]).
    synced: Option<Recording>,
}

impl World {
    fn new(mode: Durability) -> Self {
        let root = support::scratch_dir();
        let dir = root.path().join("parent").join("state");
        let synced = (mode == Durability::Sync).then(|| Recording::start_durable_only(&dir));
        Self {
            _root: root,
            dir,
            mode,
            windows: WINDOWS,
            c: None,
            symbols: BTreeMap::new(),
            records: BTreeMap::new(),
            slots: HashMap::new(),
            unacked: HashSet::new(),
            claims: HashMap::new(),
            appended: HashMap::new(),
            artifacts: BTreeMap::new(),
            audit: Vec::new(),
            torn: false,
            lost: None,
            next_checksum: 1,
            synced,
        }
    }

    fn config(&self, windows: u32) -> Config {
        let mut cfg = Config::new(&self.dir, WindowSpace::Uniform { origin_ns: 0, window_ns: 1_000_000_000, window_count: windows });
        cfg.durability = self.mode;
        cfg.journal_capacity = 64;
        cfg
    }

    fn c(&self) -> &Controller {
        self.c.as_ref().expect("the controller is open")
    }

    fn addr(&self, (symbol, window, kind): Slot) -> SlotAddr {
        SlotAddr::new(self.symbols[symbol], window, kind)
    }

    fn input(&mut self, at: SlotAddr, uri: String) -> PayloadInput {
        self.next_checksum += 1;
        PayloadInput {
            symbol_id: at.symbol,
            window_idx: at.window,
            slot_kind: at.kind,
            payload_type: 1,
            checksum: self.next_checksum,
            size: 10,
            uri,
        }
    }

    fn told_record(&mut self, store: StoreKind, id: u64) {
        let rec = self.c().store(store).get(id).unwrap().expect("a record just appended reads back");
        assert!(self.records.insert((store.code(), id), rec).is_none(), "payload id {id} of {} handed out twice", store.file_name());
    }

    fn told_slot(&mut self, at: SlotAddr) {
        let now = self.c().read_slot(at).unwrap();
        self.slots.insert(at, now);
        self.unacked.remove(&at);
    }

    fn audit_path(&self) -> PathBuf {
        self.dir.join("audit.log")
    }

    fn bootstrap(&mut self, windows: u32) -> Result<(), Error> {
        self.c = None;
        let (c, _) = Controller::bootstrap(self.config(windows))?;
        self.c = Some(c);
        Ok(())
    }
}

/// Runs one step; the world learns what a successful call told.
fn run(w: &mut World, step: Step) -> Result<(), Error> {
    let audit_before = AuditLog::scan(&w.audit_path()).unwrap().0.len();
    match step {
        Step::Bootstrap | Step::Reopen => w.bootstrap(w.windows)?,
        Step::TearAndReopen => {
            w.c = None;
            if !w.torn {
                let store = StoreKind::Trades;
                let (&(_, id), _) = w.records.iter().rfind(|((s, _), _)| *s == store.code()).unwrap();
                assert!(!w.slots.values().any(|s| s.status == SlotStatus::Filled && s.payload_id == id), "the torn record is unreferenced");
                let path = w.dir.join(store.file_name());
                let len = std::fs::metadata(&path).unwrap().len();
                std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 5).unwrap();
                w.records.remove(&(store.code(), id));
                w.torn = true;
            }
            w.bootstrap(w.windows)?;
        }
        Step::RollForward(more) => {
            w.bootstrap(w.windows + more)?;
            w.windows += more;
        }
        Step::Resolve(name) => {
            let id = w.c().resolve_symbol(name)?;
            assert_eq!(id as usize, w.symbols.len(), "symbol ids are dense");
            w.symbols.insert(name, id);
        }
        Step::Claim(slot) => {
            let at = w.addr(slot);
            let g = w.c().claim(at, None)?;
            w.claims.insert(at, g.version);
            w.told_slot(at);
        }
        Step::Append(slot) => {
            let at = w.addr(slot);
            let input = w.input(at, format!("artifacts/r/{}", w.next_checksum));
            let id = w.c().append_payload(at.kind.store(), input)?;
            w.told_record(at.kind.store(), id);
            w.appended.insert(at, id);
        }
        Step::AppendUnfilled(slot, uri) => {
            let at = w.addr(slot);
            let uri = if uri.starts_with("artifacts/") { uri.to_string() } else { format!("artifacts/{uri}") };
            let input = w.input(at, uri);
            let id = w.c().append_payload(at.kind.store(), input)?;
            w.told_record(at.kind.store(), id);
        }
        Step::Fill(slot) => {
            let at = w.addr(slot);
            let id = w.appended[&at];
            let checksum = w.records[&(at.kind.store().code(), id)].checksum;
            w.c().fill(at, w.claims[&at], FillPayload { payload_type: 1, payload_id: id, checksum })?;
            w.claims.remove(&at);
            w.appended.remove(&at);
            w.told_slot(at);
        }
        Step::DeferredFill(slot) => {
            let at = w.addr(slot);
            let input = w.input(at, format!("artifacts/r/{}", w.next_checksum));
            let (checksum, version) = (input.checksum, w.claims[&at]);
            let (id, ticket) = w.c().deferred(|c| {
                let id = c.append_payload(at.kind.store(), input)?;
                c.fill(at, version, FillPayload { payload_type: 1, payload_id: id, checksum })?;
                Ok(id)
            })?;
            w.c().commit_through(ticket)?;
            w.told_record(at.kind.store(), id);
            w.claims.remove(&at);
            w.told_slot(at);
        }
        Step::Clear(slot) => {
            let at = w.addr(slot);
            w.c().clear(at, w.claims[&at])?;
            w.claims.remove(&at);
            w.told_slot(at);
        }
        Step::Retire(slot) => {
            let at = w.addr(slot);
            w.c().retire(at, &AuditContext::default())?;
            w.told_slot(at);
        }
        Step::ForceClear(slot) => {
            let at = w.addr(slot);
            w.c().force_clear(at, &AuditContext::default())?;
            w.told_slot(at);
        }
        Step::Flush => w.c().flush()?,
        Step::WriteArtifact(rel) => {
            let data = format!("bytes of {rel}").into_bytes();
            let info = w.c().write_artifact(rel, &data)?;
            w.artifacts.insert(info.uri, data);
        }
        Step::LoseAndRepair(slot) => {
            let at = w.addr(slot);
            w.c = None;
            let store = at.kind.store();
            if w.lost.is_none() {
                let id = w.slots[&at].payload_id;
                let (&(_, last), _) = w.records.iter().rfind(|((s, _), _)| *s == store.code()).unwrap();
                assert_eq!(id, last, "the slot refers to the last record of its table");
                let path = w.dir.join(store.file_name());
                let len = std::fs::metadata(&path).unwrap().len();
                std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 1).unwrap();
                let refused = Controller::bootstrap(w.config(w.windows)).map(drop).expect_err("a Filled slot refers to a torn record");
                assert_eq!(refused.code(), ErrorCode::CorruptState, "{refused}");
                w.records.remove(&(store.code(), id));
                w.lost = Some(id);
            }
            repair(&w.dir, &RepairOptions { dry_run: false, ctx: AuditContext::default() })?;
            w.bootstrap(w.windows)?;
            let id = w.lost.unwrap();
            let lost = w.c().store(store).get(id).expect_err("a lost id reads as lost");
            assert_eq!(lost.code(), ErrorCode::PayloadLost, "{lost}");
            let now = w.c().read_slot(at).unwrap();
            assert_eq!(now.status, SlotStatus::Cleared, "the repair cleared the slot that referred to the lost record");
            w.told_slot(at);
        }
        Step::Migrate => {
            let v1 = w._root.path().join("v1-state");
            if !v1.exists() {
                support::copy_tree(&support::v1_fixture(), &v1);
            }
            migrate(&v1, &MigrateOptions::default())?;
            let migrated = StateReader::open(&v1).expect("the migrated directory opens");
            assert_eq!(migrated.symbols(), ["SPY", "AAPL", "QQQ"], "the migrated directory keeps its symbols");
        }
        Step::Gc => {
            // Older than any minimum age (the coarse clock gc reads may lag a file's mtime).
            if let Ok(f) = std::fs::File::options().write(true).open(w.dir.join("artifacts").join(JUNK)) {
                f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60)).unwrap();
            }
            let report = gc(w.c(), &GcOptions { delete: true, min_age_ms: 0, ctx: AuditContext::default() }, &mut |_, _, _| {})?;
            let uri = format!("artifacts/{JUNK}");
            assert!(!w.dir.join(&uri).exists(), "gc removed the unreferenced artifact: {report:?}");
            w.artifacts.remove(&uri);
        }
    }
    // A step that wrote audit lines synced them (in the sync mode) and every
    // line before them: they are acknowledged. Lines a failed call left are
    // not, until such a step.
    let (lines, _) = AuditLog::scan(&w.audit_path()).unwrap();
    if lines.len() > audit_before {
        w.audit = lines;
    }
    Ok(())
}

/// The slot a step changes, if any.
fn slot_of(step: Step) -> Option<Slot> {
    match step {
        Step::Claim(s) | Step::Fill(s) | Step::Clear(s) | Step::Retire(s) | Step::ForceClear(s) | Step::DeferredFill(s) => Some(s),
        _ => None,
    }
}

/// The store a plain append step appends to.
fn appends_to(step: Step) -> Option<StoreKind> {
    match step {
        Step::Append(s) | Step::AppendUnfilled(s, _) => Some(s.2.store()),
        _ => None,
    }
}

/// Retries a step whose call failed, the fault cleared. A change the failed
/// call left in place (`changed`) is refused as such, or paid for (a deferred
/// change whose commit failed is committed by the next round).
///
/// `next_id` is the payload id the failed call would have had, if it appended:
/// a failed append leaves no record, so the retry gets that id.
fn retry(w: &mut World, step: Step, changed: bool, next_id: Option<u64>) -> Result<(), String> {
    if !changed {
        run(w, step).map_err(|e| format!("the retry of {step:?} failed: {e}"))?;
        if let (Some(store), Some(next_id)) = (appends_to(step), next_id) {
            let last = w.records.keys().rfind(|(code, _)| *code == store.code()).map(|(_, id)| *id);
            if last != Some(next_id) {
                return Err(format!("the retried append got payload id {last:?}, not {next_id}: the failed append left a record"));
            }
        }
        return Ok(());
    }
    let at = w.addr(slot_of(step).expect("only slot steps change a slot"));
    let live = w.c().read_slot(at).unwrap();
    match step {
        Step::Claim(_) => {
            let e = w.c().claim(at, None).expect_err("a retried claim finds its own claim in place");
            assert_eq!(e.code(), ErrorCode::SlotBusy, "{e}");
            w.claims.insert(at, live.version);
        }
        Step::Fill(_) | Step::Clear(_) => {
            let claim = w.claims[&at];
            let again = if let Step::Fill(_) = step {
                w.c().fill(at, claim, FillPayload { payload_type: 1, payload_id: live.payload_id, checksum: live.checksum })
            } else {
                w.c().clear(at, claim)
            };
            let e = again.expect_err("a retried transition finds its change in place");
            assert_eq!(e.code(), ErrorCode::VersionConflict, "{e}");
            assert_eq!(e.refusal().map(|r| *r.current()), Some(live), "the refusal shows the change in place");
            w.claims.remove(&at);
            w.appended.remove(&at);
        }
        Step::Retire(_) | Step::ForceClear(_) => {
            run(w, step).map_err(|e| format!("the retry of {step:?} failed: {e}"))?;
            assert_eq!(w.c().read_slot(at).unwrap(), live, "a retried admin call left the slot as the failed one did");
        }
        Step::DeferredFill(_) => {
            assert_eq!(live.status, SlotStatus::Filled);
            let (_, ticket) = w.c().deferred(|_| Ok(())).unwrap();
            w.c().commit_through(ticket).map_err(|e| format!("the next commit round did not pay what the failed one owed: {e}"))?;
            let rec = w.c().store(at.kind.store()).get(live.payload_id).unwrap().expect("the deferred fill's record exists");
            w.records.insert((at.kind.store().code(), live.payload_id), rec);
            w.claims.remove(&at);
            // Committed now: acknowledged.
            w.slots.insert(at, live);
            w.unacked.remove(&at);
            return Ok(());
        }
        _ => unreachable!("{step:?} changes no slot"),
    }
    w.slots.insert(at, live);
    Ok(())
}

// ---- checks ----------------------------------------------------------------------------

/// Everything acknowledged is in place, no Filled slot refers to a record
/// that does not exist (or to another one), and the counts equal a recount.
fn check(w: &World, c: &Controller, when: &str) -> Result<(), String> {
    check_in(w, c, &w.dir, false, when)
}

/// [`check`] of the controller `c` of the directory `dir`; an `image` of
/// what was synced holds no artifacts and need not hold slot states no call
/// acknowledged.
fn check_in(w: &World, c: &Controller, dir: &Path, image: bool, when: &str) -> Result<(), String> {
    for (name, id) in &w.symbols {
        let got = c.lookup_symbol(name).map_err(|e| format!("{when}: symbol {name}: {e}"))?;
        if got != Some(*id) {
            return Err(format!("{when}: symbol {name} had id {id}, now {got:?}"));
        }
    }
    for ((code, id), rec) in &w.records {
        let store = &StoreKind::from_code(*code).unwrap();
        let got = c.store(*store).get(*id).map_err(|e| format!("{when}: {} record {id}: {e}", store.file_name()))?;
        if got.as_ref() != Some(rec) {
            return Err(format!("{when}: {} record {id} was {rec:?}, now {got:?}", store.file_name()));
        }
    }
    for (at, snap) in w.slots.iter().filter(|(at, _)| !image || !w.unacked.contains(at)) {
        let got = c.read_slot(*at).map_err(|e| format!("{when}: {at}: {e}"))?;
        if got != *snap {
            return Err(format!("{when}: {at} was {snap:?}, now {got:?}"));
        }
    }
    let symbols = c.symbols().map_err(|e| format!("{when}: {e}"))?;
    for symbol in 0..symbols.len() as u32 {
        for kind in SlotKind::ALL {
            let ledger = c.ledger_of(kind.ledger());
            let mut from = 0;
            while let Some(win) = ledger
                .find_window(symbol, from, c.window_count(), kind.column(), |_, s| s == SlotStatus::Filled)
                .map_err(|e| format!("{when}: {e}"))?
            {
                let at = SlotAddr::new(symbol, win, kind);
                let s = c.read_slot(at).map_err(|e| format!("{when}: {e}"))?;
                match c.store(kind.store()).get(s.payload_id).map_err(|e| format!("{when}: {e}"))? {
                    Some(rec) if rec.checksum == s.checksum && rec.symbol_id == symbol && rec.window_idx == win => {}
                    other => return Err(format!("{when}: {at} is Filled with payload id {} but its record is {other:?}", s.payload_id)),
                }
                from = win + 1;
            }
        }
    }
    let recount = c.recount().map_err(|e| format!("{when}: recount: {e}"))?;
    if c.slot_metrics() != recount {
        return Err(format!("{when}: the counts differ from a recount"));
    }
    for (uri, data) in w.artifacts.iter().filter(|_| !image) {
        if std::fs::read(dir.join(uri)).ok().as_ref() != Some(data) {
            return Err(format!("{when}: artifact {uri} is gone or changed"));
        }
    }
    let (lines, damaged) = AuditLog::scan(&dir.join("audit.log")).map_err(|e| format!("{when}: audit.log: {e}"))?;
    if !lines.starts_with(&w.audit) {
        return Err(format!("{when}: audit lines written before are gone or changed"));
    }
    // A write cut short is a torn append, never damage that verify would report forever.
    if !damaged.is_empty() {
        return Err(format!("{when}: audit.log has damaged lines: {damaged:?}"));
    }
    let gc = gc_log::read(dir).map_err(|e| format!("{when}: gc.log: {e}"))?;
    if !gc.damaged.is_empty() {
        return Err(format!("{when}: gc.log has damaged lines: {:?}", gc.damaged));
    }
    Ok(())
}

/// In the sync mode, a power loss now must lose no acknowledged call, also
/// after faults and retries: the image of only what the syncs made durable
/// (`support::crash_image`) opens and holds everything acknowledged.
fn check_durable_image(w: &World) -> Result<(), String> {
    let Some(rec) = &w.synced else { return Ok(()) };
    let image = w._root.path().join("durable-image");
    std::fs::create_dir(&image).unwrap();
    rec.write_final_durable_image(&image);
    let mut cfg = w.config(w.windows);
    cfg.state_dir = image.clone();
    let (c, _) = Controller::bootstrap(cfg).map_err(|e| format!("the image of what was synced does not open: {e}"))?;
    check_in(w, &c, &image, true, "in the image of what was synced")?;
    drop(c);
    std::fs::remove_dir_all(&image).unwrap();
    Ok(())
}

// ---- finding the steps that reach each site --------------------------------------------------

/// For each site, the steps that reach it in a fault-free run in `mode`:
/// (step index, how many times the step calls the site).
fn reaching_steps(mode: Durability, steps: &[Step]) -> BTreeMap<Site, Vec<(usize, u64)>> {
    let mut w = World::new(mode);
    let mut out: BTreeMap<Site, Vec<(usize, u64)>> = BTreeMap::new();
    for (i, step) in steps.iter().enumerate() {
        let before: Vec<u64> = Site::ALL.iter().map(|s| io::reached(*s)).collect();
        run(&mut w, *step).unwrap_or_else(|e| panic!("{mode:?}: step {i} {step:?} failed without a fault: {e}"));
        for (site, n) in Site::ALL.iter().zip(before) {
            if io::reached(*site) > n {
                out.entry(*site).or_default().push((i, io::reached(*site) - n));
            }
        }
    }
    w.c = None;
    check_durable_image(&w).unwrap();
    let (c, _) = Controller::bootstrap(w.config(w.windows)).unwrap();
    check(&w, &c, "after the fault-free run").unwrap();
    out
}

/// Runs the workload with `fault` armed at `site` for the `hit`-th call of
/// the site in step `k` (1: the first).
fn run_case(mode: Durability, steps: &[Step], k: usize, hit: u64, site: Site, fault: Fault) -> Result<(), String> {
    let mut w = World::new(mode);
    for (i, step) in steps[..k].iter().enumerate() {
        run(&mut w, *step).map_err(|e| format!("step {i} {step:?} failed before the fault: {e}"))?;
    }
    let step = steps[k];
    let expectation = expect(site);
    let injected = io::injected(site);
    if let Expect::Undo { primary } = expectation {
        fail::cfg(primary.name(), &Fault::Short.action(Some(1))).unwrap();
    }
    let action = match hit {
        1 => fault.action(Some(1)),
        n => format!("{}*off->{}", n - 1, fault.action(Some(1))),
    };
    fail::cfg(site.name(), &action).unwrap();
    let before = slot_of(step).map(|s| {
        let at = w.addr(s);
        (at, w.c().read_slot(at).unwrap())
    });
    let next_id = appends_to(step).map(|s| w.c().store(s).len().unwrap());
    let result = run(&mut w, step);
    fail::remove(site.name());
    if let Expect::Undo { primary } = expectation {
        fail::remove(primary.name());
    }
    if io::injected(site) != injected + 1 {
        return Err(format!("step {k} {step:?} did not reach the site"));
    }
    let code = match expectation {
        Expect::Undo { .. } => ErrorCode::DiskFull, // the primary's short write
        _ => expected_code(fault),
    };
    match (expectation, result) {
        (Expect::Tolerated, Ok(())) => {}
        (Expect::Tolerated, Err(e)) => return Err(format!("a best-effort sync failed the call: {e}")),
        (_, Ok(())) => return Err(format!("step {k} {step:?} succeeded although its {} failed", site.name())),
        (_, Err(e)) if e.code() != code => {
            return Err(format!("step {k} {step:?} failed with {} ({e}), expected {}", e.code().as_str(), code.as_str()))
        }
        (_, Err(_)) => {}
    }
    // A bootstrap that failed to make a new directory leaves it new: no
    // schedule.json (the commit mark) to refuse a bootstrap with another
    // schedule, whatever site failed.
    if k == 0 && expectation != Expect::Tolerated && w.dir.join("schedule.json").exists() {
        return Err(format!("the failed bootstrap of a new directory left {}", w.dir.join("schedule.json").display()));
    }
    // The slot is as it was, unless the failure came after the change.
    let mut changed = false;
    if let (Some((at, was)), Some(c)) = (before, w.c.as_ref()) {
        let now = c.read_slot(at).unwrap();
        if now != was && expectation != Expect::Tolerated {
            // A step's first call of a site comes before its change, but at the msync sites.
            if expectation != Expect::FailsAfterTheChange && hit == 1 {
                return Err(format!("the failed step {step:?} changed {at}: {was:?} -> {now:?}"));
            }
            // In place, though not known to be durable.
            w.slots.insert(at, now);
            w.unacked.insert(at);
            changed = true;
        }
    }
    if step == Step::Gc {
        // Garbage: the failed gc may have collected it already.
        w.artifacts.remove(&format!("artifacts/{JUNK}"));
    }
    if let Some(c) = w.c.as_ref() {
        check(&w, c, "right after the failure")?;
    }
    if expectation != Expect::Tolerated {
        retry(&mut w, step, changed, next_id)?;
    }
    for (i, step) in steps.iter().enumerate().skip(k + 1) {
        run(&mut w, *step).map_err(|e| format!("step {i} {step:?} failed after the retry: {e}"))?;
    }
    if let Some(c) = w.c.as_ref() {
        check(&w, c, "at the end of the workload")?;
    }
    w.c = None;
    check_durable_image(&w)?;
    let (c, _) = Controller::bootstrap(w.config(w.windows)).map_err(|e| format!("a fresh bootstrap failed: {e}"))?;
    check(&w, &c, "after a fresh bootstrap")
}

#[test]
fn every_site_fails_cleanly_with_every_fault_and_the_call_succeeds_when_retried() {
    let scenario = FailScenario::setup();
    let all_steps = std::env::var("WS_DISK_FAULTS_ALL").is_ok_and(|v| v == "1");
    let steps = workload();
    let mut injected: BTreeSet<Site> = BTreeSet::new();
    let mut failures = Vec::new();
    let mut cases = 0;
    for mode in [Durability::Buffered, Durability::Sync] {
        let reaching = reaching_steps(mode, &steps);
        for &site in Site::ALL {
            let Some(at) = reaching.get(&reached_through(site)) else { continue };
            let chosen: BTreeSet<(usize, u64)> = if all_steps { at.iter().copied().collect() } else { [at[0], at[at.len() - 1]].into() };
            for &fault in site.op().faults() {
                for &(k, calls) in &chosen {
                    // The step's first call of the site and, if it calls it again, its last.
                    let hits: BTreeSet<u64> = if matches!(expect(site), Expect::Undo { .. }) { [1].into() } else { [1, calls].into() };
                    for hit in hits {
                        cases += 1;
                        match run_case(mode, &steps, k, hit, site, fault) {
                            Ok(()) => {
                                injected.insert(site);
                            }
                            Err(e) => failures.push(format!(
                                "{} {:?} (call {hit}) in {mode:?} mode at step {k} {:?}: {e}",
                                site.name(),
                                fault,
                                steps[k]
                            )),
                        }
                    }
                }
            }
        }
    }
    scenario.teardown();
    assert!(failures.is_empty(), "{} of {cases} cases failed:\n{}", failures.len(), failures.join("\n"));
    let missed: Vec<&str> = Site::ALL.iter().filter(|s| !injected.contains(s)).map(|s| s.name()).collect();
    assert!(missed.is_empty(), "no workload step reaches these sites (add one): {missed:?}");
    println!("{cases} cases, {} sites", injected.len());
}

/// A write cut short in `audit.log` and in `gc.log` (the disk filled up
/// mid-line): the call fails with `ERR_DISK_FULL`, its writer ends the
/// fragment with the torn mark, the call run again succeeds, and `verify`
/// reports each torn line as a warning naming it, not as a problem.
#[test]
fn a_write_cut_short_in_either_log_is_a_torn_append_that_verify_warns_of() {
    let scenario = FailScenario::setup();
    let mut w = World::new(Durability::Sync);
    w.bootstrap(WINDOWS).unwrap();
    let ctx = AuditContext::default();
    w.c().audit_action(&ctx, "retention", serde_json::json!({ "n": 1 })).unwrap();
    fail::cfg(Site::AuditAppend.name(), &Fault::Short.action(Some(1))).unwrap();
    let e = w.c().audit_action(&ctx, "retention", serde_json::json!({ "n": 2 })).unwrap_err();
    fail::remove(Site::AuditAppend.name());
    assert_eq!(e.code(), ErrorCode::DiskFull, "{e}");
    w.c().audit_action(&ctx, "retention", serde_json::json!({ "n": 2 })).unwrap();

    let done = |id: &str| gc_log::GcEntry::Done { v: 1, id: id.into(), at: gc_log::now_iso() };
    gc_log::append(&w.dir, &[done("a")]).unwrap();
    fail::cfg(Site::GcLogAppend.name(), &Fault::Short.action(Some(1))).unwrap();
    let e = gc_log::append(&w.dir, &[done("b")]).unwrap_err();
    fail::remove(Site::GcLogAppend.name());
    assert_eq!(e.code(), ErrorCode::DiskFull, "{e}");
    gc_log::append(&w.dir, &[done("b")]).unwrap();
    scenario.teardown();

    let audit = std::fs::read_to_string(w.audit_path()).unwrap();
    assert!(audit.lines().nth(1).is_some_and(|l| l.ends_with("#torn")), "{audit}");
    let scan = AuditLog::scan_numbered(&w.audit_path()).unwrap();
    assert_eq!(scan.torn.iter().map(|t| t.line).collect::<Vec<_>>(), [2]);
    assert!(scan.damaged.is_empty(), "{:?}", scan.damaged);
    assert_eq!(scan.entries.iter().map(|(n, e)| (*n, e["details"]["n"].as_u64())).collect::<Vec<_>>(), [(1, Some(1)), (3, Some(2))]);
    let gc = gc_log::read(&w.dir).unwrap();
    assert_eq!((gc.torn.clone(), gc.damaged.clone(), gc.torn_tail), (vec![2], vec![], false));

    let r = verify(&w.dir, VerifyOptions::default(), &mut |_, _, _| {}).unwrap();
    assert!(r.ok && r.problems.is_empty(), "{:#?}", r.problems);
    let torn: Vec<(&str, Option<u64>)> =
        r.warnings.iter().filter(|f| f.kind.ends_with("-torn")).map(|f| (f.kind, f.fields.get("line").and_then(Value::as_u64))).collect();
    assert_eq!(torn, [("gc-log-torn", Some(2)), ("audit-log-torn", Some(2))]);
    assert!(r.warnings.iter().filter(|f| f.kind.ends_with("-torn")).all(|f| f.message.contains("cut short")));
}
