//! The range of every setting, checked when a configuration is read and again when a
//! pipeline starts: no value may make `record` abort (a slot of a terabyte) or the flush
//! thread misbehave (a batch of no events).

use std::time::Duration;

use super::{Config, in_range};
use crate::Error;
use crate::encode::rules::MAX_CATEGORY;

/// Most events the queue may hold: 16 Mi (each holds a slot).
pub(crate) const MAX_QUEUE_CAPACITY: usize = 1 << 24;
/// Largest `max_event_bytes`: 64 MiB. A slot never needs more than the largest event.
pub(crate) const MAX_EVENT_BYTES: usize = 64 << 20;
/// Largest `batch_max_events`.
pub(crate) const MAX_BATCH_EVENTS: usize = 100_000;
/// Largest `batch_max_bytes`: 256 MiB.
pub(crate) const MAX_BATCH_BYTES: usize = 256 << 20;
/// Largest `dead_letter_capacity`.
pub(crate) const MAX_DEAD_LETTER_CAPACITY: usize = 100_000;
/// Largest `initial_slot_bytes`: 1 MiB (every slot is created with it).
pub(crate) const MAX_INITIAL_SLOT_BYTES: usize = 1 << 20;
/// Largest `retry.max_attempts`: any count (the default, `u32::MAX`, means no bound but
/// the retry policy's time).
pub(crate) const MAX_RETRY_ATTEMPTS: u32 = u32::MAX;
/// Most entries of `categories`.
pub(crate) const MAX_CATEGORIES: usize = 256;
/// Longest `service` name, in bytes.
pub(crate) const MAX_SERVICE_BYTES: usize = 255;
/// Most memory a full queue may hold: 64 GiB, `queue_capacity` slots of up to
/// `max(max_event_bytes, initial_slot_bytes)` each. More cannot work anywhere this runs,
/// and would fail as an aborting allocation inside `record` once the queue fills.
pub(crate) const MAX_QUEUE_BYTES: u128 = 64 << 30;

/// The largest value of a pipeline setting bounded below its type's range, by its field
/// name (`validate` checks the same bounds): an error about a number too large for the
/// type names the field's own limit with it.
pub(crate) fn largest(field: &str) -> Option<u128> {
    let n = |v: usize| Some(v as u128);
    match field {
        "queue_capacity" => n(MAX_QUEUE_CAPACITY),
        "max_event_bytes" | "retained_slot_bytes" => n(MAX_EVENT_BYTES),
        "batch_max_events" => n(MAX_BATCH_EVENTS),
        "batch_max_bytes" => n(MAX_BATCH_BYTES),
        "dead_letter_capacity" => n(MAX_DEAD_LETTER_CAPACITY),
        "initial_slot_bytes" => n(MAX_INITIAL_SLOT_BYTES),
        "retry.max_attempts" => Some(u128::from(MAX_RETRY_ATTEMPTS)),
        _ => None,
    }
}

impl Config {
    /// Checks every value against its documented range, and that they work together.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let service = self.service.as_str();
        if service.is_empty() || service.len() > MAX_SERVICE_BYTES {
            return Err(Error::config(
                "service",
                format!(
                    "is {} bytes long, must be 1 to {MAX_SERVICE_BYTES}",
                    service.len()
                ),
            ));
        }
        if service.chars().any(char::is_control) {
            return Err(Error::config(
                "service",
                "must not contain control characters",
            ));
        }
        let n = |v: usize| v as u128;
        in_range(
            "queue_capacity",
            n(self.queue_capacity),
            1,
            n(MAX_QUEUE_CAPACITY),
        )?;
        if !matches!(self.max_lanes, 1 | 2 | 4 | 8) {
            return Err(Error::config(
                "max_lanes",
                format!("is {}, must be 1, 2, 4 or 8", self.max_lanes),
            ));
        }
        in_range(
            "max_event_bytes",
            n(self.max_event_bytes),
            64,
            n(MAX_EVENT_BYTES),
        )?;
        in_range(
            "batch_max_events",
            n(self.batch_max_events),
            1,
            n(MAX_BATCH_EVENTS),
        )?;
        in_range(
            "batch_max_bytes",
            n(self.batch_max_bytes),
            1,
            n(MAX_BATCH_BYTES),
        )?;
        in_range(
            "flush_interval_ms",
            self.flush_interval.as_millis(),
            1,
            u128::MAX,
        )?;
        in_range(
            "retry.max_attempts",
            u128::from(self.retry.max_attempts),
            1,
            u128::from(MAX_RETRY_ATTEMPTS),
        )?;
        in_range(
            "dead_letter_capacity",
            n(self.dead_letter_capacity),
            0,
            n(MAX_DEAD_LETTER_CAPACITY),
        )?;
        in_range(
            "initial_slot_bytes",
            n(self.initial_slot_bytes),
            0,
            n(MAX_INITIAL_SLOT_BYTES),
        )?;
        in_range(
            "retained_slot_bytes",
            n(self.retained_slot_bytes),
            0,
            n(MAX_EVENT_BYTES),
        )?;
        let slot = self.max_event_bytes.max(self.initial_slot_bytes) as u128;
        let queue_bytes = self.queue_capacity as u128 * slot;
        if queue_bytes > MAX_QUEUE_BYTES {
            return Err(Error::config(
                "queue_capacity",
                format!(
                    "{} events of up to {slot} bytes (max_event_bytes, or initial_slot_bytes \
                     if larger) may take {queue_bytes} bytes, more than the {MAX_QUEUE_BYTES} \
                     a queue may hold; lower one of them",
                    self.queue_capacity
                ),
            ));
        }
        if self.max_event_bytes >= self.batch_max_bytes {
            return Err(Error::config(
                "max_event_bytes",
                format!(
                    "{} must be below batch_max_bytes ({}) so one event always fits a batch",
                    self.max_event_bytes, self.batch_max_bytes
                ),
            ));
        }
        if self.retry.backoff_base < Duration::from_millis(1) {
            // Each back-off is at most the base doubled per failure: from zero, no failure
            // ever waits, and a receiver that is down, or a store that refuses, is asked
            // again at full speed.
            return Err(Error::config(
                "retry.backoff_base_ms",
                "must be at least 1 ms: a back-off from 0 never grows, and retries would not pause",
            ));
        }
        if self.retry.backoff_base > self.retry.backoff_cap {
            return Err(Error::config(
                "retry.backoff_base_ms",
                format!(
                    "is {} ms, more than retry.backoff_cap_ms ({} ms)",
                    self.retry.backoff_base.as_millis(),
                    self.retry.backoff_cap.as_millis()
                ),
            ));
        }
        self.validate_categories()?;
        if let Some(store) = &self.store {
            store.validate()?;
        }
        Ok(())
    }

    fn validate_categories(&self) -> Result<(), Error> {
        if self.categories.len() > MAX_CATEGORIES {
            return Err(Error::config(
                "categories",
                format!(
                    "has {} entries, must have at most {MAX_CATEGORIES}",
                    self.categories.len()
                ),
            ));
        }
        for (i, c) in self.categories.iter().enumerate() {
            let chars = c.chars().count();
            if chars == 0 || chars > MAX_CATEGORY || c.contains('\0') {
                return Err(Error::config(
                    format!("categories[{i}]"),
                    format!(
                        "{c:?} must be 1 to {MAX_CATEGORY} characters (the spec's maxLength), without U+0000"
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RetryPolicy;
    use std::time::Duration;

    /// The error a configuration built in code gets from `validate`.
    fn invalid(c: Config) -> String {
        match c.validate() {
            Err(Error::Config(e)) => format!("{}: {}", e.field, e.reason),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_size_and_count_is_bounded() {
        let d = Config::default;
        for (config, message) in [
            (
                d().queue_capacity(0),
                "queue_capacity: is 0, must be at least 1",
            ),
            (
                d().queue_capacity((1 << 24) + 1),
                "queue_capacity: is 16777217, must be at most 16777216",
            ),
            (
                d().max_event_bytes(63),
                "max_event_bytes: is 63, must be at least 64",
            ),
            (
                d().max_event_bytes((64 << 20) + 1)
                    .batch_max_bytes(256 << 20),
                "max_event_bytes: is 67108865, must be at most 67108864",
            ),
            (
                d().batch_max_events(0),
                "batch_max_events: is 0, must be at least 1",
            ),
            (
                d().batch_max_events(100_001),
                "batch_max_events: is 100001, must be at most 100000",
            ),
            (
                d().batch_max_bytes((256 << 20) + 1),
                "batch_max_bytes: is 268435457, must be at most 268435456",
            ),
            (
                d().dead_letter_capacity(100_001),
                "dead_letter_capacity: is 100001, must be at most 100000",
            ),
            (
                d().initial_slot_bytes(1_099_511_627_776),
                "initial_slot_bytes: is 1099511627776, must be at most 1048576",
            ),
            (
                d().retained_slot_bytes(usize::MAX),
                &format!(
                    "retained_slot_bytes: is {}, must be at most 67108864",
                    usize::MAX
                ),
            ),
            (
                d().retry(RetryPolicy::default().max_attempts(0)),
                "retry.max_attempts: is 0, must be at least 1",
            ),
            (
                d().retry(RetryPolicy::default().backoff(Duration::ZERO, Duration::from_secs(1))),
                "retry.backoff_base_ms: must be at least 1 ms: a back-off from 0 never grows, \
                 and retries would not pause",
            ),
            (
                d().retry(
                    RetryPolicy::default().backoff(Duration::from_secs(2), Duration::from_secs(1)),
                ),
                "retry.backoff_base_ms: is 2000 ms, more than retry.backoff_cap_ms (1000 ms)",
            ),
            (
                d().service(""),
                "service: is 0 bytes long, must be 1 to 255",
            ),
            (
                d().service("x".repeat(256)),
                "service: is 256 bytes long, must be 1 to 255",
            ),
            (
                d().service("a\nb"),
                "service: must not contain control characters",
            ),
            (
                d().categories(
                    Vec::<String>::new()
                        .into_iter()
                        .chain((0..257).map(|i| format!("c{i}"))),
                ),
                "categories: has 257 entries, must have at most 256",
            ),
            (
                d().categories(["ok", ""]),
                "categories[1]: \"\" must be 1 to 50 characters (the spec's maxLength), without U+0000",
            ),
        ] {
            assert_eq!(invalid(config), message);
        }
        // A full queue of the largest events must fit in 64 GiB.
        assert_eq!(
            invalid(d().queue_capacity(1 << 24)),
            "queue_capacity: 16777216 events of up to 65536 bytes (max_event_bytes, or \
             initial_slot_bytes if larger) may take 1099511627776 bytes, more than the \
             68719476736 a queue may hold; lower one of them"
        );
        d().queue_capacity(1 << 24)
            .max_event_bytes(4096)
            .validate()
            .unwrap();
        // The largest values are accepted, and durations have no ceiling.
        d().queue_capacity(1024)
            .max_event_bytes(64 << 20)
            .batch_max_bytes(256 << 20)
            .batch_max_events(100_000)
            .dead_letter_capacity(100_000)
            .initial_slot_bytes(1 << 20)
            .retained_slot_bytes(64 << 20)
            .flush_interval(Duration::MAX)
            .drop_timeout(Duration::MAX)
            .retry(
                RetryPolicy::default()
                    .max_attempts(1000)
                    .max_elapsed(Duration::MAX),
            )
            .categories(["gateway"])
            .validate()
            .unwrap();
    }

    #[test]
    fn the_issue_cases_from_json_name_field_and_limit() {
        for (text, field, reason) in [
            (
                r#"{"initial_slot_bytes":1099511627776}"#,
                "initial_slot_bytes",
                "must be at most 1048576",
            ),
            (
                r#"{"retained_slot_bytes":18446744073709551615}"#,
                "retained_slot_bytes",
                "must be at most 67108864",
            ),
            (r#"{"service":""}"#, "service", "must be 1 to 255"),
            (r#"{"queue_capacity":null}"#, "queue_capacity", "is null"),
        ] {
            match Config::from_json(text) {
                Err(Error::Config(c)) => {
                    assert_eq!(c.field, field, "{text}");
                    assert!(c.reason.contains(reason), "{text}: {}", c.reason);
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
