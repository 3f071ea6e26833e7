//! Checking an SQLite store without changing it, reading its dead letters, and moving them
//! back into its log.
//!
//! SQLite writes beside a database whenever it opens one in WAL mode, even read-only (it
//! makes `-wal` and `-shm` files). So a check opens the database `immutable` when no WAL is
//! left (a store closed cleanly), and otherwise a private copy of the database and its WAL
//! (a crash left it, or a pipeline has it open): either way nothing of the store is
//! written. Another process holding it (exclusive locking mode) is found in `/proc/locks`.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, types::ValueRef};

use super::read::event_of;
use super::totals::{Totals, unopenable};
use super::{INSERT_EVENT, SqliteStore, SqliteStoreConfig, fail, live, now_ms, sql_error};
use crate::store::Store;
use crate::store::check::{PartCheck, StoreCheck, is_json_object, rows_named};
use crate::store::locks;
use crate::{DeadLetter, Error};

impl SqliteStore {
    /// Checks the database at `path` without changing it: `PRAGMA integrity_check`, and
    /// every row of `events` and `dead_letters` read (a row that is not bytes, not UTF-8 or
    /// not framed as a JSON object was damaged: a pipeline does not send it, and counts it
    /// lost; one that is framed so but does not parse is sent as it is). Says what the
    /// store holds and what is wrong; SQLite stores are not salvaged on open, so damage
    /// here means restoring the file or recovering it with `sqlite3 <path> .recover`. Open
    /// counts what both tables hold, reading every page of them: where that fails, open
    /// fails, and [`StoreCheck::open_error`] says so in open's words.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] naming the file when there is no such file, it cannot be read as a
    /// database at all (a pipeline could not open it either), it is no auditbuf store, or
    /// another process has it open (naming it: `…: the store is in use by
    /// another process (pid 4242)`); [`Error::Io`] naming the temporary directory a WAL is
    /// copied into.
    pub fn verify(path: impl AsRef<Path>) -> Result<StoreCheck, Error> {
        let path = path.as_ref();
        let snapshot = Snapshot::take(path)?;
        let conn = &snapshot.conn;
        let mut check = StoreCheck::new("sqlite", path.display().to_string());
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let mut file = PartCheck::new(&name, snapshot.db_bytes);
        if snapshot.wal_bytes > 0 {
            check.notes.push(format!(
                "{name}-wal: {} bytes of transactions not yet copied into the database (a crash, or a pipeline that still has it open, left them); checked on a private copy; opening the store copies them in",
                snapshot.wal_bytes
            ));
        }
        // A file whose schema cannot be read: nothing in it can be counted, and a pipeline
        // cannot open it; not a check with "nothing lost".
        let tables = table_names(conn).map_err(|e| {
            fail(
                path,
                format!(
                    "unreadable ({e}); a pipeline cannot open it: restore it, or try `sqlite3 {} .recover`",
                    path.display()
                ),
            )
        })?;
        if !tables.iter().any(|t| t == "events") {
            return Err(fail(path, "not an auditbuf store (it has no events table)"));
        }
        match integrity(conn) {
            Ok(found) if found.len() == 1 && found[0] == "ok" => {
                file.state = "integrity_check: ok".to_owned();
            }
            Ok(found) => {
                file.damaged = true;
                file.state = format!("integrity_check: {}", found.join("; "));
                check.problems.push(format!(
                    "{name}: integrity_check found {} problem(s): {}; restore it, or try `sqlite3 {} .recover`",
                    found.len(),
                    found.join("; "),
                    path.display()
                ));
            }
            Err(e) => {
                file.damaged = true;
                file.state = format!("integrity_check failed: {e}");
                check.problems.push(format!(
                    "{name}: integrity_check failed ({e}); restore it, or try `sqlite3 {} .recover`",
                    path.display()
                ));
            }
        }
        let file_at = check.parts.len();
        check.parts.push(file);
        let dead_letters = tables.iter().any(|t| t == "dead_letters");
        // What open reads before it returns: where that fails, the store does not open.
        if let Err(e) = Totals::read(conn, dead_letters) {
            let why = unopenable(path, &e);
            check.problems.push(format!("{name}: {why}"));
            check.open_error = Some(why);
        }

        let events = read_table(
            conn,
            "SELECT id, stored_at_ms, event FROM events ORDER BY id",
            &mut |at, event| check.keep(event.len() as u64, at),
        );
        let mut part = events.part("events", &mut check.problems, true);
        part.kept = events.records - events.damaged.len() as u64;
        check.parts.push(part);
        check.lost_events += events.lost.unwrap_or(0);
        check.parts[file_at].records = events.records;
        check.parts[file_at].kept = part_kept(&check.parts);

        if dead_letters {
            let dead = read_table(
                conn,
                "SELECT id, at_ms, event FROM dead_letters ORDER BY id",
                &mut |_, _| {},
            );
            check.dead_letters = dead.records;
            check.parts[file_at].records += dead.records;
            let mut part = dead.part("dead_letters", &mut check.problems, false);
            part.dead_letters = true;
            check.parts.push(part);
        }
        Ok(check)
    }

    /// The dead letters of the database at `path`, oldest first, read without changing
    /// anything.
    ///
    /// # Errors
    ///
    /// As [`verify`](SqliteStore::verify), and [`Error::Store`] naming the file for a
    /// database error (no `dead_letters` table, a row that cannot be read).
    pub fn read_dead_letters(path: impl AsRef<Path>) -> Result<Vec<DeadLetter>, Error> {
        let path = path.as_ref();
        let snapshot = Snapshot::take(path)?;
        let sql = |e| sql_error(path, e);
        let mut stmt = snapshot
            .conn
            .prepare("SELECT at_ms, reason, event FROM dead_letters ORDER BY id")
            .map_err(sql)?;
        let letters = stmt
            .query_map([], |row| {
                Ok(DeadLetter {
                    at: time_of(row.get(0)?),
                    reason: row.get(1)?,
                    event: bytes_of(row.get_ref(2)?).unwrap_or_default().to_vec(),
                })
            })
            .map_err(sql)?;
        letters.collect::<Result<Vec<_>, _>>().map_err(sql)
    }

    /// Moves the dead letters `select` picks back into `events`, oldest first, after
    /// everything the store holds, so that a pipeline sends them again; one transaction
    /// inserts them and deletes them from `dead_letters`, so a crash leaves each in one
    /// place only. Returns how many moved.
    ///
    /// # Errors
    ///
    /// Those of [`verify`](SqliteStore::verify) and [`open`](SqliteStore::open) (no such
    /// database, no auditbuf store, another process has it open, a database error);
    /// [`Error::StoreFull`] (`max_total_bytes`) if the events would take it over that
    /// limit.
    pub fn replay_dead_letters(
        config: &SqliteStoreConfig,
        mut select: impl FnMut(&DeadLetter) -> bool,
    ) -> Result<u64, Error> {
        // Never turn another program's database into a store (opening one would).
        let snapshot = Snapshot::take(&config.path)?;
        let tables = table_names(&snapshot.conn).map_err(|e| sql_error(&config.path, e))?;
        if !["events", "dead_letters"]
            .iter()
            .all(|t| tables.iter().any(|have| have == t))
        {
            return Err(fail(
                &config.path,
                "not an auditbuf store (it has no events and dead_letters tables)",
            ));
        }
        drop(snapshot);
        let mut store = SqliteStore::open(config.clone())?;
        let moved = store.replay(&mut select);
        let closed = store.close();
        let moved = moved?;
        closed?;
        Ok(moved)
    }

    fn replay(&mut self, select: &mut dyn FnMut(&DeadLetter) -> bool) -> Result<u64, Error> {
        let path = self.config.path.clone();
        let sql = |e| sql_error(&path, e);
        let conn = live(&mut self.conn, &path)?;
        let tx = conn.transaction().map_err(sql)?;
        let mut picked: Vec<(i64, Vec<u8>)> = Vec::new();
        {
            let mut stmt = tx
                .prepare("SELECT id, at_ms, reason, event FROM dead_letters ORDER BY id")
                .map_err(sql)?;
            let mut rows = stmt.query([]).map_err(sql)?;
            while let Some(row) = rows.next().map_err(sql)? {
                let letter = DeadLetter {
                    at: time_of(row.get(1).map_err(sql)?),
                    reason: row.get(2).map_err(sql)?,
                    event: bytes_of(row.get_ref(3).map_err(sql)?)
                        .unwrap_or_default()
                        .to_vec(),
                };
                if select(&letter) {
                    picked.push((row.get(0).map_err(sql)?, letter.event));
                }
            }
        }
        let adding: u64 = picked.iter().map(|(_, e)| e.len() as u64).sum();
        if self.bytes + adding > self.config.max_total_bytes {
            return Err(Error::StoreFull {
                limit: "max_total_bytes",
                value: self.config.max_total_bytes,
            });
        }
        {
            let now = now_ms();
            let mut insert = tx.prepare(INSERT_EVENT).map_err(sql)?;
            let mut delete = tx
                .prepare("DELETE FROM dead_letters WHERE id = ?1")
                .map_err(sql)?;
            for (id, event) in &picked {
                insert.execute((now, event.as_slice())).map_err(sql)?;
                delete.execute([id]).map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)?;
        Ok(picked.len() as u64)
    }
}

/// The events kept, from the `events` part.
fn part_kept(parts: &[PartCheck]) -> u64 {
    parts
        .iter()
        .filter(|p| p.name == "events")
        .map(|p| p.kept)
        .sum()
}

/// What reading every row of a table found.
#[derive(Default)]
struct TableRead {
    records: u64,
    bytes: u64,
    /// Rows that are no event (`read::event_of`), and why: a drain skips them.
    damaged: Vec<(i64, &'static str)>,
    /// Rows a drain sends although they are not JSON.
    not_json: Vec<i64>,
    /// Reading stopped early: after which row, and why.
    stopped: Option<(Option<i64>, String)>,
    /// Events lost, when any.
    lost: Option<u64>,
}

impl TableRead {
    fn part(&self, name: &str, problems: &mut Vec<String>, events: bool) -> PartCheck {
        let mut part = PartCheck::new(name, self.bytes);
        part.records = self.records;
        let mut found = Vec::new();
        let mut reasons: Vec<&'static str> = Vec::new();
        for (_, why) in &self.damaged {
            if !reasons.contains(why) {
                reasons.push(why);
            }
        }
        for reason in reasons {
            let ids: Vec<i64> = self
                .damaged
                .iter()
                .filter(|(_, why)| *why == reason)
                .map(|(id, _)| *id)
                .collect();
            found.push(format!(
                "{}: {reason} (damaged){}",
                rows_named(&ids),
                if events {
                    "; a pipeline does not send it, and counts it lost"
                } else {
                    ""
                }
            ));
        }
        if !self.not_json.is_empty() {
            found.push(format!(
                "{}: not valid JSON (damaged){}",
                rows_named(&self.not_json),
                if events {
                    "; a pipeline would send it as it is and the receiver would likely refuse it"
                } else {
                    ""
                }
            ));
        }
        if let Some((after, why)) = &self.stopped {
            found.push(match after {
                Some(id) => format!("rows after id {id} unreadable: {why}"),
                None => format!("unreadable: {why}"),
            });
        }
        if !found.is_empty() {
            part.damaged = true;
            part.state = found.join("; ");
            problems.push(format!("{name}: {}", part.state));
        }
        part
    }
}

/// Reads `(id, ms, event)` rows of `query`, calling `keep` for each readable event.
fn read_table(
    conn: &Connection,
    query: &str,
    keep: &mut dyn FnMut(SystemTime, &[u8]),
) -> TableRead {
    let mut read = TableRead::default();
    let mut last = None;
    let result = (|| -> rusqlite::Result<()> {
        let mut stmt = conn.prepare(query)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            last = Some(id);
            read.records += 1;
            // A damaged time (not an integer) is no damage to the event: the store sends it.
            let at = time_of(row.get::<_, Option<i64>>(1).ok().flatten().unwrap_or(0));
            let value = row.get_ref(2)?;
            read.bytes += bytes_of(value).map_or(0, |b| b.len() as u64);
            match event_of(value) {
                Ok(event) => {
                    if !is_json_object(event) {
                        read.not_json.push(id);
                    }
                    keep(at, event);
                }
                Err(why) => read.damaged.push((id, why)),
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        read.stopped = Some((last, e.to_string()));
        read.lost = Some(1);
    }
    if !read.damaged.is_empty() {
        *read.lost.get_or_insert(0) += read.damaged.len() as u64;
    }
    read
}

fn bytes_of(value: ValueRef<'_>) -> Option<&[u8]> {
    match value {
        ValueRef::Blob(b) | ValueRef::Text(b) => Some(b),
        _ => None,
    }
}

fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?;
    let names = stmt.query_map([], |row| row.get(0))?;
    names.collect()
}

fn integrity(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("PRAGMA integrity_check(20)")?;
    let found = stmt.query_map([], |row| row.get(0))?;
    found.collect()
}

fn time_of(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// Fails unless `path` is an existing file.
fn existing(path: &Path) -> Result<(), Error> {
    match fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(fail(path, "not a file")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(fail(path, "no such file")),
        Err(e) => Err(fail(path, e)),
    }
}

/// Fails if a process holds a lock on the database (a pipeline has it open).
fn not_in_use(path: &Path) -> Result<(), Error> {
    let holders = locks::holders(path);
    if holders.is_empty() {
        Ok(())
    } else {
        Err(fail(
            path,
            format_args!(
                "the store is in use by another process{}",
                locks::describe(&holders)
            ),
        ))
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The database as it is, opened so that nothing of it is written.
struct Snapshot {
    conn: Connection,
    db_bytes: u64,
    wal_bytes: u64,
    /// The private copy read instead of the store, removed when done.
    _copy: Option<PrivateCopy>,
}

impl Snapshot {
    fn take(path: &Path) -> Result<Snapshot, Error> {
        existing(path)?;
        not_in_use(path)?;
        let sql = |e| sql_error(path, e);
        let wal = sibling(path, "-wal");
        let stamp = || {
            let of = |p: &Path| fs::metadata(p).map(|m| (m.len(), m.mtime(), m.mtime_nsec()));
            (of(path).ok(), of(&wal).ok())
        };
        let before = stamp();
        let db_bytes = before.0.map_or(0, |s| s.0);
        let wal_bytes = before.1.map_or(0, |s| s.0);
        if wal_bytes == 0 {
            let conn = Connection::open_with_flags(
                immutable_uri(path),
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(sql)?;
            return Ok(Snapshot {
                conn,
                db_bytes,
                wal_bytes,
                _copy: None,
            });
        }
        let copy = PrivateCopy::new()?;
        let db = copy.0.join("store.db");
        fs::copy(path, &db).map_err(|e| fail(path, format_args!("copying it: {e}")))?;
        fs::copy(&wal, sibling(&db, "-wal"))
            .map_err(|e| fail(path, format_args!("copying {}: {e}", wal.display())))?;
        if stamp() != before || !locks::holders(path).is_empty() {
            return Err(fail(
                path,
                "changed while it was being read: another process is using it",
            ));
        }
        let conn = Connection::open_with_flags(
            &db,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql)?;
        Ok(Snapshot {
            conn,
            db_bytes,
            wal_bytes,
            _copy: Some(copy),
        })
    }
}

/// A private temporary directory (mode 0700), removed with what it holds when dropped.
struct PrivateCopy(PathBuf);

impl PrivateCopy {
    fn new() -> Result<PrivateCopy, Error> {
        let dir = std::env::temp_dir().join(format!(
            "auditbuf-check-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io(&dir, e))?;
        Ok(PrivateCopy(dir))
    }
}

impl Drop for PrivateCopy {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `file:<path, percent-encoded>?immutable=1`: read as a file that cannot change — no
/// locks, no `-wal` or `-shm` made.
fn immutable_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}
