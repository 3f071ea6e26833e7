//! A Python callable as the pipeline's sink. The flush thread attaches to the interpreter
//! (takes the GIL) only for the call: the batch is copied into a list of `bytes`, and the
//! return value or exception becomes an `Outcome`.
//!
//! The flush thread keeps one Python thread state from its first call to its end. Without
//! it every call would create one and delete it after, and creating one takes the
//! runtime's HEAD_LOCK without the GIL: on CPython 3.11 a `fork()` of another thread at
//! that moment leaves the lock held in the child, which then hangs in its after-fork code.
//! Kept, the state is created once per flush thread, at its first call, instead of at
//! every call (deleting it happens with the GIL held, when `os.fork()` cannot run).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use auditbuf::{Outcome, Sink};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyList, PyTuple};

/// The values of `auditbuf.Outcome` (the C ABI's `AUDITBUF_SINK_*`).
const DELIVERED: i64 = 0;
const RETRY: i64 = 1;
const REJECTED: i64 = 2;
const TOO_LARGE: i64 = 3;

/// Set when the interpreter begins to exit (the package's `atexit` hook). From then on it
/// may finalize at any moment, which frees every other thread's state: a flush thread that
/// ends afterwards must not touch its own, so it leaves it (a state left at exit is
/// harmless; taking the GIL then would park the thread, or worse, read freed memory).
static EXITING: AtomicBool = AtomicBool::new(false);

/// Called first thing at exit, before the pipelines are closed.
pub(crate) fn interpreter_exiting() {
    EXITING.store(true, Ordering::SeqCst);
}

/// The callable, shared by the sink (on the flush thread) and its `Pipeline` object, which
/// shows it to Python's cycle collector and lets go of it when the collector asks (a sink
/// that is a bound method of an object holding the pipeline makes a cycle).
pub(crate) type SinkRef = Arc<Mutex<Option<Py<PyAny>>>>;

/// Calls `callable(batch)` with each batch.
pub(crate) struct PySink {
    callable: SinkRef,
    /// The flush thread's nesting level on its own thread state, from its first call.
    kept: Option<KeptThreadState>,
}

/// One `PyGILState_Ensure` level, held so that the thread state outlives each call: later
/// attaches on that thread find it and only take and give back the GIL.
struct KeptThreadState {
    thread: ThreadId,
    state: ffi::PyGILState_STATE,
}

impl KeptThreadState {
    #[allow(unsafe_code)]
    fn keep(_attached: Python<'_>) -> Self {
        // Safety: attached (the token), so this thread's state exists and is current: the
        // call only counts one more level on it, never creates a state or waits for the GIL.
        let state = unsafe { ffi::PyGILState_Ensure() };
        KeptThreadState {
            thread: std::thread::current().id(),
            state,
        }
    }
}

impl std::fmt::Debug for PySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PySink")
    }
}

impl PySink {
    pub(crate) fn new(callable: Py<PyAny>) -> Self {
        PySink {
            callable: Arc::new(Mutex::new(Some(callable))),
            kept: None,
        }
    }

    /// The callable, for the `Pipeline` object.
    pub(crate) fn reference(&self) -> SinkRef {
        Arc::clone(&self.callable)
    }
}

impl Drop for PySink {
    /// Deletes the kept thread state: dropped with the worker at the end of the flush thread,
    /// so that closing pipelines one after another does not pile up states. Left alone on
    /// any other thread (a state belongs to its thread) and once the interpreter is exiting.
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        let Some(kept) = self.kept.take() else {
            return;
        };
        if kept.thread != std::thread::current().id() || EXITING.load(Ordering::SeqCst) {
            return;
        }
        // The interpreter can start finalizing between the check and the attach only if this
        // thread stalls there: the exit hook closes the pipelines still open and waits for
        // their flush threads (up to exit_timeout), and one whose close or drop already gave
        // up is then rarely still this far. Should it happen, the attach parks this thread
        // (pyo3's guard) rather than crash.
        let _ = Python::try_attach(|_py| {
            // Safety: on the thread that took `kept`, attached, so its state is current and
            // holds two levels: this one, taken attached (LOCKED: only a count goes), and
            // the attach's own, whose release then deletes the state and lets go of the GIL.
            unsafe { ffi::PyGILState_Release(kept.state) }
        });
    }
}

impl Sink for PySink {
    fn send(&mut self, batch: &[&[u8]]) -> Outcome {
        let kept = &mut self.kept;
        let callable = &self.callable;
        // Once the interpreter is finalizing, taking the GIL parks this thread for good
        // (pyo3's guard before CPython 3.14, CPython itself after) instead of crashing; by
        // then `close` has returned at its deadline.
        Python::try_attach(|py| {
            if kept.is_none() {
                *kept = Some(KeptThreadState::keep(py));
            }
            let events = batch.iter().map(|e| PyBytes::new(py, e));
            let list = match PyList::new(py, events) {
                Ok(list) => list,
                Err(e) => return Outcome::retry(format!("could not build the batch: {e}")),
            };
            // Taken out of the lock for the call (the collector's `__traverse__` only tries
            // the lock): the extra reference keeps the sink alive meanwhile.
            let callable = match callable.lock() {
                Ok(callable) => callable.as_ref().map(|c| c.clone_ref(py)),
                Err(_) => None,
            };
            let Some(callable) = callable else {
                // Its pipeline was collected and closed: not called again after that.
                return Outcome::retry("the Python sink was released by the garbage collector");
            };
            match call(callable.bind(py), list) {
                Ok(value) => outcome_of(&value),
                Err(e) => Outcome::retry(format!(
                    "the Python sink raised {}: {}",
                    e.get_type(py)
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default(),
                    e.value(py)
                )),
            }
        })
        .unwrap_or_else(|| Outcome::retry("the Python interpreter is shutting down"))
    }

    /// The Python sink's `REJECTED` is its judgement of the events, with no answer to
    /// tell "refuses everything" from "refuses each" (it returns `RETRY` for that).
    fn rejections_are_final(&self) -> bool {
        true
    }
}

/// `None` or `True` is delivered, `False` a retry, an `auditbuf.Outcome` (or its int) says
/// itself; anything else is a retry that names it.
fn outcome_of(value: &Bound<'_, PyAny>) -> Outcome {
    if value.is_none() {
        return Outcome::Delivered;
    }
    if let Ok(b) = value.cast::<PyBool>() {
        return if b.is_true() {
            Outcome::Delivered
        } else {
            Outcome::retry("the Python sink returned False")
        };
    }
    match value.extract::<i64>() {
        Ok(DELIVERED) => Outcome::Delivered,
        Ok(RETRY) => Outcome::retry("the Python sink asked to retry"),
        Ok(REJECTED) => Outcome::rejected("refused by the Python sink"),
        Ok(TOO_LARGE) => Outcome::TooLarge {
            reason: "too large for the Python sink".to_owned(),
        },
        _ => Outcome::retry(format!(
            "the Python sink returned {}, not None, a bool or an auditbuf.Outcome; retrying",
            value
                .repr()
                .map(|r| r.to_string())
                .unwrap_or_else(|_| "?".to_owned())
        )),
    }
}

#[allow(unsafe_code)]
unsafe extern "C-unwind" {
    /// `PyObject_Call`, declared as able to unwind: see [`call`].
    #[link_name = "PyObject_Call"]
    fn PyObject_Call_unwind(
        callable: *mut ffi::PyObject,
        args: *mut ffi::PyObject,
        kwargs: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject;
}

/// Blocks the thread forever when dropped: dropped only by a forced unwind.
struct HangThread;

impl Drop for HangThread {
    fn drop(&mut self) {
        loop {
            std::thread::park();
        }
    }
}

/// `callable(batch)`. A Python sink may be running Python code when the interpreter
/// finalizes (after `close`'s deadline at exit); CPython before 3.14 then ends the thread
/// with `pthread_exit`, a forced unwind that would abort the process on reaching Rust
/// frames through a `extern "C"` call. Called through a `C-unwind` declaration, the
/// unwind stops here instead and the flush thread sleeps until the process is gone (as
/// pyo3 does for `PyEval_RestoreThread`, and CPython 3.14 does itself).
///
/// The call goes through an opaque function pointer: pyo3 declares the same symbol
/// `extern "C"` (`nounwind` to LLVM), and where both declarations meet in one codegen unit
/// LLVM takes the call for one that cannot unwind and drops the guard's landing pad — then
/// the process aborts at exit after all, depending on how the crate happens to be split.
#[allow(unsafe_code)]
fn call<'py>(
    callable: &Bound<'py, PyAny>,
    batch: Bound<'py, PyList>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = callable.py();
    let args = PyTuple::new(py, [batch])?;
    let guard = HangThread;
    // Safety: `callable` and `args` are live objects and we are attached to the
    // interpreter; PyObject_Call returns a new reference or NULL with an exception set.
    let call_unwind: unsafe extern "C-unwind" fn(
        *mut ffi::PyObject,
        *mut ffi::PyObject,
        *mut ffi::PyObject,
    ) -> *mut ffi::PyObject = std::hint::black_box(PyObject_Call_unwind);
    let result = unsafe { call_unwind(callable.as_ptr(), args.as_ptr(), std::ptr::null_mut()) };
    std::mem::forget(guard);
    // Safety: `result` is an owned reference (or NULL, turned into the pending error).
    unsafe { Bound::from_owned_ptr_or_err(py, result) }
}
