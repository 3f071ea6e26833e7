//! RFC 3339 UTC timestamps with millisecond precision, written into a fixed buffer.
//!
//! Formatting a date costs more than reading the clock, so each thread keeps the text of
//! the last second it formatted and only rewrites the millisecond digits within it.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of `2026-11-23T23:23:00.123Z`.
pub(crate) const TIMESTAMP_LEN: usize = 24;

thread_local! {
    /// The last second formatted, as the three little-endian words of its text.
    static LAST_SECOND: Cell<(u64, [u64; 3])> = const { Cell::new((u64::MAX, [0; 3])) };
}

/// The current time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub(crate) fn now() -> [u8; TIMESTAMP_LEN] {
    // A clock before 1970 is a broken clock; the epoch is as good an answer as any.
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    at(since.as_secs(), since.subsec_millis())
}

/// `secs` since the Unix epoch plus `millis`, formatted.
pub(crate) fn at(secs: u64, millis: u32) -> [u8; TIMESTAMP_LEN] {
    let mut text = [0; TIMESTAMP_LEN];
    write_at(&mut text, secs, millis);
    text
}

/// [`at`] into `text`, written as three 8-byte words, for a caller that copies it as words
/// ([`append`]): built byte by byte and handed back, the array came back through memory,
/// and the caller's wider loads could not be forwarded from the narrower stores: a
/// quarter of the flush thread's `render` samples in `perf annotate`, 2–3 ns of its 87
/// when timed alone.
pub(crate) fn write_at(text: &mut [u8; TIMESTAMP_LEN], secs: u64, millis: u32) {
    let (cached_secs, mut words) = LAST_SECOND.get();
    if cached_secs != secs {
        let second = format_second(secs);
        for (word, bytes) in words.iter_mut().zip(second.chunks_exact(8)) {
            let mut w = [0; 8];
            w.copy_from_slice(bytes);
            *word = u64::from_le_bytes(w);
        }
        LAST_SECOND.set((secs, words));
    }
    let ms = millis.min(999);
    let digit = |d: u32| u64::from(b'0' + d as u8);
    // The last word is `:ss.mmmZ`; the digits are its bytes 4 to 6.
    let digits = digit(ms / 100) | digit(ms / 10 % 10) << 8 | digit(ms % 10) << 16;
    words[2] = words[2] & !(0xFF_FFFF << 32) | digits << 32;
    for (bytes, word) in text.chunks_exact_mut(8).zip(words) {
        bytes.copy_from_slice(&word.to_le_bytes());
    }
}

/// Appends a timestamp [`write_at`] wrote, eight bytes at a time: `memcpy`'s 16-byte loads
/// could not be forwarded from its 8-byte stores.
#[inline]
pub(crate) fn append(out: &mut Vec<u8>, text: &[u8]) {
    let words = text.chunks_exact(8);
    let rest = words.remainder();
    for word in words {
        if let Ok(word) = <[u8; 8]>::try_from(word) {
            out.extend_from_slice(&word);
        }
    }
    out.extend_from_slice(rest);
}

fn format_second(secs: u64) -> [u8; TIMESTAMP_LEN] {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut t = *b"0000-00-00T00:00:00.000Z";
    let two = |t: &mut [u8; TIMESTAMP_LEN], at: usize, v: u64| {
        t[at] = b'0' + (v / 10 % 10) as u8;
        t[at + 1] = b'0' + (v % 10) as u8;
    };
    let year = year.min(9999);
    two(&mut t, 0, year / 100);
    two(&mut t, 2, year % 100);
    two(&mut t, 5, month);
    two(&mut t, 8, day);
    two(&mut t, 11, rem / 3600);
    two(&mut t, 14, rem / 60 % 60);
    two(&mut t, 17, rem % 60);
    t
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm,
/// restricted to non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm); negative
/// before it.
#[inline]
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(secs: u64, ms: u32) -> String {
        String::from_utf8(at(secs, ms).to_vec()).unwrap()
    }

    #[test]
    fn known_instants() {
        assert_eq!(text(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(text(951_782_400, 7), "2000-02-29T00:00:00.007Z");
        assert_eq!(text(1_700_000_000, 123), "2023-11-14T22:13:20.123Z");
        assert_eq!(text(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
        assert_eq!(text(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
        // The cache must not leak one second's text into another.
        assert_eq!(text(1_700_000_001, 5), "2023-11-14T22:13:21.005Z");
        assert_eq!(text(1_700_000_001, 50), "2023-11-14T22:13:21.050Z");
    }

    #[test]
    fn every_millisecond_and_a_cached_second() {
        for ms in 0..1000 {
            assert_eq!(
                text(1_700_000_000, ms),
                format!("2023-11-14T22:13:20.{ms:03}Z")
            );
        }
        assert_eq!(text(1_700_000_000, 1000), "2023-11-14T22:13:20.999Z");
    }

    #[test]
    fn append_copies_any_length() {
        let src: Vec<u8> = (b'a'..=b'z').chain(b'A'..=b'Z').collect();
        for n in 0..src.len() {
            let mut out = b"head".to_vec();
            append(&mut out, &src[..n]);
            assert_eq!(&out[..4], b"head");
            assert_eq!(&out[4..], &src[..n]);
        }
    }

    #[test]
    fn now_has_the_rfc3339_shape() {
        let t = now();
        assert_eq!(t.len(), 24);
        assert_eq!(&t[4..5], b"-");
        assert_eq!(&t[10..11], b"T");
        assert_eq!(&t[23..], b"Z");
        assert!(t.starts_with(b"20"));
    }

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        for days in (0..3_000_000u64).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y as i64, m as i64, d as i64), days as i64);
        }
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    proptest! {
        #[test]
        fn matches_httpdate(secs in 0u64..253_402_300_799) {
            // httpdate formats "Tue, 14 Nov 2023 22:13:20 GMT"; compare the fields.
            let ours = text(secs, 0);
            let theirs = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(secs));
            let parts: Vec<&str> = theirs.split(' ').collect();
            let months = ["Jan","Feb","Mar","Apr","May","Jun","Jul","Aug","Sep","Oct","Nov","Dec"];
            let month = months.iter().position(|m| *m == parts[2]).unwrap() + 1;
            let expect = format!("{}-{:02}-{}T{}.000Z", parts[3], month, parts[1], parts[4]);
            prop_assert_eq!(ours, expect);
        }
    }
}
