//! `record` allocates nothing on the caller's thread once the pool is warm, for all three
//! ways of recording. A counting global allocator counts per thread, so the flush thread's
//! own allocations (one small vector per batch) do not hide the caller's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use auditbuf::{
    AuditEvent, AuditEventBytes, CadfAddress, CadfAttachment, CadfContent, CadfEvent, CadfHost,
    CadfReason, CadfResource, CallbackSink, Config, Error, EventData, Outcome, Pipeline,
};
use crossbeam_channel::{Receiver, bounded};

struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    // try_with: the allocator also runs while thread-locals are being torn down.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// Safety: every method forwards to the system allocator unchanged; counting touches only
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // Safety: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // Safety: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // Safety: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Safety: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const QUEUE: usize = 1024;
const CALLS: usize = 100_000;

/// A pipeline whose sink holds its first batch until `gate` opens, so warm-up can fill
/// every slot of the pool.
fn gated_pipeline(config: Config) -> (Pipeline, crossbeam_channel::Sender<()>) {
    let (open, gate): (_, Receiver<()>) = bounded(0);
    let mut waited = false;
    let sink = CallbackSink::new(move |_: &[&[u8]]| {
        if !waited {
            waited = true;
            let _ = gate.recv_timeout(Duration::from_secs(30));
        }
        Outcome::Delivered
    });
    (Pipeline::new(config, sink).unwrap(), open)
}

/// Warms the pool with `record` (every slot created and grown to size), then counts the
/// allocations of `CALLS` more calls on this thread. Full queues are retried, not skipped.
fn allocations_of(record: impl Fn(&Pipeline, usize) -> Result<(), Error>) -> (u64, Pipeline) {
    let config = Config::default()
        .queue_capacity(QUEUE)
        .batch_max_events(256);
    allocations_of_with(config, record)
}

fn allocations_of_with(
    config: Config,
    record: impl Fn(&Pipeline, usize) -> Result<(), Error>,
) -> (u64, Pipeline) {
    let (pipeline, open) = gated_pipeline(config);
    for i in 0..QUEUE + 256 {
        match record(&pipeline, i) {
            Ok(()) | Err(Error::Full) => {}
            Err(e) => panic!("warm-up: {e}"),
        }
    }
    drop(open);
    assert!(pipeline.flush(Duration::from_secs(30)).completed);

    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    for i in 0..CALLS {
        loop {
            match record(&pipeline, i) {
                Ok(()) => break,
                Err(Error::Full) => std::thread::yield_now(),
                Err(_) => break,
            }
        }
    }
    COUNTING.with(|on| on.set(false));
    (ALLOCATIONS.with(Cell::get), pipeline)
}

fn check(allocations: u64, pipeline: Pipeline) {
    let report = pipeline.close(Duration::from_secs(30));
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    assert_eq!(
        report.stats.rejected.total() - report.stats.rejected.queue_full,
        0,
        "{:?}",
        report.stats
    );
    assert!(report.stats.delivered >= CALLS as u64);
    assert_eq!(
        allocations, 0,
        "record allocated {allocations} times in {CALLS} calls"
    );
}

const PAYLOAD: &str = r#"{"signal_type":"alert","signal_name":"HighMemoryUsage","namespace":"payment","fingerprint":"fp-abc123"}"#;

#[test]
fn typed_events_do_not_allocate() {
    let (n, p) = allocations_of(|p, i| {
        p.record(&AuditEvent {
            actor_type: Some("service"),
            actor_id: Some("gateway"),
            resource_type: Some("Signal"),
            resource_id: Some("fp-abc123"),
            namespace: Some("payment"),
            duration_ms: Some(i as u64),
            event_data: EventData::Json(PAYLOAD),
            ..AuditEvent::new(
                "gateway.signal.received",
                "gateway",
                "received",
                "success",
                "rr-2026-001",
            )
        })
    });
    check(n, p);
}

#[test]
fn typed_events_with_every_check_do_not_allocate() {
    // Categories, a caller's timestamp checked against the window, an escaped
    // event_data.event_type compared by meaning, and a payload of many keys.
    let mut payload = String::from(r#"{"event_type":"gateway.signal.receive\u0064""#);
    // 70 keys: past the scanner's 64, so the exact second pass runs too.
    for i in 0..70 {
        payload.push_str(&format!(r#","key_{i}":{{"key_{i}":[{i}]}}"#));
    }
    payload.push('}');
    let timestamp = now_rfc3339();
    let (n, p) = allocations_of_with(
        Config::default()
            .queue_capacity(QUEUE)
            .batch_max_events(256)
            .categories(["workflow", "gateway", "security"])
            .check_timestamp_window(true),
        |p, i| {
            p.record(&AuditEvent {
                event_timestamp: Some(&timestamp),
                actor_ip: Some("2001:db8::1"),
                parent_event_id: Some("018f3c9e-0000-7000-8000-000000000001"),
                parent_event_date: Some("2026-01-02T03:04:00.000+01:00"),
                duration_ms: Some(i as u64),
                event_data: EventData::Json(&payload),
                ..AuditEvent::new(
                    "gateway.signal.received",
                    "gateway",
                    "received",
                    "success",
                    "rr-2026-001",
                )
            })
        },
    );
    check(n, p);
}

#[test]
fn typed_events_from_bytes_do_not_allocate() {
    let (n, p) = allocations_of(|p, i| {
        p.record_event_bytes(&AuditEventBytes {
            actor_id: Some("zoë \"gateway\" 日本".as_bytes()),
            namespace: Some(b"payment"),
            duration_ms: Some(i as u64),
            event_data: Some(PAYLOAD.as_bytes()),
            ..AuditEventBytes::new(
                b"gateway.signal.received",
                b"gateway",
                b"received",
                b"success",
                b"rr-2026-001",
            )
        })
    });
    check(n, p);
}

#[test]
fn raw_json_with_escapes_and_unicode_does_not_allocate() {
    let event = "{\"event_type\":\"user.login\",\"message\":\"caf\u{e9} \\\"quoted\\\" \\n \\u00e9 \\ud83d\\ude00 日本語 🎉\",\
                 \"n\":[1,-2.5e3,true,null],\"nested\":{\"a\":{\"b\":[]}}}";
    let (n, p) = allocations_of(|p, _| p.record_json(event.as_bytes()));
    check(n, p);
}

#[test]
fn refused_bad_input_does_not_allocate() {
    // Every third event is not JSON: its slot, taken from the caller's bundle (a whole one
    // taken from the free list, some calls), goes back without a bundle of its own.
    let good = br#"{"event_type":"user.login","n":1}"#;
    let (n, pipeline) = allocations_of(|p, i| {
        // Only while counting: the warm-up takes no refusal but `Full`.
        let bad = i % 3 == 2 && COUNTING.with(Cell::get);
        let event: &[u8] = if bad { b"{\"event_type\":" } else { good };
        p.record_json(event)
    });
    let report = pipeline.close(Duration::from_secs(30));
    let s = report.stats;
    assert!(s.is_consistent(), "{s:?}");
    assert_eq!(s.rejected.invalid_json, (CALLS / 3) as u64, "{s:?}");
    assert_eq!(n, 0, "record allocated {n} times in {CALLS} calls");
}

#[test]
fn serialize_values_do_not_allocate() {
    #[derive(serde::Serialize)]
    struct Login<'a> {
        event_type: &'a str,
        user: &'a str,
        attempt: u32,
        success: bool,
        tags: [&'a str; 2],
    }
    let (n, p) = allocations_of(|p, i| {
        p.record_serialize(&Login {
            event_type: "user.login",
            user: "ada \"lovelace\"",
            attempt: i as u32,
            success: true,
            tags: ["a", "ü"],
        })
    });
    check(n, p);
}

#[test]
fn cadf_events_with_a_generated_id_and_time_do_not_allocate() {
    let addresses = [CadfAddress {
        url: "https://keystone.example.com/v3",
        name: Some("public"),
    }];
    let attachments = [
        CadfAttachment {
            name: Some("payload"),
            type_uri: "mime:application/json",
            content: CadfContent::Json(PAYLOAD),
        },
        CadfAttachment {
            name: None,
            type_uri: "xs:string",
            content: CadfContent::Text("quota \"exceeded\""),
        },
    ];
    let (n, p) = allocations_of(|p, _| {
        p.record_cadf(&CadfEvent {
            reason: Some(CadfReason {
                reason_type: Some("HTTP"),
                reason_code: Some("409"),
            }),
            initiator: CadfResource {
                name: Some("zoë"),
                domain: Some("Default"),
                addresses: &addresses,
                host: Some(CadfHost {
                    address: Some("10.0.0.7"),
                    agent: Some("openstacksdk"),
                    ..CadfHost::default()
                }),
                project_id: Some("e9141fb24eee4b3e9f25ae69cda31132"),
                project_name: Some("payments"),
                ..CadfResource::new("service/security/account/user", "u-1")
            },
            attachments: &attachments,
            request_path: Some("/v2.1/servers"),
            ..CadfEvent::new(
                "create",
                "failure",
                CadfResource::default(),
                CadfResource::new("compute/server", "s-99"),
                CadfResource::new("service/compute", "nova-api-01"),
            )
        })
    });
    check(n, p);
}

/// The current time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[test]
fn the_allocator_does_count() {
    // Guards the guard: a plain allocation on a counting thread must register.
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(64));
    COUNTING.with(|on| on.set(false));
    drop(v);
    assert_eq!(ALLOCATIONS.with(Cell::get), 1);
}

/// A pipeline whose sink takes 2 ms per batch of up to 256: the queue stays full while
/// `record` is counted, so every call meets the overflow policy.
fn slow_pipeline(overflow: auditbuf::Overflow) -> Pipeline {
    let sink = CallbackSink::new(|_: &[&[u8]]| {
        std::thread::sleep(Duration::from_millis(2));
        Outcome::Delivered
    });
    let config = Config::default()
        .queue_capacity(QUEUE)
        .batch_max_events(256)
        .overflow(overflow);
    Pipeline::new(config, sink).unwrap()
}

fn count_typed(pipeline: &Pipeline, calls: usize) -> u64 {
    let event = AuditEvent::new(
        "gateway.signal.received",
        "gateway",
        "received",
        "success",
        "rr",
    );
    // Warm: every slot created, every thread-local in place — including the one
    // parking_lot creates (and registers in its table, allocating) on a thread's first
    // wait, which under Block takes the queue filling up more than once.
    for _ in 0..QUEUE * 20 {
        let _ = pipeline.record(&event);
    }
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    for _ in 0..calls {
        let _ = pipeline.record(&event);
    }
    COUNTING.with(|on| on.set(false));
    ALLOCATIONS.with(Cell::get)
}

/// Records `calls` typed events into a pipeline whose queue stays full, under `overflow`;
/// checks that none allocated and that the accounting held, and returns the final stats.
fn full_queue_allocations(overflow: auditbuf::Overflow, calls: usize) -> auditbuf::Stats {
    let pipeline = slow_pipeline(overflow);
    let allocations = count_typed(&pipeline, calls);
    let report = pipeline.close(Duration::from_secs(30));
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    assert_eq!(allocations, 0, "record allocated {allocations} times");
    report.stats
}

#[test]
fn drop_oldest_evictions_do_not_allocate() {
    let stats = full_queue_allocations(auditbuf::Overflow::DropOldest, CALLS);
    assert!(stats.dropped.oldest > 0, "{stats:?}");
}

#[test]
fn drop_newest_refusals_do_not_allocate() {
    // A refused event is checked first (bad input gets its own error even then), in a
    // buffer of the thread's that the warm-up allocated.
    let stats = full_queue_allocations(auditbuf::Overflow::DropNewest, CALLS);
    assert!(stats.rejected.queue_full > 0, "{stats:?}");
}

#[test]
fn block_waits_do_not_allocate() {
    let timeout = Duration::from_secs(30);
    let stats = full_queue_allocations(auditbuf::Overflow::Block { timeout }, 20_000);
    assert_eq!(stats.rejected.total(), 0, "{stats:?}");
}
