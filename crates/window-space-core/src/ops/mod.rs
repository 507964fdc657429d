//! Operators' logic, behind the `window-space` command: everything a tool
//! decides about a state directory lives here, so the command line only
//! parses arguments and prints.
//!
//! * `reader.rs` — a read-only view of a state directory (`pread`, no
//!   mapping, no lock, no write), for the tools that only look;
//! * `slots.rs` — the raw bytes of every slot against the slot encoding;
//! * `verify.rs` — every invariant of a state directory, checked;
//! * `view.rs` — summaries, per-symbol counts, status grids and row export;
//! * `gc.rs` and `gc_log.rs` — garbage collection of payload records and
//!   artifact files, and the log that makes it restart-safe;
//! * `files.rs` — the artifact tree, walked and changed without ever
//!   following a symbolic link;
//! * `migrate.rs` — converting a state directory of an older format
//!   version, offline and restart-safe;
//! * `repair.rs` — accepting lost payload records and symbols that a
//!   bootstrap refuses, explicitly and in the audit trail.

pub mod files;
pub mod gc;
pub mod gc_log;
pub mod migrate;
pub mod reader;
pub mod repair;
mod slots;
pub mod verify;
pub mod view;

pub use slots::{check_ledger_slots, check_slot_bytes, SlotCheck, SlotIssue};

/// Progress of a long operation: called with (phase, done, total) now and then.
pub type Progress<'a> = &'a mut dyn FnMut(&str, u64, u64);
