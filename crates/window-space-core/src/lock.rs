//! Advisory file locks (`flock`) that coordinate processes on one host.
//!
//! * The *gate*: an exclusive lock on the state directory itself (held
//!   briefly), which serializes bootstraps and symbol adds.
//! * The *presence* lock: `window-space.lock` in the state directory, locked
//!   shared while a controller is open. A bootstrap that gets it exclusively
//!   knows no other controller has the directory open, and only then repairs
//!   (cuts torn tails, rewrites the shared metric counters from an exact scan).
//! * Each ledger and mapping-table file is itself locked exclusively while it
//!   grows or is appended to.
//!
//! `flock` locks belong to an open file description, so two controllers in
//! one process (or in two worker threads) exclude each other exactly like two
//! processes do, and the kernel drops a dead process's locks. For the same
//! reason a `flock` does not exclude two threads using the *same* controller:
//! the first thread's unlock would release the lock while the second is still
//! inside. Every user of a `flock` therefore takes an in-process mutex first
//! and holds it until after the unlock ([`FileLock::exclusive`] takes it).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rustix::fs::{flock, FlockOperation};

use crate::error::{Error, Result};

/// A held `flock` and the in-process mutex that guards it; released on drop
/// (the `flock` first, then the mutex).
pub(crate) struct FileLock<'a> {
    file: &'a File,
    _threads: MutexGuard<'a, ()>,
}

impl<'a> FileLock<'a> {
    /// Blocks until this thread holds `threads` and `file` is locked exclusively.
    /// `threads` must be the one mutex that guards every `flock` on `file`.
    pub(crate) fn exclusive(file: &'a File, threads: &'a Mutex<()>, path: &Path) -> Result<Self> {
        let guard = threads.lock().unwrap_or_else(|p| p.into_inner());
        lock(file, path, FlockOperation::LockExclusive)?;
        Ok(Self { file, _threads: guard })
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        let _ = flock(self.file, FlockOperation::Unlock);
    }
}

fn lock(file: &File, path: &Path, op: FlockOperation) -> Result<()> {
    loop {
        match flock(file, op) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::io("flock", path, e.into())),
        }
    }
}

/// The state directory's lock file, held by an open controller.
pub(crate) struct DirLock {
    path: std::path::PathBuf,
    gate: File,
    gate_threads: Mutex<()>,
    presence: File,
}

/// What the bootstrap learned while holding the gate.
pub(crate) struct GateGuard<'a> {
    lock: &'a DirLock,
    /// True when no other controller (in any process) has the directory open.
    pub(crate) alone: bool,
}

impl DirLock {
    pub(crate) const FILE_NAME: &'static str = "window-space.lock";

    /// Opens (creating if needed) the lock file.
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(Self::FILE_NAME);
        let presence = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        let gate = File::open(dir).map_err(|e| Error::io("open", dir, e))?;
        Ok(Self { gate, gate_threads: Mutex::new(()), presence, path })
    }

    /// Takes the gate, and finds out whether we are alone.
    pub(crate) fn enter(&self) -> Result<GateGuard<'_>> {
        lock(&self.gate, &self.path, FlockOperation::LockExclusive)?;
        let alone = match flock(&self.presence, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => true,
            Err(rustix::io::Errno::WOULDBLOCK) => false,
            Err(e) => {
                let _ = flock(&self.gate, FlockOperation::Unlock);
                return Err(Error::io("flock", &self.path, e.into()));
            }
        };
        Ok(GateGuard { lock: self, alone })
    }

    /// Takes the gate only (for symbol adds).
    pub(crate) fn gate(&self) -> Result<FileLock<'_>> {
        FileLock::exclusive(&self.gate, &self.gate_threads, &self.path)
    }
}

impl GateGuard<'_> {
    /// Marks this controller present (shared lock) and releases the gate.
    pub(crate) fn admit(self) -> Result<()> {
        // While we hold the gate no other bootstrap can run, so turning the
        // exclusive presence lock into a shared one (not atomic in flock) is safe.

        lock(&self.lock.presence, &self.lock.path, FlockOperation::LockShared)
    }
}

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        let _ = flock(&self.lock.gate, FlockOperation::Unlock);
    }
}

/// Presence records: one small file per open controller in `presence/`,
/// named `<pid>-<n>`, that its controller holds under an exclusive `flock`
/// from bootstrap to close (and removes on close, with the directory when
/// it is the last). A record whose `flock`
/// another controller can take, while its file is still there, belongs to
/// a controller that died (its process was killed): the kernel dropped the
/// lock, and nobody removed the file. That is how survivors learn of a
/// death without an exclusive bootstrap (see `Controller::slot_metrics`).
///
/// Each record also holds the shared word `in_flight` at [`IN_FLIGHT_OFFSET`]:
/// how many transitions of its controller are between their start and the
/// update of the shared counters. A survivor recounts only at an instant when
/// every live record's word is 0 (`controller/mod.rs`).
///
/// ```text
/// record file, 4096 bytes
///   0   8  pid of the owner (u64, for people)
///  64   8  in_flight        transitions under way (shared atomic)
/// ```
pub(crate) struct Presence {
    dir: PathBuf,
    name: String,
    /// Our record, locked exclusively while it exists.
    file: File,
    map: crate::mapping::FixedMapping,
}

/// Byte offset of the `in_flight` word in a presence record.
pub(crate) const IN_FLIGHT_OFFSET: usize = 64;
const RECORD_BYTES: u64 = 4096;
static RECORD_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A record of a controller that died, locked by us while we repair what it left.
pub(crate) struct DeadRecord {
    path: PathBuf,
    _file: File,
}

impl DeadRecord {
    /// Removes the record (what it left has been repaired); the lock goes with the file.
    pub(crate) fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Marks one transition of a controller as under way until dropped.
pub(crate) struct InFlight<'a>(Option<&'a std::sync::atomic::AtomicU64>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(w) = self.0 {
            w.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl Presence {
    /// Subdirectory of the state directory that holds the records.
    pub(crate) const DIR_NAME: &'static str = "presence";

    /// Creates and locks this controller's record. `alone` (no other
    /// controller is open) removes every record there first: all are dead.
    pub(crate) fn join(state_dir: &Path, alone: bool) -> Result<Self> {
        let dir = state_dir.join(Self::DIR_NAME);
        if alone {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let name = format!("{}-{}", std::process::id(), RECORD_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let tmp = dir.join(format!(".tmp-{name}"));
        let path = dir.join(&name);
        let made = (|| {
            // The last controller to close removes the empty directory; one
            // closing while we join may remove it between our two steps.
            let mut tries = 0;
            let file = loop {
                match std::fs::create_dir(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(Error::io("mkdir", &dir, e)),
                }
                match std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&tmp) {
                    Ok(f) => break f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 100 => tries += 1,
                    Err(e) => return Err(Error::io("create", &tmp, e)),
                }
            };
            let mut page = vec![0u8; RECORD_BYTES as usize];
            page[0..8].copy_from_slice(&u64::from(std::process::id()).to_le_bytes());
            // Real blocks, so a full disk is an error here, never a SIGBUS in a transition.
            crate::io::write_at(crate::io::Site::PresenceWrite, &file, &tmp, &page, 0)?;
            lock(&file, &tmp, FlockOperation::LockExclusive)?;
            let map = crate::mapping::FixedMapping::new(&file, &tmp, RECORD_BYTES)?;
            if map.u64_at(IN_FLIGHT_OFFSET).is_none() {
                return Err(Error::Internal { what: "presence record too short".into() });
            }
            // Only a locked record ever appears under its name.
            std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &path, e))?;
            Ok((file, map))
        })();
        match made {
            Ok((file, map)) => Ok(Self { dir, name, file, map }),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Marks a transition as under way (see the type's comment).
    #[inline]
    pub(crate) fn in_flight(&self) -> InFlight<'_> {
        let w = self.map.u64_at(IN_FLIGHT_OFFSET);
        if let Some(w) = w {
            w.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        InFlight(w)
    }

    /// The names of the records in `presence/` other than ours.
    fn others(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        entries.flatten().filter_map(|e| e.file_name().into_string().ok()).filter(|n| !n.starts_with('.') && *n != self.name).collect()
    }

    /// Records of controllers that died, each locked by us until it is
    /// removed or dropped. A record whose owner closed meanwhile is skipped.
    pub(crate) fn dead(&self) -> Vec<DeadRecord> {
        let mut out = Vec::new();
        for name in self.others() {
            let path = self.dir.join(&name);
            let Ok(file) = File::open(&path) else { continue };
            if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
                continue; // held: its controller is alive (or another survivor is repairing it)
            }
            // A controller that closes removes its record before it unlocks it.
            if file.metadata().is_ok_and(|m| std::os::unix::fs::MetadataExt::nlink(&m) > 0) {
                out.push(DeadRecord { path, _file: file });
            }
        }
        out
    }

    /// Transitions under way in every live controller of the directory
    /// (ours included): the sum of the live records' `in_flight` words.
    /// Records of dead controllers (`dead`, which we hold, and any not held
    /// by their owner) are not read. `None` if a record could not be read
    /// (then nothing can be concluded).
    pub(crate) fn live_in_flight(&self, dead: &[DeadRecord]) -> Option<u64> {
        let mut sum = self.map.u64_at(IN_FLIGHT_OFFSET)?.load(std::sync::atomic::Ordering::SeqCst);
        for name in self.others() {
            let path = self.dir.join(&name);
            if dead.iter().any(|d| d.path == path) {
                continue;
            }
            let Ok(file) = std::fs::OpenOptions::new().read(true).write(true).open(&path) else { continue };
            if flock(&file, FlockOperation::NonBlockingLockShared).is_ok() {
                continue; // not held exclusively: dead (or closing), its word says nothing
            }
            let map = crate::mapping::FixedMapping::new(&file, &path, RECORD_BYTES).ok()?;
            sum += map.u64_at(IN_FLIGHT_OFFSET)?.load(std::sync::atomic::Ordering::SeqCst);
        }
        Some(sum)
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        // Remove, then unlock (closing the file): a survivor that takes the
        // lock finds no file and knows this controller closed.
        let _ = std::fs::remove_file(self.dir.join(&self.name));
        let _ = flock(&self.file, FlockOperation::Unlock);
        // The last one out removes the directory (only an empty one goes).
        let _ = std::fs::remove_dir(&self.dir);
    }
}
