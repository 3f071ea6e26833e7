//! Settling what was recorded: `flush` waits for it, `close` (and `Drop`) stops taking
//! events and hands what is left to the store, always by the caller's deadline.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, bounded};

use super::{DROP_JOIN_GRACE, Pipeline};
use crate::Report;
use crate::backlog::move_into_store;
use crate::worker::{Command, deadline_after};

impl Pipeline {
    /// Sends everything recorded so far, and returns when it is delivered (or otherwise
    /// settled) or when `timeout` has passed, whichever comes first. With a backing store
    /// it also drains the store as far as the sink allows. While sending is on hold (a
    /// back-off, the receiver's `Retry-After`) it waits for that to end, within `timeout`.
    /// Called by the pipeline's own sink (on its flush thread), it returns at once with
    /// `completed` false.
    pub fn flush(&self, timeout: Duration) -> Report {
        if self.forked(true) {
            return self.report(false);
        }
        if self.on_own_flush_thread() {
            // A sink flushing its own pipeline: what it waits for cannot happen until it
            // returns.
            return self.report(false);
        }
        let deadline = deadline_after(timeout);
        let (done_tx, done_rx) = bounded::<()>(0);
        if self.commands.send(Command::Flush(done_tx)).is_err() {
            return self.report(self.is_finished());
        }
        let completed = matches!(
            done_rx.recv_deadline(deadline),
            Err(RecvTimeoutError::Disconnected)
        );
        self.report(completed)
    }

    /// Stops taking events, sends what it can by `timeout`, keeps the rest in the backing
    /// store (or, without one, drops it as `dropped.shutdown`) and stops the flush thread.
    /// A retry that the back-off would make after the deadline is not waited for when a
    /// durable store keeps the events; without one (no store, or the memory store) it is
    /// made just before the deadline instead, once, so a receiver back by then still gets
    /// them — unless the receiver's `Retry-After` reaches past the deadline.
    /// Returns by the deadline even if the sink hangs — then, with a durable store, this call
    /// moves the queue into it itself, which takes as long as writing it does — and from
    /// then on the sink is never called again (a call still running then may finish;
    /// `completed` is false).
    /// Calling it again waits again. Calls from several threads at once share the earliest
    /// deadline: the first to return makes the promise above for all of them, so a later
    /// deadline cannot send what an earlier one left (it is counted then as the earlier
    /// close left it). Called by the pipeline's own sink (on its flush
    /// thread), it returns at once with `completed` false: the flush thread shuts down by
    /// the deadline once the sink returns.
    pub fn close(&self, timeout: Duration) -> Report {
        if self.forked(true) {
            return self.report(false);
        }
        let deadline = deadline_after(timeout);
        // The flush thread stops sending a little early, to keep what is left in the store
        // before this call reports.
        let reserve = (timeout / 10).min(Duration::from_millis(250));
        if !self.shared.closed.swap(true, Ordering::SeqCst) {
            // Callers waiting for a slot under `Block` get `Error::Closed` now, not when
            // their timeout runs out.
            self.shared.pool.wake_all_waiters();
            let _ = self.commands.send(Command::Close(deadline_after(
                timeout.saturating_sub(reserve),
            )));
        }
        if self.on_own_flush_thread() {
            // A sink closing its own pipeline: the flush thread shuts down by the deadline
            // once the sink returns; nothing may wait for it here.
            return self.report(false);
        }
        let finished = |by| {
            matches!(
                self.finished.recv_deadline(by),
                Err(RecvTimeoutError::Disconnected)
            )
        };
        let completed = if self.shared.store.is_some() {
            // Still running half the reserve before the deadline, the flush thread is in the
            // sink (a receiver that hangs) and cannot keep the queue in the store in time:
            // this thread does, or it would be lost when the process exits.
            finished(deadline_after(timeout.saturating_sub(reserve / 2))) || {
                self.keep_queue_in_store(deadline);
                finished(deadline)
            }
        } else {
            finished(deadline)
        };
        if completed {
            if let Some(thread) = self.thread.lock().take() {
                let _ = thread.join();
            }
        } else {
            if self.shared.stop_sending() {
                self.shared.note_error(
                    "close returned while the sink was still handling a batch; no further \
                     batch will be sent"
                        .to_owned(),
                );
            }
            self.hand_back_claims();
        }
        self.report(completed)
    }

    /// Moves what the queue holds into a durable store, from the caller's thread, and syncs
    /// it; nothing if the store's lock is not had by `deadline` (the flush thread in a slow
    /// store call). Once begun, the move and the sync take what they take: up to the whole
    /// queue's writing past the deadline. The batch the sink still has, if the sink then
    /// fails it, is stored after these events, out of their order.
    fn keep_queue_in_store(&self, deadline: std::time::Instant) {
        let shared = &*self.shared;
        if shared.queue.len() + shared.backlog.len() == 0 {
            return;
        }
        let Some(mut store) = shared.lock_store_until(deadline) else {
            return;
        };
        // A store that does not outlive the process would keep nothing.
        if store.is_closed() || !store.is_durable() {
            return;
        }
        let kept =
            move_into_store(shared, &mut **store, self.move_chunk).and_then(|_| store.sync());
        if let Err(e) = kept {
            shared.note_error(format!(
                "close: could not keep the queued events in the backing store: {e}"
            ));
        }
    }

    /// A shared store's events that the sink still has, handed back for the other
    /// replicas: this process may exit before the sink call ends, and they would wait out
    /// their lease, counted as the claim of a replica that died — after `max_claims` such
    /// closes during an outage, dead-lettered. Should the sink deliver them after all, they
    /// are sent twice (at least once), never lost. Nothing if the store's lock is held (the
    /// flush thread in a store call, not the sink).
    fn hand_back_claims(&self) {
        let shared = &*self.shared;
        let Some(mut store) = shared.lock_store_until(std::time::Instant::now()) else {
            return;
        };
        if store.is_closed() || !store.is_shared() {
            return;
        }
        if let Err(e) = store.hand_back() {
            shared.note_error(format!(
                "close: could not hand the events the sink still has back to the store: {e}"
            ));
        }
    }

    pub(super) fn is_finished(&self) -> bool {
        matches!(
            self.finished.try_recv(),
            Err(crossbeam_channel::TryRecvError::Disconnected)
        )
    }

    pub(super) fn report(&self, completed: bool) -> Report {
        Report::new(self.stats(), completed)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if self.forked(true) {
            // The flush thread does not exist here and the store is the parent's: touch
            // nothing. Joining or detaching the parent's thread handle is not possible in a
            // child, so it is forgotten.
            if let Some(thread) = self.thread.get_mut().take() {
                std::mem::forget(thread);
            }
            return;
        }
        let report = self.close(self.drop_timeout);
        if self.on_own_flush_thread() {
            // The last handle dropped by the sink: the flush thread goes on after the sink
            // returns, shuts down by the deadline and exits; it cannot join itself.
            drop(self.thread.get_mut().take());
            return;
        }
        if !report.completed
            && matches!(
                self.finished.recv_timeout(DROP_JOIN_GRACE),
                Err(RecvTimeoutError::Disconnected)
            )
            && let Some(thread) = self.thread.get_mut().take()
        {
            let _ = thread.join();
        }
    }
}
