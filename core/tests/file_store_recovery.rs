//! The file store's recovery of damage found on open: a torn last record cut at every
//! offset, flipped bytes quarantined with the rest salvaged, whatever the records'
//! timestamps, damaged bytes that never panic, losses counted by the pipeline; and
//! `FileStore::verify`, which changes nothing and predicts what opening does.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use auditbuf::{CallbackSink, Config, FileStore, Outcome, Pipeline, StoreConfig};
use common::file_store::{config, segments};
use proptest::prelude::*;

store_contract!(helpers);

fn all(store: &mut FileStore) -> Vec<Vec<u8>> {
    read(store, usize::MAX, usize::MAX)
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
fn a_segment_overwritten_whole_is_counted_lost_not_dropped_silently() {
    let scope = Scope::new("overwritten");
    let dir = scope.0.join("wal");
    let victim = store_with(&dir, 50);
    let len = fs::metadata(&victim).unwrap().len() as usize;
    // Noise from a fixed seed: no magic, no record boundary anywhere.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(&victim, &noise).unwrap();

    let (sink, _) = common::sinks::collecting();
    let pipeline = Pipeline::new(
        Config::default().store(StoreConfig::File(config(&dir))),
        sink,
    )
    .unwrap();
    let recovery = pipeline.recovery().unwrap();
    assert!(recovery.lost_events >= 1, "{recovery:?}");
    assert_eq!(recovery.corrupt_segments.len(), 1, "{recovery:?}");
    let error = pipeline.last_error().unwrap_or_default();
    assert!(error.contains("lost to damage"), "{error}");
    let report = pipeline.close(Duration::from_secs(10));
    let stats = report.stats;
    assert!(report.completed && stats.is_consistent(), "{stats:?}");
    assert_eq!(stats.dropped.damaged, recovery.lost_events, "{stats:?}");
    assert_eq!(
        stats.recovered,
        stats.delivered + stats.dropped.damaged,
        "{stats:?}"
    );
}

#[test]
fn names_the_store_did_not_give_are_not_its_segments() {
    let scope = Scope::new("stray-names");
    let dir = scope.0.join("wal");
    store_with(&dir, 300);
    let first = segments(&dir)[0].clone();
    // A copy under a shorter name, and one in upper case: both parse as hex numbers.
    fs::copy(&first, dir.join("5.seg")).unwrap();
    fs::copy(&first, dir.join("000000000000000A.seg")).unwrap();
    let mut store = FileStore::open(config(&dir)).unwrap();
    assert_eq!(all(&mut store).len(), 300);
    drop(store);
    assert!(dir.join("5.seg").exists() && dir.join("000000000000000A.seg").exists());
}

#[test]
fn the_last_segment_number_is_an_error_not_a_panic() {
    let scope = Scope::new("max-id");
    let dir = scope.0.join("wal");
    store_with(&dir, 3);
    fs::write(dir.join("ffffffffffffffff.seg"), b"ABWAL01\n").unwrap();
    let check = FileStore::verify(&dir).unwrap();
    assert!(
        !check.is_healthy() && check.open_error.is_some(),
        "verify must say what open will: {check:?}"
    );
    let err = FileStore::open(config(&dir)).unwrap_err().to_string();
    assert!(
        err.contains("no segment number after ffffffffffffffff"),
        "{err}"
    );
}

#[test]
fn an_emptied_middle_segment_counts_its_events_lost() {
    let scope = Scope::new("emptied");
    let dir = scope.0.join("wal");
    store_with(&dir, 300);
    let middle = segments(&dir)[1].clone();
    fs::write(&middle, b"").unwrap();
    let store = FileStore::open(config(&dir)).unwrap();
    let recovery = store.recovery().clone();
    assert!(recovery.lost_events >= 1, "{recovery:?}");
    assert_eq!(recovery.corrupt_segments.len(), 1, "{recovery:?}");
}

#[test]
fn a_middle_segment_cut_short_mid_record_counts_its_events_lost() {
    let scope = Scope::new("cut-middle");
    let dir = scope.0.join("wal");
    store_with(&dir, 300);
    let middle = segments(&dir)[1].clone();
    let len = fs::metadata(&middle).unwrap().len();
    // Inside a record, not at its end: the segment ends torn, though another follows it.
    let file = fs::OpenOptions::new().write(true).open(&middle).unwrap();
    file.set_len(len / 2 + 3).unwrap();
    drop(file);
    let check = FileStore::verify(&dir).unwrap();
    let mut store = FileStore::open(config(&dir)).unwrap();
    let recovery = store.recovery().clone();
    assert!(recovery.lost_events >= 1, "{recovery:?}");
    assert_eq!(check.lost_events, recovery.lost_events, "{check:?}");
    assert_eq!(recovery.corrupt_segments.len(), 1, "{recovery:?}");
    assert!(all(&mut store).len() < 300);
}

#[test]
fn a_cursor_that_cannot_be_read_is_an_error_not_a_restart() {
    let scope = Scope::new("cursor-unreadable");
    let dir = scope.0.join("wal");
    store_with(&dir, 10);
    let cursor = dir.join("cursor");
    let _ = fs::remove_file(&cursor);
    // A directory in its place: reading it fails, as a file without read permission does
    // (which root, running these tests, would read anyway).
    fs::create_dir(&cursor).unwrap();
    let err = FileStore::open(config(&dir)).unwrap_err().to_string();
    assert!(err.contains("cursor"), "{err}");
    let err = FileStore::verify(&dir).unwrap_err().to_string();
    assert!(err.contains("cursor"), "{err}");
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
    let held = format!(
        "LOCK: the store is already open in this process (pid {pid}), by a pipeline or store \
         not yet closed"
    );
    let err = FileStore::verify(&dir).unwrap_err().to_string();
    assert!(err.ends_with(&held), "{err}");
    let err = FileStore::open(config(&dir)).unwrap_err().to_string();
    assert!(err.ends_with(&held), "{err}");
}

#[path = "common/log_lines.rs"]
mod log_lines;
use log_lines::LINES;

#[test]
fn a_segment_deleted_by_hand_is_reported_not_lost_silently() {
    log_lines::install(log::LevelFilter::Warn);
    let scope = Scope::new("missing");
    let dir = scope.0.join("wal");
    store_with(&dir, 300);
    let segs = segments(&dir);
    assert!(segs.len() >= 4, "{segs:?}");
    let before = {
        let mut store = FileStore::open(config(&dir)).unwrap();
        all(&mut store).len()
    };
    let victim = segs[1].clone();
    let name = victim.file_name().unwrap().to_str().unwrap().to_owned();
    let in_victim = {
        let data = fs::read(&victim).unwrap();
        (0..300).filter(|i| contains(&data, &event(*i))).count()
    };
    fs::remove_file(&victim).unwrap();

    let check = FileStore::verify(&dir).unwrap();
    assert!(!check.is_healthy(), "{check:?}");
    assert_eq!(check.missing, vec![name.clone()]);
    assert!(
        check.problems.iter().any(|p| p.starts_with(&format!(
            "{name}: missing (deleted by hand?); the events in it not sent yet are lost, and how \
             many cannot be known"
        ))),
        "{:?}",
        check.problems
    );
    // No number is made up for what the segment held.
    assert_eq!(check.lost_events, 0);

    let mut store = FileStore::open(config(&dir)).unwrap();
    let recovery = store.recovery().clone();
    assert_eq!(recovery.missing_segments, 1, "{recovery:?}");
    assert_eq!(recovery.lost_events, 0, "{recovery:?}");
    assert_eq!(all(&mut store).len(), before - in_victim);
    let dir_name = dir.display().to_string();
    let warned: Vec<String> = LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(&dir_name) && l.contains(&name))
        .cloned()
        .collect();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        warned[0].starts_with(&format!(
            "WARN {dir_name}: {name} missing (deleted by hand?)"
        )) && warned[0].contains("how many cannot be known"),
        "{warned:?}"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
