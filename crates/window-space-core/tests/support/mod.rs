//! Helpers shared by the disk-fault and power-loss tests (each uses part of
//! them, hence `dead_code` is allowed here).

#![allow(dead_code)]

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
