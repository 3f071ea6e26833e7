//! Which element of a list an error is about, named in the message the C caller reads:
//! `initiator.addresses[2].url`, not `initiator.addresses.url`.
//!
//! The core's errors carry a field's static name, the same for every element of its list
//! (`Error` stays small and allocation-free). Errors the C ABI finds itself (a NULL view
//! with a length, text that is not UTF-8) know their element; for those the core finds
//! (an empty `url`, a U+0000, attachment content that is not JSON) the element is found
//! again afterwards, on the refusal's path only, by the same rule: the core checks each
//! list in order and stops at the first element that breaks it.

use auditbuf::{CadfAttachment, CadfContent, CadfEvent, CadfResource, Error};

use crate::error::at_element;
use crate::status::auditbuf_status;

/// Element `index` of the list named `list` (`initiator.addresses`, `attachments`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct At {
    pub(crate) list: &'static str,
    pub(crate) index: usize,
}

impl At {
    /// Names the element in this thread's last error, which names a field of it.
    pub(crate) fn name(self, status: auditbuf_status) -> auditbuf_status {
        at_element(status, self.list, self.index)
    }
}

/// The element of one of `ev`'s lists that `error`, from the core, is about; `None` when it
/// is about no element (or the element cannot be told apart).
pub(crate) fn locate(error: &Error, ev: &CadfEvent<'_>) -> Option<At> {
    let (field, why): (&'static str, _) = match error {
        Error::MissingField { field } => (field, Why::Empty),
        Error::InvalidField { field, .. } => (field, Why::Nul),
        Error::InvalidJson {
            field: Some(field),
            reason,
            ..
        } => (field, Why::Json(reason)),
        _ => return None,
    };
    // `initiator.addresses.url`: the list, and the element's field.
    let (list, member) = field.rsplit_once('.')?;
    let index = match list.split_once('.') {
        Some((role, kind)) => {
            let r = match role {
                "initiator" => &ev.initiator,
                "target" => &ev.target,
                "observer" => &ev.observer,
                _ => return None,
            };
            match kind {
                "addresses" => address(r, member, why),
                // event (1) > resource (2) > attachments (3) > attachment (4) > content (5)
                "attachments" => attachment(r.attachments, member, why, 3),
                _ => None,
            }
        }
        // event (1) > attachments (2) > attachment (3) > content (4)
        None if list == "attachments" => attachment(ev.attachments, member, why, 2),
        None => None,
    }?;
    Some(At { list, index })
}

/// What the core found wrong with the field.
#[derive(Clone, Copy)]
enum Why<'a> {
    /// A required field is empty.
    Empty,
    /// Text holds U+0000, the one thing it refuses in text that is UTF-8.
    Nul,
    /// JSON content it refuses, for this reason.
    Json(&'a str),
}

fn address(r: &CadfResource<'_>, member: &str, why: Why<'_>) -> Option<usize> {
    let bad = |text: &str| match why {
        Why::Empty => text.is_empty(),
        Why::Nul => text.contains('\0'),
        Why::Json(_) => false,
    };
    r.addresses.iter().position(|a| match member {
        "url" => bad(a.url),
        "name" => a.name.is_some_and(bad),
        _ => false,
    })
}

/// `levels`: the levels above the content in an event, less the event's own object.
fn attachment(
    list: &[CadfAttachment<'_>],
    member: &str,
    why: Why<'_>,
    levels: usize,
) -> Option<usize> {
    list.iter().position(|a| match (member, why) {
        ("typeURI", Why::Empty) => a.type_uri.is_empty(),
        ("typeURI", Why::Nul) => a.type_uri.contains('\0'),
        ("name", Why::Nul) => a.name.is_some_and(|n| n.contains('\0')),
        ("content", Why::Nul) => matches!(a.content, CadfContent::Text(t) if t.contains('\0')),
        ("content", Why::Json(reason)) => match a.content {
            CadfContent::Json(json) => !content_ok(json, levels, reason),
            CadfContent::Text(_) => false,
        },
        _ => false,
    })
}

/// Whether the core takes `json` as content with `levels` above it (as for
/// [`attachment`]), by the core's own check of an event's JSON: in an object, and in as
/// many arrays as the event has levels above it. Both, because text that is no single
/// value can still close one context and open another (`1,"k":2` in an object, `1],[2` in
/// an array), never both; the depth only counts when the refusal was for depth.
fn content_ok(json: &str, levels: usize, reason: &str) -> bool {
    let deep = reason.starts_with("nesting deeper");
    let nested = |open: &str, close: &str, times: usize| {
        let mut text = String::with_capacity(json.len() + 6 + 2 * times);
        text.push_str("{\"\":");
        text.push_str(&open.repeat(times));
        text.push_str(json);
        text.push_str(&close.repeat(times));
        text.push('}');
        auditbuf::__bench::is_accepted_object(text.as_bytes())
    };
    nested("", "", 0) && nested("[", "]", if deep { levels } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditbuf::CadfAddress;

    fn resource<'a>(
        addresses: &'a [CadfAddress<'a>],
        attachments: &'a [CadfAttachment<'a>],
    ) -> CadfResource<'a> {
        let mut r = CadfResource::new("service/x", "id");
        r.addresses = addresses;
        r.attachments = attachments;
        r
    }

    fn json(content: &str) -> CadfAttachment<'_> {
        CadfAttachment {
            name: None,
            type_uri: "t",
            content: CadfContent::Json(content),
        }
    }

    #[test]
    fn finds_the_first_element_that_breaks_the_rule_the_core_named() {
        let address = |url, name| CadfAddress { url, name };
        let addresses = [
            address("a", None),
            address("b", Some("n")),
            address("", Some("x\0")),
            address("", None),
        ];
        let attachments = [json("1"), json("1,\"k\":2"), json("[1]")];
        let nothing: [CadfAttachment<'_>; 0] = [];
        let target = resource(&addresses, &attachments);
        let plain = resource(&[], &nothing);
        let mut ev = CadfEvent::new("create", "success", plain, target, plain);
        let event_attachments = [json("{}"), json("[1],[2"), json("{")];
        ev.attachments = &event_attachments;

        let at = |list, index| Some(At { list, index });
        let empty = |field| Error::MissingField { field };
        let nul = |field| Error::InvalidField {
            field,
            reason: "contains U+0000",
        };
        let bad_json = |field| Error::InvalidJson {
            offset: 1,
            reason: "trailing characters after the value",
            field: Some(field),
        };
        for (error, want) in [
            (empty("target.addresses.url"), at("target.addresses", 2)),
            (nul("target.addresses.name"), at("target.addresses", 2)),
            (
                bad_json("target.attachments.content"),
                at("target.attachments", 1),
            ),
            (bad_json("attachments.content"), at("attachments", 1)),
            // No element breaks it (another role's list), or no list holds the field.
            (empty("initiator.addresses.url"), None),
            (empty("initiator.typeURI"), None),
            (Error::Closed, None),
        ] {
            assert_eq!(locate(&error, &ev), want, "{error:?}");
        }
    }

    #[test]
    fn content_is_checked_as_the_core_checks_it() {
        for ok in ["1", " {\"a\":[1,{\"b\":null}]} ", "\"x\"", "[]"] {
            assert!(content_ok(ok, 2, "expected a value"), "{ok}");
        }
        for bad in ["", "1,\"k\":2", "1],[2", "{\"a\":1,\"a\":2}", "[1", "01"] {
            assert!(!content_ok(bad, 2, "expected a value"), "{bad}");
        }
        // Too deep for where it sits, not for the wrapper alone.
        let deep = format!("{}{}", "[".repeat(123), "]".repeat(123));
        assert!(content_ok(&deep, 2, "expected a value"));
        assert!(content_ok(&deep, 2, "nesting deeper than 126 levels"));
        assert!(!content_ok(&deep, 3, "nesting deeper than 126 levels"));
    }
}
