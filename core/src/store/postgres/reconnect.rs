//! When to try to connect again after an attempt failed.
//!
//! The store is used under its lock by the flush thread (every batch sent from memory looks
//! at it) and by `wal` callers, and an attempt to reach a server that went dark takes the
//! connect timeout (10 s by default). Tried again on every call — the housekeeping tick
//! alone comes every 100 ms — a server out of reach held the lock nearly all the time, and
//! a restarting one got tens of attempts a second from each replica. After a failure, calls
//! fail at once with the last attempt's error until the next attempt is due: 250 ms after
//! the first failure, doubling up to [`LONGEST`].

use std::time::{Duration, Instant};

/// The first wait after a failed attempt.
const FIRST: Duration = Duration::from_millis(250);

/// The longest wait between attempts.
pub(super) const LONGEST: Duration = Duration::from_secs(8);

/// Failed attempts in a row, and when the next one is due with why the last failed.
#[derive(Debug, Default)]
pub(super) struct Reconnect {
    failures: u32,
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

    /// An attempt at `now` failed with `why`.
    pub(super) fn failed(&mut self, now: Instant, why: &str) {
        self.failures = self.failures.saturating_add(1);
        let wait = FIRST
            .saturating_mul(1 << (self.failures - 1).min(16))
            .min(LONGEST);
        self.next = Some((now + wait, why.to_owned()));
    }

    /// An attempt succeeded: the next failure waits the shortest time again.
    pub(super) fn connected(&mut self) {
        *self = Reconnect::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_after_each_failure_up_to_the_longest_and_reset_on_success() {
        let mut r = Reconnect::default();
        let t0 = Instant::now();
        assert!(r.due(t0).is_ok());
        let mut expected = FIRST;
        for _ in 0..8 {
            r.failed(t0, "refused");
            let err = r.due(t0).unwrap_err();
            assert!(err.starts_with("refused (the next attempt in "), "{err}");
            assert!(r.due(t0 + expected - Duration::from_millis(1)).is_err());
            assert!(r.due(t0 + expected).is_ok());
            expected = (expected * 2).min(LONGEST);
        }
        assert_eq!(expected, LONGEST);
        r.connected();
        assert!(r.due(t0).is_ok());
        r.failed(t0, "refused");
        assert!(r.due(t0 + FIRST).is_ok());
    }
}
