//! A process's memory follows the chunks that exist, not the window index
//! they start at: claims near the end of a 2^32-window schedule cost the
//! process (the one that claims, and one that opens the directory later)
//! about what claims at window 0 cost. Resident memory is read from
//! `/proc/self/status` before and after; a directory dense in the chunk index
//! would hold about 940 MiB per symbol for these claims.

use window_space_core::{Config, Controller, SlotAddr, SlotKind, SlotStatus, WindowSpace};

const SYMBOLS: u32 = 4;
/// Resident growth allowed for the claims (and their chunks' mapped pages).
const ALLOWED_BYTES: u64 = 64 << 20;

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

fn config(dir: &std::path::Path) -> Config {
    Config::new(dir, WindowSpace::Uniform { origin_ns: 0, window_ns: 1_000_000, window_count: u32::MAX - 1 })
}

#[test]
fn claims_at_the_far_end_of_the_schedule_cost_what_claims_at_its_start_cost() {
    let dir = tempfile::tempdir().unwrap();
    let far = u32::MAX - 2;
    {
        let (c, _) = Controller::bootstrap(config(dir.path())).unwrap();
        let symbols: Vec<u32> = (0..SYMBOLS).map(|i| c.resolve_symbol(&format!("S{i}")).unwrap()).collect();
        let before = resident_bytes();
        for &s in &symbols {
            for kind in [SlotKind::OptionTrade, SlotKind::Greeks] {
                c.claim(SlotAddr::new(s, far, kind), Some(60_000)).unwrap();
                c.claim(SlotAddr::new(s, 0, kind), Some(60_000)).unwrap();
            }
        }
        let grown = resident_bytes().saturating_sub(before);
        assert!(grown < ALLOWED_BYTES, "claiming process grew by {grown} bytes");
    }
    // Another process's view: a controller that reads these chunks' headers at bootstrap.
    let before = resident_bytes();
    let (c, _) = Controller::bootstrap(config(dir.path())).unwrap();
    for s in 0..SYMBOLS {
        for kind in [SlotKind::OptionTrade, SlotKind::Greeks] {
            assert_eq!(c.read_slot(SlotAddr::new(s, far, kind)).unwrap().status, SlotStatus::Pending);
            assert_eq!(c.read_slot(SlotAddr::new(s, 0, kind)).unwrap().status, SlotStatus::Pending);
            assert_eq!(c.read_slot(SlotAddr::new(s, far - 1_000_000, kind)).unwrap().status, SlotStatus::Empty);
        }
    }
    assert_eq!(c.next_unfilled_window(0, far, SlotKind::OptionTrade).unwrap(), Some(far));
    let grown = resident_bytes().saturating_sub(before);
    assert!(grown < ALLOWED_BYTES, "opening process grew by {grown} bytes");
}

/// Chunk `n`'s header in a ledger file: magic, symbol, chunk index, reserved, checksum.
fn chunk_header(symbol: u32, chunk_idx: u32) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(b"WSCK");
    h[4..8].copy_from_slice(&symbol.to_le_bytes());
    h[8..12].copy_from_slice(&chunk_idx.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&h[0..16]);
    h[16..24].copy_from_slice(&sum.to_le_bytes());
    h
}

fn write_chunk_header(dir: &std::path::Path, n: u64, symbol: u32, chunk_idx: u32) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(dir.join("trade-ledger.dat")).unwrap();
    f.write_all_at(&chunk_header(symbol, chunk_idx), 4096 + n * 32768).unwrap();
}

#[test]
fn a_chunk_naming_a_symbol_id_far_past_the_map_is_refused_without_a_table_that_large() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (c, _) = Controller::bootstrap(config(dir.path())).unwrap();
        let s = c.resolve_symbol("S").unwrap();
        c.claim(SlotAddr::new(s, 0, SlotKind::OptionTrade), Some(60_000)).unwrap();
        c.claim(SlotAddr::new(s, 146, SlotKind::OptionTrade), Some(60_000)).unwrap();
    }
    write_chunk_header(dir.path(), 1, u32::MAX, 0);
    let before = resident_bytes();
    let e = Controller::bootstrap(config(dir.path())).map(|_| ()).unwrap_err();
    assert_eq!(e.code(), window_space_core::ErrorCode::CorruptState, "{e}");
    assert!(e.to_string().contains("trade-ledger.dat"), "{e}");
    let grown = resident_bytes().saturating_sub(before);
    assert!(grown < ALLOWED_BYTES, "refusing the chunk grew the process by {grown} bytes");
}

#[test]
fn a_duplicate_chunk_met_while_open_is_reported_as_itself_on_every_look() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = Controller::bootstrap(config(dir.path())).unwrap();
    let s = c.resolve_symbol("S").unwrap();
    c.claim(SlotAddr::new(s, 0, SlotKind::OptionTrade), Some(60_000)).unwrap();
    {
        // Another controller grows the ledger by two chunks; the second is then damaged
        // into a copy of the first chunk's header.
        let (other, _) = Controller::bootstrap(config(dir.path())).unwrap();
        other.claim(SlotAddr::new(s, 146, SlotKind::OptionTrade), Some(60_000)).unwrap();
        other.claim(SlotAddr::new(s, 292, SlotKind::OptionTrade), Some(60_000)).unwrap();
    }
    write_chunk_header(dir.path(), 2, s, 0);
    let far = SlotAddr::new(s, 146 * 50, SlotKind::OptionTrade);
    for look in 0..3 {
        let e = c.read_slot(far).unwrap_err();
        assert_eq!(e.code(), window_space_core::ErrorCode::CorruptState, "look {look}: {e}");
        let off = (4096 + 2 * 32768).to_string();
        assert!(e.to_string().contains(&off) && e.to_string().contains("appears twice"), "look {look}: {e}");
    }
}
