//! The artifact helper: writes an engine's output file atomically under
//! `<stateDir>/artifacts/`, computes its 64-bit checksum (xxh3-64, the same
//! function the format uses everywhere) and returns a URI relative to the
//! state directory. Paths that would leave the state directory are refused.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// Directory (under the state directory) that holds artifacts.
pub const ARTIFACT_DIR: &str = "artifacts";
const MAX_PATH_BYTES: usize = 1024;

/// A written artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactInfo {
    /// Path relative to the state directory, `/`-separated, e.g. `artifacts/SPY/4711.parquet`.
    pub uri: String,
    pub checksum: u64,
    pub size: u64,
}

/// The 64-bit checksum used for artifacts and records.
pub fn checksum(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// Validates an artifact path relative to `artifacts/`.
fn relative_components(rel: &str) -> Result<Vec<&str>> {
    let escape = || Error::PathEscapesStateDir { path: rel.chars().take(200).collect() };
    if rel.is_empty() || rel.len() > MAX_PATH_BYTES || rel.contains('\0') || rel.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "artifact path must be 1 to {MAX_PATH_BYTES} bytes without control characters, got {} bytes",
            rel.len()
        )));
    }
    let mut parts = Vec::new();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().ok_or_else(escape)?),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return Err(escape()),
        }
    }
    if parts.is_empty() {
        return Err(escape());
    }
    Ok(parts)
}

/// Checks the URI of a payload record: a path relative to the state
/// directory, `/`-separated, like those [`write_artifact`] returns. It must
/// not be empty, start with `/`, hold an empty, `.` or `..` component, or hold
/// NUL or another control character: such a URI could name a file outside
/// the state directory (or another file than it seems to), so it is refused
/// with `ERR_PATH_ESCAPES_STATE_DIR`.
pub fn check_uri(uri: &str) -> Result<()> {
    let escapes = uri.is_empty()
        || uri.starts_with('/')
        || uri.chars().any(char::is_control)
        || uri.split('/').any(|part| part.is_empty() || part == "." || part == "..");
    if escapes {
        return Err(Error::PathEscapesStateDir { path: uri.chars().take(200).collect() });
    }
    Ok(())
}

/// Resolves a URI returned by [`write_artifact`] to a path under `state_dir`.
pub fn resolve_uri(state_dir: &Path, uri: &str) -> Result<PathBuf> {
    let rest = uri.strip_prefix("artifacts/").ok_or_else(|| Error::PathEscapesStateDir { path: uri.chars().take(200).collect() })?;
    let parts = relative_components(rest)?;
    let mut p = state_dir.join(ARTIFACT_DIR);
    for part in parts {
        p.push(part);
    }
    Ok(p)
}

/// Writes `data` to `<state_dir>/artifacts/<rel>` atomically: temp file in the
/// same directory, fsync, rename, directory fsync. Existing directories on the
/// way must be real directories (a symlink could lead outside the state directory).
pub fn write_artifact(state_dir: &Path, rel: &str, data: &[u8]) -> Result<ArtifactInfo> {
    let parts = relative_components(rel)?;
    let (file_name, dirs) = parts.split_last().expect("at least one component");
    let mut dir = state_dir.join(ARTIFACT_DIR);
    ensure_real_dir(&dir, rel)?;
    for d in dirs {
        dir.push(d);
        ensure_real_dir(&dir, rel)?;
    }
    let target = dir.join(file_name);
    if let Ok(m) = std::fs::symlink_metadata(&target) {
        if !m.file_type().is_file() {
            return Err(Error::PathEscapesStateDir { path: rel.into() });
        }
    }
    write_atomic(&target, data)?;
    let mut uri = String::from(ARTIFACT_DIR);
    for p in &parts {
        uri.push('/');
        uri.push_str(p);
    }
    Ok(ArtifactInfo { uri, checksum: checksum(data), size: data.len() as u64 })
}

fn ensure_real_dir(dir: &Path, rel: &str) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_dir() => Ok(()),
        Ok(_) => Err(Error::PathEscapesStateDir { path: rel.into() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::create_dir(dir) {
            // The new directory's entry in its parent must survive power loss
            // too; if that cannot be made sure, the next attempt creates it again.
            Ok(()) => crate::fsutil::sync_dir(dir.parent().unwrap_or(Path::new("."))).inspect_err(|_| {
                let _ = std::fs::remove_dir(dir);
            }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => ensure_real_dir(dir, rel),
            Err(e) => Err(Error::io("mkdir", dir, e)),
        },
        Err(e) => Err(Error::io("stat", dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_and_refuses_escapes() {
        let d = tempfile::tempdir().unwrap();
        let a = write_artifact(d.path(), "SPY/1/trades.bin", b"hello").unwrap();
        assert_eq!(a.uri, "artifacts/SPY/1/trades.bin");
        assert_eq!(a.size, 5);
        assert_eq!(a.checksum, checksum(b"hello"));
        assert_eq!(std::fs::read(resolve_uri(d.path(), &a.uri).unwrap()).unwrap(), b"hello");
        for bad in ["../x", "/etc/passwd", "a/../../x", "", "."] {
            assert!(write_artifact(d.path(), bad, b"x").is_err(), "{bad}");
        }
        std::os::unix::fs::symlink("/tmp", d.path().join("artifacts/out")).unwrap();
        assert_eq!(write_artifact(d.path(), "out/x", b"x").unwrap_err().code(), "ERR_PATH_ESCAPES_STATE_DIR");
    }
}
