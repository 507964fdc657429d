//! The one error enum of the core, [`Error`], and the slot-write family it
//! wraps, [`SlotWriteError`].
//!
//! Every variant has a stable string code ([`Error::code`]) that the napi
//! binding hands to JavaScript as `err.code`; callers match on the code, never
//! on the message. Messages are written for people: they say what failed and
//! where (file, offset, symbol, window).

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::slot::SlotSnapshot;

/// Result alias of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a slot transition was refused. The slot as it is now comes along so the
/// caller can tell what happened (e.g. whether the winner wrote the same artifact).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlotWriteError {
    /// The caller's claim version is no longer current: someone else claimed,
    /// filled, cleared or took over the slot.
    VersionConflict { expected_version: u32, current: SlotSnapshot },
    /// A live claim (lease not expired) is held by someone else.
    SlotBusy { current: SlotSnapshot },
    /// The slot is already Filled; claim it again only after a clear.
    SlotFilled { current: SlotSnapshot },
    /// The slot is Retired (terminal).
    SlotRetired { current: SlotSnapshot },
}

impl SlotWriteError {
    /// Stable code of the variant.
    pub fn code(&self) -> &'static str {
        match self {
            Self::VersionConflict { .. } => "ERR_VERSION_CONFLICT",
            Self::SlotBusy { .. } => "ERR_SLOT_BUSY",
            Self::SlotFilled { .. } => "ERR_SLOT_FILLED",
            Self::SlotRetired { .. } => "ERR_SLOT_RETIRED",
        }
    }

    /// The slot as it was seen when the transition was refused.
    pub fn current(&self) -> &SlotSnapshot {
        match self {
            Self::VersionConflict { current, .. }
            | Self::SlotBusy { current }
            | Self::SlotFilled { current }
            | Self::SlotRetired { current } => current,
        }
    }
}

impl fmt::Display for SlotWriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VersionConflict { expected_version, current } => write!(
                f,
                "version conflict: the claim was at version {expected_version}, the slot is now {} at version {}",
                current.status, current.version
            ),
            Self::SlotBusy { current } => write!(
                f,
                "slot is held by a live claim (version {}, lease until {} ms since epoch)",
                current.version, current.lease_deadline_ms
            ),
            Self::SlotFilled { current } => {
                write!(f, "slot is already Filled (version {}, payload id {})", current.version, current.payload_id)
            }
            Self::SlotRetired { current } => write!(f, "slot is Retired (version {})", current.version),
        }
    }
}

/// Every failure of the core.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed on a file of the state directory.
    Io { op: &'static str, path: PathBuf, source: io::Error },
    /// A state file is damaged, truncated, or of another format.
    CorruptState { file: PathBuf, offset: Option<u64>, what: String },
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
    SlotWrite(SlotWriteError),
    /// A payload id that the mapping table does not hold.
    UnknownPayload { store: &'static str, payload_id: u64, length: u64 },
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
}

impl Error {
    /// Stable string code, matched on by callers (JS sees it as `err.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Io { source, .. } => match source.raw_os_error() {
                Some(code) if code == rustix::io::Errno::NOSPC.raw_os_error() => "ERR_DISK_FULL",
                Some(code) if code == rustix::io::Errno::FBIG.raw_os_error() => "ERR_DISK_FULL",
                Some(code) if code == rustix::io::Errno::ROFS.raw_os_error() => "ERR_READ_ONLY",
                Some(code) if code == rustix::io::Errno::ACCESS.raw_os_error() => "ERR_PERMISSION_DENIED",
                Some(code) if code == rustix::io::Errno::PERM.raw_os_error() => "ERR_PERMISSION_DENIED",
                _ => "ERR_IO",
            },
            Self::CorruptState { .. } => "ERR_CORRUPT_STATE",
            Self::ScheduleMismatch { .. } => "ERR_SCHEDULE_MISMATCH",
            Self::InvalidSchedule { .. } => "ERR_INVALID_SCHEDULE",
            Self::InvalidSymbol { .. } => "ERR_INVALID_SYMBOL",
            Self::UnknownSymbol { .. } => "ERR_UNKNOWN_SYMBOL",
            Self::WindowOutOfRange { .. } => "ERR_WINDOW_OUT_OF_RANGE",
            Self::NoWindowForTimestamp { .. } => "ERR_NO_WINDOW_FOR_TIMESTAMP",
            Self::SlotWrite(e) => e.code(),
            Self::UnknownPayload { .. } => "ERR_UNKNOWN_PAYLOAD",
            Self::InvalidArgument { .. } => "ERR_INVALID_ARGUMENT",
            Self::PathEscapesStateDir { .. } => "ERR_PATH_ESCAPES_STATE_DIR",
            Self::Closed => "ERR_CLOSED",
            Self::Unsupported { .. } => "ERR_UNSUPPORTED",
            Self::NotAStateDir { .. } => "ERR_NOT_A_STATE_DIR",
        }
    }

    /// Structured details of the error (file, offset, symbol, window, slot as
    /// it is now, ...), so bindings can expose fields instead of a message to parse.
    pub fn details(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Self::Io { op, path, source } => json!({ "op": op, "path": path, "osError": source.raw_os_error() }),
            Self::CorruptState { file, offset, what } => json!({ "file": file, "offset": offset, "what": what }),
            Self::ScheduleMismatch { what }
            | Self::InvalidSchedule { what }
            | Self::InvalidArgument { what }
            | Self::Unsupported { what } => {
                json!({ "what": what })
            }
            Self::InvalidSymbol { symbol, why } => json!({ "symbol": symbol, "why": why }),
            Self::UnknownSymbol { symbol } => json!({ "symbol": symbol }),
            Self::WindowOutOfRange { window_idx, window_count } => json!({ "windowIdx": window_idx, "windowCount": window_count }),
            Self::NoWindowForTimestamp { timestamp_ns } => json!({ "timestampNs": timestamp_ns.to_string() }),
            Self::SlotWrite(e) => {
                let c = e.current();
                let expected = match e {
                    SlotWriteError::VersionConflict { expected_version, .. } => Some(*expected_version),
                    _ => None,
                };
                json!({ "expectedVersion": expected, "status": c.status.name(), "version": c.version })
            }
            Self::UnknownPayload { store, payload_id, length } => json!({ "store": store, "payloadId": payload_id, "length": length }),
            Self::PathEscapesStateDir { path } => json!({ "path": path }),
            Self::Closed => json!({}),
            Self::NotAStateDir { path } => json!({ "path": path }),
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
            Self::SlotWrite(e) => e.fmt(f),
            Self::UnknownPayload { store, payload_id, length } => {
                write!(f, "payload id {payload_id} does not exist in {store} (it holds {length} records)")
            }
            Self::InvalidArgument { what } => write!(f, "invalid argument: {what}"),
            Self::PathEscapesStateDir { path } => write!(f, "artifact path {path:?} would leave the state directory"),
            Self::Closed => write!(f, "the controller is closed"),
            Self::Unsupported { what } => write!(f, "unsupported: {what}"),
            Self::NotAStateDir { path } => write!(f, "{} is not a window-space state directory (it has no schedule.json)", path.display()),
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

impl From<SlotWriteError> for Error {
    fn from(e: SlotWriteError) -> Self {
        Self::SlotWrite(e)
    }
}
