//! CADF events: the shared vectors `testdata/events/cadf_*.cadf` go through a real pipeline
//! and the sink must receive the exact bytes of the `.wire` file (or the event must be
//! refused with the reason in the `.error` file); `record_cadf` is counted like `record`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditbuf::{
    CadfAddress, CadfAttachment, CadfContent, CadfEvent, CadfHost, CadfReason, CadfResource,
    CallbackSink, Config, Error, Outcome, Pipeline,
};
use serde_json::Value;

mod common;

const PLACEHOLDERS: [(&str, &[u8]); 2] = [
    ("<UUID>", b"hhhhhhhh-hhhh-4hhh-vhhh-hhhhhhhhhhhh"),
    ("<CADF_NOW>", b"dddd-dd-ddTdd:dd:dd.dddddd+00:00"),
];

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/events")
}

fn vectors() -> Vec<(String, Value)> {
    let mut list: Vec<(String, Value)> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cadf"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_str().unwrap().to_owned();
            (
                name,
                serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap(),
            )
        })
        .collect();
    list.sort_by(|a, b| a.0.cmp(&b.0));
    list
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).map(|x| x.as_str().unwrap())
}

fn addresses(r: &Value) -> Vec<CadfAddress<'_>> {
    r.get("addresses").map_or(Vec::new(), |list| {
        list.as_array()
            .unwrap()
            .iter()
            .map(|a| CadfAddress {
                url: s(a, "url").unwrap_or(""),
                name: s(a, "name"),
            })
            .collect()
    })
}

fn attachments(v: &Value) -> Vec<CadfAttachment<'_>> {
    v.get("attachments").map_or(Vec::new(), |list| {
        list.as_array()
            .unwrap()
            .iter()
            .map(|a| CadfAttachment {
                name: s(a, "name"),
                type_uri: s(a, "typeURI").unwrap_or(""),
                content: match (s(a, "content"), s(a, "content_json")) {
                    (Some(text), None) => CadfContent::Text(text),
                    (None, Some(json)) => CadfContent::Json(json),
                    other => panic!("an attachment needs content or content_json: {other:?}"),
                },
            })
            .collect()
    })
}

fn resource<'a>(
    r: &'a Value,
    addresses: &'a [CadfAddress<'a>],
    attachments: &'a [CadfAttachment<'a>],
) -> CadfResource<'a> {
    CadfResource {
        type_uri: s(r, "typeURI").unwrap_or(""),
        name: s(r, "name"),
        domain: s(r, "domain"),
        id: s(r, "id").unwrap_or(""),
        addresses,
        host: r.get("host").map(|h| CadfHost {
            id: s(h, "id"),
            address: s(h, "address"),
            agent: s(h, "agent"),
            platform: s(h, "platform"),
        }),
        attachments,
        project_id: s(r, "project_id"),
        domain_id: s(r, "domain_id"),
        project_name: s(r, "project_name"),
        project_domain_name: s(r, "project_domain_name"),
        domain_name: s(r, "domain_name"),
        app_credential_id: s(r, "app_credential_id"),
    }
}

/// Records the typed event a `.cadf` file describes: its keys are the wire names.
fn record_spec(p: &Pipeline, spec: &Value) -> Result<(), Error> {
    let roles = ["initiator", "target", "observer"].map(|r| &spec[r]);
    let parts = roles.map(|r| (addresses(r), attachments(r)));
    let own = attachments(spec);
    let res = |i: usize| resource(roles[i], &parts[i].0, &parts[i].1);
    p.record_cadf(&CadfEvent {
        type_uri: s(spec, "typeURI"),
        id: s(spec, "id"),
        event_time: s(spec, "eventTime"),
        event_type: s(spec, "eventType"),
        action: s(spec, "action").unwrap_or(""),
        outcome: s(spec, "outcome").unwrap_or(""),
        reason: spec.get("reason").map(|r| CadfReason {
            reason_type: s(r, "reasonType"),
            reason_code: s(r, "reasonCode"),
        }),
        initiator: res(0),
        target: res(1),
        observer: res(2),
        attachments: &own,
        request_path: s(spec, "requestPath"),
    })
}

/// Whether `actual` equals `expected`, where each placeholder stands for bytes of its shape
/// (`h` a lower-case hex digit, `v` one of `89ab`, `d` a digit, anything else itself).
fn matches_wire(expected: &[u8], actual: &[u8]) -> bool {
    let next = PLACEHOLDERS
        .iter()
        .filter_map(|(name, shape)| {
            let at = expected
                .windows(name.len())
                .position(|w| w == name.as_bytes())?;
            Some((at, name.len(), *shape))
        })
        .min_by_key(|(at, ..)| *at);
    let Some((at, len, shape)) = next else {
        return expected == actual;
    };
    actual.len() >= at + shape.len()
        && actual[..at] == expected[..at]
        && has_shape(&actual[at..at + shape.len()], shape)
        && matches_wire(&expected[at + len..], &actual[at + shape.len()..])
}

fn has_shape(t: &[u8], shape: &[u8]) -> bool {
    t.iter().zip(shape).all(|(&c, &s)| match s {
        b'h' => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        b'v' => b"89ab".contains(&c),
        b'd' => c.is_ascii_digit(),
        _ => c == s,
    })
}

/// The event the wire must mean: the input with its defaults, JSON content parsed.
fn meaning(spec: &Value) -> Value {
    fn parse_contents(v: &mut Value) {
        if let Some(list) = v.get_mut("attachments").and_then(Value::as_array_mut) {
            for a in list {
                let a = a.as_object_mut().unwrap();
                if let Some(Value::String(json)) = a.remove("content_json") {
                    a.insert("content".into(), serde_json::from_str(&json).unwrap());
                }
            }
        }
    }
    let mut v = spec.clone();
    let event = v.as_object_mut().unwrap();
    event.remove("description");
    event
        .entry("typeURI")
        .or_insert("http://schemas.dmtf.org/cloud/audit/1.0/event".into());
    event.entry("eventType").or_insert("activity".into());
    parse_contents(&mut v);
    for role in ["initiator", "target", "observer"] {
        parse_contents(&mut v[role]);
    }
    v
}

fn collecting_pipeline() -> (Pipeline, Arc<Mutex<Vec<Vec<u8>>>>) {
    let seen = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let sink = CallbackSink::new({
        let seen = Arc::clone(&seen);
        move |batch: &[&[u8]]| {
            seen.lock()
                .unwrap()
                .extend(batch.iter().map(|e| e.to_vec()));
            Outcome::Delivered
        }
    });
    (Pipeline::new(Config::default(), sink).unwrap(), seen)
}

#[test]
fn every_cadf_vector_produces_its_exact_wire_bytes() {
    let list = vectors();
    assert!(list.len() >= 8, "vectors missing: found {}", list.len());
    for (name, spec) in list {
        let (p, seen) = collecting_pipeline();
        let result = record_spec(&p, &spec);
        let report = p.close(Duration::from_secs(10));
        assert!(report.stats.is_consistent(), "{name}: {:?}", report.stats);
        let dir = vectors_dir();
        match std::fs::read(dir.join(format!("{name}.wire"))) {
            Ok(expected) => {
                assert!(result.is_ok(), "{name}: rejected: {result:?}");
                let seen = seen.lock().unwrap();
                assert_eq!(seen.len(), 1, "{name}");
                assert!(
                    matches_wire(&expected, &seen[0]),
                    "{name}:\nexpected {}\n  actual {}",
                    String::from_utf8_lossy(&expected),
                    String::from_utf8_lossy(&seen[0])
                );
                assert!(!seen[0].contains(&b'\n'));
                let mut wire: Value = serde_json::from_slice(&seen[0]).unwrap();
                let want = meaning(&spec);
                for generated in ["id", "eventTime"] {
                    if want.get(generated).is_none() {
                        wire.as_object_mut().unwrap().remove(generated);
                    }
                }
                // The wire bytes mean what the input says, nothing more.
                assert_eq!(wire, want, "{name}");
            }
            Err(_) => {
                let want = std::fs::read_to_string(dir.join(format!("{name}.error")))
                    .unwrap_or_else(|_| panic!("{name}: neither .wire nor .error"));
                let err = result.expect_err(&name);
                assert_eq!(err.name(), want.trim(), "{name}: {err}");
                assert_eq!(
                    common::rejected::rejected_by(&report.stats, want.trim()),
                    1,
                    "{name}"
                );
                assert_eq!(report.stats.recorded, 0, "{name}");
            }
        }
    }
}

#[test]
fn generated_ids_are_unique_across_threads() {
    let (p, seen) = collecting_pipeline();
    let p = Arc::new(p);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let p = Arc::clone(&p);
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    let ev = CadfEvent::new(
                        "read",
                        "success",
                        CadfResource::new("user", "u"),
                        CadfResource::new("t", "t"),
                        CadfResource::new("o", "o"),
                    );
                    loop {
                        match p.record_cadf(&ev) {
                            Err(Error::Full) => std::thread::yield_now(),
                            other => break other.unwrap(),
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let report = p.close(Duration::from_secs(10));
    assert_eq!(report.stats.recorded, 8000);
    assert_eq!(report.stats.delivered, 8000);
    assert!(report.stats.is_consistent());
    let ids: std::collections::HashSet<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|e| {
            serde_json::from_slice::<Value>(e).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 8000);
}
