//! Payload mapping tables: one append-only file per store family
//! (`trades.map`, `quotes.map`, `aggressor.map`, `rf_rate.map`, `greeks.map`,
//! `aggregations.map`). A payload id is the position of its record in the
//! file; ids are dense, never reused, and unique across processes.
//!
//! ## File format (versions 1 and 2), little-endian
//!
//! ```text
//! Header, bytes 0..64
//!   0   8  magic            89 57 53 4D 41 50 0D 0A   ("\x89WSMAP\r\n")
//!   8   4  format version   1; 2 once the table may hold lost-id records
//!  12   4  store kind       0 trades, 1 quotes, 2 aggressor, 3 rf_rate, 4 greeks, 5 aggregations
//!  16   8  created at       ns since the Unix epoch
//!  24  32  reserved         0
//!  56   8  header checksum  xxh3-64 of bytes 0..56
//! Records, from offset 64, each padded to a multiple of 8 bytes
//!   0   4  record magic     "WSR1"
//!   4   4  body length      n (48 ..= 48 + 4096)
//!   8   8  body checksum    xxh3-64 of the body
//!  16   n  body
//!     0   8  payload id       must equal the record's position
//!     8   4  symbol id
//!    12   4  window index
//!    16   1  slot kind        global slot-kind code (slot.rs)
//!    17   1  payload type     artifact format code
//!    18   2  flags            0: a record; 0x0001 (LOST): a lost-id record
//!                             (below); any other value is damage
//!    20   4  URI length       u (≤ 4096)
//!    24   8  artifact checksum
//!    32   8  artifact size    bytes
//!    40   8  created at       ns since the Unix epoch
//!    48   u  URI              UTF-8
//! ```
//!
//! **Lost-id records** (flags `0x0001`): the record of this payload id did
//! not survive (power loss in the buffered mode, or a table restored from an
//! older backup) and an operator's repair (`ops/repair.rs`) accepted the
//! loss. It keeps the id taken, so the id is never handed out again; it names
//! no artifact. Its body is the fixed 48 bytes: the payload id, the creation
//! time (when the repair wrote it), every other field 0 and no URI (a lost-id
//! record of another shape is damage). Reading its id gives
//! `Error::PayloadLost`; a fill naming it is refused the same way. Before it
//! writes the first one, the repair rewrites the header with format version
//! 2 (and fsyncs), so a library that reads only version 1 refuses the table
//! as made by a newer version rather than taking a lost-id record for a bad
//! one (and cutting it off as a torn tail, which would hand its id out
//! again). New tables are made with version 1.
//!
//! **Appends** take an exclusive `flock` on the file, first read any records
//! other processes appended (so the next id is known), cut an incomplete
//! record left at the tail by a writer that died (nobody else can be writing
//! while we hold the lock), then write the record with one `pwrite` at the end,
//! and, in the synchronous durability mode, `fdatasync` before returning.
//!
//! **Replay** at bootstrap reads every record and keeps only its offset in
//! memory (8 bytes a record). The recovery policy is [`RecoveryMode`]: a bad
//! record at the very end is a torn tail (cut off when no other controller has
//! the directory open, and reported); a bad record followed by data is damage
//! and fails the bootstrap with the file and offset, changing nothing.
//!
//! One file, past 600 lines (the tests make up the last 160): the format,
//! replay, appends and lost ids share the in-memory index and its lock.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::fsutil::read_upto;
use crate::io::{self, Site};
use crate::lock::FileLock;
use crate::vocab::SlotKind;
pub use crate::vocab::StoreKind;

pub(crate) const MAGIC: [u8; 8] = *b"\x89WSMAP\r\n";
/// The newest format version this library reads (and the one the repair writes).
pub(crate) const FORMAT_VERSION: u32 = 2;
/// The format version of a new table (no lost-id record yet).
const FORMAT_VERSION_NEW: u32 = 1;
/// Format version 2 and later may hold lost-id records.
const FORMAT_VERSION_LOST: u32 = 2;
/// The record flag of a lost-id record.
pub const FLAG_LOST: u16 = 0x0001;
pub(crate) const HEADER_BYTES: u64 = 64;
const RECORD_MAGIC: [u8; 4] = *b"WSR1";
const RECORD_HEADER_BYTES: usize = 16;
const BODY_FIXED_BYTES: usize = 48;
/// Longest artifact URI, in bytes.
pub const MAX_URI_BYTES: usize = 4096;
const MAX_BODY_BYTES: usize = BODY_FIXED_BYTES + MAX_URI_BYTES;

/// What happens to a bad record at the tail of a mapping table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryMode {
    /// Report the torn tail and cut it off (bootstrap when alone, appenders).
    TruncateTornTail,
    /// Report the torn tail and leave the file as it is (bootstrap while other
    /// controllers are open: the tail may be an append in progress).
    ReportTornTail,
}

/// One payload record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadRecord {
    pub payload_id: u64,
    pub symbol_id: u32,
    pub window_idx: u32,
    pub slot_kind: u8,
    pub payload_type: u8,
    pub checksum: u64,
    pub size: u64,
    pub created_at_ns: u64,
    pub uri: String,
}

/// What an engine appends: a record without its id (the store assigns it)
/// and without its creation time (the core stamps it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadInput {
    pub symbol_id: u32,
    pub window_idx: u32,
    pub slot_kind: SlotKind,
    pub payload_type: u8,
    pub checksum: u64,
    pub size: u64,
    pub uri: String,
}

/// What replay found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Records, lost-id records included (the next id).
    pub records: u64,
    /// Lost-id records among them.
    pub lost: u64,
    pub bytes: u64,
    /// Bytes of a torn tail found after the last good record.
    pub torn_tail_bytes: u64,
    /// Whether the torn tail was cut off.
    pub torn_tail_repaired: bool,
}

#[derive(Default)]
struct Index {
    /// File offset of each record, by payload id.
    offsets: Vec<u64>,
    /// Ids of lost-id records, ascending.
    lost: Vec<u64>,
    /// End of the last good record.
    end: u64,
}

/// An open mapping table.
pub struct PayloadStore {
    kind: StoreKind,
    path: PathBuf,
    file: File,
    index: Mutex<Index>,
    /// Taken before the file's flock by every appender of this process.
    appenders: Mutex<()>,
    sync: bool,
    /// False for a table opened with [`open_read_only`](Self::open_read_only).
    writable: bool,
    /// Records this process appended inside a deferral scope and has not
    /// synced yet: the first such payload id (`u64::MAX` when none is owed).
    first_owed: AtomicU64,
    /// Number of records in `index`, readable without its lock: the fill
    /// path's existence check. It only shrinks when a record is found cut
    /// after a failed `fdatasync`, whose id its appender never handed out.
    known: AtomicU64,
    /// Held across taking `first_owed` and the `fdatasync` that pays it, so
    /// `ensure_durable` never sees "nothing owed" while that sync is running.
    syncing: Mutex<()>,
    /// The lowest and highest lost id in `index` (`u64::MAX` and 0 when
    /// none), set before `known` covers them: an id outside the range is no
    /// lost one, without taking the index's lock.
    lost_lo: AtomicU64,
    lost_hi: AtomicU64,
}

/// What a good record at some offset is.
enum Entry {
    Record(PayloadRecord),
    Lost(u64),
}

impl Entry {
    fn id(&self) -> u64 {
        match self {
            Self::Record(r) => r.payload_id,
            Self::Lost(id) => *id,
        }
    }
}

fn pad8(n: usize) -> usize {
    (n + 7) & !7
}

fn encode_header(kind: StoreKind, created_at_ns: u64, version: u32) -> [u8; HEADER_BYTES as usize] {
    let mut h = [0u8; HEADER_BYTES as usize];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[12..16].copy_from_slice(&kind.code().to_le_bytes());
    h[16..24].copy_from_slice(&created_at_ns.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&h[..56]);
    h[56..64].copy_from_slice(&sum.to_le_bytes());
    h
}

/// True when `h` is a version 1 header whose rewrite as version 2 was cut
/// short: the new header's first bytes over the old one's last. The two
/// differ only in the version and the checksum, so such a header is the old
/// one for some cut, and its fields are those of both.
fn is_torn_upgrade(h: &[u8]) -> bool {
    let kind = u32::from_le_bytes(h[12..16].try_into().expect("4 bytes"));
    let Some(kind) = StoreKind::from_code(kind) else { return false };
    let created = u64::from_le_bytes(h[16..24].try_into().expect("8 bytes"));
    let (old, new) = (encode_header(kind, created, FORMAT_VERSION_NEW), encode_header(kind, created, FORMAT_VERSION_LOST));
    (0..=h.len()).any(|cut| h[..cut] == new[..cut] && h[cut..] == old[cut..])
}

/// Checks a mapping-table header; returns its format version (1 or 2).
pub fn decode_header(path: &Path, kind: StoreKind, h: &[u8]) -> Result<u32> {
    if h.len() < HEADER_BYTES as usize {
        return Err(Error::corrupt(path, Some(h.len() as u64), "file is shorter than its 64-byte header"));
    }
    // Magic, then version (a newer file is reported as newer), then checksum.
    if h[0..8] != MAGIC {
        return Err(Error::corrupt(path, Some(0), "wrong magic number: not a window-space mapping table"));
    }
    let version = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    if !(FORMAT_VERSION_NEW..=FORMAT_VERSION).contains(&version) {
        return Err(Error::unsupported_version(path, 8, version, FORMAT_VERSION));
    }
    if u64::from_le_bytes(h[56..64].try_into().expect("8 bytes")) != xxhash_rust::xxh3::xxh3_64(&h[..56]) {
        if !is_torn_upgrade(&h[..HEADER_BYTES as usize]) {
            return Err(Error::corrupt(path, Some(56), "header checksum mismatch"));
        }
        // The rewrite to version 2 was cut short before any lost-id record
        // was written (they follow it only once it is whole and synced): the
        // table is still a version 1 one, and the next `append_lost` writes
        // the header again.
        let stored = u32::from_le_bytes(h[12..16].try_into().expect("4 bytes"));
        if stored != kind.code() {
            return Err(Error::corrupt(path, Some(12), format!("store kind {stored}, expected {} ({})", kind.code(), kind.file_name())));
        }
        return Ok(FORMAT_VERSION_NEW);
    }
    let stored = u32::from_le_bytes(h[12..16].try_into().expect("4 bytes"));
    if stored != kind.code() {
        return Err(Error::corrupt(path, Some(12), format!("store kind {stored}, expected {} ({})", kind.code(), kind.file_name())));
    }
    Ok(version)
}

/// Encodes a record (with its framing) for `payload_id`.
pub fn encode_record(rec: &PayloadRecord) -> Result<Vec<u8>> {
    let uri = rec.uri.as_bytes();
    if uri.len() > MAX_URI_BYTES {
        return Err(Error::invalid(format!("artifact URI is {} bytes; at most {MAX_URI_BYTES} are allowed", uri.len())));
    }
    let body_len = BODY_FIXED_BYTES + uri.len();
    let mut out = vec![0u8; pad8(RECORD_HEADER_BYTES + body_len)];
    {
        let body = &mut out[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + body_len];
        body[0..8].copy_from_slice(&rec.payload_id.to_le_bytes());
        body[8..12].copy_from_slice(&rec.symbol_id.to_le_bytes());
        body[12..16].copy_from_slice(&rec.window_idx.to_le_bytes());
        body[16] = rec.slot_kind;
        body[17] = rec.payload_type;
        body[20..24].copy_from_slice(&(uri.len() as u32).to_le_bytes());
        body[24..32].copy_from_slice(&rec.checksum.to_le_bytes());
        body[32..40].copy_from_slice(&rec.size.to_le_bytes());
        body[40..48].copy_from_slice(&rec.created_at_ns.to_le_bytes());
        body[48..].copy_from_slice(uri);
    }
    let sum = xxhash_rust::xxh3::xxh3_64(&out[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + body_len]);
    out[0..4].copy_from_slice(&RECORD_MAGIC);
    out[4..8].copy_from_slice(&(body_len as u32).to_le_bytes());
    out[8..16].copy_from_slice(&sum.to_le_bytes());
    Ok(out)
}

/// Encodes the lost-id record of `payload_id` (see the module comment).
pub fn encode_lost_record(payload_id: u64, created_at_ns: u64) -> Vec<u8> {
    let mut out = vec![0u8; pad8(RECORD_HEADER_BYTES + BODY_FIXED_BYTES)];
    {
        let body = &mut out[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + BODY_FIXED_BYTES];
        body[0..8].copy_from_slice(&payload_id.to_le_bytes());
        body[18..20].copy_from_slice(&FLAG_LOST.to_le_bytes());
        body[40..48].copy_from_slice(&created_at_ns.to_le_bytes());
    }
    let sum = xxhash_rust::xxh3::xxh3_64(&out[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + BODY_FIXED_BYTES]);
    out[0..4].copy_from_slice(&RECORD_MAGIC);
    out[4..8].copy_from_slice(&(BODY_FIXED_BYTES as u32).to_le_bytes());
    out[8..16].copy_from_slice(&sum.to_le_bytes());
    out
}

/// Outcome of parsing one record from a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A good record of this many bytes (padding included).
    Record(PayloadRecord, usize),
    /// A good lost-id record of this payload id and this many bytes.
    Lost(u64, usize),
    /// Not enough bytes for the record the framing announces.
    Incomplete,
    /// Bad framing or checksum; `announced` is the record length when the
    /// framing could be read, to tell a bad last record from damage mid-file.
    Bad { what: String, announced: Option<usize> },
}

/// Parses the record at the start of `buf`.
pub fn parse_record(buf: &[u8]) -> Parsed {
    if buf.len() < RECORD_HEADER_BYTES {
        return Parsed::Incomplete;
    }
    if buf[0..4] != RECORD_MAGIC {
        return Parsed::Bad { what: "record magic missing".into(), announced: None };
    }
    let body_len = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes")) as usize;
    if !(BODY_FIXED_BYTES..=MAX_BODY_BYTES).contains(&body_len) {
        return Parsed::Bad { what: format!("record length {body_len} out of range"), announced: None };
    }
    let total = pad8(RECORD_HEADER_BYTES + body_len);
    if buf.len() < total {
        return Parsed::Incomplete;
    }
    let body = &buf[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + body_len];
    let stored = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
    if stored != xxhash_rust::xxh3::xxh3_64(body) {
        return Parsed::Bad { what: "record checksum mismatch".into(), announced: Some(total) };
    }
    let u64_at = |o: usize| u64::from_le_bytes(body[o..o + 8].try_into().expect("8 bytes"));
    let u32_at = |o: usize| u32::from_le_bytes(body[o..o + 4].try_into().expect("4 bytes"));
    let flags = u16::from_le_bytes([body[18], body[19]]);
    if flags == FLAG_LOST {
        let zero = body[8..18].iter().chain(&body[20..40]).all(|b| *b == 0);
        if body_len != BODY_FIXED_BYTES || !zero {
            return Parsed::Bad { what: "lost-id record with fields set".into(), announced: Some(total) };
        }
        return Parsed::Lost(u64_at(0), total);
    }
    if flags != 0 {
        return Parsed::Bad { what: format!("record flags {flags:#06x} are not 0"), announced: Some(total) };
    }
    let uri_len = u32_at(20) as usize;
    if BODY_FIXED_BYTES + uri_len != body_len {
        return Parsed::Bad { what: format!("URI length {uri_len} does not match record length {body_len}"), announced: Some(total) };
    }
    let Ok(uri) = std::str::from_utf8(&body[48..]) else {
        return Parsed::Bad { what: "URI is not UTF-8".into(), announced: Some(total) };
    };
    Parsed::Record(
        PayloadRecord {
            payload_id: u64_at(0),
            symbol_id: u32_at(8),
            window_idx: u32_at(12),
            slot_kind: body[16],
            payload_type: body[17],
            checksum: u64_at(24),
            size: u64_at(32),
            created_at_ns: u64_at(40),
            uri: uri.to_string(),
        },
        total,
    )
}

/// Bytes read per `pread` during replay.
const REPLAY_BLOCK: usize = 4 << 20;

impl PayloadStore {
    /// Creates an empty table (first bootstrap).
    pub fn create(path: &Path, kind: StoreKind, created_at_ns: u64) -> Result<()> {
        let file = OpenOptions::new().write(true).create_new(true).open(path).map_err(|e| Error::io("create", path, e))?;
        io::write_at(Site::PayloadCreateWrite, &file, path, &encode_header(kind, created_at_ns, FORMAT_VERSION_NEW), 0)?;
        io::sync_all(Site::PayloadCreateSync, &file, path)
    }

    /// Opens and replays a table. With [`RecoveryMode::TruncateTornTail`] a torn
    /// tail is cut off (call that only after every other check of the bootstrap
    /// passed, see `Controller::bootstrap`).
    pub fn open(path: &Path, kind: StoreKind, sync: bool) -> Result<(Self, ReplayReport)> {
        Self::open_with(path, kind, sync, true)
    }

    /// Opens and replays a table for reading only (tools on live directories
    /// and on read-only copies): the file is opened read-only, a torn tail is
    /// reported and never cut, and appends are refused.
    pub fn open_read_only(path: &Path, kind: StoreKind) -> Result<(Self, ReplayReport)> {
        Self::open_with(path, kind, false, false)
    }

    fn open_with(path: &Path, kind: StoreKind, sync: bool, writable: bool) -> Result<(Self, ReplayReport)> {
        let file = OpenOptions::new().read(true).write(writable).open(path).map_err(|e| Error::io("open", path, e))?;
        let mut header = [0u8; HEADER_BYTES as usize];
        let len = file.metadata().map_err(|e| Error::io("fstat", path, e))?.len();
        if len < HEADER_BYTES {
            return Err(Error::corrupt(path, Some(len), "file is shorter than its 64-byte header"));
        }
        file.read_exact_at(&mut header, 0).map_err(|e| Error::io("read", path, e))?;
        decode_header(path, kind, &header)?;
        let store = Self {
            kind,
            path: path.to_path_buf(),
            file,
            index: Mutex::new(Index { offsets: Vec::new(), lost: Vec::new(), end: HEADER_BYTES }),
            appenders: Mutex::new(()),
            sync,
            writable,
            first_owed: AtomicU64::new(u64::MAX),
            known: AtomicU64::new(0),
            syncing: Mutex::new(()),
            lost_lo: AtomicU64::new(u64::MAX),
            lost_hi: AtomicU64::new(0),
        };
        let report = {
            let mut index = store.index.lock().unwrap_or_else(|p| p.into_inner());
            let torn = store.read_new_records(&mut index)?;
            ReplayReport {
                records: index.offsets.len() as u64,
                lost: index.lost.len() as u64,
                bytes: index.end,
                torn_tail_bytes: torn,
                torn_tail_repaired: false,
            }
        };
        Ok((store, report))
    }

    /// Cuts a torn tail found by replay; the caller knows no other process is
    /// appending (it is alone, or it holds the file lock).
    pub fn repair_torn_tail(&self) -> Result<u64> {
        self.check_writable()?;
        let _lock = FileLock::exclusive(&self.file, &self.appenders, &self.path)?;
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let torn = self.read_new_records_locked(&mut index)?;
        if torn > 0 {
            self.cut(&index)?;
        }
        Ok(torn)
    }

    fn check_writable(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::invalid(format!("{} was opened read-only", self.path.display())))
        }
    }

    fn cut(&self, index: &Index) -> Result<()> {
        io::set_len(Site::PayloadCutTruncate, &self.file, &self.path, index.end)?;
        io::sync_all(Site::PayloadCutSync, &self.file, &self.path)
    }

    /// [`read_new_records`](Self::read_new_records) for a caller that holds
    /// the file lock. A record this index holds may have been cut since it
    /// was read (an append whose `fdatasync` failed is cut off, see
    /// [`append`](Self::append)): when the file ends before the index does,
    /// or what follows the index does not read, the index's last records are
    /// read again first and those the file no longer holds are dropped.
    fn read_new_records_locked(&self, index: &mut Index) -> Result<u64> {
        let len = self.file.metadata().map_err(|e| Error::io("fstat", &self.path, e))?.len();
        // Anything after the index's end may be cut as a torn tail below, so
        // the end must be right: the last record must still be where it was.
        if len < index.end || !self.last_record_reads_back(index)? {
            self.resync_tail(index)?;
        }
        match self.read_new_records(index) {
            Err(Error::CorruptState { .. }) if self.resync_tail(index)? => self.read_new_records(index),
            other => other,
        }
    }

    /// Drops the index's last records until the last one reads back as the
    /// record of its id; true if the index changed.
    fn resync_tail(&self, index: &mut Index) -> Result<bool> {
        let mut changed = false;
        while let Some(&off) = index.offsets.last() {
            let id = index.offsets.len() as u64 - 1;
            match self.record_at(off)? {
                Some((rec, total)) if rec.id() == id => {
                    if index.end != off + total as u64 {
                        index.end = off + total as u64;
                        changed = true;
                    }
                    break;
                }
                _ => {
                    index.offsets.pop();
                    index.end = off;
                    changed = true;
                }
            }
        }
        if changed {
            let len = index.offsets.len() as u64;
            while index.lost.last().is_some_and(|l| *l >= len) {
                index.lost.pop();
            }
            self.known.store(len, Ordering::Release);
        }
        Ok(changed)
    }

    /// True when the index's last record still reads back, ending at the index's end.
    fn last_record_reads_back(&self, index: &Index) -> Result<bool> {
        let Some(&off) = index.offsets.last() else { return Ok(index.end == HEADER_BYTES) };
        let mut buf = vec![0u8; (index.end - off) as usize];
        let got = read_upto(&self.file, &mut buf, off).map_err(|e| Error::io("read", &self.path, e))?;
        let last = index.offsets.len() as u64 - 1;
        Ok(got == buf.len()
            && match parse_record(&buf) {
                Parsed::Record(rec, n) => n == buf.len() && rec.payload_id == last,
                Parsed::Lost(id, n) => n == buf.len() && id == last,
                Parsed::Incomplete | Parsed::Bad { .. } => false,
            })
    }

    /// The record at `offset` and its length, if a good one is there.
    fn record_at(&self, offset: u64) -> Result<Option<(Entry, usize)>> {
        let mut buf = vec![0u8; pad8(RECORD_HEADER_BYTES + MAX_BODY_BYTES)];
        let got = read_upto(&self.file, &mut buf, offset).map_err(|e| Error::io("read", &self.path, e))?;
        buf.truncate(got);
        Ok(match parse_record(&buf) {
            Parsed::Record(rec, n) => Some((Entry::Record(rec), n)),
            Parsed::Lost(id, n) => Some((Entry::Lost(id), n)),
            Parsed::Incomplete | Parsed::Bad { .. } => None,
        })
    }

    /// Reads records past `index.end` and adds them; returns the number of
    /// bytes of a torn tail after them (0 if the file ends cleanly). Damage
    /// followed by more data is an error naming the offset.
    fn read_new_records(&self, index: &mut Index) -> Result<u64> {
        let result = self.scan_new_records(index);
        self.publish_lost(index);
        self.known.fetch_max(index.offsets.len() as u64, Ordering::Release);
        result
    }

    /// Widens the lost-id range to the lost ids of `index` (before `known`
    /// covers them, so the fill path's lock-free check never misses one).
    fn publish_lost(&self, index: &Index) {
        if let (Some(first), Some(last)) = (index.lost.first(), index.lost.last()) {
            self.lost_lo.fetch_min(*first, Ordering::AcqRel);
            self.lost_hi.fetch_max(*last, Ordering::AcqRel);
        }
    }

    fn scan_new_records(&self, index: &mut Index) -> Result<u64> {
        let mut file_len = self.file.metadata().map_err(|e| Error::io("fstat", &self.path, e))?.len();
        if file_len < index.end {
            return Err(Error::corrupt(
                &self.path,
                Some(file_len),
                format!("the file ends before the records already read from it (which end at {})", index.end),
            ));
        }
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_start = index.end; // file offset of buf[0]
        let mut pos = 0usize; // position in buf
        loop {
            let at = buf_start + pos as u64;
            if at >= file_len {
                return Ok(0);
            }
            let parsed = parse_record(&buf[pos..]);
            let (id, n, lost) = match parsed {
                Parsed::Record(PayloadRecord { payload_id, .. }, n) => (payload_id, n, false),
                Parsed::Lost(id, n) => (id, n, true),
                _ => (0, 0, false),
            };
            match parsed {
                Parsed::Record(..) | Parsed::Lost(..) => {
                    let expected = index.offsets.len() as u64;
                    if id != expected {
                        return Err(Error::corrupt(
                            &self.path,
                            Some(at),
                            format!("record holds payload id {id} where id {expected} belongs"),
                        ));
                    }
                    if lost {
                        index.lost.push(id);
                    }
                    index.offsets.push(at);
                    pos += n;
                    index.end = buf_start + pos as u64;
                }
                Parsed::Incomplete => {
                    let have = buf.len() - pos;
                    if buf_start + buf.len() as u64 >= file_len {
                        // Nothing more in the file: a record cut short at the end.
                        return Ok(file_len - at);
                    }
                    // Refill: keep the unparsed bytes, read more.
                    buf.drain(..pos);
                    buf_start = at;
                    pos = 0;
                    let want = (REPLAY_BLOCK.max(have + MAX_BODY_BYTES + RECORD_HEADER_BYTES)).min((file_len - buf_start) as usize);
                    let old = buf.len();
                    buf.resize(want, 0);
                    let got =
                        read_upto(&self.file, &mut buf[old..], buf_start + old as u64).map_err(|e| Error::io("read", &self.path, e))?;
                    if old + got < want {
                        // The file is shorter than it was a moment ago: an
                        // appender cut a torn tail. Its end is here now.
                        buf.truncate(old + got);
                        file_len = buf_start + buf.len() as u64;
                    }
                }
                Parsed::Bad { what, announced } => {
                    let rest = file_len - at;
                    let is_tail = match announced {
                        Some(n) => n as u64 >= rest,
                        None => self.all_zero_or_short(at, file_len)?,
                    };
                    if is_tail {
                        return Ok(rest);
                    }
                    return Err(Error::corrupt(
                        &self.path,
                        Some(at),
                        format!("{what} (payload id {}), and more data follows", index.offsets.len()),
                    ));
                }
            }
        }
    }

    /// True when `[at, end)` is shorter than a record header or only zeros
    /// (what a crash leaves after a partly written record).
    fn all_zero_or_short(&self, at: u64, end: u64) -> Result<bool> {
        if end - at < RECORD_HEADER_BYTES as u64 {
            return Ok(true);
        }
        let mut buf = vec![0u8; ((end - at) as usize).min(MAX_BODY_BYTES + RECORD_HEADER_BYTES + 8)];
        let got = read_upto(&self.file, &mut buf, at).map_err(|e| Error::io("read", &self.path, e))?;
        if got < buf.len() {
            // The file was cut meanwhile (an appender removed a torn tail): it ends at `at + got`.
            buf.truncate(got);
            return Ok(got < RECORD_HEADER_BYTES || buf.iter().all(|b| *b == 0) || buf.len() < MAX_BODY_BYTES);
        }
        // A bad framing followed by less than one record's worth of bytes, or zeros.
        Ok(end - at <= buf.len() as u64 && (buf.iter().all(|b| *b == 0) || buf.len() < MAX_BODY_BYTES))
    }

    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records known to this controller (catching up with other processes first).
    pub fn len(&self) -> Result<u64> {
        Ok(self.caught_up()?.offsets.len() as u64)
    }

    /// The index after catching up with what other processes appended.
    ///
    /// The catch-up runs without the file lock, so it can meet an append or
    /// a cut in progress: a file shorter than a moment ago is its new end
    /// (`read_new_records`), and bytes after the last good record may be a
    /// record still being written, or records written after a cut of one
    /// this index holds. Whenever anything follows the last good record, the
    /// catch-up is done again under the file lock, where nobody writes: only
    /// damage still there is an error.
    fn caught_up(&self) -> Result<MutexGuard<'_, Index>> {
        {
            let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
            match self.read_new_records(&mut index) {
                Ok(0) => return Ok(index),
                // Bytes after the last good record: an append in progress, a
                // torn tail, or the records behind a cut (see `append`).
                Ok(_) | Err(Error::CorruptState { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.caught_up_locked()
    }

    /// The index after catching up under the file lock: what it says is final.
    fn caught_up_locked(&self) -> Result<MutexGuard<'_, Index>> {
        // Lock order as in `append`: the file lock, then the index.
        let _lock = FileLock::exclusive(&self.file, &self.appenders, &self.path)?;
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        self.read_new_records_locked(&mut index)?;
        drop(_lock);
        Ok(index)
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Appends a record; its `payload_id` field is ignored and set to the next id.
    /// The URI must be relative to the state directory ([`crate::artifact::check_uri`]).
    pub fn append(&self, mut rec: PayloadRecord) -> Result<u64> {
        self.check_writable()?;
        if rec.uri.len() > MAX_URI_BYTES {
            return Err(Error::invalid(format!("artifact URI is {} bytes; at most {MAX_URI_BYTES} are allowed", rec.uri.len())));
        }
        crate::artifact::check_uri(&rec.uri)?;
        let _lock = FileLock::exclusive(&self.file, &self.appenders, &self.path)?;
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        // We hold the lock: whatever bad bytes follow the last good record were
        // left by a writer that died. Cut them before appending after them.
        if self.read_new_records_locked(&mut index)? > 0 {
            self.cut(&index)?;
        }
        failpoint!("payload::append-locked");
        let id = index.offsets.len() as u64;
        rec.payload_id = id;
        let bytes = encode_record(&rec)?;
        let at = index.end;
        if let Err(e) = io::write_at(Site::PayloadAppendWrite, &self.file, &self.path, &bytes, at) {
            // Leave no partial record behind (a full disk, for instance).
            let _ = io::set_len(Site::PayloadAppendUndo, &self.file, &self.path, at);
            return Err(e);
        }
        failpoint!("payload::append-written");
        if self.sync {
            if crate::durability::deferring() {
                self.first_owed.fetch_min(id, Ordering::AcqRel);
            } else if let Err(e) = io::sync_data(Site::PayloadAppendSync, &self.file, &self.path) {
                // The caller is told the append failed, so the record must not
                // count: cut it off (we hold the lock, nothing follows it). The
                // next append writes its id again; a reader that indexed it
                // meanwhile drops it when it next reads under the lock.
                let _ = io::set_len(Site::PayloadAppendUndo, &self.file, &self.path, at);
                return Err(e);
            }
        }
        failpoint!("payload::append-synced");
        index.offsets.push(at);
        self.known.fetch_max(index.offsets.len() as u64, Ordering::Release);
        index.end = at + bytes.len() as u64;
        Ok(id)
    }

    /// Reads the record of `payload_id`, if it exists. A lost id (see the
    /// module comment) is `Error::PayloadLost`: the id exists, its record does not.
    pub fn get(&self, payload_id: u64) -> Result<Option<PayloadRecord>> {
        let mut locked = false;
        loop {
            let offset = {
                let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
                if payload_id >= index.offsets.len() as u64 {
                    drop(index);
                    index = if locked { self.caught_up_locked()? } else { self.caught_up()? };
                }
                index.offsets.get(payload_id as usize).copied()
            };
            let found = match offset {
                Some(at) => self.record_at(at)?.filter(|(rec, _)| rec.id() == payload_id),
                None => None,
            };
            match (found, offset) {
                (Some((Entry::Record(rec), _)), _) => return Ok(Some(rec)),
                (Some((Entry::Lost(_), _)), _) => return Err(Error::PayloadLost { store: self.kind.file_name(), payload_id }),
                // Not there, or not readable where the index says: the lock-free
                // view may be behind a cut; read again under the lock, once.
                _ if !locked => {
                    locked = true;
                    drop(self.caught_up_locked()?);
                }
                (None, None) => return Ok(None),
                (None, Some(at)) => {
                    return Err(Error::corrupt(&self.path, Some(at), format!("record of payload id {payload_id} no longer reads back")));
                }
            }
        }
    }

    /// Checks that `payload_id` exists and is not lost (catching up first).
    pub fn check_exists(&self, payload_id: u64) -> Result<()> {
        let known = payload_id < self.known.load(Ordering::Acquire);
        if known && !self.maybe_lost(payload_id) {
            return Ok(());
        }
        if !known && payload_id >= self.len()? {
            // Refuse only on what the file holds under the lock (the lock-free
            // view may be behind a cut after a failed sync).
            let len = self.caught_up_locked()?.offsets.len() as u64;
            if payload_id >= len {
                return Err(Error::UnknownPayload { store: self.kind.file_name(), payload_id, length: len });
            }
        }
        if self.is_lost(payload_id) {
            return Err(Error::PayloadLost { store: self.kind.file_name(), payload_id });
        }
        Ok(())
    }

    /// False when `payload_id` is certainly no lost id (one atomic range check).
    #[inline]
    fn maybe_lost(&self, payload_id: u64) -> bool {
        self.lost_lo.load(Ordering::Acquire) <= payload_id && payload_id <= self.lost_hi.load(Ordering::Acquire)
    }

    /// Whether `payload_id` is a lost id among the records indexed so far.
    pub fn is_lost(&self, payload_id: u64) -> bool {
        self.maybe_lost(payload_id) && self.index.lock().unwrap_or_else(|p| p.into_inner()).lost.binary_search(&payload_id).is_ok()
    }

    /// The lost ids of the table, ascending (catching up first).
    pub fn lost_ids(&self) -> Result<Vec<u64>> {
        Ok(self.caught_up()?.lost.clone())
    }

    /// Records and lost ids as indexed now, without catching up (bootstrap's
    /// view of what it replayed).
    pub(crate) fn indexed(&self) -> (u64, Vec<u64>) {
        let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        (index.offsets.len() as u64, index.lost.clone())
    }

    /// The format version in the file's header now (1, or 2 once it may hold
    /// lost-id records).
    pub fn format_version(&self) -> Result<u32> {
        let mut header = [0u8; HEADER_BYTES as usize];
        self.file.read_exact_at(&mut header, 0).map_err(|e| Error::io("read", &self.path, e))?;
        decode_header(&self.path, self.kind, &header)
    }

    /// Marks every id from the table's next one through `through` lost, with
    /// lost-id records (the operator's repair, `ops/repair.rs`): afterwards
    /// the next append returns `through + 1`, so none of those ids is handed
    /// out again. Rewrites the header with format version 2 first (see the
    /// module comment), and syncs the records before it returns, whatever the
    /// durability mode. Returns the ids it marked (empty when the table
    /// already reaches past `through`). A torn tail is cut first, as an
    /// append does; a process killed part way leaves whole lost-id records
    /// and at most a torn one, so running it again completes it.
    pub fn append_lost(&self, through: u64, created_at_ns: u64) -> Result<std::ops::Range<u64>> {
        self.check_writable()?;
        let _lock = FileLock::exclusive(&self.file, &self.appenders, &self.path)?;
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if self.read_new_records_locked(&mut index)? > 0 {
            self.cut(&index)?;
        }
        let from = index.offsets.len() as u64;
        if through < from {
            return Ok(from..from);
        }
        if self.format_version()? < FORMAT_VERSION_LOST {
            let mut header = [0u8; HEADER_BYTES as usize];
            self.file.read_exact_at(&mut header, 0).map_err(|e| Error::io("read", &self.path, e))?;
            let created = u64::from_le_bytes(header[16..24].try_into().expect("8 bytes"));
            let upgraded = encode_header(self.kind, created, FORMAT_VERSION_LOST);
            io::write_at(Site::PayloadLostHeader, &self.file, &self.path, &upgraded, 0)?;
            io::sync_data(Site::PayloadLostHeaderSync, &self.file, &self.path)?;
            failpoint!("payload::lost-header-written");
        }
        // In batches, so that a huge range never needs its bytes in memory at once.
        const BATCH: u64 = 16 * 1024;
        let mut id = from;
        while id <= through {
            let last = through.min(id + BATCH - 1);
            let mut bytes = Vec::with_capacity(((last - id + 1) * 64) as usize);
            let mut offsets = Vec::with_capacity((last - id + 1) as usize);
            for i in id..=last {
                offsets.push(index.end + bytes.len() as u64);
                bytes.extend_from_slice(&encode_lost_record(i, created_at_ns));
            }
            if let Err(e) = io::write_at(Site::PayloadLostWrite, &self.file, &self.path, &bytes, index.end) {
                let _ = io::set_len(Site::PayloadLostUndo, &self.file, &self.path, index.end);
                return Err(e);
            }
            failpoint!("payload::lost-written");
            io::sync_data(Site::PayloadLostSync, &self.file, &self.path)?;
            index.offsets.extend_from_slice(&offsets);
            index.lost.extend(id..=last);
            index.end += bytes.len() as u64;
            self.publish_lost(&index);
            self.known.fetch_max(index.offsets.len() as u64, Ordering::Release);
            id = last + 1;
        }
        Ok(from..through + 1)
    }

    /// Makes appended records durable (`flush`).
    pub fn sync(&self) -> Result<()> {
        let _one_sync = self.syncing.lock().unwrap_or_else(|p| p.into_inner());
        self.sync_locked()
    }

    fn sync_locked(&self) -> Result<()> {
        let owed = self.first_owed.swap(u64::MAX, Ordering::AcqRel);
        io::sync_data(Site::PayloadCommitSync, &self.file, &self.path).inspect_err(|_| {
            self.first_owed.fetch_min(owed, Ordering::AcqRel);
        })
    }

    /// Makes the records appended in deferral scopes durable, if any are owed.
    pub(crate) fn commit_deferred(&self) -> Result<()> {
        // Under the lock: a sync running elsewhere may be paying for our records.
        let _one_sync = self.syncing.lock().unwrap_or_else(|p| p.into_inner());
        if self.first_owed.load(Ordering::Acquire) == u64::MAX {
            return Ok(());
        }
        self.sync_locked()
    }

    /// Syncs now if `payload_id` is a record of ours whose sync is still owed:
    /// a deferred fill must not publish an id whose record power loss could take.
    pub(crate) fn ensure_durable(&self, payload_id: u64) -> Result<()> {
        if !self.sync {
            return Ok(());
        }
        // Waits for a sync in progress: it may be the one paying for this record.
        let _one_sync = self.syncing.lock().unwrap_or_else(|p| p.into_inner());
        if payload_id >= self.first_owed.load(Ordering::Acquire) {
            return self.sync_locked();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(uri: &str) -> PayloadRecord {
        PayloadRecord {
            payload_id: 0,
            symbol_id: 1,
            window_idx: 2,
            slot_kind: 1,
            payload_type: 3,
            checksum: 4,
            size: 5,
            created_at_ns: 6,
            uri: uri.into(),
        }
    }

    #[test]
    fn records_round_trip_and_ids_are_dense() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("trades.map");
        PayloadStore::create(&p, StoreKind::Trades, 1).unwrap();
        let (s, r) = PayloadStore::open(&p, StoreKind::Trades, false).unwrap();
        assert_eq!(r.records, 0);
        assert_eq!(s.append(rec("a")).unwrap(), 0);
        assert_eq!(s.append(rec("bb")).unwrap(), 1);
        drop(s);
        let (s, r) = PayloadStore::open(&p, StoreKind::Trades, false).unwrap();
        assert_eq!(r.records, 2);
        assert_eq!(s.get(1).unwrap().unwrap().uri, "bb");
        assert_eq!(s.get(2).unwrap(), None);
    }

    #[test]
    fn torn_tail_is_reported_then_cut_and_earlier_records_survive() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("greeks.map");
        PayloadStore::create(&p, StoreKind::Greeks, 1).unwrap();
        let (s, _) = PayloadStore::open(&p, StoreKind::Greeks, false).unwrap();
        for i in 0..5 {
            s.append(rec(&format!("uri-{i}"))).unwrap();
        }
        drop(s);
        let full = std::fs::metadata(&p).unwrap().len();
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(full - 7).unwrap(); // tear the last record
        let (s, r) = PayloadStore::open(&p, StoreKind::Greeks, false).unwrap();
        assert_eq!(r.records, 4);
        assert!(r.torn_tail_bytes > 0);
        assert!(s.repair_torn_tail().unwrap() > 0);
        assert_eq!(s.append(rec("next")).unwrap(), 4);
        drop(s);
        let (s, r) = PayloadStore::open(&p, StoreKind::Greeks, false).unwrap();
        assert_eq!((r.records, r.torn_tail_bytes), (5, 0));
        assert_eq!(s.get(4).unwrap().unwrap().uri, "next");
    }

    #[test]
    fn uris_that_could_leave_the_state_directory_are_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("trades.map");
        PayloadStore::create(&p, StoreKind::Trades, 1).unwrap();
        let (s, _) = PayloadStore::open(&p, StoreKind::Trades, false).unwrap();
        let before = std::fs::read(&p).unwrap();
        for bad in ["../../etc/passwd", "/etc/passwd", "artifacts/../../x", "artifacts/a\0b", "a//b", "./a", "a/.", "", "a/", "a\nb"] {
            let e = s.append(rec(bad)).unwrap_err();
            assert_eq!(e.code().as_str(), "ERR_PATH_ESCAPES_STATE_DIR", "{bad:?}");
        }
        assert_eq!(std::fs::read(&p).unwrap(), before);
        for good in ["artifacts/SPY/1/trades.parquet", "u/3/x", "a..b/c", "ünïcode/…"] {
            s.append(rec(good)).unwrap();
        }
    }

    #[test]
    fn lost_ids_are_kept_taken_read_as_lost_and_the_next_append_follows_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("trades.map");
        PayloadStore::create(&p, StoreKind::Trades, 1).unwrap();
        let (s, _) = PayloadStore::open(&p, StoreKind::Trades, false).unwrap();
        for i in 0..3 {
            s.append(rec(&format!("u{i}"))).unwrap();
        }
        assert_eq!(s.format_version().unwrap(), 1);
        assert_eq!(s.append_lost(6, 42).unwrap(), 3..7);
        assert_eq!(s.format_version().unwrap(), 2, "the header says version 2 once a lost-id record may follow");
        assert_eq!(s.append_lost(5, 42).unwrap(), 7..7, "ids already taken are not marked again");
        assert_eq!(s.get(2).unwrap().unwrap().uri, "u2");
        for id in 3..7 {
            assert!(matches!(s.get(id), Err(Error::PayloadLost { payload_id, .. }) if payload_id == id), "{id}");
            assert!(matches!(s.check_exists(id), Err(Error::PayloadLost { .. })), "{id}");
        }
        assert!(s.check_exists(2).is_ok());
        assert!(matches!(s.check_exists(7), Err(Error::UnknownPayload { .. })));
        assert_eq!(s.append(rec("next")).unwrap(), 7);
        assert!(s.check_exists(7).is_ok());
        drop(s);
        // Another process reads them as such.
        let (s, r) = PayloadStore::open_read_only(&p, StoreKind::Trades).unwrap();
        assert_eq!((r.records, r.lost), (8, 4));
        assert_eq!(s.lost_ids().unwrap(), vec![3, 4, 5, 6]);
        assert_eq!(s.get(7).unwrap().unwrap().uri, "next");
        assert!(matches!(s.get(4), Err(Error::PayloadLost { .. })));
    }

    #[test]
    fn a_torn_lost_id_record_is_a_torn_tail_and_marking_again_completes_the_range() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("greeks.map");
        PayloadStore::create(&p, StoreKind::Greeks, 1).unwrap();
        let (s, _) = PayloadStore::open(&p, StoreKind::Greeks, false).unwrap();
        s.append(rec("a")).unwrap();
        s.append_lost(4, 1).unwrap();
        drop(s);
        let len = std::fs::metadata(&p).unwrap().len();
        OpenOptions::new().write(true).open(&p).unwrap().set_len(len - 10).unwrap();
        let (s, r) = PayloadStore::open(&p, StoreKind::Greeks, false).unwrap();
        assert_eq!((r.records, r.lost, r.torn_tail_bytes), (4, 3, 54));
        assert_eq!(s.append_lost(4, 1).unwrap(), 4..5);
        assert_eq!(s.append(rec("b")).unwrap(), 5);
        assert_eq!(s.lost_ids().unwrap(), vec![1, 2, 3, 4]);
    }

    #[test]
    fn damage_before_the_tail_is_an_error_with_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("quotes.map");
        PayloadStore::create(&p, StoreKind::Quotes, 1).unwrap();
        let (s, _) = PayloadStore::open(&p, StoreKind::Quotes, false).unwrap();
        for i in 0..3 {
            s.append(rec(&format!("u{i}"))).unwrap();
        }
        drop(s);
        let before = std::fs::read(&p).unwrap();
        let mut bytes = before.clone();
        bytes[HEADER_BYTES as usize + 20] ^= 0xff; // body of record 0
        std::fs::write(&p, &bytes).unwrap();
        let err = PayloadStore::open(&p, StoreKind::Quotes, false).err().unwrap();
        assert_eq!(err.code(), "ERR_CORRUPT_STATE");
        assert!(err.to_string().contains("offset 64"), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), bytes, "a failed open changes nothing");
    }

    #[test]
    fn a_header_rewrite_cut_short_reads_as_the_version_1_header_and_other_damage_does_not() {
        let p = Path::new("t.map");
        let old = encode_header(StoreKind::Quotes, 77, FORMAT_VERSION_NEW);
        let new = encode_header(StoreKind::Quotes, 77, FORMAT_VERSION_LOST);
        for cut in 0..=HEADER_BYTES as usize {
            let mut h = old;
            h[..cut].copy_from_slice(&new[..cut]);
            let want = if cut == HEADER_BYTES as usize { FORMAT_VERSION_LOST } else { FORMAT_VERSION_NEW };
            assert_eq!(decode_header(p, StoreKind::Quotes, &h).unwrap(), want, "cut at {cut}");
            assert!(decode_header(p, StoreKind::Trades, &h).is_err(), "cut at {cut}: another store's table");
        }
        for at in [13, 20, 40, 57] {
            let mut h = old;
            h[..10].copy_from_slice(&new[..10]);
            h[at] ^= 1;
            assert!(decode_header(p, StoreKind::Quotes, &h).is_err(), "a torn rewrite with byte {at} damaged too");
        }
    }
}
