//! The typed audit event with byte-slice fields, for callers whose strings are not known to
//! be UTF-8 (C, Go, Python bindings): the same fields and rules as
//! [`AuditEvent`](crate::AuditEvent), each field checked for UTF-8 as it is encoded.

use super::capture::capture_or_encode;
use super::event_data::Data;
use super::fields::fields_of;
use super::rules::EventRules;
use crate::Error;

/// An [`AuditEvent`](crate::AuditEvent) whose strings are byte slices, not yet known to be UTF-8: what the C
/// ABI, Go and Python hand over. Every field must be valid UTF-8; one that is not is an
/// [`Error::InvalidField`] naming it.
///
/// ```
/// use auditbuf::{AuditEventBytes, Config, NullSink, Pipeline, Error};
///
/// let pipeline = Pipeline::new(Config::default(), NullSink)?;
/// let event = AuditEventBytes {
///     actor_id: Some(b"gateway"),
///     event_data: Some(br#"{"signal_name":"OOMKilled"}"#),
///     ..AuditEventBytes::new(b"gateway.signal.received", b"gateway", b"received", b"success", b"rr-1")
/// };
/// pipeline.record_event_bytes(&event)?;
/// let bad = AuditEventBytes { actor_id: Some(b"\xff"), ..event };
/// assert!(matches!(
///     pipeline.record_event_bytes(&bad),
///     Err(Error::InvalidField { field: "actor_id", .. })
/// ));
/// # Ok::<(), auditbuf::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditEventBytes<'a> {
    /// See [`AuditEvent::version`](crate::AuditEvent::version).
    pub version: Option<&'a [u8]>,
    /// See [`AuditEvent::event_type`](crate::AuditEvent::event_type). Required.
    pub event_type: &'a [u8],
    /// See [`AuditEvent::event_timestamp`](crate::AuditEvent::event_timestamp).
    pub event_timestamp: Option<&'a [u8]>,
    /// See [`AuditEvent::event_category`](crate::AuditEvent::event_category). Required.
    pub event_category: &'a [u8],
    /// See [`AuditEvent::event_action`](crate::AuditEvent::event_action). Required.
    pub event_action: &'a [u8],
    /// See [`AuditEvent::event_outcome`](crate::AuditEvent::event_outcome). Required.
    pub event_outcome: &'a [u8],
    /// See [`AuditEvent::correlation_id`](crate::AuditEvent::correlation_id). Required.
    pub correlation_id: &'a [u8],
    /// See [`AuditEvent::actor_type`](crate::AuditEvent::actor_type).
    pub actor_type: Option<&'a [u8]>,
    /// See [`AuditEvent::actor_id`](crate::AuditEvent::actor_id).
    pub actor_id: Option<&'a [u8]>,
    /// See [`AuditEvent::actor_ip`](crate::AuditEvent::actor_ip).
    pub actor_ip: Option<&'a [u8]>,
    /// See [`AuditEvent::resource_type`](crate::AuditEvent::resource_type).
    pub resource_type: Option<&'a [u8]>,
    /// See [`AuditEvent::resource_id`](crate::AuditEvent::resource_id).
    pub resource_id: Option<&'a [u8]>,
    /// See [`AuditEvent::parent_event_id`](crate::AuditEvent::parent_event_id).
    pub parent_event_id: Option<&'a [u8]>,
    /// See [`AuditEvent::parent_event_date`](crate::AuditEvent::parent_event_date).
    pub parent_event_date: Option<&'a [u8]>,
    /// See [`AuditEvent::namespace`](crate::AuditEvent::namespace).
    pub namespace: Option<&'a [u8]>,
    /// See [`AuditEvent::cluster_id`](crate::AuditEvent::cluster_id).
    pub cluster_id: Option<&'a [u8]>,
    /// See [`AuditEvent::severity`](crate::AuditEvent::severity).
    pub severity: Option<&'a [u8]>,
    /// See [`AuditEvent::duration_ms`](crate::AuditEvent::duration_ms).
    pub duration_ms: Option<u64>,
    /// See [`AuditEvent::error_code`](crate::AuditEvent::error_code).
    pub error_code: Option<&'a [u8]>,
    /// See [`AuditEvent::error_message`](crate::AuditEvent::error_message).
    pub error_message: Option<&'a [u8]>,
    /// See [`AuditEvent::retention_days`](crate::AuditEvent::retention_days).
    pub retention_days: Option<u32>,
    /// See [`AuditEvent::is_sensitive`](crate::AuditEvent::is_sensitive).
    pub is_sensitive: Option<bool>,
    /// The JSON text of `event_data` (an object); `None` for an empty payload.
    pub event_data: Option<&'a [u8]>,
}

impl AuditEventBytes<'_> {
    /// The fields of a typed event by number: the 20 strings in wire order (`event_data`,
    /// JSON text, last), then `duration_ms`, `retention_days` and `is_sensitive`. The C
    /// ABI's flat event and the captured form of a typed event number them so.
    ///
    /// ```
    /// assert_eq!(auditbuf::AuditEventBytes::FIELDS[19], "event_data");
    /// ```
    pub const FIELDS: [&'static str; 23] = [
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
        "namespace",
        "cluster_id",
        "severity",
        "error_code",
        "error_message",
        "event_data",
        "duration_ms",
        "retention_days",
        "is_sensitive",
    ];
}

impl<'a> AuditEventBytes<'a> {
    /// An event with the five required fields set and everything else absent.
    pub fn new(
        event_type: &'a [u8],
        event_category: &'a [u8],
        event_action: &'a [u8],
        event_outcome: &'a [u8],
        correlation_id: &'a [u8],
    ) -> Self {
        AuditEventBytes {
            event_type,
            event_category,
            event_action,
            event_outcome,
            correlation_id,
            ..AuditEventBytes::default()
        }
    }
}

/// Captures `ev` for the flush thread to render (see [`capture`](super::capture)), or
/// encodes it at once when it cannot be captured; every field is checked for UTF-8.
#[inline]
pub(crate) fn capture_event_bytes(
    ev: &AuditEventBytes<'_>,
    rules: &EventRules,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), Error> {
    fields_of!(
        f = ev,
        std::convert::identity::<&[u8]>,
        ev.event_data.map_or(Data::Empty, Data::Json)
    );
    capture_or_encode::<true>(&f, rules, out, limit)
}

/// [`Fields`] of `ev` (for tests: `record` fills them in place).
#[cfg(test)]
pub(crate) fn fields<'a>(ev: &AuditEventBytes<'a>) -> super::fields::Fields<'a> {
    fields_of!(
        f = ev,
        std::convert::identity::<&'a [u8]>,
        ev.event_data.map_or(Data::Empty, Data::Json)
    );
    f
}
