//! Group commit, for durability mode `wal`: `record` returns once its event is appended to
//! the store and covered by an fsync. Callers share fsyncs (group commit): whoever finds no
//! append in progress becomes the leader, appends every event waiting at that moment and
//! syncs once — after releasing the store's lock, if the store allows it
//! ([`Appended::Pending`]) — and the others wait for the leader that took theirs.

use std::collections::VecDeque;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;

use parking_lot::{Condvar, Mutex};

use crate::error::panic_message;
use crate::shared::Shared;
use crate::slots::Slot;
use crate::{Appended, Error};

/// How one leader's round ended for its callers.
#[derive(Debug, Clone)]
enum Outcome {
    /// Nothing was appended.
    Refused(RoundError),
    /// Appended (and counted recorded), but the sync failed.
    NotDurable(String),
}

#[derive(Debug, Clone)]
enum RoundError {
    Full(&'static str, u64),
    Closed,
    Failed(String),
}

/// A failed round, kept until each of its callers has read it.
#[derive(Debug)]
struct Failed {
    tickets: Range<u64>,
    unread: u64,
    outcome: Outcome,
}

#[derive(Debug, Default)]
struct State {
    /// Events waiting for the next leader, in ticket order.
    waiting: Vec<Slot>,
    /// The ticket the next caller gets.
    next_ticket: u64,
    /// Every ticket below this one is settled (durable or failed).
    settled_below: u64,
    leading: bool,
    failures: VecDeque<Failed>,
}

/// The group commit of a `wal` pipeline.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    settled: Condvar,
}

impl GroupCommit {
    /// Appends `slot`'s event durably, sharing the fsync with whoever else is waiting.
    /// Returns once it is durable, or with the error that stopped it.
    pub(crate) fn commit(&self, slot: Slot, shared: &Shared) -> Result<(), Error> {
        let mut state = self.state.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.waiting.push(slot);
        loop {
            if ticket < state.settled_below {
                return Self::result_for(&mut state, ticket);
            }
            if state.leading {
                self.settled.wait(&mut state);
                continue;
            }
            state.leading = true;
            let group = std::mem::take(&mut state.waiting);
            let tickets = state.settled_below..state.next_ticket;
            drop(state);

            // A store that panics must not leave everyone waiting for a leader forever.
            let mut appended = false;
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                append_and_sync(&group, shared, &mut appended)
            }))
            .unwrap_or_else(|panic| {
                let message = format!("the store panicked: {}", panic_message(panic.as_ref()));
                // Once appended (and counted recorded) the events will be sent.
                Err(if appended {
                    Outcome::NotDurable(message)
                } else {
                    Outcome::Refused(RoundError::Failed(message))
                })
            });
            shared.pool.give_back_all(group.into_iter());

            state = self.state.lock();
            state.leading = false;
            state.settled_below = tickets.end;
            if let Err(outcome) = outcome {
                let unread = tickets.end - tickets.start;
                state.failures.push_back(Failed {
                    tickets,
                    unread,
                    outcome,
                });
            }
            self.settled.notify_all();
        }
    }

    /// The outcome for a settled `ticket`: Ok unless its round failed.
    fn result_for(state: &mut State, ticket: u64) -> Result<(), Error> {
        let Some(i) = state
            .failures
            .iter()
            .position(|f| f.tickets.contains(&ticket))
        else {
            return Ok(());
        };
        let failed = &mut state.failures[i];
        failed.unread -= 1;
        let result = match &failed.outcome {
            Outcome::Refused(RoundError::Full(limit, value)) => Err(Error::StoreFull {
                limit,
                value: *value,
            }),
            Outcome::Refused(RoundError::Closed) => Err(Error::Closed),
            Outcome::Refused(RoundError::Failed(message)) => {
                Err(Error::store("wal", message.clone()))
            }
            Outcome::NotDurable(message) => Err(Error::NotDurable(Box::new(crate::StoreError {
                store: "wal".to_owned(),
                message: message.clone(),
            }))),
        };
        if failed.unread == 0 {
            state.failures.remove(i);
        }
        result
    }
}

/// Appends a group and makes it durable. The append, and counting the events as recorded
/// and stored, happen with the store locked, so the flush thread cannot drain one before it
/// is counted; the sync, where the store allows it, happens after the lock is released, so
/// the flush thread reads and commits meanwhile (it may even send events whose sync is
/// still running: their callers are told only once it ends).
fn append_and_sync(group: &[Slot], shared: &Shared, appended: &mut bool) -> Result<(), Outcome> {
    let events: Vec<&[u8]> = group.iter().map(|s| s.as_slice()).collect();
    let n = events.len() as u64;
    let pending = {
        let Some(mut store) = shared.lock_store() else {
            return Err(Outcome::Refused(RoundError::Failed(
                "no backing store".to_owned(),
            )));
        };
        if store.is_closed() {
            return Err(Outcome::Refused(RoundError::Closed));
        }
        let pending = store.append_durably(&events).map_err(|e| {
            Outcome::Refused(match e {
                Error::StoreFull { limit, value } => RoundError::Full(limit, value),
                other => RoundError::Failed(other.to_string()),
            })
        })?;
        *appended = true;
        // Recorded before stored: a snapshot in between sees the events queued, which
        // balances.
        shared.counters.recorded.add(crate::lanes::this_thread(), n);
        let recorded = shared.counters.recorded.sum();
        shared.counters.caller_stored.fetch_add(n, Ordering::SeqCst);
        // The events wait in the store, not in slots: no queue fills meanwhile.
        shared.wake.if_due(recorded, || u64::MAX);
        pending
    };
    // The events are in the store and will be sent even if the sync fails; their callers
    // learn they may not survive a crash.
    let not_durable = |e: Error| Outcome::NotDurable(e.to_string());
    match pending {
        Appended::Durable => Ok(()),
        Appended::NotDurable(e) => Err(not_durable(e)),
        Appended::Pending(sync) => sync.run().map_err(not_durable),
    }
}
