//! Unit tests of the SQLite store that look at its connection.

use super::*;

#[test]
fn durable_appends_commit_with_full_and_leave_at_least_normal() {
    let dir = std::env::temp_dir().join(format!("auditbuf-sqlite-sync-{}", std::process::id()));
    let level = |store: &SqliteStore| -> i64 {
        let conn = store.conn.as_ref().unwrap();
        conn.query_row("PRAGMA synchronous", [], |row| row.get(0))
            .unwrap()
    };
    let hour = Fsync::Interval(Duration::from_secs(3600));
    for (name, fsync, before, after) in [
        ("always", Fsync::Always, 2, 2),
        ("interval", hour, 1, 1),
        ("never", Fsync::Never, 0, 1),
    ] {
        let path = dir.join(format!("{name}.db"));
        let mut store = SqliteStore::open(SqliteStoreConfig::new(&path).fsync(fsync)).unwrap();
        assert_eq!(level(&store), before, "{name}");
        assert!(matches!(
            store.append_durably(&[b"{}"]).unwrap(),
            Appended::Durable
        ));
        assert_eq!(level(&store), after, "{name}");
        store.checkpoint("FULL").unwrap();
        assert_eq!(level(&store), after, "{name}");
        assert_eq!(store.size().events, 1);
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn errors_name_the_database() {
    let e = fail(Path::new("/data/audit.db"), "disk I/O error").to_string();
    assert_eq!(e, "sqlite store: /data/audit.db: disk I/O error");
    let e = sql_error(
        Path::new("/data/audit.db"),
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None),
    )
    .to_string();
    assert!(
        e.starts_with("sqlite store: /data/audit.db: the store is in use by another process"),
        "{e}"
    );
}

#[test]
fn sent_events_it_cannot_delete_are_skipped_then_deleted_when_it_can() {
    let (dir, path) = fresh("undeleted");
    let mut store = SqliteStore::open(SqliteStoreConfig::new(&path)).unwrap();
    let events: Vec<Vec<u8>> = (0..10)
        .map(|n| format!(r#"{{"n":{n}}}"#).into_bytes())
        .collect();
    let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
    store.append(&refs).unwrap();
    refuse_deletes(&store, false);
    let mut batch = StoredBatch::default();
    store.read_oldest(4, usize::MAX, &mut batch).unwrap();
    assert_eq!(batch.iter().next(), Some(&events[0][..]));
    store.commit(4).unwrap();
    // Consumed here though still in the file: not read, not counted, again.
    assert_eq!(store.size().events, 6);
    store.read_oldest(4, usize::MAX, &mut batch).unwrap();
    let read: Vec<&[u8]> = batch.iter().collect();
    assert_eq!(read, refs[4..8].to_vec());
    store.commit(4).unwrap();
    let rows = |store: &SqliteStore| -> i64 {
        let conn = store.conn.as_ref().unwrap();
        conn.query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0))
            .unwrap()
    };
    assert_eq!(rows(&store), 10);
    // Room again: the next commit deletes everything sent, these 8 included.
    allow_deletes(&store);
    store.read_oldest(1, usize::MAX, &mut batch).unwrap();
    assert_eq!(batch.iter().next(), Some(&events[8][..]));
    store.commit(1).unwrap();
    assert_eq!((rows(&store), store.size().events), (1, 1));
    store.close().unwrap();
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_delete_left_pending_is_tried_again_at_close() {
    let (dir, path) = fresh("pending");
    let mut store = SqliteStore::open(SqliteStoreConfig::new(&path)).unwrap();
    store.append(&[b"{\"n\":0}", b"{\"n\":1}"]).unwrap();
    refuse_deletes(&store, true);
    let mut batch = StoredBatch::default();
    store.read_oldest(1, usize::MAX, &mut batch).unwrap();
    store.commit(1).unwrap();
    // Room again by close: its retry succeeds.
    allow_deletes(&store);
    store.close().unwrap();
    let mut again = SqliteStore::open(SqliteStoreConfig::new(&path)).unwrap();
    assert_eq!(again.size().events, 1);
    again.read_oldest(4, usize::MAX, &mut batch).unwrap();
    assert_eq!(batch.iter().collect::<Vec<_>>(), vec![&b"{\"n\":1}"[..]]);
    again.close().unwrap();
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn damaged_rows_are_counted_once_wherever_reads_and_commits_fall() {
    let (dir, path) = fresh("damaged");
    let event = |n: usize| format!(r#"{{"n":{n}}}"#).into_bytes();
    // Rows 1 to 8 hold events 0 to 7; then 2, 4, 5 and 6 are damaged.
    let mut store = damaged(
        &path,
        8,
        "UPDATE events SET event = X'7B22FF7D' WHERE id = 2;
         UPDATE events SET event = 123456 WHERE id = 4;
         UPDATE events SET event = '[5]' WHERE id = 5;
         UPDATE events SET event = 'six' WHERE id = 6;",
    );
    assert_eq!(store.size().events, 8);
    let mut batch = StoredBatch::default();
    let mut read = |store: &mut SqliteStore| -> (Vec<Vec<u8>>, u64) {
        store.read_oldest(2, usize::MAX, &mut batch).unwrap();
        (
            batch.iter().map(<[u8]>::to_vec).collect(),
            store.take_lost(),
        )
    };

    // Behind an event read, a damaged row ends the read and waits, however often it is
    // read and however little is committed.
    assert_eq!(read(&mut store), (vec![event(0)], 0));
    store.commit(0).unwrap();
    assert_eq!(read(&mut store), (vec![event(0)], 0));
    store.commit(1).unwrap();
    // At the front of one, it is consumed and counted.
    assert_eq!(read(&mut store), (vec![event(2)], 1));
    assert_eq!(store.size().events, 6);
    store.commit(1).unwrap();
    // A read of nothing but damage goes on to the rows after it (a read of 2 meeting two
    // damaged rows, then a third and an event).
    assert_eq!(read(&mut store), (vec![event(6)], 3));
    assert_eq!(
        store.size(),
        StoreSize {
            events: 2,
            bytes: (event(6).len() + event(7).len()) as u64
        }
    );
    store.commit(1).unwrap();
    assert_eq!(read(&mut store), (vec![event(7)], 0));
    store.commit(1).unwrap();
    assert_eq!(store.size(), StoreSize::default());
    assert_eq!(store.oldest_age(), None);
    let rows: i64 = store
        .conn
        .as_ref()
        .unwrap()
        .query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0))
        .unwrap();
    assert_eq!(
        rows, 0,
        "the damaged rows were deleted with the events after them"
    );
    store.close().unwrap();
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_damaged_row_that_is_last_is_deleted_at_close() {
    let (dir, path) = fresh("damaged-last");
    let mut store = damaged(&path, 2, "UPDATE events SET event = X'FF' WHERE id = 2");
    let mut batch = StoredBatch::default();
    store.read_oldest(10, usize::MAX, &mut batch).unwrap();
    store.commit(batch.len()).unwrap();
    store.read_oldest(10, usize::MAX, &mut batch).unwrap();
    assert!(batch.is_empty());
    assert_eq!((store.take_lost(), store.size()), (1, StoreSize::default()));
    store.close().unwrap();
    let store = SqliteStore::open(SqliteStoreConfig::new(&path)).unwrap();
    assert_eq!(store.size(), StoreSize::default());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn the_damage_line_names_the_database_and_each_row() {
    let line = read::damaged_line(
        Path::new("/data/audit.db"),
        &[
            (2, "not UTF-8"),
            (4, "not bytes"),
            (5, "not a JSON object"),
            (6, "not bytes"),
        ],
    );
    assert_eq!(
        line,
        "/data/audit.db: damaged rows in events, not sent (counted in dropped.damaged): \
         row id 2: not UTF-8; rows 4, 6: not bytes; row id 5: not a JSON object"
    );
}

/// A store of `{"n":0}` to `{"n":<events - 1>}` in rows 1 to `events`, damaged by `sql`
/// while closed, and opened again.
fn damaged(path: &Path, events: usize, sql: &str) -> SqliteStore {
    let mut store = SqliteStore::open(SqliteStoreConfig::new(path)).unwrap();
    for n in 0..events {
        store
            .append(&[format!(r#"{{"n":{n}}}"#).as_bytes()])
            .unwrap();
    }
    store.close().unwrap();
    drop(store);
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(sql).unwrap();
    conn.close().unwrap();
    SqliteStore::open(SqliteStoreConfig::new(path)).unwrap()
}

/// Makes every delete from `events` fail, as on a full disk (SQLite needs room in its WAL
/// to delete), until [`allow_deletes`]. A `temp` trigger is the connection's alone, gone
/// when it closes; the other stays in the file.
fn refuse_deletes(store: &SqliteStore, temp: bool) {
    let temp = if temp { "TEMP " } else { "" };
    store
        .conn
        .as_ref()
        .unwrap()
        .execute_batch(&format!(
            "CREATE {temp}TRIGGER refuse BEFORE DELETE ON events \
             BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;"
        ))
        .unwrap();
}

/// Undoes [`refuse_deletes`] (an unqualified name finds a temporary trigger first).
fn allow_deletes(store: &SqliteStore) {
    store
        .conn
        .as_ref()
        .unwrap()
        .execute_batch("DROP TRIGGER refuse;")
        .unwrap();
}

/// An empty directory of its own for a test, and the database path in it.
fn fresh(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("auditbuf-sqlite-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.db");
    (dir, path)
}
