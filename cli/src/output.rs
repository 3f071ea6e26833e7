//! Writing what a command found: sizes, times and ages as people read them, and standard
//! output that a closed pipe (`| head`) does not turn into a panic.

use std::io::{self, Write};
use std::time::{Duration, SystemTime};

/// Writes `text` to standard output. A reader that went away is not an error.
pub(crate) fn print(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// `auditbuf: <message>` on standard error.
pub(crate) fn error(message: &str) {
    let _ = writeln!(io::stderr(), "auditbuf: {message}");
}

/// `512 B`, `12.1 KiB`, `3.0 MiB`, …
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// RFC 3339, UTC, milliseconds.
pub(crate) fn time(at: SystemTime) -> String {
    // RFC 3339 has four-digit years: a time from the year 10000 on (a damaged or hostile
    // timestamp) is shown as the milliseconds it holds, not a panic.
    const YEAR_10000: Duration = Duration::from_secs(253_402_300_800);
    match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) if since >= YEAR_10000 => {
            format!(
                "{} ms after the Unix epoch (year 10000 or later)",
                since.as_millis()
            )
        }
        _ => humantime::format_rfc3339_millis(at).to_string(),
    }
}

/// How long ago `at` was, now: `3h 12m ago`; `in 5s` for a time ahead of this clock.
pub(crate) fn age(at: SystemTime) -> String {
    match SystemTime::now().duration_since(at) {
        Ok(ago) => format!("{} ago", span(ago)),
        Err(ahead) => format!("in {}", span(ahead.duration())),
    }
}

/// Seconds since `at` (negative if ahead), for JSON.
pub(crate) fn age_seconds(at: SystemTime) -> f64 {
    match SystemTime::now().duration_since(at) {
        Ok(ago) => ago.as_secs_f64(),
        Err(ahead) => -ahead.duration().as_secs_f64(),
    }
}

/// `42s`, `5m 3s`, `3h 12m`, `2d 4h`: the two largest units.
pub(crate) fn span(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// `1 event`, `3 events`.
pub(crate) fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `text` on one line, with line breaks and other control characters escaped (`\n`,
/// `\u{1b}`), and the marks that reorder text (bidirectional overrides, U+202E): a
/// receiver's reason is its own text, and a line break in it would break a table, an
/// escape sequence would reach the terminal, an override would show other text than is
/// there.
pub(crate) fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let reorders = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || reorders {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_stay_on_one_line() {
        assert_eq!(
            one_line("HTTP 400: bad\r\n\tfield \u{1b}[31mred"),
            "HTTP 400: bad\\r\\n\\tfield \\u{1b}[31mred"
        );
        assert_eq!(one_line("schön"), "schön");
        assert_eq!(one_line("a\u{202e}b"), "a\\u{202e}b");
    }

    #[test]
    fn sizes_and_spans_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(12_390), "12.1 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(span(Duration::from_secs(42)), "42s");
        assert_eq!(span(Duration::from_secs(303)), "5m 3s");
        assert_eq!(span(Duration::from_secs(3 * 3600 + 720)), "3h 12m");
        assert_eq!(span(Duration::from_secs(2 * 86400 + 4 * 3600)), "2d 4h");
        assert_eq!(count(1, "event", "events"), "1 event");
        assert_eq!(count(0, "event", "events"), "0 events");
    }

    #[test]
    fn times_past_the_year_9999_are_shown_not_a_panic() {
        let at = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        assert_eq!(time(at(1_764_000_000_000)), "2025-11-24T16:00:00.000Z");
        assert_eq!(
            time(at(253_402_300_800_000)),
            "253402300800000 ms after the Unix epoch (year 10000 or later)"
        );
        assert!(time(at(1 << 62)).ends_with("(year 10000 or later)"));
    }
}
