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
