//! The slot pool: byte buffers that travel from a free list to the caller, who encodes an
//! event into one, through the bounded queue to the flush thread, and back.
//!
//! Slots are created on first use, up to the queue capacity, and kept afterwards: an idle
//! pipeline stays small and a busy one stops allocating once warm. A slot that grew past
//! `retained_slot_bytes` for a large event is shrunk when it comes back, so the pool's
//! memory stays bounded by `capacity × retained_slot_bytes`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::Error;
use crate::config::Overflow;

/// One pooled buffer.
pub(crate) type Slot = Vec<u8>;

#[derive(Debug)]
pub(crate) struct SlotPool {
    free_tx: Sender<Slot>,
    free_rx: Receiver<Slot>,
    created: AtomicUsize,
    capacity: usize,
    initial_bytes: usize,
    retained_bytes: usize,
}

impl SlotPool {
    pub(crate) fn new(capacity: usize, initial_bytes: usize, retained_bytes: usize) -> Self {
        let (free_tx, free_rx) = bounded(capacity);
        SlotPool {
            free_tx,
            free_rx,
            created: AtomicUsize::new(0),
            capacity,
            initial_bytes,
            retained_bytes: retained_bytes.max(initial_bytes),
        }
    }

    /// An empty slot; when none is free and all exist, the overflow policy decides.
    pub(crate) fn take(&self, overflow: Overflow) -> Result<Slot, Error> {
        if let Ok(slot) = self.free_rx.try_recv() {
            return Ok(slot);
        }
        let mut created = self.created.load(Ordering::Relaxed);
        while created < self.capacity {
            match self.created.compare_exchange_weak(
                created,
                created + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(Vec::with_capacity(self.initial_bytes)),
                Err(now) => created = now,
            }
        }
        match overflow {
            // Spill is the caller's business: it writes to the store without a slot.
            Overflow::DropNewest | Overflow::Spill => Err(Error::Full),
            Overflow::Block { timeout } => self.wait(timeout),
        }
    }

    fn wait(&self, timeout: Duration) -> Result<Slot, Error> {
        self.free_rx
            .recv_timeout(timeout)
            .map_err(|_| Error::Timeout(timeout))
    }

    /// Returns a slot to the free list, emptied and, if it grew too large, shrunk.
    pub(crate) fn give_back(&self, mut slot: Slot) {
        slot.clear();
        if slot.capacity() > self.retained_bytes {
            slot.shrink_to(self.initial_bytes);
        }
        // Cannot be full: at most `capacity` slots exist. Dropping one is harmless anyway.
        let _ = self.free_tx.try_send(slot);
    }

    /// Slots created so far.
    #[cfg(test)]
    pub(crate) fn created(&self) -> usize {
        self.created.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_lazily_up_to_capacity_then_applies_the_policy() {
        let pool = SlotPool::new(2, 16, 64);
        assert_eq!(pool.created(), 0);
        let a = pool.take(Overflow::DropNewest).unwrap();
        let _b = pool.take(Overflow::DropNewest).unwrap();
        assert_eq!(pool.created(), 2);
        assert!(matches!(pool.take(Overflow::DropNewest), Err(Error::Full)));
        let t = Duration::from_millis(20);
        let started = std::time::Instant::now();
        assert!(matches!(
            pool.take(Overflow::Block { timeout: t }),
            Err(Error::Timeout(_))
        ));
        assert!(started.elapsed() >= t);
        pool.give_back(a);
        assert!(pool.take(Overflow::DropNewest).is_ok());
        assert_eq!(pool.created(), 2);
    }

    #[test]
    fn grown_slots_shrink_back() {
        let pool = SlotPool::new(1, 16, 64);
        let mut s = pool.take(Overflow::DropNewest).unwrap();
        s.extend_from_slice(&[0; 1000]);
        pool.give_back(s);
        let s = pool.take(Overflow::DropNewest).unwrap();
        assert!(s.is_empty());
        assert!(s.capacity() <= 64, "{}", s.capacity());
    }
}
