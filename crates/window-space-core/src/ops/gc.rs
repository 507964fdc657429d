//! `window-space gc`: finds payload records and artifact files that no live
//! slot uses, and with `delete` removes the files — restart-safe, beside
//! running engines, and never touching a file that is or may become live.
//!
//! ## What is garbage
//!
//! A payload record is *live* when a Filled slot refers to it, or when the
//! slot it was written for is Pending (its engine may be about to fill it).
//! An artifact file is live when a live record names it. Of the other files:
//!
//! * a **claim-bound** file (`artifact.rs`: its path names symbol, slot
//!   kind, window and claim version) is kept while its slot is Pending at
//!   that version, whatever its age, and is garbage as soon as the slot has
//!   moved past that claim — no later fill can ever name it (`append`
//!   refuses a record naming it for another slot or once the claim is over);
//! * an **untied** file (a path the engine chose) may belong to any claim in
//!   flight, so it is garbage only when no slot at all is Pending, and it is
//!   older than `min_age` — judged at every look at the file, as it is then
//!   (an engine may write the path again after the plan, before it claims);
//! * a writer's **temp file** (`.<name>.tmp-<pid>-<n>`) is garbage once its
//!   writer process is gone and it is older than `min_age`.
//!
//! ## How a file is removed
//!
//! Announced first, acted on after: the audit trail gets a `gc` line with
//! `phase: "intent"` before anything changes (and the reason and actor are
//! checked before that), and a `phase: "done"` line at the end. For each file:
//! a `collect` line in `gc.log` (fsynced), the file moved into `gc-trash/`
//! (`RENAME_NOREPLACE`, never following a symbolic link), its liveness checked
//! again, then either the trashed file deleted and a `done` line, or it moved
//! back — never over a file that took its place meanwhile — and an `abort`
//! line. A gc killed at any point leaves a `collect` line without an ending;
//! the next `gc --delete` finishes it the same way, judging the file by the
//! same rules as a collection (an untied file goes back while any slot is
//! Pending). Records are never removed from their tables; `gc.log` says
//! which were collected.
//!
//! One file, past 600 lines: planning, collecting and finishing share the
//! rules of what is garbage (`still_garbage`) and must not drift apart.
//!
//! ## One at a time
//!
//! A `gc --delete` holds an exclusive `flock` on `gc.log` for its whole run,
//! taken without waiting: a second one refuses (`ERR_STATE_DIR_IN_USE`)
//! while the first runs, even stopped. So a collection without an ending
//! that a run finds is always one whose gc died, never one in progress —
//! as long as nobody renames or deletes `gc.log` during a run: the lock
//! belongs to the file, and a second gc would lock the new one.
//!
//! The report without `delete` ([`plan_read_only`]) opens nothing for
//! writing: it reads the directory through the read-only view, as
//! `inspect` and `verify` do, so it changes no byte and works on a
//! read-only copy.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use serde::Serialize;

use super::files::{self, Moved, TreeFile};
use super::gc_log::{self, GcEntry, GcLogState, Intent, RecordRef, GC_TRASH};
use super::reader::StateReader;
use super::Progress;
use crate::artifact::parse_claim_uri;
use crate::audit::AuditContext;
use crate::controller::{now_ms, Controller};
use crate::error::{Error, Result};
use crate::fsutil::temp_writer;
use crate::io::{self, Site};
use crate::payload::PayloadStore;
use crate::slot::SlotAddr;
use crate::vocab::{LedgerKind, SlotKind, SlotStatus, StoreKind};

/// Options of [`gc`].
#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    /// Remove the garbage files (and finish collections a killed gc left); otherwise only report.
    pub delete: bool,
    /// Untied files and temp files younger than this are kept.
    pub min_age_ms: u64,
    /// Who and why, for the audit trail.
    pub ctx: AuditContext,
}

/// A payload record no live slot uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GarbageRecord {
    pub store: &'static str,
    pub payload_id: u64,
    pub uri: String,
    pub symbol_id: u32,
    /// The symbol's name (empty when `symbols.log` does not hold its id).
    pub symbol: String,
    pub window_idx: u32,
    pub slot: &'static str,
    /// Status of the slot the record was written for.
    pub slot_status: &'static str,
}

/// Why a file is garbage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FileClass {
    /// Its path names a claim the slot has moved past.
    Claim,
    /// A path the engine chose; no slot is Pending.
    Untied,
    /// A temp file whose writer is gone.
    Temp,
}

/// An artifact file no live record names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GarbageFile {
    pub uri: String,
    pub size: u64,
    pub class: FileClass,
    /// Records (not live) written for this file.
    pub records: Vec<RecordRef>,
    #[serde(skip)]
    rel: Vec<u8>,
}

/// A file kept although no live record names it, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptFile {
    pub uri: String,
    pub size: u64,
    pub why: String,
}

/// What finishing or collecting one file did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileOutcome {
    pub uri: String,
    pub result: String,
}

/// What [`gc`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    pub state_dir: PathBuf,
    pub deleted: bool,
    pub min_age_ms: u64,
    /// Records no live slot uses (and gc.log does not list as collected).
    pub records: Vec<GarbageRecord>,
    /// Files that are garbage.
    pub files: Vec<GarbageFile>,
    /// Files no live record names that were kept, and why.
    pub kept_files: Vec<KeptFile>,
    pub reclaimable_bytes: u64,
    /// Slots Pending when the plan was made (untied files wait for none).
    pub pending_claims: u64,
    /// Symbolic links in the artifact tree (never followed, never removed).
    pub symlinks: Vec<String>,
    /// `artifacts` itself is a symbolic link or not a directory: nothing under it was looked at.
    pub artifacts_refused: bool,
    /// Collections a killed gc left unfinished, when this run started.
    pub unfinished_before: u64,
    /// What became of those (with `delete`).
    pub finished: Vec<FileOutcome>,
    /// Files removed by this run.
    pub removed: Vec<String>,
    pub removed_bytes: u64,
    /// Garbage files this run did not remove, and why.
    pub kept: Vec<FileOutcome>,
    /// Records marked collected in gc.log by this run (those of removed files included).
    pub records_marked: u64,
}

/// Whether a process exists.
fn process_alive(pid: u32) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// Pending slots right now, from the counters every process shares.
fn pending_now(c: &Controller) -> u64 {
    c.slot_metrics().iter().map(|m| m.counts[SlotStatus::Pending as usize]).sum()
}

/// Records by URI, kept up to date with records appended since the plan.
struct UriIndex {
    by_uri: HashMap<String, Vec<(RecordRef, SlotAddr)>>,
    seen: HashMap<StoreKind, u64>,
}

impl UriIndex {
    fn add(&mut self, store: StoreKind, id: u64, rec: &crate::payload::PayloadRecord) {
        if let Some(kind) = SlotKind::from_code(u32::from(rec.slot_kind)) {
            let at = SlotAddr::new(rec.symbol_id, rec.window_idx, kind);
            self.by_uri.entry(rec.uri.clone()).or_default().push((RecordRef { store, payload_id: id }, at));
        }
    }

    /// Reads records appended since the last look.
    fn catch_up<'s>(&mut self, stores: impl Fn(StoreKind) -> &'s PayloadStore) -> Result<()> {
        for store in StoreKind::ALL {
            let s = stores(store);
            let len = s.len()?;
            let from = self.seen.get(&store).copied().unwrap_or(0);
            for id in from..len {
                match s.get(id) {
                    Ok(Some(rec)) => self.add(store, id, &rec),
                    // A lost id (marked by a repair) names no artifact.
                    Ok(None) | Err(Error::PayloadLost { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            self.seen.insert(store, len);
        }
        Ok(())
    }

    /// Whether a record naming `uri` is live now.
    fn live(&mut self, c: &Controller, uri: &str) -> Result<bool> {
        self.catch_up(|k| c.store(k))?;
        for (r, at) in self.by_uri.get(uri).map(Vec::as_slice).unwrap_or(&[]) {
            if record_live_now(c, *r, *at)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// A record is live if its slot is Pending, or Filled with it.
fn record_live_now(c: &Controller, r: RecordRef, at: SlotAddr) -> Result<bool> {
    let s = match c.read_slot(at) {
        Ok(s) => s,
        Err(Error::UnknownSymbol { .. } | Error::WindowOutOfRange { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    Ok(s.status == SlotStatus::Pending || (s.status == SlotStatus::Filled && s.payload_id == r.payload_id && at.kind.store() == r.store))
}

/// The class a file's path gives it (the plan's order: a temp file's name
/// first, then a claim-bound path).
fn class_of(uri: &str) -> FileClass {
    if temp_writer(uri).is_some() {
        FileClass::Temp
    } else if parse_claim_uri(uri).is_some() {
        FileClass::Claim
    } else {
        FileClass::Untied
    }
}

/// Whether a file is still garbage, judged again just before and after it is
/// moved, and when a later gc finishes a collection a killed one left.
/// Milliseconds since the epoch on the precise wall clock. File times come
/// from it, and a coarser one (`now_ms`, for leases) may lag: measured
/// against that, a file written a moment ago would be from the future.
fn now_precise_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Whether the file at `at` (relative to the state directory) was modified
/// less than `min_age_ms` ago; false when it is not there.
fn younger_than(dir: &Path, at: &[u8], min_age_ms: u64) -> Result<bool> {
    let Some(f) = files::open_file(dir, at)? else { return Ok(false) };
    let path = dir.join(String::from_utf8_lossy(at).as_ref());
    let modified = f.metadata().and_then(|m| m.modified()).map_err(|e| Error::io("fstat", &path, e))?;
    let mtime_ms = modified.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    Ok(mtime_ms > now_precise_ms() - min_age_ms as i64)
}

/// Where a file being judged is now: the state directory and its path
/// there (its own path, or its place in `gc-trash/` after the move).
struct Judged<'a> {
    dir: &'a Path,
    at: &'a [u8],
    min_age_ms: u64,
}

fn still_garbage(c: &Controller, index: &mut UriIndex, uri: &str, class: FileClass, file: &Judged<'_>) -> Result<Option<String>> {
    // The slots first, the records after. An engine records its artifact
    // (append) before it fills, and a fill ends the slot's Pending state: a
    // look that finds the slot no longer Pending then finds the record, while
    // records read first could miss an append that a fill completed right
    // after, before the slots were looked at.
    match class {
        FileClass::Claim => {
            if let Some(p) = parse_claim_uri(uri) {
                if let Some(symbol) = c.lookup_symbol(&p.symbol)? {
                    let s = c.read_slot(SlotAddr::new(symbol, p.window, p.kind))?;
                    if s.status == SlotStatus::Pending && s.version == p.version {
                        return Ok(Some("its claim is in flight again".into()));
                    }
                }
            }
        }
        FileClass::Untied => {
            // Written again since the plan judged its age: young again.
            if younger_than(file.dir, file.at, file.min_age_ms)? {
                return Ok(Some("younger than --min-age".into()));
            }
            // Counted slots name how many; the shared counts alone are not
            // trusted to say "none" (see `may_have_pending`).
            let pending = pending_now(c);
            if pending > 0 {
                return Ok(Some(format!("{pending} slots are Pending now (an engine may be about to record it)")));
            }
            if c.may_have_pending() {
                return Ok(Some("a slot may be Pending now (a transition is under way, or the shared counts are off until repaired): an engine may be about to record it".into()));
            }
        }
        FileClass::Temp => {
            if younger_than(file.dir, file.at, file.min_age_ms)? {
                return Ok(Some("younger than --min-age".into()));
            }
            if let Some(pid) = temp_writer(uri).filter(|pid| process_alive(*pid)) {
                return Ok(Some(format!("the temp file of process {pid}, which is running")));
            }
        }
    }
    failpoint!("gc::half-judged");
    if index.live(c, uri)? {
        return Ok(Some("a slot refers to it again".into()));
    }
    Ok(None)
}

/// Takes the lock a `gc --delete` holds for its whole run (see "One at a
/// time" above): an exclusive `flock` on `gc.log`, without waiting.
fn lock_collection(dir: &Path) -> Result<File> {
    let (f, path, existed) = gc_log::open_for_append(dir)?;
    if !existed {
        io::sync_dir(Site::GcLogDir, dir)?;
    }
    loop {
        match rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(f),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(Error::StateDirInUse {
                    path: dir.to_path_buf(),
                    what: "another `gc --delete` is running on it (it holds gc.log locked); run again when it has finished".into(),
                })
            }
            Err(e) => return Err(Error::io("flock", &path, e.into())),
        }
    }
}

/// The report of a gc without `delete`, read through the read-only view of
/// `dir`: it changes nothing (no bootstrap, no lock file, no repair of a torn
/// tail) and works on a read-only copy.
pub fn plan_read_only(dir: &Path, min_age_ms: u64, progress: Progress<'_>) -> Result<GcReport> {
    let before = gc_log::read(dir)?;
    let mut report = GcReport {
        state_dir: dir.to_path_buf(),
        deleted: false,
        min_age_ms,
        unfinished_before: before.unfinished.len() as u64,
        ..GcReport::default()
    };
    let mut index = UriIndex { by_uri: HashMap::new(), seen: HashMap::new() };
    plan(dir, min_age_ms, &before, &mut index, &mut report, progress)?;
    Ok(report)
}

/// Plans, and with `opts.delete` carries out, a garbage collection of the
/// state directory `c` has open.
pub fn gc(c: &Controller, opts: &GcOptions, progress: Progress<'_>) -> Result<GcReport> {
    opts.ctx.check()?;
    let dir = c.state_dir().to_path_buf();
    let started_ms = now_ms() as i64;
    if opts.delete {
        // Refused before anything is announced or moved: files go only into a real directory.
        let trash = dir.join(GC_TRASH);
        match std::fs::symlink_metadata(&trash) {
            Ok(m) if !m.file_type().is_dir() => {
                return Err(Error::corrupt(&trash, None, "is a symbolic link or not a directory: gc moves files only into a real directory of the state directory; remove it and run gc again"));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("stat", &trash, e)),
        }
    }
    let _one_at_a_time = if opts.delete { Some(lock_collection(&dir)?) } else { None };
    let before = gc_log::read(&dir)?;
    let mut report = GcReport {
        state_dir: dir.clone(),
        deleted: opts.delete,
        min_age_ms: opts.min_age_ms,
        unfinished_before: before.unfinished.len() as u64,
        ..GcReport::default()
    };

    let mut index = UriIndex { by_uri: HashMap::new(), seen: HashMap::new() };
    if opts.delete && !before.unfinished.is_empty() {
        c.audit_action(&opts.ctx, "gc", serde_json::json!({ "phase": "finish", "unfinished": before.unfinished.len() }))?;
        for intent in &before.unfinished {
            let result = finish(c, &dir, intent, &mut index, opts.min_age_ms)?;
            report.finished.push(FileOutcome { uri: intent.uri.clone(), result });
        }
    }

    plan(&dir, opts.min_age_ms, &before, &mut index, &mut report, progress)?;
    if !opts.delete {
        return Ok(report);
    }
    let files_n = report.files.len();
    let bytes: u64 = report.files.iter().map(|f| f.size).sum();
    c.audit_action(
        &opts.ctx,
        "gc",
        serde_json::json!({ "phase": "intent", "files": files_n, "bytes": bytes, "records": report.records.len(), "log": gc_log::GC_LOG }),
    )?;
    failpoint!("gc::intent-audited");
    let mut seq = 0u64;
    let garbage = report.files.clone();
    for (i, f) in garbage.iter().enumerate() {
        progress("gc", i as u64 + 1, garbage.len() as u64);
        seq += 1;
        let id = format!("{}-{}-{seq}", std::process::id(), started_ms);
        match collect(c, &dir, &id, f, &mut index, opts.min_age_ms)? {
            None => {
                report.removed.push(f.uri.clone());
                report.removed_bytes += f.size;
                report.records_marked += f.records.len() as u64;
            }
            Some(why) => report.kept.push(FileOutcome { uri: f.uri.clone(), result: why }),
        }
    }
    // Records whose file is gone already, or shared with a live record: mark them collected.
    let handled: HashSet<RecordRef> = garbage.iter().flat_map(|f| f.records.iter().copied()).collect();
    let mut marks = Vec::new();
    for r in &report.records {
        let rr = RecordRef { store: store_of(r.store), payload_id: r.payload_id };
        if handled.contains(&rr) {
            continue;
        }
        let Some(kind) = SlotKind::from_name(r.slot) else { continue };
        if record_live_now(c, rr, SlotAddr::new(r.symbol_id, r.window_idx, kind))? {
            continue;
        }
        let why = match files::open_file(&dir, r.uri.as_bytes()) {
            Ok(None) => "artifact already gone",
            Ok(Some(_)) if index.live(c, &r.uri)? => "artifact shared with a live record",
            _ => continue, // the file is still there: it is collected with its file
        };
        marks.push(GcEntry::Record {
            v: 1,
            at: gc_log::now_iso(),
            store: rr.store,
            payload_id: rr.payload_id,
            uri: r.uri.clone(),
            why: why.into(),
        });
    }
    if !marks.is_empty() {
        gc_log::append(&dir, &marks)?;
    }
    failpoint!("gc::records-marked");
    report.records_marked += marks.len() as u64;
    c.audit_action(
        &opts.ctx,
        "gc",
        serde_json::json!({
            "phase": "done",
            "removedFiles": report.removed.len(),
            "removedBytes": report.removed_bytes,
            "recordsMarked": report.records_marked,
            "kept": report.kept.len(),
            "finishedFromEarlierRun": report.finished.len(),
            "log": gc_log::GC_LOG,
        }),
    )?;
    Ok(report)
}

fn store_of(name: &str) -> StoreKind {
    StoreKind::ALL.into_iter().find(|s| s.name() == name).unwrap_or(StoreKind::Trades)
}

/// Decides what is garbage; fills `report`.
fn plan(
    dir: &Path,
    min_age_ms: u64,
    before: &GcLogState,
    index: &mut UriIndex,
    report: &mut GcReport,
    progress: Progress<'_>,
) -> Result<()> {
    let reader = StateReader::open(dir)?;
    // Every Filled slot's record, and how many slots are Pending.
    let mut referenced: HashSet<RecordRef> = HashSet::new();
    let mut pending = 0u64;
    let total: u64 = LedgerKind::ALL.iter().map(|l| reader.ledger(*l).chunk_count()).sum();
    let mut seen = 0u64;
    for ledger in LedgerKind::ALL {
        let file = reader.ledger(ledger);
        let rpc = file.geometry().rows_per_chunk;
        file.for_each_chunk(|_, _, rows| {
            seen += 1;
            progress("gc: slots", seen, total);
            for row in 0..rpc {
                for (column, kind) in ledger.slot_kinds().iter().enumerate() {
                    let s = rows.slot(row, column)?;
                    match s.status {
                        SlotStatus::Filled => {
                            referenced.insert(RecordRef { store: kind.store(), payload_id: s.payload_id });
                        }
                        SlotStatus::Pending => pending += 1,
                        _ => {}
                    }
                }
            }
            Ok(())
        })?;
    }
    report.pending_claims = pending;
    // Records: live, or garbage not collected yet.
    index.catch_up(|k| reader.store(k))?;
    let mut live_uris: HashSet<String> = HashSet::new();
    let mut dead_by_uri: HashMap<String, Vec<RecordRef>> = HashMap::new();
    for (uri, recs) in &index.by_uri {
        for (r, at) in recs {
            let live = referenced.contains(r) || reader.read_slot(*at).is_ok_and(|s| s.status == SlotStatus::Pending);
            if live {
                live_uris.insert(uri.clone());
                continue;
            }
            if before.records.contains(r) {
                continue;
            }
            let status = reader.read_slot(*at).map_or("Empty", |s| s.status.name());
            report.records.push(GarbageRecord {
                store: r.store.name(),
                payload_id: r.payload_id,
                uri: uri.clone(),
                symbol_id: at.symbol,
                symbol: reader.symbols().get(at.symbol as usize).cloned().unwrap_or_default(),
                window_idx: at.window,
                slot: at.kind.name(),
                slot_status: status,
            });
            dead_by_uri.entry(uri.clone()).or_default().push(*r);
        }
    }
    report.records.sort_by(|a, b| (a.store, a.payload_id).cmp(&(b.store, b.payload_id)));
    // Files.
    let tree = files::walk(dir)?;
    report.symlinks = tree.symlinks.clone();
    report.artifacts_refused = tree.root_refused;
    let now = now_precise_ms();
    let old_enough = |f: &TreeFile| f.mtime_ms <= now - min_age_ms as i64;
    for f in tree.files {
        if f.utf8 && live_uris.contains(&f.uri) {
            continue;
        }
        let keep = |why: String, report: &mut GcReport| report.kept_files.push(KeptFile { uri: f.uri.clone(), size: f.size, why });
        let class = if let Some(pid) = temp_writer(&f.uri) {
            if process_alive(pid) {
                keep(format!("the temp file of process {pid}, which is running"), report);
                continue;
            }
            if !old_enough(&f) {
                keep("younger than --min-age".into(), report);
                continue;
            }
            FileClass::Temp
        } else if let Some(p) = parse_claim_uri(&f.uri).filter(|_| f.utf8) {
            let slot =
                reader.symbols().iter().position(|s| *s == p.symbol).map(|s| reader.read_slot(SlotAddr::new(s as u32, p.window, p.kind)));
            match slot {
                Some(Ok(s)) if s.status == SlotStatus::Pending && s.version == p.version => {
                    keep(format!("its claim (version {}) is in flight", p.version), report);
                    continue;
                }
                _ => FileClass::Claim,
            }
        } else {
            if pending > 0 {
                keep(format!("{pending} slots are Pending (an engine may be about to record it)"), report);
                continue;
            }
            if !old_enough(&f) {
                keep("younger than --min-age".into(), report);
                continue;
            }
            FileClass::Untied
        };
        report.reclaimable_bytes += f.size;
        report.files.push(GarbageFile {
            records: dead_by_uri.get(&f.uri).cloned().unwrap_or_default(),
            uri: f.uri,
            size: f.size,
            class,
            rel: f.rel,
        });
    }
    Ok(())
}

/// Collects one file; `None` when it was removed, else why it was kept.
fn collect(c: &Controller, dir: &Path, id: &str, f: &GarbageFile, index: &mut UriIndex, min_age_ms: u64) -> Result<Option<String>> {
    if let Some(why) = still_garbage(c, index, &f.uri, f.class, &Judged { dir, at: &f.rel, min_age_ms })? {
        return Ok(Some(why));
    }
    let Some(mut file) = files::open_file(dir, &f.rel)? else { return Ok(Some("the file disappeared".into())) };
    let (sum, size) = files::hash(&mut file, &dir.join(&f.uri))?;
    drop(file);
    let trash = format!("{GC_TRASH}/{id}");
    let intent = GcEntry::Collect {
        v: 1,
        id: id.to_string(),
        at: gc_log::now_iso(),
        uri: f.uri.clone(),
        checksum: format!("{sum:#018x}"),
        size,
        records: f.records.clone(),
        trash: trash.clone(),
    };
    gc_log::append(dir, &[intent])?;
    failpoint!("gc::collect-logged");
    let end = |entry: GcEntry| gc_log::append(dir, &[entry]);
    match files::move_no_replace(dir, &f.rel, trash.as_bytes())? {
        Moved::Moved => {}
        Moved::SourceGone => {
            end(GcEntry::Abort { v: 1, id: id.into(), at: gc_log::now_iso(), why: "the file disappeared".into() })?;
            return Ok(Some("the file disappeared".into()));
        }
        Moved::Occupied => {
            end(GcEntry::Abort { v: 1, id: id.into(), at: gc_log::now_iso(), why: "gc-trash holds a file of that name".into() })?;
            return Ok(Some("gc-trash holds a file of that name".into()));
        }
        Moved::OtherFileSystem => {
            let why = "the artifact is on another file system than gc-trash/ (the state directory): not moved";
            end(GcEntry::Abort { v: 1, id: id.into(), at: gc_log::now_iso(), why: why.into() })?;
            return Ok(Some(why.into()));
        }
    }
    failpoint!("gc::trashed");
    let intent = Intent { id: id.into(), uri: f.uri.clone(), checksum: format!("{sum:#018x}"), size, records: f.records.clone(), trash };
    let again = still_garbage(c, index, &f.uri, f.class, &Judged { dir, at: intent.trash.as_bytes(), min_age_ms })?;
    match again {
        None => {
            files::remove(dir, intent.trash.as_bytes())?;
            failpoint!("gc::deleted");
            end(GcEntry::Done { v: 1, id: id.into(), at: gc_log::now_iso() })?;
            Ok(None)
        }
        Some(why) => {
            restore(dir, &intent, &why)?;
            Ok(Some(why))
        }
    }
}

/// Puts a trashed file back where it was, never over a file that took its
/// place (then the trashed bytes are the older ones and are deleted), and
/// ends the collection with `abort`.
fn restore(dir: &Path, intent: &Intent, why: &str) -> Result<()> {
    let why = match files::move_no_replace(dir, intent.trash.as_bytes(), intent.uri.as_bytes())? {
        Moved::Moved | Moved::SourceGone => why.to_string(),
        Moved::Occupied => {
            files::remove(dir, intent.trash.as_bytes())?;
            format!("{why}; a newer file took its path, so the trashed copy was deleted")
        }
        Moved::OtherFileSystem => format!("{why}; kept in {} (its path is on another file system)", intent.trash),
    };
    failpoint!("gc::restored");
    gc_log::append(dir, &[GcEntry::Abort { v: 1, id: intent.id.clone(), at: gc_log::now_iso(), why }])
}

/// Finishes a collection a killed gc left: what became of it.
fn finish(c: &Controller, dir: &Path, intent: &Intent, index: &mut UriIndex, min_age_ms: u64) -> Result<String> {
    let trashed = files::open_file(dir, intent.trash.as_bytes())?;
    let Some(mut trashed) = trashed else {
        // Died before the move (the file is still in place) or after the delete.
        let in_place = files::open_file(dir, intent.uri.as_bytes())?.is_some();
        let entry = if in_place {
            GcEntry::Abort { v: 1, id: intent.id.clone(), at: gc_log::now_iso(), why: "interrupted before the move".into() }
        } else {
            GcEntry::Done { v: 1, id: intent.id.clone(), at: gc_log::now_iso() }
        };
        gc_log::append(dir, &[entry])?;
        return Ok(if in_place { "interrupted before the move".into() } else { "done".into() });
    };
    let (sum, _) = files::hash(&mut trashed, &dir.join(&intent.trash))?;
    drop(trashed);
    let why = if format!("{sum:#018x}") != intent.checksum {
        Some("the file changed after the scan".to_string())
    } else {
        still_garbage(c, index, &intent.uri, class_of(&intent.uri), &Judged { dir, at: intent.trash.as_bytes(), min_age_ms })?
    };
    if let Some(why) = why {
        restore(dir, intent, &why)?;
        return Ok(why);
    }
    files::remove(dir, intent.trash.as_bytes())?;
    failpoint!("gc::deleted");
    gc_log::append(dir, &[GcEntry::Done { v: 1, id: intent.id.clone(), at: gc_log::now_iso() }])?;
    Ok("done".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, WindowSpace};

    #[test]
    fn an_untied_file_written_this_instant_is_old_enough_for_min_age_zero() {
        let d = tempfile::tempdir().unwrap();
        let space: WindowSpace = serde_json::from_str(r#"{"kind":"uniform","originNs":0,"windowNs":60000000000,"windowCount":8}"#).unwrap();
        let (c, _) = Controller::bootstrap(Config::new(d.path(), space)).unwrap();
        let dir = d.path().join("artifacts").join("SPY");
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..20 {
            let path = dir.join(format!("fresh-{i}.json"));
            std::fs::write(&path, b"no record names this").unwrap();
            // Stamped with the precise wall clock, which runs ahead of the coarse
            // clock by up to one tick: an age measured on the coarse clock would
            // be negative.
            let f = std::fs::File::options().write(true).open(&path).unwrap();
            f.set_modified(std::time::SystemTime::now()).unwrap();
            let report = gc(&c, &GcOptions { delete: false, min_age_ms: 0, ctx: AuditContext::default() }, &mut |_, _, _| {}).unwrap();
            let uri = format!("artifacts/SPY/fresh-{i}.json");
            assert!(report.files.iter().any(|g| g.uri == uri && g.class == FileClass::Untied), "{uri}: kept {:?}", report.kept_files);
        }
    }
}
