//! The artifact tree as operators' tools see it: walking `artifacts/`,
//! opening, hashing, moving and removing its files — always through
//! directory handles opened with `O_NOFOLLOW`, so a symbolic link anywhere
//! (the `artifacts` directory itself, a subdirectory, a file) is never
//! followed and no tool ever reads, moves or deletes a file outside the
//! state directory. Symbolic links are listed as such and left alone.
//!
//! File names that are not UTF-8 are listed with their bytes (no payload
//! record can name them, as URIs are UTF-8); files that vanish while the tree
//! is walked (an engine's temp file renamed into place, another gc) are
//! skipped, never an error.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{openat, renameat_with, statat, unlinkat, AtFlags, FileType, Mode, OFlags, RenameFlags, CWD};
use rustix::io::Errno;

use crate::artifact::ARTIFACT_DIR;
use crate::error::{Error, Result};

/// One file of the artifact tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Path relative to the state directory, `/`-separated (`artifacts/...`), as
    /// a URI names it; for a name that is not UTF-8, its lossy form.
    pub uri: String,
    /// The path's bytes relative to the state directory.
    pub rel: Vec<u8>,
    /// False when the path is not UTF-8 (no record can name it).
    pub utf8: bool,
    pub size: u64,
    /// Modification time, ms since the Unix epoch.
    pub mtime_ms: i64,
}

/// What a walk of the artifact tree found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub files: Vec<TreeFile>,
    /// Symbolic links met (never followed), relative to the state directory.
    pub symlinks: Vec<String>,
    /// The `artifacts` entry of the state directory is itself a symbolic link
    /// (or not a directory): nothing under it was walked.
    pub root_refused: bool,
}

fn io(op: &'static str, path: impl Into<PathBuf>, e: Errno) -> Error {
    Error::io(op, path, e.into())
}

fn open_dir_at(dir: impl AsFd, name: &OsStr) -> std::result::Result<OwnedFd, Errno> {
    openat(dir, name, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
}

/// Walks `<state_dir>/artifacts` (absent: an empty tree).
pub fn walk(state_dir: &Path) -> Result<Tree> {
    let mut tree = Tree::default();
    let state = openat(CWD, state_dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io("open", state_dir, e))?;
    let root = match open_dir_at(&state, OsStr::new(ARTIFACT_DIR)) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(tree),
        Err(Errno::LOOP | Errno::NOTDIR) => {
            tree.root_refused = true;
            return Ok(tree);
        }
        Err(e) => return Err(io("open", state_dir.join(ARTIFACT_DIR), e)),
    };
    walk_dir(state_dir, root, ARTIFACT_DIR.as_bytes().to_vec(), &mut tree)?;
    tree.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(tree)
}

fn walk_dir(state_dir: &Path, dir: OwnedFd, rel: Vec<u8>, tree: &mut Tree) -> Result<()> {
    let mut entries = Vec::new();
    {
        let reader = rustix::fs::Dir::read_from(&dir).map_err(|e| io("readdir", state_dir.join(OsStr::from_bytes(&rel)), e))?;
        for entry in reader {
            let entry = match entry {
                Ok(e) => e,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(io("readdir", state_dir.join(OsStr::from_bytes(&rel)), e)),
            };
            let name = entry.file_name().to_bytes().to_vec();
            if name == b"." || name == b".." {
                continue;
            }
            entries.push(name);
        }
    }
    for name in entries {
        let mut child = rel.clone();
        child.push(b'/');
        child.extend_from_slice(&name);
        let os = OsStr::from_bytes(&name);
        let st = match statat(&dir, os, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue, // gone meanwhile
            Err(e) => return Err(io("stat", state_dir.join(OsStr::from_bytes(&child)), e)),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => match open_dir_at(&dir, os) {
                Ok(fd) => walk_dir(state_dir, fd, child, tree)?,
                Err(Errno::NOENT) => {}
                Err(Errno::LOOP | Errno::NOTDIR) => tree.symlinks.push(String::from_utf8_lossy(&child).into_owned()),
                Err(e) => return Err(io("open", state_dir.join(OsStr::from_bytes(&child)), e)),
            },
            FileType::RegularFile => {
                let utf8 = std::str::from_utf8(&child).is_ok();
                tree.files.push(TreeFile {
                    uri: String::from_utf8_lossy(&child).into_owned(),
                    rel: child,
                    utf8,
                    size: st.st_size as u64,
                    mtime_ms: st.st_mtime * 1000 + (st.st_mtime_nsec / 1_000_000) as i64,
                });
            }
            FileType::Symlink => tree.symlinks.push(String::from_utf8_lossy(&child).into_owned()),
            _ => {}
        }
    }
    Ok(())
}

/// The directory handle and last component of `rel` (bytes relative to the
/// state directory), every directory on the way opened without following
/// symbolic links. `Ok(None)` when a directory on the way does not exist.
fn parent_of(state_dir: &Path, rel: &[u8]) -> Result<Option<(OwnedFd, Vec<u8>)>> {
    let parts: Vec<&[u8]> = rel.split(|b| *b == b'/').filter(|p| !p.is_empty()).collect();
    let Some((last, dirs)) = parts.split_last() else {
        return Err(Error::PathEscapesStateDir { path: String::from_utf8_lossy(rel).into_owned() });
    };
    if parts.iter().any(|p| *p == b"." || *p == b"..") {
        return Err(Error::PathEscapesStateDir { path: String::from_utf8_lossy(rel).into_owned() });
    }
    let mut dir = openat(CWD, state_dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io("open", state_dir, e))?;
    for d in dirs {
        dir = match open_dir_at(&dir, OsStr::from_bytes(d)) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP | Errno::NOTDIR) => return Err(Error::PathEscapesStateDir { path: String::from_utf8_lossy(rel).into_owned() }),
            Err(e) => return Err(io("open", state_dir.join(OsStr::from_bytes(rel)), e)),
        };
    }
    Ok(Some((dir, last.to_vec())))
}

/// The directory that holds `rel` (for messages and sync observers).
fn parent_path(state_dir: &Path, rel: &[u8]) -> PathBuf {
    let p = state_dir.join(OsStr::from_bytes(rel));
    p.parent().map_or_else(|| state_dir.to_path_buf(), Path::to_path_buf)
}

/// Opens a regular file under the state directory for reading, following no
/// symbolic link on the way; `Ok(None)` if it does not exist.
pub fn open_file(state_dir: &Path, rel: &[u8]) -> Result<Option<File>> {
    let Some((dir, name)) = parent_of(state_dir, rel)? else { return Ok(None) };
    match openat(&dir, OsStr::from_bytes(&name), OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => {
            let f = File::from(fd);
            let is_file = f.metadata().map(|m| m.is_file()).unwrap_or(false);
            Ok(is_file.then_some(f))
        }
        Err(Errno::NOENT) => Ok(None),
        Err(Errno::LOOP) => Err(Error::PathEscapesStateDir { path: String::from_utf8_lossy(rel).into_owned() }),
        Err(e) => Err(io("open", state_dir.join(OsStr::from_bytes(rel)), e)),
    }
}

/// The 64-bit checksum (xxh3-64) and size of a file, read in blocks (any size).
pub fn hash(file: &mut File, path: &Path) -> Result<(u64, u64)> {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            return Ok((h.digest(), size));
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
}

/// What [`move_no_replace`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    Moved,
    /// The source was gone.
    SourceGone,
    /// Something is at the destination already: nothing was moved.
    Occupied,
    /// Source and destination are on different file systems: nothing was moved.
    OtherFileSystem,
}

/// Renames `from` to `to` (both relative to the state directory) without
/// ever replacing a file at `to` (`RENAME_NOREPLACE`), creating `to`'s
/// directory if needed, following no symbolic link.
pub fn move_no_replace(state_dir: &Path, from: &[u8], to: &[u8]) -> Result<Moved> {
    let Some((src_dir, src)) = parent_of(state_dir, from)? else { return Ok(Moved::SourceGone) };
    let dst = match parent_of(state_dir, to)? {
        Some(d) => d,
        None => {
            make_dirs(state_dir, to)?;
            match parent_of(state_dir, to)? {
                Some(d) => d,
                None => return Ok(Moved::SourceGone),
            }
        }
    };
    match renameat_with(&src_dir, OsStr::from_bytes(&src), &dst.0, OsStr::from_bytes(&dst.1), RenameFlags::NOREPLACE) {
        Ok(()) => {
            // Best effort: both files are garbage whichever entry a power loss keeps.
            let _ = crate::io::sync_dir_fd(crate::io::Site::GcMoveDir, &src_dir, &parent_path(state_dir, from));
            let _ = crate::io::sync_dir_fd(crate::io::Site::GcMoveDir, &dst.0, &parent_path(state_dir, to));
            Ok(Moved::Moved)
        }
        Err(Errno::NOENT) => Ok(Moved::SourceGone),
        Err(Errno::EXIST) => Ok(Moved::Occupied),
        Err(Errno::XDEV) => Ok(Moved::OtherFileSystem),
        Err(e) => Err(io("rename", state_dir.join(OsStr::from_bytes(from)), e)),
    }
}

/// Creates the directories of `rel`'s parent under the state directory.
fn make_dirs(state_dir: &Path, rel: &[u8]) -> Result<()> {
    let parts: Vec<&[u8]> = rel.split(|b| *b == b'/').filter(|p| !p.is_empty()).collect();
    let mut dir = openat(CWD, state_dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io("open", state_dir, e))?;
    for d in parts.iter().take(parts.len().saturating_sub(1)) {
        let name = OsStr::from_bytes(d);
        match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(io("mkdir", state_dir.join(OsStr::from_bytes(rel)), e)),
        }
        dir = open_dir_at(&dir, name).map_err(|e| match e {
            Errno::LOOP | Errno::NOTDIR => Error::PathEscapesStateDir { path: String::from_utf8_lossy(rel).into_owned() },
            e => io("open", state_dir.join(OsStr::from_bytes(rel)), e),
        })?;
    }
    Ok(())
}

/// Removes a file under the state directory (following no symbolic link);
/// false if it was gone already.
pub fn remove(state_dir: &Path, rel: &[u8]) -> Result<bool> {
    let Some((dir, name)) = parent_of(state_dir, rel)? else { return Ok(false) };
    match unlinkat(&dir, OsStr::from_bytes(&name), AtFlags::empty()) {
        Ok(()) => {
            let _ = crate::io::sync_dir_fd(crate::io::Site::GcRemoveDir, &dir, &parent_path(state_dir, rel));
            Ok(true)
        }
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(io("unlink", state_dir.join(OsStr::from_bytes(rel)), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_are_listed_never_followed() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("precious"), b"keep").unwrap();
        std::fs::create_dir_all(d.path().join("artifacts/SPY")).unwrap();
        std::fs::write(d.path().join("artifacts/SPY/a.bin"), b"abc").unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("artifacts/out")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("precious"), d.path().join("artifacts/SPY/link")).unwrap();
        std::fs::write(d.path().join("artifacts/SPY").join(OsStr::from_bytes(b"bad\xff")), b"x").unwrap();
        let t = walk(d.path()).unwrap();
        assert_eq!(
            t.files.iter().map(|f| (f.uri.as_str(), f.utf8)).collect::<Vec<_>>(),
            vec![("artifacts/SPY/a.bin", true), ("artifacts/SPY/bad\u{fffd}", false)]
        );
        assert_eq!(t.symlinks.len(), 2);
        assert!(open_file(d.path(), b"artifacts/out/precious").is_err());
        assert!(open_file(d.path(), b"artifacts/SPY/link").is_err());
        assert!(remove(d.path(), b"artifacts/out/precious").is_err());
        assert!(outside.path().join("precious").exists());
        // A symlinked artifacts directory is refused as a whole.
        let e = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), e.path().join("artifacts")).unwrap();
        assert!(walk(e.path()).unwrap().root_refused);
    }

    #[test]
    fn a_move_never_replaces_a_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("artifacts")).unwrap();
        std::fs::write(d.path().join("artifacts/old"), b"old").unwrap();
        std::fs::write(d.path().join("artifacts/new"), b"new").unwrap();
        assert_eq!(move_no_replace(d.path(), b"artifacts/old", b"artifacts/new").unwrap(), Moved::Occupied);
        assert_eq!(std::fs::read(d.path().join("artifacts/new")).unwrap(), b"new");
        assert_eq!(move_no_replace(d.path(), b"artifacts/old", b"gc-trash/x").unwrap(), Moved::Moved);
        assert_eq!(move_no_replace(d.path(), b"artifacts/old", b"gc-trash/y").unwrap(), Moved::SourceGone);
        let mut f = open_file(d.path(), b"gc-trash/x").unwrap().unwrap();
        assert_eq!(hash(&mut f, Path::new("x")).unwrap(), (xxhash_rust::xxh3::xxh3_64(b"old"), 3));
    }
}
