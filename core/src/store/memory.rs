//! A bounded FIFO in memory: keeps events through an outage, not through a crash.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::limits::{Invalid, MIN_STORE_BYTES, out_of_range};
use super::{Store, StoreSize, StoredBatch, fits};
use crate::{DeadLetter, Error};

/// Largest `max_events` of a memory store.
const MAX_EVENTS: u64 = 100_000_000;
/// Largest `max_bytes` of a memory store: 64 GiB.
const MAX_BYTES: u64 = 64 << 30;
/// Largest `dead_letters` of a memory store.
const MAX_DEAD_LETTERS: usize = 1_000_000;

/// Limits of a [`MemoryStore`]. Plain data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStoreConfig {
    pub(crate) max_events: u64,
    pub(crate) max_bytes: u64,
    pub(crate) dead_letters: usize,
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        MemoryStoreConfig {
            max_events: 1_000_000,
            max_bytes: 256 * 1024 * 1024,
            dead_letters: 10_000,
        }
    }
}

impl MemoryStoreConfig {
    /// Most events held; appending more fails with [`Error::StoreFull`]. 1 to 100 000 000.
    /// Defaults to 1 000 000.
    pub fn max_events(mut self, n: u64) -> Self {
        self.max_events = n;
        self
    }

    /// Most payload bytes held: 4 KiB to 64 GiB. Defaults to 256 MiB.
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n;
        self
    }

    /// Dead letters kept (oldest evicted first): 0 to 1 000 000. Defaults to 10 000.
    pub fn dead_letters(mut self, n: usize) -> Self {
        self.dead_letters = n;
        self
    }

    /// The first setting out of range, by its configuration name, with the reason.
    pub(crate) fn invalid(&self) -> Invalid {
        out_of_range("max_events", self.max_events.into(), 1, MAX_EVENTS.into())
            .or_else(|| {
                out_of_range(
                    "max_bytes",
                    self.max_bytes.into(),
                    MIN_STORE_BYTES.into(),
                    MAX_BYTES.into(),
                )
            })
            .or_else(|| {
                out_of_range(
                    "dead_letters",
                    self.dead_letters as u128,
                    0,
                    MAX_DEAD_LETTERS as u128,
                )
            })
    }
}

/// Events in memory, oldest first, bounded by events and bytes.
///
/// ```
/// use auditbuf::{MemoryStore, MemoryStoreConfig, Store, StoredBatch};
///
/// let mut store = MemoryStore::new(MemoryStoreConfig::default().max_events(2));
/// store.append(&[b"{\"a\":1}", b"{\"a\":2}"])?;
/// assert!(store.append(&[b"{\"a\":3}"]).is_err()); // full
/// let mut batch = StoredBatch::new();
/// store.read_oldest(10, 1 << 20, &mut batch)?;
/// assert_eq!(batch.get(0), Some(&b"{\"a\":1}"[..]));
/// store.commit(1)?;
/// assert_eq!(store.size().events, 1);
/// # Ok::<(), auditbuf::Error>(())
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    config: MemoryStoreConfig,
    events: VecDeque<(Instant, Vec<u8>)>,
    bytes: u64,
    dead: VecDeque<DeadLetter>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new(config: MemoryStoreConfig) -> Self {
        MemoryStore {
            config,
            events: VecDeque::new(),
            bytes: 0,
            dead: VecDeque::new(),
        }
    }

    /// The dead letters kept, oldest first.
    pub fn dead_letters(&self) -> impl Iterator<Item = &DeadLetter> {
        self.dead.iter()
    }
}

impl Store for MemoryStore {
    fn append(&mut self, events: &[&[u8]]) -> Result<(), Error> {
        let adding: u64 = events.iter().map(|e| e.len() as u64).sum();
        let count = self.events.len() as u64 + events.len() as u64;
        if count > self.config.max_events || self.bytes + adding > self.config.max_bytes {
            return Err(if count > self.config.max_events {
                Error::StoreFull {
                    limit: "max_events",
                    value: self.config.max_events,
                }
            } else {
                Error::StoreFull {
                    limit: "max_bytes",
                    value: self.config.max_bytes,
                }
            });
        }
        let now = Instant::now();
        self.events.extend(events.iter().map(|e| (now, e.to_vec())));
        self.bytes += adding;
        Ok(())
    }

    fn read_oldest(
        &mut self,
        max_events: usize,
        max_bytes: usize,
        out: &mut StoredBatch,
    ) -> Result<(), Error> {
        out.clear();
        let mut bytes = 0;
        for (_, event) in &self.events {
            if !fits(out.len(), bytes, event.len(), max_events, max_bytes) {
                break;
            }
            bytes += event.len() + 1;
            out.push(event);
        }
        Ok(())
    }

    fn commit(&mut self, n: usize) -> Result<(), Error> {
        for _ in 0..n {
            match self.events.pop_front() {
                Some((_, e)) => self.bytes -= e.len() as u64,
                None => break,
            }
        }
        Ok(())
    }

    fn dead_letter(&mut self, event: &[u8], reason: &str) -> Result<(), Error> {
        if self.config.dead_letters == 0 {
            return Ok(());
        }
        if self.dead.len() == self.config.dead_letters {
            self.dead.pop_front();
        }
        self.dead.push_back(DeadLetter {
            event: event.to_vec(),
            reason: reason.to_owned(),
            at: std::time::SystemTime::now(),
        });
        Ok(())
    }

    fn size(&self) -> StoreSize {
        StoreSize {
            events: self.events.len() as u64,
            bytes: self.bytes,
        }
    }

    fn oldest_age(&self) -> Option<Duration> {
        self.events.front().map(|(at, _)| at.elapsed())
    }

    /// No format limit: only what the store may hold at all.
    fn max_record_bytes(&self) -> usize {
        usize::try_from(self.config.max_bytes).unwrap_or(usize::MAX)
    }

    fn kind(&self) -> &str {
        "memory"
    }
}
