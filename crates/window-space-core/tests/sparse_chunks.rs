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
