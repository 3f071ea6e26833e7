use super::*;
use crate::encode::rules::{is_uuid, rfc3339_seconds};

fn encode(ev: &CadfEvent<'_>) -> Result<String, Error> {
    let mut out = Vec::new();
    encode_cadf(ev, &mut out, 64 * 1024)?;
    Ok(String::from_utf8(out).unwrap())
}

fn base() -> CadfEvent<'static> {
    CadfEvent {
        id: Some("e-1"),
        event_time: Some("2026-11-23T10:15:30.123456+00:00"),
        ..CadfEvent::new(
            "create",
            "success",
            CadfResource::new("user", "u-1"),
            CadfResource::new("server", "s-1"),
            CadfResource::new("service", "svc-1"),
        )
    }
}

const HEAD: &str = r#"{"typeURI":"http://schemas.dmtf.org/cloud/audit/1.0/event","id":"e-1","eventTime":"2026-11-23T10:15:30.123456+00:00","eventType":"activity","action":"create","outcome":"success""#;
const RESOURCES: &str = r#","initiator":{"typeURI":"user","id":"u-1"},"target":{"typeURI":"server","id":"s-1"},"observer":{"typeURI":"service","id":"svc-1"}"#;

#[test]
fn minimal_event() {
    assert_eq!(encode(&base()).unwrap(), format!("{HEAD}{RESOURCES}}}"));
}

#[test]
fn id_and_time_are_generated_when_absent() {
    let ev = CadfEvent {
        id: None,
        event_time: None,
        ..base()
    };
    let text = encode(&ev).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let id = v["id"].as_str().unwrap();
    assert!(is_uuid(id.as_bytes()), "{id}");
    assert_eq!(&id[14..15], "4");
    let time = v["eventTime"].as_str().unwrap();
    assert_eq!(time.len(), 32, "{time}");
    assert!(rfc3339_seconds(time.as_bytes()).is_some(), "{time}");
    assert_ne!(encode(&ev).unwrap(), text, "every event gets its own id");
}

#[test]
fn every_field_in_the_upstream_order() {
    let addresses = [
        CadfAddress {
            url: "https://nova.example/v2",
            name: Some("public"),
        },
        CadfAddress {
            url: "https://nova.internal/v2",
            name: None,
        },
    ];
    let attachments = [
        CadfAttachment {
            name: Some("payload"),
            type_uri: "mime:application/json",
            content: CadfContent::Json("{\n \"a\": [1, 2] }"),
        },
        CadfAttachment {
            name: None,
            type_uri: "xs:string",
            content: CadfContent::Text("line\nbreak \"q\""),
        },
    ];
    let ev = CadfEvent {
        type_uri: Some("http://schemas.dmtf.org/cloud/audit/1.0/event"),
        event_type: Some("monitor"),
        reason: Some(CadfReason {
            reason_type: Some("HTTP"),
            reason_code: Some("201"),
        }),
        initiator: CadfResource {
            name: Some("ada"),
            domain: Some("Default"),
            addresses: &addresses,
            host: Some(CadfHost {
                id: None,
                address: Some("10.0.0.1"),
                agent: Some("curl/8"),
                platform: None,
            }),
            attachments: &attachments[1..],
            project_id: Some("p-1"),
            domain_id: Some("d-1"),
            project_name: Some("proj"),
            project_domain_name: Some("pd"),
            domain_name: Some("dom"),
            app_credential_id: Some("ac-1"),
            ..CadfResource::new("user", "u-1")
        },
        attachments: &attachments,
        request_path: Some("/v2/servers?x=1"),
        ..base()
    };
    let expect = concat!(
        r#"{"typeURI":"http://schemas.dmtf.org/cloud/audit/1.0/event","id":"e-1","eventTime":"2026-11-23T10:15:30.123456+00:00","eventType":"monitor","action":"create","outcome":"success","#,
        r#""reason":{"reasonType":"HTTP","reasonCode":"201"},"#,
        r#""initiator":{"typeURI":"user","name":"ada","domain":"Default","id":"u-1","addresses":[{"url":"https://nova.example/v2","name":"public"},{"url":"https://nova.internal/v2"}],"host":{"address":"10.0.0.1","agent":"curl/8"},"attachments":[{"typeURI":"xs:string","content":"line\nbreak \"q\""}],"project_id":"p-1","domain_id":"d-1","project_name":"proj","project_domain_name":"pd","domain_name":"dom","app_credential_id":"ac-1"},"#,
        r#""target":{"typeURI":"server","id":"s-1"},"observer":{"typeURI":"service","id":"svc-1"},"#,
        r#""attachments":[{"name":"payload","typeURI":"mime:application/json","content":{  "a": [1, 2] }},{"typeURI":"xs:string","content":"line\nbreak \"q\""}],"#,
        r#""requestPath":"/v2/servers?x=1"}"#
    );
    assert_eq!(encode(&ev).unwrap(), expect);
}

#[test]
fn a_reason_or_host_with_some_members() {
    let ev = CadfEvent {
        reason: Some(CadfReason {
            reason_type: None,
            reason_code: Some("404"),
        }),
        observer: CadfResource {
            host: Some(CadfHost::default()),
            ..CadfResource::new("service", "svc-1")
        },
        ..base()
    };
    let text = encode(&ev).unwrap();
    assert!(text.contains(r#""reason":{"reasonCode":"404"}"#), "{text}");
    assert!(text.contains(r#""id":"svc-1","host":{}}"#), "{text}");
}

#[test]
fn output_is_what_serde_json_reads_back() {
    let ev = CadfEvent {
        action: "ü \u{1} \"q\" \\",
        ..base()
    };
    let v: serde_json::Value = serde_json::from_str(&encode(&ev).unwrap()).unwrap();
    assert_eq!(v["action"], "ü \u{1} \"q\" \\");
}

fn error_of(ev: &CadfEvent<'_>) -> (&'static str, &'static str) {
    match encode(ev) {
        Err(Error::MissingField { field }) => ("missing", field),
        Err(Error::InvalidField { field, .. }) => ("invalid", field),
        Err(Error::InvalidJson { .. }) => ("json", ""),
        other => panic!("{ev:?}: {other:?}"),
    }
}

#[test]
fn bad_fields_are_named() {
    let json_attachment = [CadfAttachment {
        name: None,
        type_uri: "mime:application/json",
        content: CadfContent::Json("{\"a\":1,\"a\":2}"),
    }];
    let untyped = [CadfAttachment {
        name: None,
        type_uri: "",
        content: CadfContent::Text("x"),
    }];
    let no_url = [CadfAddress {
        url: "",
        name: Some("n"),
    }];
    let long_id = "x".repeat(256);
    for (ev, expect) in [
        (
            CadfEvent {
                action: "",
                ..base()
            },
            ("missing", "action"),
        ),
        (
            CadfEvent {
                outcome: "",
                ..base()
            },
            ("missing", "outcome"),
        ),
        (
            CadfEvent {
                outcome: "ok",
                ..base()
            },
            ("invalid", "outcome"),
        ),
        (
            CadfEvent {
                event_type: Some("thing"),
                ..base()
            },
            ("invalid", "eventType"),
        ),
        (
            CadfEvent {
                event_time: Some("yesterday"),
                ..base()
            },
            ("invalid", "eventTime"),
        ),
        (
            CadfEvent {
                id: Some(""),
                ..base()
            },
            ("invalid", "id"),
        ),
        (
            CadfEvent {
                id: Some(&long_id),
                ..base()
            },
            ("invalid", "id"),
        ),
        (
            CadfEvent {
                type_uri: Some(""),
                ..base()
            },
            ("invalid", "typeURI"),
        ),
        (
            CadfEvent {
                initiator: CadfResource::new("", "u"),
                ..base()
            },
            ("missing", "initiator.typeURI"),
        ),
        (
            CadfEvent {
                target: CadfResource::new("t", ""),
                ..base()
            },
            ("missing", "target.id"),
        ),
        (
            CadfEvent {
                observer: CadfResource {
                    addresses: &no_url,
                    ..CadfResource::new("s", "o")
                },
                ..base()
            },
            ("missing", "observer.addresses.url"),
        ),
        (
            CadfEvent {
                attachments: &untyped,
                ..base()
            },
            ("missing", "attachments.typeURI"),
        ),
        (
            CadfEvent {
                target: CadfResource {
                    attachments: &untyped,
                    ..CadfResource::new("t", "t-1")
                },
                ..base()
            },
            ("missing", "target.attachments.typeURI"),
        ),
        (
            CadfEvent {
                attachments: &json_attachment,
                ..base()
            },
            ("json", ""),
        ),
        (
            CadfEvent {
                target: CadfResource {
                    domain_name: Some("a\0b"),
                    ..CadfResource::new("t", "t-1")
                },
                ..base()
            },
            ("invalid", "target.domain_name"),
        ),
        (
            CadfEvent {
                request_path: Some("\0"),
                ..base()
            },
            ("invalid", "requestPath"),
        ),
    ] {
        assert_eq!(error_of(&ev), expect);
    }
}

#[test]
fn json_content_may_be_any_value() {
    for (content, wire) in [
        ("[1, {\"b\": null}]", "[1, {\"b\": null}]"),
        ("  \"text\"\n", "\"text\""),
        ("42", "42"),
    ] {
        let attachments = [CadfAttachment {
            name: None,
            type_uri: "t",
            content: CadfContent::Json(content),
        }];
        let text = encode(&CadfEvent {
            attachments: &attachments,
            ..base()
        })
        .unwrap();
        assert!(
            text.contains(&format!("\"content\":{wire}}}]")),
            "{content:?}: {text}"
        );
    }
    for bad in ["", "{", "[1,]", "1 2", "[{\"k\":1,\"k\":2}]", "\"\\u0000\""] {
        let attachments = [CadfAttachment {
            name: None,
            type_uri: "t",
            content: CadfContent::Json(bad),
        }];
        let ev = CadfEvent {
            attachments: &attachments,
            ..base()
        };
        assert!(
            matches!(encode(&ev), Err(Error::InvalidJson { .. })),
            "{bad:?}"
        );
    }
    // Many keys in an object inside an array: the slow duplicate check must still run.
    let mut wide = String::from("[{");
    for i in 0..200 {
        wide.push_str(&format!("\"k{i}\":1,"));
    }
    wide.push_str("\"k7\":2}]");
    let attachments = [CadfAttachment {
        name: None,
        type_uri: "t",
        content: CadfContent::Json(&wide),
    }];
    let ev = CadfEvent {
        attachments: &attachments,
        ..base()
    };
    assert!(matches!(encode(&ev), Err(Error::InvalidJson { .. })));
}

#[test]
fn size_limit_is_enforced_before_and_after_escaping() {
    let big = "x".repeat(1000);
    let ev = CadfEvent {
        request_path: Some(&big),
        ..base()
    };
    let mut out = Vec::new();
    assert!(matches!(
        encode_cadf(&ev, &mut out, 500),
        Err(Error::TooLarge { limit: 500, .. })
    ));
    assert!(out.is_empty(), "refused before writing");
    let quotes = "\"".repeat(300);
    let ev = CadfEvent {
        request_path: Some(&quotes),
        ..base()
    };
    let mut out = Vec::new();
    assert!(matches!(
        encode_cadf(&ev, &mut out, 600),
        Err(Error::TooLarge { limit: 600, .. })
    ));
}
