//! `NativePgLedger`: the PostgreSQL backend (`window_space_core::postgres`)
//! as Promise-returning methods. Each method converts its arguments, runs
//! the core's async call on napi-rs's Tokio runtime, and converts the
//! result back on the JS thread; a core error rejects the Promise with the
//! same `Error` (stable `code`, `details`) the synchronous calls throw.
//! No rule lives here.

use std::sync::Arc;

use napi::bindgen_prelude::{BigInt, PromiseRaw};
use napi::Env;
use napi_derive::napi;
use window_space_core::postgres::{Change, Cursor, PgActor, PgClaim, PgConfig, PgFill, PgLedger};
use window_space_core::{Error as CoreError, PayloadInput, PayloadRecord, SlotAddr, SlotKind, SlotSnapshot, StoreKind, WindowSpace};

use crate::completions::run;
use crate::errors::{invalid, OrThrow};

fn kind_of(code: u32) -> Result<SlotKind, CoreError> {
    SlotKind::from_code(code).ok_or_else(|| invalid(format!("slot kind code {code}")))
}

fn store_of(code: u32) -> Result<StoreKind, CoreError> {
    StoreKind::from_code(code).ok_or_else(|| invalid(format!("payload store code {code}")))
}

fn u64_of(b: &BigInt, what: &str) -> Result<u64, CoreError> {
    let (signed, v, lossless) = b.get_u64();
    if signed || !lossless {
        return Err(invalid(format!("{what} must be a bigint from 0 to 2^64 - 1")));
    }
    Ok(v)
}

fn lease_of(l: Option<f64>) -> Option<u64> {
    l.filter(|v| *v >= 0.0).map(|v| v as u64)
}

/// Options of `pgConnect`.
#[napi(object)]
pub struct NativePgOptions {
    pub url: String,
    /// The schedule as JSON (`{"kind":"uniform",...}`), integers exact.
    pub schedule_json: String,
    pub space: String,
    pub connections: Option<u32>,
    pub default_lease_ms: Option<f64>,
    /// Open the space only if it exists, with its stored schedule.
    pub existing_only: Option<bool>,
    /// Windows per partition of a new space's slots.
    pub partition_windows: Option<u32>,
}

/// The written slots of a window range, and the retention line (every
/// slot before it is Retired and has no row).
#[napi(object)]
pub struct NativePgRows {
    pub slots: Vec<NativePgRowSlot>,
    pub retired_before: u32,
}

/// What a retention run did or would do.
#[napi(object)]
pub struct NativePgRetention {
    pub previous: u32,
    pub retired_before: u32,
    /// `[from, to)` of each partition dropped, flattened.
    pub dropped: Vec<u32>,
    pub live_claims: f64,
    pub unchanged: bool,
    /// Why the run stopped before its line after earlier steps committed:
    /// the error's code, message and details (JSON).
    pub stopped_code: Option<String>,
    pub stopped_message: Option<String>,
    pub stopped_details: Option<String>,
}

/// One recorded retention run.
#[napi(object)]
pub struct NativePgRetentionRun {
    pub at_ms: f64,
    pub actor: String,
    pub reason: String,
    pub previous: u32,
    pub retired_before: u32,
    pub partitions_dropped: u32,
    pub forced: bool,
}

/// What `verify` found.
#[napi(object)]
pub struct NativePgVerify {
    pub ok: bool,
    pub slots: f64,
    pub filled_slots: f64,
    pub records: f64,
    pub changes: f64,
    pub checked: Vec<String>,
    pub warnings: Vec<String>,
    pub problems: Vec<NativePgProblem>,
}

/// One problem `verify` found.
#[napi(object)]
pub struct NativePgProblem {
    pub kind: String,
    pub message: String,
}

/// A slot as read.
#[napi(object)]
pub struct NativePgSlot {
    pub status: u32,
    pub version: u32,
    pub payload_type: u32,
    pub payload_id: f64,
    pub checksum: BigInt,
    pub lease_expires_at: f64,
}

fn slot_js(s: &SlotSnapshot) -> NativePgSlot {
    NativePgSlot {
        status: s.status as u32,
        version: s.version,
        payload_type: u32::from(s.payload_type),
        payload_id: s.payload_id as f64,
        checksum: BigInt::from(s.checksum),
        lease_expires_at: s.lease_deadline_ms as f64,
    }
}

/// A granted claim.
#[napi(object)]
pub struct NativePgClaim {
    pub window_idx: u32,
    pub version: u32,
    pub lease_expires_at: f64,
}

fn claim_js(c: &PgClaim) -> NativePgClaim {
    NativePgClaim { window_idx: c.window, version: c.version, lease_expires_at: c.lease_deadline_ms as f64 }
}

/// A slot of `rows`.
#[napi(object)]
pub struct NativePgRowSlot {
    pub window_idx: u32,
    pub kind: u32,
    pub slot: NativePgSlot,
}

/// One fill of `fillMany`.
#[napi(object)]
pub struct NativePgFill {
    pub symbol_id: u32,
    pub window_idx: u32,
    pub kind: u32,
    pub version: u32,
    pub payload_type: u32,
    pub payload_id: f64,
    pub checksum: BigInt,
}

/// The outcome of one fill of `fillMany`: `version`, or the refusal's `code`, `message`, `details` (as JSON).
#[napi(object)]
pub struct NativePgFillResult {
    pub version: Option<u32>,
    pub code: Option<String>,
    pub message: Option<String>,
    pub details_json: Option<String>,
}

/// A payload record.
#[napi(object)]
pub struct NativePgPayload {
    pub payload_id: f64,
    pub symbol_id: u32,
    pub window_idx: u32,
    pub kind: u32,
    pub payload_type: u32,
    pub uri: String,
    pub checksum: BigInt,
    pub size: f64,
    pub created_at_ns: BigInt,
}

fn payload_js(p: PayloadRecord) -> NativePgPayload {
    NativePgPayload {
        payload_id: p.payload_id as f64,
        symbol_id: p.symbol_id,
        window_idx: p.window_idx,
        kind: u32::from(p.slot_kind),
        payload_type: u32::from(p.payload_type),
        uri: p.uri,
        checksum: BigInt::from(p.checksum),
        size: p.size as f64,
        created_at_ns: BigInt::from(p.created_at_ns),
    }
}

/// An admin transition.
#[napi(object)]
pub struct NativePgTransition {
    pub from: u32,
    pub to: u32,
    pub version: u32,
}

/// Counts of one slot kind by status code.
#[napi(object)]
pub struct NativePgMetric {
    pub kind: u32,
    pub counts: Vec<f64>,
}

/// One change of the feed.
#[napi(object)]
pub struct NativePgChange {
    pub position: String,
    pub symbol_id: u32,
    pub window_idx: u32,
    pub kind: u32,
    pub slot: NativePgSlot,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub reason: Option<String>,
    pub at_ms: f64,
}

fn change_js(c: Change) -> NativePgChange {
    NativePgChange {
        position: c.cursor.to_text(),
        symbol_id: c.symbol,
        window_idx: c.window,
        kind: c.kind.code(),
        slot: slot_js(&c.slot),
        actor: c.actor,
        action: c.action,
        reason: c.reason,
        at_ms: c.at_ms as f64,
    }
}

/// What `pgConnect` found.
#[napi(object)]
pub struct NativePgInfo {
    pub schedule: String,
    pub schedule_json: String,
    pub window_count: u32,
    pub schema_found: i32,
    pub schema_version: i32,
    pub partition_windows: u32,
}

/// A window space in a PostgreSQL database.
#[napi]
pub struct NativePgLedger {
    inner: Arc<PgLedger>,
}

/// Connects to the database, migrates its schema, and opens the window space.
#[napi(catch_unwind)]
pub fn pg_connect<'e>(env: &'e Env, o: NativePgOptions) -> napi::Result<PromiseRaw<'e, NativePgLedger>> {
    let fut = async move {
        let space: WindowSpace = serde_json::from_str(&o.schedule_json)
            .map_err(|e| CoreError::InvalidSchedule { what: format!("the schedule is not valid JSON: {e}") })?;
        let config = PgConfig {
            space: o.space,
            connections: o.connections.unwrap_or(4) as usize,
            default_lease_ms: lease_of(o.default_lease_ms).unwrap_or(30_000),
            existing_only: o.existing_only.unwrap_or(false),
            partition_windows: o.partition_windows,
        };
        PgLedger::connect(&o.url, space, config).await
    };
    run(env, fut, |_, l| Ok(NativePgLedger { inner: Arc::new(l) }))
}

#[napi]
impl NativePgLedger {
    /// What connecting found: schedule relation, the schedule in force, schema versions.
    #[napi(catch_unwind)]
    pub fn info(&self) -> NativePgInfo {
        NativePgInfo {
            schedule: self.inner.schedule_relation.to_string(),
            schedule_json: serde_json::to_string(self.inner.schedule().space()).unwrap_or_default(),
            window_count: self.inner.schedule().window_count(),
            schema_found: self.inner.schema_found,
            schema_version: window_space_core::postgres::schema_version(),
            partition_windows: self.inner.partition_windows(),
        }
    }

    #[napi(catch_unwind)]
    pub fn close(&self) {
        self.inner.close();
    }

    /// Ends every `waitChange` in flight early (their callers read again).
    #[napi(catch_unwind)]
    pub fn wake_waiters(&self) {
        self.inner.wake_waiters();
    }

    #[napi(catch_unwind)]
    pub fn resolve_symbol<'e>(&self, env: &'e Env, name: String) -> napi::Result<PromiseRaw<'e, u32>> {
        let l = self.inner.clone();
        run(env, async move { l.resolve_symbol(&name).await }, |_, v| Ok(v))
    }

    #[napi(catch_unwind)]
    pub fn symbol_id<'e>(&self, env: &'e Env, name: String) -> napi::Result<PromiseRaw<'e, u32>> {
        let l = self.inner.clone();
        run(env, async move { l.symbol_id(&name).await }, |_, v| Ok(v))
    }

    #[napi(catch_unwind)]
    pub fn symbol_name<'e>(&self, env: &'e Env, id: u32) -> napi::Result<PromiseRaw<'e, String>> {
        let l = self.inner.clone();
        run(env, async move { l.symbol_name(id).await }, |_, v| Ok(v))
    }

    #[napi(catch_unwind)]
    pub fn symbols<'e>(&self, env: &'e Env) -> napi::Result<PromiseRaw<'e, Vec<String>>> {
        let l = self.inner.clone();
        run(env, async move { l.symbols().await }, |_, v| Ok(v.into_iter().map(|(id, n)| format!("{id}:{n}")).collect()))
    }

    #[napi(catch_unwind)]
    pub fn claim<'e>(
        &self,
        env: &'e Env,
        symbol: u32,
        window: u32,
        kind: u32,
        lease_ms: Option<f64>,
    ) -> napi::Result<PromiseRaw<'e, NativePgClaim>> {
        let l = self.inner.clone();
        run(env, async move { l.claim(SlotAddr::new(symbol, window, kind_of(kind)?), lease_of(lease_ms)).await }, |_, c| Ok(claim_js(&c)))
    }

    #[napi(catch_unwind)]
    pub fn renew<'e>(
        &self,
        env: &'e Env,
        symbol: u32,
        window: u32,
        kind: u32,
        version: u32,
        lease_ms: Option<f64>,
    ) -> napi::Result<PromiseRaw<'e, f64>> {
        let l = self.inner.clone();
        run(env, async move { l.renew(SlotAddr::new(symbol, window, kind_of(kind)?), version, lease_of(lease_ms)).await }, |_, d| {
            Ok(d as f64)
        })
    }

    #[napi(catch_unwind)]
    pub fn fill<'e>(&self, env: &'e Env, f: NativePgFill) -> napi::Result<PromiseRaw<'e, u32>> {
        let l = self.inner.clone();
        let item = fill_of(&f);
        run(env, async move { l.fill(item?).await }, |_, v| Ok(v))
    }

    #[napi(catch_unwind)]
    pub fn clear<'e>(&self, env: &'e Env, symbol: u32, window: u32, kind: u32, version: u32) -> napi::Result<PromiseRaw<'e, u32>> {
        let l = self.inner.clone();
        run(env, async move { l.clear(SlotAddr::new(symbol, window, kind_of(kind)?), version).await }, |_, v| Ok(v))
    }

    #[napi(catch_unwind)]
    pub fn get_slot<'e>(&self, env: &'e Env, symbol: u32, window: u32, kind: u32) -> napi::Result<PromiseRaw<'e, NativePgSlot>> {
        let l = self.inner.clone();
        run(env, async move { l.get_slot(SlotAddr::new(symbol, window, kind_of(kind)?)).await }, |_, s| Ok(slot_js(&s)))
    }

    #[napi(catch_unwind)]
    pub fn rows<'e>(&self, env: &'e Env, symbol: u32, from: u32, to: u32, kinds: Vec<u32>) -> napi::Result<PromiseRaw<'e, NativePgRows>> {
        let l = self.inner.clone();
        run(
            env,
            async move {
                let ks = kinds.into_iter().map(kind_of).collect::<Result<Vec<_>, _>>()?;
                l.rows(symbol, from..to, &ks).await
            },
            |_, (v, line)| {
                Ok(NativePgRows {
                    slots: v.into_iter().map(|(w, k, s)| NativePgRowSlot { window_idx: w, kind: k.code(), slot: slot_js(&s) }).collect(),
                    retired_before: line,
                })
            },
        )
    }

    #[napi(catch_unwind)]
    pub fn claim_next_unfilled<'e>(
        &self,
        env: &'e Env,
        symbol: u32,
        start: u32,
        kind: u32,
        count: u32,
        lease_ms: Option<f64>,
    ) -> napi::Result<PromiseRaw<'e, Vec<NativePgClaim>>> {
        let l = self.inner.clone();
        run(env, async move { l.claim_next_unfilled(symbol, start, kind_of(kind)?, count, lease_of(lease_ms)).await }, |_, v| {
            Ok(v.iter().map(claim_js).collect())
        })
    }

    #[napi(catch_unwind)]
    pub fn fill_many<'e>(&self, env: &'e Env, items: Vec<NativePgFill>) -> napi::Result<PromiseRaw<'e, Vec<NativePgFillResult>>> {
        let l = self.inner.clone();
        let items: Result<Vec<PgFill>, CoreError> = items.iter().map(fill_of).collect();
        run(env, async move { l.fill_many(&items?).await }, |_, v| {
            Ok(v.into_iter()
                .map(|r| match r {
                    Ok(version) => NativePgFillResult { version: Some(version), code: None, message: None, details_json: None },
                    Err(e) => NativePgFillResult {
                        version: None,
                        code: Some(e.code().as_str().to_string()),
                        message: Some(e.to_string()),
                        details_json: Some(e.details().to_string()),
                    },
                })
                .collect())
        })
    }

    #[napi(catch_unwind)]
    pub fn next_unfilled_window<'e>(&self, env: &'e Env, symbol: u32, start: u32, kind: u32) -> napi::Result<PromiseRaw<'e, Option<u32>>> {
        let l = self.inner.clone();
        run(env, async move { l.next_unfilled_window(symbol, start, kind_of(kind)?).await }, |_, v| Ok(v))
    }

    #[napi(catch_unwind)]
    pub fn slot_metrics<'e>(&self, env: &'e Env) -> napi::Result<PromiseRaw<'e, Vec<NativePgMetric>>> {
        let l = self.inner.clone();
        run(env, async move { l.slot_metrics().await }, |_, v| {
            Ok(v.into_iter().map(|(k, c)| NativePgMetric { kind: k.code(), counts: c.iter().map(|n| *n as f64).collect() }).collect())
        })
    }

    /// The operators' check of the space (core `postgres/verify.rs`).
    #[napi(catch_unwind)]
    pub fn verify<'e>(&self, env: &'e Env) -> napi::Result<PromiseRaw<'e, NativePgVerify>> {
        let l = self.inner.clone();
        run(env, async move { l.verify().await }, |_, r| {
            Ok(NativePgVerify {
                ok: r.ok(),
                slots: r.slots as f64,
                filled_slots: r.filled_slots as f64,
                records: r.records as f64,
                changes: r.changes as f64,
                checked: r.checked,
                warnings: r.warnings,
                problems: r.problems.into_iter().map(|p| NativePgProblem { kind: p.kind.to_string(), message: p.message }).collect(),
            })
        })
    }

    #[napi(catch_unwind)]
    #[allow(clippy::too_many_arguments)]
    pub fn append_payload<'e>(
        &self,
        env: &'e Env,
        store: u32,
        symbol: u32,
        window: u32,
        kind: u32,
        payload_type: u32,
        uri: String,
        checksum: BigInt,
        size: f64,
    ) -> napi::Result<PromiseRaw<'e, NativePgPayload>> {
        let l = self.inner.clone();
        let ck = u64_of(&checksum, "checksum");
        run(
            env,
            async move {
                let input = PayloadInput {
                    symbol_id: symbol,
                    window_idx: window,
                    slot_kind: kind_of(kind)?,
                    payload_type: u8::try_from(payload_type).map_err(|_| invalid("payloadType must be 0..255"))?,
                    checksum: ck?,
                    size: size as u64,
                    uri,
                };
                l.append_payload(store_of(store)?, &input).await
            },
            |_, p| Ok(payload_js(p)),
        )
    }

    #[napi(catch_unwind)]
    pub fn get_payload<'e>(&self, env: &'e Env, store: u32, payload_id: f64) -> napi::Result<PromiseRaw<'e, NativePgPayload>> {
        let l = self.inner.clone();
        run(env, async move { l.get_payload(store_of(store)?, payload_id as u64).await }, |_, p| Ok(payload_js(p)))
    }

    #[napi(catch_unwind)]
    pub fn force_clear<'e>(
        &self,
        env: &'e Env,
        symbol: u32,
        window: u32,
        kind: u32,
        actor: String,
        reason: Option<String>,
    ) -> napi::Result<PromiseRaw<'e, NativePgTransition>> {
        let l = self.inner.clone();
        let who = PgActor { actor, reason };
        run(env, async move { l.force_clear(SlotAddr::new(symbol, window, kind_of(kind)?), &who).await }, |_, t| {
            Ok(NativePgTransition { from: t.from as u32, to: t.to as u32, version: t.version })
        })
    }

    #[napi(catch_unwind)]
    pub fn retire<'e>(
        &self,
        env: &'e Env,
        symbol: u32,
        window: u32,
        kind: u32,
        actor: String,
        reason: Option<String>,
    ) -> napi::Result<PromiseRaw<'e, NativePgTransition>> {
        let l = self.inner.clone();
        let who = PgActor { actor, reason };
        run(env, async move { l.retire(SlotAddr::new(symbol, window, kind_of(kind)?), &who).await }, |_, t| {
            Ok(NativePgTransition { from: t.from as u32, to: t.to as u32, version: t.version })
        })
    }

    #[napi(catch_unwind)]
    #[allow(clippy::too_many_arguments)]
    pub fn force_clear_range<'e>(
        &self,
        env: &'e Env,
        symbol: u32,
        from: u32,
        to: u32,
        kind: u32,
        actor: String,
        reason: Option<String>,
    ) -> napi::Result<PromiseRaw<'e, f64>> {
        let l = self.inner.clone();
        let who = PgActor { actor, reason };
        run(env, async move { l.force_clear_range(symbol, from..to, kind_of(kind)?, &who).await }, |_, n| Ok(n as f64))
    }

    #[napi(catch_unwind)]
    #[allow(clippy::too_many_arguments)]
    pub fn retire_range<'e>(
        &self,
        env: &'e Env,
        symbol: u32,
        from: u32,
        to: u32,
        kind: u32,
        actor: String,
        reason: Option<String>,
    ) -> napi::Result<PromiseRaw<'e, f64>> {
        let l = self.inner.clone();
        let who = PgActor { actor, reason };
        run(env, async move { l.retire_range(symbol, from..to, kind_of(kind)?, &who).await }, |_, n| Ok(n as f64))
    }

    /// Changes after `position` ("" = the beginning), up to `limit`.
    #[napi(catch_unwind)]
    pub fn changes<'e>(&self, env: &'e Env, position: String, limit: u32) -> napi::Result<PromiseRaw<'e, Vec<NativePgChange>>> {
        let l = self.inner.clone();
        run(
            env,
            async move {
                let after = if position.is_empty() { Cursor::default() } else { Cursor::parse(&position)? };
                l.changes(after, limit).await
            },
            |_, v| Ok(v.into_iter().map(change_js).collect()),
        )
    }

    /// Retention: the windows before `window` (rounded down to a partition
    /// boundary) become Retired and their partitions are dropped.
    #[napi(catch_unwind)]
    pub fn drop_windows_before<'e>(
        &self,
        env: &'e Env,
        window: u32,
        force: bool,
        dry_run: bool,
        actor: String,
        reason: Option<String>,
    ) -> napi::Result<PromiseRaw<'e, NativePgRetention>> {
        let l = self.inner.clone();
        let who = PgActor { actor, reason };
        run(env, async move { l.drop_windows_before(window, force, dry_run, &who).await }, |_, r| {
            Ok(NativePgRetention {
                previous: r.previous,
                retired_before: r.retired_before,
                dropped: r.dropped.iter().flat_map(|w| [w.start, w.end]).collect(),
                live_claims: r.live_claims as f64,
                unchanged: r.unchanged,
                stopped_code: r.stopped.as_ref().map(|e| e.code().as_str().to_string()),
                stopped_message: r.stopped.as_ref().map(|e| e.to_string()),
                stopped_details: r.stopped.as_ref().map(|e| e.details().to_string()),
            })
        })
    }

    /// How many windows of the schedule in force have started by `ns` (ns since the epoch).
    #[napi(catch_unwind)]
    pub fn windows_started_by(&self, env: Env, ns: BigInt) -> napi::Result<u32> {
        let v = crate::convert::i64_of(&ns, "time").or_throw(&env)?;
        Ok(self.inner.schedule().windows_started_by(i128::from(v)))
    }

    /// The retention line: every window before it is Retired.
    #[napi(catch_unwind)]
    pub fn retired_before<'e>(&self, env: &'e Env) -> napi::Result<PromiseRaw<'e, u32>> {
        let l = self.inner.clone();
        run(env, async move { l.retired_before().await }, |_, w| Ok(w))
    }

    /// The recorded retention runs, oldest first.
    #[napi(catch_unwind)]
    pub fn retentions<'e>(&self, env: &'e Env) -> napi::Result<PromiseRaw<'e, Vec<NativePgRetentionRun>>> {
        let l = self.inner.clone();
        run(env, async move { l.retentions().await }, |_, v| {
            Ok(v.into_iter()
                .map(|r| NativePgRetentionRun {
                    at_ms: r.at_ms as f64,
                    actor: r.actor,
                    reason: r.reason,
                    previous: r.previous,
                    retired_before: r.retired_before,
                    partitions_dropped: r.partitions_dropped,
                    forced: r.forced,
                })
                .collect())
        })
    }

    /// The position after the newest final change.
    #[napi(catch_unwind)]
    pub fn changes_head<'e>(&self, env: &'e Env) -> napi::Result<PromiseRaw<'e, String>> {
        let l = self.inner.clone();
        run(env, async move { l.changes_head().await }, |_, c| Ok(c.to_text()))
    }

    /// Waits for a change notification after count `after`, at most `timeout_ms`; returns the count.
    #[napi(catch_unwind)]
    pub fn wait_change<'e>(&self, env: &'e Env, after: f64, timeout_ms: f64) -> napi::Result<PromiseRaw<'e, f64>> {
        let l = self.inner.clone();
        run(env, async move { l.wait_change(after as u64, timeout_ms.max(0.0) as u64).await }, |_, n| Ok(n as f64))
    }
}

fn fill_of(f: &NativePgFill) -> Result<PgFill, CoreError> {
    Ok(PgFill {
        at: SlotAddr::new(f.symbol_id, f.window_idx, kind_of(f.kind)?),
        version: f.version,
        payload_type: u8::try_from(f.payload_type).map_err(|_| invalid("payloadType must be 0..255"))?,
        payload_id: f.payload_id as u64,
        checksum: u64_of(&f.checksum, "checksum")?,
    })
}
