//! The typed audit event in the DataStorage shape, borrowing every string, and its direct
//! encoder: keys are pre-escaped constants, values are escaped straight into the slot.

use super::escape::write_str_body;
use super::event_data::{EventData, write_event_data};
use super::fields::{Fields, json_size_bound, raw_size};
use super::rules::{EventRules, check_fields, invalid};
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
/// [`record`](crate::Pipeline::record) also refuses what DataStorage's `AuditEventRequest`
/// refuses, naming the field ([`Error::InvalidField`](crate::Error::InvalidField)): more
/// characters than the spec's `maxLength` (`version` 1–20, `event_type` 100,
/// `event_category` and `event_action` 50, `correlation_id` 255, `actor_ip` 45), an
/// `event_outcome` other than `success`, `failure` or `pending`, an `event_timestamp` or
/// `parent_event_date` that is not RFC 3339 (`2026-11-23T10:15:30.123Z`, or with an offset
/// `+01:00`; a fraction of 1–9 digits; no leap second), a `parent_event_id` that is not a
/// UUID (`8-4-4-4-12` hex digits), U+0000 in any string (Postgres cannot store it). Any
/// `event_category` is accepted unless [`Config::categories`](crate::Config::categories)
/// lists the allowed ones; the server's time window is checked only with
/// [`Config::check_timestamp_window`](crate::Config::check_timestamp_window).
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
    /// Duration of the audited operation in milliseconds, at most `i64::MAX` (DataStorage
    /// reads a signed 64-bit integer).
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

/// Encodes `ev` into `out` (empty on entry); fails without touching anything outside `out`.
#[inline]
pub(crate) fn encode_event(
    ev: &AuditEvent<'_>,
    rules: &EventRules,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), Error> {
    super::fields::fields_of!(f = ev, str::as_bytes, super::fields::data_of(ev));
    encode_fields::<false>(&f, rules, out, limit)
}

/// Encodes the checked fields into `out` (empty on entry). With `CHECK_UTF8` (the strings
/// came as bytes) each is checked for UTF-8 as it is escaped.
#[inline]
pub(crate) fn encode_fields<const CHECK_UTF8: bool>(
    f: &Fields<'_>,
    rules: &EventRules,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), Error> {
    check_fields(f, rules)?;
    write_fields::<CHECK_UTF8, true>(f, out, limit)
}

/// Writes a captured event's fields, checked when it was captured (see
/// [`capture`](super::capture)): no rule is checked again, and `event_data` given as
/// [`Data::Scanned`] is not scanned again.
///
/// `plain`: no string field holds a byte JSON escapes (`"`, `\\`, controls), so each is
/// copied as it is instead of being scanned again, field by field — the caller looked at
/// them all at once.
pub(crate) fn render_fields(f: &Fields<'_>, out: &mut Vec<u8>, plain: bool) -> Result<(), Error> {
    if plain {
        write_fields::<false, false>(f, out, usize::MAX)
    } else {
        write_fields::<false, true>(f, out, usize::MAX)
    }
}

#[inline(always)]
fn write_fields<const CHECK_UTF8: bool, const ESCAPE: bool>(
    f: &Fields<'_>,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), Error> {
    let lower_bound = raw_size(f);
    if lower_bound > limit {
        return Err(Error::TooLarge {
            size: lower_bound,
            limit,
        });
    }
    let put = put::<CHECK_UTF8, ESCAPE>;

    // Keys carry the quotes around the string values that follow them.
    out.reserve(json_size_bound(f, lower_bound));
    out.extend_from_slice(b"{\"version\":\"");
    put(out, "version", f.version().unwrap_or(b"1.0"))?;
    out.extend_from_slice(b"\",\"event_type\":");
    let event_type_at = out.len();
    out.push(b'"');
    put(out, "event_type", f.event_type())?;
    out.push(b'"');
    let event_type_token = event_type_at..out.len();
    out.extend_from_slice(b",\"event_timestamp\":\"");
    match f.event_timestamp() {
        // Checked to be RFC 3339: plain ASCII, nothing to escape.
        Some(ts) => time::append(out, ts),
        None => out.extend_from_slice(&time::now()),
    }
    out.extend_from_slice(b"\",\"event_category\":\"");
    put(out, "event_category", f.event_category())?;
    out.extend_from_slice(b"\",\"event_action\":\"");
    put(out, "event_action", f.event_action())?;
    out.extend_from_slice(b"\",\"event_outcome\":\"");
    out.extend_from_slice(f.event_outcome());
    out.extend_from_slice(b"\",\"correlation_id\":\"");
    put(out, "correlation_id", f.correlation_id())?;
    out.push(b'"');

    // One call per field, not a loop over an array of them: the array of 10 keys, names
    // and values, rebuilt on the stack for every event, took half this function's time on
    // the flush thread (`render_fields` 1 731 -> 840 samples in `perf`).
    let optional = optional::<CHECK_UTF8, ESCAPE>;
    optional(out, b",\"actor_type\":\"", "actor_type", f.actor_type())?;
    optional(out, b",\"actor_id\":\"", "actor_id", f.actor_id())?;
    optional(out, b",\"actor_ip\":\"", "actor_ip", f.actor_ip())?;
    optional(
        out,
        b",\"resource_type\":\"",
        "resource_type",
        f.resource_type(),
    )?;
    optional(out, b",\"resource_id\":\"", "resource_id", f.resource_id())?;
    optional(
        out,
        b",\"parent_event_id\":\"",
        "parent_event_id",
        f.parent_event_id(),
    )?;
    optional(
        out,
        b",\"parent_event_date\":\"",
        "parent_event_date",
        f.parent_event_date(),
    )?;
    optional(out, b",\"namespace\":\"", "namespace", f.namespace())?;
    optional(out, b",\"cluster_id\":\"", "cluster_id", f.cluster_id())?;
    optional(out, b",\"severity\":\"", "severity", f.severity())?;
    if let Some(ms) = f.duration_ms {
        out.extend_from_slice(b",\"duration_ms\":");
        out.extend_from_slice(itoa::Buffer::new().format(ms).as_bytes());
    }
    optional(out, b",\"error_code\":\"", "error_code", f.error_code())?;
    optional(
        out,
        b",\"error_message\":\"",
        "error_message",
        f.error_message(),
    )?;
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

/// Writes `s` escaped (as it is, if not `ESCAPE`: it holds nothing to escape), checked for
/// UTF-8 if `CHECK`; an error names `field`.
#[inline(always)]
fn put<const CHECK: bool, const ESCAPE: bool>(
    out: &mut Vec<u8>,
    field: &'static str,
    s: &[u8],
) -> Result<(), Error> {
    // Copying as is skips the UTF-8 and U+0000 checks that escaping does.
    const { assert!(ESCAPE || !CHECK) };
    if !ESCAPE {
        out.extend_from_slice(s);
        return Ok(());
    }
    write_str_body(out, s, CHECK).map_err(|bad| invalid(field, bad.reason()))
}

/// Writes `key` (which opens the value's quotes) and `value`, if there is one.
#[inline(always)]
fn optional<const CHECK: bool, const ESCAPE: bool>(
    out: &mut Vec<u8>,
    key: &[u8],
    field: &'static str,
    value: Option<&[u8]>,
) -> Result<(), Error> {
    if let Some(v) = value {
        out.extend_from_slice(key);
        put::<CHECK, ESCAPE>(out, field, v)?;
        out.push(b'"');
    }
    Ok(())
}

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

    /// The room the encoder reserves holds the event, so rendering into a buffer that has
    /// it never grows the buffer, and is not much more (an event smaller than a slot
    /// renders into a slot-sized buffer).
    #[test]
    fn the_reserved_room_holds_the_event_and_little_more() {
        let all = AuditEvent {
            version: Some("1.0"),
            event_timestamp: None,
            actor_type: Some("a"),
            actor_id: Some("b"),
            actor_ip: Some("c"),
            resource_type: Some("d"),
            resource_id: Some("e"),
            parent_event_id: Some("123e4567-e89b-12d3-a456-426614174000"),
            parent_event_date: Some("2026-11-23T10:00:00Z"),
            namespace: Some("g"),
            cluster_id: Some("h"),
            severity: Some("i"),
            duration_ms: Some(i64::MAX as u64),
            error_code: Some("j"),
            error_message: Some("k"),
            retention_days: Some(u32::MAX),
            is_sensitive: Some(false),
            event_data: EventData::Json(r#"{"x":1}"#),
            ..base()
        };
        let empty_data = AuditEvent {
            event_data: EventData::Json("{}"),
            ..all
        };
        let minimal = AuditEvent {
            event_timestamp: None,
            ..base()
        };
        let given = AuditEvent {
            event_timestamp: Some("2026-11-23T10:00:00.000Z"),
            ..all
        };
        for ev in [&all, &given, &empty_data, &minimal, &base()] {
            let json = encode(ev).unwrap();
            let f = Fields::from(ev);
            let bound = json_size_bound(&f, raw_size(&f));
            assert!(json.len() <= bound, "{json}: {} > {bound}", json.len());
            // Over only where `event_data` gains its `event_type`: by the comma an empty
            // object does not need, and the braces a given object brings itself.
            assert!(
                bound - json.len() <= 3,
                "{json}: {} + 3 < {bound}",
                json.len()
            );
        }
    }

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
