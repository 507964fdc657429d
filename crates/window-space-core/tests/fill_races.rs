//! Two or more fills of the same claim racing: exactly one commits, and the
//! Filled slot always carries the checksum of the payload it names, never
//! the checksum another fill of that claim tried to write.
//!
//! Threads share the slots in two ways: plain `SlotCell`s over atomics (many
//! rounds, cheap), and a controller whose ledger is the shared mapping, where
//! each checksum is checked against the record its payload id names.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use portable_atomic::AtomicU128;
use window_space_core::slot::SlotCell;
use window_space_core::{Config, Controller, FillPayload, PayloadInput, SlotAddr, SlotKind, SlotStatus, StoreKind, WindowSpace};

/// The checksum a fill of payload `id` writes: distinct for distinct ids.
fn checksum_of(id: u64) -> u64 {
    id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5_5A5A_0F0F_F0F0
}

#[test]
fn racing_fills_of_one_claim_never_pair_a_payload_with_another_fills_checksum() {
    const SLOTS: usize = 4096;
    const ROUNDS: usize = 40;
    const THREADS: usize = 4;
    let cells: Arc<Vec<(AtomicU128, AtomicU128)>> = Arc::new((0..SLOTS).map(|_| (AtomicU128::new(0), AtomicU128::new(0))).collect());
    for round in 0..ROUNDS {
        // Every slot is claimed once; then every thread fills that same claim with its own payload.
        let versions: Arc<Vec<u32>> = Arc::new(
            cells
                .iter()
                .map(|(h, t)| {
                    let c = SlotCell::new(h, t);
                    if round > 0 {
                        c.force_clear(|| ()).unwrap();
                    }
                    c.claim(0, u64::MAX / 2, || ()).unwrap().0.version
                })
                .collect(),
        );
        let barrier = Arc::new(Barrier::new(THREADS));
        let wins = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..THREADS as u64)
            .map(|thread| {
                let (cells, versions, barrier, wins) = (cells.clone(), versions.clone(), barrier.clone(), wins.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    for (i, (h, t)) in cells.iter().enumerate() {
                        let id = (i as u64) * THREADS as u64 + thread;
                        let payload = FillPayload { payload_type: 1, payload_id: id, checksum: checksum_of(id) };
                        if SlotCell::new(h, t).fill(versions[i], payload, || ()).is_ok() {
                            wins.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(wins.load(Ordering::Relaxed), SLOTS, "round {round}: exactly one fill of each claim commits");
        for (i, (h, t)) in cells.iter().enumerate() {
            let s = SlotCell::new(h, t).read();
            assert_eq!(s.status, SlotStatus::Filled);
            assert_eq!(
                s.checksum,
                checksum_of(s.payload_id),
                "round {round}, slot {i}: payload {} carries another fill's checksum",
                s.payload_id
            );
        }
    }
}

#[test]
fn racing_fills_through_a_controller_commit_the_checksum_of_the_record_they_name() {
    const WINDOWS: u32 = 6000;
    const THREADS: u64 = 4;
    let dir = tempfile::tempdir().unwrap();
    let space = WindowSpace::Uniform { origin_ns: 0, window_ns: 1_000_000_000, window_count: WINDOWS };
    let (c, _) = Controller::bootstrap(Config::new(dir.path(), space)).unwrap();
    let c = Arc::new(c);
    let s = c.resolve_symbol("RACE").unwrap();
    let mut claims = Vec::new();
    let mut ids = Vec::new();
    for w in 0..WINDOWS {
        let at = SlotAddr::new(s, w, SlotKind::OptionQuote);
        claims.push(c.claim(at, Some(600_000)).unwrap().version);
        // One record per (window, thread), each with its own checksum.
        ids.push(
            (0..THREADS)
                .map(|t| {
                    let checksum = checksum_of(u64::from(w) * THREADS + t);
                    let input = PayloadInput {
                        symbol_id: s,
                        window_idx: w,
                        slot_kind: SlotKind::OptionQuote,
                        payload_type: 2,
                        checksum,
                        size: 8,
                        uri: format!("artifacts/{w}/{t}"),
                    };
                    (c.append_payload(StoreKind::Quotes, input).unwrap(), checksum)
                })
                .collect::<Vec<_>>(),
        );
    }
    let (claims, ids) = (Arc::new(claims), Arc::new(ids));
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (c, claims, ids, barrier) = (c.clone(), claims.clone(), ids.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut won = 0;
                for w in 0..WINDOWS {
                    let (payload_id, checksum) = ids[w as usize][t as usize];
                    let at = SlotAddr::new(s, w, SlotKind::OptionQuote);
                    if c.fill(at, claims[w as usize], FillPayload { payload_type: 2, payload_id, checksum }).is_ok() {
                        won += 1;
                    }
                }
                won
            })
        })
        .collect();
    let won: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(won, WINDOWS, "exactly one fill of each claim commits");
    for w in 0..WINDOWS {
        let slot = c.read_slot(SlotAddr::new(s, w, SlotKind::OptionQuote)).unwrap();
        assert_eq!(slot.status, SlotStatus::Filled);
        let record = c.store(StoreKind::Quotes).get(slot.payload_id).unwrap().unwrap();
        assert_eq!(slot.checksum, record.checksum, "window {w}: payload {} is filled with another record's checksum", slot.payload_id);
    }
}
