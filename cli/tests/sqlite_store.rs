//! `auditbuf` on SQLite stores made with the library: healthy (closed cleanly, and with a
//! WAL a crash left), damaged (a payload byte flipped, a page overwritten) and locked.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use auditbuf::{Fsync, SqliteStore, SqliteStoreConfig, Store, StoredBatch};
use common::{Scope, event, fingerprint, number, run};
use serde_json::Value;

fn config(path: &Path) -> SqliteStoreConfig {
    SqliteStoreConfig::new(path).fsync(Fsync::Never)
}

/// A database at `path` holding events 0..n and dead letters `(reason, event number)`.
fn make_store(path: &Path, n: usize, letters: &[(&str, usize)]) -> SqliteStore {
    let mut store = SqliteStore::open(config(path)).unwrap();
    for i in 0..n {
        store.append(&[&event(i)]).unwrap();
    }
    for (reason, i) in letters {
        store.dead_letter(&event(*i), reason).unwrap();
    }
    store
}

fn held(path: &Path) -> Vec<u64> {
    let mut store = SqliteStore::open(config(path)).unwrap();
    let mut batch = StoredBatch::new();
    store
        .read_oldest(usize::MAX, usize::MAX, &mut batch)
        .unwrap();
    store.close().unwrap();
    batch.iter().map(number).collect()
}

const LETTERS: &[(&str, usize)] = &[
    ("HTTP 400: event_type: unknown value", 1000),
    ("HTTP 422: correlation_id: missing", 1001),
    ("HTTP 400: event_type: unknown value", 1002),
];

#[test]
fn a_healthy_database_verifies_with_exit_0_and_is_left_as_it_was() {
    let _serial = common::serial();
    let scope = Scope::new("sqlite-healthy");
    let db = scope.path("audit.db");
    make_store(&db, 40, LETTERS).close().unwrap();
    let before = fingerprint(&scope.0);
    let path = db.to_str().unwrap();
    let doc = format!(r#"{{"type":"sqlite","params":{{"path":"{path}"}}}}"#);

    let r = run(&["store", "verify", &doc]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("sqlite store"), "{}", r.stdout);
    assert!(r.stdout.contains("integrity_check: ok"), "{}", r.stdout);
    let v = run(&["store", "verify", "--json", &doc]).json();
    assert_eq!(
        (v["healthy"].as_bool(), v["keep"]["events"].as_u64()),
        (Some(true), Some(40))
    );
    assert_eq!(v["dead_letters"], 3);
    // A bare path to a database file is an SQLite store too.
    assert_eq!(run(&["store", "verify", path]).code, 0);
    let inspect = run(&["store", "inspect", "--json", path]).json();
    assert_eq!(inspect["events"], 40);
    assert_eq!(inspect["dead_letters"]["by_reason"][0]["count"], 2);
    let export = run(&["dead-letters", "export", path]);
    assert_eq!(export.stdout.lines().count(), 3);
    for line in export.stdout.lines() {
        let line: Value = serde_json::from_str(line).unwrap();
        assert!(line["event"]["n"].as_u64().unwrap() >= 1000, "{line}");
    }
    assert!(
        before == fingerprint(&scope.0),
        "a read-only command changed the database"
    );
}

#[test]
fn a_database_a_crash_left_with_its_wal_is_read_from_a_copy() {
    let _serial = common::serial();
    let scope = Scope::new("sqlite-wal");
    let live = scope.path("live.db");
    let store = make_store(&live, 25, LETTERS);
    // What a crash leaves on disk: the database and its WAL, copied while it is open.
    let crashed = scope.path("crashed");
    fs::create_dir(&crashed).unwrap();
    let db = crashed.join("audit.db");
    fs::copy(&live, &db).unwrap();
    fs::copy(scope.path("live.db-wal"), crashed.join("audit.db-wal")).unwrap();
    drop(store);
    assert!(fs::metadata(crashed.join("audit.db-wal")).unwrap().len() > 0);
    let before = fingerprint(&crashed);

    let r = run(&["store", "verify", db.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("audit.db-wal:"), "{}", r.stdout);
    let v = run(&["store", "verify", "--json", db.to_str().unwrap()]).json();
    assert_eq!(v["keep"]["events"], 25);
    assert_eq!(v["dead_letters"], 3);
    assert!(
        before == fingerprint(&crashed),
        "verify changed the database or made files beside it"
    );
}

/// Flips the first byte of event `n`'s payload in the database file.
fn flip_payload(db: &Path, n: usize) {
    let mut bytes = fs::read(db).unwrap();
    let needle = event(n);
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .unwrap();
    bytes[at] ^= 0x20; // `{` becomes `[`
    fs::write(db, bytes).unwrap();
}

#[test]
fn a_flipped_payload_byte_is_reported_with_its_row() {
    let _serial = common::serial();
    let scope = Scope::new("sqlite-flip");
    let db = scope.path("audit.db");
    make_store(&db, 30, &[]).close().unwrap();
    flip_payload(&db, 7);
    let before = fingerprint(&scope.0);
    let path = db.to_str().unwrap();

    let r = run(&["store", "verify", path]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("DAMAGED"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("row id 8: not a JSON object (damaged); a pipeline does not send it"),
        "{}",
        r.stdout
    );
    let v = run(&["store", "verify", "--json", path]).json();
    assert_eq!(v["healthy"], false);
    assert_eq!(v["keep"]["events"], 29);
    assert_eq!(v["lost_events"], 1);
    assert!(
        before == fingerprint(&scope.0),
        "verify changed the database"
    );
}

#[test]
fn a_file_that_is_no_database_cannot_be_checked_exit_2() {
    let _serial = common::serial();
    let scope = Scope::new("sqlite-junk");
    let db = scope.path("audit.db");
    fs::write(&db, vec![0x5a; 50_000]).unwrap();
    let before = fingerprint(&scope.0);
    let r = run(&["store", "verify", db.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("not a database") && r.stderr.contains("a pipeline cannot open it"),
        "{}",
        r.stderr
    );
    assert!(before == fingerprint(&scope.0), "verify changed the file");
}

/// A page of the events table overwritten: open fails (it reads every page to count), and
/// `verify` says so instead of what opening would keep and lose.
#[test]
fn an_overwritten_page_is_said_to_keep_the_store_from_opening() {
    let _serial = common::serial();
    let scope = Scope::new("sqlite-page");
    let db = scope.path("audit.db");
    make_store(&db, 200, &[]).close().unwrap();
    let mut bytes = fs::read(&db).unwrap();
    let page = 4096;
    assert!(bytes.len() >= 4 * page);
    // The header and cell pointers of page 3, a page of the events table.
    for b in &mut bytes[2 * page..2 * page + 64] {
        *b = 0xA5;
    }
    fs::write(&db, bytes).unwrap();
    let before = fingerprint(&scope.0);

    let r = run(&["store", "verify", db.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("integrity_check found") || r.stdout.contains("unreadable"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("DAMAGED (opening it would fail)")
            && r.stdout
                .contains("opening the store would fail: database disk image is malformed")
            && r.stdout.contains(".recover"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("lose "), "{}", r.stdout);
    let v = run(&["store", "verify", "--json", db.to_str().unwrap()]).json();
    assert_eq!(
        (v["healthy"].as_bool(), v["opens"].as_bool()),
        (Some(false), Some(false))
    );
    assert!(
        v["keep"].is_null() && v["readable"]["events"].is_u64(),
        "{v}"
    );
    let why = v["open_error"].as_str().unwrap().to_owned();
    assert!(
        before == fingerprint(&scope.0),
        "verify changed the database"
    );
    let e = SqliteStore::open(config(&db)).unwrap_err().to_string();
    assert!(e.contains(&why), "open: {e}\nverify: {why}");
}

const HOLD: &str = "AUDITBUF_TEST_HOLD_SQLITE";

/// Run as a child by the test below: holds the database named by `HOLD` open until its
/// standard input closes. (A database held in the test process itself would lose its
/// locks as soon as the test read the file: POSIX locks belong to the process, and closing
/// any descriptor of the file releases them.)
#[test]
#[ignore = "a helper the locked-database test runs as a child process"]
fn hold_database_open() {
    let Some(path) = std::env::var_os(HOLD) else {
        return;
    };
    let _store = SqliteStore::open(config(Path::new(&path))).unwrap();
    println!("holding");
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

#[test]
fn a_database_another_process_has_open_is_refused_naming_its_pid() {
    let _serial = common::serial();
    let scope = Scope::new("sqlite-locked");
    let db = scope.path("audit.db");
    make_store(&db, 5, LETTERS).close().unwrap();
    let mut holder = Command::new(std::env::current_exe().unwrap())
        .args([
            "hold_database_open",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOLD, &db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap().contains("holding")));
    let pid = holder.id();
    let before = fingerprint(&scope.0);
    let path = db.to_str().unwrap();
    for args in [
        &["store", "verify", path][..],
        &["store", "inspect", path],
        &["dead-letters", "export", path],
        &["dead-letters", "replay", path],
    ] {
        let r = run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stdout);
        assert!(
            r.stderr.contains(&format!(
                "the store is in use by another process (pid {pid})"
            )),
            "{args:?}: {}",
            r.stderr
        );
    }
    assert!(
        before == fingerprint(&scope.0),
        "a refused command changed the database"
    );
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    assert_eq!(run(&["store", "verify", path]).code, 0);
}

#[test]
fn replay_moves_dead_letters_back_in_order_once() {
    let _serial = common::serial();
    let scope = Scope::new("sqlite-replay");
    let db = scope.path("audit.db");
    let letters: Vec<(&str, usize)> = (0..6)
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
    make_store(&db, 4, &letters).close().unwrap();
    let path = db.to_str().unwrap();

    let r = run(&["dead-letters", "replay", "--reason", "schema", path]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("moved 3 dead letters back into the store"),
        "{}",
        r.stdout
    );
    assert_eq!(held(&db), vec![0, 1, 2, 3, 100, 102, 104]);
    let again = run(&[
        "dead-letters",
        "replay",
        "--reason",
        "schema",
        "--json",
        path,
    ]);
    assert_eq!(again.json()["moved"], 0);
    assert_eq!(again.json()["dead_letters_left"], 3);
    assert_eq!(held(&db), vec![0, 1, 2, 3, 100, 102, 104]);
    assert_eq!(
        run(&["dead-letters", "replay", "--json", path]).json()["moved"],
        3
    );
    assert_eq!(held(&db), vec![0, 1, 2, 3, 100, 102, 104, 101, 103, 105]);
    let v = run(&["store", "verify", "--json", path]).json();
    assert_eq!(
        (v["keep"]["events"].as_u64(), v["dead_letters"].as_u64()),
        (Some(10), Some(0))
    );
}

#[test]
fn a_missing_database_is_not_created() {
    let _serial = common::serial();
    let scope = Scope::new("sqlite-missing");
    let db: PathBuf = scope.path("nowhere/audit.db");
    let doc = format!(
        r#"{{"type":"sqlite","params":{{"path":"{}"}}}}"#,
        db.display()
    );
    for args in [
        &["store", "verify", doc.as_str()][..],
        &["dead-letters", "replay", doc.as_str()],
    ] {
        let r = run(args);
        assert_eq!(r.code, 2);
        assert!(r.stderr.contains("no such file"), "{}", r.stderr);
    }
    assert!(!scope.path("nowhere").exists());
}

#[test]
fn another_programs_database_is_not_made_a_store() {
    let _serial = common::serial();
    let scope = Scope::new("sqlite-foreign");
    let db = scope.path("other.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ada');")
            .unwrap();
    }
    let empty = scope.path("empty.db");
    fs::write(&empty, b"").unwrap();
    let before = fingerprint(&scope.0);
    for path in [&db, &empty] {
        let doc = format!(
            r#"{{"type":"sqlite","params":{{"path":"{}"}}}}"#,
            path.display()
        );
        for args in [
            &["dead-letters", "replay", doc.as_str()][..],
            &["store", "verify", doc.as_str()],
        ] {
            let r = run(args);
            assert_eq!(r.code, 2, "{args:?}: {}{}", r.stdout, r.stderr);
            assert!(
                r.stderr.contains("not an auditbuf store"),
                "{args:?}: {}",
                r.stderr
            );
        }
    }
    assert!(
        before == fingerprint(&scope.0),
        "a foreign database was changed"
    );
}
