//! Issue 13, case by case, through the public API: every bad input and bad configuration a
//! new user could try is refused clearly (naming the field and limit) and counted, never
//! accepted to fail later or abort.

use std::time::Duration;

use auditbuf::{
    AuditEvent, AuditEventBytes, Config, Error, EventData, FileStoreConfig, MemoryStore,
    MemoryStoreConfig, NullSink, Pipeline, PipelineConfig, StoreConfig, StoreRegistry,
};
use serde_json::json;

/// The field and reason of a configuration error.
fn config_error(result: Result<impl std::fmt::Debug, Error>) -> (String, String) {
    match result {
        Err(Error::Config(c)) => (c.field, c.reason),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn configuration_documents_end_where_the_object_ends() {
    for text in [
        r#"{"queue_capacity":5} x"#,
        r#"{"queue_capacity":5}{"queue_capacity":0}"#,
    ] {
        let (field, reason) = config_error(Config::from_json(text));
        assert_eq!(field, "(document)", "{text}");
        assert!(reason.contains("trailing characters"), "{text}: {reason}");
    }
    let (field, _) = config_error(StoreConfig::from_json(
        r#"{"type":"file","params":{"path":"/x"}} {"type":"memory"}"#,
    ));
    assert_eq!(field, "(document)");
}

#[test]
fn sizes_and_counts_have_a_ceiling() {
    let (field, reason) =
        config_error(Config::from_json(r#"{"initial_slot_bytes":1099511627776}"#));
    assert_eq!(
        (field.as_str(), reason.as_str()),
        (
            "initial_slot_bytes",
            "is 1099511627776, must be at most 1048576"
        )
    );
    let (field, reason) = config_error(Config::from_json(
        r#"{"retained_slot_bytes":1099511627776}"#,
    ));
    assert_eq!(field, "retained_slot_bytes");
    assert!(reason.contains("must be at most 67108864"), "{reason}");
    // 16 Mi events of up to 64 KiB could take a terabyte once the queue fills.
    let (field, reason) = config_error(Config::from_json(r#"{"queue_capacity":16777216}"#));
    assert_eq!(field, "queue_capacity");
    assert!(
        reason.contains("more than the 68719476736 a queue may hold"),
        "{reason}"
    );
    // Set in code, the same values stop the pipeline from starting, not the first record.
    let (field, _) = config_error(Pipeline::new(
        Config::default().initial_slot_bytes(1 << 40),
        NullSink,
    ));
    assert_eq!(field, "initial_slot_bytes");
    let (field, _) = config_error(Pipeline::new(
        Config::default().batch_max_events(usize::MAX),
        NullSink,
    ));
    assert_eq!(field, "batch_max_events");
}

#[test]
fn a_refused_configuration_leaves_no_store_behind() {
    let dir = std::env::temp_dir().join(format!("auditbuf-refused-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (field, _) = config_error(Pipeline::new(
        Config::default()
            .queue_capacity(0)
            .store(StoreConfig::File(FileStoreConfig::new(&dir))),
        NullSink,
    ));
    assert_eq!(field, "queue_capacity");
    assert!(!dir.exists(), "{} was created", dir.display());
}

#[test]
fn every_field_is_checked_when_the_configuration_is_read() {
    for (text, field, reason) in [
        (
            r#"{"type":"file","params":{"path":""}}"#,
            "params.path",
            "must not be empty",
        ),
        (
            r#"{"type":"file","params":{"path":"/x","segment_bytes":0}}"#,
            "params.segment_bytes",
            "is 0, must be at least 4096",
        ),
        (
            r#"{"type":"file","params":{"path":"/x","max_total_bytes":0}}"#,
            "params.max_total_bytes",
            "is 0, must be at least 4096",
        ),
        (
            r#"{"type":"file","params":{"path":"/x","fsync_interval_ms":0}}"#,
            "params.fsync_interval_ms",
            "is 0, must be at least 1",
        ),
    ] {
        let (f, r) = config_error(StoreConfig::from_json(text));
        assert_eq!((f.as_str(), r.as_str()), (field, reason), "{text}");
    }
    let (field, reason) = config_error(Config::from_json(r#"{"service":""}"#));
    assert_eq!(
        (field.as_str(), reason.as_str()),
        ("service", "is 0 bytes long, must be 1 to 255")
    );
    let (field, reason) = config_error(Config::from_json(r#"{"queue_capacity":null}"#));
    assert_eq!(field, "queue_capacity");
    assert!(reason.contains("null"), "{reason}");
    // A store built in code is checked before anything touches the disk.
    let (field, _) = config_error(Pipeline::new(
        Config::default().store(StoreConfig::File(FileStoreConfig::new(""))),
        NullSink,
    ));
    assert_eq!(field, "params.path");
}

fn typed(changes: impl FnOnce(&mut AuditEvent<'static>)) -> AuditEvent<'static> {
    let mut ev = AuditEvent {
        event_timestamp: Some("2026-11-23T10:15:30.123Z"),
        ..AuditEvent::new("auth.login", "security", "login", "success", "rr-1")
    };
    changes(&mut ev);
    ev
}

#[test]
fn typed_events_meet_the_receivers_rules_at_record() {
    let p = Pipeline::new(Config::default(), NullSink).unwrap();
    let long_type: &'static str = "a".repeat(101).leak();
    let cases = [
        (
            typed(|e| e.event_timestamp = Some("yesterday-ish")),
            "event_timestamp",
        ),
        (typed(|e| e.event_timestamp = Some("")), "event_timestamp"),
        (typed(|e| e.event_outcome = "maybe"), "event_outcome"),
        (typed(|e| e.event_type = long_type), "event_type"),
        (typed(|e| e.version = Some("")), "version"),
        (typed(|e| e.actor_id = Some("ada\0")), "actor_id"),
        (
            typed(|e| e.parent_event_id = Some("not-a-uuid")),
            "parent_event_id",
        ),
        (
            typed(|e| e.duration_ms = Some(i64::MAX as u64 + 1)),
            "duration_ms",
        ),
    ];
    let n = cases.len() as u64;
    for (event, field) in cases {
        match p.record(&event) {
            Err(Error::InvalidField { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    // An unknown category is fine by default: the spec's list grows with the server.
    p.record(&typed(|e| e.event_category = "billing")).unwrap();
    p.record(&typed(|e| e.duration_ms = Some(i64::MAX as u64)))
        .unwrap();
    let report = p.close(Duration::from_secs(5));
    assert_eq!(report.stats.rejected.invalid_field, n);
    assert_eq!(report.stats.delivered, 2);
}

#[test]
fn categories_and_the_timestamp_window_are_opt_in() {
    let config = Config::default()
        .categories(["security", "gateway"])
        .check_timestamp_window(true);
    let p = Pipeline::new(config, NullSink).unwrap();
    assert!(matches!(
        p.record(&typed(|e| {
            e.event_category = "billing";
            e.event_timestamp = None;
        })),
        Err(Error::InvalidField {
            field: "event_category",
            ..
        })
    ));
    assert!(matches!(
        p.record(&typed(|e| e.event_timestamp = Some("2001-01-01T00:00:00Z"))),
        Err(Error::InvalidField {
            field: "event_timestamp",
            ..
        })
    ));
    p.record(&typed(|e| e.event_timestamp = None)).unwrap();
    let c = Config::from_json(r#"{"categories":["security"],"check_timestamp_window":true}"#);
    assert!(c.is_ok());
}

/// JSON the receiver or Postgres cannot store, as a whole event and as `event_data`.
fn unstorable() -> Vec<(&'static str, String)> {
    vec![
        (
            "number out of double range",
            r#"{"event_type":"x","n":1e999}"#.to_owned(),
        ),
        (
            "duplicate top-level event_type",
            r#"{"event_type":"x","event_type":"y"}"#.to_owned(),
        ),
        (
            "duplicate top-level event_timestamp",
            r#"{"event_type":"x","event_timestamp":"2026-11-23T10:15:30Z","event_timestamp":"t"}"#
                .to_owned(),
        ),
        (
            "nested duplicate",
            r#"{"event_type":"x","d":{"k":1,"k":2}}"#.to_owned(),
        ),
        ("U+0000", r#"{"event_type":"x","s":"a\u0000"}"#.to_owned()),
        (
            "128 levels",
            format!(
                r#"{{"event_type":"x","a":{}1{}}}"#,
                "[".repeat(127),
                "]".repeat(127)
            ),
        ),
    ]
}

#[test]
fn json_nobody_can_store_is_refused_on_every_path() {
    let p = Pipeline::new(Config::default(), NullSink).unwrap();
    let cases = unstorable();
    for (what, text) in &cases {
        let raw = p.record_json(text.as_bytes());
        assert!(
            matches!(raw, Err(Error::InvalidJson { .. })),
            "record_json, {what}: {raw:?}"
        );

        let data = p.record(&typed(|e| {
            e.event_type = "x";
            e.event_data = EventData::Json(text.clone().leak());
        }));
        assert!(
            matches!(data, Err(Error::InvalidJson { .. })),
            "record, {what}: {data:?}"
        );

        let bytes = p.record_event_bytes(&AuditEventBytes {
            event_data: Some(text.as_bytes()),
            ..AuditEventBytes::new(b"x", b"security", b"login", b"success", b"rr-1")
        });
        assert!(
            matches!(bytes, Err(Error::InvalidJson { .. })),
            "record_event_bytes, {what}: {bytes:?}"
        );

        // What serde_json can hold of the same: its Value keeps one of two duplicates.
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
            && !what.contains("duplicate")
        {
            let ser = p.record_serialize(&value);
            assert!(
                matches!(ser, Err(Error::InvalidJson { .. })),
                "record_serialize, {what}: {ser:?}"
            );
        }
    }
    // serde_json writes an f64 of 1e308 or more as such, and a map with a NUL key.
    let ser = p.record_serialize(&json!({"event_type": "x", "n": f64::MAX}));
    assert!(matches!(ser, Err(Error::InvalidJson { .. })), "{ser:?}");
    let ser = p.record_serialize(&json!({"event_type": "x", "\u{0}": 1}));
    assert!(matches!(ser, Err(Error::InvalidJson { .. })), "{ser:?}");
    let report = p.close(Duration::from_secs(5));
    assert_eq!(report.stats.recorded, 0);
    assert_eq!(
        report.stats.rejected.invalid_json,
        report.stats.rejected.total()
    );
}

#[test]
fn bad_json_inside_a_field_names_the_field() {
    let p = Pipeline::new(Config::default(), NullSink).unwrap();
    let typed = AuditEvent {
        event_data: EventData::Json(r#"{"a":"#),
        ..AuditEvent::new("a.b", "cat", "act", "success", "c-1")
    };
    let bytes = AuditEventBytes {
        event_data: Some(br#"{"a":1,"a":2}"#),
        ..AuditEventBytes::new(b"a.b", b"cat", b"act", b"success", b"c-1")
    };
    let attachment = [auditbuf::CadfAttachment {
        name: None,
        type_uri: "t",
        content: auditbuf::CadfContent::Json("[1,]"),
    }];
    let cadf = auditbuf::CadfEvent {
        attachments: &attachment,
        ..auditbuf::CadfEvent::new(
            "create",
            "success",
            auditbuf::CadfResource::new("service/security/account/user", "u-1"),
            auditbuf::CadfResource::new("compute/server", "s-1"),
            auditbuf::CadfResource::new("service/compute", "nova"),
        )
    };
    for (result, field, message) in [
        (
            p.record(&typed),
            "event_data",
            "field event_data: not valid JSON at byte 5 of its text: unexpected end of input",
        ),
        (
            p.record_event_bytes(&bytes),
            "event_data",
            "field event_data: not valid JSON at byte 7 of its text: duplicate key in an object",
        ),
        (
            p.record_cadf(&cadf),
            "attachments.content",
            "field attachments.content: not valid JSON at byte 3 of its text: expected a value",
        ),
    ] {
        let e = result.unwrap_err();
        assert!(
            matches!(e, Error::InvalidJson { field: Some(f), .. } if f == field),
            "{e:?}"
        );
        assert_eq!(e.to_string(), message);
        assert_eq!(e.name(), "invalid_json");
    }
    // The event's own text names no field.
    let e = p.record_json(br#"{"a":"#).unwrap_err();
    assert!(matches!(e, Error::InvalidJson { field: None, .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "event is not valid JSON at byte 5: unexpected end of input"
    );
    let stats = p.close(Duration::from_secs(5)).stats;
    assert!(stats.is_consistent(), "{stats:?}");
    assert_eq!(stats.rejected.invalid_json, 4, "{stats:?}");
    assert_eq!(stats.recorded, 0, "{stats:?}");
}

#[test]
fn a_serialize_that_panics_does_not_cost_the_pipeline_its_slots() {
    struct Panics;
    impl serde::Serialize for Panics {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            panic!("a caller's own bug");
        }
    }
    // A sink that holds its first batch until the end: slots in it stay taken.
    let (open, gate) = crossbeam_channel::bounded::<()>(0);
    let sink = auditbuf::CallbackSink::new(move |_: &[&[u8]]| {
        let _ = gate.recv_timeout(Duration::from_secs(30));
        auditbuf::Outcome::Delivered
    });
    let p = Pipeline::new(Config::default().queue_capacity(4), sink).unwrap();
    for _ in 0..20 {
        let panicked =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.record_serialize(&Panics)));
        assert!(panicked.is_err());
    }
    // Each panic dropped the slot it was given; the pool still has all four.
    let event = json!({"event_type": "user.login"});
    let accepted = (0..10)
        .take_while(|_| p.record_serialize(&event).is_ok())
        .count();
    assert_eq!(accepted, 4);
    drop(open);
    let report = p.close(Duration::from_secs(30));
    assert!(report.completed);
    assert!(report.stats.is_consistent(), "{:?}", report.stats);
    assert_eq!(report.stats.delivered, 4);
}

#[test]
fn keys_spelled_with_escapes_are_the_keys_they_mean() {
    // Rules on `version`, `event_timestamp` and `event_type` hold however a key is
    // written: no second `version` added, an `event_data.event_type` compared.
    let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Vec<u8>>::new()));
    let sink = auditbuf::CallbackSink::new({
        let sent = std::sync::Arc::clone(&sent);
        move |batch: &[&[u8]]| {
            let mut sent = sent.lock().unwrap();
            sent.extend(batch.iter().map(|e| e.to_vec()));
            auditbuf::Outcome::Delivered
        }
    });
    let p = Pipeline::new(Config::default(), sink).unwrap();
    p.record_json(
        br#"{"versio\u006e":"2.0","event_type":"x","event_timestam\u0070":"2026-11-23T10:15:30Z"}"#,
    )
    .unwrap();
    let data = AuditEventBytes {
        event_data: Some(br#"{"event_\u0074ype":"other"}"#),
        ..AuditEventBytes::new(b"t.x", b"cat", b"act", b"success", b"c-1")
    };
    let e = p.record_event_bytes(&data).unwrap_err();
    assert!(e.to_string().contains("event_type"), "{e}");
    let stats = p.close(Duration::from_secs(5)).stats;
    assert!(stats.is_consistent(), "{stats:?}");
    assert_eq!(
        (stats.delivered, stats.rejected.total()),
        (1, 1),
        "{stats:?}"
    );
    // What was sent has each key once: taken again, it is not refused as a duplicate.
    let again = Pipeline::new(Config::default(), NullSink).unwrap();
    for event in sent.lock().unwrap().iter() {
        let text = String::from_utf8_lossy(event);
        assert!(!text.contains(r#""version""#), "{text}");
        assert!(!text.contains(r#""event_timestamp""#), "{text}");
        again.record_json(event).unwrap();
    }
    assert!(again.close(Duration::from_secs(5)).stats.is_consistent());
}

#[test]
fn a_duplicate_inside_params_is_named_by_its_whole_path() {
    let registry = StoreRegistry::new().register("tiny", |_| {
        Ok(Box::new(MemoryStore::new(MemoryStoreConfig::default())))
    });
    for (text, field) in [
        (
            r#"{"type":"file","params":{"path":"/a","path":"/b"}}"#,
            "params.path",
        ),
        (
            r#"{"type":"memory","params":{"max_events":1,"max_events":2}}"#,
            "params.max_events",
        ),
        (
            r#"{"type":"tiny","params":{"a":{"b":1,"b":2}}}"#,
            "params.a.b",
        ),
        // Compared by meaning: the second `a` is spelled with an escape.
        (r#"{"type":"tiny","params":{"a":1,"\u0061":2}}"#, "params.a"),
    ] {
        let (f, reason) = config_error(StoreConfig::from_json_with(text, &registry));
        assert_eq!(f, field, "{text}: {reason}");
        assert!(reason.starts_with("duplicate key in an object"), "{reason}");
    }
    for (text, field) in [
        (
            r#"{"store":{"type":"file","params":{"path":"/a","path":"/b"}}}"#,
            "store.params.path",
        ),
        (
            r#"{"sink":{"type":"http","url":"http://x","headers":{"a":"1","a":"2"}}}"#,
            "sink.headers.a",
        ),
    ] {
        let (f, reason) = config_error(PipelineConfig::from_json(text));
        assert_eq!(f, field, "{text}: {reason}");
    }
}

#[test]
fn an_integer_beyond_its_type_is_shown_as_written() {
    // A store's or a sink's limit is not known where the number is read: none is named.
    let too_big = "too large for this field";
    let not_whole = "must be a whole number written in digits, without a fraction or exponent";
    for (text, field, reason) in [
        (
            r#"{"queue_capacity":18446744073709551616}"#.to_owned(),
            "queue_capacity",
            "is 18446744073709551616, must be at most 16777216".to_owned(),
        ),
        (
            r#"{"flush_interval_ms":1.8e19}"#.to_owned(),
            "flush_interval_ms",
            format!("is 1.8e19, {not_whole}"),
        ),
        (
            r#"{"retry":{"max_attempts":18446744073709551616}}"#.to_owned(),
            "retry.max_attempts",
            "is 18446744073709551616, must be at most 4294967295".to_owned(),
        ),
        (
            r#"{"queue_capacity":-99999999999999999999}"#.to_owned(),
            "queue_capacity",
            "is -99999999999999999999, out of range: must not be negative".to_owned(),
        ),
    ] {
        let (f, r) = config_error(Config::from_json(&text));
        assert_eq!((f.as_str(), r.as_str()), (field, reason.as_str()), "{text}");
    }
    let (f, r) = config_error(StoreConfig::from_json(
        r#"{"type":"file","params":{"path":"/x","max_total_bytes":18446744073709551616}}"#,
    ));
    assert_eq!(
        (f.as_str(), r.as_str()),
        (
            "params.max_total_bytes",
            format!("is 18446744073709551616, {too_big}").as_str()
        )
    );
    for (text, field, reason) in [
        (
            r#"{"store":{"type":"memory","params":{"max_events":1.8e19}}}"#,
            "store.params.max_events",
            format!("is 1.8e19, {not_whole}"),
        ),
        (
            r#"{"sink":{"type":"http","url":"http://x","timeout_ms":18446744073709551616}}"#,
            "sink.timeout_ms",
            format!("is 18446744073709551616, {too_big}"),
        ),
    ] {
        let (f, r) = config_error(PipelineConfig::from_json(text));
        assert_eq!((f.as_str(), r.as_str()), (field, reason.as_str()), "{text}");
    }
}
