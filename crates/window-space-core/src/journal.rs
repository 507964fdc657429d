//! The change journal (`changes.journal`): a bounded ring of slot changes that
//! every process writes after each transition and any process can read, the
//! shared words that wake waiters across processes (futex), and the table of
//! writers in flight by which readers tell a stopped writer from a dead one.
//!
//! Past 600 lines because the Protocol below (the file format and the
//! reasoning that makes a missed change impossible) is documented beside the
//! code that follows it; the writer table is in `journal/writers.rs`.
//!
//! It is what `waitFor` and `watch` stand on: a reader keeps a position — the
//! journal's *epoch* and a sequence number — reads the entries after it, and
//! sleeps on the wake word when there are none. The journal is *derived*, for
//! notification only: it is not synced, and a reader that cannot prove it saw
//! every change since its position gets [`JournalRead::Gap`], or reads up to
//! an [abandoned](ReadEnd::Abandoned) entry, and must rescan the ledger.
//!
//! ## Format (version 3, little-endian)
//!
//! Header page, bytes 0..4096:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `89 57 53 4A 52 4E 0D 0A` (`\x89WSJRN\r\n`) |
//! | 8 | 4 | format version = 3 |
//! | 12 | 4 | entry bytes = 64 |
//! | 16 | 8 | capacity in entries (a power of two, 64 ..= 2^24) |
//! | 24 | 8 | created at, ns since epoch |
//! | 32 | 8 | epoch: random, never 0, drawn for each journal file |
//! | 40 | 16 | boot id of the host that made the file (`/proc/sys/kernel/random/boot_id` as 16 bytes; 0 when unknown) |
//! | 56 | 8 | xxh3-64 of bytes 0..56 |
//! | 256 | 8 | *shared:* head = the next sequence number to hand out |
//! | 320 | 4 | *shared:* wake word (futex), bumped when a writer wakes sleepers |
//! | 324 | 4 | *shared:* sleepers = readers asleep on the wake word |
//! | 328 | 4 | *shared:* armed = 1 when a sleeper is owed a wake-up no writer has sent yet |
//!
//! Writer table, bytes 4096..8192, *shared*: 256 cells of 16 bytes, cell *i*
//! at `4096 + 16 i`, two u64 words:
//!
//! | word | contents |
//! | --- | --- |
//! | 0 | owner: 0 when free; else the writer's process: pid (bits 0..32) and the low 32 bits of its start time in clock ticks after boot (`/proc/<pid>/stat` field 22; bits 32..64, 0 when unknown) |
//! | 1 | number: with bit 63 set, "taking a number, and the head was at least bits 0..63 before"; else *s* + 1, "holds number *s*" |
//!
//! Entry *s* (sequence number *s*) is at `8192 + (s mod capacity) × 64`:
//! four u64 words, then 32 bytes reserved (0). An entry fills a cache line
//! of its own: consecutive numbers often go to different processes, and two
//! entries on one line would make every writer wait for the line the other
//! just wrote.
//!
//! | word | contents |
//! | --- | --- |
//! | 0 | commit marker: *s* + 1 once the entry is complete; 0 while being written |
//! | 1 | symbol id (bits 0..32), window (32..64) |
//! | 2 | slot kind code (bits 0..8; 255 = no change: a transition that was refused), old status (8..16), new status (16..24), version (32..64) |
//! | 3 | payload id when the new status is Filled, else 0 |
//!
//! The file is allocated in full when it is made (`fallocate`, or zeros
//! written where the file system has no `fallocate`), so no store into its
//! mapping ever needs a block that a full disk cannot give (which would be
//! SIGBUS); a full disk fails the bootstrap that makes it instead.
//!
//! ## Protocol
//!
//! ### Numbers and entries
//!
//! A writer takes its number ([`Journal::reserve`]) after reading the slot's
//! head word and before the slot's compare-and-swap, and a new one if the
//! compare-and-swap fails; it writes the entry after it. So of two
//! transitions of one slot the later one (the higher version) has the higher
//! number: its writer read the head word the earlier one wrote, after that
//! writer had taken its number. A writer that dies between its number and
//! its entry leaves a numbered, uncommitted entry — a gap a reader reports —
//! never a change no entry accounts for; a refused transition commits a
//! no-change entry (kind 255) that readers skip. To write entry *s* the
//! writer stores 0 into the marker, the three data words, then `s + 1` into
//! the marker, then, if anyone sleeps and the `armed` word is set, takes it,
//! bumps the wake word and wakes them (`FUTEX_WAKE`, shared: the word is in a
//! file mapping, so processes that map the file share the futex).
//!
//! A reader of entry *r* loads the marker, the data words, and the marker
//! again: the entry is valid only if both loads saw `r + 1` (a seqlock). A
//! marker past `r + 1`, one that was `r + 1` at the first load and is not at
//! the second, or a head more than `capacity` ahead of *r* (also after
//! reading it: a writer stalled mid-entry for a lap could be rewriting the
//! place), means the ring overtook the reader: a gap. A marker below `r + 1`
//! at the first load, with the head past *r*, is an entry in flight — maybe
//! committed by the second load, then the reader reads it again — or
//! abandoned (next section).
//!
//! ### Writers in flight, and abandoned entries
//!
//! Between taking its number and committing its entry a writer may stop for
//! any length of time (SIGSTOP, a debugger, a frozen cgroup, swapping) or
//! die. Readers tell the two apart by the writer table and the liveness of
//! processes, never by time. A writer:
//!
//! 1. takes a free cell: compare-and-swap (acquire-release) of its owner word
//!    from 0 to its process's identity;
//! 2. stores (release) "taking a number, head ≥ *h*" into the cell's number
//!    word, *h* a load of the head;
//! 3. moves the head (`fetch_add`, sequentially consistent), which gives it
//!    its number *s*;
//! 4. stores (release) *s* + 1 into the number word;
//! 5. makes the slot's compare-and-swap (the controller);
//! 6. writes the entry: marker 0 (release), the data words, marker *s* + 1
//!    (sequentially consistent, for sleepers: see the last section);
//! 7. frees the cell: owner 0 (release).
//!
//! A reader that finds entry *s* uncommitted, having loaded the head past *s*
//! before, loads every cell's owner and number word, then the marker of *s*
//! and the head again (all acquire or stronger). If the marker is now *s* + 1
//! the entry is committed; if the head is more than `capacity` past *s*, the
//! ring overtook it. Otherwise, if some cell whose owner is alive holds *s*,
//! or is taking a number with *h* ≤ *s*, the entry is *in flight*
//! ([`ReadEnd::InFlight`]): wait. If none is, it is *abandoned*
//! ([`ReadEnd::Abandoned`]): the process that took *s* died between steps 3
//! and 6, and whether its slot changed is unknown — a gap of one entry.
//!
//! *A live writer is never taken for a dead one.* Let W be alive and hold
//! *s*, and let the reader's last marker load not see *s* + 1 and its last
//! head load show no lap.
//!
//! * The reader's first head load saw the head past *s*: it read W's
//!   `fetch_add` (3) or a later one. Every change of the head is a
//!   read-modify-write, so all of them continue the release sequence of 3,
//!   and what W did before 3 (steps 1 and 2) happens before the reader's
//!   cell loads: they read W's owner word (1) or a later value, and the
//!   number word of step 2 or a later one.
//! * Every later value of W's owner word is W's free (7), or written by a
//!   writer that took the cell after it with an acquiring compare-and-swap;
//!   every later value of its number word is written after such a take. A
//!   reader that loaded one of them would therefore have synchronized with
//!   7, so W's commit (6), which comes before 7, would happen before its
//!   marker load: that load would see *s* + 1 — or, had the ring come round
//!   since, a later lap's marker store, whose writer moved the head past
//!   *s* + `capacity` before it (its release store of marker 0 makes that
//!   `fetch_add` visible to the head load after), so a lap. Neither
//!   happened.
//! * So the reader saw W's own owner word, and the number word "taking, *h*
//!   ≤ *s*" (step 2; *h* ≤ *s* as W loaded the head before its `fetch_add`
//!   on the same word returned *s*) or *s* + 1 (step 4): a live writer that
//!   may hold *s*. It waits.
//!
//! Conversely an abandoned entry stays abandoned: a dead process does not
//! come back, and nobody else writes entry *s* until the ring comes round,
//! which readers see as a gap.
//!
//! Until a writer stores step 2, a cell it just took still shows its last
//! owner's number word: a reader may then wait for a live writer that cannot
//! hold *s* (it has not moved the head yet, so its number will be past the
//! head the reader saw), which is only a later verdict, never a wrong one.
//!
//! A process is alive when `/proc/<pid>/stat` exists, is not a zombie, and
//! shows the start time recorded in the cell (so a recycled pid is not taken
//! for the writer); when `/proc` does not show the pid (a `hidepid` mount),
//! `kill(pid, 0)` decides, and anything unclear counts as alive. This holds
//! for processes that share one pid namespace. Writers take a cell whose
//! owner died when they find no free one; a bootstrap that finds no other
//! controller open clears the whole table (and the sleepers).
//!
//! ### Epochs
//!
//! Positions of different journal files are told apart by the epoch, a
//! random 64-bit number drawn when the file is made: a reader's position
//! carries the epoch it was read in, and a position of another epoch is a
//! gap ([`GapReason::OtherJournal`]). A journal is made anew when it is
//! missing, when it is of another format version, and when its boot id is
//! not the host's (the machine restarted since it was written, so entries
//! that were never synced may be lost and the head may have gone back);
//! only a bootstrap that finds no other controller open does so.
//!
//! ### Sleeping without lost wake-ups
//!
//! A sleeper increments `sleepers`, sets `armed`, then reads the wake word
//! and re-checks the head and the markers of the entries it waits for before
//! it waits for the word to change; a writer moves the head (its
//! `fetch_add`), and after committing reads `sleepers` — all sequentially
//! consistent — and only if someone sleeps takes `armed` (swap to 0); the
//! one writer that took it bumps the wake word and wakes every sleeper. So
//! either a writer sees the sleeper and wakes it, or the sleeper sees the
//! moved head, the committed entry or the bumped word and does not sleep; a
//! writer pays no futex call while nobody sleeps, and the writers together
//! pay one per sleep, not one per change.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use rustix::thread::futex;

use crate::error::{Error, Result};
use crate::io::{self, Site};
use crate::mapping::{FixedMapping, PAGE};
use crate::slot::{SlotAddr, Transition};
use crate::vocab::{SlotKind, SlotStatus};

mod follow;
#[cfg(test)]
mod order_tests;
#[cfg(test)]
mod tests;
mod writers;

pub use follow::{Follower, Look};
use writers::Claimants;

/// The kind byte of an entry that records no change.
const NO_CHANGE_KIND: u64 = 0xff;

/// File name of the journal in the state directory.
pub const JOURNAL_FILE: &str = "changes.journal";
const MAGIC: [u8; 8] = *b"\x89WSJRN\r\n";
/// The format version this library writes and reads.
pub const FORMAT_VERSION: u32 = 3;
const ENTRY_BYTES: u64 = 64;
/// Entries of a journal created without an explicit capacity (4 MiB of entries).
pub const DEFAULT_CAPACITY: u64 = 1 << 16;
pub const MIN_CAPACITY: u64 = 64;
pub const MAX_CAPACITY: u64 = 1 << 24;

const OFF_VERSION: usize = 8;
const OFF_ENTRY_BYTES: usize = 12;
const OFF_CAPACITY: usize = 16;
const OFF_CREATED: usize = 24;
const OFF_EPOCH: usize = 32;
const OFF_BOOT_ID: usize = 40;
const OFF_CHECKSUM: usize = 56;
const OFF_HEAD: usize = 256;
const OFF_WAKE: usize = 320;
const OFF_SLEEPERS: usize = 324;
const OFF_ARMED: usize = 328;
/// The writer table: [`writers::CELLS`] cells of [`writers::CELL_BYTES`].
const OFF_WRITERS: u64 = PAGE;
/// The first entry.
const OFF_ENTRIES: u64 = OFF_WRITERS + writers::CELLS as u64 * writers::CELL_BYTES;

/// Bytes of a journal file of `capacity` entries.
pub fn file_bytes(capacity: u64) -> u64 {
    OFF_ENTRIES + capacity * ENTRY_BYTES
}

/// One slot change as the journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub seq: u64,
    pub symbol: u32,
    pub window_idx: u32,
    pub kind: SlotKind,
    pub from: SlotStatus,
    pub to: SlotStatus,
    pub version: u32,
    /// The payload id when `to` is Filled, else 0.
    pub payload_id: u64,
}

/// Where a read that returned entries stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    /// At the head, or after as many changes as asked for.
    Read,
    /// At entry `next`, numbered by a writer that is alive and has not
    /// committed it yet (it may be stopped): read again when woken.
    InFlight,
    /// At entry `next`, whose writer died between taking its number and
    /// committing it: whether its slot changed is unknown. A gap of that one
    /// entry; entries from `next + 1` on can be read.
    Abandoned,
}

/// Why a reader cannot go on from its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapReason {
    /// The ring overtook the position: those entries are gone.
    Overtaken,
    /// The position is in another journal (another epoch): one since made
    /// anew, or one from before the host restarted.
    OtherJournal,
    /// The position is past the head: a number this journal never handed out.
    Ahead,
    /// A committed entry that cannot be decoded.
    Damaged,
}

/// What a read from a position found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalRead {
    /// The changes from the position on, in order (no-change entries left
    /// out), the sequence number to read from next, and why the read stopped.
    Entries { changes: Vec<Change>, next: u64, end: ReadEnd },
    /// Entries from the position on cannot all be read. Changes from
    /// `resume_at` on can; rescan the ledger first.
    Gap { resume_at: u64, reason: GapReason },
}

/// What a journal's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub capacity: u64,
    pub created_at_ns: u64,
    pub epoch: u64,
    pub boot_id: [u8; 16],
}

fn encode_header(h: &Header) -> [u8; PAGE as usize] {
    let mut b = [0u8; PAGE as usize];
    b[0..8].copy_from_slice(&MAGIC);
    b[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[OFF_ENTRY_BYTES..OFF_ENTRY_BYTES + 4].copy_from_slice(&(ENTRY_BYTES as u32).to_le_bytes());
    b[OFF_CAPACITY..OFF_CAPACITY + 8].copy_from_slice(&h.capacity.to_le_bytes());
    b[OFF_CREATED..OFF_CREATED + 8].copy_from_slice(&h.created_at_ns.to_le_bytes());
    b[OFF_EPOCH..OFF_EPOCH + 8].copy_from_slice(&h.epoch.to_le_bytes());
    b[OFF_BOOT_ID..OFF_BOOT_ID + 16].copy_from_slice(&h.boot_id);
    let sum = xxhash_rust::xxh3::xxh3_64(&b[..OFF_CHECKSUM]);
    b[OFF_CHECKSUM..OFF_CHECKSUM + 8].copy_from_slice(&sum.to_le_bytes());
    b
}

/// The format version of a journal header, after checking its length and
/// magic number (what a bootstrap needs to decide whether to make it anew).
fn header_version(path: &Path, h: &[u8]) -> Result<u32> {
    if h.len() < PAGE as usize {
        return Err(Error::corrupt(path, Some(h.len() as u64), "file is shorter than its 4096-byte header"));
    }
    if h[0..8] != MAGIC {
        return Err(Error::corrupt(path, Some(0), "wrong magic number: not a window-space change journal"));
    }
    Ok(u32::from_le_bytes([h[OFF_VERSION], h[OFF_VERSION + 1], h[OFF_VERSION + 2], h[OFF_VERSION + 3]]))
}

/// Validates a journal header.
pub fn decode_header(path: &Path, h: &[u8]) -> Result<Header> {
    let version = header_version(path, h)?;
    if version != FORMAT_VERSION {
        return Err(Error::unsupported_version(path, OFF_VERSION as u64, version, FORMAT_VERSION));
    }
    let u32_at = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().unwrap_or([0; 8]));
    if u64_at(OFF_CHECKSUM) != xxhash_rust::xxh3::xxh3_64(&h[..OFF_CHECKSUM]) {
        return Err(Error::corrupt(path, Some(OFF_CHECKSUM as u64), "header checksum mismatch"));
    }
    let capacity = u64_at(OFF_CAPACITY);
    if u64::from(u32_at(OFF_ENTRY_BYTES)) != ENTRY_BYTES
        || !capacity.is_power_of_two()
        || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity)
    {
        return Err(Error::corrupt(path, Some(OFF_ENTRY_BYTES as u64), "journal geometry is not one this library writes"));
    }
    let epoch = u64_at(OFF_EPOCH);
    if epoch == 0 {
        return Err(Error::corrupt(path, Some(OFF_EPOCH as u64), "journal epoch is 0"));
    }
    let mut boot_id = [0u8; 16];
    boot_id.copy_from_slice(&h[OFF_BOOT_ID..OFF_BOOT_ID + 16]);
    Ok(Header { capacity, created_at_ns: u64_at(OFF_CREATED), epoch, boot_id })
}

/// The host's boot id (16 bytes), or zeros where the kernel does not say.
pub fn boot_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    let Ok(text) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") else { return id };
    let hex: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    if hex.len() != 32 {
        return id;
    }
    for (i, pair) in hex.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        id[i] = digit(pair[0]) << 4 | digit(pair[1]);
    }
    id
}

/// A random epoch for a new journal file, never 0.
fn new_epoch() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState draws its keys from the operating system's random source.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.write_u32(std::process::id());
    h.finish().max(1)
}

/// A sequence number taken for a transition about to be tried (see the
/// module's Protocol). Dropped without [`commit`](Reservation::commit), it
/// writes a no-change entry, so only a dead process leaves its number unused.
pub struct Reservation<'a> {
    journal: &'a Journal,
    seq: u64,
    cell: usize,
    done: bool,
}

impl Reservation<'_> {
    /// Writes the change this number was taken for (`payload_id` when it
    /// filled the slot, else 0), wakes sleepers and frees the writer's cell.
    pub fn commit(mut self, at: SlotAddr, t: Transition, payload_id: u64) {
        failpoint!("journal::changed");
        self.done = true;
        let w1 = u64::from(at.symbol) | (u64::from(at.window) << 32);
        let w2 = u64::from(at.kind.code()) | (u64::from(t.from as u8) << 8) | (u64::from(t.to as u8) << 16) | (u64::from(t.version) << 32);
        self.journal.write_entry(self.seq, w1, w2, payload_id, true);
        failpoint!("journal::committed");
        self.journal.free_cell(self.cell);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.journal.write_entry(self.seq, 0, NO_CHANGE_KIND, 0, false);
            failpoint!("journal::committed");
            self.journal.free_cell(self.cell);
        }
    }
}

/// An open change journal.
pub struct Journal {
    map: FixedMapping,
    header: Header,
}

/// The state of one numbered entry, as a reader judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Committed,
    InFlight,
    Abandoned,
    Overtaken,
}

impl Journal {
    /// Creates a journal file with a new epoch, every block allocated (the
    /// caller holds the state-directory gate). It is written to a temporary
    /// file and renamed into place, so a failure (a full disk) leaves
    /// whatever was at `path` as it was.
    pub fn create(path: &Path, capacity: u64, created_at_ns: u64) -> Result<()> {
        if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(Error::invalid(format!(
                "journal capacity must be a power of two from {MIN_CAPACITY} to {MAX_CAPACITY}, got {capacity}"
            )));
        }
        let header = Header { capacity, created_at_ns, epoch: new_epoch(), boot_id: boot_id() };
        let tmp = path.with_extension("journal.tmp");
        let made = (|| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(|e| Error::io("create", &tmp, e))?;
            // Every block, so that no store into the mapping can meet a full disk.
            io::extend(Site::JournalCreateExtend, &file, &tmp, 0, file_bytes(capacity))?;
            io::write_at(Site::JournalCreateWrite, &file, &tmp, &encode_header(&header), 0)?;
            io::sync_all(Site::JournalCreateSync, &file, &tmp)?;
            std::fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))
        })();
        if made.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        made?;
        io::sync_dir(Site::JournalCreateDir, path.parent().unwrap_or_else(|| Path::new(".")))
    }

    /// Opens and validates a journal; writes nothing.
    pub fn open(path: &Path) -> Result<Self> {
        let file: File = OpenOptions::new().read(true).write(true).open(path).map_err(|e| Error::io("open", path, e))?;
        let len = file.metadata().map_err(|e| Error::io("fstat", path, e))?.len();
        let mut h = vec![0u8; PAGE as usize];
        if len < PAGE {
            return Err(Error::corrupt(path, Some(len), "file is shorter than its 4096-byte header"));
        }
        file.read_exact_at(&mut h, 0).map_err(|e| Error::io("read", path, e))?;
        let header = decode_header(path, &h)?;
        let want = file_bytes(header.capacity);
        if len != want {
            return Err(Error::corrupt(
                path,
                Some(len),
                format!("file is {len} bytes; a journal of {} entries is {want}", header.capacity),
            ));
        }
        let map = FixedMapping::new(&file, path, want)?;
        Ok(Self { map, header })
    }

    /// Opens the journal a bootstrap found at `path`, or returns `None` when
    /// it must be made anew: it is of another format version, or was made
    /// before the host last started. Only a bootstrap that is `alone` makes
    /// it anew; with other controllers open (they write to the file they have
    /// mapped) such a journal is an error that says to close them. Writes
    /// nothing either way.
    pub fn open_in_bootstrap(path: &Path, alone: bool) -> Result<Option<Self>> {
        let mut h = Vec::with_capacity(PAGE as usize);
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        std::io::Read::read_to_end(&mut std::io::Read::take(&file, PAGE), &mut h).map_err(|e| Error::io("read", path, e))?;
        let version = header_version(path, &h)?;
        // Versions this library knows to exist: 1 and 2, made by older libraries, and newer ones.
        if version != FORMAT_VERSION && (version == 1 || version == 2 || version > FORMAT_VERSION) {
            if alone {
                return Ok(None);
            }
            if version < FORMAT_VERSION {
                return Err(Error::corrupt(
                    path,
                    Some(OFF_VERSION as u64),
                    format!(
                        "the change journal is of format version {version} and controllers of an older window-space have it open; \
                         close them, and the next bootstrap makes it anew in version {FORMAT_VERSION}"
                    ),
                ));
            }
        }
        let journal = Self::open(path)?;
        let host = boot_id();
        if alone && host != [0; 16] && journal.header.boot_id != host {
            return Ok(None);
        }
        Ok(Some(journal))
    }

    pub fn capacity(&self) -> u64 {
        self.header.capacity
    }

    /// The epoch of this journal file (random, never 0).
    pub fn epoch(&self) -> u64 {
        self.header.epoch
    }

    /// The header as the file says.
    pub fn header(&self) -> Header {
        self.header
    }

    fn word(&self, off: usize) -> &AtomicU64 {
        // Offsets are the constants above, cells of the writer table, or entry
        // offsets below `file_bytes(capacity)`, the length `open` checked; a
        // miss would be a bug in this module.
        self.map.u64_at(off).unwrap_or_else(|| unreachable!("journal word {off} outside the mapping"))
    }

    fn word32(&self, off: usize) -> &AtomicU32 {
        self.map.u32_at(off).unwrap_or_else(|| unreachable!("journal word {off} outside the mapping"))
    }

    fn entry(&self, seq: u64) -> [&AtomicU64; 4] {
        let base = (OFF_ENTRIES + (seq & (self.header.capacity - 1)) * ENTRY_BYTES) as usize;
        [self.word(base), self.word(base + 8), self.word(base + 16), self.word(base + 24)]
    }

    fn marker(&self, seq: u64) -> &AtomicU64 {
        self.entry(seq)[0]
    }

    /// The next sequence number to be handed out (= number of changes ever journaled).
    pub fn head(&self) -> u64 {
        self.word(OFF_HEAD).load(Ordering::SeqCst)
    }

    /// Where a watch of changes "from now" starts: the head, or, when a
    /// live writer may hold an earlier number whose entry is not committed
    /// (it took the number, and may not have made its change yet), that
    /// number: its entry will land there, below the head, where a watch from
    /// the head would never look. A writer still taking its number may get
    /// any number from the head its cell recorded on. Numbers lapped by the
    /// ring are left out (their places hold newer entries). A watch from
    /// here may also deliver changes committed after that number and before
    /// now, and waits, in journal order, for the writer it starts at.
    pub fn watch_start(&self) -> u64 {
        // The head before the cells: a writer whose number is below it shows
        // it in its cell (or the head it took it from), unless it has
        // committed already (see `journal/follow.rs`).
        let head = self.head();
        let oldest = head.saturating_sub(self.header.capacity);
        let claimants = self.claimants();
        let mut start = head;
        for &(owner, number) in claimants.cells() {
            let from = match (writers::held_number(number), writers::taking_head(number)) {
                // A number word left by the cell's previous writer names a
                // committed entry, as does one of a writer past its commit.
                (Some(s), _) if self.committed(s) => continue,
                (Some(s), _) => s,
                (None, Some(h)) => h,
                (None, None) => continue,
            };
            if from < start && claimants.alive(owner) {
                start = from.max(oldest);
            }
        }
        start
    }

    /// The current value of the wake word (to sleep on with [`wait`](Self::wait)).
    pub fn wake_word(&self) -> u32 {
        self.word32(OFF_WAKE).load(Ordering::SeqCst)
    }

    /// Journals one change at once (tests; the controller reserves the number
    /// before its compare-and-swap and commits after).
    #[cfg(test)]
    fn record(&self, at: SlotAddr, from: SlotStatus, to: SlotStatus, version: u32, payload_id: u64) {
        self.reserve().commit(at, Transition { from, to, version }, payload_id);
    }

    /// Takes the next sequence number for a transition about to be tried
    /// (steps 1 to 4 of the module's Protocol). Commit it with the change, or
    /// drop it (a no-change entry is written).
    pub fn reserve(&self) -> Reservation<'_> {
        let cell = self.take_cell();
        failpoint!("journal::cell-taken");
        let seq = self.word(OFF_HEAD).fetch_add(1, Ordering::SeqCst);
        failpoint!("journal::numbered");
        self.publish_number(cell, seq);
        failpoint!("journal::reserved");
        Reservation { journal: self, seq, cell, done: false }
    }

    fn write_entry(&self, seq: u64, w1v: u64, w2v: u64, w3v: u64, wake: bool) {
        let [marker, w1, w2, w3] = self.entry(seq);
        marker.store(0, Ordering::Release);
        fence(Ordering::Release);
        w1.store(w1v, Ordering::Relaxed);
        w2.store(w2v, Ordering::Relaxed);
        w3.store(w3v, Ordering::Relaxed);
        // Sequentially consistent: a sleeper that waits for this entry loads
        // the marker after registering (see `wait`), this writer loads
        // `sleepers` after the store.
        marker.store(seq + 1, Ordering::SeqCst);
        if !wake {
            return;
        }
        // Only a sleeper needs the wake word bumped: one that registered
        // after this load sees the head or the marker we moved (see `wait`)
        // and does not sleep.
        if self.word32(OFF_SLEEPERS).load(Ordering::SeqCst) > 0 && self.word32(OFF_ARMED).swap(0, Ordering::SeqCst) == 1 {
            let wake = self.word32(OFF_WAKE);
            wake.fetch_add(1, Ordering::SeqCst);
            let _ = futex::wake(wake, futex::Flags::empty(), u32::MAX);
        }
    }

    /// Whether entry `seq` is committed (a single marker load).
    fn committed(&self, seq: u64) -> bool {
        self.marker(seq).load(Ordering::SeqCst) == seq + 1
    }

    /// Judges uncommitted entry `seq`, whose number the caller saw handed
    /// out (a head load past `seq`) before `claimants` were loaded.
    fn judge(&self, seq: u64, claimants: &Claimants) -> Verdict {
        let m = self.marker(seq).load(Ordering::SeqCst);
        if m == seq + 1 {
            return Verdict::Committed;
        }
        if m > seq + 1 || self.head() > seq.saturating_add(self.header.capacity) {
            return Verdict::Overtaken;
        }
        if claimants.may_hold(seq) {
            Verdict::InFlight
        } else {
            Verdict::Abandoned
        }
    }

    /// Reads up to `max` changes from position (`epoch`, `from`) on.
    pub fn read(&self, epoch: u64, from: u64, max: usize) -> JournalRead {
        let head = self.head();
        if epoch != self.header.epoch {
            return JournalRead::Gap { resume_at: head, reason: GapReason::OtherJournal };
        }
        if head > from.saturating_add(self.header.capacity) {
            return JournalRead::Gap { resume_at: head - self.header.capacity, reason: GapReason::Overtaken };
        }
        if from > head {
            return JournalRead::Gap { resume_at: head, reason: GapReason::Ahead };
        }
        let overtaken = |r: u64| {
            let head = self.head();
            JournalRead::Gap { resume_at: head.saturating_sub(self.header.capacity).max(r + 1), reason: GapReason::Overtaken }
        };
        let mut claimants: Option<Claimants> = None;
        let mut changes = Vec::new();
        let mut r = from;
        while r < head && changes.len() < max {
            let [marker, w1, w2, w3] = self.entry(r);
            let m1 = marker.load(Ordering::SeqCst);
            let (a, b, c) = (w1.load(Ordering::Relaxed), w2.load(Ordering::Relaxed), w3.load(Ordering::Relaxed));
            fence(Ordering::Acquire);
            let m2 = marker.load(Ordering::Relaxed);
            // A writer of a later lap may be writing this place too (one that
            // stalled mid-entry for a whole lap): then the data words may mix
            // two entries even though both marker loads agree.
            let lapped = self.head() > r + self.header.capacity;
            if m1 > r + 1 || lapped {
                return overtaken(r);
            }
            if m1 < r + 1 {
                let c = claimants.get_or_insert_with(|| self.claimants());
                match self.judge(r, c) {
                    Verdict::Committed => continue, // committed meanwhile: read it again
                    Verdict::Overtaken => return overtaken(r),
                    Verdict::InFlight => return JournalRead::Entries { changes, next: r, end: ReadEnd::InFlight },
                    Verdict::Abandoned => return JournalRead::Entries { changes, next: r, end: ReadEnd::Abandoned },
                }
            }
            if m2 != m1 {
                // Committed at the first load, rewritten by a later lap by the second.
                return overtaken(r);
            }
            if b & 0xff == NO_CHANGE_KIND {
                r += 1;
                continue;
            }
            let decoded = SlotKind::from_code((b & 0xff) as u32)
                .zip(SlotStatus::from_u8(((b >> 8) & 0xff) as u8))
                .zip(SlotStatus::from_u8(((b >> 16) & 0xff) as u8));
            let Some(((kind, from_status), to_status)) = decoded else {
                // A committed entry we cannot decode: damage. Callers must rescan.
                return JournalRead::Gap { resume_at: r + 1, reason: GapReason::Damaged };
            };
            changes.push(Change {
                seq: r,
                symbol: a as u32,
                window_idx: (a >> 32) as u32,
                kind,
                from: from_status,
                to: to_status,
                version: (b >> 32) as u32,
                payload_id: c,
            });
            r += 1;
        }
        JournalRead::Entries { changes, next: r, end: ReadEnd::Read }
    }

    /// Sleeps until the wake word differs from `seen` or `timeout` passes,
    /// unless the head already moved past `after_seq` or one of the entries
    /// `in_flight` is committed. Returns at once on a wake-up that raced with
    /// the call; callers look at the journal again after.
    pub fn wait(&self, seen: u32, after_seq: u64, in_flight: &[u64], timeout: Duration) {
        let sleepers = self.word32(OFF_SLEEPERS);
        sleepers.fetch_add(1, Ordering::SeqCst);
        self.word32(OFF_ARMED).store(1, Ordering::SeqCst);
        if self.word32(OFF_WAKE).load(Ordering::SeqCst) == seen && self.head() <= after_seq && !in_flight.iter().any(|&s| self.committed(s))
        {
            let ts = rustix::time::Timespec { tv_sec: timeout.as_secs() as i64, tv_nsec: i64::from(timeout.subsec_nanos()) };
            let _ = futex::wait(self.word32(OFF_WAKE), futex::Flags::empty(), seen, Some(&ts));
        }
        sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Zeroes the sleeper count, the armed word and the writer table, which
    /// processes killed while asleep or mid-transition leave set. Only for a
    /// bootstrap that knows no other controller is open.
    pub fn reset_shared_state(&self) {
        self.word32(OFF_SLEEPERS).store(0, Ordering::SeqCst);
        self.word32(OFF_ARMED).store(0, Ordering::SeqCst);
        self.clear_writer_table();
    }

    /// Wakes every sleeper on the wake word (for shutting a watcher down).
    pub fn wake_all(&self) {
        let wake = self.word32(OFF_WAKE);
        wake.fetch_add(1, Ordering::SeqCst);
        let _ = futex::wake(wake, futex::Flags::empty(), u32::MAX);
    }
}
