//! What a damaged SQLite store does: rows that are no event are counted lost, not sent;
//! a damaged page keeps the store from opening; and `verify` says beforehand which.

#![cfg(feature = "sqlite")]

mod common;

use std::fs;
use std::time::Duration;

use auditbuf::{Config, Pipeline, SqliteStore, SqliteStoreConfig, StoreConfig};

store_contract!(helpers);

/// Rows no pipeline stored — not bytes, not UTF-8, not framed as a JSON object — are to the
/// drain what a damaged record is to the file store: not sent, counted as
/// `dropped.damaged`, and gone from the file once the drain passed them; `verify` says so
/// beforehand. Reads of 4: the damage comes at the front of a read, behind events read, as
/// a run longer than a read, and last. A row framed as an object that does not parse is
/// sent (only a parse would tell, too dear on the drain path).
#[test]
fn damaged_rows_are_not_sent_but_counted_lost() {
    use rusqlite::types::Value;

    let scope = Scope::new("damaged-rows");
    let db = scope.0.join("events.db");
    let mut store = SqliteStore::open(SqliteStoreConfig::new(&db)).unwrap();
    append_range(&mut store, 0..30);
    store.close().unwrap();
    drop(store);
    // Row ids start at 1: event i is row i + 1.
    let damage = [
        (1, Value::Blob(b"{\"n\":\"\xff\"}".to_vec())),
        (7, Value::Blob(b"[7]".to_vec())),
        (13, Value::Integer(13)),
        (14, Value::Text("{\"n\":14".to_owned())),
        (15, Value::Real(1.5)),
        (16, Value::Blob(b"{\"n\":\"\xed\xa0\x80\"}".to_vec())),
        (17, Value::Blob(Vec::new())),
        (30, Value::Text("n=29".to_owned())),
    ];
    let unparsed = b"{\"n\":19,}".to_vec();
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        for (id, value) in &damage {
            conn.execute("UPDATE events SET event = ?1 WHERE id = ?2", (value, id))
                .unwrap();
        }
        conn.execute("UPDATE events SET event = ?1 WHERE id = 20", [&unparsed])
            .unwrap();
    }
    let damaged: Vec<usize> = damage.iter().map(|(id, _)| id - 1).collect();
    let expected: Vec<Vec<u8>> = (0..30)
        .filter(|i| !damaged.contains(i))
        .map(|i| if i == 19 { unparsed.clone() } else { event(i) })
        .collect();
    let check = SqliteStore::verify(&db).unwrap();
    assert_eq!((check.events, check.lost_events), (22, 8), "{check:?}");
    let problems = check.problems.join("\n");
    for found in [
        "rows 1, 16: not UTF-8 (damaged); a pipeline does not send it, and counts it lost",
        "rows 7, 14, 17, 30: not a JSON object (damaged)",
        "rows 13, 15: not bytes (damaged)",
        "row id 20: not valid JSON (damaged); a pipeline would send it as it is",
    ] {
        assert!(problems.contains(found), "{found}: {problems}");
    }

    let (sink, seen) = common::sinks::collecting();
    let config = Config::default()
        .batch_max_events(4)
        .store(StoreConfig::Sqlite(SqliteStoreConfig::new(&db)));
    let pipeline = Pipeline::new(config, sink).unwrap();
    let report = pipeline.close(Duration::from_secs(10));
    let stats = report.stats;
    assert!(report.completed && stats.is_consistent(), "{stats:?}");
    assert_eq!(stats.recovered, 30, "{stats:?}");
    assert_eq!(stats.delivered, 22, "{stats:?}");
    assert_eq!(stats.dropped.damaged, 8, "{stats:?}");
    assert_eq!(stats.dropped.total(), 8, "{stats:?}");
    assert_eq!(
        stats.stored + stats.queued + stats.in_flight,
        0,
        "{stats:?}"
    );
    assert_eq!(*seen.lock().unwrap(), expected);
    // Deleted with the events around them, the last at close: the next open finds none.
    let check = SqliteStore::verify(&db).unwrap();
    assert!(check.is_healthy(), "{check:?}");
    assert_eq!((check.events, check.lost_events), (0, 0), "{check:?}");
}

/// One damaged page, each page in turn, of a store of a few hundred events (three of them
/// long enough for overflow pages) and a dead letter: `verify` says what open then does.
/// Either the store will not open — open's counts read every page of both tables, and
/// SQLite finds the page malformed — and `verify` says so, with what to do, in open's own
/// words; or it opens, and a pipeline delivers and loses exactly what `verify` said.
#[test]
fn verify_says_what_open_does_with_a_damaged_page() {
    const PAGE: usize = 4096;
    let scope = Scope::new("damaged-page");
    let made = scope.0.join("made.db");
    let long = |i: usize| format!(r#"{{"n":{i},"long":"{}"}}"#, "y".repeat(6000)).into_bytes();
    let events: Vec<Vec<u8>> = (0..300)
        .map(|i| if i % 100 == 50 { long(i) } else { event(i) })
        .collect();
    let mut store = SqliteStore::open(SqliteStoreConfig::new(&made)).unwrap();
    let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
    store.append(&refs).unwrap();
    store.dead_letter(&event(1000), "HTTP 400: schema").unwrap();
    store.close().unwrap();
    drop(store);
    let pristine = fs::read(&made).unwrap();
    let pages = pristine.len() / PAGE;
    assert!(pages > 10, "{pages} pages");

    let (mut refused, mut opened) = (0, 0);
    // Page 1 holds the header and the schema: verify cannot read that file at all.
    for page in 2..=pages {
        let db = scope.0.join(format!("page-{page}.db"));
        let mut bytes = pristine.clone();
        // Its header, and the start of its cells or its content.
        for b in &mut bytes[(page - 1) * PAGE..(page - 1) * PAGE + 64] {
            *b = 0xA5;
        }
        fs::write(&db, &bytes).unwrap();
        let check = SqliteStore::verify(&db).unwrap();
        let config = || StoreConfig::Sqlite(SqliteStoreConfig::new(&db));
        let (sink, _) = common::sinks::collecting();
        match Pipeline::new(Config::default().store(config()), sink) {
            Err(e) => {
                refused += 1;
                let e = e.to_string();
                let why = check.open_error.as_deref().unwrap_or_else(|| {
                    panic!("page {page}: open failed ({e}); verify did not say it would: {check:?}")
                });
                assert!(e.contains(why), "page {page}: {e} / {why}");
                assert!(
                    why.contains("malformed") && why.contains(".recover"),
                    "page {page}: {why}"
                );
                assert!(!check.is_healthy(), "page {page}: {check:?}");
                assert!(
                    check.problems.iter().any(|p| p.contains(why)),
                    "page {page}: {check:?}"
                );
            }
            Ok(pipeline) => {
                opened += 1;
                assert_eq!(check.open_error, None, "page {page}: it opened");
                let stats = pipeline.close(Duration::from_secs(10)).stats;
                assert!(stats.is_consistent(), "page {page}: {stats:?}");
                assert_eq!(
                    (stats.recovered, stats.delivered, stats.dropped.damaged),
                    (300, check.events, check.lost_events),
                    "page {page}: {stats:?} / {check:?}"
                );
                assert_eq!(stats.dropped.total() + stats.delivered, 300, "{stats:?}");
            }
        }
    }
    eprintln!("{pages} pages: {refused} refused, {opened} opened");
    // Both cases came up: pages of the tables, and overflow pages of the long events.
    assert!(
        refused > 0 && opened > 0,
        "{refused} refused, {opened} opened"
    );
}

/// A store at `db` holding `events` events, the time of row `id` made text.
fn with_damaged_time(db: &std::path::Path, events: usize, id: i64) {
    let mut store = SqliteStore::open(SqliteStoreConfig::new(db)).unwrap();
    append_range(&mut store, 0..events);
    store.close().unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute("UPDATE events SET stored_at_ms = 'x' WHERE id = ?1", [id])
        .unwrap();
}

/// A damaged `stored_at_ms` (not an integer) only loses an age: a commit that consumed its
/// rows still says so (an `Err` would mean the rows stay, and the drain would count the
/// next events it sends as sent again), and the row is read and sent, also when it is the
/// oldest at open.
#[test]
fn a_damaged_row_time_neither_fails_a_commit_nor_stops_the_drain_or_open() {
    let scope = Scope::new("damaged-time");
    let db = scope.0.join("events.db");
    with_damaged_time(&db, 5, 5);
    let mut store = SqliteStore::open(SqliteStoreConfig::new(&db)).unwrap();
    let mut batch = auditbuf::StoredBatch::default();
    store.read_oldest(4, usize::MAX, &mut batch).unwrap();
    assert_eq!(batch.len(), 4);
    store.commit(4).unwrap();
    assert_eq!(store.size().events, 1);
    // Nor does the damaged time stop the drain, or the next open.
    store.read_oldest(4, usize::MAX, &mut batch).unwrap();
    assert_eq!(batch.len(), 1);
    store.commit(1).unwrap();
    assert_eq!(store.size().events, 0);
    drop(store);
    // The oldest row's time damaged: open still takes the store.
    let db = scope.0.join("oldest.db");
    with_damaged_time(&db, 2, 1);
    let check = SqliteStore::verify(&db).unwrap();
    assert_eq!((check.events, check.lost_events), (2, 0), "{check:?}");
    let mut store = SqliteStore::open(SqliteStoreConfig::new(&db)).unwrap();
    store.read_oldest(4, usize::MAX, &mut batch).unwrap();
    assert_eq!(batch.len(), 2);
}
