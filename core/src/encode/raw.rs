//! Events that arrive as raw JSON bytes or as a `Serialize` value: checked to be one JSON
//! object, copied into the slot, and given `version` and `event_timestamp` when absent.

use super::event_data::insert_gap;
use super::json::{MAX_DEPTH, ObjectInfo, scan_object_into};
use super::{LimitedWriter, flatten_line_breaks, time};
use crate::Error;

const VERSION_MEMBER: &[u8] = b"\"version\":\"1.0\"";
const TIMESTAMP_KEY: &[u8] = b"\"event_timestamp\":\"";

/// Checks `input` and writes it, completed, into `out` (empty on entry).
pub(crate) fn encode_json(input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), Error> {
    let trimmed = input.trim_ascii();
    if trimmed.len() > limit {
        return Err(Error::TooLarge {
            size: trimmed.len(),
            limit,
        });
    }
    let mut info = ObjectInfo::default();
    scan_object_into(input, MAX_DEPTH, &mut info)?;
    let body = &input[info.open..info.close];
    let missing = MissingMembers::of(&info);
    let size = body.len() + missing.len;
    if size > limit {
        return Err(Error::TooLarge { size, limit });
    }
    out.reserve(size);
    if missing.is_empty() {
        out.extend_from_slice(body);
    } else {
        out.push(b'{');
        out.extend_from_slice(missing.bytes());
        out.extend_from_slice(&body[1..]);
    }
    if info.has_line_breaks {
        flatten_line_breaks(out);
    }
    Ok(())
}

/// Serialises `value` into `out` (empty on entry), then completes it like [`encode_json`].
pub(crate) fn encode_serialize<T: serde::Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), Error> {
    let mut writer = LimitedWriter {
        out,
        limit,
        overflowed: false,
    };
    if let Err(e) = serde_json::to_writer(&mut writer, value) {
        return Err(if writer.overflowed {
            Error::TooLarge {
                size: limit + 1,
                limit,
            }
        } else {
            Error::Serialize(e)
        });
    }
    complete_json_in_place(out, limit)
}

/// Checks that `out` holds one JSON object (written there by a binding's encoder or by
/// serde) and completes it in place: the same checks, errors and bytes as [`encode_json`]
/// given the same input.
pub(crate) fn complete_json_in_place(out: &mut Vec<u8>, limit: usize) -> Result<(), Error> {
    let trimmed = out.trim_ascii().len();
    if trimmed > limit {
        return Err(Error::TooLarge {
            size: trimmed,
            limit,
        });
    }
    let mut info = ObjectInfo::default();
    scan_object_into(out, MAX_DEPTH, &mut info)?;
    let missing = MissingMembers::of(&info);
    let size = info.close - info.open + missing.len;
    if size > limit {
        return Err(Error::TooLarge { size, limit });
    }
    out.truncate(info.close);
    if info.open > 0 {
        out.drain(..info.open);
    }
    if info.has_line_breaks {
        // Only whitespace between tokens can hold a raw line break.
        flatten_line_breaks(out);
    }
    if !missing.is_empty() {
        insert_gap(out, 1, missing.len);
        out[1..1 + missing.len].copy_from_slice(missing.bytes());
    }
    Ok(())
}

/// What a binding's own encoder tells about the object it wrote (see
/// [`Pipeline::record_encoded_with`](crate::Pipeline::record_encoded_with)).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Encoded {
    /// The object has a top-level `version` member.
    pub has_version: bool,
    /// The object has a top-level `event_timestamp` member.
    pub has_timestamp: bool,
}

/// Completes in place an object a binding's encoder wrote and vouches for (compact, one
/// object, UTF-8, no raw line breaks): the members `encode_json` would add, without
/// scanning the bytes again.
pub(crate) fn complete_encoded(
    out: &mut Vec<u8>,
    encoded: Encoded,
    limit: usize,
) -> Result<(), Error> {
    let info = ObjectInfo {
        open: 0,
        close: out.len(),
        empty: out.len() == 2,
        has_version: encoded.has_version,
        has_timestamp: encoded.has_timestamp,
        ..ObjectInfo::default()
    };
    let missing = MissingMembers::of(&info);
    let size = out.len() + missing.len;
    if size > limit {
        return Err(Error::TooLarge { size, limit });
    }
    if !missing.is_empty() {
        insert_gap(out, 1, missing.len);
        out[1..1 + missing.len].copy_from_slice(missing.bytes());
    }
    Ok(())
}

/// The members to add after the opening brace, comma included, built on the stack.
struct MissingMembers {
    buf: [u8; 64],
    len: usize,
}

impl MissingMembers {
    fn of(info: &ObjectInfo) -> Self {
        let mut m = MissingMembers {
            buf: [0; 64],
            len: 0,
        };
        if !info.has_version {
            m.push(VERSION_MEMBER);
        }
        if !info.has_timestamp {
            if !info.has_version {
                m.push(b",");
            }
            m.push(TIMESTAMP_KEY);
            m.push(&time::now());
            m.push(b"\"");
        }
        if m.len > 0 && !info.empty {
            m.push(b",");
        }
        m
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(input: &[u8]) -> Result<String, Error> {
        let mut out = Vec::new();
        encode_json(input, &mut out, 1024)?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn is_timestamp(v: &serde_json::Value) -> bool {
        let s = v.as_str().unwrap();
        s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T'
    }

    #[test]
    fn complete_events_are_copied_as_written() {
        let e = r#"{"version":"2","event_timestamp":"t","a":[1, 2]}"#;
        assert_eq!(json(format!("  {e}\n").as_bytes()).unwrap(), e);
    }

    #[test]
    fn missing_version_and_timestamp_are_added_first() {
        let out = json(br#"{"a":"\u00e9 \"x\""}"#).unwrap();
        assert!(
            out.starts_with(r#"{"version":"1.0","event_timestamp":""#),
            "{out}"
        );
        assert!(out.ends_with(r#"","a":"\u00e9 \"x\""}"#), "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(is_timestamp(&v["event_timestamp"]));

        let out = json(b"{}").unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["version"], "1.0");
        assert_eq!(v.as_object().unwrap().len(), 2);

        let out = json(br#"{"version":"9"}"#).unwrap();
        assert!(out.starts_with(r#"{"event_timestamp":""#), "{out}");
        assert!(out.ends_with(r#"","version":"9"}"#), "{out}");
    }

    #[test]
    fn line_breaks_between_tokens_become_spaces() {
        let out = json(b"{\n  \"version\": \"1\",\r\n  \"event_timestamp\": \"t\"\n}").unwrap();
        assert_eq!(
            out,
            "{   \"version\": \"1\",    \"event_timestamp\": \"t\" }"
        );
    }

    #[test]
    fn bad_input_is_rejected_with_its_own_error() {
        assert!(matches!(json(b"{\"a\":"), Err(Error::InvalidJson { .. })));
        assert!(matches!(json(b"[]"), Err(Error::NotAnObject)));
        assert!(matches!(
            json(b"{\"a\":\"\xff\"}"),
            Err(Error::InvalidUtf8 { offset: 6 })
        ));
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(2000));
        assert!(matches!(
            json(big.as_bytes()),
            Err(Error::TooLarge { limit: 1024, .. })
        ));
        // Fits as written, but not once version and timestamp are added.
        let edge = format!("{{\"a\":\"{}\"}}", "x".repeat(1000));
        assert!(matches!(json(edge.as_bytes()), Err(Error::TooLarge { .. })));
    }

    /// The bytes with a timestamp filled in by the encoder blanked out.
    fn without_now(mut out: Vec<u8>) -> Vec<u8> {
        let key = TIMESTAMP_KEY;
        if let Some(at) = out.windows(key.len()).position(|w| w == key)
            && out.get(at + key.len() + time::TIMESTAMP_LEN) == Some(&b'"')
        {
            out[at + key.len()..at + key.len() + time::TIMESTAMP_LEN].fill(b'_');
        }
        out
    }

    #[test]
    fn completing_in_place_gives_the_bytes_of_encode_json() {
        for input in [
            &b"{}"[..],
            b"  {\"a\":1}\n",
            b"{\n \"version\": \"2\",\r\n \"b\": [1,\n2]}",
            b"{\"event_timestamp\":\"t\",\"version\":\"1.0\"}",
            b"{\"a\":",
            b"[1]",
            b"{\"a\":\"\xff\"}",
        ] {
            let mut direct = Vec::new();
            let expect = encode_json(input, &mut direct, 1024).map(|()| direct);
            let mut in_place = input.to_vec();
            let got = complete_json_in_place(&mut in_place, 1024).map(|()| in_place);
            match (expect, got) {
                (Ok(a), Ok(b)) => assert_eq!(without_now(a), without_now(b), "{input:?}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                (a, b) => panic!("{input:?}: {a:?} / {b:?}"),
            }
        }
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(1000));
        let mut out = big.into_bytes();
        assert!(matches!(
            complete_json_in_place(&mut out, 1024),
            Err(Error::TooLarge { limit: 1024, .. })
        ));
    }

    #[test]
    fn completing_an_encoded_object_matches_encode_json() {
        for (input, encoded) in [
            (&b"{}"[..], Encoded::default()),
            (b"{\"a\":1}", Encoded::default()),
            (
                b"{\"version\":\"2\",\"a\":1}",
                Encoded {
                    has_version: true,
                    has_timestamp: false,
                },
            ),
            (
                b"{\"event_timestamp\":\"t\",\"version\":\"2\"}",
                Encoded {
                    has_version: true,
                    has_timestamp: true,
                },
            ),
        ] {
            let mut direct = Vec::new();
            encode_json(input, &mut direct, 1024).unwrap();
            let mut out = input.to_vec();
            complete_encoded(&mut out, encoded, 1024).unwrap();
            assert_eq!(without_now(direct), without_now(out));
        }
        let mut out = b"{\"a\":1}".to_vec();
        assert!(matches!(
            complete_encoded(&mut out, Encoded::default(), 20),
            Err(Error::TooLarge { limit: 20, .. })
        ));
    }

    #[test]
    fn serialize_path_completes_objects() {
        #[derive(serde::Serialize)]
        struct Ev<'a> {
            event_type: &'a str,
            n: u8,
        }
        let mut out = Vec::new();
        encode_serialize(
            &Ev {
                event_type: "x",
                n: 1,
            },
            &mut out,
            1024,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["version"], "1.0");
        assert!(is_timestamp(&v["event_timestamp"]));
        assert_eq!(v["event_type"], "x");
        assert!(out.ends_with(br#","event_type":"x","n":1}"#));

        let mut out = Vec::new();
        encode_serialize(&serde_json::json!({}), &mut out, 1024).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&out)
                .unwrap()
                .as_object()
                .unwrap()
                .len(),
            2
        );

        let mut out = Vec::new();
        assert!(matches!(
            encode_serialize(&[1, 2], &mut out, 1024),
            Err(Error::NotAnObject)
        ));
        let mut out = Vec::new();
        let big = vec![7u64; 10_000];
        assert!(matches!(
            encode_serialize(&serde_json::json!({"v": big}), &mut out, 1024),
            Err(Error::TooLarge { .. })
        ));
    }
}
