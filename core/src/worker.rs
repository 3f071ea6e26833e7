//! The flush thread's state, and the small operations all of its work uses: taking events
//! in order, counting them, waiting while still taking commands (`worker/pause.rs`).
//!
//! The work itself lives by topic: [`flush`](crate::flush) runs the loop and decides what
//! to do next from [`State`], [`deliver`](crate::deliver) sends one batch until every
//! event in it is settled, and [`drain`](crate::drain) does the work with the backing store.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::clock::WallClock;
use crate::config::Overflow;
use crate::deliver::Refusals;
use crate::encode::capture::{finish, json_size_at_least};
use crate::flush::LaneWatch;
use crate::losses::LossWatch;
use crate::prefetch;
use crate::shared::Shared;
use crate::slots::Slot;
use crate::stats::FlushCounts;
use crate::store::StoredBatch;
use crate::throttle::Throttle;
use crate::{Config, Limits, RetryPolicy, Sink};

mod pause;

/// Requests from the pipeline handle.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send everything queued now, then drop the sender (the caller waits for that).
    Flush(Sender<()>),
    /// Send what can be sent by the deadline, keep or drop the rest, and exit.
    Close(Instant),
}

/// What the flush thread does next, decided each round from its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Sending batches from the queue as they fill.
    Running,
    /// The store holds events (or `Spill` routes everything through it): they go first,
    /// the queue follows them in.
    Draining,
    /// A send, a drain or the receiver's `Retry-After` says: no request before `until`.
    BackingOff {
        /// When sending may resume.
        until: Instant,
    },
    /// `close` was called: send what can be sent by `by`, then keep or drop the rest.
    Closing {
        /// `close`'s deadline, less a reserve to store what is left.
        by: Instant,
    },
}

/// Where the events being delivered live, which decides the counters they move between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Taken off the queue (or held in memory): counted in flight.
    Memory,
    /// Read from the backing store, still in it until committed: counted stored.
    Store,
}

/// Why a delivery stopped before settling everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The retry policy's attempts or time ran out.
    Exhausted,
    /// `close`'s deadline passed, or `close` returned.
    Shutdown,
    /// The queue filled up to half behind a batch retried from memory, with a backing
    /// store to take both (the batch first, then the queue behind it).
    Pressure,
}

/// Why in-flight events were given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GiveUp {
    Failed,
    Shutdown,
    StoreFull,
}

/// How many events `take_batch` asks the memory for at once.
const AHEAD: usize = 8;

/// How often the store gets its housekeeping (interval fsync), busy or idle.
pub(crate) const STORE_TICK: Duration = Duration::from_millis(100);

/// How long without a new event before the pipeline counts as idle and frees its spare
/// slots.
pub(crate) const IDLE_AFTER: Duration = Duration::from_secs(3);

/// `now + timeout`, with absurd timeouts (`Duration::MAX`) capped at a year so the
/// addition cannot overflow.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(timeout.min(YEAR)).unwrap_or(now)
}

/// When a full batch is due, judged from the arrival rate, so the thread looks then
/// instead of making producers wake it.
#[derive(Debug)]
pub(crate) struct Schedule {
    /// Queued events that make a batch worth sending before the interval.
    pub(crate) ready_at: usize,
    /// When `recorded` was last read, and its value: the arrival rate since.
    pub(crate) rate_mark: (Instant, u64),
    /// Time between arrivals as last measured: kept across looks that saw none, since
    /// producers call in bursts.
    pub(crate) per_event: Option<Duration>,
    pub(crate) interval: Duration,
    /// Most batches sent per wake-up before the control channel is looked at again.
    pub(crate) batches_per_wake: usize,
    /// `recorded` when it last changed, and when: the pipeline is idle after a while.
    pub(crate) last_arrival: (Instant, u64),
    /// Spare slots were freed in this idle spell.
    pub(crate) trimmed: bool,
}

/// Re-sends after a failed store commit: the events stay at the head of the store and are
/// sent again, but must not be counted as delivered twice.
#[derive(Debug, Default)]
pub(crate) struct Redelivery {
    /// Events at the head of the store that were delivered but whose commit failed.
    pub(crate) uncommitted: u64,
    /// Of the batch being delivered from the store, how many of its first events are such
    /// re-sends and not yet settled again.
    pub(crate) resends_left: u64,
}

/// The channels the flush thread reads.
#[derive(Debug)]
pub(crate) struct Inbox {
    pub(crate) wake: Receiver<()>,
    pub(crate) commands: Receiver<Command>,
}

pub(crate) struct Worker {
    pub(crate) shared: Arc<Shared>,
    /// The queue's lane to take events from next (`Queue::pop`).
    pub(crate) lane: usize,
    /// What `note_idle_lanes` last saw of the lanes.
    pub(crate) lanes: LaneWatch,
    pub(crate) wake: Receiver<()>,
    pub(crate) commands: Receiver<Command>,
    pub(crate) sink: Box<dyn Sink>,
    pub(crate) limits: Limits,
    pub(crate) retry: RetryPolicy,
    pub(crate) rng: fastrand::Rng,
    pub(crate) schedule: Schedule,
    pub(crate) counts: FlushCounts,
    /// Reused batch of slots taken off the queue.
    pub(crate) batch: Vec<Slot>,
    /// Reused buffer for batches read from the store.
    pub(crate) stored: StoredBatch,
    /// Overflow `Spill`: callers write to the store too, so every event goes through it
    /// (moved there from the queue, sent from there) and there is one order for all.
    pub(crate) spill: bool,
    /// A durable store keeps what `close` leaves: no last try before its deadline is
    /// needed (`worker/pause.rs`). Without one, or with one that dies with the process
    /// (the memory store), what is left is lost.
    pub(crate) keeps_at_close: bool,
    /// Whether the store's last refusal was for being full (else it failed).
    pub(crate) last_refusal_full: bool,
    pub(crate) last_store_tick: Instant,
    /// Failed drain rounds in a row, for the back-off.
    pub(crate) drain_failures: u32,
    /// No request before this: a back-off after a failure, or the receiver's
    /// `Retry-After`. Every path that sends waits for it.
    pub(crate) not_before: Option<Instant>,
    pub(crate) close_by: Option<Instant>,
    pub(crate) flush_waiters: Vec<Sender<()>>,
    pub(crate) orphan_timeout: Duration,
    pub(crate) refusals: Refusals,
    pub(crate) redelivery: Redelivery,
    pub(crate) losses: LossWatch,
    pub(crate) logs: Logs,
    /// Turns the counter ticks of captured events into wall-clock time: the shared pair,
    /// taken again before each batch.
    pub(crate) wall: WallClock,
    /// Reused buffer captured events are rendered into.
    pub(crate) scratch: Vec<u8>,
    /// The next few events `take_batch` will render, their bytes already asked for.
    pub(crate) ahead: VecDeque<Slot>,
    /// `take_batch` is rendering an event it holds in neither `ahead` nor the batch.
    pub(crate) rendering: bool,
    /// A slot kept back from a sent batch for the gap marker that is due: under overload the
    /// producers take every slot that comes free, and the marker must not wait for ever.
    pub(crate) spare: Option<Slot>,
    /// Where the batch being sent came from, while `deliver` runs: its retry pauses keep
    /// the queue from overflowing into refusals while a store could take it (`relieve_queue`).
    pub(crate) delivering: Option<Source>,
    /// A pause ended because the queue filled up behind a batch retried from memory.
    pub(crate) pressure: bool,
    /// The store refused the batch that pressure was to keep in it: it is retried in
    /// memory without pressure.
    pub(crate) relief_refused: bool,
    /// Not before then is the queue moved into a store that refused it (`relieve_queue`).
    pub(crate) relief_due: Option<Instant>,
    /// Under `Spill`, not before then is a store that refused the queue while empty asked
    /// again (`drain_step`); meanwhile batches go from memory.
    pub(crate) probe_due: Option<Instant>,
}

/// Rate-limited log lines of the flush thread's own troubles.
#[derive(Debug, Default)]
pub(crate) struct Logs {
    pub(crate) retries: Throttle,
    pub(crate) stored: Throttle,
    pub(crate) dead_letters: Throttle,
}

impl Worker {
    pub(crate) fn new(
        shared: Arc<Shared>,
        inbox: Inbox,
        sink: Box<dyn Sink>,
        config: &Config,
        limits: Limits,
        counts: FlushCounts,
    ) -> Self {
        // A batch is worth sending once it is full, or half the queue if that is less, so
        // a small queue never waits for a batch that cannot form.
        let ready_at = limits.max_events.min(config.queue_capacity / 2).max(1);
        let now = Instant::now();
        let keeps_at_close = shared.with_store(|s| s.is_durable()).unwrap_or(false);
        Worker {
            shared,
            lane: 0,
            lanes: LaneWatch::new(now),
            wake: inbox.wake,
            commands: inbox.commands,
            sink,
            limits,
            retry: config.retry,
            rng: fastrand::Rng::new(),
            schedule: Schedule {
                ready_at,
                rate_mark: (now, 0),
                per_event: None,
                interval: config.flush_interval,
                batches_per_wake: config.queue_capacity / limits.max_events + 1,
                last_arrival: (now, 0),
                trimmed: false,
            },
            counts,
            batch: Vec::with_capacity(limits.max_events.min(config.queue_capacity)),
            stored: StoredBatch::new(),
            spill: config.overflow == Overflow::Spill,
            keeps_at_close,
            last_refusal_full: false,
            last_store_tick: now,
            drain_failures: 0,
            not_before: None,
            close_by: None,
            flush_waiters: Vec::new(),
            orphan_timeout: config.drop_timeout,
            refusals: Refusals::default(),
            redelivery: Redelivery::default(),
            losses: LossWatch::new(config.gap_markers, &config.service, config.max_event_bytes),
            logs: Logs::default(),
            wall: WallClock::now(),
            scratch: Vec::new(),
            ahead: VecDeque::with_capacity(AHEAD),
            rendering: false,
            spare: None,
            delivering: None,
            pressure: false,
            relief_refused: false,
            relief_due: None,
            probe_due: None,
        }
    }

    /// What to do next.
    pub(crate) fn state(&mut self) -> State {
        if self.closing()
            && let Some(by) = self.close_by
        {
            return State::Closing { by };
        }
        if let Some(until) = self.backing_off() {
            return State::BackingOff { until };
        }
        if self.via_store() {
            State::Draining
        } else {
            State::Running
        }
    }

    /// Publishes the counters for `stats()`.
    pub(crate) fn publish(&self) {
        self.shared.counters.publish(&self.counts);
    }

    pub(crate) fn note_error(&self, error: String) {
        self.shared.note_error(error);
    }

    /// Events waiting to be taken: the backlog, then the queue.
    pub(crate) fn ready(&self) -> usize {
        self.shared.queue.len() + self.shared.backlog.len()
    }

    /// Events wait in the store: they go before the queue.
    pub(crate) fn store_pending(&self) -> bool {
        self.shared.store_events() > 0
    }

    /// Whether what waits now goes through the store: under `Spill` (unless the store is
    /// refusing events), and whenever the store holds events (they are older than the queue).
    pub(crate) fn via_store(&self) -> bool {
        (self.spill && !self.shared.direct()) || self.store_pending()
    }

    /// Until when nothing may be sent, if that is still ahead.
    pub(crate) fn backing_off(&self) -> Option<Instant> {
        self.not_before.filter(|at| Instant::now() < *at)
    }

    /// No request before `at` (a back-off, or the receiver's `Retry-After`).
    pub(crate) fn hold_until(&mut self, at: Instant) {
        self.not_before = Some(self.not_before.map_or(at, |t| t.max(at)));
    }

    /// After a failed round: wait before sending again, longer each time, up to the cap.
    pub(crate) fn back_off(&mut self) {
        self.drain_failures = self.drain_failures.saturating_add(1);
        let delay = self.retry.delay(self.drain_failures, None, &mut self.rng);
        self.hold_until(deadline_after(delay.max(self.retry.backoff_base)));
    }

    /// A round went through: the back-off starts small again.
    pub(crate) fn recovered(&mut self) {
        self.drain_failures = 0;
    }

    /// The store's housekeeping (interval fsync), at most every `STORE_TICK`, also during
    /// long deliveries and retry pauses.
    pub(crate) fn maybe_tick_store(&mut self) {
        if self.shared.store.is_none() || self.last_store_tick.elapsed() < STORE_TICK {
            return;
        }
        self.last_store_tick = Instant::now();
        if let Some(Err(e)) = self.shared.with_store(|s| s.tick()) {
            self.note_error(format!("backing store housekeeping: {e}"));
        }
    }

    /// Fills `self.batch` with up to `max` events within the sink's limits, for sending;
    /// returns its length. An event that would break the byte limit goes back to the front
    /// of the backlog, first in the next batch.
    pub(crate) fn take_batch(&mut self, max: usize) -> usize {
        // Timestamps are rendered below from the counter/wall-clock pair: after a long sink
        // call or a drain, take a fresh one so a stepped wall clock shows within a second.
        self.refresh_wall_clock();
        self.note_behind();
        // Each batch starts at the next lane: a lane that always has events to take would
        // otherwise hold the others back.
        self.lane = self.lane.wrapping_add(1);
        let cap = self.limits.max_events.min(max);
        let max_bytes = self.limits.max_bytes;
        let shared = Arc::clone(&self.shared);
        let mut backlog = (shared.backlog.len() > 0).then(|| shared.backlog.lock());
        let mut bytes = 0;
        while self.batch.len() < cap {
            if self.ahead.is_empty() {
                // A producer wrote these bytes on another CPU: asking for a few events' at
                // once overlaps their cache misses, which otherwise cost the flush thread
                // as much as rendering does.
                // Not past the byte limit either (by a lower bound of each event's JSON
                // size): what does not fit goes back to the backlog, out of `DropOldest`'s
                // reach, and was fetched for nothing.
                let mut expected = bytes;
                while self.ahead.len() < AHEAD.min(cap - self.batch.len())
                    && ((self.batch.is_empty() && self.ahead.is_empty()) || expected <= max_bytes)
                {
                    let next = match backlog.as_mut().and_then(|b| b.pop_front()) {
                        Some(slot) => Some(slot),
                        None => shared.queue.pop(&mut self.lane),
                    };
                    let Some(slot) = next else {
                        break;
                    };
                    prefetch::for_read(&slot);
                    expected += json_size_at_least(slot.len()) + 1;
                    self.ahead.push_back(slot);
                }
            }
            let Some(mut slot) = self.ahead.pop_front() else {
                break;
            };
            // Should rendering ever panic, `abandon` counts the slot in hand as failed.
            self.rendering = true;
            finish(&mut slot, &self.wall, &mut self.scratch);
            self.rendering = false;
            if !self.batch.is_empty() && bytes + slot.len() + 1 > max_bytes {
                drop(backlog);
                shared
                    .backlog
                    .put_front(std::iter::once(slot).chain(self.ahead.drain(..)));
                break;
            }
            bytes += slot.len() + 1;
            self.counts.taken += 1;
            self.counts.in_flight += 1;
            self.batch.push(slot);
        }
        self.publish();
        self.batch.len()
    }

    /// Gives a batch's slots back to the pool and keeps the (empty) vector for reuse.
    pub(crate) fn recycle(&mut self, mut batch: Vec<Slot>) {
        if self.spare.is_none()
            && self.losses.marker_due()
            && let Some(mut slot) = batch.pop()
        {
            slot.clear();
            self.spare = Some(slot);
        }
        self.shared.pool.give_back_all(batch.drain(..));
        self.batch = batch;
    }

    /// Unsettled in-flight events given up: `failed` (retries ran out, nowhere to keep them)
    /// or dropped at shutdown or for a full store.
    pub(crate) fn give_up(&mut self, n: usize, why: GiveUp) {
        let n = n as u64;
        self.counts.in_flight -= n;
        match why {
            GiveUp::Failed => self.counts.failed += n,
            GiveUp::Shutdown => self.counts.dropped_shutdown += n,
            GiveUp::StoreFull => self.counts.dropped_store_full += n,
        }
        self.publish();
    }

    /// The reason to give up on events whose store append failed with `e`.
    pub(crate) fn store_failure(e: &crate::Error) -> GiveUp {
        match e {
            crate::Error::StoreFull { .. } => GiveUp::StoreFull,
            _ => GiveUp::Failed,
        }
    }

    /// Whether every event accepted so far has been taken (off the queue, or moved into the
    /// store): at shutdown, producers accepted before `close` may still be pushing.
    pub(crate) fn all_accepted_taken(&self) -> bool {
        let c = &self.shared.counters;
        // Read the store counters before `recorded`: see `Counters::snapshot`.
        let elsewhere = c.caller_stored.load(Ordering::SeqCst)
            + c.moved.load(Ordering::SeqCst)
            + c.evicted.load(Ordering::SeqCst);
        self.counts.taken + elsewhere >= c.recorded.sum()
    }

    /// Tells callers under `Block` whether to render their events themselves: while the
    /// queue is over half full when a batch is taken, the flush thread is not keeping up.
    fn note_behind(&self) {
        let queue = &self.shared.queue;
        let behind = queue.len() > queue.capacity() / 2;
        if self.shared.behind.load(Ordering::Relaxed) != behind {
            self.shared.behind.store(behind, Ordering::Relaxed);
        }
    }

    /// Takes the shared counter/wall-clock pair, which is read afresh once a second (see
    /// [`crate::clock`]), by whichever thread finds it stale first.
    pub(crate) fn refresh_wall_clock(&mut self) {
        self.wall = self.shared.wall_clock();
    }

    /// Looks at the loss counters now and then (`now`: at once, as `close` begins): logs
    /// what was lost, and puts a gap marker ahead of what waits to be sent if markers are on.
    pub(crate) fn watch_losses(&mut self, now: bool) {
        if now || self.losses.due() {
            let stats = self.shared.counters.snapshot();
            self.losses.check(&stats);
        }
        // A marker that found no free slot tries again at the next turn of the loop (the
        // slot a sent batch keeps back for it), not a whole check interval later.
        if !self.losses.marker_due() {
            return;
        }
        // The marker takes a slot of the pool like any event (a buffer of its own would let
        // more events wait than the queue has places); none free now, it waits for the next
        // look, its losses kept.
        let Some(mut slot) = self
            .spare
            .take()
            .or_else(|| self.shared.pool.try_take_any())
        else {
            return;
        };
        if !self.losses.marker(&mut slot) {
            self.shared.pool.give_back_all(std::iter::once(slot));
            return;
        }
        // Recorded first, then queued (the backlog counts as queued): every snapshot balances.
        self.shared.counters.recorded.add_unlaned(1);
        self.counts.gap_markers += 1;
        self.publish();
        self.shared.backlog.put_front(std::iter::once(slot));
    }

    /// Frees spare slots once nothing was recorded for a while, so an idle pipeline gives
    /// back what a burst made it allocate.
    pub(crate) fn trim_when_idle(&mut self) {
        let recorded = self.shared.counters.recorded.sum();
        let now = Instant::now();
        if recorded != self.schedule.last_arrival.1 {
            self.schedule.last_arrival = (now, recorded);
            self.schedule.trimmed = false;
            return;
        }
        if self.schedule.trimmed
            || now.saturating_duration_since(self.schedule.last_arrival.0) < IDLE_AFTER
            || self.ready() > 0
        {
            return;
        }
        self.schedule.trimmed = true;
        // The renderer's buffer keeps the size of the largest event it rendered.
        self.scratch = Vec::new();
        // Keep one batch's worth, so a trickle of events does not allocate.
        let freed = self.shared.pool.trim(self.schedule.ready_at);
        self.batch.shrink_to(self.schedule.ready_at);
        self.stored = StoredBatch::new();
        if freed > 0 {
            crate::heap::give_back_free_memory();
        }
    }
}
