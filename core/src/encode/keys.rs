//! Duplicate object keys, found without allocating and in bounded time.
//!
//! Receivers disagree on `{"a":1,"a":2}` (most keep the last, some the first, some refuse),
//! so an audit record with a duplicate key says different things to different readers; the
//! typed path's `event_data.event_type` check would read one and the server another.
//!
//! Keys are compared by what they mean (`"a"` equals `"\u0061"`), by a 32-bit hash and, on
//! a hash match, byte by byte. The scanner keeps the keys of every object it is inside on
//! the stack ([`KeySet`], 64 keys): an object's first 24 keys are compared one by one (most
//! events have no bigger object), beyond that they go through a hash table built on first
//! need. An event whose open objects hold more than 64 keys at once is checked again
//! afterwards by [`check_all_objects`], object by object, in chunks of 512 keys per pass
//! over the object: exact for any size, at a cost of one pass per 512 keys of the widest
//! object. On the 1 KiB event of `record/raw_json_1KiB` (42 keys) the check costs about
//! 1 800 instructions, 12 % of the whole `record_json`.

use super::swar::{NeedsEscape, find};
use crate::Error;

/// The error for a duplicate key whose opening quote is at `offset`.
pub(crate) fn duplicate_at(offset: usize) -> Error {
    Error::json_at(offset, "duplicate key in an object")
}

/// Keys of the objects being scanned. A small object's keys are compared with each other
/// one by one; once an object has more than [`LINEAR`] keys, every kept key goes into an
/// open-addressing table. Entries are removed in the reverse order they were added (when
/// their object closes), which lets a removal simply empty its slot.
pub(crate) struct KeySet<const SLOTS: usize, const LIVE: usize> {
    /// Each kept key: its hash in the high half, where it starts (just after its opening
    /// quote) in the low half.
    entries: [u64; LIVE],
    len: usize,
    /// Built when first needed: zeroing it costs more than most events' keys do.
    table: Option<Table<SLOTS, LIVE>>,
}

struct Table<const SLOTS: usize, const LIVE: usize> {
    /// 0 = empty; otherwise the key's hash in the high half and its entry index + 1 below.
    slots: [u64; SLOTS],
    /// Which slot each entry occupies, to empty it again.
    homes: [u16; LIVE],
}

/// Keys an object may have before they are looked up in a table rather than one by one.
const LINEAR: usize = 24;

/// What [`KeySet::insert`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Insert {
    /// The key was new in its object, and is now kept.
    New,
    /// The object already has this key.
    Duplicate,
    /// No room to keep it; nothing was checked.
    Full,
}

/// A key in the input: its bytes between the quotes, and whether they hold escapes.
#[derive(Clone, Copy)]
pub(crate) struct Key {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) escaped: bool,
}

impl<const SLOTS: usize, const LIVE: usize> KeySet<SLOTS, LIVE> {
    const MASK: usize = SLOTS - 1;

    pub(crate) const fn new() -> Self {
        const { assert!(SLOTS.is_power_of_two() && LIVE * 2 <= SLOTS && SLOTS <= 1 << 16) };
        KeySet {
            entries: [0; LIVE],
            len: 0,
            table: None,
        }
    }

    /// Empty again, for another document; the entries' old values are never read.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
        self.table = None;
    }

    /// Entries kept; what [`truncate`](Self::truncate) returns to when an object closes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds `key` (of `b`) to the object whose entries start at index `scope`, unless that
    /// object has it already.
    #[inline]
    pub(crate) fn insert(&mut self, b: &[u8], key: Key, scope: usize) -> Insert {
        let hash = key_hash(b, key);
        let n = self.len;
        if self.table.is_none() {
            let mine = self.entries.get(scope..n).unwrap_or_default();
            for &e in mine {
                if (e >> 32) as u32 == hash && keys_equal(b, e as u32 as usize, key.start) {
                    return Insert::Duplicate;
                }
            }
            if mine.len() < LINEAR {
                return self.push(hash, key);
            }
            self.build_table();
        }
        let i = match self.probe(b, hash, key, scope) {
            Ok(()) => return Insert::Duplicate,
            Err(free) => free,
        };
        let Insert::New = self.push(hash, key) else {
            return Insert::Full;
        };
        if let Some(t) = &mut self.table {
            t.slots[i] = (u64::from(hash) << 32) | (n as u64 + 1);
            t.homes[n] = i as u16;
        }
        Insert::New
    }

    #[inline]
    fn push(&mut self, hash: u32, key: Key) -> Insert {
        let (Some(e), Ok(at)) = (self.entries.get_mut(self.len), u32::try_from(key.start)) else {
            return Insert::Full;
        };
        *e = (u64::from(hash) << 32) | u64::from(at);
        self.len += 1;
        Insert::New
    }

    /// Puts every kept entry in a new table.
    #[cold]
    fn build_table(&mut self) {
        let mut t = Table {
            slots: [0; SLOTS],
            homes: [0; LIVE],
        };
        for (n, &e) in self.entries[..self.len].iter().enumerate() {
            let mut i = (e >> 32) as usize & Self::MASK;
            while t.slots[i] != 0 {
                i = (i + 1) & Self::MASK;
            }
            t.slots[i] = (e & !0xffff_ffff) | (n as u64 + 1);
            t.homes[n] = i as u16;
        }
        self.table = Some(t);
    }

    /// `Ok` if the object whose entries start at `scope` has `key`; otherwise the free
    /// slot where it goes.
    fn probe(&mut self, b: &[u8], hash: u32, key: Key, scope: usize) -> Result<(), usize> {
        if self.table.is_none() {
            self.build_table();
        }
        let Some(t) = &self.table else {
            return Err(0);
        };
        let mut i = hash as usize & Self::MASK;
        loop {
            let slot = t.slots[i];
            if slot == 0 {
                return Err(i);
            }
            let entry = (slot & 0xffff_ffff) as usize - 1;
            if (slot >> 32) as u32 == hash
                && entry >= scope
                && keys_equal(b, self.entries[entry] as u32 as usize, key.start)
            {
                return Ok(());
            }
            i = (i + 1) & Self::MASK;
        }
    }

    /// Whether the object whose entries start at `scope` has `key`, without adding it.
    pub(crate) fn contains(&mut self, b: &[u8], key: Key, scope: usize) -> bool {
        self.probe(b, key_hash(b, key), key, scope).is_ok()
    }

    /// Forgets every entry from index `len` on: the keys of objects that have closed.
    #[inline]
    pub(crate) fn truncate(&mut self, len: usize) {
        if let Some(t) = &mut self.table {
            for &home in t.homes.get(len..self.len).unwrap_or_default() {
                t.slots[usize::from(home) & Self::MASK] = 0;
            }
        }
        self.len = self.len.min(len);
    }
}

const K: u64 = 0x9e37_79b9_7f4a_7c15;

// One multiply per word: the product's high half depends on every bit of the word and of
// what came before, and only that half is kept.
#[inline(always)]
fn mix(h: u64, word: u64) -> u64 {
    (h ^ word).wrapping_mul(K)
}

#[inline(always)]
fn finish(h: u64) -> u32 {
    (h >> 32) as u32
}

/// The hash of what `key` means: of its bytes as written when it has no escapes, of its
/// decoded bytes otherwise (the same function of the same bytes: the length, then eight
/// bytes at a time, the last few zero-padded).
#[inline]
fn key_hash(b: &[u8], key: Key) -> u32 {
    if key.escaped {
        return decoded_hash(b, key.start);
    }
    let load = |i: usize| <[u8; 8]>::try_from(&b[i..i + 8]).map_or(0, u64::from_le_bytes);
    let (mut h, mut i) = (((key.end - key.start) as u64).wrapping_mul(K), key.start);
    while i + 8 <= key.end {
        h = mix(h, load(i));
        i += 8;
    }
    let rest = key.end - i;
    if rest > 0 {
        // The closing quote and more follow the key, so a whole word can usually be read
        // and the bytes past the key masked off.
        let word = if i + 8 <= b.len() {
            load(i) & ((1u64 << (8 * rest)) - 1)
        } else {
            let mut w = [0u8; 8];
            w[..rest].copy_from_slice(&b[i..key.end]);
            u64::from_le_bytes(w)
        };
        h = mix(h, word);
    }
    finish(h)
}

#[cold]
fn decoded_hash(b: &[u8], start: usize) -> u32 {
    let len = Decoded::new(b, start).count();
    let mut h = (len as u64).wrapping_mul(K);
    let mut w = [0u8; 8];
    for (n, byte) in Decoded::new(b, start).enumerate() {
        w[n % 8] = byte;
        if n % 8 == 7 {
            h = mix(h, u64::from_le_bytes(w));
            w = [0; 8];
        }
    }
    if !len.is_multiple_of(8) {
        h = mix(h, u64::from_le_bytes(w));
    }
    finish(h)
}

/// Whether the validated strings whose contents start at `a` and `c` mean the same text.
pub(crate) fn keys_equal(b: &[u8], a: usize, c: usize) -> bool {
    a == c || Decoded::new(b, a).eq(Decoded::new(b, c))
}

/// The UTF-8 bytes a validated JSON string means, from just after its opening quote to its
/// closing one.
pub(crate) struct Decoded<'a> {
    b: &'a [u8],
    i: usize,
    pending: [u8; 4],
    at: u8,
    len: u8,
}

impl<'a> Decoded<'a> {
    pub(crate) fn new(b: &'a [u8], start: usize) -> Self {
        Decoded {
            b,
            i: start,
            pending: [0; 4],
            at: 0,
            len: 0,
        }
    }
}

impl Iterator for Decoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        if self.at < self.len {
            self.at += 1;
            return Some(self.pending[usize::from(self.at - 1)]);
        }
        let c = *self.b.get(self.i)?;
        match c {
            b'"' => None,
            b'\\' => {
                let esc = *self.b.get(self.i + 1)?;
                self.i += 2;
                let simple = match esc {
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'u' => return self.unicode(),
                    other => other,
                };
                Some(simple)
            }
            _ => {
                self.i += 1;
                Some(c)
            }
        }
    }
}

impl Decoded<'_> {
    /// A `\uXXXX` escape (a pair, for a surrogate) whose hex digits start at `self.i`.
    fn unicode(&mut self) -> Option<u8> {
        let high = u32::from(hex4(self.b, self.i)?);
        self.i += 4;
        let code = if (0xd800..0xdc00).contains(&high) {
            let low = u32::from(hex4(self.b, self.i + 2)?);
            self.i += 6;
            0x10000 + ((high - 0xd800) << 10) + (low.wrapping_sub(0xdc00) & 0x3ff)
        } else {
            high
        };
        // The scanner has checked the escapes; a replacement keeps this total anyway.
        let ch = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
        let n = ch.encode_utf8(&mut self.pending).len();
        self.len = n as u8;
        self.at = 1;
        Some(self.pending[0])
    }
}

/// The four hex digits at `i` as a number.
pub(crate) fn hex4(b: &[u8], i: usize) -> Option<u16> {
    let digits = b.get(i..i + 4)?;
    let mut v = 0u16;
    for &d in digits {
        let n = (d as char).to_digit(16)?;
        v = (v << 4) | n as u16;
    }
    Some(v)
}

/// Keys checked together in one pass over an object.
const CHUNK: usize = 512;

/// Checks every object of `b`, which must be valid JSON, for duplicate keys: the slow,
/// exact path for events whose objects hold more keys than the scanner keeps at once.
#[cold]
pub(crate) fn check_all_objects(b: &[u8]) -> Result<(), Error> {
    let mut set = KeySet::<{ 2 * CHUNK }, CHUNK>::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => i = skip_string(b, i + 1).0,
            b'{' => {
                check_object(b, i, &mut set)?;
                i += 1;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Checks the members of the object opening at `open`: keys `[k, k + CHUNK)` are kept in
/// `set` while every later key is looked up, for k = 0, CHUNK, 2·CHUNK, … — every pair of
/// keys meets once.
fn check_object<const S: usize>(
    b: &[u8],
    open: usize,
    set: &mut KeySet<S, CHUNK>,
) -> Result<(), Error> {
    let mut first = 0;
    loop {
        let mut more = false;
        let mut members = Members { b, i: open + 1 };
        let mut index = 0;
        let result = loop {
            let Some(key) = members.next() else {
                break Ok(());
            };
            if index >= first + CHUNK {
                more = true;
                if set.contains(b, key, 0) {
                    break Err(duplicate_at(key.start - 1));
                }
            } else if index >= first {
                match set.insert(b, key, 0) {
                    Insert::Duplicate => break Err(duplicate_at(key.start - 1)),
                    Insert::New | Insert::Full => {}
                }
            }
            index += 1;
        };
        set.truncate(0);
        result?;
        if !more {
            return Ok(());
        }
        first += CHUNK;
    }
}

/// The keys of one object of valid JSON, skipping their values.
struct Members<'a> {
    b: &'a [u8],
    /// Just after the `{` or the last value.
    i: usize,
}

impl Iterator for Members<'_> {
    type Item = Key;

    fn next(&mut self) -> Option<Key> {
        let b = self.b;
        let mut i = skip_ws(b, self.i);
        if b.get(i) == Some(&b',') {
            i = skip_ws(b, i + 1);
        }
        if b.get(i) != Some(&b'"') {
            self.i = b.len();
            return None;
        }
        let start = i + 1;
        let (after, escaped) = skip_string(b, start);
        let key = Key {
            start,
            end: after - 1,
            escaped,
        };
        i = skip_ws(b, after);
        i = skip_ws(b, i + 1); // the colon
        self.i = skip_value(b, i);
        Some(key)
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Past the closing quote of the valid string whose contents start at `i`, and whether
/// it holds escapes.
fn skip_string(b: &[u8], mut i: usize) -> (usize, bool) {
    let mut escaped = false;
    loop {
        i = find(b, i, NeedsEscape);
        match b.get(i) {
            Some(b'\\') => {
                escaped = true;
                i += 2;
            }
            Some(b'"') => return (i + 1, escaped),
            Some(_) => i += 1,
            None => return (b.len(), escaped),
        }
    }
}

/// Past the valid value starting at `i`.
fn skip_value(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    loop {
        match b.get(i) {
            None => return b.len(),
            Some(b'"') => {
                i = skip_string(b, i + 1).0;
                if depth == 0 {
                    return i;
                }
                continue;
            }
            Some(b'{' | b'[') => depth += 1,
            Some(b'}' | b']') => {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            Some(b',' | b' ' | b'\t' | b'\n' | b'\r') if depth == 0 => return i,
            Some(_) => {}
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_at(b: &[u8], start: usize) -> Key {
        let (after, escaped) = skip_string(b, start);
        Key {
            start,
            end: after - 1,
            escaped,
        }
    }

    #[test]
    fn escaped_and_plain_spellings_hash_and_compare_alike() {
        let b = r#""abc" "a\u0062c" "ab\"" "ab\u0022" "\ud83d\ude00x" "\u00e9" "é""#.as_bytes();
        let key = |i: usize| key_at(b, i);
        let starts: Vec<usize> = b
            .iter()
            .enumerate()
            .filter(|(i, c)| **c == b'"' && (*i == 0 || b[i - 1] == b' '))
            .map(|(i, _)| i + 1)
            .collect();
        let h = |i: usize| key_hash(b, key(starts[i]));
        assert_eq!(h(0), h(1));
        assert!(keys_equal(b, starts[0], starts[1]));
        assert_eq!(h(2), h(3));
        assert!(keys_equal(b, starts[2], starts[3]));
        assert!(!keys_equal(b, starts[0], starts[2]));
        assert_eq!(h(5), h(6));
        assert!(keys_equal(b, starts[5], starts[6]));
        let smile: Vec<u8> = Decoded::new(b, starts[4]).collect();
        assert_eq!(smile, "😀x".as_bytes());
    }

    #[test]
    fn a_closed_objects_keys_are_forgotten() {
        let b = br#""a" "b" "a""#;
        let mut set = KeySet::<8, 4>::new();
        assert_eq!(set.insert(b, key_at(b, 1), 0), Insert::New);
        let mark = set.len();
        assert_eq!(set.insert(b, key_at(b, 5), mark), Insert::New);
        // An inner object may repeat an outer key.
        assert_eq!(set.insert(b, key_at(b, 9), mark), Insert::New);
        set.truncate(mark);
        assert_eq!(set.insert(b, key_at(b, 9), 0), Insert::Duplicate);
        assert!(!set.contains(b, key_at(b, 5), 0));
    }

    #[test]
    fn wide_objects_are_checked_exactly() {
        let keys = |n: usize, dup: Option<(usize, usize)>| {
            let mut s = String::from("{\"outer\":{");
            for i in 0..n {
                let k = match dup {
                    Some((at, of)) if at == i => of,
                    _ => i,
                };
                s.push_str(&format!("\"k{k}\":[{{\"k{k}\":1}}],"));
            }
            s.push_str("\"end\":0}}");
            s
        };
        assert!(check_all_objects(keys(2000, None).as_bytes()).is_ok());
        for (at, of) in [(1, 0), (600, 3), (1999, 1500), (1025, 1024)] {
            let text = keys(2000, Some((at, of)));
            let e = check_all_objects(text.as_bytes()).unwrap_err();
            let Error::InvalidJson { offset, .. } = e else {
                panic!("{e}")
            };
            assert!(
                text[offset as usize..].starts_with(&format!("\"k{of}\":")),
                "{at} {of}"
            );
        }
    }
}
