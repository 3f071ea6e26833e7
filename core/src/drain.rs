//! The flush thread's work with the backing store: keeping what could not be sent, moving
//! the queue in behind it so order holds, and draining the store oldest first.
//!
//! Order: while the store holds events nothing is sent from the queue; the queue is moved
//! in behind them (events leave the queue only with the store locked, so nothing newer can
//! get in between). Without `Spill` only this thread writes to the store, so a batch whose
//! retries ran out is appended to an empty store and everything after it follows. Under
//! `Spill`, callers append too, so every event goes through the store: the store's order is
//! the only order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backlog::move_into_store;
use crate::worker::{GiveUp, Source, Stop, Worker};

/// How long a store that refused the queue is not asked again: by `relieve_queue` during
/// back-offs, and by the `Spill` probe (`probe_due`) while batches go from memory.
const RELIEF_RETRY: Duration = Duration::from_secs(1);

/// What became of a move of the queue into the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moved {
    /// Everything waiting is in the store now.
    All,
    /// The store refused some; they wait ahead of the queue.
    Refused,
}

impl Worker {
    /// Keeps the unsent events of a batch whose retries ran out: in the store, or as
    /// `failed` without one. (Under `Spill` batches come from the store and stay there.)
    pub(crate) fn keep_unsent(&mut self, events: &[&[u8]]) {
        if self.shared.store.is_some() {
            self.append_in_flight(events);
        } else {
            self.give_up(events.len(), GiveUp::Failed);
        }
        self.back_off();
    }

    /// Keeps in-flight events at shutdown: in the store if there is one, else dropped.
    pub(crate) fn keep_at_shutdown(&mut self, events: &[&[u8]]) {
        if self.shared.store.is_some() {
            self.append_in_flight(events);
        } else {
            self.give_up(events.len(), GiveUp::Shutdown);
        }
    }

    /// Moves in-flight events into the store, if it takes them; false (nothing changed,
    /// the refusal noted) if it does not.
    pub(crate) fn try_store_in_flight(&mut self, events: &[&[u8]]) -> bool {
        if events.is_empty() {
            return true;
        }
        match self.shared.with_store(|s| s.append(events)) {
            Some(Ok(())) => {
                self.stored_in_flight(events.len());
                true
            }
            Some(Err(e)) => {
                self.note_error(format!(
                    "could not keep {} events in the backing store: {e}",
                    events.len()
                ));
                false
            }
            None => false,
        }
    }

    /// Moves in-flight events into the store (or gives them up if it refuses them).
    fn append_in_flight(&mut self, events: &[&[u8]]) {
        if events.is_empty() {
            return;
        }
        let result = self.shared.with_store(|s| s.append(events));
        let n = events.len();
        match result {
            Some(Ok(())) => self.stored_in_flight(n),
            Some(Err(e)) => {
                self.note_error(format!(
                    "could not keep {n} events in the backing store: {e}"
                ));
                self.give_up(n, Self::store_failure(&e));
            }
            None => self.give_up(n, GiveUp::Failed),
        }
    }

    /// Counts `n` in-flight events as moved into the store.
    fn stored_in_flight(&mut self, n: usize) {
        self.counts.in_flight -= n as u64;
        self.counts.stored_in += n as u64;
        self.publish();
        if let Some(n) = self.logs.stored.note(n as u64) {
            let events = if n == 1 { "event" } else { "events" };
            log::warn!(
                "{n} {events} kept in the backing store: the sink is not taking them now \
                 (they are sent, in order, once it does)"
            );
        }
    }

    /// During an outage, while the flush thread waits out a retry's back-off: keeps the queue
    /// from filling up and turning callers away while a backing store could hold their
    /// events. While events go through the store (it holds some, or `Spill`), the queue is
    /// moved in behind them. While a batch from memory is retried, that batch is older than
    /// the queue, so it must go first: once the queue is half full this says to stop
    /// retrying it (true), and the caller keeps it in the store, the queue following.
    /// Without this the queue filled during the batch's retry time (60 s by default) and
    /// refused callers under `DropNewest` while a store stood empty.
    pub(crate) fn relieve_queue(&mut self) -> bool {
        if self.shared.store.is_none() || self.closing() {
            return false;
        }
        match self.delivering {
            Some(Source::Memory) if self.ready() == 0 => false,
            Some(Source::Memory) => {
                let queue = &self.shared.queue;
                // Not while the store refuses events (a `Spill` store that did, or one that
                // just refused this batch): it would refuse these too.
                let full = queue.len() >= queue.capacity() / 2
                    && !self.shared.direct()
                    && !self.relief_refused;
                self.pressure |= full;
                full
            }
            _ if self.via_store() && self.relief_due.is_none_or(|at| Instant::now() >= at) => {
                // A store that refuses (full, unreachable) is asked again a second later,
                // not at every look: each refusal of a Postgres store out of reach is a
                // connection attempt, under the store's lock.
                let moved = if self.ready() > 0 {
                    self.move_queue_to_store()
                } else {
                    Moved::All
                };
                self.relief_due = (moved == Moved::Refused).then(|| Instant::now() + RELIEF_RETRY);
                if moved == Moved::All && self.close_by.is_none() {
                    // What was recorded before a waiting flush is in the store now: settled
                    // as far as the sink allows, as `send_queued` would answer. Left
                    // waiting, a flush sat out the stored batch's whole retry time.
                    self.flush_waiters.clear();
                }
                false
            }
            _ => false,
        }
    }

    /// What ended a pause in `deliver` early: the queue's pressure, or `close`.
    pub(crate) fn pause_ended(&mut self) -> Stop {
        if std::mem::take(&mut self.pressure) {
            Stop::Pressure
        } else {
            Stop::Shutdown
        }
    }

    /// Moves everything queued into the store, behind what it holds (see
    /// [`move_into_store`]). Under `Spill`, a store that refuses even one event while it
    /// holds none is not working: events are then sent straight from memory (and callers
    /// may not spill) until a later move succeeds.
    pub(crate) fn move_queue_to_store(&mut self) -> Moved {
        let shared = Arc::clone(&self.shared);
        let Some(mut store) = shared.lock_store() else {
            return Moved::All;
        };
        match move_into_store(&shared, &mut **store, self.limits.max_events) {
            Ok(moved) => {
                if moved > 0 && shared.direct() {
                    shared.set_direct(false);
                }
                Moved::All
            }
            Err(e) => {
                self.note_error(format!("the backing store refused the queue's events: {e}"));
                self.last_refusal_full = matches!(e, crate::Error::StoreFull { .. });
                if self.spill && store.size().events == 0 {
                    shared.set_direct(true);
                }
                Moved::Refused
            }
        }
    }

    /// One step of draining: moves the queue in behind the store, then sends the store's
    /// oldest batch and commits what the sink settled. False if it could not make
    /// progress (nothing to send, or the sink failed and the next try must wait).
    pub(crate) fn drain_step(&mut self) -> bool {
        if self.move_queue_to_store() == Moved::Refused && !self.store_pending() {
            // The store refuses while it holds nothing: nothing to drain; it is asked again
            // a second later (`probe_due`), and meanwhile `Spill` sends from memory. A
            // hold on sending instead (as until 2026-12-03) stopped the memory's batches
            // too, and with them the whole pipeline while the sink was healthy.
            self.probe_due = Some(Instant::now() + RELIEF_RETRY);
            return false;
        }
        let (max_events, max_bytes) = (self.limits.max_events, self.limits.max_bytes);
        let mut batch = std::mem::take(&mut self.stored);
        let read = self.shared.with_store(|s| {
            let read = s.read_oldest(max_events, max_bytes, &mut batch);
            (read, s.take_lost(), s.take_dead_lettered())
        });
        let Some((read, lost, dead)) = read else {
            self.stored = batch;
            return false;
        };
        self.count_store_losses(lost, dead);
        if let Err(e) = read {
            self.note_error(format!("could not read the backing store: {e}"));
            self.stored = batch;
            self.back_off();
            return false;
        }
        if batch.is_empty() {
            self.stored = batch;
            if self.store_pending() {
                // Events exist but none is ours to read now (another replica holds them).
                self.back_off();
            }
            return false;
        }
        let refs: Vec<&[u8]> = batch.iter().collect();
        self.redelivery.resends_left = self.redelivery.uncommitted.min(refs.len() as u64);
        let result = self.deliver(&refs, Source::Store);
        let settled = result.map_or_else(|(k, _)| k, |()| refs.len());
        drop(refs);
        self.stored = batch;
        self.redelivery.resends_left = 0;
        let committed = settled == 0 || self.commit_settled(settled as u64);
        match result {
            Ok(()) if committed => {
                self.recovered();
                true
            }
            Ok(()) => {
                // The store could not forget them (its removal failed): the next read
                // returns them again, so wait before sending them again, as after a failed
                // send, instead of resending them at once, hundreds of times a second.
                self.back_off();
                false
            }
            Err((_, Stop::Exhausted)) => {
                self.counts.batches_failed += 1;
                self.publish();
                self.back_off();
                false
            }
            // `close`'s deadline comes before the next try: wait as after a failed round.
            // Read again at once, the same events went to the sink in a loop until the
            // deadline (21 808 sends in a `close` of 5 s, on 2026-12-03).
            Err((_, Stop::Shutdown)) => {
                self.back_off();
                false
            }
            // Pressure stops only batches from memory.
            Err((_, Stop::Pressure)) => false,
        }
    }

    /// Removes the first `settled` events of the last read from the store. If that fails
    /// they stay, and will be sent again: at least once, counted as `redelivered`. False
    /// when it failed.
    fn commit_settled(&mut self, settled: u64) -> bool {
        let n = usize::try_from(settled).unwrap_or(usize::MAX);
        match self.shared.with_store(|s| s.commit(n)) {
            Some(Ok(())) => {
                let r = &mut self.redelivery;
                r.uncommitted = r.uncommitted.saturating_sub(settled);
                true
            }
            Some(Err(e)) => {
                self.redelivery.uncommitted = self.redelivery.uncommitted.max(settled);
                self.note_error(format!(
                    "could not commit {settled} sent events in the backing store (they will \
                     be sent again): {e}"
                ));
                false
            }
            None => true,
        }
    }

    /// Counts what the store lost to damage, or dead-lettered on its own, since last asked.
    pub(crate) fn count_store_losses(&mut self, lost: u64, dead: u64) {
        if dead > 0 {
            self.counts.stored_out += dead;
            self.counts.dead_lettered += dead;
            self.counts.dead_lettered_by_store += dead;
        }
        if lost > 0 {
            self.note_error(format!(
                "{lost} events in the backing store were unreadable (damaged)"
            ));
            self.counts.stored_out += lost;
            self.counts.dropped_damaged += lost;
        }
        if dead + lost > 0 {
            self.publish();
        }
    }

    /// At shutdown, after the deadline: everything still in memory goes to the store, or is
    /// dropped without one (or when it is full). Then the store is closed to callers; one
    /// that does not outlive the process counts what it holds as dropped.
    pub(crate) fn keep_leftovers(&mut self) {
        loop {
            let _ = self.move_queue_to_store();
            while self.take_batch(usize::MAX) > 0 {
                let n = self.batch.len();
                let batch = std::mem::take(&mut self.batch);
                let why = match (&self.shared.store, self.last_refusal_full) {
                    (None, _) => GiveUp::Shutdown,
                    (Some(_), true) => GiveUp::StoreFull,
                    (Some(_), false) => GiveUp::Failed,
                };
                self.give_up(n, why);
                self.recycle(batch);
            }
            if self.all_accepted_taken() {
                break;
            }
            std::thread::yield_now();
        }
        let shared = Arc::clone(&self.shared);
        let Some(mut store) = shared.lock_store() else {
            return;
        };
        // From now on spilling and wal callers are turned away (they check under the lock).
        store.close_to_callers();
        if let Err(e) = store.close() {
            self.note_error(format!("closing the backing store: {e}"));
        }
        if !store.is_durable() {
            // Events at its head that were delivered but whose commit failed are counted
            // delivered already: not lost with the store.
            let left = store
                .size()
                .events
                .saturating_sub(self.redelivery.uncommitted);
            self.counts.stored_out += left;
            self.counts.dropped_shutdown += left;
        }
        drop(store);
        self.publish();
    }
}
