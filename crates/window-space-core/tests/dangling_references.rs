//! Damage that breaks ids across files: a mapping table that lost records
//! Filled slots refer to (cut to half its length, as power loss in the
//! buffered mode or a restore of files backed up at different times can
//! leave it), and a symbol map that lost symbols whose ledger chunks exist.
//!
//! * A bootstrap refuses such a directory with `ERR_CORRUPT_STATE` naming
//!   the file, what it holds, the highest id referred to and how many slots
//!   or chunks are affected, and changes no byte of any file: alone, and
//!   with another controller open.
//! * `verify` reports the same, read-only.
//! * `repair --dry-run` reports what it would do and changes nothing;
//!   `repair` is refused while another controller is open; `repair` clears
//!   the dangling slots through the journaled admin transition, marks the
//!   lost ids so that the next append returns an id past every id a slot
//!   referred to, names lost symbols with placeholders, and writes an intent
//!   and an outcome line to the audit trail. Afterwards the directory opens,
//!   verifies clean, reads a lost id as `ERR_PAYLOAD_LOST`, and a fill naming
//!   one is refused the same way.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use window_space_core::audit::{AuditContext, AuditLog};
use window_space_core::journal::JournalRead;
use window_space_core::ops::repair::{repair, RepairOptions};
use window_space_core::ops::verify::{verify, VerifyOptions};
use window_space_core::{Config, Controller, Error, FillPayload, PayloadInput, SlotAddr, SlotKind, SlotStatus, StoreKind, WindowSpace};

const WINDOWS: u32 = 400;
const FILLED: u32 = 170;

fn config(dir: &Path) -> Config {
    Config::new(dir, WindowSpace::Uniform { origin_ns: 0, window_ns: 1_000_000_000, window_count: WINDOWS })
}

fn fill(c: &Controller, symbol: u32, w: u32, kind: SlotKind) -> u64 {
    let at = SlotAddr::new(symbol, w, kind);
    let g = c.claim(at, Some(60_000)).unwrap();
    let rec = PayloadInput {
        symbol_id: symbol,
        window_idx: w,
        slot_kind: kind,
        payload_type: 1,
        checksum: u64::from(w) + 1,
        size: 1,
        uri: format!("artifacts/{symbol}/{kind}/{w}"),
    };
    let id = c.append_payload(kind.store(), rec).unwrap();
    c.fill(at, g.version, FillPayload { payload_type: 1, payload_id: id, checksum: u64::from(w) + 1 }).unwrap();
    id
}

/// SPY: optionTrade Filled in windows 0..170 (170 trades records), greeks
/// Filled in windows 0..10; AAPL and QQQ: optionQuote Filled in windows 0..5.
fn populated() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let (c, _) = Controller::bootstrap(config(d.path())).unwrap();
    let spy = c.resolve_symbol("SPY").unwrap();
    for w in 0..FILLED {
        assert_eq!(fill(&c, spy, w, SlotKind::OptionTrade), u64::from(w));
    }
    for w in 0..10 {
        fill(&c, spy, w, SlotKind::Greeks);
    }
    for sym in ["AAPL", "QQQ"] {
        let s = c.resolve_symbol(sym).unwrap();
        for w in 0..5 {
            fill(&c, s, w, SlotKind::OptionQuote);
        }
    }
    d
}

/// Cuts `trades.map` to half its length; returns how many whole records are left.
fn cut_trades_in_half(dir: &Path) -> u64 {
    let p = dir.join("trades.map");
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(len / 2).unwrap();
    let (_, replay) = window_space_core::payload::PayloadStore::open_read_only(&p, StoreKind::Trades).unwrap();
    assert!(replay.records > 0 && replay.records < u64::from(FILLED), "{replay:?}");
    replay.records
}

/// Every file's bytes (the lock file and presence records aside: they are
/// not state, and an open controller has its own record).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name();
            if name == "window-space.lock" || name == "presence" {
                continue;
            }
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path(), std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

fn assert_unchanged(before: &BTreeMap<PathBuf, Vec<u8>>, dir: &Path, when: &str) {
    let after = snapshot(dir);
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>(), "{when}: files appeared or went");
    for (p, b) in before {
        assert!(after[p] == *b, "{when}: {} changed", p.display());
    }
}

fn ctx() -> AuditContext {
    AuditContext { actor: Some("ops-test".into()), reason: Some("restored trades.map from an older backup".into()) }
}

#[test]
fn a_table_cut_short_is_refused_naming_it_and_nothing_changes_alone_or_beside_another_controller() {
    let dir = populated();
    let records = cut_trades_in_half(dir.path());
    let before = snapshot(dir.path());
    let e = Controller::bootstrap(config(dir.path())).err().expect("the bootstrap must refuse");
    assert_eq!(e.code().as_str(), "ERR_CORRUPT_STATE", "{e}");
    let d = e.details();
    assert!(d["file"].as_str().unwrap().ends_with("trades.map"), "{d}");
    assert_eq!(d["records"], records);
    assert_eq!(d["highestReferencedId"], u64::from(FILLED) - 1);
    assert_eq!(d["danglingSlots"], u64::from(FILLED) - records);
    assert_eq!(d["storesAffected"], 1);
    assert!(e.to_string().contains("window-space repair"), "{e}");
    assert_unchanged(&before, dir.path(), "after a refused bootstrap");

    // Beside another controller: the damage appears under an open controller
    // (a table restored from a backup while it runs); the next bootstrap,
    // not alone, refuses as well and changes nothing.
    let fresh = populated();
    let (open, _) = Controller::bootstrap(config(fresh.path())).unwrap();
    let records = cut_trades_in_half(fresh.path());
    let before = snapshot(fresh.path());
    let e = Controller::bootstrap(config(fresh.path())).err().expect("the bootstrap beside another controller must refuse");
    assert_eq!(e.code().as_str(), "ERR_CORRUPT_STATE", "{e}");
    assert_eq!(e.details()["records"], records);
    assert_eq!(e.details()["danglingSlots"], u64::from(FILLED) - records);
    assert_unchanged(&before, fresh.path(), "after a refused bootstrap beside another controller");
    drop(open);
}

#[test]
fn verify_reports_the_loss_read_only() {
    let dir = populated();
    let records = cut_trades_in_half(dir.path());
    let before = snapshot(dir.path());
    let r = verify(dir.path(), VerifyOptions::default(), &mut |_, _, _| {}).unwrap();
    assert!(!r.ok);
    let summary: Vec<_> = r.problems.iter().filter(|p| p.kind == "dangling-references").collect();
    assert_eq!(summary.len(), 1, "{:?}", r.problems);
    assert_eq!(summary[0].fields["store"], "trades");
    assert_eq!(summary[0].fields["records"], records);
    assert_eq!(summary[0].fields["highestReferencedId"], u64::from(FILLED) - 1);
    assert_eq!(summary[0].fields["danglingSlots"], u64::from(FILLED) - records);
    let missing = r.problems.iter().filter(|p| p.kind == "payload-missing").count() as u64;
    assert_eq!(missing, u64::from(FILLED) - records);
    assert_unchanged(&before, dir.path(), "after verify");
}

#[test]
fn a_dry_run_reports_and_changes_nothing_and_a_repair_is_refused_while_a_controller_is_open() {
    let dir = populated();
    let records = cut_trades_in_half(dir.path());
    let before = snapshot(dir.path());
    let r = repair(dir.path(), &RepairOptions { dry_run: true, ctx: ctx() }).unwrap();
    assert!(!r.clean && !r.changed && r.dry_run);
    assert_eq!(r.stores.len(), 1);
    assert_eq!(r.stores[0].store, "trades");
    assert_eq!(r.stores[0].records, records);
    assert_eq!(r.stores[0].mark_lost, Some([records, u64::from(FILLED) - 1]));
    assert_eq!(r.slots.len() as u64, u64::from(FILLED) - records);
    assert!(r.slots.iter().all(|s| s.symbol == "SPY" && s.slot == "optionTrade" && s.payload_id >= records));
    assert_eq!(r.cleared, 0);
    assert_unchanged(&before, dir.path(), "after a dry run");

    // A repair needs the directory to itself. An engine opened it before the
    // damage (a restore under a running engine): refused, nothing changed.
    let fresh = populated();
    let (engine, _) = Controller::bootstrap(config(fresh.path())).unwrap();
    cut_trades_in_half(fresh.path());
    let before = snapshot(fresh.path());
    let e = repair(fresh.path(), &RepairOptions { dry_run: false, ctx: ctx() }).err().unwrap();
    assert_eq!(e.code().as_str(), "ERR_STATE_DIR_IN_USE", "{e}");
    assert_unchanged(&before, fresh.path(), "after a refused repair");
    drop(engine);
}

#[test]
fn a_repair_clears_the_dangling_slots_marks_the_lost_ids_and_never_hands_an_id_out_twice() {
    let dir = populated();
    let records = cut_trades_in_half(dir.path());
    let (epoch, head) = {
        // The journal as it was: the repair's changes come after.
        let j = window_space_core::journal::Journal::open(&dir.path().join("changes.journal")).unwrap();
        (j.epoch(), j.head())
    };
    let r = repair(dir.path(), &RepairOptions { dry_run: false, ctx: ctx() }).unwrap();
    assert!(r.changed && !r.clean);
    assert_eq!(r.cleared, u64::from(FILLED) - records);
    assert_eq!(r.stores[0].mark_lost, Some([records, u64::from(FILLED) - 1]));

    let (c, report) = Controller::bootstrap(config(dir.path())).unwrap();
    let trades = report.stores.iter().find(|s| s.store == StoreKind::Trades).unwrap();
    assert_eq!(trades.records, u64::from(FILLED));
    let spy = c.symbol_id("SPY").unwrap();
    // The dangling slots are Cleared (version one past the fill), the others untouched.
    for w in 0..FILLED {
        let s = c.read_slot(SlotAddr::new(spy, w, SlotKind::OptionTrade)).unwrap();
        if u64::from(w) < records {
            assert_eq!((s.status, s.payload_id), (SlotStatus::Filled, u64::from(w)), "window {w}");
        } else {
            assert_eq!((s.status, s.version), (SlotStatus::Cleared, 3), "window {w}");
        }
    }
    // Lost ids read as lost; the next append's id is past every id a slot referred to.
    for id in records..u64::from(FILLED) {
        match c.store(StoreKind::Trades).get(id) {
            Err(Error::PayloadLost { payload_id, .. }) => assert_eq!(payload_id, id),
            other => panic!("id {id}: {other:?}"),
        }
    }
    let w = FILLED + 1;
    let next = fill(&c, spy, w, SlotKind::OptionTrade);
    assert_eq!(next, u64::from(FILLED));
    // A fill naming a lost id is refused with the same answer.
    let at = SlotAddr::new(spy, FILLED + 2, SlotKind::OptionTrade);
    let g = c.claim(at, None).unwrap();
    let e = c.fill(at, g.version, FillPayload { payload_type: 1, payload_id: records, checksum: 1 }).unwrap_err();
    assert_eq!(e.code().as_str(), "ERR_PAYLOAD_LOST");
    // Engines redo the cleared windows: claimable again.
    let redo = fill(&c, spy, u32::try_from(records).unwrap(), SlotKind::OptionTrade);
    assert_eq!(redo, u64::from(FILLED) + 1);
    // Counters stayed exact.
    assert_eq!(c.slot_metrics(), c.recount().unwrap());
    // The journal has every clear, so a watcher resuming from before sees them.
    let JournalRead::Entries { changes, .. } = c.journal().read(epoch, head, 100_000) else { panic!("gap") };
    let cleared: Vec<_> = changes.iter().filter(|ch| ch.from == SlotStatus::Filled && ch.to == SlotStatus::Cleared).collect();
    assert_eq!(cleared.len() as u64, u64::from(FILLED) - records);
    assert!(cleared.iter().all(|ch| ch.kind == SlotKind::OptionTrade && u64::from(ch.window_idx) >= records));
    // The audit trail: an intent before, an outcome after.
    let lines = AuditLog::read_all(c.audit_log().path()).unwrap();
    let repair_lines: Vec<_> = lines.iter().filter(|l| l["action"] == "repair").collect();
    assert_eq!(repair_lines.len(), 2);
    assert_eq!(repair_lines[0]["details"]["phase"], "intent");
    assert_eq!(repair_lines[0]["actor"], "ops-test");
    assert_eq!(repair_lines[1]["details"]["phase"], "done");
    assert_eq!(repair_lines[1]["details"]["cleared"].as_array().unwrap().len() as u64, u64::from(FILLED) - records);
    assert_eq!(repair_lines[1]["details"]["stores"][0]["markedLost"], serde_json::json!([records, u64::from(FILLED) - 1]));
    drop(c);
    // verify is clean but for the lost ids, which it lists as a warning.
    let v = verify(dir.path(), VerifyOptions::default(), &mut |_, _, _| {}).unwrap();
    assert!(v.ok, "{:?}", v.problems);
    assert!(v.warnings.iter().any(|w| w.kind == "payload-ids-lost" && w.fields["count"] == u64::from(FILLED) - records));
    // A second repair finds nothing to do and writes nothing.
    let before = snapshot(dir.path());
    let again = repair(dir.path(), &RepairOptions { dry_run: false, ctx: ctx() }).unwrap();
    assert!(again.clean && !again.changed);
    assert_unchanged(&before, dir.path(), "after a repair of a clean directory");
}

#[test]
fn the_repaired_table_is_of_format_version_2_so_a_reader_of_version_1_only_refuses_it() {
    let dir = populated();
    cut_trades_in_half(dir.path());
    let untouched = std::fs::read(dir.path().join("quotes.map")).unwrap();
    repair(dir.path(), &RepairOptions { dry_run: false, ctx: ctx() }).unwrap();
    let bytes = std::fs::read(dir.path().join("trades.map")).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 2, "the header's format version");
    assert_eq!(window_space_core::payload::decode_header(Path::new("trades.map"), StoreKind::Trades, &bytes).unwrap(), 2);
    // Tables the repair did not touch keep version 1.
    assert_eq!(std::fs::read(dir.path().join("quotes.map")).unwrap(), untouched);
    // A version this library does not know is refused as newer, changing nothing.
    let mut newer = bytes.clone();
    newer[8..12].copy_from_slice(&3u32.to_le_bytes());
    let e = window_space_core::payload::decode_header(Path::new("trades.map"), StoreKind::Trades, &newer).unwrap_err();
    assert_eq!(e.code().as_str(), "ERR_NEWER_FORMAT");
}

#[test]
fn chunks_of_lost_symbols_are_refused_then_named_by_placeholders_and_no_symbol_id_is_given_twice() {
    let dir = populated();
    {
        // An audit line that names AAPL (id 1) before the map loses it.
        let (c, _) = Controller::bootstrap(config(dir.path())).unwrap();
        c.force_clear(SlotAddr::new(1, 4, SlotKind::OptionQuote), &ctx()).unwrap();
    }
    support::keep_symbols(dir.path(), 1);
    let before = snapshot(dir.path());
    let e = Controller::bootstrap(config(dir.path())).err().expect("the bootstrap must refuse");
    assert_eq!(e.code().as_str(), "ERR_CORRUPT_STATE", "{e}");
    let d = e.details();
    assert!(d["file"].as_str().unwrap().ends_with("symbols.log"), "{d}");
    assert_eq!((d["symbols"].as_u64(), d["highestSymbolId"].as_u64(), d["chunks"].as_u64()), (Some(1), Some(2), Some(2)));
    assert_unchanged(&before, dir.path(), "after a refused bootstrap");
    let v = verify(dir.path(), VerifyOptions::default(), &mut |_, _, _| {}).unwrap();
    let missing: Vec<_> = v.problems.iter().filter(|p| p.kind == "symbols-missing").collect();
    assert_eq!(missing.len(), 1, "{:?}", v.problems);
    assert_eq!((missing[0].fields["symbols"].as_u64(), missing[0].fields["highestSymbolId"].as_u64()), (Some(1), Some(2)));
    let dry = repair(dir.path(), &RepairOptions { dry_run: true, ctx: ctx() }).unwrap();
    let names: Vec<_> = dry.symbols.as_ref().unwrap().placeholders.iter().map(|p| (p.id, p.name.as_str())).collect();
    assert_eq!(names, vec![(1, "lost-symbol-1"), (2, "lost-symbol-2")]);
    assert_unchanged(&before, dir.path(), "after a dry run");

    let r = repair(dir.path(), &RepairOptions { dry_run: false, ctx: ctx() }).unwrap();
    assert!(r.changed && r.slots.is_empty());
    let (c, _) = Controller::bootstrap(config(dir.path())).unwrap();
    assert_eq!(c.symbols().unwrap(), vec!["SPY", "lost-symbol-1", "lost-symbol-2"]);
    // The rows of the lost symbols are there to look at and act on.
    let lost = c.symbol_id("lost-symbol-2").unwrap();
    let s = c.read_slot(SlotAddr::new(lost, 3, SlotKind::OptionQuote)).unwrap();
    assert_eq!(s.status, SlotStatus::Filled);
    assert_eq!(c.retire_range(lost, 0..WINDOWS, SlotKind::OptionQuote, &ctx()).unwrap(), u64::from(WINDOWS));
    // A symbol added now gets a new id, never one whose rows exist.
    assert_eq!(c.resolve_symbol("AAPL").unwrap(), 3);
    // Nobody can add a placeholder's name.
    assert_eq!(c.resolve_symbol("lost-symbol-7").unwrap_err().code().as_str(), "ERR_INVALID_SYMBOL");
    assert_eq!(c.slot_metrics(), c.recount().unwrap());
    let audit = AuditLog::read_all(c.audit_log().path()).unwrap();
    let done = audit.iter().rev().find(|l| l["action"] == "repair" && l["details"]["phase"] == "done").unwrap();
    assert_eq!(done["details"]["symbolsAdded"], serde_json::json!([[1, "lost-symbol-1"], [2, "lost-symbol-2"]]));
    drop(c);
    // verify is clean; it says which name the audit trail remembers for a placeholder.
    let v = verify(dir.path(), VerifyOptions::default(), &mut |_, _, _| {}).unwrap();
    assert!(v.ok, "{:?}", v.problems);
    let named: Vec<_> = v.warnings.iter().filter(|w| w.kind == "lost-symbol-named").collect();
    assert_eq!(named.len(), 1, "{:?}", v.warnings);
    assert_eq!((named[0].fields["symbolId"].as_u64(), &named[0].fields["auditNames"]), (Some(1), &serde_json::json!(["AAPL"])));
}

#[test]
fn lost_symbols_and_lost_records_together_are_refused_then_repaired_in_one_run() {
    let dir = populated();
    support::keep_symbols(dir.path(), 2);
    // quotes.map loses the records of QQQ (symbol 2), whose map entry is lost too.
    let p = dir.path().join("quotes.map");
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(len - 200).unwrap();
    let e = Controller::bootstrap(config(dir.path())).err().unwrap();
    assert!(e.details()["file"].as_str().unwrap().ends_with("symbols.log"), "the symbols first: {e}");
    let r = repair(dir.path(), &RepairOptions { dry_run: false, ctx: ctx() }).unwrap();
    assert_eq!(r.symbols.as_ref().unwrap().placeholders.len(), 1);
    assert_eq!(r.stores.len(), 1);
    assert_eq!(r.stores[0].store, "quotes");
    assert!(r.cleared > 0);
    assert!(r.slots.iter().all(|s| s.symbol == "lost-symbol-2"));
    let (c, _) = Controller::bootstrap(config(dir.path())).unwrap();
    assert_eq!(c.slot_metrics(), c.recount().unwrap());
    drop(c);
    assert!(verify(dir.path(), VerifyOptions::default(), &mut |_, _, _| {}).unwrap().ok);
}

#[test]
fn a_slot_that_refers_far_past_its_table_is_refused_by_the_repair_too_and_nothing_changes() {
    let dir = populated();
    // SPY's first trade chunk is the first allocated: header page, chunk
    // header, row 3, column 1 (optionTrade); the payload id is the high half
    // of the slot's head word (bytes 8..16).
    let p = dir.path().join("trade-ledger.dat");
    let mut bytes = std::fs::read(&p).unwrap();
    let at = 4096 + 64 + 3 * 7 * 32 + 32 + 8;
    assert_eq!(u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()), 3, "the slot holds payload id 3");
    bytes[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    std::fs::write(&p, &bytes).unwrap();
    let before = snapshot(dir.path());
    let e = Controller::bootstrap(config(dir.path())).err().unwrap();
    assert_eq!((e.details()["highestReferencedId"].as_u64(), e.details()["danglingSlots"].as_u64()), (Some(1 << 40), Some(1)));
    for dry_run in [true, false] {
        let e = repair(dir.path(), &RepairOptions { dry_run, ctx: ctx() }).expect_err("the repair must refuse");
        assert_eq!(e.code().as_str(), "ERR_CORRUPT_STATE", "{e}");
        assert!(e.to_string().contains("more than lost records explain"), "{e}");
        assert_unchanged(&before, dir.path(), "after a refused repair");
    }
}
