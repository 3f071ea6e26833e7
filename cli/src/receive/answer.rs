//! What one request gets: the body read within DataStorage's limit, its shape checked, and
//! the answer the service would give — 201 `{"event_ids":[…],"message":…}`, or RFC 7807
//! problem JSON (`application/problem+json`, `{"type","title","status","detail",
//! "instance"}`) for a refusal.

use std::io::{self, Read};

use auditbuf::DataStorageSink;
use serde_json::json;
use serde_json::value::RawValue;
use tiny_http::{Header, Method, Request, Response, StatusCode};

use crate::output::{count, one_line};

/// Most bytes a body may have; a longer one is answered 413, as the service does.
const MAX_BODY: usize = DataStorageSink::MAX_BODY_BYTES;
/// Most events a batch may have; more is answered 400, as the service does.
const MAX_EVENTS: usize = DataStorageSink::MAX_EVENTS;
/// A refused body longer than this (as its `Content-Length` claims) is not answered and its
/// connection is left open. tiny_http 0.12 reads and discards the unread rest of a body
/// when the request is dropped, allocating a buffer of the claimed rest's size at once: a
/// claim beyond the machine's memory would abort the process. No DataStorage client sends
/// such a body; a connection and a thread per such request are the price.
const MAX_DISCARDED: usize = 1 << 30;

/// The answer to one request, and what the receiver prints about it.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    /// After the time and the status: `batch of 3 events, 1034 bytes`, `refused …`.
    pub(super) line: String,
    /// A well-formed batch's events and bytes.
    pub(super) batch: Option<(u64, u64)>,
    /// With `--print`: its events' JSON, line breaks between tokens made spaces.
    pub(super) events: Vec<String>,
    /// Left unanswered and open (see [`MAX_DISCARDED`]).
    abandon: bool,
}

/// Reads `request`'s body and decides its answer: `ok` (201, or `--status`) for a
/// well-formed batch on the batch endpoint. With `print`, keeps the batch's events.
pub(super) fn answer(request: &mut Request, ok: u16, print: bool) -> Answer {
    let url = request.url().to_owned();
    let path = url.split('?').next().unwrap_or_default();
    if path != DataStorageSink::PATH {
        let line = format!("{} {}: no such path", request.method(), one_line(&url));
        let detail = format!("the batch endpoint is POST {}", DataStorageSink::PATH);
        return problem(404, "Not Found", &detail, &url, line);
    }
    if request.method() != &Method::Post {
        let line = format!("{} {}: only POST", request.method(), one_line(&url));
        return problem(405, "Method Not Allowed", "only POST", &url, line);
    }
    let body = match read_body(request) {
        Ok(body) => body,
        Err(Unread::TooLarge(claimed)) => {
            let detail = format!("the body is over {MAX_BODY} bytes");
            let line = format!(
                "refused {}: {detail}",
                claimed.map_or("a body".to_owned(), |n| format!("{n} bytes"))
            );
            let mut answer = problem(413, "Payload Too Large", &detail, &url, line);
            answer.abandon = claimed.is_some_and(|n| n > MAX_DISCARDED);
            if answer.abandon {
                answer
                    .line
                    .push_str(" (too large to discard: left unanswered and open)");
            }
            return answer;
        }
        Err(Unread::Failed(e)) => {
            let line = format!("refused: reading the body failed: {e}");
            return problem(400, "Bad Request", "the body could not be read", &url, line);
        }
    };
    let bytes = body.len();
    match check(&body) {
        Ok(events) => {
            let n = events.len();
            let mut answer = accept(ok, n, &url);
            answer.line = format!(
                "batch of {}, {bytes} bytes",
                count(n as u64, "event", "events")
            );
            answer.batch = Some((n as u64, bytes as u64));
            if print {
                // A line break in JSON text can only stand between tokens.
                answer.events = events
                    .iter()
                    .map(|e| e.get().replace(['\r', '\n'], " "))
                    .collect();
            }
            answer
        }
        Err((title, detail)) => {
            let line = format!("refused {bytes} bytes: {}", one_line(&detail));
            problem(400, title, &detail, &url, line)
        }
    }
}

/// Sends the answer; a request left unanswered is forgotten, with its connection.
pub(super) fn send(request: Request, answer: Answer) -> io::Result<()> {
    if answer.abandon {
        std::mem::forget(request);
        return Ok(());
    }
    let mut response = Response::from_data(answer.body).with_status_code(answer.status);
    // Both are plain ASCII; a header that did not parse would only be missing.
    if let Ok(header) = Header::from_bytes("Content-Type", answer.content_type) {
        response = response.with_header(header);
    }
    if answer.status == 405
        && let Ok(header) = Header::from_bytes("Allow", "POST")
    {
        response = response.with_header(header);
    }
    request.respond(response)
}

enum Unread {
    /// Over [`MAX_BODY`]; the length its `Content-Length` claims, if it has one.
    TooLarge(Option<usize>),
    Failed(io::Error),
}

fn read_body(request: &mut Request) -> Result<Vec<u8>, Unread> {
    let claimed = request.body_length();
    if let Some(n) = claimed
        && n > MAX_BODY
    {
        // Answered without reading: a client that sent `Expect: 100-continue` (auditbuf's
        // does for large bodies) never sends it.
        return Err(Unread::TooLarge(Some(n)));
    }
    let mut body = Vec::with_capacity(claimed.unwrap_or(0));
    let reader = request.as_reader();
    match reader.take(MAX_BODY as u64 + 1).read_to_end(&mut body) {
        Err(e) => Err(Unread::Failed(e)),
        Ok(_) if body.len() > MAX_BODY => Err(Unread::TooLarge(None)),
        Ok(_) => Ok(body),
    }
}

/// The events of a batch, as sent; or the refusal's title and detail.
fn check(body: &[u8]) -> Result<Vec<&RawValue>, (&'static str, String)> {
    let whole: &RawValue =
        serde_json::from_slice(body).map_err(|e| ("Bad Request", format!("not JSON: {e}")))?;
    if !whole.get().starts_with('[') {
        return Err((
            "Bad Request",
            "not a JSON array: the batch endpoint takes [event, …]".to_owned(),
        ));
    }
    let events: Vec<&RawValue> =
        serde_json::from_str(whole.get()).map_err(|e| ("Bad Request", format!("not JSON: {e}")))?;
    if events.is_empty() {
        return Err(("Validation Error", "the batch is empty".to_owned()));
    }
    if events.len() > MAX_EVENTS {
        return Err((
            "Batch Size Exceeded",
            format!("{} events; at most {MAX_EVENTS} a batch", events.len()),
        ));
    }
    if let Some(i) = events.iter().position(|e| !e.get().starts_with('{')) {
        return Err((
            "Validation Error",
            format!("event at index {i} is not a JSON object"),
        ));
    }
    Ok(events)
}

/// The answer to a well-formed batch of `n` events: `status` with the service's body for
/// it (201 and other 2xx: created, 202: queued) or problem JSON.
fn accept(status: u16, n: usize, url: &str) -> Answer {
    let body = match status {
        202 => json!({
            "status": "accepted",
            "message": "audit events queued for async processing",
            "count": n,
        }),
        200..=299 => {
            let mut rng = fastrand::Rng::new();
            let ids: Vec<String> = (0..n).map(|_| uuid_v4(&mut rng)).collect();
            let message = format!("{} created", count(n as u64, "audit event", "audit events"));
            json!({"event_ids": ids, "message": message})
        }
        _ => {
            let title = StatusCode(status).default_reason_phrase();
            let detail = format!("answering {status} as --status asks");
            return problem(status, title, &detail, url, String::new());
        }
    };
    Answer {
        status,
        content_type: "application/json",
        body: body.to_string().into_bytes(),
        line: String::new(),
        batch: None,
        events: Vec::new(),
        abandon: false,
    }
}

/// An RFC 7807 answer; its `type` is the service's `https://kubernaut.ai/problems/…` made
/// from `title` (`Validation Error` → `validation-error`).
fn problem(status: u16, title: &str, detail: &str, instance: &str, line: String) -> Answer {
    let kind = title.to_lowercase().replace(' ', "-");
    let body = json!({
        "type": format!("https://kubernaut.ai/problems/{kind}"),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    });
    Answer {
        status,
        content_type: "application/problem+json",
        body: body.to_string().into_bytes(),
        line,
        batch: None,
        events: Vec::new(),
        abandon: false,
    }
}

/// A random (version 4) UUID, as the service assigns event ids.
fn uuid_v4(rng: &mut fastrand::Rng) -> String {
    let n = rng.u128(..);
    // Version 4 in the third group's top nibble, variant 10 in the fourth's top bits.
    let n = (n & !(0xf << 76)) | (0x4 << 76);
    let n = (n & !(0x3 << 62)) | (0x2 << 62);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        n >> 96,
        (n >> 80) & 0xffff,
        (n >> 64) & 0xffff,
        (n >> 48) & 0xffff,
        n & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_an_array_of_1_to_500_objects() {
        assert_eq!(check(br#" [{"a":1}, {"b":[2]}] "#).unwrap().len(), 2);
        let refused = |body: &[u8]| check(body).unwrap_err().1;
        assert!(refused(b"").starts_with("not JSON"));
        assert!(refused(b"[{}").starts_with("not JSON"));
        assert!(refused(b"[{}] x").starts_with("not JSON"));
        assert!(refused(b"\xff").starts_with("not JSON"));
        assert!(refused(br#"{"a":1}"#).starts_with("not a JSON array"));
        assert_eq!(refused(b"[]"), "the batch is empty");
        assert_eq!(refused(b"[{}, 1]"), "event at index 1 is not a JSON object");
        assert_eq!(
            refused(b"[{}, [{}]]"),
            "event at index 1 is not a JSON object"
        );
        let over = format!("[{}{{}}]", "{},".repeat(MAX_EVENTS));
        assert_eq!(refused(over.as_bytes()), "501 events; at most 500 a batch");
    }

    #[test]
    fn event_ids_are_version_4_uuids() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..100 {
            let id = uuid_v4(&mut rng);
            let groups: Vec<&str> = id.split('-').collect();
            let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
            assert_eq!(lengths, [8, 4, 4, 4, 12], "{id}");
            assert!(groups[2].starts_with('4'), "{id}");
            assert!(matches!(&groups[3][..1], "8" | "9" | "a" | "b"), "{id}");
        }
    }
}
