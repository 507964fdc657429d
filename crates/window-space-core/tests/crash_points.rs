//! Crash points: every named step of every multi-step operation of the core
//! (`failpoint!`, listed in `failpoints::POINTS` and in the crash-point
//! table of docs/reliability.md), each driven from a test.
//!
//! A test starts a child process (this test binary run again in the role
//! `child_process_role`) with `WINDOW_SPACE_FAILPOINTS="<point>=stop"`: the
//! child arms the point, does its steps, and sends itself SIGSTOP there. The
//! test waits until /proc says the child is stopped, then either
//!
//! * kills it (SIGKILL) and checks every invariant from a controller that
//!   stayed open, and after fresh bootstraps (`World::check`,
//!   `World::reopen_alone`): nothing acknowledged is lost, the counters stay
//!   within bounds and are repaired, no Filled slot refers to a missing
//!   record (`verify` finds no problem), the journal holds an entry or a gap
//!   for every slot that changed, the directory opens, and the next run
//!   finishes what the killed one left; or
//! * keeps it stopped while the others work — nothing that does not need
//!   the very lock it holds waits for it, and what does goes on once it
//!   continues — then continues it (SIGCONT): it finishes correctly.
//!
//! The operators' tools (gc, force-clear and retire through the command
//! line) and the journal's steps are driven the same way from Node
//! (`__test__/crash-points-operators.test.ts`,
//! `__test__/journal-stalled-writer.test.ts`).
//!
//! Disk faults injected into the test's own process at I/O sites of
//! `io.rs` (`ledger.grow.extend`, `ledger.grow.restore`,
//! `payload.append.sync`, `statedir.mkdir`, ...) are armed with the `fail`
//! crate directly. Every test takes `FailScenario`, so
//! they run one at a time. The last test checks that every point has its
//! row in the table of docs/reliability.md and that the test file a row
//! names drives that point.
//!
//! Sections: the child process and its driver; invariants; transitions and
//! counters; payload appends; ledger growth; symbols; atomic rewrites of
//! artifacts; schedule roll-forward; bootstrap's repairs; the counter repair;
//! injected faults; the table of points.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fail::FailScenario;
use serde_json::{json, Value};
use window_space_core::journal::{JournalRead, ReadEnd};
use window_space_core::ops::gc::{gc, FileClass, GcOptions};
use window_space_core::ops::verify::{verify, VerifyOptions};
use window_space_core::{
    Config, Controller, Durability, ErrorCode, FillItem, FillPayload, LedgerKind, PayloadInput, SlotAddr, SlotKind, SlotMetric,
    SlotSnapshot, SlotStatus, StorageReport, StoreKind, WindowSpace,
};

const WINDOWS: u32 = 2000;
const CHILD: &str = "WS_CRASH_CHILD";
const SYMBOL: &str = "CRASH";

fn config(dir: &Path) -> Config {
    Config::new(dir, WindowSpace::Uniform { origin_ns: 0, window_ns: 1_000_000_000, window_count: WINDOWS })
}

fn record(symbol: u32, w: u32, kind: SlotKind, checksum: u64) -> PayloadInput {
    PayloadInput { symbol_id: symbol, window_idx: w, slot_kind: kind, payload_type: 1, checksum, size: 1, uri: format!("artifacts/{w}") }
}

fn at(symbol: u32, window: u32) -> SlotAddr {
    SlotAddr::new(symbol, window, SlotKind::OptionTrade)
}

/// Rows per chunk of the trade ledger.
fn rpc(c: &Controller) -> u32 {
    c.ledger_of(LedgerKind::Trade).geometry().rows_per_chunk
}

// ---- the child process ----------------------------------------------------------------

/// Runs in a child process (this test binary, with `WS_CRASH_CHILD` set to
/// its steps as JSON): arms the points `WINDOW_SPACE_FAILPOINTS` names, opens
/// the directory `WS_DIR` (its schedule has `WS_WINDOWS` windows, the sync
/// mode with `WS_SYNC`), does its steps in order and prints `ACK <json>`
/// after each one that returned, then `DONE`.
///
/// Steps: `claim` (symbol, window, kind, lease ms), `fill` (payload: the
/// id of the last `append` unless given), `claimBatch` (symbol, window: the
/// first, n, kind, lease ms), `fillBatch` (symbol, kind, items: `[{window,
/// version, payload}]`), `clear`, `forceClear`, `retire`,
/// `append` (symbol, window, checksum: one trades record), `resolve`
/// (symbol name), `metrics`, `artifact` (rel, text).
#[test]
fn child_process_role() {
    let Ok(steps) = std::env::var(CHILD) else { return };
    window_space_core::failpoints::arm_from_env().expect("WINDOW_SPACE_FAILPOINTS names points of the core");
    let steps: Vec<Value> = serde_json::from_str(&steps).unwrap();
    let dir = PathBuf::from(std::env::var("WS_DIR").unwrap());
    let windows = std::env::var("WS_WINDOWS").map_or(WINDOWS, |w| w.parse().unwrap());
    let mut cfg = Config::new(&dir, WindowSpace::Uniform { origin_ns: 0, window_ns: 1_000_000_000, window_count: windows });
    if std::env::var("WS_SYNC").is_ok() {
        cfg.durability = Durability::Sync;
    }
    let ack = |v: Value| {
        println!("ACK {v}");
        std::io::stdout().flush().unwrap();
    };
    let (c, report) = Controller::bootstrap(cfg).unwrap();
    let torn: u64 = report.stores.iter().map(|s| s.torn_tail_bytes).sum();
    ack(json!({ "t": "open", "exclusive": report.exclusive, "created": report.created, "windows": report.window_count, "torn": torn }));
    let mut last_id = None;
    for s in steps {
        let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("step {s} needs {k}"));
        let kind = s["kind"].as_str().map_or(SlotKind::OptionTrade, |k| SlotKind::from_name(k).unwrap());
        let addr = || SlotAddr::new(n("symbol") as u32, n("window") as u32, kind);
        let t = s["t"].as_str().unwrap();
        let slot = |version: u32| json!({ "t": t, "symbol": n("symbol"), "window": n("window"), "kind": kind.name(), "version": version });
        match t {
            "claim" => ack(slot(c.claim(addr(), s["lease"].as_u64()).unwrap().version)),
            "fill" => {
                let payload_id = s["payload"].as_u64().or(last_id).expect("a fill after an append");
                let checksum = s["checksum"].as_u64().unwrap_or(7);
                let t = c.fill(addr(), n("version") as u32, FillPayload { payload_type: 1, payload_id, checksum }).unwrap();
                ack(slot(t.version));
            }
            "claimBatch" => {
                let got = c.claim_next_unfilled(addr(), n("n") as u32, s["lease"].as_u64()).unwrap();
                for (window, g) in got {
                    ack(json!({ "t": "claim", "symbol": n("symbol"), "window": window, "kind": kind.name(), "version": g.version }));
                }
            }
            "fillBatch" => {
                let items: Vec<FillItem> = s["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|it| FillItem {
                        at: SlotAddr::new(n("symbol") as u32, it["window"].as_u64().unwrap() as u32, kind),
                        claim_version: it["version"].as_u64().unwrap() as u32,
                        payload: FillPayload { payload_type: 1, payload_id: it["payload"].as_u64().unwrap(), checksum: 7 },
                    })
                    .collect();
                let mut filled = Vec::new();
                c.fill_batch(items.len(), |i| Ok(items[i]), |i, outcome| filled.push((items[i].at.window, outcome.unwrap().version)))
                    .unwrap();
                for (window, version) in filled {
                    ack(json!({ "t": "fill", "symbol": n("symbol"), "window": window, "kind": kind.name(), "version": version }));
                }
            }
            "clear" => ack(slot(c.clear(addr(), n("version") as u32).unwrap().version)),
            "forceClear" => ack(slot(c.force_clear(addr(), &Default::default()).unwrap().version)),
            "retire" => ack(slot(c.retire(addr(), &Default::default()).unwrap().version)),
            "append" => {
                let checksum = n("checksum");
                let id = c.append_payload(StoreKind::Trades, record(n("symbol") as u32, n("window") as u32, kind, checksum)).unwrap();
                last_id = Some(id);
                ack(json!({ "t": t, "id": id, "checksum": checksum }));
            }
            "resolve" => {
                let name = s["symbol"].as_str().unwrap();
                ack(json!({ "t": t, "symbol": name, "id": c.resolve_symbol(name).unwrap() }));
            }
            "metrics" => {
                drop(c.slot_metrics());
                ack(json!({ "t": t }));
            }
            "artifact" => {
                let a = c.write_artifact(s["rel"].as_str().unwrap(), s["text"].as_str().unwrap().as_bytes()).unwrap();
                ack(json!({ "t": t, "uri": a.uri }));
            }
            other => panic!("unknown step {other}"),
        }
    }
    drop(c);
    println!("DONE");
}

/// How a child is started besides its steps and point.
#[derive(Default, Clone, Copy)]
struct ChildOpts {
    sync: bool,
    windows: Option<u32>,
}

/// A child process of this test binary; killed when dropped, if still there.
struct Proc {
    child: Option<Child>,
    out: Option<std::thread::JoinHandle<String>>,
    what: String,
}

/// Starts a child doing `steps` in `dir` with `WINDOW_SPACE_FAILPOINTS=spec` (none if empty).
fn start(dir: &Path, steps: Value, spec: &str, opts: ChildOpts) -> Proc {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_process_role", "--nocapture", "--test-threads=1"])
        .env(CHILD, steps.to_string())
        .env("WS_DIR", dir)
        .env_remove(window_space_core::failpoints::ENV)
        .env_remove("WS_SYNC")
        .env_remove("WS_WINDOWS")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if !spec.is_empty() {
        cmd.env(window_space_core::failpoints::ENV, spec);
    }
    if opts.sync {
        cmd.env("WS_SYNC", "1");
    }
    if let Some(w) = opts.windows {
        cmd.env("WS_WINDOWS", w.to_string());
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    Proc { child: Some(child), out: Some(out), what: format!("child {steps} with {spec:?}") }
}

/// The state letter of a process in /proc (`T`: stopped).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, sig).unwrap();
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits until the child has stopped itself at its point.
    fn stopped(mut self) -> Self {
        let started = Instant::now();
        loop {
            if process_state(self.pid()) == Some('T') {
                return self;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let out = self.out.take().unwrap().join().unwrap();
                panic!("{} ended ({status}) before its point:\n{out}", self.what);
            }
            // Backstop only: a child reaches its point within a second.
            assert!(started.elapsed() < Duration::from_secs(120), "{} never reached its point", self.what);
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// What the child acknowledged (`ACK` lines), once it has ended.
    fn acks(&mut self) -> (Vec<Value>, String) {
        let out = self.out.take().unwrap().join().unwrap();
        // The harness prints the test's name on the line the first ACK is printed on.
        let acks = out.lines().filter_map(|l| l.find("ACK ").map(|i| &l[i + 4..])).map(|l| serde_json::from_str(l).unwrap()).collect();
        (acks, out)
    }

    /// SIGKILL; returns what it acknowledged before.
    fn kill(mut self) -> Vec<Value> {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "{} was to die of SIGKILL: {status}", self.what);
        self.acks().0
    }

    /// SIGCONT; waits for it to finish its steps; returns what it acknowledged.
    fn resume(self) -> Vec<Value> {
        signal(self.pid(), rustix::process::Signal::CONT);
        self.finish()
    }

    /// Waits for a child that was not stopped to finish its steps.
    fn finish(mut self) -> Vec<Value> {
        let status = self.child.take().unwrap().wait().unwrap();
        let (acks, out) = self.acks();
        assert!(status.success() && out.contains("DONE"), "{} failed ({status}):\n{out}", self.what);
        acks
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs a child to the point `spec` stops it at, then kills it; returns its acknowledgements.
fn killed_at(dir: &Path, steps: Value, spec: &str, opts: ChildOpts) -> Vec<Value> {
    start(dir, steps, spec, opts).stopped().kill()
}

// ---- invariants ------------------------------------------------------------------------

/// What was acknowledged: records (store, id, checksum) and slots as a call left them.
#[derive(Default, Debug)]
struct Acked {
    records: Vec<(u64, u64)>,
    slots: HashMap<SlotAddr, (SlotStatus, u32)>,
}

impl Acked {
    fn add(&mut self, acks: &[Value]) {
        for a in acks {
            let status = match a["t"].as_str().unwrap() {
                "append" => {
                    self.records.push((a["id"].as_u64().unwrap(), a["checksum"].as_u64().unwrap()));
                    continue;
                }
                "claim" => SlotStatus::Pending,
                "fill" => SlotStatus::Filled,
                "clear" | "forceClear" => SlotStatus::Cleared,
                "retire" => SlotStatus::Retired,
                _ => continue,
            };
            let kind = SlotKind::from_name(a["kind"].as_str().unwrap()).unwrap();
            let addr = SlotAddr::new(a["symbol"].as_u64().unwrap() as u32, a["window"].as_u64().unwrap() as u32, kind);
            self.slots.insert(addr, (status, a["version"].as_u64().unwrap() as u32));
        }
    }
}

/// The shared counters become an exact count (a dead controller's drift is
/// repaired within a few calls when nothing else runs), every count in 0 ..= slots.
fn counts_repaired(c: &Controller, when: &str) {
    let total = c.symbols().unwrap().len() as u64 * u64::from(c.window_count());
    let exact = c.recount().unwrap();
    for _ in 0..200 {
        let m: Vec<SlotMetric> = c.slot_metrics();
        for s in &m {
            assert!(s.counts.iter().all(|&n| n <= total), "{when}: {s:?} has a count outside 0..={total}");
        }
        if m == exact {
            return;
        }
    }
    panic!("{when}: the shared counters were not repaired: {:?} against {exact:?}", c.slot_metrics());
}

/// The shared counters equal an exact count now, every count in 0 ..= slots.
fn assert_counts_exact(c: &Controller, when: &str) {
    let metrics: Vec<SlotMetric> = c.slot_metrics();
    let total = c.symbols().unwrap().len() as u64 * u64::from(c.window_count());
    for m in &metrics {
        assert!(m.counts.iter().all(|&n| n <= total), "{when}: {m:?} has a count outside 0..={total}");
    }
    assert_eq!(metrics, c.recount().unwrap(), "{when}: the shared counters differ from an exact count");
}

/// `verify` finds no problem: no Filled slot without its record, no damage, counters exact.
fn verified(dir: &Path, when: &str) {
    let r = verify(dir, VerifyOptions::default(), &mut |_, _, _| {}).unwrap();
    assert!(r.problems.is_empty(), "{when}: verify found {:#?}", r.problems);
}

/// A state directory with a survivor: a controller that stays open while
/// children are killed or stopped beside it.
struct World {
    dir: tempfile::TempDir,
    c: Controller,
    /// Id of the symbol `CRASH`.
    s: u32,
    /// Journal position from which `check` accounts for changes, and the
    /// slots it watches as they were then.
    mark: (u64, u64, Vec<(SlotAddr, SlotSnapshot)>),
}

impl World {
    fn new(sync: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        if sync {
            cfg.durability = Durability::Sync;
        }
        let (c, _) = Controller::bootstrap(cfg).unwrap();
        let s = c.resolve_symbol(SYMBOL).unwrap();
        Self::adopt(dir, c, s)
    }

    /// A world of a directory opened already; `s` is the id of `CRASH`.
    fn adopt(dir: tempfile::TempDir, c: Controller, s: u32) -> Self {
        let mut w = Self { dir, c, s, mark: (0, 0, Vec::new()) };
        w.watch(&[]);
        w
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// From now on, `check` wants a journal entry (or a gap) for every change of `slots`.
    fn watch(&mut self, slots: &[SlotAddr]) {
        let j = self.c.journal();
        self.mark = (j.epoch(), j.head(), slots.iter().map(|a| (*a, self.c.read_slot(*a).unwrap())).collect());
    }

    /// Every invariant, from the survivor and from a controller bootstrapped
    /// beside it: acknowledged records and slots are there, the counters are
    /// repaired, `verify` finds no problem, and the journal accounts for every
    /// change of the watched slots.
    fn check(&self, acked: &Acked, when: &str) {
        let c = &self.c;
        for &(id, checksum) in &acked.records {
            let r = c.store(StoreKind::Trades).get(id).unwrap().unwrap_or_else(|| panic!("{when}: acknowledged record {id} is gone"));
            assert_eq!(r.checksum, checksum, "{when}: record {id}");
        }
        for (addr, (status, version)) in &acked.slots {
            let s = c.read_slot(*addr).unwrap();
            assert_eq!((s.status, s.version), (*status, *version), "{when}: acknowledged transition of {addr:?}");
        }
        counts_repaired(c, when);
        verified(self.path(), when);
        self.journal_accounts(when);
        let (b, report) =
            Controller::bootstrap(config(self.path())).unwrap_or_else(|e| panic!("{when}: a bootstrap beside the survivor: {e}"));
        assert!(!report.exclusive);
        counts_repaired(&b, &format!("{when}, in a controller opened after"));
        for (addr, (status, version)) in &acked.slots {
            let s = b.read_slot(*addr).unwrap();
            assert_eq!((s.status, s.version), (*status, *version), "{when}: a new controller reads {addr:?}");
        }
    }

    /// The journal from the mark to its head: every entry committed or
    /// abandoned (its writer died), none in flight, and every change of a
    /// watched slot has its entry or an abandoned one stands for it.
    fn journal_accounts(&self, when: &str) {
        let (epoch, mut from, ref watched) = self.mark;
        let j = self.c.journal();
        let (mut changes, mut abandoned) = (Vec::new(), 0);
        loop {
            match j.read(epoch, from, 4096) {
                JournalRead::Entries { changes: ch, next, end } => {
                    changes.extend(ch);
                    match end {
                        ReadEnd::Read if next >= j.head() => break,
                        ReadEnd::Read => from = next,
                        ReadEnd::Abandoned => {
                            abandoned += 1;
                            from = next + 1;
                        }
                        ReadEnd::InFlight => panic!("{when}: journal entry {next} is in flight, but no writer is at work"),
                    }
                }
                JournalRead::Gap { resume_at, reason } => panic!("{when}: a journal gap ({reason:?}) at {from}, resume at {resume_at}"),
            }
        }
        for (addr, before) in watched {
            let now = self.c.read_slot(*addr).unwrap();
            if now.version == before.version {
                continue;
            }
            let journaled = changes.iter().any(|ch| {
                (ch.symbol, ch.window_idx, ch.kind, ch.version, ch.to) == (addr.symbol, addr.window, addr.kind, now.version, now.status)
            });
            assert!(journaled || abandoned > 0, "{when}: {addr:?} changed to {now:?}, and the journal has neither its entry nor a gap");
        }
    }

    /// Closes the survivor and opens the directory alone: it repairs what is
    /// left, its counters are exact and `verify` finds no problem.
    fn reopen_alone(self, when: &str) -> (tempfile::TempDir, Controller, StorageReport) {
        let Self { dir, c, .. } = self;
        drop(c);
        let (c, report) = Controller::bootstrap(config(dir.path())).unwrap_or_else(|e| panic!("{when}: the bootstrap alone: {e}"));
        assert!(report.exclusive, "{when}");
        assert_counts_exact(&c, &format!("{when}, after a bootstrap alone"));
        verified(dir.path(), &format!("{when}, after a bootstrap alone"));
        (dir, c, report)
    }
}

// ---- transitions and their counters ------------------------------------------------------

#[test]
fn a_process_killed_between_a_transition_and_its_counter_update_leaves_no_drift() {
    let scenario = FailScenario::setup();
    let mut w = World::new(false);
    let s = w.s;
    let a = &w.c;
    let fill_claim = a.claim(at(s, 1), None).unwrap().version;
    let clear_claim = a.claim(at(s, 2), None).unwrap().version;
    let g = a.claim(at(s, 3), None).unwrap();
    let id = a.append_payload(StoreKind::Trades, record(s, 3, SlotKind::OptionTrade, 3)).unwrap();
    a.fill(at(s, 3), g.version, FillPayload { payload_type: 1, payload_id: id, checksum: 3 }).unwrap();
    let fill_id = a.append_payload(StoreKind::Trades, record(s, 1, SlotKind::OptionTrade, 7)).unwrap();
    assert_counts_exact(a, "before any death");
    w.watch(&(0..5).map(|i| at(s, i)).collect::<Vec<_>>());

    let mut acked = Acked::default();
    for step in [
        json!({ "t": "claim", "symbol": s, "window": 0, "lease": 1 }),
        json!({ "t": "fill", "symbol": s, "window": 1, "version": fill_claim, "payload": fill_id }),
        json!({ "t": "clear", "symbol": s, "window": 2, "version": clear_claim }),
        json!({ "t": "forceClear", "symbol": s, "window": 3 }),
        json!({ "t": "retire", "symbol": s, "window": 4 }),
    ] {
        // One acknowledged claim first, in the same process.
        let first = json!({ "t": "claim", "symbol": s, "window": 100 + step["window"].as_u64().unwrap() });
        acked.add(&killed_at(w.path(), json!([first, step]), "controller::before-count=stop(2)", ChildOpts::default()));
        assert_counts_exact(&w.c, &format!("after a process died in {}", step["t"]));
    }
    w.check(&acked, "after five deaths between a transition and its counter update");
    // The dead claim (lease 1 ms) is taken over and filled: on drifted
    // counters this would move Pending below zero.
    let a = &w.c;
    let taken = loop {
        match a.claim(at(s, 0), Some(60_000)) {
            Ok(g) => break g,
            Err(e) => assert_eq!(e.code(), ErrorCode::SlotBusy),
        }
    };
    assert_eq!(taken.previous, SlotStatus::Pending);
    let id = a.append_payload(StoreKind::Trades, record(s, 0, SlotKind::OptionTrade, 9)).unwrap();
    a.fill(at(s, 0), taken.version, FillPayload { payload_type: 1, payload_id: id, checksum: 9 }).unwrap();
    assert_counts_exact(a, "after the takeover and fill");
    let records = std::fs::read_dir(w.path().join("presence")).unwrap().count();
    assert_eq!(records, 1, "the dead controllers' presence records are gone, the survivor's is there");
    w.reopen_alone("after the deaths");
    scenario.teardown();
}

#[test]
fn a_writer_stopped_between_a_transition_and_its_counter_update_is_not_taken_for_dead() {
    let scenario = FailScenario::setup();
    let mut w = World::new(false);
    let s = w.s;
    w.watch(&[at(s, 10), at(s, 11)]);
    // One writer stops at the point and stays alive; another dies there.
    let stopped =
        start(w.path(), json!([{ "t": "claim", "symbol": s, "window": 10 }]), "controller::before-count=stop", ChildOpts::default())
            .stopped();
    killed_at(w.path(), json!([{ "t": "claim", "symbol": s, "window": 11 }]), "controller::before-count=stop", ChildOpts::default());
    // A repair now would count the stopped writer's claim, which it has yet
    // to count itself: it must wait until no transition is under way.
    for _ in 0..3 {
        let pending = w.c.slot_metrics().iter().find(|m| m.kind == SlotKind::OptionTrade).unwrap().counts[SlotStatus::Pending as usize];
        assert!(pending <= 1, "the stopped writer's claim was counted before it counted it: {pending}");
    }
    // Others are not held up: claims, fills and reads go on.
    let g = w.c.claim(at(s, 12), None).unwrap();
    let id = w.c.append_payload(StoreKind::Trades, record(s, 12, SlotKind::OptionTrade, 12)).unwrap();
    w.c.fill(at(s, 12), g.version, FillPayload { payload_type: 1, payload_id: id, checksum: 12 }).unwrap();
    let mut acked = Acked::default();
    acked.add(&stopped.resume());
    assert_eq!(acked.slots[&at(s, 10)], (SlotStatus::Pending, 1), "the stopped writer finished its claim");
    w.check(&acked, "after the stopped writer finished and the dead one was repaired");
    w.reopen_alone("after a stopped and a dead writer");
    scenario.teardown();
}

/// Statuses of `windows` of `CRASH`'s optionTrade slots, in window order.
fn statuses(c: &Controller, s: u32, windows: std::ops::Range<u32>) -> Vec<SlotStatus> {
    windows.map(|w| c.read_slot(at(s, w)).unwrap().status).collect()
}

#[test]
fn a_batch_killed_between_its_slots_leaves_the_slots_it_changed_and_counters_a_recount_makes_exact() {
    let scenario = FailScenario::setup();
    let mut w = World::new(false);
    let s = w.s;
    // Batches of 8 that cross a chunk boundary (the second chunk made by the batch).
    let r = rpc(&w.c);
    let starts: Vec<u32> = (0..5).map(|i| (2 * i + 1) * r - 3).collect();
    let watched: Vec<SlotAddr> = starts.iter().flat_map(|&b| (b..b + 8).map(move |win| at(s, win))).collect();
    w.watch(&watched);
    let mut acked = Acked::default();
    // Killed after the 1st, 4th and 8th claim of a batch, and after the last
    // claim with the batch's counters not added.
    for (&first, spec) in starts.iter().zip([
        "controller::batch-slot-done=stop(1)",
        "controller::batch-slot-done=stop(4)",
        "controller::batch-slot-done=stop(8)",
        "controller::before-count=stop",
    ]) {
        let step = json!([{ "t": "claimBatch", "symbol": s, "window": first, "n": 8, "lease": 60_000 }]);
        acked.add(&killed_at(w.path(), step, spec, ChildOpts::default()));
        let made = statuses(&w.c, s, first..first + 8).iter().filter(|st| **st == SlotStatus::Pending).count();
        let want = match spec.rsplit_once('(') {
            Some((_, k)) => k.trim_end_matches(')').parse::<usize>().unwrap(),
            None => 8,
        };
        assert_eq!(made, want, "{spec}: the claims of the batch before its death stand, the others were not made");
        counts_repaired(&w.c, &format!("after a batch claim killed at {spec}"));
    }
    // A batch fill of the survivor's claims, killed after 3 of its 6 fills.
    let first = starts[4];
    let claims = w.c.claim_next_unfilled(at(s, first), 6, Some(60_000)).unwrap();
    assert_eq!(claims.len(), 6);
    let ids: Vec<u64> =
        claims.iter().map(|(win, _)| w.c.append_payload(StoreKind::Trades, record(s, *win, SlotKind::OptionTrade, 7)).unwrap()).collect();
    let items: Vec<Value> =
        claims.iter().zip(&ids).map(|((win, g), id)| json!({ "window": win, "version": g.version, "payload": id })).collect();
    let step = json!([{ "t": "fillBatch", "symbol": s, "items": items }]);
    acked.add(&killed_at(w.path(), step, "controller::batch-slot-done=stop(3)", ChildOpts::default()));
    let filled = statuses(&w.c, s, first..first + 6);
    assert_eq!(filled.iter().filter(|st| **st == SlotStatus::Filled).count(), 3, "{filled:?}");
    assert_eq!(&filled[..3], &[SlotStatus::Filled; 3], "a batch fills its items in order: {filled:?}");
    counts_repaired(&w.c, "after a batch fill killed after its third fill");
    w.check(&acked, "after batches killed between their slots");
    // The rest of the batch is finished by another one, and the counts stay exact.
    let rest: Vec<FillItem> = claims[3..]
        .iter()
        .zip(&ids[3..])
        .map(|((win, g), id)| FillItem {
            at: at(s, *win),
            claim_version: g.version,
            payload: FillPayload { payload_type: 1, payload_id: *id, checksum: 7 },
        })
        .collect();
    let mut versions = Vec::new();
    w.c.fill_batch(rest.len(), |i| Ok(rest[i]), |_, outcome| versions.push(outcome.map(|t| t.version))).unwrap();
    assert_eq!(versions, claims[3..].iter().map(|(_, g)| Ok(g.version + 1)).collect::<Vec<_>>());
    assert_counts_exact(&w.c, "after the rest of the batch fill");
    w.reopen_alone("after batches killed between their slots");
    scenario.teardown();
}

#[test]
fn a_batch_stopped_between_its_slots_is_not_counted_by_a_repair_before_it_counts_itself() {
    let scenario = FailScenario::setup();
    let mut w = World::new(false);
    let s = w.s;
    w.watch(&(100..110).map(|win| at(s, win)).collect::<Vec<_>>());
    // One batch stops after its second claim and stays alive; a writer dies
    // between a claim and its counter update, so the survivor wants to repair.
    let stopped = start(
        w.path(),
        json!([{ "t": "claimBatch", "symbol": s, "window": 100, "n": 5 }]),
        "controller::batch-slot-done=stop(2)",
        ChildOpts::default(),
    )
    .stopped();
    killed_at(w.path(), json!([{ "t": "claim", "symbol": s, "window": 109 }]), "controller::before-count=stop", ChildOpts::default());
    for _ in 0..3 {
        let pending = w.c.slot_metrics().iter().find(|m| m.kind == SlotKind::OptionTrade).unwrap().counts[SlotStatus::Pending as usize];
        assert!(pending <= 1, "a repair counted claims of the stopped batch before it counted them: {pending}");
    }
    // Others are not held up: a batch of the survivor claims past the stopped one's windows.
    let mine = w.c.claim_next_unfilled(at(s, 100), 3, None).unwrap();
    let mine: Vec<u32> = mine.iter().map(|(win, _)| *win).collect();
    assert_eq!(mine, vec![102, 103, 104], "the survivor's batch skips the stopped batch's live claims");
    let mut acked = Acked::default();
    let theirs = stopped.resume();
    acked.add(&theirs);
    let theirs: Vec<u64> = theirs.iter().filter(|a| a["t"] == "claim").map(|a| a["window"].as_u64().unwrap()).collect();
    assert_eq!(theirs, vec![100, 101, 105, 106, 107], "the stopped batch finished past the windows claimed meanwhile");
    w.check(&acked, "after the stopped batch finished and the dead writer was repaired");
    w.reopen_alone("after a stopped batch and a dead writer");
    scenario.teardown();
}

#[test]
fn a_takeover_killed_before_its_audit_line_keeps_its_claim_and_one_stopped_there_holds_nobody_up() {
    let scenario = FailScenario::setup();
    let mut w = World::new(false);
    let s = w.s;
    let audit = |w: &World| {
        let p = w.c.audit_log().path().to_path_buf();
        if p.exists() {
            window_space_core::audit::AuditLog::read_all(&p).unwrap()
        } else {
            Vec::new()
        }
    };
    let takeovers = |w: &World| audit(w).iter().filter(|l| l["action"] == "takeover").count();
    for (window, kill) in [(20, true), (21, false)] {
        // A claim whose lease ran out at once: the child takes it over.
        w.c.claim(at(s, window), Some(0)).unwrap();
        w.watch(&[at(s, window)]);
        let p = start(
            w.path(),
            json!([{ "t": "claim", "symbol": s, "window": window }]),
            "controller::takeover-claimed=stop",
            ChildOpts::default(),
        )
        .stopped();
        assert_eq!(w.c.read_slot(at(s, window)).unwrap().version, 2, "the claim is made before its audit line");
        let mut acked = Acked::default();
        if kill {
            p.kill();
            // The claim stands without its audit line (a takeover is not an operator's change).
            assert_eq!(takeovers(&w), 0);
            acked.slots.insert(at(s, window), (SlotStatus::Pending, 2));
        } else {
            // The taken-over slot is busy, the others are not held up.
            assert_eq!(w.c.claim(at(s, window), None).unwrap_err().code(), ErrorCode::SlotBusy);
            w.c.claim(at(s, window + 10), None).unwrap();
            acked.add(&p.resume());
            assert_eq!(takeovers(&w), 1, "the takeover's audit line is written when it goes on");
        }
        w.check(&acked, &format!("a takeover {} before its audit line", if kill { "killed" } else { "stopped" }));
    }
    w.reopen_alone("after the takeovers");
    scenario.teardown();
}

// ---- payload appends ----------------------------------------------------------------------

/// The points of an append, in order, and whether the table's lock is held there.
const APPEND_POINTS: [(&str, bool); 4] = [
    ("payload::append-locked", true),
    ("payload::append-written", true),
    ("payload::append-synced", true),
    ("payload::append-unlocked", false),
];

fn appends(s: u32, n: u64) -> Value {
    Value::Array((0..n).map(|i| json!({ "t": "append", "symbol": s, "window": i, "checksum": 1000 + i })).collect())
}

#[test]
fn an_append_killed_at_each_step_loses_no_acknowledged_record_and_reuses_no_id() {
    let scenario = FailScenario::setup();
    for sync in [false, true] {
        for (point, _) in APPEND_POINTS {
            let when = format!("an append killed at {point} (sync {sync})");
            let w = World::new(sync);
            let s = w.s;
            // Two appends acknowledged, the third killed at the point.
            let mut acked = Acked::default();
            acked.add(&killed_at(w.path(), appends(s, 3), &format!("{point}=stop(3)"), ChildOpts { sync, windows: None }));
            assert_eq!(acked.records.len(), 2, "{when}");
            // Before its write the record is not there; after it, it is whole (its id is used, never handed out again).
            let len = w.c.store(StoreKind::Trades).len().unwrap();
            assert_eq!(len, if point == "payload::append-locked" { 2 } else { 3 }, "{when}");
            if len == 3 {
                assert_eq!(w.c.store(StoreKind::Trades).get(2).unwrap().unwrap().checksum, 1002, "{when}");
            }
            // The next append gets the next id, and a fill may use it.
            let g = w.c.claim(at(s, 5), None).unwrap();
            let id = w.c.append_payload(StoreKind::Trades, record(s, 5, SlotKind::OptionTrade, 55)).unwrap();
            assert_eq!(id, len, "{when}");
            w.c.fill(at(s, 5), g.version, FillPayload { payload_type: 1, payload_id: id, checksum: 55 }).unwrap();
            acked.records.push((id, 55));
            acked.slots.insert(at(s, 5), (SlotStatus::Filled, 2));
            w.check(&acked, &when);
            let (_d, c, report) = w.reopen_alone(&when);
            let trades = report.stores.iter().find(|r| r.store == StoreKind::Trades).unwrap();
            assert_eq!((trades.records, trades.torn_tail_bytes), (len + 1, 0), "{when}");
            assert_eq!(c.store(StoreKind::Trades).get(id).unwrap().unwrap().checksum, 55);
        }
    }
    scenario.teardown();
}

#[test]
fn an_append_stopped_at_each_step_holds_up_only_appends_to_its_table() {
    let scenario = FailScenario::setup();
    for (point, holds_lock) in APPEND_POINTS {
        let when = format!("an append stopped at {point}");
        let mut w = World::new(false);
        let s = w.s;
        w.watch(&[at(s, 7)]);
        let p = start(w.path(), appends(s, 3), &format!("{point}=stop(3)"), ChildOpts::default()).stopped();
        // Others go on: reads of the table, appends to other tables, transitions, a new controller.
        let trades = w.c.store(StoreKind::Trades);
        assert_eq!(trades.get(1).unwrap().unwrap().checksum, 1001, "{when}");
        let g = w.c.claim(SlotAddr::new(s, 7, SlotKind::OptionQuote), None).unwrap();
        let q = PayloadInput { slot_kind: SlotKind::OptionQuote, ..record(s, 7, SlotKind::OptionQuote, 77) };
        let qid = w.c.append_payload(StoreKind::Quotes, q).unwrap();
        w.c.fill(SlotAddr::new(s, 7, SlotKind::OptionQuote), g.version, FillPayload { payload_type: 1, payload_id: qid, checksum: 77 })
            .unwrap();
        w.c.claim(at(s, 7), None).unwrap();
        let (b, _) = Controller::bootstrap(config(w.path())).unwrap();
        drop(b);
        // An append to the same table waits for the lock while the appender holds it, then takes the next id.
        let id = std::thread::scope(|scope| {
            let waiting = scope.spawn(|| w.c.append_payload(StoreKind::Trades, record(s, 9, SlotKind::OptionTrade, 99)).unwrap());
            let mut acked = Acked::default();
            if holds_lock {
                acked.add(&p.resume());
            } else {
                let id = waiting.join().unwrap();
                acked.add(&p.resume());
                return (id, acked);
            }
            (waiting.join().unwrap(), acked)
        });
        let (id, mut acked) = id;
        assert_eq!(acked.records, vec![(0, 1000), (1, 1001), (2, 1002)], "{when}: the stopped append finished with its id");
        assert_eq!(id, 3, "{when}: the append that came after it got the next id");
        acked.records.push((3, 99));
        w.check(&acked, &when);
        w.reopen_alone(&when);
    }
    scenario.teardown();
}

// ---- ledger growth --------------------------------------------------------------------------

/// The points of a growth, in order.
const GROWTH_POINTS: [&str; 3] = ["ledger::extended", "ledger::chunk-written", "ledger::published"];

/// A world whose trade ledger's file is full (8 chunks of `CRASH`), so the next chunk grows it.
fn full_world(sync: bool) -> World {
    let w = World::new(sync);
    let r = rpc(&w.c);
    for k in 0..8 {
        w.c.claim(at(w.s, k * r), None).unwrap();
    }
    let len = w.c.ledger_of(LedgerKind::Trade).file_len().unwrap();
    assert_eq!(len, 4096 + 8 * 32768, "the first growth made room for 8 chunks, and they are used");
    w
}

#[test]
fn a_growth_killed_at_each_step_leaves_a_ledger_that_opens_and_grows() {
    let scenario = FailScenario::setup();
    for sync in [false, true] {
        for point in GROWTH_POINTS {
            let when = format!("a growth killed at {point} (sync {sync})");
            let mut w = full_world(sync);
            let (s, r) = (w.s, rpc(&w.c));
            w.watch(&[at(s, 8 * r), at(s, 9 * r)]);
            let chunks = w.c.ledger_of(LedgerKind::Trade).chunk_count();
            // One acknowledged claim in an existing chunk, then a claim that needs chunk 9.
            let steps = json!([{ "t": "claim", "symbol": s, "window": 2 }, { "t": "claim", "symbol": s, "window": 8 * r }]);
            let mut acked = Acked::default();
            acked.add(&killed_at(w.path(), steps, &format!("{point}=stop"), ChildOpts { sync, windows: None }));
            assert_eq!(acked.slots.len(), 1, "{when}");
            let published = w.c.ledger_of(LedgerKind::Trade).chunk_count();
            assert_eq!(published, chunks + u64::from(point == "ledger::published"), "{when}");
            assert_eq!(w.c.read_slot(at(s, 8 * r)).unwrap().status, SlotStatus::Empty, "{when}: no slot changed");
            // The survivor uses the chunk (or makes it again) and grows past it.
            for window in [8 * r, 9 * r] {
                let v = w.c.claim(at(s, window), None).unwrap().version;
                acked.slots.insert(at(s, window), (SlotStatus::Pending, v));
            }
            w.check(&acked, &when);
            w.reopen_alone(&when);
        }
    }
    scenario.teardown();
}

#[test]
fn a_growth_stopped_at_each_step_holds_up_only_growth_of_its_ledger() {
    let scenario = FailScenario::setup();
    for point in GROWTH_POINTS {
        let when = format!("a growth stopped at {point}");
        let mut w = full_world(false);
        let (s, r) = (w.s, rpc(&w.c));
        w.watch(&[at(s, 8 * r), at(s, 9 * r)]);
        let p = start(w.path(), json!([{ "t": "claim", "symbol": s, "window": 8 * r }]), &format!("{point}=stop"), ChildOpts::default())
            .stopped();
        // Transitions in existing chunks, growth of the other ledger, reads.
        let g = w.c.claim(at(s, 3), None).unwrap();
        w.c.clear(at(s, 3), g.version).unwrap();
        w.c.claim(SlotAddr::new(s, 0, SlotKind::Greeks), None).unwrap();
        assert_eq!(w.c.read_slot(at(s, 8 * r)).unwrap().status, SlotStatus::Empty);
        // A new engine opens the directory: its bootstrap does not wait for the
        // stopped growth (the bound only ends a test that would hang).
        let (opened, wait) = std::sync::mpsc::channel();
        let dir = w.path().to_path_buf();
        std::thread::spawn(move || {
            let _ = opened.send(Controller::bootstrap(config(&dir)).map(drop).map_err(|e| e.to_string()));
        });
        match wait.recv_timeout(std::time::Duration::from_secs(120)) {
            Ok(r) => r.unwrap_or_else(|e| panic!("{when}: a bootstrap beside it: {e}")),
            Err(_) => panic!("{when}: a bootstrap beside it waited for the stopped growth"),
        }
        // A growth of the same ledger waits for its lock, then gets a chunk of its own.
        let (mine, acked) = std::thread::scope(|scope| {
            let waiting = scope.spawn(|| w.c.claim(at(s, 9 * r), None).unwrap());
            let mut acked = Acked::default();
            acked.add(&p.resume());
            (waiting.join().unwrap(), acked)
        });
        assert_eq!(acked.slots[&at(s, 8 * r)], (SlotStatus::Pending, 1), "{when}: the stopped growth finished its claim");
        assert_eq!(mine.version, 1);
        assert_eq!(
            w.c.ledger_of(LedgerKind::Trade).chunk_count(),
            10,
            "{when}: the 8 chunks, the stopped growth's and the one that waited"
        );
        w.check(&acked, &when);
        w.reopen_alone(&when);
    }
    scenario.teardown();
}

// ---- symbols ----------------------------------------------------------------------------------

/// The points of adding a symbol, in order, whether the gate is held there,
/// and whether the whole record is in the log.
const SYMBOL_POINTS: [(&str, bool, bool); 3] =
    [("symbols::record-part-written", true, false), ("symbols::appended", true, true), ("controller::symbol-added", false, true)];

/// Bytes after the last whole record of `symbols.log` (a torn tail).
fn symbol_log_tail(dir: &Path) -> usize {
    use window_space_core::symbols::{parse_record, ParsedRecord, SymbolMap, HEADER_BYTES};
    let bytes = std::fs::read(dir.join(SymbolMap::FILE_NAME)).unwrap();
    let mut at = HEADER_BYTES as usize;
    while let ParsedRecord::Symbol { len, .. } = parse_record(&bytes[at..]) {
        at += len;
    }
    bytes.len() - at
}

#[test]
fn a_symbol_add_killed_at_each_step_gives_every_symbol_one_id() {
    let scenario = FailScenario::setup();
    for (point, _, on_disk) in SYMBOL_POINTS {
        let when = format!("a symbol add killed at {point}");
        let w = World::new(false);
        let steps = json!([{ "t": "resolve", "symbol": "NEW1" }, { "t": "resolve", "symbol": "NEW2" }]);
        let acks = killed_at(w.path(), steps, &format!("{point}=stop(2)"), ChildOpts::default());
        assert_eq!(acks.last().unwrap()["id"], 1, "{when}: the first symbol was acknowledged");
        assert_eq!(w.c.symbols().unwrap(), if on_disk { vec![SYMBOL, "NEW1", "NEW2"] } else { vec![SYMBOL, "NEW1"] }, "{when}");
        assert_eq!(symbol_log_tail(w.path()) > 0, !on_disk, "{when}: half a record is left only before the record is whole");
        // The survivor names the symbol once, with the next id, and uses it.
        assert_eq!(w.c.resolve_symbol("NEW2").unwrap(), 2, "{when}");
        assert_eq!(w.c.resolve_symbol("NEW1").unwrap(), 1, "{when}");
        assert_eq!(symbol_log_tail(w.path()), 0, "{when}: the next add cut the torn record");
        let mut acked = Acked::default();
        acked.slots.insert(at(2, 0), (SlotStatus::Pending, w.c.claim(at(2, 0), None).unwrap().version));
        w.check(&acked, &when);
        let (_d, c, _) = w.reopen_alone(&when);
        assert_eq!(c.symbols().unwrap(), vec![SYMBOL, "NEW1", "NEW2"], "{when}");
    }
    // Killed with half a record written and nobody adding after it: a bootstrap alone cuts it.
    let w = World::new(false);
    let steps = json!([{ "t": "resolve", "symbol": "NEW1" }]);
    killed_at(w.path(), steps, "symbols::record-part-written=stop", ChildOpts::default());
    assert!(symbol_log_tail(w.path()) > 0);
    assert_eq!(w.c.lookup_symbol("NEW1").unwrap(), None, "half a record is no symbol");
    let (d, c, _) = w.reopen_alone("a symbol add killed with half its record written");
    assert_eq!(symbol_log_tail(d.path()), 0, "the bootstrap alone cut the torn record");
    assert_eq!(c.resolve_symbol("NEW1").unwrap(), 1);
    scenario.teardown();
}

#[test]
fn a_symbol_add_stopped_at_each_step_holds_up_only_symbol_adds_and_bootstraps() {
    let scenario = FailScenario::setup();
    for (point, holds_gate, on_disk) in SYMBOL_POINTS {
        let when = format!("a symbol add stopped at {point}");
        let mut w = World::new(false);
        let s = w.s;
        w.watch(&[at(s, 1)]);
        let steps = json!([{ "t": "resolve", "symbol": "NEW1" }, { "t": "resolve", "symbol": "NEW2" }]);
        let p = start(w.path(), steps, &format!("{point}=stop(2)"), ChildOpts::default()).stopped();
        // Transitions, reads and known symbols go on; a half-written record is no symbol yet, a whole one is.
        assert_eq!(w.c.resolve_symbol("NEW1").unwrap(), 1);
        assert_eq!(w.c.lookup_symbol("NEW2").unwrap(), on_disk.then_some(2), "{when}");
        assert_eq!(w.c.lookup_symbol("OTHER").unwrap(), None, "{when}: a miss is answered");
        let g = w.c.claim(at(s, 1), None).unwrap();
        w.c.claim(at(1, 1), None).unwrap();
        if !holds_gate {
            // The gate is free again: a new controller opens.
            drop(Controller::bootstrap(config(w.path())).unwrap());
        }
        // Another new symbol waits for the gate while the adder holds it, and gets the next id.
        let (mine, acks) = std::thread::scope(|scope| {
            let waiting = scope.spawn(|| w.c.resolve_symbol("NEW3").unwrap());
            if !holds_gate {
                let mine = waiting.join().unwrap();
                return (mine, p.resume());
            }
            let acks = p.resume();
            (waiting.join().unwrap(), acks)
        });
        assert_eq!(acks.last().unwrap()["id"], 2, "{when}: the stopped add finished with its id");
        assert_eq!(mine, 3, "{when}");
        assert_eq!(w.c.symbols().unwrap(), vec![SYMBOL, "NEW1", "NEW2", "NEW3"]);
        let mut acked = Acked::default();
        acked.slots.insert(at(s, 1), (SlotStatus::Pending, g.version));
        w.check(&acked, &when);
        w.reopen_alone(&when);
    }
    scenario.teardown();
}

/// Leftover temp files of atomic rewrites in `dir`.
fn temp_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with('.') && n.contains(".tmp-")).collect()
}

// ---- atomic rewrites of artifacts ------------------------------------------------------------

fn gc_now(c: &Controller) -> window_space_core::ops::gc::GcReport {
    gc(c, &GcOptions { delete: true, min_age_ms: 0, ctx: Default::default() }, &mut |_, _, _| {}).unwrap()
}

#[test]
fn an_artifact_write_killed_before_its_rename_leaves_a_temp_file_gc_removes_and_one_stopped_there_is_kept() {
    let scenario = FailScenario::setup();
    let steps = json!([{ "t": "artifact", "rel": "a/x.bin", "text": "hello" }]);
    for point in ["fsutil::atomic-temp-written", "fsutil::atomic-renamed"] {
        let when = format!("an artifact write killed at {point}");
        let w = World::new(false);
        killed_at(w.path(), steps.clone(), &format!("{point}=stop"), ChildOpts::default());
        let target = w.path().join("artifacts/a/x.bin");
        let temps = temp_files(&w.path().join("artifacts/a"));
        if point == "fsutil::atomic-temp-written" {
            assert!(!target.exists(), "{when}");
            assert_eq!(temps.len(), 1, "{when}: {temps:?}");
            // Its writer is gone: gc removes the temp file (an hour old, past any --min-age).
            let temp = std::fs::File::options().write(true).open(w.path().join("artifacts/a").join(&temps[0])).unwrap();
            temp.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600)).unwrap();
            let r = gc_now(&w.c);
            assert_eq!(r.files.iter().map(|f| f.class).collect::<Vec<_>>(), vec![FileClass::Temp], "{when}: {r:?}");
            assert_eq!(r.removed.len(), 1, "{when}");
            assert_eq!(temp_files(&w.path().join("artifacts/a")), Vec::<String>::new());
        } else {
            assert_eq!(std::fs::read(&target).unwrap(), b"hello", "{when}: renamed whole");
            assert_eq!(temps, Vec::<String>::new(), "{when}");
        }
        w.check(&Acked::default(), &when);
    }
    // Stopped before its rename: gc keeps the temp file of a running writer; continued, the write completes.
    let w = World::new(false);
    let p = start(w.path(), steps, "fsutil::atomic-temp-written=stop", ChildOpts::default()).stopped();
    let r = gc_now(&w.c);
    assert!(r.removed.is_empty() && r.kept_files.iter().any(|k| k.why.contains("running")), "{r:?}");
    let acks = p.resume();
    assert_eq!(acks.last().unwrap()["uri"], "artifacts/a/x.bin");
    assert_eq!(std::fs::read(w.path().join("artifacts/a/x.bin")).unwrap(), b"hello");
    assert_eq!(temp_files(&w.path().join("artifacts/a")), Vec::<String>::new());
    scenario.teardown();
}

// ---- schedule roll-forward --------------------------------------------------------------------

/// The points of a roll-forward, in order.
const ROLL_POINTS: [&str; 3] = ["fsutil::atomic-temp-written", "fsutil::atomic-renamed", "bootstrap::schedule-rolled"];
const ROLLED: u32 = WINDOWS + 500;

#[test]
fn a_roll_forward_killed_at_each_step_is_finished_by_the_next_bootstrap() {
    let scenario = FailScenario::setup();
    let rolled = ChildOpts { sync: false, windows: Some(ROLLED) };
    for point in ROLL_POINTS {
        let when = format!("a roll-forward killed at {point}");
        let mut w = World::new(false);
        let s = w.s;
        w.watch(&[at(s, 5)]);
        killed_at(w.path(), json!([]), &format!("{point}=stop"), rolled);
        // Not published: the survivor keeps its windows.
        assert_eq!(w.c.window_count(), WINDOWS, "{when}");
        assert_eq!(w.c.claim(at(s, ROLLED - 1), None).unwrap_err().code(), ErrorCode::WindowOutOfRange, "{when}");
        w.check(&Acked::default(), &when);
        // The roll-forward run again finishes; the survivor adopts it.
        let acks = start(w.path(), json!([]), "", rolled).finish();
        assert_eq!(acks[0]["windows"], ROLLED, "{when}");
        assert_eq!(w.c.window_count(), ROLLED, "{when}");
        let mut acked = Acked::default();
        acked.slots.insert(at(s, ROLLED - 1), (SlotStatus::Pending, w.c.claim(at(s, ROLLED - 1), None).unwrap().version));
        w.check(&acked, &when);
        let (_d, c, report) = w.reopen_alone(&when);
        assert_eq!((report.schedule, c.window_count()), ("behind", ROLLED), "{when}: the older schedule opens the rolled directory");
    }
    scenario.teardown();
}

#[test]
fn a_roll_forward_stopped_at_each_step_holds_up_only_bootstraps_and_symbol_adds() {
    let scenario = FailScenario::setup();
    let rolled = ChildOpts { sync: false, windows: Some(ROLLED) };
    for point in ROLL_POINTS {
        let when = format!("a roll-forward stopped at {point}");
        let mut w = World::new(false);
        let s = w.s;
        w.watch(&[at(s, 5)]);
        let p = start(w.path(), json!([]), &format!("{point}=stop"), rolled).stopped();
        let g = w.c.claim(at(s, 5), None).unwrap();
        assert_eq!(w.c.claim(at(s, ROLLED - 1), None).unwrap_err().code(), ErrorCode::WindowOutOfRange, "{when}: not rolled yet");
        let acks = p.resume();
        assert_eq!(acks[0]["windows"], ROLLED);
        let mut acked = Acked::default();
        acked.slots.insert(at(s, 5), (SlotStatus::Pending, g.version));
        acked.slots.insert(at(s, ROLLED - 1), (SlotStatus::Pending, w.c.claim(at(s, ROLLED - 1), None).unwrap().version));
        w.check(&acked, &when);
        w.reopen_alone(&when);
    }
    scenario.teardown();
}

// ---- bootstrap's repairs ----------------------------------------------------------------------

/// The points of a bootstrap with no other controller open, after its checks.
const ALONE_POINTS: [&str; 3] = ["bootstrap::tails-cut", "bootstrap::counts-rebuilt", "bootstrap::present"];

/// A closed directory that needs every repair: a torn tail in trades.map,
/// counters a death left off by one, a stale temp file. Returns what was acknowledged.
fn damaged_dir(dir: &Path) -> Acked {
    let mut acked = Acked::default();
    {
        let (c, _) = Controller::bootstrap(config(dir)).unwrap();
        let s = c.resolve_symbol(SYMBOL).unwrap();
        let g = c.claim(at(s, 1), None).unwrap();
        let id = c.append_payload(StoreKind::Trades, record(s, 1, SlotKind::OptionTrade, 11)).unwrap();
        c.fill(at(s, 1), g.version, FillPayload { payload_type: 1, payload_id: id, checksum: 11 }).unwrap();
        acked.records.push((id, 11));
        acked.slots.insert(at(s, 1), (SlotStatus::Filled, 2));
    }
    // A claim whose process died before counting it, with no one else open.
    acked.add(&killed_at(
        dir,
        json!([{ "t": "claim", "symbol": 0, "window": 2 }, { "t": "claim", "symbol": 0, "window": 3 }]),
        "controller::before-count=stop(2)",
        ChildOpts::default(),
    ));
    let raw = window_space_core::ops::reader::StateReader::open(dir).unwrap();
    assert_eq!(
        raw.ledger(LedgerKind::Trade).counters().unwrap().status[SlotKind::OptionTrade.column()][0],
        1,
        "one of two claims is counted"
    );
    // A record torn by a writer's death, and a temp file of an atomic rewrite.
    let mut f = std::fs::OpenOptions::new().append(true).open(dir.join("trades.map")).unwrap();
    f.write_all(b"WSR1\x40\x00\x00\x00torn-tail").unwrap();
    std::fs::write(dir.join(".schedule.json.tmp-4194304-0"), b"{").unwrap();
    acked
}

#[test]
fn a_bootstrap_killed_in_its_repairs_leaves_them_to_the_next_one() {
    let scenario = FailScenario::setup();
    for point in ALONE_POINTS {
        let when = format!("a bootstrap killed at {point}");
        let d = tempfile::tempdir().unwrap();
        let acked = damaged_dir(d.path());
        let acks = killed_at(d.path(), json!([]), &format!("{point}=stop"), ChildOpts::default());
        assert!(acks.is_empty(), "{when}: the killed bootstrap never returned");
        let (c, report) = Controller::bootstrap(config(d.path())).unwrap();
        assert!(report.exclusive, "{when}");
        // Every point is after the cut: the next bootstrap finds no torn tail.
        let trades = report.stores.iter().find(|r| r.store == StoreKind::Trades).unwrap();
        assert_eq!((trades.records, trades.torn_tail_bytes), (1, 0), "{when}");
        assert_counts_exact(&c, &when);
        assert_eq!(temp_files(d.path()), Vec::<String>::new(), "{when}");
        let w = World::adopt(d, c, 0);
        w.check(&acked, &when);
        w.reopen_alone(&when);
    }
    scenario.teardown();
}

#[test]
fn a_bootstrap_stopped_in_its_repairs_holds_up_other_bootstraps_until_it_goes_on() {
    let scenario = FailScenario::setup();
    for point in ALONE_POINTS {
        let when = format!("a bootstrap stopped at {point}");
        let d = tempfile::tempdir().unwrap();
        let acked = damaged_dir(d.path());
        let p = start(d.path(), json!([{ "t": "metrics" }]), &format!("{point}=stop"), ChildOpts::default()).stopped();
        // Another bootstrap waits for the gate, then opens what the first one repaired.
        let (acks, (c, report)) = std::thread::scope(|scope| {
            let waiting = scope.spawn(|| Controller::bootstrap(config(d.path())).unwrap());
            (p.resume(), waiting.join().unwrap())
        });
        assert_eq!(
            (acks[0]["exclusive"].as_bool(), acks[0]["torn"].as_u64()),
            (Some(true), Some(17)),
            "{when}: it found and cut the torn tail"
        );
        let trades = report.stores.iter().find(|r| r.store == StoreKind::Trades).unwrap();
        assert_eq!((trades.records, trades.torn_tail_bytes), (1, 0), "{when}");
        let w = World::adopt(d, c, 0);
        w.check(&acked, &when);
        w.reopen_alone(&when);
    }
    scenario.teardown();
}

#[test]
fn a_bootstrap_of_a_new_directory_killed_before_its_commit_mark_is_done_again_and_one_stopped_there_is_waited_for() {
    let scenario = FailScenario::setup();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("new");
    killed_at(&dir, json!([]), "bootstrap::files-created=stop", ChildOpts::default());
    assert!(dir.join("trades.map").exists() && !dir.join("schedule.json").exists(), "every file but the commit mark");
    let (c, report) = Controller::bootstrap(config(&dir)).unwrap();
    assert!(report.created, "the leftovers hold no data and are made again");
    assert_counts_exact(&c, "a directory made again");
    drop(c);
    verified(&dir, "a directory made again");

    let dir = root.path().join("other");
    let p = start(&dir, json!([]), "bootstrap::files-created=stop", ChildOpts::default()).stopped();
    let (acks, (c, report)) = std::thread::scope(|scope| {
        let waiting = scope.spawn(|| Controller::bootstrap(config(&dir)).unwrap());
        (p.resume(), waiting.join().unwrap())
    });
    assert_eq!(acks[0]["created"], true, "the stopped bootstrap made the directory when it went on");
    assert!(!report.created, "the one that waited opened it");
    let s = c.resolve_symbol(SYMBOL).unwrap();
    c.claim(at(s, 0), None).unwrap();
    assert_counts_exact(&c, "the directory both opened");
    scenario.teardown();
}

#[test]
fn a_bootstrap_killed_after_making_its_presence_record_is_taken_for_dead_by_the_survivor() {
    let scenario = FailScenario::setup();
    let w = World::new(false);
    killed_at(w.path(), json!([]), "bootstrap::present=stop", ChildOpts::default());
    assert_eq!(std::fs::read_dir(w.path().join("presence")).unwrap().count(), 2, "the survivor's record and the dead one's");
    counts_repaired(&w.c, "after a death in a bootstrap");
    assert_eq!(std::fs::read_dir(w.path().join("presence")).unwrap().count(), 1, "the dead record was removed");
    w.check(&Acked::default(), "after a death in a bootstrap");
    w.reopen_alone("after a death in a bootstrap");
    scenario.teardown();
}

// ---- the counter repair -----------------------------------------------------------------------

/// The trade ledger's shared Pending counter of option trades, as stored (no repair).
fn raw_pending(dir: &Path) -> u64 {
    let r = window_space_core::ops::reader::StateReader::open(dir).unwrap();
    r.ledger(LedgerKind::Trade).counters().unwrap().status[SlotKind::OptionTrade.column()][0]
}

/// The exact number of Pending option-trade slots.
fn exact_pending(c: &Controller) -> u64 {
    c.recount().unwrap().iter().find(|m| m.kind == SlotKind::OptionTrade).unwrap().counts[SlotStatus::Pending as usize]
}

#[test]
fn a_counter_repair_killed_after_its_scan_is_done_by_another_survivor() {
    let scenario = FailScenario::setup();
    let mut w = World::new(false);
    let s = w.s;
    w.watch(&[at(s, 30)]);
    let mut acked = Acked::default();
    acked.add(&killed_at(
        w.path(),
        json!([{ "t": "claim", "symbol": s, "window": 29 }, { "t": "claim", "symbol": s, "window": 30 }]),
        "controller::before-count=stop(2)",
        ChildOpts::default(),
    ));
    // A second survivor repairs, and dies after its scan.
    killed_at(w.path(), json!([{ "t": "metrics" }]), "controller::repair-scanned=stop", ChildOpts::default());
    assert_eq!(raw_pending(w.path()) + 1, exact_pending(&w.c), "the killed repair changed nothing");
    w.check(&acked, "after a repair killed after its scan");
    w.reopen_alone("after a repair killed after its scan");
    scenario.teardown();
}

#[test]
fn a_counter_repair_stopped_after_its_scan_applies_nothing_a_transition_since_would_make_wrong() {
    let scenario = FailScenario::setup();
    let mut w = World::new(false);
    let s = w.s;
    w.watch(&[at(s, 30), at(s, 31)]);
    let mut acked = Acked::default();
    acked.add(&killed_at(
        w.path(),
        json!([{ "t": "claim", "symbol": s, "window": 30 }]),
        "controller::before-count=stop",
        ChildOpts::default(),
    ));
    // A writer stopped between its claim and its counter update, then a
    // repairer that scans (counting that claim) and stops before applying.
    let writer =
        start(w.path(), json!([{ "t": "claim", "symbol": s, "window": 31 }]), "controller::before-count=stop", ChildOpts::default())
            .stopped();
    let repairer = start(w.path(), json!([{ "t": "metrics" }]), "controller::repair-scanned=stop", ChildOpts::default()).stopped();
    // The survivor is not held up (it leaves the dead record to the repairer that holds it).
    w.c.claim(at(s, 32), None).unwrap();
    counts_repaired_or_drift(&w.c);
    // The writer counts its claim; then the repairer goes on: its scan is stale and must not be applied.
    acked.add(&writer.resume());
    repairer.resume();
    assert_eq!(
        raw_pending(w.path()) + 1,
        exact_pending(&w.c),
        "the repairer applied a correction from before the writer counted its claim"
    );
    w.check(&acked, "after a repair stopped after its scan");
    w.reopen_alone("after a repair stopped after its scan");
    scenario.teardown();
}

/// While another process holds a dead controller's record for its repair,
/// the counts read within bounds (the drift of one death stays).
fn counts_repaired_or_drift(c: &Controller) {
    let total = c.symbols().unwrap().len() as u64 * u64::from(c.window_count());
    for m in c.slot_metrics() {
        assert!(m.counts.iter().all(|&n| n <= total), "{m:?}");
    }
}

// ---- injected faults ----------------------------------------------------------------------

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

// ---- the table of points ------------------------------------------------------------------------

/// The `failpoint!` names in the core's sources.
fn points_in_sources() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                for line in std::fs::read_to_string(&p).unwrap().lines() {
                    let code = line.trim_start();
                    if code.starts_with("//") {
                        continue;
                    }
                    let mut rest = code;
                    while let Some(i) = rest.find("failpoint!(\"") {
                        rest = &rest[i + "failpoint!(\"".len()..];
                        let end = rest.find('"').unwrap();
                        out.insert(rest[..end].to_string());
                    }
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out
}

#[test]
fn every_crash_point_is_listed_and_has_its_row_in_the_reliability_table() {
    let listed: BTreeSet<String> = window_space_core::failpoints::POINTS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(points_in_sources(), listed, "the failpoint! names of the sources and failpoints::POINTS differ");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/reliability.md")).unwrap();
    let section = doc.split("\n## Crash points\n").nth(1).expect("docs/reliability.md has a section `## Crash points`");
    let section = section.split("\n## ").next().unwrap();
    let mut rows = BTreeSet::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(cells.len(), 4, "a row of point, where, what the tests do, test: {line}");
        let name = cells[0].trim_matches('`').to_string();
        assert!(listed.contains(&name), "the table names {name:?}, which is no point of the core");
        assert!(rows.insert(name.clone()), "{name} has two rows");
        assert!(!cells[1].is_empty() && !cells[2].is_empty(), "{name}: where, and what the tests do there");
        // The test files the row names exist and drive that point.
        let files: Vec<&str> = cells[3].split('`').skip(1).step_by(2).filter(|t| t.ends_with(".rs") || t.ends_with(".ts")).collect();
        assert!(!files.is_empty(), "{name}: the row names no test file: {}", cells[3]);
        for f in files {
            let text = std::fs::read_to_string(root.join(f)).unwrap_or_else(|e| panic!("{name}: {f}: {e}"));
            assert!(text.contains(name.as_str()), "{name}: {f} does not drive it");
        }
    }
    let missing: Vec<_> = listed.difference(&rows).collect();
    assert!(missing.is_empty(), "points without a row in the crash-point table of docs/reliability.md: {missing:?}");
}
