//! The `event_data` of a typed event: what it may be, and how it is completed so that its
//! `event_type` always equals the event's own (DataStorage's oneOf discriminator).

use std::fmt;
use std::io;

use super::json::{MAX_DEPTH, ObjectInfo, scan_object};
use super::keys::Decoded;
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

/// An [`EventData`] as the encoder takes it: JSON text as bytes (from a `&str`, or from C,
/// Go or Python, not yet known to be UTF-8).
#[derive(Clone, Copy)]
pub(crate) enum Data<'a> {
    Empty,
    Json(&'a [u8]),
    Serialize(&'a dyn ToJson),
}

const EVENT_TYPE_KEY: &[u8] = b"\"event_type\":";

/// `event_data` is one level inside its event, whose whole nesting is bounded.
pub(crate) const DATA_DEPTH: u32 = MAX_DEPTH - 1;

/// Writes `event_data`, making sure its top-level `event_type` equals the outer one, whose
/// encoded token sits at `outer` in `out`.
pub(crate) fn write_event_data(
    data: Data<'_>,
    out: &mut Vec<u8>,
    outer: std::ops::Range<usize>,
    limit: usize,
) -> Result<(), Error> {
    match data {
        Data::Empty => {
            out.push(b'{');
            out.extend_from_slice(EVENT_TYPE_KEY);
            out.extend_from_within(outer);
            out.push(b'}');
            Ok(())
        }
        Data::Json(text) => {
            let info = scan_object(text, DATA_DEPTH).map_err(event_data_error)?;
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
        Data::Serialize(value) => {
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
            let info = scan_object(&out[start..], DATA_DEPTH).map_err(event_data_error)?;
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

/// What is wrong with `event_data` as a whole is an error of that field; an error inside
/// it keeps its offset in it.
pub(crate) fn event_data_error(e: Error) -> Error {
    match e {
        Error::NotAnObject => Error::InvalidField {
            field: "event_data",
            reason: "must be a JSON object",
        },
        // Only bytes from C, Go or Python can be invalid UTF-8.
        Error::InvalidUtf8 { .. } => Error::InvalidField {
            field: "event_data",
            reason: "is not valid UTF-8",
        },
        other => other,
    }
}

pub(crate) fn check_event_type(
    text: &[u8],
    info: &ObjectInfo,
    outer_token: &[u8],
) -> Result<(), Error> {
    if !info.has_event_type {
        return Ok(());
    }
    let same = match info.event_type {
        Some((s, e)) if &text[s..e] == outer_token => true,
        // Spelled differently (`\/`, `\u00e9`): compare what the escapes mean.
        Some((s, e)) if text[s..e].contains(&b'\\') => {
            Decoded::new(text, s + 1).eq(Decoded::new(outer_token, 1))
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
