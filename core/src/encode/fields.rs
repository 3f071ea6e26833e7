//! A typed event's fields as the encoder takes them: byte slices, whether they came from an
//! [`AuditEvent`]'s `&str` (known to be UTF-8) or from C, Go or Python (checked as written).
//!
//! The 19 text fields are kept as one array in wire order — the order of the C ABI's flat
//! event and of a captured slot's lengths — with a bit per field present, an absent field
//! empty: `record` writes the lengths of the present fields into the slot's header and
//! copies only those, in wire order. Named `Option` fields, turned into an array of
//! `Option`s for the capture, cost a typed `record` moves and branches it no longer makes
//! (with the inline U+0000 scan and `string_end` inlined, the capture of `hot_path`'s event
//! went from 1 854 to 1 503 instructions, callgrind).

use super::event::AuditEvent;
use super::event_data::{Data, EventData};

/// Text fields of a typed event (all but `event_data`), in wire order.
pub(crate) const TEXT: usize = 19;

/// The bits of the text fields in [`Fields::present`] (and in a captured slot's header).
pub(crate) const TEXT_BITS: u32 = (1 << TEXT) - 1;

/// The indices of the text fields whose bits `present` sets, in wire order.
pub(crate) struct Present(pub(crate) u32);

impl Iterator for Present {
    type Item = usize;

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        let bits = self.0 & TEXT_BITS;
        if bits == 0 {
            return None;
        }
        self.0 = bits & (bits - 1);
        Some(bits.trailing_zeros() as usize)
    }
}

/// Indices into [`Fields::text`].
pub(crate) mod at {
    pub(crate) const VERSION: usize = 0;
    pub(crate) const EVENT_TYPE: usize = 1;
    pub(crate) const EVENT_TIMESTAMP: usize = 2;
    pub(crate) const EVENT_CATEGORY: usize = 3;
    pub(crate) const EVENT_ACTION: usize = 4;
    pub(crate) const EVENT_OUTCOME: usize = 5;
    pub(crate) const CORRELATION_ID: usize = 6;
    pub(crate) const ACTOR_TYPE: usize = 7;
    pub(crate) const ACTOR_ID: usize = 8;
    pub(crate) const ACTOR_IP: usize = 9;
    pub(crate) const RESOURCE_TYPE: usize = 10;
    pub(crate) const RESOURCE_ID: usize = 11;
    pub(crate) const PARENT_EVENT_ID: usize = 12;
    pub(crate) const PARENT_EVENT_DATE: usize = 13;
    pub(crate) const NAMESPACE: usize = 14;
    pub(crate) const CLUSTER_ID: usize = 15;
    pub(crate) const SEVERITY: usize = 16;
    pub(crate) const ERROR_CODE: usize = 17;
    pub(crate) const ERROR_MESSAGE: usize = 18;
}

/// The bits in [`Fields::present`] of the five required fields, always present.
pub(crate) const REQUIRED: u32 = 1 << at::EVENT_TYPE
    | 1 << at::EVENT_CATEGORY
    | 1 << at::EVENT_ACTION
    | 1 << at::EVENT_OUTCOME
    | 1 << at::CORRELATION_ID;

/// The fields of a typed event as bytes: an [`AuditEvent`]'s, known to be UTF-8, or an
/// [`AuditEventBytes`](crate::AuditEventBytes)'s, checked as they are written.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a> {
    /// The text fields in wire order ([`at`]); an absent one is empty.
    pub(crate) text: [&'a [u8]; TEXT],
    /// Bit *i* set when text field *i* is present (the required ones always are).
    pub(crate) present: u32,
    pub(crate) duration_ms: Option<u64>,
    pub(crate) retention_days: Option<u32>,
    pub(crate) is_sensitive: Option<bool>,
    pub(crate) event_data: Data<'a>,
}

/// Named access to the text fields: `Option` for the optional ones.
macro_rules! accessors {
    ($($required:ident = $r:ident),* ; $($optional:ident = $o:ident),* $(,)?) => {
        impl<'a> Fields<'a> {
            $(
                #[inline(always)]
                pub(crate) fn $required(&self) -> &'a [u8] {
                    self.text[at::$r]
                }
            )*
            $(
                #[inline(always)]
                pub(crate) fn $optional(&self) -> Option<&'a [u8]> {
                    self.get(at::$o)
                }
            )*
        }
    };
}

accessors!(
    event_type = EVENT_TYPE,
    event_category = EVENT_CATEGORY,
    event_action = EVENT_ACTION,
    event_outcome = EVENT_OUTCOME,
    correlation_id = CORRELATION_ID;
    version = VERSION,
    event_timestamp = EVENT_TIMESTAMP,
    actor_type = ACTOR_TYPE,
    actor_id = ACTOR_ID,
    actor_ip = ACTOR_IP,
    resource_type = RESOURCE_TYPE,
    resource_id = RESOURCE_ID,
    parent_event_id = PARENT_EVENT_ID,
    parent_event_date = PARENT_EVENT_DATE,
    namespace = NAMESPACE,
    cluster_id = CLUSTER_ID,
    severity = SEVERITY,
    error_code = ERROR_CODE,
    error_message = ERROR_MESSAGE,
);

impl<'a> Fields<'a> {
    /// Text field `i`, if present.
    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> Option<&'a [u8]> {
        (self.present & (1 << i) != 0).then(|| self.text[i])
    }
}

/// [`Fields`] from an event with the named fields of [`AuditEvent`] (an `AuditEvent` or an
/// [`AuditEventBytes`](crate::AuditEventBytes)): `$bytes` turns one of its text values into
/// bytes, `$data` is the `event_data` as [`Data`]; `$f` names the result in the caller's
/// scope. The fields are written where the capture reads them, an absent one only tested:
/// an array of all 19 built first and moved into a `Fields` (304 bytes copied), and a
/// `Fields` returned from a block (copied again), cost a typed `record` ~120 instructions
/// more on the calling thread (callgrind's per-function profile of the calling thread:
/// `fields.rs` and `option.rs` ~300 → ~180).
macro_rules! fields_of {
    ($f:ident = $ev:expr, $bytes:expr, $data:expr) => {
        let ev = $ev;
        let mut $f = $crate::encode::fields::Fields {
            text: [&[]; $crate::encode::fields::TEXT],
            present: $crate::encode::fields::REQUIRED,
            duration_ms: ev.duration_ms,
            retention_days: ev.retention_days,
            is_sensitive: ev.is_sensitive,
            event_data: $data,
        };
        {
            use $crate::encode::fields::at;
            $f.text[at::EVENT_TYPE] = $bytes(ev.event_type);
            $f.text[at::EVENT_CATEGORY] = $bytes(ev.event_category);
            $f.text[at::EVENT_ACTION] = $bytes(ev.event_action);
            $f.text[at::EVENT_OUTCOME] = $bytes(ev.event_outcome);
            $f.text[at::CORRELATION_ID] = $bytes(ev.correlation_id);
            let mut opt = |i: usize, value: Option<_>| {
                if let Some(value) = value {
                    $f.text[i] = $bytes(value);
                    $f.present |= 1 << i;
                }
            };
            opt(at::VERSION, ev.version);
            opt(at::EVENT_TIMESTAMP, ev.event_timestamp);
            opt(at::ACTOR_TYPE, ev.actor_type);
            opt(at::ACTOR_ID, ev.actor_id);
            opt(at::ACTOR_IP, ev.actor_ip);
            opt(at::RESOURCE_TYPE, ev.resource_type);
            opt(at::RESOURCE_ID, ev.resource_id);
            opt(at::PARENT_EVENT_ID, ev.parent_event_id);
            opt(at::PARENT_EVENT_DATE, ev.parent_event_date);
            opt(at::NAMESPACE, ev.namespace);
            opt(at::CLUSTER_ID, ev.cluster_id);
            opt(at::SEVERITY, ev.severity);
            opt(at::ERROR_CODE, ev.error_code);
            opt(at::ERROR_MESSAGE, ev.error_message);
        }
    };
}
pub(crate) use fields_of;

impl<'a> From<&AuditEvent<'a>> for Fields<'a> {
    #[inline]
    fn from(ev: &AuditEvent<'a>) -> Self {
        fields_of!(f = ev, str::as_bytes, data_of(ev));
        f
    }
}

/// An [`AuditEvent`]'s `event_data` as [`Data`].
#[inline(always)]
pub(crate) fn data_of<'a>(ev: &AuditEvent<'a>) -> Data<'a> {
    match ev.event_data {
        EventData::Empty => Data::Empty,
        EventData::Json(text) => Data::Json(text.as_bytes()),
        EventData::Serialize(value) => Data::Serialize(value),
    }
}

/// The JSON of `f` at its longest when none of its text needs escaping: its fields' bytes
/// (`raw`, [`raw_size`]), every key, quote and comma, a generated timestamp and the default
/// version when absent, the numbers at their longest and the `event_type` that
/// `event_data` gains (not counted: a `Serialize` value's output). At most 3 bytes over
/// for an event with nothing to escape. The encoder reserves this much: a generous
/// constant instead (512 bytes beyond the fields) grew every slot of the default 512
/// bytes it encoded into, and the flush thread's buffer past a slot's size, so that the
/// two could not be swapped (`capture::finish`).
#[inline]
pub(crate) fn json_size_bound(f: &Fields<'_>, raw: usize) -> usize {
    // `{"version":"","event_type":"","event_timestamp":"","event_category":"",
    // "event_action":"","event_outcome":"","correlation_id":"","event_data":}`.
    const ALWAYS: usize = 12 + 17 + 20 + 20 + 18 + 19 + 20 + 1 + 14 + 1;
    let mut optional = f.present & !(REQUIRED | 1 << at::VERSION | 1 << at::EVENT_TIMESTAMP);
    let mut keys = 0;
    while optional != 0 {
        keys += OPTIONAL_KEY_BYTES[optional.trailing_zeros() as usize];
        optional &= optional - 1;
    }
    let defaults = if f.present & 1 << at::VERSION == 0 {
        3
    } else {
        0
    } + if f.present & 1 << at::EVENT_TIMESTAMP == 0 {
        super::time::TIMESTAMP_LEN
    } else {
        0
    };
    // `duration_ms` is at most `i64::MAX`: 19 digits.
    let numbers = usize::from(f.duration_ms.is_some()) * (15 + 19)
        + usize::from(f.retention_days.is_some()) * (18 + 10)
        + usize::from(f.is_sensitive.is_some()) * 21;
    // `"event_type":`, the event's token with its quotes and a comma, or the braces of `{}`.
    let event_type = 13 + f.event_type().len() + 2 + 2;
    raw + ALWAYS + keys + defaults + numbers + event_type
}

/// An optional text field's key as written, `,"name":"`, and its value's closing quote.
const OPTIONAL_KEY_BYTES: [usize; TEXT] = {
    let mut bytes = [0; TEXT];
    let mut i = 0;
    while i < TEXT {
        bytes[i] = crate::AuditEventBytes::FIELDS[i].len() + 6;
        i += 1;
    }
    bytes
};

/// Sum of the lengths the event will take at least, before escaping and punctuation.
#[inline]
pub(crate) fn raw_size(f: &Fields<'_>) -> usize {
    let data = match f.event_data {
        Data::Json(text) | Data::Scanned(text, _) => text.len(),
        Data::Empty | Data::Serialize(_) => 0,
    };
    f.text.iter().map(|v| v.len()).sum::<usize>() + data
}
