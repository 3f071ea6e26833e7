//! The flush thread's work with the backing store: keeping what could not be sent, moving
//! the queue in behind it so order holds, and draining the store oldest first.
//!
//! Order: while the store holds events nothing is sent from the queue; the queue is moved
//! in behind them (events are taken off the queue only with the store locked, so nothing
//! newer can get in between). Without `Spill` only this thread writes to the store, so a
//! batch whose retries ran out is appended to an empty store and everything after it
//! follows. Under `Spill`, callers append too, so every event goes through the store: the
//! store's order is the only order.

use std::sync::Arc;
use std::time::Instant;

use crate::deliver::{GiveUp, Source, Stop};
use crate::flush::{Worker, deadline_after};

/// What became of a move of the queue into the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moved {
    /// Everything waiting is in the store now.
    All,
    /// The store refused some; they wait ahead of the queue.
    Refused,
}

impl Worker {
    /// Events wait in the store: they go before the queue.
    pub(crate) fn store_pending(&self) -> bool {
        self.shared.store_events() > 0
    }

    /// Whether draining failed recently and must wait before the next try.
    pub(crate) fn backing_off(&self) -> Option<Instant> {
        self.drain_retry_at.filter(|at| Instant::now() < *at)
    }

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

    /// Moves in-flight events into the store (or gives them up if it refuses them).
    fn append_in_flight(&mut self, events: &[&[u8]]) {
        if events.is_empty() {
            return;
        }
        let result = self.shared.with_store(|s| s.append(events));
        let n = events.len();
        match result {
            Some(Ok(())) => {
                self.counts.in_flight -= n as u64;
                self.counts.stored_in += n as u64;
                self.shared.counters.publish(&self.counts);
            }
            Some(Err(e)) => {
                self.shared.note_error(format!(
                    "could not keep {n} events in the backing store: {e}"
                ));
                let why = self.store_failure(&e);
                self.give_up(n, why);
            }
            None => self.give_up(n, GiveUp::Failed),
        }
    }

    /// Moves everything queued into the store, behind what it holds, in pieces the store
    /// takes (a batch, else halves down to one event). What it refuses is put back ahead
    /// of the queue, in order. Events are taken off the queue with the store locked, so a
    /// spilling caller cannot put newer ones in first.
    ///
    /// Under `Spill`, a store that refuses even one event while it holds none is not
    /// working: events are then sent straight from memory (and callers may not spill) until
    /// a later move succeeds.
    pub(crate) fn move_queue_to_store(&mut self) -> Moved {
        let shared = Arc::clone(&self.shared);
        let Some(mut store) = shared.lock_store() else {
            return Moved::All;
        };
        let mut moved_any = false;
        while self.take_for_store(self.limits.max_events.max(1)) > 0 {
            let mut batch = std::mem::take(&mut self.batch);
            let (mut done, mut piece) = (0, batch.len());
            let mut refusal = None;
            while done < batch.len() {
                let end = (done + piece).min(batch.len());
                let refs: Vec<&[u8]> = batch[done..end].iter().map(Vec::as_slice).collect();
                match store.append(&refs) {
                    Ok(()) => {
                        let n = (end - done) as u64;
                        self.counts.in_flight -= n;
                        self.counts.stored_in += n;
                        done = end;
                        moved_any = true;
                    }
                    Err(_) if end - done > 1 => piece = (end - done) / 2,
                    Err(e) => {
                        refusal = Some(e);
                        break;
                    }
                }
            }
            self.shared.counters.publish(&self.counts);
            let Some(e) = refusal else {
                self.recycle(batch);
                continue;
            };
            self.shared
                .note_error(format!("the backing store refused the queue's events: {e}"));
            self.last_refusal_full = matches!(e, crate::Error::StoreFull { .. });
            let rest = batch.split_off(done);
            self.recycle(batch);
            self.put_back(rest);
            if self.spill && store.size().events == 0 {
                shared.set_direct(true);
            }
            return Moved::Refused;
        }
        if moved_any && shared.direct() {
            shared.set_direct(false);
        }
        Moved::All
    }

    /// One step of draining: moves the queue in behind the store, then sends the store's
    /// oldest batch and commits what the sink settled. False if it could not make
    /// progress (nothing to send, or the sink failed and the next try must wait).
    pub(crate) fn drain_step(&mut self) -> bool {
        if self.move_queue_to_store() == Moved::Refused && !self.store_pending() {
            // The store refuses while it holds nothing: nothing to drain; wait before
            // trying it again (meanwhile `Spill` sends from memory).
            self.back_off();
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
        if dead > 0 {
            self.counts.stored_out += dead;
            self.counts.dead_lettered += dead;
            self.shared.counters.publish(&self.counts);
        }
        if lost > 0 {
            self.shared.note_error(format!(
                "{lost} events in the backing store were unreadable (damaged)"
            ));
            self.counts.stored_out += lost;
            self.counts.dropped_damaged += lost;
            self.shared.counters.publish(&self.counts);
        }
        if let Err(e) = read {
            self.shared
                .note_error(format!("could not read the backing store: {e}"));
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
        let result = self.deliver(&refs, Source::Store);
        let settled = result.map_or_else(|(k, _)| k, |()| refs.len());
        drop(refs);
        self.stored = batch;
        if settled > 0
            && let Some(Err(e)) = self.shared.with_store(|s| s.commit(settled))
        {
            // The events stay in the store and will be sent again: at least once.
            self.shared.note_error(format!(
                "could not commit {settled} sent events in the backing store: {e}"
            ));
        }
        match result {
            Ok(()) => {
                self.drain_failures = 0;
                self.drain_retry_at = None;
                true
            }
            Err((_, Stop::Exhausted)) => {
                self.back_off();
                false
            }
            Err((_, Stop::Shutdown)) => false,
        }
    }

    /// After a failed round: wait before draining again, longer each time, up to the cap.
    pub(crate) fn back_off(&mut self) {
        self.drain_failures = self.drain_failures.saturating_add(1);
        let delay = self.retry.delay(self.drain_failures, None, &mut self.rng);
        self.drain_retry_at = Some(deadline_after(delay.max(self.retry.backoff_base)));
    }

    /// At shutdown, after the deadline: everything still in memory goes to the store, or is
    /// dropped without one (or when it is full). Then the store is closed to callers; one
    /// that does not outlive the process counts what it holds as dropped.
    pub(crate) fn keep_leftovers(&mut self) {
        loop {
            let _ = self.move_queue_to_store();
            while self.take_for_store(usize::MAX) > 0 {
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
            self.shared
                .note_error(format!("closing the backing store: {e}"));
        }
        if !store.is_durable() {
            let left = store.size().events;
            self.counts.stored_out += left;
            self.counts.dropped_shutdown += left;
        }
        drop(store);
        self.shared.counters.publish(&self.counts);
    }
}
