//! Waiting without the GIL, and giving up on Ctrl-C.
//!
//! Every wait releases the GIL (so the flush thread can call a Python sink, and other
//! Python threads run), and waits in slices of [`SLICE`], checking for signals between
//! them, so Ctrl-C raises `KeyboardInterrupt` promptly.

use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, bounded};

use auditbuf::Park;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// Longest wait between two looks at pending signals.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// The record path's waits (a free slot under overflow "block", the `wal` fsync, a spill's
/// store append): without the GIL, a wait for a slot in slices, given up on a signal.
pub(crate) struct GilPark<'py> {
    py: Python<'py>,
    /// The exception (KeyboardInterrupt, or what a signal handler raised) that ended a wait.
    pub(crate) interrupt: Option<PyErr>,
}

impl<'py> GilPark<'py> {
    pub(crate) fn new(py: Python<'py>) -> Self {
        GilPark {
            py,
            interrupt: None,
        }
    }
}

impl Park for GilPark<'_> {
    const SLICE: Duration = SLICE;

    fn park<R: Send>(&mut self, wait: impl FnOnce() -> R + Send) -> R {
        self.py.detach(wait)
    }

    /// Nothing: Python threads holding the GIL run one at a time, so they leave a Rust
    /// sink's flush thread a CPU without yielding, and a yield with the GIL held would stall
    /// the others. (A Python sink's flush thread waits for the GIL like any other thread,
    /// and gets it at the interpreter's switch interval.)
    fn cede(&mut self) {}

    fn interrupted(&mut self) -> bool {
        match self.py.check_signals() {
            Ok(()) => false,
            Err(e) => {
                self.interrupt = Some(e);
                true
            }
        }
    }
}

/// Runs `work` (a flush or close, which waits up to its own deadline) on a helper thread
/// and waits for it without the GIL, in slices, checking for signals. On Ctrl-C the
/// exception is raised at once; the work goes on in the background up to its deadline.
pub(crate) fn run_interruptibly<T: Send + 'static>(
    py: Python<'_>,
    work: impl FnOnce() -> T + Send + 'static,
) -> PyResult<T> {
    let (tx, rx) = bounded(1);
    std::thread::Builder::new()
        .name("auditbuf-wait".to_owned())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| PyRuntimeError::new_err(format!("could not start a thread: {e}")))?;
    loop {
        match py.detach(|| rx.recv_timeout(SLICE)) {
            Ok(value) => return Ok(value),
            Err(RecvTimeoutError::Timeout) => py.check_signals()?,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(PyRuntimeError::new_err(
                    "auditbuf: the wait ended without a result",
                ));
            }
        }
    }
}
