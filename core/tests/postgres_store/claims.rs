//! Claims: a replica that hands its rows back is not a claimer that died.

use super::*;

#[test]
fn graceful_hand_overs_are_not_claims_and_dying_claimers_still_are() {
    let pg = TestPostgres::shared();
    let params = json!({"lease_ms": 300, "max_claims": 2});
    let mut seed = open_table("handovers", params.clone());
    seed.append(&[b"{\"n\":1}", b"{\"n\":2}", b"{\"n\":3}"])
        .unwrap();
    seed.close().unwrap();
    // Restarts during an outage: each replica claims the rows, cannot send them, and
    // closes, handing them over.
    for cycle in 0..20 {
        let mut replica = open_table("handovers", params.clone());
        assert_eq!(payloads(&mut *replica, 10).len(), 3, "cycle {cycle}");
        replica.close().unwrap();
    }
    assert_eq!(pg.psql("SELECT count(*) FROM handovers_dead"), "0");
    assert_eq!(
        pg.psql("SELECT string_agg(claims::text, ',' ORDER BY id) FROM handovers"),
        "0,0,0"
    );
    // Replicas killed while holding them (no close): those claims count.
    for death in 1..=2 {
        let mut replica = open_table("handovers", params.clone());
        let got = read_when_free(&mut *replica, 10, Duration::from_secs(10));
        assert_eq!(got.len(), 3, "death {death}");
        drop(replica);
    }
    std::thread::sleep(Duration::from_millis(400)); // the last lease runs out
    let mut last = open_table("handovers", params);
    assert!(payloads(&mut *last, 10).is_empty());
    assert_eq!(last.take_dead_lettered(), 3);
    assert_eq!(pg.psql("SELECT count(*) FROM handovers_dead"), "3");
    assert_eq!(last.size().events, 0);
    assert_eq!(pg.psql("SELECT sum(events) FROM handovers_size"), "0");
}

/// Pipelines restarted again and again while the receiver is down: their stores hand the
/// rows over at close, so nothing becomes a dead letter.
#[test]
fn restarting_pipelines_during_an_outage_dead_letter_nothing() {
    use auditbuf::{CallbackSink, Config, Outcome, Pipeline, RetryPolicy};

    let pg = TestPostgres::shared();
    let params = json!({"lease_ms": 300, "max_claims": 2});
    let mut seed = open_table("restarts", params.clone());
    let events: Vec<Vec<u8>> = (0..5).map(numbered).collect();
    let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
    seed.append(&refs).unwrap();
    seed.close().unwrap();
    for restart in 0..4 {
        let (tried_tx, tried_rx) = crossbeam_channel::bounded(1);
        let sink = CallbackSink::new(move |_: &[&[u8]]| {
            let _ = tried_tx.try_send(());
            Outcome::retry("the receiver is down")
        });
        let retry = RetryPolicy::default()
            .max_attempts(1)
            .backoff(Duration::from_millis(10), Duration::from_millis(10));
        let store = open_table("restarts", params.clone());
        let pipeline = Pipeline::with_store(Config::default().retry(retry), sink, store).unwrap();
        tried_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        // The receiver stays down: close keeps trying until its deadline, then hands over.
        let report = pipeline.close(Duration::from_secs(1));
        assert!(report.completed, "restart {restart}: {report:?}");
        let stats = report.stats;
        assert!(stats.is_consistent(), "restart {restart}: {stats:?}");
        assert_eq!(
            (stats.recovered, stats.stored, stats.dead_lettered),
            (5, 5, 0),
            "restart {restart}: {stats:?}"
        );
    }
    assert_eq!(pg.psql("SELECT count(*) FROM restarts_dead"), "0");
    assert_eq!(pg.psql("SELECT count(*) FROM restarts"), "5");
}

/// Rows `0..n` in a fresh `table`.
fn seeded(table: &str, n: usize) {
    let mut seed = open_table(table, json!({}));
    let events: Vec<Vec<u8>> = (0..n).map(numbered).collect();
    let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
    seed.append(&refs).unwrap();
    seed.close().unwrap();
}

#[test]
fn a_close_that_leaves_the_sink_hanging_hands_its_rows_back() {
    use auditbuf::{CallbackSink, Config, Outcome, Pipeline};
    seeded("hung_close", 100);
    // The sink hangs until told: the rows stay claimed by the pipeline, lease 60 s.
    let (gate_tx, gate) = crossbeam_channel::bounded::<()>(0);
    let sink = CallbackSink::new(move |_: &[&[u8]]| {
        let _ = gate.recv();
        Outcome::retry("the receiver hung")
    });
    let p =
        Pipeline::with_store(Config::default(), sink, open_table("hung_close", json!({}))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.stats().sends == 0 && p.stats().in_flight == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    let report = p.close(Duration::from_millis(500));
    assert!(!report.completed);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    // Another replica gets them at once, not when the lease ends; no claim was counted.
    let mut next = open_table("hung_close", json!({}));
    let got = read_when_free(&mut *next, 1000, Duration::from_secs(5));
    assert_eq!(got.len(), 100);
    assert_eq!(
        TestPostgres::shared().psql("SELECT max(claims) FROM hung_close"),
        "1"
    );
    next.close().unwrap();
    drop(gate_tx);
    drop(p);
}

#[test]
fn a_sink_call_longer_than_the_lease_keeps_its_rows() {
    use auditbuf::{CallbackSink, Config, Outcome, Pipeline};
    use std::sync::Mutex;
    let rows = 1000;
    seeded("slow_sink", rows);
    let got = Arc::new(Mutex::new(Vec::new()));
    let start = Arc::new(Barrier::new(2));
    let replicas: Vec<_> = (0..2)
        .map(|_| {
            let (got, seen, start) = (Arc::clone(&got), Arc::clone(&got), Arc::clone(&start));
            std::thread::spawn(move || {
                // Each batch takes 1.6 s to be acknowledged, the lease is 1 s.
                let sink = CallbackSink::new(move |batch: &[&[u8]]| {
                    std::thread::sleep(Duration::from_millis(1600));
                    got.lock()
                        .unwrap()
                        .extend(batch.iter().map(|e| number_of(e)));
                    Outcome::Delivered
                });
                let store = open_table("slow_sink", json!({"lease_ms": 1000}));
                start.wait();
                let p = Pipeline::with_store(Config::default().batch_max_events(250), sink, store)
                    .unwrap();
                let deadline = Instant::now() + Duration::from_secs(30);
                while seen.lock().unwrap().len() < rows && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let report = p.close(Duration::from_secs(10));
                assert!(report.stats.is_consistent(), "{:?}", report.stats);
                report.stats.delivered
            })
        })
        .collect();
    let per_replica: Vec<u64> = replicas.into_iter().map(|r| r.join().unwrap()).collect();
    let got = got.lock().unwrap().clone();
    let unique: BTreeSet<usize> = got.iter().copied().collect();
    assert_eq!(unique, (0..rows).collect::<BTreeSet<_>>(), "a row was lost");
    assert_eq!(got.len(), rows, "{per_replica:?}: a row was sent twice");
}
