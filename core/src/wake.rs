//! How producers wake the flush thread, and when they need not; and when a producer turned
//! away yields its CPU to it ([`FlushWake::turned_away`]).
//!
//! The flush thread schedules itself from the arrival rate ([`flush`](crate::flush)), so a
//! producer wakes it only when a full batch is queued and it has not come. Waking a parked
//! thread is a `futex` call that costs the caller tens of microseconds on a virtual machine
//! whose other vCPU is idle: in a 3 s `auditbuf-bench --rate 25000 --sink-rate unlimited`
//! run (50 000 events/s, a batch every 10 ms) producers woke the flush thread for 297 of its
//! 300 batches, 269 of those calls took over 5 µs and they averaged 50 µs, a large part of
//! the run's slowest calls. So a producer also leaves the flush thread parked when its own
//! timer fires within [`WAKE_SLACK`], or fired less than [`LATE_SLACK`] ago, and the queue
//! is at most half full: a full batch then usually waits no more than that, and no caller
//! pays. The mark moves to where the queue passes half full, so a burst that fills the
//! queue meanwhile still wakes the thread. (Most of those wake-ups came from the flush
//! thread parking for its whole interval after a look between two bursts; see `next_look`.)

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use crossbeam_utils::CachePadded;

/// How soon the parked flush thread must be due for a producer to let it come by itself.
pub(crate) const WAKE_SLACK: Duration = Duration::from_millis(2);

/// How late the parked flush thread may be, past its timer, for a producer to still let it
/// come by itself: about the kernel's timer slack (50 µs) with room for a wake-up's latency.
/// Later than that, the thread is waiting for a CPU, and a wake-up gets it one sooner (the
/// scheduler favours a thread just woken): four producers on 2 vCPUs delivered ~15 % less
/// when producers left it alone up to `WAKE_SLACK` late.
pub(crate) const LATE_SLACK: Duration = Duration::from_micros(100);

/// How often a thread that is turned away yields its CPU (see [`FlushWake::turned_away`]).
/// What matters is the time between yields, so this follows the cost of a refusal. While a
/// refusal took ~40 ns (the event was not checked), one in 128 delivered as much as one in
/// 64 and kept the refusals' p99 at ~200 ns. Once a refusal checked the event first (~150
/// ns), one in 128 let four producers calling again at once on 2 vCPUs deliver 7 % less
/// (10.8–11.1 M in 5 s against 11.8–12.0 M), and one in 32 as much as before (11.7–12.2 M),
/// at a price: more than 1 % of refusals yield, so with four producers their p99 is the
/// yield's ~15 µs (docs/performance.md, "Overload from one and from four producers").
pub(crate) const CEDE_EVERY: u32 = 32;

thread_local! {
    /// Refusals on this thread, for [`CEDE_EVERY`].
    static TURNED_AWAY: Cell<u32> = const { Cell::new(0) };
}

/// `parked_until` while the flush thread is not parked: a wake-up is only a token it finds
/// on its next look, which costs the producer no system call.
const AWAKE: u64 = u64::MAX;

/// `next` while disarmed.
const DISARMED: u64 = u64::MAX;

pub(crate) struct FlushWake {
    /// The `recorded` count at which a producer must wake the flush thread: a full batch is
    /// queued and the thread has not come for it. The flush thread re-arms it after each
    /// round. Read by every `record`, so on a line of its own.
    next: CachePadded<AtomicU64>,
    /// When the parked flush thread's timer fires, in nanoseconds since `epoch`; [`AWAKE`]
    /// otherwise. Written at each park, so apart from `next`.
    parked_until: CachePadded<AtomicU64>,
    epoch: Instant,
    tx: Sender<()>,
}

impl FlushWake {
    /// Armed to wake the flush thread once `first` events are recorded.
    pub(crate) fn new(first: u64, tx: Sender<()>) -> Self {
        FlushWake {
            next: CachePadded::new(AtomicU64::new(first)),
            parked_until: CachePadded::new(AtomicU64::new(AWAKE)),
            epoch: Instant::now(),
            tx,
        }
    }

    /// Wakes the flush thread if `recorded` reached the mark it left; of the callers that
    /// reach the mark, one decides. `room` is how many more events the queue takes before
    /// it is over half full (0: it is already). If the thread is due within [`WAKE_SLACK`]
    /// (or was, less than [`LATE_SLACK`] ago) and the queue has room, it is left parked and the mark moves to where the queue
    /// passes half full (`u64::MAX`: no such point, as when events wait in a store).
    #[inline]
    pub(crate) fn if_due(&self, recorded: u64, room: impl FnOnce() -> u64) {
        self.if_due_at(recorded, room, Instant::now);
    }

    /// [`if_due`](Self::if_due) with the clock given (read only if the thread is parked).
    #[inline]
    fn if_due_at(&self, recorded: u64, room: impl FnOnce() -> u64, now: impl FnOnce() -> Instant) {
        let due = self.next.load(Ordering::Relaxed);
        if recorded < due
            || self
                .next
                .compare_exchange(due, DISARMED, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let room = room();
        if room == 0 || !self.comes_soon(now) {
            self.now();
        } else {
            // Unless the flush thread has re-armed the mark meanwhile.
            let later = recorded.saturating_add(room);
            let _ =
                self.next
                    .compare_exchange(DISARMED, later, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Wakes the flush thread (or leaves it a token, if it is not parked).
    pub(crate) fn now(&self) {
        let _ = self.tx.try_send(());
    }

    /// Whether the flush thread is parked with a timer that fires within [`WAKE_SLACK`], or
    /// fired less than [`LATE_SLACK`] ago. A thread whose timer just fired is on its way
    /// (the kernel's timer slack makes it up to 50 µs late), and a `futex` wake would make it
    /// little sooner, at the cost of a system call on the caller's thread: in a lossless run
    /// of 1 M `record_json` calls, one call in 700 paid 8 µs for it, the whole p99.9. A
    /// deadline past by more is not trusted: the thread waits for a CPU, or the value is
    /// from an earlier park.
    #[cold]
    fn comes_soon(&self, now: impl FnOnce() -> Instant) -> bool {
        let until = self.parked_until.load(Ordering::Relaxed);
        if until == AWAKE {
            return false;
        }
        let now = self.nanos(now());
        if now <= until {
            until - now <= WAKE_SLACK.as_nanos() as u64
        } else {
            now - until <= LATE_SLACK.as_nanos() as u64
        }
    }

    /// Asks producers to wake the flush thread once `recorded` reaches `at`.
    pub(crate) fn arm(&self, at: u64) {
        // Release: the producer that takes the mark sees the flush thread's round as done.
        self.next.store(at, Ordering::Release);
    }

    /// The flush thread is about to park until `until` (or a wake-up), or to pause until
    /// then before a retry (when it takes no wake-up: one sent meanwhile waits for its next
    /// look, and one skipped because `until` is near costs nothing, as the thread looks
    /// again when the pause ends).
    pub(crate) fn parking(&self, until: Instant) {
        let at = self.nanos(until).min(AWAKE - 1);
        self.parked_until.store(at, Ordering::Relaxed);
    }

    /// A caller was turned away (`Error::Full` under `DropNewest`): every [`CEDE_EVERY`]th
    /// time on a thread, while the flush thread is not parked (it is rendering, sending or
    /// waiting for an answer; not between rounds, nor in a retry's pause), the caller runs
    /// `cede` — `sched_yield`, except where a binding says otherwise ([`Park::cede`]); says
    /// whether it did.
    ///
    /// A full queue means callers are ahead of the flush thread, and callers that call
    /// again at once take the CPU it needs to catch up: the scheduler gives every runnable
    /// thread the same share, so on 2 vCPUs four such producers left the flush thread (and
    /// the receiver it waits for) about a fifth of the time. Yielding now and then hands
    /// that time back (see docs/performance.md, "Overload from one and from four producers": four
    /// producers delivered 2.6× more). A flush thread that is parked has no use for the
    /// CPU, so then nobody yields and a refusal stays cheap.
    ///
    /// [`Park::cede`]: crate::Park::cede
    #[inline]
    pub(crate) fn turned_away(&self, cede: impl FnOnce()) -> bool {
        let due = TURNED_AWAY
            .try_with(|n| {
                let k = n.get().wrapping_add(1);
                n.set(k);
                k % CEDE_EVERY == 0
            })
            .unwrap_or(false);
        let ceding = due && self.parked_until.load(Ordering::Relaxed) == AWAKE;
        if ceding {
            cede();
        }
        ceding
    }

    /// The flush thread is running again.
    pub(crate) fn unparked(&self) {
        self.parked_until.store(AWAKE, Ordering::Relaxed);
    }

    fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(AWAKE - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{Receiver, bounded};

    fn armed_at(n: u64) -> (FlushWake, Receiver<()>) {
        let (tx, rx) = bounded(1);
        (FlushWake::new(n, tx), rx)
    }

    /// Armed at 1, the flush thread parked with a timer due within the slack; the clock is
    /// `t0`, given to `if_due_at`, so a slow test thread cannot see the deadline pass.
    fn parked_due_soon() -> (FlushWake, Receiver<()>, Instant) {
        let (wake, rx) = armed_at(1);
        let t0 = Instant::now();
        wake.parking(t0 + WAKE_SLACK / 2);
        (wake, rx, t0)
    }

    #[test]
    fn a_producer_wakes_the_flush_thread_at_the_mark_once() {
        let (wake, rx) = armed_at(10);
        wake.if_due(9, || 100);
        assert!(rx.try_recv().is_err(), "woken before the mark");
        wake.if_due(10, || 100);
        assert!(rx.try_recv().is_ok());
        wake.if_due(11, || 100);
        assert!(rx.try_recv().is_err(), "woken twice for one mark");
        wake.arm(20);
        wake.if_due(25, || 100);
        assert!(rx.try_recv().is_ok(), "the re-armed mark did not wake");
    }

    #[test]
    fn a_flush_thread_due_within_the_slack_is_left_parked() {
        let (wake, rx, t0) = parked_due_soon();
        wake.if_due_at(1, || 5, || t0);
        assert!(
            rx.try_recv().is_err(),
            "woken though its timer fires within the slack"
        );
        // The mark moved to where the queue passes half full: nothing wakes before it.
        wake.if_due_at(5, || 1, || t0);
        assert!(
            rx.try_recv().is_err(),
            "woken before the queue was half full"
        );
        // A burst that fills the queue before the timer fires wakes the thread.
        wake.if_due_at(6, || 0, || t0);
        assert!(rx.try_recv().is_ok(), "a half-full queue did not wake it");
    }

    #[test]
    fn a_mark_the_flush_thread_set_meanwhile_is_kept() {
        let (wake, rx, t0) = parked_due_soon();
        wake.if_due_at(
            1,
            || {
                // The flush thread came and re-armed while this producer looked.
                wake.arm(50);
                5
            },
            || t0,
        );
        wake.if_due_at(6, || 0, || t0);
        assert!(
            rx.try_recv().is_err(),
            "the flush thread's mark was overwritten"
        );
        wake.unparked();
        wake.if_due_at(50, || 100, || t0);
        assert!(rx.try_recv().is_ok());
    }

    #[test]
    fn without_a_queue_to_fill_the_mark_waits_for_the_flush_thread() {
        let (wake, rx, t0) = parked_due_soon();
        wake.if_due_at(1, || u64::MAX, || t0);
        wake.if_due_at(u64::MAX - 1, || 0, || t0);
        assert!(rx.try_recv().is_err());
        wake.arm(2);
        wake.unparked();
        wake.if_due_at(2, || u64::MAX, || t0);
        assert!(rx.try_recv().is_ok(), "the re-armed mark did not wake");
    }

    #[test]
    fn a_flush_thread_whose_timer_just_fired_is_left_to_come() {
        let (wake, rx) = armed_at(1);
        let t0 = Instant::now();
        wake.parking(t0);
        wake.if_due_at(1, || 5, || t0 + LATE_SLACK);
        assert!(rx.try_recv().is_err(), "woken though its timer just fired");
        wake.if_due_at(6, || 0, || t0 + LATE_SLACK / 2);
        assert!(rx.try_recv().is_ok(), "a half-full queue did not wake it");
    }

    #[test]
    fn a_flush_thread_parked_for_longer_or_with_a_past_deadline_is_woken() {
        // (deadline, now) after the wake's epoch, with the clock given.
        for (until, now) in [
            (WAKE_SLACK * 50, Duration::ZERO),
            (Duration::ZERO, LATE_SLACK + Duration::from_micros(1)),
        ] {
            let (wake, rx) = armed_at(1);
            let t0 = Instant::now() + WAKE_SLACK;
            wake.parking(t0 + until);
            wake.if_due_at(1, || 100, || t0 + now);
            assert!(rx.try_recv().is_ok(), "not woken ({until:?}, {now:?})");
        }
    }

    #[test]
    fn a_running_flush_thread_gets_a_token() {
        let (wake, rx, t0) = parked_due_soon();
        wake.unparked();
        wake.if_due_at(1, || 100, || t0);
        assert!(rx.try_recv().is_ok());
    }

    #[test]
    fn a_half_full_queue_wakes_a_flush_thread_due_soon() {
        let (wake, rx, t0) = parked_due_soon();
        wake.if_due_at(1, || 0, || t0);
        assert!(rx.try_recv().is_ok());
    }

    #[test]
    fn a_caller_turned_away_often_yields_while_the_flush_thread_runs() {
        std::thread::spawn(|| {
            let (wake, _rx) = armed_at(1);
            let yields = std::cell::Cell::new(0);
            let ceded = |n: u32| {
                let before = yields.get();
                let said = (0..n)
                    .filter(|_| wake.turned_away(|| yields.set(yields.get() + 1)))
                    .count();
                assert_eq!(
                    yields.get() - before,
                    said,
                    "cede ran {} times",
                    yields.get()
                );
                said
            };
            assert_eq!(ceded(CEDE_EVERY * 3), 3);
            // Parked (a retry's pause): nobody yields.
            wake.parking(Instant::now() + Duration::from_secs(1));
            assert_eq!(ceded(CEDE_EVERY * 3), 0);
            wake.unparked();
            assert_eq!(ceded(CEDE_EVERY - 1), 0);
            assert_eq!(ceded(1), 1);
        })
        .join()
        .unwrap();
    }
}
