//! Turning events into bytes on the caller's thread, without allocating.
//!
//! - [`cadf`]: the typed, borrowed [`CadfEvent`](crate::CadfEvent) (CADF, for RabbitMQ and
//!   Hermes) and its direct encoder;
//! - [`cadf_defaults`]: the UUID and time a CADF event gets when it has none;
//! - [`cadf_rules`]: what a CADF event must be to be recorded;
//! - [`event`]: the typed, borrowed [`AuditEvent`](crate::AuditEvent) and its direct encoder;
//! - [`event_bytes`]: the same event with byte-slice fields, for the bindings;
//! - [`event_data`]: its `event_data`, completed with the event's `event_type`;
//! - [`copy`]: a typed event's fields copied into its slot and checked for U+0000 on the way;
//! - [`fields`]: either event's fields as byte slices, as the encoder takes them;
//! - [`raw`]: raw JSON bytes and `Serialize` values, checked and completed in place;
//! - [`rules`]: what DataStorage requires of a typed event's fields;
//! - [`json`]: the allocation-free check that bytes are exactly one JSON object that every
//!   receiver reads alike;
//! - [`keys`]: finding duplicate keys for it, in bounded memory and time;
//! - [`flat`]: its shortcut for the common compact, shallow event or `event_data`;
//! - [`escape`]: writing text as a JSON string, checking UTF-8 on the way when asked;
//! - [`time`]: RFC 3339 timestamps written into a fixed buffer;
//! - [`swar`]: eight-bytes-at-a-time scans shared by the checks and the escaping above.

pub(crate) mod cadf;
pub(crate) mod cadf_defaults;
pub(crate) mod cadf_rules;
pub(crate) mod capture;
pub(crate) mod copy;
pub(crate) mod escape;
pub(crate) mod event;
pub(crate) mod event_bytes;
pub(crate) mod event_data;
pub(crate) mod fields;
pub(crate) mod flat;
pub(crate) mod json;
pub(crate) mod keys;
pub(crate) mod raw;
pub(crate) mod rules;
pub(crate) mod swar;
pub(crate) mod time;

use std::io;

/// An `io::Write` over a slot that refuses to grow it past `limit` bytes, so a huge
/// `Serialize` value is cut off instead of ballooning the slot.
pub(crate) struct LimitedWriter<'a> {
    pub(crate) out: &'a mut Vec<u8>,
    pub(crate) limit: usize,
    pub(crate) overflowed: bool,
}

impl io::Write for LimitedWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.out.len() + data.len() > self.limit {
            self.overflowed = true;
            // ErrorKind-only errors do not allocate.
            return Err(io::ErrorKind::WriteZero.into());
        }
        self.out.extend_from_slice(data);
        Ok(data.len())
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.write(data).map(|_| ())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Replaces `\n` and `\r` in `bytes` with spaces. Only called on validated JSON, where a raw
/// line break can only be whitespace between tokens; keeps every encoded event on one line
/// (NDJSON framing, log-style stores).
pub(crate) fn flatten_line_breaks(bytes: &mut [u8]) {
    for b in bytes {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
}
