//! The one error type of the crate.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong, one variant per cause a caller can act on.
///
/// Record-path variants ([`Full`](Error::Full) … [`Serialize`](Error::Serialize)) carry no
/// allocation except `Serialize`, so rejecting an event costs no more than accepting one.
/// Each variant maps to exactly one status code in the C ABI.
///
/// ```
/// use auditbuf::{Config, NullSink, Pipeline, Error};
///
/// let pipeline = Pipeline::new(Config::default(), NullSink)?;
/// let err = pipeline.record_json(b"[1, 2]").unwrap_err();
/// assert!(matches!(err, Error::NotAnObject));
/// assert_eq!(err.to_string(), "event is valid JSON but not an object");
/// # Ok::<(), auditbuf::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The queue is full and the overflow policy is `DropNewest`: the event was not taken.
    Full,
    /// The overflow policy is `Block` and no slot came free within its timeout.
    Timeout(Duration),
    /// The pipeline has been closed; it takes no more events.
    Closed,
    /// The pipeline was created in another process: this one is a `fork()` child, where
    /// the flush thread does not exist and the backing store belongs to the parent. Create
    /// a new pipeline in the child.
    Forked,
    /// The event is not valid UTF-8; `offset` is the first bad byte.
    InvalidUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// The event is not valid JSON.
    InvalidJson {
        /// Byte offset where parsing failed.
        offset: usize,
        /// What was expected or found there.
        reason: &'static str,
    },
    /// The event is valid JSON but not an object (an array, string, number, …).
    NotAnObject,
    /// The encoded event is larger than `max_event_bytes`.
    TooLarge {
        /// Encoded size in bytes (at least; encoding stops at the limit).
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A required field of a typed [`AuditEvent`](crate::AuditEvent) is empty.
    MissingField {
        /// The field's wire name, e.g. `"correlation_id"`.
        field: &'static str,
    },
    /// A field has a value the receiver would reject, e.g. an `event_data.event_type` that
    /// differs from the event's own `event_type`.
    InvalidField {
        /// The field's wire name.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `Serialize` implementation failed (or produced something that is not an object).
    Serialize(serde_json::Error),
    /// A configuration value is out of range, or a configuration document has an unknown,
    /// missing or ill-typed field.
    Config(Box<ConfigError>),
    /// The backing store is at its configured limit (`max_total_bytes`, `max_events`, …).
    StoreFull {
        /// The limit reached, by its configuration name.
        limit: &'static str,
        /// Its configured value.
        value: u64,
    },
    /// The backing store failed: locked by another process, a database error, … The message
    /// names the store and the file, table or server involved.
    Store(Box<StoreError>),
    /// Durability `wal`: the event was appended and will be sent, but the sync that should
    /// make it survive a crash failed. Unlike the other record errors, the event was
    /// accepted (it counts as recorded, not rejected).
    NotDurable(Box<StoreError>),
    /// A file the configuration names could not be read or written.
    Io(Box<IoError>),
    /// The flush thread could not be started.
    Spawn(io::Error),
}

/// Details of [`Error::Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The field involved, as written in configuration (`"batch_max_events"`, `"url"`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Details of [`Error::Store`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    /// Which store: `"file"`, `"sqlite"`, `"postgres"`, or a registered type's name.
    pub store: String,
    /// What went wrong, naming the file, table or server.
    pub message: String,
}

/// Details of [`Error::Io`].
#[derive(Debug)]
pub struct IoError {
    /// The file involved.
    pub path: PathBuf,
    /// What the operating system said.
    pub source: io::Error,
}

impl Error {
    /// A configuration error naming `field`.
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config(Box::new(ConfigError {
            field: field.into(),
            reason: reason.into(),
        }))
    }

    /// A backing-store error.
    pub(crate) fn store(store: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Store(Box::new(StoreError {
            store: store.into(),
            message: message.into(),
        }))
    }

    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io(Box::new(IoError {
            path: path.into(),
            source,
        }))
    }

    /// True for [`Error::Full`] and [`Error::Timeout`]: the pipeline is overloaded, the event
    /// itself was fine and may be retried later.
    pub fn is_overload(&self) -> bool {
        matches!(
            self,
            Error::Full | Error::Timeout(_) | Error::StoreFull { .. }
        )
    }

    /// True when the event itself was rejected (bad JSON, too large, missing field, …):
    /// retrying the same bytes fails again.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidUtf8 { .. }
                | Error::InvalidJson { .. }
                | Error::NotAnObject
                | Error::TooLarge { .. }
                | Error::MissingField { .. }
                | Error::InvalidField { .. }
                | Error::Serialize(_)
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Full => f.write_str("queue is full (overflow policy drop_newest)"),
            Error::Timeout(t) => write!(f, "queue stayed full for the block timeout of {t:?}"),
            Error::Closed => f.write_str("pipeline is closed"),
            Error::Forked => {
                f.write_str("pipeline was created before fork(); this process must create its own")
            }
            Error::InvalidUtf8 { offset } => write!(f, "event is not valid UTF-8 at byte {offset}"),
            Error::InvalidJson { offset, reason } => {
                write!(f, "event is not valid JSON at byte {offset}: {reason}")
            }
            Error::NotAnObject => f.write_str("event is valid JSON but not an object"),
            Error::TooLarge { size, limit } => write!(
                f,
                "event of {size} bytes is over the max_event_bytes limit of {limit}"
            ),
            Error::MissingField { field } => write!(f, "required field {field} is empty"),
            Error::InvalidField { field, reason } => write!(f, "field {field}: {reason}"),
            Error::Serialize(e) => write!(f, "event could not be serialised: {e}"),
            Error::Config(c) => write!(f, "invalid configuration: {}: {}", c.field, c.reason),
            Error::StoreFull { limit, value } => {
                write!(f, "backing store is full: {limit} of {value} reached")
            }
            Error::Store(e) => write!(f, "{} store: {}", e.store, e.message),
            Error::NotDurable(e) => write!(
                f,
                "event accepted, but the {} store could not make it durable: {}",
                e.store, e.message
            ),
            Error::Io(e) => write!(f, "{}: {}", e.path.display(), e.source),
            Error::Spawn(e) => write!(f, "could not start the flush thread: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Serialize(e) => Some(e),
            Error::Io(e) => Some(&e.source),
            Error::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

/// The message of a caught panic, for `last_error` and logs.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_stays_small() {
        // Record returns Result<(), Error> on the hot path: keep it within five words.
        assert!(std::mem::size_of::<Error>() <= 40);
    }

    #[test]
    fn messages_name_the_field_or_limit() {
        let e = Error::TooLarge {
            size: 70_000,
            limit: 65_536,
        };
        assert_eq!(
            e.to_string(),
            "event of 70000 bytes is over the max_event_bytes limit of 65536"
        );
        let e = Error::config("batch_max_events", "must be at least 1");
        assert_eq!(
            e.to_string(),
            "invalid configuration: batch_max_events: must be at least 1"
        );
        assert!(Error::Full.is_overload());
        assert!(Error::NotAnObject.is_bad_input());
    }
}
