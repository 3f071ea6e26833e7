//! Tests of the slot pool (`slots.rs`): creation, shrinking, trimming, and the lanes' caches.

use super::*;
use crate::lanes::this_thread;
use crate::{Error, Overflow};

// Test-only ways into the pool.
impl SlotPool {
    /// An empty slot; when none is free and all exist, the overflow policy decides. (The
    /// pipeline decides itself, waiting through its caller's `Park`.)
    pub(crate) fn take(&self, overflow: Overflow) -> Result<Slot, Error> {
        let lane = this_thread();
        if let Some(slot) = self.try_take(lane) {
            return Ok(slot);
        }
        match overflow {
            // Spill and DropOldest are the caller's business: it writes to the store without
            // a slot, or takes the oldest queued event's.
            Overflow::DropNewest | Overflow::DropOldest | Overflow::Spill => Err(Error::Full),
            Overflow::Block { timeout } => {
                let turn = self.queue_up();
                self.wait(&turn, timeout, || self.try_take_waiting(lane), || false)
                    .ok_or(Error::Timeout(timeout))
            }
        }
    }

    /// Slots created so far (and not trimmed).
    pub(crate) fn created(&self) -> usize {
        self.created.load(Ordering::Relaxed)
    }

    /// Free slots in full bundles, and in each lane's cache.
    pub(crate) fn free_slots(&self) -> (usize, Vec<usize>) {
        let mut free = 0;
        if let Some(full) = self.full.get() {
            for _ in 0..full.1.len() {
                let Ok(bundle) = full.1.try_recv() else { break };
                free += bundle.len();
                let _ = full.0.try_send(bundle);
            }
        }
        let caches = self.caches.iter().map(|cache| {
            let bundle = cache.take();
            let n = bundle.as_ref().map_or(0, |b| b.len());
            assert!(
                cache.swap(bundle).is_none(),
                "a lane's bundle changed meanwhile"
            );
            n
        });
        (free, caches.collect())
    }

    /// Bytes beyond their initial size that free slots keep.
    pub(crate) fn extra(&self) -> usize {
        self.extra.load(Ordering::Relaxed)
    }
}

#[test]
fn creates_lazily_up_to_capacity_then_applies_the_policy() {
    for bundle in [1, 4] {
        let pool = SlotPool::new(2, 16, 64, 1 << 20, bundle);
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
        pool.give_back(this_thread(), a);
        assert!(pool.take(Overflow::DropNewest).is_ok());
        assert_eq!(pool.created(), 2);
    }
}

#[test]
fn grown_slots_shrink_back() {
    for bundle in [1, 4] {
        let pool = SlotPool::new(1, 16, 64, 1 << 20, bundle);
        let mut s = pool.take(Overflow::DropNewest).unwrap();
        s.extend_from_slice(&[0; 1000]);
        pool.give_back(this_thread(), s);
        let s = pool.take(Overflow::DropNewest).unwrap();
        assert!(s.is_empty());
        assert!(s.capacity() <= 64, "{}", s.capacity());
    }
}

#[test]
fn free_slots_keep_a_bounded_total() {
    // 100 slots grown to 1000 bytes each, but only ~3000 extra bytes may be kept.
    for bundle in [1, 4] {
        let pool = SlotPool::new(100, 16, 4096, 3000, bundle);
        let slots: Vec<Slot> = (0..100)
            .map(|_| {
                let mut s = pool.take(Overflow::DropNewest).unwrap();
                s.extend_from_slice(&[0; 1000]);
                s
            })
            .collect();
        for s in slots {
            pool.give_back(this_thread(), s);
        }
        assert!(pool.extra() <= 3000, "{}", pool.extra());
        let grown = (0..100)
            .map(|_| pool.take(Overflow::DropNewest).unwrap())
            .filter(|s| s.capacity() > 64)
            .count();
        assert!(grown <= 3, "{grown}");
        assert_eq!(pool.extra(), 0);
    }
}

#[test]
fn trimming_frees_idle_slots_which_come_back_on_demand() {
    for bundle in [1, 4] {
        let pool = SlotPool::new(10, 16, 64, 1 << 20, bundle);
        let slots: Vec<Slot> = (0..10)
            .map(|_| pool.take(Overflow::DropNewest).unwrap())
            .collect();
        for s in slots {
            pool.give_back(this_thread(), s);
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

#[test]
fn a_lanes_bundle_is_swapped_without_a_lock() {
    assert!(AtomicCell::<Option<Bundle>>::is_lock_free());
}

#[test]
fn bundles_are_a_small_part_of_the_pool() {
    assert_eq!(bundle_for(10_000), 32);
    assert_eq!(bundle_for(1_000), 15);
    assert_eq!(bundle_for(128), 2);
    assert_eq!(bundle_for(127), 1);
    assert_eq!(bundle_for(1), 1);
    for capacity in [128, 1_000, 2_048, 10_000, 1 << 24] {
        // Every lane holding a whole bundle: at most an eighth of the slots.
        assert!(
            MAX_LANES * bundle_for(capacity) <= capacity / 8,
            "{capacity}"
        );
    }
}

/// A pool of 100 slots, all created and free, taken 4 at a time.
fn warm_pool() -> std::sync::Arc<SlotPool> {
    let pool = SlotPool::new(100, 16, 64, 1 << 20, 4);
    let all: Vec<Slot> = (0..100)
        .map(|_| pool.take(Overflow::DropNewest).unwrap())
        .collect();
    pool.give_back_all(all.into_iter());
    pool.empty_caches(u64::MAX);
    assert_eq!(pool.free_slots().0, 100);
    std::sync::Arc::new(pool)
}

/// Takes one slot on another thread and gives it back: its lane keeps the rest of a bundle.
fn bundle_elsewhere(pool: &std::sync::Arc<SlotPool>) -> usize {
    let other = std::sync::Arc::clone(pool);
    std::thread::spawn(move || {
        let slot = other.take(Overflow::DropNewest).unwrap();
        other.give_back(this_thread(), slot);
        this_thread() % MAX_LANES
    })
    .join()
    .unwrap()
}

#[test]
fn a_caller_takes_a_bundle_and_leaves_the_rest_free() {
    let pool = warm_pool();
    let slot = pool.take(Overflow::DropNewest).unwrap();
    let (free, caches) = pool.free_slots();
    assert_eq!(free, 96);
    assert_eq!(caches[this_thread() % MAX_LANES], 3);
    assert_eq!(caches.iter().sum::<usize>(), 3);
    // The next three come from the cache, without touching the free list.
    let more: Vec<Slot> = (0..3)
        .map(|_| pool.take(Overflow::DropNewest).unwrap())
        .collect();
    assert_eq!(pool.free_slots().0, 96);
    pool.give_back_all(more.into_iter().chain([slot]));
    assert_eq!(pool.free_slots().0, 100, "slots go back to the free list");
    assert_eq!(pool.created(), 100);
}

/// Another thread's lane keeps three free slots (`bundle_elsewhere`), and this thread takes
/// every other one: their lane, or `None` when the two threads share a lane (lanes are
/// handed out to every thread of the test run in turn).
fn their_bundle_left(pool: &std::sync::Arc<SlotPool>) -> Option<usize> {
    let their_lane = bundle_elsewhere(pool);
    if their_lane == this_thread() % MAX_LANES {
        return None;
    }
    let mine = std::iter::from_fn(|| pool.take(Overflow::DropNewest).ok()).count();
    assert_eq!(mine, 97, "all but the three in their lane");
    Some(their_lane)
}

#[test]
fn an_idle_lanes_cache_goes_back_to_the_free_list() {
    let pool = warm_pool();
    let Some(their_lane) = their_bundle_left(&pool) else {
        return;
    };
    // The flush thread saw their lane record nothing lately.
    pool.empty_caches(1 << their_lane);
    assert_eq!(pool.free_slots().1[their_lane], 0);
    let more: Vec<Slot> = std::iter::from_fn(|| pool.take(Overflow::DropNewest).ok()).collect();
    assert_eq!(more.len(), 3);
    assert_eq!(pool.created(), 100);
}

#[test]
fn a_waiting_caller_takes_from_other_lanes_caches() {
    let pool = warm_pool();
    if their_bundle_left(&pool).is_none() {
        return;
    }
    let block = Overflow::Block {
        timeout: Duration::from_millis(1),
    };
    let waited: Vec<Slot> = std::iter::from_fn(|| pool.take(block).ok()).collect();
    assert_eq!(waited.len(), 3);
    assert!(matches!(pool.take(block), Err(Error::Timeout(_))));
}

#[test]
fn trimming_empties_the_caches_first() {
    let pool = warm_pool();
    bundle_elsewhere(&pool);
    let slot = pool.take(Overflow::DropNewest).unwrap();
    pool.give_back(this_thread(), slot);
    assert_eq!(pool.trim(10), 90);
    assert_eq!(pool.free_slots(), (10, vec![0; MAX_LANES]));
    assert_eq!(pool.created(), 10);
}

#[test]
fn no_slot_is_lost_or_doubled_when_threads_share_lanes_and_lanes_go_idle() {
    // More threads than lanes (they share lanes' bundles), a flush thread giving slots back
    // in batches and emptying caches, and callers that give one back now and then.
    let pool = std::sync::Arc::new(SlotPool::new(1_000, 16, 64, 1 << 20, bundle_for(1_000)));
    let (queue, queued) = crossbeam_channel::unbounded::<Slot>();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flush = {
        let (pool, stop) = (std::sync::Arc::clone(&pool), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut turn = 0u64;
            loop {
                let batch: Vec<Slot> = queued.try_iter().take(300).collect();
                let done = batch.is_empty() && stop.load(Ordering::SeqCst);
                pool.give_back_all(batch.into_iter());
                turn += 1;
                pool.empty_caches(turn.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56);
                if done {
                    return;
                }
                std::thread::yield_now();
            }
        })
    };
    let callers: Vec<_> = (0..12)
        .map(|t| {
            let (pool, queue) = (std::sync::Arc::clone(&pool), queue.clone());
            std::thread::spawn(move || {
                let block = Overflow::Block {
                    timeout: Duration::from_secs(10),
                };
                for i in 0..20_000 {
                    let slot = if i % 3 == 0 {
                        pool.take(block).expect("a slot within 10 s")
                    } else {
                        match pool.take(Overflow::DropNewest) {
                            Ok(slot) => slot,
                            Err(_) => continue,
                        }
                    };
                    if (i + t) % 17 == 0 {
                        pool.give_back(this_thread(), slot);
                    } else {
                        queue.send(slot).unwrap();
                    }
                }
            })
        })
        .collect();
    for caller in callers {
        caller.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    flush.join().unwrap();
    let (free, caches) = pool.free_slots();
    assert!(pool.created() <= 1_000, "{}", pool.created());
    assert_eq!(free + caches.iter().sum::<usize>(), pool.created());
    // Every slot can be taken again, once.
    pool.empty_caches(u64::MAX);
    let all: Vec<Slot> = std::iter::from_fn(|| pool.take(Overflow::DropNewest).ok()).collect();
    assert_eq!(all.len(), 1_000);
}

#[test]
fn a_refused_events_slot_goes_back_without_allocating_a_bundle() {
    // Every bundle on the free list, none kept empty: a caller's refill then takes a whole
    // bundle, and the slot of an event it refuses must go back into the lane's bundle.
    let pool = warm_pool();
    while pool.empty().1.try_recv().is_ok() {}
    let slot = pool.take(Overflow::DropNewest).unwrap();
    assert_eq!(pool.free_slots().1[this_thread() % MAX_LANES], 3);
    pool.give_back(this_thread(), slot);
    assert_eq!(pool.free_slots(), (96, lane_holding(4)));
    assert!(pool.empty().1.is_empty(), "no bundle was made for the slot");
    // With an empty bundle kept, the slot goes back as a bundle of its own instead.
    let slot = pool.take(Overflow::DropNewest).unwrap();
    let slot2 = pool.take(Overflow::DropNewest).unwrap();
    pool.give_back(this_thread(), slot2);
    pool.keep_empty(Box::new(Vec::with_capacity(4)));
    pool.give_back(this_thread(), slot);
    assert_eq!(pool.free_slots(), (97, lane_holding(3)));
}

/// What `free_slots` says of the lanes when only this thread's holds `n`.
fn lane_holding(n: usize) -> Vec<usize> {
    let mut lanes = vec![0; MAX_LANES];
    lanes[this_thread() % MAX_LANES] = n;
    lanes
}

#[test]
fn callers_not_waiting_leave_the_free_list_to_those_who_wait() {
    let pool = warm_pool();
    let turn = pool.queue_up();
    assert!(turn.at_front());
    assert!(
        pool.try_take(this_thread()).is_none(),
        "taken ahead of a waiter"
    );
    let slot = pool
        .try_take_waiting(this_thread())
        .expect("the waiter's slot");
    drop(turn);
    let next = pool.try_take(this_thread()).expect("nobody waits now");
    pool.give_back_all([slot, next].into_iter());
    assert_eq!(pool.created(), 100);
}

#[test]
fn a_waiter_behind_the_front_gets_a_slot_once_those_ahead_leave() {
    let pool = warm_pool();
    let ahead: Vec<_> = (0..crate::turns::FRONT).map(|_| pool.queue_up()).collect();
    let behind = pool.queue_up();
    let wait = |turn| {
        pool.wait(
            turn,
            Duration::from_millis(30),
            || pool.try_take_waiting(this_thread()),
            || false,
        )
    };
    assert!(wait(&behind).is_none(), "taken ahead of the front");
    drop(ahead);
    let slot = wait(&behind).expect("at the front now");
    pool.give_back_all([slot].into_iter());
}
