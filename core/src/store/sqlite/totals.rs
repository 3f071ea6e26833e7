//! What open reads of the database before it returns, and what it says when it cannot.

use std::path::Path;

use rusqlite::{Connection, ErrorCode, OptionalExtension};

use super::DEAD_SIZE;

const OLDEST_MS: &str = "SELECT stored_at_ms FROM events ORDER BY id LIMIT 1";

/// What open reads of the database before it returns. Counting reads every page of both
/// tables, so a damaged one makes open fail here; `verify` reads the same, to say so.
#[derive(Debug, Default)]
pub(super) struct Totals {
    pub(super) events: u64,
    pub(super) bytes: u64,
    pub(super) oldest_ms: Option<i64>,
    pub(super) dead_bytes: u64,
}

impl Totals {
    /// `dead_letters`: whether that table exists (open makes it when it does not).
    pub(super) fn read(conn: &Connection, dead_letters: bool) -> rusqlite::Result<Totals> {
        let (events, bytes): (i64, i64) = conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(length(event)), 0) FROM events",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        // A damaged time (not an integer) only leaves the age unknown.
        let oldest_ms: Option<i64> = conn
            .query_row(OLDEST_MS, [], |row| Ok(row.get::<_, i64>(0).ok()))
            .optional()?
            .flatten();
        let dead_bytes: i64 = if dead_letters {
            conn.query_row(
                &format!("SELECT COALESCE(SUM({DEAD_SIZE}), 0) FROM dead_letters"),
                [],
                |row| row.get(0),
            )?
        } else {
            0
        };
        Ok(Totals {
            events: events.max(0) as u64,
            bytes: bytes.max(0) as u64,
            oldest_ms,
            dead_bytes: dead_bytes.max(0) as u64,
        })
    }
}

/// Why open fails when it cannot read its totals, and, for damage, what to do: the same
/// words from open and from `verify`.
pub(super) fn unopenable(path: &Path, e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => format!(
            "{e}: the store cannot be opened until the file is restored, or its readable rows \
             recovered into a new one (`sqlite3 {} .recover`)",
            path.display()
        ),
        _ => e.to_string(),
    }
}
