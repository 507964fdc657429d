//! `window-space verify`: every invariant of a state directory, checked
//! read-only (through [`StateReader`](super::reader::StateReader)), beside
//! running engines or on a copy.
//!
//! One file, past 600 lines: one section per invariant, each short, all
//! adding to one report; the list of checks reads best in one place.
//!
//! A finding is a *problem* (the directory breaks an invariant; the command
//! exits 1) or a *warning* (worth knowing, not wrong). On a live directory a
//! suspect slot is read again before it is reported: a slot that changed in
//! between was in flight, not wrong, so a healthy busy ledger verifies
//! clean. Problem kinds are stable names (`payload-missing`, `slot-damaged`,
//! ...); docs/operations.md lists them.
//!
//! The damage a bootstrap refuses (`controller::Damage`) is reported the
//! same way: `symbols-missing` for ledger chunks of symbol ids
//! `symbols.log` does not hold, and `dangling-references` for a mapping
//! table that Filled slots refer past (each such slot is also a
//! `payload-missing`, or a `payload-lost` when it refers to an id a repair
//! marked lost).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::files;
use super::gc_log::{self, RecordRef};
use super::reader::StateReader;
use super::{check_ledger_slots, Progress};
use crate::audit::{AuditLog, Scan, AUDIT_FILE};
use crate::controller::now_ms;
use crate::error::{Error, Result};
use crate::lock::DirLock;
use crate::slot::{SlotAddr, SlotSnapshot};
use crate::symbols::LOST_SYMBOL_PREFIX;
use crate::vocab::{LedgerKind, SlotKind, SlotStatus, StoreKind};

/// One thing `verify` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Stable name of the kind of finding.
    pub kind: &'static str,
    /// For people.
    pub message: String,
    /// Where: symbol, window, slot, store, payload id, file, offset, ... as applicable.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// How much `verify` looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyCounts {
    /// Rows of both ledgers: symbols × windows × 2.
    pub rows: u64,
    pub filled_slots: u64,
    pub records: u64,
    /// Artifact files read and checksummed.
    pub artifacts: u64,
    /// Slots whose raw bytes were checked.
    pub slots_checked: u64,
    pub audit_entries: u64,
}

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// No problems (warnings allowed).
    pub ok: bool,
    pub state_dir: PathBuf,
    /// What was checked, for people.
    pub checked: Vec<String>,
    pub counts: VerifyCounts,
    pub problems: Vec<Finding>,
    pub warnings: Vec<Finding>,
}

/// Options of [`verify`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Also read every artifact file a Filled slot refers to and compare it with its record.
    pub artifacts: bool,
}

fn finding(kind: &'static str, message: impl Into<String>, fields: Value) -> Finding {
    let fields = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    Finding { kind, message: message.into(), fields }
}

/// True when no controller (in any process) has the directory open: nobody
/// holds the presence lock. Never creates the lock file; a directory without
/// one (a copy) has nobody in it.
fn nobody_else(dir: &Path) -> bool {
    let path = dir.join(DirLock::FILE_NAME);
    let Ok(f) = std::fs::File::open(&path) else { return true };
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            let _ = rustix::fs::flock(&f, rustix::fs::FlockOperation::Unlock);
            true
        }
        Err(_) => false,
    }
}

struct Names<'a>(&'a [String]);

impl Names<'_> {
    fn symbol(&self, id: u32) -> String {
        self.0.get(id as usize).cloned().unwrap_or_else(|| format!("#{id}"))
    }
    fn at(&self, at: SlotAddr) -> String {
        format!("{} window {} {}", self.symbol(at.symbol), at.window, at.kind)
    }
}

fn at_fields(names: &Names<'_>, at: SlotAddr) -> Value {
    json!({ "symbol": names.symbol(at.symbol), "symbolId": at.symbol, "windowIdx": at.window, "slot": at.kind.name() })
}

/// Verifies the state directory `dir`. `Err` only when `dir` is not a state
/// directory (or cannot be read at all); damage is reported as findings.
pub fn verify(dir: &Path, opts: VerifyOptions, progress: Progress<'_>) -> Result<VerifyReport> {
    let mut r = VerifyReport { state_dir: dir.to_path_buf(), ..VerifyReport::default() };
    let reader = match StateReader::open(dir) {
        Ok(reader) => reader,
        Err(e @ Error::NotAStateDir { .. }) => return Err(e),
        Err(e) => {
            // The open validates headers, chunk headers and every record: its refusal is the finding.
            r.problems.push(finding(
                "open-failed",
                format!("the directory cannot be opened: {e}"),
                json!({ "code": e.code().as_str(), "details": e.details() }),
            ));
            check_raw_slots(dir, &mut r, &[]); // may say more about a ledger the open refused
            r.ok = false;
            return Ok(r);
        }
    };
    let names = Names(reader.symbols());
    r.checked.push("file headers, chunk headers, mapping-table records and torn tails".into());
    for store in StoreKind::ALL {
        let replay = reader.replay(store);
        r.counts.records += replay.records;
        if replay.torn_tail_bytes > 0 {
            r.warnings.push(finding(
                "torn-tail",
                format!(
                    "{}: a torn tail of {} bytes follows the last good record (an append in progress, or a writer that died; a bootstrap with no other controller open cuts it)",
                    store.file_name(),
                    replay.torn_tail_bytes
                ),
                json!({ "store": store.name(), "bytes": replay.torn_tail_bytes }),
            ));
        }
    }
    check_raw_slots(dir, &mut r, reader.symbols());
    r.checked.push("raw bytes of every slot of every allocated chunk: reserved bits, fill tags, fields each status may carry".into());
    check_chunk_symbols(dir, &reader, &mut r);
    for store in StoreKind::ALL {
        let lost = reader.replay(store).lost;
        if lost > 0 {
            r.warnings.push(finding(
                "payload-ids-lost",
                format!(
                    "{}: {lost} payload ids are marked lost (their records did not survive; a repair accepted the loss, and the ids are never handed out again)",
                    store.file_name()
                ),
                json!({ "store": store.name(), "count": lost }),
            ));
        }
    }

    // Every slot: counts, stale claims, slots outside the directory's symbols
    // and windows, and every Filled slot against its record.
    let now = now_ms();
    let (symbols, windows) = (reader.symbols().len() as u64, u64::from(reader.window_count()));
    r.counts.rows = symbols * windows * LedgerKind::ALL.len() as u64;
    let mut counted: HashMap<SlotKind, [u64; 5]> = HashMap::new();
    let mut referenced: HashMap<RecordRef, SlotAddr> = HashMap::new();
    // By store: the highest payload id a Filled slot refers to, and the slots whose record is missing or lost.
    let mut highest: HashMap<StoreKind, u64> = HashMap::new();
    let mut dangling: HashMap<StoreKind, (u64, u64)> = HashMap::new();
    let mut stale = 0u64;
    let total_chunks: u64 = LedgerKind::ALL.iter().map(|l| reader.ledger(*l).chunk_count()).sum();
    let mut seen_chunks = 0u64;
    for ledger in LedgerKind::ALL {
        let file = reader.ledger(ledger);
        let rpc = file.geometry().rows_per_chunk;
        file.for_each_chunk(|symbol, first_window, rows| {
            seen_chunks += 1;
            progress("verify", seen_chunks, total_chunks);
            for row in 0..rpc {
                let window = first_window.saturating_add(row);
                for (column, kind) in ledger.slot_kinds().iter().enumerate() {
                    let Ok(slot) = rows.slot(row, column) else { continue }; // damage: reported by the raw check
                    if slot.status == SlotStatus::Empty {
                        continue;
                    }
                    let at = SlotAddr::new(symbol, window, *kind);
                    if u64::from(symbol) >= symbols || u64::from(window) >= windows {
                        r.problems.push(finding(
                            "slot-outside",
                            format!(
                                "{} is {} but lies outside the {symbols} symbols × {windows} windows of the directory",
                                names.at(at),
                                slot.status
                            ),
                            at_fields(&names, at),
                        ));
                        continue;
                    }
                    counted.entry(*kind).or_default()[slot.status as usize] += 1;
                    match slot.status {
                        SlotStatus::Pending if slot.lease_deadline_ms <= now => stale += 1,
                        SlotStatus::Filled => {
                            r.counts.filled_slots += 1;
                            let h = highest.entry(kind.store()).or_insert(slot.payload_id);
                            *h = (*h).max(slot.payload_id);
                            if let Some(f) = check_filled(&reader, &names, at, &slot) {
                                if matches!(f.kind, "payload-missing" | "payload-lost") {
                                    let d = dangling.entry(kind.store()).or_default();
                                    *d = (d.0 + 1, d.1.max(slot.payload_id));
                                }
                                r.problems.push(f);
                            } else {
                                referenced.insert(RecordRef { store: kind.store(), payload_id: slot.payload_id }, at);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Ok(())
        })?;
    }
    r.checked.push("every Filled slot resolves to a record of its own slot in its store, with the same checksum and payload type".into());
    for store in StoreKind::ALL {
        let Some((slots, highest_dangling)) = dangling.get(&store).copied() else { continue };
        let records = reader.store(store).len()?;
        let highest = highest.get(&store).copied().unwrap_or(0).max(highest_dangling);
        r.problems.push(finding(
            "dangling-references",
            format!(
                "{}: {slots} Filled slots refer to payload ids it does not hold: it holds {records} records, and the highest id a slot refers to is {highest} (records were lost; a bootstrap refuses the directory; `window-space repair` accepts the loss)",
                store.file_name()
            ),
            json!({ "store": store.name(), "file": store.file_name(), "records": records, "highestReferencedId": highest, "danglingSlots": slots }),
        ));
    }
    if stale > 0 {
        r.warnings.push(finding(
            "stale-claims",
            format!("{stale} Pending slots have an expired lease (claims of dead engines; claimable again)"),
            json!({ "count": stale }),
        ));
    }

    check_counters(&reader, &counted, &mut r)?;
    let gc = check_gc_log(dir, &mut r)?;
    check_audit_log(dir, &reader, &mut r)?;
    if opts.artifacts {
        check_artifacts(dir, &reader, &names, &referenced, &gc, &mut r, progress)?;
    }
    r.ok = r.problems.is_empty();
    Ok(r)
}

/// A Filled slot against its record; `None` when they agree (or the slot
/// moved on while it was checked).
fn check_filled(reader: &StateReader, names: &Names<'_>, at: SlotAddr, slot: &SlotSnapshot) -> Option<Finding> {
    let store = at.kind.store();
    let problem = match reader.store(store).get(slot.payload_id) {
        Err(Error::PayloadLost { .. }) => Some(finding(
            "payload-lost",
            format!(
                "{} is Filled with payload id {}, which {} marks lost (its record did not survive; `window-space repair` clears the slot)",
                names.at(at),
                slot.payload_id,
                store.name()
            ),
            at_fields(names, at),
        )),
        Err(e) => Some(finding(
            "record-unreadable",
            format!("{} record {}: {e}", store.name(), slot.payload_id),
            json!({ "store": store.name(), "payloadId": slot.payload_id }),
        )),
        Ok(None) => {
            let len = reader.store(store).len().unwrap_or(0);
            Some(finding(
                "payload-missing",
                format!(
                    "{} is Filled with payload id {}, which {} does not hold ({len} records)",
                    names.at(at),
                    slot.payload_id,
                    store.name()
                ),
                at_fields(names, at),
            ))
        }
        Ok(Some(rec)) => {
            let rec_at = SlotKind::from_code(u32::from(rec.slot_kind)).map(|k| SlotAddr::new(rec.symbol_id, rec.window_idx, k));
            if rec_at != Some(at) {
                let written_for = rec_at.map_or_else(|| format!("slot kind code {}", rec.slot_kind), |a| names.at(a));
                Some(finding(
                    "payload-for-another-slot",
                    format!(
                        "{} is Filled with {} record {}, which was written for {written_for}",
                        names.at(at),
                        store.name(),
                        slot.payload_id
                    ),
                    at_fields(names, at),
                ))
            } else if rec.checksum != slot.checksum {
                Some(finding(
                    "checksum-mismatch",
                    format!(
                        "{}: slot checksum {:#018x} differs from {} record {}'s {:#018x}",
                        names.at(at),
                        slot.checksum,
                        store.name(),
                        slot.payload_id,
                        rec.checksum
                    ),
                    at_fields(names, at),
                ))
            } else if rec.payload_type != slot.payload_type {
                Some(finding(
                    "payload-type-mismatch",
                    format!(
                        "{}: slot payload type {} differs from {} record {}'s {}",
                        names.at(at),
                        slot.payload_type,
                        store.name(),
                        slot.payload_id,
                        rec.payload_type
                    ),
                    at_fields(names, at),
                ))
            } else {
                None
            }
        }
    };
    // Read the slot again: if it changed, it was in flight, not wrong.
    problem.filter(|_| reader.read_slot(at).is_ok_and(|now| now == *slot))
}

/// Every chunk belongs to a symbol the map holds. The view read the ledgers
/// before the map, and a chunk is allocated only for a symbol already in the
/// map, so a chunk of an id the map does not hold is damage even while
/// engines add symbols.
fn check_chunk_symbols(dir: &Path, reader: &StateReader, r: &mut VerifyReport) {
    let symbols = reader.symbols().len() as u32;
    let (mut chunks, mut highest) = (0u64, 0u32);
    for ledger in LedgerKind::ALL {
        let (n, h) = reader.ledger(ledger).chunks_of_unknown_symbols(symbols);
        chunks += n;
        highest = highest.max(h.unwrap_or(0));
    }
    if chunks > 0 {
        let file = dir.join(crate::symbols::SymbolMap::FILE_NAME);
        r.problems.push(finding(
            "symbols-missing",
            format!(
                "{chunks} ledger chunks belong to symbol ids symbols.log does not hold: it holds {symbols} symbols, and the highest symbol id of a chunk is {highest} (symbols were lost; a bootstrap refuses the directory; `window-space repair` names them)"
            ),
            json!({ "file": file, "symbols": symbols, "highestSymbolId": highest, "chunks": chunks }),
        ));
    }
    r.checked.push("every ledger chunk belongs to a symbol of symbols.log".into());
}

fn check_raw_slots(dir: &Path, r: &mut VerifyReport, symbols: &[String]) {
    for ledger in LedgerKind::ALL {
        let check = match check_ledger_slots(dir, ledger) {
            Ok(c) => c,
            Err(e) => {
                if r.problems.iter().all(|p| p.kind != "open-failed") {
                    r.problems.push(finding(
                        "slot-check-failed",
                        format!("the raw slot check could not read {}: {e}", ledger.file_name()),
                        json!({ "ledger": ledger.name() }),
                    ));
                }
                continue;
            }
        };
        r.counts.slots_checked += check.slots;
        for h in check.header_issues {
            r.problems.push(finding("ledger-header-damaged", format!("{}: {h}", ledger.file_name()), json!({ "ledger": ledger.name() })));
        }
        if check.in_flight > 0 {
            r.warnings.push(finding(
                "slots-in-flight",
                format!(
                    "{}: {} slots changed while being checked (engines at work) and were not judged",
                    ledger.file_name(),
                    check.in_flight
                ),
                json!({ "ledger": ledger.name(), "count": check.in_flight }),
            ));
        }
        for i in check.issues {
            let symbol = symbols.get(i.symbol_id as usize).cloned().unwrap_or_else(|| format!("symbol #{}", i.symbol_id));
            let kind = i.column.and_then(|c| ledger.slot_kinds().get(c));
            let who =
                format!("{symbol} window {}{}", i.window_idx, kind.map_or_else(|| " (chunk header)".to_string(), |k| format!(" {k}")));
            r.problems.push(finding(
                "slot-damaged",
                format!("{} at offset {}, {who}: {}", ledger.file_name(), i.offset, i.what),
                json!({ "ledger": ledger.name(), "symbolId": i.symbol_id, "windowIdx": i.window_idx, "slot": kind.map(|k| k.name()), "offset": i.offset }),
            ));
        }
    }
}

/// The shared counters against an exact count. With other controllers open
/// the counters move while they are counted: the comparison is made again
/// until the counters stood still across a count, and a difference is a
/// problem only if two such counts show it.
fn check_counters(reader: &StateReader, first: &HashMap<SlotKind, [u64; 5]>, r: &mut VerifyReport) -> Result<()> {
    let alone = nobody_else(reader.dir());
    let total = reader.symbols().len() as u64 * u64::from(reader.window_count());
    let shared = |reader: &StateReader| -> Result<HashMap<SlotKind, [u64; 4]>> {
        let mut m = HashMap::new();
        for ledger in LedgerKind::ALL {
            let c = reader.ledger(ledger).counters()?;
            for (column, kind) in ledger.slot_kinds().iter().enumerate() {
                m.insert(*kind, c.status[column]);
            }
        }
        Ok(m)
    };
    let drift_of = |counted: &HashMap<SlotKind, [u64; 5]>, sh: &HashMap<SlotKind, [u64; 4]>| -> Vec<(SlotKind, SlotStatus, u64, u64)> {
        let mut d = Vec::new();
        for kind in SlotKind::ALL {
            let exact = counted.get(&kind).copied().unwrap_or_default();
            let counters = sh.get(&kind).copied().unwrap_or_default();
            for (i, status) in SlotStatus::ALL[1..].iter().enumerate() {
                if exact[*status as usize] != counters[i] {
                    d.push((kind, *status, counters[i], exact[*status as usize]));
                }
            }
        }
        d
    };
    let mut stable_drifts: Vec<Vec<(SlotKind, SlotStatus, u64, u64)>> = Vec::new();
    let mut last = Vec::new();
    for attempt in 0..4 {
        let before = shared(reader)?;
        let counted = if attempt == 0 { first.clone() } else { count_slots(reader)? };
        let after = shared(reader)?;
        let drift = drift_of(&counted, &after);
        if drift.is_empty() && before == after {
            stable_drifts.clear();
            last.clear();
            break;
        }
        if before == after || alone {
            stable_drifts.push(drift.clone());
        }
        last = drift;
        if alone || stable_drifts.len() >= 2 {
            break;
        }
    }
    let confirmed = alone || (stable_drifts.len() >= 2 && stable_drifts[0] == stable_drifts[1]);
    for (kind, status, counter, exact) in last {
        let message = format!("{kind} {status}: shared counter {counter}, exact count {exact}");
        let fields = json!({ "slot": kind.name(), "status": status.name(), "counter": counter, "exact": exact });
        if confirmed || counter > total {
            r.problems.push(finding("metrics-drift", message, fields));
        } else {
            r.warnings.push(finding(
                "metrics-moving",
                format!("{message} (engines were at work while counting; the counters did not stand still)"),
                fields,
            ));
        }
    }
    r.checked.push("slot metrics (shared counters) equal an exact count of the slots".into());
    Ok(())
}

fn count_slots(reader: &StateReader) -> Result<HashMap<SlotKind, [u64; 5]>> {
    let mut counted: HashMap<SlotKind, [u64; 5]> = HashMap::new();
    let (symbols, windows) = (reader.symbols().len() as u64, u64::from(reader.window_count()));
    for ledger in LedgerKind::ALL {
        let file = reader.ledger(ledger);
        let rpc = file.geometry().rows_per_chunk;
        file.for_each_chunk(|symbol, first_window, rows| {
            for row in 0..rpc {
                let window = first_window.saturating_add(row);
                if u64::from(symbol) >= symbols || u64::from(window) >= windows {
                    continue;
                }
                for (column, kind) in ledger.slot_kinds().iter().enumerate() {
                    if let Ok(s) = rows.slot(row, column) {
                        if s.status != SlotStatus::Empty {
                            counted.entry(*kind).or_default()[s.status as usize] += 1;
                        }
                    }
                }
            }
            Ok(())
        })?;
    }
    Ok(counted)
}

fn check_gc_log(dir: &Path, r: &mut VerifyReport) -> Result<gc_log::GcLogState> {
    let gc = gc_log::read(dir)?;
    if !gc.damaged.is_empty() {
        let lines = gc.damaged.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
        let what = if gc.damaged.len() == 1 {
            format!("line {lines} is not a gc.log entry")
        } else {
            format!("lines {lines} are not gc.log entries")
        };
        r.problems.push(finding("gc-log-damaged", format!("gc.log: {what}"), json!({ "lines": gc.damaged })));
    }
    for line in &gc.torn {
        r.warnings.push(finding(
            "gc-log-torn",
            format!("gc.log line {line} is an append cut short (the gc call that wrote it failed, as on a full disk); it records nothing and is skipped"),
            json!({ "file": gc_log::GC_LOG, "line": line }),
        ));
    }
    if gc.torn_tail {
        r.warnings.push(finding("gc-log-torn-tail", "gc.log: the last line is torn (a gc died while writing it); ignored", json!({})));
    }
    if !gc.unfinished.is_empty() {
        r.warnings.push(finding(
            "gc-unfinished",
            format!(
                "gc.log: {} collections were started and not finished; run `window-space gc {} --delete` to finish them",
                gc.unfinished.len(),
                dir.display()
            ),
            json!({ "count": gc.unfinished.len() }),
        ));
    }
    r.checked.push("every gc.log line is a gc.log entry".into());
    Ok(gc)
}

/// The audit trail parses, and every slot it names is a slot of this directory.
fn check_audit_log(dir: &Path, reader: &StateReader, r: &mut VerifyReport) -> Result<()> {
    let path = dir.join(AUDIT_FILE);
    let Scan { entries, damaged, torn } = match AuditLog::scan_numbered(&path) {
        Ok(x) => x,
        Err(e) => {
            r.problems.push(finding("audit-log-damaged", e.to_string(), json!({})));
            return Ok(());
        }
    };
    for t in torn {
        r.warnings.push(finding(
            "audit-log-torn",
            format!(
                "audit.log line {} (offset {}) is an append cut short (the call that wrote it failed, as on a full disk); it records nothing and is skipped (if it was an outcome line, the change its intent line names happened, and what it replaced is not recorded)",
                t.line, t.offset
            ),
            json!({ "file": AUDIT_FILE, "line": t.line, "offset": t.offset }),
        ));
    }
    for d in damaged {
        r.problems.push(finding(
            "audit-log-damaged",
            format!("audit.log line {} (offset {}) {}", d.line, d.offset, d.what),
            json!({ "line": d.line, "offset": d.offset }),
        ));
    }
    let symbols = reader.symbols();
    let windows = u64::from(reader.window_count());
    r.counts.audit_entries = entries.len() as u64;
    // Ids whose name the map lost (a repair named them `lost-symbol-<id>`):
    // the names lines written before the loss give them, and how often.
    let mut remembered: std::collections::BTreeMap<u64, std::collections::BTreeMap<String, u64>> = Default::default();
    for (line, e) in entries {
        if e.get("slot").is_none() && e.get("symbol").is_none() {
            continue; // a tool's own action
        }
        let mut bad = Vec::new();
        let symbol = e.get("symbol").and_then(Value::as_str);
        let symbol_id = e.get("symbolId").and_then(Value::as_u64);
        let in_map = symbol_id.and_then(|id| symbols.get(id as usize)).map(String::as_str);
        let placeholder = in_map.is_some_and(|n| n.starts_with(LOST_SYMBOL_PREFIX));
        if let (true, Some(id), Some(name)) = (placeholder && in_map != symbol, symbol_id, symbol) {
            *remembered.entry(id).or_default().entry(name.to_string()).or_default() += 1;
        } else if symbol.is_none() || in_map != symbol {
            bad.push(format!(
                "symbol {} (id {}) is not in symbols.log",
                e.get("symbol").unwrap_or(&Value::Null),
                e.get("symbolId").unwrap_or(&Value::Null)
            ));
        }
        if e.get("slot").and_then(Value::as_str).and_then(SlotKind::from_name).is_none() {
            bad.push(format!("slot kind {} does not exist", e.get("slot").unwrap_or(&Value::Null)));
        }
        // Windows named: (value, how much to subtract: 1 for an exclusive `to`).
        let mut named: Vec<(&Value, u64)> = Vec::new();
        match (e.get("window"), e.get("from"), e.get("to")) {
            (Some(w), _, _) => named.push((w, 0)),
            (None, Some(f), Some(t)) => {
                named.push((f, 0));
                if t.as_u64() != f.as_u64() {
                    named.push((t, 1));
                }
            }
            _ => bad.push("it names no window".into()),
        }
        if let Some(changed) = e.get("changed") {
            match changed.as_array() {
                Some(list) => named.extend(list.iter().map(|x| (x.get(0).unwrap_or(&Value::Null), 0))),
                None => bad.push("its changed list is not a list".into()),
            }
        }
        for (w, minus) in named {
            match w.as_u64() {
                Some(w) if w.saturating_sub(minus) < windows => {}
                Some(w) => bad.push(format!("window {} is outside the schedule ({windows} windows)", w.saturating_sub(minus))),
                None => bad.push(format!("window {w} is not a window index")),
            }
        }
        if !bad.is_empty() {
            let action = e.get("action").and_then(Value::as_str).unwrap_or("?");
            r.problems.push(finding(
                "audit-entry-invalid",
                format!("audit.log line {line} ({action}): {}", bad.join("; ")),
                json!({ "line": line }),
            ));
        }
    }
    for (id, names) in remembered {
        let placeholder = symbols.get(id as usize).cloned().unwrap_or_default();
        let said = names.iter().map(|(n, lines)| format!("{n:?} ({lines} lines)")).collect::<Vec<_>>().join(", ");
        r.warnings.push(finding(
            "lost-symbol-named",
            format!("symbol id {id} is the placeholder {placeholder} (the map lost its name); audit.log names it {said}"),
            json!({ "symbolId": id, "symbol": placeholder, "auditNames": names.keys().collect::<Vec<_>>() }),
        ));
    }
    r.checked.push("every audit.log line parses and names a known symbol, slot kind and window".into());
    Ok(())
}

/// Artifact files of live records exist and match their records; files of
/// records no slot uses are only looked for.
fn check_artifacts(
    dir: &Path,
    reader: &StateReader,
    names: &Names<'_>,
    referenced: &HashMap<RecordRef, SlotAddr>,
    gc: &gc_log::GcLogState,
    r: &mut VerifyReport,
    progress: Progress<'_>,
) -> Result<()> {
    let tree = files::walk(dir)?;
    if tree.root_refused {
        r.problems.push(finding(
            "artifacts-not-a-directory",
            "artifacts is a symbolic link or not a directory: its files were not read",
            json!({}),
        ));
    }
    for link in &tree.symlinks {
        r.warnings.push(finding("artifact-symlink", format!("{link} is a symbolic link; tools never follow it"), json!({ "path": link })));
    }
    let total: u64 = StoreKind::ALL.iter().map(|s| reader.replay(*s).records).sum();
    let mut done = 0u64;
    let mut hashed: HashSet<String> = HashSet::new();
    for store in StoreKind::ALL {
        let len = reader.store(store).len()?;
        for id in 0..len {
            done += 1;
            progress("artifacts", done, total.max(done));
            let rec = match reader.store(store).get(id) {
                Ok(Some(rec)) => rec,
                // A lost id (marked by a repair) names no artifact.
                Ok(None) | Err(Error::PayloadLost { .. }) => continue,
                Err(e) => return Err(e),
            };
            let key = RecordRef { store, payload_id: id };
            let live = referenced.get(&key).copied();
            if live.is_none() && gc.records.contains(&key) {
                continue; // collected by gc: its file may be gone
            }
            let fields = json!({ "store": store.name(), "payloadId": id, "uri": rec.uri });
            let opened = files::open_file(dir, rec.uri.as_bytes());
            let still_live = |at: SlotAddr| reader.read_slot(at).is_ok_and(|s| s.status == SlotStatus::Filled && s.payload_id == id);
            match (opened, live) {
                (Err(e), Some(at)) if still_live(at) => r.problems.push(finding(
                    "artifact-path",
                    format!(
                        "{}: artifact URI {:?} of {} record {id} does not name a file under the state directory ({e})",
                        names.at(at),
                        rec.uri,
                        store.name()
                    ),
                    fields,
                )),
                (Err(_), _) => {}
                (Ok(None), Some(at)) if still_live(at) => {
                    let hint = if gc.uris.contains(&rec.uri) { " (gc.log says gc removed it, but a live slot refers to it)" } else { "" };
                    r.problems.push(finding(
                        "artifact-missing",
                        format!("{}: artifact {} of {} record {id} is missing{hint}", names.at(at), rec.uri, store.name()),
                        fields,
                    ));
                }
                (Ok(None), None) if !gc.uris.contains(&rec.uri) => r.warnings.push(finding(
                    "unreferenced-artifact-missing",
                    format!(
                        "{} record {id} (referenced by no slot): artifact {} is missing and gc.log does not say gc removed it",
                        store.name(),
                        rec.uri
                    ),
                    fields,
                )),
                (Ok(Some(mut f)), Some(at)) => {
                    let (sum, size) = files::hash(&mut f, &dir.join(&rec.uri))?;
                    if hashed.insert(rec.uri.clone()) {
                        r.counts.artifacts += 1;
                    }
                    if (sum != rec.checksum || size != rec.size) && still_live(at) {
                        let what = if sum != rec.checksum {
                            format!("has checksum {sum:#018x}, {} record {id} says {:#018x}", store.name(), rec.checksum)
                        } else {
                            format!("is {size} bytes, {} record {id} says {}", store.name(), rec.size)
                        };
                        r.problems.push(finding("artifact-changed", format!("{}: artifact {} {what}", names.at(at), rec.uri), fields));
                    }
                }
                _ => {}
            }
        }
    }
    r.checked.push("artifact files of Filled slots exist and match their records (size, checksum)".into());
    Ok(())
}
