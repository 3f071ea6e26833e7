//! The faults round: receivers that refuse everything, ask to be left alone, answer before
//! reading, or are down through a rolling restart; stores whose commits fail (`commits.rs`);
//! sinks that hang past `close`. Each test failed on the code before the fix it guards.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use auditbuf::{
    CallbackSink, Config, DataStorageSink, HttpConfig, HttpSink, MemoryStore, MemoryStoreConfig,
    Outcome, Overflow, Pipeline, RetryPolicy, Stats,
};
use auditbuf_testkit::{Receiver, Reply, refused_url};

mod commits;

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("ev-{i:05}")).collect()
}

fn record_all(p: &Pipeline, ids: &[String]) {
    for id in ids {
        p.record_json(format!(r#"{{"event_type":"t","correlation_id":"{id}"}}"#).as_bytes())
            .unwrap();
    }
}

fn assert_all_settled(stats: &Stats) {
    assert!(stats.is_consistent(), "{stats:?}");
    assert_eq!(
        stats.queued + stats.in_flight + stats.stored,
        0,
        "{stats:?}"
    );
}

/// A receiver that answers 400 with `detail` to every request for `time`, then takes all.
fn refusing_for(time: Duration, detail: &'static str) -> Receiver {
    let started = Instant::now();
    Receiver::start(move |_| {
        if started.elapsed() < time {
            Reply::problem(400, detail)
        } else {
            Reply::created()
        }
    })
}

#[test]
fn a_receiver_refusing_everything_for_30_s_loses_nothing_to_dead_letters() {
    // A proxy answering 400 to every request (the same answer for every event), then the
    // real receiver again. Defaults otherwise: no store, the 60 s retry budget.
    let receiver = refusing_for(Duration::from_secs(30), "request blocked by policy");
    let config = Config::default()
        .batch_max_events(100)
        .flush_interval(Duration::from_millis(20));
    let sink = HttpSink::new(receiver.url(), HttpConfig::default()).unwrap();
    let p = Pipeline::new(config, sink).unwrap();
    let all = ids(300);
    record_all(&p, &all);
    assert!(receiver.wait_for_delivered(300, Duration::from_secs(70)));
    let report = p.close(Duration::from_secs(10));
    assert_eq!(
        receiver.delivered_field("correlation_id"),
        all,
        "in order, once"
    );
    assert_eq!(report.stats.dead_lettered, 0, "{:?}", report.stats);
    assert_eq!(report.stats.delivered, 300);
    assert!(report.stats.endpoint_refusals > 0);
    // Refusals cost requests bounded by the backoff, not a hot loop: the first round
    // bisects the first batch of 100 down to single events (12 requests), and each round
    // after a back-off walks single events before backing off again: 5, 10, then 20 (so
    // that a longer run of poison events is walked past). With full jitter under the
    // default ceilings (200 ms doubling to 10 s), 200 000 simulated runs made 8-12 rounds
    // in 30 s in 92 % of runs, 14 or more in one in 40, and never more than 19; 24 would
    // need waits far below their ceilings. A hot loop would send thousands.
    let refused = receiver
        .requests()
        .iter()
        .filter(|r| r.status == 400)
        .count();
    assert!(
        refused <= 12 + 5 + 10 + 20 * 22,
        "{refused} refused requests in 30 s"
    );
    assert_all_settled(&report.stats);
}

/// Backoffs short enough for a refusal that lasts 1.5 s, a budget that outlasts it.
fn quick_retries() -> RetryPolicy {
    RetryPolicy::default()
        .max_elapsed(Duration::from_secs(30))
        .backoff(Duration::from_millis(5), Duration::from_millis(100))
}

/// Sends only when the test flushes (the interval is a minute), each batch retried every 5
/// to 20 ms for up to `budget`.
fn flushed_by_hand(budget: Duration) -> Config {
    let retry = RetryPolicy::default()
        .max_elapsed(budget)
        .backoff(Duration::from_millis(5), Duration::from_millis(20));
    Config::default()
        .flush_interval(Duration::from_secs(60))
        .retry(retry)
}

#[test]
fn an_event_refused_with_another_answer_while_the_endpoint_seemed_down_is_poison() {
    // Batches of one. The first five requests meet a proxy refusing everything (the fifth
    // makes it an endpoint failure: that event is kept); behind it, the receiver refuses
    // that very event for its content. A different answer: dead-lettered, not kept.
    let requests = Arc::new(AtomicUsize::new(0));
    let receiver = Receiver::start({
        let requests = Arc::clone(&requests);
        move |b| {
            if requests.fetch_add(1, Ordering::SeqCst) < 5 {
                Reply::problem(400, "blocked by proxy")
            } else if b.contains("correlation_id", "ev-00004") {
                Reply::problem(400, "event_category: unknown value")
            } else {
                Reply::created()
            }
        }
    });
    let config = flushed_by_hand(Duration::from_secs(5));
    let sink = HttpSink::new(receiver.url(), HttpConfig::default()).unwrap();
    let p = Pipeline::new(config, sink).unwrap();
    for id in ids(5) {
        record_all(&p, std::slice::from_ref(&id));
        assert!(p.flush(Duration::from_secs(10)).completed);
    }
    let report = p.close(Duration::from_secs(10));
    let s = report.stats;
    assert_eq!((s.dead_lettered, s.failed), (5, 0), "{s:?}");
    assert!(s.endpoint_refusals >= 1, "{s:?}");
    let reasons: Vec<String> = p.dead_letters().iter().map(|l| l.reason.clone()).collect();
    assert!(reasons[4].contains("unknown value"), "{reasons:?}");
    assert_all_settled(&s);
}

#[test]
fn batches_of_one_event_are_kept_once_the_endpoint_is_found_refusing_everything() {
    // A quiet service: each event goes alone. The receiver refuses everything for 1.5 s.
    let receiver = refusing_for(Duration::from_millis(1500), "blocked by proxy");
    let config = Config::default()
        .flush_interval(Duration::from_millis(10))
        .retry(quick_retries());
    let sink = HttpSink::new(receiver.url(), HttpConfig::default()).unwrap();
    let p = Pipeline::new(config, sink).unwrap();
    let all = ids(30);
    for id in &all {
        record_all(&p, std::slice::from_ref(id));
        std::thread::sleep(Duration::from_millis(60));
    }
    let report = p.close(Duration::from_secs(20));
    let s = report.stats;
    // The events refused before the run of five that shows the endpoint failing may be
    // dead-lettered, one a batch; none after it (each was, before: a batch of one ended
    // its own run).
    assert!(s.dead_lettered < 5, "{s:?}");
    assert!(s.endpoint_refusals > 0, "{s:?}");
    assert_eq!(s.delivered + s.dead_lettered, 30, "{s:?}");
    let delivered = receiver.delivered_field("correlation_id");
    assert_eq!(
        delivered,
        all[all.len() - delivered.len()..],
        "in order, once"
    );
    assert_all_settled(&s);
}

#[test]
fn a_run_of_poison_events_longer_than_a_walk_is_walked_past() {
    // Ten events at the head that the receiver refuses, all with the same answer: after
    // five it looks like a receiver refusing everything, but the rounds after walk 10,
    // then 20 events, reach the first good one and show the ten are poison.
    let receiver = Receiver::start(|b| {
        let poison = b.events.iter().any(|e| {
            e["correlation_id"]
                .as_str()
                .is_some_and(|id| id < "ev-00010")
        });
        if poison {
            Reply::problem(400, "validation failed")
        } else {
            Reply::created()
        }
    });
    // One batch of 100, taken when full (not by the interval, which a preempted recorder
    // could let cut it short).
    let config = Config::default()
        .batch_max_events(100)
        .flush_interval(Duration::from_secs(60))
        .retry(quick_retries());
    let sink = HttpSink::new(receiver.url(), HttpConfig::default()).unwrap();
    let p = Pipeline::new(config, sink).unwrap();
    let all = ids(100);
    record_all(&p, &all);
    let report = p.close(Duration::from_secs(20));
    let s = report.stats;
    assert_eq!(receiver.delivered_field("correlation_id"), all[10..]);
    assert_eq!((s.dead_lettered, s.delivered), (10, 90), "{s:?}");
    assert!(s.endpoint_refusals >= 2, "{s:?}");
    let letters: Vec<String> = p
        .dead_letters()
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(&l.event).unwrap();
            v["correlation_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(letters, all[..10]);
    assert_all_settled(&s);
}

#[test]
fn a_poison_event_among_good_ones_is_still_dead_lettered() {
    let receiver = Receiver::start(|b| {
        if b.contains("correlation_id", "ev-00007") {
            Reply::problem(400, "did not pass OpenAPI schema validation")
        } else {
            Reply::created()
        }
    });
    let config = Config::default().flush_interval(Duration::from_millis(20));
    let p = Pipeline::new(
        config,
        HttpSink::new(receiver.url(), HttpConfig::default()).unwrap(),
    )
    .unwrap();
    let all = ids(20);
    record_all(&p, &all);
    let report = p.close(Duration::from_secs(10));
    assert_eq!(report.stats.dead_lettered, 1);
    assert_eq!(report.stats.delivered, 19);
    assert_eq!(report.stats.endpoint_refusals, 0);
    assert_all_settled(&report.stats);
}

#[test]
fn retry_after_is_obeyed_on_every_path_with_a_store() {
    // The queue and the store drain; then with a queue of 4 and `Spill`, so most events
    // reach the store on the caller's thread.
    retry_after_is_obeyed(Config::default());
    retry_after_is_obeyed(
        Config::default()
            .queue_capacity(4)
            .overflow(Overflow::Spill),
    );
}

fn retry_after_is_obeyed(config: Config) {
    // 429 with Retry-After: 2 for the first 4 s. The retry budget (1 s) is shorter than the
    // Retry-After, so the batch goes to the store at once; the store drain must wait too.
    let started = Instant::now();
    let receiver = Receiver::start(move |_| {
        if started.elapsed() < Duration::from_secs(4) {
            Reply::status(429).retry_after("2")
        } else {
            Reply::created()
        }
    });
    let config = config.flush_interval(Duration::from_millis(20)).retry(
        RetryPolicy::default()
            .max_elapsed(Duration::from_secs(1))
            .backoff(Duration::from_millis(20), Duration::from_millis(200)),
    );
    let store = MemoryStore::new(MemoryStoreConfig::default());
    let p = Pipeline::with_store(
        config,
        HttpSink::new(receiver.url(), HttpConfig::default()).unwrap(),
        store,
    )
    .unwrap();
    let first = ids(10);
    record_all(&p, &first);
    std::thread::sleep(Duration::from_millis(300));
    let later: Vec<String> = (0..10).map(|i| format!("later-{i}")).collect();
    record_all(&p, &later);
    assert!(receiver.wait_for_delivered(20, Duration::from_secs(20)));
    let report = p.close(Duration::from_secs(5));
    let requests = receiver.requests();
    for pair in requests.windows(2) {
        if pair[0].status == 429 {
            let gap = pair[1].at - pair[0].at;
            assert!(
                gap >= Duration::from_millis(1950),
                "a request {gap:?} after a 429 asking for 2 s"
            );
        }
    }
    assert_eq!(
        receiver.delivered_field("correlation_id"),
        [first, later].concat()
    );
    assert_all_settled(&report.stats);
}

#[test]
fn a_rolling_restart_of_25_s_loses_nothing_at_defaults() {
    let url = refused_url();
    let addr = url.trim_start_matches("http://").to_owned();
    let p = Pipeline::new(
        Config::default().flush_interval(Duration::from_millis(50)),
        HttpSink::new(&url, HttpConfig::default()).unwrap(),
    )
    .unwrap();
    let all = ids(200);
    record_all(&p, &all);
    std::thread::sleep(Duration::from_secs(25));
    let receiver = Receiver::start_on(&addr, |_| Reply::created());
    assert!(receiver.wait_for_delivered(200, Duration::from_secs(30)));
    let report = p.close(Duration::from_secs(5));
    assert_eq!(report.stats.failed, 0, "{:?}", report.stats);
    assert_eq!(receiver.delivered_field("correlation_id"), all);
    assert_all_settled(&report.stats);
}

#[test]
fn an_early_413_is_heard_and_the_batch_split() {
    // Like DataStorage: 413 from Content-Length before reading the body, then the
    // connection closed. ~4.6 MiB of events, the server's limit lowered to 1 MiB.
    let receiver = Receiver::with_body_limit(1 << 20, |_| Reply::created());
    let config = Config::default()
        .flush_interval(Duration::from_millis(20))
        .queue_capacity(1000);
    let sink = DataStorageSink::new(&receiver.url()).unwrap();
    let p = Pipeline::new(config, sink).unwrap();
    let pad = "x".repeat(20_000);
    let all = ids(240);
    for id in &all {
        p.record_json(format!(r#"{{"correlation_id":"{id}","pad":"{pad}"}}"#).as_bytes())
            .unwrap();
    }
    let report = p.close(Duration::from_secs(30));
    assert_eq!(report.stats.failed, 0, "{:?}", report.stats);
    assert_eq!(receiver.delivered_field("correlation_id"), all);
    assert!(receiver.early_answers() >= 1);
    // Each 413 led to a split, none to a resend of the same body.
    assert_eq!(report.stats.retries, 0, "{:?}", report.stats);
    assert_all_settled(&report.stats);
}

#[test]
fn a_batch_that_keeps_failing_the_same_way_is_split_to_isolate_the_cause() {
    // A proxy that drops the connection (no answer at all) for bodies over 64 KiB.
    let receiver = Receiver::resetting_above(64 * 1024, |_| Reply::created());
    let config = Config::default()
        .flush_interval(Duration::from_millis(20))
        .retry(RetryPolicy::default().backoff(Duration::from_millis(5), Duration::from_millis(20)));
    let sink = HttpSink::new(receiver.url(), HttpConfig::default()).unwrap();
    let p = Pipeline::new(config, sink).unwrap();
    let pad = "x".repeat(2_000);
    let all = ids(200);
    for id in &all {
        p.record_json(format!(r#"{{"correlation_id":"{id}","pad":"{pad}"}}"#).as_bytes())
            .unwrap();
    }
    let report = p.close(Duration::from_secs(30));
    assert_eq!(report.stats.failed, 0, "{:?}", report.stats);
    assert_eq!(receiver.delivered_field("correlation_id"), all);
    assert_all_settled(&report.stats);
}

#[test]
fn after_close_returns_the_sink_is_never_called_again() {
    let calls = Arc::new(AtomicUsize::new(0));
    let sink = CallbackSink::new({
        let calls = Arc::clone(&calls);
        move |_: &[&[u8]]| {
            calls.fetch_add(1, Ordering::SeqCst);
            // Hangs well past close's deadline, then fails, so the batch would be retried.
            std::thread::sleep(Duration::from_millis(800));
            Outcome::retry("slow failure")
        }
    });
    let config = Config::default()
        .batch_max_events(5)
        .flush_interval(Duration::from_millis(5))
        .retry(RetryPolicy::default().backoff(Duration::from_millis(1), Duration::from_millis(1)));
    let p = Pipeline::new(config, sink).unwrap();
    record_all(&p, &ids(20));
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    let report = p.close(Duration::from_millis(200));
    assert!(started.elapsed() < Duration::from_millis(400));
    assert!(!report.completed);
    let at_close = calls.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        at_close,
        "sink called after close"
    );
    drop(p);
    assert_eq!(calls.load(Ordering::SeqCst), at_close);
}

#[test]
fn a_few_poison_events_at_the_head_of_the_store_do_not_block_the_rest() {
    // Two events the receiver refuses with the same answer, alone in their first batch
    // (which looks like an endpoint failure), then good events: once the good events are
    // behind them, walking past the head shows the two are poison.
    let sink = CallbackSink::new(|batch: &[&[u8]]| {
        if batch.iter().any(|e| e.windows(3).any(|w| w == b"bad")) {
            Outcome::rejected("HTTP 400: did not pass OpenAPI schema validation")
        } else {
            Outcome::Delivered
        }
    });
    let config = Config::default()
        .flush_interval(Duration::from_millis(5))
        .retry(
            RetryPolicy::default()
                .max_elapsed(Duration::from_millis(500))
                .backoff(Duration::from_millis(10), Duration::from_millis(50)),
        );
    let p =
        Pipeline::with_store(config, sink, MemoryStore::new(MemoryStoreConfig::default())).unwrap();
    p.record_json(br#"{"event_type":"t","what":"bad-1"}"#)
        .unwrap();
    p.record_json(br#"{"event_type":"t","what":"bad-2"}"#)
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    record_all(&p, &ids(20));
    let deadline = Instant::now() + Duration::from_secs(15);
    while p.stats().delivered < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let report = p.close(Duration::from_secs(5));
    let s = report.stats;
    assert_eq!(s.delivered, 20, "{s:?}");
    assert_eq!(s.dead_lettered, 2, "{s:?}");
    assert_all_settled(&s);
}

/// A sink that judges events itself (as the C, Go and Python callbacks do) and refuses
/// every one with the same bare answer.
struct RefusesAll {
    calls: Arc<AtomicUsize>,
}

impl auditbuf::Sink for RefusesAll {
    fn send(&mut self, _batch: &[&[u8]]) -> Outcome {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Outcome::rejected("refused by the callback")
    }

    fn rejections_are_final(&self) -> bool {
        true
    }
}

#[test]
fn a_sink_whose_rejections_are_final_gets_a_batch_of_nothing_but_bad_events_dead_lettered() {
    let calls = Arc::new(AtomicUsize::new(0));
    let config = flushed_by_hand(Duration::from_secs(30));
    let sink = RefusesAll {
        calls: Arc::clone(&calls),
    };
    let p = Pipeline::new(config, sink).unwrap();
    // Two batches of four, then six single events: a receiver's same answer for all of
    // them would be taken for a refusal of everything, and the events kept.
    for round in [4, 4, 1, 1, 1, 1, 1, 1] {
        record_all(&p, &ids(round));
        assert!(p.flush(Duration::from_secs(10)).completed);
    }
    let s = p.close(Duration::from_secs(10)).stats;
    assert_eq!((s.dead_lettered, s.failed, s.stored), (14, 0, 0), "{s:?}");
    assert_eq!(s.endpoint_refusals, 0, "{s:?}");
    // Each batch of four bisected once down to its four events (1 + 2 + 4 calls).
    assert_eq!(calls.load(Ordering::SeqCst), 2 * 7 + 6);
    assert_eq!(p.dead_letters().len(), 14);
    assert_all_settled(&s);
}
