//! The loopback receiver: a small HTTP/1.1 server on 127.0.0.1 that takes DataStorage batch
//! requests, counts their events and answers as the chosen behaviour says.
//!
//! The bench carries its own instead of using `auditbuf-testkit`'s: it must hold a rate
//! (answers are held back so that at most `--sink-rate` events/s are acknowledged), report a
//! port it cannot bind as an error rather than a panic, and keep nothing per request, so a
//! long run does not grow the memory the bench measures. It counts events by scanning the
//! JSON array's top level, without building values.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::args::{SinkBehaviour, SinkRate};

/// How far the rate limiter lets a receiver that was idle catch up: without a little credit,
/// the client's own time between requests would be lost from the rate.
const BURST_CREDIT: Duration = Duration::from_millis(50);

/// What the receiver has seen and answered so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverTotals {
    /// Requests answered.
    pub requests: u64,
    /// Events in requests answered 2xx.
    pub acknowledged: u64,
    /// Requests answered 503 (outage).
    pub outage_answers: u64,
    /// Requests answered 500 (errors).
    pub error_answers: u64,
    /// Requests answered 400 (reject).
    pub reject_answers: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    acknowledged: AtomicU64,
    outage: AtomicU64,
    errors: AtomicU64,
    rejects: AtomicU64,
}

struct State {
    behaviour: SinkBehaviour,
    rate: SinkRate,
    seed: u64,
    started: Instant,
    /// When the rate limiter lets the next events through.
    next_free: Mutex<Instant>,
    counters: Counters,
    stopping: AtomicBool,
}

/// A running receiver. Stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    state: Arc<State>,
    acceptor: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Listens on 127.0.0.1 (a port the system picks). The behaviour's clock (the outage
    /// window) starts now.
    pub fn start(behaviour: SinkBehaviour, rate: SinkRate, seed: u64) -> io::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let now = Instant::now();
        let state = Arc::new(State {
            behaviour,
            rate,
            seed,
            started: now,
            next_free: Mutex::new(now),
            counters: Counters::default(),
            stopping: AtomicBool::new(false),
        });
        let acceptor = {
            let state = Arc::clone(&state);
            std::thread::Builder::new()
                .name("bench-receiver".to_owned())
                .spawn(move || accept(&listener, &state))?
        };
        Ok(Receiver {
            addr,
            state,
            acceptor: Some(acceptor),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// When it started: the origin of the behaviour's clock (the outage window).
    pub fn started(&self) -> Instant {
        self.state.started
    }

    /// Counts so far.
    pub fn totals(&self) -> ReceiverTotals {
        let c = &self.state.counters;
        ReceiverTotals {
            requests: c.requests.load(Ordering::SeqCst),
            acknowledged: c.acknowledged.load(Ordering::SeqCst),
            outage_answers: c.outage.load(Ordering::SeqCst),
            error_answers: c.errors.load(Ordering::SeqCst),
            reject_answers: c.rejects.load(Ordering::SeqCst),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept(listener: &TcpListener, state: &Arc<State>) {
    for stream in listener.incoming() {
        if state.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let state = Arc::clone(state);
        // A connection that fails only ends itself; the client sees it and retries.
        let _ = std::thread::Builder::new()
            .name("bench-receiver-conn".to_owned())
            .spawn(move || {
                let _ = serve(stream, &state);
            });
    }
}

/// Serves one keep-alive connection until the client closes it or the receiver stops.
fn serve(stream: TcpStream, state: &State) -> io::Result<()> {
    // Short read timeouts so an idle connection notices the receiver stopping.
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut body = Vec::new();
    let mut line = Vec::new();
    loop {
        let Some(head) = read_head(&mut reader, &mut line, state)? else {
            return Ok(());
        };
        if head.chunked {
            write_response(&mut writer, 400, "chunked bodies are not supported", true)?;
            return Ok(());
        }
        if head.expect_continue {
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        body.resize(head.content_length, 0);
        read_body(&mut reader, &mut body, state)?;
        let (status, text) = answer(state, &body);
        write_response(&mut writer, status, text, head.close)?;
        if head.close {
            return Ok(());
        }
    }
}

/// Decides the answer to one request, waiting as long as the behaviour and the rate say.
fn answer(state: &State, body: &[u8]) -> (u16, &'static str) {
    let c = &state.counters;
    let index = c.requests.fetch_add(1, Ordering::SeqCst);
    let b = &state.behaviour;
    if !b.latency.is_zero() {
        std::thread::sleep(b.latency);
    }
    let at = state.started.elapsed().as_secs_f64();
    if let Some((start, end)) = b.outage
        && (start..end).contains(&at)
    {
        c.outage.fetch_add(1, Ordering::SeqCst);
        return (503, r#"{"detail":"outage (auditbuf-bench --sink outage)"}"#);
    }
    if chance(state.seed, index, 1) < b.errors {
        c.errors.fetch_add(1, Ordering::SeqCst);
        return (
            500,
            r#"{"detail":"injected error (auditbuf-bench --sink errors)"}"#,
        );
    }
    if chance(state.seed, index, 2) < b.reject {
        c.rejects.fetch_add(1, Ordering::SeqCst);
        return (
            400,
            r#"{"type":"https://kubernaut.ai/problems/validation-error","title":"Validation Error","status":400,"detail":"batch rejected (auditbuf-bench --sink reject)"}"#,
        );
    }
    let events = count_events(body);
    hold_to_rate(state, events);
    c.acknowledged.fetch_add(events, Ordering::SeqCst);
    (201, r#"{"event_ids":[],"message":"created"}"#)
}

/// Sleeps until the rate allows `events` more: each batch takes `events / rate` of the
/// receiver's time, after the previous one, with a little credit for idle time.
fn hold_to_rate(state: &State, events: u64) {
    let SinkRate::PerSecond(rate) = state.rate else {
        return;
    };
    let cost = Duration::from_secs_f64(events as f64 / rate as f64);
    let until = {
        let mut next = state
            .next_free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        let floor = now.checked_sub(BURST_CREDIT).unwrap_or(now);
        *next = (*next).max(floor) + cost;
        *next
    };
    let now = Instant::now();
    if until > now {
        std::thread::sleep(until - now);
    }
}

/// A number in [0, 1) fixed by the seed, the request and the kind of answer, so a run can be
/// repeated exactly.
fn chance(seed: u64, index: u64, salt: u64) -> f64 {
    let mut z = seed
        .wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(salt.wrapping_mul(0xD1B5_4A32_D192_ED03));
    // splitmix64's finaliser.
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Counts the objects directly inside a JSON array (`[{…},{…}]`) without parsing them:
/// objects that open outside every other object, outside strings. Brackets are not tracked:
/// the body is an array of objects, so an object at brace depth 0 is one of its elements.
///
/// The receiver stands in for a collector on another machine, so its CPU time here is the
/// bench's, not the library's, and it competes with the producers for the same two vCPUs:
/// this looks at 64 bytes at a time (simdjson's stage-one bit tricks in plain 64-bit
/// arithmetic), 0.7 ns per byte against 1.7–2.0 for a byte-at-a-time loop, which was most of
/// the receiver's CPU time.
pub fn count_events(body: &[u8]) -> u64 {
    let (mut depth, mut n) = (0u32, 0u64);
    // Carried from block to block: whether the next byte is escaped, whether inside a string.
    let (mut escape_carry, mut in_string_carry) = (0u64, 0u64);
    const ODD: u64 = 0xaaaa_aaaa_aaaa_aaaa;
    let mut tail = [b' '; 64];
    for block in body.chunks(64) {
        let block: &[u8; 64] = match block.try_into() {
            Ok(full) => full,
            Err(_) => {
                tail[..block.len()].copy_from_slice(block);
                &tail
            }
        };
        let (mut quotes, mut backslashes, mut opens, mut closes) = (0u64, 0u64, 0u64, 0u64);
        for (k, word) in block.as_chunks::<8>().0.iter().enumerate() {
            let w = u64::from_le_bytes(*word);
            let shift = 8 * k as u32;
            quotes |= gather(byte_is(w, b'"')) << shift;
            backslashes |= gather(byte_is(w, b'\\')) << shift;
            opens |= gather(byte_is(w, b'{')) << shift;
            closes |= gather(byte_is(w, b'}')) << shift;
        }
        // The bytes a backslash escapes: the one after each odd-numbered backslash of a run,
        // runs that start on odd and on even bits told apart by a carrying subtraction
        // (simdjson's `json_escape_scanner`).
        let potential = backslashes & !escape_carry;
        let maybe_escaped = (potential << 1) | ODD;
        let escape_and_terminal = maybe_escaped.wrapping_sub(potential) ^ ODD;
        let escaped = escape_and_terminal ^ (backslashes | escape_carry);
        escape_carry = (escape_and_terminal & backslashes) >> 63;
        // Unescaped quotes open and close strings: the bits between are inside one.
        let in_string = prefix_xor(quotes & !escaped) ^ in_string_carry;
        in_string_carry = ((in_string as i64) >> 63) as u64;
        let opens = opens & !in_string;
        let mut braces = (opens | closes) & !in_string;
        while braces != 0 {
            let bit = braces & braces.wrapping_neg();
            braces ^= bit;
            if opens & bit != 0 {
                n += u64::from(depth == 0);
                depth += 1;
            } else {
                depth = depth.saturating_sub(1);
            }
        }
    }
    n
}

/// 0x80 in each byte of `w` equal to `c`, 0 in the others (exact: no borrow between bytes).
fn byte_is(w: u64, c: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = w ^ (u64::from(c) * 0x0101_0101_0101_0101);
    !((((x & LOW7) + LOW7) | x) | LOW7)
}

/// The high bits of `m`'s bytes (its other bits zero) as 8 bits, byte 0's lowest.
fn gather(m: u64) -> u64 {
    (m >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// Bit i is the XOR of bits 0..=i: set between an opening quote and its closing one.
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

struct Head {
    content_length: usize,
    expect_continue: bool,
    chunked: bool,
    close: bool,
}

/// Reads a request line and headers; `None` when the connection ended or the receiver stops.
fn read_head(
    reader: &mut BufReader<TcpStream>,
    line: &mut Vec<u8>,
    state: &State,
) -> io::Result<Option<Head>> {
    let mut head = Head {
        content_length: 0,
        expect_continue: false,
        chunked: false,
        close: false,
    };
    let mut seen_request_line = false;
    line.clear();
    loop {
        if state.stopping.load(Ordering::SeqCst) {
            return Ok(None);
        }
        match reader.read_until(b'\n', line) {
            Ok(0) => return Ok(None),
            Ok(_) if !line.ends_with(b"\n") => continue,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => continue,
            Err(e) => return Err(e),
        }
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        if text.is_empty() {
            line.clear();
            if seen_request_line {
                return Ok(Some(head));
            }
            continue;
        }
        if seen_request_line {
            if let Some((name, value)) = text.split_once(':') {
                let (name, value) = (name.trim(), value.trim());
                if name.eq_ignore_ascii_case("content-length") {
                    head.content_length = value
                        .parse()
                        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad length"))?;
                } else if name.eq_ignore_ascii_case("expect") {
                    head.expect_continue = value.eq_ignore_ascii_case("100-continue");
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    head.chunked = true;
                } else if name.eq_ignore_ascii_case("connection") {
                    head.close = value.eq_ignore_ascii_case("close");
                }
            }
        } else {
            seen_request_line = true;
        }
        line.clear();
    }
}

fn read_body(reader: &mut BufReader<TcpStream>, buf: &mut [u8], state: &State) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        if state.stopping.load(Ordering::SeqCst) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        match reader.read(&mut buf[done..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => done += n,
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn write_response(writer: &mut TcpStream, status: u16, body: &str, close: bool) -> io::Result<()> {
    let reason = match status {
        201 => "Created",
        400 => "Bad Request",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let kind = if status == 400 {
        "application/problem+json"
    } else {
        "application/json"
    };
    let connection = if close { "Connection: close\r\n" } else { "" };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n{connection}\r\n{body}",
        body.len()
    );
    writer.write_all(response.as_bytes())?;
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_counted_at_the_top_level_only() {
        assert_eq!(count_events(b"[]"), 0);
        assert_eq!(count_events(br#"[{"a":1}]"#), 1);
        assert_eq!(
            count_events(br#"[{"a":{"b":[{"c":1}]}},{"s":"}{[\"{"},{}]"#),
            3
        );
    }

    /// The byte-at-a-time count this replaced, tracking brackets too.
    fn count_bytewise(body: &[u8]) -> u64 {
        let (mut depth, mut in_string, mut escaped, mut n) = (0u32, false, false, 0u64);
        for &b in body {
            if in_string {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' => {
                    n += u64::from(depth == 1);
                    depth += 1;
                }
                b'[' => depth += 1,
                b'}' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        n
    }

    #[test]
    fn the_block_count_agrees_with_a_byte_at_a_time_one() {
        // Arrays of objects whose strings hold braces, quotes and escapes at every offset
        // within a word, an escape split across two words included.
        let pieces: [&[u8]; 9] = [
            br#"{"a":1}"#,
            br#"{"s":"}{[\"{"}"#,
            br#"{"k":{"n":[{"c":1},{}]}}"#,
            br#"{"e":"\\"}"#,
            br#"{"e":"x\\\"}{"}"#,
            br#"{}"#,
            br#"{"u":"\u007b\\","v":[[],[{}]]}"#,
            br#"{"p":"       \"       "}"#,
            br#"{"z":"{{{{{{{{"}"#,
        ];
        // Runs of backslashes that cross 64-byte blocks: an even run, and an odd one whose
        // last backslash escapes a quote.
        let even_run = format!(r#"{{"q":"{}"}}"#, "\\".repeat(124));
        let odd_run = format!(r#"{{"q":"{}"x"}}"#, "\\".repeat(63));
        let mut pieces = pieces.to_vec();
        pieces.extend([even_run.as_bytes(), odd_run.as_bytes()]);
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..5_000 {
            let mut body = b"[".to_vec();
            body.extend(std::iter::repeat_n(b' ', rng.usize(..70)));
            let events = rng.usize(..30);
            for i in 0..events {
                if i > 0 {
                    body.push(b',');
                    body.extend(std::iter::repeat_n(b' ', rng.usize(..3)));
                }
                body.extend_from_slice(pieces[rng.usize(..pieces.len())]);
            }
            body.push(b']');
            assert_eq!(count_bytewise(&body), events as u64);
            assert_eq!(
                count_events(&body),
                events as u64,
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn an_escape_on_a_block_boundary_carries_into_the_next_block() {
        // The string's backslashes end at byte 63, the last of the first block: with an
        // odd run the quote at byte 64 is escaped and the string goes on; with an even run
        // it closes the string.
        for run in [1, 2, 3, 4, 5] {
            let mut body = b"[{\"k\":\"".to_vec();
            body.resize(64 - run, b'x');
            body.extend(std::iter::repeat_n(b'\\', run));
            assert_eq!(body.len(), 64);
            if run % 2 == 1 {
                // The escaped quote, then `}{` still inside the string, then its end.
                body.extend_from_slice(br#""}{"},{}]"#);
            } else {
                body.extend_from_slice(br#""},{}]"#);
            }
            assert_eq!(
                count_bytewise(&body),
                2,
                "{}",
                String::from_utf8_lossy(&body)
            );
            assert_eq!(count_events(&body), 2, "{}", String::from_utf8_lossy(&body));
        }
    }

    #[test]
    fn gather_is_a_movemask() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..10_000 {
            let m = rng.u64(..) & 0x8080_8080_8080_8080;
            let want = (0..8)
                .filter(|k| m >> (8 * k + 7) & 1 == 1)
                .map(|k| 1 << k)
                .sum::<u64>();
            assert_eq!(gather(m), want, "{m:#x}");
        }
    }

    #[test]
    fn chances_are_spread_and_repeatable() {
        let hits = (0..10_000).filter(|&i| chance(7, i, 1) < 0.1).count();
        assert!((800..1200).contains(&hits), "{hits}");
        assert_eq!(chance(7, 3, 1), chance(7, 3, 1));
        assert_ne!(chance(7, 3, 1), chance(7, 3, 2));
    }
}
