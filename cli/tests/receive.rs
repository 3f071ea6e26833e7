//! `auditbuf receive` started as a user starts it, on port 0: a real pipeline posts to it
//! through `DataStorageSink` and both sides count the same events; bad bodies get 400
//! and it keeps serving; `--status 503` makes the pipeline retry and then fail.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use assert_cmd::Command as AssertCommand;
use auditbuf::{AuditEvent, Config, DataStorageSink, EventData, Pipeline, Report, RetryPolicy};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// A running `auditbuf receive`; killed when dropped, so a failing test leaves no process.
struct Receiver {
    child: Child,
    /// `http://127.0.0.1:PORT`, from its first line.
    url: String,
    lines: mpsc::Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Receiver {
    fn start(args: &[&str]) -> Receiver {
        let mut child = Command::new(env!("CARGO_BIN_EXE_auditbuf"))
            .args(["receive", "--listen", "127.0.0.1:0"])
            .args(args)
            // A process that aborts does so at once, not after printing a backtrace (while
            // the test goes on).
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let first = lines.recv_timeout(WAIT).expect("no first line");
        let url = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line: {first}"))
            .to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        assert!(!url.ends_with(":0"), "the port it got is shown: {url}");
        Receiver {
            child,
            url,
            lines,
            stderr: Some(stderr),
        }
    }

    fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// Stops it as Ctrl-C does; what it printed after its first line. It must exit 0,
    /// print its totals last and never panic.
    fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "still running after Ctrl-C");
            thread::sleep(Duration::from_millis(10));
        };
        let lines: Vec<String> = self.lines.iter().collect();
        let stderr = self.stderr.take().unwrap().join().unwrap();
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(status.code(), Some(0), "{lines:?}\n{stderr}");
        assert!(
            lines.last().is_some_and(|l| l.starts_with("totals: ")),
            "{lines:?}"
        );
        lines
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The events in the lines `<time> <status> batch of N events, B bytes`, and how many.
fn batches(lines: &[String], status: u16) -> (u64, u64) {
    let marker = format!(" {status} batch of ");
    let counts: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.split_once(&marker))
        .map(|(_, rest)| rest.split(' ').next().unwrap().parse().unwrap())
        .collect();
    (counts.len() as u64, counts.iter().sum())
}

fn pipeline(url: &str, retry: RetryPolicy) -> Pipeline {
    let config = Config::default()
        .service("receive-test")
        .batch_max_events(4)
        .flush_interval(Duration::from_millis(20))
        .retry(retry);
    Pipeline::new(config, DataStorageSink::new(url).unwrap()).unwrap()
}

/// Records `ids.len()` typed events, one per correlation id, and closes.
fn record_and_close(pipeline: Pipeline, ids: &[String]) -> Report {
    for id in ids {
        pipeline
            .record(&AuditEvent {
                actor_type: Some("service"),
                actor_id: Some("gateway"),
                event_data: EventData::Json(r#"{"signal_name":"HighMemoryUsage"}"#),
                ..AuditEvent::new(
                    "gateway.signal.received",
                    "gateway",
                    "received",
                    "success",
                    id,
                )
            })
            .unwrap();
    }
    pipeline.close(WAIT)
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("rr-{i:03}")).collect()
}

#[test]
fn a_pipeline_delivers_every_event_and_the_receiver_counts_the_same() {
    let receiver = Receiver::start(&["--print"]);
    let ids = ids(10);
    let report = record_and_close(pipeline(&receiver.url, RetryPolicy::default()), &ids);
    let s = report.stats;
    assert!(report.completed && s.is_consistent(), "{s:?}");
    assert_eq!((s.recorded, s.delivered), (10, 10), "{s:?}");

    let lines = receiver.stop();
    let (n, events) = batches(&lines, 201);
    assert_eq!(events, 10, "{lines:?}");
    assert_eq!(n, s.sends, "{lines:?}");
    // --print: each event on its own line, as sent.
    let printed: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            let event: Value = serde_json::from_str(l).unwrap();
            assert_eq!(event["event_type"], "gateway.signal.received");
            event["correlation_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(printed, ids);
    let totals = lines.last().unwrap();
    assert!(
        totals.contains(&format!("; 201: {n} batches, 10 events, ")),
        "{totals}"
    );
}

/// `method path` with `body` over a connection of its own; the status and the body.
fn request(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(body).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap())
}

#[test]
fn bad_bodies_get_400_as_problem_json_and_it_keeps_serving() {
    let receiver = Receiver::start(&[]);
    let addr = receiver.addr().to_owned();
    let batch = DataStorageSink::PATH;
    // A body claimed far beyond memory, which tiny_http would allocate to discard: left
    // unanswered, and the receiver lives on.
    let mut conn = TcpStream::connect(&addr).unwrap();
    let head = format!(
        "POST {batch} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000\r\n\r\n[{{}}]"
    );
    conn.write_all(head.as_bytes()).unwrap();
    drop(conn);
    let too_many = format!("[{}{{}}]", "{},".repeat(500));
    for body in [
        &b"not json"[..],
        b"{\"event_type\":\"x\"}",
        b"[]",
        b"[{}, 1]",
        too_many.as_bytes(),
    ] {
        let (status, problem) = request(&addr, "POST", batch, body);
        assert_eq!(status, 400, "{problem}");
        assert_eq!(problem["status"], 400);
        assert_eq!(problem["instance"], batch);
        let kind = problem["type"].as_str().unwrap_or_default();
        assert!(
            kind.starts_with("https://kubernaut.ai/problems/"),
            "{problem}"
        );
        assert!(problem["title"].is_string() && problem["detail"].is_string());
    }
    // Over 5 MiB: 413, answered before the body is read (and the body then discarded).
    assert_eq!(request(&addr, "POST", batch, &vec![b' '; 6 << 20]).0, 413);
    assert_eq!(request(&addr, "GET", batch, b"").0, 405);
    let other = request(&addr, "POST", "/api/v1/audit/events", b"[{}]");
    assert_eq!(other.0, 404);

    let (status, created) = request(&addr, "POST", batch, br#"[{"a":1},{"b":2}]"#);
    assert_eq!(status, 201, "{created}");
    let ids_created = created["event_ids"].as_array().map(Vec::len);
    assert_eq!(ids_created, Some(2), "{created}");
    let report = record_and_close(pipeline(&receiver.url, RetryPolicy::default()), &ids(3));
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    assert_eq!(report.stats.delivered, 3, "{:?}", report.stats);

    let lines = receiver.stop();
    assert_eq!(batches(&lines, 201).1, 5, "{lines:?}");
    let totals = lines.last().unwrap();
    let refused = "; 400: 5 requests; 404: 1 request; 405: 1 request; 413: 2 requests";
    assert!(totals.contains(refused), "{totals}");
}

#[test]
fn status_503_makes_the_pipeline_retry_then_count_the_events_failed() {
    let receiver = Receiver::start(&["--status", "503"]);
    let retry = RetryPolicy::default()
        .max_attempts(3)
        .backoff(Duration::from_millis(5), Duration::from_millis(20));
    let report = record_and_close(pipeline(&receiver.url, retry), &ids(4));
    let s = report.stats;
    // Without a backing store, a batch whose retries ran out counts as failed.
    assert!(s.is_consistent(), "{s:?}");
    assert_eq!(
        (s.delivered, s.failed, s.batches_failed),
        (0, 4, 1),
        "{s:?}"
    );
    assert_eq!((s.sends, s.retries), (3, 3), "{s:?}");

    let lines = receiver.stop();
    assert_eq!(batches(&lines, 503), (3, 12), "{lines:?}");
    let totals = lines.last().unwrap();
    assert!(totals.contains("; 503: 3 batches, 12 events, "), "{totals}");
}

#[test]
fn it_listens_on_loopback_unless_told_and_says_why_it_cannot() {
    let auditbuf = |args: &[&str]| {
        let mut cmd = AssertCommand::new(env!("CARGO_BIN_EXE_auditbuf"));
        cmd.arg("receive").args(args).output().unwrap()
    };
    let help = auditbuf(&["--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("[default: 127.0.0.1:8080]"));
    let refused = auditbuf(&["--listen", "256.0.0.1:1"]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let why = "auditbuf: cannot listen on 256.0.0.1:1: ";
    assert!(stderr.starts_with(why), "{stderr}");
    assert_eq!(auditbuf(&["--status", "99"]).status.code(), Some(2));
}
