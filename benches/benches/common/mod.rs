//! Events shared by the benchmarks: the same bytes for every contender.

#![allow(dead_code)]

use auditbuf::{AuditEvent, EventData};

pub const PAYLOAD: &str = r#"{"signal_name":"OOMKilled","fingerprint":"fp-abc123"}"#;

/// A typed DataStorage event of about 300 bytes once encoded.
pub fn typed() -> AuditEvent<'static> {
    AuditEvent {
        actor_id: Some("gateway"),
        event_data: EventData::Json(PAYLOAD),
        ..AuditEvent::new(
            "gateway.signal.received",
            "gateway",
            "received",
            "success",
            "rr-2026-001",
        )
    }
}

/// A raw JSON event of about 1 KiB with escapes and non-ASCII text.
pub fn raw_1k() -> Vec<u8> {
    let mut s = String::from(
        r#"{"version":"1.0","event_timestamp":"2026-11-23T10:15:30.123Z","event_type":"user.profile.updated","event_category":"apifrontend","event_action":"updated","event_outcome":"success","correlation_id":"req-7f3a9c","actor_type":"user","actor_id":"zoë@example.com","event_data":{"event_type":"user.profile.updated","changes":["#,
    );
    let mut i = 0;
    while s.len() < 980 {
        s.push_str(&format!(
            r#"{{"field":"attr_{i}","old":"value \"{i}\" before","new":"välue {i} after"}},"#
        ));
        i += 1;
    }
    s.pop();
    s.push_str("]}}");
    s.into_bytes()
}

/// The bytes `record(&typed())` puts on the wire, for contenders that take bytes.
pub fn typed_bytes() -> Vec<u8> {
    let mut out = Vec::new();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = auditbuf::CallbackSink::new({
        let seen = seen.clone();
        move |b: &[&[u8]]| {
            seen.lock().unwrap().extend(b.iter().map(|e| e.to_vec()));
            auditbuf::Outcome::Delivered
        }
    });
    let p = auditbuf::Pipeline::new(auditbuf::Config::default(), sink).unwrap();
    p.record(&typed()).unwrap();
    p.close(std::time::Duration::from_secs(5));
    out.extend_from_slice(&seen.lock().unwrap()[0]);
    out
}
