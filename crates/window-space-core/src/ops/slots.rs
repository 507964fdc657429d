//! Operators' checks that need the raw bytes of the state files, for the
//! `window-space verify` command: every slot of every allocated chunk of a
//! ledger against the invariants of the slot encoding (the byte table in
//! `slot.rs`), which the read path cannot see — reserved bits, the fill tag,
//! leftovers in Empty slots, fields a status never carries — and the
//! reserved bytes of the header page and of each chunk header.
//!
//! The files are read with `pread`, never through a mapping and never
//! written, so a damaged or shrinking file gives an error, not SIGBUS, and the
//! check can run beside engines: a slot that fails a check is read twice
//! more, and skipped as in flight if its bytes changed meanwhile.
//!
//! What a quiescent, undamaged slot looks like (`slot.rs` writes nothing else):
//!
//! ```text
//! every slot  head bits 48..64 = 0; status byte 0..=4; tail bits 96..128 = 0;
//!             the fill tag (tail bits 64..96) is never newer than the version
//! Empty       all 32 bytes 0 (nothing leaves a slot Empty once it changed)
//! Pending     payload type 0 (high word: the lease deadline)
//! Filled      fill tag = version − 1 (the claim whose fill committed)
//! Cleared     payload type 0, high word 0
//! Retired     payload type 0, high word 0
//! ```

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::ledger::{
    chunk_offset, LedgerGeometry, CHUNK_BYTES, CHUNK_HEADER_BYTES, CHUNK_MAGIC, CHUNK_OFF_DONE, CHUNK_OFF_INDEX, CHUNK_OFF_RESERVED,
    CHUNK_OFF_RESERVED_TAIL, CHUNK_OFF_SYMBOL, MAX_DONE_COLUMNS, OFF_CHUNK_COUNT, RESERVED_HEADER_RANGES,
};
use crate::mapping::PAGE;
use crate::slot::{version_is_after, RawSlot, SLOT_BYTES};
use crate::vocab::{LedgerKind, SlotStatus};

/// One thing wrong with a slot or a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotIssue {
    pub ledger: LedgerKind,
    pub symbol_id: u32,
    pub window_idx: u32,
    /// Column of the slot in its row (the slot kind's position in its ledger);
    /// `None` for an issue of the chunk header.
    pub column: Option<usize>,
    /// Byte offset in the ledger file.
    pub offset: u64,
    pub what: String,
}

/// What [`check_ledger_slots`] looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotCheck {
    pub chunks: u64,
    pub slots: u64,
    /// Slots that changed while being checked (engines at work), not judged.
    pub in_flight: u64,
    /// Damage in the header page that the header checksum does not cover.
    pub header_issues: Vec<String>,
    pub issues: Vec<SlotIssue>,
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

/// Checks the 32 bytes of one slot; `None` when they are a state `slot.rs` writes.
pub fn check_slot_bytes(b: &[u8; SLOT_BYTES]) -> Option<String> {
    let r = RawSlot::from_bytes(b);
    if r.reserved_head != 0 {
        return Some(format!("reserved head bits 48..64 hold {:#x}, not 0", r.reserved_head));
    }
    let Some(status) = SlotStatus::from_u8(r.status_byte) else {
        return Some(format!("status byte {} is no status", r.status_byte));
    };
    if r.reserved_tail != 0 {
        return Some(format!("reserved tail bits 96..128 hold {:#x}, not 0", r.reserved_tail));
    }
    let (version, tag, payload_type, high) = (r.version, r.fill_tag, r.payload_type, r.high);
    match status {
        SlotStatus::Empty if b.iter().any(|x| *x != 0) => {
            return Some(format!(
                "an Empty slot holds data (version {version}, high word {high:#x}, checksum {:#x}, fill tag {tag})",
                r.checksum
            ));
        }
        SlotStatus::Filled if tag != version.wrapping_sub(1) => {
            return Some(format!(
                "a Filled slot at version {version} has fill tag {tag}, not {} (its checksum is not the fill's)",
                version.wrapping_sub(1)
            ));
        }
        SlotStatus::Pending if payload_type != 0 => return Some(format!("a Pending slot has payload type {payload_type}, not 0")),
        SlotStatus::Cleared | SlotStatus::Retired if payload_type != 0 || high != 0 => {
            return Some(format!("a {status} slot keeps payload type {payload_type} and high word {high:#x}; both must be 0"));
        }
        _ => {}
    }
    if version_is_after(tag, version) {
        return Some(format!("fill tag {tag} is newer than the slot's version {version}"));
    }
    None
}

/// Checks every slot of every published chunk of one ledger file of `state_dir`.
pub fn check_ledger_slots(state_dir: &Path, kind: LedgerKind) -> Result<SlotCheck> {
    let path = state_dir.join(kind.file_name());
    let file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
    let len = file.metadata().map_err(|e| Error::io("fstat", &path, e))?.len();
    if len < PAGE {
        return Err(Error::corrupt(&path, Some(len), "file is shorter than its 4096-byte header page"));
    }
    let mut header = vec![0u8; PAGE as usize];
    file.read_exact_at(&mut header, 0).map_err(|e| Error::io("read", &path, e))?;
    let geometry = LedgerGeometry::decode(&path, kind, &header)?;
    let chunks = u64_at(&header, OFF_CHUNK_COUNT);
    let chunk_bytes = u64::from(CHUNK_BYTES);
    let needed = chunks.checked_mul(chunk_bytes).and_then(|b| b.checked_add(PAGE));
    if needed.is_none_or(|n| n > len) {
        return Err(Error::corrupt(&path, Some(OFF_CHUNK_COUNT as u64), format!("{chunks} published chunks do not fit in {len} bytes")));
    }
    let spr = geometry.slots_per_row as usize;
    let rpc = geometry.rows_per_chunk;
    let mut out = SlotCheck { chunks, ..SlotCheck::default() };
    // Reserved bytes of the header page: of the immutable part (its checksum
    // covers bytes 0..48 only) and around the shared words.
    for (from, to) in RESERVED_HEADER_RANGES {
        if let Some(i) = header[from..to].iter().position(|&x| x != 0) {
            out.header_issues.push(format!("reserved header byte at offset {} is {:#04x}, not 0", from + i, header[from + i]));
        }
    }
    let mut buf = vec![0u8; CHUNK_BYTES as usize];
    for n in 0..chunks {
        let base = chunk_offset(n);
        file.read_exact_at(&mut buf, base).map_err(|e| Error::io("read", &path, e))?;
        let symbol_id = u32_at(&buf, CHUNK_OFF_SYMBOL);
        let chunk_idx = u32_at(&buf, CHUNK_OFF_INDEX);
        let first_window = chunk_idx.saturating_mul(rpc);
        let chunk_issue =
            |what: String, at: u64| SlotIssue { ledger: kind, symbol_id, window_idx: first_window, column: None, offset: at, what };
        if buf[0..4] != CHUNK_MAGIC {
            // Bootstrap refuses such a file; report it rather than read rows from it.
            out.issues.push(chunk_issue("chunk magic WSCK missing".into(), base));
            continue;
        }
        if u32_at(&buf, CHUNK_OFF_RESERVED) != 0 || buf[CHUNK_OFF_RESERVED_TAIL..CHUNK_HEADER_BYTES as usize].iter().any(|&x| x != 0) {
            out.issues.push(chunk_issue("reserved bytes of the chunk header are not 0".into(), base + CHUNK_OFF_RESERVED as u64));
        }
        if let Some((column, count, truth)) = done_count_above_its_slots(&file, &path, base, &mut buf, spr, rpc)? {
            out.issues.push(SlotIssue {
                ledger: kind,
                symbol_id,
                window_idx: first_window,
                column: Some(column),
                offset: base + (CHUNK_OFF_DONE + 4 * column) as u64,
                what: format!("the chunk's done count of this column is {count}, but only {truth} of its slots are Filled or Retired (a count is never above them)"),
            });
        }
        for r in 0..rpc as usize {
            for column in 0..spr {
                let at = CHUNK_HEADER_BYTES as usize + (r * spr + column) * SLOT_BYTES;
                out.slots += 1;
                let Some(what) = check_slot_bytes(buf[at..at + SLOT_BYTES].try_into().expect("32 bytes")) else { continue };
                // Re-read: a slot an engine is changing right now may be read half old, half new.
                let mut again = [0u8; SLOT_BYTES];
                let mut stable = true;
                for _ in 0..2 {
                    file.read_exact_at(&mut again, base + at as u64).map_err(|e| Error::io("read", &path, e))?;
                    if again[..] != buf[at..at + SLOT_BYTES] {
                        stable = false;
                        break;
                    }
                }
                if !stable {
                    out.in_flight += 1;
                    continue;
                }
                out.issues.push(SlotIssue {
                    ledger: kind,
                    symbol_id,
                    window_idx: first_window.saturating_add(r as u32),
                    column: Some(column),
                    offset: base + at as u64,
                    what,
                });
            }
        }
    }
    Ok(out)
}

/// A column whose done count (`ledger.rs`) is above the Filled and Retired
/// slots the chunk `buf` holds: `(column, count, slots)`. Columns past the
/// row count must hold 0. Beside engines a transition may land between the
/// read of the count and the read of the slots, so a chunk that disagrees is
/// read again (twice) and reported only if it disagrees every time; `buf`
/// then holds the last read.
fn done_count_above_its_slots(
    file: &File,
    path: &Path,
    base: u64,
    buf: &mut [u8],
    spr: usize,
    rpc: u32,
) -> Result<Option<(usize, i32, i32)>> {
    let mut found = None;
    for attempt in 0..3 {
        if attempt > 0 {
            file.read_exact_at(buf, base).map_err(|e| Error::io("read", path, e))?;
        }
        found = None;
        for column in 0..MAX_DONE_COLUMNS {
            let count = u32_at(buf, CHUNK_OFF_DONE + 4 * column) as i32;
            let truth = if column < spr {
                (0..rpc as usize)
                    .filter(|&r| {
                        // The status byte: bits 32..40 of the head word (`slot.rs`).
                        let status = buf[CHUNK_HEADER_BYTES as usize + (r * spr + column) * SLOT_BYTES + 4];
                        status == SlotStatus::Filled as u8 || status == SlotStatus::Retired as u8
                    })
                    .count() as i32
            } else {
                0
            };
            if count > truth || (column >= spr && count != 0) {
                found = Some((column, count, truth));
                break;
            }
        }
        if found.is_none() {
            return Ok(None);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditContext;
    use crate::{Config, Controller, FillPayload, PayloadInput, SlotAddr, SlotKind, WindowSpace};

    fn filled_dir() -> (tempfile::TempDir, u64) {
        let d = tempfile::tempdir().unwrap();
        let space: WindowSpace =
            serde_json::from_str(r#"{"kind":"uniform","originNs":0,"windowNs":60000000000,"windowCount":20}"#).unwrap();
        let (c, _) = Controller::bootstrap(Config::new(d.path(), space)).unwrap();
        let spy = c.resolve_symbol("SPY").unwrap();
        let k = SlotKind::from_code(1).unwrap(); // optionTrade, column 1
        for w in 0..5 {
            let g = c.claim(SlotAddr::new(spy, w, k), Some(60_000)).unwrap();
            let rec = PayloadInput {
                symbol_id: spy,
                window_idx: w,
                slot_kind: k,
                payload_type: 3,
                checksum: 7,
                size: 1,
                uri: format!("artifacts/{w}"),
            };
            let id = c.append_payload(k.store(), rec).unwrap();
            c.fill(SlotAddr::new(spy, w, k), g.version, FillPayload { payload_type: 3, payload_id: id, checksum: 7 }).unwrap();
        }
        let ctx = AuditContext::default();
        c.claim(SlotAddr::new(spy, 6, k), Some(60_000)).unwrap();
        c.retire(SlotAddr::new(spy, 7, k), &ctx).unwrap();
        c.force_clear(SlotAddr::new(spy, 2, k), &ctx).unwrap();
        drop(c);
        // Slot (SPY, window 3, optionTrade): chunk 0, row 3, column 1.
        (d, PAGE + u64::from(CHUNK_HEADER_BYTES) + (3 * 7 + 1) * SLOT_BYTES as u64)
    }

    fn damage(d: &Path, offset: u64, f: impl FnOnce(&mut [u8])) {
        let p = d.join("trade-ledger.dat");
        let mut b = std::fs::read(&p).unwrap();
        f(&mut b[offset as usize..offset as usize + SLOT_BYTES]);
        std::fs::write(&p, b).unwrap();
    }

    #[test]
    fn a_ledger_the_library_wrote_has_no_issues() {
        let (d, _) = filled_dir();
        let r = check_ledger_slots(d.path(), LedgerKind::Trade).unwrap();
        assert_eq!((r.chunks, r.slots, r.in_flight), (1, 146 * 7, 0));
        assert_eq!(r.issues, vec![]);
        assert_eq!(check_ledger_slots(d.path(), LedgerKind::Enrichment).unwrap().issues, vec![]);
    }

    #[test]
    fn each_kind_of_slot_damage_is_named_with_its_place() {
        type Damage = fn(&mut [u8]);
        let cases: [(Damage, &str); 6] = [
            (|s| s[6] = 1, "reserved head bits"),
            (|s| s[4] = 9, "status byte 9"),
            (|s| s[24] ^= 1, "has fill tag"),
            (|s| s[28] = 1, "reserved tail bits"),
            (|s| s[5] = 0, ""),                     // payload type 0 is a valid Filled slot: no issue
            (|s| s[4] = 4, "a Retired slot keeps"), // Filled → Retired with its payload id left
        ];
        for (f, expected) in cases {
            let (d, at) = filled_dir();
            damage(d.path(), at, f);
            let r = check_ledger_slots(d.path(), LedgerKind::Trade).unwrap();
            if expected.is_empty() {
                assert_eq!(r.issues, vec![]);
                continue;
            }
            // A Filled slot whose status byte is no longer a status leaves its
            // chunk's done count above the slots it counts: named too.
            let (count, slot): (Vec<_>, Vec<_>) = r.issues.iter().partition(|i| i.what.contains("done count"));
            assert_eq!(count.len(), usize::from(expected == "status byte 9"), "{expected}: {:?}", r.issues);
            assert_eq!(slot.len(), 1, "{expected}: {:?}", r.issues);
            let i = slot[0];
            assert!(i.what.contains(expected), "{expected}: {}", i.what);
            assert_eq!((i.symbol_id, i.window_idx, i.column, i.offset), (0, 3, Some(1), at));
        }
        // An Empty slot with a stray byte, and a damaged chunk header.
        let (d, at) = filled_dir();
        let empty = at + 10 * 7 * SLOT_BYTES as u64; // window 13
        damage(d.path(), empty, |s| s[17] = 1);
        let p = d.path().join("trade-ledger.dat");
        let mut b = std::fs::read(&p).unwrap();
        b[PAGE as usize + 56] = 1;
        std::fs::write(&p, b).unwrap();
        let r = check_ledger_slots(d.path(), LedgerKind::Trade).unwrap();
        let whats: Vec<_> =
            r.issues.iter().map(|i| (i.window_idx, i.column, i.what.split(' ').take(3).collect::<Vec<_>>().join(" "))).collect();
        assert_eq!(whats, vec![(0, None, "reserved bytes of".to_string()), (13, Some(1), "an Empty slot".to_string())]);
    }

    #[test]
    fn reserved_header_bytes_are_checked() {
        let (d, _) = filled_dir();
        let p = d.path().join("enrichment-ledger.dat");
        let mut b = std::fs::read(&p).unwrap();
        b[200] = 0x80;
        std::fs::write(&p, b).unwrap();
        let r = check_ledger_slots(d.path(), LedgerKind::Enrichment).unwrap();
        assert_eq!(r.header_issues, vec!["reserved header byte at offset 200 is 0x80, not 0".to_string()]);
        assert_eq!(check_ledger_slots(d.path(), LedgerKind::Trade).unwrap().header_issues, Vec::<String>::new());
    }

    #[test]
    fn a_short_file_is_an_error_not_a_crash() {
        let (d, _) = filled_dir();
        let p = d.path().join("trade-ledger.dat");
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(PAGE + 100).unwrap();
        assert_eq!(check_ledger_slots(d.path(), LedgerKind::Trade).unwrap_err().code(), "ERR_CORRUPT_STATE");
        f.set_len(10).unwrap();
        assert_eq!(check_ledger_slots(d.path(), LedgerKind::Trade).unwrap_err().code(), "ERR_CORRUPT_STATE");
    }
}
