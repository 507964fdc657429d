//! Damage a random state file at a random place — flip bytes, truncate,
//! overwrite with garbage, delete — and bootstrap: it either succeeds, or fails
//! with a typed error (never a panic or a signal) and leaves every file byte
//! for byte as it was. The one allowed repair, cutting a torn tail of a mapping
//! table, only ever shortens that file and is named in the storage report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use window_space_core::audit::AuditContext;
use window_space_core::{Config, Controller, FillPayload, PayloadInput, SlotAddr, SlotKind, StoreKind, WindowSpace};

const WINDOWS: u32 = 400;

fn config(dir: &Path) -> Config {
    Config::new(dir, WindowSpace::Uniform { origin_ns: 0, window_ns: 1_000_000_000, window_count: WINDOWS })
}

/// A state directory with symbols, slots in every status and payload records.
fn populated() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let (c, _) = Controller::bootstrap(config(d.path())).unwrap();
    for (i, sym) in ["SPY", "AAPL", "QQQ"].iter().enumerate() {
        let s = c.resolve_symbol(sym).unwrap();
        for w in (0..WINDOWS).step_by(7 + i) {
            let at = SlotAddr::new(s, w, SlotKind::OptionTrade);
            let g = c.claim(at, Some(60_000)).unwrap();
            match w % 4 {
                0 => {
                    let rec = PayloadInput {
                        symbol_id: s,
                        window_idx: w,
                        slot_kind: SlotKind::OptionTrade,
                        payload_type: 1,
                        checksum: u64::from(w),
                        size: 1,
                        uri: format!("a/{sym}/{w}"),
                    };
                    let id = c.append_payload(StoreKind::Trades, rec).unwrap();
                    c.fill(at, g.version, FillPayload { payload_type: 1, payload_id: id, checksum: u64::from(w) }).unwrap();
                }
                1 => {
                    c.clear(at, g.version).unwrap();
                }
                2 => {
                    c.retire(SlotAddr::new(s, w, SlotKind::Greeks), &AuditContext::default()).unwrap();
                }
                _ => {}
            }
        }
    }
    d
}

/// Every state file's bytes. In ledger files the shared counter words (bytes
/// 256..2624: chunk count aside, the symbol/window counts and the counter
/// shards) are masked: they are derived
/// state that a bootstrap with no other controller open rewrites from an
/// exact scan.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "window-space.lock" && e.path().is_file())
        .map(|e| {
            let mut bytes = std::fs::read(e.path()).unwrap();
            if e.path().extension().is_some_and(|x| x == "dat") && bytes.len() >= 2624 {
                bytes[264..2624].fill(0);
            }
            (e.path(), bytes)
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Damage {
    Flip { at: prop::sample::Index, xor: u8 },
    Truncate { at: prop::sample::Index },
    Garbage { at: prop::sample::Index, bytes: Vec<u8> },
    Delete,
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(at, xor)| Damage::Flip { at, xor }),
        3 => any::<prop::sample::Index>().prop_map(|at| Damage::Truncate { at }),
        2 => (any::<prop::sample::Index>(), proptest::collection::vec(any::<u8>(), 1..64)).prop_map(|(at, bytes)| Damage::Garbage { at, bytes }),
        1 => Just(Damage::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

    #[test]
    fn bootstrap_on_damage_is_ok_or_a_typed_error_that_changes_nothing(file in 0usize..13, d in damage()) {
        let dir = populated();
        // The state files, the derived change journal (recreated when deleted)
        // and the audit trail (not read by bootstrap; `verify` checks it).
        let mut names = window_space_core::controller::state_file_names();
        names.extend(["changes.journal", "audit.log"]);
        let path = dir.path().join(names[file % names.len()]);
        let mut bytes = std::fs::read(&path).unwrap();
        match &d {
            Damage::Flip { at, xor } => {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] ^= xor;
                }
            }
            Damage::Truncate { at } => {
                let n = at.index(bytes.len().max(1));
                bytes.truncate(n);
            }
            Damage::Garbage { at, bytes: g } => {
                let i = at.index(bytes.len().max(1));
                for (k, b) in g.iter().enumerate() {
                    if i + k < bytes.len() {
                        bytes[i + k] = *b;
                    }
                }
            }
            Damage::Delete => {}
        }
        if matches!(d, Damage::Delete) {
            std::fs::remove_file(&path).unwrap();
        } else {
            std::fs::write(&path, &bytes).unwrap();
        }
        let before = snapshot(dir.path());
        match Controller::bootstrap(config(dir.path())) {
            Ok((c, report)) => {
                // Still a consistent state: metrics exact.
                prop_assert_eq!(c.slot_metrics(), c.recount().unwrap());
                let after = snapshot(dir.path());
                for (p, old) in &before {
                    let new = &after[p];
                    let repaired = report.stores.iter().any(|s| s.torn_tail_repaired && p.file_name().unwrap() == s.store.file_name());
                    if p.file_name().unwrap() == "changes.journal" {
                        // Derived: a bootstrap alone resets its shared words and
                        // makes anew one of another format version.
                        prop_assert!(window_space_core::journal::Journal::open(p).is_ok());
                    } else if repaired {
                        prop_assert!(new.len() < old.len() && old.starts_with(new), "torn-tail repair may only cut {}", p.display());
                    } else {
                        prop_assert!(new == old, "{} changed by a bootstrap that reported no repair", p.display());
                    }
                }
            }
            Err(e) => {
                // A flipped digit in schedule.json can make another valid schedule:
                // that is a schedule mismatch, the specific class for it.
                prop_assert!(matches!(e.code().as_str(), "ERR_CORRUPT_STATE" | "ERR_NEWER_FORMAT" | "ERR_IO" | "ERR_SCHEDULE_MISMATCH"), "unexpected error {}: {}", e.code(), e);
                if e.code() != "ERR_SCHEDULE_MISMATCH" {
                    prop_assert!(e.to_string().contains(dir.path().to_str().unwrap()), "error does not name the file: {}", e);
                }
                prop_assert_eq!(snapshot(dir.path()), before, "a failed bootstrap changed files");
            }
        }
    }
}

/// Rewrites a header field and its checksum, so the header is well-formed but
/// says something this library does not read.
fn rewrite_header(path: &Path, at: usize, value: u32, checked: usize, sum_at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at..at + 4].copy_from_slice(&value.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&b[..checked]);
    b[sum_at..sum_at + 8].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(path, b).unwrap();
}

#[test]
fn wrong_magic_in_any_binary_file_is_refused_and_named() {
    for name in [
        "trade-ledger.dat",
        "enrichment-ledger.dat",
        "trades.map",
        "quotes.map",
        "aggressor.map",
        "rf_rate.map",
        "greeks.map",
        "aggregations.map",
        "changes.journal",
    ] {
        let dir = populated();
        let path = dir.path().join(name);
        let mut b = std::fs::read(&path).unwrap();
        b[1] = b'X';
        std::fs::write(&path, &b).unwrap();
        let before = snapshot(dir.path());
        let err = Controller::bootstrap(config(dir.path())).err().expect("wrong magic must fail");
        assert_eq!(err.code(), "ERR_CORRUPT_STATE", "{name}");
        let msg = err.to_string();
        assert!(msg.contains(name) && msg.contains("magic") && msg.contains("offset 0"), "{name}: {msg}");
        assert_eq!(snapshot(dir.path()), before, "{name}");
    }
}

#[test]
fn a_file_of_a_newer_format_is_named_as_newer_and_an_unknown_older_one_as_damage() {
    // (The change journal is derived: one of another format version is made
    // anew; journal.rs tests that.)
    for (name, checked, sum_at) in
        [("trade-ledger.dat", 48, 48), ("enrichment-ledger.dat", 48, 48), ("trades.map", 56, 56), ("greeks.map", 56, 56)]
    {
        // A newer version, with or without a header checksum this library
        // can check: the version is read before the checksum.
        for fix_checksum in [true, false] {
            let dir = populated();
            let path = dir.path().join(name);
            if fix_checksum {
                rewrite_header(&path, 8, 7, checked, sum_at);
            } else {
                let mut b = std::fs::read(&path).unwrap();
                b[8..12].copy_from_slice(&7u32.to_le_bytes());
                std::fs::write(&path, b).unwrap();
            }
            let before = snapshot(dir.path());
            let err = Controller::bootstrap(config(dir.path())).err().expect("version 7 must fail");
            assert_eq!(err.code(), "ERR_NEWER_FORMAT", "{name}: {err}");
            let msg = err.to_string();
            assert!(msg.contains(name) && msg.contains("newer version") && msg.contains("format version 7"), "{msg}");
            assert_eq!(snapshot(dir.path()), before);
        }
        let dir = populated();
        rewrite_header(&dir.path().join(name), 8, 0, checked, sum_at);
        let before = snapshot(dir.path());
        let err = Controller::bootstrap(config(dir.path())).err().expect("version 0 must fail");
        assert_eq!(err.code(), "ERR_CORRUPT_STATE");
        let msg = err.to_string();
        assert!(msg.contains(name) && msg.contains("format version 0") && msg.contains("offset 8"), "{msg}");
        assert_eq!(snapshot(dir.path()), before);
    }
}

#[test]
fn a_deleted_change_journal_is_recreated_and_nothing_else_changes() {
    let dir = populated();
    std::fs::remove_file(dir.path().join("changes.journal")).unwrap();
    let before = snapshot(dir.path());
    let (c, report) = Controller::bootstrap(config(dir.path())).unwrap();
    assert!(report.files.iter().any(|f| f.name == "changes.journal" && f.bytes > 4096));
    assert_eq!(c.journal().head(), 0);
    let after = snapshot(dir.path());
    for (p, old) in &before {
        assert_eq!(&after[p], old, "{}", p.display());
    }
}

#[test]
fn a_schedule_from_another_state_directory_is_a_mismatch() {
    let dir = populated();
    let other = tempfile::tempdir().unwrap();
    let other_space = WindowSpace::Uniform { origin_ns: 5, window_ns: 1_000_000_000, window_count: WINDOWS };
    drop(Controller::bootstrap(Config::new(other.path(), other_space)).unwrap());
    std::fs::copy(other.path().join("schedule.json"), dir.path().join("schedule.json")).unwrap();
    let before = snapshot(dir.path());
    let err = Controller::bootstrap(config(dir.path())).err().expect("mismatch");
    assert_eq!(err.code(), "ERR_SCHEDULE_MISMATCH");
    assert_eq!(snapshot(dir.path()), before);
}
