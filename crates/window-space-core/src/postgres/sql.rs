//! The statements of the PostgreSQL backend, prepared once per connection.
//!
//! Status codes are the vocabulary's (`SlotStatus`: 1 Pending, 2 Filled,
//! 3 Cleared, 4 Retired; no row is Empty). Every transition is one
//! statement whose `WHERE` is the compare of a compare-and-swap: the row
//! lock PostgreSQL takes for the update serialises writers of one slot, and
//! the condition is re-checked on the newest row version after a wait, so
//! exactly one of several concurrent claims of a claimable slot returns a
//! row. `version` is the fencing token: a fill, clear or renewal names the
//! version its claim returned and matches only while the slot is still
//! Pending at that version. Lease deadlines are milliseconds on the
//! database's clock (`ws_now_ms()`, the transaction's `now()`), never the
//! client's.
//!
//! A statement that makes transitions also records them ([`recorded`]):
//! one `ws_changes` row per slot written, stamped with the slot's order key
//! `change_ord` (why it is `greatest(pg_current_xact_id(), previous)`:
//! `changes.rs`), and one `pg_notify('ws_changes', space)` when a session
//! listens for that space (`ws_listeners`), all in the same statement and
//! so in the same transaction as the transition.

use tokio_postgres::{Client, Statement};

/// A slot's order key after a transition in this transaction (the row's
/// previous key is `s.change_ord`).
pub(super) const NEXT_ORD: &str = "greatest(pg_current_xact_id(), s.change_ord)";

/// The select-list item that sends the notification of a [`recorded`]
/// statement: a statement's final `SELECT` names it once, since a `WITH`
/// query that is not referenced is not run.
pub(super) const NOTIFIED: &str = "(SELECT count(*) FROM ws_notified)";

/// The actor, action and reason columns of an engine's transition.
pub(super) const ENGINE: &str = "NULL, NULL, NULL";

/// A statement that makes transitions and records them in the change feed.
///
/// `written` is the statement's `WITH` list, whose last query `written` writes
/// `ws_slots` or one of its partitions `AS s` (each row a transition: its status or version changes,
/// and `change_ord` is set to [`NEXT_ORD`], or to `pg_current_xact_id()`
/// for a new row) and returns `s.*`; `$1` is the space. `who` gives the
/// actor, action and reason columns ([`ENGINE`] for engines). `select` is
/// the final query, over `written`, and lists [`NOTIFIED`].
pub(super) fn recorded(written: &str, who: &str, select: &str) -> String {
    format!(
        "WITH {written},
ws_recorded AS (
    INSERT INTO ws_changes (ord, {CHANGE_COLUMNS}, actor, action, reason)
    SELECT change_ord, {CHANGE_COLUMNS}, {who} FROM written ORDER BY space, symbol, kind, window_idx),
ws_notified AS (
    SELECT pg_notify('ws_changes', $1::text)
    WHERE EXISTS (SELECT 1 FROM written) AND EXISTS (SELECT 1 FROM ws_listeners l WHERE l.space = $1))
{select}"
    )
}

/// The columns a change copies from its slot.
const CHANGE_COLUMNS: &str = "space, symbol, kind, window_idx, status, version, payload_type, payload_id, checksum, lease_until";

/// Claim: insert Pending(1), or take over a Cleared slot or an expired lease.
/// `$1` space, `$2` symbol, `$3` kind, `$4` window, `$5` lease ms.
fn claim(table: &str) -> String {
    recorded(
        &format!(
            "written AS (INSERT INTO {table} AS s (space, symbol, kind, window_idx, status, version, lease_until, change_ord)
VALUES ($1, $2, $3, $4, 1, 1, ws_now_ms() + $5, pg_current_xact_id())
ON CONFLICT (space, symbol, kind, window_idx) DO UPDATE
SET status = 1, version = s.version + 1, lease_until = excluded.lease_until, payload_type = 0, payload_id = 0, checksum = 0, change_ord = {NEXT_ORD}
WHERE s.status = 3 OR (s.status = 1 AND s.lease_until <= ws_now_ms())
RETURNING s.*)"
        ),
        ENGINE,
        &format!("SELECT version, lease_until, {NOTIFIED} FROM written"),
    )
}

/// Renewal: a new deadline for the claim at version `$5`; the version stays.
fn renew(table: &str) -> String {
    format!(
        "UPDATE {table} SET lease_until = ws_now_ms() + $6
WHERE space = $1 AND symbol = $2 AND kind = $3 AND window_idx = $4 AND status = 1 AND version = $5
RETURNING lease_until"
    )
}

/// Fill: Pending(`$5`) → Filled(`$5` + 1), only with a payload record of
/// the kind's store (`$9`) that exists.
fn fill(table: &str) -> String {
    recorded(
        &format!(
            "written AS (UPDATE {table} AS s SET status = 2, version = s.version + 1, payload_type = $6, payload_id = $7, checksum = $8, lease_until = 0, change_ord = {NEXT_ORD}
WHERE s.space = $1 AND s.symbol = $2 AND s.kind = $3 AND s.window_idx = $4 AND s.status = 1 AND s.version = $5
  AND EXISTS (SELECT 1 FROM ws_payloads p WHERE p.space = $1 AND p.store = $9 AND p.id = $7)
RETURNING s.*)"
        ),
        ENGINE,
        &format!("SELECT version, {NOTIFIED} FROM written"),
    )
}

/// Clear by the claim holder: Pending(`$5`) → Cleared(`$5` + 1).
fn clear(table: &str) -> String {
    recorded(
        &format!(
            "written AS (UPDATE {table} AS s SET status = 3, version = s.version + 1, lease_until = 0, payload_type = 0, payload_id = 0, checksum = 0, change_ord = {NEXT_ORD}
WHERE s.space = $1 AND s.symbol = $2 AND s.kind = $3 AND s.window_idx = $4 AND s.status = 1 AND s.version = $5
RETURNING s.*)"
        ),
        ENGINE,
        &format!("SELECT version, {NOTIFIED} FROM written"),
    )
}

/// One slot (no row: Empty).
fn get_slot(table: &str) -> String {
    format!(
        "SELECT status, version, payload_type, payload_id, checksum, lease_until FROM {table}
WHERE space = $1 AND symbol = $2 AND kind = $3 AND window_idx = $4"
    )
}

/// The written slots of windows `$3 ..< $4` of one symbol, of kinds `$5`.
const ROWS: &str = "SELECT window_idx, kind, status, version, payload_type, payload_id, checksum, lease_until FROM ws_slots
WHERE space = $1 AND symbol = $2 AND kind = ANY($5::int2[]) AND window_idx >= $3 AND window_idx < $4";

/// Claims up to `$6` claimable windows in `$4 ..< $5` (all in `table`'s
/// range), in one statement.
/// Returns the number of candidates (`n`) on every row, and one row per win
/// (a row of nulls when nothing was won). The range bound on the existing
/// rows (`x.window_idx >= $4 AND < $5`, implied by `= g.w`) is spelled
/// out: without it a plan that hashes the symbol's rows reads all of them,
/// and a call costs time in proportion to the windows done before. A batch
/// statement: run from its text ([`Statements`] says why).
fn claim_next(table: &str) -> String {
    recorded(
        &format!(
            "cand AS MATERIALIZED (
    SELECT g.w FROM generate_series($4::int4, $5::int4 - 1) AS g(w)
    WHERE NOT EXISTS (SELECT 1 FROM {table} x WHERE x.space = $1 AND x.symbol = $2 AND x.kind = $3
        AND x.window_idx >= $4 AND x.window_idx < $5 AND x.window_idx = g.w
        AND (x.status IN (2, 4) OR (x.status = 1 AND x.lease_until > ws_now_ms())))
    ORDER BY g.w LIMIT $6),
written AS (
    INSERT INTO {table} AS s (space, symbol, kind, window_idx, status, version, lease_until, change_ord)
    SELECT $1, $2, $3, cand.w, 1, 1, ws_now_ms() + $7, pg_current_xact_id() FROM cand
    ON CONFLICT (space, symbol, kind, window_idx) DO UPDATE
    SET status = 1, version = s.version + 1, lease_until = excluded.lease_until, payload_type = 0, payload_id = 0, checksum = 0, change_ord = {NEXT_ORD}
    WHERE s.status = 3 OR (s.status = 1 AND s.lease_until <= ws_now_ms())
    RETURNING s.*)"
        ),
        ENGINE,
        &format!("SELECT k.n, written.window_idx, written.version, written.lease_until, {NOTIFIED} FROM (SELECT count(*) AS n FROM cand) k LEFT JOIN written ON true"),
    )
}

/// Fills many slots of `table` in one statement (arrays of one element
/// per item). A batch statement: run from its text ([`Statements`] says why).
fn fill_many(table: &str) -> String {
    recorded(
        &format!(
            "written AS (UPDATE {table} AS s SET status = 2, version = s.version + 1, payload_type = u.pt, payload_id = u.pid, checksum = u.ck, lease_until = 0, change_ord = {NEXT_ORD}
FROM unnest($2::int4[], $3::int2[], $4::int4[], $5::int4[], $6::int2[], $7::int8[], $8::int8[], $9::int2[]) AS u(symbol, kind, w, v, pt, pid, ck, store)
WHERE s.space = $1 AND s.symbol = u.symbol AND s.kind = u.kind AND s.window_idx = u.w AND s.status = 1 AND s.version = u.v
  AND EXISTS (SELECT 1 FROM ws_payloads p WHERE p.space = $1 AND p.store = u.store AND p.id = u.pid)
RETURNING s.*)"
        ),
        ENGINE,
        &format!("SELECT symbol, kind, window_idx, version, payload_id, checksum, {NOTIFIED} FROM written"),
    )
}

/// The first window `>= $4` of a symbol and kind that is neither Filled nor
/// Retired: the done windows from where the search starts (`$4`, or the
/// retention line when that is later: every window before it is Retired)
/// in order, where they first skip one, and the start.
const NEXT_UNFILLED: &str = "WITH b AS (SELECT greatest($4::int8, retired_before) AS s FROM ws_spaces WHERE id = $1)
SELECT min(expected) FILTER (WHERE window_idx <> expected), count(*), (SELECT s FROM b) FROM (
    SELECT window_idx, ((SELECT s FROM b) + row_number() OVER (ORDER BY window_idx) - 1) AS expected FROM ws_slots
    WHERE space = $1 AND symbol = $2 AND kind = $3 AND window_idx >= (SELECT s FROM b) AND status IN (2, 4)) d";

/// Counts of written slots by kind and status (none is before the retention line).
const METRICS: &str = "SELECT kind, status, count(*) FROM ws_slots WHERE space = $1 GROUP BY kind, status";

/// Appends a payload record; its id comes from `ws_payload_ids`.
const APPEND: &str = "INSERT INTO ws_payloads (space, store, symbol, window_idx, kind, payload_type, uri, checksum, size, created_at_ns)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, (floor(extract(epoch FROM clock_timestamp()) * 1000000) * 1000)::bigint)
RETURNING id, created_at_ns";

/// One payload record.
const GET_PAYLOAD: &str = "SELECT id, symbol, window_idx, kind, payload_type, uri, checksum, size, created_at_ns FROM ws_payloads
WHERE space = $1 AND store = $2 AND id = $3";

/// Adds a symbol (nothing when it exists).
const ADD_SYMBOL: &str = "INSERT INTO ws_symbols (space, name) VALUES ($1, $2) ON CONFLICT (space, name) DO NOTHING RETURNING id";

/// A symbol's id by name.
const SYMBOL_ID: &str = "SELECT id FROM ws_symbols WHERE space = $1 AND name = $2";

/// A symbol's name by id.
const SYMBOL_NAME: &str = "SELECT name FROM ws_symbols WHERE space = $1 AND id = $2";

/// Changes after the cursor (`$2` order key as text, `$3` id) that no
/// running transaction can still precede (`changes.rs`), up to `$4`. The
/// text of the order key is named `ord_text`, so that `ORDER BY ord` sorts
/// by the `xid8` column, not by its text ('10000' < '9995').
const CHANGES: &str = "SELECT ord::text AS ord_text, id, symbol, kind, window_idx, status, version, payload_type, payload_id, checksum, lease_until, actor, action, reason, at_ms
FROM ws_changes
WHERE space = $1 AND (ord, id) > ($2::text::xid8, $3::int8) AND ord < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY ord, id LIMIT $4";

/// The single-slot statements of one partition of `ws_slots` on one
/// connection, prepared when the connection first uses the partition, and
/// the texts of the batch statements on it. A statement names the
/// partition, not `ws_slots`: through the partitioned table, each
/// statement would pay for routing (an insert) or pruning (an update) and
/// keep being planned anew, since a plan for every partition costs more
/// than one planned for the one it touches (a claim and fill measured 2 to
/// 3 times the server time of the same statements on the partition).
pub struct SlotStatements {
    pub claim: Statement,
    pub renew: Statement,
    pub fill: Statement,
    pub clear: Statement,
    pub get_slot: Statement,
    pub claim_next: String,
    pub fill_many: String,
}

impl SlotStatements {
    /// Prepares the statements on `table` (pipelined).
    pub async fn prepare(client: &Client, table: &str) -> Result<Self, tokio_postgres::Error> {
        let texts = [claim(table), renew(table), fill(table), clear(table), get_slot(table)];
        let (claim, renew, fill, clear, get_slot) = tokio::try_join!(
            client.prepare(&texts[0]),
            client.prepare(&texts[1]),
            client.prepare(&texts[2]),
            client.prepare(&texts[3]),
            client.prepare(&texts[4]),
        )?;
        Ok(Self { claim, renew, fill, clear, get_slot, claim_next: claim_next(table), fill_many: fill_many(table) })
    }
}

/// The statements of one connection, prepared once: PostgreSQL plans them
/// with their parameters for five runs, then keeps a generic plan when it
/// costs no more, and a single-slot statement then runs without planning
/// (planning each run measured half the throughput of a claim and fill).
/// The batch statements ([`CLAIM_NEXT`], [`FILL_MANY`]) are not among them:
/// a generic plan of theirs knows neither the arrays' lengths nor the window
/// range, and was measured falling to sequential scans, so each call
/// prepares them anew and they are planned with the call's values.
pub struct Statements {
    pub rows: Statement,
    pub next_unfilled: Statement,
    pub metrics: Statement,
    pub append: Statement,
    pub get_payload: Statement,
    pub add_symbol: Statement,
    pub symbol_id: Statement,
    pub symbol_name: Statement,
    pub changes: Statement,
}

impl Statements {
    /// Prepares every statement on `client` (pipelined: one round trip each, all in flight together).
    pub async fn prepare(client: &Client) -> Result<Self, tokio_postgres::Error> {
        let (rows, next_unfilled, metrics, append, get_payload, add_symbol, symbol_id, symbol_name, changes) = tokio::try_join!(
            client.prepare(ROWS),
            client.prepare(NEXT_UNFILLED),
            client.prepare(METRICS),
            client.prepare(APPEND),
            client.prepare(GET_PAYLOAD),
            client.prepare(ADD_SYMBOL),
            client.prepare(SYMBOL_ID),
            client.prepare(SYMBOL_NAME),
            client.prepare(CHANGES),
        )?;
        Ok(Self { rows, next_unfilled, metrics, append, get_payload, add_symbol, symbol_id, symbol_name, changes })
    }
}
