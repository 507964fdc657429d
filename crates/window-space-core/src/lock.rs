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
//! processes do, and the kernel drops a dead process's locks.

use std::fs::File;
use std::path::Path;

use rustix::fs::{flock, FlockOperation};

use crate::error::{Error, Result};

/// A held `flock`; released on drop.
pub(crate) struct FileLock<'a> {
    file: &'a File,
}

impl<'a> FileLock<'a> {
    /// Blocks until `file` is locked exclusively.
    pub(crate) fn exclusive(file: &'a File, path: &Path) -> Result<Self> {
        lock(file, path, FlockOperation::LockExclusive)?;
        Ok(Self { file })
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
        Ok(Self { gate, presence, path })
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
        FileLock::exclusive(&self.gate, &self.path)
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
