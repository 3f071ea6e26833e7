//! The `event_data` of a typed event: what it may be, and how it is completed so that its
//! `event_type` always equals the event's own (DataStorage's oneOf discriminator).

use std::fmt;
use std::io;

use super::json::{ObjectInfo, scan_object};
use super::{LimitedWriter, flatten_line_breaks};
use crate::Error;

/// The `event_data` of an [`AuditEvent`](crate::AuditEvent).
#[derive(Clone, Copy, Default)]
pub enum EventData<'a> {
    /// No payload: sends `{"event_type": <event_type>}`.
    #[default]
    Empty,
    /// JSON text of an object, checked and copied as written.
    Json(&'a str),
    /// Any `serde::Serialize` value that serialises to an object.
    Serialize(&'a dyn ToJson),
}

impl fmt::Debug for EventData<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventData::Empty => f.write_str("Empty"),
            EventData::Json(text) => f.debug_tuple("Json").field(text).finish(),
            EventData::Serialize(_) => f.write_str("Serialize(..)"),
        }
    }
}

/// Object-safe JSON serialisation, implemented for every `serde::Serialize` type, so an
/// [`EventData::Serialize`] can hold any of them behind a reference.
pub trait ToJson {
    /// Writes `self` as compact JSON.
    fn write_json(&self, out: &mut dyn io::Write) -> serde_json::Result<()>;
}

impl<T: serde::Serialize + ?Sized> ToJson for T {
    fn write_json(&self, out: &mut dyn io::Write) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }
}

const EVENT_TYPE_KEY: &[u8] = b"\"event_type\":";

/// Writes `event_data`, making sure its top-level `event_type` equals the outer one, whose
/// encoded token sits at `outer` in `out`.
pub(crate) fn write_event_data(
    data: EventData<'_>,
    out: &mut Vec<u8>,
    outer: std::ops::Range<usize>,
    limit: usize,
) -> Result<(), Error> {
    match data {
        EventData::Empty => {
            out.push(b'{');
            out.extend_from_slice(EVENT_TYPE_KEY);
            out.extend_from_within(outer);
            out.push(b'}');
            Ok(())
        }
        EventData::Json(text) => {
            let text = text.as_bytes();
            let info = scan_object(text).map_err(not_an_object_is_event_data)?;
            check_event_type(text, &info, &out[outer.clone()])?;
            let start = out.len();
            if info.has_event_type {
                out.extend_from_slice(&text[info.open..info.close]);
            } else {
                out.push(b'{');
                out.extend_from_slice(EVENT_TYPE_KEY);
                out.extend_from_within(outer);
                if !info.empty {
                    out.push(b',');
                }
                out.extend_from_slice(&text[info.open + 1..info.close]);
            }
            if info.has_line_breaks {
                flatten_line_breaks(&mut out[start..]);
            }
            Ok(())
        }
        EventData::Serialize(value) => {
            let start = out.len();
            let mut writer = LimitedWriter {
                out,
                limit,
                overflowed: false,
            };
            let written = value.write_json(&mut writer);
            let overflowed = writer.overflowed;
            match written {
                Ok(()) => {}
                Err(_) if overflowed => {
                    return Err(Error::TooLarge {
                        size: limit + 1,
                        limit,
                    });
                }
                Err(e) => return Err(Error::Serialize(e)),
            }
            let info = scan_object(&out[start..]).map_err(not_an_object_is_event_data)?;
            check_event_type(&out[start..], &info, &out[outer.clone()])?;
            if info.has_line_breaks {
                flatten_line_breaks(&mut out[start..]);
            }
            if !info.has_event_type {
                // Room for `"event_type":<token>,` right after the opening brace.
                let comma = usize::from(!info.empty);
                let insert = EVENT_TYPE_KEY.len() + outer.len() + comma;
                let mut at = start + info.open + 1;
                insert_gap(out, at, insert);
                out[at..at + EVENT_TYPE_KEY.len()].copy_from_slice(EVENT_TYPE_KEY);
                at += EVENT_TYPE_KEY.len();
                out.copy_within(outer.clone(), at);
                at += outer.len();
                if comma == 1 {
                    out[at] = b',';
                }
            }
            Ok(())
        }
    }
}

/// Opens `len` bytes at `at` by moving the tail of `out` right.
pub(crate) fn insert_gap(out: &mut Vec<u8>, at: usize, len: usize) {
    let old_len = out.len();
    out.resize(old_len + len, 0);
    out.copy_within(at..old_len, at + len);
}

fn not_an_object_is_event_data(e: Error) -> Error {
    match e {
        Error::NotAnObject => Error::InvalidField {
            field: "event_data",
            reason: "must be a JSON object",
        },
        other => other,
    }
}

fn check_event_type(text: &[u8], info: &ObjectInfo, outer_token: &[u8]) -> Result<(), Error> {
    if !info.has_event_type {
        return Ok(());
    }
    let same = match info.event_type {
        Some((s, e)) if &text[s..e] == outer_token => true,
        // Spelled differently (`\/`, `\u00e9`): compare what the escapes mean. Rare enough
        // to allocate for.
        Some((s, e)) if text[s..e].contains(&b'\\') => {
            let decode = |t: &[u8]| serde_json::from_slice::<String>(t).ok();
            decode(&text[s..e]).is_some_and(|inner| decode(outer_token) == Some(inner))
        }
        _ => false,
    };
    if same {
        Ok(())
    } else {
        Err(Error::InvalidField {
            field: "event_data.event_type",
            reason: "must equal the event's event_type",
        })
    }
}
