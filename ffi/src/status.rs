//! Status codes: `auditbuf::Error::code()` plus the ABI's own (NULL, bad arguments, panic).

use std::ffi::{CStr, c_char};

/// What a call did. `AUDITBUF_OK` (0) is success; `AUDITBUF_NOT_DURABLE` (1) is a warning
/// (the event was accepted); every other value is an error, and
/// `auditbuf_last_error` then holds a message naming the field or limit involved. Values
/// 1–99 are `auditbuf::Error::code()` and shared with Go and Python; 100 and up are this
/// ABI's own. Codes never change meaning.
pub type auditbuf_status = u32;

/// Success.
pub const AUDITBUF_OK: auditbuf_status = 0;
/// Warning, not an error: the event was accepted and will be sent, but the `wal` store's
/// sync failed, so it may not survive a crash.
pub const AUDITBUF_NOT_DURABLE: auditbuf_status = 1;
/// The queue is full (overflow `drop_newest`): the event was not taken. Counted in
/// `rejected_queue_full`. A thread turned away again and again yields its CPU
/// (`sched_yield`) once every 32 refusals while the flush thread works, so that the flush
/// thread can make room (a thread at a real-time priority gains nothing from it).
pub const AUDITBUF_FULL: auditbuf_status = 10;
/// A deadline passed: no slot came free within `block_timeout_ms` (overflow `block`;
/// counted in `rejected_block_timeout`), or `auditbuf_flush` / `auditbuf_close` returned
/// at their `timeout_ms` with work left.
pub const AUDITBUF_TIMEOUT: auditbuf_status = 11;
/// The pipeline was closed by `auditbuf_close`. Counted in `rejected_closed`.
pub const AUDITBUF_CLOSED: auditbuf_status = 12;
/// The pipeline was created before `fork()`; the child must create its own. Counted in
/// `rejected_closed`.
pub const AUDITBUF_FORKED: auditbuf_status = 13;
/// The JSON event is not valid UTF-8. Counted in `rejected_invalid_utf8`.
pub const AUDITBUF_INVALID_UTF8: auditbuf_status = 14;
/// The JSON event is not valid JSON, or JSON text given as a field is not (a typed event's
/// `event_data`, a CADF attachment's content: the message then names the field, and its
/// byte offset counts from the start of that field). Counted in `rejected_invalid_json`.
pub const AUDITBUF_INVALID_JSON: auditbuf_status = 15;
/// The JSON event is valid JSON but not an object. Counted in `rejected_not_an_object`.
pub const AUDITBUF_NOT_AN_OBJECT: auditbuf_status = 16;
/// The encoded event is larger than `max_event_bytes`. Counted in `rejected_too_large`.
pub const AUDITBUF_TOO_LARGE: auditbuf_status = 17;
/// A required field of a typed event is absent or empty. Counted in
/// `rejected_missing_field`.
pub const AUDITBUF_MISSING_FIELD: auditbuf_status = 18;
/// A typed event's field is not valid UTF-8, or has a value the receiver would reject (an
/// `event_data` that is not a JSON object included). Counted in `rejected_invalid_field`.
pub const AUDITBUF_INVALID_FIELD: auditbuf_status = 19;
/// A value could not be serialised (not returned by the C functions). Counted in
/// `rejected_serialize`.
pub const AUDITBUF_SERIALIZE: auditbuf_status = 20;
/// The backing store is at its configured limit. Counted in `rejected_store_full`.
pub const AUDITBUF_STORE_FULL: auditbuf_status = 21;
/// The backing store failed (locked by another process, disk or database error). Counted
/// in `rejected_store_error` when it happens while recording.
pub const AUDITBUF_STORE: auditbuf_status = 22;
/// The configuration document is invalid; the message names the field.
pub const AUDITBUF_CONFIG: auditbuf_status = 30;
/// A file the configuration names could not be read or written.
pub const AUDITBUF_IO: auditbuf_status = 31;
/// The flush thread could not be started.
pub const AUDITBUF_SPAWN: auditbuf_status = 32;
/// A pointer argument that must not be NULL was NULL.
pub const AUDITBUF_NULL_PARAMETER: auditbuf_status = 100;
/// An argument is out of range: a length that cannot be, a span past its buffer, an
/// unknown version or presence bit, a struct `size` too small.
pub const AUDITBUF_INVALID_PARAMETER: auditbuf_status = 101;
/// The library panicked (a bug): the call did nothing further. The message says where.
pub const AUDITBUF_PANIC: auditbuf_status = 102;

/// The C name of a status.
pub(crate) fn name_of(status: auditbuf_status) -> &'static CStr {
    match status {
        AUDITBUF_OK => c"AUDITBUF_OK",
        AUDITBUF_NOT_DURABLE => c"AUDITBUF_NOT_DURABLE",
        AUDITBUF_FULL => c"AUDITBUF_FULL",
        AUDITBUF_TIMEOUT => c"AUDITBUF_TIMEOUT",
        AUDITBUF_CLOSED => c"AUDITBUF_CLOSED",
        AUDITBUF_FORKED => c"AUDITBUF_FORKED",
        AUDITBUF_INVALID_UTF8 => c"AUDITBUF_INVALID_UTF8",
        AUDITBUF_INVALID_JSON => c"AUDITBUF_INVALID_JSON",
        AUDITBUF_NOT_AN_OBJECT => c"AUDITBUF_NOT_AN_OBJECT",
        AUDITBUF_TOO_LARGE => c"AUDITBUF_TOO_LARGE",
        AUDITBUF_MISSING_FIELD => c"AUDITBUF_MISSING_FIELD",
        AUDITBUF_INVALID_FIELD => c"AUDITBUF_INVALID_FIELD",
        AUDITBUF_SERIALIZE => c"AUDITBUF_SERIALIZE",
        AUDITBUF_STORE_FULL => c"AUDITBUF_STORE_FULL",
        AUDITBUF_STORE => c"AUDITBUF_STORE",
        AUDITBUF_CONFIG => c"AUDITBUF_CONFIG",
        AUDITBUF_IO => c"AUDITBUF_IO",
        AUDITBUF_SPAWN => c"AUDITBUF_SPAWN",
        AUDITBUF_NULL_PARAMETER => c"AUDITBUF_NULL_PARAMETER",
        AUDITBUF_INVALID_PARAMETER => c"AUDITBUF_INVALID_PARAMETER",
        AUDITBUF_PANIC => c"AUDITBUF_PANIC",
        _ => c"AUDITBUF_UNKNOWN",
    }
}

/// The name of `status` as a static, NUL-terminated string, e.g. `"AUDITBUF_FULL"`;
/// `"AUDITBUF_UNKNOWN"` for a value this library does not define. Never NULL; the caller
/// must not free it. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn auditbuf_status_name(status: auditbuf_status) -> *const c_char {
    name_of(status).as_ptr()
}

/// The library's version, e.g. `"0.1.0"`, as a static, NUL-terminated string. Never NULL;
/// the caller must not free it. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn auditbuf_version() -> *const c_char {
    const VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
    VERSION.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditbuf::Error;

    #[test]
    fn names_follow_the_core_table() {
        for code in 0..1000 {
            let name = name_of(code).to_str().unwrap();
            match Error::code_name(code) {
                Some(core) => {
                    assert_eq!(name, format!("AUDITBUF_{}", core.to_uppercase()), "{code}")
                }
                None if (100..=102).contains(&code) => assert_ne!(name, "AUDITBUF_UNKNOWN"),
                None => assert_eq!(name, "AUDITBUF_UNKNOWN", "{code} has no core name"),
            }
        }
        assert_eq!(Error::Full.code(), AUDITBUF_FULL);
        assert_eq!(Error::Closed.code(), AUDITBUF_CLOSED);
        assert_eq!(Error::NotAnObject.code(), AUDITBUF_NOT_AN_OBJECT);
    }

    #[test]
    fn version_is_the_crate_version() {
        // Safety: a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(auditbuf_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
