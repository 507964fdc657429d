//! The vocabulary of window-space, defined once: ledgers, slot kinds, slot
//! statuses, payload stores, ledger events, payload types, refusal codes,
//! audit actions and error codes. Every name and number that crosses a file
//! format, the napi boundary, the TypeScript API or the command line comes
//! from the tables here; the binding hands them to TypeScript
//! (`src/vocabulary.ts` is generated from them and a test keeps the two equal).
//!
//! This module is a leaf: it uses nothing else of the crate, so every other
//! module may use it without forming a cycle.
//!
//! Adding a slot kind is one row in [`SlotKind::TABLE`] (and a variant): its
//! name, its ledger, its column in that ledger's row and the store its
//! artifacts are recorded in. Columns of a ledger are dense and in code order;
//! the ledger's row layout (`ledger.rs`) follows from them.

use std::fmt;

/// The status of a slot. The discriminant is the status byte of the slot's
/// head word (`slot.rs`) and the status code everywhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum SlotStatus {
    /// Never claimed.
    Empty = 0,
    /// Claimed by an engine; carries a lease deadline.
    Pending = 1,
    /// Done: refers to a payload record.
    Filled = 2,
    /// Released (by the claim holder on failure, or by an operator); claimable again.
    Cleared = 3,
    /// Terminal: never claimed again.
    Retired = 4,
}

impl SlotStatus {
    /// All statuses, in code order.
    pub const ALL: [SlotStatus; 5] = [Self::Empty, Self::Pending, Self::Filled, Self::Cleared, Self::Retired];

    /// Decodes a status byte; `None` for a byte no version of the format writes.
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(v as usize).copied()
    }

    /// Name as used in metrics, JSON and the API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Pending => "Pending",
            Self::Filled => "Filled",
            Self::Cleared => "Cleared",
            Self::Retired => "Retired",
        }
    }
}

impl fmt::Display for SlotStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which of the two ledgers a slot lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LedgerKind {
    Trade = 0,
    Enrichment = 1,
}

impl LedgerKind {
    /// Both ledgers, in code order.
    pub const ALL: [LedgerKind; 2] = [Self::Trade, Self::Enrichment];

    /// Decodes a ledger code (0 trade, 1 enrichment).
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.get(code as usize).copied()
    }

    /// Code of the ledger in the API (0 trade, 1 enrichment).
    pub fn code(self) -> u32 {
        self as u32
    }

    /// Name as used in metrics, reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Trade => "trade",
            Self::Enrichment => "enrichment",
        }
    }

    /// File name of the ledger in the state directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Trade => "trade-ledger.dat",
            Self::Enrichment => "enrichment-ledger.dat",
        }
    }

    /// The slot kinds of this ledger, in column order.
    pub fn slot_kinds(self) -> &'static [SlotKind] {
        let first = SLOT_KINDS.iter().position(|k| k.ledger() == self).unwrap_or(0);
        let n = SLOT_KINDS.iter().filter(|k| k.ledger() == self).count();
        &SLOT_KINDS[first..first + n]
    }
}

/// The six payload stores (mapping tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StoreKind {
    Trades = 0,
    Quotes = 1,
    Aggressor = 2,
    RfRate = 3,
    Greeks = 4,
    Aggregations = 5,
}

impl StoreKind {
    /// Every store, in code order.
    pub const ALL: [StoreKind; 6] = [Self::Trades, Self::Quotes, Self::Aggressor, Self::RfRate, Self::Greeks, Self::Aggregations];

    /// Decodes a store code.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.get(code as usize).copied()
    }

    /// Code of the store (also the store-kind field of its file header).
    pub fn code(self) -> u32 {
        self as u32
    }

    /// File name of the mapping table in the state directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Trades => "trades.map",
            Self::Quotes => "quotes.map",
            Self::Aggressor => "aggressor.map",
            Self::RfRate => "rf_rate.map",
            Self::Greeks => "greeks.map",
            Self::Aggregations => "aggregations.map",
        }
    }

    /// camelCase name, as the TypeScript API spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Trades => "trades",
            Self::Quotes => "quotes",
            Self::Aggressor => "aggressor",
            Self::RfRate => "rfRate",
            Self::Greeks => "greeks",
            Self::Aggregations => "aggregations",
        }
    }
}

/// A slot kind: which artifact of a (symbol, window) row a slot stands for.
/// The discriminant is the kind's global code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SlotKind {
    RfRate = 0,
    OptionTrade = 1,
    OptionQuote = 2,
    UnderlyingTrade = 3,
    UnderlyingQuote = 4,
    OptionAggressor = 5,
    UnderlyingAggressor = 6,
    Greeks = 7,
    Aggregation = 8,
}

/// [`SlotKind::ALL`] as a static, for slices that outlive a call.
static SLOT_KINDS: [SlotKind; 9] = SlotKind::ALL;

/// One row of [`SlotKind::TABLE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotKindInfo {
    pub kind: SlotKind,
    /// camelCase name, as the TypeScript API and the command line spell it.
    pub name: &'static str,
    pub ledger: LedgerKind,
    /// Position of the slot in its ledger's row.
    pub column: u8,
    /// The store that records this kind's artifacts.
    pub store: StoreKind,
}

impl SlotKind {
    /// Every slot kind with its name, ledger, column and store, in code order
    /// (the code is the index). Kinds of one ledger are contiguous, and their
    /// columns count from 0.
    pub const TABLE: [SlotKindInfo; 9] = [
        SlotKindInfo { kind: Self::RfRate, name: "rfRate", ledger: LedgerKind::Trade, column: 0, store: StoreKind::RfRate },
        SlotKindInfo { kind: Self::OptionTrade, name: "optionTrade", ledger: LedgerKind::Trade, column: 1, store: StoreKind::Trades },
        SlotKindInfo { kind: Self::OptionQuote, name: "optionQuote", ledger: LedgerKind::Trade, column: 2, store: StoreKind::Quotes },
        SlotKindInfo {
            kind: Self::UnderlyingTrade,
            name: "underlyingTrade",
            ledger: LedgerKind::Trade,
            column: 3,
            store: StoreKind::Trades,
        },
        SlotKindInfo {
            kind: Self::UnderlyingQuote,
            name: "underlyingQuote",
            ledger: LedgerKind::Trade,
            column: 4,
            store: StoreKind::Quotes,
        },
        SlotKindInfo {
            kind: Self::OptionAggressor,
            name: "optionAggressor",
            ledger: LedgerKind::Trade,
            column: 5,
            store: StoreKind::Aggressor,
        },
        SlotKindInfo {
            kind: Self::UnderlyingAggressor,
            name: "underlyingAggressor",
            ledger: LedgerKind::Trade,
            column: 6,
            store: StoreKind::Aggressor,
        },
        SlotKindInfo { kind: Self::Greeks, name: "greeks", ledger: LedgerKind::Enrichment, column: 0, store: StoreKind::Greeks },
        SlotKindInfo {
            kind: Self::Aggregation,
            name: "aggregation",
            ledger: LedgerKind::Enrichment,
            column: 1,
            store: StoreKind::Aggregations,
        },
    ];

    /// Every slot kind, in code order.
    pub const ALL: [SlotKind; 9] = {
        let mut all = [Self::RfRate; 9];
        let mut i = 0;
        while i < all.len() {
            all[i] = Self::TABLE[i].kind;
            i += 1;
        }
        all
    };

    /// Decodes a global slot-kind code.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.get(code as usize).copied()
    }

    /// Finds a kind by its name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::TABLE.iter().find(|i| i.name == name).map(|i| i.kind)
    }

    /// This kind's row of [`TABLE`](Self::TABLE).
    #[inline]
    pub fn info(self) -> &'static SlotKindInfo {
        &Self::TABLE[self as usize]
    }

    /// Global code of the kind.
    #[inline]
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The ledger the kind's slots live in.
    #[inline]
    pub fn ledger(self) -> LedgerKind {
        self.info().ledger
    }

    /// Position of the slot inside its ledger's row.
    #[inline]
    pub fn column(self) -> usize {
        self.info().column as usize
    }

    /// camelCase name, as the TypeScript API spells it.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The payload store (mapping table) that records artifacts of this kind.
    pub fn store(self) -> StoreKind {
        self.info().store
    }
}

impl fmt::Display for SlotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Counters of events (not statuses) kept in each ledger's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum LedgerEvent {
    Claims = 0,
    Takeovers = 1,
    Fills = 2,
    Conflicts = 3,
    Clears = 4,
    ForceClears = 5,
    Retires = 6,
    Busy = 7,
}

impl LedgerEvent {
    /// Every event, in the order of the header's counters.
    pub const ALL: [LedgerEvent; 8] =
        [Self::Claims, Self::Takeovers, Self::Fills, Self::Conflicts, Self::Clears, Self::ForceClears, Self::Retires, Self::Busy];

    /// camelCase name, as metrics and the API spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Claims => "claims",
            Self::Takeovers => "takeovers",
            Self::Fills => "fills",
            Self::Conflicts => "conflicts",
            Self::Clears => "clears",
            Self::ForceClears => "forceClears",
            Self::Retires => "retires",
            Self::Busy => "busy",
        }
    }
}

/// Artifact formats with a name. A slot's payload type is any byte; these
/// are the codes the API also accepts by name.
pub const PAYLOAD_TYPES: [(&str, u8); 7] =
    [("Unknown", 0), ("Parquet", 1), ("Json", 2), ("Text", 3), ("Binary", 4), ("Csv", 5), ("Arrow", 6)];

/// Why a transition was refused, as the numbers-only calls return it
/// (negative numbers, so a version or window is never mistaken for one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum Refusal {
    /// A live claim is held by someone else.
    Busy = -1,
    /// The slot is already Filled.
    Filled = -2,
    /// The slot is Retired.
    Retired = -3,
    /// The caller's claim version is no longer current.
    Conflict = -4,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [Self::Busy, Self::Filled, Self::Retired, Self::Conflict];

    /// The negative number the numbers-only calls return.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// PascalCase name, as the API's `Refusal` object spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Busy => "Busy",
            Self::Filled => "Filled",
            Self::Retired => "Retired",
            Self::Conflict => "Conflict",
        }
    }

    /// The error code of the same refusal when it is thrown.
    pub fn error_code(self) -> ErrorCode {
        match self {
            Self::Busy => ErrorCode::SlotBusy,
            Self::Filled => ErrorCode::SlotFilled,
            Self::Retired => ErrorCode::SlotRetired,
            Self::Conflict => ErrorCode::VersionConflict,
        }
    }
}

/// Actions the core itself writes to the audit trail (`audit.rs`). Tools add
/// their own (`gc`, `retention`, ...), named by [`valid_tool_action`].
pub const AUDIT_ACTIONS: [&str; 5] = ["forceClear", "retire", "forceClearRange", "retireRange", "takeover"];

/// Longest audit action name.
pub const MAX_AUDIT_ACTION_BYTES: usize = 64;

/// Whether `action` may name a tool's own audit entry: 1 to 64 ASCII
/// letters, digits, `-` or `_`.
pub fn valid_tool_action(action: &str) -> bool {
    !action.is_empty()
        && action.len() <= MAX_AUDIT_ACTION_BYTES
        && action.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Every error code of the library: what `err.code` is in JavaScript. Each
/// has the name of the TypeScript class that carries it and that class's
/// parent; callers match on the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Io,
    DiskFull,
    ReadOnly,
    PermissionDenied,
    CorruptState,
    NewerFormat,
    OlderFormat,
    ScheduleMismatch,
    InvalidSchedule,
    InvalidSymbol,
    UnknownSymbol,
    WindowOutOfRange,
    NoWindowForTimestamp,
    VersionConflict,
    SlotBusy,
    SlotFilled,
    SlotRetired,
    UnknownPayload,
    InvalidArgument,
    PathEscapesStateDir,
    Closed,
    Unsupported,
    Aborted,
    Internal,
    NotAStateDir,
    JournalGap,
    WaitTimeout,
    PayloadLost,
    StateDirInUse,
    Connection,
    Database,
}

/// One row of [`ErrorCode::TABLE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCodeInfo {
    pub code: ErrorCode,
    /// The string JavaScript sees as `err.code`.
    pub name: &'static str,
    /// The TypeScript class of errors with this code.
    pub class: &'static str,
    /// That class's parent class.
    pub parent: &'static str,
}

const fn err(code: ErrorCode, name: &'static str, class: &'static str, parent: &'static str) -> ErrorCodeInfo {
    ErrorCodeInfo { code, name, class, parent }
}

impl ErrorCode {
    /// Every code, its string, its TypeScript class and that class's parent.
    pub const TABLE: [ErrorCodeInfo; 31] = {
        use ErrorCode::*;
        const BASE: &str = "WindowSpaceError";
        const CONFLICT: &str = "VersionConflictError";
        [
            err(Io, "ERR_IO", "IoError", BASE),
            err(DiskFull, "ERR_DISK_FULL", "DiskFullError", BASE),
            err(ReadOnly, "ERR_READ_ONLY", "ReadOnlyError", BASE),
            err(PermissionDenied, "ERR_PERMISSION_DENIED", "PermissionDeniedError", BASE),
            err(CorruptState, "ERR_CORRUPT_STATE", "CorruptStateError", BASE),
            err(NewerFormat, "ERR_NEWER_FORMAT", "NewerFormatError", BASE),
            err(OlderFormat, "ERR_OLDER_FORMAT", "OlderFormatError", BASE),
            err(ScheduleMismatch, "ERR_SCHEDULE_MISMATCH", "ScheduleMismatchError", BASE),
            err(InvalidSchedule, "ERR_INVALID_SCHEDULE", "InvalidScheduleError", BASE),
            err(InvalidSymbol, "ERR_INVALID_SYMBOL", "InvalidSymbolError", BASE),
            err(UnknownSymbol, "ERR_UNKNOWN_SYMBOL", "UnknownSymbolError", BASE),
            err(WindowOutOfRange, "ERR_WINDOW_OUT_OF_RANGE", "WindowOutOfRangeError", BASE),
            err(NoWindowForTimestamp, "ERR_NO_WINDOW_FOR_TIMESTAMP", "NoWindowForTimestampError", BASE),
            err(VersionConflict, "ERR_VERSION_CONFLICT", CONFLICT, "SlotWriteError"),
            err(SlotBusy, "ERR_SLOT_BUSY", "SlotBusyError", CONFLICT),
            err(SlotFilled, "ERR_SLOT_FILLED", "SlotFilledError", CONFLICT),
            err(SlotRetired, "ERR_SLOT_RETIRED", "SlotRetiredError", CONFLICT),
            err(UnknownPayload, "ERR_UNKNOWN_PAYLOAD", "UnknownPayloadError", BASE),
            err(InvalidArgument, "ERR_INVALID_ARGUMENT", "InvalidArgumentError", BASE),
            err(PathEscapesStateDir, "ERR_PATH_ESCAPES_STATE_DIR", "PathEscapesStateDirError", BASE),
            err(Closed, "ERR_CLOSED", "ClosedError", BASE),
            err(Unsupported, "ERR_UNSUPPORTED", "UnsupportedError", BASE),
            err(Aborted, "ERR_ABORTED", "AbortError", BASE),
            err(Internal, "ERR_INTERNAL", "InternalError", BASE),
            err(NotAStateDir, "ERR_NOT_A_STATE_DIR", "NotAStateDirError", BASE),
            err(JournalGap, "ERR_JOURNAL_GAP", "JournalGapError", BASE),
            err(WaitTimeout, "ERR_WAIT_TIMEOUT", "WaitTimeoutError", BASE),
            err(PayloadLost, "ERR_PAYLOAD_LOST", "PayloadLostError", BASE),
            err(StateDirInUse, "ERR_STATE_DIR_IN_USE", "StateDirInUseError", BASE),
            err(Connection, "ERR_CONNECTION", "ConnectionError", BASE),
            err(Database, "ERR_DATABASE", "DatabaseError", BASE),
        ]
    };

    /// This code's row of [`TABLE`](Self::TABLE).
    pub fn info(self) -> &'static ErrorCodeInfo {
        Self::TABLE.iter().find(|i| i.code == self).unwrap_or(&Self::TABLE[0])
    }

    /// The string JavaScript sees as `err.code`, e.g. `ERR_SLOT_BUSY`.
    pub fn as_str(self) -> &'static str {
        self.info().name
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_kinds_are_in_code_order_with_dense_columns_per_ledger() {
        for (i, info) in SlotKind::TABLE.iter().enumerate() {
            assert_eq!(info.kind as usize, i, "{} is not at its code", info.name);
            assert_eq!(SlotKind::from_name(info.name), Some(info.kind));
        }
        for ledger in LedgerKind::ALL {
            let kinds = ledger.slot_kinds();
            assert!(!kinds.is_empty());
            for (column, k) in kinds.iter().enumerate() {
                assert_eq!((k.ledger(), k.column()), (ledger, column), "{k}");
            }
        }
        let total: usize = LedgerKind::ALL.iter().map(|l| l.slot_kinds().len()).sum();
        assert_eq!(total, SlotKind::ALL.len(), "kinds of one ledger must be contiguous");
    }

    #[test]
    fn every_error_code_has_one_row_and_a_unique_string() {
        let mut names: Vec<_> = ErrorCode::TABLE.iter().map(|i| i.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::TABLE.len());
        for row in ErrorCode::TABLE {
            assert_eq!(row.code.info().name, row.name);
            assert!(row.name.starts_with("ERR_"));
        }
        for r in Refusal::ALL {
            assert!(r.code() < 0);
            assert!(r.error_code().info().parent == "VersionConflictError" || r == Refusal::Conflict);
        }
    }

    #[test]
    fn tool_actions_are_short_plain_words() {
        assert!(valid_tool_action("gc"));
        assert!(valid_tool_action("gc-intent_2"));
        for bad in ["", "a b", "x\ny", "é", &"a".repeat(65)] {
            assert!(!valid_tool_action(bad), "{bad:?}");
        }
    }
}
