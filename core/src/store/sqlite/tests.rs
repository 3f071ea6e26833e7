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
