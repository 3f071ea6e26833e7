//! `auditbuf.Pipeline`: the Rust pipeline behind a frozen Python class.

use std::sync::Arc;
use std::time::Duration;

use auditbuf::{Error, Pipeline, PipelineConfig};
use pyo3::PyTraverseError;
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::PyType;
use serde::ser::Error as _;

use crate::document::{
    Arg, Document, HttpArgs, PipelineArgs, SinkArgs, config_err, count_arg, str_arg,
};
use crate::encode::Fail;
use crate::errors::{to_py_err, to_py_err_with, warn_not_durable};
use crate::lifetime::{close_before_collected, register};
use crate::record_event::EventArgs;
use crate::sink::{PySink, SinkRef};
use crate::stats::{DeadLetter, Report, Stats};
use crate::wait::{GilPark, run_interruptibly};

/// A year: what `timeout=None` waits.
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// Buffers audit events and ships them from a flush thread; see `_auditbuf.pyi`.
#[pyclass(frozen, weakref, module = "auditbuf", name = "Pipeline")]
pub(crate) struct PyPipeline {
    /// Taken only by `Drop`, which closes it without the GIL.
    inner: Option<Arc<Pipeline>>,
    /// A Python sink: shown to the cycle collector (`__traverse__`, `__clear__`).
    sink: Option<SinkRef>,
}

impl Drop for PyPipeline {
    fn drop(&mut self) {
        if let Some(pipeline) = self.inner.take() {
            // Dropping the last handle closes the pipeline (up to its drop_timeout): never
            // with the GIL held, or a Python sink could not finish its call.
            Python::attach(|py| py.detach(move || drop(pipeline)));
        }
    }
}

/// What a `record*` call ended with, turned into a return value, a warning or an
/// exception.
pub(crate) fn finish(
    py: Python<'_>,
    result: Result<(), Error>,
    park: GilPark<'_>,
    failed: Option<(Fail, &str)>,
) -> PyResult<()> {
    let e = match result {
        Ok(()) => return Ok(()),
        Err(e @ Error::NotDurable(_)) => return warn_not_durable(py, &e),
        Err(e) => e,
    };
    if let Some(interrupt) = park.interrupt {
        return Err(interrupt);
    }
    match failed {
        Some((Fail::Raised(err), _)) => Err(err),
        Some((f @ Fail::Unsupported { .. }, prefix)) => {
            Err(to_py_err_with(py, &e, &f.message(prefix)))
        }
        _ => Err(to_py_err(py, &e)),
    }
}

/// The core's error for an encoder failure (what it is counted as).
pub(crate) fn error_of(f: &Fail, limit: usize, prefix: &str) -> Error {
    match f {
        Fail::TooLarge => Error::TooLarge {
            size: limit.saturating_add(1),
            limit,
        },
        _ => Error::Serialize(serde_json::Error::custom(f.message(prefix))),
    }
}

impl PyPipeline {
    fn pipeline(&self) -> PyResult<&Arc<Pipeline>> {
        self.inner
            .as_ref()
            .ok_or_else(|| PyRuntimeError::new_err("auditbuf: the pipeline is gone"))
    }

    /// The pipeline, for a record call: `Closed` (or `Forked`) first, before the event is
    /// looked at, as the README promises (a closed pipeline refuses every call with
    /// `Closed`, whatever the event).
    fn open_pipeline(&self, py: Python<'_>) -> PyResult<&Arc<Pipeline>> {
        let p = self.pipeline()?;
        p.refuse_if_closed().map_err(|e| to_py_err(py, &e))?;
        Ok(p)
    }

    fn start(
        py: Python<'_>,
        build: impl FnOnce() -> Result<Pipeline, Error> + Send,
        exit_timeout: f64,
        sink: Option<SinkRef>,
    ) -> PyResult<Py<Self>> {
        let exit_timeout = deadline(py, "exit_timeout", Some(exit_timeout))?;
        // Opening a store does I/O and starts the flush thread: without the GIL.
        let pipeline = Arc::new(py.detach(build).map_err(|e| to_py_err(py, &e))?);
        register(&pipeline, exit_timeout);
        let watched = sink.is_some().then(|| Arc::downgrade(&pipeline));
        let object = Py::new(
            py,
            PyPipeline {
                inner: Some(pipeline),
                sink,
            },
        )?;
        if let Some(pipeline) = watched {
            close_before_collected(py, &object, pipeline)?;
        }
        Ok(object)
    }

    /// The sink: a callable, or the document for `url`, or neither (then the caller's
    /// document must name one).
    fn sink_choice(
        py: Python<'_>,
        url: Option<&str>,
        sink: Option<&Bound<'_, PyAny>>,
        datastorage: bool,
        http: &HttpArgs<'_>,
    ) -> PyResult<SinkChoice> {
        match (sink, url) {
            (Some(_), Some(_)) => Err(config_err(py, "sink", "give url= or sink=, not both")),
            (Some(callable), None) => {
                if !callable.is_callable() {
                    return Err(PyTypeError::new_err(
                        "sink must be a callable taking a list of bytes",
                    ));
                }
                if let Some(name) = http.first_given() {
                    return Err(config_err(
                        py,
                        name,
                        "only for url= (an HTTP sink), not with sink=",
                    ));
                }
                Ok(SinkChoice::Callable(PySink::new(callable.clone().unbind())))
            }
            (None, Some(url)) => Ok(SinkChoice::Document(http.sink_document(url, datastorage)?)),
            (None, None) => Ok(SinkChoice::None),
        }
    }
}

enum SinkChoice {
    Callable(PySink),
    Document(serde_json::Value),
    None,
}

#[pymethods]
impl PyPipeline {
    #[new]
    #[pyo3(signature = (
        url = None, *, sink = None, datastorage = None, service = None, queue_capacity = None,
        batch_size = None, flush_interval = None, overflow = None, block_timeout = None,
        max_event_bytes = None, durability = None, backing_store = None, headers = None,
        token_file = None, bearer_token = None, timeout = None, connect_timeout = None,
        ca_file = None, format = None, exit_timeout = None, config = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new<'py>(
        py: Python<'py>,
        url: Arg<'py>,
        sink: Arg<'py>,
        datastorage: Arg<'py>,
        service: Arg<'py>,
        queue_capacity: Arg<'py>,
        batch_size: Arg<'py>,
        flush_interval: Arg<'py>,
        overflow: Arg<'py>,
        block_timeout: Arg<'py>,
        max_event_bytes: Arg<'py>,
        durability: Arg<'py>,
        backing_store: Arg<'py>,
        headers: Arg<'py>,
        token_file: Arg<'py>,
        bearer_token: Arg<'py>,
        timeout: Arg<'py>,
        connect_timeout: Arg<'py>,
        ca_file: Arg<'py>,
        format: Arg<'py>,
        exit_timeout: Arg<'py>,
        config: Arg<'py>,
    ) -> PyResult<Py<Self>> {
        let SinkArgs {
            url,
            datastorage,
            exit_timeout,
            http,
        } = SinkArgs::of(
            url,
            datastorage,
            exit_timeout,
            format,
            headers,
            token_file,
            bearer_token,
            timeout,
            connect_timeout,
            ca_file,
        )?;
        let mut doc = Document::new(py, config.as_ref())?;
        doc.settings(&PipelineArgs {
            service: str_arg("service", service)?,
            queue_capacity: count_arg("queue_capacity", queue_capacity)?,
            batch_size: count_arg("batch_size", batch_size)?,
            flush_interval,
            overflow: str_arg("overflow", overflow)?,
            block_timeout,
            max_event_bytes: count_arg("max_event_bytes", max_event_bytes)?,
            durability: str_arg("durability", durability)?,
            backing_store,
        })?;
        let choice = Self::sink_choice(py, url.as_deref(), sink.as_ref(), datastorage, &http)?;
        let callable = match choice {
            SinkChoice::Callable(s) => Some(s),
            SinkChoice::Document(d) => {
                doc.put("sink", d)?;
                None
            }
            SinkChoice::None if doc.map.contains_key("sink") => None,
            SinkChoice::None => {
                return Err(config_err(
                    py,
                    "url",
                    "missing: give url= (the collector) or sink= (a callable)",
                ));
            }
        };
        let parsed = PipelineConfig::from_json(&doc.text()).map_err(|e| to_py_err(py, &e))?;
        let sink_ref = callable.as_ref().map(PySink::reference);
        Self::start(
            py,
            move || match callable {
                Some(sink) => parsed.build_with_sink(sink),
                None => parsed.build(),
            },
            exit_timeout,
            sink_ref,
        )
    }

    /// A pipeline configured from the environment as `auditbuf::PipelineConfig::from_env`
    /// reads it (`{prefix}_CONFIG`, `{prefix}_BACKING_STORE`, the RabbitMQ sink from
    /// `{prefix}_RABBITMQ_URL` and `_QUEUE`), or with the sink of the arguments.
    #[classmethod]
    #[pyo3(signature = (
        prefix = "AUDIT", *, url = None, sink = None, datastorage = None, headers = None,
        token_file = None, bearer_token = None, timeout = None, connect_timeout = None,
        ca_file = None, format = None, exit_timeout = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn from_env<'py>(
        _cls: &Bound<'py, PyType>,
        py: Python<'py>,
        prefix: &str,
        url: Arg<'py>,
        sink: Arg<'py>,
        datastorage: Arg<'py>,
        headers: Arg<'py>,
        token_file: Arg<'py>,
        bearer_token: Arg<'py>,
        timeout: Arg<'py>,
        connect_timeout: Arg<'py>,
        ca_file: Arg<'py>,
        format: Arg<'py>,
        exit_timeout: Arg<'py>,
    ) -> PyResult<Py<Self>> {
        let SinkArgs {
            url,
            datastorage,
            exit_timeout,
            http,
        } = SinkArgs::of(
            url,
            datastorage,
            exit_timeout,
            format,
            headers,
            token_file,
            bearer_token,
            timeout,
            connect_timeout,
            ca_file,
        )?;
        let parsed = PipelineConfig::from_env(prefix).map_err(|e| to_py_err(py, &e))?;
        let choice = Self::sink_choice(py, url.as_deref(), sink.as_ref(), datastorage, &http)?;
        match (&choice, parsed.sink().is_some()) {
            (SinkChoice::None, false) => {
                return Err(config_err(
                    py,
                    "url",
                    &format!(
                        "missing: give url= (the collector) or sink= (a callable), or set \
                         {prefix}_RABBITMQ_URL and {prefix}_RABBITMQ_QUEUE"
                    ),
                ));
            }
            (SinkChoice::Callable(_) | SinkChoice::Document(_), true) => {
                return Err(config_err(
                    py,
                    "sink",
                    &format!("given both by {prefix}_RABBITMQ_* and as url= or sink="),
                ));
            }
            _ => {}
        }
        let document_sink = match &choice {
            SinkChoice::Document(d) => {
                let doc = serde_json::json!({ "sink": d }).to_string();
                let parsed = PipelineConfig::from_json(&doc).map_err(|e| to_py_err(py, &e))?;
                parsed.sink().cloned()
            }
            _ => None,
        };
        let sink_ref = match &choice {
            SinkChoice::Callable(s) => Some(s.reference()),
            _ => None,
        };
        Self::start(
            py,
            move || match (choice, document_sink) {
                (SinkChoice::Callable(s), _) => parsed.build_with_sink(s),
                (_, Some(sink)) => parsed.build_with_sink(sink.open()?),
                // The sink of the environment.
                _ => parsed.build(),
            },
            exit_timeout,
            sink_ref,
        )
    }

    /// Shows the cycle collector the sink this pipeline holds.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Only tried: the flush thread holds the lock for an instant, with the GIL (so
        // never while the collector runs, on an interpreter with a GIL); a reference not
        // shown keeps the cycle alive, never frees what is in use.
        if let Some(Ok(sink)) = self.sink.as_ref().map(|s| s.try_lock())
            && let Some(callable) = sink.as_ref()
        {
            visit.call(callable)?;
        }
        Ok(())
    }

    /// The collector found this pipeline in a cycle nothing else refers to (a sink that is
    /// a bound method of the object holding the pipeline): lets go of the sink, which
    /// breaks the cycle. The pipeline was closed before (`close_before_collected`); closed
    /// again here in case it was not (the close returns at once if it was).
    fn __clear__(&self) {
        let Some(sink) = &self.sink else {
            return;
        };
        if let Some(pipeline) = &self.inner {
            Python::attach(|py| py.detach(|| pipeline.close(pipeline.drop_timeout())));
        }
        let callable = sink.lock().ok().and_then(|mut s| s.take());
        drop(callable);
    }

    /// Records one event: a dict, or JSON text as bytes, bytearray, memoryview or str.
    fn record(&self, py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<()> {
        crate::record::record(py, self.open_pipeline(py)?, event)
    }

    /// Records a CADF event: a dict with CADF's wire names (`cadf.rs`).
    fn record_cadf(&self, py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<()> {
        crate::cadf::record(py, self.open_pipeline(py)?, event)
    }

    /// Records an event in the DataStorage shape (`AuditEventRequest`).
    #[pyo3(signature = (
        *, event_type, event_category, event_action, event_outcome, correlation_id,
        event_data = None, actor_type = None, actor_id = None, actor_ip = None,
        resource_type = None, resource_id = None, parent_event_id = None,
        parent_event_date = None, namespace = None, cluster_id = None, severity = None,
        duration_ms = None, error_code = None, error_message = None, retention_days = None,
        is_sensitive = None, event_timestamp = None, version = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn record_event<'py>(
        &self,
        py: Python<'py>,
        event_type: Bound<'py, PyAny>,
        event_category: Bound<'py, PyAny>,
        event_action: Bound<'py, PyAny>,
        event_outcome: Bound<'py, PyAny>,
        correlation_id: Bound<'py, PyAny>,
        event_data: Option<Bound<'py, PyAny>>,
        actor_type: Option<Bound<'py, PyAny>>,
        actor_id: Option<Bound<'py, PyAny>>,
        actor_ip: Option<Bound<'py, PyAny>>,
        resource_type: Option<Bound<'py, PyAny>>,
        resource_id: Option<Bound<'py, PyAny>>,
        parent_event_id: Option<Bound<'py, PyAny>>,
        parent_event_date: Option<Bound<'py, PyAny>>,
        namespace: Option<Bound<'py, PyAny>>,
        cluster_id: Option<Bound<'py, PyAny>>,
        severity: Option<Bound<'py, PyAny>>,
        duration_ms: Option<Bound<'py, PyAny>>,
        error_code: Option<Bound<'py, PyAny>>,
        error_message: Option<Bound<'py, PyAny>>,
        retention_days: Option<Bound<'py, PyAny>>,
        is_sensitive: Option<Bound<'py, PyAny>>,
        event_timestamp: Option<Bound<'py, PyAny>>,
        version: Option<Bound<'py, PyAny>>,
    ) -> PyResult<()> {
        let event = EventArgs {
            event_type,
            event_category,
            event_action,
            event_outcome,
            correlation_id,
            event_data,
            actor_type,
            actor_id,
            actor_ip,
            resource_type,
            resource_id,
            parent_event_id,
            parent_event_date,
            namespace,
            cluster_id,
            severity,
            duration_ms,
            error_code,
            error_message,
            retention_days,
            is_sensitive,
            event_timestamp,
            version,
        };
        crate::record_event::record(py, self.open_pipeline(py)?, event)
    }

    /// Waits until everything recorded so far is settled, or `timeout` seconds pass.
    // The text signature says 5.0: pyo3 cannot render `Some(5.0)`, and shows `...`.
    #[pyo3(signature = (timeout = Some(5.0)), text_signature = "($self, /, timeout=5.0)")]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Report> {
        let p = Arc::clone(self.pipeline()?);
        let timeout = deadline(py, "timeout", timeout)?;
        if p.on_own_flush_thread() {
            // The sink flushing its own pipeline: returns at once, not completed.
            return Ok(p.flush(timeout).into());
        }
        Ok(run_interruptibly(py, move || p.flush(timeout))?.into())
    }

    /// Stops taking events, sends what it can within `timeout` seconds, keeps or counts
    /// the rest.
    // The text signature says 5.0: pyo3 cannot render `Some(5.0)`, and shows `...`.
    #[pyo3(signature = (timeout = Some(5.0)), text_signature = "($self, /, timeout=5.0)")]
    fn close(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Report> {
        let p = Arc::clone(self.pipeline()?);
        let timeout = deadline(py, "timeout", timeout)?;
        if p.on_own_flush_thread() {
            // The sink closing its own pipeline: takes effect once it returns.
            return Ok(p.close(timeout).into());
        }
        Ok(run_interruptibly(py, move || p.close(timeout))?.into())
    }

    /// A consistent snapshot of the counters.
    fn stats(&self) -> PyResult<Stats> {
        Ok(self.pipeline()?.stats().into())
    }

    /// The pipeline's metrics in the Prometheus text format (version 0.0.4), as the Rust
    /// library and the C ABI give them: kubernaut's names plus auditbuf's, with the
    /// write-duration histogram and the backing store's gauges, each labelled `service`.
    /// Never blocks on the flush thread.
    fn metrics_text(&self) -> PyResult<String> {
        Ok(self.pipeline()?.metrics_text())
    }

    /// The dead letters kept in memory (the newest `dead_letter_capacity`).
    fn dead_letters(&self) -> PyResult<Vec<DeadLetter>> {
        Ok(self
            .pipeline()?
            .dead_letters()
            .into_iter()
            .map(DeadLetter::from)
            .collect())
    }

    /// The last send, store or rejection error, if any.
    fn last_error(&self) -> PyResult<Option<String>> {
        Ok(self.pipeline()?.last_error())
    }

    /// The configured service name.
    #[getter]
    fn service(&self) -> PyResult<String> {
        Ok(self.pipeline()?.service().to_owned())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py, Some(5.0))?;
        Ok(false)
    }

    fn __repr__(&self) -> PyResult<String> {
        Ok(format!(
            "<auditbuf.Pipeline service={:?}>",
            self.pipeline()?.service()
        ))
    }
}

/// A `timeout=` argument in seconds; `None` waits without a deadline (a year).
fn deadline(py: Python<'_>, field: &str, timeout: Option<f64>) -> PyResult<Duration> {
    match timeout {
        None => Ok(FOREVER),
        // Beyond what a `Duration` holds (1e300, 2**64) is as good as without a deadline.
        Some(t) if t.is_finite() && t >= 0.0 => {
            Ok(Duration::try_from_secs_f64(t).map_or(FOREVER, |d| d.min(FOREVER)))
        }
        Some(_) => Err(config_err(
            py,
            field,
            "must be a finite number of seconds, 0 or more",
        )),
    }
}
