//! The typed audit event in the DataStorage shape, borrowing every string, and its direct
//! encoder: keys are pre-escaped constants, values are escaped straight into the slot.

use super::escape::write_str_body;
use super::event_data::{Data, EventData, write_event_data};
use super::rules::{
    EventRules, MAX_ACTION, MAX_ACTOR_IP, MAX_CORRELATION_ID, MAX_EVENT_TYPE, MAX_VERSION,
    check_len, check_outcome, invalid, is_uuid, rfc3339_seconds, within,
};
use super::time;
use crate::Error;

/// One audit event with the DataStorage (`AuditEventRequest`) field names. Every string is
/// borrowed, so building one costs nothing; [`Pipeline::record`](crate::Pipeline::record)
/// encodes it straight into a pooled buffer.
///
/// Required fields are plain `&str` and must not be empty; `version` defaults to `"1.0"` and
/// `event_timestamp` to the current time (RFC 3339, UTC, milliseconds). `event_data` always
/// carries an `event_type` equal to the outer one: it is added when missing, and an event
/// whose `event_data.event_type` differs is rejected.
///
/// ```
/// use auditbuf::{AuditEvent, EventData};
///
/// let event = AuditEvent {
///     actor_type: Some("service"),
///     actor_id: Some("gateway"),
///     event_data: EventData::Json(r#"{"signal_name":"HighMemoryUsage"}"#),
///     ..AuditEvent::new("gateway.signal.received", "gateway", "received", "success", "rr-1")
/// };
/// assert_eq!(event.event_type, "gateway.signal.received");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditEvent<'a> {
    /// Schema version; `None` sends `"1.0"`.
    pub version: Option<&'a str>,
    /// Event type identifier, e.g. `gateway.signal.received`. Required.
    pub event_type: &'a str,
    /// When the event happened, RFC 3339; `None` sends the time of `record`.
    pub event_timestamp: Option<&'a str>,
    /// Business domain, e.g. `gateway`. Required.
    pub event_category: &'a str,
    /// Action performed, e.g. `received`. Required.
    pub event_action: &'a str,
    /// `success`, `failure` or `pending`. Required.
    pub event_outcome: &'a str,
    /// Request correlation id. Required.
    pub correlation_id: &'a str,
    /// Kind of actor, e.g. `service`.
    pub actor_type: Option<&'a str>,
    /// Actor identity.
    pub actor_id: Option<&'a str>,
    /// Client source IP address.
    pub actor_ip: Option<&'a str>,
    /// Kind of resource acted on.
    pub resource_type: Option<&'a str>,
    /// Resource identity.
    pub resource_id: Option<&'a str>,
    /// Parent event UUID.
    pub parent_event_id: Option<&'a str>,
    /// Parent event timestamp (required by DataStorage together with `parent_event_id`).
    pub parent_event_date: Option<&'a str>,
    /// Kubernetes namespace.
    pub namespace: Option<&'a str>,
    /// Cluster identifier.
    pub cluster_id: Option<&'a str>,
    /// Severity as the source reported it.
    pub severity: Option<&'a str>,
    /// Duration of the audited operation in milliseconds.
    pub duration_ms: Option<u64>,
    /// Error code of a failed operation.
    pub error_code: Option<&'a str>,
    /// Error message of a failed operation.
    pub error_message: Option<&'a str>,
    /// Retention override in days.
    pub retention_days: Option<u32>,
    /// Whether the event holds sensitive data.
    pub is_sensitive: Option<bool>,
    /// Service-specific payload; a JSON object.
    pub event_data: EventData<'a>,
}

impl<'a> AuditEvent<'a> {
    /// An event with the five required fields set and everything else absent.
    pub fn new(
        event_type: &'a str,
        event_category: &'a str,
        event_action: &'a str,
        event_outcome: &'a str,
        correlation_id: &'a str,
    ) -> Self {
        AuditEvent {
            event_type,
            event_category,
            event_action,
            event_outcome,
            correlation_id,
            ..AuditEvent::default()
        }
    }
}

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
    /// The strings come as bytes: check that they are UTF-8 while writing them.
    pub(crate) check_utf8: bool,
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
            check_utf8: false,
        }
    }
}

/// Encodes `ev` into `out` (empty on entry); fails without touching anything outside `out`.
#[inline]
pub(crate) fn encode_event(
    ev: &AuditEvent<'_>,
    rules: &EventRules,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), Error> {
    encode_fields(&Fields::from(ev), rules, out, limit)
}

/// Checks the fields against DataStorage's rules (see [`rules`](super::rules)).
fn check_fields(f: &Fields<'_>, rules: &EventRules) -> Result<(), Error> {
    for (field, value) in [
        ("event_type", f.event_type),
        ("event_category", f.event_category),
        ("event_action", f.event_action),
        ("event_outcome", f.event_outcome),
        ("correlation_id", f.correlation_id),
    ] {
        if value.is_empty() {
            return Err(Error::MissingField { field });
        }
    }
    if let Some(v) = f.version
        && (v.is_empty() || !within(v, MAX_VERSION))
    {
        return Err(invalid("version", "must be 1 to 20 characters"));
    }
    check_len(
        "event_type",
        f.event_type,
        MAX_EVENT_TYPE,
        "must be at most 100 characters",
    )?;
    if let Some(ts) = f.event_timestamp {
        rules.check_timestamp(ts)?;
    }
    rules.check_category(f.event_category)?;
    check_len(
        "event_action",
        f.event_action,
        MAX_ACTION,
        "must be at most 50 characters",
    )?;
    check_outcome(f.event_outcome)?;
    check_len(
        "correlation_id",
        f.correlation_id,
        MAX_CORRELATION_ID,
        "must be at most 255 characters",
    )?;
    if let Some(ip) = f.actor_ip {
        check_len(
            "actor_ip",
            ip,
            MAX_ACTOR_IP,
            "must be at most 45 characters",
        )?;
    }
    if let Some(id) = f.parent_event_id
        && !is_uuid(id)
    {
        return Err(invalid(
            "parent_event_id",
            "must be a UUID (8-4-4-4-12 hex digits)",
        ));
    }
    if let Some(date) = f.parent_event_date
        && rfc3339_seconds(date).is_none()
    {
        return Err(invalid(
            "parent_event_date",
            "must be an RFC 3339 date-time, e.g. 2026-11-23T10:15:30.123Z",
        ));
    }
    Ok(())
}

/// Encodes the checked fields into `out` (empty on entry).
pub(crate) fn encode_fields(
    f: &Fields<'_>,
    rules: &EventRules,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), Error> {
    check_fields(f, rules)?;
    let lower_bound = raw_size(f);
    if lower_bound > limit {
        return Err(Error::TooLarge {
            size: lower_bound,
            limit,
        });
    }
    let check = f.check_utf8;
    let put = |out: &mut Vec<u8>, field: &'static str, s: &[u8]| {
        write_str_body(out, s, check).map_err(|bad| invalid(field, bad.reason()))
    };

    // Keys carry the quotes around the string values that follow them.
    out.reserve(lower_bound + ENCODED_OVERHEAD);
    out.extend_from_slice(b"{\"version\":\"");
    put(out, "version", f.version.unwrap_or(b"1.0"))?;
    out.extend_from_slice(b"\",\"event_type\":");
    let event_type_at = out.len();
    out.push(b'"');
    put(out, "event_type", f.event_type)?;
    out.push(b'"');
    let event_type_token = event_type_at..out.len();
    out.extend_from_slice(b",\"event_timestamp\":\"");
    match f.event_timestamp {
        // Checked to be RFC 3339: plain ASCII, nothing to escape.
        Some(ts) => out.extend_from_slice(ts),
        None => out.extend_from_slice(&time::now()),
    }
    out.extend_from_slice(b"\",\"event_category\":\"");
    put(out, "event_category", f.event_category)?;
    out.extend_from_slice(b"\",\"event_action\":\"");
    put(out, "event_action", f.event_action)?;
    out.extend_from_slice(b"\",\"event_outcome\":\"");
    out.extend_from_slice(f.event_outcome);
    out.extend_from_slice(b"\",\"correlation_id\":\"");
    put(out, "correlation_id", f.correlation_id)?;
    out.push(b'"');

    let optional_strings = [
        (&b",\"actor_type\":\""[..], "actor_type", f.actor_type),
        (b",\"actor_id\":\"", "actor_id", f.actor_id),
        (b",\"actor_ip\":\"", "actor_ip", f.actor_ip),
        (b",\"resource_type\":\"", "resource_type", f.resource_type),
        (b",\"resource_id\":\"", "resource_id", f.resource_id),
        (
            b",\"parent_event_id\":\"",
            "parent_event_id",
            f.parent_event_id,
        ),
        (
            b",\"parent_event_date\":\"",
            "parent_event_date",
            f.parent_event_date,
        ),
        (b",\"namespace\":\"", "namespace", f.namespace),
        (b",\"cluster_id\":\"", "cluster_id", f.cluster_id),
        (b",\"severity\":\"", "severity", f.severity),
    ];
    for (key, field, value) in optional_strings {
        if let Some(v) = value {
            out.extend_from_slice(key);
            put(out, field, v)?;
            out.push(b'"');
        }
    }
    if let Some(ms) = f.duration_ms {
        out.extend_from_slice(b",\"duration_ms\":");
        out.extend_from_slice(itoa::Buffer::new().format(ms).as_bytes());
    }
    for (key, field, value) in [
        (&b",\"error_code\":\""[..], "error_code", f.error_code),
        (b",\"error_message\":\"", "error_message", f.error_message),
    ] {
        if let Some(v) = value {
            out.extend_from_slice(key);
            put(out, field, v)?;
            out.push(b'"');
        }
    }
    if let Some(days) = f.retention_days {
        out.extend_from_slice(b",\"retention_days\":");
        out.extend_from_slice(itoa::Buffer::new().format(days).as_bytes());
    }
    if let Some(sensitive) = f.is_sensitive {
        out.extend_from_slice(if sensitive {
            b",\"is_sensitive\":true"
        } else {
            b",\"is_sensitive\":false"
        });
    }
    out.extend_from_slice(b",\"event_data\":");
    write_event_data(f.event_data, out, event_type_token, limit)?;
    out.push(b'}');
    if out.len() > limit {
        return Err(Error::TooLarge {
            size: out.len(),
            limit,
        });
    }
    Ok(())
}

/// Sum of the lengths the event will take at least, before escaping and punctuation.
fn raw_size(f: &Fields<'_>) -> usize {
    let opt = |v: Option<&[u8]>| v.map_or(0, <[u8]>::len);
    let data = match f.event_data {
        Data::Json(text) => text.len(),
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

/// Keys, punctuation and a generated timestamp: what an event adds to its values.
const ENCODED_OVERHEAD: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(ev: &AuditEvent<'_>) -> Result<String, Error> {
        let mut out = Vec::new();
        encode_event(ev, &EventRules::default(), &mut out, 64 * 1024)?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn base() -> AuditEvent<'static> {
        AuditEvent {
            event_timestamp: Some("2026-11-23T10:00:00.000Z"),
            ..AuditEvent::new("a.b", "gateway", "received", "success", "rr-1")
        }
    }

    const HEAD: &str = r#"{"version":"1.0","event_type":"a.b","event_timestamp":"2026-11-23T10:00:00.000Z","event_category":"gateway","event_action":"received","event_outcome":"success","correlation_id":"rr-1""#;

    #[test]
    fn minimal_event_gets_an_event_data_with_its_type() {
        assert_eq!(
            encode(&base()).unwrap(),
            format!(r#"{HEAD},"event_data":{{"event_type":"a.b"}}}}"#)
        );
    }

    #[test]
    fn json_event_data_is_completed_or_checked() {
        let ev = AuditEvent {
            event_data: EventData::Json("{ \"k\": [1, 2]\n}"),
            ..base()
        };
        assert_eq!(
            encode(&ev).unwrap(),
            format!(r#"{HEAD},"event_data":{{"event_type":"a.b", "k": [1, 2] }}}}"#)
        );
        let ev = AuditEvent {
            event_data: EventData::Json(r#"{"event_type":"a.b","k":1}"#),
            ..base()
        };
        assert!(
            encode(&ev)
                .unwrap()
                .ends_with(r#""event_data":{"event_type":"a.b","k":1}}"#)
        );
        let ev = AuditEvent {
            event_data: EventData::Json(r#"{"event_type":"a\/b"}"#),
            ..base()
        };
        assert!(matches!(encode(&ev), Err(Error::InvalidField { .. })));
        let ev = AuditEvent {
            event_data: EventData::Json(r#"{"event_type":"\u0061.b"}"#),
            ..base()
        };
        assert!(
            encode(&ev).is_ok(),
            "an escaped but equal event_type is the same"
        );
        let ev = AuditEvent {
            event_data: EventData::Json(r#"{"event_type":"other"}"#),
            ..base()
        };
        assert!(matches!(
            encode(&ev),
            Err(Error::InvalidField {
                field: "event_data.event_type",
                ..
            })
        ));
        let ev = AuditEvent {
            event_data: EventData::Json("[1]"),
            ..base()
        };
        assert!(matches!(
            encode(&ev),
            Err(Error::InvalidField {
                field: "event_data",
                ..
            })
        ));
        let ev = AuditEvent {
            event_data: EventData::Json("{}"),
            ..base()
        };
        assert!(
            encode(&ev)
                .unwrap()
                .ends_with(r#""event_data":{"event_type":"a.b"}}"#)
        );
    }

    #[test]
    fn serialize_event_data_is_completed() {
        #[derive(serde::Serialize)]
        struct Payload<'a> {
            signal_name: &'a str,
            count: u32,
        }
        let p = Payload {
            signal_name: "x\"y",
            count: 3,
        };
        let ev = AuditEvent {
            event_data: EventData::Serialize(&p),
            ..base()
        };
        assert!(
            encode(&ev)
                .unwrap()
                .ends_with(r#""event_data":{"event_type":"a.b","signal_name":"x\"y","count":3}}"#)
        );
        let empty = serde_json::Map::new();
        let ev = AuditEvent {
            event_data: EventData::Serialize(&empty),
            ..base()
        };
        assert!(
            encode(&ev)
                .unwrap()
                .ends_with(r#""event_data":{"event_type":"a.b"}}"#)
        );
        let ev = AuditEvent {
            event_data: EventData::Serialize(&42),
            ..base()
        };
        assert!(matches!(
            encode(&ev),
            Err(Error::InvalidField {
                field: "event_data",
                ..
            })
        ));
    }

    #[test]
    fn optional_fields_in_a_fixed_order() {
        let ev = AuditEvent {
            actor_type: Some("service"),
            actor_id: Some("gw"),
            duration_ms: Some(12),
            retention_days: Some(30),
            is_sensitive: Some(false),
            error_message: Some("line\nbreak"),
            ..base()
        };
        assert_eq!(
            encode(&ev).unwrap(),
            format!(
                r#"{HEAD},"actor_type":"service","actor_id":"gw","duration_ms":12,"error_message":"line\nbreak","retention_days":30,"is_sensitive":false,"event_data":{{"event_type":"a.b"}}}}"#
            )
        );
    }

    #[test]
    fn output_is_what_serde_json_reads_back() {
        let ev = AuditEvent {
            namespace: Some("ü \u{1} \"q\""),
            ..base()
        };
        let v: serde_json::Value = serde_json::from_str(&encode(&ev).unwrap()).unwrap();
        assert_eq!(v["namespace"], "ü \u{1} \"q\"");
        assert_eq!(v["event_data"]["event_type"], "a.b");
    }

    #[test]
    fn empty_required_fields_are_named() {
        for (ev, field) in [
            (
                AuditEvent {
                    event_type: "",
                    ..base()
                },
                "event_type",
            ),
            (
                AuditEvent {
                    event_category: "",
                    ..base()
                },
                "event_category",
            ),
            (
                AuditEvent {
                    event_action: "",
                    ..base()
                },
                "event_action",
            ),
            (
                AuditEvent {
                    event_outcome: "",
                    ..base()
                },
                "event_outcome",
            ),
            (
                AuditEvent {
                    correlation_id: "",
                    ..base()
                },
                "correlation_id",
            ),
        ] {
            match encode(&ev) {
                Err(Error::MissingField { field: f }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn size_limit_is_enforced_before_and_after_escaping() {
        let big = "x".repeat(100);
        let ev = AuditEvent {
            error_message: Some(&big),
            ..base()
        };
        let mut out = Vec::new();
        assert!(matches!(
            encode_event(&ev, &EventRules::default(), &mut out, 50),
            Err(Error::TooLarge { limit: 50, .. })
        ));
        let quotes = "\"".repeat(100);
        let ev = AuditEvent {
            error_message: Some(&quotes),
            ..base()
        };
        let mut out = Vec::new();
        // 100 raw bytes fit under 400, the escaped 200 plus the rest do not.
        assert!(matches!(
            encode_event(&ev, &EventRules::default(), &mut out, 400),
            Err(Error::TooLarge { limit: 400, .. })
        ));
        let huge = vec![0u32; 100_000];
        let ev = AuditEvent {
            event_data: EventData::Serialize(&huge),
            ..base()
        };
        let mut out = Vec::new();
        assert!(matches!(
            encode_event(&ev, &EventRules::default(), &mut out, 1000),
            Err(Error::TooLarge { .. })
        ));
        assert!(
            out.capacity() < 4096,
            "slot must not balloon: {}",
            out.capacity()
        );
    }
}
