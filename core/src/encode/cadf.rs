//! The typed CADF event (DMTF Cloud Auditing Data Federation, as sapcc `audittools` and
//! Hermes use it), borrowing every string, and its direct encoder: keys are pre-escaped
//! constants, values are escaped straight into the slot, and a missing `id` or
//! `eventTime` is generated into a stack buffer.

use super::cadf_defaults::{event_time_now, uuid_v4};
use super::cadf_rules::{
    AttachmentNames, EVENT_ATTACHMENTS, INITIATOR, Names, OBSERVER, TARGET, check_event,
    check_json_value, raw_size,
};
use super::escape::write_str_body;
use super::flatten_line_breaks;
use super::json::MAX_DEPTH;
use super::rules::invalid;
use crate::Error;

/// The `typeURI` of a CADF event unless the event says otherwise.
pub(crate) const CADF_EVENT_TYPE_URI: &str = "http://schemas.dmtf.org/cloud/audit/1.0/event";

/// One CADF event, as sapcc `audittools` publishes it to RabbitMQ for Hermes. Every string
/// is borrowed, so building one costs nothing;
/// [`Pipeline::record_cadf`](crate::Pipeline::record_cadf) encodes it straight into a
/// pooled buffer, fields in the order of the upstream Go type, absent options left out.
///
/// Left out, `typeURI` is `http://schemas.dmtf.org/cloud/audit/1.0/event`, `eventType`
/// `activity`, `id` a new random UUID (version 4, generated without allocating), and
/// `eventTime` the time of `record` as audittools writes it (`2026-11-23T10:15:30.123456+00:00`).
///
/// `record_cadf` refuses, naming the field ([`Error::MissingField`](crate::Error::MissingField),
/// [`Error::InvalidField`](crate::Error::InvalidField)): an empty `action`, an `outcome`
/// other than `success`, `failure`, `pending` or `unknown`, an `eventType` other than
/// `activity`, `monitor` or `control`, an `eventTime` that is not RFC 3339, an `id` that is
/// empty or over 255 bytes (it becomes the AMQP `message_id`, a short string), an empty
/// `typeURI` or `id` of a resource, an empty address `url` or attachment `typeURI`, an
/// attachment's [`CadfContent::Json`] that is not JSON, and U+0000 in any string.
///
/// ```
/// use auditbuf::{CadfEvent, CadfReason, CadfResource};
///
/// let event = CadfEvent {
///     reason: Some(CadfReason { reason_type: Some("HTTP"), reason_code: Some("201") }),
///     request_path: Some("/v2/servers"),
///     ..CadfEvent::new(
///         "create",
///         "success",
///         CadfResource { name: Some("ada"), ..CadfResource::new("service/security/account/user", "u-1") },
///         CadfResource::new("compute/server", "s-1"),
///         CadfResource::new("service/compute", "nova-api-1"),
///     )
/// };
/// assert_eq!(event.outcome, "success");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CadfEvent<'a> {
    /// `typeURI`; `None` sends `http://schemas.dmtf.org/cloud/audit/1.0/event`.
    pub type_uri: Option<&'a str>,
    /// `id`; `None` sends a new random UUID. Consumers de-duplicate by it.
    pub id: Option<&'a str>,
    /// `eventTime`, RFC 3339; `None` sends the time of `record`, with microseconds.
    pub event_time: Option<&'a str>,
    /// `eventType`: `activity`, `monitor` or `control`; `None` sends `activity`.
    pub event_type: Option<&'a str>,
    /// `action`, e.g. `create`, `read/list`. Required.
    pub action: &'a str,
    /// `outcome`: `success`, `failure`, `pending` or `unknown`. Required.
    pub outcome: &'a str,
    /// `reason`, e.g. the HTTP status.
    pub reason: Option<CadfReason<'a>>,
    /// `initiator`: who did it. Required.
    pub initiator: CadfResource<'a>,
    /// `target`: what it was done to. Required.
    pub target: CadfResource<'a>,
    /// `observer`: who reports it (the service). Required.
    pub observer: CadfResource<'a>,
    /// `attachments`; none are sent when empty.
    pub attachments: &'a [CadfAttachment<'a>],
    /// `requestPath`, the API path of the request.
    pub request_path: Option<&'a str>,
}

impl<'a> CadfEvent<'a> {
    /// An event with its required fields set and everything else absent (generated or left
    /// out).
    pub fn new(
        action: &'a str,
        outcome: &'a str,
        initiator: CadfResource<'a>,
        target: CadfResource<'a>,
        observer: CadfResource<'a>,
    ) -> Self {
        CadfEvent {
            action,
            outcome,
            initiator,
            target,
            observer,
            ..CadfEvent::default()
        }
    }
}

/// The `reason` of a [`CadfEvent`]; absent members are left out.
#[derive(Debug, Clone, Copy, Default)]
pub struct CadfReason<'a> {
    /// `reasonType`, e.g. `HTTP`.
    pub reason_type: Option<&'a str>,
    /// `reasonCode`, e.g. `201`.
    pub reason_code: Option<&'a str>,
}

/// A CADF resource: the initiator, target or observer of a [`CadfEvent`]. `type_uri` and
/// `id` are required; absent options and empty lists are left out.
#[derive(Debug, Clone, Copy, Default)]
pub struct CadfResource<'a> {
    /// `typeURI`, e.g. `service/security/account/user`. Required.
    pub type_uri: &'a str,
    /// `name`.
    pub name: Option<&'a str>,
    /// `domain`.
    pub domain: Option<&'a str>,
    /// `id`. Required.
    pub id: &'a str,
    /// `addresses`.
    pub addresses: &'a [CadfAddress<'a>],
    /// `host`.
    pub host: Option<CadfHost<'a>>,
    /// `attachments`.
    pub attachments: &'a [CadfAttachment<'a>],
    /// `project_id` (OpenStack).
    pub project_id: Option<&'a str>,
    /// `domain_id` (OpenStack).
    pub domain_id: Option<&'a str>,
    /// `project_name` (Hermes, initiators: the token's scope).
    pub project_name: Option<&'a str>,
    /// `project_domain_name` (Hermes).
    pub project_domain_name: Option<&'a str>,
    /// `domain_name` (Hermes).
    pub domain_name: Option<&'a str>,
    /// `app_credential_id` (Keystone application credentials).
    pub app_credential_id: Option<&'a str>,
}

impl<'a> CadfResource<'a> {
    /// A resource with its two required fields and nothing else.
    pub fn new(type_uri: &'a str, id: &'a str) -> Self {
        CadfResource {
            type_uri,
            id,
            ..CadfResource::default()
        }
    }
}

/// One of a [`CadfResource`]'s `addresses`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CadfAddress<'a> {
    /// `url`. Required.
    pub url: &'a str,
    /// `name`.
    pub name: Option<&'a str>,
}

/// A [`CadfResource`]'s `host`; absent members are left out.
#[derive(Debug, Clone, Copy, Default)]
pub struct CadfHost<'a> {
    /// `id`.
    pub id: Option<&'a str>,
    /// `address`.
    pub address: Option<&'a str>,
    /// `agent`.
    pub agent: Option<&'a str>,
    /// `platform`.
    pub platform: Option<&'a str>,
}

/// One of the `attachments` of a [`CadfEvent`] or [`CadfResource`].
#[derive(Debug, Clone, Copy)]
pub struct CadfAttachment<'a> {
    /// `name`.
    pub name: Option<&'a str>,
    /// `typeURI`, the content's type. Required.
    pub type_uri: &'a str,
    /// `content`.
    pub content: CadfContent<'a>,
}

/// What an attachment's `content` holds on the wire.
#[derive(Debug, Clone, Copy)]
pub enum CadfContent<'a> {
    /// A JSON string holding this text: what Hermes' Go type (`Content string`) reads.
    Text(&'a str),
    /// JSON text of any value, checked and copied as written (line breaks between tokens
    /// become spaces). Readers that expect a string cannot read it.
    Json(&'a str),
}

/// Keys, punctuation and generated values: what an event adds to its strings.
const ENCODED_OVERHEAD: usize = 640;

/// Encodes `ev` into `out` (empty on entry); fails without touching anything outside `out`.
pub(crate) fn encode_cadf(
    ev: &CadfEvent<'_>,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), Error> {
    check_event(ev)?;
    let lower_bound = raw_size(ev);
    if lower_bound > limit {
        return Err(Error::TooLarge {
            size: lower_bound,
            limit,
        });
    }
    out.reserve(lower_bound + ENCODED_OVERHEAD);
    // Keys carry the quotes around the string values that follow them.
    out.extend_from_slice(b"{\"typeURI\":\"");
    match ev.type_uri {
        Some(t) => put(out, "typeURI", t)?,
        None => out.extend_from_slice(CADF_EVENT_TYPE_URI.as_bytes()),
    }
    out.extend_from_slice(b"\",\"id\":\"");
    match ev.id {
        Some(id) => put(out, "id", id)?,
        None => out.extend_from_slice(&uuid_v4()),
    }
    out.extend_from_slice(b"\",\"eventTime\":\"");
    match ev.event_time {
        // Checked to be RFC 3339: plain ASCII, nothing to escape.
        Some(t) => out.extend_from_slice(t.as_bytes()),
        None => out.extend_from_slice(&event_time_now()),
    }
    out.extend_from_slice(b"\",\"eventType\":\"");
    out.extend_from_slice(ev.event_type.unwrap_or("activity").as_bytes());
    out.extend_from_slice(b"\",\"action\":\"");
    put(out, "action", ev.action)?;
    out.extend_from_slice(b"\",\"outcome\":\"");
    out.extend_from_slice(ev.outcome.as_bytes());
    out.push(b'"');
    if let Some(reason) = &ev.reason {
        out.extend_from_slice(b",\"reason\":{");
        let mut first = true;
        member(
            out,
            &mut first,
            b"\"reasonType\":\"",
            "reason.reasonType",
            reason.reason_type,
        )?;
        member(
            out,
            &mut first,
            b"\"reasonCode\":\"",
            "reason.reasonCode",
            reason.reason_code,
        )?;
        out.push(b'}');
    }
    out.extend_from_slice(b",\"initiator\":");
    write_resource(out, &ev.initiator, &INITIATOR)?;
    out.extend_from_slice(b",\"target\":");
    write_resource(out, &ev.target, &TARGET)?;
    out.extend_from_slice(b",\"observer\":");
    write_resource(out, &ev.observer, &OBSERVER)?;
    if !ev.attachments.is_empty() {
        out.extend_from_slice(b",\"attachments\":");
        // event (1) > attachments (2) > attachment (3) > content (4)
        write_attachments(out, ev.attachments, &EVENT_ATTACHMENTS, MAX_DEPTH - 3)?;
    }
    if let Some(path) = ev.request_path {
        out.extend_from_slice(b",\"requestPath\":\"");
        put(out, "requestPath", path)?;
        out.push(b'"');
    }
    out.push(b'}');
    if out.len() > limit {
        return Err(Error::TooLarge {
            size: out.len(),
            limit,
        });
    }
    Ok(())
}

/// Appends `s` escaped, without quotes; U+0000 is refused, naming `field`.
#[inline]
fn put(out: &mut Vec<u8>, field: &'static str, s: &str) -> Result<(), Error> {
    write_str_body(out, s.as_bytes(), false).map_err(|bad| invalid(field, bad.reason()))
}

/// Appends `key` (which opens the string value) and `value` when present, after a comma
/// unless it is the object's first member.
#[inline]
fn member(
    out: &mut Vec<u8>,
    first: &mut bool,
    key: &[u8],
    field: &'static str,
    value: Option<&str>,
) -> Result<(), Error> {
    if let Some(v) = value {
        if !*first {
            out.push(b',');
        }
        *first = false;
        out.extend_from_slice(key);
        put(out, field, v)?;
        out.push(b'"');
    }
    Ok(())
}

fn write_resource(out: &mut Vec<u8>, r: &CadfResource<'_>, n: &Names) -> Result<(), Error> {
    out.extend_from_slice(b"{\"typeURI\":\"");
    put(out, n.type_uri, r.type_uri)?;
    out.push(b'"');
    if let Some(name) = r.name {
        out.extend_from_slice(b",\"name\":\"");
        put(out, n.name, name)?;
        out.push(b'"');
    }
    if let Some(domain) = r.domain {
        out.extend_from_slice(b",\"domain\":\"");
        put(out, n.domain, domain)?;
        out.push(b'"');
    }
    out.extend_from_slice(b",\"id\":\"");
    put(out, n.id, r.id)?;
    out.push(b'"');
    if !r.addresses.is_empty() {
        out.extend_from_slice(b",\"addresses\":[");
        for (i, a) in r.addresses.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"url\":\"");
            put(out, n.address_url, a.url)?;
            out.push(b'"');
            if let Some(name) = a.name {
                out.extend_from_slice(b",\"name\":\"");
                put(out, n.address_name, name)?;
                out.push(b'"');
            }
            out.push(b'}');
        }
        out.push(b']');
    }
    if let Some(host) = &r.host {
        out.extend_from_slice(b",\"host\":{");
        let mut first = true;
        for (key, field, value) in [
            (&b"\"id\":\""[..], n.host[0], host.id),
            (b"\"address\":\"", n.host[1], host.address),
            (b"\"agent\":\"", n.host[2], host.agent),
            (b"\"platform\":\"", n.host[3], host.platform),
        ] {
            member(out, &mut first, key, field, value)?;
        }
        out.push(b'}');
    }
    if !r.attachments.is_empty() {
        out.extend_from_slice(b",\"attachments\":");
        // event (1) > resource (2) > attachments (3) > attachment (4) > content (5)
        write_attachments(out, r.attachments, &n.attachments, MAX_DEPTH - 4)?;
    }
    for (key, field, value) in [
        (&b",\"project_id\":\""[..], n.extensions[0], r.project_id),
        (b",\"domain_id\":\"", n.extensions[1], r.domain_id),
        (b",\"project_name\":\"", n.extensions[2], r.project_name),
        (
            b",\"project_domain_name\":\"",
            n.extensions[3],
            r.project_domain_name,
        ),
        (b",\"domain_name\":\"", n.extensions[4], r.domain_name),
        (
            b",\"app_credential_id\":\"",
            n.extensions[5],
            r.app_credential_id,
        ),
    ] {
        if let Some(v) = value {
            out.extend_from_slice(key);
            put(out, field, v)?;
            out.push(b'"');
        }
    }
    out.push(b'}');
    Ok(())
}

fn write_attachments(
    out: &mut Vec<u8>,
    list: &[CadfAttachment<'_>],
    n: &AttachmentNames,
    content_depth: u32,
) -> Result<(), Error> {
    out.push(b'[');
    for (i, a) in list.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        if let Some(name) = a.name {
            out.extend_from_slice(b"\"name\":\"");
            put(out, n.name, name)?;
            out.extend_from_slice(b"\",");
        }
        out.extend_from_slice(b"\"typeURI\":\"");
        put(out, n.type_uri, a.type_uri)?;
        out.extend_from_slice(b"\",\"content\":");
        match a.content {
            CadfContent::Text(text) => {
                out.push(b'"');
                put(out, n.content, text)?;
                out.push(b'"');
            }
            CadfContent::Json(json) => {
                check_json_value(json.as_bytes(), content_depth).map_err(|e| match e {
                    Error::InvalidJson { offset, reason, .. } => Error::InvalidJson {
                        offset,
                        reason,
                        field: Some(n.content),
                    },
                    other => other,
                })?;
                let start = out.len();
                out.extend_from_slice(json.trim_ascii().as_bytes());
                // In checked JSON a raw line break can only be whitespace between tokens.
                flatten_line_breaks(&mut out[start..]);
            }
        }
        out.push(b'}');
    }
    out.push(b']');
    Ok(())
}

#[cfg(test)]
#[path = "cadf_tests.rs"]
mod tests;
