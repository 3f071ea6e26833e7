//! A sink that calls back into its own pipeline, on the flush thread: records (under
//! `Block`, `wal` and `Spill`), flushes, closes, drops the last handle. None of it may wait
//! for the flush thread, which is the caller: each returns at once, nothing hangs, and the
//! accounting invariant holds exactly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use auditbuf::{
    CallbackSink, Config, Durability, Error, FileStore, FileStoreConfig, Fsync, MemoryStore,
    MemoryStoreConfig, Outcome, Overflow, Pipeline,
};

/// How long a test may take before it counts as hung (never a pause).
const LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` on a thread of its own; fails the test if it has not returned within [`LIMIT`].
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(v) => v,
        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
            panic!("{what}: hung (no answer within {LIMIT:?})")
        }
        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => panic!("{what}: failed"),
    }
}

/// The pipeline a sink calls back into, set once it is built.
type Handle = Arc<OnceLock<Arc<Pipeline>>>;

/// What the sink's own calls got.
#[derive(Default)]
struct Inner {
    ok: AtomicUsize,
    full: AtomicUsize,
    closed: AtomicUsize,
    other: Mutex<Vec<String>>,
    delivered: AtomicUsize,
}

impl Inner {
    fn note(&self, result: Result<(), Error>) {
        match result {
            Ok(()) => self.ok.fetch_add(1, Ordering::SeqCst),
            Err(Error::Full) => self.full.fetch_add(1, Ordering::SeqCst),
            // The children of the events the close sends.
            Err(Error::Closed) => self.closed.fetch_add(1, Ordering::SeqCst),
            Err(e) => {
                self.other.lock().unwrap().push(e.to_string());
                0
            }
        };
    }
}

/// A sink that, for each event marked `"depth":0`, records `children` events into its own
/// pipeline, and counts what it delivers.
fn recording_sink(handle: &Handle, inner: &Arc<Inner>, children: usize) -> impl auditbuf::Sink {
    let handle = Arc::clone(handle);
    let inner = Arc::clone(inner);
    CallbackSink::new(move |batch: &[&[u8]]| {
        if let Some(p) = handle.get() {
            for event in batch {
                if event.windows(9).any(|w| w == br#""depth":0"#) {
                    for child in 0..children {
                        inner.note(
                            p.record_json(format!(r#"{{"depth":1,"child":{child}}}"#).as_bytes()),
                        );
                    }
                }
            }
        }
        inner.delivered.fetch_add(batch.len(), Ordering::SeqCst);
        Outcome::Delivered
    })
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("auditbuf-reentrant-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Records 20 `depth 0` events through `build`'s pipeline, whose sink records 3 more for
/// each, closes it, and checks the sink's calls against the pipeline's counts.
fn records_from_its_sink(what: &'static str, build: fn(Handle, Arc<Inner>) -> Pipeline) {
    let (report, inner) = within(what, move || {
        let handle: Handle = Arc::default();
        let inner = Arc::new(Inner::default());
        let p = Arc::new(build(Arc::clone(&handle), Arc::clone(&inner)));
        assert!(handle.set(Arc::clone(&p)).is_ok());
        for i in 0..20 {
            p.record_json(format!(r#"{{"depth":0,"i":{i}}}"#).as_bytes())
                .unwrap();
        }
        // The sink records children of what the flush sends; the close, of the rest.
        assert!(p.flush(Duration::from_secs(10)).completed);
        let report = p.close(Duration::from_secs(10));
        (report, inner)
    });
    let s = &report.stats;
    assert!(report.completed, "{what}: {report:?}");
    assert!(s.is_consistent(), "{what}: {s:?}");
    assert!(
        inner.other.lock().unwrap().is_empty(),
        "{what}: {:?}",
        inner.other
    );
    let [ok, full, closed] =
        [&inner.ok, &inner.full, &inner.closed].map(|n| n.load(Ordering::SeqCst) as u64);
    assert_eq!(ok + full + closed, 60, "{what}: {ok} + {full} + {closed}");
    assert!(ok > 0, "{what}: the sink recorded nothing");
    assert_eq!(s.recorded, 20 + ok, "{what}: {s:?}");
    assert_eq!(s.rejected.queue_full, full, "{what}: {s:?}");
    assert_eq!(s.rejected.closed, closed, "{what}: {s:?}");
    assert_eq!(s.rejected.total(), full + closed, "{what}: {s:?}");
    assert_eq!(s.delivered, s.recorded, "{what}: {s:?}");
    assert_eq!(inner.delivered.load(Ordering::SeqCst) as u64, s.delivered);
}

/// A queue of 4, batches of 2, sent every 5 ms: the sink's records soon find it full.
fn small() -> Config {
    Config::default()
        .queue_capacity(4)
        .batch_max_events(2)
        .flush_interval(Duration::from_millis(5))
}

#[test]
fn a_sink_recording_under_block_is_turned_away_not_left_waiting_for_itself() {
    records_from_its_sink("block", |handle, inner| {
        let config = small().overflow(Overflow::Block {
            timeout: Duration::from_secs(10),
        });
        Pipeline::new(config, recording_sink(&handle, &inner, 3)).unwrap()
    });
}

#[test]
fn a_sink_recording_into_its_wal_pipeline_does_not_hang() {
    records_from_its_sink("wal", |handle, inner| {
        let dir = temp_dir("wal");
        let store = FileStore::open(FileStoreConfig::new(&dir).fsync(Fsync::Always)).unwrap();
        let config = small().durability(Durability::Wal);
        Pipeline::with_store(config, recording_sink(&handle, &inner, 3), store).unwrap()
    });
    // Emptied before use, removed after.
    let _ = std::fs::remove_dir_all(temp_dir("wal"));
}

#[test]
fn a_sink_recording_into_its_spill_pipeline_does_not_hang() {
    records_from_its_sink("spill", |handle, inner| {
        let config = small().overflow(Overflow::Spill);
        Pipeline::with_store(
            config,
            recording_sink(&handle, &inner, 3),
            MemoryStore::new(MemoryStoreConfig::default()),
        )
        .unwrap()
    });
}

/// A call the sink made: which, how long it took, whether it reported completed.
type Call = (&'static str, Duration, bool);

#[test]
fn a_sink_flushing_and_closing_its_own_pipeline_returns_at_once() {
    let (report, inner_calls) = within("flush and close from the sink", || {
        let handle: Handle = Arc::default();
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let sink = CallbackSink::new({
            let handle = Arc::clone(&handle);
            let calls = Arc::clone(&calls);
            move |_: &[&[u8]]| {
                let mut calls = calls.lock().unwrap();
                if let (Some(p), true) = (handle.get(), calls.is_empty()) {
                    let started = Instant::now();
                    let flushed = p.flush(Duration::from_secs(20)).completed;
                    calls.push(("flush", started.elapsed(), flushed));
                    let started = Instant::now();
                    let closed = p.close(Duration::from_secs(20)).completed;
                    calls.push(("close", started.elapsed(), closed));
                    drop(calls);
                    // Closed from here on, for callers and for the sink alike.
                    assert!(matches!(p.record_json(b"{}"), Err(Error::Closed)));
                }
                Outcome::Delivered
            }
        });
        let config = Config::default()
            .batch_max_events(5)
            .flush_interval(Duration::from_millis(5));
        let p = Arc::new(Pipeline::new(config, sink).unwrap());
        // The sink's first call waits for this lock: it finds the handle set and all 10
        // events recorded, however late this thread gets there.
        let held = calls.lock().unwrap();
        for i in 0..10 {
            p.record_json(format!(r#"{{"i":{i}}}"#).as_bytes()).unwrap();
        }
        assert!(handle.set(Arc::clone(&p)).is_ok());
        drop(held);
        // The close the sink began ends with the flush thread, which sends what is left.
        let report = p.close(Duration::from_secs(10));
        let calls = calls.lock().unwrap().clone();
        (report, calls)
    });
    assert_eq!(inner_calls.len(), 2, "{inner_calls:?}");
    for (call, took, completed) in inner_calls {
        assert!(!completed, "{call} from the sink reported completed");
        assert!(
            took < Duration::from_secs(1),
            "{call} from the sink took {took:?}"
        );
    }
    let s = &report.stats;
    assert!(report.completed, "{report:?}");
    assert!(s.is_consistent(), "{s:?}");
    assert_eq!((s.recorded, s.delivered), (10, 10), "{s:?}");
    assert_eq!(s.rejected.closed, 1, "{s:?}");
}

#[test]
fn a_sink_dropping_the_last_handle_of_its_pipeline_does_not_hang() {
    let delivered = within("drop from the sink", || {
        let handle: Arc<Mutex<Option<Pipeline>>> = Arc::default();
        let delivered = Arc::new(AtomicUsize::new(0));
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
        let sink = CallbackSink::new({
            let handle = Arc::clone(&handle);
            let delivered = Arc::clone(&delivered);
            move |batch: &[&[u8]]| {
                delivered.fetch_add(batch.len(), Ordering::SeqCst);
                // The pipeline's `Drop`, here, on its own flush thread.
                drop(handle.lock().unwrap().take());
                if delivered.load(Ordering::SeqCst) == 10 {
                    let _ = done_tx.try_send(());
                }
                Outcome::Delivered
            }
        });
        let config = Config::default()
            .batch_max_events(5)
            .flush_interval(Duration::from_millis(5))
            .drop_timeout(Duration::from_secs(10));
        // The sink cannot drop the pipeline before all 10 are recorded: the lock is held.
        let mut held = handle.lock().unwrap();
        let p = held.insert(Pipeline::new(config, sink).unwrap());
        for i in 0..10 {
            p.record_json(format!(r#"{{"i":{i}}}"#).as_bytes()).unwrap();
        }
        drop(held);
        // The first batch drops the pipeline; the flush thread still sends the second
        // before it exits (the close that `Drop` began has a deadline of `drop_timeout`).
        let _ = done_rx.recv_timeout(Duration::from_secs(10));
        delivered.load(Ordering::SeqCst)
    });
    assert_eq!(delivered, 10);
}
