//! The sending half of the peers auditbuf is compared with: batches of up to 500 events
//! posted through the same `DataStorageSink` (same HTTP client, same wire format) to the same
//! kind of receiver, with the retry a hand-written buffer typically has — a few attempts a
//! fixed time apart, then the batch is given up. A 400 or 413 loses the whole batch: such
//! buffers neither split nor bisect.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use auditbuf::{DataStorageSink, Outcome, Sink};

/// Sends of one batch before it is given up.
pub const ATTEMPTS: u32 = 4;
/// Pause between two sends of the same batch.
const PAUSE: Duration = Duration::from_millis(100);
/// Events per request, DataStorage's limit.
pub const BATCH: usize = DataStorageSink::MAX_EVENTS;

/// What the poster did, readable from other threads.
#[derive(Debug, Default)]
pub struct PosterCounts {
    /// Events handed to the poster.
    pub taken: AtomicU64,
    /// Events the receiver acknowledged.
    pub delivered: AtomicU64,
    /// Events whose batch was given up.
    pub failed: AtomicU64,
    /// Events handed over and not settled yet (the batch being filled or sent).
    pub in_flight: AtomicU64,
    /// Requests sent, retries included.
    pub sends: AtomicU64,
}

/// Batches events and posts them.
pub struct Poster {
    sink: DataStorageSink,
    batch: Vec<Vec<u8>>,
    counts: Arc<PosterCounts>,
    last_error: Arc<std::sync::Mutex<Option<String>>>,
}

impl Poster {
    /// A poster to the receiver at `url`.
    pub fn new(url: &str) -> Result<Poster, String> {
        Ok(Poster {
            sink: DataStorageSink::new(url).map_err(|e| e.to_string())?,
            batch: Vec::with_capacity(BATCH),
            counts: Arc::default(),
            last_error: Arc::default(),
        })
    }

    /// Its counters.
    pub fn counts(&self) -> Arc<PosterCounts> {
        Arc::clone(&self.counts)
    }

    /// Where it keeps its last error.
    pub fn last_error(&self) -> Arc<std::sync::Mutex<Option<String>>> {
        Arc::clone(&self.last_error)
    }

    /// Adds one event to the batch; [`send`](Self::send) posts it. Cheap, so it may be
    /// called under the caller's lock: the event is counted as taken at once.
    pub fn add(&mut self, event: Vec<u8>) {
        self.counts.taken.fetch_add(1, Ordering::SeqCst);
        self.counts.in_flight.fetch_add(1, Ordering::SeqCst);
        self.batch.push(event);
    }

    /// Whether the batch has reached the request limit.
    pub fn is_full(&self) -> bool {
        self.batch.len() >= BATCH
    }

    /// Sends what the batch holds, if anything.
    pub fn send(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let n = self.batch.len() as u64;
        let views: Vec<&[u8]> = self.batch.iter().map(Vec::as_slice).collect();
        let mut outcome = Outcome::retry("not sent");
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(PAUSE);
            }
            self.counts.sends.fetch_add(1, Ordering::SeqCst);
            outcome = self.sink.send(&views);
            if outcome == Outcome::Delivered || !matches!(outcome, Outcome::Retry { .. }) {
                break;
            }
        }
        // Settled counters move before `in_flight` does, so a reader sees an event in one
        // place or, for an instant, in two — never in none.
        if outcome == Outcome::Delivered {
            self.counts.delivered.fetch_add(n, Ordering::SeqCst);
        } else {
            self.counts.failed.fetch_add(n, Ordering::SeqCst);
            let reason = match outcome {
                Outcome::Retry { reason, .. }
                | Outcome::TooLarge { reason }
                | Outcome::Rejected { reason, .. } => reason,
                _ => "the sink gave an answer this bench does not know".to_owned(),
            };
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some(reason);
            }
        }
        self.counts.in_flight.fetch_sub(n, Ordering::SeqCst);
        self.batch.clear();
    }
}
