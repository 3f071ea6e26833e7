//! Backing stores: file-store appends under each fsync policy, `wal`-mode `record` latency
//! and throughput with 1 and 8 producers (group commit), the flush thread draining a backlog
//! while 8 `wal` producers record, and draining a full store to a loopback receiver.
//!
//! Latency percentiles are printed to stderr (criterion reports means).

mod common;

use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use auditbuf::{
    CallbackSink, Config, DataStorageSink, Durability, FileStore, FileStoreConfig, Fsync, Outcome,
    Pipeline, RetryPolicy, SqliteStoreConfig, Store, StoreConfig,
};
use auditbuf_testkit::{Receiver, Reply};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("auditbuf-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn percentiles(name: &str, mut samples: Vec<Duration>) {
    if samples.is_empty() {
        return;
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    eprintln!(
        "{name}: p50 {:?}, p99 {:?}, max {:?} over {} calls",
        at(0.5),
        at(0.99),
        at(1.0),
        samples.len()
    );
}

fn file_append(c: &mut Criterion) {
    let event = common::typed_bytes();
    let mut group = c.benchmark_group("file_store_append");
    group.throughput(Throughput::Elements(1));
    for (name, fsync) in [
        ("fsync_interval_1s", Fsync::Interval(Duration::from_secs(1))),
        ("fsync_never", Fsync::Never),
        ("fsync_always", Fsync::Always),
    ] {
        let dir = scratch(name);
        let mut store = FileStore::open(FileStoreConfig::new(&dir).fsync(fsync)).unwrap();
        if fsync == Fsync::Always {
            group.sample_size(20);
        }
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let began = Instant::now();
                for _ in 0..iters {
                    store.append(&[&event]).unwrap();
                }
                let took = began.elapsed();
                // Consume what was appended, untimed, so the store never fills up.
                let mut batch = auditbuf::StoredBatch::new();
                loop {
                    store.read_oldest(10_000, usize::MAX, &mut batch).unwrap();
                    if batch.is_empty() {
                        break;
                    }
                    store.commit(batch.len()).unwrap();
                }
                took
            })
        });
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
    group.finish();
}

/// `wal` mode: every call returns after its event is appended and fsynced.
fn wal_record(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_record");
    group.sample_size(10);
    // The file store with `fsync: always`; SQLite with its default policy (an interval),
    // whose `wal` appends must be made durable one by one.
    for (name, sqlite, producers) in [
        ("1_producers", false, 1usize),
        ("8_producers", false, 8),
        ("sqlite_8_producers", true, 8),
    ] {
        let per_producer = if producers == 1 { 2_000 } else { 1_000 };
        group.throughput(Throughput::Elements((producers * per_producer) as u64));
        let latencies = Arc::new(Mutex::new(Vec::new()));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = scratch(&format!("wal-{name}"));
                    let store = if sqlite {
                        StoreConfig::Sqlite(SqliteStoreConfig::new(dir.join("events.db")))
                    } else {
                        StoreConfig::File(FileStoreConfig::new(&dir).fsync(Fsync::Always))
                    };
                    // The sink is down: events stay in the store, which is what is measured.
                    let sink = CallbackSink::new(|_: &[&[u8]]| Outcome::retry("down"));
                    let retry = RetryPolicy::default()
                        .backoff(Duration::from_secs(10), Duration::from_secs(10));
                    let config = Config::default()
                        .durability(Durability::Wal)
                        .retry(retry)
                        .store(store);
                    let p = Arc::new(Pipeline::new(config, sink).unwrap());
                    let start = Arc::new(Barrier::new(producers + 1));
                    let handles: Vec<_> = (0..producers)
                        .map(|_| {
                            let (p, start, latencies) =
                                (p.clone(), start.clone(), latencies.clone());
                            std::thread::spawn(move || {
                                let typed = common::typed();
                                let mut mine = Vec::with_capacity(per_producer);
                                start.wait();
                                for _ in 0..per_producer {
                                    let t = Instant::now();
                                    p.record(&typed).unwrap();
                                    mine.push(t.elapsed());
                                }
                                latencies.lock().unwrap().extend(mine);
                            })
                        })
                        .collect();
                    start.wait();
                    let began = Instant::now();
                    for h in handles {
                        h.join().unwrap();
                    }
                    total += began.elapsed();
                    p.close(Duration::from_millis(100));
                    drop(p);
                    let _ = std::fs::remove_dir_all(&dir);
                }
                total
            })
        });
        percentiles(
            &format!("wal_record/{name}"),
            std::mem::take(&mut latencies.lock().unwrap()),
        );
    }
    group.finish();
}

/// `wal` mode with a sink that takes everything: the flush thread drains a backlog left in
/// the store (20 000 events) while 8 producers append and sync. How fast it delivered while
/// the producers ran, and how fast they recorded, is printed to stderr; timed until every
/// event is delivered.
fn wal_drain(c: &mut Criterion) {
    const BACKLOG: usize = 20_000;
    const PRODUCERS: usize = 8;
    const PER_PRODUCER: usize = 1_000;
    let event = common::typed_bytes();
    let total = (BACKLOG + PRODUCERS * PER_PRODUCER) as u64;
    let mut group = c.benchmark_group("wal_drain");
    group.sample_size(10);
    group.throughput(Throughput::Elements(total));
    let runs = Arc::new(Mutex::new(Vec::new()));
    group.bench_function("backlog_8_producers", |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for _ in 0..iters {
                let dir = scratch("wal-drain");
                {
                    let config = FileStoreConfig::new(&dir).fsync(Fsync::Never);
                    let mut store = FileStore::open(config).unwrap();
                    for _ in 0..BACKLOG / 500 {
                        store.append(&vec![event.as_slice(); 500]).unwrap();
                    }
                }
                let store = StoreConfig::File(FileStoreConfig::new(&dir).fsync(Fsync::Always));
                let sink = CallbackSink::new(|_: &[&[u8]]| Outcome::Delivered);
                let config = Config::default().durability(Durability::Wal).store(store);
                let start = Arc::new(Barrier::new(PRODUCERS + 1));
                let p = Arc::new(Pipeline::new(config, sink).unwrap());
                let handles: Vec<_> = (0..PRODUCERS)
                    .map(|_| {
                        let (p, start) = (p.clone(), start.clone());
                        std::thread::spawn(move || {
                            let typed = common::typed();
                            start.wait();
                            for _ in 0..PER_PRODUCER {
                                p.record(&typed).unwrap();
                            }
                        })
                    })
                    .collect();
                let delivered_before = p.stats().delivered;
                start.wait();
                let began = Instant::now();
                for h in handles {
                    h.join().unwrap();
                }
                let recording = began.elapsed();
                let delivered = p.stats().delivered - delivered_before;
                let report = p.flush(Duration::from_secs(120));
                let all = began.elapsed();
                assert_eq!(report.stats.delivered, total);
                runs.lock().unwrap().push((recording, delivered, all));
                took += all;
                p.close(Duration::from_secs(1));
                drop(p);
                let _ = std::fs::remove_dir_all(&dir);
            }
            took
        })
    });
    let mut runs = std::mem::take(&mut *runs.lock().unwrap());
    runs.sort_by_key(|r| r.0);
    if let Some(&(recording, delivered, all)) = runs.get(runs.len() / 2) {
        eprintln!(
            "wal_drain/backlog_8_producers (median of {} runs): {} recorded in {recording:?} \
             ({:.0}/s) while the flush thread delivered {delivered} ({:.0}/s); all {total} \
             delivered after {all:?}",
            runs.len(),
            PRODUCERS * PER_PRODUCER,
            (PRODUCERS * PER_PRODUCER) as f64 / recording.as_secs_f64(),
            delivered as f64 / recording.as_secs_f64(),
        );
    }
    group.finish();
}

/// A store full of events (left by an outage) drained to a DataStorage-style receiver.
fn drain(c: &mut Criterion) {
    let receiver = Receiver::counting(|_| Reply::created());
    let event = common::typed_bytes();
    let events = 100_000u64;
    let mut group = c.benchmark_group("drain");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events));
    group.bench_function("file_store_to_loopback_http", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = scratch("drain");
                {
                    let mut store =
                        FileStore::open(FileStoreConfig::new(&dir).fsync(Fsync::Never)).unwrap();
                    for _ in 0..events / 500 {
                        store.append(&vec![event.as_slice(); 500]).unwrap();
                    }
                }
                let store = StoreConfig::File(
                    FileStoreConfig::new(&dir).fsync(Fsync::Interval(Duration::from_secs(1))),
                );
                let began = Instant::now();
                let p = Pipeline::new(
                    Config::default().store(store),
                    DataStorageSink::new(&receiver.url()).unwrap(),
                )
                .unwrap();
                let report = p.close(Duration::from_secs(120));
                total += began.elapsed();
                assert_eq!(report.stats.delivered, events);
                drop(p);
                let _ = std::fs::remove_dir_all(&dir);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, file_append, wal_record, wal_drain, drain);
criterion_main!(benches);
