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

/// Rewrites the format version of the ledger `name` of `dir` (bytes 8..12)
/// and its header checksum (xxh3-64 of bytes 0..48, at 48).
fn set_ledger_version(dir: &Path, name: &str, version: u32) {
    let path = dir.join(name);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&version.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&bytes[..48]);
    bytes[48..56].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
}

fn ledger_version(dir: &Path, name: &str) -> u32 {
    let bytes = std::fs::read(dir.join(name)).unwrap();
    u32::from_le_bytes(bytes[8..12].try_into().unwrap())
}

const LEDGERS: [&str; 2] = ["trade-ledger.dat", "enrichment-ledger.dat"];

/// A directory of format version 2 (one counter shard: shards 1 to 3 were
/// reserved zeros) is read as version 3 by the offline tools, which write
/// nothing, and a bootstrap alone rewrites its headers to version 3, also
/// when a bootstrap died between the two ledgers; with other controllers
/// open, a version-2 ledger is an older library's and is refused, changing
/// nothing.
#[test]
fn a_directory_of_format_version_2_is_upgraded_in_place_by_a_bootstrap_alone() {
    let dir = tempfile::tempdir().unwrap();
    let kind = SlotKind::OptionTrade;
    {
        let (c, _) = Controller::bootstrap(config(dir.path())).unwrap();
        let s = c.resolve_symbol("OLD").unwrap();
        for w in 0..5 {
            let g = c.claim(SlotAddr::new(s, w, kind), Some(600_000)).unwrap();
            if w % 2 == 0 {
                fill(&c, SlotAddr::new(s, w, kind), g.version);
            }
        }
    }
    // Closed, then opened alone once more: the exact counts are in shard 0, shards 1 to 3 are zero, as in version 2.
    drop(Controller::bootstrap(config(dir.path())).unwrap());
    for name in LEDGERS {
        assert_eq!(ledger_version(dir.path(), name), 3);
        set_ledger_version(dir.path(), name, 2);
    }
    let before: Vec<Vec<u8>> = LEDGERS.iter().map(|n| std::fs::read(dir.path().join(n)).unwrap()).collect();

    let reader = StateReader::open(dir.path()).unwrap();
    assert_eq!(reader.ledger(LedgerKind::Trade).counters().unwrap().status[kind.column()], [2, 3, 0, 0]);
    drop(reader);
    let report = window_space_core::ops::migrate::migrate(dir.path(), &window_space_core::ops::migrate::MigrateOptions::default()).unwrap();
    assert!(report.already_current, "{report:?}");
    let after: Vec<Vec<u8>> = LEDGERS.iter().map(|n| std::fs::read(dir.path().join(n)).unwrap()).collect();
    assert!(before == after, "reading and migrating a version-2 directory write nothing to its ledgers");

    let (c, _) = Controller::bootstrap(config(dir.path())).unwrap();
    for name in LEDGERS {
        assert_eq!(ledger_version(dir.path(), name), 3, "{name} upgraded");
    }
    assert_eq!(c.slot_metrics(), c.recount().unwrap());
    // An older library's ledger beside this open controller: refused, nothing changed.
    set_ledger_version(dir.path(), "enrichment-ledger.dat", 2);
    let held: Vec<Vec<u8>> = LEDGERS.iter().map(|n| std::fs::read(dir.path().join(n)).unwrap()).collect();
    let e = Controller::bootstrap(config(dir.path())).err().expect("refused while another controller is open");
    assert_eq!(e.code().as_str(), "ERR_CORRUPT_STATE");
    assert!(e.to_string().contains("enrichment-ledger.dat") && e.to_string().contains("format version 2"), "{e}");
    let now: Vec<Vec<u8>> = LEDGERS.iter().map(|n| std::fs::read(dir.path().join(n)).unwrap()).collect();
    assert!(held == now, "the refused bootstrap wrote nothing to the ledgers");
    drop(c);
    // Alone, with one ledger upgraded and one not (a bootstrap died between them): both end at version 3.
    let (c, _) = Controller::bootstrap(config(dir.path())).unwrap();
    for name in LEDGERS {
        assert_eq!(ledger_version(dir.path(), name), 3, "{name} upgraded");
    }
    assert_eq!(c.slot_metrics(), c.recount().unwrap());
    let m = &c.slot_metrics()[kind as usize].counts;
    assert_eq!((m[SlotStatus::Pending as usize], m[SlotStatus::Filled as usize]), (2, 3));
}
