//! Advisory file locks (`flock`) that coordinate processes on one host.
//!
//! * The *gate*: an exclusive lock on the state directory itself (held
//!   briefly), which serializes bootstraps and symbol-map rewrites.
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
use std::path::Path;
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

    /// Takes the gate only (for symbol-map rewrites).
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
