//! napi-rs binding of window-space: converts JS values to core calls and
//! back, and nothing more; every rule lives in the core
//! (`crates/window-space-core`). Every core error reaches JS as an `Error`
//! with the stable `code` and a `details` object (`errors.rs`); every
//! exported function catches panics, so none crosses into JS.
//!
//! * `controller.rs` — `NativeController`, the class the facade wraps;
//! * `fast.rs` — the hot path as hand-written Node-API callbacks;
//! * `watch.rs` — the watcher thread that wakes JS when the journal moves;
//! * `tasks.rs` — the async bootstrap and group commit on the libuv pool;
//! * `pg.rs` — `NativePgLedger`, the PostgreSQL backend as Promise-returning methods;
//! * `completions.rs` — settles those Promises from their Tokio tasks;
//! * `ops.rs` — the operators' checks for the `window-space` command;
//! * `vocab.rs` — the core's vocabulary as one object;
//! * `convert.rs`, `reports.rs`, `errors.rs` — conversions.

#![deny(unsafe_code)]

mod completions;
mod controller;
mod convert;
mod errors;
mod fast;
mod ops;
mod pg;
mod reports;
mod tasks;
mod vocab;
mod watch;

use napi::bindgen_prelude::BigInt;
use napi::Env;
use napi_derive::napi;
use window_space_core::artifact;
use window_space_core::audit::{AuditLog, Scan};

use crate::errors::OrThrow;

/// An audit log as JSON text `{"entries": [...], "damaged": [{line, offset, what}], "torn": [{line, offset}]}`
/// (torn: appends cut short, skipped). Unless `skip_damaged`, a damaged line is
/// `ERR_CORRUPT_STATE` with its offset instead.
#[napi(catch_unwind)]
pub fn read_audit_log(env: Env, path: String, skip_damaged: Option<bool>) -> napi::Result<String> {
    let p = std::path::Path::new(&path);
    let scan = if skip_damaged.unwrap_or(false) {
        AuditLog::scan_numbered(p).or_throw(&env)?
    } else {
        let entries = AuditLog::read_all(p).or_throw(&env)?;
        Scan { entries: entries.into_iter().map(|v| (0, v)).collect(), ..Scan::default() }
    };
    let entries: Vec<_> = scan.entries.into_iter().map(|(_, v)| v).collect();
    let damaged: Vec<_> = scan.damaged.iter().map(|d| serde_json::json!({ "line": d.line, "offset": d.offset, "what": d.what })).collect();
    let torn: Vec<_> = scan.torn.iter().map(|t| serde_json::json!({ "line": t.line, "offset": t.offset })).collect();
    Ok(serde_json::json!({ "entries": entries, "damaged": damaged, "torn": torn }).to_string())
}

/// `user@host pid N` of this process: whom audit lines name by default.
#[napi(catch_unwind)]
pub fn default_actor() -> String {
    window_space_core::audit::default_actor()
}

/// The 64-bit checksum (xxh3-64) and size of a file, read in blocks (any size).
#[napi(object)]
pub struct NativeFileChecksum {
    pub checksum: BigInt,
    pub size: f64,
}

/// Checksums a file of any size without reading it into memory.
#[napi(catch_unwind)]
pub fn checksum_file(env: Env, path: String) -> napi::Result<NativeFileChecksum> {
    let p = std::path::Path::new(&path);
    let mut f = std::fs::File::open(p)
        .map_err(|e| errors::js_error(&env, window_space_core::Error::Io { op: "open", path: p.into(), source: e }))?;
    let (checksum, size) = window_space_core::ops::files::hash(&mut f, p).or_throw(&env)?;
    Ok(NativeFileChecksum { checksum: BigInt::from(checksum), size: size as f64 })
}

/// The crash points compiled into this addon (core `failpoints::POINTS`):
/// their names, empty in a build without the `failpoints` feature (the
/// published one). Tests check it before they drive a process to a point.
#[napi(catch_unwind)]
pub fn failpoints() -> Vec<String> {
    if window_space_core::failpoints::ENABLED {
        window_space_core::failpoints::POINTS.iter().map(|(name, _)| (*name).to_string()).collect()
    } else {
        Vec::new()
    }
}

/// Arms the crash points `WINDOW_SPACE_FAILPOINTS` names when the addon is
/// loaded (builds with the `failpoints` feature only). A value that names no
/// point of the core, or an action that cannot be parsed, ends the process
/// at once with the reason: a test must never pass because its point was
/// never armed.
#[cfg(feature = "failpoints")]
#[napi_derive::module_init]
fn arm_failpoints() {
    if let Err(e) = window_space_core::failpoints::arm_from_env() {
        eprintln!("window-space: {}: {e}", window_space_core::failpoints::ENV);
        std::process::abort();
    }
}

/// 64-bit checksum (xxh3-64) of bytes, as the artifact helper computes it.
#[napi(catch_unwind)]
pub fn checksum64(data: &[u8]) -> BigInt {
    BigInt::from(artifact::checksum(data))
}
