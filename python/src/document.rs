//! The keyword arguments of `Pipeline(...)` turned into the pipeline document that
//! `auditbuf::PipelineConfig` reads (the one document the C ABI and Go take too), so every
//! rule and error message is the core's own.

use auditbuf::{ConfigError, Error};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyString};
use serde_json::{Map, Value};

use crate::encode::{self, Fail, type_name};
use crate::errors::to_py_err;

/// "Wait as long as it takes" for overflow "block": a year, the core's longest deadline.
const FOREVER_MS: u64 = 365 * 24 * 3600 * 1000;

/// A `ConfigError` naming `field`.
pub(crate) fn config_err(py: Python<'_>, field: &str, reason: &str) -> PyErr {
    to_py_err(
        py,
        &Error::Config(Box::new(ConfigError {
            field: field.to_owned(),
            reason: reason.to_owned(),
        })),
    )
}

/// Seconds (an int, a float or a `datetime.timedelta`) as whole milliseconds, rounded up
/// so that a small positive value never becomes 0.
pub(crate) fn millis(field: &str, v: &Bound<'_, PyAny>) -> PyResult<u64> {
    let py = v.py();
    let secs: f64 = if v.hasattr("total_seconds")? {
        v.call_method0("total_seconds")?.extract()?
    } else {
        v.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "{field}: expected seconds (int or float) or a timedelta, not {}",
                v.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(config_err(
            py,
            field,
            "must be a finite number of seconds, 0 or more",
        ));
    }
    Ok((secs * 1000.0).ceil().min(u64::MAX as f64) as u64)
}

/// A Python value (dict, list, str, number, …) as a JSON value, through the event encoder.
pub(crate) fn to_json(field: &str, v: &Bound<'_, PyAny>) -> PyResult<Value> {
    let py = v.py();
    if let Ok(s) = v.cast::<PyString>() {
        // A str is a JSON document of its own (as in AUDIT_BACKING_STORE).
        let text = encode::utf8(s)?;
        let value = serde_json::from_slice(text)
            .map_err(|e| config_err(py, field, &format!("not valid JSON: {e}")))?;
        // A `Value` keeps the last of two equal keys: refused here, as the core refuses
        // them in the documents it reads itself.
        // Named as the core names them in the document: `store.params.path`.
        let prefix = match field {
            "config" => "",
            "backing_store" => "store",
            other => other,
        };
        if let Err(e) = auditbuf::check_document(&String::from_utf8_lossy(text), prefix) {
            return Err(match e {
                Error::Config(c) if c.field == "(document)" => config_err(py, field, &c.reason),
                other => to_py_err(py, &other),
            });
        }
        return Ok(value);
    }
    let Ok(d) = v.cast::<PyDict>() else {
        return Err(PyTypeError::new_err(format!(
            "{field}: expected a dict, not {}",
            v.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        )));
    };
    let mut out = Vec::new();
    match encode::write_object(d, &mut out, usize::MAX, encode::MAX_DEPTH) {
        Ok(_) => {}
        Err(Fail::Raised(e)) => return Err(e),
        Err(f) => return Err(PyTypeError::new_err(f.message(field))),
    }
    serde_json::from_slice(&out).map_err(|e| config_err(py, field, &e.to_string()))
}

/// A keyword argument as given (`None` when left out or given as `None`): checked and
/// converted below, so that every error names the argument.
pub(crate) type Arg<'py> = Option<Bound<'py, PyAny>>;

fn wrong_arg(field: &str, expected: &str, v: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "{field}: expected {expected}, not {}",
        type_name(v)
    ))
}

/// A str argument: `TypeError` naming `field` for another type, `ConfigError` for a str
/// that is not UTF-8 (a lone surrogate).
pub(crate) fn str_arg(field: &str, v: Arg<'_>) -> PyResult<Option<String>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let Ok(s) = v.cast::<PyString>() else {
        return Err(wrong_arg(field, "a str", &v));
    };
    match encode::utf8(s) {
        Ok(bytes) if bytes.contains(&0) => Err(config_err(v.py(), field, "contains U+0000")),
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(bytes).into_owned())),
        Err(_) => Err(config_err(
            v.py(),
            field,
            "is not valid UTF-8 (a lone surrogate)",
        )),
    }
}

/// A path argument: a str or an `os.PathLike` giving one.
pub(crate) fn path_arg(field: &str, v: Arg<'_>) -> PyResult<Option<String>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let path = v
        .py()
        .import("os")?
        .call_method1("fspath", (&v,))
        .map_err(|_| wrong_arg(field, "a str or an os.PathLike", &v))?;
    str_arg(field, Some(path))
}

/// A count argument: an int (not a bool) from 0 to 2^64 - 1; `TypeError` or `ConfigError`
/// naming `field` otherwise (the library's own limits are checked with the document).
pub(crate) fn count_arg(field: &str, v: Arg<'_>) -> PyResult<Option<u64>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if v.is_instance_of::<PyBool>() || !v.is_instance_of::<PyInt>() {
        return Err(wrong_arg(field, "an int", &v));
    }
    v.extract::<u64>().map(Some).map_err(|_| {
        let shown = v.str().map(|s| s.to_string()).unwrap_or_default();
        let why = if shown.starts_with('-') {
            "must not be negative"
        } else {
            "more than 2^64 - 1"
        };
        config_err(v.py(), field, &format!("is {shown}, {why}"))
    })
}

/// A bool argument.
pub(crate) fn bool_arg(field: &str, v: Arg<'_>, default: bool) -> PyResult<bool> {
    match v.filter(|v| !v.is_none()) {
        None => Ok(default),
        Some(v) => match v.cast::<PyBool>() {
            Ok(b) => Ok(b.is_true()),
            Err(_) => Err(wrong_arg(field, "a bool", &v)),
        },
    }
}

/// A number of seconds (int or float, not a bool): `TypeError` naming `field` otherwise.
pub(crate) fn seconds_arg(field: &str, v: Arg<'_>, default: f64) -> PyResult<f64> {
    match v.filter(|v| !v.is_none()) {
        None => Ok(default),
        Some(v) if v.is_instance_of::<PyBool>() => Err(wrong_arg(field, "seconds", &v)),
        Some(v) => v
            .extract::<f64>()
            .map_err(|_| wrong_arg(field, "seconds (int or float)", &v)),
    }
}

/// The HTTP sink's arguments.
#[derive(Debug, Default)]
pub(crate) struct HttpArgs<'py> {
    pub(crate) format: Option<String>,
    pub(crate) headers: Option<Bound<'py, PyAny>>,
    pub(crate) token_file: Option<String>,
    pub(crate) bearer_token: Option<String>,
    pub(crate) timeout: Option<Bound<'py, PyAny>>,
    pub(crate) connect_timeout: Option<Bound<'py, PyAny>>,
    pub(crate) ca_file: Option<String>,
}

/// What `Pipeline(...)` and `Pipeline.from_env(...)` both take, checked: the sink's
/// arguments and the deadline of the close at interpreter exit.
pub(crate) struct SinkArgs<'py> {
    pub(crate) url: Option<String>,
    pub(crate) datastorage: bool,
    pub(crate) exit_timeout: f64,
    pub(crate) http: HttpArgs<'py>,
}

impl<'py> SinkArgs<'py> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn of(
        url: Arg<'py>,
        datastorage: Arg<'py>,
        exit_timeout: Arg<'py>,
        format: Arg<'py>,
        headers: Arg<'py>,
        token_file: Arg<'py>,
        bearer_token: Arg<'py>,
        timeout: Arg<'py>,
        connect_timeout: Arg<'py>,
        ca_file: Arg<'py>,
    ) -> PyResult<Self> {
        Ok(SinkArgs {
            url: str_arg("url", url)?,
            datastorage: bool_arg("datastorage", datastorage, true)?,
            exit_timeout: seconds_arg("exit_timeout", exit_timeout, 1.0)?,
            http: HttpArgs {
                format: str_arg("format", format)?,
                headers: headers.filter(|h| !h.is_none()),
                token_file: path_arg("token_file", token_file)?,
                bearer_token: str_arg("bearer_token", bearer_token)?,
                timeout: timeout.filter(|t| !t.is_none()),
                connect_timeout: connect_timeout.filter(|t| !t.is_none()),
                ca_file: path_arg("ca_file", ca_file)?,
            },
        })
    }
}

impl HttpArgs<'_> {
    /// The first argument given, by name: they only make sense with `url=`.
    pub(crate) fn first_given(&self) -> Option<&'static str> {
        [
            ("format", self.format.is_some()),
            ("headers", self.headers.is_some()),
            ("token_file", self.token_file.is_some()),
            ("bearer_token", self.bearer_token.is_some()),
            ("timeout", self.timeout.is_some()),
            ("connect_timeout", self.connect_timeout.is_some()),
            ("ca_file", self.ca_file.is_some()),
        ]
        .into_iter()
        .find(|(_, given)| *given)
        .map(|(name, _)| name)
    }

    /// The document's `"sink"` for `url`.
    pub(crate) fn sink_document(&self, url: &str, datastorage: bool) -> PyResult<Value> {
        let mut sink = Map::new();
        let kind = if datastorage { "datastorage" } else { "http" };
        sink.insert("type".into(), kind.into());
        sink.insert("url".into(), url.into());
        if let Some(f) = &self.format {
            sink.insert("format".into(), f.as_str().into());
        }
        if let Some(h) = &self.headers {
            sink.insert("headers".into(), to_json("headers", h)?);
        }
        if let Some(t) = &self.token_file {
            sink.insert("token_file".into(), t.as_str().into());
        }
        if let Some(t) = &self.bearer_token {
            sink.insert("bearer_token".into(), t.as_str().into());
        }
        if let Some(t) = &self.timeout {
            sink.insert("timeout_ms".into(), millis("timeout", t)?.into());
        }
        if let Some(t) = &self.connect_timeout {
            sink.insert(
                "connect_timeout_ms".into(),
                millis("connect_timeout", t)?.into(),
            );
        }
        if let Some(c) = &self.ca_file {
            sink.insert("ca_file".into(), c.as_str().into());
        }
        Ok(Value::Object(sink))
    }
}

/// The pipeline settings given as arguments.
#[derive(Debug, Default)]
pub(crate) struct PipelineArgs<'py> {
    pub(crate) service: Option<String>,
    pub(crate) queue_capacity: Option<u64>,
    pub(crate) batch_size: Option<u64>,
    pub(crate) flush_interval: Option<Bound<'py, PyAny>>,
    pub(crate) overflow: Option<String>,
    pub(crate) block_timeout: Option<Bound<'py, PyAny>>,
    pub(crate) max_event_bytes: Option<u64>,
    pub(crate) durability: Option<String>,
    pub(crate) backing_store: Option<Bound<'py, PyAny>>,
}

/// A document under construction; a field given twice (as an argument and in `config=`)
/// is an error naming it.
pub(crate) struct Document<'py> {
    py: Python<'py>,
    pub(crate) map: Map<String, Value>,
}

impl<'py> Document<'py> {
    pub(crate) fn new(py: Python<'py>, config: Option<&Bound<'py, PyAny>>) -> PyResult<Self> {
        let map = match config {
            None => Map::new(),
            Some(c) => match to_json("config", c)? {
                Value::Object(map) => map,
                _ => return Err(config_err(py, "config", "must be a JSON object")),
            },
        };
        Ok(Document { py, map })
    }

    pub(crate) fn put(&mut self, key: &str, value: Value) -> PyResult<()> {
        if self.map.contains_key(key) {
            return Err(config_err(
                self.py,
                key,
                "given both as an argument and in config=",
            ));
        }
        self.map.insert(key.to_owned(), value);
        Ok(())
    }

    /// Adds the settings of `args`.
    pub(crate) fn settings(&mut self, args: &PipelineArgs<'py>) -> PyResult<()> {
        if let Some(v) = &args.service {
            self.put("service", v.as_str().into())?;
        }
        if let Some(v) = args.queue_capacity {
            self.put("queue_capacity", v.into())?;
        }
        if let Some(v) = args.batch_size {
            self.put("batch_max_events", v.into())?;
        }
        if let Some(v) = &args.flush_interval {
            self.put("flush_interval_ms", millis("flush_interval", v)?.into())?;
        }
        if let Some(v) = &args.overflow {
            self.put("overflow", v.as_str().into())?;
        }
        match &args.block_timeout {
            Some(v) => self.put("block_timeout_ms", millis("block_timeout", v)?.into())?,
            None if args.overflow.as_deref() == Some("block")
                && !self.map.contains_key("block_timeout_ms") =>
            {
                self.put("block_timeout_ms", FOREVER_MS.into())?;
            }
            None => {}
        }
        if let Some(v) = args.max_event_bytes {
            self.put("max_event_bytes", v.into())?;
        }
        if let Some(v) = &args.durability {
            self.put("durability", v.as_str().into())?;
        }
        if let Some(v) = &args.backing_store
            && !v.is_none()
        {
            self.put("store", to_json("backing_store", v)?)?;
        }
        Ok(())
    }

    pub(crate) fn text(&self) -> String {
        Value::Object(self.map.clone()).to_string()
    }
}
