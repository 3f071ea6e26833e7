//! Turns for the callers that wait for a free slot (overflow `Block`): oldest first.
//!
//! Slots come back a batch at a time. Without turns, whoever looked first when they came
//! back took them: a caller that was not waiting at all, or a waiter woken early in the
//! chain, while a waiter woken late found none left and went to the back of the queue
//! again. 64 goroutines recording through one pipeline on 2 vCPUs saw calls time out after
//! the 30 s block timeout while the other goroutines recorded; 64 Rust threads behind a
//! sink that is the bottleneck saw single calls wait 1.3–2 s in a 4 s run.
//!
//! So a caller that must wait takes a ticket ([`Turns::queue_up`]) and only the [`FRONT`]
//! oldest tickets may take free slots; callers that are not waiting leave the free list to
//! them while any wait (`slots.rs`). A front of several, not one: a waiter the scheduler
//! has not run yet does not hold up the others, and each one woken takes a bundle of slots.
//! A waiter is woken by its own ticket (a parked thread's token in `parking_lot_core`), so
//! slots coming back wake the front, not every waiter.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use parking_lot_core::{DEFAULT_UNPARK_TOKEN, FilterOp, ParkToken};

/// How many of the oldest waiters may take free slots.
pub(crate) const FRONT: usize = 8;

/// `front` while fewer than [`FRONT`] wait: every waiter is at the front.
const EVERYONE: u64 = u64::MAX;

/// The waiters of one slot pool, in the order they came.
#[derive(Debug)]
pub(crate) struct Turns {
    queue: Mutex<Queue>,
    /// The newest ticket at the front (the [`FRONT`]-th oldest waiting), or [`EVERYONE`].
    /// Its address is the key the waiters park on: no lock of `parking_lot` has it.
    front: AtomicU64,
    /// Callers waiting: read by every caller whose lane's bundle runs out.
    waiting: AtomicUsize,
    /// Wake-ups of the front so far (see [`wakes`](Self::wakes)).
    wakes: AtomicU64,
}

#[derive(Debug)]
struct Queue {
    next: u64,
    /// The tickets of the callers waiting, oldest first.
    tickets: Vec<u64>,
}

impl Default for Turns {
    fn default() -> Self {
        Turns {
            // Room for a few dozen waiters from the start: a wait allocates only when more
            // callers wait at once than ever before.
            queue: Mutex::new(Queue {
                next: 0,
                tickets: Vec::with_capacity(64),
            }),
            front: AtomicU64::new(EVERYONE),
            waiting: AtomicUsize::new(0),
            wakes: AtomicU64::new(0),
        }
    }
}

impl Turns {
    /// Takes a ticket, at the back of the queue, for a wait that ends when the [`Turn`] is
    /// dropped (so a binding that waits in slices keeps its place between them).
    pub(crate) fn queue_up(&self) -> Turn<'_> {
        let mut queue = self.queue.lock();
        let ticket = queue.next;
        queue.next += 1;
        queue.tickets.push(ticket);
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.front.store(queue.front(), Ordering::SeqCst);
        Turn {
            turns: self,
            ticket,
        }
    }

    /// Whether any caller waits.
    #[inline]
    pub(crate) fn anyone_waiting(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    fn key(&self) -> usize {
        std::ptr::from_ref(&self.front) as usize
    }

    /// Wakes the waiters at the front, to look for a slot.
    pub(crate) fn wake_front(&self) {
        if self.anyone_waiting() {
            let front = &self.front;
            self.wake_if(|ticket| at_front(ticket, front.load(Ordering::SeqCst)));
        }
    }

    /// How many wake-ups of the front there have been: a waiter reads it before it looks
    /// for a slot, and does not sleep if it changed since (a wake-up it was not yet
    /// asleep for; slots made free where its look had already been).
    pub(crate) fn wakes(&self) -> u64 {
        self.wakes.load(Ordering::SeqCst)
    }

    /// Wakes the parked waiters whose ticket `which` picks (`which` only reads atomics).
    fn wake_if(&self, which: impl Fn(u64) -> bool) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        // Safety: the key is the address of this pool's `front`, which no other primitive
        // parks on; the filter neither panics nor calls into `parking_lot`.
        #[allow(unsafe_code)]
        unsafe {
            parking_lot_core::unpark_filter(
                self.key(),
                |token| {
                    if which(token.0 as u64) {
                        FilterOp::Unpark
                    } else {
                        FilterOp::Skip
                    }
                },
                |_| DEFAULT_UNPARK_TOKEN,
            );
        }
    }

    /// Wakes every waiter (to see that the pipeline closed).
    pub(crate) fn wake_all(&self) {
        if !self.anyone_waiting() {
            return;
        }
        // Safety: as in `wake_front`.
        #[allow(unsafe_code)]
        unsafe {
            parking_lot_core::unpark_all(self.key(), DEFAULT_UNPARK_TOKEN);
        }
    }
}

impl Queue {
    fn front(&self) -> u64 {
        self.tickets.get(FRONT - 1).copied().unwrap_or(EVERYONE)
    }
}

fn at_front(ticket: u64, front: u64) -> bool {
    // A parked thread's token is a `usize`: on 32-bit targets the ticket is cut to its low
    // half, and compared by the distance (waiters' tickets are never 2^31 apart).
    front == EVERYONE || (front as usize).wrapping_sub(ticket as usize) as isize >= 0
}

/// A caller's place among the waiters, from [`Turns::queue_up`] until dropped.
#[derive(Debug)]
pub(crate) struct Turn<'a> {
    turns: &'a Turns,
    ticket: u64,
}

impl Turn<'_> {
    /// Whether this caller may take a free slot now.
    #[inline]
    pub(crate) fn at_front(&self) -> bool {
        at_front(self.ticket, self.turns.front.load(Ordering::SeqCst))
    }

    /// Sleeps until woken (by [`Turns::wake_front`] at the front, or [`Turns::wake_all`])
    /// or `until`, unless `ready` holds: it is asked under the lock the wakers take, so a
    /// slot made free after a look that found none either makes `ready` hold or wakes
    /// this caller. `ready` must only read atomics (it runs inside `parking_lot_core`).
    pub(crate) fn sleep(&self, until: Instant, ready: impl FnOnce(bool) -> bool) {
        let turns = self.turns;
        // Safety: as in `Turns::wake_front`; `ready` only reads atomics (its contract).
        #[allow(unsafe_code)]
        unsafe {
            parking_lot_core::park(
                turns.key(),
                || !ready(self.at_front()),
                || {},
                |_, _| {},
                ParkToken(self.ticket as usize),
                Some(until),
            );
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let turns = self.turns;
        let moved_up = {
            let mut queue = turns.queue.lock();
            let before = queue.front();
            if let Ok(at) = queue.tickets.binary_search(&self.ticket) {
                queue.tickets.remove(at);
            }
            let after = queue.front();
            turns.front.store(after, Ordering::SeqCst);
            turns.waiting.fetch_sub(1, Ordering::SeqCst);
            (after != EVERYONE && after != before).then_some(after)
        };
        // The waiter that has just reached the front may have slept through the wake-up
        // of the slots now free: it looks (and sleeps again if there are none).
        if let Some(ticket) = moved_up {
            turns.wake_if(|parked| parked as usize == ticket as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_waiters_are_at_the_front() {
        let turns = Turns::default();
        let waiting: Vec<Turn<'_>> = (0..FRONT + 2).map(|_| turns.queue_up()).collect();
        let front: Vec<bool> = waiting.iter().map(Turn::at_front).collect();
        assert_eq!(front.iter().filter(|&&f| f).count(), FRONT);
        assert!(front[..FRONT].iter().all(|&f| f));
        let mut waiting = waiting.into_iter();
        let first = waiting.next();
        let rest: Vec<Turn<'_>> = waiting.collect();
        assert!(!rest[FRONT - 1].at_front());
        drop(first);
        assert!(rest[FRONT - 1].at_front(), "one left: the next moves up");
        assert!(!rest[FRONT].at_front());
        drop(rest);
        assert!(!turns.anyone_waiting());
        assert!(turns.queue_up().at_front());
    }

    #[test]
    fn a_waiter_that_leaves_from_the_back_keeps_the_order() {
        let turns = Turns::default();
        let mut waiting: Vec<Turn<'_>> = (0..FRONT + 3).map(|_| turns.queue_up()).collect();
        waiting.remove(FRONT + 1); // timed out, say
        assert!(waiting[..FRONT].iter().all(Turn::at_front));
        assert!(!waiting[FRONT].at_front());
        waiting.remove(3);
        assert!(waiting[FRONT - 1].at_front());
        assert!(!waiting[FRONT].at_front());
    }

    /// How long a waiter queued behind `ahead` other waiters sleeps (for at most `wait`)
    /// while the front is woken every 10 ms.
    fn slept_behind(ahead: usize, wait: std::time::Duration) -> std::time::Duration {
        let turns = Turns::default();
        let ahead: Vec<Turn<'_>> = (0..ahead).map(|_| turns.queue_up()).collect();
        let slept = std::thread::scope(|s| {
            let sleeper = s.spawn(|| {
                let turn = turns.queue_up();
                let start = Instant::now();
                turn.sleep(start + wait, |_| false);
                start.elapsed()
            });
            // Again and again, in case a wake-up comes before it sleeps.
            while !sleeper.is_finished() {
                turns.wake_front();
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            sleeper.join().unwrap()
        });
        drop(ahead);
        slept
    }

    #[test]
    fn slots_coming_back_wake_the_front_and_not_those_behind_it() {
        use std::time::Duration;
        assert!(slept_behind(FRONT - 1, Duration::from_secs(60)) < Duration::from_secs(30));
        assert!(
            slept_behind(FRONT, Duration::from_millis(300)) >= Duration::from_millis(300),
            "woken behind the front"
        );
    }

    #[test]
    fn the_waiter_that_reaches_the_front_is_woken() {
        use std::time::Duration;
        let turns = Turns::default();
        let mut ahead: Vec<Turn<'_>> = (0..FRONT).map(|_| turns.queue_up()).collect();
        std::thread::scope(|s| {
            let behind = s.spawn(|| {
                let turn = turns.queue_up();
                let start = Instant::now();
                // At the front before it sleeps, it does not sleep; after, it is woken.
                turn.sleep(start + Duration::from_secs(60), |at_front| at_front);
                (start.elapsed(), turn.at_front())
            });
            while turns.waiting.load(Ordering::SeqCst) < FRONT + 1 {
                std::thread::yield_now();
            }
            std::thread::sleep(Duration::from_millis(20));
            ahead.remove(0);
            let (slept, at_front) = behind.join().unwrap();
            assert!(slept < Duration::from_secs(30) && at_front);
        });
    }
}
