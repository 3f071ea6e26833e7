//! The flat typed event: integers and one byte buffer, no pointers inside, so cgo can pass
//! Go memory and a hot path can capture an event with two copies.

use auditbuf::AuditEventBytes;

use crate::args;
use crate::error::{at_index, fail, status};
use crate::panic::guard;
use crate::pipeline::{auditbuf_pipeline, handle};
use crate::status::{AUDITBUF_INVALID_PARAMETER, AUDITBUF_OK, auditbuf_status};

/// The version of `auditbuf_flat_event` this header describes; set `version` to it.
pub const AUDITBUF_FLAT_VERSION: u32 = 1;
/// Number of string fields, the length of `auditbuf_flat_event.spans`.
pub const AUDITBUF_FLAT_STRINGS: usize = 20;

/// Field index of `version` (a string: index into `spans`, bit in `present`).
pub const AUDITBUF_FIELD_VERSION: u32 = 0;
/// Field index of `event_type` (string, required).
pub const AUDITBUF_FIELD_EVENT_TYPE: u32 = 1;
/// Field index of `event_timestamp` (string).
pub const AUDITBUF_FIELD_EVENT_TIMESTAMP: u32 = 2;
/// Field index of `event_category` (string, required).
pub const AUDITBUF_FIELD_EVENT_CATEGORY: u32 = 3;
/// Field index of `event_action` (string, required).
pub const AUDITBUF_FIELD_EVENT_ACTION: u32 = 4;
/// Field index of `event_outcome` (string, required).
pub const AUDITBUF_FIELD_EVENT_OUTCOME: u32 = 5;
/// Field index of `correlation_id` (string, required).
pub const AUDITBUF_FIELD_CORRELATION_ID: u32 = 6;
/// Field index of `actor_type` (string).
pub const AUDITBUF_FIELD_ACTOR_TYPE: u32 = 7;
/// Field index of `actor_id` (string).
pub const AUDITBUF_FIELD_ACTOR_ID: u32 = 8;
/// Field index of `actor_ip` (string).
pub const AUDITBUF_FIELD_ACTOR_IP: u32 = 9;
/// Field index of `resource_type` (string).
pub const AUDITBUF_FIELD_RESOURCE_TYPE: u32 = 10;
/// Field index of `resource_id` (string).
pub const AUDITBUF_FIELD_RESOURCE_ID: u32 = 11;
/// Field index of `parent_event_id` (string).
pub const AUDITBUF_FIELD_PARENT_EVENT_ID: u32 = 12;
/// Field index of `parent_event_date` (string).
pub const AUDITBUF_FIELD_PARENT_EVENT_DATE: u32 = 13;
/// Field index of `namespace` (string).
pub const AUDITBUF_FIELD_NAMESPACE: u32 = 14;
/// Field index of `cluster_id` (string).
pub const AUDITBUF_FIELD_CLUSTER_ID: u32 = 15;
/// Field index of `severity` (string).
pub const AUDITBUF_FIELD_SEVERITY: u32 = 16;
/// Field index of `error_code` (string).
pub const AUDITBUF_FIELD_ERROR_CODE: u32 = 17;
/// Field index of `error_message` (string).
pub const AUDITBUF_FIELD_ERROR_MESSAGE: u32 = 18;
/// Field index of `event_data` (string: the JSON text of an object).
pub const AUDITBUF_FIELD_EVENT_DATA: u32 = 19;
/// Field index of `duration_ms` (a bit in `present`; the value in `duration_ms`).
pub const AUDITBUF_FIELD_DURATION_MS: u32 = 20;
/// Field index of `retention_days` (a bit in `present`; the value in `retention_days`).
pub const AUDITBUF_FIELD_RETENTION_DAYS: u32 = 21;
/// Field index of `is_sensitive` (a bit in `present`; the value in `is_sensitive`).
pub const AUDITBUF_FIELD_IS_SENSITIVE: u32 = 22;

/// Field names by index, for messages.
const NAMES: [&str; 23] = auditbuf::AuditEventBytes::FIELDS;

/// `len` bytes at `offset` in the buffer passed with a flat event.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct auditbuf_span {
    /// Byte offset into the buffer.
    pub offset: u32,
    /// Number of bytes.
    pub len: u32,
}

impl auditbuf_span {
    /// Its bytes in `buf`; `None` if it ends past `buf` (or past the address space, on a
    /// 32-bit target).
    pub(crate) fn of(self, buf: &[u8]) -> Option<&[u8]> {
        let start = self.offset as usize;
        buf.get(start..start.checked_add(self.len as usize)?)
    }
}

/// A typed event (the fields of `auditbuf_event`) in flat form: integers only, its strings
/// in one byte buffer passed beside it. Made for callers that cannot hand over structs of
/// pointers (cgo: Go memory passed to C must not contain Go pointers) and as the compact
/// record a caller captures.
///
/// Format version 1 (`AUDITBUF_FLAT_VERSION`), fixed for good:
/// - field `i` is present when bit `i` of `present` is set (`1u << AUDITBUF_FIELD_*`);
///   bits 23–31 must be clear;
/// - string fields are `AUDITBUF_FIELD_VERSION` (0) … `AUDITBUF_FIELD_EVENT_DATA` (19):
///   `spans[i]` gives their bytes in the buffer (UTF-8, no NUL needed; spans may overlap
///   or repeat); the spans of absent fields are ignored;
/// - `duration_ms` (20), `retention_days` (21) and `is_sensitive` (22, non-zero = true)
///   hold their values in the fields of the same name.
///
/// A later version may append fields; this one keeps its layout and meaning.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct auditbuf_flat_event {
    /// `AUDITBUF_FLAT_VERSION`.
    pub version: u32,
    /// Bit `i` set: field `i` (`AUDITBUF_FIELD_*`) is present.
    pub present: u32,
    /// Duration in milliseconds (at most `INT64_MAX`), if bit `AUDITBUF_FIELD_DURATION_MS`
    /// is set.
    pub duration_ms: u64,
    /// Retention in days, if bit `AUDITBUF_FIELD_RETENTION_DAYS` is set.
    pub retention_days: u32,
    /// Non-zero for true, if bit `AUDITBUF_FIELD_IS_SENSITIVE` is set.
    pub is_sensitive: u32,
    /// Where each string field's bytes are in the buffer, by field index.
    pub spans: [auditbuf_span; AUDITBUF_FLAT_STRINGS],
}

/// Records a flat typed event whose strings are in `buf` (`buf_len` bytes): the same
/// rules, statuses and counting as `auditbuf_record_event`, plus
/// `AUDITBUF_INVALID_PARAMETER` for an unknown `version`, a presence bit past 22, or a
/// span of a present field that ends past `buf_len` (the message names the field).
/// `buf` may be NULL when `buf_len` is 0. The caller keeps ownership of `ev` and `buf`;
/// nothing is kept after the call. Thread-safe.
///
/// # Safety
/// `pipeline` must be NULL or a live handle; `ev` NULL or a readable
/// `auditbuf_flat_event`; `buf` NULL or readable for `buf_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn auditbuf_record_flat(
    pipeline: *const auditbuf_pipeline,
    ev: *const auditbuf_flat_event,
    buf: *const u8,
    buf_len: usize,
) -> auditbuf_status {
    guard(|| {
        let record = || -> Result<auditbuf_status, auditbuf_status> {
            // Safety: as this function's.
            let handle = unsafe { handle(pipeline) }?;
            // Safety: as this function's.
            let ev = unsafe { args::reference(ev, "ev") }?;
            // Safety: as this function's.
            let buf = unsafe { args::buffer(buf, buf_len) }?;
            let event = to_event(ev, buf, None)?;
            Ok(status(handle.pipeline.record_event_bytes(&event)))
        };
        record().unwrap_or_else(|s| s)
    })
}

/// Records `n` flat events whose strings are all in the one buffer `buf`, in order,
/// stopping at the first one not accepted: `*taken` is set to the number accepted
/// (events `0 .. *taken`), and the status is that of event `*taken` (its message names
/// the index), or `AUDITBUF_OK` when all were taken (`AUDITBUF_NOT_DURABLE` if any was
/// only that). One call costs about one `auditbuf_record_flat` per event, without the
/// per-call overhead of cgo or Python. `events` may be NULL when `n` is 0. The caller keeps
/// ownership of everything. Thread-safe.
///
/// # Safety
/// `pipeline` must be NULL or a live handle; `events` NULL or readable for `n` events;
/// `buf` NULL or readable for `buf_len` bytes; `taken` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn auditbuf_record_flat_batch(
    pipeline: *const auditbuf_pipeline,
    events: *const auditbuf_flat_event,
    n: usize,
    buf: *const u8,
    buf_len: usize,
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
            let events = unsafe { args::array(events, n, "events") }?;
            // Safety: as this function's.
            let buf = unsafe { args::buffer(buf, buf_len) }?;
            let mut result = AUDITBUF_OK;
            for (i, ev) in events.iter().enumerate() {
                let event = to_event(ev, buf, Some(i))?;
                match status(handle.pipeline.record_event_bytes(&event)) {
                    AUDITBUF_OK => {}
                    crate::AUDITBUF_NOT_DURABLE => result = crate::AUDITBUF_NOT_DURABLE,
                    error => return Err(at_index(error, i)),
                }
                *taken = i + 1;
            }
            Ok(result)
        };
        record().unwrap_or_else(|s| s)
    })
}

/// The core's view of a flat event. Inlined: returned from a call, the 23-field view was
/// copied out whole, and the record path after it stayed out of line.
#[inline(always)]
fn to_event<'a>(
    ev: &auditbuf_flat_event,
    buf: &'a [u8],
    index: Option<usize>,
) -> Result<AuditEventBytes<'a>, auditbuf_status> {
    let at = |what: &str| match index {
        Some(i) => format!("events[{i}].{what}"),
        None => what.to_owned(),
    };
    if ev.version != AUDITBUF_FLAT_VERSION {
        return Err(fail(
            AUDITBUF_INVALID_PARAMETER,
            format_args!(
                "{}: {} is not a flat event version this library reads ({AUDITBUF_FLAT_VERSION})",
                at("version"),
                ev.version
            ),
        ));
    }
    if ev.present >> NAMES.len() != 0 {
        return Err(fail(
            AUDITBUF_INVALID_PARAMETER,
            format_args!(
                "{}: bits above {} are set ({:#x})",
                at("present"),
                NAMES.len() - 1,
                ev.present
            ),
        ));
    }
    let has = |field: u32| ev.present & (1 << field) != 0;
    let mut strings: [Option<&[u8]>; AUDITBUF_FLAT_STRINGS] = [None; AUDITBUF_FLAT_STRINGS];
    for (i, (slot, span)) in strings.iter_mut().zip(&ev.spans).enumerate() {
        if has(i as u32) {
            *slot = span.of(buf);
            if slot.is_none() {
                return Err(span_past_buffer(ev, buf.len(), index));
            }
        }
    }
    let s = |field: u32| strings[field as usize];
    let req = |field: u32| s(field).unwrap_or_default();
    Ok(AuditEventBytes {
        version: s(AUDITBUF_FIELD_VERSION),
        event_type: req(AUDITBUF_FIELD_EVENT_TYPE),
        event_timestamp: s(AUDITBUF_FIELD_EVENT_TIMESTAMP),
        event_category: req(AUDITBUF_FIELD_EVENT_CATEGORY),
        event_action: req(AUDITBUF_FIELD_EVENT_ACTION),
        event_outcome: req(AUDITBUF_FIELD_EVENT_OUTCOME),
        correlation_id: req(AUDITBUF_FIELD_CORRELATION_ID),
        actor_type: s(AUDITBUF_FIELD_ACTOR_TYPE),
        actor_id: s(AUDITBUF_FIELD_ACTOR_ID),
        actor_ip: s(AUDITBUF_FIELD_ACTOR_IP),
        resource_type: s(AUDITBUF_FIELD_RESOURCE_TYPE),
        resource_id: s(AUDITBUF_FIELD_RESOURCE_ID),
        parent_event_id: s(AUDITBUF_FIELD_PARENT_EVENT_ID),
        parent_event_date: s(AUDITBUF_FIELD_PARENT_EVENT_DATE),
        namespace: s(AUDITBUF_FIELD_NAMESPACE),
        cluster_id: s(AUDITBUF_FIELD_CLUSTER_ID),
        severity: s(AUDITBUF_FIELD_SEVERITY),
        duration_ms: has(AUDITBUF_FIELD_DURATION_MS).then_some(ev.duration_ms),
        error_code: s(AUDITBUF_FIELD_ERROR_CODE),
        error_message: s(AUDITBUF_FIELD_ERROR_MESSAGE),
        retention_days: has(AUDITBUF_FIELD_RETENTION_DAYS).then_some(ev.retention_days),
        is_sensitive: has(AUDITBUF_FIELD_IS_SENSITIVE).then_some(ev.is_sensitive != 0),
        event_data: s(AUDITBUF_FIELD_EVENT_DATA),
    })
}

/// The status and message for the first span past the buffer, naming its field.
#[cold]
fn span_past_buffer(ev: &auditbuf_flat_event, len: usize, index: Option<usize>) -> auditbuf_status {
    let at = index.map_or(String::new(), |i| format!("events[{i}]."));
    for (i, span) in ev.spans.iter().enumerate() {
        let end = u64::from(span.offset) + u64::from(span.len);
        if ev.present & (1 << i) != 0 && end > len as u64 {
            return fail(
                AUDITBUF_INVALID_PARAMETER,
                format_args!(
                    "{at}spans[{i}] ({}): {{offset {}, len {}}} ends past the buffer of {len} bytes",
                    NAMES[i], span.offset, span.len
                ),
            );
        }
    }
    AUDITBUF_INVALID_PARAMETER
}
