//! The main job: ship audit events to a DataStorage-style receiver on 127.0.0.1 as fast as
//! a few threads can record them, then print what happened.
//!
//! ```text
//! cargo run --release --example demo -- [--seconds N] [--threads N] [--block]
//! ```
//! One producer by default: on a two-core machine a second one competes with the flush
//! thread and the receiver for the CPU. `--block` waits for a free slot (up to 1 s) instead
//! of turning events away when the queue is full.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use auditbuf::{AuditEvent, Config, DataStorageSink, Error, EventData, Overflow, Pipeline};
use auditbuf_testkit::{Receiver, Reply};

struct Args {
    seconds: u64,
    threads: usize,
    block: bool,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        seconds: 3,
        threads: 1,
        block: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match flag.as_str() {
            "--seconds" => args.seconds = number("--seconds")?,
            "--threads" => args.threads = number("--threads")?.max(1) as usize,
            "--block" => args.block = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?} (try --seconds N --threads N --block)"
                ));
            }
        }
    }
    Ok(args)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    // The third request gets a 503 with Retry-After: the batch is retried, not lost.
    let receiver = Receiver::counting(|batch| {
        if batch.index == 2 {
            Reply::status(503).retry_after("0")
        } else {
            Reply::created()
        }
    });
    let overflow = if args.block {
        Overflow::Block {
            timeout: Duration::from_secs(1),
        }
    } else {
        Overflow::DropNewest
    };
    let config = Config::default().service("demo").overflow(overflow);
    let pipeline = Arc::new(Pipeline::new(
        config,
        DataStorageSink::new(&receiver.url())?,
    )?);
    println!(
        "auditbuf demo: {} thread(s) record DataStorage events for {} s; the receiver on {} counts them",
        args.threads,
        args.seconds,
        receiver.url()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let producers: Vec<_> = (0..args.threads)
        .map(|t| {
            let (pipeline, stop) = (Arc::clone(&pipeline), Arc::clone(&stop));
            std::thread::spawn(move || {
                let correlation = format!("demo-{t}");
                let mut latencies = Vec::with_capacity(1 << 20);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let event = AuditEvent {
                        actor_type: Some("service"),
                        actor_id: Some("gateway"),
                        event_data: EventData::Json(
                            r#"{"signal_type":"alert","signal_name":"OOMKilled","namespace":"prod","fingerprint":"fp-1"}"#,
                        ),
                        ..AuditEvent::new("gateway.signal.received", "gateway", "received", "success", &correlation)
                    };
                    // Time one call in 64 (timing every call would cost as much as the call),
                    // and only calls that were accepted: a rejection is cheaper and would
                    // flatter the numbers.
                    let timed = n.is_multiple_of(64);
                    let t0 = timed.then(Instant::now);
                    match pipeline.record(&event) {
                        Ok(()) => {
                            if let Some(t0) = t0
                                && latencies.len() < latencies.capacity() {
                                    latencies.push(t0.elapsed());
                                }
                        }
                        Err(Error::Full) | Err(Error::Timeout(_)) => {}
                        Err(e) => panic!("demo event rejected: {e}"),
                    }
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(args.seconds));
    stop.store(true, Ordering::Relaxed);
    let mut latencies: Vec<Duration> = producers
        .into_iter()
        .flat_map(|h| h.join().unwrap_or_default())
        .collect();
    let recording = started.elapsed();
    let report = pipeline.close(Duration::from_secs(30));
    let shipping = started.elapsed();
    let s = report.stats;

    latencies.sort();
    let pct = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    let rate = |n: u64, d: Duration| n as f64 / d.as_secs_f64();
    println!();
    println!(
        "recorded      {:>12}  ({:.0} events/s over {:.1} s)",
        s.recorded,
        rate(s.recorded, recording),
        recording.as_secs_f64()
    );
    println!(
        "record()      p50 {:?}, p99 {:?}, p99.9 {:?} per accepted call",
        pct(0.5),
        pct(0.99),
        pct(0.999)
    );
    println!(
        "delivered     {:>12}  ({:.0} events/s end to end, {} requests, {} retried)",
        s.delivered,
        rate(s.delivered, shipping),
        s.sends,
        s.retries
    );
    println!("receiver saw  {:>12}", receiver.delivered_count());
    println!(
        "rejected      {:>12}  (queue full: {}, block timeout: {}) — the caller was told, nothing waited",
        s.rejected.total(),
        s.rejected.queue_full,
        s.rejected.block_timeout
    );
    println!(
        "dead-lettered {:>12}   failed {}   dropped at close {}   left {}",
        s.dead_lettered,
        s.failed,
        s.dropped.total(),
        report.left
    );
    println!(
        "accounting    recorded + recovered = delivered + dead-lettered + failed + dropped + in flight + queued + stored: {}",
        if s.is_consistent() { "holds" } else { "BROKEN" }
    );
    if !s.is_consistent() || receiver.delivered_count() != s.delivered {
        return Err("accounting does not balance".into());
    }
    Ok(())
}
