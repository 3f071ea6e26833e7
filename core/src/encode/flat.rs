//! The common `event_data`, checked in one pass: a compact ASCII object of a few scalar
//! members, like `{"signal_name":"OOMKilled","fingerprint":"fp-abc123"}`.
//!
//! The general scanner ([`json`](super::json)) pays for what such an object never needs:
//! its per-thread stacks and key set, whitespace, nesting, UTF-8 checks and escaped keys
//! (18 of the 40 ns it took for that 53-byte object went before the first byte). This pass
//! only ever says "accepted, and here is what the scanner would have found" or "not sure":
//! anything else, valid or not, goes to the general scanner, which then decides and words
//! the error. So it accepts a subset of what the scanner accepts, with the same
//! [`ObjectInfo`] (a property test checks both on generated and damaged objects).

use super::json::ObjectInfo;
use super::swar::{find, string_special};

/// Members checked here at most; a bigger object goes to the general scanner.
const MEMBERS: usize = 8;

/// Bytes checked here at most: a whole event given to `record_json` (300 bytes and more,
/// with a nested `event_data`) would be read this far for nothing.
const MAX_BYTES: usize = 256;

/// What the general scanner would return for `b`, if `b` is a compact ASCII object of at
/// most 8 members and 256 bytes whose keys have no escapes and whose values are strings,
/// plain numbers (no exponent), `true`, `false` or `null`; `None` if it is anything else.
#[inline]
pub(crate) fn scan(b: &[u8]) -> Option<ObjectInfo> {
    if b.first() != Some(&b'{') || b.len() > MAX_BYTES {
        return None;
    }
    let mut info = ObjectInfo {
        close: b.len(),
        ..ObjectInfo::default()
    };
    if b == b"{}" {
        info.empty = true;
        return Some(info);
    }
    // Each key's content, to compare later keys with: without escapes, keys that mean the
    // same text are the same bytes.
    let mut keys = [(0u32, 0u32); MEMBERS];
    let mut i = 1;
    for n in 0..MEMBERS {
        // "key":
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let start = i + 1;
        let end = find(b, start, string_special);
        if b.get(end) != Some(&b'"') || b.get(end + 1) != Some(&b':') {
            return None;
        }
        let key = &b[start..end];
        let seen = &keys[..n];
        if seen
            .iter()
            .any(|&(s, e)| b.get(s as usize..e as usize) == Some(key))
        {
            return None;
        }
        keys[n] = (u32::try_from(start).ok()?, u32::try_from(end).ok()?);
        i = end + 2;
        // the value
        let value = i;
        i = match b.get(i)? {
            b'"' => string_end(b, i + 1)?,
            b't' => literal(b, i, b"true")?,
            b'f' => literal(b, i, b"false")?,
            b'n' => literal(b, i, b"null")?,
            _ => number_end(b, i)?,
        };
        match key {
            b"version" => info.has_version = true,
            b"event_timestamp" => info.has_timestamp = true,
            b"event_type" => {
                info.has_event_type = true;
                info.event_type = (b[value] == b'"').then_some((value, i));
            }
            _ => {}
        }
        // , or the closing brace, last
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') if i + 1 == b.len() => return Some(info),
            _ => return None,
        }
    }
    None
}

/// Just past the closing quote of the string whose content starts at `i`, if it holds
/// nothing but printable ASCII and valid escapes other than `\u0000`.
#[inline]
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        // Stops at non-ASCII bytes too: their UTF-8 is left to the scanner.
        i = find(b, i, string_special);
        match b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i = plain_escape_end(b, i)?,
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

    fn full(b: &[u8]) -> Option<ObjectInfo> {
        scan_with_stacks(b, MAX_DEPTH).ok()
    }

    #[test]
    fn common_event_data_is_taken_here_with_the_scanners_answer() {
        for s in [
            r#"{}"#,
            r#"{"signal_name":"OOMKilled","fingerprint":"fp-abc123"}"#,
            r#"{"event_type":"a.b","version":"1","event_timestamp":"t","n":-0.5,"z":0}"#,
            r#"{"a":true,"b":false,"c":null,"d":"x\"y\\z\u00e9\n","e":12345678901234567890}"#,
            r#"{"event_type":7}"#,
        ] {
            let b = s.as_bytes();
            assert!(scan(b).is_some(), "{s}");
            assert_eq!(scan(b), full(b), "{s}");
        }
    }

    #[test]
    fn anything_else_is_left_to_the_scanner() {
        for s in [
            " {}",
            "{} ",
            r#"{"a": 1}"#,
            r#"{"a":{}}"#,
            r#"{"a":[1]}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"\u0061":1}"#,
            r#"{"a":1e3}"#,
            r#"{"a":01}"#,
            r#"{"a":"\u0000"}"#,
            r#"{"a":"\ud800\udc00"}"#,
            "{\"a\":\"\u{e9}\"}",
            r#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9}"#,
            r#"{"a":1,}"#,
            "{\"\u{e9}\":1}",
            "{\"a\":1\u{e9}}",
            r#"{"a":tru}"#,
            r#"{"a":"x}"#,
            "{\"a\":\"\t\"}",
            "{",
            "",
        ] {
            assert_eq!(scan(s.as_bytes()), None, "{s}");
        }
        let mut many_digits = String::from(r#"{"a":1"#);
        many_digits.push_str(&"0".repeat(308));
        many_digits.push('}');
        assert_eq!(scan(many_digits.as_bytes()), None);
        let long = format!(r#"{{"a":"{}"}}"#, "x".repeat(250));
        assert!(full(long.as_bytes()).is_some());
        assert_eq!(scan(long.as_bytes()), None);
    }

    fn arb_flat() -> impl Strategy<Value = Vec<u8>> {
        let key = prop::sample::select(vec![
            "a",
            "b",
            "version",
            "event_type",
            "event_timestamp",
            "fingerprint_long_key",
            r"\u0061",
            "\u{e9}",
        ]);
        let value = prop::sample::select(vec![
            r#""x""#,
            r#""""#,
            r#""a\"b\\c\/\n\u00e9""#,
            r#""\u0000""#,
            r#""\ud83d\ude00""#,
            "\"\u{e9}t\u{e9}\"",
            "0",
            "-12.5",
            "1e5",
            "01",
            "-",
            "1.",
            "true",
            "false",
            "null",
            "nul",
            "{}",
            "[1]",
        ]);
        prop::collection::vec((key, value), 0..10).prop_map(|members| {
            let body: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect();
            format!("{{{}}}", body.join(",")).into_bytes()
        })
    }

    proptest! {
        /// Whatever this pass accepts, the scanner accepts with the same answer.
        #[test]
        fn agrees_with_the_scanner(b in arb_flat(), cut in any::<prop::sample::Index>(),
                                   byte in any::<u8>(), damage in any::<bool>()) {
            let mut b = b;
            if damage && !b.is_empty() {
                let at = cut.index(b.len());
                b[at] = byte;
            }
            if let Some(info) = scan(&b) {
                prop_assert_eq!(Some(info), full(&b), "{}", String::from_utf8_lossy(&b));
            }
        }
    }
}
