//! The caller's clock: a cycle-counter reading (`quanta`, the TSC where it is invariant,
//! else the monotonic clock) taken by `record` in a few nanoseconds, and turned into
//! wall-clock time by whoever renders the event (the flush thread; a caller under `Block`
//! while the flush thread is behind, or one that spills or writes ahead).
//!
//! Reading the wall clock costs `record` ~25–40 ns on the development machine (and formatting
//! it as RFC 3339 as much again); the counter costs a few. The conversion uses a pair
//! (counter, wall clock) read together and refreshed every second, so a
//! timestamp is off by at most the drift between the two clocks since the last pair —
//! NTP slews the wall clock by at most 500 ppm, 0.5 ms a second — and steps of the wall
//! clock (a manual `date -s`) are followed within a second. `core/tests/clock.rs` checks the
//! rendered timestamps stay within 1 ms of `SystemTime` over 10 s.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn clock() -> &'static quanta::Clock {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    // Calibrates the counter against the monotonic clock once per process.
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Now, in counter ticks: only differences of ticks mean anything.
#[inline]
pub(crate) fn ticks() -> u64 {
    clock().raw()
}

/// How close together a pair's two clocks must be read (see [`WallClock::now`]).
const PAIR_WITHIN: Duration = Duration::from_micros(20);

/// Turns ticks into time since the Unix epoch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WallClock {
    ticks: u64,
    unix: Duration,
}

impl Default for WallClock {
    fn default() -> Self {
        Self::now()
    }
}

impl WallClock {
    /// A pair read now.
    ///
    /// The two clocks are read between two counter readings, again if those lie more than
    /// [`PAIR_WITHIN`] apart: a thread descheduled between the reads would otherwise pair
    /// them milliseconds off (callers make pairs too, and they may outnumber the CPUs), and
    /// every timestamp rendered from the pair would carry that error for a second.
    pub(crate) fn now() -> Self {
        let c = clock();
        let read = || {
            let before = ticks();
            let unix = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let after = ticks();
            let pair = WallClock {
                ticks: before.wrapping_add(after.wrapping_sub(before) / 2),
                unix,
            };
            (c.delta_as_nanos(before, after), pair)
        };
        let within = u64::try_from(PAIR_WITHIN.as_nanos()).unwrap_or(u64::MAX);
        let mut best = read();
        for _ in 0..3 {
            if best.0 <= within {
                break;
            }
            let next = read();
            if next.0 < best.0 {
                best = next;
            }
        }
        best.1
    }

    /// How long ago this pair was read.
    pub(crate) fn age(&self) -> Duration {
        Duration::from_nanos(clock().delta_as_nanos(self.ticks, ticks()))
    }

    /// Whether the pair is old enough to read again: a second, so that a step of the wall
    /// clock shows within one.
    pub(crate) fn is_stale(&self) -> bool {
        self.age() >= Duration::from_secs(1)
    }

    /// The wall-clock time of `ticks`, since the Unix epoch.
    pub(crate) fn unix(&self, ticks: u64) -> Duration {
        let c = clock();
        if ticks >= self.ticks {
            self.unix + Duration::from_nanos(c.delta_as_nanos(self.ticks, ticks))
        } else {
            self.unix
                .saturating_sub(Duration::from_nanos(c.delta_as_nanos(ticks, self.ticks)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_to_the_wall_clock() {
        let wall = WallClock::now();
        std::thread::sleep(Duration::from_millis(20));
        let t = ticks();
        let expected = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let got = wall.unix(t);
        let off = got.abs_diff(expected);
        assert!(off < Duration::from_millis(2), "{off:?}");
        // Ticks from before the pair convert too.
        let later = WallClock::now();
        assert!(later.unix(t).abs_diff(got) < Duration::from_millis(2));
    }
}
