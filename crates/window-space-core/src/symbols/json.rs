//! The symbol map of directories made before the symbol log:
//! `symbol-map.json`, read to convert it into a log ([`convert_symbol_map`],
//! for `window-space migrate`). Nothing writes this format any more.
//!
//! ```json
//! { "format": "window-space/symbol-map", "version": 2, "symbols": ["SPY", "AAPL"], "checksum": "56b44c5b641b27e6" }
//! ```
//! A symbol's id is its position in `symbols`. `checksum` is the xxh3-64 of
//! the compact JSON text of `symbols` (`["SPY","AAPL"]`), as 16 lower-case hex
//! digits: damage that leaves valid JSON (a flipped bit that turns `SPY`
//! into `SPX`, two names swapped) would otherwise move every row of a symbol
//! to another name without a word. A map whose checksum differs is refused as
//! corrupt. Version 1 is the same document without `checksum`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{encode_header, encode_record, validate_stored_symbol};
use crate::error::{Error, Result};
use crate::io::{self, Site};

/// The name `symbol-map.json` had in a state directory.
pub const JSON_FILE_NAME: &str = "symbol-map.json";

/// The newest version of `symbol-map.json` (read, never written).
const JSON_VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Doc {
    pub format: String,
    pub version: u32,
    pub symbols: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// `checksum` of a map holding `symbols`.
pub(super) fn checksum_of(symbols: &[String]) -> String {
    let text = serde_json::to_string(symbols).expect("symbols serialize");
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

/// Parses and validates the bytes of a `symbol-map.json` (version 1 or 2);
/// returns the symbols by id.
pub fn parse_symbol_map(path: &Path, bytes: &[u8]) -> Result<Vec<String>> {
    let doc: Doc = serde_json::from_slice(bytes)
        .map_err(|e| Error::corrupt(path, None, format!("invalid JSON at line {}, column {}: {e}", e.line(), e.column())))?;
    if doc.format != "window-space/symbol-map" {
        return Err(Error::corrupt(path, None, format!("unsupported document {:?} version {}", doc.format, doc.version)));
    }
    match (doc.version, &doc.checksum) {
        (1, None) => {}
        (1, Some(_)) => return Err(Error::corrupt(path, None, "a version 1 symbol map has no checksum field")),
        (JSON_VERSION, None) => return Err(Error::corrupt(path, None, "the checksum field is missing")),
        (JSON_VERSION, Some(stored)) => {
            let computed = checksum_of(&doc.symbols);
            if *stored != computed {
                return Err(Error::corrupt(
                    path,
                    None,
                    format!("checksum mismatch: the file says {stored}, its symbols give {computed} (the symbols were changed or damaged)"),
                ));
            }
        }
        (v, _) if v > JSON_VERSION => {
            return Err(Error::NewerFormat { file: path.to_path_buf(), version: v, supported: JSON_VERSION });
        }
        (v, _) => return Err(Error::corrupt(path, None, format!("unsupported document {:?} version {v}", doc.format))),
    }
    let mut seen = std::collections::HashSet::with_capacity(doc.symbols.len());
    for (i, s) in doc.symbols.iter().enumerate() {
        validate_stored_symbol(s).map_err(|e| Error::corrupt(path, None, format!("symbol id {i}: {e}")))?;
        if !seen.insert(s.as_str()) {
            return Err(Error::corrupt(path, None, format!("symbol {s:?} appears twice (ids must be unique)")));
        }
    }
    Ok(doc.symbols)
}

/// Writes the symbol log `out` (a new file) holding the symbols of the
/// `symbol-map.json` at `v1_json` (version 1 or 2), with the same ids in the
/// same order, and fsyncs it; returns the number of symbols. Refuses a map
/// that does not parse (the same checks as ever) and an `out` that exists.
/// The caller makes `out`'s directory entry durable when it switches the
/// directory over (`window-space migrate` builds beside, verifies, then
/// switches); a failed conversion removes `out`.
pub fn convert_symbol_map(v1_json: &Path, out: &Path, created_at_ns: u64) -> Result<u32> {
    let bytes = std::fs::read(v1_json).map_err(|e| Error::io("read", v1_json, e))?;
    let symbols = parse_symbol_map(v1_json, &bytes)?;
    let count = u32::try_from(symbols.len()).map_err(|_| Error::corrupt(v1_json, None, "more symbols than ids (2^32)"))?;
    let mut log = encode_header(created_at_ns).to_vec();
    for (id, s) in symbols.iter().enumerate() {
        log.extend_from_slice(&encode_record(id as u32, s));
    }
    let f = std::fs::OpenOptions::new().write(true).create_new(true).open(out).map_err(|e| Error::io("create", out, e))?;
    io::write_at(Site::SymbolsCreateWrite, &f, out, &log, 0).and_then(|()| io::sync_all(Site::SymbolsCreateSync, &f, out)).inspect_err(
        |_| {
            let _ = std::fs::remove_file(out);
        },
    )?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::SymbolMap;

    fn encode(symbols: &[String]) -> Vec<u8> {
        let doc = Doc {
            format: "window-space/symbol-map".into(),
            version: JSON_VERSION,
            symbols: symbols.to_vec(),
            checksum: Some(checksum_of(symbols)),
        };
        serde_json::to_vec_pretty(&doc).unwrap()
    }

    #[test]
    fn a_map_whose_symbols_changed_but_stay_valid_json_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JSON_FILE_NAME);
        let written = encode(&["SPY".to_string(), "QQQ".to_string()]);
        assert_eq!(parse_symbol_map(&path, &written).unwrap(), ["SPY", "QQQ"]);
        let doc: serde_json::Value = serde_json::from_slice(&written).unwrap();
        assert_eq!(doc["version"], 2);
        assert_eq!(doc["checksum"], checksum_of(&["SPY".into(), "QQQ".into()]));
        let text = String::from_utf8(written).unwrap();
        let swapped = text.replace("\"SPY\"", "\"TMP\"").replace("\"QQQ\"", "\"SPY\"").replace("\"TMP\"", "\"QQQ\"");
        let flipped = text.replace("\"SPY\"", "\"SPX\""); // 'Y' 0x59 -> 'X' 0x58: one bit
        for (what, bytes) in [("two names swapped", swapped), ("one bit flipped in a name", flipped)] {
            let e = parse_symbol_map(&path, bytes.as_bytes()).expect_err(what);
            assert_eq!(e.code(), crate::vocab::ErrorCode::CorruptState, "{what}: {e}");
            assert!(e.to_string().contains("checksum mismatch"), "{what}: {e}");
        }
        let no_sum = serde_json::json!({ "format": "window-space/symbol-map", "version": 2, "symbols": ["SPY"] }).to_string();
        assert!(parse_symbol_map(&path, no_sum.as_bytes()).is_err(), "version 2 without its checksum");
        let v1 = serde_json::json!({ "format": "window-space/symbol-map", "version": 1, "symbols": ["SPY"] }).to_string();
        assert_eq!(parse_symbol_map(&path, v1.as_bytes()).unwrap(), ["SPY"], "version 1 is still read");
        let newer = serde_json::json!({ "format": "window-space/symbol-map", "version": 3, "symbols": [], "checksum": "0" }).to_string();
        assert!(matches!(parse_symbol_map(&path, newer.as_bytes()), Err(Error::NewerFormat { version: 3, .. })));
    }

    /// Conversion keeps every id; a map of either JSON version converts; a
    /// damaged map or an existing output is refused and leaves no log.
    #[test]
    fn a_converted_map_keeps_every_symbol_at_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = ["SPY", "日経225", "SPY\u{200B}", "lost-symbol-3", "BRK.B"]
            .iter()
            .map(|s| s.to_string())
            .chain((5..300).map(|i| format!("S{i}")))
            .collect();
        let v2 = dir.path().join("v2.json");
        std::fs::write(&v2, encode(&names)).unwrap();
        let v1 = dir.path().join("v1.json");
        std::fs::write(&v1, serde_json::json!({ "format": "window-space/symbol-map", "version": 1, "symbols": ["A", "B"] }).to_string())
            .unwrap();
        let out = dir.path().join("v2").join(SymbolMap::FILE_NAME);
        std::fs::create_dir(out.parent().unwrap()).unwrap();
        assert_eq!(convert_symbol_map(&v2, &out, 99).unwrap(), names.len() as u32);
        let log = SymbolMap::load(out.parent().unwrap(), false).unwrap();
        assert_eq!(log.all(), names);
        for (id, n) in names.iter().enumerate() {
            assert_eq!(log.lookup(n).unwrap(), Some(id as u32), "{n}");
        }
        assert_eq!(&std::fs::read(&out).unwrap()[16..24], &99u64.to_le_bytes(), "created at");
        assert_eq!(log.resolve("NEXT", || Ok(())).unwrap(), (names.len() as u32, true), "the next symbol gets the next id");
        // Refused: an output that exists (unchanged), a damaged map (no output left).
        let before = std::fs::read(&out).unwrap();
        assert_eq!(convert_symbol_map(&v1, &out, 1).unwrap_err().code(), crate::vocab::ErrorCode::Io);
        assert_eq!(std::fs::read(&out).unwrap(), before);
        let out1 = dir.path().join("v1.log");
        assert_eq!(convert_symbol_map(&v1, &out1, 1).unwrap(), 2);
        assert_eq!(SymbolMap::open_read_only(&out1).unwrap().all(), ["A", "B"]);
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, String::from_utf8(encode(&names)).unwrap().replace("\"SPY\"", "\"SPX\"")).unwrap();
        let out2 = dir.path().join("bad.log");
        assert_eq!(convert_symbol_map(&bad, &out2, 1).unwrap_err().code(), crate::vocab::ErrorCode::CorruptState);
        assert!(!out2.exists());
    }
}
