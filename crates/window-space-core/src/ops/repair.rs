//! `window-space repair`: accepts, explicitly and in the audit trail, the
//! loss that a bootstrap refuses ([`Damage`]): payload records that Filled
//! slots refer to but their mapping table no longer holds, and symbols whose
//! ledger chunks exist but `symbols.log` no longer holds (power loss in
//! the buffered mode, or files restored from backups of different times).
//!
//! What it does, in this order, each step durable before the next:
//!
//! 1. Opens the directory as a bootstrap does, but only when no other
//!    controller has it open (`ERR_STATE_DIR_IN_USE` otherwise), and finds
//!    the damage with every check of a bootstrap, changing nothing. With
//!    `dry_run`, or when there is nothing to repair, it stops here — with one
//!    exception: when there is nothing to repair and the audit trail's last
//!    `repair` line is an intent (a run killed after step 5, before step 6),
//!    it appends the outcome line that run did not write,
//!    `{"phase":"done","finishesEarlierRun":true,…}` with the intent's line
//!    number and time and the slots it named, and its report says so
//!    ([`RepairReport::finishes_earlier_run`]; a dry run only reports it).
//! 2. Appends an audit line `{"action":"repair","details":{"phase":"intent",…}}`
//!    saying what it will do: the symbols and tables it found damaged, and
//!    every slot it will clear as `[symbol id, window, slot kind, payload id]`
//!    (`slots`); nothing changes unless it was written.
//! 3. Gives every missing symbol id up to the highest one a chunk belongs to
//!    a placeholder symbol, `lost-symbol-<id>` (a reserved name no engine can
//!    add: `symbols.rs`), appended to the symbol log in one write and fsynced. The rows of those
//!    chunks become visible under that name (grid, export, clear, retire) and
//!    no id is given twice: a symbol added later gets the next id.
//! 4. Marks every payload id from each damaged table's next id through the
//!    highest id a Filled slot refers to lost, with lost-id records
//!    (`payload.rs`; the table's header becomes format version 2 first), so
//!    the next append returns an id past every id a slot ever referred to.
//! 5. Force-clears every Filled slot whose payload id its table does not
//!    hold as a record, through the controller's admin transition (journal
//!    entry, counters, in-flight mark): engines redo those slots.
//! 6. Appends the outcome line (`"phase":"done"`: symbols added, ids marked
//!    lost, each slot cleared with the payload id it referred to and its
//!    versions before and after).
//!
//! **What others see meanwhile.** Steps 1 to 4 run with the directory's gate
//! held (the exclusive `flock` every bootstrap takes first, `lock.rs`): every
//! other bootstrap — an engine's, or a tool's that opens a controller, such
//! as `window-space clear` — waits for it (a blocking `flock`: a repair
//! stopped there, by SIGSTOP, holds them up until it goes on or dies); a
//! second repair waits too, and is refused (`ERR_STATE_DIR_IN_USE`) when the
//! first still has the directory open once it gets the gate. Step
//! 5 runs with the gate released and the repair open as a controller: a
//! bootstrap then finds slots that still refer to lost ids and refuses the
//! directory (`ERR_CORRUPT_STATE`) until every slot is cleared; from then on
//! it opens, also before the outcome line is written.
//!
//! **Killed at any step, it is run again.** Each step is idempotent and the
//! damage a bootstrap finds describes what is left: symbols added stay
//! added; lost-id records already written are kept (a torn one is cut, as an
//! append does) and the rest are written; slots already cleared no longer
//! refer to a lost id. While anything is left, every bootstrap after the
//! killed repair refuses the directory, so no engine can open it half
//! repaired: a slot referring to a lost id counts as damage as much as one
//! referring past the table's end, which is why the ids are marked before
//! the slots are cleared. An intent line without an outcome line says a
//! repair was killed, and which slots it was to clear (and what they
//! referred to). The run after it writes its own intent and outcome when
//! damage is left, and the missing outcome line when nothing is (step 1).

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

use crate::audit::{default_actor, AuditContext, AuditLog, AUDIT_FILE};
use crate::controller::{Alone, Config, Controller, Damage, Durability, SCHEDULE_FILE};
use crate::error::{Error, Result};
use crate::schedule::Schedule;
use crate::slot::SlotAddr;
use crate::symbols::lost_symbol_name;

/// Most payload ids one repair marks lost in one mapping table. A slot that
/// refers further past the table's end is more likely a damaged slot than
/// lost records, and marking that many ids would fill the disk.
pub const MAX_LOST_IDS: u64 = 1 << 24;

/// Most placeholder symbols one repair adds.
pub const MAX_LOST_SYMBOLS: u32 = 1 << 20;

/// Options of [`repair`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairOptions {
    /// Say what would be done; change nothing.
    pub dry_run: bool,
    /// Who and why, for the audit trail.
    pub ctx: AuditContext,
}

/// What [`repair`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepairReport {
    pub state_dir: PathBuf,
    pub dry_run: bool,
    /// Nothing to repair: every chunk's symbol is in the map and every
    /// Filled slot's payload id is a record of its table.
    pub clean: bool,
    /// Whether this run changed the directory.
    pub changed: bool,
    /// Chunks of symbols the map does not hold, and the placeholders for them.
    pub symbols: Option<SymbolRepair>,
    /// Mapping tables Filled slots refer past (or to lost ids of).
    pub stores: Vec<StoreRepair>,
    /// Every Filled slot whose payload id its table does not hold as a record.
    pub slots: Vec<DanglingSlot>,
    /// How many of `slots` this run cleared.
    pub cleared: u64,
    /// With nothing left to repair: a repair an earlier run left without its
    /// outcome line (killed after it cleared every slot), which this run
    /// finished by writing that line (a dry run only reports it).
    pub finishes_earlier_run: Option<EarlierRun>,
}

/// A repair whose intent line has no outcome line after it, as the audit trail says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EarlierRun {
    /// 1-based line number of its intent line in `audit.log`.
    pub intent_line: u64,
    /// `atNs` of its intent line.
    pub intent_at_ns: String,
    /// Who ran it.
    pub actor: String,
    /// The slots its intent line names, `[symbol id, window, slot kind,
    /// payload id]` each (their count, when the intent line gives only that).
    pub slots: serde_json::Value,
    /// Those of `slots` whose payload id is marked lost now: the earlier
    /// run marked it (it marks ids before it clears slots), and since the
    /// directory is clean, it cleared the slot.
    pub cleared: Vec<serde_json::Value>,
    /// Those of `slots` whose payload id is a record again (a table
    /// restored from a backup after the run was killed): it did not change
    /// them.
    pub not_changed: Vec<serde_json::Value>,
}

/// The symbol map's side of a repair.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SymbolRepair {
    /// Symbols the map held.
    pub symbols: u32,
    /// The highest symbol id a chunk belongs to.
    pub highest_symbol_id: u32,
    /// Chunks (both ledgers) of symbol ids the map did not hold.
    pub chunks: u64,
    /// The placeholders added (or, in a dry run, to be added): id and name.
    pub placeholders: Vec<Placeholder>,
}

/// A placeholder symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placeholder {
    pub id: u32,
    pub name: String,
}

/// One mapping table's side of a repair.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreRepair {
    /// The store's API name (`trades`, ...).
    pub store: &'static str,
    pub file: &'static str,
    /// Whole records the table held (lost ids included): its next id.
    pub records: u64,
    /// The highest payload id a Filled slot refers to.
    pub highest_referenced_id: u64,
    /// Filled slots whose payload id the table does not hold as a record.
    pub dangling_slots: u64,
    /// Ids marked lost by this repair (or, in a dry run, to be marked):
    /// `[first, last]`, or none when the table already reaches past every
    /// id a slot refers to.
    pub mark_lost: Option<[u64; 2]>,
}

/// A Filled slot whose payload id its table does not hold as a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DanglingSlot {
    pub symbol: String,
    pub symbol_id: u32,
    pub window_idx: u32,
    pub slot: &'static str,
    pub store: &'static str,
    pub payload_id: u64,
}

/// What the damage says a repair will do.
fn plan(report: &mut RepairReport, damage: &Damage, names: &[String]) {
    report.clean = damage.is_empty();
    report.symbols = damage.unknown_symbols.map(|u| SymbolRepair {
        symbols: u.symbols,
        highest_symbol_id: u.highest_symbol,
        chunks: u.chunks,
        placeholders: (u.symbols..=u.highest_symbol).map(|id| Placeholder { id, name: lost_symbol_name(id) }).collect(),
    });
    report.stores = damage
        .stores
        .iter()
        .map(|s| StoreRepair {
            store: s.store.name(),
            file: s.store.file_name(),
            records: s.records,
            highest_referenced_id: s.highest_referenced,
            dangling_slots: s.dangling_slots,
            mark_lost: (s.highest_referenced >= s.records).then_some([s.records, s.highest_referenced]),
        })
        .collect();
    report.slots = damage
        .dangling
        .iter()
        .map(|d| DanglingSlot {
            symbol: names.get(d.symbol as usize).cloned().unwrap_or_else(|| lost_symbol_name(d.symbol)),
            symbol_id: d.symbol,
            window_idx: d.window,
            slot: d.kind.name(),
            store: d.kind.store().name(),
            payload_id: d.payload_id,
        })
        .collect();
}

/// Refuses a repair whose size says the damage is something else.
fn check_bounds(dir: &Path, report: &RepairReport) -> Result<()> {
    if let Some(s) = &report.symbols {
        let n = s.highest_symbol_id - s.symbols + 1;
        if n > MAX_LOST_SYMBOLS {
            return Err(Error::corrupt(
                dir.join(crate::symbols::SymbolMap::FILE_NAME),
                None,
                format!("a chunk belongs to symbol id {}, {n} ids past the map's {} symbols: more than lost symbols explain (at most {MAX_LOST_SYMBOLS} are repaired); restore the map from a backup", s.highest_symbol_id, s.symbols),
            ));
        }
    }
    for s in &report.stores {
        if let Some([first, last]) = s.mark_lost {
            if last - first + 1 > MAX_LOST_IDS {
                return Err(Error::corrupt(
                    dir.join(s.file),
                    None,
                    format!("a Filled slot refers to payload id {last}, {} ids past the table's {first} records: more than lost records explain (at most {MAX_LOST_IDS} ids are marked lost); restore the table from a backup", last - first + 1),
                ));
            }
        }
    }
    Ok(())
}

fn intent_details(report: &RepairReport) -> serde_json::Value {
    json!({
        "phase": "intent",
        "symbols": report.symbols.as_ref().map(|s| json!({ "symbols": s.symbols, "highestSymbolId": s.highest_symbol_id, "chunks": s.chunks })),
        "stores": report.stores.iter().map(|s| json!({
            "store": s.store,
            "records": s.records,
            "highestReferencedId": s.highest_referenced_id,
            "danglingSlots": s.dangling_slots,
            "markLost": s.mark_lost,
        })).collect::<Vec<_>>(),
        "slots": report.slots.iter().map(|d| json!([d.symbol_id, d.window_idx, d.slot, d.payload_id])).collect::<Vec<_>>(),
    })
}

/// The last `repair` line of the audit trail, when it is an intent: a
/// repair killed before its outcome line. Torn and damaged lines are no
/// `repair` lines.
fn unfinished_run(dir: &Path, stores: &[crate::payload::PayloadStore]) -> Result<Option<EarlierRun>> {
    let scan = AuditLog::scan_numbered(&dir.join(AUDIT_FILE))?;
    let Some((line, last)) = scan.entries.into_iter().rev().find(|(_, e)| e.get("action").and_then(|a| a.as_str()) == Some("repair"))
    else {
        return Ok(None);
    };
    if last["details"]["phase"] != "intent" {
        return Ok(None);
    }
    let text = |k: &str| last.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let slots = last["details"]["slots"].clone();
    let (mut cleared, mut not_changed) = (Vec::new(), Vec::new());
    for slot in slots.as_array().map(Vec::as_slice).unwrap_or_default() {
        let store = slot.get(2).and_then(|k| k.as_str()).and_then(crate::vocab::SlotKind::from_name).map(|k| k.store());
        let lost = match (store, slot.get(3).and_then(serde_json::Value::as_u64)) {
            (Some(store), Some(id)) => stores.get(store as usize).is_some_and(|s| s.is_lost(id)),
            _ => false,
        };
        if lost {
            cleared.push(slot.clone())
        } else {
            not_changed.push(slot.clone())
        }
    }
    Ok(Some(EarlierRun { intent_line: line, intent_at_ns: text("atNs"), actor: text("actor"), slots, cleared, not_changed }))
}

/// Steps 2 to 4 (see the module comment), with the gate held and no other
/// controller open; false (nothing done) for a dry run or a clean directory.
fn before_open(a: &Alone<'_>, opts: &RepairOptions, report: &mut RepairReport) -> Result<bool> {
    plan(report, a.damage, &a.symbols.all());
    check_bounds(a.dir, report)?;
    let audit = AuditLog::new(a.dir, default_actor(), a.sync);
    if report.clean {
        // Nothing left: an earlier run that cleared every slot and was killed
        // before its outcome line gets that line now.
        report.finishes_earlier_run = unfinished_run(a.dir, a.stores)?;
        if let (Some(run), false) = (&report.finishes_earlier_run, opts.dry_run) {
            let mut f = serde_json::Map::new();
            f.insert(
                "details".into(),
                json!({
                    "phase": "done",
                    "finishesEarlierRun": true,
                    "intentLine": run.intent_line,
                    "intentAtNs": run.intent_at_ns,
                    "slots": run.slots,
                    "cleared": run.cleared,
                    "notChanged": run.not_changed,
                }),
            );
            audit.append(&opts.ctx, "repair", f)?;
            report.changed = true;
        }
        return Ok(false);
    }
    if opts.dry_run {
        return Ok(false);
    }
    let mut f = serde_json::Map::new();
    f.insert("details".into(), intent_details(report));
    audit.append(&opts.ctx, "repair", f)?;
    report.changed = true;
    failpoint!("repair::intent-written");
    if let Some(s) = report.symbols.as_mut() {
        let added = a.symbols.add_lost(s.highest_symbol_id)?;
        s.placeholders = added.into_iter().map(|(id, name)| Placeholder { id, name }).collect();
        failpoint!("repair::symbols-added");
    }
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    for (s, damage) in report.stores.iter_mut().zip(&a.damage.stores) {
        if let Some([_, last]) = s.mark_lost {
            let marked = a.stores[damage.store as usize].append_lost(last, created)?;
            s.mark_lost = (!marked.is_empty()).then(|| [marked.start, marked.end - 1]);
        }
    }
    failpoint!("repair::lost-marked");
    Ok(true)
}

/// Repairs the state directory `dir` (see the module comment). `Err` when
/// it is not a state directory, is in use, is damaged in another way (the
/// bootstrap's own refusal), or a step failed (run it again).
pub fn repair(dir: &Path, opts: &RepairOptions) -> Result<RepairReport> {
    opts.ctx.check()?;
    let path = dir.join(SCHEDULE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotAStateDir { path: dir.to_path_buf() }),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let schedule = Schedule::from_json(&path, &text)?;
    let mut config = Config::new(dir, schedule.space().clone());
    // An operator's change survives power loss, as the admin commands' do.
    config.durability = Durability::Sync;
    config.actor = opts.ctx.actor.clone();
    let mut report = RepairReport { state_dir: dir.to_path_buf(), dry_run: opts.dry_run, ..RepairReport::default() };
    let opened = Controller::bootstrap_accepting(config, Some(&mut |a: &Alone<'_>| before_open(a, opts, &mut report)))?;
    let Some((c, _, damage)) = opened else { return Ok(report) };
    let mut cleared = Vec::new();
    for d in &damage.dangling {
        if let Some((t, before)) = c.clear_dangling(SlotAddr::new(d.symbol, d.window, d.kind), d.payload_id)? {
            cleared.push(json!([d.symbol, d.window, d.kind.name(), before.payload_id, before.version, t.version]));
            failpoint!("repair::slot-cleared");
        }
    }
    report.cleared = cleared.len() as u64;
    failpoint!("repair::cleared");
    let done = json!({
        "phase": "done",
        "symbolsAdded": report.symbols.as_ref().map(|s| s.placeholders.iter().map(|p| json!([p.id, p.name])).collect::<Vec<_>>()),
        "stores": report.stores.iter().map(|s| json!({ "store": s.store, "markedLost": s.mark_lost })).collect::<Vec<_>>(),
        "cleared": cleared,
    });
    c.audit_action(&opts.ctx, "repair", done)?;
    Ok(report)
}
