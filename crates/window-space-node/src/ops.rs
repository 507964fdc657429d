//! Binding of the operators' checks of the core (`window_space_core::ops`)
//! for the `window-space` command: conversions only. Errors reach JS with
//! their stable `code`, like every other call of this binding.

use std::path::Path;

use napi::Env;
use napi_derive::napi;
use window_space_core::{ops, LedgerKind};

use crate::errors::OrThrow;

/// One thing wrong with a slot or a chunk header (see `ops::SlotIssue`).
#[napi(object)]
pub struct NativeSlotIssue {
    pub ledger: String,
    pub symbol_id: u32,
    pub window_idx: u32,
    /// Slot kind name; absent for an issue of a chunk header.
    pub slot_kind: Option<String>,
    /// Byte offset in the ledger file.
    pub offset: f64,
    pub what: String,
}

/// What the check of one ledger file found.
#[napi(object)]
pub struct NativeSlotCheck {
    pub ledger: String,
    pub file: String,
    pub chunks: f64,
    pub slots: f64,
    /// Slots that changed while being checked (engines at work), not judged.
    pub in_flight: f64,
    /// Damage in the header page that its checksum does not cover.
    pub header_issues: Vec<String>,
    pub issues: Vec<NativeSlotIssue>,
}

/// Checks the raw bytes of every slot of both ledgers of a state directory
/// (read-only, with pread; safe beside running engines).
#[napi(catch_unwind)]
pub fn check_ledger_slots(env: Env, state_dir: String) -> napi::Result<Vec<NativeSlotCheck>> {
    LedgerKind::ALL
        .iter()
        .map(|&kind| {
            let r = ops::check_ledger_slots(Path::new(&state_dir), kind).or_throw(&env)?;
            Ok(NativeSlotCheck {
                ledger: kind.name().to_string(),
                file: kind.file_name().to_string(),
                chunks: r.chunks as f64,
                slots: r.slots as f64,
                in_flight: r.in_flight as f64,
                header_issues: r.header_issues,
                issues: r
                    .issues
                    .into_iter()
                    .map(|i| NativeSlotIssue {
                        ledger: kind.name().to_string(),
                        symbol_id: i.symbol_id,
                        window_idx: i.window_idx,
                        slot_kind: i.column.and_then(|c| kind.slot_kinds().get(c)).map(|k| k.name().to_string()),
                        offset: i.offset as f64,
                        what: i.what,
                    })
                    .collect(),
            })
        })
        .collect()
}
