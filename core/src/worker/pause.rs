//! Waiting while still taking commands: the handle's `Flush` and `Close` taken as they come
//! (`on_command`, `closing`), and the pauses of retries and back-offs, which keep the store's
//! housekeeping going and end at `close`'s deadline.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use super::{Command, STORE_TICK, Worker, deadline_after};
use crate::slots::LANE_IDLE_AFTER;

/// How long before `close`'s deadline (less its reserve) a pause that would outlast it ends
/// instead, when no durable store would keep what is left: time enough to start one last
/// send on a busy host, where a thread may wake tens of milliseconds late.
pub(crate) const LAST_TRY_MARGIN: Duration = Duration::from_millis(50);

impl Worker {
    /// Takes what `Flush`/`Close` commands wait, also while busy: `close` sets the shared
    /// flag before it sends its command, so the command is waiting to be read.
    pub(crate) fn closing(&mut self) -> bool {
        if self.close_by.is_none() && self.shared.closed.load(Ordering::Relaxed) {
            while let Ok(command) = self.commands.try_recv() {
                self.on_command(Some(command));
            }
        }
        self.close_by.is_some()
    }

    /// While closing, syncs the backing store when the flush thread would otherwise sit
    /// idle (backing off), so that the sync that closes the store, in the reserve `close`
    /// keeps at the end of its deadline, has little or nothing left to do: under heavy disk
    /// writeback an `fdatasync` of what an outage had spilled took longer than the reserve,
    /// and `close` reported not completed. Nothing to sync costs a look at a flag.
    fn sync_while_closing(&mut self) {
        if let Some(Err(e)) = self.shared.with_store(|store| store.sync()) {
            self.note_error(format!("syncing the backing store while closing: {e}"));
        }
    }

    /// Whether a durable store would keep what `close` leaves: not one that `Spill` found
    /// refusing (batches go from memory meanwhile).
    fn store_keeps_at_close(&self) -> bool {
        self.keeps_at_close && !(self.spill && self.shared.direct())
    }

    pub(crate) fn past_close_deadline(&mut self) -> bool {
        self.shared.stopped()
            || (self.closing() && self.close_by.is_some_and(|d| Instant::now() >= d))
    }

    pub(crate) fn on_command(&mut self, command: Option<Command>) {
        match command {
            Some(Command::Flush(waiter)) => self.flush_waiters.push(waiter),
            Some(Command::Close(deadline)) => {
                self.close_by = Some(self.close_by.map_or(deadline, |d| d.min(deadline)));
            }
            // The handle is gone without closing (leaked or torn down): close on our own.
            None => {
                if self.close_by.is_none() {
                    self.close_by = Some(deadline_after(self.orphan_timeout));
                }
            }
        }
    }

    /// Waits `delay` before a retry while still taking commands (and keeping the store's
    /// housekeeping going); false if `close`'s deadline ended the wait.
    pub(crate) fn pause(&mut self, delay: Duration) -> bool {
        self.pause_until(deadline_after(delay))
    }

    /// Like [`pause`](Self::pause), until `until`. When `close`'s deadline comes first, gives
    /// up at once if a durable backing store will keep what is left (`close` then returns
    /// sooner); without one (or with the memory store, which dies with the process), what
    /// is left is lost at the deadline, so the pause ends just before it instead
    /// ([`LAST_TRY_MARGIN`]), for one last try — once: a pause that cannot end before the
    /// deadline gives up, and so does one under a hold past the deadline (the receiver's
    /// `Retry-After` is honoured to the end). It also gives up, while a batch from memory
    /// is retried, once the queue behind it fills up to half with a store to take them
    /// (`pressure` is set then).
    pub(crate) fn pause_until(&mut self, until: Instant) -> bool {
        // Parked as between rounds: callers turned away meanwhile do not yield their CPU to
        // this thread, which has no use for it (`FlushWake::turned_away`).
        self.shared.wake.parking(until);
        let resumed = self.sit_out(until);
        self.shared.wake.unparked();
        resumed
    }

    fn sit_out(&mut self, mut until: Instant) -> bool {
        loop {
            self.maybe_tick_store();
            if self.relieve_queue() {
                return false;
            }
            // Lanes whose callers stopped are found idle during an outage too.
            self.note_idle_lanes();
            // Before the deadline checks: a slow sync must not make this wait past them.
            if self.close_by.is_some() {
                self.sync_while_closing();
            }
            if self.past_close_deadline() {
                return false;
            }
            if let Some(by) = self.close_by
                && until >= by
            {
                match by.checked_sub(LAST_TRY_MARGIN) {
                    // Not against the receiver's `Retry-After` (a hold past the deadline).
                    Some(last_try)
                        if !self.store_keeps_at_close()
                            && Instant::now() < last_try
                            && self.backing_off().is_none_or(|hold| hold < by) =>
                    {
                        until = last_try;
                    }
                    _ => return false,
                }
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            let mut wait = (until - now).min(LANE_IDLE_AFTER);
            if self.shared.store.is_some() || self.shared.closed.load(Ordering::Relaxed) {
                // Look at the store's housekeeping and at `close` now and then.
                wait = wait.min(STORE_TICK);
            }
            match self.commands.recv_timeout(wait) {
                Ok(command) => self.on_command(Some(command)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.on_command(None);
                    std::thread::sleep(wait);
                }
            }
        }
    }
}
