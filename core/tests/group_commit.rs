//! Durability `wal`'s group commit: a group's sync runs after the store's lock is released,
//! so the flush thread reads, sends and commits meanwhile; a sync that fails makes the
//! callers' `record` return `NotDurable` while their events are still sent; a store that
//! cannot sync apart from itself syncs under the lock, as before.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use auditbuf::{
    Appended, CallbackSink, Config, Durability, Error, FileStore, FileStoreConfig, Fsync, Outcome,
    Pipeline, Store, StoreError, StoreSize, StoredBatch,
};
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};

/// How long a step the test waits for may take before the test fails (never a pause).
const LIMIT: Duration = Duration::from_secs(20);

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "auditbuf-group-commit-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn failure(message: &str) -> Error {
    Error::Store(Box::new(StoreError {
        store: "test".into(),
        message: message.into(),
    }))
}

type Step = Arc<dyn Fn() -> Result<(), Error> + Send + Sync>;

/// A file store whose syncs, handed out by `append_durably`, end with `step` (which may wait
/// for the test, or fail); it reports each commit on `commits`.
struct Wrapped {
    inner: FileStore,
    step: Step,
    commits: Sender<usize>,
}

impl Store for Wrapped {
    fn append(&mut self, events: &[&[u8]]) -> Result<(), Error> {
        self.inner.append(events)
    }
    fn append_durably(&mut self, events: &[&[u8]]) -> Result<Appended, Error> {
        let step = Arc::clone(&self.step);
        Ok(match self.inner.append_durably(events)? {
            Appended::Pending(sync) => Appended::Pending(sync.then(move || step())),
            other => panic!("the file store syncs apart, got {other:?}"),
        })
    }
    fn read_oldest(&mut self, n: usize, b: usize, out: &mut StoredBatch) -> Result<(), Error> {
        self.inner.read_oldest(n, b, out)
    }
    fn commit(&mut self, n: usize) -> Result<(), Error> {
        self.inner.commit(n)?;
        let _ = self.commits.send(n);
        Ok(())
    }
    fn dead_letter(&mut self, event: &[u8], reason: &str) -> Result<(), Error> {
        self.inner.dead_letter(event, reason)
    }
    fn size(&self) -> StoreSize {
        self.inner.size()
    }
    fn oldest_age(&self) -> Option<Duration> {
        self.inner.oldest_age()
    }
    fn sync(&mut self) -> Result<(), Error> {
        self.inner.sync()
    }
    fn is_durable(&self) -> bool {
        true
    }
    fn close(&mut self) -> Result<(), Error> {
        self.inner.close()
    }
}

/// A `wal` pipeline over `store` whose sink reports each batch's size on the returned channel.
fn pipeline<S: Store>(store: S) -> (Arc<Pipeline>, Receiver<usize>) {
    let (delivered_tx, delivered) = unbounded();
    let sink = CallbackSink::new(move |batch: &[&[u8]]| {
        let _ = delivered_tx.send(batch.len());
        Outcome::Delivered
    });
    // A batch of one: the event wakes the flush thread at once.
    let config = Config::default()
        .durability(Durability::Wal)
        .batch_max_events(1)
        .flush_interval(Duration::from_millis(10));
    let p = Pipeline::with_store(config, sink, store).unwrap();
    (Arc::new(p), delivered)
}

#[test]
fn the_flush_thread_reads_and_commits_while_a_group_syncs() {
    let dir = temp_dir("held");
    let (entered_tx, entered) = bounded::<()>(1);
    let (release, release_rx) = bounded::<()>(1);
    let (commits_tx, commits) = unbounded();
    let step: Step = Arc::new(move || {
        let _ = entered_tx.send(());
        // Until the test says so, or has failed (and dropped `release`).
        release_rx
            .recv()
            .map_err(|_| failure("the test never released the sync"))
    });
    let store = Wrapped {
        inner: FileStore::open(FileStoreConfig::new(&dir).fsync(Fsync::Always)).unwrap(),
        step,
        commits: commits_tx,
    };
    let (p, delivered) = pipeline(store);
    let producer = std::thread::spawn({
        let p = Arc::clone(&p);
        move || p.record_json(br#"{"n":1}"#)
    });
    entered
        .recv_timeout(LIMIT)
        .expect("the group's sync never started");

    // The sync is held and `record` has not returned. The flush thread takes the store's
    // lock to read the event, and again to commit it once the sink took it: with the lock
    // held across the sync, it would wait here until the sync ends.
    assert_eq!(
        delivered.recv_timeout(LIMIT),
        Ok(1),
        "the flush thread could not read the store while a group synced"
    );
    assert_eq!(
        commits.recv_timeout(LIMIT),
        Ok(1),
        "the flush thread could not commit while a group synced"
    );
    assert!(
        !producer.is_finished(),
        "record returned before its sync ended"
    );

    release.send(()).unwrap();
    producer.join().unwrap().unwrap();
    let report = p.close(LIMIT);
    assert_eq!(report.stats.recorded, 1, "{:?}", report.stats);
    assert_eq!(report.stats.delivered, 1, "{:?}", report.stats);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_group_sync_is_not_durable_and_the_event_is_still_sent() {
    let dir = temp_dir("failing");
    let (commits, _) = unbounded();
    let store = Wrapped {
        inner: FileStore::open(FileStoreConfig::new(&dir).fsync(Fsync::Always)).unwrap(),
        step: Arc::new(|| Err(failure("fdatasync: Input/output error"))),
        commits,
    };
    let (p, delivered) = pipeline(store);
    match p.record_json(br#"{"n":1}"#) {
        Err(Error::NotDurable(e)) => assert!(e.message.contains("Input/output"), "{e:?}"),
        other => panic!("expected NotDurable, got {other:?}"),
    }
    assert_eq!(delivered.recv_timeout(LIMIT), Ok(1));
    let report = p.close(LIMIT);
    assert_eq!(report.stats.recorded, 1, "{:?}", report.stats);
    assert_eq!(report.stats.delivered, 1, "{:?}", report.stats);
    assert_eq!(report.stats.rejected.total(), 0, "{:?}", report.stats);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A store with no sync of its own to hand out: `append_durably` is the trait's default,
/// append then `sync` under the lock, and the sync fails.
struct SyncFails(FileStore);

impl Store for SyncFails {
    fn append(&mut self, events: &[&[u8]]) -> Result<(), Error> {
        self.0.append(events)
    }
    fn read_oldest(&mut self, n: usize, b: usize, out: &mut StoredBatch) -> Result<(), Error> {
        self.0.read_oldest(n, b, out)
    }
    fn commit(&mut self, n: usize) -> Result<(), Error> {
        self.0.commit(n)
    }
    fn dead_letter(&mut self, event: &[u8], reason: &str) -> Result<(), Error> {
        self.0.dead_letter(event, reason)
    }
    fn size(&self) -> StoreSize {
        self.0.size()
    }
    fn oldest_age(&self) -> Option<Duration> {
        self.0.oldest_age()
    }
    fn sync(&mut self) -> Result<(), Error> {
        Err(failure("the disk is gone"))
    }
    fn is_durable(&self) -> bool {
        true
    }
}

#[test]
fn a_store_that_cannot_sync_apart_syncs_under_the_lock() {
    let dir = temp_dir("default");
    let store = SyncFails(FileStore::open(FileStoreConfig::new(&dir).fsync(Fsync::Never)).unwrap());
    let (p, delivered) = pipeline(store);
    match p.record_json(br#"{"n":1}"#) {
        Err(Error::NotDurable(e)) => assert!(e.message.contains("the disk is gone"), "{e:?}"),
        other => panic!("expected NotDurable, got {other:?}"),
    }
    assert_eq!(delivered.recv_timeout(LIMIT), Ok(1));
    let report = p.close(LIMIT);
    assert_eq!(report.stats.delivered, 1, "{:?}", report.stats);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    let _ = std::fs::remove_dir_all(&dir);
}
