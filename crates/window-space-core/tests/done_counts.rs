//! The chunks' done counts (`ledger.rs`: per chunk and column, the slots
//! that are Filled or Retired) behind `next_unfilled_window`: kept exact by
//! every transition into and out of Filled and Retired, also with threads
//! racing; never above the slots they count when a process is killed
//! (SIGKILL) between a transition and its count, and made exact again by a
//! bootstrap that finds no other controller open; a count above its slots
//! (damage) is reported by `verify` and set right by such a bootstrap.
//!
//! The killed process is this test binary run again in the role
//! `done_count_child_role`, stopped at the named failpoint.

mod support;

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use fail::FailScenario;
use window_space_core::audit::AuditContext;
use window_space_core::ops::verify::{verify, VerifyOptions};
use window_space_core::{
    Config, Controller, FillPayload, LedgerKind, PayloadInput, SlotAddr, SlotKind, SlotStatus, StoreKind, WindowSpace,
};

const WINDOWS: u32 = 1000;
/// Rows of a trade chunk.
const RPC: u32 = 146;
const CHILD: &str = "WS_DONE_COUNT_CHILD";

/// Held by each test for its whole run: a test that spawns a child forks
/// this process, and a forked child holds, until it execs, every open file
/// description of the parent — including the presence lock of a directory
/// another test has just closed, which would make that test's next
/// bootstrap find "another controller open". The library assumes no fork
/// while a controller is open (docs/design.md, section 7); the tests keep
/// to it by not overlapping.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}
const KIND: SlotKind = SlotKind::OptionTrade;

fn config(dir: &Path) -> Config {
    Config::new(dir, WindowSpace::Uniform { origin_ns: 0, window_ns: 1_000_000_000, window_count: WINDOWS })
}

fn fill(c: &Controller, symbol: u32, w: u32) {
    let at = SlotAddr::new(symbol, w, KIND);
    let g = c.claim(at, Some(600_000)).unwrap();
    let rec =
        PayloadInput { symbol_id: symbol, window_idx: w, slot_kind: KIND, payload_type: 1, checksum: 5, size: 1, uri: format!("a/{w}") };
    let id = c.append_payload(StoreKind::Trades, rec).unwrap();
    c.fill(at, g.version, FillPayload { payload_type: 1, payload_id: id, checksum: 5 }).unwrap();
}

fn done(c: &Controller, symbol: u32, w: u32) -> i32 {
    c.ledger_of(LedgerKind::Trade).done_count_of(symbol, w, KIND.column()).unwrap().expect("the chunk exists")
}

/// Filled or Retired slots of the chunk holding `w`, read one by one.
fn truth(c: &Controller, symbol: u32, w: u32) -> i32 {
    let first = w / RPC * RPC;
    (first..first + RPC)
        .filter(|&w| matches!(c.read_slot(SlotAddr::new(symbol, w, KIND)).unwrap().status, SlotStatus::Filled | SlotStatus::Retired))
        .count() as i32
}

/// The first window at or after `start` that is neither Filled nor Retired, read slot by slot.
fn first_not_done(c: &Controller, symbol: u32, start: u32) -> Option<u32> {
    (start..WINDOWS)
        .find(|&w| !matches!(c.read_slot(SlotAddr::new(symbol, w, KIND)).unwrap().status, SlotStatus::Filled | SlotStatus::Retired))
}

#[test]
fn every_transition_keeps_the_counts_exact_and_the_search_skips_done_chunks() {
    let _serial = serial();
    let d = support::scratch_dir();
    let (c, _) = Controller::bootstrap(config(d.path())).unwrap();
    let spy = c.resolve_symbol("SPY").unwrap();
    for w in 0..300 {
        fill(&c, spy, w);
    }
    assert_eq!((done(&c, spy, 0), done(&c, spy, RPC), done(&c, spy, 2 * RPC)), (146, 146, 8));
    assert_eq!(c.next_unfilled_window(spy, 0, KIND).unwrap(), Some(300));
    assert_eq!(c.next_unfilled_window(spy, 150, KIND).unwrap(), Some(300));
    let ctx = AuditContext::default();
    c.force_clear(SlotAddr::new(spy, 5, KIND), &ctx).unwrap();
    assert_eq!(done(&c, spy, 0), 145, "a force-clear of a Filled slot lowers the count");
    assert_eq!(c.next_unfilled_window(spy, 0, KIND).unwrap(), Some(5));
    c.retire(SlotAddr::new(spy, 5, KIND), &ctx).unwrap();
    assert_eq!(done(&c, spy, 0), 146, "a retire of a Cleared slot raises it");
    c.retire(SlotAddr::new(spy, 10, KIND), &ctx).unwrap();
    assert_eq!(done(&c, spy, 0), 146, "a retire of a Filled slot leaves it");
    assert_eq!(c.next_unfilled_window(spy, 0, KIND).unwrap(), Some(300));
    let g = c.claim(SlotAddr::new(spy, 300, KIND), Some(600_000)).unwrap();
    assert_eq!(done(&c, spy, 300), 8, "a claim leaves it");
    assert_eq!(c.next_unfilled_window(spy, 0, KIND).unwrap(), Some(300), "a Pending slot is not filled");
    c.clear(SlotAddr::new(spy, 300, KIND), g.version).unwrap();
    c.force_clear(SlotAddr::new(spy, 299, KIND), &ctx).unwrap();
    assert_eq!(done(&c, spy, 299), 7);
    c.retire(SlotAddr::new(spy, 500, KIND), &ctx).unwrap();
    assert_eq!(done(&c, spy, 500), 1, "a retire of an Empty slot (in a new chunk) raises it");
    for w in [0, RPC, 2 * RPC] {
        assert_eq!(done(&c, spy, w), truth(&c, spy, w), "window {w}");
    }
    drop(c);
    let (c, _) = Controller::bootstrap(config(d.path())).unwrap();
    assert_eq!((done(&c, spy, 0), done(&c, spy, RPC), done(&c, spy, 2 * RPC)), (146, 146, 7));
    assert_eq!(c.next_unfilled_window(spy, 0, KIND).unwrap(), first_not_done(&c, spy, 0));
}

#[test]
fn threads_racing_every_transition_leave_each_count_equal_to_its_slots() {
    let _serial = serial();
    let d = support::scratch_dir();
    let (c, _) = Controller::bootstrap(config(d.path())).unwrap();
    let spy = c.resolve_symbol("SPY").unwrap();
    let ctx = AuditContext::default();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (c, ctx) = (&c, &ctx);
            s.spawn(move || {
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (t + 1);
                let mut next = || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                for _ in 0..20_000 {
                    let w = (next() % u64::from(2 * RPC)) as u32;
                    let at = SlotAddr::new(spy, w, KIND);
                    match next() % 100 {
                        0..=59 => {
                            if let Ok(g) = c.claim(at, Some(1)) {
                                let rec = PayloadInput {
                                    symbol_id: spy,
                                    window_idx: w,
                                    slot_kind: KIND,
                                    payload_type: 1,
                                    checksum: 5,
                                    size: 1,
                                    uri: "a/x".into(),
                                };
                                let id = c.append_payload(StoreKind::Trades, rec).unwrap();
                                let _ = c.fill(at, g.version, FillPayload { payload_type: 1, payload_id: id, checksum: 5 });
                            }
                        }
                        60..=89 => {
                            let _ = c.force_clear(at, ctx);
                        }
                        90..=98 => {
                            if let Ok(g) = c.claim(at, Some(1)) {
                                let _ = c.clear(at, g.version);
                            }
                        }
                        _ => {
                            let _ = c.retire(at, ctx);
                        }
                    }
                }
            });
        }
    });
    for w in [0, RPC] {
        let t = truth(&c, spy, w);
        assert!(t > 0, "the race filled or retired slots of the chunk at {w}");
        assert_eq!(done(&c, spy, w), t, "chunk at window {w}");
    }
    assert_eq!(c.next_unfilled_window(spy, 0, KIND).unwrap(), first_not_done(&c, spy, 0));
}

#[test]
fn a_count_above_its_slots_is_reported_by_verify_and_set_right_by_a_lone_bootstrap() {
    let _serial = serial();
    let d = support::scratch_dir();
    {
        let (c, _) = Controller::bootstrap(config(d.path())).unwrap();
        let spy = c.resolve_symbol("SPY").unwrap();
        for w in (0..RPC).filter(|w| *w != 7) {
            fill(&c, spy, w);
        }
        assert_eq!(done(&c, spy, 0), 145);
    }
    // Damage: the count says all 146 slots are done (the first chunk of the file).
    let f = std::fs::OpenOptions::new().write(true).open(d.path().join("trade-ledger.dat")).unwrap();
    f.write_all_at(&146i32.to_le_bytes(), 4096 + 24 + 4 * KIND.column() as u64).unwrap();
    let report = verify(d.path(), VerifyOptions::default(), &mut |_, _, _| {}).unwrap();
    assert!(!report.ok, "verify reports a count above its slots");
    assert!(report.problems.iter().any(|p| serde_json::to_string(p).unwrap().contains("done count")), "{:?}", report.problems);
    let (c, _) = Controller::bootstrap(config(d.path())).unwrap();
    assert_eq!(done(&c, 0, 0), 145, "a bootstrap alone stores the exact count");
    assert_eq!(c.next_unfilled_window(0, 0, KIND).unwrap(), Some(7));
    drop(c);
    assert!(verify(d.path(), VerifyOptions::default(), &mut |_, _, _| {}).unwrap().ok);
}

/// Runs in a child process: opens `WS_DIR` (another controller has it open)
/// and fills window 0 (`WS_OP=fill`) or force-clears it (`WS_OP=force-clear`),
/// stopping for good at the failpoint `WS_DONE_COUNT_CHILD` (printing
/// `AT-POINT`), to be killed there.
#[test]
fn done_count_child_role() {
    let Ok(point) = std::env::var(CHILD) else { return };
    let scenario = FailScenario::setup();
    let dir = std::env::var("WS_DIR").unwrap();
    let (c, _) = Controller::bootstrap(config(Path::new(&dir))).unwrap();
    fail::cfg_callback(&point, || {
        println!("AT-POINT");
        std::io::stdout().flush().unwrap();
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    })
    .unwrap();
    match std::env::var("WS_OP").unwrap().as_str() {
        "fill" => fill(&c, 0, 0),
        _ => {
            c.force_clear(SlotAddr::new(0, 0, KIND), &AuditContext::default()).unwrap();
        }
    }
    println!("ENDED");
    scenario.teardown();
}

fn kill_child_at(dir: &Path, point: &str, op: &str) {
    support::kill_role_at_point(
        "done_count_child_role",
        &[(CHILD, point.to_string()), ("WS_OP", op.to_string()), ("WS_DIR", dir.display().to_string())],
    );
}

#[test]
fn a_process_killed_between_a_transition_and_its_count_leaves_it_low_until_a_lone_bootstrap() {
    let _serial = serial();
    // (point, the child's transition of window 0, windows filled before it)
    let cases = [("slot::filled-uncounted", "fill", 1..RPC), ("slot::done-lowered", "force-clear", 0..RPC)];
    for (point, op, before) in cases {
        let d = support::scratch_dir();
        let (c, _) = Controller::bootstrap(config(d.path())).unwrap();
        let spy = c.resolve_symbol("SPY").unwrap();
        for w in before {
            fill(&c, spy, w);
        }
        kill_child_at(d.path(), point, op);
        let t = truth(&c, spy, 0);
        assert_eq!(t, 146, "{point}: the child's fill was made, or its force-clear not yet");
        assert_eq!(done(&c, spy, 0), 145, "{point}: the count is low by the killed transition");
        assert_eq!(c.next_unfilled_window(spy, 0, KIND).unwrap(), Some(RPC), "{point}: a low count only costs a scan");
        drop(c);
        let (c, _) = Controller::bootstrap(config(d.path())).unwrap();
        assert_eq!(done(&c, spy, 0), 146, "{point}: a bootstrap alone stores the exact count");
        assert_eq!(c.next_unfilled_window(spy, 0, KIND).unwrap(), Some(RPC));
    }
}
