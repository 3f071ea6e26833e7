//! The handle users hold: `record*`, `flush`, `close`, `stats`.
//!
//! The record path takes a slot, encodes into it and pushes it; it never touches the sink,
//! never holds a lock and, once the pool is warm, never allocates. Only the `Spill`
//! overflow and the `wal` durability mode go to the backing store from here.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, unbounded};
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::config::{Durability, Overflow};
use crate::dead_letter::DeadLetters;
use crate::encode::event::encode_event;
use crate::encode::raw::{encode_json, encode_serialize};
use crate::flush::{Command, Worker, deadline_after};
use crate::slots::{Slot, SlotPool};
use crate::stats::{Counters, FlushCounts};
use crate::wal::GroupCommit;
use crate::{
    AuditEvent, Config, DeadLetter, Error, Limits, Report, Sink, Stats, Store, StoredBatch,
};

/// State shared by the handle and the flush thread.
pub(crate) struct Shared {
    pub(crate) counters: Counters,
    pub(crate) pool: SlotPool,
    /// Set once by `close`; `record` checks it after counting an event as accepted, and
    /// the flush thread waits for every accepted event, so none can slip in unseen.
    pub(crate) closed: CachePadded<AtomicBool>,
    pub(crate) dead_letters: DeadLetters,
    /// The `recorded` count at which a producer must wake the flush thread: a full batch
    /// is queued and the thread has not come for it. The flush thread re-arms it after each
    /// round; `u64::MAX` while disarmed.
    pub(crate) next_wake: CachePadded<AtomicU64>,
    pub(crate) wake: Sender<()>,
    pub(crate) store: Option<Mutex<Box<dyn Store>>>,
    /// The store's event count after its last change, readable without its lock.
    store_events: AtomicU64,
    /// Events a spilling caller took off the queue but the store refused: they go back in
    /// front of the queue, in order, for the flush thread.
    pub(crate) returned: Mutex<VecDeque<Slot>>,
    pub(crate) group: Option<GroupCommit>,
    last_error: Mutex<Option<String>>,
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
    pub(crate) fn note_error(&self, error: String) {
        *self.last_error.lock() = Some(error);
    }

    /// The locked store; its size is noted when the guard is dropped. `None` without one.
    pub(crate) fn lock_store(&self) -> Option<StoreGuard<'_>> {
        Some(StoreGuard {
            store: self.store.as_ref()?.lock(),
            events: &self.store_events,
        })
    }

    /// Runs `f` on the locked store. `None` without a store.
    pub(crate) fn with_store<R>(&self, f: impl FnOnce(&mut dyn Store) -> R) -> Option<R> {
        let mut store = self.lock_store()?;
        Some(f(&mut **store))
    }

    pub(crate) fn store_events(&self) -> u64 {
        self.store_events.load(Ordering::Relaxed)
    }

    /// Wakes the flush thread if `recorded` reached the mark it left; one caller does.
    pub(crate) fn wake_if_due(&self, recorded: u64) {
        let due = self.next_wake.load(Ordering::Relaxed);
        if recorded >= due
            && self
                .next_wake
                .compare_exchange(due, u64::MAX, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let _ = self.wake.try_send(());
        }
    }
}

/// The store, locked; notes the store's size for lock-free readers when released.
pub(crate) struct StoreGuard<'a> {
    store: parking_lot::MutexGuard<'a, Box<dyn Store>>,
    events: &'a AtomicU64,
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
        self.events
            .store(self.store.size().events, Ordering::Relaxed);
    }
}

/// A running pipeline: buffers events, batches them on its flush thread and ships them
/// through its sink, keeping what it cannot send in its backing store, if it has one.
///
/// `Pipeline` is `Send + Sync`: share it by reference or in an `Arc` between threads.
/// Dropping it closes it with the configured `drop_timeout`.
///
/// ```
/// use auditbuf::{AuditEvent, Config, NullSink, Pipeline};
/// use std::time::Duration;
///
/// let pipeline = Pipeline::new(Config::default(), NullSink)?;
/// pipeline.record(&AuditEvent::new("gateway.signal.received", "gateway", "received", "success", "rr-1"))?;
/// pipeline.record_json(br#"{"event_type":"login","user":"ada"}"#)?;
/// pipeline.record_serialize(&serde_json::json!({"event_type": "logout"}))?;
///
/// let report = pipeline.close(Duration::from_secs(5));
/// assert!(report.completed);
/// assert_eq!(report.stats.delivered, 3);
/// # Ok::<(), auditbuf::Error>(())
/// ```
#[derive(Debug)]
pub struct Pipeline {
    shared: Arc<Shared>,
    queue: Sender<Slot>,
    /// The queue's other end, for callers that spill: they move what it holds into the
    /// store before their own event, so the store keeps the order.
    queue_out: Receiver<Slot>,
    commands: Sender<Command>,
    /// Disconnected when the flush thread exits.
    finished: Receiver<()>,
    thread: Mutex<Option<JoinHandle<()>>>,
    overflow: Overflow,
    max_event_bytes: usize,
    initial_slot_bytes: usize,
    move_chunk: usize,
    drop_timeout: Duration,
    service: String,
}

impl Pipeline {
    /// Starts a pipeline sending through `sink`, with its flush thread, and the backing
    /// store the configuration names (if any).
    ///
    /// Fails with [`Error::Config`] when the configuration is inconsistent, including with
    /// the sink's own batch limits, and with the store's errors when it cannot be opened.
    pub fn new<S: Sink>(config: Config, sink: S) -> Result<Self, Error> {
        let store = match &config.store {
            Some(store) => Some(store.open()?),
            None => None,
        };
        Self::build(config, Box::new(sink), store)
    }

    /// Starts a pipeline with a store built in code, whatever the configuration names.
    pub fn with_store<S: Sink, T: Store>(config: Config, sink: S, store: T) -> Result<Self, Error> {
        Self::build(config, Box::new(sink), Some(Box::new(store)))
    }

    fn build(
        config: Config,
        sink: Box<dyn Sink>,
        store: Option<Box<dyn Store>>,
    ) -> Result<Self, Error> {
        config.validate()?;
        if store.is_none() && config.overflow == Overflow::Spill {
            return Err(Error::config("overflow", "\"spill\" needs a backing store"));
        }
        let wal = config.durability == Durability::Wal;
        if wal && !store.as_ref().is_some_and(|s| s.is_durable()) {
            return Err(Error::config(
                "durability",
                "\"wal\" needs a durable backing store (file, sqlite or postgres)",
            ));
        }
        let sink_limits = sink.limits();
        let limits = Limits {
            max_events: config
                .batch_max_events
                .min(sink_limits.max_events)
                .min(config.queue_capacity)
                .max(1),
            max_bytes: config.batch_max_bytes.min(sink_limits.max_bytes),
        };
        if config.max_event_bytes + 1 > limits.max_bytes {
            return Err(Error::config(
                "max_event_bytes",
                format!(
                    "{} does not fit the sink's batch limit of {} bytes",
                    config.max_event_bytes, limits.max_bytes
                ),
            ));
        }
        // A batch is worth sending once it is full, or half the queue if that is less, so a
        // small queue never waits for a batch that cannot form.
        let ready_at = limits.max_events.min(config.queue_capacity / 2).max(1);
        let (queue_tx, queue_rx) = bounded(config.queue_capacity);
        let (wake_tx, wake_rx) = bounded(1);
        let (commands_tx, commands_rx) = unbounded();
        let (finished_tx, finished_rx) = bounded::<()>(0);
        let found = store.as_ref().map_or(0, |s| s.size().events);
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            pool: SlotPool::new(
                config.queue_capacity,
                config.initial_slot_bytes,
                config.retained_slot_bytes,
            ),
            closed: CachePadded::new(AtomicBool::new(false)),
            dead_letters: DeadLetters::new(config.dead_letter_capacity),
            next_wake: CachePadded::new(AtomicU64::new(ready_at as u64)),
            wake: wake_tx,
            store: store.map(Mutex::new),
            store_events: AtomicU64::new(found),
            returned: Mutex::new(VecDeque::new()),
            group: wal.then(GroupCommit::default),
            last_error: Mutex::new(None),
        });
        let counts = FlushCounts {
            found,
            ..FlushCounts::default()
        };
        shared.counters.publish(&counts);
        let worker = Worker {
            shared: Arc::clone(&shared),
            queue: queue_rx.clone(),
            wake: wake_rx,
            commands: commands_rx,
            sink,
            limits,
            ready_at,
            rate_mark: (std::time::Instant::now(), 0),
            interval: config.flush_interval,
            retry: config.retry,
            orphan_timeout: config.drop_timeout,
            batches_per_wake: config.queue_capacity / limits.max_events + 1,
            counts,
            batch: Vec::with_capacity(limits.max_events.min(config.queue_capacity)),
            front: VecDeque::new(),
            held: None,
            stored: StoredBatch::new(),
            drain_failures: 0,
            drain_retry_at: None,
            flush_waiters: Vec::new(),
            close_deadline: None,
            rng: fastrand::Rng::new(),
        };
        let thread = std::thread::Builder::new()
            .name("auditbuf-flush".to_owned())
            .spawn(move || {
                let _finished = finished_tx;
                worker.run();
            })
            .map_err(Error::Spawn)?;
        Ok(Pipeline {
            shared,
            queue: queue_tx,
            queue_out: queue_rx,
            commands: commands_tx,
            finished: finished_rx,
            thread: Mutex::new(Some(thread)),
            overflow: config.overflow,
            max_event_bytes: config.max_event_bytes,
            initial_slot_bytes: config.initial_slot_bytes,
            move_chunk: limits.max_events,
            drop_timeout: config.drop_timeout,
            service: config.service,
        })
    }

    /// Records a typed event. See [`AuditEvent`] for the defaults it fills in.
    #[inline]
    pub fn record(&self, event: &AuditEvent<'_>) -> Result<(), Error> {
        self.submit(|slot, limit| encode_event(event, slot, limit))
    }

    /// Records an event given as JSON text: one object, UTF-8, checked without allocating.
    /// `version` and `event_timestamp` are added when absent; line breaks between tokens
    /// become spaces, so every event stays on one line.
    #[inline]
    pub fn record_json(&self, json: &[u8]) -> Result<(), Error> {
        self.submit(|slot, limit| encode_json(json, slot, limit))
    }

    /// Records any value that serialises to a JSON object, completed like
    /// [`record_json`](Self::record_json).
    #[inline]
    pub fn record_serialize<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<(), Error> {
        self.submit(|slot, limit| encode_serialize(value, slot, limit))
    }

    #[inline]
    fn submit(
        &self,
        encode: impl FnOnce(&mut Slot, usize) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let result = self.try_submit(encode);
        if let Err(e) = &result {
            self.shared.counters.reject(e);
        }
        result
    }

    #[inline]
    fn try_submit(
        &self,
        encode: impl FnOnce(&mut Slot, usize) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let shared = &*self.shared;
        if shared.closed.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        let mut slot = match shared.pool.take(self.overflow) {
            Ok(slot) => slot,
            Err(Error::Full) if self.overflow == Overflow::Spill && shared.group.is_none() => {
                return self.spill(encode);
            }
            Err(e) => return Err(e),
        };
        if let Err(e) = encode(&mut slot, self.max_event_bytes) {
            shared.pool.give_back(slot);
            return Err(e);
        }
        if let Some(group) = &shared.group {
            return group.commit(slot, shared);
        }
        // Count first, then look at `closed` (both SeqCst): either close sees this event
        // and waits for it, or this call sees close and withdraws it.
        let recorded = shared.counters.recorded.fetch_add(1, Ordering::SeqCst) + 1;
        if shared.closed.load(Ordering::SeqCst) {
            return Err(self.withdraw(slot));
        }
        if let Err(e) = self.queue.try_send(slot) {
            // Cannot be full (there are no more slots than places); the flush thread died.
            return Err(self.withdraw(e.into_inner()));
        }
        // The flush thread schedules itself from the arrival rate; only a batch that fills
        // before it comes makes one producer wake it. The others pay one load.
        shared.wake_if_due(recorded);
        Ok(())
    }

    #[cold]
    fn withdraw(&self, slot: Slot) -> Error {
        self.shared.counters.recorded.fetch_sub(1, Ordering::SeqCst);
        self.shared.pool.give_back(slot);
        Error::Closed
    }

    /// Overflow `Spill`: the queue is full, so the event goes to the store on this thread,
    /// behind what the queue holds.
    #[cold]
    fn spill(
        &self,
        encode: impl FnOnce(&mut Slot, usize) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut event = Vec::with_capacity(self.initial_slot_bytes);
        encode(&mut event, self.max_event_bytes)?;
        let shared = &*self.shared;
        let result = shared.with_store(|store| {
            self.move_queue_into(store)?;
            store.append(&[&event])?;
            shared.counters.caller_stored.fetch_add(1, Ordering::SeqCst);
            shared.counters.recorded.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        let _ = shared.wake.try_send(());
        result.unwrap_or(Err(Error::config(
            "overflow",
            "\"spill\" needs a backing store",
        )))
    }

    /// Moves the queue's events into `store`, oldest first. What the store refuses goes
    /// back in front of the queue, in order, for the flush thread.
    fn move_queue_into(&self, store: &mut dyn Store) -> Result<(), Error> {
        let shared = &*self.shared;
        let mut chunk: Vec<Slot> = Vec::with_capacity(self.move_chunk);
        loop {
            while chunk.len() < self.move_chunk {
                match self.queue_out.try_recv() {
                    Ok(slot) => chunk.push(slot),
                    Err(_) => break,
                }
            }
            if chunk.is_empty() {
                return Ok(());
            }
            let events: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            let result = store.append(&events);
            drop(events);
            match result {
                Ok(()) => {
                    shared
                        .counters
                        .caller_moved
                        .fetch_add(chunk.len() as u64, Ordering::SeqCst);
                    for slot in chunk.drain(..) {
                        shared.pool.give_back(slot);
                    }
                }
                Err(e) => {
                    shared.returned.lock().extend(chunk);
                    return Err(e);
                }
            }
        }
    }

    /// Sends everything recorded so far, and returns when it is delivered (or otherwise
    /// settled) or when `timeout` has passed, whichever comes first. With a backing store
    /// it also drains the store as far as the sink allows.
    pub fn flush(&self, timeout: Duration) -> Report {
        let deadline = deadline_after(timeout);
        let (done_tx, done_rx) = bounded::<()>(0);
        if self.commands.send(Command::Flush(done_tx)).is_err() {
            return self.report(self.is_finished());
        }
        let completed = matches!(
            done_rx.recv_deadline(deadline),
            Err(RecvTimeoutError::Disconnected)
        );
        self.report(completed)
    }

    /// Stops taking events, sends what it can by `timeout`, keeps the rest in the backing
    /// store (or, without one, drops it as `dropped.shutdown`) and stops the flush thread.
    /// Always returns by the deadline, even if the sink hangs; calling it again waits again.
    pub fn close(&self, timeout: Duration) -> Report {
        let deadline = deadline_after(timeout);
        if !self.shared.closed.swap(true, Ordering::SeqCst) {
            let _ = self.commands.send(Command::Close(deadline));
        }
        let completed = matches!(
            self.finished.recv_deadline(deadline),
            Err(RecvTimeoutError::Disconnected)
        );
        if completed && let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
        self.report(completed)
    }

    fn is_finished(&self) -> bool {
        matches!(
            self.finished.try_recv(),
            Err(crossbeam_channel::TryRecvError::Disconnected)
        )
    }

    fn report(&self, completed: bool) -> Report {
        Report::new(self.stats(), completed)
    }

    /// A consistent snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// The dead letters kept in memory (the newest `dead_letter_capacity`). A backing store
    /// keeps them too, durably.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.shared.dead_letters.snapshot()
    }

    /// Takes the dead letters kept in memory, leaving none.
    pub fn take_dead_letters(&self) -> Vec<DeadLetter> {
        self.shared.dead_letters.take()
    }

    /// The last send, store or rejection error, if any.
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error.lock().clone()
    }

    /// The configured service name.
    pub fn service(&self) -> &str {
        &self.service
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.close(self.drop_timeout);
    }
}
