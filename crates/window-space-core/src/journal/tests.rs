use std::sync::Arc;
use std::time::Duration;

use super::writers::{self, owner_of, taking_from, CELLS};
use super::*;

fn journal(capacity: u64) -> (tempfile::TempDir, Journal) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(JOURNAL_FILE);
    Journal::create(&p, capacity, 1).unwrap();
    let j = Journal::open(&p).unwrap();
    (d, j)
}

fn read(j: &Journal, from: u64, max: usize) -> JournalRead {
    j.read(j.epoch(), from, max)
}

fn entries(r: JournalRead) -> Vec<Change> {
    match r {
        JournalRead::Entries { changes, .. } => changes,
        JournalRead::Gap { resume_at, reason } => panic!("unexpected gap ({reason:?}), resume at {resume_at}"),
    }
}

fn at(window: u32) -> SlotAddr {
    SlotAddr::new(0, window, SlotKind::Greeks)
}

/// The pid of a process that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// A cell no writer holds now.
fn unheld(j: &Journal) -> usize {
    (0..CELLS).find(|c| !j.held_cells().iter().any(|h| h.0 == *c)).unwrap()
}

/// A dead process's owner word (its pid, any start time).
fn dead_owner() -> u64 {
    u64::from(dead_pid()) | (12_345 << 32)
}

#[test]
fn records_read_back_in_order_with_every_field() {
    let (_d, j) = journal(64);
    j.record(SlotAddr::new(3, 70_000, SlotKind::Greeks), SlotStatus::Pending, SlotStatus::Filled, 9, 1234);
    j.record(SlotAddr::new(u32::MAX, u32::MAX, SlotKind::RfRate), SlotStatus::Empty, SlotStatus::Pending, u32::MAX, 0);
    let got = entries(read(&j, 0, 10));
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0],
        Change {
            seq: 0,
            symbol: 3,
            window_idx: 70_000,
            kind: SlotKind::Greeks,
            from: SlotStatus::Pending,
            to: SlotStatus::Filled,
            version: 9,
            payload_id: 1234
        }
    );
    assert_eq!((got[1].symbol, got[1].window_idx, got[1].version, got[1].kind), (u32::MAX, u32::MAX, u32::MAX, SlotKind::RfRate));
    assert_eq!(entries(read(&j, 1, 10)).len(), 1);
    assert_eq!(entries(read(&j, 2, 10)).len(), 0);
    assert_eq!(entries(read(&j, 0, 1)).len(), 1);
}

#[test]
fn a_reader_overtaken_by_the_ring_gets_a_gap_never_wrong_entries() {
    let (_d, j) = journal(64);
    for i in 0..100u32 {
        j.record(SlotAddr::new(0, i, SlotKind::OptionTrade), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
    }
    assert_eq!(read(&j, 0, 1000), JournalRead::Gap { resume_at: 36, reason: GapReason::Overtaken });
    let tail = entries(read(&j, 36, 1000));
    assert_eq!(tail.len(), 64);
    assert!(tail.iter().enumerate().all(|(i, c)| c.seq == 36 + i as u64 && c.window_idx == 36 + i as u32));
}

#[test]
fn a_position_of_another_journal_or_past_the_head_is_a_gap() {
    let (_d, j) = journal(64);
    let (_e, other) = journal(64);
    assert_ne!(j.epoch(), other.epoch());
    assert_ne!(j.epoch(), 0);
    for w in 0..3 {
        j.record(at(w), SlotStatus::Empty, SlotStatus::Retired, 1, 0);
    }
    assert_eq!(j.read(other.epoch(), 1, 10), JournalRead::Gap { resume_at: 3, reason: GapReason::OtherJournal });
    assert_eq!(read(&j, 4, 10), JournalRead::Gap { resume_at: 3, reason: GapReason::Ahead });
    assert_eq!(entries(read(&j, 3, 10)), vec![]);
}

/// The journal's crash points, in the order a writer passes them.
#[cfg(feature = "failpoints")]
const STEPS: [&str; 5] = ["journal::cell-taken", "journal::numbered", "journal::reserved", "journal::changed", "journal::committed"];

#[cfg(feature = "failpoints")]
#[test]
fn a_writer_passes_its_steps_in_order_and_a_refused_one_skips_the_change() {
    let scenario = fail::FailScenario::setup();
    let (_d, j) = journal(64);
    // Other tests of this binary write journals meanwhile: note this thread's steps only.
    let me = std::thread::current().id();
    let steps = Arc::new(std::sync::Mutex::new(Vec::new()));
    for step in STEPS {
        let s = steps.clone();
        fail::cfg_callback(step, move || {
            if std::thread::current().id() == me {
                s.lock().unwrap().push(step);
            }
        })
        .unwrap();
    }
    j.record(at(1), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
    let committed = std::mem::take(&mut *steps.lock().unwrap());
    drop(j.reserve());
    let refused = std::mem::take(&mut *steps.lock().unwrap());
    scenario.teardown();
    assert_eq!(committed, STEPS.to_vec());
    assert_eq!(refused, STEPS.into_iter().filter(|s| *s != "journal::changed").collect::<Vec<_>>());
}

#[test]
fn a_dropped_reservation_is_skipped() {
    let (_d, j) = journal(64);
    j.record(at(1), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
    drop(j.reserve()); // a refused transition
    j.record(at(2), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
    match read(&j, 0, 10) {
        JournalRead::Entries { changes, next, end } => {
            assert_eq!(changes.iter().map(|c| (c.seq, c.window_idx)).collect::<Vec<_>>(), vec![(0, 1), (2, 2)]);
            assert_eq!((next, end), (3, ReadEnd::Read));
        }
        other => panic!("{other:?}"),
    }
    assert!(j.held_cells().is_empty(), "every cell is free again");
}

#[test]
fn an_entry_whose_writer_lives_is_in_flight_however_long_it_takes() {
    let (_d, j) = journal(64);
    j.record(at(1), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
    // A writer of this process between its number and its entry (stopped,
    // for all a reader can tell), while another one commits after it.
    let held = j.reserve();
    j.record(at(3), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
    for _ in 0..3 {
        match read(&j, 0, 10) {
            JournalRead::Entries { changes, next, end } => {
                assert_eq!((changes.len(), next, end), (1, 1, ReadEnd::InFlight));
            }
            other => panic!("{other:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    held.commit(at(2), Transition { from: SlotStatus::Empty, to: SlotStatus::Pending, version: 1 }, 0);
    assert_eq!(entries(read(&j, 0, 10)).iter().map(|c| c.window_idx).collect::<Vec<_>>(), vec![1, 2, 3]);
}

#[test]
fn an_entry_whose_writer_died_is_abandoned_a_gap_of_that_entry_only() {
    let (_d, j) = journal(64);
    j.record(at(1), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
    // A dead process's writer took number 1 (and its cell shows it).
    let seq = j.word(OFF_HEAD).fetch_add(1, Ordering::SeqCst);
    j.forge_cell(unheld(&j), dead_owner(), seq + 1);
    j.record(at(3), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
    match read(&j, 0, 10) {
        JournalRead::Entries { changes, next, end } => {
            assert_eq!((changes.len(), next, end), (1, 1, ReadEnd::Abandoned));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(entries(read(&j, 2, 10))[0].window_idx, 3);
}

#[test]
fn a_dead_writer_that_had_not_shown_its_number_yet_is_judged_dead_too() {
    let (_d, j) = journal(64);
    // Died between its fetch_add and showing the number: the cell still says "taking".
    j.forge_cell(3, dead_owner(), taking_from(0));
    let seq = j.word(OFF_HEAD).fetch_add(1, Ordering::SeqCst);
    assert_eq!(seq, 0);
    assert!(matches!(read(&j, 0, 10), JournalRead::Entries { end: ReadEnd::Abandoned, next: 0, .. }));
}

#[test]
fn a_live_writer_taking_a_number_delays_the_verdict_only_if_it_may_get_that_number() {
    let (_d, j) = journal(64);
    let dead = j.word(OFF_HEAD).fetch_add(1, Ordering::SeqCst); // 0, its writer died
    j.forge_cell(1, dead_owner(), dead + 1);
    j.record(at(2), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
    // A live writer (this process) taking a number, having seen the head at 0: it may get 0.
    j.forge_cell(2, owner_of(std::process::id()), taking_from(0));
    assert!(matches!(read(&j, 0, 10), JournalRead::Entries { end: ReadEnd::InFlight, .. }));
    // One that saw the head at 1 cannot get 0.
    j.forge_cell(2, owner_of(std::process::id()), taking_from(1));
    assert!(matches!(read(&j, 0, 10), JournalRead::Entries { end: ReadEnd::Abandoned, .. }));
}

#[test]
fn a_recycled_pid_and_a_zombie_are_not_the_writer() {
    let (_d, j) = journal(64);
    let seq = j.word(OFF_HEAD).fetch_add(1, Ordering::SeqCst);
    // This very process's pid, with another start time: a pid the writer had, recycled.
    let me = owner_of(std::process::id());
    j.forge_cell(0, me ^ (1 << 40), seq + 1);
    assert!(matches!(read(&j, 0, 10), JournalRead::Entries { end: ReadEnd::Abandoned, .. }));
    // A child that exited but is not reaped yet.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    while std::fs::read_to_string(format!("/proc/{}/stat", child.id())).is_ok_and(|s| !s.contains(") Z ")) {
        std::thread::sleep(Duration::from_millis(5));
    }
    j.forge_cell(0, owner_of(child.id()), seq + 1);
    assert!(matches!(read(&j, 0, 10), JournalRead::Entries { end: ReadEnd::Abandoned, .. }));
    child.wait().unwrap();
    // The same cell with the live owner word: in flight.
    j.forge_cell(0, me, seq + 1);
    assert!(matches!(read(&j, 0, 10), JournalRead::Entries { end: ReadEnd::InFlight, .. }));
}

#[test]
fn writers_take_over_cells_of_dead_processes_when_none_is_free() {
    let (_d, j) = journal(64);
    let dead = dead_owner();
    for c in 0..CELLS {
        j.forge_cell(c, dead, taking_from(0));
    }
    j.record(at(1), SlotStatus::Empty, SlotStatus::Retired, 1, 0);
    assert_eq!(entries(read(&j, 0, 10)).len(), 1);
    assert_eq!(j.held_cells().len(), CELLS - 1, "one dead cell was taken over and freed");
    j.reset_shared_state();
    assert!(j.held_cells().is_empty());
}

#[test]
fn a_sleeper_is_woken_by_a_writer_on_another_thread() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(JOURNAL_FILE);
    Journal::create(&p, 64, 1).unwrap();
    let reader = Journal::open(&p).unwrap();
    let writer = Arc::new(Journal::open(&p).unwrap());
    let w = writer.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        w.record(at(7), SlotStatus::Pending, SlotStatus::Filled, 2, 5);
    });
    // Sleep until the change arrives; the long timeout is only a backstop.
    loop {
        let seen = reader.wake_word();
        if reader.head() > 0 {
            break;
        }
        reader.wait(seen, 0, &[], Duration::from_secs(30));
    }
    t.join().unwrap();
    assert_eq!(entries(read(&reader, 0, 10))[0].window_idx, 7);
}

#[test]
fn a_sleeper_waiting_for_an_entry_in_flight_is_woken_by_its_commit() {
    let (_d, j) = journal(64);
    let j = Arc::new(j);
    let held = j.reserve();
    let r = j.clone();
    let t = std::thread::spawn(move || {
        let mut f = Follower::new(&r);
        assert!(f.look(&r).news, "the first look always has news");
        let mut looks = 0;
        loop {
            let seen = r.wake_word();
            let look = f.look(&r);
            if look.news {
                return looks;
            }
            looks += 1;
            r.wait(seen, look.head, &f.waiting_on(), Duration::from_secs(30));
        }
    });
    std::thread::sleep(Duration::from_millis(50));
    held.commit(at(1), Transition { from: SlotStatus::Empty, to: SlotStatus::Pending, version: 1 }, 0);
    assert!(t.join().unwrap() >= 1);
}

#[test]
fn a_follower_tells_of_commits_behind_a_stopped_writer_and_of_a_writer_that_died() {
    let (_d, j) = journal(64);
    let mut f = Follower::new(&j);
    assert!(f.look(&j).news);
    assert!(!f.look(&j).news);
    let stopped = j.reserve(); // alive, never commits during this test
    assert!(!f.look(&j).news, "a writer in flight is no news");
    j.record(at(2), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
    assert!(f.look(&j).news, "a commit behind a stopped writer is news");
    assert!(!f.look(&j).news);
    assert!(f.in_flight());
    // A writer that dies holding its number: news once it is judged, on a
    // later look than the one that first saw the entry.
    let dead = j.word(OFF_HEAD).fetch_add(1, Ordering::SeqCst);
    j.forge_cell(unheld(&j), dead_owner(), dead + 1);
    assert!(!f.look(&j).news);
    assert!(f.look(&j).news);
    assert!(!f.look(&j).news);
    drop(stopped);
    assert!(f.look(&j).news, "its no-change entry ends the wait of readers stuck on it");
    assert!(!f.in_flight());
}

#[test]
fn a_follower_tells_when_a_writer_in_flight_at_its_start_commits_a_number_below_it() {
    let (_d, j) = journal(64);
    let before = j.reserve(); // number 0, taken before the follower starts
    j.record(at(2), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
    let mut f = Follower::new(&j);
    assert!(f.look(&j).news);
    assert!(!f.look(&j).news);
    assert_eq!(f.waiting_on(), vec![0]);
    before.commit(at(1), Transition { from: SlotStatus::Empty, to: SlotStatus::Pending, version: 1 }, 0);
    assert!(f.look(&j).news);
    assert!(!f.in_flight());
}

#[test]
fn racing_writers_fill_every_number_once() {
    let (_d, j) = journal(1 << 12);
    let j = Arc::new(j);
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let j = j.clone();
            std::thread::spawn(move || {
                for i in 0..500u32 {
                    j.record(SlotAddr::new(t, i, SlotKind::OptionQuote), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let got = entries(read(&j, 0, 4096));
    assert_eq!(got.len(), 2000);
    let mut seen: Vec<(u32, u32)> = got.iter().map(|c| (c.symbol, c.window_idx)).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 2000);
    assert!(j.held_cells().is_empty());
}

#[test]
fn damaged_headers_are_refused_with_the_offset() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(JOURNAL_FILE);
    Journal::create(&p, 64, 1).unwrap();
    let good = std::fs::read(&p).unwrap();
    for (at, what) in [(0usize, "magic"), (8, "version"), (20, "capacity"), (33, "epoch"), (41, "boot id")] {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        std::fs::write(&p, &bad).unwrap();
        let e = Journal::open(&p).err().unwrap_or_else(|| panic!("flipped {what} byte accepted"));
        // A version byte flipped upwards reads as a newer format.
        let newer = matches!(e, Error::NewerFormat { version, .. } if version == FORMAT_VERSION ^ 0x40);
        assert!(newer || matches!(e, Error::CorruptState { .. }), "{e}");
    }
    std::fs::write(&p, &good[..file_bytes(64) as usize - 32]).unwrap();
    assert!(matches!(Journal::open(&p), Err(Error::CorruptState { .. })));
    std::fs::write(&p, &good[..100]).unwrap();
    assert!(matches!(Journal::open(&p), Err(Error::CorruptState { .. })));
    assert!(Journal::create(&p, 100, 1).is_err(), "capacity must be a power of two");
}

#[test]
fn a_journal_is_made_with_every_block_allocated_and_its_header_says_where() {
    use std::os::unix::fs::MetadataExt;
    let (d, j) = journal(1 << 12);
    let m = std::fs::metadata(d.path().join(JOURNAL_FILE)).unwrap();
    assert_eq!(m.len(), file_bytes(1 << 12));
    assert!(m.blocks() * 512 >= m.len(), "{} of {} bytes allocated", m.blocks() * 512, m.len());
    let h = j.header();
    assert_eq!((h.capacity, h.created_at_ns, h.boot_id), (1 << 12, 1, boot_id()));
    assert_eq!(OFF_ENTRIES, 8192);
    assert!(!d.path().join("changes.journal.tmp").exists());
}

/// Rewrites header bytes and the header checksum.
fn rewrite_header(path: &Path, at: usize, bytes: &[u8]) {
    let mut b = std::fs::read(path).unwrap();
    b[at..at + bytes.len()].copy_from_slice(bytes);
    let sum = xxhash_rust::xxh3::xxh3_64(&b[..OFF_CHECKSUM]);
    b[OFF_CHECKSUM..OFF_CHECKSUM + 8].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(path, b).unwrap();
}

#[test]
fn a_bootstrap_alone_makes_anew_a_journal_of_another_version_or_boot_and_one_not_alone_refuses_or_keeps_it() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(JOURNAL_FILE);
    Journal::create(&p, 64, 1).unwrap();
    assert!(Journal::open_in_bootstrap(&p, true).unwrap().is_some());
    // Made before the host last started: made anew when alone, kept otherwise.
    rewrite_header(&p, OFF_BOOT_ID, &[7; 16]);
    if boot_id() != [0; 16] {
        assert!(Journal::open_in_bootstrap(&p, true).unwrap().is_none());
    }
    assert!(Journal::open_in_bootstrap(&p, false).unwrap().is_some());
    // Format versions 1 and 2 (older libraries') and 4 (a newer one's).
    for version in [1u32, 2, 4] {
        rewrite_header(&p, OFF_VERSION, &version.to_le_bytes());
        let before = std::fs::read(&p).unwrap();
        assert!(Journal::open_in_bootstrap(&p, true).unwrap().is_none());
        let e = Journal::open_in_bootstrap(&p, false).err().expect("refused while others are open");
        if version < FORMAT_VERSION {
            assert!(matches!(e, Error::CorruptState { offset: Some(8), .. }), "{e}");
            assert!(e.to_string().contains("close them"), "{e}");
        } else {
            assert!(matches!(e, Error::NewerFormat { version: 4, .. }), "{e}");
        }
        assert_eq!(std::fs::read(&p).unwrap(), before, "nothing written");
    }
    // Version 0 was never written: damage, also when alone.
    rewrite_header(&p, OFF_VERSION, &0u32.to_le_bytes());
    assert!(matches!(Journal::open_in_bootstrap(&p, true), Err(Error::CorruptState { .. })));
}

#[test]
fn held_numbers_of_number_words() {
    assert_eq!(writers::held_number(5), Some(4));
    assert_eq!(writers::held_number(0), None);
    assert_eq!(writers::held_number(taking_from(3)), None);
}

mod bootstrap {
    use super::*;
    use crate::controller::{Config, Controller};
    use crate::schedule::WindowSpace;

    fn config(dir: &Path) -> Config {
        Config::new(dir, WindowSpace::Uniform { origin_ns: 0, window_ns: 1_000_000_000, window_count: 16 })
    }

    fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
            .collect();
        v.sort();
        v
    }

    /// A state directory whose journal has numbered a few changes; returns the position after them.
    fn used() -> (tempfile::TempDir, u64, u64) {
        let d = tempfile::tempdir().unwrap();
        let (c, _) = Controller::bootstrap(config(d.path())).unwrap();
        let s = c.resolve_symbol("A").unwrap();
        for w in 0..3 {
            c.retire(SlotAddr::new(s, w, SlotKind::Greeks), &Default::default()).unwrap();
        }
        let position = (c.journal().epoch(), c.journal().head());
        (d, position.0, position.1)
    }

    #[test]
    fn a_journal_of_another_format_is_made_anew_alone_and_refused_with_others_open_changing_nothing() {
        let (d, epoch, seq) = used();
        let p = d.path().join(JOURNAL_FILE);
        rewrite_header(&p, OFF_VERSION, &1u32.to_le_bytes());
        let other = Controller::open_existing(d.path(), crate::Durability::Buffered, None);
        // Opening it alone made it anew: a new epoch, numbering from 0.
        let (other, _) = other.unwrap();
        assert_ne!(other.journal().epoch(), epoch);
        assert_eq!(other.journal().head(), 0);
        assert_eq!(other.journal().read(epoch, seq, 10), JournalRead::Gap { resume_at: 0, reason: GapReason::OtherJournal });
        // With that controller open, a journal of format version 1 is refused.
        rewrite_header(&p, OFF_VERSION, &1u32.to_le_bytes());
        let before = files(d.path());
        let e = Controller::bootstrap(config(d.path())).err().expect("refused while another controller is open");
        assert_eq!(e.code(), "ERR_CORRUPT_STATE");
        assert!(e.to_string().contains("changes.journal") && e.to_string().contains("close them"), "{e}");
        assert_eq!(files(d.path()), before);
    }

    #[test]
    fn a_journal_made_before_the_host_last_started_is_made_anew_by_a_bootstrap_alone() {
        if boot_id() == [0; 16] {
            return; // this kernel does not say which boot it is
        }
        let (d, epoch, _) = used();
        let p = d.path().join(JOURNAL_FILE);
        rewrite_header(&p, OFF_BOOT_ID, &[9; 16]);
        let (c, _) = Controller::bootstrap(config(d.path())).unwrap();
        assert_ne!(c.journal().epoch(), epoch);
        assert_eq!((c.journal().head(), c.journal().header().boot_id), (0, boot_id()));
    }

    #[test]
    fn a_bootstrap_alone_frees_the_cells_of_writers_that_died() {
        let (d, epoch, _) = used();
        {
            let j = Journal::open(&d.path().join(JOURNAL_FILE)).unwrap();
            j.forge_cell(5, dead_owner(), 2);
        }
        let (c, _) = Controller::bootstrap(config(d.path())).unwrap();
        assert_eq!(c.journal().epoch(), epoch, "the same journal");
        assert!(c.journal().held_cells().is_empty());
    }

    #[test]
    fn a_journal_that_cannot_be_made_for_a_full_disk_fails_the_bootstrap_and_keeps_the_old_one() {
        // Made anew (format version 1 found) in a directory where no file can grow past 0 bytes.
        let (d, _, _) = used();
        let p = d.path().join(JOURNAL_FILE);
        rewrite_header(&p, OFF_VERSION, &1u32.to_le_bytes());
        let before = files(d.path());
        let blocker = d.path().join("changes.journal.tmp");
        std::fs::create_dir(&blocker).unwrap(); // the temporary file cannot be created
        let e = Controller::bootstrap(config(d.path())).err().expect("cannot make the journal");
        assert!(e.to_string().contains("changes.journal.tmp"), "{e}");
        std::fs::remove_dir(&blocker).unwrap();
        assert_eq!(files(d.path()), before);
    }
}

#[test]
fn a_reader_racing_writers_never_reports_a_gap_the_ring_did_not_make() {
    // Readers load an entry while writers write it: a marker unset at the
    // first load and set at the second is an entry being committed, not one
    // the ring overtook.
    let (_d, j) = journal(1 << 20);
    let j = Arc::new(j);
    let total = 2 * 100_000u64;
    let writers: Vec<_> = (0..2u32)
        .map(|t| {
            let j = j.clone();
            std::thread::spawn(move || {
                for i in 0..100_000u32 {
                    j.record(SlotAddr::new(t, i, SlotKind::OptionQuote), SlotStatus::Empty, SlotStatus::Pending, 1, 0);
                }
            })
        })
        .collect();
    let (mut from, mut seen) = (0, 0u64);
    while seen < total {
        match read(&j, from, 4096) {
            JournalRead::Entries { changes, next, .. } => {
                seen += changes.len() as u64;
                from = next;
            }
            JournalRead::Gap { resume_at, reason } => {
                panic!("a gap ({reason:?}) at {from}, resume at {resume_at}, with {seen} of {total} read")
            }
        }
    }
    for w in writers {
        w.join().unwrap();
    }
}
