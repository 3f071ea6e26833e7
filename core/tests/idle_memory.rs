//! Memory after a burst: an idle pipeline gives back what a burst of large events made it
//! allocate (tracing #2415: a stalled sink, 10 000 events of ~6 KB, 58.7 MB held for good).
//! Alone in its binary, so no other test's allocations move the figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use auditbuf::{CallbackSink, Config, Outcome, Pipeline};

/// Resident set size of this process, in bytes (Linux).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn an_idle_pipeline_holds_little_memory_after_a_burst() {
    let before = rss();
    let go = Arc::new(AtomicBool::new(false));
    let sink = CallbackSink::new({
        let go = Arc::clone(&go);
        move |_: &[&[u8]]| {
            while !go.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            Outcome::Delivered
        }
    });
    let p = Pipeline::new(Config::default(), sink).unwrap();
    let pad = "x".repeat(6_000);
    let mut accepted = 0;
    for i in 0..10_000 {
        let event = format!(r#"{{"event_type":"t","n":{i},"pad":"{pad}"}}"#);
        if p.record_json(event.as_bytes()).is_ok() {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 10_000);
    let burst = rss();
    go.store(true, Ordering::SeqCst);
    let report = p.flush(Duration::from_secs(30));
    assert!(report.completed);
    assert_eq!(report.stats.delivered, 10_000);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    // Idle for longer than the pipeline waits before freeing its spare slots.
    std::thread::sleep(Duration::from_secs(5));
    let idle = rss();
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    println!(
        "RSS before {:.1} MiB, after the burst {:.1} MiB, idle {:.1} MiB",
        mib(before),
        mib(burst),
        mib(idle)
    );
    assert!(
        idle.saturating_sub(before) <= 8 << 20,
        "an idle pipeline holds {:.1} MiB more than before it existed",
        mib(idle.saturating_sub(before))
    );
    drop(p);
}
