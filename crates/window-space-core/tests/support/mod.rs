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

/// Runs this test binary again as the test `role` with `envs`, and kills it
/// (SIGKILL) once it prints `AT-POINT` (the role stops for good at a
/// failpoint and says so). Panics if the role ends first.
pub fn kill_role_at_point(role: &str, envs: &[(&str, String)]) {
    use std::io::BufRead;
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", role, "--nocapture", "--test-threads=1"]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::inherit()).spawn().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let (mut line, mut seen) = (String::new(), String::new());
    while out.read_line(&mut line).unwrap() > 0 {
        if line.contains("AT-POINT") {
            child.kill().unwrap();
            child.wait().unwrap();
            return;
        }
        seen.push_str(&line);
        line.clear();
    }
    panic!("{role} with {envs:?} ended before its point: {:?}\n{seen}", child.wait());
}

/// Adds `name` to a version-1 `symbol-map.json` in `dir`, as a library of
/// that format would (the map's checksum: xxh3-64 of its symbols' compact JSON).
pub fn add_to_v1_symbol_map(dir: &std::path::Path, name: &str) {
    let p = dir.join("symbol-map.json");
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    doc["symbols"].as_array_mut().unwrap().push(name.into());
    let sum = xxhash_rust::xxh3::xxh3_64(&serde_json::to_vec(&doc["symbols"]).unwrap());
    doc["checksum"] = format!("{sum:016x}").into();
    std::fs::write(&p, serde_json::to_vec(&doc).unwrap()).unwrap();
}
