//! The Go benchmark's event through the Rust call that Go's `Record` ends in
//! (`record_event_bytes`, via the C ABI's flat call), timed as `BenchmarkRecord/typed` in
//! `go/bench_test.go` times `Record` (same event, same configuration: a queue of 10 000,
//! overflow `block`, null sink; the clock stops once a flush has settled every event), so
//! the cost the Go and C layers add shows beside it:
//! `cargo run --release -p auditbuf-ffi --example go_event [events] [rounds]`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use auditbuf::{AuditEventBytes, Error};

mod common;

/// `benchData` in `go/bench_test.go`.
const DATA: &str = r#"{"event_type":"gateway.signal.received","signal_type":"alert","signal_name":"HighMemoryUsage","namespace":"payment","fingerprint":"fp-abc123"}"#;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>().ok());
    let events = args.next().flatten().unwrap_or(3_000_000);
    let rounds = args.next().flatten().unwrap_or(3);
    // `benchEvent()` in `go/bench_test.go`.
    let event = AuditEventBytes {
        actor_type: Some(b"service"),
        actor_id: Some(b"gateway"),
        resource_type: Some(b"Signal"),
        resource_id: Some(b"fp-abc123"),
        namespace: Some(b"payment"),
        severity: Some(b"warning"),
        duration_ms: Some(42),
        event_data: Some(DATA.as_bytes()),
        ..common::required_bytes()
    };
    for _ in 0..rounds {
        let p = common::pipeline();
        let started = Instant::now();
        let mut rejected = 0u64;
        for _ in 0..events {
            // As the Go benchmark counts: a `block` timeout is a rejection, anything else
            // a broken benchmark.
            match p.record_event_bytes(black_box(&event)) {
                Ok(()) => {}
                Err(Error::Timeout(_)) => rejected += 1,
                Err(e) => panic!("the benchmark's event was refused: {e}"),
            }
        }
        let report = p.flush(Duration::from_secs(60));
        let ns = started.elapsed().as_nanos() as f64 / events as f64;
        assert!(
            report.completed,
            "the flush did not settle every event in 60 s"
        );
        assert!(report.stats.is_consistent(), "{:?}", report.stats);
        assert_eq!(
            report.stats.delivered + rejected,
            events,
            "{:?}",
            report.stats
        );
        println!(
            "Rust Pipeline::record_event_bytes, the Go benchmark's event, settled: {ns:.0} ns/op, rejected {rejected}/{events}"
        );
        p.close(Duration::from_secs(10));
    }
}
