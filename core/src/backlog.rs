//! The backlog: events that left the queue but must still go before everything queued —
//! a batch the store refused, the event that did not fit the last batch's byte limit — and
//! the one way waiting events move into the backing store.
//!
//! The backlog counts as queued: whoever takes from it takes in order, the backlog first,
//! then the queue. Its length is readable without the lock (the flush thread polls it).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Mutex, MutexGuard};

use crate::encode::capture::finish;
use crate::shared::Shared;
use crate::slots::Slot;
use crate::{Error, Store};

#[derive(Debug, Default)]
pub(crate) struct Backlog {
    slots: Mutex<VecDeque<Slot>>,
    len: AtomicUsize,
}

impl Backlog {
    /// Events waiting here.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Puts `slots` back at the front, in order: they were taken before everything here.
    pub(crate) fn put_front(&self, slots: impl DoubleEndedIterator<Item = Slot>) {
        let mut guard = self.lock();
        for slot in slots.rev() {
            guard.slots.push_front(slot);
        }
    }

    /// The backlog, locked; its length is published when the guard is dropped.
    pub(crate) fn lock(&self) -> BacklogGuard<'_> {
        BacklogGuard {
            slots: self.slots.lock(),
            len: &self.len,
        }
    }

    /// Takes everything, oldest first.
    pub(crate) fn take_all(&self) -> VecDeque<Slot> {
        std::mem::take(&mut *self.lock().slots)
    }
}

pub(crate) struct BacklogGuard<'a> {
    slots: MutexGuard<'a, VecDeque<Slot>>,
    len: &'a AtomicUsize,
}

impl BacklogGuard<'_> {
    pub(crate) fn pop_front(&mut self) -> Option<Slot> {
        self.slots.pop_front()
    }
}

impl Drop for BacklogGuard<'_> {
    fn drop(&mut self) {
        self.len.store(self.slots.len(), Ordering::Relaxed);
    }
}

/// Moves what waits outside the store into it, oldest first: the backlog, then what the
/// queue holds when the move starts, lane by lane (each lane's events in order) — not what
/// producers add meanwhile, so a move under load ends. `store` is the locked store, so
/// nothing can be appended between two chunks.
///
/// A chunk the store refuses is halved down to one event; what it still refuses goes back
/// to the front of the backlog, in order, and the refusal is returned. Counted in `moved`
/// chunk by chunk, under the store lock, so the flush thread never drains an event that is
/// not counted yet. Returns how many events moved.
pub(crate) fn move_into_store(
    shared: &Shared,
    store: &mut dyn Store,
    max_chunk: usize,
) -> Result<u64, Error> {
    let max_chunk = max_chunk.max(1);
    let wall = shared.wall_clock();
    let mut scratch = Vec::new();
    let mut earlier = shared.backlog.take_all();
    let queue = &shared.queue;
    let mut queued: Vec<usize> = queue.lens().collect();
    let mut lane = 0;
    let mut chunk: Vec<Slot> = Vec::new();
    let mut total = 0u64;
    loop {
        while chunk.len() < max_chunk {
            let next = match earlier.pop_front() {
                Some(slot) => Some(slot),
                None => loop {
                    match queued.get_mut(lane) {
                        None => break None,
                        Some(0) => lane += 1,
                        Some(left) => match queue.pop_from(lane) {
                            // The flush thread took the rest of this lane meanwhile.
                            None => *left = 0,
                            Some(slot) => {
                                *left -= 1;
                                break Some(slot);
                            }
                        },
                    }
                },
            };
            match next {
                Some(slot) => chunk.push(slot),
                None => break,
            }
        }
        if chunk.is_empty() {
            return Ok(total);
        }
        // Stores hold JSON: captured events are rendered first.
        for slot in &mut chunk {
            finish(slot, &wall, &mut scratch);
        }
        let (mut done, mut piece) = (0, chunk.len());
        let mut refusal = None;
        while done < chunk.len() {
            let end = (done + piece).min(chunk.len());
            let events: Vec<&[u8]> = chunk[done..end].iter().map(|s| s.as_slice()).collect();
            match store.append(&events) {
                Ok(()) => {
                    let n = (end - done) as u64;
                    shared.counters.moved.fetch_add(n, Ordering::SeqCst);
                    total += n;
                    done = end;
                }
                Err(_) if end - done > 1 => piece = (end - done) / 2,
                Err(e) => {
                    refusal = Some(e);
                    break;
                }
            }
        }
        let rest = chunk.split_off(done);
        shared.pool.give_back_all(chunk.drain(..));
        if let Some(e) = refusal {
            shared.backlog.put_front(rest.into_iter().chain(earlier));
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_back_events_come_first_and_in_order() {
        let backlog = Backlog::default();
        backlog.put_front([b"c", b"d"].map(|e| Slot::from(&e[..])).into_iter());
        backlog.put_front([b"a", b"b"].map(|e| Slot::from(&e[..])).into_iter());
        assert_eq!(backlog.len(), 4);
        let mut guard = backlog.lock();
        assert_eq!(
            guard.pop_front().as_deref().map(Vec::as_slice),
            Some(&b"a"[..])
        );
        drop(guard);
        assert_eq!(backlog.len(), 3);
        let rest: Vec<Vec<u8>> = backlog.take_all().iter().map(|s| s.to_vec()).collect();
        assert_eq!(rest, [b"b", b"c", b"d"]);
        assert_eq!(backlog.len(), 0);
    }
}
