//! A producer thread: calls the target at the requested rate and times every call.
//!
//! Pacing is open-loop in 1 ms steps: each millisecond the producer makes the calls that fell
//! due, back to back, then sleeps; a producer that falls more than 100 ms behind (a `block`
//! run, a busy machine) gives up the missed calls instead of bursting to catch up, and the
//! shortfall is reported. Sleeping between bursts leaves the cores to the flush thread and
//! the receiver, as an application with other work would.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;

use crate::args::Rate;
use crate::target::{Refusal, Target};

/// Longest call the histograms hold exactly; longer ones are counted at this value.
const MAX_NANOS: u64 = 3_600_000_000_000;

/// Calls an unthrottled producer makes between looks at the stop flag.
const UNTHROTTLED_BURST: u64 = 1024;

/// How far behind its schedule a producer may fall before it drops the missed calls.
const MAX_LAG: Duration = Duration::from_millis(100);

/// What one producer publishes while it runs; each on its own cache line, written by its
/// producer alone.
#[derive(Debug, Default)]
pub struct Progress {
    /// Calls made.
    pub offered: CachePadded<AtomicU64>,
}

/// What a producer measured.
#[derive(Debug, Clone)]
pub struct Timings {
    /// Time of each call that took the event, in nanoseconds.
    pub accepted: Histogram<u64>,
    /// Time of each call that was turned away.
    pub refused: Histogram<u64>,
    /// Calls the schedule asked for that the producer could not make in time.
    pub missed: u64,
}

impl Timings {
    /// Empty histograms with the bench's bounds.
    pub fn new() -> Timings {
        Timings {
            accepted: histogram(),
            refused: histogram(),
            missed: 0,
        }
    }

    /// Adds another producer's timings.
    pub fn merge(&mut self, other: &Timings) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.accepted.add(&other.accepted);
        let _ = self.refused.add(&other.refused);
        self.missed += other.missed;
    }
}

fn histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, MAX_NANOS, 3) {
        Ok(h) => h,
        // The bounds are constants that hdrhistogram accepts; this cannot happen.
        Err(e) => unreachable!("histogram bounds: {e}"),
    }
}

/// Runs one producer until `stop` is set.
pub fn run<T: Target>(
    target: &T,
    index: usize,
    rate: Rate,
    stop: &AtomicBool,
    progress: &Progress,
) -> Timings {
    let mut payload = target.payload(index);
    let mut timings = Timings::new();
    let mut made = 0u64;
    // The schedule: `base_made + rate × (now - base_time)` calls are due.
    let (mut base_time, mut base_made) = (Instant::now(), 0u64);
    while !stop.load(Ordering::Relaxed) {
        let burst = match rate {
            Rate::Unthrottled => UNTHROTTLED_BURST,
            Rate::PerSecond(r) => {
                let now = Instant::now();
                let elapsed = now.duration_since(base_time).as_secs_f64();
                let due = base_made + (elapsed * r as f64) as u64;
                let lag_limit = (MAX_LAG.as_secs_f64() * r as f64) as u64;
                if due > made + lag_limit.max(1) {
                    timings.missed += due - made;
                    (base_time, base_made) = (now, made);
                    continue;
                }
                if due <= made {
                    // Ahead of schedule: sleep until the next call is due, at least a
                    // millisecond (shorter sleeps would spin), at most 50 ms (to see stop).
                    let next = (made + 1 - base_made) as f64 / r as f64;
                    let wait = Duration::from_secs_f64((next - elapsed).max(0.0))
                        .clamp(Duration::from_millis(1), Duration::from_millis(50));
                    std::thread::sleep(wait);
                    continue;
                }
                due - made
            }
        };
        for _ in 0..burst {
            // Looked at before every call (outside the timed part): a burst of calls that
            // each wait under `block` would otherwise run far past the duration.
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let started = Instant::now();
            let result = target.offer(&mut payload);
            let nanos = (started.elapsed().as_nanos() as u64).clamp(1, MAX_NANOS);
            match result {
                Ok(()) => timings.accepted.saturating_record(nanos),
                Err(Refusal::Full | Refusal::Timeout | Refusal::Other) => {
                    timings.refused.saturating_record(nanos)
                }
            }
            made += 1;
            progress.offered.store(made, Ordering::Relaxed);
        }
    }
    timings
}
