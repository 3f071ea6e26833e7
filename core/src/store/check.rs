//! Looking at a store without changing it: what opening it would keep, cut, move aside and
//! lose ([`StoreCheck`]), its dead letters, and putting dead letters back.
//!
//! Each durable store has the same three functions (`verify`, `read_dead_letters`,
//! `replay_dead_letters`: see [`FileStore`](super::FileStore) and the SQLite and Postgres
//! stores); [`StoreConfig`] picks the one its type needs. The first two never write
//! anything and refuse a store another process has open; the third moves dead letters back
//! into the log in one step a crash cannot half-do.

use std::time::SystemTime;

use super::StoreConfig;
use crate::{DeadLetter, Error};

/// What checking a store, without changing a byte of it, found: what opening it would keep
/// (and a pipeline would then send), cut, move aside and lose.
///
/// ```
/// use auditbuf::{FileStore, FileStoreConfig, Store};
///
/// let dir = std::env::temp_dir().join(format!("auditbuf-check-doc-{}", std::process::id()));
/// FileStore::open(FileStoreConfig::new(&dir))?.append(&[b"{\"n\":1}", b"{\"n\":2}"])?;
/// let check = FileStore::verify(&dir)?;
/// assert!(check.is_healthy());
/// assert_eq!((check.events, check.lost_events), (2, 0));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), auditbuf::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreCheck {
    /// Which store: `"file"`, `"sqlite"` or `"postgres"`.
    pub kind: String,
    /// The directory, database file, or table and server checked (never a password).
    pub location: String,
    /// Events opening the store would keep, to be sent.
    pub events: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// When the first event to be sent was stored.
    pub oldest: Option<SystemTime>,
    /// When the last one was stored.
    pub newest: Option<SystemTime>,
    /// Events lost to damage (at least one per damaged stretch): they cannot be sent.
    pub lost_events: u64,
    /// Why opening the store would fail, when it would (a damaged page of an SQLite
    /// store's tables, a file store's last possible segment number): a pipeline cannot
    /// start on it, so opening keeps, cuts and loses nothing. `events` then counts what is
    /// still readable, and `lost_events` what is not, for a recovery.
    pub open_error: Option<String>,
    /// Files of the store found missing: a file store's segments deleted between the read
    /// position's and the newest (`0000000000000003.seg`, or a run,
    /// `0000000000000003.seg to 0000000000000005.seg (3 segments)`). The events in them are
    /// lost, and not in `lost_events`: how many there were cannot be known.
    pub missing: Vec<String>,
    /// Bytes of damage a recovery would skip.
    pub damaged_bytes: u64,
    /// Bytes of a torn last record (a write a crash interrupted) a recovery would cut.
    pub cut_bytes: u64,
    /// What a recovery would move aside: damaged segments kept as `*.seg.corrupt` (their
    /// good records stay in the log), rows moved to `<table>_dead`.
    pub quarantined: Vec<String>,
    /// Events a recovery would move to the dead-letter area instead of sending them.
    pub quarantined_events: u64,
    /// The saved read position is unusable: reading would restart at the oldest event
    /// kept, so some events already sent would be sent again.
    pub cursor_reset: bool,
    /// Dead letters held.
    pub dead_letters: u64,
    /// Each file or table, with what was found in it.
    pub parts: Vec<PartCheck>,
    /// Damage, one sentence each. Empty when the store is healthy.
    pub problems: Vec<String>,
    /// What is worth knowing but is not damage: segments a recovery deletes because they
    /// were sent, rows a live replica holds, an interrupted replay.
    pub notes: Vec<String>,
}

impl StoreCheck {
    /// Whether opening the store would change or lose nothing: no damage, no torn record,
    /// no read position reset.
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }

    pub(crate) fn new(kind: &str, location: impl Into<String>) -> Self {
        StoreCheck {
            kind: kind.to_owned(),
            location: location.into(),
            ..StoreCheck::default()
        }
    }

    /// Counts a kept event stored at `at`.
    pub(crate) fn keep(&mut self, bytes: u64, at: SystemTime) {
        self.events += 1;
        self.bytes += bytes;
        self.oldest.get_or_insert(at);
        self.newest = Some(at);
    }
}

/// One file or table of a [`StoreCheck`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartCheck {
    /// The file or table: `0000000000000001.seg`, `dead-letters.log`, `events`, …
    pub name: String,
    /// Its size: the file's, or the payloads' for a table.
    pub bytes: u64,
    /// Records or rows readable in it (for a database file: in all its tables).
    pub records: u64,
    /// Of those, events a recovery would keep to send.
    pub kept: u64,
    /// Whether it holds dead letters (which are not sent) rather than events.
    pub dead_letters: bool,
    /// What was found and what a recovery would do about it: `ok` when nothing.
    pub state: String,
    /// Whether `state` describes damage.
    pub damaged: bool,
}

impl PartCheck {
    pub(crate) fn new(name: impl Into<String>, bytes: u64) -> Self {
        PartCheck {
            name: name.into(),
            bytes,
            state: "ok".to_owned(),
            ..PartCheck::default()
        }
    }
}

impl StoreConfig {
    /// Checks the store this configuration names without changing it: see [`StoreCheck`].
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the store does not exist, another process has it open (naming
    /// that process when it can), a query fails, or it is a memory or registered store;
    /// [`Error::Io`] naming a file that cannot be read; [`Error::Config`] naming a Postgres
    /// setting out of range.
    pub fn verify(&self) -> Result<StoreCheck, Error> {
        match self {
            StoreConfig::File(c) => super::FileStore::verify(&c.path),
            #[cfg(feature = "sqlite")]
            StoreConfig::Sqlite(c) => super::SqliteStore::verify(&c.path),
            #[cfg(feature = "postgres")]
            StoreConfig::Postgres(c) => super::PostgresStore::verify(c),
            other => Err(offline_only(other)),
        }
    }

    /// The dead letters the store keeps, oldest first, read without changing anything.
    ///
    /// # Errors
    ///
    /// As [`verify`](Self::verify).
    pub fn read_dead_letters(&self) -> Result<Vec<DeadLetter>, Error> {
        match self {
            StoreConfig::File(c) => super::FileStore::read_dead_letters(&c.path),
            #[cfg(feature = "sqlite")]
            StoreConfig::Sqlite(c) => super::SqliteStore::read_dead_letters(&c.path),
            #[cfg(feature = "postgres")]
            StoreConfig::Postgres(c) => super::PostgresStore::read_dead_letters(c),
            other => Err(offline_only(other)),
        }
    }

    /// Moves the dead letters `select` picks back into the store's log, oldest first, so
    /// that a pipeline sends them again, and removes them from the dead-letter area in the
    /// same step: a crash leaves each one either still a dead letter or in the log, never
    /// both, so replaying again never duplicates. `select` may see a dead letter more than
    /// once. Returns how many moved. A Postgres table is shared: rows other replicas hold
    /// are not touched.
    ///
    /// # Errors
    ///
    /// As [`verify`](Self::verify), and those of opening the store
    /// ([`StoreConfig::open`]); [`Error::StoreFull`] (`max_total_bytes`) if the events
    /// would take the store over that limit.
    pub fn replay_dead_letters(
        &self,
        select: impl FnMut(&DeadLetter) -> bool,
    ) -> Result<u64, Error> {
        match self {
            StoreConfig::File(c) => super::FileStore::replay_dead_letters(c, select),
            #[cfg(feature = "sqlite")]
            StoreConfig::Sqlite(c) => super::SqliteStore::replay_dead_letters(c, select),
            #[cfg(feature = "postgres")]
            StoreConfig::Postgres(c) => super::PostgresStore::replay_dead_letters(c, select),
            other => Err(offline_only(other)),
        }
    }
}

/// Rows a message names, at most.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const NAMED: usize = 5;

/// `row id 7`, `rows 7, 9, 12`, `rows 7, 9, 12, 13, 20 and 4 more`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn rows_named(ids: &[i64]) -> String {
    let shown: Vec<String> = ids.iter().take(NAMED).map(i64::to_string).collect();
    match ids.len() {
        1 => format!("row id {}", shown[0]),
        n if n <= NAMED => format!("rows {}", shown.join(", ")),
        n => format!("rows {} and {} more", shown.join(", "), n - NAMED),
    }
}

/// Whether `event` is one JSON object, as every event a pipeline stores is: UTF-8 too,
/// which serde_json does not check in the strings it skips.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn is_json_object(event: &[u8]) -> bool {
    event.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        && simdutf8::basic::from_utf8(event).is_ok()
        && serde_json::from_slice::<serde::de::IgnoredAny>(event).is_ok()
}

fn offline_only(config: &StoreConfig) -> Error {
    let kind = match config {
        StoreConfig::Memory(_) => "memory",
        StoreConfig::Custom { kind, .. } => kind.as_str(),
        _ => "this",
    };
    Error::store(
        kind,
        "only file, SQLite and Postgres stores can be read from outside the process that uses them",
    )
}

#[cfg(all(test, any(feature = "sqlite", feature = "postgres")))]
mod tests {
    use super::is_json_object;

    #[test]
    fn a_stored_event_must_be_a_json_object_of_utf8() {
        assert!(is_json_object(br#" {"a":"b\u00e9"}"#));
        assert!(is_json_object("{\"a\":\"\u{e9}\"}".as_bytes()));
        assert!(!is_json_object(b"[1]"));
        assert!(!is_json_object(b"{\"a\":1"));
        // Bytes that are not UTF-8 inside a string serde_json only skips.
        assert!(!is_json_object(b"{\"a\":\"\xff\xff\"}"));
        assert!(!is_json_object(b"{\"a\":\"\xed\xa0\x80\"}"));
    }
}
