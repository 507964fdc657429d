//! `window-space repair` killed (SIGKILL) at each of its steps, then run
//! again: it ends in the same state as a repair that was never interrupted
//! (symbols, records and lost ids of every table, every slot's status,
//! version and payload id, the shared counters and event counters), and in
//! between every other bootstrap refuses the directory while anything is
//! left to repair, changing nothing. The intent line names every slot the
//! repair clears; a repair killed after clearing them all (nothing left to
//! repair) gets its outcome line from the run after it.
//!
//! The directory has both kinds of damage (a symbol map that lost two
//! symbols whose chunks exist, and a `trades.map` cut to half its length),
//! so every step runs. The killed process is this test binary run again in
//! the role `repair_child_role`, stopped at the named failpoint.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use fail::FailScenario;
use serde_json::Value;
use window_space_core::audit::{AuditContext, AuditLog};
use window_space_core::ops::repair::{repair, RepairOptions};
use window_space_core::{Config, Controller, FillPayload, LedgerKind, PayloadInput, SlotAddr, SlotKind, StoreKind, WindowSpace};

const WINDOWS: u32 = 300;
const CHILD: &str = "WS_REPAIR_CHILD";

fn config(dir: &Path) -> Config {
    Config::new(dir, WindowSpace::Uniform { origin_ns: 0, window_ns: 1_000_000_000, window_count: WINDOWS })
}

fn opts() -> RepairOptions {
    RepairOptions { dry_run: false, ctx: AuditContext { actor: Some("ops-test".into()), reason: Some("crash points".into()) } }
}

/// SPY optionTrade Filled in windows 0..120; AAPL and QQQ optionQuote and
/// greeks Filled in windows 0..6; then the map loses AAPL and QQQ and
/// `trades.map` loses half its bytes.
fn damaged() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    {
        let (c, _) = Controller::bootstrap(config(d.path())).unwrap();
        let fill = |s: u32, w: u32, kind: SlotKind| {
            let at = SlotAddr::new(s, w, kind);
            let g = c.claim(at, Some(60_000)).unwrap();
            let rec = PayloadInput {
                symbol_id: s,
                window_idx: w,
                slot_kind: kind,
                payload_type: 1,
                checksum: 9,
                size: 1,
                uri: format!("a/{s}/{w}"),
            };
            let id = c.append_payload(kind.store(), rec).unwrap();
            c.fill(at, g.version, FillPayload { payload_type: 1, payload_id: id, checksum: 9 }).unwrap();
        };
        let spy = c.resolve_symbol("SPY").unwrap();
        for w in 0..120 {
            fill(spy, w, SlotKind::OptionTrade);
        }
        for sym in ["AAPL", "QQQ"] {
            let s = c.resolve_symbol(sym).unwrap();
            for w in 0..6 {
                fill(s, w, SlotKind::OptionQuote);
                fill(s, w, SlotKind::Greeks);
            }
        }
    }
    support::keep_symbols(d.path(), 1);
    let trades = d.path().join("trades.map");
    let len = std::fs::metadata(&trades).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&trades).unwrap().set_len(len / 2).unwrap();
    d
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// What a repair must leave, whatever happened to earlier runs.
#[derive(Debug, PartialEq, Eq)]
struct Logical {
    symbols: Vec<String>,
    /// Per store: records (the next id) and lost ids.
    stores: Vec<(u64, Vec<u64>)>,
    /// Every non-Empty slot: (symbol, window, kind) → (status, version, payload id).
    slots: BTreeMap<(u32, u32, u32), (String, u32, u64)>,
    metrics: Vec<[u64; 5]>,
    events: Vec<u64>,
}

/// Repair lines of the audit trail: (intents, outcomes).
fn repair_lines(dir: &Path) -> (usize, usize) {
    let audit = AuditLog::read_all(&dir.join("audit.log")).unwrap();
    let count = |phase: &str| audit.iter().filter(|l| l["action"] == "repair" && l["details"]["phase"] == phase).count();
    (count("intent"), count("done"))
}

/// The `repair` lines of the audit trail, with their line numbers.
fn repair_entries(dir: &Path) -> Vec<(u64, Value)> {
    AuditLog::scan_numbered(&dir.join("audit.log")).unwrap().entries.into_iter().filter(|(_, l)| l["action"] == "repair").collect()
}

fn logical(dir: &Path) -> Logical {
    let (c, _) = Controller::bootstrap(config(dir)).unwrap();
    let symbols = c.symbols().unwrap();
    let stores = StoreKind::ALL.iter().map(|s| (c.store(*s).len().unwrap(), c.store(*s).lost_ids().unwrap())).collect();
    let mut slots = BTreeMap::new();
    for s in 0..symbols.len() as u32 {
        for w in 0..WINDOWS {
            for kind in SlotKind::ALL {
                let v = c.read_slot(SlotAddr::new(s, w, kind)).unwrap();
                if v.status != window_space_core::SlotStatus::Empty {
                    slots.insert((s, w, kind.code()), (v.status.name().to_string(), v.version, v.payload_id));
                }
            }
        }
    }
    let metrics = c.slot_metrics().iter().map(|m| m.counts).collect();
    assert_eq!(c.slot_metrics(), c.recount().unwrap(), "counters exact");
    let events = LedgerKind::ALL.iter().flat_map(|l| c.events(*l).into_iter().map(|(_, n)| n)).collect();
    Logical { symbols, stores, slots, metrics, events }
}

fn state_bytes(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file() && e.file_name() != "window-space.lock")
        .map(|e| (e.path(), std::fs::read(e.path()).unwrap()))
        .collect()
}

/// Runs in a child process: a repair of `WS_DIR` that stops for good at the
/// failpoint `WS_POINT` (printing `AT-POINT`), to be killed there.
#[test]
fn repair_child_role() {
    let Ok(point) = std::env::var(CHILD) else { return };
    let scenario = FailScenario::setup();
    fail::cfg_callback(&point, || {
        println!("AT-POINT");
        std::io::stdout().flush().unwrap();
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    })
    .unwrap();
    let r = repair(Path::new(&std::env::var("WS_DIR").unwrap()), &opts());
    println!("ENDED {r:?}");
    scenario.teardown();
}

/// Starts a repair of `dir` in a child process and kills it at `point`.
fn kill_repair_at(dir: &Path, point: &str) {
    support::kill_role_at_point("repair_child_role", &[(CHILD, point.to_string()), ("WS_DIR", dir.display().to_string())]);
}

#[test]
fn a_repair_killed_at_any_step_and_run_again_ends_as_an_uninterrupted_one() {
    let scenario = FailScenario::setup();
    let template = damaged();
    let reference = tempfile::tempdir().unwrap();
    copy_dir(template.path(), reference.path());
    let r = repair(reference.path(), &opts()).unwrap();
    assert!(r.changed && r.cleared > 0 && r.symbols.is_some(), "{r:?}");
    let want = logical(reference.path());
    assert_eq!(repair_lines(reference.path()), (1, 1));
    assert_eq!(want.symbols, vec!["SPY", "lost-symbol-1", "lost-symbol-2"]);
    // The intent names every slot the repair clears, with the payload id it
    // referred to: the outcome's list without the versions.
    let lines = repair_entries(reference.path());
    let named: Vec<Value> = lines[0].1["details"]["slots"].as_array().unwrap().clone();
    let cleared: Vec<Value> =
        lines[1].1["details"]["cleared"].as_array().unwrap().iter().map(|c| Value::from(c.as_array().unwrap()[..4].to_vec())).collect();
    assert_eq!(named.len() as u64, r.cleared);
    assert_eq!(named, cleared);
    assert_eq!(r.finishes_earlier_run, None);

    // (failpoint, whether something is left to repair when it is killed there)
    let points = [
        ("repair::intent-written", true),
        ("repair::symbols-added", true),
        ("payload::lost-header-written", true),
        ("payload::lost-written", true),
        ("repair::lost-marked", true),
        ("repair::slot-cleared", true),
        ("repair::cleared", false),
    ];
    for (point, left) in points {
        for tear in [false, true] {
            if tear && point != "payload::lost-written" {
                continue;
            }
            let work = tempfile::tempdir().unwrap();
            copy_dir(template.path(), work.path());
            kill_repair_at(work.path(), point);
            if tear {
                // The kill came while the lost-id records were in flight: leave the last one torn.
                let p = work.path().join("trades.map");
                let len = std::fs::metadata(&p).unwrap().len();
                std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(len - 24).unwrap();
            }
            if left {
                let before = state_bytes(work.path());
                let e =
                    Controller::bootstrap(config(work.path())).err().unwrap_or_else(|| panic!("{point}: a half-repaired directory opened"));
                assert_eq!(e.code().as_str(), "ERR_CORRUPT_STATE", "{point}: {e}");
                assert_eq!(before, state_bytes(work.path()), "{point}: the refused bootstrap changed a file");
            }
            // The killed run's intent names the slots it was to clear.
            let killed = repair_entries(work.path());
            assert_eq!(killed.len(), 1, "{point}");
            assert_eq!(killed[0].1["details"]["phase"], "intent");
            assert_eq!(killed[0].1["details"]["slots"].as_array(), Some(&named), "{point}");
            if !left {
                // A dry run says it would finish the killed run, and writes nothing.
                let before = state_bytes(work.path());
                let dry = repair(work.path(), &RepairOptions { dry_run: true, ..opts() }).unwrap();
                assert!(dry.clean && !dry.changed, "{point}: {dry:?}");
                assert_eq!(dry.finishes_earlier_run.as_ref().map(|e| e.intent_line), Some(killed[0].0));
                assert_eq!(before, state_bytes(work.path()), "{point}: the dry run wrote");
            }
            let again = repair(work.path(), &opts()).unwrap();
            assert_eq!(again.clean, !left, "{point}: {again:?}");
            let got = logical(work.path());
            assert_eq!(got, want, "{point} (torn: {tear}): the state after a killed and a completed repair");
            // The killed run's intent stays without an outcome when a run
            // found something left (it wrote both); with nothing left, the run
            // again writes the killed run's outcome line, naming its intent.
            assert_eq!(repair_lines(work.path()), if left { (2, 1) } else { (1, 1) }, "{point}");
            let lines = repair_entries(work.path());
            let last = &lines.last().unwrap().1["details"];
            if left {
                assert_eq!(again.finishes_earlier_run, None, "{point}");
                assert_eq!(last["finishesEarlierRun"], Value::Null, "{point}");
            } else {
                let earlier = again.finishes_earlier_run.as_ref().unwrap_or_else(|| panic!("{point}: {again:?}"));
                assert_eq!((earlier.intent_line, earlier.actor.as_str()), (killed[0].0, "ops-test"));
                assert_eq!(earlier.intent_at_ns, killed[0].1["atNs"].as_str().unwrap());
                assert!(again.changed);
                assert_eq!(last["phase"], "done");
                assert_eq!(last["finishesEarlierRun"], true);
                assert_eq!(last["intentLine"], killed[0].0);
                assert_eq!(last["intentAtNs"], killed[0].1["atNs"]);
                assert_eq!(last["slots"].as_array(), Some(&named));
                // Every slot it named refers to an id it marked lost: it cleared them all.
                assert_eq!(last["cleared"].as_array(), Some(&named), "{point}");
                assert_eq!(last["notChanged"], serde_json::json!([]), "{point}");
                // Finished: a further run finds nothing to finish and writes nothing.
                let before = state_bytes(work.path());
                let third = repair(work.path(), &opts()).unwrap();
                assert!(third.clean && !third.changed && third.finishes_earlier_run.is_none(), "{point}: {third:?}");
                assert_eq!(before, state_bytes(work.path()));
            }
        }
    }
    scenario.teardown();
}
