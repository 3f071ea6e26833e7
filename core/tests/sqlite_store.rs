//! The SQLite store: the contract every store meets, and what only a database file must do:
//! stay private, refuse a second process, keep what a crash interrupted, sync by checkpoint,
//! and take bulk appends.

#![cfg(feature = "sqlite")]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use auditbuf::{Fsync, SqliteStore, SqliteStoreConfig, StoreConfig};

store_contract!(durable: true, open: |scope: &Path, max_bytes: Option<u64>| -> Box<dyn Store> {
    let config = SqliteStoreConfig::new(scope.join("events.db"));
    let config = match max_bytes {
        Some(b) => config.max_total_bytes(b),
        None => config,
    };
    Box::new(SqliteStore::open(config).unwrap())
});

fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn sqlite_json(params: serde_json::Value) -> String {
    serde_json::json!({"type": "sqlite", "params": params}).to_string()
}

#[test]
fn files_are_private() {
    let scope = Scope::new("private");
    let db = scope.0.join("a/b/events.db");
    let mut store = SqliteStore::open(SqliteStoreConfig::new(&db)).unwrap();
    append_range(&mut store, 0..10);
    store.sync().unwrap();
    assert_eq!(mode(&scope.0.join("a")), 0o700);
    assert_eq!(mode(&scope.0.join("a/b")), 0o700);
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&sibling(&db, "-wal")), 0o600);
    // Exclusive locking mode: the WAL index stays in memory.
    assert!(!sibling(&db, "-shm").exists());
    drop(store);

    // A database file someone made readable is made private again.
    fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();
    let mut store = SqliteStore::open(SqliteStoreConfig::new(&db)).unwrap();
    append_range(&mut store, 10..20);
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&sibling(&db, "-wal")), 0o600);
    assert_eq!(
        read(&mut store, 100, 1 << 20),
        (0..20).map(event).collect::<Vec<_>>()
    );
}

#[test]
fn a_second_open_is_refused_clearly() {
    let scope = Scope::new("second");
    let db = scope.0.join("events.db");
    let mut first = SqliteStore::open(SqliteStoreConfig::new(&db)).unwrap();
    append_range(&mut first, 0..3);
    let e = SqliteStore::open(SqliteStoreConfig::new(&db)).unwrap_err();
    assert!(
        matches!(&e, Error::Store(s) if s.store == "sqlite"),
        "{e:?}"
    );
    let message = e.to_string();
    assert!(message.contains(&db.display().to_string()), "{message}");
    assert!(message.contains("in use by another process"), "{message}");
    first.close().unwrap();
    // Closing released it.
    let mut second = SqliteStore::open(SqliteStoreConfig::new(&db)).unwrap();
    assert_eq!(second.size().events, 3);
    // The closed store refuses work, naming the database.
    let e = first.append(&[b"{}"]).unwrap_err().to_string();
    assert!(
        e.contains(&db.display().to_string()) && e.contains("closed"),
        "{e}"
    );
    second.close().unwrap();
}

#[test]
fn errors_name_the_database() {
    let scope = Scope::new("errors");
    // A directory where the database should be.
    let e = SqliteStore::open(SqliteStoreConfig::new(&scope.0))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("sqlite store: ") && e.contains(&scope.0.display().to_string()),
        "{e}"
    );
    // A file that is not a database.
    let junk = scope.0.join("junk.db");
    fs::write(&junk, vec![0x5a; 8192]).unwrap();
    let e = SqliteStore::open(SqliteStoreConfig::new(&junk))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&junk.display().to_string()) && e.contains("not a database"),
        "{e}"
    );
}

#[test]
fn malformed_params_name_their_field() {
    let field_of =
        |params: serde_json::Value| match StoreConfig::from_json(&sqlite_json(params.clone())) {
            Err(Error::Config(c)) => c.field,
            other => panic!("{params}: {other:?}"),
        };
    assert_eq!(field_of(serde_json::json!({})), "params");
    assert_eq!(field_of(serde_json::json!({"path": 3})), "params.path");
    assert_eq!(
        field_of(serde_json::json!({"path": "/x", "max_total_bytes": "big"})),
        "params.max_total_bytes"
    );
    assert_eq!(
        field_of(serde_json::json!({"path": "/x", "colour": "red"})),
        "params.colour"
    );
    assert_eq!(
        field_of(serde_json::json!({"path": "/x", "fsync": "sometimes"})),
        "params.fsync"
    );
    assert_eq!(
        field_of(serde_json::json!({"path": "/x", "fsync": "always", "fsync_interval_ms": 5})),
        "params.fsync_interval_ms"
    );
}

#[test]
fn store_config_reads_and_opens_it() {
    let scope = Scope::new("config");
    let db = scope.0.join("events.db");
    let config = StoreConfig::from_json(&sqlite_json(serde_json::json!({
        "path": db, "max_total_bytes": 4096, "fsync": "interval", "fsync_interval_ms": 250
    })))
    .unwrap();
    let expected = SqliteStoreConfig::new(&db)
        .max_total_bytes(4096)
        .fsync(Fsync::Interval(Duration::from_millis(250)));
    assert_eq!(config, StoreConfig::Sqlite(expected));
    let mut store = config.open().unwrap();
    assert!(store.is_durable());
    append_range(&mut *store, 0..5);
    assert_eq!(read(&mut *store, 10, 1 << 20).len(), 5);
    store.close().unwrap();
}

#[test]
fn a_database_file_deleted_while_open_is_reported() {
    let scope = Scope::new("deleted");
    let db = scope.0.join("events.db");
    let sink = auditbuf::CallbackSink::new(|_: &[&[u8]]| auditbuf::Outcome::Delivered);
    let config =
        auditbuf::Config::default().store(StoreConfig::Sqlite(SqliteStoreConfig::new(&db)));
    let p = auditbuf::Pipeline::new(config, sink).unwrap();
    fs::remove_file(&db).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let said = |p: &auditbuf::Pipeline| {
        p.last_error()
            .is_some_and(|e| e.contains("events.db: deleted while the store has it open"))
    };
    while !said(&p) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(said(&p), "{:?}", p.last_error());
    assert!(p.close(Duration::from_secs(5)).stats.is_consistent());
}

#[test]
fn reopening_after_a_drop_without_close_keeps_everything() {
    let scope = Scope::new("drop");
    let db = scope.0.join("events.db");
    {
        let mut store = SqliteStore::open(SqliteStoreConfig::new(&db).fsync(Fsync::Never)).unwrap();
        append_range(&mut store, 0..30);
        let got = read(&mut store, 5, 1 << 20);
        store.commit(got.len()).unwrap();
        append_range(&mut store, 30..40);
        // Dropped: no close, no sync.
    }
    let mut store = SqliteStore::open(SqliteStoreConfig::new(&db)).unwrap();
    assert_eq!(store.size().events, 35);
    assert_eq!(
        store.size().bytes,
        (5..40).map(|i| event(i).len() as u64).sum::<u64>()
    );
    assert!(store.oldest_age().is_some());
    assert_eq!(
        read(&mut store, 100, 1 << 20),
        (5..40).map(event).collect::<Vec<_>>()
    );
}

const CRASH_DIR: &str = "AUDITBUF_SQLITE_CRASH_DIR";

/// The child of `a_crash_keeps_what_was_appended`: does nothing unless it is that child.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR) else {
        return;
    };
    let mut store =
        SqliteStore::open(SqliteStoreConfig::new(Path::new(&dir).join("events.db"))).unwrap();
    append_range(&mut store, 0..50);
    let got = read(&mut store, 10, 1 << 20);
    store.commit(got.len()).unwrap();
    append_range(&mut store, 50..60);
    std::process::abort();
}

#[test]
fn a_crash_keeps_what_was_appended() {
    let scope = Scope::new("crash");
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--test-threads=1"])
        .env(CRASH_DIR, &scope.0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child was meant to abort");
    assert!(
        sibling(&scope.0.join("events.db"), "-wal").exists(),
        "no WAL left to recover from"
    );
    let mut store = open(&scope.0, None);
    assert_eq!(store.size().events, 50);
    assert_eq!(
        read(&mut *store, 100, 1 << 20),
        (10..60).map(event).collect::<Vec<_>>()
    );
}

/// Events in the database file alone, as a copy without its WAL sees them.
fn events_in_main_file(db: &Path, scope: &Path) -> u64 {
    let copy = scope.join("copy.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(sibling(&copy, suffix));
    }
    fs::copy(db, &copy).unwrap();
    SqliteStore::open(SqliteStoreConfig::new(&copy))
        .unwrap()
        .size()
        .events
}

#[test]
fn sync_checkpoints_appends_into_the_database_file() {
    for fsync in [Fsync::Interval(Duration::from_secs(3600)), Fsync::Never] {
        let scope = Scope::new("sync");
        let db = scope.0.join("events.db");
        let mut store = SqliteStore::open(SqliteStoreConfig::new(&db).fsync(fsync)).unwrap();
        append_range(&mut store, 0..20);
        // Appended into the WAL only, not yet synced.
        assert_eq!(events_in_main_file(&db, &scope.0), 0, "{fsync:?}");
        store.tick().unwrap(); // the interval has not passed
        assert_eq!(events_in_main_file(&db, &scope.0), 0, "{fsync:?}");
        store.sync().unwrap();
        assert_eq!(events_in_main_file(&db, &scope.0), 20, "{fsync:?}");
    }
    // An interval that has passed checkpoints as the append returns.
    let scope = Scope::new("sync-interval");
    let db = scope.0.join("events.db");
    let mut store = SqliteStore::open(
        SqliteStoreConfig::new(&db).fsync(Fsync::Interval(Duration::from_millis(1))),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    append_range(&mut store, 0..7);
    assert_eq!(events_in_main_file(&db, &scope.0), 7);
    // Closing checkpoints and empties the WAL.
    append_range(&mut store, 7..9);
    store.close().unwrap();
    assert!(fs::metadata(sibling(&db, "-wal")).map_or(true, |m| m.len() == 0));
    assert_eq!(events_in_main_file(&db, &scope.0), 9);
}

/// Durability `wal`: each group is durable when its transaction commits (`synchronous =
/// FULL` syncs the WAL), with no checkpoint per group; checkpoints come at the policy's
/// interval, and on close.
#[test]
fn wal_groups_commit_durably_without_a_checkpoint_each() {
    use auditbuf::{Appended, CallbackSink, Config, Durability, Outcome, Pipeline, RetryPolicy};

    for fsync in [Fsync::Interval(Duration::from_secs(3600)), Fsync::Never] {
        let scope = Scope::new("wal-no-checkpoint");
        let db = scope.0.join("events.db");
        let config = SqliteStoreConfig::new(&db).fsync(fsync);
        let mut store = SqliteStore::open(config.clone()).unwrap();
        match store.append_durably(&[b"{\"n\":0}"]).unwrap() {
            Appended::Durable => {}
            other => panic!("{fsync:?}: {other:?}"),
        }
        drop(store);

        let sink = CallbackSink::new(|_: &[&[u8]]| Outcome::retry("down"));
        let retry = RetryPolicy::default().backoff(Duration::from_secs(5), Duration::from_secs(5));
        let wal = Config::default().durability(Durability::Wal).retry(retry);
        let pipeline = Pipeline::with_store(wal, sink, SqliteStore::open(config).unwrap()).unwrap();
        for i in 1..=10 {
            pipeline
                .record_json(format!(r#"{{"n":{i}}}"#).as_bytes())
                .unwrap();
        }
        // Only the database file as it is: the groups are in the WAL, not checkpointed.
        assert_eq!(events_in_main_file(&db, &scope.0), 1, "{fsync:?}");
        let report = pipeline.close(Duration::from_millis(200));
        assert_eq!(report.stats.stored, 11, "{fsync:?}: {:?}", report.stats);
        assert_eq!(events_in_main_file(&db, &scope.0), 11, "{fsync:?}");
    }
}

#[test]
fn dead_letters_are_kept_apart_and_bounded() {
    let scope = Scope::new("dead");
    let db = scope.0.join("events.db");
    let mut store = SqliteStore::open(SqliteStoreConfig::new(&db)).unwrap();
    append_range(&mut store, 0..2);
    store
        .dead_letter(b"{\"bad\":1}", "HTTP 400: schema")
        .unwrap();
    store
        .dead_letter(b"{\"bad\":2}", "HTTP 422: \u{e9}")
        .unwrap();
    assert_eq!(store.size().events, 2);
    store.close().unwrap();
    drop(store);

    // They survive reopening, and stay within max(max_total_bytes / 8, 1 MiB).
    let mut store = SqliteStore::open(SqliteStoreConfig::new(&db).max_total_bytes(4096)).unwrap();
    let letters = store.dead_letters().unwrap();
    let got: Vec<(&[u8], &str)> = letters
        .iter()
        .map(|d| (&d.event[..], d.reason.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (&b"{\"bad\":1}"[..], "HTTP 400: schema"),
            (&b"{\"bad\":2}"[..], "HTTP 422: \u{e9}")
        ]
    );
    assert!(letters[0].at.elapsed().unwrap_or_default() < Duration::from_secs(3600));
    for i in 0..5u8 {
        store
            .dead_letter(&vec![b'0' + i; 300 << 10], "too big")
            .unwrap();
    }
    let letters = store.dead_letters().unwrap();
    let kept: usize = letters.iter().map(|d| d.event.len()).sum();
    assert!(kept <= 1 << 20, "{kept}");
    assert_eq!(
        letters.last().unwrap().event,
        vec![b'4'; 300 << 10],
        "the newest is kept"
    );
    assert_eq!(
        read(&mut store, 10, 1 << 20),
        (0..2).map(event).collect::<Vec<_>>()
    );
}

#[test]
fn bulk_appends_and_drains_in_order() {
    let scope = Scope::new("bulk");
    let mut store = open(&scope.0, None);
    let started = Instant::now();
    for start in (0..100_000).step_by(500) {
        append_range(&mut *store, start..start + 500);
    }
    store.sync().unwrap();
    let appended = started.elapsed();
    assert_eq!(store.size().events, 100_000);
    let started = Instant::now();
    let mut next = 0;
    let mut batch = StoredBatch::new();
    loop {
        store.read_oldest(1000, 1 << 20, &mut batch).unwrap();
        if batch.is_empty() {
            break;
        }
        for e in batch.iter() {
            assert_eq!(e, event(next));
            next += 1;
        }
        store.commit(batch.len()).unwrap();
    }
    assert_eq!(next, 100_000);
    assert_eq!(store.size(), auditbuf::StoreSize::default());
    assert_eq!(store.oldest_age(), None);
    eprintln!(
        "100 000 events: appended in {appended:?}, drained in {:?}",
        started.elapsed()
    );
}

/// `wal` mode on SQLite: what `record` acknowledged is in the database before it returns,
/// and a later pipeline delivers it.
#[test]
fn wal_mode_keeps_acknowledged_events_for_the_next_run() {
    use auditbuf::{CallbackSink, Config, Durability, Outcome, Pipeline, RetryPolicy};
    use std::time::Duration;

    let scope = Scope::new("wal-mode");
    let db = scope.0.join("events.db");
    {
        let sink = CallbackSink::new(|_: &[&[u8]]| Outcome::retry("down"));
        let retry = RetryPolicy::default().backoff(Duration::from_secs(5), Duration::from_secs(5));
        let config = Config::default().durability(Durability::Wal).retry(retry);
        let store = auditbuf::SqliteStore::open(auditbuf::SqliteStoreConfig::new(&db)).unwrap();
        let pipeline = std::sync::Arc::new(Pipeline::with_store(config, sink, store).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let pipeline = std::sync::Arc::clone(&pipeline);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        pipeline
                            .record_json(format!(r#"{{"t":{t},"i":{i}}}"#).as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let report = pipeline.close(Duration::from_millis(200));
        assert_eq!(report.stats.recorded, 200);
        assert_eq!(report.stats.stored, 200, "{:?}", report.stats);
        assert!(report.stats.is_consistent());
    }
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = CallbackSink::new({
        let seen = std::sync::Arc::clone(&seen);
        move |batch: &[&[u8]]| {
            seen.lock().unwrap().extend(
                batch
                    .iter()
                    .map(|e| serde_json::from_slice::<serde_json::Value>(e).unwrap()),
            );
            Outcome::Delivered
        }
    });
    let store = auditbuf::SqliteStore::open(auditbuf::SqliteStoreConfig::new(&db)).unwrap();
    let pipeline = Pipeline::with_store(Config::default(), sink, store).unwrap();
    let report = pipeline.close(Duration::from_secs(10));
    assert_eq!(report.stats.recovered, 200);
    assert_eq!(report.stats.delivered, 200);
    let seen = seen.lock().unwrap();
    for t in 0..4 {
        let order: Vec<u64> = seen
            .iter()
            .filter(|v| v["t"] == t)
            .map(|v| v["i"].as_u64().unwrap())
            .collect();
        assert_eq!(order, (0..50).collect::<Vec<_>>(), "thread {t}");
    }
}

#[test]
fn a_forked_child_can_neither_write_nor_close_the_database() {
    let scope = Scope::new("fork");
    let db = scope.0.join("events.db");
    let mut store = Some(SqliteStore::open(SqliteStoreConfig::new(&db)).unwrap());
    let parent = store.as_mut().unwrap();
    append_range(parent, 0..5);
    assert_eq!(read(parent, 2, 1 << 20).len(), 2);
    let code = common::fork::in_forked_child(|| {
        let Some(mut child) = store.take() else {
            return 1;
        };
        let forked = |r: Result<(), Error>| matches!(r, Err(Error::Forked));
        let refused = [
            forked(child.append(&[b"{\"child\":1}"])),
            forked(child.commit(2)),
            forked(child.sync()),
            forked(child.dead_letter(b"{}", "child")),
            forked(child.tick()),
            forked(child.close()),
        ];
        // Dropped here: closing would checkpoint and remove the WAL the parent writes to.
        drop(child);
        match refused.iter().position(|ok| !ok) {
            None => 0,
            Some(i) => 10 + i as i32,
        }
    });
    assert_eq!(code, 0, "the child could write (step {})", code - 10);
    assert!(
        sibling(&db, "-wal").exists(),
        "the child removed the WAL the parent writes to"
    );
    let parent = store.as_mut().unwrap();
    append_range(parent, 5..10);
    parent.commit(2).unwrap();
    parent.close().unwrap();
    drop(store);
    let mut store = SqliteStore::open(SqliteStoreConfig::new(&db)).unwrap();
    assert_eq!(
        read(&mut store, 100, 1 << 20),
        (2..10).map(event).collect::<Vec<_>>()
    );
    assert!(store.dead_letters().unwrap().is_empty());
}
