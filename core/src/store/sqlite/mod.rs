//! An SQLite database in WAL mode (feature `sqlite`).
//!
//! ```text
//! events(id INTEGER PRIMARY KEY, stored_at_ms INTEGER, event BLOB)                oldest = lowest id
//! dead_letters(id INTEGER PRIMARY KEY, at_ms INTEGER, reason TEXT, event BLOB)    apart from the log
//! ```
//!
//! The connection keeps the database in exclusive locking mode: a second process cannot open
//! it (as the file store's `LOCK`), and no `-shm` file is made. Counts and sizes are kept in
//! memory (read once at open); reads remember the row ids they returned, and a commit deletes
//! up to one of them.
//!
//! Durability `wal`: each group's transaction commits with `synchronous = FULL`, which syncs
//! the WAL before the commit returns — one fsync, no checkpoint. It stays durable: the WAL is
//! reused only after a checkpoint, and from the first such append on the connection never
//! runs below `NORMAL`, at which a checkpoint syncs the database file before the WAL is
//! reused. Checkpoints happen at the policy's interval and when the WAL passes SQLite's
//! automatic checkpoint size (1000 pages), never per group.

use std::collections::VecDeque;
use std::fmt::Display;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OpenFlags};

mod check;
mod config;
mod consumed;
mod read;
mod totals;

pub use config::SqliteStoreConfig;
pub(crate) use config::config_from_params;

use super::{Appended, Fsync, Store, StoreSize, StoredBatch};
use crate::{DeadLetter, Error};
use totals::{Totals, unopenable};

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY,
        stored_at_ms INTEGER NOT NULL,
        event BLOB NOT NULL
    );
    CREATE TABLE IF NOT EXISTS dead_letters (
        id INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        reason TEXT NOT NULL,
        event BLOB NOT NULL
    );";
const INSERT_EVENT: &str = "INSERT INTO events (stored_at_ms, event) VALUES (?1, ?2)";
const INSERT_DEAD: &str = "INSERT INTO dead_letters (at_ms, reason, event) VALUES (?1, ?2, ?3)";
const DEAD_SIZE: &str = "length(event) + length(CAST(reason AS BLOB))";
/// SQLite's largest string, BLOB or row (`SQLITE_MAX_LENGTH`, whose default the bundled
/// build keeps), less room for a row's other columns and header.
const MAX_ROW: usize = 1_000_000_000 - 64;

/// Events in an SQLite database in WAL mode: survives restarts and, with [`Fsync::Always`]
/// or after [`Store::sync`], crashes. One process at a time: a second open fails.
///
/// ```
/// use auditbuf::{SqliteStore, SqliteStoreConfig, Store, StoredBatch};
///
/// let dir = std::env::temp_dir().join(format!("auditbuf-sqlite-doc-{}", std::process::id()));
/// let path = dir.join("events.db");
/// {
///     let mut store = SqliteStore::open(SqliteStoreConfig::new(&path))?;
///     store.append(&[b"{\"n\":1}", b"{\"n\":2}"])?;
/// }
/// let mut store = SqliteStore::open(SqliteStoreConfig::new(&path))?; // reopened: still there
/// let mut batch = StoredBatch::new();
/// store.read_oldest(10, 1 << 20, &mut batch)?;
/// assert_eq!(batch.get(1), Some(&b"{\"n\":2}"[..]));
/// store.commit(2)?;
/// assert_eq!(store.size().events, 0);
/// store.close()?;
/// # drop(store); std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), auditbuf::Error>(())
/// ```
#[derive(Debug)]
pub struct SqliteStore {
    config: SqliteStoreConfig,
    /// `None` once closed.
    conn: Option<Connection>,
    /// The events of the last read, oldest first, less those committed since.
    read: VecDeque<read::Read>,
    events: u64,
    bytes: u64,
    oldest_ms: Option<i64>,
    dead_bytes: u64,
    unsynced: bool,
    last_sync: Instant,
    /// Set by the first `append_durably`: from then on `synchronous` is at least `NORMAL`.
    durable_appends: bool,
    /// Rows delivered but not deleted yet (a full disk).
    consumed: consumed::Consumed,
    /// Damaged rows reads skipped since `take_lost` was last called.
    lost: u64,
    /// The process that opened the database. A `fork()` child must neither write through
    /// the inherited connection nor close it (closing checkpoints and removes the WAL the
    /// parent still uses).
    pid: u32,
    /// The database file as opened: deleted or replaced meanwhile, it is said (every 10 s).
    watch: crate::store::watch::Watch,
}

impl SqliteStore {
    /// Opens (or creates) the database and its tables.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field (`path`, `max_total_bytes`, `fsync_interval_ms`)
    /// when it is out of range; [`Error::Store`] naming the file when it cannot be created,
    /// another process has it open, or SQLite fails (no WAL journal mode, a query).
    pub fn open(config: SqliteStoreConfig) -> Result<Self, Error> {
        if let Some((field, reason)) = config.invalid() {
            return Err(Error::config(field, reason));
        }
        let path = config.path.as_path();
        create_private(path)?;
        let sql = |e| sql_error(path, e);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql)?;
        // Fail at once rather than wait for another process to let go.
        conn.busy_timeout(Duration::ZERO).map_err(sql)?;
        // Before WAL mode is entered, so that the WAL index lives in memory (no -shm file).
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(sql)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(sql)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(fail(
                path,
                format_args!("cannot use WAL journal mode (got {mode:?})"),
            ));
        }
        conn.pragma_update(None, "synchronous", synchronous(config.fsync, false))
            .map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        // Take the exclusive lock now (exclusive mode keeps it), not at the first append.
        conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")
            .map_err(sql)?;
        for sibling in ["-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(sibling);
            let sibling = PathBuf::from(name);
            if sibling.exists() {
                fs::set_permissions(&sibling, fs::Permissions::from_mode(0o600))
                    .map_err(|e| fail(path, format_args!("{}: {e}", sibling.display())))?;
            }
        }

        let totals = Totals::read(&conn, true).map_err(|e| {
            let why = unopenable(path, &e);
            match e.sqlite_error_code() {
                Some(ErrorCode::DatabaseCorrupt) => fail(
                    path,
                    format_args!("{why}; `auditbuf store verify` shows what is readable"),
                ),
                _ => fail(path, why),
            }
        })?;
        Ok(SqliteStore {
            conn: Some(conn),
            read: VecDeque::new(),
            events: totals.events,
            bytes: totals.bytes,
            oldest_ms: totals.oldest_ms,
            dead_bytes: totals.dead_bytes,
            unsynced: false,
            last_sync: Instant::now(),
            durable_appends: false,
            consumed: Default::default(),
            lost: 0,
            pid: std::process::id(),
            watch: crate::store::watch::Watch::new(&config.path),
            config,
        })
    }

    /// Fails with [`Error::Forked`] in a process other than the one that opened the store.
    fn same_process(&self) -> Result<(), Error> {
        if std::process::id() == self.pid {
            Ok(())
        } else {
            Err(Error::Forked)
        }
    }

    /// The dead letters kept in the `dead_letters` table, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] naming the file when the store is closed or the query fails.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, Error> {
        let path = self.config.path.as_path();
        let conn = self.conn.as_ref().ok_or_else(|| closed(path))?;
        let sql = |e| sql_error(path, e);
        let mut stmt = conn
            .prepare("SELECT at_ms, reason, event FROM dead_letters ORDER BY id")
            .map_err(sql)?;
        let letters = stmt
            .query_map([], |row| {
                let at_ms: i64 = row.get(0)?;
                Ok(DeadLetter {
                    reason: row.get(1)?,
                    event: row.get(2)?,
                    at: UNIX_EPOCH + Duration::from_millis(at_ms.max(0) as u64),
                })
            })
            .map_err(sql)?;
        letters.collect::<Result<Vec<_>, _>>().map_err(sql)
    }

    /// After a write: syncs if the policy says it is time.
    fn written(&mut self) -> Result<(), Error> {
        match self.config.fsync {
            // synchronous = FULL: the transaction was synced as it committed.
            Fsync::Always => Ok(()),
            Fsync::Interval(every) => {
                self.unsynced = true;
                if self.last_sync.elapsed() >= every {
                    // The events are committed; a failed checkpoint only delays their sync,
                    // which stays pending and is reported by the next `sync`.
                    if let Err(e) = self.checkpoint("FULL") {
                        log::warn!("{e}");
                    }
                }
                Ok(())
            }
            Fsync::Never => {
                self.unsynced = true;
                Ok(())
            }
        }
    }

    /// Copies the WAL into the database file, syncing both (`mode` is `FULL` or `TRUNCATE`).
    fn checkpoint(&mut self, mode: &str) -> Result<(), Error> {
        let path = self.config.path.as_path();
        let conn = live(&mut self.conn, path)?;
        let sql = |e| sql_error(path, e);
        // With synchronous = OFF a checkpoint syncs nothing: raise it for this one.
        let never = synchronous(self.config.fsync, self.durable_appends) == "OFF";
        if never {
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(sql)?;
        }
        let result = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        });
        if never {
            conn.pragma_update(None, "synchronous", "OFF")
                .map_err(sql)?;
        }
        let (busy, log, done) = result.map_err(sql)?;
        if busy != 0 || done < log {
            return Err(fail(
                path,
                format_args!("checkpoint incomplete ({done} of {log} WAL frames copied)"),
            ));
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }
}

/// The `synchronous` level of a policy; at least `NORMAL` once `wal` appends were made.
fn synchronous(fsync: Fsync, durable_appends: bool) -> &'static str {
    match fsync {
        Fsync::Always => "FULL",
        Fsync::Interval(_) => "NORMAL",
        Fsync::Never if durable_appends => "NORMAL",
        Fsync::Never => "OFF",
    }
}

impl Store for SqliteStore {
    fn append(&mut self, events: &[&[u8]]) -> Result<(), Error> {
        self.same_process()?;
        if events.is_empty() {
            return Ok(());
        }
        let adding: u64 = events.iter().map(|e| e.len() as u64).sum();
        if self.bytes + adding > self.config.max_total_bytes {
            return Err(Error::StoreFull {
                limit: "max_total_bytes",
                value: self.config.max_total_bytes,
            });
        }
        let path = self.config.path.as_path();
        let sql = |e| sql_error(path, e);
        let conn = live(&mut self.conn, path)?;
        let now = now_ms();
        // Dropped without a commit on any error: rolled back, nothing of the batch kept.
        let tx = conn.transaction().map_err(sql)?;
        {
            let mut insert = tx.prepare_cached(INSERT_EVENT).map_err(sql)?;
            for event in events {
                insert.execute((now, *event)).map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)?;
        self.events += events.len() as u64;
        self.bytes += adding;
        self.oldest_ms.get_or_insert(now);
        self.written()
    }

    fn read_oldest(
        &mut self,
        max_events: usize,
        max_bytes: usize,
        out: &mut StoredBatch,
    ) -> Result<(), Error> {
        self.read_rows(max_events, max_bytes, out)
    }

    fn commit(&mut self, n: usize) -> Result<(), Error> {
        self.same_process()?;
        let n = n.min(self.read.len());
        let Some(last) = n.checked_sub(1).and_then(|i| self.read.get(i)) else {
            return Ok(());
        };
        let path = self.config.path.as_path();
        let sql = |e| sql_error(path, e);
        let conn = live(&mut self.conn, path)?;
        // Everything older than the last read's first event is already gone, or consumed.
        self.consumed.delete_up_to(conn, path, last.id);
        for r in self.read.drain(..n) {
            self.events = self.events.saturating_sub(1);
            self.bytes = self.bytes.saturating_sub(r.len);
        }
        self.oldest_ms = match self.read.front() {
            Some(r) => Some(r.stored_at_ms),
            None if self.events == 0 => None,
            // The rows are consumed already: an error here must not say they stay (the
            // trait's contract for `Err`), only leave the oldest event's age unknown.
            None => self.consumed.oldest_ms(conn).unwrap_or_else(|e| {
                log::warn!("{}", sql(e));
                None
            }),
        };
        self.written()
    }

    fn dead_letter(&mut self, event: &[u8], reason: &str) -> Result<(), Error> {
        self.same_process()?;
        let path = self.config.path.as_path();
        let sql = |e| sql_error(path, e);
        let conn = live(&mut self.conn, path)?;
        conn.prepare_cached(INSERT_DEAD)
            .and_then(|mut insert| insert.execute((now_ms(), reason, event)))
            .map_err(sql)?;
        self.dead_bytes += (event.len() + reason.len()) as u64;
        // Keep the newest, within an eighth of the store's cap; trim to half of that.
        let cap = (self.config.max_total_bytes / 8).max(1 << 20);
        if self.dead_bytes > cap {
            let mut freed = 0u64;
            let mut up_to = None;
            {
                let mut stmt = conn
                    .prepare(&format!(
                        "SELECT id, {DEAD_SIZE} FROM dead_letters ORDER BY id"
                    ))
                    .map_err(sql)?;
                let mut rows = stmt.query([]).map_err(sql)?;
                while self.dead_bytes.saturating_sub(freed) > cap / 2 {
                    let Some(row) = rows.next().map_err(sql)? else {
                        break;
                    };
                    up_to = Some(row.get::<_, i64>(0).map_err(sql)?);
                    freed += row.get::<_, i64>(1).map_err(sql)?.max(0) as u64;
                }
            }
            if let Some(id) = up_to {
                conn.execute("DELETE FROM dead_letters WHERE id <= ?1", [id])
                    .map_err(sql)?;
                self.dead_bytes = self.dead_bytes.saturating_sub(freed);
            }
        }
        self.written()
    }

    fn size(&self) -> StoreSize {
        StoreSize {
            events: self.events,
            bytes: self.bytes,
        }
    }

    fn oldest_age(&self) -> Option<Duration> {
        self.oldest_ms
            .map(|ms| Duration::from_millis(now_ms().saturating_sub(ms).max(0) as u64))
    }

    fn sync(&mut self) -> Result<(), Error> {
        self.same_process()?;
        if self.unsynced {
            self.checkpoint("FULL")?;
        }
        Ok(())
    }

    /// Commits the transaction with `synchronous = FULL`: durable when the commit returns
    /// (see the module docs). The sync happens under the caller's lock, as SQLite makes it.
    fn append_durably(&mut self, events: &[&[u8]]) -> Result<Appended, Error> {
        self.same_process()?;
        let level = synchronous(self.config.fsync, true);
        if level == "FULL" {
            self.append(events)?;
            return Ok(Appended::Durable);
        }
        let path = self.config.path.as_path();
        let conn = live(&mut self.conn, path)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| sql_error(path, e))?;
        self.durable_appends = true;
        let appended = self.append(events);
        let path = self.config.path.as_path();
        let restored = live(&mut self.conn, path).and_then(|conn| {
            conn.pragma_update(None, "synchronous", level)
                .map_err(|e| sql_error(path, e))
        });
        appended?;
        if let Err(e) = restored {
            // Durable all the same; later transactions sync too, which is slower, not less safe.
            log::warn!("{e} (setting synchronous = {level} again)");
        }
        Ok(Appended::Durable)
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn tick(&mut self) -> Result<(), Error> {
        self.same_process()?;
        self.watch.check("sqlite")?;
        match self.config.fsync {
            Fsync::Interval(every) if self.unsynced && self.last_sync.elapsed() >= every => {
                self.checkpoint("FULL")
            }
            _ => Ok(()),
        }
    }

    /// Checkpoints the WAL into the database (emptying it), syncs, and closes the database.
    fn close(&mut self) -> Result<(), Error> {
        self.same_process()?;
        if self.conn.is_none() {
            return Ok(());
        }
        if let Some(conn) = self.conn.as_ref() {
            self.consumed.delete_at_close(conn, &self.config.path);
        }
        let checkpointed = self.checkpoint("TRUNCATE");
        let closed = match self.conn.take() {
            Some(conn) => conn
                .close()
                .map_err(|(_, e)| sql_error(&self.config.path, e)),
            None => Ok(()),
        };
        checkpointed.and(closed)
    }

    fn take_lost(&mut self) -> u64 {
        std::mem::take(&mut self.lost)
    }

    fn max_record_bytes(&self) -> usize {
        MAX_ROW.min(usize::try_from(self.config.max_total_bytes).unwrap_or(usize::MAX))
    }

    fn kind(&self) -> &str {
        "sqlite"
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if self.same_process().is_err() {
            // Closing would checkpoint and delete the parent's WAL: leave it to the parent.
            std::mem::forget(self.conn.take());
        }
    }
}

/// Creates `path` (mode 0600) and its directory (mode 0700) if missing; makes it private.
fn create_private(path: &Path) -> Result<(), Error> {
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| fail(path, format_args!("creating {}: {e}", dir.display())))?;
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| fail(path, e))?;
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| fail(path, e))
}

fn live<'c>(conn: &'c mut Option<Connection>, path: &Path) -> Result<&'c mut Connection, Error> {
    conn.as_mut().ok_or_else(|| closed(path))
}

fn closed(path: &Path) -> Error {
    fail(path, "the store is closed")
}

fn fail(path: &Path, message: impl Display) -> Error {
    Error::store("sqlite", format!("{}: {message}", path.display()))
}

fn sql_error(path: &Path, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => fail(
            path,
            format_args!(
                "the store is in use by another process, or by another store open on it in \
                 this one ({e})"
            ),
        ),
        _ => fail(path, e),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
