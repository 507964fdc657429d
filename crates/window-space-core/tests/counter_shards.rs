//! Counter shards: controllers open on one directory count their
//! transitions in different shards of the ledger header (so they do not
//! write the same cache lines on every transition), and every reader — the
//! metrics, the recount, the offline reader — sees the shards' sum.
//!
//! The shard words are read straight from the file at the offsets the
//! format gives (`ledger.rs`): shard `s` at 320 + 576 s, the status counts
//! `[column][Pending, Filled, Cleared, Retired]` u64 at +0, the event counts
//! at +512.

use std::path::Path;

use window_space_core::ops::reader::StateReader;
use window_space_core::{
    Config, Controller, FillPayload, LedgerEvent, LedgerKind, PayloadInput, SlotAddr, SlotKind, SlotStatus, StoreKind, WindowSpace,
};

const WINDOWS: u32 = 600;
const SHARDS: usize = 4;

fn config(dir: &Path) -> Config {
    Config::new(dir, WindowSpace::Uniform { origin_ns: 0, window_ns: 1_000_000_000, window_count: WINDOWS })
}

fn u64_at(bytes: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap())
}

/// Pending, Filled, Cleared, Retired of `column` in each shard of the trade ledger.
fn shard_status(dir: &Path, column: usize) -> Vec<[u64; 4]> {
    let bytes = std::fs::read(dir.join("trade-ledger.dat")).unwrap();
    (0..SHARDS).map(|s| std::array::from_fn(|i| u64_at(&bytes, 320 + 576 * s + (column * 4 + i) * 8))).collect()
}

/// Claims of each shard of the trade ledger.
fn shard_claims(dir: &Path) -> Vec<u64> {
    let bytes = std::fs::read(dir.join("trade-ledger.dat")).unwrap();
    (0..SHARDS).map(|s| u64_at(&bytes, 320 + 576 * s + 512 + LedgerEvent::Claims as usize * 8)).collect()
}

fn fill(c: &Controller, at: SlotAddr, version: u32) {
    let rec = PayloadInput {
        symbol_id: at.symbol,
        window_idx: at.window,
        slot_kind: at.kind,
        payload_type: 1,
        checksum: 7,
        size: 1,
        uri: format!("t/{}", at.window),
    };
    let id = c.append_payload(StoreKind::Trades, rec).unwrap();
    c.fill(at, version, FillPayload { payload_type: 1, payload_id: id, checksum: 7 }).unwrap();
}

/// A controller's shard follows the process id and how many controllers the
/// process opened before it, so the scenarios run one after the other in one
/// test: opens from a test running beside them would take shards in between.
#[test]
fn controllers_count_apart_and_every_reader_sees_the_sum() {
    controllers_count_in_their_own_shards_and_every_reader_sees_the_sum();
    a_fifth_controller_shares_a_shard_and_the_sums_stay_exact();
}

fn controllers_count_in_their_own_shards_and_every_reader_sees_the_sum() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = Controller::bootstrap(config(dir.path())).unwrap();
    let s = first.resolve_symbol("SHARDED").unwrap();
    let mut controllers = vec![first];
    for _ in 1..SHARDS {
        controllers.push(Controller::bootstrap(config(dir.path())).unwrap().0);
    }
    let kind = SlotKind::OptionTrade;
    let column = kind.column();

    // Controller i claims windows i*10 .. i*10 + i + 1: a different number each.
    for (i, c) in controllers.iter().enumerate() {
        for w in 0..=i as u32 {
            c.claim(SlotAddr::new(s, i as u32 * 10 + w, kind), Some(600_000)).unwrap();
        }
    }
    let mut claims = shard_claims(dir.path());
    claims.sort_unstable();
    assert_eq!(claims, vec![1, 2, 3, 4], "each controller counted its claims in a shard of its own");

    // A slot claimed by the first controller and filled by the second: +1
    // Pending in one shard, -1 (wrapped) in the other, and the sums are right.
    let at = SlotAddr::new(s, 500, kind);
    let before = shard_status(dir.path(), column);
    let g = controllers[0].claim(at, Some(600_000)).unwrap();
    fill(&controllers[1], at, g.version);
    let shards = shard_status(dir.path(), column);
    let mut moved: Vec<[i64; 4]> =
        shards.iter().zip(&before).map(|(a, b)| std::array::from_fn(|i| a[i].wrapping_sub(b[i]) as i64)).filter(|d| *d != [0; 4]).collect();
    moved.sort_unstable();
    assert_eq!(moved, vec![[-1, 1, 0, 0], [1, 0, 0, 0]], "the claimer's shard gained the Pending slot, the filler's moved it to Filled");
    let pending = shards.iter().fold(0u64, |a, c| a.wrapping_add(c[0]));
    let filled = shards.iter().fold(0u64, |a, c| a.wrapping_add(c[1]));
    assert_eq!((pending, filled), (1 + 2 + 3 + 4, 1));

    let exact = controllers[0].recount().unwrap();
    for c in &controllers {
        assert_eq!(c.slot_metrics(), exact, "metrics are the shards' sum and match a scan");
    }
    let m = &exact[kind as usize].counts;
    assert_eq!((m[SlotStatus::Pending as usize], m[SlotStatus::Filled as usize]), (10, 1));
    assert_eq!(controllers[2].events(LedgerKind::Trade).iter().find(|(e, _)| *e == LedgerEvent::Claims).unwrap().1, 11);

    let reader = StateReader::open(dir.path()).unwrap();
    let offline = reader.ledger(LedgerKind::Trade).counters().unwrap();
    assert_eq!(offline.status[column], [10, 1, 0, 0], "the offline reader sums the shards too");
    assert_eq!(offline.events.iter().find(|(e, _)| *e == LedgerEvent::Claims).unwrap().1, 11);
    drop(reader);

    // Alone again, a bootstrap stores the exact counts in shard 0 and zeroes the rest.
    drop(controllers);
    let (c, _) = Controller::bootstrap(config(dir.path())).unwrap();
    let shards = shard_status(dir.path(), column);
    assert_eq!(shards[0], [10, 1, 0, 0]);
    assert!(shards[1..].iter().all(|c| *c == [0; 4]), "{shards:?}");
    assert_eq!(c.slot_metrics(), c.recount().unwrap());
}

fn a_fifth_controller_shares_a_shard_and_the_sums_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = Controller::bootstrap(config(dir.path())).unwrap();
    let s = first.resolve_symbol("MANY").unwrap();
    let mut controllers = vec![first];
    for _ in 1..=SHARDS {
        controllers.push(Controller::bootstrap(config(dir.path())).unwrap().0);
    }
    let kind = SlotKind::OptionTrade;
    for (i, c) in controllers.iter().enumerate() {
        let at = SlotAddr::new(s, i as u32, kind);
        let g = c.claim(at, Some(600_000)).unwrap();
        if i % 2 == 0 {
            fill(&controllers[(i + 1) % controllers.len()], at, g.version);
        }
    }
    let claims = shard_claims(dir.path());
    assert_eq!(claims.iter().sum::<u64>(), 5);
    assert_eq!(claims.iter().filter(|n| **n == 2).count(), 1, "five controllers on four shards: one shard counts two: {claims:?}");
    let exact = controllers[3].recount().unwrap();
    assert_eq!(controllers[4].slot_metrics(), exact);
    let m = &exact[kind as usize].counts;
    assert_eq!((m[SlotStatus::Pending as usize], m[SlotStatus::Filled as usize]), (2, 3));
}
