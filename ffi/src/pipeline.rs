//! The pipeline handle: create, flush, close, free, stats.
//!
//! The handle C holds is a `Box<Handle>`. `auditbuf_close` stops the pipeline but leaves
//! the handle valid, so a thread still calling it gets `AUDITBUF_CLOSED`, never a freed
//! pointer; `auditbuf_pipeline_free` releases it once no thread uses it any more.

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use auditbuf::{Pipeline, PipelineConfig};

use crate::args;
use crate::callback::{CallbackSink, Gate, auditbuf_sink_fn};
use crate::error::{fail, status_of};
use crate::panic::guard;
use crate::stats::{
    auditbuf_report, auditbuf_stats, check_size, write_report, write_report_of, write_stats,
};
use crate::status::{
    AUDITBUF_CLOSED, AUDITBUF_CONFIG, AUDITBUF_OK, AUDITBUF_TIMEOUT, auditbuf_status,
};

/// A running pipeline: a bounded queue, one flush thread and a sink (and a backing store,
/// if configured). Opaque: created by `auditbuf_pipeline_new*`, released by
/// `auditbuf_pipeline_free`.
#[derive(Debug)]
pub struct auditbuf_pipeline {
    _private: [u8; 0],
}

/// What an `auditbuf_pipeline` pointer points to.
#[derive(Debug)]
pub(crate) struct Handle {
    pub(crate) pipeline: Pipeline,
    closed: AtomicBool,
    /// The C callback's gate, shut when the handle is freed.
    gate: Option<Arc<Gate>>,
}

/// The handle behind `pipeline`. NULL is `AUDITBUF_NULL_PARAMETER`.
///
/// # Safety
/// `pipeline` must be NULL or a pointer from `auditbuf_pipeline_new*` not yet freed.
pub(crate) unsafe fn handle<'a>(
    pipeline: *const auditbuf_pipeline,
) -> Result<&'a Handle, auditbuf_status> {
    // Safety: a live `Box<Handle>` (the caller's promise), only ever shared.
    unsafe { args::reference(pipeline.cast::<Handle>(), "pipeline") }
}

/// Creates a pipeline from a configuration document (`len` bytes of UTF-8 JSON at
/// `config_json`, no NUL needed) naming its sink, and starts its flush thread.
///
/// The document holds the pipeline settings (`service`, `queue_capacity`, `max_lanes`,
/// `max_event_bytes`, `batch_max_events`, `batch_max_bytes`, `flush_interval_ms`,
/// `overflow` (`"drop_newest"`, `"drop_oldest"`, `"block"` with `block_timeout_ms`, `"spill"`),
/// `durability` (`"buffered"`, `"wal"`), `retry`, …), a `"sink"`
/// (`{"type":"datastorage","url":…}`, `{"type":"http","url":…,"format":"ndjson"}`,
/// `{"type":"rabbitmq","url":"amqp://…","queue":…}` or `{"type":"null"}`, the HTTP ones
/// with `headers`, `bearer_token` or `token_file`, `connect_timeout_ms`, `timeout_ms`,
/// `ca_file`, the RabbitMQ one with `exchange`, `routing_key`, `declare`,
/// `connect_timeout_ms`, `timeout_ms`, `ca_file`) and optionally a `"store"`
/// (`{"type":"file","params":{"path":…}}`). See the README for every field.
///
/// On success returns `AUDITBUF_OK` and sets `*out` to a new pipeline, which the caller
/// owns: call `auditbuf_close` to stop it, then `auditbuf_pipeline_free`. On failure
/// sets `*out` to NULL and returns `AUDITBUF_CONFIG` (the message names the field, e.g.
/// `sink.url`), `AUDITBUF_IO` (a token or CA file), `AUDITBUF_STORE` (a store that cannot
/// be opened), `AUDITBUF_SPAWN` or `AUDITBUF_NULL_PARAMETER`. The caller keeps ownership of
/// `config_json`. Thread-safe.
///
/// # Safety
/// `config_json` must be NULL or readable for `len` bytes; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn auditbuf_pipeline_new(
    config_json: *const c_char,
    len: usize,
    out: *mut *mut auditbuf_pipeline,
) -> auditbuf_status {
    guard(|| {
        // Safety: as this function's.
        let run = || unsafe { create(config_json, len, out, |c| c.build(), None) };
        run().unwrap_or_else(|s| s)
    })
}

/// Creates a pipeline whose sink is `callback`, called with `user` on the flush thread
/// for every batch (see `auditbuf_sink_fn`). `config_json` is a document as for
/// `auditbuf_pipeline_new`, without a `"sink"` (an error here); `"{}"` takes every
/// default.
///
/// `user` is passed back to `callback` only, and must stay valid until
/// `auditbuf_pipeline_free` returns: after that the callback is never called again. It
/// may be called from the flush thread, not the creating one. Ownership and errors as for
/// `auditbuf_pipeline_new` (`AUDITBUF_NULL_PARAMETER` for a NULL `callback`).
///
/// # Safety
/// `config_json` must be NULL or readable for `len` bytes; `out` NULL or writable;
/// `callback` must be safe to call with `user` from another thread until the handle is
/// freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn auditbuf_pipeline_new_callback(
    config_json: *const c_char,
    len: usize,
    callback: auditbuf_sink_fn,
    user: *mut c_void,
    out: *mut *mut auditbuf_pipeline,
) -> auditbuf_status {
    guard(|| {
        let run = || {
            let Some(callback) = callback else {
                if let Some(out) = std::ptr::NonNull::new(out) {
                    // Safety: non-NULL and writable (the caller's promise).
                    unsafe { out.write(std::ptr::null_mut()) };
                }
                return Err(args::null("callback"));
            };
            let (sink, gate) = CallbackSink::new(callback, user);
            let build = move |c: PipelineConfig| c.build_with_sink(sink);
            // Safety: as this function's.
            unsafe { create(config_json, len, out, build, Some(gate)) }
        };
        run().unwrap_or_else(|s| s)
    })
}

/// Parses the document, builds the pipeline with `build`, and hands C the handle.
///
/// # Safety
/// As `auditbuf_pipeline_new`'s.
unsafe fn create(
    config_json: *const c_char,
    len: usize,
    out: *mut *mut auditbuf_pipeline,
    build: impl FnOnce(PipelineConfig) -> Result<Pipeline, auditbuf::Error>,
    gate: Option<Arc<Gate>>,
) -> Result<auditbuf_status, auditbuf_status> {
    // Safety: as this function's.
    let out = unsafe { args::out(out, "out") }?;
    *out = std::ptr::null_mut();
    // Safety: as this function's.
    let bytes = unsafe { args::bytes(config_json.cast::<u8>(), len, "config_json") }?;
    let text = std::str::from_utf8(bytes).map_err(|e| {
        fail(
            AUDITBUF_CONFIG,
            format_args!(
                "invalid configuration: (document): not valid UTF-8 at byte {}",
                e.valid_up_to()
            ),
        )
    })?;
    let pipeline = PipelineConfig::from_json(text)
        .and_then(build)
        .map_err(|e| status_of(&e))?;
    let handle = Box::new(Handle {
        pipeline,
        closed: AtomicBool::new(false),
        gate,
    });
    *out = Box::into_raw(handle).cast::<auditbuf_pipeline>();
    Ok(AUDITBUF_OK)
}

/// Sends everything recorded before this call and waits until it is settled (delivered,
/// dead-lettered, stored or failed) or `timeout_ms` milliseconds have passed. With a
/// backing store it also drains the store as far as the sink allows.
///
/// Returns `AUDITBUF_OK` when all was settled, `AUDITBUF_TIMEOUT` when the deadline came
/// first (nothing is lost: the rest is still queued, in flight or stored), `AUDITBUF_CLOSED`
/// after `auditbuf_close`. Fills `*report` (which may be NULL; set its `size` first) in
/// every case but a NULL or invalid argument. Thread-safe; blocks the calling thread
/// only.
///
/// # Safety
/// `pipeline` must be NULL or a live handle; `report` NULL or a writable
/// `auditbuf_report` of `report->size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn auditbuf_flush(
    pipeline: *const auditbuf_pipeline,
    timeout_ms: u64,
    report: *mut auditbuf_report,
) -> auditbuf_status {
    guard(|| {
        let run = || -> Result<auditbuf_status, auditbuf_status> {
            // Safety: as this function's.
            let handle = unsafe { handle(pipeline) }?;
            // Safety: as this function's.
            unsafe { check_size(report) }?;
            if handle.closed.load(Ordering::SeqCst) {
                // Safety: checked above.
                unsafe { write_report_of(&handle.pipeline.stats(), false, report) };
                return Err(fail(AUDITBUF_CLOSED, "pipeline is closed"));
            }
            let done = handle.pipeline.flush(Duration::from_millis(timeout_ms));
            // Safety: checked above.
            unsafe { write_report(&done, report) };
            if done.completed {
                Ok(AUDITBUF_OK)
            } else {
                Err(fail(
                    AUDITBUF_TIMEOUT,
                    format_args!(
                        "flush: the deadline of {timeout_ms} ms passed with {} events left",
                        done.left
                    ),
                ))
            }
        };
        run().unwrap_or_else(|s| s)
    })
}

/// Stops the pipeline: it takes no more events (every later record call returns
/// `AUDITBUF_CLOSED`), sends what it can within `timeout_ms` milliseconds, keeps the rest
/// in the backing store (without one, counts it as `dropped_shutdown`), stops the flush
/// thread and releases the sink and store. Always returns by the deadline, even if the
/// sink hangs.
///
/// Returns `AUDITBUF_OK` when the flush thread finished in time, `AUDITBUF_TIMEOUT` when
/// it did not. Closing again is allowed: it waits again, up to its own `timeout_ms`, for a
/// flush thread still running, fills `*report`, and returns `AUDITBUF_CLOSED`. The handle
/// stays valid after close (calls return `AUDITBUF_CLOSED`; `auditbuf_pipeline_stats` still
/// works) until `auditbuf_pipeline_free`. Fills `*report` (may be NULL; set its `size`
/// first). Thread-safe: may run while other threads record, flush or close.
///
/// # Safety
/// `pipeline` must be NULL or a live handle; `report` NULL or a writable
/// `auditbuf_report` of `report->size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn auditbuf_close(
    pipeline: *const auditbuf_pipeline,
    timeout_ms: u64,
    report: *mut auditbuf_report,
) -> auditbuf_status {
    guard(|| {
        let run = || -> Result<auditbuf_status, auditbuf_status> {
            // Safety: as this function's.
            let handle = unsafe { handle(pipeline) }?;
            // Safety: as this function's.
            unsafe { check_size(report) }?;
            let again = handle.closed.swap(true, Ordering::SeqCst);
            let done = handle.pipeline.close(Duration::from_millis(timeout_ms));
            // Safety: checked above.
            unsafe { write_report(&done, report) };
            if again {
                Err(fail(AUDITBUF_CLOSED, "pipeline was already closed"))
            } else if done.completed {
                Ok(AUDITBUF_OK)
            } else {
                Err(fail(
                    AUDITBUF_TIMEOUT,
                    format_args!(
                        "close: the deadline of {timeout_ms} ms passed before the flush thread stopped ({} events left)",
                        done.left
                    ),
                ))
            }
        };
        run().unwrap_or_else(|s| s)
    })
}

/// Releases the handle. A pipeline not yet closed is closed first, waiting up to its
/// `drop_timeout_ms` (1 s by default). After this returns the sink callback is never called
/// again (a call in progress, left running by a `close` whose deadline passed, is waited
/// for), and `pipeline` must not be used: no other thread may be using it, or start to.
/// NULL is fine (nothing happens). Not thread-safe for the same handle: call it once,
/// last.
///
/// # Safety
/// `pipeline` must be NULL or a handle from `auditbuf_pipeline_new*` not yet freed, used
/// by no other thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn auditbuf_pipeline_free(pipeline: *mut auditbuf_pipeline) {
    if pipeline.is_null() {
        return;
    }
    // Safety: a `Box<Handle>` from `create` not yet freed, used by no one else (the
    // caller's promise).
    let handle = unsafe { Box::from_raw(pipeline.cast::<Handle>()) };
    let _ = guard(move || {
        let gate = handle.gate.clone();
        drop(handle);
        if let Some(gate) = gate {
            gate.shut();
        }
        AUDITBUF_OK
    });
}

/// Fills `*out` with a consistent snapshot of the pipeline's counters (set `out->size`
/// to `sizeof(auditbuf_stats)` first). Works before and after `auditbuf_close`. Returns
/// `AUDITBUF_OK`, `AUDITBUF_NULL_PARAMETER`, or `AUDITBUF_INVALID_PARAMETER` for a `size`
/// below `sizeof(size_t)`. Thread-safe; never blocks.
///
/// # Safety
/// `pipeline` must be NULL or a live handle; `out` NULL or a writable `auditbuf_stats` of
/// `out->size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn auditbuf_pipeline_stats(
    pipeline: *const auditbuf_pipeline,
    out: *mut auditbuf_stats,
) -> auditbuf_status {
    guard(|| {
        let run = || -> Result<auditbuf_status, auditbuf_status> {
            // Safety: as this function's.
            let handle = unsafe { handle(pipeline) }?;
            if out.is_null() {
                return Err(args::null("out"));
            }
            // Safety: non-NULL, writable for its `size` (the caller's promise).
            Ok(unsafe { write_stats(&handle.pipeline.stats(), out) })
        };
        run().unwrap_or_else(|s| s)
    })
}
