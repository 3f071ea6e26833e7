//! The file store (segmented write-ahead log): the contract every store meets, and what
//! only a log on disk must survive: torn writes, flipped bytes, a second process.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use auditbuf::{FileStore, FileStoreConfig, Fsync};
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
