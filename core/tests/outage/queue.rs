//! The queue during an outage with a backing store: the store takes what the receiver
//! cannot, so that callers are not turned away while it has room — also before the first
//! batch has run out of its retry time.

use super::*;

/// A sink that refuses (503-like) while `down`, and keeps the ids it is given once up.
fn down_until_told() -> (
    impl auditbuf::Sink,
    Arc<AtomicBool>,
    Arc<parking_lot_free::Seen>,
) {
    let down = Arc::new(AtomicBool::new(true));
    let seen = Arc::new(parking_lot_free::Seen::default());
    let sink = CallbackSink::new({
        let (down, seen) = (Arc::clone(&down), Arc::clone(&seen));
        move |batch: &[&[u8]]| {
            if down.load(Ordering::SeqCst) {
                return Outcome::retry("503 Service Unavailable");
            }
            seen.extend(batch);
            Outcome::Delivered
        }
    });
    (sink, down, seen)
}

#[test]
fn an_outage_fills_the_store_not_the_queue() {
    for store in ["memory", "file"] {
        let (sink, down, seen) = down_until_told();
        let dir = temp_dir(&format!("pressure-{store}"));
        let store = match store {
            "memory" => StoreConfig::Memory(MemoryStoreConfig::default()),
            _ => file_store(&dir),
        };
        // The default retry time (60 s) is far longer than the outage: the first batch is
        // still being retried when the queue would overflow.
        let retry =
            RetryPolicy::default().backoff(Duration::from_millis(20), Duration::from_millis(100));
        let config = Config::default()
            .queue_capacity(1000)
            .batch_max_events(100)
            .flush_interval(Duration::from_millis(10))
            .retry(retry)
            .store(store);
        let p = Pipeline::new(config, sink).unwrap();
        let all = ids(0..4000);
        for (n, id) in all.iter().enumerate() {
            // ~4 000 events/s for a second: four queues' worth.
            if n % 8 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
            record(&p, id);
        }
        let during = p.stats();
        assert_eq!(during.rejected.queue_full, 0, "{during:?}");
        assert!(during.stored > 0, "{during:?}");
        assert!(during.is_consistent(), "{during:?}");
        down.store(false, Ordering::SeqCst);
        let report = p.close(Duration::from_secs(30));
        assert!(report.completed, "{:?}", report.stats);
        assert_all_settled(&report.stats);
        assert_eq!(report.stats.delivered, 4000);
        assert_in_order(&seen.ids(), &all);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_flush_during_an_outage_answers_once_the_queue_is_in_the_store() {
    let (sink, down, seen) = down_until_told();
    let retry =
        RetryPolicy::default().backoff(Duration::from_millis(20), Duration::from_millis(100));
    let config = Config::default()
        .queue_capacity(1000)
        .batch_max_events(100)
        .flush_interval(Duration::from_secs(60))
        .retry(retry)
        .store(StoreConfig::Memory(MemoryStoreConfig::default()));
    let p = Pipeline::new(config, sink).unwrap();
    let all = ids(0..900);
    for id in &all {
        record(&p, id);
    }
    // The first batch is retried while the queue behind it is over half full: it goes to
    // the store, and the flush is answered once the queue has followed it.
    let report = p.flush(Duration::from_secs(20));
    assert!(report.completed, "{:?}", report.stats);
    assert_eq!(
        (
            report.stats.queued,
            report.stats.in_flight,
            report.stats.stored
        ),
        (0, 0, 900),
        "{:?}",
        report.stats
    );
    down.store(false, Ordering::SeqCst);
    let report = p.close(Duration::from_secs(30));
    assert_all_settled(&report.stats);
    assert_in_order(&seen.ids(), &all);
}

#[test]
fn a_store_that_refuses_the_batch_leaves_it_retried_in_memory_not_dropped() {
    let (sink, down, seen) = down_until_told();
    let retry =
        RetryPolicy::default().backoff(Duration::from_millis(20), Duration::from_millis(100));
    // A store too small for one batch.
    let store = MemoryStore::new(MemoryStoreConfig::default().max_events(10));
    let config = Config::default()
        .queue_capacity(1000)
        .batch_max_events(100)
        .flush_interval(Duration::from_millis(10))
        .retry(retry);
    let p = Pipeline::with_store(config, sink, store).unwrap();
    let all = ids(0..900);
    for id in &all {
        record(&p, id);
    }
    std::thread::sleep(Duration::from_millis(500));
    let during = p.stats();
    assert_eq!(during.dropped.total() + during.failed, 0, "{during:?}");
    down.store(false, Ordering::SeqCst);
    let report = p.close(Duration::from_secs(30));
    assert_all_settled(&report.stats);
    assert_eq!(report.stats.delivered, 900);
    assert_in_order(&seen.ids(), &all);
}
