//! Binding of the operators' logic of the core (`window_space_core::ops`)
//! for the `window-space` command: one call per command, conversions only.
//! Reports cross as plain objects (the core's serde shapes); a progress
//! callback, when given, is called now and then with (phase, done, total).

use std::path::Path;

use napi::bindgen_prelude::{BigInt, FnArgs, Function, Unknown};
use napi::Env;
use napi_derive::napi;
use window_space_core::audit::AuditContext;
use window_space_core::ops::reader::StateReader;
use window_space_core::ops::{gc, migrate, repair, verify, view};
use window_space_core::{Error as CoreError, LedgerKind, SlotKind, StoreKind};

use crate::controller::NativeController;
use crate::convert::{ledger_kind, slot_kind, write_slot, SLOT_STRIDE};
use crate::errors::{invalid, js_error, json_to_js, OrThrow};

/// The JS progress callback: (phase, done, total).
pub type ProgressFn<'f> = Function<'f, FnArgs<(String, f64, f64)>, ()>;

/// Calls `f` at most about every 64 steps and at the end.
fn progress<'a>(f: &'a Option<ProgressFn<'_>>) -> impl FnMut(&str, u64, u64) + 'a {
    let mut last = 0u64;
    move |phase: &str, done: u64, total: u64| {
        if let Some(f) = f {
            if done == total || done < last || done - last >= 64 {
                last = done;
                let _ = f.call((phase.to_string(), done as f64, total as f64).into());
            }
        }
    }
}

fn to_js<'e, T: serde::Serialize>(env: &'e Env, v: &T) -> napi::Result<Unknown<'e>> {
    let value = serde_json::to_value(v).map_err(|e| js_error(env, invalid(format!("report: {e}"))))?;
    json_to_js(env, &value)
}

/// Checks every invariant of a state directory, read-only.
#[napi(catch_unwind)]
pub fn verify_state_dir<'e>(
    env: &'e Env,
    state_dir: String,
    artifacts: bool,
    #[napi(ts_arg_type = "(phase: string, done: number, total: number) => void")] on_progress: Option<ProgressFn<'_>>,
) -> napi::Result<Unknown<'e>> {
    let mut p = progress(&on_progress);
    let r = verify::verify(Path::new(&state_dir), verify::VerifyOptions { artifacts }, &mut p).or_throw(env)?;
    to_js(env, &r)
}

/// What a garbage collection would remove, read-only (core `ops/gc.rs`,
/// `plan_read_only`): nothing is created, locked or written.
#[napi(catch_unwind)]
pub fn plan_garbage<'e>(
    env: &'e Env,
    state_dir: String,
    min_age_ms: f64,
    #[napi(ts_arg_type = "(phase: string, done: number, total: number) => void")] on_progress: Option<ProgressFn<'_>>,
) -> napi::Result<Unknown<'e>> {
    let min_age_ms = crate::convert::whole(min_age_ms, "minAgeMs").or_throw(env)?;
    let mut p = progress(&on_progress);
    let r = gc::plan_read_only(Path::new(&state_dir), min_age_ms, &mut p).or_throw(env)?;
    to_js(env, &r)
}

/// Repairs the damage a bootstrap refuses (lost payload records, lost
/// symbols), or with `dryRun` says what it would do (core `ops/repair.rs`).
#[napi(catch_unwind)]
pub fn repair_state_dir<'e>(
    env: &'e Env,
    state_dir: String,
    dry_run: bool,
    actor: Option<String>,
    reason: Option<String>,
) -> napi::Result<Unknown<'e>> {
    let opts = repair::RepairOptions { dry_run, ctx: AuditContext { actor, reason } };
    let r = repair::repair(Path::new(&state_dir), &opts).or_throw(env)?;
    to_js(env, &r)
}

/// Converts a state directory of an older format version (core
/// `ops/migrate.rs`), or with `dryRun` says what it would convert.
#[napi(catch_unwind)]
pub fn migrate_state_dir<'e>(
    env: &'e Env,
    state_dir: String,
    dry_run: bool,
    actor: Option<String>,
    reason: Option<String>,
) -> napi::Result<Unknown<'e>> {
    let opts = migrate::MigrateOptions { dry_run, ctx: AuditContext { actor, reason } };
    let r = migrate::migrate(Path::new(&state_dir), &opts).or_throw(env)?;
    to_js(env, &r)
}

/// A read-only view of a state directory (nothing is created, locked or written).
#[napi]
pub struct NativeStateView {
    reader: StateReader,
}

#[napi]
impl NativeStateView {
    /// Opens every file of `stateDir` read-only and validates it.
    #[napi(factory, catch_unwind)]
    pub fn open(env: Env, state_dir: String) -> napi::Result<NativeStateView> {
        Ok(NativeStateView { reader: StateReader::open(Path::new(&state_dir)).or_throw(&env)? })
    }

    /// The summary `inspect` prints.
    #[napi(catch_unwind)]
    pub fn summary<'e>(&self, env: &'e Env) -> napi::Result<Unknown<'e>> {
        to_js(env, &view::summary(&self.reader).or_throw(env)?)
    }

    /// Exact counts `[symbol][kind][status]`, from a scan.
    #[napi(catch_unwind)]
    pub fn counts_by_symbol(&self, env: Env) -> napi::Result<Vec<Vec<Vec<f64>>>> {
        let c = view::counts_by_symbol(&self.reader).or_throw(&env)?;
        Ok(c.into_iter().map(|kinds| kinds.into_iter().map(|k| k.iter().map(|n| *n as f64).collect()).collect()).collect())
    }

    /// Status codes (5 = Pending with an expired lease) of windows `from..to`, per kind.
    #[napi(catch_unwind)]
    pub fn grid(&self, env: Env, symbol: u32, from: u32, to: u32, kind_codes: Vec<u32>) -> napi::Result<Vec<Vec<u32>>> {
        let kinds = kind_codes.into_iter().map(slot_kind).collect::<Result<Vec<SlotKind>, CoreError>>().or_throw(&env)?;
        let g = view::grid(&self.reader, symbol, from, to, &kinds).or_throw(&env)?;
        Ok(g.into_iter().map(|row| row.into_iter().map(u32::from).collect()).collect())
    }

    /// Up to `max` exported rows from `cursor` (`[ledger, symbol position, window]`):
    /// `{ rows: [{ ledger, symbolId, windowIdx, slots: [8 numbers per slot], uris: [uri|null per slot] }], next: cursor | null }`.
    #[napi(catch_unwind)]
    #[allow(clippy::too_many_arguments)] // the napi signature: a spec and a cursor, as numbers
    pub fn export_rows(
        &self,
        env: Env,
        ledger_codes: Vec<u32>,
        symbols: Vec<u32>,
        from: u32,
        to: u32,
        all_rows: bool,
        cursor: Vec<u32>,
        max: u32,
    ) -> napi::Result<NativeExportBatch> {
        let ledgers = ledger_codes.into_iter().map(ledger_kind).collect::<Result<Vec<LedgerKind>, CoreError>>().or_throw(&env)?;
        let spec = view::ExportSpec { ledgers, symbols, from, to, all_rows };
        let cur = match cursor.as_slice() {
            [l, s, w] => view::ExportCursor { ledger: *l as usize, symbol: *s as usize, window: *w },
            _ => view::ExportCursor { window: from, ..Default::default() },
        };
        let (rows, next) = view::export_rows(&self.reader, &spec, cur, max as usize).or_throw(&env)?;
        Ok(NativeExportBatch {
            rows: rows
                .into_iter()
                .map(|r| {
                    let mut slots = vec![0.0; r.slots.len() * SLOT_STRIDE];
                    for (i, s) in r.slots.iter().enumerate() {
                        write_slot(&mut slots[i * SLOT_STRIDE..(i + 1) * SLOT_STRIDE], &s.slot);
                    }
                    NativeExportRow {
                        ledger: r.ledger.code(),
                        symbol_id: r.symbol,
                        window_idx: r.window,
                        start_ns: BigInt::from(r.start_ns),
                        slots,
                        uris: r.slots.into_iter().map(|s| s.uri).collect(),
                    }
                })
                .collect(),
            next: next.map(|c| vec![c.ledger as u32, c.symbol as u32, c.window]),
        })
    }

    /// How many windows have started by `ns` (the first window that starts after it).
    #[napi(catch_unwind)]
    pub fn windows_started_by(&self, env: Env, ns: BigInt) -> napi::Result<u32> {
        let v = crate::convert::i64_of(&ns, "time").or_throw(&env)?;
        Ok(self.reader.schedule().windows_started_by(i128::from(v)))
    }

    /// The counters as they are now: slot counts `[kind][status]` from the
    /// shared counters (clamped to the slots a ledger holds), event counters
    /// `[ledger][event]`, and records per store.
    #[napi(catch_unwind)]
    pub fn counters(&self, env: Env) -> napi::Result<NativeCounters> {
        let slots = view::counter_counts(&self.reader).or_throw(&env)?;
        let mut events = Vec::new();
        for l in LedgerKind::ALL {
            let c = self.reader.ledger(l).counters().or_throw(&env)?;
            events.push(c.events.iter().map(|(_, n)| *n as f64).collect());
        }
        let records =
            StoreKind::ALL.iter().map(|s| self.reader.store(*s).len().map(|n| n as f64)).collect::<Result<Vec<_>, _>>().or_throw(&env)?;
        Ok(NativeCounters { slots: slots.iter().map(|k| k.counts.iter().map(|n| *n as f64).collect()).collect(), events, records })
    }
}

#[napi(object)]
pub struct NativeCounters {
    pub slots: Vec<Vec<f64>>,
    pub events: Vec<Vec<f64>>,
    pub records: Vec<f64>,
}

#[napi(object)]
pub struct NativeExportRow {
    pub ledger: u32,
    pub symbol_id: u32,
    pub window_idx: u32,
    pub start_ns: BigInt,
    /// 8 numbers per slot (see `convert::write_slot`).
    pub slots: Vec<f64>,
    pub uris: Vec<Option<String>>,
}

#[napi(object)]
pub struct NativeExportBatch {
    pub rows: Vec<NativeExportRow>,
    pub next: Option<Vec<u32>>,
}

#[napi]
impl NativeController {
    /// Garbage collection of this controller's state directory (see core `ops/gc.rs`).
    #[napi(catch_unwind)]
    pub fn gc<'e>(
        &self,
        env: &'e Env,
        remove: bool,
        min_age_ms: f64,
        actor: Option<String>,
        reason: Option<String>,
        #[napi(ts_arg_type = "(phase: string, done: number, total: number) => void")] on_progress: Option<ProgressFn<'_>>,
    ) -> napi::Result<Unknown<'e>> {
        let c = self.core(env)?;
        let min_age_ms = crate::convert::whole(min_age_ms, "minAgeMs").or_throw(env)?;
        let opts = gc::GcOptions { delete: remove, min_age_ms, ctx: AuditContext { actor, reason } };
        let mut p = progress(&on_progress);
        let r = gc::gc(c, &opts, &mut p).or_throw(env)?;
        to_js(env, &r)
    }
}
