//! The symbol map: symbol strings ↔ dense, stable numeric ids, persisted in
//! `symbol-map.json`.
//!
//! ```json
//! { "format": "window-space/symbol-map", "version": 2, "symbols": ["SPY", "AAPL"], "checksum": "56b44c5b641b27e6" }
//! ```
//! A symbol's id is its position in `symbols`. `checksum` is the xxh3-64 of
//! the compact JSON text of `symbols` (`["SPY","AAPL"]`), as 16 lower-case hex
//! digits: damage that leaves valid JSON (a flipped bit that turns `SPY`
//! into `SPX`, two names swapped) would otherwise move every row of a symbol
//! to another name without a word. A map whose checksum differs is refused as
//! corrupt. Version 1, the same document without `checksum`, is still read;
//! every write is version 2. Ids are never changed or
//! reused: the file only ever grows by appending. It is rewritten atomically
//! (temp file, fsync, rename, directory fsync) under the state directory's
//! gate lock, after re-reading it, so two processes adding symbols at once
//! both end up with one id per symbol.
//!
//! Names that start with `lost-symbol-` are reserved: an operator's repair
//! (`ops/repair.rs`) gives the ids of symbols the map lost, whose ledger
//! chunks exist, the placeholder names `lost-symbol-<id>`, so those rows can
//! be looked at, cleared and retired, and the ids are never given again.
//! `resolve_symbol` never adds such a name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::io::AtomicSites;

/// Longest symbol, in UTF-8 bytes.
pub const MAX_SYMBOL_BYTES: usize = 64;

/// Start of the reserved names of placeholder symbols (see the module comment).
pub const LOST_SYMBOL_PREFIX: &str = "lost-symbol-";

/// The placeholder name of a lost symbol id.
pub fn lost_symbol_name(id: u32) -> String {
    format!("{LOST_SYMBOL_PREFIX}{id}")
}

/// Code points a symbol may not contain besides control characters and white
/// space: characters that display as nothing or reorder the text around them,
/// so that a symbol holding one looks like another symbol. They are Unicode's
/// default-ignorable code points (zero-width spaces and joiners, the soft
/// hyphen, word joiners and invisible operators, variation selectors, Hangul
/// fillers, tag characters), the bidirectional controls (U+061C, U+200E,
/// U+200F, U+202A–U+202E, U+2066–U+2069), the other format characters
/// (U+0600–U+0605, U+06DD, U+070F, U+0890–U+0891, U+08E2, U+110BD, U+110CD,
/// U+13430–U+1343F, U+FFF9–U+FFFB), private-use characters and noncharacters.
/// Sorted, inclusive ranges.
const INVISIBLE: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xE000, 0xF8FF),
    (0xFDD0, 0xFDEF),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
    (0xF0000, 0x10FFFF),
];

/// True for a character a symbol may not contain (besides the format's own rule):
/// white space other than the ASCII space, and the [`INVISIBLE`] code points.
fn invisible(c: char) -> bool {
    if c == ' ' {
        return false;
    }
    let cp = c as u32;
    // Noncharacters: the last two code points of every plane.
    c.is_whitespace()
        || cp & 0xFFFE == 0xFFFE
        || INVISIBLE
            .binary_search_by(|&(lo, hi)| {
                if hi < cp {
                    std::cmp::Ordering::Less
                } else if lo > cp {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
}

/// Checks a symbol string: 1 to 64 bytes of UTF-8, no white space at either
/// end, and no character that is invisible or changes how the text around it
/// displays: no control characters, no white space but the ASCII space, none
/// of the [`INVISIBLE`] code points. So two different symbols never look the
/// same for such a character (`"SPY\u{200B}"` is refused, not taken for a
/// symbol beside `"SPY"`). Symbols are used as given, never normalized.
pub fn validate_symbol(s: &str) -> Result<()> {
    stored_symbol_problem(s)
        .or_else(|| s.chars().any(invisible).then_some("must not contain invisible or format characters (zero-width, bidirectional controls, white space other than the ASCII space)"))
        .or_else(|| s.starts_with(LOST_SYMBOL_PREFIX).then_some("must not start with \"lost-symbol-\" (reserved for the placeholders of lost symbols)"))
        .map_or(Ok(()), |why| Err(Error::InvalidSymbol { symbol: s.chars().take(80).collect(), why }))
}

/// Checks what the file format itself requires of a symbol in
/// `symbol-map.json`. A map holding a symbol that passes this check but not
/// [`validate_symbol`] is read as it is, so its id stays valid and the symbol
/// can still be named; only adding such a symbol is refused.
pub fn validate_stored_symbol(s: &str) -> Result<()> {
    stored_symbol_problem(s).map_or(Ok(()), |why| Err(Error::InvalidSymbol { symbol: s.chars().take(80).collect(), why }))
}

fn stored_symbol_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("must not be empty")
    } else if s.len() > MAX_SYMBOL_BYTES {
        Some("must be at most 64 bytes of UTF-8")
    } else if s.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else if s.trim() != s {
        Some("must not start or end with white space")
    } else {
        None
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    format: String,
    version: u32,
    symbols: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checksum: Option<String>,
}

/// The format version every write uses (see the module comment).
const FORMAT_VERSION: u32 = 2;

/// `checksum` of a map holding `symbols`.
fn checksum_of(symbols: &[String]) -> String {
    let text = serde_json::to_string(symbols).expect("symbols serialize");
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

#[derive(Default)]
struct Names {
    by_id: Vec<String>,
    by_name: HashMap<String, u32>,
}

/// The in-memory view of `symbol-map.json`.
pub struct SymbolMap {
    path: PathBuf,
    names: RwLock<Names>,
    /// Number of symbols known (mirrors `names.by_id.len()`), for lock-free id checks.
    known: AtomicU32,
}

impl SymbolMap {
    pub const FILE_NAME: &'static str = "symbol-map.json";

    /// Writes an empty map (first bootstrap).
    pub fn create(dir: &Path) -> Result<()> {
        write_atomic(&dir.join(Self::FILE_NAME), &encode(&[]), AtomicSites::SYMBOLS)
    }

    /// Reads and validates the file.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(Self::FILE_NAME);
        let names = read(&path)?;
        let known = AtomicU32::new(names.by_id.len() as u32);
        Ok(Self { path, names: RwLock::new(names), known })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> u32 {
        self.names.read().unwrap_or_else(|p| p.into_inner()).by_id.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-reads the file (another process may have added symbols).
    pub fn reload(&self) -> Result<()> {
        let fresh = read(&self.path)?;
        let mut names = self.names.write().unwrap_or_else(|p| p.into_inner());
        if fresh.by_id.len() < names.by_id.len() || fresh.by_id[..names.by_id.len()] != names.by_id[..] {
            return Err(Error::corrupt(&self.path, None, "symbols were removed or renumbered since this controller read the file"));
        }
        self.known.store(fresh.by_id.len() as u32, Ordering::Release);
        *names = fresh;
        Ok(())
    }

    /// Id of a symbol given by a caller, if known: a symbol the map holds is
    /// found whatever rule it was added under; an unknown one that could
    /// never be added is refused with `InvalidSymbol`.
    pub fn lookup_checked(&self, symbol: &str) -> Result<Option<u32>> {
        validate_stored_symbol(symbol)?;
        match self.lookup(symbol)? {
            Some(id) => Ok(Some(id)),
            None => validate_symbol(symbol).map(|()| None),
        }
    }

    /// Id of a symbol, if known (re-reading the file once on a miss).
    pub fn lookup(&self, symbol: &str) -> Result<Option<u32>> {
        if let Some(id) = self.names.read().unwrap_or_else(|p| p.into_inner()).by_name.get(symbol) {
            return Ok(Some(*id));
        }
        self.reload()?;
        Ok(self.names.read().unwrap_or_else(|p| p.into_inner()).by_name.get(symbol).copied())
    }

    /// Name of an id, if known (re-reading the file once on a miss).
    pub fn name(&self, id: u32) -> Result<Option<String>> {
        if let Some(n) = self.names.read().unwrap_or_else(|p| p.into_inner()).by_id.get(id as usize) {
            return Ok(Some(n.clone()));
        }
        self.reload()?;
        Ok(self.names.read().unwrap_or_else(|p| p.into_inner()).by_id.get(id as usize).cloned())
    }

    /// Checks that `id` exists.
    pub fn check_id(&self, id: u32) -> Result<()> {
        if id < self.known.load(Ordering::Acquire) {
            return Ok(());
        }
        match self.name(id)? {
            Some(_) => Ok(()),
            None => Err(Error::UnknownSymbol { symbol: format!("id {id}") }),
        }
    }

    /// All symbols, by id.
    pub fn all(&self) -> Vec<String> {
        self.names.read().unwrap_or_else(|p| p.into_inner()).by_id.clone()
    }

    /// Returns the id of `symbol`, adding it if missing. `gate` must return the
    /// state directory's gate lock; it is taken only when the symbol is new.
    pub fn resolve<G>(&self, symbol: &str, gate: impl FnOnce() -> Result<G>) -> Result<(u32, bool)> {
        if let Some(id) = self.lookup_checked(symbol)? {
            return Ok((id, false));
        }
        let _gate = gate()?;
        self.reload()?;
        let mut names = self.names.write().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = names.by_name.get(symbol) {
            return Ok((*id, false));
        }
        let id = u32::try_from(names.by_id.len()).map_err(|_| Error::invalid("too many symbols"))?;
        let mut next = names.by_id.clone();
        next.push(symbol.to_string());
        write_atomic(&self.path, &encode(&next), AtomicSites::SYMBOLS)?;
        failpoint!("symbols::persisted");
        names.by_name.insert(symbol.to_string(), id);
        names.by_id = next;
        self.known.store(id + 1, Ordering::Release);
        Ok((id, true))
    }
}

impl SymbolMap {
    /// Gives every id from the map's next one through `through` a
    /// placeholder name (`lost-symbol-<id>`, or `lost-symbol-<id>.<n>` if a
    /// map of an older library holds that name already) and writes the map
    /// atomically; returns the ids and names added. The caller holds the
    /// state directory's gate (an operator's repair, `ops/repair.rs`).
    pub(crate) fn add_lost(&self, through: u32) -> Result<Vec<(u32, String)>> {
        self.reload()?;
        let mut names = self.names.write().unwrap_or_else(|p| p.into_inner());
        let from = names.by_id.len() as u32;
        if through < from {
            return Ok(Vec::new());
        }
        let mut next = names.by_id.clone();
        let mut added = Vec::new();
        for id in from..=through {
            let mut name = lost_symbol_name(id);
            let mut n = 1;
            while names.by_name.contains_key(&name) {
                name = format!("{}.{n}", lost_symbol_name(id));
                n += 1;
            }
            next.push(name.clone());
            added.push((id, name));
        }
        write_atomic(&self.path, &encode(&next), AtomicSites::SYMBOLS)?;
        for (id, name) in &added {
            names.by_name.insert(name.clone(), *id);
        }
        names.by_id = next;
        self.known.store(through + 1, Ordering::Release);
        Ok(added)
    }
}

fn encode(symbols: &[String]) -> Vec<u8> {
    let doc = Doc {
        format: "window-space/symbol-map".into(),
        version: FORMAT_VERSION,
        symbols: symbols.to_vec(),
        checksum: Some(checksum_of(symbols)),
    };
    let mut v = serde_json::to_vec_pretty(&doc).expect("symbol map serializes");
    v.push(b'\n');
    v
}

fn read(path: &Path) -> Result<Names> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    parse(path, &bytes)
}

/// Parses and validates the bytes of `symbol-map.json`.
/// Parses and validates the bytes of a `symbol-map.json`; returns the symbols by id.
pub fn parse_symbol_map(path: &Path, bytes: &[u8]) -> Result<Vec<String>> {
    parse(path, bytes).map(|n| n.by_id)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Names> {
    let doc: Doc = serde_json::from_slice(bytes)
        .map_err(|e| Error::corrupt(path, None, format!("invalid JSON at line {}, column {}: {e}", e.line(), e.column())))?;
    if doc.format != "window-space/symbol-map" {
        return Err(Error::corrupt(path, None, format!("unsupported document {:?} version {}", doc.format, doc.version)));
    }
    match (doc.version, &doc.checksum) {
        (1, None) => {}
        (1, Some(_)) => return Err(Error::corrupt(path, None, "a version 1 symbol map has no checksum field")),
        (FORMAT_VERSION, None) => return Err(Error::corrupt(path, None, "the checksum field is missing")),
        (FORMAT_VERSION, Some(stored)) => {
            let computed = checksum_of(&doc.symbols);
            if *stored != computed {
                return Err(Error::corrupt(
                    path,
                    None,
                    format!("checksum mismatch: the file says {stored}, its symbols give {computed} (the symbols were changed or damaged)"),
                ));
            }
        }
        (v, _) if v > FORMAT_VERSION => {
            return Err(Error::NewerFormat { file: path.to_path_buf(), version: v, supported: FORMAT_VERSION });
        }
        (v, _) => return Err(Error::corrupt(path, None, format!("unsupported document {:?} version {v}", doc.format))),
    }
    let mut names = Names::default();
    for (i, s) in doc.symbols.into_iter().enumerate() {
        validate_stored_symbol(&s).map_err(|e| Error::corrupt(path, None, format!("symbol id {i}: {e}")))?;
        if names.by_name.insert(s.clone(), i as u32).is_some() {
            return Err(Error::corrupt(path, None, format!("symbol {s:?} appears twice (ids must be unique)")));
        }
        names.by_id.push(s);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_that_look_like_others_are_refused() {
        for ok in ["SPY", "BRK.B", "ES Z4", "Ä-Ö_1", "日経225", "a b"] {
            assert!(validate_symbol(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "SPY\u{200B}",
            "\u{200B}SPY",
            "S\u{200C}PY",
            "S\u{200D}PY",
            "SPY\u{2060}",
            "SPY\u{FEFF}",
            "SP\u{00AD}Y",
            "SPY\u{202E}",
            "SPY\u{2066}",
            "SPY\u{200E}",
            "SPY\u{061C}",
            "SPY\u{FE0F}",
            "SPY\u{E0041}",
            "S\u{00A0}PY",
            "S\u{3000}PY",
            "S\u{2028}PY",
            "SPY\u{E000}",
            "SPY\u{FFFF}",
            "SPY\u{3164}",
            "SPY\u{7}",
            "SPY\u{85}",
            " SPY",
            "",
        ] {
            let e = validate_symbol(bad).unwrap_err();
            assert_eq!(e.code().as_str(), "ERR_INVALID_SYMBOL", "{bad:?}");
        }
        let e = validate_symbol("SPY\u{200B}").unwrap_err();
        assert!(e.to_string().contains("invisible"), "{e}");
    }

    #[test]
    fn a_map_holding_a_symbol_the_stricter_rule_refuses_still_loads_and_names_it() {
        let d = tempfile::tempdir().unwrap();
        let doc = serde_json::json!({ "format": "window-space/symbol-map", "version": 1, "symbols": ["SPY", "SPY\u{200B}"] });
        std::fs::write(d.path().join(SymbolMap::FILE_NAME), doc.to_string()).unwrap();
        let m = SymbolMap::load(d.path()).unwrap();
        assert_eq!(m.lookup_checked("SPY\u{200B}").unwrap(), Some(1));
        assert_eq!(m.resolve("SPY\u{200B}", || Ok(())).unwrap(), (1, false));
        assert_eq!(m.resolve("QQQ\u{200B}", || Ok(())).unwrap_err().code().as_str(), "ERR_INVALID_SYMBOL");
        assert_eq!(m.lookup_checked("QQQ\u{200B}").unwrap_err().code().as_str(), "ERR_INVALID_SYMBOL");
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn a_map_whose_symbols_changed_but_stay_valid_json_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SymbolMap::FILE_NAME);
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
}
