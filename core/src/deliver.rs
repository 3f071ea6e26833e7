//! Sending one batch until every event in it is settled: retries with backoff, halves on
//! 413, bisection (or the receiver's blamed index) on other content rejections.

use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use crate::flush::{Worker, panic_message};
use crate::{Error, Outcome};

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
    /// `close`'s deadline passed.
    Shutdown,
}

/// Where a settled event went.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Settle {
    Delivered,
    DeadLettered,
}

impl Worker {
    /// Sends `events`. Settled events always form a prefix; on `Err` the events from the
    /// returned index on are unsettled and the caller decides their fate.
    pub(crate) fn deliver(
        &mut self,
        events: &[&[u8]],
        source: Source,
    ) -> Result<(), (usize, Stop)> {
        let started = Instant::now();
        let mut failures = 0u32;
        // Ranges still to send, the next on top; together always a suffix of `events`.
        let mut pending: Vec<Range<usize>> = Vec::with_capacity(16);
        pending.push(0..events.len());
        while let Some(range) = pending.pop() {
            if range.is_empty() {
                continue;
            }
            if self.past_close_deadline() {
                return Err((range.start, Stop::Shutdown));
            }
            let part = &events[range.clone()];
            match self.send(part) {
                Outcome::Delivered => self.settle(part.len(), Settle::Delivered, source),
                Outcome::TooLarge { reason } | Outcome::Rejected { reason, .. }
                    if part.len() == 1 =>
                {
                    self.keep_dead_letter(part[0], &reason);
                    self.shared.note_error(reason);
                    self.settle(1, Settle::DeadLettered, source);
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
                    if failures >= self.retry.max_attempts
                        || started.elapsed().saturating_add(delay) > self.retry.max_elapsed
                    {
                        return Err((range.start, Stop::Exhausted));
                    }
                    if !self.pause(delay) {
                        return Err((range.start, Stop::Shutdown));
                    }
                    pending.push(range);
                }
            }
        }
        Ok(())
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

    fn keep_dead_letter(&mut self, event: &[u8], reason: &str) {
        self.shared.dead_letters.push(event, reason);
        if let Some(store) = &self.shared.store
            && let Err(e) = store.lock().dead_letter(event, reason)
        {
            self.shared
                .note_error(format!("could not keep a dead letter in the store: {e}"));
        }
    }

    fn settle(&mut self, n: usize, how: Settle, source: Source) {
        let n = n as u64;
        match source {
            Source::Memory => self.counts.in_flight -= n,
            Source::Store => self.counts.stored_out += n,
        }
        match how {
            Settle::Delivered => self.counts.delivered += n,
            Settle::DeadLettered => self.counts.dead_lettered += n,
        }
        self.shared.counters.publish(&self.counts);
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
        self.shared.counters.publish(&self.counts);
    }

    /// The reason to give up on events whose store append failed with `e`.
    pub(crate) fn store_failure(&self, e: &Error) -> GiveUp {
        match e {
            Error::StoreFull { .. } => GiveUp::StoreFull,
            _ => GiveUp::Failed,
        }
    }
}

/// Why in-flight events were given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GiveUp {
    Failed,
    Shutdown,
    StoreFull,
}
