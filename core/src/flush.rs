//! The flush thread: takes events off the queue in batches (by count, bytes and interval),
//! sends them through the sink, retries with backoff, splits on 413, bisects on other
//! content rejections, and shuts down by the deadline `close` gives it.
//!
//! It sleeps on a control channel, not on the queue: producers wake it once a batch is
//! ready, the interval timer wakes it for partial batches, so `record` never pays for a
//! wake-up per event.

use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, select};

use crate::pipeline::Shared;
use crate::slots::Slot;
use crate::stats::FlushCounts;
use crate::{Limits, Outcome, RetryPolicy, Sink};

/// Requests from the pipeline handle.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send everything queued now, then drop the sender (the caller waits for that).
    Flush(Sender<()>),
    /// Send what can be sent by the deadline, drop the rest, and exit.
    Close(Instant),
}

/// Where events of a batch ended.
#[derive(Debug, Clone, Copy)]
enum Settle {
    Delivered,
    DeadLettered,
    Failed,
    DroppedAtShutdown,
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
    /// An event taken off the queue that did not fit the byte limit of the last batch.
    pub(crate) carry: Option<Slot>,
    pub(crate) flush_waiters: Vec<Sender<()>>,
    pub(crate) close_deadline: Option<Instant>,
    pub(crate) rng: fastrand::Rng,
}

/// `now + timeout`, with absurd timeouts (`Duration::MAX`) capped at a year so the
/// addition cannot overflow.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(timeout.min(YEAR)).unwrap_or(now)
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
            let now = Instant::now();
            if now >= next_tick {
                self.send_queued();
                next_tick = deadline_after(self.interval);
            } else {
                let until = self.next_full_batch(now).min(next_tick);
                select! {
                    recv(self.wake) -> woken => {
                        if woken.is_err() {
                            self.on_command(None);
                        }
                    }
                    recv(self.commands) -> command => self.on_command(command.ok()),
                    default(until.saturating_duration_since(now)) => {}
                }
                self.send_full_batches();
            }
            self.answer_flushes();
            self.arm_wake();
        }
    }

    /// When to look again: a little before a full batch should be queued, judging by the
    /// arrival rate since the last look, so producers rarely find it late and have to wake it.
    fn next_full_batch(&mut self, now: Instant) -> Instant {
        const SOONEST: Duration = Duration::from_micros(20);
        let recorded = self.shared.counters.recorded.load(Ordering::Relaxed);
        let (then, before) = std::mem::replace(&mut self.rate_mark, (now, recorded));
        let arrived = recorded.saturating_sub(before);
        let missing = self.ready_at.saturating_sub(self.ready()) as u64;
        if missing == 0 {
            return now;
        }
        if arrived == 0 {
            return deadline_after(self.interval);
        }
        let per_event =
            now.saturating_duration_since(then) / arrived.min(u64::from(u32::MAX)) as u32;
        let eta = per_event.saturating_mul(missing.min(u64::from(u32::MAX)) as u32);
        deadline_after((eta * 4 / 5).max(SOONEST))
    }

    /// Asks producers to wake this thread if a full batch is queued before it looks.
    fn arm_wake(&self) {
        let due = self.counts.taken + self.ready_at as u64;
        self.shared.next_wake.store(due, Ordering::Relaxed);
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

    fn on_command(&mut self, command: Option<Command>) {
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

    fn ready(&self) -> usize {
        self.queue.len() + usize::from(self.carry.is_some())
    }

    fn send_full_batches(&mut self) {
        for _ in 0..self.batches_per_wake {
            if self.closing() || self.ready() < self.ready_at || self.take_batch(usize::MAX) == 0 {
                return;
            }
            self.deliver_batch();
        }
    }

    /// Sends what is queued now (not what arrives meanwhile, so this ends under load).
    fn send_queued(&mut self) {
        let mut budget = self.ready();
        while budget > 0 && !self.past_close_deadline() {
            let taken = self.take_batch(budget);
            if taken == 0 {
                return;
            }
            budget = budget.saturating_sub(taken);
            self.deliver_batch();
        }
    }

    /// Fills `self.batch` with up to `max` events within the limits; returns its length.
    fn take_batch(&mut self, max: usize) -> usize {
        let cap = self.limits.max_events.min(max);
        let mut bytes = 0;
        if let Some(slot) = self.carry.take() {
            bytes += slot.len() + 1;
            self.batch.push(slot);
        }
        while self.batch.len() < cap {
            let Ok(slot) = self.queue.try_recv() else {
                break;
            };
            self.counts.taken += 1;
            self.counts.in_flight += 1;
            if !self.batch.is_empty() && bytes + slot.len() + 1 > self.limits.max_bytes {
                self.carry = Some(slot);
                break;
            }
            bytes += slot.len() + 1;
            self.batch.push(slot);
        }
        self.shared.counters.publish(&self.counts);
        self.batch.len()
    }

    fn deliver_batch(&mut self) {
        let mut batch = std::mem::take(&mut self.batch);
        {
            let events: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            self.deliver(&events);
        }
        for slot in batch.drain(..) {
            self.shared.pool.give_back(slot);
        }
        self.batch = batch;
    }

    /// Sends `events` until each one is delivered, dead-lettered, failed or dropped.
    fn deliver(&mut self, events: &[&[u8]]) {
        let started = Instant::now();
        let mut failures = 0u32;
        // Ranges still to send; the next one is on top.
        let mut pending: Vec<Range<usize>> = Vec::with_capacity(16);
        pending.push(0..events.len());
        while let Some(range) = pending.pop() {
            if range.is_empty() {
                continue;
            }
            if self.past_close_deadline() {
                pending.push(range);
                self.settle_all(&pending, Settle::DroppedAtShutdown);
                return;
            }
            let part = &events[range.clone()];
            match self.send(part) {
                Outcome::Delivered => self.settle(part.len(), Settle::Delivered),
                Outcome::TooLarge { reason } | Outcome::Rejected { reason, .. }
                    if part.len() == 1 =>
                {
                    self.shared.dead_letters.push(part[0], &reason);
                    self.shared.note_error(reason);
                    self.settle(1, Settle::DeadLettered);
                }
                Outcome::Rejected { index: Some(i), .. } if i < part.len() => {
                    // Confirm the blamed event alone; the others go on in order.
                    let at = range.start + i;
                    pending.push(at + 1..range.end);
                    pending.push(at..at + 1);
                    pending.push(range.start..at);
                }
                Outcome::TooLarge { .. } | Outcome::Rejected { .. } => {
                    let mid = range.start + part.len() / 2;
                    pending.push(mid..range.end);
                    pending.push(range.start..mid);
                }
                Outcome::Retry { after, reason } => {
                    failures += 1;
                    self.shared.note_error(reason);
                    let delay = self.retry.delay(failures, after, &mut self.rng);
                    pending.push(range);
                    if failures >= self.retry.max_attempts
                        || started.elapsed().saturating_add(delay) > self.retry.max_elapsed
                    {
                        self.settle_all(&pending, Settle::Failed);
                        return;
                    }
                    if !self.pause(delay) {
                        self.settle_all(&pending, Settle::DroppedAtShutdown);
                        return;
                    }
                }
            }
        }
    }

    fn send(&mut self, part: &[&[u8]]) -> Outcome {
        let sink = &mut self.sink;
        let outcome = catch_unwind(AssertUnwindSafe(|| sink.send(part))).unwrap_or_else(|panic| {
            Outcome::retry(format!(
                "the sink panicked: {}",
                panic_message(panic.as_ref())
            ))
        });
        self.counts.sends += 1;
        if matches!(outcome, Outcome::Retry { .. }) {
            self.counts.retries += 1;
        }
        self.shared.counters.publish(&self.counts);
        outcome
    }

    fn settle(&mut self, n: usize, how: Settle) {
        let n = n as u64;
        self.counts.in_flight -= n;
        match how {
            Settle::Delivered => self.counts.delivered += n,
            Settle::DeadLettered => self.counts.dead_lettered += n,
            Settle::Failed => self.counts.failed += n,
            Settle::DroppedAtShutdown => self.counts.dropped_shutdown += n,
        }
        self.shared.counters.publish(&self.counts);
    }

    fn settle_all(&mut self, ranges: &[Range<usize>], how: Settle) {
        let n = ranges.iter().map(ExactSizeIterator::len).sum();
        self.settle(n, how);
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

    fn past_close_deadline(&mut self) -> bool {
        self.closing() && self.close_deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Waits `delay` before a retry while still taking commands; false if `close`'s
    /// deadline ended the wait.
    fn pause(&mut self, delay: Duration) -> bool {
        let until = deadline_after(delay);
        loop {
            let end = self.close_deadline.map_or(until, |d| d.min(until));
            let now = Instant::now();
            if now >= end {
                return !self.past_close_deadline();
            }
            match self.commands.recv_timeout(end - now) {
                Ok(command) => self.on_command(Some(command)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.on_command(None);
                    std::thread::sleep(end.saturating_duration_since(Instant::now()));
                }
            }
        }
    }

    /// Sends what it can by `deadline`, then drops the rest. Producers that were accepted
    /// before the pipeline closed may still be pushing: wait until every accepted event has
    /// been taken, so none is left behind in the queue.
    fn shut_down(&mut self, deadline: Instant) {
        while Instant::now() < deadline {
            if self.ready() == 0 {
                if self.all_accepted_taken() {
                    break;
                }
                std::thread::yield_now();
                continue;
            }
            self.take_batch(usize::MAX);
            self.deliver_batch();
        }
        loop {
            if let Some(slot) = self.carry.take() {
                self.settle(1, Settle::DroppedAtShutdown);
                self.shared.pool.give_back(slot);
            }
            while let Ok(slot) = self.queue.try_recv() {
                self.counts.taken += 1;
                self.counts.dropped_shutdown += 1;
                self.shared.pool.give_back(slot);
            }
            self.shared.counters.publish(&self.counts);
            if self.all_accepted_taken() {
                break;
            }
            std::thread::yield_now();
        }
        self.flush_waiters.clear();
    }

    fn all_accepted_taken(&self) -> bool {
        self.counts.taken >= self.shared.counters.recorded.load(Ordering::SeqCst)
    }

    /// The flush thread panicked (a bug, not a sink's panic, which is retried): stop taking
    /// events and count everything held or queued as failed, so the books still balance.
    fn abandon(&mut self, why: &str) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.note_error(format!(
            "the flush thread panicked ({why}); the events it held are counted as failed"
        ));
        for slot in self.batch.drain(..).chain(self.carry.take()) {
            self.shared.pool.give_back(slot);
        }
        self.counts.failed += self.counts.in_flight;
        self.counts.in_flight = 0;
        loop {
            while let Ok(slot) = self.queue.try_recv() {
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

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}
