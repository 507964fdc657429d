//! Threads racing through one controller and through several controllers on
//! one directory (which coordinate like processes do): exactly one winner per
//! claim, refused losers, dense payload ids, exact metrics. And growth while
//! mapped: one controller grows the ledger and adds symbols while another is
//! open; the other sees and uses what was added, and everything survives a
//! reopen.

use std::sync::{Arc, Barrier};

use window_space_core::{Config, Controller, ErrorCode, FillPayload, PayloadInput, SlotAddr, SlotKind, SlotStatus, StoreKind, WindowSpace};

const WINDOWS: u32 = 3000;

fn config(dir: &std::path::Path) -> Config {
    Config::new(dir, WindowSpace::Uniform { origin_ns: 0, window_ns: 1_000_000_000, window_count: WINDOWS })
}

fn record(symbol: u32, w: u32, tag: u64) -> PayloadInput {
    PayloadInput {
        symbol_id: symbol,
        window_idx: w,
        slot_kind: SlotKind::OptionTrade,
        payload_type: 1,
        checksum: tag,
        size: 1,
        uri: format!("t/{tag}/{w}"),
    }
}

/// What one racing thread ends with: the (window, payload id) pairs it won,
/// and the refusal codes of the claims it lost.
type ThreadOutcome = (Vec<(u32, u64)>, Vec<ErrorCode>);

/// Every thread walks all windows; returns one outcome per thread.
fn race(controllers: Vec<Arc<Controller>>, threads_per_controller: usize) -> Vec<ThreadOutcome> {
    let n = controllers.len() * threads_per_controller;
    let barrier = Arc::new(Barrier::new(n));
    let mut handles = Vec::new();
    for (ci, c) in controllers.iter().enumerate() {
        for t in 0..threads_per_controller {
            let (c, barrier) = (c.clone(), barrier.clone());
            let tag = (ci * threads_per_controller + t) as u64;
            handles.push(std::thread::spawn(move || {
                let s = c.symbol_id("RACE").unwrap();
                barrier.wait();
                let (mut wins, mut refusals) = (Vec::new(), Vec::new());
                for i in 0..WINDOWS {
                    let w = (i + tag as u32 * 97) % WINDOWS;
                    let at = SlotAddr::new(s, w, SlotKind::OptionTrade);
                    match c.claim(at, Some(60_000)) {
                        Ok(g) => {
                            let id = c.append_payload(StoreKind::Trades, record(s, w, tag)).unwrap();
                            c.fill(at, g.version, FillPayload { payload_type: 1, payload_id: id, checksum: tag }).unwrap();
                            wins.push((w, id));
                        }
                        Err(e) => refusals.push(e.code()),
                    }
                }
                (wins, refusals)
            }));
        }
    }
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn check(results: &[ThreadOutcome], c: &Controller) {
    let mut owner = vec![None; WINDOWS as usize];
    let mut ids = Vec::new();
    for (t, (wins, refusals)) in results.iter().enumerate() {
        assert_eq!(wins.len() + refusals.len(), WINDOWS as usize);
        assert!(refusals.iter().all(|c| *c == "ERR_SLOT_BUSY" || *c == "ERR_SLOT_FILLED"), "{refusals:?}");
        for (w, id) in wins {
            assert!(owner[*w as usize].replace(t).is_none(), "window {w} won twice");
            ids.push(*id);
        }
    }
    assert!(owner.iter().all(Option::is_some), "every window has a winner");
    ids.sort_unstable();
    assert_eq!(ids, (0..u64::from(WINDOWS)).collect::<Vec<_>>(), "payload ids are dense and unique");
    let s = c.symbol_id("RACE").unwrap();
    for w in (0..WINDOWS).step_by(37) {
        let slot = c.read_slot(SlotAddr::new(s, w, SlotKind::OptionTrade)).unwrap();
        assert_eq!(slot.status, SlotStatus::Filled);
        let rec = c.store(StoreKind::Trades).get(slot.payload_id).unwrap().unwrap();
        assert_eq!((rec.window_idx, rec.checksum), (w, owner[w as usize].unwrap() as u64));
    }
    assert_eq!(c.slot_metrics(), c.recount().unwrap());
}

#[test]
fn threads_on_one_controller_get_one_winner_per_slot() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = Controller::bootstrap(config(dir.path())).unwrap();
    c.resolve_symbol("RACE").unwrap();
    let c = Arc::new(c);
    let results = race(vec![c.clone()], 4);
    check(&results, &c);
}

#[test]
fn controllers_on_one_directory_coordinate_like_processes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = Controller::bootstrap(config(dir.path())).unwrap();
    a.resolve_symbol("RACE").unwrap();
    let (b, report) = Controller::bootstrap(config(dir.path())).unwrap();
    assert!(!report.exclusive, "the second controller knows it is not alone");
    let (a, b) = (Arc::new(a), Arc::new(b));
    let results = race(vec![a.clone(), b.clone()], 2);
    check(&results, &a);
    assert_eq!(a.slot_metrics(), b.slot_metrics());
}

#[test]
fn growth_while_mapped_is_seen_by_the_other_controller_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = Controller::bootstrap(config(dir.path())).unwrap();
    let (b, _) = Controller::bootstrap(config(dir.path())).unwrap();
    let len_before = std::fs::metadata(dir.path().join("trade-ledger.dat")).unwrap().len();
    // A adds symbols and claims windows spread over many chunks: the file grows several times.
    let mut claims = Vec::new();
    for sym in ["A0", "A1", "A2"] {
        let s = a.resolve_symbol(sym).unwrap();
        for w in (0..WINDOWS).step_by(50) {
            claims.push((sym, s, w, a.claim(SlotAddr::new(s, w, SlotKind::OptionQuote), Some(600_000)).unwrap().version));
        }
    }
    let len_after = std::fs::metadata(dir.path().join("trade-ledger.dat")).unwrap().len();
    assert!(len_after > len_before * 4, "the ledger grew ({len_before} -> {len_after})");
    // B sees the symbols and the claims.
    for (sym, s, w, v) in &claims {
        assert_eq!(b.symbol_id(sym).unwrap(), *s);
        let slot = b.read_slot(SlotAddr::new(*s, *w, SlotKind::OptionQuote)).unwrap();
        assert_eq!((slot.status, slot.version), (SlotStatus::Pending, *v));
    }
    // B uses chunks A allocated (other columns and windows of them), and A sees B's work.
    let s0 = b.symbol_id("A0").unwrap();
    let g = b.claim(SlotAddr::new(s0, 1, SlotKind::OptionTrade), Some(600_000)).unwrap();
    assert_eq!(a.read_slot(SlotAddr::new(s0, 1, SlotKind::OptionTrade)).unwrap().version, g.version);
    assert_eq!(b.claim(SlotAddr::new(s0, 0, SlotKind::OptionQuote), None).unwrap_err().code(), "ERR_SLOT_BUSY");
    assert_eq!(a.slot_metrics(), b.slot_metrics());
    drop((a, b));
    let (c, report) = Controller::bootstrap(config(dir.path())).unwrap();
    assert!(report.exclusive);
    assert_eq!(report.symbols, 3);
    for (_, s, w, v) in &claims {
        assert_eq!(c.read_slot(SlotAddr::new(*s, *w, SlotKind::OptionQuote)).unwrap().version, *v);
    }
    assert_eq!(c.slot_metrics(), c.recount().unwrap());
    assert_eq!(c.slot_metrics()[SlotKind::OptionQuote as usize].counts[SlotStatus::Pending as usize], claims.len() as u64);
}
