//! The file store (segmented write-ahead log): the contract every store meets, and what
//! only a log on disk must do: rotate and delete its segments, keep its cursor, stay
//! private, refuse a second process and a forked child, bound its records, replay dead
//! letters. Damage found on open, its salvage and `FileStore::verify` are in
//! `file_store_recovery.rs`.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use auditbuf::{
    CallbackSink, Config, FileStore, FileStoreConfig, Fsync, Outcome, Pipeline, StoreConfig,
};
use common::file_store::{config, segments};

store_contract!(durable: true, open: |scope: &Path, max_bytes: Option<u64>| -> Box<dyn Store> {
    let config = FileStoreConfig::new(scope.join("wal")).segment_bytes(4096).fsync(Fsync::Never);
    let config = match max_bytes {
        Some(b) => config.max_total_bytes(b),
        None => config,
    };
    Box::new(FileStore::open(config).unwrap())
});

fn all(store: &mut FileStore) -> Vec<Vec<u8>> {
    read(store, usize::MAX, usize::MAX)
}

#[test]
fn segments_rotate_and_consumed_ones_are_deleted() {
    let scope = Scope::new("rotate");
    let mut store = FileStore::open(config(&scope.0)).unwrap();
    for start in (0..400).step_by(10) {
        append_range(&mut store, start..start + 10);
    }
    assert!(segments(&scope.0).len() > 3, "{:?}", segments(&scope.0));
    let got = all(&mut store);
    assert_eq!(got, (0..400).map(event).collect::<Vec<_>>());
    store.commit(got.len()).unwrap();
    // The next append starts afresh; everything consumed is gone.
    store.append(&[b"{}"]).unwrap();
    assert_eq!(segments(&scope.0).len(), 1, "{:?}", segments(&scope.0));
}

#[test]
fn a_cursor_that_cannot_be_written_loses_no_commit_and_frees_the_space() {
    let scope = Scope::new("cursor-unwritable");
    let dir = scope.0.join("wal");
    let mut store = FileStore::open(config(&dir).fsync(Fsync::Always)).unwrap();
    for start in (0..400).step_by(10) {
        append_range(&mut store, start..start + 10);
    }
    let before = segments(&dir).len();
    assert!(before > 3, "{before} segments");
    // The cursor's temporary file cannot be created (as on a full disk, or a directory
    // made read-only; a directory in its place stops root too).
    fs::create_dir(dir.join("cursor.tmp")).unwrap();
    let first = read(&mut store, 250, usize::MAX);
    // The receiver has them: the commit stands, in memory, whatever the disk does.
    store.commit(first.len()).unwrap();
    assert_eq!(store.size().events, 150);
    // Consumed segments are deleted all the same: the space they free may be what the
    // cursor needs.
    assert!(segments(&dir).len() < before, "{:?}", segments(&dir));
    let next = read(&mut store, 50, usize::MAX);
    assert_eq!(next, (250..300).map(event).collect::<Vec<_>>());
    store.commit(next.len()).unwrap();
    // Appends (synced each, `fsync: always`, over a rotation) and syncs go on meanwhile:
    // the events are durable; only the cursor waits.
    for start in (400..440).step_by(10) {
        append_range(&mut store, start..start + 10);
    }
    store.sync().unwrap();
    assert_eq!(store.size().events, 140);
    drop(store);
    // Reopened (once the disk has room again) without a cursor written since: what was
    // sent of the oldest segment left comes again (at least once), nothing is lost.
    fs::remove_dir(dir.join("cursor.tmp")).unwrap();
    let mut store = FileStore::open(config(&dir)).unwrap();
    let again = all(&mut store);
    assert!(
        again.ends_with(&(300..440).map(event).collect::<Vec<_>>()),
        "{}",
        again.len()
    );
    assert!(again.len() < 440, "{}", again.len());
    store.commit(again.len() - 140).unwrap();
    drop(store);
    let mut store = FileStore::open(config(&dir)).unwrap();
    assert_eq!(all(&mut store), (300..440).map(event).collect::<Vec<_>>());
}

fn append_durably(store: &mut FileStore, range: std::ops::Range<usize>) -> auditbuf::PendingSync {
    let events: Vec<Vec<u8>> = range.map(event).collect();
    let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
    match store.append_durably(&refs).unwrap() {
        auditbuf::Appended::Pending(sync) => sync,
        other => panic!("the file store syncs apart, got {other:?}"),
    }
}

#[test]
fn a_rotation_while_a_sync_is_pending_loses_no_sync_of_an_old_segment() {
    let scope = Scope::new("pending-rotate");
    let dir = scope.0.join("wal");
    let seg = |id: u64| dir.join(format!("{id:016x}.seg"));
    let file = |id: u64| format!("fdatasync {}", seg(id).display());
    // Each step as the sync's `Debug` lists it.
    let dir_sync = format!("fsync {}", dir.display());
    // `Fsync::Never`: rotations sync nothing themselves; only the handed-out syncs do.
    let mut store = FileStore::open(config(&dir)).unwrap();
    let first = append_durably(&mut store, 0..1);
    assert_eq!(format!("{first:?}"), format!("[{}]", file(1)));

    // Durable appends until one rotates while `first` has not run: `first` still holds
    // segment 1; the one that rotated holds segment 2 and the directory's new entry.
    let rotated = loop {
        let sync = append_durably(&mut store, 0..40);
        if seg(2).exists() {
            break sync;
        }
    };
    assert_eq!(
        format!("{rotated:?}"),
        format!("[{}, {}]", file(2), dir_sync)
    );

    // Appends left unsynced (as the flush thread's are), then a durable append that rotates:
    // its sync covers the segment rotated away too, not the new tail alone.
    while fs::metadata(seg(2)).unwrap().len() < 2400 {
        store.append(&[&event(1)]).unwrap();
    }
    let last = append_durably(&mut store, 0..80);
    assert!(seg(3).exists());
    assert_eq!(
        format!("{last:?}"),
        format!("[{}, {}, {}]", file(2), file(3), dir_sync)
    );
    for sync in [first, rotated, last] {
        sync.run().unwrap();
    }
}

#[test]
fn a_cursor_past_the_end_after_a_power_cut_resends_nothing() {
    // The flush thread may send and commit what a `wal` append wrote before its sync ended;
    // a power cut then can take those records, leaving the cursor past the segment's end.
    let scope = Scope::new("past-end");
    let dir = scope.0.join("wal");
    let last = dir.join(format!("{:016x}.seg", 1));
    {
        let mut store = FileStore::open(config(&dir)).unwrap();
        for i in 0..10 {
            append_range(&mut store, i..i + 1);
        }
        assert_eq!(all(&mut store).len(), 10);
        store.commit(10).unwrap();
    }
    let len = fs::metadata(&last).unwrap().len();
    let file = fs::OpenOptions::new().write(true).open(&last).unwrap();
    file.set_len(len - 100).unwrap();
    drop(file);
    let mut store = FileStore::open(config(&dir)).unwrap();
    assert!(!store.recovery().cursor_reset, "{:?}", store.recovery());
    assert_eq!(store.size().events, 0);
    append_range(&mut store, 10..12);
    assert_eq!(all(&mut store), (10..12).map(event).collect::<Vec<_>>());
}

#[test]
fn files_are_private() {
    let scope = Scope::new("perms");
    let dir = scope.0.join("wal");
    let mut store = FileStore::open(config(&dir)).unwrap();
    append_range(&mut store, 0..5);
    let got = all(&mut store);
    store.commit(2).unwrap();
    store.dead_letter(b"{}", "reason").unwrap();
    assert_eq!(got.len(), 5);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    assert_eq!(store.dead_letters().unwrap()[0].reason, "reason");
}

#[test]
fn a_second_open_is_refused_clearly() {
    let scope = Scope::new("lock");
    let dir = scope.0.join("wal");
    let mut first = FileStore::open(config(&dir)).unwrap();
    let err = FileStore::open(config(&dir)).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "LOCK: the store is already open in this process (pid {}), by a pipeline or store \
             not yet closed",
            std::process::id()
        )),
        "{message}"
    );
    // Closing releases it, though the handle lives on (a closed pipeline not yet dropped),
    // which then refuses to write.
    auditbuf::Store::close(&mut first).unwrap();
    let second = FileStore::open(config(&dir)).unwrap();
    let closed = auditbuf::Store::append(&mut first, &[b"{}"]).unwrap_err();
    assert!(
        closed.to_string().ends_with("the store was closed"),
        "{closed}"
    );
    drop(first);
    drop(second);
    FileStore::open(config(&dir)).unwrap();
}

#[test]
fn deleting_lock_by_hand_lets_no_second_opener_in() {
    let scope = Scope::new("lock-deleted");
    let dir = scope.0.join("wal");
    let mut first = FileStore::open(config(&dir)).unwrap();
    append_range(&mut first, 0..3);
    // An operator taking `LOCK` for a stale lock file.
    fs::remove_file(dir.join("LOCK")).unwrap();
    let err = FileStore::open(config(&dir)).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "the store is already open in this process (pid {})",
            std::process::id()
        )),
        "{err}"
    );
    // The tools, which read without changing anything, are kept out too.
    for refused in [
        FileStore::verify(&dir).map(|_| ()),
        FileStore::read_dead_letters(&dir).map(|_| ()),
    ] {
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("already open")),
            "{refused:?}"
        );
    }
    auditbuf::Store::close(&mut first).unwrap();
    let mut second = FileStore::open(config(&dir)).unwrap();
    assert_eq!(all(&mut second), (0..3).map(event).collect::<Vec<_>>());
}

/// A small tmpfs, mounted while it lives (needs root and a kernel that lets
/// the test mount: CI runs as root; elsewhere the test that uses it says so and passes).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// A tmpfs of 256 KiB at `disk` in the test's scope; `None`, said on stderr, where it
    /// cannot be mounted (not root): the test is skipped.
    fn mount(scope: &Scope) -> Option<SmallDisk> {
        let dir = scope.0.join("disk");
        fs::create_dir_all(&dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=262144", "tmpfs"])
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a tmpfs here (not root?)");
        }
        mounted.then_some(SmallDisk(dir))
    }

    /// Takes whatever room is left, until [`make_room`](Self::make_room): not even a new
    /// segment's header fits.
    fn fill(&self) {
        let mut ballast = fs::File::create(self.0.join("ballast")).unwrap();
        while std::io::Write::write_all(&mut ballast, &[0; 512]).is_ok() {}
    }

    fn make_room(&self) {
        fs::remove_file(self.0.join("ballast")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_store_on_a_full_disk_opens_and_drains() {
    let scope = Scope::new("full-disk");
    let Some(disk) = SmallDisk::mount(&scope) else {
        return;
    };
    let dir = disk.0.join("wal");
    let mut store = FileStore::open(config(&dir)).unwrap();
    let mut kept = 0;
    while store.append(&[&event(kept)]).is_ok() {
        kept += 1;
    }
    drop(store);
    // Whatever room is left goes too.
    disk.fill();
    // A restarted program opens its store (appending after the last segment) and drains
    // it, which frees the space.
    let mut store = FileStore::open(config(&dir)).unwrap();
    let got = all(&mut store);
    assert_eq!(got, (0..kept).map(event).collect::<Vec<_>>());
    store.commit(got.len()).unwrap();
    assert_eq!(store.size().events, 0);
    drop(store);
    disk.make_room();
    let mut store = FileStore::open(config(&dir)).unwrap();
    append_range(&mut store, 0..3);
    assert_eq!(all(&mut store), (0..3).map(event).collect::<Vec<_>>());
}

#[test]
fn a_cursor_inside_the_last_segment_survives_opening_on_a_full_disk() {
    let scope = Scope::new("full-disk-cursor");
    let Some(disk) = SmallDisk::mount(&scope) else {
        return;
    };
    let dir = disk.0.join("wal");
    let mut store = FileStore::open(config(&dir)).unwrap();
    append_range(&mut store, 0..10);
    // Five sent: the cursor is inside the last (and only) segment with records.
    assert_eq!(read(&mut store, 5, usize::MAX).len(), 5);
    store.commit(5).unwrap();
    drop(store);
    disk.fill();
    // No room for a new segment: the last one becomes the tail, the cursor kept in it.
    let mut store = FileStore::open(config(&dir)).unwrap();
    assert_eq!(store.size().events, 5);
    let got = all(&mut store);
    assert_eq!(got, (5..10).map(event).collect::<Vec<_>>());
    store.commit(got.len()).unwrap();
    assert_eq!(store.size().events, 0);
}

#[test]
fn a_store_directory_deleted_while_open_is_reported() {
    // `rm -rf` of a directory taken for stale: the pipeline keeps writing to files no
    // restart will find. It cannot undo that, but says so.
    let scope = Scope::new("dir-deleted");
    let dir = scope.0.join("wal");
    let sink = CallbackSink::new(|_: &[&[u8]]| Outcome::Delivered);
    let config = Config::default().store(StoreConfig::File(config(&dir)));
    let p = Pipeline::new(config, sink).unwrap();
    p.record_json(br#"{"event_type":"t"}"#).unwrap();
    fs::remove_dir_all(&dir).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let said = |p: &Pipeline| {
        p.last_error()
            .is_some_and(|e| e.contains("wal: deleted while the store has it open"))
    };
    while !said(&p) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(said(&p), "{:?}", p.last_error());
    let report = p.close(Duration::from_secs(5));
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
}

#[test]
fn the_cursor_survives_reopening_and_a_damaged_cursor_only_resends() {
    let scope = Scope::new("cursor");
    let dir = scope.0.join("wal");
    {
        let mut store = FileStore::open(config(&dir)).unwrap();
        append_range(&mut store, 0..50);
        read(&mut store, 20, usize::MAX);
        store.commit(20).unwrap();
    }
    {
        let mut store = FileStore::open(config(&dir)).unwrap();
        assert_eq!(all(&mut store), (20..50).map(event).collect::<Vec<_>>());
    }
    fs::write(dir.join("cursor"), b"garbage").unwrap();
    let mut store = FileStore::open(config(&dir)).unwrap();
    assert!(store.recovery().cursor_reset);
    // Nothing is lost; the events of the damaged cursor's segment may come again.
    let got = all(&mut store);
    assert!(got.ends_with(&(20..50).map(event).collect::<Vec<_>>()));
}

#[test]
fn a_store_path_that_is_a_file_is_an_error() {
    let scope = Scope::new("not-a-dir");
    let file = scope.0.join("plain");
    fs::write(&file, b"x").unwrap();
    let err = FileStore::open(config(&file)).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
}

#[test]
fn a_cursor_naming_a_missing_segment_deletes_nothing() {
    let scope = Scope::new("stale-cursor");
    let dir = scope.0.join("wal");
    {
        let mut store = FileStore::open(config(&dir)).unwrap();
        for i in 0..100 {
            append_range(&mut store, i..i + 1);
        }
        let got = read(&mut store, 60, usize::MAX);
        store.commit(got.len()).unwrap();
    }
    // The segments vanish (removed by hand, or lost in a power cut); the cursor stays.
    for s in segments(&dir) {
        fs::remove_file(s).unwrap();
    }
    {
        let mut store = FileStore::open(config(&dir).fsync(Fsync::Always)).unwrap();
        assert!(store.recovery().cursor_reset);
        store.append(&[b"{\"kept\":1}"]).unwrap();
    }
    let mut store = FileStore::open(config(&dir)).unwrap();
    assert_eq!(all(&mut store), vec![b"{\"kept\":1}".to_vec()]);
}

#[test]
fn odd_reads_do_not_panic_and_age_follows_commits() {
    let scope = Scope::new("odd-reads");
    let mut store = FileStore::open(config(&scope.0)).unwrap();
    for i in 0..40 {
        append_range(&mut store, i..i + 1);
    }
    assert!(read(&mut store, 0, usize::MAX).is_empty());
    assert_eq!(read(&mut store, 1, 0).len(), 1);
    let got = read(&mut store, 35, usize::MAX);
    store.commit(got.len()).unwrap();
    assert_eq!(store.size().events, 5);
    assert!(store.oldest_age().is_some());
}

#[test]
fn a_pipeline_refuses_events_larger_than_its_store_keeps() {
    let scope = Scope::new("record-limit");
    let sink = || CallbackSink::new(|_: &[&[u8]]| Outcome::Delivered);
    // The largest event a file store keeps is its frame's cap (256 MiB less the timestamp)
    // or its capacity, whichever is less; the configuration's own ceiling is 64 MiB.
    let huge = Config::default()
        .queue_capacity(100)
        .batch_max_bytes(128 << 20)
        .max_event_bytes(60 << 20)
        .store(StoreConfig::File(
            config(&scope.0.join("wal")).max_total_bytes(32 << 20),
        ));
    let message = match Pipeline::new(huge, sink()) {
        Err(auditbuf::Error::Config(c)) => {
            assert_eq!(c.field, "max_event_bytes");
            c.reason
        }
        other => panic!("{other:?}"),
    };
    assert!(
        message.contains("file store") && message.contains(&((32 << 20) - 16).to_string()),
        "{message}"
    );
    // One record must also fit what the store may hold at all.
    let small = FileStore::open(config(&scope.0.join("small")).max_total_bytes(10_000)).unwrap();
    let err = Pipeline::with_store(Config::default(), sink(), small).unwrap_err();
    assert!(err.to_string().contains("9984 bytes"), "{err}");
    let fits = FileStore::open(config(&scope.0.join("fits")).max_total_bytes(1 << 20)).unwrap();
    let pipeline = Pipeline::with_store(Config::default(), sink(), fits).unwrap();
    assert!(pipeline.close(Duration::from_secs(5)).stats.is_consistent());
}

#[test]
fn the_store_refuses_an_event_over_its_largest_record() {
    let scope = Scope::new("record-refused");
    let mut store = FileStore::open(config(&scope.0).max_total_bytes(10_000)).unwrap();
    let err = store.append(&[&[b'x'; 9985][..]]).unwrap_err();
    assert!(
        err.to_string().contains("largest record of 9984 bytes"),
        "{err}"
    );
    store.append(&[&[b'x'; 9984][..]]).unwrap();
    assert_eq!(all(&mut store).len(), 1);
}

#[test]
fn a_forked_child_cannot_write_the_store_it_inherited() {
    let scope = Scope::new("fork");
    let dir = scope.0.join("wal");
    let mut store = FileStore::open(config(&dir).fsync(Fsync::Always)).unwrap();
    append_range(&mut store, 0..5);
    assert_eq!(read(&mut store, 2, usize::MAX).len(), 2);
    let code = common::fork::in_forked_child(|| {
        let forked = |r: Result<(), Error>| matches!(r, Err(Error::Forked));
        let refused = [
            forked(store.append(&[b"{\"child\":1}"])),
            forked(store.commit(2)),
            forked(store.sync()),
            forked(store.dead_letter(b"{}", "child")),
            forked(store.close()),
        ];
        match refused.iter().position(|ok| !ok) {
            None => 0,
            Some(i) => 10 + i as i32,
        }
    });
    assert_eq!(code, 0, "the child could write (step {})", code - 10);
    append_range(&mut store, 5..10);
    store.commit(2).unwrap();
    drop(store);
    let mut store = FileStore::open(config(&dir)).unwrap();
    assert_eq!(all(&mut store), (2..10).map(event).collect::<Vec<_>>());
    assert!(store.dead_letters().unwrap().is_empty());
}

#[test]
fn dead_letters_replay_into_the_log_in_order_and_only_once() {
    let scope = Scope::new("replay");
    let dir = scope.0.join("wal");
    {
        let mut store = FileStore::open(config(&dir)).unwrap();
        append_range(&mut store, 0..3);
        for i in 10..16 {
            let reason = if i % 2 == 0 {
                "HTTP 400: even"
            } else {
                "HTTP 400: odd"
            };
            store.dead_letter(&event(i), reason).unwrap();
        }
    }
    let letters = FileStore::read_dead_letters(&dir).unwrap();
    assert_eq!(letters.len(), 6);
    let moved =
        FileStore::replay_dead_letters(&config(&dir), |l| l.reason.ends_with("even")).unwrap();
    assert_eq!(moved, 3);
    let left: Vec<Vec<u8>> = FileStore::read_dead_letters(&dir)
        .unwrap()
        .into_iter()
        .map(|l| l.event)
        .collect();
    assert_eq!(left, vec![event(11), event(13), event(15)]);
    assert_eq!(
        FileStore::replay_dead_letters(&config(&dir), |l| l.reason.ends_with("even")).unwrap(),
        0
    );
    let mut store = FileStore::open(config(&dir)).unwrap();
    assert_eq!(
        all(&mut store),
        vec![
            event(0),
            event(1),
            event(2),
            event(10),
            event(12),
            event(14)
        ]
    );
}

#[test]
fn a_closed_pipeline_lets_go_of_its_store_before_it_is_dropped() {
    let scope = Scope::new("closed-releases");
    let dir = scope.0.join("wal");
    let on_store = || {
        let (sink, seen) = common::sinks::collecting();
        let store = FileStore::open(config(&dir)).unwrap();
        (
            Pipeline::with_store(Config::default(), sink, store).unwrap(),
            seen,
        )
    };
    let (first, seen) = on_store();
    for i in 0..5 {
        first
            .record_json(format!(r#"{{"i":{i}}}"#).as_bytes())
            .unwrap();
    }
    let report = first.close(Duration::from_secs(5));
    assert!(
        report.completed && report.stats.is_consistent(),
        "{report:?}"
    );
    assert_eq!((report.stats.delivered, seen.lock().unwrap().len()), (5, 5));
    // `first` is still alive, closed: the store is free for the next pipeline.
    let (second, _) = on_store();
    second.record_json(br#"{"i":5}"#).unwrap();
    let report = second.close(Duration::from_secs(5));
    assert!(
        report.completed && report.stats.is_consistent(),
        "{report:?}"
    );
    assert_eq!(report.stats.delivered, 1);
    drop(first);
}
