//! A Python callable as the pipeline's sink. The flush thread attaches to the interpreter
//! (takes the GIL) only for the call: the batch is copied into a list of `bytes`, and the
//! return value or exception becomes an `Outcome`.

use auditbuf::{Outcome, Sink};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyList, PyTuple};

/// The values of `auditbuf.Outcome` (the C ABI's `AUDITBUF_SINK_*`).
const DELIVERED: i64 = 0;
const RETRY: i64 = 1;
const REJECTED: i64 = 2;
const TOO_LARGE: i64 = 3;

/// Calls `callable(batch)` with each batch.
pub(crate) struct PySink {
    callable: Py<PyAny>,
}

impl std::fmt::Debug for PySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PySink")
    }
}

impl PySink {
    pub(crate) fn new(callable: Py<PyAny>) -> Self {
        PySink { callable }
    }
}

impl Sink for PySink {
    fn send(&mut self, batch: &[&[u8]]) -> Outcome {
        // `try_attach` refuses once the interpreter is finalizing: the batch stays with the
        // pipeline (kept in its store, or counted at close) instead of the thread hanging.
        Python::try_attach(|py| {
            let events = batch.iter().map(|e| PyBytes::new(py, e));
            let list = match PyList::new(py, events) {
                Ok(list) => list,
                Err(e) => return Outcome::retry(format!("could not build the batch: {e}")),
            };
            match call(self.callable.bind(py), list) {
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
