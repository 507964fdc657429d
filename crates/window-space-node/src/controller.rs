//! `NativeController`: one open state directory, as a class the facade
//! wraps. Its methods convert arguments, call the core, and convert results;
//! the hot path (claim, fill, clear, reads) goes through `fast.rs` instead.
//!
//! Past 600 lines because a napi class is one `impl` block: one short
//! method per API call.

use std::sync::Arc;

use napi::bindgen_prelude::{AbortSignal, AsyncTask, BigInt};
use napi::Env;
use napi_derive::napi;
use window_space_core::journal::{GapReason, JournalRead, ReadEnd};
use window_space_core::{Config, Controller, Durability, Error as CoreError, PayloadInput, SlotAddr, StorageReport, WindowSpace};

use crate::convert::{i64_of, lease, ledger_kind, slot_kind, store_kind, u64_of, whole};
use crate::errors::{invalid, js_error, OrThrow};
use crate::fast;
use crate::reports::{
    audit_ctx, storage_report, transition, NativeArtifact, NativeAuditContext, NativePayloadInput, NativePayloadRecord,
    NativeStorageReport, NativeTransition, NativeWindowMeta,
};
use crate::tasks::{CommitTask, OpenTask};
use crate::watch;

/// A caller-owned `Float64Array` the call writes into (borrowed, not copied).
/// Spelled as an alias so the macro converts it as a slice, not as a class reference.
type F64Out<'a> = &'a mut [f64];

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

fn durability(d: Option<&str>) -> Result<Durability, CoreError> {
    match d {
        None | Some("buffered") => Ok(Durability::Buffered),
        Some("sync") => Ok(Durability::Sync),
        Some(other) => Err(invalid(format!("durability must be \"buffered\" or \"sync\", got {other:?}"))),
    }
}

fn config(o: &NativeOpenOptions) -> Result<Config, CoreError> {
    let space: WindowSpace = serde_json::from_str(&o.schedule_json)
        .map_err(|e| CoreError::InvalidSchedule { what: format!("the schedule is not valid JSON: {e}") })?;
    let mut c = Config::new(&o.state_dir, space);
    c.durability = durability(o.durability.as_deref())?;
    if let Some(l) = o.default_lease_ms {
        c.default_lease_ms = whole(l, "defaultLeaseMs")?;
    }
    if let Some(n) = o.journal_capacity {
        c.journal_capacity = whole(n, "journalCapacity")?;
    }
    c.actor = o.actor.clone();
    Ok(c)
}

/// Bootstraps on the libuv thread pool; resolves with a controller.
#[napi(catch_unwind)]
pub fn open_async(env: Env, options: NativeOpenOptions, signal: Option<AbortSignal>) -> napi::Result<AsyncTask<OpenTask>> {
    let config = config(&options).or_throw(&env)?;
    Ok(AsyncTask::with_optional_signal(OpenTask { config: Some(config) }, signal))
}

/// An open state directory.
#[napi]
pub struct NativeController {
    inner: Option<Arc<Controller>>,
    report: StorageReport,
    handle: f64,
    watcher: Option<watch::Watcher>,
}

impl NativeController {
    /// The open controller, or `ERR_CLOSED`.
    pub(crate) fn core(&self, env: &Env) -> napi::Result<&Controller> {
        self.inner.as_deref().ok_or_else(|| js_error(env, CoreError::Closed))
    }

    /// Wraps an open controller and registers it for the fast path; refused
    /// (the controller is dropped) when this thread has 2^20 open.
    pub(crate) fn new(c: Controller, report: StorageReport) -> Result<Self, CoreError> {
        let inner = Arc::new(c);
        let handle = fast::register(inner.clone())
            .ok_or_else(|| invalid("no fast-path handle left: this thread has 2^20 controllers open, or the process registered 2^33"))?;
        Ok(Self { inner: Some(inner), report, handle, watcher: None })
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

fn pairs_into(got: &[(u32, window_space_core::ClaimGrant)], out: &mut [f64]) -> u32 {
    for (i, (w, g)) in got.iter().enumerate() {
        out[3 * i] = f64::from(*w);
        out[3 * i + 1] = f64::from(g.version);
        out[3 * i + 2] = g.lease_deadline_ms as f64;
    }
    got.len() as u32
}

#[napi]
impl NativeController {
    /// Bootstraps synchronously.
    #[napi(factory, catch_unwind)]
    pub fn open(env: Env, options: NativeOpenOptions) -> napi::Result<NativeController> {
        config(&options).and_then(Controller::bootstrap).and_then(|(c, r)| NativeController::new(c, r)).or_throw(&env)
    }

    /// Opens an existing state directory with its persisted schedule.
    #[napi(factory, catch_unwind)]
    pub fn open_existing(
        env: Env,
        state_dir: String,
        durability_mode: Option<String>,
        actor: Option<String>,
    ) -> napi::Result<NativeController> {
        durability(durability_mode.as_deref())
            .and_then(|d| Controller::open_existing(state_dir, d, actor))
            .and_then(|(c, r)| NativeController::new(c, r))
            .or_throw(&env)
    }

    fn c(&self, env: &Env) -> napi::Result<&Controller> {
        self.core(env)
    }

    #[napi(catch_unwind)]
    pub fn storage_report(&self) -> NativeStorageReport {
        storage_report(&self.report)
    }

    /// Idempotent; unmaps once every in-flight call has finished.
    #[napi(catch_unwind)]
    pub fn close(&mut self, env: Env) -> napi::Result<()> {
        if let Some(mut w) = self.watcher.take() {
            w.stop();
        }
        if let Some(c) = self.inner.take() {
            fast::unregister(self.handle);
            if c.is_sync() {
                c.flush().or_throw(&env)?;
            }
        }
        Ok(())
    }

    /// Every call on this thread until `endDeferred` defers its syncs to a
    /// group commit (sync mode only; see core `durability.rs`).
    #[napi(catch_unwind)]
    pub fn begin_deferred(&self, env: Env) -> napi::Result<()> {
        self.c(&env)?.begin_deferred();
        Ok(())
    }

    /// Ends the deferral; returns the ticket to commit (0: nothing is owed).
    #[napi(catch_unwind)]
    pub fn end_deferred(&self, env: Env) -> napi::Result<f64> {
        match self.c(&env) {
            Ok(c) => Ok(c.end_deferred() as f64),
            Err(e) => {
                // Closed during the write: the thread must not stay deferring.
                window_space_core::clear_deferring();
                Err(e)
            }
        }
    }

    /// Resolves once every deferred write up to `ticket` is durable.
    #[napi(catch_unwind)]
    pub fn commit_async(&self, env: Env, ticket: f64) -> napi::Result<AsyncTask<CommitTask>> {
        let controller = self.inner.clone().ok_or_else(|| js_error(&env, CoreError::Closed))?;
        Ok(AsyncTask::new(CommitTask { controller, ticket: whole(ticket, "ticket").or_throw(&env)? }))
    }

    /// (tickets issued, tickets durable, commit rounds) of the group commit.
    #[napi(catch_unwind)]
    pub fn group_commit_progress(&self, env: Env) -> napi::Result<Vec<f64>> {
        let (issued, durable, rounds) = self.c(&env)?.group_commit_progress();
        Ok(vec![issued as f64, durable as f64, rounds as f64])
    }

    /// Handle of this controller for the `fast*` functions (see fast.rs).
    #[napi(getter, catch_unwind)]
    pub fn handle(&self) -> f64 {
        self.handle
    }

    #[napi(getter, catch_unwind)]
    pub fn closed(&self) -> bool {
        self.inner.is_none()
    }

    #[napi(catch_unwind)]
    pub fn flush(&self, env: Env) -> napi::Result<()> {
        self.c(&env)?.flush().or_throw(&env)
    }

    #[napi(catch_unwind)]
    pub fn default_lease_ms(&self, env: Env) -> napi::Result<f64> {
        Ok(self.c(&env)?.default_lease_ms() as f64)
    }

    // ---- symbols

    #[napi(catch_unwind)]
    pub fn resolve_symbol(&self, env: Env, symbol: String) -> napi::Result<u32> {
        self.c(&env)?.resolve_symbol(&symbol).or_throw(&env)
    }

    /// Id of a known symbol, or -1.
    #[napi(catch_unwind)]
    pub fn lookup_symbol(&self, env: Env, symbol: String) -> napi::Result<i64> {
        Ok(self.c(&env)?.lookup_symbol(&symbol).or_throw(&env)?.map_or(-1, i64::from))
    }

    #[napi(catch_unwind)]
    pub fn symbol_name(&self, env: Env, id: u32) -> napi::Result<String> {
        self.c(&env)?.symbol_name(id).or_throw(&env)
    }

    #[napi(catch_unwind)]
    pub fn symbols(&self, env: Env) -> napi::Result<Vec<String>> {
        self.c(&env)?.symbols().or_throw(&env)
    }

    // ---- schedule

    #[napi(catch_unwind)]
    pub fn window_count(&self, env: Env) -> napi::Result<u32> {
        Ok(self.c(&env)?.window_count())
    }

    #[napi(catch_unwind)]
    pub fn schedule_json(&self, env: Env) -> napi::Result<String> {
        serde_json::to_string(&self.c(&env)?.window_space()).map_err(|e| js_error(&env, invalid(e.to_string())))
    }

    #[napi(catch_unwind)]
    pub fn window_idx_for_timestamp_ns(&self, env: Env, ts: BigInt) -> napi::Result<u32> {
        let v = i64_of(&ts, "timestamp").or_throw(&env)?;
        self.c(&env)?.window_idx_for_timestamp(i128::from(v)).or_throw(&env)
    }

    #[napi(catch_unwind)]
    pub fn window_meta(&self, env: Env, window_idx: u32) -> napi::Result<NativeWindowMeta> {
        let m = self.c(&env)?.window_meta(window_idx).or_throw(&env)?;
        Ok(NativeWindowMeta {
            window_idx: m.window_idx,
            start_ns: BigInt::from(m.start_ns),
            duration_ns: BigInt::from(m.duration_ns),
            schema_version: m.schema_version,
        })
    }

    // ---- batches: the batch claim and batch fill are hand-written callbacks (`fast.rs`)

    // ---- admin

    #[napi(catch_unwind)]
    pub fn force_clear(
        &self,
        env: Env,
        symbol: u32,
        window_idx: u32,
        kind_code: u32,
        audit: Option<NativeAuditContext>,
    ) -> napi::Result<NativeTransition> {
        let k = slot_kind(kind_code).or_throw(&env)?;
        self.c(&env)?.force_clear(SlotAddr::new(symbol, window_idx, k), &audit_ctx(audit)).map(transition).or_throw(&env)
    }

    #[napi(catch_unwind)]
    pub fn retire(
        &self,
        env: Env,
        symbol: u32,
        window_idx: u32,
        kind_code: u32,
        audit: Option<NativeAuditContext>,
    ) -> napi::Result<NativeTransition> {
        let k = slot_kind(kind_code).or_throw(&env)?;
        self.c(&env)?.retire(SlotAddr::new(symbol, window_idx, k), &audit_ctx(audit)).map(transition).or_throw(&env)
    }

    #[napi(catch_unwind)]
    pub fn force_clear_range(
        &self,
        env: Env,
        symbol: u32,
        from: u32,
        to: u32,
        kind_code: u32,
        audit: Option<NativeAuditContext>,
    ) -> napi::Result<f64> {
        let k = slot_kind(kind_code).or_throw(&env)?;
        self.c(&env)?.force_clear_range(symbol, from..to, k, &audit_ctx(audit)).map(|n| n as f64).or_throw(&env)
    }

    #[napi(catch_unwind)]
    pub fn retire_range(
        &self,
        env: Env,
        symbol: u32,
        from: u32,
        to: u32,
        kind_code: u32,
        audit: Option<NativeAuditContext>,
    ) -> napi::Result<f64> {
        let k = slot_kind(kind_code).or_throw(&env)?;
        self.c(&env)?.retire_range(symbol, from..to, k, &audit_ctx(audit)).map(|n| n as f64).or_throw(&env)
    }

    // ---- readiness

    /// True when every kind of the `requirements` mask (bit = kind code) is Filled.
    #[napi(catch_unwind)]
    pub fn is_ready(&self, env: Env, symbol: u32, window_idx: u32, requirements: u32) -> napi::Result<bool> {
        self.c(&env)?.is_ready(symbol, window_idx, requirements).or_throw(&env)
    }

    /// First window >= start whose requirements are Filled and whose `for_kind` slot is claimable, or -1.
    #[napi(catch_unwind)]
    pub fn next_ready_window(&self, env: Env, symbol: u32, start: u32, requirements: u32, for_kind: u32) -> napi::Result<i64> {
        let k = slot_kind(for_kind).or_throw(&env)?;
        Ok(self.c(&env)?.next_ready_window(symbol, start, requirements, k).or_throw(&env)?.map_or(-1, i64::from))
    }

    /// Claims up to `n` ready windows; writes (window, version, lease deadline)
    /// triples into `out`; returns how many.
    #[napi(catch_unwind)]
    #[allow(clippy::too_many_arguments)] // the napi signature: numbers in, a typed array out
    pub fn claim_next_ready(
        &self,
        env: Env,
        symbol: u32,
        start: u32,
        requirements: u32,
        for_kind: u32,
        n: u32,
        lease_ms: f64,
        #[napi(ts_arg_type = "Float64Array")] out: F64Out<'_>,
    ) -> napi::Result<u32> {
        let k = slot_kind(for_kind).or_throw(&env)?;
        if out.len() < 3 * n as usize {
            return Err(js_error(&env, invalid(format!("claimNextReady needs an output array of at least {} numbers", 3 * n))));
        }
        let got = self
            .c(&env)?
            .claim_next_ready(SlotAddr::new(symbol, start, k), requirements, n, lease(lease_ms).or_throw(&env)?)
            .or_throw(&env)?;
        Ok(pairs_into(&got, out))
    }

    // ---- change journal and watcher (core journal.rs, watch.rs)

    /// The journal's head: the sequence number the next change will get.
    #[napi(catch_unwind)]
    pub fn journal_head(&self, env: Env) -> napi::Result<f64> {
        Ok(self.c(&env)?.journal().head() as f64)
    }

    /// Where a watch "from now" starts (core `Journal::watch_start`): the
    /// head, or the oldest number a live writer holds.
    #[napi(catch_unwind)]
    pub fn journal_watch_start(&self, env: Env) -> napi::Result<f64> {
        Ok(self.c(&env)?.journal().watch_start() as f64)
    }

    /// Entries of the journal's ring.
    #[napi(catch_unwind)]
    pub fn journal_capacity(&self, env: Env) -> napi::Result<f64> {
        Ok(self.c(&env)?.journal().capacity() as f64)
    }

    /// The journal's epoch: 16 lowercase hex digits.
    #[napi(catch_unwind)]
    pub fn journal_epoch(&self, env: Env) -> napi::Result<String> {
        Ok(format!("{:016x}", self.c(&env)?.journal().epoch()))
    }

    /// Reads changes from position (`epoch`, 16 hex digits; `from`) into
    /// `out`, 8 numbers a change: `[seq, symbol, window, kind, from status,
    /// to status, version, payload id]`; entries that record no change are
    /// skipped. Returns the number of changes, with the sequence number to read
    /// from next in the last element of `out` and in the one before it why the
    /// read stopped: 0 read to the head (or to the end of `out`), 1 at an entry
    /// in flight, 2 at an entry whose writer died (a gap of that entry). Or
    /// returns a negative gap code — -1 overtaken by the ring, -2 another
    /// journal, -3 past the head, -4 a damaged entry — with the sequence
    /// number to resume from (after a rescan) in the last element.
    #[napi(catch_unwind)]
    pub fn read_journal(
        &self,
        env: Env,
        epoch: String,
        from: f64,
        #[napi(ts_arg_type = "Float64Array")] out: F64Out<'_>,
    ) -> napi::Result<f64> {
        let from = whole(from, "fromSeq").or_throw(&env)?;
        let hex = epoch.len() == 16 && epoch.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let Some(epoch) = u64::from_str_radix(&epoch, 16).ok().filter(|_| hex) else {
            return Err(js_error(&env, invalid(format!("a journal epoch is 16 lowercase hex digits, got {epoch:?}"))));
        };
        if out.len() < 10 {
            return Err(js_error(&env, invalid("readJournal needs an output array of at least 10 numbers")));
        }
        let last = out.len() - 1;
        let max = (out.len() - 2) / 8;
        match self.c(&env)?.journal().read(epoch, from, max) {
            JournalRead::Gap { resume_at, reason } => {
                out[last] = resume_at as f64;
                Ok(match reason {
                    GapReason::Overtaken => -1.0,
                    GapReason::OtherJournal => -2.0,
                    GapReason::Ahead => -3.0,
                    GapReason::Damaged => -4.0,
                })
            }
            JournalRead::Entries { changes, next, end } => {
                out[last] = next as f64;
                out[last - 1] = match end {
                    ReadEnd::Read => 0.0,
                    ReadEnd::InFlight => 1.0,
                    ReadEnd::Abandoned => 2.0,
                };
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
                Ok(changes.len() as f64)
            }
        }
    }

    /// Starts the watcher thread (idempotent): `callback(head)` is called once
    /// at its start and whenever something may have changed since (an entry
    /// committed, or abandoned by a writer that died); call `watcherAck` after
    /// reading the journal.
    #[napi(catch_unwind)]
    pub fn start_watcher(
        &mut self,
        env: Env,
        #[napi(ts_arg_type = "(head: number) => void")] callback: watch::HeadCallback,
    ) -> napi::Result<()> {
        if self.watcher.is_some() {
            return Ok(());
        }
        let c = self.inner.clone().ok_or_else(|| js_error(&env, CoreError::Closed))?;
        let w = watch::Watcher::start(c, callback)
            .map_err(|e| js_error(&env, CoreError::Internal { what: format!("cannot start the watcher thread: {e}") }))?;
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
    pub fn audit_action(&self, env: Env, action: String, details_json: String, audit: Option<NativeAuditContext>) -> napi::Result<()> {
        let details: serde_json::Value =
            serde_json::from_str(&details_json).map_err(|e| js_error(&env, invalid(format!("audit details are not JSON: {e}"))))?;
        self.c(&env)?.audit_action(&audit_ctx(audit), &action, details).or_throw(&env)
    }

    /// The actor audit lines of this controller name by default.
    #[napi(catch_unwind)]
    pub fn audit_actor(&self, env: Env) -> napi::Result<String> {
        Ok(self.c(&env)?.audit_log().default_actor().to_string())
    }

    // ---- payload stores

    #[napi(catch_unwind)]
    pub fn append_payload(&self, env: Env, store: u32, rec: NativePayloadInput) -> napi::Result<f64> {
        let input = (|| {
            Ok::<_, CoreError>(PayloadInput {
                symbol_id: rec.symbol_id,
                window_idx: rec.window_idx,
                slot_kind: slot_kind(rec.slot_kind)?,
                payload_type: u8::try_from(rec.payload_type).map_err(|_| invalid("payloadType must be 0..=255"))?,
                checksum: u64_of(&rec.checksum, "checksum")?,
                size: whole(rec.size, "size")?,
                uri: rec.uri,
            })
        })()
        .or_throw(&env)?;
        let s = store_kind(store).or_throw(&env)?;
        self.c(&env)?.append_payload(s, input).map(|id| id as f64).or_throw(&env)
    }

    #[napi(catch_unwind)]
    pub fn get_payload(&self, env: Env, store: u32, payload_id: f64) -> napi::Result<Option<NativePayloadRecord>> {
        let s = store_kind(store).or_throw(&env)?;
        let id = whole(payload_id, "payloadId").or_throw(&env)?;
        Ok(self.c(&env)?.store(s).get(id).or_throw(&env)?.map(|r| NativePayloadRecord {
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
    pub fn payload_count(&self, env: Env, store: u32) -> napi::Result<f64> {
        let s = store_kind(store).or_throw(&env)?;
        self.c(&env)?.store(s).len().map(|n| n as f64).or_throw(&env)
    }

    // ---- artifacts

    #[napi(catch_unwind)]
    pub fn write_artifact(&self, env: Env, rel_path: String, data: &[u8]) -> napi::Result<NativeArtifact> {
        let a = self.c(&env)?.write_artifact(&rel_path, data).or_throw(&env)?;
        Ok(NativeArtifact { uri: a.uri, checksum: BigInt::from(a.checksum), size: a.size as f64 })
    }

    /// Writes the artifact `name` of a claim at its claim-bound path (core `artifact.rs`).
    #[napi(catch_unwind)]
    #[allow(clippy::too_many_arguments)] // the napi signature: the claim as numbers, a name, the bytes
    pub fn write_claim_artifact(
        &self,
        env: Env,
        symbol: u32,
        window_idx: u32,
        kind_code: u32,
        version: u32,
        name: String,
        data: &[u8],
    ) -> napi::Result<NativeArtifact> {
        let k = slot_kind(kind_code).or_throw(&env)?;
        let a = self.c(&env)?.write_claim_artifact(SlotAddr::new(symbol, window_idx, k), version, &name, data).or_throw(&env)?;
        Ok(NativeArtifact { uri: a.uri, checksum: BigInt::from(a.checksum), size: a.size as f64 })
    }

    #[napi(catch_unwind)]
    pub fn resolve_artifact(&self, env: Env, uri: String) -> napi::Result<String> {
        Ok(self.c(&env)?.resolve_artifact(&uri).or_throw(&env)?.to_string_lossy().into_owned())
    }

    // ---- metrics

    /// Writes `[kind][status]` counts (kinds × statuses numbers) from the shared counters.
    #[napi(catch_unwind)]
    pub fn slot_metrics(&self, env: Env, #[napi(ts_arg_type = "Float64Array")] out: F64Out<'_>) -> napi::Result<()> {
        metrics_into(self.c(&env)?.slot_metrics(), out).or_throw(&env)
    }

    /// Like `slotMetrics`, but by scanning the ledgers (exact; O(slots)).
    #[napi(catch_unwind)]
    pub fn recount(&self, env: Env, #[napi(ts_arg_type = "Float64Array")] out: F64Out<'_>) -> napi::Result<()> {
        metrics_into(self.c(&env)?.recount().or_throw(&env)?, out).or_throw(&env)
    }

    /// Event counters of a ledger, in the vocabulary's event order.
    #[napi(catch_unwind)]
    pub fn events(&self, env: Env, ledger: u32, #[napi(ts_arg_type = "Float64Array")] out: F64Out<'_>) -> napi::Result<()> {
        let l = ledger_kind(ledger).or_throw(&env)?;
        let ev = self.c(&env)?.events(l);
        if out.len() < ev.len() {
            return Err(js_error(&env, invalid(format!("events needs an output array of at least {} numbers", ev.len()))));
        }
        for (i, (_, n)) in ev.iter().enumerate() {
            out[i] = *n as f64;
        }
        Ok(())
    }
}

fn metrics_into(m: Vec<window_space_core::SlotMetric>, out: &mut [f64]) -> Result<(), CoreError> {
    let statuses = window_space_core::SlotStatus::ALL.len();
    if out.len() < m.len() * statuses {
        return Err(invalid(format!("slotMetrics needs an output array of at least {} numbers", m.len() * statuses)));
    }
    for (i, metric) in m.iter().enumerate() {
        for (j, c) in metric.counts.iter().enumerate() {
            out[i * statuses + j] = *c as f64;
        }
    }
    Ok(())
}
