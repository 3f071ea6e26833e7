//! What `record` does when it finds no slot (the queue is full), by
//! [`Overflow`](crate::Overflow) policy: `Block` waits for a slot, `DropOldest` evicts the oldest queued event, `Spill` appends
//! to the backing store on the caller's thread. `DropNewest` needs nothing here: the call
//! returns [`Error::Full`](crate::Error::Full). All of it is off the hot path (`#[cold]`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Pipeline;
use crate::Error;
use crate::backlog::move_into_store;
use crate::encode::capture::{finish, ready_scratch};
use crate::park::Park;
use crate::slots::Slot;
use crate::worker::deadline_after;

impl Pipeline {
    /// Overflow `DropOldest` with every slot taken: the event is encoded first (into a
    /// buffer of this thread's, allocated once), so bad input evicts nothing; then the
    /// oldest queued event makes room for it.
    #[cold]
    pub(super) fn replace_oldest(
        &self,
        lane: usize,
        encode: impl FnOnce(&mut Vec<u8>, usize) -> Result<(), Error>,
    ) -> Result<(), Error> {
        // Not `capture.rs`'s scratch: that one renders with a fixed room and never grows;
        // this one holds a captured event of any size.
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SCRATCH.with(|scratch| {
            let mut fallback = Vec::new();
            let mut borrowed = scratch.try_borrow_mut();
            let event: &mut Vec<u8> = match borrowed.as_deref_mut() {
                Ok(buffer) => buffer,
                // Only if a sink called back into record on this thread.
                Err(_) => &mut fallback,
            };
            event.clear();
            encode(event, self.max_event_bytes)?;
            let mut slot = match self.shared.take_slot(lane) {
                Some(slot) => slot,
                None => self.evict_oldest().ok_or(Error::Full)?,
            };
            slot.extend_from_slice(event);
            self.push(lane, slot)
        })
    }

    /// Takes the oldest queued event's slot for a new one: the oldest of this thread's
    /// lane, or of another lane if this one has none. `None` if the queue is empty after
    /// all (every slot is being encoded into or sent).
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
    pub(super) fn wait_for_slot<P: Park>(
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
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(timeout));
            }
            let slice = left.min(P::SLICE);
            if let Some(slot) = park.park(|| pool.wait(slice, || self.shared.take_slot(lane))) {
                return Ok(slot);
            }
            if park.interrupted() {
                return Err(Error::Timeout(timeout));
            }
        }
    }

    /// Overflow `Spill`: the queue is full, so the event goes to the store on this thread,
    /// behind everything that waits outside the store (older than it).
    #[cold]
    pub(super) fn spill<P: Park>(
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
        move_into_store(shared, &mut **store, self.move_chunk)?;
        store.append(&[event])?;
        // Recorded before stored: a snapshot taken in between sees the event queued, which
        // balances; the other way round it would be counted nowhere.
        shared.counters.recorded.add(crate::lanes::this_thread(), 1);
        shared.counters.caller_stored.fetch_add(1, Ordering::SeqCst);
        drop(store);
        shared.wake.now();
        Ok(())
    }
}
