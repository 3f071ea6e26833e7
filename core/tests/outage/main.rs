//! A pipeline with a backing store through outages: the sink answers 503 or refuses
//! connections for a while, the queue overflows, the process restarts. Afterwards every
//! event is delivered, in order, none dropped, none twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use auditbuf::{
    CallbackSink, Config, FileStore, FileStoreConfig, Fsync, HttpConfig, HttpSink, MemoryStore,
    MemoryStoreConfig, Outcome, Overflow, Pipeline, RetryPolicy, Stats, StoreConfig,
};
use auditbuf_testkit::{Receiver, Reply, refused_url};

mod queue;
mod spill;

fn quick_retry() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(3)
        .backoff(Duration::from_millis(5), Duration::from_millis(40))
}

fn config() -> Config {
    Config::default()
        .batch_max_events(50)
        .flush_interval(Duration::from_millis(20))
        .retry(quick_retry())
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("auditbuf-outage-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn file_store(dir: &std::path::Path) -> StoreConfig {
    StoreConfig::File(FileStoreConfig::new(dir).fsync(Fsync::Never))
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("e-{i:06}")).collect()
}

fn record(p: &Pipeline, id: &str) {
    p.record_json(format!(r#"{{"event_type":"t","correlation_id":"{id}"}}"#).as_bytes())
        .unwrap();
}

/// A sink that keeps the ids of what it is given, pausing `delay` per batch.
fn collecting(delay: Duration) -> (impl auditbuf::Sink, Arc<parking_lot_free::Seen>) {
    let seen = Arc::new(parking_lot_free::Seen::default());
    let sink = CallbackSink::new({
        let seen = Arc::clone(&seen);
        move |batch: &[&[u8]]| {
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            seen.extend(batch);
            Outcome::Delivered
        }
    });
    (sink, seen)
}

/// Records the ids of `range` and returns those the pipeline accepted, in order.
fn record_accepted(p: &Pipeline, range: std::ops::Range<usize>) -> Vec<String> {
    ids(range)
        .into_iter()
        .filter(|id| {
            p.record_json(format!(r#"{{"event_type":"t","correlation_id":"{id}"}}"#).as_bytes())
                .is_ok()
        })
        .collect()
}

fn assert_all_settled(stats: &Stats) {
    assert!(stats.is_consistent(), "{stats:?}");
    assert_eq!(
        stats.queued + stats.in_flight + stats.stored,
        0,
        "{stats:?}"
    );
    assert_eq!(stats.dropped.total() + stats.failed, 0, "{stats:?}");
}

#[test]
fn a_503_window_loses_nothing_and_keeps_the_order() {
    let down = Arc::new(AtomicBool::new(false));
    let receiver = Receiver::start({
        let down = Arc::clone(&down);
        move |_| {
            if down.load(Ordering::SeqCst) {
                Reply::status(503)
            } else {
                Reply::created()
            }
        }
    });
    let dir = temp_dir("503");
    let sink = HttpSink::new(receiver.url(), HttpConfig::default()).unwrap();
    let p = Pipeline::new(config().store(file_store(&dir)), sink).unwrap();
    let all = ids(0..6000);
    let started = Instant::now();
    for (i, id) in all.iter().enumerate() {
        if i == 1000 {
            down.store(true, Ordering::SeqCst);
        }
        if i == 5000 {
            // The outage must have sent batches to the store by now.
            assert!(p.stats().stored > 0, "{:?}", p.stats());
            down.store(false, Ordering::SeqCst);
        }
        record(&p, id);
        if (1000..5000).contains(&i) && i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let report = p.close(Duration::from_secs(60));
    assert!(
        report.completed,
        "{:?} after {:?}",
        report.stats,
        started.elapsed()
    );
    assert_eq!(
        receiver.delivered_field("correlation_id"),
        all,
        "not every event once, in order"
    );
    assert_eq!(report.stats.delivered, 6000);
    assert!(report.stats.retries > 0);
    assert_all_settled(&report.stats);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refused_connections_then_a_receiver_loses_nothing_and_keeps_the_order() {
    let url = refused_url();
    let addr = url.trim_start_matches("http://").to_owned();
    let dir = temp_dir("refused");
    let sink = HttpSink::new(&url, HttpConfig::default()).unwrap();
    let p = Pipeline::new(config().store(file_store(&dir)), sink).unwrap();
    let all = ids(0..3000);
    for id in &all[..2000] {
        record(&p, id);
    }
    // Nobody listens yet: batches run out of retries and go to the store.
    let deadline = Instant::now() + Duration::from_secs(20);
    while p.stats().stored < 1000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(p.stats().stored >= 1000, "{:?}", p.stats());
    let receiver = Receiver::start_on(&addr, |_| Reply::created());
    for id in &all[2000..] {
        record(&p, id);
    }
    let report = p.close(Duration::from_secs(60));
    assert!(report.completed);
    assert_eq!(receiver.delivered_field("correlation_id"), all);
    assert_all_settled(&report.stats);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Like `assert_eq!` on the id lists, but shows where they part.
fn assert_in_order(got: &[String], want: &[String]) {
    if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
        let around = |v: &[String]| v[i.saturating_sub(3)..(i + 4).min(v.len())].to_vec();
        panic!(
            "delivered {} of {}; first difference at {i}: got {:?}, want {:?}",
            got.len(),
            want.len(),
            around(got),
            around(want)
        );
    }
}

#[test]
fn a_restart_drains_what_the_last_run_kept() {
    let dir = temp_dir("restart");
    let all = ids(0..500);
    {
        let retry = RetryPolicy::default().max_attempts(1);
        let sink = HttpSink::new(refused_url(), HttpConfig::default()).unwrap();
        let p = Pipeline::new(config().retry(retry).store(file_store(&dir)), sink).unwrap();
        for id in &all {
            record(&p, id);
        }
        let report = p.close(Duration::from_millis(500));
        assert_eq!(report.stats.stored, 500, "{:?}", report.stats);
        assert_eq!(report.stats.dropped.total(), 0);
        assert!(report.stats.is_consistent());
    }
    let receiver = Receiver::start(|_| Reply::created());
    let sink = HttpSink::new(receiver.url(), HttpConfig::default()).unwrap();
    let p = Pipeline::new(config().store(file_store(&dir)), sink).unwrap();
    let after = ids(500..600);
    for id in &after {
        record(&p, id);
    }
    let report = p.close(Duration::from_secs(30));
    assert_eq!(report.stats.recovered, 500);
    assert_eq!(report.stats.delivered, 600);
    assert_eq!(
        receiver.delivered_field("correlation_id"),
        [all, after].concat()
    );
    assert_all_settled(&report.stats);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dead_letters_are_kept_in_the_store_with_their_reason() {
    let dir = temp_dir("dead");
    let receiver = Receiver::start(|b| {
        if b.contains("correlation_id", "e-000007") {
            Reply::problem(400, "bad event")
        } else {
            Reply::created()
        }
    });
    let sink = HttpSink::new(receiver.url(), HttpConfig::default()).unwrap();
    let p = Pipeline::new(config().store(file_store(&dir)), sink).unwrap();
    for id in ids(0..20) {
        record(&p, &id);
    }
    let report = p.close(Duration::from_secs(30));
    assert_eq!(report.stats.dead_lettered, 1);
    assert_eq!(report.stats.delivered, 19);
    assert_all_settled(&report.stats);
    drop(p);
    let store = FileStore::open(FileStoreConfig::new(&dir)).unwrap();
    let letters = store.dead_letters().unwrap();
    assert_eq!(letters.len(), 1);
    assert!(String::from_utf8_lossy(&letters[0].event).contains("e-000007"));
    assert!(
        letters[0].reason.contains("bad event"),
        "{}",
        letters[0].reason
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_memory_store_counts_what_it_holds_at_close_as_dropped() {
    let retry = RetryPolicy::default().max_attempts(1);
    let sink = HttpSink::new(refused_url(), HttpConfig::default()).unwrap();
    let store = MemoryStore::new(MemoryStoreConfig::default());
    let p = Pipeline::with_store(config().retry(retry), sink, store).unwrap();
    for id in ids(0..100) {
        record(&p, &id);
    }
    let report = p.close(Duration::from_millis(300));
    assert_eq!(report.stats.dropped.shutdown, 100, "{:?}", report.stats);
    assert_eq!(report.stats.stored, 0);
    assert!(report.stats.is_consistent());
}

#[test]
fn a_full_store_drops_and_counts_what_it_cannot_keep() {
    let retry = RetryPolicy::default().max_attempts(1);
    let sink = HttpSink::new(refused_url(), HttpConfig::default()).unwrap();
    let store = MemoryStore::new(MemoryStoreConfig::default().max_events(60));
    let p = Pipeline::with_store(config().retry(retry), sink, store).unwrap();
    for id in ids(0..200) {
        record(&p, &id);
    }
    let report = p.close(Duration::from_millis(500));
    let s = report.stats;
    assert!(s.dropped.store_full > 0, "{s:?}");
    assert!(s.is_consistent(), "{s:?}");
    assert_eq!(s.dropped.store_full + s.dropped.shutdown, 200, "{s:?}");
}

/// A tiny thread-safe collector of delivered ids, in arrival order.
mod parking_lot_free {
    use std::sync::Mutex;

    #[derive(Default)]
    pub(crate) struct Seen(Mutex<Vec<String>>);

    impl Seen {
        pub(crate) fn extend(&self, batch: &[&[u8]]) {
            let mut ids = self.0.lock().unwrap();
            for e in batch {
                let v: serde_json::Value = serde_json::from_slice(e).unwrap();
                ids.push(v["correlation_id"].as_str().unwrap().to_owned());
            }
        }

        pub(crate) fn ids(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }
}

/// A store whose appends take a while (as with `fsync: always`, or a database that stopped
/// answering), taken for durable.
struct SlowStore(MemoryStore, Duration);

impl auditbuf::Store for SlowStore {
    fn append(&mut self, events: &[&[u8]]) -> Result<(), auditbuf::Error> {
        std::thread::sleep(self.1);
        self.0.append(events)
    }
    fn is_durable(&self) -> bool {
        true
    }
    fn read_oldest(
        &mut self,
        max_events: usize,
        max_bytes: usize,
        out: &mut auditbuf::StoredBatch,
    ) -> Result<(), auditbuf::Error> {
        self.0.read_oldest(max_events, max_bytes, out)
    }
    fn commit(&mut self, n: usize) -> Result<(), auditbuf::Error> {
        self.0.commit(n)
    }
    fn dead_letter(&mut self, event: &[u8], reason: &str) -> Result<(), auditbuf::Error> {
        self.0.dead_letter(event, reason)
    }
    fn size(&self) -> auditbuf::StoreSize {
        self.0.size()
    }
    fn oldest_age(&self) -> Option<Duration> {
        self.0.oldest_age()
    }
}

#[test]
fn events_a_full_store_refused_are_neither_stuck_nor_lost() {
    let (sink, seen) = collecting(Duration::from_millis(2));
    let config = config()
        .queue_capacity(16)
        .batch_max_events(4)
        .overflow(Overflow::Spill);
    let store = MemoryStore::new(MemoryStoreConfig::default().max_events(20));
    let p = Pipeline::with_store(config, sink, store).unwrap();
    let mut accepted = Vec::new();
    for id in ids(0..1000) {
        match p.record_json(format!(r#"{{"event_type":"t","correlation_id":"{id}"}}"#).as_bytes()) {
            Ok(()) => accepted.push(id),
            Err(e) => assert!(matches!(e, auditbuf::Error::StoreFull { .. }), "{e}"),
        }
    }
    assert!(p.flush(Duration::from_secs(30)).completed);
    let report = p.close(Duration::from_secs(30));
    assert!(report.completed);
    assert!(report.stats.rejected.store_full > 0, "{:?}", report.stats);
    assert_eq!(report.stats.recorded as usize, accepted.len());
    // What was accepted is delivered (in order), or counted where it went.
    let delivered = seen.ids();
    assert_eq!(report.stats.delivered as usize, delivered.len());
    assert_eq!(
        report.stats.delivered + report.stats.dropped.total(),
        report.stats.recorded,
        "{:?}",
        report.stats
    );
    assert_in_order(&delivered, &accepted[..delivered.len()]);
    assert_all_settled_or_dropped(&report.stats);
}

fn assert_all_settled_or_dropped(stats: &Stats) {
    assert!(stats.is_consistent(), "{stats:?}");
    assert_eq!(
        stats.queued + stats.in_flight + stats.stored,
        0,
        "{stats:?}"
    );
}

#[test]
fn close_reports_what_it_kept_in_the_store() {
    let dir = temp_dir("close-report");
    let retry =
        RetryPolicy::default().backoff(Duration::from_millis(50), Duration::from_millis(50));
    let sink = HttpSink::new(refused_url(), HttpConfig::default()).unwrap();
    let p = Pipeline::new(config().retry(retry).store(file_store(&dir)), sink).unwrap();
    for id in ids(0..50) {
        record(&p, &id);
    }
    // The flush thread tries to deliver until close's deadline less a reserve (a tenth, at
    // most 250 ms) in which it stores and syncs what is left: under heavy disk writeback
    // from other jobs that fdatasync took up to 460 ms, past the 40 ms of a 400 ms close.
    let started = std::time::Instant::now();
    let report = p.close(Duration::from_secs(3));
    let took = started.elapsed();
    assert!(report.completed, "after {took:?}: {:?}", report.stats);
    assert_eq!(report.left, 0, "{:?}", report.stats);
    assert_eq!(report.stats.stored, 50, "{:?}", report.stats);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A store that cannot take anything (a database that is down, a read-only disk).
struct BrokenStore;

impl auditbuf::Store for BrokenStore {
    fn append(&mut self, _: &[&[u8]]) -> Result<(), auditbuf::Error> {
        Err(auditbuf::Error::Io(Box::new(auditbuf::IoError {
            path: "/broken".into(),
            source: std::io::Error::other("read-only file system"),
        })))
    }
    fn read_oldest(
        &mut self,
        _: usize,
        _: usize,
        out: &mut auditbuf::StoredBatch,
    ) -> Result<(), auditbuf::Error> {
        out.clear();
        Ok(())
    }
    fn commit(&mut self, _: usize) -> Result<(), auditbuf::Error> {
        Ok(())
    }
    fn dead_letter(&mut self, _: &[u8], _: &str) -> Result<(), auditbuf::Error> {
        Ok(())
    }
    fn size(&self) -> auditbuf::StoreSize {
        auditbuf::StoreSize::default()
    }
    fn oldest_age(&self) -> Option<Duration> {
        None
    }
}

#[test]
fn a_store_cap_smaller_than_a_batch_still_moves_events() {
    let (sink, seen) = collecting(Duration::from_millis(0));
    let config = config()
        .queue_capacity(64)
        .batch_max_events(10)
        .overflow(Overflow::Spill);
    let store = MemoryStore::new(MemoryStoreConfig::default().max_events(5));
    let p = Pipeline::with_store(config, sink, store).unwrap();
    let accepted = record_accepted(&p, 0..300);
    let report = p.close(Duration::from_secs(20));
    assert!(report.completed);
    assert_in_order(&seen.ids(), &accepted);
    assert_all_settled(&report.stats);
}

const HANG_DIR: &str = "AUDITBUF_OUTAGE_HANG_DIR";

/// The child of the test below: a receiver that takes the connection and never answers,
/// 100 events in flight and 100 queued, `close` and exit while the sink still waits.
#[test]
fn hanging_receiver_child() {
    let Ok(dir) = std::env::var(HANG_DIR) else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ev", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let http = HttpConfig::default().timeout(Duration::from_secs(60));
    let config = Config::default()
        .batch_max_events(100)
        .flush_interval(Duration::from_secs(60))
        .drop_timeout(Duration::from_millis(100))
        .store(file_store(std::path::Path::new(&dir)));
    let p = Pipeline::new(config, HttpSink::new(url, http).unwrap()).unwrap();
    for id in ids(0..100) {
        record(&p, &id);
    }
    // The first 100 are taken as a batch and sent; the next 100 wait in the queue.
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.stats().in_flight < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    for id in ids(100..200) {
        record(&p, &id);
    }
    let report = p.close(Duration::from_millis(500));
    println!(
        "closed: completed {} stored {} in_flight {} consistent {}",
        report.completed,
        report.stats.stored,
        report.stats.in_flight,
        report.stats.is_consistent()
    );
    drop(p);
    std::process::exit(0);
}

#[test]
fn close_with_a_hanging_receiver_keeps_the_queue_in_the_store() {
    let dir = temp_dir("hang");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "hanging_receiver_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HANG_DIR, &dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // The batch in flight is the sink's (buffered durability loses it with the process);
    // the queue is kept, by `close` itself, since the flush thread cannot.
    assert!(
        text.contains("closed: completed false stored 100 in_flight 100 consistent true"),
        "{text}"
    );
    let mut store = FileStore::open(FileStoreConfig::new(&dir).fsync(Fsync::Never)).unwrap();
    let mut batch = auditbuf::StoredBatch::new();
    auditbuf::Store::read_oldest(&mut store, 1000, usize::MAX, &mut batch).unwrap();
    let kept: Vec<String> = batch
        .iter()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_slice(e).unwrap();
            v["correlation_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(kept, ids(100..200));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn close_keeps_its_deadline_while_the_flush_thread_waits_for_a_slow_store() {
    // The batch runs out of retries at once and goes to the store, whose append takes 3 s:
    // the flush thread holds the store meanwhile. Close must not wait for it to keep the
    // queue there itself.
    let down = CallbackSink::new(|_: &[&[u8]]| Outcome::retry("down"));
    let config = config().retry(RetryPolicy::default().max_attempts(1));
    let store = SlowStore(
        MemoryStore::new(MemoryStoreConfig::default()),
        Duration::from_secs(3),
    );
    let p = Pipeline::with_store(config, down, store).unwrap();
    for id in ids(0..200) {
        record(&p, &id);
    }
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let report = p.close(Duration::from_millis(500));
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "close took {took:?}");
    assert!(!report.completed);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
}
