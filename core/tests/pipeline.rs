//! The pipeline with in-process sinks: overload policies, concurrency, batching, bad input
//! and sink outcomes. Every test checks the accounting invariant. Flush, close and drop are
//! in `flush_close.rs`.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auditbuf::{
    AuditEvent, CallbackSink, Config, Error, EventData, Outcome, Overflow, Pipeline, RetryPolicy,
};
use common::sinks::{GatedSink, collecting};
use crossbeam_channel::unbounded;

fn json_id(event: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(event).unwrap();
    v["id"].as_str().unwrap().to_owned()
}

#[test]
fn drop_newest_turns_events_away_at_once_and_counts_them() {
    let (gate_tx, gate_rx) = unbounded();
    let (seen_tx, seen_rx) = unbounded();
    let config = Config::default().queue_capacity(8).batch_max_events(4);
    let p = Pipeline::new(
        config,
        GatedSink {
            gate: gate_rx,
            seen: seen_tx,
        },
    )
    .unwrap();
    let mut accepted = 0;
    let mut full = 0;
    for i in 0..100 {
        let started = Instant::now();
        match p.record_json(format!(r#"{{"id":"{i}"}}"#).as_bytes()) {
            Ok(()) => accepted += 1,
            Err(Error::Full) => {
                full += 1;
                assert!(
                    started.elapsed() < Duration::from_millis(50),
                    "Full must not wait"
                );
            }
            Err(e) => panic!("{e}"),
        }
    }
    // At most the queue plus the batch the blocked sink holds.
    assert!((8..=12).contains(&accepted), "accepted {accepted}");
    let stats = p.stats();
    assert_eq!(stats.rejected.queue_full, full);
    assert_eq!(stats.recorded, accepted);
    assert!(stats.is_consistent(), "{stats:?}");
    drop(gate_tx); // let every send through
    let report = p.close(Duration::from_secs(10));
    assert!(report.completed);
    assert_eq!(report.stats.delivered, accepted);
    let delivered: usize = seen_rx.try_iter().map(|b| b.len()).sum();
    assert_eq!(delivered as u64, accepted);
    assert!(report.stats.is_consistent());
}

#[test]
fn block_waits_no_longer_than_its_timeout() {
    let (gate_tx, gate_rx) = unbounded();
    let (seen_tx, _seen_rx) = unbounded();
    let timeout = Duration::from_millis(100);
    let config = Config::default()
        .queue_capacity(4)
        .batch_max_events(2)
        .overflow(Overflow::Block { timeout });
    let p = Pipeline::new(
        config,
        GatedSink {
            gate: gate_rx,
            seen: seen_tx,
        },
    )
    .unwrap();
    let mut timed_out = 0;
    for i in 0..10 {
        let started = Instant::now();
        match p.record_json(format!(r#"{{"id":"{i}"}}"#).as_bytes()) {
            Ok(()) => {}
            Err(Error::Timeout(t)) => {
                timed_out += 1;
                assert_eq!(t, timeout);
                let waited = started.elapsed();
                assert!(waited >= timeout, "gave up early: {waited:?}");
                assert!(
                    waited < timeout + Duration::from_millis(400),
                    "waited {waited:?}"
                );
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(timed_out >= 4, "{timed_out}");
    assert_eq!(p.stats().rejected.block_timeout, timed_out);
    // A freed slot ends the wait early.
    gate_tx.send(()).unwrap();
    let started = Instant::now();
    p.record_json(br#"{"id":"late"}"#).unwrap();
    assert!(started.elapsed() < timeout + Duration::from_millis(400));
    drop(gate_tx);
    let report = p.close(Duration::from_secs(10));
    assert_eq!(report.stats.delivered, report.stats.recorded);
    assert!(report.stats.is_consistent());
}

#[test]
fn eight_producers_lose_nothing_and_duplicate_nothing() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 100_000;
    let (sink, seen) = collecting();
    let config = Config::default().overflow(Overflow::Block {
        timeout: Duration::from_secs(30),
    });
    let p = Arc::new(Pipeline::new(config, sink).unwrap());
    let producers: Vec<_> = (0..THREADS)
        .map(|t| {
            let p = Arc::clone(&p);
            std::thread::spawn(move || {
                let mut id = String::new();
                for i in 0..PER_THREAD {
                    use std::fmt::Write;
                    id.clear();
                    write!(id, "{t}-{i}").unwrap();
                    let ev = AuditEvent {
                        event_timestamp: Some("2026-11-23T00:00:00.000Z"),
                        ..AuditEvent::new("t", "c", "a", "success", &id)
                    };
                    p.record(&ev).unwrap();
                }
            })
        })
        .collect();
    // Snapshots taken while producers run must balance too.
    while producers.iter().any(|h| !h.is_finished()) {
        let s = p.stats();
        assert!(s.is_consistent(), "{s:?}");
        std::thread::yield_now();
    }
    for h in producers {
        h.join().unwrap();
    }
    let report = p.close(Duration::from_secs(60));
    assert!(report.completed);
    let total = (THREADS * PER_THREAD) as u64;
    assert_eq!(report.stats.recorded, total);
    assert_eq!(report.stats.delivered, total);
    assert_eq!(report.stats.rejected.total(), 0);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len() as u64, total);
    let unique: HashSet<String> = seen
        .iter()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_slice(e).unwrap();
            v["correlation_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(unique.len() as u64, total, "duplicates were delivered");
    assert!(report.stats.is_consistent());
}

#[test]
fn bad_input_is_rejected_by_reason_and_the_rest_is_delivered() {
    let (sink, seen) = collecting();
    let p = Pipeline::new(Config::default().max_event_bytes(1024), sink).unwrap();
    let good = |i: u32| format!(r#"{{"id":"good-{i}"}}"#);
    p.record_json(good(0).as_bytes()).unwrap();
    assert!(matches!(
        p.record_json(b"{\"id\":"),
        Err(Error::InvalidJson { .. })
    ));
    assert!(matches!(p.record_json(b"[1,2,3]"), Err(Error::NotAnObject)));
    assert!(matches!(
        p.record_json(b"{\"id\":\"\xc3\x28\"}"),
        Err(Error::InvalidUtf8 { offset: 7 })
    ));
    let big = format!(r#"{{"id":"{}"}}"#, "x".repeat(2000));
    assert!(matches!(
        p.record_json(big.as_bytes()),
        Err(Error::TooLarge { limit: 1024, .. })
    ));
    let missing = AuditEvent::new("t", "c", "a", "success", "");
    assert!(matches!(
        p.record(&missing),
        Err(Error::MissingField {
            field: "correlation_id"
        })
    ));
    let mismatch = AuditEvent {
        event_data: EventData::Json(r#"{"event_type":"other"}"#),
        ..AuditEvent::new("t", "c", "a", "success", "r")
    };
    assert!(matches!(
        p.record(&mismatch),
        Err(Error::InvalidField {
            field: "event_data.event_type",
            ..
        })
    ));
    assert!(matches!(
        p.record_serialize(&"a string"),
        Err(Error::NotAnObject)
    ));
    let mut bad_keys = std::collections::HashMap::new();
    bad_keys.insert(vec![1u8], 1);
    assert!(matches!(
        p.record_serialize(&bad_keys),
        Err(Error::Serialize(_))
    ));
    p.record_json(good(1).as_bytes()).unwrap();

    let report = p.close(Duration::from_secs(10));
    let r = report.stats.rejected;
    assert_eq!(
        (
            r.invalid_json,
            r.not_an_object,
            r.invalid_utf8,
            r.too_large,
            r.missing_field,
            r.invalid_field,
            r.serialize
        ),
        (1, 2, 1, 1, 1, 1, 1)
    );
    assert_eq!(report.stats.recorded, 2);
    assert_eq!(report.stats.delivered, 2);
    let ids: Vec<String> = seen.lock().unwrap().iter().map(|e| json_id(e)).collect();
    assert_eq!(ids, ["good-0", "good-1"]);
    assert!(report.stats.is_consistent());
}

#[test]
fn partial_batches_go_out_on_the_interval() {
    let (tx, rx) = unbounded();
    let sink = CallbackSink::new(move |batch: &[&[u8]]| {
        let _ = tx.send(batch.len());
        Outcome::Delivered
    });
    let p = Pipeline::new(
        Config::default().flush_interval(Duration::from_millis(50)),
        sink,
    )
    .unwrap();
    p.record_json(br#"{"id":"1"}"#).unwrap();
    p.record_json(br#"{"id":"2"}"#).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 2);
    assert!(p.stats().is_consistent());
}

#[test]
fn full_batches_go_out_without_waiting_for_the_interval() {
    let (tx, rx) = unbounded();
    let sink = CallbackSink::new(move |batch: &[&[u8]]| {
        let _ = tx.send(batch.len());
        Outcome::Delivered
    });
    let config = Config::default()
        .batch_max_events(10)
        .flush_interval(Duration::from_secs(3600));
    let p = Pipeline::new(config, sink).unwrap();
    for i in 0..30 {
        p.record_json(format!(r#"{{"id":"{i}"}}"#).as_bytes())
            .unwrap();
    }
    for _ in 0..3 {
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 10);
    }
    let report = p.close(Duration::from_secs(10));
    assert_eq!(report.stats.delivered, 30);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
}

#[test]
fn batches_respect_the_byte_limit() {
    let (tx, rx) = unbounded();
    let sink = CallbackSink::new(move |batch: &[&[u8]]| {
        let _ = tx.send(batch.iter().map(|e| e.len() + 1).sum::<usize>());
        Outcome::Delivered
    });
    let config = Config::default().batch_max_bytes(1000).max_event_bytes(300);
    let p = Pipeline::new(config, sink).unwrap();
    let pad = "p".repeat(200);
    for i in 0..20 {
        p.record_json(format!(r#"{{"id":"{i}","pad":"{pad}"}}"#).as_bytes())
            .unwrap();
    }
    let report = p.close(Duration::from_secs(10));
    assert_eq!(report.stats.delivered, 20);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    let sizes: Vec<usize> = rx.try_iter().collect();
    assert!(sizes.iter().all(|&s| s <= 1000), "{sizes:?}");
    assert!(sizes.len() >= 5);
}

#[test]
fn a_panicking_sink_is_retried_then_fails_without_killing_the_pipeline() {
    let mut calls = 0;
    let sink = CallbackSink::new(move |_batch: &[&[u8]]| {
        calls += 1;
        if calls <= 2 {
            panic!("boom {calls}")
        }
        Outcome::Delivered
    });
    let retry = RetryPolicy::default()
        .max_attempts(2)
        .backoff(Duration::from_millis(1), Duration::from_millis(2));
    let p = Pipeline::new(Config::default().retry(retry), sink).unwrap();
    p.record_json(br#"{"id":"a"}"#).unwrap();
    let report = p.flush(Duration::from_secs(10));
    assert_eq!(report.stats.failed, 1);
    assert!(
        p.last_error()
            .unwrap()
            .contains("the sink panicked: boom 2"),
        "{:?}",
        p.last_error()
    );
    p.record_json(br#"{"id":"b"}"#).unwrap();
    let report = p.close(Duration::from_secs(10));
    assert_eq!(report.stats.delivered, 1);
    assert!(report.stats.is_consistent());
}

#[test]
fn the_sinks_limits_override_the_pipelines() {
    let (tx, rx) = unbounded();
    let sink = CallbackSink::new(move |batch: &[&[u8]]| {
        let _ = tx.send(batch.len());
        Outcome::Delivered
    })
    .with_limits(auditbuf::Limits {
        max_events: 3,
        max_bytes: 10_000,
    });
    let p = Pipeline::new(Config::default().max_event_bytes(1000), sink).unwrap();
    for i in 0..10 {
        p.record_json(format!(r#"{{"id":"{i}"}}"#).as_bytes())
            .unwrap();
    }
    let report = p.close(Duration::from_secs(10));
    assert_eq!(report.stats.delivered, 10);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    assert!(rx.try_iter().all(|n| n <= 3));
    // An event limit above the sink's byte limit cannot work.
    let tiny = CallbackSink::new(|_: &[&[u8]]| Outcome::Delivered).with_limits(auditbuf::Limits {
        max_events: 10,
        max_bytes: 100,
    });
    let err = Pipeline::new(Config::default(), tiny).unwrap_err();
    assert!(err.to_string().contains("max_event_bytes"), "{err}");
}

#[test]
fn an_absurd_retry_after_from_a_sink_is_ignored() {
    let mut calls = 0;
    let sink = CallbackSink::new(move |_: &[&[u8]]| {
        calls += 1;
        if calls == 1 {
            std::thread::sleep(Duration::from_millis(1100));
            Outcome::Retry {
                after: Some(Duration::MAX),
                reason: "come back in a million years".into(),
            }
        } else {
            Outcome::Delivered
        }
    });
    let p = Pipeline::new(Config::default(), sink).unwrap();
    p.record_json(br#"{"id":"1"}"#).unwrap();
    // Nothing overflows, the flush thread lives, and the normal backoff applies.
    let report = p.flush(Duration::from_secs(10));
    assert!(report.completed);
    assert_eq!(report.stats.delivered, 1);
    p.record_json(br#"{"id":"2"}"#).unwrap();
    let report = p.close(Duration::from_secs(10));
    assert_eq!(report.stats.delivered, 2);
    assert_eq!(report.stats.failed, 0);
    assert!(report.stats.is_consistent());
}

#[test]
fn a_queue_smaller_than_a_batch_still_sends_without_waiting_for_the_interval() {
    let (sink, seen) = collecting();
    let config = Config::default()
        .queue_capacity(100)
        .flush_interval(Duration::from_secs(3600))
        .overflow(Overflow::Block {
            timeout: Duration::from_secs(10),
        });
    let p = Pipeline::new(config, sink).unwrap();
    for i in 0..1000 {
        p.record_json(format!(r#"{{"id":"{i}"}}"#).as_bytes())
            .unwrap();
    }
    let report = p.close(Duration::from_secs(10));
    assert_eq!(report.stats.rejected.block_timeout, 0);
    assert_eq!(report.stats.delivered, 1000);
    assert_eq!(seen.lock().unwrap().len(), 1000);
    assert!(report.stats.is_consistent());
}

#[test]
fn a_partial_outcome_settles_the_prefix_and_retries_the_rest() {
    // Takes at most three events a call, and every other call none at all.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut calls = 0;
    let sink = CallbackSink::new({
        let seen = Arc::clone(&seen);
        move |batch: &[&[u8]]| {
            calls += 1;
            let taken = if calls % 2 == 0 {
                0
            } else {
                batch.len().min(3)
            };
            seen.lock()
                .unwrap()
                .extend(batch[..taken].iter().map(|e| json_id(e)));
            Outcome::Partial {
                delivered: taken,
                reason: "the broker nacked one".into(),
            }
        }
    });
    let config = Config::default()
        .batch_max_events(10)
        .retry(RetryPolicy::default().backoff(Duration::from_millis(1), Duration::from_millis(2)));
    let p = Pipeline::new(config, sink).unwrap();
    for i in 0..25 {
        p.record_json(format!(r#"{{"id":"{i}"}}"#).as_bytes())
            .unwrap();
    }
    let report = p.close(Duration::from_secs(10));
    assert!(report.completed);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    assert_eq!(report.stats.delivered, 25);
    assert_eq!(report.stats.dead_lettered + report.stats.failed, 0);
    let want: Vec<String> = (0..25).map(|i| i.to_string()).collect();
    assert_eq!(*seen.lock().unwrap(), want, "each once, in order");
}

#[test]
fn the_rest_of_a_partial_batch_fails_when_its_retries_run_out() {
    let sink = CallbackSink::new(|batch: &[&[u8]]| Outcome::Partial {
        delivered: batch.len().min(2),
        reason: "nack".into(),
    });
    let config = Config::default()
        .batch_max_events(5)
        .flush_interval(Duration::from_secs(3600))
        .retry(RetryPolicy::default().max_attempts(1));
    let p = Pipeline::new(config, sink).unwrap();
    for i in 0..5 {
        p.record_json(format!(r#"{{"id":"{i}"}}"#).as_bytes())
            .unwrap();
    }
    let report = p.close(Duration::from_secs(10));
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    assert_eq!(report.stats.delivered, 2);
    assert_eq!(report.stats.failed, 3, "kept counted, never dead-lettered");
    assert_eq!(report.stats.dead_lettered, 0);
}
