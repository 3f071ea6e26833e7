//! The native module of the `auditbuf` Python package, `auditbuf._auditbuf`: the Rust
//! pipeline behind a Python API. The package (`python/auditbuf/__init__.py`) re-exports
//! it; `_auditbuf.pyi` mirrors every signature with its documentation.
//!
//! - `pipeline`: `Pipeline`, its record calls, flush and close;
//! - `record`: `record`'s dict, or JSON text, into the slot;
//! - `record_event`: `record_event`'s keyword arguments as the core's `AuditEventBytes`;
//! - `lifetime`: the close at interpreter exit, and before the collector breaks a cycle;
//! - `cadf`: `record_cadf`'s dict as the core's `CadfEvent`;
//! - `encode`: dicts and other Python values to JSON, straight into the slot (`escape`: JSON
//!   strings, plain bytes found eight at a time);
//! - `document`: the constructor's arguments as the core's pipeline document;
//! - `sink`: a Python callable as the sink;
//! - `errors`: the exception classes and the mapping from `auditbuf::Error`;
//! - `stats`: `Stats`, `Report`, `DeadLetter`;
//! - `wait`: waiting without the GIL, interruptible by Ctrl-C.

// `unsafe` only where allowed item by item: reading a str's UTF-8 without a copy
// (encode.rs), and the sink's calls into CPython's C API (sink.rs).
#![deny(unsafe_code)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![warn(clippy::unwrap_used, clippy::expect_used)]

mod cadf;
mod cadf_path;
mod document;
mod encode;
mod errors;
mod lifetime;
mod pipeline;
mod record;
mod record_event;
mod sink;
mod stats;
mod wait;

/// The native core of `auditbuf`; import `auditbuf` instead.
#[pyo3::pymodule(name = "_auditbuf")]
mod native {
    use pyo3::prelude::*;

    #[pymodule_export]
    use crate::lifetime::close_all_at_exit;
    #[pymodule_export]
    use crate::pipeline::PyPipeline;
    #[pymodule_export]
    use crate::stats::{DeadLetter, Dropped, Rejected, Report, Stats};

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        crate::errors::register(m)?;
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
