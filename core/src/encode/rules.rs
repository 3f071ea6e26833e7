//! What DataStorage requires of a typed event's fields (its OpenAPI `AuditEventRequest`),
//! checked at `record` without allocating: lengths, the outcome enum, RFC 3339 timestamps,
//! the UUID of a parent event, and the categories the configuration allows.
//!
//! The server refuses a whole batch for one bad event and says which only after a
//! bisection, so catching these at `record` gives the caller the error instead of a dead
//! letter minutes later.

use std::time::{SystemTime, UNIX_EPOCH};

use super::fields::Fields;
use super::time::days_from_civil;
use crate::Error;

/// `maxLength` of the spec's length-limited fields, in characters.
pub(crate) const MAX_VERSION: usize = 20;
pub(crate) const MAX_EVENT_TYPE: usize = 100;
pub(crate) const MAX_CATEGORY: usize = 50;
pub(crate) const MAX_ACTION: usize = 50;
pub(crate) const MAX_CORRELATION_ID: usize = 255;
pub(crate) const MAX_ACTOR_IP: usize = 45;

/// The server's window for `event_timestamp`, around its own clock.
const WINDOW_PAST_SECS: i64 = 7 * 86_400;
const WINDOW_FUTURE_SECS: i64 = 60 * 60;

/// The rules a pipeline's configuration adds to the spec's.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventRules {
    /// Allowed `event_category` values; empty allows any.
    pub(crate) categories: Box<[Box<str>]>,
    /// Refuse an `event_timestamp` outside the server's window of the local clock.
    pub(crate) timestamp_window: bool,
}

pub(crate) fn invalid(field: &'static str, reason: &'static str) -> Error {
    Error::InvalidField { field, reason }
}

/// Whether `s`, UTF-8 (or about to be refused for not being it), has at most `max`
/// characters. Counting is only needed when there are more bytes than that.
#[inline]
pub(crate) fn within(s: &[u8], max: usize) -> bool {
    s.len() <= max || s.iter().filter(|&&b| (b as i8) >= -0x40).count() <= max
}

#[inline]
pub(crate) fn check_len(
    field: &'static str,
    s: &[u8],
    max: usize,
    reason: &'static str,
) -> Result<(), Error> {
    if within(s, max) {
        Ok(())
    } else {
        Err(invalid(field, reason))
    }
}

/// `event_outcome` must be `success`, `failure` or `pending`.
#[inline]
pub(crate) fn check_outcome(s: &[u8]) -> Result<(), Error> {
    // A match compares in place; `contains` called `memcmp` for each candidate.
    if matches!(s, b"success" | b"failure" | b"pending") {
        Ok(())
    } else {
        Err(invalid(
            "event_outcome",
            "must be \"success\", \"failure\" or \"pending\"",
        ))
    }
}

impl EventRules {
    #[inline]
    pub(crate) fn check_category(&self, s: &[u8]) -> Result<(), Error> {
        check_len(
            "event_category",
            s,
            MAX_CATEGORY,
            "must be at most 50 characters",
        )?;
        if self.categories.is_empty() || self.categories.iter().any(|c| c.as_bytes() == s) {
            Ok(())
        } else {
            Err(invalid(
                "event_category",
                "is not one of the configured categories",
            ))
        }
    }

    /// Checks an `event_timestamp` the caller gave.
    #[inline]
    pub(crate) fn check_timestamp(&self, s: &[u8]) -> Result<(), Error> {
        let Some(at) = rfc3339_seconds(s) else {
            return Err(invalid(
                "event_timestamp",
                "must be an RFC 3339 date-time, e.g. 2026-11-23T10:15:30.123Z",
            ));
        };
        if self.timestamp_window {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            if at < now - WINDOW_PAST_SECS {
                return Err(invalid(
                    "event_timestamp",
                    "is more than 7 days in the past (DataStorage refuses it)",
                ));
            }
            if at > now + WINDOW_FUTURE_SECS {
                return Err(invalid(
                    "event_timestamp",
                    "is more than 60 minutes in the future (DataStorage refuses it)",
                ));
            }
        }
        Ok(())
    }
}

/// Checks a typed event's fields against the spec's rules and the configuration's.
pub(crate) fn check_fields(f: &Fields<'_>, rules: &EventRules) -> Result<(), Error> {
    for (field, value) in [
        ("event_type", f.event_type()),
        ("event_category", f.event_category()),
        ("event_action", f.event_action()),
        ("event_outcome", f.event_outcome()),
        ("correlation_id", f.correlation_id()),
    ] {
        if value.is_empty() {
            return Err(Error::MissingField { field });
        }
    }
    if let Some(v) = f.version()
        && (v.is_empty() || !within(v, MAX_VERSION))
    {
        return Err(invalid("version", "must be 1 to 20 characters"));
    }
    check_len(
        "event_type",
        f.event_type(),
        MAX_EVENT_TYPE,
        "must be at most 100 characters",
    )?;
    if let Some(ts) = f.event_timestamp() {
        rules.check_timestamp(ts)?;
    }
    rules.check_category(f.event_category())?;
    check_len(
        "event_action",
        f.event_action(),
        MAX_ACTION,
        "must be at most 50 characters",
    )?;
    check_outcome(f.event_outcome())?;
    check_len(
        "correlation_id",
        f.correlation_id(),
        MAX_CORRELATION_ID,
        "must be at most 255 characters",
    )?;
    if let Some(ip) = f.actor_ip() {
        check_len(
            "actor_ip",
            ip,
            MAX_ACTOR_IP,
            "must be at most 45 characters",
        )?;
    }
    if let Some(id) = f.parent_event_id()
        && !is_uuid(id)
    {
        return Err(invalid(
            "parent_event_id",
            "must be a UUID (8-4-4-4-12 hex digits)",
        ));
    }
    if let Some(date) = f.parent_event_date()
        && rfc3339_seconds(date).is_none()
    {
        return Err(invalid(
            "parent_event_date",
            "must be an RFC 3339 date-time, e.g. 2026-11-23T10:15:30.123Z",
        ));
    }
    // DataStorage reads it into a Go `int` (64 bits, signed): a larger value is a 400.
    if f.duration_ms.is_some_and(|ms| ms > i64::MAX as u64) {
        return Err(invalid(
            "duration_ms",
            "must be at most 9223372036854775807 (a signed 64-bit integer)",
        ));
    }
    Ok(())
}

/// '0' in every byte: a word xor this holds each digit's value in its byte.
const ZEROS: u64 = 0x3030_3030_3030_3030;
/// `-` at bytes 4 and 7 of the date word (`YYYY-MM-`), xor '0'.
const SEPARATORS_DATE: u64 = ((b'-' ^ b'0') as u64) << 32 | ((b'-' ^ b'0') as u64) << 56;
/// `T` at byte 2 and `:` at byte 5 of the time word (`DDTHH:MM`), xor '0'.
const SEPARATORS_TIME: u64 = ((b'T' ^ b'0') as u64) << 16 | ((b':' ^ b'0') as u64) << 40;
/// `:` at byte 1 of the seconds word (`M:SS`), xor '0'.
const SEPARATORS_SECONDS: u64 = ((b':' ^ b'0') as u64) << 8;

/// The high bit of each byte of `x` (a word xor '0') selected by `digits` (0xFF bytes)
/// that is not 0-9. Exact: a byte from 10 to 0x7F sets its bit in `x + 0x76`, one from
/// 0x80 in `x`. A carry out of a byte comes only from one over 0x89: a digit's, flagged
/// itself, or a separator's, which the caller tests apart; a valid time has none.
#[inline(always)]
fn not_digits(x: u64, digits: u64) -> u64 {
    ((x.wrapping_add(0x7676_7676_7676_7676)) | x) & digits & 0x8080_8080_8080_8080
}

/// Seconds since the Unix epoch of an RFC 3339 date-time as Go's `time.RFC3339` reads it
/// (DataStorage is written in Go): `YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1 to 9
/// digits, then `Z` or `±HH:MM`; upper-case `T` and `Z`; no leap second.
pub(crate) fn rfc3339_seconds(t: &[u8]) -> Option<i64> {
    // The fixed part is read as three words (bytes 0-7, 8-15, 15-18) and its fourteen
    // digits checked together: read field by field, with a bounds check and a loop each,
    // checking a typed or CADF event's time took ~350 instructions, as much as the rest of
    // the event's rules.
    let (head, rest) = t.split_first_chunk::<19>()?;
    let word = |at: usize| -> u64 {
        let mut w = [0; 8];
        let n = (19 - at).min(8);
        w[..n].copy_from_slice(&head[at..at + n]);
        u64::from_le_bytes(w) ^ ZEROS
    };
    // Each byte minus '0' (by xor: a digit becomes 0-9, anything else does not).
    let (date, time, seconds) = (word(0), word(8), word(15));
    let digits = not_digits(date, 0x00FF_FF00_FFFF_FFFF)
        | not_digits(time, 0xFFFF_00FF_FF00_FFFF)
        | not_digits(seconds, 0xFFFF_00FF);
    if digits != 0
        || (date ^ SEPARATORS_DATE) & 0xFF00_00FF_0000_0000 != 0
        || (time ^ SEPARATORS_TIME) & 0x0000_FF00_00FF_0000 != 0
        || (seconds ^ SEPARATORS_SECONDS) & 0x0000_FF00 != 0
    {
        return None;
    }
    let two = |w: u64, at: u32| {
        ((w >> (8 * at)) & 0xFF) as i64 * 10 + ((w >> (8 * at + 8)) & 0xFF) as i64
    };
    let (year, month, day) = (
        two(date, 0) * 100 + two(date, 2),
        two(date, 5),
        two(time, 0),
    );
    let (hour, minute, second) = (two(time, 3), two(time, 6), two(seconds, 2));
    let zone = match rest.split_first() {
        Some((b'.', fraction)) => {
            let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
            if !(1..=9).contains(&digits) {
                return None;
            }
            &fraction[digits..]
        }
        _ => rest,
    };
    let offset = match *zone {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h0, b':', m1, m0] => {
            let z = [h1, h0, m1, m0].map(|c| c.wrapping_sub(b'0'));
            let (h, m) = (
                i64::from(z[0]) * 10 + i64::from(z[1]),
                i64::from(z[2]) * 10 + i64::from(z[3]),
            );
            if z.iter().any(|&c| c > 9) || h > 23 || m > 59 {
                return None;
            }
            if sign == b'+' {
                h * 3600 + m * 60
            } else {
                -(h * 3600 + m * 60)
            }
        }
        _ => return None,
    };
    let valid = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour <= 23
        && minute <= 59
        && second <= 59;
    valid.then(|| {
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Whether `s` is a UUID in its canonical form, `8-4-4-4-12` hex digits (either case).
pub(crate) fn is_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_as_go_reads_it() {
        for (t, secs) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2026-11-23T10:15:30.123Z", 1_795_428_930),
            ("2026-11-23T11:15:30+01:00", 1_795_428_930),
            ("2026-11-23T09:15:30.1-01:00", 1_795_428_930),
            ("2000-02-29T23:59:59.999999999Z", 951_868_799),
            ("0001-01-01T00:00:00Z", -62_135_596_800),
        ] {
            assert_eq!(rfc3339_seconds(t.as_bytes()), Some(secs), "{t}");
        }
        for t in [
            "",
            "yesterday-ish",
            "2026-11-23",
            "2026-11-23 10:15:30Z",
            "2026-11-23t10:15:30Z",
            "2026-11-23T10:15:30z",
            "2026-11-23T10:15:30",
            "2026-11-23T10:15:30.Z",
            "2026-11-23T10:15:30.1234567890Z",
            "2026-11-23T10:15:60Z",
            "2026-11-23T24:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-23T10:15:30+1:00",
            "2026-11-23T10:15:30+24:00",
            "2026-11-23T10:15:30+01:60",
            "2026-11-23T10:15:30+0100",
            "2026-11-23T10:15:30Z ",
            "+2026-11-23T10:15:30Z",
            "2026-11-23T10:15:30,5Z",
            "２026-11-23T10:15:30Z",
        ] {
            assert_eq!(rfc3339_seconds(t.as_bytes()), None, "{t:?}");
        }
    }

    #[test]
    fn every_byte_of_the_fixed_part_is_checked() {
        let valid = b"2026-01-01T00:00:00Z";
        for i in 0..19 {
            for c in 0..=u8::MAX {
                let mut t = *valid;
                t[i] = c;
                let expect = match i {
                    4 | 7 => c == b'-',
                    10 => c == b'T',
                    13 | 16 => c == b':',
                    _ => c.is_ascii_digit() && rfc3339_seconds_field_by_field(&t).is_some(),
                };
                assert_eq!(
                    rfc3339_seconds(&t).is_some(),
                    expect,
                    "{:?}",
                    String::from_utf8_lossy(&t)
                );
            }
        }
    }

    /// The reading of `rfc3339_seconds` before it checked the digits together (kept to
    /// compare with).
    fn rfc3339_seconds_field_by_field(t: &[u8]) -> Option<i64> {
        let digits = |at: usize, n: usize| -> Option<i64> {
            let mut v = 0;
            for &c in t.get(at..at + n)? {
                if !c.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + i64::from(c - b'0');
            }
            Some(v)
        };
        let is = |at: usize, c: u8| t.get(at) == Some(&c);
        let year = digits(0, 4)?;
        let month = digits(5, 2)?;
        let day = digits(8, 2)?;
        let hour = digits(11, 2)?;
        let minute = digits(14, 2)?;
        let second = digits(17, 2)?;
        if !(is(4, b'-') && is(7, b'-') && is(10, b'T') && is(13, b':') && is(16, b':')) {
            return None;
        }
        let mut i = 19;
        if is(i, b'.') {
            let frac = t[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if !(1..=9).contains(&frac) {
                return None;
            }
            i += 1 + frac;
        }
        let offset = match t.get(i)? {
            b'Z' => {
                i += 1;
                0
            }
            sign @ (b'+' | b'-') => {
                let (h, m) = (digits(i + 1, 2)?, digits(i + 4, 2)?);
                if !is(i + 3, b':') || h > 23 || m > 59 {
                    return None;
                }
                i += 6;
                if *sign == b'+' {
                    h * 3600 + m * 60
                } else {
                    -(h * 3600 + m * 60)
                }
            }
            _ => return None,
        };
        let valid = i == t.len()
            && (1..=12).contains(&month)
            && (1..=days_in_month(year, month)).contains(&day)
            && hour <= 23
            && minute <= 59
            && second <= 59;
        valid.then(|| {
            days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset
        })
    }

    proptest::proptest! {
        /// Valid times, each damaged at one byte (or cut, or lengthened), read alike by both.
        #[test]
        fn rfc3339_reads_as_the_field_by_field_reading(
            secs in 0u64..253_402_300_799,
            zone in proptest::sample::select(vec!["Z", "+00:00", "-23:59", "+05:30", "+24:00", "-01:60", "z", ""]),
            fraction in proptest::sample::select(vec!["", ".1", ".123", ".123456789", ".1234567890", "."]),
            at in 0usize..40,
            byte in proptest::prelude::any::<u8>(),
            damage in 0u8..4,
        ) {
            let text = super::super::time::at(secs, 0);
            let mut t = text[..19].to_vec();
            t.extend_from_slice(fraction.as_bytes());
            t.extend_from_slice(zone.as_bytes());
            match damage {
                0 if at < t.len() => t[at] = byte,
                1 => t.truncate(at),
                2 => t.push(byte),
                _ => {}
            }
            proptest::prop_assert_eq!(rfc3339_seconds(&t), rfc3339_seconds_field_by_field(&t), "{:?}", String::from_utf8_lossy(&t));
        }
    }

    #[test]
    fn rfc3339_agrees_with_the_formatter() {
        let mut secs = 0u64;
        while secs < 253_402_300_799 {
            let text = super::super::time::at(secs, 7);
            assert_eq!(rfc3339_seconds(&text), Some(secs as i64));
            secs += 86_399 * 13 + 7;
        }
    }

    #[test]
    fn lengths_count_characters() {
        assert!(within(b"abc", 3));
        assert!(!within(b"abcd", 3));
        assert!(within("ééé".as_bytes(), 3));
        assert!(!within("éééé".as_bytes(), 3));
        assert!(within("日本語🎉".as_bytes(), 4));
    }

    #[test]
    fn uuids_and_outcomes() {
        assert!(is_uuid(b"018f3c9e-0000-7000-8000-000000000001"));
        assert!(is_uuid(b"018F3C9E-ABCD-7000-8000-00000000000F"));
        for bad in [
            &b""[..],
            b"018f3c9e000070008000000000000001",
            b"018f3c9e-0000-7000-8000-00000000000g",
            b"{018f3c9e-0000-7000-8000-000000000001}",
            b"018f3c9e-0000-7000-8000_000000000001",
        ] {
            assert!(!is_uuid(bad));
        }
        for ok in ["success", "failure", "pending"] {
            check_outcome(ok.as_bytes()).unwrap();
        }
        for bad in ["maybe", "Success", "", "success "] {
            assert!(check_outcome(bad.as_bytes()).is_err());
        }
    }

    #[test]
    fn categories_and_the_window_are_opt_in() {
        let any = EventRules::default();
        any.check_category(b"anything").unwrap();
        assert!(any.check_category(&[b'x'; 51]).is_err());
        let listed = EventRules {
            categories: vec!["gateway".into(), "security".into()].into(),
            ..EventRules::default()
        };
        listed.check_category(b"security").unwrap();
        assert!(matches!(
            listed.check_category(b"tape"),
            Err(Error::InvalidField {
                field: "event_category",
                ..
            })
        ));

        let old = b"2001-01-01T00:00:00Z";
        any.check_timestamp(old).unwrap();
        let window = EventRules {
            timestamp_window: true,
            ..EventRules::default()
        };
        assert!(window.check_timestamp(old).is_err());
        assert!(window.check_timestamp(b"2999-01-01T00:00:00Z").is_err());
        window.check_timestamp(&super::super::time::now()).unwrap();
    }
}
