//! `verify` of a window space in PostgreSQL: what the database's own
//! constraints cannot hold, checked by queries that read the space once.
//!
//! * **fields** — each slot's columns fit its status: a status the
//!   vocabulary knows, a version of at least 1, a lease only while Pending,
//!   a payload reference only while Filled.
//! * **payload records** — every Filled slot names a record of its kind's
//!   store that exists.
//! * **change feed** — a slot's newest change has the slot's version and
//!   status. A slot with a newer version than its newest change was written
//!   outside the library (by hand, or by a library without the feed); one
//!   with no change at all is reported as a warning, since an operator may
//!   have deleted old changes.
//! * **retention line** — no slot row lies before the space's
//!   `retired_before`, where every slot is Retired and every partition has
//!   been dropped.
//! * **lost slots** — every slot the change feed wrote from the line on
//!   still has its row (not deleted, nor its partition dropped, by hand).
//! * **partitions** — every table named as one of the space's partitions
//!   is attached to `ws_slots` (a detached one may still take an engine's
//!   writes, which nothing else reads).
//!
//! Warnings also count the Pending slots whose lease ran out (on the
//! database clock). Each problem lists at most [`SAMPLE`] slots.

use super::{db_error, retrying, PgLedger};
use crate::error::Result;
use crate::vocab::{SlotKind, SlotStatus};

/// How many slots a problem names at most.
pub const SAMPLE: i64 = 20;

/// What [`PgLedger::verify`] found.
#[derive(Debug, Clone, Default)]
pub struct PgVerifyReport {
    /// Slots with a row (not Empty).
    pub slots: u64,
    pub filled_slots: u64,
    pub records: u64,
    pub changes: u64,
    /// What was checked, one line each.
    pub checked: Vec<String>,
    pub warnings: Vec<String>,
    pub problems: Vec<PgProblem>,
}

/// One problem: its kind (`slot-fields`, `missing-record`, `change-feed`) and what it is.
#[derive(Debug, Clone)]
pub struct PgProblem {
    pub kind: &'static str,
    pub message: String,
}

impl PgVerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// `(kind, store)` of every slot kind, as SQL `VALUES`.
fn kind_stores() -> String {
    SlotKind::ALL.iter().map(|k| format!("({}::int2, {}::int2)", k.code(), k.store().code())).collect::<Vec<_>>().join(", ")
}

fn slot_name(kind: i16) -> String {
    SlotKind::from_code(kind as u32).map(|k| k.name().to_string()).unwrap_or_else(|| format!("kind {kind}"))
}

impl PgLedger {
    /// Checks the space (module docs); reads only. Its reads lock every
    /// partition of `ws_slots`, so a retention step may choose one of them
    /// as a deadlock's victim: then it starts again.
    pub async fn verify(&self) -> Result<PgVerifyReport> {
        retrying(|| self.verify_once()).await
    }

    async fn verify_once(&self) -> Result<PgVerifyReport> {
        let c = self.conn().await?;
        let sp = self.space_id;
        let mut r = PgVerifyReport::default();

        let counts = c
            .client
            .query_one(
                "SELECT (SELECT count(*) FROM ws_slots WHERE space = $1),
                        (SELECT count(*) FROM ws_slots WHERE space = $1 AND status = 2),
                        (SELECT count(*) FROM ws_payloads WHERE space = $1),
                        (SELECT count(*) FROM ws_changes WHERE space = $1),
                        (SELECT count(*) FROM ws_slots WHERE space = $1 AND status = 1 AND lease_until <= ws_now_ms())",
                &[&sp],
            )
            .await
            .map_err(db_error)?;
        let n = |i: usize| counts.get::<_, i64>(i) as u64;
        (r.slots, r.filled_slots, r.records, r.changes) = (n(0), n(1), n(2), n(3));
        if n(4) > 0 {
            r.warnings.push(format!("{} Pending slots have an expired lease (another engine may take them over)", n(4)));
        }

        let before_line = c
            .client
            .query_one(
                "SELECT sp.retired_before, (SELECT count(*) FROM ws_slots s WHERE s.space = $1 AND s.window_idx < sp.retired_before)
                 FROM ws_spaces sp WHERE sp.id = $1",
                &[&sp],
            )
            .await
            .map_err(db_error)?;
        r.checked.push("no slot row before the retention line (its partitions are dropped)".into());
        let (line, stray): (i32, i64) = (before_line.get(0), before_line.get(1));
        if stray > 0 {
            r.problems.push(PgProblem {
                kind: "before-retention-line",
                message: format!("{stray} slot rows lie before the retention line (window {line}), where every slot is Retired"),
            });
        }

        // Slots the feed says were written, from the line on, that have no
        // row: rows deleted, or a partition dropped, by hand.
        let lost = c
            .client
            .query(
                "WITH newest AS (
                     SELECT DISTINCT ON (symbol, kind, window_idx) symbol, kind, window_idx, status, version FROM ws_changes
                     WHERE space = $1 AND window_idx >= $2 ORDER BY symbol, kind, window_idx, version DESC, ord DESC, id DESC)
                 SELECT count(*) OVER (), n.symbol, n.kind, n.window_idx, n.status, n.version FROM newest n
                 WHERE NOT EXISTS (SELECT 1 FROM ws_slots s
                                   WHERE s.space = $1 AND s.symbol = n.symbol AND s.kind = n.kind AND s.window_idx = n.window_idx)
                 ORDER BY n.symbol, n.kind, n.window_idx LIMIT $3",
                &[&sp, &line, &SAMPLE],
            )
            .await
            .map_err(db_error)?;
        r.checked.push("every slot the change feed has written from the retention line on has its row".into());
        if let Some(first) = lost.first() {
            r.problems.push(PgProblem {
                kind: "lost-slot",
                message: format!(
                    "{} slots the change feed wrote have no row (deleted, or their partition dropped, outside the library)",
                    first.get::<_, i64>(0)
                ),
            });
        }
        for row in &lost {
            let (sy, k, w, st, v): (i32, i16, i32, i16, i32) = (row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
            r.problems.push(PgProblem {
                kind: "lost-slot",
                message: format!(
                    "symbol {sy}, window {w}, {}: no row, while its newest change is status {st} at version {v}",
                    slot_name(k)
                ),
            });
        }

        // Tables named as this space's partitions that are not attached: an
        // engine that prepared statements on one before it was detached
        // writes there, where nothing else reads.
        let detached = c
            .client
            .query(
                "SELECT c.relname::text FROM pg_class c
                 WHERE c.relkind = 'r' AND NOT c.relispartition AND c.relname LIKE $1
                   AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'ws_slots'::regclass)
                 ORDER BY c.relname",
                &[&format!("ws\\_slots\\_{sp}\\_%")],
            )
            .await
            .map_err(db_error)?;
        r.checked.push("every table named as a partition of this space is attached to ws_slots".into());
        for row in &detached {
            let name: String = row.get(0);
            r.problems.push(PgProblem {
                kind: "detached-partition",
                message: format!("table {name} is named as a partition of this space's slots but is not attached to ws_slots"),
            });
        }

        let (pending, filled, cleared, retired) =
            (SlotStatus::Pending as i16, SlotStatus::Filled as i16, SlotStatus::Cleared as i16, SlotStatus::Retired as i16);
        let bad_fields = c
            .client
            .query(
                "SELECT symbol, kind, window_idx, status, version, lease_until, payload_type, payload_id, checksum FROM ws_slots
                 WHERE space = $1 AND NOT (
                     version >= 1 AND CASE status
                         WHEN $2 THEN payload_type = 0 AND payload_id = 0 AND checksum = 0 AND lease_until > 0
                         WHEN $3 THEN lease_until = 0
                         WHEN $4 THEN lease_until = 0 AND payload_type = 0 AND payload_id = 0 AND checksum = 0
                         WHEN $5 THEN lease_until = 0 AND payload_type = 0 AND payload_id = 0 AND checksum = 0
                         ELSE false END)
                 ORDER BY symbol, kind, window_idx LIMIT $6",
                &[&sp, &pending, &filled, &cleared, &retired, &SAMPLE],
            )
            .await
            .map_err(db_error)?;
        r.checked.push("each slot's columns fit its status".into());
        for row in &bad_fields {
            let (sy, k, w, st, v): (i32, i16, i32, i16, i32) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
            r.problems.push(PgProblem {
                kind: "slot-fields",
                message: format!(
                    "symbol {sy}, window {w}, {}: status {st}, version {v}, lease_until {}, payload_type {}, payload_id {}, checksum {} do not fit together",
                    slot_name(k),
                    row.get::<_, i64>(5),
                    row.get::<_, i16>(6),
                    row.get::<_, i64>(7),
                    row.get::<_, i64>(8)
                ),
            });
        }

        let missing = c
            .client
            .query(
                &format!(
                    "SELECT s.symbol, s.kind, s.window_idx, s.payload_id, ks.store FROM ws_slots s
                     JOIN (VALUES {}) AS ks(kind, store) ON ks.kind = s.kind
                     WHERE s.space = $1 AND s.status = $2
                       AND NOT EXISTS (SELECT 1 FROM ws_payloads p WHERE p.space = $1 AND p.store = ks.store AND p.id = s.payload_id)
                     ORDER BY s.symbol, s.kind, s.window_idx LIMIT $3",
                    kind_stores()
                ),
                &[&sp, &filled, &SAMPLE],
            )
            .await
            .map_err(db_error)?;
        r.checked.push("every Filled slot names a payload record of its kind's store".into());
        for row in &missing {
            let (sy, k, w, pid): (i32, i16, i32, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
            r.problems.push(PgProblem {
                kind: "missing-record",
                message: format!("symbol {sy}, window {w}, {}: Filled with payload id {pid}, which its store does not hold", slot_name(k)),
            });
        }

        // The slots whose newest change differs from them: how many have no
        // change at all, and a sample of those whose change disagrees.
        let feed = c
            .client
            .query(
                "WITH newest AS (
                     SELECT DISTINCT ON (symbol, kind, window_idx) symbol, kind, window_idx, status, version FROM ws_changes
                     WHERE space = $1 ORDER BY symbol, kind, window_idx, version DESC, ord DESC, id DESC),
                 differ AS MATERIALIZED (
                     SELECT s.symbol, s.kind, s.window_idx, s.status, s.version, n.status AS change_status, n.version AS change_version
                     FROM ws_slots s LEFT JOIN newest n USING (symbol, kind, window_idx)
                     WHERE s.space = $1 AND (n.version IS DISTINCT FROM s.version OR n.status IS DISTINCT FROM s.status))
                 SELECT u.n, d.symbol, d.kind, d.window_idx, d.status, d.version, d.change_status, d.change_version
                 FROM (SELECT count(*) AS n FROM differ WHERE change_version IS NULL) u
                 LEFT JOIN (SELECT * FROM differ WHERE change_version IS NOT NULL ORDER BY symbol, kind, window_idx LIMIT $2) d ON true",
                &[&sp, &SAMPLE],
            )
            .await
            .map_err(db_error)?;
        r.checked.push("each slot's newest change has the slot's version and status".into());
        let unrecorded = feed.first().map(|row| row.get::<_, i64>(0)).unwrap_or(0);
        for row in &feed {
            let Some(sy) = row.get::<_, Option<i32>>(1) else { continue };
            let (k, w, st, v, cst, cv): (i16, i32, i16, i32, i16, i32) =
                (row.get(2), row.get(3), row.get(4), row.get(5), row.get(6), row.get(7));
            r.problems.push(PgProblem {
                kind: "change-feed",
                message: format!(
                    "symbol {sy}, window {w}, {}: the slot is status {st} at version {v}, its newest change status {cst} at version {cv} (written outside the library?)",
                    slot_name(k)
                ),
            });
        }
        if unrecorded > 0 {
            r.warnings.push(format!("{unrecorded} slots have no change in the feed (deleted as old, or written outside the library)"));
        }
        Ok(r)
    }
}
