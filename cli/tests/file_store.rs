//! `auditbuf` on file stores made with the library: healthy, torn (cut mid-record),
//! flipped-byte and locked; what `verify` predicts is then what opening the store does.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use auditbuf::{FileStore, FileStoreConfig, Fsync, Store, StoredBatch};
use common::{Scope, event, fingerprint, number, run};
use serde_json::Value;

fn config(dir: &Path) -> FileStoreConfig {
    FileStoreConfig::new(dir)
        .segment_bytes(4096)
        .fsync(Fsync::Never)
}

/// A store in `dir` holding events 0..n (appended one by one, so across several segments)
/// and `letters` dead letters: `(reason, event number)`.
fn make_store(dir: &Path, n: usize, letters: &[(&str, usize)]) {
    let mut store = FileStore::open(config(dir)).unwrap();
    for i in 0..n {
        store.append(&[&event(i)]).unwrap();
    }
    for (reason, i) in letters {
        store.dead_letter(&event(*i), reason).unwrap();
    }
    store.close().unwrap();
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut s: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    s.sort();
    s
}

/// Every event the store holds, by number, read as a pipeline would.
fn held(dir: &Path) -> Vec<u64> {
    let mut store = FileStore::open(config(dir)).unwrap();
    let mut batch = StoredBatch::new();
    store
        .read_oldest(usize::MAX, usize::MAX, &mut batch)
        .unwrap();
    batch.iter().map(number).collect()
}

const LETTERS: &[(&str, usize)] = &[
    ("HTTP 400: event_type: unknown value", 1000),
    ("HTTP 422: correlation_id: missing", 1001),
    ("HTTP 400: event_type: unknown value", 1002),
];

#[test]
fn a_healthy_store_verifies_with_exit_0_and_is_left_as_it_was() {
    let _serial = common::serial();
    let scope = Scope::new("healthy");
    let dir = scope.path("wal");
    make_store(&dir, 120, LETTERS);
    assert!(segments(&dir).len() >= 3, "{:?}", segments(&dir));
    let before = fingerprint(&scope.0);
    let d = dir.to_str().unwrap();

    let text = run(&["store", "verify", d]);
    assert_eq!(text.code, 0, "{}{}", text.stdout, text.stderr);
    assert!(text.stdout.contains(": healthy"), "{}", text.stdout);
    assert!(
        text.stdout.contains("keep        120 events"),
        "{}",
        text.stdout
    );

    let json = run(&["store", "verify", "--json", d]);
    assert_eq!(json.code, 0);
    let v = json.json();
    assert_eq!(v["healthy"], true);
    assert_eq!(v["keep"]["events"], 120);
    assert_eq!(v["lost_events"], 0);
    assert_eq!(v["cut_bytes"], 0);
    assert_eq!(v["dead_letters"], 3);
    assert_eq!(v["quarantine"]["items"], Value::Array(vec![]));

    let inspect = run(&["store", "inspect", d]);
    assert_eq!(inspect.code, 0, "{}", inspect.stderr);
    assert!(
        inspect.stdout.contains("events        120"),
        "{}",
        inspect.stdout
    );
    assert!(
        inspect.stdout.contains("dead letters  3"),
        "{}",
        inspect.stdout
    );
    let inspect = run(&["store", "inspect", "--json", d]).json();
    assert_eq!(inspect["events"], 120);
    assert_eq!(inspect["dead_letters"]["count"], 3);
    let reasons = &inspect["dead_letters"]["by_reason"];
    assert_eq!(reasons[0]["reason"], "HTTP 400: event_type: unknown value");
    assert_eq!(reasons[0]["count"], 2);
    assert_eq!(reasons[1]["count"], 1);
    assert!(inspect["oldest_age_s"].as_f64().unwrap() < 3600.0);

    // The same store through its JSON and through the environment.
    let doc = format!(r#"{{"type":"file","params":{{"path":"{d}"}}}}"#);
    assert_eq!(run(&["store", "verify", &doc]).code, 0);
    let env = common::auditbuf(&["store", "verify", "--from-env", "AUDIT"])
        .env("AUDIT_BACKING_STORE", &doc)
        .output()
        .unwrap();
    assert_eq!(env.status.code(), Some(0));

    assert!(
        before == fingerprint(&scope.0),
        "verify or inspect changed the store"
    );
}

#[test]
fn a_torn_store_reports_the_cut_and_opening_it_does_just_that() {
    let _serial = common::serial();
    let scope = Scope::new("torn");
    let dir = scope.path("wal");
    make_store(&dir, 60, &[]);
    let last = segments(&dir)
        .into_iter()
        .rfind(|p| fs::metadata(p).unwrap().len() > 8)
        .unwrap();
    let full = fs::read(&last).unwrap();
    // Cut the last record in the middle of its event.
    let cut_at = full.len() - 20;
    fs::write(&last, &full[..cut_at]).unwrap();
    let record = 16 + event(59).len();
    let before = fingerprint(&scope.0);
    let d = dir.to_str().unwrap();

    let text = run(&["store", "verify", d]);
    assert_eq!(text.code, 1, "{}{}", text.stdout, text.stderr);
    assert!(text.stdout.contains("DAMAGED"), "{}", text.stdout);
    assert!(text.stdout.contains("torn last record"), "{}", text.stdout);
    let v = run(&["store", "verify", "--json", d]).json();
    assert_eq!(v["healthy"], false);
    assert_eq!(v["keep"]["events"], 59);
    assert_eq!(v["cut_bytes"], (record - 20) as u64);
    assert_eq!(v["lost_events"], 0);
    assert_eq!(v["quarantine"]["items"], Value::Array(vec![]));
    assert!(before == fingerprint(&scope.0), "verify changed the store");

    // What verify predicted is what opening it does.
    let store = FileStore::open(config(&dir)).unwrap();
    assert_eq!(store.recovery().truncated_bytes, (record - 20) as u64);
    assert_eq!(store.size().events, 59);
    drop(store);
    assert_eq!(held(&dir), (0..59).collect::<Vec<_>>());
    assert_eq!(run(&["store", "verify", d]).code, 0);
}

#[test]
fn a_flipped_byte_reports_the_quarantine_and_the_loss_opening_it_makes() {
    let _serial = common::serial();
    let scope = Scope::new("flip");
    let dir = scope.path("wal");
    make_store(&dir, 120, LETTERS);
    let victim = segments(&dir)[1].clone();
    let mut bytes = fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    fs::write(&victim, &bytes).unwrap();
    let before = fingerprint(&scope.0);
    let d = dir.to_str().unwrap();

    let text = run(&["store", "verify", d]);
    assert_eq!(text.code, 1, "{}{}", text.stdout, text.stderr);
    let name = victim.file_name().unwrap().to_str().unwrap();
    assert!(
        text.stdout.contains(&format!("{name}.corrupt")),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("lose        1 event"),
        "{}",
        text.stdout
    );
    let v = run(&["store", "verify", "--json", d]).json();
    assert_eq!(v["lost_events"], 1);
    assert_eq!(v["keep"]["events"], 119);
    let items = v["quarantine"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert!(
        items[0]
            .as_str()
            .unwrap()
            .ends_with(&format!("{name}.corrupt"))
    );
    assert!(before == fingerprint(&scope.0), "verify changed the store");
    // inspect reads it too, and says it is damaged.
    let inspect = run(&["store", "inspect", d]);
    assert_eq!(inspect.code, 0);
    assert!(inspect.stdout.contains("DAMAGED"), "{}", inspect.stdout);
    assert!(before == fingerprint(&scope.0), "inspect changed the store");

    let store = FileStore::open(config(&dir)).unwrap();
    let recovery = store.recovery().clone();
    assert_eq!(recovery.lost_events, 1);
    assert_eq!(
        recovery.corrupt_segments,
        vec![PathBuf::from(items[0].as_str().unwrap())]
    );
    assert_eq!(recovery.damaged_bytes, v["damaged_bytes"].as_u64().unwrap());
    assert_eq!(store.size().events, 119);
    drop(store);
    let after = run(&["store", "verify", d]);
    assert_eq!(after.code, 0, "{}", after.stdout);
    assert!(
        after.stdout.contains("an earlier recovery set aside"),
        "{}",
        after.stdout
    );
}

#[test]
fn a_store_another_process_has_open_is_refused_naming_its_pid() {
    let _serial = common::serial();
    let scope = Scope::new("locked");
    let dir = scope.path("wal");
    make_store(&dir, 10, LETTERS);
    let _held = FileStore::open(config(&dir)).unwrap();
    let pid = std::process::id();
    assert_eq!(
        fs::read_to_string(dir.join("LOCK")).unwrap().trim(),
        pid.to_string()
    );
    let before = fingerprint(&scope.0);
    let d = dir.to_str().unwrap();
    for args in [
        &["store", "verify", d][..],
        &["store", "inspect", d],
        &["dead-letters", "export", d],
        &["dead-letters", "replay", d],
        &["dead-letters", "replay", "--dry-run", d],
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
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
    }
    assert!(
        before == fingerprint(&scope.0),
        "a refused command changed the store"
    );
}

#[test]
fn replay_moves_dead_letters_back_in_order_once() {
    let _serial = common::serial();
    let scope = Scope::new("replay");
    let dir = scope.path("wal");
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
    make_store(&dir, 5, &letters);
    let d = dir.to_str().unwrap();

    // Nothing is old enough yet; a dry run moves nothing.
    let r = run(&["dead-letters", "replay", "--older-than", "1h", d]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "no dead letter matched; nothing moved\n")
    );
    let before = fingerprint(&scope.0);
    let dry = run(&[
        "dead-letters",
        "replay",
        "--dry-run",
        "--reason",
        "schema",
        d,
    ]);
    assert_eq!(dry.code, 0);
    assert!(
        dry.stdout.starts_with("would move 3 of 6 dead letters"),
        "{}",
        dry.stdout
    );
    assert!(
        before == fingerprint(&scope.0),
        "a dry run changed the store"
    );

    let r = run(&["dead-letters", "replay", "--reason", "SCHEMA", "--json", d]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["moved"], 3);
    assert_eq!(r.json()["dead_letters_left"], 3);
    assert_eq!(held(&dir), vec![0, 1, 2, 3, 4, 100, 102, 104]);

    // Again: nothing left to move for that reason.
    let again = run(&["dead-letters", "replay", "--reason", "schema", d]);
    assert_eq!(again.stdout, "no dead letter matched; nothing moved\n");
    assert_eq!(held(&dir), vec![0, 1, 2, 3, 4, 100, 102, 104]);

    // The rest, after events were sent meanwhile.
    {
        let mut store = FileStore::open(config(&dir)).unwrap();
        let mut batch = StoredBatch::new();
        store.read_oldest(6, usize::MAX, &mut batch).unwrap();
        store.commit(6).unwrap();
    }
    let r = run(&["dead-letters", "replay", d]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout
            .starts_with("moved 3 dead letters back into the store"),
        "{}",
        r.stdout
    );
    assert_eq!(held(&dir), vec![102, 104, 101, 103, 105]);
    assert_eq!(
        run(&["dead-letters", "replay", "--json", d]).json()["moved"],
        0
    );
    let v = run(&["store", "verify", "--json", d]).json();
    assert_eq!(
        (v["healthy"].as_bool(), v["dead_letters"].as_u64()),
        (Some(true), Some(0))
    );
}

#[test]
fn export_writes_ndjson_whose_events_parse() {
    let _serial = common::serial();
    let scope = Scope::new("export");
    let dir = scope.path("wal");
    make_store(&dir, 3, LETTERS);
    let before = fingerprint(&scope.0);
    let d = dir.to_str().unwrap();

    let r = run(&["dead-letters", "export", d]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (line, (reason, n)) in lines.iter().zip(LETTERS) {
        assert_eq!(line["reason"], *reason);
        let expected: Value = serde_json::from_slice(&event(*n)).unwrap();
        assert_eq!(line["event"], expected);
        assert!(
            humantime::parse_rfc3339(line["at"].as_str().unwrap()).is_ok(),
            "{line}"
        );
    }
    assert!(before == fingerprint(&scope.0), "export changed the store");

    let out = scope.path("letters.ndjson");
    let r = run(&[
        "dead-letters",
        "export",
        "--reason",
        "422",
        "--output",
        out.to_str().unwrap(),
        d,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!("exported 1 dead letter to {}\n", out.display())
    );
    let text = fs::read_to_string(&out).unwrap();
    let line: Value = serde_json::from_str(text.trim_end()).unwrap();
    assert_eq!(line["event"]["n"], 1001);
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // An existing file replaced gets the same mode.
    fs::set_permissions(&out, fs::Permissions::from_mode(0o644)).unwrap();
    let r = run(&["dead-letters", "export", "-o", out.to_str().unwrap(), d]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Never over the store's own files: the command changes nothing.
    let before = fingerprint(&dir);
    let own = dir.join("dead-letters.log");
    let r = run(&["dead-letters", "export", "-o", own.to_str().unwrap(), d]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("is the store's own"), "{}", r.stderr);
    assert!(before == fingerprint(&dir), "export changed the store");
}

#[test]
fn mistakes_get_a_clear_message_and_exit_2() {
    let _serial = common::serial();
    let scope = Scope::new("mistakes");
    let missing = scope.path("nowhere");
    let m = missing.to_str().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["store".into(), "verify".into(), m.into()],
            "no such directory",
        ),
        (
            vec![
                "store".into(),
                "inspect".into(),
                scope.0.to_str().unwrap().into(),
            ],
            "not a file store",
        ),
        (
            vec![
                "store".into(),
                "verify".into(),
                r#"{"type":"file","params":{"pth":"/x"}}"#.into(),
            ],
            "params.pth: unknown field",
        ),
        (
            vec![
                "store".into(),
                "verify".into(),
                r#"{"type":"file","params":{}}"#.into(),
            ],
            "params: missing field `path`",
        ),
        (
            vec!["store".into(), "verify".into(), r#"{"type":"file""#.into()],
            "(document)",
        ),
        (
            vec!["store".into(), "verify".into(), r#"{"type":"tape"}"#.into()],
            "unknown store type \"tape\"",
        ),
        (
            vec![
                "store".into(),
                "verify".into(),
                r#"{"type":"memory"}"#.into(),
            ],
            "only file, SQLite and Postgres stores",
        ),
        (
            vec![
                "store".into(),
                "verify".into(),
                "--from-env".into(),
                "NOPE".into(),
            ],
            "NOPE_BACKING_STORE is not set",
        ),
        (
            vec![
                "store".into(),
                "verify".into(),
                "--from-env".into(),
                "".into(),
            ],
            "--from-env: the prefix is empty",
        ),
        (
            vec![
                "dead-letters".into(),
                "replay".into(),
                "--older-than".into(),
                "soon".into(),
                m.into(),
            ],
            "--older-than",
        ),
        (vec!["store".into(), "verify".into()], "required"),
        (
            vec!["store".into(), "frobnicate".into()],
            "unrecognized subcommand",
        ),
        (
            vec!["dead-letters".into(), "replay".into(), m.into()],
            "no such directory",
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(&args);
        assert_eq!(r.code, 2, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(expected), "{args:?}: {}", r.stderr);
        assert!(
            !r.stderr.contains("Error {") && !r.stderr.contains("Config("),
            "{}",
            r.stderr
        );
    }
    assert!(!missing.exists(), "a command created the missing store");
}

#[test]
fn every_command_has_help() {
    let _serial = common::serial();
    for args in [
        &["--help"][..],
        &["store", "--help"],
        &["store", "verify", "--help"],
        &["store", "inspect", "--help"],
        &["dead-letters", "--help"],
        &["dead-letters", "replay", "--help"],
        &["dead-letters", "export", "--help"],
    ] {
        let r = run(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(
            r.stdout.contains("Usage: auditbuf"),
            "{args:?}: {}",
            r.stdout
        );
    }
    let r = run(&["dead-letters", "replay", "--help"]);
    assert!(r.stdout.contains("--older-than <DURATION>"), "{}", r.stdout);
    assert!(r.stdout.contains("--from-env <PREFIX>"), "{}", r.stdout);
}

#[test]
fn replay_over_damaged_dead_letters_says_nothing_of_a_repair_it_did_not_make() {
    let _serial = common::serial();
    let scope = Scope::new("replay-garbled-letters");
    let dir = scope.path("wal");
    make_store(&dir, 3, LETTERS);
    let log = dir.join("dead-letters.log");
    let garbage: Vec<u8> = (0..fs::metadata(&log).unwrap().len())
        .map(|i| (i * 7 + 13) as u8)
        .collect();
    fs::write(&log, garbage).unwrap();
    let r = run(&["dead-letters", "replay", dir.to_str().unwrap()]);
    assert!(r.code == 0 || r.code == 1, "{}{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("it had to \n"), "{}", r.stdout);
    let r = run(&["dead-letters", "replay", "--json", dir.to_str().unwrap()]);
    assert_ne!(r.json()["repaired"], "", "{}", r.stdout);
}

#[test]
fn a_segment_deleted_by_hand_is_damage_whose_loss_is_not_made_up() {
    let _serial = common::serial();
    let scope = Scope::new("missing");
    let dir = scope.path("wal");
    make_store(&dir, 120, &[]);
    let victim = segments(&dir)[1].clone();
    fs::remove_file(&victim).unwrap();
    let name = victim.file_name().unwrap().to_str().unwrap();
    let d = dir.to_str().unwrap();

    let text = run(&["store", "verify", d]);
    assert_eq!(text.code, 1, "{}{}", text.stdout, text.stderr);
    assert!(
        text.stdout.contains(
            "DAMAGED (opening it would find segments missing, whose unsent events are lost)"
        ) && text.stdout.contains(&format!(
            "lose        the events of {name}, missing (how many cannot be known)"
        )),
        "{}",
        text.stdout
    );
    let v = run(&["store", "verify", "--json", d]).json();
    assert_eq!(v["healthy"], false);
    assert_eq!(v["missing"], serde_json::json!([name]));
    assert_eq!(v["lost_events"], 0);
}
