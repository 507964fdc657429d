//! Ledger growth on a real, small, full file system: a loop-mounted ext4
//! with 1 KiB blocks, where `fallocate` can extend a file part way before it
//! fails with ENOSPC. The failed growth is a `DiskFullError`, the ledger
//! keeps a whole number of chunks, every later bootstrap opens it, and
//! growth goes on once space is freed.
//!
//! Needs root and loop devices; where either is missing the test prints why
//! and passes without running (the deterministic variant, with the growth
//! cut part way by a failpoint, is in `crash_points.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

use window_space_core::{Config, Controller, ErrorCode, LedgerKind, SlotAddr, SlotKind, WindowSpace};

/// A mounted ext4 image; unmounted (and its loop device freed) on drop.
struct SmallDisk {
    mnt: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(kib: u64) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let img = dir.path().join("fs.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).map_err(|e| e.to_string())?;
        std::fs::File::create(&img).and_then(|f| f.set_len(kib * 1024)).map_err(|e| e.to_string())?;
        run("mkfs.ext4", &["-q", "-F", "-b", "1024", "-m", "0", "-O", "^has_journal", path(&img)])?;
        run("mount", &["-o", "loop", path(&img), path(&mnt)])?;
        Ok(Self { mnt, _dir: dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(cmd).args(args).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Err(format!("{cmd}: {e}")),
    }
}

fn config(dir: &Path) -> Config {
    let mut c = Config::new(dir, WindowSpace::Uniform { origin_ns: 0, window_ns: 1_000_000_000, window_count: 146 * 400 });
    c.journal_capacity = 64;
    c
}

const CHUNK: u64 = 32 * 1024;

#[test]
fn ledger_growth_on_a_full_1k_block_ext4_keeps_whole_chunks_and_goes_on_after_space_is_freed() {
    let disk = match SmallDisk::mount(6144) {
        Ok(d) => d,
        Err(why) => {
            println!("skipped: no loop-mounted ext4 here ({why})");
            return;
        }
    };
    let state = disk.mnt.join("state");
    let filler = disk.mnt.join("filler");
    let (c, _) = Controller::bootstrap(config(&state)).unwrap();
    // Space to free later.
    std::fs::write(&filler, vec![1u8; 2 << 20]).unwrap();
    let s = c.resolve_symbol("FULL").unwrap();
    let ledger = state.join(LedgerKind::Trade.file_name());
    let rpc = c.ledger_of(LedgerKind::Trade).geometry().rows_per_chunk;
    let mut chunk = 0;
    let failed = loop {
        match c.claim(SlotAddr::new(s, chunk * rpc, SlotKind::OptionTrade), None) {
            Ok(_) => chunk += 1,
            Err(e) => break e,
        }
        assert!(chunk < 400, "the disk never filled up");
    };
    assert_eq!(failed.code(), ErrorCode::DiskFull, "{failed}");
    let len = std::fs::metadata(&ledger).unwrap().len();
    assert_eq!((len - 4096) % CHUNK, 0, "the failed growth left {len} bytes: not a whole number of chunks");
    drop(c);
    // Every later bootstrap opens it, also before any space is freed.
    let (c, _) = Controller::bootstrap(config(&state)).unwrap();
    assert_eq!(c.claim(SlotAddr::new(s, chunk * rpc, SlotKind::OptionTrade), None).unwrap_err().code(), ErrorCode::DiskFull);
    std::fs::remove_file(&filler).unwrap();
    c.claim(SlotAddr::new(s, chunk * rpc, SlotKind::OptionTrade), None).unwrap();
    assert_eq!(c.slot_metrics(), c.recount().unwrap());
    drop(c);
    let (c, _) = Controller::bootstrap(config(&state)).unwrap();
    assert_eq!(c.recount().unwrap().iter().find(|m| m.kind == SlotKind::OptionTrade).unwrap().counts[1], u64::from(chunk) + 1);
}
