//! A pipeline in a `fork()` child: it must never hang, never acknowledge an event it cannot
//! deliver, and never write the store it inherited; the parent carries on undisturbed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use auditbuf::{
    Config, Durability, Error, FileStoreConfig, Fsync, HttpConfig, HttpSink, NullSink, Pipeline,
    StoreConfig,
};
use auditbuf_testkit::{Receiver, Reply};

mod common;
use common::fork::in_forked_child as in_child;

#[test]
fn a_forked_child_gets_forked_errors_and_never_waits() {
    let p = Pipeline::new(Config::default(), NullSink).unwrap();
    p.record_json(br#"{"event_type":"before"}"#).unwrap();
    let code = in_child(move || {
        if !matches!(
            p.record_json(br#"{"event_type":"in child"}"#),
            Err(Error::Forked)
        ) {
            return 1;
        }
        let started = Instant::now();
        if p.flush(Duration::from_secs(5)).completed || p.close(Duration::from_secs(5)).completed {
            return 2;
        }
        drop(p);
        if started.elapsed() > Duration::from_millis(500) {
            return 3;
        }
        0
    });
    assert_eq!(code, 0);
}

#[test]
fn a_forked_child_never_writes_the_parents_wal() {
    let dir = std::env::temp_dir().join(format!("auditbuf-fork-wal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let up = Arc::new(AtomicBool::new(false));
    let receiver = Receiver::start({
        let up = Arc::clone(&up);
        move |_| {
            if up.load(Ordering::SeqCst) {
                Reply::created()
            } else {
                Reply::status(503)
            }
        }
    });
    let config = Config::default()
        .flush_interval(Duration::from_millis(20))
        .durability(Durability::Wal)
        .store(StoreConfig::File(
            FileStoreConfig::new(&dir).fsync(Fsync::Always),
        ));
    let p = Pipeline::new(
        config,
        HttpSink::new(receiver.url(), HttpConfig::default()).unwrap(),
    )
    .unwrap();
    let record = |p: &Pipeline, id: String| {
        p.record_json(format!(r#"{{"event_type":"t","correlation_id":"{id}"}}"#).as_bytes())
    };
    for i in 0..5 {
        record(&p, format!("parent-{i}")).unwrap();
    }
    let code = in_child(|| {
        for i in 0..10 {
            match record(&p, format!("child-{i}")) {
                Err(Error::Forked) => {}
                _ => return 1,
            }
        }
        0
    });
    assert_eq!(code, 0, "the child acknowledged an event it cannot deliver");
    for i in 5..15 {
        record(&p, format!("parent-{i}")).unwrap();
    }
    up.store(true, Ordering::SeqCst);
    assert!(receiver.wait_for_delivered(15, Duration::from_secs(30)));
    let report = p.close(Duration::from_secs(5));
    let expected: Vec<String> = (0..15).map(|i| format!("parent-{i}")).collect();
    assert_eq!(receiver.delivered_field("correlation_id"), expected);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    assert_eq!(report.stats.delivered, 15);
    let _ = std::fs::remove_dir_all(&dir);
}
