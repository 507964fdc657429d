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

/// Rewrites `symbol-map.json` with only its first `keep` symbols, as a
/// restore of an older backup of the map would: a valid map with its own
/// checksum (xxh3-64 of the compact JSON of its symbols).
pub fn keep_symbols(dir: &std::path::Path, keep: usize) {
    let p = dir.join("symbol-map.json");
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    doc["symbols"].as_array_mut().unwrap().truncate(keep);
    let sum = xxhash_rust::xxh3::xxh3_64(&serde_json::to_vec(&doc["symbols"]).unwrap());
    doc["checksum"] = format!("{sum:016x}").into();
    std::fs::write(&p, serde_json::to_vec(&doc).unwrap()).unwrap();
}
