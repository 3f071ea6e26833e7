//! Sending one batch until every event in it is settled: retries with backoff (never
//! before the receiver's `Retry-After`), halves on 413, bisection (or the receiver's blamed
//! index) on other content rejections — and telling a poison event from a receiver that
//! refuses everything.
//!
//! A receiver that answers 400 to every request (a misconfigured proxy or WAF, a server
//! refusing a field it does not know yet) looks, event by event, like a batch of poison
//! events. Dead-lettering them all would empty the backlog into the dead-letter area, so
//! an event refused alone is only a *suspect* until the receiver accepts something after
//! it. When every event of a batch of two or more is refused alone with the same answer,
//! or the last [`ENDPOINT_REFUSAL_RUN`] events refused alone all were (nothing accepted in
//! between), the endpoint is failing, not the events: they are kept and retried with
//! backoff like any other failure (then stored), counted in `endpoint_refusals`. Each
//! round after that walks twice as many single events before it gives up again (up to
//! [`MAX_REFUSAL_RUN`]), so that a longer run of poison events at the head is walked past
//! once an event after it is accepted.

use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use crate::Outcome;
use crate::error::panic_message;
use crate::retry::MAX_RETRY_AFTER;
use crate::throttle::Throttle;
use crate::worker::{Source, Stop, Worker, deadline_after};

/// Events refused alone in a row, with the same answer and nothing accepted in between,
/// that make it an endpoint failure rather than poison.
///
/// Five, because a short run of poison events with the same answer (one buggy code path)
/// is common and must still be dead-lettered, while a receiver refusing everything costs
/// only five single-event requests before it is recognised.
pub(crate) const ENDPOINT_REFUSAL_RUN: u32 = 5;

/// The longest run of single-event refusals a round walks while the endpoint refuses
/// everything (the run doubles from [`ENDPOINT_REFUSAL_RUN`] each round).
pub(crate) const MAX_REFUSAL_RUN: u32 = 4 * ENDPOINT_REFUSAL_RUN;

/// A batch that fails with a retryable error this many times in a row is sent in halves
/// from then on (a proxy resetting large bodies, a server closing before reading): the
/// cause is isolated instead of blocking everything behind it.
const SPLIT_AFTER_FAILURES: u32 = 3;

/// Single-event refusals without an acceptance since, across batches.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    /// How many in a row.
    run: u32,
    /// The answer they all got; while `probing`, the one the endpoint was found refusing
    /// everything with.
    answer: String,
    /// How many refusals in a row make an endpoint failure in this round (see
    /// [`declare`](Self::declare)).
    walk: u32,
    /// An endpoint failure was declared and nothing was accepted since: events are tried
    /// one at a time from the oldest, so a receiver refusing everything costs a few requests
    /// per back-off, and poison events at the head are walked past (an event accepted after
    /// them shows they are poison) instead of holding up the events behind them.
    probing: bool,
    log: Throttle,
}

impl Refusals {
    fn endpoint_failing(&self) -> bool {
        self.run >= self.walk.max(ENDPOINT_REFUSAL_RUN)
    }

    /// The endpoint is found refusing everything (again). Each time again before anything
    /// is accepted, the next round walks twice as many events (up to
    /// [`MAX_REFUSAL_RUN`]) before it gives up: a run of poison events at the head longer
    /// than one round's walk is then walked past, once an event after it is accepted,
    /// instead of holding everything behind it for good.
    fn declare(&mut self) {
        self.walk = if self.probing {
            (self.walk.max(ENDPOINT_REFUSAL_RUN) * 2).min(MAX_REFUSAL_RUN)
        } else {
            ENDPOINT_REFUSAL_RUN
        };
        self.run = 0;
        self.probing = true;
    }

    /// A refusal with another answer: the events differ, not the endpoint, which is no
    /// longer taken for refusing everything.
    fn different(&mut self) {
        self.run = 0;
        self.walk = ENDPOINT_REFUSAL_RUN;
        self.probing = false;
    }

    /// Something was accepted: refusals before it said nothing about the endpoint.
    fn accepted(&mut self) {
        self.run = 0;
        self.walk = ENDPOINT_REFUSAL_RUN;
        self.probing = false;
    }
}

/// Events refused alone in this delivery, not yet dead-lettered: `start..end`, right after
/// the settled prefix, with the reasons they were refused.
#[derive(Debug, Default)]
struct Suspects {
    range: Option<Range<usize>>,
    reasons: Vec<String>,
}

impl Worker {
    /// Sends `events`. Settled events always form a prefix; on `Err` the events from the
    /// returned index on are unsettled and the caller decides their fate.
    pub(crate) fn deliver(
        &mut self,
        events: &[&[u8]],
        source: Source,
    ) -> Result<(), (usize, Stop)> {
        let outer = self.delivering.replace(source);
        self.pressure = false;
        let result = self.deliver_all(events, source);
        self.delivering = outer;
        result
    }

    fn deliver_all(&mut self, events: &[&[u8]], source: Source) -> Result<(), (usize, Stop)> {
        let started = Instant::now();
        let mut failures = 0u32;
        let mut same_range_failures = 0u32;
        let mut split_for_retry = false;
        let mut suspects = Suspects::default();
        // Ranges still to send, the next on top; together always a suffix of `events`.
        let mut pending: Vec<Range<usize>> = Vec::with_capacity(16);
        pending.push(0..events.len());
        while let Some(mut range) = match pending.pop() {
            Some(range) => Some(range),
            None => self.held_again(&mut suspects, &mut failures, started)?,
        } {
            if range.is_empty() {
                continue;
            }
            let mut first_unsettled = suspects.range.as_ref().map_or(range.start, |s| s.start);
            if let Some(until) = self.backing_off()
                && !self.pause_until(until)
            {
                return Err((first_unsettled, self.pause_ended()));
            }
            if self.past_close_deadline() {
                return Err((first_unsettled, Stop::Shutdown));
            }
            // While the receiver seems to refuse everything, or several events in a row were
            // refused alone, try one event at a time: a receiver that refuses everything
            // costs a round's walk of requests per back-off (5, 10, then 20 single
            // events), and a run of poison events is walked, not bisected again and again.
            let walking =
                suspects.range.as_ref().is_some_and(|s| s.len() >= 2) || self.refusals.probing;
            if range.len() > 1 && walking {
                pending.push(range.start + 1..range.end);
                range = range.start..range.start + 1;
            }
            let part = &events[range.clone()];
            let mut outcome = self.send(part);
            if let Outcome::Partial { delivered, reason } = outcome {
                // A prefix is taken: settle it as delivered, then the rest is a retry.
                let delivered = delivered.min(part.len());
                if delivered > 0 {
                    self.confirm_suspects(&mut suspects, events, source);
                    self.refusals.accepted();
                    self.settle(delivered, Settle::Delivered, source);
                    range.start += delivered;
                    first_unsettled = range.start;
                    // Progress: the run of failures starts again.
                    failures = 0;
                    same_range_failures = 0;
                }
                outcome = if range.is_empty() {
                    Outcome::Delivered
                } else {
                    Outcome::Retry {
                        after: None,
                        reason,
                    }
                };
            }
            let part = &events[range.clone()];
            match outcome {
                Outcome::Delivered => {
                    self.confirm_suspects(&mut suspects, events, source);
                    self.refusals.accepted();
                    if !part.is_empty() {
                        self.settle(part.len(), Settle::Delivered, source);
                    }
                    failures = 0;
                    same_range_failures = 0;
                    if split_for_retry {
                        // The halves were a guess about a transport failure; send the rest
                        // whole again now that requests go through.
                        split_for_retry = false;
                        if let (Some(first), Some(last)) = (pending.first(), pending.last()) {
                            let rest = last.start..first.end;
                            pending.clear();
                            pending.push(rest);
                        }
                    }
                }
                Outcome::Rejected { reason, .. }
                    if part.len() == 1 && self.sink.rejections_are_final() =>
                {
                    // The sink's own judgement of this event (a C, Go or Python callback):
                    // no answer to compare, nothing to suspect.
                    self.keep_dead_letter(part[0], &reason);
                    self.note_error(reason);
                    self.settle(1, Settle::DeadLettered, source);
                }
                Outcome::Rejected { reason, .. } if part.len() == 1 => {
                    self.note_error(reason.clone());
                    // While probing, the answer is the one the endpoint was found
                    // refusing everything with.
                    let first = self.refusals.run == 0 && !self.refusals.probing;
                    let same = first || self.refusals.answer == reason;
                    if !same {
                        // Different answers point at the events, not the endpoint.
                        self.confirm_suspects(&mut suspects, events, source);
                        self.refusals.different();
                    }
                    if self.refusals.run == 0 && !self.refusals.probing {
                        self.refusals.answer.clone_from(&reason);
                    }
                    self.refusals.run += 1;
                    let suspected = match suspects.range.take() {
                        Some(s) => s.start..range.end,
                        None => range.clone(),
                    };
                    suspects.reasons.push(reason);
                    let whole_batch = suspected.start == 0 && suspected.end == events.len();
                    if self.refusals.endpoint_failing() || (whole_batch && events.len() >= 2) {
                        // Not poison: the endpoint refuses everything. Send them all again
                        // after a back-off, like any failure, one at a time, needing a
                        // fresh run of refusals (re-sends of the same events do not add
                        // up to one) to give up again.
                        suspects.reasons.clear();
                        self.refusals.declare();
                        pending.push(suspected.start..range.end);
                        self.endpoint_refused();
                        failures += 1;
                        let delay = self.retry.delay(failures, None, &mut self.rng);
                        if let Some(stop) = self.giving_up(started, failures, delay) {
                            return Err((suspected.start, stop));
                        }
                        if !self.pause(delay) {
                            return Err((suspected.start, self.pause_ended()));
                        }
                    } else {
                        suspects.range = Some(suspected);
                    }
                }
                Outcome::TooLarge { reason } if part.len() == 1 => {
                    // Too large is about this event whatever the endpoint does with others.
                    self.confirm_suspects(&mut suspects, events, source);
                    self.keep_dead_letter(part[0], &reason);
                    self.note_error(reason);
                    // Before `settle`, which publishes the counts: published after, it
                    // waited for the next publish (in an idle pipeline, for ever), and the
                    // metrics counted it as `rejected` meanwhile.
                    self.counts.dead_lettered_too_large += 1;
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
                retry @ (Outcome::Retry { .. } | Outcome::Partial { .. }) => {
                    // A partial outcome had its prefix settled above: the rest is a retry.
                    let (after, reason) = match retry {
                        Outcome::Retry { after, reason } => (after, reason),
                        Outcome::Partial { reason, .. } => (None, reason),
                        other => (None, format!("{other:?}")),
                    };
                    // Any sink's `after`, not only HTTP's: over a day is nonsense, ignored.
                    let after = after.filter(|a| *a <= MAX_RETRY_AFTER);
                    failures += 1;
                    same_range_failures += 1;
                    if let Some(n) = self.logs.retries.note(1) {
                        log::warn!("{n} sends failed and are being retried; the last: {reason}");
                    }
                    self.note_error(reason);
                    if let Some(after) = after {
                        // The receiver's word holds for every path, not just this batch.
                        self.hold_until(deadline_after(after));
                    }
                    let delay = self.retry.delay(failures, after, &mut self.rng);
                    if let Some(stop) = self.giving_up(started, failures, delay) {
                        return Err((first_unsettled, stop));
                    }
                    if same_range_failures >= SPLIT_AFTER_FAILURES
                        && range.len() > 1
                        && after.is_none()
                    {
                        let mid = range.start + range.len() / 2;
                        pending.push(mid..range.end);
                        pending.push(range.start..mid);
                        split_for_retry = true;
                        same_range_failures = 0;
                    } else {
                        pending.push(range);
                    }
                    if !self.pause(delay) {
                        return Err((first_unsettled, self.pause_ended()));
                    }
                }
            }
        }
        // The receiver did accept others of this batch, or the run is too short to blame
        // the endpoint: they are poison.
        self.confirm_suspects(&mut suspects, events, source);
        Ok(())
    }

    /// Suspects left at the end of a delivery, refused while the endpoint was found
    /// refusing everything (with the same answer) and has accepted nothing since: that
    /// refusal again (a quiet service sends batches of one event, and each would otherwise
    /// end its own run), kept and retried like it after a back-off: their range, to send
    /// again. `None` when there are none, or the endpoint is not taken for refusing
    /// everything.
    fn held_again(
        &mut self,
        suspects: &mut Suspects,
        failures: &mut u32,
        started: Instant,
    ) -> Result<Option<Range<usize>>, (usize, Stop)> {
        if !self.refusals.probing {
            return Ok(None);
        }
        let Some(suspected) = suspects.range.take() else {
            return Ok(None);
        };
        suspects.reasons.clear();
        self.refusals.declare();
        self.endpoint_refused();
        *failures += 1;
        let delay = self.retry.delay(*failures, None, &mut self.rng);
        if let Some(stop) = self.giving_up(started, *failures, delay) {
            return Err((suspected.start, stop));
        }
        if !self.pause(delay) {
            return Err((suspected.start, self.pause_ended()));
        }
        Ok(Some(suspected))
    }

    /// Why to stop retrying now, if so: `close` ended while the sink held the batch (or
    /// before it was sent again) — the rest is the shutdown's, whatever the budget says —
    /// or the retry budget ran out.
    fn giving_up(&mut self, started: Instant, failures: u32, delay: Duration) -> Option<Stop> {
        if self.past_close_deadline() {
            Some(Stop::Shutdown)
        } else if self.out_of_budget(started, failures, delay) {
            Some(Stop::Exhausted)
        } else {
            None
        }
    }

    /// Whether a retry after `delay` would exceed the policy's attempts or time.
    fn out_of_budget(&self, started: Instant, failures: u32, delay: Duration) -> bool {
        failures >= self.retry.max_attempts
            || started.elapsed().saturating_add(delay) > self.retry.max_elapsed
    }

    fn send(&mut self, part: &[&[u8]]) -> Outcome {
        let Worker { shared, sink, .. } = self;
        let started = Instant::now();
        let outcome = shared.send_unless_stopped(|| {
            catch_unwind(AssertUnwindSafe(|| sink.send(part))).unwrap_or_else(|panic| {
                Outcome::retry(format!(
                    "the sink panicked: {}",
                    panic_message(panic.as_ref())
                ))
            })
        });
        let Some(outcome) = outcome else {
            // `close` returned meanwhile; nothing may reach the sink any more.
            return Outcome::retry("the pipeline was closed");
        };
        self.shared.write_durations.observe(started.elapsed());
        self.counts.sends += 1;
        if matches!(outcome, Outcome::Retry { .. } | Outcome::Partial { .. }) {
            self.counts.retries += 1;
        }
        self.publish();
        outcome
    }

    /// The suspects of this delivery are poison after all: dead-letter them, in order.
    fn confirm_suspects(&mut self, suspects: &mut Suspects, events: &[&[u8]], source: Source) {
        let Some(range) = suspects.range.take() else {
            return;
        };
        let reasons = std::mem::take(&mut suspects.reasons);
        for (event, reason) in events[range.clone()].iter().zip(&reasons) {
            self.keep_dead_letter(event, reason);
        }
        self.settle(range.len(), Settle::DeadLettered, source);
    }

    fn endpoint_refused(&mut self) {
        self.counts.endpoint_refusals += 1;
        self.publish();
        if let Some(n) = self.refusals.log.note(1) {
            log::warn!(
                "the receiver refuses every event with the same answer ({n} times since the last \
                 report): treating it as an endpoint failure, keeping the events: {}",
                self.refusals.answer
            );
        }
    }

    fn keep_dead_letter(&mut self, event: &[u8], reason: &str) {
        if let Some(n) = self.logs.dead_letters.note(1) {
            log::warn!("{n} events refused for good by the receiver; the last: {reason}");
        }
        self.shared.dead_letters.push(event, reason);
        if let Some(Err(e)) = self.shared.with_store(|s| s.dead_letter(event, reason)) {
            self.note_error(format!("could not keep a dead letter in the store: {e}"));
        }
    }

    fn settle(&mut self, n: usize, how: Settle, source: Source) {
        let mut n = n as u64;
        if source == Source::Store {
            // Re-sends after a failed commit were counted the first time.
            let again = n.min(self.redelivery.resends_left);
            self.redelivery.resends_left -= again;
            if matches!(how, Settle::Delivered) {
                self.counts.redelivered += again;
            }
            n -= again;
            self.counts.stored_out += n;
        } else {
            self.counts.in_flight -= n;
        }
        match how {
            Settle::Delivered => self.counts.delivered += n,
            Settle::DeadLettered => self.counts.dead_lettered += n,
        }
        self.publish();
    }
}

/// Where a settled event went.
#[derive(Debug, Clone, Copy)]
enum Settle {
    Delivered,
    DeadLettered,
}
