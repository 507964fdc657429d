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
