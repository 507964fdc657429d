//! `window-space migrate` on the version-1 directory kept in the repository
//! (`__test__/fixtures/v1-state`): a version-1 directory is refused by name,
//! the migration keeps every symbol, slot and record, keeps the old files in
//! its backup, and a migration killed (SIGKILL) at each of its steps and run
//! again ends as an uninterrupted one, with every bootstrap in between
//! either refusing the old format or opening the new one whole.
//!
//! The killed process is this test binary run again in the role
//! `migrate_child_role`, stopped at the named failpoint.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use fail::FailScenario;
use window_space_core::audit::{AuditContext, AuditLog};
use window_space_core::ops::migrate::{migrate, MigrateOptions, BACKUP_DIR, STAGING_DIR};
use window_space_core::ops::reader::StateReader;
use window_space_core::ops::verify::{verify, VerifyOptions};
use window_space_core::{Config, Controller, ErrorCode, LedgerKind, Schedule, SlotAddr, SlotKind, SlotStatus, StoreKind};

const CHILD: &str = "WS_MIGRATE_CHILD";

/// Held by each test for its whole run: a test that spawns a child forks
/// this process, and a forked child holds, until it execs, every open file
/// description of the parent — including the presence lock of a directory
/// another test has just closed, which would make that test's next
/// bootstrap find "another controller open". The library assumes no fork
/// while a controller is open (docs/design.md, section 7); the tests keep
/// to it by not overlapping.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn opts() -> MigrateOptions {
    MigrateOptions { dry_run: false, ctx: AuditContext { actor: Some("ops-test".into()), reason: Some("format upgrade".into()) } }
}

fn config(dir: &Path) -> Config {
    let path = dir.join("schedule.json");
    let schedule = Schedule::from_json(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
    Config::new(dir, schedule.space().clone())
}

/// Every file's bytes under `dir` (the lock file aside), by relative path.
fn tree_bytes(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, at: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(at).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                walk(root, &e.path(), out);
            } else if e.file_name() != "window-space.lock" {
                out.insert(e.path().strip_prefix(root).unwrap().to_path_buf(), std::fs::read(e.path()).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// What a migrated directory must hold: the fixture's symbols, every slot
/// it lists with its status (and, when Filled, its payload id, version and
/// checksum, the version its claim had), every record with its fields, and nothing else but Empty
/// slots; the counts equal a recount.
fn check_holds_the_fixture(dir: &Path) {
    let want = support::v1_fixture_expected();
    let (c, _) = Controller::bootstrap(config(dir)).unwrap();
    let symbols: Vec<String> = want["symbols"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    assert_eq!(c.symbols().unwrap(), symbols);
    let mut listed = BTreeMap::new();
    for s in want["slots"].as_array().unwrap() {
        let id = c.symbol_id(s["symbol"].as_str().unwrap()).unwrap();
        let kind = SlotKind::from_name(s["kind"].as_str().unwrap()).unwrap();
        let at = SlotAddr::new(id, s["window"].as_u64().unwrap() as u32, kind);
        let slot = c.read_slot(at).unwrap();
        assert_eq!(slot.status.name(), s["status"].as_str().unwrap(), "{at}");
        if slot.status == SlotStatus::Filled {
            assert_eq!(slot.payload_id, s["payloadId"].as_u64().unwrap(), "{at}");
            // A fill moves the version on from its claim's.
            assert_eq!(u64::from(slot.version), s["claimVersion"].as_u64().unwrap() + 1, "{at}");
            assert_eq!(slot.checksum.to_string(), s["checksum"].as_str().unwrap(), "{at}");
        }
        listed.insert((at.symbol, at.window, at.kind.code()), ());
    }
    let windows = c.window_count();
    for s in 0..symbols.len() as u32 {
        for w in 0..windows {
            for kind in SlotKind::ALL {
                if !listed.contains_key(&(s, w, kind.code())) {
                    assert_eq!(c.read_slot(SlotAddr::new(s, w, kind)).unwrap().status, SlotStatus::Empty, "{s} {w} {kind}");
                }
            }
        }
    }
    for store in StoreKind::ALL {
        let recs = want["records"].get(store.name()).and_then(|r| r.as_array()).cloned().unwrap_or_default();
        assert_eq!(c.store(store).len().unwrap(), recs.len() as u64, "{}", store.name());
        for r in recs {
            let got = c.store(store).get(r["id"].as_u64().unwrap()).unwrap().unwrap();
            assert_eq!(got.uri, r["uri"].as_str().unwrap());
            assert_eq!(got.checksum.to_string(), r["checksum"].as_str().unwrap());
            assert_eq!(got.size, r["size"].as_u64().unwrap());
            assert_eq!(got.window_idx as u64, r["window"].as_u64().unwrap());
            assert_eq!(symbols[got.symbol_id as usize], r["symbol"].as_str().unwrap());
        }
    }
    assert_eq!(c.slot_metrics(), c.recount().unwrap(), "counters exact");
}

fn migrate_lines(dir: &Path) -> Vec<serde_json::Value> {
    AuditLog::read_all(&dir.join("audit.log")).unwrap().into_iter().filter(|l| l["action"] == "migrate").collect()
}

#[test]
fn a_version_1_directory_is_refused_naming_the_command_and_left_as_it_was() {
    let _serial = serial();
    let (_root, dir) = support::v1_copy();
    let before = tree_bytes(&dir);
    let e = Controller::bootstrap(config(&dir)).map(drop).expect_err("a version-1 directory is refused");
    assert_eq!(e.code(), ErrorCode::OlderFormat, "{e}");
    let command = format!("window-space migrate {}", dir.display());
    assert!(e.to_string().contains(&command), "{e}");
    assert_eq!(e.details()["command"], command.as_str());
    assert_eq!(e.details()["version"], 1);
    assert_eq!(e.details()["supported"], 3);
    let e = StateReader::open(&dir).map(drop).expect_err("the read-only view refuses it too");
    assert_eq!(e.code(), ErrorCode::OlderFormat, "{e}");
    assert_eq!(tree_bytes(&dir), before, "a refused open changed nothing");
    assert!(!dir.join("changes.journal").exists());
}

#[test]
fn a_dry_run_says_what_it_would_convert_and_changes_nothing() {
    let _serial = serial();
    let (_root, dir) = support::v1_copy();
    let before = tree_bytes(&dir);
    let r = migrate(&dir, &MigrateOptions { dry_run: true, ..opts() }).unwrap();
    assert!(r.dry_run && !r.changed && !r.already_current, "{r:?}");
    assert_eq!((r.from_version, r.to_version), (1, 3));
    let files: Vec<&str> = r.files.iter().map(|f| f.file.as_str()).collect();
    assert_eq!(files, ["enrichment-ledger.dat", "symbols.log", "trade-ledger.dat"]);
    assert_eq!(r.files[1].bytes, std::fs::metadata(dir.join("symbol-map.json")).unwrap().len());
    assert_eq!(r.files[2].bytes, std::fs::metadata(dir.join("trade-ledger.dat")).unwrap().len());
    assert_eq!(tree_bytes(&dir), before);
}

#[test]
fn a_migration_keeps_every_symbol_slot_record_and_artifact_and_the_old_files() {
    let _serial = serial();
    let (_root, dir) = support::v1_copy();
    let before = tree_bytes(&dir);
    let r = migrate(&dir, &opts()).unwrap();
    assert!(r.changed && !r.already_current && !r.finishes_earlier_run, "{r:?}");
    assert_eq!(r.backup_dir.as_deref(), Some(BACKUP_DIR));
    assert!(!dir.join(STAGING_DIR).exists(), "the staging directory is removed");
    // The old ledgers, byte for byte, in the backup; every other file as it
    // was (before a bootstrap stores counters into the new ledgers).
    let after = tree_bytes(&dir);
    for kind in LedgerKind::ALL {
        let name = PathBuf::from(kind.file_name());
        assert_eq!(after[&Path::new(BACKUP_DIR).join(&name)], before[&name], "{name:?} kept");
        assert_ne!(after[&name], before[&name], "{name:?} converted");
        assert_eq!(after[&name][4096..], before[&name][4096..], "{name:?}: the same chunks");
    }
    // The old symbol map moved into the backup, the symbol log in its place.
    assert_eq!(after.get(&Path::new(BACKUP_DIR).join("symbol-map.json")), before.get(Path::new("symbol-map.json")));
    assert!(!after.contains_key(Path::new("symbol-map.json")) && after.contains_key(Path::new("symbols.log")));
    for (name, bytes) in &before {
        let converted = LedgerKind::ALL.iter().any(|k| Path::new(k.file_name()) == name) || name == Path::new("symbol-map.json");
        if !converted && name != Path::new("audit.log") {
            assert_eq!(after.get(name), Some(bytes), "{name:?} unchanged");
        }
    }
    check_holds_the_fixture(&dir);
    let report = verify(&dir, VerifyOptions { artifacts: true }, &mut |_, _, _| {}).unwrap();
    assert!(report.ok, "{:?}", report.problems);
    let lines = migrate_lines(&dir);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["actor"], "ops-test");
    assert_eq!(lines[0]["details"]["fromVersion"], 1);
    assert_eq!(lines[0]["details"]["finishesEarlierRun"], false);
    // Run again: nothing to do.
    let again = migrate(&dir, &opts()).unwrap();
    assert!(again.already_current && !again.changed, "{again:?}");
    assert_eq!(migrate_lines(&dir).len(), 1);
}

#[test]
fn a_migration_refuses_a_directory_another_process_has_open() {
    let _serial = serial();
    let (_root, dir) = support::v1_copy();
    let before = tree_bytes(&dir);
    // An engine of the version-1 library holds the presence lock shared.
    let lock = std::fs::File::open(dir.join("window-space.lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockShared).unwrap();
    let e = migrate(&dir, &opts()).expect_err("in use");
    assert_eq!(e.code(), ErrorCode::StateDirInUse, "{e}");
    assert_eq!(tree_bytes(&dir), before);
    drop(lock);
    migrate(&dir, &opts()).unwrap();
}

#[test]
fn ledgers_of_two_versions_without_a_migration_under_way_are_refused() {
    let _serial = serial();
    let (_root, dir) = support::v1_copy();
    let (_r2, migrated) = support::v1_copy();
    migrate(&migrated, &opts()).unwrap();
    std::fs::copy(migrated.join("enrichment-ledger.dat"), dir.join("enrichment-ledger.dat")).unwrap();
    let before = tree_bytes(&dir);
    let e = migrate(&dir, &opts()).expect_err("a mix of versions");
    assert_eq!(e.code(), ErrorCode::CorruptState, "{e}");
    assert_eq!(tree_bytes(&dir), before);
}

/// Runs in a child process: a migration of `WS_DIR` that stops for good at
/// the `WS_HIT`-th time it reaches the failpoint `WS_MIGRATE_CHILD`
/// (printing `AT-POINT`), to be killed there.
#[test]
fn migrate_child_role() {
    let Ok(point) = std::env::var(CHILD) else { return };
    let hit: usize = std::env::var("WS_HIT").unwrap().parse().unwrap();
    let scenario = FailScenario::setup();
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let seen = Box::leak(Box::new(seen));
    fail::cfg_callback(&point, move || {
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == hit {
            println!("AT-POINT");
            std::io::stdout().flush().unwrap();
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    })
    .unwrap();
    let r = migrate(Path::new(&std::env::var("WS_DIR").unwrap()), &opts());
    println!("ENDED {r:?}");
    scenario.teardown();
}

fn kill_migrate_at(dir: &Path, point: &str, hit: usize) {
    support::kill_role_at_point(
        "migrate_child_role",
        &[(CHILD, point.to_string()), ("WS_HIT", hit.to_string()), ("WS_DIR", dir.display().to_string())],
    );
}

#[test]
fn a_migration_killed_at_any_step_and_run_again_ends_as_an_uninterrupted_one() {
    let _serial = serial();
    let (_root, reference) = support::v1_copy();
    let originals = tree_bytes(&reference);
    migrate(&reference, &opts()).unwrap();
    let want = tree_bytes(&reference);
    // (point, hit, whether the directory is of the new format once killed there)
    let cases = [
        ("migrate::staged", 1, false),
        ("migrate::ready", 1, false),
        ("migrate::file-switched", 1, false), // the enrichment ledger switched
        ("migrate::file-switched", 2, false), // and the symbol log; the trade ledger not
        ("migrate::file-switched", 3, true),
        ("migrate::switched", 1, true),
    ];
    for (point, hit, switched) in cases {
        let (_root, dir) = support::v1_copy();
        kill_migrate_at(&dir, point, hit);
        let ready = dir.join(STAGING_DIR).join("READY").exists();
        match Controller::bootstrap(config(&dir)) {
            Ok(_) => assert!(switched, "{point} #{hit}: a bootstrap opened a directory not yet switched"),
            Err(e) => {
                assert!(!switched, "{point} #{hit}: the switched directory was refused: {e}");
                assert_eq!(e.code(), ErrorCode::OlderFormat, "{point} #{hit}: {e}");
            }
        }
        if !ready {
            // Nothing switched: the old files are as they were.
            for (name, bytes) in &originals {
                assert_eq!(std::fs::read(dir.join(name)).ok().as_ref(), Some(bytes), "{point} #{hit}: {name:?}");
            }
        }
        let r = migrate(&dir, &opts()).unwrap();
        assert!(r.changed, "{point} #{hit}: {r:?}");
        assert_eq!(r.finishes_earlier_run, ready, "{point} #{hit}: {r:?}");
        check_holds_the_fixture(&dir);
        let mut got = tree_bytes(&dir);
        let mut want = want.clone();
        // Audit lines carry times and whether they finish an earlier run.
        let lines = migrate_lines(&dir);
        assert_eq!(lines.last().unwrap()["details"]["finishesEarlierRun"], ready, "{point} #{hit}");
        assert!(lines.len() <= 2, "{point} #{hit}: {lines:?}");
        got.remove(Path::new("audit.log"));
        want.remove(Path::new("audit.log"));
        got.remove(Path::new("changes.journal"));
        want.remove(Path::new("changes.journal"));
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{point} #{hit}: the same files");
        // Every file as the uninterrupted run left it, but the live ledgers,
        // into which the bootstrap above stored its counts, and the symbol
        // log, whose header holds its creation time (both read above).
        for (name, bytes) in &want {
            let live = name.to_string_lossy().ends_with("-ledger.dat") || name == Path::new("symbols.log");
            if name.starts_with(BACKUP_DIR) || !live {
                assert_eq!(&got[name], bytes, "{point} #{hit}: {name:?}");
            }
        }
    }
}

/// A migration killed after it verified its converted files but before it
/// switched one leaves a directory a library of version 1 still opens; if
/// one changed the old files meanwhile (here: a symbol added to the map), the
/// next run builds the converted files again rather than switch stale ones.
#[test]
fn old_files_changed_after_a_killed_verified_run_are_converted_again() {
    let _serial = serial();
    let (_root, dir) = support::v1_copy();
    kill_migrate_at(&dir, "migrate::ready", 1);
    assert!(dir.join(STAGING_DIR).join("READY").exists());
    support::add_to_v1_symbol_map(&dir, "NEW");
    let r = migrate(&dir, &opts()).unwrap();
    assert!(r.changed && !r.finishes_earlier_run, "{r:?}");
    let (c, _) = Controller::bootstrap(config(&dir)).unwrap();
    assert_eq!(c.symbols().unwrap(), ["SPY", "AAPL", "QQQ", "NEW"]);
}

/// A `migrated-from-format-1/` already there (an earlier migration's backup
/// after a rollback, or anything else) is refused before anything is
/// written: its files would be taken for this run's backup.
#[test]
fn an_existing_backup_directory_is_refused_before_anything_changes() {
    let _serial = serial();
    let (_root, dir) = support::v1_copy();
    std::fs::create_dir(dir.join(BACKUP_DIR)).unwrap();
    std::fs::write(dir.join(BACKUP_DIR).join("enrichment-ledger.dat"), b"an operator's file").unwrap();
    let before = tree_bytes(&dir);
    let e = migrate(&dir, &opts()).expect_err("refused");
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    assert!(e.to_string().contains(BACKUP_DIR), "{e}");
    assert_eq!(tree_bytes(&dir), before);
    assert!(!dir.join(STAGING_DIR).exists());
}

/// Files put back from the backup after a killed run (a rollback, or one
/// file restored and then changed by a library of version 1) are never
/// overwritten by that run's converted files: the next run refuses while
/// the backup is there, and once it is moved away converts the files as
/// they are now.
#[test]
fn files_put_back_from_the_backup_after_a_killed_run_are_converted_as_they_are() {
    let _serial = serial();
    for (point, hit) in [("migrate::switched", 1), ("migrate::file-switched", 1)] {
        let (root, dir) = support::v1_copy();
        kill_migrate_at(&dir, point, hit);
        let backup = dir.join(BACKUP_DIR);
        for e in std::fs::read_dir(&backup).unwrap().flatten() {
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
        // A library of version 1 adds a symbol.
        support::add_to_v1_symbol_map(&dir, "NEW");
        let e = migrate(&dir, &opts()).expect_err("refused while the backup is there");
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{point}: {e}");
        std::fs::rename(&backup, root.path().join("old-backup")).unwrap();
        let r = migrate(&dir, &opts()).unwrap();
        assert!(r.changed && !r.finishes_earlier_run, "{point}: {r:?}");
        let (c, _) = Controller::bootstrap(config(&dir)).unwrap();
        assert_eq!(c.symbols().unwrap(), ["SPY", "AAPL", "QQQ", "NEW"], "{point}");
    }
}

/// Damage in an old ledger is named in the old file (where the operator
/// must look), and the unverified staging directory is removed.
#[test]
fn damage_in_an_old_ledger_is_named_in_the_old_file() {
    let _serial = serial();
    let (_root, dir) = support::v1_copy();
    let f = std::fs::OpenOptions::new().write(true).open(dir.join("trade-ledger.dat")).unwrap();
    f.write_all_at(b"XXXX", 4096).unwrap(); // the first chunk's magic
    let e = migrate(&dir, &opts()).expect_err("damaged");
    assert_eq!(e.code(), ErrorCode::CorruptState, "{e}");
    assert_eq!(e.details()["file"], dir.join("trade-ledger.dat").to_str().unwrap(), "{e}");
    assert!(!dir.join(STAGING_DIR).exists(), "the unverified staging directory is removed");
}

/// The staging and backup paths are used only as real directories.
#[test]
fn a_staging_or_backup_path_that_is_no_directory_is_refused() {
    let _serial = serial();
    let (root, dir) = support::v1_copy();
    std::os::unix::fs::symlink(root.path().join("nowhere"), dir.join(STAGING_DIR)).unwrap();
    let e = migrate(&dir, &opts()).expect_err("a symbolic link");
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    std::fs::remove_file(dir.join(STAGING_DIR)).unwrap();
    std::fs::write(dir.join(BACKUP_DIR), b"a file").unwrap();
    let e = migrate(&dir, &opts()).expect_err("a file");
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    assert!(!dir.join(STAGING_DIR).exists(), "refused before staging");
    std::fs::remove_file(dir.join(BACKUP_DIR)).unwrap();
    migrate(&dir, &opts()).unwrap();
}
