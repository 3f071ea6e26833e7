//! The common event, checked in one pass: a compact object of scalar members, some of them
//! objects of scalars themselves, like the `event_data`
//! `{"signal_name":"OOMKilled","fingerprint":"fp-abc123"}`, or a whole DataStorage event
//! given to `record_json` with its `event_data` inside.
//!
//! The general scanner ([`json`](super::json)) pays for what such an object never needs:
//! its per-thread stacks and key set, whitespace, arrays, deep nesting, keys that are not
//! plain ASCII (18 of the 40 ns it took for that 53-byte `event_data` went before the first
//! byte). This pass only ever says "accepted, and here is what the scanner would have
//! found" or "not sure": anything else, valid or not, goes to the general scanner, which
//! then decides and words the error. So it accepts a subset of what the scanner accepts,
//! with the same [`ObjectInfo`] (a property test checks both on generated and damaged
//! objects).

use super::json::{ObjectInfo, utf8_char_end};
use super::swar::{find, string_special};

/// Members of one object checked here at most; a bigger one goes to the general scanner.
const MEMBERS: usize = 16;

/// Bytes checked here at most: a longer event is likelier to hold what this pass leaves to
/// the scanner (arrays, deeper nesting) after it has been read this far for nothing.
const MAX_BYTES: usize = 768;
const _: () = assert!(MAX_BYTES <= u16::MAX as usize);

/// What the general scanner, allowed `max_depth` levels, would return for `b`, if `b` is a
/// compact object of at most 768 bytes and 16 members whose keys are plain ASCII and whose
/// values are strings, plain numbers (no exponent), `true`, `false`, `null` or (one level
/// down) such an object; `None` if it is anything else.
#[inline]
pub(crate) fn scan(b: &[u8], max_depth: u32) -> Option<ObjectInfo> {
    if b.first() != Some(&b'{') || b.len() > MAX_BYTES || max_depth == 0 {
        return None;
    }
    let mut info = ObjectInfo {
        close: b.len(),
        ..ObjectInfo::default()
    };
    let end = object_end::<true>(b, 0, max_depth >= 2, &mut info)?;
    (end == b.len()).then_some(info)
}

/// Just past the object that opens at `open`: the event's own (`TOP`, whose keys it notes
/// in `info`, and whose values may be objects when `nest`), or one of its values.
fn object_end<const TOP: bool>(
    b: &[u8],
    open: usize,
    nest: bool,
    info: &mut ObjectInfo,
) -> Option<usize> {
    if b.get(open + 1) == Some(&b'}') {
        if TOP {
            info.empty = true;
        }
        return Some(open + 2);
    }
    // Each key's content, to compare later keys with: without escapes, keys that mean the
    // same text are the same bytes.
    let mut keys = [(0u16, 0u16); MEMBERS];
    let mut i = open + 1;
    for n in 0..MEMBERS {
        // "key":
        if b.get(i) != Some(&b'"') {
            return None;
        }
        // Plain ASCII only: a key with escapes or other text goes to the scanner.
        let start = i + 1;
        let end = find(b, start, string_special);
        if b.get(end) != Some(&b'"') || b.get(end + 1) != Some(&b':') {
            return None;
        }
        let key = &b[start..end];
        if keys[..n]
            .iter()
            .any(|&(s, e)| b.get(s as usize..e as usize) == Some(key))
        {
            return None;
        }
        // Offsets fit: the whole event is at most `MAX_BYTES` long.
        keys[n] = (start as u16, end as u16);
        i = end + 2;
        // the value
        let value = i;
        i = match b.get(i)? {
            b'"' => string_end(b, i + 1)?,
            b't' => literal(b, i, b"true")?,
            b'f' => literal(b, i, b"false")?,
            b'n' => literal(b, i, b"null")?,
            b'{' if TOP && nest => object_end::<false>(b, i, false, info)?,
            _ => number_end(b, i)?,
        };
        if TOP {
            match key {
                b"version" => info.has_version = true,
                b"event_timestamp" => info.has_timestamp = true,
                b"event_type" => {
                    info.has_event_type = true;
                    info.event_type = (b[value] == b'"').then_some((value, i));
                }
                _ => {}
            }
        }
        // , or the closing brace
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => return Some(i + 1),
            _ => return None,
        }
    }
    None
}

/// Just past the closing quote of the string whose content starts at `i`, if it holds no
/// control characters, only valid UTF-8 and only valid escapes other than `\u0000`.
#[inline]
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = find(b, i, string_special);
        match b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i = plain_escape_end(b, i)?,
            0x80.. => i = utf8_char_end(b, i)?,
            _ => return None,
        }
    }
}

/// End of the escape at `i`: one of the two-character escapes, or `\u` with four hex digits
/// of a code point that is neither U+0000 nor a surrogate (a pair is left to the scanner).
fn plain_escape_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i + 1)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(i + 2),
        b'u' => {
            let unit = super::keys::hex4(b, i + 2)?;
            (unit != 0 && !(0xD800..=0xDFFF).contains(&unit)).then_some(i + 6)
        }
        _ => None,
    }
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    b[i..].starts_with(word).then_some(i + word.len())
}

/// Just past `-?(0|[1-9][0-9]*)(\.[0-9]+)?` at `i`, with at most 308 integer digits: a
/// number the scanner accepts without looking at its magnitude.
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let int = i;
    i = match b.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(i + 1),
        _ => return None,
    };
    if i - int > 308 {
        return None;
    }
    if b.get(i) == Some(&b'.') {
        let end = digits(i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    (!matches!(b.get(i), Some(b'e' | b'E'))).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::super::json::{MAX_DEPTH, scan_with_stacks};
    use super::*;
    use proptest::prelude::*;

    fn full(b: &[u8], max_depth: u32) -> Option<ObjectInfo> {
        scan_with_stacks(b, max_depth).ok()
    }

    #[test]
    fn common_events_are_taken_here_with_the_scanners_answer() {
        let line = r#"{"version":"1.0","event_type":"gateway.signal.received","event_timestamp":"2026-11-30T10:00:00.000Z","event_category":"gateway","event_action":"received","event_outcome":"success","correlation_id":"rr-2026-001","actor_id":"gateway","duration_ms":42,"event_data":{"event_type":"gateway.signal.received","signal_name":"OOMKilled","fingerprint":"fp-abc123"}}"#;
        for s in [
            r#"{}"#,
            r#"{"a":{}}"#,
            r#"{"signal_name":"OOMKilled","fingerprint":"fp-abc123"}"#,
            r#"{"event_type":"a.b","version":"1","event_timestamp":"t","n":-0.5,"z":0}"#,
            r#"{"a":true,"b":false,"c":null,"d":"x\"y\\z\u00e9\n","e":12345678901234567890}"#,
            r#"{"event_type":7}"#,
            r#"{"event_type":{"event_type":"x"}}"#,
            "{\"a\":\"z\u{e9}\u{1F600}\"}",
            line,
        ] {
            let b = s.as_bytes();
            assert!(scan(b, MAX_DEPTH).is_some(), "{s}");
            assert_eq!(scan(b, MAX_DEPTH), full(b, MAX_DEPTH), "{s}");
        }
    }

    #[test]
    fn anything_else_is_left_to_the_scanner() {
        let seventeen: Vec<String> = (0..17).map(|n| format!(r#""k{n}":{n}"#)).collect();
        let seventeen = format!("{{{}}}", seventeen.join(","));
        for s in [
            " {}",
            "{} ",
            r#"{"a": 1}"#,
            r#"{"a":[1]}"#,
            r#"{"a":{"b":{}}}"#,
            r#"{"a":{"b":[]}}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a":{"b":1,"b":2}}"#,
            r#"{"\u0061":1}"#,
            r#"{"a":1e3}"#,
            r#"{"a":01}"#,
            r#"{"a":"\u0000"}"#,
            r#"{"a":"\ud800\udc00"}"#,
            &seventeen,
            r#"{"a":1,}"#,
            "{\"a\":1\u{e9}}",
            "{\"\u{e9}\":1}",
            r#"{"a":tru}"#,
            r#"{"a":"x}"#,
            r#"{"a":{"b":1}"#,
            "{\"a\":\"\t\"}",
            "{",
            "",
        ] {
            assert_eq!(scan(s.as_bytes(), MAX_DEPTH), None, "{s}");
        }
        assert_eq!(scan(b"{\"a\":\"\xff\"}", MAX_DEPTH), None);
        assert_eq!(scan(b"{\"a\":\"\xe9t\xe9\"}", MAX_DEPTH), None);
        // Within the scanner's own depth limit only.
        assert_eq!(scan(br#"{"a":{}}"#, 1), None);
        assert_eq!(full(br#"{"a":{}}"#, 1), None);
        assert_eq!(scan(b"{}", 0), None);
        let mut many_digits = String::from(r#"{"a":1"#);
        many_digits.push_str(&"0".repeat(308));
        many_digits.push('}');
        assert_eq!(scan(many_digits.as_bytes(), MAX_DEPTH), None);
        let long = format!(r#"{{"a":"{}"}}"#, "x".repeat(800));
        assert!(full(long.as_bytes(), MAX_DEPTH).is_some());
        assert_eq!(scan(long.as_bytes(), MAX_DEPTH), None);
    }

    fn key() -> impl Strategy<Value = String> {
        let special = prop::sample::select(vec![
            "a",
            "version",
            "event_type",
            "event_timestamp",
            "fingerprint_long_key",
            r"\u0061",
            "\u{e9}",
        ]);
        prop_oneof![
            3 => (0..60u32).prop_map(|n| format!("k{n}")),
            1 => special.prop_map(String::from),
        ]
    }

    fn scalar() -> impl Strategy<Value = String> {
        let valid = prop::sample::select(vec![
            r#""x""#,
            r#""""#,
            r#""a\"b\\c\/\n\u00e9""#,
            r#""\ud83d\ude00""#,
            "\"\u{e9}t\u{e9}\"",
            "0",
            "-12.5",
            "1e5",
            "true",
            "false",
            "null",
            "{}",
            "[1]",
        ]);
        let invalid = prop::sample::select(vec![r#""\u0000""#, "01", "-", "1.", "nul", "1e999"]);
        prop_oneof![
            12 => valid.prop_map(String::from),
            1 => invalid.prop_map(String::from),
        ]
    }

    fn object(
        members: impl Strategy<Value = Vec<(String, String)>>,
    ) -> impl Strategy<Value = String> {
        members.prop_map(|members| {
            let body: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect();
            format!("{{{}}}", body.join(","))
        })
    }

    fn arb_event() -> impl Strategy<Value = Vec<u8>> {
        let inner = || object(prop::collection::vec((key(), scalar()), 0..18));
        let deeper = object(prop::collection::vec((key(), inner()), 0..2));
        let value = prop_oneof![
            6 => scalar(),
            2 => inner(),
            1 => deeper,
        ];
        object(prop::collection::vec((key(), value), 0..18)).prop_map(String::into_bytes)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Whatever this pass accepts, the scanner accepts with the same answer.
        #[test]
        fn agrees_with_the_scanner(b in arb_event(), cut in any::<prop::sample::Index>(),
                                   byte in any::<u8>(), damage in any::<bool>(),
                                   max_depth in prop::sample::select(vec![1, 2, 3, MAX_DEPTH])) {
            let mut b = b;
            if damage && byte % 2 == 0 && !b.is_empty() {
                let at = cut.index(b.len());
                b[at] = byte;
            }
            if let Some(info) = scan(&b, max_depth) {
                prop_assert_eq!(Some(info), full(&b, max_depth), "{}", String::from_utf8_lossy(&b));
            }
        }
    }
}
