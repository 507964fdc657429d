//! `window-space migrate`: converts a state directory of an older format
//! version (1) into this library's (3), offline and restart-safe. A library
//! that finds an older directory refuses to open it
//! ([`Error::OlderFormat`], which names this command).
//!
//! What changes between the versions is listed in [`CONVERSIONS`]: each
//! file that is rewritten, and how. Everything else (the schedule, the audit
//! trail, `gc.log`, the artifacts) is kept as it is.
//!
//! The steps, each durable before the next:
//!
//! 1. Take the directory's gate (the exclusive `flock` every bootstrap takes
//!    first, `lock.rs`) and keep it to the end, and refuse
//!    (`ERR_STATE_DIR_IN_USE`) when any controller has the directory open.
//!    Every bootstrap meanwhile waits for the gate, and then finds either
//!    the old format (refused, naming this command) or the new one.
//!    `migrate-staging/` and `migrated-from-format-1/` must each be missing
//!    or a real directory (not a symbolic link, not a file), and a run that
//!    starts converting refuses while the backup directory exists (its
//!    files would be taken for this run's backup): move it away first.
//! 2. **Build beside**: write every converted file into
//!    `<dir>/migrate-staging/`, from the old files, which are not changed,
//!    and fsync them (a run killed here leaves the directory as it was; the
//!    next run removes the staging directory and starts again).
//! 3. **Verify**: open the staging directory with this library's read-only
//!    reader (`reader.rs`: every header, chunk header and record checked,
//!    the files unchanged by it linked in beside the converted ones), and
//!    check that each converted ledger holds the old one's bytes past its
//!    header.
//! 4. Write `migrate-staging/READY` (fsynced), holding the size and digest
//!    of every old file a conversion read: from here a run killed at any
//!    step is finished by the next run, which switches what is left. Until
//!    the first file is switched a library of version 1 still opens the
//!    directory (once the migration's gate is gone) and may change the old
//!    files; so a run that finds `READY` and nothing switched compares the
//!    old files with it, and starts over if any changed.
//! 5. **Switch**: for each converted file, the old file is linked into
//!    `<dir>/migrated-from-format-1/` (its backup), then the converted one
//!    is renamed over it. The enrichment ledger comes first (from then on a
//!    library of version 1 refuses the directory as newer), the trade
//!    ledger last (with it the directory's format version is 2,
//!    `ledger.rs`, and this library opens it). Files of the old format that
//!    the new one has no use for are moved into the backup.
//! 6. Append a `migrate` line to the audit trail, and remove the staging
//!    directory.
//!
//! The backup directory holds the old format's files as they were; it is
//! not part of the state and is removed by the operator once the migrated
//! directory has been checked (`window-space verify`). Disk space: the
//! converted files are written beside the old ones, so the run needs about
//! as much free space as the ledgers take (zero ranges are not written).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

use crate::audit::{default_actor, AuditContext, AuditLog};
use crate::controller::{state_file_names, SCHEDULE_FILE};
use crate::error::{Error, Result};
use crate::io::{self, Site};
use crate::ledger::{file_format_version, upgrade_header_v1, FORMAT_VERSION, MIGRATABLE_VERSION, ONE_SHARD_VERSION};
use crate::lock::DirLock;
use crate::mapping::PAGE;
use crate::ops::reader::StateReader;
use crate::vocab::LedgerKind;

/// Where the converted files are built, inside the state directory.
pub const STAGING_DIR: &str = "migrate-staging";
/// Written into [`STAGING_DIR`] once every converted file is verified.
pub const READY_FILE: &str = "READY";
/// Where the old format's files are kept after the switch.
pub const BACKUP_DIR: &str = "migrated-from-format-1";

/// How one file of a version-1 directory becomes its current form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// `symbol-map.json` (the whole map as JSON) becomes the symbol log
    /// `symbols.log` with the same ids in the same order (`symbols.rs`).
    SymbolLog,
    /// A ledger: the same chunks and rows, under a header of this library's version. The
    /// chunk headers' done counts (`ledger.rs`) are 0 in a version-1 file
    /// (reserved bytes): low, so correct, until the first bootstrap that
    /// finds no other controller open stores the exact ones.
    LedgerHeader(LedgerKind),
}

/// Every file the conversion writes, with the old file it is made from, in
/// the order the switch puts them in place (the trade ledger last: it
/// carries the directory's format version).
///
/// The enrichment ledger comes first: once it is of format version 3, a
/// library of version 1 refuses the directory too, so nothing changes the
/// old files while the rest is switched (see [`sources_unchanged`]).
pub const CONVERSIONS: &[(&str, Conversion)] = &[
    ("enrichment-ledger.dat", Conversion::LedgerHeader(LedgerKind::Enrichment)),
    ("symbols.log", Conversion::SymbolLog),
    ("trade-ledger.dat", Conversion::LedgerHeader(LedgerKind::Trade)),
];

impl Conversion {
    /// The old file it reads (relative to the state directory).
    fn source(self) -> &'static str {
        match self {
            Self::SymbolLog => OLD_SYMBOL_MAP,
            Self::LedgerHeader(k) => k.file_name(),
        }
    }
}

/// The version-1 symbol map.
const OLD_SYMBOL_MAP: &str = "symbol-map.json";

/// Files of the old format the new one has no use for, moved into the backup.
pub const RETIRED_FILES: &[&str] = &[OLD_SYMBOL_MAP];

/// The state files the conversion keeps as they are: linked into the
/// staging directory so that the verification opens a whole directory.
fn kept_files() -> Vec<&'static str> {
    state_file_names().into_iter().filter(|n| !CONVERSIONS.iter().any(|(to, _)| to == n)).collect()
}

/// What [`migrate`] is asked to do.
#[derive(Debug, Clone, Default)]
pub struct MigrateOptions {
    /// Say what would be done; change nothing.
    pub dry_run: bool,
    pub ctx: AuditContext,
}

/// One file converted (or, in a dry run, to be converted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConvertedFile {
    pub file: String,
    /// The old file it is made from.
    pub from: String,
    /// Bytes of the old file.
    pub bytes: u64,
    /// What the conversion does to it.
    pub how: &'static str,
}

/// What [`migrate`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrateReport {
    pub state_dir: PathBuf,
    pub dry_run: bool,
    /// The directory's format version when the run started (a run that
    /// finishes a killed one's switch finds a mix, and says the older).
    pub from_version: u32,
    pub to_version: u32,
    /// The directory was already of this library's format: nothing to do.
    pub already_current: bool,
    /// A run killed after it verified the converted files, whose switch
    /// this run finished.
    pub finishes_earlier_run: bool,
    /// A run killed after it verified the converted files, whose switch
    /// could not be finished (old files changed since, or put back from the
    /// backup): a dry run says the migration would start over.
    pub starts_over: bool,
    pub files: Vec<ConvertedFile>,
    /// Where the old format's files are kept (relative to the state
    /// directory), once the switch has begun.
    pub backup_dir: Option<String>,
    /// Whether this run changed the directory.
    pub changed: bool,
}

/// The format version of the ledger at `path`: `None` when missing.
fn ledger_version(path: &Path) -> Result<Option<u32>> {
    match file_format_version(path) {
        Ok(Some(v)) => Ok(Some(v)),
        Ok(None) => Err(Error::corrupt(path, Some(0), "not a window-space ledger (shorter than its header, or a wrong magic number)")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Converts the state directory `dir` (see the module comment).
pub fn migrate(dir: &Path, opts: &MigrateOptions) -> Result<MigrateReport> {
    opts.ctx.check()?;
    if !dir.join(SCHEDULE_FILE).is_file() {
        return Err(Error::NotAStateDir { path: dir.to_path_buf() });
    }
    let lock = DirLock::open(dir)?;
    let gate = lock.enter()?;
    if !gate.alone {
        return Err(Error::StateDirInUse {
            path: dir.to_path_buf(),
            what: "other controllers (engines, tools) have it open; a migration needs it to itself: stop them and run it again".into(),
        });
    }
    let mut report =
        MigrateReport { state_dir: dir.to_path_buf(), dry_run: opts.dry_run, to_version: FORMAT_VERSION, ..Default::default() };
    let staging = dir.join(STAGING_DIR);
    let mut versions = Vec::new();
    for kind in LedgerKind::ALL {
        let path = dir.join(kind.file_name());
        let v =
            ledger_version(&path)?.ok_or_else(|| Error::corrupt(&path, None, "state file is missing (the directory holds a schedule)"))?;
        if v != FORMAT_VERSION && v != ONE_SHARD_VERSION && v != MIGRATABLE_VERSION {
            return Err(Error::unsupported_version(&path, 8, v, FORMAT_VERSION));
        }
        versions.push(v);
    }
    report.from_version = versions.iter().copied().min().unwrap_or(FORMAT_VERSION);
    let backup = dir.join(BACKUP_DIR);
    // Both are ours only as real directories inside the state directory.
    for own in [&staging, &backup] {
        if let Ok(m) = std::fs::symlink_metadata(own) {
            if !m.is_dir() {
                return Err(Error::invalid(format!(
                    "{} is not a directory (a symbolic link or a file): move it away, then run the migration again",
                    own.display()
                )));
            }
        }
    }
    let ready = staging.join(READY_FILE);
    if ready.exists() && !resumable(dir, &staging)? {
        // A run killed after it verified the converted files, whose switch
        // cannot be finished: old files changed since (a library of version 1
        // opened the directory before the first file was switched), or files
        // were put back from the backup. Start over from the files as they are.
        if opts.dry_run {
            report.starts_over = true;
        } else {
            remove_staging(dir, &staging)?;
        }
    }
    if ready.exists() && !report.starts_over {
        // A run killed after it verified the converted files: finish its switch.
        report.finishes_earlier_run = true;
        report.files = staged_files(&staging, dir)?;
        report.backup_dir = Some(BACKUP_DIR.into());
        if opts.dry_run {
            return Ok(report);
        }
        switch(dir, &staging)?;
        report.changed = true;
        finish(dir, &staging, opts, &report)?;
        return Ok(report);
    }
    // A ledger of version 2 is read as version 3; a bootstrap upgrades it in place.
    let current = |v: &u32| *v == FORMAT_VERSION || *v == ONE_SHARD_VERSION;
    if versions.iter().all(current) {
        report.already_current = true;
        if staging.exists() && !opts.dry_run {
            remove_staging(dir, &staging)?;
            report.changed = true;
        }
        return Ok(report);
    }
    if versions.iter().any(current) {
        // Only a switch (after READY) puts a converted ledger in place.
        return Err(Error::corrupt(
            dir.join(LedgerKind::Trade.file_name()),
            Some(8),
            "the ledgers are of different format versions and no verified migration is under way: restore them from one backup",
        ));
    }
    for (name, c) in CONVERSIONS {
        let from = dir.join(c.source());
        let bytes = std::fs::metadata(&from).map_err(|e| Error::io("stat", &from, e))?.len();
        report.files.push(ConvertedFile { file: (*name).into(), from: c.source().into(), bytes, how: c.describe() });
    }
    if std::fs::symlink_metadata(&backup).is_ok() {
        // Its files would be taken for this run's backup.
        return Err(Error::invalid(format!(
            "{} exists (the backup of an earlier migration, or something else): move it away, then run the migration again",
            backup.display()
        )));
    }
    if opts.dry_run {
        return Ok(report);
    }
    if staging.exists() {
        remove_staging(dir, &staging)?;
    }
    report.changed = true;
    let staged = build_staging(dir, &staging);
    if staged.is_err() {
        // Not verified: nothing of it is used; give the space back now.
        let _ = std::fs::remove_dir_all(&staging);
    }
    staged?;
    failpoint!("migrate::ready");
    report.backup_dir = Some(BACKUP_DIR.into());
    switch(dir, &staging)?;
    finish(dir, &staging, opts, &report)?;
    Ok(report)
}

/// Steps 2 to 4: the converted files built, verified and marked `READY`.
fn build_staging(dir: &Path, staging: &Path) -> Result<()> {
    crate::fsutil::create_dir_durably(staging)?;
    for (name, c) in CONVERSIONS {
        c.convert(&dir.join(c.source()), &staging.join(name))?;
    }
    io::sync_dir(Site::MigrateDir, staging)?;
    failpoint!("migrate::staged");
    verify_staging(dir, staging).map_err(|e| in_old_file(e, dir, staging))?;
    let ready = staging.join(READY_FILE);
    let f = File::create(&ready).map_err(|e| Error::io("create", &ready, e))?;
    io::write_at(Site::MigrateWrite, &f, &ready, &source_digests(dir)?, 0)?;
    io::sync_all(Site::MigrateSync, &f, &ready)?;
    io::sync_dir(Site::MigrateDir, staging)
}

/// Damage the verification found in a converted file is damage of the old
/// file it was made from (a ledger's chunks are copied byte for byte): the
/// error names the old file, which is what the operator must look at.
fn in_old_file(e: Error, dir: &Path, staging: &Path) -> Error {
    match e {
        Error::CorruptState { file, offset, what } if file.starts_with(staging) => {
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let from = CONVERSIONS.iter().find(|(to, _)| *to == name).map_or(name, |(_, c)| c.source());
            Error::CorruptState { file: dir.join(from), offset, what: format!("{what} (found converting it: nothing was switched)") }
        }
        e => e,
    }
}

impl Conversion {
    /// Whether `live` (the file at the conversion's target name) is the
    /// converted file: a ledger of this library's format version, or the symbol log.
    fn done(self, live: &Path) -> Result<bool> {
        match self {
            Self::LedgerHeader(_) => Ok(ledger_version(live)? == Some(FORMAT_VERSION)),
            Self::SymbolLog => Ok(live.exists()),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::SymbolLog => "symbol-map.json rewritten as the symbol log, the same ids in the same order",
            Self::LedgerHeader(_) => {
                "same chunks and rows, header of format version 3 (the chunks' done counts start at 0: the first bootstrap stores them)"
            }
        }
    }

    /// Writes the converted form of `from` at `to` (a new file), synced.
    fn convert(self, from: &Path, to: &Path) -> Result<()> {
        match self {
            Self::SymbolLog => {
                let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
                crate::symbols::convert_symbol_map(from, to, created).map(drop)
            }
            Self::LedgerHeader(_) => copy_ledger(from, to),
        }
    }
}

/// Copies a version-1 ledger to `to` with a header of this library's version; ranges of
/// zeros are not written (the copy is as sparse as the file system allows).
fn copy_ledger(from: &Path, to: &Path) -> Result<()> {
    const BLOCK: usize = 1 << 20;
    let src = File::open(from).map_err(|e| Error::io("open", from, e))?;
    let len = src.metadata().map_err(|e| Error::io("fstat", from, e))?.len();
    if len < PAGE {
        return Err(Error::corrupt(from, Some(len), "file is shorter than its 4096-byte header"));
    }
    let dst = std::fs::OpenOptions::new().write(true).create_new(true).open(to).map_err(|e| Error::io("create", to, e))?;
    let mut buf = vec![0u8; BLOCK];
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(BLOCK as u64) as usize;
        src.read_exact_at(&mut buf[..n], off).map_err(|e| Error::io("read", from, e))?;
        if off == 0 {
            upgrade_header_v1(from, &mut buf[..PAGE as usize])?;
        }
        if off == 0 || buf[..n].iter().any(|b| *b != 0) {
            io::write_at(Site::MigrateWrite, &dst, to, &buf[..n], off)?;
        }
        off += n as u64;
    }
    dst.set_len(len).map_err(|e| Error::io("truncate", to, e))?;
    io::sync_all(Site::MigrateSync, &dst, to)
}

/// The xxh3-64 of a file's bytes from `from` to its end.
fn digest_from(path: &Path, from: u64) -> Result<(u64, u64)> {
    let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let len = f.metadata().map_err(|e| Error::io("fstat", path, e))?.len();
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = from;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        f.read_exact_at(&mut buf[..n], off).map_err(|e| Error::io("read", path, e))?;
        h.update(&buf[..n]);
        off += n as u64;
    }
    Ok((len, h.digest()))
}

/// Step 3: the staging directory opens as a whole directory of this format,
/// and each converted ledger holds the old one's bytes past the header.
fn verify_staging(dir: &Path, staging: &Path) -> Result<()> {
    let kept = kept_files();
    for name in &kept {
        let (from, to) = (dir.join(name), staging.join(name));
        if from.exists() {
            std::fs::hard_link(&from, &to).map_err(|e| Error::io("link", &to, e))?;
        }
    }
    let reader = StateReader::open(staging)?;
    for (name, c) in CONVERSIONS {
        match c {
            Conversion::SymbolLog => {
                let old = crate::symbols::parse_symbol_map(&dir.join(c.source()), &read_file(&dir.join(c.source()))?)?;
                if reader.symbols() != old.as_slice() {
                    return Err(Error::corrupt(
                        staging.join(name),
                        None,
                        "the converted symbol log does not hold the old map's symbols in its order: nothing was switched; run the migration again",
                    ));
                }
            }
            Conversion::LedgerHeader(_) => {
                if digest_from(&dir.join(c.source()), PAGE)? != digest_from(&staging.join(name), PAGE)? {
                    return Err(Error::corrupt(
                        staging.join(name),
                        Some(PAGE),
                        "the converted ledger does not hold the old one's chunks (the copy was damaged): nothing was switched; run the migration again",
                    ));
                }
            }
        }
    }
    for name in &kept {
        let to = staging.join(name);
        if to.exists() {
            std::fs::remove_file(&to).map_err(|e| Error::io("unlink", &to, e))?;
        }
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io("read", path, e))
}

/// `READY`'s content: the size and xxh3-64 of every old file a conversion
/// reads, one line each (`<name> <bytes> <digest>`).
fn source_digests(dir: &Path) -> Result<Vec<u8>> {
    let mut out = String::new();
    for (_, c) in CONVERSIONS {
        let (bytes, digest) = digest_from(&dir.join(c.source()), 0)?;
        out.push_str(&format!("{} {bytes} {digest:016x}\n", c.source()));
    }
    Ok(out.into_bytes())
}

/// Whether the switch of a `READY` staging directory can be finished: every
/// converted file either still staged or in place (a file put back from the
/// backup since is not), and, while the first is not in place yet (a library
/// of version 1 could still open the directory), every old file with the
/// size and digest `READY` recorded.
fn resumable(dir: &Path, staging: &Path) -> Result<bool> {
    let mut first_in_place = false;
    for (i, (name, c)) in CONVERSIONS.iter().enumerate() {
        let staged = staging.join(name).exists();
        if !staged && !c.done(&dir.join(name))? {
            return Ok(false);
        }
        if i == 0 {
            first_in_place = !staged;
        }
    }
    if first_in_place {
        return Ok(true);
    }
    let recorded = read_file(&staging.join(READY_FILE))?;
    Ok(source_digests(dir)? == recorded)
}

/// The converted files a killed run left in the staging directory.
fn staged_files(staging: &Path, dir: &Path) -> Result<Vec<ConvertedFile>> {
    let mut files = Vec::new();
    for (name, c) in CONVERSIONS {
        if let Ok(m) = std::fs::metadata(staging.join(name)) {
            let bytes = std::fs::metadata(dir.join(c.source())).map(|m| m.len()).unwrap_or(m.len());
            files.push(ConvertedFile { file: (*name).into(), from: c.source().into(), bytes, how: c.describe() });
        }
    }
    Ok(files)
}

/// Step 5: each converted file in place, the old one kept in the backup.
/// Each step checks what is done already, so a run finishing a killed one
/// does only what is left.
fn switch(dir: &Path, staging: &Path) -> Result<()> {
    let backup = dir.join(BACKUP_DIR);
    crate::fsutil::create_dir_durably(&backup)?;
    for (name, _) in CONVERSIONS {
        let (staged, live, kept) = (staging.join(name), dir.join(name), backup.join(name));
        if !staged.exists() {
            continue; // switched by the killed run
        }
        if live.exists() {
            if !kept.exists() {
                std::fs::hard_link(&live, &kept).map_err(|e| Error::io("link", &kept, e))?;
                io::sync_dir(Site::MigrateDir, &backup)?;
            } else if !same_file(&live, &kept)? {
                return Err(foreign_backup(&kept));
            }
        }
        std::fs::rename(&staged, &live).map_err(|e| Error::io("rename", &live, e))?;
        io::sync_dir(Site::MigrateDir, dir)?;
        failpoint!("migrate::file-switched");
    }
    for name in RETIRED_FILES {
        let (live, kept) = (dir.join(name), backup.join(name));
        if live.exists() {
            if kept.exists() && !same_file(&live, &kept)? {
                return Err(foreign_backup(&kept));
            }
            std::fs::rename(&live, &kept).map_err(|e| Error::io("rename", &kept, e))?;
        }
    }
    io::sync_dir(Site::MigrateDir, &backup)?;
    io::sync_dir(Site::MigrateDir, dir)?;
    failpoint!("migrate::switched");
    Ok(())
}

/// Whether two paths name the same file (the backup's link of a live file).
fn same_file(a: &Path, b: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (ma, mb) = (std::fs::metadata(a).map_err(|e| Error::io("stat", a, e))?, std::fs::metadata(b).map_err(|e| Error::io("stat", b, e))?);
    Ok(ma.dev() == mb.dev() && ma.ino() == mb.ino())
}

fn foreign_backup(kept: &Path) -> Error {
    Error::invalid(format!(
        "{} holds another file than the one this migration is keeping there: move it away, then run the migration again",
        kept.display()
    ))
}

fn remove_staging(dir: &Path, staging: &Path) -> Result<()> {
    std::fs::remove_dir_all(staging).map_err(|e| Error::io("remove", staging, e))?;
    io::sync_dir(Site::MigrateDir, dir)
}

/// Step 6. The audit line comes first: a run killed between the two
/// leaves the staging directory, and the next run, finding it still
/// `READY`, writes a second line that says it finished an earlier run.
fn finish(dir: &Path, staging: &Path, opts: &MigrateOptions, report: &MigrateReport) -> Result<()> {
    let mut f = serde_json::Map::new();
    f.insert(
        "details".into(),
        json!({
            "fromVersion": report.from_version,
            "toVersion": report.to_version,
            "files": report.files.iter().map(|c| c.file.clone()).collect::<Vec<_>>(),
            "backupDir": BACKUP_DIR,
            "finishesEarlierRun": report.finishes_earlier_run,
        }),
    );
    AuditLog::new(dir, default_actor(), true).append(&opts.ctx, "migrate", f)?;
    remove_staging(dir, staging)
}
