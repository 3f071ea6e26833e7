//! Checks that bytes are exactly one JSON object that every receiver reads the same way and
//! Postgres can store, without allocating, and notes the few top-level keys the encoder
//! completes or compares.
//!
//! Beyond RFC 8259 (UTF-8, escapes, no lone surrogates) it refuses what parsers disagree on
//! or databases refuse: duplicate keys (see [`keys`](super::keys)), numbers of magnitude
//! 1e308 or more (the largest double is about 1.8e308, and parsers round differently near
//! it: serde_json refuses some values below it), `\u0000` (Postgres `jsonb` and `text`
//! refuse it), and nesting deeper than [`MAX_DEPTH`].

use super::flat;
use super::keys::{Insert, Key, KeySet, check_all_objects, duplicate_at, hex4};
use super::swar::{NeedsEscape, StringSpecial, find};
use std::cell::RefCell;

use crate::Error;

/// Deepest nesting of an event, counted on the wire (the event's own object is level 1).
/// serde_json reads at most 127 levels, and a batch sent as a JSON array adds one.
pub(crate) const MAX_DEPTH: u32 = 126;

/// The reason given for nesting deeper than [`MAX_DEPTH`].
const TOO_DEEP: &str = "nesting deeper than 126 levels (counted in the whole event)";

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

impl ObjectInfo {
    /// Notes `key` (its text, escapes decoded) if it is a top-level key the encoder
    /// completes or compares;
    /// says whether it is `event_type`, whose value's span the scan records if it is a
    /// string.
    #[inline]
    pub(crate) fn note_key(&mut self, key: &[u8]) -> bool {
        match key {
            b"version" => self.has_version = true,
            b"event_timestamp" => self.has_timestamp = true,
            b"event_type" => {
                self.has_event_type = true;
                self.event_type = None;
                return true;
            }
            _ => {}
        }
        false
    }
}

/// [`ObjectInfo::note_key`] for a key written with escapes, by what it means: a
/// `"versio\u006e"` is `version`, which the encoder must not add again, and an
/// `"event_\u0074ype"` is `event_type`, which it compares.
#[cold]
fn note_escaped_key(info: &mut ObjectInfo, b: &[u8], start: usize) -> bool {
    // Longer than every key `note_key` knows once decoded: none of them.
    let mut text = [0u8; 16];
    let mut len = 0;
    for byte in super::keys::Decoded::new(b, start) {
        let Some(slot) = text.get_mut(len) else {
            return false;
        };
        *slot = byte;
        len += 1;
    }
    info.note_key(&text[..len])
}

/// Keys the scanner keeps at once, over all the objects it is inside; an event with more
/// is checked for duplicates by a second, slower pass.
const LIVE_KEYS: usize = 64;

/// Scans `b`, which must hold one JSON object and nothing but whitespace around it, nested
/// at most `max_depth` levels.
///
/// Top-level keys are recognised by what they mean: a key spelled with escapes
/// (`"versio\u006e"`) is `version` (and a duplicate of another `version`).
pub(crate) fn scan_object(b: &[u8], max_depth: u32) -> Result<ObjectInfo, Error> {
    let mut info = ObjectInfo::default();
    scan_object_into(b, max_depth, &mut info)?;
    Ok(info)
}

/// [`scan_object`] into `info` (left in an unspecified state on error), for the hot paths:
/// see [`flat::scan_into`] for why the result is not handed back.
#[inline]
pub(crate) fn scan_object_into(
    b: &[u8],
    max_depth: u32,
    info: &mut ObjectInfo,
) -> Result<(), Error> {
    // A typical event is compact and shallow: the general scan's setup costs more than
    // checking a small `event_data` does (18 of 40 ns for a 53-byte one).
    if flat::scan_into(b, max_depth, info) {
        return Ok(());
    }
    *info = scan_with_stacks(b, max_depth)?;
    Ok(())
}

/// [`scan_object`] without its shortcut for compact, shallow objects.
pub(crate) fn scan_with_stacks(b: &[u8], max_depth: u32) -> Result<ObjectInfo, Error> {
    // The scanner's 1 KiB of stacks and key set, zeroed and moved into place on every call,
    // cost more than a small event's scan (75 of 185 ns for a 53-byte `event_data` on
    // 2026-11-30's host, before the shortcut above took such objects); the
    // thread's own copy is only reset. A nested call (none today) or one during the
    // thread's teardown gets a fresh copy.
    SCRATCH
        .try_with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => scan_with(b, max_depth, &mut scratch),
            Err(_) => scan_with(b, max_depth, &mut Scratch::new()),
        })
        .unwrap_or_else(|_| scan_with(b, max_depth, &mut Scratch::new()))
}

/// What a scan needs beyond a few registers, kept per thread (see [`scan_object`]).
struct Scratch {
    keys: KeySet<{ 2 * LIVE_KEYS }, LIVE_KEYS>,
    /// Whether each open container is an object.
    in_objects: [bool; MAX_DEPTH as usize],
    /// Where each open object's keys start in `keys`.
    key_marks: [u8; MAX_DEPTH as usize],
}

impl Scratch {
    const NEW: Scratch = Scratch {
        keys: KeySet::new(),
        in_objects: [false; MAX_DEPTH as usize],
        key_marks: [0; MAX_DEPTH as usize],
    };

    fn new() -> Scratch {
        Scratch::NEW
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch::NEW) };
}

fn scan_with(b: &[u8], max_depth: u32, scratch: &mut Scratch) -> Result<ObjectInfo, Error> {
    scratch.keys.clear();
    let mut s = Scanner {
        b,
        i: 0,
        info: ObjectInfo::default(),
        capture_event_type_at: usize::MAX,
        keys: &mut scratch.keys,
        in_objects: &mut scratch.in_objects,
        key_marks: &mut scratch.key_marks,
        wide: false,
        max_depth: max_depth.min(MAX_DEPTH),
        // Invalid input is scanned byte by byte as before, so its first error is the same.
        // ASCII first: `simdutf8` falls back to the standard check below 64 bytes.
        utf8: b.is_ascii() || simdutf8::basic::from_utf8(b).is_ok(),
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
    if s.wide {
        check_all_objects(b)?;
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
    keys: &'a mut KeySet<{ 2 * LIVE_KEYS }, LIVE_KEYS>,
    in_objects: &'a mut [bool; MAX_DEPTH as usize],
    key_marks: &'a mut [u8; MAX_DEPTH as usize],
    /// More keys were open at once than `keys` holds: check them all afterwards.
    wide: bool,
    max_depth: u32,
    /// The whole input is valid UTF-8 (checked at once with SIMD): strings need only be
    /// scanned for quotes, backslashes and control characters.
    utf8: bool,
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
        Error::json_at(self.i, reason)
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
    /// tracked in fixed stacks (whether each is an object, and where its keys start in
    /// `keys`), so hostile nesting cannot overflow the thread's stack. Entries of the stacks
    /// are written before they are read: what an earlier scan left there does not matter.
    fn value(&mut self) -> Result<(), Error> {
        let mut depth: u32 = 0;
        loop {
            // One value.
            let start = self.i;
            match self.peek() {
                Some(open @ (b'{' | b'[')) => {
                    if depth == self.max_depth {
                        return Err(self.err(TOO_DEEP));
                    }
                    let is_object = open == b'{';
                    self.in_objects[depth as usize] = is_object;
                    self.key_marks[depth as usize] = self.keys.len() as u8;
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
                            self.member_key(depth, self.key_marks[depth as usize - 1])?;
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
                let level = depth as usize - 1;
                let in_object = self.in_objects[level];
                match (self.peek(), in_object) {
                    (Some(b','), _) => {
                        self.i += 1;
                        self.ws();
                        if in_object {
                            self.member_key(depth, self.key_marks[level])?;
                        }
                        break;
                    }
                    (Some(b'}'), true) | (Some(b']'), false) => {
                        self.i += 1;
                        depth -= 1;
                        if in_object {
                            self.keys.truncate(usize::from(self.key_marks[level]));
                        }
                    }
                    (_, true) => return Err(self.unexpected("expected ',' or '}'")),
                    (_, false) => return Err(self.unexpected("expected ',' or ']'")),
                }
            }
        }
    }

    /// Parses `"key" :` and the whitespace after it; refuses a key its object already has
    /// (whose keys start at `scope` in `keys`); notes interesting top-level keys.
    fn member_key(&mut self, depth: u32, scope: u8) -> Result<(), Error> {
        if self.peek() != Some(b'"') {
            return Err(self.unexpected("expected a string key"));
        }
        let quote = self.i;
        let key_start = self.i + 1;
        self.i += 1;
        let escaped = self.string()?;
        let key = Key {
            start: key_start,
            end: self.i - 1,
            escaped,
        };
        if !self.wide {
            match self.keys.insert(self.b, key, usize::from(scope)) {
                Insert::New => {}
                Insert::Duplicate => return Err(duplicate_at(quote)),
                Insert::Full => self.wide = true,
            }
        }
        self.ws();
        if self.peek() != Some(b':') {
            return Err(self.unexpected("expected ':' after the key"));
        }
        self.i += 1;
        self.ws();
        if depth == 1 {
            let noted = if key.escaped {
                note_escaped_key(&mut self.info, self.b, key.start)
            } else {
                self.info.note_key(&self.b[key.start..key.end])
            };
            if noted {
                self.capture_event_type_at = self.i;
            }
        }
        Ok(())
    }

    /// Scans string content after the opening quote, up to and including the closing one;
    /// says whether it holds escapes.
    #[inline(always)]
    fn string(&mut self) -> Result<bool, Error> {
        let b = self.b;
        let mut i = self.i;
        let mut escaped = false;
        loop {
            i = if self.utf8 {
                find(b, i, NeedsEscape)
            } else {
                find(b, i, StringSpecial)
            };
            let Some(&c) = b.get(i) else {
                self.i = i;
                return Err(self.err("unterminated string"));
            };
            match c {
                b'"' => {
                    self.i = i + 1;
                    return Ok(escaped);
                }
                b'\\' => {
                    escaped = true;
                    i = escape_end(b, i).map_err(|reason| Error::json_at(i, reason))?;
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
        match literal_end(self.b, self.i, word) {
            Some(end) => {
                self.i = end;
                Ok(())
            }
            None => Err(self.unexpected("invalid literal")),
        }
    }

    fn number(&mut self) -> Result<(), Error> {
        match number_end(self.b, self.i) {
            Ok(end) => {
                self.i = end;
                Ok(())
            }
            Err((at, reason)) => {
                self.i = at;
                Err(self.err(reason))
            }
        }
    }
}

/// Just past `word` at `i`, if it is there.
#[inline]
pub(crate) fn literal_end(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    b.get(i..)?.starts_with(word).then_some(i + word.len())
}

/// Just past the number at `start`; or where it goes wrong, and why.
pub(crate) fn number_end(b: &[u8], start: usize) -> Result<usize, (usize, &'static str)> {
    let mut i = start;
    let digits = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let int_start = i;
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(i + 1),
        _ => return Err((i, "invalid number")),
    }
    let int = &b[int_start..i];
    let mut frac: &[u8] = &[];
    if b.get(i) == Some(&b'.') {
        let end = digits(i + 1);
        if end == i + 1 {
            return Err((end, "expected a digit after the decimal point"));
        }
        frac = &b[i + 1..end];
        i = end;
    }
    let mut exp: Option<(bool, &[u8])> = None;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        let negative = b.get(i) == Some(&b'-');
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let end = digits(i);
        if end == i {
            return Err((end, "expected a digit in the exponent"));
        }
        exp = Some((negative, &b[i..end]));
        i = end;
    }
    // Integers of up to 308 digits are below 1e308: the usual case needs no more.
    if (exp.is_some() || int.len() > 308) && too_large(int, frac, exp) {
        return Err((start, "number of magnitude 1e308 or more"));
    }
    Ok(i)
}

/// Whether the number with these digits has a magnitude of at least 1e308.
fn too_large(int: &[u8], frac: &[u8], exp: Option<(bool, &[u8])>) -> bool {
    // The value is 0.d₁d₂… × 10^e with d₁ ≠ 0; it is ≥ 1e308 exactly when e ≥ 309.
    let lead: i64 = if int != b"0" {
        int.len() as i64
    } else {
        match frac.iter().position(|&d| d != b'0') {
            Some(zeros) => -(zeros as i64),
            None => return false,
        }
    };
    let exp = exp.map_or(0, |(negative, digits)| {
        // Saturating: an exponent of more than 15 digits is out of range either way.
        let v = digits.iter().fold(0i64, |v, &d| {
            (v * 10 + i64::from(d - b'0')).min(1_000_000_000_000_000)
        });
        if negative { -v } else { v }
    });
    lead.saturating_add(exp) >= 309
}

/// End of the escape sequence starting with the backslash at `i`.
pub(crate) fn escape_end(b: &[u8], i: usize) -> Result<usize, &'static str> {
    match b.get(i + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 2),
        Some(b'u') => {
            let unit = hex4(b, i + 2).ok_or("invalid \\u escape")?;
            match unit {
                0 => Err("\\u0000 in a string (Postgres cannot store it)"),
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

/// End of the UTF-8 sequence whose lead byte is at `i`, if it is well formed.
pub(crate) fn utf8_char_end(b: &[u8], i: usize) -> Option<usize> {
    let lead = *b.get(i)?;
    let cont = |k: usize| b.get(i + k).is_some_and(|&c| c & 0xc0 == 0x80);
    // The second byte's range rules out overlongs, surrogates and code points past
    // U+10FFFF (RFC 3629, table 3-7 of the Unicode standard).
    let second = |lo: u8, hi: u8| b.get(i + 1).is_some_and(|&c| (lo..=hi).contains(&c));
    let width = match lead {
        0xC2..=0xDF => 2,
        0xE0 => 3 * usize::from(second(0xA0, 0xBF)),
        0xE1..=0xEC | 0xEE..=0xEF => 3,
        0xED => 3 * usize::from(second(0x80, 0x9F)),
        0xF0 => 4 * usize::from(second(0x90, 0xBF)),
        0xF1..=0xF3 => 4,
        0xF4 => 4 * usize::from(second(0x80, 0x8F)),
        _ => 0,
    };
    (width > 0 && (1..width).all(cont)).then_some(i + width)
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
