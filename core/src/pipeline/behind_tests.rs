//! Callers under `Block` render their own events while the flush thread is behind; callers
//! under the drop policies never do.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::bounded;

use super::Pipeline;
use crate::encode::capture::is_captured;
use crate::slots::Slot;
use crate::{AuditEvent, CallbackSink, Config, Error, Outcome, Overflow};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn a_caller_under_block_renders_its_event_while_the_flush_thread_is_behind() {
    fill_then_record_behind(
        Overflow::Block {
            timeout: Duration::from_millis(10),
        },
        true,
    );
}

#[test]
fn a_caller_under_drop_newest_leaves_rendering_to_the_flush_thread() {
    fill_then_record_behind(Overflow::DropNewest, false);
}

/// Holds the flush thread in the sink while the queue fills, lets it take one more batch
/// (with the queue over half full) and holds it again; records one event then, and checks
/// whether the caller rendered it, and that everything arrives as the same bytes.
fn fill_then_record_behind(overflow: Overflow, rendered_by_caller: bool) {
    // Room to render in, whatever the policy: only the policy decides.
    crate::encode::capture::ready_scratch();
    // The sink tells when a call starts and waits for the test's word (or its hanging up).
    let (entered_tx, entered) = bounded::<()>(16);
    let (open, gate) = bounded::<()>(16);
    let (seen_tx, seen) = crossbeam_channel::unbounded::<Vec<u8>>();
    let sink = CallbackSink::new(move |batch: &[&[u8]]| {
        let _ = entered_tx.send(());
        let _ = gate.recv_timeout(WAIT);
        for event in batch {
            let _ = seen_tx.send(event.to_vec());
        }
        Outcome::Delivered
    });
    let config = Config::default()
        .queue_capacity(16)
        .batch_max_events(8)
        .overflow(overflow)
        .flush_interval(Duration::from_millis(1));
    let p = Pipeline::new(config, sink).unwrap();
    // A given timestamp makes the JSON independent of when and where it is rendered.
    let event = |id| AuditEvent {
        event_timestamp: Some("2026-11-30T10:15:30.123Z"),
        event_data: crate::EventData::Json(r#"{"k":"ü \"q\""}"#),
        ..AuditEvent::new("a.b", "cat", "act", "success", id)
    };

    // The flush thread holds the first event in the sink; the queue fills behind it.
    p.record(&event("first")).unwrap();
    entered.recv_timeout(WAIT).unwrap();
    let mut queued = 0;
    loop {
        match p.record(&event("same")) {
            Ok(()) => queued += 1,
            Err(Error::Timeout(_) | Error::Full) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(queued, 15);
    assert!(!p.shared.behind.load(Ordering::Relaxed));

    // Let it go: it takes the next batch from a queue over half full, and is held again.
    open.send(()).unwrap();
    entered.recv_timeout(WAIT).unwrap();
    assert!(p.shared.behind.load(Ordering::Relaxed));

    // The slot the first batch gave back takes the event: rendered right here or not.
    p.record(&event("same")).unwrap();
    let mut lane = 0;
    let slots: Vec<Slot> = std::iter::from_fn(|| p.shared.queue.pop(&mut lane)).collect();
    assert_eq!(slots.len(), 8);
    assert!(slots[..7].iter().all(|s| is_captured(s)));
    assert_eq!(!is_captured(&slots[7]), rendered_by_caller);
    for slot in slots {
        p.shared
            .queue
            .push(crate::lanes::this_thread(), slot)
            .unwrap();
    }

    drop(open);
    let report = p.close(WAIT);
    assert!(report.completed);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    assert_eq!(report.stats.delivered, 17, "{:?}", report.stats);
    let turned_away = report.stats.rejected.block_timeout + report.stats.rejected.queue_full;
    assert_eq!(turned_away, 1, "{:?}", report.stats);
    // The caller wrote the bytes the flush thread writes for the same event.
    let lines: Vec<Vec<u8>> = seen.try_iter().collect();
    assert_eq!(lines.len(), 17);
    assert!(lines[1..].iter().all(|l| *l == lines[1]));
    let json: serde_json::Value = serde_json::from_slice(&lines[16]).unwrap();
    assert_eq!(json["correlation_id"], "same");
    assert_eq!(json["event_data"]["k"], "ü \"q\"");
}
