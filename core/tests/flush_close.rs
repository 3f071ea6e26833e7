//! Flush, close and drop with in-process sinks: a flush waits for what was recorded before
//! it, close keeps its deadline with a hanging sink and counts what it left, dropping the
//! pipeline delivers what it holds. Every test checks the accounting invariant.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use auditbuf::{CallbackSink, Config, Error, Outcome, Pipeline, RetryPolicy};
use common::sinks::{GatedSink, collecting};
use crossbeam_channel::{bounded, unbounded};

#[test]
fn close_keeps_its_deadline_with_a_hanging_sink() {
    let (_gate_tx, gate_rx) = bounded::<()>(0); // never opened
    let (seen_tx, _seen_rx) = unbounded();
    let p = Pipeline::new(
        Config::default().batch_max_events(10),
        GatedSink {
            gate: gate_rx,
            seen: seen_tx,
        },
    )
    .unwrap();
    for i in 0..50 {
        p.record_json(format!(r#"{{"id":"{i}"}}"#).as_bytes())
            .unwrap();
    }
    let started = Instant::now();
    let deadline = Duration::from_millis(300);
    let report = p.close(deadline);
    let took = started.elapsed();
    assert!(
        took >= deadline && took < deadline + Duration::from_millis(500),
        "close took {took:?}"
    );
    assert!(!report.completed);
    assert_eq!(report.left, 50);
    assert_eq!(report.stats.delivered, 0);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    // A closed pipeline takes nothing more, and says so.
    assert!(matches!(
        p.record_json(br#"{"id":"x"}"#),
        Err(Error::Closed)
    ));
    assert_eq!(p.stats().rejected.closed, 1);
    // Dropping must not hang either.
    let started = Instant::now();
    drop(p);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn events_left_at_the_close_deadline_are_counted_as_dropped() {
    let (gate_tx, gate_rx) = unbounded();
    let (seen_tx, seen_rx) = unbounded();
    let p = Pipeline::new(
        Config::default().batch_max_events(10),
        GatedSink {
            gate: gate_rx,
            seen: seen_tx,
        },
    )
    .unwrap();
    for i in 0..50 {
        p.record_json(format!(r#"{{"id":"{i}"}}"#).as_bytes())
            .unwrap();
    }
    // One batch goes through, then the sink hangs past the deadline and is released later.
    gate_tx.send(()).unwrap();
    let report = p.close(Duration::from_millis(200));
    assert!(!report.completed);
    drop(gate_tx);
    let report = p.close(Duration::from_secs(5));
    assert!(report.completed);
    let delivered: u64 = seen_rx.try_iter().map(|b| b.len() as u64).sum();
    assert_eq!(report.stats.delivered, delivered);
    assert_eq!(report.stats.delivered + report.stats.dropped.shutdown, 50);
    assert!(report.stats.dropped.shutdown >= 30, "{:?}", report.stats);
    assert_eq!(report.left, 0);
    assert!(report.stats.is_consistent());
}

#[test]
fn flush_returns_once_everything_recorded_is_delivered() {
    let (sink, seen) = collecting();
    let p = Pipeline::new(
        Config::default().flush_interval(Duration::from_secs(3600)),
        sink,
    )
    .unwrap();
    for i in 0..10 {
        p.record_json(format!(r#"{{"id":"{i}"}}"#).as_bytes())
            .unwrap();
    }
    let report = p.flush(Duration::from_secs(10));
    assert!(report.completed);
    assert_eq!(report.stats.delivered, 10);
    assert_eq!(report.left, 0);
    assert_eq!(seen.lock().unwrap().len(), 10);
    // The pipeline goes on after a flush.
    p.record_json(br#"{"id":"after"}"#).unwrap();
    assert_eq!(p.flush(Duration::from_secs(10)).stats.delivered, 11);
    assert!(p.stats().is_consistent());
}

#[test]
fn dropping_the_pipeline_delivers_what_it_holds() {
    let (sink, seen) = collecting();
    let p = Pipeline::new(
        Config::default().flush_interval(Duration::from_secs(3600)),
        sink,
    )
    .unwrap();
    for i in 0..5 {
        p.record_json(format!(r#"{{"id":"{i}"}}"#).as_bytes())
            .unwrap();
    }
    drop(p);
    assert_eq!(seen.lock().unwrap().len(), 5);
}

#[test]
fn absurd_durations_do_not_panic() {
    let (sink, seen) = collecting();
    let config = Config::default()
        .flush_interval(Duration::MAX)
        .drop_timeout(Duration::MAX)
        .retry(RetryPolicy::default().max_elapsed(Duration::MAX));
    let p = Pipeline::new(config, sink).unwrap();
    p.record_json(br#"{"id":"1"}"#).unwrap();
    assert!(p.flush(Duration::MAX).completed);
    let report = p.close(Duration::MAX);
    assert!(report.completed);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn a_flush_that_arrives_during_a_retry_waits_for_its_own_events() {
    let (called_tx, called_rx) = unbounded();
    let mut calls = 0;
    let sink = CallbackSink::new(move |batch: &[&[u8]]| {
        calls += 1;
        let _ = called_tx.send(batch.len());
        if calls == 1 {
            Outcome::Retry {
                after: Some(Duration::from_millis(300)),
                reason: "busy".into(),
            }
        } else {
            Outcome::Delivered
        }
    });
    let retry = RetryPolicy::default().backoff(Duration::from_millis(1), Duration::from_millis(1));
    let config = Config::default()
        .flush_interval(Duration::from_secs(3600))
        .retry(retry);
    let p = Arc::new(Pipeline::new(config, sink).unwrap());
    p.record_json(br#"{"id":"first"}"#).unwrap();
    let first = {
        let p = Arc::clone(&p);
        std::thread::spawn(move || p.flush(Duration::from_secs(10)))
    };
    // The first flush's batch is now waiting out its retry.
    assert_eq!(called_rx.recv_timeout(Duration::from_secs(5)).unwrap(), 1);
    p.record_json(br#"{"id":"second"}"#).unwrap();
    let second = p.flush(Duration::from_secs(10));
    assert!(second.completed);
    assert_eq!(second.stats.delivered, 2, "{:?}", second.stats);
    assert!(first.join().unwrap().completed);
    assert!(second.stats.is_consistent());
}

#[test]
fn a_flush_during_an_outage_moves_the_queue_into_the_store() {
    // The receiver is down: the first batch runs out of retries and goes to the store, and
    // the pipeline backs off. A flush then must not report the queue as settled while it
    // is still only in memory: it is moved in behind the stored batch.
    let sink = CallbackSink::new(|_: &[&[u8]]| Outcome::retry("receiver down"));
    let retry = RetryPolicy::default()
        .max_elapsed(Duration::from_millis(300))
        .backoff(Duration::from_millis(50), Duration::from_millis(200));
    let config = Config::default().batch_max_events(500).retry(retry);
    let store = auditbuf::MemoryStore::new(auditbuf::MemoryStoreConfig::default());
    let p = Pipeline::with_store(config, sink, store).unwrap();
    for i in 0..2000 {
        p.record_json(format!(r#"{{"n":{i}}}"#).as_bytes()).unwrap();
    }
    let report = p.flush(Duration::from_secs(10));
    let stats = &report.stats;
    assert!(report.completed, "{report:?}");
    assert_eq!(report.left, 0, "{report:?}");
    assert_eq!((stats.queued, stats.in_flight, stats.stored), (0, 0, 2000));
    assert_eq!(stats.recorded, 2000);
    assert!(stats.is_consistent(), "{stats:?}");
    let report = p.close(Duration::from_millis(100));
    assert_eq!(report.stats.stored + report.stats.dropped.total(), 2000);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
}

#[test]
fn a_batch_the_sink_still_held_at_close_is_counted_as_shutdown_not_failed() {
    // The sink answers after `close` returned, and after the retry budget ran out: the
    // batch was cut short by the close, not out of retries.
    let sink = CallbackSink::new(|_: &[&[u8]]| {
        std::thread::sleep(Duration::from_millis(800));
        Outcome::retry("too slow")
    });
    let retry = RetryPolicy::default().max_elapsed(Duration::from_millis(100));
    let p = Pipeline::new(Config::default().batch_max_events(10).retry(retry), sink).unwrap();
    for i in 0..10 {
        p.record_json(format!(r#"{{"n":{i}}}"#).as_bytes()).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.stats().in_flight < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let report = p.close(Duration::from_millis(200));
    assert!(!report.completed);
    assert_eq!(report.stats.in_flight, 10, "{:?}", report.stats);
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.stats().in_flight > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = p.stats();
    assert_eq!(
        (stats.dropped.shutdown, stats.failed, stats.batches_failed),
        (10, 0, 0),
        "{stats:?}"
    );
    assert!(stats.is_consistent(), "{stats:?}");
}

/// A sink that asks for a retry on its first `failing` calls and takes every batch after.
fn failing_first(failing: u32) -> (impl auditbuf::Sink, Arc<std::sync::atomic::AtomicU32>) {
    use std::sync::atomic::{AtomicU32, Ordering};
    let calls = Arc::new(AtomicU32::new(0));
    let sink = CallbackSink::new({
        let calls = calls.clone();
        move |_: &[&[u8]]| {
            if calls.fetch_add(1, Ordering::SeqCst) < failing {
                Outcome::retry("receiver down")
            } else {
                Outcome::Delivered
            }
        }
    });
    (sink, calls)
}

/// A back-off of up to 30 days (full jitter: uniform below that): the retry after the first
/// failure is due after any `close` deadline below but for one run in hundreds of thousands.
fn month_long_back_off() -> Config {
    let month = Duration::from_secs(30 * 24 * 3600);
    Config::default().retry(
        RetryPolicy::default()
            .max_elapsed(2 * month)
            .backoff(month, month),
    )
}

fn record_one_and_wait_for_a_send(p: &Pipeline, calls: &std::sync::atomic::AtomicU32) {
    p.record_json(br#"{"id":"1"}"#).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while calls.load(std::sync::atomic::Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn without_a_store_close_tries_once_more_before_its_deadline_rather_than_drop_at_once() {
    // Nothing would keep the event past the deadline: a retry due after it is brought
    // forward to just before it, and the receiver, back by then, takes the event.
    let (sink, calls) = failing_first(1);
    let p = Pipeline::new(month_long_back_off(), sink).unwrap();
    record_one_and_wait_for_a_send(&p, &calls);
    let started = Instant::now();
    let report = p.close(Duration::from_secs(2));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(report.completed, "{report:?}");
    assert_eq!(report.stats.delivered, 1, "{:?}", report.stats);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);

    // Still down then: dropped at the deadline after that one last try, not more.
    let (sink, calls) = failing_first(u32::MAX);
    let p = Pipeline::new(month_long_back_off(), sink).unwrap();
    record_one_and_wait_for_a_send(&p, &calls);
    let report = p.close(Duration::from_secs(1));
    assert!(report.completed, "{report:?}");
    assert_eq!(report.stats.dropped.shutdown, 1, "{:?}", report.stats);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
}

#[test]
fn with_the_memory_store_close_still_makes_its_last_try() {
    // The memory store dies with the process: what it holds at `close` is lost as surely
    // as without a store, so the last try is made.
    let (sink, calls) = failing_first(1);
    let store = auditbuf::MemoryStore::new(auditbuf::MemoryStoreConfig::default());
    let p = Pipeline::with_store(month_long_back_off(), sink, store).unwrap();
    record_one_and_wait_for_a_send(&p, &calls);
    let report = p.close(Duration::from_secs(1));
    assert!(report.completed, "{report:?}");
    assert_eq!(report.stats.delivered, 1, "{:?}", report.stats);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
}

#[test]
fn close_makes_no_last_try_against_the_receivers_retry_after() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let calls = Arc::new(AtomicU32::new(0));
    let sink = CallbackSink::new({
        let calls = calls.clone();
        move |_: &[&[u8]]| {
            calls.fetch_add(1, Ordering::SeqCst);
            Outcome::Retry {
                after: Some(Duration::from_secs(3600)),
                reason: "maintenance".into(),
            }
        }
    });
    let p = Pipeline::new(month_long_back_off(), sink).unwrap();
    record_one_and_wait_for_a_send(&p, &calls);
    let report = p.close(Duration::from_secs(1));
    assert!(report.completed, "{report:?}");
    assert_eq!(report.stats.dropped.shutdown, 1, "{:?}", report.stats);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
}

#[test]
fn with_a_store_close_keeps_the_event_without_sending_it_again_and_again() {
    // The retry is due after the deadline and a durable store keeps the event: `close`
    // returns without waiting for its deadline, and without sending the stored event in a
    // loop until then (it did, thousands of times, before 2026-12-03).
    let dir = std::env::temp_dir().join(format!("auditbuf-close-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (sink, calls) = failing_first(u32::MAX);
    let store = auditbuf::FileStore::open(auditbuf::FileStoreConfig::new(dir.join("wal"))).unwrap();
    let p = Pipeline::with_store(month_long_back_off(), sink, store).unwrap();
    record_one_and_wait_for_a_send(&p, &calls);
    let started = Instant::now();
    let report = p.close(Duration::from_secs(5));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?} {report:?}");
    assert!(report.completed, "{report:?}");
    assert_eq!(report.stats.stored, 1, "{:?}", report.stats);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}
