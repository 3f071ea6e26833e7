//! Instructions a call costs the calling thread, counted by callgrind: the one measure of
//! the caller's cost that a shared, noisy machine does not move (`hot_path`'s times vary by
//! ±30 % from run to run there, and by half within a minute). It counts work, not time:
//! a cache miss or an atomic costs one instruction here and many cycles on the CPU, so it
//! complements `hot_path`, it does not replace it.
//!
//! `scripts/instructions` runs it under `valgrind --tool=callgrind --separate-threads=yes`
//! twice per contender (`INSTRUCTIONS_CALLS` calls, then three times as many) and prints
//! the difference per extra call of the calling thread's total and of every thread's (the
//! consumer's, or auditbuf's flush thread's, work included), so set-up and warm-up drop
//! out. Under `Block` a caller renders its own events while the flush thread is behind,
//! so auditbuf's calling-thread count moves with scheduling (±15 % between runs); the
//! all-threads count moves ±2 %. Contenders (`INSTRUCTIONS_WHAT`):
//! - `floor`: a 300-byte copy into a slot from a free list, pushed on a bounded queue
//!   (crossbeam-channel), a consumer thread giving the slots back;
//! - `appender`: tracing-appender's `non_blocking` writer, lossless, handed the encoded bytes;
//! - `typed`: auditbuf `record` of the typed DataStorage event (`Block`, null sink);
//! - `typed_ts`: the same typed event with an `event_timestamp` of its own (checked to be
//!   RFC 3339 and within DataStorage's window), as callers that stamp their events give it;
//! - `json`: auditbuf `record_json` of the same event's 338 bytes;
//! - `json_1k`: auditbuf `record_json` of the 1 KiB event;
//! - `cadf`: auditbuf `record_cadf` of the full CADF event (1.2 KB, `id` and `eventTime`
//!   given), the one `cargo bench --bench cadf` times.
//!
//! Run alone it just makes the calls (`cargo bench -p auditbuf-benches --bench
//! instructions` does so, with 20 000 calls, as a smoke test).

use std::io::Write;
use std::time::Duration;

use auditbuf::{Config, NullSink, Overflow, Pipeline};
use crossbeam_channel::bounded;

#[path = "common/mod.rs"]
mod common;

const QUEUE: usize = 10_000;

fn main() {
    let calls: usize = std::env::var("INSTRUCTIONS_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let what = std::env::var("INSTRUCTIONS_WHAT").unwrap_or_default();
    let all = what.is_empty();
    for name in [
        "floor", "appender", "typed", "typed_ts", "json", "json_1k", "cadf",
    ] {
        if all || what == name {
            run(name, calls);
        }
    }
}

/// Warms `name` up (every slot made and reused, the clocks calibrated), then makes `calls`
/// calls on this thread.
fn run(name: &str, calls: usize) {
    let warm = 2 * QUEUE;
    match name {
        "floor" => floor(warm, calls),
        "appender" => appender(warm, calls),
        _ => auditbuf(name, warm, calls),
    }
    eprintln!("{name}: {calls} calls");
}

fn floor(warm: usize, calls: usize) {
    let event = common::typed_bytes();
    let (free_tx, free) = bounded::<Vec<u8>>(QUEUE);
    let (queue, rx) = bounded::<Vec<u8>>(QUEUE);
    for _ in 0..QUEUE {
        let _ = free_tx.send(Vec::with_capacity(512));
    }
    let consumer = std::thread::spawn(move || {
        for mut slot in rx {
            slot.clear();
            if free_tx.send(slot).is_err() {
                break;
            }
        }
    });
    for _ in 0..warm + calls {
        let Ok(mut slot) = free.recv() else { break };
        slot.extend_from_slice(std::hint::black_box(&event));
        let _ = queue.send(slot);
    }
    drop(queue);
    let _ = consumer.join();
}

fn appender(warm: usize, calls: usize) {
    let event = common::typed_bytes();
    let (mut writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUE)
        .finish(std::io::sink());
    for _ in 0..warm + calls {
        let _ = writer.write_all(std::hint::black_box(&event));
    }
    drop(writer);
    drop(guard);
}

fn auditbuf(name: &str, warm: usize, calls: usize) {
    // Slots sized for the CADF event, as in `benches/cadf.rs`; the others keep the default.
    let slot_bytes = if name == "cadf" { 2048 } else { 512 };
    let config = Config::default()
        .queue_capacity(QUEUE)
        .initial_slot_bytes(slot_bytes)
        .overflow(Overflow::Block {
            timeout: Duration::from_secs(10),
        });
    let pipeline = match Pipeline::new(config, NullSink) {
        Ok(pipeline) => pipeline,
        Err(e) => panic!("{name}: {e}"),
    };
    let typed = common::typed();
    let stamp = common::now_rfc3339();
    let typed_ts = auditbuf::AuditEvent {
        event_timestamp: Some(&stamp),
        ..common::typed()
    };
    let line = common::typed_bytes();
    let big = common::raw_1k();
    let cadf = common::cadf_full(
        Some("7c9e6679-7425-40de-944b-e07fc1f90ae7"),
        Some("2026-11-23T10:15:30.123456+00:00"),
    );
    for _ in 0..warm + calls {
        let recorded = match name {
            "typed" => pipeline.record(std::hint::black_box(&typed)),
            "typed_ts" => pipeline.record(std::hint::black_box(&typed_ts)),
            "json" => pipeline.record_json(std::hint::black_box(&line)),
            "cadf" => pipeline.record_cadf(std::hint::black_box(&cadf)),
            _ => pipeline.record_json(std::hint::black_box(&big)),
        };
        if let Err(e) = recorded {
            panic!("{name}: {e}");
        }
    }
    // Every event accounted for: recorded and delivered, none left.
    let report = pipeline.close(Duration::from_secs(10));
    let stats = &report.stats;
    assert_eq!(stats.recorded, (warm + calls) as u64, "{report:?}");
    assert_eq!(stats.delivered, stats.recorded, "{report:?}");
    assert_eq!(report.left, 0, "{report:?}");
}
