//! The handle users hold: `record*`, `flush`, `close`, `stats`.
//!
//! The record path takes a slot, encodes into it and pushes it; it never touches the sink,
//! never holds a lock and, once the pool is warm, never allocates. Only the `Spill`
//! overflow and the `wal` durability mode go to the backing store from here.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::config::Overflow;
use crate::encode::cadf::encode_cadf;
use crate::encode::capture::{capture_event, finish, finish_here, is_captured};
use crate::encode::event_bytes::capture_event_bytes;
use crate::encode::raw::{
    Encoded, complete_encoded, complete_json_in_place, encode_json, encode_serialize,
};
use crate::encode::rules::EventRules;
use crate::fork;
use crate::group_commit::GroupCommit;
use crate::lanes;
use crate::park::{NoPark, Park};
use crate::shared::Shared;
use crate::slots::Slot;
use crate::worker::Command;

mod build;
mod overflow;
mod own_thread;
mod shutdown;

#[cfg(test)]
mod behind_tests;
use crate::{AuditEvent, AuditEventBytes, Config, DeadLetter, Error, Recovery, Sink, Stats, Store};

/// How long `Drop` waits, after its `close`, for a flush thread that is still inside a sink
/// call to come out; a sink that hangs longer leaves the thread behind (it exits when the
/// call returns, without calling the sink again).
const DROP_JOIN_GRACE: Duration = Duration::from_millis(100);

/// A running pipeline: buffers events, batches them on its flush thread and ships them
/// through its sink, keeping what it cannot send in its backing store, if it has one.
///
/// `Pipeline` is `Send + Sync`: share it by reference or in an `Arc` between threads.
/// Dropping it closes it with the configured `drop_timeout`.
///
/// After `close` returns — on time or not — the sink is never called again: the flush
/// thread checks before every call and exits (a call already running when the deadline
/// passed may finish; [`Report::completed`](crate::Report::completed) is false then). In a
/// child process made by `fork()` the pipeline refuses everything with [`Error::Forked`] and
/// its `flush`, `close` and drop return at once: the flush thread and the store belong to
/// the parent.
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
    commands: Sender<Command>,
    /// Disconnected when the flush thread exits.
    finished: Receiver<()>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The group commit of durability `wal`.
    group: Option<GroupCommit>,
    overflow: Overflow,
    max_event_bytes: usize,
    /// A caller looks whether to wake the flush thread when its lane's count of recorded
    /// events is a multiple of this plus one (a power of two, less one): the total is a sum
    /// of the lanes' lines. At most `MAX_LANES × wake_check` events arrive past the mark
    /// before a caller looks: at most 1/64 of the queue (for queues of 512 and more) and
    /// half a batch.
    wake_check: u64,
    initial_slot_bytes: usize,
    move_chunk: usize,
    drop_timeout: Duration,
    service: String,
    /// The fork generation and process this pipeline was built in.
    born: (u64, u32),
    recovery: Option<Recovery>,
    /// Its number, which its flush thread knows itself by (`FLUSH_THREAD_OF`).
    number: u64,
    /// What the configuration adds to the typed event's rules (categories, time window).
    rules: EventRules,
}

impl Pipeline {
    /// Starts a pipeline sending through `sink`, with its flush thread, and the backing
    /// store the configuration names (if any).
    ///
    /// # Errors
    ///
    /// - [`Error::Config`] naming the field: a value out of its documented range (see the
    ///   [`Config`] setters, and the store's), `Spill` or `wal` without a (durable) store,
    ///   or `max_event_bytes` too large for the sink's own batch limit;
    /// - the store's errors when it cannot be opened ([`Error::Io`], [`Error::Store`]);
    /// - [`Error::Spawn`] when the flush thread cannot be started.
    pub fn new<S: Sink>(config: Config, sink: S) -> Result<Self, Error> {
        // A configuration that will be refused must not create a store's files or tables.
        config.validate()?;
        let store = match &config.store {
            Some(store) => Some(store.open()?),
            None => None,
        };
        Self::build(config, Box::new(sink), store)
    }

    /// Starts a pipeline with a store built in code, whatever the configuration names.
    ///
    /// # Errors
    ///
    /// - [`Error::Config`] naming the field: a value out of its documented range (see the
    ///   [`Config`] setters), durability `wal` with a store that is not durable, or
    ///   `max_event_bytes` too large for the sink's own batch limit;
    /// - [`Error::Spawn`] when the flush thread cannot be started.
    pub fn with_store<S: Sink, T: Store>(config: Config, sink: S, store: T) -> Result<Self, Error> {
        Self::build(config, Box::new(sink), Some(Box::new(store)))
    }

    /// Whether this process is a `fork()` child of the one that built the pipeline. The
    /// cheap check (a fork-handler generation) on every call; `thorough` adds the process
    /// id, for paths where a system call is affordable.
    #[inline]
    fn forked(&self, thorough: bool) -> bool {
        fork::forked_since(self.born.0) || (thorough && std::process::id() != self.born.1)
    }

    /// Records a typed event. See [`AuditEvent`] for the defaults it fills in and the rules
    /// its fields must meet. Like every `record` method, not async-signal-safe: never call
    /// it from a signal handler (it may allocate, lock and use thread-local buffers).
    ///
    /// # Errors
    ///
    /// A refused event is counted in [`Stats::rejected`](crate::Stats) under the reason in
    /// brackets, and affects no other event:
    /// - [`Error::MissingField`] (`missing_field`): `event_type`, `event_category`,
    ///   `event_action`, `event_outcome` or `correlation_id` is empty;
    /// - [`Error::InvalidField`] (`invalid_field`), naming the field: longer than the
    ///   spec's `maxLength` (`version` 20, `event_type` 100, `event_category` and
    ///   `event_action` 50, `correlation_id` 255, `actor_ip` 45 characters), an empty
    ///   `version`, an `event_outcome` other than `success`, `failure`, `pending`, an
    ///   `event_timestamp` or `parent_event_date` that is not RFC 3339, a `parent_event_id`
    ///   that is not a UUID, U+0000 in any string, an `event_category` the configuration
    ///   does not list ([`Config::categories`]), an `event_timestamp` outside DataStorage's
    ///   window when [`Config::check_timestamp_window`] is on; or an `event_data` that is
    ///   not an object, or whose `event_type` differs from the event's;
    /// - [`Error::InvalidJson`] (`invalid_json`): `event_data` is not JSON, or JSON that
    ///   receivers read differently or cannot store (see [`record_json`](Self::record_json));
    /// - [`Error::Serialize`] (`serialize`): an [`EventData::Serialize`](crate::EventData)
    ///   value failed;
    /// - [`Error::TooLarge`] (`too_large`): the encoded event is over `max_event_bytes`;
    ///
    /// and the errors of the queue and the store, the same for every `record` method:
    /// - [`Error::Full`] (`queue_full`): no free slot under [`Overflow::DropNewest`];
    /// - [`Error::Timeout`] (`block_timeout`): none came free within the
    ///   [`Overflow::Block`] timeout;
    /// - [`Error::Closed`] (`closed`): the pipeline was closed;
    /// - [`Error::Forked`] (`closed`): this process is a `fork()` child of the one that
    ///   built the pipeline;
    /// - under [`Overflow::Spill`] with a full queue, or durability `wal`:
    ///   [`Error::StoreFull`] (`store_full`) and [`Error::Store`] (`store_error`) from the
    ///   backing store; in `wal` mode also [`Error::NotDurable`], the one error after which
    ///   the event *was* accepted (counted as recorded): only its fsync failed.
    #[inline]
    pub fn record(&self, event: &AuditEvent<'_>) -> Result<(), Error> {
        self.submit(&mut NoPark, |slot, limit| {
            capture_event(event, &self.rules, slot, limit)
        })
    }

    /// Records a typed event whose fields are byte slices (from C, Go or Python): the same
    /// rules as [`record`](Self::record), and every field must be UTF-8, which is checked
    /// while the field is encoded.
    ///
    /// # Errors
    ///
    /// Those of [`record`](Self::record), and [`Error::InvalidField`] with the reason
    /// `"is not valid UTF-8"`, naming the field (`event_data` included).
    #[inline]
    pub fn record_event_bytes(&self, event: &AuditEventBytes<'_>) -> Result<(), Error> {
        self.submit(&mut NoPark, |slot, limit| {
            capture_event_bytes(event, &self.rules, slot, limit)
        })
    }

    /// For bindings: [`record_event_bytes`](Self::record_event_bytes), waiting through
    /// `park` (see [`record_with`](Self::record_with)).
    #[doc(hidden)]
    #[inline]
    pub fn record_event_bytes_with<P: Park>(
        &self,
        park: &mut P,
        event: &AuditEventBytes<'_>,
    ) -> Result<(), Error> {
        self.submit(park, |slot, limit| {
            capture_event_bytes(event, &self.rules, slot, limit)
        })
    }

    /// For bindings: `encode` writes one JSON object into the slot (empty on entry), at
    /// most `limit` bytes of it (it may stop early with [`Error::TooLarge`]); the pipeline
    /// then checks and completes it exactly as [`record_json`](Self::record_json) does
    /// with the same bytes. Every wait of the call (a free slot under `Block`, the `wal`
    /// fsync, a `Spill` append) runs inside `park`, which a binding uses to release its
    /// interpreter lock and to give up on Ctrl-C; `encode` runs outside it. An error
    /// `encode` returns is counted like any rejection. Not part of the stable API.
    #[doc(hidden)]
    #[inline]
    pub fn record_with<P: Park>(
        &self,
        park: &mut P,
        encode: impl FnOnce(&mut Vec<u8>, usize) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.submit(park, |slot, limit| {
            encode(slot, limit)?;
            complete_json_in_place(slot, limit)
        })
    }

    /// Records a CADF event (for the RabbitMQ sink and Hermes), generating its `id` and
    /// `eventTime` when absent. See [`CadfEvent`](crate::CadfEvent) for the defaults and
    /// the rules its fields must meet. Counted like [`record`](Self::record).
    ///
    /// # Errors
    ///
    /// [`Error::MissingField`] (`missing_field`) and [`Error::InvalidField`]
    /// (`invalid_field`) naming the field (`initiator.id`, `outcome`), [`Error::InvalidJson`]
    /// (`invalid_json`, an attachment's JSON content), [`Error::TooLarge`] (`too_large`),
    /// and the queue and store errors listed under [`record`](Self::record).
    #[inline]
    pub fn record_cadf(&self, event: &crate::CadfEvent<'_>) -> Result<(), Error> {
        self.submit(&mut NoPark, |slot, limit| encode_cadf(event, slot, limit))
    }

    /// For bindings: [`record_cadf`](Self::record_cadf), waiting through `park` (see
    /// [`record_with`](Self::record_with)).
    #[doc(hidden)]
    #[inline]
    pub fn record_cadf_with<P: Park>(
        &self,
        park: &mut P,
        event: &crate::CadfEvent<'_>,
    ) -> Result<(), Error> {
        self.submit(park, |slot, limit| encode_cadf(event, slot, limit))
    }

    /// Records an event given as JSON text: one object, UTF-8, checked without allocating.
    /// `version` and `event_timestamp` are added when absent; line breaks between tokens
    /// become spaces, so every event stays on one line. The DataStorage field rules of
    /// [`record`](Self::record) are not applied: any object any receiver can store is
    /// accepted.
    ///
    /// # Errors
    ///
    /// Counted in [`Stats::rejected`](crate::Stats) under the reason in brackets:
    /// - [`Error::InvalidUtf8`] (`invalid_utf8`) with the offset of the first bad byte;
    /// - [`Error::InvalidJson`] (`invalid_json`) with an offset and a reason: not JSON
    ///   (RFC 8259), more than one value, or JSON that receivers read differently or
    ///   cannot store — a duplicate key in any object (compared by meaning, `"a"` equals
    ///   `"\u0061"`), a number of magnitude 1e308 or more, `\u0000` in a string (Postgres
    ///   refuses it), nesting deeper than 126 levels;
    /// - [`Error::NotAnObject`] (`not_an_object`): valid JSON, but not an object;
    /// - [`Error::TooLarge`] (`too_large`): over `max_event_bytes` once completed;
    ///
    /// and the queue and store errors listed under [`record`](Self::record).
    #[inline]
    pub fn record_json(&self, json: &[u8]) -> Result<(), Error> {
        self.submit(&mut NoPark, |slot, limit| encode_json(json, slot, limit))
    }

    /// Records any value that serialises to a JSON object, completed like
    /// [`record_json`](Self::record_json).
    ///
    /// # Errors
    ///
    /// - [`Error::Serialize`] (`serialize`): the value's `Serialize` failed (a map with
    ///   keys that are not strings, a custom error);
    /// - [`Error::NotAnObject`] (`not_an_object`): it serialised to something else;
    /// - [`Error::InvalidJson`] (`invalid_json`): what it serialised to is refused as by
    ///   [`record_json`](Self::record_json) — a string with U+0000, an `f64` of magnitude
    ///   1e308 or more, duplicate keys from a hand-written `Serialize`, too deep a nesting;
    /// - [`Error::TooLarge`] (`too_large`): over `max_event_bytes` (serialisation stops at
    ///   the limit);
    ///
    /// and the queue and store errors listed under [`record`](Self::record).
    #[inline]
    pub fn record_serialize<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<(), Error> {
        self.submit(&mut NoPark, |slot, limit| {
            encode_serialize(value, slot, limit)
        })
    }

    #[inline]
    fn submit<P: Park>(
        &self,
        park: &mut P,
        encode: impl FnOnce(&mut Vec<u8>, usize) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let result = self.try_submit(park, encode);
        match &result {
            // Accepted (and counted recorded); only its durability is in doubt.
            Err(Error::NotDurable(_)) | Ok(()) => {}
            Err(e) => self.shared.counters.reject(e),
        }
        result
    }

    #[inline]
    fn try_submit<P: Park>(
        &self,
        park: &mut P,
        encode: impl FnOnce(&mut Vec<u8>, usize) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let shared = &*self.shared;
        if self.forked(false) {
            return Err(Error::Forked);
        }
        if shared.closed.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        let lane = lanes::this_thread();
        let Some(mut slot) = shared.pool.try_take(lane) else {
            return self.without_slot(park, lane, encode);
        };
        // A closure that panics (a user's `Serialize`) drops the slot: counted gone.
        let encoding = shared.pool.encoding();
        let encoded = encode(&mut slot, self.max_event_bytes);
        encoding.disarm();
        if let Err(e) = encoded {
            shared.pool.give_back(lane, slot);
            return Err(e);
        }
        self.enqueue(park, lane, slot)
    }

    /// Queues an event encoded into `slot` (or, under `wal`, commits it to the store).
    #[inline(always)]
    fn enqueue<P: Park>(&self, park: &mut P, lane: usize, mut slot: Slot) -> Result<(), Error> {
        let shared = &*self.shared;
        if let Some(group) = &self.group {
            if self.forked(true) {
                shared.pool.give_back(lane, slot);
                return Err(Error::Forked);
            }
            // The store holds JSON, and `wal` returns only once the event is in it: render
            // here (this path waits for an fsync; a render and an allocation do not show).
            finish(&mut slot, &shared.wall_clock(), &mut Vec::new());
            return park.park(|| group.commit(slot, shared));
        }
        // The flush thread renders what callers capture; when it falls behind, rendering is
        // what holds it up. Under `Block` a caller would then wait for it, so it renders its
        // own event instead: a producer that outruns its flush thread waits less often (one
        // producer's p99.9 in `hot_path` fell from 15-37 µs to 0.2-0.6 µs, and one or two
        // deliver more), at a risk where producers outnumber the CPUs: four on 2 vCPUs
        // delivered ~25 % less in some A/B sessions, 7-10 % more in others
        // (docs/performance-history.md). Under the drop policies a fast call is what the
        // caller chose, and refusals are the back-pressure (rendering there made four
        // producers' accepted calls slower, their p99.9 up to 89 µs).
        if matches!(self.overflow, Overflow::Block { .. })
            && shared.behind.load(Ordering::Relaxed)
            && is_captured(&slot)
        {
            finish_here(&mut slot, &shared.wall_clock());
        }
        self.push(lane, slot)
    }

    /// Counts the event in `slot` as recorded and queues it, on `lane` (the caller's).
    #[inline(always)]
    fn push(&self, lane: usize, slot: Slot) -> Result<(), Error> {
        let shared = &*self.shared;
        // Count first, then look at `closed` (both SeqCst): either close sees this event
        // and waits for it, or this call sees close and withdraws it.
        let on_lane = shared.counters.recorded.add(lane, 1);
        if shared.closed.load(Ordering::SeqCst) {
            return Err(self.withdraw(lane, slot));
        }
        if let Err(slot) = shared.queue.push(lane, slot) {
            // Cannot be full: a lane's ring has a place for every slot.
            return Err(self.withdraw(lane, slot));
        }
        // The flush thread schedules itself from the arrival rate; only a batch that fills
        // before it comes makes one producer wake it. The others pay one load, every
        // `wake_check` events on their lane: the total is a sum over the lanes' lines.
        if on_lane & self.wake_check == 0 {
            let queue = &shared.queue;
            shared.wake.if_due(shared.counters.recorded.sum(), || {
                let over_half = queue.capacity() / 2 + 1;
                over_half.saturating_sub(queue.len()) as u64
            });
        }
        Ok(())
    }

    /// For bindings: like [`record_with`](Self::record_with), for an encoder that vouches
    /// for its output — one compact JSON object, valid UTF-8, no raw line breaks — and
    /// says which of `version` and `event_timestamp` it wrote: the bytes are completed
    /// without being scanned again. The Python binding's dict encoder uses it (its output
    /// is checked against `json.loads` by its tests). Not part of the stable API.
    #[doc(hidden)]
    #[inline]
    pub fn record_encoded_with<P: Park>(
        &self,
        park: &mut P,
        encode: impl FnOnce(&mut Vec<u8>, usize) -> Result<Encoded, Error>,
    ) -> Result<(), Error> {
        self.submit(park, |slot, limit| {
            let encoded = encode(slot, limit)?;
            complete_encoded(slot, encoded, limit)
        })
    }

    /// For bindings: [`Error::Closed`] (or [`Error::Forked`]), counted, if a record call
    /// would be refused for that, so that a binding checks it before it looks at (and may
    /// refuse) the event, as the core does. Not part of the stable API.
    #[doc(hidden)]
    pub fn refuse_if_closed(&self) -> Result<(), Error> {
        let refused = if self.forked(false) {
            Error::Forked
        } else if self.shared.closed.load(Ordering::Relaxed) {
            Error::Closed
        } else {
            return Ok(());
        };
        self.shared.counters.reject(&refused);
        Err(refused)
    }

    /// For bindings: counts a call the binding turned away before it reached the pipeline
    /// (a Python `event_data` it could not encode, a CADF field from C that is not UTF-8),
    /// in `stats.rejected` like any other. Not part of the stable API.
    #[doc(hidden)]
    pub fn count_rejected(&self, error: &Error) {
        self.shared.counters.reject(error);
    }

    #[cold]
    fn withdraw(&self, lane: usize, slot: Slot) -> Error {
        self.shared.counters.recorded.sub(lane, 1);
        self.shared.pool.give_back(lane, slot);
        Error::Closed
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

    /// The last send, store or rejection error, if any: kept until another error replaces
    /// it (a later success does not clear it), so look at it when [`stats`](Self::stats)
    /// say something was not delivered.
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error()
    }

    /// What the backing store found and repaired when it was opened (a torn write cut,
    /// damaged segments set aside, events lost to damage, which `stats` counts as
    /// `dropped.damaged`). `None` without a store, or from a store that reports nothing.
    pub fn recovery(&self) -> Option<Recovery> {
        self.recovery.clone()
    }

    /// The configured service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Events the queue holds before the overflow policy applies (with several threads
    /// recording, it can apply once the queue is over half full: see
    /// [`Config::queue_capacity`]).
    pub fn capacity(&self) -> usize {
        self.shared.queue.capacity()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}
