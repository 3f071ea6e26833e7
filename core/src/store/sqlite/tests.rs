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
