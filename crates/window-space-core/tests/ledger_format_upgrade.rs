//! A state directory of ledger format version 2 (one counter shard; shards
//! 1 to 3 of the header were reserved zeros) is read as version 3, and a
//! bootstrap alone rewrites its ledgers' headers in place (`ledger.rs`,
//! File format). Its own test binary: a controller's counter shard follows
//! how many controllers its process opened, which `counter_shards.rs`
//! counts on.

use std::path::Path;

use window_space_core::ops::reader::StateReader;
use window_space_core::{
    Config, Controller, FillPayload, LedgerKind, PayloadInput, SlotAddr, SlotKind, SlotStatus, StoreKind, WindowSpace,
};

fn config(dir: &Path) -> Config {
    Config::new(dir, WindowSpace::Uniform { origin_ns: 0, window_ns: 1_000_000_000, window_count: 600 })
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
