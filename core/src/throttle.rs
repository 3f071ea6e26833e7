//! Rate-limited log lines: at most one per interval for a kind of trouble, carrying the
//! count since the last one, so a failing receiver or an overloaded queue is visible in
//! the logs without flooding them.

use std::time::{Duration, Instant};

/// How often one kind of trouble is logged at most.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub(crate) struct Throttle {
    last: Option<Instant>,
    pending: u64,
}

impl Throttle {
    /// Notes `n` more occurrences; returns the count to log if a line is due now.
    pub(crate) fn note(&mut self, n: u64) -> Option<u64> {
        self.pending += n;
        self.due()
    }

    /// The count to log if occurrences are pending and a line is due now.
    pub(crate) fn due(&mut self) -> Option<u64> {
        if self.pending == 0 || self.last.is_some_and(|at| at.elapsed() < LOG_EVERY) {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_since_the_last() {
        let mut t = Throttle::default();
        assert_eq!(t.note(1), Some(1));
        assert_eq!(t.note(5), None);
        assert_eq!(t.note(2), None);
        t.last = Some(Instant::now() - LOG_EVERY);
        assert_eq!(t.due(), Some(7));
        assert_eq!(t.due(), None);
    }
}
