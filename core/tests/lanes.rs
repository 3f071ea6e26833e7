//! Lanes (`max_lanes` 8) under several threads: every slot stays within reach of a caller
//! that needs it, and each thread's events keep their order; with the default single lane,
//! a caller's events keep their order whatever thread each call runs on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use auditbuf::{CallbackSink, Config, Outcome, Overflow, Pipeline, RetryPolicy};

/// A sink that refuses every batch for now while `hold` is set (a receiver down), and
/// keeps what it is given.
fn holding(
    hold: &Arc<AtomicBool>,
    seen: &Arc<Mutex<Vec<(u64, u64)>>>,
) -> impl auditbuf::Sink + use<> {
    let (hold, seen) = (Arc::clone(hold), Arc::clone(seen));
    CallbackSink::new(move |batch: &[&[u8]]| {
        if hold.load(Ordering::SeqCst) {
            return Outcome::Retry {
                after: None,
                reason: "held".to_owned(),
            };
        }
        let mut seen = seen.lock().unwrap();
        for e in batch {
            let v: serde_json::Value = serde_json::from_slice(e).unwrap();
            seen.push((v["t"].as_u64().unwrap(), v["n"].as_u64().unwrap()));
        }
        Outcome::Delivered
    })
}

/// `config` flushing every 5 ms and retrying a refused batch every 5 to 20 ms.
fn quick(config: Config) -> Config {
    config
        .flush_interval(Duration::from_millis(5))
        .retry(RetryPolicy::default().backoff(Duration::from_millis(5), Duration::from_millis(20)))
}

fn event(t: u64, n: u64) -> Vec<u8> {
    format!(r#"{{"event_type":"t","t":{t},"n":{n}}}"#).into_bytes()
}

#[test]
fn a_second_thread_reaches_the_slots_the_first_one_freed() {
    let hold = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let config = quick(Config::default())
        .max_lanes(8)
        .queue_capacity(100)
        .batch_max_events(10)
        .overflow(Overflow::DropNewest);
    let p = Arc::new(Pipeline::new(config, holding(&hold, &seen)).unwrap());

    // This thread creates every slot, and they come back to its lane.
    for n in 0..100 {
        p.record_json(&event(0, n)).unwrap();
    }
    assert!(p.flush(Duration::from_secs(10)).completed);

    // Another thread, on another lane, while the receiver is down: its first events take
    // slots from this thread's lane (over its share, or while the queue is under half full).
    hold.store(true, Ordering::SeqCst);
    let record_some = |t: u64, count: u64| {
        let p = Arc::clone(&p);
        std::thread::spawn(move || {
            (0..count)
                .filter(|&n| p.record_json(&event(t, n)).is_ok())
                .count()
        })
    };
    let first = record_some(1, 100).join().unwrap();
    assert!(
        first >= 50,
        "only {first} of 100 accepted with the queue empty"
    );

    // Once this thread's lane has been idle a while (the flush thread, retrying, sees it),
    // all of its slots are the others'.
    std::thread::sleep(Duration::from_millis(400));
    let second = record_some(2, 100).join().unwrap();
    assert_eq!(
        first + second,
        100,
        "every slot in reach: {first} + {second}"
    );

    hold.store(false, Ordering::SeqCst);
    let report = p.close(Duration::from_secs(10));
    assert!(report.completed);
    let s = report.stats;
    assert!(s.is_consistent(), "{s:?}");
    assert_eq!(s.delivered, 200);
    assert_eq!(s.rejected.queue_full, 100, "{s:?}");
}

#[test]
fn each_threads_events_arrive_in_order_under_block() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let config = Config::default()
        .max_lanes(8)
        .queue_capacity(64)
        .batch_max_events(16)
        .overflow(Overflow::Block {
            timeout: Duration::from_secs(30),
        });
    let p = Arc::new(Pipeline::new(config, holding(&Arc::default(), &seen)).unwrap());
    let threads: Vec<_> = (0..6u64)
        .map(|t| {
            let p = Arc::clone(&p);
            std::thread::spawn(move || {
                for n in 0..2_000 {
                    p.record_json(&event(t, n)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let report = p.close(Duration::from_secs(30));
    assert!(report.completed);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    assert_eq!(report.stats.delivered, 12_000);
    let seen = seen.lock().unwrap();
    let mut next = [0u64; 6];
    for &(t, n) in seen.iter() {
        assert_eq!(n, next[t as usize], "thread {t} out of order");
        next[t as usize] += 1;
    }
    assert_eq!(next, [2_000; 6]);
}

#[test]
fn a_thread_new_to_a_busy_pipeline_gets_its_share() {
    // A slow receiver: 10 events a millisecond.
    let sink = CallbackSink::new(|_: &[&[u8]]| {
        std::thread::sleep(Duration::from_millis(1));
        Outcome::Delivered
    });
    let config = Config::default()
        .max_lanes(8)
        .queue_capacity(1_000)
        .batch_max_events(10)
        .overflow(Overflow::Block {
            timeout: Duration::from_secs(20),
        });
    let p = Arc::new(Pipeline::new(config, sink).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    // One thread keeps the queue full and owns every slot.
    let busy = {
        let (p, stop) = (Arc::clone(&p), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                p.record_json(&event(0, n)).unwrap();
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(p.stats().queued > 900, "{:?}", p.stats());
    // A second thread's events must not wait for the first to stop.
    let newcomer = {
        let p = Arc::clone(&p);
        std::thread::spawn(move || (0..200).all(|n| p.record_json(&event(1, n)).is_ok()))
    };
    assert!(newcomer.join().unwrap(), "a call timed out");
    stop.store(true, Ordering::SeqCst);
    let recorded_by_busy = busy.join().unwrap();
    let report = p.close(Duration::from_secs(30));
    assert!(report.completed);
    let s = report.stats;
    assert!(s.is_consistent(), "{s:?}");
    assert_eq!(s.delivered, recorded_by_busy + 200, "{s:?}");
}

#[test]
fn one_lane_keeps_the_order_of_a_caller_that_moves_between_threads() {
    // A goroutine or a coroutine may make each call on another OS thread: here one caller's
    // calls are made by four threads in turn, each call after the previous one returned,
    // while the receiver is down and everything waits in the queue.
    let hold = Arc::new(AtomicBool::new(true));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let config = quick(Config::default())
        .max_lanes(1)
        .queue_capacity(1_000)
        .batch_max_events(7);
    let p = Arc::new(Pipeline::new(config, holding(&hold, &seen)).unwrap());
    let turn = Arc::new((Mutex::new(0u64), Condvar::new()));
    let threads: Vec<_> = (0..4u64)
        .map(|me| {
            let (p, turn) = (Arc::clone(&p), Arc::clone(&turn));
            std::thread::spawn(move || {
                let (next, changed) = &*turn;
                let mut n = next.lock().unwrap();
                loop {
                    while *n < 400 && *n % 4 != me {
                        n = changed.wait(n).unwrap();
                    }
                    if *n >= 400 {
                        return;
                    }
                    p.record_json(&event(0, *n)).unwrap();
                    *n += 1;
                    changed.notify_all();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    hold.store(false, Ordering::SeqCst);
    let report = p.close(Duration::from_secs(10));
    assert!(report.completed);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    assert_eq!(report.stats.delivered, 400);
    let order: Vec<u64> = seen.lock().unwrap().iter().map(|&(_, n)| n).collect();
    assert_eq!(order, (0..400).collect::<Vec<_>>());
}
