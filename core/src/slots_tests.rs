//! Tests of the slot pool (`slots.rs`): creation, shrinking, trimming, lanes and shares.

use super::*;
use crate::lanes::this_thread;
use crate::{Error, Overflow};

#[test]
fn creates_lazily_up_to_capacity_then_applies_the_policy() {
    for lanes in [1, 4] {
        let pool = SlotPool::new(2, 16, 64, 1 << 20, lanes);
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
}

#[test]
fn grown_slots_shrink_back() {
    for lanes in [1, 4] {
        let pool = SlotPool::new(1, 16, 64, 1 << 20, lanes);
        let mut s = pool.take(Overflow::DropNewest).unwrap();
        s.extend_from_slice(&[0; 1000]);
        pool.give_back(s);
        let s = pool.take(Overflow::DropNewest).unwrap();
        assert!(s.is_empty());
        assert!(s.capacity() <= 64, "{}", s.capacity());
    }
}

#[test]
fn free_slots_keep_a_bounded_total() {
    // 100 slots grown to 1000 bytes each, but only ~3000 extra bytes may be kept.
    for lanes in [1, 4] {
        let pool = SlotPool::new(100, 16, 4096, 3000, lanes);
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
}

#[test]
fn trimming_frees_idle_slots_which_come_back_on_demand() {
    for lanes in [1, 4] {
        let pool = SlotPool::new(10, 16, 64, 1 << 20, lanes);
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

#[test]
fn an_idle_lane_gives_up_its_slots() {
    let pool = std::sync::Arc::new(SlotPool::new(40, 16, 64, 1 << 20, 4));
    let all: Vec<Slot> = (0..40)
        .map(|_| pool.take(Overflow::DropNewest).unwrap())
        .collect();
    pool.give_back_all(all.into_iter());
    let my_lane = this_thread() % 4;
    // The flush thread saw none of this lane's events lately.
    pool.mark_idle(1 << my_lane);
    let other = std::sync::Arc::clone(&pool);
    let (lane, dropping, waiting) = std::thread::spawn(move || {
        let dropping: Vec<Slot> =
            std::iter::from_fn(|| other.take(Overflow::DropNewest).ok()).collect();
        let block = Overflow::Block {
            timeout: Duration::from_millis(1),
        };
        let waiting: Vec<Slot> = std::iter::from_fn(|| other.take(block).ok()).collect();
        assert!(
            dropping
                .iter()
                .chain(&waiting)
                .all(|s| s.lane() == this_thread() % 4)
        );
        (this_thread() % 4, dropping.len(), waiting.len())
    })
    .join()
    .unwrap();
    // Lanes are handed out to every thread of the test run in turn: the two may share one.
    if lane == my_lane {
        assert_eq!((dropping, waiting), (40, 0));
    } else {
        // The other lane is idle: it gives up every slot.
        assert_eq!((dropping, waiting), (40, 0));
    }
    assert_eq!(pool.created(), 40);
}

#[test]
fn a_lane_over_its_share_gives_up_free_slots_and_one_at_its_share_keeps_them() {
    let pool = std::sync::Arc::new(SlotPool::new(4, 16, 64, 1 << 20, 4));
    let other = std::sync::Arc::clone(&pool);
    let (their_lane, mut theirs) = std::thread::spawn(move || {
        let slots: Vec<Slot> = (0..4)
            .map(|_| other.take(Overflow::DropNewest).unwrap())
            .collect();
        (this_thread() % 4, slots)
    })
    .join()
    .unwrap();
    if their_lane == this_thread() % 4 {
        return; // Lanes are handed out to every thread of the test run: one lane here.
    }
    // Two of their four come back; two are still in use (queued, say).
    pool.give_back_all(theirs.drain(2..));
    // Alone, their lane's share is every slot: it keeps its free ones.
    assert!(matches!(pool.take(Overflow::DropNewest), Err(Error::Full)));
    // The flush thread counts two lanes recording: a share of 2 each.
    pool.mark_idle(0);
    let mine: Vec<Slot> = std::iter::from_fn(|| pool.take(Overflow::DropNewest).ok()).collect();
    assert_eq!(mine.len(), 2);
    assert!(mine.iter().all(|s| s.lane() == this_thread() % 4));
    // Now each lane is at its share: theirs keeps what comes back.
    pool.give_back(theirs.pop().unwrap());
    assert!(matches!(pool.take(Overflow::DropNewest), Err(Error::Full)));
}

#[test]
fn slots_go_back_to_the_lane_that_took_them() {
    let pool = std::sync::Arc::new(SlotPool::new(10, 16, 64, 1 << 20, 4));
    let other = std::sync::Arc::clone(&pool);
    let theirs = std::thread::spawn(move || {
        let slot = other.take(Overflow::DropNewest).unwrap();
        assert_eq!(slot.lane(), this_thread() % 4);
        slot
    })
    .join()
    .unwrap();
    let lane = theirs.lane as usize;
    pool.give_back(theirs);
    let (_, rx) = pool.free[lane].ring.get().unwrap();
    assert_eq!(rx.len(), 1);
    assert_eq!(pool.trim(0), 1);
    assert_eq!(pool.created(), 0);
}
