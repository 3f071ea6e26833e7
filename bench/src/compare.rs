//! The peers auditbuf is compared with, under the same scenario: tracing-appender's
//! `non_blocking` writer, and a naive `Mutex<VecDeque<Vec<u8>>>` drained by a sender thread.
//! Both are handed the event already encoded (auditbuf encodes it, reads the clock and checks
//! `event_data` inside its call), and both send through [`Poster`].
//!
//! Overflow, mapped as closely as each allows: the naive queue turns the newest away, evicts
//! the oldest or waits with a timeout, like auditbuf (it has no store, so `spill` turns the
//! newest away). tracing-appender has two modes: lossy (its default; the newest line is
//! dropped when its channel is full, and the caller is not told) for every policy but
//! `block`, and lossless (the caller waits, with no timeout) for `block`. Its channel holds
//! `--queue-capacity` lines, the same bound as the others' queues.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};

use crate::args::OverflowArg;
use crate::event::{self, EventParts};
use crate::poster::{BATCH, Poster, PosterCounts};
use crate::target::{Accounting, Counts, Finish, Refusal, Target};

type LastError = Arc<Mutex<Option<String>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Producer `index`'s event, encoded the way auditbuf encodes it.
fn encoded(index: usize, pad: usize) -> Vec<u8> {
    // `main` encoded this event once before any run started; failing now is not expected,
    // and an empty event would only show as a wrong size.
    event::encode(&EventParts::new(index, pad)).unwrap_or_default()
}

/// Waits until `done` or the deadline; true if done.
fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

// ---------------------------------------------------------------------------------------
// The naive queue.

#[derive(Default)]
struct NaiveState {
    queue: VecDeque<Vec<u8>>,
    accepted: u64,
    rejected_full: u64,
    rejected_timeout: u64,
    dropped_oldest: u64,
    dropped_shutdown: u64,
    /// Set by `finish`: the sender stops at this time.
    deadline: Option<Instant>,
}

struct NaiveShared {
    state: Mutex<NaiveState>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity: usize,
    closing: AtomicBool,
}

/// A `Mutex<VecDeque<Vec<u8>>>` with a condition variable, drained by one sender thread.
pub struct Naive {
    shared: Arc<NaiveShared>,
    policy: OverflowArg,
    pad: usize,
    counts: Arc<PosterCounts>,
    last_error: LastError,
    sender: Mutex<Option<JoinHandle<()>>>,
}

impl Naive {
    /// A queue of `capacity` events whose sender posts to `url`.
    pub fn new(
        capacity: usize,
        policy: OverflowArg,
        url: &str,
        pad: usize,
    ) -> Result<Naive, String> {
        let shared = Arc::new(NaiveShared {
            state: Mutex::new(NaiveState::default()),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity,
            closing: AtomicBool::new(false),
        });
        let mut poster = Poster::new(url)?;
        let (counts, last_error) = (poster.counts(), poster.last_error());
        let sender = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("naive-sender".to_owned())
                .spawn(move || drain(&shared, &mut poster))
                .map_err(|e| format!("cannot start the naive queue's thread: {e}"))?
        };
        Ok(Naive {
            shared,
            policy,
            pad,
            counts,
            last_error,
            sender: Mutex::new(Some(sender)),
        })
    }
}

/// The sender thread: takes up to a batch under the lock, posts it without the lock.
fn drain(shared: &NaiveShared, poster: &mut Poster) {
    loop {
        {
            let mut st = lock(&shared.state);
            while st.queue.is_empty() {
                if shared.closing.load(Ordering::SeqCst) {
                    return;
                }
                st = match shared
                    .not_empty
                    .wait_timeout(st, Duration::from_millis(100))
                {
                    Ok((g, _)) => g,
                    Err(p) => p.into_inner().0,
                };
            }
            if st.deadline.is_some_and(|d| Instant::now() >= d) {
                // Out of time: what is still queued is lost.
                st.dropped_shutdown += st.queue.len() as u64;
                st.queue.clear();
                return;
            }
            let n = st.queue.len().min(BATCH);
            for event in st.queue.drain(..n) {
                poster.add(event);
            }
        }
        shared.not_full.notify_all();
        poster.send();
    }
}

impl Target for Naive {
    type Payload = Vec<u8>;

    fn name(&self) -> &'static str {
        "naive"
    }

    fn payload(&self, index: usize) -> Vec<u8> {
        encoded(index, self.pad)
    }

    fn offer(&self, bytes: &mut Vec<u8>) -> Result<(), Refusal> {
        // The copy an application makes to hand its bytes over.
        let event = bytes.clone();
        let shared = &*self.shared;
        let mut st = lock(&shared.state);
        if st.queue.len() >= shared.capacity {
            match self.policy {
                OverflowArg::DropNewest | OverflowArg::Spill => {
                    st.rejected_full += 1;
                    return Err(Refusal::Full);
                }
                OverflowArg::DropOldest => {
                    st.queue.pop_front();
                    st.dropped_oldest += 1;
                }
                OverflowArg::Block(timeout) => {
                    st = match shared
                        .not_full
                        .wait_timeout_while(st, timeout, |s| s.queue.len() >= shared.capacity)
                    {
                        Ok((g, _)) => g,
                        Err(p) => p.into_inner().0,
                    };
                    if st.queue.len() >= shared.capacity {
                        st.rejected_timeout += 1;
                        return Err(Refusal::Timeout);
                    }
                }
            }
        }
        st.queue.push_back(event);
        st.accepted += 1;
        drop(st);
        shared.not_empty.notify_one();
        Ok(())
    }

    fn counts(&self, offered: u64) -> Counts {
        let st = lock(&self.shared.state);
        let c = &self.counts;
        Counts {
            offered,
            accepted: st.accepted,
            delivered: c.delivered.load(Ordering::SeqCst),
            failed: c.failed.load(Ordering::SeqCst),
            rejected_full: st.rejected_full,
            rejected_timeout: st.rejected_timeout,
            dropped_oldest: st.dropped_oldest,
            dropped_shutdown: st.dropped_shutdown,
            queued: st.queue.len() as u64,
            in_flight: c.in_flight.load(Ordering::SeqCst),
            ..Counts::default()
        }
    }

    fn finish(&self, offered: u64, timeout: Duration) -> Finish {
        let deadline = Instant::now() + timeout;
        lock(&self.shared.state).deadline = Some(deadline);
        self.shared.closing.store(true, Ordering::SeqCst);
        self.shared.not_empty.notify_all();
        let sender = lock(&self.sender).take();
        let completed = wait_until(deadline, || sender.as_ref().is_none_or(|s| s.is_finished()));
        if completed && let Some(sender) = sender {
            let _ = sender.join();
        }
        let mut counts = self.counts(offered);
        settle_leftovers(&mut counts);
        let accounting = Accounting::by_the_bench(&counts);
        let mut notes = vec![format!(
            "naive: {} requests sent; a failed batch is sent up to {} times, 100 ms apart, then given up, whatever the answer",
            crate::report::count(self.counts.sends.load(Ordering::SeqCst)),
            crate::poster::ATTEMPTS
        )];
        if self.policy == OverflowArg::Spill {
            notes.push("naive: no store, so spill turns the newest away".to_owned());
        }
        Finish {
            counts,
            completed,
            accounting,
            last_error: lock(&self.last_error).clone(),
            notes,
            ..Finish::default()
        }
    }
}

/// What a peer still held when its deadline passed is lost: counted as dropped at shutdown.
fn settle_leftovers(c: &mut Counts) {
    c.dropped_shutdown += c.queued + c.in_flight;
    c.queued = 0;
    c.in_flight = 0;
}

// ---------------------------------------------------------------------------------------
// tracing-appender.

/// The writer tracing-appender's worker thread writes each line to: batches them for the
/// poster (each `write` is one whole line, as the worker hands them over).
struct PostingWriter(Poster);

impl Write for PostingWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.0.add(line.to_vec());
        if self.0.is_full() {
            self.0.send();
        }
        Ok(line.len())
    }

    /// The worker flushes whenever its channel is empty: the partial batch goes out.
    fn flush(&mut self) -> io::Result<()> {
        self.0.send();
        Ok(())
    }
}

/// tracing-appender's `non_blocking` writer over the poster.
pub struct Tracing {
    writer: Mutex<Option<NonBlocking>>,
    guard: Mutex<Option<WorkerGuard>>,
    dropped: ErrorCounter,
    lossy: bool,
    policy: OverflowArg,
    pad: usize,
    counts: Arc<PosterCounts>,
    last_error: LastError,
    refused: AtomicU64,
}

impl Tracing {
    /// A non-blocking writer with room for `capacity` lines, posting to `url`.
    pub fn new(
        capacity: usize,
        policy: OverflowArg,
        url: &str,
        pad: usize,
    ) -> Result<Tracing, String> {
        let poster = Poster::new(url)?;
        let (counts, last_error) = (poster.counts(), poster.last_error());
        let lossy = !matches!(policy, OverflowArg::Block(_));
        let (writer, guard) = NonBlockingBuilder::default()
            .lossy(lossy)
            .buffered_lines_limit(capacity)
            .thread_name("tracing-appender")
            .finish(PostingWriter(poster));
        Ok(Tracing {
            dropped: writer.error_counter(),
            writer: Mutex::new(Some(writer)),
            guard: Mutex::new(Some(guard)),
            lossy,
            policy,
            pad,
            counts,
            last_error,
            refused: AtomicU64::new(0),
        })
    }
}

impl Target for Tracing {
    type Payload = (Option<NonBlocking>, Vec<u8>);

    fn name(&self) -> &'static str {
        "tracing-appender"
    }

    fn payload(&self, index: usize) -> Self::Payload {
        (lock(&self.writer).clone(), encoded(index, self.pad))
    }

    fn offer(&self, (writer, bytes): &mut Self::Payload) -> Result<(), Refusal> {
        // In lossy mode a dropped line is still `Ok`: the caller is never told.
        match writer.as_mut().map(|w| w.write_all(bytes)) {
            Some(Ok(())) => Ok(()),
            _ => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(Refusal::Other)
            }
        }
    }

    fn counts(&self, offered: u64) -> Counts {
        let c = &self.counts;
        let dropped = self.dropped.dropped_lines() as u64;
        let refused = self.refused.load(Ordering::Relaxed);
        let accepted = offered.saturating_sub(dropped + refused);
        let taken = c.taken.load(Ordering::SeqCst);
        Counts {
            offered,
            accepted,
            delivered: c.delivered.load(Ordering::SeqCst),
            failed: c.failed.load(Ordering::SeqCst),
            rejected_full: dropped,
            rejected_other: refused,
            queued: accepted.saturating_sub(taken),
            in_flight: c.in_flight.load(Ordering::SeqCst),
            ..Counts::default()
        }
    }

    fn finish(&self, offered: u64, timeout: Duration) -> Finish {
        let deadline = Instant::now() + timeout;
        // The producers' clones are gone with their threads; this drops the last writer.
        lock(&self.writer).take();
        // Wait for the worker to take every line before dropping the guard: the guard waits
        // only 100 ms to queue its shutdown message (and prints to stdout when it cannot)
        // and 1 s for the worker.
        let drained = wait_until(deadline, || {
            let c = self.counts(offered);
            c.queued == 0 && c.in_flight == 0
        });
        let mut notes = vec![format!(
            "tracing-appender: {} mode; {} requests sent by the bench's writer (the same retry as naive)",
            if self.lossy {
                "lossy (its default: a full channel drops the new line, the caller is not told)"
            } else {
                "lossless (the caller waits for room, with no timeout)"
            },
            crate::report::count(self.counts.sends.load(Ordering::SeqCst))
        )];
        if matches!(self.policy, OverflowArg::DropOldest | OverflowArg::Spill) {
            notes.push(format!(
                "tracing-appender: it has no {}: a full channel drops the new line",
                self.policy.name()
            ));
        }
        let guard = lock(&self.guard).take();
        if drained {
            drop(guard);
        } else {
            // Its worker is still busy; dropping the guard would block and print. Left to
            // finish on its own; what it holds counts as lost.
            std::mem::forget(guard);
            notes.push("tracing-appender: its worker was still sending at the deadline".to_owned());
        }
        let mut counts = self.counts(offered);
        settle_leftovers(&mut counts);
        Finish {
            accounting: Accounting::by_the_bench(&counts),
            counts,
            completed: drained,
            last_error: lock(&self.last_error).clone(),
            notes,
            ..Finish::default()
        }
    }
}
