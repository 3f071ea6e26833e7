//! Timestamps of captured events: `record` reads a cycle counter, the flush thread turns it
//! into wall-clock time. Over 10 s they must stay within 1 ms of `SystemTime`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auditbuf::{AuditEvent, CallbackSink, Config, Outcome, Pipeline};

/// Milliseconds since the epoch of `2026-11-30T12:00:01.250Z`.
fn parse_ms(ts: &str) -> u64 {
    let b = ts.as_bytes();
    let n = |r: std::ops::Range<usize>| -> i64 { ts[r].parse().unwrap() };
    assert_eq!(b.len(), 24, "{ts}");
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
    (secs * 1000 + n(20..23)) as u64
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn captured_timestamps_stay_within_a_millisecond_of_the_wall_clock() {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = CallbackSink::new({
        let seen = Arc::clone(&seen);
        move |batch: &[&[u8]]| {
            let mut seen = seen.lock().unwrap();
            for e in batch {
                let v: serde_json::Value = serde_json::from_slice(e).unwrap();
                seen.push(v["event_timestamp"].as_str().unwrap().to_owned());
            }
            Outcome::Delivered
        }
    });
    let p = Pipeline::new(
        Config::default().flush_interval(Duration::from_millis(50)),
        sink,
    )
    .unwrap();
    let mut windows = Vec::new();
    for _ in 0..200 {
        let before = now_ms();
        p.record(&AuditEvent::new(
            "t.tick", "gateway", "tick", "success", "rr",
        ))
        .unwrap();
        let after = now_ms();
        windows.push((before, after));
        std::thread::sleep(Duration::from_millis(50));
    }
    let report = p.close(Duration::from_secs(5));
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), windows.len());
    let mut worst = 0i64;
    for (ts, (before, after)) in seen.iter().zip(&windows) {
        let at = parse_ms(ts) as i64;
        let off = if at < *before as i64 {
            *before as i64 - at
        } else if at > *after as i64 {
            at - *after as i64
        } else {
            0
        };
        worst = worst.max(off);
    }
    assert!(worst <= 1, "a timestamp was {worst} ms off the wall clock");
}
