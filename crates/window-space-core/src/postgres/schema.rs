//! The PostgreSQL schema of window-space and its versioned migrations.
//!
//! Every migration runs inside one transaction that first takes a
//! transaction-level advisory lock ([`MIGRATION_LOCK`]), so engines that
//! start together apply each migration once: the first applies it, the
//! others wait for its commit and then find it recorded in `ws_migrations`.
//! A database whose newest recorded migration is newer than this library's
//! is refused (`ERR_NEWER_FORMAT`).
//!
//! The tables (all in the connection's `search_path` schema):
//!
//! | table | one row per | key |
//! | --- | --- | --- |
//! | `ws_migrations` | applied migration | `version` |
//! | `ws_spaces` | window space (a named ledger: schedule, window count) | `id`, unique `name` |
//! | `ws_symbols` | symbol of a space | (`space`, `id`), unique (`space`, `name`) |
//! | `ws_slots` | slot ever written (no row = Empty, or Retired before the space's retention line) | (`space`, `symbol`, `kind`, `window_idx`) |
//! | `ws_payloads` | payload record | (`space`, `store`, `id`) |
//! | `ws_changes` | slot transition (change feed and audit trail) | (`space`, `ord`, `id`) |
//! | `ws_listeners` | session listening for a space's changes | (`space`, `pid`) |
//! | `ws_retentions` | retention run | `id` |
//!
//! `ws_slots` is partitioned by range of (`space`, `window_idx`): partition
//! `ws_slots_{space}_{n}` holds windows `n * w ..< (n + 1) * w` of one
//! space, where `w` is the space's `partition_windows` (fixed when the
//! space is made). A partition is made when a claim or retire first
//! reaches its windows (`ws_slot_partition`, under [`PARTITION_LOCK`]):
//! made beside the table and then attached, which locks `ws_slots` only
//! against other schema changes, never against engines' statements.
//! Retention moves the space's `retired_before` line forward to a
//! partition boundary and drops the partitions before it, in one
//! transaction: every window before the line is Retired, and
//! `ws_slot_partition` refuses to make a partition there again.
//!
//! `ws_slots` has one index, its primary key, on columns no transition
//! changes: fills, clears and renewals are HOT updates. Fill factor 50
//! leaves room on each page for one more version of every row inserted
//! there: the fill that follows a claim.
//!
//! There are no triggers: every statement that makes a transition records
//! it in `ws_changes` itself and notifies listeners (`sql.rs`): a script of
//! the same statements measured 1.7 times the claim+fill pairs a second of
//! row and statement triggers in PL/pgSQL doing the same. A write to
//! `ws_slots` made by hand, outside the library, therefore leaves no change
//! behind.

use tokio_postgres::Client;

use super::db_error;
use crate::error::{Error, Result};

/// The advisory lock key that serialises migrations (`ws` in ASCII, then a
/// fixed tag): any value works as long as every version uses the same.
pub const MIGRATION_LOCK: i64 = 0x7773_5f6d_6967_7261;

/// The migrations, in order: `MIGRATIONS[i]` brings the schema to version `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: spaces, symbols, slots, payloads, the change feed.
    r#"
CREATE TABLE ws_spaces (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE,
    schedule text NOT NULL,
    window_count integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE ws_symbols (
    space integer NOT NULL REFERENCES ws_spaces (id),
    id integer GENERATED ALWAYS AS IDENTITY (MINVALUE 0 START WITH 0),
    name text NOT NULL,
    PRIMARY KEY (space, id),
    UNIQUE (space, name)
);
CREATE TABLE ws_slots (
    space integer NOT NULL,
    symbol integer NOT NULL,
    kind smallint NOT NULL,
    window_idx integer NOT NULL,
    status smallint NOT NULL,
    version integer NOT NULL,
    lease_until bigint NOT NULL DEFAULT 0,
    payload_type smallint NOT NULL DEFAULT 0,
    payload_id bigint NOT NULL DEFAULT 0,
    checksum bigint NOT NULL DEFAULT 0,
    change_ord xid8 NOT NULL DEFAULT '0',
    PRIMARY KEY (space, symbol, kind, window_idx)
) WITH (fillfactor = 50);
CREATE SEQUENCE ws_payload_ids AS bigint MINVALUE 0 START WITH 0;
CREATE TABLE ws_payloads (
    space integer NOT NULL,
    store smallint NOT NULL,
    id bigint NOT NULL DEFAULT nextval('ws_payload_ids'),
    symbol integer NOT NULL,
    window_idx integer NOT NULL,
    kind smallint NOT NULL,
    payload_type smallint NOT NULL,
    uri text NOT NULL,
    checksum bigint NOT NULL,
    size bigint NOT NULL,
    created_at_ns bigint NOT NULL,
    PRIMARY KEY (space, store, id)
);
CREATE TABLE ws_changes (
    id bigint GENERATED ALWAYS AS IDENTITY,
    ord xid8 NOT NULL,
    space integer NOT NULL,
    symbol integer NOT NULL,
    kind smallint NOT NULL,
    window_idx integer NOT NULL,
    status smallint NOT NULL,
    version integer NOT NULL,
    payload_type smallint NOT NULL,
    payload_id bigint NOT NULL,
    checksum bigint NOT NULL,
    lease_until bigint NOT NULL,
    actor text,
    action text,
    reason text,
    at_ms bigint NOT NULL DEFAULT (floor(extract(epoch FROM now()) * 1000))::bigint,
    PRIMARY KEY (space, ord, id)
);
CREATE FUNCTION ws_now_ms() RETURNS bigint LANGUAGE sql STABLE
    AS $$ SELECT (floor(extract(epoch FROM now()) * 1000))::bigint $$;
CREATE FUNCTION ws_slot_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        NEW.change_ord := greatest(pg_current_xact_id(), OLD.change_ord);
    ELSE
        NEW.change_ord := pg_current_xact_id();
    END IF;
    RETURN NEW;
END $$;
CREATE FUNCTION ws_slots_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ws_changes (ord, space, symbol, kind, window_idx, status, version,
                            payload_type, payload_id, checksum, lease_until, actor, action, reason)
    SELECT n.change_ord, n.space, n.symbol, n.kind, n.window_idx, n.status, n.version,
           n.payload_type, n.payload_id, n.checksum, n.lease_until,
           nullif(current_setting('ws.actor', true), ''),
           nullif(current_setting('ws.action', true), ''),
           nullif(current_setting('ws.reason', true), '')
    FROM new_rows n ORDER BY n.space, n.symbol, n.kind, n.window_idx;
    PERFORM pg_notify('ws_changes', d.space::text) FROM (SELECT DISTINCT space FROM new_rows) d;
    RETURN NULL;
END $$;
CREATE FUNCTION ws_slots_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ws_changes (ord, space, symbol, kind, window_idx, status, version,
                            payload_type, payload_id, checksum, lease_until, actor, action, reason)
    SELECT n.change_ord, n.space, n.symbol, n.kind, n.window_idx, n.status, n.version,
           n.payload_type, n.payload_id, n.checksum, n.lease_until,
           nullif(current_setting('ws.actor', true), ''),
           nullif(current_setting('ws.action', true), ''),
           nullif(current_setting('ws.reason', true), '')
    FROM new_rows n JOIN old_rows o USING (space, symbol, kind, window_idx)
    WHERE o.status IS DISTINCT FROM n.status OR o.version IS DISTINCT FROM n.version
    ORDER BY n.space, n.symbol, n.kind, n.window_idx;
    IF FOUND THEN
        PERFORM pg_notify('ws_changes', d.space::text) FROM (SELECT DISTINCT space FROM new_rows) d;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER ws_slot_order BEFORE INSERT OR UPDATE ON ws_slots
    FOR EACH ROW EXECUTE FUNCTION ws_slot_order();
CREATE TRIGGER ws_slots_inserted AFTER INSERT ON ws_slots
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ws_slots_inserted();
CREATE TRIGGER ws_slots_updated AFTER UPDATE ON ws_slots
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ws_slots_updated();
"#,
    // 2: transitions record their changes and notify in their own
    // statements (`sql.rs`), which replaces the triggers; the listeners
    // that a notification is for.
    r#"
DROP TRIGGER ws_slot_order ON ws_slots;
DROP TRIGGER ws_slots_inserted ON ws_slots;
DROP TRIGGER ws_slots_updated ON ws_slots;
DROP FUNCTION ws_slot_order();
DROP FUNCTION ws_slots_inserted();
DROP FUNCTION ws_slots_updated();
CREATE TABLE ws_listeners (
    space integer NOT NULL,
    pid integer NOT NULL,
    PRIMARY KEY (space, pid)
);
"#,
    // 3: slots partitioned by space and window range, created as claims
    // reach them and dropped whole by retention; the retention line of each
    // space and the record of each retention run.
    r#"
ALTER TABLE ws_spaces
    ADD COLUMN partition_windows integer NOT NULL DEFAULT 4096 CHECK (partition_windows > 0),
    ADD COLUMN retired_before integer NOT NULL DEFAULT 0;
CREATE TABLE ws_retentions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    space integer NOT NULL,
    retired_before integer NOT NULL,
    previous integer NOT NULL,
    partitions_dropped integer NOT NULL,
    forced boolean NOT NULL,
    actor text,
    reason text,
    at_ms bigint NOT NULL DEFAULT ws_now_ms()
);
ALTER TABLE ws_slots RENAME TO ws_slots_unpartitioned;
ALTER INDEX ws_slots_pkey RENAME TO ws_slots_unpartitioned_pkey;
CREATE TABLE ws_slots (
    space integer NOT NULL,
    symbol integer NOT NULL,
    kind smallint NOT NULL,
    window_idx integer NOT NULL,
    status smallint NOT NULL,
    version integer NOT NULL,
    lease_until bigint NOT NULL DEFAULT 0,
    payload_type smallint NOT NULL DEFAULT 0,
    payload_id bigint NOT NULL DEFAULT 0,
    checksum bigint NOT NULL DEFAULT 0,
    change_ord xid8 NOT NULL DEFAULT '0',
    PRIMARY KEY (space, symbol, kind, window_idx)
) PARTITION BY RANGE (space, window_idx);
CREATE FUNCTION ws_slot_partition(p_space integer, p_part integer) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    width integer;
    retired integer;
    lo bigint;
    hi bigint;
    name text := format('ws_slots_%s_%s', p_space, p_part);
BEGIN
    PERFORM pg_advisory_xact_lock(2004049776, p_space);
    SELECT partition_windows, retired_before INTO width, retired FROM ws_spaces WHERE id = p_space;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no window space with id %', p_space USING ERRCODE = 'no_data_found';
    END IF;
    lo := p_part::bigint * width;
    hi := lo + width;
    IF p_part < 0 OR lo > 2147483647 THEN
        RAISE EXCEPTION 'partition % is outside the window range', p_part USING ERRCODE = 'numeric_value_out_of_range';
    END IF;
    IF hi <= retired THEN
        RETURN false;
    END IF;
    IF to_regclass(quote_ident(name)) IS NOT NULL THEN
        RETURN true;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE ws_slots INCLUDING DEFAULTS) WITH (fillfactor = 50)', name);
    EXECUTE format('ALTER TABLE ws_slots ATTACH PARTITION %I FOR VALUES FROM (%s, %s) TO (%s, %s)', name, p_space, lo, p_space,
        CASE WHEN hi > 2147483647 THEN 'MAXVALUE' ELSE hi::text END);
    RETURN true;
END $$;
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT DISTINCT s.space, s.window_idx / sp.partition_windows AS part
             FROM ws_slots_unpartitioned s JOIN ws_spaces sp ON sp.id = s.space LOOP
        PERFORM ws_slot_partition(r.space, r.part);
    END LOOP;
END $$;
INSERT INTO ws_slots SELECT * FROM ws_slots_unpartitioned;
DROP TABLE ws_slots_unpartitioned;
"#,
];

/// The advisory lock (two-key form: this, then the space's id) that
/// serialises creating and dropping one space's slot partitions: held by
/// `ws_slot_partition` and by a retention run, so that a partition wholly
/// before the retention line is never made again.
pub const PARTITION_LOCK: i32 = 0x7773_5f70;

/// The schema version this library writes.
pub fn current_version() -> i32 {
    MIGRATIONS.len() as i32
}

/// Brings the schema up to [`current_version`] (under the migration lock);
/// returns the version found before.
pub async fn migrate(client: &mut Client) -> Result<i32> {
    let tx = client.transaction().await.map_err(db_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(db_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS ws_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(db_error)?;
    let row = tx.query_one("SELECT coalesce(max(version), 0) FROM ws_migrations", &[]).await.map_err(db_error)?;
    let found: i32 = row.get(0);
    if found > current_version() {
        return Err(Error::NewerFormat { file: "ws_migrations".into(), version: found as u32, supported: current_version() as u32 });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql).await.map_err(db_error)?;
        tx.execute("INSERT INTO ws_migrations (version) VALUES ($1)", &[&(i as i32 + 1)]).await.map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)?;
    Ok(found)
}
