//! Per-call cost of the Rust record calls, timed exactly as `ffi/tests/c/bench.c` times
//! the C ones (same events, same configuration, each call timed alone), so the two can be
//! compared in one session: `ffi/run-c-bench`. Usage: `rust_latency [calls]`.

use std::hint::black_box;
use std::time::Instant;

use auditbuf::{AuditEvent, AuditEventBytes, EventData, Pipeline};

mod common;
const PAYLOAD: &str = r#"{"signal_name":"OOMKilled","fingerprint":"fp-abc123"}"#;
const LINE: &str = r#"{"version":"1.0","event_type":"gateway.signal.received","event_timestamp":"2026-11-30T10:00:00.000Z","event_category":"gateway","event_action":"received","event_outcome":"success","correlation_id":"rr-2026-001","actor_id":"gateway","event_data":{"event_type":"gateway.signal.received","signal_name":"OOMKilled","fingerprint":"fp-abc123"}}"#;

fn run(name: &str, calls: usize, record: impl Fn(&Pipeline) -> bool) {
    let pipeline = common::pipeline();
    let warmup = calls / 10;
    let mut lat = Vec::with_capacity(calls);
    let mut rejected = 0;
    for i in 0..warmup + calls {
        let t0 = Instant::now();
        let ok = record(&pipeline);
        let ns = t0.elapsed().as_nanos() as u32;
        if i >= warmup {
            lat.push(ns);
            rejected += usize::from(!ok);
        }
    }
    pipeline.close(std::time::Duration::from_secs(10));
    lat.sort_unstable();
    let mean = lat.iter().map(|&v| f64::from(v)).sum::<f64>() / calls as f64;
    println!(
        "{name:<34} p50 {:5} ns  p99 {:6} ns  p99.9 {:6} ns  mean {mean:5.0} ns  rejected {rejected}/{calls}",
        lat[calls / 2],
        lat[calls * 99 / 100],
        lat[calls * 999 / 1000]
    );
}

fn main() {
    let calls = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let typed = AuditEvent {
        actor_id: Some("gateway"),
        event_data: EventData::Json(PAYLOAD),
        ..AuditEvent::new(
            "gateway.signal.received",
            "gateway",
            "received",
            "success",
            "rr-2026-001",
        )
    };
    // Every input through `black_box`, opaque to the optimiser as C's are: an event built
    // from constants in view had its checks and copies partly folded away (`record` 20 ns
    // cheaper, `record_event_bytes` 80 ns), which no caller gets.
    run("Rust Pipeline::record", calls, |p| {
        p.record(black_box(&typed)).is_ok()
    });
    // What `auditbuf_record_event` and `auditbuf_record_flat` call: byte-slice fields,
    // each checked for UTF-8.
    let bytes = AuditEventBytes {
        actor_id: Some(b"gateway"),
        event_data: Some(PAYLOAD.as_bytes()),
        ..common::required_bytes()
    };
    run("Rust Pipeline::record_event_bytes", calls, |p| {
        p.record_event_bytes(black_box(&bytes)).is_ok()
    });
    run("Rust Pipeline::record_json", calls, |p| {
        p.record_json(black_box(LINE.as_bytes())).is_ok()
    });
}
