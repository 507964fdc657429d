//! Crash points and injected faults at named steps of multi-step operations
//! (`failpoint!` in the core, compiled in with the `failpoints` feature).
//!
//! * A process killed (SIGKILL) between a slot's compare-and-swap and the
//!   update of the shared counters, while another controller stays open: the
//!   survivor's counters never leave 0 ..= the slot count and are repaired
//!   without an exclusive bootstrap; a writer merely stopped at that point is
//!   never taken for a dead one.
//! * Ledger growth that fails part way (the file extended, then a full disk),
//!   with and without the length given back.
//! * A failed `fdatasync` of an append, and a failed directory fsync when the
//!   sync mode creates the state directory, `audit.log` or an artifact
//!   directory.
//!
//! Failpoints are per process: each test takes `FailScenario` (one at a
//! time), and the processes it kills are this test binary run again in the
//! role `child_process_role`, configured through environment variables.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use fail::FailScenario;
use window_space_core::{
    Config, Controller, Durability, ErrorCode, FillPayload, PayloadInput, SlotAddr, SlotKind, SlotMetric, SlotStatus, StoreKind,
    WindowSpace,
};

const WINDOWS: u32 = 2000;
const CHILD: &str = "WS_CRASH_CHILD";

fn config(dir: &Path) -> Config {
    Config::new(dir, WindowSpace::Uniform { origin_ns: 0, window_ns: 1_000_000_000, window_count: WINDOWS })
}

fn record(symbol: u32, w: u32, kind: SlotKind, checksum: u64) -> PayloadInput {
    PayloadInput { symbol_id: symbol, window_idx: w, slot_kind: kind, payload_type: 1, checksum, size: 1, uri: format!("artifacts/{w}") }
}

/// The shared counters equal an exact count, and every count lies in 0 ..= slots.
fn assert_counts_exact(c: &Controller, when: &str) {
    let metrics: Vec<SlotMetric> = c.slot_metrics();
    let total = u64::from(c.symbols().unwrap().len() as u32) * u64::from(WINDOWS);
    for m in &metrics {
        assert!(m.counts.iter().all(|&n| n <= total), "{when}: {m:?} has a count outside 0..={total}");
    }
    assert_eq!(metrics, c.recount().unwrap(), "{when}: the shared counters differ from an exact count");
}

// ---- the child process --------------------------------------------------------

/// Runs in a child process (this test binary, with `WS_CRASH_CHILD` set): opens
/// the directory, does one transition and stops at `controller::before-count`,
/// printing `AT-POINT`. It waits there until the file named by `WS_RESUME`
/// exists (or forever), then finishes the transition and closes.
#[test]
fn child_process_role() {
    let Ok(op) = std::env::var(CHILD) else { return };
    let var = |k: &str| std::env::var(k).unwrap();
    let num = |k: &str| var(k).parse::<u64>().unwrap();
    let scenario = FailScenario::setup();
    let resume = std::env::var("WS_RESUME").ok();
    fail::cfg_callback("controller::before-count", move || {
        println!("AT-POINT");
        std::io::stdout().flush().unwrap();
        loop {
            if resume.as_deref().is_some_and(|r| Path::new(r).exists()) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    })
    .unwrap();
    let (c, _) = Controller::bootstrap(config(Path::new(&var("WS_DIR")))).unwrap();
    let at = SlotAddr::new(num("WS_SYMBOL") as u32, num("WS_WINDOW") as u32, SlotKind::OptionTrade);
    let version = num("WS_VERSION") as u32;
    match op.as_str() {
        "claim" => drop(c.claim(at, Some(1)).unwrap()),
        "fill" => drop(c.fill(at, version, FillPayload { payload_type: 1, payload_id: num("WS_PAYLOAD"), checksum: 7 }).unwrap()),
        "clear" => drop(c.clear(at, version).unwrap()),
        "forceClear" => drop(c.force_clear(at, &Default::default()).unwrap()),
        "retire" => drop(c.retire(at, &Default::default()).unwrap()),
        other => panic!("unknown child op {other}"),
    }
    println!("DONE");
    drop(c);
    scenario.teardown();
}

/// A child process and what it prints after the point.
struct AtPoint {
    child: Child,
    rest: std::thread::JoinHandle<String>,
}

/// Starts a child that does `op` on (symbol, window) and returns once it
/// stands at `controller::before-count`.
fn child_at_count(dir: &Path, op: &str, symbol: u32, window: u32, version: u32, payload: u64, resume: Option<&Path>) -> AtPoint {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_process_role", "--nocapture", "--test-threads=1"])
        .env(CHILD, op)
        .env("WS_DIR", dir)
        .env("WS_SYMBOL", symbol.to_string())
        .env("WS_WINDOW", window.to_string())
        .env("WS_VERSION", version.to_string())
        .env("WS_PAYLOAD", payload.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(r) = resume {
        cmd.env("WS_RESUME", r);
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        if line.contains("AT-POINT") {
            // Keep reading, so that the child can go on printing.
            let rest = std::thread::spawn(move || std::io::read_to_string(out).unwrap_or_default());
            return AtPoint { child, rest };
        }
        line.clear();
    }
    panic!("child {op} ended before reaching controller::before-count: {:?}", child.wait());
}

fn kill(mut p: AtPoint) {
    p.child.kill().unwrap(); // SIGKILL
    p.child.wait().unwrap();
    let _ = p.rest.join();
}

// ---- counters after a death between a transition and its counter update -------

#[test]
fn a_process_killed_between_a_transition_and_its_counter_update_leaves_no_drift() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = Controller::bootstrap(config(dir.path())).unwrap();
    let s = a.resolve_symbol("DIE").unwrap();
    let at = |w| SlotAddr::new(s, w, SlotKind::OptionTrade);
    let fill_claim = a.claim(at(1), None).unwrap().version;
    let clear_claim = a.claim(at(2), None).unwrap().version;
    let g = a.claim(at(3), None).unwrap();
    let id = a.append_payload(StoreKind::Trades, record(s, 3, SlotKind::OptionTrade, 3)).unwrap();
    a.fill(at(3), g.version, FillPayload { payload_type: 1, payload_id: id, checksum: 3 }).unwrap();
    let fill_id = a.append_payload(StoreKind::Trades, record(s, 1, SlotKind::OptionTrade, 7)).unwrap();
    assert_counts_exact(&a, "before any death");

    for (op, window, version, payload) in
        [("claim", 0, 0, 0), ("fill", 1, fill_claim, fill_id), ("clear", 2, clear_claim, 0), ("forceClear", 3, 0, 0), ("retire", 4, 0, 0)]
    {
        kill(child_at_count(dir.path(), op, s, window, version, payload, None));
        assert_counts_exact(&a, &format!("after a process died in {op}"));
    }
    // The dead claim (lease 1 ms) is taken over and filled: on drifted
    // counters this would move Pending below zero.
    let taken = loop {
        match a.claim(at(0), Some(60_000)) {
            Ok(g) => break g,
            Err(e) => assert_eq!(e.code(), ErrorCode::SlotBusy),
        }
    };
    assert_eq!(taken.previous, SlotStatus::Pending);
    let id = a.append_payload(StoreKind::Trades, record(s, 0, SlotKind::OptionTrade, 9)).unwrap();
    a.fill(at(0), taken.version, FillPayload { payload_type: 1, payload_id: id, checksum: 9 }).unwrap();
    assert_counts_exact(&a, "after the takeover and fill");
    let records = std::fs::read_dir(dir.path().join("presence")).unwrap().count();
    assert_eq!(records, 1, "the dead controllers' presence records are gone, the survivor's is there");
    drop(a);
    let (b, report) = Controller::bootstrap(config(dir.path())).unwrap();
    assert!(report.exclusive);
    assert_counts_exact(&b, "after a fresh bootstrap");
    scenario.teardown();
}

#[test]
fn a_writer_stopped_between_a_transition_and_its_counter_update_is_not_taken_for_dead() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = Controller::bootstrap(config(dir.path())).unwrap();
    let s = a.resolve_symbol("STOP").unwrap();
    // One writer stops at the point and stays alive; another dies there.
    let resume = dir.path().join("resume");
    let stopped = child_at_count(dir.path(), "claim", s, 10, 0, 0, Some(&resume));
    kill(child_at_count(dir.path(), "claim", s, 11, 0, 0, None));
    // A repair now would count the stopped writer's claim, which it has yet
    // to count itself: it must wait until no transition is under way.
    for _ in 0..3 {
        let pending = a.slot_metrics().iter().find(|m| m.kind == SlotKind::OptionTrade).unwrap().counts[SlotStatus::Pending as usize];
        assert!(pending <= 1, "the stopped writer's claim was counted before it counted it: {pending}");
    }
    std::fs::write(&resume, b"").unwrap();
    let AtPoint { mut child, rest } = stopped;
    assert!(child.wait().unwrap().success());
    assert!(rest.join().unwrap().contains("DONE"), "the stopped writer finished its claim");
    // Tries after failed ones are spaced out by calls; a few hundred calls cover the longest gap.
    let mut exact = false;
    for _ in 0..200 {
        if a.slot_metrics() == a.recount().unwrap() {
            exact = true;
            break;
        }
    }
    assert!(exact, "the counters were not repaired once the stopped writer finished");
    assert_counts_exact(&a, "after the stopped writer finished and the dead one was repaired");
    scenario.teardown();
}

// ---- ledger growth that fails part way -------------------------------------------

/// Claims windows 0, rpc, 2 rpc, ... (one new chunk each) until a claim fails; returns its error code.
fn grow_until_error(c: &Controller, s: u32, from_chunk: u32, chunks: u32) -> Option<ErrorCode> {
    let rpc = c.ledger_of(window_space_core::LedgerKind::Trade).geometry().rows_per_chunk;
    for k in from_chunk..from_chunk + chunks {
        if let Err(e) = c.claim(SlotAddr::new(s, k * rpc, SlotKind::OptionTrade), None) {
            return Some(e.code());
        }
    }
    None
}

#[test]
fn a_growth_that_fails_part_way_gives_the_file_length_back() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = Controller::bootstrap(config(dir.path())).unwrap();
    let s = c.resolve_symbol("GROW").unwrap();
    assert_eq!(grow_until_error(&c, s, 0, 8), None); // the first growth makes room for 8 chunks
    let path = dir.path().join("trade-ledger.dat");
    let len = std::fs::metadata(&path).unwrap().len();
    fail::cfg("ledger.grow.extend", "return(short:3072)").unwrap();
    assert_eq!(grow_until_error(&c, s, 8, 1), Some(ErrorCode::DiskFull));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len, "the failed growth left the file longer");
    fail::remove("ledger.grow.extend");
    assert_eq!(grow_until_error(&c, s, 8, 4), None, "growth goes on once there is space");
    drop(c);
    let (c, _) = Controller::bootstrap(config(dir.path())).unwrap();
    assert_counts_exact(&c, "after the reopen");
    scenario.teardown();
}

#[test]
fn a_file_left_extended_part_way_opens_and_grows_and_no_chunk_straddles_two_mappings() {
    for partial in [3072u64, 8192, 12288 + 1024] {
        let scenario = FailScenario::setup();
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = Controller::bootstrap(config(dir.path())).unwrap();
        let s = a.resolve_symbol("GROW").unwrap();
        assert_eq!(grow_until_error(&a, s, 0, 8), None);
        let path = dir.path().join("trade-ledger.dat");
        let len = std::fs::metadata(&path).unwrap().len();
        fail::cfg("ledger.grow.extend", &format!("return(short:{partial})")).unwrap();
        fail::cfg("ledger.grow.restore", "return(eio)").unwrap();
        assert_eq!(grow_until_error(&a, s, 8, 1), Some(ErrorCode::DiskFull));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len + partial);
        fail::remove("ledger.grow.extend");
        fail::remove("ledger.grow.restore");
        // A controller opened now maps the file as it is, cut mid-chunk.
        let (b, _) = Controller::bootstrap(config(dir.path())).unwrap_or_else(|e| panic!("{partial} bytes past the last chunk: {e}"));
        // The other one grows the file past the partial chunk and uses it...
        assert_eq!(grow_until_error(&a, s, 8, 3), None);
        // ...and the one that mapped the cut file reads and writes those chunks too.
        let rpc = b.ledger_of(window_space_core::LedgerKind::Trade).geometry().rows_per_chunk;
        for k in 8..11 {
            let at = SlotAddr::new(s, k * rpc, SlotKind::OptionTrade);
            assert_eq!(b.read_slot(at).unwrap_or_else(|e| panic!("{partial}: chunk {k}: {e}")).status, SlotStatus::Pending);
            b.claim(SlotAddr::new(s, k * rpc + 1, SlotKind::OptionTrade), None).unwrap();
        }
        assert_counts_exact(&b, "after growth past a partial chunk");
        drop((a, b));
        let (c, _) = Controller::bootstrap(config(dir.path())).unwrap();
        assert_counts_exact(&c, "after the reopen");
        scenario.teardown();
    }
}

// ---- a failed fdatasync of an append ------------------------------------------------

#[test]
fn an_append_whose_fdatasync_fails_leaves_no_record_and_its_id_goes_to_the_next_append() {
    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.durability = Durability::Sync;
    let (c, _) = Controller::bootstrap(cfg).unwrap();
    let s = c.resolve_symbol("SYNC").unwrap();
    assert_eq!(c.append_payload(StoreKind::Trades, record(s, 0, SlotKind::OptionTrade, 1)).unwrap(), 0);
    // A reader in another controller indexes the record while its append waits for the sync.
    let (reader, _) = Controller::bootstrap(config(dir.path())).unwrap();
    let reader = std::sync::Arc::new(reader);
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let (reader, seen) = (reader.clone(), seen.clone());
        fail::cfg_callback("payload::append-written", move || {
            seen.store(reader.store(StoreKind::Trades).len().unwrap(), std::sync::atomic::Ordering::SeqCst);
        })
        .unwrap();
    }
    fail::cfg("payload.append.sync", "return(eio)").unwrap();
    let mut failing = record(s, 1, SlotKind::OptionTrade, 2);
    failing.uri = "artifacts/a-longer-uri-than-the-next-record-has".into();
    let err = c.append_payload(StoreKind::Trades, failing).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Io);
    assert!(err.to_string().contains("fdatasync"), "{err}");
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2, "the reader saw the record before it was cut");
    fail::remove("payload.append.sync");
    fail::remove("payload::append-written");
    assert_eq!(c.store(StoreKind::Trades).len().unwrap(), 1, "the failed record does not count");
    assert_eq!(c.append_payload(StoreKind::Trades, record(s, 1, SlotKind::OptionTrade, 3)).unwrap(), 1);
    assert_eq!(c.append_payload(StoreKind::Trades, record(s, 2, SlotKind::OptionTrade, 4)).unwrap(), 2);
    // The reader that indexed the cut record reads the records that replaced it.
    let store = reader.store(StoreKind::Trades);
    assert_eq!(store.len().unwrap(), 3);
    assert_eq!(store.get(1).unwrap().unwrap().checksum, 3);
    assert_eq!(store.get(2).unwrap().unwrap().checksum, 4);
    drop((c, reader));
    let (c, report) = Controller::bootstrap(config(dir.path())).unwrap();
    let trades = report.stores.iter().find(|r| r.store == StoreKind::Trades).unwrap();
    assert_eq!((trades.records, trades.torn_tail_bytes), (3, 0));
    assert_eq!(c.store(StoreKind::Trades).get(1).unwrap().unwrap().checksum, 3);
    scenario.teardown();
}

// ---- directory fsyncs in the sync mode ------------------------------------------------

/// Makes the directory fsync at `site` fail for `dir` (only).
fn fail_fsync_of(site: &str, dir: &Path) {
    fail::cfg(site, &format!("return(eio@{})", dir.display())).unwrap();
}

#[test]
fn the_sync_mode_fsyncs_the_parent_of_each_directory_and_file_it_creates() {
    let scenario = FailScenario::setup();
    let root = tempfile::tempdir().unwrap();

    // The state directory (and a missing parent of it) are created durably.
    let state = root.path().join("new-parent").join("state");
    fail_fsync_of("statedir.mkdir", &root.path().join("new-parent"));
    let mut cfg = config(&state);
    cfg.durability = Durability::Sync;
    let err = Controller::bootstrap(cfg.clone()).err().expect("a failed fsync of the new directory's parent fails the bootstrap");
    assert_eq!(err.code(), ErrorCode::Io);
    fail::remove("statedir.mkdir");
    let (c, _) = Controller::bootstrap(cfg).unwrap();
    let s = c.resolve_symbol("DIR").unwrap();

    // audit.log, when the first admin call creates it.
    fail_fsync_of("audit.open.dir", &state);
    let err = c.retire(SlotAddr::new(s, 0, SlotKind::Greeks), &Default::default()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Io, "{err}");
    fail::remove("audit.open.dir");
    c.retire(SlotAddr::new(s, 1, SlotKind::Greeks), &Default::default()).unwrap();

    // artifacts/ and each new directory under it.
    fail_fsync_of("artifact.mkdir", &state);
    assert_eq!(c.write_artifact("a/b/x.bin", b"x").unwrap_err().code(), ErrorCode::Io);
    fail_fsync_of("artifact.mkdir", &state.join("artifacts"));
    assert_eq!(c.write_artifact("a/b/x.bin", b"x").unwrap_err().code(), ErrorCode::Io);
    fail_fsync_of("artifact.mkdir", &state.join("artifacts").join("a"));
    assert_eq!(c.write_artifact("a/b/x.bin", b"x").unwrap_err().code(), ErrorCode::Io);
    fail::remove("artifact.mkdir");
    assert_eq!(c.write_artifact("a/b/x.bin", b"x").unwrap().uri, "artifacts/a/b/x.bin");
    scenario.teardown();
}
