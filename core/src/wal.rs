//! Durability mode `wal`: `record` returns once its event is appended to the store and
//! covered by an fsync. Callers share fsyncs (group commit): whoever finds no append in
//! progress becomes the leader, appends every event waiting at that moment and syncs once;
//! the others wait for the leader that took theirs.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use parking_lot::{Condvar, Mutex};

use crate::Error;
use crate::pipeline::Shared;
use crate::slots::Slot;

/// The outcome of one leader's round, kept only when it failed.
#[derive(Debug, Clone)]
struct Failed {
    tickets: std::ops::Range<u64>,
    full: Option<(&'static str, u64)>,
    message: String,
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
    /// Recent failed rounds, for the callers waiting on them.
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
                return match state.failures.iter().find(|f| f.tickets.contains(&ticket)) {
                    None => Ok(()),
                    Some(Failed {
                        full: Some((limit, value)),
                        ..
                    }) => Err(Error::StoreFull {
                        limit,
                        value: *value,
                    }),
                    Some(Failed { message, .. }) => Err(Error::store("wal", message.clone())),
                };
            }
            if state.leading {
                self.settled.wait(&mut state);
                continue;
            }
            state.leading = true;
            let group = std::mem::take(&mut state.waiting);
            let tickets = state.settled_below..state.next_ticket;
            drop(state);

            let result = append_and_sync(&group, shared);
            for slot in group {
                shared.pool.give_back(slot);
            }

            state = self.state.lock();
            state.leading = false;
            state.settled_below = tickets.end;
            if let Err(e) = result {
                let full = match e {
                    Error::StoreFull { limit, value } => Some((limit, value)),
                    _ => None,
                };
                state.failures.push_back(Failed {
                    tickets,
                    full,
                    message: e.to_string(),
                });
                // Waiters read their outcome right after this round; a long memory is not needed.
                while state.failures.len() > 1024 {
                    state.failures.pop_front();
                }
            }
            self.settled.notify_all();
        }
    }
}

/// Appends a group and syncs it, counting the events as recorded and stored while the store
/// is locked, so the flush thread cannot drain one before it is counted.
fn append_and_sync(group: &[Slot], shared: &Shared) -> Result<(), Error> {
    let events: Vec<&[u8]> = group.iter().map(Vec::as_slice).collect();
    let n = events.len() as u64;
    let result = shared.with_store(|store| {
        store.append(&events)?;
        shared.counters.caller_stored.fetch_add(n, Ordering::SeqCst);
        let recorded = shared.counters.recorded.fetch_add(n, Ordering::SeqCst) + n;
        shared.wake_if_due(recorded);
        // Appended and counted even if the sync fails: the event is in the store and will be
        // sent; the caller learns it may not survive a crash.
        store.sync()
    });
    result.unwrap_or_else(|| Err(Error::store("wal", "no backing store")))
}
