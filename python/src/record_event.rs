//! `Pipeline.record_event`: keyword arguments in the DataStorage shape checked and
//! converted one by one (each wrong type or range a counted error naming its argument),
//! then recorded as the core's `AuditEventBytes`.

use auditbuf::{AuditEventBytes, Error, Pipeline};
use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::encode::{self, Fail, opt, text, time, type_name};
use crate::errors::{raised, refused, to_py_err, wrong_type};

use crate::pipeline::{error_of, finish};
use crate::wait::GilPark;

/// The arguments of `Pipeline.record_event`, as Python passed them.
pub(crate) struct EventArgs<'py> {
    pub(crate) event_type: Bound<'py, PyAny>,
    pub(crate) event_category: Bound<'py, PyAny>,
    pub(crate) event_action: Bound<'py, PyAny>,
    pub(crate) event_outcome: Bound<'py, PyAny>,
    pub(crate) correlation_id: Bound<'py, PyAny>,
    pub(crate) event_data: Option<Bound<'py, PyAny>>,
    pub(crate) actor_type: Option<Bound<'py, PyAny>>,
    pub(crate) actor_id: Option<Bound<'py, PyAny>>,
    pub(crate) actor_ip: Option<Bound<'py, PyAny>>,
    pub(crate) resource_type: Option<Bound<'py, PyAny>>,
    pub(crate) resource_id: Option<Bound<'py, PyAny>>,
    pub(crate) parent_event_id: Option<Bound<'py, PyAny>>,
    pub(crate) parent_event_date: Option<Bound<'py, PyAny>>,
    pub(crate) namespace: Option<Bound<'py, PyAny>>,
    pub(crate) cluster_id: Option<Bound<'py, PyAny>>,
    pub(crate) severity: Option<Bound<'py, PyAny>>,
    pub(crate) duration_ms: Option<Bound<'py, PyAny>>,
    pub(crate) error_code: Option<Bound<'py, PyAny>>,
    pub(crate) error_message: Option<Bound<'py, PyAny>>,
    pub(crate) retention_days: Option<Bound<'py, PyAny>>,
    pub(crate) is_sensitive: Option<Bound<'py, PyAny>>,
    pub(crate) event_timestamp: Option<Bound<'py, PyAny>>,
    pub(crate) version: Option<Bound<'py, PyAny>>,
}

/// Records `event` through `p` (open: the caller checked).
pub(crate) fn record<'py>(py: Python<'py>, p: &Pipeline, event: EventArgs<'py>) -> PyResult<()> {
    // A value of a type the field does not take is a SerializeError (also a TypeError)
    // whose message and `.field` name the argument, counted in rejected.serialize.
    let wrong = |name: &str, v: &Bound<'py, PyAny>, takes: &str| {
        wrong_type(
            py,
            p,
            Some(name),
            &format!("{name}: must be {takes}, not {}", type_name(v)),
        )
    };
    let str_of = |name: &str, v: Bound<'py, PyAny>| {
        v.cast_into::<PyString>()
            .map_err(|e| wrong(name, &e.into_inner(), "a str"))
    };
    // None is the same as absent.
    let some = |v: Option<Bound<'py, PyAny>>| v.filter(|v| !v.is_none());
    let opt_str_of =
        |name: &str, v: Option<Bound<'py, PyAny>>| some(v).map(|v| str_of(name, v)).transpose();
    // An int field: another type is a SerializeError, an int out of range an
    // InvalidEvent (invalid_field), what else Python code raised (an `__index__`) is
    // raised as it is; each counted.
    let number = |name: &'static str, v: &Bound<'py, PyAny>, range: &'static str, err: PyErr| {
        if err.is_instance_of::<PyOverflowError>(py) {
            let e = Error::InvalidField {
                field: name,
                reason: range,
            };
            p.count_rejected(&e);
            to_py_err(py, &e)
        } else if err.is_instance_of::<PyTypeError>(py) {
            wrong(name, v, "an int")
        } else {
            raised(p, err)
        }
    };
    let event_type = str_of("event_type", event.event_type)?;
    let event_category = str_of("event_category", event.event_category)?;
    let event_action = str_of("event_action", event.event_action)?;
    let event_outcome = str_of("event_outcome", event.event_outcome)?;
    let correlation_id = str_of("correlation_id", event.correlation_id)?;
    let version = opt_str_of("version", event.version)?;
    let actor_type = opt_str_of("actor_type", event.actor_type)?;
    let actor_id = opt_str_of("actor_id", event.actor_id)?;
    let actor_ip = opt_str_of("actor_ip", event.actor_ip)?;
    let resource_type = opt_str_of("resource_type", event.resource_type)?;
    let resource_id = opt_str_of("resource_id", event.resource_id)?;
    let parent_event_id = opt_str_of("parent_event_id", event.parent_event_id)?;
    let namespace = opt_str_of("namespace", event.namespace)?;
    let cluster_id = opt_str_of("cluster_id", event.cluster_id)?;
    let severity = opt_str_of("severity", event.severity)?;
    let error_code = opt_str_of("error_code", event.error_code)?;
    let error_message = opt_str_of("error_message", event.error_message)?;
    let duration_ms = some(event.duration_ms)
        .map(|v| {
            // DataStorage reads a signed 64-bit integer.
            v.extract::<u64>()
                .and_then(|ms| {
                    i64::try_from(ms)
                        .map(|_| ms)
                        .map_err(|_| PyOverflowError::new_err("over i64::MAX"))
                })
                .map_err(|err| {
                    number(
                        "duration_ms",
                        &v,
                        "must be an int from 0 to 9223372036854775807",
                        err,
                    )
                })
        })
        .transpose()?;
    let retention_days = some(event.retention_days)
        .map(|v| {
            v.extract::<u32>().map_err(|err| {
                number(
                    "retention_days",
                    &v,
                    "must be an int from 0 to 4294967295",
                    err,
                )
            })
        })
        .transpose()?;
    let is_sensitive = some(event.is_sensitive)
        .map(|v| {
            v.extract::<bool>()
                .map_err(|_| wrong("is_sensitive", &v, "a bool"))
        })
        .transpose()?;
    // Fields checked here are counted like the core's own rejections.
    let refuse = |e: Error| -> PyErr {
        p.count_rejected(&e);
        to_py_err(py, &e)
    };
    // A timestamp of another type is a SerializeError naming it; a raising tzinfo is
    // raised as it is; both counted.
    let timestamp_err = |name: &str, f: Fail| match f {
        Fail::Raised(err) => raised(p, err),
        f => wrong_type(py, p, Some(name), &f.message(name)),
    };
    let (event_timestamp, parent_event_date) =
        (some(event.event_timestamp), some(event.parent_event_date));
    let (mut ts_buf, mut parent_buf) = ([0u8; 32], [0u8; 32]);
    let event_timestamp = time("event_timestamp", &event_timestamp, &mut ts_buf)
        .map_err(|f| timestamp_err("event_timestamp", f))?;
    let parent_event_date = time("parent_event_date", &parent_event_date, &mut parent_buf)
        .map_err(|f| timestamp_err("parent_event_date", f))?;
    encode::with_scratch(|scratch| {
        let event_data: Option<&[u8]> = match &event.event_data {
            None => None,
            Some(v) if v.is_none() => None,
            Some(v) => {
                if let Ok(d) = v.cast::<PyDict>() {
                    let limit = usize::MAX;
                    // Inside the event: one level fewer.
                    let depth = encode::MAX_DEPTH - 1;
                    if let Err(f) = encode::write_object(d, scratch, limit, depth) {
                        if let Fail::Raised(err) = f {
                            return Err(raised(p, err));
                        }
                        // Named like a field's error (the path is in the message).
                        let e = error_of(&f, limit, "event_data");
                        let message = f.message("event_data");
                        return Err(refused(py, p, &e, &message, Some("event_data")));
                    }
                    Some(&scratch[..])
                } else if let Ok(s) = v.cast::<PyString>() {
                    Some(text("event_data", s).map_err(refuse)?)
                } else if let Ok(b) = v.cast::<PyBytes>() {
                    Some(b.as_bytes())
                } else {
                    return Err(wrong(
                        "event_data",
                        v,
                        "a dict, or JSON text of an object as str or bytes",
                    ));
                }
            }
        };
        let event = AuditEventBytes {
            version: opt("version", &version).map_err(refuse)?,
            event_type: text("event_type", &event_type).map_err(refuse)?,
            event_timestamp: event_timestamp.map_err(refuse)?,
            event_category: text("event_category", &event_category).map_err(refuse)?,
            event_action: text("event_action", &event_action).map_err(refuse)?,
            event_outcome: text("event_outcome", &event_outcome).map_err(refuse)?,
            correlation_id: text("correlation_id", &correlation_id).map_err(refuse)?,
            actor_type: opt("actor_type", &actor_type).map_err(refuse)?,
            actor_id: opt("actor_id", &actor_id).map_err(refuse)?,
            actor_ip: opt("actor_ip", &actor_ip).map_err(refuse)?,
            resource_type: opt("resource_type", &resource_type).map_err(refuse)?,
            resource_id: opt("resource_id", &resource_id).map_err(refuse)?,
            parent_event_id: opt("parent_event_id", &parent_event_id).map_err(refuse)?,
            parent_event_date: parent_event_date.map_err(refuse)?,
            namespace: opt("namespace", &namespace).map_err(refuse)?,
            cluster_id: opt("cluster_id", &cluster_id).map_err(refuse)?,
            severity: opt("severity", &severity).map_err(refuse)?,
            duration_ms,
            error_code: opt("error_code", &error_code).map_err(refuse)?,
            error_message: opt("error_message", &error_message).map_err(refuse)?,
            retention_days,
            is_sensitive,
            event_data,
        };
        let mut park = GilPark::new(py);
        let result = p.record_event_bytes_with(&mut park, &event);
        finish(py, result, park, None)
    })
}
