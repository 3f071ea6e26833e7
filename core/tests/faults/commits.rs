//! Stores whose commits fail: the batch stays at the head of the store and is sent again,
//! after a back-off, and counted delivered once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use auditbuf::{
    CallbackSink, Config, Error, MemoryStore, MemoryStoreConfig, Outcome, Pipeline, RetryPolicy,
    Store, StoreSize, StoredBatch,
};

use super::{assert_all_settled, ids, record_all};

/// Batches of 10 whose retries end in 50 ms, so that they go to the store and are drained
/// from it.
fn draining_config() -> Config {
    Config::default()
        .batch_max_events(10)
        .flush_interval(Duration::from_millis(10))
        .retry(
            RetryPolicy::default()
                .max_elapsed(Duration::from_millis(50))
                .backoff(Duration::from_millis(5), Duration::from_millis(20)),
        )
}

/// A memory store whose next commit fails when `fail` is set, and every commit before
/// `until` (a full disk).
struct FlakyCommits {
    inner: MemoryStore,
    fail: Arc<AtomicBool>,
    until: Option<Instant>,
}

impl Store for FlakyCommits {
    fn append(&mut self, events: &[&[u8]]) -> Result<(), Error> {
        self.inner.append(events)
    }
    fn read_oldest(&mut self, n: usize, b: usize, out: &mut StoredBatch) -> Result<(), Error> {
        self.inner.read_oldest(n, b, out)
    }
    fn commit(&mut self, n: usize) -> Result<(), Error> {
        if self.fail.swap(false, Ordering::SeqCst) || self.until.is_some_and(|t| Instant::now() < t)
        {
            return Err(Error::Store(Box::new(auditbuf::StoreError {
                store: "flaky".into(),
                message: "commit failed".into(),
            })));
        }
        self.inner.commit(n)
    }
    fn dead_letter(&mut self, event: &[u8], reason: &str) -> Result<(), Error> {
        self.inner.dead_letter(event, reason)
    }
    fn size(&self) -> StoreSize {
        self.inner.size()
    }
    fn oldest_age(&self) -> Option<Duration> {
        self.inner.oldest_age()
    }
}

#[test]
fn commits_that_keep_failing_are_retried_with_backoff_not_at_once() {
    // The receiver is down at first, so the events go to the store; once it is up, every
    // commit fails for 400 ms (SQLite on a full disk). The same batch is read and sent
    // again after each failed commit: with the drain's back-off (5 to 20 ms here), a few
    // dozen times, not the hundreds a second of sending again at once.
    let up = Arc::new(AtomicBool::new(false));
    let (sends, sent) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let sink = CallbackSink::new({
        let (up, sends, sent) = (Arc::clone(&up), Arc::clone(&sends), Arc::clone(&sent));
        move |b: &[&[u8]]| {
            if up.load(Ordering::SeqCst) {
                sends.fetch_add(1, Ordering::SeqCst);
                sent.fetch_add(b.len(), Ordering::SeqCst);
                Outcome::Delivered
            } else {
                Outcome::retry("down")
            }
        }
    });
    let config = draining_config();
    let failing = Duration::from_millis(400);
    let store = FlakyCommits {
        inner: MemoryStore::new(MemoryStoreConfig::default()),
        fail: Arc::new(AtomicBool::new(false)),
        until: Some(Instant::now() + Duration::from_millis(300) + failing),
    };
    let p = Pipeline::with_store(config, sink, store).unwrap();
    record_all(&p, &ids(30));
    std::thread::sleep(Duration::from_millis(300));
    up.store(true, Ordering::SeqCst);
    let report = p.close(Duration::from_secs(10));
    let s = report.stats;
    let sends = sends.load(Ordering::SeqCst);
    // 400 ms of failing commits at 5–20 ms a back-off (full jitter): at most 400 / 2.5
    // rounds (sent in halves after the outage's failures: two sends a round).
    assert!(sends <= 320, "{sends} sends: {s:?}");
    assert_eq!(s.delivered, 30, "{s:?}");
    // Every event sent more than once is counted apart, once for each time.
    assert_eq!(
        s.redelivered,
        sent.load(Ordering::SeqCst) as u64 - 30,
        "{s:?}"
    );
    assert_all_settled(&s);
}

#[test]
fn resends_after_a_failed_commit_are_counted_apart() {
    // The receiver is down at first, so the events go to the store; the first commit after
    // it recovers fails, so that batch is sent twice. It must count once as delivered.
    let up = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let sink = CallbackSink::new({
        let (up, calls) = (Arc::clone(&up), Arc::clone(&calls));
        move |batch: &[&[u8]]| {
            if up.load(Ordering::SeqCst) {
                calls.fetch_add(batch.len(), Ordering::SeqCst);
                Outcome::Delivered
            } else {
                Outcome::retry("down")
            }
        }
    });
    let fail = Arc::new(AtomicBool::new(true));
    let store = FlakyCommits {
        inner: MemoryStore::new(MemoryStoreConfig::default()),
        fail: Arc::clone(&fail),
        until: None,
    };
    let config = draining_config();
    let p = Pipeline::with_store(config, sink, store).unwrap();
    record_all(&p, &ids(30));
    std::thread::sleep(Duration::from_millis(300));
    up.store(true, Ordering::SeqCst);
    let report = p.close(Duration::from_secs(10));
    let s = report.stats;
    assert_eq!(s.delivered, 30, "{s:?}");
    assert_eq!(s.redelivered, 10, "{s:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 40);
    assert_all_settled(&s);
}

#[test]
fn events_delivered_but_not_committed_are_not_lost_again_with_a_memory_store_at_close() {
    // Every commit fails: the events sent from the store stay at its head, counted
    // delivered. Closing the memory store loses what it holds — but those were delivered,
    // and are not counted lost as well.
    let up = Arc::new(AtomicBool::new(false));
    let sink = CallbackSink::new({
        let up = Arc::clone(&up);
        move |_: &[&[u8]]| {
            if up.load(Ordering::SeqCst) {
                Outcome::Delivered
            } else {
                Outcome::retry("down")
            }
        }
    });
    let store = FlakyCommits {
        inner: MemoryStore::new(MemoryStoreConfig::default()),
        fail: Arc::new(AtomicBool::new(false)),
        until: Some(Instant::now() + Duration::from_secs(600)),
    };
    let p = Pipeline::with_store(draining_config(), sink, store).unwrap();
    record_all(&p, &ids(30));
    std::thread::sleep(Duration::from_millis(300));
    up.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.stats().delivered == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let report = p.close(Duration::from_millis(300));
    let s = report.stats;
    // The head batch, delivered again and again (its commit fails), and the rest, never
    // reached: each event counted once.
    assert!(s.delivered > 0, "{s:?}");
    assert_eq!(s.delivered + s.dropped.shutdown, 30, "{s:?}");
    assert!(s.is_consistent(), "{s:?}");
}
