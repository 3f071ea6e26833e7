//! Pipelines at interpreter exit and in reference cycles: every pipeline is closed with its
//! `exit_timeout` when the interpreter exits (`atexit`), and one whose sink refers back to
//! it is closed before the cycle collector takes its objects apart.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use auditbuf::Pipeline;
use pyo3::prelude::*;
use pyo3::types::PyCFunction;

use crate::pipeline::PyPipeline;

/// Every pipeline made here, with its deadline at interpreter exit.
static LIVE: Mutex<Vec<(Weak<Pipeline>, Duration)>> = Mutex::new(Vec::new());

/// Closes every pipeline still open, each with its `exit_timeout`, all at once and without
/// the GIL. The package registers it with `atexit`.
#[pyfunction(name = "_close_all_at_exit")]
pub(crate) fn close_all_at_exit(py: Python<'_>) {
    // Before any close: flush threads ending from here on leave their thread state alone.
    crate::sink::interpreter_exiting();
    // try_lock: in a fork() child the lock may have been held by a parent's thread.
    let live: Vec<(Arc<Pipeline>, Duration)> = match LIVE.try_lock() {
        Ok(mut live) => live
            .drain(..)
            .filter_map(|(p, t)| p.upgrade().map(|p| (p, t)))
            .collect(),
        Err(_) => return,
    };
    py.detach(|| {
        std::thread::scope(|s| {
            for (p, t) in &live {
                s.spawn(move || p.close(*t));
            }
        });
    });
}

/// Weak references to the pipelines with a Python sink, each with a callback that closes
/// its pipeline; held here so that the collector calls them (it calls only those of weak
/// references that are themselves reachable).
static WATCHED: Mutex<Vec<Py<PyAny>>> = Mutex::new(Vec::new());

/// A pipeline whose sink refers back to it (a bound method of the object holding it) is
/// collected as a cycle. The collector calls weak references' callbacks before it clears
/// any object of the cycle (`__clear__`, emptying the holder's `__dict__`): closing the
/// pipeline there delivers what it holds through a sink whose object is still whole.
/// Called when the pipeline dies of its last reference too: the close `Drop` would do.
pub(crate) fn close_before_collected(
    py: Python<'_>,
    object: &Py<PyPipeline>,
    pipeline: Weak<Pipeline>,
) -> PyResult<()> {
    let callback = PyCFunction::new_closure(py, None, None, move |args, _| -> PyResult<()> {
        let py = args.py();
        if let Some(pipeline) = pipeline.upgrade() {
            py.detach(|| pipeline.close(pipeline.drop_timeout()));
        }
        if let (Ok(weak), Ok(mut watched)) = (args.get_item(0), WATCHED.lock()) {
            watched.retain(|w| !w.is(&weak));
        }
        Ok(())
    })?;
    let weak = py
        .import("weakref")?
        .getattr("ref")?
        .call1((object.bind(py), callback))?;
    if let Ok(mut watched) = WATCHED.lock() {
        watched.push(weak.unbind());
    }
    Ok(())
}

pub(crate) fn register(pipeline: &Arc<Pipeline>, exit_timeout: Duration) {
    if let Ok(mut live) = LIVE.lock() {
        live.retain(|(p, _)| p.strong_count() > 0);
        live.push((Arc::downgrade(pipeline), exit_timeout));
    }
}
