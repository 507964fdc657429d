//! Retention on PostgreSQL: the windows before a line are Retired, and the
//! partitions of `ws_slots` that hold only such windows are dropped whole.
//!
//! One run is one transaction on a connection of its own, so a run killed
//! or disconnected at any point changes nothing, and one that commits has
//! done all of it:
//!
//! 1. the space's partition lock (`schema::PARTITION_LOCK`, the one
//!    `ws_slot_partition` takes), so no partition before the new line is
//!    made while the run decides;
//! 2. the space's row, locked: its `retired_before` and partition width;
//! 3. the Pending slots before the new line whose lease is still running:
//!    refused with the first of them as a busy slot unless forced (an engine
//!    is working there);
//! 4. `retired_before` moved to the new line;
//! 5. each partition wholly before the line dropped (this waits for the
//!    statements using it to end, `lock_timeout` at most);
//! 6. a `ws_retentions` row (who, why, what), and a notification, so that
//!    waiters read again and find those slots Retired.
//!
//! The line is always a partition boundary: a run keeps at least the
//! windows it was asked to keep, and rounds the line down to the start of
//! the partition that holds it. There is no mass `DELETE` and no row is
//! rewritten: a run costs a few statements whatever the partitions held.
//! Payload records stay (`ws_payloads` is not partitioned by window) and the
//! change feed keeps the old slots' changes as their audit trail.

use std::ops::Range;

use super::schema::PARTITION_LOCK;
use super::{db_error, open, refused, PgActor, PgLedger};
use crate::error::Result;
use crate::slot::{SlotAddr, SlotSnapshot, SlotWriteError};
use crate::vocab::{SlotKind, SlotStatus};

/// How long a retention run waits for the statements on a partition it drops.
const LOCK_TIMEOUT: &str = "10s";

/// What a retention run did, or would do.
#[derive(Debug, Clone, Default)]
pub struct PgRetention {
    /// The retention line before the run.
    pub previous: u32,
    /// The retention line after the run (the same when it changed nothing).
    pub retired_before: u32,
    /// The windows of each partition dropped (or that would be).
    pub dropped: Vec<Range<u32>>,
    /// Pending slots before the new line whose lease was still running.
    pub live_claims: u64,
    /// Nothing was changed (`dry_run`, or nothing to do).
    pub unchanged: bool,
}

impl PgLedger {
    /// Moves the retention line to `window` rounded down to a partition
    /// boundary and drops the partitions before it (module docs). Refuses
    /// when a slot there is Pending under a running lease, unless `force`.
    /// With `dry_run`, says what it would do and changes nothing.
    pub async fn drop_windows_before(&self, window: u32, force: bool, dry_run: bool, who: &PgActor) -> Result<PgRetention> {
        if window > self.window_count() {
            self.check_window(window - 1).await?;
        }
        let width = self.partition_windows;
        let line = window / width * width;
        let sp = self.space_id;
        let mut client = open(&self.url).await?;
        let tx = client.transaction().await.map_err(db_error)?;
        tx.batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")).await.map_err(db_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&PARTITION_LOCK, &sp]).await.map_err(db_error)?;
        let row = tx.query_one("SELECT retired_before FROM ws_spaces WHERE id = $1 FOR UPDATE", &[&sp]).await.map_err(db_error)?;
        let previous = row.get::<_, i32>(0).max(0) as u32;
        let mut report = PgRetention { previous, retired_before: previous, unchanged: true, ..PgRetention::default() };
        if line <= previous {
            return Ok(report);
        }
        let line_i = line as i32;
        let prefix = format!("ws_slots_{sp}_");
        let children = tx
            .query(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'ws_slots'::regclass",
                &[],
            )
            .await
            .map_err(db_error)?;
        let mut parts: Vec<(i32, String)> = children
            .iter()
            .filter_map(|r| {
                let name: String = r.get(0);
                let part: i32 = name.strip_prefix(&prefix)?.parse().ok()?;
                (self.part_windows(part).end <= line).then_some((part, name))
            })
            .collect();
        parts.sort();
        report.dropped = parts.iter().map(|(p, _)| self.part_windows(*p)).collect();
        let live = tx
            .query(
                "SELECT symbol, kind, window_idx, status, version, payload_type, payload_id, checksum, lease_until, count(*) OVER ()
                 FROM ws_slots WHERE space = $1 AND window_idx < $2 AND status = 1 AND lease_until > ws_now_ms()
                 ORDER BY symbol, kind, window_idx LIMIT 1",
                &[&sp, &line_i],
            )
            .await
            .map_err(db_error)?;
        report.live_claims = live.first().map(|r| r.get::<_, i64>(9) as u64).unwrap_or(0);
        if dry_run {
            report.retired_before = line;
            return Ok(report);
        }
        if let (Some(r), false) = (live.first(), force) {
            let kind = SlotKind::from_code(r.get::<_, i16>(1) as u32).unwrap_or(SlotKind::ALL[0]);
            let at = SlotAddr::new(r.get::<_, i32>(0) as u32, r.get::<_, i32>(2) as u32, kind);
            let current = SlotSnapshot {
                status: SlotStatus::Pending,
                version: r.get::<_, i32>(4) as u32,
                payload_type: r.get::<_, i16>(5) as u8,
                payload_id: r.get::<_, i64>(6) as u64,
                checksum: r.get::<_, i64>(7) as u64,
                lease_deadline_ms: r.get::<_, i64>(8).max(0) as u64,
            };
            return Err(refused(at, SlotWriteError::SlotBusy { current }));
        }
        tx.execute("UPDATE ws_spaces SET retired_before = $2 WHERE id = $1", &[&sp, &line_i]).await.map_err(db_error)?;
        for (_, name) in &parts {
            // The name was read from the catalog and matched `ws_slots_{space}_{n}`.
            tx.batch_execute(&format!("DROP TABLE \"{name}\"")).await.map_err(db_error)?;
        }
        let reason = who.reason.clone();
        tx.execute(
            "INSERT INTO ws_retentions (space, retired_before, previous, partitions_dropped, forced, actor, reason)
             VALUES ($1, $2, $3, $4, $5, nullif($6, ''), $7)",
            &[&sp, &line_i, &(previous as i32), &(parts.len() as i32), &(force && report.live_claims > 0), &who.actor, &reason],
        )
        .await
        .map_err(db_error)?;
        tx.execute("SELECT pg_notify('ws_changes', $1::text)", &[&sp.to_string()]).await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        report.retired_before = line;
        report.unchanged = false;
        Ok(report)
    }

    /// The retention runs of this space, oldest first: (at ms, actor,
    /// reason, line before, line after, partitions dropped, forced).
    pub async fn retentions(&self) -> Result<Vec<PgRetentionRun>> {
        let c = self.conn().await?;
        let rows = c
            .client
            .query(
                "SELECT at_ms, coalesce(actor, ''), coalesce(reason, ''), previous, retired_before, partitions_dropped, forced
                 FROM ws_retentions WHERE space = $1 ORDER BY id",
                &[&self.space_id],
            )
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|r| PgRetentionRun {
                at_ms: r.get::<_, i64>(0) as u64,
                actor: r.get(1),
                reason: r.get(2),
                previous: r.get::<_, i32>(3) as u32,
                retired_before: r.get::<_, i32>(4) as u32,
                partitions_dropped: r.get::<_, i32>(5) as u32,
                forced: r.get(6),
            })
            .collect())
    }
}

/// One recorded retention run.
#[derive(Debug, Clone)]
pub struct PgRetentionRun {
    pub at_ms: u64,
    pub actor: String,
    pub reason: String,
    pub previous: u32,
    pub retired_before: u32,
    pub partitions_dropped: u32,
    pub forced: bool,
}
