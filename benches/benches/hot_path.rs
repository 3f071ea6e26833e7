//! The caller's cost of one event, side by side, in one process and interleaved rounds:
//! the floor of the design (copy into a pooled slot and queue it), a naive
//! `Mutex<VecDeque<Vec<u8>>>`, `tracing-appender`'s `non_blocking` (lossless), and
//! auditbuf's `record` (typed) and `record_json`. Every contender is lossless — a full
//! queue waits, it does not turn the event away — so a fast call is a call that did the
//! work. Percentiles come from an HDR histogram over every call (criterion's means hide
//! the tails), allocations from a counting allocator on the calling thread; then delivered
//! events per second with 1, 2 and 4 producers; first, the JSON check alone, in ns per byte.
//!
//! `cargo bench -p auditbuf-benches --bench hot_path` (1 000 000 calls, 11 rounds; `HOT_PATH=200000,3`
//! for fewer);
//! `cargo test` runs it once with 20 000 calls as a smoke test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auditbuf::{Config, NullSink, Overflow, Pipeline};
use crossbeam_channel::{Receiver, Sender, bounded};
use hdrhistogram::Histogram;

mod common;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// Safety: defers to the system allocator; only counts, per thread.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        // Safety: as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Safety: as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        // Safety: as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

const QUEUE: usize = 10_000;
const BATCH: usize = 500;

/// One contender: something that takes events from producers, with a consumer behind it.
trait Contender: Send + Sync {
    fn name(&self) -> &'static str;
    /// Takes one event; waits (never drops) when full.
    fn call(&self);
    /// Waits until everything taken so far was consumed; returns how many were.
    fn drain(&self) -> u64;
}

/// The floor: a slot from a free list, 300 B copied in, pushed on a bounded queue; the
/// consumer takes batches and gives the slots back — without reading them, or, in the
/// second form, copying each slot's bytes out first, as any consumer that does something
/// with the events does (auditbuf's flush thread renders them), so that they cross from the
/// producer's CPU to the consumer's.
struct Floor {
    name: &'static str,
    free: Receiver<Vec<u8>>,
    free_tx: Sender<Vec<u8>>,
    queue: Sender<Vec<u8>>,
    consumed: Arc<AtomicU64>,
    sent: AtomicU64,
    event: Vec<u8>,
    stop: Arc<AtomicBool>,
}

impl Floor {
    fn new(event: Vec<u8>, reading: bool) -> Self {
        let (free_tx, free) = bounded(QUEUE);
        let (queue, rx) = bounded::<Vec<u8>>(QUEUE);
        for _ in 0..QUEUE {
            let _ = free_tx.send(Vec::with_capacity(512));
        }
        let consumed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (free_tx, consumed, stop) = (free_tx.clone(), consumed.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut batch = Vec::with_capacity(BATCH);
                let mut copy: Vec<u8> = Vec::with_capacity(1024);
                while !stop.load(Ordering::Relaxed) {
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(slot) => batch.push(slot),
                            Err(_) => break,
                        }
                    }
                    if batch.is_empty() {
                        std::thread::sleep(Duration::from_micros(50));
                        continue;
                    }
                    consumed.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    for mut slot in batch.drain(..) {
                        if reading {
                            copy.clear();
                            copy.extend_from_slice(&slot);
                            std::hint::black_box(&copy);
                        }
                        slot.clear();
                        let _ = free_tx.send(slot);
                    }
                }
            });
        }
        Floor {
            name: if reading {
                "floor, its consumer reading the bytes"
            } else {
                "floor: copy 300 B into a pooled slot + queue"
            },
            free,
            free_tx,
            queue,
            consumed,
            sent: AtomicU64::new(0),
            event,
            stop,
        }
    }
}

impl Contender for Floor {
    fn name(&self) -> &'static str {
        self.name
    }
    fn call(&self) {
        let mut slot = match self.free.recv() {
            Ok(slot) => slot,
            Err(_) => return,
        };
        slot.extend_from_slice(&self.event);
        self.sent.fetch_add(1, Ordering::Relaxed);
        let _ = self.queue.send(slot);
    }
    fn drain(&self) -> u64 {
        while self.consumed.load(Ordering::Relaxed) < self.sent.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = &self.free_tx;
        self.consumed.load(Ordering::Relaxed)
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A `Mutex<VecDeque<Vec<u8>>>` and a thread that drains it: one allocation per event.
struct Naive {
    queue: Arc<Mutex<VecDeque<Vec<u8>>>>,
    consumed: Arc<AtomicU64>,
    sent: AtomicU64,
    event: Vec<u8>,
    stop: Arc<AtomicBool>,
}

impl Naive {
    fn new(event: Vec<u8>) -> Self {
        let queue = Arc::new(Mutex::new(VecDeque::<Vec<u8>>::new()));
        let consumed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (queue, consumed, stop) = (queue.clone(), consumed.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut out = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    {
                        let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                        out.extend(q.drain(..));
                    }
                    if out.is_empty() {
                        std::thread::sleep(Duration::from_micros(50));
                        continue;
                    }
                    consumed.fetch_add(out.len() as u64, Ordering::Relaxed);
                    out.clear();
                }
            });
        }
        Naive {
            queue,
            consumed,
            sent: AtomicU64::new(0),
            event,
            stop,
        }
    }
}

impl Contender for Naive {
    fn name(&self) -> &'static str {
        "naive Mutex<VecDeque<Vec<u8>>>"
    }
    fn call(&self) {
        let event = self.event.clone();
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(event);
    }
    fn drain(&self) -> u64 {
        while self.consumed.load(Ordering::Relaxed) < self.sent.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_micros(200));
        }
        self.consumed.load(Ordering::Relaxed)
    }
}

impl Drop for Naive {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A writer that counts the bytes `tracing-appender`'s worker hands it, without reading
/// them.
#[derive(Clone)]
struct CountingSink(Arc<AtomicU64>);

/// A writer that reads what it is handed, as a file's or a socket's `write` does (the
/// kernel copies the bytes): into a reused buffer, cleared every 64 KiB. Beside
/// [`CountingSink`] it shows what the peer's throughput owes to a worker that never touches
/// an event's bytes — auditbuf's flush thread reads every byte of every event (it renders
/// the captured record), so each event's bytes cross from the producer's CPU to its own.
struct ReadingSink {
    bytes: Arc<AtomicU64>,
    buffer: Vec<u8>,
}

impl Write for ReadingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.buffer.len() + buf.len() > 64 * 1024 {
            self.buffer.clear();
        }
        self.buffer.extend_from_slice(buf);
        self.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `tracing-appender::non_blocking`, lossless (a full channel waits), the same bytes
/// already encoded.
struct Appender {
    name: &'static str,
    writer: Mutex<Option<tracing_appender::non_blocking::NonBlocking>>,
    _guard: tracing_appender::non_blocking::WorkerGuard,
    bytes: Arc<AtomicU64>,
    sent: AtomicU64,
    event: Vec<u8>,
}

impl Appender {
    /// Writing into a [`CountingSink`], or, if `reading`, a [`ReadingSink`].
    fn new(event: Vec<u8>, reading: bool) -> Self {
        let bytes = Arc::new(AtomicU64::new(0));
        let builder = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(false)
            .buffered_lines_limit(QUEUE);
        let (writer, guard) = if reading {
            builder.finish(ReadingSink {
                bytes: bytes.clone(),
                buffer: Vec::with_capacity(64 * 1024),
            })
        } else {
            builder.finish(CountingSink(bytes.clone()))
        };
        Appender {
            name: if reading {
                "tracing-appender, its writer reading the bytes"
            } else {
                "tracing-appender non_blocking, lossless"
            },
            writer: Mutex::new(Some(writer)),
            _guard: guard,
            bytes,
            sent: AtomicU64::new(0),
            event,
        }
    }
}

thread_local! {
    /// This thread's clone of an `Appender`'s writer, and which `Appender` it is of (two
    /// take turns on one thread).
    static APPENDER: std::cell::RefCell<Option<(usize, tracing_appender::non_blocking::NonBlocking)>> =
        const { std::cell::RefCell::new(None) };
}

impl Contender for Appender {
    fn name(&self) -> &'static str {
        self.name
    }
    fn call(&self) {
        let me = self as *const Self as usize;
        APPENDER.with(|w| {
            let mut w = w.borrow_mut();
            if w.as_ref().is_none_or(|(of, _)| *of != me) {
                let writer = self
                    .writer
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                *w = writer.map(|writer| (me, writer));
            }
            if let Some((_, writer)) = w.as_mut() {
                let _ = writer.write_all(&self.event);
            }
        });
        self.sent.fetch_add(1, Ordering::Relaxed);
    }
    fn drain(&self) -> u64 {
        let want = self.sent.load(Ordering::Relaxed) * self.event.len() as u64;
        while self.bytes.load(Ordering::Relaxed) < want {
            std::thread::sleep(Duration::from_micros(200));
        }
        APPENDER.with(|w| *w.borrow_mut() = None);
        self.sent.load(Ordering::Relaxed)
    }
}

/// auditbuf, lossless: overflow `Block`, a null sink.
struct Auditbuf {
    pipeline: Pipeline,
    kind: Kind,
    json: Vec<u8>,
}

thread_local! {
    /// Built once per producer, as the floor's bytes are: each call does the library's work
    /// only. (A thread-local because an `AuditEvent` may borrow a `dyn` value that is not
    /// `Sync`.)
    static TYPED: auditbuf::AuditEvent<'static> = common::typed();
}

#[derive(Clone, Copy)]
enum Kind {
    Typed,
    Json,
    Json1K,
}

impl Auditbuf {
    fn new(kind: Kind) -> Self {
        let config = Config::default()
            .queue_capacity(QUEUE)
            .overflow(Overflow::Block {
                timeout: Duration::from_secs(60),
            });
        let json = match kind {
            Kind::Json1K => common::raw_1k(),
            _ => common::typed_bytes(),
        };
        Auditbuf {
            pipeline: Pipeline::new(config, NullSink).unwrap_or_else(|e| panic!("{e}")),
            kind,
            json,
        }
    }
}

impl Contender for Auditbuf {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Typed => "auditbuf record, typed, clock read",
            Kind::Json => "auditbuf record_json, same 300 B line",
            Kind::Json1K => "auditbuf record_json, 1 KiB",
        }
    }
    fn call(&self) {
        let result = match self.kind {
            // Opaque to the optimiser, as a caller's event is: built from constants in
            // view, its checks and copies were partly folded away.
            Kind::Typed => TYPED.with(|e| self.pipeline.record(std::hint::black_box(e))),
            Kind::Json | Kind::Json1K => {
                self.pipeline.record_json(std::hint::black_box(&self.json))
            }
        };
        if let Err(e) = result {
            panic!("a lossless record failed: {e}");
        }
    }
    fn drain(&self) -> u64 {
        let report = self.pipeline.flush(Duration::from_secs(60));
        assert!(report.stats.is_consistent(), "{:?}", report.stats);
        report.stats.delivered
    }
}

/// One round of `calls` calls from this thread: per-call histogram and allocations.
fn latency_round(c: &dyn Contender, calls: u64) -> (Histogram<u64>, f64) {
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap_or_else(|e| panic!("{e}"));
    // Warm up: slots, thread-locals, caches.
    for _ in 0..calls.min(20_000) {
        c.call();
    }
    c.drain();
    let before = allocs();
    for _ in 0..calls {
        let t = Instant::now();
        c.call();
        let ns = t.elapsed().as_nanos() as u64;
        let _ = hist.record(ns.max(1));
    }
    let per_call = (allocs() - before) as f64 / calls as f64;
    c.drain();
    (hist, per_call)
}

/// Events per second delivered with `producers` threads each making `per` calls.
fn throughput(c: &Arc<dyn Contender>, producers: usize, per: u64) -> f64 {
    let before = c.drain();
    let started = Instant::now();
    let threads: Vec<_> = (0..producers)
        .map(|_| {
            let c = Arc::clone(c);
            std::thread::spawn(move || {
                for _ in 0..per {
                    c.call();
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let after = c.drain();
    (after - before) as f64 / started.elapsed().as_secs_f64()
}

/// Nanoseconds per call of `check`, over `calls` calls on `json`.
fn time_check(json: &[u8], calls: u64, check: fn(&[u8]) -> bool) -> f64 {
    let started = Instant::now();
    for _ in 0..calls {
        assert!(
            check(std::hint::black_box(json)),
            "the benchmark's JSON was refused"
        );
    }
    started.elapsed().as_nanos() as f64 / calls as f64
}

/// The JSON check alone (what `record_json` and a typed event's `event_data` go through:
/// grammar, UTF-8, escapes, duplicate keys, number range), beside serde_json reading the
/// same bytes into nothing (`IgnoredAny`, which checks the grammar but not the UTF-8 or the
/// escapes of the strings it skips), in interleaved rounds.
fn validation(calls: u64, rounds: usize) {
    let serde_json = |b: &[u8]| serde_json::from_slice::<serde::de::IgnoredAny>(b).is_ok();
    let inputs = [
        (
            "typed event's event_data",
            common::PAYLOAD.as_bytes().to_vec(),
        ),
        (
            "record_json's 300 B DataStorage line",
            common::typed_bytes(),
        ),
        ("record_json's 1 KiB event", common::raw_1k()),
    ];
    println!("\nJSON check alone, {calls} calls, median of {rounds} rounds (ns per call; ns/byte)");
    println!(
        "{:<38} {:>6} {:>10} {:>8} {:>22}",
        "", "bytes", "auditbuf", "ns/B", "serde_json IgnoredAny"
    );
    for (name, json) in &inputs {
        let mut ours = Vec::new();
        let mut peer = Vec::new();
        for _ in 0..rounds {
            ours.push(time_check(
                json,
                calls,
                auditbuf::__bench::is_accepted_object,
            ));
            peer.push(time_check(json, calls, serde_json));
        }
        let ours = median(ours);
        println!(
            "{:<38} {:>6} {:>10.1} {:>8.3} {:>22.1}",
            name,
            json.len(),
            ours,
            ours / json.len() as f64,
            median(peer)
        );
    }
}

/// Mean, p50, p99, p99.9 and max (ns), and allocations per call, of one round.
type Row = (f64, f64, f64, f64, f64, f64);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (mut calls, mut rounds) = if full { (1_000_000, 11) } else { (20_000, 1) };
    // `HOT_PATH=calls,rounds` for a quicker look while working on it.
    if let Some((c, r)) = std::env::var("HOT_PATH")
        .ok()
        .as_deref()
        .and_then(|v| v.split_once(','))
    {
        calls = c.parse().unwrap_or(calls).max(1);
        rounds = r.parse().unwrap_or(rounds).max(1);
    }
    // `HOT_PATH_ONLY=validation`: the JSON check alone.
    let only = std::env::var("HOT_PATH_ONLY").unwrap_or_default();
    if only.is_empty() || "validation".contains(only.as_str()) {
        validation(calls, rounds);
    }
    let event = common::typed_bytes();
    let contenders: Vec<Arc<dyn Contender>> = vec![
        Arc::new(Floor::new(event.clone(), false)),
        Arc::new(Floor::new(event.clone(), true)),
        Arc::new(Naive::new(event.clone())),
        Arc::new(Appender::new(event.clone(), false)),
        Arc::new(Appender::new(event.clone(), true)),
        Arc::new(Auditbuf::new(Kind::Typed)),
        Arc::new(Auditbuf::new(Kind::Json)),
        Arc::new(Auditbuf::new(Kind::Json1K)),
    ];
    // `HOT_PATH_ONLY=typed` keeps the contenders whose name has that in it (for profiling).
    let contenders: Vec<_> = contenders
        .into_iter()
        .filter(|c| c.name().contains(only.as_str()))
        .collect();
    if contenders.is_empty() {
        if !"validation".contains(only.as_str()) {
            eprintln!("HOT_PATH_ONLY={only:?} matches no contender");
        }
        return;
    }
    // Per-call latency: every contender once per round, rounds interleaved.
    let mut results: Vec<Vec<Row>> = vec![Vec::new(); contenders.len()];
    for _ in 0..rounds {
        for (i, c) in contenders.iter().enumerate() {
            let (h, a) = latency_round(c.as_ref(), calls);
            results[i].push((
                h.mean(),
                h.value_at_quantile(0.5) as f64,
                h.value_at_quantile(0.99) as f64,
                h.value_at_quantile(0.999) as f64,
                h.max() as f64,
                a,
            ));
        }
    }
    println!(
        "\nper call, 1 producer, {calls} calls, lossless, median of {rounds} rounds (ns; allocations per call)"
    );
    println!(
        "{:<48} {:>8} {:>8} {:>8} {:>9} {:>10} {:>7}",
        "", "mean", "p50", "p99", "p99.9", "max", "allocs"
    );
    let floor_mean = median(results[0].iter().map(|r| r.0).collect());
    // (With HOT_PATH_ONLY, the first contender kept stands in for the floor.)
    for (i, c) in contenders.iter().enumerate() {
        let col = |f: fn(&Row) -> f64| median(results[i].iter().map(f).collect());
        let mean = col(|r| r.0);
        println!(
            "{:<48} {:>8.0} {:>8.0} {:>8.0} {:>9.0} {:>10.0} {:>7.3}   {:.2}x floor",
            c.name(),
            mean,
            col(|r| r.1),
            col(|r| r.2),
            col(|r| r.3),
            col(|r| r.4),
            col(|r| r.5),
            mean / floor_mean
        );
    }
    // Delivered events per second with 1, 2 and 4 producers.
    let per = if full { calls / 2 } else { 5_000 };
    println!(
        "\ndelivered events/s (until drained), {per} calls per producer, median of {rounds} rounds"
    );
    // `HOT_PATH_PRODUCERS=4` measures only that column (for profiling); 0 marks the others.
    let only_producers: Option<usize> = std::env::var("HOT_PATH_PRODUCERS")
        .ok()
        .and_then(|v| v.parse().ok());
    println!("{:<48} {:>12} {:>12} {:>12}", "", "1", "2", "4");
    for c in &contenders {
        let cols: Vec<f64> = [1, 2, 4]
            .iter()
            .map(|&n| match only_producers {
                Some(only) if only != n => 0.0,
                _ => median((0..rounds).map(|_| throughput(c, n, per)).collect()),
            })
            .collect();
        println!(
            "{:<48} {:>12.0} {:>12.0} {:>12.0}",
            c.name(),
            cols[0],
            cols[1],
            cols[2]
        );
    }
}
