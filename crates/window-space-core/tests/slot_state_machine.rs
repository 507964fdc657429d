//! The slot state machine against a simple model, over random operation
//! sequences (proptest): every result (Ok or which error) and every field of
//! the slot after each step must equal the model's. Versions rise by exactly
//! one on every status transition and never otherwise; Retired is terminal;
//! a fill succeeds only from Pending at the claimed version; an expired lease
//! can be taken over and a live one cannot.

use portable_atomic::AtomicU128;
use proptest::prelude::*;
use window_space_core::slot::{AdminChange, FillPayload, SlotCell, SlotSnapshot, SlotStatus};

#[derive(Debug, Clone)]
enum Op {
    Claim { advance: u64, lease: u64 },
    Renew { stale: bool, lease: u64 },
    Fill { stale: bool, payload: u64, checksum: u64, ptype: u8 },
    Clear { stale: bool },
    ForceClear,
    Retire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..30, 1u64..20).prop_map(|(advance, lease)| Op::Claim { advance, lease }),
        1 => (any::<bool>(), 1u64..20).prop_map(|(stale, lease)| Op::Renew { stale, lease }),
        3 => (any::<bool>(), any::<u64>(), any::<u64>(), any::<u8>()).prop_map(|(stale, payload, checksum, ptype)| Op::Fill { stale, payload, checksum, ptype }),
        1 => any::<bool>().prop_map(|stale| Op::Clear { stale }),
        1 => Just(Op::ForceClear),
        1 => Just(Op::Retire),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Model {
    status: SlotStatus,
    version: u32,
    deadline: u64,
    payload: u64,
    checksum: u64,
    ptype: u8,
}

/// The slot as the model says it reads.
fn snapshot_of(m: &Model) -> SlotSnapshot {
    let mut s = SlotSnapshot { status: m.status, version: m.version, ..SlotSnapshot::EMPTY };
    match m.status {
        SlotStatus::Pending => s.lease_deadline_ms = m.deadline,
        SlotStatus::Filled => (s.payload_id, s.checksum, s.payload_type) = (m.payload, m.checksum, m.ptype),
        _ => {}
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn slot_follows_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let (head, tail) = (AtomicU128::new(0), AtomicU128::new(0));
        let cell = SlotCell::new(&head, &tail);
        let mut m = Model { status: SlotStatus::Empty, version: 0, deadline: 0, payload: 0, checksum: 0, ptype: 0 };
        let mut now = 1_000u64;
        let mut claimed = 0u32; // the version of the last successful claim
        for op in ops {
            match op {
                Op::Claim { advance, lease } => {
                    now += advance;
                    let r = cell.claim(now, lease, || ()).map(|(g, ())| g);
                    match m.status {
                        SlotStatus::Empty | SlotStatus::Cleared => {
                            let g = r.unwrap();
                            prop_assert_eq!(g.version, m.version + 1);
                            prop_assert_eq!(g.previous, m.status);
                            m = Model { status: SlotStatus::Pending, version: m.version + 1, deadline: now + lease, ..m };
                            claimed = g.version;
                        }
                        SlotStatus::Pending if m.deadline <= now => {
                            let g = r.unwrap();
                            prop_assert_eq!(g.previous, SlotStatus::Pending);
                            prop_assert_eq!(g.version, m.version + 1);
                            m = Model { version: m.version + 1, deadline: now + lease, ..m };
                            claimed = g.version;
                        }
                        SlotStatus::Pending => prop_assert_eq!(r.unwrap_err().code(), "ERR_SLOT_BUSY"),
                        SlotStatus::Filled => prop_assert_eq!(r.unwrap_err().code(), "ERR_SLOT_FILLED"),
                        SlotStatus::Retired => prop_assert_eq!(r.unwrap_err().code(), "ERR_SLOT_RETIRED"),
                    }
                }
                Op::Renew { stale, lease } => {
                    let v = if stale { claimed.wrapping_add(9) } else { claimed };
                    let r = cell.renew(v, now, lease);
                    if m.status == SlotStatus::Pending && m.version == v {
                        prop_assert_eq!(r.unwrap(), now + lease);
                        m.deadline = now + lease; // the version does not move
                    } else {
                        prop_assert_eq!(r.unwrap_err().code(), "ERR_VERSION_CONFLICT");
                    }
                }
                Op::Fill { stale, payload, checksum, ptype } => {
                    let v = if stale { claimed.wrapping_sub(1) } else { claimed };
                    let r = cell.fill(v, FillPayload { payload_type: ptype, payload_id: payload, checksum }, || ()).map(|(t, ())| t);
                    if m.status == SlotStatus::Pending && m.version == v {
                        let t = r.unwrap();
                        prop_assert_eq!(t.version, v + 1);
                        m = Model { status: SlotStatus::Filled, version: v + 1, payload, checksum, ptype, ..m };
                    } else {
                        prop_assert_eq!(r.unwrap_err().code(), "ERR_VERSION_CONFLICT");
                    }
                }
                Op::Clear { stale } => {
                    let v = if stale { claimed.wrapping_add(3) } else { claimed };
                    let r = cell.clear(v, || ()).map(|(t, ())| t);
                    if m.status == SlotStatus::Pending && m.version == v {
                        prop_assert_eq!(r.unwrap().version, v + 1);
                        m = Model { status: SlotStatus::Cleared, version: v + 1, ..m };
                    } else {
                        prop_assert_eq!(r.unwrap_err().code(), "ERR_VERSION_CONFLICT");
                    }
                }
                Op::ForceClear => {
                    let r = cell.force_clear(|| ());
                    match m.status {
                        SlotStatus::Retired => prop_assert_eq!(r.unwrap_err().code(), "ERR_SLOT_RETIRED"),
                        // Empty is claimable already and Cleared is there: no transition.
                        SlotStatus::Empty | SlotStatus::Cleared => prop_assert_eq!(r.unwrap(), AdminChange::Unchanged(snapshot_of(&m))),
                        _ => {
                            let AdminChange::Changed(t, before, ()) = r.unwrap() else { panic!("a {:?} slot is cleared", m.status) };
                            prop_assert_eq!(t.version, m.version + 1);
                            prop_assert_eq!(before, snapshot_of(&m));
                            m = Model { status: SlotStatus::Cleared, version: m.version + 1, ..m };
                        }
                    }
                }
                Op::Retire => {
                    let r = cell.retire(|| ()).unwrap();
                    if m.status == SlotStatus::Retired {
                        prop_assert_eq!(r, AdminChange::Unchanged(snapshot_of(&m)));
                    } else {
                        let AdminChange::Changed(t, before, ()) = r else { panic!("a {:?} slot is retired", m.status) };
                        prop_assert_eq!(before, snapshot_of(&m));
                        m = Model { status: SlotStatus::Retired, version: m.version + 1, ..m };
                        prop_assert_eq!(t.version, m.version);
                    }
                }
            }
            // The slot reads exactly as the model says.
            let s = cell.read();
            prop_assert_eq!(s.status, m.status);
            prop_assert_eq!(s.version, m.version);
            match m.status {
                SlotStatus::Pending => prop_assert_eq!(s.lease_deadline_ms, m.deadline),
                SlotStatus::Filled => {
                    prop_assert_eq!((s.payload_id, s.checksum, s.payload_type), (m.payload, m.checksum, m.ptype));
                }
                _ => prop_assert_eq!((s.payload_id, s.checksum), (0, 0)),
            }
        }
    }
}
