//! Issue 18's logging rules, through the `log` facade and a real receiver on 127.0.0.1:
//! failures and drops are logged at most once per reason per interval, with the count
//! since the last line; no line ever carries the bearer token or an event's body. Alone in
//! its binary: the logger is process-wide.

use std::time::{Duration, Instant};

use auditbuf::{Config, Error, HttpConfig, HttpSink, Pipeline, RetryPolicy};
use auditbuf_testkit::{Receiver, Reply};

#[path = "common/log_lines.rs"]
mod log_lines;
use log_lines::LINES;

const TOKEN: &str = "tok-3f9a7c-SECRET";
const SECRET: &str = "body-7d1e-SECRET";

fn lines_with(needle: &str) -> Vec<String> {
    let lines = LINES.lock().unwrap();
    lines
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

#[test]
fn logs_are_rate_limited_and_carry_neither_tokens_nor_events() {
    log_lines::install(log::LevelFilter::Trace);

    // The receiver fails every request for 2 s (503), refuses the events marked poison for
    // good (400, with the event's text echoed in nothing we log), and takes the rest.
    let started = Instant::now();
    let receiver = Receiver::start(move |batch| {
        if started.elapsed() < Duration::from_secs(2) {
            Reply::status(503)
        } else if batch.events.iter().any(|e| e["event_type"] == "poison") {
            Reply::problem(400, "validation failed")
        } else {
            Reply::created()
        }
    });
    let config = Config::default()
        .queue_capacity(8)
        .flush_interval(Duration::from_millis(10))
        .retry(
            RetryPolicy::default().backoff(Duration::from_millis(10), Duration::from_millis(50)),
        );
    let sink = HttpSink::new(receiver.url(), HttpConfig::default().bearer_token(TOKEN)).unwrap();
    let p = Pipeline::new(config, sink).unwrap();

    // Overload a queue of 8 for 3 s: thousands of calls turned away with `Full`.
    let mut full = 0u64;
    let mut taken = 0u64;
    let until = Instant::now() + Duration::from_secs(3);
    let mut i = 0u64;
    while Instant::now() < until {
        let kind = if i % 50 == 7 { "poison" } else { "login" };
        let event = format!(r#"{{"event_type":"{kind}","n":{i},"secret":"{SECRET}"}}"#);
        match p.record_json(event.as_bytes()) {
            Ok(()) => taken += 1,
            Err(Error::Full) => full += 1,
            Err(e) => panic!("{e}"),
        }
        i += 1;
        if i.is_multiple_of(64) {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let report = p.close(Duration::from_secs(10));
    assert!(report.completed);
    let stats = report.stats;
    assert!(stats.is_consistent(), "{stats:?}");
    assert_eq!(stats.rejected.queue_full, full);
    assert_eq!(stats.recorded, taken);
    assert_eq!(stats.delivered + stats.dead_lettered, taken, "{stats:?}");
    assert!(
        full > 1_000 && stats.dead_lettered > 0 && stats.retries > 0,
        "{stats:?}"
    );

    let lines = LINES.lock().unwrap().clone();
    eprintln!("{}", lines.join("\n"));
    for line in &lines {
        assert!(
            !line.contains(TOKEN),
            "a log line carries the token: {line}"
        );
        assert!(
            !line.contains(SECRET),
            "a log line carries an event: {line}"
        );
    }
    // One line per reason per 10 s, each with the count since the last: over ~3 s, at most
    // the first line and the one `close` forces.
    let full_lines = lines_with("(queue_full)");
    assert!(
        (1..=2).contains(&full_lines.len()),
        "queue_full lines: {full_lines:#?}"
    );
    let logged: u64 = full_lines
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(
        logged >= 1 && logged <= full,
        "{logged} logged of {full}: {full_lines:#?}"
    );
    let retry_lines = lines_with("being retried");
    assert!(
        (1..=2).contains(&retry_lines.len()),
        "retry lines: {retry_lines:#?}"
    );
    let refused = lines_with("refused for good");
    assert!(
        (1..=2).contains(&refused.len()),
        "dead-letter lines: {refused:#?}"
    );
    assert!(
        lines.len() <= 12,
        "{} log lines for 3 s of trouble:\n{}",
        lines.len(),
        lines.join("\n")
    );

    // A token file deleted while the receiver keeps taking events: the token read before
    // is sent, and the warning that the file could not be read again comes once, not once
    // a request.
    let dir = std::env::temp_dir().join(format!("auditbuf-logging-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let receiver = Receiver::start(|_| Reply::created());
    let http = HttpConfig::default().token_file(&token_file);
    let p = Pipeline::new(
        Config::default(),
        HttpSink::new(receiver.url(), http).unwrap(),
    )
    .unwrap();
    std::fs::remove_file(&token_file).unwrap();
    for n in 0..20 {
        p.record_json(format!(r#"{{"event_type":"login","n":{n}}}"#).as_bytes())
            .unwrap();
        assert!(p.flush(Duration::from_secs(5)).completed);
    }
    let report = p.close(Duration::from_secs(5));
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    assert_eq!(report.stats.delivered, 20, "{:?}", report.stats);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 20);
    let sent = format!("Bearer {TOKEN}");
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(sent.as_str()))
    );
    let warned = lines_with("could not be read again");
    assert_eq!(warned.len(), 1, "{warned:#?}");
    let _ = std::fs::remove_dir_all(&dir);

    // A receiver refusing everything: the line says with what.
    let receiver = Receiver::start(|_| Reply::problem(400, "blocked by proxy"));
    let config = Config::default().retry(
        RetryPolicy::default()
            .max_elapsed(Duration::from_millis(300))
            .backoff(Duration::from_millis(5), Duration::from_millis(20)),
    );
    let p = Pipeline::new(
        config,
        HttpSink::new(receiver.url(), HttpConfig::default()).unwrap(),
    )
    .unwrap();
    for n in 0..3 {
        p.record_json(format!(r#"{{"event_type":"login","n":{n}}}"#).as_bytes())
            .unwrap();
    }
    let report = p.close(Duration::from_secs(5));
    assert!(report.stats.endpoint_refusals > 0, "{:?}", report.stats);
    let refusing = lines_with("treating it as an endpoint failure");
    let said = format!(
        "keeping the events: HTTP 400 from {}: Validation Error: blocked by proxy",
        receiver.url()
    );
    assert!(refusing.iter().all(|l| l.ends_with(&said)), "{refusing:#?}");
    assert!(!refusing.is_empty());
}
