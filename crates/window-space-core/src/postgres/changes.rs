//! The change feed of the PostgreSQL backend: `ws_changes`, read with a
//! cursor that never skips a change that commits late.
//!
//! ## Why a cursor cannot miss a change
//!
//! Change ids come from a sequence, and a sequence hands out numbers when a
//! statement runs, not when its transaction commits: a transaction may take
//! id 10, stay open, and commit after another one took id 11 and committed.
//! A reader that moved its cursor past 11 would never see 10. So the cursor
//! does not run over ids alone. Each change carries an order key `ord`
//! (`xid8`), and changes are read in `(ord, id)` order, only those with
//! `ord < xmin`, where `xmin` is `pg_snapshot_xmin(pg_current_snapshot())`
//! of the reading statement: every transaction whose id is below it has
//! ended.
//!
//! * A change's `ord` is at least the id of the transaction that wrote it
//!   (`greatest(pg_current_xact_id(), …)`, set by the statement that makes
//!   the transition and writes the change: `sql.rs`).
//!   Any transaction still running, or starting later, has an id `>= xmin`,
//!   so every change it writes has `ord >= xmin`: the set of changes with
//!   `ord < xmin` is final when it is read (all committed, so all visible,
//!   and no more can join it). The next read's `xmin` is not smaller, and
//!   whatever it adds has keys above every key delivered before. Nothing is
//!   skipped and nothing is delivered twice.
//! * One slot's changes are delivered in version order: a slot's `ord`
//!   never decreases (`greatest(…, s.change_ord)`: the row's previous key), and a later version's
//!   change gets a larger id than an earlier one with an equal `ord` (the
//!   row lock makes the later writer wait for the earlier one's commit, and
//!   ids are taken after the row is written). Without the `greatest`, a
//!   batch that got its transaction id early could write version 6 of a
//!   slot after another transaction wrote version 5, with a smaller key.
//!
//! The price: a transaction that stays open (a session idle in transaction
//! after writing anything) holds `xmin` back, and watchers see nothing
//! newer until it ends (docs/postgres.md, operating advice).

use super::{db_error, Conn};
use crate::error::{Error, Result};
use crate::slot::SlotSnapshot;
use crate::vocab::{SlotKind, SlotStatus};

/// A position in the change feed: after the change with this key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cursor {
    pub ord: u64,
    pub id: i64,
}

impl Cursor {
    /// The text form JavaScript holds: `ord.id`.
    pub fn to_text(self) -> String {
        format!("{}.{}", self.ord, self.id)
    }

    /// Parses [`to_text`](Self::to_text)'s form.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::invalid(format!("change feed position must be the text a watch returned (\"ord.id\"), got {s:?}"));
        let (a, b) = s.split_once('.').ok_or_else(bad)?;
        Ok(Self { ord: a.parse().map_err(|_| bad())?, id: b.parse().map_err(|_| bad())? })
    }
}

/// One change: the slot after a transition, and who made it (operators' changes).
#[derive(Debug, Clone)]
pub struct Change {
    pub cursor: Cursor,
    pub symbol: u32,
    pub window: u32,
    pub kind: SlotKind,
    pub slot: SlotSnapshot,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub reason: Option<String>,
    /// When it was written, ms since the epoch on the database clock.
    pub at_ms: i64,
}

/// Reads up to `limit` changes after `after`.
pub(super) async fn read(conn: &Conn, space: i32, after: Cursor, limit: i64) -> Result<Vec<Change>> {
    let rows = conn.client.query(&conn.st.changes, &[&space, &after.ord.to_string(), &after.id, &limit]).await.map_err(db_error)?;
    rows.iter()
        .map(|r| {
            let ord: String = r.get(0);
            let kind: i16 = r.get(3);
            let status: i16 = r.get(5);
            let version: i32 = r.get(6);
            Ok(Change {
                cursor: Cursor {
                    ord: ord.parse().map_err(|_| Error::Internal { what: format!("change order key {ord:?}") })?,
                    id: r.get(1),
                },
                symbol: r.get::<_, i32>(2) as u32,
                window: r.get::<_, i32>(4) as u32,
                kind: SlotKind::from_code(kind as u32)
                    .ok_or_else(|| Error::Internal { what: format!("slot kind {kind} in ws_changes") })?,
                slot: SlotSnapshot {
                    status: SlotStatus::from_u8(status as u8).unwrap_or(SlotStatus::Empty),
                    version: version as u32,
                    payload_type: r.get::<_, i16>(7) as u8,
                    payload_id: r.get::<_, i64>(8) as u64,
                    checksum: r.get::<_, i64>(9) as u64,
                    lease_deadline_ms: r.get::<_, i64>(10).max(0) as u64,
                },
                actor: r.get(11),
                action: r.get(12),
                reason: r.get(13),
                at_ms: r.get(14),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_reads_back_as_written_and_orders_by_key_then_id() {
        let c = Cursor { ord: 18_446_744_073_709_551_615, id: 42 };
        assert_eq!(Cursor::parse(&c.to_text()).unwrap(), c);
        assert_eq!(Cursor::parse("0.0").unwrap(), Cursor::default());
        assert!(Cursor { ord: 5, id: 1 } > Cursor { ord: 4, id: 9 });
        assert!(Cursor { ord: 5, id: 2 } > Cursor { ord: 5, id: 1 });
    }

    #[test]
    fn a_position_of_another_shape_is_an_invalid_argument() {
        for bad in ["", "12", "a.b", "1.2.3", "-1.2", "1.x"] {
            let e = Cursor::parse(bad).unwrap_err();
            assert_eq!(e.code(), crate::vocab::ErrorCode::InvalidArgument, "{bad:?}");
        }
    }
}
