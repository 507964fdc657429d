//! Conversions between JS numbers and bigints and the core's types: whole
//! numbers, 64-bit values, slot kinds, stores, ledgers, leases, and the
//! numbers a slot is written as into a caller's `Float64Array`.

use napi::bindgen_prelude::BigInt;
use window_space_core::{Error as CoreError, LedgerKind, SlotKind, SlotSnapshot, StoreKind};

use crate::errors::invalid;

/// Largest whole number a JS number holds exactly.
pub(crate) const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

/// A whole number in `0..=max` from a JS number; anything else (NaN,
/// fractions, negatives, too large) is refused, never rounded or wrapped.
#[inline]
pub(crate) fn whole_upto(v: f64, max: f64, what: &str) -> Result<u64, CoreError> {
    // `max` is at most 2^53 - 1, so a value in range converts to i64 exactly
    // when it is whole (and without libm's `trunc`, which `fract` calls).
    if v >= 0.0 && v <= max && (v as i64) as f64 == v {
        Ok(v as u64)
    } else {
        Err(invalid(format!("{what} must be a whole number from 0 to {max}, got {v}")))
    }
}

/// A whole number in `0..=2^53-1`.
pub(crate) fn whole(v: f64, what: &str) -> Result<u64, CoreError> {
    whole_upto(v, MAX_SAFE, what)
}

/// A lease in ms, or the controller's default for a negative number.
#[inline]
pub(crate) fn lease(v: f64) -> Result<Option<u64>, CoreError> {
    if v < 0.0 {
        Ok(None)
    } else {
        whole(v, "leaseMs").map(Some)
    }
}

pub(crate) fn u64_of(b: &BigInt, what: &str) -> Result<u64, CoreError> {
    let (signed, v, lossless) = b.get_u64();
    if signed || !lossless {
        return Err(invalid(format!("{what} must be a bigint between 0 and 2^64-1")));
    }
    Ok(v)
}

pub(crate) fn i64_of(b: &BigInt, what: &str) -> Result<i64, CoreError> {
    let (v, lossless) = b.get_i64();
    if !lossless {
        return Err(invalid(format!("{what} must be a bigint between -2^63 and 2^63-1")));
    }
    Ok(v)
}

#[inline]
pub(crate) fn slot_kind(code: u32) -> Result<SlotKind, CoreError> {
    SlotKind::from_code(code).ok_or_else(|| invalid(format!("slot kind code {code} does not exist (0..={})", SlotKind::ALL.len() - 1)))
}

pub(crate) fn store_kind(code: u32) -> Result<StoreKind, CoreError> {
    StoreKind::from_code(code).ok_or_else(|| invalid(format!("store code {code} does not exist (0..={})", StoreKind::ALL.len() - 1)))
}

pub(crate) fn ledger_kind(code: u32) -> Result<LedgerKind, CoreError> {
    LedgerKind::from_code(code).ok_or_else(|| invalid(format!("ledger code {code} does not exist (0 trade, 1 enrichment)")))
}

/// Numbers per slot written by the read calls:
/// `[status, version, payloadType, payloadId, checksumHi, checksumLo, leaseDeadlineMs, 0]`.
pub(crate) const SLOT_STRIDE: usize = 8;

/// The [`SLOT_STRIDE`] numbers of a slot.
pub(crate) fn slot_numbers(s: &SlotSnapshot) -> [f64; SLOT_STRIDE] {
    [
        f64::from(s.status as u8),
        f64::from(s.version),
        f64::from(s.payload_type),
        s.payload_id as f64,
        f64::from((s.checksum >> 32) as u32),
        f64::from(s.checksum as u32),
        s.lease_deadline_ms as f64,
        0.0,
    ]
}

/// Writes the numbers of a slot to `out[..SLOT_STRIDE]` (memory of this process's own).
pub(crate) fn write_slot(out: &mut [f64], s: &SlotSnapshot) {
    out[..SLOT_STRIDE].copy_from_slice(&slot_numbers(s));
}
