//! A Postgres table that several replicas drain together.
//!
//! ```text
//! <table>        id bigserial, payload bytea, stored_at, claimed_by, lease_until, claims
//! <table>_dead   id bigserial, payload bytea, reason, stored_at, dead_at
//! ```
//!
//! Every statement runs on its own (autocommit): no transaction stays open while the
//! pipeline sends what it read. A read claims the oldest unclaimed rows for this store with
//! a lease, in one statement (`FOR UPDATE SKIP LOCKED`, so replicas never wait on each
//! other nor read the same row); a commit deletes the rows this store still holds. A live
//! store renews the lease of the rows it holds from `tick`, however long the sink is down;
//! a store that dies holding rows loses nothing: its lease runs out and another replica
//! claims them.
//! A row whose claimers keep dying is a poison row: once claimed more than `max_claims`
//! times by different owners it moves to `<table>_dead` and is never read again.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use postgres::config::Host;
use postgres::{Client, NoTls, Statement};
use serde::Deserialize;
use serde_json::Value;

use super::{Store, StoreSize, StoredBatch, fits};
use crate::Error;

/// How often the counts are read again from the table (other replicas add and remove rows).
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// Longest table name: `<table>_dead` must stay within Postgres's 63-byte identifiers.
const MAX_TABLE_LEN: usize = 63 - "_dead".len();

/// Settings of a [`PostgresStore`]. Plain data; `Debug` hides any password in the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresStoreConfig {
    pub(crate) url: String,
    pub(crate) table: String,
    pub(crate) lease: Duration,
    pub(crate) max_claims: u32,
    pub(crate) max_total_bytes: Option<u64>,
}

impl PostgresStoreConfig {
    /// A store on the server and database of `url`, either a URL
    /// (`postgres://user:password@host:5432/db?connect_timeout=5`) or `key=value` pairs
    /// (`host=db user=audit dbname=audit`). TLS is not supported.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresStoreConfig {
            url: url.into(),
            table: "auditbuf_events".to_owned(),
            lease: Duration::from_secs(60),
            max_claims: 10,
            max_total_bytes: None,
        }
    }

    /// The table the events live in (created if missing, with `<table>_dead` for dead
    /// letters): a lowercase SQL identifier, `[a-z_][a-z0-9_]*`, of at most 58 characters.
    /// Replicas that drain the same events name the same table. Defaults to
    /// `"auditbuf_events"`.
    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.table = name.into();
        self
    }

    /// How long rows a read claimed stay reserved for this store. While it holds them
    /// (until the commit), the store renews the lease from [`Store::tick`], so a live
    /// replica keeps its rows however long the sink is down; once a replica stops (crash,
    /// or a thread stuck longer than this), another replica may claim and send them. Keep
    /// it well above the time one delivery attempt takes. Defaults to 60 s.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How many times a row may be claimed by different owners that never committed it
    /// (they crashed while sending it) before it is moved to `<table>_dead`. Reads again by
    /// the same live store do not count. Defaults to 10.
    pub fn max_claims(mut self, n: u32) -> Self {
        self.max_claims = n;
        self
    }

    /// Most payload bytes the table may hold; appending more fails with
    /// [`Error::StoreFull`]. The count is this store's view, refreshed from the table at
    /// least once a second. Defaults to no limit.
    pub fn max_total_bytes(mut self, bytes: u64) -> Self {
        self.max_total_bytes = Some(bytes);
        self
    }

    /// The first setting that is out of range, by its field name, with the reason.
    fn invalid(&self) -> Option<(&'static str, String)> {
        if let Err(e) = postgres::Config::from_str(&self.url) {
            return Some(("url", format!("is not a Postgres connection string: {e}")));
        }
        if !valid_table(&self.table) {
            return Some((
                "table",
                format!(
                    "{:?} must match ^[a-z_][a-z0-9_]{{0,{}}}$ (a lowercase SQL identifier short enough \
                     for \"<table>_dead\" to fit in 63 bytes)",
                    self.table,
                    MAX_TABLE_LEN - 1
                ),
            ));
        }
        if self.lease < Duration::from_millis(1) {
            return Some(("lease", "must be at least 1 ms".to_owned()));
        }
        if self.max_claims == 0 {
            return Some(("max_claims", "must be at least 1".to_owned()));
        }
        None
    }
}

impl fmt::Debug for PostgresStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStoreConfig")
            .field("url", &redacted(&self.url))
            .field("table", &self.table)
            .field("lease", &self.lease)
            .field("max_claims", &self.max_claims)
            .field("max_total_bytes", &self.max_total_bytes)
            .finish()
    }
}

/// Whether `name` matches `^[a-z_][a-z0-9_]*$` and leaves room for the `_dead` suffix.
fn valid_table(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b == b'_' || b.is_ascii_lowercase());
    first_ok
        && name.len() <= MAX_TABLE_LEN
        && bytes.all(|b| b == b'_' || b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `url` with the password, if any, replaced by `***`: in the user-info part of a URL and
/// in `password=` pairs (URL query or `key=value` form).
fn redacted(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let rest = &out[rest_start..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let user_info = rest[..authority_end]
            .rfind('@')
            .map(|at| (at, rest[..at].find(':')));
        if let Some((at, Some(colon))) = user_info {
            out.replace_range(rest_start + colon + 1..rest_start + at, "***");
        }
    }
    let mut from = 0;
    while let Some(found) = out[from..].to_ascii_lowercase().find("password") {
        let key_end = from + found + "password".len();
        let after = &out[key_end..];
        let trimmed = after.trim_start();
        if !trimmed.starts_with('=') {
            from = key_end;
            continue;
        }
        let value_start = key_end + (after.len() - trimmed.len()) + 1;
        let value = &out[value_start..];
        let lead = value.len() - value.trim_start().len();
        let value = &value[lead..];
        let len = if let Some(quoted) = value.strip_prefix('\'') {
            // A quoted key=value value: up to the closing quote (\' escapes one).
            let mut escaped = false;
            let close = quoted.char_indices().find(|&(_, c)| {
                let end = c == '\'' && !escaped;
                escaped = c == '\\' && !escaped;
                end
            });
            close.map_or(value.len(), |(i, _)| i + 2)
        } else {
            value
                .find(|c: char| c == '&' || c.is_whitespace())
                .unwrap_or(value.len())
        };
        let start = value_start + lead;
        out.replace_range(start..start + len, "***");
        from = start + 3;
    }
    out
}

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
    /// Ids and sizes of the rows the last read returned and no commit covered yet.
    read: VecDeque<(i64, u64)>,
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
    refresh: Statement,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("config", &self.config)
            .field("owner", &self.owner)
            .field("connected", &self.connection.is_some())
            .field("held", &self.read.len())
            .field("events", &self.events)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects, creates the table and `<table>_dead` if missing, and counts what the table
    /// holds. Fails on a setting out of range ([`Error::Config`]) or if the server cannot be
    /// reached ([`Error::Store`]).
    pub fn open(config: PostgresStoreConfig) -> Result<Self, Error> {
        if let Some((field, reason)) = config.invalid() {
            return Err(Error::config(field, reason));
        }
        let owner = format!("pid{}-{:016x}", std::process::id(), fastrand::u64(..));
        let mut store = PostgresStore {
            config,
            owner,
            connection: None,
            read: VecDeque::new(),
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
                None => Connection::open(&self.config).map_err(|e| self.error(e))?,
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
                return Err(self.error(e));
            }
            log::warn!(
                "postgres store, table {}: connection lost ({e}); reconnecting",
                self.config.table
            );
            retried = true;
        }
    }

    /// Reads the counts and the oldest row's age from the table.
    fn refresh(&mut self) -> Result<(), Error> {
        let row = self.run(|c, _| c.client.query_one(&c.refresh, &[]))?;
        let events: i64 = row.try_get(0).map_err(|e| self.error(e))?;
        let bytes: i64 = row.try_get(1).map_err(|e| self.error(e))?;
        let age: Option<f64> = row.try_get(2).map_err(|e| self.error(e))?;
        self.events = events.max(0) as u64;
        self.bytes = bytes.max(0) as u64;
        self.oldest = age.and_then(stored_at);
        self.refreshed = Some(Instant::now());
        Ok(())
    }

    fn refresh_if_stale(&mut self) -> Result<(), Error> {
        match self.refreshed {
            Some(at) if at.elapsed() < REFRESH_EVERY => Ok(()),
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

impl Connection {
    fn open(config: &PostgresStoreConfig) -> Result<Connection, String> {
        let mut pg =
            postgres::Config::from_str(&config.url).map_err(|e| format!("bad url: {e}"))?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(10));
        }
        if pg.get_application_name().is_none() {
            pg.application_name("auditbuf");
        }
        let mut client = pg
            .connect(NoTls)
            .map_err(|e| format!("cannot connect to {}: {e}", servers(&pg)))?;
        let t = &config.table;
        let sql = Sql::new(t, config.lease);
        // Replicas starting together must not race on CREATE TABLE: serialise on a lock.
        let mut tx = client.transaction().map_err(|e| e.to_string())?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1::text))",
            &[&format!("auditbuf:{t}")],
        )
        .map_err(|e| e.to_string())?;
        tx.batch_execute(&sql.schema)
            .map_err(|e| format!("cannot create the tables: {e}"))?;
        tx.commit().map_err(|e| e.to_string())?;
        let mut prepare = |text: &str| client.prepare(text).map_err(|e| e.to_string());
        Ok(Connection {
            claim: prepare(&sql.claim)?,
            release: prepare(&sql.release)?,
            renew: prepare(&sql.renew)?,
            commit: prepare(&sql.commit)?,
            append: prepare(&sql.append)?,
            dead_letter: prepare(&sql.dead_letter)?,
            refresh: prepare(&sql.refresh)?,
            client,
        })
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

/// The statements, for one table. Table names are checked identifiers, quoted anyway.
struct Sql {
    schema: String,
    claim: String,
    release: String,
    renew: String,
    commit: String,
    append: String,
    dead_letter: String,
    refresh: String,
}

impl Sql {
    fn new(table: &str, lease: Duration) -> Sql {
        let t = format!("\"{table}\"");
        let d = format!("\"{table}_dead\"");
        let lease_ms = lease.as_millis();
        let age = "greatest(extract(epoch FROM now() - stored_at)::float8, 0)";
        Sql {
            schema: format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    id bigserial PRIMARY KEY,
                    payload bytea NOT NULL,
                    stored_at timestamptz NOT NULL DEFAULT now(),
                    claimed_by text,
                    lease_until timestamptz,
                    claims integer NOT NULL DEFAULT 0
                );
                CREATE TABLE IF NOT EXISTS {d} (
                    id bigserial PRIMARY KEY,
                    payload bytea NOT NULL,
                    reason text NOT NULL,
                    stored_at timestamptz,
                    dead_at timestamptz NOT NULL DEFAULT now()
                );"
            ),
            // $1 owner, $2 most rows, $3 most bytes (each row plus one), $4 max_claims,
            // $5 rows the last read returned. Rows another owner held count as one more
            // claim; rows that would pass max_claims move to the dead table instead; the
            // byte limit is applied here so no row is claimed only to be handed back;
            // rows of the last read that this read no longer returns are handed back.
            claim: format!(
                "WITH locked AS (
                    SELECT id, octet_length(payload) AS len,
                           claims + CASE WHEN claimed_by = $1::text THEN 0 ELSE 1 END AS n
                    FROM {t}
                    WHERE lease_until IS NULL OR lease_until <= now() OR claimed_by = $1::text
                    ORDER BY id
                    LIMIT $2::bigint
                    FOR UPDATE SKIP LOCKED
                ),
                poison AS (
                    DELETE FROM {t} AS t USING locked
                    WHERE t.id = locked.id AND locked.n > $4::int
                    RETURNING t.id, t.payload, t.stored_at, locked.n, locked.len
                ),
                moved AS (
                    INSERT INTO {d} (payload, reason, stored_at)
                    SELECT payload,
                           'claimed ' || n || ' times by owners that never committed it (max_claims '
                               || $4::int || ')',
                           stored_at
                    FROM poison ORDER BY id
                ),
                picked AS (
                    SELECT id, n FROM (
                        SELECT id, n, row_number() OVER w AS rn, sum(len + 1) OVER w AS running
                        FROM locked WHERE n <= $4::int
                        WINDOW w AS (ORDER BY id)
                    ) AS windowed
                    WHERE rn = 1 OR running <= $3::bigint
                ),
                released AS (
                    UPDATE {t} SET lease_until = NULL
                    WHERE id IN (
                        SELECT id FROM {t}
                        WHERE id = ANY($5::bigint[]) AND claimed_by = $1::text
                          AND id NOT IN (SELECT id FROM picked) AND id NOT IN (SELECT id FROM poison)
                        FOR UPDATE SKIP LOCKED
                    )
                ),
                claimed AS (
                    UPDATE {t} AS t
                    SET claimed_by = $1::text, lease_until = now() + interval '{lease_ms} milliseconds',
                        claims = picked.n
                    FROM picked WHERE t.id = picked.id
                    RETURNING t.id, t.payload, greatest(extract(epoch FROM now() - t.stored_at)::float8, 0) AS age
                )
                SELECT id, payload, age, NULL::int AS dead_len FROM claimed
                UNION ALL
                SELECT id, NULL::bytea, 0::float8, len FROM poison"
            ),
            release: format!(
                "UPDATE {t} SET lease_until = NULL
                 WHERE id IN (
                     SELECT id FROM {t} WHERE id = ANY($1::bigint[]) AND claimed_by = $2::text
                     FOR UPDATE SKIP LOCKED
                 )"
            ),
            renew: format!(
                "UPDATE {t} SET lease_until = now() + interval '{lease_ms} milliseconds'
                 WHERE id IN (
                     SELECT id FROM {t}
                     WHERE id = ANY($1::bigint[]) AND claimed_by = $2::text AND lease_until IS NOT NULL
                     FOR UPDATE SKIP LOCKED
                 )"
            ),
            // Deletes what this store still holds of $1, and reports what it deleted and
            // the age of the oldest row left.
            commit: format!(
                "WITH d AS (
                    DELETE FROM {t} WHERE id = ANY($1::bigint[]) AND claimed_by = $2::text
                    RETURNING id, octet_length(payload) AS len
                )
                SELECT (SELECT count(*) FROM d),
                       (SELECT coalesce(sum(len), 0)::bigint FROM d),
                       (SELECT {age} FROM {t} WHERE id NOT IN (SELECT id FROM d) ORDER BY id LIMIT 1)"
            ),
            append: format!(
                "INSERT INTO {t} (payload)
                 SELECT p FROM unnest($1::bytea[]) WITH ORDINALITY AS u(p, i) ORDER BY i"
            ),
            dead_letter: format!("INSERT INTO {d} (payload, reason) VALUES ($1::bytea, $2::text)"),
            refresh: format!(
                "SELECT count(*), coalesce(sum(octet_length(payload)), 0)::bigint,
                        (SELECT {age} FROM {t} ORDER BY id LIMIT 1)
                 FROM {t}"
            ),
        }
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
                    .map_err(|e| self.error(e))?
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
            let id: i64 = row.try_get(0).map_err(|e| self.error(e))?;
            let payload: &[u8] = row.try_get(1).map_err(|e| self.error(e))?;
            if !leftover.is_empty() || !fits(out.len(), bytes, payload.len(), max_events, max_bytes)
            {
                leftover.push(id);
                continue;
            }
            if out.is_empty() {
                let age: f64 = row.try_get(2).map_err(|e| self.error(e))?;
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

    fn commit(&mut self, n: usize) -> Result<(), Error> {
        let n = n.min(self.read.len());
        if n == 0 {
            return Ok(());
        }
        let ids: Vec<i64> = self.read.iter().take(n).map(|(id, _)| *id).collect();
        let row = self.run(|c, owner| c.client.query_one(&c.commit, &[&ids, &owner]))?;
        let deleted: i64 = row.try_get(0).map_err(|e| self.error(e))?;
        let deleted_bytes: i64 = row.try_get(1).map_err(|e| self.error(e))?;
        let oldest_age: Option<f64> = row.try_get(2).map_err(|e| self.error(e))?;
        self.read.drain(..n);
        if deleted < n as i64 {
            log::warn!(
                "postgres store, table {}: {} of {n} committed events had been claimed by another replica (lease {:?} expired)",
                self.config.table,
                n as i64 - deleted,
                self.config.lease
            );
        }
        self.events = self.events.saturating_sub(deleted.max(0) as u64);
        self.bytes = self.bytes.saturating_sub(deleted_bytes.max(0) as u64);
        match oldest_age {
            Some(age) => self.oldest = stored_at(age),
            None => {
                // The table is empty.
                self.events = 0;
                self.bytes = 0;
                self.oldest = None;
            }
        }
        Ok(())
    }

    fn take_dead_lettered(&mut self) -> u64 {
        std::mem::take(&mut self.moved_to_dead)
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

    /// Renews the lease of the rows this store holds (a third of the lease after the last
    /// claim or renewal), and refreshes the counts from the table, at most once a second.
    fn tick(&mut self) -> Result<(), Error> {
        if !self.read.is_empty() && self.leased.elapsed() >= self.config.lease / 3 {
            let held: Vec<i64> = self.read.iter().map(|(id, _)| *id).collect();
            self.run(|c, owner| c.client.execute(&c.renew, &[&held, &owner]))?;
            self.leased = Instant::now();
        }
        self.refresh_if_stale()
    }

    /// Hands the rows of the last read that were not committed back at once (instead of
    /// when their lease ends), and closes the connection.
    fn close(&mut self) -> Result<(), Error> {
        let held: Vec<i64> = self.read.drain(..).map(|(id, _)| id).collect();
        let result = if self.connection.is_some() {
            self.release(&held)
        } else {
            Ok(())
        };
        self.connection = None;
        result
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresParams {
    url: String,
    table: Option<String>,
    lease_ms: Option<u64>,
    max_claims: Option<u32>,
    max_total_bytes: Option<u64>,
}

/// The configuration of `{"type":"postgres","params":{…}}`: `url` (required), `table`,
/// `lease_ms`, `max_claims`, `max_total_bytes`. Errors name the field as `params.<field>`.
pub(crate) fn config_from_params(params: &Value) -> Result<PostgresStoreConfig, Error> {
    let p: PostgresParams = super::config::parse_params(params)?;
    let mut c = PostgresStoreConfig::new(p.url);
    if let Some(v) = p.table {
        c = c.table(v);
    }
    if let Some(v) = p.lease_ms {
        c = c.lease(Duration::from_millis(v));
    }
    if let Some(v) = p.max_claims {
        c = c.max_claims(v);
    }
    if let Some(v) = p.max_total_bytes {
        c = c.max_total_bytes(v);
    }
    match c.invalid() {
        Some(("lease", reason)) => Err(Error::config("params.lease_ms", reason)),
        Some((field, reason)) => Err(Error::config(format!("params.{field}"), reason)),
        None => Ok(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redacted("postgres://audit:s3cret@db:5432/x"),
            "postgres://audit:***@db:5432/x"
        );
        assert_eq!(
            redacted("postgresql://audit@db/x"),
            "postgresql://audit@db/x"
        );
        assert_eq!(
            redacted("postgres://a:p%40ss@db/x?password=other&sslmode=disable"),
            "postgres://a:***@db/x?password=***&sslmode=disable"
        );
        assert_eq!(
            redacted("host=db password=s3cret user=a"),
            "host=db password=*** user=a"
        );
        assert_eq!(
            redacted("host=db password = 'it\\'s x' user=a"),
            "host=db password = *** user=a"
        );
        let c = PostgresStoreConfig::new("postgres://audit:s3cret@db/x");
        assert!(!format!("{c:?}").contains("s3cret"), "{c:?}");
    }

    #[test]
    fn table_names_are_checked() {
        assert!(valid_table("auditbuf_events"));
        assert!(valid_table("_t1"));
        assert!(valid_table(&"a".repeat(58)));
        assert!(!valid_table(&"a".repeat(59)));
        for bad in ["", "1t", "Events", "a-b", "a b", "t\"", "ä"] {
            assert!(!valid_table(bad), "{bad}");
        }
    }

    #[test]
    fn params_are_read_and_checked() {
        let c = config_from_params(&serde_json::json!({
            "url": "postgres://u@h/db", "table": "t", "lease_ms": 1500, "max_claims": 3, "max_total_bytes": 4096
        }))
        .unwrap();
        assert_eq!(
            c,
            PostgresStoreConfig::new("postgres://u@h/db")
                .table("t")
                .lease(Duration::from_millis(1500))
                .max_claims(3)
                .max_total_bytes(4096)
        );
        let field = |v: Value| match config_from_params(&v) {
            Err(Error::Config(c)) => c.field,
            other => panic!("{v}: {other:?}"),
        };
        assert_eq!(field(serde_json::json!({})), "params");
        assert_eq!(
            field(serde_json::json!({"url": "postgres://h", "table": "Bad"})),
            "params.table"
        );
        assert_eq!(
            field(serde_json::json!({"url": "postgres://h", "lease_ms": 0})),
            "params.lease_ms"
        );
        assert_eq!(
            field(serde_json::json!({"url": "postgres://h", "max_claims": 0})),
            "params.max_claims"
        );
        assert_eq!(
            field(serde_json::json!({"url": "postgres://h:port/x"})),
            "params.url"
        );
        assert_eq!(
            field(serde_json::json!({"url": "postgres://h", "lease": 5})),
            "params.lease"
        );
    }
}
