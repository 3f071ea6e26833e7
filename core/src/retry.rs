//! When to send a failed batch again: exponential backoff with full jitter, bounded by
//! attempts and elapsed time, and the receiver's `Retry-After` when it gives one.

use std::time::{Duration, SystemTime};

/// How a batch that failed with a retryable answer (408, 429, 5xx, network) is retried.
///
/// The n-th retry waits a random time between zero and `min(cap, base × 2ⁿ⁻¹)` ("full
/// jitter"), or longer when the receiver asked for it with `Retry-After`. The budget is
/// time: by default a batch is retried for 60 s (long enough for a rolling restart of the
/// receiver), however many sends that takes; `max_attempts` can bound the sends too. When
/// the budget runs out the batch goes to the backing store, or counts as failed without
/// one. A `Retry-After` longer than what is left of the budget ends it at once.
///
/// ```
/// use auditbuf::RetryPolicy;
/// use std::time::Duration;
///
/// let policy = RetryPolicy::default()
///     .max_attempts(3)
///     .backoff(Duration::from_millis(50), Duration::from_secs(1));
/// assert_eq!(policy.attempts(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) max_elapsed: Duration,
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: u32::MAX,
            max_elapsed: Duration::from_secs(60),
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Sends of one batch, the first included, before it counts as failed. Defaults to
    /// unbounded (`u32::MAX`): only `max_elapsed` ends the retries.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// Time from a batch's first send after which it is not retried again (the next retry
    /// would start after it). Defaults to 60 s.
    pub fn max_elapsed(mut self, d: Duration) -> Self {
        self.max_elapsed = d;
        self
    }

    /// First backoff ceiling and the largest one. Defaults to 200 ms and 10 s; the pipeline
    /// refuses a base under 1 ms (`Error::Config` naming `retry.backoff_base_ms`), or above
    /// the cap.
    pub fn backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_cap = cap;
        self
    }

    /// The configured maximum number of sends.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// How long to wait before the retry that follows `failures` failed sends (≥ 1).
    pub(crate) fn delay(
        &self,
        failures: u32,
        retry_after: Option<Duration>,
        rng: &mut fastrand::Rng,
    ) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        let ceiling = self
            .backoff_base
            .saturating_mul(1 << exp)
            .min(self.backoff_cap);
        let jittered =
            Duration::from_nanos(rng.u64(0..=ceiling.as_nanos().min(u64::MAX as u128) as u64));
        match retry_after {
            Some(asked) => asked.max(jittered),
            None => jittered,
        }
    }
}

/// The longest `Retry-After` honoured. A longer one is taken for a broken server, not a
/// plan, and ignored (the normal backoff applies): it would stop every request for longer
/// than any maintenance window.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). `None`
/// for anything else, and for a delay over [`MAX_RETRY_AFTER`].
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(value.parse().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    (delay <= MAX_RETRY_AFTER).then_some(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_jittered_under_a_growing_capped_ceiling() {
        let p =
            RetryPolicy::default().backoff(Duration::from_millis(100), Duration::from_millis(800));
        let mut rng = fastrand::Rng::with_seed(7);
        for failures in 1..10u32 {
            let ceiling = Duration::from_millis((100u64 << (failures - 1).min(3)).min(800));
            let delays: Vec<_> = (0..200)
                .map(|_| p.delay(failures, None, &mut rng))
                .collect();
            assert!(delays.iter().all(|d| *d <= ceiling), "failures {failures}");
            // Full jitter spreads over the whole range.
            assert!(delays.iter().any(|d| *d < ceiling / 4));
            assert!(delays.iter().any(|d| *d > ceiling * 3 / 4));
        }
    }

    #[test]
    fn retry_after_is_a_floor() {
        let p = RetryPolicy::default();
        let mut rng = fastrand::Rng::with_seed(1);
        let d = p.delay(1, Some(Duration::from_secs(3)), &mut rng);
        assert!(d >= Duration::from_secs(3));
    }

    #[test]
    fn parses_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("86401", now), None);
        assert_eq!(parse_retry_after("99999999999999999999", now), None);
        assert_eq!(
            parse_retry_after("86400", now),
            Some(Duration::from_secs(86400))
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }
}
