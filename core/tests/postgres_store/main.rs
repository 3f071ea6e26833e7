//! The Postgres store against the contract every store meets, and what only it does:
//! several replicas draining one table, leases, poison rows; hand-overs that are not claims
//! (`claims.rs`), commits cut off by a broken connection (`commits.rs`) and the size
//! counter (`size.rs`). The tests start their own
//! server (testkit's `TestPostgres`): the Postgres binaries must be installed
//! (`scripts/ensure-postgres`).

#![cfg(feature = "postgres")]

mod claims;
mod commits;
#[path = "../common/mod.rs"]
mod common;
mod size;

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
fn a_server_refusing_connections_is_tried_again_after_a_wait_not_at_every_call() {
    // A role of its own, whose logins the test can refuse.
    let pg = TestPostgres::shared();
    let role = "reconnect_wait";
    pg.psql(&format!(
        "CREATE ROLE {role} LOGIN; GRANT CREATE ON SCHEMA public TO {role}"
    ));
    let url = pg.url().replacen("postgres@", &format!("{role}@"), 1);
    let url = format!("{url}?application_name=auditbuf_reconnect_wait");
    let mut store = open_table("reconnect_wait", json!({"url": url}));
    store.append(&[b"{\"n\":1}"]).unwrap();
    pg.psql(&format!("ALTER ROLE {role} NOLOGIN"));
    let sessions =
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'auditbuf_reconnect_wait'";
    pg.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'auditbuf_reconnect_wait'",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while pg.psql(sessions) != "0" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The broken session is made again at once, and the login refused.
    let first = store.append(&[b"{\"n\":2}"]).unwrap_err().to_string();
    assert!(!first.contains("the next attempt in"), "{first}");
    // Until the next attempt is due, calls fail at once with that error: no new attempt
    // holds the store (and its lock) for a connect timeout each time.
    let again = store.append(&[b"{\"n\":2}"]).unwrap_err().to_string();
    assert!(again.contains("the next attempt in"), "{again}");
    // Logins allowed again, the attempt once due connects.
    pg.psql(&format!("ALTER ROLE {role} LOGIN"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = store.append(&[b"{\"n\":2}"]) {
        assert!(Instant::now() < deadline, "{e}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(store.size().events, 2);
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
