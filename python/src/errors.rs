//! The exception classes and the one mapping from `auditbuf::Error` to them.
//!
//! The classes are made at import with `type(name, bases, namespace)`, so that some also
//! derive from a built-in (`InvalidEvent` is a `ValueError`, `Timeout` a `TimeoutError`),
//! which a native exception type of the limited API cannot do. Each carries the status
//! code of `Error::code()` (the C ABI's and Go's) as `.code` and its name as `.name`.

use auditbuf::{Error, Pipeline};
use pyo3::exceptions::{
    PyException, PyOSError, PyRuntimeError, PyRuntimeWarning, PyTimeoutError, PyTypeError,
    PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use serde::ser::Error as _;

/// Every class, made once per interpreter.
pub(crate) struct Classes {
    pub(crate) base: Py<PyType>,
    full: Py<PyType>,
    timeout: Py<PyType>,
    closed: Py<PyType>,
    forked: Py<PyType>,
    invalid_event: Py<PyType>,
    serialize: Py<PyType>,
    store_full: Py<PyType>,
    store: Py<PyType>,
    config: Py<PyType>,
    io: Py<PyType>,
    spawn: Py<PyType>,
    not_durable: Py<PyType>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

pub(crate) fn classes(py: Python<'_>) -> PyResult<&'static Classes> {
    CLASSES.get_or_try_init(py, || make(py))
}

fn class<'py>(
    py: Python<'py>,
    name: &str,
    bases: &[Bound<'py, PyType>],
    code: Option<u32>,
    doc: &str,
) -> PyResult<Py<PyType>> {
    let ns = PyDict::new(py);
    ns.set_item("__doc__", doc)?;
    ns.set_item("__module__", "auditbuf")?;
    if let Some(code) = code {
        ns.set_item("code", code)?;
        ns.set_item("name", Error::code_name(code).unwrap_or("unknown"))?;
    }
    let made = py
        .get_type::<PyType>()
        .call1((name, PyTuple::new(py, bases)?, ns))?;
    Ok(made.cast_into::<PyType>()?.unbind())
}

fn make(py: Python<'_>) -> PyResult<Classes> {
    let base = class(
        py,
        "AuditbufError",
        &[py.get_type::<PyException>()],
        None,
        "Base of every auditbuf error. `code` is the status code shared with the C ABI and Go \
         (`auditbuf::Error::code()`), `name` its name (\"full\", \"invalid_json\", …).",
    )?;
    let b = base.bind(py).clone();
    b.setattr("code", 0)?;
    b.setattr("name", "unknown")?;
    // On the class too: an exception a caller makes itself (`InvalidEvent("x")`, in a
    // test or a wrapper) has `.field` as well.
    b.setattr("field", py.None())?;
    let invalid_event = class(
        py,
        "InvalidEvent",
        &[b.clone(), py.get_type::<PyValueError>()],
        None,
        "The event itself was refused (not JSON, not an object, not UTF-8, too large, a \
         required field empty, a field the receiver would reject); `name` says which. \
         Retrying the same event fails again. Counted in `stats().rejected`.",
    )?;
    let closed = class(
        py,
        "Closed",
        std::slice::from_ref(&b),
        Some(12),
        "The pipeline is closed and takes no more events.",
    )?;
    Ok(Classes {
        full: class(
            py,
            "Full",
            std::slice::from_ref(&b),
            Some(10),
            "The queue is full (overflow \"drop_newest\"): the event was not taken. Counted in \
             `stats().rejected.queue_full`. Returned without waiting (from Python, without \
             the yield other languages' callers make now and then: the GIL already runs \
             Python threads one at a time).",
        )?,
        timeout: class(
            py,
            "Timeout",
            &[b.clone(), py.get_type::<PyTimeoutError>()],
            Some(11),
            "No queue slot came free within `block_timeout` (overflow \"block\").",
        )?,
        forked: class(
            py,
            "Forked",
            &[closed.bind(py).clone()],
            Some(13),
            "This process is a fork() child of the one that made the pipeline: its flush \
             thread and store belong to the parent. Make a new Pipeline in the child.",
        )?,
        closed,
        serialize: class(
            py,
            "SerializeError",
            &[invalid_event.bind(py).clone(), py.get_type::<PyTypeError>()],
            Some(20),
            "A value of the event has no JSON form (a set, an object, NaN, a non-str dict \
             key); the message names where it sits, e.g. `event_data.items[3]`. Also an \
             event, or a `record_event` argument (named in `field`), of a type the method \
             does not take. Counted in `stats().rejected.serialize`.",
        )?,
        invalid_event,
        store_full: class(
            py,
            "StoreFull",
            std::slice::from_ref(&b),
            Some(21),
            "The backing store is at its limit (overflow \"spill\" or durability \"wal\").",
        )?,
        store: class(
            py,
            "StoreError",
            std::slice::from_ref(&b),
            Some(22),
            "The backing store failed; the message names the store and its file or table.",
        )?,
        config: class(
            py,
            "ConfigError",
            &[b.clone(), py.get_type::<PyValueError>()],
            Some(30),
            "Invalid configuration; `field` names the field of the pipeline document.",
        )?,
        io: class(
            py,
            "IoError",
            &[b.clone(), py.get_type::<PyOSError>()],
            Some(31),
            "A file the configuration names (token, CA) could not be read.",
        )?,
        spawn: class(
            py,
            "SpawnError",
            &[b.clone(), py.get_type::<PyRuntimeError>()],
            Some(32),
            "The flush thread could not be started.",
        )?,
        not_durable: class(
            py,
            "NotDurableWarning",
            &[py.get_type::<PyRuntimeWarning>()],
            Some(1),
            "Durability \"wal\": the event was accepted and will be sent, but the fsync that \
                 should make it survive a crash failed. A warning, not an error.",
        )?,
        base,
    })
}

/// Adds every class to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let c = classes(m.py())?;
    for class in [
        &c.base,
        &c.full,
        &c.timeout,
        &c.closed,
        &c.forked,
        &c.invalid_event,
        &c.serialize,
        &c.store_full,
        &c.store,
        &c.config,
        &c.io,
        &c.spawn,
        &c.not_durable,
    ] {
        let class = class.bind(m.py());
        m.add(class.name()?, class)?;
    }
    Ok(())
}

/// The exception for `e`, its `code`, `name` and `field` (`None` unless a field is at
/// fault) set.
pub(crate) fn to_py_err(py: Python<'_>, e: &Error) -> PyErr {
    match build(py, e, &e.to_string()) {
        Ok(err) => err,
        Err(err) => err,
    }
}

/// Like [`to_py_err`] with a message of the binding's own.
pub(crate) fn to_py_err_with(py: Python<'_>, e: &Error, message: &str) -> PyErr {
    match build(py, e, message) {
        Ok(err) => err,
        Err(err) => err,
    }
}

fn build(py: Python<'_>, e: &Error, message: &str) -> PyResult<PyErr> {
    let c = classes(py)?;
    let class = match e {
        Error::Full => &c.full,
        Error::Timeout(_) => &c.timeout,
        Error::Closed => &c.closed,
        Error::Forked => &c.forked,
        Error::InvalidUtf8 { .. }
        | Error::InvalidJson { .. }
        | Error::NotAnObject
        | Error::TooLarge { .. }
        | Error::MissingField { .. }
        | Error::InvalidField { .. } => &c.invalid_event,
        Error::Serialize(_) => &c.serialize,
        Error::StoreFull { .. } => &c.store_full,
        Error::Store(_) => &c.store,
        Error::Config(_) => &c.config,
        Error::Io(_) => &c.io,
        Error::Spawn(_) => &c.spawn,
        Error::NotDurable(_) => &c.not_durable,
        _ => &c.base,
    };
    let exc = class.bind(py).call1((message,))?;
    exc.setattr("code", e.code())?;
    exc.setattr("name", e.name())?;
    // Every auditbuf exception has `field`, `None` where no field is at fault: handlers
    // that read `e.field` work for every code.
    exc.setattr("field", py.None())?;
    match e {
        Error::MissingField { field }
        | Error::InvalidField { field, .. }
        | Error::InvalidJson {
            field: Some(field), ..
        } => {
            exc.setattr("field", *field)?;
        }
        Error::Config(c) => exc.setattr("field", c.field.as_str())?,
        _ => {}
    }
    Ok(PyErr::from_value(exc))
}

/// An event, or a field of one, of a Python type the record method does not take: a
/// `SerializeError` (also a `TypeError`, what Python raises for a wrong type) with
/// `message`, and `.field` when a field is named; counted in `stats().rejected.serialize`
/// like the core's own refusals.
pub(crate) fn wrong_type(
    py: Python<'_>,
    p: &Pipeline,
    field: Option<&str>,
    message: &str,
) -> PyErr {
    let e = Error::Serialize(serde_json::Error::custom(message));
    refused(py, p, &e, message, field)
}

/// A refusal of the binding's own finding, counted in `stats().rejected` as `e` would be
/// by the core: `e`'s exception with `message`, and `.field` when a field is named.
pub(crate) fn refused(
    py: Python<'_>,
    p: &Pipeline,
    e: &Error,
    message: &str,
    field: Option<&str>,
) -> PyErr {
    p.count_rejected(e);
    let err = to_py_err_with(py, e, message);
    match field.map(|field| err.value(py).setattr("field", field)) {
        Some(Err(failed)) => failed,
        _ => err,
    }
}

/// An exception raised by Python code a record method called (a `tzinfo`, an `__index__`),
/// counted in `stats().rejected.serialize` (the event could not be encoded) and raised as
/// it is.
pub(crate) fn raised(p: &Pipeline, err: PyErr) -> PyErr {
    p.count_rejected(&Error::Serialize(serde_json::Error::custom(
        err.to_string(),
    )));
    err
}

/// Issues the `NotDurableWarning` of an accepted event whose fsync failed.
pub(crate) fn warn_not_durable(py: Python<'_>, e: &Error) -> PyResult<()> {
    let warning = to_py_err(py, e).into_value(py);
    py.import("warnings")?
        .getattr("warn")?
        .call1((warning, py.None(), 2))?;
    Ok(())
}
