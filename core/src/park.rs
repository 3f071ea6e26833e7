//! How a `record` call waits, for bindings whose callers hold a lock of their own (Python's
//! GIL): the waits of the record path — a free slot under `Overflow::Block`, the fsync of
//! durability `wal`, the store append of `Overflow::Spill` — run inside [`Park::park`], so
//! the binding can release its lock there, and a long wait for a slot is cut into slices
//! between which the binding may give up (Ctrl-C).

use std::time::Duration;

/// What a binding does around the waits of a `record` call; see
/// [`Pipeline::record_with`](crate::Pipeline::record_with). Not part of the stable API.
#[doc(hidden)]
pub trait Park {
    /// Longest single wait for a free slot before [`interrupted`](Park::interrupted) is
    /// asked.
    const SLICE: Duration;

    /// Runs `wait`, which may block (a binding releases its interpreter lock around it).
    fn park<R: Send>(&mut self, wait: impl FnOnce() -> R + Send) -> R;

    /// Asked between slices of a wait for a free slot: `true` gives up, and the call fails
    /// with [`Error::Timeout`](crate::Error::Timeout), counted as a block timeout.
    fn interrupted(&mut self) -> bool;

    /// Gives the CPU to other threads for a moment: a caller turned away again and again
    /// does so now and then, so that the flush thread can make room (see
    /// [`Overflow::DropNewest`](crate::Overflow::DropNewest)). A binding whose callers
    /// already share one CPU through their own lock (Python's GIL) may do nothing.
    #[inline]
    fn cede(&mut self) {
        std::thread::yield_now();
    }
}

/// The Rust API's waits: in place, in one piece.
#[derive(Debug)]
pub(crate) struct NoPark;

impl Park for NoPark {
    const SLICE: Duration = Duration::MAX;

    #[inline]
    fn park<R: Send>(&mut self, wait: impl FnOnce() -> R + Send) -> R {
        wait()
    }

    #[inline]
    fn interrupted(&mut self) -> bool {
        false
    }
}
