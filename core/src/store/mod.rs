//! Where events wait when the sink cannot take them: a backing store.
//!
//! - [`memory`]: a bounded FIFO in memory ([`MemoryStore`]);
//! - [`file`]: a segmented write-ahead log in a directory ([`FileStore`]);
//! - `sqlite`: an SQLite database in WAL mode (`SqliteStore`, feature `sqlite`);
//! - `postgres`: a table several replicas can drain together (`PostgresStore`,
//!   feature `postgres`);
//! - [`config`]: choosing one from `{"type":…,"params":…}`, with a registry for your own;
//! - [`limits`]: the ranges their settings share.
//! - [`check`]: looking at a store from outside without changing it ([`StoreCheck`]), and
//!   moving its dead letters back into it (the `auditbuf` command's work);
//! - [`locks`]: which process holds a store's lock, for messages.
//! - [`sync`]: what a `wal` append still needs to be durable, done without the store's lock.
//!
//! Every store holds already-encoded events — bytes in, the same bytes out — in the order
//! they were appended, and hands them out oldest first without removing them until the
//! pipeline commits what the sink acknowledged.

mod check;
pub(crate) mod config;
mod crash_point;
pub(crate) mod file;
pub(crate) mod limits;
mod locks;
pub(crate) mod memory;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
pub(crate) mod sync;
mod watch;

use std::time::Duration;

use crate::Error;
pub(crate) use crash_point::crash_point;

pub use check::{PartCheck, StoreCheck};
pub use config::{StoreConfig, StoreFactory, StoreRegistry};
pub use file::{FileStore, FileStoreConfig, Recovery};
pub use memory::{MemoryStore, MemoryStoreConfig};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, PostgresStoreConfig};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteStore, SqliteStoreConfig};
pub use sync::{Appended, PendingSync};

/// A backing store of encoded events.
///
/// Called from one thread at a time (the pipeline wraps it in a mutex). Between a
/// [`read_oldest`](Store::read_oldest) and the matching [`commit`](Store::commit) the pipeline
/// may [`append`](Store::append); appends never change what the last read returned.
pub trait Store: Send + 'static {
    /// Appends `events` at the tail, in order: all of them, or none and an error.
    ///
    /// # Errors
    ///
    /// [`Error::StoreFull`] naming the limit reached; [`Error::Store`] or [`Error::Io`]
    /// naming the file, table or server when the write fails; [`Error::Forked`] from the
    /// file and SQLite stores in a `fork()` child of the process that opened them.
    fn append(&mut self, events: &[&[u8]]) -> Result<(), Error>;

    /// Reads the oldest events without removing them, into `out` (emptied first): at most
    /// `max_events`, and no more than `max_bytes` counting each event plus one byte, except
    /// that a single event is always returned if the store is not empty. Reading again
    /// without a commit returns the same events.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] or [`Error::Io`] naming the file, table or server when reading
    /// fails (damage the file and SQLite stores find is skipped and reported by
    /// [`take_lost`](Store::take_lost) instead).
    fn read_oldest(
        &mut self,
        max_events: usize,
        max_bytes: usize,
        out: &mut StoredBatch,
    ) -> Result<(), Error>;

    /// Removes the first `n` events of the last [`read_oldest`](Store::read_oldest). On
    /// `Err` they stay, and the next read returns them again, first (the pipeline then sends
    /// them again, counted as `redelivered`, and takes as many of the next read's first
    /// events for them). So `Err` only when they stay: a store that cannot tell whether the
    /// removal took effect (a connection lost during it) keeps it to make again instead.
    /// A store may keep the removal in memory and write it later (the file store does when
    /// its cursor cannot be written, SQLite and Postgres when their delete fails or, for
    /// Postgres, its answer is lost): `Ok`, and a restart before then returns them again.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] or [`Error::Io`] naming the file, table or server when the removal
    /// cannot be made; [`Error::Forked`] as for [`append`](Store::append).
    fn commit(&mut self, n: usize) -> Result<(), Error>;

    /// Keeps `event` in the store's dead-letter area with `reason`. The event itself is
    /// removed from the log by the [`commit`](Store::commit) that covers it, if it came from
    /// the log.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] or [`Error::Io`] naming the file, table or server when the dead
    /// letter cannot be written; [`Error::Forked`] as for [`append`](Store::append).
    fn dead_letter(&mut self, event: &[u8], reason: &str) -> Result<(), Error>;

    /// Events and bytes held.
    fn size(&self) -> StoreSize;

    /// How long the oldest event has been held.
    fn oldest_age(&self) -> Option<Duration>;

    /// Makes everything appended so far durable (for the file store, an `fdatasync`).
    /// Stores that cannot survive a crash return `Ok` at once.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file or directory (file store) or [`Error::Store`] naming
    /// the database (SQLite) that could not be synced; [`Error::Forked`] as for
    /// [`append`](Store::append).
    fn sync(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Appends `events` for a caller that may go on only once they are durable (durability
    /// `wal`), all or none like [`append`](Store::append), whatever the fsync policy. A store
    /// that can make them durable without itself returns [`Appended::Pending`]: the caller
    /// runs it after releasing the store's lock, so that reads, commits and other appends
    /// need not wait behind the sync. Otherwise [`Appended::Durable`], or
    /// [`Appended::NotDurable`] if they were appended but could not be made durable.
    ///
    /// Defaults to [`append`](Store::append) then [`sync`](Store::sync), both under the
    /// caller's lock.
    ///
    /// # Errors
    ///
    /// Those of [`append`](Store::append), when nothing was appended. A sync that fails
    /// after the events were appended is not an error here: it is [`Appended::NotDurable`],
    /// or the error of running [`Appended::Pending`].
    fn append_durably(&mut self, events: &[&[u8]]) -> Result<Appended, Error> {
        self.append(events)?;
        Ok(match self.sync() {
            Ok(()) => Appended::Durable,
            Err(e) => Appended::NotDurable(e),
        })
    }

    /// Whether events survive a crash once [`sync`](Store::sync) returned. Only durable
    /// stores can back the `wal` durability mode.
    fn is_durable(&self) -> bool {
        false
    }

    /// Whether other pipelines (other processes) drain this store too, so this one may
    /// take out events it did not put in (they count as `recovered`). Defaults to false.
    fn is_shared(&self) -> bool {
        false
    }

    /// Hands back the events of the last read that were not committed, so that the other
    /// pipelines draining a shared store can take them at once; the store stays open.
    /// `close` calls it when it returns while the flush thread is still in a sink call with
    /// them: the process is likely to exit, and they would otherwise wait out their lease
    /// and count as a claim whose claimer died. Defaults to doing nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] naming the table when a Postgres store cannot hand them back (they
    /// are claimed again once their lease ends).
    fn hand_back(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Periodic housekeeping (an interval fsync, a lease renewed), called by the flush
    /// thread and, for a shared store, every 100 ms by a thread of its own, so that a lease
    /// is renewed during a long sink call too.
    ///
    /// # Errors
    ///
    /// Those of [`sync`](Store::sync); [`Error::Store`] naming the table when a Postgres
    /// store cannot renew its lease or refresh its counts.
    fn tick(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Events the store found unreadable (damaged after it was opened; for SQLite, which
    /// checks nothing when it opens, whenever a read finds them) since the last call; the
    /// pipeline counts them as `dropped.damaged`. Those lost to damage found when it was
    /// opened are in [`recovery`](Store::recovery) instead.
    fn take_lost(&mut self) -> u64 {
        0
    }

    /// What the store found and repaired when it was opened, including events lost to
    /// damage ([`Recovery::lost_events`]): the pipeline counts those as `recovered` (they
    /// were in the store) and `dropped.damaged`, and reports this from
    /// [`Pipeline::recovery`](crate::Pipeline::recovery). Defaults to `None`: nothing to tell.
    fn recovery(&self) -> Option<Recovery> {
        None
    }

    /// The largest event this store can keep and read back: its record format's limit, and
    /// no more than it can hold at all. A pipeline whose `max_event_bytes` is larger is
    /// refused, so that nothing is acknowledged that the store cannot give back. Defaults to
    /// no limit.
    fn max_record_bytes(&self) -> usize {
        usize::MAX
    }

    /// What kind of store this is, for messages: `"file"`, `"sqlite"`, `"postgres"`,
    /// `"memory"`. Defaults to `"custom"`.
    fn kind(&self) -> &str {
        "custom"
    }

    /// Events the store moved to its dead-letter area on its own since the last call (a
    /// Postgres row whose claimers kept dying); the pipeline counts them as dead-lettered.
    fn take_dead_lettered(&mut self) -> u64 {
        0
    }

    /// Flushes and releases what the store holds open. The pipeline calls it once, last.
    ///
    /// # Errors
    ///
    /// Those of [`sync`](Store::sync) (the default); [`Error::Store`] naming the database
    /// or table when SQLite cannot checkpoint and close, or Postgres cannot hand rows back.
    fn close(&mut self) -> Result<(), Error> {
        self.sync()
    }
}

impl<S: Store + ?Sized> Store for Box<S> {
    fn append(&mut self, events: &[&[u8]]) -> Result<(), Error> {
        (**self).append(events)
    }
    fn read_oldest(
        &mut self,
        max_events: usize,
        max_bytes: usize,
        out: &mut StoredBatch,
    ) -> Result<(), Error> {
        (**self).read_oldest(max_events, max_bytes, out)
    }
    fn commit(&mut self, n: usize) -> Result<(), Error> {
        (**self).commit(n)
    }
    fn dead_letter(&mut self, event: &[u8], reason: &str) -> Result<(), Error> {
        (**self).dead_letter(event, reason)
    }
    fn size(&self) -> StoreSize {
        (**self).size()
    }
    fn oldest_age(&self) -> Option<Duration> {
        (**self).oldest_age()
    }
    fn sync(&mut self) -> Result<(), Error> {
        (**self).sync()
    }
    fn append_durably(&mut self, events: &[&[u8]]) -> Result<Appended, Error> {
        (**self).append_durably(events)
    }
    fn is_durable(&self) -> bool {
        (**self).is_durable()
    }
    fn is_shared(&self) -> bool {
        (**self).is_shared()
    }
    fn tick(&mut self) -> Result<(), Error> {
        (**self).tick()
    }
    fn hand_back(&mut self) -> Result<(), Error> {
        (**self).hand_back()
    }
    fn take_lost(&mut self) -> u64 {
        (**self).take_lost()
    }
    fn recovery(&self) -> Option<Recovery> {
        (**self).recovery()
    }
    fn max_record_bytes(&self) -> usize {
        (**self).max_record_bytes()
    }
    fn kind(&self) -> &str {
        (**self).kind()
    }
    fn take_dead_lettered(&mut self) -> u64 {
        (**self).take_dead_lettered()
    }
    fn close(&mut self) -> Result<(), Error> {
        (**self).close()
    }
}

/// Events and bytes a store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreSize {
    /// Number of events.
    pub events: u64,
    /// Their total size in bytes (payloads only).
    pub bytes: u64,
}

/// When a durable store forces its writes to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Fsync {
    /// After every append: nothing acknowledged is lost on a crash; slowest.
    Always,
    /// At most this long after an append: a crash loses at most that window.
    Interval(Duration),
    /// Never explicitly: the operating system decides; a power loss may lose anything.
    #[default]
    Never,
}

/// Events read from a store, in one buffer: reused from read to read.
#[derive(Debug, Default, Clone)]
pub struct StoredBatch {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl StoredBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes every event, keeping the memory.
    pub fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
    }

    /// Adds an event at the end.
    pub fn push(&mut self, event: &[u8]) {
        self.data.extend_from_slice(event);
        self.ends.push(self.data.len());
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`-th event.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.data.get(start..end)
    }

    /// The events, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Payload bytes of all events.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// Whether one more event of `len` bytes fits a read bounded by `max_events`/`max_bytes`
/// that already holds `events` events and `bytes` bytes (each counted plus one).
pub(crate) fn fits(
    events: usize,
    bytes: usize,
    len: usize,
    max_events: usize,
    max_bytes: usize,
) -> bool {
    events == 0 || (events < max_events && bytes + len < max_bytes)
}
