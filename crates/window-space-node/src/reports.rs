//! The storage report and the other plain objects the binding hands to JS
//! (`#[napi(object)]` shapes), and their conversion from the core's types.

use napi::bindgen_prelude::BigInt;
use napi_derive::napi;
use window_space_core::{StorageReport, Transition};

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

pub(crate) fn storage_report(r: &StorageReport) -> NativeStorageReport {
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

#[napi(object)]
pub struct NativeTransition {
    pub from: u32,
    pub to: u32,
    pub version: u32,
}

pub(crate) fn transition(t: Transition) -> NativeTransition {
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

/// Who does an admin action and why, for the audit trail.
#[napi(object)]
pub struct NativeAuditContext {
    pub actor: Option<String>,
    pub reason: Option<String>,
}

pub(crate) fn audit_ctx(a: Option<NativeAuditContext>) -> window_space_core::audit::AuditContext {
    a.map(|a| window_space_core::audit::AuditContext { actor: a.actor, reason: a.reason }).unwrap_or_default()
}
