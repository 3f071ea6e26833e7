//! The RabbitMQ sink against a real broker (`rabbitmq-server`, started once for this test
//! binary on 127.0.0.1 by the testkit): what is published is consumed exactly, an outage
//! loses nothing and keeps the order, nacks and returned messages are kept, never dropped.
//! Every test checks the accounting invariant. The tests take turns (one stops the broker).

#![cfg(feature = "rabbitmq")]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use auditbuf::__rabbitmq_testing::{async_io, lapin};
use auditbuf::{
    CadfEvent, CadfResource, Config, Error, FileStoreConfig, MemoryStoreConfig, Overflow, Pipeline,
    RabbitMqConfig, RabbitMqSink, RetryPolicy, Stats, StoreConfig,
};
use auditbuf_testkit::rabbitmq::TestRabbitMq;
use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions, QueuePurgeOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};

static TURN: Mutex<()> = Mutex::new(());
static NEXT_QUEUE: AtomicUsize = AtomicUsize::new(0);

fn turn() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

fn queue_name(what: &str) -> String {
    format!("{what}-{}", NEXT_QUEUE.fetch_add(1, Ordering::SeqCst))
}

/// One message as a consumer sees it.
#[derive(Debug)]
struct Message {
    body: Vec<u8>,
    id: String,
    message_id: Option<String>,
    delivery_mode: Option<u8>,
    content_type: Option<String>,
}

/// A test consumer: a connection of its own to the broker.
struct Consumer {
    _connection: Connection,
    channel: lapin::Channel,
}

impl Consumer {
    fn new(url: &str) -> Consumer {
        async_io::block_on(async {
            let connection = Connection::connect(url, ConnectionProperties::default())
                .await
                .unwrap();
            let channel = connection.create_channel().await.unwrap();
            Consumer {
                _connection: connection,
                channel,
            }
        })
    }

    fn declare(&self, queue: &str, arguments: FieldTable) {
        let options = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        async_io::block_on(self.channel.queue_declare(queue.into(), options, arguments)).unwrap();
    }

    fn bind(&self, queue: &str, exchange: &str, key: &str) {
        async_io::block_on(self.channel.queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ))
        .unwrap();
    }

    /// Takes whatever the queue holds now, up to `max`.
    fn take(&self, queue: &str, max: usize) -> Vec<Message> {
        let mut out = Vec::new();
        while out.len() < max {
            let got = async_io::block_on(
                self.channel
                    .basic_get(queue.into(), BasicGetOptions { no_ack: true }),
            )
            .unwrap();
            let Some(got) = got else { break };
            let d = got.delivery;
            let v: serde_json::Value = serde_json::from_slice(&d.data).unwrap();
            out.push(Message {
                id: v["id"].as_str().unwrap().to_owned(),
                message_id: d.properties.message_id().as_ref().map(|s| s.to_string()),
                delivery_mode: *d.properties.delivery_mode(),
                content_type: d.properties.content_type().as_ref().map(|s| s.to_string()),
                body: d.data,
            });
        }
        out
    }

    /// Takes messages until `ids` distinct ids came, or `timeout` passes; then whatever
    /// else arrives within a moment (duplicates would).
    fn take_until(&self, queue: &str, ids: usize, timeout: Duration) -> Vec<Message> {
        let deadline = Instant::now() + timeout;
        let mut all: Vec<Message> = Vec::new();
        let mut distinct = HashSet::new();
        while distinct.len() < ids && Instant::now() < deadline {
            let got = self.take(queue, usize::MAX);
            if got.is_empty() {
                std::thread::sleep(Duration::from_millis(20));
            }
            for m in got {
                distinct.insert(m.id.clone());
                all.push(m);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        all.extend(self.take(queue, usize::MAX));
        all
    }

    fn purge(&self, queue: &str) {
        async_io::block_on(
            self.channel
                .queue_purge(queue.into(), QueuePurgeOptions::default()),
        )
        .unwrap();
    }
}

fn event(i: usize) -> String {
    format!("event-{i:06}")
}

/// Records CADF event `i` with id `event-i` (the sink reads it for the message id).
fn record(p: &Pipeline, i: usize) -> Result<(), Error> {
    let id = event(i);
    p.record_cadf(&CadfEvent {
        id: Some(&id),
        request_path: Some("/v3/auth/tokens"),
        ..CadfEvent::new(
            "authenticate",
            "success",
            CadfResource {
                name: Some("ada"),
                ..CadfResource::new("service/security/account/user", "u-1")
            },
            CadfResource::new("service/security/account/user", "u-1"),
            CadfResource::new("service/identity", "keystone-1"),
        )
    })
}

fn assert_consistent(stats: &Stats) {
    assert!(stats.is_consistent(), "accounting broken: {stats:?}");
}

/// Every message is a recorded event with its properties; each id arrives at least once
/// (first arrivals in recording order when `ordered`), and a repeat is the same message
/// again. Returns the number of repeats.
fn check_arrivals(messages: &[Message], recorded: usize, ordered: bool) -> usize {
    let mut first: HashMap<&str, &[u8]> = HashMap::new();
    let mut order = Vec::new();
    for m in messages {
        assert_eq!(m.message_id.as_deref(), Some(m.id.as_str()), "message id");
        assert_eq!(m.delivery_mode, Some(2), "persistent");
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
        match first.get(m.id.as_str()) {
            Some(body) => assert_eq!(*body, m.body.as_slice(), "a duplicate differs"),
            None => {
                first.insert(&m.id, &m.body);
                order.push(m.id.clone());
            }
        }
    }
    let want: Vec<String> = (0..recorded).map(event).collect();
    assert_eq!(order.len(), recorded, "missing events");
    if !ordered {
        order.sort();
    }
    assert_eq!(order, want, "first arrivals out of order");
    messages.len() - recorded
}

fn fast_retries(max_elapsed: Duration) -> RetryPolicy {
    RetryPolicy::default()
        .backoff(Duration::from_millis(20), Duration::from_millis(300))
        .max_elapsed(max_elapsed)
}

#[test]
fn every_published_event_is_consumed_exactly_once() {
    let _turn = turn();
    let broker = TestRabbitMq::shared();
    let queue = queue_name("exactly");
    let sink = RabbitMqSink::new(RabbitMqConfig::new(broker.url(), &queue)).unwrap();
    let config = Config::default().overflow(Overflow::Block {
        timeout: Duration::from_secs(30),
    });
    let p = Pipeline::new(config, sink).unwrap();
    const N: usize = 3000;
    for i in 0..N {
        record(&p, i).unwrap();
    }
    let report = p.close(Duration::from_secs(60));
    assert!(report.completed);
    assert_consistent(&report.stats);
    assert_eq!(report.stats.delivered, N as u64);
    let messages = Consumer::new(&broker.url()).take_until(&queue, N, Duration::from_secs(30));
    assert_eq!(
        check_arrivals(&messages, N, true),
        0,
        "no outage, no duplicate"
    );
}

#[test]
fn a_broker_outage_loses_nothing_and_keeps_the_order() {
    let _turn = turn();
    let broker = TestRabbitMq::shared();
    let queue = queue_name("outage");
    let dir = std::env::temp_dir().join(format!("auditbuf-rmq-outage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sink = RabbitMqSink::new(
        RabbitMqConfig::new(broker.url(), &queue).connect_timeout(Duration::from_secs(2)),
    )
    .unwrap();
    let config = Config::default()
        .batch_max_events(100)
        .flush_interval(Duration::from_millis(20))
        .retry(fast_retries(Duration::from_secs(1)))
        .store(StoreConfig::File(FileStoreConfig::new(&dir)));
    let p = Pipeline::new(config, sink).unwrap();
    // One producer records all along, about a thousand events a second, while the broker is
    // stopped and started under it; then a thousand more.
    let back = AtomicBool::new(false);
    let (recorded, during) = std::thread::scope(|s| {
        let (p, back) = (&p, &back);
        let producer = s.spawn(move || {
            let mut i = 0;
            let mut after = 0;
            while after < 1000 {
                record(p, i).unwrap();
                i += 1;
                if back.load(Ordering::SeqCst) {
                    after += 1;
                }
                if i % 5 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            i
        });
        std::thread::sleep(Duration::from_millis(300));
        broker.stop_app();
        // Let the outage last while events keep coming.
        std::thread::sleep(Duration::from_millis(500));
        let during = p.stats();
        broker.start_app();
        back.store(true, Ordering::SeqCst);
        (producer.join().unwrap(), during)
    });
    let report = p.close(Duration::from_secs(90));
    assert!(report.completed, "{:?}", report.stats);
    let s = &report.stats;
    assert_consistent(s);
    assert_eq!(s.recorded, recorded as u64);
    assert_eq!(s.delivered, recorded as u64, "{s:?}");
    assert_eq!(s.failed + s.dead_lettered + s.dropped.total(), 0, "{s:?}");
    assert!(s.retries > 0, "the outage was seen: {s:?}");
    assert!(
        during.delivered < during.recorded,
        "events were held while the broker was down: {during:?}"
    );
    let messages =
        Consumer::new(&broker.url()).take_until(&queue, recorded, Duration::from_secs(60));
    let duplicates = check_arrivals(&messages, recorded, true);
    eprintln!(
        "outage: {recorded} events, {duplicates} sent again after a lost confirm, {} retries",
        s.retries
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nacks_from_a_full_queue_are_kept_not_dropped() {
    let _turn = turn();
    let broker = TestRabbitMq::shared();
    let queue = queue_name("full");
    let consumer = Consumer::new(&broker.url());
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongInt(10));
    arguments.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    consumer.declare(&queue, arguments);
    // The queue was declared with a length limit: only check it.
    let sink = RabbitMqSink::new(RabbitMqConfig::new(broker.url(), &queue).declare(false)).unwrap();
    let config = Config::default()
        .flush_interval(Duration::from_millis(20))
        .retry(fast_retries(Duration::from_millis(500)))
        .store(StoreConfig::Memory(MemoryStoreConfig::default()));
    let p = Pipeline::new(config, sink).unwrap();
    const N: usize = 60;
    for i in 0..N {
        record(&p, i).unwrap();
    }
    // The broker takes ten and refuses the rest; they run out of retries into the store.
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.stats().stored == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let held = p.stats();
    assert!(
        held.stored > 0,
        "nacked events are kept in the store: {held:?}"
    );
    assert_eq!(held.delivered, 10, "only what the queue took: {held:?}");
    assert_consistent(&held);
    // A consumer makes room; what was refused goes out again, in order.
    let messages = consumer.take_until(&queue, N, Duration::from_secs(60));
    let report = p.close(Duration::from_secs(30));
    let s = &report.stats;
    assert_consistent(s);
    assert_eq!(s.delivered, N as u64, "{s:?}");
    assert_eq!(s.failed + s.dead_lettered + s.dropped.total(), 0, "{s:?}");
    let mut messages = messages;
    messages.extend(consumer.take(&queue, usize::MAX));
    // The broker decides message by message: when the consumer makes room in the middle of
    // a batch, a message refused before it can be overtaken by one taken after it (which
    // then also arrives a second time, as the refused one's batch is sent again). Nothing
    // is lost; the order holds only up to the first refusal.
    check_arrivals(&messages, N, false);
}

#[test]
fn unroutable_messages_are_returned_and_kept_until_a_queue_is_bound() {
    let _turn = turn();
    let broker = TestRabbitMq::shared();
    let queue = queue_name("late-binding");
    let key = format!("{queue}-key");
    let config = RabbitMqConfig::new(broker.url(), "")
        .exchange("amq.direct")
        .routing_key(&key);
    let sink = RabbitMqSink::new(config).unwrap();
    let config = Config::default()
        .flush_interval(Duration::from_millis(20))
        .retry(fast_retries(Duration::from_secs(60)));
    let p = Pipeline::new(config, sink).unwrap();
    for i in 0..20 {
        record(&p, i).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.stats().retries < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let held = p.stats();
    assert_eq!(held.delivered, 0, "no queue is bound: {held:?}");
    assert!(held.retries >= 2, "{held:?}");
    let last = p.last_error().unwrap_or_default();
    assert!(last.contains("NO_ROUTE"), "{last}");
    let consumer = Consumer::new(&broker.url());
    consumer.declare(&queue, FieldTable::default());
    consumer.bind(&queue, "amq.direct", &key);
    let report = p.close(Duration::from_secs(30));
    let s = &report.stats;
    assert_consistent(s);
    assert_eq!(s.delivered, 20, "{s:?}");
    assert_eq!(s.failed + s.dead_lettered + s.dropped.total(), 0, "{s:?}");
    let messages = consumer.take_until(&queue, 20, Duration::from_secs(30));
    assert_eq!(check_arrivals(&messages, 20, true), 0);
    consumer.purge(&queue);
}

/// Confirmed publishes per second to the local broker: `cargo test --release -p auditbuf
/// --features rabbitmq --test rabbitmq_sink -- --ignored --nocapture`. Producers record
/// CADF events (about 480 bytes) as fast as they can, `Block` overflow, into one pipeline
/// (one connection) or one pipeline each; the time runs until the last is confirmed.
#[test]
#[ignore = "a measurement, not a test: run it with --ignored --nocapture"]
fn confirmed_publish_rate() {
    let _turn = turn();
    let broker = TestRabbitMq::shared();
    const N: usize = 40_000;
    for (producers, pipelines) in [(1, 1), (4, 1), (4, 4)] {
        let queue = queue_name("rate");
        let new_pipeline = || {
            let sink = RabbitMqSink::new(RabbitMqConfig::new(broker.url(), &queue)).unwrap();
            let config = Config::default()
                .queue_capacity(20_000)
                .flush_interval(Duration::from_millis(5))
                .overflow(Overflow::Block {
                    timeout: Duration::from_secs(60),
                });
            Pipeline::new(config, sink).unwrap()
        };
        let all: Vec<Pipeline> = (0..pipelines).map(|_| new_pipeline()).collect();
        let started = Instant::now();
        std::thread::scope(|s| {
            for t in 0..producers {
                let p = &all[t % pipelines];
                s.spawn(move || {
                    for i in 0..N / producers {
                        record(p, t * N + i).unwrap();
                    }
                });
            }
        });
        let mut delivered = 0;
        for p in all {
            let report = p.close(Duration::from_secs(300));
            assert_consistent(&report.stats);
            delivered += report.stats.delivered;
        }
        let elapsed = started.elapsed();
        assert_eq!(delivered, N as u64);
        eprintln!(
            "{producers} producer(s), {pipelines} pipeline(s): {N} confirmed in {elapsed:.2?} = {:.0} events/s",
            N as f64 / elapsed.as_secs_f64()
        );
        Consumer::new(&broker.url()).purge(&queue);
    }
}

#[test]
fn an_event_over_the_brokers_message_size_limit_is_dead_lettered_alone() {
    let _turn = turn();
    let broker = TestRabbitMq::shared();
    // The broker's limit, lowered for this test and put back after it.
    let before = broker.ctl(&["eval", "application:get_env(rabbit, max_message_size)."]);
    let before: String = before.chars().filter(char::is_ascii_digit).collect();
    let before = if before.is_empty() {
        "16777216".to_owned()
    } else {
        before
    };
    struct Restore<'a>(&'a TestRabbitMq, String);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let set = format!("application:set_env(rabbit, max_message_size, {}).", self.1);
            self.0.ctl(&["eval", &set]);
        }
    }
    broker.ctl(&[
        "eval",
        "application:set_env(rabbit, max_message_size, 8192).",
    ]);
    let _restore = Restore(broker, before);
    let queue = queue_name("size");
    let sink = RabbitMqSink::new(RabbitMqConfig::new(broker.url(), &queue)).unwrap();
    let config = Config::default()
        .flush_interval(Duration::from_millis(20))
        .retry(fast_retries(Duration::from_secs(5)));
    let p = Pipeline::new(config, sink).unwrap();
    const N: usize = 14;
    let small = |i: usize| format!(r#"{{"id":"{}"}}"#, event(i));
    for i in 0..5 {
        p.record_json(small(i).as_bytes()).unwrap();
    }
    p.flush(Duration::from_secs(10));
    // Then one over the limit with others behind it, in one batch.
    let big = format!(r#"{{"id":"big","pad":"{}"}}"#, "z".repeat(20_000));
    p.record_json(big.as_bytes()).unwrap();
    for i in 5..N {
        p.record_json(small(i).as_bytes()).unwrap();
    }
    let report = p.close(Duration::from_secs(30));
    let s = &report.stats;
    assert_consistent(s);
    assert!(report.completed, "{s:?}");
    assert_eq!(
        (
            s.delivered,
            s.dead_lettered,
            s.dead_lettered_too_large,
            s.failed
        ),
        (N as u64, 1, 1, 0),
        "{s:?}"
    );
    let letters = p.dead_letters();
    assert!(
        letters[0].reason.contains("max_message_size of 8192"),
        "{:?}",
        letters[0].reason
    );
    let messages = Consumer::new(&broker.url()).take_until(&queue, N, Duration::from_secs(30));
    check_arrivals(&messages, N, true);
}
