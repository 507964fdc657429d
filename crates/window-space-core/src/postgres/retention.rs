//! Retention on PostgreSQL: the windows before a line are Retired, and the
//! partitions of `ws_slots` that hold only such windows are dropped whole.
//!
//! The line is always a partition boundary: a run keeps at least the
//! windows it was asked to keep, and rounds the line down to the start of
//! the partition that holds it. A run moves the line in steps, each over at
//! most [`STEP_PARTITIONS`] partitions and each one transaction on a
//! connection of its own, so that a step's locks fit PostgreSQL's lock
//! table however many partitions lie before the line:
//!
//! 1. the space's partition lock (`schema::PARTITION_LOCK`, the one
//!    `ws_slot_partition` takes), so no partition before the step's line is
//!    made while the step runs; the line as it is (no row lock: the step
//!    writes the space's row last, so engines connecting or adding symbols
//!    meanwhile are not held up);
//! 2. `ws_slots` itself, then each partition the step drops, locked
//!    `ACCESS EXCLUSIVE`, in window order: from here no engine reads or
//!    writes them, so what the step sees next stays true until it commits.
//!    `ws_slots` comes first because dropping a partition needs its lock,
//!    and a read through `ws_slots` locks it before the partitions (every
//!    partition, for a plan kept for many calls): taking the partitions
//!    first would deadlock with such reads;
//! 3. the Pending slots there whose lease is still running: the step is
//!    refused with the first of them as a busy slot unless forced (an engine
//!    is working there);
//! 4. each partition dropped;
//! 5. the space's `retired_before` moved to the step's line, a
//!    `ws_retentions` row (who, why, what), and a notification, so that
//!    waiters read again and find those slots Retired.
//!
//! A step killed or disconnected at any point changes nothing; one that
//! commits has done all of it. A run killed between steps leaves the line
//! at the last step's: every window before it Retired, every partition
//! before it dropped, the space consistent, and a run again goes on from
//! there. Each lock is waited for at most [`LOCK_TIMEOUT`]; a step that
//! times out, or is chosen as a deadlock's victim (an engine's first
//! statement on a partition being dropped locks the partition, then
//! `ws_slots`), is tried again up to [`STEP_TRIES`] times. Before the first
//! step, a run that is not forced looks for live claims anywhere before the
//! line without locks, so that the usual refusal changes nothing. A step
//! that fails after earlier ones committed ends the run with what they did
//! and why it stopped ([`PgRetention::stopped`]); a first step that fails
//! is the run's error, and nothing changed.
//!
//! There is no mass `DELETE` and no row is rewritten: a step costs a few
//! statements whatever its partitions held. Payload records stay
//! (`ws_payloads` is not partitioned by window) and the change feed keeps
//! the old slots' changes as their audit trail.

use std::ops::Range;

use tokio_postgres::{GenericClient, Transaction};

use super::schema::PARTITION_LOCK;
use super::{db_error, open, refused, PgActor, PgLedger};
use crate::error::{Error, Result};
use crate::slot::{SlotAddr, SlotSnapshot, SlotWriteError};
use crate::vocab::{SlotKind, SlotStatus};

/// How long a step waits for each lock.
const LOCK_TIMEOUT: &str = "2s";

/// How many times a step whose lock wait timed out is tried again.
const STEP_TRIES: u32 = 5;

/// The most partitions one step drops (each drop holds a few locks until
/// the step commits; PostgreSQL's lock table holds 64 a connection by default).
pub const STEP_PARTITIONS: usize = 16;

/// What a retention run did, or would do.
#[derive(Debug, Default)]
pub struct PgRetention {
    /// The retention line before the run.
    pub previous: u32,
    /// The retention line after the run (the same when it changed nothing),
    /// or that a dry run would set.
    pub retired_before: u32,
    /// The windows of each partition dropped (or that would be).
    pub dropped: Vec<Range<u32>>,
    /// Pending slots before the new line whose lease was still running.
    pub live_claims: u64,
    /// Nothing was changed (`dry_run`, or nothing to do).
    pub unchanged: bool,
    /// Why the run stopped before the line it was asked for, after earlier
    /// steps committed (they stay; `retired_before` is where they ended).
    pub stopped: Option<Error>,
}

/// The first live claim of a set of slots, and how many there are.
struct LiveClaims {
    first: Option<(SlotAddr, SlotSnapshot)>,
    count: u64,
}

/// What one step did.
struct Step {
    line: u32,
    dropped: Vec<Range<u32>>,
    live_claims: u64,
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
        let mut client = open(&self.url).await?;
        let previous = self.retired_before_on(&client).await?;
        let mut report = PgRetention { previous, retired_before: previous, unchanged: true, ..PgRetention::default() };
        if line <= previous {
            return Ok(report);
        }
        // What the run would do, read without locks.
        let parts = self.partitions_before(&client, line).await?;
        let live = self.live_claims(&client, previous, line).await?;
        if dry_run {
            report.retired_before = line;
            report.dropped = parts.iter().map(|(p, _)| self.part_windows(*p)).collect();
            report.live_claims = live.count;
            return Ok(report);
        }
        if let (Some((at, current)), false) = (live.first, force) {
            return Err(refused(at, SlotWriteError::SlotBusy { current }));
        }
        let mut tries = 0;
        loop {
            match self.retention_step(&mut client, line, force, who).await {
                Ok(None) => break,
                Ok(Some(step)) => {
                    tries = 0;
                    report.retired_before = step.line;
                    report.dropped.extend(step.dropped);
                    report.live_claims += step.live_claims;
                    report.unchanged = false;
                }
                Err(Error::Database { sqlstate: Some(code), .. }) if (code == "55P03" || code == "40P01") && tries < STEP_TRIES => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(u64::from(tries) * 100)).await;
                }
                Err(e) if report.unchanged => return Err(e),
                Err(e) => {
                    report.stopped = Some(e);
                    break;
                }
            }
        }
        Ok(report)
    }

    /// The partitions of this space wholly before `line`, in window order: (number, table name).
    async fn partitions_before(&self, client: &impl GenericClient, line: u32) -> Result<Vec<(i32, String)>> {
        let prefix = format!("ws_slots_{}_", self.space_id);
        let children = client
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
        Ok(parts)
    }

    /// The Pending slots of windows `from ..< to` whose lease is still running.
    async fn live_claims(&self, client: &impl GenericClient, from: u32, to: u32) -> Result<LiveClaims> {
        let rows = client
            .query(
                "SELECT symbol, kind, window_idx, version, lease_until, count(*) OVER ()
                 FROM ws_slots WHERE space = $1 AND window_idx >= $2 AND window_idx < $3 AND status = 1 AND lease_until > ws_now_ms()
                 ORDER BY symbol, kind, window_idx LIMIT 1",
                &[&self.space_id, &(from as i32), &(to as i32)],
            )
            .await
            .map_err(db_error)?;
        let Some(r) = rows.first() else { return Ok(LiveClaims { first: None, count: 0 }) };
        let kind = SlotKind::from_code(r.get::<_, i16>(1) as u32).unwrap_or(SlotKind::ALL[0]);
        let at = SlotAddr::new(r.get::<_, i32>(0) as u32, r.get::<_, i32>(2) as u32, kind);
        let current = SlotSnapshot {
            status: SlotStatus::Pending,
            version: r.get::<_, i32>(3) as u32,
            payload_type: 0,
            payload_id: 0,
            checksum: 0,
            lease_deadline_ms: r.get::<_, i64>(4).max(0) as u64,
        };
        Ok(LiveClaims { first: Some((at, current)), count: r.get::<_, i64>(5) as u64 })
    }

    /// One step towards `line` (module docs); `None` when the line is there already.
    async fn retention_step(&self, client: &mut tokio_postgres::Client, line: u32, force: bool, who: &PgActor) -> Result<Option<Step>> {
        let sp = self.space_id;
        let tx = client.transaction().await.map_err(db_error)?;
        tx.batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")).await.map_err(db_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&PARTITION_LOCK, &sp]).await.map_err(db_error)?;
        let previous = self.retired_before_on(&tx).await?;
        if line <= previous {
            return Ok(None);
        }
        let mut parts = self.partitions_before(&tx, line).await?;
        // The step's line: past its last partition, or the run's line when
        // no more than a step's partitions are left before it.
        let step_line = if parts.len() > STEP_PARTITIONS {
            parts.truncate(STEP_PARTITIONS);
            self.part_windows(parts[STEP_PARTITIONS - 1].0).end
        } else {
            line
        };
        tx.batch_execute("LOCK TABLE ONLY ws_slots IN ACCESS EXCLUSIVE MODE").await.map_err(db_error)?;
        for (_, name) in &parts {
            // The names were read from the catalog and matched `ws_slots_{space}_{n}`.
            tx.batch_execute(&format!("LOCK TABLE \"{name}\" IN ACCESS EXCLUSIVE MODE")).await.map_err(db_error)?;
        }
        let live = self.live_claims(&tx, previous, step_line).await?;
        if let (Some((at, current)), false) = (live.first, force) {
            return Err(refused(at, SlotWriteError::SlotBusy { current }));
        }
        for (_, name) in &parts {
            tx.batch_execute(&format!("DROP TABLE \"{name}\"")).await.map_err(db_error)?;
        }
        self.record_step(&tx, previous, step_line, parts.len(), force && live.count > 0, who).await?;
        tx.commit().await.map_err(db_error)?;
        self.saw_line(step_line);
        Ok(Some(Step { line: step_line, dropped: parts.iter().map(|(p, _)| self.part_windows(*p)).collect(), live_claims: live.count }))
    }

    async fn record_step(&self, tx: &Transaction<'_>, previous: u32, line: u32, dropped: usize, forced: bool, who: &PgActor) -> Result<()> {
        let sp = self.space_id;
        tx.execute("UPDATE ws_spaces SET retired_before = $2 WHERE id = $1", &[&sp, &(line as i32)]).await.map_err(db_error)?;
        tx.execute(
            "INSERT INTO ws_retentions (space, retired_before, previous, partitions_dropped, forced, actor, reason, at_ms)
             VALUES ($1, $2, $3, $4, $5, nullif($6, ''), $7, (floor(extract(epoch FROM clock_timestamp()) * 1000))::bigint)",
            &[&sp, &(line as i32), &(previous as i32), &(dropped as i32), &forced, &who.actor, &who.reason],
        )
        .await
        .map_err(db_error)?;
        tx.execute("SELECT pg_notify('ws_changes', $1::text)", &[&sp.to_string()]).await.map_err(db_error)?;
        Ok(())
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
