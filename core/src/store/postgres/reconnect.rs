//! When to try to connect again after an attempt failed.
//!
//! The store is used under its lock by the flush thread (every batch sent from memory looks
//! at it) and by `wal` callers. An attempt on a server that refuses (restarting, logins
//! refused) fails in a millisecond; one on a host that went dark takes the connect timeout
//! (10 s by default) — tried again at every call (the housekeeping tick alone comes every
//! 100 ms), it held the lock nearly all the time. So after a failure calls fail at once
//! with its error for a while: [`FIRST`] after a quick failure, so a server back from a
//! restart is found within it (`wal` callers are refused meanwhile); after slow ones,
//! twice as long each time up to [`LONGEST`].

use std::time::{Duration, Instant};

/// The wait after a quick failure, and the first after a slow one.
const FIRST: Duration = Duration::from_millis(250);

/// The longest wait between attempts.
pub(super) const LONGEST: Duration = Duration::from_secs(8);

/// An attempt that took this long or more counts as slow.
const SLOW: Duration = Duration::from_secs(1);

/// Slow failed attempts in a row, and when the next attempt is due with why the last failed.
#[derive(Debug, Default)]
pub(super) struct Reconnect {
    slow_failures: u32,
    next: Option<(Instant, String)>,
}

impl Reconnect {
    /// `Ok` if an attempt may be made now; else the last attempt's error and the wait left.
    pub(super) fn due(&self, now: Instant) -> Result<(), String> {
        match &self.next {
            Some((at, why)) if now < *at => Err(format!(
                "{why} (the next attempt in {} ms)",
                (*at - now).as_millis().max(1)
            )),
            _ => Ok(()),
        }
    }

    /// An attempt that took `took` failed at `now` with `why`.
    pub(super) fn failed(&mut self, now: Instant, took: Duration, why: &str) {
        let wait = if took < SLOW {
            self.slow_failures = 0;
            FIRST
        } else {
            self.slow_failures = self.slow_failures.saturating_add(1);
            FIRST
                .saturating_mul(1 << self.slow_failures.min(16))
                .min(LONGEST)
        };
        self.next = Some((now + wait, why.to_owned()));
    }

    /// An attempt succeeded: nothing to wait for.
    pub(super) fn connected(&mut self) {
        *self = Reconnect::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_failures_wait_the_first_time_slow_ones_twice_as_long_each_up_to_the_longest() {
        let mut r = Reconnect::default();
        let t0 = Instant::now();
        assert!(r.due(t0).is_ok());
        for _ in 0..3 {
            r.failed(t0, Duration::from_millis(2), "refused");
            let err = r.due(t0).unwrap_err();
            assert!(err.starts_with("refused (the next attempt in "), "{err}");
            assert!(r.due(t0 + FIRST - Duration::from_millis(1)).is_err());
            assert!(r.due(t0 + FIRST).is_ok());
        }
        let mut expected = 2 * FIRST;
        for _ in 0..8 {
            r.failed(t0, Duration::from_secs(10), "timed out");
            assert!(r.due(t0 + expected - Duration::from_millis(1)).is_err());
            assert!(r.due(t0 + expected).is_ok());
            expected = (expected * 2).min(LONGEST);
        }
        assert_eq!(expected, LONGEST);
        // A quick failure after slow ones waits the first time again.
        r.failed(t0, Duration::from_millis(2), "refused");
        assert!(r.due(t0 + FIRST).is_ok());
        r.connected();
        assert!(r.due(t0).is_ok());
    }
}
