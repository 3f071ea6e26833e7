//! A scriptable HTTP receiver on 127.0.0.1 for auditbuf's tests and benchmarks.
//!
//! A script decides each answer from the batch it received (201, 202, 400 on a poison
//! event, 413 above a size, 429 with `Retry-After`, 500 a few times, slow answers…); the
//! receiver keeps every event it acknowledged, so a test can compare the exact multiset of
//! delivered events with what it recorded.

#![warn(missing_docs)]

mod http;
pub mod postgres;
pub mod rabbitmq;

use http::{Early, Request, Response, Server};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use serde_json::value::RawValue;

/// One request as the script sees it.
#[derive(Debug)]
pub struct Batch {
    /// 0 for the first request, 1 for the second, …
    pub index: usize,
    /// The events of the body, parsed (empty in counting mode).
    pub events: Vec<Value>,
    /// Number of events in the body.
    pub len: usize,
    /// Body size in bytes.
    pub body_bytes: usize,
    /// Request path.
    pub path: String,
    /// Request headers, names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Batch {
    /// The value of header `name` (lower case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether some event has `field` (a top-level key, or inside `event_data`) equal to `value`.
    pub fn contains(&self, field: &str, value: &str) -> bool {
        self.events
            .iter()
            .any(|e| field_of(e, field) == Some(value))
    }

    /// Index of the first event with `field` equal to `value`.
    pub fn position(&self, field: &str, value: &str) -> Option<usize> {
        self.events
            .iter()
            .position(|e| field_of(e, field) == Some(value))
    }
}

fn field_of<'a>(event: &'a Value, field: &str) -> Option<&'a str> {
    event
        .get(field)
        .or_else(|| event.get("event_data").and_then(|d| d.get(field)))
        .and_then(Value::as_str)
}

/// The receiver's answer to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Whether a 2xx counts the batch as delivered. False for answers the client is expected
    /// to give up on (too slow): it never saw the acknowledgement.
    pub acknowledged: bool,
}

impl Reply {
    /// An answer with `status` and an empty JSON body.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: if status == 201 {
                r#"{"event_ids":[],"message":"created"}"#.to_owned()
            } else {
                String::new()
            },
            delay: Duration::ZERO,
            acknowledged: (200..300).contains(&status),
        }
    }

    /// 201 Created.
    pub fn created() -> Reply {
        Reply::status(201)
    }

    /// 202 Accepted, as DataStorage answers when it parks a batch in its own queue.
    pub fn accepted() -> Reply {
        let mut r = Reply::status(202);
        r.body = r#"{"status":"accepted","message":"queued to DLQ","count":0}"#.to_owned();
        r
    }

    /// An `application/problem+json` answer with `detail`.
    pub fn problem(status: u16, detail: &str) -> Reply {
        let mut r = Reply::status(status);
        r.body = serde_json::json!({
            "type": "https://kubernaut.ai/problems/validation-error",
            "title": "Validation Error",
            "status": status,
            "detail": detail,
        })
        .to_string();
        r.headers
            .push(("Content-Type".into(), "application/problem+json".into()));
        r
    }

    /// Adds a `Retry-After` header.
    pub fn retry_after(mut self, value: &str) -> Reply {
        self.headers.push(("Retry-After".into(), value.into()));
        self
    }

    /// Answers only after `delay`, and does not count the batch as delivered.
    pub fn slow(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self.acknowledged = false;
        self
    }
}

type Script = dyn Fn(&Batch) -> Reply + Send + Sync;

#[derive(Default)]
struct Log {
    delivered: Vec<Value>,
    requests: Vec<RequestLog>,
}

/// What the receiver saw of one request and how it answered.
#[derive(Debug, Clone)]
pub struct RequestLog {
    /// Events in the body.
    pub events: usize,
    /// Body size in bytes.
    pub body_bytes: usize,
    /// The `Content-Length` header, if sent.
    pub content_length: Option<usize>,
    /// The `Authorization` header, if sent.
    pub authorization: Option<String>,
    /// The status answered.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

struct State {
    script: Box<Script>,
    keep_events: bool,
    next_index: AtomicUsize,
    log: Mutex<Log>,
    changed: Condvar,
    delivered_count: AtomicU64,
    early_answers: AtomicU64,
}

/// A running receiver. Stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    state: Arc<State>,
    _server: Server,
}

impl Receiver {
    /// Starts a receiver that keeps every acknowledged event, answering as `script` says.
    pub fn start(script: impl Fn(&Batch) -> Reply + Send + Sync + 'static) -> Receiver {
        Self::launch(Box::new(script), true, 8)
    }

    /// Starts a receiver that only counts events (no parsing into values), for throughput
    /// runs; `script` sees batches with empty `events`.
    pub fn counting(script: impl Fn(&Batch) -> Reply + Send + Sync + 'static) -> Receiver {
        Self::launch(Box::new(script), false, 4)
    }

    /// Starts a receiver like [`start`](Self::start) on a given address, such as the one
    /// [`refused_url`] returned: until then connections there are refused.
    pub fn start_on(
        addr: &str,
        script: impl Fn(&Batch) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        Self::launch_on(addr, Box::new(script), true, 8)
    }

    /// Starts a receiver like [`start`](Self::start) that, like DataStorage, answers 413
    /// from the `Content-Length` header alone when the body is over `max_body` bytes, and
    /// closes the connection without reading the body.
    pub fn with_body_limit(
        max_body: usize,
        script: impl Fn(&Batch) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        let early: Arc<Early> = Arc::new(move |_headers: &[(String, String)], length: usize| {
            (length > max_body).then(|| Response {
                status: 413,
                headers: Vec::new(),
                body: String::new(),
            })
        });
        Self::launch_with("127.0.0.1:0", Box::new(script), true, Some(early))
    }

    /// Starts a receiver like [`start`](Self::start) behind something like a proxy that
    /// drops the connection, without any answer, when the body is over `max_body` bytes.
    pub fn resetting_above(
        max_body: usize,
        script: impl Fn(&Batch) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        let early: Arc<Early> = Arc::new(move |_headers: &[(String, String)], length: usize| {
            (length > max_body).then(|| Response {
                status: 0,
                headers: Vec::new(),
                body: String::new(),
            })
        });
        Self::launch_with("127.0.0.1:0", Box::new(script), true, Some(early))
    }

    fn launch(script: Box<Script>, keep_events: bool, _threads: usize) -> Receiver {
        Self::launch_on("127.0.0.1:0", script, keep_events, 0)
    }

    fn launch_on(addr: &str, script: Box<Script>, keep_events: bool, _threads: usize) -> Receiver {
        Self::launch_with(addr, script, keep_events, None)
    }

    fn launch_with(
        addr: &str,
        script: Box<Script>,
        keep_events: bool,
        early: Option<Arc<Early>>,
    ) -> Receiver {
        let state = Arc::new(State {
            script,
            keep_events,
            next_index: AtomicUsize::new(0),
            log: Mutex::new(Log::default()),
            changed: Condvar::new(),
            delivered_count: AtomicU64::new(0),
            early_answers: AtomicU64::new(0),
        });
        let handler = {
            let state = Arc::clone(&state);
            Arc::new(move |request: Request| handle(&state, request))
        };
        let early = early.map(|e| {
            let state = Arc::clone(&state);
            let counted: Arc<Early> =
                Arc::new(move |headers: &[(String, String)], length: usize| {
                    let answer = e(headers, length)?;
                    state.early_answers.fetch_add(1, Ordering::SeqCst);
                    log_request(&state, headers, 0, 0, answer.status);
                    Some(answer)
                });
            counted
        });
        let server = Server::start(addr, handler, early);
        Receiver {
            addr: server.addr(),
            state,
            _server: server,
        }
    }

    /// Requests answered from their headers alone (see [`with_body_limit`](Self::with_body_limit)).
    pub fn early_answers(&self) -> u64 {
        self.state.early_answers.load(Ordering::SeqCst)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Events acknowledged so far, in arrival order.
    pub fn delivered(&self) -> Vec<Value> {
        lock(&self.state.log).delivered.clone()
    }

    /// Number of events acknowledged so far (also in counting mode).
    pub fn delivered_count(&self) -> u64 {
        self.state.delivered_count.load(Ordering::SeqCst)
    }

    /// The string field `field` of every acknowledged event, in arrival order.
    pub fn delivered_field(&self, field: &str) -> Vec<String> {
        lock(&self.state.log)
            .delivered
            .iter()
            .map(|e| field_of(e, field).unwrap_or("<missing>").to_owned())
            .collect()
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<RequestLog> {
        lock(&self.state.log).requests.clone()
    }

    /// Waits until at least `n` events were acknowledged; false on timeout.
    pub fn wait_for_delivered(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut log = lock(&self.state.log);
        while self.delivered_count() < n {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            log = match self.state.changed.wait_timeout(log, deadline - now) {
                Ok((l, _)) => l,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }
}

/// A URL on 127.0.0.1 where nothing listens: connections are refused.
pub fn refused_url() -> String {
    let port = match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("cannot bind 127.0.0.1: {e}"),
    };
    format!("http://127.0.0.1:{port}")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn handle(state: &State, request: Request) -> Response {
    let Request {
        path,
        headers,
        body,
    } = request;
    let ndjson = headers
        .iter()
        .any(|(n, v)| n == "content-type" && v.contains("ndjson"));
    let (events, len) = match parse(&body, ndjson, state.keep_events) {
        Some(parsed) => parsed,
        None => {
            let reply = Reply::problem(400, "request body is not a JSON array of objects");
            log_request(state, &headers, body.len(), 0, reply.status);
            return response(reply);
        }
    };
    let batch = Batch {
        index: state.next_index.fetch_add(1, Ordering::SeqCst),
        events,
        len,
        body_bytes: body.len(),
        path,
        headers,
    };
    let reply = (state.script)(&batch);
    if !reply.delay.is_zero() {
        std::thread::sleep(reply.delay);
    }
    {
        let mut log = lock(&state.log);
        log.requests.push(RequestLog {
            events: batch.len,
            body_bytes: batch.body_bytes,
            content_length: batch.header("content-length").and_then(|v| v.parse().ok()),
            authorization: batch.header("authorization").map(str::to_owned),
            status: reply.status,
            at: Instant::now(),
        });
        if reply.acknowledged && (200..300).contains(&reply.status) {
            state
                .delivered_count
                .fetch_add(batch.len as u64, Ordering::SeqCst);
            log.delivered.extend(batch.events);
        }
    }
    state.changed.notify_all();
    response(reply)
}

fn log_request(
    state: &State,
    headers: &[(String, String)],
    body_bytes: usize,
    events: usize,
    status: u16,
) {
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    lock(&state.log).requests.push(RequestLog {
        events,
        body_bytes,
        content_length: find("content-length").and_then(|v| v.parse().ok()),
        authorization: find("authorization"),
        status,
        at: Instant::now(),
    });
}

fn response(reply: Reply) -> Response {
    Response {
        status: reply.status,
        headers: reply.headers,
        body: reply.body,
    }
}

/// Parses a body into events; `None` if it is not an array of objects (or NDJSON objects).
fn parse(body: &[u8], ndjson: bool, keep: bool) -> Option<(Vec<Value>, usize)> {
    let raw: Vec<&RawValue> = if ndjson {
        let text = std::str::from_utf8(body).ok()?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .ok()?
    } else {
        serde_json::from_slice(body).ok()?
    };
    if raw.is_empty() || !raw.iter().all(|r| r.get().starts_with('{')) {
        return None;
    }
    let len = raw.len();
    if !keep {
        return Some((Vec::new(), len));
    }
    let events = raw
        .iter()
        .map(|r| serde_json::from_str(r.get()))
        .collect::<Result<_, _>>()
        .ok()?;
    Some((events, len))
}
