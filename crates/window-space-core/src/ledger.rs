//! A memory-mapped ledger file (`trade-ledger.dat` or `enrichment-ledger.dat`):
//! its byte layout, chunk allocation, growth while other processes have it
//! mapped, slot lookup, shared metric counters and the bootstrap scan.
//!
//! One file, past 600 lines, because every part reads the same header page
//! and chunk map under the same growth lock; split, each would need the
//! other's private layout.
//!
//! ## File format (version 3), little-endian
//!
//! The format version of the ledgers' headers is the state directory's: it
//! says which files the directory holds and how they are laid out. Version
//! 1 directories are converted by `window-space migrate` (`ops/migrate.rs`);
//! this library refuses to open one ([`Error::OlderFormat`]). A version-2
//! ledger is this layout with one counter shard (shards 1 to 3 reserved,
//! zero): it reads as version 3 with empty shards, and the first bootstrap
//! that finds no other controller open rewrites its version word and
//! checksum to version 3 ([`Ledger::upgrade_format_in_place`]) before any process
//! counts in shards 1 to 3, so that a library of version 2, which would read
//! only shard 0 and take the others for damage, refuses it as newer.
//!
//! ```text
//! Header page, bytes 0..4096
//!   0    8  magic           89 57 53 4C 45 44 0D 0A   ("\x89WSLED\r\n")
//!   8    4  format version  3 (2 is read as 3, see above)
//!  12    4  ledger kind     1 = trade, 2 = enrichment
//!  16    4  schema version  1 (the slot kinds of the row, see slot.rs)
//!  20    4  slots per row   7 (trade) or 2 (enrichment)
//!  24    4  slot bytes      32
//!  28    4  rows per chunk  (CHUNK_BYTES - 64) / (slots per row * 32): 146 or 511
//!  32    4  chunk bytes     32768
//!  36    4  reserved        0
//!  40    8  created at      ns since the Unix epoch
//!  48    8  header checksum xxh3-64 of bytes 0..48
//!  56  200  reserved        0
//!  -- shared mutable words (atomics; validated against the file, not checksummed)
//! 256    8  chunk count     chunks published so far
//! 264    8  symbol count    (trade ledger) symbols in symbols.log, for metrics
//! 272    8  window count    windows of the schedule, for metrics
//! 320 2304  counter shards  4 shards of 576 bytes, shard s at 320 + 576 s:
//!     +0  512  status counts [16 columns][Pending, Filled, Cleared, Retired] u64
//!     +512 64  event counts  [claims, takeovers, fills, conflicts, clears,
//!                             force-clears, retires, busy] u64
//! Chunk n, at 4096 + n * 32768
//!   0    4  magic           "WSCK"
//!   4    4  symbol id
//!   8    4  chunk index     first window = chunk index * rows per chunk
//!  12    4  reserved        0
//!  16    8  checksum        xxh3-64 of chunk bytes 0..16
//!  -- shared mutable words (atomics; not checksummed)
//!  24   28  done counts     i32 per column (7 at most; unused ones 0): slots of
//!                           the column that are Filled or Retired, never more
//!  52   12  reserved        0
//!  64       rows            rows per chunk * slots per row * 32-byte slots (slot.rs)
//! ```
//!
//! **Counter shards.** Every transition moves the status counts of its
//! column and adds to an event count. Were those one set of words, every
//! transition of every process would write the same cache lines, and two
//! processes working on different symbols would still wait on each other.
//! So each controller, once its bootstrap has accepted the directory, picks
//! a shard from its process id and a per-process sequence (controllers of
//! one process take consecutive shards; processes started one after another
//! have consecutive ids) and counts only in it; choosing writes nothing, so
//! opening a directory leaves its files as they were (an operator's tool
//! counts in shard 0). A reader adds the shards up (wrapping: a slot
//! claimed in one shard and filled in another leaves -1 Pending in the
//! second, +1 in the first). Sums are what they were with one set of
//! words, exact after a crash in the same way (a shard of a dead process
//! keeps its counts). A reader that needs the counts of one instant reads
//! the event counts, the status counts, whether a transition is under way,
//! then the event counts again, and trusts the status counts only when the
//! event counts did not move ([`Ledger::counter_snapshot`]): every
//! transition adds to an event count after its status counts, and is marked
//! under way until it has.
//!
//! A version-1 header's counters sit where shard 0's are, and its reserved
//! bytes where shards 1 to 3 are: the migration keeps them.
//!
//! **Done counts** let a search for the first window that is not done
//! (`nextUnfilledWindow`, `nextReadyWindow`) skip a chunk whose column is all
//! done without reading its slots. A count never exceeds the column's Filled
//! and Retired slots, whatever process dies where: it is raised *after* the
//! compare-and-swap that makes a slot Filled or Retired, and lowered *before*
//! the one that takes a slot out of Filled (a force-clear), and raised again
//! if that compare-and-swap fails (`slot.rs`). So it can be low (a process
//! died between the two steps, or a transition is under way), never high,
//! and "the count equals the rows of the chunk" proves every slot done. A
//! bootstrap that finds no other controller open stores the exact counts
//! from its scan; until then a low count costs only a scan of the chunk.
//! `window-space verify` reports a count above its slots as damage.
//!
//! Chunks are allocated lazily, the first time a slot of a (symbol, window
//! range) is written, under an exclusive `flock` on the ledger file: the
//! allocator extends the file with `fallocate` (so a full disk is an error now,
//! not a SIGBUS later), writes the chunk header with `pwrite`, then publishes
//! it by incrementing `chunk count` (release). Other processes learn of new
//! chunks by reading `chunk count` (acquire) when a lookup misses, map the range
//! the file grew by, and read the new chunk headers. Chunks are never moved or
//! freed, so pointers into them stay valid. A chunk that was written but not
//! published (crash in between) is overwritten by the next allocation.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};

use crate::chunk_directory::ChunkDirectory;
use crate::error::{Error, Result};
use crate::io::{self, Site};
use crate::lock::FileLock;
use crate::mapping::{ChunkAddr, SharedMapping, PAGE};
use crate::slot::{SlotCell, SlotSnapshot, Transition, SLOT_BYTES};
use crate::vocab::{LedgerEvent, LedgerKind, SlotKind, SlotStatus, StoreKind};

pub(crate) const MAGIC: [u8; 8] = *b"\x89WSLED\r\n";
pub(crate) const FORMAT_VERSION: u32 = 3;
/// The format version read as this one with counter shards 1 to 3 empty,
/// and upgraded in place by a bootstrap alone (module doc).
pub(crate) const ONE_SHARD_VERSION: u32 = 2;
/// The directory format `window-space migrate` converts from.
pub(crate) const MIGRATABLE_VERSION: u32 = 1;
pub(crate) const SCHEMA_VERSION: u32 = 1;
pub(crate) const CHUNK_BYTES: u32 = 32 * 1024;
pub(crate) const CHUNK_HEADER_BYTES: u32 = 64;
pub(crate) const CHUNK_MAGIC: [u8; 4] = *b"WSCK";

// Header page offsets (the table above), used by every reader of the layout.
pub(crate) const OFF_VERSION: usize = 8;
pub(crate) const OFF_KIND: usize = 12;
pub(crate) const OFF_SCHEMA: usize = 16;
pub(crate) const OFF_SLOTS_PER_ROW: usize = 20;
pub(crate) const OFF_SLOT_BYTES: usize = 24;
pub(crate) const OFF_ROWS_PER_CHUNK: usize = 28;
pub(crate) const OFF_CHUNK_BYTES: usize = 32;
pub(crate) const OFF_CREATED: usize = 40;
pub(crate) const OFF_CHECKSUM: usize = 48;
/// Bytes 0..48 are covered by the header checksum.
const HEADER_CHECKED_BYTES: usize = OFF_CHECKSUM;
pub(crate) const OFF_CHUNK_COUNT: usize = 256;
pub(crate) const OFF_SYMBOL_COUNT: usize = 264;
pub(crate) const OFF_WINDOW_COUNT: usize = 272;
/// The first counter shard.
pub(crate) const OFF_COUNTER_SHARDS: usize = 320;
pub(crate) const COUNTER_SHARDS: usize = 4;
const MAX_COLUMNS: usize = 16;
const COUNTED_STATUSES: usize = 4; // Pending, Filled, Cleared, Retired
/// Within a shard: the status counts at 0, the event counts here.
const SHARD_OFF_EVENTS: usize = MAX_COLUMNS * COUNTED_STATUSES * 8;
pub(crate) const SHARD_BYTES: usize = SHARD_OFF_EVENTS + LedgerEvent::ALL.len() * 8;
/// End of the shared words; the rest of the header page is reserved (0).
pub(crate) const END_COUNTER_SHARDS: usize = OFF_COUNTER_SHARDS + COUNTER_SHARDS * SHARD_BYTES;
/// Byte ranges of the header page that hold nothing (must be 0).
pub(crate) const RESERVED_HEADER_RANGES: [(usize, usize); 4] = [
    (36, OFF_CREATED),
    (OFF_CHECKSUM + 8, OFF_CHUNK_COUNT),
    (OFF_WINDOW_COUNT + 8, OFF_COUNTER_SHARDS),
    (END_COUNTER_SHARDS, PAGE as usize),
];

/// Offset of a status count (`status` = 0 Pending, 1 Filled, 2 Cleared,
/// 3 Retired) in counter shard `shard`.
pub(crate) const fn status_count_offset(shard: usize, column: usize, status: usize) -> usize {
    OFF_COUNTER_SHARDS + shard * SHARD_BYTES + (column * COUNTED_STATUSES + status) * 8
}

/// Offset of an event count in counter shard `shard`.
pub(crate) const fn event_count_offset(shard: usize, event: LedgerEvent) -> usize {
    OFF_COUNTER_SHARDS + shard * SHARD_BYTES + SHARD_OFF_EVENTS + event as usize * 8
}

/// The counter shard of a controller being opened in this process: the
/// process id plus how many controllers this process opened before, modulo
/// the shard count, so that controllers of one process, and processes started
/// one after another, count apart (module doc, "Counter shards").
pub(crate) fn controller_counter_shard() -> usize {
    static OPENED: AtomicUsize = AtomicUsize::new(0);
    (std::process::id() as usize).wrapping_add(OPENED.fetch_add(1, Ordering::Relaxed)) % COUNTER_SHARDS
}

// Chunk header offsets.
pub(crate) const CHUNK_OFF_SYMBOL: usize = 4;
pub(crate) const CHUNK_OFF_INDEX: usize = 8;
pub(crate) const CHUNK_OFF_RESERVED: usize = 12;
pub(crate) const CHUNK_OFF_CHECKSUM: usize = 16;
/// The done counts, one `i32` per column ([`MAX_DONE_COLUMNS`] at most).
pub(crate) const CHUNK_OFF_DONE: usize = 24;
pub(crate) const MAX_DONE_COLUMNS: usize = 7;
pub(crate) const CHUNK_OFF_RESERVED_TAIL: usize = CHUNK_OFF_DONE + 4 * MAX_DONE_COLUMNS;

/// Chunks the file grows by at least, each time it must grow.
const MIN_GROWTH_CHUNKS: u64 = 8;

/// What the bootstrap scan of a ledger found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerScan {
    /// `counts[column][status code]` for the non-Empty statuses found in chunks.
    pub counts: Vec<[u64; 5]>,
    /// Pending slots whose lease has expired.
    pub stale_claims: u64,
    /// Chunks scanned.
    pub chunks: u64,
    /// Non-Empty slots outside the symbols × windows the scan was given
    /// (counted in `counts` all the same), if any.
    pub outside: Option<OutsideSlots>,
    /// By store (`StoreKind` code): the highest payload id a Filled slot of
    /// this ledger refers to (when the scan was asked about references).
    pub highest_ref: [Option<u64>; StoreKind::ALL.len()],
    /// Filled slots whose payload id the scan's `missing` judged absent from
    /// its store (when the scan was asked about references).
    pub dangling: Vec<DanglingRef>,
    /// Every chunk scanned and the done counts of its columns (Filled or
    /// Retired slots), stored by [`Ledger::store_counts`].
    pub(crate) done: Vec<(ChunkAddr, [i32; MAX_DONE_COLUMNS])>,
}

/// A Filled slot whose payload id its store does not hold (or holds only as
/// a lost id): what a bootstrap refuses and an operator's repair clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DanglingRef {
    pub symbol: u32,
    pub window: u32,
    pub kind: SlotKind,
    pub payload_id: u64,
}

/// Non-Empty slots a scan found outside the symbols × windows it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutsideSlots {
    /// The first one found: symbol, window, column and status.
    pub first: (u32, u64, usize, SlotStatus),
    /// The largest symbol id and the largest window index among them.
    pub max_symbol: u32,
    pub max_window: u64,
}

/// Immutable header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerGeometry {
    pub kind: LedgerKind,
    pub slots_per_row: u32,
    pub rows_per_chunk: u32,
    pub created_at_ns: u64,
    /// The header's format version: [`FORMAT_VERSION`], or
    /// [`ONE_SHARD_VERSION`] until a bootstrap alone upgrades it.
    pub format_version: u32,
}

impl LedgerGeometry {
    pub fn for_kind(kind: LedgerKind) -> Self {
        let slots_per_row = kind.slot_kinds().len() as u32;
        let rows_per_chunk = (CHUNK_BYTES - CHUNK_HEADER_BYTES) / (slots_per_row * SLOT_BYTES as u32);
        Self { kind, slots_per_row, rows_per_chunk, created_at_ns: 0, format_version: FORMAT_VERSION }
    }

    fn row_bytes(&self) -> usize {
        self.slots_per_row as usize * SLOT_BYTES
    }

    fn encode(&self) -> [u8; PAGE as usize] {
        let mut h = [0u8; PAGE as usize];
        h[0..8].copy_from_slice(&MAGIC);
        let put = |h: &mut [u8], off: usize, v: u32| h[off..off + 4].copy_from_slice(&v.to_le_bytes());
        put(&mut h, OFF_VERSION, FORMAT_VERSION);
        put(&mut h, OFF_KIND, header_kind(self.kind));
        put(&mut h, OFF_SCHEMA, SCHEMA_VERSION);
        put(&mut h, OFF_SLOTS_PER_ROW, self.slots_per_row);
        put(&mut h, OFF_SLOT_BYTES, SLOT_BYTES as u32);
        put(&mut h, OFF_ROWS_PER_CHUNK, self.rows_per_chunk);
        put(&mut h, OFF_CHUNK_BYTES, CHUNK_BYTES);
        h[OFF_CREATED..OFF_CREATED + 8].copy_from_slice(&self.created_at_ns.to_le_bytes());
        let sum = xxhash_rust::xxh3::xxh3_64(&h[..HEADER_CHECKED_BYTES]);
        h[OFF_CHECKSUM..OFF_CHECKSUM + 8].copy_from_slice(&sum.to_le_bytes());
        h
    }

    /// Parses and checks a header page; errors name the file and the offset.
    /// The order of the checks is part of the format: magic, then the format
    /// version (so a newer file is reported as newer, not as damage), then
    /// the header checksum, then the rest.
    pub fn decode(path: &Path, kind: LedgerKind, h: &[u8]) -> Result<Self> {
        if h.len() < PAGE as usize {
            return Err(Error::corrupt(path, Some(h.len() as u64), "file is shorter than its 4096-byte header"));
        }
        let u32_at = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
        if h[0..8] != MAGIC {
            return Err(Error::corrupt(path, Some(0), "wrong magic number: not a window-space ledger"));
        }
        let version = u32_at(OFF_VERSION);
        if version == MIGRATABLE_VERSION {
            let state_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            return Err(Error::OlderFormat { file: path.to_path_buf(), version, supported: FORMAT_VERSION, state_dir });
        }
        if version != FORMAT_VERSION && version != ONE_SHARD_VERSION {
            return Err(Error::unsupported_version(path, OFF_VERSION as u64, version, FORMAT_VERSION));
        }
        let stored = u64::from_le_bytes(h[OFF_CHECKSUM..OFF_CHECKSUM + 8].try_into().expect("8 bytes"));
        if stored != xxhash_rust::xxh3::xxh3_64(&h[..HEADER_CHECKED_BYTES]) {
            return Err(Error::corrupt(path, Some(OFF_CHECKSUM as u64), "header checksum mismatch"));
        }
        let expected = Self::for_kind(kind);
        let stored_kind = u32_at(OFF_KIND);
        let want_kind = header_kind(kind);
        if stored_kind != want_kind {
            return Err(Error::corrupt(
                path,
                Some(OFF_KIND as u64),
                format!("ledger kind {stored_kind}, expected {want_kind} ({})", kind.name()),
            ));
        }
        let schema = u32_at(OFF_SCHEMA);
        if schema != SCHEMA_VERSION {
            return Err(Error::corrupt(
                path,
                Some(OFF_SCHEMA as u64),
                format!("schema version {schema} is not supported (expected {SCHEMA_VERSION})"),
            ));
        }
        if u32_at(OFF_SLOTS_PER_ROW) != expected.slots_per_row
            || u32_at(OFF_SLOT_BYTES) != SLOT_BYTES as u32
            || u32_at(OFF_ROWS_PER_CHUNK) != expected.rows_per_chunk
            || u32_at(OFF_CHUNK_BYTES) != CHUNK_BYTES
        {
            return Err(Error::corrupt(path, Some(OFF_SLOTS_PER_ROW as u64), "row geometry does not match schema version 1"));
        }
        Ok(Self {
            created_at_ns: u64::from_le_bytes(h[OFF_CREATED..OFF_CREATED + 8].try_into().expect("8 bytes")),
            format_version: version,
            ..expected
        })
    }
}

/// The format version in a ledger header page (`None` when the bytes are
/// not a ledger header: too short or another magic number).
fn header_version(h: &[u8]) -> Option<u32> {
    (h.len() >= OFF_VERSION + 4 && h[0..8] == MAGIC)
        .then(|| u32::from_le_bytes(h[OFF_VERSION..OFF_VERSION + 4].try_into().expect("4 bytes")))
}

/// The format version in the header of the ledger file at `path`:
/// `Ok(None)` when the file is too short to hold one or does not start with
/// a ledger's magic number.
pub(crate) fn file_format_version(path: &Path) -> std::io::Result<Option<u32>> {
    let mut head = [0u8; OFF_VERSION + 4];
    let got = crate::fsutil::read_upto(&File::open(path)?, &mut head, 0)?;
    Ok(header_version(&head[..got]))
}

/// Turns the header page of a version-1 ledger into the header of this library's version
/// of the same ledger (the version field and the checksum): the chunks and
/// rows of the two versions are laid out alike. The page must pass the
/// version-1 checks that come before the version (magic) and the checksum.
pub(crate) fn upgrade_header_v1(path: &Path, h: &mut [u8]) -> Result<()> {
    if h.len() < PAGE as usize || h[0..8] != MAGIC {
        return Err(Error::corrupt(path, Some(0), "wrong magic number: not a window-space ledger"));
    }
    let version = u32::from_le_bytes(h[OFF_VERSION..OFF_VERSION + 4].try_into().expect("4 bytes"));
    if version != MIGRATABLE_VERSION {
        return Err(Error::corrupt(path, Some(OFF_VERSION as u64), format!("format version {version}, expected {MIGRATABLE_VERSION}")));
    }
    let stored = u64::from_le_bytes(h[OFF_CHECKSUM..OFF_CHECKSUM + 8].try_into().expect("8 bytes"));
    if stored != xxhash_rust::xxh3::xxh3_64(&h[..HEADER_CHECKED_BYTES]) {
        return Err(Error::corrupt(path, Some(OFF_CHECKSUM as u64), "header checksum mismatch"));
    }
    h[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&h[..HEADER_CHECKED_BYTES]);
    h[OFF_CHECKSUM..OFF_CHECKSUM + 8].copy_from_slice(&sum.to_le_bytes());
    Ok(())
}

/// The ledger-kind field of the header: 1 trade, 2 enrichment.
fn header_kind(kind: LedgerKind) -> u32 {
    kind.code() + 1
}

/// An open ledger file.
pub struct Ledger {
    path: PathBuf,
    file: File,
    /// Taken before the file's flock by every allocator of this process.
    allocators: Mutex<()>,
    geometry: LedgerGeometry,
    map: SharedMapping,
    dir: RwLock<ChunkDirectory>,
    sync: bool,
    /// Slots changed inside a deferral scope whose msync is still owed
    /// (`durability.rs`): chunk address and byte offset in the chunk.
    deferred: Mutex<Vec<(ChunkAddr, usize)>>,
    /// Failed msyncs of the header page since one succeeded (sync mode): a
    /// chunk count published but not known durable, paid by the next sync
    /// of a slot before that slot's transition is acknowledged.
    header_owed: AtomicU64,
    /// The counter shard this open ledger counts in (see the module doc).
    shard: usize,
}

/// File offset of chunk `n`.
pub(crate) fn chunk_offset(n: u64) -> u64 {
    PAGE + n * u64::from(CHUNK_BYTES)
}

impl Ledger {
    /// Creates a new ledger file (the caller holds the state-directory gate lock
    /// and has checked the file does not exist).
    pub fn create(path: &Path, kind: LedgerKind, created_at_ns: u64) -> Result<()> {
        let geometry = LedgerGeometry { created_at_ns, ..LedgerGeometry::for_kind(kind) };
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path).map_err(|e| Error::io("create", path, e))?;
        io::write_at(Site::LedgerCreateWrite, &file, path, &geometry.encode(), 0)?;
        io::sync_all(Site::LedgerCreateSync, &file, path)
    }

    /// Opens and validates an existing ledger, writing nothing: it counts in
    /// shard 0 until [`Ledger::count_in_shard`]. Slots and chunks are
    /// written only by a transition or growth.
    pub fn open(path: &Path, kind: LedgerKind, sync: bool) -> Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(|e| Error::io("open", path, e))?;
        let len = file.metadata().map_err(|e| Error::io("fstat", path, e))?.len();
        if len < PAGE {
            return Err(Error::corrupt(path, Some(len), "file is shorter than its 4096-byte header"));
        }
        let mut header = vec![0u8; PAGE as usize];
        file.read_exact_at(&mut header, 0).map_err(|e| Error::io("read", path, e))?;
        let geometry = LedgerGeometry::decode(path, kind, &header)?;
        // Only whole chunks count: bytes past the last one (a growth that failed
        // part way and could not be undone) are mapped by no one and
        // overwritten by the next growth.
        let map = SharedMapping::new(&file, path, u64::from(CHUNK_BYTES))?;
        let ledger = Self {
            path: path.to_path_buf(),
            file,
            allocators: Mutex::new(()),
            geometry,
            map,
            dir: RwLock::new(ChunkDirectory::default()),
            sync,
            deferred: Mutex::new(Vec::new()),
            header_owed: AtomicU64::new(0),
            shard: 0,
        };
        ledger.catch_up()?;
        ledger.check_unpublished_chunks()?;
        Ok(ledger)
    }

    /// Rewrites the header of a version-2 ledger as version 3 (the version
    /// word and the checksum, bytes 8..56, in one write inside the first
    /// sector), then syncs it; nothing when it is of version 3. Only for a
    /// bootstrap that finds no other controller open (module doc).
    pub(crate) fn upgrade_format_in_place(&mut self) -> Result<()> {
        if self.geometry.format_version != ONE_SHARD_VERSION {
            return Ok(());
        }
        let mut h = [0u8; OFF_CHECKSUM + 8];
        self.file.read_exact_at(&mut h, 0).map_err(|e| Error::io("read", &self.path, e))?;
        h[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        let sum = xxhash_rust::xxh3::xxh3_64(&h[..HEADER_CHECKED_BYTES]);
        h[OFF_CHECKSUM..OFF_CHECKSUM + 8].copy_from_slice(&sum.to_le_bytes());
        // The migration's I/O sites: this is a conversion of the format, in place.
        io::write_at(Site::MigrateWrite, &self.file, &self.path, &h[OFF_VERSION..], OFF_VERSION as u64)?;
        io::sync_all(Site::MigrateSync, &self.file, &self.path)?;
        self.geometry.format_version = FORMAT_VERSION;
        Ok(())
    }

    /// Counts this open ledger's transitions in `shard` (from
    /// [`controller_counter_shard`]) from now on; any shard gives the same
    /// sums.
    pub(crate) fn count_in_shard(&mut self, shard: usize) {
        self.shard = shard % COUNTER_SHARDS;
    }

    /// Chunks past the published count are either never allocated (zeros) or
    /// an allocation that died before publishing (a header, rows all zero).
    /// Anything else means the chunk count was damaged: refuse, since the next
    /// allocation would overwrite a chunk that holds slots.
    ///
    /// Takes no lock, so an allocator stopped in the middle of a growth holds
    /// up no bootstrap. Another process may be allocating while we look:
    /// slots of a chunk are written only after its count is published, so a
    /// chunk past the count we read that holds slots was published meanwhile
    /// when the count read again covers it, and is damage only when it does
    /// not.
    fn check_unpublished_chunks(&self) -> Result<()> {
        let mut count = self.chunk_count();
        let file_len = self.file_len()?;
        let mut buf = vec![0u8; CHUNK_BYTES as usize];
        let mut n = count;
        while chunk_offset(n + 1) <= file_len {
            let off = chunk_offset(n);
            self.file.read_exact_at(&mut buf, off).map_err(|e| Error::io("read", &self.path, e))?;
            if let Some(i) = buf[CHUNK_HEADER_BYTES as usize..].iter().position(|b| *b != 0) {
                // The slot bytes just read were stored after the count that
                // publishes their chunk: read the count after them.
                std::sync::atomic::fence(Ordering::SeqCst);
                count = self.chunk_count();
                if count <= n {
                    return Err(Error::corrupt(
                        &self.path,
                        Some(off + u64::from(CHUNK_HEADER_BYTES) + i as u64),
                        format!("chunk {n} holds slots but the header publishes only {count} chunks (offset {OFF_CHUNK_COUNT})"),
                    ));
                }
            }
            n += 1;
        }
        Ok(())
    }

    pub fn geometry(&self) -> LedgerGeometry {
        self.geometry
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file_len(&self) -> Result<u64> {
        Ok(self.file.metadata().map_err(|e| Error::io("fstat", &self.path, e))?.len())
    }

    fn header(&self, off: usize) -> &AtomicU64 {
        self.map.header_u64(off)
    }

    /// Published chunk count (shared word).
    pub fn chunk_count(&self) -> u64 {
        self.header(OFF_CHUNK_COUNT).load(Ordering::Acquire)
    }

    /// Shared symbol-count word (kept in the trade ledger).
    pub fn shared_symbol_count(&self) -> u64 {
        self.header(OFF_SYMBOL_COUNT).load(Ordering::Acquire)
    }

    /// Raises the shared symbol count to at least `n`.
    pub fn publish_symbol_count(&self, n: u64) {
        self.header(OFF_SYMBOL_COUNT).fetch_max(n, Ordering::AcqRel);
    }

    pub fn set_symbol_count(&self, n: u64) {
        self.header(OFF_SYMBOL_COUNT).store(n, Ordering::Release);
    }

    pub fn shared_window_count(&self) -> u64 {
        self.header(OFF_WINDOW_COUNT).load(Ordering::Acquire)
    }

    pub fn publish_window_count(&self, n: u64) {
        self.header(OFF_WINDOW_COUNT).fetch_max(n, Ordering::AcqRel);
    }

    /// Reads chunk headers published since we last looked (and maps what the file grew by).
    pub fn catch_up(&self) -> Result<()> {
        let count = self.chunk_count();
        if count == self.dir.read().unwrap_or_else(|p| p.into_inner()).known_chunks {
            return Ok(());
        }
        let mut dir = self.dir.write().unwrap_or_else(|p| p.into_inner());
        self.catch_up_locked(&mut dir, count)
    }

    fn catch_up_locked(&self, dir: &mut ChunkDirectory, count: u64) -> Result<()> {
        if count <= dir.known_chunks {
            return Ok(());
        }
        let end = chunk_offset(count);
        self.map.map_to(&self.file, end).map_err(|e| match e {
            Error::CorruptState { file, offset, what } => Error::CorruptState {
                file,
                offset,
                what: format!("{what} ({count} chunks are published in the header at offset {OFF_CHUNK_COUNT})"),
            },
            other => other,
        })?;
        let mut hdr = [0u8; CHUNK_HEADER_BYTES as usize];
        for n in dir.known_chunks..count {
            // Chunks before `n` are in the directory: a later look starts at
            // `n` again, so a damaged chunk is reported as itself every time.
            dir.known_chunks = n;
            let off = chunk_offset(n);
            self.file.read_exact_at(&mut hdr, off).map_err(|e| Error::io("read", &self.path, e))?;
            let (symbol, chunk_idx) = decode_chunk_header(&self.path, off, &hdr)?;
            let addr = self.map.chunk_addr(off, CHUNK_BYTES)?;
            if !dir.insert(symbol, chunk_idx, addr) {
                return Err(Error::corrupt(
                    &self.path,
                    Some(off),
                    format!("chunk for symbol {symbol}, chunk index {chunk_idx} appears twice"),
                ));
            }
        }
        dir.known_chunks = count;
        Ok(())
    }

    /// Splits a window index into (chunk index, byte offset of the slot in the chunk).
    #[inline]
    fn locate(&self, window_idx: u32, column: usize) -> (u32, usize) {
        let rpc = self.geometry.rows_per_chunk;
        let chunk_idx = window_idx / rpc;
        let row = (window_idx - chunk_idx * rpc) as usize;
        (chunk_idx, CHUNK_HEADER_BYTES as usize + row * self.geometry.row_bytes() + column * SLOT_BYTES)
    }

    /// The slot, if its chunk exists (after catching up with other processes).
    pub fn slot(&self, symbol: u32, window_idx: u32, column: usize) -> Result<Option<SlotCell<'_>>> {
        let (chunk_idx, off) = self.locate(window_idx, column);
        Ok(match self.chunk_addr(symbol, chunk_idx)? {
            Some(addr) => self.cell(addr, off, column),
            None => None,
        })
    }

    /// The slot at `off` in the chunk at `addr`, with its column's done count.
    #[inline(always)]
    fn cell(&self, addr: ChunkAddr, off: usize, column: usize) -> Option<SlotCell<'_>> {
        let cell = self.map.slot(addr, off)?;
        Some(cell.with_done(self.done_count(addr, column)))
    }

    /// The done count of `column` in the chunk at `addr` (module comment).
    #[inline(always)]
    fn done_count(&self, addr: ChunkAddr, column: usize) -> Option<&AtomicI32> {
        if column >= MAX_DONE_COLUMNS {
            return None;
        }
        self.map.chunk_i32(addr, CHUNK_OFF_DONE + 4 * column)
    }

    /// Where the chunk of `symbol` numbered `chunk_idx` is, if it exists: the
    /// directory, and when it does not know the chunk, the directory again
    /// after catching up with chunks other processes made.
    #[inline(always)]
    fn chunk_addr(&self, symbol: u32, chunk_idx: u32) -> Result<Option<ChunkAddr>> {
        if let Some(a) = self.dir.read().unwrap_or_else(|p| p.into_inner()).get(symbol, chunk_idx) {
            return Ok(Some(a));
        }
        self.catch_up()?;
        Ok(self.dir.read().unwrap_or_else(|p| p.into_inner()).get(symbol, chunk_idx))
    }

    /// The slot, allocating its chunk if needed.
    pub fn slot_for_write(&self, symbol: u32, window_idx: u32, column: usize) -> Result<SlotCell<'_>> {
        if let Some(c) = self.slot(symbol, window_idx, column)? {
            return Ok(c);
        }
        let (chunk_idx, off) = self.locate(window_idx, column);
        let addr = self.allocate(symbol, chunk_idx)?;
        self.cell(addr, off, column).ok_or_else(|| Error::corrupt(&self.path, None, "slot offset outside its chunk"))
    }

    /// The slots of `column` in the chunk of `symbol` that holds `window_idx`,
    /// if that chunk exists (after catching up with other processes): one
    /// directory lookup for every window of the chunk.
    pub fn chunk_column(&self, symbol: u32, window_idx: u32, column: usize) -> Result<Option<ChunkColumn<'_>>> {
        let (chunk_idx, _) = self.locate(window_idx, column);
        Ok(self.chunk_addr(symbol, chunk_idx)?.map(|addr| self.column_of(symbol, chunk_idx, addr, column)))
    }

    /// [`chunk_column`](Self::chunk_column), allocating the chunk if needed.
    pub fn chunk_column_for_write(&self, symbol: u32, window_idx: u32, column: usize) -> Result<ChunkColumn<'_>> {
        if let Some(c) = self.chunk_column(symbol, window_idx, column)? {
            return Ok(c);
        }
        let (chunk_idx, _) = self.locate(window_idx, column);
        let addr = self.allocate(symbol, chunk_idx)?;
        Ok(self.column_of(symbol, chunk_idx, addr, column))
    }

    fn column_of(&self, symbol: u32, chunk_idx: u32, addr: ChunkAddr, column: usize) -> ChunkColumn<'_> {
        let rpc = self.geometry.rows_per_chunk;
        let first = chunk_idx * rpc;
        ChunkColumn {
            ledger: self,
            addr,
            symbol,
            first,
            end: first.saturating_add(rpc),
            base: CHUNK_HEADER_BYTES as usize + column * SLOT_BYTES,
            row_bytes: self.geometry.row_bytes(),
            column,
        }
    }

    /// Reads every slot of a row with one chunk lookup (Empty if unallocated).
    pub fn read_row(&self, symbol: u32, window_idx: u32) -> Result<Vec<SlotSnapshot>> {
        let columns = self.geometry.slots_per_row as usize;
        let Some(first) = self.slot(symbol, window_idx, 0)? else {
            return Ok(vec![SlotSnapshot::EMPTY; columns]);
        };
        let (chunk_idx, _) = self.locate(window_idx, 0);
        let addr = self.dir.read().unwrap_or_else(|p| p.into_inner()).get(symbol, chunk_idx);
        let mut out = Vec::with_capacity(columns);
        out.push(first.read());
        for column in 1..columns {
            let (_, off) = self.locate(window_idx, column);
            out.push(addr.and_then(|a| self.map.slot(a, off)).map_or(SlotSnapshot::EMPTY, |c| c.read()));
        }
        Ok(out)
    }

    /// Reads one slot (Empty if its chunk was never allocated).
    pub fn read(&self, symbol: u32, window_idx: u32, column: usize) -> Result<SlotSnapshot> {
        Ok(self.slot(symbol, window_idx, column)?.map_or(SlotSnapshot::EMPTY, |c| c.read()))
    }

    /// Allocates the chunk (symbol, chunk_idx) under the ledger's file lock.
    fn allocate(&self, symbol: u32, chunk_idx: u32) -> Result<ChunkAddr> {
        let _lock = FileLock::exclusive(&self.file, &self.allocators, &self.path)?;
        let mut dir = self.dir.write().unwrap_or_else(|p| p.into_inner());
        let count = self.chunk_count();
        self.catch_up_locked(&mut dir, count)?;
        if let Some(a) = dir.get(symbol, chunk_idx) {
            return Ok(a);
        }
        let n = count;
        let needed = chunk_offset(n + 1);
        let len = self.file_len()?;
        if len < needed {
            let capacity = (len.saturating_sub(PAGE)) / u64::from(CHUNK_BYTES);
            let grow_to = (capacity + MIN_GROWTH_CHUNKS).max(capacity + capacity / 2).max(n + 1);
            let new_len = chunk_offset(grow_to);
            if let Err(e) = io::extend(Site::LedgerGrowExtend, &self.file, &self.path, len, new_len) {
                // A file system may extend the file part way before it fails
                // (ext4 on a full disk): give the length back. Nothing past `len`
                // is published or used; if even this fails, the bytes past the
                // last whole chunk are ignored by every reader of the file.
                let _ = io::set_len(Site::LedgerGrowRestore, &self.file, &self.path, len);
                return Err(e);
            }
            failpoint!("ledger::extended");
        }
        let off = chunk_offset(n);
        let mut chunk = vec![0u8; CHUNK_BYTES as usize];
        encode_chunk_header(&mut chunk[..CHUNK_HEADER_BYTES as usize], symbol, chunk_idx);
        io::write_at(Site::LedgerGrowChunk, &self.file, &self.path, &chunk, off)?;
        if self.sync {
            io::sync_data(Site::LedgerGrowSync, &self.file, &self.path)?;
        }
        failpoint!("ledger::chunk-written");
        self.map.map_to(&self.file, chunk_offset(n + 1))?;
        let addr = self.map.chunk_addr(off, CHUNK_BYTES)?;
        self.header(OFF_CHUNK_COUNT).store(n + 1, Ordering::Release);
        if self.sync {
            if let Err(e) = self.map.flush_header(Site::LedgerGrowHeader) {
                self.header_owed.fetch_add(1, Ordering::AcqRel);
                return Err(e);
            }
        }
        failpoint!("ledger::published");
        dir.insert(symbol, chunk_idx, addr);
        dir.known_chunks = n + 1;
        Ok(addr)
    }

    /// Makes a slot transition durable in the synchronous mode (msync of its page).
    #[inline]
    pub fn flush_slot(&self, symbol: u32, window_idx: u32, column: usize) -> Result<()> {
        if !self.sync {
            return Ok(());
        }
        self.flush_slot_synced(symbol, window_idx, column)
    }

    #[inline(never)]
    fn flush_slot_synced(&self, symbol: u32, window_idx: u32, column: usize) -> Result<()> {
        let (chunk_idx, off) = self.locate(window_idx, column);
        if let Some(addr) = self.dir.read().unwrap_or_else(|p| p.into_inner()).get(symbol, chunk_idx) {
            if crate::durability::deferring() {
                self.deferred.lock().unwrap_or_else(|p| p.into_inner()).push((addr, off));
            } else {
                self.pay_header()?;
                self.map.flush(Site::LedgerSlotMsync, addr, off, SLOT_BYTES)?;
            }
        }
        Ok(())
    }

    /// Syncs the header page if a growth's msync of it failed since it was
    /// last synced: the chunk count must be durable before a slot of that
    /// chunk is acknowledged.
    fn pay_header(&self) -> Result<()> {
        let owed = self.header_owed.load(Ordering::Acquire);
        if owed > 0 {
            self.map.flush_header(Site::LedgerGrowHeader)?;
            // A failure after our load stays owed.
            let _ = self.header_owed.compare_exchange(owed, 0, Ordering::AcqRel, Ordering::Acquire);
        }
        Ok(())
    }

    /// Makes the slot changes deferred so far durable (one msync per page).
    /// On failure the pages not yet synced stay owed, for the next commit.
    pub(crate) fn commit_deferred(&self) -> Result<()> {
        self.pay_header()?;
        let mut owed = std::mem::take(&mut *self.deferred.lock().unwrap_or_else(|p| p.into_inner()));
        owed.sort_unstable_by_key(|(a, off)| (a.base_addr(), off / PAGE as usize));
        owed.dedup_by_key(|(a, off)| (a.base_addr(), *off / PAGE as usize));
        for (i, (addr, off)) in owed.iter().enumerate() {
            if let Err(e) = self.map.flush(Site::LedgerCommitMsync, *addr, *off, SLOT_BYTES) {
                self.deferred.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(&owed[i..]);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Makes every slot transition durable (msync of the whole mapping).
    pub fn flush_all(&self) -> Result<()> {
        let dir = self.dir.read().unwrap_or_else(|p| p.into_inner());
        for (_, _, addr) in dir.all() {
            self.map.flush(Site::LedgerFlushMsync, addr, 0, CHUNK_BYTES as usize)?;
        }
        self.map.flush_header(Site::LedgerFlushMsync)
    }

    fn status_counter(&self, shard: usize, column: usize, status: SlotStatus) -> Option<&AtomicU64> {
        if status == SlotStatus::Empty || column >= MAX_COLUMNS {
            return None;
        }
        // `% COUNTER_SHARDS` (a shard is always below it) lets the compiler
        // see the offset inside the header page and drop the bounds check.
        Some(self.header(status_count_offset(shard % COUNTER_SHARDS, column, status as usize - 1)))
    }

    fn event_counter(&self, shard: usize, event: LedgerEvent) -> &AtomicU64 {
        self.header(event_count_offset(shard % COUNTER_SHARDS, event))
    }

    /// Moves one slot from `from` to `to` in this process's counter shard.
    pub fn count_transition(&self, column: usize, t: Transition) {
        if t.from == t.to {
            return;
        }
        if let Some(c) = self.status_counter(self.shard, column, t.from) {
            c.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(c) = self.status_counter(self.shard, column, t.to) {
            c.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Adds summed deltas to this process's counter shard, and empties them:
    /// the decreases first, then the increases, as
    /// [`count_transition`](Self::count_transition) does, then the events.
    pub fn count_deltas(&self, d: &mut CounterDeltas) {
        if !d.any {
            return;
        }
        for (column, row) in d.status.iter().enumerate() {
            for (i, &delta) in row.iter().enumerate() {
                if delta < 0 {
                    self.header(status_count_offset(self.shard, column, i)).fetch_sub(delta.unsigned_abs(), Ordering::AcqRel);
                }
            }
        }
        for (column, row) in d.status.iter().enumerate() {
            for (i, &delta) in row.iter().enumerate() {
                if delta > 0 {
                    self.header(status_count_offset(self.shard, column, i)).fetch_add(delta as u64, Ordering::AcqRel);
                }
            }
        }
        for (event, &n) in LedgerEvent::ALL.iter().zip(&d.events) {
            if n > 0 {
                self.count_event(*event, n);
            }
        }
        *d = CounterDeltas::default();
    }

    /// Adds to an event count, in this process's shard. Release: a reader
    /// that sees the event sees the status counts the transition moved
    /// before it ([`counter_snapshot`](Self::counter_snapshot)).
    pub fn count_event(&self, event: LedgerEvent, n: u64) {
        self.event_counter(self.shard, event).fetch_add(n, Ordering::Release);
    }

    /// An event count: the sum of the shards.
    pub fn event_count(&self, event: LedgerEvent) -> u64 {
        (0..COUNTER_SHARDS).fold(0u64, |sum, s| sum.wrapping_add(self.event_counter(s, event).load(Ordering::Acquire)))
    }

    /// Count of slots of `column` in `status` (not Empty): the sum of the
    /// shards, each read at its own instant (see
    /// [`counter_snapshot`](Self::counter_snapshot) for the counts of one
    /// instant).
    pub fn status_count(&self, column: usize, status: SlotStatus) -> u64 {
        (0..COUNTER_SHARDS)
            .fold(0u64, |sum, s| sum.wrapping_add(self.status_counter(s, column, status).map_or(0, |c| c.load(Ordering::Acquire))))
    }

    /// The status counts as stored (shards summed), by column: `[Pending,
    /// Filled, Cleared, Retired]` (they may be off after a process died
    /// between a transition and its counter update; `Controller::slot_metrics` clamps).
    pub(crate) fn status_counts_raw(&self) -> Vec<[u64; COUNTED_STATUSES]> {
        (0..self.geometry.slots_per_row as usize)
            .map(|column| {
                let mut c = [0u64; COUNTED_STATUSES];
                for (i, status) in SlotStatus::ALL[1..].iter().enumerate() {
                    c[i] = (0..COUNTER_SHARDS).fold(0u64, |sum, s| {
                        sum.wrapping_add(self.status_counter(s, column, *status).map_or(0, |a| a.load(Ordering::SeqCst)))
                    });
                }
                c
            })
            .collect()
    }

    /// How many transitions completed their counter updates, by kind
    /// (claims, fills, clears, force-clears, retires), shards summed: every
    /// transition adds to one of these after it moved the status counts.
    pub(crate) fn transition_events_raw(&self) -> [u64; 5] {
        [LedgerEvent::Claims, LedgerEvent::Fills, LedgerEvent::Clears, LedgerEvent::ForceClears, LedgerEvent::Retires]
            .map(|e| (0..COUNTER_SHARDS).fold(0u64, |sum, s| sum.wrapping_add(self.event_counter(s, e).load(Ordering::SeqCst))))
    }

    /// The status counts of one instant, if one could be read: the
    /// transition events, the status counts, `under_way()` (whether some
    /// transition is between its compare-and-swap and its counter update,
    /// or may be), then the transition events again. When the events did
    /// not move, every transition is either wholly in the counts read (it
    /// finished before), wholly out (it moved no count before they were
    /// read), or was under way — and then `under_way` said so. Returns the
    /// counts and what `under_way` said; `None` when the events moved every
    /// time in `tries` attempts (transitions are completing all the time).
    pub(crate) fn counter_snapshot(
        &self,
        tries: usize,
        mut under_way: impl FnMut() -> bool,
    ) -> Option<(Vec<[u64; COUNTED_STATUSES]>, bool)> {
        for _ in 0..tries {
            let before = self.transition_events_raw();
            let counts = self.status_counts_raw();
            let busy = under_way();
            if self.transition_events_raw() == before {
                return Some((counts, busy));
            }
        }
        None
    }

    /// Adds `scan − before` (wrapping) to each status count of this
    /// process's shard, where `before` are the counts (shards summed) as
    /// they were when `scan` was a true count of the ledger: the sums
    /// become exact, and transitions counted since are kept.
    pub(crate) fn correct_counts(&self, before: &[[u64; COUNTED_STATUSES]], scan: &LedgerScan) {
        for (column, (before, counts)) in before.iter().zip(&scan.counts).enumerate() {
            for (i, status) in SlotStatus::ALL[1..].iter().enumerate() {
                let delta = counts[*status as usize].wrapping_sub(before[i]);
                if delta != 0 {
                    if let Some(c) = self.status_counter(self.shard, column, *status) {
                        c.fetch_add(delta, Ordering::AcqRel);
                    }
                }
            }
        }
    }

    /// Overwrites the status counts with an exact scan, in shard 0, and
    /// zeroes the other shards' (only when no other process has the
    /// directory open), and stores the chunks' done counts.
    pub fn store_counts(&self, scan: &LedgerScan) {
        for (column, counts) in scan.counts.iter().enumerate() {
            for status in &SlotStatus::ALL[1..] {
                for shard in 0..COUNTER_SHARDS {
                    if let Some(c) = self.status_counter(shard, column, *status) {
                        c.store(if shard == 0 { counts[*status as usize] } else { 0 }, Ordering::Release);
                    }
                }
            }
        }
        for (addr, done) in &scan.done {
            for (column, n) in done.iter().enumerate().take(self.geometry.slots_per_row as usize) {
                if let Some(d) = self.done_count(*addr, column) {
                    d.store(*n, Ordering::Release);
                }
            }
        }
    }

    /// Scans every published chunk: exact status counts and expired claims.
    /// Rows of symbols at or past `symbol_count`, or windows at or past
    /// `window_count`, must be Empty; anything else is reported as damage.
    pub fn scan(&self, now_ms: u64, symbol_count: u32, window_count: u32) -> Result<LedgerScan> {
        let scan = self.scan_with(now_ms, symbol_count, window_count, None)?;
        match &scan.outside {
            Some(o) => Err(self.outside_error(o, symbol_count, window_count)),
            None => Ok(scan),
        }
    }

    /// The damage error for non-Empty slots outside `symbol_count` × `window_count`.
    pub fn outside_error(&self, o: &OutsideSlots, symbol_count: u32, window_count: u32) -> Error {
        let (symbol, window, column, status) = o.first;
        Error::corrupt(
            &self.path,
            None,
            format!(
                "slot (symbol {symbol}, window {window}, column {column}) is {status} but lies outside the {symbol_count} symbols × {window_count} windows of the state directory"
            ),
        )
    }

    /// Like [`scan`](Self::scan), but a non-Empty slot outside `symbol_count`
    /// × `window_count` is counted and reported in [`LedgerScan::outside`]
    /// instead of failing the scan: while other processes run, a symbol or
    /// window added after the caller read those counts is no damage, and the
    /// caller decides once it has read them again.
    pub fn scan_counting_outside(&self, now_ms: u64, symbol_count: u32, window_count: u32) -> Result<LedgerScan> {
        self.scan_with(now_ms, symbol_count, window_count, None)
    }

    /// Like [`scan_counting_outside`](Self::scan_counting_outside), and also
    /// looks at what every Filled slot refers to: the highest payload id per
    /// store ([`LedgerScan::highest_ref`]) and the slots whose payload id
    /// `missing(store, id)` says the store does not hold
    /// ([`LedgerScan::dangling`]).
    pub fn scan_references(
        &self,
        now_ms: u64,
        symbol_count: u32,
        window_count: u32,
        missing: &dyn Fn(StoreKind, u64) -> bool,
    ) -> Result<LedgerScan> {
        self.scan_with(now_ms, symbol_count, window_count, Some(missing))
    }

    fn scan_with(
        &self,
        now_ms: u64,
        symbol_count: u32,
        window_count: u32,
        missing: Option<&dyn Fn(StoreKind, u64) -> bool>,
    ) -> Result<LedgerScan> {
        self.catch_up()?;
        let columns = self.geometry.slots_per_row as usize;
        let mut scan = LedgerScan { counts: vec![[0; 5]; columns], ..LedgerScan::default() };
        let dir = self.dir.read().unwrap_or_else(|p| p.into_inner());
        let rpc = self.geometry.rows_per_chunk;
        for (symbol, chunk_idx, addr) in dir.all() {
            scan.chunks += 1;
            let mut done = [0i32; MAX_DONE_COLUMNS];
            for row in 0..rpc {
                let window = chunk_idx as u64 * u64::from(rpc) + u64::from(row);
                for column in 0..columns {
                    let off = CHUNK_HEADER_BYTES as usize + row as usize * self.geometry.row_bytes() + column * SLOT_BYTES;
                    let Some(cell) = self.map.slot(addr, off) else { continue };
                    let raw = cell.raw_status();
                    let Some(status) = SlotStatus::from_u8(raw) else {
                        return Err(Error::corrupt(
                            &self.path,
                            Some(chunk_offset(0)),
                            format!("slot (symbol {symbol}, window {window}, column {column}) has unknown status byte {raw}"),
                        ));
                    };
                    if status == SlotStatus::Empty {
                        continue;
                    }
                    if symbol >= symbol_count || window >= u64::from(window_count) {
                        let o = scan.outside.get_or_insert(OutsideSlots {
                            first: (symbol, window, column, status),
                            max_symbol: symbol,
                            max_window: window,
                        });
                        o.max_symbol = o.max_symbol.max(symbol);
                        o.max_window = o.max_window.max(window);
                    }
                    scan.counts[column][status as usize] += 1;
                    if let (SlotStatus::Filled | SlotStatus::Retired, Some(n)) = (status, done.get_mut(column)) {
                        *n += 1;
                    }
                    if status == SlotStatus::Pending && cell.read().lease_deadline_ms <= now_ms {
                        scan.stale_claims += 1;
                    }
                    if let (SlotStatus::Filled, Some(missing), Some(kind)) = (status, missing, self.kind_of_column(column)) {
                        let snap = cell.read();
                        if snap.status == SlotStatus::Filled {
                            let store = kind.store();
                            let high = &mut scan.highest_ref[store as usize];
                            *high = Some(high.map_or(snap.payload_id, |h| h.max(snap.payload_id)));
                            if missing(store, snap.payload_id) {
                                let window = u32::try_from(window).unwrap_or(u32::MAX);
                                scan.dangling.push(DanglingRef { symbol, window, kind, payload_id: snap.payload_id });
                            }
                        }
                    }
                }
            }
            scan.done.push((addr, done));
        }
        Ok(scan)
    }

    /// Chunks published so far whose symbol id is `symbol_count` or more
    /// (symbols the symbol map does not hold), and the highest such id.
    pub fn chunks_of_unknown_symbols(&self, symbol_count: u32) -> Result<(u64, Option<u32>)> {
        self.catch_up()?;
        let dir = self.dir.read().unwrap_or_else(|p| p.into_inner());
        let mut n = 0;
        let mut highest = None;
        for (symbol, here) in dir.symbols_from(symbol_count) {
            n += here;
            highest = Some(symbol);
        }
        Ok((n, highest))
    }

    /// The done count of `column` in the chunk holding `window_idx` of
    /// `symbol`, if that chunk exists (for tests and tooling).
    pub fn done_count_of(&self, symbol: u32, window_idx: u32, column: usize) -> Result<Option<i32>> {
        let (chunk_idx, _) = self.locate(window_idx, column);
        Ok(self.chunk_addr(symbol, chunk_idx)?.and_then(|a| self.done_count(a, column)).map(|d| d.load(Ordering::Acquire)))
    }

    /// Symbols that own at least one chunk (for tests and tooling).
    pub fn symbols_with_chunks(&self) -> Vec<u32> {
        let dir = self.dir.read().unwrap_or_else(|p| p.into_inner());
        dir.symbols_from(0).map(|(s, _)| s).collect()
    }

    /// Counts of slots per status for one symbol (for per-symbol summaries).
    pub fn symbol_counts(&self, symbol: u32, window_count: u32) -> Result<Vec<[u64; 5]>> {
        let columns = self.geometry.slots_per_row as usize;
        let mut out = vec![[0u64; 5]; columns];
        for counts in out.iter_mut() {
            counts[0] = u64::from(window_count);
        }
        self.catch_up()?;
        let dir = self.dir.read().unwrap_or_else(|p| p.into_inner());
        let rpc = self.geometry.rows_per_chunk;
        for (chunk_idx, addr) in dir.chunks_of(symbol) {
            for row in 0..rpc {
                let window = chunk_idx as u64 * u64::from(rpc) + u64::from(row);
                if window >= u64::from(window_count) {
                    break;
                }
                for (column, counts) in out.iter_mut().enumerate() {
                    let off = CHUNK_HEADER_BYTES as usize + row as usize * self.geometry.row_bytes() + column * SLOT_BYTES;
                    if let Some(status) = self.map.slot(addr, off).and_then(|c| c.status()) {
                        if status != SlotStatus::Empty {
                            counts[0] -= 1;
                            counts[status as usize] += 1;
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// First window in `start..end` whose slot in `column` satisfies `pred`
    /// (rows of unallocated chunks are Empty). One directory lookup per chunk.
    /// `pred` must be false for every Filled and Retired slot: a chunk whose
    /// done count says its column is all Filled or Retired is skipped without
    /// reading its slots, so a search behind filled windows costs a look per
    /// chunk, not per window.
    pub fn find_window(
        &self,
        symbol: u32,
        start: u32,
        end: u32,
        column: usize,
        mut pred: impl FnMut(Option<SlotCell<'_>>, SlotStatus) -> bool,
    ) -> Result<Option<u32>> {
        self.catch_up()?;
        let dir = self.dir.read().unwrap_or_else(|p| p.into_inner());
        let rpc = self.geometry.rows_per_chunk;
        let mut w = start;
        while w < end {
            let (chunk_idx, _) = self.locate(w, column);
            let chunk_end = ((chunk_idx as u64 + 1) * u64::from(rpc)).min(u64::from(end)) as u32;
            match dir.get(symbol, chunk_idx) {
                None => {
                    if pred(None, SlotStatus::Empty) {
                        return Ok(Some(w));
                    }
                    w = chunk_end;
                }
                Some(addr) if self.done_count(addr, column).is_some_and(|d| d.load(Ordering::Acquire) >= rpc as i32) => {
                    // Every slot of the column is Filled or Retired (the count
                    // is never high), and `pred` is false for those.
                    w = chunk_end;
                }
                Some(addr) => {
                    // One row further is one row's bytes further: no division a window.
                    let (_, mut off) = self.locate(w, column);
                    let row_bytes = self.geometry.row_bytes();
                    while w < chunk_end {
                        let cell = self.map.slot(addr, off);
                        let status = cell.and_then(|c| c.status()).unwrap_or(SlotStatus::Empty);
                        if pred(cell, status) {
                            return Ok(Some(w));
                        }
                        w += 1;
                        off += row_bytes;
                    }
                }
            }
        }
        Ok(None)
    }

    /// Kind of slot for a column of this ledger.
    pub fn kind_of_column(&self, column: usize) -> Option<SlotKind> {
        self.geometry.kind.slot_kinds().get(column).copied()
    }
}

/// The slots of one column in one chunk of a symbol (from
/// [`Ledger::chunk_column`]): cells by window, without a directory lookup each.
#[derive(Clone, Copy)]
pub struct ChunkColumn<'a> {
    ledger: &'a Ledger,
    addr: ChunkAddr,
    symbol: u32,
    /// First window of the chunk.
    first: u32,
    /// The window after the chunk's last.
    end: u32,
    /// Byte offset in the chunk of the column's slot in the first row.
    base: usize,
    row_bytes: usize,
    column: usize,
}

impl<'a> ChunkColumn<'a> {
    /// The window after the chunk's last.
    #[inline]
    pub fn end(&self) -> u32 {
        self.end
    }

    /// Whether the chunk holds `window_idx` (of this symbol).
    #[inline]
    pub fn holds(&self, symbol: u32, window_idx: u32) -> bool {
        symbol == self.symbol && window_idx >= self.first && window_idx < self.end
    }

    /// The slot of `window_idx`, a window the chunk holds ([`holds`](Self::holds));
    /// `None` for any other window.
    #[inline]
    pub fn cell(&self, window_idx: u32) -> Option<SlotCell<'a>> {
        if window_idx < self.first || window_idx >= self.end {
            return None;
        }
        self.ledger.cell(self.addr, self.base + (window_idx - self.first) as usize * self.row_bytes, self.column)
    }

    /// [`Ledger::flush_slot`] of the slot of `window_idx`, without its directory lookup.
    #[inline]
    pub fn flush(&self, window_idx: u32) -> Result<()> {
        if !self.ledger.sync {
            return Ok(());
        }
        self.flush_synced(window_idx)
    }

    #[inline(never)]
    fn flush_synced(&self, window_idx: u32) -> Result<()> {
        let l = self.ledger;
        if window_idx < self.first || window_idx >= self.end {
            return Ok(());
        }
        let off = self.base + (window_idx - self.first) as usize * self.row_bytes;
        if crate::durability::deferring() {
            l.deferred.lock().unwrap_or_else(|p| p.into_inner()).push((self.addr, off));
            Ok(())
        } else {
            l.pay_header()?;
            l.map.flush(Site::LedgerSlotMsync, self.addr, off, SLOT_BYTES)
        }
    }

    /// The column of the slots (for counting their transitions).
    #[inline]
    pub fn column(&self) -> usize {
        self.column
    }
}

/// Changes of a ledger's shared counters summed over the transitions of a
/// batch, added to the counters at once by [`Ledger::count_deltas`]: one
/// read-modify-write a counter that moved instead of three a transition.
#[derive(Debug, Clone)]
pub struct CounterDeltas {
    /// By column and counted status (Pending, Filled, Cleared, Retired):
    /// slots in minus slots out.
    status: [[i64; COUNTED_STATUSES]; MAX_COLUMNS],
    events: [u64; LedgerEvent::ALL.len()],
    any: bool,
}

impl Default for CounterDeltas {
    fn default() -> Self {
        Self { status: [[0; COUNTED_STATUSES]; MAX_COLUMNS], events: [0; LedgerEvent::ALL.len()], any: false }
    }
}

impl CounterDeltas {
    /// Counts one transition of a slot of `column` ([`Ledger::count_transition`]).
    #[inline]
    pub fn transition(&mut self, column: usize, t: Transition) {
        if t.from == t.to || column >= MAX_COLUMNS {
            return;
        }
        if t.from != SlotStatus::Empty {
            self.status[column][t.from as usize - 1] -= 1;
        }
        if t.to != SlotStatus::Empty {
            self.status[column][t.to as usize - 1] += 1;
        }
        self.any = true;
    }

    /// Counts `n` events ([`Ledger::count_event`]).
    #[inline]
    pub fn event(&mut self, event: LedgerEvent, n: u64) {
        self.events[event as usize] += n;
        self.any |= n > 0;
    }

    /// True when nothing was counted.
    pub fn is_empty(&self) -> bool {
        !self.any
    }
}

fn encode_chunk_header(buf: &mut [u8], symbol: u32, chunk_idx: u32) {
    buf[0..4].copy_from_slice(&CHUNK_MAGIC);
    buf[CHUNK_OFF_SYMBOL..CHUNK_OFF_SYMBOL + 4].copy_from_slice(&symbol.to_le_bytes());
    buf[CHUNK_OFF_INDEX..CHUNK_OFF_INDEX + 4].copy_from_slice(&chunk_idx.to_le_bytes());
    buf[CHUNK_OFF_RESERVED..CHUNK_OFF_CHECKSUM].fill(0);
    let sum = xxhash_rust::xxh3::xxh3_64(&buf[0..CHUNK_OFF_CHECKSUM]);
    buf[CHUNK_OFF_CHECKSUM..CHUNK_OFF_CHECKSUM + 8].copy_from_slice(&sum.to_le_bytes());
}

pub(crate) fn decode_chunk_header(path: &Path, off: u64, buf: &[u8]) -> Result<(u32, u32)> {
    if buf[0..4] != CHUNK_MAGIC {
        return Err(Error::corrupt(path, Some(off), "chunk header has the wrong magic number"));
    }
    let stored = u64::from_le_bytes(buf[CHUNK_OFF_CHECKSUM..CHUNK_OFF_CHECKSUM + 8].try_into().expect("8 bytes"));
    if stored != xxhash_rust::xxh3::xxh3_64(&buf[0..CHUNK_OFF_CHECKSUM]) {
        return Err(Error::corrupt(path, Some(off + CHUNK_OFF_CHECKSUM as u64), "chunk header checksum mismatch"));
    }
    let symbol = u32::from_le_bytes(buf[CHUNK_OFF_SYMBOL..CHUNK_OFF_SYMBOL + 4].try_into().expect("4 bytes"));
    let chunk_idx = u32::from_le_bytes(buf[CHUNK_OFF_INDEX..CHUNK_OFF_INDEX + 4].try_into().expect("4 bytes"));
    Ok((symbol, chunk_idx))
}
