//! What the looking tools show, computed from a read-only view: the summary
//! of `inspect` (schedule, files, counters, stale claims, gc state), exact
//! counts per symbol, the status grid of a window range, and rows for
//! `export`, in batches.

use std::path::PathBuf;

use serde::Serialize;

use super::gc_log;
use super::reader::StateReader;
use crate::controller::now_ms;
use crate::error::{Error, Result};
use crate::lock::DirLock;
use crate::payload::PayloadRecord;
use crate::slot::{SlotAddr, SlotSnapshot};
use crate::vocab::{LedgerKind, SlotKind, SlotStatus, StoreKind};

/// One file of the state directory and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSize {
    pub name: String,
    pub bytes: u64,
}

/// A ledger in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerSummary {
    pub ledger: &'static str,
    pub chunks: u64,
    pub rows_allocated: u64,
    pub bytes: u64,
    pub stale_claims: u64,
    /// Event counters, in the vocabulary's order.
    pub events: Vec<(&'static str, u64)>,
}

/// A mapping table in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreSummary {
    pub store: &'static str,
    pub file: &'static str,
    pub records: u64,
    pub bytes: u64,
    pub torn_tail_bytes: u64,
}

/// Counts of one slot kind by status, in status order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindCounts {
    pub ledger: &'static str,
    pub slot: &'static str,
    pub counts: [u64; 5],
}

/// What gc.log says, in short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcSummary {
    pub log: bool,
    pub collected_records: u64,
    pub removed_files: u64,
    pub unfinished: u64,
    pub damaged_lines: u64,
}

/// The summary `inspect` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub state_dir: PathBuf,
    /// The persisted schedule as the JSON of `schedule.json`'s `schedule`
    /// (a string: its nanosecond integers are exact).
    pub schedule_json: String,
    pub window_count: u32,
    /// Start of window 0 and end of the last window, ns since the epoch (decimal strings).
    pub first_start_ns: String,
    pub last_end_ns: String,
    pub symbols: Vec<String>,
    pub files: Vec<FileSize>,
    pub ledgers: Vec<LedgerSummary>,
    pub stores: Vec<StoreSummary>,
    /// From the counters every process shares (Empty = symbols × windows − the rest).
    pub slots: Vec<KindCounts>,
    pub stale_claims: u64,
    /// Some controller (an engine) has the directory open.
    pub other_controllers_open: bool,
    pub gc: GcSummary,
}

/// The shared counters as slot counts, clamped to what a ledger can hold.
pub fn counter_counts(reader: &StateReader) -> Result<Vec<KindCounts>> {
    let total = reader.symbols().len() as u64 * u64::from(reader.window_count());
    let mut out = Vec::new();
    for ledger in LedgerKind::ALL {
        let c = reader.ledger(ledger).counters()?;
        for (column, kind) in ledger.slot_kinds().iter().enumerate() {
            let mut counts = [0u64; 5];
            let mut rest = total;
            for (i, s) in SlotStatus::ALL[1..].iter().enumerate() {
                let n = c.status[column][i].min(rest);
                counts[*s as usize] = n;
                rest -= n;
            }
            counts[0] = rest;
            out.push(KindCounts { ledger: ledger.name(), slot: kind.name(), counts });
        }
    }
    Ok(out)
}

/// Whether some controller holds the presence lock (never creates the lock file).
fn others_open(reader: &StateReader) -> bool {
    let Ok(f) = std::fs::File::open(reader.dir().join(DirLock::FILE_NAME)) else { return false };
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            let _ = rustix::fs::flock(&f, rustix::fs::FlockOperation::Unlock);
            false
        }
        Err(_) => true,
    }
}

/// The summary of a state directory.
pub fn summary(reader: &StateReader) -> Result<Summary> {
    let now = now_ms();
    let mut ledgers = Vec::new();
    for ledger in LedgerKind::ALL {
        let file = reader.ledger(ledger);
        let rpc = file.geometry().rows_per_chunk;
        let mut stale = 0;
        file.for_each_chunk(|_, _, rows| {
            for row in 0..rpc {
                for column in 0..ledger.slot_kinds().len() {
                    if let Ok(s) = rows.slot(row, column) {
                        stale += u64::from(s.status == SlotStatus::Pending && s.lease_deadline_ms <= now);
                    }
                }
            }
            Ok(())
        })?;
        ledgers.push(LedgerSummary {
            ledger: ledger.name(),
            chunks: file.chunk_count(),
            rows_allocated: file.chunk_count() * u64::from(rpc),
            bytes: file.file_len(),
            stale_claims: stale,
            events: file.counters()?.events.iter().map(|(e, n)| (e.name(), *n)).collect(),
        });
    }
    let stores = StoreKind::ALL
        .iter()
        .map(|s| {
            let replay = reader.replay(*s);
            Ok(StoreSummary {
                store: s.name(),
                file: s.file_name(),
                records: reader.store(*s).len()?,
                bytes: replay.bytes,
                torn_tail_bytes: replay.torn_tail_bytes,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut files = Vec::new();
    for name in
        crate::controller::state_file_names().into_iter().chain([crate::journal::JOURNAL_FILE, crate::audit::AUDIT_FILE, gc_log::GC_LOG])
    {
        if let Ok(m) = std::fs::metadata(reader.dir().join(name)) {
            files.push(FileSize { name: name.to_string(), bytes: m.len() });
        }
    }
    let schedule = reader.schedule();
    let wc = schedule.window_count();
    let first = schedule.window_meta(0)?;
    let last = schedule.window_meta(wc - 1)?;
    let gc = gc_log::read(reader.dir())?;
    Ok(Summary {
        state_dir: reader.dir().to_path_buf(),
        schedule_json: serde_json::to_string(schedule.space()).map_err(|e| Error::invalid(format!("schedule: {e}")))?,
        window_count: wc,
        first_start_ns: first.start_ns.to_string(),
        last_end_ns: (i128::from(last.start_ns) + i128::from(last.duration_ns)).to_string(),
        symbols: reader.symbols().to_vec(),
        files,
        stale_claims: ledgers.iter().map(|l| l.stale_claims).sum(),
        ledgers,
        stores,
        slots: counter_counts(reader)?,
        other_controllers_open: others_open(reader),
        gc: GcSummary {
            log: gc.exists,
            collected_records: gc.records.len() as u64,
            removed_files: gc.uris.len() as u64,
            unfinished: gc.unfinished.len() as u64,
            damaged_lines: gc.damaged.len() as u64,
        },
    })
}

/// Exact counts per symbol and slot kind, from a scan: `[symbol][kind][status]`.
pub fn counts_by_symbol(reader: &StateReader) -> Result<Vec<Vec<[u64; 5]>>> {
    let symbols = reader.symbols().len();
    let windows = u64::from(reader.window_count());
    let mut out = vec![vec![[0u64; 5]; SlotKind::ALL.len()]; symbols];
    for counts in out.iter_mut().flatten() {
        counts[0] = windows;
    }
    for ledger in LedgerKind::ALL {
        let file = reader.ledger(ledger);
        let rpc = file.geometry().rows_per_chunk;
        file.for_each_chunk(|symbol, first_window, rows| {
            // A symbol added after the view was opened is not counted.
            let Some(per_kind) = out.get_mut(symbol as usize) else { return Ok(()) };
            for row in 0..rpc {
                if u64::from(first_window) + u64::from(row) >= windows {
                    break;
                }
                for (column, kind) in ledger.slot_kinds().iter().enumerate() {
                    if let Ok(s) = rows.slot(row, column) {
                        if s.status != SlotStatus::Empty {
                            let c = &mut per_kind[*kind as usize];
                            c[0] -= 1;
                            c[s.status as usize] += 1;
                        }
                    }
                }
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// A cell of the status grid: a status code (0..=4), or [`GRID_STALE`] for
/// a Pending slot whose lease expired.
pub const GRID_STALE: u8 = 5;

/// The status grid of `symbol`, windows `from..to`, for each of `kinds`.
pub fn grid(reader: &StateReader, symbol: u32, from: u32, to: u32, kinds: &[SlotKind]) -> Result<Vec<Vec<u8>>> {
    check_symbol(reader, symbol)?;
    let now = now_ms();
    let mut out = vec![Vec::with_capacity((to.saturating_sub(from)) as usize); kinds.len()];
    for w in from..to {
        for (i, kind) in kinds.iter().enumerate() {
            let s = reader.read_slot(SlotAddr::new(symbol, w, *kind))?;
            out[i].push(if s.status == SlotStatus::Pending && s.lease_deadline_ms <= now { GRID_STALE } else { s.status as u8 });
        }
    }
    Ok(out)
}

fn check_symbol(reader: &StateReader, symbol: u32) -> Result<()> {
    if (symbol as usize) < reader.symbols().len() {
        Ok(())
    } else {
        Err(Error::UnknownSymbol { symbol: format!("id {symbol}") })
    }
}

/// A slot of an exported row, with the URI of its record when Filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSlot {
    pub kind: SlotKind,
    pub slot: SlotSnapshot,
    pub uri: Option<String>,
}

/// One exported row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRow {
    pub ledger: LedgerKind,
    pub symbol: u32,
    pub window: u32,
    /// Start of the window, ns since the epoch.
    pub start_ns: i64,
    pub slots: Vec<ExportSlot>,
}

/// Where an export continues: ledger, symbol position in the export's
/// symbol list, window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportCursor {
    pub ledger: usize,
    pub symbol: usize,
    pub window: u32,
}

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSpec {
    pub ledgers: Vec<LedgerKind>,
    pub symbols: Vec<u32>,
    pub from: u32,
    pub to: u32,
    /// Also rows whose slots are all Empty.
    pub all_rows: bool,
}

/// Up to `max` rows from `cursor` on, in (ledger, symbol, window) order;
/// the cursor to continue from, or `None` at the end.
pub fn export_rows(
    reader: &StateReader,
    spec: &ExportSpec,
    mut cursor: ExportCursor,
    max: usize,
) -> Result<(Vec<ExportRow>, Option<ExportCursor>)> {
    for s in &spec.symbols {
        check_symbol(reader, *s)?;
    }
    let mut out = Vec::new();
    while cursor.ledger < spec.ledgers.len() {
        let ledger = spec.ledgers[cursor.ledger];
        while cursor.symbol < spec.symbols.len() {
            let symbol = spec.symbols[cursor.symbol];
            let mut w = cursor.window.max(spec.from);
            while w < spec.to {
                if out.len() >= max {
                    return Ok((out, Some(ExportCursor { window: w, ..cursor })));
                }
                let row = reader.ledger(ledger).read_row(symbol, w)?;
                if spec.all_rows || row.iter().any(|s| s.status != SlotStatus::Empty) {
                    let slots = ledger
                        .slot_kinds()
                        .iter()
                        .zip(row)
                        .map(|(kind, slot)| {
                            let uri = (slot.status == SlotStatus::Filled)
                                .then(|| reader.store(kind.store()).get(slot.payload_id).ok().flatten().map(|r: PayloadRecord| r.uri))
                                .flatten();
                            ExportSlot { kind: *kind, slot, uri }
                        })
                        .collect();
                    let start_ns = reader.schedule().window_meta(w)?.start_ns;
                    out.push(ExportRow { ledger, symbol, window: w, start_ns, slots });
                }
                w += 1;
            }
            cursor.symbol += 1;
            cursor.window = spec.from;
        }
        cursor.ledger += 1;
        cursor.symbol = 0;
    }
    Ok((out, None))
}
