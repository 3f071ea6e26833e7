//! Four threads recording at once into a null sink, next to tracing-appender's
//! `non_blocking` writing the same bytes to `io::sink()`.
//!
//! Both run to completion: auditbuf with `Block` overflow, so every event is accepted and
//! delivered; tracing-appender with `lossy(false)`, so it blocks rather than drops. The time
//! is until the last event is handed off and the pipeline drained.

mod common;

use std::io::Write;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use auditbuf::{Config, NullSink, Overflow, Pipeline};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const THREADS: usize = 4;

fn run_auditbuf(events_per_thread: u64, raw: bool) -> Duration {
    let config = Config::default().overflow(Overflow::Block {
        timeout: Duration::from_secs(60),
    });
    let p = Arc::new(Pipeline::new(config, NullSink).unwrap());
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let bytes = Arc::new(common::typed_bytes());
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (p, barrier, bytes) = (p.clone(), barrier.clone(), bytes.clone());
            std::thread::spawn(move || {
                let typed = common::typed();
                barrier.wait();
                for _ in 0..events_per_thread {
                    if raw {
                        p.record_json(&bytes).unwrap();
                    } else {
                        p.record(&typed).unwrap();
                    }
                }
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    let report = p.flush(Duration::from_secs(60));
    let took = started.elapsed();
    assert_eq!(report.stats.delivered, events_per_thread * THREADS as u64);
    took
}

fn run_tracing_appender(events_per_thread: u64) -> Duration {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::sink());
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let bytes = Arc::new(common::typed_bytes());
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (mut writer, barrier, bytes) = (writer.clone(), barrier.clone(), bytes.clone());
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..events_per_thread {
                    writer.write_all(&bytes).unwrap();
                }
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    drop(writer);
    drop(guard); // waits for the worker to write what is queued
    started.elapsed()
}

fn threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("4_threads");
    group.sample_size(10);
    let per_thread = 100_000u64;
    group.throughput(Throughput::Elements(per_thread * THREADS as u64));
    group.bench_function("auditbuf_typed", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run_auditbuf(per_thread, false)).sum())
    });
    group.bench_function("auditbuf_raw_json", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run_auditbuf(per_thread, true)).sum())
    });
    group.bench_function("tracing_appender_non_blocking", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run_tracing_appender(per_thread)).sum())
    });
    group.finish();
}

criterion_group!(benches, threads);
criterion_main!(benches);
