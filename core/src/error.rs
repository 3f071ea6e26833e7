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
    /// The event, or JSON text given as one of its fields, is not valid JSON.
    InvalidJson {
        /// Byte offset where parsing failed, in the event's text or, with `field`, in that
        /// field's (`u32::MAX` for offsets beyond it: no event is that large; a 32-bit
        /// offset keeps the error, returned by every `record`, within five words).
        offset: u32,
        /// What was expected or found there.
        reason: &'static str,
        /// The field whose JSON text it is (`event_data`, a CADF attachment's `content`);
        /// `None` when it is the event's own text.
        field: Option<&'static str>,
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
    /// A `Serialize` implementation failed: a map with keys that are not strings, a custom
    /// error. (A value that serialises to something other than an object is
    /// [`NotAnObject`](Error::NotAnObject).)
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

    /// [`InvalidJson`](Error::InvalidJson) at `offset` of the event's own text.
    pub(crate) fn json_at(offset: usize, reason: &'static str) -> Self {
        Error::InvalidJson {
            offset: u32::try_from(offset).unwrap_or(u32::MAX),
            reason,
            field: None,
        }
    }

    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io(Box::new(IoError {
            path: path.into(),
            source,
        }))
    }

    /// The stable status code of this error, shared by the C ABI (`auditbuf_status`), Go
    /// and Python. Codes never change meaning; new variants get new codes. `0` is success
    /// and is never returned here; `1` ([`NotDurable`](Error::NotDurable)) is a warning:
    /// the event *was* accepted. A rejected `record*` call is counted in the
    /// [`Stats::rejected`](crate::Stats::rejected) field shown.
    ///
    /// | code | name | variant | counted in `Stats.rejected` |
    /// | ---: | --- | --- | --- |
    /// | 0 | `ok` | — (success) | — |
    /// | 1 | `not_durable` | [`NotDurable`](Error::NotDurable) | — (accepted: `recorded`) |
    /// | 10 | `full` | [`Full`](Error::Full) | `queue_full` |
    /// | 11 | `timeout` | [`Timeout`](Error::Timeout) | `block_timeout` |
    /// | 12 | `closed` | [`Closed`](Error::Closed) | `closed` |
    /// | 13 | `forked` | [`Forked`](Error::Forked) | `closed` |
    /// | 14 | `invalid_utf8` | [`InvalidUtf8`](Error::InvalidUtf8) | `invalid_utf8` |
    /// | 15 | `invalid_json` | [`InvalidJson`](Error::InvalidJson) | `invalid_json` |
    /// | 16 | `not_an_object` | [`NotAnObject`](Error::NotAnObject) | `not_an_object` |
    /// | 17 | `too_large` | [`TooLarge`](Error::TooLarge) | `too_large` |
    /// | 18 | `missing_field` | [`MissingField`](Error::MissingField) | `missing_field` |
    /// | 19 | `invalid_field` | [`InvalidField`](Error::InvalidField) | `invalid_field` |
    /// | 20 | `serialize` | [`Serialize`](Error::Serialize) | `serialize` |
    /// | 21 | `store_full` | [`StoreFull`](Error::StoreFull) | `store_full` |
    /// | 22 | `store` | [`Store`](Error::Store) | `store_error` |
    /// | 30 | `config` | [`Config`](Error::Config) | `store_error` (only `Spill` without a store) |
    /// | 31 | `io` | [`Io`](Error::Io) | `store_error` |
    /// | 32 | `spawn` | [`Spawn`](Error::Spawn) | — (setup only) |
    ///
    /// Codes 100 and up belong to the bindings (the C ABI's `AUDITBUF_NULL_PARAMETER`,
    /// `AUDITBUF_PANIC`, …) and never come from an [`Error`].
    ///
    /// ```
    /// use auditbuf::Error;
    /// assert_eq!(Error::Full.code(), 10);
    /// assert_eq!(Error::code_name(10), Some("full"));
    /// assert_eq!(Error::NotAnObject.name(), "not_an_object");
    /// ```
    pub const fn code(&self) -> u32 {
        // No wildcard: a new variant does not compile until it has its own code.
        match self {
            Error::NotDurable(_) => 1,
            Error::Full => 10,
            Error::Timeout(_) => 11,
            Error::Closed => 12,
            Error::Forked => 13,
            Error::InvalidUtf8 { .. } => 14,
            Error::InvalidJson { .. } => 15,
            Error::NotAnObject => 16,
            Error::TooLarge { .. } => 17,
            Error::MissingField { .. } => 18,
            Error::InvalidField { .. } => 19,
            Error::Serialize(_) => 20,
            Error::StoreFull { .. } => 21,
            Error::Store(_) => 22,
            Error::Config(_) => 30,
            Error::Io(_) => 31,
            Error::Spawn(_) => 32,
        }
    }

    /// The name of [`code`](Self::code)'s value, e.g. `"invalid_json"`.
    pub const fn name(&self) -> &'static str {
        match Self::code_name(self.code()) {
            Some(name) => name,
            None => "unknown",
        }
    }

    /// The name of a code [`code`](Self::code) returns (and `0`, `"ok"`); `None` for any
    /// other number. Bindings use it to show a status by name.
    pub const fn code_name(code: u32) -> Option<&'static str> {
        Some(match code {
            0 => "ok",
            1 => "not_durable",
            10 => "full",
            11 => "timeout",
            12 => "closed",
            13 => "forked",
            14 => "invalid_utf8",
            15 => "invalid_json",
            16 => "not_an_object",
            17 => "too_large",
            18 => "missing_field",
            19 => "invalid_field",
            20 => "serialize",
            21 => "store_full",
            22 => "store",
            30 => "config",
            31 => "io",
            32 => "spawn",
            _ => return None,
        })
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
            Error::InvalidJson {
                offset,
                reason,
                field: None,
            } => write!(f, "event is not valid JSON at byte {offset}: {reason}"),
            Error::InvalidJson {
                offset,
                reason,
                field: Some(field),
            } => write!(
                f,
                "field {field}: not valid JSON at byte {offset} of its text: {reason}"
            ),
            Error::NotAnObject => f.write_str("event is valid JSON but not an object"),
            // An encoder that stops at the limit knows only that the event is larger.
            Error::TooLarge { size, limit } if *size <= limit.saturating_add(1) => write!(
                f,
                "event of more than {limit} bytes is over the max_event_bytes limit of {limit}"
            ),
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

    /// One of each variant: the code table is checked against all of them.
    fn one_of_each() -> Vec<Error> {
        let store = || {
            Box::new(StoreError {
                store: "file".into(),
                message: "m".into(),
            })
        };
        vec![
            Error::NotDurable(store()),
            Error::Full,
            Error::Timeout(Duration::from_millis(1)),
            Error::Closed,
            Error::Forked,
            Error::InvalidUtf8 { offset: 0 },
            Error::InvalidJson {
                offset: 0,
                reason: "r",
                field: None,
            },
            Error::NotAnObject,
            Error::TooLarge { size: 2, limit: 1 },
            Error::MissingField { field: "f" },
            Error::InvalidField {
                field: "f",
                reason: "r",
            },
            Error::Serialize(serde_json::from_str::<u8>("x").unwrap_err()),
            Error::StoreFull {
                limit: "max_events",
                value: 1,
            },
            Error::Store(store()),
            Error::config("f", "r"),
            Error::io("/x", io::Error::other("e")),
            Error::Spawn(io::Error::other("e")),
        ]
    }

    #[test]
    fn every_variant_has_its_own_stable_code_and_name() {
        let errors = one_of_each();
        let mut codes: Vec<u32> = errors.iter().map(Error::code).collect();
        assert_eq!(
            codes,
            [
                1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 30, 31, 32
            ]
        );
        codes.dedup();
        assert_eq!(codes.len(), errors.len());
        for e in &errors {
            assert_eq!(Error::code_name(e.code()), Some(e.name()), "{e:?}");
            assert_ne!(e.code(), 0);
            assert!(e.code() < 100, "codes from 100 up belong to the bindings");
        }
        assert_eq!(Error::code_name(0), Some("ok"));
        let named = (0..1000).filter(|c| Error::code_name(*c).is_some()).count();
        assert_eq!(named, errors.len() + 1, "a name without a variant");
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
        // Encoding stopped at the limit: the size is not known, and not made up.
        let e = Error::TooLarge {
            size: 65_537,
            limit: 65_536,
        };
        assert_eq!(
            e.to_string(),
            "event of more than 65536 bytes is over the max_event_bytes limit of 65536"
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
