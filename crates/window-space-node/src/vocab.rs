//! The core's vocabulary (`window_space_core::vocab`) as one plain object,
//! from which `src/vocabulary.ts` is generated and against which a test
//! checks it.

use napi_derive::napi;
use window_space_core::vocab::{self, ErrorCode, LedgerEvent, LedgerKind, Refusal, SlotKind, SlotStatus, StoreKind};

#[napi(object)]
pub struct NativeLedgerInfo {
    pub name: String,
    pub code: u32,
    pub file: String,
    /// Slot kind names of the ledger's row, in column order.
    pub slot_kinds: Vec<String>,
}

#[napi(object)]
pub struct NativeSlotKindInfo {
    pub name: String,
    pub code: u32,
    pub ledger: String,
    pub column: u32,
    pub store: String,
}

#[napi(object)]
pub struct NativeStoreInfo {
    pub name: String,
    pub code: u32,
    pub file: String,
}

#[napi(object)]
pub struct NativeNamedCode {
    pub name: String,
    pub code: i32,
}

#[napi(object)]
pub struct NativeErrorCodeInfo {
    pub code: String,
    pub class: String,
    pub parent: String,
}

#[napi(object)]
pub struct NativeVocabulary {
    pub ledgers: Vec<NativeLedgerInfo>,
    pub slot_kinds: Vec<NativeSlotKindInfo>,
    pub stores: Vec<NativeStoreInfo>,
    /// Status names in code order.
    pub statuses: Vec<String>,
    /// Ledger event names in counter order.
    pub events: Vec<String>,
    pub payload_types: Vec<NativeNamedCode>,
    pub refusals: Vec<NativeNamedCode>,
    pub audit_actions: Vec<String>,
    pub error_codes: Vec<NativeErrorCodeInfo>,
}

/// Every name and code of the core's vocabulary.
#[napi(catch_unwind)]
pub fn vocabulary() -> NativeVocabulary {
    NativeVocabulary {
        ledgers: LedgerKind::ALL
            .iter()
            .map(|l| NativeLedgerInfo {
                name: l.name().into(),
                code: l.code(),
                file: l.file_name().into(),
                slot_kinds: l.slot_kinds().iter().map(|k| k.name().into()).collect(),
            })
            .collect(),
        slot_kinds: SlotKind::TABLE
            .iter()
            .map(|i| NativeSlotKindInfo {
                name: i.name.into(),
                code: i.kind.code(),
                ledger: i.ledger.name().into(),
                column: u32::from(i.column),
                store: i.store.name().into(),
            })
            .collect(),
        stores: StoreKind::ALL
            .iter()
            .map(|s| NativeStoreInfo { name: s.name().into(), code: s.code(), file: s.file_name().into() })
            .collect(),
        statuses: SlotStatus::ALL.iter().map(|s| s.name().into()).collect(),
        events: LedgerEvent::ALL.iter().map(|e| e.name().into()).collect(),
        payload_types: vocab::PAYLOAD_TYPES.iter().map(|(n, c)| NativeNamedCode { name: (*n).into(), code: i32::from(*c) }).collect(),
        refusals: Refusal::ALL.iter().map(|r| NativeNamedCode { name: r.name().into(), code: r.code() }).collect(),
        audit_actions: vocab::AUDIT_ACTIONS.iter().map(|a| (*a).into()).collect(),
        error_codes: ErrorCode::TABLE
            .iter()
            .map(|i| NativeErrorCodeInfo { code: i.name.into(), class: i.class.into(), parent: i.parent.into() })
            .collect(),
    }
}
