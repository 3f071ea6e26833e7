//! What a CADF event gets when the caller leaves it out: a random (version 4) UUID for its
//! `id` and the current time for its `eventTime`, both written into stack buffers.
//!
//! The UUID must be unique across every process that ever publishes to the same queue,
//! since consumers de-duplicate by it: a collision would make them drop a real event. So
//! each thread keeps a xoshiro256++ generator (256 bits of state) seeded from the
//! operating system's randomness through `std`'s `RandomState`, rather than a 64-bit
//! generator whose streams could overlap across many processes. A `fork()` child would
//! inherit the parent's state and repeat its ids, so the state remembers the fork
//! generation it was seeded in and is seeded again, mixing in the new process id, when it
//! changed.

use std::cell::Cell;
use std::hash::BuildHasher;
use std::time::{SystemTime, UNIX_EPOCH};

use super::time;
use crate::fork;

/// Length of `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`.
pub(crate) const UUID_LEN: usize = 36;

/// Length of `2026-11-23T10:15:30.123456+00:00`.
pub(crate) const EVENT_TIME_LEN: usize = 32;

/// A generator's state and the fork generation it was seeded in (`u64::MAX`: never).
type State = (u64, [u64; 4]);

thread_local! {
    static STATE: Cell<State> = const { Cell::new((u64::MAX, [0; 4])) };
}

/// A random UUID, version 4 (RFC 9562), in lower-case hex: `8-4-4-4-12` digits.
pub(crate) fn uuid_v4() -> [u8; UUID_LEN] {
    let generation = fork::generation();
    let (seeded_in, mut s) = STATE.get();
    if seeded_in != generation {
        s = seed();
    }
    let (hi, lo) = (next(&mut s), next(&mut s));
    STATE.set((generation, s));
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // variant 10xx (RFC 9562)
    format_uuid(&bytes)
}

fn format_uuid(bytes: &[u8; 16]) -> [u8; UUID_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; UUID_LEN];
    let mut at = 0;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        out[at] = HEX[usize::from(b >> 4)];
        out[at + 1] = HEX[usize::from(b & 0xf)];
        at += 2;
    }
    out
}

/// A fresh state: `RandomState` keys come from the operating system once per thread (and
/// change with every `RandomState::new()`), so hashing is a cheap way to 256 bits that no
/// other thread or process shares. The process id and the time keep a `fork()` child, whose
/// keys are a copy of its parent's, apart from it.
fn seed() -> [u64; 4] {
    let keys = std::collections::hash_map::RandomState::new();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let here = STATE.with(|s| std::ptr::from_ref(s) as usize);
    let mut s = [0u64; 4];
    for (i, word) in s.iter_mut().enumerate() {
        *word = keys.hash_one((i, std::process::id(), nanos, here));
    }
    if s == [0; 4] {
        // The one state xoshiro cannot leave.
        s[0] = 1;
    }
    s
}

/// xoshiro256++ (Blackman and Vigna): fast, 256 bits of state, passes BigCrush.
#[inline]
fn next(s: &mut [u64; 4]) -> u64 {
    let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
    let t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s[3].rotate_left(45);
    result
}

/// The current time as audittools writes a CADF `eventTime`: RFC 3339 in UTC with
/// microseconds and a numeric offset, `2026-11-23T10:15:30.123456+00:00` (always six
/// digits, so the length is fixed).
pub(crate) fn event_time_now() -> [u8; EVENT_TIME_LEN] {
    // A clock before 1970 is a broken clock; the epoch is as good an answer as any.
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    event_time_at(since.as_secs(), since.subsec_micros())
}

/// `secs` since the Unix epoch plus `micros`, formatted like [`event_time_now`].
pub(crate) fn event_time_at(secs: u64, micros: u32) -> [u8; EVENT_TIME_LEN] {
    // The millisecond formatter caches the text of the second: reuse its date and time.
    let second = time::at(secs, 0);
    let mut out = *b"0000-00-00T00:00:00.000000+00:00";
    out[..20].copy_from_slice(&second[..20]);
    let mut us = micros.min(999_999);
    for at in (20..26).rev() {
        out[at] = b'0' + (us % 10) as u8;
        us /= 10;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::rules::{is_uuid, rfc3339_seconds};

    #[test]
    fn uuids_are_version_4_and_differ() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = uuid_v4();
            assert!(is_uuid(&id));
            assert_eq!(id[14], b'4', "version nibble");
            assert!(b"89ab".contains(&id[19]), "variant nibble");
            assert!(id.iter().all(|c| !c.is_ascii_uppercase()));
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn threads_get_their_own_streams() {
        let mine = uuid_v4();
        let theirs = std::thread::spawn(uuid_v4).join().unwrap();
        assert_ne!(mine, theirs);
    }

    #[test]
    fn the_format_is_canonical() {
        let bytes = [
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0x4d, 0xef, 0x80, 0x11, 0x22, 0x33, 0x44, 0x55,
            0x66, 0x77,
        ];
        assert_eq!(
            &format_uuid(&bytes),
            b"01234567-89ab-4def-8011-223344556677"
        );
    }

    #[test]
    fn event_times_have_microseconds_and_an_offset() {
        assert_eq!(
            &event_time_at(1_700_000_000, 1234),
            b"2023-11-14T22:13:20.001234+00:00"
        );
        assert_eq!(
            &event_time_at(0, 999_999),
            b"1970-01-01T00:00:00.999999+00:00"
        );
        let now = event_time_now();
        assert!(rfc3339_seconds(&now).is_some());
        assert!(now.ends_with(b"+00:00"));
    }
}
