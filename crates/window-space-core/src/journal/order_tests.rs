//! One slot's changes are journaled in version order: a writer takes its
//! number after reading the slot's head and before its compare-and-swap, and
//! takes a new one when the compare-and-swap fails, so of two transitions of
//! one slot the later (higher version) always has the higher number.

use std::sync::Arc;

use super::{JournalRead, ReadEnd};
use crate::audit::AuditContext;
use crate::controller::{Config, Controller};
use crate::schedule::WindowSpace;
use crate::slot::{FillPayload, SlotAddr};
use crate::vocab::{SlotKind, SlotStatus, StoreKind};
use crate::PayloadInput;

const SYMBOL: u32 = 0;

fn controller(capacity: u64) -> (tempfile::TempDir, Arc<Controller>) {
    let d = tempfile::tempdir().unwrap();
    let mut config = Config::new(d.path(), WindowSpace::Uniform { origin_ns: 0, window_ns: 1_000_000_000, window_count: 64 });
    config.journal_capacity = capacity;
    let (c, _) = Controller::bootstrap(config).unwrap();
    assert_eq!(c.resolve_symbol("ORDER").unwrap(), SYMBOL);
    (d, Arc::new(c))
}

/// Reads every journaled change from 0 on and checks that each slot's
/// changes come one version after the other, each from the status the one
/// before left. Returns how many changes it read.
fn check_order(c: &Controller) -> usize {
    let j = c.journal();
    let mut last = std::collections::HashMap::new();
    let (mut from, mut n) = (0, 0);
    loop {
        let (changes, next) = match j.read(j.epoch(), from, 4096) {
            JournalRead::Entries { changes, next, end } => {
                assert_eq!(end, ReadEnd::Read, "every writer has finished");
                (changes, next)
            }
            JournalRead::Gap { resume_at, reason } => panic!("a gap ({reason:?}) at {from}, resume at {resume_at}"),
        };
        for ch in &changes {
            let before = last.get(&(ch.window_idx, ch.kind)).copied().unwrap_or((0, SlotStatus::Empty));
            assert_eq!(
                (ch.version, ch.from),
                (before.0 + 1, before.1),
                "seq {}: window {} {} {:?}→{:?} v{} after {:?} v{}",
                ch.seq,
                ch.window_idx,
                ch.kind,
                ch.from,
                ch.to,
                ch.version,
                before.1,
                before.0
            );
            last.insert((ch.window_idx, ch.kind), (ch.version, ch.to));
        }
        n += changes.len();
        if next == from {
            break;
        }
        from = next;
    }
    for ((w, kind), (version, status)) in last {
        let s = c.read_slot(SlotAddr::new(SYMBOL, w, kind)).unwrap();
        assert_eq!((s.version, s.status), (version, status), "the journal ends where the slot is");
    }
    n
}

fn store_of(kind: SlotKind) -> StoreKind {
    kind.store()
}

/// One engine's work: claims (half with leases that expire at once, so the
/// next claim takes over), fills, clears and force-clears on a few slots.
fn race(c: &Controller, seed: u64, ops: usize, windows: &[u32], kinds: &[SlotKind]) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..ops {
        let at = SlotAddr::new(SYMBOL, windows[rand() as usize % windows.len()], kinds[rand() as usize % kinds.len()]);
        let r = rand() % 100;
        if r < 12 {
            let _ = c.force_clear(at, &AuditContext::default());
            continue;
        }
        let lease = if rand() % 2 == 0 { 0 } else { 60_000 };
        let Ok(g) = c.claim(at, Some(lease)) else { continue };
        if r < 30 {
            let _ = c.clear(at, g.version);
        } else if r < 90 {
            let input = PayloadInput {
                symbol_id: SYMBOL,
                window_idx: at.window,
                slot_kind: at.kind,
                payload_type: 1,
                checksum: 1,
                size: 1,
                uri: format!("o/{}/{}", at.window, g.version),
            };
            let id = c.append_payload(store_of(at.kind), input).unwrap();
            if c.fill(at, g.version, FillPayload { payload_type: 1, payload_id: id, checksum: 1 }).is_ok() && rand() % 2 == 0 {
                let _ = c.force_clear(at, &AuditContext::default());
            }
        }
    }
}

#[test]
fn racing_threads_journal_each_slots_changes_in_version_order() {
    // Yield between taking a number and the compare-and-swap, so racing
    // writers interleave there as often as possible (with the crash points
    // compiled in; without them the race still runs).
    #[cfg(feature = "failpoints")]
    let scenario = {
        let s = fail::FailScenario::setup();
        fail::cfg("journal::reserved", "yield").unwrap();
        s
    };
    let (_d, c) = controller(1 << 20);
    let kinds = [SlotKind::Greeks, SlotKind::OptionQuote];
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || race(&c, t + 1, 20_000, &[0, 1, 2], &kinds))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    #[cfg(feature = "failpoints")]
    scenario.teardown();
    assert!(check_order(&c) > 5_000);
}

#[cfg(feature = "failpoints")]
#[test]
fn a_writer_stalled_after_taking_its_number_journals_its_change_after_the_one_that_overtook_it() {
    use std::sync::{Barrier, Mutex};
    // A retires the slot but stops right after taking its number; B
    // force-clears the same slot meanwhile; then A goes on. Whatever A's
    // number was, A's change (one version after B's) must come after B's.
    let scenario = fail::FailScenario::setup();
    let (_d, c) = controller(64);
    let at = SlotAddr::new(SYMBOL, 5, SlotKind::Greeks);
    c.claim(at, Some(60_000)).unwrap();
    let (stopped, go) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let first = Arc::new(Mutex::new(true));
    let a = {
        let (c, stopped, go, first) = (c.clone(), stopped.clone(), go.clone(), first.clone());
        std::thread::spawn(move || {
            // Other tests of this binary write journals meanwhile: stop this thread only.
            let me = std::thread::current().id();
            fail::cfg_callback("journal::reserved", move || {
                if std::thread::current().id() == me && std::mem::replace(&mut *first.lock().unwrap(), false) {
                    stopped.wait();
                    go.wait();
                }
            })
            .unwrap();
            c.retire(at, &AuditContext::default()).unwrap()
        })
    };
    stopped.wait();
    let b = c.force_clear(at, &AuditContext::default()).unwrap();
    go.wait();
    let a = a.join().unwrap();
    scenario.teardown();
    assert_eq!((b.version, a.version), (2, 3));
    check_order(&c);
}
