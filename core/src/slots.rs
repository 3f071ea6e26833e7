//! The slot pool: byte buffers that travel from a free list to the caller, who encodes an
//! event into one, through the bounded queue to the flush thread, and back.
//!
//! Slots are created on first use, up to the queue capacity, and kept while the pipeline
//! is busy: a busy pipeline stops allocating once warm. Memory stays bounded three ways: a
//! slot that grew past `retained_slot_bytes` is shrunk when it comes back; free slots keep
//! at most `retained_total` bytes beyond their initial size between them (a burst of large
//! events does not leave every slot large); and an idle pipeline hands its free slots back
//! to the allocator ([`SlotPool::trim`]).
//!
//! Free slots wait in a free list per lane ([`crate::lanes`]): a slot belongs to a lane
//! and goes back to that lane's list, so a caller takes its slots from a list only its own
//! lane's callers and the flush thread touch. Each lane recording events has a share of
//! the slots, `capacity` divided among them (all of it while one thread records). A caller
//! whose list is empty creates a slot while its lane is under its share and fewer than
//! `capacity` exist; else it takes a free slot from a lane over its share or one the flush
//! thread found idle (nothing queued on it and nothing recorded on it for
//! [`LANE_IDLE_AFTER`]), and the slot becomes its lane's; and the flush thread hands slots
//! coming back to a lane over its share to one under it. Past that, a caller of a lane
//! under its share takes any free slot while the queue is less than half full
//! (`Shared::take_slot`); a caller of a lane at its share is refused at once.
//!
//! Slots change lanes only while the shares settle: had callers taken whatever slot was
//! free anywhere, every caller of a busy pipeline would reach into every other lane's list,
//! which is what lanes are for avoiding (four producers on 2 vCPUs doing so spent as much
//! CPU an event, ~360 ns, as with one shared list; with shares, 250–300). So with callers on
//! several threads, the overflow policy can apply once the caller's lane holds its share
//! (or, for a lane under it, once the queue is over half full) while other lanes keep free
//! slots of theirs: at 10× overload four producers on 2 vCPUs delivered 0.86× what one
//! does (0.99× with one shared list), the free slots of those waiting for a CPU out of
//! reach of those running.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};
use crossbeam_utils::CachePadded;

type Ring = (Sender<Slot>, Receiver<Slot>);

/// A lane's free list, and how many slots are the lane's (free or not).
#[derive(Debug, Default)]
struct FreeList {
    ring: OnceLock<Ring>,
    /// Changes only when a slot is created, changes lanes or is freed.
    owned: AtomicUsize,
}

/// How long a lane has nothing queued and nothing recorded before the flush thread
/// marks it idle: longer than a caller waits for a CPU (with four producers on 2 vCPUs,
/// lanes taken for idle after two batches, ~0.3 ms, while their callers waited to run
/// changed their slots' lanes 800 000 times in 8 M events, and cost as much as no lanes).
pub(crate) const LANE_IDLE_AFTER: Duration = Duration::from_millis(100);

/// One pooled buffer, and the lane whose free list it goes back to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    bytes: Vec<u8>,
    lane: u8,
}

impl Slot {
    /// An empty slot of `capacity` bytes, of `lane`'s free list.
    pub(crate) fn new(capacity: usize, lane: usize) -> Self {
        Slot {
            bytes: Vec::with_capacity(capacity),
            lane: lane as u8,
        }
    }

    /// The lane whose free list the slot goes back to.
    #[cfg(test)]
    pub(crate) fn lane(&self) -> usize {
        usize::from(self.lane)
    }
}

#[cfg(test)]
impl From<&[u8]> for Slot {
    fn from(bytes: &[u8]) -> Self {
        Slot {
            bytes: bytes.to_vec(),
            lane: 0,
        }
    }
}

impl std::ops::Deref for Slot {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.bytes
    }
}

impl std::ops::DerefMut for Slot {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

#[derive(Debug)]
pub(crate) struct SlotPool {
    /// A free list per lane, each with room for every slot; allocated on first use.
    free: Box<[CachePadded<FreeList>]>,
    /// The slots each lane recording events may own (`capacity` divided among them).
    share: CachePadded<AtomicUsize>,
    /// A recording lane under its share, which slots of lanes over theirs go to when they
    /// come back (`usize::MAX`: none).
    needy: AtomicUsize,
    /// Lanes a caller of which found no slot since the flush thread last looked, a bit
    /// each: they count as recording, so that a thread new to a busy pipeline gets a share
    /// (else, with the queue over half full, a lane recording nothing yet would get none).
    wanting: CachePadded<AtomicU64>,
    /// The lanes the flush thread found idle, a bit each: written only when it changes,
    /// read by callers that found no free slot of their own.
    idle: CachePadded<AtomicU64>,
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
        lanes: usize,
    ) -> Self {
        SlotPool {
            free: (0..lanes.max(1))
                .map(|_| CachePadded::new(FreeList::default()))
                .collect(),
            share: CachePadded::new(AtomicUsize::new(capacity.max(1))),
            needy: AtomicUsize::new(usize::MAX),
            wanting: CachePadded::new(AtomicU64::new(0)),
            idle: CachePadded::new(AtomicU64::new(0)),
            created: AtomicUsize::new(0),
            capacity: capacity.max(1),
            initial_bytes,
            retained_bytes: retained_bytes.max(initial_bytes),
            extra: AtomicUsize::new(0),
            retained_total,
            waiters: AtomicUsize::new(0),
            waiting: parking_lot::Mutex::new(()),
            came_back: parking_lot::Condvar::new(),
        }
    }

    /// A lane's free list, made on its first use: a load and a branch after.
    #[inline(always)]
    fn ring(&self, lane: usize) -> &Ring {
        match self.free[lane].ring.get() {
            Some(ring) => ring,
            None => self.make_ring(lane),
        }
    }

    #[cold]
    #[inline(never)]
    fn make_ring(&self, lane: usize) -> &Ring {
        self.free[lane].ring.get_or_init(|| bounded(self.capacity))
    }

    /// An empty slot; when none is free and all exist, the overflow policy decides. (The
    /// pipeline decides itself, waiting through its caller's `Park`.)
    #[cfg(test)]
    pub(crate) fn take(&self, overflow: crate::Overflow) -> Result<Slot, crate::Error> {
        use crate::{Error, Overflow};
        if let Some(slot) = self.try_take(crate::lanes::this_thread()) {
            return Ok(slot);
        }
        match overflow {
            // Spill and DropOldest are the caller's business: it writes to the store without
            // a slot, or takes the oldest queued event's.
            Overflow::DropNewest | Overflow::DropOldest | Overflow::Spill => Err(Error::Full),
            Overflow::Block { timeout } => self
                .wait(timeout, || self.try_take(crate::lanes::this_thread()))
                .ok_or(Error::Timeout(timeout)),
        }
    }

    /// A free slot of `lane` (a thread's, see [`crate::lanes::this_thread`]), or else (see
    /// the module's notes) a new one or one from another lane; never waits.
    #[inline(always)]
    pub(crate) fn try_take(&self, lane: usize) -> Option<Slot> {
        let lane = lane & (self.free.len() - 1);
        if let Ok(slot) = self.ring(lane).1.try_recv() {
            return Some(self.taken(slot));
        }
        self.more(lane)
    }

    /// `lane` has no free slot: a new one while it is under its share, or one from a lane
    /// over its share, or from an idle lane.
    #[cold]
    fn more(&self, lane: usize) -> Option<Slot> {
        let share = self.share.load(Ordering::Relaxed);
        let idle = self.idle.load(Ordering::Relaxed);
        if !self.under_share(lane) {
            // At its share, under overload the common case: a refusal must stay cheap.
            return self.steal(lane, |victim, _| idle & (1 << victim) != 0);
        }
        let slot = self.create(lane).or_else(|| {
            self.steal(lane, |victim, owned| {
                idle & (1 << victim) != 0 || owned > share
            })
        });
        if slot.is_none() && self.wanting.load(Ordering::Relaxed) & (1 << lane) == 0 {
            self.wanting.fetch_or(1 << lane, Ordering::Relaxed);
        }
        slot
    }

    /// The capacity a free slot may keep (`retained_slot_bytes`, at least the initial).
    pub(crate) fn retained_bytes(&self) -> usize {
        self.retained_bytes
    }

    /// Whether `lane` owns fewer slots than its share.
    #[inline]
    pub(crate) fn under_share(&self, lane: usize) -> bool {
        let lane = lane & (self.free.len() - 1);
        self.free[lane].owned.load(Ordering::Relaxed) < self.share.load(Ordering::Relaxed)
    }

    /// The lanes a caller of which found no slot since the flush thread last looked.
    pub(crate) fn wanting(&self) -> u64 {
        self.wanting.load(Ordering::Relaxed)
    }

    /// The lanes a caller of which found no slot since the last call (the flush thread's).
    pub(crate) fn take_wanting(&self) -> u64 {
        if self.wanting.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        self.wanting.swap(0, Ordering::Relaxed)
    }

    /// A new slot of `lane` while fewer than `capacity` exist.
    fn create(&self, lane: usize) -> Option<Slot> {
        let mut created = self.created.load(Ordering::Relaxed);
        while created < self.capacity {
            match self.created.compare_exchange_weak(
                created,
                created + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.free[lane].owned.fetch_add(1, Ordering::Relaxed);
                    return Some(Slot::new(self.initial_bytes, lane));
                }
                Err(now) => created = now,
            }
        }
        None
    }

    /// A free slot of the first other lane `pick(lane, slots it owns)` allows; the slot
    /// becomes `lane`'s.
    fn steal(&self, lane: usize, pick: impl Fn(usize, usize) -> bool) -> Option<Slot> {
        let n = self.free.len();
        (1..n).find_map(|i| {
            let victim = (lane + i) & (n - 1);
            let from = &self.free[victim];
            if !pick(victim, from.owned.load(Ordering::Relaxed)) {
                return None;
            }
            let mut slot = from.ring.get()?.1.try_recv().ok()?;
            from.owned.fetch_sub(1, Ordering::Relaxed);
            self.free[lane].owned.fetch_add(1, Ordering::Relaxed);
            slot.lane = lane as u8;
            Some(self.taken(slot))
        })
    }

    /// Any free slot, of whichever lane, off the hot path: it becomes `to`'s (a caller's
    /// lane), or, with `None` (the flush thread's gap marker: it holds no lane), stays
    /// where it was. A new one, if fewer than `capacity` exist, is `to`'s or the first
    /// lane's.
    pub(crate) fn try_take_any(&self, to: Option<usize>) -> Option<Slot> {
        let found = self.free.iter().enumerate().find_map(|(lane, free)| {
            let slot = free.ring.get()?.1.try_recv().ok()?;
            Some((lane, slot))
        });
        let Some((from, mut slot)) = found else {
            return self.create(to.map_or(0, |to| to & (self.free.len() - 1)));
        };
        if let Some(to) = to.map(|to| to & (self.free.len() - 1))
            && to != from
        {
            self.free[from].owned.fetch_sub(1, Ordering::Relaxed);
            self.free[to].owned.fetch_add(1, Ordering::Relaxed);
            slot.lane = to as u8;
        }
        Some(self.taken(slot))
    }

    /// The flush thread's account of the lanes: which are idle, a bit each (see
    /// [`LANE_IDLE_AFTER`]), and so each busy lane's share of the slots.
    pub(crate) fn mark_idle(&self, idle: u64) {
        let mut changed = false;
        if self.idle.load(Ordering::Relaxed) != idle {
            self.idle.store(idle, Ordering::Relaxed);
            changed = true;
        }
        let busy = || {
            self.free
                .iter()
                .enumerate()
                .filter(|(lane, free)| idle & (1 << lane) == 0 && free.ring.get().is_some())
        };
        let share = self.capacity.div_ceil(busy().count().max(1));
        if self.share.load(Ordering::Relaxed) != share {
            self.share.store(share, Ordering::Relaxed);
            changed = true;
        }
        let needy = busy()
            .map(|(lane, free)| (free.owned.load(Ordering::Relaxed), lane))
            .min()
            .filter(|&(owned, _)| owned < share)
            .map_or(usize::MAX, |(_, lane)| lane);
        if self.needy.load(Ordering::Relaxed) != needy {
            self.needy.store(needy, Ordering::Relaxed);
        }
        // A caller waiting for a slot may now take one from another lane. (SeqCst, as the
        // waiter's registration: either it sees the new share, or this sees it waiting.)
        std::sync::atomic::fence(Ordering::SeqCst);
        if changed && self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.waiting.lock();
            self.came_back.notify_all();
        }
    }

    /// Waits up to `timeout` for `take` (this pool's [`try_take`](Self::try_take), or a
    /// caller's wider look) to find a slot: looks again whenever slots come back or the
    /// lanes' shares change.
    pub(crate) fn wait(&self, timeout: Duration, take: impl Fn() -> Option<Slot>) -> Option<Slot> {
        let deadline = crate::worker::deadline_after(timeout);
        loop {
            if let Some(slot) = take() {
                return Some(slot);
            }
            let mut guard = self.waiting.lock();
            // Registered before looking again (both SeqCst, as in `give_back`): either this
            // look finds the slot given back, or the giver sees a waiter and wakes it.
            self.waiters.fetch_add(1, Ordering::SeqCst);
            let slot = take();
            let timed_out =
                slot.is_none() && self.came_back.wait_until(&mut guard, deadline).timed_out();
            self.waiters.fetch_sub(1, Ordering::SeqCst);
            drop(guard);
            if slot.is_some() {
                return slot;
            }
            if timed_out {
                return take();
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
            // Every waiter: only those of the slot's lane, or one allowed to take any, can use it.
            self.came_back.notify_all();
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
        let mut lane = usize::from(slot.lane) & (self.free.len() - 1);
        // A lane over its share hands the slot to one under it, so that shares settle
        // without callers reaching into other lanes' lists.
        let share = self.share.load(Ordering::Relaxed);
        if self.free[lane].owned.load(Ordering::Relaxed) > share {
            let needy = self.needy.load(Ordering::Relaxed);
            if needy < self.free.len()
                && needy != lane
                && self.free[needy].owned.load(Ordering::Relaxed) < share
            {
                self.free[lane].owned.fetch_sub(1, Ordering::Relaxed);
                self.free[needy].owned.fetch_add(1, Ordering::Relaxed);
                slot.lane = needy as u8;
                lane = needy;
            }
        }
        // Cannot be full: at most `capacity` slots exist. Dropping one is harmless anyway.
        let _ = self.ring(lane).0.try_send(slot);
    }

    /// Frees all but `keep` free slots (the pipeline is idle): they are created again on
    /// demand. Returns how many were freed.
    pub(crate) fn trim(&self, keep: usize) -> usize {
        let lanes: Vec<(&Ring, &AtomicUsize)> = self
            .free
            .iter()
            .filter_map(|lane| Some((lane.ring.get()?, &lane.owned)))
            .collect();
        let mut free: usize = lanes.iter().map(|(ring, _)| ring.1.len()).sum();
        let mut freed = 0;
        for (ring, owned) in lanes {
            while free > keep {
                let Ok(slot) = ring.1.try_recv() else {
                    break;
                };
                drop(self.taken(slot));
                owned.fetch_sub(1, Ordering::Relaxed);
                self.created.fetch_sub(1, Ordering::Relaxed);
                freed += 1;
                free -= 1;
            }
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
#[path = "slots_tests.rs"]
mod tests;
