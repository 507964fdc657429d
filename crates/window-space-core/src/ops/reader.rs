//! A read-only view of a state directory, for the tools that must never
//! change what they look at (`inspect`, `grid`, `verify`, `export`,
//! `metrics`): every file is opened read-only and read with `pread`, never
//! mapped, never locked, never written — no byte and no modification time
//! changes, a read-only copy or backup works, and a file that shrinks while
//! it is read gives an error, not SIGBUS.
//!
//! It validates what a bootstrap validates (headers, chunk headers, every
//! payload record's framing and checksum, no slot outside symbols × windows)
//! but repairs nothing: a torn tail of a mapping table is reported, not cut.
//!
//! Engines may run beside it. A slot is read with its 32 bytes in one
//! `pread`; bytes read in the middle of a transition (a Filled head whose
//! tail is not its fill's) are read again, so every slot it reports is one
//! the slot really held.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::controller::{check_state_files_present, SCHEDULE_FILE};
use crate::error::{Error, Result};
use crate::ledger::{
    chunk_offset, decode_chunk_header, event_count_offset, status_count_offset, LedgerGeometry, CHUNK_BYTES, CHUNK_HEADER_BYTES,
    COUNTER_SHARDS, OFF_CHUNK_COUNT, OFF_SYMBOL_COUNT, OFF_WINDOW_COUNT,
};
use crate::mapping::PAGE;
use crate::payload::{PayloadStore, ReplayReport};
use crate::schedule::Schedule;
use crate::slot::{RawSlot, SlotSnapshot, SLOT_BYTES};
use crate::symbols::SymbolMap;
use crate::vocab::{LedgerEvent, LedgerKind, SlotStatus, StoreKind};

/// How many times a slot read mid-transition is read again before it is
/// reported as it stands.
const REREADS: usize = 64;

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// One ledger file, read with `pread`.
pub struct LedgerFile {
    kind: LedgerKind,
    path: PathBuf,
    file: File,
    geometry: LedgerGeometry,
    /// (symbol, chunk index) → chunk number, for the chunks published when opened.
    chunks: HashMap<(u32, u32), u64>,
    /// Chunks in file order: (symbol, chunk index).
    order: Vec<(u32, u32)>,
    file_len: u64,
}

/// The shared counters of a ledger's header page, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerCounters {
    /// `[column][Pending, Filled, Cleared, Retired]`.
    pub status: Vec<[u64; 4]>,
    pub events: Vec<(LedgerEvent, u64)>,
    pub symbol_count: u64,
    pub window_count: u64,
}

impl LedgerFile {
    /// Opens a ledger read-only and reads its header page and chunk headers.
    pub fn open(path: &Path, kind: LedgerKind) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io("fstat", path, e))?.len();
        if file_len < PAGE {
            return Err(Error::corrupt(path, Some(file_len), "file is shorter than its 4096-byte header"));
        }
        let mut header = vec![0u8; PAGE as usize];
        file.read_exact_at(&mut header, 0).map_err(|e| Error::io("read", path, e))?;
        let geometry = LedgerGeometry::decode(path, kind, &header)?;
        let count = u64_at(&header, OFF_CHUNK_COUNT);
        if count.checked_mul(u64::from(CHUNK_BYTES)).and_then(|b| b.checked_add(PAGE)).is_none_or(|end| end > file_len) {
            return Err(Error::corrupt(
                path,
                Some(OFF_CHUNK_COUNT as u64),
                format!("the header publishes {count} chunks, which do not fit in the file's {file_len} bytes"),
            ));
        }
        let mut chunks = HashMap::with_capacity(count as usize);
        let mut order = Vec::with_capacity(count as usize);
        let mut hdr = [0u8; CHUNK_HEADER_BYTES as usize];
        for n in 0..count {
            let off = chunk_offset(n);
            file.read_exact_at(&mut hdr, off).map_err(|e| Error::io("read", path, e))?;
            let (symbol, chunk_idx) = decode_chunk_header(path, off, &hdr)?;
            if chunks.insert((symbol, chunk_idx), n).is_some() {
                return Err(Error::corrupt(path, Some(off), format!("chunk for symbol {symbol}, chunk index {chunk_idx} appears twice")));
            }
            order.push((symbol, chunk_idx));
        }
        Ok(Self { kind, path: path.to_path_buf(), file, geometry, chunks, order, file_len })
    }

    pub fn kind(&self) -> LedgerKind {
        self.kind
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn geometry(&self) -> LedgerGeometry {
        self.geometry
    }

    /// Chunks published when the view was opened.
    pub fn chunk_count(&self) -> u64 {
        self.order.len() as u64
    }

    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    fn slot_offset(&self, chunk_no: u64, row: u32, column: usize) -> u64 {
        chunk_offset(chunk_no)
            + u64::from(CHUNK_HEADER_BYTES)
            + (u64::from(row) * u64::from(self.geometry.slots_per_row) + column as u64) * SLOT_BYTES as u64
    }

    /// The 32 bytes of a slot, read again while they are mid-transition.
    fn read_raw(&self, off: u64) -> Result<RawSlot> {
        let mut b = [0u8; SLOT_BYTES];
        let mut raw = RawSlot::from_bytes(&b);
        for _ in 0..REREADS {
            self.file.read_exact_at(&mut b, off).map_err(|e| Error::io("read", &self.path, e))?;
            raw = RawSlot::from_bytes(&b);
            if raw.snapshot().is_some() || SlotStatus::from_u8(raw.status_byte).is_none() {
                return Ok(raw);
            }
        }
        Ok(raw)
    }

    /// The slot at `off`; one whose words stay mismatched over many reads is
    /// damage (reported by `verify`'s raw check) and is returned as it reads.
    fn snapshot_at(&self, off: u64) -> Result<SlotSnapshot> {
        let raw = self.read_raw(off)?;
        raw.snapshot()
            .or_else(|| raw.snapshot_as_is())
            .ok_or_else(|| Error::corrupt(&self.path, Some(off), format!("status byte {} is no status", raw.status_byte)))
    }

    /// Where (chunk number, row) the slot of `window` of `symbol` is, if its chunk exists.
    fn locate(&self, symbol: u32, window: u32) -> Option<(u64, u32)> {
        let rpc = self.geometry.rows_per_chunk;
        let chunk_idx = window / rpc;
        self.chunks.get(&(symbol, chunk_idx)).map(|n| (*n, window - chunk_idx * rpc))
    }

    /// One slot (Empty if its chunk was never allocated).
    pub fn read_slot(&self, symbol: u32, window: u32, column: usize) -> Result<SlotSnapshot> {
        match self.locate(symbol, window) {
            None => Ok(SlotSnapshot::EMPTY),
            Some((n, row)) => self.snapshot_at(self.slot_offset(n, row, column)),
        }
    }

    /// Every slot of a row, in column order.
    pub fn read_row(&self, symbol: u32, window: u32) -> Result<Vec<SlotSnapshot>> {
        let columns = self.geometry.slots_per_row as usize;
        match self.locate(symbol, window) {
            None => Ok(vec![SlotSnapshot::EMPTY; columns]),
            Some((n, row)) => (0..columns).map(|c| self.snapshot_at(self.slot_offset(n, row, c))).collect(),
        }
    }

    /// Chunks whose symbol id is `symbol_count` or more (symbols the map
    /// does not hold), and the highest such id.
    pub fn chunks_of_unknown_symbols(&self, symbol_count: u32) -> (u64, Option<u32>) {
        let unknown = self.order.iter().map(|(s, _)| *s).filter(|s| *s >= symbol_count);
        unknown.fold((0, None), |(n, high): (u64, Option<u32>), s| (n + 1, Some(high.map_or(s, |h| h.max(s)))))
    }

    /// Visits every allocated chunk in file order with its symbol, first
    /// window and bytes (the chunk header and the rows, read in one `pread`).
    pub fn for_each_chunk(&self, mut visit: impl FnMut(u32, u32, &ChunkRows<'_>) -> Result<()>) -> Result<()> {
        let mut buf = vec![0u8; CHUNK_BYTES as usize];
        for (n, (symbol, chunk_idx)) in self.order.iter().enumerate() {
            let base = chunk_offset(n as u64);
            self.file.read_exact_at(&mut buf, base).map_err(|e| Error::io("read", &self.path, e))?;
            let first_window = chunk_idx.saturating_mul(self.geometry.rows_per_chunk);
            visit(*symbol, first_window, &ChunkRows { ledger: self, base, bytes: &buf })?;
        }
        Ok(())
    }

    /// The shared counters of the header page, as they are now (the counter
    /// shards summed, wrapping, as the library sums them).
    pub fn counters(&self) -> Result<LedgerCounters> {
        let mut h = vec![0u8; PAGE as usize];
        self.file.read_exact_at(&mut h, 0).map_err(|e| Error::io("read", &self.path, e))?;
        let columns = self.geometry.slots_per_row as usize;
        let sum = |at: &dyn Fn(usize) -> usize| (0..COUNTER_SHARDS).fold(0u64, |s, shard| s.wrapping_add(u64_at(&h, at(shard))));
        let status = (0..columns).map(|c| std::array::from_fn(|i| sum(&|shard| status_count_offset(shard, c, i)))).collect();
        let events = LedgerEvent::ALL.iter().map(|e| (*e, sum(&|shard| event_count_offset(shard, *e)))).collect();
        Ok(LedgerCounters { status, events, symbol_count: u64_at(&h, OFF_SYMBOL_COUNT), window_count: u64_at(&h, OFF_WINDOW_COUNT) })
    }
}

/// The rows of one chunk, as read by [`LedgerFile::for_each_chunk`].
pub struct ChunkRows<'a> {
    ledger: &'a LedgerFile,
    base: u64,
    bytes: &'a [u8],
}

impl ChunkRows<'_> {
    /// The chunk's bytes (header and rows).
    pub fn bytes(&self) -> &[u8] {
        self.bytes
    }

    /// File offset of the chunk.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Byte offset of a slot in the chunk.
    pub fn slot_offset(&self, row: u32, column: usize) -> usize {
        CHUNK_HEADER_BYTES as usize + (row as usize * self.ledger.geometry.slots_per_row as usize + column) * SLOT_BYTES
    }

    /// The raw bytes of a slot as this read saw them.
    pub fn raw(&self, row: u32, column: usize) -> RawSlot {
        let at = self.slot_offset(row, column);
        RawSlot::from_bytes(self.bytes[at..at + SLOT_BYTES].try_into().expect("32 bytes"))
    }

    /// The slot at (row, column): from this read, or read again if these
    /// bytes caught it mid-transition.
    pub fn slot(&self, row: u32, column: usize) -> Result<SlotSnapshot> {
        match self.raw(row, column).snapshot() {
            Some(s) => Ok(s),
            None => self.ledger.snapshot_at(self.base + self.slot_offset(row, column) as u64),
        }
    }

    /// Reads the slot's bytes again from the file (for checks that want to
    /// tell damage from a transition in flight).
    pub fn reread(&self, row: u32, column: usize) -> Result<[u8; SLOT_BYTES]> {
        let mut b = [0u8; SLOT_BYTES];
        self.ledger
            .file
            .read_exact_at(&mut b, self.base + self.slot_offset(row, column) as u64)
            .map_err(|e| Error::io("read", &self.ledger.path, e))?;
        Ok(b)
    }
}

/// A read-only view of a whole state directory.
pub struct StateReader {
    dir: PathBuf,
    schedule: Schedule,
    symbols: Vec<String>,
    ledgers: Vec<LedgerFile>,
    stores: Vec<(PayloadStore, ReplayReport)>,
}

impl StateReader {
    /// Opens every file of `dir` read-only and validates it; changes nothing.
    pub fn open(dir: &Path) -> Result<Self> {
        let schedule_path = dir.join(SCHEDULE_FILE);
        let text = match std::fs::read_to_string(&schedule_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotAStateDir { path: dir.to_path_buf() }),
            Err(e) => return Err(Error::io("read", &schedule_path, e)),
        };
        check_state_files_present(dir)?;
        let schedule = Schedule::from_json(&schedule_path, &text)?;
        // Ledgers before symbols: a chunk is allocated only for a symbol that
        // is already in the map, so every chunk seen has its symbol in the
        // map read after it, however many engines add symbols meanwhile.
        let ledgers = LedgerKind::ALL.iter().map(|k| LedgerFile::open(&dir.join(k.file_name()), *k)).collect::<Result<Vec<_>>>()?;
        let symbols = SymbolMap::open_read_only(&dir.join(SymbolMap::FILE_NAME))?.all();
        let stores =
            StoreKind::ALL.iter().map(|k| PayloadStore::open_read_only(&dir.join(k.file_name()), *k)).collect::<Result<Vec<_>>>()?;
        Ok(Self { dir: dir.to_path_buf(), schedule, symbols, ledgers, stores })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    pub fn window_count(&self) -> u32 {
        self.schedule.window_count()
    }

    /// Symbols as `symbols.log` held them when the view was opened.
    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    pub fn ledger(&self, kind: LedgerKind) -> &LedgerFile {
        &self.ledgers[kind as usize]
    }

    pub fn store(&self, kind: StoreKind) -> &PayloadStore {
        &self.stores[kind as usize].0
    }

    /// What the read of each mapping table found (records, torn tail).
    pub fn replay(&self, kind: StoreKind) -> &ReplayReport {
        &self.stores[kind as usize].1
    }

    /// One slot.
    pub fn read_slot(&self, at: crate::slot::SlotAddr) -> Result<SlotSnapshot> {
        self.ledger(at.kind.ledger()).read_slot(at.symbol, at.window, at.kind.column())
    }
}
