//! The slot pool: byte buffers that travel from a free list to the caller, who encodes an
//! event into one, through the bounded queue to the flush thread, and back.
//!
//! Slots are created on first use, up to the queue capacity, and kept while the pipeline
//! is busy: a busy pipeline stops allocating once warm. Memory stays bounded three ways: a
//! slot that grew past `retained_slot_bytes` is shrunk when it comes back; free slots keep
//! at most `retained_total` bytes beyond their initial size between them (a burst of large
//! events does not leave every slot large); and an idle pipeline hands its free slots back
//! to the allocator ([`SlotPool::trim`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};

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
    /// Capacity beyond `initial_bytes` that free slots hold, in total.
    extra: AtomicUsize,
    /// Callers waiting for a slot (overflow `Block`), and where they wait. A condition
    /// variable of `parking_lot` never allocates to wait; a blocking receive on the channel
    /// now and then did.
    waiters: AtomicUsize,
    waiting: parking_lot::Mutex<()>,
    came_back: parking_lot::Condvar,
    retained_total: usize,
}

impl SlotPool {
    pub(crate) fn new(
        capacity: usize,
        initial_bytes: usize,
        retained_bytes: usize,
        retained_total: usize,
    ) -> Self {
        let (free_tx, free_rx) = bounded(capacity);
        SlotPool {
            free_tx,
            free_rx,
            created: AtomicUsize::new(0),
            capacity,
            initial_bytes,
            retained_bytes: retained_bytes.max(initial_bytes),
            extra: AtomicUsize::new(0),
            retained_total,
            waiters: AtomicUsize::new(0),
            waiting: parking_lot::Mutex::new(()),
            came_back: parking_lot::Condvar::new(),
        }
    }

    /// An empty slot; when none is free and all exist, the overflow policy decides. (The
    /// pipeline decides itself, waiting through its caller's `Park`.)
    #[cfg(test)]
    pub(crate) fn take(&self, overflow: crate::Overflow) -> Result<Slot, crate::Error> {
        use crate::{Error, Overflow};
        if let Some(slot) = self.try_take() {
            return Ok(slot);
        }
        match overflow {
            // Spill and DropOldest are the caller's business: it writes to the store without
            // a slot, or takes the oldest queued event's.
            Overflow::DropNewest | Overflow::DropOldest | Overflow::Spill => Err(Error::Full),
            Overflow::Block { timeout } => self.wait(timeout).ok_or(Error::Timeout(timeout)),
        }
    }

    /// A free slot, or a new one while fewer than `capacity` exist; never waits.
    #[inline]
    pub(crate) fn try_take(&self) -> Option<Slot> {
        if let Ok(slot) = self.free_rx.try_recv() {
            return Some(self.taken(slot));
        }
        let mut created = self.created.load(Ordering::Relaxed);
        while created < self.capacity {
            match self.created.compare_exchange_weak(
                created,
                created + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(Vec::with_capacity(self.initial_bytes)),
                Err(now) => created = now,
            }
        }
        None
    }

    /// Waits up to `timeout` for a slot to come back.
    pub(crate) fn wait(&self, timeout: Duration) -> Option<Slot> {
        let deadline = crate::worker::deadline_after(timeout);
        loop {
            if let Ok(slot) = self.free_rx.try_recv() {
                return Some(self.taken(slot));
            }
            let mut guard = self.waiting.lock();
            // Registered before looking again (both SeqCst, as in `give_back`): either this
            // look finds the slot given back, or the giver sees a waiter and wakes it.
            self.waiters.fetch_add(1, Ordering::SeqCst);
            let slot = self.free_rx.try_recv().ok();
            let timed_out =
                slot.is_none() && self.came_back.wait_until(&mut guard, deadline).timed_out();
            self.waiters.fetch_sub(1, Ordering::SeqCst);
            drop(guard);
            if let Some(slot) = slot {
                return Some(self.taken(slot));
            }
            if timed_out {
                return self.free_rx.try_recv().ok().map(|slot| self.taken(slot));
            }
        }
    }

    #[inline]
    fn taken(&self, slot: Slot) -> Slot {
        let extra = slot.capacity().saturating_sub(self.initial_bytes);
        if extra > 0 {
            self.extra.fetch_sub(extra, Ordering::Relaxed);
        }
        slot
    }

    /// Returns a slot to the free list, emptied and, if it is larger than the pool may keep,
    /// shrunk back to its initial size.
    pub(crate) fn give_back(&self, slot: Slot) {
        self.put_back(slot);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.waiting.lock();
            self.came_back.notify_one();
        }
    }

    /// Returns many slots (a sent batch's), then wakes every waiter once: a wake-up per slot
    /// costs the flush thread a system call each while producers wait under `Block`, which
    /// is exactly when it has the least time to spare.
    pub(crate) fn give_back_all(&self, slots: impl Iterator<Item = Slot>) {
        for slot in slots {
            self.put_back(slot);
        }
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.waiting.lock();
            self.came_back.notify_all();
        }
    }

    fn put_back(&self, mut slot: Slot) {
        slot.clear();
        let extra = slot.capacity().saturating_sub(self.initial_bytes);
        if extra > 0 {
            let keep = slot.capacity() <= self.retained_bytes
                && self.extra.fetch_add(extra, Ordering::Relaxed) + extra <= self.retained_total;
            if !keep {
                if slot.capacity() <= self.retained_bytes {
                    self.extra.fetch_sub(extra, Ordering::Relaxed);
                }
                slot.shrink_to(self.initial_bytes);
                // The allocator may round up; count what the slot really keeps.
                let left = slot.capacity().saturating_sub(self.initial_bytes);
                if left > 0 {
                    self.extra.fetch_add(left, Ordering::Relaxed);
                }
            }
        }
        // Cannot be full: at most `capacity` slots exist. Dropping one is harmless anyway.
        let _ = self.free_tx.try_send(slot);
    }

    /// Frees all but `keep` free slots (the pipeline is idle): they are created again on
    /// demand. Returns how many were freed.
    pub(crate) fn trim(&self, keep: usize) -> usize {
        let mut freed = 0;
        while self.free_rx.len() > keep {
            let Ok(slot) = self.free_rx.try_recv() else {
                break;
            };
            drop(self.taken(slot));
            self.created.fetch_sub(1, Ordering::Relaxed);
            freed += 1;
        }
        freed
    }

    /// Slots created so far (and not trimmed).
    #[cfg(test)]
    pub(crate) fn created(&self) -> usize {
        self.created.load(Ordering::Relaxed)
    }

    /// Bytes beyond their initial size that free slots keep.
    #[cfg(test)]
    pub(crate) fn extra(&self) -> usize {
        self.extra.load(Ordering::Relaxed)
    }
}

/// Asks the CPU to start loading a slot's first bytes (the part a flush thread reads
/// first), without waiting for them.
#[inline]
pub(crate) fn prefetch(slot: &Slot) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        for line in slot.chunks(64).take(8) {
            // Safety: `_mm_prefetch` needs SSE, which every x86_64 CPU has, and is a hint
            // that never faults whatever the address; this one is inside the slot anyway.
            #[allow(unsafe_code)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast::<i8>());
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = slot;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, Overflow};

    #[test]
    fn creates_lazily_up_to_capacity_then_applies_the_policy() {
        let pool = SlotPool::new(2, 16, 64, 1 << 20);
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
        let pool = SlotPool::new(1, 16, 64, 1 << 20);
        let mut s = pool.take(Overflow::DropNewest).unwrap();
        s.extend_from_slice(&[0; 1000]);
        pool.give_back(s);
        let s = pool.take(Overflow::DropNewest).unwrap();
        assert!(s.is_empty());
        assert!(s.capacity() <= 64, "{}", s.capacity());
    }

    #[test]
    fn free_slots_keep_a_bounded_total() {
        // 100 slots grown to 1000 bytes each, but only ~3000 extra bytes may be kept.
        let pool = SlotPool::new(100, 16, 4096, 3000);
        let slots: Vec<Slot> = (0..100)
            .map(|_| {
                let mut s = pool.take(Overflow::DropNewest).unwrap();
                s.extend_from_slice(&[0; 1000]);
                s
            })
            .collect();
        for s in slots {
            pool.give_back(s);
        }
        assert!(pool.extra() <= 3000, "{}", pool.extra());
        let grown = (0..100)
            .map(|_| pool.take(Overflow::DropNewest).unwrap())
            .filter(|s| s.capacity() > 64)
            .count();
        assert!(grown <= 3, "{grown}");
        assert_eq!(pool.extra(), 0);
    }

    #[test]
    fn trimming_frees_idle_slots_which_come_back_on_demand() {
        let pool = SlotPool::new(10, 16, 64, 1 << 20);
        let slots: Vec<Slot> = (0..10)
            .map(|_| pool.take(Overflow::DropNewest).unwrap())
            .collect();
        for s in slots {
            pool.give_back(s);
        }
        assert_eq!(pool.trim(2), 8);
        assert_eq!(pool.created(), 2);
        let again: Vec<Slot> = (0..10)
            .map(|_| pool.take(Overflow::DropNewest).unwrap())
            .collect();
        assert_eq!(again.len(), 10);
        assert_eq!(pool.created(), 10);
    }
}
