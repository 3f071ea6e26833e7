//! Fuzzing the boundary: the record paths and both configuration readers get mutated
//! corpus inputs (from `testdata/events`) and arbitrary ones. Nothing may panic or abort;
//! every accepted event must be one line that serde_json reads, with no duplicate key, no
//! U+0000 and no number of 1e308 or more, nested at most 126 levels, and must carry what
//! the caller gave (it "round-trips"); every rejection is a bad-input error, counted.
//!
//! `cargo test --test fuzz` runs a bounded number of cases (a few seconds);
//! `scripts/fuzz` runs many more (`FUZZ_CASES`, default here 256 per target).

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditbuf::{
    AuditEvent, AuditEventBytes, CallbackSink, Config, Error, EventData, Outcome, Pipeline,
    StoreConfig,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use serde::Deserialize;
use serde_json::{Map, Value};

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn runner() -> TestRunner {
    TestRunner::new(RunnerConfig {
        cases: cases(),
        failure_persistence: None,
        ..RunnerConfig::default()
    })
}

/// A pipeline whose sink keeps what it is given, and a way to take it.
struct Harness {
    name: &'static str,
    pipeline: Pipeline,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Harness {
    fn new(name: &'static str) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = CallbackSink::new({
            let seen = Arc::clone(&seen);
            move |batch: &[&[u8]]| {
                seen.lock()
                    .unwrap()
                    .extend(batch.iter().map(|e| e.to_vec()));
                Outcome::Delivered
            }
        });
        let config = Config::default().flush_interval(Duration::from_secs(3600));
        Harness {
            name,
            pipeline: Pipeline::new(config, sink).unwrap(),
            seen,
        }
    }

    /// What the sink got for one accepted call, or the call's error (checked and counted).
    fn outcome(
        &self,
        record: impl FnOnce(&Pipeline) -> Result<(), Error>,
    ) -> Result<Vec<u8>, Error> {
        let before = self.pipeline.stats().rejected.total();
        match record(&self.pipeline) {
            Ok(()) => {
                assert!(self.pipeline.flush(Duration::from_secs(10)).completed);
                let mut seen = self.seen.lock().unwrap();
                assert_eq!(seen.len(), 1);
                Ok(seen.remove(0))
            }
            Err(e) => {
                assert!(e.is_bad_input(), "not a bad-input error: {e}");
                assert!(!e.to_string().is_empty());
                assert_eq!(self.pipeline.stats().rejected.total(), before + 1);
                Err(e)
            }
        }
    }

    /// Checks the accounting and says how the cases went (shown with `--nocapture`), so
    /// a fuzzer that only ever hits one side is noticed.
    fn close(self) {
        let report = self.pipeline.close(Duration::from_secs(10));
        let s = report.stats;
        assert!(s.is_consistent(), "{s:?}");
        assert_eq!(s.recorded, s.delivered);
        let r = s.rejected;
        eprintln!(
            "{}: accepted {}, rejected {} (invalid_json {}, invalid_utf8 {}, not_an_object {}, \
             missing_field {}, invalid_field {}, too_large {}, serialize {})",
            self.name,
            s.recorded,
            r.total(),
            r.invalid_json,
            r.invalid_utf8,
            r.not_an_object,
            r.missing_field,
            r.invalid_field,
            r.too_large,
            r.serialize
        );
    }
}

/// serde_json's reading of accepted wire bytes, with the rules auditbuf adds to JSON.
fn strict(b: &[u8]) -> Value {
    assert!(!b.contains(&b'\n') && !b.contains(&b'\r'), "not one line");
    let mut de = serde_json::Deserializer::from_slice(b);
    let v = Strict::deserialize(&mut de)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)));
    de.end().unwrap();
    assert!(v.depth <= 126, "nested {} levels", v.depth);
    v.value
}

struct Strict {
    value: Value,
    depth: u32,
}

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

fn leaf(value: Value) -> Strict {
    Strict { value, depth: 0 }
}

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Strict;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(leaf(v.into()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(leaf(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(leaf(v.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Strict, E> {
        if v.abs() >= 1e308 {
            return Err(E::custom("number of 1e308 or more"));
        }
        Ok(leaf(v.into()))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Strict, E> {
        if v.contains('\0') {
            return Err(E::custom("U+0000"));
        }
        Ok(leaf(v.into()))
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(leaf(Value::Null))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let (mut items, mut depth) = (Vec::new(), 0);
        while let Some(v) = seq.next_element::<Strict>()? {
            depth = depth.max(v.depth);
            items.push(v.value);
        }
        Ok(Strict {
            value: Value::Array(items),
            depth: depth + 1,
        })
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let (mut out, mut depth) = (Map::new(), 0);
        let mut keys = HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            if k.contains('\0') || !keys.insert(k.clone()) {
                return Err(serde::de::Error::custom("U+0000 or duplicate key"));
            }
            let v = map.next_value::<Strict>()?;
            depth = depth.max(v.depth);
            out.insert(k, v.value);
        }
        Ok(Strict {
            value: Value::Object(out),
            depth: depth + 1,
        })
    }
}

fn corpus(suffix: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/events");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.ends_with(suffix) && (suffix != ".json" || !name.ends_with(".typed.json"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// Bytes worth splicing into JSON: the tokens the scanner decides on.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"\\u00e9",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"1e999",
    b"1e308",
    b"-0.5e-999",
    b"9",
    b"null",
    b"\"event_type\":\"x\",",
    b"\"version\":\"1\",",
    b"\"a\":1,",
    b"\xff",
    b"\xc3\xa9",
    b"\xed\xa0\x80",
    b" ",
    b"\n",
];

/// A corpus input with a few edits: tokens spliced in, bytes replaced or removed.
fn mutated(corpus: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let edit = (
        any::<prop::sample::Index>(),
        0..4u8,
        any::<u8>(),
        any::<prop::sample::Index>(),
    );
    (
        prop::sample::select(corpus),
        prop::collection::vec(edit, 0..4),
    )
        .prop_map(|(mut b, edits)| {
            for (at, kind, byte, token) in edits {
                let i = at.index(b.len() + 1);
                match kind {
                    0 => {
                        let t = TOKENS[token.index(TOKENS.len())];
                        b.splice(i..i, t.iter().copied());
                    }
                    1 if i < b.len() => b[i] = byte,
                    2 if i < b.len() => {
                        b.remove(i);
                    }
                    _ => b.insert(i.min(b.len()), byte),
                }
            }
            b
        })
}

#[test]
fn record_json_accepts_only_what_serde_json_reads_back() {
    let h = Harness::new("record_json");
    let mut inputs = corpus(".json");
    // Deep nesting around the limit.
    for depth in [125, 126, 127, 128] {
        inputs.push(
            format!(
                "{{\"a\":{}1{}}}",
                "[".repeat(depth - 1),
                "]".repeat(depth - 1)
            )
            .into_bytes(),
        );
    }
    runner()
        .run(&prop_oneof![mutated(inputs), arb_object_text()], |input| {
            if let Ok(wire) = h.outcome(|p| p.record_json(&input)) {
                {
                    let mut got = strict(&wire);
                    let sent: Value = serde_json::from_slice(&input).unwrap();
                    let (got, sent) = (got.as_object_mut().unwrap(), sent.as_object().unwrap());
                    for added in ["version", "event_timestamp"] {
                        if !sent.contains_key(added) {
                            assert!(got.remove(added).is_some_and(|v| v.is_string()));
                        }
                    }
                    prop_assert_eq!(&*got, sent);
                }
            }
            Ok(())
        })
        .unwrap();
    h.close();
}

fn arb_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => Just(Value::Null),
        3 => any::<bool>().prop_map(Value::Bool),
        3 => any::<i64>().prop_map(Value::from),
        3 => any::<f64>().prop_map(Value::from),
        1 => prop_oneof![Just(1e308), Just(-1.7e308), Just(9.9e307)].prop_map(Value::from),
        3 => any::<String>().prop_map(Value::String),
        1 => "[a-z\\x00]{0,3}".prop_map(Value::String),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    arb_leaf().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{0,3}|\\PC{0,4}|[a-z\\x00]{1,2}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects as text: generated values (some with a hundred keys, past the scanner's
/// linear search and its table), compact or pretty-printed.
fn arb_object_text() -> impl Strategy<Value = Vec<u8>> {
    let small = prop::collection::btree_map("\\PC{0,6}", arb_value(), 0..6);
    let wide = prop::collection::btree_map("k[0-9]{1,3}", arb_leaf(), 20..100);
    (prop_oneof![3 => small, 1 => wide], any::<bool>()).prop_map(|(m, pretty)| {
        let v = Value::Object(m.into_iter().collect());
        if pretty {
            serde_json::to_vec_pretty(&v).unwrap()
        } else {
            serde_json::to_vec(&v).unwrap()
        }
    })
}

#[test]
fn record_serialize_accepts_only_what_serde_json_reads_back() {
    let h = Harness::new("record_serialize");
    let objects = prop::collection::btree_map("\\PC{0,6}", arb_value(), 0..6)
        .prop_map(|m| Value::Object(m.into_iter().collect()));
    runner()
        .run(&prop_oneof![objects, arb_value()], |value| {
            if let Ok(wire) = h.outcome(|p| p.record_serialize(&value)) {
                let mut got = strict(&wire);
                let got = got.as_object_mut().unwrap();
                let sent = value.as_object().unwrap();
                for added in ["version", "event_timestamp"] {
                    if !sent.contains_key(added) {
                        got.remove(added);
                    }
                }
                // serde_json writes a non-finite float as null.
                let sent = serde_json::from_slice::<Value>(&serde_json::to_vec(&value).unwrap());
                prop_assert_eq!(Value::Object(got.clone()), sent.unwrap());
            }
            Ok(())
        })
        .unwrap();
    h.close();
}

/// A typed event's string fields, in `AuditEvent` order: the library's list without the
/// integer fields that end it.
const FIELDS: &[&str] = AuditEventBytes::FIELDS.split_at(19).0;
const REQUIRED: [usize; 5] = [1, 3, 4, 5, 6];

/// A typed event's string fields (in [`FIELDS`] order) and its `event_data` text.
type TypedInput = (Vec<Option<Vec<u8>>>, Option<Vec<u8>>);

/// Field values: each corpus event's, some replaced by arbitrary bytes or edge cases.
fn typed_events() -> impl Strategy<Value = TypedInput> {
    let events: Vec<TypedInput> = corpus(".typed.json")
        .iter()
        .map(|b| {
            let v: Value = serde_json::from_slice(b).unwrap();
            let get = |k: &str| v.get(k).map(|s| s.as_str().unwrap().as_bytes().to_vec());
            (
                FIELDS.iter().map(|f| get(f)).collect(),
                get("event_data_json"),
            )
        })
        .collect();
    let value = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..12),
        "\\PC{0,8}".prop_map(String::into_bytes),
        Just(b"2026-11-23T10:15:30.123+01:00".to_vec()),
        Just(b"2026-02-30T10:15:30Z".to_vec()),
        Just(b"018f3c9e-0000-7000-8000-000000000001".to_vec()),
        Just(vec![b'x'; 101]),
        Just("é".repeat(50).into_bytes()),
        Just(b"a\0b".to_vec()),
        Just(b"failure".to_vec()),
    ];
    let edits = prop::collection::vec((0..FIELDS.len() + 1, prop::option::of(value)), 0..3);
    let data = mutated(vec![
        b"{}".to_vec(),
        br#"{"event_type":"x","k":[1]}"#.to_vec(),
    ]);
    (prop::sample::select(events), edits, prop::option::of(data)).prop_map(
        |((mut fields, mut event_data), edits, data)| {
            for (i, v) in edits {
                match fields.get_mut(i) {
                    Some(f) => *f = v,
                    None => event_data = data.clone(),
                }
            }
            (fields, event_data)
        },
    )
}

/// What the typed rules promise of an accepted event, checked independently.
fn check_rules(v: &Map<String, Value>) {
    let chars = |k: &str| v[k].as_str().unwrap().chars().count();
    assert!((1..=20).contains(&chars("version")));
    assert!((1..=100).contains(&chars("event_type")));
    assert!((1..=50).contains(&chars("event_category")));
    assert!((1..=50).contains(&chars("event_action")));
    assert!((1..=255).contains(&chars("correlation_id")));
    assert!(["success", "failure", "pending"].contains(&v["event_outcome"].as_str().unwrap()));
    if v.contains_key("actor_ip") {
        assert!(chars("actor_ip") <= 45);
    }
    let ts = v["event_timestamp"].as_str().unwrap().as_bytes();
    assert!(
        ts.len() >= 20
            && ts[10] == b'T'
            && (ts.ends_with(b"Z") || ts[ts.len() - 6] == b'+' || ts[ts.len() - 6] == b'-')
    );
    assert_eq!(v["event_data"]["event_type"], v["event_type"]);
}

#[test]
fn typed_events_from_bytes_and_str_agree_and_read_back() {
    let h = Harness::new("record and record_event_bytes");
    runner()
        .run(&typed_events(), |(fields, event_data)| {
            let f = |i: usize| fields[i].as_deref();
            let req = |i: usize| f(i).unwrap_or(b"");
            let bytes = AuditEventBytes {
                version: f(0),
                event_timestamp: f(2),
                actor_type: f(7),
                actor_id: f(8),
                actor_ip: f(9),
                resource_type: f(10),
                resource_id: f(11),
                parent_event_id: f(12),
                parent_event_date: f(13),
                namespace: f(14),
                cluster_id: f(15),
                severity: f(16),
                error_code: f(17),
                error_message: f(18),
                duration_ms: Some(7),
                event_data: event_data.as_deref(),
                ..AuditEventBytes::new(req(1), req(3), req(4), req(5), req(6))
            };
            let from_bytes = h.outcome(|p| p.record_event_bytes(&bytes));
            let utf8 = fields
                .iter()
                .flatten()
                .chain(event_data.iter())
                .all(|b| std::str::from_utf8(b).is_ok());
            if !utf8 {
                prop_assert!(from_bytes.is_err());
                return Ok(());
            }
            let s = |i: usize| f(i).map(|b| std::str::from_utf8(b).unwrap());
            let rs = |i: usize| s(i).unwrap_or("");
            let text = event_data
                .as_deref()
                .map(|b| std::str::from_utf8(b).unwrap());
            let event = AuditEvent {
                version: s(0),
                event_timestamp: s(2),
                actor_type: s(7),
                actor_id: s(8),
                actor_ip: s(9),
                resource_type: s(10),
                resource_id: s(11),
                parent_event_id: s(12),
                parent_event_date: s(13),
                namespace: s(14),
                cluster_id: s(15),
                severity: s(16),
                error_code: s(17),
                error_message: s(18),
                duration_ms: Some(7),
                event_data: text.map_or(EventData::Empty, EventData::Json),
                ..AuditEvent::new(rs(1), rs(3), rs(4), rs(5), rs(6))
            };
            let from_str = h.outcome(|p| p.record(&event));
            match (&from_bytes, &from_str) {
                (Ok(a), Ok(b)) => {
                    // Equal but for a timestamp filled in at each call.
                    if f(2).is_some() {
                        prop_assert_eq!(a, b);
                    }
                    let got = strict(a);
                    let got = got.as_object().unwrap();
                    check_rules(got);
                    for (i, name) in FIELDS.iter().enumerate() {
                        if let Some(sent) = s(i) {
                            prop_assert_eq!(got[*name].as_str(), Some(sent));
                        }
                    }
                    if REQUIRED.iter().any(|&i| rs(i).is_empty()) {
                        prop_assert!(false, "accepted an empty required field");
                    }
                }
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                _ => prop_assert!(false, "bytes {:?} but str {:?}", from_bytes, from_str),
            }
            Ok(())
        })
        .unwrap();
    h.close();
}

const CONFIGS: &[&str] = &[
    r#"{"service":"gateway","queue_capacity":20000,"flush_interval_ms":250,"overflow":"block","block_timeout_ms":5}"#,
    r#"{"durability":"wal","queue_capacity":20000,"categories":["gateway","security"],"check_timestamp_window":true}"#,
    r#"{"retry":{"max_attempts":3,"max_elapsed_ms":1000,"backoff_base_ms":10,"backoff_cap_ms":100},"max_event_bytes":1024,"batch_max_bytes":65536}"#,
    r#"{"initial_slot_bytes":64,"retained_slot_bytes":128,"dead_letter_capacity":0,"drop_timeout_ms":10}"#,
];

const STORES: &[&str] = &[
    r#"{"type":"file","params":{"path":"/var/lib/audit","max_total_bytes":1073741824,"fsync":"always"}}"#,
    r#"{"type":"file","params":{"path":"/x","segment_bytes":4096,"fsync":"interval","fsync_interval_ms":250}}"#,
    r#"{"type":"memory","params":{"max_events":5,"max_bytes":4096,"dead_letters":0}}"#,
    r#"{"type":"sqlite","params":{"path":"/var/lib/app/audit.db","fsync":"never"}}"#,
    r#"{"type":"postgres","params":{"url":"postgres://u@h/db","table":"t","lease_ms":1500,"max_claims":3}}"#,
];

#[test]
fn configuration_readers_never_panic_and_name_a_field() {
    let texts = |seeds: &[&str]| mutated(seeds.iter().map(|s| s.as_bytes().to_vec()).collect());
    runner()
        .run(&texts(CONFIGS), |text| {
            let Ok(text) = String::from_utf8(text) else {
                return Ok(());
            };
            match Config::from_json(&text) {
                Ok(_) => {
                    // Accepted means one object, nothing after it.
                    let v = serde_json::from_str::<Value>(&text);
                    prop_assert!(v.is_ok_and(|v| v.is_object()), "{}", text);
                }
                Err(Error::Config(c)) => prop_assert!(!c.field.is_empty() && !c.reason.is_empty()),
                Err(other) => prop_assert!(false, "{}", other),
            }
            Ok(())
        })
        .unwrap();
    runner()
        .run(&texts(STORES), |text| {
            let Ok(text) = String::from_utf8(text) else {
                return Ok(());
            };
            match StoreConfig::from_json(&text) {
                Ok(StoreConfig::Memory(m)) => {
                    prop_assert!(StoreConfig::Memory(m).open().is_ok());
                }
                Ok(_) => prop_assert!(serde_json::from_str::<Value>(&text).is_ok(), "{}", text),
                Err(Error::Config(c)) => prop_assert!(!c.field.is_empty() && !c.reason.is_empty()),
                Err(other) => prop_assert!(false, "{}", other),
            }
            Ok(())
        })
        .unwrap();
}
