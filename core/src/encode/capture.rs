//! Capture on the caller, render on the flush thread: what `record` does with a typed event.
//!
//! `record` checks everything that can make the event fail (required fields, the spec's
//! rules, UTF-8 and U+0000 in the strings, `event_data`'s JSON and its `event_type`, the size
//! limit), reads the cycle counter instead of the wall clock, and copies the fields as they
//! are into the slot behind a small header. The flush thread turns that into the JSON the
//! sink gets ([`render`]) — escaping, the RFC 3339 timestamp, the completed `event_data` —
//! with the very encoder a synchronous `record` uses, so the bytes on the wire are the same.
//! While the flush thread is behind, a caller under `Block` renders its own event at once
//! instead ([`finish_here`]): rendering is then what holds the flush thread up, and the
//! caller would otherwise wait for it.
//!
//! Layout of a captured slot (all integers little-endian):
//!
//! | bytes | |
//! | --- | --- |
//! | 0 | [`TAG`] `0xFF`, a byte no JSON text starts with |
//! | 1 | flags: bit 0 = the timestamp is `ticks` (no `event_timestamp` given) |
//! | 2..6 | which fields are present: bit *i* for string field *i* (the five required ones always), 20 `duration_ms`, 21 `retention_days`, 22 `is_sensitive` |
//! | 6..14 | counter ticks at `record` |
//! | 14..22 | `duration_ms` |
//! | 22..26 | `retention_days` |
//! | 26 | `is_sensitive` |
//! | 27..107 | length of each of the 20 string fields, in the wire order below (0 for an absent one) |
//! | 107.. | the present fields' bytes, one after the other |
//! | last 9 | with `event_data`: the [`Shape`] its scan found, so rendering need not scan it |
//!
//! An absent field has length 0 and no bytes, and rendering reads only the lengths of the
//! fields whose bit is set (and `event_data`'s).
//!
//! String fields, in order: `version`, `event_type`, `event_timestamp`, `event_category`,
//! `event_action`, `event_outcome`, `correlation_id`, `actor_type`, `actor_id`, `actor_ip`,
//! `resource_type`, `resource_id`, `parent_event_id`, `parent_event_date`, `namespace`,
//! `cluster_id`, `severity`, `error_code`, `error_message`, `event_data` — the order of the C
//! ABI's flat event.

use super::copy::append_flagging;
use super::escape::{BadText, write_str_body};
use super::event::{AuditEvent, encode_fields, render_fields};
use super::event_data::{DATA_DEPTH, Data, Shape, check_event_type, event_data_error};
use super::fields::{Fields, Present, TEXT, TEXT_BITS, at, data_of, fields_of};
use super::json::{ObjectInfo, scan_object_into};
use super::rules::{EventRules, check_fields, invalid};
use super::swar::{NeedsEscape, find};
use super::time;
use crate::clock::{WallClock, ticks};
use crate::{AuditEventBytes, Error};
use std::cell::{Cell, RefCell};

/// The first byte of a captured slot.
pub(crate) const TAG: u8 = 0xFF;

const FLAG_TICKS: u8 = 1;
const STRINGS: usize = 20;
const LENS_AT: usize = 27;
const DATA_AT: usize = LENS_AT + 4 * STRINGS;
const BIT_DURATION: u32 = 1 << 20;
const BIT_RETENTION: u32 = 1 << 21;
const BIT_SENSITIVE: u32 = 1 << 22;
/// Index of `event_data` among the string fields.
const EVENT_DATA: usize = 19;

/// A lower bound of the size as JSON of the event a slot of `len` bytes holds: for a
/// captured event the bytes of its fields, all of which the JSON holds; for one that is
/// JSON already, a bound [`DATA_AT`] + [`Shape::BYTES`] (116) bytes below its length, as
/// the two are told apart only by the slot's first byte. The flush thread asks before that
/// byte, which a producer wrote on another CPU, has arrived: reading it there stalled on
/// the cache miss the look-ahead's prefetch was to overlap (75 % of `take_batch`'s samples
/// sat on that load; without it `take_batch` took 41 % fewer). A looser bound only lets the
/// look-ahead fetch a few events past a batch's byte limit, which go back to the backlog.
#[inline]
pub(crate) fn json_size_at_least(len: usize) -> usize {
    len.saturating_sub(DATA_AT + Shape::BYTES)
}

/// Whether `slot` holds a captured event, not yet JSON.
#[inline]
pub(crate) fn is_captured(slot: &[u8]) -> bool {
    slot.first() == Some(&TAG)
}

/// Captures `f` into `out` (empty on entry), checking everything the encoder would. `Ok(false)`
/// when the event must be encoded at once instead: its `event_data` is a `Serialize` value
/// (it borrows the caller's data, which must be serialised before `record` returns), or its
/// rendered size cannot be bounded below `limit` without rendering it.
#[inline]
pub(crate) fn capture<const CHECK_UTF8: bool>(
    f: &Fields<'_>,
    rules: &EventRules,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<bool, Error> {
    if matches!(f.event_data, Data::Serialize(_)) {
        return Ok(false);
    }
    debug_assert!(
        (0..TEXT).all(|i| f.present & 1 << i != 0 || f.text[i].is_empty()),
        "an absent field must be empty: the slot's layout and `render` rely on it"
    );
    check_fields(f, rules)?;
    let data = match f.event_data {
        Data::Json(text) | Data::Scanned(text, _) => Some(text),
        Data::Empty | Data::Serialize(_) => None,
    };
    let data_len = data.map_or(0, <[u8]>::len);
    let mut present = f.present | u32::from(data.is_some()) << EVENT_DATA;
    // The header is built on the stack and appended in one copy: 27 appends to `out`, each
    // checking its capacity, cost more than the fields' bytes.
    let mut head = [0u8; DATA_AT];
    let mut raw = data_len;
    // Only the fields present (an absent one is empty, its length 0 as `head` has it),
    // the rule `render` reads the slot by. Alone this measured the same as a loop over
    // all 19 (3 265 → 3 248–3 265 instructions an event in all threads).
    for i in Present(f.present) {
        let len = f.text[i].len();
        raw = raw.saturating_add(len);
        // Used only under the size limit checked below, so within u32.
        head[LENS_AT + 4 * i..][..4].copy_from_slice(&(len as u32).to_le_bytes());
    }
    head[LENS_AT + 4 * EVENT_DATA..DATA_AT].copy_from_slice(&(data_len as u32).to_le_bytes());
    // Escaping makes a string at most six times longer (`\u001f`); keys, punctuation and
    // the event_type added to event_data stay under 1 KiB.
    if raw.saturating_mul(6).saturating_add(1024) > limit {
        return Ok(false);
    }
    out.reserve(DATA_AT + raw + Shape::BYTES);
    let mut flags = 0;
    let stamp = if f.event_timestamp().is_none() {
        flags |= FLAG_TICKS;
        ticks()
    } else {
        0
    };
    if f.duration_ms.is_some() {
        present |= BIT_DURATION;
    }
    if f.retention_days.is_some() {
        present |= BIT_RETENTION;
    }
    if f.is_sensitive.is_some() {
        present |= BIT_SENSITIVE;
    }
    head[0] = TAG;
    head[1] = flags;
    head[2..6].copy_from_slice(&present.to_le_bytes());
    head[6..14].copy_from_slice(&stamp.to_le_bytes());
    head[14..22].copy_from_slice(&f.duration_ms.unwrap_or(0).to_le_bytes());
    head[22..26].copy_from_slice(&f.retention_days.unwrap_or(0).to_le_bytes());
    head[26] = u8::from(f.is_sensitive.unwrap_or(false));
    out.extend_from_slice(&head);
    // Copied and looked at in one pass (see `copy`); the field is named only when
    // something was found.
    if append_flagging::<CHECK_UTF8>(out, Present(f.present).map(|i| f.text[i])) {
        for (name, value) in AuditEventBytes::FIELDS.iter().zip(&f.text) {
            check_text::<CHECK_UTF8>(name, value)?;
        }
    }
    out.extend_from_slice(data.unwrap_or_default());
    if let Data::Json(text) = f.event_data {
        check_event_data(text, f.event_type(), out)?;
    }
    Ok(true)
}

/// Refuses what the encoder would refuse while escaping: U+0000, and, for bytes from C, Go
/// or Python, invalid UTF-8 (checked with SIMD, all at once).
#[inline]
fn check_text<const CHECK_UTF8: bool>(field: &'static str, s: &[u8]) -> Result<(), Error> {
    if CHECK_UTF8 && simdutf8::basic::from_utf8(s).is_err() {
        return Err(invalid(field, BadText::Utf8.reason()));
    }
    if memchr::memchr(0, s).is_some() {
        return Err(invalid(field, BadText::Nul.reason()));
    }
    Ok(())
}

/// Captures `ev` for the flush thread to render (see [`capture`](super::capture)), or
/// encodes it at once when it cannot be captured.
#[inline]
pub(crate) fn capture_event(
    ev: &AuditEvent<'_>,
    rules: &EventRules,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), Error> {
    fields_of!(f = ev, str::as_bytes, data_of(ev));
    capture_or_encode::<false>(&f, rules, out, limit)
}

/// Captures `f` into `out` (empty on entry), or, for an event that must be encoded before
/// `record` returns (a `Serialize` payload, a size near the limit), encodes it.
#[inline]
pub(crate) fn capture_or_encode<const CHECK_UTF8: bool>(
    f: &Fields<'_>,
    rules: &EventRules,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), Error> {
    if capture::<CHECK_UTF8>(f, rules, out, limit)? {
        return Ok(());
    }
    out.clear();
    encode_fields::<CHECK_UTF8>(f, rules, out, limit)
}

/// Checks `event_data` as the encoder would: one JSON object, nothing a receiver cannot
/// store, and an `event_type` equal to the event's (compared with the event's encoded
/// token, written for a moment past the end of `out`); then appends to `out` the
/// [`Shape`] its scan found, as the bytes a captured slot keeps (zeros when there is none
/// to keep).
fn check_event_data(text: &[u8], event_type: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let mut info = ObjectInfo::default();
    scan_object_into(text, DATA_DEPTH, &mut info).map_err(event_data_error)?;
    if info.has_event_type {
        let end = out.len();
        out.push(b'"');
        // The event type was checked above: UTF-8, no U+0000.
        let _ = write_str_body(out, event_type, false);
        out.push(b'"');
        let checked = check_event_type(text, &info, &out[end..]);
        out.truncate(end);
        checked?;
    }
    // Offsets past 4 GiB cannot occur under the size limit; `render` would scan again.
    // Written here rather than handed back: a returned shape came back through memory,
    // and the caller's read of it stalled (store forwarding fails on a load wider than
    // the stores that wrote it). Handing back bytes instead of an `Option` moved
    // `record`'s p50 from 154-157 to 149-152 ns in 4 alternating pairs; appending them
    // here measured the same, and hands nothing back.
    out.extend_from_slice(&Shape::of(&info).map_or([0; Shape::BYTES], Shape::to_bytes));
    Ok(())
}

/// Renders a captured slot into `out` (empty on entry): the JSON a synchronous `record`
/// would have written, the timestamp taken from the counter through `wall`.
pub(crate) fn render(slot: &[u8], wall: &WallClock, out: &mut Vec<u8>) -> Result<(), Error> {
    let broken = || Error::InvalidField {
        field: "(captured event)",
        reason: "is damaged",
    };
    let header: &[u8; DATA_AT] = slot
        .get(..DATA_AT)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(broken)?;
    // Whole words from the fixed-size header: a closure indexing four bytes, each with its
    // bounds check, took ~190 of the flush thread's ~1 750 instructions an event.
    let word = |i: usize| -> [u8; 4] { header[i..i + 4].try_into().unwrap_or_default() };
    let u32_at = |i: usize| u32::from_le_bytes(word(i));
    let u64_at = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().unwrap_or_default());
    let present = u32_at(2);
    let mut stamp = [0; time::TIMESTAMP_LEN];
    // Filled in place, only the fields present (an absent one's length is 0): an array
    // filled first and moved into `Fields` was copied (~80 instructions an event).
    let mut f = Fields {
        text: [&[]; TEXT],
        present: present & TEXT_BITS,
        duration_ms: (present & BIT_DURATION != 0).then(|| u64_at(14)),
        retention_days: (present & BIT_RETENTION != 0).then(|| u32_at(22)),
        is_sensitive: (present & BIT_SENSITIVE != 0).then_some(header[26] != 0),
        event_data: Data::Empty,
    };
    let mut pos = DATA_AT;
    for i in Present(present) {
        let end = pos + u32_at(LENS_AT + 4 * i) as usize;
        f.text[i] = slot.get(pos..end).ok_or_else(broken)?;
        pos = end;
    }
    let text_end = pos;
    let data_len = u32_at(LENS_AT + 4 * EVENT_DATA) as usize;
    let data = slot.get(pos..pos + data_len).ok_or_else(broken)?;
    pos += data_len;
    // The string fields lie one after the other: one scan of them all for what JSON
    // escapes, usually nothing, spares a scan of each field as it is written (nine calls
    // that each paid more to start and finish than to scan).
    let plain = find(&slot[DATA_AT..text_end], 0, NeedsEscape) == text_end - DATA_AT;
    if header[1] & FLAG_TICKS != 0 {
        let unix = wall.unix(u64_at(6));
        time::write_at(&mut stamp, unix.as_secs(), unix.subsec_millis());
        f.text[at::EVENT_TIMESTAMP] = &stamp[..];
        f.present |= 1 << at::EVENT_TIMESTAMP;
    }
    if present & (1 << EVENT_DATA) != 0 {
        f.event_data = slot
            .get(pos..)
            .and_then(|shape| Shape::from_bytes(shape, data))
            .map_or(Data::Json(data), |shape| Data::Scanned(data, shape));
    }
    // Everything was checked at capture, the rules of the configuration too: written
    // without checking again.
    render_fields(&f, out, plain)
}

/// Turns `slot` into JSON if it holds a captured event: rendered into `scratch`, whose
/// buffer the slot then takes, leaving `scratch` the slot's. Swapping only trades the
/// buffers the pool lent (the first `scratch` is made the size of a slot), so nothing is
/// allocated unless an event's JSON outgrows `scratch`, where copying it back would have
/// grown the slot instead; the encoder reserves no more than an event can take
/// ([`json_size_bound`]), so an event that fits a slot does not grow it. It spares the
/// flush thread a copy of every event: `hot_path`'s typed event cost 45 instructions fewer
/// in all threads (3 465 → 3 420, callgrind over 100 000 and 300 000 calls). Rendering a
/// captured event cannot fail — everything was checked at `record` — but if it ever did,
/// the event becomes `{}` (the receiver's refusal then dead-letters it, visibly) and the
/// error is logged.
///
/// [`json_size_bound`]: super::fields::json_size_bound
pub(crate) fn finish(slot: &mut Vec<u8>, wall: &WallClock, scratch: &mut Vec<u8>) {
    if !is_captured(slot) {
        return;
    }
    scratch.clear();
    if scratch.capacity() == 0 {
        // First use (or after an idle trim): a buffer the size of the slots, never smaller
        // than the pool's, which a caller would grow.
        scratch.reserve_exact(slot.capacity());
    }
    if let Err(e) = render(slot, wall, scratch) {
        log::error!("a captured event could not be rendered (a bug in auditbuf): {e}");
        scratch.clear();
        scratch.extend_from_slice(b"{}");
    }
    std::mem::swap(slot, scratch);
    scratch.clear();
}

/// A caller's buffer for rendering its own events ([`finish_here`]).
struct CallerScratch {
    buf: Vec<u8>,
    /// The room it should have: raised by an event it had too little for.
    wanted: usize,
}

/// The room a caller's scratch is first given: enough for any event of up to ~500 bytes of
/// fields, a DataStorage event of ~300 included.
const SCRATCH_BYTES: usize = 4096;

/// Events that could need more room than this are left to the flush thread, so a thread
/// keeps at most this much.
const SCRATCH_MAX: usize = 64 * 1024;

thread_local! {
    static SCRATCH: RefCell<CallerScratch> = const {
        RefCell::new(CallerScratch { buf: Vec::new(), wanted: SCRATCH_BYTES })
    };
    /// Set once [`ready_scratch`] has run on this thread. Until then [`finish_here`] leaves
    /// `SCRATCH` alone: its first use registers its destructor, which allocates, and must
    /// happen on a slow call.
    static READY: Cell<bool> = const { Cell::new(false) };
}

/// The most room rendering `slot`'s captured event can take: the bound [`capture`] checked.
fn render_room(slot: &[u8]) -> usize {
    slot.len()
        .saturating_sub(DATA_AT)
        .saturating_mul(6)
        .saturating_add(1024)
}

/// Gives this thread's scratch the room it wants. Called where a caller under `Block` finds
/// no free slot and is about to wait: a slow call already, and one behind a flush thread that
/// is behind, which is when a caller renders its own events — so the allocation does not
/// land on a fast call.
#[cold]
pub(crate) fn ready_scratch() {
    let _ = SCRATCH.try_with(|scratch| {
        if let Ok(mut scratch) = scratch.try_borrow_mut() {
            let wanted = scratch.wanted;
            if scratch.buf.capacity() < wanted {
                scratch.buf.reserve_exact(wanted);
            }
            let _ = READY.try_with(|ready| ready.set(true));
        }
    });
}

/// [`finish`] on the caller's thread, allocating nothing: through a scratch buffer of the
/// thread's own, which never grows here, into a slot that does not grow either. An event
/// the scratch has too little room for (up to the bound [`capture`] checked, so escaping
/// cannot make it grow) stays captured for the flush thread, and the room is given at the
/// thread's next slow call ([`ready_scratch`]); so does one whose JSON is longer than its
/// slot (the flush thread grows the slot, which the pool then keeps grown), and one during
/// the thread's teardown, or if re-entered.
pub(crate) fn finish_here(slot: &mut Vec<u8>, wall: &WallClock) {
    if !READY.try_with(Cell::get).unwrap_or(false) {
        return;
    }
    let _ = SCRATCH.try_with(|scratch| {
        let Ok(mut scratch) = scratch.try_borrow_mut() else {
            return;
        };
        let room = render_room(slot);
        if room > scratch.buf.capacity() {
            if room <= SCRATCH_MAX {
                scratch.wanted = scratch.wanted.max(room);
            }
            return;
        }
        let json = &mut scratch.buf;
        json.clear();
        // An event that fails to render is left to the flush thread, which reports it.
        if render(slot, wall, json).is_ok() && json.len() <= slot.capacity() {
            slot.clear();
            slot.extend_from_slice(json);
        }
        json.clear();
    });
}

#[cfg(test)]
#[path = "capture_tests.rs"]
mod tests;
