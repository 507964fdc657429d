//! The symbol map: symbol strings ↔ dense, stable numeric ids, persisted in
//! the append-only symbol log `symbols.log` (format version 2 of the symbol
//! map; the JSON map of version 1 directories is read by [`json`] to convert it).
//!
//! ## File format (version 2), little-endian
//!
//! ```text
//! Header, bytes 0..64
//!   0   8  magic            89 57 53 53 59 4D 0D 0A   ("\x89WSSYM\r\n")
//!   8   4  format version   2
//!  12   4  reserved         0
//!  16   8  created at       ns since the Unix epoch
//!  24  32  reserved         0
//!  56   8  header checksum  xxh3-64 of bytes 0..56
//! Records, from offset 64, one per symbol, each 8-byte aligned:
//!   0   4  symbol id        must equal the record's position (0, 1, 2, …)
//!   4   2  name length      n (1 ..= 64)
//!   6   2  reserved         0
//!   8   n  name             UTF-8
//!   …      padding          zeros, up to a multiple of 8
//! L-8   8  record checksum  xxh3-64 of bytes 0..L-8 (L = 8 + n rounded up to 8, + 8)
//! ```
//!
//! A symbol's id is its position in the log: ids are dense, never changed
//! and never reused, and the file only ever grows by appending (a record of
//! 24 bytes for a name of up to 8 bytes, 80 for one of 64).
//!
//! **Adding** (`resolve`) takes the state directory's gate lock, then an
//! exclusive `flock` on the log, reads what other processes appended, cuts
//! an incomplete record a dead writer left at the end (nobody else writes
//! while the lock is held), and adds the symbol only if it is still missing:
//! two processes adding one name race to one id. The record is written with
//! one `pwrite` at the end (builds with the `failpoints` feature write it in
//! two halves, so that a test can stop or kill the writer between them). In
//! the sync durability mode it is `fdatasync`ed before the id is returned, so
//! a symbol's id is on disk before any chunk of it is written. In the
//! buffered mode it only reaches the page cache: a killed process loses
//! nothing, a power loss may lose the last symbols added, and the bootstrap's
//! cross-file check then finds chunks of ids the log does not hold (the
//! directory is refused until `window-space repair` names them). A failed
//! `fdatasync` fails the call and leaves the record in place (other processes
//! may have read it already): the next call of this controller that finds
//! the symbol writes the owed bytes again and syncs them before it returns.
//!
//! **Reading** is incremental: the log's length (one `fstat`) tells a
//! process whether others added symbols, and a miss reads only the records
//! past the ones it has. The recovery policy: a record that does not read
//! (too short for its length, a bad length or checksum, a wrong id) with no
//! good record after it, and either cut short or ending in zero bytes (what
//! a write that did not finish leaves), is a torn tail — a writer killed
//! mid-write, still writing, or power loss — and is ignored by readers until it is complete;
//! it is cut by the next add, or by a bootstrap with no other controller
//! open. A bad record followed by a good one (at any 8-aligned offset after
//! it), or a whole last record whose bytes changed (its checksum field not
//! zero, a flipped bit), is damage: `CorruptState` naming the file and the
//! record's offset — cutting it would give its id to the next symbol while
//! payload records may still name the lost one. A
//! reader that meets such damage without the log's lock reads again under
//! it, where no record can be half written.
//!
//! Names that start with `lost-symbol-` are reserved: an operator's repair
//! (`ops/repair.rs`) gives the ids of symbols the log lost, whose ledger
//! chunks exist, the placeholder names `lost-symbol-<id>` (appended as
//! records like any symbol), so those rows can be looked at, cleared and
//! retired, and the ids are never given again. `resolve_symbol` never adds
//! such a name.
//!
//! In memory a map keeps the names in one byte arena with their end offsets
//! by id and a hash table of ids (about 20 bytes a symbol besides the names).

pub mod json;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock, RwLockWriteGuard};

use hashbrown::HashTable;

use crate::error::{Error, Result};
use crate::fsutil::read_upto;
use crate::io::{self, Site};
use crate::lock::FileLock;

pub use json::{convert_symbol_map, parse_symbol_map};

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

/// Checks what the file format itself requires of a stored symbol. A map holding a symbol that passes this check but not
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

const MAGIC: [u8; 8] = *b"\x89WSSYM\r\n";
/// The format version of the symbol log (versions 1 and 2 of the symbol map were JSON).
pub const FORMAT_VERSION: u32 = 2;
/// Bytes of the log's header.
pub const HEADER_BYTES: u64 = 64;
/// The longest record (a 64-byte name).
pub const MAX_RECORD_BYTES: usize = record_len(MAX_SYMBOL_BYTES);
/// Bytes read per `pread` while catching up.
const READ_BLOCK: usize = 1 << 20;

const fn record_len(name_len: usize) -> usize {
    (8 + name_len).div_ceil(8) * 8 + 8
}

/// The header of a new log.
pub(crate) fn encode_header(created_at_ns: u64) -> [u8; HEADER_BYTES as usize] {
    let mut h = [0u8; HEADER_BYTES as usize];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&created_at_ns.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&h[..56]);
    h[56..64].copy_from_slice(&sum.to_le_bytes());
    h
}

/// Checks a log header: magic, then format version (a newer one is
/// `NewerFormat`), then checksum.
pub fn decode_header(path: &Path, h: &[u8]) -> Result<()> {
    if h.len() < HEADER_BYTES as usize {
        return Err(Error::corrupt(path, Some(h.len() as u64), "file is shorter than its 64-byte header"));
    }
    if h[0..8] != MAGIC {
        return Err(Error::corrupt(path, Some(0), "wrong magic number: not a window-space symbol log"));
    }
    let version = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(Error::unsupported_version(path, 8, version, FORMAT_VERSION));
    }
    if u64::from_le_bytes(h[56..64].try_into().expect("8 bytes")) != xxhash_rust::xxh3::xxh3_64(&h[..56]) {
        return Err(Error::corrupt(path, Some(56), "header checksum mismatch"));
    }
    Ok(())
}

/// The record of symbol `id` named `name` (1 ..= 64 bytes; the caller checked it).
pub fn encode_record(id: u32, name: &str) -> Vec<u8> {
    let n = name.len();
    let mut out = vec![0u8; record_len(n)];
    out[0..4].copy_from_slice(&id.to_le_bytes());
    out[4..6].copy_from_slice(&(n as u16).to_le_bytes());
    out[8..8 + n].copy_from_slice(name.as_bytes());
    let end = out.len() - 8;
    let sum = xxhash_rust::xxh3::xxh3_64(&out[..end]);
    out[end..].copy_from_slice(&sum.to_le_bytes());
    out
}

/// Outcome of parsing one record from the start of a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub enum ParsedRecord<'a> {
    /// A good record of this many bytes.
    Symbol { id: u32, name: &'a str, len: usize },
    /// Fewer bytes than the record's length says.
    Incomplete,
    /// Bad framing, checksum or name.
    Bad { what: &'static str },
}

/// Parses the record at the start of `buf` (the record's id is not checked here).
pub fn parse_record(buf: &[u8]) -> ParsedRecord<'_> {
    if buf.len() < 8 {
        return ParsedRecord::Incomplete;
    }
    let n = u16::from_le_bytes([buf[4], buf[5]]) as usize;
    if n == 0 || n > MAX_SYMBOL_BYTES || buf[6] != 0 || buf[7] != 0 {
        return ParsedRecord::Bad { what: "record header out of range (name length 1 ..= 64, reserved bytes 0)" };
    }
    let len = record_len(n);
    if buf.len() < len {
        return ParsedRecord::Incomplete;
    }
    let stored = u64::from_le_bytes(buf[len - 8..len].try_into().expect("8 bytes"));
    if stored != xxhash_rust::xxh3::xxh3_64(&buf[..len - 8]) {
        return ParsedRecord::Bad { what: "record checksum mismatch" };
    }
    if buf[8 + n..len - 8].iter().any(|b| *b != 0) {
        return ParsedRecord::Bad { what: "record padding is not zeros" };
    }
    let Ok(name) = std::str::from_utf8(&buf[8..8 + n]) else {
        return ParsedRecord::Bad { what: "symbol name is not UTF-8" };
    };
    ParsedRecord::Symbol { id: u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")), name, len }
}

fn name_hash(name: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(name)
}

/// The symbols read so far: names in one arena, their ends by id, and a hash
/// table of ids by name.
struct Names {
    arena: Vec<u8>,
    /// End of each name in `arena`, by id.
    ends: Vec<u64>,
    table: HashTable<u32>,
    /// File offset after the last good record read.
    end: u64,
}

impl Names {
    fn new() -> Self {
        Self { arena: Vec::new(), ends: Vec::new(), table: HashTable::new(), end: HEADER_BYTES }
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn bytes_of<'a>(arena: &'a [u8], ends: &[u64], id: u32) -> &'a [u8] {
        let i = id as usize;
        let start = if i == 0 { 0 } else { ends[i - 1] as usize };
        &arena[start..ends[i] as usize]
    }

    fn name(&self, id: u32) -> Option<&str> {
        ((id as usize) < self.ends.len())
            .then(|| std::str::from_utf8(Self::bytes_of(&self.arena, &self.ends, id)).expect("names are checked UTF-8 when read"))
    }

    fn get(&self, name: &str) -> Option<u32> {
        let (arena, ends) = (&self.arena, &self.ends);
        self.table.find(name_hash(name.as_bytes()), |&id| Self::bytes_of(arena, ends, id) == name.as_bytes()).copied()
    }

    /// Adds `name` as the next id; false if it is there already.
    fn push(&mut self, name: &str) -> bool {
        let h = name_hash(name.as_bytes());
        let Names { arena, ends, table, .. } = self;
        if table.find(h, |&id| Self::bytes_of(arena, ends, id) == name.as_bytes()).is_some() {
            return false;
        }
        let id = ends.len() as u32;
        arena.extend_from_slice(name.as_bytes());
        ends.push(arena.len() as u64);
        table.insert_unique(h, id, |&id| name_hash(Self::bytes_of(arena, ends, id)));
        true
    }
}

/// Why a catch-up stopped short.
enum CatchUpError {
    /// A bad record followed by good ones, met without the log's lock: a
    /// record may have been half written while it was read; read again under the lock.
    NeedsLock,
    Failed(Error),
}

impl From<Error> for CatchUpError {
    fn from(e: Error) -> Self {
        Self::Failed(e)
    }
}

/// An open symbol log and the symbols read from it.
pub struct SymbolMap {
    path: PathBuf,
    file: File,
    names: RwLock<Names>,
    /// Number of symbols known (mirrors `names.ends.len()`), for lock-free id checks.
    known: AtomicU32,
    /// Taken before the log's `flock` by every thread of this process (`lock.rs`).
    appenders: Mutex<()>,
    sync: bool,
    writable: bool,
    /// Sync mode: the offset from which records this controller appended
    /// were not made durable (their `fdatasync` failed); `u64::MAX` when
    /// nothing is owed.
    owed_from: AtomicU64,
}

impl SymbolMap {
    pub const FILE_NAME: &'static str = "symbols.log";

    /// Writes an empty log (first bootstrap), fsynced.
    pub fn create(dir: &Path, created_at_ns: u64) -> Result<()> {
        let path = dir.join(Self::FILE_NAME);
        let file = OpenOptions::new().write(true).create_new(true).open(&path).map_err(|e| Error::io("create", &path, e))?;
        io::write_at(Site::SymbolsCreateWrite, &file, &path, &encode_header(created_at_ns), 0)?;
        io::sync_all(Site::SymbolsCreateSync, &file, &path)
    }

    /// Opens the log and reads every symbol in it; `sync` is the controller's
    /// durability mode (`fdatasync` of each record added before its id is
    /// returned). A torn tail is left as it is (see [`cut_torn_tail`](Self::cut_torn_tail)).
    pub fn load(dir: &Path, sync: bool) -> Result<Self> {
        Self::open_with(&dir.join(Self::FILE_NAME), sync, true)
    }

    /// Opens a log for reading only (tools on live directories and on
    /// read-only copies): adds are refused, a torn tail is never cut.
    pub fn open_read_only(path: &Path) -> Result<Self> {
        Self::open_with(path, false, false)
    }

    fn open_with(path: &Path, sync: bool, writable: bool) -> Result<Self> {
        let file = OpenOptions::new().read(true).write(writable).open(path).map_err(|e| Error::io("open", path, e))?;
        let mut header = [0u8; HEADER_BYTES as usize];
        let got = read_upto(&file, &mut header, 0).map_err(|e| Error::io("read", path, e))?;
        decode_header(path, &header[..got])?;
        let map = Self {
            path: path.to_path_buf(),
            file,
            names: RwLock::new(Names::new()),
            known: AtomicU32::new(0),
            appenders: Mutex::new(()),
            sync,
            writable,
            owed_from: AtomicU64::new(u64::MAX),
        };
        drop(map.caught_up()?);
        Ok(map)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> u32 {
        self.names.read().unwrap_or_else(|p| p.into_inner()).len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads the symbols other processes added since this map last read.
    pub fn reload(&self) -> Result<()> {
        drop(self.caught_up()?);
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

    /// Id of a symbol, if known (reading what other processes added on a miss).
    pub fn lookup(&self, symbol: &str) -> Result<Option<u32>> {
        {
            let names = self.names.read().unwrap_or_else(|p| p.into_inner());
            if let Some(id) = names.get(symbol) {
                return Ok(Some(id));
            }
            if self.file_len()? == names.end {
                return Ok(None);
            }
        }
        Ok(self.caught_up()?.get(symbol))
    }

    /// Name of an id, if known (reading what other processes added on a miss).
    pub fn name(&self, id: u32) -> Result<Option<String>> {
        if let Some(n) = self.names.read().unwrap_or_else(|p| p.into_inner()).name(id) {
            return Ok(Some(n.to_string()));
        }
        Ok(self.caught_up()?.name(id).map(str::to_string))
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
        let names = self.names.read().unwrap_or_else(|p| p.into_inner());
        (0..names.len() as u32).map(|id| names.name(id).expect("id below len").to_string()).collect()
    }

    /// Returns the id of `symbol`, adding it if missing. `gate` must return the
    /// state directory's gate lock; it is taken only when the symbol is new.
    pub fn resolve<G>(&self, symbol: &str, gate: impl FnOnce() -> Result<G>) -> Result<(u32, bool)> {
        if let Some(id) = self.lookup_checked(symbol)? {
            self.pay_owed()?;
            return Ok((id, false));
        }
        self.check_writable()?;
        let _gate = gate()?;
        let lock = FileLock::exclusive(&self.file, &self.appenders, &self.path)?;
        let mut names = self.names.write().unwrap_or_else(|p| p.into_inner());
        let torn = self.catch_up_locked(&mut names)?;
        if let Some(id) = names.get(symbol) {
            drop((names, lock));
            self.pay_owed()?;
            return Ok((id, false));
        }
        let id = u32::try_from(names.len()).ok().filter(|id| *id < u32::MAX).ok_or_else(|| Error::invalid("too many symbols"))?;
        self.append_locked(&mut names, torn, &[symbol.to_string()], self.sync)?;
        Ok((id, true))
    }

    /// Cuts a torn tail (an incomplete record a writer left when it died);
    /// returns the bytes cut. Called by a bootstrap with no other controller open.
    pub fn cut_torn_tail(&self) -> Result<u64> {
        self.check_writable()?;
        let _lock = FileLock::exclusive(&self.file, &self.appenders, &self.path)?;
        let mut names = self.names.write().unwrap_or_else(|p| p.into_inner());
        let torn = self.catch_up_locked(&mut names)?;
        if torn > 0 {
            io::set_len(Site::SymbolsCut, &self.file, &self.path, names.end)?;
        }
        Ok(torn)
    }

    /// Gives every id from the map's next one through `through` a
    /// placeholder name (`lost-symbol-<id>`, or `lost-symbol-<id>.<n>` if
    /// the map holds that name already), appended and fsynced whatever the
    /// durability mode; returns the ids and names added. The caller holds the
    /// state directory's gate (an operator's repair, `ops/repair.rs`).
    pub(crate) fn add_lost(&self, through: u32) -> Result<Vec<(u32, String)>> {
        self.check_writable()?;
        let _lock = FileLock::exclusive(&self.file, &self.appenders, &self.path)?;
        let mut names = self.names.write().unwrap_or_else(|p| p.into_inner());
        let torn = self.catch_up_locked(&mut names)?;
        let from = names.len() as u32;
        if through < from {
            return Ok(Vec::new());
        }
        let mut added = Vec::new();
        for id in from..=through {
            let mut name = lost_symbol_name(id);
            let mut n = 1;
            while names.get(&name).is_some() {
                name = format!("{}.{n}", lost_symbol_name(id));
                n += 1;
            }
            added.push((id, name));
        }
        let new: Vec<String> = added.iter().map(|(_, n)| n.clone()).collect();
        self.append_locked(&mut names, torn, &new, true)?;
        Ok(added)
    }

    fn check_writable(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::invalid(format!("{} was opened read-only", self.path.display())))
        }
    }

    fn file_len(&self) -> Result<u64> {
        Ok(self.file.metadata().map_err(|e| Error::io("fstat", &self.path, e))?.len())
    }

    /// The names after reading what other processes appended, without the
    /// log's lock unless damage was met (then again under it).
    fn caught_up(&self) -> Result<RwLockWriteGuard<'_, Names>> {
        let mut names = self.names.write().unwrap_or_else(|p| p.into_inner());
        match self.catch_up(&mut names, false) {
            Ok(_) => return Ok(names),
            Err(CatchUpError::Failed(e)) => return Err(e),
            Err(CatchUpError::NeedsLock) => {}
        }
        // The lock before the names, as every writer takes them.
        drop(names);
        let _lock = FileLock::exclusive(&self.file, &self.appenders, &self.path)?;
        let mut names = self.names.write().unwrap_or_else(|p| p.into_inner());
        self.catch_up_locked(&mut names)?;
        Ok(names)
    }

    /// [`catch_up`](Self::catch_up) for a caller that holds the log's lock.
    fn catch_up_locked(&self, names: &mut Names) -> Result<u64> {
        match self.catch_up(names, true) {
            Ok(torn) => Ok(torn),
            Err(CatchUpError::Failed(e)) => Err(e),
            Err(CatchUpError::NeedsLock) => {
                Err(Error::Internal { what: "a catch-up under the symbol log's lock asked for the lock".into() })
            }
        }
    }

    /// Reads the records past `names.end` and adds them; returns the bytes
    /// of a torn tail after them (0 when the file ends after a good record).
    fn catch_up(&self, names: &mut Names, locked: bool) -> std::result::Result<u64, CatchUpError> {
        let mut len = self.file_len()?;
        if len < names.end {
            return Err(Error::corrupt(
                &self.path,
                Some(len),
                format!("the file ends before the symbols already read from it (which end at {})", names.end),
            )
            .into());
        }
        let mut buf = Vec::new();
        let result = loop {
            let at = names.end;
            if at >= len {
                break Ok(0);
            }
            buf.resize(((len - at) as usize).min(READ_BLOCK), 0);
            let got = read_upto(&self.file, &mut buf, at).map_err(|e| Error::io("read", &self.path, e))?;
            if got < buf.len() {
                // Shorter than a moment ago: a writer cut a torn tail.
                buf.truncate(got);
                len = at + got as u64;
            }
            let mut pos = 0;
            let stop = loop {
                if pos == buf.len() {
                    break None;
                }
                match parse_record(&buf[pos..]) {
                    ParsedRecord::Symbol { id, name, len: n } if id as usize == names.len() => {
                        let offset = at + pos as u64;
                        validate_stored_symbol(name)
                            .map_err(|e| Error::corrupt(&self.path, Some(offset), format!("symbol id {id}: {e}")))?;
                        if !names.push(name) {
                            return Err(Error::corrupt(
                                &self.path,
                                Some(offset),
                                format!("symbol {name:?} appears twice (ids must be unique)"),
                            )
                            .into());
                        }
                        pos += n;
                        names.end = at + pos as u64;
                    }
                    ParsedRecord::Symbol { id, .. } => {
                        break Some((format!("record holds symbol id {id} where id {} belongs", names.len()), false))
                    }
                    ParsedRecord::Incomplete if at + buf.len() as u64 >= len => break Some(("record cut short".to_string(), true)),
                    // The block ends inside this record: read on from it.
                    ParsedRecord::Incomplete => break None,
                    ParsedRecord::Bad { what } => break Some((what.to_string(), false)),
                }
            };
            if let Some((what, cut_short)) = stop {
                let offset = names.end;
                if !self.good_record_after(offset, len)? && (cut_short || self.ends_in_zeros(len)?) {
                    break Ok(len - offset);
                }
                if !locked {
                    break Err(CatchUpError::NeedsLock);
                }
                break Err(Error::corrupt(
                    &self.path,
                    Some(offset),
                    format!("{what} (symbol id {}), and a good record follows", names.len()),
                )
                .into());
            }
        };
        self.known.store(names.len() as u32, Ordering::Release);
        result
    }

    /// True when the last 8 bytes before `len` are zero: what a write that
    /// did not finish leaves at the end of the file (bytes past what it
    /// wrote read as zero), unlike a whole record whose bytes changed (a
    /// flipped bit), which is damage even at the end: cutting it would hand
    /// its id out again while payload records may still name it.
    fn ends_in_zeros(&self, len: u64) -> Result<bool> {
        if len < 8 {
            return Ok(true);
        }
        let mut tail = [0u8; 8];
        let got = read_upto(&self.file, &mut tail, len - 8).map_err(|e| Error::io("read", &self.path, e))?;
        Ok(got < 8 || tail == [0u8; 8])
    }

    /// True when a good record starts at an 8-aligned offset in `(at, len)`.
    fn good_record_after(&self, at: u64, len: u64) -> Result<bool> {
        let mut from = at + 8;
        while from + 8 <= len {
            let mut buf = vec![0u8; ((len - from) as usize).min(READ_BLOCK + MAX_RECORD_BYTES)];
            let got = read_upto(&self.file, &mut buf, from).map_err(|e| Error::io("read", &self.path, e))?;
            buf.truncate(got);
            let mut pos = 0;
            while pos + 8 <= buf.len() {
                match parse_record(&buf[pos..]) {
                    ParsedRecord::Symbol { .. } => return Ok(true),
                    ParsedRecord::Incomplete if from + (buf.len() as u64) < len && buf.len() - pos < MAX_RECORD_BYTES => break,
                    _ => pos += 8,
                }
            }
            if got == 0 || from + (buf.len() as u64) >= len {
                return Ok(false);
            }
            from += pos as u64;
        }
        Ok(false)
    }

    /// Appends records for `new` (ids from `names.len()`) under the log's
    /// lock, after cutting a torn tail of `torn` bytes; syncs them when
    /// `sync`. On success `names` holds them.
    fn append_locked(&self, names: &mut Names, torn: u64, new: &[String], sync: bool) -> Result<()> {
        if torn > 0 {
            io::set_len(Site::SymbolsCut, &self.file, &self.path, names.end)?;
        }
        let first = names.len() as u32;
        let mut bytes = Vec::with_capacity(new.len() * 24);
        for (i, name) in new.iter().enumerate() {
            bytes.extend_from_slice(&encode_record(first + i as u32, name));
        }
        let at = names.end;
        if let Err(e) = self.write_records(&bytes, at) {
            // Whole records stay (another process may have read them); a part
            // of one, which no reader takes, is cut.
            if !self.reads_back(&bytes, at) {
                let _ = io::set_len(Site::SymbolsCut, &self.file, &self.path, at);
                return Err(e);
            }
        }
        let synced = if sync { io::sync_data(Site::SymbolsAppendSync, &self.file, &self.path) } else { Ok(()) };
        if synced.is_err() {
            self.owed_from.fetch_min(at, Ordering::AcqRel);
        }
        failpoint!("symbols::appended");
        for name in new {
            names.push(name);
        }
        names.end = at + bytes.len() as u64;
        self.known.store(names.len() as u32, Ordering::Release);
        synced
    }

    fn write_records(&self, bytes: &[u8], at: u64) -> Result<()> {
        #[cfg(feature = "failpoints")]
        {
            let half = bytes.len() / 2;
            io::write_at(Site::SymbolsAppendWrite, &self.file, &self.path, &bytes[..half], at)?;
            failpoint!("symbols::record-part-written");
            io::write_at(Site::SymbolsAppendWrite, &self.file, &self.path, &bytes[half..], at + half as u64)
        }
        #[cfg(not(feature = "failpoints"))]
        io::write_at(Site::SymbolsAppendWrite, &self.file, &self.path, bytes, at)
    }

    fn reads_back(&self, bytes: &[u8], at: u64) -> bool {
        let mut buf = vec![0u8; bytes.len()];
        matches!(read_upto(&self.file, &mut buf, at), Ok(n) if n == bytes.len() && buf == bytes)
    }

    /// Sync mode: makes durable the records whose `fdatasync` failed. A
    /// failed `fdatasync` may have marked their pages clean, so they are
    /// written again before the sync.
    fn pay_owed(&self) -> Result<()> {
        if !self.sync || self.owed_from.load(Ordering::Acquire) == u64::MAX {
            return Ok(());
        }
        let _lock = FileLock::exclusive(&self.file, &self.appenders, &self.path)?;
        let from = self.owed_from.load(Ordering::Acquire);
        if from == u64::MAX {
            return Ok(());
        }
        let end = self.names.read().unwrap_or_else(|p| p.into_inner()).end;
        let mut buf = vec![0u8; end.saturating_sub(from) as usize];
        let got = read_upto(&self.file, &mut buf, from).map_err(|e| Error::io("read", &self.path, e))?;
        io::write_at(Site::SymbolsAppendWrite, &self.file, &self.path, &buf[..got], from)?;
        io::sync_data(Site::SymbolsAppendSync, &self.file, &self.path)?;
        self.owed_from.store(u64::MAX, Ordering::Release);
        Ok(())
    }
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

    /// A new log in a temp directory holding `names` (written as records, unchecked).
    fn log_of(names: &[&str]) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        SymbolMap::create(d.path(), 7).unwrap();
        let path = d.path().join(SymbolMap::FILE_NAME);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        for (id, n) in names.iter().enumerate() {
            std::io::Write::write_all(&mut f, &encode_record(id as u32, n)).unwrap();
        }
        (d, path)
    }

    fn offsets(names: &[&str]) -> Vec<u64> {
        let mut at = HEADER_BYTES;
        names
            .iter()
            .map(|n| {
                let o = at;
                at += record_len(n.len()) as u64;
                o
            })
            .collect()
    }

    fn no_gate() -> Result<()> {
        Ok(())
    }

    #[test]
    fn records_round_trip_and_have_the_documented_layout() {
        let r = encode_record(5, "SPY");
        assert_eq!(r.len(), 24);
        assert_eq!(&r[0..4], &5u32.to_le_bytes());
        assert_eq!(&r[4..6], &3u16.to_le_bytes());
        assert_eq!(&r[6..8], &[0, 0]);
        assert_eq!(&r[8..11], b"SPY");
        assert_eq!(&r[11..16], &[0; 5]);
        assert_eq!(&r[16..24], &xxhash_rust::xxh3::xxh3_64(&r[..16]).to_le_bytes());
        assert_eq!(parse_record(&r), ParsedRecord::Symbol { id: 5, name: "SPY", len: 24 });
        assert_eq!(record_len(8), 24);
        assert_eq!(record_len(9), 32);
        assert_eq!(MAX_RECORD_BYTES, 80);
        let h = encode_header(42);
        assert_eq!(&h[0..8], b"\x89WSSYM\r\n");
        assert_eq!(&h[8..12], &2u32.to_le_bytes());
        assert_eq!(&h[16..24], &42u64.to_le_bytes());
        decode_header(Path::new("x"), &h).unwrap();
    }

    #[test]
    fn a_log_holding_a_symbol_the_stricter_rule_refuses_still_loads_and_names_it() {
        let (d, _) = log_of(&["SPY", "SPY\u{200B}"]);
        let m = SymbolMap::load(d.path(), false).unwrap();
        assert_eq!(m.lookup_checked("SPY\u{200B}").unwrap(), Some(1));
        assert_eq!(m.resolve("SPY\u{200B}", no_gate).unwrap(), (1, false));
        assert_eq!(m.resolve("QQQ\u{200B}", no_gate).unwrap_err().code().as_str(), "ERR_INVALID_SYMBOL");
        assert_eq!(m.lookup_checked("QQQ\u{200B}").unwrap_err().code().as_str(), "ERR_INVALID_SYMBOL");
        assert_eq!(m.resolve(&lost_symbol_name(2), no_gate).unwrap_err().code().as_str(), "ERR_INVALID_SYMBOL");
        assert_eq!(m.len(), 2);
        assert_eq!(m.resolve("QQQ", no_gate).unwrap(), (2, true));
        assert_eq!(SymbolMap::load(d.path(), true).unwrap().all(), ["SPY", "SPY\u{200B}", "QQQ"]);
    }

    /// Every cut of the last record (a writer killed mid-write, or a power
    /// loss) is a torn tail: readers ignore it, the next add cuts it and
    /// gives its id to the symbol it adds, a bootstrap alone cuts it.
    #[test]
    fn every_cut_of_the_last_record_is_a_torn_tail_that_the_next_add_replaces() {
        let names = ["SPY", "AAPL", "A-LONGER-SYMBOL-NAME"];
        let last = encode_record(3, "TORN");
        for cut in 1..last.len() {
            for fill in [None, Some(0u8)] {
                let (d, path) = log_of(&names);
                let mut f = OpenOptions::new().append(true).open(&path).unwrap();
                let mut tail = last[..cut].to_vec();
                if let Some(b) = fill {
                    // A power loss: the length reached the disk, the bytes did not.
                    tail.iter_mut().for_each(|x| *x = b);
                }
                std::io::Write::write_all(&mut f, &tail).unwrap();
                let reader = SymbolMap::load(d.path(), false).unwrap();
                assert_eq!(reader.all(), names, "cut at {cut}");
                assert_eq!(reader.lookup("TORN").unwrap(), None);
                let writer = SymbolMap::load(d.path(), false).unwrap();
                assert_eq!(writer.resolve("NEW", no_gate).unwrap(), (3, true), "cut at {cut}");
                assert_eq!(reader.lookup("NEW").unwrap(), Some(3), "cut at {cut}: the reader reads on past the cut");
                assert_eq!(
                    std::fs::metadata(&path).unwrap().len(),
                    offsets(&names)[2] + (record_len(names[2].len()) + record_len(3)) as u64
                );
                // The same torn tail, cut by a bootstrap alone.
                std::io::Write::write_all(&mut f, &tail).unwrap();
                let alone = SymbolMap::load(d.path(), false).unwrap();
                assert_eq!(alone.cut_torn_tail().unwrap(), cut as u64);
                assert_eq!(alone.cut_torn_tail().unwrap(), 0);
                assert_eq!(SymbolMap::load(d.path(), false).unwrap().all(), ["SPY", "AAPL", "A-LONGER-SYMBOL-NAME", "NEW"]);
            }
        }
    }

    #[test]
    fn a_bad_record_followed_by_a_good_one_is_damage_with_its_offset() {
        let names = ["SPY", "QQQ", "IWM"];
        let at = offsets(&names);
        // One bit flipped in the name of id 1 ('Q' 0x51 -> 'P' 0x50), two names swapped, a wrong id, a bad length.
        type Damage<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;
        let damage: [(&str, usize, Damage); 4] = [
            ("one bit flipped in a name", 1, Box::new(|b: &mut Vec<u8>| b[at[1] as usize + 8] ^= 1)),
            (
                "two names swapped",
                0,
                Box::new(|b: &mut Vec<u8>| {
                    let (x, y) = (at[0] as usize + 8, at[2] as usize + 8);
                    for i in 0..3 {
                        b.swap(x + i, y + i);
                    }
                }),
            ),
            ("a record holding another id", 1, Box::new(|b: &mut Vec<u8>| b[at[1] as usize] = 9)),
            ("a name length out of range", 1, Box::new(|b: &mut Vec<u8>| b[at[1] as usize + 4] = 65)),
        ];
        for (what, bad_id, damage) in damage {
            let (d, path) = log_of(&names);
            let mut bytes = std::fs::read(&path).unwrap();
            damage(&mut bytes);
            std::fs::write(&path, &bytes).unwrap();
            let e = SymbolMap::load(d.path(), false).err().expect(what);
            match &e {
                Error::CorruptState { file, offset, .. } => {
                    assert_eq!(file, &path, "{what}");
                    assert_eq!(*offset, Some(at[bad_id]), "{what}: {e}");
                }
                other => panic!("{what}: {other}"),
            }
            assert!(SymbolMap::open_read_only(&path).is_err(), "{what}: a read-only open refuses it too");
        }
        // The same damage to the whole last record is damage too: cutting it
        // would give its id to the next symbol.
        let (d, path) = log_of(&names);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at[2] as usize + 8] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let e = SymbolMap::load(d.path(), false).map(drop).expect_err("a flipped bit in the last record");
        assert!(matches!(&e, Error::CorruptState { offset, .. } if *offset == Some(at[2])), "{e}");
        // The last record ending in zeros (a write that did not finish) is a
        // torn tail: the others load.
        let (d, path) = log_of(&names);
        let mut bytes = std::fs::read(&path).unwrap();
        let end = bytes.len();
        bytes[end - 8..].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(SymbolMap::load(d.path(), false).unwrap().all(), ["SPY", "QQQ"]);
    }

    #[test]
    fn a_header_that_is_not_a_version_2_symbol_log_is_refused() {
        let (d, path) = log_of(&["SPY"]);
        let good = std::fs::read(&path).unwrap();
        let mut newer = good.clone();
        newer[8..12].copy_from_slice(&3u32.to_le_bytes());
        assert!(matches!(decode_header(&path, &newer), Err(Error::NewerFormat { version: 3, supported: 2, .. })));
        let mut magic = good.clone();
        magic[1] = b'X';
        let mut created = good.clone();
        created[16] ^= 1;
        for (what, bytes, offset) in [("magic", magic, 0), ("checksum", created, 56), ("short", good[..40].to_vec(), 40)] {
            std::fs::write(&path, &bytes).unwrap();
            match SymbolMap::load(d.path(), false) {
                Err(Error::CorruptState { offset: o, .. }) => assert_eq!(o, Some(offset), "{what}"),
                Err(e) => panic!("{what}: {e}"),
                Ok(_) => panic!("{what}: loaded"),
            }
        }
    }

    /// A miss reads only the records past those the map holds: damage to a
    /// record read before goes unseen by it (a fresh load refuses it).
    #[test]
    fn a_miss_reads_only_the_records_other_processes_appended() {
        let (d, path) = log_of(&["SPY", "QQQ"]);
        let reader = SymbolMap::load(d.path(), false).unwrap();
        let writer = SymbolMap::load(d.path(), false).unwrap();
        assert_eq!(reader.lookup("IWM").unwrap(), None);
        assert_eq!(writer.resolve("IWM", no_gate).unwrap(), (2, true));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER_BYTES as usize + 8] ^= 1; // "SPY" -> "RPY" in the first record
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(reader.lookup("IWM").unwrap(), Some(2));
        assert_eq!(reader.name(2).unwrap().as_deref(), Some("IWM"));
        reader.check_id(2).unwrap();
        assert_eq!(reader.check_id(3).unwrap_err().code().as_str(), "ERR_UNKNOWN_SYMBOL");
        assert!(SymbolMap::load(d.path(), false).is_err());
        // A file that ends before what a map read is damage.
        std::fs::write(&path, &bytes[..HEADER_BYTES as usize + 24]).unwrap();
        let e = reader.reload().unwrap_err();
        assert!(e.to_string().contains("ends before the symbols already read"), "{e}");
    }

    #[test]
    fn concurrent_adds_of_the_same_names_give_each_one_id() {
        let (d, _) = log_of(&[]);
        let names: Vec<String> = (0..200).map(|i| format!("S{i}")).collect();
        let maps: Vec<SymbolMap> = (0..4).map(|_| SymbolMap::load(d.path(), false).unwrap()).collect();
        let seen: Vec<Vec<u32>> = std::thread::scope(|s| {
            let handles: Vec<_> = maps
                .iter()
                .enumerate()
                .map(|(t, m)| {
                    let names = &names;
                    s.spawn(move || {
                        // Each thread walks the names from another start.
                        let mut ids = vec![0; names.len()];
                        for k in 0..names.len() {
                            let i = (k + t * 50) % names.len();
                            ids[i] = m.resolve(&names[i], no_gate).unwrap().0;
                        }
                        ids
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for ids in &seen[1..] {
            assert_eq!(ids, &seen[0], "every map gave every name the same id");
        }
        let mut sorted = seen[0].clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..200).collect::<Vec<u32>>(), "ids are dense and unique");
        let log = SymbolMap::load(d.path(), false).unwrap();
        for (i, n) in names.iter().enumerate() {
            assert_eq!(log.lookup(n).unwrap(), Some(seen[0][i]));
        }
    }

    #[test]
    fn lost_symbols_get_placeholders_appended_after_the_last_symbol() {
        let (d, _) = log_of(&["SPY", "lost-symbol-3"]);
        let m = SymbolMap::load(d.path(), false).unwrap();
        assert_eq!(m.add_lost(1).unwrap(), vec![]);
        assert_eq!(
            m.add_lost(4).unwrap(),
            vec![(2, "lost-symbol-2".to_string()), (3, "lost-symbol-3.1".to_string()), (4, "lost-symbol-4".to_string())]
        );
        assert_eq!(m.resolve("QQQ", no_gate).unwrap(), (5, true));
        let again = SymbolMap::load(d.path(), false).unwrap();
        assert_eq!(again.all(), ["SPY", "lost-symbol-3", "lost-symbol-2", "lost-symbol-3.1", "lost-symbol-4", "QQQ"]);
        let ro = SymbolMap::open_read_only(again.path()).unwrap();
        assert_eq!(ro.resolve("IWM", no_gate).unwrap_err().code().as_str(), "ERR_INVALID_ARGUMENT");
    }
}
