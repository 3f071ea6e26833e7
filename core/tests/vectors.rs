//! The shared test vectors in `testdata/events`: every input goes through a real pipeline
//! and the bytes the sink receives must match the `.wire` file exactly (or the input must be
//! rejected with the reason in the `.error` file). See `testdata/events/README.md`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditbuf::{
    AuditEvent, AuditEventBytes, CallbackSink, Config, Error, EventData, Outcome, Pipeline,
};
use serde_json::Value;

mod common;

const NOW: &[u8] = b"<NOW>";

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/events")
}

/// Each vector: its name, how to record it, and what must come out.
fn vectors() -> Vec<(String, PathBuf)> {
    let mut inputs: Vec<(String, PathBuf)> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let file = p.file_name().unwrap().to_str().unwrap();
            let name = file
                .trim_end_matches(".json")
                .trim_end_matches(".typed")
                .to_owned();
            (name, p)
        })
        .collect();
    inputs.sort();
    inputs
}

fn record_typed(p: &Pipeline, spec: &Value) -> Result<(), Error> {
    let s = |k: &str| spec.get(k).map(|v| v.as_str().unwrap());
    let req = |k: &str| s(k).unwrap_or("");
    let event = AuditEvent {
        version: s("version"),
        event_type: req("event_type"),
        event_timestamp: s("event_timestamp"),
        event_category: req("event_category"),
        event_action: req("event_action"),
        event_outcome: req("event_outcome"),
        correlation_id: req("correlation_id"),
        actor_type: s("actor_type"),
        actor_id: s("actor_id"),
        actor_ip: s("actor_ip"),
        resource_type: s("resource_type"),
        resource_id: s("resource_id"),
        parent_event_id: s("parent_event_id"),
        parent_event_date: s("parent_event_date"),
        namespace: s("namespace"),
        cluster_id: s("cluster_id"),
        severity: s("severity"),
        duration_ms: spec.get("duration_ms").map(|v| v.as_u64().unwrap()),
        error_code: s("error_code"),
        error_message: s("error_message"),
        retention_days: spec
            .get("retention_days")
            .map(|v| v.as_u64().unwrap() as u32),
        is_sensitive: spec.get("is_sensitive").map(|v| v.as_bool().unwrap()),
        event_data: s("event_data_json").map_or(EventData::Empty, EventData::Json),
    };
    p.record(&event)
}

/// The same event through the path the C ABI, Go and Python take: byte-slice fields.
fn record_typed_bytes(p: &Pipeline, spec: &Value) -> Result<(), Error> {
    let s = |k: &str| spec.get(k).map(|v| v.as_str().unwrap().as_bytes());
    let req = |k: &str| s(k).unwrap_or(b"");
    let event = AuditEventBytes {
        version: s("version"),
        event_timestamp: s("event_timestamp"),
        actor_type: s("actor_type"),
        actor_id: s("actor_id"),
        actor_ip: s("actor_ip"),
        resource_type: s("resource_type"),
        resource_id: s("resource_id"),
        parent_event_id: s("parent_event_id"),
        parent_event_date: s("parent_event_date"),
        namespace: s("namespace"),
        cluster_id: s("cluster_id"),
        severity: s("severity"),
        duration_ms: spec.get("duration_ms").map(|v| v.as_u64().unwrap()),
        error_code: s("error_code"),
        error_message: s("error_message"),
        retention_days: spec
            .get("retention_days")
            .map(|v| v.as_u64().unwrap() as u32),
        is_sensitive: spec.get("is_sensitive").map(|v| v.as_bool().unwrap()),
        event_data: s("event_data_json"),
        ..AuditEventBytes::new(
            req("event_type"),
            req("event_category"),
            req("event_action"),
            req("event_outcome"),
            req("correlation_id"),
        )
    };
    p.record_event_bytes(&event)
}

/// Whether `actual` equals `expected`, where `<NOW>` in `expected` stands for a timestamp.
fn matches_wire(expected: &[u8], actual: &[u8]) -> bool {
    let Some(at) = expected.windows(NOW.len()).position(|w| w == NOW) else {
        return expected == actual;
    };
    let (before, after) = (&expected[..at], &expected[at + NOW.len()..]);
    actual.len() == before.len() + 24 + after.len()
        && actual.starts_with(before)
        && actual.ends_with(after)
        && is_timestamp(&actual[at..at + 24])
}

fn is_timestamp(t: &[u8]) -> bool {
    let shape = b"dddd-dd-ddTdd:dd:dd.dddZ";
    t.iter().zip(shape).all(|(c, s)| {
        if *s == b'd' {
            c.is_ascii_digit()
        } else {
            c == s
        }
    })
}

#[test]
fn every_vector_produces_its_exact_wire_bytes() {
    let list = vectors();
    assert!(list.len() >= 40, "vectors missing: found {}", list.len());
    for (name, input) in list {
        let typed = input.to_str().unwrap().ends_with(".typed.json");
        // Typed vectors go through both typed paths; the bindings use the second.
        let paths: &[bool] = if typed { &[false, true] } else { &[false] };
        for &from_bytes in paths {
            let name = if from_bytes {
                format!("{name} (record_event_bytes)")
            } else {
                name.clone()
            };
            check_vector(&name, &input, typed, from_bytes);
        }
    }
}

fn check_vector(name: &str, input: &Path, typed: bool, from_bytes: bool) {
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
    let p = Pipeline::new(Config::default(), sink).unwrap();
    let bytes = std::fs::read(input).unwrap();
    let result = match (typed, from_bytes) {
        (true, false) => record_typed(&p, &serde_json::from_slice(&bytes).unwrap()),
        (true, true) => record_typed_bytes(&p, &serde_json::from_slice(&bytes).unwrap()),
        _ => p.record_json(&bytes),
    };
    let report = p.close(Duration::from_secs(10));
    assert!(report.stats.is_consistent(), "{name}: {:?}", report.stats);
    let dir = vectors_dir();
    let stem = input.file_name().unwrap().to_str().unwrap();
    let stem = stem.trim_end_matches(".json").trim_end_matches(".typed");
    match std::fs::read(dir.join(format!("{stem}.wire"))) {
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
            // The wire bytes are one line of valid JSON.
            assert!(!seen[0].contains(&b'\n'));
            serde_json::from_slice::<Value>(&seen[0]).unwrap();
        }
        Err(_) => {
            let want = std::fs::read_to_string(dir.join(format!("{stem}.error")))
                .unwrap_or_else(|_| panic!("{name}: neither .wire nor .error"));
            let err = result.expect_err(name);
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

#[test]
fn datastorage_vectors_have_the_shape_the_server_requires() {
    let categories = [
        "gateway",
        "notification",
        "analysis",
        "aiagent",
        "signalprocessing",
        "workflow",
        "workflowexecution",
        "orchestration",
        "approval",
        "effectiveness",
        "actiontype",
        "apifrontend",
        "security",
        "agentsession",
    ];
    let mut checked = 0;
    for (name, _) in vectors()
        .into_iter()
        .filter(|(n, _)| n.starts_with("datastorage_"))
    {
        let wire = std::fs::read(vectors_dir().join(format!("{name}.wire"))).unwrap();
        let v: Value = serde_json::from_slice(&wire).unwrap();
        for field in [
            "version",
            "event_type",
            "event_timestamp",
            "event_category",
            "event_action",
            "event_outcome",
            "correlation_id",
        ] {
            assert!(
                v[field].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: {field}"
            );
        }
        assert!(
            v.get("event_id").is_none(),
            "{name}: the server assigns event_id"
        );
        assert!(
            categories.contains(&v["event_category"].as_str().unwrap()),
            "{name}"
        );
        assert!(["success", "failure", "pending"].contains(&v["event_outcome"].as_str().unwrap()));
        let data = &v["event_data"];
        assert_eq!(data["event_type"], v["event_type"], "{name}: discriminator");
        // GatewayAuditPayload's required fields.
        assert_eq!(data["signal_type"], "alert", "{name}");
        for field in ["signal_name", "namespace", "fingerprint"] {
            assert!(data[field].is_string(), "{name}: event_data.{field}");
        }
        checked += 1;
    }
    assert!(checked >= 2);
}
