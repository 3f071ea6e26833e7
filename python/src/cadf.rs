//! `Pipeline.record_cadf(event)`: a dict with CADF's wire names as the core's `CadfEvent`.
//!
//! Two steps. [`take`] reads the dict: it checks every key and type (naming the field),
//! encodes JSON content, and keeps a reference to every str, so that they stay alive while
//! the GIL is released even if another thread changes the dict. [`record`] then builds the
//! core's borrowing types on those strs and records the event without the GIL; the core
//! checks the values (empty, enumerations, RFC 3339, JSON, U+0000) and encodes.

use std::ops::Range;

use auditbuf::{
    CadfAddress, CadfAttachment, CadfContent, CadfEvent, CadfHost, CadfReason, CadfResource, Error,
    Pipeline,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDateTime, PyDict, PyList, PyString, PyTuple};
use serde::ser::Error as _;

use crate::cadf_path::At;
use crate::encode::{self, Fail, type_name};
use crate::errors::{raised, refused, to_py_err, to_py_err_with, wrong_type};
use crate::pipeline::finish;
use crate::wait::GilPark;

/// Records `event`; see `Pipeline.record_cadf` in `_auditbuf.pyi`.
pub(crate) fn record(py: Python<'_>, p: &Pipeline, event: &Bound<'_, PyAny>) -> PyResult<()> {
    let Ok(d) = event.cast::<PyDict>() else {
        // A `SerializeError` (also a `TypeError`), counted like every refusal.
        return Err(wrong_type(
            py,
            p,
            None,
            &format!("record_cadf() takes a dict, not {}", type_name(event)),
        ));
    };
    encode::with_scratch(|json| {
        let taken = take(d, json).map_err(|r| r.raise(py, p))?;
        let json: &[u8] = json;
        let views = Views::of(&taken, json).map_err(|e| Refusal::Core(e).raise(py, p))?;
        let event = views
            .event(&taken)
            .map_err(|e| Refusal::Core(e).raise(py, p))?;
        // Waits (a free slot under "block", the wal fsync, a spill) release the GIL, so a
        // Python sink can free the slot waited for, and Ctrl-C interrupts them.
        let mut park = GilPark::new(py);
        let result = p.record_cadf_with(&mut park, &event);
        finish(py, result, park, None)
    })
}

type Str<'py> = Bound<'py, PyString>;
/// A key and its value.
type Item<'py> = (Bound<'py, PyAny>, Bound<'py, PyAny>);

/// The event's values, as given.
#[derive(Default)]
struct Taken<'py> {
    type_uri: Option<Str<'py>>,
    id: Option<Str<'py>>,
    event_time: Option<Time<'py>>,
    event_type: Option<Str<'py>>,
    action: Option<Str<'py>>,
    outcome: Option<Str<'py>>,
    reason: Option<[Option<Str<'py>>; 2]>,
    /// Initiator, target, observer.
    resources: [Resource<'py>; 3],
    attachments: Vec<Attachment<'py>>,
    request_path: Option<Str<'py>>,
}

enum Time<'py> {
    Text(Str<'py>),
    /// A datetime, formatted (RFC 3339, UTC).
    Formatted([u8; 32], usize),
}

#[derive(Default)]
struct Resource<'py> {
    type_uri: Option<Str<'py>>,
    name: Option<Str<'py>>,
    domain: Option<Str<'py>>,
    id: Option<Str<'py>>,
    /// `url`, `name`.
    addresses: Vec<[Option<Str<'py>>; 2]>,
    /// `id`, `address`, `agent`, `platform`.
    host: Option<[Option<Str<'py>>; 4]>,
    attachments: Vec<Attachment<'py>>,
    /// `project_id` … `app_credential_id`, in [`EXTENSIONS`]' order.
    extensions: [Option<Str<'py>>; 6],
}

const ROLES: [&str; 3] = ["initiator", "target", "observer"];
const EXTENSIONS: [&str; 6] = [
    "project_id",
    "domain_id",
    "project_name",
    "project_domain_name",
    "domain_name",
    "app_credential_id",
];
const HOST: [&str; 4] = ["id", "address", "agent", "platform"];

struct Attachment<'py> {
    name: Option<Str<'py>>,
    type_uri: Option<Str<'py>>,
    content: Content<'py>,
}

enum Content<'py> {
    Text(Str<'py>),
    /// JSON text given as bytes, sent as written.
    Bytes(Bound<'py, PyBytes>),
    /// A dict or list, encoded into the scratch buffer at this range.
    Encoded(Range<usize>),
}

/// Why the binding turned an event away before the core saw it.
pub(crate) enum Refusal {
    /// A field missing, of the wrong type, or unknown: `InvalidEvent` (`missing_field` or
    /// `invalid_field`) whose `field` names it.
    Field {
        missing: bool,
        field: String,
        message: String,
    },
    /// JSON text given as bytes that are not UTF-8: `InvalidEvent` (`invalid_utf8`) whose
    /// `field` names it (`attachments.content`).
    Utf8 {
        field: String,
        message: String,
        offset: usize,
    },
    /// Content with no JSON form: `SerializeError`, its path in the message.
    Unsupported(String),
    /// Python code the content encoder called (a tzinfo) raised: raised as it is.
    Raised(PyErr),
    /// What the core says about it (a str that is not UTF-8 after all).
    Core(Error),
}

impl Refusal {
    /// Counts the refusal in `stats().rejected`, like the core's own, and makes the
    /// exception.
    fn raise(self, py: Python<'_>, p: &Pipeline) -> PyErr {
        match self {
            Refusal::Field {
                missing,
                field,
                message,
            } => {
                // The class, code and name of the core's error; the field is named below.
                let e = if missing {
                    Error::MissingField { field: "" }
                } else {
                    Error::InvalidField {
                        field: "",
                        reason: "",
                    }
                };
                refused(py, p, &e, &message, Some(&field))
            }
            Refusal::Utf8 {
                field,
                message,
                offset,
            } => refused(
                py,
                p,
                &Error::InvalidUtf8 { offset },
                &message,
                Some(&field),
            ),
            Refusal::Unsupported(message) => {
                let e = Error::Serialize(serde_json::Error::custom(&message));
                p.count_rejected(&e);
                to_py_err_with(py, &e, &message)
            }
            Refusal::Raised(err) => raised(p, err),
            Refusal::Core(e) => {
                p.count_rejected(&e);
                to_py_err(py, &e)
            }
        }
    }
}

/// The items of a dict, copied (Python code run while reading them cannot change them).
fn items<'py>(v: &Bound<'py, PyAny>, at: &At<'_>) -> Result<Vec<Item<'py>>, Refusal> {
    let d = v
        .cast::<PyDict>()
        .map_err(|_| at.invalid(format!("must be a dict, not {}", type_name(v))))?;
    let mut out = Vec::with_capacity(d.len());
    for item in d.items().iter() {
        out.push(item.extract().map_err(Refusal::Raised)?);
    }
    Ok(out)
}

/// The key as a str, if it is one.
fn key_of<'a>(k: &'a Bound<'_, PyAny>) -> Option<&'a str> {
    let s = k.cast::<PyString>().ok()?;
    std::str::from_utf8(encode::utf8(s).ok()?).ok()
}

/// A str, or `None` for `None`; its UTF-8 is checked (and cached in the object).
fn string<'py>(v: &Bound<'py, PyAny>, at: &At<'_>) -> Result<Option<Str<'py>>, Refusal> {
    if v.is_none() {
        return Ok(None);
    }
    let s = v
        .cast::<PyString>()
        .map_err(|_| at.invalid(format!("must be a str, not {}", type_name(v))))?;
    if encode::utf8(s).is_err() {
        return Err(at.invalid("is not valid UTF-8"));
    }
    Ok(Some(s.clone()))
}

/// A list or tuple of `each`; `None` is empty.
fn list<'py, T>(
    v: &Bound<'py, PyAny>,
    at: &At<'_>,
    mut each: impl FnMut(&Bound<'py, PyAny>, &At<'_>) -> Result<T, Refusal>,
) -> Result<Vec<T>, Refusal> {
    let items: Vec<Bound<'py, PyAny>> = if v.is_none() {
        return Ok(Vec::new());
    } else if let Ok(l) = v.cast::<PyList>() {
        l.iter().collect()
    } else if let Ok(t) = v.cast::<PyTuple>() {
        t.iter().collect()
    } else {
        return Err(at.invalid(format!("must be a list, not {}", type_name(v))));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        out.push(each(item, &at.index(i))?);
    }
    Ok(out)
}

/// Reads the event dict.
fn take<'py>(d: &Bound<'py, PyDict>, json: &mut Vec<u8>) -> Result<Taken<'py>, Refusal> {
    let mut t = Taken::default();
    let mut given = [false; 3];
    let top = At::EVENT;
    for (k, v) in items(d.as_any(), &top)? {
        let Some(name) = key_of(&k) else {
            return Err(top.unknown(&k, "a CADF event"));
        };
        let at = top.key(name);
        match name {
            "typeURI" => t.type_uri = string(&v, &at)?,
            "id" => t.id = string(&v, &at)?,
            "eventTime" => t.event_time = time(&v, &at)?,
            "eventType" => t.event_type = string(&v, &at)?,
            "action" => t.action = string(&v, &at)?,
            "outcome" => t.outcome = string(&v, &at)?,
            "reason" if v.is_none() => {}
            "reason" => {
                let mut reason = [None, None];
                for (k, v) in items(&v, &at)? {
                    match key_of(&k) {
                        Some(n @ "reasonType") => reason[0] = string(&v, &at.key(n))?,
                        Some(n @ "reasonCode") => reason[1] = string(&v, &at.key(n))?,
                        _ => return Err(at.unknown(&k, "a reason")),
                    }
                }
                t.reason = Some(reason);
            }
            "attachments" => t.attachments = list(&v, &at, |a, at| attachment(a, at, json))?,
            "requestPath" => t.request_path = string(&v, &at)?,
            _ => match ROLES.iter().position(|r| *r == name) {
                Some(i) if !v.is_none() => {
                    t.resources[i] = resource(&v, &at, json)?;
                    given[i] = true;
                }
                Some(_) => {}
                None => return Err(top.unknown(&k, "a CADF event")),
            },
        }
    }
    if let Some(i) = given.iter().position(|g| !g) {
        return Err(top.key(ROLES[i]).missing());
    }
    Ok(t)
}

fn time<'py>(v: &Bound<'py, PyAny>, at: &At<'_>) -> Result<Option<Time<'py>>, Refusal> {
    if let Ok(dt) = v.cast::<PyDateTime>() {
        let mut buf = [0u8; 32];
        let n = encode::format_datetime(dt, &mut buf).map_err(Refusal::Raised)?;
        return Ok(Some(Time::Formatted(buf, n)));
    }
    if v.is_none() || v.is_instance_of::<PyString>() {
        return Ok(string(v, at)?.map(Time::Text));
    }
    Err(at.invalid(format!("must be a str or a datetime, not {}", type_name(v))))
}

fn resource<'py>(
    v: &Bound<'py, PyAny>,
    res: &At<'_>,
    json: &mut Vec<u8>,
) -> Result<Resource<'py>, Refusal> {
    let mut r = Resource::default();
    for (k, v) in items(v, res)? {
        let Some(name) = key_of(&k) else {
            return Err(res.unknown(&k, "a CADF resource"));
        };
        let at = res.key(name);
        match name {
            "typeURI" => r.type_uri = string(&v, &at)?,
            "name" => r.name = string(&v, &at)?,
            "domain" => r.domain = string(&v, &at)?,
            "id" => r.id = string(&v, &at)?,
            "addresses" => {
                r.addresses = list(&v, &at, |a, at| {
                    let mut address = [None, None];
                    for (k, v) in items(a, at)? {
                        match key_of(&k) {
                            Some(n @ "url") => address[0] = string(&v, &at.key(n))?,
                            Some(n @ "name") => address[1] = string(&v, &at.key(n))?,
                            _ => return Err(at.unknown(&k, "an address")),
                        }
                    }
                    if address[0].is_none() {
                        return Err(at.key("url").missing());
                    }
                    Ok(address)
                })?;
            }
            "host" if v.is_none() => {}
            "host" => {
                let mut host = [None, None, None, None];
                for (k, v) in items(&v, &at)? {
                    let Some(i) = key_of(&k).and_then(|n| HOST.iter().position(|h| *h == n)) else {
                        return Err(at.unknown(&k, "a host"));
                    };
                    host[i] = string(&v, &at.key(HOST[i]))?;
                }
                r.host = Some(host);
            }
            "attachments" => r.attachments = list(&v, &at, |a, at| attachment(a, at, json))?,
            _ => match EXTENSIONS.iter().position(|e| *e == name) {
                Some(i) => r.extensions[i] = string(&v, &at)?,
                None => return Err(res.unknown(&k, "a CADF resource")),
            },
        }
    }
    Ok(r)
}

fn attachment<'py>(
    v: &Bound<'py, PyAny>,
    at: &At<'_>,
    json: &mut Vec<u8>,
) -> Result<Attachment<'py>, Refusal> {
    let (mut name, mut type_uri, mut content) = (None, None, None);
    for (k, v) in items(v, at)? {
        match key_of(&k) {
            Some(n @ "name") => name = string(&v, &at.key(n))?,
            Some(n @ "typeURI") => type_uri = string(&v, &at.key(n))?,
            Some(n @ "content") => content = self::content(&v, &at.key(n), json)?,
            _ => return Err(at.unknown(&k, "an attachment")),
        }
    }
    let Some(content) = content else {
        return Err(at.key("content").missing());
    };
    Ok(Attachment {
        name,
        type_uri,
        content,
    })
}

/// A str is text; bytes are JSON text; a dict, list or tuple is encoded as JSON.
fn content<'py>(
    v: &Bound<'py, PyAny>,
    at: &At<'_>,
    json: &mut Vec<u8>,
) -> Result<Option<Content<'py>>, Refusal> {
    if v.is_instance_of::<PyString>() || v.is_none() {
        return Ok(string(v, at)?.map(Content::Text));
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        if let Err(e) = std::str::from_utf8(b.as_bytes()) {
            return Err(Refusal::Utf8 {
                field: at.render(false),
                message: format!(
                    "field {}: JSON text (bytes) that is not valid UTF-8 at byte {}",
                    at.render(true),
                    e.valid_up_to()
                ),
                offset: e.valid_up_to(),
            });
        }
        return Ok(Some(Content::Bytes(b.clone())));
    }
    if v.is_instance_of::<PyDict>() || v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>()
    {
        let start = json.len();
        // What is left below the containers it sits in (the event, its `attachments` array
        // and the attachment; a resource's, one more).
        let depth = encode::MAX_DEPTH.saturating_sub(at.containers());
        return match encode::write_value(v, json, usize::MAX, depth) {
            Ok(()) => Ok(Some(Content::Encoded(start..json.len()))),
            Err(Fail::Raised(err)) => Err(Refusal::Raised(err)),
            Err(f) => Err(Refusal::Unsupported(f.message(&at.render(true)))),
        };
    }
    Err(at.invalid(format!(
        "must be a str (text), bytes (JSON text), or a dict or list (sent as JSON), not {}",
        type_name(v)
    )))
}

/// The lists the core's event points into.
struct Views<'a> {
    /// The addresses and attachments of the initiator, target and observer.
    addresses: [Vec<CadfAddress<'a>>; 3],
    resource_attachments: [Vec<CadfAttachment<'a>>; 3],
    attachments: Vec<CadfAttachment<'a>>,
}

impl<'a> Views<'a> {
    fn of(t: &'a Taken<'_>, json: &'a [u8]) -> Result<Self, Error> {
        let [a, b, c] = &t.resources;
        Ok(Views {
            addresses: [addresses(a)?, addresses(b)?, addresses(c)?],
            resource_attachments: [
                attachments(&a.attachments, json)?,
                attachments(&b.attachments, json)?,
                attachments(&c.attachments, json)?,
            ],
            attachments: attachments(&t.attachments, json)?,
        })
    }

    fn event(&'a self, t: &'a Taken<'_>) -> Result<CadfEvent<'a>, Error> {
        let resource = |i: usize| -> Result<CadfResource<'a>, Error> {
            let r = &t.resources[i];
            let [
                project_id,
                domain_id,
                project_name,
                project_domain_name,
                domain_name,
                app,
            ] = &r.extensions;
            Ok(CadfResource {
                type_uri: opt(&r.type_uri)?.unwrap_or(""),
                name: opt(&r.name)?,
                domain: opt(&r.domain)?,
                id: opt(&r.id)?.unwrap_or(""),
                addresses: &self.addresses[i],
                host: match &r.host {
                    Some([id, address, agent, platform]) => Some(CadfHost {
                        id: opt(id)?,
                        address: opt(address)?,
                        agent: opt(agent)?,
                        platform: opt(platform)?,
                    }),
                    None => None,
                },
                attachments: &self.resource_attachments[i],
                project_id: opt(project_id)?,
                domain_id: opt(domain_id)?,
                project_name: opt(project_name)?,
                project_domain_name: opt(project_domain_name)?,
                domain_name: opt(domain_name)?,
                app_credential_id: opt(app)?,
            })
        };
        Ok(CadfEvent {
            type_uri: opt(&t.type_uri)?,
            id: opt(&t.id)?,
            event_time: match &t.event_time {
                Some(Time::Text(s)) => Some(view(s)?),
                Some(Time::Formatted(buf, n)) => Some(utf8(&buf[..*n])?),
                None => None,
            },
            event_type: opt(&t.event_type)?,
            action: opt(&t.action)?.unwrap_or(""),
            outcome: opt(&t.outcome)?.unwrap_or(""),
            reason: match &t.reason {
                Some([reason_type, reason_code]) => Some(CadfReason {
                    reason_type: opt(reason_type)?,
                    reason_code: opt(reason_code)?,
                }),
                None => None,
            },
            initiator: resource(0)?,
            target: resource(1)?,
            observer: resource(2)?,
            attachments: &self.attachments,
            request_path: opt(&t.request_path)?,
        })
    }
}

fn addresses<'a>(r: &'a Resource<'_>) -> Result<Vec<CadfAddress<'a>>, Error> {
    r.addresses
        .iter()
        .map(|[url, name]| {
            Ok(CadfAddress {
                url: opt(url)?.unwrap_or(""),
                name: opt(name)?,
            })
        })
        .collect()
}

fn attachments<'a>(
    list: &'a [Attachment<'_>],
    json: &'a [u8],
) -> Result<Vec<CadfAttachment<'a>>, Error> {
    list.iter()
        .map(|a| {
            Ok(CadfAttachment {
                name: opt(&a.name)?,
                type_uri: opt(&a.type_uri)?.unwrap_or(""),
                content: match &a.content {
                    Content::Text(s) => CadfContent::Text(view(s)?),
                    Content::Bytes(b) => CadfContent::Json(utf8(b.as_bytes())?),
                    Content::Encoded(range) => CadfContent::Json(utf8(&json[range.clone()])?),
                },
            })
        })
        .collect()
}

/// The str's UTF-8, borrowed from the object (checked by [`string`]).
fn view<'a>(s: &'a Str<'_>) -> Result<&'a str, Error> {
    utf8(encode::utf8(s).map_err(|_| Error::InvalidUtf8 { offset: 0 })?)
}

fn opt<'a>(s: &'a Option<Str<'_>>) -> Result<Option<&'a str>, Error> {
    s.as_ref().map(view).transpose()
}

fn utf8(b: &[u8]) -> Result<&str, Error> {
    std::str::from_utf8(b).map_err(|e| Error::InvalidUtf8 {
        offset: e.valid_up_to(),
    })
}
