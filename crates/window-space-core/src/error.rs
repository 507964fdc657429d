//! The one error enum of the core, [`Error`].
//!
//! Every variant has a stable code ([`Error::code`], from the vocabulary's
//! [`ErrorCode`] table) that JavaScript sees as `err.code`; callers match on
//! the code, never on the message. Messages are written for people: they say
//! what failed and where. What a caller may want to act on is also in
//! [`Error::details`], as named fields:
//!
//! | code | details fields |
//! | --- | --- |
//! | `ERR_IO`, `ERR_DISK_FULL`, `ERR_READ_ONLY`, `ERR_PERMISSION_DENIED` | `op`, `path`, `osError` (errno or null) |
//! | `ERR_CORRUPT_STATE` | `file`, `offset` (or null), `what`; for payload ids Filled slots refer to that their mapping table does not hold, also `records`, `highestReferencedId`, `danglingSlots`, `storesAffected`; for chunks of symbols `symbols.log` does not hold, also `symbols`, `highestSymbolId`, `chunks` |
//! | `ERR_NEWER_FORMAT` | `file`, `version` (found), `supported` (the newest this library reads) |
//! | `ERR_OLDER_FORMAT` | `file`, `version` (found), `supported`, `stateDir`, `command` (the `window-space migrate` command line that converts the directory) |
//! | `ERR_SCHEDULE_MISMATCH`, `ERR_INVALID_SCHEDULE`, `ERR_INVALID_ARGUMENT`, `ERR_UNSUPPORTED`, `ERR_INTERNAL` | `what` |
//! | `ERR_INVALID_SYMBOL` | `symbol`, `why` |
//! | `ERR_UNKNOWN_SYMBOL` | `symbol` (the name, or `id N`) |
//! | `ERR_WINDOW_OUT_OF_RANGE` | `windowIdx`, `windowCount` |
//! | `ERR_NO_WINDOW_FOR_TIMESTAMP` | `timestampNs` (decimal string) |
//! | `ERR_VERSION_CONFLICT`, `ERR_SLOT_BUSY`, `ERR_SLOT_FILLED`, `ERR_SLOT_RETIRED` | `symbolId`, `windowIdx`, `slotKind`, `expectedVersion` (or null), and the slot as it was seen: `status`, `version`, `payloadType`, `payloadId`, `checksum` (u64 as a decimal string), `leaseExpiresAt` (ms, or null) |
//! | `ERR_UNKNOWN_PAYLOAD` | `store`, `payloadId`, `length` |
//! | `ERR_PAYLOAD_LOST` | `store`, `payloadId` |
//! | `ERR_STATE_DIR_IN_USE` | `path`, `what` |
//! | `ERR_PATH_ESCAPES_STATE_DIR`, `ERR_NOT_A_STATE_DIR` | `path` |
//! | `ERR_CLOSED` | none |
//! | `ERR_CONNECTION` | `what` (the database connection failed or was lost) |
//! | `ERR_DATABASE` | `what`, `sqlstate` (or null) |

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::slot::{SlotAddr, SlotWriteError};
use crate::vocab::{ErrorCode, SlotStatus};

/// Result alias of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure of the core.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed on a file of the state directory.
    Io { op: &'static str, path: PathBuf, source: io::Error },
    /// A state file is damaged, truncated, or of another format.
    CorruptState { file: PathBuf, offset: Option<u64>, what: String },
    /// Filled slots refer to payload ids that their mapping table does not
    /// hold (it lost records: power loss in the buffered mode, or files
    /// restored from backups of different times), or holds only as lost.
    /// A bootstrap refuses it; only an operator's repair accepts the loss.
    DanglingPayloads {
        /// The mapping table (the first one affected, in store order).
        file: PathBuf,
        /// Whole records the table holds.
        records: u64,
        /// The highest payload id any Filled slot of its slot kinds refers to.
        highest_referenced: u64,
        /// Filled slots whose payload id the table does not hold (or holds as lost).
        dangling_slots: u64,
        /// How many mapping tables are affected (this one included).
        stores: u32,
    },
    /// Ledger chunks belong to symbol ids that `symbols.log` does not
    /// hold (the map lost symbols, or was restored from an older backup).
    /// A bootstrap refuses it; only an operator's repair accepts the loss.
    UnknownSymbolChunks {
        /// `symbols.log`.
        file: PathBuf,
        /// Symbols the map holds.
        symbols: u32,
        /// The highest symbol id a chunk belongs to.
        highest_symbol: u32,
        /// Chunks (of both ledgers) whose symbol id the map does not hold.
        chunks: u64,
    },
    /// A state file was written by a newer version of window-space.
    NewerFormat { file: PathBuf, version: u32, supported: u32 },
    /// A state directory of an older format version, which `window-space
    /// migrate` converts (offline). `file` is the file whose header says so.
    OlderFormat { file: PathBuf, version: u32, supported: u32, state_dir: PathBuf },
    /// The schedule given differs from the one persisted in the state directory.
    ScheduleMismatch { what: String },
    /// The schedule given is not valid on its own.
    InvalidSchedule { what: String },
    /// A symbol string is not acceptable (empty, too long, control characters).
    InvalidSymbol { symbol: String, why: &'static str },
    /// A symbol (by name or id) that the symbol map does not hold.
    UnknownSymbol { symbol: String },
    /// A window index outside `0..window_count`.
    WindowOutOfRange { window_idx: u64, window_count: u32 },
    /// A timestamp that falls in no window of the schedule.
    NoWindowForTimestamp { timestamp_ns: i128 },
    /// A slot transition was refused.
    SlotWrite { at: SlotAddr, refusal: SlotWriteError },
    /// A payload id that the mapping table does not hold.
    UnknownPayload { store: &'static str, payload_id: u64, length: u64 },
    /// A payload id whose record was lost and that an operator's repair
    /// marked lost: the id exists (it is never handed out again) but names
    /// no artifact.
    PayloadLost { store: &'static str, payload_id: u64 },
    /// An operation that needs the state directory to itself found other
    /// controllers (in this or other processes) with it open.
    StateDirInUse { path: PathBuf, what: String },
    /// An argument outside what the operation accepts.
    InvalidArgument { what: String },
    /// An artifact path that would leave the state directory.
    PathEscapesStateDir { path: String },
    /// The controller was closed.
    Closed,
    /// The platform lacks something the format relies on.
    Unsupported { what: String },
    /// The directory holds no window-space state (no `schedule.json`).
    NotAStateDir { path: PathBuf },
    /// A failure that has no code of its own: a bug (a panic caught at the boundary).
    Internal { what: String },
    /// The database (PostgreSQL backend) could not be reached, or the
    /// connection was lost: whether an unanswered statement took effect is
    /// unknown, as after any lost connection. `sqlstate` when the server
    /// said why before it closed the session (class 08, or 57P01..57P03:
    /// shut down, crashed, not accepting connections yet).
    Connection { what: String, sqlstate: Option<String> },
    /// The database refused a statement (its SQLSTATE, when it sent one).
    Database { what: String, sqlstate: Option<String> },
}

impl Error {
    /// Stable code, matched on by callers (JS sees its string as `err.code`).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Io { source, .. } => match source.raw_os_error() {
                Some(code) if code == rustix::io::Errno::NOSPC.raw_os_error() => ErrorCode::DiskFull,
                Some(code) if code == rustix::io::Errno::FBIG.raw_os_error() => ErrorCode::DiskFull,
                Some(code) if code == rustix::io::Errno::ROFS.raw_os_error() => ErrorCode::ReadOnly,
                Some(code) if code == rustix::io::Errno::ACCESS.raw_os_error() => ErrorCode::PermissionDenied,
                Some(code) if code == rustix::io::Errno::PERM.raw_os_error() => ErrorCode::PermissionDenied,
                _ => ErrorCode::Io,
            },
            Self::CorruptState { .. } | Self::DanglingPayloads { .. } | Self::UnknownSymbolChunks { .. } => ErrorCode::CorruptState,
            Self::NewerFormat { .. } => ErrorCode::NewerFormat,
            Self::OlderFormat { .. } => ErrorCode::OlderFormat,
            Self::ScheduleMismatch { .. } => ErrorCode::ScheduleMismatch,
            Self::InvalidSchedule { .. } => ErrorCode::InvalidSchedule,
            Self::InvalidSymbol { .. } => ErrorCode::InvalidSymbol,
            Self::UnknownSymbol { .. } => ErrorCode::UnknownSymbol,
            Self::WindowOutOfRange { .. } => ErrorCode::WindowOutOfRange,
            Self::NoWindowForTimestamp { .. } => ErrorCode::NoWindowForTimestamp,
            Self::SlotWrite { refusal, .. } => refusal.code(),
            Self::UnknownPayload { .. } => ErrorCode::UnknownPayload,
            Self::PayloadLost { .. } => ErrorCode::PayloadLost,
            Self::StateDirInUse { .. } => ErrorCode::StateDirInUse,
            Self::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            Self::PathEscapesStateDir { .. } => ErrorCode::PathEscapesStateDir,
            Self::Closed => ErrorCode::Closed,
            Self::Unsupported { .. } => ErrorCode::Unsupported,
            Self::NotAStateDir { .. } => ErrorCode::NotAStateDir,
            Self::Internal { .. } => ErrorCode::Internal,
            Self::Connection { .. } => ErrorCode::Connection,
            Self::Database { .. } => ErrorCode::Database,
        }
    }

    /// The details of the error as named fields (see the module's table), so
    /// bindings expose fields instead of a message to parse.
    pub fn details(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Self::Io { op, path, source } => json!({ "op": op, "path": path, "osError": source.raw_os_error() }),
            Self::CorruptState { file, offset, what } => json!({ "file": file, "offset": offset, "what": what }),
            Self::DanglingPayloads { file, records, highest_referenced, dangling_slots, stores } => json!({
                "file": file,
                "offset": null,
                "what": self.what(),
                "records": records,
                "highestReferencedId": highest_referenced,
                "danglingSlots": dangling_slots,
                "storesAffected": stores,
            }),
            Self::UnknownSymbolChunks { file, symbols, highest_symbol, chunks } => json!({
                "file": file,
                "offset": null,
                "what": self.what(),
                "symbols": symbols,
                "highestSymbolId": highest_symbol,
                "chunks": chunks,
            }),
            Self::NewerFormat { file, version, supported } => json!({ "file": file, "version": version, "supported": supported }),
            Self::OlderFormat { file, version, supported, state_dir } => json!({
                "file": file,
                "version": version,
                "supported": supported,
                "stateDir": state_dir,
                "command": migrate_command(state_dir),
            }),
            Self::ScheduleMismatch { what }
            | Self::InvalidSchedule { what }
            | Self::InvalidArgument { what }
            | Self::Unsupported { what }
            | Self::Internal { what } => json!({ "what": what }),
            Self::Connection { what, sqlstate } | Self::Database { what, sqlstate } => json!({ "what": what, "sqlstate": sqlstate }),
            Self::InvalidSymbol { symbol, why } => json!({ "symbol": symbol, "why": why }),
            Self::UnknownSymbol { symbol } => json!({ "symbol": symbol }),
            Self::WindowOutOfRange { window_idx, window_count } => json!({ "windowIdx": window_idx, "windowCount": window_count }),
            Self::NoWindowForTimestamp { timestamp_ns } => json!({ "timestampNs": timestamp_ns.to_string() }),
            Self::SlotWrite { at, refusal } => {
                let c = refusal.current();
                json!({
                    "symbolId": at.symbol,
                    "windowIdx": at.window,
                    "slotKind": at.kind.name(),
                    "expectedVersion": refusal.expected_version(),
                    "status": c.status.name(),
                    "version": c.version,
                    "payloadType": c.payload_type,
                    "payloadId": c.payload_id,
                    "checksum": c.checksum.to_string(),
                    "leaseExpiresAt": if c.status == SlotStatus::Pending { Some(c.lease_deadline_ms) } else { None },
                })
            }
            Self::UnknownPayload { store, payload_id, length } => json!({ "store": store, "payloadId": payload_id, "length": length }),
            Self::PayloadLost { store, payload_id } => json!({ "store": store, "payloadId": payload_id }),
            Self::StateDirInUse { path, what } => json!({ "path": path, "what": what }),
            Self::PathEscapesStateDir { path } => json!({ "path": path }),
            Self::Closed => json!({}),
            Self::NotAStateDir { path } => json!({ "path": path }),
        }
    }

    /// The refused transition, if this is one.
    pub fn refusal(&self) -> Option<&SlotWriteError> {
        match self {
            Self::SlotWrite { refusal, .. } => Some(refusal),
            _ => None,
        }
    }

    /// What is wrong, for the damage that only an operator's repair accepts.
    fn what(&self) -> String {
        match self {
            Self::DanglingPayloads { records, highest_referenced, dangling_slots, stores, .. } => {
                let others = match stores {
                    0 | 1 => String::new(),
                    n => format!(" ({} more mapping tables are affected likewise)", n - 1),
                };
                format!(
                    "{dangling_slots} Filled slots refer to payload ids this mapping table does not hold: it holds {records} record{}, and slots refer to ids up to {highest_referenced}{others}. Records were lost (power loss in the buffered mode, or files restored from backups of different times), and appending would hand out ids those slots refer to; `window-space repair` accepts the loss (try --dry-run first)",
                    if *records == 1 { "" } else { "s" }
                )
            }
            Self::UnknownSymbolChunks { symbols, highest_symbol, chunks, .. } => format!(
                "{chunks} ledger chunks belong to symbol ids this map does not hold: it holds {symbols} symbol{}, and chunks belong to ids up to {highest_symbol}. Symbols were lost (files restored from backups of different times), and adding a symbol would give it the id of rows that exist; `window-space repair` accepts the loss (try --dry-run first)",
                if *symbols == 1 { "" } else { "s" }
            ),
            _ => String::new(),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io { op, path: path.into(), source }
    }

    pub(crate) fn corrupt(file: impl Into<PathBuf>, offset: Option<u64>, what: impl Into<String>) -> Self {
        Self::CorruptState { file: file.into(), offset, what: what.into() }
    }

    pub(crate) fn invalid(what: impl Into<String>) -> Self {
        Self::InvalidArgument { what: what.into() }
    }

    /// A file header's format version that this library does not read: a
    /// newer one is [`Error::NewerFormat`], any other is damage at `offset`.
    pub(crate) fn unsupported_version(file: impl Into<PathBuf>, offset: u64, version: u32, supported: u32) -> Self {
        let file = file.into();
        if version > supported {
            Self::NewerFormat { file, version, supported }
        } else {
            Self::corrupt(
                file,
                Some(offset),
                format!("format version {version} is not one window-space writes (this library reads version {supported})"),
            )
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { op, path, source } => write!(f, "{op} failed on {}: {source}", path.display()),
            Self::CorruptState { file, offset: Some(off), what } => {
                write!(f, "corrupt state file {} at offset {off}: {what}", file.display())
            }
            Self::CorruptState { file, offset: None, what } => {
                write!(f, "corrupt state file {}: {what}", file.display())
            }
            Self::DanglingPayloads { file, .. } | Self::UnknownSymbolChunks { file, .. } => {
                write!(f, "corrupt state file {}: {}", file.display(), self.what())
            }
            Self::NewerFormat { file, version, supported } => write!(
                f,
                "{} was made by a newer version of window-space (format version {version}; this library reads version {supported}): upgrade window-space to open it",
                file.display()
            ),
            Self::OlderFormat { file, version, supported, state_dir } => write!(
                f,
                "{} was made by an older version of window-space (format version {version}; this library reads version {supported}): convert the state directory with `{}` (offline: stop every engine and tool using it first)",
                file.display(),
                migrate_command(state_dir)
            ),
            Self::ScheduleMismatch { what } => write!(f, "schedule mismatch: {what}"),
            Self::InvalidSchedule { what } => write!(f, "invalid schedule: {what}"),
            Self::InvalidSymbol { symbol, why } => write!(f, "invalid symbol {symbol:?}: {why}"),
            Self::UnknownSymbol { symbol } => write!(f, "unknown symbol {symbol}"),
            Self::WindowOutOfRange { window_idx, window_count } => {
                write!(f, "window index {window_idx} is out of range (the schedule has {window_count} windows)")
            }
            Self::NoWindowForTimestamp { timestamp_ns } => {
                write!(f, "timestamp {timestamp_ns} ns since epoch falls in no window of the schedule")
            }
            Self::SlotWrite { at, refusal } => write!(f, "{at}: {refusal}"),
            Self::UnknownPayload { store, payload_id, length } => {
                write!(f, "payload id {payload_id} does not exist in {store} (it holds {length} records)")
            }
            Self::PayloadLost { store, payload_id } => write!(
                f,
                "payload id {payload_id} of {store} was lost: its record did not survive and `window-space repair` marked the id lost (it names no artifact and is never handed out again)"
            ),
            Self::StateDirInUse { path, what } => write!(f, "{} is in use: {what}", path.display()),
            Self::InvalidArgument { what } => write!(f, "invalid argument: {what}"),
            Self::PathEscapesStateDir { path } => write!(f, "artifact path {path:?} would leave the state directory"),
            Self::Closed => write!(f, "the controller is closed"),
            Self::Unsupported { what } => write!(f, "unsupported: {what}"),
            Self::NotAStateDir { path } => {
                write!(f, "{} is not a window-space state directory (it has no schedule.json)", path.display())
            }
            Self::Internal { what } => write!(f, "internal error (a bug in window-space; please report it): {what}"),
            Self::Connection { what, .. } => write!(f, "database connection failed: {what}"),
            Self::Database { what, sqlstate: Some(state) } => write!(f, "the database refused a statement (SQLSTATE {state}): {what}"),
            Self::Database { what, sqlstate: None } => write!(f, "the database refused a statement: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The command line that converts `state_dir` to this library's format.
pub fn migrate_command(state_dir: &std::path::Path) -> String {
    let shown = state_dir.display().to_string();
    let plain = !shown.is_empty() && shown.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+,=:@".contains(&b));
    if plain {
        format!("window-space migrate {shown}")
    } else {
        format!("window-space migrate '{}'", shown.replace('\'', "'\\''"))
    }
}
