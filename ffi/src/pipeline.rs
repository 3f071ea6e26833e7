//! The pipeline handle: create, flush, close, free, stats.
//!
//! The handle C holds is a `Box<Handle>`. `auditbuf_close` stops the pipeline but leaves
//! the handle valid, so a thread still calling it gets `AUDITBUF_CLOSED`, never a freed
//! pointer; `auditbuf_pipeline_free` releases it once no thread uses it any more.

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use auditbuf::{Config, Pipeline, PipelineConfig, StoreRegistry};

use crate::args;
use crate::callback::{CallbackSink, Gate, auditbuf_sink_fn};
use crate::error::{fail, status_of};
use crate::panic::guard;
use crate::stats::{
    auditbuf_report, auditbuf_stats, check_size, write_report, write_report_of, write_stats,
};
use crate::status::{
    AUDITBUF_CLOSED, AUDITBUF_CONFIG, AUDITBUF_FORKED, AUDITBUF_INVALID_PARAMETER, AUDITBUF_OK,
    AUDITBUF_TIMEOUT, auditbuf_status,
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

/// Checks the pipeline settings and the backing store a program takes from the environment
/// variables `${prefix}_CONFIG` and `${prefix}_BACKING_STORE`, as Rust's
/// `auditbuf::Config::from_env` (and `PipelineConfig::from_env`) reads them, with the same
/// errors. The caller passes the variables' values, so the library reads no environment:
/// `config_json` (`config_len` bytes) is `${prefix}_CONFIG`'s, pipeline settings without a
/// `"sink"` or `"store"` (`{"queue_capacity":20000,"durability":"wal"}`); `store_json`
/// (`store_len` bytes) is `${prefix}_BACKING_STORE`'s, the store
/// (`{"type":"file","params":{"path":"/var/lib/audit"}}`). NULL (whatever the length) is
/// an unset variable, which keeps the defaults; an empty value is a set variable, and not a
/// JSON document. `prefix` (`prefix_len` bytes, e.g. `AUDIT`) only names the variables in
/// messages. Nothing is opened: a store's directory or server is first used by
/// `auditbuf_pipeline_new`, which also makes the checks that need the whole document (a
/// `"wal"` durability without a durable store).
///
/// Returns `AUDITBUF_OK` when both values are valid (or unset); `AUDITBUF_CONFIG` when one
/// is not UTF-8 or not one JSON object, has an unknown, duplicated, `null`, ill-typed or
/// out-of-range field, or fields that do not fit together (`max_event_bytes` not below
/// `batch_max_bytes`), the message naming the variable and then the field, as Rust's,
/// e.g. `invalid configuration: AUDIT_CONFIG: queue_capacity: is 0, must be at least 1` or
/// `` invalid configuration: AUDIT_BACKING_STORE: params: missing field `path` ``
/// (`${prefix}_CONFIG` is checked first); `AUDITBUF_NULL_PARAMETER` for a NULL `prefix`;
/// `AUDITBUF_INVALID_PARAMETER` for a `prefix` that is not UTF-8 or a length that cannot
/// be in memory. The caller keeps ownership of every argument. Thread-safe.
///
/// # Safety
/// `prefix` must be NULL or readable for `prefix_len` bytes, `config_json` for
/// `config_len` bytes and `store_json` for `store_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn auditbuf_config_check_env(
    prefix: *const c_char,
    prefix_len: usize,
    config_json: *const c_char,
    config_len: usize,
    store_json: *const c_char,
    store_len: usize,
) -> auditbuf_status {
    guard(|| {
        let run = || -> Result<auditbuf_status, auditbuf_status> {
            // Safety: as this function's.
            let prefix = unsafe { args::bytes(prefix.cast::<u8>(), prefix_len, "prefix") }?;
            let prefix = std::str::from_utf8(prefix).map_err(|e| {
                fail(
                    AUDITBUF_INVALID_PARAMETER,
                    format_args!("prefix: not valid UTF-8 at byte {}", e.valid_up_to()),
                )
            })?;
            // Safety: as this function's.
            let config = unsafe { value(config_json, config_len, "config_json") }?;
            // Safety: as this function's.
            let store = unsafe { value(store_json, store_len, "store_json") }?;
            check_env(prefix, config, store).map_err(|e| status_of(&e))?;
            Ok(AUDITBUF_OK)
        };
        run().unwrap_or_else(|s| s)
    })
}

/// A variable's value: NULL is unset.
///
/// # Safety
/// `ptr` must be NULL or readable for `len` bytes.
unsafe fn value<'a>(
    ptr: *const c_char,
    len: usize,
    what: &str,
) -> Result<Option<&'a [u8]>, auditbuf_status> {
    if ptr.is_null() {
        return Ok(None);
    }
    // Safety: as this function's.
    unsafe { args::bytes(ptr.cast::<u8>(), len, what) }.map(Some)
}

/// What `Config::from_env(prefix)` says of these values of `${prefix}_CONFIG` and
/// `${prefix}_BACKING_STORE` (None: unset): the same code, reading these values instead of
/// the environment.
fn check_env(
    prefix: &str,
    config: Option<&[u8]>,
    store: Option<&[u8]>,
) -> Result<(), auditbuf::Error> {
    use std::env::VarError;
    use std::os::unix::ffi::OsStringExt;
    let (config_var, store_var) = (
        format!("{prefix}_CONFIG"),
        format!("{prefix}_BACKING_STORE"),
    );
    let lookup = |name: &str| {
        let value = if name == config_var {
            config
        } else if name == store_var {
            store
        } else {
            None
        };
        let bytes = value.ok_or(VarError::NotPresent)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| VarError::NotUnicode(std::ffi::OsString::from_vec(e.into_bytes())))
    };
    Config::from_vars(prefix, &StoreRegistry::new(), lookup).map(drop)
}

/// Sends everything recorded before this call and waits until it is settled (delivered,
/// dead-lettered, stored or failed) or `timeout_ms` milliseconds have passed. With a
/// backing store it also drains the store as far as the sink allows.
///
/// Returns `AUDITBUF_OK` when all was settled; `AUDITBUF_TIMEOUT` when the deadline came
/// first (nothing is lost: the rest is still queued, in flight or stored), or at once when
/// called by the pipeline's own sink callback; `AUDITBUF_FORKED` in a `fork()` child (the
/// pipeline is the parent's); `AUDITBUF_CLOSED` after `auditbuf_close`. Fills `*report` (which may be NULL; set its `size` first) in
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
            } else if let Some((status, why)) = returned_at_once(&handle.pipeline) {
                Err(fail(status, format_args!("flush: {why}")))
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
/// `AUDITBUF_CLOSED`, as do those waiting for a slot under `block`, at once), sends what it can within `timeout_ms` milliseconds, keeps the rest
/// in the backing store (without one, counts it as `dropped_shutdown`), stops the flush
/// thread and releases the sink and store. Always returns by the deadline, even if the
/// sink hangs.
///
/// Returns `AUDITBUF_OK` when the flush thread finished in time (what it could not send is
/// in the report's stats: `stored`, or `dropped_shutdown` without a store),
/// `AUDITBUF_TIMEOUT` when it did not or, at once, when called by the pipeline's own sink
/// callback (the close takes effect when the callback returns), `AUDITBUF_FORKED` in a
/// `fork()` child. Closing again is allowed: it waits again, up to its own `timeout_ms`, for a
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
            } else if let Some((status, why)) = returned_at_once(&handle.pipeline) {
                Err(fail(status, format_args!("close: {why}")))
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

/// Why a flush or close that did not complete returned without waiting, if it did: in a
/// `fork()` child the pipeline is the parent's (`AUDITBUF_FORKED`); called by the
/// pipeline's own sink callback, it would wait for itself (`AUDITBUF_TIMEOUT`: not
/// completed, the close taking effect when the callback returns).
fn returned_at_once(pipeline: &Pipeline) -> Option<(auditbuf_status, &'static str)> {
    if pipeline.in_forked_child() {
        Some((
            AUDITBUF_FORKED,
            "this process is a fork() child of the one that made the pipeline, whose flush \
             thread and store belong to the parent: nothing was flushed here",
        ))
    } else if pipeline.on_own_flush_thread() {
        Some((
            AUDITBUF_TIMEOUT,
            "called by the pipeline's own sink callback, on the flush thread it would wait \
             for: returned at once, not completed (a close takes effect when the callback \
             returns)",
        ))
    } else {
        None
    }
}

/// Releases the handle. A pipeline not yet closed is closed first, waiting up to its
/// `drop_timeout_ms` (1 s by default). After this returns the sink callback is never called
/// again (a call in progress, left running by a `close` whose deadline passed, is waited
/// for), and `pipeline` must not be used: no other thread may be using it, or start to.
/// Called by the sink callback itself, it returns at once: the pipeline closes once the
/// callback returns, and the callback is not called again. NULL is fine (nothing happens).
/// Not thread-safe for the same handle: call it once, last.
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
        // Freed by its own callback, or in a fork() child (no flush thread: a call the
        // parent was making when it forked never returns here): nothing may wait for a
        // call in progress.
        let no_wait = handle.pipeline.on_own_flush_thread() || handle.pipeline.in_forked_child();
        drop(handle);
        if let Some(gate) = gate {
            gate.shut(no_wait);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What `auditbuf_config_check_env` says of these values: `Ok(())` or the status and
    /// the message.
    fn check(
        prefix: &[u8],
        config: Option<&[u8]>,
        store: Option<&[u8]>,
    ) -> Result<(), (auditbuf_status, String)> {
        let ptr = |v: Option<&[u8]>| v.map_or(std::ptr::null(), |v| v.as_ptr().cast::<c_char>());
        let len = |v: Option<&[u8]>| v.map_or(0, <[u8]>::len);
        // Safety: every pointer is NULL or points to its length's bytes.
        let status = unsafe {
            auditbuf_config_check_env(
                prefix.as_ptr().cast::<c_char>(),
                prefix.len(),
                ptr(config),
                len(config),
                ptr(store),
                len(store),
            )
        };
        if status == AUDITBUF_OK {
            return Ok(());
        }
        let mut buf = vec![0 as c_char; 1024];
        // Safety: `buf` has 1024 bytes.
        unsafe { crate::auditbuf_last_error(buf.as_mut_ptr(), buf.len()) };
        // Safety: auditbuf_last_error NUL-terminates.
        let msg = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
        Err((status, msg.to_string_lossy().into_owned()))
    }

    #[test]
    fn the_check_names_the_variable_and_the_field() {
        let err = |config: Option<&[u8]>, store: Option<&[u8]>| {
            check(b"AUDIT", config, store).unwrap_err()
        };
        for (config, store, want) in [
            (
                Some(&br#"{"queue_capacity":0}"#[..]),
                None,
                "invalid configuration: AUDIT_CONFIG: queue_capacity: is 0, must be at least 1",
            ),
            (
                None,
                Some(&br#"{"type":"file","params":{}}"#[..]),
                "invalid configuration: AUDIT_BACKING_STORE: params: missing field `path`",
            ),
        ] {
            assert_eq!(err(config, store), (AUDITBUF_CONFIG, want.to_owned()));
        }
        assert_eq!(
            check(b"AUDIT", Some(b"{}"), Some(b"{\"type\":\"memory\"}")),
            Ok(())
        );
        assert_eq!(
            check(b"AUDIT", None, None),
            Ok(()),
            "both unset: the defaults"
        );
        assert_eq!(
            check(b"AUDIT", Some(b"{\"service\":\"\xff\"}"), None),
            Err((
                AUDITBUF_CONFIG,
                "invalid configuration: AUDIT_CONFIG: is not valid UTF-8".to_owned()
            ))
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        // Safety: NULL prefix, the rest NULL (unset).
        let status = unsafe {
            auditbuf_config_check_env(
                std::ptr::null(),
                0,
                std::ptr::null(),
                0,
                std::ptr::null(),
                0,
            )
        };
        assert_eq!(status, crate::AUDITBUF_NULL_PARAMETER);
        assert_eq!(
            check(b"AU\xffDIT", None, None),
            Err((
                AUDITBUF_INVALID_PARAMETER,
                "prefix: not valid UTF-8 at byte 2".to_owned()
            ))
        );
        // A length that cannot be in memory, for a pointer that is not NULL.
        // Safety: the length is refused before the pointer is read.
        let status = unsafe {
            auditbuf_config_check_env(
                c"A".as_ptr(),
                1,
                c"{}".as_ptr(),
                usize::MAX,
                std::ptr::null(),
                0,
            )
        };
        assert_eq!(status, AUDITBUF_INVALID_PARAMETER);
    }
}
