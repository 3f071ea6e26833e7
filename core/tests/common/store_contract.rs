//! The behaviour every backing store must have, as a macro each store's test file
//! instantiates: `store_contract!(durable, |scope: &Path, max_bytes: Option<u64>| -> Box<dyn Store>)`.
//!
//! `scope` is a fresh directory per test (a store may use it, or derive a table name from
//! it); opening the same scope again must reopen the same store. `max_bytes` is a cap on
//! what the store holds, for the `StoreFull` case.
//!
//! `store_contract!(helpers)` defines only the helpers the contract tests use (`Scope`,
//! `event`, `append_range`, `read`), for a store's other test files.

/// Defines the contract tests for the store `open` opens, or with `helpers` only their helpers.
#[macro_export]
macro_rules! store_contract {
    (helpers) => {
        use std::path::PathBuf;

        use auditbuf::{Store, StoredBatch};

        /// A fresh scope directory, removed when dropped.
        struct Scope(PathBuf);

        impl Scope {
            fn new(name: &str) -> Scope {
                static NEXT: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let dir = std::env::temp_dir().join(format!(
                    "auditbuf-contract-{}-{}-{n}",
                    std::process::id(),
                    name
                ));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap();
                Scope(dir)
            }
        }

        impl Drop for Scope {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }

        // A file that takes the helpers alone may not use each.
        #[allow(dead_code)]
        fn event(i: usize) -> Vec<u8> {
            format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat(i % 17)).into_bytes()
        }

        // A file that takes the helpers alone may not use each.
        #[allow(dead_code)]
        fn append_range(store: &mut dyn Store, range: std::ops::Range<usize>) {
            let events: Vec<Vec<u8>> = range.map(event).collect();
            let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
            store.append(&refs).unwrap();
        }

        // A file that takes the helpers alone may not use each.
        #[allow(dead_code)]
        fn read(store: &mut dyn Store, max_events: usize, max_bytes: usize) -> Vec<Vec<u8>> {
            let mut batch = StoredBatch::new();
            store
                .read_oldest(max_events, max_bytes, &mut batch)
                .unwrap();
            batch.iter().map(<[u8]>::to_vec).collect()
        }
    };
    (durable: $durable:expr, open: $open:expr) => {
        $crate::store_contract!(helpers);

        use std::path::Path;

        use auditbuf::{Appended, Error};

        fn open(scope: &Path, max_bytes: Option<u64>) -> Box<dyn Store> {
            let f: &dyn Fn(&Path, Option<u64>) -> Box<dyn Store> = &$open;
            f(scope, max_bytes)
        }

        #[test]
        fn round_trip() {
            let scope = Scope::new("round-trip");
            let mut store = open(&scope.0, None);
            assert_eq!(store.size().events, 0);
            assert!(read(&mut *store, 10, 1 << 20).is_empty());
            let events = [
                &b"{}"[..],
                b"{\"a\":\"\\u00e9 \xc3\xa9\"}",
                b"{\"b\":[1,2,3]}",
            ];
            store.append(&events).unwrap();
            assert_eq!(store.size().events, 3);
            assert_eq!(
                store.size().bytes,
                events.iter().map(|e| e.len() as u64).sum::<u64>()
            );
            assert_eq!(
                read(&mut *store, 10, 1 << 20),
                events.iter().map(|e| e.to_vec()).collect::<Vec<_>>()
            );
            store.commit(3).unwrap();
            assert_eq!(store.size().events, 0);
            assert!(read(&mut *store, 10, 1 << 20).is_empty());
        }

        #[test]
        fn order_is_kept_across_appends_reads_and_commits() {
            let scope = Scope::new("order");
            let mut store = open(&scope.0, None);
            append_range(&mut *store, 0..100);
            append_range(&mut *store, 100..250);
            let mut seen = Vec::new();
            let mut next = 250;
            loop {
                let got = read(&mut *store, 7, 1 << 20);
                if got.is_empty() {
                    break;
                }
                store.commit(got.len()).unwrap();
                seen.extend(got);
                if next < 400 {
                    // Appends between a read and the next never disturb the order.
                    append_range(&mut *store, next..next + 10);
                    next += 10;
                }
            }
            assert_eq!(seen, (0..400).map(event).collect::<Vec<_>>());
        }

        #[test]
        fn partial_commits_and_rereads() {
            let scope = Scope::new("partial");
            let mut store = open(&scope.0, None);
            append_range(&mut *store, 0..10);
            let first = read(&mut *store, 5, 1 << 20);
            assert_eq!(first, (0..5).map(event).collect::<Vec<_>>());
            // Reading again without a commit gives the same events.
            assert_eq!(read(&mut *store, 5, 1 << 20), first);
            store.commit(2).unwrap();
            assert_eq!(store.size().events, 8);
            assert_eq!(
                read(&mut *store, 3, 1 << 20),
                (2..5).map(event).collect::<Vec<_>>()
            );
            // Commits of one read may come in steps.
            store.commit(1).unwrap();
            store.commit(2).unwrap();
            assert_eq!(
                read(&mut *store, 100, 1 << 20),
                (5..10).map(event).collect::<Vec<_>>()
            );
            assert_eq!(store.size().events, 5);
        }

        #[test]
        fn reads_respect_their_limits() {
            let scope = Scope::new("limits");
            let mut store = open(&scope.0, None);
            append_range(&mut *store, 0..20);
            assert_eq!(read(&mut *store, 4, 1 << 20).len(), 4);
            let bounded = read(&mut *store, 100, 40);
            let used: usize = bounded.iter().map(|e| e.len() + 1).sum();
            assert!(!bounded.is_empty() && used <= 40, "{used}");
            // One event larger than the byte limit still comes out alone.
            let big_scope = Scope::new("limits-big");
            let mut big = open(&big_scope.0, None);
            big.append(&[&[b'x'; 500][..], b"{}"]).unwrap();
            assert_eq!(read(&mut *big, 10, 10).len(), 1);
        }

        #[test]
        fn a_full_store_refuses_the_whole_batch() {
            let scope = Scope::new("cap");
            let mut store = open(&scope.0, Some(4096));
            let mut appended = 0;
            loop {
                let events: Vec<Vec<u8>> = (appended..appended + 5).map(event).collect();
                let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
                match store.append(&refs) {
                    Ok(()) => appended += 5,
                    Err(Error::StoreFull { .. }) => break,
                    Err(e) => panic!("{e}"),
                }
                assert!(appended < 10_000, "the cap was never reached");
            }
            assert!(appended > 0);
            assert_eq!(
                store.size().events as usize,
                appended,
                "a refused batch left some events behind"
            );
            // Room comes back as events are committed.
            let got = read(&mut *store, 1000, 1 << 20);
            assert_eq!(got.len(), appended);
            store.commit(got.len()).unwrap();
            store.append(&[b"{}"]).unwrap();
        }

        #[test]
        fn reopening_keeps_what_was_not_committed() {
            if !$durable {
                return;
            }
            let scope = Scope::new("reopen");
            {
                let mut store = open(&scope.0, None);
                append_range(&mut *store, 0..30);
                let got = read(&mut *store, 10, 1 << 20);
                store.commit(got.len()).unwrap();
                assert!(store.is_durable());
                store.close().unwrap();
            }
            let mut store = open(&scope.0, None);
            assert_eq!(store.size().events, 20);
            assert_eq!(
                read(&mut *store, 100, 1 << 20),
                (10..30).map(event).collect::<Vec<_>>()
            );
            append_range(&mut *store, 30..35);
            store.close().unwrap();
            drop(store);
            let mut store = open(&scope.0, None);
            assert_eq!(
                read(&mut *store, 100, 1 << 20),
                (10..35).map(event).collect::<Vec<_>>()
            );
        }

        /// Durability `wal`: what `append_durably` appended is in order with other appends,
        /// and can be read and committed before its sync (if handed out) has run.
        #[test]
        fn durable_appends_can_be_read_before_their_sync_runs() {
            if !$durable {
                return;
            }
            let scope = Scope::new("durably");
            {
                let mut store = open(&scope.0, None);
                append_range(&mut *store, 0..5);
                let events: Vec<Vec<u8>> = (5..10).map(event).collect();
                let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
                let appended = store.append_durably(&refs).unwrap();
                assert_eq!(store.size().events, 10);
                assert_eq!(
                    read(&mut *store, 7, 1 << 20),
                    (0..7).map(event).collect::<Vec<_>>()
                );
                store.commit(7).unwrap();
                append_range(&mut *store, 10..12);
                match appended {
                    Appended::Pending(sync) => sync.run().unwrap(),
                    Appended::Durable => {}
                    other => panic!("{other:?}"),
                }
                store.close().unwrap();
            }
            let mut store = open(&scope.0, None);
            assert_eq!(
                read(&mut *store, 100, 1 << 20),
                (7..12).map(event).collect::<Vec<_>>()
            );
        }

        #[test]
        fn age_and_dead_letters() {
            let scope = Scope::new("age");
            let mut store = open(&scope.0, None);
            assert_eq!(store.oldest_age(), None);
            append_range(&mut *store, 0..3);
            assert!(store.oldest_age().is_some());
            store
                .dead_letter(b"{\"bad\":1}", "HTTP 400: schema")
                .unwrap();
            // Dead letters live apart from the log.
            assert_eq!(store.size().events, 3);
            let got = read(&mut *store, 10, 1 << 20);
            store.commit(got.len()).unwrap();
            assert_eq!(store.oldest_age(), None);
            store.sync().unwrap();
            store.tick().unwrap();
        }
    };
}
