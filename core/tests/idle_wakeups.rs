//! An idle pipeline leaves the CPU alone: its flush thread wakes a few times a second at
//! most, whether it was never used or has just finished a burst. Measured from the
//! kernel's count of the thread's context switches (Linux `/proc`).
#![cfg(target_os = "linux")]

use std::time::Duration;

use auditbuf::{AuditEvent, Config, NullSink, Pipeline};

/// Context switches (voluntary + involuntary) of this process's threads named `name`.
fn switches(name: &str) -> u64 {
    let mut total = 0;
    let mut found = false;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = task.expect("a task").path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        found = true;
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        for line in status.lines() {
            if line.starts_with("voluntary_ctxt_switches:")
                || line.starts_with("nonvoluntary_ctxt_switches:")
            {
                total += line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    assert!(found, "no thread named {name}: nothing would be measured");
    total
}

fn wakeups_per_second(name: &str, over: Duration) -> f64 {
    let before = switches(name);
    std::thread::sleep(over);
    (switches(name) - before) as f64 / over.as_secs_f64()
}

#[test]
fn an_idle_flush_thread_wakes_rarely() {
    let config = Config::default()
        .queue_capacity(10_000)
        .max_lanes(8)
        .overflow(auditbuf::Overflow::Block {
            timeout: Duration::from_secs(60),
        });
    let pipeline = Pipeline::new(config, NullSink).expect("pipeline");
    std::thread::sleep(Duration::from_millis(300));
    let never_used = wakeups_per_second("auditbuf-flush", Duration::from_secs(2));
    let event = AuditEvent::new("a.b", "a", "b", "success", "c-1");
    for _ in 0..200_000 {
        while pipeline.record(&event).is_err() {
            std::thread::yield_now();
        }
    }
    let report = pipeline.flush(Duration::from_secs(10));
    assert!(report.completed);
    std::thread::sleep(Duration::from_millis(300));
    let after_burst = wakeups_per_second("auditbuf-flush", Duration::from_secs(2));
    eprintln!("wake-ups a second: never used {never_used:.1}, after a burst {after_burst:.1}");
    let stats = pipeline.close(Duration::from_secs(5)).stats;
    assert!(stats.is_consistent(), "{stats:?}");
    assert!(never_used <= 10.0, "never used: {never_used:.1} a second");
    assert!(
        after_burst <= 20.0,
        "after a burst: {after_burst:.1} a second"
    );
}
