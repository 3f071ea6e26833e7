//! The file store cut short at every step of its appends, rotations, commits and salvage:
//! a child process (this test binary, run again) aborts at a crash point injected with the
//! internal feature `_crash_points`. Reopened, the store must have lost nothing it
//! acknowledged, and may send again only the batch whose commit was cut short.

#![cfg(feature = "_crash_points")]

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use auditbuf::{Appended, FileStore, FileStoreConfig, Fsync, Store, StoredBatch};

const LOG_DIR: &str = "AUDITBUF_CRASH_LOG_DIR";
const OPEN_DIR: &str = "AUDITBUF_CRASH_OPEN_DIR";
const REPLAY_DIR: &str = "AUDITBUF_CRASH_REPLAY_DIR";
const SIGABRT: i32 = 6;

fn config(dir: &Path) -> FileStoreConfig {
    FileStoreConfig::new(dir)
        .segment_bytes(4096)
        .fsync(Fsync::Always)
}

fn event(i: u64) -> Vec<u8> {
    format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat(40)).into_bytes()
}

fn number(event: &[u8]) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(event).unwrap();
    v["n"].as_u64().unwrap()
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("auditbuf-file-crash-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

/// Runs the child test `test` with the store in `dir`, to abort at `point` after passing it
/// `skip` times. Returns whether it aborted, and the lines it printed.
fn run_child(test: &str, var: &str, dir: &Path, point: &str, skip: u32) -> (bool, Vec<String>) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(var, dir)
        .env("AUDITBUF_CRASH_POINT", point)
        .env("AUDITBUF_CRASH_SKIP", skip.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    // The harness's own "test … " may share a line with what the child printed first.
    let steps = [
        "appending ",
        "appended ",
        "committing ",
        "committed ",
        "opened",
    ];
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let at = steps.iter().filter_map(|s| l.find(s)).min()?;
            Some(l[at..].to_owned())
        })
        .collect();
    (out.status.signal() == Some(SIGABRT), lines)
}

fn read_all(store: &mut FileStore) -> Vec<u64> {
    let mut batch = StoredBatch::new();
    store
        .read_oldest(usize::MAX, usize::MAX, &mut batch)
        .unwrap();
    batch.iter().map(number).collect()
}

/// The child of the log test: appends batches of 10 and commits 7 of them at a time, then
/// catches up and goes on appending to consumed segments (each append rotates), printing
/// every step before and after it. Every other append is a `wal` one, synced after it
/// returns (and after a read and commit when its sync is run late).
#[test]
fn log_child() {
    let Ok(dir) = std::env::var(LOG_DIR) else {
        return;
    };
    let mut store = FileStore::open(config(Path::new(&dir))).unwrap();
    let (mut appended, mut committed) = (0u64, 0u64);
    let mut batch = StoredBatch::new();
    for round in 0..60 {
        let events: Vec<Vec<u8>> = (appended..appended + 10).map(event).collect();
        let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
        println!("appending 10");
        let mut pending = None;
        if round % 2 == 0 {
            store.append(&refs).unwrap();
        } else if let Appended::Pending(sync) = store.append_durably(&refs).unwrap() {
            pending = Some(sync);
        }
        let late = round % 4 == 3;
        if let Some(sync) = pending.take_if(|_| !late) {
            sync.run().unwrap();
        }
        appended += 10;
        if !late {
            println!("appended {appended}");
        }
        let take = if round < 40 { 7 } else { 1000 };
        store.read_oldest(take, 1 << 20, &mut batch).unwrap();
        println!("committing {}", batch.len());
        store.commit(batch.len()).unwrap();
        committed += batch.len() as u64;
        println!("committed {committed}");
        if let Some(sync) = pending {
            sync.run().unwrap();
            println!("appended {appended}");
        }
    }
}

#[test]
fn a_crash_at_any_step_of_the_log_loses_nothing_and_resends_at_most_one_batch() {
    let points = [
        "file.append.written",
        "file.commit.start",
        "file.replace.written",
        "file.replace.renamed",
        "file.delete.before",
        "file.delete.removed",
        "file.delete.before_dir_sync",
        "file.rotate.start",
        "file.segment.created",
        "file.rotate.added",
        "store.sync.run",
    ];
    for point in points {
        for skip in [0, 3, 12] {
            let dir = fresh_dir("log");
            let (aborted, lines) = run_child("log_child", LOG_DIR, &dir, point, skip);
            let at = format!("crash at {point} after {skip} passes");
            assert!(aborted, "{at}: the child never got there: {lines:?}");
            let last = |prefix: &str| {
                lines
                    .iter()
                    .rev()
                    .find_map(|l| l.strip_prefix(prefix)?.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let (appended, committed) = (last("appended "), last("committed "));
            let step = lines.last();
            let cut_commit = step
                .and_then(|l| l.strip_prefix("committing "))
                .map_or(0, |n| n.parse::<u64>().unwrap());
            // An append not yet acknowledged (its sync may run after a commit) may be kept.
            let line = |prefix: &str| lines.iter().rposition(|l| l.starts_with(prefix));
            let cut_append = line("appending ") > line("appended ");

            let mut store = FileStore::open(config(&dir)).unwrap();
            assert!(
                store.recovery().corrupt_segments.is_empty(),
                "{at}: a crash artefact was taken for damage: {:?}",
                store.recovery()
            );
            // The cursor on disk never names a segment already deleted: reading goes on
            // where it was, not from wherever the oldest segment left happens to start.
            assert!(
                !store.recovery().cursor_reset,
                "{at}: the cursor had to be reset: {:?}",
                store.recovery()
            );
            let got = read_all(&mut store);
            let first = got.first().copied().unwrap_or(appended);
            let end = got.last().map_or(appended, |n| n + 1);
            assert!(
                got.iter().copied().eq(first..end),
                "{at}: not one run in order: {got:?}"
            );
            assert!(
                first >= committed,
                "{at}: sends again from {first}, but {committed} were committed (the cut commit had {cut_commit})"
            );
            assert!(
                first <= committed + cut_commit,
                "{at}: lost {committed}..{first}"
            );
            assert!(
                end == appended || (cut_append && end == appended + 10),
                "{at}: {appended} appended, the store ends at {end}"
            );
            drop(store);
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

/// The child of the salvage test: opens the store (which salvages its damaged segment).
#[test]
fn open_child() {
    let Ok(dir) = std::env::var(OPEN_DIR) else {
        return;
    };
    FileStore::open(config(Path::new(&dir))).unwrap();
    println!("opened");
}

#[test]
fn a_crash_while_salvaging_a_damaged_segment_loses_nothing_more() {
    for point in [
        "file.salvage.written",
        "file.salvage.kept_aside",
        "file.salvage.renamed",
        "file.open.scanned",
        "file.replace.written",
        "file.replace.renamed",
    ] {
        let dir = fresh_dir("salvage");
        {
            let mut store = FileStore::open(config(&dir)).unwrap();
            for i in 0..300 {
                store.append(&[&event(i)]).unwrap();
            }
            let mut batch = StoredBatch::new();
            store.read_oldest(30, 1 << 20, &mut batch).unwrap();
            store.commit(30).unwrap();
        }
        let mut segments: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        segments.sort();
        let victim = &segments[2];
        let mut bytes = fs::read(victim).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x20;
        fs::write(victim, &bytes).unwrap();

        let (aborted, lines) = run_child("open_child", OPEN_DIR, &dir, point, 0);
        assert!(
            aborted,
            "crash at {point}: the child never got there: {lines:?}"
        );
        for reopen in 0..2 {
            let mut store = FileStore::open(config(&dir)).unwrap();
            let got = read_all(&mut store);
            let missing: Vec<u64> = (30..300).filter(|n| !got.contains(n)).collect();
            assert_eq!(
                missing.len(),
                1,
                "crash at {point}, open {reopen}: {missing:?}"
            );
            assert!(
                got.windows(2).all(|w| w[0] < w[1]) && got[0] == 30,
                "crash at {point}, open {reopen}: {got:?}"
            );
            let corrupt = PathBuf::from(format!("{}.corrupt", victim.display()));
            assert_eq!(
                fs::read(&corrupt).unwrap(),
                bytes,
                "crash at {point}: the damaged segment was not kept aside as it was"
            );
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

/// The child of the replay test: moves the dead letters refused with a 400 back into the
/// log (so that the dead-letter file is rewritten with the others).
#[test]
fn replay_child() {
    let Ok(dir) = std::env::var(REPLAY_DIR) else {
        return;
    };
    let moved = FileStore::replay_dead_letters(&config(Path::new(&dir)), |l| {
        l.reason.starts_with("HTTP 400")
    })
    .unwrap();
    println!("replayed {moved}");
}

/// Reads and commits everything the store holds, as a pipeline sending it would.
fn send_all(dir: &Path) -> Vec<u64> {
    let mut store = FileStore::open(config(dir)).unwrap();
    let got = read_all(&mut store);
    store.commit(got.len()).unwrap();
    got
}

#[test]
fn a_crash_at_any_step_of_a_replay_neither_loses_nor_duplicates_a_dead_letter() {
    let points = [
        "file.segment.created",
        "file.replace.written",
        "file.replace.renamed",
        "file.replay.committed",
        "file.replay.placed",
        "file.replay.cut",
    ];
    let expected: Vec<u64> = (0..5).chain(100..110).collect();
    let mut crashes = 0;
    for point in points {
        for skip in 0..4 {
            // Then: replay again at once; or first a pipeline sends what the store holds.
            for send_first in [false, true] {
                let dir = fresh_dir("replay");
                {
                    let mut store = FileStore::open(config(&dir)).unwrap();
                    for i in 0..5 {
                        store.append(&[&event(i)]).unwrap();
                    }
                    for i in 100..110 {
                        let reason = if i % 2 == 0 {
                            "HTTP 400: refused"
                        } else {
                            "HTTP 409: other"
                        };
                        store.dead_letter(&event(i), reason).unwrap();
                    }
                }
                let (aborted, lines) = run_child("replay_child", REPLAY_DIR, &dir, point, skip);
                if !aborted {
                    // The replay passes this point fewer times than `skip`.
                    assert!(skip > 0, "crash at {point}: never reached: {lines:?}");
                    let _ = fs::remove_dir_all(&dir);
                    continue;
                }
                crashes += 1;
                let at = format!("crash at {point} after {skip} passes (send first: {send_first})");
                let mut sent = if send_first {
                    send_all(&dir)
                } else {
                    Vec::new()
                };
                // Every dead letter moves in this replay or is finished by it: the
                // interrupted one reported none.
                let moved = FileStore::replay_dead_letters(&config(&dir), |_| true).unwrap();
                assert_eq!(moved, 10, "{at}");
                sent.extend(send_all(&dir));
                // The log's own events first, then each dead letter exactly once (those
                // of each reason in the order they were dead-lettered).
                assert_eq!(sent[..5], expected[..5], "{at}: {sent:?}");
                let mut once = sent.clone();
                once.sort_unstable();
                assert_eq!(once, expected, "{at}: {sent:?}");
                for parity in [0, 1] {
                    let of: Vec<u64> = sent
                        .iter()
                        .copied()
                        .filter(|n| *n >= 100 && n % 2 == parity)
                        .collect();
                    assert!(of.windows(2).all(|w| w[0] < w[1]), "{at}: {sent:?}");
                }
                assert!(
                    FileStore::read_dead_letters(&dir).unwrap().is_empty(),
                    "{at}: dead letters left"
                );
                assert_eq!(
                    FileStore::replay_dead_letters(&config(&dir), |_| true).unwrap(),
                    0,
                    "{at}"
                );
                let check = FileStore::verify(&dir).unwrap();
                assert!(
                    check.is_healthy() && check.notes.is_empty(),
                    "{at}: {check:?}"
                );
                let _ = fs::remove_dir_all(&dir);
            }
        }
    }
    assert!(crashes >= 22, "only {crashes} crashes");
}
