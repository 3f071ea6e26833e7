//! A Postgres table that several replicas drain together.
//!
//! ```text
//! <table>        id bigserial, payload bytea, stored_at, claimed_by, lease_until, claims
//! <table>_dead   id bigserial, payload bytea, reason, stored_at, dead_at
//! <table>_size   shard, events, bytes: the table's size, kept by statement triggers
//! ```
//!
//! Every statement runs on its own (autocommit): no transaction stays open while the
//! pipeline sends what it read. A read claims the oldest unclaimed rows for this store with
//! a lease, in one statement (`FOR UPDATE SKIP LOCKED`, so replicas never wait on each
//! other nor read the same row); a commit deletes the rows this store still holds — or,
//! when the delete fails or its answer is lost, keeps them to delete before the next read
//! (`remove.rs`): a commit always stands, so the pipeline never takes other rows for them
//! sent again. A live store renews the lease of the rows it holds from `tick`, however
//! long the sink is down; a store that dies holding rows loses nothing: its lease runs out
//! and another replica claims them.
//! A row whose claimers keep dying is a poison row: once claimed more than `max_claims`
//! times by owners that died holding it it moves to `<table>_dead` and is never read
//! again. A store that closes hands its rows back and takes its claim back with them: a
//! restart is not a death.
//!
//! The size (events, bytes) is this store's own changes, set right every second from
//! `<table>_size`, which triggers keep for every writer: reading it costs one short
//! statement, never a scan of the table (which would hold up `Spill` and `wal` callers
//! waiting for the store). Where the triggers cannot be made (the table belongs to another
//! role), the table is counted instead, once a minute.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use postgres::config::Host;
use postgres::{Client, NoTls, Statement};

mod check;
mod config;
mod reconnect;
mod remove;
mod sql;

pub use config::PostgresStoreConfig;
pub(crate) use config::config_from_params;
use reconnect::Reconnect;
use sql::Sql;

use super::{Store, StoreSize, StoredBatch, fits};
use crate::Error;

/// How often the counts are read again (other replicas add and remove rows): from the
/// size counter, or, without it, by counting the table.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
const RECOUNT_EVERY: Duration = Duration::from_secs(60);

/// The largest `bytea` value, less the array header an append wraps events in.
const MAX_FIELD: usize = (1 << 30) - 1 - 64;

/// Events in a Postgres table, shared by any number of replicas.
///
/// ```no_run
/// use std::time::Duration;
/// use auditbuf::{PostgresStore, PostgresStoreConfig, Store, StoredBatch};
///
/// let config = PostgresStoreConfig::new("postgres://audit@db:5432/audit")
///     .table("gateway_audit")
///     .lease(Duration::from_secs(30));
/// let mut store = PostgresStore::open(config)?;
/// store.append(&[b"{\"n\":1}", b"{\"n\":2}"])?;
/// let mut batch = StoredBatch::new();
/// store.read_oldest(100, 1 << 20, &mut batch)?; // claimed for 30 s
/// store.commit(batch.len())?; // sent: deleted
/// # Ok::<(), auditbuf::Error>(())
/// ```
pub struct PostgresStore {
    config: PostgresStoreConfig,
    /// Who this store is in `claimed_by`: unique per open.
    owner: String,
    connection: Option<Connection>,
    /// When a new connection may be tried after one failed.
    reconnect: Reconnect,
    /// Ids and sizes of the rows the last read returned and no commit covered yet.
    read: VecDeque<(i64, u64)>,
    /// Ids of rows a commit covered that are not known to be deleted yet.
    settled: Vec<i64>,
    events: u64,
    bytes: u64,
    /// Poison rows moved to the dead table since `take_dead_lettered` was last called.
    moved_to_dead: u64,
    /// When the oldest row was stored, on this process's clock.
    oldest: Option<Instant>,
    refreshed: Option<Instant>,
    /// When the rows of `read` were last claimed or their lease renewed.
    leased: Instant,
}

/// A connection with its prepared statements.
struct Connection {
    client: Client,
    claim: Statement,
    release: Statement,
    renew: Statement,
    commit: Statement,
    append: Statement,
    dead_letter: Statement,
    /// Reads the size counter, or counts the table where the counter could not be made.
    refresh: Statement,
    counted: bool,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("config", &self.config)
            .field("owner", &self.owner)
            .field("connected", &self.connection.is_some())
            .field("held", &self.read.len())
            .field("settled", &self.settled.len())
            .field("events", &self.events)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects, creates the table and `<table>_dead` if missing, and counts what the table
    /// holds.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field (`url`, `table`, `lease`, `max_claims`,
    /// `max_total_bytes`) when it is out of range; [`Error::Store`] naming the table when
    /// the server cannot be reached or creating or counting the tables fails.
    pub fn open(config: PostgresStoreConfig) -> Result<Self, Error> {
        if let Some((field, reason)) = config.invalid() {
            return Err(Error::config(field, reason));
        }
        let owner = format!("pid{}-{:016x}", std::process::id(), fastrand::u64(..));
        let mut store = PostgresStore {
            config,
            owner,
            connection: None,
            reconnect: Reconnect::default(),
            read: VecDeque::new(),
            settled: Vec::new(),
            events: 0,
            moved_to_dead: 0,
            bytes: 0,
            oldest: None,
            refreshed: None,
            leased: Instant::now(),
        };
        store.refresh()?;
        Ok(store)
    }

    fn error(&self, what: impl fmt::Display) -> Error {
        Error::store("postgres", format!("table {}: {what}", self.config.table))
    }

    /// Runs `op` on the connection (made, with the tables and statements, if there is none
    /// or the last one broke); if the connection turns out to be broken, runs it once more
    /// on a new one. Every statement is safe to run again: a claim or commit done twice has
    /// the effect of one; an insert the server took just before the link broke is kept
    /// twice (at least once, never lost).
    fn run<T>(
        &mut self,
        mut op: impl FnMut(&mut Connection, &str) -> Result<T, postgres::Error>,
    ) -> Result<T, Error> {
        let mut retried = false;
        loop {
            let connection = match self.connection.take().filter(|c| !c.client.is_closed()) {
                Some(c) => c,
                None => self.connect()?,
            };
            let connection = self.connection.insert(connection);
            let (e, broken) = match op(connection, &self.owner) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let broken = connection.client.is_closed()
                        || e.is_closed()
                        || e.as_db_error()
                            .is_none_or(|d| matches!(d.severity(), "FATAL" | "PANIC"));
                    (e, broken)
                }
            };
            if broken {
                self.connection = None;
            }
            if !broken || retried {
                return Err(self.error(describe(&e)));
            }
            log::warn!(
                "postgres store, table {}: connection lost ({}); reconnecting",
                self.config.table,
                describe(&e)
            );
            retried = true;
        }
    }

    /// A new connection, unless the last attempt failed too recently (see [`reconnect`]).
    fn connect(&mut self) -> Result<Connection, Error> {
        let started = Instant::now();
        self.reconnect.due(started).map_err(|e| self.error(e))?;
        match Connection::open(&self.config) {
            Ok(c) => {
                self.reconnect.connected();
                Ok(c)
            }
            Err(e) => {
                let now = Instant::now();
                self.reconnect.failed(now, now - started, &e);
                Err(self.error(e))
            }
        }
    }

    /// Reads the counts and the oldest row's age from the table.
    fn refresh(&mut self) -> Result<(), Error> {
        let row = self.run(|c, _| c.client.query_one(&c.refresh, &[]))?;
        let events: i64 = row.try_get(0).map_err(|e| self.error(describe(&e)))?;
        let bytes: i64 = row.try_get(1).map_err(|e| self.error(describe(&e)))?;
        let age: Option<f64> = row.try_get(2).map_err(|e| self.error(describe(&e)))?;
        self.events = events.max(0) as u64;
        self.bytes = bytes.max(0) as u64;
        self.oldest = age.and_then(stored_at);
        self.refreshed = Some(Instant::now());
        Ok(())
    }

    fn refresh_if_stale(&mut self) -> Result<(), Error> {
        let every = match &self.connection {
            Some(c) if !c.counted => RECOUNT_EVERY,
            _ => REFRESH_EVERY,
        };
        match self.refreshed {
            Some(at) if at.elapsed() < every => Ok(()),
            _ => self.refresh(),
        }
    }

    /// Hands rows this store claimed back at once (other replicas may claim them).
    fn release(&mut self, ids: &[i64]) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        self.run(|c, owner| c.client.execute(&c.release, &[&ids, &owner]))?;
        Ok(())
    }
}

/// The instant a row `age_secs` old was stored.
fn stored_at(age_secs: f64) -> Option<Instant> {
    let age = Duration::try_from_secs_f64(age_secs.max(0.0)).ok()?;
    let now = Instant::now();
    Some(now.checked_sub(age).unwrap_or(now))
}

/// The longest a statement may take before the store gives up on it: the server's
/// `statement_timeout`, and the connection's `tcp_user_timeout`.
const STATEMENT_TIME: Duration = Duration::from_secs(30);

impl Connection {
    fn open(config: &PostgresStoreConfig) -> Result<Connection, String> {
        let mut pg =
            postgres::Config::from_str(&config.url).map_err(|e| format!("bad url: {e}"))?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(10));
        }
        // A server that went away without a reset (a network cut, a host that died) would
        // hold every statement, and with it the store's lock — `wal` callers and the flush
        // thread — until the kernel's own timeouts, hours later: give up on unacknowledged
        // data after 30 s, and probe an idle connection after 10 s. A server that answers
        // but is slow gets `statement_timeout`. Each unless the URL sets it.
        if pg.get_tcp_user_timeout().is_none() {
            pg.tcp_user_timeout(STATEMENT_TIME);
        }
        if pg.get_keepalives_interval().is_none() {
            pg.keepalives_idle(Duration::from_secs(10))
                .keepalives_interval(Duration::from_secs(5))
                .keepalives_retries(4);
        }
        if pg.get_options().is_none() {
            pg.options(&format!(
                "-c statement_timeout={}",
                STATEMENT_TIME.as_millis()
            ));
        }
        if pg.get_application_name().is_none() {
            pg.application_name("auditbuf");
        }
        let mut client = pg
            .connect(NoTls)
            .map_err(|e| format!("cannot connect to {}: {}", servers(&pg), describe(&e)))?;
        let t = &config.table;
        let sql = Sql::new(t, config.lease);
        // Replicas starting together must not race on CREATE TABLE: serialise on a lock.
        let mut tx = client.transaction().map_err(|e| describe(&e))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1::text))",
            &[&format!("auditbuf:{t}")],
        )
        .map_err(|e| describe(&e))?;
        tx.batch_execute(&sql.schema)
            .map_err(|e| format!("cannot create the tables: {}", describe(&e)))?;
        let counted = install_counter(&mut tx, &sql, t)?;
        tx.commit().map_err(|e| describe(&e))?;
        let mut prepare = |text: &str| client.prepare(text).map_err(|e| describe(&e));
        Ok(Connection {
            claim: prepare(&sql.claim)?,
            release: prepare(&sql.release)?,
            renew: prepare(&sql.renew)?,
            commit: prepare(&sql.commit)?,
            append: prepare(&sql.append)?,
            dead_letter: prepare(&sql.dead_letter)?,
            refresh: prepare(if counted { &sql.refresh } else { &sql.count })?,
            counted,
            client,
        })
    }
}

/// Makes sure the size counter is in place (the first open of a table counts it once, with
/// writers held off meanwhile). False if this role may not make it: the store then counts
/// the table itself, rarely.
fn install_counter(
    tx: &mut postgres::Transaction<'_>,
    sql: &Sql,
    table: &str,
) -> Result<bool, String> {
    let mut ask = |query: &str| {
        tx.query_one(query, &[])
            .and_then(|row| row.try_get::<_, bool>(0))
            .map_err(|e| format!("cannot read the size counter: {}", describe(&e)))
    };
    if ask(&sql.counter_installed)? && ask(&sql.counter_filled)? {
        return Ok(true);
    }
    let mut attempt = tx.savepoint("size_counter").map_err(|e| describe(&e))?;
    let locked = format!("LOCK TABLE \"{table}\" IN SHARE ROW EXCLUSIVE MODE;");
    match attempt.batch_execute(&format!("{locked}{}", sql.install_counter)) {
        Ok(()) => {
            attempt.commit().map_err(|e| describe(&e))?;
            Ok(true)
        }
        Err(e) if e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
            log::warn!(
                "postgres store, table {table}: cannot make the size counter ({}); counting the table once a minute instead",
                describe(&e)
            );
            attempt.rollback().map_err(|e| describe(&e))?;
            Ok(false)
        }
        Err(e) => Err(format!("cannot make the size counter: {}", describe(&e))),
    }
}

/// A driver error with what the server said: the driver's own message is only its kind
/// ("db error"), the server's words are in its source.
fn describe(e: &postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// The servers a configuration names, for messages (never the password).
fn servers(pg: &postgres::Config) -> String {
    let ports = pg.get_ports();
    let hosts: Vec<String> = pg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match h {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    if hosts.is_empty() {
        "the default server".to_owned()
    } else {
        hosts.join(",")
    }
}

impl Store for PostgresStore {
    fn append(&mut self, events: &[&[u8]]) -> Result<(), Error> {
        if events.is_empty() {
            return Ok(());
        }
        self.refresh_if_stale()?;
        let adding: u64 = events.iter().map(|e| e.len() as u64).sum();
        if let Some(cap) = self
            .config
            .max_total_bytes
            .filter(|&cap| self.bytes + adding > cap)
        {
            return Err(Error::StoreFull {
                limit: "max_total_bytes",
                value: cap,
            });
        }
        self.run(|c, _| c.client.execute(&c.append, &[&events]))?;
        self.events += events.len() as u64;
        self.bytes += adding;
        self.oldest.get_or_insert_with(Instant::now);
        Ok(())
    }

    fn read_oldest(
        &mut self,
        max_events: usize,
        max_bytes: usize,
        out: &mut StoredBatch,
    ) -> Result<(), Error> {
        out.clear();
        // Before the claim, which would return them again (they are still claimed).
        self.remove_settled()?;
        self.refresh_if_stale()?;
        let limit = i64::try_from(max_events.max(1)).unwrap_or(i64::MAX);
        let byte_limit = i64::try_from(max_bytes).unwrap_or(i64::MAX);
        let max_claims = i32::try_from(self.config.max_claims).unwrap_or(i32::MAX);
        let mut held: Vec<i64> = self.read.iter().map(|(id, _)| *id).collect();
        let mut rows = loop {
            let rows = self.run(|c, owner| {
                c.client
                    .query(&c.claim, &[&owner, &limit, &byte_limit, &max_claims, &held])
            })?;
            let mut live = Vec::with_capacity(rows.len());
            let (mut dead, mut dead_bytes) = (0u64, 0u64);
            for row in rows {
                match row
                    .try_get::<_, Option<i32>>(3)
                    .map_err(|e| self.error(describe(&e)))?
                {
                    Some(len) => {
                        dead += 1;
                        dead_bytes += len.max(0) as u64;
                    }
                    None => live.push(row),
                }
            }
            if dead > 0 {
                log::warn!(
                    "postgres store, table {t}: moved {dead} events claimed more than {max_claims} times to {t}_dead",
                    t = self.config.table
                );
                self.events = self.events.saturating_sub(dead);
                self.bytes = self.bytes.saturating_sub(dead_bytes);
                self.moved_to_dead += dead;
            }
            // Poison rows took places in this read: claim again to fill them.
            if dead == 0 || live.len() >= max_events.max(1) {
                break live;
            }
            held = live
                .iter()
                .filter_map(|r| r.try_get::<_, i64>(0).ok())
                .collect();
        };
        self.leased = Instant::now();
        rows.sort_by_key(|r| r.try_get::<_, i64>(0).unwrap_or(i64::MAX));
        self.read.clear();
        let mut bytes = 0;
        let mut leftover = Vec::new();
        for row in &rows {
            let id: i64 = row.try_get(0).map_err(|e| self.error(describe(&e)))?;
            let payload: &[u8] = row.try_get(1).map_err(|e| self.error(describe(&e)))?;
            if !leftover.is_empty() || !fits(out.len(), bytes, payload.len(), max_events, max_bytes)
            {
                leftover.push(id);
                continue;
            }
            if out.is_empty() {
                let age: f64 = row.try_get(2).map_err(|e| self.error(describe(&e)))?;
                if let Some(at) = stored_at(age) {
                    self.oldest = Some(self.oldest.map_or(at, |o| o.min(at)));
                }
            }
            bytes += payload.len() + 1;
            out.push(payload);
            self.read.push_back((id, payload.len() as u64));
        }
        // The statement applied the same limits; this only matters if they ever disagree.
        self.release(&leftover)?;
        if self.events < self.read.len() as u64 {
            // Rows another replica added since the last count.
            self.events = self.read.len() as u64;
            self.bytes = self.bytes.max(out.bytes() as u64);
        }
        Ok(())
    }

    /// Never fails: rows whose delete fails, or may not have gone through, are deleted
    /// before the next read instead (see `remove.rs`).
    fn commit(&mut self, n: usize) -> Result<(), Error> {
        self.settle(n);
        Ok(())
    }

    fn take_dead_lettered(&mut self) -> u64 {
        std::mem::take(&mut self.moved_to_dead)
    }

    fn max_record_bytes(&self) -> usize {
        let cap = self.config.max_total_bytes.unwrap_or(u64::MAX);
        MAX_FIELD.min(usize::try_from(cap).unwrap_or(usize::MAX))
    }

    fn kind(&self) -> &str {
        "postgres"
    }

    fn dead_letter(&mut self, event: &[u8], reason: &str) -> Result<(), Error> {
        self.run(|c, _| c.client.execute(&c.dead_letter, &[&event, &reason]))?;
        Ok(())
    }

    fn size(&self) -> StoreSize {
        StoreSize {
            events: self.events,
            bytes: self.bytes,
        }
    }

    fn oldest_age(&self) -> Option<Duration> {
        if self.events == 0 {
            return None;
        }
        self.oldest.map(|at| at.elapsed())
    }

    /// Nothing to do: every statement commits on its own.
    fn sync(&mut self) -> Result<(), Error> {
        Ok(())
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn is_shared(&self) -> bool {
        true
    }

    /// Deletes the settled rows not deleted yet, renews the lease of the rows this store
    /// holds (a third of the lease after the last claim or renewal), and refreshes the
    /// counts from the table, at most once a second.
    fn tick(&mut self) -> Result<(), Error> {
        // A delete that keeps failing (a statement timeout) must not stop the renewals:
        // the batch the sink has would be claimed and sent by another replica meanwhile.
        let removed = self.remove_settled();
        // Settled rows not deleted yet are held too: renewed, no other replica sends them
        // again while their delete waits.
        if !(self.read.is_empty() && self.settled.is_empty())
            && self.leased.elapsed() >= self.config.lease / 3
        {
            let held: Vec<i64> = (self.read.iter().map(|(id, _)| *id))
                .chain(self.settled.iter().copied())
                .collect();
            self.run(|c, owner| c.client.execute(&c.renew, &[&held, &owner]))?;
            self.leased = Instant::now();
        }
        removed?;
        self.refresh_if_stale()
    }

    /// Hands the rows of the last read that were not committed back at once, instead of
    /// when their lease ends, without counting a claim.
    fn hand_back(&mut self) -> Result<(), Error> {
        let held: Vec<i64> = self.read.drain(..).map(|(id, _)| id).collect();
        if self.connection.is_some() {
            self.release(&held)
        } else {
            Ok(())
        }
    }

    /// Deletes the settled rows not deleted yet, hands the rows it holds back (see
    /// [`hand_back`](Store::hand_back)), and closes the connection.
    fn close(&mut self) -> Result<(), Error> {
        let removed = self.remove_settled();
        let handed_back = self.hand_back();
        self.connection = None;
        removed.and(handed_back)
    }
}
