//! window-space core: the restart-safe, memory-mapped ledger in which data
//! pipeline engines claim (symbol, window, slot) work items, publish the
//! artifacts they produced, and let operators see and repair what happened.
//!
//! This crate knows nothing of Node; `crates/window-space-node` binds it.
//! Start at [`Controller::bootstrap`]. The file formats are described at the
//! top of the modules that write them (`ledger`, `slot`, `payload`, `symbols`,
//! `schedule`, `journal`, `audit`) and together in `docs/design.md`. Every
//! name and code that crosses a boundary is in [`vocab`].

#![deny(unsafe_code)]

/// A named point of a multi-step operation where tests stop or kill the
/// process or inject a fault (the `fail` crate's `fail_point!`, with the same
/// forms). Every name is listed in [`failpoints::POINTS`]. Without the
/// `failpoints` feature it compiles to nothing.
#[cfg(feature = "failpoints")]
macro_rules! failpoint {
    ($($t:tt)*) => {
        fail::fail_point!($($t)*)
    };
}
#[cfg(not(feature = "failpoints"))]
macro_rules! failpoint {
    ($($t:tt)*) => {};
}

pub mod artifact;
pub mod audit;
mod chunk_directory;
pub mod controller;
mod durability;
pub mod error;
pub mod failpoints;
mod fsutil;
pub mod io;
pub mod journal;
pub mod ledger;
mod lock;
#[allow(unsafe_code)]
mod mapping;
pub mod ops;
pub mod payload;
pub mod postgres;
pub mod schedule;
pub mod slot;
pub mod symbols;
pub mod vocab;

pub use artifact::ArtifactInfo;
pub use controller::{Config, Controller, Durability, FillItem, SlotMetric, StorageReport};
pub use durability::clear_deferring;
pub use error::{Error, Result};
pub use payload::{PayloadInput, PayloadRecord};
pub use schedule::{Schedule, Session, WindowMeta, WindowSpace};
pub use slot::{ClaimGrant, FillPayload, SlotAddr, SlotSnapshot, SlotWriteError, Transition};
pub use vocab::{ErrorCode, LedgerEvent, LedgerKind, Refusal, SlotKind, SlotStatus, StoreKind};
