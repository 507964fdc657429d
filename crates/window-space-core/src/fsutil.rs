//! Small file-system helpers: atomic whole-file writes and creating
//! directories durably (their writes and syncs go through `io.rs`).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::io::{self, AtomicSites, Site};

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// The writer's pid of a temp file [`write_atomic`] names
/// (`.<name>.tmp-<pid>-<n>`), from the last component of `path`.
pub(crate) fn temp_writer(path: &str) -> Option<u32> {
    let name = path.rsplit('/').next()?;
    if !name.starts_with('.') {
        return None;
    }
    let (_, tail) = name.rsplit_once(".tmp-")?;
    let (pid, seq) = tail.split_once('-')?;
    seq.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory,
/// fsync, rename over `path`, fsync of the directory. Readers see the old or
/// the new content, never a mix, also after a crash or power loss. `sites`
/// name the write and the two syncs.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], sites: AtomicSites) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}-{}", std::process::id(), TEMP_SEQ.fetch_add(1, Ordering::Relaxed)));
    let result = (|| {
        let f = OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        io::write_at(sites.write, &f, &tmp, bytes, 0)?;
        io::sync_all(sites.sync, &f, &tmp)?;
        failpoint!("fsutil::atomic-temp-written");
        std::fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))?;
        failpoint!("fsutil::atomic-renamed");
        io::sync_dir(sites.dir, dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` and any missing ancestors, fsyncing the parent of each
/// directory it creates, so the new directories survive power loss. A
/// directory another process creates meanwhile is fine.
pub fn create_dir_durably(dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.as_os_str().is_empty() && std::fs::symlink_metadata(at).is_err() {
        missing.push(at);
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => {
                // Not durable: remove it, so that the next attempt creates (and syncs) it again.
                io::sync_dir(Site::StateDirMkdir, d.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or_else(|| Path::new(".")))
                    .inspect_err(|_| {
                        let _ = std::fs::remove_dir(d);
                    })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("mkdir", d, e)),
        }
    }
    Ok(())
}

/// Reads into `buf` from `at` until it is full or the file ends; returns the
/// bytes read (fewer than `buf.len()` only at the end of the file).
pub(crate) fn read_upto(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
