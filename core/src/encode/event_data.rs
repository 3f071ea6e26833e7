//! The `event_data` of a typed event: what it may be, and how it is completed so that its
//! `event_type` always equals the event's own (DataStorage's oneOf discriminator).

use std::fmt;
use std::io;

use super::json::{MAX_DEPTH, ObjectInfo, scan_object_into};
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
    ///
    /// # Errors
    ///
    /// A [`serde_json::Error`] when the value's `Serialize` fails (a map with keys that are
    /// not strings, a custom error) or `out` refuses a write; the pipeline reports it as
    /// [`Error::Serialize`], or [`Error::TooLarge`] when `out` was past `max_event_bytes`.
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
    /// JSON checked already (at capture), with the shape its scan found: written without
    /// being scanned again.
    Scanned(&'a [u8], Shape),
    Serialize(&'a dyn ToJson),
}

/// What writing a checked `event_data` needs to know of it: where the object is, and
/// whether it is empty, has its own `event_type` or holds line breaks. Kept in a captured
/// slot ([`Shape::BYTES`] bytes) so the flush thread need not scan the JSON again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    open: u32,
    close: u32,
    flags: u8,
}

impl Shape {
    pub(crate) const BYTES: usize = 9;
    const EMPTY: u8 = 1;
    const EVENT_TYPE: u8 = 2;
    const LINE_BREAKS: u8 = 4;

    /// `None` if the offsets do not fit in 32 bits (the text is then scanned again).
    pub(crate) fn of(info: &ObjectInfo) -> Option<Shape> {
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        let flags = flag(info.empty, Self::EMPTY)
            | flag(info.has_event_type, Self::EVENT_TYPE)
            | flag(info.has_line_breaks, Self::LINE_BREAKS);
        Some(Shape {
            open: u32::try_from(info.open).ok()?,
            close: u32::try_from(info.close).ok()?,
            flags,
        })
    }

    pub(crate) fn to_bytes(self) -> [u8; Self::BYTES] {
        let mut b = [0; Self::BYTES];
        b[..4].copy_from_slice(&self.open.to_le_bytes());
        b[4..8].copy_from_slice(&self.close.to_le_bytes());
        b[8] = self.flags;
        b
    }

    /// The shape in `b`, if it fits `text` (a damaged slot is scanned again instead).
    pub(crate) fn from_bytes(b: &[u8], text: &[u8]) -> Option<Shape> {
        let b: &[u8; Self::BYTES] = b.try_into().ok()?;
        let open = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let close = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let fits = open < close
            && (close as usize) <= text.len()
            && text[open as usize] == b'{'
            && text[close as usize - 1] == b'}';
        fits.then_some(Shape {
            open,
            close,
            flags: b[8],
        })
    }
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
            let mut info = ObjectInfo::default();
            scan_object_into(text, DATA_DEPTH, &mut info).map_err(event_data_error)?;
            check_event_type(text, &info, &out[outer.clone()])?;
            write_shaped(
                text,
                (info.open, info.close),
                (info.empty, info.has_event_type, info.has_line_breaks),
                out,
                outer,
            );
            Ok(())
        }
        Data::Scanned(text, shape) => {
            let has = |flag| shape.flags & flag != 0;
            write_shaped(
                text,
                (shape.open as usize, shape.close as usize),
                (
                    has(Shape::EMPTY),
                    has(Shape::EVENT_TYPE),
                    has(Shape::LINE_BREAKS),
                ),
                out,
                outer,
            );
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
            let mut info = ObjectInfo::default();
            scan_object_into(&out[start..], DATA_DEPTH, &mut info).map_err(event_data_error)?;
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
/// it keeps its offset in it, and names the field.
pub(crate) fn event_data_error(e: Error) -> Error {
    match e {
        Error::InvalidJson { offset, reason, .. } => Error::InvalidJson {
            offset,
            reason,
            field: Some("event_data"),
        },
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

/// Writes the checked object at `open..close` of `text` as `event_data`: as it is if it
/// has its own `event_type`, else with the outer one (the token at `outer`) put first.
fn write_shaped(
    text: &[u8],
    (open, close): (usize, usize),
    (empty, has_event_type, has_line_breaks): (bool, bool, bool),
    out: &mut Vec<u8>,
    outer: std::ops::Range<usize>,
) {
    let start = out.len();
    if has_event_type {
        out.extend_from_slice(&text[open..close]);
    } else {
        out.push(b'{');
        out.extend_from_slice(EVENT_TYPE_KEY);
        out.extend_from_within(outer);
        if !empty {
            out.push(b',');
        }
        out.extend_from_slice(&text[open + 1..close]);
    }
    if has_line_breaks {
        flatten_line_breaks(&mut out[start..]);
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
