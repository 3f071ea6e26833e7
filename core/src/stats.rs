//! Counters, and the snapshots built from them: [`Stats`] at any time, [`Report`] from
//! `flush` and `close`.
//!
//! Callers write two kinds of counters (accepted and rejected events); the flush thread
//! alone writes the rest and publishes them together under a sequence lock, so a snapshot
//! never sees an event half-way between two counters and the accounting invariant holds in
//! every snapshot, not just at rest.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};

use crossbeam_utils::CachePadded;

use crate::Error;
use crate::lanes::Striped;

/// Why calls to `record` were turned away. None of these events entered the pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rejected {
    /// Queue full under the `DropNewest` overflow policy.
    pub queue_full: u64,
    /// No slot came free within the `Block` timeout.
    pub block_timeout: u64,
    /// The pipeline was closed.
    pub closed: u64,
    /// Not valid UTF-8.
    pub invalid_utf8: u64,
    /// Not valid JSON.
    pub invalid_json: u64,
    /// Valid JSON, but not an object.
    pub not_an_object: u64,
    /// Over `max_event_bytes`.
    pub too_large: u64,
    /// A required typed field was empty.
    pub missing_field: u64,
    /// A field had a value the receiver would reject.
    pub invalid_field: u64,
    /// A `Serialize` implementation failed.
    pub serialize: u64,
    /// The backing store was full (overflow `Spill`, durability `wal`).
    pub store_full: u64,
    /// The backing store failed (overflow `Spill`, durability `wal`).
    pub store_error: u64,
}

impl Rejected {
    /// All rejected calls, whatever the reason.
    pub fn total(&self) -> u64 {
        self.queue_full
            + self.block_timeout
            + self.closed
            + self.invalid_utf8
            + self.invalid_json
            + self.not_an_object
            + self.too_large
            + self.missing_field
            + self.invalid_field
            + self.serialize
            + self.store_full
            + self.store_error
    }
}

/// Why accepted events were given up without being delivered or dead-lettered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Dropped {
    /// Still buffered or being retried when `close`'s deadline passed, with no backing store
    /// to keep them.
    pub shutdown: u64,
    /// Should have gone to the backing store (retries exhausted, or close), but it was full.
    pub store_full: u64,
    /// Lost to damage the backing store found while reading them back, or when it was
    /// opened.
    pub damaged: u64,
    /// Evicted from a full queue to make room for a newer event (overflow `DropOldest`).
    pub oldest: u64,
}

impl Dropped {
    /// All dropped events, whatever the reason.
    pub fn total(&self) -> u64 {
        self.shutdown + self.store_full + self.damaged + self.oldest
    }
}

/// A consistent snapshot of a pipeline's counters.
///
/// Every event that entered the pipeline is in exactly one of the terminal or in-pipeline
/// counters, in every snapshot ([`Stats::is_consistent`]):
///
/// `recorded + recovered = delivered + dead_lettered + failed + dropped + in_flight + queued + stored`
///
/// (`dropped` is [`Dropped::total`]).
///
/// Rejected calls never enter that sum.
///
/// ```
/// use auditbuf::{Config, NullSink, Pipeline};
/// use std::time::Duration;
///
/// let pipeline = Pipeline::new(Config::default(), NullSink)?;
/// pipeline.record_json(br#"{"event_type":"x"}"#)?;
/// let report = pipeline.close(Duration::from_secs(5));
/// assert_eq!(report.stats.recorded, 1);
/// assert_eq!(report.stats.delivered, 1);
/// assert!(report.stats.is_consistent());
/// # Ok::<(), auditbuf::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Events accepted by `record`.
    pub recorded: u64,
    /// Events this pipeline found in its backing store when it opened it (left by an earlier
    /// run), plus, for a store shared by several pipelines, events it drained beyond what it
    /// put there.
    pub recovered: u64,
    /// Events the sink acknowledged (2xx).
    pub delivered: u64,
    /// Events the sink rejected for good (4xx after bisection); see `dead_letters`.
    pub dead_lettered: u64,
    /// Events whose batch ran out of retry attempts or time, with no backing store.
    pub failed: u64,
    /// Accepted events given up, by reason.
    pub dropped: Dropped,
    /// Events held by the flush thread: batched, being sent or waiting to be retried.
    pub in_flight: u64,
    /// Events accepted and not yet taken by the flush thread.
    pub queued: u64,
    /// Events in the backing store, waiting to be drained.
    pub stored: u64,
    /// Calls turned away, by reason.
    pub rejected: Rejected,
    /// Batches handed to the sink, retries and split halves included.
    pub sends: u64,
    /// Sends answered with a retryable failure.
    pub retries: u64,
    /// Batches whose retry budget ran out (their events went to the store, or failed).
    pub batches_failed: u64,
    /// Of `recorded`: gap markers the pipeline added (`Config::gap_markers`).
    pub gap_markers: u64,
    /// Of `dead_lettered`: events refused with 413 even alone.
    pub dead_lettered_too_large: u64,
    /// Of `dead_lettered`: events the store moved to its dead-letter area on its own (a
    /// Postgres row whose claimers kept dying).
    pub dead_lettered_by_store: u64,
    /// Events sent again because the store could not record that they had been delivered
    /// (a failed commit): the receiver saw them twice. Not part of the invariant: each was
    /// counted `delivered` once.
    pub redelivered: u64,
    /// Times the receiver refused every event it was shown alone with the same answer
    /// (a proxy or WAF answering 400 to everything, a server refusing a new field): treated
    /// as an endpoint failure, so the events were kept and retried, not dead-lettered.
    pub endpoint_refusals: u64,
}

impl Stats {
    /// Whether the accounting invariant holds. It always should; tests assert it.
    pub fn is_consistent(&self) -> bool {
        self.recorded + self.recovered
            == self.settled() + self.in_flight + self.queued + self.stored
    }

    /// Of `dead_lettered`: events the receiver refused alone with a 4xx other than 413.
    pub fn dead_lettered_rejected(&self) -> u64 {
        self.dead_lettered
            .saturating_sub(self.dead_lettered_too_large + self.dead_lettered_by_store)
    }

    /// Events that reached a terminal counter.
    pub fn settled(&self) -> u64 {
        self.delivered + self.dead_lettered + self.failed + self.dropped.total()
    }
}

/// What `flush` or `close` achieved by its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Counters when the call returned.
    pub stats: Stats,
    /// Events still queued or in flight when the call returned.
    pub left: u64,
    /// The flush thread finished the requested work before the deadline.
    pub completed: bool,
}

impl Report {
    pub(crate) fn new(stats: Stats, completed: bool) -> Self {
        Report {
            stats,
            left: stats.queued + stats.in_flight,
            completed,
        }
    }
}

/// Counters the flush thread alone changes; it keeps a private copy and publishes it whole.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FlushCounts {
    /// Events taken off the queue, ever.
    pub(crate) taken: u64,
    pub(crate) delivered: u64,
    pub(crate) dead_lettered: u64,
    pub(crate) failed: u64,
    pub(crate) dropped_shutdown: u64,
    pub(crate) dropped_store_full: u64,
    pub(crate) dropped_damaged: u64,
    pub(crate) in_flight: u64,
    pub(crate) sends: u64,
    pub(crate) retries: u64,
    pub(crate) redelivered: u64,
    pub(crate) endpoint_refusals: u64,
    pub(crate) batches_failed: u64,
    pub(crate) dead_lettered_too_large: u64,
    pub(crate) dead_lettered_by_store: u64,
    pub(crate) gap_markers: u64,
    /// Events the flush thread appended to the store from memory (retries ran out, close).
    pub(crate) stored_in: u64,
    /// Events removed from the store (committed after delivery or dead-lettering).
    pub(crate) stored_out: u64,
    /// Events the store held when the pipeline opened it.
    pub(crate) found: u64,
}

const FLUSH_FIELDS: usize = 19;

impl FlushCounts {
    fn to_array(self) -> [u64; FLUSH_FIELDS] {
        [
            self.taken,
            self.delivered,
            self.dead_lettered,
            self.failed,
            self.dropped_shutdown,
            self.dropped_store_full,
            self.dropped_damaged,
            self.in_flight,
            self.sends,
            self.retries,
            self.stored_in,
            self.stored_out,
            self.found,
            self.redelivered,
            self.endpoint_refusals,
            self.batches_failed,
            self.dead_lettered_too_large,
            self.dead_lettered_by_store,
            self.gap_markers,
        ]
    }

    fn from_array(a: [u64; FLUSH_FIELDS]) -> Self {
        FlushCounts {
            taken: a[0],
            delivered: a[1],
            dead_lettered: a[2],
            failed: a[3],
            dropped_shutdown: a[4],
            dropped_store_full: a[5],
            dropped_damaged: a[6],
            in_flight: a[7],
            sends: a[8],
            retries: a[9],
            stored_in: a[10],
            stored_out: a[11],
            found: a[12],
            redelivered: a[13],
            endpoint_refusals: a[14],
            batches_failed: a[15],
            dead_lettered_too_large: a[16],
            dead_lettered_by_store: a[17],
            gap_markers: a[18],
        }
    }
}

const REJECT_REASONS: usize = 12;

/// The shared counters. Producers and the flush thread write different cache lines.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Accepted events, counted per lane ([`Striped`]). Incremented before the event is
    /// pushed, so the flush thread can never have taken more than this.
    pub(crate) recorded: Striped,
    /// Events callers appended to the store themselves (overflow `Spill`, durability `wal`).
    /// Changes under the store's lock, so the flush thread never drains an event this does
    /// not count yet.
    pub(crate) caller_stored: CachePadded<AtomicU64>,
    /// Events moved from the queue (or the backlog) into the store, by callers or the flush
    /// thread; also under the store's lock.
    pub(crate) moved: AtomicU64,
    /// Events evicted from the queue by callers to make room (overflow `DropOldest`).
    pub(crate) evicted: CachePadded<AtomicU64>,
    /// The store is shared with other pipelines (Postgres): draining more than this pipeline
    /// put there is expected, and counts as `recovered`. For any other store it is a bug,
    /// and the invariant fails.
    pub(crate) shared_store: AtomicBool,
    /// Calls refused with `Full`, counted per lane: under overload every producer counts
    /// one a call, and a line they all wrote would move between their CPUs on each.
    queue_full: Striped,
    /// Other refusals, by reason (index 0, `Full`, unused).
    rejected: CachePadded<[AtomicU64; REJECT_REASONS]>,
    /// Even when `flush` is stable, odd while the flush thread rewrites it.
    seq: CachePadded<AtomicU64>,
    flush: [AtomicU64; FLUSH_FIELDS],
}

impl Counters {
    /// Counters for a pipeline of `lanes` lanes.
    pub(crate) fn with_lanes(lanes: usize) -> Self {
        Counters {
            recorded: Striped::new(lanes),
            queue_full: Striped::new(lanes),
            ..Counters::default()
        }
    }

    /// Counts a rejected `record` call by the reason its error gives.
    pub(crate) fn reject(&self, e: &Error) {
        let i = match e {
            Error::Full => {
                self.queue_full.add(crate::lanes::this_thread(), 1);
                return;
            }
            Error::Timeout(_) => 1,
            Error::Closed | Error::Forked => 2,
            Error::InvalidUtf8 { .. } => 3,
            Error::InvalidJson { .. } => 4,
            Error::NotAnObject => 5,
            Error::TooLarge { .. } => 6,
            Error::MissingField { .. } => 7,
            Error::InvalidField { .. } => 8,
            Error::Serialize(_) => 9,
            Error::StoreFull { .. } => 10,
            // Store and I/O failures of the Spill and wal paths.
            _ => 11,
        };
        self.rejected[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Publishes the flush thread's counters. Single writer: only the flush thread calls it.
    pub(crate) fn publish(&self, counts: &FlushCounts) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (slot, v) in self.flush.iter().zip(counts.to_array()) {
            slot.store(v, Ordering::Relaxed);
        }
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    fn read_flush(&self) -> FlushCounts {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let mut a = [0; FLUSH_FIELDS];
            for (v, slot) in a.iter_mut().zip(&self.flush) {
                *v = slot.load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                return FlushCounts::from_array(a);
            }
        }
    }

    /// A consistent snapshot. The flush side is read first: everything it counts was
    /// recorded before, so `recorded` read afterwards covers it.
    pub(crate) fn snapshot(&self) -> Stats {
        // Order matters: the flush side first, then what callers put in the store, then
        // `recorded`. Each later read covers everything an earlier one could have counted.
        let f = self.read_flush();
        let caller_stored = self.caller_stored.load(Ordering::SeqCst);
        let moved = self.moved.load(Ordering::SeqCst);
        let evicted = self.evicted.load(Ordering::SeqCst);
        let recorded = self.recorded.sum();
        let r = |i: usize| self.rejected[i].load(Ordering::Relaxed);
        // What this pipeline put in the store and has not taken out. Negative only for a
        // store shared with other pipelines (it drained more than it put there); for any
        // other store a negative balance is a counting bug, left visible as an inconsistency.
        let put = i128::from(caller_stored)
            + i128::from(moved)
            + i128::from(f.stored_in)
            + i128::from(f.found);
        let net = put - i128::from(f.stored_out);
        let drained_beyond = if self.shared_store.load(Ordering::Relaxed) {
            u64::try_from(-net.min(0)).unwrap_or(0)
        } else {
            0
        };
        Stats {
            recorded,
            recovered: f.found + drained_beyond,
            delivered: f.delivered,
            dead_lettered: f.dead_lettered,
            failed: f.failed,
            dropped: Dropped {
                shutdown: f.dropped_shutdown,
                store_full: f.dropped_store_full,
                damaged: f.dropped_damaged,
                oldest: evicted,
            },
            in_flight: f.in_flight,
            queued: recorded.saturating_sub(f.taken + caller_stored + moved + evicted),
            stored: u64::try_from(net.max(0)).unwrap_or(0),
            rejected: Rejected {
                queue_full: self.queue_full.sum(),
                block_timeout: r(1),
                closed: r(2),
                invalid_utf8: r(3),
                invalid_json: r(4),
                not_an_object: r(5),
                too_large: r(6),
                missing_field: r(7),
                invalid_field: r(8),
                serialize: r(9),
                store_full: r(10),
                store_error: r(11),
            },
            sends: f.sends,
            retries: f.retries,
            redelivered: f.redelivered,
            endpoint_refusals: f.endpoint_refusals,
            batches_failed: f.batches_failed,
            dead_lettered_too_large: f.dead_lettered_too_large,
            dead_lettered_by_store: f.dead_lettered_by_store,
            gap_markers: f.gap_markers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn snapshots_are_consistent_while_the_writer_moves_events() {
        let counters = Arc::new(Counters::default());
        // The writer goes on until the reader has taken its snapshots: on a busy machine the
        // writer could otherwise finish before the reader first runs, and test nothing.
        let enough = Arc::new(AtomicBool::new(false));
        let writer = {
            let c = Arc::clone(&counters);
            let enough = Arc::clone(&enough);
            std::thread::spawn(move || {
                let mut f = FlushCounts::default();
                let mut rounds = 0;
                while rounds < 200_000 || !enough.load(Ordering::Relaxed) {
                    rounds += 1;
                    c.recorded.add(0, 3);
                    f.taken += 3;
                    f.in_flight += 3;
                    c.publish(&f);
                    f.in_flight -= 3;
                    f.delivered += 2;
                    f.failed += 1;
                    c.publish(&f);
                }
            })
        };
        let mut seen = 0;
        while !writer.is_finished() {
            let s = counters.snapshot();
            assert!(s.is_consistent(), "{s:?}");
            seen += 1;
            if seen == 10_000 {
                enough.store(true, Ordering::Relaxed);
            }
        }
        writer.join().unwrap();
        assert!(counters.snapshot().is_consistent());
        assert!(seen >= 10_000);
    }

    #[test]
    fn the_invariant_fails_when_a_counter_is_wrong() {
        let c = Counters::default();
        c.recorded.add(0, 10);
        let mut f = FlushCounts {
            taken: 10,
            delivered: 6,
            stored_in: 4,
            ..FlushCounts::default()
        };
        c.publish(&f);
        assert!(c.snapshot().is_consistent(), "{:?}", c.snapshot());

        // A delivery counted twice (a resend after a failed store commit counted as a
        // second delivery) must show, not be absorbed as "recovered".
        f.delivered += 4;
        f.stored_out += 4;
        c.publish(&f);
        assert!(c.snapshot().is_consistent(), "drained what was stored");
        f.delivered += 1;
        f.stored_out += 1;
        c.publish(&f);
        assert!(!c.snapshot().is_consistent(), "{:?}", c.snapshot());

        // With a store shared between pipelines, draining more than this one put there is
        // what happens when it takes over another replica's rows.
        c.shared_store.store(true, Ordering::Relaxed);
        let s = c.snapshot();
        assert!(s.is_consistent(), "{s:?}");
        assert_eq!(s.recovered, 1);

        // Any other single corrupted counter breaks it too.
        c.shared_store.store(false, Ordering::Relaxed);
        f.delivered -= 1;
        f.stored_out -= 1;
        for corrupt in [
            |f: &mut FlushCounts| f.failed += 1,
            |f: &mut FlushCounts| f.in_flight += 1,
            |f: &mut FlushCounts| f.taken -= 1,
            |f: &mut FlushCounts| f.dropped_damaged += 1,
            |f: &mut FlushCounts| f.stored_in += 1,
        ] {
            let mut bad = f;
            corrupt(&mut bad);
            c.publish(&bad);
            assert!(!c.snapshot().is_consistent(), "{:?}", c.snapshot());
        }
    }

    #[test]
    fn rejections_are_counted_by_reason() {
        let c = Counters::default();
        c.reject(&Error::Full);
        c.reject(&Error::Full);
        c.reject(&Error::NotAnObject);
        c.reject(&Error::MissingField { field: "x" });
        let s = c.snapshot();
        assert_eq!(s.rejected.queue_full, 2);
        assert_eq!(s.rejected.not_an_object, 1);
        assert_eq!(s.rejected.missing_field, 1);
        assert_eq!(s.rejected.total(), 4);
        assert_eq!(s.recorded, 0);
    }
}
