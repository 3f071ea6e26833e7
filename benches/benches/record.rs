//! One thread calling `record` into a null sink: the cost a caller pays per event. Lossless
//! (overflow `Block`), so no call is counted that returned `Full` at once.

mod common;

use std::hint::black_box;
use std::time::Duration;

use auditbuf::{Config, NullSink, Overflow, Pipeline};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn pipeline() -> Pipeline {
    let config = Config::default().overflow(Overflow::Block {
        timeout: Duration::from_secs(60),
    });
    Pipeline::new(config, NullSink).unwrap()
}

fn report_rejections(name: &str, p: Pipeline) {
    let report = p.close(Duration::from_secs(10));
    let full = report.stats.rejected.queue_full;
    if full > 0 {
        eprintln!("{name}: {full} calls found the queue full (not counted as faster calls)");
    }
}

fn record(c: &mut Criterion) {
    let mut group = c.benchmark_group("record");
    group.throughput(Throughput::Elements(1));

    let typed = common::typed();
    eprintln!(
        "typed event: {} bytes on the wire",
        common::typed_bytes().len()
    );
    let p = pipeline();
    group.bench_function("typed_300B", |b| b.iter(|| p.record(black_box(&typed))));
    report_rejections("typed_300B", p);

    let raw = common::raw_1k();
    eprintln!("raw event: {} bytes", raw.len());
    let p = pipeline();
    group.bench_function("raw_json_1KiB", |b| {
        b.iter(|| p.record_json(black_box(&raw)))
    });
    report_rejections("raw_json_1KiB", p);

    #[derive(serde::Serialize)]
    struct Login<'a> {
        event_type: &'a str,
        user: &'a str,
        attempt: u32,
        success: bool,
    }
    let login = Login {
        event_type: "user.login",
        user: "ada",
        attempt: 3,
        success: true,
    };
    let p = pipeline();
    group.bench_function("serialize_small", |b| {
        b.iter(|| p.record_serialize(black_box(&login)))
    });
    report_rejections("serialize_small", p);

    // The same 338 bytes, already encoded, through tracing-appender's non-blocking writer
    // (it copies them into a new Vec per write). Lossless, so nothing is dropped unseen.
    let bytes = common::typed_bytes();
    let (mut writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::sink());
    group.bench_function("tracing_appender_write_338B", |b| {
        b.iter(|| std::io::Write::write_all(&mut writer, black_box(&bytes)))
    });
    drop(writer);
    drop(guard);

    group.finish();
}

/// `record` with Prometheus metrics registered (and scraped every 100 ms) against without:
/// the metrics are read from the counters on scrape, so the two should not differ.
fn metrics(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics");
    group.throughput(Throughput::Elements(1));
    let typed = common::typed();
    let p = pipeline();
    group.bench_function("record_typed_without_metrics", |b| {
        b.iter(|| p.record(black_box(&typed)))
    });
    report_rejections("record_typed_without_metrics", p);

    let p = std::sync::Arc::new(pipeline());
    let mut registry = prometheus_client::registry::Registry::default();
    p.register_metrics(&mut registry).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scraper = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut text = String::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                text.clear();
                let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    group.bench_function("record_typed_with_metrics_scraped", |b| {
        b.iter(|| p.record(black_box(&typed)))
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = scraper.join();
    if let Ok(p) = std::sync::Arc::try_unwrap(p) {
        report_rejections("record_typed_with_metrics_scraped", p);
    }
    group.finish();
}

criterion_group!(benches, record, metrics);
criterion_main!(benches);
