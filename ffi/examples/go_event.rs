//! The Go benchmark's event through Rust's `record`, timed as `BenchmarkRecord/typed` in
//! `go/bench_test.go` times Go's `Record` (same event, same configuration: a queue of
//! 10 000, overflow `block`, null sink; the clock stops once a flush has settled every
//! event), so the cost the Go and C layers add shows beside it:
//! `cargo run --release -p auditbuf-ffi --example go_event [events] [rounds]`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use auditbuf::{AuditEvent, EventData, Pipeline, PipelineConfig};

const CONFIG: &str = r#"{"queue_capacity":10000,"overflow":"block","block_timeout_ms":10000,"sink":{"type":"null"}}"#;
/// `benchData` in `go/bench_test.go`.
const DATA: &str = r#"{"event_type":"gateway.signal.received","signal_type":"alert","signal_name":"HighMemoryUsage","namespace":"payment","fingerprint":"fp-abc123"}"#;

fn pipeline() -> Pipeline {
    match PipelineConfig::from_json(CONFIG).and_then(PipelineConfig::build) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>().ok());
    let events = args.next().flatten().unwrap_or(3_000_000);
    let rounds = args.next().flatten().unwrap_or(3);
    // `benchEvent()` in `go/bench_test.go`.
    let event = AuditEvent {
        actor_type: Some("service"),
        actor_id: Some("gateway"),
        resource_type: Some("Signal"),
        resource_id: Some("fp-abc123"),
        namespace: Some("payment"),
        severity: Some("warning"),
        duration_ms: Some(42),
        event_data: EventData::Json(DATA),
        ..AuditEvent::new(
            "gateway.signal.received",
            "gateway",
            "received",
            "success",
            "rr-2026-001",
        )
    };
    for _ in 0..rounds {
        let p = pipeline();
        let started = Instant::now();
        let mut rejected = 0u64;
        for _ in 0..events {
            rejected += u64::from(p.record(black_box(&event)).is_err());
        }
        let report = p.flush(Duration::from_secs(60));
        let ns = started.elapsed().as_nanos() as f64 / events as f64;
        assert!(report.stats.is_consistent(), "{:?}", report.stats);
        assert_eq!(
            report.stats.delivered + rejected,
            events,
            "{:?}",
            report.stats
        );
        println!(
            "Rust Pipeline::record, the Go benchmark's event, settled: {ns:.0} ns/op, rejected {rejected}/{events}"
        );
        p.close(Duration::from_secs(10));
    }
}
