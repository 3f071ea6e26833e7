//! Starting a pipeline: the configuration checked against the sink and the store, the
//! shared state and the counts a store found at open, and the flush thread.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::{bounded, unbounded};
use parking_lot::Mutex;

use super::{Pipeline, own_thread};
use crate::config::{Durability, Overflow};
use crate::dead_letter::DeadLetters;
use crate::fork;
use crate::group_commit::GroupCommit;
use crate::lanes::{MAX_LANES, Queue, lanes_for};
use crate::shared::Shared;
use crate::slots::{SlotPool, bundle_for};
use crate::stats::FlushCounts;
use crate::worker::{Inbox, STORE_TICK, Worker};
use crate::{Config, Error, Limits, Sink, Store};

/// Bytes beyond their initial size that free slots may keep between them: a burst of large
/// events leaves at most this much behind (besides `initial_slot_bytes` per slot, which an
/// idle pipeline frees too).
const RETAINED_TOTAL_BYTES: usize = 16 * 1024 * 1024;

impl Pipeline {
    pub(super) fn build(
        config: Config,
        sink: Box<dyn Sink>,
        store: Option<Box<dyn Store>>,
    ) -> Result<Self, Error> {
        config.validate()?;
        if store.is_none() && config.overflow == Overflow::Spill {
            return Err(Error::config("overflow", "\"spill\" needs a backing store"));
        }
        let wal = config.durability == Durability::Wal;
        if wal && !store.as_ref().is_some_and(|s| s.is_durable()) {
            return Err(Error::config(
                "durability",
                format!(
                    "\"wal\" needs a durable backing store ({} in this build)",
                    crate::store::config::durable_types()
                ),
            ));
        }
        let sink_limits = sink.limits();
        let limits = Limits {
            max_events: config
                .batch_max_events
                .min(sink_limits.max_events)
                .min(config.queue_capacity)
                .max(1),
            max_bytes: config.batch_max_bytes.min(sink_limits.max_bytes),
        };
        if config.max_event_bytes + 1 > limits.max_bytes {
            return Err(Error::config(
                "max_event_bytes",
                format!(
                    "{} does not fit the sink's batch limit of {} bytes",
                    config.max_event_bytes, limits.max_bytes
                ),
            ));
        }
        if let Some(store) = &store
            && config.max_event_bytes > store.max_record_bytes()
        {
            return Err(Error::config(
                "max_event_bytes",
                format!(
                    "{} is over the largest event the {} store can keep ({} bytes)",
                    config.max_event_bytes,
                    store.kind(),
                    store.max_record_bytes()
                ),
            ));
        }
        let lanes = lanes_for(config.queue_capacity).min(config.max_lanes);
        let (wake_tx, wake_rx) = bounded(1);
        let (commands_tx, commands_rx) = unbounded();
        let (finished_tx, finished_rx) = bounded::<()>(0);
        let found = store.as_ref().map_or(0, |s| s.size().events);
        let shared_store = store.as_ref().is_some_and(|s| s.is_shared());
        let first_wake = limits.max_events.min(config.queue_capacity / 2).max(1) as u64;
        // Events lost to damage found when the store was opened were in it (recovered) and
        // are gone (dropped.damaged): counted on both sides, the accounting balances.
        let recovery = store.as_ref().and_then(|s| s.recovery());
        let lost = recovery.as_ref().map_or(0, |r| r.lost_events);
        if found > 0 {
            let events = if found == 1 { "event" } else { "events" };
            log::info!(
                "the backing store holds {found} {events} from an earlier run; sending them first"
            );
        }
        if lost > 0 {
            log::warn!(
                "{lost} events in the backing store were lost to damage found when it was opened"
            );
        }
        let shared = Arc::new(Shared::new(
            SlotPool::new(
                config.queue_capacity,
                config.initial_slot_bytes,
                config.retained_slot_bytes,
                RETAINED_TOTAL_BYTES,
                bundle_for(config.queue_capacity),
            ),
            Queue::new(config.queue_capacity, lanes),
            DeadLetters::new(config.dead_letter_capacity),
            first_wake,
            wake_tx,
            store,
        ));
        shared
            .counters
            .shared_store
            .store(shared_store, Ordering::Relaxed);
        let counts = FlushCounts {
            found: found + lost,
            stored_out: lost,
            dropped_damaged: lost,
            ..FlushCounts::default()
        };
        shared.counters.publish(&counts);
        if lost > 0 {
            // Also for callers who look at `last_error` rather than logs or counters.
            shared.note_error(format!(
                "{lost} events in the backing store were lost to damage found when it was \
                 opened (counted in recovered and dropped.damaged; damaged files are kept \
                 aside, e.g. *.seg.corrupt)"
            ));
        }
        let inbox = Inbox {
            wake: wake_rx,
            commands: commands_rx,
        };
        let worker = Worker::new(Arc::clone(&shared), inbox, sink, &config, limits, counts);
        let number = own_thread::next_number();
        let thread = std::thread::Builder::new()
            .name("auditbuf-flush".to_owned())
            .spawn(move || {
                let _finished = finished_tx;
                own_thread::enter(number);
                worker.run();
            })
            .map_err(Error::Spawn)?;
        if shared_store {
            let shared = Arc::downgrade(&shared);
            std::thread::Builder::new()
                .name("auditbuf-lease".to_owned())
                .spawn(move || keep_leases(&shared))
                .map_err(Error::Spawn)?;
        }
        Ok(Pipeline {
            shared,
            commands: commands_tx,
            finished: finished_rx,
            thread: Mutex::new(Some(thread)),
            group: wal.then(GroupCommit::default),
            overflow: config.overflow,
            max_event_bytes: config.max_event_bytes,
            wake_check: wake_check(config.queue_capacity, limits.max_events),
            initial_slot_bytes: config.initial_slot_bytes,
            move_chunk: limits.max_events,
            drop_timeout: config.drop_timeout,
            rules: config.event_rules(),
            service: config.service,
            born: (fork::generation(), std::process::id()),
            recovery,
            number,
        })
    }
}

/// See `Pipeline::wake_check`: up to every 16th event on a lane (the count of recorded
/// events has [`MAX_LANES`] lanes, whatever the queue's), so that all lanes together pass
/// the mark by at most 1/64 of the queue and half a batch of `batch` events.
fn wake_check(capacity: usize, batch: usize) -> u64 {
    let every = (capacity / (64 * MAX_LANES))
        .min(batch / (2 * MAX_LANES))
        .clamp(1, 16);
    (1u64 << every.ilog2()) - 1
}

/// Ticks a shared store (renewing the lease of the rows it holds) every `STORE_TICK` while
/// the store is open, whatever the flush thread does: from the flush thread alone, a sink
/// call longer than the lease (a receiver answering in 12 s under a 10 s lease) let another
/// replica claim the same rows and send them too. Skips a tick while the store's lock is
/// held (by the flush thread or a `wal` caller, neither in a sink call then). Ends with the
/// store, or the pipeline.
fn keep_leases(shared: &std::sync::Weak<Shared>) {
    loop {
        std::thread::sleep(STORE_TICK);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.stopped() {
            // `close` returned with the sink still busy and handed its rows back.
            return;
        }
        let Some(mut store) = shared.lock_store_until(std::time::Instant::now()) else {
            continue;
        };
        if store.is_closed() {
            return;
        }
        if let Err(e) = store.tick() {
            drop(store);
            shared.note_error(format!("backing store housekeeping: {e}"));
        }
    }
}
