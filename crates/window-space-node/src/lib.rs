//! napi-rs binding of window-space: converts JS values to core calls and
//! back, and nothing more. Every core error reaches JS with its stable string
//! `code` (napi v3 uses the error status as `err.code`); every exported
//! function catches panics (`catch_unwind`), so none crosses into JS.
//!
//! Hot-path calls take plain numbers (symbol id, window index, slot-kind code)
//! and report refused transitions as negative return codes instead of throwing,
//! so an engine's ordinary "someone else has it" costs no exception; the
//! TypeScript facade turns those codes into typed errors.

#![deny(unsafe_code)]

mod fast;
mod ops;
mod watch;

use std::sync::Arc;

use napi::bindgen_prelude::{AbortSignal, AsyncTask, BigInt, Either};
use napi::{Env, Task};
use napi_derive::napi;
use window_space_core::audit::{AuditContext, AuditLog};
use window_space_core::journal::JournalRead;
use window_space_core::{
    artifact, Config, Controller, Durability, Error as CoreError, LedgerKind, PayloadRecord, SlotKind, SlotSnapshot, SlotWriteError,
    StorageReport, StoreKind, Transition, WindowSpace,
};

/// Error status carrying the core's stable code.
pub struct Code(&'static str);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

type Result<T> = napi::Result<T, Code>;

/// Marker that starts the reason of every error this binding throws. The
/// reason is a JSON document `{"message": ..., "details": {...}}` that the
/// TypeScript facade (src/errors.ts) unpacks into typed error fields; it is
/// part of the binding ↔ facade contract, not an API for users.
const DETAILS_MARKER: &str = "window-space:";

/// The reason string of a thrown error: the marker and a JSON document.
fn reason(e: &CoreError) -> String {
    let doc = serde_json::json!({ "message": e.to_string(), "details": e.details() });
    format!("{DETAILS_MARKER}{doc}")
}

fn core_err(e: CoreError) -> napi::Error<Code> {
    napi::Error::new(Code(e.code()), reason(&e))
}

fn invalid(what: impl Into<String>) -> napi::Error<Code> {
    napi::Error::new(Code("ERR_INVALID_ARGUMENT"), what.into())
}

/// A caller-owned `Float64Array` the call writes into (borrowed, not copied).
/// Spelled as an alias so the macro converts it as a slice, not as a class reference.
type F64Out<'a> = &'a mut [f64];

/// Refusal codes returned (negated) by hot-path calls.
pub const REFUSED_BUSY: i32 = -1;
pub const REFUSED_FILLED: i32 = -2;
pub const REFUSED_RETIRED: i32 = -3;
pub const REFUSED_CONFLICT: i32 = -4;

pub(crate) fn refusal(e: &SlotWriteError) -> i32 {
    match e {
        SlotWriteError::SlotBusy { .. } => REFUSED_BUSY,
        SlotWriteError::SlotFilled { .. } => REFUSED_FILLED,
        SlotWriteError::SlotRetired { .. } => REFUSED_RETIRED,
        _ => REFUSED_CONFLICT,
    }
}

/// Maps a core result to a hot-path number: `ok(value)`, a negative refusal
/// code, or a thrown error for everything that is not a refused transition.
fn hot<T>(r: std::result::Result<T, CoreError>, ok: impl FnOnce(T) -> f64) -> Result<f64> {
    match r {
        Ok(v) => Ok(ok(v)),
        Err(CoreError::SlotWrite(e)) => Ok(f64::from(refusal(&e))),
        Err(e) => Err(core_err(e)),
    }
}

fn kind(code: u32) -> Result<SlotKind> {
    SlotKind::from_code(code).ok_or_else(|| invalid(format!("slot kind code {code} does not exist (0..=8)")))
}

fn store_kind(code: u32) -> Result<StoreKind> {
    StoreKind::from_code(code).ok_or_else(|| invalid(format!("store code {code} does not exist (0..=5)")))
}

fn ledger_kind(code: u32) -> Result<LedgerKind> {
    match code {
        0 => Ok(LedgerKind::Trade),
        1 => Ok(LedgerKind::Enrichment),
        _ => Err(invalid(format!("ledger code {code} does not exist (0 trade, 1 enrichment)"))),
    }
}

/// A whole number in 0..=2^53 from a JS number.
fn whole(v: f64, what: &str) -> Result<u64> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= 9_007_199_254_740_991.0 {
        Ok(v as u64)
    } else {
        Err(invalid(format!("{what} must be a whole number between 0 and 2^53-1, got {v}")))
    }
}

fn lease(v: f64) -> Result<Option<u64>> {
    if v < 0.0 {
        Ok(None)
    } else {
        whole(v, "leaseMs").map(Some)
    }
}

fn u64_of(b: &BigInt, what: &str) -> Result<u64> {
    let (signed, v, lossless) = b.get_u64();
    if signed || !lossless {
        return Err(invalid(format!("{what} must be a bigint between 0 and 2^64-1")));
    }
    Ok(v)
}

fn i64_of(b: &BigInt, what: &str) -> Result<i64> {
    let (v, lossless) = b.get_i64();
    if !lossless {
        return Err(invalid(format!("{what} must be a bigint between -2^63 and 2^63-1")));
    }
    Ok(v)
}

/// Options of `NativeController.open`.
#[napi(object)]
pub struct NativeOpenOptions {
    pub state_dir: String,
    /// The schedule as JSON (`{"kind":"uniform",...}`), integers exact.
    pub schedule_json: String,
    /// "buffered" (default) or "sync".
    pub durability: Option<String>,
    pub default_lease_ms: Option<f64>,
    /// Entries of the change journal if this bootstrap creates it.
    pub journal_capacity: Option<f64>,
    /// Who this controller's audit lines name by default.
    pub actor: Option<String>,
}

/// Who does an admin action and why, for the audit trail.
#[napi(object)]
pub struct NativeAuditContext {
    pub actor: Option<String>,
    pub reason: Option<String>,
}

fn audit_ctx(a: Option<NativeAuditContext>) -> AuditContext {
    a.map(|a| AuditContext { actor: a.actor, reason: a.reason }).unwrap_or_default()
}

fn config(o: &NativeOpenOptions) -> Result<Config> {
    let space: WindowSpace = serde_json::from_str(&o.schedule_json)
        .map_err(|e| napi::Error::new(Code("ERR_INVALID_SCHEDULE"), format!("invalid schedule: {e}")))?;
    let mut c = Config::new(&o.state_dir, space);
    c.durability = match o.durability.as_deref() {
        None | Some("buffered") => Durability::Buffered,
        Some("sync") => Durability::Sync,
        Some(other) => return Err(invalid(format!("durability must be \"buffered\" or \"sync\", got {other:?}"))),
    };
    if let Some(l) = o.default_lease_ms {
        c.default_lease_ms = whole(l, "defaultLeaseMs")?;
    }
    if let Some(n) = o.journal_capacity {
        c.journal_capacity = whole(n, "journalCapacity")?;
    }
    c.actor = o.actor.clone();
    Ok(c)
}

#[napi(object)]
pub struct NativeFileReport {
    pub name: String,
    pub bytes: f64,
}

#[napi(object)]
pub struct NativeLedgerReport {
    pub ledger: String,
    pub chunks: f64,
    pub rows_allocated: f64,
    pub bytes: f64,
    pub stale_claims: f64,
}

#[napi(object)]
pub struct NativeStoreReport {
    pub store: String,
    pub file: String,
    pub records: f64,
    pub bytes: f64,
    pub torn_tail_bytes: f64,
    pub torn_tail_repaired: bool,
}

#[napi(object)]
pub struct NativeStorageReport {
    pub created: bool,
    pub schedule: String,
    pub window_count: u32,
    pub symbols: u32,
    pub exclusive: bool,
    pub files: Vec<NativeFileReport>,
    pub ledgers: Vec<NativeLedgerReport>,
    pub stores: Vec<NativeStoreReport>,
    pub stale_claims: f64,
    pub nonempty_slots: f64,
    pub elapsed_ns: f64,
}

fn report(r: &StorageReport) -> NativeStorageReport {
    NativeStorageReport {
        created: r.created,
        schedule: r.schedule.to_string(),
        window_count: r.window_count,
        symbols: r.symbols,
        exclusive: r.exclusive,
        files: r.files.iter().map(|f| NativeFileReport { name: f.name.clone(), bytes: f.bytes as f64 }).collect(),
        ledgers: r
            .ledgers
            .iter()
            .map(|l| NativeLedgerReport {
                ledger: l.ledger.name().to_string(),
                chunks: l.chunks as f64,
                rows_allocated: l.rows_allocated as f64,
                bytes: l.bytes as f64,
                stale_claims: l.stale_claims as f64,
            })
            .collect(),
        stores: r
            .stores
            .iter()
            .map(|s| NativeStoreReport {
                store: s.store.name().to_string(),
                file: s.store.file_name().to_string(),
                records: s.records as f64,
                bytes: s.bytes as f64,
                torn_tail_bytes: s.torn_tail_bytes as f64,
                torn_tail_repaired: s.torn_tail_repaired,
            })
            .collect(),
        stale_claims: r.stale_claims as f64,
        nonempty_slots: r.nonempty_slots as f64,
        elapsed_ns: r.elapsed_ns as f64,
    }
}

/// A failure handed to JS as a value (the async bootstrap resolves with it, so
/// its code survives the libuv thread pool).
#[napi(object)]
pub struct NativeErrorInfo {
    pub code: String,
    /// The same JSON reason a thrown error carries (see `core_err`).
    pub message: String,
}

#[napi(object)]
pub struct NativeTransition {
    pub from: u32,
    pub to: u32,
    pub version: u32,
}

fn transition(t: Transition) -> NativeTransition {
    NativeTransition { from: t.from as u32, to: t.to as u32, version: t.version }
}

#[napi(object)]
pub struct NativeWindowMeta {
    pub window_idx: u32,
    pub start_ns: BigInt,
    pub duration_ns: BigInt,
    pub schema_version: u32,
}

#[napi(object)]
pub struct NativePayloadInput {
    pub symbol_id: u32,
    pub window_idx: u32,
    pub slot_kind: u32,
    pub payload_type: u32,
    pub checksum: BigInt,
    pub size: f64,
    pub uri: String,
}

#[napi(object)]
pub struct NativePayloadRecord {
    pub payload_id: f64,
    pub symbol_id: u32,
    pub window_idx: u32,
    pub slot_kind: u32,
    pub payload_type: u32,
    pub checksum: BigInt,
    pub size: f64,
    pub created_at_ns: BigInt,
    pub uri: String,
}

#[napi(object)]
pub struct NativeArtifact {
    pub uri: String,
    pub checksum: BigInt,
    pub size: f64,
}

/// Numbers per slot written by `readSlot`/`readRow`:
/// `[status, version, payloadType, payloadId, checksumHi, checksumLo, leaseDeadlineMs, 0]`.
pub(crate) const SLOT_STRIDE: usize = 8;

pub(crate) fn write_slot(out: &mut [f64], s: &SlotSnapshot) {
    out[0] = f64::from(s.status as u8);
    out[1] = f64::from(s.version);
    out[2] = f64::from(s.payload_type);
    out[3] = s.payload_id as f64;
    out[4] = f64::from((s.checksum >> 32) as u32);
    out[5] = f64::from(s.checksum as u32);
    out[6] = s.lease_deadline_ms as f64;
    out[7] = 0.0;
}

/// An audit log as JSON text `{"entries": [...], "damaged": [{line, offset, what}]}`.
/// Unless `skip_damaged`, a damaged line is `ERR_CORRUPT_STATE` with its offset instead.
#[napi(catch_unwind)]
pub fn read_audit_log(path: String, skip_damaged: Option<bool>) -> Result<String> {
    let p = std::path::Path::new(&path);
    let (entries, damaged) = if skip_damaged.unwrap_or(false) {
        AuditLog::scan(p).map_err(core_err)?
    } else {
        (AuditLog::read_all(p).map_err(core_err)?, Vec::new())
    };
    let damaged: Vec<_> = damaged.iter().map(|d| serde_json::json!({ "line": d.line, "offset": d.offset, "what": d.what })).collect();
    Ok(serde_json::json!({ "entries": entries, "damaged": damaged }).to_string())
}

/// 64-bit checksum (xxh3-64) of bytes, as the artifact helper computes it.
#[napi(catch_unwind)]
pub fn checksum64(data: &[u8]) -> BigInt {
    BigInt::from(artifact::checksum(data))
}

/// An open state directory.
#[napi]
pub struct NativeController {
    inner: Option<Arc<Controller>>,
    report: StorageReport,
    handle: u32,
    watcher: Option<watch::Watcher>,
}

impl NativeController {
    fn new(c: Controller, report: StorageReport) -> Self {
        let inner = Arc::new(c);
        let handle = fast::register(inner.clone());
        Self { inner: Some(inner), report, handle, watcher: None }
    }
}

impl Drop for NativeController {
    fn drop(&mut self) {
        self.watcher = None;
        if self.inner.take().is_some() {
            fast::unregister(self.handle);
        }
    }
}

/// Off-thread bootstrap.
pub struct OpenTask {
    config: Option<Config>,
}

impl Task for OpenTask {
    type Output = std::result::Result<(Controller, StorageReport), CoreError>;
    type JsValue = Either<NativeController, NativeErrorInfo>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let config = self.config.take().ok_or_else(|| napi::Error::from_reason("bootstrap task ran twice"))?;
        Ok(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Controller::bootstrap(config)))
            .unwrap_or_else(|_| Err(CoreError::Unsupported { what: "internal panic during bootstrap".into() })))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(match output {
            Ok((c, r)) => Either::A(NativeController::new(c, r)),
            Err(e) => {
                let err = core_err(e);
                Either::B(NativeErrorInfo { code: err.status.0.to_string(), message: err.reason })
            }
        })
    }
}

/// Group commit on the libuv thread pool (see core `durability.rs`).
pub struct CommitTask {
    controller: Arc<Controller>,
    ticket: u64,
}

impl Task for CommitTask {
    type Output = std::result::Result<(), CoreError>;
    type JsValue = Option<NativeErrorInfo>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let (c, t) = (&self.controller, self.ticket);
        Ok(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.commit_through(t)))
            .unwrap_or_else(|_| Err(CoreError::Unsupported { what: "internal panic during group commit".into() })))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(output.err().map(|e| {
            let err = core_err(e);
            NativeErrorInfo { code: err.status.0.to_string(), message: err.reason }
        }))
    }
}

/// Bootstraps on the libuv thread pool; resolves with a controller or an error descriptor.
#[napi(catch_unwind)]
pub fn open_async(options: NativeOpenOptions, signal: Option<AbortSignal>) -> Result<AsyncTask<OpenTask>> {
    let config = config(&options)?;
    Ok(AsyncTask::with_optional_signal(OpenTask { config: Some(config) }, signal))
}

#[napi]
impl NativeController {
    /// Bootstraps synchronously.
    #[napi(factory, catch_unwind)]
    pub fn open(options: NativeOpenOptions) -> Result<NativeController> {
        let (c, r) = Controller::bootstrap(config(&options)?).map_err(core_err)?;
        Ok(NativeController::new(c, r))
    }

    /// Opens an existing state directory with its persisted schedule.
    #[napi(factory, catch_unwind)]
    pub fn open_existing(state_dir: String, durability: Option<String>, actor: Option<String>) -> Result<NativeController> {
        let d = match durability.as_deref() {
            None | Some("buffered") => Durability::Buffered,
            Some("sync") => Durability::Sync,
            Some(other) => return Err(invalid(format!("durability must be \"buffered\" or \"sync\", got {other:?}"))),
        };
        let (c, r) = Controller::open_existing(state_dir, d, actor).map_err(core_err)?;
        Ok(NativeController::new(c, r))
    }

    fn c(&self) -> Result<&Controller> {
        self.inner.as_deref().ok_or_else(|| core_err(CoreError::Closed))
    }

    #[napi(catch_unwind)]
    pub fn storage_report(&self) -> NativeStorageReport {
        report(&self.report)
    }

    /// Idempotent; unmaps once every in-flight call has finished.
    #[napi(catch_unwind)]
    pub fn close(&mut self) -> Result<()> {
        if let Some(mut w) = self.watcher.take() {
            w.stop();
        }
        if let Some(c) = self.inner.take() {
            fast::unregister(self.handle);
            if c.is_sync() {
                c.flush().map_err(core_err)?;
            }
        }
        Ok(())
    }

    /// Every call on this thread until `endDeferred` defers its syncs to a
    /// group commit (sync mode only; see core `durability.rs`).
    #[napi(catch_unwind)]
    pub fn begin_deferred(&self) -> Result<()> {
        self.c()?.begin_deferred();
        Ok(())
    }

    /// Ends the deferral; returns the ticket to commit (0: nothing is owed).
    #[napi(catch_unwind)]
    pub fn end_deferred(&self) -> Result<f64> {
        match self.c() {
            Ok(c) => Ok(c.end_deferred() as f64),
            Err(e) => {
                // Closed during the write: the thread must not stay deferring.
                window_space_core::clear_deferring();
                Err(e)
            }
        }
    }

    /// Resolves with `null` once every deferred write up to `ticket` is
    /// durable, or with an error descriptor.
    #[napi(catch_unwind)]
    pub fn commit_async(&self, ticket: f64) -> Result<AsyncTask<CommitTask>> {
        let controller = self.inner.clone().ok_or_else(|| core_err(CoreError::Closed))?;
        Ok(AsyncTask::new(CommitTask { controller, ticket: whole(ticket, "ticket")? }))
    }

    /// (tickets issued, tickets durable, commit rounds) of the group commit.
    #[napi(catch_unwind)]
    pub fn group_commit_progress(&self) -> Result<Vec<f64>> {
        let (issued, durable, rounds) = self.c()?.group_commit_progress();
        Ok(vec![issued as f64, durable as f64, rounds as f64])
    }

    /// Handle of this controller for the `fast*` functions (see fast.rs).
    #[napi(getter, catch_unwind)]
    pub fn handle(&self) -> u32 {
        self.handle
    }

    #[napi(getter, catch_unwind)]
    pub fn closed(&self) -> bool {
        self.inner.is_none()
    }

    #[napi(catch_unwind)]
    pub fn flush(&self) -> Result<()> {
        self.c()?.flush().map_err(core_err)
    }

    #[napi(catch_unwind)]
    pub fn state_dir(&self) -> Result<String> {
        Ok(self.c()?.state_dir().to_string_lossy().into_owned())
    }

    #[napi(catch_unwind)]
    pub fn default_lease_ms(&self) -> Result<f64> {
        Ok(self.c()?.default_lease_ms() as f64)
    }

    // ---- symbols

    #[napi(catch_unwind)]
    pub fn resolve_symbol(&self, symbol: String) -> Result<u32> {
        self.c()?.resolve_symbol(&symbol).map_err(core_err)
    }

    /// Id of a known symbol, or -1.
    #[napi(catch_unwind)]
    pub fn lookup_symbol(&self, symbol: String) -> Result<i64> {
        Ok(self.c()?.lookup_symbol(&symbol).map_err(core_err)?.map_or(-1, i64::from))
    }

    #[napi(catch_unwind)]
    pub fn symbol_name(&self, id: u32) -> Result<String> {
        self.c()?.symbol_name(id).map_err(core_err)
    }

    #[napi(catch_unwind)]
    pub fn symbols(&self) -> Result<Vec<String>> {
        self.c()?.symbols().map_err(core_err)
    }

    // ---- schedule

    #[napi(catch_unwind)]
    pub fn window_count(&self) -> Result<u32> {
        Ok(self.c()?.window_count())
    }

    #[napi(catch_unwind)]
    pub fn schedule_json(&self) -> Result<String> {
        serde_json::to_string(&self.c()?.window_space()).map_err(|e| invalid(e.to_string()))
    }

    #[napi(catch_unwind)]
    pub fn window_idx_for_timestamp_ns(&self, ts: BigInt) -> Result<u32> {
        let v = i64_of(&ts, "timestamp")?;
        self.c()?.window_idx_for_timestamp(i128::from(v)).map_err(core_err)
    }

    #[napi(catch_unwind)]
    pub fn window_meta(&self, window_idx: u32) -> Result<NativeWindowMeta> {
        let m = self.c()?.window_meta(window_idx).map_err(core_err)?;
        Ok(NativeWindowMeta {
            window_idx: m.window_idx,
            start_ns: BigInt::from(m.start_ns),
            duration_ns: BigInt::from(m.duration_ns),
            schema_version: m.schema_version,
        })
    }

    // ---- hot path

    /// Claims; returns the claim version, or a negative refusal code.
    #[napi(catch_unwind)]
    pub fn claim(&self, symbol: u32, window_idx: u32, kind_code: u32, lease_ms: f64) -> Result<f64> {
        let k = kind(kind_code)?;
        hot(self.c()?.claim(symbol, window_idx, k, lease(lease_ms)?), |g| f64::from(g.version))
    }

    /// Renews a claim; returns the new deadline (ms), or a negative refusal code.
    #[napi(catch_unwind)]
    pub fn renew(&self, symbol: u32, window_idx: u32, kind_code: u32, version: u32, lease_ms: f64) -> Result<f64> {
        let k = kind(kind_code)?;
        hot(self.c()?.renew(symbol, window_idx, k, version, lease(lease_ms)?), |d| d as f64)
    }

    /// Fills; returns the new version, or a negative refusal code.
    #[napi(catch_unwind)]
    #[allow(clippy::too_many_arguments)]
    pub fn fill(
        &self,
        symbol: u32,
        window_idx: u32,
        kind_code: u32,
        version: u32,
        payload_type: u32,
        payload_id: f64,
        checksum_hi: u32,
        checksum_lo: u32,
    ) -> Result<f64> {
        let k = kind(kind_code)?;
        let pt = u8::try_from(payload_type).map_err(|_| invalid(format!("payloadType must be 0..=255, got {payload_type}")))?;
        let id = whole(payload_id, "payloadId")?;
        let sum = (u64::from(checksum_hi) << 32) | u64::from(checksum_lo);
        hot(self.c()?.fill(symbol, window_idx, k, version, pt, id, sum), |t| f64::from(t.version))
    }

    /// Clears by the claim holder; returns the new version, or a negative refusal code.
    #[napi(catch_unwind)]
    pub fn clear(&self, symbol: u32, window_idx: u32, kind_code: u32, version: u32) -> Result<f64> {
        let k = kind(kind_code)?;
        hot(self.c()?.clear(symbol, window_idx, k, version), |t| f64::from(t.version))
    }

    /// Reads one slot into `out[0..8]`.
    #[napi(catch_unwind)]
    pub fn read_slot(
        &self,
        symbol: u32,
        window_idx: u32,
        kind_code: u32,
        #[napi(ts_arg_type = "Float64Array")] out: F64Out<'_>,
    ) -> Result<()> {
        let k = kind(kind_code)?;
        if out.len() < SLOT_STRIDE {
            return Err(invalid("readSlot needs an output array of at least 8 numbers"));
        }
        let s = self.c()?.read_slot(symbol, window_idx, k).map_err(core_err)?;
        write_slot(&mut out[..SLOT_STRIDE], &s);
        Ok(())
    }

    /// Reads a row of a ledger (0 trade, 1 enrichment) into `out`, 8 numbers a slot.
    #[napi(catch_unwind)]
    pub fn read_row(
        &self,
        ledger: u32,
        symbol: u32,
        window_idx: u32,
        #[napi(ts_arg_type = "Float64Array")] out: F64Out<'_>,
    ) -> Result<u32> {
        let l = ledger_kind(ledger)?;
        let n = l.slot_kinds().len();
        if out.len() < n * SLOT_STRIDE {
            return Err(invalid(format!("readRow needs an output array of at least {} numbers", n * SLOT_STRIDE)));
        }
        let row = self.c()?.read_row(l, symbol, window_idx).map_err(core_err)?;
        for (i, s) in row.iter().enumerate() {
            write_slot(&mut out[i * SLOT_STRIDE..(i + 1) * SLOT_STRIDE], s);
        }
        Ok(n as u32)
    }

    /// First window >= start that is neither Filled nor Retired, or -1.
    #[napi(catch_unwind)]
    pub fn next_unfilled_window(&self, symbol: u32, start: u32, kind_code: u32) -> Result<i64> {
        let k = kind(kind_code)?;
        Ok(self.c()?.next_unfilled_window(symbol, start, k).map_err(core_err)?.map_or(-1, i64::from))
    }

    /// Claims up to `n` windows; writes (window, version) pairs into `out`; returns how many.
    #[napi(catch_unwind)]
    pub fn claim_next_unfilled(
        &self,
        symbol: u32,
        start: u32,
        kind_code: u32,
        n: u32,
        lease_ms: f64,
        #[napi(ts_arg_type = "Float64Array")] out: F64Out<'_>,
    ) -> Result<u32> {
        let k = kind(kind_code)?;
        if out.len() < 2 * n as usize {
            return Err(invalid(format!("claimNextUnfilled needs an output array of at least {} numbers", 2 * n)));
        }
        let got = self.c()?.claim_next_unfilled(symbol, start, k, n, lease(lease_ms)?).map_err(core_err)?;
        for (i, (w, g)) in got.iter().enumerate() {
            out[2 * i] = f64::from(*w);
            out[2 * i + 1] = f64::from(g.version);
        }
        Ok(got.len() as u32)
    }

    /// Fills many slots. `items` holds 8 numbers an item:
    /// `[symbol, window, kind, version, payloadType, payloadId, checksumHi, checksumLo]`;
    /// `out[i]` gets the new version or a negative refusal code. Errors other
    /// than refusals stop the batch and are thrown (earlier fills stay done).
    #[napi(catch_unwind)]
    pub fn fill_batch(&self, items: &[f64], #[napi(ts_arg_type = "Float64Array")] out: F64Out<'_>) -> Result<u32> {
        if !items.len().is_multiple_of(8) || out.len() < items.len() / 8 {
            return Err(invalid("fillBatch needs 8 numbers an item and one output slot an item"));
        }
        let c = self.c()?;
        for (i, it) in items.chunks_exact(8).enumerate() {
            let sym = u32::try_from(whole(it[0], "symbolId")?).map_err(|_| invalid("symbolId out of range"))?;
            let win = u32::try_from(whole(it[1], "windowIdx")?).map_err(|_| invalid("windowIdx out of range"))?;
            let k = kind(whole(it[2], "slotKind")? as u32)?;
            let ver = u32::try_from(whole(it[3], "version")?).map_err(|_| invalid("version out of range"))?;
            let pt = u8::try_from(whole(it[4], "payloadType")?).map_err(|_| invalid("payloadType out of range"))?;
            let id = whole(it[5], "payloadId")?;
            let hi = u32::try_from(whole(it[6], "checksumHi")?).map_err(|_| invalid("checksumHi out of range"))?;
            let lo = u32::try_from(whole(it[7], "checksumLo")?).map_err(|_| invalid("checksumLo out of range"))?;
            out[i] = hot(c.fill(sym, win, k, ver, pt, id, (u64::from(hi) << 32) | u64::from(lo)), |t| f64::from(t.version))?;
        }
        Ok((items.len() / 8) as u32)
    }

    // ---- admin

    #[napi(catch_unwind)]
    pub fn force_clear(&self, symbol: u32, window_idx: u32, kind_code: u32, audit: Option<NativeAuditContext>) -> Result<NativeTransition> {
        let k = kind(kind_code)?;
        self.c()?.force_clear_as(symbol, window_idx, k, &audit_ctx(audit)).map(transition).map_err(core_err)
    }

    #[napi(catch_unwind)]
    pub fn retire(&self, symbol: u32, window_idx: u32, kind_code: u32, audit: Option<NativeAuditContext>) -> Result<NativeTransition> {
        let k = kind(kind_code)?;
        self.c()?.retire_as(symbol, window_idx, k, &audit_ctx(audit)).map(transition).map_err(core_err)
    }

    #[napi(catch_unwind)]
    pub fn force_clear_range(&self, symbol: u32, from: u32, to: u32, kind_code: u32, audit: Option<NativeAuditContext>) -> Result<f64> {
        let k = kind(kind_code)?;
        self.c()?.force_clear_range_as(symbol, from, to, k, &audit_ctx(audit)).map(|n| n as f64).map_err(core_err)
    }

    #[napi(catch_unwind)]
    pub fn retire_range(&self, symbol: u32, from: u32, to: u32, kind_code: u32, audit: Option<NativeAuditContext>) -> Result<f64> {
        let k = kind(kind_code)?;
        self.c()?.retire_range_as(symbol, from, to, k, &audit_ctx(audit)).map(|n| n as f64).map_err(core_err)
    }

    // ---- readiness

    /// True when every kind of the `requirements` mask (bit = kind code) is Filled.
    #[napi(catch_unwind)]
    pub fn is_ready(&self, symbol: u32, window_idx: u32, requirements: u32) -> Result<bool> {
        self.c()?.is_ready(symbol, window_idx, requirements).map_err(core_err)
    }

    /// First window >= start whose requirements are Filled and whose `for_kind` slot is claimable, or -1.
    #[napi(catch_unwind)]
    pub fn next_ready_window(&self, symbol: u32, start: u32, requirements: u32, for_kind: u32) -> Result<i64> {
        let k = kind(for_kind)?;
        Ok(self.c()?.next_ready_window(symbol, start, requirements, k).map_err(core_err)?.map_or(-1, i64::from))
    }

    /// Claims up to `n` ready windows; writes (window, version) pairs into `out`; returns how many.
    #[napi(catch_unwind)]
    #[allow(clippy::too_many_arguments)]
    pub fn claim_next_ready(
        &self,
        symbol: u32,
        start: u32,
        requirements: u32,
        for_kind: u32,
        n: u32,
        lease_ms: f64,
        #[napi(ts_arg_type = "Float64Array")] out: F64Out<'_>,
    ) -> Result<u32> {
        let k = kind(for_kind)?;
        if out.len() < 2 * n as usize {
            return Err(invalid(format!("claimNextReady needs an output array of at least {} numbers", 2 * n)));
        }
        let got = self.c()?.claim_next_ready(symbol, start, requirements, k, n, lease(lease_ms)?).map_err(core_err)?;
        for (i, (w, g)) in got.iter().enumerate() {
            out[2 * i] = f64::from(*w);
            out[2 * i + 1] = f64::from(g.version);
        }
        Ok(got.len() as u32)
    }

    // ---- change journal and watcher (core journal.rs, watch.rs)

    /// The journal's head: the sequence number the next change will get.
    #[napi(catch_unwind)]
    pub fn journal_head(&self) -> Result<f64> {
        Ok(self.c()?.journal().head() as f64)
    }

    /// Entries of the journal's ring.
    #[napi(catch_unwind)]
    pub fn journal_capacity(&self) -> Result<f64> {
        Ok(self.c()?.journal().capacity() as f64)
    }

    /// Reads changes from sequence number `from` into `out`, 8 numbers a change:
    /// `[seq, symbol, window, kind, from status, to status, version, payload id]`,
    /// and the sequence number to read from next into the last element of
    /// `out` (entries that record no change are skipped, so it can be past the
    /// last change). Returns `2 × count + (1 if it stopped at an entry not yet
    /// committed)`, or `-(resume + 1)` when the ring overtook `from` (a gap:
    /// rescan, then read from `resume`).
    #[napi(catch_unwind)]
    pub fn read_journal(&self, from: f64, #[napi(ts_arg_type = "Float64Array")] out: F64Out<'_>) -> Result<f64> {
        let from = whole(from, "fromSeq")?;
        if out.len() < 9 {
            return Err(invalid("readJournal needs an output array of at least 9 numbers"));
        }
        let max = (out.len() - 1) / 8;
        match self.c()?.journal().read(from, max) {
            JournalRead::Gap { resume_at } => Ok(-(resume_at as f64) - 1.0),
            JournalRead::Entries { changes, next, pending } => {
                let last = out.len() - 1;
                out[last] = next as f64;
                for (i, c) in changes.iter().enumerate() {
                    let o = &mut out[i * 8..i * 8 + 8];
                    o[0] = c.seq as f64;
                    o[1] = f64::from(c.symbol);
                    o[2] = f64::from(c.window_idx);
                    o[3] = f64::from(c.kind.code());
                    o[4] = f64::from(c.from as u8);
                    o[5] = f64::from(c.to as u8);
                    o[6] = f64::from(c.version);
                    o[7] = c.payload_id as f64;
                }
                Ok((changes.len() * 2 + usize::from(pending)) as f64)
            }
        }
    }

    /// Starts the watcher thread (idempotent): `callback(head)` is called when
    /// the journal head differs from `known_head` and whenever it moves after;
    /// call `watcherAck` after reading the journal.
    #[napi(catch_unwind)]
    pub fn start_watcher(
        &mut self,
        #[napi(ts_arg_type = "(head: number) => void")] callback: watch::HeadCallback,
        known_head: f64,
    ) -> Result<()> {
        if self.watcher.is_some() {
            return Ok(());
        }
        let c = self.inner.clone().ok_or_else(|| core_err(CoreError::Closed))?;
        let known = whole(known_head, "knownHead")?;
        let w = watch::Watcher::start(c, callback, known)
            .map_err(|e| napi::Error::new(Code("ERR_IO"), format!("cannot start the watcher thread: {e}")))?;
        self.watcher = Some(w);
        Ok(())
    }

    /// JS has read what the watcher told it.
    #[napi(catch_unwind)]
    pub fn watcher_ack(&self) {
        if let Some(w) = &self.watcher {
            w.ack();
        }
    }

    /// Stops the watcher thread (idempotent).
    #[napi(catch_unwind)]
    pub fn stop_watcher(&mut self) {
        if let Some(mut w) = self.watcher.take() {
            w.stop();
        }
    }

    // ---- audit trail (core audit.rs)

    /// Appends a tool's own action with a JSON `details` object.
    #[napi(catch_unwind)]
    pub fn audit_action(&self, action: String, details_json: String, audit: Option<NativeAuditContext>) -> Result<()> {
        let details: serde_json::Value =
            serde_json::from_str(&details_json).map_err(|e| invalid(format!("audit details are not JSON: {e}")))?;
        if action.is_empty() || action.len() > 64 || action.chars().any(|c| !c.is_ascii_alphanumeric() && c != '-' && c != '_') {
            return Err(invalid(format!("audit action must be 1-64 ASCII letters, digits, - or _, got {action:?}")));
        }
        self.c()?.audit_action(&audit_ctx(audit), &action, details).map_err(core_err)
    }

    /// The actor audit lines of this controller name by default.
    #[napi(catch_unwind)]
    pub fn audit_actor(&self) -> Result<String> {
        Ok(self.c()?.audit_log().default_actor().to_string())
    }

    // ---- payload stores

    #[napi(catch_unwind)]
    pub fn append_payload(&self, store: u32, rec: NativePayloadInput) -> Result<f64> {
        let s = store_kind(store)?;
        let slot = kind(rec.slot_kind)?;
        if slot.store() != s {
            return Err(invalid(format!("slot kind {} records into {}, not {}", slot.name(), slot.store().file_name(), s.file_name())));
        }
        let record = PayloadRecord {
            payload_id: 0,
            symbol_id: rec.symbol_id,
            window_idx: rec.window_idx,
            slot_kind: slot as u8,
            payload_type: u8::try_from(rec.payload_type).map_err(|_| invalid("payloadType must be 0..=255"))?,
            checksum: u64_of(&rec.checksum, "checksum")?,
            size: whole(rec.size, "size")?,
            created_at_ns: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
            uri: rec.uri,
        };
        let c = self.c()?;
        c.symbol_name(record.symbol_id).map_err(core_err)?;
        c.check_window(record.window_idx).map_err(core_err)?;
        c.append_payload(s, record).map(|id| id as f64).map_err(core_err)
    }

    #[napi(catch_unwind)]
    pub fn get_payload(&self, store: u32, payload_id: f64) -> Result<Option<NativePayloadRecord>> {
        let s = store_kind(store)?;
        let id = whole(payload_id, "payloadId")?;
        Ok(self.c()?.store(s).get(id).map_err(core_err)?.map(|r| NativePayloadRecord {
            payload_id: r.payload_id as f64,
            symbol_id: r.symbol_id,
            window_idx: r.window_idx,
            slot_kind: u32::from(r.slot_kind),
            payload_type: u32::from(r.payload_type),
            checksum: BigInt::from(r.checksum),
            size: r.size as f64,
            created_at_ns: BigInt::from(r.created_at_ns),
            uri: r.uri,
        }))
    }

    #[napi(catch_unwind)]
    pub fn payload_count(&self, store: u32) -> Result<f64> {
        let s = store_kind(store)?;
        self.c()?.store(s).len().map(|n| n as f64).map_err(core_err)
    }

    // ---- artifacts

    #[napi(catch_unwind)]
    pub fn write_artifact(&self, rel_path: String, data: &[u8]) -> Result<NativeArtifact> {
        let a = self.c()?.write_artifact(&rel_path, data).map_err(core_err)?;
        Ok(NativeArtifact { uri: a.uri, checksum: BigInt::from(a.checksum), size: a.size as f64 })
    }

    #[napi(catch_unwind)]
    pub fn resolve_artifact(&self, uri: String) -> Result<String> {
        Ok(self.c()?.resolve_artifact(&uri).map_err(core_err)?.to_string_lossy().into_owned())
    }

    // ---- metrics

    /// Writes `[kind][status]` counts (9 × 5 numbers) from the shared counters.
    #[napi(catch_unwind)]
    pub fn slot_metrics(&self, #[napi(ts_arg_type = "Float64Array")] out: F64Out<'_>) -> Result<()> {
        metrics_into(self.c()?.slot_metrics(), out)
    }

    /// Like `slotMetrics`, but by scanning the ledgers (exact; O(slots)).
    #[napi(catch_unwind)]
    pub fn recount(&self, #[napi(ts_arg_type = "Float64Array")] out: F64Out<'_>) -> Result<()> {
        metrics_into(self.c()?.recount().map_err(core_err)?, out)
    }

    /// Event counters of a ledger: `[claims, takeovers, fills, conflicts, clears, forceClears, retires, busy]`.
    #[napi(catch_unwind)]
    pub fn events(&self, ledger: u32, #[napi(ts_arg_type = "Float64Array")] out: F64Out<'_>) -> Result<()> {
        let l = ledger_kind(ledger)?;
        let ev = self.c()?.events(l);
        if out.len() < ev.len() {
            return Err(invalid(format!("events needs an output array of at least {} numbers", ev.len())));
        }
        for (i, (_, n)) in ev.iter().enumerate() {
            out[i] = *n as f64;
        }
        Ok(())
    }
}

fn metrics_into(m: Vec<window_space_core::SlotMetric>, out: &mut [f64]) -> Result<()> {
    if out.len() < m.len() * 5 {
        return Err(invalid(format!("slotMetrics needs an output array of at least {} numbers", m.len() * 5)));
    }
    for (i, metric) in m.iter().enumerate() {
        for (j, c) in metric.counts.iter().enumerate() {
            out[i * 5 + j] = *c as f64;
        }
    }
    Ok(())
}
