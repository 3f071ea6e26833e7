//! The flush thread's loop: takes events off the queue in batches (by count, bytes and
//! interval), hands them to [`deliver`](crate::deliver), keeps what cannot be sent in the
//! backing store ([`drain`](crate::drain)), and shuts down by the deadline `close` gives it.
//!
//! It schedules itself: from the arrival rate it predicts when a full batch will be queued
//! and looks then. Producers wake it only if a full batch waits and it has not come (see
//! [`wake`](crate::wake)), because waking a parked thread costs the waker microseconds.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::select;

use crate::drain::Moved;
use crate::error::panic_message;
use crate::lanes::MAX_LANES;
use crate::slots::LANE_IDLE_AFTER;
use crate::worker::{GiveUp, STORE_TICK, Source, State, Stop, Worker, deadline_after};

impl Worker {
    pub(crate) fn run(mut self) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| self.serve())) {
            self.abandon(&panic_message(panic.as_ref()));
        }
    }

    fn serve(&mut self) {
        let mut next_tick = deadline_after(self.schedule.interval);
        loop {
            self.maybe_tick_store();
            match self.state() {
                State::Closing { by } => {
                    self.shut_down(by);
                    return;
                }
                State::BackingOff { until } => {
                    // Nothing may be sent before `until`; keep taking commands.
                    let _ = self.pause_until(until.min(next_tick));
                    if Instant::now() >= next_tick {
                        next_tick = deadline_after(self.schedule.interval);
                    }
                }
                State::Running | State::Draining => {
                    let now = Instant::now();
                    if now >= next_tick {
                        let _ = self.send_queued();
                        next_tick = deadline_after(self.schedule.interval);
                    } else {
                        let until = self.next_look(now).min(next_tick);
                        self.wait(now, until);
                        self.send_ready();
                    }
                }
            }
            self.answer_flushes();
            self.note_idle_lanes();
            self.arm_wake();
            self.trim_when_idle();
            self.watch_losses(false);
            self.refresh_wall_clock();
        }
    }

    /// Parks until `until`, a producer's wake-up or a command.
    fn wait(&mut self, now: Instant, mut until: Instant) {
        if self.shared.store.is_some() {
            until = until.min(self.last_store_tick + STORE_TICK);
        }
        if self.shared.closed.load(Ordering::Relaxed) {
            until = until.min(now + STORE_TICK);
        }
        self.shared.wake.parking(until);
        select! {
            recv(self.wake) -> woken => {
                if woken.is_err() {
                    self.on_command(None);
                }
            }
            recv(self.commands) -> command => self.on_command(command.ok()),
            // From now, not from `now`: `parked_until` must be when the timer fires, or a
            // producer that finds it just past would skip a thread that has not parked yet.
            default(until.saturating_duration_since(Instant::now())) => {}
        }
        self.shared.wake.unparked();
    }

    /// When to look again: at once while the store can be drained, else a little before a
    /// full batch should be queued, judging by the arrival rate since the last look.
    ///
    /// Producers that call in bursts (a request handler's audit events, a paced loop) leave
    /// gaps in which nothing arrives. A look in such a gap keeps the last rate and the mark,
    /// so the next look measures over both, and waits at least as long as the gap so far
    /// (doubling while nothing comes, until the interval). Parking for the whole interval
    /// instead made a producer wake the thread for nearly every batch: 337 wake-ups, each a
    /// `futex` call on the caller's thread, in 3 s at 50 000 events/s in 1 ms bursts.
    fn next_look(&mut self, now: Instant) -> Instant {
        const SOONEST: Duration = Duration::from_micros(20);
        if self.store_pending() {
            return now;
        }
        let recorded = self.shared.counters.recorded.sum();
        let (then, before) = self.schedule.rate_mark;
        let arrived = recorded.saturating_sub(before);
        let since = now.saturating_duration_since(then);
        let mut per_event = self.schedule.per_event;
        if arrived > 0 {
            per_event = Some(since / arrived.min(u64::from(u32::MAX)) as u32);
        } else if since >= self.schedule.interval {
            per_event = None;
        }
        if arrived > 0 || per_event.is_none() {
            self.schedule.rate_mark = (now, recorded);
            self.schedule.per_event = per_event;
        }
        let missing = self.schedule.ready_at.saturating_sub(self.ready()) as u64;
        if missing == 0 {
            return now;
        }
        if let Some(probe) = self.probe_at() {
            return probe;
        }
        let Some(per_event) = per_event else {
            return deadline_after(self.schedule.interval);
        };
        let eta = per_event.saturating_mul(missing.min(u64::from(u32::MAX)) as u32) * 4 / 5;
        let gap = if arrived == 0 { since } else { Duration::ZERO };
        deadline_after(eta.max(gap).max(SOONEST))
    }

    /// Asks producers to wake this thread once a full batch waits.
    fn arm_wake(&self) {
        let recorded = self.shared.counters.recorded.sum();
        let missing = self.schedule.ready_at.saturating_sub(self.ready()) as u64;
        self.shared.wake.arm(recorded + missing.max(1));
    }

    /// Answers the flushes waiting now once what is queued now has been sent. Flushes that
    /// arrive meanwhile (during a retry pause) wait for another round, which covers the
    /// events recorded before them; so do flushes that find sending on hold (a back-off or
    /// `Retry-After`): they are answered when it ends, or time out.
    fn answer_flushes(&mut self) {
        while !self.flush_waiters.is_empty() && self.close_by.is_none() {
            let waiting = std::mem::take(&mut self.flush_waiters);
            if !self.send_queued() {
                self.flush_waiters = waiting;
                return;
            }
            // Dropping a waiter's sender is the signal: its flush is done.
            drop(waiting);
        }
    }

    /// Now, if a store that refused events is due to be tried again (`Spill` sending from
    /// memory meanwhile).
    fn probe_at(&self) -> Option<Instant> {
        let now = Instant::now();
        (self.spill
            && self.shared.direct()
            && self.ready() > 0
            && self.probe_due.is_none_or(|due| now >= due))
        .then_some(now)
    }

    /// Sends what is worth sending now: the store's backlog, else full batches.
    fn send_ready(&mut self) {
        for _ in 0..self.schedule.batches_per_wake {
            match self.state() {
                State::Closing { .. } | State::BackingOff { .. } => return,
                State::Draining => {
                    if !self.store_pending() && self.ready() < self.schedule.ready_at {
                        return;
                    }
                    if !self.drain_step() {
                        return;
                    }
                }
                State::Running => {
                    // `Spill` with a refusing store: try the store again first, when due;
                    // refused again, the batch goes from memory.
                    if self.probe_at().is_some() && self.drain_step() {
                        continue;
                    }
                    if self.backing_off().is_some()
                        || self.ready() < self.schedule.ready_at
                        || self.take_to_send(usize::MAX) == 0
                    {
                        return;
                    } else {
                        self.deliver_batch();
                    }
                }
            }
        }
    }

    /// Sends what is queued now (not what arrives meanwhile, so this ends under load), and
    /// drains the store as far as the sink allows. False if sending is on hold (a back-off,
    /// `Retry-After`, `close`) with events of the queue not yet tried.
    fn send_queued(&mut self) -> bool {
        let mut budget = self.ready();
        while self.via_store() && (self.store_pending() || budget > 0) {
            if self.backing_off().is_some() || self.past_close_deadline() || !self.drain_step() {
                // Settled as far as the sink allows once what is queued is in the store
                // behind what it holds: not while it is only in memory (a flush during an
                // outage answered with the queue still there). A store that refuses it
                // (full) leaves the flush waiting for the sink instead.
                return self.past_close_deadline() || self.move_queue_to_store() == Moved::All;
            }
            budget = 0;
        }
        while budget > 0 && !self.store_pending() {
            if self.backing_off().is_some() || self.past_close_deadline() {
                return false;
            }
            let taken = self.take_to_send(budget);
            if taken == 0 {
                break;
            }
            budget = budget.saturating_sub(taken);
            self.deliver_batch();
        }
        if self.store_pending() && !self.past_close_deadline() {
            // A batch went to the store meanwhile (out of retries, or the queue's pressure):
            // the queue follows it there before the flush is answered.
            return self.move_queue_to_store() == Moved::All;
        }
        true
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

    /// Sends `self.batch`; what cannot be sent goes to the store, or fails.
    fn deliver_batch(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        {
            let events: Vec<&[u8]> = batch.iter().map(|s| s.as_slice()).collect();
            let mut from = 0;
            loop {
                match self.deliver(&events[from..], Source::Memory) {
                    Ok(()) => self.recovered(),
                    Err((settled, Stop::Exhausted)) => {
                        self.counts.batches_failed += 1;
                        self.keep_unsent(&events[from + settled..]);
                    }
                    Err((settled, Stop::Shutdown)) => {
                        self.keep_at_shutdown(&events[from + settled..]);
                        // Kept in the store, they are not read back and sent again at once
                        // by `shut_down`: the next try waits as after a failed round.
                        // (Without one they are gone; the rest of the queue gets its try.)
                        if self.shared.store.is_some() {
                            self.back_off();
                        }
                    }
                    // Kept in the store before the queue follows it there: the order holds.
                    Err((settled, Stop::Pressure)) => {
                        if self.try_store_in_flight(&events[from + settled..]) {
                            self.back_off();
                        } else {
                            // The store refuses them (full, failing): giving them up would
                            // lose what retries in memory may still deliver. Retried here
                            // afresh, without the queue's pressure for this batch.
                            from += settled;
                            self.relief_refused = true;
                            continue;
                        }
                    }
                }
                break;
            }
            self.relief_refused = false;
        }
        self.recycle(batch);
    }

    /// Sends what it can by `deadline`, then keeps the rest in the store (or drops it).
    /// Producers that were accepted before the pipeline closed may still be pushing: wait
    /// until every accepted event has been taken, so none is left behind in the queue.
    fn shut_down(&mut self, deadline: Instant) {
        // Losses since the last look go into the trail too, ahead of the last events. With
        // every slot taken the marker waits for one a sent batch frees (looked for at each
        // turn below), its losses kept.
        self.watch_losses(true);
        while Instant::now() < deadline && !self.shared.stopped() {
            self.watch_losses(false);
            if self.store_pending() || (self.via_store() && self.ready() > 0) {
                match self.backing_off() {
                    Some(at) if at >= deadline => break,
                    Some(at) => {
                        if !self.pause_until(at) {
                            break;
                        }
                    }
                    None => {
                        if !self.drain_step()
                            && self.backing_off().is_none()
                            && !self.store_pending()
                            && self.ready() == 0
                            && self.all_accepted_taken()
                        {
                            // Nothing to drain and nothing left to move: done.
                            break;
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
            if let Some(at) = self.backing_off() {
                if at >= deadline || !self.pause_until(at) {
                    break;
                }
                continue;
            }
            if self.take_to_send(usize::MAX) > 0 {
                self.deliver_batch();
            }
        }
        self.keep_leftovers();
        self.flush_waiters.clear();
    }

    /// The flush thread panicked (a bug, not a sink's panic, which is retried): stop taking
    /// events and count everything held or queued as failed, so the books still balance.
    fn abandon(&mut self, why: &str) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.note_error(format!(
            "the flush thread panicked ({why}); the events it held are counted as failed"
        ));
        let batch = std::mem::take(&mut self.batch);
        self.recycle(batch);
        let held = self.counts.in_flight;
        self.give_up(held as usize, GiveUp::Failed);
        // Taken off the queue by `take_batch` but not yet in the batch.
        if std::mem::take(&mut self.rendering) {
            self.counts.taken += 1;
            self.counts.failed += 1;
        }
        let mut ahead: Vec<_> = self.ahead.drain(..).collect();
        loop {
            let backlog = self.shared.backlog.take_all();
            let queue = &self.shared.queue;
            let lane = &mut self.lane;
            let queued = std::iter::from_fn(|| queue.pop(lane));
            let held = std::mem::take(&mut ahead)
                .into_iter()
                .chain(backlog)
                .chain(queued);
            let held: Vec<_> = held.collect();
            self.counts.taken += held.len() as u64;
            self.counts.failed += held.len() as u64;
            self.shared.pool.give_back_all(held.into_iter());
            self.publish();
            if self.all_accepted_taken() {
                return;
            }
            std::thread::yield_now();
        }
    }
}

/// How often the flush thread looks at which lanes are idle (`note_idle_lanes`).
const LANES_LOOK_EVERY: Duration = Duration::from_millis(5);

/// What the flush thread last saw of the lanes: when it looked, each lane's `recorded`
/// count then, and when each lane last recorded.
#[derive(Debug)]
pub(crate) struct LaneWatch {
    looked_at: Instant,
    recorded: [u64; MAX_LANES],
    busy_at: [Instant; MAX_LANES],
}

impl LaneWatch {
    pub(crate) fn new(now: Instant) -> Self {
        LaneWatch {
            looked_at: now,
            recorded: [0; MAX_LANES],
            busy_at: [now; MAX_LANES],
        }
    }
}

impl Worker {
    /// Empties the slot caches of the lanes that recorded nothing for `LANE_IDLE_AFTER`
    /// (see `slots.rs`): their free slots are then for any caller's taking.
    pub(crate) fn note_idle_lanes(&mut self) {
        let watch = &mut self.lanes;
        // A look every few milliseconds is enough for a 100 ms rule.
        let now = Instant::now();
        if now.saturating_duration_since(watch.looked_at) < LANES_LOOK_EVERY {
            return;
        }
        watch.looked_at = now;
        let counts = self.shared.counters.recorded.lanes();
        let mut idle = 0u64;
        for (lane, (count, (seen, at))) in counts
            .zip(watch.recorded.iter_mut().zip(watch.busy_at.iter_mut()))
            .enumerate()
        {
            if count != *seen {
                *seen = count;
                *at = now;
            } else if now.saturating_duration_since(*at) >= LANE_IDLE_AFTER {
                idle |= 1 << lane;
            }
        }
        self.shared.pool.empty_caches(idle);
    }
}
