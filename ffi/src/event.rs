//! `auditbuf_event`: a typed event as a struct of string views, and `auditbuf_record_event`.

use auditbuf::AuditEventBytes;

use crate::args;
use crate::error::{fail, status};
use crate::panic::guard;
use crate::pipeline::{auditbuf_pipeline, handle};
use crate::status::{AUDITBUF_INVALID_PARAMETER, auditbuf_status};

/// A view of bytes the caller owns: `len` bytes at `ptr`, no NUL terminator needed.
/// In an `auditbuf_event`, `ptr == NULL` (with `len == 0`) means the field is absent.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct auditbuf_bytes {
    /// The first byte; NULL for an absent field.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

/// A typed audit event with the DataStorage field names (the JSON keys on the wire are the
/// same, except `namespace_`, sent as `"namespace"`). Every string is a view the caller
/// owns, valid UTF-8, read only during the call. Zero-initialise it (`= {0}`) and set
/// what you have: an absent field is a NULL `ptr`.
///
/// Required: `event_type`, `event_category`, `event_action`, `event_outcome`,
/// `correlation_id` (absent or empty is `AUDITBUF_MISSING_FIELD`). `version` defaults to
/// `"1.0"`, `event_timestamp` to the time of the call (RFC 3339, UTC, milliseconds).
/// `event_data` is the JSON text of an object; its `event_type` is added when missing and
/// must equal the event's otherwise (`AUDITBUF_INVALID_FIELD`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct auditbuf_event {
    /// Schema version; absent sends `"1.0"`.
    pub version: auditbuf_bytes,
    /// Event type, e.g. `gateway.signal.received`. Required.
    pub event_type: auditbuf_bytes,
    /// When it happened, RFC 3339; absent sends the time of the call.
    pub event_timestamp: auditbuf_bytes,
    /// Business domain, e.g. `gateway`. Required.
    pub event_category: auditbuf_bytes,
    /// Action performed, e.g. `received`. Required.
    pub event_action: auditbuf_bytes,
    /// `success`, `failure` or `pending`. Required.
    pub event_outcome: auditbuf_bytes,
    /// Request correlation id. Required.
    pub correlation_id: auditbuf_bytes,
    /// Kind of actor, e.g. `service`.
    pub actor_type: auditbuf_bytes,
    /// Actor identity.
    pub actor_id: auditbuf_bytes,
    /// Client IP address.
    pub actor_ip: auditbuf_bytes,
    /// Kind of resource acted on.
    pub resource_type: auditbuf_bytes,
    /// Resource identity.
    pub resource_id: auditbuf_bytes,
    /// Parent event UUID.
    pub parent_event_id: auditbuf_bytes,
    /// Parent event timestamp.
    pub parent_event_date: auditbuf_bytes,
    /// Kubernetes namespace (wire name `namespace`; renamed so C++ can include this header).
    pub namespace_: auditbuf_bytes,
    /// Cluster identifier.
    pub cluster_id: auditbuf_bytes,
    /// Severity as the source reported it.
    pub severity: auditbuf_bytes,
    /// Error code of a failed operation.
    pub error_code: auditbuf_bytes,
    /// Error message of a failed operation.
    pub error_message: auditbuf_bytes,
    /// Service-specific payload: the JSON text of an object.
    pub event_data: auditbuf_bytes,
    /// Duration of the audited operation in milliseconds, at most `INT64_MAX`; sent if
    /// `has_duration_ms`.
    pub duration_ms: u64,
    /// Retention override in days; sent if `has_retention_days`.
    pub retention_days: u32,
    /// Non-zero: `duration_ms` is present.
    pub has_duration_ms: u8,
    /// Non-zero: `retention_days` is present.
    pub has_retention_days: u8,
    /// Non-zero: `is_sensitive` is present.
    pub has_is_sensitive: u8,
    /// Non-zero for true; sent if `has_is_sensitive`.
    pub is_sensitive: u8,
}

/// Records a typed event: validated (UTF-8 of every field, `event_data` JSON, size) and
/// encoded on the calling thread into a pooled buffer, without allocating.
///
/// Returns `AUDITBUF_OK` (or the `AUDITBUF_NOT_DURABLE` warning) when the event was
/// accepted; otherwise nothing was taken and the status says why: `AUDITBUF_FULL`,
/// `AUDITBUF_TIMEOUT`, `AUDITBUF_CLOSED`, `AUDITBUF_MISSING_FIELD`,
/// `AUDITBUF_INVALID_FIELD` (a field is not UTF-8; the message names it),
/// `AUDITBUF_INVALID_JSON` (`event_data`), `AUDITBUF_TOO_LARGE`, `AUDITBUF_NULL_PARAMETER`,
/// `AUDITBUF_INVALID_PARAMETER` (a NULL `ptr` with a non-zero `len`). Rejections are
/// counted in `auditbuf_stats`. The caller keeps ownership of `ev` and every byte it
/// points to; nothing is kept after the call. Thread-safe: any number of threads may
/// record on one pipeline at once.
///
/// # Safety
/// `pipeline` must be NULL or a live handle from `auditbuf_pipeline_new*`; `ev` must be
/// NULL or point to an `auditbuf_event` whose non-NULL views are readable for their
/// length.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn auditbuf_record_event(
    pipeline: *const auditbuf_pipeline,
    ev: *const auditbuf_event,
) -> auditbuf_status {
    guard(|| {
        let record = || -> Result<auditbuf_status, auditbuf_status> {
            // Safety: as this function's.
            let handle = unsafe { handle(pipeline) }?;
            // Safety: as this function's.
            let ev = unsafe { args::reference(ev, "ev") }?;
            // Safety: the views are readable (this function's contract).
            let event = unsafe { to_event(ev) }?;
            Ok(status(handle.pipeline.record_event_bytes(&event)))
        };
        record().unwrap_or_else(|s| s)
    })
}

/// The core's view of `ev`. The views are checked in one pass first (a NULL `ptr` with a
/// length, a length that cannot be), so building the event cannot fail.
///
/// # Safety
/// Every non-NULL view in `ev` must be readable for its length, for `'a`.
unsafe fn to_event<'a>(ev: &'a auditbuf_event) -> Result<AuditEventBytes<'a>, auditbuf_status> {
    let views = [
        &ev.version,
        &ev.event_type,
        &ev.event_timestamp,
        &ev.event_category,
        &ev.event_action,
        &ev.event_outcome,
        &ev.correlation_id,
        &ev.actor_type,
        &ev.actor_id,
        &ev.actor_ip,
        &ev.resource_type,
        &ev.resource_id,
        &ev.parent_event_id,
        &ev.parent_event_date,
        &ev.namespace_,
        &ev.cluster_id,
        &ev.severity,
        &ev.error_code,
        &ev.error_message,
        &ev.event_data,
    ];
    if views
        .iter()
        .any(|v| (v.ptr.is_null() && v.len != 0) || v.len > isize::MAX as usize)
    {
        return Err(bad_view(&views));
    }
    let opt = |b: &'a auditbuf_bytes| -> Option<&'a [u8]> {
        if b.ptr.is_null() {
            None
        } else {
            // Safety: non-NULL, readable for `len <= isize::MAX` bytes (checked above and
            // this function's contract).
            Some(unsafe { std::slice::from_raw_parts(b.ptr, b.len) })
        }
    };
    let req = |b: &'a auditbuf_bytes| opt(b).unwrap_or_default();
    Ok(AuditEventBytes {
        version: opt(&ev.version),
        event_type: req(&ev.event_type),
        event_timestamp: opt(&ev.event_timestamp),
        event_category: req(&ev.event_category),
        event_action: req(&ev.event_action),
        event_outcome: req(&ev.event_outcome),
        correlation_id: req(&ev.correlation_id),
        actor_type: opt(&ev.actor_type),
        actor_id: opt(&ev.actor_id),
        actor_ip: opt(&ev.actor_ip),
        resource_type: opt(&ev.resource_type),
        resource_id: opt(&ev.resource_id),
        parent_event_id: opt(&ev.parent_event_id),
        parent_event_date: opt(&ev.parent_event_date),
        namespace: opt(&ev.namespace_),
        cluster_id: opt(&ev.cluster_id),
        severity: opt(&ev.severity),
        duration_ms: present(ev.has_duration_ms, ev.duration_ms),
        error_code: opt(&ev.error_code),
        error_message: opt(&ev.error_message),
        retention_days: present(ev.has_retention_days, ev.retention_days),
        is_sensitive: present(ev.has_is_sensitive, ev.is_sensitive != 0),
        event_data: opt(&ev.event_data),
    })
}

/// The status and message for the first bad view, naming its field.
#[cold]
fn bad_view(views: &[&auditbuf_bytes; 20]) -> auditbuf_status {
    const NAMES: [&str; 20] = [
        "version",
        "event_type",
        "event_timestamp",
        "event_category",
        "event_action",
        "event_outcome",
        "correlation_id",
        "actor_type",
        "actor_id",
        "actor_ip",
        "resource_type",
        "resource_id",
        "parent_event_id",
        "parent_event_date",
        "namespace_",
        "cluster_id",
        "severity",
        "error_code",
        "error_message",
        "event_data",
    ];
    for (view, name) in views.iter().zip(NAMES) {
        if view.ptr.is_null() && view.len != 0 {
            return fail(
                AUDITBUF_INVALID_PARAMETER,
                format_args!(
                    "{name}: ptr is NULL but len is {} (NULL means absent, len 0)",
                    view.len
                ),
            );
        }
        if view.len > isize::MAX as usize {
            return fail(
                AUDITBUF_INVALID_PARAMETER,
                format_args!("{name}: length {} cannot be in memory", view.len),
            );
        }
    }
    AUDITBUF_INVALID_PARAMETER
}

/// `Some(value)` when the presence flag is set.
fn present<T>(has: u8, value: T) -> Option<T> {
    (has != 0).then_some(value)
}
