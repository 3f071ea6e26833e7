//! `auditbuf_cadf_event`: a CADF event as structs of string views, and
//! `auditbuf_record_cadf`.
//!
//! The core's `CadfEvent` borrows `&str` and slices of its own address and attachment
//! types, so the views are checked for UTF-8 here and the C arrays copied into arrays of
//! those on the stack — up to [`STACK`] elements each, which covers every event
//! audittools writes; longer lists take one allocation.

use auditbuf::{
    CadfAddress, CadfAttachment, CadfContent, CadfEvent, CadfHost, CadfReason, CadfResource, Error,
};

use crate::args;
use crate::element::{At, locate};
use crate::error::{fail, status_of};
use crate::event::auditbuf_bytes;
use crate::panic::guard;
use crate::pipeline::{Handle, auditbuf_pipeline, handle};
use crate::status::{AUDITBUF_INVALID_PARAMETER, auditbuf_status};

/// One of a resource's `addresses`: `url` required, `name` optional.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct auditbuf_cadf_address {
    /// `url`. Required.
    pub url: auditbuf_bytes,
    /// `name`; NULL `ptr` for none.
    pub name: auditbuf_bytes,
}

/// One of the `attachments` of an event or a resource.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct auditbuf_cadf_attachment {
    /// `name`; NULL `ptr` for none.
    pub name: auditbuf_bytes,
    /// `typeURI`, the content's type. Required.
    pub type_uri: auditbuf_bytes,
    /// `content`: text sent as a JSON string, or, when `content_is_json` is non-zero, the
    /// JSON text of any value, checked and sent as it is.
    pub content: auditbuf_bytes,
    /// Non-zero: `content` is JSON.
    pub content_is_json: u8,
}

/// A CADF resource (initiator, target or observer). `type_uri` and `id` are required;
/// every other view may be NULL (absent). The `host` is sent when any `host_*` view is
/// set. Lists are `n` elements at a pointer (NULL when `n` is 0).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct auditbuf_cadf_resource {
    /// `typeURI`, e.g. `service/security/account/user`. Required.
    pub type_uri: auditbuf_bytes,
    /// `name`.
    pub name: auditbuf_bytes,
    /// `domain`.
    pub domain: auditbuf_bytes,
    /// `id`. Required.
    pub id: auditbuf_bytes,
    /// `addresses`.
    pub addresses: *const auditbuf_cadf_address,
    /// Number of `addresses`.
    pub addresses_len: usize,
    /// `host.id`.
    pub host_id: auditbuf_bytes,
    /// `host.address`.
    pub host_address: auditbuf_bytes,
    /// `host.agent`.
    pub host_agent: auditbuf_bytes,
    /// `host.platform`.
    pub host_platform: auditbuf_bytes,
    /// `attachments`.
    pub attachments: *const auditbuf_cadf_attachment,
    /// Number of `attachments`.
    pub attachments_len: usize,
    /// `project_id`.
    pub project_id: auditbuf_bytes,
    /// `domain_id`.
    pub domain_id: auditbuf_bytes,
    /// `project_name`.
    pub project_name: auditbuf_bytes,
    /// `project_domain_name`.
    pub project_domain_name: auditbuf_bytes,
    /// `domain_name`.
    pub domain_name: auditbuf_bytes,
    /// `app_credential_id`.
    pub app_credential_id: auditbuf_bytes,
}

/// A CADF event, as audittools publishes it for Hermes. Zero-initialise it (`= {0}`) and
/// set what you have. Required: `action`, `outcome` (`success`, `failure`, `pending`,
/// `unknown`), and the `type_uri` and `id` of `initiator`, `target` and `observer`.
/// Absent `type_uri` sends the CADF event schema, `event_type` `activity`, `id` a new
/// random UUID, `event_time` the time of the call (`2026-11-30T10:15:30.123456+00:00`).
/// `reason` is sent when `reason_type` or `reason_code` is set.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct auditbuf_cadf_event {
    /// `typeURI`.
    pub type_uri: auditbuf_bytes,
    /// `id`; absent for a generated UUID.
    pub id: auditbuf_bytes,
    /// `eventTime`, RFC 3339; absent for the time of the call.
    pub event_time: auditbuf_bytes,
    /// `eventType`: `activity`, `monitor` or `control`.
    pub event_type: auditbuf_bytes,
    /// `action`, e.g. `create`. Required.
    pub action: auditbuf_bytes,
    /// `outcome`. Required.
    pub outcome: auditbuf_bytes,
    /// `reason.reasonType`, e.g. `HTTP`.
    pub reason_type: auditbuf_bytes,
    /// `reason.reasonCode`, e.g. `201`.
    pub reason_code: auditbuf_bytes,
    /// `initiator`. Required.
    pub initiator: auditbuf_cadf_resource,
    /// `target`. Required.
    pub target: auditbuf_cadf_resource,
    /// `observer`. Required.
    pub observer: auditbuf_cadf_resource,
    /// `attachments`.
    pub attachments: *const auditbuf_cadf_attachment,
    /// Number of `attachments`.
    pub attachments_len: usize,
    /// `requestPath`.
    pub request_path: auditbuf_bytes,
}

/// List elements converted on the stack; longer lists allocate.
const STACK: usize = 8;

/// Records a CADF event (for the RabbitMQ sink): checked and encoded on the calling
/// thread into a pooled buffer, without allocating (lists of up to 8 addresses or
/// attachments).
///
/// Returns `AUDITBUF_OK` when the event was accepted; otherwise nothing was taken and the
/// status says why: `AUDITBUF_MISSING_FIELD`, `AUDITBUF_INVALID_FIELD` (a view is not
/// UTF-8, an `outcome` or `event_type` outside its set, an `event_time` that is not RFC
/// 3339, an `id` over 255 bytes; the message names the field, e.g. `initiator.name`),
/// `AUDITBUF_INVALID_JSON` (JSON attachment content), `AUDITBUF_TOO_LARGE`,
/// `AUDITBUF_FULL`, `AUDITBUF_TIMEOUT`, `AUDITBUF_CLOSED`, `AUDITBUF_NULL_PARAMETER`,
/// `AUDITBUF_INVALID_PARAMETER` (a NULL `ptr` with a length, a NULL list with a count).
/// A message about an element of a list names its index: `required field
/// initiator.addresses[2].url is empty`, `field attachments[1].content: not valid JSON at
/// byte 3 of its text: …`. Refusals of the event are counted in `auditbuf_stats`. The
/// caller keeps ownership of `ev` and everything it points to; nothing is kept after the
/// call. Thread-safe.
///
/// # Safety
/// `pipeline` must be NULL or a live handle from `auditbuf_pipeline_new*`; `ev` must be
/// NULL or point to an `auditbuf_cadf_event` whose non-NULL views and lists are readable
/// for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn auditbuf_record_cadf(
    pipeline: *const auditbuf_pipeline,
    ev: *const auditbuf_cadf_event,
) -> auditbuf_status {
    guard(|| {
        let record = || -> Result<auditbuf_status, auditbuf_status> {
            // Safety: as this function's.
            let handle = unsafe { handle(pipeline) }?;
            // Safety: as this function's.
            let ev = unsafe { args::reference(ev, "ev") }?;
            // Safety: the views and lists are readable (this function's contract).
            unsafe { record(handle, ev) }.map_err(|f| f.status(handle))
        };
        record().unwrap_or_else(|s| s)
    })
}

/// Why a C event could not become a core one.
enum Failure {
    /// A bad argument (a NULL pointer with a length): not an event, not counted.
    Parameter(auditbuf_status),
    /// A field the event may not have (not UTF-8): refused and counted like the core's;
    /// with the list element it is a field of.
    Refused(Error, Option<At>),
}

impl Failure {
    fn status(self, handle: &Handle) -> auditbuf_status {
        match self {
            Failure::Parameter(s) => s,
            Failure::Refused(e, at) => {
                handle.pipeline.count_rejected(&e);
                let s = status_of(&e);
                at.map_or(s, |at| at.name(s))
            }
        }
    }

    /// The failure of a field of element `index` of `list`.
    fn at(self, list: &'static str, index: usize) -> Failure {
        let at = At { list, index };
        match self {
            // The message is written already.
            Failure::Parameter(s) => Failure::Parameter(at.name(s)),
            Failure::Refused(e, _) => Failure::Refused(e, Some(at)),
        }
    }
}

/// # Safety
/// Every non-NULL view and list in `ev` must be readable for its length.
unsafe fn record(handle: &Handle, ev: &auditbuf_cadf_event) -> Result<auditbuf_status, Failure> {
    // The lists first: the event borrows them.
    let resources = [&ev.initiator, &ev.target, &ev.observer];
    let mut lists = [(); 3].map(|()| (List::new(NO_ADDRESS), List::new(NO_ATTACHMENT)));
    for ((addresses, attachments), (r, names)) in lists.iter_mut().zip(resources.iter().zip(&ROLES))
    {
        // Safety: `r` is one of `ev`'s resources, readable (this function's contract).
        *addresses = unsafe { address_list(r, names) }?;
        // Safety: as above.
        let list = unsafe { attachment_list(r.attachments, r.attachments_len, &names.attachments) };
        *attachments = list?;
    }
    // Safety: `ev`'s own list, readable (this function's contract).
    let own = unsafe { attachment_list(ev.attachments, ev.attachments_len, &EVENT_ATTACHMENTS) }?;
    let [(ia, it), (ta, tt), (oa, ot)] = &lists;
    let resource = |r, names, addresses, attachments| {
        // Safety: `r` is one of `ev`'s resources, readable (this function's contract).
        unsafe { resource(r, names, addresses, attachments) }
    };
    let initiator = resource(&ev.initiator, &ROLES[0], ia.as_slice(), it.as_slice())?;
    let target = resource(&ev.target, &ROLES[1], ta.as_slice(), tt.as_slice())?;
    let observer = resource(&ev.observer, &ROLES[2], oa.as_slice(), ot.as_slice())?;
    let text = |b, field| {
        // Safety: `b` is one of `ev`'s views, readable (this function's contract).
        unsafe { text(b, field) }
    };
    let reason_type = text(&ev.reason_type, "reason.reasonType")?;
    let reason_code = text(&ev.reason_code, "reason.reasonCode")?;
    let event = CadfEvent {
        type_uri: text(&ev.type_uri, "typeURI")?,
        id: text(&ev.id, "id")?,
        event_time: text(&ev.event_time, "eventTime")?,
        event_type: text(&ev.event_type, "eventType")?,
        action: text(&ev.action, "action")?.unwrap_or_default(),
        outcome: text(&ev.outcome, "outcome")?.unwrap_or_default(),
        reason: (reason_type.is_some() || reason_code.is_some()).then_some(CadfReason {
            reason_type,
            reason_code,
        }),
        initiator,
        target,
        observer,
        attachments: own.as_slice(),
        request_path: text(&ev.request_path, "requestPath")?,
    };
    match handle.pipeline.record_cadf(&event) {
        Ok(()) => Ok(crate::AUDITBUF_OK),
        Err(e) => {
            let s = status_of(&e);
            Ok(locate(&e, &event).map_or(s, |at| at.name(s)))
        }
    }
}

/// # Safety
/// Every non-NULL view of `r` must be readable for its length.
unsafe fn resource<'a>(
    r: &'a auditbuf_cadf_resource,
    n: &Names,
    addresses: &'a [CadfAddress<'a>],
    attachments: &'a [CadfAttachment<'a>],
) -> Result<CadfResource<'a>, Failure> {
    let text = |b, field| {
        // Safety: `b` is one of `r`'s views, readable (this function's contract).
        unsafe { text(b, field) }
    };
    let host = [
        text(&r.host_id, n.host[0])?,
        text(&r.host_address, n.host[1])?,
        text(&r.host_agent, n.host[2])?,
        text(&r.host_platform, n.host[3])?,
    ];
    Ok(CadfResource {
        type_uri: text(&r.type_uri, n.type_uri)?.unwrap_or_default(),
        name: text(&r.name, n.name)?,
        domain: text(&r.domain, n.domain)?,
        id: text(&r.id, n.id)?.unwrap_or_default(),
        addresses,
        host: host.iter().any(Option::is_some).then_some(CadfHost {
            id: host[0],
            address: host[1],
            agent: host[2],
            platform: host[3],
        }),
        attachments,
        project_id: text(&r.project_id, n.extensions[0])?,
        domain_id: text(&r.domain_id, n.extensions[1])?,
        project_name: text(&r.project_name, n.extensions[2])?,
        project_domain_name: text(&r.project_domain_name, n.extensions[3])?,
        domain_name: text(&r.domain_name, n.extensions[4])?,
        app_credential_id: text(&r.app_credential_id, n.extensions[5])?,
    })
}

/// # Safety
/// `r.addresses` must be NULL or readable for `r.addresses_len` elements, whose non-NULL
/// views are readable for their lengths.
unsafe fn address_list<'a>(
    r: &'a auditbuf_cadf_resource,
    n: &Names,
) -> Result<List<CadfAddress<'a>>, Failure> {
    // Safety: as this function's.
    let items = unsafe { args::list(r.addresses, r.addresses_len, n.addresses) }
        .map_err(Failure::Parameter)?;
    let mut list = List::new(NO_ADDRESS);
    let text = |b, field| {
        // Safety: `b` is a view of one of the addresses, readable (this function's contract).
        unsafe { text(b, field) }
    };
    for (i, a) in items.iter().enumerate() {
        let at = |f: Failure| f.at(n.addresses, i);
        list.push(CadfAddress {
            url: text(&a.url, n.address_url).map_err(at)?.unwrap_or_default(),
            name: text(&a.name, n.address_name).map_err(at)?,
        });
    }
    Ok(list)
}

/// # Safety
/// `ptr` must be NULL or readable for `len` elements, whose non-NULL views are readable
/// for their lengths.
unsafe fn attachment_list<'a>(
    ptr: *const auditbuf_cadf_attachment,
    len: usize,
    n: &AttachmentNames,
) -> Result<List<CadfAttachment<'a>>, Failure> {
    // Safety: as this function's.
    let items: &'a [auditbuf_cadf_attachment] =
        unsafe { args::list(ptr, len, n.list) }.map_err(Failure::Parameter)?;
    let mut list = List::new(NO_ATTACHMENT);
    let text = |b, field| {
        // Safety: `b` is a view of one of the attachments, readable (this function's contract).
        unsafe { text(b, field) }
    };
    for (i, a) in items.iter().enumerate() {
        let at = |f: Failure| f.at(n.list, i);
        let content = text(&a.content, n.content).map_err(at)?.unwrap_or_default();
        list.push(CadfAttachment {
            name: text(&a.name, n.name).map_err(at)?,
            type_uri: text(&a.type_uri, n.type_uri)
                .map_err(at)?
                .unwrap_or_default(),
            content: if a.content_is_json != 0 {
                CadfContent::Json(content)
            } else {
                CadfContent::Text(content)
            },
        });
    }
    Ok(list)
}

/// The text of a view: `None` when absent (NULL), refused naming `field` when not UTF-8.
///
/// # Safety
/// A non-NULL view must be readable for its length.
unsafe fn text<'a>(b: &'a auditbuf_bytes, field: &'static str) -> Result<Option<&'a str>, Failure> {
    if b.ptr.is_null() {
        if b.len != 0 {
            return Err(Failure::Parameter(fail(
                AUDITBUF_INVALID_PARAMETER,
                format_args!(
                    "{field}: ptr is NULL but len is {} (NULL means absent, len 0)",
                    b.len
                ),
            )));
        }
        return Ok(None);
    }
    // Safety: non-NULL and readable (the caller's promise); the length is checked there.
    let bytes = unsafe { args::bytes(b.ptr, b.len, field) }.map_err(Failure::Parameter)?;
    std::str::from_utf8(bytes).map(Some).map_err(|_| {
        Failure::Refused(
            Error::InvalidField {
                field,
                reason: "is not valid UTF-8",
            },
            None,
        )
    })
}

/// Up to [`STACK`] elements in place, more on the heap.
struct List<T> {
    stack: [T; STACK],
    len: usize,
    heap: Vec<T>,
}

impl<T: Copy> List<T> {
    /// An empty list; `fill` only occupies the unused places.
    fn new(fill: T) -> Self {
        List {
            stack: [fill; STACK],
            len: 0,
            heap: Vec::new(),
        }
    }

    fn push(&mut self, item: T) {
        if self.heap.is_empty() && self.len < STACK {
            self.stack[self.len] = item;
            self.len += 1;
        } else {
            if self.heap.is_empty() {
                self.heap.extend_from_slice(&self.stack[..self.len]);
            }
            self.heap.push(item);
        }
    }

    fn as_slice(&self) -> &[T] {
        if self.heap.is_empty() {
            &self.stack[..self.len]
        } else {
            &self.heap
        }
    }
}

const NO_ADDRESS: CadfAddress<'static> = CadfAddress {
    url: "",
    name: None,
};
const NO_ATTACHMENT: CadfAttachment<'static> = CadfAttachment {
    name: None,
    type_uri: "",
    content: CadfContent::Text(""),
};

/// The names errors give the fields of one resource (`initiator.name`, …).
struct Names {
    type_uri: &'static str,
    name: &'static str,
    domain: &'static str,
    id: &'static str,
    addresses: &'static str,
    address_url: &'static str,
    address_name: &'static str,
    host: [&'static str; 4],
    attachments: AttachmentNames,
    extensions: [&'static str; 6],
}

struct AttachmentNames {
    list: &'static str,
    name: &'static str,
    type_uri: &'static str,
    content: &'static str,
}

macro_rules! names {
    ($role:literal) => {
        Names {
            type_uri: concat!($role, ".typeURI"),
            name: concat!($role, ".name"),
            domain: concat!($role, ".domain"),
            id: concat!($role, ".id"),
            addresses: concat!($role, ".addresses"),
            address_url: concat!($role, ".addresses.url"),
            address_name: concat!($role, ".addresses.name"),
            host: [
                concat!($role, ".host.id"),
                concat!($role, ".host.address"),
                concat!($role, ".host.agent"),
                concat!($role, ".host.platform"),
            ],
            attachments: AttachmentNames {
                list: concat!($role, ".attachments"),
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

const ROLES: [Names; 3] = [names!("initiator"), names!("target"), names!("observer")];
const EVENT_ATTACHMENTS: AttachmentNames = AttachmentNames {
    list: "attachments",
    name: "attachments.name",
    type_uri: "attachments.typeURI",
    content: "attachments.content",
};
