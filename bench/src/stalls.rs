//! How often the machine itself stops a running thread: the floor under any tail latency
//! the run reports.
//!
//! A thread reads the clock in a loop before the run; every gap between two reads longer
//! than a few microseconds is time the thread did not get — an interrupt, the hypervisor,
//! another thread on its core. On the 2-vCPU development VM, idle, such a thread loses over
//! 10 µs several hundred times a second, so about 0.05 % of 1 µs calls contain such a stall
//! whatever the calls do, and more of the calls made while the run's other threads cause
//! interrupts: a p99.9 of about 10 µs there is largely the machine's.

use std::time::{Duration, Instant};

/// Gaps of at least this long count as stalls.
pub const STALL: Duration = Duration::from_micros(10);

/// What the probe saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stalls {
    /// Stalls of at least [`STALL`] per second of probing.
    pub per_second: f64,
    /// The longest gap seen.
    pub longest: Duration,
    /// How long the probe ran.
    pub span: Duration,
}

impl Stalls {
    /// Counts the stalls among `gaps`, seen over `span`.
    pub fn from_gaps(gaps: impl IntoIterator<Item = Duration>, span: Duration) -> Stalls {
        let (mut count, mut longest) = (0u64, Duration::ZERO);
        for gap in gaps {
            if gap >= STALL {
                count += 1;
            }
            longest = longest.max(gap);
        }
        Stalls {
            per_second: count as f64 / span.as_secs_f64().max(1e-9),
            longest,
            span,
        }
    }

    /// The share of calls lasting `call` in which a stall begins, if stalls come at random
    /// times (they do not quite: they follow interrupts, which the run itself causes).
    pub fn share_of_calls(&self, call: Duration) -> f64 {
        (self.per_second * call.as_secs_f64()).min(1.0)
    }
}

/// Spins on the clock for `span` and counts the gaps. Uses one core for that long.
pub fn probe(span: Duration) -> Stalls {
    let start = Instant::now();
    let mut previous = start;
    let mut gaps = Vec::new();
    loop {
        let now = Instant::now();
        let gap = now.duration_since(previous);
        // Only the long ones are kept: the rest are counted as the loop's own time.
        if gap >= STALL / 4 {
            gaps.push(gap);
        }
        previous = now;
        if now.duration_since(start) >= span {
            break;
        }
    }
    Stalls::from_gaps(gaps, previous.duration_since(start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_gaps_of_at_least_the_threshold_are_stalls() {
        let us = Duration::from_micros;
        let s = Stalls::from_gaps(
            [us(3), us(10), us(9), us(42), us(11)],
            Duration::from_secs(2),
        );
        assert_eq!(s.per_second, 1.5);
        assert_eq!(s.longest, us(42));
        // 1.5 stalls a second, a call of 10 µs: 1.5 in 100 000.
        assert!((s.share_of_calls(us(10)) - 1.5e-5).abs() < 1e-12);
    }

    #[test]
    fn the_probe_runs_for_its_span() {
        let s = probe(Duration::from_millis(20));
        assert!(s.span >= Duration::from_millis(20), "{s:?}");
        assert!(s.per_second >= 0.0 && s.longest <= s.span, "{s:?}");
    }
}
