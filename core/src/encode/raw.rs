//! Events that arrive as raw JSON bytes or as a `Serialize` value: checked to be one JSON
//! object, copied into the slot, and given `version` and `event_timestamp` when absent.

use super::event_data::insert_gap;
use super::json::{MAX_DEPTH, ObjectInfo, scan_object};
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
    let info = scan_object(input, MAX_DEPTH)?;
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
    let info = scan_object(out, MAX_DEPTH)?;
    if info.has_line_breaks {
        // serde_json writes none, but a RawValue keeps the whitespace it was given.
        flatten_line_breaks(out);
    }
    let missing = MissingMembers::of(&info);
    if missing.is_empty() {
        return Ok(());
    }
    let size = out.len() + missing.len;
    if size > limit {
        return Err(Error::TooLarge { size, limit });
    }
    let at = info.open + 1;
    insert_gap(out, at, missing.len);
    out[at..at + missing.len].copy_from_slice(missing.bytes());
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
