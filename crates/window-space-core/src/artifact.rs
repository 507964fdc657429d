//! The artifact helper: writes an engine's output file atomically under
//! `<stateDir>/artifacts/`, computes its 64-bit checksum (xxh3-64, the same
//! function the format uses everywhere) and returns a URI relative to the
//! state directory. Paths that would leave the state directory are refused.
//!
//! ## Claim-bound artifacts
//!
//! An artifact written for a claim goes to a path that carries the claim:
//!
//! ```text
//! artifacts/<symbol>/<slot kind>/<window>/v<claim version>/<name>
//! ```
//!
//! `<symbol>` is the symbol with every byte outside `A-Z a-z 0-9 _ -`
//! written as `%XX` (so `BRK/B` is `BRK%2FB` and no symbol makes a `.` or
//! `..` component). Two attempts at one slot never share a path, so an
//! engine whose lease ran out (a zombie) can never overwrite the file of the
//! engine that took the slot over; and gc can tell from the path alone which
//! claim a file belongs to: while that claim is Pending the file is kept,
//! once the slot moved past it the file is garbage unless a live record
//! names it.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::io::{self, AtomicSites, Site};

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

/// The claim an artifact path names (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath {
    pub symbol: String,
    pub kind: crate::vocab::SlotKind,
    pub window: u32,
    pub version: u32,
    pub name: String,
}

fn encode_symbol(symbol: &str) -> String {
    let mut out = String::with_capacity(symbol.len());
    for b in symbol.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode_symbol(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' => {
                out.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// Checks the file name of a claim-bound artifact: one path component.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 || name == "." || name == ".." || name.contains('/') || name.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "artifact name must be one path component of 1 to 255 bytes without control characters, got {name:?}"
        )));
    }
    Ok(())
}

/// The path (relative to `artifacts/`) of a claim's artifact `name`.
pub fn claim_rel_path(symbol: &str, kind: crate::vocab::SlotKind, window: u32, version: u32, name: &str) -> Result<String> {
    check_name(name)?;
    Ok(format!("{}/{}/{window}/v{version}/{name}", encode_symbol(symbol), kind.name()))
}

/// The claim a URI (`artifacts/...`) names, if it has the claim-bound shape.
pub fn parse_claim_uri(uri: &str) -> Option<ClaimPath> {
    let rest = uri.strip_prefix("artifacts/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [symbol, kind, window, version, name] = parts.as_slice() else { return None };
    let kind = crate::vocab::SlotKind::from_name(kind)?;
    let window: u32 = window.parse().ok().filter(|_| !window.starts_with('+'))?;
    let version: u32 = version.strip_prefix('v')?.parse().ok()?;
    check_name(name).ok()?;
    Some(ClaimPath { symbol: decode_symbol(symbol)?, kind, window, version, name: (*name).to_string() })
}

/// Refuses, for an artifact at a path the engine chose, the two shapes gc
/// judges by the path alone: a claim's path (`SYMBOL/slotKind/window/vN/name`,
/// garbage once its claim is over) and an atomic write's temp file
/// (`.NAME.tmp-PID-N`, garbage once that process is gone). Written at such a
/// path, an artifact an engine still needs could be collected.
pub fn check_untied_path(rel: &str) -> Result<()> {
    let normal = relative_components(rel)?.join("/");
    if parse_claim_uri(&format!("{ARTIFACT_DIR}/{normal}")).is_some() {
        return Err(Error::invalid(format!(
            "artifact path {normal:?} has the shape of a claim's artifact (SYMBOL/slotKind/window/vN/name), which gc judges by that claim: write it with writeArtifact(claim, name, data), or choose another path"
        )));
    }
    if crate::fsutil::temp_writer(&normal).is_some() {
        return Err(Error::invalid(format!(
            "artifact path {normal:?} has the shape of an atomic write's temp file (.NAME.tmp-PID-N), which gc removes once that process is gone: choose another name"
        )));
    }
    Ok(())
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
/// As in `write_artifact`, every directory on the way that exists must be a
/// real directory and the file, if it exists, a regular file: a symlink
/// could make the path lead outside the state directory.
pub fn resolve_uri(state_dir: &Path, uri: &str) -> Result<PathBuf> {
    let escapes = || Error::PathEscapesStateDir { path: uri.chars().take(200).collect() };
    let rest = uri.strip_prefix("artifacts/").ok_or_else(escapes)?;
    let parts = relative_components(rest)?;
    let mut p = state_dir.join(ARTIFACT_DIR);
    let last = parts.len() - 1;
    for (i, part) in std::iter::once(None).chain(parts.iter().map(Some)).enumerate() {
        if let Some(part) = part {
            p.push(part);
        }
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_dir() && i <= last => {}
            Ok(m) if m.file_type().is_file() && i == last + 1 => {}
            Ok(_) => return Err(escapes()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                for part in &parts[i.min(parts.len())..] {
                    p.push(part);
                }
                return Ok(p);
            }
            Err(e) => return Err(Error::io("stat", &p, e)),
        }
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
    write_atomic(&target, data, AtomicSites::ARTIFACT)?;
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
            Ok(()) => io::sync_dir(Site::ArtifactMkdir, dir.parent().unwrap_or_else(|| Path::new("."))).inspect_err(|_| {
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
    fn claim_paths_round_trip_and_never_escape() {
        use crate::vocab::SlotKind;
        for symbol in ["SPY", "BRK/B", "..", ".", "a b", "Ünï", "%2F"] {
            let rel = claim_rel_path(symbol, SlotKind::Greeks, 4711, 9, "greeks.parquet").unwrap();
            assert!(!rel.split('/').any(|c| c == "." || c == ".."), "{rel}");
            let parsed = parse_claim_uri(&format!("artifacts/{rel}")).unwrap();
            assert_eq!((parsed.symbol.as_str(), parsed.kind, parsed.window, parsed.version), (symbol, SlotKind::Greeks, 4711, 9));
        }
        assert_eq!(claim_rel_path("BRK/B", SlotKind::OptionTrade, 1, 2, "t.json").unwrap(), "BRK%2FB/optionTrade/1/v2/t.json");
        for bad in ["", ".", "..", "a/b", "x\u{7}"] {
            assert!(claim_rel_path("SPY", SlotKind::Greeks, 0, 1, bad).is_err(), "{bad:?}");
        }
        for not_claim in [
            "artifacts/SPY/1.txt",
            "artifacts/SPY/nope/1/v2/x",
            "artifacts/SPY/greeks/x/v2/y",
            "artifacts/SPY/greeks/1/2/y",
            "artifacts/S%ZZ/greeks/1/v2/y",
        ] {
            assert!(parse_claim_uri(not_claim).is_none(), "{not_claim}");
        }
    }

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

    #[test]
    fn resolving_refuses_a_way_through_a_symlink_and_allows_files_not_written_yet() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("f.bin"), b"secret").unwrap();
        assert_eq!(resolve_uri(d.path(), "artifacts/SPY/1/x.bin").unwrap(), d.path().join("artifacts/SPY/1/x.bin"), "nothing exists yet");
        write_artifact(d.path(), "SPY/1/trades.bin", b"hello").unwrap();
        assert_eq!(resolve_uri(d.path(), "artifacts/SPY/1/other.bin").unwrap(), d.path().join("artifacts/SPY/1/other.bin"));
        std::os::unix::fs::symlink(outside.path(), d.path().join("artifacts/ln")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("f.bin"), d.path().join("artifacts/SPY/1/link.bin")).unwrap();
        for uri in ["artifacts/ln/f.bin", "artifacts/ln", "artifacts/SPY/1/link.bin", "artifacts/SPY/1/trades.bin/x"] {
            assert_eq!(resolve_uri(d.path(), uri).unwrap_err().code(), "ERR_PATH_ESCAPES_STATE_DIR", "{uri}");
        }
        let moved = tempfile::tempdir().unwrap();
        std::fs::rename(d.path().join("artifacts"), moved.path().join("a")).unwrap();
        std::os::unix::fs::symlink(moved.path().join("a"), d.path().join("artifacts")).unwrap();
        assert_eq!(
            resolve_uri(d.path(), "artifacts/SPY/1/trades.bin").unwrap_err().code(),
            "ERR_PATH_ESCAPES_STATE_DIR",
            "artifacts/ itself"
        );
    }

    #[test]
    fn an_engine_chosen_path_may_not_take_a_shape_gc_judges_by_the_path() {
        for claim_shaped in ["SPY/optionTrade/5/v7/out.json", "./SPY//greeks/0/v1/g.parquet", "BRK%2FB/optionTrade/1/v2/t.json"] {
            let e = check_untied_path(claim_shaped).unwrap_err();
            assert!(e.to_string().contains("shape of a claim's artifact"), "{claim_shaped}: {e}");
        }
        for temp_shaped in ["SPY/.w5.json.tmp-4000000-1", ".x.tmp-1-2"] {
            let e = check_untied_path(temp_shaped).unwrap_err();
            assert!(e.to_string().contains("temp file"), "{temp_shaped}: {e}");
        }
        for fine in ["SPY/optionTrade/5/out.json", "SPY/optionTrade/5/v7", "SPY/bogusKind/5/v7/x", "SPY/.hidden.json", "SPY/x.tmp-1-2"] {
            assert!(check_untied_path(fine).is_ok(), "{fine}");
        }
    }
}
