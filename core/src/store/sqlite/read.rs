//! Reading the oldest rows, and what becomes of a row that cannot be an event.
//!
//! Every event a pipeline stores is a JSON object of UTF-8 bytes. SQLite checks no payload,
//! so a row that is not one was damaged — on disk, or by a hand that edited the file —
//! and is to the drain what a record failing its CRC is to the file store: not sent,
//! counted lost (`dropped.damaged`, through `take_lost`), logged once with its row id, and
//! deleted with the rows around it.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};

use super::{SqliteStore, live, sql_error};
use crate::Error;
use crate::store::check::rows_named;
use crate::store::{StoredBatch, fits};

/// Rows after `?1`: those up to it were consumed, and are only not deleted yet (a full disk).
const READ_OLDEST: &str =
    "SELECT id, stored_at_ms, event FROM events WHERE id > ?1 ORDER BY id LIMIT ?2";
const ROW_LENGTH: &str = "SELECT length(event) FROM events WHERE id = ?1";
/// Damaged rows one read skips at most: it holds the store's lock, which `Spill` and `wal`
/// callers wait for. A read that stops there returns nothing, and the next goes on.
const MAX_SKIPPED: usize = 10_000;

/// An event of the last read: its row, size and age.
#[derive(Debug, Clone, Copy)]
pub(super) struct Read {
    pub(super) id: i64,
    pub(super) len: u64,
    pub(super) stored_at_ms: i64,
}

/// The event a row holds, or why it cannot be one. Cheap, as it runs on every row the
/// drain sends: a UTF-8 check and the object's braces, not a parse. `verify` parses too;
/// a row that only the parse refuses is sent, and the receiver refuses it.
pub(super) fn event_of(value: ValueRef<'_>) -> Result<&[u8], &'static str> {
    let bytes = match value {
        ValueRef::Blob(b) | ValueRef::Text(b) => b,
        ValueRef::Null | ValueRef::Integer(_) | ValueRef::Real(_) => return Err("not bytes"),
    };
    if simdutf8::basic::from_utf8(bytes).is_err() {
        return Err("not UTF-8");
    }
    match bytes.trim_ascii() {
        [b'{', .., b'}'] => Ok(bytes),
        _ => Err("not a JSON object"),
    }
}

impl SqliteStore {
    /// [`Store::read_oldest`](crate::Store::read_oldest): damaged rows at the front of the
    /// read are consumed and counted lost; one behind events read ends the read, and is
    /// counted when a later read starts at it — so a row is counted once, however the
    /// commits between fall.
    pub(super) fn read_rows(
        &mut self,
        max_events: usize,
        max_bytes: usize,
        out: &mut StoredBatch,
    ) -> Result<(), Error> {
        out.clear();
        self.read.clear();
        let path = self.config.path.as_path();
        let sql = |e| sql_error(path, e);
        let conn = live(&mut self.conn, path)?;
        let limit = i64::try_from(max_events.max(1)).unwrap_or(i64::MAX);
        let mut damaged: Vec<(i64, &'static str)> = Vec::new();
        let mut select = conn.prepare_cached(READ_OLDEST).map_err(sql)?;
        loop {
            let mut rows = select.query([self.consumed.after(), limit]).map_err(sql)?;
            let (mut seen, mut bytes) = (0i64, 0usize);
            while let Some(row) = rows.next().map_err(sql)? {
                seen += 1;
                let id: i64 = row.get(0).map_err(sql)?;
                let value = row.get_ref(2).map_err(sql)?;
                let event = match event_of(value) {
                    Ok(event) => event,
                    Err(_) if !out.is_empty() => break,
                    Err(why) => {
                        let len = match value {
                            ValueRef::Blob(b) | ValueRef::Text(b) => b.len() as u64,
                            // As open counted it: SQLite's length of the value as text.
                            _ => row_length(conn, id).map_err(sql)?,
                        };
                        self.consumed.skip(id);
                        self.events = self.events.saturating_sub(1);
                        self.bytes = self.bytes.saturating_sub(len);
                        self.lost += 1;
                        damaged.push((id, why));
                        continue;
                    }
                };
                if !fits(out.len(), bytes, event.len(), max_events, max_bytes) {
                    break;
                }
                bytes += event.len() + 1;
                out.push(event);
                self.read.push_back(Read {
                    id,
                    len: event.len() as u64,
                    // A damaged time (not an integer) must not stop the drain: it only
                    // gives the event's age, taken as now.
                    stored_at_ms: row.get(1).unwrap_or_else(|_| super::now_ms()),
                });
            }
            // A whole read of damage: the rows after it may hold events.
            if !(out.is_empty() && seen == limit && damaged.len() < MAX_SKIPPED) {
                break;
            }
        }
        if damaged.is_empty() {
            return Ok(());
        }
        log::warn!("{}", damaged_line(path, &damaged));
        self.oldest_ms = match self.read.front() {
            Some(r) => Some(r.stored_at_ms),
            None if self.events == 0 => None,
            None => self.consumed.oldest_ms(conn).map_err(sql)?,
        };
        Ok(())
    }
}

/// `SQLite`'s `length(event)` of row `id`, as open summed it.
fn row_length(conn: &Connection, id: i64) -> rusqlite::Result<u64> {
    let len: Option<i64> = conn
        .prepare_cached(ROW_LENGTH)?
        .query_row([id], |row| row.get(0))
        .optional()?
        .flatten();
    Ok(len.unwrap_or(0).max(0) as u64)
}

/// The line that says which rows a read found damaged, and why.
pub(super) fn damaged_line(path: &Path, damaged: &[(i64, &'static str)]) -> String {
    let mut reasons: Vec<&'static str> = Vec::new();
    for (_, why) in damaged {
        if !reasons.contains(why) {
            reasons.push(why);
        }
    }
    let found: Vec<String> = reasons
        .iter()
        .map(|reason| {
            let ids: Vec<i64> = damaged
                .iter()
                .filter(|(_, why)| why == reason)
                .map(|(id, _)| *id)
                .collect();
            format!("{}: {reason}", rows_named(&ids))
        })
        .collect();
    format!(
        "{}: damaged rows in events, not sent (counted in dropped.damaged): {}",
        path.display(),
        found.join("; ")
    )
}
