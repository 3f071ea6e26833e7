//! One thread calling `record` into a null sink: the cost a caller pays per event.

mod common;

use std::hint::black_box;
use std::time::Duration;

use auditbuf::{Config, NullSink, Pipeline};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn pipeline() -> Pipeline {
    Pipeline::new(Config::default(), NullSink).unwrap()
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

criterion_group!(benches, record);
criterion_main!(benches);
