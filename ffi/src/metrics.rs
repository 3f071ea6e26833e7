//! What a pipeline tells about itself as text: its Prometheus metrics, for a C or Go
//! program's own `/metrics`, and its last error, for its logs.

use std::ffi::c_char;

use auditbuf::Pipeline;

use crate::args;
use crate::error::copy_text;
use crate::panic::guard;
use crate::pipeline::{auditbuf_pipeline, handle};
use crate::status::{AUDITBUF_OK, auditbuf_status};

/// Writes the pipeline's metrics in the Prometheus text format (version 0.0.4:
/// `audit_events_buffered_total`, `audit_events_dropped_total{reason}`,
/// `audit_events_written_total`, `audit_batches_failed_total`, `audit_buffer_size`,
/// `audit_write_duration_seconds`, … each with a `service` label) into `buf`,
/// NUL-terminated and cut to `len - 1` bytes, and sets `*out_len` to the text's full
/// length in bytes (without the NUL), like `snprintf`: `*out_len >= len` means it was cut
/// — call again with a buffer of `*out_len + 1` bytes. `buf` may be NULL when `len` is 0,
/// to ask for the length. Works before and after `auditbuf_close`. Returns `AUDITBUF_OK`
/// or `AUDITBUF_NULL_PARAMETER`. Thread-safe; never blocks.
///
/// # Safety
/// `pipeline` must be NULL or a live handle; `buf` NULL or `len` writable bytes; `out_len`
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn auditbuf_pipeline_metrics(
    pipeline: *const auditbuf_pipeline,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> auditbuf_status {
    // Safety: as this function's.
    unsafe { write_text(pipeline, buf, len, out_len, Pipeline::metrics_text) }
}

/// Writes the pipeline's last send, store or rejection error (why sending fails during an
/// outage: `POST http://…: Connection refused`, a receiver's 503, a store that is full),
/// as [`auditbuf_pipeline_metrics`] writes its text: into `buf`, NUL-terminated and cut
/// to `len - 1` bytes, `*out_len` set to its full length in bytes (0 when there was none
/// yet). Unlike `auditbuf_last_error`, which is about this thread's last call, this is
/// the pipeline's, whatever thread asks: what the Rust library also logs, which C and Go
/// programs do not see. Never shows a token or a URL's password. Works before and after
/// `auditbuf_close`. Returns `AUDITBUF_OK` or `AUDITBUF_NULL_PARAMETER`. Thread-safe;
/// never blocks on the flush thread.
///
/// # Safety
/// `pipeline` must be NULL or a live handle; `buf` NULL or `len` writable bytes; `out_len`
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn auditbuf_pipeline_last_error(
    pipeline: *const auditbuf_pipeline,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> auditbuf_status {
    // Safety: as this function's.
    unsafe {
        write_text(pipeline, buf, len, out_len, |p| {
            p.last_error().unwrap_or_default()
        })
    }
}

/// What both functions above do with the text `of` gives.
///
/// # Safety
/// As theirs.
unsafe fn write_text(
    pipeline: *const auditbuf_pipeline,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
    of: impl FnOnce(&Pipeline) -> String,
) -> auditbuf_status {
    guard(|| {
        let run = || -> Result<auditbuf_status, auditbuf_status> {
            // Safety: as this function's.
            let handle = unsafe { handle(pipeline) }?;
            if out_len.is_null() {
                return Err(args::null("out_len"));
            }
            if buf.is_null() && len > 0 {
                return Err(args::null("buf"));
            }
            let text = of(&handle.pipeline);
            // Safety: `buf` has `len` writable bytes, `out_len` is writable (the caller's
            // promise, both checked non-NULL where they are used).
            unsafe {
                *out_len = copy_text(&text, buf, len);
            }
            Ok(AUDITBUF_OK)
        };
        run().unwrap_or_else(|s| s)
    })
}
