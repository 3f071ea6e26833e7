//! A sink that hands each batch to a Rust closure.

use std::fmt;

use super::{Limits, Outcome, Sink};

/// Calls a closure with each batch; the closure's [`Outcome`] drives retries and splits as
/// for any other sink.
///
/// ```
/// use auditbuf::{CallbackSink, Config, Outcome, Pipeline};
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = CallbackSink::new({
///     let seen = Arc::clone(&seen);
///     move |batch: &[&[u8]]| {
///         seen.lock().unwrap().extend(batch.iter().map(|e| e.to_vec()));
///         Outcome::Delivered
///     }
/// });
/// let pipeline = Pipeline::new(Config::default(), sink)?;
/// pipeline.record_json(br#"{"event_type":"a"}"#)?;
/// assert!(pipeline.close(Duration::from_secs(5)).completed);
/// assert_eq!(seen.lock().unwrap().len(), 1);
/// # Ok::<(), auditbuf::Error>(())
/// ```
pub struct CallbackSink<F> {
    callback: F,
    limits: Limits,
}

impl<F> CallbackSink<F>
where
    F: FnMut(&[&[u8]]) -> Outcome + Send + 'static,
{
    /// A sink calling `callback` with each batch.
    pub fn new(callback: F) -> Self {
        CallbackSink {
            callback,
            limits: Limits::NONE,
        }
    }

    /// Batch limits the callback needs. Defaults to [`Limits::NONE`].
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

impl<F> Sink for CallbackSink<F>
where
    F: FnMut(&[&[u8]]) -> Outcome + Send + 'static,
{
    fn send(&mut self, batch: &[&[u8]]) -> Outcome {
        (self.callback)(batch)
    }

    fn limits(&self) -> Limits {
        self.limits
    }
}

impl<F> fmt::Debug for CallbackSink<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackSink")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}
