//! HttpSink and DataStorageSink against a real HTTP receiver on 127.0.0.1, one scripted
//! answer per case. Every test checks the exact multiset of delivered events and the
//! accounting invariant.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use auditbuf::{
    BodyFormat, Config, DataStorageSink, HttpConfig, HttpSink, Pipeline, RetryPolicy, Stats,
};
use auditbuf_testkit::{Receiver, Reply, refused_url};

mod auth;

const CLOSE: Duration = Duration::from_secs(20);

fn fast_retry() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(10)
        .backoff(Duration::from_millis(5), Duration::from_millis(50))
}

fn config() -> Config {
    Config::default()
        .batch_max_events(50)
        .flush_interval(Duration::from_millis(20))
        .retry(fast_retry())
}

fn pipeline(url: &str, config: Config, http: HttpConfig) -> Pipeline {
    Pipeline::new(config, HttpSink::new(url, http).unwrap()).unwrap()
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("ev-{i:05}")).collect()
}

fn record_all(p: &Pipeline, ids: &[String]) {
    for id in ids {
        p.record_json(format!(r#"{{"event_type":"t","correlation_id":"{id}"}}"#).as_bytes())
            .unwrap();
    }
}

/// Counts of each correlation id delivered.
fn multiset(ids: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for id in ids {
        *m.entry(id).or_default() += 1;
    }
    m
}

fn assert_exactly_once(receiver: &Receiver, expected: &[String]) {
    assert_eq!(
        multiset(receiver.delivered_field("correlation_id")),
        multiset(expected.iter().cloned()),
        "delivered events differ from the expected multiset"
    );
}

fn assert_settled(stats: &Stats) {
    assert!(stats.is_consistent(), "{stats:?}");
    assert_eq!(stats.queued + stats.in_flight, 0, "{stats:?}");
}

#[test]
fn created_and_accepted_both_count_as_delivered_once() {
    // 202 means the server parked the batch in its own queue: never send it again.
    let receiver = Receiver::start(|b| {
        if b.index % 2 == 0 {
            Reply::created()
        } else {
            Reply::accepted()
        }
    });
    let p = pipeline(&receiver.url(), config(), HttpConfig::default());
    let all = ids(400);
    record_all(&p, &all);
    let report = p.close(CLOSE);
    assert!(report.completed);
    assert_exactly_once(&receiver, &all);
    assert_eq!(report.stats.delivered, 400);
    assert_eq!(report.stats.retries, 0);
    assert!(receiver.requests().iter().any(|r| r.status == 202));
    assert_settled(&report.stats);
}

#[test]
fn poison_events_are_bisected_out_and_dead_lettered() {
    let poison = ["ev-00013", "ev-00077", "ev-00078"];
    let receiver = Receiver::start(move |b| {
        if poison.iter().any(|p| b.contains("correlation_id", p)) {
            Reply::problem(400, "did not pass OpenAPI schema validation")
        } else {
            Reply::created()
        }
    });
    let p = pipeline(
        &receiver.url(),
        config().batch_max_events(100),
        HttpConfig::default(),
    );
    let all = ids(200);
    record_all(&p, &all);
    let report = p.close(CLOSE);
    let good: Vec<String> = all
        .iter()
        .filter(|i| !poison.contains(&i.as_str()))
        .cloned()
        .collect();
    assert_exactly_once(&receiver, &good);
    assert_eq!(report.stats.dead_lettered, 3);
    assert_eq!(report.stats.delivered, 197);
    let letters = p.dead_letters();
    let mut dead: Vec<String> = letters
        .iter()
        .map(|l| {
            serde_json::from_slice::<serde_json::Value>(&l.event).unwrap()["correlation_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    dead.sort();
    assert_eq!(dead, poison);
    assert!(
        letters[0]
            .reason
            .contains("did not pass OpenAPI schema validation"),
        "{}",
        letters[0].reason
    );
    assert_settled(&report.stats);
}

#[test]
fn a_blamed_index_is_confirmed_alone_with_few_requests() {
    let receiver = Receiver::start(|b| match b.position("correlation_id", "ev-00042") {
        Some(i) => Reply::problem(400, &format!("event at index {i} failed validation")),
        None => Reply::created(),
    });
    let p = pipeline(
        &receiver.url(),
        config().batch_max_events(100),
        HttpConfig::default(),
    );
    let all = ids(100);
    record_all(&p, &all);
    let report = p.close(CLOSE);
    assert_exactly_once(
        &receiver,
        &all.iter()
            .filter(|i| *i != "ev-00042")
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert_eq!(report.stats.dead_lettered, 1);
    // Whole batch, the part before, the blamed event alone, the part after.
    assert!(
        receiver.requests().len() <= 4,
        "{} requests",
        receiver.requests().len()
    );
    assert_settled(&report.stats);
}

#[test]
fn too_large_batches_are_split_until_they_fit() {
    let receiver = Receiver::start(|b| {
        if b.len > 7 {
            Reply::status(413)
        } else {
            Reply::created()
        }
    });
    let p = pipeline(
        &receiver.url(),
        config().batch_max_events(100),
        HttpConfig::default(),
    );
    let all = ids(250);
    record_all(&p, &all);
    let report = p.close(CLOSE);
    assert_exactly_once(&receiver, &all);
    assert!(
        receiver
            .requests()
            .iter()
            .filter(|r| r.status == 201)
            .all(|r| r.events <= 7)
    );
    assert_eq!(report.stats.dead_lettered, 0);
    assert_settled(&report.stats);
}

#[test]
fn a_single_event_still_too_large_is_dead_lettered() {
    let receiver = Receiver::start(|b| {
        if b.body_bytes > 2000 {
            Reply::status(413)
        } else {
            Reply::created()
        }
    });
    let p = pipeline(&receiver.url(), config(), HttpConfig::default());
    let small = ids(20);
    record_all(&p, &small[..10]);
    let big = "x".repeat(3000);
    p.record_json(format!(r#"{{"correlation_id":"big","pad":"{big}"}}"#).as_bytes())
        .unwrap();
    record_all(&p, &small[10..]);
    let report = p.close(CLOSE);
    assert_exactly_once(&receiver, &small);
    assert_eq!(report.stats.dead_lettered, 1);
    assert!(
        p.dead_letters()[0].reason.contains("413"),
        "{}",
        p.dead_letters()[0].reason
    );
    assert_settled(&report.stats);
}

#[test]
fn retry_after_is_honoured_on_429() {
    let receiver = Receiver::start(|b| {
        if b.index == 0 {
            Reply::status(429).retry_after("1")
        } else {
            Reply::created()
        }
    });
    let p = pipeline(&receiver.url(), config(), HttpConfig::default());
    let all = ids(10);
    record_all(&p, &all);
    let report = p.close(CLOSE);
    assert_exactly_once(&receiver, &all);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );
    assert_eq!(report.stats.retries, 1);
    assert_settled(&report.stats);
}

#[test]
fn server_errors_are_retried_until_the_server_recovers() {
    let receiver = Receiver::start(|b| {
        if b.index < 3 {
            Reply::status(500)
        } else {
            Reply::created()
        }
    });
    let p = pipeline(&receiver.url(), config(), HttpConfig::default());
    let all = ids(30);
    record_all(&p, &all);
    let report = p.close(CLOSE);
    assert_exactly_once(&receiver, &all);
    assert_eq!(report.stats.retries, 3);
    assert_eq!(report.stats.failed, 0);
    assert!(p.last_error().unwrap().contains("HTTP 500"));
    assert_settled(&report.stats);
}

#[test]
fn slow_answers_time_out_and_are_sent_again() {
    let receiver = Receiver::start(|b| {
        if b.index < 2 {
            Reply::created().slow(Duration::from_millis(1500))
        } else {
            Reply::created()
        }
    });
    let http = HttpConfig::default().timeout(Duration::from_millis(300));
    let p = pipeline(&receiver.url(), config(), http);
    let all = ids(20);
    record_all(&p, &all);
    let report = p.close(CLOSE);
    assert_exactly_once(&receiver, &all);
    assert_eq!(report.stats.retries, 2);
    assert!(
        p.last_error().unwrap().to_lowercase().contains("timeout"),
        "{:?}",
        p.last_error()
    );
    assert_settled(&report.stats);
}

#[test]
fn refused_connections_fail_the_batch_after_the_retry_budget() {
    let retry = RetryPolicy::default()
        .max_attempts(3)
        .backoff(Duration::from_millis(1), Duration::from_millis(5));
    let p = pipeline(&refused_url(), config().retry(retry), HttpConfig::default());
    let all = ids(30);
    record_all(&p, &all);
    let report = p.close(CLOSE);
    assert_eq!(report.stats.failed, 30);
    assert_eq!(report.stats.delivered, 0);
    assert!(report.stats.retries >= 3);
    assert!(
        p.last_error().unwrap().contains("127.0.0.1"),
        "{:?}",
        p.last_error()
    );
    assert_settled(&report.stats);
}

#[test]
fn wrong_endpoint_is_retried_not_dead_lettered() {
    let receiver = Receiver::start(|_| Reply::status(404));
    let retry = RetryPolicy::default()
        .max_attempts(2)
        .backoff(Duration::from_millis(1), Duration::from_millis(2));
    let p = pipeline(
        &receiver.url(),
        config().retry(retry),
        HttpConfig::default(),
    );
    record_all(&p, &ids(5));
    let report = p.close(CLOSE);
    assert_eq!(report.stats.failed, 5);
    assert_eq!(report.stats.dead_lettered, 0);
    assert_settled(&report.stats);
}

#[test]
fn ndjson_bodies_headers_and_content_length() {
    let receiver = Receiver::start(|b| {
        let ok = b.header("content-type") == Some("application/x-ndjson")
            && b.header("x-tenant") == Some("blue")
            && b.header("content-length")
                .map(|v| v.parse::<usize>().unwrap())
                == Some(b.body_bytes)
            && b.header("transfer-encoding").is_none();
        if ok {
            Reply::created()
        } else {
            Reply::status(400)
        }
    });
    let http = HttpConfig::default()
        .format(BodyFormat::Ndjson)
        .header("X-Tenant", "blue");
    let p = pipeline(&receiver.url(), config(), http);
    let all = ids(60);
    // Pretty-printed input must still travel as one line per event.
    for id in &all {
        p.record_json(format!("{{\n  \"correlation_id\": \"{id}\"\n}}").as_bytes())
            .unwrap();
    }
    let report = p.close(CLOSE);
    assert_exactly_once(&receiver, &all);
    assert_eq!(report.stats.dead_lettered, 0);
    assert_settled(&report.stats);
}

#[test]
fn datastorage_batches_stay_within_the_server_limits() {
    // Pipeline settings far above the server's: the sink's limits must win.
    let receiver = Receiver::start(|b| {
        if b.path != DataStorageSink::PATH {
            Reply::status(404)
        } else if b.len > 500 {
            Reply::problem(400, "Batch Size Exceeded")
        } else if b.body_bytes >= DataStorageSink::MAX_BODY_BYTES {
            Reply::status(413)
        } else {
            Reply::created()
        }
    });
    let config = Config::default()
        .batch_max_events(5000)
        .batch_max_bytes(64 << 20)
        .queue_capacity(20_000)
        .flush_interval(Duration::from_millis(50))
        .retry(fast_retry());
    let p = Pipeline::new(config, DataStorageSink::new(&receiver.url()).unwrap()).unwrap();
    let many = ids(1200);
    record_all(&p, &many);
    let pad = "y".repeat(60_000);
    let big: Vec<String> = (0..200).map(|i| format!("big-{i:03}")).collect();
    for id in &big {
        p.record_json(format!(r#"{{"correlation_id":"{id}","pad":"{pad}"}}"#).as_bytes())
            .unwrap();
    }
    let report = p.close(Duration::from_secs(60));
    let expected: Vec<String> = many.iter().chain(&big).cloned().collect();
    assert_exactly_once(&receiver, &expected);
    for r in receiver.requests() {
        assert_eq!(r.status, 201, "{r:?}");
        assert!(
            r.events <= 500 && r.body_bytes < DataStorageSink::MAX_BODY_BYTES,
            "{r:?}"
        );
        assert_eq!(r.content_length, Some(r.body_bytes));
    }
    assert_settled(&report.stats);
}

#[test]
fn an_absurd_retry_after_is_ignored_not_obeyed() {
    let receiver = Receiver::start(|b| {
        if b.index == 0 {
            Reply::status(503).retry_after("99999999999999999999")
        } else {
            Reply::created()
        }
    });
    // Over a day is a broken server, not a plan: the normal backoff applies (and nothing
    // overflows computing the deadline).
    let p = pipeline(&receiver.url(), config(), HttpConfig::default());
    let first = ids(3);
    record_all(&p, &first);
    let report = p.flush(CLOSE);
    assert!(report.completed);
    assert_eq!(report.stats.failed, 0);
    let later = vec!["later".to_owned()];
    record_all(&p, &later);
    let report = p.close(CLOSE);
    assert_exactly_once(&receiver, &[first, later].concat());
    assert_settled(&report.stats);
}

#[test]
fn a_server_that_does_not_do_expectations_gets_the_body_again_without_one() {
    // A proxy answering 417 to `Expect: 100-continue`, which large bodies carry.
    let receiver = Receiver::start(|b| match b.header("expect") {
        Some(_) => Reply::status(417),
        None => Reply::created(),
    });
    // One batch of 12 events of 6 KB: a body over 64 KiB.
    let p = pipeline(
        &receiver.url(),
        config().flush_interval(Duration::from_secs(60)),
        HttpConfig::default(),
    );
    let pad = "x".repeat(6_000);
    let all = ids(12);
    for id in &all {
        p.record_json(format!(r#"{{"correlation_id":"{id}","pad":"{pad}"}}"#).as_bytes())
            .unwrap();
    }
    let report = p.close(CLOSE);
    assert_exactly_once(&receiver, &all);
    let requests = receiver.requests();
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        [417, 201]
    );
    assert!(requests[0].body_bytes > 64 * 1024);
    assert_eq!(report.stats.dead_lettered, 0, "{:?}", report.stats);
    assert_eq!(report.stats.retries, 0, "{:?}", report.stats);
    assert_settled(&report.stats);
}

#[test]
fn too_large_is_counted_as_soon_as_dead_lettered() {
    let receiver = Receiver::start(|b| {
        if b.body_bytes > 100 {
            Reply::status(413)
        } else {
            Reply::created()
        }
    });
    let p = pipeline(&receiver.url(), config(), HttpConfig::default());
    let pad = "x".repeat(200);
    p.record_json(format!(r#"{{"correlation_id":"big","pad":"{pad}"}}"#).as_bytes())
        .unwrap();
    // Nothing comes after it: the counts published with the dead letter must say why
    // (they said 0 too large until a later publish, and the metrics `rejected`).
    let deadline = Instant::now() + CLOSE;
    let mut now = p.stats();
    while now.dead_lettered == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
        now = p.stats();
    }
    assert_eq!(
        (now.dead_lettered, now.dead_lettered_too_large),
        (1, 1),
        "{now:?}"
    );
    let metrics = p.metrics_text();
    assert!(
        metrics.contains(
            r#"audit_events_dead_lettered_total{service="auditbuf",reason="rejected"} 0"#
        ),
        "{metrics}"
    );
    let report = p.close(CLOSE);
    assert_settled(&report.stats);
}

#[test]
fn a_redirect_is_not_followed_and_its_target_is_named() {
    let receiver = Receiver::start(|b| {
        if b.index == 0 {
            let mut moved = Reply::status(308);
            moved.headers.push((
                "Location".into(),
                "https://u:pw@elsewhere.example/ev".into(),
            ));
            moved
        } else {
            Reply::created()
        }
    });
    let p = pipeline(&receiver.url(), config(), HttpConfig::default());
    let all = ids(5);
    record_all(&p, &all);
    let report = p.close(CLOSE);
    // Retried where it was configured to go, never sent elsewhere.
    assert_exactly_once(&receiver, &all);
    assert_eq!(receiver.requests().len(), 2);
    let error = p.last_error().unwrap_or_default();
    assert!(
        error.contains("HTTP 308 from http://127.0.0.1:")
            && error.contains("redirects to https://u:***@elsewhere.example/ev (not followed"),
        "{error}"
    );
    assert_eq!(report.stats.retries, 1);
    assert_settled(&report.stats);
}

#[test]
fn a_2xx_whose_body_never_ends_does_not_hold_the_flush_thread() {
    use std::io::{BufRead, BufReader, Read, Write};
    // A receiver that answers 200 at once, then trickles a chunked body that never ends.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ev", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                while stream.write_all(b"1\r\n \r\n").is_ok() {
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
        }
    });
    let http = HttpConfig::default().timeout(Duration::from_secs(30));
    let p = pipeline(&url, config(), http);
    record_all(&p, &ids(1));
    // Delivered once the status came; the body is given up on after a second, not after
    // the request's 30 s timeout.
    assert!(p.flush(Duration::from_secs(10)).completed);
    let report = p.close(CLOSE);
    assert_eq!(report.stats.delivered, 1, "{:?}", report.stats);
    assert_settled(&report.stats);
}
