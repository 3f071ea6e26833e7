//! The file store (segmented write-ahead log): the contract every store meets, and what
//! only a log on disk must survive: torn writes, flipped bytes, a second process.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use auditbuf::{
    CallbackSink, Config, FileStore, FileStoreConfig, Fsync, Outcome, Pipeline, StoreConfig,
};
use proptest::prelude::*;

store_contract!(durable: true, open: |scope: &Path, max_bytes: Option<u64>| -> Box<dyn Store> {
    let config = FileStoreConfig::new(scope.join("wal")).segment_bytes(4096).fsync(Fsync::Never);
    let config = match max_bytes {
        Some(b) => config.max_total_bytes(b),
        None => config,
    };
    Box::new(FileStore::open(config).unwrap())
});

fn config(dir: &Path) -> FileStoreConfig {
    FileStoreConfig::new(dir)
        .segment_bytes(4096)
        .fsync(Fsync::Never)
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

/// Writes events 0..n into a fresh store and returns the path of its last segment.
fn store_with(dir: &Path, n: usize) -> PathBuf {
    let mut store = FileStore::open(config(dir)).unwrap();
    for i in 0..n {
        append_range(&mut store, i..i + 1);
    }
    drop(store);
    segments(dir)
        .into_iter()
        .rfind(|p| fs::metadata(p).unwrap().len() > 8)
        .unwrap()
}

#[test]
fn a_torn_last_record_is_cut_at_every_offset_and_the_rest_kept() {
    let scope = Scope::new("torn");
    let dir = scope.0.join("wal");
    let last = store_with(&dir, 12);
    let full = fs::read(&last).unwrap();
    let one = event(11);
    let record = 16 + one.len();
    let start = full.len() - record;
    for cut in start..full.len() {
        fs::write(&last, &full[..cut]).unwrap();
        let mut store = FileStore::open(config(&dir)).unwrap();
        let recovery = store.recovery().clone();
        assert_eq!(
            recovery.truncated_bytes as usize,
            cut - start,
            "cut at {cut}"
        );
        assert!(recovery.corrupt_segments.is_empty(), "cut at {cut}");
        assert_eq!(
            all(&mut store),
            (0..11).map(event).collect::<Vec<_>>(),
            "cut at {cut}"
        );
        drop(store);
        // Reopening a store leaves a fresh empty tail segment: remove it to cut again.
        for s in segments(&dir) {
            if s != last && fs::metadata(&s).unwrap().len() == 8 {
                fs::remove_file(s).unwrap();
            }
        }
    }
}

#[test]
fn a_flipped_byte_mid_segment_quarantines_it_and_later_records_and_segments_are_read() {
    let scope = Scope::new("flip");
    let dir = scope.0.join("wal");
    store_with(&dir, 300);
    let segs = segments(&dir);
    assert!(segs.len() >= 3);
    let victim = &segs[0];
    let mut bytes = fs::read(victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    fs::write(victim, &bytes).unwrap();

    let mut store = FileStore::open(config(&dir)).unwrap();
    let recovery = store.recovery().clone();
    assert_eq!(recovery.corrupt_segments.len(), 1, "{recovery:?}");
    assert!(
        recovery.corrupt_segments[0]
            .to_string_lossy()
            .ends_with(".seg.corrupt")
    );
    assert!(recovery.corrupt_segments[0].exists());
    let got = all(&mut store);
    // Exactly one event (the damaged one) is lost; everything else, in order, is kept.
    let expected: Vec<Vec<u8>> = (0..300).map(event).collect();
    assert_eq!(got.len(), 299);
    let lost: Vec<_> = expected.iter().filter(|e| !got.contains(e)).collect();
    assert_eq!(lost.len(), 1);
    let mut kept = expected.clone();
    kept.retain(|e| got.contains(e));
    assert_eq!(got, kept, "order changed");
    assert_eq!(store.size().events, 299);
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
    let first = FileStore::open(config(&dir)).unwrap();
    let err = FileStore::open(config(&dir)).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("in use by another process") && message.contains("LOCK"),
        "{message}"
    );
    drop(first);
    FileStore::open(config(&dir)).unwrap();
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random, truncated and duplicated store bytes never panic on open or read.
    #[test]
    fn damaged_bytes_never_panic(
        n in 1usize..60,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
        duplicate in any::<bool>(),
        garbage in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let scope = Scope::new("fuzz");
        let dir = scope.0.join("wal");
        let last = store_with(&dir, n);
        let mut bytes = fs::read(&last).unwrap();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if duplicate {
            let copy = bytes[8..].to_vec();
            bytes.extend_from_slice(&copy);
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        bytes.extend_from_slice(&garbage);
        fs::write(&last, &bytes).unwrap();
        fs::write(dir.join("cursor"), &garbage).unwrap();
        let mut store = FileStore::open(config(&dir)).unwrap();
        let got = all(&mut store);
        store.commit(got.len()).unwrap();
        let most = if duplicate { 2 * n } else { n };
        prop_assert!(got.len() <= most, "{} events from {}", got.len(), most);
        prop_assert_eq!(store.size().events, 0);
    }
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
fn a_salvage_interrupted_after_keeping_the_copy_keeps_it_whole() {
    let scope = Scope::new("salvage-twice");
    let dir = scope.0.join("wal");
    store_with(&dir, 300);
    let victim = segments(&dir)[0].clone();
    let mut bytes = fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    fs::write(&victim, &bytes).unwrap();
    // As if a crash came right after the damaged segment was linked aside.
    let corrupt = PathBuf::from(format!("{}.corrupt", victim.display()));
    fs::hard_link(&victim, &corrupt).unwrap();
    let mut store = FileStore::open(config(&dir)).unwrap();
    assert_eq!(
        fs::read(&corrupt).unwrap(),
        bytes,
        "the quarantined copy was damaged further"
    );
    assert_eq!(all(&mut store).len(), 299);
}

/// A segment file's bytes holding `events`, each framed by hand and stamped `stored_at_ms`
/// (the frame: len u32le, crc32c u32le, stored_at_ms u64le, event; the CRC covers the rest).
fn framed_segment(events: &[Vec<u8>], stored_at_ms: u64) -> (Vec<u8>, Vec<usize>) {
    let mut buf = b"ABWAL01\n".to_vec();
    let mut starts = Vec::new();
    for e in events {
        starts.push(buf.len());
        let len = (e.len() + 8) as u32;
        let mut crc = crc32c::crc32c(&len.to_le_bytes());
        crc = crc32c::crc32c_append(crc, &stored_at_ms.to_le_bytes());
        crc = crc32c::crc32c_append(crc, e);
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(&crc.to_le_bytes());
        buf.extend_from_slice(&stored_at_ms.to_le_bytes());
        buf.extend_from_slice(e);
    }
    (buf, starts)
}

#[test]
fn salvage_keeps_good_records_whatever_their_timestamps() {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // 2 Jan 1970 (a clock before NTP sync), 1 Jan 2099 (a clock set far ahead), now.
    for stamp in [86_400_000, 4_070_908_800_000, now_ms] {
        let scope = Scope::new("clock");
        let dir = scope.0.join("wal");
        fs::create_dir_all(&dir).unwrap();
        let events: Vec<Vec<u8>> = (0..8).map(event).collect();
        let (mut bytes, starts) = framed_segment(&events, stamp);
        bytes[starts[3] + 16 + 2] ^= 0x01;
        fs::write(dir.join("0000000000000001.seg"), &bytes).unwrap();

        let mut store = FileStore::open(config(&dir)).unwrap();
        let mut kept = events.clone();
        kept.remove(3);
        assert_eq!(all(&mut store), kept, "stamped {stamp}");
        assert_eq!(
            store.recovery().corrupt_segments.len(),
            1,
            "stamped {stamp}"
        );
        assert_eq!(store.recovery().lost_events, 1, "stamped {stamp}");
    }
}

#[test]
fn damage_found_on_open_is_counted_and_reported_by_the_pipeline() {
    let scope = Scope::new("damage-counted");
    let dir = scope.0.join("wal");
    store_with(&dir, 300);
    let victim = segments(&dir)[1].clone();
    let mut bytes = fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    fs::write(&victim, &bytes).unwrap();

    let delivered = Arc::new(AtomicU64::new(0));
    let sink = CallbackSink::new({
        let delivered = Arc::clone(&delivered);
        move |batch: &[&[u8]]| {
            delivered.fetch_add(batch.len() as u64, Ordering::SeqCst);
            Outcome::Delivered
        }
    });
    let pipeline = Pipeline::new(
        Config::default().store(StoreConfig::File(config(&dir))),
        sink,
    )
    .unwrap();
    let recovery = pipeline.recovery().unwrap();
    assert_eq!(recovery.lost_events, 1, "{recovery:?}");
    assert_eq!(recovery.corrupt_segments.len(), 1, "{recovery:?}");
    let report = pipeline.close(Duration::from_secs(10));
    let stats = report.stats;
    assert!(report.completed && stats.is_consistent(), "{stats:?}");
    assert_eq!(stats.recovered, 300, "{stats:?}");
    assert_eq!(stats.dropped.damaged, 1, "{stats:?}");
    assert_eq!(stats.delivered, 299, "{stats:?}");
    assert_eq!(delivered.load(Ordering::SeqCst), 299);
    assert_eq!(stats.stored, 0, "{stats:?}");
}

#[test]
fn damage_before_the_cursor_lost_nothing() {
    let scope = Scope::new("damage-consumed");
    let dir = scope.0.join("wal");
    store_with(&dir, 300);
    {
        let mut store = FileStore::open(config(&dir)).unwrap();
        let got = read(&mut store, 250, usize::MAX);
        store.commit(got.len()).unwrap();
    }
    // Damage in what was already sent, in the cursor's own segment (the cursor file:
    // magic, segment u64le, offset u64le, crc).
    let cursor = fs::read(dir.join("cursor")).unwrap();
    let segment = u64::from_le_bytes(cursor[8..16].try_into().unwrap());
    let offset = u64::from_le_bytes(cursor[16..24].try_into().unwrap());
    assert!(
        offset > 100,
        "the cursor is at the start of its segment: {offset}"
    );
    let path = dir.join(format!("{segment:016x}.seg"));
    let mut bytes = fs::read(&path).unwrap();
    bytes[8 + 16 + 2] ^= 0x20;
    fs::write(&path, &bytes).unwrap();
    let mut store = FileStore::open(config(&dir)).unwrap();
    assert_eq!(store.recovery().lost_events, 0, "{:?}", store.recovery());
    let got = all(&mut store);
    assert!(got.ends_with(&(250..300).map(event).collect::<Vec<_>>()));
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

/// Every file of `dir` with its content and modification time.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
    let mut all: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let meta = fs::metadata(&p).unwrap();
            (p.clone(), fs::read(&p).unwrap(), meta.modified().unwrap())
        })
        .collect();
    all.sort();
    all
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// `FileStore::verify` changes nothing, and predicts exactly what opening the store
    /// then does: what it keeps, cuts, moves aside and loses, and whether the cursor is
    /// reset.
    #[test]
    fn verify_predicts_what_open_does(
        n in 1usize..150,
        sent in 0usize..150,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in prop::option::of(any::<prop::sample::Index>()),
        cursor_garbage in any::<bool>(),
    ) {
        let scope = Scope::new("verify");
        let dir = scope.0.join("wal");
        {
            let mut store = FileStore::open(config(&dir)).unwrap();
            for i in 0..n {
                append_range(&mut store, i..i + 1);
            }
            let got = read(&mut store, sent, usize::MAX);
            store.commit(got.len()).unwrap();
            store.dead_letter(&event(1000), "HTTP 400: no").unwrap();
        }
        let segs = segments(&dir);
        for (seg, at, b) in edits {
            let path = &segs[seg.index(segs.len())];
            let mut bytes = fs::read(path).unwrap();
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = b;
                fs::write(path, &bytes).unwrap();
            }
        }
        if let Some(cut) = cut {
            let last = segs.last().unwrap();
            let bytes = fs::read(last).unwrap();
            fs::write(last, &bytes[..cut.index(bytes.len() + 1)]).unwrap();
        }
        if cursor_garbage {
            fs::write(dir.join("cursor"), b"not a cursor").unwrap();
        }
        let before = fingerprint(&dir);
        let check = FileStore::verify(&dir).unwrap();
        prop_assert!(before == fingerprint(&dir), "verify changed the store");

        let store = FileStore::open(config(&dir)).unwrap();
        let recovery = store.recovery().clone();
        prop_assert_eq!(check.lost_events, recovery.lost_events);
        prop_assert_eq!(check.cut_bytes, recovery.truncated_bytes);
        prop_assert_eq!(check.damaged_bytes, recovery.damaged_bytes);
        prop_assert_eq!(check.cursor_reset, recovery.cursor_reset);
        let aside: Vec<String> = recovery
            .corrupt_segments
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        prop_assert_eq!(&check.quarantined, &aside);
        prop_assert_eq!(check.events, store.size().events);
        prop_assert_eq!(check.bytes, store.size().bytes);
        prop_assert_eq!(check.is_healthy(), recovery == auditbuf::Recovery::default(), "{:?}", check.problems);
        prop_assert_eq!(check.dead_letters, 1);
    }
}

#[test]
fn verify_refuses_a_store_in_use_and_names_the_process() {
    let scope = Scope::new("verify-locked");
    let dir = scope.0.join("wal");
    let _store = FileStore::open(config(&dir)).unwrap();
    let pid = std::process::id();
    assert_eq!(
        fs::read_to_string(dir.join("LOCK")).unwrap(),
        format!("{pid}\n")
    );
    let err = FileStore::verify(&dir).unwrap_err().to_string();
    assert!(
        err.ends_with(&format!(
            "LOCK: the store is in use by another process (pid {pid})"
        )),
        "{err}"
    );
    let err = FileStore::open(config(&dir)).unwrap_err().to_string();
    assert!(err.ends_with(&format!("(pid {pid})")), "{err}");
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
