//! The flush thread's work with the backing store: keeping what could not be sent, moving
//! the queue in behind it so order holds, and draining the store oldest first.
//!
//! Order: a batch whose retries ran out goes to the store if the store is empty, and the
//! queue follows it there; while the store holds events nothing is sent from the queue. If
//! callers spilled newer events into the store while that batch was being retried, the
//! batch is held in memory instead and sent before the store.

use std::sync::Arc;
use std::time::Instant;

use crate::deliver::{GiveUp, Source, Stop};
use crate::flush::{Worker, deadline_after};

impl Worker {
    /// Events wait in the store or in the held batch: they go before the queue.
    pub(crate) fn backlogged(&self) -> bool {
        self.held.is_some() || self.shared.store_events() > 0
    }

    /// Whether draining failed recently and must wait before the next try.
    pub(crate) fn backing_off(&self) -> Option<Instant> {
        self.drain_retry_at.filter(|at| Instant::now() < *at)
    }

    /// Keeps events of a queue batch whose retries ran out: see the module docs.
    pub(crate) fn keep_unsent(&mut self, events: &[&[u8]]) {
        let shared = Arc::clone(&self.shared);
        match shared.lock_store() {
            None => self.give_up(events.len(), GiveUp::Failed),
            // Decided and done under one lock: a spilling caller cannot slip in between.
            Some(mut store) if self.held.is_none() && store.size().events == 0 => {
                let result = store.append(events);
                drop(store);
                self.appended_in_flight(events.len(), result);
            }
            Some(_) => self.held = Some(events.iter().map(|e| e.to_vec()).collect()),
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
        match self.shared.with_store(|s| s.append(events)) {
            Some(result) => self.appended_in_flight(events.len(), result),
            None => self.give_up(events.len(), GiveUp::Failed),
        }
    }

    /// Counts `n` in-flight events as stored, or as given up if the append failed.
    fn appended_in_flight(&mut self, n: usize, result: Result<(), crate::Error>) {
        match result {
            Ok(()) => {
                self.counts.in_flight -= n as u64;
                self.counts.stored_in += n as u64;
                self.shared.counters.publish(&self.counts);
            }
            Err(e) => {
                self.shared.note_error(format!(
                    "could not keep {n} events in the backing store: {e}"
                ));
                let why = self.store_failure(&e);
                self.give_up(n, why);
            }
        }
    }

    /// Moves everything queued into the store, behind what it holds. What the store refuses
    /// (full) stays in memory, in order, until it has room. Events are taken off the queue
    /// with the store locked, so a spilling caller cannot put newer ones in first.
    pub(crate) fn move_queue_to_store(&mut self) {
        let shared = Arc::clone(&self.shared);
        let Some(mut store) = shared.lock_store() else {
            return;
        };
        while self.take_batch(usize::MAX) > 0 {
            let batch = std::mem::take(&mut self.batch);
            let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            let result = store.append(&refs);
            drop(refs);
            match result {
                Ok(()) => {
                    let n = batch.len() as u64;
                    self.counts.in_flight -= n;
                    self.counts.stored_in += n;
                    self.shared.counters.publish(&self.counts);
                    self.recycle(batch);
                }
                Err(e) => {
                    self.shared
                        .note_error(format!("the backing store refused the queue's events: {e}"));
                    for slot in batch.into_iter().rev() {
                        self.front.push_front(slot);
                    }
                    return;
                }
            }
        }
    }

    /// One step of draining: the held batch, else the store's oldest batch (after moving the
    /// queue in behind it). False if it could not make progress.
    pub(crate) fn drain_step(&mut self) -> bool {
        if let Some(held) = self.held.take() {
            let refs: Vec<&[u8]> = held.iter().map(Vec::as_slice).collect();
            let result = self.deliver(&refs, Source::Memory);
            drop(refs);
            return match result {
                Ok(()) => {
                    self.drain_failures = 0;
                    true
                }
                Err((settled, stop)) => {
                    self.held = Some(held[settled..].to_vec());
                    if stop == Stop::Exhausted {
                        self.back_off();
                    }
                    false
                }
            };
        }
        self.move_queue_to_store();
        let (max_events, max_bytes) = (self.limits.max_events, self.limits.max_bytes);
        let mut batch = std::mem::take(&mut self.stored);
        if let Some(Err(e)) = self
            .shared
            .with_store(|s| s.read_oldest(max_events, max_bytes, &mut batch))
        {
            self.shared
                .note_error(format!("could not read the backing store: {e}"));
            self.stored = batch;
            self.back_off();
            return false;
        }
        if batch.is_empty() {
            self.stored = batch;
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
    /// dropped without one. A store that does not outlive the process counts what it holds
    /// as dropped.
    pub(crate) fn keep_leftovers(&mut self) {
        loop {
            if let Some(held) = self.held.take() {
                let refs: Vec<&[u8]> = held.iter().map(Vec::as_slice).collect();
                self.keep_at_shutdown(&refs);
            }
            if self.shared.store.is_some() {
                self.move_queue_to_store();
            }
            // Without a store, or what a full one refused.
            while self.take_batch(usize::MAX) > 0 {
                let n = self.batch.len();
                let batch = std::mem::take(&mut self.batch);
                let why = if self.shared.store.is_some() {
                    GiveUp::StoreFull
                } else {
                    GiveUp::Shutdown
                };
                self.give_up(n, why);
                self.recycle(batch);
            }
            if self.all_accepted_taken() {
                break;
            }
            std::thread::yield_now();
        }
        let Some(store) = &self.shared.store else {
            return;
        };
        let mut store = store.lock();
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
