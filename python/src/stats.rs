//! `Stats`, `Rejected`, `Dropped`, `Report` and `DeadLetter`: frozen snapshots with named
//! fields, equality, a readable `repr` and `as_dict()`.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Declares a frozen record class with its fields, `__repr__`, `__eq__` and `as_dict()`.
macro_rules! record {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $ty:ty),* $(,)? } $(methods { $($methods:tt)* })?) => {
        $(#[$doc])*
        #[pyclass(frozen, get_all, eq, module = "auditbuf")]
        #[derive(Debug, Clone, PartialEq)]
        pub(crate) struct $name {
            $(pub(crate) $field: $ty,)*
        }

        #[pymethods]
        impl $name {
            fn __repr__(&self) -> String {
                let mut s = String::from(concat!(stringify!($name), "("));
                $(
                    if s.len() > stringify!($name).len() + 1 {
                        s.push_str(", ");
                    }
                    s.push_str(concat!(stringify!($field), "="));
                    s.push_str(&Field::repr(&self.$field));
                )*
                s.push(')');
                s
            }

            /// The fields as a dict (nested records as dicts too).
            fn as_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
                let d = PyDict::new(py);
                $(d.set_item(stringify!($field), Field::to_py(&self.$field, py)?)?;)*
                Ok(d)
            }

            $($($methods)*)?
        }
    };
}

/// What a field of a record is, for `repr` and `as_dict`.
trait Field {
    fn repr(&self) -> String;
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>>;
}

impl Field for u64 {
    fn repr(&self) -> String {
        self.to_string()
    }
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.into_pyobject(py)?.into_any())
    }
}

impl Field for bool {
    fn repr(&self) -> String {
        if *self { "True" } else { "False" }.to_owned()
    }
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.into_pyobject(py)?.to_owned().into_any())
    }
}

impl Field for f64 {
    fn repr(&self) -> String {
        format!("{self:?}")
    }
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.into_pyobject(py)?.into_any())
    }
}

impl Field for String {
    fn repr(&self) -> String {
        format!("{self:?}")
    }
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.into_pyobject(py)?.into_any())
    }
}

impl Field for Vec<u8> {
    fn repr(&self) -> String {
        format!("b{:?}", String::from_utf8_lossy(self))
    }
    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(pyo3::types::PyBytes::new(py, self).into_any())
    }
}

macro_rules! nested {
    ($($t:ty),*) => {$(
        impl Field for $t {
            fn repr(&self) -> String {
                self.__repr__()
            }
            fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                Ok(self.as_dict(py)?.into_any())
            }
        }
    )*};
}
nested!(Rejected, Dropped, Stats);

record! {
    /// Calls turned away by reason; none of these events entered the pipeline.
    Rejected {
        queue_full: u64,
        block_timeout: u64,
        closed: u64,
        invalid_utf8: u64,
        invalid_json: u64,
        not_an_object: u64,
        too_large: u64,
        missing_field: u64,
        invalid_field: u64,
        serialize: u64,
        store_full: u64,
        store_error: u64,
    }
    methods {
    /// All rejected calls, whatever the reason.
    fn total(&self) -> u64 {
        self.queue_full
            + self.block_timeout
            + self.closed
            + self.invalid_utf8
            + self.invalid_json
            + self.not_an_object
            + self.too_large
            + self.missing_field
            + self.invalid_field
            + self.serialize
            + self.store_full
            + self.store_error
    }
    }
}

record! {
    /// Accepted events given up, by reason.
    Dropped {
        shutdown: u64,
        store_full: u64,
        damaged: u64,
        oldest: u64,
    }
    methods {
    /// All dropped events, whatever the reason.
    fn total(&self) -> u64 {
        self.shutdown + self.store_full + self.damaged + self.oldest
    }
    }
}

record! {
    /// A consistent snapshot of a pipeline's counters: in every one,
    /// `recorded + recovered == delivered + dead_lettered + failed + dropped.total() +
    /// in_flight + queued + stored`.
    Stats {
        recorded: u64,
        recovered: u64,
        delivered: u64,
        dead_lettered: u64,
        failed: u64,
        dropped: Dropped,
        in_flight: u64,
        queued: u64,
        stored: u64,
        rejected: Rejected,
        sends: u64,
        retries: u64,
        redelivered: u64,
        endpoint_refusals: u64,
        batches_failed: u64,
        gap_markers: u64,
        dead_lettered_too_large: u64,
        dead_lettered_by_store: u64,
    }
    methods {
    /// Whether the accounting invariant holds (it always should).
    fn is_consistent(&self) -> bool {
        self.recorded + self.recovered
            == self.settled() + self.in_flight + self.queued + self.stored
    }

    /// Events that reached a terminal counter.
    fn settled(&self) -> u64 {
        self.delivered + self.dead_lettered + self.failed + self.dropped.total()
    }
    }
}

record! {
    /// What `flush` or `close` achieved by its deadline.
    Report {
        stats: Stats,
        left: u64,
        completed: bool,
    }
}

record! {
    /// An event the receiver refused for good, with its reason.
    DeadLetter {
        event: Vec<u8>,
        reason: String,
        at: f64,
    }
}

impl From<auditbuf::Stats> for Stats {
    fn from(s: auditbuf::Stats) -> Self {
        let r = s.rejected;
        let d = s.dropped;
        Stats {
            recorded: s.recorded,
            recovered: s.recovered,
            delivered: s.delivered,
            dead_lettered: s.dead_lettered,
            failed: s.failed,
            dropped: Dropped {
                shutdown: d.shutdown,
                store_full: d.store_full,
                damaged: d.damaged,
                oldest: d.oldest,
            },
            in_flight: s.in_flight,
            queued: s.queued,
            stored: s.stored,
            rejected: Rejected {
                queue_full: r.queue_full,
                block_timeout: r.block_timeout,
                closed: r.closed,
                invalid_utf8: r.invalid_utf8,
                invalid_json: r.invalid_json,
                not_an_object: r.not_an_object,
                too_large: r.too_large,
                missing_field: r.missing_field,
                invalid_field: r.invalid_field,
                serialize: r.serialize,
                store_full: r.store_full,
                store_error: r.store_error,
            },
            sends: s.sends,
            retries: s.retries,
            redelivered: s.redelivered,
            endpoint_refusals: s.endpoint_refusals,
            batches_failed: s.batches_failed,
            gap_markers: s.gap_markers,
            dead_lettered_too_large: s.dead_lettered_too_large,
            dead_lettered_by_store: s.dead_lettered_by_store,
        }
    }
}

impl From<auditbuf::Report> for Report {
    fn from(r: auditbuf::Report) -> Self {
        Report {
            stats: r.stats.into(),
            left: r.left,
            completed: r.completed,
        }
    }
}

impl From<auditbuf::DeadLetter> for DeadLetter {
    fn from(d: auditbuf::DeadLetter) -> Self {
        DeadLetter {
            at: d
                .at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|t| t.as_secs_f64())
                .unwrap_or(0.0),
            event: d.event,
            reason: d.reason,
        }
    }
}
