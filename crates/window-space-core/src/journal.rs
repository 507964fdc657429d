//! The change journal (`changes.journal`): a bounded ring of slot changes that
//! every process writes after each transition and any process can read, plus
//! the shared words that wake waiters across processes (futex).
//!
//! It is what `waitFor` and `watch` stand on: a reader keeps a sequence
//! number, reads the entries after it, and sleeps on the wake word when there
//! are none. The journal is *derived*, for notification only: it is not
//! synced, and a reader that cannot prove it saw every change since its
//! sequence number gets [`JournalRead::Gap`] and must rescan the ledger.
//!
//! ## Format (version 1, little-endian)
//!
//! Header page, bytes 0..4096:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `89 57 53 4A 52 4E 0D 0A` (`\x89WSJRN\r\n`) |
//! | 8 | 4 | format version = 1 |
//! | 12 | 4 | entry bytes = 32 |
//! | 16 | 8 | capacity in entries (a power of two, 64 ..= 2^24) |
//! | 24 | 8 | created at, ns since epoch |
//! | 32 | 24 | reserved 0 |
//! | 56 | 8 | xxh3-64 of bytes 0..56 |
//! | 256 | 8 | *shared:* head = the next sequence number to hand out |
//! | 320 | 4 | *shared:* wake word (futex), bumped when a writer wakes sleepers |
//! | 324 | 4 | *shared:* sleepers = readers asleep on the wake word |
//! | 328 | 4 | *shared:* armed = 1 when a sleeper is owed a wake-up no writer has sent yet |
//!
//! Entry *s* (sequence number *s*) is at `4096 + (s mod capacity) × 32`,
//! four u64 words:
//!
//! | word | contents |
//! | --- | --- |
//! | 0 | commit marker: *s* + 1 once the entry is complete; 0 while being written |
//! | 1 | symbol id (bits 0..32), window (32..64) |
//! | 2 | slot kind code (bits 0..8; 255 = no change: a transition that was refused or abandoned), old status (8..16), new status (16..24), version (32..64) |
//! | 3 | payload id when the new status is Filled, else 0 |
//!
//! The file is allocated in full when it is made (`fallocate`, or zeros
//! written where the file system has no `fallocate`), so no store into its
//! mapping ever needs a block that a full disk cannot give (which would be
//! SIGBUS); a full disk fails the bootstrap that makes it instead.
//!
//! ## Protocol
//!
//! A writer takes its number *before* the slot's compare-and-swap
//! ([`Journal::reserve`]) and writes the entry after it, so a writer that dies
//! between the two leaves a numbered, uncommitted entry — a gap a reader
//! reports — never a change no entry accounts for; a refused transition
//! commits a no-change entry (kind 255) that readers skip. To write entry *s*
//! it stores 0 into the marker, the three
//! data words, then `s + 1` into the marker (release), then, if anyone sleeps
//! and the `armed` word is set, takes it, bumps the wake word and wakes them
//! (`FUTEX_WAKE`, shared: the word is in a file mapping, so processes that
//! map the file share the futex). A reader also treats an entry as lost when
//! the head has run a whole lap past it while it read (a writer that stalled
//! mid-entry for a lap could be writing the same place).
//! A reader of entry *r* loads the marker (acquire), the data words, and the
//! marker again: the entry is valid only if both loads saw `r + 1` (a seqlock).
//! A marker past `r + 1`, or a head more than `capacity` ahead of *r*, means
//! the ring overtook the reader: a gap. A marker below `r + 1` with the head
//! past *r* is an entry still being written — or abandoned by a writer that
//! died between taking the number and committing; the caller decides when
//! that has lasted long enough to call it a gap.
//!
//! Sleeping without lost wake-ups: a sleeper increments `sleepers`, sets
//! `armed`, then reads the wake word and re-checks the head before it waits
//! for the word to change; a writer moves the head (its `fetch_add`), and
//! after committing reads `sleepers` — all sequentially consistent — and only
//! if someone sleeps takes `armed` (swap to 0); the one writer that took it
//! bumps the wake word and wakes every sleeper. So either a writer sees the
//! sleeper and wakes it, or the sleeper sees the moved head (or the bumped
//! word) and does not sleep; a writer pays no futex call while nobody
//! sleeps, and the writers together pay one per sleep, not one per change.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use rustix::thread::futex;

use crate::error::{Error, Result};
use crate::mapping::{FixedMapping, PAGE};
use crate::slot::{SlotAddr, Transition};
use crate::vocab::{SlotKind, SlotStatus};

pub mod hooks;
#[cfg(test)]
mod order_tests;
use hooks::Step;

/// The kind byte of an entry that records no change.
const NO_CHANGE_KIND: u64 = 0xff;

/// A sequence number taken for a transition about to be tried (see the
/// module's Protocol). Dropped without [`commit`](Reservation::commit), it
/// writes a no-change entry, so only a dead process leaves its number unused.
pub struct Reservation<'a> {
    journal: &'a Journal,
    seq: u64,
    done: bool,
}

impl Reservation<'_> {
    /// Writes the change this number was taken for (`payload_id` when it
    /// filled the slot, else 0), and wakes sleepers.
    pub fn commit(mut self, at: SlotAddr, t: Transition, payload_id: u64) {
        hooks::at(Step::Changed);
        self.done = true;
        let w1 = u64::from(at.symbol) | (u64::from(at.window) << 32);
        let w2 = u64::from(at.kind.code()) | (u64::from(t.from as u8) << 8) | (u64::from(t.to as u8) << 16) | (u64::from(t.version) << 32);
        self.journal.write_entry(self.seq, w1, w2, payload_id, true);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.journal.write_entry(self.seq, 0, NO_CHANGE_KIND, 0, false);
        }
    }
}

/// File name of the journal in the state directory.
pub const JOURNAL_FILE: &str = "changes.journal";
const MAGIC: [u8; 8] = *b"\x89WSJRN\r\n";
const FORMAT_VERSION: u32 = 1;
const ENTRY_BYTES: u64 = 32;
/// Entries of a journal created without an explicit capacity (2 MiB of entries).
pub const DEFAULT_CAPACITY: u64 = 1 << 16;
pub const MIN_CAPACITY: u64 = 64;
pub const MAX_CAPACITY: u64 = 1 << 24;

const OFF_VERSION: usize = 8;
const OFF_ENTRY_BYTES: usize = 12;
const OFF_CAPACITY: usize = 16;
const OFF_CREATED: usize = 24;
const OFF_CHECKSUM: usize = 56;
const OFF_HEAD: usize = 256;
const OFF_WAKE: usize = 320;
const OFF_SLEEPERS: usize = 324;
const OFF_ARMED: usize = 328;

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

/// What a read from sequence number `from` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalRead {
    /// The entries from `from` on, in order, up to the first one not yet
    /// committed (or the end, or the read limit). `pending` is true when the
    /// read stopped at an entry that has a number but no commit yet.
    Entries { changes: Vec<Change>, next: u64, pending: bool },
    /// The ring overtook the reader: entries from `from` are gone. Changes
    /// from `resume_at` on can still be read; rescan the ledger first.
    Gap { resume_at: u64 },
}

fn encode_header(capacity: u64, created_at_ns: u64) -> [u8; PAGE as usize] {
    let mut h = [0u8; PAGE as usize];
    h[0..8].copy_from_slice(&MAGIC);
    h[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[OFF_ENTRY_BYTES..OFF_ENTRY_BYTES + 4].copy_from_slice(&(ENTRY_BYTES as u32).to_le_bytes());
    h[OFF_CAPACITY..OFF_CAPACITY + 8].copy_from_slice(&capacity.to_le_bytes());
    h[OFF_CREATED..OFF_CREATED + 8].copy_from_slice(&created_at_ns.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&h[..OFF_CHECKSUM]);
    h[OFF_CHECKSUM..OFF_CHECKSUM + 8].copy_from_slice(&sum.to_le_bytes());
    h
}

/// Validates a journal header; returns the capacity.
pub fn decode_header(path: &Path, h: &[u8]) -> Result<u64> {
    if h.len() < PAGE as usize {
        return Err(Error::corrupt(path, Some(h.len() as u64), "file is shorter than its 4096-byte header"));
    }
    if h[0..8] != MAGIC {
        return Err(Error::corrupt(path, Some(0), "wrong magic number: not a window-space change journal"));
    }
    let u32_at = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().unwrap_or([0; 8]));
    let version = u32_at(OFF_VERSION);
    if version != FORMAT_VERSION {
        return Err(Error::unsupported_version(path, OFF_VERSION as u64, version, FORMAT_VERSION));
    }
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
    Ok(capacity)
}

/// Gives `file` every block of its first `len` bytes.
fn allocate(file: &File, path: &Path, len: u64) -> Result<()> {
    use rustix::fs::{fallocate, FallocateFlags};
    match fallocate(file, FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::OPNOTSUPP => {
            // File systems without fallocate: write zeros so blocks exist.
            let zeros = vec![0u8; 1 << 20];
            let mut at = 0;
            while at < len {
                let n = ((len - at) as usize).min(zeros.len());
                file.write_all_at(&zeros[..n], at).map_err(|e| Error::io("write", path, e))?;
                at += n as u64;
            }
            Ok(())
        }
        Err(e) => Err(Error::io("fallocate", path, e.into())),
    }
}

/// An open change journal.
pub struct Journal {
    map: FixedMapping,
    capacity: u64,
}

impl Journal {
    /// Creates a journal file, every block allocated (the caller holds the
    /// state-directory gate). It is written to a temporary file and renamed
    /// into place, so a failure (a full disk) leaves whatever was at `path`
    /// as it was.
    pub fn create(path: &Path, capacity: u64, created_at_ns: u64) -> Result<()> {
        if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(Error::invalid(format!(
                "journal capacity must be a power of two from {MIN_CAPACITY} to {MAX_CAPACITY}, got {capacity}"
            )));
        }
        let tmp = path.with_extension("journal.tmp");
        let made = (|| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(|e| Error::io("create", &tmp, e))?;
            allocate(&file, &tmp, PAGE + capacity * ENTRY_BYTES)?;
            file.write_all_at(&encode_header(capacity, created_at_ns), 0).map_err(|e| Error::io("write", &tmp, e))?;
            file.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
            std::fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))
        })();
        if made.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        made?;
        crate::fsutil::sync_dir(path.parent().unwrap_or(Path::new(".")))
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
        let capacity = decode_header(path, &h)?;
        let want = PAGE + capacity * ENTRY_BYTES;
        if len != want {
            return Err(Error::corrupt(path, Some(len), format!("file is {len} bytes; a journal of {capacity} entries is {want}")));
        }
        let map = FixedMapping::new(&file, path, want)?;
        Ok(Self { map, capacity })
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    fn word(&self, off: usize) -> &AtomicU64 {
        // Offsets are the constants above or entry offsets below `4096 + capacity × 32`,
        // the length `open` checked; a miss would be a bug in this module.
        self.map.u64_at(off).unwrap_or_else(|| unreachable!("journal word {off} outside the mapping"))
    }

    fn word32(&self, off: usize) -> &AtomicU32 {
        self.map.u32_at(off).unwrap_or_else(|| unreachable!("journal word {off} outside the mapping"))
    }

    fn entry(&self, seq: u64) -> [&AtomicU64; 4] {
        let base = (PAGE + (seq & (self.capacity - 1)) * ENTRY_BYTES) as usize;
        [self.word(base), self.word(base + 8), self.word(base + 16), self.word(base + 24)]
    }

    /// The next sequence number to be handed out (= number of changes ever journaled).
    pub fn head(&self) -> u64 {
        self.word(OFF_HEAD).load(Ordering::Acquire)
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

    /// Takes the next sequence number for a transition about to be tried.
    /// Commit it with the change, or drop it (a no-change entry is written).
    pub fn reserve(&self) -> Reservation<'_> {
        let seq = self.word(OFF_HEAD).fetch_add(1, Ordering::SeqCst);
        hooks::at(Step::Numbered);
        hooks::at(Step::Reserved);
        Reservation { journal: self, seq, done: false }
    }

    fn write_entry(&self, seq: u64, w1v: u64, w2v: u64, w3v: u64, wake: bool) {
        let [marker, w1, w2, w3] = self.entry(seq);
        marker.store(0, Ordering::Relaxed);
        fence(Ordering::Release);
        w1.store(w1v, Ordering::Relaxed);
        w2.store(w2v, Ordering::Relaxed);
        w3.store(w3v, Ordering::Relaxed);
        marker.store(seq + 1, Ordering::Release);
        hooks::at(Step::Committed);
        if !wake {
            return;
        }
        // Only a sleeper needs the wake word bumped: one that registered
        // after this load sees the head we moved (see `wait`) and does not sleep.
        if self.word32(OFF_SLEEPERS).load(Ordering::SeqCst) > 0 && self.word32(OFF_ARMED).swap(0, Ordering::SeqCst) == 1 {
            let wake = self.word32(OFF_WAKE);
            wake.fetch_add(1, Ordering::SeqCst);
            let _ = futex::wake(wake, futex::Flags::empty(), u32::MAX);
        }
    }

    /// Reads up to `max` committed entries from sequence number `from` on.
    pub fn read(&self, from: u64, max: usize) -> JournalRead {
        let head = self.head();
        if head > from.saturating_add(self.capacity) {
            return JournalRead::Gap { resume_at: head - self.capacity };
        }
        if from > head {
            // A sequence number this journal never handed out: one saved from a
            // journal that was since recreated. Nothing can be vouched for.
            return JournalRead::Gap { resume_at: head };
        }
        let mut changes = Vec::new();
        let mut r = from;
        while r < head && changes.len() < max {
            let [marker, w1, w2, w3] = self.entry(r);
            let m1 = marker.load(Ordering::Acquire);
            let (a, b, c) = (w1.load(Ordering::Relaxed), w2.load(Ordering::Relaxed), w3.load(Ordering::Relaxed));
            fence(Ordering::Acquire);
            let m2 = marker.load(Ordering::Relaxed);
            // A writer of a later lap may be writing this place too (one that
            // stalled mid-entry for a whole lap): then the data words may mix
            // two entries even though both marker loads agree.
            let lapped = self.word(OFF_HEAD).load(Ordering::Acquire) > r + self.capacity;
            if m1 != m2 || m1 > r + 1 || lapped {
                // Overwritten by a later lap while (or before) we read it.
                let head = self.head();
                return JournalRead::Gap { resume_at: head.saturating_sub(self.capacity).max(r + 1) };
            }
            if m1 < r + 1 {
                return JournalRead::Entries { changes, next: r, pending: true };
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
                return JournalRead::Gap { resume_at: r + 1 };
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
        JournalRead::Entries { changes, next: r, pending: false }
    }

    /// Sleeps until the wake word differs from `seen` or `timeout` passes,
    /// unless the head already moved past `after_seq`. Returns at once on a
    /// wake-up that raced with the call; callers re-read the journal after.
    pub fn wait(&self, seen: u32, after_seq: u64, timeout: Duration) {
        let sleepers = self.word32(OFF_SLEEPERS);
        sleepers.fetch_add(1, Ordering::SeqCst);
        self.word32(OFF_ARMED).store(1, Ordering::SeqCst);
        if self.word32(OFF_WAKE).load(Ordering::SeqCst) == seen && self.word(OFF_HEAD).load(Ordering::SeqCst) <= after_seq {
            let ts = rustix::time::Timespec { tv_sec: timeout.as_secs() as i64, tv_nsec: i64::from(timeout.subsec_nanos()) };
            let _ = futex::wait(self.word32(OFF_WAKE), futex::Flags::empty(), seen, Some(&ts));
        }
        sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// The first sequence number in `from..head` whose entry is not committed
    /// yet (a writer between its number and its entry, or one that died
    /// there), or `head` when every one is.
    pub fn first_uncommitted(&self, from: u64, head: u64) -> u64 {
        let mut r = from.max(head.saturating_sub(self.capacity));
        while r < head && self.entry(r)[0].load(Ordering::Acquire) > r {
            r += 1;
        }
        r
    }

    /// Zeroes the sleeper count and the armed word, which processes killed
    /// while asleep leave set (they would make every writer pay an extra
    /// atomic). Only for a bootstrap that knows no other controller is open.
    pub fn reset_sleepers(&self) {
        self.word32(OFF_SLEEPERS).store(0, Ordering::SeqCst);
        self.word32(OFF_ARMED).store(0, Ordering::SeqCst);
    }

    /// Wakes every sleeper on the wake word (for shutting a watcher down).
    pub fn wake_all(&self) {
        let wake = self.word32(OFF_WAKE);
        wake.fetch_add(1, Ordering::SeqCst);
        let _ = futex::wake(wake, futex::Flags::empty(), u32::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn journal(capacity: u64) -> (tempfile::TempDir, Journal) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(JOURNAL_FILE);
        Journal::create(&p, capacity, 1).unwrap();
        let j = Journal::open(&p).unwrap();
        (d, j)
    }

    fn entries(r: JournalRead) -> Vec<Change> {
        match r {
            JournalRead::Entries { changes, .. } => changes,
            JournalRead::Gap { resume_at } => panic!("unexpected gap, resume at {resume_at}"),
        }
    }

    #[test]
    fn records_read_back_in_order_with_every_field() {
        let (_d, j) = journal(64);
        j.record(SlotAddr::new(3, 70_000, SlotKind::Greeks), SlotStatus::Pending, SlotStatus::Filled, 9, 1234);
        j.record(SlotAddr::new(u32::MAX, u32::MAX, SlotKind::RfRate), SlotStatus::Empty, SlotStatus::Pending, u32::MAX, 0);
        let got = entries(j.read(0, 10));
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            Change {
                seq: 0,
                symbol: 3,
                window_idx: 70_000,
                kind: SlotKind::Greeks,
                from: SlotStatus::Pending,
                to: SlotStatus::Filled,
                version: 9,
                payload_id: 1234
            }
        );
        assert_eq!((got[1].symbol, got[1].window_idx, got[1].version, got[1].kind), (u32::MAX, u32::MAX, u32::MAX, SlotKind::RfRate));
        assert_eq!(entries(j.read(1, 10)).len(), 1);
        assert_eq!(entries(j.read(2, 10)).len(), 0);
        assert_eq!(entries(j.read(0, 1)).len(), 1);
    }

    #[test]
    fn a_reader_overtaken_by_the_ring_gets_a_gap_never_wrong_entries() {
        let (_d, j) = journal(64);
        for i in 0..100u32 {
            j.record(SlotAddr::new(0, i, SlotKind::OptionTrade), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
        }
        assert_eq!(j.read(0, 1000), JournalRead::Gap { resume_at: 36 });
        let tail = entries(j.read(36, 1000));
        assert_eq!(tail.len(), 64);
        assert!(tail.iter().enumerate().all(|(i, c)| c.seq == 36 + i as u64 && c.window_idx == 36 + i as u32));
    }

    #[test]
    fn an_entry_numbered_but_not_committed_stops_the_read_as_pending() {
        let (_d, j) = journal(64);
        j.record(SlotAddr::new(0, 1, SlotKind::OptionTrade), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
        // A writer that took number 1 and died before committing it.
        j.word(OFF_HEAD).fetch_add(1, Ordering::AcqRel);
        j.record(SlotAddr::new(0, 2, SlotKind::OptionTrade), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
        match j.read(0, 10) {
            JournalRead::Entries { changes, pending, .. } => {
                assert_eq!(changes.len(), 1);
                assert!(pending);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(entries(j.read(2, 10))[0].window_idx, 2);
    }

    #[test]
    fn a_dropped_reservation_is_skipped_and_a_forgotten_one_is_pending() {
        let (_d, j) = journal(64);
        j.record(SlotAddr::new(0, 1, SlotKind::Greeks), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
        drop(j.reserve()); // a refused transition
        j.record(SlotAddr::new(0, 2, SlotKind::Greeks), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
        match j.read(0, 10) {
            JournalRead::Entries { changes, next, pending } => {
                assert_eq!(changes.iter().map(|c| (c.seq, c.window_idx)).collect::<Vec<_>>(), vec![(0, 1), (2, 2)]);
                assert_eq!((next, pending), (3, false));
            }
            other => panic!("{other:?}"),
        }
        // A writer that died between its number and its entry.
        std::mem::forget(j.reserve());
        j.record(SlotAddr::new(0, 3, SlotKind::Greeks), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
        assert_eq!(j.first_uncommitted(0, j.head()), 3);
        match j.read(3, 10) {
            JournalRead::Entries { changes, next, pending } => assert!(changes.is_empty() && next == 3 && pending),
            other => panic!("{other:?}"),
        }
        assert_eq!(j.first_uncommitted(4, j.head()), 5);
    }

    #[test]
    fn damaged_headers_are_refused_with_the_offset() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(JOURNAL_FILE);
        Journal::create(&p, 64, 1).unwrap();
        let good = std::fs::read(&p).unwrap();
        for (at, what) in [(0usize, "magic"), (8, "version"), (20, "checksum")] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(&p, &bad).unwrap();
            let e = Journal::open(&p).err().unwrap_or_else(|| panic!("flipped {what} byte accepted"));
            // A version byte flipped upwards reads as a newer format.
            assert!(matches!(e, Error::CorruptState { .. } | Error::NewerFormat { version: 65, .. }), "{e}");
        }
        std::fs::write(&p, &good[..4096 + 32]).unwrap();
        assert!(matches!(Journal::open(&p), Err(Error::CorruptState { .. })));
        std::fs::write(&p, &good[..100]).unwrap();
        assert!(matches!(Journal::open(&p), Err(Error::CorruptState { .. })));
        assert!(Journal::create(&p, 100, 1).is_err(), "capacity must be a power of two");
    }

    #[test]
    fn a_journal_is_made_with_every_block_allocated() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(JOURNAL_FILE);
        Journal::create(&p, 1 << 12, 1).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.len(), PAGE + (1 << 12) * ENTRY_BYTES);
        assert!(m.blocks() * 512 >= m.len(), "{} of {} bytes allocated", m.blocks() * 512, m.len());
        assert!(!d.path().join("changes.journal.tmp").exists());
    }

    #[test]
    fn a_sleeper_is_woken_by_a_writer_on_another_thread() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(JOURNAL_FILE);
        Journal::create(&p, 64, 1).unwrap();
        let reader = Journal::open(&p).unwrap();
        let writer = Arc::new(Journal::open(&p).unwrap());
        let w = writer.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            w.record(SlotAddr::new(0, 7, SlotKind::Greeks), SlotStatus::Pending, SlotStatus::Filled, 2, 5);
        });
        // Sleep until the change arrives; the long timeout is only a backstop.
        loop {
            let seen = reader.wake_word();
            if reader.head() > 0 {
                break;
            }
            reader.wait(seen, 0, Duration::from_secs(30));
        }
        t.join().unwrap();
        assert_eq!(entries(reader.read(0, 10))[0].window_idx, 7);
    }

    #[test]
    fn a_writer_passes_its_steps_in_order_and_a_refused_one_stops_before_the_change() {
        let (_d, j) = journal(64);
        let steps = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let s = steps.clone();
        hooks::set_thread_hook(Some(Box::new(move |step| s.borrow_mut().push(step))));
        j.record(SlotAddr::new(0, 1, SlotKind::Greeks), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
        let committed = steps.borrow().clone();
        steps.borrow_mut().clear();
        drop(j.reserve());
        let refused = steps.borrow().clone();
        hooks::set_thread_hook(None);
        assert_eq!(committed, vec![Step::Numbered, Step::Reserved, Step::Changed, Step::Committed]);
        assert_eq!(refused, vec![Step::Numbered, Step::Reserved, Step::Committed]);
    }

    #[test]
    fn racing_writers_fill_every_number_once() {
        let (_d, j) = journal(1 << 12);
        let j = Arc::new(j);
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let j = j.clone();
                std::thread::spawn(move || {
                    for i in 0..500u32 {
                        j.record(SlotAddr::new(t, i, SlotKind::OptionQuote), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let got = entries(j.read(0, 4096));
        assert_eq!(got.len(), 2000);
        let mut seen: Vec<(u32, u32)> = got.iter().map(|c| (c.symbol, c.window_idx)).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 2000);
    }
}
