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
//! Free slots travel in bundles of up to [`bundle_for`] slots, as magazines do in slab
//! allocators: the flush thread gives a sent batch's slots back as bundles onto one free
//! list, and each lane ([`crate::lanes`]: a thread's, one of [`MAX_LANES`] whatever the
//! queue's lanes) keeps one bundle as its cache; a caller takes a slot from its lane's
//! bundle and, when that is empty, swaps it for the next full one. So callers on different
//! CPUs touch the shared free list once a bundle rather than once a call (with one free
//! list of slots, four producers on 2 vCPUs spent ~340 ns of CPU an event where one spends
//! ~150), the flush thread sends once a bundle rather than once a slot, and no call moves
//! more than one bundle (refilling a cache a slot at a time made every 32nd call a tail of
//! its own: `docs/performance-history.md`). The flush thread also hands back the cache of
//! a lane that recorded nothing for [`LANE_IDLE_AFTER`]: the idle threads of a large thread
//! pool do not keep slots.
//!
//! A lane holds one bundle at most, and a bundle at most 1/64 of the slots (32 at most), so
//! all lanes together hold at most an eighth of them (for queues of 128 places and more;
//! a smaller queue's bundles are of one slot, and a lane holds one only when a refused
//! event's slot came back to it): with several threads recording, the overflow policy can
//! apply while up to that many free slots wait in other lanes; a caller waiting under
//! `Block` takes from them too. Callers waiting under `Block` take their turns oldest first
//! (`turns.rs`), and while any wait, the others leave the free list to them.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use crossbeam_utils::CachePadded;
use crossbeam_utils::atomic::AtomicCell;

use crate::lanes::MAX_LANES;
use crate::turns::{Turn, Turns};

/// How long a lane records nothing before the flush thread empties its cache: longer
/// than a caller waits for a CPU (with four producers on 2 vCPUs, a few milliseconds).
pub(crate) const LANE_IDLE_AFTER: Duration = Duration::from_millis(100);

/// How often a caller waiting for a slot looks again without being woken: a look that
/// finds a lane's bundle out with another thread (taking a slot from it, for a moment)
/// sees no slot there, and nothing wakes it when the bundle is put back.
const LOOK_AGAIN: Duration = Duration::from_millis(10);

/// How often a caller waiting behind the front looks again without being woken: it takes
/// no slot until it reaches the front, which wakes it; this is only a safety net, and with
/// 64 callers waiting, every 10 ms would be thousands of futile wake-ups a second, taken
/// from the CPUs the flush thread needs to make room.
const LOOK_AGAIN_BEHIND: Duration = Duration::from_millis(100);

/// The most slots a bundle holds.
const MAX_BUNDLE: usize = 32;

/// How many slots a lane takes from the free list at once for a pool of `capacity`:
/// 1/64 of them, at most [`MAX_BUNDLE`]; 1 (no cache) below 128.
///
/// ```ignore
/// assert_eq!(bundle_for(10_000), 32);
/// assert_eq!(bundle_for(1_000), 15);
/// assert_eq!(bundle_for(100), 1);
/// ```
pub(crate) fn bundle_for(capacity: usize) -> usize {
    (capacity / (8 * MAX_LANES)).clamp(1, MAX_BUNDLE)
}

/// One pooled buffer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    bytes: Vec<u8>,
}

impl Slot {
    /// An empty slot of `capacity` bytes.
    pub(crate) fn new(capacity: usize) -> Self {
        Slot {
            bytes: Vec::with_capacity(capacity),
        }
    }
}

#[cfg(test)]
impl From<&[u8]> for Slot {
    fn from(bytes: &[u8]) -> Self {
        Slot {
            bytes: bytes.to_vec(),
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

/// Free slots, taken and given back together.
type Bundle = Box<Vec<Slot>>;

type Bundles = (Sender<Bundle>, Receiver<Bundle>);

pub(crate) struct SlotPool {
    /// Bundles of free slots no lane holds (1 to `bundle` each), with room for one per slot;
    /// allocated on first use.
    full: OnceLock<Bundles>,
    /// Empty bundles, each with room for `bundle` slots, for the flush thread to fill:
    /// a caller that swaps its empty cache for a full bundle puts the empty one here.
    empty: OnceLock<Bundles>,
    /// Each lane's bundle, taken out by whoever uses it and put back after, in one atomic
    /// swap each (no lock: a thread that finds it out, another thread of the lane using it,
    /// takes the next full bundle instead).
    caches: Box<[CachePadded<AtomicCell<Option<Bundle>>>]>,
    /// Slots a bundle holds at most.
    per_bundle: usize,
    created: AtomicUsize,
    capacity: usize,
    initial_bytes: usize,
    retained_bytes: usize,
    /// Capacity beyond `initial_bytes` that free slots hold, in total.
    extra: AtomicUsize,
    /// Callers waiting for a slot (overflow `Block`), oldest first; parking never
    /// allocates (a blocking receive on the channel now and then did).
    turns: Turns,
    retained_total: usize,
}

impl std::fmt::Debug for SlotPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotPool")
            .field("capacity", &self.capacity)
            .field("per_bundle", &self.per_bundle)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

impl SlotPool {
    /// A pool of at most `capacity` slots of `initial_bytes`, handed out in bundles of
    /// `bundle` ([`bundle_for`]).
    pub(crate) fn new(
        capacity: usize,
        initial_bytes: usize,
        retained_bytes: usize,
        retained_total: usize,
        bundle: usize,
    ) -> Self {
        let bundle = bundle.clamp(1, MAX_BUNDLE);
        SlotPool {
            full: OnceLock::new(),
            empty: OnceLock::new(),
            // An empty bundle for each lane to start with (under 7 KiB in all): a lane's
            // first call swaps it for a full one, and it is kept for the flush thread.
            caches: (0..MAX_LANES)
                .map(|_| {
                    CachePadded::new(AtomicCell::new(Some(Box::new(Vec::with_capacity(bundle)))))
                })
                .collect(),
            per_bundle: bundle,
            created: AtomicUsize::new(0),
            capacity: capacity.max(1),
            initial_bytes,
            retained_bytes: retained_bytes.max(initial_bytes),
            extra: AtomicUsize::new(0),
            retained_total,
            turns: Turns::default(),
        }
    }

    /// The free list of full bundles, made on its first use: a load and a branch after.
    #[inline(always)]
    fn full(&self) -> &Bundles {
        match self.full.get() {
            Some(ring) => ring,
            None => self.make_full(),
        }
    }

    #[cold]
    #[inline(never)]
    fn make_full(&self) -> &Bundles {
        self.full.get_or_init(|| bounded(self.capacity))
    }

    /// The empty bundles: room for twice as many as it takes to hold every slot in whole
    /// bundles, and one a lane (a burst of small batches, each ending in a part bundle, can
    /// leave more; the extra are freed as they come back, and made again when needed).
    fn empty(&self) -> &Bundles {
        self.empty
            .get_or_init(|| bounded(2 * self.capacity.div_ceil(self.per_bundle) + MAX_LANES + 1))
    }

    /// A free slot for a caller on `lane` (a thread's, see [`crate::lanes::this_thread`]):
    /// from its lane's bundle, else from the next full bundle, else a new one while fewer
    /// than `capacity` exist. Never waits, never looks in other lanes' caches, and leaves
    /// the free list to the callers waiting in [`wait`](Self::wait) while any do.
    #[inline(always)]
    pub(crate) fn try_take(&self, lane: usize) -> Option<Slot> {
        self.take_on(lane, false)
    }

    #[inline(always)]
    fn take_on(&self, lane: usize, waiting: bool) -> Option<Slot> {
        let cache = &self.caches[lane & (MAX_LANES - 1)];
        if let Some(mut bundle) = cache.take() {
            if let Some(slot) = bundle.pop() {
                crate::prefetch::for_write(&slot);
                if let Some(next) = bundle.last() {
                    crate::prefetch::for_write(next);
                }
                self.put_cache(cache, bundle);
                return Some(self.taken(slot));
            }
            self.keep_empty(bundle);
        }
        self.refill(cache, waiting)
    }

    /// Puts `bundle` back as `cache`; one another thread of the lane put there meanwhile
    /// goes to the free list.
    #[inline(always)]
    fn put_cache(&self, cache: &AtomicCell<Option<Bundle>>, bundle: Bundle) {
        if let Some(other) = cache.swap(Some(bundle)) {
            self.put_bundle(other);
            // Its slots may be the ones a waiter at the front looked for in vain.
            self.wake_waiters();
        }
    }

    /// A bundle no lane holds: onto the free list, or kept empty.
    #[cold]
    fn put_bundle(&self, bundle: Bundle) {
        if bundle.is_empty() {
            self.keep_empty(bundle);
        } else {
            // Cannot be full: it has room for a bundle per slot.
            let sent = self.full().0.try_send(bundle);
            debug_assert!(sent.is_ok(), "more bundles than slots");
        }
    }

    /// An empty cache: the next full bundle becomes the lane's, and its last slot the
    /// caller's; for a caller not `waiting`, only while nobody waits (it would take the
    /// slots the waiters were woken for, and join them at the back when it waits itself).
    #[cold]
    fn refill(&self, cache: &AtomicCell<Option<Bundle>>, waiting: bool) -> Option<Slot> {
        if !waiting && self.turns.anyone_waiting() {
            return None;
        }
        let Ok(mut bundle) = self.full().1.try_recv() else {
            return self.create();
        };
        // A bundle on the free list is never empty.
        let slot = bundle.pop();
        self.put_cache(cache, bundle);
        slot.map(|slot| self.taken(slot))
    }

    /// Keeps an empty bundle for the flush thread to fill (or frees it, if enough are kept).
    fn keep_empty(&self, bundle: Bundle) {
        debug_assert!(bundle.is_empty());
        let _ = self.empty().0.try_send(bundle);
    }

    /// [`try_take`](Self::try_take), then any other lane's cache: for a caller that waits,
    /// at the front ([`wait`](Self::wait) asks only then).
    pub(crate) fn try_take_waiting(&self, lane: usize) -> Option<Slot> {
        self.take_on(lane, true).or_else(|| self.take_from_caches())
    }

    /// A free slot from whichever lane's cache has one.
    #[cold]
    fn take_from_caches(&self) -> Option<Slot> {
        self.caches.iter().find_map(|cache| {
            let mut bundle = cache.take()?;
            let slot = bundle.pop();
            self.put_cache(cache, bundle);
            slot.map(|slot| self.taken(slot))
        })
    }

    /// Any free slot, off the hot path (the flush thread's gap marker: it holds no lane):
    /// from a full bundle, a lane's cache, or a new one if fewer than `capacity` exist.
    pub(crate) fn try_take_any(&self) -> Option<Slot> {
        if let Ok(mut bundle) = self.full().1.try_recv() {
            let slot = bundle.pop();
            self.put_bundle(bundle);
            return slot.map(|slot| self.taken(slot));
        }
        self.take_from_caches().or_else(|| self.create())
    }

    /// The capacity a free slot may keep (`retained_slot_bytes`, at least the initial).
    pub(crate) fn retained_bytes(&self) -> usize {
        self.retained_bytes
    }

    /// A new slot while fewer than `capacity` exist.
    fn create(&self) -> Option<Slot> {
        let mut created = self.created.load(Ordering::Relaxed);
        while created < self.capacity {
            match self.created.compare_exchange_weak(
                created,
                created + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(Slot::new(self.initial_bytes)),
                Err(now) => created = now,
            }
        }
        None
    }

    /// The flush thread's part: hands back the caches of the lanes in `idle` (a bit each,
    /// lanes that recorded nothing for [`LANE_IDLE_AFTER`]) as full bundles.
    pub(crate) fn empty_caches(&self, idle: u64) {
        let mut moved = false;
        for (lane, cache) in self.caches.iter().enumerate() {
            if idle & (1 << lane) == 0 {
                continue;
            }
            let Some(bundle) = cache.take() else {
                continue;
            };
            if bundle.is_empty() {
                self.put_cache(cache, bundle);
                continue;
            }
            moved = true;
            self.put_bundle(bundle);
        }
        if moved {
            self.wake_waiters();
        }
    }

    /// An empty bundle with room for `bundle` slots: a kept one, or a new one (the flush
    /// thread's, while the pool warms up, and a caller's giving back a slot without one).
    fn empty_bundle(&self) -> Bundle {
        match self.empty().1.try_recv() {
            Ok(bundle) => bundle,
            Err(_) => Box::new(Vec::with_capacity(self.per_bundle)),
        }
    }

    /// A place among the callers waiting for a slot, for [`wait`](Self::wait), kept until
    /// the call ends (a binding waiting in slices keeps it between them).
    pub(crate) fn queue_up(&self) -> Turn<'_> {
        self.turns.queue_up()
    }

    /// Waits up to `timeout` for `take` ([`try_take_waiting`](Self::try_take_waiting)) to
    /// find a slot, asked only while `turn` is at the front: when woken (slots came back,
    /// the turn reached the front) and at least every [`LOOK_AGAIN`]. Gives up (`None`) once
    /// `stop` holds, announced by [`wake_all_waiters`](Self::wake_all_waiters) (a close);
    /// `stop` must only read atomics (it is asked inside `parking_lot_core`).
    pub(crate) fn wait(
        &self,
        turn: &Turn<'_>,
        timeout: Duration,
        take: impl Fn() -> Option<Slot>,
        stop: impl Fn() -> bool,
    ) -> Option<Slot> {
        let deadline = crate::worker::deadline_after(timeout);
        loop {
            // Every wake-up of the front counts here: one that comes between the look and
            // the sleep (slots put into a lane's bundle, this turn reaching the front) is
            // seen when it would sleep, not 10 ms later.
            let wakes = self.turns.wakes();
            if turn.at_front()
                && let Some(slot) = take()
            {
                return Some(slot);
            }
            let now = Instant::now();
            if stop() || now >= deadline {
                return None;
            }
            // Asked under the lock the wakers take: whoever makes slots free after the look
            // above wakes the front after, so it either shows here or wakes this caller.
            // (Not "the free list has a bundle": a bundle being sent shows in the channel
            // before it can be received, and a waiter that took that for a reason not to
            // sleep spun until the sender ran again — under valgrind, one CPU at a time, a
            // caller waited out its 10 s block timeout.)
            let ready = |at_front: bool| stop() || at_front && self.turns.wakes() != wakes;
            let again = if turn.at_front() {
                LOOK_AGAIN
            } else {
                LOOK_AGAIN_BEHIND
            };
            turn.sleep(deadline.min(now + again), ready);
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

    /// Counts as gone, unless [`disarmed`](Encoding::disarm), a slot taken for a closure
    /// that may panic: the slot is dropped with the unwinding, and without this every such
    /// panic (a user's `Serialize` that panics, say) would leave the pool a slot short for
    /// good.
    #[inline(always)]
    pub(crate) fn encoding(&self) -> Encoding<'_> {
        Encoding { pool: self }
    }

    /// Returns one slot, taken by a caller on `lane` that could not use it (its event was
    /// refused), emptied and, if it is larger than the pool may keep, shrunk back to its
    /// initial size. It goes back to the lane's bundle while that leaves room for a refill's
    /// worth, as if the slot had not been taken; else as a bundle of its own, in a kept
    /// empty one; and with none kept, into the lane's bundle after all if it has room: a
    /// caller allocates only when its lane's bundle is out with another thread of the lane.
    pub(crate) fn give_back(&self, lane: usize, slot: Slot) {
        let slot = self.cleaned(slot);
        let cache = &self.caches[lane & (MAX_LANES - 1)];
        let mut held = cache.take();
        let into_lane = match &held {
            Some(bundle) if bundle.len() + 1 < self.per_bundle => true,
            Some(bundle) => bundle.len() < self.per_bundle && self.empty().1.is_empty(),
            None => false,
        };
        match held.as_mut() {
            Some(bundle) if into_lane => bundle.push(slot),
            _ => {
                let mut own = self.empty_bundle();
                own.push(slot);
                self.put_bundle(own);
            }
        }
        if let Some(bundle) = held {
            self.put_cache(cache, bundle);
        }
        self.wake_waiters();
    }

    /// Returns many slots (a sent batch's) as full bundles, then wakes every waiter once: a
    /// wake-up per slot costs the flush thread a system call each while producers wait
    /// under `Block`, which is exactly when it has the least time to spare.
    pub(crate) fn give_back_all(&self, slots: impl Iterator<Item = Slot>) {
        let mut bundle: Option<Bundle> = None;
        for slot in slots {
            let filling = bundle.get_or_insert_with(|| self.empty_bundle());
            filling.push(self.cleaned(slot));
            if filling.len() == self.per_bundle
                && let Some(full) = bundle.take()
            {
                self.put_bundle(full);
            }
        }
        if let Some(last) = bundle {
            self.put_bundle(last);
        }
        self.wake_waiters();
    }

    /// Wakes the callers in [`wait`](Self::wait) at the front, to look again.
    pub(crate) fn wake_waiters(&self) {
        self.turns.wake_front();
    }

    /// Wakes every caller in [`wait`](Self::wait), to look at its `stop`.
    pub(crate) fn wake_all_waiters(&self) {
        self.turns.wake_all();
    }

    /// `slot` emptied and, if larger than the pool may keep, shrunk.
    fn cleaned(&self, mut slot: Slot) -> Slot {
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
        slot
    }

    /// Frees all but about `keep` free slots (the pipeline is idle; the lanes' caches
    /// first): they are created again on demand. Returns how many were freed.
    pub(crate) fn trim(&self, keep: usize) -> usize {
        self.empty_caches(u64::MAX);
        // Empty bundles beyond one a lane go too (a burst of small batches leaves many).
        if let Some(empty) = self.empty.get() {
            while empty.1.len() > MAX_LANES && empty.1.try_recv().is_ok() {}
        }
        let Some(full) = self.full.get() else {
            return 0;
        };
        let mut free: usize = 0;
        let mut freed = 0;
        // Each bundle is looked at once (those put back go to the end of the list), keeping
        // the first `keep` slots found.
        for _ in 0..full.1.len() {
            let Ok(mut bundle) = full.1.try_recv() else {
                break;
            };
            while free + bundle.len() > keep {
                let Some(slot) = bundle.pop() else { break };
                drop(self.taken(slot));
                self.created.fetch_sub(1, Ordering::Relaxed);
                freed += 1;
            }
            free += bundle.len();
            if bundle.is_empty() {
                self.keep_empty(bundle);
            } else {
                let _ = full.0.try_send(bundle);
            }
        }
        freed
    }
}

/// See [`SlotPool::encoding`].
#[must_use]
pub(crate) struct Encoding<'a> {
    pool: &'a SlotPool,
}

impl Encoding<'_> {
    /// The closure returned: the slot is the caller's to use or give back.
    #[inline(always)]
    pub(crate) fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for Encoding<'_> {
    fn drop(&mut self) {
        self.pool.created.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[path = "slots_tests.rs"]
mod tests;
