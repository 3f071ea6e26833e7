//! Checks that bytes are exactly one JSON object (RFC 8259, UTF-8, no lone surrogates),
//! without allocating, and notes the few top-level keys the encoder completes or compares.

use super::swar::{find, string_special};
use crate::Error;

/// Deepest nesting accepted; deeper input is rejected rather than scanned.
pub(crate) const MAX_DEPTH: u32 = 128;

/// What a successful scan learned about the top-level object.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ObjectInfo {
    /// Offset of the opening `{`.
    pub(crate) open: usize,
    /// Offset just past the closing `}`.
    pub(crate) close: usize,
    /// The object has no members.
    pub(crate) empty: bool,
    /// A top-level `"version"` key is present.
    pub(crate) has_version: bool,
    /// A top-level `"event_timestamp"` key is present.
    pub(crate) has_timestamp: bool,
    /// A top-level `"event_type"` key is present.
    pub(crate) has_event_type: bool,
    /// Span of the `event_type` value when it is a string, quotes included.
    pub(crate) event_type: Option<(usize, usize)>,
    /// Whitespace between tokens holds `\n` or `\r`.
    pub(crate) has_line_breaks: bool,
}

/// Scans `b`, which must hold one JSON object and nothing but whitespace around it.
///
/// Keys are compared as written: a key spelled with escapes (`"versio\u006e"`) is not
/// recognised as `version`.
pub(crate) fn scan_object(b: &[u8]) -> Result<ObjectInfo, Error> {
    let mut s = Scanner {
        b,
        i: 0,
        info: ObjectInfo::default(),
        capture_event_type_at: usize::MAX,
    };
    s.ws();
    let open = s.i;
    let is_object = s.peek() == Some(b'{');
    s.value()?;
    let close = s.i;
    s.ws();
    if s.i != b.len() {
        return Err(s.unexpected("trailing characters after the value"));
    }
    if !is_object {
        return Err(Error::NotAnObject);
    }
    s.info.open = open;
    s.info.close = close;
    Ok(s.info)
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    info: ObjectInfo,
    /// Offset where the top-level `event_type` value starts, once its key has been seen.
    capture_event_type_at: usize,
}

impl Scanner<'_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn ws(&mut self) {
        // Compact JSON has no whitespace: usually one look settles it.
        if self.peek().is_some_and(|c| c > b' ') {
            return;
        }
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' => {}
                b'\n' | b'\r' => self.info.has_line_breaks = true,
                _ => return,
            }
            self.i += 1;
        }
    }

    fn err(&self, reason: &'static str) -> Error {
        Error::InvalidJson {
            offset: self.i,
            reason,
        }
    }

    /// An error at an unexpected byte: bad UTF-8 is reported as such, not as bad JSON.
    fn unexpected(&self, reason: &'static str) -> Error {
        match self.peek() {
            Some(c) if c >= 0x80 && utf8_char_end(self.b, self.i).is_none() => {
                Error::InvalidUtf8 { offset: self.i }
            }
            None => self.err("unexpected end of input"),
            _ => self.err(reason),
        }
    }

    /// Parses one complete value starting at `self.i`, iteratively: open containers are
    /// tracked in a fixed stack (true = object), so hostile nesting cannot overflow the
    /// thread's stack.
    fn value(&mut self) -> Result<(), Error> {
        let mut in_objects = [false; MAX_DEPTH as usize];
        let mut depth: u32 = 0;
        loop {
            // One value.
            let start = self.i;
            match self.peek() {
                Some(open @ (b'{' | b'[')) => {
                    if depth == MAX_DEPTH {
                        return Err(self.err("nesting deeper than 128 levels"));
                    }
                    let is_object = open == b'{';
                    in_objects[depth as usize] = is_object;
                    depth += 1;
                    self.i += 1;
                    self.ws();
                    let close = if is_object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.i += 1;
                        depth -= 1;
                        if depth == 0 && is_object {
                            self.info.empty = true;
                        }
                    } else {
                        if is_object {
                            self.member_key(depth)?;
                        }
                        continue;
                    }
                }
                Some(b'"') => {
                    self.i += 1;
                    self.string()?;
                    if start == self.capture_event_type_at {
                        self.info.event_type = Some((start, self.i));
                    }
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                _ => return Err(self.unexpected("expected a value")),
            }
            // After a value: close finished containers, then find where the next value starts.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                self.ws();
                let in_object = in_objects[depth as usize - 1];
                match (self.peek(), in_object) {
                    (Some(b','), _) => {
                        self.i += 1;
                        self.ws();
                        if in_object {
                            self.member_key(depth)?;
                        }
                        break;
                    }
                    (Some(b'}'), true) | (Some(b']'), false) => {
                        self.i += 1;
                        depth -= 1;
                    }
                    (_, true) => return Err(self.unexpected("expected ',' or '}'")),
                    (_, false) => return Err(self.unexpected("expected ',' or ']'")),
                }
            }
        }
    }

    /// Parses `"key" :` and the whitespace after it; notes interesting top-level keys.
    fn member_key(&mut self, depth: u32) -> Result<(), Error> {
        if self.peek() != Some(b'"') {
            return Err(self.unexpected("expected a string key"));
        }
        let key_start = self.i + 1;
        self.i += 1;
        self.string()?;
        let key = &self.b[key_start..self.i - 1];
        self.ws();
        if self.peek() != Some(b':') {
            return Err(self.unexpected("expected ':' after the key"));
        }
        self.i += 1;
        self.ws();
        if depth == 1 {
            match key {
                b"version" => self.info.has_version = true,
                b"event_timestamp" => self.info.has_timestamp = true,
                b"event_type" => {
                    self.info.has_event_type = true;
                    self.info.event_type = None;
                    self.capture_event_type_at = self.i;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Scans string content after the opening quote, up to and including the closing one.
    #[inline]
    fn string(&mut self) -> Result<(), Error> {
        let b = self.b;
        let mut i = self.i;
        loop {
            i = find(b, i, string_special);
            let Some(&c) = b.get(i) else {
                self.i = i;
                return Err(self.err("unterminated string"));
            };
            match c {
                b'"' => {
                    self.i = i + 1;
                    return Ok(());
                }
                b'\\' => {
                    i = escape_end(b, i)
                        .map_err(|reason| Error::InvalidJson { offset: i, reason })?;
                }
                0x00..=0x1f => {
                    self.i = i;
                    return Err(self.err("control character in a string must be escaped"));
                }
                0x80.. => {
                    i = utf8_char_end(b, i).ok_or(Error::InvalidUtf8 { offset: i })?;
                }
                _ => i += 1,
            }
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), Error> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.unexpected("invalid literal"))
        }
    }

    fn number(&mut self) -> Result<(), Error> {
        let b = self.b;
        let mut i = self.i;
        let digits = |mut i: usize| {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            i
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = digits(i + 1),
            _ => {
                self.i = i;
                return Err(self.err("invalid number"));
            }
        }
        if b.get(i) == Some(&b'.') {
            let end = digits(i + 1);
            if end == i + 1 {
                self.i = end;
                return Err(self.err("expected a digit after the decimal point"));
            }
            i = end;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let end = digits(i);
            if end == i {
                self.i = end;
                return Err(self.err("expected a digit in the exponent"));
            }
            i = end;
        }
        self.i = i;
        Ok(())
    }
}

/// End of the escape sequence starting with the backslash at `i`.
fn escape_end(b: &[u8], i: usize) -> Result<usize, &'static str> {
    match b.get(i + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 2),
        Some(b'u') => {
            let unit = hex4(b, i + 2).ok_or("invalid \\u escape")?;
            match unit {
                0xD800..=0xDBFF => {
                    let low = (b.get(i + 6) == Some(&b'\\') && b.get(i + 7) == Some(&b'u'))
                        .then(|| hex4(b, i + 8))
                        .flatten();
                    match low {
                        Some(0xDC00..=0xDFFF) => Ok(i + 12),
                        _ => Err("unpaired surrogate in \\u escape"),
                    }
                }
                0xDC00..=0xDFFF => Err("unpaired surrogate in \\u escape"),
                _ => Ok(i + 6),
            }
        }
        _ => Err("invalid escape sequence"),
    }
}

fn hex4(b: &[u8], i: usize) -> Option<u16> {
    let digits = b.get(i..i + 4)?;
    let mut v = 0u16;
    for &d in digits {
        let n = (d as char).to_digit(16)?;
        v = (v << 4) | n as u16;
    }
    Some(v)
}

/// End of the UTF-8 sequence whose lead byte is at `i`, if it is well formed.
fn utf8_char_end(b: &[u8], i: usize) -> Option<usize> {
    let width = match b.get(i)? {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    let seq = b.get(i..i + width)?;
    // The standard library knows overlongs, surrogates and the U+10FFFF ceiling.
    std::str::from_utf8(seq).ok()?;
    Some(i + width)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(s: &str) -> ObjectInfo {
        scan_object(s.as_bytes()).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn invalid(b: &[u8]) -> Error {
        scan_object(b).expect_err("should be rejected")
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
                Error::InvalidJson { offset, .. } => assert_eq!(offset, at, "{s:?}"),
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
                reason: "nesting deeper than 128 levels",
                ..
            }
        ));
        // Far deeper input is rejected early, not recursed into.
        assert!(scan_object(deep(1_000_000).as_bytes()).is_err());
    }

    /// Some(true): valid object; Some(false): valid non-object; None: invalid.
    fn serde_accepts_object(b: &[u8]) -> Option<bool> {
        let v: serde_json::Value = serde_json::from_slice(b).ok()?;
        Some(v.is_object())
    }

    /// serde_json refuses numbers beyond f64 range (`1e999`), which the JSON grammar allows
    /// and this scanner accepts; such inputs say nothing about either.
    fn out_of_f64_range(b: &[u8]) -> bool {
        serde_json::from_slice::<serde_json::Value>(b)
            .is_err_and(|e| e.to_string().contains("number out of range"))
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
            let ours = scan_object(&text);
            match serde_accepts_object(&text) {
                Some(true) => prop_assert!(ours.is_ok(), "{:?}", ours),
                Some(false) => prop_assert!(matches!(ours, Err(Error::NotAnObject))),
                None => prop_assert!(false, "serde produced invalid JSON"),
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
            prop_assume!(!out_of_f64_range(&text));
            let ours = scan_object(&text);
            match serde_accepts_object(&text) {
                Some(true) => prop_assert!(ours.is_ok(), "{:?} on {:?}", ours, String::from_utf8_lossy(&text)),
                Some(false) => prop_assert!(matches!(ours, Err(Error::NotAnObject))),
                None => prop_assert!(ours.is_err(), "accepted {:?}", String::from_utf8_lossy(&text)),
            }
        }

        #[test]
        fn random_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = scan_object(&b);
        }
    }
}
