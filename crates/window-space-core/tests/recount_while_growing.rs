//! `recount` is exact while other controllers (which coordinate through the
//! files exactly as other processes do) add symbols or roll the schedule
//! forward and write slots of them during the scan: a slot of a symbol or
//! window the scan did not know yet is no damage once the directory holds it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use window_space_core::{Config, Controller, SlotAddr, SlotKind, SlotStatus, WindowSpace};

fn space(windows: u32) -> WindowSpace {
    WindowSpace::Uniform { origin_ns: 0, window_ns: 1_000_000_000, window_count: windows }
}

/// Runs `recount` on `c` until `done`, checking each result; returns how many ran.
fn recount_until(c: &Controller, done: &AtomicBool) -> u64 {
    let mut n = 0;
    while !done.load(Ordering::Acquire) || n == 0 {
        let metrics = c.recount().unwrap_or_else(|e| panic!("recount {n} failed while the directory grew: {e}"));
        for m in &metrics {
            assert!(m.counts.iter().all(|&x| x < u64::MAX / 2), "{m:?}");
        }
        n += 1;
    }
    n
}

#[test]
fn recount_while_another_controller_adds_symbols_and_fills_their_slots() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = Controller::bootstrap(Config::new(dir.path(), space(2000))).unwrap();
    // Some rows already, so that a scan takes a while.
    let base = c.resolve_symbol("BASE").unwrap();
    for w in (0..2000).step_by(10) {
        c.claim(SlotAddr::new(base, w, SlotKind::OptionTrade), None).unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    let adder = {
        let (path, done) = (dir.path().to_path_buf(), done.clone());
        std::thread::spawn(move || {
            let (other, _) = Controller::bootstrap(Config::new(&path, space(2000))).unwrap();
            for i in 0..300u32 {
                let s = other.resolve_symbol(&format!("NEW{i}")).unwrap();
                other.claim(SlotAddr::new(s, i % 2000, SlotKind::OptionTrade), None).unwrap();
                other.claim(SlotAddr::new(s, (i * 7) % 2000, SlotKind::Greeks), None).unwrap();
            }
            done.store(true, Ordering::Release);
        })
    };
    let n = recount_until(&c, &done);
    adder.join().unwrap();
    let last = c.recount().unwrap();
    let pending = |kind: SlotKind| last.iter().find(|m| m.kind == kind).unwrap().counts[SlotStatus::Pending as usize];
    assert_eq!(pending(SlotKind::OptionTrade), 200 + 300);
    assert_eq!(pending(SlotKind::Greeks), 300);
    for m in &last {
        assert_eq!(m.counts.iter().sum::<u64>(), 301 * 2000, "{m:?}: every slot of 301 symbols × 2000 windows counted once");
    }
    assert!(n > 0);
}

#[test]
fn recount_while_another_controller_rolls_the_schedule_forward_and_claims_new_windows() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = Controller::bootstrap(Config::new(dir.path(), space(1000))).unwrap();
    let s = c.resolve_symbol("ROLL").unwrap();
    for w in (0..1000).step_by(5) {
        c.claim(SlotAddr::new(s, w, SlotKind::OptionQuote), None).unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    let roller = {
        let (path, done) = (dir.path().to_path_buf(), done.clone());
        std::thread::spawn(move || {
            for step in 1..=40u32 {
                let windows = 1000 + step * 50;
                let (other, report) = Controller::bootstrap(Config::new(&path, space(windows))).unwrap();
                assert_eq!(report.schedule, "rolledForward");
                let s = other.symbol_id("ROLL").unwrap();
                other.claim(SlotAddr::new(s, windows - 1, SlotKind::OptionQuote), None).unwrap();
            }
            done.store(true, Ordering::Release);
        })
    };
    recount_until(&c, &done);
    roller.join().unwrap();
    let last = c.recount().unwrap();
    let quotes = last.iter().find(|m| m.kind == SlotKind::OptionQuote).unwrap();
    assert_eq!(quotes.counts[SlotStatus::Pending as usize], 200 + 40);
    assert_eq!(quotes.counts.iter().sum::<u64>(), 3000);
}
