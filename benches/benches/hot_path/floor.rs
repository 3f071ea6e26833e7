//! The floor of the design: copy an event into a pooled slot and queue it, with a
//! consumer that gives the slots back. Two forms: every producer sharing one free list and
//! one queue (as auditbuf's callers do), and a lane per producer, where no line is written
//! by two producers.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use crossbeam_utils::CachePadded;

use crate::{BATCH, Contender, QUEUE};

/// The floor: a slot from a free list, 300 B copied in, pushed on a bounded queue; the
/// consumer takes batches and gives the slots back — without reading them, or, in the
/// second form, copying each slot's bytes out first, as any consumer that does something
/// with the events does (auditbuf's flush thread renders them), so that they cross from the
/// producer's CPU to the consumer's.
pub struct Floor {
    name: &'static str,
    free: Receiver<Vec<u8>>,
    free_tx: Sender<Vec<u8>>,
    queue: Sender<Vec<u8>>,
    consumed: Arc<AtomicU64>,
    sent: AtomicU64,
    event: Vec<u8>,
    stop: Arc<AtomicBool>,
}

impl Floor {
    pub fn new(event: Vec<u8>, reading: bool) -> Self {
        let (free_tx, free) = bounded(QUEUE);
        let (queue, rx) = bounded::<Vec<u8>>(QUEUE);
        for _ in 0..QUEUE {
            let _ = free_tx.send(Vec::with_capacity(512));
        }
        let consumed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (free_tx, consumed, stop) = (free_tx.clone(), consumed.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut batch = Vec::with_capacity(BATCH);
                let mut copy: Vec<u8> = Vec::with_capacity(1024);
                let mut busy_at = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(slot) => batch.push(slot),
                            Err(_) => break,
                        }
                    }
                    if batch.is_empty() {
                        crate::idle_wait(busy_at);
                        continue;
                    }
                    busy_at = Instant::now();
                    consumed.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    for mut slot in batch.drain(..) {
                        if reading {
                            copy.clear();
                            copy.extend_from_slice(&slot);
                            std::hint::black_box(&copy);
                        }
                        slot.clear();
                        let _ = free_tx.send(slot);
                    }
                }
            });
        }
        Floor {
            name: if reading {
                "floor, its consumer reading the bytes"
            } else {
                "floor: copy 300 B into a pooled slot + queue"
            },
            free,
            free_tx,
            queue,
            consumed,
            sent: AtomicU64::new(0),
            event,
            stop,
        }
    }
}

impl Contender for Floor {
    fn name(&self) -> &'static str {
        self.name
    }
    fn call(&self) {
        let mut slot = match self.free.recv() {
            Ok(slot) => slot,
            Err(_) => return,
        };
        slot.extend_from_slice(&self.event);
        self.sent.fetch_add(1, Ordering::Relaxed);
        let _ = self.queue.send(slot);
    }
    fn drain(&self) -> u64 {
        while self.consumed.load(Ordering::Relaxed) < self.sent.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = &self.free_tx;
        self.consumed.load(Ordering::Relaxed)
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The floor with nothing written by two producers: each producer thread has a lane of its
/// own (a free list and a queue of `QUEUE / LANES` slots, and a count of what it sent), and
/// the consumer visits the lanes in turn. In the second form the lanes share one queue (each
/// slot tagged with its lane, to go back to its free list): what per-producer free lists
/// and counts gain without per-producer queues.
///
/// Lanes are handed to threads in turn, one for good (the benchmark's producer threads are
/// new each measurement); with more threads than [`LANES`], two share a lane.
pub struct Lanes {
    lanes: Vec<Lane>,
    /// The one queue of the second form.
    shared: Option<Sender<(usize, Vec<u8>)>>,
    next: AtomicUsize,
    consumed: Arc<AtomicU64>,
    event: Vec<u8>,
    stop: Arc<AtomicBool>,
}

const LANES: usize = 8;

struct Lane {
    free: Receiver<Vec<u8>>,
    queue: Sender<Vec<u8>>,
    sent: CachePadded<AtomicU64>,
}

thread_local! {
    static LANE: Cell<usize> = const { Cell::new(usize::MAX) };
}

impl Lanes {
    pub fn new(event: Vec<u8>, one_queue: bool) -> Self {
        let consumed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut lanes = Vec::new();
        let mut ends = Vec::new();
        for _ in 0..LANES {
            let (free_tx, free) = bounded(QUEUE / LANES);
            let (queue, rx) = bounded::<Vec<u8>>(QUEUE / LANES);
            for _ in 0..QUEUE / LANES {
                let _ = free_tx.send(Vec::with_capacity(512));
            }
            lanes.push(Lane {
                free,
                queue,
                sent: CachePadded::new(AtomicU64::new(0)),
            });
            ends.push((rx, free_tx));
        }
        let (shared_tx, shared_rx) = bounded::<(usize, Vec<u8>)>(QUEUE);
        {
            let (consumed, stop) = (consumed.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut busy_at = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let mut got = 0;
                    for _ in 0..BATCH {
                        let Ok((lane, mut slot)) = shared_rx.try_recv() else {
                            break;
                        };
                        slot.clear();
                        let _ = ends[lane].1.send(slot);
                        got += 1;
                    }
                    for (rx, free_tx) in &ends {
                        for _ in 0..BATCH {
                            let Ok(mut slot) = rx.try_recv() else { break };
                            slot.clear();
                            let _ = free_tx.send(slot);
                            got += 1;
                        }
                    }
                    if got == 0 {
                        crate::idle_wait(busy_at);
                        continue;
                    }
                    busy_at = Instant::now();
                    consumed.fetch_add(got, Ordering::Relaxed);
                }
            });
        }
        Lanes {
            lanes,
            shared: one_queue.then_some(shared_tx),
            next: AtomicUsize::new(0),
            consumed,
            event,
            stop,
        }
    }
}

impl Contender for Lanes {
    fn name(&self) -> &'static str {
        if self.shared.is_some() {
            "floor, free list per producer, one queue"
        } else {
            "floor, a lane per producer"
        }
    }
    fn call(&self) {
        let lane = LANE.with(|l| {
            if l.get() == usize::MAX {
                l.set(self.next.fetch_add(1, Ordering::Relaxed) % LANES);
            }
            l.get()
        });
        let index = lane;
        let lane = &self.lanes[lane];
        let mut slot = match lane.free.recv() {
            Ok(slot) => slot,
            Err(_) => return,
        };
        slot.extend_from_slice(&self.event);
        lane.sent.fetch_add(1, Ordering::Relaxed);
        match &self.shared {
            Some(queue) => {
                let _ = queue.send((index, slot));
            }
            None => {
                let _ = lane.queue.send(slot);
            }
        }
    }
    fn drain(&self) -> u64 {
        let sent = || {
            self.lanes
                .iter()
                .map(|l| l.sent.load(Ordering::Relaxed))
                .sum::<u64>()
        };
        while self.consumed.load(Ordering::Relaxed) < sent() {
            std::thread::sleep(Duration::from_micros(200));
        }
        self.consumed.load(Ordering::Relaxed)
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
