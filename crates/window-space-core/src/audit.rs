//! The audit trail (`audit.log`): one JSON line per operator action and per
//! lease takeover, appended by every process of the state directory.
//!
//! ## Format (version 1)
//!
//! UTF-8 text, one JSON object per line, appended with `O_APPEND` in a single
//! `write` so lines of concurrent processes never interleave (in the sync
//! durability mode followed by `fdatasync`). Fields:
//!
//! | field | meaning |
//! | --- | --- |
//! | `v` | format version = 1 |
//! | `atNs` | wall-clock time of the action, ns since the Unix epoch, as a decimal string |
//! | `actor` | who: the caller's string, else the controller's (default `user@host pid N`) |
//! | `reason` | why, as given by the caller (`""` when none was given) |
//! | `action` | `forceClear`, `retire`, `forceClearRange`, `retireRange`, `takeover`, or a tool's own action (`gcDelete`, `retention`, ...) |
//! | `symbol`, `symbolId`, `slot` | the slot kind's name; absent for actions not about slots |
//! | `window` | single-slot actions |
//! | `from`, `to` | range actions: windows `from..to` (exclusive) |
//! | `previous` | single-slot actions: the slot before, `{status, version, payloadType, payloadId, checksum, leaseExpiresAt}` (checksum as a decimal string) |
//! | `status`, `version` | single-slot actions: the slot after |
//! | `changed` | range actions: `[[window, previous status, previous version, previous payload id], ...]` for each slot that changed |
//! | `details` | free-form object for tool actions |
//!
//! A write cut short (a full disk) leaves a fragment of a line. The writer
//! that cut it knows so and ends the fragment with the torn mark
//! [`TORN_MARK`] (`#torn`) and a newline at once; when even that cannot be
//! written, the next append finds the file not ending in a newline and ends
//! the fragment with the mark first. A line ending in the mark is a *torn
//! append*: the call that wrote it failed (its caller got the error), and it
//! records nothing — for an admin call's outcome line, the change its
//! intent line names happened, and what it replaced is lost with the line. [`AuditLog::scan`] skips torn lines and lists them apart
//! from damage, `window-space verify` reports them as warnings, and
//! [`AuditLog::read_all`] skips them. A fragment not (yet) ended — the last
//! line of the file, without its newline — is also a torn append.
//!
//! Any other line that does not parse, or lacks `v`, `atNs`, `actor` or
//! `action`, is damage: `verify` reports it as a problem, [`AuditLog::scan`]
//! skips and lists it, and [`AuditLog::read_all`] refuses it. The lines
//! after a torn or damaged one read normally.
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::io::{self, Site};
use crate::slot::{SlotSnapshot, SlotStatus};

/// File name of the audit trail in the state directory.
pub const AUDIT_FILE: &str = "audit.log";
/// Ends the fragment a write cut short left (with a newline after it): the
/// line is a torn append, not damage.
pub const TORN_MARK: &str = "#torn";

/// Who does an action and why, as the caller gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditContext {
    pub actor: Option<String>,
    pub reason: Option<String>,
}

/// Longest actor or reason of an audit line, in characters.
pub const MAX_AUDIT_TEXT: usize = 256;

impl AuditContext {
    /// Checks the actor and reason: at most [`MAX_AUDIT_TEXT`] characters each,
    /// and an actor given is not empty (it says who; leave it out for the
    /// default). Callers check before they change anything, so an action
    /// whose audit line would be refused never happens.
    pub fn check(&self) -> Result<()> {
        if self.actor.as_deref().is_some_and(|a| a.trim().is_empty()) {
            return Err(Error::invalid("the audit actor must not be empty (leave it out for the default, user@host pid N)"));
        }
        for (what, v) in [("actor", &self.actor), ("reason", &self.reason)] {
            if let Some(v) = v {
                let n = v.chars().count();
                if n > MAX_AUDIT_TEXT {
                    return Err(Error::invalid(format!("the audit {what} must be at most {MAX_AUDIT_TEXT} characters, got {n}")));
                }
            }
        }
        Ok(())
    }
}

/// A line of the log that is not an audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedLine {
    /// 1-based line number.
    pub line: u64,
    /// Byte offset of the line in the file.
    pub offset: u64,
    pub what: String,
}

/// A line of the log that is an append cut short (it ends in [`TORN_MARK`],
/// or is the last line and has no newline): the call that wrote it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornLine {
    /// 1-based line number.
    pub line: u64,
    /// Byte offset of the line in the file.
    pub offset: u64,
}

/// What [`AuditLog::scan_numbered`] found: good lines with their numbers,
/// damaged lines and torn appends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scan {
    pub entries: Vec<NumberedEntry>,
    pub damaged: Vec<DamagedLine>,
    pub torn: Vec<TornLine>,
}

/// `user@host pid N` of this process: whom audit lines name when neither the
/// call nor the controller names anyone.
pub fn default_actor() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    let host = rustix::system::uname().nodename().to_string_lossy().into_owned();
    format!("{user}@{host} pid {}", std::process::id())
}

/// An audit line and its 1-based line number.
pub type NumberedEntry = (u64, Value);

/// The slot before an action, as an audit line records it.
pub fn previous_json(s: &SlotSnapshot) -> Value {
    json!({
        "status": s.status.name(),
        "version": s.version,
        "payloadType": s.payload_type,
        "payloadId": s.payload_id,
        "checksum": s.checksum.to_string(),
        "leaseExpiresAt": if s.status == SlotStatus::Pending { Value::from(s.lease_deadline_ms) } else { Value::Null },
    })
}

/// An exclusive `flock` on the audit log while one line is appended (the
/// in-process mutex of the log is held around it, see `lock.rs`).
struct AppendLock<'a>(&'a File);

impl<'a> AppendLock<'a> {
    fn take(f: &'a File, path: &Path) -> Result<Self> {
        loop {
            match rustix::fs::flock(f, rustix::fs::FlockOperation::LockExclusive) {
                Ok(()) => return Ok(Self(f)),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::io("flock", path, e.into())),
            }
        }
    }
}

impl Drop for AppendLock<'_> {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(self.0, rustix::fs::FlockOperation::Unlock);
    }
}

/// The append-only audit log of one state directory (opened lazily).
pub struct AuditLog {
    path: PathBuf,
    default_actor: String,
    sync: bool,
    file: Mutex<Option<File>>,
}

impl AuditLog {
    pub fn new(dir: &Path, default_actor: String, sync: bool) -> Self {
        Self { path: dir.join(AUDIT_FILE), default_actor, sync, file: Mutex::new(None) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The actor recorded when a caller names none.
    pub fn default_actor(&self) -> &str {
        &self.default_actor
    }

    /// Appends one line: `fields` plus `v`, `atNs`, `actor`, `reason`, `action`.
    pub fn append(&self, ctx: &AuditContext, action: &str, fields: Map<String, Value>) -> Result<()> {
        ctx.check()?;
        let at_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let mut line = Map::new();
        line.insert("v".into(), Value::from(1));
        line.insert("atNs".into(), Value::from(at_ns.to_string()));
        line.insert("actor".into(), Value::from(ctx.actor.clone().unwrap_or_else(|| self.default_actor.clone())));
        line.insert("reason".into(), Value::from(ctx.reason.clone().unwrap_or_default()));
        line.insert("action".into(), Value::from(action));
        line.extend(fields);
        let mut bytes = serde_json::to_vec(&Value::Object(line)).map_err(|e| Error::invalid(format!("audit line: {e}")))?;
        bytes.push(b'\n');
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            // Never through a symbolic link: the trail stays inside the state directory.
            let f = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(&self.path)
                .map_err(|e| Error::io("open", &self.path, e))?;
            if self.sync {
                // The file may be new: its entry in the state directory must
                // survive power loss as its lines do (once per controller).
                io::sync_dir(Site::AuditOpenDir, self.path.parent().unwrap_or_else(|| Path::new(".")))?;
            }
            *guard = Some(f);
        }
        let Some(f) = guard.as_ref() else { unreachable!("opened just above") };
        // Appenders of every process take the file's lock: the look at the last
        // byte and the write after it are one step, so no writer mistakes
        // another's line in progress for a fragment (which would leave a blank line).
        let _appending = AppendLock::take(f, &self.path)?;
        // A fragment left by a write cut short (whose closing mark could not
        // be written either) is ended with the mark first, so this line does
        // not join it and the fragment reads as a torn append.
        let len = f.metadata().map_err(|e| Error::io("fstat", &self.path, e))?.len();
        let mut last = [b'\n'];
        if len > 0 {
            f.read_exact_at(&mut last, len - 1).map_err(|e| Error::io("read", &self.path, e))?;
        }
        if last[0] != b'\n' {
            let mut marked = format!("{TORN_MARK}\n").into_bytes();
            marked.append(&mut bytes);
            bytes = marked;
        }
        // One write of the whole line: O_APPEND places it at the end atomically.
        // A short write (the disk filled up mid-line) is ended with the torn
        // mark: the fragment is a write this call cut short, and the next line
        // is not glued to it.
        match io::write_once(Site::AuditAppend, f, &self.path, &bytes) {
            Ok(n) if n == bytes.len() => {}
            Ok(_) => {
                let _ = io::write_once(Site::AuditAppend, f, &self.path, format!("{TORN_MARK}\n").as_bytes());
                // A short write to a regular file means the disk (or the file-size limit) is full.
                return Err(Error::io("write", &self.path, std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error())));
            }
            Err(e) => return Err(e),
        }
        if self.sync {
            io::sync_data(Site::AuditSync, f, &self.path)?;
        }
        Ok(())
    }

    /// Every line of the log, parsed; a damaged line (not a JSON object with
    /// the required fields, and no torn append) is an error naming its line
    /// number and byte offset. Torn appends are skipped.
    pub fn read_all(path: &Path) -> Result<Vec<Value>> {
        let (entries, damaged) = Self::scan(path)?;
        match damaged.into_iter().next() {
            Some(d) => Err(Error::corrupt(path, Some(d.offset), format!("line {} {}", d.line, d.what))),
            None => Ok(entries),
        }
    }

    /// Every good line of the log, parsed, and where the damaged ones are
    /// (torn appends are skipped; [`scan_numbered`](Self::scan_numbered) lists them).
    pub fn scan(path: &Path) -> Result<(Vec<Value>, Vec<DamagedLine>)> {
        let scan = Self::scan_numbered(path)?;
        Ok((scan.entries.into_iter().map(|(_, v)| v).collect(), scan.damaged))
    }

    /// Every good line of the log with its 1-based line number, the damaged
    /// lines, and the torn appends.
    pub fn scan_numbered(path: &Path) -> Result<Scan> {
        // Never through a symbolic link (ELOOP): what is read is the state directory's own trail.
        let opened = OpenOptions::new().read(true).custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32).open(path);
        let mut text = Vec::new();
        match opened.and_then(|mut f| std::io::Read::read_to_end(&mut f, &mut text)) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Scan::default()),
            Err(e) => return Err(Error::io("read", path, e)),
        }
        let mut scan = Scan::default();
        let mut offset = 0u64;
        let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
        let count = lines.len();
        for (i, line) in lines.into_iter().enumerate() {
            let at = offset;
            let number = i as u64 + 1;
            offset += line.len() as u64 + 1;
            if line.is_empty() {
                continue;
            }
            // The last piece has no newline after it: a fragment no mark ended yet.
            if i + 1 == count || line.ends_with(TORN_MARK.as_bytes()) {
                scan.torn.push(TornLine { line: number, offset: at });
                continue;
            }
            let v: Value = match serde_json::from_slice(line) {
                Ok(v) => v,
                Err(e) => {
                    scan.damaged.push(DamagedLine { line: number, offset: at, what: format!("is not JSON: {e}") });
                    continue;
                }
            };
            let ok = v.get("v").and_then(Value::as_u64) == Some(1)
                && v.get("atNs").and_then(Value::as_str).is_some_and(|s| s.parse::<u128>().is_ok())
                && v.get("actor").and_then(Value::as_str).is_some()
                && v.get("action").and_then(Value::as_str).is_some_and(|a| !a.is_empty());
            if ok {
                scan.entries.push((number, v));
            } else {
                scan.damaged.push(DamagedLine { line: number, offset: at, what: "lacks v=1, atNs, actor or action".into() });
            }
        }
        Ok(scan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_append_and_read_back_with_defaults_and_overrides() {
        let d = tempfile::tempdir().unwrap();
        let log = AuditLog::new(d.path(), "ops@host pid 1".into(), false);
        let mut f = Map::new();
        f.insert("window".into(), Value::from(4));
        log.append(&AuditContext::default(), "retire", f).unwrap();
        log.append(&AuditContext { actor: Some("alice".into()), reason: Some("bad feed".into()) }, "forceClear", Map::new()).unwrap();
        let lines = AuditLog::read_all(log.path()).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["actor"], "ops@host pid 1");
        assert_eq!(lines[0]["reason"], "");
        assert_eq!(lines[0]["window"], 4);
        assert_eq!(lines[1]["actor"], "alice");
        assert_eq!(lines[1]["reason"], "bad feed");
        assert_eq!(lines[1]["action"], "forceClear");
    }

    #[test]
    fn a_damaged_line_is_reported_with_its_offset() {
        let d = tempfile::tempdir().unwrap();
        let log = AuditLog::new(d.path(), "x".into(), false);
        log.append(&AuditContext::default(), "retire", Map::new()).unwrap();
        let good = std::fs::read(log.path()).unwrap();
        let mut bad = good.clone();
        bad.extend_from_slice(b"{\"v\":1}\n");
        std::fs::write(log.path(), &bad).unwrap();
        match AuditLog::read_all(log.path()) {
            Err(Error::CorruptState { offset, .. }) => assert_eq!(offset, Some(good.len() as u64)),
            other => panic!("{other:?}"),
        }
        std::fs::write(log.path(), b"not json\n").unwrap();
        assert!(matches!(AuditLog::read_all(log.path()), Err(Error::CorruptState { offset: Some(0), .. })));
        // scan keeps the good lines around a damaged one and says where it is.
        let mut mixed = good.clone();
        mixed.extend_from_slice(b"{\"v\":1,\"atN");
        mixed.push(b'\n');
        mixed.extend_from_slice(&good);
        std::fs::write(log.path(), &mixed).unwrap();
        let (entries, damaged) = AuditLog::scan(log.path()).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(damaged, vec![DamagedLine { line: 2, offset: good.len() as u64, what: damaged[0].what.clone() }]);
    }

    #[test]
    fn a_fragment_left_unended_is_torn_and_the_next_append_ends_it_with_the_mark() {
        let d = tempfile::tempdir().unwrap();
        let log = AuditLog::new(d.path(), "x".into(), false);
        log.append(&AuditContext::default(), "retire", Map::new()).unwrap();
        let good = std::fs::read(log.path()).unwrap();
        // A write cut short whose mark could not be written either (the disk stayed full).
        let mut cut = good.clone();
        cut.extend_from_slice(&good[..good.len() / 2]);
        std::fs::write(log.path(), &cut).unwrap();
        let scan = AuditLog::scan_numbered(log.path()).unwrap();
        assert_eq!((scan.entries.len(), scan.damaged.len()), (1, 0));
        assert_eq!(scan.torn, vec![TornLine { line: 2, offset: good.len() as u64 }]);
        log.append(&AuditContext::default(), "forceClear", Map::new()).unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(text.lines().nth(1).unwrap().ends_with(TORN_MARK), "{text}");
        let scan = AuditLog::scan_numbered(log.path()).unwrap();
        assert_eq!(scan.torn, vec![TornLine { line: 2, offset: good.len() as u64 }]);
        assert_eq!(scan.damaged, vec![]);
        assert_eq!(
            scan.entries.iter().map(|(n, e)| (*n, e["action"].as_str().unwrap())).collect::<Vec<_>>(),
            [(1, "retire"), (3, "forceClear")]
        );
    }

    #[test]
    fn a_missing_log_reads_as_empty() {
        let d = tempfile::tempdir().unwrap();
        assert!(AuditLog::read_all(&d.path().join(AUDIT_FILE)).unwrap().is_empty());
    }

    #[test]
    fn a_log_that_is_a_symbolic_link_is_neither_written_nor_read_through() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("elsewhere.log");
        std::fs::write(&target, b"outside\n").unwrap();
        std::os::unix::fs::symlink(&target, d.path().join(AUDIT_FILE)).unwrap();
        let log = AuditLog::new(d.path(), "x".into(), false);
        assert!(matches!(log.append(&AuditContext::default(), "retire", Map::new()), Err(Error::Io { .. })));
        assert!(matches!(AuditLog::scan(log.path()), Err(Error::Io { .. })));
        assert_eq!(std::fs::read(&target).unwrap(), b"outside\n");
    }
}
