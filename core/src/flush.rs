//! The flush thread: takes events off the queue in batches (by count, bytes and interval),
//! hands them to [`deliver`](crate::deliver), keeps what cannot be sent in the backing
//! store ([`drain`](crate::drain)), and shuts down by the deadline `close` gives it.
//!
//! It schedules itself: from the arrival rate it predicts when a full batch will be queued
//! and looks then. Producers wake it only if a full batch waits and it has not come, because
//! waking a parked thread costs the waker microseconds.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, select};

use crate::deliver::{GiveUp, Source, Stop};
use crate::shared::Shared;
use crate::slots::Slot;
use crate::stats::FlushCounts;
use crate::store::StoredBatch;
use crate::{Limits, RetryPolicy, Sink};

/// Requests from the pipeline handle.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send everything queued now, then drop the sender (the caller waits for that).
    Flush(Sender<()>),
    /// Send what can be sent by the deadline, keep or drop the rest, and exit.
    Close(Instant),
}

/// How often the store gets its housekeeping (interval fsync), busy or idle.
const STORE_TICK: Duration = Duration::from_millis(100);

/// `now + timeout`, with absurd timeouts (`Duration::MAX`) capped at a year so the
/// addition cannot overflow.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(timeout.min(YEAR)).unwrap_or(now)
}

pub(crate) struct Worker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) queue: Receiver<Slot>,
    pub(crate) wake: Receiver<()>,
    pub(crate) commands: Receiver<Command>,
    pub(crate) sink: Box<dyn Sink>,
    pub(crate) limits: Limits,
    /// Queued events that make a batch worth sending before the interval.
    pub(crate) ready_at: usize,
    /// When `recorded` was last read, and its value: the arrival rate since.
    pub(crate) rate_mark: (Instant, u64),
    pub(crate) interval: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) orphan_timeout: Duration,
    /// Most batches sent per wake-up before the control channel is looked at again.
    pub(crate) batches_per_wake: usize,
    pub(crate) counts: FlushCounts,
    pub(crate) batch: Vec<Slot>,
    /// An event taken off the queue that did not fit the last batch's byte limit: the
    /// oldest event outside the batch in flight, first in the next one.
    pub(crate) carry: Option<Slot>,
    /// Overflow `Spill`: callers write to the store too, so every event goes through it
    /// (moved there from the queue, sent from there) and there is one order for all.
    pub(crate) spill: bool,
    /// Whether the store's last refusal was for being full (else it failed).
    pub(crate) last_refusal_full: bool,
    pub(crate) last_store_tick: Instant,
    /// Reused buffer for batches read from the store.
    pub(crate) stored: StoredBatch,
    pub(crate) drain_failures: u32,
    pub(crate) drain_retry_at: Option<Instant>,
    pub(crate) flush_waiters: Vec<Sender<()>>,
    pub(crate) close_deadline: Option<Instant>,
    pub(crate) rng: fastrand::Rng,
}

impl Worker {
    pub(crate) fn run(mut self) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| self.serve())) {
            self.abandon(&panic_message(panic.as_ref()));
        }
    }

    fn serve(&mut self) {
        let mut next_tick = deadline_after(self.interval);
        loop {
            if let Some(deadline) = self.close_deadline {
                self.shut_down(deadline);
                return;
            }
            self.maybe_tick_store();
            let now = Instant::now();
            if now >= next_tick {
                self.send_queued();
                next_tick = deadline_after(self.interval);
            } else {
                let mut until = self.next_look(now).min(next_tick);
                if self.shared.store.is_some() {
                    until = until.min(self.last_store_tick + STORE_TICK);
                }
                select! {
                    recv(self.wake) -> woken => {
                        if woken.is_err() {
                            self.on_command(None);
                        }
                    }
                    recv(self.commands) -> command => self.on_command(command.ok()),
                    default(until.saturating_duration_since(now)) => {}
                }
                self.send_ready();
            }
            self.answer_flushes();
            self.arm_wake();
        }
    }

    /// When to look again: at once while the store can be drained, else a little before a
    /// full batch should be queued, judging by the arrival rate since the last look.
    fn next_look(&mut self, now: Instant) -> Instant {
        const SOONEST: Duration = Duration::from_micros(20);
        if self.store_pending() {
            return self.backing_off().unwrap_or(now);
        }
        let recorded = self.shared.counters.recorded.load(Ordering::Relaxed);
        let (then, before) = std::mem::replace(&mut self.rate_mark, (now, recorded));
        let arrived = recorded.saturating_sub(before);
        let missing = self.ready_at.saturating_sub(self.ready()) as u64;
        if missing == 0 {
            // A full batch waits; through the store, not before a back-off ends.
            return if self.via_store() {
                self.backing_off().unwrap_or(now)
            } else {
                now
            };
        }
        if let Some(probe) = self.probe_at() {
            return probe;
        }
        if arrived == 0 {
            return deadline_after(self.interval);
        }
        let per_event =
            now.saturating_duration_since(then) / arrived.min(u64::from(u32::MAX)) as u32;
        let eta = per_event.saturating_mul(missing.min(u64::from(u32::MAX)) as u32);
        deadline_after((eta * 4 / 5).max(SOONEST))
    }

    /// Asks producers to wake this thread once a full batch waits.
    fn arm_wake(&self) {
        let recorded = self.shared.counters.recorded.load(Ordering::Relaxed);
        let missing = self.ready_at.saturating_sub(self.ready()) as u64;
        self.shared
            .next_wake
            .store(recorded + missing.max(1), Ordering::Relaxed);
    }

    /// Answers the flushes waiting now once what is queued now has been sent. Flushes that
    /// arrive meanwhile (during a retry pause) wait for another round, which covers the
    /// events recorded before them.
    fn answer_flushes(&mut self) {
        while !self.flush_waiters.is_empty() && self.close_deadline.is_none() {
            let waiting = std::mem::take(&mut self.flush_waiters);
            self.send_queued();
            // Dropping a waiter's sender is the signal: its flush is done.
            drop(waiting);
        }
    }

    pub(crate) fn on_command(&mut self, command: Option<Command>) {
        match command {
            Some(Command::Flush(waiter)) => self.flush_waiters.push(waiter),
            Some(Command::Close(deadline)) => {
                self.close_deadline =
                    Some(self.close_deadline.map_or(deadline, |d| d.min(deadline)));
            }
            // The handle is gone without closing (leaked or torn down): close on our own.
            None => {
                if self.close_deadline.is_none() {
                    self.close_deadline = Some(deadline_after(self.orphan_timeout));
                }
            }
        }
    }

    /// Events waiting to be taken: the carried one, those put back, the queue.
    pub(crate) fn ready(&self) -> usize {
        self.queue.len()
            + usize::from(self.carry.is_some())
            + self.shared.returned_len.load(Ordering::Relaxed)
    }

    /// The store's housekeeping (interval fsync), at most every `STORE_TICK`, also during
    /// long deliveries and retry pauses.
    pub(crate) fn maybe_tick_store(&mut self) {
        if self.shared.store.is_none() || self.last_store_tick.elapsed() < STORE_TICK {
            return;
        }
        self.last_store_tick = Instant::now();
        if let Some(Err(e)) = self.shared.with_store(|s| s.tick()) {
            self.shared
                .note_error(format!("backing store housekeeping: {e}"));
        }
    }

    /// Whether what waits now goes through the store: under `Spill` (unless the store is
    /// refusing events), and whenever the store holds events (they are older than the queue).
    fn via_store(&self) -> bool {
        (self.spill && !self.shared.direct()) || self.store_pending()
    }

    /// When to try a store that refused events again (`Spill` sending from memory).
    fn probe_at(&self) -> Option<Instant> {
        (self.spill && self.shared.direct() && self.ready() > 0)
            .then(|| self.backing_off().unwrap_or_else(Instant::now))
    }

    /// Sends what is worth sending now: the store's backlog, else full batches.
    fn send_ready(&mut self) {
        for _ in 0..self.batches_per_wake {
            if self.closing() {
                return;
            }
            let probe = self.probe_at().is_some_and(|at| at <= Instant::now());
            if self.store_pending() || (self.via_store() && self.ready() >= self.ready_at) || probe
            {
                if self.backing_off().is_some() || !self.drain_step() {
                    return;
                }
            } else if self.ready() < self.ready_at || self.take_to_send(usize::MAX) == 0 {
                return;
            } else {
                self.deliver_batch();
            }
        }
    }

    /// Sends what is queued now (not what arrives meanwhile, so this ends under load), and
    /// drains the store as far as the sink allows.
    fn send_queued(&mut self) {
        let mut budget = self.ready();
        while self.via_store() && (self.store_pending() || budget > 0) {
            if self.backing_off().is_some() || self.past_close_deadline() || !self.drain_step() {
                return;
            }
            budget = 0;
        }
        while budget > 0 && !self.past_close_deadline() && !self.store_pending() {
            let taken = self.take_to_send(budget);
            if taken == 0 {
                return;
            }
            budget = budget.saturating_sub(taken);
            self.deliver_batch();
        }
    }

    /// Takes a batch off the queue to send it, if nothing waits in the store. With a store,
    /// this happens under its lock, so whatever goes into the store meanwhile is newer.
    fn take_to_send(&mut self, max: usize) -> usize {
        let shared = Arc::clone(&self.shared);
        match shared.lock_store() {
            None => self.take_batch(max),
            Some(store) if store.size().events > 0 => 0,
            Some(_store) => self.take_batch(max),
        }
    }

    /// Fills `self.batch` with up to `max` events within the sink's limits, for sending;
    /// returns its length. An event that would break the byte limit is carried over.
    pub(crate) fn take_batch(&mut self, max: usize) -> usize {
        self.take(self.limits.max_events.min(max), Some(self.limits.max_bytes))
    }

    /// Fills `self.batch` with up to `max` events, for the store (no byte limit).
    pub(crate) fn take_for_store(&mut self, max: usize) -> usize {
        self.take(max, None)
    }

    /// Takes events in order: the carried one, those put back, then the queue.
    fn take(&mut self, cap: usize, max_bytes: Option<usize>) -> usize {
        let shared = Arc::clone(&self.shared);
        let mut returned =
            (shared.returned_len.load(Ordering::Relaxed) > 0).then(|| shared.returned.lock());
        let mut bytes = 0;
        while self.batch.len() < cap {
            let slot = match self.carry.take() {
                Some(slot) => slot,
                None => {
                    let next = match returned.as_mut().and_then(|r| r.pop_front()) {
                        Some(slot) => Some(slot),
                        None => self.queue.try_recv().ok(),
                    };
                    let Some(slot) = next else {
                        break;
                    };
                    self.counts.taken += 1;
                    self.counts.in_flight += 1;
                    slot
                }
            };
            if max_bytes.is_some_and(|max| !self.batch.is_empty() && bytes + slot.len() + 1 > max) {
                self.carry = Some(slot);
                break;
            }
            bytes += slot.len() + 1;
            self.batch.push(slot);
        }
        if let Some(r) = &returned {
            shared.returned_len.store(r.len(), Ordering::Relaxed);
        }
        drop(returned);
        self.shared.counters.publish(&self.counts);
        self.batch.len()
    }

    /// Puts a taken batch back, in order, ahead of everything not yet taken (the store
    /// refused it): its events count as queued again.
    pub(crate) fn put_back(&mut self, batch: Vec<Slot>) {
        let n = batch.len() as u64;
        self.counts.taken -= n;
        self.counts.in_flight -= n;
        let mut returned = self.shared.returned.lock();
        for slot in batch.into_iter().rev() {
            returned.push_front(slot);
        }
        self.shared
            .returned_len
            .store(returned.len(), Ordering::Relaxed);
        drop(returned);
        self.shared.counters.publish(&self.counts);
    }

    /// Sends `self.batch`; what cannot be sent goes to the store, or fails.
    fn deliver_batch(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        {
            let events: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            match self.deliver(&events, Source::Memory) {
                Ok(()) => {}
                Err((settled, Stop::Exhausted)) => self.keep_unsent(&events[settled..]),
                Err((settled, Stop::Shutdown)) => self.keep_at_shutdown(&events[settled..]),
            }
        }
        self.recycle(batch);
    }

    /// Gives a batch's slots back to the pool and keeps the (empty) vector for reuse.
    pub(crate) fn recycle(&mut self, mut batch: Vec<Slot>) {
        for slot in batch.drain(..) {
            self.shared.pool.give_back(slot);
        }
        self.batch = batch;
    }

    /// Whether `close` was called, noticed even while busy sending: `close` sets the
    /// shared flag before it sends its command, so the command is waiting to be read.
    fn closing(&mut self) -> bool {
        if self.close_deadline.is_none() && self.shared.closed.load(Ordering::Relaxed) {
            while let Ok(command) = self.commands.try_recv() {
                self.on_command(Some(command));
            }
        }
        self.close_deadline.is_some()
    }

    pub(crate) fn past_close_deadline(&mut self) -> bool {
        self.closing() && self.close_deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Waits `delay` before a retry while still taking commands (and keeping the store's
    /// housekeeping going); false if `close`'s deadline ended the wait.
    pub(crate) fn pause(&mut self, delay: Duration) -> bool {
        let until = deadline_after(delay);
        loop {
            self.maybe_tick_store();
            let end = self.close_deadline.map_or(until, |d| d.min(until));
            let now = Instant::now();
            if now >= end {
                return !self.past_close_deadline();
            }
            let mut wait = end - now;
            if self.shared.store.is_some() {
                wait = wait.min(STORE_TICK);
            }
            match self.commands.recv_timeout(wait) {
                Ok(command) => self.on_command(Some(command)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.on_command(None);
                    std::thread::sleep(wait);
                }
            }
        }
    }

    /// Sends what it can by `deadline`, then keeps the rest in the store (or drops it).
    /// Producers that were accepted before the pipeline closed may still be pushing: wait
    /// until every accepted event has been taken, so none is left behind in the queue.
    fn shut_down(&mut self, deadline: Instant) {
        while Instant::now() < deadline {
            if self.store_pending() || (self.via_store() && self.ready() > 0) {
                match self.backing_off() {
                    Some(at) if at >= deadline => break,
                    Some(at) => {
                        if !self.pause(at.saturating_duration_since(Instant::now())) {
                            break;
                        }
                    }
                    None => {
                        if !self.drain_step()
                            && self.backing_off().is_none()
                            && !self.store_pending()
                        {
                            // Nothing to drain and nothing left to move: done.
                            if self.ready() == 0 && self.all_accepted_taken() {
                                break;
                            }
                        }
                    }
                }
                continue;
            }
            if self.ready() == 0 {
                if self.all_accepted_taken() {
                    break;
                }
                std::thread::yield_now();
                continue;
            }
            if self.take_to_send(usize::MAX) > 0 {
                self.deliver_batch();
            }
        }
        self.keep_leftovers();
        self.flush_waiters.clear();
    }

    pub(crate) fn all_accepted_taken(&self) -> bool {
        let c = &self.shared.counters;
        // Read the callers' store counters before `recorded`: see `Counters::snapshot`.
        let elsewhere =
            c.caller_stored.load(Ordering::SeqCst) + c.caller_moved.load(Ordering::SeqCst);
        self.counts.taken + elsewhere >= c.recorded.load(Ordering::SeqCst)
    }

    /// The flush thread panicked (a bug, not a sink's panic, which is retried): stop taking
    /// events and count everything held or queued as failed, so the books still balance.
    fn abandon(&mut self, why: &str) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.note_error(format!(
            "the flush thread panicked ({why}); the events it held are counted as failed"
        ));
        let batch = std::mem::take(&mut self.batch);
        self.recycle(batch);
        if let Some(slot) = self.carry.take() {
            self.shared.pool.give_back(slot);
        }
        let held = self.counts.in_flight;
        self.give_up(held as usize, GiveUp::Failed);
        loop {
            let returned = std::mem::take(&mut *self.shared.returned.lock());
            self.shared.returned_len.store(0, Ordering::Relaxed);
            let queued = std::iter::from_fn(|| self.queue.try_recv().ok());
            for slot in returned.into_iter().chain(queued).collect::<Vec<_>>() {
                self.counts.taken += 1;
                self.counts.failed += 1;
                self.shared.pool.give_back(slot);
            }
            self.shared.counters.publish(&self.counts);
            if self.all_accepted_taken() {
                return;
            }
            std::thread::yield_now();
        }
    }
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}
