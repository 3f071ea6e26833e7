//! # auditbuf-ffi: the C ABI of auditbuf
//!
//! The library C, Go (through cgo) and other languages link against:
//! `libauditbuf_ffi.so` / `libauditbuf_ffi.a`, with the header `include/auditbuf.h`
//! generated from this crate by cbindgen (`ffi/cbindgen.toml`).
//!
//! ## Conventions
//! - Every name starts with `auditbuf_` (`AUDITBUF_` for constants).
//! - Functions return an `auditbuf_status` (`uint32_t`): `AUDITBUF_OK` is 0,
//!   `AUDITBUF_NOT_DURABLE` a warning (the event was accepted), anything else an error whose
//!   message `auditbuf_last_error` returns on the same thread. Codes 1–99 are
//!   `auditbuf::Error::code()`, shared with Go and Python.
//! - Results come back through out-parameters; the caller owns what it passes and gets
//!   back exactly what each function's documentation says. Strings are byte views
//!   (pointer + length, UTF-8, no NUL needed) that the library reads during the call only.
//! - Every pointer is checked: NULL gives `AUDITBUF_NULL_PARAMETER` (except where a
//!   function says NULL is fine), an impossible length `AUDITBUF_INVALID_PARAMETER`.
//! - No panic crosses the boundary: a bug inside the library returns `AUDITBUF_PANIC`.
//! - A pipeline may be used by any number of threads at once, `auditbuf_close` included.
//!   After `auditbuf_close` every call returns `AUDITBUF_CLOSED` (stats still work); the
//!   handle stays valid until `auditbuf_pipeline_free`, which must be the last call on
//!   it, made when no other thread uses it.
//! - Not async-signal-safe: no function may be called from a signal handler (recording
//!   may allocate, lock and use thread-local buffers).
//! - Times are in milliseconds (`_ms`), sizes in bytes.

#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![warn(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::undocumented_unsafe_blocks
)]
#![allow(non_camel_case_types)]

mod args;
mod cadf;
mod callback;
mod element;
mod error;
mod event;
mod flat;
mod metrics;
mod panic;
mod pipeline;
mod record;
mod stats;
mod status;

pub use cadf::{
    auditbuf_cadf_address, auditbuf_cadf_attachment, auditbuf_cadf_event, auditbuf_cadf_resource,
    auditbuf_record_cadf,
};
pub use callback::{
    AUDITBUF_SINK_DELIVERED, AUDITBUF_SINK_REJECTED, AUDITBUF_SINK_RETRY, AUDITBUF_SINK_TOO_LARGE,
    auditbuf_sink_fn,
};
pub use error::auditbuf_last_error;
pub use event::{auditbuf_bytes, auditbuf_event, auditbuf_record_event};
pub use flat::*;
pub use metrics::{auditbuf_pipeline_last_error, auditbuf_pipeline_metrics};
pub use pipeline::{
    auditbuf_close, auditbuf_config_check_env, auditbuf_flush, auditbuf_pipeline,
    auditbuf_pipeline_free, auditbuf_pipeline_new, auditbuf_pipeline_new_callback,
    auditbuf_pipeline_stats,
};
pub use record::{auditbuf_record_json, auditbuf_record_json_batch};
pub use stats::{auditbuf_report, auditbuf_stats};
pub use status::*;
