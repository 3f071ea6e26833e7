//! What a CADF event must be to be recorded, checked without allocating, and the field
//! names errors give: required fields, the `outcome` and `eventType` sets, RFC 3339 times,
//! JSON attachment content, the AMQP limit on `id`.

use super::cadf::{CadfAttachment, CadfContent, CadfEvent, CadfResource};
use super::json::scan_object;
use super::keys::check_all_objects;
use super::rules::{invalid, rfc3339_seconds};
use crate::Error;

/// The names errors give the fields of one resource (`initiator.typeURI`, …).
pub(super) struct Names {
    pub(super) type_uri: &'static str,
    pub(super) name: &'static str,
    pub(super) domain: &'static str,
    pub(super) id: &'static str,
    pub(super) address_url: &'static str,
    pub(super) address_name: &'static str,
    pub(super) host: [&'static str; 4],
    pub(super) attachments: AttachmentNames,
    pub(super) extensions: [&'static str; 6],
}

pub(super) struct AttachmentNames {
    pub(super) name: &'static str,
    pub(super) type_uri: &'static str,
    pub(super) content: &'static str,
}

macro_rules! names {
    ($role:literal) => {
        Names {
            type_uri: concat!($role, ".typeURI"),
            name: concat!($role, ".name"),
            domain: concat!($role, ".domain"),
            id: concat!($role, ".id"),
            address_url: concat!($role, ".addresses.url"),
            address_name: concat!($role, ".addresses.name"),
            host: [
                concat!($role, ".host.id"),
                concat!($role, ".host.address"),
                concat!($role, ".host.agent"),
                concat!($role, ".host.platform"),
            ],
            attachments: AttachmentNames {
                name: concat!($role, ".attachments.name"),
                type_uri: concat!($role, ".attachments.typeURI"),
                content: concat!($role, ".attachments.content"),
            },
            extensions: [
                concat!($role, ".project_id"),
                concat!($role, ".domain_id"),
                concat!($role, ".project_name"),
                concat!($role, ".project_domain_name"),
                concat!($role, ".domain_name"),
                concat!($role, ".app_credential_id"),
            ],
        }
    };
}

pub(super) const INITIATOR: Names = names!("initiator");
pub(super) const TARGET: Names = names!("target");
pub(super) const OBSERVER: Names = names!("observer");
pub(super) const EVENT_ATTACHMENTS: AttachmentNames = AttachmentNames {
    name: "attachments.name",
    type_uri: "attachments.typeURI",
    content: "attachments.content",
};

const OUTCOMES: [&str; 4] = ["success", "failure", "pending", "unknown"];
const EVENT_TYPES: [&str; 3] = ["activity", "monitor", "control"];

/// Longest `id`: it is sent as the AMQP `message_id`, a short string.
const MAX_ID_BYTES: usize = 255;

/// Checks that `text` is one JSON value every receiver reads alike (as for `record_json`,
/// but any value, not only an object), nested at most `max_depth` levels.
pub(super) fn check_json_value(text: &[u8], max_depth: u32) -> Result<(), Error> {
    match scan_object(text, max_depth) {
        Ok(_) => Ok(()),
        // Valid JSON, only not an object: the scan stopped before its check of objects
        // with many keys, so run that here.
        Err(Error::NotAnObject) => check_all_objects(text),
        Err(e) => Err(e),
    }
}

pub(super) fn check_event(ev: &CadfEvent<'_>) -> Result<(), Error> {
    if ev.action.is_empty() {
        return Err(Error::MissingField { field: "action" });
    }
    if ev.outcome.is_empty() {
        return Err(Error::MissingField { field: "outcome" });
    }
    if !OUTCOMES.contains(&ev.outcome) {
        return Err(invalid(
            "outcome",
            "must be \"success\", \"failure\", \"pending\" or \"unknown\"",
        ));
    }
    if let Some(t) = ev.event_type
        && !EVENT_TYPES.contains(&t)
    {
        return Err(invalid(
            "eventType",
            "must be \"activity\", \"monitor\" or \"control\"",
        ));
    }
    if let Some(t) = ev.event_time
        && rfc3339_seconds(t.as_bytes()).is_none()
    {
        return Err(invalid(
            "eventTime",
            "must be an RFC 3339 date-time, e.g. 2026-11-23T10:15:30.123456+00:00",
        ));
    }
    if let Some(id) = ev.id
        && (id.is_empty() || id.len() > MAX_ID_BYTES)
    {
        return Err(invalid(
            "id",
            "must be 1 to 255 bytes (leave it out to have a UUID generated)",
        ));
    }
    if ev.type_uri == Some("") {
        return Err(invalid(
            "typeURI",
            "must not be empty (leave it out for the CADF event schema)",
        ));
    }
    for (r, n) in [
        (&ev.initiator, &INITIATOR),
        (&ev.target, &TARGET),
        (&ev.observer, &OBSERVER),
    ] {
        check_resource(r, n)?;
    }
    check_attachments(ev.attachments, &EVENT_ATTACHMENTS)
}

fn check_resource(r: &CadfResource<'_>, n: &Names) -> Result<(), Error> {
    if r.type_uri.is_empty() {
        return Err(Error::MissingField { field: n.type_uri });
    }
    if r.id.is_empty() {
        return Err(Error::MissingField { field: n.id });
    }
    if r.addresses.iter().any(|a| a.url.is_empty()) {
        return Err(Error::MissingField {
            field: n.address_url,
        });
    }
    check_attachments(r.attachments, &n.attachments)
}

fn check_attachments(list: &[CadfAttachment<'_>], n: &AttachmentNames) -> Result<(), Error> {
    if list.iter().any(|a| a.type_uri.is_empty()) {
        return Err(Error::MissingField { field: n.type_uri });
    }
    Ok(())
}

/// Sum of the lengths the event will take at least, before escaping and punctuation.
pub(super) fn raw_size(ev: &CadfEvent<'_>) -> usize {
    let opt = |v: Option<&str>| v.map_or(0, str::len);
    let attachments = |list: &[CadfAttachment<'_>]| -> usize {
        list.iter()
            .map(|a| {
                opt(a.name)
                    + a.type_uri.len()
                    + match a.content {
                        CadfContent::Text(t) | CadfContent::Json(t) => t.len(),
                    }
            })
            .sum()
    };
    let resource = |r: &CadfResource<'_>| -> usize {
        r.type_uri.len()
            + r.id.len()
            + opt(r.name)
            + opt(r.domain)
            + r.addresses
                .iter()
                .map(|a| a.url.len() + opt(a.name))
                .sum::<usize>()
            + r.host.map_or(0, |h| {
                opt(h.id) + opt(h.address) + opt(h.agent) + opt(h.platform)
            })
            + attachments(r.attachments)
            + opt(r.project_id)
            + opt(r.domain_id)
            + opt(r.project_name)
            + opt(r.project_domain_name)
            + opt(r.domain_name)
            + opt(r.app_credential_id)
    };
    opt(ev.type_uri)
        + opt(ev.id)
        + opt(ev.event_time)
        + opt(ev.event_type)
        + ev.action.len()
        + ev.outcome.len()
        + ev.reason
            .map_or(0, |r| opt(r.reason_type) + opt(r.reason_code))
        + resource(&ev.initiator)
        + resource(&ev.target)
        + resource(&ev.observer)
        + attachments(ev.attachments)
        + opt(ev.request_path)
}
