//! The common event, checked in one pass: compact JSON nested a few levels, like the
//! `event_data` `{"signal_name":"OOMKilled","fingerprint":"fp-abc123"}`, or a whole
//! DataStorage event given to `record_json` with its `event_data` inside.
//!
//! The general scanner ([`json`](super::json)) pays for what such an event never needs:
//! per-thread stacks and a key set that scale to any nesting and any number of keys,
//! whitespace, and keys that are not plain ASCII (18 of the 40 ns it took for that 53-byte
//! `event_data` went before the first byte). This pass recurses instead, at most
//! [`LEVELS`] deep, and compares an object's keys with each other directly, at most
//! [`MEMBERS`] of them. It only ever says "accepted, and here is what the scanner would
//! have found" or "not sure": anything else, valid or not, goes to the general scanner,
//! which then decides and words the error. So it accepts a subset of what the scanner
//! accepts, with the same [`ObjectInfo`] (a property test checks both on generated and
//! damaged events), and the rules it shares with the scanner (numbers, escapes, literals,
//! the top-level keys) are the scanner's own functions.

use super::json::{ObjectInfo, escape_end, literal_end, number_end, utf8_char_end};
use super::swar::{StringSpecial, find, prefix_word};

/// Members of one object checked here at most; a bigger one goes to the general scanner.
const MEMBERS: usize = 16;

/// An odd constant whose product with a key's word spreads it over the top six bits
/// (Fibonacci hashing: 2^64 divided by the golden ratio).
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

/// Containers open at once here at most, the event's own object included.
const LEVELS: u32 = 4;

/// Bytes checked here at most: an event this pass gives up on late (a 17th key, a fifth
/// level) has been read that far for nothing before the scanner starts again.
const MAX_BYTES: usize = 2048;
const _: () = assert!(MAX_BYTES <= u16::MAX as usize);

/// [`scan_into`], handing the result back (for tests).
#[cfg(test)]
pub(crate) fn scan(b: &[u8], max_depth: u32) -> Option<ObjectInfo> {
    let mut info = ObjectInfo::default();
    scan_into(b, max_depth, &mut info).then_some(info)
}

/// Whether `b` is a compact object (whitespace only around it) of at most 2 KiB, nested at
/// most 4 levels, whose objects have at most 16 members with plain ASCII keys, that the
/// general scanner, allowed `max_depth` levels, accepts; if so `info` holds what that
/// scanner would return (otherwise it is left in an unspecified state).
///
/// The caller reads the fields where the scan wrote them: moving a freshly written
/// `ObjectInfo` copied it with 16-byte loads over the scan's 1- and 8-byte stores, which
/// the CPU cannot forward (a third of the event_data check's samples in `perf annotate`);
/// writing it in place took the capture, timed alone, from 108–113 to 95.5 ns.
#[inline]
pub(crate) fn scan_into(b: &[u8], max_depth: u32, info: &mut ObjectInfo) -> bool {
    if b.len() > MAX_BYTES || max_depth == 0 {
        return false;
    }
    if b.first() == Some(&b'{') && b.last() == Some(&b'}') {
        // Nothing around the object, as usual: spares the looks for whitespace below.
        *info = ObjectInfo {
            close: b.len(),
            ..ObjectInfo::default()
        };
        return object_end::<true>(b, 0, max_depth.min(LEVELS), info) == Some(b.len());
    }
    // Whitespace around the object, as in a JSON line ending in `\n`: the scanner allows
    // it, and giving up only at the end would cost a whole second scan.
    let Some(open) = b.iter().position(|&c| !is_space(c)) else {
        return false;
    };
    let Some(close) = b.iter().rposition(|&c| !is_space(c)).map(|i| i + 1) else {
        return false;
    };
    if b[open] != b'{' {
        return false;
    }
    *info = ObjectInfo {
        open,
        close,
        has_line_breaks: b[..open]
            .iter()
            .chain(&b[close..])
            .any(|&c| c == b'\n' || c == b'\r'),
        ..ObjectInfo::default()
    };
    object_end::<true>(b, open, max_depth.min(LEVELS), info) == Some(close)
}

/// JSON's whitespace (RFC 8259, section 2).
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// Just past the value at `i`, which may open containers `levels` deep.
fn value_end(b: &[u8], i: usize, levels: u32, info: &mut ObjectInfo) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i + 1),
        b't' => literal_end(b, i, b"true"),
        b'f' => literal_end(b, i, b"false"),
        b'n' => literal_end(b, i, b"null"),
        b'{' if levels > 0 => object_end::<false>(b, i, levels, info),
        b'[' if levels > 0 => array_end(b, i, levels, info),
        _ => number_end(b, i).ok(),
    }
}

/// Just past the array that opens at `open`, itself one of `levels` levels.
fn array_end(b: &[u8], open: usize, levels: u32, info: &mut ObjectInfo) -> Option<usize> {
    if b.get(open + 1) == Some(&b']') {
        return Some(open + 2);
    }
    let mut i = open + 1;
    loop {
        i = value_end(b, i, levels - 1, info)?;
        match b.get(i)? {
            b',' => i += 1,
            b']' => return Some(i + 1),
            _ => return None,
        }
    }
}

/// Just past the object that opens at `open`, itself one of `levels` levels: the event's
/// own (`TOP`, whose keys it notes in `info`) or one inside it.
///
/// Never inlined: when a change elsewhere in the crate (to the caller's `event_data`
/// check in `capture.rs`) let the compiler inline the event's own object into [`scan`],
/// checking the 300-byte DataStorage line took 7 % longer (138 -> 147 ns).
#[inline(never)]
fn object_end<const TOP: bool>(
    b: &[u8],
    open: usize,
    levels: u32,
    info: &mut ObjectInfo,
) -> Option<usize> {
    if b.get(open + 1) == Some(&b'}') {
        if TOP {
            info.empty = true;
        }
        return Some(open + 2);
    }
    // Each key's content, to compare later keys with: without escapes, keys that mean the
    // same text are the same bytes. Compared only when a bit chosen by the key's length
    // and first eight bytes was set by an earlier key. Comparing every pair of equal
    // length called `memcmp` for each: the filter took `record_json` of the 300 B line
    // from 2 864 to 2 708 instructions, and of the 1 KiB event from 9 863 to 9 536.
    let mut keys = [(0u16, 0u16); MEMBERS];
    let mut seen = 0u64;
    let mut i = open + 1;
    for n in 0..MEMBERS {
        // A key with escapes or other than ASCII text goes to the scanner, which compares
        // what keys mean.
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let start = i + 1;
        let end = find(b, start, StringSpecial);
        if b.get(end) != Some(&b'"') || b.get(end + 1) != Some(&b':') {
            return None;
        }
        let key = &b[start..end];
        let bit = 1 << ((prefix_word(key) ^ key.len() as u64).wrapping_mul(SPREAD) >> 58);
        if seen & bit != 0
            && keys[..n]
                .iter()
                .any(|&(s, e)| b.get(usize::from(s)..usize::from(e)) == Some(key))
        {
            return None;
        }
        seen |= bit;
        // Offsets fit: the whole event is at most `MAX_BYTES` long.
        keys[n] = (start as u16, end as u16);
        let is_event_type = TOP && info.note_key(key);
        let value = end + 2;
        // Strings and numbers, most values, without a call.
        i = match b.get(value)? {
            b'"' => string_end(b, value + 1)?,
            b'-' | b'0'..=b'9' => number_end(b, value).ok()?,
            _ => value_end(b, value, levels - 1, info)?,
        };
        if is_event_type && b[value] == b'"' {
            info.event_type = Some((value, i));
        }
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => return Some(i + 1),
            _ => return None,
        }
    }
    None
}

/// Just past the closing quote of the string whose content starts at `i`, if it holds no
/// control characters and only valid UTF-8 and escapes.
#[inline(always)]
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = find(b, i, StringSpecial);
        match b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i = escape_end(b, i).ok()?,
            0x80.. => i = utf8_char_end(b, i)?,
            _ => return None,
        }
    }
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
        let sixteen: Vec<String> = (0..16).map(|n| format!(r#""k{n}":{n}"#)).collect();
        let sixteen = format!("{{{}}}", sixteen.join(","));
        let line = r#"{"version":"1.0","event_type":"gateway.signal.received","event_timestamp":"2026-11-30T10:00:00.000Z","event_category":"gateway","event_action":"received","event_outcome":"success","correlation_id":"rr-2026-001","actor_id":"gateway","duration_ms":42,"event_data":{"event_type":"gateway.signal.received","signal_name":"OOMKilled","fingerprint":"fp-abc123"}}"#;
        for s in [
            r#"{}"#,
            r#"{"a":{}}"#,
            r#"{"signal_name":"OOMKilled","fingerprint":"fp-abc123"}"#,
            r#"{"event_type":"a.b","version":"1","event_timestamp":"t","n":-0.5,"z":0}"#,
            r#"{"a":true,"b":false,"c":null,"d":"x\"y\\z\u00e9\n","e":12345678901234567890}"#,
            r#"{"event_type":7}"#,
            r#"{"event_type":{"event_type":"x"}}"#,
            "{\"a\":\"z\u{e9}\u{1F600}\u{7f}\"}",
            r#"{"a":"\ud83d\ude00\u00E9","b":-0,"c":1E5,"d":-1.5e-7}"#,
            r#"{"a":[1],"b":[],"c":{"d":{}},"e":{"f":[]},"g":[[[]]],"h":[{"i":[1,"x",null]},{}]}"#,
            r#"{"changes":[{"field":"a","old":"v \"1\"","new":"w"},{"field":"b","old":"","new":"x"}]}"#,
            line,
            " {}",
            "{}\n",
            "\r\n {\"a\":1}\t \n",
            &sixteen,
            r#"{"a":[{"b":[1]}],"c":{"d":{"e":[]}}}"#,
            // Keys alike in their first eight bytes, or in length.
            r#"{"abcdefghij":1,"abcdefghik":2,"abcdefgh":3,"abcdefghi":4,"abcdefgi":5}"#,
            r#"{"ab":1,"ba":2,"a":3,"b":4,"":5}"#,
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
            " ",
            " x{}",
            "{}x",
            "{} \u{b}",
            r#"{"a": 1}"#,
            r#"{"a":[[[[]]]]}"#,
            r#"{"a":{"b":{"c":{"d":{}}}}}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[,1]}"#,
            r#"{"a":[1 ]}"#,
            r#"{"a":[1}"#,
            r#"{"a":{"b":1]}"#,
            r#"{"a":[{"b":1,"b":2}]}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"abcdefghij":1,"abcdefghik":2,"abcdefghij":3}"#,
            r#"{"abcdefgh":1,"x":2,"abcdefgh":3}"#,
            r#"{"":1,"":2}"#,
            r#"{"a":{"b":1,"b":2}}"#,
            r#"{"\u0061":1}"#,
            r#"{"a":01}"#,
            r#"{"a":"\u0000"}"#,
            r#"{"a":"\ud800"}"#,
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
        // Starting with `{` and ending with `}` is not one object: text after the first
        // object is refused here and by the scanner.
        for s in [r#"{}}"#, r#"{} {}"#, r#"{"a":1}{"b":2}"#, r#"{"a":"}"}}"#] {
            assert_eq!(scan(s.as_bytes(), MAX_DEPTH), None, "{s}");
            assert_eq!(full(s.as_bytes(), MAX_DEPTH), None, "{s}");
        }
        assert_eq!(scan(b"{\"a\":\"\xff\"}", MAX_DEPTH), None);
        assert_eq!(scan(b"{\"a\":\"\xe9t\xe9\"}", MAX_DEPTH), None);
        // Within the scanner's own depth limit only.
        assert_eq!(scan(br#"{"a":{}}"#, 1), None);
        assert_eq!(full(br#"{"a":{}}"#, 1), None);
        assert_eq!(scan(b"{}", 0), None);
        let nested = br#"{"a":{"b":1}}"#;
        assert_eq!(scan(nested, 2), full(nested, 2));
        assert!(scan(nested, 2).is_some());
        let mut many_digits = String::from(r#"{"a":1"#);
        many_digits.push_str(&"0".repeat(308));
        many_digits.push('}');
        assert_eq!(scan(many_digits.as_bytes(), MAX_DEPTH), None);
        // One digit fewer is below 1e308: both accept it.
        let below = many_digits.replacen("10", "1", 1);
        assert!(scan(below.as_bytes(), MAX_DEPTH).is_some());
        assert_eq!(
            scan(below.as_bytes(), MAX_DEPTH),
            full(below.as_bytes(), MAX_DEPTH)
        );
        // Four levels exactly, at the scanner's limit and past it.
        let four = br#"{"a":[{"b":[]}]}"#;
        assert_eq!(scan(four, 4), full(four, 4));
        assert!(scan(four, 4).is_some());
        assert_eq!(scan(four, 3), None);
        assert_eq!(full(four, 3), None);
        let deep = br#"{"a":[[1]]}"#;
        assert_eq!(scan(deep, 2), None);
        assert_eq!(full(deep, 2), None);
        assert!(scan(deep, 3).is_some());
        assert_eq!(scan(deep, 3), full(deep, 3));
        let long = format!(r#"{{"a":"{}"}}"#, "x".repeat(2100));
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
            6 => (0..200u32).prop_map(|n| format!("k{n}")),
            1 => special.prop_map(String::from),
        ]
    }

    fn scalar() -> impl Strategy<Value = String> {
        let big = |digits: usize| format!("1{}", "0".repeat(digits - 1));
        let valid: Vec<String> = [
            r#""x""#,
            r#""""#,
            r#""a\"b\\c\/\n\u00e9\u00E9""#,
            r#""\ud83d\ude00""#,
            "\"\u{e9}t\u{1F600}\u{7f}\"",
            "0",
            "-0",
            "-12.5",
            "1e5",
            "true",
            "false",
            "null",
            "{}",
            "[1]",
        ]
        .into_iter()
        .map(String::from)
        .chain([big(308), big(309)])
        .collect();
        let invalid = prop::sample::select(vec![r#""\u0000""#, "01", "-", "1.", "nul", "1e999"]);
        prop_oneof![
            40 => prop::sample::select(valid),
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
        // Values nested up to six levels: past the pass's four and the scanner's small limits.
        let value = scalar().prop_recursive(5, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                object(prop::collection::vec((key(), inner), 0..18)),
            ]
        });
        let space = || prop::sample::select(vec!["", "", " ", "\n", "\r\n\t"]);
        (
            space(),
            object(prop::collection::vec((key(), value), 0..18)),
            space(),
        )
            .prop_map(|(before, event, after)| format!("{before}{event}{after}").into_bytes())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Whatever this pass accepts, the scanner accepts with the same answer.
        #[test]
        fn agrees_with_the_scanner(b in arb_event(), cut in any::<prop::sample::Index>(),
                                   byte in any::<u8>(), damage in 0..3u8,
                                   max_depth in prop::sample::select(vec![0, 1, 2, 3, 4, 5, MAX_DEPTH, MAX_DEPTH, MAX_DEPTH])) {
            let mut b = b;
            // One event in three damaged, at any byte, to any value.
            if damage == 0 && !b.is_empty() {
                let at = cut.index(b.len());
                b[at] = byte;
            }
            if let Some(info) = scan(&b, max_depth) {
                prop_assert_eq!(Some(info), full(&b, max_depth), "{}", String::from_utf8_lossy(&b));
            }
        }
    }
}
