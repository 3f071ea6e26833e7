//! One thread calling `record_cadf` into a null sink: what a full CADF event costs the
//! caller — checking every field, escaping it into a pooled slot, and, when the event has
//! none, generating its UUID and `eventTime`.

use std::hint::black_box;
use std::time::Duration;

use auditbuf::{Config, NullSink, Pipeline};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "common/mod.rs"]
mod common;
use common::cadf_full as full;

fn cadf(c: &mut Criterion) {
    let mut group = c.benchmark_group("cadf");
    group.throughput(Throughput::Elements(1));
    for (name, event) in [
        ("record_full_generated_id_and_time", full(None, None)),
        (
            "record_full_given_id_and_time",
            full(
                Some("7c9e6679-7425-40de-944b-e07fc1f90ae7"),
                Some("2026-11-23T10:15:30.123456+00:00"),
            ),
        ),
    ] {
        // Slots sized for a 1 KB event: with the default 512 bytes, a slot grown for one is
        // shrunk again on return once the free slots hold over 2 MiB extra between them,
        // and every event would pay a reallocation.
        let p = Pipeline::new(Config::default().initial_slot_bytes(2048), NullSink).unwrap();
        group.bench_function(name, |b| b.iter(|| p.record_cadf(black_box(&event))));
        let report = p.close(Duration::from_secs(10));
        let full = report.stats.rejected.queue_full;
        if full > 0 {
            eprintln!("{name}: {full} calls found the queue full (not counted as faster calls)");
        }
    }
    group.finish();
}

criterion_group!(benches, cadf);
criterion_main!(benches);
