//! Tests of capture and rendering: the flush thread's JSON is the synchronous encoder's,
//! and a caller renders only where it may.

use super::*;
use crate::EventData;
use crate::encode::event::encode_fields;
use crate::encode::event_bytes::capture_event_bytes;

/// Captures `ev`, renders the capture and checks the JSON is what the synchronous encoder
/// writes (`case` names the event in a failure); returns the slot and that JSON.
fn renders_as_encoded(ev: &AuditEvent<'_>, case: &str) -> (Vec<u8>, Vec<u8>) {
    // A generated timestamp is read twice here, and the two reads may fall on either side
    // of a millisecond.
    assert!(
        ev.event_timestamp.is_some(),
        "{case}: give the event a time"
    );
    let rules = EventRules::default();
    let mut want = Vec::new();
    super::super::event::encode_event(ev, &rules, &mut want, 1 << 20).unwrap();
    let mut slot = Vec::new();
    capture_event(ev, &rules, &mut slot, 1 << 20).unwrap();
    assert!(is_captured(&slot), "{case}");
    let mut got = Vec::new();
    render(&slot, &WallClock::now(), &mut got).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want),
        "{case}"
    );
    (slot, want)
}

/// What the flush thread renders from a capture is what a synchronous `record` writes,
/// for every shape of `event_data` the kept [`Shape`] describes.
#[test]
fn rendering_a_capture_writes_what_encoding_writes() {
    for data in [
        EventData::Empty,
        EventData::Json("{}"),
        EventData::Json(" \t{ }\n"),
        EventData::Json(r#"{"k":"v","n":[1,{"a":null}]}"#),
        EventData::Json("{\r\n  \"k\": \"line\\nbreak\",\n  \"x\": 1\n}"),
        EventData::Json(r#"{"event_type":"a.b","k":1}"#),
        EventData::Json(r#"  {"k":2,"event_type":"a\/b"}  "#),
        EventData::Json(r#"{"zoë":"\u00e9\"q"}"#),
    ] {
        // Text with escapes, and without (rendered without a scan of each field).
        for actor_id in [Some("ä\"\\\u{1}"), Some("zoë"), None] {
            let ev = AuditEvent {
                event_timestamp: Some("2026-11-30T10:15:30.123Z"),
                actor_id,
                event_data: data,
                ..AuditEvent::new("a.b", "cat", "act", "success", "c-1")
            };
            let ev = if matches!(data, EventData::Json(t) if t.contains("a\\/b")) {
                AuditEvent {
                    event_type: "a/b",
                    ..ev
                }
            } else {
                ev
            };
            let (mut slot, want) = renders_as_encoded(&ev, &format!("{data:?}"));
            // A damaged shape is not trusted: the text is scanned again, same bytes.
            let n = slot.len();
            slot[n - Shape::BYTES..].fill(0xAB);
            let mut again = Vec::new();
            render(&slot, &WallClock::now(), &mut again).unwrap();
            if !matches!(data, EventData::Empty) {
                assert_eq!(again, want, "{data:?}");
            }
        }
    }
}

/// Rendering copies the fields without escaping only when none of them needs it: a quote
/// in any one string field, the first and the last included, is escaped as the encoder
/// escapes it.
#[test]
fn a_quote_in_any_one_field_is_escaped_when_rendered() {
    let full = AuditEvent {
        version: Some("1.0"),
        event_timestamp: Some("2026-11-30T10:15:30.123Z"),
        actor_type: Some("service"),
        actor_id: Some("zoë"),
        actor_ip: Some("10.0.0.1"),
        resource_type: Some("pod"),
        resource_id: Some("p-1"),
        parent_event_id: Some("0f8fad5b-d9cb-469f-a165-70867728950e"),
        parent_event_date: Some("2026-11-30T10:15:30Z"),
        namespace: Some("ns"),
        cluster_id: Some("c"),
        severity: Some("high"),
        duration_ms: Some(7),
        error_code: Some("E1"),
        error_message: Some("boom"),
        retention_days: Some(30),
        is_sensitive: Some(true),
        event_data: EventData::Json(r#"{"k":1}"#),
        ..AuditEvent::new("a.b", "cat", "act", "success", "c-1")
    };
    let q = "q\"q";
    let with_quote: [fn(&mut AuditEvent<'static>, &'static str); 15] = [
        |e, q| e.version = Some(q),
        |e, q| e.event_type = q,
        |e, q| e.event_category = q,
        |e, q| e.event_action = q,
        |e, q| e.correlation_id = q,
        |e, q| e.actor_type = Some(q),
        |e, q| e.actor_id = Some(q),
        |e, q| e.actor_ip = Some(q),
        |e, q| e.resource_type = Some(q),
        |e, q| e.resource_id = Some(q),
        |e, q| e.namespace = Some(q),
        |e, q| e.cluster_id = Some(q),
        |e, q| e.severity = Some(q),
        |e, q| e.error_code = Some(q),
        |e, q| e.error_message = Some(q),
    ];
    for (i, set) in std::iter::once(None)
        .chain(with_quote.iter().map(Some))
        .enumerate()
    {
        let mut ev = full;
        if let Some(set) = set {
            set(&mut ev, q);
        }
        renders_as_encoded(&ev, &format!("case {i}"));
    }
}

/// A caller's rendering of a counter timestamp (no `event_timestamp` given) is the wall
/// clock's time of the call.
#[test]
fn a_caller_renders_the_time_of_the_call() {
    let ev = AuditEvent::new("a.b", "cat", "act", "success", "c-1");
    let mut slot = Vec::with_capacity(512);
    capture_event(&ev, &EventRules::default(), &mut slot, 1 << 20).unwrap();
    let stamp_of = |t: std::time::SystemTime| {
        let d = t.duration_since(std::time::UNIX_EPOCH).unwrap();
        String::from_utf8(time::at(d.as_secs(), d.subsec_millis()).to_vec()).unwrap()
    };
    let slack = std::time::Duration::from_millis(5);
    let earliest = stamp_of(std::time::SystemTime::now() - slack);
    ready_scratch();
    finish_here(&mut slot, &WallClock::now());
    let latest = stamp_of(std::time::SystemTime::now() + slack);
    assert!(!is_captured(&slot));
    let json: serde_json::Value = serde_json::from_slice(&slot).unwrap();
    // One format, one length: the strings order as the times do.
    let stamp = json["event_timestamp"].as_str().unwrap();
    assert!(
        earliest.as_str() <= stamp && stamp <= latest.as_str(),
        "{earliest} {stamp} {latest}"
    );
}

/// A small event with its time given, the default rules, and the JSON it encodes to.
fn small_event() -> (EventRules, AuditEvent<'static>, Vec<u8>) {
    let rules = EventRules::default();
    let ev = AuditEvent {
        event_timestamp: Some("2026-11-30T10:15:30.123Z"),
        event_data: EventData::Json(r#"{"k":"v"}"#),
        ..AuditEvent::new("a.b", "cat", "act", "success", "c-1")
    };
    let mut want = Vec::new();
    super::super::event::encode_event(&ev, &rules, &mut want, 1 << 20).unwrap();
    (rules, ev, want)
}

/// A caller renders into its own scratch only once the scratch has room, and never into
/// a slot too small for the JSON: either way the slot stays captured, for the flush
/// thread.
#[test]
fn a_caller_renders_only_with_room_and_into_a_slot_that_fits() {
    let (rules, ev, want) = small_event();
    let captured = || {
        let mut slot = Vec::with_capacity(512);
        capture_event(&ev, &rules, &mut slot, 1 << 20).unwrap();
        slot
    };
    let wall = WallClock::now();

    // This test's thread has no scratch yet.
    let mut slot = captured();
    finish_here(&mut slot, &wall);
    assert!(is_captured(&slot));

    ready_scratch();
    finish_here(&mut slot, &wall);
    assert_eq!(slot, want);

    // A slot that would have to grow keeps its capture.
    let mut small = captured();
    small.shrink_to_fit();
    assert!(small.capacity() < want.len());
    finish_here(&mut small, &wall);
    assert!(is_captured(&small));

    // An event that needs more room than the scratch has asks for it at the next slow
    // call.
    let big_data = format!(r#"{{"k":"{}"}}"#, "x".repeat(SCRATCH_BYTES));
    let big = AuditEvent {
        event_data: EventData::Json(&big_data),
        ..ev
    };
    let mut slot = Vec::new();
    capture_event(&big, &rules, &mut slot, 1 << 20).unwrap();
    slot.reserve(2 * SCRATCH_BYTES);
    finish_here(&mut slot, &wall);
    assert!(is_captured(&slot));
    ready_scratch();
    finish_here(&mut slot, &wall);
    assert!(!is_captured(&slot));
    let json: serde_json::Value = serde_json::from_slice(&slot).unwrap();
    assert_eq!(
        json["event_data"]["k"].as_str().map(str::len),
        Some(SCRATCH_BYTES)
    );
}

/// The flush thread renders into a buffer of a slot's size and swaps it in: the slot
/// keeps a buffer of the capacity it had, and rendering allocates only the first time.
/// An event whose JSON outgrows that buffer grows it, and its slot takes the grown one.
#[test]
fn the_flush_thread_swaps_in_a_buffer_of_the_slots_size() {
    let (rules, ev, want) = small_event();
    let wall = WallClock::now();
    let mut scratch = Vec::new();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let mut slot = Vec::with_capacity(512);
        capture_event(&ev, &rules, &mut slot, 1 << 20).unwrap();
        let captured_at = slot.as_ptr();
        finish(&mut slot, &wall, &mut scratch);
        assert_eq!(slot, want);
        assert_eq!((slot.capacity(), scratch.capacity()), (512, 512));
        assert!(scratch.is_empty());
        // The capture's buffer is now the scratch: swapped, not copied.
        assert_eq!(scratch.as_ptr(), captured_at);
        seen.push(slot);
    }

    // Larger than a slot once escaped: rendered into a grown scratch, which the slot
    // takes; the scratch is a slot's size again for the next event.
    let quotes = "\"".repeat(200);
    let escaped = AuditEvent {
        error_message: Some(&quotes),
        ..ev
    };
    let mut slot = Vec::with_capacity(512);
    capture_event(&escaped, &rules, &mut slot, 1 << 20).unwrap();
    let captured_at = slot.as_ptr();
    finish(&mut slot, &wall, &mut scratch);
    let mut want = Vec::new();
    super::super::event::encode_event(&escaped, &rules, &mut want, 1 << 20).unwrap();
    assert!(want.len() > 512);
    assert_eq!(slot, want);
    assert!(slot.capacity() >= want.len());
    assert_eq!((scratch.as_ptr(), scratch.capacity()), (captured_at, 512));
    let mut slot = Vec::with_capacity(512);
    capture_event(&ev, &rules, &mut slot, 1 << 20).unwrap();
    finish(&mut slot, &wall, &mut scratch);
    assert_eq!(slot, seen[0]);
    assert_eq!((slot.capacity(), scratch.capacity()), (512, 512));
}

/// Optional fields given empty are present (written as `""`), unlike absent ones: the bit
/// of each travels in the slot apart from its length.
#[test]
fn an_empty_optional_field_is_written_an_absent_one_is_not() {
    let ev = AuditEvent {
        actor_id: Some(""),
        error_code: Some(""),
        severity: None,
        event_timestamp: Some("2026-11-30T10:15:30.123Z"),
        ..AuditEvent::new("a.b", "c", "d", "success", "e")
    };
    let (_, json) = renders_as_encoded(&ev, "empty optionals");
    let json = String::from_utf8_lossy(&json);
    assert!(json.contains(r#","actor_id":"","#), "{json}");
    assert!(json.contains(r#","error_code":"","#), "{json}");
    assert!(!json.contains("severity"), "{json}");
    assert!(!json.contains("actor_type"), "{json}");
}

/// Bytes from C, Go or Python: captured and rendered, they are what the synchronous
/// encoder writes; bad UTF-8 is refused naming its field, even where the fields' bytes one
/// after the other would be valid (a character split between two fields).
#[test]
fn bytes_render_as_encoded_and_bad_utf8_names_its_field() {
    let rules = EventRules::default();
    let mut ev = AuditEventBytes::new(b"a.b", b"c", b"d", b"success", b"e");
    ev.actor_id = Some("zo\u{eb}".as_bytes());
    ev.error_message = Some(b"");
    ev.event_data = Some(br#"{"k":"v \u00e9"}"#);
    let mut slot = Vec::new();
    capture_event_bytes(&ev, &rules, &mut slot, 1 << 20).unwrap();
    assert!(is_captured(&slot));
    let mut got = Vec::new();
    render(&slot, &WallClock::now(), &mut got).unwrap();
    let mut want = Vec::new();
    let mut f = crate::encode::event_bytes::fields(&ev);
    // The same timestamp on both sides.
    let stamp = String::from_utf8_lossy(&got)
        .split("\"event_timestamp\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
        .unwrap();
    f.text[crate::encode::fields::at::EVENT_TIMESTAMP] = stamp.as_bytes();
    f.present |= 1 << crate::encode::fields::at::EVENT_TIMESTAMP;
    encode_fields::<true>(&f, &rules, &mut want, 1 << 20).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );

    let refused = |ev: &AuditEventBytes<'_>| {
        let mut slot = Vec::new();
        match capture_event_bytes(ev, &rules, &mut slot, 1 << 20) {
            Err(Error::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    };
    let base = AuditEventBytes::new(b"a.b", b"c", b"d", b"success", b"e");
    // "\xc3" then "\xa9" is "é" split in two.
    let split = AuditEventBytes {
        actor_type: Some(b"\xc3"),
        actor_id: Some(b"\xa9"),
        ..base
    };
    assert_eq!(refused(&split), "actor_type");
    let split_around_empty = AuditEventBytes {
        actor_type: Some(b"\xc3"),
        actor_id: Some(b""),
        actor_ip: Some(b"\xa9"),
        ..base
    };
    assert_eq!(refused(&split_around_empty), "actor_type");
    let last = AuditEventBytes {
        error_message: Some(b"\xff"),
        ..base
    };
    assert_eq!(refused(&last), "error_message");
    let nul = AuditEventBytes {
        namespace: Some(b"ns\0"),
        ..base
    };
    assert_eq!(refused(&nul), "namespace");
}

/// U+0000 anywhere in a field of any length is refused and named, for `&str` fields and
/// byte fields alike; so is a byte that is not UTF-8 in a byte field, and non-ASCII UTF-8
/// in one is taken. The capture looks for them while copying, by blocks of 16 bytes, by
/// words and by bytes according to the field's length.
#[test]
fn a_nul_or_bad_byte_anywhere_in_a_field_of_any_length_is_refused_and_named() {
    let rules = EventRules::default();
    for len in [1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 60] {
        for at in 0..len {
            let mut text = vec![b'r'; len];
            text[at] = 0;
            let nul = String::from_utf8(text.clone()).unwrap();
            let ev = AuditEvent {
                resource_id: Some(&nul),
                ..AuditEvent::new("a.b", "c", "d", "success", "e")
            };
            let mut slot = Vec::new();
            match capture_event(&ev, &rules, &mut slot, 1 << 20) {
                Err(Error::InvalidField { field, .. }) => {
                    assert_eq!(field, "resource_id", "len {len} at {at}")
                }
                other => panic!("len {len} at {at}: {other:?}"),
            }
            let refused = |value: &[u8]| {
                let ev = AuditEventBytes {
                    cluster_id: Some(value),
                    ..AuditEventBytes::new(b"a.b", b"c", b"d", b"success", b"e")
                };
                let mut slot = Vec::new();
                match capture_event_bytes(&ev, &rules, &mut slot, 1 << 20) {
                    Err(Error::InvalidField { field, .. }) => Some(field),
                    Ok(()) => None,
                    Err(other) => panic!("len {len} at {at}: {other:?}"),
                }
            };
            assert_eq!(refused(&text), Some("cluster_id"), "len {len} at {at}");
            text[at] = 0xff;
            assert_eq!(refused(&text), Some("cluster_id"), "len {len} at {at}");
            if at + 1 < len {
                text[at..at + 2].copy_from_slice("\u{e9}".as_bytes());
                assert_eq!(refused(&text), None, "len {len} at {at}");
            }
        }
    }
}
