//! The symbol map: symbol strings ↔ dense, stable numeric ids, persisted in
//! `symbol-map.json`.
//!
//! ```json
//! { "format": "window-space/symbol-map", "version": 1, "symbols": ["SPY", "AAPL"] }
//! ```
//! A symbol's id is its position in `symbols`. Ids are never changed or
//! reused: the file only ever grows by appending. It is rewritten atomically
//! (temp file, fsync, rename, directory fsync) under the state directory's
//! gate lock, after re-reading it, so two processes adding symbols at once
//! both end up with one id per symbol.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// Longest symbol, in UTF-8 bytes.
pub const MAX_SYMBOL_BYTES: usize = 64;

/// Checks a symbol string.
pub fn validate_symbol(s: &str) -> Result<()> {
    let why = if s.is_empty() {
        Some("must not be empty")
    } else if s.len() > MAX_SYMBOL_BYTES {
        Some("must be at most 64 bytes of UTF-8")
    } else if s.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else if s.trim() != s {
        Some("must not start or end with white space")
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::InvalidSymbol { symbol: s.chars().take(80).collect(), why }),
        None => Ok(()),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    format: String,
    version: u32,
    symbols: Vec<String>,
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
        write_atomic(&dir.join(Self::FILE_NAME), &encode(&[]))
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
        validate_symbol(symbol)?;
        if let Some(id) = self.lookup(symbol)? {
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
        write_atomic(&self.path, &encode(&next))?;
        names.by_name.insert(symbol.to_string(), id);
        names.by_id = next;
        self.known.store(id + 1, Ordering::Release);
        Ok((id, true))
    }
}

fn encode(symbols: &[String]) -> Vec<u8> {
    let doc = Doc { format: "window-space/symbol-map".into(), version: 1, symbols: symbols.to_vec() };
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
    if doc.format != "window-space/symbol-map" || doc.version != 1 {
        return Err(Error::corrupt(path, None, format!("unsupported document {:?} version {}", doc.format, doc.version)));
    }
    let mut names = Names::default();
    for (i, s) in doc.symbols.into_iter().enumerate() {
        validate_symbol(&s).map_err(|e| Error::corrupt(path, None, format!("symbol id {i}: {e}")))?;
        if names.by_name.insert(s.clone(), i as u32).is_some() {
            return Err(Error::corrupt(path, None, format!("symbol {s:?} appears twice (ids must be unique)")));
        }
        names.by_id.push(s);
    }
    Ok(names)
}
