//! Events shared by the benchmarks: the same bytes for every contender.

#![allow(dead_code)]

use auditbuf::{
    AuditEvent, CadfAddress, CadfAttachment, CadfContent, CadfEvent, CadfHost, CadfReason,
    CadfResource, EventData,
};

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

const ADDRESSES: [CadfAddress<'static>; 1] = [CadfAddress {
    url: "https://keystone.example.com/v3",
    name: Some("public"),
}];

const ATTACHMENTS: [CadfAttachment<'static>; 1] = [CadfAttachment {
    name: Some("payload"),
    type_uri: "mime:application/json",
    content: CadfContent::Json(r#"{"flavor":"m1.small","count":2}"#),
}];

/// Every part of the event and of a resource, as an OpenStack API behind audittools fills
/// them: 1.2 KB on the wire.
pub fn cadf_full(id: Option<&'static str>, time: Option<&'static str>) -> CadfEvent<'static> {
    CadfEvent {
        id,
        event_time: time,
        reason: Some(CadfReason {
            reason_type: Some("HTTP"),
            reason_code: Some("201"),
        }),
        initiator: CadfResource {
            name: Some("ada"),
            domain: Some("Default"),
            addresses: &ADDRESSES,
            host: Some(CadfHost {
                id: None,
                address: Some("10.0.0.7"),
                agent: Some("python-openstackclient/6.0"),
                platform: Some("linux"),
            }),
            project_id: Some("e9141fb24eee4b3e9f25ae69cda31132"),
            domain_id: Some("default"),
            project_name: Some("payments"),
            project_domain_name: Some("Default"),
            domain_name: Some("Default"),
            app_credential_id: Some("ac-31"),
            ..CadfResource::new(
                "service/security/account/user",
                "4b3a9c7e0d2f4e1a8b6c5d4e3f2a1b0c",
            )
        },
        target: CadfResource {
            name: Some("web-1"),
            project_id: Some("e9141fb24eee4b3e9f25ae69cda31132"),
            ..CadfResource::new("compute/server", "7f8e3a52-9c1d-4b7e-a0f4-2d6c8e1b3a95")
        },
        observer: CadfResource {
            name: Some("nova"),
            ..CadfResource::new("service/compute", "nova-api-01")
        },
        attachments: &ATTACHMENTS,
        request_path: Some("/v2.1/servers/7f8e3a52-9c1d-4b7e-a0f4-2d6c8e1b3a95/action"),
        ..CadfEvent::new(
            "update/resize",
            "success",
            CadfResource::default(),
            CadfResource::default(),
            CadfResource::default(),
        )
    }
}

/// The time of the call as RFC 3339 (`2026-12-02T21:30:05.123Z`), as a caller that stamps
/// its own events writes it.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
