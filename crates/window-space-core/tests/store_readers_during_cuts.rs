//! Readers of a mapping table catch up without its file lock while an
//! appender, holding the lock, cuts a torn tail a dead writer left and
//! appends after it. A file shorter than it was a moment ago is its new end,
//! not an I/O error, and a record still being written is not damage: no
//! reader call fails, and every reader sees every record that was appended.
//!
//! Each `PayloadStore` here has its own open file description, so they lock
//! and read exactly as separate processes do.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rustix::fs::{flock, FlockOperation};
use window_space_core::payload::{encode_record, PayloadRecord, PayloadStore, StoreKind};

const CYCLES: u64 = 20_000;
/// Every this many cycles, a real append follows the cut.
const APPEND_EVERY: u64 = 50;

fn record(i: u64) -> PayloadRecord {
    PayloadRecord {
        payload_id: 0,
        symbol_id: 0,
        window_idx: i as u32,
        slot_kind: 1,
        payload_type: 1,
        checksum: i,
        size: 1,
        created_at_ns: 1,
        uri: format!("artifacts/{i}"),
    }
}

#[test]
fn readers_never_fail_while_torn_tails_are_cut_under_them() {
    // On tmpfs when there is one: appends cut with an fsync, which is free there.
    let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap();
    let path = dir.path().join("trades.map");
    PayloadStore::create(&path, StoreKind::Trades, 1).unwrap();
    let (appender, _) = PayloadStore::open(&path, StoreKind::Trades, false).unwrap();
    let appended = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (path, appended, done) = (path.clone(), appended.clone(), done.clone());
            std::thread::spawn(move || {
                let (store, _) = PayloadStore::open(&path, StoreKind::Trades, false).unwrap();
                let mut calls = 0u64;
                while !done.load(Ordering::Acquire) {
                    let acked = appended.load(Ordering::Acquire);
                    let len = store.len().unwrap_or_else(|e| panic!("reader {r}: len failed after {calls} calls: {e}"));
                    assert!(len >= acked, "reader {r}: {len} records, but {acked} were appended");
                    if acked > 0 {
                        store.check_exists(acked - 1).unwrap_or_else(|e| panic!("reader {r}: check_exists failed: {e}"));
                        let rec = store.get(acked - 1).unwrap_or_else(|e| panic!("reader {r}: get failed: {e}"));
                        assert_eq!(rec.map(|x| x.checksum), Some(acked - 1));
                    }
                    // An id never appended makes `get` catch up too.
                    assert!(store.get(1 << 40).unwrap_or_else(|e| panic!("reader {r}: get past the end failed: {e}")).is_none());
                    calls += 1;
                }
                calls
            })
        })
        .collect();

    // A writer that dies part way through its record leaves the start of it
    // at the end of the file (written holding the file lock, as appenders
    // do); the next appender, holding the lock, cuts it off.
    let tearer = OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let mut long = record(0);
    long.uri = "artifacts/".to_string() + &"x".repeat(3900);
    let torn = encode_record(&long).unwrap()[..3000].to_vec();
    let mut appends = 0;
    for i in 0..CYCLES {
        flock(&tearer, FlockOperation::LockExclusive).unwrap();
        let end = tearer.metadata().unwrap().len();
        tearer.write_all_at(&torn, end).unwrap();
        flock(&tearer, FlockOperation::Unlock).unwrap();
        if i % APPEND_EVERY == 0 {
            // The next append cuts the torn record off and writes after the last good one.
            assert_eq!(appender.append(record(appends)).unwrap(), appends);
            appends += 1;
            appended.store(appends, Ordering::Release);
        } else {
            // What an appender does first: under the lock, cut what a dead writer left.
            flock(&tearer, FlockOperation::LockExclusive).unwrap();
            tearer.set_len(end).unwrap();
            flock(&tearer, FlockOperation::Unlock).unwrap();
        }
    }
    done.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let (_, report) = PayloadStore::open(&path, StoreKind::Trades, false).unwrap();
    assert_eq!((report.records, report.torn_tail_bytes), (appends, 0));
}
