//! The Postgres store against the contract every store meets, and what only it does:
//! several replicas draining one table, leases, poison rows. The tests start their own
//! server (testkit's `TestPostgres`): the Postgres binaries must be installed
//! (`scripts/ensure-postgres`).

#![cfg(feature = "postgres")]

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use auditbuf::StoreConfig;
use auditbuf_testkit::postgres::TestPostgres;
use serde_json::{Value, json};

/// Opens a store on `table` of the shared server, with `params` added to its own.
fn open_table(table: &str, params: Value) -> Box<dyn Store> {
    let mut all = json!({"url": TestPostgres::shared().url(), "table": table});
    if let (Some(all), Some(extra)) = (all.as_object_mut(), params.as_object()) {
        all.extend(extra.clone());
    }
    let doc = json!({"type": "postgres", "params": all}).to_string();
    StoreConfig::from_json(&doc).unwrap().open().unwrap()
}

/// A valid table name for a contract scope: the same scope always gives the same table.
fn table_for(scope: &Path) -> String {
    let last = scope.file_name().unwrap().to_string_lossy();
    let last = last.strip_prefix("auditbuf-contract-").unwrap_or(&last);
    let name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let name = format!("c_{name}");
    assert!(name.len() <= 58, "{name}");
    name
}

store_contract!(durable: true, open: |scope: &Path, max_bytes: Option<u64>| -> Box<dyn Store> {
    let params = match max_bytes {
        Some(b) => json!({"max_total_bytes": b}),
        None => json!({}),
    };
    open_table(&table_for(scope), params)
});

fn payloads(store: &mut dyn Store, max_events: usize) -> Vec<Vec<u8>> {
    let mut batch = StoredBatch::new();
    store.read_oldest(max_events, 1 << 20, &mut batch).unwrap();
    batch.iter().map(<[u8]>::to_vec).collect()
}

/// Reads until something comes out (a lease has to run out first), at most `within`.
fn read_when_free(store: &mut dyn Store, max_events: usize, within: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + within;
    loop {
        let got = payloads(store, max_events);
        if !got.is_empty() || Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn numbered(i: usize) -> Vec<u8> {
    format!(r#"{{"n":{i}}}"#).into_bytes()
}

fn number_of(event: &[u8]) -> usize {
    let v: Value = serde_json::from_slice(event).unwrap();
    v["n"].as_u64().unwrap() as usize
}

#[test]
fn two_replicas_deliver_every_row_exactly_once() {
    const EVENTS: usize = 3000;
    let mut producer = open_table("replicas", json!({}));
    for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(100) {
        let events: Vec<Vec<u8>> = chunk.iter().map(|&i| numbered(i)).collect();
        let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
        producer.append(&refs).unwrap();
    }
    let start = Arc::new(Barrier::new(2));
    let replicas: Vec<_> = (0..2)
        .map(|_| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                let mut store = open_table("replicas", json!({}));
                start.wait();
                let mut seen = Vec::new();
                loop {
                    let got = payloads(&mut *store, 20);
                    if got.is_empty() {
                        return seen;
                    }
                    store.commit(got.len()).unwrap();
                    seen.extend(got.iter().map(|e| number_of(e)));
                }
            })
        })
        .collect();
    let seen: Vec<Vec<usize>> = replicas.into_iter().map(|r| r.join().unwrap()).collect();
    let mut all = BTreeSet::new();
    for (i, mine) in seen.iter().enumerate() {
        assert!(
            !mine.is_empty(),
            "replica {i} got nothing: the two did not drain together"
        );
        // Each replica sees the rows it got in table order.
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "replica {i} read out of order"
        );
        for n in mine {
            assert!(all.insert(*n), "event {n} was delivered twice");
        }
    }
    assert_eq!(
        all,
        (0..EVENTS).collect::<BTreeSet<_>>(),
        "some events were never delivered"
    );
    assert!(payloads(&mut *producer, 10).is_empty());
}

#[test]
fn rows_of_a_crashed_replica_are_claimed_after_its_lease() {
    let lease = Duration::from_millis(1500);
    let mut crashed = open_table("crashed", json!({"lease_ms": lease.as_millis() as u64}));
    let events: Vec<Vec<u8>> = (0..5).map(numbered).collect();
    let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
    crashed.append(&refs).unwrap();
    assert_eq!(payloads(&mut *crashed, 10), events);
    let claimed_at = Instant::now();
    // Dies while sending: no commit, no close.
    drop(crashed);

    let mut survivor = open_table("crashed", json!({}));
    assert_eq!(survivor.size().events, 5);
    assert!(
        payloads(&mut *survivor, 10).is_empty(),
        "rows under lease were read by another replica"
    );
    let got = read_when_free(&mut *survivor, 10, Duration::from_secs(20));
    assert!(
        claimed_at.elapsed() >= lease - Duration::from_millis(100),
        "claimed before the lease ran out"
    );
    assert_eq!(got, events);
    survivor.commit(5).unwrap();
    assert_eq!(survivor.size().events, 0);
    // Handed over, not copied: the survivor's claim stands.
    let mut third = open_table("crashed", json!({}));
    assert!(payloads(&mut *third, 10).is_empty());
}

#[test]
fn a_live_replica_keeps_its_rows_by_renewing_the_lease() {
    let pg = TestPostgres::shared();
    let params = json!({"lease_ms": 400});
    let mut live = open_table("renewed", params.clone());
    live.append(&[b"{\"n\":1}", b"{\"n\":2}"]).unwrap();
    assert_eq!(payloads(&mut *live, 10).len(), 2);
    // The sink is down for three leases; the flush thread keeps ticking.
    let mut other = open_table("renewed", params);
    let until = Instant::now() + Duration::from_millis(1200);
    while Instant::now() < until {
        live.tick().unwrap();
        assert!(
            payloads(&mut *other, 10).is_empty(),
            "took rows from a live replica"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Then it dies: the rows move on after one lease, claimed once by each owner.
    drop(live);
    assert_eq!(
        read_when_free(&mut *other, 10, Duration::from_secs(10)).len(),
        2
    );
    assert_eq!(
        pg.psql("SELECT string_agg(claims::text, ',' ORDER BY id) FROM renewed"),
        "2,2"
    );
}

#[test]
fn a_closed_replica_hands_its_rows_over_at_once() {
    let mut first = open_table("handover", json!({}));
    first.append(&[b"{\"n\":1}", b"{\"n\":2}"]).unwrap();
    assert_eq!(payloads(&mut *first, 10).len(), 2);
    first.commit(1).unwrap();
    first.close().unwrap();
    let mut second = open_table("handover", json!({}));
    assert_eq!(payloads(&mut *second, 10), vec![b"{\"n\":2}".to_vec()]);
}

#[test]
fn poison_rows_are_dead_lettered_after_max_claims() {
    let pg = TestPostgres::shared();
    let params = json!({"lease_ms": 300, "max_claims": 2});
    let poison = b"{\"poison\":true}".to_vec();
    let after = b"{\"after\":1}".to_vec();

    let mut live = open_table("poison", params.clone());
    live.append(&[&poison]).unwrap();
    // The same live store reading again and again, past its lease (the sink is down):
    // not a claim by a new owner, however often.
    for _ in 0..6 {
        assert_eq!(payloads(&mut *live, 1), vec![poison.clone()]);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        pg.psql("SELECT claims FROM poison ORDER BY id LIMIT 1"),
        "1"
    );
    drop(live); // crashes while sending it: claim 1

    let mut second = open_table("poison", params.clone());
    assert_eq!(
        read_when_free(&mut *second, 1, Duration::from_secs(10)),
        vec![poison.clone()]
    );
    drop(second); // crashes too: claim 2
    std::thread::sleep(Duration::from_millis(400)); // its lease runs out

    let mut third = open_table("poison", params.clone());
    third.append(&[&after]).unwrap();
    let got = payloads(&mut *third, 10);
    assert_eq!(
        got,
        vec![after.clone()],
        "a third claim must dead-letter the poison row instead"
    );
    assert_eq!(third.size().events, 1);
    third.commit(1).unwrap();
    let dead = pg.psql("SELECT convert_from(payload, 'UTF8') || ' ' || reason FROM poison_dead");
    assert!(
        dead.starts_with("{\"poison\":true} claimed 3 times"),
        "{dead}"
    );
    assert!(dead.contains("max_claims 2"), "{dead}");

    // Never read again, by anyone, even once every lease is over.
    std::thread::sleep(Duration::from_millis(400));
    let mut fourth = open_table("poison", params);
    assert_eq!(fourth.size().events, 0);
    assert!(payloads(&mut *fourth, 10).is_empty());
    assert_eq!(pg.psql("SELECT count(*) FROM poison_dead"), "1");
}

#[test]
fn dead_letters_go_to_their_own_table() {
    let pg = TestPostgres::shared();
    let mut store = open_table("dead_letters", json!({}));
    store
        .dead_letter(b"{\"bad\":1}", "HTTP 400: schema")
        .unwrap();
    assert_eq!(
        pg.psql("SELECT convert_from(payload, 'UTF8') || ' ' || reason FROM dead_letters_dead"),
        "{\"bad\":1} HTTP 400: schema"
    );
    assert_eq!(store.size().events, 0);
}

#[test]
fn a_broken_connection_is_made_again() {
    let pg = TestPostgres::shared();
    let url = format!("{}?application_name=auditbuf_reconnect", pg.url());
    let mut store = open_table("reconnect", json!({"url": url}));
    store.append(&[b"{\"n\":1}"]).unwrap();
    let killed = pg.psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'auditbuf_reconnect'",
    );
    assert_eq!(killed, "1");
    assert_eq!(payloads(&mut *store, 10), vec![b"{\"n\":1}".to_vec()]);
    pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'auditbuf_reconnect'");
    store.commit(1).unwrap();
    assert_eq!(store.size().events, 0);
}

#[test]
fn size_sees_rows_other_replicas_add() {
    let mut mine = open_table("shared_size", json!({}));
    let mut other = open_table("shared_size", json!({}));
    other.append(&[b"{\"n\":1}", b"{\"n\":22}"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while mine.size().events != 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        mine.tick().unwrap();
    }
    assert_eq!(
        mine.size(),
        auditbuf::StoreSize {
            events: 2,
            bytes: 15
        }
    );
    assert!(mine.oldest_age().is_some());
}

fn config_error(doc: Value) -> (String, String) {
    match StoreConfig::from_json(&doc.to_string()) {
        Err(Error::Config(c)) => (c.field, c.reason),
        other => panic!("{doc}: {other:?}"),
    }
}

#[test]
fn bad_settings_name_their_field() {
    let url = "postgres://postgres@127.0.0.1:1/postgres";
    for bad in ["Events", "1st", "a-b", "drop table", &"t".repeat(59)] {
        let (field, reason) =
            config_error(json!({"type": "postgres", "params": {"url": url, "table": bad}}));
        assert_eq!(field, "params.table", "{bad}");
        assert!(reason.contains("[a-z_]"), "{reason}");
    }
    let field = |params: Value| config_error(json!({"type": "postgres", "params": params})).0;
    assert_eq!(field(json!({"table": "t"})), "params");
    assert_eq!(field(json!({"url": url, "colour": "red"})), "params.colour");
    assert_eq!(
        field(json!({"url": url, "lease_ms": "soon"})),
        "params.lease_ms"
    );
    assert_eq!(field(json!({"url": url, "lease_ms": 0})), "params.lease_ms");
    assert_eq!(
        field(json!({"url": url, "max_claims": -1})),
        "params.max_claims"
    );
    assert_eq!(
        field(json!({"url": url, "max_claims": 0})),
        "params.max_claims"
    );
    assert_eq!(
        field(json!({"url": url, "max_total_bytes": "big"})),
        "params.max_total_bytes"
    );
    assert_eq!(field(json!({"url": "postgres://h:port/x"})), "params.url");
    assert_eq!(
        config_error(json!({"type": "postgres", "params": []})).0,
        "params"
    );
}

#[test]
fn errors_name_the_store_and_table_and_hide_the_password() {
    let doc = json!({"type": "postgres", "params": {
        "url": format!("postgres://postgres:s3cret@127.0.0.1:{}/postgres", auditbuf_testkit::refused_url().rsplit(':').next().unwrap()),
        "table": "unreachable",
    }});
    let config = StoreConfig::from_json(&doc.to_string()).unwrap();
    assert!(!format!("{config:?}").contains("s3cret"), "{config:?}");
    match config.open() {
        Err(Error::Store(e)) => {
            assert_eq!(e.store, "postgres");
            assert!(e.message.contains("table unreachable"), "{}", e.message);
            assert!(e.message.contains("127.0.0.1"), "{}", e.message);
            assert!(!e.message.contains("s3cret"), "{}", e.message);
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("opened a store on a port where nothing listens"),
    }
}

/// Two pipelines draining one table (left by an outage) into one receiver: every row is
/// delivered once, by one of them.
#[test]
fn two_pipelines_draining_one_table_deliver_each_row_once() {
    use auditbuf::{Config, HttpConfig, HttpSink, Pipeline};
    use auditbuf_testkit::{Receiver, Reply};

    let table = "two_pipelines";
    let mut seed = open_table(table, json!({}));
    let rows = 4000usize;
    for chunk in (0..rows).collect::<Vec<_>>().chunks(500) {
        let events: Vec<Vec<u8>> = chunk.iter().map(|i| numbered(*i)).collect();
        let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
        seed.append(&refs).unwrap();
    }
    seed.close().unwrap();
    drop(seed);

    let receiver = Arc::new(Receiver::start(|_| Reply::created()));
    let start = Arc::new(Barrier::new(2));
    let replicas: Vec<_> = (0..2)
        .map(|_| {
            let (receiver, start) = (Arc::clone(&receiver), Arc::clone(&start));
            std::thread::spawn(move || {
                let store = open_table(table, json!({}));
                let sink = HttpSink::new(receiver.url(), HttpConfig::default()).unwrap();
                let config = Config::default().batch_max_events(100);
                start.wait();
                let pipeline = Pipeline::with_store(config, sink, store).unwrap();
                let deadline = Instant::now() + Duration::from_secs(60);
                while receiver.delivered_count() < rows as u64 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let report = pipeline.close(Duration::from_secs(10));
                assert!(report.stats.is_consistent(), "{:?}", report.stats);
                report.stats.delivered
            })
        })
        .collect();
    let per_replica: Vec<u64> = replicas.into_iter().map(|r| r.join().unwrap()).collect();
    let delivered: Vec<usize> = receiver
        .delivered()
        .iter()
        .map(|e| number_of(serde_json::to_string(e).unwrap().as_bytes()))
        .collect();
    let unique: BTreeSet<usize> = delivered.iter().copied().collect();
    assert_eq!(
        delivered.len(),
        rows,
        "{per_replica:?}: some row was delivered twice"
    );
    assert_eq!(
        unique,
        (0..rows).collect::<BTreeSet<_>>(),
        "some row was never delivered"
    );
    assert_eq!(per_replica.iter().sum::<u64>(), rows as u64);
}

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
    for restart in 0..6 {
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
        let report = pipeline.close(Duration::from_millis(300));
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

/// Issue 12 item 2, measured by hand: `wal` record latency while the table holds a million
/// rows and the receiver is down (the flush thread keeps claiming and refreshing counts).
/// `cargo test -p auditbuf --features postgres --test postgres_store -- --ignored
/// --nocapture wal_record_latency`
#[test]
#[ignore = "a measurement, run by hand"]
fn wal_record_latency_with_a_million_rows() {
    use auditbuf::{CallbackSink, Config, Durability, Outcome, Pipeline};

    let pg = TestPostgres::shared();
    open_table("latency", json!({})).close().unwrap();
    pg.psql(
        "INSERT INTO latency (payload) SELECT convert_to('{\"n\":' || g || ',\"pad\":\"' \
         || repeat('x', 250) || '\"}', 'UTF8') FROM generate_series(1, 1000000) AS g",
    );
    pg.psql("VACUUM ANALYZE latency");
    let sink = CallbackSink::new(|_: &[&[u8]]| Outcome::retry("the receiver is down"));
    let config = Config::default().durability(Durability::Wal);
    let pipeline = Pipeline::with_store(config, sink, open_table("latency", json!({}))).unwrap();
    assert!(pipeline.stats().recovered >= 1_000_000);
    // Open loop: one record every 2 ms for 20 s, each timed from when it was due, so a
    // stall counts for every record it delays.
    let (every, n) = (Duration::from_millis(2), 10_000u32);
    let mut due_latency = Vec::with_capacity(n as usize);
    let mut call_latency = Vec::with_capacity(n as usize);
    let start = Instant::now();
    for i in 0..n {
        let due = start + every * i;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let called = Instant::now();
        pipeline
            .record_json(format!(r#"{{"event_type":"latency","i":{i}}}"#).as_bytes())
            .unwrap();
        let done = Instant::now();
        due_latency.push(done - due);
        call_latency.push(done - called);
    }
    let stats = pipeline.close(Duration::from_secs(5)).stats;
    assert!(stats.is_consistent(), "{stats:?}");
    let stalls: Vec<&Duration> = call_latency
        .iter()
        .filter(|d| **d >= Duration::from_millis(50))
        .collect();
    eprintln!(
        "wal record stalls (calls of 50 ms or more): {}, {:?} in all",
        stalls.len(),
        stalls.iter().copied().sum::<Duration>()
    );
    for (what, mut v) in [("from due", due_latency), ("per call", call_latency)] {
        v.sort();
        let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
        eprintln!(
            "wal record latency {what}: p50 {:?} p99 {:?} p99.9 {:?} max {:?}",
            at(0.5),
            at(0.99),
            at(0.999),
            v[v.len() - 1]
        );
    }
}

/// Waits (ticking the store) until its size is `want`, at most 10 s.
fn size_becomes(store: &mut dyn Store, want: (u64, u64)) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let size = store.size();
        if (size.events, size.bytes) == want || Instant::now() >= deadline {
            return (size.events, size.bytes);
        }
        std::thread::sleep(Duration::from_millis(100));
        store.tick().unwrap();
    }
}

#[test]
fn the_size_follows_every_writer_without_counting_the_table() {
    let pg = TestPostgres::shared();
    let mut store = open_table("counted", json!({}));
    store.append(&[b"{\"n\":1}"]).unwrap();
    // Rows written by others, and by hand.
    pg.psql("INSERT INTO counted (payload) SELECT '\\x7b7d'::bytea FROM generate_series(1, 10)");
    assert_eq!(size_becomes(&mut *store, (11, 27)), (11, 27));
    pg.psql("DELETE FROM counted WHERE id IN (SELECT id FROM counted ORDER BY id DESC LIMIT 4)");
    assert_eq!(size_becomes(&mut *store, (7, 19)), (7, 19));
    pg.psql("TRUNCATE counted");
    assert_eq!(size_becomes(&mut *store, (0, 0)), (0, 0));
    store.append(&[b"{\"n\":2}"]).unwrap();
    drop(store);
    let mut reopened = open_table("counted", json!({}));
    assert_eq!(size_becomes(&mut *reopened, (1, 7)), (1, 7));
    // No statement of the store counts the table: only the counter is read.
    assert_eq!(pg.psql("SELECT sum(events) FROM counted_size"), "1");
}

#[test]
fn a_table_made_before_the_counter_is_counted_once_on_first_open() {
    let pg = TestPostgres::shared();
    // The schema of earlier versions, with rows.
    pg.psql(
        "CREATE TABLE premade (id bigserial PRIMARY KEY, payload bytea NOT NULL, \
         stored_at timestamptz NOT NULL DEFAULT now(), claimed_by text, lease_until timestamptz, \
         claims integer NOT NULL DEFAULT 0); \
         INSERT INTO premade (payload) SELECT '\\x7b7d'::bytea FROM generate_series(1, 1000)",
    );
    let mut store = open_table("premade", json!({}));
    assert_eq!(
        (store.size().events, store.size().bytes),
        (1000, 2000),
        "counted on open"
    );
    assert_eq!(payloads(&mut *store, 10).len(), 10);
    store.commit(10).unwrap();
    drop(store);
    let store = open_table("premade", json!({}));
    assert_eq!((store.size().events, store.size().bytes), (990, 1980));
}

#[test]
fn a_role_that_may_not_make_the_counter_counts_the_table() {
    let pg = TestPostgres::shared();
    // The tables belong to the administrator; the application may use them, and make
    // tables of its own, but not triggers on the administrator's.
    pg.psql(
        "CREATE TABLE foreign_owned (id bigserial PRIMARY KEY, payload bytea NOT NULL, \
         stored_at timestamptz NOT NULL DEFAULT now(), claimed_by text, lease_until timestamptz, \
         claims integer NOT NULL DEFAULT 0); \
         CREATE TABLE foreign_owned_dead (id bigserial PRIMARY KEY, payload bytea NOT NULL, \
         reason text NOT NULL, stored_at timestamptz, dead_at timestamptz NOT NULL DEFAULT now()); \
         CREATE ROLE auditbuf_app LOGIN; GRANT CREATE ON SCHEMA public TO auditbuf_app; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON foreign_owned, foreign_owned_dead TO auditbuf_app; \
         GRANT USAGE ON SEQUENCE foreign_owned_id_seq, foreign_owned_dead_id_seq TO auditbuf_app; \
         INSERT INTO foreign_owned (payload) SELECT '\\x7b7d'::bytea FROM generate_series(1, 5)",
    );
    let url = pg.url().replacen("postgres@", "auditbuf_app@", 1);
    let mut store = open_table("foreign_owned", json!({"url": url}));
    assert_eq!((store.size().events, store.size().bytes), (5, 10));
    store.append(&[b"{\"n\":1}"]).unwrap();
    assert_eq!(payloads(&mut *store, 10).len(), 6);
    store.commit(6).unwrap();
    assert_eq!(store.size().events, 0);
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'foreign_owned'::regclass"),
        "0"
    );
}
