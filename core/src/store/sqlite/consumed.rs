//! Rows the store is done with but has not deleted yet.
//!
//! A commit deletes the rows the sink settled. SQLite needs room in its WAL to delete, so
//! on a full disk the delete fails; the rows were delivered all the same, so they are
//! consumed here — skipped by later reads — and deleted by the next commit or close that
//! can. A restart before then sends them again (at least once). Damaged rows a read
//! skipped at its front are consumed the same way, deleted with the rows after them.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::sql_error;
use crate::throttle::Throttle;

const DELETE_UP_TO: &str = "DELETE FROM events WHERE id <= ?1";
const OLDEST_MS_AFTER: &str = "SELECT stored_at_ms FROM events WHERE id > ?1 ORDER BY id LIMIT 1";

#[derive(Debug, Default)]
pub(super) struct Consumed {
    /// Rows up to this id are consumed but still in the file.
    up_to: Option<i64>,
    warnings: Throttle,
}

impl Consumed {
    /// Reads start after this row id.
    pub(super) fn after(&self) -> i64 {
        self.up_to.unwrap_or(i64::MIN)
    }

    /// Consumes the rows up to `id`, damaged rows a read skipped (it found them in order,
    /// each right after the last consumed).
    pub(super) fn skip(&mut self, id: i64) {
        self.up_to = Some(id);
    }

    /// Deletes the rows up to `id`, which the sink settled. They are consumed whatever the
    /// disk does: failing the commit would have them read and sent again, and on a full
    /// disk nothing else would ever be sent.
    pub(super) fn delete_up_to(&mut self, conn: &Connection, path: &Path, id: i64) {
        let deleted = conn
            .prepare_cached(DELETE_UP_TO)
            .and_then(|mut delete| delete.execute([id]));
        match deleted {
            Ok(_) => self.up_to = None,
            Err(e) => {
                self.up_to = Some(id);
                if let Some(times) = self.warnings.note(1) {
                    log::warn!(
                        "{}: could not delete sent events ({times} time{} since the last \
                         such line; they are skipped, and a restart before a later delete \
                         succeeds sends them again): {}",
                        path.display(),
                        if times == 1 { "" } else { "s" },
                        sql_error(path, e)
                    );
                }
            }
        }
    }

    /// At close, one more try: otherwise a restart sends them again.
    pub(super) fn delete_at_close(&mut self, conn: &Connection, path: &Path) {
        let Some(id) = self.up_to else {
            return;
        };
        match conn.execute(DELETE_UP_TO, [id]) {
            Ok(_) => self.up_to = None,
            Err(e) => log::warn!(
                "{}: could not delete sent events at close; the next open sends them again: {}",
                path.display(),
                sql_error(path, e)
            ),
        }
    }

    /// When the oldest row not consumed was stored (`None` too if its time is damaged: it
    /// only gives an age).
    pub(super) fn oldest_ms(&self, conn: &Connection) -> rusqlite::Result<Option<i64>> {
        Ok(conn
            .prepare_cached(OLDEST_MS_AFTER)?
            .query_row([self.after()], |row| Ok(row.get::<_, i64>(0).ok()))
            .optional()?
            .flatten())
    }
}
