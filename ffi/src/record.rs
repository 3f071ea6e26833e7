//! `auditbuf_record_json` and `auditbuf_record_json_batch`: JSON bytes straight into a slot.

use crate::args;
use crate::error::{at_index, fail, status};
use crate::flat::auditbuf_span;
use crate::panic::guard;
use crate::pipeline::{auditbuf_pipeline, handle};
use crate::status::{
    AUDITBUF_INVALID_PARAMETER, AUDITBUF_NOT_DURABLE, AUDITBUF_OK, auditbuf_status,
};

/// Records one event given as JSON text: exactly one object, UTF-8, at most
/// `max_event_bytes` once completed. It is validated and copied into a pooled buffer on the
/// calling thread without allocating; `"version":"1.0"` and `"event_timestamp"` are added
/// when absent, and line breaks between tokens become spaces.
///
/// Returns `AUDITBUF_OK` (or the `AUDITBUF_NOT_DURABLE` warning) when the event was
/// accepted; otherwise nothing was taken: `AUDITBUF_INVALID_UTF8`, `AUDITBUF_INVALID_JSON`,
/// `AUDITBUF_NOT_AN_OBJECT`, `AUDITBUF_TOO_LARGE` (each counted, with a message giving the
/// byte offset or the limit), `AUDITBUF_FULL`, `AUDITBUF_TIMEOUT`, `AUDITBUF_CLOSED`,
/// `AUDITBUF_NULL_PARAMETER`. The caller keeps ownership of `json`; nothing is kept after
/// the call. Thread-safe.
///
/// # Safety
/// `pipeline` must be NULL or a live handle; `json` NULL or readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn auditbuf_record_json(
    pipeline: *const auditbuf_pipeline,
    json: *const u8,
    len: usize,
) -> auditbuf_status {
    guard(|| {
        let record = || -> Result<auditbuf_status, auditbuf_status> {
            // Safety: as this function's.
            let handle = unsafe { handle(pipeline) }?;
            // Safety: as this function's.
            let json = unsafe { args::bytes(json, len, "json") }?;
            Ok(status(handle.pipeline.record_json(json)))
        };
        record().unwrap_or_else(|s| s)
    })
}

/// Records `n` JSON events in one call. Event `i` is the `spans[i].len` bytes at
/// `buf + spans[i].offset` (plain integers, so cgo can pass Go memory). Events are recorded
/// in order, each as by `auditbuf_record_json`, stopping at the first one not accepted:
/// `*taken` is set to the number accepted (events `0 .. *taken`) and the status is that of
/// event `*taken` (its message starts `events[i]: `), or `AUDITBUF_OK` when all were taken
/// (`AUDITBUF_NOT_DURABLE` if any was only that). A span past `buf_len` is
/// `AUDITBUF_INVALID_PARAMETER`. `spans` may be NULL when `n` is 0, `buf` when `buf_len`
/// is 0. The caller keeps ownership of everything; nothing is kept after the call.
/// Thread-safe.
///
/// # Safety
/// `pipeline` must be NULL or a live handle; `buf` NULL or readable for `buf_len` bytes;
/// `spans` NULL or readable for `n` spans; `taken` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn auditbuf_record_json_batch(
    pipeline: *const auditbuf_pipeline,
    buf: *const u8,
    buf_len: usize,
    spans: *const auditbuf_span,
    n: usize,
    taken: *mut usize,
) -> auditbuf_status {
    guard(|| {
        let record = || -> Result<auditbuf_status, auditbuf_status> {
            // Safety: as this function's.
            let taken = unsafe { args::out(taken, "taken") }?;
            *taken = 0;
            // Safety: as this function's.
            let handle = unsafe { handle(pipeline) }?;
            // Safety: as this function's.
            let spans = unsafe { args::array(spans, n, "spans") }?;
            // Safety: as this function's.
            let buf = unsafe { args::buffer(buf, buf_len) }?;
            let mut result = AUDITBUF_OK;
            for (i, span) in spans.iter().enumerate() {
                let Some(json) = span.of(buf) else {
                    return Err(fail(
                        AUDITBUF_INVALID_PARAMETER,
                        format_args!(
                            "spans[{i}]: {{offset {}, len {}}} ends past the buffer of {} bytes",
                            span.offset,
                            span.len,
                            buf.len()
                        ),
                    ));
                };
                match status(handle.pipeline.record_json(json)) {
                    AUDITBUF_OK => {}
                    AUDITBUF_NOT_DURABLE => result = AUDITBUF_NOT_DURABLE,
                    error => return Err(at_index(error, i)),
                }
                *taken = i + 1;
            }
            Ok(result)
        };
        record().unwrap_or_else(|s| s)
    })
}
