//! Under `Spill`: callers write to the store while the queue is full, and the order
//! holds through slow, full and broken stores and restarts.

use super::*;

#[test]
fn spill_keeps_every_event_of_an_overflowing_queue_in_order() {
    // Several shapes, because ordering races show up only in some interleavings.
    for (queue, batch) in [(64, 16), (16, 4), (200, 50), (8, 8), (64, 16)] {
        let (sink, seen) = collecting(Duration::from_millis(1));
        let config = config()
            .queue_capacity(queue)
            .batch_max_events(batch)
            .overflow(Overflow::Spill);
        let store = MemoryStore::new(MemoryStoreConfig::default());
        let p = Pipeline::with_store(config, sink, store).unwrap();
        let all = ids(0..3000);
        for id in &all {
            record(&p, id);
        }
        let report = p.close(Duration::from_secs(60));
        assert!(report.completed);
        assert_eq!(report.stats.rejected.total(), 0, "{:?}", report.stats);
        assert_in_order(&seen.ids(), &all);
        assert_all_settled(&report.stats);
    }
}

#[test]
fn spill_and_wal_need_a_store() {
    let sink = CallbackSink::new(|_: &[&[u8]]| Outcome::Delivered);
    let err = Pipeline::new(Config::default().overflow(Overflow::Spill), sink).unwrap_err();
    assert!(err.to_string().contains("overflow"), "{err}");
    let sink = CallbackSink::new(|_: &[&[u8]]| Outcome::Delivered);
    let config = Config::default().durability(auditbuf::Durability::Wal);
    let err = Pipeline::with_store(config, sink, MemoryStore::new(MemoryStoreConfig::default()))
        .unwrap_err();
    assert!(err.to_string().contains("durable"), "{err}");
}

#[test]
fn spill_with_a_slow_store_and_a_byte_limit_keeps_the_order() {
    for max_bytes in [4 * 1024 * 1024, 300] {
        let (sink, seen) = collecting(Duration::from_millis(0));
        let config = config()
            .queue_capacity(32)
            .batch_max_events(8)
            .batch_max_bytes(max_bytes)
            .max_event_bytes(120)
            .overflow(Overflow::Spill);
        let p = Pipeline::with_store(
            config,
            sink,
            SlowStore(
                MemoryStore::new(MemoryStoreConfig::default()),
                Duration::from_micros(300),
            ),
        )
        .unwrap();
        let all = ids(0..2000);
        for id in &all {
            record(&p, id);
        }
        let report = p.close(Duration::from_secs(60));
        assert_in_order(&seen.ids(), &all);
        assert_all_settled(&report.stats);
    }
}

#[test]
fn snapshots_balance_while_callers_spill_and_write_ahead() {
    let check = |p: Arc<Pipeline>, producers: usize, per_producer: usize| {
        let handles: Vec<_> = (0..producers)
            .map(|t| {
                let p = Arc::clone(&p);
                std::thread::spawn(move || {
                    for i in 0..per_producer {
                        record(&p, &format!("t{t}-{i}"));
                    }
                })
            })
            .collect();
        let mut snapshots = 0;
        while handles.iter().any(|h| !h.is_finished()) {
            let s = p.stats();
            assert!(s.is_consistent(), "{s:?}");
            snapshots += 1;
        }
        for h in handles {
            h.join().unwrap();
        }
        let report = p.close(Duration::from_secs(30));
        assert!(report.stats.is_consistent(), "{:?}", report.stats);
        assert!(snapshots > 10);
    };
    let slow_sink = || {
        CallbackSink::new(|_: &[&[u8]]| {
            std::thread::sleep(Duration::from_millis(1));
            Outcome::Delivered
        })
    };
    let spill = config()
        .queue_capacity(16)
        .batch_max_events(4)
        .overflow(Overflow::Spill);
    let p = Pipeline::with_store(
        spill,
        slow_sink(),
        MemoryStore::new(MemoryStoreConfig::default()),
    )
    .unwrap();
    check(Arc::new(p), 3, 1500);

    let dir = temp_dir("balance-wal");
    let wal = config()
        .durability(auditbuf::Durability::Wal)
        .store(file_store(&dir));
    let p = Pipeline::new(wal, slow_sink()).unwrap();
    check(Arc::new(p), 3, 300);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_restart_during_an_outage_under_spill_keeps_the_order() {
    let dir = temp_dir("spill-restart");
    let spill = || {
        config()
            .queue_capacity(16)
            .batch_max_events(4)
            .overflow(Overflow::Spill)
            .store(file_store(&dir))
    };
    let first = ids(0..800);
    {
        // The receiver is down the whole time: batches retry while callers spill.
        let retry = RetryPolicy::default()
            .max_attempts(2)
            .backoff(Duration::from_millis(5), Duration::from_millis(20));
        let sink = HttpSink::new(refused_url(), HttpConfig::default()).unwrap();
        let p = Pipeline::new(spill().retry(retry), sink).unwrap();
        for id in &first {
            record(&p, id);
        }
        let report = p.close(Duration::from_millis(300));
        assert_eq!(report.stats.stored, 800, "{:?}", report.stats);
        assert!(report.stats.is_consistent());
    }
    let receiver = Receiver::start(|_| Reply::created());
    let p = Pipeline::new(
        spill(),
        HttpSink::new(receiver.url(), HttpConfig::default()).unwrap(),
    )
    .unwrap();
    let second = ids(800..900);
    for id in &second {
        record(&p, id);
    }
    let report = p.close(Duration::from_secs(30));
    assert_in_order(
        &receiver.delivered_field("correlation_id"),
        &[first, second].concat(),
    );
    assert_all_settled(&report.stats);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn spill_with_a_broken_store_still_delivers_to_a_healthy_sink() {
    let (sink, seen) = collecting(Duration::from_millis(0));
    let config = config()
        .queue_capacity(64)
        .batch_max_events(8)
        .overflow(Overflow::Spill);
    let p = Pipeline::with_store(config, sink, BrokenStore).unwrap();
    let accepted = record_accepted(&p, 0..500);
    let flushed = p.flush(Duration::from_secs(20));
    assert!(flushed.completed);
    assert_eq!(
        flushed.stats.queued + flushed.stats.in_flight,
        0,
        "{:?}",
        flushed.stats
    );
    let report = p.close(Duration::from_secs(20));
    assert!(report.completed);
    assert_in_order(&seen.ids(), &accepted);
    assert_all_settled(&report.stats);
}

#[test]
fn spill_with_a_broken_store_sends_from_memory_without_a_flush() {
    // The store is asked again a second after each refusal; meanwhile the queue still goes
    // to the healthy sink on the flush interval, not only when a `flush` asks for it.
    let (sink, seen) = collecting(Duration::from_millis(0));
    let config = Config::default()
        .queue_capacity(64)
        .batch_max_events(8)
        .flush_interval(Duration::from_millis(20))
        .overflow(Overflow::Spill);
    let p = Pipeline::with_store(config, sink, BrokenStore).unwrap();
    let accepted = record_accepted(&p, 0..5);
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.stats().delivered < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    // More after the store has been refused several times.
    let later = record_accepted(&p, 5..10);
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.stats().delivered < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(p.stats().delivered, 10, "{:?}", p.stats());
    let report = p.close(Duration::from_millis(500));
    assert!(report.completed);
    let all: Vec<_> = accepted.into_iter().chain(later).collect();
    assert_in_order(&seen.ids(), &all);
    assert_all_settled(&report.stats);
}
