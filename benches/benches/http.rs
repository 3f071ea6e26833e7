//! Events shipped over loopback HTTP to a minimal receiver that counts them, through the
//! DataStorage sink (500-event batches, JSON array bodies).

mod common;

use std::time::{Duration, Instant};

use auditbuf::{Config, DataStorageSink, Pipeline};
use auditbuf_testkit::{Receiver, Reply};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn http(c: &mut Criterion) {
    let receiver = Receiver::counting(|_| Reply::created());
    let mut group = c.benchmark_group("http_loopback");
    group.sample_size(10);
    let events = 200_000u64;
    group.throughput(Throughput::Elements(events));
    group.bench_function("datastorage_sink", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let config = Config::default();
                let sink = DataStorageSink::new(&receiver.url()).unwrap();
                let p = Pipeline::new(config, sink).unwrap();
                let typed = common::typed();
                let before = receiver.delivered_count();
                let started = Instant::now();
                // As fast as the pipeline takes them: on a full queue, yield and try again
                // (cheaper than parking in Block mode, and nothing is lost).
                for _ in 0..events {
                    while let Err(e) = p.record(&typed) {
                        assert!(e.is_overload(), "{e}");
                        std::thread::yield_now();
                    }
                }
                let report = p.close(Duration::from_secs(120));
                total += started.elapsed();
                assert_eq!(report.stats.delivered, events);
                assert_eq!(receiver.delivered_count() - before, events);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, http);
criterion_main!(benches);
