//! Where batches go. Every sink answers each batch with one [`Outcome`]; the flush thread
//! turns outcomes into retries, splits and dead letters, so a sink never retries by itself.
//!
//! - [`http`]: any HTTP endpoint taking a JSON array or NDJSON ([`HttpSink`]);
//! - [`datastorage`]: the kubernaut DataStorage batch endpoint ([`DataStorageSink`]);
//! - [`callback`]: a Rust closure ([`CallbackSink`]);
//! - [`null`]: accepts everything, for benchmarks ([`NullSink`]);
//! - [`rabbitmq`]: a RabbitMQ queue, with publisher confirms ([`RabbitMqSink`], feature
//!   `rabbitmq`; its [`RabbitMqConfig`] in every build).

pub(crate) mod callback;
pub(crate) mod datastorage;
pub(crate) mod http;
pub(crate) mod null;
pub(crate) mod rabbitmq;
pub(crate) mod redact;
pub(crate) mod resolve;

use std::time::Duration;

pub use callback::CallbackSink;
pub use datastorage::DataStorageSink;
pub use http::{BodyFormat, HttpConfig, HttpSink};
pub use null::NullSink;
pub use rabbitmq::RabbitMqConfig;
#[cfg(feature = "rabbitmq")]
pub use rabbitmq::RabbitMqSink;

/// A destination for batches of encoded events.
///
/// `send` is called from the flush thread only, one batch at a time; each element of
/// `batch` is one encoded JSON object. It must not retry on its own: answer
/// [`Outcome::Retry`] and the pipeline retries with backoff, bounded by its policy.
///
/// ```
/// use auditbuf::{Outcome, Sink};
///
/// struct Stdout;
/// impl Sink for Stdout {
///     fn send(&mut self, batch: &[&[u8]]) -> Outcome {
///         for event in batch {
///             println!("{}", String::from_utf8_lossy(event));
///         }
///         Outcome::Delivered
///     }
/// }
/// assert_eq!(Stdout.send(&[b"{}"]), Outcome::Delivered);
/// ```
pub trait Sink: Send + 'static {
    /// Sends one batch and says what became of it.
    fn send(&mut self, batch: &[&[u8]]) -> Outcome;

    /// The largest batch this sink takes; the pipeline never builds a larger one, whatever
    /// its own batch settings say.
    fn limits(&self) -> Limits {
        Limits::NONE
    }

    /// Whether an event this sink refuses alone ([`Outcome::Rejected`] for a batch of one)
    /// is refused for good. By default (`false`) a receiver that refuses every event of a
    /// batch of two or more, or five in a row, with the same answer is taken for a proxy or
    /// server refusing everything: the events are kept and retried, then stored, not
    /// dead-lettered. A sink that judges the events itself says `true`: the C, Go and
    /// Python callbacks, whose bare "rejected" code carries no answer to tell a refusal of
    /// everything from one of each event apart (they return "retry" for an endpoint that
    /// fails).
    fn rejections_are_final(&self) -> bool {
        false
    }
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn send(&mut self, batch: &[&[u8]]) -> Outcome {
        (**self).send(batch)
    }

    fn limits(&self) -> Limits {
        (**self).limits()
    }

    fn rejections_are_final(&self) -> bool {
        (**self).rejections_are_final()
    }
}

/// What became of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The receiver took the whole batch (any 2xx). It is never sent again.
    Delivered,
    /// A passing failure (408, 429, 5xx, network, expired token): send the same batch
    /// again after a backoff, or no sooner than `after` when the receiver said so.
    Retry {
        /// The receiver's `Retry-After`, if any.
        after: Option<Duration>,
        /// What went wrong, for `last_error`.
        reason: String,
    },
    /// The batch is too large for the receiver (413): send it again in halves. A single
    /// event that is still too large is dead-lettered.
    TooLarge {
        /// The receiver's explanation.
        reason: String,
    },
    /// The first `delivered` events of the batch were taken; the rest were not, for a
    /// passing reason (a message broker refused to confirm one, the connection was lost
    /// before it did). The pipeline settles the first `delivered` and sends the rest again
    /// like a [`Retry`](Outcome::Retry): kept, retried, stored — never dead-lettered.
    /// `delivered` equal to the batch's length is [`Delivered`](Outcome::Delivered); 0 is
    /// a `Retry`.
    Partial {
        /// How many events, from the start of the batch, were taken.
        delivered: usize,
        /// What happened to the next one, for `last_error`.
        reason: String,
    },
    /// The receiver refused the batch because of its content (other 4xx): the pipeline
    /// bisects it to find the bad events, delivers the rest and dead-letters those.
    Rejected {
        /// The receiver's explanation, kept with each dead letter.
        reason: String,
        /// The batch index the receiver blamed, when it said; bisection starts there.
        index: Option<usize>,
    },
}

impl Outcome {
    /// A retryable failure without a `Retry-After`.
    pub fn retry(reason: impl Into<String>) -> Self {
        Outcome::Retry {
            after: None,
            reason: reason.into(),
        }
    }

    /// A content rejection, without an index hint.
    pub fn rejected(reason: impl Into<String>) -> Self {
        Outcome::Rejected {
            reason: reason.into(),
            index: None,
        }
    }
}

/// Batch limits of a sink, applied on top of the pipeline's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most events in a batch.
    pub max_events: usize,
    /// Most bytes in a batch, counting each event plus one separator byte.
    pub max_bytes: usize,
}

impl Limits {
    /// No limit of the sink's own.
    pub const NONE: Limits = Limits {
        max_events: usize::MAX,
        max_bytes: usize::MAX,
    };
}
