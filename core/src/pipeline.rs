//! The handle users hold: `record*`, `flush`, `close`, `stats`.
//!
//! The record path takes a slot, encodes into it and pushes it; it never touches the sink,
//! never holds a lock and, once the pool is warm, never allocates.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, unbounded};
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::config::Overflow;
use crate::dead_letter::DeadLetters;
use crate::encode::event::encode_event;
use crate::encode::raw::{encode_json, encode_serialize};
use crate::flush::{Command, Worker, deadline_after};
use crate::slots::{Slot, SlotPool};
use crate::stats::{Counters, FlushCounts};
use crate::{AuditEvent, Config, DeadLetter, Error, Limits, Report, Sink, Stats};

/// State shared by the handle and the flush thread.
#[derive(Debug)]
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
    last_error: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn note_error(&self, error: String) {
        *self.last_error.lock() = Some(error);
    }
}

/// A running pipeline: buffers events, batches them on its flush thread and ships them
/// through its sink.
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
    wake: Sender<()>,
    commands: Sender<Command>,
    /// Disconnected when the flush thread exits.
    finished: Receiver<()>,
    thread: Mutex<Option<JoinHandle<()>>>,
    overflow: Overflow,
    max_event_bytes: usize,
    drop_timeout: Duration,
    service: String,
}

impl Pipeline {
    /// Starts a pipeline sending through `sink`, with its flush thread.
    ///
    /// Fails with [`Error::Config`] when the configuration is inconsistent, including with
    /// the sink's own batch limits.
    pub fn new<S: Sink>(config: Config, sink: S) -> Result<Self, Error> {
        config.validate()?;
        let sink_limits = sink.limits();
        let limits = Limits {
            max_events: config
                .batch_max_events
                .min(sink_limits.max_events)
                .min(config.queue_capacity)
                .max(1),
            max_bytes: config.batch_max_bytes.min(sink_limits.max_bytes),
        };
        // A batch is worth sending once it is full, or half the queue if that is less, so a
        // small queue never waits for a batch that cannot form.
        let ready_at = limits.max_events.min(config.queue_capacity / 2).max(1);
        if config.max_event_bytes + 1 > limits.max_bytes {
            return Err(Error::config(
                "max_event_bytes",
                format!(
                    "{} does not fit the sink's batch limit of {} bytes",
                    config.max_event_bytes, limits.max_bytes
                ),
            ));
        }
        let (queue_tx, queue_rx) = bounded(config.queue_capacity);
        let (wake_tx, wake_rx) = bounded(1);
        let (commands_tx, commands_rx) = unbounded();
        let (finished_tx, finished_rx) = bounded::<()>(0);
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
            last_error: Mutex::new(None),
        });
        let worker = Worker {
            shared: Arc::clone(&shared),
            queue: queue_rx,
            wake: wake_rx,
            commands: commands_rx,
            sink: Box::new(sink),
            limits,
            ready_at,
            rate_mark: (std::time::Instant::now(), 0),
            interval: config.flush_interval,
            retry: config.retry,
            orphan_timeout: config.drop_timeout,
            batches_per_wake: config.queue_capacity / limits.max_events + 1,
            counts: FlushCounts::default(),
            batch: Vec::with_capacity(limits.max_events.min(config.queue_capacity)),
            carry: None,
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
            wake: wake_tx,
            commands: commands_tx,
            finished: finished_rx,
            thread: Mutex::new(Some(thread)),
            overflow: config.overflow,
            max_event_bytes: config.max_event_bytes,

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
        let mut slot = shared.pool.take(self.overflow)?;
        if let Err(e) = encode(&mut slot, self.max_event_bytes) {
            shared.pool.give_back(slot);
            return Err(e);
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
        // The flush thread schedules itself from the arrival rate, because waking a parked
        // thread costs the waker microseconds. Only a batch that fills before it comes makes
        // one producer wake it; the others pay one load.
        let due = shared.next_wake.load(Ordering::Relaxed);
        if recorded >= due
            && shared
                .next_wake
                .compare_exchange(due, u64::MAX, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let _ = self.wake.try_send(());
        }
        Ok(())
    }

    #[cold]
    fn withdraw(&self, slot: Slot) -> Error {
        self.shared.counters.recorded.fetch_sub(1, Ordering::SeqCst);
        self.shared.pool.give_back(slot);
        Error::Closed
    }

    /// Sends everything recorded so far, and returns when it is delivered (or otherwise
    /// settled) or when `timeout` has passed, whichever comes first.
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

    /// Stops taking events, sends what it can by `timeout`, drops the rest (counted as
    /// `dropped.shutdown`) and stops the flush thread. Always returns by the deadline, even
    /// if the sink hangs; calling it again waits again.
    pub fn close(&self, timeout: Duration) -> Report {
        let deadline = deadline_after(timeout);
        if !self.shared.closed.swap(true, Ordering::SeqCst) {
            let _ = self.commands.send(Command::Close(deadline));
        }
        let completed = matches!(
            self.finished.recv_deadline(deadline),
            Err(RecvTimeoutError::Disconnected)
        );
        if completed {
            if let Some(thread) = self.thread.lock().take() {
                let _ = thread.join();
            }
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

    /// The dead letters kept so far (the newest `dead_letter_capacity`).
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.shared.dead_letters.snapshot()
    }

    /// Takes the dead letters kept so far, leaving none.
    pub fn take_dead_letters(&self) -> Vec<DeadLetter> {
        self.shared.dead_letters.take()
    }

    /// The last send failure or rejection reason, if any.
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
