//! Overflow policies under contention: what `record` does when the queue is full.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use auditbuf::{CallbackSink, Config, Outcome, Overflow, Pipeline, RetryPolicy};
use parking_lot_free::Seen;

mod parking_lot_free {
    use std::sync::Mutex;

    /// (producer, sequence) pairs a sink was given, in order.
    #[derive(Default)]
    pub struct Seen(pub Mutex<Vec<(u64, u64)>>);
}

fn parse(event: &[u8]) -> (u64, u64) {
    let v: serde_json::Value = serde_json::from_slice(event).unwrap();
    (v["p"].as_u64().unwrap(), v["n"].as_u64().unwrap())
}

/// A sink that holds its first batch until `go` is set, then keeps what it is given.
fn stalled_until(go: &Arc<AtomicBool>, seen: &Arc<Seen>) -> impl auditbuf::Sink {
    let (go, seen) = (Arc::clone(go), Arc::clone(seen));
    CallbackSink::new(move |batch: &[&[u8]]| {
        while !go.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(2));
        }
        seen.0
            .lock()
            .unwrap()
            .extend(batch.iter().map(|e| parse(e)));
        Outcome::Delivered
    })
}

/// A pipeline of 4 slots, all taken: the first event with a sink stalled until `go`, the
/// next three queued.
fn filled_behind_a_stalled_sink(overflow: Overflow, go: &Arc<AtomicBool>) -> Pipeline {
    let config = Config::default()
        .queue_capacity(4)
        .batch_max_events(1)
        .flush_interval(Duration::from_millis(1))
        .overflow(overflow);
    let p = Pipeline::new(config, stalled_until(go, &Arc::new(Seen::default()))).unwrap();
    for n in 0..4 {
        p.record_json(format!(r#"{{"p":0,"n":{n}}}"#).as_bytes())
            .unwrap();
    }
    while p.stats().in_flight < 1 {
        std::thread::sleep(Duration::from_millis(1));
    }
    p
}

#[test]
fn drop_oldest_keeps_the_newest_events_under_eight_producers() {
    let go = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let sink = stalled_until(&go, &seen);
    let config = Config::default()
        .queue_capacity(1000)
        .batch_max_events(100)
        .flush_interval(Duration::from_millis(5))
        .overflow(Overflow::DropOldest);
    let p = Arc::new(Pipeline::new(config, sink).unwrap());
    const PER: u64 = 20_000;
    let producers: Vec<_> = (0..8u64)
        .map(|producer| {
            let p = Arc::clone(&p);
            std::thread::spawn(move || {
                let mut full = 0u64;
                for n in 0..PER {
                    let event = format!(r#"{{"event_type":"t","p":{producer},"n":{n}}}"#);
                    match p.record_json(event.as_bytes()) {
                        Ok(()) => {}
                        Err(auditbuf::Error::Full) => full += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                full
            })
        })
        .collect();
    let full: u64 = producers.into_iter().map(|t| t.join().unwrap()).sum();
    let stalled = p.stats();
    assert!(stalled.is_consistent(), "{stalled:?}");
    assert!(stalled.dropped.oldest > 0, "{stalled:?}");
    go.store(true, Ordering::SeqCst);
    let report = p.close(Duration::from_secs(10));
    let s = report.stats;
    assert!(s.is_consistent(), "{s:?}");
    assert_eq!(s.recorded + full, 8 * PER, "every call accepted or told");
    assert_eq!(s.rejected.queue_full, full);
    assert_eq!(s.delivered + s.dropped.oldest, s.recorded, "{s:?}");
    // Each producer's delivered events are in its order.
    let seen = seen.0.lock().unwrap();
    assert_eq!(seen.len() as u64, s.delivered);
    let mut by_producer: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (producer, n) in seen.iter() {
        by_producer.entry(*producer).or_default().push(*n);
    }
    for (producer, ns) in &by_producer {
        assert!(
            ns.windows(2).all(|w| w[0] < w[1]),
            "producer {producer} out of order"
        );
    }
}

#[test]
fn drop_oldest_delivers_the_first_batch_and_the_newest_queue_full() {
    let go = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let sink = stalled_until(&go, &seen);
    let config = Config::default()
        .queue_capacity(100)
        .batch_max_events(10)
        .flush_interval(Duration::from_millis(1))
        .overflow(Overflow::DropOldest);
    let p = Pipeline::new(config, sink).unwrap();
    for n in 0..10 {
        p.record_json(format!(r#"{{"p":0,"n":{n}}}"#).as_bytes())
            .unwrap();
    }
    // The flush thread takes the first batch and waits in the sink with it.
    while p.stats().in_flight < 10 {
        std::thread::sleep(Duration::from_millis(1));
    }
    for n in 10..1000 {
        p.record_json(format!(r#"{{"p":0,"n":{n}}}"#).as_bytes())
            .unwrap();
    }
    go.store(true, Ordering::SeqCst);
    let report = p.close(Duration::from_secs(10));
    let s = report.stats;
    assert!(s.is_consistent(), "{s:?}");
    assert_eq!(s.dropped.oldest, 1000 - 100, "{s:?}");
    let delivered: Vec<u64> = seen.0.lock().unwrap().iter().map(|(_, n)| *n).collect();
    let expected: Vec<u64> = (0..10).chain(910..1000).collect();
    assert_eq!(delivered, expected);
}

#[test]
fn a_gap_marker_tells_the_trail_how_many_were_lost_and_why() {
    gap_marker_case(Duration::from_millis(1500));
}

#[test]
fn losses_close_finds_with_every_slot_taken_still_get_their_marker() {
    // The receiver refuses (retry) until after `close` began; the periodic look has not
    // come, and every slot is queued or being retried when close looks: the marker must
    // wait for a slot a sent batch frees (it was never sent).
    let (go, delivered) = (Arc::new(AtomicBool::new(false)), Delivered::default());
    let sink = gated_sink(&go, &delivered, false);
    // A small store fills first: then the flush thread backs off between drain attempts,
    // the queue full, and `close` finds it there.
    let store = auditbuf::MemoryStoreConfig::default().max_events(20);
    let config = Config::default()
        .queue_capacity(50)
        .batch_max_events(10)
        .flush_interval(Duration::from_millis(5))
        .retry(
            RetryPolicy::default()
                .max_elapsed(Duration::from_millis(30))
                .backoff(Duration::from_millis(5), Duration::from_millis(20)),
        )
        .store(auditbuf::StoreConfig::Memory(store))
        .gap_markers(true);
    let p = Pipeline::new(config, sink).unwrap();
    let full = (0..500)
        .filter(|n| {
            std::thread::sleep(Duration::from_micros(200));
            p.record_json(format!(r#"{{"event_type":"t","n":{n}}}"#).as_bytes())
                .is_err()
        })
        .count();
    assert!(full > 0);
    let opener = std::thread::spawn({
        let go = Arc::clone(&go);
        move || {
            std::thread::sleep(Duration::from_millis(300));
            go.store(true, Ordering::SeqCst);
        }
    });
    let report = p.close(Duration::from_secs(10));
    opener.join().unwrap();
    let s = report.stats;
    assert!(s.is_consistent(), "{s:?}");
    assert_eq!(s.gap_markers, 1, "{s:?}");
    assert_eq!(s.delivered, s.recorded, "{s:?}");
    let marker = the_marker(&delivered);
    assert_eq!(marker["event_data"]["lost"], full);
}

type Delivered = Arc<std::sync::Mutex<Vec<serde_json::Value>>>;

/// The one gap marker among what was delivered.
fn the_marker(delivered: &Delivered) -> serde_json::Value {
    let delivered = delivered.lock().unwrap();
    let markers: Vec<_> = delivered
        .iter()
        .filter(|e| e["event_type"] == auditbuf::GAP_MARKER_EVENT_TYPE)
        .collect();
    assert_eq!(markers.len(), 1, "{delivered:?}");
    markers[0].clone()
}

/// A sink that keeps what it is given once `go` is set; before that it waits for it
/// (`wait`) or answers retry.
fn gated_sink(
    go: &Arc<AtomicBool>,
    delivered: &Delivered,
    wait: bool,
) -> impl auditbuf::Sink + use<> {
    let (go, delivered) = (Arc::clone(go), Arc::clone(delivered));
    CallbackSink::new(move |batch: &[&[u8]]| {
        while !go.load(Ordering::SeqCst) {
            if !wait {
                return Outcome::retry("not yet");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut d = delivered.lock().unwrap();
        d.extend(batch.iter().map(|e| serde_json::from_slice(e).unwrap()));
        Outcome::Delivered
    })
}

fn gap_marker_case(before_close: Duration) {
    let (go, delivered) = (Arc::new(AtomicBool::new(false)), Delivered::default());
    let sink = gated_sink(&go, &delivered, true);
    let config = Config::default()
        .service("gateway")
        .queue_capacity(50)
        .batch_max_events(10)
        .flush_interval(Duration::from_millis(5))
        .gap_markers(true);
    let p = Pipeline::new(config, sink).unwrap();
    let mut full = 0;
    for n in 0..500 {
        if p.record_json(format!(r#"{{"event_type":"t","n":{n}}}"#).as_bytes())
            .is_err()
        {
            full += 1;
        }
    }
    assert!(full > 0);
    // The flush thread looks at the loss counters about once a second.
    std::thread::sleep(before_close);
    go.store(true, Ordering::SeqCst);
    let report = p.close(Duration::from_secs(10));
    let s = report.stats;
    assert!(s.is_consistent(), "{s:?}");
    assert_eq!(s.gap_markers, 1, "{s:?}");
    assert_eq!(s.delivered, s.recorded);
    let marker = the_marker(&delivered);
    assert_eq!(marker["event_data"]["lost"], full);
    assert_eq!(marker["event_data"]["reasons"]["queue_full"], full);
    assert_eq!(marker["actor_id"], "gateway");
    assert_eq!(marker["event_outcome"], "failure");
}

#[test]
fn gap_markers_never_make_an_open_pipeline_refuse_events_as_closed() {
    // A marker takes a slot like any event: were it a buffer of its own, more events could
    // be waiting than the queue has places, and a push would fail as if the pipeline were
    // closed.
    let sink = CallbackSink::new(|_: &[&[u8]]| {
        std::thread::sleep(Duration::from_micros(200));
        Outcome::Delivered
    });
    let config = Config::default()
        .queue_capacity(8)
        .batch_max_events(4)
        .flush_interval(Duration::from_millis(1))
        .gap_markers(true);
    let p = Arc::new(Pipeline::new(config, sink).unwrap());
    let until = std::time::Instant::now() + Duration::from_millis(3500);
    let producers: Vec<_> = (0..2)
        .map(|_| {
            let p = Arc::clone(&p);
            std::thread::spawn(move || {
                let mut closed = 0u64;
                while std::time::Instant::now() < until {
                    if let Err(auditbuf::Error::Closed) = p.record_json(br#"{"event_type":"t"}"#) {
                        closed += 1;
                    }
                }
                closed
            })
        })
        .collect();
    let closed: u64 = producers.into_iter().map(|t| t.join().unwrap()).sum();
    let stats = p.stats();
    assert_eq!(closed, 0, "{stats:?}");
    // Losses are looked at once a second (at about 1, 2 and 3 s): each look's marker must
    // go out at once, though producers take every free slot — it once waited for the next
    // look when none was free, and only every other look made one.
    assert!(stats.gap_markers >= 3, "{stats:?}");
    assert!(stats.is_consistent(), "{stats:?}");
}

/// Bad input is checked before the policy applies: it gets its own error, never `Full` or a
/// wait, and (under `DropOldest`) evicts nothing.
#[test]
fn with_the_queue_full_bad_input_gets_its_own_error_under_every_policy() {
    let policies = [
        Overflow::DropNewest,
        Overflow::DropOldest,
        // A call that waited would end in `Timeout` (the sink lets go only after the checks
        // below), not in the input's own error.
        Overflow::Block {
            timeout: Duration::from_secs(2),
        },
    ];
    for overflow in policies {
        let go = Arc::new(AtomicBool::new(false));
        let p = filled_behind_a_stalled_sink(overflow, &go);
        // Every slot is taken now: 1 with the sink, 3 queued.
        let full = p.stats();
        assert_eq!(
            (full.in_flight, full.queued),
            (1, 3),
            "{overflow:?}: {full:?}"
        );
        let err = p.record_json(b"{not json").unwrap_err();
        assert!(
            matches!(err, auditbuf::Error::InvalidJson { .. }),
            "{overflow:?}: {err}"
        );
        let err = p.record_json(b"[1]").unwrap_err();
        assert!(
            matches!(err, auditbuf::Error::NotAnObject),
            "{overflow:?}: {err}"
        );
        let err = p.record_json(b"{\"a\":\"\xff\"}").unwrap_err();
        assert!(
            matches!(err, auditbuf::Error::InvalidUtf8 { .. }),
            "{overflow:?}: {err}"
        );
        let err = p
            .record(&auditbuf::AuditEvent::new(
                "", "svc", "act", "success", "rr",
            ))
            .unwrap_err();
        assert!(
            matches!(err, auditbuf::Error::MissingField { .. }),
            "{overflow:?}: {err}"
        );
        let after = p.stats();
        assert_eq!(after.dropped.oldest, 0, "{overflow:?}: bad input evicted");
        assert_eq!(after.rejected.queue_full, 0, "{overflow:?}: {after:?}");
        assert_eq!(after.rejected.block_timeout, 0, "{overflow:?}: {after:?}");
        if matches!(overflow, Overflow::DropNewest) {
            let err = p.record_json(br#"{"p":0,"n":4}"#).unwrap_err();
            assert!(matches!(err, auditbuf::Error::Full), "{err}");
        }
        go.store(true, Ordering::SeqCst);
        let report = p.close(Duration::from_secs(5));
        let stats = &report.stats;
        assert!(stats.is_consistent(), "{overflow:?}: {stats:?}");
        assert_eq!(stats.delivered, 4, "{overflow:?}: {stats:?}");
        assert_eq!(
            (stats.rejected.invalid_json, stats.rejected.not_an_object),
            (1, 1),
            "{overflow:?}: {stats:?}"
        );
        assert_eq!(stats.rejected.invalid_utf8, 1, "{overflow:?}: {stats:?}");
        assert_eq!(stats.rejected.missing_field, 1, "{overflow:?}: {stats:?}");
    }
}

#[test]
fn a_record_from_a_thread_locals_destructor_with_the_queue_full_is_refused_cleanly() {
    // The destructor runs after the pipeline's own thread-locals on that thread are gone
    // (they were made after it, so they go first): `record` must not panic there, which
    // would abort the process.
    struct RecordsOnExit(Arc<Pipeline>, Arc<std::sync::Mutex<Option<bool>>>);
    impl Drop for RecordsOnExit {
        fn drop(&mut self) {
            let full = matches!(
                self.0.record_json(br#"{"p":1,"n":1}"#),
                Err(auditbuf::Error::Full)
            );
            *self.1.lock().unwrap() = Some(full);
        }
    }
    thread_local! {
        static ON_EXIT: std::cell::RefCell<Option<RecordsOnExit>> =
            const { std::cell::RefCell::new(None) };
    }
    let go = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let config = Config::default()
        .queue_capacity(2)
        .batch_max_events(1)
        .flush_interval(Duration::from_millis(1));
    let p = Arc::new(Pipeline::new(config, stalled_until(&go, &seen)).unwrap());
    let outcome = Arc::new(std::sync::Mutex::new(None));
    std::thread::spawn({
        let (p, outcome) = (Arc::clone(&p), Arc::clone(&outcome));
        move || {
            ON_EXIT.with(|on_exit| {
                *on_exit.borrow_mut() = Some(RecordsOnExit(Arc::clone(&p), outcome));
            });
            // Fills the queue, then is refused: the pipeline's thread-locals are made now.
            while p.record_json(br#"{"p":1,"n":0}"#).is_ok() {}
        }
    })
    .join()
    .unwrap();
    assert_eq!(*outcome.lock().unwrap(), Some(true), "refused with Full");
    go.store(true, Ordering::SeqCst);
    let p = Arc::try_unwrap(p).ok().unwrap();
    let stats = p.close(Duration::from_secs(5)).stats;
    assert!(stats.is_consistent(), "{stats:?}");
    assert_eq!(stats.delivered, 2, "{stats:?}");
    assert!(stats.rejected.queue_full >= 2, "{stats:?}");
}

/// Counts the yields of a caller turned away instead of yielding.
struct CountingPark(usize);

impl auditbuf::Park for CountingPark {
    const SLICE: Duration = Duration::MAX;

    fn park<R: Send>(&mut self, wait: impl FnOnce() -> R + Send) -> R {
        wait()
    }

    fn interrupted(&mut self) -> bool {
        false
    }

    fn cede(&mut self) {
        self.0 += 1;
    }
}

#[test]
fn callers_turned_away_yield_only_while_the_flush_thread_works() {
    // The sink holds the first batch until `go`, then asks for a retry in 20 s: first the
    // flush thread is at work (in the sink), then it pauses.
    let (sending, go) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (in_sink, release) = (Arc::clone(&sending), Arc::clone(&go));
    let sink = CallbackSink::new(move |_batch: &[&[u8]]| {
        in_sink.store(true, Ordering::SeqCst);
        while !release.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        Outcome::Retry {
            after: Some(Duration::from_secs(20)),
            reason: "try later".into(),
        }
    });
    let config = Config::default()
        .queue_capacity(4)
        .batch_max_events(4)
        .flush_interval(Duration::from_millis(1))
        // The 20 s pause must be one pause: a budget shorter than it would end the retries
        // into a back-off that looks again every few ms.
        .retry(RetryPolicy::default().max_elapsed(Duration::from_secs(120)))
        .overflow(Overflow::DropNewest);
    let p = Arc::new(Pipeline::new(config, sink).unwrap());
    let turn_away = |p: &Pipeline, park: &mut CountingPark, calls: usize| {
        for _ in 0..calls {
            let refused = p.record_with(park, |slot, _| {
                slot.extend_from_slice(br#"{"event_type":"t"}"#);
                Ok(())
            });
            assert!(matches!(refused, Err(auditbuf::Error::Full)), "{refused:?}");
        }
        park.0
    };
    // A thread of its own: the count of refusals is kept per thread.
    let caller = std::thread::spawn({
        let p = Arc::clone(&p);
        move || {
            for n in 0..4 {
                p.record_json(format!(r#"{{"event_type":"t","n":{n}}}"#).as_bytes())
                    .unwrap();
            }
            while !sending.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut park = CountingPark(0);
            let at_work = turn_away(&p, &mut park, 256);
            go.store(true, Ordering::SeqCst);
            // The sink answered; the 20 s pause begins once the flush thread gets to it
            // (on a loaded machine, perhaps only after a while): then a whole round of
            // refusals passes without a yield.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let mut waiting = 0;
            while turn_away(&p, &mut CountingPark(0), 128) != 0 {
                waiting += 128;
                assert!(
                    std::time::Instant::now() < deadline,
                    "the pause never began"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            let pausing = turn_away(&p, &mut CountingPark(0), 384);
            (at_work, pausing, 256 + waiting + 128 + 384)
        }
    });
    let (at_work, pausing, refused) = caller.join().unwrap();
    assert_eq!(
        at_work, 8,
        "one yield per 32 refusals while the flush thread works"
    );
    assert_eq!(
        pausing, 0,
        "a caller yielded to a flush thread in a retry's pause"
    );
    let p = Arc::try_unwrap(p).ok().unwrap();
    let s = p.close(Duration::from_millis(200)).stats;
    assert!(s.is_consistent(), "{s:?}");
    assert_eq!((s.recorded, s.rejected.queue_full), (4, refused), "{s:?}");
    assert_eq!(s.delivered, 0, "{s:?}");
    assert_eq!(
        s.failed + s.dropped.total() + s.in_flight + s.queued,
        4,
        "{s:?}"
    );
}

#[test]
fn close_turns_away_a_caller_waiting_under_block_at_once_not_at_its_timeout() {
    let go = Arc::new(AtomicBool::new(false));
    let overflow = Overflow::Block {
        timeout: Duration::from_secs(60),
    };
    let p = Arc::new(filled_behind_a_stalled_sink(overflow, &go));
    // Every slot is taken (1 with the stalled sink, 3 queued): this caller waits.
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = {
        let p = Arc::clone(&p);
        std::thread::spawn(move || {
            let _ = tx.send(p.record_json(br#"{"p":1,"n":0}"#));
        })
    };
    // It cannot finish while the sink is stalled: no slot comes free.
    std::thread::sleep(Duration::from_millis(100));
    assert!(rx.try_recv().is_err(), "the caller did not wait");
    // The sink stays stalled through the close, which gives up after 200 ms.
    let report = p.close(Duration::from_millis(200));
    assert!(!report.completed);
    // Well before its 60 s timeout: the close woke it.
    let answer = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the waiting caller was not woken by close");
    assert!(matches!(answer, Err(auditbuf::Error::Closed)), "{answer:?}");
    waiter.join().unwrap();
    go.store(true, Ordering::SeqCst);
    let stats = p.close(Duration::from_secs(5)).stats;
    assert!(stats.is_consistent(), "{stats:?}");
    assert_eq!(stats.recorded, 4, "{stats:?}");
    assert_eq!(stats.rejected.closed, 1, "{stats:?}");
    assert_eq!(stats.rejected.block_timeout, 0, "{stats:?}");
}
