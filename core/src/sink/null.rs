//! A sink that accepts everything and keeps nothing.

use super::{Outcome, Sink};

/// Accepts every batch at once. For benchmarks and for measuring the pipeline alone.
///
/// ```
/// use auditbuf::{NullSink, Outcome, Sink};
/// assert_eq!(NullSink.send(&[b"{}"]), Outcome::Delivered);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink;

impl Sink for NullSink {
    fn send(&mut self, _batch: &[&[u8]]) -> Outcome {
        Outcome::Delivered
    }
}
