//! The garbage collector's log (`gc.log` in the state directory) and its
//! trash directory (`gc-trash/`).
//!
//! ## Format (version 1)
//!
//! UTF-8 text, one JSON object per line, appended with `O_APPEND` and fsynced
//! before gc acts on what a line announces. Every line has `v` (= 1) and `op`:
//!
//! | op | fields | meaning |
//! | --- | --- | --- |
//! | `collect` | `id`, `at`, `uri`, `checksum` (`0x` + 16 hex digits), `size`, `records` (`[{store, payloadId}]`), `trash` | gc is about to move the artifact `uri` (under `artifacts/`) to `trash` (`gc-trash/<id>`) and delete it; `records` are the payload records it was written for |
//! | `done` | `id`, `at` | the collection `id` finished: the file is gone and its records are collected |
//! | `abort` | `id`, `at`, `why` | the collection `id` was undone: the file is back (or was never moved) |
//! | `record` | `at`, `store`, `payloadId`, `uri`, `why` | a payload record no slot references is collected without removing a file (its file is gone, or still used by a live record) |
//!
//! `at` is an ISO-8601 time. A `collect` without a later `done` or `abort`
//! is a collection a killed gc left unfinished; the next `gc --delete`
//! finishes it (the trashed file is deleted if it is still garbage, moved
//! back otherwise — never over a file that took its place).
//!
//! A line cut short ends in the torn mark `#torn`: a write cut short (a full
//! disk) is ended with the mark and a newline by the writer that cut it, and
//! a line cut short by a crash (the last line, without its newline) by the
//! next writer, which finds the file not ending in a newline. A line ending in
//! the mark is a *torn append* (the call that wrote it failed): readers skip
//! it, `verify` reports it as a warning with its line number, and the lines
//! after it read normally; an unended last line is a torn tail, reported the
//! same way. Any other line that does not parse, or
//! parses but lacks a field its `op` needs (or a `collect` line whose `uri`
//! is not under `artifacts/` or whose `trash` is not directly in `gc-trash/`),
//! is damage: `verify` reports it with its line number, and readers skip it,
//! so no line can make gc move or delete any other file.
//!
//! gc never rewrites a mapping table: a collected record stays in its table,
//! and this log is what says it was collected.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::{self, Site};
use crate::vocab::StoreKind;

/// File name of the log in the state directory.
pub const GC_LOG: &str = "gc.log";
/// Directory (in the state directory) where gc moves a file before deleting it.
pub const GC_TRASH: &str = "gc-trash";
/// Ends a line cut short (with a newline): appended by the writer whose
/// write was cut short, or by the next writer to an unterminated last line.
const TORN_MARK: &str = "#torn";

/// A payload record, as gc names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordRef {
    /// The store's name (`trades`, `quotes`, ...).
    #[serde(with = "store_name")]
    pub store: StoreKind,
    pub payload_id: u64,
}

mod store_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::vocab::StoreKind;

    pub fn serialize<S: Serializer>(s: &StoreKind, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<StoreKind, D::Error> {
        let name = String::deserialize(de)?;
        StoreKind::ALL.into_iter().find(|s| s.name() == name).ok_or_else(|| serde::de::Error::custom(format!("unknown store {name:?}")))
    }
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum GcEntry {
    #[serde(rename_all = "camelCase")]
    Collect { v: u32, id: String, at: String, uri: String, checksum: String, size: u64, records: Vec<RecordRef>, trash: String },
    #[serde(rename_all = "camelCase")]
    Done { v: u32, id: String, at: String },
    #[serde(rename_all = "camelCase")]
    Abort { v: u32, id: String, at: String, why: String },
    #[serde(rename_all = "camelCase")]
    Record {
        v: u32,
        at: String,
        #[serde(with = "store_name")]
        store: StoreKind,
        payload_id: u64,
        uri: String,
        why: String,
    },
}

impl GcEntry {
    fn version(&self) -> u32 {
        match self {
            Self::Collect { v, .. } | Self::Done { v, .. } | Self::Abort { v, .. } | Self::Record { v, .. } => *v,
        }
    }
}

/// Whether `uri` names a file under `artifacts/`: `/`-separated components,
/// none empty, `.` or `..`, no NUL.
fn is_artifact_uri(uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("artifacts/") else { return false };
    !uri.contains('\0') && rest.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Whether `trash` names a file directly in `gc-trash/`.
fn is_trash_path(trash: &str) -> bool {
    trash.strip_prefix("gc-trash/").is_some_and(|name| !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0']))
}

impl GcEntry {
    /// A `collect` line names an artifact and a file in `gc-trash/`, nothing
    /// else: a line naming any other path (damage, or a hand-written line)
    /// is no intent, so gc never moves or deletes a state file or a file
    /// outside the state directory to finish it.
    fn paths_in_place(&self) -> bool {
        match self {
            Self::Collect { uri, trash, .. } => is_artifact_uri(uri) && is_trash_path(trash),
            _ => true,
        }
    }
}

/// A `collect` line: what an unfinished collection needs to be finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub id: String,
    pub uri: String,
    pub checksum: String,
    pub size: u64,
    pub records: Vec<RecordRef>,
    pub trash: String,
}

/// What the log says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcLogState {
    pub exists: bool,
    /// Records gc collected.
    pub records: HashSet<RecordRef>,
    /// URIs whose files gc removed.
    pub uris: HashSet<String>,
    /// Collections started and neither finished nor undone, in log order.
    pub unfinished: Vec<Intent>,
    /// 1-based numbers of lines that are not log entries (torn lines aside).
    pub damaged: Vec<u64>,
    /// 1-based numbers of lines ending in the torn mark: appends cut short.
    pub torn: Vec<u64>,
    /// The last line was cut short by a crash.
    pub torn_tail: bool,
}

/// ISO-8601 UTC time of now, to the millisecond.
pub fn now_iso() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    iso_of_ms(d.as_millis() as i64)
}

/// ISO-8601 UTC time of `ms` since the Unix epoch.
pub fn iso_of_ms(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

/// Reads the log of `state_dir` (a missing log is an empty one).
pub fn read(state_dir: &Path) -> Result<GcLogState> {
    let path = state_dir.join(GC_LOG);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(GcLogState::default()),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let mut st = GcLogState { exists: true, ..GcLogState::default() };
    let mut intents: HashMap<String, Intent> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let ends_with_newline = text.last() == Some(&b'\n');
    let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    let n = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        let last = i + 1 == n;
        if line.is_empty() {
            continue;
        }
        if line.ends_with(TORN_MARK.as_bytes()) {
            st.torn.push(i as u64 + 1);
            continue;
        }
        let entry = serde_json::from_slice::<GcEntry>(line).ok().filter(|e| e.version() == 1 && e.paths_in_place());
        let Some(entry) = entry else {
            if last && !ends_with_newline {
                st.torn_tail = true;
            } else {
                st.damaged.push(i as u64 + 1);
            }
            continue;
        };
        match entry {
            GcEntry::Collect { id, uri, checksum, size, records, trash, .. } => {
                if !intents.contains_key(&id) {
                    order.push(id.clone());
                }
                intents.insert(id.clone(), Intent { id, uri, checksum, size, records, trash });
            }
            GcEntry::Done { id, .. } => {
                if let Some(intent) = intents.remove(&id) {
                    st.uris.insert(intent.uri);
                    st.records.extend(intent.records);
                }
            }
            GcEntry::Abort { id, .. } => {
                intents.remove(&id);
            }
            GcEntry::Record { store, payload_id, .. } => {
                st.records.insert(RecordRef { store, payload_id });
            }
        }
    }
    st.unfinished = order.into_iter().filter_map(|id| intents.remove(&id)).collect();
    Ok(st)
}

/// Opens (creating) the log of `state_dir` for appending, never through a
/// symbolic link (a gc.log that is one would have gc write to a file outside
/// the log); also says whether it existed before.
pub(crate) fn open_for_append(state_dir: &Path) -> Result<(File, PathBuf, bool)> {
    let path = state_dir.join(GC_LOG);
    let existed = path.exists();
    let f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    Ok((f, path, existed))
}

/// Appends entries durably: ends a torn last line first, writes the lines in
/// one `write`, fsyncs the file (and the directory when it created the file).
pub fn append(state_dir: &Path, entries: &[GcEntry]) -> Result<()> {
    let (f, path, existed) = open_for_append(state_dir)?;
    let len = f.metadata().map_err(|e| Error::io("fstat", &path, e))?.len();
    let mut text = String::new();
    if len > 0 {
        let mut last = [0u8];
        f.read_exact_at(&mut last, len - 1).map_err(|e| Error::io("read", &path, e))?;
        if last[0] != b'\n' {
            text.push_str(TORN_MARK);
            text.push('\n');
        }
    }
    for e in entries {
        text.push_str(&serde_json::to_string(e).map_err(|e| Error::invalid(format!("gc.log entry: {e}")))?);
        text.push('\n');
    }
    match io::write_once(Site::GcLogAppend, &f, &path, text.as_bytes()) {
        Ok(n) if n == text.len() => {}
        Ok(_) => {
            // The disk filled up mid-line: the fragment is a write this call
            // cut short, so it is ended with the mark, not left as damage.
            let _ = io::write_once(Site::GcLogAppend, &f, &path, format!("{TORN_MARK}\n").as_bytes());
            return Err(Error::io("write", &path, std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error())));
        }
        Err(e) => return Err(e),
    }
    failpoint!("gc::log-written");
    io::sync_data(Site::GcLogSync, &f, &path)?;
    if !existed {
        io::sync_dir(Site::GcLogDir, state_dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_the_wrong_shape_are_damage_and_a_cut_last_line_is_a_torn_tail() {
        let d = tempfile::tempdir().unwrap();
        let rec = RecordRef { store: StoreKind::Quotes, payload_id: 3 };
        let collect = GcEntry::Collect {
            v: 1,
            id: "a".into(),
            at: now_iso(),
            uri: "artifacts/x".into(),
            checksum: "0x0000000000000001".into(),
            size: 1,
            records: vec![rec],
            trash: "gc-trash/a".into(),
        };
        append(d.path(), &[collect.clone(), GcEntry::Done { v: 1, id: "a".into(), at: now_iso() }]).unwrap();
        let good = std::fs::read_to_string(d.path().join(GC_LOG)).unwrap();
        // Valid JSON of the wrong shape (no `records`), and a line cut short.
        std::fs::write(d.path().join(GC_LOG), format!("{good}{{\"v\":1,\"op\":\"collect\",\"id\":\"b\"}}\n{{\"v\":1,\"op\":\"do")).unwrap();
        let st = read(d.path()).unwrap();
        assert_eq!(st.damaged, vec![3]);
        assert!(st.torn_tail);
        assert!(st.torn.is_empty());
        assert!(st.records.contains(&rec) && st.uris.contains("artifacts/x"));
        append(d.path(), &[collect]).unwrap();
        let text = std::fs::read_to_string(d.path().join(GC_LOG)).unwrap();
        assert!(text.lines().nth(3).unwrap().ends_with(TORN_MARK), "{text}");
        let st = read(d.path()).unwrap();
        assert!(!st.torn_tail, "the torn line was ended and marked");
        assert_eq!((st.torn.clone(), st.damaged.clone()), (vec![4], vec![3]), "a torn line is listed apart from damage");
        assert_eq!(st.unfinished.len(), 1);
    }

    #[test]
    fn collect_lines_naming_paths_outside_artifacts_or_gc_trash_are_damage() {
        let d = tempfile::tempdir().unwrap();
        let line = |uri: &str, trash: &str| {
            format!(
                r#"{{"v":1,"op":"collect","id":"x","at":"t","uri":{uri:?},"checksum":"0x0000000000000001","size":1,"records":[],"trash":{trash:?}}}"#
            )
        };
        let lines = [
            line("artifacts/SPY/a.json", "gc-trash/x"),
            line("artifacts/SPY/a.json", "../victim"),
            line("artifacts/SPY/a.json", "trades.map"),
            line("artifacts/SPY/a.json", "gc-trash/../audit.log"),
            line("artifacts/SPY/a.json", "gc-trash/"),
            line("/etc/passwd", "gc-trash/x"),
            line("artifacts/../symbols.log", "gc-trash/x"),
            line("artifacts//a.json", "gc-trash/x"),
            line("trade-ledger.dat", "gc-trash/x"),
        ];
        std::fs::write(d.path().join(GC_LOG), format!("{}\n", lines.join("\n"))).unwrap();
        let st = read(d.path()).unwrap();
        assert_eq!(st.damaged, (2..=9).collect::<Vec<u64>>());
        assert_eq!(st.unfinished.len(), 1);
        assert_eq!(st.unfinished[0].trash, "gc-trash/x");
    }

    #[test]
    fn a_gc_log_that_is_a_symbolic_link_is_never_written_through() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join(GC_LOG)).unwrap();
        let done = GcEntry::Done { v: 1, id: "x".into(), at: now_iso() };
        assert!(append(d.path(), &[done]).is_err());
        assert_eq!(std::fs::read(outside.path()).unwrap(), b"");
    }

    #[test]
    fn iso_times_are_civil_utc() {
        assert_eq!(iso_of_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_of_ms(1_764_528_000_123), "2025-11-30T18:40:00.123Z");
        assert_eq!(iso_of_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
