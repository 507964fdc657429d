//! The core's one door to the disk: every write of file data, every
//! extension or truncation of a file, and every sync (`fdatasync`, `fsync`,
//! `msync` of a mapped range, `fsync` of a directory) made by the core goes
//! through a function of this module, named by the [`Site`] that calls it.
//! Stores into the shared mappings (slot transitions, counters, the change
//! journal) are not I/O calls and do not come here; the `msync` that makes
//! them durable does.
//!
//! In the published build each function is the plain system call and
//! nothing else. With the `failpoints` feature, tests can
//!
//! * **inject a fault** at a site through the `fail` crate's configuration,
//!   under the site's name: `fail::cfg("payload.append.write",
//!   "1*return(enospc)")`. The argument of `return` is the fault: `enospc`,
//!   `eio` (also a bare `return`), or `short` — for a write, part of the
//!   buffer is written (`short:<bytes>`, half by default) and then the disk
//!   is full (`ENOSPC`, or a short count where the caller makes one
//!   `write`); for an extension, the file is extended part way, then
//!   `ENOSPC`. A suffix `@<path>` limits the fault to the call on that path.
//!   A faulty sync makes nothing durable. [`Fault::action`] spells these.
//! * **observe syncs**: [`observe`] installs a callback told, after each
//!   successful sync of a file under a directory, which file and which
//!   bytes became durable ([`Synced`]).
//! * **count** how often each site was reached ([`reached`]) and how many
//!   faults were injected there ([`injected`]).
//!
//! ## Sites
//!
//! | site | call | where |
//! | --- | --- | --- |
//! | `payload.create.write` | write | the header of a new mapping table (first bootstrap) |
//! | `payload.create.sync` | fsync | that header |
//! | `payload.append.write` | write | a record, one `pwrite` at the end of the table |
//! | `payload.append.sync` | fdatasync | that record, before the append returns (sync mode) |
//! | `payload.append.undo` | truncate | cutting off the record of an append whose write or sync failed |
//! | `payload.cut.truncate` | truncate | cutting a torn tail (bootstrap alone, or an appender) |
//! | `payload.cut.sync` | fsync | after that cut |
//! | `payload.commit.sync` | fdatasync | records of deferred appends (group commit, a deferred fill's own record, `flush()`) |
//! | `payload.lost.header` | write | the header rewritten with format version 2 before the first lost-id record (`window-space repair`) |
//! | `payload.lost.header.sync` | fdatasync | that header |
//! | `payload.lost.write` | write | lost-id records, in batches (`window-space repair`) |
//! | `payload.lost.sync` | fdatasync | those records |
//! | `payload.lost.undo` | truncate | cutting off what a failed batch wrote |
//! | `ledger.create.write` | write | the header page of a new ledger |
//! | `ledger.create.sync` | fsync | that header page |
//! | `ledger.grow.extend` | fallocate | room for new chunks (zeros written where `fallocate` is unsupported) |
//! | `ledger.grow.restore` | truncate | giving the length back after an extension failed part way |
//! | `ledger.grow.chunk` | write | a new chunk: its header and zeroed rows |
//! | `ledger.grow.sync` | fdatasync | that chunk, before it is published (sync mode) |
//! | `ledger.grow.header` | msync | the header page with the new chunk count (sync mode) |
//! | `ledger.slot.msync` | msync | the page of a slot after a transition (sync mode) |
//! | `ledger.commit.msync` | msync | pages of slots changed in deferral scopes (group commit) |
//! | `ledger.flush.msync` | msync | every chunk and the header page (`flush()`) |
//! | `journal.create.extend` | fallocate | every block of a new change journal (a temp file) |
//! | `journal.create.write` | write | its header |
//! | `journal.create.sync` | fsync | the temp file, before it is renamed into place |
//! | `journal.create.dir` | fsync (dir) | the state directory after that rename |
//! | `symbols.create.write` | write | the header of a new symbol log (first bootstrap), or a whole log converted from `symbol-map.json` |
//! | `symbols.create.sync` | fsync | that file |
//! | `symbols.append.write` | write | a symbol's record at the end of `symbols.log` (placeholders of lost symbols too; records whose sync failed, written again) |
//! | `symbols.append.sync` | fdatasync | those records, before the id is returned (sync mode; always for placeholders) |
//! | `symbols.cut` | truncate | cutting an incomplete record off the log's end: a dead writer's (next add, bootstrap alone) or the add's own after its write failed |
//! | `schedule.write` | write | a new `schedule.json` (first bootstrap, roll-forward; temp file) |
//! | `schedule.sync` | fsync | that temp file |
//! | `schedule.dir` | fsync (dir) | the state directory after the rename |
//! | `statedir.mkdir` | fsync (dir) | the parent of each directory created for a new state directory |
//! | `presence.write` | write | a controller's presence record |
//! | `audit.open.dir` | fsync (dir) | the state directory when a controller first opens `audit.log` (sync mode) |
//! | `audit.append` | write | one audit line (and the torn mark that ends a fragment a short write left) |
//! | `audit.sync` | fdatasync | that line (sync mode) |
//! | `gclog.append` | write | lines of `gc.log` (and the torn mark that ends a short write's fragment) |
//! | `gclog.sync` | fdatasync | those lines |
//! | `gclog.dir` | fsync (dir) | the state directory when `gc.log` was created |
//! | `gc.move.dir` | fsync (dir) | both directories after gc moved a file (best effort: a failure is ignored) |
//! | `gc.remove.dir` | fsync (dir) | the directory gc removed a file from (best effort) |
//! | `artifact.write` | write | an artifact (temp file) |
//! | `artifact.sync` | fsync | that temp file |
//! | `artifact.dir` | fsync (dir) | its directory after the rename |
//! | `artifact.mkdir` | fsync (dir) | the parent of each directory created under `artifacts/` |
//! | `migrate.write` | write | a converted file in `migrate-staging/` |
//! | `migrate.sync` | fsync | a converted file, and `migrate-staging/READY` |
//! | `migrate.dir` | fsync (dir) | the staging, backup and state directories as `migrate` writes, renames and removes in them |

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{Error, Result};

/// What kind of call a site makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Writes file data (`pwrite`, or one `write` on a file opened to append).
    Write,
    /// Extends a file with real blocks (`fallocate`).
    Extend,
    /// Sets a file's length (`ftruncate`), to cut off what a failed step left.
    Truncate,
    /// `fdatasync` of a file.
    DataSync,
    /// `fsync` of a file.
    FullSync,
    /// `msync` of a range of a shared mapping.
    Msync,
    /// `fsync` of a directory (new entries and renames in it).
    DirSync,
}

impl Op {
    /// The operation's name in error messages (`Error::Io::op`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Write => "write",
            Self::Extend => "fallocate",
            Self::Truncate => "truncate",
            Self::DataSync => "fdatasync",
            Self::FullSync | Self::DirSync => "fsync",
            Self::Msync => "msync",
        }
    }

    /// The faults that make sense for this kind of call: a short write
    /// only where something is written or extended.
    pub const fn faults(self) -> &'static [Fault] {
        match self {
            Self::Write | Self::Extend => &[Fault::NoSpace, Fault::Io, Fault::Short],
            _ => &[Fault::NoSpace, Fault::Io],
        }
    }
}

/// A fault a test can inject at a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The disk is full: `ENOSPC`.
    NoSpace,
    /// The disk failed: `EIO`.
    Io,
    /// Part of the data is written (or part of the extension made), then the
    /// disk is full.
    Short,
}

impl Fault {
    /// Every fault kind.
    pub const ALL: [Fault; 3] = [Fault::NoSpace, Fault::Io, Fault::Short];

    /// The fault's name in a failpoint action (`return(<name>)`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::NoSpace => "enospc",
            Self::Io => "eio",
            Self::Short => "short",
        }
    }

    /// A `fail` crate action that injects this fault `times` times
    /// (`None`: every time until removed), e.g. `1*return(enospc)`.
    pub fn action(self, times: Option<u32>) -> String {
        match times {
            Some(n) => format!("{n}*return({})", self.name()),
            None => format!("return({})", self.name()),
        }
    }

    /// The errno the failing call reports.
    pub fn errno(self) -> i32 {
        match self {
            Self::NoSpace | Self::Short => rustix::io::Errno::NOSPC.raw_os_error(),
            Self::Io => rustix::io::Errno::IO.raw_os_error(),
        }
    }
}

macro_rules! sites {
    ($($variant:ident = $name:literal, $op:ident;)*) => {
        /// A named place in the core that writes, extends, truncates or syncs
        /// (the table in the module's documentation).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Site {
            $($variant,)*
        }

        impl Site {
            /// Every site, in the table's order.
            pub const ALL: &'static [Site] = &[$(Site::$variant,)*];

            /// The site's name (also its failpoint's name).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Site::$variant => $name,)*
                }
            }

            /// The kind of call the site makes.
            pub const fn op(self) -> Op {
                match self {
                    $(Site::$variant => Op::$op,)*
                }
            }
        }
    };
}

sites! {
    PayloadCreateWrite = "payload.create.write", Write;
    PayloadCreateSync = "payload.create.sync", FullSync;
    PayloadAppendWrite = "payload.append.write", Write;
    PayloadAppendSync = "payload.append.sync", DataSync;
    PayloadAppendUndo = "payload.append.undo", Truncate;
    PayloadCutTruncate = "payload.cut.truncate", Truncate;
    PayloadCutSync = "payload.cut.sync", FullSync;
    PayloadCommitSync = "payload.commit.sync", DataSync;
    PayloadLostHeader = "payload.lost.header", Write;
    PayloadLostHeaderSync = "payload.lost.header.sync", DataSync;
    PayloadLostWrite = "payload.lost.write", Write;
    PayloadLostSync = "payload.lost.sync", DataSync;
    PayloadLostUndo = "payload.lost.undo", Truncate;
    LedgerCreateWrite = "ledger.create.write", Write;
    LedgerCreateSync = "ledger.create.sync", FullSync;
    LedgerGrowExtend = "ledger.grow.extend", Extend;
    LedgerGrowRestore = "ledger.grow.restore", Truncate;
    LedgerGrowChunk = "ledger.grow.chunk", Write;
    LedgerGrowSync = "ledger.grow.sync", DataSync;
    LedgerGrowHeader = "ledger.grow.header", Msync;
    LedgerSlotMsync = "ledger.slot.msync", Msync;
    LedgerCommitMsync = "ledger.commit.msync", Msync;
    LedgerFlushMsync = "ledger.flush.msync", Msync;
    JournalCreateExtend = "journal.create.extend", Extend;
    JournalCreateWrite = "journal.create.write", Write;
    JournalCreateSync = "journal.create.sync", FullSync;
    JournalCreateDir = "journal.create.dir", DirSync;
    SymbolsCreateWrite = "symbols.create.write", Write;
    SymbolsCreateSync = "symbols.create.sync", FullSync;
    SymbolsAppendWrite = "symbols.append.write", Write;
    SymbolsAppendSync = "symbols.append.sync", DataSync;
    SymbolsCut = "symbols.cut", Truncate;
    ScheduleWrite = "schedule.write", Write;
    ScheduleSync = "schedule.sync", FullSync;
    ScheduleDir = "schedule.dir", DirSync;
    StateDirMkdir = "statedir.mkdir", DirSync;
    PresenceWrite = "presence.write", Write;
    AuditOpenDir = "audit.open.dir", DirSync;
    AuditAppend = "audit.append", Write;
    AuditSync = "audit.sync", DataSync;
    GcLogAppend = "gclog.append", Write;
    GcLogSync = "gclog.sync", DataSync;
    GcLogDir = "gclog.dir", DirSync;
    GcMoveDir = "gc.move.dir", DirSync;
    GcRemoveDir = "gc.remove.dir", DirSync;
    ArtifactWrite = "artifact.write", Write;
    ArtifactSync = "artifact.sync", FullSync;
    ArtifactDir = "artifact.dir", DirSync;
    ArtifactMkdir = "artifact.mkdir", DirSync;
    MigrateWrite = "migrate.write", Write;
    MigrateSync = "migrate.sync", FullSync;
    MigrateDir = "migrate.dir", DirSync;
}

/// The three sites of one atomic whole-file write (`fsutil::write_atomic`):
/// the temp file's data, its fsync, the directory's fsync after the rename.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AtomicSites {
    pub write: Site,
    pub sync: Site,
    pub dir: Site,
}

impl AtomicSites {
    pub const SCHEDULE: Self = Self { write: Site::ScheduleWrite, sync: Site::ScheduleSync, dir: Site::ScheduleDir };
    pub const ARTIFACT: Self = Self { write: Site::ArtifactWrite, sync: Site::ArtifactSync, dir: Site::ArtifactDir };
}

fn err(site: Site, path: &Path, e: std::io::Error) -> Error {
    Error::io(site.op().name(), path, e)
}

/// Writes all of `buf` at `offset` (`pwrite`, repeated until done).
#[inline]
pub(crate) fn write_at(site: Site, file: &File, path: &Path, buf: &[u8], offset: u64) -> Result<()> {
    #[cfg(feature = "failpoints")]
    if let Some((fault, part)) = testing::fault_at(site, path) {
        if fault == Fault::Short {
            let n = part.map_or(buf.len() / 2, |n| n as usize).min(buf.len().saturating_sub(1));
            let _ = file.write_all_at(&buf[..n], offset);
        }
        return Err(err(site, path, std::io::Error::from_raw_os_error(fault.errno())));
    }
    file.write_all_at(buf, offset).map_err(|e| err(site, path, e))
}

/// One `write` of `buf` to a file opened to append; returns how many bytes
/// it wrote (fewer than `buf.len()` when the disk filled up part way).
#[inline]
pub(crate) fn write_once(site: Site, file: &File, path: &Path, buf: &[u8]) -> Result<usize> {
    #[cfg(feature = "failpoints")]
    if let Some((fault, part)) = testing::fault_at(site, path) {
        if fault == Fault::Short {
            let n = part.map_or(buf.len() / 2, |n| n as usize).min(buf.len().saturating_sub(1));
            return std::io::Write::write(&mut &*file, &buf[..n]).map_err(|e| err(site, path, e));
        }
        return Err(err(site, path, std::io::Error::from_raw_os_error(fault.errno())));
    }
    std::io::Write::write(&mut &*file, buf).map_err(|e| err(site, path, e))
}

/// Gives `file` real blocks from `old_len` to `new_len` (`fallocate`; zeros
/// written on file systems without it), so that a full disk is an error here
/// and never a SIGBUS when a mapped page is first stored to.
pub(crate) fn extend(site: Site, file: &File, path: &Path, old_len: u64, new_len: u64) -> Result<()> {
    use rustix::fs::{fallocate, FallocateFlags};
    #[cfg(feature = "failpoints")]
    if let Some((fault, part)) = testing::fault_at(site, path) {
        if fault == Fault::Short {
            // What a file system may do when it runs out of space part way.
            let part = part.unwrap_or((new_len - old_len) / 2).min(new_len - old_len);
            if fallocate(file, FallocateFlags::empty(), old_len, part.max(1)).is_err() {
                let _ = file.set_len(old_len + part);
            }
        }
        return Err(err(site, path, std::io::Error::from_raw_os_error(fault.errno())));
    }
    match fallocate(file, FallocateFlags::empty(), old_len, new_len - old_len) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::OPNOTSUPP => {
            let zeros = vec![0u8; 1 << 20];
            let mut at = old_len;
            while at < new_len {
                let n = ((new_len - at) as usize).min(zeros.len());
                file.write_all_at(&zeros[..n], at).map_err(|e| Error::io("write", path, e))?;
                at += n as u64;
            }
            Ok(())
        }
        Err(e) => Err(err(site, path, e.into())),
    }
}

/// Sets the length of `file` (cuts off what a failed step left).
#[inline]
pub(crate) fn set_len(site: Site, file: &File, path: &Path, len: u64) -> Result<()> {
    #[cfg(feature = "failpoints")]
    if let Some((fault, _)) = testing::fault_at(site, path) {
        return Err(err(site, path, std::io::Error::from_raw_os_error(fault.errno())));
    }
    file.set_len(len).map_err(|e| err(site, path, e))
}

/// `fdatasync` of `file`: its data and length are durable when this returns.
#[inline]
pub(crate) fn sync_data(site: Site, file: &File, path: &Path) -> Result<()> {
    #[cfg(feature = "failpoints")]
    if let Some((fault, _)) = testing::fault_at(site, path) {
        return Err(err(site, path, std::io::Error::from_raw_os_error(fault.errno())));
    }
    file.sync_data().map_err(|e| err(site, path, e))?;
    #[cfg(feature = "failpoints")]
    testing::synced_file(site, file, path);
    Ok(())
}

/// `fsync` of `file`: its data and metadata are durable when this returns.
#[inline]
pub(crate) fn sync_all(site: Site, file: &File, path: &Path) -> Result<()> {
    #[cfg(feature = "failpoints")]
    if let Some((fault, _)) = testing::fault_at(site, path) {
        return Err(err(site, path, std::io::Error::from_raw_os_error(fault.errno())));
    }
    file.sync_all().map_err(|e| err(site, path, e))?;
    #[cfg(feature = "failpoints")]
    testing::synced_file(site, file, path);
    Ok(())
}

/// `msync` of `[map_offset, map_offset + len)` of `map`, which maps `path`
/// from file offset `map_file_offset`: the pages of that range are durable
/// when this returns.
#[inline]
pub(crate) fn msync(site: Site, map: &memmap2::MmapRaw, map_file_offset: u64, map_offset: usize, len: usize, path: &Path) -> Result<()> {
    #[cfg(feature = "failpoints")]
    if let Some((fault, _)) = testing::fault_at(site, path) {
        return Err(err(site, path, std::io::Error::from_raw_os_error(fault.errno())));
    }
    map.flush_range(map_offset, len).map_err(|e| err(site, path, e))?;
    #[cfg(feature = "failpoints")]
    testing::synced_range(site, path, map_file_offset + map_offset as u64, len as u64);
    #[cfg(not(feature = "failpoints"))]
    let _ = map_file_offset;
    Ok(())
}

/// `fsync` of the directory `dir`: entries created or renamed in it are durable.
pub(crate) fn sync_dir(site: Site, dir: &Path) -> Result<()> {
    #[cfg(feature = "failpoints")]
    if let Some((fault, _)) = testing::fault_at(site, dir) {
        return Err(err(site, dir, std::io::Error::from_raw_os_error(fault.errno())));
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| err(site, dir, e))?;
    #[cfg(feature = "failpoints")]
    testing::synced_dir(site, dir);
    Ok(())
}

/// `fsync` of a directory already open as `fd` (at `path`, for errors).
pub(crate) fn sync_dir_fd(site: Site, fd: impl rustix::fd::AsFd, path: &Path) -> Result<()> {
    #[cfg(feature = "failpoints")]
    if let Some((fault, _)) = testing::fault_at(site, path) {
        return Err(err(site, path, std::io::Error::from_raw_os_error(fault.errno())));
    }
    rustix::fs::fsync(fd).map_err(|e| err(site, path, e.into()))?;
    #[cfg(feature = "failpoints")]
    testing::synced_dir(site, path);
    Ok(())
}

#[cfg(feature = "failpoints")]
pub use testing::{injected, observe, reached, Durable, Observer, Synced};

/// Fault injection, sync observers and counters (`failpoints` feature only).
#[cfg(feature = "failpoints")]
mod testing {
    use std::fs::File;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use super::{Fault, Site};

    const SITES: usize = Site::ALL.len();
    static REACHED: [AtomicU64; SITES] = [const { AtomicU64::new(0) }; SITES];
    static INJECTED: [AtomicU64; SITES] = [const { AtomicU64::new(0) }; SITES];

    /// How many times the core reached `site` (whether or not a fault was injected).
    pub fn reached(site: Site) -> u64 {
        REACHED[site as usize].load(Ordering::SeqCst)
    }

    /// How many faults were injected at `site`.
    pub fn injected(site: Site) -> u64 {
        INJECTED[site as usize].load(Ordering::SeqCst)
    }

    /// The fault configured for this call of `site`, if any, and the bytes a
    /// short write or extension makes (`short:<bytes>`).
    pub(super) fn fault_at(site: Site, path: &Path) -> Option<(Fault, Option<u64>)> {
        REACHED[site as usize].fetch_add(1, Ordering::SeqCst);
        let arg = fail::eval(site.name(), |arg| arg.unwrap_or_default())?;
        let (what, only) = match arg.split_once('@') {
            Some((w, p)) => (w, Some(p)),
            None => (arg.as_str(), None),
        };
        if only.is_some_and(|p| Path::new(p) != path) {
            return None;
        }
        let (kind, part) = match what.split_once(':') {
            Some((k, n)) => (k, Some(n.parse::<u64>().unwrap_or_else(|_| panic!("failpoint {}: bad byte count in {arg:?}", site.name())))),
            None => (what, None),
        };
        let fault = match kind {
            "enospc" => Fault::NoSpace,
            "eio" | "" => Fault::Io,
            "short" => Fault::Short,
            other => panic!("failpoint {}: unknown fault {other:?} (enospc, eio, short[:bytes], with an optional @path)", site.name()),
        };
        INJECTED[site as usize].fetch_add(1, Ordering::SeqCst);
        Some((fault, part))
    }

    /// What a successful sync made durable.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Durable {
        /// The whole file, data and length (`fdatasync`, `fsync`): bytes `0..len`.
        File { len: u64 },
        /// The pages of `start..end` of the file (`msync`), page-aligned; the
        /// file's length is not made durable by it.
        Range { start: u64, end: u64 },
        /// The entries of a directory (`fsync` of the directory).
        Directory,
    }

    /// One successful sync, as an observer is told of it.
    #[derive(Debug, Clone, Copy)]
    pub struct Synced<'a> {
        pub site: Site,
        pub path: &'a Path,
        pub durable: Durable,
    }

    type Callback = Arc<dyn Fn(&Synced<'_>) + Send + Sync>;

    static OBSERVERS: Mutex<Vec<(u64, PathBuf, Callback)>> = Mutex::new(Vec::new());
    static NEXT_OBSERVER: AtomicU64 = AtomicU64::new(1);

    /// Installed by [`observe`]; dropping it removes the observer.
    #[must_use = "the observer is removed when this is dropped"]
    pub struct Observer(u64);

    impl Drop for Observer {
        fn drop(&mut self) {
            OBSERVERS.lock().unwrap_or_else(|p| p.into_inner()).retain(|(id, _, _)| *id != self.0);
        }
    }

    /// Calls `f` after each successful sync of a file or directory at or
    /// under `root`, on the thread that synced, until the returned guard is
    /// dropped.
    pub fn observe(root: impl Into<PathBuf>, f: impl Fn(&Synced<'_>) + Send + Sync + 'static) -> Observer {
        let id = NEXT_OBSERVER.fetch_add(1, Ordering::Relaxed);
        OBSERVERS.lock().unwrap_or_else(|p| p.into_inner()).push((id, root.into(), Arc::new(f)));
        Observer(id)
    }

    fn notify(site: Site, path: &Path, durable: Durable) {
        let callbacks: Vec<Callback> = {
            let list = OBSERVERS.lock().unwrap_or_else(|p| p.into_inner());
            list.iter().filter(|(_, root, _)| path.starts_with(root)).map(|(_, _, f)| f.clone()).collect()
        };
        for f in callbacks {
            f(&Synced { site, path, durable });
        }
    }

    fn observed(path: &Path) -> bool {
        let list = OBSERVERS.lock().unwrap_or_else(|p| p.into_inner());
        list.iter().any(|(_, root, _)| path.starts_with(root))
    }

    pub(super) fn synced_file(site: Site, file: &File, path: &Path) {
        if observed(path) {
            let len = file.metadata().map_or(0, |m| m.len());
            notify(site, path, Durable::File { len });
        }
    }

    pub(super) fn synced_range(site: Site, path: &Path, start: u64, len: u64) {
        if observed(path) {
            let page = crate::mapping::PAGE;
            let (start, end) = (start / page * page, (start + len).div_ceil(page) * page);
            notify(site, path, Durable::Range { start, end });
        }
    }

    pub(super) fn synced_dir(site: Site, dir: &Path) {
        if observed(dir) {
            notify(site, dir, Durable::Directory);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_names_are_unique_and_dotted() {
        let mut names: Vec<&str> = Site::ALL.iter().map(|s| s.name()).collect();
        assert!(names.iter().all(|n| n.contains('.') && !n.contains(char::is_whitespace)), "{names:?}");
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "two sites share a name");
    }

    #[test]
    fn the_module_table_lists_every_site_with_its_call() {
        let doc = include_str!("io.rs");
        for site in Site::ALL {
            let call = match site.op() {
                Op::Write => "write",
                Op::Extend => "fallocate",
                Op::Truncate => "truncate",
                Op::DataSync => "fdatasync",
                Op::FullSync => "fsync",
                Op::Msync => "msync",
                Op::DirSync => "fsync (dir)",
            };
            let row = format!("//! | `{}` | {call} |", site.name());
            assert!(doc.contains(&row), "the table at the top of io.rs has no row {row:?}");
        }
    }
}
