//! `auditbuf` on Postgres stores made with the library, on the testkit's throwaway server:
//! healthy, damaged (a payload that is not JSON, a row whose claimers kept dying), rows a
//! live replica holds, replay and export. Needs the Postgres binaries
//! (`scripts/ensure-postgres`).

#![cfg(feature = "postgres")]

mod common;

use auditbuf::{PostgresStore, PostgresStoreConfig, Store, StoredBatch};
use auditbuf_testkit::postgres::TestPostgres;
use common::{event, number, run};
use serde_json::Value;

fn config(table: &str) -> PostgresStoreConfig {
    PostgresStoreConfig::new(TestPostgres::shared().url()).table(table)
}

fn doc(table: &str) -> String {
    format!(
        r#"{{"type":"postgres","params":{{"url":"{}","table":"{table}"}}}}"#,
        TestPostgres::shared().url()
    )
}

/// A table holding events 0..n and dead letters `(reason, event number)`.
fn make_store(table: &str, n: usize, letters: &[(&str, usize)]) -> PostgresStore {
    let mut store = PostgresStore::open(config(table)).unwrap();
    for i in 0..n {
        store.append(&[&event(i)]).unwrap();
    }
    for (reason, i) in letters {
        store.dead_letter(&event(*i), reason).unwrap();
    }
    store
}

/// Everything in the store's tables, row by row: equal before and after means untouched.
fn contents(table: &str) -> String {
    let pg = TestPostgres::shared();
    [
        format!(
            "SELECT string_agg(id || ':' || md5(payload) || ':' || coalesce(claimed_by, '') || ':' || coalesce(lease_until::text, '') || ':' || claims, ',' ORDER BY id) FROM \"{table}\""
        ),
        format!(
            "SELECT string_agg(id || ':' || md5(payload) || ':' || reason, ',' ORDER BY id) FROM \"{table}_dead\""
        ),
        format!("SELECT string_agg(shard || ':' || events || ':' || bytes, ',' ORDER BY shard) FROM \"{table}_size\""),
    ]
    .iter()
    .map(|q| pg.psql(q))
    .collect::<Vec<_>>()
    .join("\n")
}

fn numbers(table: &str) -> Vec<u64> {
    let mut store = PostgresStore::open(config(table)).unwrap();
    let mut batch = StoredBatch::new();
    store.read_oldest(10_000, usize::MAX, &mut batch).unwrap();
    let got = batch.iter().map(number).collect();
    store.close().unwrap();
    got
}

const LETTERS: &[(&str, usize)] = &[
    ("HTTP 400: event_type: unknown value", 1000),
    ("HTTP 422: correlation_id: missing", 1001),
    ("HTTP 400: event_type: unknown value", 1002),
];

#[test]
fn a_healthy_table_verifies_with_exit_0_and_is_left_as_it_was() {
    let table = "cli_healthy";
    let mut store = make_store(table, 20, LETTERS);
    store.close().unwrap();
    let before = contents(table);
    let d = doc(table);

    let r = run(&["store", "verify", &d]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let port = TestPostgres::shared().port();
    assert!(
        r.stdout.contains(&format!(
            "postgres store table {table} on 127.0.0.1:{port}/postgres: healthy"
        )),
        "{}",
        r.stdout
    );
    let v = run(&["store", "verify", "--json", &d]).json();
    assert_eq!(
        (v["healthy"].as_bool(), v["keep"]["events"].as_u64()),
        (Some(true), Some(20))
    );
    assert_eq!(v["dead_letters"], 3);
    let inspect = run(&["store", "inspect", "--json", &d]).json();
    assert_eq!(inspect["events"], 20);
    assert_eq!(inspect["dead_letters"]["by_reason"][0]["count"], 2);
    let export = run(&["dead-letters", "export", "--reason", "422", &d]);
    let lines: Vec<Value> = export
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["event"]["n"], 1001);
    assert_eq!(lines[0]["reason"], "HTTP 422: correlation_id: missing");
    assert!(
        before == contents(table),
        "a read-only command changed the tables"
    );
}

#[test]
fn rows_a_live_replica_holds_are_reported_and_replay_leaves_them_alone() {
    let table = "cli_leased";
    let letters: Vec<(&str, usize)> = (0..4)
        .map(|i| {
            (
                if i % 2 == 0 {
                    "HTTP 400: schema"
                } else {
                    "HTTP 409: duplicate"
                },
                100 + i,
            )
        })
        .collect();
    let mut replica = make_store(table, 8, &letters);
    let mut batch = StoredBatch::new();
    replica.read_oldest(5, usize::MAX, &mut batch).unwrap(); // claimed, under a lease
    let before = contents(table);
    let d = doc(table);
    let pid = std::process::id();

    let r = run(&["store", "verify", &d]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains(&format!("5 rows held by a live replica (pid {pid})")),
        "{}",
        r.stdout
    );
    assert!(before == contents(table), "verify changed the tables");

    let r = run(&["dead-letters", "replay", "--reason", "schema", &d]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("moved 2 dead letters back into the store"),
        "{}",
        r.stdout
    );
    let pg = TestPostgres::shared();
    let held = pg.psql(&format!(
        "SELECT count(*) FROM \"{table}\" WHERE claimed_by IS NOT NULL AND lease_until > now()"
    ));
    assert_eq!(held, "5", "replay touched the rows the replica holds");
    replica.commit(5).unwrap();
    replica.close().unwrap();
    assert_eq!(numbers(table), vec![5, 6, 7, 100, 102]);
    assert_eq!(
        run(&["dead-letters", "replay", "--reason", "schema", "--json", &d]).json()["moved"],
        0
    );
    assert_eq!(
        run(&["dead-letters", "replay", "--json", &d]).json()["moved"],
        2
    );
    assert_eq!(numbers(table), vec![5, 6, 7, 100, 102, 101, 103]);
    assert_eq!(
        run(&["store", "verify", "--json", &d]).json()["dead_letters"],
        0
    );
}

#[test]
fn damaged_rows_and_rows_about_to_be_quarantined_exit_1() {
    let table = "cli_damaged";
    make_store(table, 6, &[]).close().unwrap();
    let pg = TestPostgres::shared();
    pg.psql(&format!(
        "INSERT INTO \"{table}\" (payload) VALUES ('\\x6e6f74206a736f6e'::bytea)"
    ));
    pg.psql(&format!(
        "UPDATE \"{table}\" SET claims = 10, claimed_by = 'pid1-dead', lease_until = now() - interval '1 minute' WHERE id = (SELECT min(id) FROM \"{table}\")"
    ));
    let before = contents(table);
    let d = doc(table);

    let r = run(&["store", "verify", &d]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("not a JSON object"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains(&format!("the next read moves them to {table}_dead")),
        "{}",
        r.stdout
    );
    let v = run(&["store", "verify", "--json", &d]).json();
    assert_eq!(v["healthy"], false);
    assert_eq!(v["quarantine"]["events"], 1);
    assert_eq!(v["keep"]["events"], 6);
    assert!(before == contents(table), "verify changed the tables");
}

#[test]
fn a_missing_table_or_server_is_a_clear_error() {
    let r = run(&["store", "verify", &doc("cli_never_made")]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("table cli_never_made: does not exist"),
        "{}",
        r.stderr
    );
    let pg = TestPostgres::shared();
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'cli_never_made%'"),
        "0"
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let r = run(&[
        "store",
        "inspect",
        &format!(
            r#"{{"type":"postgres","params":{{"url":"postgres://postgres@127.0.0.1:{port}/postgres?connect_timeout=5"}}}}"#
        ),
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{}",
        r.stderr
    );
    let bad = format!(
        r#"{{"type":"postgres","params":{{"url":"{}","table":"Bad-Name"}}}}"#,
        pg.url()
    );
    let r = run(&["store", "verify", &bad]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("params.table"), "{}", r.stderr);
}
