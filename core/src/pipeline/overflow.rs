//! What `record` does when it finds no slot (the queue is full), by
//! [`Overflow`](crate::Overflow) policy: `Block` waits for a slot, `DropOldest` evicts the
//! oldest queued event, `Spill` appends to the backing store on the caller's thread,
//! `DropNewest` returns [`Error::Full`](crate::Error::Full). Each checks the event before
//! it refuses, waits or evicts. All of it is off the hot path (`#[cold]`).

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Pipeline;
use crate::Error;
use crate::backlog::move_into_store;
use crate::config::Overflow;
use crate::encode::capture::{finish, ready_scratch};
use crate::park::Park;
use crate::slots::Slot;
use crate::worker::deadline_after;

thread_local! {
    /// Where an event is checked while no slot is free (see [`Pipeline::without_slot`]);
    /// allocated on a thread's first full queue and kept, at most `retained_slot_bytes` of
    /// it. Not `capture.rs`'s scratch: that one renders with a fixed room and never grows;
    /// this one holds a captured event of any size.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

impl Pipeline {
    /// `record` found every slot taken. The event is encoded first, into a buffer of this
    /// thread's, so bad input gets its own error whatever the queue's state — not `Full`,
    /// not a `Block` wait that may end in `Timeout` — and evicts nothing; then the overflow
    /// policy finds it a slot or refuses it. (`Spill` encodes into the bytes it stores.)
    #[cold]
    #[inline(never)]
    pub(super) fn without_slot<P: Park>(
        &self,
        park: &mut P,
        lane: usize,
        encode: impl FnOnce(&mut Vec<u8>, usize) -> Result<(), Error>,
    ) -> Result<(), Error> {
        if matches!(self.overflow, Overflow::Spill) && self.group.is_none() {
            return self.spill(park, encode);
        }
        // Taken out of the thread-local for the call, so that nothing stays borrowed while
        // it waits: a `record` made meanwhile on this thread (a sink, a Python signal
        // handler), or from a thread-local's destructor after this one's, gets a new buffer.
        let mut event = SCRATCH.try_with(Cell::take).unwrap_or_default();
        event.clear();
        let result = self.check_then_place(park, lane, encode, &mut event);
        // An event larger than a slot may keep leaves no larger buffer behind.
        let retained = self.shared.pool.retained_bytes();
        if event.capacity() > retained {
            event.clear();
            event.shrink_to(retained);
        }
        let _ = SCRATCH.try_with(|scratch| scratch.set(event));
        result
    }

    /// [`without_slot`](Self::without_slot) with the thread's buffer in hand: the event is
    /// encoded into `event`, then copied into the slot the policy finds, if any.
    fn check_then_place<P: Park>(
        &self,
        park: &mut P,
        lane: usize,
        encode: impl FnOnce(&mut Vec<u8>, usize) -> Result<(), Error>,
        event: &mut Vec<u8>,
    ) -> Result<(), Error> {
        encode(event, self.max_event_bytes)?;
        // A slot that came free meanwhile spares a wait or an eviction; a refusal does
        // not look again (it would cost every refused call another miss).
        let mut slot = match self.overflow {
            Overflow::Block { timeout } => match self.shared.pool.try_take(lane) {
                Some(slot) => slot,
                // A sink recording into its own pipeline would wait for itself to make room.
                None if self.on_own_flush_thread() => return Err(Error::Full),
                None => self.wait_for_slot(park, lane, timeout)?,
            },
            Overflow::DropOldest if self.group.is_none() => self
                .shared
                .pool
                .try_take(lane)
                .or_else(|| self.evict_oldest())
                .ok_or(Error::Full)?,
            Overflow::DropNewest if self.group.is_none() => {
                self.shared.wake.turned_away(|| park.cede());
                return Err(Error::Full);
            }
            // Under `wal` the slots are held by callers waiting for an fsync, not by the
            // flush thread: yielding to it would not make room.
            _ => return Err(Error::Full),
        };
        slot.extend_from_slice(event);
        self.enqueue(park, lane, slot)
    }

    /// Takes the oldest queued event's slot for a new one: the oldest of this thread's
    /// lane, or of another lane if this one has none. `None` if the queue is empty after
    /// all (every slot is being encoded into or sent, or free in another lane's bundle).
    #[cold]
    fn evict_oldest(&self) -> Option<Slot> {
        let mut slot = self.shared.queue.pop_oldest()?;
        // Counted before the new event is: a snapshot in between sees one event fewer
        // queued and one more dropped, which balances.
        self.shared.counters.evicted.fetch_add(1, Ordering::SeqCst);
        slot.clear();
        Some(slot)
    }

    /// Overflow `Block`: waits for a slot in slices of `P::SLICE`, parked.
    #[cold]
    fn wait_for_slot<P: Park>(
        &self,
        park: &mut P,
        lane: usize,
        timeout: Duration,
    ) -> Result<Slot, Error> {
        // A caller that waits is one its flush thread is behind: it may render its next
        // events itself, and gets the room for that now, off the fast path.
        ready_scratch();
        let deadline = deadline_after(timeout);
        let pool = &self.shared.pool;
        let turn = pool.queue_up();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(timeout));
            }
            let slice = left.min(P::SLICE);
            let closed = || self.shared.closed.load(Ordering::SeqCst);
            if let Some(slot) =
                park.park(|| pool.wait(&turn, slice, || pool.try_take_waiting(lane), closed))
            {
                return Ok(slot);
            }
            // `close` wakes the callers waiting here: after it every call is refused.
            if closed() {
                return Err(Error::Closed);
            }
            if park.interrupted() {
                return Err(Error::Timeout(timeout));
            }
        }
    }

    /// Overflow `Spill`: the queue is full, so the event goes to the store on this thread,
    /// behind everything that waits outside the store (older than it).
    #[cold]
    fn spill<P: Park>(
        &self,
        park: &mut P,
        encode: impl FnOnce(&mut Vec<u8>, usize) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut event = Vec::with_capacity(self.initial_slot_bytes);
        encode(&mut event, self.max_event_bytes)?;
        finish(&mut event, &self.shared.wall_clock(), &mut Vec::new());
        park.park(|| self.spill_encoded(&event))
    }

    fn spill_encoded(&self, event: &[u8]) -> Result<(), Error> {
        if self.forked(true) {
            return Err(Error::Forked);
        }
        let shared = &*self.shared;
        let Some(mut store) = shared.lock_store() else {
            return Err(Error::config("overflow", "\"spill\" needs a backing store"));
        };
        if store.is_closed() {
            return Err(Error::Closed);
        }
        if shared.direct() {
            // The store refused events while empty; they are being sent from memory, and
            // this one must not get ahead of them.
            return Err(Error::store(
                "spill",
                "the queue is full and the backing store is refusing events",
            ));
        }
        // Any failure of the store is a `Store` error, as under `wal`: an `Io` (a full
        // disk) would slip past a caller's handler of store errors.
        let failed = |e: Error| match e {
            e @ (Error::StoreFull { .. } | Error::Store(_) | Error::Closed) => e,
            other => Error::store("spill", other.to_string()),
        };
        move_into_store(shared, &mut **store, self.move_chunk).map_err(failed)?;
        store.append(&[event]).map_err(failed)?;
        // Recorded before stored: a snapshot taken in between sees the event queued, which
        // balances; the other way round it would be counted nowhere.
        shared.counters.recorded.add(crate::lanes::this_thread(), 1);
        shared.counters.caller_stored.fetch_add(1, Ordering::SeqCst);
        drop(store);
        shared.wake.now();
        Ok(())
    }
}
