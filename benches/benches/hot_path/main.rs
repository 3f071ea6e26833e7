//! The caller's cost of one event, side by side, in one process and interleaved rounds:
//! the floor of the design (copy into a pooled slot and queue it; `floor.rs`), a naive
//! `Mutex<VecDeque<Vec<u8>>>` and `tracing-appender`'s `non_blocking`, lossless
//! (`peers.rs`), and auditbuf's `record` (typed) and `record_json` — with 8 lanes (a lane
//! per producer thread), and the typed call once more in the library's default single
//! lane, which keeps each caller's order whatever thread it runs on. Every contender is
//! lossless — a full queue waits, it does not turn the event away — so a fast call is a
//! call that did the work. Percentiles come from an HDR histogram over every call
//! (criterion's means hide the tails), allocations from a counting allocator on the calling
//! thread; then delivered events per second with 1, 2 and 4 producers, each with the CPU
//! time per event the producers and the whole process spent; first, the JSON check alone,
//! in ns per byte.
//!
//! `cargo bench -p auditbuf-benches --bench hot_path` (1 000 000 calls, 11 rounds). Set
//! in the environment:
//! - `HOT_PATH=200000,3`: fewer calls and rounds;
//! - `HOT_PATH_ONLY=typed`: only the contenders whose name contains that (`validation`:
//!   only the JSON check); the first one kept stands in for the floor in the ratios;
//! - `HOT_PATH_PRODUCERS=4`: only that column of delivered events;
//! - `HOT_PATH_PIN=0`: every producer of the throughput table bound to CPU 0 (the per-call
//!   table's one producer is not), so that producers take turns instead of running at once
//!   on different CPUs (the consumer keeps the other CPU): what a contender's throughput
//!   owes to lines two producers write.
//!
//! `cargo test` runs it once with 20 000 calls as a smoke test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditbuf::{Config, NullSink, Overflow, Pipeline};
use hdrhistogram::Histogram;

#[path = "../common/mod.rs"]
mod common;
mod floor;
mod peers;

use floor::{Floor, Lanes};
use peers::{Appender, Naive};

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

/// A consumer that found nothing waits 50 µs before it looks again, or 1 ms once it has
/// found nothing for 100 ms: the benchmark's idle consumers then take next to no CPU from
/// the contender being measured (seven that polled every 50 µs took ~10 % of it).
fn idle_wait(busy_at: Instant) {
    let idle_for = busy_at.elapsed();
    std::thread::sleep(if idle_for > Duration::from_millis(100) {
        Duration::from_millis(1)
    } else {
        Duration::from_micros(50)
    });
}

/// One contender: something that takes events from producers, with a consumer behind it.
trait Contender: Send + Sync {
    fn name(&self) -> &'static str;
    /// Takes one event; waits (never drops) when full.
    fn call(&self);
    /// Waits until everything taken so far was consumed; returns how many were.
    fn drain(&self) -> u64;
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
    /// `Typed` in the library's default single lane: the others run with 8 lanes, a lane
    /// per producer thread.
    TypedOneLane,
    Json,
    Json1K,
}

impl Auditbuf {
    fn new(kind: Kind) -> Self {
        let lanes = if matches!(kind, Kind::TypedOneLane) {
            1
        } else {
            8
        };
        let config = Config::default()
            .queue_capacity(QUEUE)
            .max_lanes(lanes)
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
            Kind::Typed => "auditbuf record, typed, 8 lanes",
            Kind::TypedOneLane => "auditbuf record, typed, one lane (default)",
            Kind::Json => "auditbuf record_json, same 300 B line",
            Kind::Json1K => "auditbuf record_json, 1 KiB",
        }
    }
    fn call(&self) {
        let result = match self.kind {
            // Opaque to the optimiser, as a caller's event is: built from constants in
            // view, its checks and copies were partly folded away.
            Kind::Typed | Kind::TypedOneLane => {
                TYPED.with(|e| self.pipeline.record(std::hint::black_box(e)))
            }
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

/// One measurement of delivered throughput.
#[derive(Clone, Copy)]
struct Delivered {
    /// Events per second, until drained.
    rate: f64,
    /// CPU time the producer threads spent, ns per delivered event.
    producers_cpu: f64,
    /// CPU time the whole process spent (producers, the consumer, idle peers' polls), ns
    /// per delivered event.
    process_cpu: f64,
}

/// Events per second delivered with `producers` threads each making `per` calls, and the
/// CPU time it took.
fn throughput(c: &Arc<dyn Contender>, producers: usize, per: u64) -> Delivered {
    let before = c.drain();
    let pin: Option<usize> = std::env::var("HOT_PATH_PIN")
        .ok()
        .and_then(|v| v.parse().ok());
    let process_before = cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID);
    let started = Instant::now();
    let threads: Vec<_> = (0..producers)
        .map(|_| {
            let c = Arc::clone(c);
            std::thread::spawn(move || {
                if let Some(cpu) = pin {
                    pin_to(cpu);
                }
                let cpu_before = cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID);
                for _ in 0..per {
                    c.call();
                }
                cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID) - cpu_before
            })
        })
        .collect();
    let producers_ns: u64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    let after = c.drain();
    let elapsed = started.elapsed().as_secs_f64();
    let process_ns = cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID) - process_before;
    let events = (after - before).max(1) as f64;
    Delivered {
        rate: events / elapsed,
        producers_cpu: producers_ns as f64 / events,
        process_cpu: process_ns as f64 / events,
    }
}

/// A CPU-time clock (`CLOCK_THREAD_CPUTIME_ID`, `CLOCK_PROCESS_CPUTIME_ID`), in ns.
fn cpu_ns(clock: libc::clockid_t) -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // Safety: `t` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(clock, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Binds the calling thread to one CPU (`HOT_PATH_PIN=N`: every producer on CPU N), so
/// that producers take turns on it instead of running at once on different CPUs.
fn pin_to(cpu: usize) {
    // Safety: a zeroed cpu_set_t is an empty set; CPU_SET and sched_setaffinity only read
    // and write that local set and the calling thread's affinity.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let _ = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
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
        Arc::new(Lanes::new(event.clone(), false)),
        Arc::new(Lanes::new(event.clone(), true)),
        Arc::new(Naive::new(event.clone())),
        Arc::new(Appender::new(event.clone(), false)),
        Arc::new(Appender::new(event.clone(), true)),
        Arc::new(Auditbuf::new(Kind::Typed)),
        Arc::new(Auditbuf::new(Kind::TypedOneLane)),
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
        let cols: Vec<Option<Delivered>> = [1, 2, 4]
            .iter()
            .map(|&n| match only_producers {
                Some(only) if only != n => None,
                _ => {
                    let runs: Vec<Delivered> = (0..rounds).map(|_| throughput(c, n, per)).collect();
                    Some(Delivered {
                        rate: median(runs.iter().map(|d| d.rate).collect()),
                        producers_cpu: median(runs.iter().map(|d| d.producers_cpu).collect()),
                        process_cpu: median(runs.iter().map(|d| d.process_cpu).collect()),
                    })
                }
            })
            .collect();
        let show = |f: fn(&Delivered) -> f64, i: usize| cols[i].as_ref().map_or(0.0, f);
        println!(
            "{:<48} {:>12.0} {:>12.0} {:>12.0}",
            c.name(),
            show(|d| d.rate, 0),
            show(|d| d.rate, 1),
            show(|d| d.rate, 2)
        );
        println!(
            "{:<48} {:>12} {:>12} {:>12}",
            "  CPU ns per event: producers / whole process",
            format!(
                "{:.0} / {:.0}",
                show(|d| d.producers_cpu, 0),
                show(|d| d.process_cpu, 0)
            ),
            format!(
                "{:.0} / {:.0}",
                show(|d| d.producers_cpu, 1),
                show(|d| d.process_cpu, 1)
            ),
            format!(
                "{:.0} / {:.0}",
                show(|d| d.producers_cpu, 2),
                show(|d| d.process_cpu, 2)
            ),
        );
    }
}
