//! The PostgreSQL backend: the ledger's contract on a shared database, for
//! engines on many hosts.
//!
//! [`PgLedger::connect`] opens a few connections (tokio-postgres: pipelined,
//! exact 64-bit integers), runs the schema migrations (`schema.rs`),
//! prepares the single-slot statements once per connection (`sql.rs`; the
//! batch statements are planned anew for each call, with its arrays), and
//! finds or creates the named window space with
//! its schedule, checked like a state directory's `schedule.json` (the same
//! schedule, or one that rolls it forward).
//!
//! Rules are the mmap ledger's: a claim is one statement with one winner,
//! fills, clears and renewals match the claim's version (the fencing
//! token), leases run on the database clock, admin transitions are recorded
//! with their actor and reason in the change feed (`changes.rs`), which is
//! also the audit trail. Refusals are the core's [`Error::SlotWrite`] with
//! the slot as a read right after the refusal saw it; a lost or refused
//! connection, or a session the server ended, is [`Error::Connection`], any
//! other database error [`Error::Database`].
//!
//! Every method is `async` and needs a Tokio runtime with I/O and time
//! drivers (the binding's).

mod changes;
mod retention;
mod schema;
mod sql;
mod verify;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio_postgres::{Client, NoTls, Row};

pub use changes::{Change, Cursor};
pub use retention::{PgRetention, PgRetentionRun};
pub use schema::{current_version as schema_version, MIGRATIONS};
pub use verify::{PgProblem, PgVerifyReport};

use crate::error::{Error, Result};
use crate::payload::{PayloadInput, PayloadRecord};
use crate::schedule::{Schedule, ScheduleRelation, WindowSpace};
use crate::slot::{SlotAddr, SlotSnapshot, SlotWriteError, Transition};
use crate::symbols::validate_symbol;
use crate::vocab::{SlotKind, SlotStatus, StoreKind};

/// Options of [`PgLedger::connect`].
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// The window space's name: one database holds many.
    pub space: String,
    /// Connections to open (statements are pipelined on each).
    pub connections: usize,
    /// Lease of a claim that names none, in ms.
    pub default_lease_ms: u64,
    /// Open the window space only if it exists, with its stored schedule
    /// (never created, never rolled forward): for operators' tools, where a
    /// mistyped name must not make a new, empty space.
    pub existing_only: bool,
    /// Windows per partition of the space's slots (`schema.rs`): used when
    /// the space is made; for a space that exists, a different value is
    /// refused. `None`: the stored value, or 4096 for a new space.
    pub partition_windows: Option<u32>,
}

/// Windows per partition of a space made with no `partition_windows`.
pub const DEFAULT_PARTITION_WINDOWS: u32 = 4096;

/// One connection and its prepared statements.
pub(crate) struct Conn {
    pub client: Client,
    pub st: sql::Statements,
    /// The single-slot statements of each partition this connection used.
    parts: Mutex<HashMap<i32, Arc<sql::SlotStatements>>>,
}

impl Conn {
    fn part(&self, part: i32) -> Option<Arc<sql::SlotStatements>> {
        self.parts.lock().ok().and_then(|p| p.get(&part).cloned())
    }

    fn forget(&self, part: i32) {
        if let Ok(mut p) = self.parts.lock() {
            p.remove(&part);
        }
    }
}

/// What a statement on one partition found.
enum InPart<T> {
    /// It ran.
    Ran(T),
    /// The partition is before the space's retention line: every slot there is Retired.
    Retired,
    /// The partition has not been made: every slot there is Empty.
    Absent,
}

/// The SQLSTATE of a row for `ws_slots` whose partition does not exist
/// (a check violation).
const NO_PARTITION: &str = "23514";

/// How many partitions' statements a connection keeps prepared before it
/// lets go of them all (engines work on a few recent partitions at a time).
const PARTS_PREPARED: usize = 64;

/// The SQLSTATE of a statement on a table that does not exist (a partition
/// not made yet, or dropped by retention since it was prepared).
fn is_undefined_table(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|d| d.code().code() == "42P01")
}

/// A slot before the retention line, as reads report it: Retired at version 0.
fn retired() -> SlotSnapshot {
    SlotSnapshot { status: SlotStatus::Retired, ..empty() }
}

/// A window space in a PostgreSQL database.
pub struct PgLedger {
    url: String,
    space_id: i32,
    /// Windows per partition of the space's slots.
    partition_windows: u32,
    /// The retention line as last read: it only moves forward, so every
    /// window before it is Retired whatever has happened since.
    known_line: AtomicU32,
    config: PgConfig,
    /// The pool; emptied (`None`) by [`close`](PgLedger::close), which ends the connections.
    conns: Vec<RwLock<Option<Arc<Conn>>>>,
    next: AtomicUsize,
    schedule: RwLock<Schedule>,
    symbols: Mutex<SymbolCache>,
    closed: AtomicBool,
    listener: Mutex<Option<Arc<Listener>>>,
    /// Held while a LISTEN connection is being opened: one at a time.
    listening: tokio::sync::Mutex<()>,
    /// What waiters wait on: counts notifications, and every LISTEN
    /// connection opened or lost (anything may have changed unseen then).
    wake: Arc<Wake>,
    /// The runtime `connect` ran on: `close` ends the LISTEN session there.
    runtime: tokio::runtime::Handle,
    /// What `connect` found: `created`, `same`, `rolledForward` or `behind`.
    pub schedule_relation: &'static str,
    /// The schema version found before `connect` migrated it (0: a new database).
    pub schema_found: i32,
}

#[derive(Default)]
struct SymbolCache {
    by_name: HashMap<String, u32>,
    by_id: HashMap<u32, String>,
}

/// A granted claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgClaim {
    pub window: u32,
    pub version: u32,
    pub lease_deadline_ms: u64,
}

/// One item of [`PgLedger::fill_many`].
#[derive(Debug, Clone, Copy)]
pub struct PgFill {
    pub at: SlotAddr,
    pub version: u32,
    pub payload_type: u8,
    pub payload_id: u64,
    pub checksum: u64,
}

/// The arrays of a batch fill, one element per item: symbol, kind, window,
/// version, payload type, payload id, checksum, store.
type FillColumns = (Vec<i32>, Vec<i16>, Vec<i32>, Vec<i32>, Vec<i16>, Vec<i64>, Vec<i64>, Vec<i16>);

/// Who made an admin change, and why.
#[derive(Debug, Clone, Default)]
pub struct PgActor {
    pub actor: String,
    pub reason: Option<String>,
}

/// A database error as the core's.
pub(crate) fn db_error(e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        // The server's last words before it closes the session: a lost
        // connection all the same (the session and its transaction are gone).
        Some(d) if is_session_ended(d.code().code()) => {
            Error::Connection { what: d.message().to_string(), sqlstate: Some(d.code().code().to_string()) }
        }
        Some(d) => Error::Database { what: d.message().to_string(), sqlstate: Some(d.code().code().to_string()) },
        None => Error::Connection { what: e.to_string(), sqlstate: None },
    }
}

/// SQLSTATEs with which the server ends a session: connection exceptions
/// (class 08), and administrator shutdown, crash shutdown, cannot connect now.
fn is_session_ended(sqlstate: &str) -> bool {
    sqlstate.starts_with("08") || matches!(sqlstate, "57P01" | "57P02" | "57P03")
}

/// How many times a statement that lost to a serialization failure or a
/// deadlock (`40001`, `40P01`) runs again before the error is returned.
const RETRIES: u32 = 8;

/// Runs `attempt` (one statement, its own transaction) again when the
/// server rolled it back for a serialization failure or a deadlock: the
/// rolled-back statement changed nothing, so running it again is the whole
/// remedy. Waits a little longer before each new attempt.
async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(Error::Database { sqlstate: Some(code), .. }) if (code == "40001" || code == "40P01") && tries < RETRIES => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(u64::from(tries) * 5)).await;
            }
            other => return other,
        }
    }
}

/// The slot of a row whose columns from `at` are status, version, payload_type, payload_id, checksum, lease_until.
fn snapshot_of(r: &Row, at: usize) -> SlotSnapshot {
    let status: i16 = r.get(at);
    SlotSnapshot {
        status: SlotStatus::from_u8(status as u8).unwrap_or(SlotStatus::Empty),
        version: r.get::<_, i32>(at + 1) as u32,
        payload_type: r.get::<_, i16>(at + 2) as u8,
        payload_id: r.get::<_, i64>(at + 3) as u64,
        checksum: r.get::<_, i64>(at + 4) as u64,
        lease_deadline_ms: r.get::<_, i64>(at + 5).max(0) as u64,
    }
}

fn empty() -> SlotSnapshot {
    SlotSnapshot { status: SlotStatus::Empty, version: 0, payload_type: 0, payload_id: 0, checksum: 0, lease_deadline_ms: 0 }
}

/// Opens one connection: session settings, then the statements.
async fn open(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(db_error)?;
    tokio::spawn(async move {
        // The connection ends when the client is dropped or the server goes
        // away; a statement in flight then fails with a connection error.
        let _ = connection.await;
    });
    client.batch_execute("SET application_name = 'window-space'").await.map_err(db_error)?;
    Ok(client)
}

async fn open_conn(url: &str) -> Result<Conn> {
    let client = open(url).await?;
    let st = sql::Statements::prepare(&client).await.map_err(db_error)?;
    Ok(Conn { client, st, parts: Mutex::new(HashMap::new()) })
}

fn refused(at: SlotAddr, refusal: SlotWriteError) -> Error {
    Error::SlotWrite { at, refusal }
}

fn i32_of(v: u32, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::invalid(format!("{what} {v} is past what the PostgreSQL backend stores (2^31 - 1)")))
}

fn lease_i64(ms: u64) -> Result<i64> {
    i64::try_from(ms).map_err(|_| Error::invalid(format!("leaseMs {ms} is too large")))
}

impl PgLedger {
    /// Connects, migrates, and opens (or creates) the window space `config.space` with `space`'s schedule.
    pub async fn connect(url: &str, space: WindowSpace, config: PgConfig) -> Result<Self> {
        let given = Schedule::new(space)?;
        if config.space.is_empty() || config.space.len() > 128 {
            return Err(Error::invalid("space must be 1 to 128 characters"));
        }
        let n = config.connections.clamp(1, 64);
        let mut admin = open(url).await?;
        let found = schema::migrate(&mut admin).await?;
        let text = given.to_json();
        if config.partition_windows == Some(0) {
            return Err(Error::invalid("partitionWindows must be at least 1"));
        }
        let width = i32_of(config.partition_windows.unwrap_or(DEFAULT_PARTITION_WINDOWS), "partitionWindows")?;
        if !config.existing_only {
            admin
                .execute(
                    "INSERT INTO ws_spaces (name, schedule, window_count, partition_windows) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
                    &[&config.space, &text, &i32_of(given.window_count(), "window count")?, &width],
                )
                .await
                .map_err(db_error)?;
        }
        // The schedule is checked and rolled forward under the row's lock.
        let tx = admin.transaction().await.map_err(db_error)?;
        let row = tx
            .query_opt("SELECT id, schedule, partition_windows FROM ws_spaces WHERE name = $1 FOR UPDATE", &[&config.space])
            .await
            .map_err(db_error)?;
        let Some(row) = row else {
            return Err(Error::invalid(format!("this database holds no window space named {:?}", config.space)));
        };
        let space_id: i32 = row.get(0);
        let stored_text: String = row.get(1);
        let partition_windows: i32 = row.get(2);
        if config.partition_windows.is_some() && partition_windows != width {
            return Err(Error::invalid(format!(
                "window space {:?} keeps {partition_windows} windows in each partition, fixed when it was made; partitionWindows {width} differs",
                config.space
            )));
        }
        let stored = Schedule::from_json(std::path::Path::new("ws_spaces.schedule"), &stored_text)?;
        let (schedule, relation) = if config.existing_only {
            (stored, "same")
        } else if stored_text == text {
            (given, "same")
        } else {
            match stored.relation_to(&given)? {
                ScheduleRelation::Same => (given, "same"),
                ScheduleRelation::Behind => (stored, "behind"),
                ScheduleRelation::RollsForward => {
                    tx.execute(
                        "UPDATE ws_spaces SET schedule = $2, window_count = $3 WHERE id = $1",
                        &[&space_id, &text, &i32_of(given.window_count(), "window count")?],
                    )
                    .await
                    .map_err(db_error)?;
                    (given, "rolledForward")
                }
            }
        };
        tx.commit().await.map_err(db_error)?;
        drop(admin);
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            conns.push(RwLock::new(Some(Arc::new(open_conn(url).await?))));
        }
        let relation = if found == 0 && relation == "same" { "created" } else { relation };
        Ok(Self {
            url: url.to_string(),
            space_id,
            partition_windows: partition_windows.max(1) as u32,
            known_line: AtomicU32::new(0),
            config,
            conns,
            next: AtomicUsize::new(0),
            schedule: RwLock::new(schedule),
            symbols: Mutex::new(SymbolCache::default()),
            closed: AtomicBool::new(false),
            listener: Mutex::new(None),
            listening: tokio::sync::Mutex::new(()),
            wake: Arc::new(Wake { seq: AtomicU64::new(0), notify: tokio::sync::Notify::new() }),
            runtime: tokio::runtime::Handle::current(),
            schedule_relation: relation,
            schema_found: found,
        })
    }

    /// The next connection (round robin); a lost one is opened again once.
    async fn conn(&self) -> Result<Arc<Conn>> {
        let poisoned = || Error::Internal { what: "connection lock poisoned".into() };
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        let c = self.conns[i].read().map_err(|_| poisoned())?.clone().ok_or(Error::Closed)?;
        if !c.client.is_closed() {
            return Ok(c);
        }
        let fresh = Arc::new(open_conn(&self.url).await?);
        let mut slot = self.conns[i].write().map_err(|_| poisoned())?;
        if slot.is_none() {
            return Err(Error::Closed);
        }
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    /// Runs a statement from its text (planned with this call's values) on
    /// the next connection, again after a deadlock or serialization failure.
    async fn query_text(&self, text: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<Vec<Row>> {
        retrying(|| async {
            let c = self.conn().await?;
            c.client.query(text, params).await.map_err(db_error)
        })
        .await
    }

    /// The partition of the space's slots that holds `window`.
    fn part_of(&self, window: u32) -> i32 {
        (window / self.partition_windows) as i32
    }

    /// The windows of partition `part`.
    fn part_windows(&self, part: i32) -> Range<u32> {
        let lo = u64::from(part as u32) * u64::from(self.partition_windows);
        let hi = lo + u64::from(self.partition_windows);
        lo.min(u64::from(u32::MAX)) as u32..hi.min(u64::from(u32::MAX)) as u32
    }

    fn part_table(&self, part: i32) -> String {
        format!("ws_slots_{}_{}", self.space_id, part)
    }

    /// The space's retention line: every window before it is Retired.
    pub async fn retired_before(&self) -> Result<u32> {
        let c = self.conn().await?;
        self.retired_before_on(&c.client).await
    }

    pub(crate) async fn retired_before_on(&self, client: &impl tokio_postgres::GenericClient) -> Result<u32> {
        let r = client.query_one("SELECT retired_before FROM ws_spaces WHERE id = $1", &[&self.space_id]).await.map_err(db_error)?;
        let line = r.get::<_, i32>(0).max(0) as u32;
        self.saw_line(line);
        Ok(line)
    }

    /// Notes a retention line read from the database.
    fn saw_line(&self, line: u32) {
        self.known_line.fetch_max(line, Ordering::Relaxed);
    }

    /// True when `window` is before a retention line this ledger has seen.
    fn known_retired(&self, window: u32) -> bool {
        window < self.known_line.load(Ordering::Relaxed)
    }

    /// A partition's statements on `c`, prepared when `c` first uses it;
    /// when it does not exist, it is made first if `create`, and otherwise
    /// reported Retired or Absent.
    async fn part_statements(&self, c: &Conn, part: i32, create: bool) -> Result<InPart<Arc<sql::SlotStatements>>> {
        if let Some(st) = c.part(part) {
            return Ok(InPart::Ran(st));
        }
        for _ in 0..3 {
            match sql::SlotStatements::prepare(&c.client, &self.part_table(part)).await {
                Ok(st) => {
                    let st = Arc::new(st);
                    if let Ok(mut parts) = c.parts.lock() {
                        if parts.len() >= PARTS_PREPARED {
                            parts.clear();
                        }
                        parts.insert(part, st.clone());
                    }
                    return Ok(InPart::Ran(st));
                }
                Err(e) if is_undefined_table(&e) => {
                    if !create {
                        let line = self.retired_before_on(&c.client).await?;
                        return Ok(if self.part_windows(part).end <= line { InPart::Retired } else { InPart::Absent });
                    }
                    let r = c.client.query_one("SELECT ws_slot_partition($1, $2)", &[&self.space_id, &part]).await.map_err(db_error)?;
                    if !r.get::<_, bool>(0) {
                        return Ok(InPart::Retired);
                    }
                }
                Err(e) => return Err(db_error(e)),
            }
        }
        Err(Error::Internal { what: format!("partition {} of ws_slots was made but is not there", self.part_table(part)) })
    }

    /// Runs `f` with partition `part`'s statements on the next connection
    /// ([`part_statements`](Self::part_statements)): again when the
    /// partition was dropped since they were prepared, and after a deadlock
    /// or serialization failure.
    async fn in_part<T, F, Fut>(&self, part: i32, create: bool, f: F) -> Result<InPart<T>>
    where
        F: Fn(Arc<Conn>, Arc<sql::SlotStatements>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    {
        retrying(|| async {
            let c = self.conn().await?;
            for _ in 0..3 {
                let st = match self.part_statements(&c, part, create).await? {
                    InPart::Ran(st) => st,
                    InPart::Retired => return Ok(InPart::Retired),
                    InPart::Absent => return Ok(InPart::Absent),
                };
                match f(c.clone(), st).await {
                    Ok(v) => return Ok(InPart::Ran(v)),
                    // Dropped by a retention run since it was prepared: look again.
                    Err(e) if is_undefined_table(&e) => c.forget(part),
                    Err(e) => return Err(db_error(e)),
                }
            }
            Err(Error::Internal { what: format!("partition {} of ws_slots keeps disappearing", self.part_table(part)) })
        })
        .await
    }

    /// Makes the partitions of `windows` that do not exist, none before the
    /// retention line; returns the part of `windows` from the line on.
    async fn make_parts(&self, windows: Range<u32>) -> Result<Range<u32>> {
        let c = self.conn().await?;
        'again: loop {
            let start = windows.start.max(self.retired_before_on(&c.client).await?);
            if start >= windows.end {
                return Ok(start..start.max(windows.end));
            }
            for part in self.part_of(start)..=self.part_of(windows.end - 1) {
                let r = c.client.query_one("SELECT ws_slot_partition($1, $2)", &[&self.space_id, &part]).await.map_err(db_error)?;
                if !r.get::<_, bool>(0) {
                    // A retention run moved the line meanwhile.
                    continue 'again;
                }
            }
            return Ok(start..windows.end);
        }
    }

    /// Closes every connection; later calls fail with [`Error::Closed`]. Idempotent.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for c in &self.conns {
            if let Ok(mut slot) = c.write() {
                // Statements in flight keep their connection until they end.
                slot.take();
            }
        }
        if let Some(l) = self.listener.lock().ok().and_then(|mut g| g.take()) {
            if let Some(client) = l.client.lock().ok().and_then(|mut c| c.take()) {
                self.end_listener(client);
            }
        }
        self.wake.wake();
    }

    /// Unregisters a LISTEN session, so that transitions stop notifying
    /// for it, then ends it (dropping the client).
    fn end_listener(&self, client: Client) {
        self.runtime.spawn(async move {
            let _ = client.batch_execute("DELETE FROM ws_listeners WHERE pid = pg_backend_pid()").await;
        });
    }

    /// Wakes every wait of this ledger in flight ([`wait_change`](Self::wait_change)
    /// returns; its caller reads again): for a waiter that stopped waiting.
    pub fn wake_waiters(&self) {
        self.wake.wake();
    }

    /// The schedule in force.
    pub fn schedule(&self) -> Schedule {
        self.schedule.read().map(|s| s.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Windows per partition of the space's slots.
    pub fn partition_windows(&self) -> u32 {
        self.partition_windows
    }

    /// The window space's name.
    pub fn space_name(&self) -> &str {
        &self.config.space
    }

    fn window_count(&self) -> u32 {
        self.schedule.read().map(|s| s.window_count()).unwrap_or(0)
    }

    /// Checks a window index, re-reading the window count once (another
    /// process may have rolled the schedule forward).
    async fn check_window(&self, window: u32) -> Result<()> {
        if window < self.window_count() {
            return Ok(());
        }
        let c = self.conn().await?;
        let row = c.client.query_one("SELECT schedule FROM ws_spaces WHERE id = $1", &[&self.space_id]).await.map_err(db_error)?;
        let text: String = row.get(0);
        let s = Schedule::from_json(std::path::Path::new("ws_spaces.schedule"), &text)?;
        if s.window_count() > self.window_count() {
            if let Ok(mut w) = self.schedule.write() {
                *w = s;
            }
        }
        self.schedule().check(window)
    }

    // ---- symbols ----------------------------------------------------------

    /// A symbol's id, adding the symbol if it is new.
    pub async fn resolve_symbol(&self, name: &str) -> Result<u32> {
        validate_symbol(name)?;
        if let Some(id) = self.cached_id(name) {
            return Ok(id);
        }
        let c = self.conn().await?;
        let name_s = name.to_string();
        loop {
            if let Some(r) = c.client.query_opt(&c.st.add_symbol, &[&self.space_id, &name_s]).await.map_err(db_error)? {
                return Ok(self.remember(name, r.get::<_, i32>(0) as u32));
            }
            // Another engine added it: its row is committed once our insert
            // returned, but maybe after our statement's snapshot.
            if let Some(r) = c.client.query_opt(&c.st.symbol_id, &[&self.space_id, &name_s]).await.map_err(db_error)? {
                return Ok(self.remember(name, r.get::<_, i32>(0) as u32));
            }
        }
    }

    /// A symbol's id, without adding it.
    pub async fn symbol_id(&self, name: &str) -> Result<u32> {
        if let Some(id) = self.cached_id(name) {
            return Ok(id);
        }
        let c = self.conn().await?;
        match c.client.query_opt(&c.st.symbol_id, &[&self.space_id, &name.to_string()]).await.map_err(db_error)? {
            Some(r) => Ok(self.remember(name, r.get::<_, i32>(0) as u32)),
            None => Err(Error::UnknownSymbol { symbol: name.to_string() }),
        }
    }

    /// A symbol's name.
    pub async fn symbol_name(&self, id: u32) -> Result<String> {
        if let Some(n) = self.symbols.lock().ok().and_then(|s| s.by_id.get(&id).cloned()) {
            return Ok(n);
        }
        let c = self.conn().await?;
        let id_i = i32::try_from(id).map_err(|_| Error::UnknownSymbol { symbol: format!("id {id}") })?;
        match c.client.query_opt(&c.st.symbol_name, &[&self.space_id, &id_i]).await.map_err(db_error)? {
            Some(r) => {
                let n: String = r.get(0);
                self.remember(&n, id);
                Ok(n)
            }
            None => Err(Error::UnknownSymbol { symbol: format!("id {id}") }),
        }
    }

    /// Every symbol, by id.
    pub async fn symbols(&self) -> Result<Vec<(u32, String)>> {
        let c = self.conn().await?;
        let rows =
            c.client.query("SELECT id, name FROM ws_symbols WHERE space = $1 ORDER BY id", &[&self.space_id]).await.map_err(db_error)?;
        Ok(rows.iter().map(|r| (r.get::<_, i32>(0) as u32, r.get::<_, String>(1))).collect())
    }

    fn cached_id(&self, name: &str) -> Option<u32> {
        self.symbols.lock().ok().and_then(|s| s.by_name.get(name).copied())
    }

    fn remember(&self, name: &str, id: u32) -> u32 {
        if let Ok(mut s) = self.symbols.lock() {
            s.by_name.insert(name.to_string(), id);
            s.by_id.insert(id, name.to_string());
        }
        id
    }

    /// Checks that a symbol id exists and a window is in range.
    async fn check_addr(&self, at: SlotAddr) -> Result<()> {
        self.symbol_name(at.symbol).await?;
        self.check_window(at.window).await
    }

    fn key(&self, at: SlotAddr) -> Result<(i32, i32, i16, i32)> {
        Ok((self.space_id, i32_of(at.symbol, "symbol id")?, at.kind.code() as i16, i32_of(at.window, "window index")?))
    }

    // ---- engine transitions ---------------------------------------------

    /// Reads one slot (Empty when it has no row).
    pub async fn get_slot(&self, at: SlotAddr) -> Result<SlotSnapshot> {
        self.check_addr(at).await?;
        self.read_slot(at).await
    }

    async fn read_slot(&self, at: SlotAddr) -> Result<SlotSnapshot> {
        if self.known_retired(at.window) {
            return Ok(retired());
        }
        let (sp, sy, k, w) = self.key(at)?;
        let got = self
            .in_part(self.part_of(at.window), false, |c, st| async move { c.client.query_opt(&st.get_slot, &[&sp, &sy, &k, &w]).await });
        Ok(match got.await? {
            InPart::Ran(r) => r.map(|r| snapshot_of(&r, 0)).unwrap_or_else(empty),
            InPart::Retired => retired(),
            InPart::Absent => empty(),
        })
    }

    fn lease(&self, lease_ms: Option<u64>) -> Result<i64> {
        lease_i64(lease_ms.unwrap_or(self.config.default_lease_ms))
    }

    /// Claims a slot: `Empty | Cleared → Pending`, or takes over an expired
    /// lease. Refusals: busy, filled, retired.
    pub async fn claim(&self, at: SlotAddr, lease_ms: Option<u64>) -> Result<PgClaim> {
        self.check_addr(at).await?;
        let lease = self.lease(lease_ms)?;
        let (sp, sy, k, w) = self.key(at)?;
        let part = self.part_of(at.window);
        if self.known_retired(at.window) {
            return Err(refused(at, SlotWriteError::SlotRetired { current: retired() }));
        }
        loop {
            let got = self.in_part(part, true, |c, st| async move { c.client.query_opt(&st.claim, &[&sp, &sy, &k, &w, &lease]).await });
            let current = match got.await? {
                InPart::Ran(Some(r)) => {
                    return Ok(PgClaim {
                        window: at.window,
                        version: r.get::<_, i32>(0) as u32,
                        lease_deadline_ms: r.get::<_, i64>(1) as u64,
                    })
                }
                InPart::Retired => retired(),
                InPart::Ran(None) | InPart::Absent => self.read_slot(at).await?,
            };
            let refusal = match current.status {
                SlotStatus::Filled => SlotWriteError::SlotFilled { current },
                SlotStatus::Retired => SlotWriteError::SlotRetired { current },
                SlotStatus::Pending => SlotWriteError::SlotBusy { current },
                // Cleared (or gone) since the refusal: claimable now, try again.
                SlotStatus::Empty | SlotStatus::Cleared => continue,
            };
            // A busy slot whose lease ran out between the two reads is
            // reported busy with that deadline: the caller may try again.
            return Err(refused(at, refusal));
        }
    }

    /// The refusal of a transition that matched no row: the slot as read now.
    async fn conflict(&self, at: SlotAddr, expected_version: u32) -> Error {
        match self.read_slot(at).await {
            Ok(current) => refused(at, SlotWriteError::VersionConflict { expected_version, current }),
            Err(e) => e,
        }
    }

    /// Extends a live claim's lease; returns the new deadline.
    pub async fn renew(&self, at: SlotAddr, version: u32, lease_ms: Option<u64>) -> Result<u64> {
        self.check_addr(at).await?;
        let lease = self.lease(lease_ms)?;
        let (sp, sy, k, w) = self.key(at)?;
        let v = version as i32;
        let got = self.in_part(self.part_of(at.window), false, |c, st| async move {
            c.client.query_opt(&st.renew, &[&sp, &sy, &k, &w, &v, &lease]).await
        });
        match got.await? {
            InPart::Ran(Some(r)) => Ok(r.get::<_, i64>(0) as u64),
            _ => Err(self.conflict(at, version).await),
        }
    }

    /// Fills a slot: `Pending(version) → Filled(version + 1)`; returns the new version.
    pub async fn fill(&self, f: PgFill) -> Result<u32> {
        let at = f.at;
        self.check_addr(at).await?;
        let (sp, sy, k, w) = self.key(at)?;
        let v = f.version as i32;
        let pt = i16::from(f.payload_type);
        let pid = i64::try_from(f.payload_id).map_err(|_| Error::invalid("payloadId too large"))?;
        let ck = f.checksum as i64;
        let store = at.kind.store().code() as i16;
        let got = self.in_part(self.part_of(at.window), false, |c, st| async move {
            c.client.query_opt(&st.fill, &[&sp, &sy, &k, &w, &v, &pt, &pid, &ck, &store]).await
        });
        if let InPart::Ran(Some(r)) = got.await? {
            return Ok(r.get::<_, i32>(0) as u32);
        }
        let current = self.read_slot(at).await?;
        if current.status == SlotStatus::Pending && current.version == f.version {
            return Err(self.unknown_payload(at.kind.store(), f.payload_id).await);
        }
        Err(refused(at, SlotWriteError::VersionConflict { expected_version: f.version, current }))
    }

    async fn unknown_payload(&self, store: StoreKind, payload_id: u64) -> Error {
        let length = match self.conn().await {
            Ok(c) => c
                .client
                .query_one("SELECT count(*) FROM ws_payloads WHERE space = $1 AND store = $2", &[&self.space_id, &(store.code() as i16)])
                .await
                .map(|r| r.get::<_, i64>(0) as u64)
                .unwrap_or(0),
            Err(e) => return e,
        };
        Error::UnknownPayload { store: store.file_name(), payload_id, length }
    }

    /// The claim holder gives the slot back: `Pending(version) → Cleared(version + 1)`.
    pub async fn clear(&self, at: SlotAddr, version: u32) -> Result<u32> {
        self.check_addr(at).await?;
        let (sp, sy, k, w) = self.key(at)?;
        let v = version as i32;
        let got = self
            .in_part(self.part_of(at.window), false, |c, st| async move { c.client.query_opt(&st.clear, &[&sp, &sy, &k, &w, &v]).await });
        match got.await? {
            InPart::Ran(Some(r)) => Ok(r.get::<_, i32>(0) as u32),
            _ => Err(self.conflict(at, version).await),
        }
    }

    /// Claims up to `count` windows `>= start` of one symbol and kind,
    /// skipping Filled, Retired and live Pending slots; in window order.
    pub async fn claim_next_unfilled(
        &self,
        symbol: u32,
        start: u32,
        kind: SlotKind,
        count: u32,
        lease_ms: Option<u64>,
    ) -> Result<Vec<PgClaim>> {
        self.symbol_name(symbol).await?;
        let end = self.window_count();
        if start > end {
            self.check_window(start).await?;
        }
        let lease = self.lease(lease_ms)?;
        let (sp, sy, k) = (self.space_id, i32_of(symbol, "symbol id")?, kind.code() as i16);
        let mut out: Vec<PgClaim> = Vec::new();
        // Windows are scanned in chunks a little wider than what is still
        // needed, each within one partition: the statement's candidate list
        // then stays short however many windows the schedule has.
        // Nothing before a retention line seen is claimable.
        let mut lo = start.max(self.known_line.load(Ordering::Relaxed));
        while (out.len() as u32) < count && lo < end {
            let need = count - out.len() as u32;
            let part = self.part_of(lo);
            let part_end = self.part_windows(part).end;
            let hi = end.min(part_end).min(lo.saturating_add(need.saturating_mul(2).max(256)));
            let (from, to, need_i64) = (i32_of(lo, "window index")?, i32_of(hi, "window index")?, i64::from(need));
            let got = self.in_part(part, true, |c, st| async move {
                c.client.query(st.claim_next.as_str(), &[&sp, &sy, &k, &from, &to, &need_i64, &lease]).await
            });
            let rows = match got.await? {
                InPart::Ran(rows) => rows,
                // Before the retention line: nothing there is claimable, nor
                // in any partition before the line.
                InPart::Retired | InPart::Absent => {
                    lo = part_end.max(self.retired_before().await?);
                    continue;
                }
            };
            let candidates: i64 = rows.first().map(|r| r.get(0)).unwrap_or(0);
            for r in &rows {
                if let Some(w) = r.get::<_, Option<i32>>(1) {
                    out.push(PgClaim {
                        window: w as u32,
                        version: r.get::<_, i32>(2) as u32,
                        lease_deadline_ms: r.get::<_, i64>(3) as u64,
                    });
                }
            }
            // Fewer candidates than needed: the chunk holds no other
            // claimable window (a candidate not won is another claimer's),
            // so the next chunk is read. Otherwise it may hold more, and is
            // read again.
            if candidates < i64::from(need) {
                lo = hi;
            }
        }
        out.sort_by_key(|c| c.window);
        Ok(out)
    }

    /// Fills many slots in one statement; each item succeeds (its new
    /// version) or is refused on its own.
    pub async fn fill_many(&self, items: &[PgFill]) -> Result<Vec<Result<u32>>> {
        // In key order, by partition: two batches that share slots then lock
        // them in the same order wherever the plan walks the arrays in
        // order; a deadlock that happens all the same is retried
        // (`retrying`). One statement for each partition the items are in.
        for f in items {
            self.check_addr(f.at).await?;
        }
        let mut sorted: Vec<&PgFill> = items.iter().collect();
        sorted.sort_by_key(|f| (self.part_of(f.at.window), f.at.symbol, f.at.kind.code(), f.at.window));
        let mut rows = Vec::new();
        for group in sorted.chunk_by(|a, b| self.part_of(a.at.window) == self.part_of(b.at.window)) {
            let mut cols = FillColumns::default();
            for f in group {
                cols.0.push(i32_of(f.at.symbol, "symbol id")?);
                cols.1.push(f.at.kind.code() as i16);
                cols.2.push(i32_of(f.at.window, "window index")?);
                cols.3.push(f.version as i32);
                cols.4.push(i16::from(f.payload_type));
                cols.5.push(i64::try_from(f.payload_id).map_err(|_| Error::invalid("payloadId too large"))?);
                cols.6.push(f.checksum as i64);
                cols.7.push(f.at.kind.store().code() as i16);
            }
            let (sp, cols) = (self.space_id, &cols);
            let got = self.in_part(self.part_of(group[0].at.window), false, |c, st| async move {
                c.client.query(st.fill_many.as_str(), &[&sp, &cols.0, &cols.1, &cols.2, &cols.3, &cols.4, &cols.5, &cols.6, &cols.7]).await
            });
            // A partition that is not there holds no Pending slot: its items are refused below.
            if let InPart::Ran(r) = got.await? {
                rows.extend(r);
            }
        }
        // A row filled is credited to the item it matched: its slot, the
        // version before the fill, its payload id and checksum (one slot may
        // be named by several items, with stale versions among them).
        let mut done: HashMap<(u32, u32, u32, u32, i64, i64), u32> = HashMap::new();
        for r in &rows {
            let version = r.get::<_, i32>(3) as u32;
            let key = (
                r.get::<_, i32>(0) as u32,
                r.get::<_, i16>(1) as u32,
                r.get::<_, i32>(2) as u32,
                version.wrapping_sub(1),
                r.get::<_, i64>(4),
                r.get::<_, i64>(5),
            );
            done.insert(key, version);
        }
        let mut out = Vec::with_capacity(items.len());
        for f in items {
            // Both were checked to fit when the columns were built.
            let key = (f.at.symbol, f.at.kind.code(), f.at.window, f.version, f.payload_id as i64, f.checksum as i64);
            if let Some(v) = done.remove(&key) {
                out.push(Ok(v));
                continue;
            }
            let current = self.read_slot(f.at).await?;
            if current.status == SlotStatus::Pending && current.version == f.version {
                return Err(self.unknown_payload(f.at.kind.store(), f.payload_id).await);
            }
            out.push(Err(refused(f.at, SlotWriteError::VersionConflict { expected_version: f.version, current })));
        }
        Ok(out)
    }

    /// The first window `>= start` whose slot is neither Filled nor Retired; `None` past the end.
    pub async fn next_unfilled_window(&self, symbol: u32, start: u32, kind: SlotKind) -> Result<Option<u32>> {
        self.symbol_name(symbol).await?;
        let end = self.window_count();
        if start >= end {
            if start > end {
                self.check_window(start).await?;
            }
            return Ok(None);
        }
        let (sy, k, from) = (i32_of(symbol, "symbol id")?, kind.code() as i16, i64::from(start));
        // A read through `ws_slots` locks every partition its plan names, so
        // it may be the deadlock victim of a retention step: run again.
        let r = retrying(|| async {
            let c = self.conn().await?;
            c.client.query_one(&c.st.next_unfilled, &[&self.space_id, &sy, &k, &from]).await.map_err(db_error)
        })
        .await?;
        let gap: Option<i64> = r.get(0);
        let done: i64 = r.get(1);
        let from: i64 = r.get(2);
        let first = gap.unwrap_or(from + done);
        Ok(if first < i64::from(end) { Some(first as u32) } else { None })
    }

    /// The written slots of windows `windows` of one symbol, of `kinds`:
    /// (window, kind, slot), and the retention line, before which every
    /// slot is Retired (and has no row).
    pub async fn rows(&self, symbol: u32, windows: Range<u32>, kinds: &[SlotKind]) -> Result<(Vec<(u32, SlotKind, SlotSnapshot)>, u32)> {
        self.symbol_name(symbol).await?;
        if windows.end > windows.start {
            self.check_window(windows.end - 1).await?;
        }
        let ks: Vec<i16> = kinds.iter().map(|k| k.code() as i16).collect();
        let (sy, from, to) = (i32_of(symbol, "symbol id")?, i32_of(windows.start, "window")?, i32_of(windows.end, "window")?);
        let (rows, line) = retrying(|| async {
            let c = self.conn().await?;
            tokio::try_join!(
                async { c.client.query(&c.st.rows, &[&self.space_id, &sy, &from, &to, &ks]).await.map_err(db_error) },
                self.retired_before_on(&c.client),
            )
        })
        .await?;
        let mut out: Vec<(u32, SlotKind, SlotSnapshot)> = Vec::with_capacity(rows.len());
        for r in &rows {
            let k: i16 = r.get(1);
            let kind = SlotKind::from_code(k as u32).ok_or_else(|| Error::Internal { what: format!("slot kind {k} in ws_slots") })?;
            out.push((r.get::<_, i32>(0) as u32, kind, snapshot_of(r, 2)));
        }
        Ok((out, line))
    }

    /// Slot counts per kind, indexed by `SlotStatus as usize` (Retired
    /// includes every slot before the retention line; Empty: the slots of
    /// every other symbol and window that have no row).
    pub async fn slot_metrics(&self) -> Result<Vec<(SlotKind, [u64; 5])>> {
        let p: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&self.space_id];
        let (rows, syms) = retrying(|| async {
            let c = self.conn().await?;
            tokio::try_join!(
                c.client.query(&c.st.metrics, &p),
                c.client.query_one(
                    "SELECT (SELECT count(*) FROM ws_symbols WHERE space = $1), (SELECT retired_before FROM ws_spaces WHERE id = $1)",
                    &p
                ),
            )
            .map_err(db_error)
        })
        .await?;
        let symbols = syms.get::<_, i64>(0) as u64;
        let total = symbols * u64::from(self.window_count());
        let before_line = symbols * syms.get::<_, i32>(1).max(0) as u64;
        let mut out: Vec<(SlotKind, [u64; 5])> = SlotKind::ALL.iter().map(|&k| (k, [0u64; 5])).collect();
        for r in &rows {
            let (k, s, n): (i16, i16, i64) = (r.get(0), r.get(1), r.get(2));
            if let Some(e) = out.iter_mut().find(|e| e.0.code() == k as u32) {
                if (1..5).contains(&s) {
                    e.1[s as usize] = n as u64;
                }
            }
        }
        for e in &mut out {
            e.1[SlotStatus::Retired as usize] += before_line;
            e.1[0] = total.saturating_sub(e.1[1..].iter().sum());
        }
        Ok(out)
    }

    // ---- payloads -------------------------------------------------------

    /// Appends a payload record to `store`; returns its id (unique and increasing, not dense).
    pub async fn append_payload(&self, store: StoreKind, p: &PayloadInput) -> Result<PayloadRecord> {
        if p.slot_kind.store() != store {
            return Err(Error::invalid(format!(
                "slot kind {} records into {}, not {}",
                p.slot_kind.name(),
                p.slot_kind.store().name(),
                store.name()
            )));
        }
        self.check_addr(SlotAddr::new(p.symbol_id, p.window_idx, p.slot_kind)).await?;
        let c = self.conn().await?;
        let r = c
            .client
            .query_one(
                &c.st.append,
                &[
                    &self.space_id,
                    &(store.code() as i16),
                    &i32_of(p.symbol_id, "symbol id")?,
                    &i32_of(p.window_idx, "window index")?,
                    &(p.slot_kind.code() as i16),
                    &i16::from(p.payload_type),
                    &p.uri,
                    &(p.checksum as i64),
                    &i64::try_from(p.size).map_err(|_| Error::invalid("size too large"))?,
                ],
            )
            .await
            .map_err(db_error)?;
        Ok(PayloadRecord {
            payload_id: r.get::<_, i64>(0) as u64,
            symbol_id: p.symbol_id,
            window_idx: p.window_idx,
            slot_kind: p.slot_kind.code() as u8,
            payload_type: p.payload_type,
            checksum: p.checksum,
            size: p.size,
            created_at_ns: r.get::<_, i64>(1) as u64,
            uri: p.uri.clone(),
        })
    }

    /// A payload record by id.
    pub async fn get_payload(&self, store: StoreKind, payload_id: u64) -> Result<PayloadRecord> {
        let id = i64::try_from(payload_id).map_err(|_| Error::invalid("payloadId too large"))?;
        let c = self.conn().await?;
        match c.client.query_opt(&c.st.get_payload, &[&self.space_id, &(store.code() as i16), &id]).await.map_err(db_error)? {
            Some(r) => Ok(PayloadRecord {
                payload_id: r.get::<_, i64>(0) as u64,
                symbol_id: r.get::<_, i32>(1) as u32,
                window_idx: r.get::<_, i32>(2) as u32,
                slot_kind: r.get::<_, i16>(3) as u8,
                payload_type: r.get::<_, i16>(4) as u8,
                uri: r.get(5),
                checksum: r.get::<_, i64>(6) as u64,
                size: r.get::<_, i64>(7) as u64,
                created_at_ns: r.get::<_, i64>(8) as u64,
            }),
            None => Err(self.unknown_payload(store, payload_id).await),
        }
    }

    // ---- admin ----------------------------------------------------------

    /// Runs an admin statement built by [`sql::recorded`] with `who`: its
    /// changes carry the actor, `action` and the reason (the parameters
    /// after the statement's own).
    async fn admin(
        &self,
        who: &PgActor,
        action: &str,
        written: &str,
        select: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let n = params.len();
        let columns = format!("nullif(${}::text, ''), ${}::text, nullif(${}::text, '')", n + 1, n + 2, n + 3);
        let sql = sql::recorded(written, &columns, select);
        let reason = who.reason.clone().unwrap_or_default();
        let action = action.to_string();
        let mut all: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.to_vec();
        all.extend([&who.actor as &(dyn tokio_postgres::types::ToSql + Sync), &action, &reason]);
        self.query_text(&sql, &all).await
    }

    /// Admin: any status but Retired → Cleared (Empty and Cleared stay as they are).
    pub async fn force_clear(&self, at: SlotAddr, who: &PgActor) -> Result<Transition> {
        self.check_addr(at).await?;
        if at.window < self.retired_before().await? {
            return Err(refused(at, SlotWriteError::SlotRetired { current: retired() }));
        }
        let (sp, sy, k, w) = self.key(at)?;
        let rows = self
            .admin(
                who,
                "forceClear",
                &format!(
                    "old AS (SELECT status, version FROM ws_slots WHERE space = $1 AND symbol = $2 AND kind = $3 AND window_idx = $4 FOR UPDATE),
                     written AS (UPDATE ws_slots s SET status = 3, version = s.version + 1, lease_until = 0, payload_type = 0, payload_id = 0, checksum = 0,
                             change_ord = {}
                         FROM old WHERE s.space = $1 AND s.symbol = $2 AND s.kind = $3 AND s.window_idx = $4 AND old.status IN (1, 2)
                         RETURNING s.*)",
                    sql::NEXT_ORD
                ),
                &format!("SELECT old.status, old.version, (SELECT version FROM written), {} FROM old", sql::NOTIFIED),
                &[&sp, &sy, &k, &w],
            )
            .await?;
        self.admin_outcome(at, rows.first(), SlotStatus::Cleared)
    }

    /// Admin: any status → Retired (terminal).
    pub async fn retire(&self, at: SlotAddr, who: &PgActor) -> Result<Transition> {
        self.check_addr(at).await?;
        let (sp, sy, k, w) = self.key(at)?;
        let written = format!(
            "old AS (SELECT status, version FROM ws_slots WHERE space = $1 AND symbol = $2 AND kind = $3 AND window_idx = $4 FOR UPDATE),
             upd AS (UPDATE ws_slots s SET status = 4, version = s.version + 1, lease_until = 0, payload_type = 0, payload_id = 0, checksum = 0,
                     change_ord = {}
                 FROM old WHERE s.space = $1 AND s.symbol = $2 AND s.kind = $3 AND s.window_idx = $4 AND old.status <> 4
                 RETURNING s.*),
             ins AS (INSERT INTO ws_slots AS s (space, symbol, kind, window_idx, status, version, change_ord)
                 SELECT $1, $2, $3, $4, 4, 1, pg_current_xact_id() WHERE NOT EXISTS (SELECT 1 FROM old)
                 ON CONFLICT DO NOTHING RETURNING s.*),
             written AS (SELECT * FROM upd UNION ALL SELECT * FROM ins)",
            sql::NEXT_ORD
        );
        let select = format!(
            "SELECT old.status, old.version, (SELECT version FROM upd), {n} FROM old
             UNION ALL SELECT 0::int2, 0, ins.version, {n} FROM ins",
            n = sql::NOTIFIED
        );
        loop {
            if self.make_parts(at.window..at.window + 1).await?.is_empty() {
                // Before the retention line: Retired already.
                return Ok(Transition { from: SlotStatus::Retired, to: SlotStatus::Retired, version: 0 });
            }
            let rows = match self.admin(who, "retire", &written, &select, &[&sp, &sy, &k, &w]).await {
                // Its partition was dropped by a retention run since it was made: decide again.
                Err(Error::Database { sqlstate: Some(code), .. }) if code == NO_PARTITION => continue,
                r => r?,
            };
            if rows.is_empty() {
                // A claim created the row after our look: decide again.
                continue;
            }
            return self.admin_outcome(at, rows.first(), SlotStatus::Retired);
        }
    }

    fn admin_outcome(&self, at: SlotAddr, row: Option<&Row>, to: SlotStatus) -> Result<Transition> {
        let Some(r) = row else {
            // No row: Empty, which a force-clear leaves as it is.
            return Ok(Transition { from: SlotStatus::Empty, to: SlotStatus::Empty, version: 0 });
        };
        let from = SlotStatus::from_u8(r.get::<_, i16>(0) as u8).unwrap_or(SlotStatus::Empty);
        let old_version = r.get::<_, i32>(1) as u32;
        match r.get::<_, Option<i32>>(2) {
            Some(v) => Ok(Transition { from, to, version: v as u32 }),
            None if from == SlotStatus::Retired && to == SlotStatus::Cleared => {
                let current = SlotSnapshot { status: SlotStatus::Retired, version: old_version, ..empty() };
                Err(refused(at, SlotWriteError::SlotRetired { current }))
            }
            None => Ok(Transition { from, to: from, version: old_version }),
        }
    }

    /// Admin: force-clears windows `windows` (Pending and Filled slots; Retired skipped); returns how many changed.
    pub async fn force_clear_range(&self, symbol: u32, windows: Range<u32>, kind: SlotKind, who: &PgActor) -> Result<u64> {
        self.check_range(symbol, &windows).await?;
        let rows = self
            .admin(
                who,
                "forceClearRange",
                &format!(
                    "written AS (UPDATE ws_slots s SET status = 3, version = s.version + 1, lease_until = 0, payload_type = 0, payload_id = 0, checksum = 0,
                         change_ord = {}
                     WHERE s.space = $1 AND s.symbol = $2 AND s.kind = $3 AND s.window_idx >= $4 AND s.window_idx < $5 AND s.status IN (1, 2)
                     RETURNING s.*)",
                    sql::NEXT_ORD
                ),
                &format!("SELECT count(*), {} FROM written", sql::NOTIFIED),
                &[&self.space_id, &i32_of(symbol, "symbol id")?, &(kind.code() as i16), &(windows.start as i32), &(windows.end as i32)],
            )
            .await?;
        Ok(rows.first().map(|r| r.get::<_, i64>(0) as u64).unwrap_or(0))
    }

    /// Admin: retires windows `windows`; returns how many changed.
    pub async fn retire_range(&self, symbol: u32, windows: Range<u32>, kind: SlotKind, who: &PgActor) -> Result<u64> {
        self.check_range(symbol, &windows).await?;
        loop {
            // Windows before the retention line are Retired already.
            let windows = self.make_parts(windows.clone()).await?;
            if windows.is_empty() {
                return Ok(0);
            }
            let rows = self
            .admin(
                who,
                "retireRange",
                &format!(
                    "written AS (INSERT INTO ws_slots AS s (space, symbol, kind, window_idx, status, version, change_ord)
                     SELECT $1, $2, $3, w, 4, 1, pg_current_xact_id() FROM generate_series($4::int4, $5::int4 - 1) AS g(w)
                     ON CONFLICT (space, symbol, kind, window_idx) DO UPDATE
                     SET status = 4, version = s.version + 1, lease_until = 0, payload_type = 0, payload_id = 0, checksum = 0, change_ord = {}
                     WHERE s.status <> 4
                     RETURNING s.*)",
                    sql::NEXT_ORD
                ),
                &format!("SELECT count(*), {} FROM written", sql::NOTIFIED),
                &[&self.space_id, &i32_of(symbol, "symbol id")?, &(kind.code() as i16), &(windows.start as i32), &(windows.end as i32)],
            )
            .await;
            match rows {
                // A partition was dropped by a retention run since it was made: again.
                Err(Error::Database { sqlstate: Some(code), .. }) if code == NO_PARTITION => continue,
                r => return Ok(r?.first().map(|r| r.get::<_, i64>(0) as u64).unwrap_or(0)),
            }
        }
    }

    async fn check_range(&self, symbol: u32, windows: &Range<u32>) -> Result<()> {
        if windows.start > windows.end {
            return Err(Error::invalid(format!("window range {}..{} is reversed", windows.start, windows.end)));
        }
        self.symbol_name(symbol).await?;
        if windows.end > windows.start {
            self.check_window(windows.end - 1).await?;
        }
        Ok(())
    }

    // ---- change feed ----------------------------------------------------

    /// Up to `limit` changes after `after` (see `changes.rs` for why none is ever skipped).
    pub async fn changes(&self, after: Cursor, limit: u32) -> Result<Vec<Change>> {
        let c = self.conn().await?;
        changes::read(&c, self.space_id, after, i64::from(limit.max(1))).await
    }

    /// The position after the newest change that is final now: a watch from
    /// here sees only what happens later.
    pub async fn changes_head(&self) -> Result<Cursor> {
        let c = self.conn().await?;
        let r = c
            .client
            .query_one(
                "SELECT coalesce(max(ord)::text, '0'), coalesce(max(id), 0) FROM ws_changes
                 WHERE space = $1 AND ord < pg_snapshot_xmin(pg_current_snapshot())
                   AND ord = (SELECT max(ord) FROM ws_changes WHERE space = $1 AND ord < pg_snapshot_xmin(pg_current_snapshot()))",
                &[&self.space_id],
            )
            .await
            .map_err(db_error)?;
        let ord: String = r.get(0);
        Ok(Cursor { ord: ord.parse().unwrap_or(0), id: r.get(1) })
    }

    /// Waits until a notification on `ws_changes` arrives after the
    /// notification count `after` (returned by an earlier call), or
    /// `timeout_ms` passes: the polling backstop, for a notification that
    /// came before its changes were final, and for servers or proxies
    /// without LISTEN. Returns the notification count.
    pub async fn wait_change(&self, after: u64, timeout_ms: u64) -> Result<u64> {
        use std::time::Duration;
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let notified = self.wake.notify.notified();
        if self.listener().await.is_none() {
            let _ = tokio::time::timeout(Duration::from_millis(timeout_ms), notified).await;
            return Ok(after);
        }
        let seen = self.wake.seq.load(Ordering::Acquire);
        if seen != after {
            return Ok(seen);
        }
        let _ = tokio::time::timeout(Duration::from_millis(timeout_ms), notified).await;
        Ok(self.wake.seq.load(Ordering::Acquire))
    }

    /// The LISTEN connection, opened on first use and again after it was
    /// lost (one at a time); `None` where LISTEN fails.
    async fn listener(&self) -> Option<Arc<Listener>> {
        let live = || self.listener.lock().ok().and_then(|g| g.clone()).filter(|l| l.alive.load(Ordering::Acquire));
        if let Some(l) = live() {
            return Some(l);
        }
        let _opening = self.listening.lock().await;
        if let Some(l) = live() {
            return Some(l);
        }
        let (client, mut connection) = tokio_postgres::connect(&self.url, NoTls).await.ok()?;
        let alive = Arc::new(AtomicBool::new(true));
        let (wake, task_alive) = (self.wake.clone(), alive.clone());
        let space = self.space_id.to_string();
        // Drives the connection: statements' replies and notifications (of
        // this space: the payload is the space's id). Dropping the
        // `Listener` (its client) ends the connection, and with it the task.
        tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) if n.payload() == space => wake.wake(),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                }
            }
            task_alive.store(false, Ordering::Release);
            wake.wake();
        });
        if client.batch_execute("LISTEN ws_changes").await.is_err() {
            return None;
        }
        // Transitions notify only spaces with a listener: register this
        // session (after LISTEN, so a transition that sees the row has a
        // listener to reach), and drop the rows of sessions that ended.
        let register = format!(
            "DELETE FROM ws_listeners l WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.pid);
             INSERT INTO ws_listeners (space, pid) VALUES ({}, pg_backend_pid()) ON CONFLICT DO NOTHING",
            self.space_id
        );
        if client.batch_execute(&register).await.is_err() {
            return None;
        }
        let l = {
            let Ok(mut g) = self.listener.lock() else { return None };
            // Closed while this session was being opened: `close` did not
            // see it, so it is ended here (under the lock `close` takes).
            if self.closed.load(Ordering::Acquire) {
                drop(g);
                self.end_listener(client);
                return None;
            }
            g.insert(Arc::new(Listener { alive, client: Mutex::new(Some(client)) })).clone()
        };
        // Changes made while no session listened were not notified: every
        // waiter looks again.
        self.wake.wake();
        Some(l)
    }
}

/// The LISTEN connection of a ledger.
struct Listener {
    /// Cleared by the connection's task when the connection ends.
    alive: Arc<AtomicBool>,
    /// Dropping the client ends the connection (and its task).
    client: Mutex<Option<Client>>,
}

/// What waiters of one ledger wait on.
struct Wake {
    /// Raised by every notification of the space, and by every LISTEN
    /// connection opened or lost.
    seq: AtomicU64,
    notify: tokio::sync::Notify,
}

impl Wake {
    fn wake(&self) {
        self.seq.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::is_session_ended;

    #[test]
    fn the_sqlstates_of_an_ended_session_are_lost_connections_and_others_are_not() {
        for code in ["08000", "08003", "08006", "57P01", "57P02", "57P03"] {
            assert!(is_session_ended(code), "{code}");
        }
        for code in ["23505", "40001", "40P01", "57014", "42P01", "XX000"] {
            assert!(!is_session_ended(code), "{code}");
        }
    }
}
