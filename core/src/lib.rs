//! # auditbuf
//!
//! Ship audit events from any program to a collector without blocking or slowing the
//! program, and without losing what it promised to keep.
//!
//! `record` checks an event and copies it into a pre-allocated slot — a typed event as its
//! fields and a cycle-counter timestamp, rendered as JSON later by the flush thread (or by
//! a caller under `Block` that would otherwise wait for it) — and
//! pushes it on a bounded queue: no allocation, no lock, no I/O on the caller's thread. One flush thread batches by
//! count, bytes and time, sends through a [`Sink`], retries with backoff, splits batches the
//! receiver finds too large and bisects those it rejects, so one bad event never costs the
//! others.
//!
//! ```
//! use auditbuf::{AuditEvent, Config, EventData, NullSink, Pipeline};
//! use std::time::Duration;
//!
//! // DataStorageSink::new("http://datastorage:8080") in production.
//! let pipeline = Pipeline::new(Config::default().service("gateway"), NullSink)?;
//!
//! pipeline.record(&AuditEvent {
//!     actor_type: Some("service"),
//!     actor_id: Some("gateway"),
//!     event_data: EventData::Json(r#"{"signal_type":"alert","signal_name":"OOMKilled"}"#),
//!     ..AuditEvent::new("gateway.signal.received", "gateway", "received", "success", "rr-1")
//! })?;
//!
//! // Bad input is turned away with its own error and counted; nothing else is affected.
//! assert!(pipeline.record_json(b"{not json").is_err());
//!
//! let report = pipeline.close(Duration::from_secs(5));
//! assert_eq!(report.stats.delivered, 1);
//! assert_eq!(report.stats.rejected.invalid_json, 1);
//! assert!(report.stats.is_consistent());
//! # Ok::<(), auditbuf::Error>(())
//! ```
//!
//! ## Accounting
//! Every accepted event ends in exactly one counter:
//! `recorded + recovered = delivered + dead_lettered + failed + dropped + in_flight + queued
//! + stored`, in every [`Stats`] snapshot. Calls that were turned away are counted by reason in
//! [`Stats::rejected`] and never entered the pipeline.
//!
//! ## Bad input
//! Events are checked on the caller's thread, without allocating, and refused with their
//! own [`Error`] (counted in [`Stats::rejected`]) when a receiver would refuse or misread
//! them: a typed [`AuditEvent`] must meet DataStorage's field rules (lengths, the outcome
//! enum, RFC 3339 timestamps, …); every event must be one JSON object without duplicate
//! keys, `\u0000`, numbers of magnitude 1e308 or more, or nesting deeper than 126 levels.
//! See [`Pipeline::record`] and [`Pipeline::record_json`].
//!
//! ## Cargo features
//! - `sqlite` (default): the SQLite backing store (`SqliteStore`); SQLite is compiled in
//!   (`rusqlite` with `bundled`).
//! - `postgres`: the Postgres backing store (`PostgresStore`); the `postgres` crate runs
//!   its own small runtime, driven from the flush thread.
//! - `rabbitmq`: the RabbitMQ sink (`RabbitMqSink`, AMQP 0-9-1 with publisher confirms) on
//!   `lapin`, driven from the flush thread by a small `block_on` (no tokio runtime).
//! - `metrics-server`: `Pipeline::serve_metrics(addr)`, a thread answering `GET /metrics`
//!   with the Prometheus text format (std `TcpListener`, no extra crate); without it,
//!   `metrics_text()` and `register_metrics` serve the same counters through the
//!   application's own server.
//!
//! ## Delivery
//! At least once. 2xx (201 and 202) is delivered and never resent; 408, 429, 5xx and network
//! errors are retried with exponential backoff and full jitter, honouring `Retry-After`;
//! 401/403 re-read the token file and retry; 413 splits the batch in halves; other 4xx bisect
//! it and dead-letter the events the receiver still refuses alone, with its reason.

// `unsafe` is allowed, outside tests, in six files only, each for one thing: registering
// the fork handler (`fork.rs`), returning free memory to the system (`heap.rs`), cache
// hints (`prefetch.rs`), SSE2 loads and compares for the string scans (`encode/swar.rs`),
// the copy of a typed event's fields into its slot (`encode/copy.rs`) and parking the
// callers that wait for a slot by their turn (`turns.rs`, `parking_lot_core`).
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![warn(clippy::unwrap_used, clippy::expect_used)]
#![warn(clippy::missing_errors_doc)]

mod backlog;
mod clock;
mod config;
mod dead_letter;
mod deliver;
mod drain;
mod encode;
mod error;
mod flush;
mod fork;
mod group_commit;
mod heap;
mod lanes;
mod losses;
mod metrics;
#[cfg(feature = "metrics-server")]
mod metrics_server;
mod park;
mod pipeline;
mod prefetch;
mod retry;
mod setup;
mod shared;
mod sink;
mod slots;
mod stats;
mod store;
mod throttle;
mod turns;
mod wake;
mod worker;

#[doc(hidden)]
pub use config::doc::check_document;
pub use config::{Config, Durability, Overflow};
pub use dead_letter::DeadLetter;
pub use encode::cadf::{
    CadfAddress, CadfAttachment, CadfContent, CadfEvent, CadfHost, CadfReason, CadfResource,
};
pub use encode::event::AuditEvent;
pub use encode::event_bytes::AuditEventBytes;
pub use encode::event_data::{EventData, ToJson};
#[doc(hidden)]
pub use encode::raw::Encoded;
pub use error::{ConfigError, Error, IoError, StoreError};
pub use losses::GAP_MARKER_EVENT_TYPE;
#[cfg(feature = "metrics-server")]
pub use metrics_server::MetricsServer;
#[doc(hidden)]
pub use park::Park;
pub use pipeline::Pipeline;
pub use retry::RetryPolicy;
pub use setup::{PipelineConfig, SinkConfig};
#[cfg(feature = "rabbitmq")]
pub use sink::RabbitMqSink;
pub use sink::{
    BodyFormat, CallbackSink, DataStorageSink, HttpConfig, HttpSink, Limits, NullSink, Outcome,
    RabbitMqConfig, Sink,
};
pub use stats::{Dropped, Rejected, Report, Stats};
pub use store::{
    Appended, FileStore, FileStoreConfig, Fsync, MemoryStore, MemoryStoreConfig, PartCheck,
    PendingSync, Recovery, Store, StoreCheck, StoreConfig, StoreFactory, StoreRegistry, StoreSize,
    StoredBatch,
};
#[cfg(feature = "postgres")]
pub use store::{PostgresStore, PostgresStoreConfig};
#[cfg(feature = "sqlite")]
pub use store::{SqliteStore, SqliteStoreConfig};

/// lapin and the executor pieces the RabbitMQ tests use to consume what the sink
/// published; not part of the API.
#[cfg(feature = "rabbitmq")]
#[doc(hidden)]
pub mod __rabbitmq_testing {
    pub use async_io;
    pub use futures_lite;
    pub use lapin;
}

/// The JSON check behind `record_json` and a typed event's `event_data`, for the
/// `hot_path` benchmark's validation figure and for the C ABI, which names the element of
/// a list whose JSON the core refused; not part of the API.
#[doc(hidden)]
pub mod __bench {
    /// Whether `json` passes `record_json`'s JSON check (one object; UTF-8, escapes,
    /// duplicate keys, number range, nesting), the size limit aside.
    pub fn is_accepted_object(json: &[u8]) -> bool {
        use crate::encode::json::{MAX_DEPTH, scan_object};
        scan_object(json, MAX_DEPTH).is_ok()
    }
}

/// The README's examples run as doc tests, so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
