//! Property-based fuzzing of every parser of the state directory's files (the
//! proptest equivalent of `cargo fuzz` targets, so it runs in CI): ledger
//! headers, mapping-table headers and records, symbol-log headers and records,
//! symbol-map.json (read for conversion), schedule.json,
//! the change journal's header and audit.log lines.
//! Arbitrary bytes never panic; valid encodings round-trip; a flipped byte in a
//! record is detected.

use std::path::Path;

use proptest::prelude::*;
use window_space_core::ledger::LedgerGeometry;
use window_space_core::payload::{decode_header, encode_lost_record, encode_record, parse_record, Parsed, PayloadRecord, StoreKind};
use window_space_core::schedule::Schedule;
use window_space_core::symbols::parse_symbol_map;
use window_space_core::LedgerKind;

const P: &str = "fuzz";

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn ledger_header_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
        for kind in LedgerKind::ALL {
            if let Err(e) = LedgerGeometry::decode(Path::new(P), kind, &bytes) {
                prop_assert_eq!(e.code(), "ERR_CORRUPT_STATE");
            }
        }
    }

    #[test]
    fn journal_header_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
        if let Err(e) = window_space_core::journal::decode_header(Path::new(P), &bytes) {
            prop_assert_eq!(e.code(), "ERR_CORRUPT_STATE");
        }
    }

    #[test]
    fn audit_log_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.log");
        std::fs::write(&p, &bytes).unwrap();
        if let Err(e) = window_space_core::audit::AuditLog::read_all(&p) {
            prop_assert_eq!(e.code(), "ERR_CORRUPT_STATE");
        }
    }

    #[test]
    fn map_header_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        for kind in StoreKind::ALL {
            if let Err(e) = decode_header(Path::new(P), kind, &bytes) {
                prop_assert_eq!(e.code(), "ERR_CORRUPT_STATE");
            }
        }
    }

    #[test]
    fn records_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_record(&bytes);
    }

    #[test]
    fn records_round_trip_and_flips_are_caught(
        id in any::<u64>(), symbol in any::<u32>(), window in any::<u32>(), kind in 0u8..9, ptype in any::<u8>(),
        checksum in any::<u64>(), size in any::<u64>(), created in any::<u64>(), uri in "\\PC{0,200}",
        flip_at in any::<prop::sample::Index>(), flip in 1u8..=255,
    ) {
        let rec = PayloadRecord { payload_id: id, symbol_id: symbol, window_idx: window, slot_kind: kind, payload_type: ptype, checksum, size, created_at_ns: created, uri };
        let bytes = encode_record(&rec).unwrap();
        prop_assert_eq!(bytes.len() % 8, 0);
        match parse_record(&bytes) {
            Parsed::Record(back, n) => { prop_assert_eq!(&back, &rec); prop_assert_eq!(n, bytes.len()); }
            other => prop_assert!(false, "valid record did not parse: {:?}", other),
        }
        // Every prefix is incomplete, never a wrong record.
        for cut in [0, 1, 15, 16, bytes.len() / 2, bytes.len() - 1] {
            prop_assert!(!matches!(parse_record(&bytes[..cut]), Parsed::Record(..)));
        }
        // A flipped byte inside the framing or body is detected (padding may flip freely).
        let body_end = 16 + 48 + rec.uri.len();
        let at = flip_at.index(body_end);
        let mut bad = bytes.clone();
        bad[at] ^= flip;
        match parse_record(&bad) {
            Parsed::Record(back, _) => prop_assert!(false, "flip at {} went unnoticed: {:?}", at, back),
            Parsed::Lost(lost, _) => prop_assert!(false, "flip at {} made a lost-id record of id {}", at, lost),
            Parsed::Bad { .. } | Parsed::Incomplete => {}
        }
    }

    #[test]
    fn lost_id_records_round_trip_and_flips_are_caught(id in any::<u64>(), created in any::<u64>(), flip_at in 0usize..64, flip in 1u8..=255) {
        let bytes = encode_lost_record(id, created);
        prop_assert_eq!(bytes.len(), 64);
        prop_assert_eq!(parse_record(&bytes), Parsed::Lost(id, 64));
        let mut bad = bytes.clone();
        bad[flip_at] ^= flip;
        match parse_record(&bad) {
            Parsed::Bad { .. } | Parsed::Incomplete => {}
            other => prop_assert!(false, "flip at {} went unnoticed: {:?}", flip_at, other),
        }
    }

    #[test]
    fn symbol_map_never_panics(text in "\\PC{0,300}", bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        for input in [text.as_bytes(), &bytes[..]] {
            if let Err(e) = parse_symbol_map(Path::new(P), input) {
                prop_assert_eq!(e.code(), "ERR_CORRUPT_STATE");
            }
        }
    }

    #[test]
    fn symbol_maps_with_bad_symbols_are_refused(symbols in proptest::collection::vec("\\PC{0,70}", 0..8)) {
        let doc = serde_json::json!({ "format": "window-space/symbol-map", "version": 1, "symbols": symbols });
        let parsed = parse_symbol_map(Path::new(P), doc.to_string().as_bytes());
        let valid = symbols.iter().all(|s| window_space_core::symbols::validate_stored_symbol(s).is_ok())
            && symbols.iter().collect::<std::collections::HashSet<_>>().len() == symbols.len();
        prop_assert_eq!(parsed.is_ok(), valid);
        if let Ok(back) = parsed { prop_assert_eq!(back, symbols); }
    }

    #[test]
    fn symbol_log_records_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = window_space_core::symbols::parse_record(&bytes);
        if let Err(e) = window_space_core::symbols::decode_header(Path::new(P), &bytes) {
            prop_assert!(matches!(e.code().as_str(), "ERR_CORRUPT_STATE" | "ERR_NEWER_FORMAT"));
        }
    }

    #[test]
    fn symbol_log_records_round_trip_and_a_flipped_byte_is_caught(
        name in "\\PC{1,16}",
        id in any::<u32>(),
        flip_at in 0usize..80,
        flip in 1u8..=255,
    ) {
        use window_space_core::symbols::{encode_record, parse_record, ParsedRecord};
        let bytes = encode_record(id, &name);
        prop_assert_eq!(parse_record(&bytes), ParsedRecord::Symbol { id, name: &name, len: bytes.len() });
        let mut bad = bytes.clone();
        let at = flip_at % bad.len();
        bad[at] ^= flip;
        match parse_record(&bad) {
            ParsedRecord::Bad { .. } | ParsedRecord::Incomplete => {}
            other => prop_assert!(false, "flip at {} went unnoticed: {:?}", at, other),
        }
    }

    #[test]
    fn schedule_json_never_panics(text in "\\PC{0,300}") {
        if let Err(e) = Schedule::from_json(Path::new(P), &text) {
            prop_assert_eq!(e.code(), "ERR_CORRUPT_STATE");
        }
    }

    #[test]
    fn schedule_json_with_odd_numbers_never_panics(origin in any::<i64>(), window in any::<i64>(), count in any::<u32>()) {
        let text = format!(r#"{{"format":"window-space/schedule","version":1,"schedule":{{"kind":"uniform","originNs":{origin},"windowNs":{window},"windowCount":{count}}}}}"#);
        match Schedule::from_json(Path::new(P), &text) {
            Ok(s) => {
                prop_assert!(window > 0 && count > 0);
                prop_assert_eq!(s.window_count(), count);
                let last = s.window_meta(count - 1).unwrap();
                prop_assert_eq!(last.start_ns, origin + window * (i64::from(count) - 1));
            }
            Err(e) => prop_assert_eq!(e.code(), "ERR_CORRUPT_STATE"),
        }
    }
}
