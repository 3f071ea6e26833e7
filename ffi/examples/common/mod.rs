//! What the benchmark examples share: their pipeline's configuration (the C benchmark's and
//! the Go benchmark's too) and the event's required fields.

use auditbuf::{AuditEventBytes, Pipeline, PipelineConfig};

/// A queue of 10 000, lossless (`block`), a null sink: the configuration of
/// `ffi/tests/c/bench.c` and of `go/bench_test.go`.
pub const CONFIG: &str = r#"{"queue_capacity":10000,"overflow":"block","block_timeout_ms":10000,"sink":{"type":"null"}}"#;

/// A pipeline with [`CONFIG`].
pub fn pipeline() -> Pipeline {
    match PipelineConfig::from_json(CONFIG).and_then(PipelineConfig::build) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// The benchmarks' event with its required fields only, as bytes.
pub fn required_bytes() -> AuditEventBytes<'static> {
    AuditEventBytes::new(
        b"gateway.signal.received",
        b"gateway",
        b"received",
        b"success",
        b"rr-2026-001",
    )
}
