//! A typed event's fields as the encoder takes them: byte slices, whether they came from an
//! [`AuditEvent`]'s `&str` (known to be UTF-8) or from C, Go or Python (checked as written).

use super::event::AuditEvent;
use super::event_data::{Data, EventData};

/// The fields of a typed event as bytes: an [`AuditEvent`]'s, known to be UTF-8, or an
/// [`AuditEventBytes`](crate::AuditEventBytes)'s, checked as they are written.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a> {
    pub(crate) version: Option<&'a [u8]>,
    pub(crate) event_type: &'a [u8],
    pub(crate) event_timestamp: Option<&'a [u8]>,
    pub(crate) event_category: &'a [u8],
    pub(crate) event_action: &'a [u8],
    pub(crate) event_outcome: &'a [u8],
    pub(crate) correlation_id: &'a [u8],
    pub(crate) actor_type: Option<&'a [u8]>,
    pub(crate) actor_id: Option<&'a [u8]>,
    pub(crate) actor_ip: Option<&'a [u8]>,
    pub(crate) resource_type: Option<&'a [u8]>,
    pub(crate) resource_id: Option<&'a [u8]>,
    pub(crate) parent_event_id: Option<&'a [u8]>,
    pub(crate) parent_event_date: Option<&'a [u8]>,
    pub(crate) namespace: Option<&'a [u8]>,
    pub(crate) cluster_id: Option<&'a [u8]>,
    pub(crate) severity: Option<&'a [u8]>,
    pub(crate) duration_ms: Option<u64>,
    pub(crate) error_code: Option<&'a [u8]>,
    pub(crate) error_message: Option<&'a [u8]>,
    pub(crate) retention_days: Option<u32>,
    pub(crate) is_sensitive: Option<bool>,
    pub(crate) event_data: Data<'a>,
}

impl<'a> From<&AuditEvent<'a>> for Fields<'a> {
    #[inline]
    fn from(ev: &AuditEvent<'a>) -> Self {
        let opt = |s: Option<&'a str>| s.map(str::as_bytes);
        Fields {
            version: opt(ev.version),
            event_type: ev.event_type.as_bytes(),
            event_timestamp: opt(ev.event_timestamp),
            event_category: ev.event_category.as_bytes(),
            event_action: ev.event_action.as_bytes(),
            event_outcome: ev.event_outcome.as_bytes(),
            correlation_id: ev.correlation_id.as_bytes(),
            actor_type: opt(ev.actor_type),
            actor_id: opt(ev.actor_id),
            actor_ip: opt(ev.actor_ip),
            resource_type: opt(ev.resource_type),
            resource_id: opt(ev.resource_id),
            parent_event_id: opt(ev.parent_event_id),
            parent_event_date: opt(ev.parent_event_date),
            namespace: opt(ev.namespace),
            cluster_id: opt(ev.cluster_id),
            severity: opt(ev.severity),
            duration_ms: ev.duration_ms,
            error_code: opt(ev.error_code),
            error_message: opt(ev.error_message),
            retention_days: ev.retention_days,
            is_sensitive: ev.is_sensitive,
            event_data: match ev.event_data {
                EventData::Empty => Data::Empty,
                EventData::Json(text) => Data::Json(text.as_bytes()),
                EventData::Serialize(value) => Data::Serialize(value),
            },
        }
    }
}

/// Sum of the lengths the event will take at least, before escaping and punctuation.
#[inline]
pub(crate) fn raw_size(f: &Fields<'_>) -> usize {
    let opt = |v: Option<&[u8]>| v.map_or(0, <[u8]>::len);
    let data = match f.event_data {
        Data::Json(text) | Data::Scanned(text, _) => text.len(),
        Data::Empty | Data::Serialize(_) => 0,
    };
    f.event_type.len()
        + f.event_category.len()
        + f.event_action.len()
        + f.event_outcome.len()
        + f.correlation_id.len()
        + opt(f.version)
        + opt(f.event_timestamp)
        + opt(f.actor_type)
        + opt(f.actor_id)
        + opt(f.actor_ip)
        + opt(f.resource_type)
        + opt(f.resource_id)
        + opt(f.parent_event_id)
        + opt(f.parent_event_date)
        + opt(f.namespace)
        + opt(f.cluster_id)
        + opt(f.severity)
        + opt(f.error_code)
        + opt(f.error_message)
        + data
}
