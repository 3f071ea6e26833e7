//! Lanes: the queue, the free slots' caches (`slots.rs`) and the count of recorded events,
//! each split so that callers on different CPUs write different cache lines. A thread keeps to
//! one lane for its life (the lowest no live thread holds, see `Lane`). A pipeline's queue
//! has [`lanes_for`] of them, at most its `max_lanes` — by default one, because order is
//! kept only within a queue's lane, and a caller that is not an OS thread (an async task, a goroutine)
//! may make each call on another thread.
//!
//! Why: a cache line that two CPUs both write moves between them on each write. With one
//! queue, one free list and one count shared by every caller, four producers on 2 vCPUs
//! spent ~370 ns of CPU per typed event where one producer spends ~150, and so did four
//! bound to a single CPU (`hot_path` with `HOT_PATH_PIN=0`, which keeps producers from
//! running at once): the cost is callers running at the same time on different CPUs,
//! not the number of them. The floor of the design showed the same (53 → 225 ns an event)
//! and, with a lane per producer, none.
//!
//! Order: the events of one thread stay in order (one lane, first in, first out); events
//! of different threads have no order between them, as with any queue two threads race to.
//!
//! Memory: any one lane may hold the whole queue (a single thread can fill it), so each
//! lane's ring has `capacity` places. A lane's ring is allocated when a thread first uses
//! it, and the number of lanes keeps all rings together within [`RING_BUDGET`] (a single
//! lane, for the largest queues, takes its 32 bytes a place whatever the budget): 8 lanes up
//! to a capacity of 32 768 events (the default is 10 000: 32 bytes a place and lane, 2.6 MB
//! with all 8 lanes in use), 4 up to 65 536, 2 up to 131 072, 1 lane (the plain shared
//! queue) from 131 073. The free slots and the count of recorded events always have
//! [`MAX_LANES`] lanes (`slots.rs`), whatever the queue's.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender, bounded};
use crossbeam_utils::CachePadded;

use crate::slots::Slot;

/// The most lanes a pipeline has.
pub(crate) const MAX_LANES: usize = 8;

/// Bytes all of a pipeline's rings may take together.
pub(crate) const RING_BUDGET: usize = 8 << 20;

/// Bytes one place of a lane's ring takes: a slot and a channel's stamp.
const PLACE_BYTES: usize = std::mem::size_of::<Slot>() + std::mem::size_of::<usize>();

/// The lanes a live thread holds, a bit each.
static HELD: AtomicU64 = AtomicU64::new(0);

/// Where threads that find every lane held go next, in turn.
static NEXT_SHARED: AtomicUsize = AtomicUsize::new(0);

/// A thread's lane: the lowest one no live thread holds, given back when the thread exits
/// (so a pool's new threads take over the lanes, and the free slots, of the threads they
/// replace); with every lane held, one shared with other threads, in turn.
struct Lane {
    lane: usize,
    held: bool,
}

impl Lane {
    fn claim() -> Self {
        let mut held = HELD.load(Ordering::Relaxed);
        loop {
            let lane = (!held).trailing_zeros() as usize;
            if lane >= MAX_LANES {
                let lane = NEXT_SHARED.fetch_add(1, Ordering::Relaxed) % MAX_LANES;
                return Lane { lane, held: false };
            }
            match HELD.compare_exchange_weak(
                held,
                held | 1 << lane,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Lane { lane, held: true },
                Err(now) => held = now,
            }
        }
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        if self.held {
            // A fork after this must not count the lane held (see `before_fork`).
            let _ = HOLDS_LANE.try_with(|holds| holds.set(false));
            HELD.fetch_and(!(1 << self.lane), Ordering::Relaxed);
        }
    }
}

thread_local! {
    /// This thread's lane once claimed (`usize::MAX` before): read on every call, so a
    /// plain value without a destructor, which the compiler reads in one instruction.
    static LANE: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Whether this thread holds `LANE` (not one shared in turn), for [`before_fork`]: a
    /// plain value without a destructor, readable whenever the thread runs.
    static HOLDS_LANE: Cell<bool> = const { Cell::new(false) };
    /// Holds the lane and gives it back when the thread exits.
    static HOLDER: Lane = Lane::claim();
}

/// How many lanes a queue of `capacity` events gets: as many as [`RING_BUDGET`] pays for,
/// a power of two from 1 to [`MAX_LANES`] (a lane is a thread's lane masked).
///
/// ```ignore
/// assert_eq!(lanes_for(10_000), 8);
/// assert_eq!(lanes_for(50_000), 4);
/// assert_eq!(lanes_for(1_000_000), 1);
/// ```
pub(crate) fn lanes_for(capacity: usize) -> usize {
    let lanes = (RING_BUDGET / PLACE_BYTES.saturating_mul(capacity.max(1))).clamp(1, MAX_LANES);
    1 << lanes.ilog2()
}

/// This thread's lane among [`MAX_LANES`] (a pipeline with fewer masks it: their number is
/// a power of two). Read once a call and handed to the pool, the count and the queue.
#[inline]
pub(crate) fn this_thread() -> usize {
    let lane = LANE.get();
    if lane != usize::MAX {
        return lane;
    }
    claim_for_this_thread()
}

#[cold]
fn claim_for_this_thread() -> usize {
    // A thread-local destroyed already (a record from another thread-local's destructor):
    // lane 0, unheld.
    let (lane, held) = HOLDER
        .try_with(|holder| (holder.lane, holder.held))
        .unwrap_or((0, false));
    LANE.set(lane);
    HOLDS_LANE.set(held);
    lane
}

/// The lanes a `fork()` child will hold, worked out by [`before_fork`] in the parent.
static HELD_IN_CHILD: AtomicU64 = AtomicU64::new(0);

/// In the parent, just before a `fork()` (its `pthread_atfork` prepare handler, on the
/// forking thread, where touching thread-locals is safe): the child's one thread will hold
/// this thread's lane and no other.
pub(crate) fn before_fork() {
    let lane = LANE.try_with(Cell::get).unwrap_or(usize::MAX);
    let held = HOLDS_LANE.try_with(Cell::get).unwrap_or(false);
    HELD_IN_CHILD.store(held_after_fork(lane, held), Ordering::Relaxed);
}

/// In a `fork()` child (its `pthread_atfork` child handler): only the thread that forked
/// lives on, so only its lane is held. The other threads' lanes would otherwise stay held
/// for ever (their destructors never run in the child), and the child's threads would share
/// lanes they need not. Async-signal-safe: an atomic load and store.
pub(crate) fn after_fork() {
    HELD.store(HELD_IN_CHILD.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// The lanes held in a `fork()` child whose one thread has `lane`, `held` or not.
fn held_after_fork(lane: usize, held: bool) -> u64 {
    if held && lane < MAX_LANES {
        1 << lane
    } else {
        0
    }
}

/// A count kept per lane and summed on read: each caller adds to its own lane's line.
#[derive(Debug)]
pub(crate) struct Striped {
    lanes: Box<[CachePadded<AtomicU64>]>,
}

impl Striped {
    /// A count over `lanes` lanes (a power of two up to [`MAX_LANES`]).
    pub(crate) fn new(lanes: usize) -> Self {
        debug_assert!(lanes.is_power_of_two());
        Striped {
            lanes: (0..lanes.clamp(1, MAX_LANES))
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
        }
    }

    /// Adds `n` on `lane` (a thread's, see [`this_thread`]); returns that lane's new value
    /// (not the total).
    #[inline]
    pub(crate) fn add(&self, lane: usize, n: u64) -> u64 {
        let lane = &self.lanes[lane & (self.lanes.len() - 1)];
        lane.fetch_add(n, Ordering::SeqCst).wrapping_add(n)
    }

    /// Adds `n` on the first lane, for a thread that holds none (the flush thread).
    pub(crate) fn add_unlaned(&self, n: u64) {
        self.lanes[0].fetch_add(n, Ordering::SeqCst);
    }

    /// Takes back `n` that [`add`](Self::add) added on `lane` (an event withdrawn).
    pub(crate) fn sub(&self, lane: usize, n: u64) {
        let lane = &self.lanes[lane & (self.lanes.len() - 1)];
        lane.fetch_sub(n, Ordering::SeqCst);
    }

    /// Each lane's count (for telling which lanes record).
    pub(crate) fn lanes(&self) -> impl Iterator<Item = u64> + '_ {
        self.lanes.iter().map(|lane| lane.load(Ordering::Relaxed))
    }

    /// The total, every lane read with `SeqCst` (each lane only grows but for [`sub`](Self::sub)
    /// right after an [`add`](Self::add), so a sum read after an event was counted covers it).
    pub(crate) fn sum(&self) -> u64 {
        self.lanes.iter().fold(0u64, |sum, lane| {
            sum.wrapping_add(lane.load(Ordering::SeqCst))
        })
    }
}

impl Default for Striped {
    fn default() -> Self {
        Striped::new(1)
    }
}

type Ring = (Sender<Slot>, Receiver<Slot>);

/// The bounded queue from callers to the flush thread: a ring per lane.
#[derive(Debug)]
pub(crate) struct Queue {
    lanes: Box<[CachePadded<OnceLock<Ring>>]>,
    capacity: usize,
}

impl Queue {
    /// A queue of `capacity` events in `lanes` lanes (a power of two up to [`MAX_LANES`]).
    pub(crate) fn new(capacity: usize, lanes: usize) -> Self {
        debug_assert!(lanes.is_power_of_two());
        Queue {
            lanes: (0..lanes.clamp(1, MAX_LANES))
                .map(|_| CachePadded::new(OnceLock::new()))
                .collect(),
            capacity: capacity.max(1),
        }
    }

    /// `lane`'s ring (within `lanes()`), made on its first use: a load and a branch after.
    #[inline(always)]
    fn ring(&self, lane: usize) -> &Ring {
        match self.lanes[lane].get() {
            Some(ring) => ring,
            None => self.make_ring(lane),
        }
    }

    #[cold]
    #[inline(never)]
    fn make_ring(&self, lane: usize) -> &Ring {
        self.lanes[lane].get_or_init(|| bounded(self.capacity))
    }

    /// Queues `slot` on `lane` (a thread's, see [`this_thread`]); gives it back if that
    /// ring is full (it cannot be while no more slots than `capacity` exist).
    #[inline]
    pub(crate) fn push(&self, lane: usize, slot: Slot) -> Result<(), Slot> {
        let lane = lane & (self.lanes.len() - 1);
        self.ring(lane).0.try_send(slot).map_err(|e| e.into_inner())
    }

    /// The next event for the flush thread, from the lane `cursor` names, or the next lane
    /// that has one (`cursor` moves there).
    #[inline]
    pub(crate) fn pop(&self, cursor: &mut usize) -> Option<Slot> {
        let n = self.lanes.len();
        for _ in 0..n {
            *cursor &= n - 1;
            if let Some(slot) = self.pop_from(*cursor) {
                return Some(slot);
            }
            *cursor += 1;
        }
        None
    }

    /// The oldest event of one lane.
    pub(crate) fn pop_from(&self, lane: usize) -> Option<Slot> {
        self.lanes.get(lane)?.get()?.1.try_recv().ok()
    }

    /// The oldest event of this thread's lane or, if it has none, of the next lane that has
    /// one (overflow `DropOldest`).
    pub(crate) fn pop_oldest(&self) -> Option<Slot> {
        let mut cursor = this_thread();
        self.pop(&mut cursor)
    }

    /// Events queued in each lane (`lanes()` of them), for moving a snapshot of the queue.
    pub(crate) fn lens(&self) -> impl Iterator<Item = usize> + '_ {
        self.lanes
            .iter()
            .map(|lane| lane.get().map_or(0, |ring| ring.1.len()))
    }

    /// Events queued in all lanes.
    pub(crate) fn len(&self) -> usize {
        self.lens().sum()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(unix)]
    #[allow(unsafe_code)]
    fn in_a_real_fork_child_only_the_forking_threads_lane_is_held() {
        crate::fork::generation(); // registers the fork handlers
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (tell, told) = std::sync::mpsc::channel();
        let other = std::thread::spawn(move || {
            let _ = tell.send(this_thread());
            let _ = wait.recv();
        });
        let theirs = told.recv().unwrap();
        let mine = this_thread();
        let expected = if HOLDS_LANE.with(Cell::get) {
            1 << mine
        } else {
            0
        };
        // Another thread's lane is held across the fork (unless every lane was taken by
        // the other tests' threads, when both share lanes and the check is weaker).
        assert!(theirs == mine || HELD.load(Ordering::Relaxed) & (1 << theirs) != 0);
        // Safety: the child only loads an atomic and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = i32::from(HELD.load(Ordering::Relaxed) != expected);
            // Safety: ends the child at once, as a forked child must.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // Safety: waits for the child just forked; `status` outlives the call.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        let _ = release.send(());
        other.join().unwrap();
        assert!(libc::WIFEXITED(status), "the child did not exit: {status}");
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "the child held other lanes too"
        );
    }

    #[test]
    fn a_fork_child_holds_only_the_lane_of_the_thread_that_forked() {
        assert_eq!(held_after_fork(3, true), 1 << 3);
        assert_eq!(
            held_after_fork(3, false),
            0,
            "a lane shared in turn is nobody's"
        );
        assert_eq!(held_after_fork(usize::MAX, false), 0, "no lane claimed");
    }

    #[test]
    fn lanes_fit_the_ring_budget() {
        assert_eq!(PLACE_BYTES, 32);
        assert_eq!(lanes_for(10_000), 8);
        assert_eq!(lanes_for(32_768), 8);
        assert_eq!(lanes_for(32_769), 4);
        assert_eq!(lanes_for(65_536), 4);
        assert_eq!(lanes_for(65_537), 2);
        assert_eq!(lanes_for(131_072), 2);
        assert_eq!(lanes_for(131_073), 1);
        assert_eq!(lanes_for(usize::MAX), 1);
        assert_eq!(lanes_for(0), 8);
        for capacity in [1, 100, 10_000, 20_000, 50_000, 100_000] {
            let lanes = lanes_for(capacity);
            assert!(lanes.is_power_of_two());
            assert!(lanes == 1 || lanes * capacity * PLACE_BYTES <= RING_BUDGET);
        }
    }

    #[test]
    fn one_thread_keeps_its_order_and_may_fill_the_whole_queue() {
        let q = Queue::new(100, 8);
        for i in 0..100u8 {
            q.push(this_thread(), Slot::from(&[i][..])).unwrap();
        }
        assert!(
            q.push(this_thread(), Slot::from(&[100][..])).is_err(),
            "a ring holds `capacity` events"
        );
        assert_eq!(q.len(), 100);
        let mut cursor = 0;
        let got: Vec<u8> = std::iter::from_fn(|| q.pop(&mut cursor))
            .map(|s| s[0])
            .collect();
        assert_eq!(got, (0..100).collect::<Vec<u8>>());
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn each_thread_keeps_its_order() {
        let q = std::sync::Arc::new(Queue::new(1_000, 4));
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..100u8 {
                        q.push(this_thread(), Slot::from(&[t, i][..])).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut cursor = 0;
        let mut last = [None::<u8>; 4];
        let mut n = 0;
        while let Some(s) = q.pop(&mut cursor) {
            let (t, i) = (s[0] as usize, s[1]);
            assert!(last[t].is_none_or(|l| l < i), "thread {t} out of order");
            last[t] = Some(i);
            n += 1;
        }
        assert_eq!(n, 400);
    }

    #[test]
    fn drop_oldest_takes_from_this_threads_lane_first() {
        let q = std::sync::Arc::new(Queue::new(10, 8));
        let other = q.clone();
        let their_lane = std::thread::spawn(move || {
            other
                .push(this_thread(), Slot::from(&b"theirs"[..]))
                .unwrap();
            this_thread() % 8
        })
        .join()
        .unwrap();
        q.push(this_thread(), Slot::from(&b"mine"[..])).unwrap();
        let first = q.pop_oldest().unwrap();
        // Lanes are handed out in turn to every thread of the test run: the two may share one.
        if their_lane != this_thread() % 8 {
            assert_eq!(first.as_slice(), b"mine");
        }
        assert!(q.pop_oldest().is_some());
        assert!(q.pop_oldest().is_none());
    }

    #[test]
    fn striped_counts_sum_over_threads() {
        let c = std::sync::Arc::new(Striped::new(4));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.add(this_thread(), 1);
                    }
                    c.sub(this_thread(), 10);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.sum(), 6 * 990);
    }
}
