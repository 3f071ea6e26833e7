//! Who is calling: the pipeline's own flush thread (a sink calling back into its pipeline,
//! where nothing may wait for that thread), a `fork()` child's copy, and the deadline a
//! binding closes with on its collector's behalf.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::Pipeline;

thread_local! {
    /// On a flush thread, its pipeline's number (from [`PIPELINES`]); 0 on every other
    /// thread. A sink may call back into its own pipeline (record, flush, close, drop the
    /// last handle): none of those may wait for the flush thread, which is the caller. A
    /// number, not the address of the pipeline's `Shared`: that may be another pipeline's
    /// by the time the thread's last code (the sink's `Drop`) runs.
    static FLUSH_THREAD_OF: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Numbers the pipelines of the process, from 1.
static PIPELINES: AtomicU64 = AtomicU64::new(1);

/// A number for a new pipeline.
pub(super) fn next_number() -> u64 {
    PIPELINES.fetch_add(1, Ordering::Relaxed)
}

/// Called first on the flush thread of pipeline `number`.
pub(super) fn enter(number: u64) {
    FLUSH_THREAD_OF.with(|of| of.set(number));
}

impl Pipeline {
    /// Whether the calling thread is this pipeline's own flush thread: a sink calling back
    /// into its pipeline, where nothing may wait for the flush thread (`flush` and `close`
    /// then return at once, a `record` under `Block` does not wait). For bindings that
    /// would otherwise hand the wait to another thread.
    ///
    /// ```
    /// use auditbuf::{Config, NullSink, Pipeline};
    ///
    /// let pipeline = Pipeline::new(Config::default(), NullSink)?;
    /// assert!(!pipeline.on_own_flush_thread());
    /// # Ok::<(), auditbuf::Error>(())
    /// ```
    pub fn on_own_flush_thread(&self) -> bool {
        FLUSH_THREAD_OF
            .try_with(std::cell::Cell::get)
            .is_ok_and(|on| on == self.number)
    }

    /// Whether this is the copy of the pipeline in a `fork()` child of the process that made
    /// it: every call then refuses with [`Error::Forked`](crate::Error::Forked) and `flush`,
    /// `close` and drop return at once (the flush thread and the store are the parent's).
    pub fn in_forked_child(&self) -> bool {
        self.forked(true)
    }

    /// The deadline of the `close` that dropping the pipeline performs
    /// ([`Config::drop_timeout`](crate::Config::drop_timeout)): for bindings that close a
    /// pipeline on their own collector's behalf.
    pub fn drop_timeout(&self) -> Duration {
        self.drop_timeout
    }
}
