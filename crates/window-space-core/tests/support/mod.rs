//! Helpers shared by the disk-fault, power-loss and repair tests (each uses
//! part of them, hence `dead_code` is allowed here).

#![allow(dead_code)]

// The sync observer it stands on exists only in builds with failpoints.
#[cfg(feature = "failpoints")]
pub mod crash_image;

/// A new directory for one run: in memory (`/dev/shm`) where the machine has
/// it, since these tests check what each call reports and leaves (and what
/// the sync observer says became durable), and a real disk's fsyncs would
/// only make them slower.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new().prefix("ws-test-").tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

/// Cuts `symbols.log` after its first `keep` symbols, as a restore of an
/// older backup of the log would: a valid log of fewer symbols.
pub fn keep_symbols(dir: &std::path::Path, keep: usize) {
    use window_space_core::symbols::{parse_record, ParsedRecord, SymbolMap, HEADER_BYTES};
    let p = dir.join(SymbolMap::FILE_NAME);
    let bytes = std::fs::read(&p).unwrap();
    let mut end = HEADER_BYTES as usize;
    for _ in 0..keep {
        match parse_record(&bytes[end..]) {
            ParsedRecord::Symbol { len, .. } => end += len,
            other => panic!("symbols.log holds fewer than {keep} symbols: {other:?}"),
        }
    }
    std::fs::write(&p, &bytes[..end]).unwrap();
}

/// The state directory of format version 1 kept in the repository
/// (`__test__/fixtures/v1-state`, written by the library of that format),
/// and what it holds (`v1-state.expected.json`).
pub fn v1_fixture() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/v1-state")
}

pub fn v1_fixture_expected() -> serde_json::Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/v1-state.expected.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Copies a directory tree (files and directories only).
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// A copy of the version-1 fixture in a new scratch directory, as `<tmp>/state`.
pub fn v1_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let root = scratch_dir();
    let dir = root.path().join("state");
    copy_tree(&v1_fixture(), &dir);
    (root, dir)
}
