//! A refused or no-op transition reports the slot as it was at the instant
//! the decision was made, so the answer and the slot it carries always agree:
//! a claim refused as busy carries a Pending slot whose lease had not
//! expired, one refused as filled carries a Filled slot with its own fill's
//! checksum, and a force-clear that changed nothing names the status that
//! made it change nothing (Empty or Cleared), never another one.
//!
//! Each test makes another transition happen between the instant a call
//! loads the slot's head word and the instant it answers (the failpoints
//! `slot::claim-read` and `slot::admin-read`, whose callbacks run the other
//! transition on the same thread), which is what a writer preempted there
//! meets when other processes change the slot meanwhile.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use fail::FailScenario;
use portable_atomic::AtomicU128;
use window_space_core::audit::AuditContext;
use window_space_core::slot::{SlotCell, SlotWriteError};
use window_space_core::{Config, Controller, FillPayload, SlotAddr, SlotKind, SlotStatus, WindowSpace};

/// A slot's two words that live as long as the process, so a failpoint callback can reach them.
fn slot_words() -> (&'static AtomicU128, &'static AtomicU128) {
    (Box::leak(Box::new(AtomicU128::new(0))), Box::leak(Box::new(AtomicU128::new(0))))
}

fn payload(payload_id: u64, checksum: u64) -> FillPayload {
    FillPayload { payload_type: 2, payload_id, checksum }
}

/// Runs `steps[n]` at the n-th time the failpoint `name` is reached (and nothing after the last).
fn at_each_hit(name: &str, steps: Vec<Box<dyn Fn() + Send + Sync>>) {
    let hits = Arc::new(AtomicUsize::new(0));
    fail::cfg_callback(name, move || {
        if let Some(step) = steps.get(hits.fetch_add(1, Ordering::SeqCst)) {
            step();
        }
    })
    .unwrap();
}

/// The refusal of a claim agrees with the slot it carries.
fn assert_refusal_agrees(err: &SlotWriteError, now_ms: u64) {
    let s = err.current();
    match err {
        SlotWriteError::SlotBusy { .. } => {
            assert_eq!(s.status, SlotStatus::Pending, "a claim refused as busy carries {s:?}");
            assert!(s.lease_deadline_ms > now_ms, "busy, yet the lease it carries ran out at {} (now {now_ms})", s.lease_deadline_ms);
        }
        SlotWriteError::SlotFilled { .. } => assert_eq!(s.status, SlotStatus::Filled, "a claim refused as filled carries {s:?}"),
        SlotWriteError::SlotRetired { .. } => assert_eq!(s.status, SlotStatus::Retired, "a claim refused as retired carries {s:?}"),
        other => panic!("a claim refused with {other:?}"),
    }
}

#[test]
fn a_claim_refused_as_busy_carries_the_claim_it_met_even_if_that_claim_is_filled_before_the_answer() {
    let scenario = FailScenario::setup();
    let (h, t) = slot_words();
    let cell = SlotCell::new(h, t);
    cell.claim(1000, 100, || ()).unwrap();
    // The holder fills its claim just after the second claimant loaded the head word.
    at_each_hit(
        "slot::claim-read",
        vec![Box::new(move || {
            SlotCell::new(h, t).fill(1, payload(7, 0x77), || ()).unwrap();
        })],
    );
    let err = cell.claim(1050, 100, || ()).unwrap_err();
    assert_refusal_agrees(&err, 1050);
    assert_eq!((err.current().version, err.current().lease_deadline_ms), (1, 1100));
    scenario.teardown();
}

#[test]
fn a_claim_refused_as_filled_carries_the_fill_it_met_even_if_an_operator_clears_it_before_the_answer() {
    let scenario = FailScenario::setup();
    let (h, t) = slot_words();
    let cell = SlotCell::new(h, t);
    cell.claim(1000, 100, || ()).unwrap();
    cell.fill(1, payload(7, 0x77), || ()).unwrap();
    at_each_hit(
        "slot::claim-read",
        vec![Box::new(move || {
            SlotCell::new(h, t).force_clear(|| ()).unwrap();
        })],
    );
    let err = cell.claim(1050, 100, || ()).unwrap_err();
    assert_refusal_agrees(&err, 1050);
    let s = err.current();
    assert_eq!((s.version, s.payload_id, s.checksum), (2, 7, 0x77));
    scenario.teardown();
}

#[test]
fn a_claim_that_meets_a_fill_whose_checksum_word_a_newer_fill_has_rewritten_looks_again() {
    let scenario = FailScenario::setup();
    let (h, t) = slot_words();
    let cell = SlotCell::new(h, t);
    cell.claim(1000, 100, || ()).unwrap();
    cell.fill(1, payload(7, 0x77), || ()).unwrap();
    // A whole cycle (force-clear, claim, fill) after the claimant loaded the head word:
    // the checksum word then belongs to the newer fill, not to the head word loaded.
    at_each_hit(
        "slot::claim-read",
        vec![Box::new(move || {
            let c = SlotCell::new(h, t);
            c.force_clear(|| ()).unwrap();
            let v = c.claim(1010, 100, || ()).unwrap().0.version;
            c.fill(v, payload(9, 0x99), || ()).unwrap();
        })],
    );
    let err = cell.claim(1050, 100, || ()).unwrap_err();
    assert_refusal_agrees(&err, 1050);
    let s = err.current();
    assert_eq!((s.version, s.payload_id, s.checksum), (5, 9, 0x99), "the newer fill, whole");
    scenario.teardown();
}

fn controller(dir: &Path) -> Arc<Controller> {
    let space = WindowSpace::Uniform { origin_ns: 0, window_ns: 1_000_000_000, window_count: 8 };
    Arc::new(Controller::bootstrap(Config::new(dir, space)).unwrap().0)
}

#[test]
fn a_force_clear_that_changes_nothing_names_the_status_that_made_it_change_nothing() {
    let scenario = FailScenario::setup();
    let d = tempfile::tempdir().unwrap();
    let c = controller(d.path());
    let at = SlotAddr::new(c.resolve_symbol("SPY").unwrap(), 3, SlotKind::OptionTrade);
    let v = c.claim(at, Some(60_000)).unwrap().version;
    // The force-clear finds the claim; before its compare-and-swap the holder
    // gives the slot back (so there is nothing to clear), and before it
    // answers, another engine claims the slot again.
    let (c1, c2) = (c.clone(), c.clone());
    at_each_hit(
        "slot::admin-read",
        vec![
            Box::new(move || {
                c1.clear(at, v).unwrap();
            }),
            Box::new(move || {
                c2.claim(at, Some(60_000)).unwrap();
            }),
        ],
    );
    let t = c.force_clear(at, &AuditContext::default()).unwrap();
    let changed = t.to == SlotStatus::Cleared && matches!(t.from, SlotStatus::Pending | SlotStatus::Filled);
    let unchanged = t.from == t.to && matches!(t.from, SlotStatus::Empty | SlotStatus::Cleared);
    assert!(changed || unchanged, "a force-clear answered {:?} → {:?} at version {}", t.from, t.to, t.version);
    assert_eq!((t.from, t.to, t.version), (SlotStatus::Cleared, SlotStatus::Cleared, v + 1));
    scenario.teardown();
}
