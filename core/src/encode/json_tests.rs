//! Tests of the JSON scanner: the grammar, the added rules, and agreement with serde_json.

use super::*;
use proptest::prelude::*;
use serde::Deserialize;
fn ok(s: &str) -> ObjectInfo {
    scan_object(s.as_bytes(), MAX_DEPTH).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn invalid(b: &[u8]) -> Error {
    scan_object(b, MAX_DEPTH).expect_err("should be rejected")
}

#[test]
fn accepts_objects_and_finds_keys() {
    let info = ok(r#"  {"version":"1.0","event_type":"a.b","x":[1,{"event_type":2}]} "#);
    assert!(info.has_version && !info.has_timestamp && info.has_event_type);
    assert_eq!(info.open, 2);
    let (s, e) = info.event_type.unwrap();
    assert_eq!(
        &r#"  {"version":"1.0","event_type":"a.b","x":[1,{"event_type":2}]} "#[s..e],
        "\"a.b\""
    );
    assert!(ok("{}").empty);
    assert!(ok("{ \n }").empty);
    assert!(!ok(r#"{"a":1}"#).empty);
    assert!(ok("{\n\"a\":1\r\n}").has_line_breaks);
    assert!(!ok(r#"{"a":"x"}"#).has_line_breaks);
}

#[test]
fn keys_written_with_escapes_are_found_by_what_they_mean() {
    let b = r#"{"versio\u006e":"2.0","event_\u0074ype":"a.b","event_timestam\u0070":"t"}"#;
    let info = ok(b);
    assert!(
        info.has_version && info.has_timestamp && info.has_event_type,
        "{info:?}"
    );
    let (s, e) = info.event_type.unwrap();
    assert_eq!(&b[s..e], "\"a.b\"");
    // Longer than any key looked for, or another key, once decoded.
    let info = ok(r#"{"\u0076ersion_and_more_text":1,"versio\u006E2":2}"#);
    assert!(!info.has_version && !info.has_event_type, "{info:?}");
}

#[test]
fn nested_event_type_is_not_top_level() {
    let info = ok(r#"{"data":{"event_type":"x"}}"#);
    assert!(!info.has_event_type);
    let info = ok(r#"{"event_type":7}"#);
    assert!(info.has_event_type && info.event_type.is_none());
}

#[test]
fn accepts_every_json_feature() {
    ok(
        r#"{"s":"esc \" \\ \/ \b \f \n \r \t \u00e9 \ud83d\ude00","n":[0,-0,1.5,-2e10,3E+2,4e-3,123456789012345678901234567890],"l":[true,false,null],"u":"日本 ü 🎉"}"#,
    );
}

#[test]
fn rejects_non_objects_as_such() {
    for s in ["[1,2]", "\"s\"", "1", "true", "null", "  []  "] {
        assert!(matches!(invalid(s.as_bytes()), Error::NotAnObject), "{s}");
    }
}

#[test]
fn rejects_invalid_json_with_an_offset() {
    let cases: &[(&str, usize)] = &[
        ("", 0),
        ("{", 1),
        ("{\"a\"}", 4),
        ("{\"a\":}", 5),
        ("{\"a\":1,}", 7),
        ("{\"a\":1 \"b\":2}", 7),
        ("{\"a\":01}", 6),
        ("{\"a\":1.}", 7),
        ("{\"a\":1e}", 7),
        ("{\"a\":tru}", 5),
        ("{\"a\":\"x}", 8),
        ("{\"a\":\"\\x\"}", 6),
        ("{\"a\":\"\\u12\"}", 6),
        ("{\"a\":\"\\ud800\"}", 6),
        ("{\"a\":\"\\udc00\"}", 6),
        ("{\"a\":\"tab\there\"}", 9),
        ("{} {}", 3),
        ("{\"a\":[1,2}", 9),
        ("{'a':1}", 1),
    ];
    for &(s, at) in cases {
        match invalid(s.as_bytes()) {
            Error::InvalidJson { offset, .. } => assert_eq!(offset as usize, at, "{s:?}"),
            other => panic!("{s:?}: {other:?}"),
        }
    }
}

#[test]
fn rejects_bad_utf8_as_such() {
    for (b, at) in [
        (&b"{\"a\":\"\xff\"}"[..], 6),
        (b"{\"a\":\"\xc3\"}", 6),
        (b"{\"a\":\"\xed\xa0\x80\"}", 6),
        (b"{\"a\":\"\xe0\x80\x80\"}", 6),
        (b"{\"a\":1}\xff", 7),
        (b"\xfe", 0),
    ] {
        match invalid(b) {
            Error::InvalidUtf8 { offset } => assert_eq!(offset, at, "{b:?}"),
            other => panic!("{b:?}: {other:?}"),
        }
    }
}

#[test]
fn nesting_is_bounded() {
    let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n));
    ok(&deep(MAX_DEPTH as usize - 1));
    assert!(matches!(
        invalid(deep(MAX_DEPTH as usize).as_bytes()),
        Error::InvalidJson {
            reason: TOO_DEEP,
            ..
        }
    ));
    // serde_json refuses 128 levels; a batch (a JSON array) adds one.
    assert!(scan_object(deep(127).as_bytes(), MAX_DEPTH).is_err());
    // event_data is one level down in its event.
    assert!(scan_object(deep(125).as_bytes(), MAX_DEPTH - 1).is_err());
    assert!(scan_object(deep(124).as_bytes(), MAX_DEPTH - 1).is_ok());
    // Far deeper input is rejected early, not recursed into.
    assert!(scan_object(deep(1_000_000).as_bytes(), MAX_DEPTH).is_err());
}

fn rejected_at(s: &str) -> (usize, &'static str) {
    match invalid(s.as_bytes()) {
        Error::InvalidJson { offset, reason, .. } => (offset as usize, reason),
        other => panic!("{s:?}: {other:?}"),
    }
}

#[test]
fn duplicate_keys_are_refused_at_every_level() {
    for (s, at) in [
        (r#"{"a":1,"a":2}"#, 7),
        (r#"{"event_type":"x","event_type":"y"}"#, 18),
        (r#"{"event_timestamp":"t","a":0,"event_timestamp":"u"}"#, 29),
        (r#"{"a":1,"\u0061":2}"#, 7),
        (r#"{"\n":1,"\u000a":2}"#, 8),
        (r#"{"o":{"k":1,"k":2}}"#, 12),
        (r#"{"k":{"x":1},"k":2}"#, 13),
        (r#"[{"k":1},{"k":[{"a":0,"b":0,"a":0}]}]"#, 28),
    ] {
        assert_eq!(rejected_at(s), (at, "duplicate key in an object"), "{s}");
    }
    for s in [
        r#"{"k":{"k":1}}"#,
        r#"{"k":{"x":1},"x":2}"#,
        r#"{"a":[{"k":1},{"k":1}],"b":{"k":1}}"#,
        r#"{"a":1,"A":2,"a ":3,"\u0062":4}"#,
    ] {
        ok(s);
    }
}

#[test]
fn objects_of_a_dozen_keys_are_checked_through_the_table() {
    // Past the linear search (24 keys) but within the table (64 open keys): inner objects
    // may repeat outer keys, closed objects are forgotten, duplicates are found.
    let mut s = String::from("{");
    for i in 0..40 {
        s.push_str(&format!(r#""k{i}":{{"k{i}":1,"y":2,"x":{{"k1":3}}}},"#));
    }
    let ok_text = format!(r#"{s}"last":0}}"#);
    ok(&ok_text);
    for dup in [0, 23, 24, 39] {
        let text = format!(r#"{s}"k{dup}":0}}"#);
        let (offset, reason) = rejected_at(&text);
        assert_eq!(reason, "duplicate key in an object");
        assert_eq!(offset, s.len(), "{dup}");
    }
    let inner = format!(r#"{s}"o":{{"a":1,"b":2,"a":3}}}}"#);
    assert_eq!(rejected_at(&inner).0, s.len() + 17);
}

#[test]
fn a_scan_starts_clean_after_one_that_stopped_midway() {
    // The key set and stacks are kept per thread: a scan that built the key table and
    // stopped at an error, deep inside objects, must leave nothing the next scan sees.
    let mut wide = String::from(r#"{"o":{"p":{"#);
    for i in 0..40 {
        wide.push_str(&format!(r#""k{i}":1,"#));
    }
    wide.push_str(r#""k7":2}}}"#);
    assert_eq!(rejected_at(&wide).1, "duplicate key in an object");
    ok(r#"{"k1":1,"k2":{"k1":2},"o":{"p":{}}}"#);
    assert_eq!(
        rejected_at(r#"{"a":1,"a":2}"#),
        (7, "duplicate key in an object")
    );
    let truncated = &wide.as_bytes()[..wide.len() / 2];
    invalid(truncated);
    ok(r#"{"k0":[{"k0":0}],"k1":1}"#);
}

#[test]
fn events_with_many_keys_are_checked_exactly() {
    let wide = |n: usize, dup: Option<usize>| {
        let mut s = String::from(r#"{"data":{"#);
        for i in 0..n {
            s.push_str(&format!(r#""key_{i}":{{"key_{i}":[]}},"#));
        }
        if let Some(d) = dup {
            s.push_str(&format!(r#""key_{d}":0,"#));
        }
        s.push_str(r#""last":0}}"#);
        s
    };
    ok(&wide(LIVE_KEYS * 3, None));
    for dup in [0, LIVE_KEYS - 1, LIVE_KEYS, LIVE_KEYS * 3 - 1] {
        let s = wide(LIVE_KEYS * 3, Some(dup));
        let (offset, reason) = rejected_at(&s);
        assert_eq!(reason, "duplicate key in an object");
        assert!(
            s[offset..].starts_with(&format!(r#""key_{dup}":0"#)),
            "{dup}"
        );
    }
}

#[test]
fn numbers_beyond_double_range_are_refused() {
    let big = format!("1{}", "0".repeat(308));
    for n in [
        "1e999",
        "-1e999",
        "1e308",
        "1E+308",
        "1.7976931348623157e308",
        "0.1e310",
        "1000e306",
        "0.00001e313",
        "1e99999999999999999999",
        &big,
    ] {
        let (offset, reason) = rejected_at(&format!(r#"{{"n":{n}}}"#));
        assert_eq!(
            (offset, reason),
            (5, "number of magnitude 1e308 or more"),
            "{n}"
        );
    }
    let fine = format!("9{}", "9".repeat(307));
    for n in [
        "1e307",
        "9.999e307",
        "-9.999e307",
        "1e-999",
        "0e999",
        "0.000e400",
        "100e-2",
        "0.001e310",
        "1e-99999999999999999999",
        "123456789012345678901234567890",
        &fine,
    ] {
        let text = format!(r#"{{"n":{n}}}"#);
        ok(&text);
        serde_json::from_str::<serde_json::Value>(&text).unwrap();
    }
}

#[test]
fn nul_is_refused_in_keys_and_values() {
    for (s, at) in [(r#"{"a":"x\u0000"}"#, 7), (r#"{"\u0000":1}"#, 2)] {
        assert_eq!(
            rejected_at(s),
            (at, "\\u0000 in a string (Postgres cannot store it)"),
            "{s}"
        );
    }
    // An escaped backslash followed by the text u0000 is no NUL.
    ok(r#"{"a":"\\u0000"}"#);
}

/// serde_json's verdict, with the rules this scanner adds to JSON: Some(true) for a
/// valid object, Some(false) for a valid non-object, None for anything refused.
fn serde_accepts_object(b: &[u8]) -> Option<bool> {
    let mut de = serde_json::Deserializer::from_slice(b);
    let v = Strict::deserialize(&mut de).ok()?;
    de.end().ok()?;
    (v.depth <= MAX_DEPTH).then_some(v.is_object)
}

/// A value read by serde_json that refuses duplicate keys, `\u0000` and numbers of
/// magnitude 1e308 or more, and measures its nesting.
struct Strict {
    is_object: bool,
    depth: u32,
}

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

const LEAF: Strict = Strict {
    is_object: false,
    depth: 0,
};

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(LEAF)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
        Ok(LEAF)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
        Ok(LEAF)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Strict, E> {
        if v.abs() >= 1e308 {
            return Err(E::custom("too large"));
        }
        Ok(LEAF)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Strict, E> {
        if v.contains('\0') {
            return Err(E::custom("nul"));
        }
        Ok(LEAF)
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(LEAF)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut depth = 0;
        while let Some(v) = seq.next_element::<Strict>()? {
            depth = depth.max(v.depth);
        }
        Ok(Strict {
            is_object: false,
            depth: depth + 1,
        })
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut keys = std::collections::HashSet::new();
        let mut depth = 0;
        while let Some(k) = map.next_key::<String>()? {
            if k.contains('\0') || !keys.insert(k) {
                return Err(serde::de::Error::custom("nul or duplicate key"));
            }
            depth = depth.max(map.next_value::<Strict>()?.depth);
        }
        Ok(Strict {
            is_object: true,
            depth: depth + 1,
        })
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::json!(f)),
        any::<String>().prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..8)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn agrees_with_serde_json_on_generated_values(v in arb_json(), pretty in any::<bool>()) {
        let text = if pretty { serde_json::to_vec_pretty(&v) } else { serde_json::to_vec(&v) }.unwrap();
        let ours = scan_object(&text, MAX_DEPTH);
        match serde_accepts_object(&text) {
            Some(true) => prop_assert!(ours.is_ok(), "{:?}", ours),
            Some(false) => prop_assert!(matches!(ours, Err(Error::NotAnObject))),
            // Strings with U+0000 or numbers of 1e308 and more.
            None => prop_assert!(ours.is_err(), "accepted {:?}", String::from_utf8_lossy(&text)),
        }
    }

    #[test]
    fn agrees_with_serde_json_on_mutated_bytes(
        v in arb_json(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut text = serde_json::to_vec(&serde_json::json!({"k": v})).unwrap();
        for (at, byte) in edits {
            let i = at.index(text.len());
            text[i] = byte;
        }
        let ours = scan_object(&text, MAX_DEPTH);
        match serde_accepts_object(&text) {
            Some(true) => prop_assert!(ours.is_ok(), "{:?} on {:?}", ours, String::from_utf8_lossy(&text)),
            Some(false) => prop_assert!(matches!(ours, Err(Error::NotAnObject))),
            None => prop_assert!(ours.is_err(), "accepted {:?}", String::from_utf8_lossy(&text)),
        }
    }

    #[test]
    fn random_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = scan_object(&b, MAX_DEPTH);
    }
}
