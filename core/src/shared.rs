//! State the pipeline handle, its callers and the flush thread share: counters, the slot
//! pool, the backing store behind its lock, and the few flags that order them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_channel::Sender;
use crossbeam_utils::CachePadded;
use crossbeam_utils::atomic::AtomicCell;
use parking_lot::Mutex;

use crate::Store;
use crate::backlog::Backlog;
use crate::clock::WallClock;
use crate::dead_letter::DeadLetters;
use crate::lanes::{MAX_LANES, Queue};
use crate::metrics::{StoreGauges, WriteDurations};
use crate::slots::SlotPool;
use crate::stats::Counters;
use crate::wake::FlushWake;

pub(crate) struct Shared {
    pub(crate) counters: Counters,
    pub(crate) pool: SlotPool,
    /// The queue from callers to the flush thread.
    pub(crate) queue: Queue,
    /// Set once by `close`; `record` checks it after counting an event as accepted, and
    /// the flush thread waits for every accepted event, so none can slip in unseen.
    pub(crate) closed: CachePadded<AtomicBool>,
    pub(crate) dead_letters: DeadLetters,
    /// How producers wake the flush thread.
    pub(crate) wake: FlushWake,
    pub(crate) store: Option<Mutex<Box<dyn Store>>>,
    /// The store's event count after its last change, readable without its lock.
    store_events: AtomicU64,
    /// Set (with the store locked) once the flush thread has closed the store: callers
    /// that spill or write ahead are turned away from then on.
    store_closed: AtomicBool,
    /// Events out of the queue that go before it (refused by the store, or carried over
    /// from a full batch); they count as queued.
    pub(crate) backlog: Backlog,
    /// Overflow `Spill` with a store that refuses events while empty: events are sent from
    /// memory meanwhile, and callers may not spill (they would get ahead of them). Changed
    /// only with the store locked.
    direct: AtomicBool,
    /// Set when `close` returns: from then on the flush thread starts no sink call (it may
    /// still be inside one that began before), and exits at its next check.
    stop: AtomicBool,
    /// Set by the flush thread around each sink call, so `close` knows whether one is still
    /// running when it returns (Dekker-style with `stop`: one of the two always sees the
    /// other).
    sending: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Durations of sink calls, for `audit_write_duration_seconds`.
    pub(crate) write_durations: WriteDurations,
    /// The store's bytes and oldest age as of its last change, for the metrics.
    pub(crate) store_gauges: StoreGauges,
    /// Metrics registered once already (a second registration is an error).
    pub(crate) metrics_registered: AtomicBool,
    /// The latest counter/wall-clock pair, for callers that render captured events
    /// themselves (spill, write-ahead, moves into the store, and callers under `Block` while
    /// the flush thread is behind), and for the flush thread. Read under a seqlock
    /// (`AtomicCell`: a reader retries, or waits out a store, instead of taking a lock that
    /// every reader writes); stored by whichever thread finds it stale.
    wall: AtomicCell<WallClock>,
    /// Set by the flush thread while it finds the queue over half full when it takes a
    /// batch: then callers under `Block` render their events themselves (see
    /// `Pipeline::try_submit`). Read by each such `record`, written only when it changes, so
    /// on a line of its own.
    pub(crate) behind: CachePadded<AtomicBool>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("counters", &self.counters)
            .field("closed", &self.closed)
            .field("store", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(
        pool: SlotPool,
        queue: Queue,
        dead_letters: DeadLetters,
        first_wake: u64,
        wake: Sender<()>,
        store: Option<Box<dyn Store>>,
    ) -> Self {
        let store_events = store.as_ref().map_or(0, |s| s.size().events);
        Shared {
            counters: Counters::with_lanes(MAX_LANES),
            pool,
            queue,
            closed: CachePadded::new(AtomicBool::new(false)),
            dead_letters,
            wake: FlushWake::new(first_wake, wake),
            store: store.map(Mutex::new),
            store_events: AtomicU64::new(store_events),
            store_closed: AtomicBool::new(false),
            backlog: Backlog::default(),
            direct: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sending: AtomicBool::new(false),
            last_error: Mutex::new(None),
            write_durations: WriteDurations::default(),
            store_gauges: StoreGauges::default(),
            metrics_registered: AtomicBool::new(false),
            wall: AtomicCell::new(WallClock::now()),
            behind: CachePadded::new(AtomicBool::new(false)),
        }
    }

    pub(crate) fn note_error(&self, error: String) {
        *self.last_error.lock() = Some(error);
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    /// The locked store; its size is noted when the guard is dropped. `None` without one.
    pub(crate) fn lock_store(&self) -> Option<StoreGuard<'_>> {
        Some(StoreGuard {
            store: self.store.as_ref()?.lock(),
            events: &self.store_events,
            gauges: &self.store_gauges,
            closed: &self.store_closed,
        })
    }

    /// The locked store, if it can be had by `deadline` (`close`, which must return by its
    /// own, while the flush thread may hold it in a slow store call).
    pub(crate) fn lock_store_until(&self, deadline: std::time::Instant) -> Option<StoreGuard<'_>> {
        Some(StoreGuard {
            store: self.store.as_ref()?.try_lock_until(deadline)?,
            events: &self.store_events,
            gauges: &self.store_gauges,
            closed: &self.store_closed,
        })
    }

    /// Runs `f` on the locked store. `None` without a store.
    pub(crate) fn with_store<R>(&self, f: impl FnOnce(&mut dyn Store) -> R) -> Option<R> {
        let mut store = self.lock_store()?;
        Some(f(&mut **store))
    }

    /// Whether `Spill` is sending from memory because the store refuses events.
    pub(crate) fn direct(&self) -> bool {
        self.direct.load(Ordering::SeqCst)
    }

    /// Sets `direct`; the caller holds the store lock.
    pub(crate) fn set_direct(&self, direct: bool) {
        self.direct.store(direct, Ordering::SeqCst);
    }

    pub(crate) fn store_events(&self) -> u64 {
        self.store_events.load(Ordering::Relaxed)
    }

    /// The latest counter/wall-clock pair, read afresh if it is stale: by the flush thread
    /// between batches, or by a caller while the flush thread is inside a long sink call.
    pub(crate) fn wall_clock(&self) -> WallClock {
        let wall = self.wall.load();
        if !wall.is_stale() {
            return wall;
        }
        let wall = WallClock::now();
        self.wall.store(wall);
        wall
    }

    /// Stops sink calls for good (`close` returned); true if one is running right now.
    pub(crate) fn stop_sending(&self) -> bool {
        self.stop.store(true, Ordering::SeqCst);
        self.sending.load(Ordering::SeqCst)
    }

    /// Whether sink calls have been stopped.
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Runs `send` unless sink calls were stopped; `None` if they were. A call that began
    /// before `close` returned may still be running after it; none begins after.
    pub(crate) fn send_unless_stopped<R>(&self, send: impl FnOnce() -> R) -> Option<R> {
        self.sending.store(true, Ordering::SeqCst);
        let result = (!self.stop.load(Ordering::SeqCst)).then(send);
        self.sending.store(false, Ordering::SeqCst);
        result
    }
}

/// The store, locked; notes the store's size for lock-free readers when released.
pub(crate) struct StoreGuard<'a> {
    store: parking_lot::MutexGuard<'a, Box<dyn Store>>,
    events: &'a AtomicU64,
    gauges: &'a StoreGauges,
    closed: &'a AtomicBool,
}

impl StoreGuard<'_> {
    /// Whether the flush thread has closed the store (callers must not write to it).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Marks the store closed to callers; done once, by the flush thread, last.
    pub(crate) fn close_to_callers(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

impl std::ops::Deref for StoreGuard<'_> {
    type Target = Box<dyn Store>;

    fn deref(&self) -> &Self::Target {
        &self.store
    }
}

impl std::ops::DerefMut for StoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.store
    }
}

impl Drop for StoreGuard<'_> {
    fn drop(&mut self) {
        let size = self.store.size();
        self.events.store(size.events, Ordering::Relaxed);
        self.gauges.note(size.bytes, self.store.oldest_age());
    }
}
