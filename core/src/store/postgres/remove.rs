//! Deleting the rows the sink settled.
//!
//! A delete whose answer is lost — the connection broke while the server ran or committed
//! it, and the store could not connect again at once — may or may not have taken effect.
//! Failing the commit would have the pipeline take the first rows of its next read for
//! these same rows sent again (counted `redelivered`, not `delivered`), while, if the
//! delete did take effect, they are other rows, sent for the first time: `delivered` would
//! end low and `stored` high by as many. So a commit always stands: the rows it settled
//! are kept here until a delete of them goes through, which runs before anything else is
//! read (and from `tick` and `close`). Deleting twice has the effect of once; what the
//! second delete finds gone tells that the first took effect. A restart before then sends
//! them again once their lease ends (at least once), as after a crash.

use super::{PostgresStore, describe, stored_at};
use crate::Error;

impl PostgresStore {
    /// Settles the first `n` rows of the last read: deleted now, or before the next read.
    pub(super) fn settle(&mut self, n: usize) {
        let n = n.min(self.read.len());
        self.settled.extend(self.read.drain(..n).map(|(id, _)| id));
        if let Err(e) = self.remove_settled() {
            log::warn!(
                "postgres store, table {}: could not delete {} sent events, or could not \
                 tell whether it did ({e}); they are deleted before the next read (a restart \
                 before then sends them again)",
                self.config.table,
                self.settled.len()
            );
        }
    }

    /// Deletes the settled rows this store still holds, if any.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] naming the table when the delete fails or its answer is lost: the
    /// rows stay settled, for the next call to delete.
    pub(super) fn remove_settled(&mut self) -> Result<(), Error> {
        if self.settled.is_empty() {
            return Ok(());
        }
        let ids = std::mem::take(&mut self.settled);
        let row = match self.run(|c, owner| c.client.query_one(&c.commit, &[&ids, &owner])) {
            Ok(row) => row,
            Err(e) => {
                self.settled = ids;
                return Err(e);
            }
        };
        // Deleted: from here on an error is only about the counts, which the next recount
        // (`refresh`) sets right; the delete is not to be made again for it.
        let decoded = (|| -> Result<(i64, i64, Option<f64>, i64), postgres::Error> {
            Ok((
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
            ))
        })();
        let (deleted, deleted_bytes, oldest_age, taken) = match decoded {
            Ok(values) => values,
            Err(e) => {
                log::warn!(
                    "postgres store, table {}: {} sent events deleted, but the answer could \
                     not be read ({}); the counts are set right at the next recount",
                    self.config.table,
                    ids.len(),
                    describe(&e)
                );
                return Ok(());
            }
        };
        let asked = i64::try_from(ids.len()).unwrap_or(i64::MAX);
        if taken > 0 {
            log::warn!(
                "postgres store, table {}: {taken} of {asked} sent events had been claimed by \
                 another replica (lease {:?} expired), which sends them again",
                self.config.table,
                self.config.lease
            );
        }
        let gone = asked - deleted - taken;
        if gone > 0 {
            // Either is possible, and the table cannot tell which: say both.
            log::warn!(
                "postgres store, table {}: {gone} of {asked} sent events were deleted already: \
                 by an earlier delete whose answer was lost, or by another replica that \
                 claimed them after their lease ran out and sent them again",
                self.config.table
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
}
